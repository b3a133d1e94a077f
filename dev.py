#!/usr/bin/env python3
"""Bootstrap and run: `python3 dev.py demo` or `python3 dev.py test` on a machine with only Python.

Creates .venv (installing Debian's python3-venv with apt-get if the venv module is missing),
installs cdnstore with what the command needs and, beside it, its harnesses (testbed/: the storage
servers, PostgreSQL and the demo; again only when a pyproject.toml changed), then runs it.
Extra arguments go to the command: `python3 dev.py test -k servers -x`, `python3 dev.py demo --port 9000`.
`python3 dev.py test --fast` runs the unit tests only (minutes, no storage server started);
`python3 dev.py reliability` writes the figures of the last passing test run into docs/reliability.md;
`python3 dev.py schema` writes the schema files from the migrations (`--check`: exits 1 when one is stale);
`python3 dev.py types` writes cdnstore/web/types.js from the OpenAPI document (`--check`: exits 1 when stale).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
EXTRAS = {
    "demo": "demo",
    "test": "test",
    "lint": "test",
    "typecheck": "test",
    "bench": "demo",
    "schema": "test",
    "types": "test",
}
# The harnesses (testbed/: storage servers, PostgreSQL, the fault proxy, the demo) are a distribution of their
# own, kept out of the product's install; every command here needs them, installed beside cdnstore.
TESTBED = ROOT / "testbed"
# Every folder of Python code in the checkout: what lint and typecheck cover (tests/test_layers.py checks it).
SOURCES = ("cdnstore", "testbed", "tests", "bench", "dev.py")
# After Ctrl-C the demo stops its daemon and its five storage servers in a second or two; only a demo still
# running after this long (something is badly wrong) is terminated, then killed.
DEMO_STOP_GRACE = 60.0
DEMO_KILL_AFTER = 15.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def sh(*cmd: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


def run_demo(*cmd: str | Path) -> int:
    """Run the demo until it exits; SIGINT/SIGTERM/SIGHUP to dev.py are passed on and the demo's own
    shutdown is waited for (no traceback, no storage server left running). Exit code: the demo's, which is
    0 after a clean stop, Ctrl-C included.

    The demo runs in a process group of its own, so that a terminal's Ctrl-C (sent to the foreground
    group) reaches it once, through dev.py, which alone decides how long to wait; and it gets SIGTERM
    should dev.py itself be killed."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    child = subprocess.Popen(
        [str(c) for c in cmd], cwd=ROOT, stdin=subprocess.DEVNULL, process_group=0, preexec_fn=_die_with_parent
    )  # stdin: a background group must not read the tty
    asked: list[float] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        asked.append(time.monotonic())
        with contextlib.suppress(ProcessLookupError):  # SIGHUP (terminal closed) would kill it unclean
            child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            return _exit_code(child.wait(0.2))  # a slice: a blocking wait would not end on a signal
        except subprocess.TimeoutExpired:
            if asked and time.monotonic() - asked[0] > DEMO_STOP_GRACE:
                break
    print(f"dev.py: the demo did not stop within {DEMO_STOP_GRACE:.0f} s; terminating it", flush=True)
    child.terminate()
    try:
        return _exit_code(child.wait(DEMO_KILL_AFTER))
    except subprocess.TimeoutExpired:
        child.kill()
        return _exit_code(child.wait())


def _exit_code(returncode: int) -> int:
    """As a shell reports it: 128 + N for a child ended by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when dev.py dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def apt_install(*packages: str, recommends: bool = True) -> None:
    if shutil.which("apt-get") is None:
        sys.exit(f"dev.py: please install {' '.join(packages)} (no apt-get here)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    sh(*sudo, "apt-get", "update", "-q")
    options = () if recommends else ("--no-install-recommends",)
    sh(*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", *options, *packages)


def ensure_venv() -> None:
    if PYTHON.exists():
        return
    if subprocess.run([sys.executable, "-m", "venv", str(VENV)], cwd=ROOT).returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        minor = f"python3.{sys.version_info.minor}-venv"
        apt_install("python3-venv", minor) if _apt_has(minor) else apt_install("python3-venv")
        sh(sys.executable, "-m", "venv", VENV)


def _apt_has(package: str) -> bool:
    return (
        shutil.which("apt-cache") is not None
        and subprocess.run(["apt-cache", "show", package], capture_output=True).returncode == 0
    )


# A venv made for the tests has all the demo needs: the demo runs in it as it is (and the tests that run
# `dev.py demo` do not reinstall anything).
SUPERSETS = {"demo": ("test",)}


def ensure_installed(extra: str) -> None:
    if any(_installed(e) for e in (extra, *SUPERSETS.get(extra, ()))):
        return
    sh(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PYTHON, "-m", "pip", "install", "-q", "-e", f".[{extra}]", "-e", TESTBED)
    (VENV / f".installed-{extra}").write_text(_digest(extra))


def _installed(extra: str) -> bool:
    """Is `extra` installed from the current pyproject.toml?"""
    stamp = VENV / f".installed-{extra}"
    return stamp.exists() and stamp.read_text() == _digest(extra)


def _digest(extra: str) -> str:
    manifests = (ROOT / "pyproject.toml").read_bytes() + (TESTBED / "pyproject.toml").read_bytes()
    return hashlib.sha256(manifests + extra.encode()).hexdigest()


def ensure_chromium() -> None:
    """The browser tests (tests/test_web.py) drive Debian's Chromium; Playwright's own download can't run here."""
    if not Path("/usr/bin/chromium").exists():
        apt_install("chromium")


def ensure_postgresql() -> None:
    """The API, job-queue and database tests also run on PostgreSQL: a throwaway cluster from Debian's
    server binaries (testbed/postgres.py)."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        apt_install("postgresql")


# The Ceph RGW test bed (testbed/rgw.py): a mon, a memstore OSD and radosgw from Debian's packages, without
# their recommends (smartmontools, lvm2, nvme-cli...: nothing the bed uses).
CEPH_PACKAGES = ("radosgw", "ceph-mon", "ceph-osd", "ceph-common")
CEPH_COMMANDS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")


def ensure_ceph() -> None:
    """The storage contract, events and mixed-zone tests also run against a real Ceph RGW."""
    if any(shutil.which(c) is None for c in CEPH_COMMANDS):
        apt_install(*CEPH_PACKAGES, recommends=False)


# Plugins the unit tests never use (hypothesis drives only the schemathesis run, an integration test): loading them
# imports and assert-rewrites some 240 modules in every pytest process, ~2 s of CPU each, cached nowhere when
# PYTHONDONTWRITEBYTECODE is set.
FAST_UNUSED_PLUGINS = ("-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio")


def run_tests(args: list[str]) -> int:
    """The whole suite; with --fast the unit kind only (tests/kinds.py): no server, no browser, on a pytest-xdist
    worker per core (`-n 0`: in this process)."""
    if "--fast" in args:
        rest = [a for a in args if a != "--fast"]
        workers = [] if any(a.startswith(("-n", "--numprocesses")) for a in rest) else ["-n", "auto"]
        args = ["-m", "unit", *FAST_UNUSED_PLUGINS, *workers, *rest]
    else:
        ensure_chromium()
        ensure_postgresql()
        ensure_ceph()
        npm_package(OIDC_PROVIDER)
    return sh(PYTHON, "-m", "pytest", *args, check=False)


# Node packages, installed from npm (pinned) into a local folder that is never committed: TypeScript's tsc checks
# the page's scripts (cdnstore/web/*.js carry JSDoc types, jsconfig.json); the single sign-on tests run a real
# OpenID provider, panva's certified oidc-provider, with Debian's Node (testbed/oidc_provider.py).
NODE_DIR = ROOT / ".cache" / "node"
TSC = NODE_DIR / "node_modules" / ".bin" / "tsc"
TYPESCRIPT = "typescript@5.6.3"
OIDC_PROVIDER = "oidc-provider@9.13.3"


def ensure_node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        apt_install("nodejs", "npm")


def npm_package(spec: str) -> Path:
    """The folder of the npm package `spec` (name@version) under .cache/node, installed there when it is missing
    or of another version."""
    name, _, version = spec.rpartition("@")
    folder = NODE_DIR / "node_modules" / name
    manifest = folder / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text()).get("version") != version:
        ensure_node()
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        sh("npm", "install", "--prefix", NODE_DIR, "--no-audit", "--no-fund", "--silent", "--save-exact", spec)
    return folder


def check_page() -> int:
    npm_package(TYPESCRIPT)
    return sh(TSC, "-p", "jsconfig.json", check=False)


def main(argv: list[str]) -> int:
    if argv[:1] == ["reliability"]:  # the last passing run's figures (artifacts/) into docs/reliability.md
        return sh(sys.executable, "tests/reliability.py", "--write", check=False)
    if not argv or argv[0] not in EXTRAS:
        print(__doc__.strip())
        print(f"\ncommands: {', '.join(EXTRAS)}, reliability")
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv()
    ensure_installed(EXTRAS[command])
    if command == "demo":
        return run_demo(VENV / "bin" / "cdnstore", "demo", *rest)
    if command == "test":
        return run_tests(rest)
    if command == "bench":
        if shutil.which("wrk") is None:
            apt_install("wrk")
        if shutil.which("valgrind") is None:  # scenario E counts instructions under callgrind
            apt_install("valgrind")
        return sh(PYTHON, "-m", "bench.run", *rest, check=False)
    if command == "schema":  # schema.sql and schema_postgres.sql, generated from the migrations (cdnstore/db/schema.py)
        return sh(PYTHON, "-m", "cdnstore.db.schema", *rest, check=False)
    if command == "types":  # the page's JSDoc types of the answers, generated from the OpenAPI document
        return sh(PYTHON, "-m", "cdnstore.web_types", *rest, check=False)
    if command == "lint":
        ruff = sh(PYTHON, "-m", "ruff", "check", *SOURCES, *rest, check=False)
        formatted = sh(PYTHON, "-m", "ruff", "format", "--check", *SOURCES, check=False)
        # the import contract: docs/architecture.md's module table names every module, nothing imports upward
        layers = sh(PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_layers.py", check=False)
        schema = sh(PYTHON, "-m", "cdnstore.db.schema", "--check", check=False)  # the schema files not stale
        types = sh(PYTHON, "-m", "cdnstore.web_types", "--check", check=False)  # web/types.js not stale
        return ruff or formatted or layers or schema or types or check_page()
    return sh(PYTHON, "-m", "mypy", *SOURCES, *rest, check=False)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C while installing: the command it interrupted has said enough
        sys.exit(130)
