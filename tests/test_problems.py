"""Every error answer is problem+json of one shape; 400 vs 422; unknown routes and methods."""

from __future__ import annotations

import io

import pytest
from apihelp import PROBLEM_KEYS, Answer, Api


async def test_every_error_path_answers_the_same_problem_shape(api: Api) -> None:
    admin = await api.user("root", admin=True)
    alice = await api.user("alice")
    answers: dict[tuple[int, str], Answer] = {
        (400, "malformed_json"): await api.call(
            "POST", "/api/v1/auth/login", data="{not json", headers={"Content-Type": "application/json"}
        ),
        (401, "invalid_credentials"): await api.call(
            "POST", "/api/v1/auth/login", json={"username": "alice", "password": "wrong-pw"}
        ),
        (401, "unauthorized"): await api.call("GET", "/api/v1/me"),
        (403, "forbidden"): await alice.get("/api/v1/users"),
        (404, "not_found"): await api.call("GET", "/api/v1/nothing-here"),
        (404, "server_not_found"): await admin.get("/api/v1/servers/00000000-0000-0000-0000-000000000000"),
        (405, "method_not_allowed"): await api.call("PUT", "/api/v1/auth/login"),
        (409, "username_taken"): await admin.post(
            "/api/v1/users", json={"username": "alice", "password": "pass-word-1"}
        ),
        (413, "request_too_large"): await api.call("POST", "/api/v1/auth/login", data=io.BytesIO(b"x" * (2 << 20))),
        (422, "invalid_field"): await api.call("POST", "/api/v1/auth/login", json={"username": "alice"}),
        (422, "unknown_field"): await api.call(
            "POST", "/api/v1/auth/login", json={"username": "a", "password": "b", "extra": 1}
        ),
    }
    for (status, code), answer in answers.items():
        problem = answer.problem(status, code)
        assert set(problem) >= PROBLEM_KEYS
        assert isinstance(problem["title"], str) and problem["title"]
        assert isinstance(problem["detail"], str) and problem["detail"]
        assert problem["type"] == f"urn:cdnstore:problem:{code}"
        assert "Traceback" not in problem["detail"] and "<html" not in problem["detail"].lower()
    assert "Allow" in answers[(405, "method_not_allowed")].headers


async def test_valid_json_that_is_not_an_object_is_422(api: Api) -> None:
    for body in ("[]", '"text"', "42", "null"):
        answer = await api.call("POST", "/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"})
        assert answer.problem(422, "invalid_field")["detail"].startswith("body"), body


async def test_a_422_names_every_bad_field(api: Api) -> None:
    answer = await api.call("POST", "/api/v1/auth/login", json={"username": 5, "nickname": "x"})
    problem = answer.problem(422, "invalid_field")
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"username", "password", "nickname"}


async def test_an_unexpected_failure_is_a_bare_500_without_a_trace(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from cdnstore import appkeys

    accounts = api.app[appkeys.ACCOUNTS]

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(accounts, "login", broken)
    answer = await api.call("POST", "/api/v1/auth/login", json={"username": "a", "password": "b"})
    problem = answer.problem(500, "internal_error")
    assert "secret internals" not in problem["detail"]


async def test_healthz_answers_ok(api: Api) -> None:
    assert (await api.call("GET", "/healthz")).expect(200) == {"status": "ok"}


async def test_a_lone_surrogate_anywhere_in_a_body_is_422_naming_where(api: Api) -> None:
    for body, field in (
        ('{"username": "a\\ud800", "password": "x"}', "username"),
        ('{"username": "a", "password": "\\udfffx"}', "password"),
        ('{"username": "a", "password": "x", "\\ud800": 1}', "\\ud800"),
    ):
        answer = await api.call("POST", "/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"})
        assert answer.problem(422, "invalid_field")["detail"].startswith(f"{field}: "), answer.body
    paired = '{"username": "\\ud83d\\ude00", "password": "x"}'  # a whole pair is an emoji: just a wrong login
    answer = await api.call("POST", "/api/v1/auth/login", data=paired, headers={"Content-Type": "application/json"})
    answer.problem(401, "invalid_credentials")


async def test_bodies_are_read_as_json_reads_them_past_what_the_fast_reader_takes(api: Api) -> None:
    admin = await api.user("root", admin=True)

    async def announce(body: bytes) -> Answer:
        return await admin.post("/api/v1/files", data=body, headers={"Content-Type": "application/json"})

    # An integer past 64 bits stays an integer (a size too large, 413), not a float (strict: 422).
    (await announce(b'{"name": "a", "size": 123456789012345678901234567890}')).problem(413, "file_too_large")
    assert (await announce(b'{"name": "a", "size": NaN}')).problem(422, "invalid_field")["field"] == "size"
    (await announce(b'{"name": "a", "size": ')).problem(400, "malformed_json")


async def test_a_deeply_nested_body_is_400_problem_json_on_every_route_that_reads_one(api: Api) -> None:
    # (Checked on main: `{"a":` x5000 raised RecursionError in json.loads, a 500 with a traceback logged.)
    admin = await api.user("root", admin=True)
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000  # 10 kB, within http.max_body_bytes
    lists = b"[" * 5000 + b"]" * 5000
    surrogate = b'{"a":' * 900 + b'"\\ud800"' + b"}" * 900  # parsed by orjson, then walked for the surrogate
    answers = [
        await api.call("POST", "/api/v1/auth/login", data=deep, headers={"Content-Type": "application/json"}),
        await api.call("POST", "/api/v1/auth/login", data=lists, headers={"Content-Type": "application/json"}),
        await admin.post("/api/v1/files", data=deep, headers={"Content-Type": "application/json"}),
        await api.call("POST", "/api/v1/public/links/nothing/download", data=deep),
    ]
    for answer in answers:
        problem = answer.problem(400, "malformed_json")
        assert "nested too deeply" in problem["detail"]
    walked = await api.call("POST", "/api/v1/auth/login", data=surrogate, headers={"Content-Type": "application/json"})
    assert walked.status in (400, 422), walked.body
    walked.problem(walked.status, "malformed_json" if walked.status == 400 else "invalid_field")


async def test_a_nul_or_a_control_character_in_a_static_path_is_404_problem_json(api: Api) -> None:
    # (Checked on main: /static/%00 raised "embedded null byte" in the file lookup: 500.)
    for path in ("/static/%00", "/static/app.js%00.png", "/static/%0a", "/static/%7f.js", "/static/%c0%ae%c0%ae/x.js"):
        (await api.call("GET", path)).problem(404, "not_found")
    (await api.call("GET", "/static/app.js")).expect(200)
