"""Redis Streams as a transport: one party's side of it.

Every channel, party and address is a stream of one Redis server, under a run's
namespace:

    <ns>:chan:<transport>   a channel: every member posts and reads it, the sender too;
                            one order for all (KeySync's identity channel, mpENC's group)
    <ns>:party:<name>       what is sent to one party by name
    <ns>:addr:<address>     a rendezvous point, a topic, a log: read from its start by
                            whoever subscribes (a late joiner reads the whole log; a relay
                            keeps what was posted before anyone listened)

An entry carries the sender's sequence number, the sender, the channel it was posted on,
its address and the bytes. A party reads its streams with XREAD from positions (entry
ids); the driver (runtime.aio) hands each delivery to the party with its position and,
once the party's step is committed, records the position as consumed. The consumed
positions are part of the party's record (runtime.durable), so a party restarted from
its store reads on from exactly the first entry its last committed step had not taken.

Posts are queued by `post` (the sans-IO party calls it inside a step) and written by
`flush`, in order, in one pipeline; the driver flushes before it marks the step's outbox
sent. A lost connection is retried with backoff (`retry`), so a broker restart in the
middle of a run is a pause: entries are kept by the server's append-only file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.errors import UsageError
from runtime.net.common import SequenceNumbers
from runtime.transport import Delivery

__all__ = ["Position", "RedisTransport"]

Position = tuple[str, str]  # (stream, entry id)
T = TypeVar("T")
_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class RedisTransport:
    """The streams one party posts to and reads. `parties` are the names of the run's
    parties (a `to` that is one of them is that party's stream; any other is an address)."""

    def __init__(self, url: str, namespace: str, party: str, parties: Collection[str], *,
                 index: int = 0, retry_for: float = 30.0) -> None:
        if party not in parties:
            raise UsageError(f"{party} is not one of the run's parties")
        self.url = url
        self.namespace = namespace
        self.party = party
        self.parties = frozenset(parties)
        self.retry_for = retry_for
        self._redis: Any = None
        self._channels: list[str] = []
        self._addresses: set[str] = set()
        self._queued: list[tuple[str, dict[str, bytes | str]]] = []
        self._numbers = SequenceNumbers(index)
        self.consumed: dict[str, str] = {}  # stream -> the last entry id a committed step took
        self._read: dict[str, str] = {}  # stream -> the last entry id handed to the driver
        self.reconnects = 0

    # --- streams

    def _stream(self, kind: str, name: str) -> str:
        return f"{self.namespace}:{kind}:{name}"

    def streams(self) -> list[str]:
        """What the party reads now: its channels, its own stream, its addresses."""
        return ([self._stream("chan", t) for t in self._channels] + [self._stream("party", self.party)]
                + [self._stream("addr", a) for a in sorted(self._addresses)])

    def restore(self, positions: Collection[Position]) -> None:
        """Read on from these consumed positions (a party's record, after a restart)."""
        self.consumed = dict(positions)
        self._read = dict(self.consumed)

    def positions(self) -> tuple[Position, ...]:
        return tuple(sorted(self.consumed.items()))

    # --- the Transport interface (called by the party, inside a step)

    def attach(self, party: str, transports: tuple[str, ...] = ("channel",)) -> None:
        if party != self.party:
            raise UsageError(f"this transport is {self.party}'s, not {party}'s")
        self._channels = list(dict.fromkeys([*self._channels, *transports]))

    def subscribe(self, party: str, address: str) -> None:
        if address in self.parties:
            raise UsageError(f"{address} is a party, not an address to listen on")
        self._addresses.add(address)

    def unsubscribe(self, party: str, address: str) -> None:
        self._addresses.discard(address)

    def post(self, sender: str, transport: str, data: bytes, to: str | None = None, label: Any = None) -> int:
        seq = self._numbers.next()
        if to is None:
            stream = self._stream("chan", transport)
        elif to in self.parties:
            stream = self._stream("party", to)
        else:
            stream = self._stream("addr", to)
        self._queued.append((stream, {"seq": str(seq), "sender": sender, "transport": transport,
                                      "to": to or "", "data": data}))
        return seq

    # --- the driver's side

    async def connect(self) -> None:
        self._redis = aioredis.Redis.from_url(self.url, socket_connect_timeout=2)
        await self._retrying(lambda: self._redis.ping())

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _retrying(self, call: Callable[[], Any]) -> Any:
        """`call()`, again after a lost connection, with backoff, for up to `retry_for`."""
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            try:
                return await call()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
                self.reconnects += 1

    async def flush(self) -> None:
        """Write what was posted, in order (one pipeline, one round trip)."""
        if not self._queued:
            return
        queued = list(self._queued)

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                for stream, fields in queued:
                    pipe.xadd(stream, fields)
                await pipe.execute()
        await self._retrying(write)
        del self._queued[:len(queued)]

    async def read(self, block_ms: int = 200) -> list[tuple[Delivery, Position]]:
        """The next entries of the party's streams (waiting up to `block_ms` for one), as
        deliveries with their positions, in each stream's order."""
        streams = {s: self._read.get(s, "0-0") for s in self.streams()}
        answer = await self._retrying(lambda: self._redis.xread(streams, count=64, block=block_ms))
        out: list[tuple[Delivery, Position]] = []
        for stream, entries in answer or ():
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                self._read[name] = eid
                f = {k.decode(): v for k, v in fields.items()}
                delivery = Delivery(int(f["seq"]), f["transport"].decode(), f["sender"].decode(), self.party,
                                    bytes(f["data"]))
                out.append((delivery, (name, eid)))
        return out

    async def waiting(self) -> bool:
        """Whether a stream the party reads has an entry it has not read yet (what tells a
        quiet run from one whose messages are still on their way to a slow reader)."""
        streams = self.streams()

        async def last_ids() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.xrevrange(stream, count=1)
                return list(await pipe.execute())
        for stream, entries in zip(streams, await self._retrying(last_ids), strict=True):
            if entries:
                last = entries[0][0]
                last = last.decode() if isinstance(last, bytes) else last
                if _entry(last) > _entry(self._read.get(stream, "0-0")):
                    return True
        return False

    def consume(self, position: Position) -> None:
        """The step that took the entry at `position` is done (committed)."""
        stream, entry_id = position
        self.consumed[stream] = entry_id

    def rewind(self) -> None:
        """Forget what was read and not consumed (a step that did not complete)."""
        self._read = dict(self.consumed)


def _entry(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
