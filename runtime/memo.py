"""Pure functions remembered by their inputs, bounded, and counted.

In a seeded exploration the same envelope is opened, the same signature verified, the
same scalar multiplied in many worlds: different interleavings bring the same message to
devices whose states differ elsewhere (the explorer's remembered moves,
runtime.harness.moves, replay a step only for the very same local state). A protocol's
cryptography that is a function of its inputs alone is declared `@pure(maxsize)`: each
result is kept, least recently used first out past `maxsize`, and `counts()` says how
often one was reused (the explorer reports it).

Only functions without effects qualify: no randomness drawn, nothing changed, the same
inputs the same result, or the same exception (which a caller keeps as a value: a cached
function returns it, the caller raises it). The inputs stay in memory while cached,
private keys among them: the same keys the devices hold anyway, in the same process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["counts", "pure"]

F = TypeVar("F", bound=Callable[..., Any])

_ALL: list[Any] = []  # every pure function's lru_cache wrapper


def pure(maxsize: int) -> Callable[[F], F]:
    """Remember `maxsize` results of the function, by its (hashable) arguments."""

    def remember(function: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _ALL.append(cached)
        return cached  # type: ignore[return-value]

    return remember


def counts() -> tuple[int, int]:
    """(results reused, results computed) of every pure function so far, in this process."""
    infos = [f.cache_info() for f in _ALL]
    return sum(i.hits for i in infos), sum(i.misses for i in infos)
