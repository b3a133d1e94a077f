"""A throwaway single-node Ceph RADOS Gateway (Debian's Ceph 16.2 "Pacific") for the tests, beside the
SeaweedFS bed: one ceph-mon, one ceph-osd keeping objects in its RAM (memstore), no ceph-mgr, no cephx,
and radosgw serving S3 (and RGW's SNS-like topic API for bucket notifications) on 127.0.0.1.

    async with RgwBed(tmp_dir, access_key="...", secret_key="...") as rgw:
        target = rgw.target("some-bucket")                  # an S3Target for cdnstore
        await rgw.notify(bucket, "http://127.0.0.1:8080/hook", opaque_data="token")

It starts in about a second (its first signed ListBuckets answers), and all its state is in one folder:
`ceph.conf`, `log/` (every daemon's log and output), `run/` (admin sockets), `mon/`, `osd/`. Each start is
a fresh cluster (the folder must be empty, absent, or an earlier bed's, which is wiped). Every daemon binds
127.0.0.1 only, on ports probed free (S3 = port, mon = port + 1, the OSD picks 4 in port + 2 .. port + 11),
and dies with the process that started it (PR_SET_PDEATHSIG: even a test run killed with SIGKILL leaves
none; start the bed from the event loop's thread, as the kernel ties the signal to the starting thread).
Daemons left on the folder by an earlier run that crashed are killed before the new start; so are those
of a bed whose starting process is gone, wherever they run. Nothing is written under /etc, /var/lib or
/var/log.

Why each setting: /work/shared/notes/ceph-rgw.md (verified on this machine); the short reasons are
repeated next to them. Of cdnstore it uses only S3Target and Presigner.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import random
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from cdnstore.models import S3Target
from cdnstore.presign import Presigner

from .ports import port_free

log = logging.getLogger(__name__)

ACCESS_KEY = "rgwbedaccesskey"
SECRET_KEY = "rgwbedsecretkey0123456789"
# From Debian's radosgw, ceph-mon, ceph-osd and ceph-common, which `python3 dev.py test` installs (ensure_ceph).
COMMANDS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
FRONTENDS = ("beast", "civetweb")
READY_TIMEOUT = 60.0
MEM_BYTES = 2 << 30  # memstore's capacity: only what is stored is used
# The daemons carry the pid of the process that started them: a later start can tell the daemons of a
# crashed run (their starter is gone) from those of a run that still goes on.
OWNER_ENV = "CDNSTORE_RGW_OWNER"
MARKER = ".rgw-bed"  # in a bed's folder: it may be wiped by the next start
_DAEMONS = ("mon", "osd", "rgw")
_BINARIES = {"ceph-mon", "ceph-osd", "radosgw"}
# Slots of 12 ports (S3, mon, 10 for the OSD) below SeaweedFS's range (11000+) and far below Linux's
# ephemeral ports (32768+), so an outgoing connection cannot take one between the probe and the bind.
_BASE_MIN, _BASE_MAX, _BASE_STEP, _PORTS = 6000, 10990, 12, 12
_SUN_PATH_MAX = 107
_RGW_STOP_GRACE = 1.5  # a clean radosgw exit waits out its lifecycle thread (2-4.5 s): its data is in the OSD
_STOP_GRACE = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class RgwError(RuntimeError):
    """The bed could not be started; the message carries the failing daemon's log tail."""


def missing_commands() -> list[str]:
    """The Ceph commands this machine lacks (empty: the bed can start)."""
    return [c for c in COMMANDS if shutil.which(c) is None]


def pick_port() -> int:
    """A base port whose 12 ports are all free, scanning the slots from a random one."""
    slots = (_BASE_MAX - _BASE_MIN) // _BASE_STEP
    start = random.randrange(slots)
    for i in range(slots):
        base = _BASE_MIN + ((start + i) % slots) * _BASE_STEP
        if all(port_free(base + off) for off in range(_PORTS)):
            return base
    raise RgwError("no 12 free ports for a Ceph RGW bed on 127.0.0.1")


def ceph_conf(folder: Path, port: int, *, fsid: str, mem_bytes: int, frontend: str, extra: Sequence[str]) -> str:
    """The whole cluster's configuration: everything on 127.0.0.1 and in `folder`."""
    if frontend == "beast":
        endpoint = f"beast endpoint=127.0.0.1:{port}"
    elif frontend == "civetweb":
        endpoint = f"civetweb port=127.0.0.1:{port} num_threads=64"
    else:
        raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
    d = folder
    lines = [
        "[global]",
        f"fsid = {fsid}",
        f"mon host = [v2:127.0.0.1:{port + 1}]",
        "mon initial members = a",
        "public addr = 127.0.0.1",
        "cluster addr = 127.0.0.1",
        "ms bind msgr1 = false",
        f"ms bind port min = {port + 2}",
        f"ms bind port max = {port + _PORTS - 1}",
        "auth cluster required = none",
        "auth service required = none",
        "auth client required = none",
        # Without cephx, msgr2's "secure" mode (radosgw's default) is impossible: it would retry forever (-13).
        *(f"ms {m} mode = crc" for m in ("mon client", "mon cluster", "mon service", "client", "cluster", "service")),
        f"log file = {d}/log/$name.log",
        # The mon's cluster and audit logs default to /var/log/ceph.
        f"mon cluster log file = default={d}/log/ceph.$channel.log cluster={d}/log/ceph.log",
        f"admin socket = {d}/run/$name.$pid.asok",
        f"pid file = {d}/run/$name.pid",
        f"run dir = {d}/run",
        f"crash dir = {d}/crash",
        f"mon data = {d}/mon/$name",
        f"osd data = {d}/osd/$name",
        f"keyring = {d}/keyring",
        "osd objectstore = memstore",
        f"memstore device bytes = {mem_bytes}",
        "osd pool default size = 1",
        "osd pool default min size = 1",
        "osd pool default pg num = 8",
        "osd pool default pgp num = 8",
        "osd pool default pg autoscale mode = off",
        "osd crush chooseleaf type = 0",
        "osd crush initial weight = 1",
        "mon allow pool size one = true",
        "mon allow pool delete = true",
        "mon max pg per osd = 1000",
        "mon warn on pool no redundancy = false",
        "mon warn on insecure global id reclaim = false",
        "mon warn on insecure global id reclaim allowed = false",
        "mon data avail warn = 2",
        "mon data avail crit = 1",
        # One mon: map changes need no batching (the 1 s default made every pool creation wait a second).
        "paxos propose interval = 0.05",
        # radosgw may get an osdmap where the new OSD is not up yet and asks again on the next tick (5 s).
        "objecter tick interval = 0.5",
        "osd fast shutdown notify mon = false",
        "osd mon shutdown timeout = 0.5",
        # A radosgw killed (or restarted: its clean exit takes seconds) leaves its watches on the cluster's
        # notify objects; until the OSD drops them, every metadata write of the next radosgw (a bucket
        # created) waits for the dead one's answer. 30 s by default: a test after a restart timed out.
        "osd client watch timeout = 5",
        "[client.rgw.a]",
        f"rgw frontends = {endpoint}",
        f"rgw data = {d}/rgw",
        "rgw thread pool size = 64",
        # Overwritten and deleted data would stay in the OSD's RAM for 2 h by default.
        "rgw gc obj min wait = 60",
        "rgw gc processor period = 60",
        *extra,  # a repeated option wins over the one above
    ]
    return "\n".join(lines) + "\n"


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGKILL when the starting thread ends (a test run killed with -9 must not
    leave daemons). If the parent is already gone (it died between fork and here), exit at once."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Does process `pid` run (a zombie does not: it has let go of its ports)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _orphaned(pid: int) -> bool:
    """Is this bed daemon left behind by a run that is gone (its starter is neither alive nor its parent)?"""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    owner = next((e.partition(b"=")[2] for e in environ if e.startswith(f"{OWNER_ENV}=".encode())), b"")
    return owner.isdigit() and int(owner) != ppid and not alive(int(owner))


def _bed_daemons(conf: Path | None = None) -> list[int]:
    """Pids of running Ceph daemons of a bed: those on `conf`, or (None) every bed's that carries OWNER_ENV."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        argv = _argv(int(proc.name))
        if not argv or Path(argv[0].decode(errors="replace")).name not in _BINARIES:
            continue
        if conf is not None and str(conf).encode() not in argv:
            continue
        if conf is None:
            with contextlib.suppress(OSError):
                if f"{OWNER_ENV}=".encode() not in (proc / "environ").read_bytes():
                    continue
        found.append(int(proc.name))
    return found


async def _kill_pids(pids: Sequence[int], grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, processes that are not our children (so: poll)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, _STOP_GRACE)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            await asyncio.sleep(0.05)
        if not any(alive(p) for p in pids):
            return


async def clear_leftovers(folder: Path) -> None:
    """Kill the daemons of crashed runs: any on `folder` (refused if their run still goes on), and any
    bed's whose starting process is gone."""
    conf = folder / "ceph.conf"
    here = _bed_daemons(conf)
    busy = [p for p in here if not _orphaned(p)]
    if busy:
        raise RgwError(f"{folder} is in use by Ceph daemons {busy} of a run that is still going")
    stray = sorted(set(here) | {p for p in _bed_daemons() if _orphaned(p)})
    if stray:
        log.warning("stopping Ceph RGW bed daemons %s left running by a crashed run", stray)
        await _kill_pids(stray, grace=0)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


class RgwBed:
    """One single-node Ceph cluster with radosgw, its state in `folder`."""

    def __init__(
        self,
        folder: Path,
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        frontend: str = "beast",
        mem_bytes: int = MEM_BYTES,
        extra_conf: Sequence[str] = (),
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
        self.folder = Path(folder).resolve()
        if len(str(self.folder / "run" / "client.rgw.a.4194304.asok")) > _SUN_PATH_MAX:
            raise ValueError(f"{self.folder} is too long for Ceph's admin sockets; use a shorter folder")
        self.access_key = access_key
        self.secret_key = secret_key
        self.frontend = frontend
        self.mem_bytes = mem_bytes
        self.extra_conf = tuple(extra_conf)
        self.ready_timeout = ready_timeout
        self.port = 0
        self._processes: dict[str, asyncio.subprocess.Process] = {}

    # --- what tests use ------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if not self.port:
            raise RgwError("the RGW bed is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.folder / "ceph.conf"

    @property
    def running(self) -> bool:
        """All three daemons run."""
        return all(name in self._processes and self._processes[name].returncode is None for name in _DAEMONS)

    def target(self, bucket: str, *, region: str = "us-east-1") -> S3Target:
        """An S3Target for `bucket` with the bed's user (RGW accepts any signing region)."""
        return S3Target(self.endpoint_url, bucket, region, self.access_key, self.secret_key)

    def log_path(self, daemon: str) -> Path:
        """A daemon's log: `mon`, `osd` or `rgw`."""
        return self.folder / "log" / {"mon": "mon.a.log", "osd": "osd.0.log", "rgw": "client.rgw.a.log"}[daemon]

    async def __aenter__(self) -> RgwBed:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        """Build a fresh cluster in the folder and return once a signed S3 request succeeds."""
        missing = missing_commands()
        if missing:
            raise RgwError(f"no {', '.join(missing)}: `python3 dev.py test` installs Debian's Ceph packages")
        await clear_leftovers(self.folder)
        self._fresh_folder()
        self.port = pick_port()
        started = time.monotonic()
        try:
            await self._build()
        except BaseException:
            await self.stop()
            raise
        log.info("Ceph RGW ready on %s after %.2f s", self.endpoint_url, time.monotonic() - started)

    async def stop(self) -> None:
        """radosgw first (its shutdown talks to the OSD and would hang without it), then the OSD and the mon.
        The data goes with them (memstore)."""
        await self._terminate(["rgw"], _RGW_STOP_GRACE)
        await self._terminate(["osd", "mon"], _STOP_GRACE)

    async def kill_rgw(self) -> None:
        """SIGKILL radosgw alone (a crash or an outage of the S3 server); the cluster and its data stay."""
        await self._terminate(["rgw"], 0)

    async def restart_rgw(self) -> None:
        """Stop radosgw alone (if it runs) and start it again (the cluster and its data stay); returns once S3
        answers. Also unsticks a persistent topic's delivery, which RGW 16.2 stalls after a failed push."""
        await self._terminate(["rgw"], _RGW_STOP_GRACE)
        await self._spawn("rgw", "radosgw", "-c", str(self.conf), "-n", "client.rgw.a", "-f")
        await self._wait_s3()
        await self._wait_writable()

    async def _wait_writable(self) -> None:
        """Until a bucket can be created (and removed): the watches a killed radosgw left are gone."""
        deadline = time.monotonic() + self.ready_timeout
        async with self.client("s3") as s3:
            while True:
                probe = f"bed-ready-{uuid.uuid4().hex[:12]}"
                try:
                    async with asyncio.timeout(2):
                        await s3.create_bucket(Bucket=probe)
                        await s3.delete_bucket(Bucket=probe)
                    return
                except (TimeoutError, BotoCoreError, ClientError) as exc:
                    if time.monotonic() > deadline:
                        raise self._failure("rgw", f"took no metadata write within {self.ready_timeout:.0f} s") from exc

    def _fresh_folder(self) -> None:
        if self.folder.exists() and any(self.folder.iterdir()):
            if not (self.folder / MARKER).exists():
                raise RgwError(f"{self.folder} is not empty and not an RGW bed's folder")
            shutil.rmtree(self.folder)
        for sub in ("mon", "osd/osd.0", "log", "run", "rgw", "crash"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        (self.folder / MARKER).touch()

    async def _build(self) -> None:
        fsid, osd_uuid, conf = str(uuid.uuid4()), str(uuid.uuid4()), str(self.conf)
        self.conf.write_text(
            ceph_conf(
                self.folder,
                self.port,
                fsid=fsid,
                mem_bytes=self.mem_bytes,
                frontend=self.frontend,
                extra=self.extra_conf,
            )
        )
        monmap = str(self.folder / "monmap")
        mon = f"[v2:127.0.0.1:{self.port + 1}]"
        await self._run("monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a", mon, monmap)
        await self._run("ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", monmap)
        # --no-mon-config: else it asks the (not yet running) mon for its configuration for 300 s
        await self._run("ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--no-mon-config", "--osd-uuid", osd_uuid)
        await self._spawn("mon", "ceph-mon", "-c", conf, "-i", "a", "-f")
        timeout = str(int(self.ready_timeout))
        await self._run("ceph", "-c", conf, "--connect-timeout", timeout, "osd", "new", osd_uuid, "0")
        await self._spawn("osd", "ceph-osd", "-c", conf, "-i", "0", "-f")
        await self._spawn("rgw", "radosgw", "-c", conf, "-n", "client.rgw.a", "-f")
        # (concurrent with radosgw's own start: no conflict seen in many starts)
        keys = (f"--access-key={self.access_key}", f"--secret-key={self.secret_key}")
        await self._run("radosgw-admin", "-c", conf, "user", "create", "--uid=tester", "--display-name=tester", *keys)
        await self._wait_s3()

    async def _exec(self, argv: Sequence[str], out: IO[bytes]) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF")}
        env[OWNER_ENV] = str(os.getpid())
        return await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
        )

    async def _run(self, *argv: str) -> None:
        """A one-shot Ceph command; its output goes to log/commands.out."""
        with (self.folder / "log" / "commands.out").open("ab") as out:
            out.write(f"+ {' '.join(argv)}\n".encode())
            out.flush()
            proc = await self._exec(argv, out)
            try:
                code = await asyncio.wait_for(proc.wait(), self.ready_timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                code = None
        if code != 0:
            raise RgwError(
                f"{argv[0]} failed ({'timed out' if code is None else f'exit {code}'}) in {self.folder}\n"
                f"--- tail of log/commands.out ---\n{_tail(self.folder / 'log' / 'commands.out')}"
            )

    async def _spawn(self, name: str, *argv: str) -> None:
        """A daemon in the foreground (-f: the process we start is the daemon), output to log/<name>.out."""
        with (self.folder / "log" / f"{name}.out").open("ab") as out:
            self._processes[name] = await self._exec(argv, out)
        log.info("started %s pid %d (%s)", argv[0], self._processes[name].pid, self.folder)

    async def _wait_s3(self) -> None:
        # A signed ListBuckets proves radosgw reached the cluster and knows the user.
        url = Presigner(S3Target(self.endpoint_url, "", "us-east-1", self.access_key, self.secret_key))
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        # A request sent while radosgw starts its frontend can stay unanswered: a short timeout per try.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while time.monotonic() < deadline:
                dead = [n for n in _DAEMONS if n in self._processes and self._processes[n].returncode is not None]
                if dead:
                    raise self._failure(dead[0], "exited")
                try:
                    async with http.get(url.presign("GET", "", expires_in=60)) as resp:
                        if resp.status == 200:
                            return
                        last = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    last = repr(exc)
                await asyncio.sleep(0.05)
        raise self._failure("rgw", f"did not answer S3 within {self.ready_timeout:.0f} s (last: {last})")

    def _failure(self, daemon: str, what: str) -> RgwError:
        log_file, out = self.log_path(daemon), self.folder / "log" / f"{daemon}.out"
        return RgwError(
            f"Ceph {daemon} of the RGW bed in {self.folder} {what}\n"
            f"--- tail of {out} ---\n{_tail(out)}\n--- tail of {log_file} ---\n{_tail(log_file)}"
        )

    async def _terminate(self, names: Sequence[str], grace: float) -> None:
        """SIGTERM these daemons and SIGKILL those still running after `grace` seconds (0: SIGKILL at once)."""
        procs = [self._processes.pop(n) for n in names if n in self._processes]
        running = [p for p in procs if p.returncode is None]
        if not running:
            return
        waits = [asyncio.ensure_future(p.wait()) for p in running]
        if grace:
            for proc in running:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            await asyncio.wait(waits, timeout=grace)
        for proc in running:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.wait(waits)

    # --- bucket notifications ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def client(self, service: str) -> AsyncIterator[Any]:
        """An aiobotocore client of the bed's user: "s3", or "sns" (RGW's topic API)."""
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        )
        async with get_session().create_client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=config,
        ) as made:
            yield made

    async def notify(
        self,
        bucket: str,
        push_endpoint: str,
        *,
        events: Sequence[str] = ("s3:ObjectCreated:*",),
        opaque_data: str = "",
        persistent: bool = False,
        topic: str | None = None,
    ) -> str:
        """Send `bucket`'s object events to `push_endpoint` by HTTP POST (an RGW topic and the bucket's
        notification configuration, which this replaces); the topic's ARN.

        `opaque_data` is copied into every record (`opaqueData`). Removals are not sent by default: RGW 16.2's
        beast frontend aborts on a multi-object delete in a bucket whose notification covers them.
        Non-persistent topics (the default) push from inside the S3 request, at most once; persistent ones
        from a queue, retried, but RGW 16.2 can stall them after a failed push (`restart_rgw` unsticks)."""
        name = topic or f"topic-{bucket}"
        attributes = {"push-endpoint": push_endpoint, "OpaqueData": opaque_data}
        if persistent:
            attributes["persistent"] = "true"
        async with self.client("sns") as sns:
            arn = str((await sns.create_topic(Name=name, Attributes=attributes))["TopicArn"])
        configuration = {"TopicConfigurations": [{"Id": f"cfg-{name}", "TopicArn": arn, "Events": list(events)}]}
        async with self.client("s3") as s3:
            await s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=configuration)
        return arn

    def __repr__(self) -> str:
        return f"RgwBed({self.folder}, {self.endpoint_url if self.port else 'stopped'})"
