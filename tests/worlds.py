"""Walking a world of the explorer: its copies must equal it and share nothing mutable.

Used by tests/test_explore.py on KeySync and by tests/test_protocols.py on every protocol
of the registry.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import random
import types
from collections import deque

from runtime.codec import Codec
from runtime.harness.explore import Explorer, World
from runtime.harness.simulation import Scenario
from runtime.machine import Machine
from runtime.seeded import SeededRandom


def mid_run(explorer: Explorer, steps: int) -> World:
    """The world after `steps` choices (the last one each time), with its trace kept."""
    world = explorer.initial()
    for _ in range(steps):
        choices = list(explorer.choices(world))
        world = explorer.apply(world, choices[-1], keep_trace=True)
    return world


_ATOMS = (type(None), bool, int, float, str, bytes, datetime.datetime, datetime.timedelta)
_VALUES = (*_ATOMS, type, types.FunctionType, types.BuiltinFunctionType, enum.Enum)  # compared by value
# Read-only by design: a world's copies share them (their __deepcopy__ returns self), as
# they share every frozen record that says so (`shared`).
SHARED_BY_DESIGN = (Scenario, Codec, types.MappingProxyType)


def _frozen(obj: object) -> bool:
    return isinstance(obj, tuple | frozenset) or (
        dataclasses.is_dataclass(obj) and type(obj).__dataclass_params__.frozen)  # type: ignore[attr-defined]


def shared(obj: object) -> bool:
    """Whether copies of a world share `obj` by design: a read-only object of the world,
    or a frozen record whose `__deepcopy__` returns itself (keys, identities)."""
    if isinstance(obj, SHARED_BY_DESIGN):
        return True
    return _frozen(obj) and "__deepcopy__" in type(obj).__dict__ and copy.deepcopy(obj) is obj


def _children(obj: object) -> list[tuple[str, object]]:
    """What an object of a world holds, in a deterministic order."""
    if isinstance(obj, list | tuple | deque):
        return [(f"[{i}]", x) for i, x in enumerate(obj)]
    if isinstance(obj, dict):
        return [pair for i, (k, v) in enumerate(obj.items()) for pair in ((f"<key {i}>", k), (f"[{k!r}]", v))]
    if isinstance(obj, set | frozenset):
        return [(f"{{{i}}}", x) for i, x in enumerate(sorted(obj, key=repr))]
    if isinstance(obj, types.MethodType):
        return [(".__self__", obj.__self__)]
    found = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                found.append((f".{name}", getattr(obj, name)))
    return found + [(f".{k}", v) for k, v in getattr(obj, "__dict__", {}).items()]


def assert_independent_copy(a: object, b: object, path: str = "world", seen: dict[int, int] | None = None) -> None:
    """`b` equals `a`, object by object, and shares no mutable object with it; objects
    that `a` refers to from two places (a party's machine and its device's) are one
    object in `b` too."""
    seen = {} if seen is None else seen
    assert type(a) is type(b), f"{path}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, _VALUES):
        assert a == b, f"{path}: {a!r} became {b!r}"
        return
    if id(a) in seen:
        assert seen[id(a)] == id(b), f"{path}: a reference to a shared object now points elsewhere"
        return
    seen[id(a)] = id(b)
    if shared(a):
        assert a is b, path
        return
    if isinstance(a, random.Random | SeededRandom):  # compare the state it draws from
        assert a is not b and a.getstate() == b.getstate(), f"{path}: random source shared or not equal"
        return
    if isinstance(a, types.MethodType):
        assert a.__func__ is b.__func__, path  # type: ignore[attr-defined]
    elif not _frozen(a):
        assert a is not b, f"{path}: the copy shares this {type(a).__name__} with the original"
    ca, cb = _children(a), _children(b)
    if isinstance(a, Machine):  # a copy starts without the effects of the last dispatch
        assert isinstance(b, Machine) and b.effects == [], f"{path}.effects"
        ca, cb = [(n, v) for n, v in ca if n != ".effects"], [(n, v) for n, v in cb if n != ".effects"]
    assert [n for n, _ in ca] == [n for n, _ in cb], f"{path}: fields differ"
    for (name, x), (_, y) in zip(ca, cb, strict=True):
        assert_independent_copy(x, y, path + name, seen)


def dump(world: World) -> list[tuple[str, object]]:
    """Every value reachable from a world, by path (its random sources by state)."""
    out: list[tuple[str, object]] = []
    seen: set[int] = set()

    def walk(obj: object, path: str) -> None:
        if isinstance(obj, _VALUES):
            out.append((path, obj))
        elif id(obj) in seen or shared(obj):
            out.append((path, type(obj).__name__))
        elif isinstance(obj, random.Random | SeededRandom):
            out.append((path, obj.getstate()))
        else:
            seen.add(id(obj))
            out.append((path, type(obj).__name__))
            for name, child in _children(obj):
                walk(child, path + name)

    walk(world, "world")
    return out
