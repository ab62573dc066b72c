"""Berty's contact request, run: keys that agree, and bad input at every step.

Each step of the handshake is fed, where it is awaited, what a peer or an attacker could
send instead (as Scuttlebutt's handshake tests do): random bytes, a message of the right
shape under a wrong key, a valid box around random bytes, a truncated message, a message
of another step. Each is refused with a clear error and changes nothing: the machine
stays in its state, the device keeps its handshake and its keys.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from nacl.bindings import crypto_secretbox

from fsmc.build import load_scenario, machines
from protocols.berty import crypto
from protocols.berty.device import BertyDevice, ContactState
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation
from runtime.party import Party
from runtime.seeded import SeededRandom
from runtime.transport import Delivery

SCENARIOS = ROOT / "protocols" / "berty" / "scenarios"
ACCEPTED = SCENARIOS / "contact_accepted.toml"


def simulation(path: Path = ACCEPTED) -> Simulation:
    sim = Simulation(load_scenario(path))
    sim.step({"start": True})
    return sim


def until(sim: Simulation, party: str, state: str) -> None:
    """Deliver in channel order until `party` is in `state`."""
    if sim.parties["alice"].machine.state_name == "Idle":
        sim.step({"party": "alice", "event": "SendContactRequest"})
    while sim.parties[party].machine.state_name != state:
        d = sim.network.next()
        assert d is not None, f"{party} never reached {state}"
        sim.parties[d.receiver].deliver(d)


def compared(record: ContactState) -> ContactState:
    """What tells states apart: not the message handled, its sender, the notes."""
    return dataclasses.replace(record, message=None, sender=None, rejected=())


def inject(sim: Simulation, to: str, data: bytes, sender: str = "mallory") -> list[Any]:
    """Hand `to` bytes as if `sender` had sent them; the trace entries it wrote."""
    party = sim.parties[to]
    start = len(sim.trace)
    party.deliver(Delivery(10_000, "channel", sender, to, data))
    return sim.trace[start:]


def message(party: Party, name: str, **fields: Any) -> bytes:
    """`name` encoded and sealed as `party`'s peer would send it, fields as given."""
    cls = next(c for c in party.machine.MESSAGES.values() if name == c.NAME)
    data = party.codec.encode(cls(**fields))
    return party.device.seal(cls, data, party.device.capture(cls))  # type: ignore[attr-defined]


def sealed_by(sim: Simulation, sender: str, name: str, **fields: Any) -> bytes:
    """`name` as `sender` seals it (the plain envelope names the sender)."""
    return message(sim.parties[sender], name, **fields)


@dataclasses.dataclass
class Case:
    """A party awaiting a step, and what it is sent instead."""

    party: str
    state: str
    sender: str  # who is named in the envelope: the stream's other end


def _unchanged(sim: Simulation, case: Case, data: bytes) -> list[Any]:
    party = sim.parties[case.party]
    before = compared(party.device.snapshot()), party.machine.state_name  # type: ignore[arg-type]
    entries = inject(sim, case.party, data, case.sender)
    after = compared(party.device.snapshot()), party.machine.state_name  # type: ignore[arg-type]
    assert after == before, f"{case.party} changed on bad input: {entries}"
    return entries


STEPS = {
    "RequesterHello": Case("bob", "Listening", "alice"),
    "ResponderHello": Case("alice", "Greeting", "bob"),
    "RequesterAuthenticate": Case("bob", "Answering", "alice"),
    "ResponderAccept": Case("alice", "Authenticating", "bob"),
    "RequesterAcknowledge": Case("bob", "Accepting", "alice"),
}


def reached(step: str) -> tuple[Simulation, Case]:
    case = STEPS[step]
    sim = simulation()
    if case.state != "Listening":
        until(sim, case.party, case.state)
    return sim, case


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_at_every_step_are_dropped(step: str, seed: int) -> None:
    sim, case = reached(step)
    data = random.Random(seed).randbytes(random.Random(seed).randrange(1, 200))
    entries = _unchanged(sim, case, data)
    assert entries[0].kind == "drop" and entries[0].code in ("envelope", "decode"), entries


@pytest.mark.parametrize("step", list(STEPS))
def test_a_truncated_message_at_every_step_is_dropped(step: str) -> None:
    sim, case = reached(step)
    whole = _valid(sim, step, case)
    for cut in (1, len(whole) // 2, len(whole) - 1):
        entries = _unchanged(sim, case, whole[:cut])
        assert entries and entries[0].kind == "drop", (cut, entries)


def _valid(sim: Simulation, step: str, case: Case) -> bytes:
    """A message of the step's shape that the receiver would take (from its peer)."""
    key = crypto.EphemeralKeyPair.from_private(bytes(range(1, 33))).public
    fields: dict[str, Any] = {"ephemeral": key} if "Hello" in step else (
        {"success": True} if step == "RequesterAcknowledge" else {"box": bytes(96)})
    return sealed_by(sim, case.sender, step, **fields)


@pytest.mark.parametrize("step", ["RequesterAuthenticate", "ResponderAccept"])
def test_a_box_under_a_wrong_key_is_rejected_with_its_step(step: str) -> None:
    sim, case = reached(step)
    hs = sim.parties[case.party].device.handshake  # type: ignore[attr-defined]
    stranger = crypto.Ed25519KeyPair.from_seed(bytes(32))
    box = (crypto.seal_requester_authenticate(stranger, hs.ab, bytes(32)) if step == "RequesterAuthenticate"
           else crypto.seal_responder_accept(stranger, hs.ab, bytes(32)))
    _unchanged(sim, case, sealed_by(sim, case.sender, step, box=box))
    rejected = sim.parties[case.party].device.rejected  # type: ignore[attr-defined]
    assert rejected and rejected[-1].startswith(("3. Requester Authenticate", "4. Responder Accept"))
    assert "does not open" in rejected[-1]


@pytest.mark.parametrize("step", ["RequesterAuthenticate", "ResponderAccept"])
def test_a_valid_box_around_random_bytes_is_rejected(step: str) -> None:
    """The right key, the right nonce, and a plaintext that is no payload of the step."""
    sim, case = reached(step)
    device = sim.parties[case.party].device
    hs = device.handshake  # type: ignore[attr-defined]
    if step == "RequesterAuthenticate":
        key, nonce = crypto.authenticate_box_key(hs.ab, hs.a_b), crypto.NONCE_REQUESTER_AUTHENTICATE
    else:
        key = crypto.accept_box_key(hs.ab, crypto.account_shared_secret(device.account, hs.peer_account))  # type: ignore[attr-defined]
        nonce = crypto.NONCE_RESPONDER_ACCEPT
    box = bytes(crypto_secretbox(random.Random(7).randbytes(80), nonce, key))
    _unchanged(sim, case, sealed_by(sim, case.sender, step, box=box))
    assert device.rejected, "the box opened, so its payload must have been refused"  # type: ignore[attr-defined]


def test_a_signature_by_another_account_is_rejected() -> None:
    """Step 4 boxed under the right key but signed by another account: Alice expected Bob."""
    sim, case = reached("ResponderAccept")
    alice = sim.parties["alice"].device
    hs = alice.handshake  # type: ignore[attr-defined]
    key = crypto.accept_box_key(hs.ab, crypto.account_shared_secret(alice.account, hs.peer_account))  # type: ignore[attr-defined]
    other = crypto.Ed25519KeyPair.from_seed(bytes([5]) * 32)
    _unchanged(sim, case, sealed_by(sim, "bob", "ResponderAccept", box=crypto.seal_responder_accept(other, hs.ab, key)))
    assert "signature" in alice.rejected[-1]  # type: ignore[attr-defined]


@pytest.mark.parametrize("step", list(STEPS))
def test_a_message_of_another_step_changes_nothing(step: str) -> None:
    sim, case = reached(step)
    for other in STEPS:
        if other != step:
            entries = _unchanged(sim, case, _valid(sim, other, case))
            assert any(e.kind in ("ignored", "drop") for e in entries), (other, entries)


@pytest.mark.parametrize("step", ["RequesterHello", "ResponderHello"])
def test_a_low_order_ephemeral_key_is_refused_before_any_handler(step: str) -> None:
    sim, case = reached(step)
    entries = _unchanged(sim, case, sealed_by(sim, case.sender, step, ephemeral=bytes(32)))
    assert entries[0].kind == "drop" and entries[0].code == "refused" and "low-order" in entries[0].detail


def test_a_step_from_someone_else_than_the_stream_peer_is_ignored() -> None:
    """Bob's answer to Alice's step 3 comes from the party Bob answered, and from no one
    else: Mallory's copy of a valid box is not Alice's."""
    sim, case = reached("RequesterAuthenticate")
    alice = sim.parties["alice"].device
    bob = sim.parties["bob"].device
    hs = bob.handshake  # type: ignore[attr-defined]
    box = crypto.seal_requester_authenticate(alice.account, hs.ab, crypto.authenticate_box_key(hs.ab, hs.a_b))  # type: ignore[attr-defined]
    _unchanged(sim, Case("bob", "Answering", "mallory"), sealed_by(sim, "alice", "RequesterAuthenticate", box=box)
               .replace(b"\x05alice", b"\x07mallory", 1))


# --- what the handshake establishes


def test_both_sides_hold_the_same_contact_group_and_the_same_a_b() -> None:
    result = Simulation(load_scenario(ACCEPTED)).run()
    assert result.failures == []
    sim = Simulation(load_scenario(ACCEPTED))
    sim.run()
    alice, bob = sim.parties["alice"].device, sim.parties["bob"].device
    assert isinstance(alice, BertyDevice) and isinstance(bob, BertyDevice)
    (role_a, peer_a, ab_a), = alice.sessions
    (answered, _, ab_answered), (role_b, peer_b, ab_b) = bob.sessions
    assert answered == "answered" and ab_answered == ab_b
    assert (role_a, role_b) == ("requester", "responder")
    assert (peer_a, peer_b) == (bob.account.public, alice.account.public) and ab_a == ab_b
    group = crypto.contact_group(alice.account, bob.account.public)
    assert alice.sent == ((bob.account.public, group.public_key),)
    assert bob.contacts == ((alice.account.public, group.public_key),)
    assert alice.handshake is None and bob.handshake is None  # the ephemeral keys are gone


def test_a_responder_listens_on_its_point_and_moves_when_it_renews_its_seed() -> None:
    sim = simulation()
    bob = sim.parties["bob"]
    old = bob.device.own_point()  # type: ignore[attr-defined]
    assert bob.listening == frozenset({old}) and sim.network.listeners(old) == ("bob",)
    sim.step({"party": "bob", "event": "RenewSeed"})
    new = bob.device.own_point()  # type: ignore[attr-defined]
    assert new != old and sim.network.listeners(old) == () and sim.network.listeners(new) == ("bob",)


def test_the_point_is_weshnets_for_the_account_and_seed() -> None:
    device = BertyDevice("bob", crypto.Ed25519KeyPair.from_seed(bytes(32)), responds=True,
                         rng=SeededRandom(1))
    device.seed = bytes([1]) * 32
    point = crypto.contact_request_rendezvous(device.account.public, device.seed, device.now()).rotation
    assert device.own_point() == "rv:" + crypto.rotation_topic(point)


# --- the attacks, explored


@pytest.mark.parametrize(("scenario", "settings"), [
    ("impostor_answers.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
    ("stranger_requests.toml", {"faults": "replay"}),
    ("man_in_the_middle.toml", {"faults": "replay"}),
    ("contact_accepted.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
])
def test_every_attack_is_explored_completely_and_breaks_nothing(scenario: str, settings: dict[str, Any]) -> None:
    report = Explorer.for_scenario(load_scenario(SCENARIOS / scenario), **settings).run()
    assert report.complete and report.violations == []
    assert report.states > 300  # the faults and the attacker's choices were explored, not skipped


def test_a_replayed_hello_starts_a_handshake_that_goes_nowhere() -> None:
    """Finding 1 (README): step 1 carries nothing a Responder can check, so a replayed
    RequesterHello starts a handshake. Without the exemption the explorer says so; the
    handshake it starts never completes (authentication holds throughout)."""
    scenario = load_scenario(SCENARIOS / "impostor_answers.toml")
    strict = dataclasses.replace(scenario.protocol.invariants, replayable=())
    report = Explorer.for_scenario(scenario, invariants=strict).run()
    (violation,) = report.violations
    assert violation.invariant == "replays_change_nothing" and "replayed RequesterHello" in violation.message
    assert violation.path[-1].kind == "replay"


# --- deliberate bugs the explorer catches


BERTY_MUTANTS = {
    # The Requester takes any ResponderAccept: Bob's Accept of Trudy's handshake, forwarded
    # to Alice while she waits on Mallory, completes a handshake whose a.b Bob never signed.
    "requester skips step 4's check": ("                if responderAuthentic {\n",
                                       "                if true_ {\n", "man_in_the_middle.toml"),
    # The Responder forgets whom it blocked.
    "responder records a blocked account": ("                    if requesterBlocked {\n",
                                            "                    if neverBlocked {\n", "requester_blocked.toml"),
}


def berty_mutant(tmp_path: Path, old: str, new: str) -> Any:
    folder = ROOT / "protocols" / "berty"
    source = (folder / "berty.fsm").read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    (tmp_path / "berty.fsm").write_text(source.replace(old, new), encoding="utf-8")
    shutil.copy(folder / "BertyTypes.asn1", tmp_path)
    return machines(tmp_path / "berty.fsm")


@pytest.mark.parametrize("bug", sorted(BERTY_MUTANTS))
def test_the_explorer_catches_a_broken_contact_request(bug: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    old, new, name = BERTY_MUTANTS[bug]
    scenario = load_scenario(SCENARIOS / name)
    settings: dict[str, Any] = {"faults": "replay"} if name == "man_in_the_middle.toml" else \
        {"faults": "replay", "timeouts": 1}
    assert Explorer.for_scenario(scenario, **settings).run().violations == []
    monkeypatch.setattr(BertyDevice, "true_", lambda self: True, raising=False)
    monkeypatch.setattr(BertyDevice, "neverBlocked", lambda self: False, raising=False)
    broken = dataclasses.replace(scenario, machines=berty_mutant(tmp_path, old, new))
    report = Explorer.for_scenario(broken, **settings).run()
    assert {v.invariant for v in report.violations} & {"authentication", "blocked_stay_out"}, report.violations
