"""`fsmc mutate`: the mutants are one-place changes of the model; each is compiled in memory
and judged by exploring the scenarios (killed, survived, equivalent, invalid)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT

from fsmc import model as m
from fsmc import mutate
from fsmc.cli import main

FORM_GROUP = ROOT / "protocols" / "keysync" / "scenarios" / "form_group.toml"


@pytest.fixture(scope="module")
def run() -> mutate.Run:
    return mutate.prepare([FORM_GROUP], {"max_states": 5000})


def find(run: mutate.Run, operator: str, text: str) -> mutate.Mutant:
    (mutant,) = [mu for mu in run.mutants if mu.operator == operator and text in mu.description]
    return mutant


def handlers(document: m.Document) -> dict[tuple[str, str], tuple[m.Statement, ...]]:
    (fsm,) = document.protocols[0].fsms
    return {(s.name, h.event): h.body for s, h in fsm.handlers()}


def test_each_mutant_changes_one_handler_of_the_fsm(run: mutate.Run) -> None:
    original = handlers(run.compilation.document)
    assert {mu.operator for mu in run.mutants} == set(mutate.OPERATORS)
    assert [mu.index for mu in run.mutants] == list(range(1, len(run.mutants) + 1))
    sends = mutate.mutants(run.compilation.document, ["KeySync"], ("Accept", "Reject", "Cancel"), ("remove-send",))
    assert all(run.mutants[mu.index - 1].description == mu.description for mu in sends)
    for mu in run.mutants:
        changed = [k for k, body in handlers(mu.document).items() if body != original[k]]
        assert len(changed) == 1, mu.description
    # The numbering is the source order, so --mutants N names the same mutant on every run.
    again = mutate.mutants(run.compilation.document, ["KeySync"], ("Accept", "Reject", "Cancel"))
    assert [(mu.operator, mu.description) for mu in again] == [(mu.operator, mu.description) for mu in run.mutants]


def test_send_early_moves_a_send_of_a_users_answer_before_it(run: mutate.Run) -> None:
    mu = find(run, "send-early", "send CommitAcceptRequester when Sole on NegotiationOpen enters HandshakingRequester")
    body = handlers(mu.document)[("Sole", "NegotiationOpen")]
    sends = [s.message for s in m.walk(body) if isinstance(s, m.Send)]
    assert "CommitAcceptRequester" in sends


def test_verdicts(run: mutate.Run) -> None:
    mutate.baseline(run)
    assert run.baselines[str(FORM_GROUP)].violations == frozenset()
    killed = mutate.judge(run, find(run, "remove-send", "FormingGroupOfferer on OwnKeysRequester: remove `send "
                                                        "OwnKeysOfferer;`").index)
    assert (killed.status, killed.invariant, killed.scenario) == ("killed", "no_stall_after_acceptance",
                                                                  "form_group.toml")
    assert killed.counterexample is not None and killed.counterexample > 0
    crash = mutate.judge(run, find(run, "swap", "on CommitAcceptOfferer: swap `do prepareOwnKeys`").index)
    assert (crash.status, crash.invariant) == ("killed", "runtime error: UnsetFieldError")
    # A device that never sends its Beacon meets no one (devices_meet) ...
    alone = mutate.judge(run, find(run, "remove-send", "InitState on Init: remove `send Beacon;`").index)
    assert (alone.status, alone.invariant) == ("killed", "devices_meet")
    # ... but the Offerer's answering Beacon is not needed: the Requester's NegotiationRequest
    # answers the Offerer's own first Beacon.
    survived = mutate.judge(run, find(run, "remove-send", "Sole on Beacon: remove `send Beacon;`").index)
    assert survived.status == "survived"
    # The FSM itself, compiled in memory as a mutant is, explores exactly as the baseline.
    same = dataclasses.replace(run.mutants[0], document=run.compilation.document)
    run.mutants.append(dataclasses.replace(same, index=10_000))
    try:
        assert mutate.judge(run, 10_000).status == "equivalent"
    finally:
        run.mutants.pop()


def test_the_command(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The mutants' temporary directories go to a directory of this test's own (forked
    # workers inherit it), so that other runs beside this one do not count.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    args = ["mutate", str(FORM_GROUP), "--operators", "remove-send", "--max-states", "5000", "--workers", "2"]
    assert main([*args, "--json", "--min-score", "95%"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["killed"] + data["survived"] + data["equivalent"] + data["invalid"] == len(data["mutants"]) == 40
    assert data["score"] == data["killed"] / (data["killed"] + data["survived"]) and data["score"] < 0.95
    assert all(x["operator"] == "remove-send" and x["location"].startswith("protocols/keysync/keysync.fsm:")
               for x in data["mutants"])
    beacon = next(x["index"] for x in data["mutants"] if "Sole on Beacon: remove `send Beacon;`" in x["description"])
    assert main([*args, "--mutants", str(beacon), "--min-score", "0.5"]) == 1  # 0 of 1 killed
    out = capsys.readouterr().out
    assert "protocols/keysync/keysync.fsm:59:30: survived: remove-send: KeySync Sole on Beacon: remove " \
           "`send Beacon;`" in out and "1 mutants: 0 killed, 1 survived" in out
    killed = next(x["index"] for x in data["mutants"] if x["status"] == "killed")
    assert main([*args, "--mutants", str(killed), "--min-score", "0.5"]) == 0
    assert not list(tmp_path.glob("fsmc-mutant-*"))  # nothing left behind
    # In one process, to see it: the mutant is compiled there, and the directory removed.
    made: list[Path] = []

    class Recorded(tempfile.TemporaryDirectory):  # type: ignore[type-arg]
        def __enter__(self) -> str:
            made.append(Path(self.name))
            assert (Path(self.name).parent) == tmp_path
            return super().__enter__()

    monkeypatch.setattr(mutate.tempfile, "TemporaryDirectory", Recorded)
    assert main([*args[:-1], "1", "--mutants", str(killed)]) == 0
    assert len(made) == 1 and not made[0].exists()
    assert main(["mutate", str(FORM_GROUP), "--operators", "nosuch"]) == 2


def test_berty_parties_must_end_at_rest_and_forget_the_handshake() -> None:
    """handshakes_end_at_rest (protocols/berty/invariants.py) kills what no security
    invariant sees: a Responder left in its dialog after its user accepted, and a
    Requester that keeps the handshake's ephemeral keys after its last message."""
    berty = mutate.prepare([ROOT / "protocols" / "berty" / "scenarios" / "contact_accepted.toml"], {})
    mutate.baseline(berty)
    stays = find(berty, "remove-go", "Requested on AcceptContact: remove `go Listening;`")
    keeps = find(berty, "remove-do", "RequestSent on Init: remove `do endHandshake;`")
    # A stalled check: the Responder waits in a handshake state for a timeout that the run
    # explores no more (a terminal check never judged it).
    waits = find(berty, "retarget-go", "Requested on DiscardContact: `go Listening;` goes to Greeting")
    for mutant in (stays, keeps, waits):
        outcome = mutate.judge(berty, mutant.index)
        assert (outcome.status, outcome.invariant) == ("killed", "handshakes_end_at_rest"), mutant.description


def test_commit_parties_stay_where_their_records_say_and_abort_only_on_a_no() -> None:
    """states_agree_with_records (a safety invariant now, protocols/commit/invariants.py)
    kills a participant left in its dialog after its No, though the coordinator's Abort
    later takes it to Aborted anyway; abort_needs_a_no kills a Prepare that votes no by
    itself (Ready's go to InitState, whose Init takes the participant for one whose user
    never answered)."""
    commit = mutate.prepare([ROOT / "protocols" / "commit" / "scenarios" / "all_yes.toml"], {})
    mutate.baseline(commit)
    expected = {
        "Voting on No: remove `go Aborted;`": "states_agree_with_records",
        "Ready on Prepare: `go Voting;` goes to InitState": "abort_needs_a_no",
    }
    for text, invariant in expected.items():
        outcome = mutate.judge(commit, find(commit, "remove-go" if "remove" in text else "retarget-go", text).index)
        assert (outcome.status, outcome.invariant) == ("killed", invariant), text


def test_mpenc_members_stay_where_their_records_say() -> None:
    """mpENC's states_agree_with_records kills a go to the wrong state that leaves every key
    right: the last member of the upflow, having sent the downflow, waits in Upflowing,
    where its own downflow comes back and takes it on to Confirming."""
    mpenc = mutate.prepare([ROOT / "protocols" / "mpenc" / "scenarios" / "establish.toml"], {})
    mutate.baseline(mpenc)
    mutant = find(mpenc, "retarget-go", "Alone on Upflow: `go Confirming;` goes to Upflowing")
    outcome = mutate.judge(mpenc, mutant.index)
    assert (outcome.status, outcome.invariant) == ("killed", "states_agree_with_records")


def test_status_requests_pairing_and_bundles_are_checked() -> None:
    """Status's invariants of the FSM's own duties (protocols/status/invariants.py): a
    PairDevices that sends nothing (pairings_are_seen), a RotateBundle that rotates nothing
    (requests_are_done), and a message with no entry for its receiver left unanswered, so
    its sender never learns of that installation (contacts_learn_installations)."""
    scenarios = ROOT / "protocols" / "status" / "scenarios"
    status = mutate.prepare([scenarios / "paired_device.toml", scenarios / "rotation_rekeying.toml"], {})
    mutate.baseline(status)
    expected = {
        ("remove-send", "PairDevices: remove `send BundleAdvert to ownTopic;`"): "pairings_are_seen",
        ("remove-do", "RotateBundle: remove `do rotateBundle;`"): "requests_are_done",
        ("remove-send", "DirectMessage: remove `send BundleAdvert to senderTopic;`"): "contacts_learn_installations",
    }
    for (operator, text), invariant in expected.items():
        outcome = mutate.judge(status, find(status, operator, text).index)
        assert (outcome.status, outcome.invariant) == ("killed", invariant), text


def test_bisonrelay_progress_is_judged_before_a_timeout_excuses_it() -> None:
    """A `stalled` invariant (runtime.manifest.Invariants) is checked where nothing but
    timeouts, faults and refusals is left: the inviter that never answers RMOFullKX leaves
    the acceptor waiting for its timeout, which, as a terminal check, excused the run once
    it fired (the mutant survived then)."""
    br = mutate.prepare([ROOT / "protocols" / "bisonrelay" / "scenarios" / "accepted_invite.toml"], {})
    mutate.baseline(br)
    mutant = find(br, "remove-send", "AwaitingHalfKX on RMOHalfKX: remove `send RMOFullKX to acceptorRV;`")
    outcome = mutate.judge(br, mutant.index)
    assert (outcome.status, outcome.invariant) == ("killed", "consented_exchanges_complete")
    retarget = find(br, "retarget-go", "AwaitingFullKX on RMOFullKX: `go Ready;` goes to AwaitingHalfKX")
    assert mutate.judge(br, retarget.index).invariant == "states_agree_with_records"
    # And a chat the user wrote that the fsm never sends (chats_asked, chats_arrive).
    chat = mutate.prepare([ROOT / "protocols" / "bisonrelay" / "scenarios" / "chat_conversation.toml"], {})
    mutate.baseline(chat)
    dropped = find(chat, "negate-if", "Ready on SendChat: negate `if mayChat`")
    assert mutate.judge(chat, dropped.index).invariant == "chats_arrive"
