"""Fast deep copies of a simulated world, for the explorer.

The explorer (runtime.harness.explore) copies a whole world at every transition, and generic
`copy.deepcopy` walks every list, dict, frozen record and slot of it: that was most of
the exploration's time. The world's classes therefore say how each of their fields is
copied (`copy_fields`):

- `share`: an immutable value (bytes, strings, numbers, tuples of them, frozen records);
  the copy holds the same object.
- `values`: a container (list, dict, set) whose elements are immutable: a new container
  holding the same elements.
- any field not named: `copy.deepcopy` through the memo. That is right for objects with
  state of their own (a device, a machine, a random source), which copy themselves and
  keep references between them consistent (a device and its machine point at each
  other's copies), and it is the safe default for a field added later.

A world and its copy must share no mutable object: tests/test_explore.py walks both and
checks that, and that the copy is otherwise equal to the original.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["Copier", "copy_fields", "share", "values"]

T = TypeVar("T")
Copier = Callable[[Any, dict[int, Any]], Any]


def share(value: T, memo: dict[int, Any]) -> T:
    """An immutable value: the copy holds the same object."""
    return value


def values(value: Any, memo: dict[int, Any]) -> Any:
    """A list, dict or set of immutable values: a new container of the same values. The
    copy goes through `memo`, so a container two objects share is shared by their copies
    too (a simulation's trace and its parties')."""
    twin = memo.get(id(value))
    if twin is None:
        twin = memo[id(value)] = value.copy()
    return twin


def copy_fields(source: T, memo: dict[int, Any], how: Mapping[str, Copier]) -> T:
    """A copy of `source` (an object with a `__dict__`, not built by `__init__`): each
    attribute copied as `how` says, or by `copy.deepcopy` through `memo`. For use in
    `__deepcopy__` methods."""
    cls = type(source)
    twin: T = cls.__new__(cls)
    memo[id(source)] = twin  # before copying the fields: a cycle through them leads back here
    state = twin.__dict__
    deepcopy = copy.deepcopy
    for name, value in source.__dict__.items():
        copier = how.get(name)
        state[name] = deepcopy(value, memo) if copier is None else copier(value, memo)
    return twin
