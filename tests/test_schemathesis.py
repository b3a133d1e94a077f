"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

The real app, on real SeaweedFS servers, is called over HTTP at its live URL with real tokens: an
administrator (who owns a stored file, a link, the five servers) and an ordinary user. Every operation
gets a bounded, derandomized set of generated requests, valid ones and invalid ones; each answer must
not be a 5xx and must match the document (status code, content type, body schema). Real ids are mixed
into the generated path parameters so that the found-object branches run too, except where that would
destroy the test's own setup (deleting or reconfiguring the servers).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import Any

import schemathesis
from apihelp import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import LEDGER, area
from schemathesis.checks import (  # type: ignore[attr-defined]
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err, Result

from cdnstore.app import ROUTES
from testbed.seaweed import WeedCluster

MAX_EXAMPLES = 25
# Operations whose found-object branch (200) must be seen, with a body that is valid for them (None: none).
# Besides the generated examples, each is sent once with the administrator's token, the real ids and this
# body: the examples are fixed by the test's code (derandomized), so a code change alone could otherwise
# leave one without a valid draw.
REACHED: dict[str, dict[str, Any] | None] = {
    "GET /api/v1/files/{id}": None,
    "GET /api/v1/files/{id}/download": None,
    "GET /api/v1/files/{id}/links": None,
    "GET /api/v1/servers/{id}": None,
    "GET /api/v1/public/links/{token}": None,
    "GET /api/v1/links": None,
    "GET /api/v1/links/{link_id}": None,
    "PATCH /api/v1/links/{link_id}": {"max_downloads": None},
    "PATCH /api/v1/users/{id}": {"is_disabled": False},
    "GET /api/v1/upload-requests/{id}": None,
    "GET /api/v1/public/upload-requests/{token}": None,
    "GET /api/v1/public/uploads/{upload_token}/upload": None,
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations whose real ids would take the test's own setup apart: they only see generated ids. A real probe
# writes objects whose storage events reach the daemon later, while hypothesis draws the next cases: every
# request takes a request id from `random`, and a draw that sees `random` move is refused as flaky.
NO_REAL_IDS = {
    ("DELETE", "/api/v1/servers/{id}"),
    ("PATCH", "/api/v1/servers/{id}"),
    ("DELETE", "/api/v1/links/{link_id}"),
    ("POST", "/api/v1/servers/{id}/probe"),
}
# Not fuzzed at all: the webhook answers 401 to anything without the events token, and a generated
# server or outgoing webhook with a random address would make cdnstore resolve and call arbitrary hosts.
SKIPPED = {
    ("POST", "/api/v1/events/s3/{server_name}"),
    ("POST", "/api/v1/events/s3/{server_name}/{token}"),
    ("POST", "/api/v1/servers"),
    ("POST", "/api/v1/webhooks"),
}


async def _setup(api: Api, weed: WeedCluster, bucket: str) -> dict[str, Any]:
    admin = await api.user("root", admin=True)
    servers = await admin.add_layout(weed, bucket)
    user = await api.user("alice")
    victim = await api.user("victim")
    file_id = (await admin.upload("fuzzed.txt", b"fuzz me\n" * 64))["file"]["id"]
    await admin.wait_stored(file_id)
    link = (await admin.post(f"/api/v1/files/{file_id}/links", json={})).expect(201)
    asking = (await admin.post("/api/v1/upload-requests", json={"message": "fuzz"})).expect(201)
    sent = await api.call(
        "POST", f"/api/v1/public/upload-requests/{asking['token']}/files", json={"name": "sent.txt", "size": 9}
    )
    scripted = await admin.key("read", "upload", "delete", "share", "admin")  # an API key may do all an admin does
    return {
        "tokens": [admin.access, user.access, scripted.access],
        "server_id": servers["dallas"]["id"],
        "file_id": file_id,
        "link_id": link["id"],
        "token": link["token"],
        "user_id": victim.user["id"],
        "request_id": asking["id"],
        "request_token": asking["token"],
        "upload_token": sent.expect(201)["upload_token"],  # (an upload in progress: its view is found)
        "zones": sorted({s["zone"] for s in servers.values()}),
    }


def _real_ids(method: str, path: str, known: dict[str, Any]) -> dict[str, str]:
    if (method, path) in NO_REAL_IDS:
        return {}
    if path.startswith("/api/v1/servers/"):
        return {"id": known["server_id"]}
    if path.startswith("/api/v1/users/"):
        return {"id": known["user_id"]}  # never the administrator the test runs as
    if path.startswith("/api/v1/public/links/"):
        return {"token": known["token"]}
    if path.startswith("/api/v1/upload-requests/"):
        return {"id": known["request_id"]}
    if path.startswith("/api/v1/public/upload-requests/"):
        return {"token": known["request_token"]}
    if path.startswith("/api/v1/public/uploads/"):
        return {"upload_token": known["upload_token"]}
    if path.startswith("/api/v1/trash/"):
        return {"id": known["file_id"]}  # (a live file: not in the trash, 404 unless a DELETE sent it there)
    if path.startswith("/api/v1/files/"):
        return {"id": known["file_id"], "link_id": known["link_id"]}
    if path.startswith("/api/v1/links/"):
        return {"link_id": known["link_id"]}
    return {}


Operation = schemathesis.APIOperation[Any, Any, Any, Any]


def _operation(result: Result[Operation, InvalidSchema]) -> Operation:
    """An operation of the document, or the reason the document cannot give it."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def _fuzz_operation(
    op: Operation,
    base_url: str,
    known: dict[str, Any],
    real: dict[str, str],
    failures: list[str],
    statuses: Counter[tuple[str, int]],
) -> int:
    strategy = st.one_of(
        op.as_strategy(schemathesis.GenerationMode.POSITIVE), op.as_strategy(schemathesis.GenerationMode.NEGATIVE)
    )
    cases = 0

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, token=st.sampled_from(known["tokens"]), use_real=st.booleans())
    def run(case: schemathesis.Case[Operation], token: str, use_real: bool) -> None:
        nonlocal cases
        cases += 1
        if use_real and real and isinstance(case.path_parameters, dict):
            case.path_parameters = {
                **case.path_parameters,
                **{k: v for k, v in real.items() if k in case.path_parameters},
            }
        if use_real and isinstance(case.body, dict) and isinstance(case.body.get("zones"), list):
            case.body = {**case.body, "zones": known["zones"][:1]}  # zones of registered servers, as ids are real
        _exchange(op, case, token, base_url, failures, statuses)

    run()
    name = f"{op.method.upper()} {op.path}"
    if name in REACHED:  # and once for certain: the administrator, the real ids, a valid body
        body = REACHED[name]
        case = op.Case(path_parameters=real, body=body) if body is not None else op.Case(path_parameters=real)
        _exchange(op, case, known["tokens"][0], base_url, failures, statuses)
        cases += 1
    return cases


def _exchange(
    op: Operation,
    case: schemathesis.Case[Operation],
    token: str,
    base_url: str,
    failures: list[str],
    statuses: Counter[tuple[str, int]],
) -> None:
    """One request, counted by its answer's status and checked against the document."""
    headers = {"Authorization": f"Bearer {token}"}
    response = case.call(base_url=base_url, headers=headers, timeout=30)
    statuses[f"{op.method.upper()} {op.path}", response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except (AssertionError, FailureGroup) as exc:
        failures.append(f"{op.method.upper()} {op.path}: {exc}\n  {case.as_curl_command(headers)}")


def _fuzz(base_url: str, known: dict[str, Any], statuses: Counter[tuple[str, int]]) -> tuple[int, int, list[str]]:
    """Synchronous (schemathesis calls with `requests`): run in a thread while the loop serves the app."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    operations, cases, failures = 0, 0, list[str]()
    # Deletions last, so that they delete the real file and link only after every other operation used them.
    ops = sorted(map(_operation, schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE")
    for op in ops:
        method, path = op.method.upper(), op.path
        if (method, path) in SKIPPED:
            continue
        operations += 1
        cases += _fuzz_operation(op, base_url, known, _real_ids(method, path, known), failures, statuses)
    return operations, cases, failures


async def test_the_api_survives_schemathesis(api: Api, weed: WeedCluster, bucket: str) -> None:
    known = await _setup(api, weed, bucket)
    base_url = str(api.client.make_url("")).rstrip("/")
    started = time.monotonic()
    statuses: Counter[tuple[str, int]] = Counter()
    operations, cases, failures = await asyncio.to_thread(_fuzz, base_url, known, statuses)
    print(
        f"\nschemathesis: {operations} operations, {cases} cases, {len(failures)} failures"
        f" ({time.monotonic() - started:.1f}s)"
    )
    LEDGER.add(
        "schemathesis: generated valid and invalid requests",
        rounds=operations,
        bad_inputs=cases,
        server_errors=sum(n for (_, status), n in statuses.items() if status >= 500),
    )
    assert not failures, "\n\n".join(failures[:20])
    # The real ids were used: the found-object branches ran, not only the 404s.
    for reached in REACHED:
        assert statuses[reached, 200], (reached, sorted(statuses.items()))
    # The setup is intact: the administrator still reaches the stored file.
    admin_token = known["tokens"][0]
    got = await api.call("GET", f"/api/v1/files/{known['file_id']}", token=admin_token)
    assert got.status in (200, 404)  # a generated DELETE may have removed it, never a 5xx


# --- bytes schemathesis does not send: hostile encodings in paths, query strings, headers and bodies -------

HOSTILE = area("hostile bytes in paths, query strings, headers and bodies")
# Path segments: NUL, invalid UTF-8, overlong encodings ("." and "/" in two and three bytes), an encoded
# surrogate, CR/LF (log and header injection), an encoded traversal.
HOSTILE_SEGMENTS = (
    "%00",
    "a%00b",
    "%ff%fe",
    "%c0%ae%c0%ae",
    "%e0%80%af",
    "%ed%a0%80",
    "%0d%0aX-Injected:%20yes",
    "..%2f..%2fetc%2fpasswd",
)
HOSTILE_QUERY = "limit=%00&cursor=%ff%fe&q=%c0%ae%00&redirect=%ed%a0%80&days=%0a&include=%c0%80&event=%e0%80%af"
# Bytes outside the URL's alphabet, raw: the HTTP parser's own 400 (as problem+json).
RAW_TARGETS = (b"/static/\xff", b"/api/v1/files/\xc0\xae", b"/api/v1/files?q=\xc0\xae", b"/s/\x7f")
HOSTILE_HEADERS = (
    (b"X-Request-Id", b"\xff\xfe\xc0\xae"),
    (b"X-Forwarded-For", b"\xc0\xae, 203.0.113.9\xff"),
    (b"Origin", b"http://\xff\xfe"),
    (b"Cookie", b"cdnstore_refresh=\xc0\xae\xff"),
    (b"X-Cdnstore-Session", b"cookie\xe0\x80\xaf"),
    (b"Accept-Language", b"\xed\xa0\x80"),
)
HOSTILE_AUTHORIZATION = (b"Bearer \xff\xfe", b"Bearer \xc0\xae\xc0\xae", b"\xe0\x80\xaf")
HOSTILE_BODIES = (
    b'{"a":' * 5000 + b"1" + b"}" * 5000,  # 10 kB nested past the JSON reader's depth
    b"[" * 5000 + b"]" * 5000,
    b'{"name": "\xff\xfe", "username": "\xc0\xae", "password": "\xed\xa0\x80"}',  # invalid UTF-8 in strings
    b'{"name": "a\\u0000b", "username": "\\u0000", "password": "\\u0000\\u0000"}',  # NUL escaped
    b"\x00\x00\x00\x00",
)
NOWHERE = "00000000-0000-4000-8000-000000000000"  # the id that changing routes get with hostile headers


async def raw_exchange(base: str, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One request written byte for byte (Connection: close); its status, checked to be problem+json when
    it is an error."""
    host, port = base.split("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + host.encode(), b"Connection: close"]
        head += [name + b": " + value for name, value in headers]
        if body:
            head += [b"Content-Type: application/json", b"Content-Length: " + str(len(body)).encode()]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
    top = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    status = int(top[0].split()[1])
    kind = next((line.split(":", 1)[1].strip() for line in top[1:] if line.lower().startswith("content-type:")), "")
    assert status < 400 or kind.startswith("application/problem+json"), (method, target, status, kind)
    return status


def _filled(path: str, value: str) -> bytes:
    return re.sub(r"\{[^}]+\}", value, path).encode()


async def test_every_route_survives_hostile_bytes_in_paths_query_strings_headers_and_bodies(
    api: Api, weed: WeedCluster, bucket: str
) -> None:
    # (Checked on main: a NUL in a /static/ path and the deeply nested bodies answered 500.)
    known = await _setup(api, weed, bucket)
    base = str(api.client.make_url("")).rstrip("/")
    token = known["tokens"][0].encode()
    bearer = [(b"Authorization", b"Bearer " + token)]
    statuses: Counter[tuple[str, int]] = Counter()

    async def sent(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        status = await raw_exchange(base, method, target, headers, body)
        statuses[f"{method} {target[:60]!r}", status] += 1

    for ep in ROUTES:
        method, path = ep.method, ep.path
        for segment in HOSTILE_SEGMENTS if "{" in path else ():
            await sent(method, _filled(path, segment), bearer)
        await sent(method, _filled(path, NOWHERE) + b"?" + HOSTILE_QUERY.encode(), bearer)
        real = known["file_id"] if method == "GET" else NOWHERE  # (nothing real is changed by what follows)
        for header in HOSTILE_HEADERS:
            await sent(method, _filled(path, real), [*bearer, header])
        # The page's cookie session, its cookie's bytes no UTF-8 (read as the refresh token by the auth routes)
        page = [(b"Cookie", b"cdnstore_refresh=\xc0\xae\xff"), (b"X-Cdnstore-Session", b"cookie")]
        await sent(method, _filled(path, real), [*page, (b"Origin", base.encode())], b"{}" if ep.body else b"")
        for authorization in HOSTILE_AUTHORIZATION:
            await sent(method, _filled(path, real), [(b"Authorization", authorization)])
        for body in HOSTILE_BODIES if ep.body is not None else ():
            await sent(method, _filled(path, NOWHERE), bearer, body)
    for target in RAW_TARGETS:
        await sent("GET", target, bearer)
    errors = {what: n for what, n in statuses.items() if what[1] >= 500}
    LEDGER.add(HOSTILE, rounds=len(ROUTES), bad_inputs=sum(statuses.values()), server_errors=sum(errors.values()))
    assert not errors, errors
    # The setup is intact: nothing real was changed by a hostile request.
    (await api.call("GET", f"/api/v1/files/{known['file_id']}", token=known["tokens"][0])).expect(200)
