"""A party that survives a crash: every step committed to its store before it is sent.

`DurableParty` drives a `Party` whose sends go to an outbox instead of the transport.
After each input (start, event, delivery, timeout) has run to completion it commits the
party's record and the outbox in one transaction (runtime.store), then posts the outbox
and marks it sent. `DurableParty.resume` rebuilds a party from its store: the machine in
its state with its I/O buffer, the device from its state record, the timers, the random
source where it was, and posts what the last step had not posted yet.

The record (`PartyRecord`) holds what a party's behaviour depends on, written with
runtime.values: two runs of which one crashed and resumed between steps are the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.party import Party
from runtime.store import Outgoing, Store
from runtime.transport import Delivery
from runtime.values import Values

__all__ = ["DurableParty", "PartyRecord"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartyRecord:
    """A party between two steps."""

    state: int  # the machine's state
    buffer: Any  # its I/O buffer (a generated record)
    device: Any  # the device's state record (`snapshot`), keys included
    random: Any = None  # the device's random source's state (`getstate`), if it has one
    deadline: float | None = None  # when the state times out (the party's clock)
    rate_limited_until: tuple[tuple[int, float], ...] = ()
    active_transport: str | None = None
    listening: frozenset[str] = frozenset()
    positions: tuple[tuple[str, str], ...] = ()  # a transport's read positions (stream -> id)
    clock_offset: float = 0.0  # how far a driver's clock was moved ahead of the wall clock (runtime.aio)


def record_of(party: Party, positions: tuple[tuple[str, str], ...] = (), clock_offset: float = 0.0) -> PartyRecord:
    rng = getattr(party.device, "rng", None)
    return PartyRecord(state=party.machine.state_id, buffer=party.machine.buffer, device=party.device.snapshot(),
                       random=rng.getstate() if rng is not None and hasattr(rng, "getstate") else None,
                       deadline=party.deadline, rate_limited_until=tuple(sorted(party.rate_limited_until.items())),
                       active_transport=party.active_transport, listening=party.listening, positions=positions,
                       clock_offset=clock_offset)


def restore(party: Party, record: PartyRecord) -> None:
    party.machine.reset(record.state)
    party.machine.buffer = record.buffer
    party.device.restore(record.device)
    if record.random is not None:
        party.device.rng.setstate(record.random)  # type: ignore[attr-defined]
    party.deadline = record.deadline
    party.rate_limited_until = dict(record.rate_limited_until)
    party.active_transport = record.active_transport
    # The transport follows what the restored device listens on.
    for address in sorted(record.listening - party.listening):
        party.network.subscribe(party.name, address)
    for address in sorted(party.listening - record.listening):
        party.network.unsubscribe(party.name, address)
    party.listening = record.listening


class DurableParty:
    """A party and its store: each input is a step, committed before what it sent is posted."""

    def __init__(self, party: Party, store: Store, values: Values, *, step: int = 0, autopost: bool = True,
                 positions: Callable[[], tuple[tuple[str, str], ...]] = tuple,
                 clock_offset: Callable[[], float] = float) -> None:
        """`positions` gives the transport's consumed read positions, committed with each
        step. With `autopost` the party posts a step's messages right after its commit;
        without, the driver takes them from `pending`, posts them (asynchronously) and
        calls `posted` (runtime.aio)."""
        self.party = party
        self.store = store
        self.values = values
        self.step = step
        self.autopost = autopost
        self.positions = positions
        self.clock_offset = clock_offset
        self.pending: tuple[Outgoing, ...] = ()
        self.record: PartyRecord | None = None  # what `resume` restored (its positions: the transport's)
        party.outbox = []

    @classmethod
    def resume(cls, party: Party, store: Store, values: Values, **options: Any) -> DurableParty:
        """`party` (freshly built, as at the start) as its store left it; the messages of
        the last step that were not marked sent are posted now (or left in `pending`)."""
        saved = store.load()
        durable = cls(party, store, values, step=0 if saved is None else saved.step, **options)
        if saved is not None:
            record = values.decode(saved.record)
            if not isinstance(record, PartyRecord):
                raise TypeError(f"{store.path}: the record is a {type(record).__name__}, not a PartyRecord")
            restore(party, record)
            durable.record = record
            durable._post(saved.outbox)
        return durable

    def __getattr__(self, name: str) -> Any:
        return getattr(self.party, name)  # machine, device, name, deadline: the party's

    # --- inputs: each one step

    def start(self) -> None:
        self.party.start()
        self._commit()

    def event(self, event: int, name: str | None = None) -> None:
        self.party.event(event, name)
        self._commit()

    def deliver(self, delivery: Delivery) -> None:
        self.party.deliver(delivery)
        self._commit()

    def tick(self) -> bool:
        fired = self.party.tick()
        if fired:
            self._commit()
        return fired

    # --- the step's end

    def _commit(self) -> None:
        outbox = self.party.outbox
        assert outbox is not None
        sent = [Outgoing(transport, to, data, self.values.encode(label)) for transport, to, data, label in outbox]
        outbox.clear()
        self.step += 1
        record = record_of(self.party, self.positions(), self.clock_offset())
        stored = self.store.commit(self.step, self.values.encode(record), sent)
        self._post(stored)

    def _post(self, entries: tuple[Outgoing, ...]) -> None:
        for entry in entries:
            self.party.post(entry.transport, entry.address, entry.data, self.values.decode(entry.label))
        if not self.autopost:
            self.pending = (*self.pending, *entries)  # the driver writes them, then `posted`
        elif entries:
            self.store.sent(entries)

    def posted(self) -> None:
        """What `pending` held is on the transport: out of the outbox."""
        if self.pending:
            self.store.sent(self.pending)
            self.pending = ()
