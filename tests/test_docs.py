"""docs/operations.md documents every configuration key with its default and environment variable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cdnstore.config import Config

DOC = Path(__file__).parent.parent / "docs" / "operations.md"


def reference() -> dict[str, tuple[str, str]]:
    """`section.key` -> (default, environment variable), from the reference tables."""
    text = DOC.read_text()
    section = text[text.index("## Configuration reference") :]
    return {m[1]: (m[2], m[3]) for m in re.finditer(r"^\| `(\w+\.\w+)` \| `(.*?)` \| `(\w+)` \| .+ \|$", section, re.M)}


def test_every_config_key_is_in_the_reference_with_its_default() -> None:
    documented = reference()
    missing = []
    for section, keys in Config().model_dump(mode="json").items():
        for key, default in keys.items():
            name = f"{section}.{key}"
            if name not in documented:
                missing.append(name)
                continue
            shown, env = documented[name]
            assert json.loads(shown) == default, f"{name}: the docs say {shown}, the default is {default!r}"
            assert env == f"CDNSTORE_{section.upper()}_{key.upper()}", name
    assert not missing, f"docs/operations.md lacks these configuration keys: {missing}"


def test_the_reference_names_no_key_that_does_not_exist() -> None:
    known = {f"{s}.{k}" for s, keys in Config().model_dump().items() for k in keys}
    assert set(reference()) <= known, set(reference()) - known


def test_every_test_named_in_the_security_doc_exists() -> None:
    root = Path(__file__).parent.parent
    text = (root / "docs" / "security.md").read_text()
    named = 0
    for cell in re.findall(r"\| ([^|]*`tests/[^|]*) \|\s*$", text, re.M):
        current = None
        for ref in re.findall(r"`(tests/\w+\.py)?(?:::(\w+))?`", cell):
            path, name = ref
            current = path or current
            assert current is not None, cell
            assert (root / current).exists(), current
            if name:
                assert re.search(rf"^(async )?def {name}\(", (root / current).read_text(), re.M), f"{current}::{name}"
                named += 1
    assert named >= 20


def test_the_reliability_table_has_every_area_the_suite_counts_and_shows_no_drift_or_5xx() -> None:
    """In docs/reliability.md, and in the figures of the last passing run (artifacts/) when there are some."""
    from reliability import counted_areas, read_artifact, read_doc

    counted = counted_areas()
    rows, line = read_doc()
    assert set(rows) == counted, f"run the whole suite, then `python3 dev.py reliability`: {set(rows) ^ counted}"
    assert all(row.drift == 0 and row.server_errors == 0 for row in rows.values()), rows
    assert re.search(r"5xx that no test expected: 0$", line), line
    saved = read_artifact()
    if saved is not None:
        rows, line = saved
        assert all(row.drift == 0 and row.server_errors == 0 for row in rows.values()), rows
        assert re.search(r"5xx that no test expected: 0$", line), line


def test_a_passing_run_saves_its_figures_to_artifacts_and_only_the_reliability_command_writes_the_doc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reliability

    doc = tmp_path / "reliability.md"
    doc.write_text(reliability.DOC.read_text())
    monkeypatch.setattr(reliability, "DOC", doc)
    monkeypatch.setattr(reliability, "ARTIFACT", tmp_path / "artifacts" / "reliability.json")
    area, before = sorted(reliability.counted_areas())[0], doc.read_text()
    run = reliability.Ledger(answers=1234)
    run.add(area, faults=98765)

    run.save(whole_suite=True)  # what the end of a passing whole-suite run does
    assert doc.read_text() == before
    saved = reliability.read_artifact()
    assert saved is not None
    rows, line = saved
    assert rows[area].faults == 98765 and set(rows) == reliability.counted_areas()
    assert line.startswith(f"{reliability.SUITE_LINE} 1234,")

    assert reliability.write_doc()  # `python3 dev.py reliability`
    rows, line = reliability.read_doc()
    assert rows[area].faults == 98765 and line.startswith(f"{reliability.SUITE_LINE} 1234,")
