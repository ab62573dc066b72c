"""The explorer on KeySync: complete runs, faults, bounds, the reduction, the command."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from worlds import assert_independent_copy, dump, mid_run

from fsmc.build import load_scenario
from fsmc.cli import main
from protocols.commit.party import CommitParty
from protocols.keysync import invariants
from runtime.errors import UsageError
from runtime.harness.explore import Explorer, Report, World, _name
from runtime.harness.simulation import Scenario
from runtime.seeded import SeededRandom

FORM = ROOT / "protocols" / "keysync" / "scenarios" / "form_group.toml"


@pytest.fixture(scope="module")
def form() -> Scenario:
    return load_scenario(FORM)


def test_form_group_is_explored_completely_and_holds(form: Scenario) -> None:
    report = Explorer(form).run()
    assert report.complete and report.bounded_by == []
    assert report.violations == []
    assert report.states > 50 and report.quiet_states > 0 and report.terminal_states > 0
    # The draft's FSM relies on ignoring events it has no handler for (A.1.1): a Rollback
    # that reaches a device already back in Sole is one.
    assert report.unhandled[("Sole", "Rollback")] > 0


@pytest.mark.parametrize("fault", ["loss", "dup", "reorder"])
def test_form_group_with_one_fault_is_explored_completely(form: Scenario, fault: str) -> None:
    clean = Explorer(form).run()
    report = Explorer(form, frozenset({fault}), max_faults=1).run()
    # With a duplicate the draft breaks one invariant: finding 10 (docs/exploration.md), a
    # duplicated NegotiationRequest reopening a cancelled negotiation.
    expected = {"users_are_asked_once"} if fault == "dup" else set()
    assert report.complete and {v.invariant for v in report.violations} == expected
    assert report.states > clean.states  # the fault was injected somewhere


def quiet_worlds(explorer: Explorer) -> tuple[Report, dict[object, tuple[str, ...]]]:
    found: dict[object, tuple[str, ...]] = {}
    check = explorer._check

    def record(world: World, path: tuple, report: Report, violated: set[str], checks: list | None = None) -> None:  # type: ignore[type-arg]
        if world.quiet:
            found[explorer.fingerprint(world)] = tuple(str(c) for c in path)
        check(world, path, report, violated, checks)

    explorer._check = record  # type: ignore[method-assign]
    return explorer.run(), found


@pytest.mark.parametrize("settings", [
    {}, {"faults": frozenset({"reorder"}), "max_faults": 1}, {"user_events": 2},
    {"faults": frozenset({"loss", "dup"}), "max_faults": 1},
    {"faults": frozenset({"loss", "dup", "reorder"}), "max_faults": 1},
    {"timeouts": 1},  # time moves: timers and rate limits depend on when things happen
], ids=["plain", "reorder", "two-answers", "loss-dup", "all-faults", "timeouts"])
def test_the_reduction_loses_no_quiet_state_and_no_violation(form: Scenario, settings: dict) -> None:  # type: ignore[type-arg]
    full, full_quiet = quiet_worlds(Explorer(form, reduce=False, **settings))
    reduced, reduced_quiet = quiet_worlds(Explorer(form, **settings))
    assert reduced.states < full.states
    assert set(reduced_quiet) == set(full_quiet)
    assert {v.invariant for v in reduced.violations} == {v.invariant for v in full.violations}
    assert reduced.terminal_states == full.terminal_states


def test_reordering_two_ways_reaches_the_same_worlds(form: Scenario) -> None:
    # Unreduced, a reorder is any message delivered before the head of its queue;
    # reduced, the head is held back and a message behind it, then or later, overtakes it.
    # Two reorders per run: a receiver may hold its head again after being overtaken.
    settings = {"faults": frozenset({"reorder"}), "max_faults": 2}
    direct, direct_quiet = quiet_worlds(Explorer(form, reduce=False, **settings))
    held, held_quiet = quiet_worlds(Explorer(form, **settings))
    assert direct.complete and held.complete
    assert set(held_quiet) == set(direct_quiet)
    assert dict(held.violating).keys() == dict(direct.violating).keys()


def test_a_held_message_is_overtaken_once_and_counts_one_fault(form: Scenario) -> None:
    explorer = Explorer(form, frozenset({"reorder"}), max_faults=1)
    world = explorer.initial()
    while not any(c.kind == "hold" for c in explorer.choices(world)):
        world = explorer.apply(world, next(c for c in explorer.choices(world) if c.kind == "deliver"))
    hold = next(c for c in explorer.choices(world) if c.kind == "hold")
    # Reduced, no message is delivered past the head directly: only through a hold.
    assert all(c.index == 0 for c in explorer.choices(world))
    held = explorer.apply(world, hold, keep_trace=True)
    assert held.held == {hold.party} and held.faults == 1 and held.disturbed
    assert any(e.kind == "fault" and e.detail == f"{hold.detail} held back" for e in held.sim.trace)
    assert not any(c.kind == "hold" for c in explorer.choices(held))  # the budget is spent
    own = [c for c in explorer.choices(held) if c.party == hold.party]
    assert all(c.kind == "deliver" and c.index > 0 for c in own)  # the head waits
    # Once a message behind it arrives and overtakes it, the receiver reads in order again.
    while not own:
        held = explorer.apply(held, next(c for c in explorer.choices(held) if c.kind == "deliver"))
        own = [c for c in explorer.choices(held) if c.party == hold.party]
    after = explorer.apply(held, own[0])
    assert after.held == frozenset() and after.faults == 1
    queue = after.sim.network._queues[hold.party]
    assert _name(queue[0]) == hold.detail
    assert [c.index for c in explorer.choices(after) if c.party == hold.party] == [0]


def test_bounds_are_reported_and_never_a_proof(form: Scenario) -> None:
    by_states = Explorer(form, max_states=20).run()
    assert not by_states.complete and by_states.bounded_by == ["states"] and by_states.states == 20
    by_depth = Explorer(form, max_depth=5).run()
    assert not by_depth.complete and by_depth.bounded_by == ["depth"] and by_depth.max_depth == 5


def test_a_search_asked_to_stop_at_a_new_violation_stops_there(form: Scenario) -> None:
    """fsmc mutate's early kill: the first violation outside `stop_beyond` ends the search;
    violations inside it do not."""
    full = Explorer(form, user_events=2).run()
    found = {v.invariant for v in full.violations}
    assert len(found) >= 2 and full.complete
    stopping = Explorer(form, user_events=2)
    stopping.stop_beyond = frozenset()
    early = stopping.run()
    assert not early.complete and early.bounded_by == ["violation"] and early.states < full.states
    assert len(early.violations) == 1 and early.violations[0] in full.violations  # the same shortest one
    known = Explorer(form, user_events=2)
    known.stop_beyond = frozenset(found)
    again = known.run()
    assert again.complete and (again.states, again.transitions) == (full.states, full.transitions)


def test_a_counterexample_replays_to_the_violation(form: Scenario) -> None:
    # Two answers per user: a Cancel after both accepted races the group's forming.
    explorer = Explorer(form, user_events=2)
    report = explorer.run()
    found = {v.invariant: v for v in report.violations}
    assert "agreement_on_the_outcome" in found
    v = found["agreement_on_the_outcome"]
    world = explorer.replay(v.path)
    assert world.quiet and invariants.agreement_on_the_outcome(world) == v.message
    assert any(e.kind == "event" and "Cancel" in e.detail for e in world.sim.trace)
    # Breadth first: no shorter path violates it.
    shorter = Explorer(form, user_events=2, max_depth=len(v.path) - 1).run()
    assert "agreement_on_the_outcome" not in {x.invariant for x in shorter.violations}


def test_apply_leaves_the_world_it_started_from(form: Scenario) -> None:
    explorer = Explorer(form)
    world = explorer.initial()
    before = explorer.snapshot(world)
    for choice in explorer.choices(world):
        explorer.apply(world, choice)
    assert explorer.snapshot(world) == before


def test_same_seed_same_exploration(form: Scenario) -> None:
    a, b = Explorer(form, user_events=2).run(), Explorer(form, user_events=2).run()
    assert (a.states, a.transitions) == (b.states, b.transitions)
    assert [(v.invariant, v.path) for v in a.violations] == [(v.invariant, v.path) for v in b.violations]


def test_unknown_fault_is_refused(form: Scenario) -> None:
    with pytest.raises(UsageError, match="unknown faults: flood"):
        Explorer(form, frozenset({"flood"}))


# --- the command


def test_explore_command_reports_a_proof(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM)]) == 0
    out = capsys.readouterr().out
    assert "complete: every reachable state was explored" in out and "no invariant violated" in out
    assert "Rollback in Sole" in out


def test_explore_command_json_and_charts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["explore", str(FORM), "--user-events", "2", "--json", "--msc", str(tmp_path)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is True and data["states"] > 0 and data["transitions"] >= data["states"] - 1
    names = {v["invariant"] for v in data["violations"]}
    assert "agreement_on_the_outcome" in names
    v = next(v for v in data["violations"] if v["invariant"] == "agreement_on_the_outcome")
    assert {"party", "kind", "detail"} <= set(v["trace"][0]) and v["choices"][-1].startswith("deliver")
    assert v["worlds"] >= 1  # how many explored worlds break it
    svg = (tmp_path / "form_group-agreement_on_the_outcome.svg").read_text()
    assert svg.startswith("<svg") or "<svg" in svg[:200]


def test_explore_command_prints_the_counterexample_chart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--user-events", "2"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATED agreement_on_the_outcome" in out and "shortest counterexample" in out
    assert "<Cancel>" in out and "OwnKeysOfferer" in out


def test_explore_command_searches_depth_first_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--user-events", "2", "--search", "dfs"]) == 1
    out = capsys.readouterr().out
    assert "(depth-first;" in out and "counterexample (depth-first)" in out
    assert main(["explore", str(FORM), "--faults", "loss", "--search", "dfs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["search"] == "dfs" and data["complete"] is True and data["subsumed"] > 0


def test_explore_command_says_when_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--max-states", "10"]) == 0
    assert "INCOMPLETE: bounded by states; this is not a proof" in capsys.readouterr().out


def test_explore_command_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--faults", "flood"]) == 2
    assert "unknown faults: flood" in capsys.readouterr().err
    assert main(["explore", str(FORM), "--faults", "loss", "--max-faults", "x"]) == 2
    assert "max_faults: 'x' is neither a number nor none" in capsys.readouterr().err


def test_explore_command_max_faults_none_is_no_bound(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--faults", "loss", "--max-faults", "none", "--json"]) == 0
    unbounded = json.loads(capsys.readouterr().out)
    assert main(["explore", str(FORM), "--faults", "loss", "--json"]) == 0
    once = json.loads(capsys.readouterr().out)
    assert unbounded["max_faults"] is None and once["max_faults"] == 1
    assert unbounded["complete"] and unbounded["states"] > once["states"] == 276


# --- copies of a world: the explorer copies one at every transition (World.__deepcopy__)

JOIN = ROOT / "protocols" / "keysync" / "scenarios" / "join_settled_group.toml"


def test_a_world_copy_equals_the_original_and_shares_nothing_mutable() -> None:
    explorer = Explorer(load_scenario(JOIN))
    world = mid_run(explorer, 14)
    # What the check should meet: messages in flight, a trace, a device's past messages.
    assert world.sim.network.in_flight() and world.sim.trace
    assert any(p.device.notifications and p.device.seen for p in world.parties.values())
    twin = copy.deepcopy(world)
    assert_independent_copy(world, twin)
    p = next(iter(twin.parties.values()))
    assert p.trace is twin.sim.trace and p.device.machine is p.machine and p.machine.bindings is p.device
    assert p.network is twin.sim.network and p.clock.__self__ is twin.sim  # type: ignore[attr-defined]
    assert twin.sim.devices[p.name] is p.device


def test_a_world_copy_driven_on_leaves_the_original_as_it_was() -> None:
    explorer = Explorer(load_scenario(JOIN))
    world = mid_run(explorer, 8)
    snapshot, everything = explorer.snapshot(world), dump(world)
    parts = {name: (copy.deepcopy(p.device.keyring), copy.deepcopy(p.machine.buffer), list(p.device.notifications),
                    list(p.device.sent_keys_to), dict(p.device.seen), p.device.negotiation, p.deadline)
             for name, p in world.parties.items()}
    queues = {r: list(q) for r, q in world.sim.network._queues.items()}
    trace = list(world.sim.trace)
    twin = copy.deepcopy(world)
    path = []
    for i in range(10):  # in place, as Explorer.apply drives its own copy
        choices = list(explorer.choices(twin))
        if not choices:
            break
        path.append(choices[i % len(choices)])
        explorer._step(twin, path[-1])
    assert len(path) >= 5 and explorer.snapshot(twin) != snapshot
    assert explorer.snapshot(world) == snapshot and dump(world) == everything
    for name, p in world.parties.items():
        ring, buffer, notifications, sent, seen, negotiation, deadline = parts[name]
        assert p.device.keyring == ring and p.machine.buffer == buffer
        assert (p.device.notifications, p.device.sent_keys_to, p.device.seen) == (notifications, sent, seen)
        assert (p.device.negotiation, p.deadline) == (negotiation, deadline)
    assert {r: list(q) for r, q in world.sim.network._queues.items()} == queues
    assert world.sim.trace == trace
    # The original driven the same way reaches the same world as its copy did.
    again = world
    for choice in path:
        again = explorer.apply(again, choice)
    assert explorer.snapshot(again) == explorer.snapshot(twin)
    assert explorer.snapshot(world) == snapshot


def test_copies_of_a_random_source_draw_what_it_draws() -> None:
    source = SeededRandom(7)
    source.gauss(0, 1)  # leaves half a pair of normal variates in the state

    def draws(r: random.Random | SeededRandom) -> list[object]:
        return [r.random(), r.getrandbits(100), r.randrange(10**6), r.gauss(0, 1), r.randbytes(5),
                r.choice("abcdef"), r.sample(range(100), 3)]

    reference = random.Random()
    reference.setstate(source.getstate())
    twin = copy.deepcopy(source)
    twin_of_twin = copy.deepcopy(twin)  # copied before it drew
    assert twin.getstate() == source.getstate() == reference.getstate()
    expected = draws(reference)
    assert draws(twin) == expected and draws(twin_of_twin) == expected
    assert draws(source) == expected  # the copies' draws did not advance it
    assert twin.getstate() == source.getstate() == reference.getstate()
    twin.seed(3)
    assert draws(twin) == draws(random.Random(3))


@pytest.mark.parametrize("settings", [
    {"faults": frozenset({"loss", "dup"}), "max_faults": 1},
    {"user_events": 2},  # violations: depth-first finds them too
    # Reordered and cancelled: depth first finds the violations through held messages,
    # and shortening drops the holds they do not need.
    {"faults": frozenset({"reorder"}), "max_faults": 2, "user_events": 2},
], ids=["loss-dup", "two-answers", "reorder-two-answers"])
def test_depth_first_reaches_what_breadth_first_reaches(form: Scenario, settings: dict) -> None:  # type: ignore[type-arg]
    bfs, bfs_quiet = quiet_worlds(Explorer(form, **settings))
    dfs, dfs_quiet = quiet_worlds(Explorer(form, search="dfs", **settings))
    assert dfs.complete and set(dfs_quiet) == set(bfs_quiet)
    assert {v.invariant for v in dfs.violations} == {v.invariant for v in bfs.violations}
    shortest = {v.invariant: len(v.path) for v in bfs.violations}
    for v in dfs.violations:  # a real one, shortened: every step left is needed
        explorer = Explorer(form, **settings)
        world = explorer.replay(v.path)
        assert getattr(invariants, v.invariant)(world) == v.message
        assert len(v.path) >= shortest[v.invariant]
        for i in range(len(v.path)):
            assert explorer._violation_at_end(v.path[:i] + v.path[i + 1:], v.invariant) is None
        if not any(c.kind == "hold" for c in next(b for b in bfs.violations if b.invariant == v.invariant).path):
            assert not any(c.kind == "hold" for c in v.path)


def test_a_world_that_an_explored_world_subsumes_is_not_explored(form: Scenario) -> None:
    explorer = Explorer(form, frozenset({"loss"}), max_faults=1)
    explored: dict[object, list[tuple[int, bool]]] = {}
    check = explorer._check

    def record(world: World, path: tuple, report: Report, violated: set[str], checks: list | None = None) -> None:  # type: ignore[type-arg]
        if checks is None:  # once per explored world (terminal checks come again)
            ranks = explored.setdefault(explorer.snapshot(world), [])
            faults, disturbed = explorer.rank(world)
            assert not any(f <= faults and d <= disturbed for f, d in ranks), "explored a subsumed world"
            ranks.append((faults, disturbed))
        check(world, path, report, violated, checks)

    explorer._check = record  # type: ignore[method-assign]
    report = explorer.run()
    assert report.complete and report.states == sum(len(r) for r in explored.values())
    # Some lost message led to a world explored already without the fault (a device's own
    # Beacon that it would have ignored): it was not explored again.
    assert report.subsumed > 0


# --- the replay fault


COMMIT = ROOT / "protocols" / "commit" / "scenarios" / "all_yes.toml"


def test_a_replay_is_of_a_message_received_before_or_meant_for_another() -> None:
    explorer = Explorer.for_scenario(load_scenario(COMMIT), faults="replay")
    world = explorer.apply(explorer.initial(), next(c for c in explorer.choices(explorer.initial())
                                                    if c.kind == "event"))  # the bank proposes
    offered = {(c.party, c.detail) for c in explorer.choices(world) if c.kind == "replay"}
    # Prepare is on its way to every participant, the bank included: no one has it yet.
    assert offered == set()
    to_alice = next(c for c in explorer.choices(world) if c.kind == "deliver" and c.party == "alice")
    world = explorer.apply(world, to_alice)
    offered = {(c.party, c.detail) for c in explorer.choices(world) if c.kind == "replay"}
    assert offered == {("alice", "Prepare")}
    again = explorer.apply(world, next(c for c in explorer.choices(world) if c.kind == "replay"))
    assert again.faults == 1 and again.disturbed and again.replayed is None  # ignored in Voting
    assert not any(c.kind == "replay" for c in explorer.choices(again))  # one fault per run


@dataclasses.dataclass(frozen=True, slots=True)
class _Counted:
    state: Any
    received: int


class _CountingParty(CommitParty):
    """A commit party that counts the messages it handles, in its state record."""

    received = 0

    def receiving(self, message: Any, context: Any) -> None:
        self.received += message is not None
        super().receiving(message, context)

    def snapshot(self) -> Any:
        return _Counted(super().snapshot(), self.received)

    def restore(self, state: Any) -> None:
        super().restore(state.state)
        self.received = state.received


def test_a_replay_that_changes_its_receiver_is_a_violation() -> None:
    """A device changed by a message it receives again breaks `replays_change_nothing`:
    the counterexample ends in the replay."""
    scenario = load_scenario(COMMIT)
    make_devices = scenario.protocol.make_devices

    def counting(tables: list[dict[str, Any]], rng: Any) -> dict[str, Any]:
        devices = make_devices(tables, rng)
        for device in devices.values():
            device.__class__ = _CountingParty
        return devices

    invariants = dataclasses.replace(scenario.protocol.invariants, replays_change_nothing=True)
    scenario.protocol = dataclasses.replace(scenario.protocol, make_devices=counting, invariants=invariants)
    report = Explorer.for_scenario(scenario, faults="replay", max_states=3000).run()
    (violation,) = report.violations
    assert violation.invariant == "replays_change_nothing"
    assert violation.path[-1].kind == "replay" and "changed its device's state" in violation.message
    # Unchanged, the commit parties ignore whatever they receive again.
    plain = Explorer.for_scenario(load_scenario(COMMIT), faults="replay", invariants=invariants, max_states=3000)
    assert plain.run().violations == []


def test_a_user_answer_named_as_a_signal_too_stays_on_the_user_budget() -> None:
    """Accept is a user answer; named as a signal as well, it is offered once per world and
    charged to the user's budget, so it cannot be raised without end."""
    scenario = load_scenario(FORM)
    with_signal = Explorer.for_scenario(scenario, signals="Accept", max_states=5000).run()
    without = Explorer.for_scenario(scenario).run()
    assert with_signal.complete and (with_signal.states, with_signal.transitions) == (without.states,
                                                                                     without.transitions)


def test_the_explorer_records_every_answer_and_the_user_is_not_asked_again(form: Scenario) -> None:
    """A user's Cancel is an answer (world.answered), not a consent (world.accepted); a
    dialog shown again about that negotiation breaks `users_are_asked_once`."""
    explorer = Explorer(form)
    world = explorer.initial()
    while not any(c.kind == "event" for c in explorer.choices(world)):
        world = explorer.apply(world, next(c for c in explorer.choices(world) if c.kind == "deliver"))
    cancel = next(c for c in explorer.choices(world) if c.detail == "Cancel")
    asked = invariants.negotiation(world.parties[cancel.party].device)
    assert asked is not None
    after = explorer.apply(world, cancel)
    assert after.answered[cancel.party] == {asked} and after.accepted[cancel.party] == frozenset()
    assert world.answered[cancel.party] == frozenset()  # the world before is left as it was
    assert explorer.snapshot(after) != explorer.snapshot(world)
    # The dialog as it was before the Cancel, with the Cancel recorded: asked again.
    again = copy.deepcopy(world)
    again.answered[cancel.party] = frozenset({asked})
    message = invariants.users_are_asked_once(again)
    assert message is not None and "rejected or cancelled" in message and cancel.party in message
    assert invariants.users_are_asked_once(world) is None


def test_stalled_invariants_are_checked_before_a_timeout_and_never_with_a_message_to_deliver() -> None:
    """`stalled` (runtime.manifest.Invariants): checked in every world where all that is
    left would disturb the run (here the BisonRelay parties' timeouts) and where it ends;
    never while a message is in flight (its delivery in order disturbs nothing)."""
    from runtime.manifest import Invariants

    stalled: list[tuple[int, bool, bool]] = []
    ends: list[int] = []

    def probe(world: World) -> str | None:
        timers = any(p.deadline is not None for p in world.parties.values())
        stalled.append((world.sim.network.in_flight(), timers, world.timeouts_fired > 0))
        return None

    def end(world: World) -> str | None:
        ends.append(world.sim.network.in_flight())
        return None

    scenario = load_scenario(ROOT / "protocols" / "bisonrelay" / "scenarios" / "accepted_invite.toml")
    report = Explorer.for_scenario(scenario, faults="", invariants=Invariants(stalled=(probe,), terminal=(end,))).run()
    assert report.complete and not report.violations
    assert stalled and all(in_flight == 0 for in_flight, _, _ in stalled)
    # Where the run ends, and before: with a timer still running and no timeout fired
    # yet, which a terminal check never sees (the timeout is still a choice there).
    assert len(stalled) > len(ends) > 0
    assert any(timers and not fired for _, timers, fired in stalled)
