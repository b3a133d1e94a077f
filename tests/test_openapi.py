"""/api/openapi.json: a valid OpenAPI 3.1 document naming every route the app serves."""

from __future__ import annotations

import ast
from enum import StrEnum
from pathlib import Path

import pytest
from apihelp import Api
from openapi_spec_validator import validate

from cdnstore import models
from cdnstore.api import schemas as schemas_module
from cdnstore.api.endpoint import validate as validate_body
from cdnstore.api.schemas import ServerPatch
from cdnstore.app import ROUTES
from cdnstore.errors import Invalid
from cdnstore.models import AddressingStyle, VersionStatus


async def test_the_document_is_valid_openapi_3_1(api: Api) -> None:
    document = (await api.call("GET", "/api/openapi.json")).expect(200)
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_the_document_names_every_route_the_app_serves(api: Api) -> None:
    document = (await api.call("GET", "/api/openapi.json")).expect(200)
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served = {
        (r.method, r.resource.canonical)
        for r in api.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    assert served == documented


async def test_request_schemas_come_from_the_validating_models(api: Api) -> None:
    document = (await api.call("GET", "/api/openapi.json")).expect(200)
    schemas = document["components"]["schemas"]
    for ep in ROUTES:
        if ep.body is not None:
            schema = schemas[ep.body.__name__]
            assert schema.get("additionalProperties") is False, ep.body.__name__
            assert set(schema["properties"]) == set(ep.body.model_fields)


async def test_every_authenticated_route_declares_its_401(api: Api) -> None:
    document = (await api.call("GET", "/api/openapi.json")).expect(200)
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if op.get("security"):
                assert "401" in op["responses"], (method, path)
                assert op["responses"]["401"]["content"]["application/problem+json"]


async def test_every_route_with_a_query_or_body_declares_its_422(api: Api) -> None:
    """Found by schemathesis: `GET /files/{id}/download?redirect=-1.5` answered an undocumented 422."""
    document = (await api.call("GET", "/api/openapi.json")).expect(200)
    for ep in ROUTES:
        if ep.query is not None or ep.body is not None:
            op = document["paths"][ep.path][ep.method.lower()]
            assert "422" in op["responses"], (ep.method, ep.path)


async def test_a_bad_redirect_flag_on_a_download_is_a_documented_422(api: Api) -> None:
    alice = await api.user("alice")
    answer = await alice.get("/api/v1/files/00000000-0000-0000-0000-000000000000/download?redirect=-1.5")
    assert answer.problem(422, "invalid_field")["field"] == "redirect"


# Every status enum of models.py, by name.
STATUS_ENUMS = {
    name: enum
    for name, enum in vars(models).items()
    if isinstance(enum, type) and issubclass(enum, StrEnum) and enum.__module__ == models.__name__
}


async def test_the_answers_statuses_are_their_enums_values_named_once_in_the_document(api: Api) -> None:
    """Every enum the document names is the models.py enum of that name, with its values in its order."""
    schemas = (await api.call("GET", "/api/openapi.json")).expect(200)["components"]["schemas"]
    enums = {name: schema["enum"] for name, schema in schemas.items() if "enum" in schema}
    assert {"Health", "JobStatus", "JobKind", "ReplicaState", "LinkState", "DeliveryStatus"} <= set(enums)
    for name, values in enums.items():
        assert values == [member.value for member in STATUS_ENUMS[name]], name
    assert schemas["ServerOut"]["properties"]["health"] == {"$ref": "#/components/schemas/Health"}
    assert schemas["JobOut"]["properties"]["status"] == {"$ref": "#/components/schemas/JobStatus"}
    assert schemas["FileOut"]["properties"]["status"]["enum"] == [VersionStatus.UPLOADING, VersionStatus.STORED]


def test_the_models_spell_no_status_but_through_its_enum() -> None:
    """A `Literal["stored", ...]` in api/schemas.py would say a status a second time, free to drift."""
    statuses = {member.value for enum in STATUS_ENUMS.values() for member in enum}
    tree = ast.parse(Path(schemas_module.__file__).read_text(encoding="utf-8"))
    spelled = {
        node.value
        for literal in ast.walk(tree)
        if isinstance(literal, ast.Subscript) and isinstance(literal.value, ast.Name) and literal.value.id == "Literal"
        for node in ast.walk(literal.slice)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert spelled, "no Literal of strings found: the walk above no longer sees them"
    assert not spelled & statuses


def test_a_server_body_takes_the_addressing_style_by_its_value_and_names_the_values_when_wrong() -> None:
    """Bodies are strict, and a strict enum field would take only a member: the style is lax there."""
    assert validate_body(ServerPatch, {"addressing_style": "virtual"}).addressing_style is AddressingStyle.VIRTUAL
    with pytest.raises(Invalid) as refused:
        validate_body(ServerPatch, {"addressing_style": "vhost"})
    assert refused.value.detail == "addressing_style: Input should be 'path' or 'virtual'"
