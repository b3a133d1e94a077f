"""`python3 dev.py demo` stopped as a user stops it: Ctrl-C in a terminal, SIGINT or SIGTERM from a service
manager, the demo killed outright, and the next run after any of these.

Each test runs the real command (the venv exists by then: dev.py installs nothing) with its own data folder
and port, and looks for the storage servers it started by their data folder on their command line.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from apihelp import wait_for
from kinds import KINDS, UNIT
from reliability import ARTIFACT

from testbed.demo import DEMO_PASSWORD
from testbed.ports import unused_port

ROOT = Path(__file__).resolve().parent.parent
READY = "Press Ctrl-C to stop."
# A stop takes a second or two (the storage servers stop at once, in parallel). The bound is loose for a
# machine busy with other suites; what it rules out is the 10 s a storage server hanging on its way out
# used to cost (its "ignored SIGTERM for 10 s" line is looked for too).
STOPS_WITHIN = 6.0


def weed_pids(folder: Path) -> list[int]:
    """The running weed processes whose data lives under `folder` (any run's)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if Path(argv[0].decode()).name == "weed" and str(folder).encode() in b" ".join(argv) and state != "Z":
            found.append(int(proc.name))
    return found


@dataclass
class Demo:
    proc: asyncio.subprocess.Process
    folder: Path
    out: str = ""
    rest: str = field(default="")

    async def read_until(self, text: str, within: float = 90.0) -> None:
        assert self.proc.stdout is not None
        while text not in self.out:
            line = await asyncio.wait_for(self.proc.stdout.readline(), within)
            assert line, f"the demo ended before {text!r}:\n{self.out}"
            self.out += line.decode()

    async def finish(self, within: float = 90.0) -> int:
        """Wait for the exit; all its output is then in `output`."""
        tail, _ = await asyncio.wait_for(self.proc.communicate(), within)
        self.rest = tail.decode()
        assert self.proc.returncode is not None
        return self.proc.returncode

    @property
    def output(self) -> str:
        return self.out + self.rest


@asynccontextmanager
async def demo(folder: Path, *args: str, port: int | None = None, via: str = "dev.py") -> AsyncIterator[Demo]:
    """`python3 dev.py demo --dir folder --port port` (or `python -m cdnstore demo`), in a session of its own
    like a shell job, so that a signal to its whole group is what a terminal's Ctrl-C does."""
    command = (
        [sys.executable, "dev.py", "demo"]
        if via == "dev.py"
        else [str(ROOT / ".venv" / "bin" / "python"), "-m", "cdnstore", "demo"]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDNSTORE_")}
    earlier = set(weed_pids(folder))  # another demo's, on the same folder
    proc = await asyncio.create_subprocess_exec(
        *command,
        "--dir",
        str(folder),
        "--port",
        str(port or unused_port()),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    run = Demo(proc, folder)
    try:
        yield run
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        for pid in set(weed_pids(folder)) - earlier:  # never leave a failed test's servers behind
            os.kill(pid, signal.SIGKILL)


def assert_stopped_cleanly(run: Demo, code: int, *, quietly: bool = True) -> None:
    assert code == 0, run.output
    assert "Traceback" not in run.output, run.output
    assert "stopping ..." in run.output and run.output.rstrip().endswith("stopped"), run.output
    if quietly:  # nothing else on the way out (unless the log was asked for on the terminal)
        assert run.output.rstrip().endswith("\nstopping ...\nstopped"), run.output
    assert weed_pids(run.folder) == []


async def assert_url_and_credentials_come_last(run: Demo) -> None:
    """The terminal shows what to open and how to sign in last, and no request line; the requests are in
    the log file it names."""
    lines = run.out.rstrip().splitlines()
    assert lines[-1] == READY and lines[-4].startswith("cdnstore demo is running at http://127.0.0.1:"), run.out
    assert lines[-3].strip().startswith("log in as  admin / ") and lines[-2].strip().startswith("or  user / ")
    log = run.folder / "cdnstore.log"
    assert f"log: {log} (every request" in run.out
    url = re.findall(r"running at (http://\S+)/", run.out)[0]
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
        assert resp.status == 200
    await wait_for(lambda: "INFO cdnstore.requests: GET /healthz 200" in log.read_text(), "the request logged", 20)
    assert "cdnstore.requests" not in run.output and " INFO " not in run.output, run.output


@pytest.mark.parametrize(
    ("how", "sig"), [("terminal", signal.SIGINT), ("dev.py", signal.SIGINT), ("dev.py", signal.SIGTERM)]
)
async def test_ctrl_c_sigint_or_sigterm_stops_the_demo_and_its_storage_servers_cleanly(
    tmp_path: Path, how: str, sig: signal.Signals
) -> None:
    async with demo(tmp_path / "demo") as run:
        await run.read_until(READY)
        assert "pip install" not in run.out  # the venv was there: nothing reinstalled
        assert " 404 " not in run.out  # no storage event answered "unknown server" while starting
        assert len(weed_pids(run.folder)) == 5
        await assert_url_and_credentials_come_last(run)
        asked = time.monotonic()
        if how == "terminal":  # Ctrl-C: the whole foreground process group gets SIGINT at once
            os.killpg(run.proc.pid, sig)
        else:  # a service manager, or kill -INT <pid of dev.py>
            run.proc.send_signal(sig)
        code = await run.finish()
        took = time.monotonic() - asked
        assert_stopped_cleanly(run, code)
        assert "ignored SIGTERM" not in run.output and "ignored SIGTERM" not in log_of(run)
        assert took < STOPS_WITHIN, f"the demo took {took:.1f} s to stop"


def log_of(run: Demo) -> str:
    return (run.folder / "cdnstore.log").read_text()


async def test_a_file_uploaded_before_ctrl_c_is_there_after_the_next_start(tmp_path: Path) -> None:
    """Losing nothing: the file and its copy, stored before a Ctrl-C, download again after the next start."""
    folder, data = tmp_path / "demo", os.urandom(100_000)
    async with demo(folder) as run:
        await run.read_until(READY)
        url = re.findall(r"running at (http://\S+)/", run.out)[0]
        async with aiohttp.ClientSession() as http:
            user = await login(http, url, "user")
            file_id = await upload(http, url, user, data)
            admin = await login(http, url, "admin")
            await wait_for(lambda: both_usa_servers_hold(http, url, admin, file_id), "both USA servers holding it", 30)
        os.killpg(run.proc.pid, signal.SIGINT)
        assert_stopped_cleanly(run, await run.finish())
    async with demo(folder, "--verbose") as again:  # (and the log on the terminal, as asked)
        await again.read_until(READY)
        url = re.findall(r"running at (http://\S+)/", again.out)[0]
        async with aiohttp.ClientSession() as http:
            user = await login(http, url, "user")
            async with http.get(f"{url}/api/v1/files/{file_id}/download", headers=user) as resp:
                assert resp.status == 200, await resp.text()
                link = await resp.json()
            async with http.get(link["url"]) as resp:
                assert resp.status == 200 and await resp.read() == data
            admin = await login(http, url, "admin")
            assert await both_usa_servers_hold(http, url, admin, file_id)  # the copy too, as it was
        again.proc.send_signal(signal.SIGINT)
        assert_stopped_cleanly(again, await again.finish(), quietly=False)
    assert f"INFO cdnstore.requests: GET /api/v1/files/{file_id}/download 200" in again.output


async def login(http: aiohttp.ClientSession, url: str, username: str) -> dict[str, str]:
    """The headers of `username`'s calls."""
    body = {"username": username, "password": DEMO_PASSWORD}
    async with http.post(f"{url}/api/v1/auth/login", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def upload(http: aiohttp.ClientSession, url: str, headers: dict[str, str], data: bytes) -> str:
    """A file announced, PUT to its storage server and confirmed: its id."""
    body = {"name": "kept.bin", "size": len(data)}
    async with http.post(f"{url}/api/v1/files", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        announced = await resp.json()
    target = announced["upload"]
    async with http.put(target["url"], data=data, headers=target["headers"]) as resp:
        assert resp.status == 200, await resp.text()
    async with http.post(f"{url}/api/v1/files/{announced['file']['id']}/complete", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    return str(announced["file"]["id"])


async def both_usa_servers_hold(http: aiohttp.ClientSession, url: str, admin: dict[str, str], file_id: str) -> bool:
    async with http.get(f"{url}/api/v1/files/{file_id}/servers", headers=admin) as resp:
        items = (await resp.json())["items"]
    return sorted((i["server"]["name"], i["status"]) for i in items) == [("dallas", "present"), ("newyork", "present")]


async def test_a_demo_killed_outright_takes_its_storage_servers_with_it_and_the_next_run_starts(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    async with demo(folder, via="cdnstore") as run:
        await run.read_until(READY)
        assert len(weed_pids(folder)) == 5
        run.proc.kill()  # SIGKILL: no shutdown of its own at all
        await run.proc.wait()
        await wait_for(lambda: weed_pids(folder) == [], "every weed gone", 20)
    async with demo(folder) as again:  # starts; and when dev.py itself is killed, the demo stops cleanly
        await again.read_until(READY)
        again.proc.kill()
        await asyncio.wait_for(again.finish(), 60)  # the output ends when the demo has exited too
        assert again.output.rstrip().endswith("stopped") and "Traceback" not in again.output, again.output
        assert weed_pids(folder) == []


ORPHAN_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
import testbed.seaweed as seaweed
seaweed._die_with_parent = lambda: None  # as before the fix: servers outlived a crashed demo
async def main():
    for name in ("capetown", "dallas"):
        cluster = seaweed.WeedCluster(Path(sys.argv[1]), [name], access_key="cdnstore",
                                      secret_key="an-old-secret-123")
        await cluster.start()
        seaweed.OWNER_ENV = "NOT_SET"  # dallas: as started by a cdnstore that did not mark its servers
    os._exit(0)  # crash: nobody stops them
asyncio.run(main())
"""


async def test_storage_servers_left_by_a_crashed_run_are_stopped_and_the_demo_starts(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    crashed = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "python"), "-c", ORPHAN_SCRIPT, str(folder / "s3"), cwd=ROOT
    )
    assert await asyncio.wait_for(crashed.wait(), 60) == 0
    orphans = weed_pids(folder)
    assert len(orphans) == 2
    try:
        async with demo(folder) as run:
            await run.read_until(READY)
            assert all(f"stopping SeaweedFS pid {pid}, left running on" in run.out for pid in orphans), run.out
            assert not set(orphans) & set(weed_pids(folder))
            assert "goroutine" not in run.out and "Traceback" not in run.out
            run.proc.send_signal(signal.SIGINT)
            assert_stopped_cleanly(run, await run.finish())
    finally:
        for pid in set(orphans) & set(weed_pids(folder)):  # the demo failed to: do not leave them running
            os.kill(pid, signal.SIGKILL)


async def test_a_second_demo_on_a_busy_port_or_folder_says_what_to_do_in_one_line(tmp_path: Path) -> None:
    folder, port = tmp_path / "demo", unused_port()
    async with demo(folder, port=port) as first:
        await first.read_until(READY)
        servers = sorted(weed_pids(folder))
        async with demo(tmp_path / "other", port=port) as same_port:
            assert await same_port.finish() == 1
            assert f"cdnstore demo: port {port} on 127.0.0.1 is in use" in same_port.output
        async with demo(folder) as same_folder:
            assert await same_folder.finish() == 1
            assert "of a run that is still going: stop that run, or use another directory" in same_folder.output
        for refused in (same_port, same_folder):
            assert "Traceback" not in refused.output and "goroutine" not in refused.output, refused.output
            assert refused.output.count("cdnstore demo: ") == 1
        assert sorted(weed_pids(folder)) == servers  # the running demo was left alone
        assert weed_pids(tmp_path / "other") == []
        first.proc.send_signal(signal.SIGINT)
        assert_stopped_cleanly(first, await first.finish())


def last_written(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


async def test_dev_py_test_fast_runs_the_unit_kind_only() -> None:
    """The inner loop: `python3 dev.py test --fast` selects every unit test and nothing that needs servers
    (and merely collecting them saves no reliability figures)."""
    saved_before = last_written(ARTIFACT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "dev.py",
        "test",
        "--fast",
        "--collect-only",
        "-q",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    chosen = {Path(line.split("::")[0]).stem for line in out.decode().splitlines() if "::" in line}
    assert proc.returncode == 0, out.decode()
    assert chosen == {module for module, kind in KINDS.items() if kind == UNIT}, out.decode()
    assert last_written(ARTIFACT) == saved_before


async def dev_py(*command: str) -> tuple[int | None, str]:
    """Run `python3 dev.py <command>` to its end: its exit code and its output (stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "dev.py",
        *command,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode()


async def test_dev_py_schema_as_docs_architecture_shows_it_leaves_fresh_schema_files_as_they_are() -> None:
    """`python3 dev.py schema` writes the schema files from the migrations, `--check` says whether they are
    stale: on this tree, neither changes a byte (a stale file is put back as it was, and the test fails)."""
    files = [ROOT / "schema.sql", ROOT / "cdnstore" / "schema_postgres.sql"]
    before = [path.read_bytes() for path in files]
    try:
        for command in (["schema", "--check"], ["schema"]):
            code, out = await dev_py(*command)
            assert code == 0, out
            assert "up to date" in out or command[-1] == "--check", out
        assert [path.read_bytes() for path in files] == before
    finally:
        for path, text in zip(files, before, strict=True):
            path.write_bytes(text)


async def test_dev_py_types_as_the_docs_show_it_fails_on_a_stale_types_js_and_writes_it_afresh() -> None:
    """`python3 dev.py types --check` (what `dev.py lint` runs) exits 1 naming the command while web/types.js is
    stale, 0 once `python3 dev.py types` wrote it, byte for byte what was committed (the file is put back as it
    was in any case)."""
    path = ROOT / "cdnstore" / "web" / "types.js"
    before = path.read_bytes()
    try:
        assert (await dev_py("types", "--check"))[0] == 0
        path.write_bytes(before.replace(b" * @typedef {object} File\n", b" * @typedef {object} Fiel\n"))
        code, out = await dev_py("types", "--check")
        assert code == 1 and "cdnstore/web/types.js is stale: run `python3 dev.py types`" in out, out
        code, out = await dev_py("types")
        assert code == 0 and "wrote cdnstore/web/types.js" in out, out
        assert path.read_bytes() == before
    finally:
        path.write_bytes(before)
