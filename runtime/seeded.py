"""A seeded random source that the explorer can copy cheaply.

Every random choice of a run (TIDs, keys, faults) comes from seeded sources so that a
seed reproduces the run. The explorer copies whole worlds, random sources included, at
every step; `copy.deepcopy` of a plain `random.Random` walks its 625-word state one
integer at a time, which made it most of the exploration's cost.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["SeededRandom"]


class SeededRandom(random.Random):
    def __deepcopy__(self, memo: dict[int, Any]) -> SeededRandom:
        twin = SeededRandom()
        twin.setstate(self.getstate())  # the state is a tuple of ints: immutable, shared safely
        return twin
