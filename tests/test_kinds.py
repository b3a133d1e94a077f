"""The suite is split by kind (tests/kinds.py): every test has exactly one, and the unit kind starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from kinds import KINDS, PARTLY_UNIT, UNIT, kinds_of, misfiled


def test_every_test_module_has_a_kind_and_every_kind_names_a_module() -> None:
    modules = {path.stem for path in Path(__file__).parent.glob("test_*.py")}
    assert modules == set(KINDS), f"tests/kinds.py is out of date: {modules ^ set(KINDS)}"


def test_every_collected_test_has_exactly_one_kind_and_no_unit_test_starts_servers(
    request: pytest.FixtureRequest,
) -> None:
    items = request.session.items
    assert request.node in items
    assert [why for item in items if (why := misfiled(item))] == []


def test_the_modules_partly_of_the_unit_kind_are_exactly_those_listed(request: pytest.FixtureRequest) -> None:
    """A module of another kind whose tests are marked unit by themselves is named in PARTLY_UNIT, so that the
    checks of what `dev.py test --fast` selects know it; and every module named there has such tests."""
    modules = {Path(str(item.path)).stem: KINDS[Path(str(item.path)).stem] for item in request.session.items}
    partly = {
        Path(str(item.path)).stem
        for item in request.session.items
        if kinds_of(item) == [UNIT] and modules[Path(str(item.path)).stem] != UNIT
    }
    assert partly == PARTLY_UNIT & modules.keys()  # (of the modules collected in this run)
