"""The in-memory network as an asynchronous transport: the parties of one process, each
driven by its own asyncio task (runtime.aio), on one shared InMemoryNetwork.

What `fsmc run --transport memory` runs: the same driver, stores and steps as over Redis,
without a server. Reads poll the party's queue; there are no positions to keep (a
process that dies takes the network with it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from runtime.harness.network import InMemoryNetwork
from runtime.transport import Delivery

__all__ = ["MemoryLink"]


class MemoryLink:
    """One party's side of a shared `InMemoryNetwork`."""

    def __init__(self, network: InMemoryNetwork, party: str) -> None:
        self.network = network
        self.party = party

    # the Transport interface: the network's own
    def attach(self, party: str, transports: tuple[str, ...] = ("channel",)) -> None:
        self.network.attach(party, transports)

    def subscribe(self, party: str, address: str) -> None:
        self.network.subscribe(party, address)

    def unsubscribe(self, party: str, address: str) -> None:
        self.network.unsubscribe(party, address)

    def post(self, sender: str, transport: str, data: bytes, to: str | None = None, label: Any = None) -> int:
        return self.network.post(sender, transport, data, to=to, label=label)

    # the driver's side
    async def connect(self) -> None:
        self.network.track_order = False  # several readers take from it, each its own queue

    async def close(self) -> None:
        pass

    async def flush(self) -> None:
        pass  # posted at once

    async def read(self, block_ms: int = 200) -> list[tuple[Delivery, Any]]:
        waited = 0.0
        while True:
            d = self.network.next(receivers=(self.party,))
            if d is not None:
                return [(d, None)]
            if waited * 1000 >= block_ms:
                return []
            await asyncio.sleep(0.005)
            waited += 0.005

    async def waiting(self) -> bool:
        return bool(self.network.queue(self.party))

    def consume(self, position: Any) -> None:
        pass

    def positions(self) -> tuple[tuple[str, str], ...]:
        return ()

    def restore(self, positions: Collection[tuple[str, str]]) -> None:
        pass
