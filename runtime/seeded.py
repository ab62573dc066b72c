"""A seeded random source that the explorer can copy cheaply.

Every random choice of a run (TIDs, keys, faults) comes from seeded sources so that a
seed reproduces the run. The explorer copies whole worlds, random sources included, at
every step. Two costs made that expensive:
- `copy.deepcopy` of a plain `random.Random` walks its 625-word state one integer at a
  time; even `getstate` (a new 625-int tuple) and `setstate` cost microseconds;
- every `random.Random` object holds its generator's state inline: 2.5 KB, allocated with
  the object. A world holds several sources, so that was half the memory of a world in
  the explorer's frontier.
Yet the sources are idle most of the time (a device draws only when it opens a
negotiation; the network only under a fault model). So a copy is lazy: it takes the
generator's state as an immutable tuple (cached in the source until the source draws
again) and makes a generator of its own only on its first draw. Copying an idle source
allocates no generator and calls neither `getstate` nor `setstate`.

A SeededRandom offers `random.Random`'s methods: the common draws directly, the rest
through the generator (`__getattr__`).
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["SeededRandom"]


class SeededRandom:
    """A `random.Random` seeded with `seed`, whose copies allocate a generator only
    when they draw."""

    __slots__ = ("_generator", "_known")

    def __init__(self, seed: Any = None) -> None:
        self._generator: random.Random | None = random.Random(seed)
        # The generator's whole state (`getstate`) while it is known without asking the
        # generator: cached since the last draw, or given by a copy that has no generator.
        self._known: tuple[Any, ...] | None = None

    def _live(self) -> random.Random:
        """The generator, about to draw: made from the known state if need be; the cached
        state is forgotten, as the draw advances it."""
        generator = self._generator
        if generator is None:
            assert self._known is not None
            # Not random.Random(): that seeds itself from os.urandom first (four times the
            # cost), only for setstate to replace all of it.
            generator = self._generator = random.Random.__new__(random.Random)
            generator.setstate(self._known)
        self._known = None
        return generator

    def random(self) -> float:
        return self._live().random()

    def getrandbits(self, k: int, /) -> int:
        return self._live().getrandbits(k)

    def randbytes(self, n: int, /) -> bytes:
        return self._live().randbytes(n)

    def uniform(self, a: float, b: float) -> float:
        return self._live().uniform(a, b)

    def __getattr__(self, name: str) -> Any:
        # The rest of random.Random's methods (randrange, choice, gauss, sample, ...).
        # They may draw, so the cached state goes.
        return getattr(self._live(), name)

    def seed(self, a: Any = None) -> None:
        self._generator, self._known = random.Random(a), None

    def getstate(self) -> tuple[Any, ...]:
        if self._known is None:
            assert self._generator is not None
            self._known = self._generator.getstate()
        return self._known

    def setstate(self, state: tuple[Any, ...]) -> None:
        self._generator, self._known = None, state

    def __deepcopy__(self, memo: dict[int, Any]) -> SeededRandom:
        twin = SeededRandom.__new__(SeededRandom)
        twin._generator, twin._known = None, self.getstate()  # the tuple is immutable: shared
        return twin
