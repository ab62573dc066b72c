"""The in-memory network as an asynchronous transport: the parties of one process, each
driven by its own asyncio task (runtime.aio), on one shared InMemoryNetwork.

What `fsmc run --transport memory` runs: the same driver, stores and steps as over Redis,
without a server. Reads poll the party's queue; there are no positions to keep (a
process that dies takes the network with it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.harness.network import InMemoryNetwork
from runtime.net.common import Unpositioned
from runtime.transport import Delivery

__all__ = ["MemoryLink"]

_LINKS: dict[int, list[MemoryLink]] = {}  # id(network) -> its links


class MemoryLink(Unpositioned):
    """One party's side of a shared `InMemoryNetwork`."""

    def __init__(self, network: InMemoryNetwork, party: str) -> None:
        self.network = network
        self.party = party
        # Every link of a network is woken when anything is posted (posting happens in the
        # loop that runs the readers: no lock needed), instead of each polling its queue.
        self._news = asyncio.Event()
        _LINKS.setdefault(id(network), []).append(self)

    # the Transport interface: the network's own
    def attach(self, party: str, transports: tuple[str, ...] = ("channel",)) -> None:
        self.network.attach(party, transports)

    def subscribe(self, party: str, address: str) -> None:
        self.network.subscribe(party, address)

    def unsubscribe(self, party: str, address: str) -> None:
        self.network.unsubscribe(party, address)

    def post(self, sender: str, transport: str, data: bytes, to: str | None = None, label: Any = None) -> int:
        seq = self.network.post(sender, transport, data, to=to, label=label)
        for link in _LINKS.get(id(self.network), ()):
            link._news.set()
        return seq

    # the driver's side
    async def connect(self) -> None:
        self.network.track_order = False  # several readers take from it, each its own queue

    async def close(self) -> None:
        links = _LINKS.get(id(self.network), [])
        if self in links:
            links.remove(self)
        if not links:
            _LINKS.pop(id(self.network), None)

    async def flush(self) -> None:
        pass  # posted at once

    async def read(self, block_ms: int = 200) -> list[tuple[Delivery, Any]]:
        for attempt in range(2):
            self._news.clear()
            got = []
            while (d := self.network.next(receivers=(self.party,))) is not None:
                got.append((d, None))
            if got or attempt:
                return got
            try:
                await asyncio.wait_for(self._news.wait(), timeout=block_ms / 1000)
            except TimeoutError:
                return []
        return []

    async def waiting(self) -> bool:
        return bool(self.network.queue(self.party))

