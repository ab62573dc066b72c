"""Event dispatch through the generated KeySync machine, against baselines in the same run.

The path: the four events that take a Requester from Sole to Grouped (NegotiationOpen,
Accept, CommitAcceptOfferer, OwnKeysOfferer), conditions true, actions no-ops, sends
captured, repeated on a machine put back into Sole. Baselines, measured in the same
process so only ratios matter:
  - a hand-written dict dispatch of the same path (no queue, no messages),
  - the same with a run-to-completion queue, Init on entry and message objects (what the
    generated machine does: the baseline the goal is set against),
  - the `transitions` library and `python-statemachine`, when installed.
Also the memory of one machine instance (machine, I/O buffer; bindings shared).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from generated.keysync import Identity, KeySync, KeySyncEvent, KeySyncState
from runtime.machine import Send

ROUNDS = 20_000
PATH = (KeySyncEvent.NegotiationOpen, KeySyncEvent.Accept, KeySyncEvent.CommitAcceptOfferer,
        KeySyncEvent.OwnKeysOfferer)
EVENTS = ROUNDS * len(PATH)


class Bindings:
    """Every condition true, every action a no-op."""

    def __getattr__(self, name: str) -> Callable[[], Any]:
        raise AttributeError(name)


def _true() -> bool:
    return True


def _noop() -> None:
    return None


BINDINGS = Bindings()
for cond in ("deviceGrouped", "sameChallenge", "weAreOfferer", "sameNegotiation", "sameResponse",
             "sameNegotiationAndPartner", "fromGroupMember"):
    setattr(BINDINGS, cond, _true)
for action in ("showBeingSole", "openNegotiation", "tellWeAreNotGrouped", "useOwnResponse", "useOwnChallenge",
               "storeNegotiation", "showSoleHandshake", "disable", "trustThisKey", "untrustThisKey",
               "prepareOwnKeys", "saveGroupKeys", "ownKeysAreDefaultKeys", "showGroupCreated",
               "newChallengeAndNegotiationBase", "showBeingInGroup", "backupOwnKeys", "receivedKeysAreDefaultKeys",
               "prepareOwnKeysFromBackup", "useThisKey", "storeThisKey", "tellWeAreGrouped", "resetOwnGroupedKeys",
               "resetOwnKeysUngrouped", "showGroupedHandshake", "showJoinGroupHandshake", "showDeviceAdded",
               "showDeviceAccepted"):
    setattr(BINDINGS, action, _noop)


def generated() -> float:
    m = KeySync(BINDINGS)
    m.buffer.negotiation = bytes(16)
    m.buffer.ownIdentities = (Identity(address="a", fpr="0" * 40, user_id="u", username="n", comm_type=0,
                                       lang="en"),)
    sole = KeySyncState.Sole
    dispatch = m.dispatch
    sent = 0
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        m.reset(sole)
        for event in PATH:
            sent += len(dispatch(event))
    elapsed = time.perf_counter() - t0
    assert m.state is KeySyncState.Grouped and sent
    return elapsed


# --- hand-written baselines, the same path

SOLE, HS_REQ, PHASE1, FORMING, GROUPED = range(5)
NEG_OPEN, ACCEPT, CAO, OKO, INIT = 4, 129, 7, 14, 1


def dict_dispatch() -> float:
    b = BINDINGS

    def neg_open() -> int | None:
        if b.sameResponse():
            b.storeNegotiation()
            return HS_REQ
        return None

    def accept() -> int:
        b.trustThisKey()
        return PHASE1

    def cao() -> int | None:
        if b.sameNegotiation():
            b.prepareOwnKeys()
            return FORMING
        return None

    def oko() -> int | None:
        if b.sameNegotiation():
            b.saveGroupKeys()
            b.prepareOwnKeys()
            b.ownKeysAreDefaultKeys()
            b.showGroupCreated()
            return GROUPED
        return None

    table = {(SOLE, NEG_OPEN): neg_open, (HS_REQ, ACCEPT): accept, (PHASE1, CAO): cao, (FORMING, OKO): oko}
    path = (NEG_OPEN, ACCEPT, CAO, OKO)
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        state = SOLE
        for event in path:
            new = table[(state, event)]()
            if new is not None:
                state = new
    elapsed = time.perf_counter() - t0
    assert state == GROUPED
    return elapsed


@dataclass(frozen=True, slots=True)
class CommitAcceptRequester:
    negotiation: bytes


@dataclass(frozen=True, slots=True)
class OwnKeysRequester:
    ownIdentities: tuple[Any, ...]


def rtc_dispatch() -> float:
    """Hand-written with what the generated machine does: a queue, Init on entry, message
    objects built from a buffer, an effects list."""
    b = BINDINGS

    class Buffer:
        negotiation = bytes(16)
        ownIdentities: tuple[Any, ...] = ()

    buffer = Buffer()

    class M:
        def __init__(self) -> None:
            self.state = SOLE
            self.queue: deque[int] = deque()
            self.effects: list[Any] = []

    m = M()

    def neg_open(m: M) -> int | None:
        if b.sameResponse():
            b.storeNegotiation()
            return HS_REQ
        return None

    def hs_init(m: M) -> None:
        b.showSoleHandshake()
        return None

    def accept(m: M) -> int:
        b.trustThisKey()
        m.effects.append(Send(CommitAcceptRequester(negotiation=buffer.negotiation)))
        return PHASE1

    def cao(m: M) -> int | None:
        if b.sameNegotiation():
            b.prepareOwnKeys()
            m.effects.append(Send(OwnKeysRequester(ownIdentities=buffer.ownIdentities)))
            return FORMING
        return None

    def oko(m: M) -> int | None:
        if b.sameNegotiation():
            b.saveGroupKeys()
            b.prepareOwnKeys()
            b.ownKeysAreDefaultKeys()
            b.showGroupCreated()
            return GROUPED
        return None

    def grouped_init(m: M) -> None:
        b.newChallengeAndNegotiationBase()
        b.showBeingInGroup()
        return None

    table: dict[int, dict[int, Callable[[M], int | None]]] = {
        SOLE: {NEG_OPEN: neg_open}, HS_REQ: {INIT: hs_init, ACCEPT: accept}, PHASE1: {CAO: cao},
        FORMING: {OKO: oko}, GROUPED: {INIT: grouped_init}}

    def dispatch(event: int) -> list[Any]:
        effects: list[Any] = []
        m.effects = effects
        queue = m.queue
        queue.append(event)
        while queue:
            ev = queue.popleft()
            state = m.state
            handler = table[state].get(ev)
            if handler is None:
                continue
            new = handler(m)
            while new is not None and new != state:
                m.state = state = new
                init = table[new].get(INIT)
                if init is None:
                    break
                new = init(m)
        return effects

    path = (NEG_OPEN, ACCEPT, CAO, OKO)
    sent = 0
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        m.state = SOLE
        for event in path:
            sent += len(dispatch(event))  # as the generated machine's loop does
    elapsed = time.perf_counter() - t0
    assert m.state == GROUPED and sent
    return elapsed


def transitions_lib() -> float | None:
    try:
        from transitions import Machine
    except ImportError:
        return None

    class Model:
        def same(self) -> bool:
            return True

        def act(self) -> None:
            return None

    model = Model()
    Machine(model=model, states=["sole", "hs", "p1", "fg", "grouped"], initial="sole", auto_transitions=False,
            transitions=[
                {"trigger": "negotiation_open", "source": "sole", "dest": "hs", "conditions": "same", "after": "act"},
                {"trigger": "accept", "source": "hs", "dest": "p1", "after": "act"},
                {"trigger": "commit_accept_offerer", "source": "p1", "dest": "fg", "conditions": "same",
                 "after": "act"},
                {"trigger": "own_keys_offerer", "source": "fg", "dest": "grouped", "conditions": "same",
                 "after": "act"},
                {"trigger": "reset", "source": "grouped", "dest": "sole"},
            ])
    m: Any = model
    t0 = time.perf_counter()
    for _ in range(ROUNDS // 10):
        m.negotiation_open()
        m.accept()
        m.commit_accept_offerer()
        m.own_keys_offerer()
        m.reset()
    return (time.perf_counter() - t0) * 10


def statemachine_lib() -> float | None:
    try:
        from statemachine import State, StateMachine
    except ImportError:
        return None

    class Requester(StateMachine):  # type: ignore[misc]
        sole = State(initial=True)
        hs = State()
        p1 = State()
        fg = State()
        grouped = State()
        negotiation_open = sole.to(hs, cond="same", on="act")
        accept = hs.to(p1, on="act")
        commit_accept_offerer = p1.to(fg, cond="same", on="act")
        own_keys_offerer = fg.to(grouped, cond="same", on="act")
        reset = grouped.to(sole)

        def same(self) -> bool:
            return True

        def act(self) -> None:
            return None

    sm = Requester()
    t0 = time.perf_counter()
    for _ in range(ROUNDS // 50):
        sm.send("negotiation_open")
        sm.send("accept")
        sm.send("commit_accept_offerer")
        sm.send("own_keys_offerer")
        sm.send("reset")
    return (time.perf_counter() - t0) * 50


def measure(impls: dict[str, Callable[[], float | None]], rounds: int = 7) -> dict[str, float | None]:
    """The fastest of `rounds` runs of each, interleaved so that the machine's state
    (frequency, other load) hits every implementation alike; the minimum is the least
    disturbed run."""
    times: dict[str, list[float]] = {name: [] for name in impls}
    missing: set[str] = set()
    for _ in range(rounds):
        for name, fn in impls.items():
            if name in missing:
                continue
            gc.collect()
            t = fn()
            if t is None:
                missing.add(name)
            else:
                times[name].append(t)
    return {name: (min(ts) if ts else None) for name, ts in times.items()}


def memory_per_machine(n: int = 2000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    machines = [KeySync(BINDINGS) for _ in range(n)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(machines) == n
    return size / n


def main() -> int:
    results = measure({
        "generated KeySync machine": generated,
        "hand-written dict dispatch": dict_dispatch,
        "hand-written, run-to-completion": rtc_dispatch,
        "transitions": transitions_lib,
        "python-statemachine": statemachine_lib,
    })
    rows = list(results.items())
    baseline = results["hand-written, run-to-completion"]
    assert baseline is not None
    print(f"KeySync dispatch, Requester Sole -> Grouped, {EVENTS} events (best of 7 interleaved runs)")
    print(f"{'implementation':34} {'events/s':>12} {'vs RTC baseline':>16}")
    for name, t in rows:
        if t is None:
            print(f"{name:34} {'not installed':>12}")
            continue
        print(f"{name:34} {EVENTS / t:12,.0f} {baseline / t:15.2f}x")
    print(f"memory per KeySync machine (machine + I/O buffer): {memory_per_machine():.0f} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
