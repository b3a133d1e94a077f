"""Operations: /readyz, /metrics, request ids and the request log line, JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections import Counter

import prometheus_client
import pytest
from apihelp import US_IP, Api, from_ip, samples, value, wait_for
from conftest import MakeApi

from cdnstore import appkeys
from cdnstore.config import LogConfig, load
from cdnstore.errors import ConfigError
from cdnstore.logs import REQUEST_ID, JsonFormatter, TextFormatter
from cdnstore.metrics import Metrics
from testbed.postgres import PgCluster
from testbed.seaweed import WeedCluster

DATA = b"metrics " * 2000


async def test_readyz_wants_a_writable_database_and_a_server_up(api: Api, weed: WeedCluster, bucket: str) -> None:
    empty = (await api.call("GET", "/readyz")).expect(503)
    assert empty["status"] == "unavailable"
    assert empty["checks"]["database"] == {"ok": True, "detail": "writable"}
    assert empty["checks"]["servers"]["ok"] is False
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "newyork", bucket)
    ready = (await api.call("GET", "/readyz")).expect(200)
    assert ready["status"] == "ok" and all(c["ok"] for c in ready["checks"].values())
    assert ready["checks"]["servers"]["detail"] == "1 of 1 server(s) that are on are up"
    # The GeoIP database in use and its age: the one shipped is from 2018, which the check says (and passes).
    assert ready["checks"]["geoip"] == {
        "ok": True,
        "detail": 'GeoLite2-City, built 2018-07-03: over a year old, update it (docs/operations.md, "GeoIP data")',
        "built_at": "2018-07-03T21:26:56Z",
    }


@pytest.mark.parametrize("engine", ["sqlite"])  # one writer's lock (PostgreSQL's: the test below)
async def test_readyz_reports_a_database_that_takes_no_writes(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "newyork", bucket)
    db = api.app[appkeys.DB]
    async with db.transaction():  # another writer holds the lock longer than readiness waits
        import cdnstore.api.ops as ops

        before, ops.READY_DB_WAIT = ops.READY_DB_WAIT, 0.05
        try:
            answer = await api.call("GET", "/readyz")
        finally:
            ops.READY_DB_WAIT = before
    assert answer.expect(503)["checks"]["database"]["ok"] is False
    assert (await api.call("GET", "/readyz")).status == 200


@pytest.mark.parametrize("engine", ["postgres"])
async def test_postgresql_stopped_answers_503_and_the_daemon_reconnects_by_itself_losing_nothing(
    api: Api, weed: WeedCluster, bucket: str, pg_cluster: PgCluster
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "newyork", bucket)
    before = (await admin.upload("before.txt", DATA))["file"]["id"]
    await admin.wait_stored(before)
    await asyncio.to_thread(pg_cluster.crash)  # as a crash does: connections cut, no checkpoint
    try:
        for answer in [
            await admin.get("/api/v1/files"),
            await admin.post("/api/v1/files", json={"name": "during.txt", "size": 1}),
            await api.call("POST", "/api/v1/auth/login", json={"username": "root", "password": "x"}),
        ]:
            problem = answer.problem(503, "database_unavailable")
            assert int(answer.headers["Retry-After"]) > 0 and problem["reason"] == "unreachable"
        readyz = await api.call("GET", "/readyz")
        assert readyz.expect(503)["checks"]["database"] == {"ok": False, "detail": "the database cannot be reached"}
    finally:
        await asyncio.to_thread(pg_cluster.resume)

    async def ready() -> bool:
        return (await api.call("GET", "/readyz")).status == 200

    await wait_for(ready, "the daemon to reconnect")
    after = (await admin.upload("after.txt", DATA))["file"]["id"]
    await admin.wait_stored(after)  # the job queue runs again too
    names = [f["name"] for f in (await admin.get("/api/v1/files")).expect(200)["items"]]
    assert names == ["after.txt", "before.txt"]  # the upload acknowledged before the crash is there


async def test_readyz_names_what_is_wrong_in_fixed_words_and_logs_the_details(
    api: Api, weed: WeedCluster, bucket: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "newyork", bucket)
    secret_path = "/srv/private/cdnstore.sqlite3"

    async def failing(wait: float) -> None:
        raise sqlite3.OperationalError(f"unable to open database file {secret_path}")

    monkeypatch.setattr(api.app[appkeys.DB], "check_writable", failing)
    with caplog.at_level(logging.ERROR, logger="cdnstore.api.ops"):
        answer = await api.call("GET", "/readyz")
    assert answer.expect(503)["checks"]["database"] == {
        "ok": False,
        "detail": "the test write failed (the log says why)",
    }
    assert secret_path not in str(answer.body) and "OperationalError" not in str(answer.body)
    assert secret_path in caplog.text  # the operator finds the details in the log


METRICS_TOKEN = "scrape-me-please-0123456789"


async def test_metrics_ask_for_the_bearer_token_when_one_is_set(make_api: MakeApi) -> None:
    api = await make_api(http={"metrics_token": METRICS_TOKEN})
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": METRICS_TOKEN},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
    ):
        answer = await api.call("GET", "/metrics", headers=headers)
        answer.problem(401, "unauthorized")
        assert "cdnstore_" not in str(answer.body)
    answer = await api.call("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status == 200 and "cdnstore_http_request_duration_seconds" in answer.body


async def test_metrics_answer_this_machine_only_without_a_token(api: Api) -> None:
    # (Checked on main: /metrics answered anyone, through a proxy too, when no token was set.)
    assert (await api.call("GET", "/metrics")).status == 200  # a scraper on this machine (loopback)
    for forwarded in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}, {"X-Real-IP": "::1"}):
        answer = await api.call("GET", "/metrics", headers=forwarded)  # through a proxy here: from anywhere
        answer.problem(403, "metrics_not_local")
        assert "cdnstore_" not in str(answer.body) and "metrics_token" in answer.body["detail"]
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    from cdnstore.api.ops import from_this_machine

    def peer(address: str) -> bool:
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None: (
            (address, 1) if name == "peername" else default
        )
        return from_this_machine(make_mocked_request("GET", "/metrics", transport=transport))

    assert peer("127.0.0.1") and peer("::1") and peer("::ffff:127.0.0.1")
    assert not peer("203.0.113.9") and not peer("10.0.0.2") and not peer("2001:db8::1")  # straight from elsewhere


def test_a_metrics_token_is_empty_or_long() -> None:
    with pytest.raises(ConfigError, match=r"http\.metrics_token"):
        load(env={"CDNSTORE_HTTP_METRICS_TOKEN": "short"})
    assert load(env={"CDNSTORE_HTTP_METRICS_TOKEN": METRICS_TOKEN}).http.metrics_token == METRICS_TOKEN


async def test_metrics_count_requests_by_route_uploads_downloads_copies_jobs_and_health(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    announced = await admin.upload("m.bin", DATA, ip=US_IP)
    file_id, first = str(announced["file"]["id"]), announced["upload"]["server"]["name"]
    second = ({"newyork", "dallas"} - {first}).pop()
    await admin.wait_stored(file_id)
    await api.app[appkeys.WORKER].run_until_idle()
    link, _ = await admin.download(file_id)
    await admin.get(f"/api/v1/files/{file_id}")
    await admin.get("/api/v1/files/00000000-0000-0000-0000-000000000000")
    await api.call("GET", "/no/such/path")

    answer = await api.call("GET", "/metrics")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
    text = answer.body
    assert file_id not in text  # routes are labelled by their declared path, never the raw one
    found = samples(text)
    route = "/api/v1/files/{id}"
    assert value(found, "cdnstore_http_request_duration_seconds_count", method="GET", route=route, status="200") >= 2
    assert value(found, "cdnstore_http_request_duration_seconds_count", method="GET", route=route, status="404") == 1
    assert (
        value(found, "cdnstore_http_request_duration_seconds_count", method="GET", route="(unmatched)", status="404")
        == 1
    )
    assert (
        value(found, "cdnstore_http_request_duration_seconds_count", method="POST", route="/api/v1/files", status="201")
        == 1
    )
    assert value(found, "cdnstore_uploads_total", server=first) == 1
    assert value(found, "cdnstore_downloads_total", server=link["server"]["name"]) == 1
    assert value(found, "cdnstore_replicated_bytes_total", server=second) == len(DATA)
    for kind in ("copy", "remove"):
        for state in ("queued", "running", "failed"):
            assert ("cdnstore_jobs", (("kind", kind), ("state", state))) in found
    for name in ("capetown", "vladivostok", "newyork", "dallas", "detroit"):
        assert value(found, "cdnstore_server_up", server=name) == 1
        assert value(found, "cdnstore_server_on", server=name) == 1

    # The jobs gauge is read at scrape time: a failed copy shows up.
    db = api.app[appkeys.DB]
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO jobs (kind, version_id, server_id, status, run_after, created_at, updated_at) "
            "SELECT 'copy', v.id, s.id, 'failed', 0, 0, 0 FROM versions v, servers s "
            "WHERE s.name = 'detroit' LIMIT 1"
        )
    found = samples((await api.call("GET", "/metrics")).body)
    assert value(found, "cdnstore_jobs", kind="copy", state="failed") == 1


async def test_an_owners_download_and_a_link_download_each_leave_history_a_metric_and_a_statistics_count(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_layout(weed, bucket)
    file_id = str((await admin.upload("both.bin", DATA, ip=US_IP))["file"]["id"])
    await admin.wait_stored(file_id)
    token = (await admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)["token"]

    async def bookkeeping() -> tuple[list[tuple[str, str]], Counter[str], Counter[str], int]:
        """Downloads as the history (event, server), the metric and the statistics (per server) see them."""
        history = (await admin.get("/api/v1/history")).expect(200)["items"]
        events = [(i["event"], i["data"]["server"]) for i in history if i["event"].endswith(".downloaded")]
        found = samples((await api.call("GET", "/metrics")).body)
        metric = Counter(
            {
                dict(labels)["server"]: int(n)
                for (name, labels), n in found.items()
                if name == "cdnstore_downloads_total" and n
            }
        )
        stats = (await admin.get("/api/v1/stats/downloads")).expect(200)["items"]
        return events, metric, Counter({s["server"]: s["downloads"] for s in stats}), sum(s["bytes"] for s in stats)

    owners, _ = await admin.download(file_id)
    served = owners["server"]["name"]
    assert await bookkeeping() == ([("file.downloaded", served)], Counter([served]), Counter([served]), len(DATA))
    linked = (await api.call("POST", f"/api/v1/public/links/{token}/download", json={}, headers=from_ip(US_IP))).expect(
        200
    )
    both = Counter([served, linked["server"]["name"]])
    assert await bookkeeping() == (
        [("link.downloaded", linked["server"]["name"]), ("file.downloaded", served)],
        both,
        both,
        2 * len(DATA),
    )


async def test_each_app_has_its_own_registry(make_api: MakeApi) -> None:
    api = await make_api()
    assert api.app[appkeys.METRICS].registry is not prometheus_client.REGISTRY
    assert "cdnstore_http_request_duration_seconds" not in prometheus_client.generate_latest().decode()
    assert Metrics().registry is not Metrics().registry


async def test_every_answer_carries_a_request_id_a_sane_incoming_one_kept(api: Api) -> None:
    kept = await api.call("GET", "/healthz", headers={"X-Request-Id": "trace-42.abc:1"})
    assert kept.headers["X-Request-Id"] == "trace-42.abc:1"
    for bad in ("has space", "x" * 200, "semi;colon", ""):
        answer = await api.call("GET", "/healthz", headers={"X-Request-Id": bad})
        assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["X-Request-Id"]), bad
    made = await api.call("GET", "/healthz")
    other = await api.call("GET", "/healthz")
    assert made.headers["X-Request-Id"] != other.headers["X-Request-Id"]
    problem = await api.call("GET", "/api/v1/me")  # a problem+json answer
    assert problem.status == 401 and problem.headers["X-Request-Id"]
    missing = await api.call("GET", "/nowhere", headers={"X-Request-Id": "req-1"})
    assert missing.status == 404 and missing.headers["X-Request-Id"] == "req-1"


async def test_a_redirect_carries_the_request_id(api: Api, weed: WeedCluster, bucket: str) -> None:
    admin = await api.user("root", admin=True)
    await admin.add_server(weed, "newyork", bucket)
    file_id = str((await admin.upload("r.bin", DATA))["file"]["id"])
    await admin.wait_stored(file_id)
    answer = await admin.get(
        f"/api/v1/files/{file_id}/download?redirect=true", headers={**from_ip(US_IP), "X-Request-Id": "redirect-1"}
    )
    assert answer.status == 302 and answer.headers["X-Request-Id"] == "redirect-1"


async def test_one_log_line_per_request_with_its_context(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cdnstore.requests"):
        await api.call("GET", "/healthz", headers={"X-Request-Id": "line-1"})
    lines = [r for r in caplog.records if r.name == "cdnstore.requests"]
    assert len(lines) == 1
    line = lines[0]
    assert line.levelno == logging.INFO
    assert (line.request_id, line.method, line.path, line.status) == ("line-1", "GET", "/healthz", 200)  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]
    assert line.getMessage().startswith("GET /healthz 200 ")


async def test_request_lines_can_be_turned_off(make_api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    api = await make_api(log={"requests": False})
    with caplog.at_level(logging.INFO, logger="cdnstore.requests"):
        answer = await api.call("GET", "/healthz")
    assert answer.headers["X-Request-Id"]
    assert not [r for r in caplog.records if r.name == "cdnstore.requests"]


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("cdnstore.jobs", logging.WARNING, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_context_fields() -> None:
    line = json.loads(JsonFormatter().format(_record("job 7 failed", job_id=7)))
    assert set(line) == {"ts", "level", "logger", "message", "job_id"}
    assert (line["level"], line["logger"], line["message"], line["job_id"]) == (
        "WARNING",
        "cdnstore.jobs",
        "job 7 failed",
        7,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    request = json.loads(
        JsonFormatter().format(
            _record("GET /x 200", request_id="r1", method="GET", path="/x", status=200, duration_ms=1.5)
        )
    )
    assert {k: request[k] for k in ("request_id", "method", "path", "status", "duration_ms")} == {
        "request_id": "r1",
        "method": "GET",
        "path": "/x",
        "status": 200,
        "duration_ms": 1.5,
    }
    token = REQUEST_ID.set("inside")  # any line logged while a request is handled names it
    try:
        assert json.loads(JsonFormatter().format(_record("hello")))["request_id"] == "inside"
        assert TextFormatter().format(_record("hello")).endswith("hello request_id=inside")
    finally:
        REQUEST_ID.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        errored = _record("failed")
        errored.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(errored))["exc"]


def test_log_format_json_is_chosen_by_the_config() -> None:
    from cdnstore.logs import setup_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(LogConfig(format="json", level="WARNING"))
        assert isinstance(root.handlers[-1].formatter, JsonFormatter) and root.level == logging.WARNING
        setup_logging(LogConfig())
        assert isinstance(root.handlers[-1].formatter, TextFormatter) and len(root.handlers) == 1
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_request_line_written_straight_is_the_line_the_formatter_writes(json_lines: bool) -> None:
    import io

    from cdnstore.logs import StderrHandler

    context: dict[str, object] = {"request_id": "r1", "method": "GET", "path": "/x", "status": 200, "duration_ms": 1.25}
    fast, slow = io.StringIO(), io.StringIO()
    straight = StderrHandler(fast, json_lines=json_lines)
    straight.request_line("cdnstore.requests", "GET /x 200 1.2 ms", context)
    record = logging.LogRecord("cdnstore.requests", logging.INFO, __file__, 1, "GET /x 200 1.2 ms", (), None)
    record.__dict__.update(context)
    # the formatter's time is the record's: give both lines the same one
    record.created, record.msecs = straight._second, 0.0
    expected = StderrHandler(slow, json_lines=json_lines).format(record)
    written = fast.getvalue()
    assert written.endswith("\n") and written.count("\n") == 1
    if json_lines:
        got, want = json.loads(written), json.loads(expected)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got.pop("ts"))
        want.pop("ts")
        assert got == want
    else:
        assert written[:19] == expected[:19] and written[23:] == expected[23:] + "\n"


async def test_request_lines_are_written_once_per_loop_turn_in_order_with_other_lines() -> None:
    import io

    from cdnstore.logs import StderrHandler

    stream = io.StringIO()
    handler = StderrHandler(stream, json_lines=False)
    for n in range(3):
        handler.request_line("cdnstore.requests", f"GET /{n} 200 0.1 ms", {"request_id": str(n)})
    assert stream.getvalue() == ""  # queued until this turn of the loop ends
    handler.emit(logging.LogRecord("cdnstore.jobs", logging.WARNING, __file__, 1, "later", (), None))
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "GET /0 200 0.1 ms request_id=0",
        "GET /1 200 0.1 ms request_id=1",
        "GET /2 200 0.1 ms request_id=2",
        "later",
    ]
    handler.request_line("cdnstore.requests", "GET /3 200 0.1 ms", {"request_id": "3"})
    await asyncio.sleep(0)  # the loop turn ends
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines()[-1].endswith("GET /3 200 0.1 ms request_id=3")


def test_the_request_line_goes_straight_to_the_daemons_handler_else_through_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import io

    from cdnstore.logs import StderrHandler, log_request

    root, requests = logging.getLogger(), logging.getLogger("cdnstore.requests")
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        root.handlers[:] = [StderrHandler(stream, json_lines=False)]
        root.setLevel(logging.INFO)
        log_request(requests, "GET /a 200 0.1 ms", {"request_id": "a"})  # no loop running: written at once
        assert stream.getvalue().endswith("INFO cdnstore.requests: GET /a 200 0.1 ms request_id=a\n")
        root.setLevel(logging.WARNING)
        log_request(requests, "GET /b 200 0.1 ms", {"request_id": "b"})
        assert "/b" not in stream.getvalue()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    with caplog.at_level(logging.INFO, logger="cdnstore.requests"):  # another handler: through logging
        log_request(requests, "GET /c 200 0.1 ms", {"request_id": "c"})
    assert [r.getMessage() for r in caplog.records] == ["GET /c 200 0.1 ms"]


# --- log forging: every record is one line ------------------------------------------------------------

FORGED = "\r\n2099-01-01 00:00:00,000 INFO cdnstore.requests: GET /forged 200 0.1 ms"


def test_a_control_character_in_any_logged_value_cannot_start_a_line_of_its_own() -> None:
    # (Checked on main: the formatter wrote the CR/LF as they came, and the forged line stood alone.)
    record = logging.LogRecord("cdnstore.users", logging.WARNING, __file__, 1, "login of %s refused", (FORGED,), None)
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line
    assert line.endswith(
        "login of \\r\\n2099-01-01 00:00:00,000 INFO cdnstore.requests: GET /forged 200 0.1 ms refused"
    )
    assert (
        TextFormatter()
        .format(_record("bell \x07 escape \x1b[2J del \x7f nel \x85 ls \u2028"))
        .endswith("bell \\x07 escape \\x1b[2J del \\x7f nel \\x85 ls \\u2028")
    )
    try:
        raise ValueError(f"a message of the client's{FORGED}")
    except ValueError:
        import sys

        errored = _record("failed")
        errored.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(errored).split("\n")
    assert first.endswith("failed") and rest and all(line.startswith("  ") for line in rest), rest
    assert "\r" not in "".join(rest)
    assert json.loads(JsonFormatter().format(_record(FORGED)))["message"] == FORGED  # JSON escapes by itself


async def test_a_request_path_with_crlf_is_logged_on_one_line(api: Api) -> None:
    import io

    from cdnstore.logs import StderrHandler

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        root.handlers[:] = [StderrHandler(stream, json_lines=False)]  # the daemon's handler: the fast path
        root.setLevel(logging.INFO)
        answer = await api.call("GET", "/nowhere%0d%0a2099-01-01%2000:00:00,000%20INFO%20cdnstore.requests:%20forged")
        answer.problem(404, "not_found")
        await asyncio.sleep(0)  # the request line is written when the loop's turn ends
        root.handlers[0].flush()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    # (the test server's own aiohttp.access line aside: the daemon serves without it)
    lines = [line for line in stream.getvalue().splitlines() if "aiohttp.access" not in line and "forged" in line]
    assert len(lines) == 1 and "/nowhere\\r\\n2099-01-01" in lines[0], stream.getvalue()


async def test_a_share_token_under_static_is_logged_as_the_routes_template(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    token = "x" * 20 + "Tok3n_-" * 4  # a share token's alphabet and length
    with caplog.at_level(logging.INFO, logger="cdnstore.requests"):
        (await api.call("GET", f"/static/{token}")).problem(404, "not_found")
        (await api.call("GET", f"/static/s/{token}")).problem(404, "not_found")
    lines = [r.getMessage() for r in caplog.records if r.name == "cdnstore.requests"]
    assert len(lines) == 2 and all(line.startswith("GET /static/{path} 404 ") for line in lines), lines
    assert not [r for r in caplog.records if r.name.startswith("cdnstore") and token in r.getMessage()]
