"""KeySync between devices: every case of the draft's section 2.2, as scenario files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from fsmc.build import load_scenario
from fsmc.cli import main
from runtime.harness.simulation import Simulation

SCENARIOS = sorted((ROOT / "protocols" / "keysync" / "scenarios").glob("*.toml"))


def run(name: str):  # type: ignore[no-untyped-def]
    sim = Simulation(load_scenario(ROOT / "protocols" / "keysync" / "scenarios" / name))
    return sim, sim.run()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_meets_its_expectations(path: Path) -> None:
    result = Simulation(load_scenario(path)).run()
    assert result.ok, result.failures


def test_draft_cases_are_all_covered() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"form_group", "form_group_offerer_first", "form_group_reject",
            "form_group_cancel", "join_group", "join_group_reject",
            "join_group_cancel", "leave_group", "cannot_decrypt", "keygen",
            "handshake_timeout"} <= names


def test_a_seed_reproduces_a_run_exactly() -> None:
    _, a = run("join_group.toml")
    _, b = run("join_group.toml")
    assert a.trace == b.trace and a.parties == b.parties


def test_form_group_exchanges_the_draft_messages_in_order() -> None:
    _, result = run("form_group.toml")
    received = [e.message for e in result.trace if e.kind == "receive" and e.peer != e.party]
    # 2.2.1.1: Beacon(s), NegotiationRequest, NegotiationOpen, CommitAcceptRequester,
    # CommitAcceptOfferer, OwnKeysRequester, OwnKeysOfferer
    assert [m for m in received if m != "Beacon"] == [
        "NegotiationRequest", "NegotiationOpen", "CommitAcceptRequester", "CommitAcceptOfferer",
        "OwnKeysRequester", "OwnKeysOfferer"]


def test_both_devices_show_the_same_trustwords() -> None:
    sim, _ = run("form_group.toml")
    words = {name: [n.trustwords for n in d.notifications if n.name == "showSoleHandshake"]
             for name, d in sim.devices.items()}
    assert words["laptop"] == words["phone"] and len(words["laptop"][0]) == 5


def test_join_group_winner_and_loser() -> None:
    """2.2.2.1: both grouped devices answer the Beacon; the new device takes the first
    NegotiationRequestGrouped and ignores the other."""
    sim, result = run("join_group.toml")
    requests = [e for e in result.trace if e.kind == "send" and e.message == "NegotiationRequestGrouped"]
    assert {e.party for e in requests} == {"laptop", "desktop"}
    opens = [e for e in result.trace if e.kind == "send" and e.message == "NegotiationOpen"]
    assert [e.party for e in opens] == ["tablet"]
    handshakes = [e for e in result.trace if e.kind == "send" and e.message == "GroupHandshake"]
    assert len(handshakes) == 1  # only the winner informs the group


def test_leave_group_elects_exactly_one_leader() -> None:
    sim, result = run("leave_group.toml")
    assert sum(d.resets for d in sim.devices.values()) == 1
    assert sim.devices["tablet"].disabled


def test_reject_and_cancel_move_no_private_key() -> None:
    for name in ("form_group_reject.toml", "form_group_cancel.toml",
                 "join_group_reject.toml", "join_group_cancel.toml"):
        sim, result = run(name)
        assert result.ok, (name, result.failures)
        for device in sim.devices.values():
            assert set(device.keyring.private) == device.initial, name


def test_simulate_command_json_and_msc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg = tmp_path / "chart.svg"
    scenario = str(ROOT / "protocols" / "keysync" / "scenarios" / "form_group.toml")
    assert main(["simulate", scenario, "--json", "--msc", str(svg)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["parties"]["laptop"]["state"] == "Grouped"
    assert data["parties"]["laptop"]["keys"] == data["parties"]["phone"]["keys"]
    assert any(e["kind"] == "receive" and e["message"] == "OwnKeysOfferer" for e in data["trace"])
    assert "<svg" in svg.read_text() and "OwnKeysRequester" in svg.read_text()
    assert main(["simulate", scenario]) == 0
    chart = capsys.readouterr().out
    assert "OwnKeysRequester" in chart and "laptop: Grouped" in chart


def test_simulate_exits_1_when_an_expectation_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "protocols" / "keysync" / "scenarios" / "form_group_cancel.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('state = { laptop = "Sole"', 'state = { laptop = "Grouped"'))
    assert main(["simulate", str(bad)]) == 1
    assert "FAILED: laptop is in Sole, expected Grouped" in capsys.readouterr().out
