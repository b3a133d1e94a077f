#!/usr/bin/env python3
"""Bootstrap and run: `python3 dev.py demo` or `python3 dev.py test` on a machine with only Python.

Creates .venv (installing Debian's python3-venv with apt-get if the venv module is missing),
installs cdnstore with what the command needs (again only when pyproject.toml changed), then runs it.
Extra arguments go to the command: `python3 dev.py test -k servers -x`, `python3 dev.py demo --port 9000`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
EXTRAS = {"demo": "demo", "test": "test", "lint": "test", "typecheck": "test", "bench": "demo"}


def sh(*cmd: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


def apt_install(*packages: str) -> None:
    if shutil.which("apt-get") is None:
        sys.exit(f"dev.py: please install {' '.join(packages)} (no apt-get here)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    sh(*sudo, "apt-get", "update", "-q")
    sh(*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", *packages)


def ensure_venv() -> None:
    if PYTHON.exists():
        return
    if subprocess.run([sys.executable, "-m", "venv", str(VENV)], cwd=ROOT).returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        minor = f"python3.{sys.version_info.minor}-venv"
        apt_install("python3-venv", minor) if _apt_has(minor) else apt_install("python3-venv")
        sh(sys.executable, "-m", "venv", VENV)


def _apt_has(package: str) -> bool:
    return shutil.which("apt-cache") is not None and subprocess.run(
        ["apt-cache", "show", package], capture_output=True).returncode == 0


def ensure_installed(extra: str) -> None:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    stamp = VENV / f".installed-{extra}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    sh(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PYTHON, "-m", "pip", "install", "-q", "-e", f".[{extra}]")
    stamp.write_text(digest)


def ensure_chromium() -> None:
    """The browser tests (tests/test_web.py) drive Debian's Chromium; Playwright's own download can't run here."""
    if not Path("/usr/bin/chromium").exists():
        apt_install("chromium")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__.strip())
        print(f"\ncommands: {', '.join(EXTRAS)}")
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv()
    ensure_installed(EXTRAS[command])
    if command == "demo":
        return sh(VENV / "bin" / "cdnstore", "demo", *rest, check=False)
    if command == "test":
        ensure_chromium()
        return sh(PYTHON, "-m", "pytest", *rest, check=False)
    if command == "bench":
        if shutil.which("wrk") is None:
            apt_install("wrk")
        return sh(PYTHON, "bench/run.py", *rest, check=False)
    if command == "lint":
        return sh(PYTHON, "-m", "ruff", "check", "cdnstore", "tests", "bench", "dev.py", *rest, check=False)
    return sh(PYTHON, "-m", "mypy", "cdnstore", *rest, check=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
