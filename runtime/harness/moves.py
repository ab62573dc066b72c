"""Copy-on-write worlds and the parties' moves, remembered: what makes exploration fast.

A step of the explorer changes at most one party (the receiver of a delivery, the party of
an event or a timeout) and the network. So a world's successor shares every other party
with it (`fork`): the Party objects in the explorer's worlds are never changed once a
world holds them, and the one party a step changes is copied first (`own`). Where the
scenario's parties share a mutable object (`parties_share`), that is unsound, and the
explorer copies whole worlds instead.

In a product of parties, one party's step recurs in many worlds: the same receiver, in
the same state, gets the same message, whatever the others did meanwhile (every
interleaving of independent steps). Since a shared Party object is its local state, the
step's outcome can be remembered by (that object, the input, the time) (`Moves`): the
party after it, which is shared in turn, and what it asked of the network (posts,
subscriptions), which is replayed on the successor's network. A remembered step costs
neither a copy nor the machine's dispatch nor its cryptography. What a step reads
besides its party and input is the clock (timers and rate limits are set from it), which
is part of the key; a step that calls on the network for anything but the recorded calls
is not remembered.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from runtime.device import RECORDS
from runtime.harness.simulation import Simulation
from runtime.party import Party

__all__ = ["Move", "Moves", "Recording", "fork", "own", "parties_share"]

# What a party may ask of the network during a step and the step still be replayed.
_RECORDED = frozenset({"post", "subscribe", "unsubscribe"})
# What it may read of it (answers that depend on the network's state would make the step
# depend on more than its party and input).
_READ = frozenset({"transports"})


class Recording:
    """A network in front of the real one, for one party's step: records the calls that
    change it, so that they can be replayed on another world's network."""

    __slots__ = ("network", "calls", "opaque")

    def __init__(self, network: Any) -> None:
        self.network = network
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.opaque = False  # the party used the network otherwise: not replayable

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.network, name)
        if name in _RECORDED:
            def recorded(*args: Any, **kwargs: Any) -> Any:
                self.calls.append((name, args, kwargs))
                return method(*args, **kwargs)
            return recorded
        if name not in _READ:
            self.opaque = True
        return method


@dataclass(slots=True)
class Move:
    """A party's step, remembered: the party after it, its calls on the network, and
    what the explorer reads of its trace."""

    party: Party
    calls: tuple[tuple[str, tuple[Any, ...], dict[str, Any]], ...]
    ignored: tuple[tuple[str, str, str], ...]
    sent: bool

    def replay(self, network: Any) -> None:
        for name, args, kwargs in self.calls:
            getattr(network, name)(*args, **kwargs)


class Moves:
    """Remembered steps, by party object and input; and each party object's snapshot
    record. Bounded: past `limit` party objects, all is forgotten (an entry holds its
    party, so its id cannot be reused while the entry stands)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._entries: dict[int, tuple[Party, dict[Hashable, Move], list[Any]]] = {}
        self._canonical: dict[Hashable, Party] = {}
        self.hits = self.misses = self.forgotten = 0

    def canonical(self, party: Party, record: Any) -> Party:
        """The one party object of `party`'s whole local state (`record`: its device's
        snapshot record): a party that reaches a state another party object is in by
        another path is replaced by that object, whose steps are remembered already."""
        key = local_state(party, record)
        found = self._canonical.get(key)
        if found is not None:
            return found
        if len(self._canonical) >= self.limit:
            self._canonical.clear()
        self._canonical[key] = party
        self.entry(party)[2][0] = record
        return party

    def entry(self, party: Party) -> tuple[Party, dict[Hashable, Move], list[Any]]:
        found = self._entries.get(id(party))
        if found is not None and found[0] is party:
            return found
        if len(self._entries) >= self.limit:
            self.forgotten += len(self._entries)
            self._entries.clear()
        # [the record of the party's device, the number of the party's part of snapshots,
        # and (the time, that part with the time left on its timers) as last taken]
        made = self._entries[id(party)] = (party, {}, [None, None, None])
        return made

    def find(self, party: Party, key: Hashable) -> Move | None:
        move = self.entry(party)[1].get(key)
        if move is None:
            self.misses += 1
        else:
            self.hits += 1
        return move

    def remember(self, before: Party, key: Hashable, move: Move) -> None:
        self.entry(before)[1][key] = move


def local_state(party: Party, record: Any) -> Hashable:
    """Everything of a party that a step reads or that the explorer compares, whole
    (`record` with every field, also those declared not to compare): two parties with
    one local state behave alike in every world."""
    machine = party.machine
    buffer = machine.buffer
    return (party.name, type(machine), machine._state, machine._stopping, tuple(machine._queue),
            type(buffer), tuple(getattr(buffer, f.name) for f in dataclasses.fields(buffer)), whole(record),
            party.deadline, tuple(sorted(party.rate_limited_until.items())), party.listening,
            party.active_transport, party.transports)


def whole(value: Any) -> Any:
    """A record as a tuple of all its fields, where some (here or nested) are declared
    not to compare, which dataclass equality leaves out; else the record itself."""
    plan = _WHOLE.get(type(value))
    if plan is None:
        plan = _WHOLE[type(value)] = _whole_plan(type(value))
    if plan is _AS_IS:
        return value
    return (type(value), *(whole(v) if deep else v for v, deep in zip(_values(value, plan), plan[1], strict=True)))


def _values(value: Any, plan: tuple[tuple[str, ...], tuple[bool, ...]]) -> Iterator[Any]:
    for name in plan[0]:
        v = getattr(value, name)
        yield tuple(map(whole, v)) if type(v) is tuple else v


_AS_IS: Any = object()
_WHOLE: dict[type, Any] = {}


def _whole_plan(cls: type) -> Any:
    """The fields of `cls` and which of them may hold records (or tuples of them) that
    `whole` takes apart in turn."""
    if not takes_apart(cls):
        return _AS_IS
    fields = dataclasses.fields(cls)
    try:
        hints = typing.get_type_hints(cls)
        deep = tuple(any(takes_apart(t) for t in types_of(hints.get(f.name))) for f in fields)
    except Exception:  # noqa: BLE001 - a hint that does not resolve: look at every field
        deep = tuple(True for _ in fields)
    return tuple(f.name for f in fields), deep


def types_of(hint: Any) -> tuple[Any, ...]:
    """The classes a type hint names (a Callable's parameters come as a list)."""
    if isinstance(hint, list):
        return tuple(t for a in hint for t in types_of(a))
    args = typing.get_args(hint)
    return tuple(t for a in args for t in types_of(a)) if args else (hint,)


@functools.cache
def takes_apart(cls: Any) -> bool:
    """Whether records of `cls` have fields that do not compare, here or nested."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return False
    if any(not f.compare for f in dataclasses.fields(cls)):
        return True
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001
        return True
    return any(takes_apart(t) for f in dataclasses.fields(cls) for t in types_of(hints.get(f.name)))


def fork(sim: Simulation) -> Simulation:
    """A simulation that shares its parties with `sim` and has a network of its own (the
    queues hold immutable deliveries) and a trace of its own (empty)."""
    twin = Simulation.__new__(Simulation)
    state = twin.__dict__
    state.update(sim.__dict__)
    state["trace"] = []
    state["network"] = sim.network.fork()
    state["parties"] = dict(sim.parties)
    state["devices"] = dict(sim.devices)
    return twin


def own(sim: Simulation, name: str, record: Any = None) -> Party:
    """Replace the party `name` of `sim` (shared with other worlds) with a copy of its own,
    bound to this world's clock, network and trace, and return it. `record`, when known,
    is the party's device's snapshot record (the copy restores from it)."""
    party = sim.parties[name]
    memo: dict[Any, Any] = {id(party.network): sim.network, id(party.trace): sim.trace}
    birth = getattr(party.clock, "__self__", None)
    if birth is not None:
        memo[id(birth)] = sim
    if record is not None:
        memo[RECORDS] = {id(party.device): record}
    twin = copy.deepcopy(party, memo)
    sim.parties[name] = twin
    sim.devices[name] = twin.device
    return twin


def parties_share(sim: Simulation) -> bool:
    """Whether two of the parties hold one mutable object (as deep copies see them: what
    copies itself as itself is immutable), besides the world's network, clock and trace.
    Then a party cannot be copied alone."""
    seen: set[int] = set()
    world = {id(sim), id(sim.network), id(sim.trace)}
    memos = []  # kept until the end: no id seen here is reused meanwhile
    for party in sim.parties.values():
        memo: dict[Any, Any] = {i: _Stand() for i in world}
        copy.deepcopy(party, memo)
        memos.append(memo)
        mine = {k for k in memo if isinstance(k, int) and k not in world and k != id(memo)}
        if mine & seen:
            return True
        seen |= mine
    return False


class _Stand:
    """What a party's copy holds for the world's objects while `parties_share` looks."""

    def __call__(self, *args: Any) -> Any:
        return None
