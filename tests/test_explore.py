"""The explorer on KeySync: complete runs, faults, bounds, the reduction, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from fsmc.cli import main
from runtime.explore import Explorer, Report, World
from runtime.keysync import invariants
from runtime.simulation import Scenario, load_scenario

FORM = ROOT / "protocols" / "scenarios" / "keysync_form_group.toml"


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
    assert report.complete and report.violations == []
    assert report.states > clean.states  # the fault was injected somewhere


def quiet_worlds(explorer: Explorer) -> tuple[Report, dict[object, tuple[str, ...]]]:
    found: dict[object, tuple[str, ...]] = {}
    check = explorer._check

    def record(world: World, path: tuple, report: Report, violated: set[str], checks: list | None = None) -> None:  # type: ignore[type-arg]
        if world.quiet:
            found[explorer.snapshot(world)] = tuple(str(c) for c in path)
        check(world, path, report, violated, checks)

    explorer._check = record  # type: ignore[method-assign]
    return explorer.run(), found


@pytest.mark.parametrize("settings", [{}, {"faults": frozenset({"reorder"}), "max_faults": 1},
                                      {"user_events": 2}], ids=["plain", "reorder", "two-answers"])
def test_the_reduction_loses_no_quiet_state_and_no_violation(form: Scenario, settings: dict) -> None:  # type: ignore[type-arg]
    full, full_quiet = quiet_worlds(Explorer(form, reduce=False, **settings))
    reduced, reduced_quiet = quiet_worlds(Explorer(form, **settings))
    assert reduced.states < full.states
    assert set(reduced_quiet) == set(full_quiet)
    assert {v.invariant for v in reduced.violations} == {v.invariant for v in full.violations}


def test_bounds_are_reported_and_never_a_proof(form: Scenario) -> None:
    by_states = Explorer(form, max_states=20).run()
    assert not by_states.complete and by_states.bounded_by == ["states"] and by_states.states == 20
    by_depth = Explorer(form, max_depth=5).run()
    assert not by_depth.complete and by_depth.bounded_by == ["depth"] and by_depth.max_depth == 5


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
    with pytest.raises(ValueError, match="unknown faults: flood"):
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
    svg = (tmp_path / "keysync_form_group-agreement_on_the_outcome.svg").read_text()
    assert svg.startswith("<svg") or "<svg" in svg[:200]


def test_explore_command_prints_the_counterexample_chart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--user-events", "2"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATED agreement_on_the_outcome" in out and "shortest counterexample" in out
    assert "<Cancel>" in out and "OwnKeysOfferer" in out


def test_explore_command_says_when_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--max-states", "10"]) == 0
    assert "INCOMPLETE: bounded by states; this is not a proof" in capsys.readouterr().out


def test_explore_command_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(FORM), "--faults", "flood"]) == 2
    assert "unknown faults: flood" in capsys.readouterr().err
