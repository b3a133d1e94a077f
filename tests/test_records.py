"""records.fast_init: a frozen slotted dataclass built by plain slot stores is the same record, still frozen."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
import pkgutil
from typing import Any

import pytest

import cdnstore
from cdnstore.records import fast_init


# The same class twice: one built by its dataclass __init__, one by fast_init's (module level: pickled).
@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    id: int
    name: str
    size: int | None = None
    tags: tuple[str, ...] = ()


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class Fast:
    id: int
    name: str
    size: int | None = None
    tags: tuple[str, ...] = ()


@pytest.mark.parametrize(
    "args, kwargs",
    [((1, "a"), {}), ((1, "a", 5, ("x",)), {}), ((), {"name": "b", "id": 2, "tags": ("y",)}), ((3,), {"name": "c"})],
)
def test_a_fast_built_record_is_the_record_its_dataclass_init_builds(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain, fast = Plain(*args, **kwargs), Fast(*args, **kwargs)
    assert type(fast) is Fast
    assert repr(fast) == repr(plain).replace("Plain", "Fast")
    assert dataclasses.astuple(fast) == dataclasses.astuple(plain)
    assert hash(fast) == hash(plain)
    assert fast == Fast(*args, **kwargs) and fast != dataclasses.replace(fast, id=99)
    assert inspect.signature(Fast.__init__) == inspect.signature(Plain.__init__)


def test_a_fast_built_record_stays_frozen() -> None:
    """Every store is refused as the dataclass refuses it (a field: FrozenInstanceError; the class or a name
    that is no field: the error Python 3.11's slotted frozen dataclasses raise)."""
    for name, value in [("name", "b"), ("id", 2), ("__class__", Plain), ("other", 1)]:
        with pytest.raises(Exception) as plain:
            setattr(Plain(1, "a"), name, value)
        record = Fast(1, "a")
        with pytest.raises(type(plain.value)):
            setattr(record, name, value)
        assert record == Fast(1, "a") and type(record) is Fast
    with pytest.raises(dataclasses.FrozenInstanceError):
        Fast(1, "a").name = "b"  # type: ignore[misc]


def test_a_fast_built_record_is_replaced_pickled_and_refused_like_the_dataclass() -> None:
    record = Fast(1, "a", 2)
    assert dataclasses.replace(record, name="b") == Fast(1, "b", 2)
    assert pickle.loads(pickle.dumps(record)) == record
    wrong: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {}),
        ((1,), {}),
        ((1, "a", 2, (), 5), {}),
        ((1, "a"), {"nope": 1}),
        ((1, "a"), {"id": 2}),
    ]
    for args, kwargs in wrong:
        with pytest.raises(TypeError) as plain:
            Plain(*args, **kwargs)
        with pytest.raises(TypeError) as fast:
            Fast(*args, **kwargs)
        assert str(fast.value).split("() ", 1)[1] == str(plain.value).split("() ", 1)[1]


def refused_classes() -> list[type]:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived(Base):
        b: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class NotInit:
        a: int = dataclasses.field(init=False, default=0)

    return [NoSlots, NotFrozen, Derived, PostInit, Factory, NotInit]


@pytest.mark.parametrize("cls", refused_classes(), ids=lambda c: c.__name__)
def test_a_class_fast_init_cannot_build_the_same_way_is_refused_at_import(cls: type) -> None:
    with pytest.raises(TypeError, match=cls.__name__):
        fast_init(cls)


def product_records() -> list[type]:
    """Every frozen slotted dataclass of no base class defined in cdnstore."""
    found = []
    for info in pkgutil.walk_packages(cdnstore.__path__, "cdnstore."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            params = getattr(value, "__dataclass_params__", None)
            if (
                isinstance(value, type)
                and value.__module__ == info.name
                and params is not None
                and params.frozen
                and "__slots__" in value.__dict__
                and value.__bases__ == (object,)
            ):
                found.append(value)
    return found


def test_every_frozen_slotted_record_of_the_product_is_built_by_plain_slot_stores() -> None:
    records = product_records()
    assert len(records) > 50
    slow = [
        f"{r.__module__}.{r.__qualname__}" for r in records if r.__dict__["__init__"].__module__ != "cdnstore.records"
    ]
    assert slow == []
