"""Request heads over their limits answer problem+json naming the limit: 431 headers_too_large for header
fields (one too large, too large together, too many), 414 uri_too_long for the request target, 400 for a
request that is not HTTP; under `cdnstore serve` and under the test server run the same way."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apihelp import PASSWORD, Answer, Api
from clihelp import start_demo
from conftest import ServedByCdnstore, make_config
from daemonproc import admin_session, write_config
from reliability import LEDGER, server_errors
from weedbed import ACCESS_KEY, SECRET_KEY

from cdnstore.api.pages import origin as origin_of
from cdnstore.api.server import MAX_HEADER_FIELDS, MAX_REQUEST_LINE
from cdnstore.app import create_app
from cdnstore.config import Config
from testbed.daemon import Daemon
from testbed.ports import unused_port
from testbed.seaweed import WeedCluster

LIMIT = Config().http.max_header_bytes


MakeServed = Callable[..., Awaitable[Api]]


@pytest.fixture
async def served(aiohttp_client: Any, tmp_path: Path) -> MakeServed:
    async def make(**sections: dict[str, Any]) -> Api:
        app = create_app(make_config(tmp_path, 8080, **sections))
        return Api(await aiohttp_client(ServedByCdnstore(app)))

    return make


async def exchange(host: str, port: int, head: bytes) -> bytes:
    """Send a request head byte for byte (`Connection: close` in it, or refused); the whole answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def raw(api: Api, head: bytes) -> Answer:
    data = await exchange(str(api.client.host), int(api.client.port or 0), head)
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    kind = headers.get("Content-Type", "")
    return Answer(int(status_line.split()[1]), json.loads(body) if "json" in kind else body.decode(), headers)


def head_of(size: int, path: str = "/healthz") -> bytes:
    """A GET whose header fields take exactly `size` bytes, counted as the limit counts them."""
    fixed = [("Host", "127.0.0.1"), ("Connection", "close")]
    used = sum(len(k) + len(v) + 4 for k, v in fixed)
    padding = size - used - len("X-Padding") - 4
    fields = [*fixed, ("X-Padding", "p" * padding)]
    assert sum(len(k) + len(v) + 4 for k, v in fields) == size
    return (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n").encode()


def too_large(answer: Answer, limit: int, code: str = "headers_too_large", status: int = 431) -> dict[str, Any]:
    problem = answer.problem(status, code)
    assert problem["limit"] == limit and str(limit) in problem["detail"], problem
    assert answer.headers.get("Retry-After") is None
    return problem


async def test_one_header_field_over_the_limit_is_431_naming_the_limit(served: MakeServed) -> None:
    api = await served()
    answer = await api.call("GET", "/healthz", headers={"X-Padding": "p" * (LIMIT + 1000)})
    too_large(answer, LIMIT)
    small = await served(http={"max_header_bytes": 8192})  # configurable: a 10 kB header is too much there
    tens = await small.call("GET", "/api/v1/me", headers={"Authorization": "Bearer " + "t" * 10_000})
    too_large(tens, 8192)
    LEDGER.add("oversized headers", bad_inputs=2, server_errors=server_errors([answer, tens]))


async def test_header_fields_too_large_together_are_431_naming_the_largest(api: Api) -> None:
    fields = {f"X-Field-{n}": "v" * 500 for n in range(LIMIT // 500)}  # each one well within the limit
    fields["X-The-Largest"] = "w" * 800
    answer = await api.call("GET", "/api/v1/files", headers=fields)
    problem = too_large(answer, LIMIT)
    assert problem["field"] == "X-The-Largest" and "X-The-Largest" in problem["detail"]
    LEDGER.add("oversized headers", bad_inputs=1, server_errors=server_errors([answer]))


async def test_more_header_fields_than_allowed_is_431(served: MakeServed) -> None:
    api = await served()
    answer = await api.call("GET", "/healthz", headers={f"X-{n}": "1" for n in range(MAX_HEADER_FIELDS + 1)})
    too_large(answer, MAX_HEADER_FIELDS)
    LEDGER.add("oversized headers", bad_inputs=1, server_errors=server_errors([answer]))


async def test_a_request_target_over_its_limit_is_414(served: MakeServed) -> None:
    api = await served()
    answer = await api.call("GET", "/api/v1/files?q=" + "q" * (MAX_REQUEST_LINE + 10))
    too_large(answer, MAX_REQUEST_LINE, code="uri_too_long", status=414)
    within = await api.call("GET", "/api/v1/files?q=" + "q" * (MAX_REQUEST_LINE - 200))  # not logged in
    within.problem(401, "unauthorized")
    LEDGER.add("oversized headers", bad_inputs=1, server_errors=server_errors([answer, within]))


async def test_header_fields_up_to_the_limit_are_served_one_byte_more_is_not(served: MakeServed) -> None:
    api = await served()
    assert (await raw(api, head_of(LIMIT))).expect(200) == {"status": "ok"}
    over = await raw(api, head_of(LIMIT + 1))
    too_large(over, LIMIT)
    await api.make_user("alice")
    alice = await api.login("alice")
    me = await alice.get("/api/v1/me", headers={"X-Padding": "p" * (LIMIT - 1000)})
    assert me.expect(200)["username"] == "alice"
    LEDGER.add("oversized headers", bad_inputs=1, server_errors=server_errors([over, me]))


async def test_a_request_that_is_not_http_is_400_problem_json(served: MakeServed) -> None:
    api = await served()
    answers = [
        await raw(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\nConnection: close\r\n\r\n"),
        await raw(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\nConnection: close\r\n\r\n"),
        await raw(api, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n"),  # TLS on the HTTP port
    ]
    for answer in answers:
        problem = answer.problem(400, "bad_request")
        assert problem["detail"].startswith("the request is not valid HTTP")
        assert "Traceback" not in problem["detail"]
    LEDGER.add("oversized headers", bad_inputs=len(answers), server_errors=server_errors(answers))


async def test_cdnstore_serve_answers_oversized_heads_with_problem_json(tmp_path: Path, daemon: Daemon) -> None:
    write_config(tmp_path, daemon.port, http={"max_header_bytes": 8192})
    await daemon.start()
    answers = []
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        for headers, path in [
            ({"X-Padding": "p" * 10_000}, "/healthz"),
            ({"X-Padding": "p" * 7000, "X-More": "m" * 2000}, "/healthz"),
            ({}, "/healthz?" + "q" * (MAX_REQUEST_LINE + 1)),
            ({"X-Padding": "p" * 7000}, "/healthz"),
        ]:
            async with http.get(path, headers=headers) as resp:
                kind = resp.headers.get("Content-Type", "")
                answers.append(
                    Answer(
                        resp.status,
                        await resp.json(content_type=None) if "json" in kind else await resp.text(),
                        resp.headers,
                    )
                )
    too_large(answers[0], 8192)
    assert too_large(answers[1], 8192)["field"] == "X-Padding"
    too_large(answers[2], MAX_REQUEST_LINE, code="uri_too_long", status=414)
    assert answers[3].expect(200) == {"status": "ok"}
    code, _ = await daemon.stop(within=15)  # and SIGTERM still stops it cleanly
    assert code == 0, daemon.log.read_text()
    LEDGER.add("oversized headers", bad_inputs=3, server_errors=server_errors(answers))


# ------------------------------------------------------------------------ security headers on answers


async def raw_answer_headers(port: int, head: bytes) -> tuple[int, dict[str, str]]:
    data = await exchange("127.0.0.1", port, head)
    status_line, *lines = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return int(status_line.split()[1]), dict(line.split(": ", 1) for line in lines)


async def test_every_answer_says_nosniff_names_no_server_version_and_api_answers_are_not_stored(
    tmp_path: Path, daemon: Daemon
) -> None:
    write_config(tmp_path, daemon.port)
    await daemon.start()
    async with aiohttp.ClientSession(base_url=daemon.url) as http:
        admin = await admin_session(daemon, http)
        login = {"username": "root", "password": PASSWORD}
        calls: list[tuple[str, str, Any, int]] = [
            ("GET", "/", None, 200),
            ("GET", "/s/some-token", None, 200),
            ("GET", "/static/app.js", None, 200),
            ("GET", "/static/nope.js", None, 404),
            ("GET", "/no/such/route", None, 404),
            ("PUT", "/healthz", None, 405),
            ("GET", "/healthz", None, 200),
            ("GET", "/api/openapi.json", None, 200),
            ("GET", "/api/v1/me", None, 401),
            ("POST", "/api/v1/auth/login", login, 200),
            ("POST", "/api/v1/auth/login", {**login, "password": "wrong password"}, 401),
            ("GET", "/api/v1/me", {"token": admin.tokens["access_token"]}, 200),
            ("POST", "/api/v1/auth/refresh", {"refresh_token": admin.tokens["refresh_token"]}, 200),
        ]
        for method, path, body, status in calls:
            headers = {}
            if isinstance(body, dict) and "token" in body:
                headers, body = {"Authorization": f"Bearer {body['token']}"}, None
            async with http.request(method, path, json=body, headers=headers) as resp:
                assert resp.status == status, (method, path, await resp.text())
                assert resp.headers["X-Content-Type-Options"] == "nosniff", path
                assert resp.headers.get("Server", "cdnstore") == "cdnstore", (path, resp.headers["Server"])
                if path.startswith("/api/"):
                    assert resp.headers["Cache-Control"] == "no-store", path
    # An answer made before the app runs (the request cannot be parsed) too.
    status, headers = await raw_answer_headers(daemon.port, head_of(LIMIT + 100))
    assert status == 431 and headers["X-Content-Type-Options"] == "nosniff"
    assert headers.get("Server", "cdnstore") == "cdnstore"
    code, _ = await daemon.stop(within=30)
    assert code == 0


def csp(answer: Answer) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in answer.headers["Content-Security-Policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


async def test_the_pages_csp_lets_it_connect_to_itself_and_the_registered_servers_only(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    page = csp(await api.call("GET", "/"))
    assert page["connect-src"] == "'self'"
    assert (page["base-uri"], page["form-action"], page["frame-ancestors"]) == ("'none'", "'self'", "'none'")
    admin = await api.user("root", admin=True)
    newyork = await admin.add_server(weed, "newyork", bucket)
    dallas = await admin.add_server(weed, "dallas", bucket)

    def origin(name: str) -> str:
        return weed.instance(name).endpoint_url.rstrip("/")

    assert csp(await api.call("GET", "/"))["connect-src"].split() == [
        "'self'",
        *sorted([origin("newyork"), origin("dallas")]),
    ]
    # The registry changes: a server moves, another is removed; the next page load follows.
    (
        await admin.patch(
            f"/api/v1/servers/{newyork['id']}",
            json={
                "endpoint_url": weed.instance("detroit").endpoint_url,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
            },
        )
    ).expect(200)
    (await admin.delete(f"/api/v1/servers/{dallas['id']}")).expect(204)
    assert csp(await api.call("GET", "/"))["connect-src"].split() == ["'self'", origin("detroit")]
    # The share page only talks to this origin (its download is a navigation, not a connection).
    share = csp(await api.call("GET", "/s/some-token"))
    assert share["connect-src"] == "'self'"
    # Both pages show previews from the servers' presigned GETs: images, media and frames from there too.
    for policy in (share, csp(await api.call("GET", "/"))):
        assert policy["img-src"].split() == ["'self'", "data:", origin("detroit")]
        assert policy["media-src"].split() == policy["frame-src"].split() == ["'self'", origin("detroit")]
        assert policy["default-src"] == "'self'" and "script-src" not in policy
    assert csp(await api.call("GET", "/static/index.html"))["connect-src"].split() == ["'self'", origin("detroit")]


def test_a_server_url_that_is_not_a_plain_origin_stays_out_of_the_policy() -> None:
    assert origin_of("http://127.0.0.1:8333/") == "http://127.0.0.1:8333"
    assert origin_of("HTTPS://S3.Example.COM") == "https://s3.example.com"
    assert origin_of("http://[::1]:9000/bucket") == "http://[::1]:9000"
    for bad in ("http://x;script-src *", "http://a b", "ftp://host", "http://host:99999", "http://'x'"):
        assert origin_of(bad) is None, bad


async def test_the_demo_pages_csp_names_the_servers_it_registers_after_start(tmp_path: Path) -> None:
    port = unused_port()
    proc, out = await start_demo(tmp_path, port)
    try:
        endpoints = re.findall(r"^    \w+ +.+?(http://127\.0\.0\.1:\d+)", out, re.M)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as resp:
            policy = resp.headers["Content-Security-Policy"]
        connect = next(d for d in policy.split(";") if d.strip().startswith("connect-src")).split()[1:]
        assert len(endpoints) == 5 and sorted(connect) == sorted(["'self'", *endpoints])
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 30)
