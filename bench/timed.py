"""Runs a command and says what it cost: its progress lines (stderr) time-stamped with the seconds since the
start, then one line on stdout, `exit-code peak-RSS-KiB CPU-seconds` (getrusage of the child alone).

    python -m bench.timed COMMAND [ARG...]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def main(command: list[str]) -> None:
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    for line in child.stderr:  # the progress lines, with the seconds since the start
        sys.stderr.write(f"{time.monotonic() - started:8.1f} {line}")
    child.wait()
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(child.returncode, use.ru_maxrss, use.ru_utime + use.ru_stime)


if __name__ == "__main__":
    main(sys.argv[1:])
