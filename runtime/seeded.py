"""A seeded random source that the explorer can copy cheaply.

Every random choice of a run (TIDs, keys, faults) comes from seeded sources so that a
seed reproduces the run. The explorer copies whole worlds, random sources included, at
every step; `copy.deepcopy` of a plain `random.Random` walks its 625-word state one
integer at a time, which made it most of the exploration's cost.

Even `getstate` (a new 625-int tuple) and `setstate` cost microseconds, and a world holds
several sources that are idle most of the time (a device draws only when it opens a
negotiation; the network only under a fault model). So a copy is lazy: it takes the
generator's state as an immutable tuple, cached in the source until the source draws
again, and loads it into its own generator on its first draw. Copying an idle source
costs neither call.

`random.Random` documents that its methods reach the generator only through `random()`,
`getrandbits()` and `_randbelow()` (which calls `getrandbits`); with `seed`, `getstate`
and `setstate`, those are the methods overridden here.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["SeededRandom"]


class SeededRandom(random.Random):
    gauss_next: float | None  # random.Random's, set by its `seed`: typeshed leaves it out

    # The C generator's state (random.Random's middle part of `getstate`) while it is
    # known without asking the generator: cached since the last draw, or given by a copy.
    _known: tuple[int, ...] | None = None
    # True while the generator does not hold `_known` yet (a copy that has not drawn).
    _pending: bool = False

    def _before_draw(self) -> None:
        """The generator is about to advance: load a pending state, forget the cache."""
        if self._pending:
            assert self._known is not None
            super(random.Random, self).setstate(self._known)  # the C generator only
            self._pending = False
        self._known = None

    def random(self) -> float:
        self._before_draw()
        return super().random()

    def getrandbits(self, k: int, /) -> int:
        self._before_draw()
        return super().getrandbits(k)

    def seed(self, a: Any = None, version: int = 2) -> None:
        super().seed(a, version)
        self._known, self._pending = None, False

    def getstate(self) -> tuple[Any, ...]:
        if self._known is None:
            self._known = super(random.Random, self).getstate()  # the C generator only
        return (self.VERSION, self._known, self.gauss_next)

    def setstate(self, state: tuple[Any, ...]) -> None:
        super().setstate(state)
        self._known, self._pending = None, False

    def __deepcopy__(self, memo: dict[int, Any]) -> SeededRandom:
        cls = type(self)
        twin = cls.__new__(cls)  # unseeded: it draws from `_known` once loaded
        _, twin._known, twin.gauss_next = self.getstate()  # the tuple is immutable: shared safely
        twin._pending = True
        return twin
