"""Declare an endpoint once: its route, auth, permission, request and response schemas.

The same declaration validates requests (pydantic models) and generates the OpenAPI document
(`api/openapi.py`), so the two cannot drift. It also gives the route the scope an API key needs for it
(`scope_of`): derived from the permission the route declares, so that every route has one without a list
to keep; `auth="session"` routes (passwords, keys) refuse keys altogether.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from .. import appkeys
from ..errors import BadRequest, Forbidden, InsufficientScope, Invalid
from ..keys import Grant
from ..models import PERMISSION_SCOPES, User
from .security import authenticate_user

M = TypeVar("M", bound=BaseModel)
FORM = "application/x-www-form-urlencoded"
# "session": a user signed in (an access token), never an API key: what manages passwords, sessions and keys.
Auth = Literal["none", "user", "session", "events"]
SAFE_METHODS = frozenset({"GET", "HEAD"})


def scope_of(method: str, permission: str | None, admin: bool) -> str:
    """The scope an API key needs for a route: the admins' routes `admin`; else that of the permission it
    declares (models.PERMISSION_SCOPES); a route declaring none (the caller's own things: history, /me)
    `read` to read and `upload` to change, except DELETE, `delete`."""
    if admin:
        return "admin"
    if permission is not None:
        return PERMISSION_SCOPES[permission]
    if method in SAFE_METHODS:
        return "read"
    return "delete" if method == "DELETE" else "upload"


Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "user"
    permission: str | None = None
    admin: bool = False
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | str | None] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    description: str = ""
    forms: bool = False  # the body may also come as an HTML form's fields (a page's form posting to it)
    scope: str = ""  # what an API key needs (scope_of, unless the route names it)

    def __post_init__(self) -> None:
        if not self.scope:
            object.__setattr__(self, "scope", scope_of(self.method, self.permission, self.admin))


class Router:
    """One api module's route table: its `@endpoint` declarations, in order. The module hands them to
    `app.py` as its `ROUTES`; there is no global table, so what is served is what app.py lists."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def __call__(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: Auth = "user",
        permission: str | None = None,
        admin: bool = False,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        responses: dict[int, type[BaseModel] | str | None] | None = None,
        errors: tuple[int, ...] = (),
        description: str = "",
        forms: bool = False,
        scope: str = "",
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    auth,
                    permission,
                    admin,
                    body,
                    query,
                    responses or {200: None},
                    errors,
                    description or (handler.__doc__ or "").strip(),
                    forms,
                    scope,
                )
            )
            return handler

        return register


def add_routes(app: web.Application, endpoints: Iterable[Endpoint]) -> None:
    for ep in endpoints:
        app.router.add_route(ep.method, ep.path, _wrap(ep), name=ep.handler.__name__)


def _wrap(ep: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    # A frozen query model validated from no parameters is the same every time: validated once, then shared
    # (a download link usually has no query: this is its validation).
    no_query: list[BaseModel] = []
    shareable = ep.query is not None and bool(ep.query.model_config.get("frozen"))

    async def handle(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if ep.auth in ("user", "session"):
            user, grant = await authenticate_user(request)
            request[appkeys.USER] = user
            if grant is not None:
                request[appkeys.GRANT] = grant
            _authorize(ep, user, grant)
        # auth == "events": the storage webhook authenticates in its handler (api/events.py), as the token
        # may be in the body (an RGW topic's OpaqueData), which is read there.
        if ep.query is not None:
            if no_query and not request.query:
                kwargs["query"] = no_query[0]
            else:
                kwargs["query"] = validate(ep.query, dict(request.query), where="query")
                if shareable and not no_query and not request.query:
                    no_query.append(kwargs["query"])
        if ep.body is not None:
            form = ep.forms and request.content_type == FORM
            kwargs["body"] = validate(ep.body, await read_form(request) if form else await read_json(request))
        return await ep.handler(request, **kwargs)

    return handle


def _authorize(ep: Endpoint, user: User, grant: Grant | None) -> None:
    if grant is not None:
        if ep.auth == "session":
            raise InsufficientScope("an API key cannot manage passwords, sessions or keys: sign in for that")
        if ep.scope not in grant.scopes:
            raise InsufficientScope(f"this API key lacks the scope {ep.scope!r} that this action needs")
    if ep.admin and not user.is_admin:
        raise Forbidden("this action needs an administrator")
    if ep.permission and not user.can(ep.permission):
        raise Forbidden(f"this action needs the permission {ep.permission}")


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return _parse(raw)
    except RecursionError:  # (json.loads and the surrogate walk recurse: `{"a":` 5000 times ran out of stack)
        raise BadRequest("the body is not valid JSON: it is nested too deeply", code="malformed_json") from None


def _parse(raw: bytes) -> Any:
    data: Any = _UNREAD
    if _LONG_NUMBER.search(raw) is None:  # (orjson reads integers past 64 bits as floats; json.loads as ints)
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(raw)  # the usual body, some 10x faster than json.loads
    if data is _UNREAD:
        # json.loads decides the rest as before: what orjson refuses and it takes (NaN, escaped lone
        # surrogates, UTF-16 text), and its own message for what neither takes.
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from None
    if _ESCAPED_SURROGATE.search(raw) and (field := _lone_surrogate(data, "")) is not None:
        raise Invalid(field or "body", "must be Unicode text: a lone surrogate escape (\\ud800-\\udfff) is not")
    return data


async def read_form(request: web.Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded), each once: a field given twice is 422."""
    fields = await request.post()
    found: dict[str, str] = {}
    for name, value in fields.items():
        if name in found:
            raise Invalid(name, "given more than once")
        if not isinstance(value, str):  # (urlencoded forms carry text only; this keeps the type honest)
            raise Invalid(name, "must be text")
        found[name] = value
    return found


_UNREAD = object()
_LONG_NUMBER = re.compile(rb"\d{19}")

# JSON may escape half of a UTF-16 pair alone ("\ud800"): valid JSON, but no text that SQLite, argon2 or
# a file name can hold. Only bodies with such an escape are walked.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The path of the first key or string in `value` that holds a lone surrogate, else None."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = key.encode(errors="backslashreplace").decode()  # the answer names it, in valid text
            inner = f"{path}.{shown}" if path else shown
            found = _lone_surrogate(key, inner) or _lone_surrogate(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for n, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{n}]")
            if found is not None:
                return found
    return None


def validate(model: type[M], data: Any, *, where: str = "body") -> M:
    if where == "body" and not isinstance(data, dict):
        raise Invalid("body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc, where) from None


def invalid_from(exc: ValidationError, where: str) -> Invalid:
    errors = [
        {
            "field": ".".join(str(p) for p in e["loc"]) or where,
            "message": "unknown field" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, "),
        }
        for e in exc.errors()
    ]
    first = errors[0]
    err = Invalid(
        first["field"], first["message"], code="unknown_field" if first["message"] == "unknown field" else None
    )
    err.extra["errors"] = errors
    return err


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # orjson: compact UTF-8 JSON as json.dumps(separators=(",", ":"), ensure_ascii=False) would give it
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", charset="utf-8", headers=headers
    )
