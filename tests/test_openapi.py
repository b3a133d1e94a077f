"""/api/openapi.json: a valid OpenAPI 3.1 document naming every route the app serves."""

from __future__ import annotations

from apihelp import Api
from openapi_spec_validator import validate

from cdnstore.app import ROUTES


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
