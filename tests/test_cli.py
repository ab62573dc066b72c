"""The fsmc command on the KeySync protocol."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from fsmc.cli import main

KEYSYNC = str(ROOT / "protocols" / "keysync" / "keysync.fsm")

STATES = ["InitState", "Sole", "HandshakingOfferer", "HandshakingRequester", "HandshakingPhase1Offerer",
          "HandshakingPhase1Requester", "HandshakingPhase2Offerer", "FormingGroupOfferer", "FormingGroupRequester",
          "Grouped", "GroupKeyResetElection", "HandshakingToJoin", "HandshakingToJoinPhase1",
          "HandshakingToJoinPhase2", "JoiningGroup", "HandshakingGrouped", "HandshakingGroupedPhase1"]


def inspect(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert main(["inspect", KEYSYNC, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_keysync_checks_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--werror", KEYSYNC]) == 0


def test_inspect_shows_the_draft(capsys: pytest.CaptureFixture[str]) -> None:
    data = inspect(capsys)
    (protocol,) = data["protocols"]
    assert (protocol["name"], protocol["id"]) == ("Sync", 1)
    (fsm,) = protocol["fsms"]
    assert (fsm["name"], fsm["id"], fsm["threshold"], fsm["versions"]) == ("KeySync", 1, 300, [1, 2])
    assert [s["name"] for s in fsm["states"]] == STATES
    timeouts = {s["name"]: s["timeout"] for s in fsm["states"]}
    assert timeouts["Sole"] is None and timeouts["Grouped"] is None
    assert timeouts["HandshakingOfferer"] == 600 and timeouts["JoiningGroup"] == 300
    assert [(m["name"], m["id"]) for m in fsm["messages"]][:3] == [
        ("Beacon", 2), ("NegotiationRequest", 3), ("NegotiationOpen", 4)]
    assert [m["id"] for m in fsm["messages"]] == list(range(2, 22))
    beacon = fsm["messages"][0]
    assert (beacon["type"], beacon["ratelimit"], beacon["security"]) == ("broadcast", 10, "unencrypted")
    assert beacon["fields"] == [{"kind": "field", "type": "TID", "name": "challenge"},
                                {"kind": "auto", "type": "Version", "name": "version"}]
    sync_keys = next(m for m in fsm["messages"] if m["name"] == "SynchronizeGroupKeys")
    assert (sync_keys["type"], sync_keys["ratelimit"], sync_keys["security"]) == ("anycast", 60, "trusted")
    assert fsm["externals"] == [{"name": "Accept", "id": 129}, {"name": "Reject", "id": 130},
                                {"name": "Cancel", "id": 131}]
    assert fsm["signaled"] == ["KeyGen", "CannotDecrypt", "LeaveDeviceGroup"]

    sole = next(s for s in fsm["states"] if s["name"] == "Sole")
    beacon_handler = next(h for h in sole["handlers"] if h["event"] == "Beacon")
    assert beacon_handler["kind"] == "message"
    assert beacon_handler["sends"] == ["Beacon", "NegotiationRequest"]
    assert beacon_handler["transitions"] == []
    assert beacon_handler["conditions"] == ["sameChallenge", "weAreOfferer"]
    phase1 = next(s for s in fsm["states"] if s["name"] == "HandshakingPhase1Offerer")
    assert [(h["event"], h["transitions"]) for h in phase1["handlers"]] == [
        ("Rollback", ["Sole"]), ("CommitReject", ["End"]), ("CommitAcceptRequester", ["FormingGroupOfferer"])]
    total = sum(len(s["handlers"]) for s in fsm["states"])
    assert total == 79  # counted by hand in draft B.1


def test_inspect_of_a_broken_file_exits_1(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.fsm"
    bad.write_text("protocol P 1 { fsm F 1 { state InitState { on Init go Nowhere; } } }\n")
    assert main(["inspect", str(bad), "--json"]) == 1
    assert "bad.fsm:1:55: error: go to undefined state Nowhere" in capsys.readouterr().err
