"""TCP: parties that know the hub's address, no broker.

One party (the first by name) listens on its address and orders everything: the
**hub**. Every other party connects to it (retrying until it listens), says who it is,
and sends it each post; the hub appends every post, its own and the others', to one log
per stream, in the order it takes them, and delivers from the logs to each party in that
order. So all read the channel in one order, the sender's own copy included (KeySync's
requirement), and what was posted at an address before a party listened there, or
before it connected, waits for it (as over Redis).

Frames are length-prefixed (4 bytes, big-endian) JSON objects, the bytes in base64:

    hello  {op, party}                               peer -> hub, first
    post   {op, seq, sender, transport, to, data}    peer -> hub
    sub    {op, address} / unsub {op, address}       peer -> hub
    deliver {op, seq, sender, transport, data}       hub -> peer

A TCP run is live only: the logs are the hub's memory, so a restarted party does not
resume where it stopped (use Redis for that); there are no positions to commit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from typing import Any

from runtime.errors import UsageError
from runtime.net.common import SequenceNumbers, Unpositioned
from runtime.transport import Delivery

__all__ = ["MAX_FRAME", "TcpTransport"]

MAX_FRAME = 16 * 1024 * 1024
_LENGTH = struct.Struct(">I")


async def _read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError:
        return None  # the other side closed
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ConnectionError(f"a frame of {length} bytes (at most {MAX_FRAME})")
    frame: dict[str, Any] = json.loads(await reader.readexactly(length))
    return frame


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body


class TcpTransport(Unpositioned):
    """One party's side of a TCP star. `addresses` maps each party's name to its (host,
    port); the first party by name listens there (the hub), the others connect to it."""

    def __init__(self, party: str, addresses: dict[str, tuple[str, int]], *, index: int = 0,
                 connect_for: float = 30.0) -> None:
        if len(addresses) < 2 or party not in addresses:
            raise UsageError(f"TCP carries two parties or more, {party} among them, each with its address")
        self.party = party
        self.parties = frozenset(addresses)
        self.hub = min(addresses)
        self._order = sorted(addresses)  # the parties, in the order the hub delivers to them
        self.addresses = addresses
        self.connect_for = connect_for
        self._channels: list[str] = []
        self._queued: list[dict[str, Any]] = []
        self._numbers = SequenceNumbers(index)
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._server: asyncio.AbstractServer | None = None
        self._writer: asyncio.StreamWriter | None = None  # a peer's, to the hub
        self._writers: dict[str, asyncio.StreamWriter] = {}  # the hub's, to each peer connected
        self._connected = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        # the hub's logs: stream -> entries; what each party was given of each; subscriptions
        self._logs: dict[str, list[dict[str, Any]]] = {}
        self._given: dict[tuple[str, str], int] = {}
        self._listening: dict[str, set[str]] = {p: set() for p in self.parties}
        self._members: dict[str, set[str]] = {}

    # --- the Transport interface (inside a step)

    def attach(self, party: str, transports: tuple[str, ...] = ("channel",)) -> None:
        self._channels = list(dict.fromkeys([*self._channels, *transports]))
        self._queued.append({"op": "attach", "party": party, "transports": list(transports)})

    def subscribe(self, party: str, address: str) -> None:
        if address in self.parties:
            raise UsageError(f"{address} is a party, not an address to listen on")
        self._queued.append({"op": "sub", "party": party, "address": address})

    def unsubscribe(self, party: str, address: str) -> None:
        self._queued.append({"op": "unsub", "party": party, "address": address})

    def post(self, sender: str, transport: str, data: bytes, to: str | None = None, label: Any = None) -> int:
        seq = self._numbers.next()
        self._queued.append({"op": "post", "seq": seq, "sender": sender, "transport": transport, "to": to,
                             "data": base64.b64encode(data).decode()})
        return seq

    # --- the driver's side

    async def connect(self) -> None:
        host, port = self.addresses[self.hub]
        if self.party == self.hub:
            self._server = await asyncio.start_server(self._accept, host, port)
            return  # the peers connect when they start; until then their deliveries wait in the logs
        deadline = time.monotonic() + self.connect_for
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self._writer = writer
        writer.write(_frame({"op": "hello", "party": self.party}))
        self._pump = asyncio.create_task(self._from_hub(reader))
        self._connected.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await _read_frame(reader)
        party = hello.get("party") if hello is not None and hello.get("op") == "hello" else None
        if party not in self.parties or party == self.hub or party in self._writers:
            writer.close()  # not a party of this run, or one connected already
            return
        self._writers[party] = writer
        try:
            self._deliver_all()
            await self._drain()
            while (frame := await _read_frame(reader)) is not None:
                self._take(frame)
                await self._drain()
        finally:
            del self._writers[party]

    async def _from_hub(self, reader: asyncio.StreamReader) -> None:
        while (frame := await _read_frame(reader)) is not None:
            if frame.get("op") == "deliver":
                self._inbox.put_nowait(Delivery(int(frame["seq"]), frame["transport"], frame["sender"], self.party,
                                                base64.b64decode(frame["data"])))

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        for writer in [self._writer, *self._writers.values()]:
            if writer is not None:
                writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def flush(self) -> None:
        queued, self._queued = self._queued, []
        if self.party == self.hub:
            for frame in queued:
                self._take(frame)
            await self._drain()
            return
        await self._connected.wait()
        assert self._writer is not None
        for frame in queued:
            self._writer.write(_frame(frame))
        await self._writer.drain()

    async def _drain(self) -> None:
        for writer in list(self._writers.values()):
            await writer.drain()

    # --- the hub's order

    def _take(self, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "attach":
            for t in frame["transports"]:
                self._members.setdefault(t, set()).add(frame["party"])
            self._deliver_all()
        elif op == "sub":
            self._listening[frame["party"]].add(frame["address"])
            self._deliver_all()
        elif op == "unsub":
            self._listening[frame["party"]].discard(frame["address"])
        elif op == "post":
            to = frame["to"]
            stream = (f"chan:{frame['transport']}" if to is None else f"party:{to}" if to in self.parties
                      else f"addr:{to}")
            self._logs.setdefault(stream, []).append(frame)
            self._deliver_all()

    def _reads(self, party: str) -> list[str]:
        return ([f"chan:{t}" for t, members in self._members.items() if party in members] + [f"party:{party}"]
                + [f"addr:{a}" for a in sorted(self._listening[party])])

    def _deliver_all(self) -> None:
        for party in self._order:
            writer = self._writers.get(party)
            if party != self.hub and writer is None:
                continue  # not connected yet: its entries wait in the logs
            for stream in self._reads(party):
                log = self._logs.get(stream, [])
                given = self._given.get((party, stream), 0)
                for frame in log[given:]:
                    if party == self.hub:
                        self._inbox.put_nowait(Delivery(int(frame["seq"]), frame["transport"], frame["sender"],
                                                        party, base64.b64decode(frame["data"])))
                    else:
                        assert writer is not None
                        writer.write(_frame({"op": "deliver", "seq": frame["seq"], "sender": frame["sender"],
                                             "transport": frame["transport"], "data": frame["data"]}))
                self._given[(party, stream)] = len(log)

    async def read(self, block_ms: int = 200) -> list[tuple[Delivery, Any]]:
        try:
            first = await asyncio.wait_for(self._inbox.get(), timeout=block_ms / 1000)
        except TimeoutError:
            return []
        got = [(first, None)]
        while not self._inbox.empty():
            got.append((self._inbox.get_nowait(), None))
        return got

    async def waiting(self) -> bool:
        return not self._inbox.empty() or bool(self._queued)

