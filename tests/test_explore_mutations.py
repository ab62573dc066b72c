"""Mutation tests: deliberate bugs in copies of keysync.fsm, each caught by the explorer
with a counterexample, while the unmutated FSM passes under the same settings."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT
from mutants import MUTANTS, Mutant

from fsmc.build import load_scenario, machines
from runtime.harness.explore import Explorer

SOURCE = (ROOT / "protocols" / "keysync" / "keysync.fsm").read_text()
SCENARIOS = ROOT / "protocols" / "keysync" / "scenarios"


def test_the_unmutated_fsm_passes() -> None:
    for settings in {tuple(sorted(m.settings.items())) for m in MUTANTS}:
        report = Explorer(load_scenario(SCENARIOS / "form_group.toml"), **dict(settings)).run()
        assert report.complete and report.violations == [], settings


def test_each_mutant_changes_the_fsm_in_one_place() -> None:
    assert len(MUTANTS) >= 8
    for m in MUTANTS:
        assert SOURCE.count(m.old) == 1, m.name
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)


def compiled_copy(text: str, tmp_path: Path) -> ModuleType:
    """`text`, a copy of keysync.fsm, compiled (as `fsmc explore` would compile it)."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "protocols" / "keysync" / "pEp.asn1", source)
    (source / "keysync.fsm").write_text(text)
    return machines(source / "keysync.fsm")


def test_an_unmutated_copy_explores_exactly_as_the_generated_module(tmp_path: Path) -> None:
    # A mutant is told from the draft by what its own compiled copy does: the copy must
    # behave as generated.keysync does, down to records that the device builds (Identity).
    import generated.keysync

    scenario = load_scenario(SCENARIOS / "form_group.toml")
    settings = {"faults": frozenset({"loss", "dup", "reorder"}), "max_faults": 1}
    original = Explorer(dataclasses.replace(scenario, machines=generated.keysync), **settings).run()
    copy = Explorer(dataclasses.replace(scenario, machines=compiled_copy(SOURCE, tmp_path)), **settings).run()
    assert (copy.states, copy.transitions, copy.quiet_states) == \
        (original.states, original.transitions, original.quiet_states)


@pytest.mark.parametrize("index", range(len(MUTANTS)), ids=[m.name for m in MUTANTS])
def test_mutant_is_caught(index: int, tmp_path: Path) -> None:
    m: Mutant = MUTANTS[index]
    module = compiled_copy(SOURCE.replace(m.old, m.new), tmp_path)
    scenario = dataclasses.replace(load_scenario(SCENARIOS / m.scenario), machines=module)
    explorer = Explorer(scenario, **m.settings)
    report = explorer.run()
    assert report.complete
    found = {v.invariant: v for v in report.violations}
    assert m.caught_by in found, f"{m.name}: {sorted(found)}"
    # The counterexample is a real run of the mutant: replaying it breaks the invariant.
    v = found[m.caught_by]
    world = explorer.replay(v.path)
    check = next(i for i in explorer.safety + explorer.quiescent + explorer.terminal if i.__name__ == m.caught_by)
    assert check(world) is not None
