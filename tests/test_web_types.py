"""cdnstore/web/types.js, the page's JSDoc types of the API's answers, is what the OpenAPI document the app
serves makes (cdnstore/web_types.py, `python3 dev.py types`); its check fails while the file is stale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from apihelp import Api

from cdnstore import web_types
from cdnstore.api.schemas import FileOut, ServerOut
from cdnstore.models import JobStatus, LinkState, ReplicaState

IMPORTED = re.compile(r'import\("\./types\.js"\)\.(\w+)')  # how the page's modules name a type of types.js


async def test_types_js_is_what_the_served_openapi_document_makes(api: Api) -> None:
    document = (await api.call("GET", "/api/openapi.json")).expect(200)
    assert web_types.FILE.read_text(encoding="utf-8") == web_types.generated(document), (
        f"stale: run `{web_types.COMMAND}`"
    )


def test_each_status_is_a_typedef_of_its_enums_values_and_the_answers_name_it() -> None:
    text = web_types.generated(web_types.document())
    for enum in (JobStatus, LinkState, ReplicaState):
        values = " | ".join(json.dumps(member.value) for member in enum)
        assert f" * @typedef {{{values}}} {enum.__name__}\n" in text
    assert " * @property {JobStatus} status\n" in text
    assert ' * @property {"uploading" | "stored"} status\n' in text  # a file: a subset, spelled from the enum


def test_the_models_descriptions_become_the_jsdoc_comments() -> None:
    text = web_types.generated(web_types.document())
    expires = FileOut.model_fields["expires_at"].description
    assert f" * @property {{string | null}} expires_at {expires}\n" in text
    assert " * @property {Capabilities | null} capabilities\n" in text
    assert f"@property {{number}} unrecoverable {ServerOut.model_fields['unrecoverable'].description}\n" in text


def test_the_answers_keep_the_names_the_pages_modules_import() -> None:
    text = web_types.generated(web_types.document())
    modules = web_types.FILE.parent.glob("*.js")
    imported = {name for module in modules for name in IMPORTED.findall(module.read_text(encoding="utf-8"))}
    assert imported, "the page's modules import no type: the pattern below no longer finds them"
    for name in imported:
        assert f"}} {name}\n" in text, name


def test_the_check_fails_on_a_stale_file_naming_the_command_and_the_command_mends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = web_types.FILE.read_text(encoding="utf-8")
    copy = tmp_path / "cdnstore" / "web" / "types.js"
    copy.parent.mkdir(parents=True)
    copy.write_text(fresh.replace("@typedef {object} File\n", "@typedef {object} Fil\n"), encoding="utf-8")
    monkeypatch.setattr(web_types, "FILE", copy)

    assert web_types.main(["--check"]) == 1
    assert f"is stale: run `{web_types.COMMAND}`" in capsys.readouterr().err
    assert web_types.main([]) == 0
    assert copy.read_text(encoding="utf-8") == fresh
    assert web_types.main(["--check"]) == 0
    assert web_types.main([]) == 0
    assert "up to date" in capsys.readouterr().out


def test_a_schema_the_translation_does_not_know_stops_the_generation() -> None:
    document = {
        "paths": {
            "/x": {
                "get": {
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/XOut"}}}}
                    }
                }
            }
        },
        "components": {"schemas": {"XOut": {"type": "object", "properties": {"y": {"not": {"type": "string"}}}}}},
    }
    with pytest.raises(ValueError, match="no JSDoc type"):
        web_types.generated(document)
