"""Running the `cdnstore` command as a user would, for the tests of the CLI and of `cdnstore serve`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from testbed.daemon import clean_env


def cdnstore(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdnstore", *args],
        cwd=cwd,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=60,
        env={**clean_env(), **(env or {})},
    )


async def start_demo(tmp_path: Path, port: int, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """`cdnstore demo` (with `args`) on `port` under tmp_path/demo, and what it printed up to "Press Ctrl-C"
    (its URL, credentials and S3 servers). The caller stops it (SIGINT)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cdnstore",
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        "--port",
        str(port),
        *args,
        cwd=tmp_path,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    out = ""
    try:
        while "Press Ctrl-C" not in out:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"demo exited early:\n{out}"
            out += line.decode()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, out
