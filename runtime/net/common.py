"""What the real transports share: the senders' sequence numbers, and the position
methods of a transport that keeps no read positions."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

__all__ = ["MAX_PARTIES", "SequenceNumbers", "Unpositioned"]

MAX_PARTIES = 64


class SequenceNumbers:
    """A sender's sequence numbers, unique across a run's parties and across restarts:
    microseconds since the epoch (at least one more than the last), with the party's
    index (below MAX_PARTIES) in the low bits. The merged chart pairs each receipt with
    its send by them."""

    def __init__(self, index: int) -> None:
        if not 0 <= index < MAX_PARTIES:
            raise ValueError(f"a party's index is below {MAX_PARTIES}, not {index}")
        self.index = index
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self._last * MAX_PARTIES + self.index


class Unpositioned:
    """A transport that keeps no read positions (what it delivers lives as long as the
    process): nothing to consume, commit or restore."""

    def consume(self, position: Any) -> None:
        pass

    def positions(self) -> tuple[tuple[str, str], ...]:
        return ()

    def restore(self, positions: Collection[tuple[str, str]]) -> None:
        pass
