"""Running the `cdnstore` command as a user would, for the tests of the CLI and of `cdnstore serve`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any


def cdnstore(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`cdnstore ARGS`, without a terminal (a session of its own: no /dev/tty either), as a script runs it."""
    return subprocess.run(
        [sys.executable, "-m", "cdnstore", *args],
        cwd=cwd,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=60,
        env={**clean_env(), **(env or {})},
        start_new_session=True,
    )


def clean_env() -> dict[str, str]:
    """This environment without CDNSTORE_* variables, which would override the test's config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CDNSTORE_")}


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


def doc_blocks(path: Path) -> list[tuple[str, str]]:
    """Every ```sh block of a markdown file, with the title of the section it is in ("" before the first)."""
    text = path.read_text()
    return [
        ((re.findall(r"^## (.+)$", text[: m.start()], re.M) or [""])[-1], m[1])
        for m in re.finditer(r"^```sh\n(.*?)^```", text, re.M | re.S)
    ]


def marked(block: str) -> str:
    """The block with each numbered comment (`# 3. ...`) turned into a marker line (`### 3`) to split its
    output by (printf, not echo: curl prints JSON without a newline, and a marker must start a line)."""
    return re.sub(r"^# (\d+)\. .*$", r"printf '\\n### \1\\n'", block, flags=re.M)


def by_marker(output: str) -> dict[str, str]:
    parts = re.split(r"\n### (.+)\n", output)
    markers = parts[1::2]
    assert len(set(markers)) == len(markers), (
        f"the document numbers a step twice: {markers}"
    )  # (one would hide the other)
    return dict(zip(markers, parts[2::2], strict=True))


def json_values(text: str) -> list[Any]:
    """The JSON documents printed back to back (curl adds no newline)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text.strip()):
        value, at = decoder.raw_decode(text, at)
        found.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return found
