"""The OpenAPI 3.1 document, generated from the endpoint declarations and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from .endpoint import FORM, Endpoint
from .problems import PROBLEM_TYPE
from .schemas import Problem

REF = "#/components/schemas/{model}"
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    302: "Redirect to the URL",
    400: "Malformed JSON",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    413: "Too large",
    422: "Invalid fields",
    429: "Too many attempts",
    503: "Unavailable",
    507: "Quota exceeded",
}


def build(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    models = _models(endpoints)
    keyed, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    refs = {m: keyed[(m, "validation")] for m in models}
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(document_path(ep.path), {})[ep.method.lower()] = _operation(ep, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cdnstore",
            "version": __version__,
            "description": "A geo-distributed file store in front of S3-compatible servers.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token from /api/v1/auth/login",
                },
                "events": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's own events_token if it was registered with one, "
                    "else the events.token shared with the storage servers",
                },
            },
        },
    }


def document_path(path: str) -> str:
    """aiohttp's `{name:regex}` placeholders as OpenAPI's `{name}`."""
    return re.sub(r"{(\w+):[^}]*}", r"{\1}", path)


def _models(endpoints: Sequence[Endpoint]) -> list[type[BaseModel]]:
    seen: dict[type[BaseModel], None] = {Problem: None}
    for ep in endpoints:
        for model in (ep.body, ep.query, *ep.responses.values()):
            if isinstance(model, type) and issubclass(model, BaseModel):
                seen[model] = None
    return list(seen)


def _operation(ep: Endpoint, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": ep.handler.__name__, "summary": ep.summary, "tags": [ep.tag]}
    if ep.description:
        op["description"] = ep.description
    if ep.auth != "none":
        op["security"] = [{"bearer" if ep.auth == "user" else "events": []}]
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", document_path(ep.path))
    ]
    if ep.query is not None:
        schema = ep.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        params += [
            {"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema.get("properties", {}).items()
        ]
    if params:
        op["parameters"] = params
    if ep.body is not None:
        kinds = ("application/json", FORM) if ep.forms else ("application/json",)
        op["requestBody"] = {"required": True, "content": {kind: {"schema": refs[ep.body]} for kind in kinds}}
    op["responses"] = {str(status): _response(status, model, refs) for status, model in ep.responses.items()}
    # Any write may meet a database that refuses writes (a full disk): 503 database_unavailable, Retry-After.
    errors = sorted({*ep.errors, 503}) if ep.method not in ("GET", "HEAD") else ep.errors
    for status in errors:
        op["responses"][str(status)] = {
            "description": STATUS_TEXT.get(status, "Error"),
            "content": {PROBLEM_TYPE: {"schema": refs[Problem]}},
        }
    return op


def _response(
    status: int, model: type[BaseModel] | str | None, refs: dict[type[BaseModel], dict[str, Any]]
) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": STATUS_TEXT.get(status, "OK")}
    if isinstance(model, str):
        answer["content"] = {model: {"schema": {"type": "string"}}}
    elif model is not None:
        answer["content"] = {"application/json": {"schema": refs[model]}}
    if status == 302:
        answer["headers"] = {"Location": {"schema": {"type": "string"}}}
    return answer
