"""Two-phase commit (protocols/commit/): its scenarios meet their expectations, exploring
each one finds no violation, and the explorer catches deliberate bugs in the fsm."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import Any, cast

import pytest
from conftest import ROOT

from fsmc.build import load_scenario, machines
from protocols.commit import PROTOCOL
from protocols.commit.invariants import atomicity
from protocols.commit.party import CommitParty
from runtime.errors import EnvelopeError, RemoteError
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation

FOLDER = ROOT / "protocols" / "commit"
SCENARIOS = {path.name: path for path in PROTOCOL.scenarios}


def test_the_protocol_has_its_scenarios() -> None:
    assert {"all_yes.toml", "one_votes_no.toml", "vote_never_comes.toml"} <= set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_meets_its_expectations(name: str) -> None:
    result = Simulation(load_scenario(SCENARIOS[name])).run()
    assert result.ok, result.failures


def test_all_yes_commits_everywhere_and_one_no_aborts_everywhere() -> None:
    for name, outcome in [("all_yes.toml", "commit"), ("one_votes_no.toml", "abort")]:
        sim = Simulation(load_scenario(SCENARIOS[name]))
        sim.run()
        devices = [cast(CommitParty, p.device) for p in sim.parties.values()]
        assert {d.last_outcome for d in devices} == {outcome}
        assert len({d.outcomes[0][0] for d in devices}) == 1  # one transaction, one TID


def test_a_failed_expectation_is_reported() -> None:
    scenario = load_scenario(SCENARIOS["one_votes_no.toml"])
    wrong = dataclasses.replace(scenario, expect={**scenario.expect, "outcome": {"alice": "commit"}})
    assert Simulation(wrong).run().failures == ["alice decided abort, expected commit"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_exploring_the_scenario_finds_no_violation(name: str) -> None:
    report = Explorer.for_scenario(load_scenario(SCENARIOS[name])).run()
    assert report.complete
    assert report.violations == []
    assert report.quiet_states > 0 and report.terminal_states > 0


def test_bad_bytes_are_a_remote_error_and_are_dropped() -> None:
    sim = Simulation(load_scenario(SCENARIOS["all_yes.toml"]))
    device = sim.parties["alice"].device
    for data in (b"", b"\x05ab", b"\x02\xff\xfe\x00"):
        with pytest.raises(EnvelopeError):
            device.open(data)
    with pytest.raises(RemoteError):  # opens, but is not a message of the protocol
        sim.scenario.machines.CODEC.decode(device.open(b"\x04bank\xff\xff")[0])


def test_a_copy_of_a_party_shares_nothing_mutable() -> None:
    sim = Simulation(load_scenario(SCENARIOS["all_yes.toml"]))
    for step in sim.scenario.steps[:4]:
        sim.step(step)
    twin = copy.deepcopy(sim)
    before = sim.parties["alice"].device.snapshot()
    twin.step({"party": "alice", "event": "No"})
    assert sim.parties["alice"].device.snapshot() == before
    assert twin.parties["alice"].device.snapshot() != before


# Deliberate bugs, each one exact replacement in a copy of commit.fsm, and the scenario
# whose exploration (with its [explore] settings) catches it.
MUTANTS: dict[str, tuple[str, str, str]] = {
    # The coordinator commits on the first yes vote instead of waiting for every one.
    "commit on the first yes": ("""                    if allVotedYes {
                        do decideCommit;
                        send Commit;
                        go Idle;
                    }""", """                    do decideCommit;
                    send Commit;
                    go Idle;""", "all_yes.toml"),
    # A prepared participant takes an Abort without looking at its TID: a late Abort of
    # the previous transaction, overtaken by the next Prepare, aborts the next one.
    "no TID check on Abort when prepared": ("""            on Abort
                if sameTransaction {
                    do abortTransaction;
                    go Aborted;
                }
        }

        // Decided""", """            on Abort
                {
                    do abortTransaction;
                    go Aborted;
                }
        }

        // Decided""", "one_votes_no.toml"),
}


def mutant(tmp_path: Path, old: str, new: str) -> Any:
    source = (FOLDER / "commit.fsm").read_text(encoding="utf-8")
    assert source.count(old) == 1
    (tmp_path / "commit.fsm").write_text(source.replace(old, new), encoding="utf-8")
    shutil.copy(FOLDER / "Commit.asn1", tmp_path)
    return machines(tmp_path / "commit.fsm")


@pytest.mark.parametrize("bug", sorted(MUTANTS))
def test_exploration_catches_a_broken_atomicity(bug: str, tmp_path: Path) -> None:
    old, new, name = MUTANTS[bug]
    scenario = load_scenario(SCENARIOS[name])
    assert Explorer.for_scenario(scenario).run().violations == []  # the fsm as written passes
    broken = Explorer.for_scenario(dataclasses.replace(scenario, machines=mutant(tmp_path, old, new)))
    report = broken.run()
    assert report.complete
    found = {v.invariant: v for v in report.violations}
    assert "atomicity" in found, [v.invariant for v in report.violations]
    violation = found["atomicity"]
    # The counterexample replays, from the start, to a world that breaks atomicity.
    world = broken.replay(violation.path)
    assert atomicity(world) == violation.message
    assert "committed" in violation.message and "aborted" in violation.message
