"""Fixtures: real SeaweedFS servers and a real Ceph RGW once per session (each started the first time a
test asks for it), a fresh daemon and database per test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules beside the tests

from apihelp import EVENTS_TOKEN, SECRET, Api
from kinds import KINDS, PARTLY_UNIT, UNIT, mark_by_module
from reliability import LEDGER
from s3bed import MEMORY, SEAWEEDFS, MemoryFleet, S3Bed, store_of
from weedbed import ACCESS_KEY, SECRET_KEY, new_bucket

from cdnstore.api.server import AppRunner
from cdnstore.app import create_app
from cdnstore.clock import SYSTEM_CLOCK, Clock
from cdnstore.config import Config
from cdnstore.storage_port import StoragePort
from testbed.demo import ORIGINAL_LAYOUT
from testbed.ports import unused_port
from testbed.rgw import RgwBed
from testbed.seaweed import WeedCluster


@pytest.fixture(scope="session")
def daemon_port() -> int:
    """Every test daemon listens here, so the SeaweedFS webhooks (fixed at start) reach it."""
    return unused_port()


@pytest.fixture(scope="session")
async def weed(tmp_path_factory: pytest.TempPathFactory, daemon_port: int) -> AsyncIterator[WeedCluster]:
    """The original's five S3 servers, real SeaweedFS, their webhooks pointed at the test daemon."""
    root = Path(tmp_path_factory.mktemp("weed", numbered=True))
    cluster = WeedCluster(
        root,
        [site.name for site in ORIGINAL_LAYOUT],
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        webhook_url=lambda name: f"http://127.0.0.1:{daemon_port}/api/v1/events/s3/{name}",
        webhook_token=EVENTS_TOKEN,
        max_volumes=2000,
    )  # every test makes a bucket: a collection of volumes
    await cluster.start()
    yield cluster
    await cluster.stop()


@pytest.fixture(scope="session")
async def rgw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RgwBed]:
    """A real single-node Ceph RGW (testbed/rgw.py), its S3 user holding the SeaweedFS servers' keys (so a
    test registers it as it registers them); each test uses buckets of its own."""
    bed = RgwBed(tmp_path_factory.mktemp("rgw", numbered=True), access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    await bed.start()
    yield bed
    await bed.stop()


@pytest.fixture(scope="session")
async def idp(tmp_path_factory: pytest.TempPathFactory, daemon_port: int) -> AsyncIterator[Any]:
    """A real OpenID provider (testbed/oidc_provider.py), once per session, started the first time a test asks for it;
    its client's redirect URI is the test daemons' callback."""
    from cdnstore.oidc import CALLBACK_PATH
    from testbed.oidc_provider import OidcProvider

    log = Path(tmp_path_factory.mktemp("oidc")) / "provider.log"
    provider = OidcProvider([f"http://127.0.0.1:{daemon_port}{CALLBACK_PATH}"], log)
    await provider.start()
    yield provider
    provider.stop()


@pytest.fixture
async def provider(idp: Any) -> AsyncIterator[Any]:
    """The session's OpenID provider, its clock put back after the test."""
    yield idp
    await idp.control("reset")


@pytest.fixture(
    params=[
        pytest.param(MEMORY, marks=pytest.mark.unit),
        pytest.param(SEAWEEDFS, marks=pytest.mark.integration),
    ]
)
def s3(request: pytest.FixtureRequest) -> S3Bed:
    """The servers of a use-case test (tests/s3bed.py): the original layout in memory, or the session's real
    SeaweedFS (started the first time a test asks: from a plain fixture, as in test_storage_contract.py)."""
    if request.param == MEMORY:
        return MemoryFleet()
    weed: WeedCluster = request.getfixturevalue("weed")
    return weed


@pytest.fixture
def bucket() -> str:
    return new_bucket()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def make_config(tmp_path: Path, port: int, **sections: dict[str, Any]) -> Config:
    raw = {
        # Tests choose a client's address with X-Forwarded-For, as a reverse proxy would set it.
        "http": {"port": port, "public_url": f"http://127.0.0.1:{port}", "trusted_proxies": ["127.0.0.1"]},
        "database": {"path": str(tmp_path / "cdnstore.sqlite3")},
        # Cheap argon2 parameters: tests create many users; production keeps the defaults.
        "auth": {"secret_key": SECRET, "argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1},
        "events": {"token": EVENTS_TOKEN},
        # Generous: a registration's bucket check found no answer within 2 s (twice) on a machine loaded by
        # several suites at once, three times in a day, never alone. Tests of silent servers set their own.
        "storage": {"connect_timeout": 5, "read_timeout": 10, "check_timeout": 15},
        # shutdown_grace 0: a test's daemon stops at once, a job still running goes back to the queue.
        "jobs": {
            "backoff_base": 0.05,
            "backoff_max": 0.5,
            "poll_interval": 0.1,
            "part_size": 5 << 20,
            "shutdown_grace": 0,
        },
        "health": {"timeout": 2},
        # The verifier runs at start and then hourly: the tests of verification reads run it themselves.
        "integrity": {"verify_interval": 3600},
        # A deletion removes the file at once, as before the trash: what most tests of deleting, replication,
        # scrub and faults assert. The trash's own tests (test_trash.py) set files.trash_days themselves.
        "files": {"trash_days": 0},
    }
    return Config.model_validate(_merge(raw, sections))


MakeApi = Callable[..., Awaitable[Api]]


class ServedByCdnstore(TestServer):
    """aiohttp's test server, run by cdnstore's AppRunner as `cdnstore serve` runs the daemon (so what
    aiohttp's parser refuses is answered as problem+json here too)."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return AppRunner(self.app, **kwargs)


@pytest.fixture
async def make_api(database_url: str, aiohttp_client: Any, tmp_path: Path, daemon_port: int) -> MakeApi:
    # database_url first: set up first, torn down last, after the app has stopped using the database.
    async def make(*, store: StoragePort | None = None, clock: Clock = SYSTEM_CLOCK, **sections: dict[str, Any]) -> Api:
        """The daemon on this test's database; `store`: on that storage (e.g. an in-memory one) instead of S3;
        `clock`: on that clock (testbed.clock.FakeClock: time passes when the test says)."""
        if database_url:
            sections = _merge({"database": {"url": database_url}}, sections)
        app = create_app(make_config(tmp_path, daemon_port, **sections), store=store, clock=clock)
        return Api(await aiohttp_client(ServedByCdnstore(app, port=daemon_port)))

    return make


# --- engines: the API, job-queue and database tests run on SQLite and on PostgreSQL ------------------

# Test files whose tests run on both engines (the others, e.g. browser, fault and demo tests, on SQLite).
BOTH_ENGINES = {
    "test_archives",
    "test_auth",
    "test_db",
    "test_endpoints",
    "test_events",
    "test_files",
    "test_idor",
    "test_jobs",
    "test_keys",
    "test_integrity",
    "test_links",
    "test_multipart",
    "test_names",
    "test_oidc",
    "test_ops",
    "test_problems",
    "test_replication",
    "test_replication_fast",
    "test_time_fast",
    "test_requests",
    "test_scrub",
    "test_servers",
    "test_storage_events",
    "test_team",
    "test_trash",
    "test_upload_link",
    "test_users",
    "test_vendors",
    "test_imports",
    "test_webhook_queue",
    "test_webhooks",
}


@pytest.fixture
def engine() -> str:
    """ "sqlite", or "postgres" where pytest_generate_tests gives both."""
    return "sqlite"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames and metafunc.module.__name__.rpartition(".")[2] in BOTH_ENGINES:
        if not any("engine" in mark.args[0] for mark in metafunc.definition.iter_markers("parametrize")):
            metafunc.parametrize("engine", ["sqlite", "postgres"])  # (a test about one engine names it)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster (each `fresh()` database a copy of cdnstore's empty schema, two made
    ahead while tests run), started the first time a test asks for it."""
    from testbed.postgres import PgCluster

    cluster = PgCluster(schema_template=True, ahead=2)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def database_url(engine: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """Empty on SQLite (the database is a file in tmp_path); a fresh PostgreSQL database's URL else."""
    if engine == "sqlite":
        yield ""
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.fresh()
    yield url
    cluster.drop(url)


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture
async def s3_api(make_api: MakeApi, s3: S3Bed) -> Api:
    """The daemon on the test's `s3` servers (a module of use-case tests makes it its `api`)."""
    return await make_api(store=store_of(s3))


@pytest.fixture
async def daemon(tmp_path: Path, daemon_port: int) -> AsyncIterator[Any]:
    """`cdnstore serve` in a process of its own (started by the test), killed at the end."""
    from testbed.daemon import Daemon

    made = Daemon(tmp_path / "config.toml", daemon_port, tmp_path / "daemon.log")
    yield made
    made.kill()


def _whole_suite(config: pytest.Config) -> bool:
    chosen = [Path(a.split("::")[0]).resolve() for a in config.args]
    return (
        not config.option.keyword
        and not config.option.markexpr
        and all(path == Path(__file__).parent for path in chosen)
    )


FAILED: set[str] = set()
# The check that docs/reliability.md holds every area: failing alone, it only says the doc is out of date
# (the run's figures are saved all the same, for `python3 dev.py reliability` to write into the doc).
DOC_CHECK = "test_the_reliability_table_has_every_area_the_suite_counts_and_shows_no_drift_or_5xx"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        FAILED.add(report.nodeid.rsplit("::", 1)[-1])


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker (`dev.py test --fast`): its figures go to the controller
        workeroutput["ledger"] = LEDGER.dump()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """(pytest-xdist, on the controller) A worker finished: its figures join the run's."""
    if "ledger" in getattr(node, "workeroutput", {}):
        LEDGER.merge(node.workeroutput["ledger"])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_sep("=", "reliability figures (artifacts/reliability.json)")
    terminalreporter.write_line(LEDGER.table(LEDGER.rows))
    terminalreporter.write_line(
        f"API answers seen: {LEDGER.answers}, {LEDGER.refusals} of them 4xx; "
        f"5xx that no test expected: {len(LEDGER.unexpected)}"
    )
    for what in sorted(LEDGER.unexpected.values()):
        terminalreporter.write_line(f"  {what}")
    # A failed run's figures prove nothing: the artifact keeps the last good ones. No tracked file is
    # written here: `python3 dev.py reliability` copies the artifact into docs/reliability.md.
    if (exitstatus == 0 or FAILED == {DOC_CHECK}) and not config.option.collectonly:  # (collecting counts nothing)
        LEDGER.save(whole_suite=_whole_suite(config))
        if FAILED:
            terminalreporter.write_line("docs/reliability.md is out of date: run `python3 dev.py reliability`")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`-m unit` (`dev.py test --fast`): a module with no unit test (tests/kinds.py) is not even imported, so
    the fast tier pays neither its imports (schemathesis, playwright...) nor pytest's rewriting of its asserts
    (a module kinds.py does not know is still collected, for mark_by_module to refuse it)."""
    kind = KINDS.get(collection_path.stem) if collection_path.suffix == ".py" else None
    if config.option.markexpr == UNIT and kind not in (None, UNIT) and collection_path.stem not in PARTLY_UNIT:
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test gets its kind (unit, integration, faults, browser) from its module: tests/kinds.py."""
    mark_by_module(items)
