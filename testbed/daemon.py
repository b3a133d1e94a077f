"""`cdnstore serve` in a process of its own, as production runs it: for the tests that kill, stop and restart
it, and for the benchmarks that measure it from outside."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import cdnstore

from .ports import until_ok

START_TIMEOUT = 30.0  # a busy machine starts a process slowly


# The tree whose cdnstore the caller imported. The daemon starts in its config file's folder, where
# `python -m cdnstore` would find the venv's install (an editable one points at one checkout): a benchmark run
# from a copy of an older tree (`git archive`) would measure the checkout's daemon, not the copy's.
TREE = str(Path(cdnstore.__file__).resolve().parent.parent)


def clean_env() -> dict[str, str]:
    """This environment without CDNSTORE_* variables, which would override the daemon's config file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CDNSTORE_")}


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """`sections` ({section: {key: value}}, values JSON scalars or lists, which are valid TOML) as a
    config.toml at `path`."""
    path.write_text(
        "".join(
            f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
            for section, keys in sections.items()
        )
    )
    return path


class Daemon:
    """`python -m cdnstore serve` on the config file `config` (in its folder, without the caller's CDNSTORE_*
    variables), listening on `port`, its output appended to `log`."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: asyncio.subprocess.Process | None = None
        self.open_files: int | None = None  # RLIMIT_NOFILE (soft and hard) of the next start; None: as ours
        self.under: tuple[str, ...] = ()  # a command the next start runs it under (bench's callgrind), or none
        self.start_timeout = START_TIMEOUT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """clean_env(), the config file, and the caller's tree first on PYTHONPATH."""
        env = clean_env()
        path = os.pathsep.join(filter(None, (TREE, env.get("PYTHONPATH"))))
        return {**env, "CDNSTORE_CONFIG": str(self.config), "PYTHONPATH": path}

    def _log_file(self) -> BinaryIO:
        return open(self.log, "ab")

    async def start(self) -> None:
        """Start it and return once /healthz answers 200."""
        with self._log_file() as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.under,
                sys.executable,
                "-m",
                "cdnstore",
                "serve",
                cwd=self.config.parent,
                stdout=log,
                stderr=log,
                env=self.env,
                preexec_fn=None if self.open_files is None else self._limit_open_files,
            )
        await until_ok(f"{self.url}/healthz", self._running, self.start_timeout)

    def _running(self) -> None:
        assert self.proc is not None and self.proc.returncode is None, self.log.read_text()

    def _limit_open_files(self) -> None:
        """(In the child, before it runs cdnstore: as systemd's LimitNOFILE would.)"""
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    async def stop(self, within: float) -> tuple[int, float]:
        """SIGTERM (unless it has exited already); the exit code and the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), within)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def cli(
        self, *args: str, stdin: str = "", env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`cdnstore ARGS` on the daemon's config file (`user add ...`, `scrub --deep`); it must succeed."""
        return subprocess.run(
            [sys.executable, "-m", "cdnstore", *args],
            cwd=self.config.parent,
            input=stdin,
            text=True,
            capture_output=True,
            check=True,
            timeout=None,
            env={**self.env, **(env or {})},
        )
