"""The suite is split by kind (tests/kinds.py): every test has exactly one, and the unit kind starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from kinds import KINDS, misfiled


def test_every_test_module_has_a_kind_and_every_kind_names_a_module() -> None:
    modules = {path.stem for path in Path(__file__).parent.glob("test_*.py")}
    assert modules == set(KINDS), f"tests/kinds.py is out of date: {modules ^ set(KINDS)}"


def test_every_collected_test_has_exactly_one_kind_and_no_unit_test_starts_servers(
    request: pytest.FixtureRequest,
) -> None:
    items = request.session.items
    assert request.node in items
    assert [why for item in items if (why := misfiled(item))] == []
