"""The repaired KeySync (protocols/keysync_repaired): each repair is marked with a finding
of docs/exploration.md, nothing else differs from the draft, and the draft's
counterexamples, run on the repaired FSM, no longer break what they broke.

The registry-driven tests (test_protocols.py) run its scenarios and small explorations;
the complete explorations under every fault model are in `make bench`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from fsmc import model as m
from fsmc.build import load_scenario
from fsmc.diagnostics import Diagnostics
from fsmc.parser import parse_file
from runtime.harness.explore import Explorer, World

DRAFT = ROOT / "protocols" / "keysync"
REPAIRED = ROOT / "protocols" / "keysync_repaired"
DOCS = (ROOT / "docs" / "exploration.md").read_text()
REPAIR = re.compile(r"repair (\d+):", re.IGNORECASE)


def _fsm(path: Path) -> m.Fsm:
    diagnostics = Diagnostics()
    document = parse_file(path, diagnostics)
    assert not diagnostics.errors, diagnostics.errors
    return document.protocols[0].fsms[0]


def _shape(node: Any) -> Any:
    """A node without its source positions, for comparing two files' models."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__, *(_shape(getattr(node, f.name)) for f in dataclasses.fields(node)
                                       if f.name != "position"))
    if isinstance(node, tuple):
        return tuple(_shape(n) for n in node)
    return node


def _comment_above(lines: list[str], line: int) -> str:
    """The comment lines right above line `line` (1-based), joined."""
    above: list[str] = []
    i = line - 2
    while i >= 0 and lines[i].strip().startswith("//"):
        above.append(lines[i])
        i -= 1
    return "\n".join(reversed(above))


def test_every_repair_names_a_finding_written_up_in_the_docs() -> None:
    marked = {int(n) for name in ("keysync_repaired.fsm", "device.py")
              for n in REPAIR.findall((REPAIRED / name).read_text())}
    assert marked == {1, 2, 3, 5, 7, 8, 9, 10, 11}
    readme = (REPAIRED / "README.md").read_text()
    for n in marked:
        assert re.search(rf"^### {n}\. ", DOCS, re.M), f"repair {n}: no finding {n} in docs/exploration.md"
        assert re.search(rf"^\| {n} \| {n}: ", readme, re.M), f"repair {n} is not in the README's table"


def test_every_difference_from_the_draft_is_a_marked_repair() -> None:
    draft, repaired = _fsm(DRAFT / "keysync.fsm"), _fsm(REPAIRED / "keysync_repaired.fsm")
    lines = (REPAIRED / "keysync_repaired.fsm").read_text().splitlines()
    assert [s.name for s in draft.states] == [s.name for s in repaired.states]
    changed = []
    for old in draft.states:
        new = repaired.state(old.name)
        assert new is not None
        for event in dict.fromkeys([h.event for h in old.handlers] + [h.event for h in new.handlers]):
            before, after = old.handler(event), new.handler(event)
            if _shape(before) == _shape(after):
                continue
            changed.append((old.name, event))
            if after is not None:
                assert REPAIR.search(_comment_above(lines, after.position.line)), \
                    f"{old.name} on {event} differs from the draft without a 'repair N:' comment above it"
            else:  # a handler removed: the state says so
                body = "\n".join(lines[new.position.line - 1:new.handlers[-1].position.line])
                assert re.search(rf"repair \d+: no {event}\b", body), f"{old.name} lost 'on {event}' unmarked"
    for old in draft.messages:
        new = repaired.message(old.name)
        assert new is not None
        if _shape(old) != _shape(new):
            changed.append((old.name, "message"))
            assert REPAIR.search(_comment_above(lines, new.position.line)), f"message {old.name} changed unmarked"
    assert [x.name for x in draft.messages] == [x.name for x in repaired.messages]
    # The repairs touch these and nothing else.
    assert sorted(changed) == sorted([
        ("HandshakingOfferer", "Cancel"), ("HandshakingOfferer", "Rollback"),
        ("HandshakingRequester", "Cancel"), ("HandshakingRequester", "Rollback"),
        ("HandshakingPhase1Offerer", "Rollback"), ("HandshakingPhase1Requester", "Rollback"),
        ("HandshakingPhase2Offerer", "Cancel"),
        ("FormingGroupOfferer", "Cancel"), ("FormingGroupOfferer", "Rollback"),
        ("FormingGroupRequester", "Cancel"), ("FormingGroupRequester", "Rollback"),
        ("Grouped", "CommitReject"), ("Grouped", "Rollback"), ("Grouped", "GroupHandshake"),
        ("Grouped", "GroupTrustThisKey"),
        ("HandshakingToJoin", "Cancel"), ("HandshakingToJoin", "Rollback"), ("HandshakingToJoin", "Reject"),
        ("HandshakingToJoin", "CommitReject"),
        ("HandshakingToJoinPhase1", "Rollback"), ("HandshakingToJoinPhase1", "CommitReject"),
        ("HandshakingToJoinPhase2", "Cancel"), ("HandshakingToJoinPhase2", "Reject"),
        ("HandshakingToJoinPhase2", "Accept"), ("HandshakingToJoinPhase2", "Rollback"),
        ("HandshakingToJoinPhase2", "CommitReject"),
        ("HandshakingGrouped", "Cancel"), ("HandshakingGrouped", "Reject"),
        ("HandshakingGroupedPhase1", "Init"), ("HandshakingGroupedPhase1", "Rollback"),
        ("HandshakingGroupedPhase1", "CommitReject"),
        ("GroupKeysForNewMember", "message"),
    ])


# --- the form group: findings 1, 2 and 3 (complete explorations, a few seconds)

def _explore(protocol: str, name: str, **settings: Any) -> set[str]:
    scenario = load_scenario(ROOT / "protocols" / protocol / "scenarios" / name)
    report = Explorer.for_scenario(scenario, **settings).run()
    assert report.complete
    return {v.invariant for v in report.violations}


def test_a_second_answer_per_user_no_longer_breaks_the_forming_group() -> None:
    """Findings 1 and 2: a Cancel after both Accepts (the draft) disagrees on the outcome
    and keeps the partner trusted; the repaired FSM offers no Cancel there."""
    assert {"agreement_on_the_outcome", "trust_withdrawn"} <= _explore("keysync", "form_group.toml", user_events=2)
    assert _explore("keysync_repaired", "form_group.toml", user_events=2) == set()


def test_a_timeout_withdraws_the_trust_and_only_the_inherent_race_remains() -> None:
    """Finding 3 repaired (trust_withdrawn holds with timeouts); finding 4, a timeout
    racing the last message, remains: it needs no defect, only separate clocks."""
    assert "trust_withdrawn" in _explore("keysync", "form_group.toml", faults="loss", timeouts=1)
    assert _explore("keysync_repaired", "form_group.toml", faults="loss", timeouts=1) == {"agreement_on_the_outcome"}


def test_a_duplicated_request_no_longer_asks_a_user_again() -> None:
    """Finding 10: after a Cancel, a duplicate of the NegotiationRequest still matches the
    Offerer's challenge and opens the negotiation again (the draft)."""
    assert _explore("keysync", "form_group.toml", faults="dup") == {"users_are_asked_once"}


@pytest.mark.parametrize("faults", ["loss", "dup", "reorder", "loss,dup,reorder"])
def test_the_repaired_forming_group_holds_every_invariant_with_one_fault(faults: str) -> None:
    assert _explore("keysync_repaired", "form_group.toml", faults=faults) == set()


# --- the join: the draft's counterexamples of findings 5, 7, 8 and 9, run on both

JOIN = "join_settled_group.toml"
START = ("deliver Beacon to tablet; deliver Beacon to desktop; deliver NegotiationRequestGrouped to desktop; "
         "deliver Beacon to laptop; deliver NegotiationRequestGrouped to desktop; "
         "deliver NegotiationRequestGrouped to laptop; deliver NegotiationRequestGrouped to laptop; "
         "deliver NegotiationRequestGrouped to tablet; deliver NegotiationOpen to laptop; ")
COUNTEREXAMPLES = {
    # 5: the desktop's user cancels; the laptop's stale request opens a second handshake.
    "5": "deliver Beacon to tablet; deliver Beacon to desktop; "
         "deliver NegotiationRequestGrouped to desktop; deliver NegotiationRequestGrouped to tablet; "
         "deliver NegotiationOpen to desktop; deliver GroupHandshake to desktop; "
         "deliver NegotiationOpen to tablet; deliver GroupHandshake to tablet; Cancel on desktop; "
         "deliver Rollback to desktop; deliver Beacon to laptop; "
         "deliver NegotiationRequestGrouped to desktop; deliver NegotiationRequestGrouped to laptop; "
         "deliver NegotiationOpen to laptop; deliver GroupHandshake to laptop; "
         "deliver Rollback to laptop; deliver NegotiationRequestGrouped to laptop; "
         "deliver Rollback to tablet; deliver NegotiationRequestGrouped to tablet; "
         "deliver NegotiationOpen to desktop; deliver NegotiationOpen to laptop; "
         "deliver NegotiationOpen to tablet; Accept on tablet",
    # 7: a second member's request fills the joining device's buffer with its negotiation.
    "7": "deliver Beacon to tablet; deliver Beacon to desktop; "
         "deliver NegotiationRequestGrouped to desktop; deliver NegotiationRequestGrouped to tablet; "
         "deliver NegotiationOpen to desktop; deliver GroupHandshake to desktop; "
         "deliver NegotiationOpen to tablet; deliver GroupHandshake to tablet; Accept on desktop; "
         "deliver GroupTrustThisKey to desktop; deliver CommitAcceptForGroup to desktop; "
         "deliver Beacon to laptop; deliver NegotiationRequestGrouped to desktop; "
         "deliver NegotiationRequestGrouped to laptop; deliver NegotiationOpen to laptop; "
         "deliver GroupHandshake to laptop; deliver GroupTrustThisKey to laptop; "
         "deliver CommitAcceptForGroup to laptop; deliver NegotiationRequestGrouped to laptop; "
         "deliver GroupTrustThisKey to tablet; deliver CommitAcceptForGroup to tablet; "
         "deliver NegotiationRequestGrouped to tablet; Accept on tablet; "
         "deliver CommitAccept to desktop; deliver CommitAccept to laptop; "
         "deliver CommitAccept to tablet",
    # 8: the tablet's CommitReject overtakes the desktop's GroupHandshake at the laptop.
    "8": START + "deliver NegotiationRequestGrouped to tablet; deliver NegotiationOpen to tablet; Reject on tablet; "
         "deliver CommitReject to laptop; deliver CommitReject to tablet; deliver NegotiationOpen to desktop; "
         "deliver GroupHandshake to laptop; deliver GroupHandshake to tablet; deliver CommitReject to desktop; "
         "deliver GroupHandshake to desktop; Accept on laptop",
    # 8, its own GroupHandshake reaching the desktop after the tablet's CommitReject.
    "8 (own)": START + "deliver NegotiationRequestGrouped to tablet; deliver NegotiationOpen to tablet; "
               "Reject on tablet; deliver CommitReject to laptop; deliver CommitReject to tablet; "
               "deliver NegotiationOpen to desktop; deliver GroupHandshake to laptop; "
               "deliver GroupHandshake to tablet; deliver CommitReject to desktop; "
               "deliver GroupHandshake to desktop; Accept on desktop",
    # 9: the desktop's user accepts, the laptop's rejects; the tablet waits for keys.
    "9": START + "deliver NegotiationOpen to desktop; deliver GroupHandshake to laptop; "
         "deliver GroupHandshake to desktop; deliver NegotiationRequestGrouped to tablet; "
         "deliver NegotiationOpen to tablet; deliver GroupHandshake to tablet; Accept on desktop; "
         "deliver GroupTrustThisKey to desktop; deliver CommitAcceptForGroup to desktop; "
         "deliver GroupTrustThisKey to tablet; deliver CommitAcceptForGroup to tablet; Reject on laptop; "
         "deliver CommitReject to desktop; deliver GroupTrustThisKey to laptop; "
         "deliver CommitAcceptForGroup to laptop; deliver CommitReject to laptop; "
         "deliver CommitReject to tablet; Accept on tablet",
}


def _walk(protocol: str, labels: str, *, strict: bool) -> tuple[Explorer, World]:
    """Take the labelled steps (a step the FSM no longer offers is skipped unless
    `strict`), then deliver everything in flight and answer every dialog still open with
    Accept: the end of that run."""
    explorer = Explorer.for_scenario(load_scenario(ROOT / "protocols" / protocol / "scenarios" / JOIN))
    world = explorer.initial()
    for label in labels.split("; "):
        choice = next((c for c in explorer.choices(world) if str(c) == label), None)
        if choice is None:
            assert not strict, f"{protocol}: the counterexample's step {label!r} is not offered"
            continue
        world = explorer.apply(world, choice)
    while True:
        choices = [c for c in explorer.choices(world) if c.kind == "deliver" or c.detail == "Accept"]
        if not choices:
            return explorer, world
        world = explorer.apply(world, choices[0])


def _broken(explorer: Explorer, world: World) -> set[str]:
    checks = [*explorer.safety, *explorer.terminal, *(explorer.quiescent if world.quiet else ())]
    return {i.__name__ for i in checks if i(world) is not None}


@pytest.mark.parametrize("finding", list(COUNTEREXAMPLES))
def test_the_drafts_join_counterexample_no_longer_stalls(finding: str) -> None:
    labels = COUNTEREXAMPLES[finding]
    explorer, world = _walk("keysync", labels, strict=True)
    assert _broken(explorer, world) & {"no_stall", "no_stall_after_acceptance"}, \
        f"finding {finding}: the draft's counterexample no longer stalls the draft"
    explorer, world = _walk("keysync_repaired", labels, strict=False)
    assert _broken(explorer, world) == set()
    assert all(world.state_of(n) in ("Grouped", "Sole", "End") for n in world.parties)


# --- finding 11: a member left trusting the key of a device the user rejected

REJECTED = {
    # The desktop's user accepts and tells the laptop to trust the tablet's key; then the
    # tablet's user rejects: the desktop withdraws its trust, the laptop (Grouped) kept it.
    "after the trust": START + "deliver NegotiationOpen to desktop; deliver GroupHandshake to laptop; "
    "deliver GroupHandshake to desktop; deliver NegotiationRequestGrouped to tablet; "
    "deliver NegotiationOpen to tablet; deliver GroupHandshake to tablet; Accept on desktop; "
    "deliver GroupTrustThisKey to desktop; deliver CommitAcceptForGroup to desktop; "
    "deliver GroupTrustThisKey to laptop; deliver CommitAcceptForGroup to laptop; "
    "deliver GroupTrustThisKey to tablet; deliver CommitAcceptForGroup to tablet; Reject on tablet; "
    "deliver CommitReject to desktop; deliver CommitReject to laptop; deliver CommitReject to tablet",
    # The tablet's user rejects first; the laptop's accepts meanwhile: its own
    # GroupTrustThisKey, back at it after the CommitReject, and at the desktop, already
    # back in Grouped, trusts the rejected key again.
    "before the trust": START + "deliver NegotiationOpen to desktop; deliver GroupHandshake to laptop; "
    "deliver GroupHandshake to desktop; deliver NegotiationRequestGrouped to tablet; "
    "deliver NegotiationOpen to tablet; deliver GroupHandshake to tablet; Reject on tablet; "
    "deliver CommitReject to tablet; deliver CommitReject to desktop; Accept on laptop; "
    "deliver GroupTrustThisKey to desktop; deliver CommitAcceptForGroup to desktop; "
    "deliver CommitReject to laptop; deliver GroupTrustThisKey to laptop; deliver CommitAcceptForGroup to laptop; "
    "deliver GroupTrustThisKey to tablet; deliver CommitAcceptForGroup to tablet",
}


@pytest.mark.parametrize("order", list(REJECTED))
def test_a_rejected_device_is_no_longer_trusted_by_the_group(order: str) -> None:
    """Finding 11 (grouped_devices_trust_their_group): on the draft a member ends Grouped
    trusting the key of the device its user rejected; repaired, no member does."""
    explorer, world = _walk("keysync", REJECTED[order], strict=True)
    assert _broken(explorer, world) == {"grouped_devices_trust_their_group"}
    tablet = world.parties["tablet"].device.keyring.primary
    explorer, world = _walk("keysync_repaired", REJECTED[order], strict=True)
    assert _broken(explorer, world) == set()
    assert world.state_of("tablet") == "End"
    for member in ("laptop", "desktop"):
        assert world.state_of(member) == "Grouped"
        assert tablet not in world.parties[member].device.keyring.trusted
