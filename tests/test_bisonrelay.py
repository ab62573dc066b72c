"""BisonRelay's P2P key exchange (protocols/bisonrelay/): what the registry-driven tests
(tests/test_protocols.py) do not cover. Both ends hold one ratchet after a KX and after a
reset, a new one each time; every message refuses bad input (random bytes, a blob under
another key, random plaintext, a truncated blob, a message of another step) with a drop
the trace names, changing nothing; scenario tables that make no sense are refused; and
the explorer finds BR's crossing resets (README.md, finding 1), which a tie-break fixes."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from conftest import ROOT

from fsmc.build import load_scenario, machines
from protocols.bisonrelay import PROTOCOL, kx
from protocols.bisonrelay.device import BisonRelayDevice, Peer, seeds_match
from protocols.bisonrelay.invariants import agreement
from protocols.bisonrelay.ratchet import Ratchet
from runtime.errors import RemoteError, ScenarioError, VerificationError
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Scenario, Simulation
from runtime.party import Party
from runtime.transport import Delivery

FOLDER = ROOT / "protocols" / "bisonrelay"
SCENARIOS = {path.stem: path for path in PROTOCOL.scenarios}


def _scenario(name: str) -> Scenario:
    return load_scenario(SCENARIOS[name])


def _device(sim: Simulation, name: str) -> BisonRelayDevice:
    return cast(BisonRelayDevice, sim.parties[name].device)


def _ratchets(sim: Simulation, a: str, b: str) -> tuple[kx.RatchetSeed, kx.RatchetSeed]:
    da, db = _device(sim, a), _device(sim, b)
    pa, pb = da.peer(db.id), db.peer(da.id)
    assert pa is not None and pb is not None
    return pa.seed, pb.seed


def test_the_protocol_has_its_scenarios() -> None:
    assert {"accepted_invite", "invite_never_accepted", "reset_by_inviter", "reset_by_acceptor", "reset_impostor",
            "mediated_autokx", "attacker_answers_invite", "replayed_kx", "eavesdropper"} <= set(SCENARIOS)


def test_a_kx_error_is_a_remote_error_and_still_a_value_error() -> None:
    e = kx.KXError("secretbox", "does not open")
    assert isinstance(e, VerificationError) and isinstance(e, RemoteError) and isinstance(e, ValueError)
    assert e.code == "kx" and e.what == "secretbox"


# --- one ratchet, on both sides, new after a reset


def test_both_ends_hold_one_ratchet_after_the_kx_and_a_new_one_after_a_reset() -> None:
    scenario = _scenario("reset_by_acceptor")
    sim = Simulation(scenario)
    for step in scenario.steps[:3]:  # start, Bob accepts, deliver
        sim.step(step)
    first_alice, first_bob = _ratchets(sim, "alice", "bob")
    assert seeds_match(first_alice, first_bob)
    assert first_bob.alice and not first_alice.alice  # the acceptor is alice
    assert first_alice.root_key == first_bob.root_key
    assert first_alice.send_header_key == first_bob.recv_header_key != bytes(32)
    assert first_alice.send_chain_key == first_bob.recv_chain_key != bytes(32)
    for step in scenario.steps[3:]:  # Bob resets, deliver
        sim.step(step)
    new_alice, new_bob = _ratchets(sim, "alice", "bob")
    assert seeds_match(new_alice, new_bob)
    assert new_alice.alice and not new_bob.alice  # Bob asked for the reset: he is the inviter now
    assert new_alice.root_key != first_alice.root_key and new_bob.root_key != first_bob.root_key
    assert {new_alice.my_half, new_alice.their_half}.isdisjoint({first_alice.my_half, first_alice.their_half})
    # The reset RVs are new ones, and each side sends where the other listens.
    da, db = _device(sim, "alice"), _device(sim, "bob")
    pa, pb = da.peer(db.id), db.peer(da.id)
    assert pa is not None and pb is not None
    assert pa.their_reset_rendezvous == pb.my_reset_rendezvous and pb.their_reset_rendezvous == pa.my_reset_rendezvous
    assert pa.send_rendezvous() == pb.recv_rendezvous()[0] and pb.send_rendezvous() == pa.recv_rendezvous()[0]


def test_a_reset_of_a_ratchet_known_before_the_scenario_renews_it() -> None:
    scenario = _scenario("reset_by_inviter")
    sim = Simulation(scenario)
    sim.step(scenario.steps[0])
    before = _ratchets(sim, "alice", "bob")
    assert seeds_match(*before)
    for step in scenario.steps[1:]:
        sim.step(step)
    after = _ratchets(sim, "alice", "bob")
    assert seeds_match(*after)
    assert {s.root_key for s in after}.isdisjoint({s.root_key for s in before})


def test_the_first_answer_to_a_manual_invite_wins() -> None:
    """Whoever answers an invite first is the inviter's contact (a bearer token); the other
    answer reaches an RV the inviter left."""
    scenario = _scenario("attacker_answers_invite")
    bob_first = dataclasses.replace(scenario, steps=[scenario.steps[i] for i in (0, 2, 1, 3, 4)], expect={})
    sim = Simulation(bob_first)
    sim.run()
    alice = _device(sim, "alice")
    assert [alice.who(c.peer) for c in alice.completed] == ["bob"]
    assert [e.code for e in sim.trace if e.party == "alice" and e.kind == "drop"] == ["rendezvous"]
    assert _device(sim, "mallory").completed == ()


# --- bad input, for every message: dropped with a code, nothing changes


def _ready(name: str, steps: int) -> Simulation:
    scenario = _scenario(name)
    sim = Simulation(scenario)
    for step in scenario.steps[:steps]:
        sim.step(step)
    return sim


def _message(sim: Simulation, name: str, **fields: Any) -> bytes:
    m = sim.scenario.machines
    encoded: bytes = m.CODEC.encode(getattr(m, name)(**fields))
    return encoded


def _wire_identity(sim: Simulation, p: kx.PublicIdentity) -> Any:
    return sim.scenario.machines.PublicIdentity(name=p.name, nick=p.nick, sigKey=p.sig_key, key=p.key,
                                                identity=p.identity, digest=p.digest, signature=p.signature,
                                                avatar=p.avatar)


def _wire_half(sim: Simulation, k: kx.KeyExchange) -> Any:
    return sim.scenario.machines.KeyExchange(public=k.public, cipher=k.cipher)


def _half_kx(sim: Simulation, sender: str, receiver: str) -> bytes:
    """A genuine RMOHalfKX from `sender` to `receiver`'s invite."""
    s, r = _device(sim, sender), _device(sim, receiver)
    assert r.inviting is not None
    invite = kx.OOBPublicIdentityInvite(public=r.public, initial_rendezvous=r.inviting.pending.initial_rendezvous,
                                        reset_rendezvous=r.inviting.pending.my_reset_rendezvous)
    _, half = kx.accept_invite(s.identity, invite, os.urandom)
    return _message(sim, "RMOHalfKX", public=_wire_identity(sim, half.public), halfKX=_wire_half(sim, half.half_kx),
                    initialRendezvous=half.initial_rendezvous, resetRendezvous=half.reset_rendezvous)


def _full_kx(sim: Simulation, receiver: str) -> bytes:
    """A genuine RMOFullKX half to `receiver`."""
    _, half = kx.fill_key_exchange(_device(sim, receiver).public.key, os.urandom)
    return _message(sim, "RMOFullKX", fullKX=_wire_half(sim, half))


def _reset_invite(sim: Simulation, sender: str) -> bytes:
    _, invite = kx.create_invite(_device(sim, sender).public, os.urandom)
    return _message(sim, "OOBPublicIdentityInvite", public=_wire_identity(sim, invite.public),
                    initialRendezvous=invite.initial_rendezvous, resetRendezvous=invite.reset_rendezvous)


def _relay(sim: Simulation, name: str, who: str) -> bytes:
    d = _device(sim, who)
    fields: dict[str, Callable[[], dict[str, Any]]] = {
        "RMMediateIdentity": lambda: {"identity": d.id},
        "RMInvite": lambda: {"invitee": _wire_identity(sim, d.public)},
        "RMTransitiveMessage": lambda: {"forIdentity": d.id, "cipherText": bytes(1047), "box": bytes(64)},
        "RMTransitiveMessageFwd": lambda: {"fromIdentity": d.id, "cipherText": bytes(1047), "box": bytes(64)},
    }
    return _message(sim, name, **fields[name]())


# (scenario, steps run, receiver, the step its RV is for, the message expected there, a
# genuine encoding of it, a message of another step)
CASES: dict[str, tuple[str, int, str, str, Callable[[Simulation], bytes], Callable[[Simulation], bytes]]] = {
    "RMOHalfKX": ("accepted_invite", 1, "alice", "initial", lambda s: _half_kx(s, "bob", "alice"),
                  lambda s: _full_kx(s, "alice")),
    "RMOFullKX": ("accepted_invite", 2, "bob", "step3", lambda s: _full_kx(s, "bob"),
                  lambda s: _reset_invite(s, "alice")),
    "OOBPublicIdentityInvite": ("reset_by_inviter", 1, "bob", "reset", lambda s: _reset_invite(s, "alice"),
                                lambda s: _full_kx(s, "bob")),
    "RMMediateIdentity": ("mediated_autokx", 1, "carol", "ratchet", lambda s: _relay(s, "RMMediateIdentity", "bob"),
                          lambda s: _full_kx(s, "carol")),
    "RMInvite": ("mediated_autokx", 1, "bob", "ratchet", lambda s: _relay(s, "RMInvite", "alice"),
                 lambda s: _reset_invite(s, "carol")),
    "RMTransitiveMessage": ("mediated_autokx", 1, "carol", "ratchet",
                            lambda s: _relay(s, "RMTransitiveMessage", "alice"), lambda s: _full_kx(s, "carol")),
    "RMTransitiveMessageFwd": ("mediated_autokx", 2, "alice", "ratchet",
                               lambda s: _relay(s, "RMTransitiveMessageFwd", "bob"), lambda s: _full_kx(s, "alice")),
}


def _rv(device: BisonRelayDevice, step: str) -> bytes:
    found = [a.rv for a in device._rendezvous().values() if a.step == step]
    assert found, f"{device.name} listens at no {step} RV"
    return found[0]


def _seal(sim: Any, device: BisonRelayDevice, rv: bytes, data: bytes) -> bytes:
    """`data` as its sender would post it at `rv`: sealed to the receiver's key, or at a ratchet
    RV encrypted by the sender's ratchet with the receiver (its state left as it was)."""
    arrival = device._rendezvous()[rv]
    if arrival.step != "ratchet":
        return kx.seal(data, device.public.key, os.urandom)
    sender = next(p.device for p in sim.parties.values() if p.device.id == arrival.peer)
    entry = sender.peer(device.id)
    assert entry is not None
    return Ratchet.restore(entry.ratchet, random=os.urandom).encrypt(data)


def _deliver(party: Party, data: bytes) -> Any:
    """Deliver `data`; the trace entry it made, with what changed (machine state, buffer,
    device record) checked to be nothing."""
    before = (party.machine.state_name, repr(party.machine.buffer), party.device.snapshot())
    length = len(party.trace)
    party.deliver(Delivery(999, "channel", "mallory", party.name, data))
    assert (party.machine.state_name, repr(party.machine.buffer), party.device.snapshot()) == before
    entries = [e for e in party.trace[length:] if e.party == party.name]
    assert len(entries) == 1 and entries[0].kind == "drop", entries
    return entries[0]


@pytest.mark.parametrize("message", sorted(CASES))
def test_bad_input_for_every_message_is_dropped_and_changes_nothing(message: str) -> None:
    name, steps, receiver, step, genuine, other_step = CASES[message]
    sim = _ready(name, steps)
    party = sim.parties[receiver]
    device = _device(sim, receiver)
    rv = _rv(device, step)
    stranger = kx.new_identity("Stranger", "stranger", os.urandom)
    encoded = genuine(sim)
    sealed = _seal(sim, device, rv, encoded)
    fails = "ratchet" if step == "ratchet" else "kx"  # a ratchet message that does not decrypt
    bad = {
        "random bytes": (os.urandom(len(sealed) + kx.RV_SIZE), "rendezvous"),
        "random bytes at the RV": (rv + os.urandom(len(sealed)), fails),
        "a blob under another key": (rv + kx.seal(encoded, stranger.public.key, os.urandom), fails),
        "a valid blob of random plaintext": (rv + _seal(sim, device, rv, os.urandom(200)), "decode"),
        "a truncated blob": (rv + sealed[: len(sealed) - 40], fails),
        "a blob cut inside the ciphertext": (rv + sealed[:500] if step != "ratchet" else rv + sealed[:50], fails),
        "a blob with a flipped octet": (rv + sealed[:-1] + bytes([sealed[-1] ^ 1]), fails),
        "a message of another step": (rv + _seal(sim, device, rv, other_step(sim)), "refused"),
        "the message at another RV": (os.urandom(kx.RV_SIZE) + sealed, "rendezvous"),
        "no RV at all": (b"\x01" * 5, "envelope"),
    }
    for what, (data, code) in bad.items():
        entry = _deliver(party, data)
        assert entry.code == code, f"{message}, {what}: {entry.detail}"
        assert entry.detail, what


def test_messages_that_open_but_fail_the_kx_checks_are_refused() -> None:
    """A half KX whose halves do not complete, one from ourselves, a reset invite from an
    identity not the known one, a forwarded invite that does not open: refused by `admit`."""
    sim = _ready("accepted_invite", 1)
    alice = sim.parties["alice"]
    device = _device(sim, "alice")
    rv = _rv(device, "initial")
    bob = _device(sim, "bob")
    _, half = kx.accept_invite(bob.identity, bob.invite, os.urandom)  # type: ignore[arg-type]
    broken = kx.KeyExchange(public=bytes(72), cipher=half.half_kx.cipher)  # the X25519 key does not open
    for public, half_kx, reason in [(bob.public, broken, "secretbox"), (device.public, half.half_kx, "self-kx")]:
        data = _message(sim, "RMOHalfKX", public=_wire_identity(sim, public), halfKX=_wire_half(sim, half_kx),
                        initialRendezvous=half.initial_rendezvous, resetRendezvous=half.reset_rendezvous)
        entry = _deliver(alice, rv + kx.seal(data, device.public.key, os.urandom))
        assert entry.code == "refused" and reason in entry.detail
    # A reset invite with another identity, at Bob's reset RV for Alice.
    sim = _ready("reset_by_inviter", 1)
    bob_party, bob_device = sim.parties["bob"], _device(sim, "bob")
    entry = _deliver(bob_party, _rv(bob_device, "reset") + kx.seal(_reset_invite(sim, "bob"), bob_device.public.key,
                                                                   os.urandom))
    assert entry.code == "refused" and "reset-identity" in entry.detail
    # A forwarded transitive invite whose box does not open.
    sim = _ready("mediated_autokx", 2)
    alice, device = sim.parties["alice"], _device(sim, "alice")
    rv = _rv(device, "ratchet")
    entry = _deliver(alice, rv + _seal(sim, device, rv, _relay(sim, "RMTransitiveMessageFwd", "bob")))
    assert entry.code == "refused" and "decapsulation" in entry.detail


def test_a_genuine_message_at_its_rv_is_taken() -> None:
    """The control for the cases above: the genuine encoding, sealed to the receiver at its
    RV, is received (not dropped)."""
    sim = _ready("accepted_invite", 1)
    alice, device = sim.parties["alice"], _device(sim, "alice")
    length = len(alice.trace)
    data = _rv(device, "initial") + kx.seal(_half_kx(sim, "bob", "alice"), device.public.key, os.urandom)
    alice.deliver(Delivery(999, "channel", "bob", "alice", data))
    kinds = [e.kind for e in alice.trace[length:] if e.party == "alice"]
    assert "receive" in kinds and "drop" not in kinds
    assert alice.machine.state_name == "Ready" and len(device.completed) == 1


# --- scenario tables


BASE = [{"name": "alice"}, {"name": "bob", "invite_from": "alice"}, {"name": "carol", "knows": ["alice"]}]


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "bob", "color": "red"}, "unknown keys color"),
    ({"name": "bob", "invite_from": "bob"}, "invite_from = 'bob' is no other party"),
    ({"name": "bob", "invite_from": "zed"}, "invite_from = 'zed' is no other party"),
    ({"name": "bob", "knows": "zed"}, "knows = 'zed' must name other parties"),
    ({"name": "bob", "knows": [1]}, "knows = \\[1\\] must name other parties"),
    ({"name": "bob", "mediator": "carol"}, "mediator and target go together"),
    ({"name": "bob", "mediator": "carol", "target": "alice"}, "does not know carol"),
    ({"name": "carol", "knows": ["alice", "bob"], "mediator": "bob", "target": "alice"}, "already knows its target"),
    ({"name": "bob", "reset_with": "alice"}, "holds no ratchet with"),
    ({"name": "bob", "listens_on": "alice"}, "is for an attacker"),
    ({"name": "bob", "attacker": True, "impersonates": "carol"}, "impersonates needs reset_with"),
    ({"name": "carol", "attacker": True, "impersonates": "alice", "reset_with": "bob"},
     "bob holds no ratchet with alice"),
])
def test_tables_that_make_no_sense_are_refused(change: dict[str, Any], message: str) -> None:
    parties = [change if spec["name"] == change["name"] else spec for spec in BASE]
    with pytest.raises(ScenarioError, match=message):
        PROTOCOL.make_devices(parties, random.Random(1))


def test_known_users_hold_one_ratchet_before_the_scenario() -> None:
    devices = PROTOCOL.make_devices(BASE, random.Random(1))
    alice, carol = devices["alice"], devices["carol"]
    pa, pc = alice.peer(carol.id), carol.peer(alice.id)
    assert isinstance(pa, Peer) and isinstance(pc, Peer) and seeds_match(pa.seed, pc.seed)
    assert devices["bob"].invite == alice.made and alice.inviting is not None


# --- finding 1: crossing resets


def _both_reset() -> Scenario:
    """reset_by_inviter explored from the start: both users may ask for a reset."""
    scenario = _scenario("reset_by_inviter")
    return dataclasses.replace(scenario, explore={"user_events": 1})


def test_two_resets_at_once_can_leave_each_user_with_another_ratchet() -> None:
    """BR runs both KXs of two crossing resets, and each user keeps the ratchet that
    completed last: without any fault, they may differ (README.md, finding 1)."""
    explorer = Explorer.for_scenario(_both_reset())
    report = explorer.run()
    assert report.complete
    assert [v.invariant for v in report.violations] == ["agreement"]
    path = report.violations[0].path
    assert {c.kind for c in path} <= {"deliver", "event"} and len(path) == 8
    assert [c.detail for c in path if c.kind == "event"] == ["ResetRatchet", "ResetRatchet"]
    world = explorer.replay(path)
    assert agreement(world) is not None
    alice, bob = (cast(BisonRelayDevice, world.parties[n].device) for n in ("alice", "bob"))
    pa, pb = alice.peer(bob.id), bob.peer(alice.id)
    assert pa is not None and pb is not None and not seeds_match(pa.seed, pb.seed)
    # Their reset RVs no longer meet either: a reset cannot repair it.
    assert pa.their_reset_rendezvous != pb.my_reset_rendezvous


CROSSING = """            on OOBPublicIdentityInvite {
                do acceptResetInvite;
                send RMOHalfKX to inviterRV;
                go Crossing;
            }"""
TIE_BREAK = """            on OOBPublicIdentityInvite {
                if crossingYields {
                    debug > our reset invite goes on, the other side accepts it
                } else {
                    if crossingReset {
                        do abandonInvite;
                        do acceptResetInvite;
                        send RMOHalfKX to inviterRV;
                        go AwaitingFullKX;
                    }
                    do acceptResetInvite;
                    send RMOHalfKX to inviterRV;
                    go Crossing;
                }
            }"""


def test_the_auto_kx_tie_break_applied_to_resets_fixes_it(tmp_path: Path) -> None:
    """kx.autokx_yields for crossing resets of one pair: the side whose incoming invite has
    the smaller initial RV ignores it, the other gives up its own and accepts: one KX runs."""
    source = (FOLDER / "bisonrelay.fsm").read_text()
    assert source.count(CROSSING) == 1
    (tmp_path / "bisonrelay.fsm").write_text(source.replace(CROSSING, TIE_BREAK))
    shutil.copy(FOLDER / "BRTypes.asn1", tmp_path / "BRTypes.asn1")
    module = machines(tmp_path / "bisonrelay.fsm")
    fixed = dataclasses.replace(_both_reset(), machines=module)
    report = Explorer.for_scenario(fixed, timeouts=1).run()
    assert report.complete and report.violations == []
    assert report.quiet_states > 0
    # And the one-sided reset still runs as before.
    result = Simulation(dataclasses.replace(_scenario("reset_by_inviter"), machines=module)).run()
    assert result.ok, result.failures


# --- finding 2: an answer to a manual invite claiming a known user's id


def test_an_answer_claiming_a_known_users_id_takes_over_its_ratchet_unless_the_identity_is_checked() -> None:
    """BR's inviter does not check the identity in an RMOHalfKX (handleStep2IDKX): an answer
    with Alice's id and Oscar's keys replaces Bob's ratchet with Alice by one with Oscar
    (README.md, finding 2). The scenario checks the identity (`verifies_identities`) and
    holds; as BR runs it, the explorer finds the takeover."""
    scenario = _scenario("attacker_claims_identity")
    assert Explorer.for_scenario(scenario).run().violations == []
    as_br = [{k: v for k, v in spec.items() if k != "verifies_identities"} for spec in scenario.parties]
    explorer = Explorer.for_scenario(dataclasses.replace(scenario, parties=as_br))
    report = explorer.run()
    assert {v.invariant for v in report.violations} == {"authentication", "secrecy", "agreement"}
    secrecy = next(v for v in report.violations if v.invariant == "secrecy")
    assert [str(c) for c in secrecy.path] == ["deliver RMOHalfKX to bob", "deliver RMOFullKX to oscar"]
    world = explorer.replay(secrecy.path)
    alice, bob, oscar = (cast(BisonRelayDevice, world.parties[n].device) for n in ("alice", "bob", "oscar"))
    taken = bob.peer(alice.id)  # Bob's entry for Alice's id ...
    assert taken is not None and taken.public.key == oscar.public.key  # ... now holds Oscar's key
    held = oscar.peer(bob.id)
    assert held is not None and seeds_match(taken.seed, held.seed)  # and a ratchet with Oscar
