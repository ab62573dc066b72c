"""The asyncio driver: a party as a task, on a real transport, under the wall clock.

`AsyncParty.run` takes one input at a time from its queue (a delivery, a user event, a
start, a due timer) and runs it to completion on the sans-IO party (runtime.party), as
the machine core requires; then, for a durable party (runtime.durable), it commits the
step, writes what the step sent and marks it sent; then it sets the state's timer
(`loop.call_at`) to queue a tick when the state's timeout is due. A reader task moves
what the transport delivers into the queue with its position; a delivery's position
counts as consumed from the step that took it on, and is committed with that step.

The clock is the wall clock (`time.time`) plus an offset that `advance` moves: a run
cannot wait seven days for a stale device, so a scenario's `advance` moves the party's
clock, and due timers fire. Every trace entry a step writes goes to `on_trace` as soon as
the step is done: the same entries as the simulator's, for the same sequence charts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from runtime.durable import DurableParty
from runtime.party import Party, TraceEntry
from runtime.transport import Delivery

__all__ = ["READ_BLOCK_MS", "AsyncParty", "AsyncTransport", "WallClock"]

READ_BLOCK_MS = 100  # how long a read waits for news before the party counts as idle


class AsyncTransport(Protocol):
    """A transport whose writes and reads are asynchronous (runtime.net.redis)."""

    async def flush(self) -> None: ...
    async def waiting(self) -> bool: ...
    async def read(self, block_ms: int = 200) -> list[tuple[Delivery, Any]]: ...
    def consume(self, position: Any) -> None: ...


class WallClock:
    """time.time() plus an offset that `advance` moves forward."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


class AsyncParty:
    def __init__(self, party: Party, transport: AsyncTransport, clock: WallClock, *,
                 durable: DurableParty | None = None, before_event: Callable[..., None] | None = None,
                 on_trace: Callable[[TraceEntry], None] | None = None) -> None:
        self.party = party
        self.transport = transport
        self.clock = clock
        self.durable = durable
        self.before_event = before_event
        self.on_trace = on_trace
        self.inputs: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.steps = 0  # inputs handled, by this process
        self.reading_idle = False  # the last read found nothing
        self._busy = False  # a step is under way (taken from the queue, not yet written)
        self._closing = False  # `stop` was taken: the reader ends
        self.current: str | None = None  # the kind of input the step under way runs
        self._emitted = len(party.trace)
        self._timer: asyncio.TimerHandle | None = None
        # Nothing is read before the machine has started (its InitState's Init ran): a
        # delivery must not reach a machine that has not. A party resumed from its store
        # after a step has started.
        self._started = asyncio.Event()
        if durable is not None and durable.step > 0:
            self._started.set()

    # --- what the outside asks

    def start(self) -> None:
        self.inputs.put_nowait(("start",))

    def event(self, name: str, step: dict[str, Any] | None = None) -> None:
        self.inputs.put_nowait(("event", name, step or {}))

    def advance(self, seconds: float) -> None:
        self.inputs.put_nowait(("advance", seconds))

    def stop(self) -> None:
        self.inputs.put_nowait(("stop",))

    async def quiet(self) -> bool:
        """Idle, and nothing on the transport for this party that it has not read."""
        return self.idle and not (self._started.is_set() and await self.transport.waiting())

    @property
    def idle(self) -> bool:
        """No step under way, nothing queued, and the transport had nothing more to read
        (before the start: nothing to do)."""
        return not self._busy and self.inputs.empty() and (self.reading_idle or not self._started.is_set())

    # --- the loop

    async def run(self) -> None:
        """Run until `stop`: steps, one at a time, and a reader beside them."""
        if self.durable is not None and self.durable.pending:
            await self._written()  # what the last step before a restart had not written
        reader = asyncio.create_task(self._reader())
        try:
            while True:
                item = await self.inputs.get()
                if item[0] == "stop":
                    break
                self._busy, self.current = True, item[0]
                self._step(item)
                await self._written()
                self._emit()
                self._arm_timer()
                self.steps += 1
                self._busy = False
                # Let the loop's other tasks run: a queue that is never empty would keep
                # this loop from ever suspending (awaits that complete at once do not), and
                # parties sharing a loop (the memory transport) would starve.
                await asyncio.sleep(0)
        finally:
            # The reader ends at its next read's end (a read waits at most READ_BLOCK_MS).
            # It is not cancelled inside a read: redis-py's asyncio client can hang in a
            # blocking XREAD it is cancelled in.
            self._closing = True
            try:
                await asyncio.wait_for(asyncio.shield(reader), timeout=5 * READ_BLOCK_MS / 1000)
            except TimeoutError:
                reader.cancel()
            if self._timer is not None:
                self._timer.cancel()

    def _step(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        target: Any = self.durable if self.durable is not None else self.party
        if kind == "start":
            target.start()
            self._started.set()
        elif kind == "event":
            _, name, step = item
            if self.before_event is not None:
                self.before_event(self.party.device, name, step)
            target.event(self.party.machine.Event[name], name)  # type: ignore[attr-defined]
        elif kind == "deliver":
            _, delivery, position = item
            self.transport.consume(position)  # committed with this step
            target.deliver(delivery)
        elif kind == "tick":
            target.tick()
        elif kind == "advance":
            self.clock.offset += item[1]
            target.tick()

    async def _written(self) -> None:
        await self.transport.flush()
        if self.durable is not None:
            self.durable.posted()

    async def _reader(self) -> None:
        started = asyncio.ensure_future(self._started.wait())
        while not started.done():  # not before the start; or until closing
            if self._closing:
                started.cancel()
                return
            await asyncio.wait([started], timeout=READ_BLOCK_MS / 1000)
        while not self._closing:
            got = await self.transport.read(READ_BLOCK_MS)
            self.reading_idle = not got
            for delivery, position in got:
                self.inputs.put_nowait(("deliver", delivery, position))
            if got:
                # Read on only once these are handled: positions stay in step order, and
                # what the party subscribes to meanwhile is read from the next read on.
                while not self.inputs.empty() and not self._closing:
                    await asyncio.sleep(0.005)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.party.deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self.inputs.put_nowait, ("tick",))

    def _emit(self) -> None:
        trace = self.party.trace
        if self.on_trace is not None:
            for entry in trace[self._emitted:]:
                self.on_trace(entry)
        self._emitted = len(trace)
