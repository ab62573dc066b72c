"""Systematic exploration: every interleaving of a scenario's parties, with faults and
user choices, checked against the protocol designer's invariants.

The world is a Simulation (runtime.harness.simulation): the parties' machines, devices and I/O
buffers, and the messages in flight. From each world the environment may:
  - deliver the next message to any receiver (each receiver reads its channel in order,
    draft 1.2; with `reorder`, any message in flight to it: see `hold` below),
  - lose the next message to a receiver (`loss`), or deliver a copy of it and keep it
    (`dup`, once each),
    at most `max_faults` times on one path when that bound is given (a fault model, like
    the draft's own assumption of a reliable channel, that the report states),
  - answer a dialog: any of the user's answers the protocol's manifest lists
    (`user_events`; KeySync: Accept, Reject, Cancel) on a party in a state that handles it,
  - fire a party's state timeout, and raise the signaled events the scenario permits.
User answers, timeouts and signaled events draw on per-party budgets (they start new
negotiations with fresh TIDs, so without a bound the space has no end); the budgets are
part of the state and say so in the report.

The designer's invariants are the protocol's (its manifest's `invariants`, or another
module's `INVARIANTS`), functions of a World that return None when they hold, else what
is wrong: `safety` is checked in every world, `quiescent` in every quiet one (nothing in
flight, no timer pending), `terminal` in every world where the environment has no choice
left (the budgets are spent: the run ends there), `stalled` in every world where each
choice left would disturb the run (a fault, a timeout, a user's answer that does not
consent: `Explorer.stuck`), the run's end included. `observed(party)`, when given, is what
`safety` reads of a party, which allows the partial-order reduction (`Explorer._silent`).

Breadth-first search with state hashing over a canonical snapshot (machine states, I/O
buffers, each device's state record, the messages in flight by content), so
the first violation found has a shortest counterexample; depth-first (`search="dfs"`)
for spaces too large to hold a level of worlds in memory. A world that another explored
world with the same snapshot subsumes (fewer faults, undisturbed: see `rank`) is not
explored again. Bounds on depth and states are honoured and reported: a bounded run is
never called a proof.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import importlib
import operator
import sys
import time
import typing
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runtime import memo
from runtime.copying import Copier, copy_fields, share, values
from runtime.device import RECORDS
from runtime.errors import UsageError
from runtime.harness.fingerprint import combine, stable_hash
from runtime.harness.moves import Move, Moves, Recording, fork, own, parties_share, takes_apart, types_of
from runtime.harness.network import FaultModel
from runtime.harness.simulation import EXPLORE, Scenario, Simulation
from runtime.manifest import Invariant, Invariants
from runtime.party import Party, TraceEntry
from runtime.transport import Delivery

__all__ = ["Choice", "Explorer", "Report", "Verdict", "Violation", "World", "load_invariants"]

# A world's check (Explorer.verdict): whether it is quiet, and the invariants it violates
# with what is wrong (None for none).
Verdict = tuple[bool | None, list[tuple[str, str]] | None]
FINE: Verdict = (False, None)  # the verdict on most worlds (one object: compared by identity)
QUIET: Verdict = (True, None)


@dataclass(frozen=True, slots=True)
class Choice:
    kind: str  # deliver, lose, dup, hold, event, timeout
    party: str
    detail: str = ""
    index: int = 0  # position in the receiver's queue, for deliveries

    def __str__(self) -> str:
        if self.kind in ("deliver", "lose", "dup", "replay"):
            return f"{self.kind} {self.detail} to {self.party}"
        if self.kind == "hold":
            return f"hold {self.detail} to {self.party} for a message behind it"
        if self.kind == "event":
            return f"{self.detail} on {self.party}"
        return f"timeout on {self.party}"


@dataclass
class World:
    """A simulation plus what the explorer tracks about the environment's choices."""

    sim: Simulation
    budget: dict[tuple[str, str], int]  # (party, user|timeout|signal) -> left
    accepted: dict[str, frozenset[Hashable]]  # party -> negotiations the user consented to
    # party -> negotiations the user answered, whatever the answer (KeySync: Accept,
    # Reject or Cancel): what the user was asked about and need not be asked again.
    answered: dict[str, frozenset[Hashable]] = field(default_factory=dict)
    dup_used: frozenset[tuple[str, Any]] = frozenset()
    # Receivers whose next message is held back until a message behind it overtakes it
    # (the reorder fault, as the reduced search injects it: see Explorer.choices).
    held: frozenset[str] = frozenset()
    faults: int = 0  # faults injected on the path to this world
    timeouts_fired: int = 0  # state timeouts fired on the path to this world
    # True once a fault, a timeout, a user's answer other than a consent (KeySync: Reject,
    # Cancel) or a signaled event has happened: progress is only promised on an
    # undisturbed run.
    disturbed: bool = False
    ignored: list[tuple[str, str, str]] = field(default_factory=list)  # this step's (party, state, event)
    # Whether this step sent anything, or tried to and was held back by a rate limit
    # (whether a rate limit holds depends on the clock, which timeouts move).
    sent: bool = False
    # With the replay fault: every message posted so far, once per label (what it is:
    # sender, message, what sealing attached), as first posted, with whom it was posted
    # for; which of them each party received; and what the last step's replay did to its
    # receiver (see Explorer._replay).
    heard: dict[Any, tuple[Delivery, frozenset[str]]] = field(default_factory=dict)
    delivered: frozenset[tuple[str, Any]] = frozenset()
    replayed: str | None = None
    # The devices' state records as the world's snapshot took them, with their compared
    # keys (party -> (record, key)): the world's copies restore their devices from them
    # instead of taking them again, and a copy's snapshot reuses those of the parties its
    # step did not touch (`carried`). Kept only by the depth-first search, whose frontier
    # is short; a world is never changed once its snapshot is taken (the explorer changes
    # only fresh copies, which start without).
    records: dict[str, tuple[Any, Any]] | None = None
    carried: dict[str, tuple[Any, Any]] | None = None
    # In a copy-on-write world: the numbers of its snapshot's parts (parties, then
    # queues), and, until its snapshot is taken, its parent's with what its step changed
    # (see Explorer._snapshot_shared).
    parts: list[int] | None = None
    changed: tuple[list[int], float, str | None, set[str], bool] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> World:
        # The explorer copies a world at every transition (Explorer.apply): each class of
        # it says how its fields are copied (runtime.copying), much faster than generic
        # deepcopy, and the copy shares no mutable object with the original.
        if self.records is not None:
            parties = self.sim.parties
            memo[RECORDS] = {id(parties[name].device): record  # type: ignore[index]
                             for name, (record, _) in self.records.items()}
        return copy_fields(self, memo, _WORLD_COPY)

    @property
    def parties(self) -> dict[str, Party]:
        return self.sim.parties

    def state_of(self, name: str) -> str:
        return self.sim.parties[name].machine.state_name

    @property
    def quiet(self) -> bool:
        """Nothing in flight and no timer pending."""
        return self.sim.network.idle() and all(p.deadline is None for p in self.sim.parties.values())


# How a world's fields are copied (runtime.copying); the others (the simulation) are
# deep-copied. Budgets are ints, acceptances frozensets, ignored events tuples of str.
_WORLD_COPY: dict[str, Copier] = {
    # A copy is changed before its snapshot is taken (Explorer.apply sets what it carries).
    "records": lambda records, memo: None, "carried": lambda carried, memo: None,
    "parts": lambda parts, memo: None, "changed": lambda changed, memo: None,
    "budget": values, "accepted": values, "answered": values,
    "dup_used": share, "held": share, "faults": share, "timeouts_fired": share,
    "disturbed": share, "sent": share, "heard": values, "delivered": share, "replayed": share,
    "ignored": values,
}

_HEAD = frozenset({"deliver", "lose", "dup", "hold"})  # choices about a queue's head
# The faults an exploration may inject: a message in flight lost, duplicated, reordered;
# a message posted earlier delivered again, to any party (an attacker's replay).
FAULTS = ("loss", "dup", "reorder", "replay")


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    message: str
    path: tuple[Choice, ...]


@dataclass
class Report:
    states: int = 0
    transitions: int = 0
    max_depth: int = 0
    seconds: float = 0.0
    complete: bool = True
    bounded_by: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)  # the first (shortest) per invariant
    violating: Counter[str] = field(default_factory=Counter)  # invariant -> worlds that violate it
    unhandled: Counter[tuple[str, str]] = field(default_factory=Counter)  # (state, event) -> count
    quiet_states: int = 0
    subsumed: int = 0  # worlds not explored: an explored world with their snapshot subsumes them
    terminal_states: int = 0  # worlds where the environment had no choice left
    # With Explorer.digest_states: a digest of the set of explored states' fingerprints
    # (order-free, stable across processes). fsmc mutate calls a mutant equivalent when
    # it explored the very states of the unmutated FSM.
    digest: str = ""
    seen_bytes: int = 0  # the seen-set's memory: its table, keys and rank tuples
    distinct: int = 0  # distinct states (fingerprints, or snapshots when exact)
    workers: int = 1
    # Steps replayed from remembered moves and steps taken (runtime.harness.moves); pure
    # functions' results reused and computed (runtime.memo: the protocols' cryptography).
    moves: tuple[int, int] = (0, 0)
    pure: tuple[int, int] = (0, 0)

    @property
    def bytes_per_state(self) -> float:
        return self.seen_bytes / self.states if self.states else 0.0

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds else 0.0


def replays_change_nothing(world: World) -> str | None:
    """A message delivered again changes nothing of its receiver (Explorer._replay)."""
    return world.replayed


_new_delivery = tuple.__new__  # a Delivery without its NamedTuple's Python-level __new__


def _choice(made: dict[tuple[str, str, str, int], Choice], kind: str, party: str, detail: str, index: int) -> Choice:
    """One Choice object per choice (they recur in every world: building one costs more
    than finding it)."""
    key = kind, party, detail, index
    found = made.get(key)
    if found is None:
        found = made[key] = Choice(kind, party, detail, index)
    return found


def _name(d: Any) -> str:
    return d.label[1].NAME if d.label else "?"


def _compared(value: Any) -> Any:
    """What of a device's state record tells states apart: its fields declared to compare
    (nested records likewise), as a tuple; a record all of whose fields compare is its
    own key. The search keeps these, not the whole record (the fields that do not
    compare would only take memory)."""
    plan = _PLANS.get(type(value))
    if plan is None:
        plan = _PLANS[type(value)] = _plan(type(value))
    if plan is _AS_IS:
        return value
    getter, nested = plan
    values = getter(value)
    if nested:
        values = list(values)
        for i in nested:
            values[i] = _compared(values[i])
    return (type(value), *values)


_AS_IS: Any = object()
_PLANS: dict[type, Any] = {}


def _plan(cls: type) -> Any:
    """How `_compared` takes a record of class `cls` apart: a getter of its compared
    fields and the positions among them that may hold records to take apart in turn
    (from the fields' type hints; all of them when the hints cannot be read)."""
    if not takes_apart(cls):
        return _AS_IS
    names = [f.name for f in dataclasses.fields(cls) if f.compare]
    try:
        hints = typing.get_type_hints(cls)
        nested = tuple(i for i, n in enumerate(names) if any(takes_apart(t) for t in types_of(hints.get(n))))
    except Exception:  # noqa: BLE001 - a hint that does not resolve: look at every field
        nested = tuple(range(len(names)))
    return _fields_getter(names), nested


def _buffer(machine: Any) -> tuple[Any, ...]:
    """The machine's I/O buffer as a tuple of its fields' values."""
    b = machine.buffer
    getter = _BUFFER_GETTERS.get(type(b))
    if getter is None:
        getter = _BUFFER_GETTERS[type(b)] = _fields_getter([f.name for f in dataclasses.fields(b)])
    return getter(b)


_BUFFER_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _fields_getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the named attributes of an object as a tuple (attrgetter
    returns the value itself for one name, and is not callable with none)."""
    if not names:
        return lambda _: ()
    getter = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda value: (getter(value),)
    return getter


class Explorer:
    def __init__(self, scenario: Scenario, faults: frozenset[str] = frozenset(), *,
                 max_depth: int | None = None, max_states: int | None = None,
                 max_faults: int | None = None, user_events: int = 1, timeouts: int = 0,
                 signals: tuple[str, ...] = (), invariants: str | Invariants | None = None, reduce: bool = True,
                 search: str = "bfs", exact: bool = False) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise UsageError(f"unknown faults: {', '.join(sorted(unknown))}")
        self.scenario = scenario
        self.faults = faults
        self.replaying = "replay" in faults
        if search not in ("bfs", "dfs"):
            raise UsageError(f"unknown search order {search!r}: bfs or dfs")
        self.search = search
        self.max_depth = max_depth
        self.max_states = max_states
        self.max_faults = max_faults
        # The seen-set: of fingerprints (runtime.harness.fingerprint), or of the snapshots
        # themselves (`exact`: no collision possible, more memory).
        self.exact = exact
        self.digest_states = False  # fill Report.digest
        # Stop at the first violation of an invariant not in this set (fsmc mutate: a
        # mutant is killed by its first violation the unmutated FSM does not have, and
        # the rest of its space need not be searched). The report is then incomplete,
        # bounded by "violation".
        self.stop_beyond: frozenset[str] | None = None
        self._stopped = False
        self.user_events, self.timeouts, self.signals = user_events, timeouts, signals
        chosen = invariants if invariants is not None else scenario.explore.get("invariants")
        checks = scenario.protocol.invariants if chosen is None else (
            chosen if isinstance(chosen, Invariants) else load_invariants(chosen))
        self.invariants = checks
        self.safety: list[Invariant] = list(checks.safety)
        if "replay" in faults and checks.replays_change_nothing:
            self.safety.append(replays_change_nothing)
        self.quiescent: list[Invariant] = list(checks.quiescent)
        self.terminal: list[Invariant] = list(checks.terminal)
        self.stalled: list[Invariant] = list(checks.stalled)
        # What the safety invariants read of one party; declaring it allows the reduction.
        self.observed: Callable[[Party], Any] | None = checks.observed if reduce else None
        self.user_answers = scenario.protocol.user_events
        self.negotiation = scenario.protocol.negotiation
        self.consents = scenario.protocol.consents
        # Reordering as the reduction needs it (`choices`), or, unreduced, as defined.
        self.hold_to_reorder = reduce
        self._parts: dict[Any, Any] = {}  # see `_intern`
        # Copy-on-write worlds and remembered moves (runtime.harness.moves), unless the
        # scenario's parties share a mutable object (decided on the initial world) or
        # this is turned off (the tests compare both).
        self.copy_on_write = True
        self._cow = False
        self.moves = Moves()
        self._collector = Collector()
        self._numbers: dict[Hashable, int] = {}  # see `_number`
        # The numbers of budgets and answers by their dictionaries' items, and the faults'
        # part as last numbered (see `_snapshot_shared`).
        self._budgets: dict[Hashable, int] = {}
        self._answers: dict[Hashable, int] = {}
        self._faults: tuple[Any, Any, int] | None = None
        self._stable: list[bytes] = []  # number -> its part's stable hash
        self._labels: dict[int, tuple[Any, int]] = {}  # id(label) -> (label, its number)
        self._names: list[str] = []  # the parties, in the snapshot's order
        self._party_at: dict[str, int] = {}  # party -> its place in the snapshot
        self._receivers: dict[str, int] = {}  # receiver -> the place of its queue in the snapshot
        self._handled: dict[tuple[str, type, int], tuple[tuple[Choice, ...], tuple[Choice, ...]]] = {}
        self._choices: dict[tuple[str, str, str, int], Choice] = {}  # see `_choice`

    @classmethod
    def for_scenario(cls, scenario: Scenario, *, reduce: bool = True, **overrides: Any) -> Explorer:
        """An explorer with the settings of the scenario's `[explore]` table, each
        overridden by a keyword that is not None (as `fsmc explore`'s options do). Lists
        may be given as comma-separated text; `max_faults` defaults to 1 when there are
        faults, and "none" means no bound."""
        settings = dict(scenario.explore)
        settings.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(settings) - set(EXPLORE)
        if unknown:
            raise UsageError(f"unknown exploration settings: {', '.join(sorted(unknown))}")

        def listed(value: Any) -> tuple[str, ...]:
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(x).strip() for x in items if str(x).strip())

        faults = frozenset(listed(settings.get("faults", ())))
        max_faults = settings.get("max_faults", 1 if faults else None)
        if isinstance(max_faults, str) and max_faults in ("none", "unbounded"):
            max_faults = None
        elif isinstance(max_faults, str):
            if not max_faults.isdigit():
                raise UsageError(f"max_faults: {max_faults!r} is neither a number nor none")
            max_faults = int(max_faults)
        return cls(scenario, faults, max_depth=settings.get("max_depth"), max_states=settings.get("max_states"),
                   max_faults=max_faults, user_events=int(settings.get("user_events", 1)),
                   timeouts=int(settings.get("timeouts", 0)), signals=listed(settings.get("signals", ())),
                   invariants=settings.get("invariants"), reduce=reduce, search=str(settings.get("search", "bfs")),
                   exact=bool(settings.get("exact", False)))

    # --- the initial world: the scenario's steps up to the first one the explorer owns

    def initial(self) -> World:
        """The scenario's leading `start` steps, or its first `[explore] prefix` steps
        (to explore from a settled situation, such as a group that formed before a new
        device appears), run as in a simulation; the rest is the explorer's choice."""
        sim = Simulation(self.scenario)
        prefix = self.scenario.explore.get("prefix")
        for i, step in enumerate(self.scenario.steps):
            if (i < prefix) if prefix is not None else ("start" in step):
                sim.step(step)
            else:
                break  # deliveries, events and time are the explorer's choices
        sim.trace.clear()  # the chart of a counterexample starts where the exploration does
        heard = self._heard({}, sim.network.log)
        sim.network.log.clear()
        sim.network.track_order = False  # the explorer picks every delivery itself
        # ... and injects every fault itself: the scenario's random faults ([faults]) were
        # the prefix's, as in a simulation; left on, they would lose or reorder messages
        # the search neither chose nor counted.
        sim.network.faults = FaultModel()
        self._cow = self.copy_on_write and not parties_share(sim)
        self._names = sorted(sim.parties)
        self._party_at = {name: i for i, name in enumerate(self._names)}
        self._receivers = {}
        budget = {}
        for name in sim.parties:
            budget[(name, "user")] = self.user_events
            budget[(name, "timeout")] = self.timeouts
            budget[(name, "signal")] = len(self.signals)
        return World(sim, budget, {name: frozenset() for name in sim.parties},
                     {name: frozenset() for name in sim.parties}, heard=heard)

    def _heard(self, heard: dict[Any, tuple[Delivery, frozenset[str]]],
               log: list[tuple[str, Delivery]]) -> dict[Any, tuple[Delivery, frozenset[str]]]:
        """`heard` with the messages `log` shows posted (with the replay fault only)."""
        if self.replaying:
            for kind, d in log:
                if kind == "post":
                    first, receivers = heard.get(d.label, (d, frozenset()))
                    heard[d.label] = first, receivers | {d.receiver}
        return heard

    # --- canonical snapshot

    def snapshot(self, world: World) -> Any:
        """What tells worlds apart. Time enters only relative to now (a timer's time
        left, a rate limit's window left): every comparison the runtime makes with the
        clock is relative, so two worlds that differ only in when they happen behave
        alike, and are one state."""
        if self._cow:
            return self._snapshot_shared(world)
        parties = []
        now = world.sim.now
        records: dict[str, tuple[Any, Any]] | None = {} if self.search == "dfs" and not self._cow else None
        carried = world.carried or {}
        for name, p in sorted(world.parties.items()):
            left = None if p.deadline is None else p.deadline - now
            limits = frozenset((mid, until - now) for mid, until in p.rate_limited_until.items() if until > now)
            taken = carried.get(name)
            if taken is None:
                record = p.device.snapshot()
                taken = record, _compared(record)
            if records is not None:
                records[name] = taken
            key = taken[1]
            parties.append((self._intern((name, p.machine.state_id, _buffer(p.machine), key, p.active_transport)),
                            left, limits))
        net = world.sim.network
        queues = tuple(self._intern((r, tuple((d.label, d.copy) for d in net.queue(r)))) for r in net.receivers())
        if net.mailboxes:
            queues += tuple(self._intern(("stored", address, tuple(d.label for d in posts)))
                            for address, posts in net.stored())
        world.records, world.carried = records, None
        return (tuple(parties), queues, self._intern(tuple(sorted(world.budget.items()))),
                self._intern(_answers(world)),
                world.dup_used, world.held, self._replays(world) if self.replaying else None)

    def _snapshot_shared(self, world: World) -> tuple[int, ...]:
        """`snapshot` of a copy-on-write world, as a tuple of numbers, one per part (see
        `_number`): the same worlds are told apart. The parts: each party (by name), each
        queue (by receiver), the budgets, the acceptances, the faults' bookkeeping, what
        waits on a relay. A party object is never changed once a world holds it, so its
        part is taken once, whichever worlds share it; a message label's number is kept by
        the label object (labels are made once per remembered move and then shared). And
        a world's parts are its parent's but for what its step changed (`apply` notes it)."""
        now = world.sim.now
        entry = self.moves.entry
        number = self._number
        net = world.sim.network
        labels = self._labels
        names = self._names
        changed, world.changed = world.changed, None
        queued = net.receivers()
        if len(queued) != len(self._receivers):  # receivers are only ever added
            self._receivers = {r: i for i, r in enumerate(queued, len(names))}
        at = self._receivers
        fixed = len(names) + len(at)
        if changed is not None and changed[1] == now and len(changed[0]) == fixed + 2:
            # Incrementally: the parts of the parent's snapshot that the step left alone.
            key = list(changed[0])
            dirty_party, dirty_queues, chosen = changed[2], changed[3], changed[4]
            parties = [] if dirty_party is None else [(self._party_at[dirty_party], dirty_party)]
            receivers = [(at[r], r) for r in dirty_queues if r in at]
        else:
            key = [0] * (fixed + 2)
            parties = list(enumerate(names))
            receivers = [(i, r) for r, i in at.items()]
            chosen = True
        for i, name in parties:
            p = world.parties[name]
            slot = entry(p)[2]
            part = slot[1]
            if part is None:
                if slot[0] is None:
                    slot[0] = p.device.snapshot()
                part = slot[1] = number((name, p.machine.state_id, _buffer(p.machine), _compared(slot[0]),
                                         p.active_transport))
            if p.deadline is None and not p.rate_limited_until:
                key[i] = part
            elif slot[2] is not None and slot[2][0] == now:  # time moves only with timeouts
                key[i] = slot[2][1]
            else:
                left = None if p.deadline is None else p.deadline - now
                limits = frozenset((mid, until - now) for mid, until in p.rate_limited_until.items() if until > now)
                timed = part, left, limits
                key[i] = number(timed, self._timed_hash)
                slot[2] = now, key[i]
        for i, r in receivers:
            queue = []
            for d in net.queue(r):
                found = labels.get(id(d.label))
                if found is None or found[0] is not d.label:
                    found = labels[id(d.label)] = d.label, number(d.label)
                queue.append(found[1] * 3 + d.copy)
            part = r, tuple(queue)
            key[i] = number(part, self._queue_hash)
        if chosen:  # an event or a timeout: a budget, maybe an acceptance, changed
            # Numbered by the dictionaries' items as they stand (their order is the initial
            # world's, which copies keep), so that each is sorted once.
            budget = tuple(world.budget.items())
            n = self._budgets.get(budget)
            if n is None:
                n = self._budgets[budget] = number(("budget", tuple(sorted(budget))))
            key[fixed] = n
            answers = tuple(world.accepted.items()), tuple(world.answered.items())
            n = self._answers.get(answers)
            if n is None:
                n = self._answers[answers] = number(("accepted", _answers(world)))
            key[fixed + 1] = n
        world.parts = key
        if self.replaying:
            faults = number(("faults", world.dup_used, world.held, self._replays(world)))
        else:  # a step that injects no fault leaves these objects as its parent's
            last = self._faults
            if last is not None and last[0] is world.dup_used and last[1] is world.held:
                faults = last[2]
            else:
                faults = number(("faults", world.dup_used, world.held, None))
                self._faults = world.dup_used, world.held, faults
        snapshot = (*key, faults)
        if net.mailboxes:
            snapshot += tuple(number(("stored", address, tuple(d.label for d in posts)))
                              for address, posts in net.stored())
        return snapshot

    def _label_number(self, label: Any) -> int:
        """`_number` of a message's label, found by the label object."""
        found = self._labels.get(id(label))
        if found is None or found[0] is not label:
            found = self._labels[id(label)] = label, self._number(label)
        return found[1]

    def _timed_hash(self, part: tuple[int, float | None, frozenset[tuple[int, float]]]) -> bytes:
        """A party's stable hash with the time left on its timer and its rate limits."""
        return stable_hash((self._stable[part[0]], *part[1:]))

    def _queue_hash(self, part: tuple[str, tuple[int, ...]]) -> bytes:
        """A queue's stable hash, from its receiver and its messages' (label, copy)."""
        stable = self._stable
        return combine(b"q" + stable_hash(part[0]) + b"".join([stable[n // 3] + b"%d" % (n % 3) for n in part[1]]))

    def _number(self, part: Hashable, stable: Callable[[Any], bytes] | None = None) -> int:
        """The number of a part of snapshots (equal parts, one number), so that a
        snapshot is a tuple of small numbers, cheap to hash and compare, and each part is
        held once (by the table), not once per state. Each number has the part's stable
        hash too (runtime.harness.fingerprint; `stable(part)` for a part made of numbers,
        called only for a part not numbered before)."""
        n = self._numbers.get(part)
        if n is None:
            n = self._numbers[part] = len(self._numbers)
            self._stable.append(stable_hash(part) if stable is None else stable(part))
        return n

    def fingerprint(self, world: World) -> bytes:
        """The world's state as 16 bytes, the same in every process and explorer
        (runtime.harness.fingerprint): what the seen-set keeps unless `exact`."""
        return self._fingerprint_of(self.snapshot(world))

    def _fingerprint_of(self, snapshot: Any) -> bytes:
        if not self._cow:
            return stable_hash(snapshot)
        stable = self._stable
        return combine(b"".join(map(stable.__getitem__, snapshot)))

    def _replays(self, world: World) -> Any:
        """What the replay fault may still do: which messages were heard, for whom, and
        which each party received (None without it, or with its budget spent)."""
        if self.max_faults is not None and world.faults >= self.max_faults:
            return None
        heard = self._intern(frozenset((label, receivers) for label, (_, receivers) in world.heard.items()))
        return heard, world.delivered

    def _intern(self, part: Any) -> Any:
        """One object for equal parts of snapshots. Most steps change one party and one
        queue: the snapshots the search keeps then hold the others' parts once, not once
        per state (most of the search's memory otherwise)."""
        return self._parts.setdefault(part, part)

    def rank(self, world: World) -> tuple[int, bool]:
        """How much of its history limits a world: faults injected on its path (which use
        up the fault budget and excuse the checks that promise progress on a faultless
        run), and whether anything disturbed it (which excuses progress too). Of two
        worlds with one snapshot, the one with the lower rank in both can do every step the
        other can, and faces every check the other faces: it subsumes the other. So a
        message lost where delivering it would have changed nothing is one state, not
        two, and the search keeps only worlds no explored world subsumes."""
        # Without a fault bound, faults limit no step: only whether there was one counts.
        return (world.faults if self.max_faults is not None else min(world.faults, 1)), world.disturbed

    # --- the environment's choices

    def choices(self, world: World) -> Iterator[Choice]:
        """The environment's choices in `world`.

        Reordering is one fault: a receiver gets a message before one posted earlier,
        which it gets later. Unreduced (`reduce=False`), that is its definition: deliver
        any message in flight to a receiver, the first in its queue or (a fault) any
        after it. The reduced search injects the same fault in two steps, `hold`:
        the receiver's next message is held back (the fault), and the receiver then takes
        any message behind it, one in its queue already or one posted later (which is no
        fault more), before the held one. Both reach the same worlds. Only the second
        leaves the reduction sound (`_silent`): taken directly, a message posted later
        by someone else could overtake the one a party delivers now, so no delivery
        would commute with others' steps while a reorder is in the budget."""
        net = world.sim.network
        faulty = self.max_faults is None or world.faults < self.max_faults
        reorder = "reorder" in self.faults and faulty
        made = self._choices
        for receiver in net.receivers():
            queue = net.queue(receiver)
            if not queue:
                continue
            if receiver in world.held:  # the head waits: a message behind it comes first
                for i in range(1, len(queue)):
                    yield _choice(made, "deliver", receiver, _name(queue[i]), i)
                continue
            d = queue[0]
            name = _name(d)
            yield _choice(made, "deliver", receiver, name, 0)
            if "loss" in self.faults and faulty:
                yield _choice(made, "lose", receiver, name, 0)
            if "dup" in self.faults and faulty and d.copy == 0 and (receiver, d.seq) not in world.dup_used:
                yield _choice(made, "dup", receiver, name, 0)
            if reorder and self.hold_to_reorder:
                yield _choice(made, "hold", receiver, name, 0)
            elif reorder:
                for i in range(1, len(queue)):
                    yield _choice(made, "deliver", receiver, _name(queue[i]), i)
        if self.replaying and faulty and world.heard:
            # A message again to a party that received it, or to one it was not for
            # (one still on its way to a party, or lost, is not the attacker's to give).
            for name in sorted(world.parties):
                for i, (label, (d, receivers)) in enumerate(world.heard.items()):
                    if name not in receivers or (name, label) in world.delivered:
                        yield Choice("replay", name, _name(d), i)
        budget = world.budget
        parties = world.parties
        for name in self._names or sorted(parties):
            p = parties[name]
            machine = p.machine
            if machine.stopped:
                continue
            # The events a party's machine handles depend on its class and state only.
            handled = self._handled.get((name, type(machine), machine._state))
            if handled is None:
                handled = self._handled[(name, type(machine), machine._state)] = self._events_handled(name, machine)
            users, signals = handled
            if users and budget[(name, "user")] > 0:
                yield from users
            if signals and budget[(name, "signal")] > 0:
                yield from signals
            if p.deadline is not None and budget[(name, "timeout")] > 0:
                yield Choice("timeout", name)

    def _events_handled(self, name: str, machine: Any) -> tuple[tuple[Choice, ...], tuple[Choice, ...]]:
        """The user's answers and the signaled events that `machine`, of party `name`,
        handles in its state."""
        events = machine.Event
        users = tuple(Choice("event", name, event) for event in self.user_answers
                      if event in events.__members__ and machine.handles(events[event]))
        # A user's answer named as a signal too is the user's, on the user's budget (`_step`
        # charges it there): offered once, above.
        signals = tuple(Choice("event", name, event) for event in self.signals
                        if event not in self.user_answers and machine.handles(events[event]))
        return users, signals

    def apply(self, world: World, choice: Choice, keep_trace: bool = False) -> World:
        """The world after `choice`; `world` itself is left as it was."""
        if not self._cow or keep_trace:
            return self._apply_copying(world, choice, keep_trace)
        new = World.__new__(World)
        state = new.__dict__
        state.update(world.__dict__)  # immutable values, but for these:
        state["sim"] = fork(world.sim)
        if choice.kind in ("event", "timeout"):  # the only steps that change these (`_step`)
            state["budget"], state["accepted"] = world.budget.copy(), world.accepted.copy()
            state["answered"] = world.answered.copy()
        if self.replaying:
            state["heard"] = world.heard.copy()
        state["ignored"], state["sent"], state["replayed"] = [], False, None
        state["records"] = state["carried"] = state["parts"] = state["changed"] = None
        self._step(new, choice, self._act_shared)
        log = new.sim.network.log
        if self.replaying:
            self._heard(new.heard, log)
        if world.parts is not None:
            new.changed = (world.parts, world.sim.now, _touched(choice), {d.receiver for _, d in log},
                           choice.kind in ("event", "timeout"))
        del new.sim.trace[:]
        del log[:]
        return new

    def _act_shared(self, world: World, name: str, key: Hashable | None, act: Callable[[], object]) -> None:
        """A party's step in a copy-on-write world: remembered, replayed (`key`: what the
        step reads besides the party; None: not to be remembered), or done on the party's
        own copy."""
        sim = world.sim
        before = sim.parties[name]
        if key is not None:
            # A message by its label's number: cheaper to hash and compare than the label.
            if isinstance(key, tuple) and key[0] == "deliver":
                key = ("deliver", self._label_number(key[1]), *key[2:])
            key = (key, sim.now)
            move = self.moves.find(before, key)
            if move is not None:
                sim.parties[name] = move.party
                sim.devices[name] = move.party.device
                move.replay(sim.network)
                if move.ignored:
                    world.ignored.extend(move.ignored)
                if move.sent:
                    world.sent = True
                return
        party = own(sim, name, self.moves.entry(before)[2][0])
        network = party.network
        recording = party.network = Recording(network)
        trace = sim.trace
        start = len(trace)
        try:
            act()
        finally:
            party.network = network
        ignored, sent = _read_trace(trace, start)
        world.ignored.extend(ignored)
        world.sent = world.sent or sent
        if key is not None and not recording.opaque:
            canonical = self.moves.canonical(party, party.device.snapshot())
            if canonical is not party:
                sim.parties[name], sim.devices[name] = canonical, canonical.device
            self.moves.remember(before, key, Move(canonical, tuple(recording.calls), tuple(ignored), sent))

    def _apply_copying(self, world: World, choice: Choice, keep_trace: bool) -> World:
        """`apply` by a deep copy of the whole world (parties that share objects; a
        counterexample's replay, which keeps the trace)."""
        new = copy.deepcopy(world)
        new.ignored, new.sent, new.replayed = [], False, None
        if world.records is not None:  # the others' devices are as restored from their records
            touched = _touched(choice)
            new.carried = {name: taken for name, taken in world.records.items() if name != touched}
        trace = new.sim.trace
        start = len(trace)
        self._step(new, choice, _act_in_place)
        new.ignored, new.sent = _read_trace(trace, start)
        if self.replaying:
            self._heard(new.heard, new.sim.network.log)
        if not keep_trace:
            del trace[:]  # a path's trace is rebuilt by replaying it
            del new.sim.network.log[:]
        return new

    @staticmethod
    def _fault(world: World, choice: Choice) -> bool:
        """A message lost, duplicated, held back, replayed, or delivered out of order (but
        one held back, counted when it was held)."""
        return choice.kind in ("lose", "dup", "hold", "replay") or (
            choice.kind == "deliver" and choice.index > 0 and choice.party not in world.held)

    def _disturbs(self, choice: Choice, fault: bool) -> bool:
        """A fault (`fault`: `_fault` of the choice), a timeout, or a user's answer that
        does not consent: the run is then disturbed, which excuses the invariants that
        promise progress."""
        return fault or choice.kind == "timeout" or (choice.kind == "event" and choice.detail not in self.consents)

    def stuck(self, world: World, choices: list[Choice]) -> bool:
        """Whether `world` is where the `stalled` invariants are checked: every choice left
        would disturb the run (none at all where the run ends), and no message is held back
        (the run that delivers it is explored)."""
        return not world.held and all(self._disturbs(c, self._fault(world, c)) for c in choices)

    def _step(self, world: World, choice: Choice, act: _Act | None = None) -> None:
        """The environment's `choice` in `world`; what a party does is done through `act`
        (with the party, what its step reads besides the party itself, and the step), by
        default in place."""
        act = act or _act_in_place
        sim, net = world.sim, world.sim.network
        held = choice.party in world.held
        if choice.kind != "deliver" or choice.index or held:  # (else: the commonest step, in order)
            fault = self._fault(world, choice)
            world.faults += fault
            if self._disturbs(choice, fault):
                world.disturbed = True
        if choice.kind == "hold":
            world.held = world.held | {choice.party}
            sim.trace.append(TraceEntry(sim.now, choice.party, "fault", f"{choice.detail} held back",
                                        peer=net.queue(choice.party)[0].sender, message=choice.detail,
                                        code="hold"))
            return
        if held:  # a message overtakes the held one: the receiver reads in order again
            world.held = world.held - {choice.party}
        if choice.kind == "replay":
            sim.trace.append(TraceEntry(sim.now, choice.party, "fault", f"{choice.detail} replayed",
                                        peer=list(world.heard.values())[choice.index][0].sender,
                                        message=choice.detail, code="replay"))
            act(world, choice.party, None, lambda: self._replay(world, choice))
            return
        if choice.kind in ("deliver", "lose", "dup"):
            d = net.queue(choice.party)[choice.index]
            if choice.kind == "lose":
                net.lose(d)
                sim.trace.append(TraceEntry(sim.now, choice.party, "drop", f"{choice.detail}: lost",
                                            peer=d.sender, message=choice.detail, code="lost"))
                return
            if choice.kind == "deliver":
                net.deliver(d)
            else:
                world.dup_used = world.dup_used | {(choice.party, d.seq)}
            if self.replaying:
                world.delivered = world.delivered | {(choice.party, d.label)}
            act(world, choice.party, ("deliver", d.label, d.sender, d.transport),
                lambda: sim.parties[choice.party].deliver(d))
        elif choice.kind == "event":
            party = sim.parties[choice.party]
            kind = "user" if choice.detail in self.user_answers else "signal"
            world.budget[(choice.party, kind)] -= 1
            if kind == "user":
                # What the user answered: the device's current negotiation, where the
                # protocol has one (invariants ask whether both sides of it accepted, and
                # whether a user is asked again about one it answered).
                negotiation = self.negotiation(party.device) if self.negotiation is not None else None
                world.answered[choice.party] = world.answered[choice.party] | {negotiation}
                if choice.detail in self.consents:
                    world.accepted[choice.party] = world.accepted[choice.party] | {negotiation}
            act(world, choice.party, ("event", choice.detail),
                lambda: sim.step({"party": choice.party, "event": choice.detail}))  # as a scenario step would
        elif choice.kind == "timeout":
            party = sim.parties[choice.party]
            world.budget[(choice.party, "timeout")] -= 1
            world.timeouts_fired += 1
            assert party.deadline is not None
            sim.now = max(sim.now, party.deadline)
            act(world, choice.party, ("timeout",), lambda: sim.parties[choice.party].tick())

    def _replay(self, world: World, choice: Choice) -> None:
        """An attacker delivers a message it saw earlier to `choice.party`: the same bytes,
        as a third copy, again to a party that received it or to one it was not for. What
        a message received again changed of its receiver (machine state, the record's
        compared fields) is noted in `world.replayed`, for the invariant that replays
        change nothing (Invariants.replays_change_nothing); a message that reaches a
        party it was not for is the protocol's invariants' to judge."""
        label, (d, receivers) = list(world.heard.items())[choice.index]
        again = choice.party in receivers
        party = world.sim.parties[choice.party]
        before = party.machine.state_id, _compared(party.device.snapshot())
        party.deliver(_new_delivery(Delivery, (d.seq, d.transport, d.sender, choice.party, d.data, 0.0, 2,
                                               d.label)))
        after = party.machine.state_id, _compared(party.device.snapshot())
        if again and after != before and choice.detail not in self.invariants.replayable:
            changed = "its state" if after[0] != before[0] else "its device's state"
            world.replayed = f"{choice.party}: a replayed {choice.detail} from {d.sender} changed {changed}"

    # --- search

    def successors(self, world: World) -> list[tuple[Choice, World]]:
        """The worlds one choice away, reduced where that loses nothing (see `_silent`)."""
        choices = list(self.choices(world))
        done: dict[int, World] = {}  # by the choice's id: a world's choices are distinct objects
        if self.observed is not None:
            by_party: dict[str, list[Choice]] = {}
            for c in choices:
                if c.party in by_party:
                    by_party[c.party].append(c)
                else:
                    by_party[c.party] = [c]
            for party in sorted(by_party):
                own = by_party[party]
                # The party's choices all concern the head of its queue: deliver it, or
                # lose, duplicate or hold it where the fault budget allows.
                if not all(c.kind in _HEAD and c.index == 0 for c in own):
                    continue
                ample = [(c, self.apply(world, c)) for c in own]
                if all(self._silent(world, nxt, party) for _, nxt in ample):
                    return ample
                for c, nxt in ample:
                    done[id(c)] = nxt
            if done:
                return [(c, done.get(id(c)) or self.apply(world, c)) for c in choices]
        return [(c, self.apply(world, c)) for c in choices]

    def _silent(self, world: World, nxt: World, party: str) -> bool:
        """Partial-order reduction. When all a party can do now is deliver, lose,
        duplicate or hold back the message at the head of its queue (no dialog, timer or
        signal of its own, no message held already), and each of these sends nothing (nor
        tries to: a rate limit depends on the clock) and leaves unchanged what the safety
        invariants observe of it, they commute with every other party's choices: no one
        else can change what the party does with the message, nor take it away; others'
        posts only append behind it, and a message posted later can overtake it only once
        it is held back (`choices`), which is among the party's choices here. (A fault
        here and a fault elsewhere draw on one budget: where only one fits, the runs with
        the other fault are still explored, after this party's delivery.) Every path
        that interleaves others' steps first reaches, after this party's step, the same
        worlds as a path that takes it first, and the worlds in between are neither
        quiet (the message is in flight) nor different for the safety invariants. So
        only the paths that take it first are explored. `reduce=False` turns it off."""
        assert self.observed is not None
        before, after = world.parties[party], nxt.parties[party]
        # Time only moves when a timeout fires; then a delivery that starts a timer (a
        # change into a state with a timeout) depends on when it happens: the deadline is
        # counted from then, and a later timeout moves the clock to it.
        timers = (self.timeouts == 0 or after.deadline is None
                  or after.machine.state_id == before.machine.state_id)
        return not nxt.sent and timers and self.observed(after) == self.observed(before)

    def run(self, progress: Callable[[Report], None] | None = None) -> Report:
        with Collector() as self._collector:
            return self._run(progress)

    def _run(self, progress: Callable[[Report], None] | None) -> Report:
        report = Report()
        t0 = last = time.perf_counter()
        counted = self.counts()
        root = self.initial()
        # Fingerprint (or snapshot, when exact) -> the ranks explored with it, as numbers
        # (`_code`): one, or rarely a tuple of several (see `rank`).
        key_of = self.snapshot if self.exact else self.fingerprint
        seen: dict[Any, int | tuple[int, ...]] = {key_of(root): _code(self.rank(root))}
        frontier: deque[tuple[World, tuple[Choice, ...]]] = deque([(root, ())])
        # Breadth-first finds shortest counterexamples, but holds a whole level of worlds
        # at once; depth-first holds only the siblings along one path, for spaces whose
        # levels do not fit in memory (its counterexamples are not the shortest).
        take = frontier.popleft if self.search == "bfs" else frontier.pop
        violated: set[str] = set()
        report.states = 1
        self._stopped = False
        self._check(root, (), report, violated)
        while frontier and not self._stopped:
            world, path = take()
            successors = self.expand(world, path, report)
            if successors is None:
                continue
            if not successors and self.terminal and not world.held:
                self._check(world, path, report, violated, self.terminal)
            if self.stalled and self.stuck(world, [choice for choice, _ in successors]):
                self._check(world, path, report, violated, self.stalled)
            for choice, nxt in successors:
                self.taken(nxt, report)
                key = key_of(nxt)
                code = _code(self.rank(nxt))
                found = seen.get(key)
                ranks: tuple[int, ...] | None = (found,) if isinstance(found, int) else found
                if ranks is not None and any(_subsumes(r, code) for r in ranks):
                    report.subsumed += code not in ranks
                    continue
                if self.max_states is not None and report.states >= self.max_states:
                    report.complete = False
                    if "states" not in report.bounded_by:
                        report.bounded_by.append("states")
                    frontier.clear()
                    break
                seen[key] = code if ranks is None else (*ranks, code)
                report.states += 1
                if not report.states & _YOUNG:
                    self._collector.young()
                longer = path + (choice,)
                report.max_depth = max(report.max_depth, len(longer))
                self._check(nxt, longer, report, violated)
                if self._stopped:
                    break
                frontier.append((nxt, longer))
            if progress is not None and time.perf_counter() - last > 0.2:
                last = time.perf_counter()
                report.seconds = last - t0
                progress(report)
        if self._stopped:  # the worlds left unexplored, if any, are not counted
            report.complete = False
            report.bounded_by.append("violation")
        if self.search == "dfs":  # its counterexamples are rarely short: shorten them
            report.violations = [self.shorten(v) for v in report.violations]
        if self.digest_states:
            fingerprints = sorted(seen) if not self.exact else sorted(self._fingerprint_of(k) for k in seen)
            report.digest = combine(b"".join(fingerprints)).hex()
        report.seen_bytes = _seen_bytes(seen)
        report.distinct = len(seen)
        report.moves, report.pure = self.counted_since(counted)
        report.seconds = time.perf_counter() - t0
        return report

    def counts(self) -> tuple[int, int, int, int]:
        """Steps replayed and taken, pure results reused and computed, so far."""
        return (self.moves.hits, self.moves.misses, *memo.counts())

    def counted_since(self, before: tuple[int, int, int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """`Report.moves` and `Report.pure` since `counts()` was `before`."""
        now = self.counts()
        return (now[0] - before[0], now[1] - before[1]), (now[2] - before[2], now[3] - before[3])

    def expand(self, world: World, path: tuple[Choice, ...], report: Report) -> list[tuple[Choice, World]] | None:
        """One world's step of a search: its successors (the world counted in `report`
        as a run's end when it has none; each transition is counted by `taken`); None
        where the depth bound stops the path (the report says so if that left
        choices out). A world stuck with a message held back, none behind it, is no run's
        end: the run where that message is delivered instead is explored."""
        if self.max_depth is not None and len(path) >= self.max_depth:
            if any(True for _ in self.choices(world)):
                report.complete = False
                if "depth" not in report.bounded_by:
                    report.bounded_by.append("depth")
            return None
        successors = self.successors(world)
        if not successors and self.terminal and not world.held:
            report.terminal_states += 1
        return successors

    @staticmethod
    def taken(nxt: World, report: Report) -> None:
        """A transition of the search, to `nxt`, counted in `report` with the events its
        step ignored (counted one by one: a bound may stop a world's successors midway)."""
        report.transitions += 1
        for _party, state, event in nxt.ignored:
            report.unhandled[(state, event)] += 1

    def violations(self, world: World, report: Report,
                   checks: list[Invariant] | None = None) -> list[tuple[str, str]]:
        """The invariants `world` violates, with what is wrong, counted in `report`: the
        safety checks, and the quiescent ones in a quiet world (or `checks`)."""
        return self.count(self.verdict(world, checks), report)

    def verdict(self, world: World, checks: list[Invariant] | None = None) -> Verdict:
        """Whether `world` is quiet (None when `checks` are given) and the invariants it
        violates (None for none), counted nowhere (`count` does). Most worlds get the one
        object FINE, which a search skips by identity (runtime.harness.parallel)."""
        quiet = None
        if checks is None:
            quiet = world.quiet
            checks = self.safety if not quiet else self.safety + self.quiescent
        failed = None
        for invariant in checks:
            message = invariant(world)
            if message is not None:
                if failed is None:
                    failed = []
                failed.append((invariant.__name__, message))
        if failed is None and quiet is not None:
            return QUIET if quiet else FINE
        return quiet, failed

    @staticmethod
    def count(verdict: Verdict, report: Report) -> list[tuple[str, str]]:
        """A verdict's quiet world and violations counted in `report`; the violations."""
        quiet, failed = verdict
        if quiet:
            report.quiet_states += 1
        if failed is None:
            return []
        for name, _ in failed:
            report.violating[name] += 1
        return failed

    def _check(self, world: World, path: tuple[Choice, ...], report: Report, violated: set[str],
               checks: list[Invariant] | None = None) -> None:
        for name, message in self.violations(world, report, checks):
            if name not in violated:  # the first (shortest) counterexample of each is kept
                violated.add(name)
                report.violations.append(Violation(name, message, path))
                if self.stop_beyond is not None and name not in self.stop_beyond:
                    self._stopped = True

    # --- counterexamples

    def replay(self, path: tuple[Choice, ...]) -> World:
        """Run a path again from the start, keeping the whole trace (for the chart)."""
        world = self.initial()
        for choice in path:
            world = self.apply(world, choice, keep_trace=True)
        return world

    def shorten(self, violation: Violation) -> Violation:
        """A shorter counterexample for the same invariant, by dropping steps: each pass
        tries every step, keeps the path without it where the rest still replays (each
        choice is still one the environment has then) and still ends in a violation, and
        passes repeat until none can go (as delta debugging and hypothesis shrink). For
        depth-first counterexamples, which are rarely the shortest; not necessarily the
        shortest either, but each step left is needed."""
        path = violation.path
        message = violation.message
        progress = True
        while progress:
            progress = False
            for i in range(len(path) - 1, -1, -1):
                found = self._violation_at_end(path[:i] + path[i + 1:], violation.invariant)
                if found is not None:
                    (path, message), progress = found, True
        return Violation(violation.invariant, message, path)

    def _violation_at_end(self, path: tuple[Choice, ...],
                          invariant: str) -> tuple[tuple[Choice, ...], str] | None:
        """Replay `path`; the path as replayed and the violation at its end, if any. A
        delivery whose message has moved in its queue (a step before it was dropped)
        is matched by receiver and message, so that dropping a hold or a lost message
        leaves the messages behind it deliverable."""
        world = self.initial()
        replayed = []
        for wanted in path:
            available = list(self.choices(world))
            choice = wanted if wanted in available else next(
                (c for c in available if (c.kind, c.party, c.detail) == (wanted.kind, wanted.party, wanted.detail)),
                None)
            if choice is None:
                return None
            replayed.append(choice)
            world = self.apply(world, choice)
        if any(i.__name__ == invariant for i in self.safety):
            checks = self.safety
        elif any(i.__name__ == invariant for i in self.quiescent) and world.quiet:
            checks = self.quiescent
        elif (any(i.__name__ == invariant for i in self.terminal) and not world.held
              and not any(True for _ in self.choices(world))):
            checks = self.terminal
        elif any(i.__name__ == invariant for i in self.stalled) and self.stuck(world, list(self.choices(world))):
            checks = self.stalled
        else:
            return None
        message = next((m for i in checks if i.__name__ == invariant and (m := i(world)) is not None), None)
        return None if message is None else (tuple(replayed), message)


class Collector:
    """Python's cyclic garbage collector during a search: off, but for a collection of
    the young generation every `_YOUNG` + 1 states (2^20: each walks every object made
    since the last, and more often costs more: 8% at 2^16 on the join with a lost message).

    A search allocates worlds much faster than it drops them (breadth first holds a level,
    the seen-set only grows), and the automatic collector walks the survivors again at
    every older generation's turn: on the join with one duplicated message, 1,058,321
    states, that was 40% of the time on two workers, and its cost grows with the heap.
    The worlds make few cycles (a party and the simulation it was copied into, only where
    a step was not remembered), so little garbage waits for the next young collection,
    which walks only what was allocated since the last. What exists before the search
    (compiled modules, the codec's tables) is frozen out of the collector's reach."""

    def __enter__(self) -> Collector:
        self._enabled = gc.isenabled()
        gc.freeze()
        gc.disable()
        return self

    def young(self) -> None:
        gc.collect(0)

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            gc.enable()
        gc.unfreeze()


_YOUNG = (1 << 20) - 1


def _touched(choice: Choice) -> str | None:
    """The one party whose state a step may change, if any: a delivery's receiver, an
    event's or a timeout's party; none for a loss or a hold (what `apply` and
    `_apply_copying` tell the snapshot, which takes the others' parts as they were)."""
    return choice.party if choice.kind not in ("lose", "hold") else None


def _answers(world: World) -> tuple[Any, ...]:
    """The users' acceptances and answers, as a snapshot's part."""
    return _sorted_sets(world.accepted), _sorted_sets(world.answered)


def _sorted_sets(by_party: dict[str, frozenset[Any]]) -> tuple[Any, ...]:
    """A party -> set mapping in a canonical order (the sets' items by their repr: a
    negotiation may be None)."""
    return tuple(sorted((k, tuple(sorted(v, key=repr))) for k, v in by_party.items()))


def _code(rank: tuple[int, bool]) -> int:
    """A rank (faults, disturbed) as one small number (small ints are shared objects)."""
    return rank[0] * 2 + rank[1]


def _subsumes(explored: int, code: int) -> bool:
    """Whether a world of rank `explored` subsumes one of rank `code` (see `rank`)."""
    return explored >> 1 <= code >> 1 and explored & 1 <= code & 1


def _seen_bytes(seen: dict[Any, Any]) -> int:
    """The seen-set's memory: the table and what only it holds (keys, rank tuples; not
    the parts an exact snapshot shares with the explorer's tables)."""
    total = sys.getsizeof(seen)
    for key, ranks in seen.items():
        total += sys.getsizeof(key) + (0 if type(ranks) is int else sys.getsizeof(ranks))
    return total


# How `Explorer._step` has a party act: (world, party, what the step reads besides the
# party or None, the step).
_Act = Callable[[World, str, Hashable | None, Callable[[], object]], None]


def _act_in_place(world: World, name: str, key: Hashable | None, act: Callable[[], object]) -> None:
    act()


def _read_trace(trace: list[TraceEntry], start: int) -> tuple[list[tuple[str, str, str]], bool]:
    """What a step's trace (from `start`) tells the explorer: the events its parties
    ignored, and whether it sent anything or tried to and was held back by a rate limit
    (whether a rate limit holds depends on the clock, which timeouts move)."""
    ignored, sent = [], False
    for e in trace[start:]:
        if e.kind == "ignored":
            ignored.append((e.party, e.state or "", e.event or ""))
        elif e.kind == "send" or (e.kind == "drop" and e.code == "ratelimit"):
            sent = True
    return ignored, sent


def load_invariants(module_name: str) -> Invariants:
    """The `INVARIANTS` of a module (an `[explore] invariants` or --invariants override)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"invariants: cannot import {module_name}: {e}") from e
    found = getattr(module, "INVARIANTS", None)
    if not isinstance(found, Invariants):
        raise UsageError(f"invariants: {module_name} defines no INVARIANTS (a runtime.manifest.Invariants)")
    return found


def unhandled_report(report: Report) -> list[str]:
    return [f"{count:6} x {event} in {state}" for (state, event), count in sorted(report.unhandled.items())]

