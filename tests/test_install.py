"""The documented installs, run as written: docs/operations.md's "Install on a VM with systemd", step by
step up to the first storage server, and the README's "Running it for real".

Each runs in a sandbox of its own: the paths the steps name (/opt/cdnstore, /etc/cdnstore,
/var/lib/cdnstore, /etc/systemd/system) are moved under the test's folder, port 8080 to a free one, and
the example storage server's address and keys to a real SeaweedFS server's. What a test cannot do on the
machine it runs on is done by a stand-in, each defined below with its reason: no system user is made
(`useradd`, `chgrp`, the owners of `install -o/-g`, `sudo -u cdnstore` run as the test's own user), no
systemd runs the unit (`systemctl` runs deploy/cdnstore.service's commands with its environment, as
systemd would), and the checkout's virtual environment stands in for the one the steps make and install
into (installing every dependency again would take minutes). Every other command runs as it is written.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tarfile
import time
from pathlib import Path

import aiohttp
from apihelp import wait_for
from clihelp import by_marker, doc_blocks, json_values, marked
from weedbed import ACCESS_KEY, SECRET_KEY, new_bucket

from cdnstore.geo import default_database_path
from testbed.daemon import clean_env
from testbed.ports import unused_port
from testbed.seaweed import WeedCluster

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS, README, UNIT = ROOT / "docs" / "operations.md", ROOT / "README.md", ROOT / "deploy" / "cdnstore.service"
SANDBOXED = ("/opt/cdnstore", "/etc/cdnstore", "/var/lib/cdnstore", "/etc/systemd/system")
# The documented venv and its install, and what stands in for them (see the module's docstring).
VENV_STEPS = re.compile(
    r"^/usr/bin/python3 -m venv /opt/cdnstore/venv(?: &&|\n)\s*/opt/cdnstore/venv/bin/pip install \S+", re.M
)
VENV_STAND_IN = f"mkdir -p /opt/cdnstore && ln -s {ROOT / '.venv'} /opt/cdnstore/venv"  # (venv makes the parents)
ADMIN_PASSWORD = "a long admin password"

STAND_INS = r"""
useradd() { :; }                   # no system user on the test's machine
chgrp() { :; }                     # ... so no group to give files to
sudo() { [ "$1" = -u ] && shift 2; env "$@"; }   # "as the service's user": as the test's own
install() {                        # the same, without the owners (-o, -g) that do not exist here
  local kept=()
  while (($#)); do case $1 in -o|-g) shift 2 ;; *) kept+=("$1"); shift ;; esac; done
  command install "${kept[@]}"
}
systemctl() {                      # no systemd: the unit's commands, with its environment, as it would run them
  case $1 in
    enable) (UNIT_COMMANDS) >"$SANDBOX/service.log" 2>&1 & echo $! >"$SANDBOX/service.pid" ;;
    status) kill -0 "$(cat "$SANDBOX/service.pid")" && echo "cdnstore.service: active (running)" ;;
  esac
}
"""


def sandboxed(text: str, sandbox: Path, port: int) -> str:
    for path in SANDBOXED:
        text = text.replace(path, f"{sandbox}{path}")
    return text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("port = 8080", f"port = {port}")


def unit_commands() -> str:
    """What systemd does with deploy/cdnstore.service at `systemctl enable --now`: in its working directory,
    with its Environment= and EnvironmentFile= (optional when `-`), ExecStartPre= then ExecStart=."""
    unit = dict(re.findall(r"^(\w+)=(.*)$", UNIT.read_text(), re.M))
    env_file = unit["EnvironmentFile"].removeprefix("-")
    return (
        f"cd {unit['WorkingDirectory']} && set -a && {{ [ ! -e {env_file} ] || . {env_file}; }} && "
        f"export {unit['Environment']} && {unit['ExecStartPre']} && exec {unit['ExecStart']}"
    )


async def run_script(script: str, sandbox: Path, *, stdin: str = "", cwd: Path = ROOT) -> asyncio.subprocess.Process:
    for path in SANDBOXED[2:]:
        (sandbox / path.lstrip("/")).mkdir(parents=True, exist_ok=True)  # what a machine has already
    return await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=cwd,
        env={**clean_env(), "SANDBOX": str(sandbox)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


def install_block() -> str:
    blocks = [block for title, block in doc_blocks(OPERATIONS) if title == "Install on a VM with systemd"]
    assert len(blocks) == 1, blocks
    return blocks[0]


async def test_the_install_on_a_vm_runs_as_written_up_to_the_first_storage_server(
    weed: WeedCluster, tmp_path: Path
) -> None:
    sandbox, port, bucket = tmp_path / "machine", unused_port(), new_bucket()
    steps = install_block()
    assert VENV_STEPS.search(steps), "the venv steps changed: change their stand-in too"
    steps = VENV_STEPS.sub(VENV_STAND_IN, steps)
    for example, real in (
        ("https://s3-lisbon.example.com", weed.instance("newyork").endpoint_url),
        ('"bucket": "files"', f'"bucket": "{bucket}"'),
        ("LISBON_ACCESS_KEY", ACCESS_KEY),
        ("LISBON_SECRET_KEY", SECRET_KEY),
    ):
        assert example in steps, example
        steps = steps.replace(example, real)
    script = "set -eu\n" + STAND_INS.replace("UNIT_COMMANDS", unit_commands()) + marked(steps)
    proc = await run_script(sandboxed(script, sandbox, port).replace("/path/to/cdnstore", str(ROOT)), sandbox)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(f"{ADMIN_PASSWORD}\n".encode()), 120)
        said = out.decode()
        assert proc.returncode == 0, said + service_log(sandbox)
        step = by_marker(said)
        assert step["4"].rstrip().endswith("cdnstore: configuration OK"), step["4"]
        assert re.search(r"created user admin \(\S+\) as administrator", step["5"]), step["5"]
        assert "active (running)" in step["6"]
        healthy, unready = json_values(step["6"].split("active (running)")[1].strip())
        assert healthy == {"status": "ok"}
        assert unready["status"] == "unavailable" and unready["checks"]["database"]["ok"]
        assert unready["checks"]["servers"] == {"ok": False, "detail": "0 of 0 server(s) that are on are up"}
        server, ready = json_values(step["7"])
        assert (server["name"], server["zone"], server["health"]) == ("lisbon", "Europe", "up"), server
        assert ready["status"] == "ok"
        config = (sandbox / "etc/cdnstore/config.toml").read_text()
        assert f'path = "{sandbox}/var/lib/cdnstore/cdnstore.sqlite3"' in config
        assert (sandbox / "var/lib/cdnstore/cdnstore.sqlite3").exists()  # the database is where it says
        await a_downloaded_geoip_database_is_put_in_place(sandbox, port, tmp_path / "downloads")
    finally:
        await stop_service(sandbox)


async def a_downloaded_geoip_database_is_put_in_place(sandbox: Path, port: int, downloads: Path) -> None:
    """operations.md's "GeoIP data": a GeoLite2-City_<date>.tar.gz from MaxMind's download page (made here
    of the shipped database), put where the configuration says, and named by check-config."""
    (block,) = [b for title, b in doc_blocks(OPERATIONS) if title == "GeoIP data" and "tar -xzf" in b]
    folder = downloads / "GeoLite2-City_20181203"
    folder.mkdir(parents=True)
    shutil.copy(default_database_path(), folder / "GeoLite2-City.mmdb")
    with tarfile.open(downloads / "GeoLite2-City_20181203.tar.gz", "w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    shutil.rmtree(folder)
    proc = await run_script(sandboxed("set -eu\n" + STAND_INS + block, sandbox, port), sandbox, cwd=downloads)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    said = out.decode()
    assert proc.returncode == 0, said
    placed = sandbox / "var/lib/cdnstore/GeoLite2-City.mmdb"
    assert f"cdnstore: GeoIP database {placed}: GeoLite2-City, built 2018-07-03" in said, said
    assert said.rstrip().endswith("cdnstore: configuration OK"), said
    assert placed.read_bytes() == default_database_path().read_bytes()


def service_log(sandbox: Path) -> str:
    log = sandbox / "service.log"
    return f"\n--- the service's log ---\n{log.read_text()}" if log.exists() else ""


async def stop_service(sandbox: Path) -> None:
    """systemctl stop: SIGTERM, and the daemon ends within its grace."""
    pid_file = sandbox / "service.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 45  # the unit's TimeoutStopSec
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_readmes_short_install_runs_as_written(tmp_path: Path) -> None:
    sandbox, port = tmp_path / "machine", unused_port()
    (block,) = [block for title, block in doc_blocks(README) if title == "Running it for real"]
    assert VENV_STEPS.search(block), "the venv steps changed: change their stand-in too"
    script = "set -eu\n" + f"export CDNSTORE_HTTP_PORT={port}\n" + VENV_STEPS.sub(VENV_STAND_IN, block)
    proc = await run_script(sandboxed(script, sandbox, port), sandbox)
    try:
        async with aiohttp.ClientSession() as http:

            async def answers() -> tuple[int, dict[str, object]] | None:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        return resp.status, await resp.json()
                except aiohttp.ClientConnectionError:
                    assert proc.returncode is None, await proc.stdout.read() if proc.stdout else ""
                    return None

            found = await wait_for(answers, "cdnstore serve answering", 60, every=0.2)
        status, body = found
        assert status == 503 and body["status"] == "unavailable"  # as the README says: no server yet
        assert (sandbox / "var/lib/cdnstore/cdnstore.sqlite3").exists()
        assert (sandbox / "etc/cdnstore/config.toml").read_text() == (ROOT / "config.toml").read_text()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)  # Ctrl-C's equivalent for `cdnstore serve`
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    said = out.decode()
    assert re.search(r"created user admin \(\S+\) as administrator", said), said
    assert "Traceback" not in said, said
