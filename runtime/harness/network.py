"""An in-memory network of transports, with faults injected from a seed.

It plays the role of the mail accounts that carry pEp Sync messages (draft-pep-keysync
section 1.2): on each transport, every own device, the sender included, receives the
messages of the identity's channel in the same order. That order is the channel's log;
each receiver reads the log from its own position.

Faults break that guarantee on purpose, to test what the protocol does without it:
loss (a receiver never gets a message), duplication (it gets it twice), reordering (it
gets it after a later one) and delay (it gets it only after the clock passes a point).
All choices come from one seeded random source: a seed reproduces a run exactly.

The network is sans-IO too: `post` records, `pending` shows what could be delivered next,
`deliver` hands one delivery over. A driver decides the order (in log order for a plain
simulation; every order for the explorer).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.copying import Copier, copy_fields, share, values
from runtime.errors import UsageError
from runtime.seeded import SeededRandom
from runtime.transport import Delivery

__all__ = ["Delivery", "FaultModel", "InMemoryNetwork"]


@dataclass(frozen=True, slots=True)
class FaultModel:
    """Probabilities per (message, receiver); delay is in seconds of simulated time."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    max_delay: float = 30.0

    def __deepcopy__(self, memo: dict[int, Any]) -> FaultModel:
        return self  # immutable: copies of a world (the explorer's) share it

    @property
    def none(self) -> bool:
        return not (self.loss or self.duplicate or self.reorder or self.delay)

    @classmethod
    def parse(cls, text: str, rate: float = 0.1) -> FaultModel:
        """`loss,dup,reorder,delay` (any subset) at one rate, as the command line gives it."""
        names = {"loss": "loss", "dup": "duplicate", "duplicate": "duplicate",
                 "reorder": "reorder", "delay": "delay"}
        chosen: dict[str, float] = {}
        for word in filter(None, (w.strip() for w in text.split(","))):
            if word not in names:
                raise UsageError(f"unknown fault {word!r}: expected loss, dup, reorder or delay")
            chosen[names[word]] = rate
        return cls(**chosen)


_new = tuple.__new__


def _channel_order(d: Delivery) -> tuple[int, str, int]:
    return d.seq, d.receiver, d.copy


@dataclass
class InMemoryNetwork:
    seed: int = 0
    faults: FaultModel = field(default_factory=FaultModel)
    _members: dict[str, list[str]] = field(default_factory=dict)  # transport -> parties
    _queues: dict[str, list[Delivery]] = field(default_factory=dict)  # receiver -> in order
    _addresses: dict[str, list[str]] = field(default_factory=dict)  # address -> listeners, in order
    _seq: int = 0
    now: float = 0.0
    log: list[tuple[str, Delivery]] = field(default_factory=list)  # ("post"|"lost"|..., d)
    # Without faults, deliveries in channel order, as posted: `next` takes the first
    # instead of comparing every receiver's queue head (n parties make n^2 deliveries).
    # Off once the queues were changed from outside (then `next` scans), and off for the
    # explorer, which picks deliveries itself.
    track_order: bool = True
    _order: deque[Delivery] = field(default_factory=deque)
    # A store-and-forward relay (BisonRelay's server keeps a payload at its RV until the
    # subscriber fetches it): posted to an address nobody listens on, a message waits in
    # `_stored` and goes to the first party that subscribes there. Without, it reaches no
    # one. Stored messages are not in flight (`in_flight`): they rest on the relay.
    mailboxes: bool = False
    _stored: dict[str, list[Delivery]] = field(default_factory=dict)  # address -> posts, in order
    _receivers: tuple[str, ...] = field(default=(), compare=False, repr=False)  # see `receivers`

    def __post_init__(self) -> None:
        self._random = SeededRandom(self.seed)

    def __deepcopy__(self, memo: dict[int, Any]) -> InMemoryNetwork:
        return copy_fields(self, memo, _NETWORK_COPY)  # the random source is deep-copied

    def fork(self) -> InMemoryNetwork:
        """A copy that shares no mutable object with this network, for the explorer's
        copy-on-write worlds (runtime.harness.moves): `__deepcopy__` by hand, field by
        field, as it runs at every explored transition. Its log starts empty (the explorer
        reads and clears the log at every step)."""
        twin = InMemoryNetwork.__new__(InMemoryNetwork)
        state = twin.__dict__
        state.update(self.__dict__)
        # `_members` is shared: `attach` replaces it rather than changing it.
        state["_queues"] = {key: list(items) for key, items in self._queues.items()}
        # `_addresses` is shared too: `subscribe` and `unsubscribe` replace it.
        state["_stored"] = {key: list(items) for key, items in self._stored.items()} if self._stored else {}
        state["log"] = []
        # Not followed (the explorer's networks), the order is never changed: shared.
        state["_order"] = deque(self._order) if self.track_order or self._order else self._order
        # Without faults the network never draws: the copy may share the idle source.
        state["_random"] = self._random if self.faults.none else copy.deepcopy(self._random)
        return twin

    # --- membership

    def attach(self, party: str, transports: tuple[str, ...] = ("channel",)) -> None:
        if party in self._addresses:
            raise UsageError(f"{party} is an address parties listen on, not a party's name")
        for t in transports:
            members = self._members.get(t, [])
            if party not in members:
                # Replaced, never changed in place: the explorer's forks share them (`fork`).
                self._members = {**self._members, t: [*members, party]}
        self._queues.setdefault(party, [])

    def transports(self, party: str) -> tuple[str, ...]:
        return tuple(t for t, members in self._members.items() if party in members)

    def subscribe(self, party: str, address: str) -> None:
        if address in self._queues:
            raise UsageError(f"{address} is a party, not an address to listen on")
        listeners = self._addresses.get(address, [])
        if party not in listeners:
            # Replaced, never changed in place: the explorer's forks share it (`fork`).
            self._addresses = {**self._addresses, address: [*listeners, party]}
        stored = self._stored.pop(address, None)
        if stored:
            self.track_order = False  # older posts join a queue: `next` scans from now on
            queue = self._queues.setdefault(party, [])
            for d in stored:
                self.log.append(("fetched", d))
                d = d._replace(receiver=party)
                if not self.faults.none:
                    self._enqueue(d)
                    continue
                # In posting order among what is queued: a party that subscribes to several
                # addresses at once (BisonRelay's next RVs) gets what waited there as posted.
                position = len(queue)
                while position and queue[position - 1].seq > d.seq:
                    position -= 1
                queue.insert(position, d)
                self.log.append(("post", d))

    def unsubscribe(self, party: str, address: str) -> None:
        listeners = self._addresses.get(address)
        if listeners is None or party not in listeners:
            return
        # Replaced, never changed in place (see `subscribe`).
        addresses = dict(self._addresses)
        remaining = [p for p in listeners if p != party]
        if remaining:
            addresses[address] = remaining
        else:
            del addresses[address]
        self._addresses = addresses

    def listeners(self, address: str) -> tuple[str, ...]:
        """Who receives what is posted to `address` now, in the order they listened."""
        return tuple(self._addresses.get(address, ()))

    # --- sending

    def post(self, sender: str, transport: str, data: bytes, to: str | None = None, label: Any = None) -> int:
        """Put a message on a transport: for every member, the sender included; for the
        party `to`; or for whoever listens on the address `to` now (posted to an address
        nobody listens on, a message reaches nobody: the log says so)."""
        if sender not in self._members.get(transport, ()):
            raise UsageError(f"{sender} is not attached to transport {transport}")
        self._seq += 1
        if to is None:
            receivers = list(self._members[transport])
        elif to in self._queues:
            receivers = [to]
        else:
            receivers = list(self._addresses.get(to, ()))
            if not receivers:
                unheard = _new(Delivery, (self._seq, transport, sender, to, data, 0.0, 0, label))
                if self.mailboxes:
                    self._stored.setdefault(to, []).append(unheard)
                    self.log.append(("stored", unheard))
                else:
                    self.log.append(("unrouted", unheard))
        # tuple.__new__: a NamedTuple's own __new__ is Python code, and this runs per receiver.
        posted = [_new(Delivery, (self._seq, transport, sender, receiver, data, 0.0, 0, label))
                  for receiver in receivers]
        if self.faults.none:  # `_enqueue` without faults, inline: the explorer posts at most of its steps
            queues, log = self._queues, self.log
            for d in posted:
                queue = queues.get(d.receiver)
                if queue is None:
                    queue = queues[d.receiver] = []
                queue.append(d)
                log.append(("post", d))
        else:
            for d in posted:
                self._enqueue(d)
        if self.track_order and self.faults.none:
            self._order.extend(sorted(posted, key=_channel_order))
        return self._seq

    def _enqueue(self, d: Delivery) -> None:
        f, rnd = self.faults, self._random
        queue = self._queues.setdefault(d.receiver, [])
        if f.none:
            queue.append(d)
            self.log.append(("post", d))
            return
        if f.loss and rnd.random() < f.loss:
            self.log.append(("lost", d))
            return
        if f.delay and rnd.random() < f.delay:
            d = Delivery(d.seq, d.transport, d.sender, d.receiver, d.data,
                         self.now + rnd.uniform(0, f.max_delay), label=d.label)
            self.log.append(("delayed", d))
        position = len(queue)
        if f.reorder and rnd.random() < f.reorder and queue:
            position = rnd.randrange(len(queue))  # overtakes the messages after it
            self.log.append(("reordered", d))
        queue.insert(position, d)
        self.log.append(("post", d))
        if f.duplicate and rnd.random() < f.duplicate:
            dup = Delivery(d.seq, d.transport, d.sender, d.receiver, d.data, d.not_before, 1, d.label)
            queue.insert(rnd.randrange(position + 1, len(queue) + 1), dup)
            self.log.append(("duplicated", dup))

    # --- receiving

    def pending(self) -> list[Delivery]:
        """The deliveries that could happen now: the head of each receiver's queue."""
        heads = []
        for receiver in sorted(self._queues):
            for d in self._queues[receiver]:
                if d.not_before <= self.now:
                    heads.append(d)
                    break
        return heads

    def receivers(self) -> tuple[str, ...]:
        """Every party that has a queue, in order of name."""
        known = self._receivers
        if len(known) != len(self._queues):  # receivers are only ever added
            known = self._receivers = tuple(sorted(self._queues))
        return known

    def queue(self, receiver: str) -> Sequence[Delivery]:
        """What is in flight to `receiver`, in the order it would read it (read-only)."""
        return self._queues.get(receiver, ())

    def lose(self, d: Delivery) -> Delivery:
        """A fault: `d`, in flight, never reaches its receiver."""
        self._remove(d)
        self.log.append(("lost", d))
        return d

    def stored(self) -> tuple[tuple[str, tuple[Delivery, ...]], ...]:
        """What waits on the relay for a subscriber, by address (in order of address)."""
        return tuple((address, tuple(posts)) for address, posts in sorted(self._stored.items()))

    def in_flight(self) -> int:
        return sum(map(len, self._queues.values()))

    def idle(self) -> bool:
        """Nothing in flight (`in_flight() == 0`, asked of every explored world)."""
        return not any(self._queues.values())

    def next_due(self) -> float | None:
        """The earliest time a delayed delivery becomes deliverable, if any is waiting."""
        times = [d.not_before for q in self._queues.values() for d in q if d.not_before > self.now]
        return min(times, default=None)

    def deliver(self, d: Delivery) -> Delivery:
        """`d`, in flight, reaches its receiver: out of its queue."""
        self._remove(d)
        self.log.append(("delivered", d))
        return d

    def _remove(self, d: Delivery) -> None:
        queue = self._queues[d.receiver]
        if queue and queue[0] is d:
            del queue[0]
        else:
            queue.remove(d)

    def next(self, receivers: Collection[str] | None = None) -> Delivery | None:
        """The next delivery in channel order (lowest log position first), if any is due;
        with `receivers`, the next to one of them (the others' stay in flight)."""
        if receivers is not None:
            due = [d for r in receivers for d in self._queues.get(r, ()) if d.not_before <= self.now]
            return self.deliver(min(due, key=_channel_order)) if due else None
        order = self._order
        if self.track_order and order:
            d = order[0]
            queue = self._queues[d.receiver]
            if queue and queue[0] is d:
                order.popleft()
                return self.deliver(d)
            self.track_order = False  # the queues were changed from outside: scan from now on
            order.clear()
        # Most of the time nothing is delayed and the candidates are the queues' heads.
        heads = [q[0] for q in self._queues.values() if q]
        if any(d.not_before > self.now for d in heads):
            heads = self.pending()
        if not heads:
            return None
        return self.deliver(min(heads, key=_channel_order))


def _lists(value: dict[str, list[Any]], memo: dict[int, Any]) -> dict[str, list[Any]]:
    """Members and queues: new lists of the same names and (frozen) deliveries."""
    return {key: list(items) for key, items in value.items()}


# How the network's fields are copied (runtime.copying); the others are deep-copied.
_NETWORK_COPY: dict[str, Copier] = {
    "seed": share, "faults": share, "_seq": share, "now": share, "track_order": share, "_order": values,
    "_members": _lists, "_queues": _lists, "_addresses": _lists, "log": values,  # log: (str, Delivery) tuples
    "mailboxes": share, "_stored": _lists, "_receivers": share,
}
