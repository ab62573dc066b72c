"""Every protocol of the registry, tested alike: a new protocol's folder is tested here
without a test file of its own (docs/protocols.md).

- each scenario runs as a simulation and meets its expectations;
- each device conforms to the `...Bindings` interface generated from its fsm, and its
  state record is a frozen value from which an equal device is rebuilt;
- a copy of a world in the middle of a run equals it and shares nothing mutable;
- a small exploration of each scenario runs, and every counterexample it reports
  replays to a world that breaks the invariant it names;
- editing a protocol's DSL file changes what the next `fsmc explore` finds, with no
  other command in between.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from worlds import assert_independent_copy, mid_run

from fsmc.build import load_scenario
from fsmc.cli import main
from runtime import registry
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation
from runtime.manifest import Manifest

SCENARIOS = [(m.name, path) for m in registry.protocols().values() for path in m.scenarios]
IDS = [f"{name}/{path.stem}" for name, path in SCENARIOS]


def test_the_registry_has_the_project_protocols() -> None:
    assert {"keysync", "mpenc", "commit"} <= set(registry.names())
    for manifest in registry.protocols().values():
        assert manifest.dsl.is_file(), manifest.name
        assert manifest.folder == ROOT / "protocols" / manifest.name
        assert manifest.scenarios, f"{manifest.name} has no scenarios"
        assert manifest.invariants.names, f"{manifest.name} declares no invariants"


def test_an_unknown_protocol_is_named_with_the_ones_there_are() -> None:
    with pytest.raises(registry.RegistryError, match="no protocol 'nosuch'.*keysync"):
        registry.get("nosuch")


@pytest.mark.parametrize(("name", "path"), SCENARIOS, ids=IDS)
def test_scenario_meets_its_expectations(name: str, path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.protocol.name == name
    result = Simulation(scenario).run()
    assert result.ok, result.failures


def _bindings(module: Any, fsm: str) -> list[str]:
    interface = getattr(module, f"{fsm}Bindings")
    return sorted(n for n, v in vars(interface).items() if callable(v) and not n.startswith("_"))


@pytest.mark.parametrize("manifest", registry.protocols().values(), ids=registry.names())
def test_devices_conform_to_their_bindings_and_round_trip_their_state(manifest: Manifest) -> None:
    scenario = load_scenario(manifest.scenarios[0])
    sim = Simulation(scenario)
    sim.run()
    for party in sim.parties.values():
        fsm = type(party.machine).__name__
        missing = [n for n in _bindings(scenario.machines, fsm) if not callable(getattr(party.device, n, None))]
        assert not missing, f"{manifest.name}: {type(party.device).__name__} lacks {missing} of {fsm}Bindings"
        record = party.device.snapshot()
        assert dataclasses.is_dataclass(record) and type(record).__dataclass_params__.frozen  # type: ignore[attr-defined]
        hash(record)
        twin = copy.deepcopy(party.device)
        assert twin.snapshot() == record and twin is not party.device
        # restore() brings a device back to a recorded state, whatever it did since.
        sim.deliver_until_quiet()
        party.device.restore(record)
        assert party.device.snapshot() == record


@pytest.mark.parametrize("manifest", registry.protocols().values(), ids=registry.names())
def test_a_world_copy_equals_the_original_and_shares_nothing_mutable(manifest: Manifest) -> None:
    explorer = Explorer.for_scenario(load_scenario(manifest.scenarios[0]))
    steps = 0
    world = explorer.initial()
    while steps < 12 and any(True for _ in explorer.choices(world)):
        steps += 1
        world = mid_run(explorer, steps)
    assert steps >= 3, f"{manifest.name}: its first scenario's exploration ends after {steps} steps"
    assert_independent_copy(world, copy.deepcopy(world))


@pytest.mark.parametrize(("name", "path"), SCENARIOS, ids=IDS)
def test_a_small_exploration_runs_and_its_counterexamples_replay(name: str, path: Path) -> None:
    explorer = Explorer.for_scenario(load_scenario(path), max_states=1500)
    report = explorer.run()
    assert report.states > 1 and report.transitions >= report.states - 1
    assert report.complete or report.bounded_by == ["states"]
    checks = {i.__name__: i for i in (*explorer.safety, *explorer.quiescent, *explorer.terminal)}
    for v in report.violations:
        assert checks[v.invariant](explorer.replay(v.path)) is not None, f"{v.invariant} does not replay"


def test_an_edited_dsl_file_is_what_the_next_explore_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A designer edits the protocol's FSM and explores again: the edit is what runs."""
    folder = tmp_path / "keysync"
    shutil.copytree(ROOT / "protocols" / "keysync", folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = dataclasses.replace(registry.get("keysync"), folder=folder)
    monkeypatch.setitem(registry.protocols(), "keysync", manifest)
    monkeypatch.setenv("FSMC_CACHE", str(tmp_path / "cache"))
    scenario = str(folder / "scenarios" / "form_group.toml")
    assert main(["explore", scenario]) == 0
    assert "no invariant violated" in capsys.readouterr().out
    # The Requester sends its keys on its own Accept, before the Offerer's user accepts.
    dsl = folder / "keysync.fsm"
    text = dsl.read_text()
    accept = """            on Accept {
                do trustThisKey;
                send CommitAcceptRequester;
                go HandshakingPhase1Requester;
            }"""
    assert text.count(accept) == 1
    dsl.write_text(text.replace(accept, accept.replace("go HandshakingPhase1Requester;", """do prepareOwnKeys;
                send OwnKeysRequester;
                go HandshakingPhase1Requester;""")))
    assert main(["explore", scenario]) == 1
    assert "VIOLATED no_keys_before_both_accepted" in capsys.readouterr().out
    # And back: the cached compilation of the original text serves again.
    dsl.write_text(text)
    assert main(["explore", scenario]) == 0


def test_a_type_module_that_became_a_link_is_compiled_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated ASN.1 names where its type module was read from; the same bytes read
    through a link (protocols/keysync_repaired/pEp.asn1) are another source, not a cache hit."""
    from fsmc.build import machines

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FSMC_CACHE", str(tmp_path / "cache"))
    draft, variant = tmp_path / "draft", tmp_path / "variant"
    draft.mkdir()
    variant.mkdir()
    shutil.copy(ROOT / "protocols" / "keysync" / "pEp.asn1", draft)
    shutil.copy(ROOT / "protocols" / "keysync" / "pEp.asn1", variant)
    shutil.copy(ROOT / "protocols" / "keysync" / "keysync.fsm", variant)

    def source() -> str:
        asn1 = Path(machines(variant / "keysync.fsm").__file__).with_suffix(".asn1").read_text()
        return next(line for line in asn1.splitlines() if line.startswith("-- The type module"))

    assert source().endswith("from variant/pEp.asn1:")
    (variant / "pEp.asn1").unlink()
    (variant / "pEp.asn1").symlink_to(draft / "pEp.asn1")
    assert source().endswith("from draft/pEp.asn1:")


def test_a_dsl_file_that_does_not_compile_is_reported_where_it_is_wrong(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mpenc"
    shutil.copytree(ROOT / "protocols" / "mpenc", folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setitem(registry.protocols(), "mpenc", dataclasses.replace(registry.get("mpenc"), folder=folder))
    monkeypatch.setenv("FSMC_CACHE", str(tmp_path / "cache"))
    dsl = folder / "mpenc.fsm"
    lines = dsl.read_text().splitlines(keepends=True)
    line = next(i for i, text in enumerate(lines) if "go InSession;" in text)
    lines[line] = lines[line].replace("go InSession;", "go Nowhere;")
    dsl.write_text("".join(lines))
    assert main(["simulate", str(folder / "scenarios" / "establish.toml")]) == 1
    err = capsys.readouterr().err
    assert f"mpenc.fsm:{line + 1}:" in err and "Nowhere" in err and "error" in err


class _CheckedCarry(Explorer):
    """Depth first, checking each record a world carries from the world it was copied from
    against the record its device gives now."""

    carried = 0

    def snapshot(self, world: Any) -> Any:
        for name, (record, _) in (world.carried or {}).items():
            assert world.parties[name].device.snapshot() == record, f"{name}: a carried record is stale"
            self.carried += 1
        return super().snapshot(world)


class _NoCarry(Explorer):
    def snapshot(self, world: Any) -> Any:
        world.carried = None
        return super().snapshot(world)


@pytest.mark.parametrize("manifest", registry.protocols().values(), ids=registry.names())
def test_the_records_a_depth_first_step_carries_are_the_untouched_devices_state(manifest: Manifest) -> None:
    """Depth first, a copy's snapshot reuses the records of the parties its step did not
    touch: they must equal what those devices give, and the search must find what it
    finds taking every record afresh."""
    scenario = load_scenario(manifest.scenarios[0])
    checked = _CheckedCarry.for_scenario(scenario, faults="loss", max_states=3000, search="dfs")
    checked.copy_on_write = False  # copy-on-write worlds carry no records: they share parties
    report = checked.run()
    assert checked.carried > report.states, "no record was carried"
    fresh = _NoCarry.for_scenario(scenario, faults="loss", max_states=3000, search="dfs")
    fresh.copy_on_write = False
    fresh = fresh.run()
    assert report.complete, f"{manifest.name}: lower the bound of this test's exploration"
    assert (report.states, report.transitions, report.violating) == \
        (fresh.states, fresh.transitions, fresh.violating)
