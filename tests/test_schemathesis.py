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
import time
from collections import Counter
from typing import Any

import schemathesis
from apihelp import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import LEDGER
from schemathesis.checks import (  # type: ignore[attr-defined]
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err, Result

from cdnstore.seaweed import WeedCluster

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
    "PATCH /api/v1/users/{id}": {"is_disabled": False},
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations whose real ids would take the test's own setup apart: they only see generated ids.
NO_REAL_IDS = {("DELETE", "/api/v1/servers/{id}"), ("PATCH", "/api/v1/servers/{id}")}
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
    return {
        "tokens": [admin.access, user.access],
        "server_id": servers["dallas"]["id"],
        "file_id": file_id,
        "link_id": link["id"],
        "token": link["token"],
        "user_id": victim.user["id"],
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
    if path.startswith("/api/v1/files/"):
        return {"id": known["file_id"], "link_id": known["link_id"]}
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
