"""A PATCH body travels to its use case as a typed change record (models.Changes): `changes_of` keeps a field
the body did not give (`UNSET`), an explicit null (None) and a value apart, for every record, and no field is
dropped or renamed on the way (a record names the model's fields, in its order)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from cdnstore.api.schemas import FilePatch, LinkPatch, Patch, ServerPatch, UploadRequestPatch, UserPatch, changes_of
from cdnstore.files import Expiry, FileChanges
from cdnstore.links import LinkChanges
from cdnstore.models import UNSET, Changes
from cdnstore.servers import ServerChanges
from cdnstore.upload_requests import CLOSE, RequestChanges
from cdnstore.users import UserChanges

PAIRS: list[tuple[type[Patch], type[Changes]]] = [
    (ServerPatch, ServerChanges),
    (UserPatch, UserChanges),
    (UploadRequestPatch, RequestChanges),
    (LinkPatch, LinkChanges),
    (FilePatch, FileChanges),
]

# (model, record, a field the API clears with null, a value for it)
NULLABLE: list[tuple[type[Patch], type[Changes], str, Any]] = [
    (ServerPatch, ServerChanges, "public_url", "https://s3.example.com"),
    (ServerPatch, ServerChanges, "events_token", "t" * 40),
    (UserPatch, UserChanges, "quota_bytes", 1024),
    (UserPatch, UserChanges, "zones", ["eu"]),
    (UserPatch, UserChanges, "max_file_lifetime", 3600),
    (UploadRequestPatch, RequestChanges, "message", "send me the slides"),
    (UploadRequestPatch, RequestChanges, "password", "opensesame"),
    (UploadRequestPatch, RequestChanges, "expires_in", 60),
    (UploadRequestPatch, RequestChanges, "max_bytes", 10),
    (LinkPatch, LinkChanges, "password", "opensesame"),
    (LinkPatch, LinkChanges, "expires_in", 60),
    (LinkPatch, LinkChanges, "max_downloads", 3),
]

# (model, record, a field that takes no null, a value for it)
NOT_NULLABLE: list[tuple[type[Patch], type[Changes], str, Any]] = [
    (ServerPatch, ServerChanges, "name", "amsterdam-1"),
    (ServerPatch, ServerChanges, "is_on", False),
    (UserPatch, UserChanges, "is_disabled", True),
    (UserPatch, UserChanges, "password", "a new password"),
    (UploadRequestPatch, RequestChanges, "is_open", False),
    (LinkPatch, LinkChanges, "reset_downloads", True),
    (FilePatch, FileChanges, "name", "report.pdf"),
]


def _ids(case: tuple[Any, ...]) -> str:
    return f"{case[1].__name__}.{case[2]}"


@pytest.mark.parametrize(("model", "record"), PAIRS, ids=[r.__name__ for _, r in PAIRS])
def test_a_change_record_names_every_field_of_its_patch_in_order(model: type[Patch], record: type[Changes]) -> None:
    assert [f.name for f in dataclasses.fields(record)] == list(model.model_fields)


@pytest.mark.parametrize(("model", "record"), PAIRS, ids=[r.__name__ for _, r in PAIRS])
def test_a_change_record_is_frozen_slotted_and_refuses_an_unknown_field(
    model: type[Patch], record: type[Changes]
) -> None:
    with pytest.raises(TypeError):
        record(nmae="typo")  # type: ignore[call-arg]
    changes = record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        changes.__setattr__(dataclasses.fields(record)[0].name, "x")
    assert not hasattr(changes, "__dict__")


@pytest.mark.parametrize(("model", "record", "field", "value"), NULLABLE, ids=[_ids(c) for c in NULLABLE])
def test_absent_null_and_a_value_reach_the_use_case_apart(
    model: type[Patch], record: type[Changes], field: str, value: Any
) -> None:
    given = changes_of(model.model_validate({field: value}), record)
    cleared = changes_of(model.model_validate({field: None}), record)
    other = next(f for f in model.model_fields if f != field)
    absent = changes_of(model.model_validate({other: _a_value(model, other)}), record)
    assert getattr(given, field) == value
    assert getattr(cleared, field) is None
    assert getattr(absent, field) is UNSET
    assert given.given() == {field: value}
    assert cleared.given() == {field: None}
    assert field not in absent.given()


@pytest.mark.parametrize(("model", "record", "field", "value"), NOT_NULLABLE, ids=[_ids(c) for c in NOT_NULLABLE])
def test_a_field_without_null_is_a_value_or_unset_never_none(
    model: type[Patch], record: type[Changes], field: str, value: Any
) -> None:
    given = changes_of(model.model_validate({field: value}), record)
    assert getattr(given, field) == value
    assert given == record(**{field: value})
    with pytest.raises(ValidationError):
        model.model_validate({field: None})


def test_a_conversion_applies_to_a_given_field_only() -> None:
    def refuse(asked: object) -> object:
        raise AssertionError(f"converted a field that was not given ({asked!r})")

    kept = changes_of(LinkPatch.model_validate({"max_downloads": 2}), LinkChanges, expires_in=refuse)
    assert kept == LinkChanges(max_downloads=2)
    expiry = changes_of(
        FilePatch.model_validate({"expires_at": None}), FileChanges, expires_at=lambda asked: Expiry(asked, asked=True)
    )
    assert expiry.expires_at == Expiry(None, asked=True)
    assert expiry.name is UNSET


def test_a_conversion_of_a_field_the_patch_lacks_is_refused() -> None:
    with pytest.raises(TypeError, match="expires_on"):
        changes_of(LinkPatch.model_validate({"max_downloads": 2}), LinkChanges, expires_on=lambda v: v)


def test_a_patch_field_the_record_lacks_is_refused_not_dropped() -> None:
    class WiderPatch(LinkPatch):
        note: str | None = None

    with pytest.raises(TypeError, match="note"):
        changes_of(WiderPatch.model_validate({"note": "x"}), LinkChanges)


def test_given_lists_the_given_fields_in_the_records_order() -> None:
    changes = changes_of(ServerPatch.model_validate({"is_on": True, "zone": "eu", "name": "a"}), ServerChanges)
    assert changes.given() == {"name": "a", "zone": "eu", "is_on": True}
    assert list(changes.given()) == ["name", "zone", "is_on"]


def test_an_administrator_may_send_a_close_only() -> None:
    close = changes_of(UploadRequestPatch.model_validate({"is_open": False}), RequestChanges)
    assert close == CLOSE
    for other in ({"is_open": True}, {"is_open": False, "message": None}, {"max_files": 3}):
        assert changes_of(UploadRequestPatch.model_validate(other), RequestChanges) != CLOSE


def test_unset_has_no_truth_value() -> None:
    with pytest.raises(TypeError):
        bool(UNSET)


def test_user_changes_say_when_they_take_an_admin_away() -> None:
    assert UserChanges(is_admin=False).unadmins
    assert UserChanges(is_disabled=True).unadmins
    assert not UserChanges(is_admin=True, is_disabled=False).unadmins
    assert not UserChanges(quota_bytes=None).unadmins


def _a_value(model: type[Patch], field: str) -> Any:
    """A valid value of one of the model's fields, so that a body without `field` still changes something."""
    values = {c[2]: c[3] for c in NULLABLE + NOT_NULLABLE if c[0] is model}
    values.update({"expires_at": None, "permissions": [], "is_admin": True})
    return values.get(field, "eu")
