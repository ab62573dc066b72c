"""Status's 1:1 protocol (protocols/status/): what the registry-driven tests
(tests/test_protocols.py) do not cover. Every scenario's exploration holds under its own
`[explore]` settings; bad input at every message (random bytes, an envelope under another
key, a truncated or altered message, a message of the other type) is dropped with a code
and changes nothing; concurrent sessions converge, also when a prekey rotation crosses
them (README.md, finding 3); a message fans out to exactly the enabled installations, at
most 3 per identity, the user's unapproved own installations left out; a replay changes
nothing; the old phone of an account recovery is stale after 7 days."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, cast

import pytest

from fsmc.build import load_scenario
from protocols.status import PROTOCOL, device
from protocols.status import crypto as sc
from protocols.status.device import StatusDevice, _sign
from protocols.status.invariants import sessions_converge
from runtime.errors import ScenarioError
from runtime.harness.explore import Choice, Explorer
from runtime.harness.simulation import Scenario, Simulation
from runtime.party import Party
from runtime.transport import Delivery

SCENARIOS = {path.stem: path for path in PROTOCOL.scenarios}
ENVELOPE = sc.PUBLIC_KEY_SIZE + sc.SIGNATURE_SIZE


def _scenario(name: str) -> Scenario:
    return load_scenario(SCENARIOS[name])


def _ready(name: str, steps: int) -> Simulation:
    scenario = _scenario(name)
    sim = Simulation(scenario)
    for step in scenario.steps[:steps]:
        sim.step(step)
    return sim


def _device(sim: Simulation, name: str) -> StatusDevice:
    return cast(StatusDevice, sim.parties[name].device)


def _received(device: StatusDevice) -> list[str]:
    return [pt.decode().split(":", 1)[1] for _, _, pt in device.received]


def test_the_protocol_has_its_scenarios() -> None:
    assert set(SCENARIOS) == {"first_message", "lost_message", "out_of_order", "paired_device", "partitioned_device",
                              "recovery", "replay", "rotation_rekeying", "simultaneous_sessions", "expired_session"}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_explores_completely_without_violation(name: str) -> None:
    report = Explorer.for_scenario(_scenario(name)).run()
    assert report.complete and not report.violations, report.violations
    assert report.states >= 50, f"{name}: the exploration barely explores ({report.states} states)"


# --- bad input, at every message: dropped with a code, nothing changes


def _seal(private: bytes, identity: bytes, body: bytes) -> bytes:
    return identity + _sign(private, body) + body


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


def _other_type(sim: Simulation, message: str, sender: StatusDevice, genuine: Any) -> Any:
    """A message of the other type that the receiver must refuse: a BundleAdvert with a
    bundle of another identity than the sender's; a DirectMessage with an entry for the
    receiver in no session it has."""
    m = sim.scenario.machines
    if message == "DirectMessage":
        bob = _device(sim, "bob")
        assert bob.bundle is not None
        return m.BundleAdvert(installationId=sender.installation_id, bundles=(bob._bundle_record(bob.bundle),))
    entry = m.EncryptedEntry(installationId="alice", message=m.EncryptedMessage(
        x3dhHeader=None, drHeader=m.DRHeader(key=sender.identity, n=0, pn=0, id=sender.identity),
        payload=os.urandom(64)))
    return m.DirectMessage(installationId=sender.installation_id, bundles=genuine.bundles, encrypted=(entry,))


def _altered(message: str, genuine: Any) -> Any:
    """The genuine message with one octet of what its receiver checks changed: the payload
    of its entry (DirectMessage), the bundle's signature (BundleAdvert)."""
    if message == "DirectMessage":
        entry = genuine.encrypted[0]
        payload = bytes(entry.message.payload)
        payload = payload[:20] + bytes([payload[20] ^ 1]) + payload[21:]
        changed = dataclasses.replace(entry, message=dataclasses.replace(entry.message, payload=payload))
        return dataclasses.replace(genuine, encrypted=(changed,))
    bundle = genuine.bundles[0]
    sig = bytes(bundle.signature)
    return dataclasses.replace(genuine, bundles=(dataclasses.replace(bundle, signature=sig[:5] + bytes([sig[5] ^ 1])
                                                                     + sig[6:]),))


# message -> (scenario, steps run, sender, receiver)
CASES = {"DirectMessage": ("first_message", 2, "alice", "bob"),
         "BundleAdvert": ("paired_device", 2, "alice2", "alice")}


@pytest.mark.parametrize("message", sorted(CASES))
def test_bad_input_at_every_message_is_dropped_and_changes_nothing(message: str) -> None:
    name, steps, sender_name, receiver = CASES[message]
    sim = _ready(name, steps)
    party, sender = sim.parties[receiver], _device(sim, sender_name)
    codec = sim.scenario.machines.CODEC
    queued = [d for d in sim.network.queue(receiver)]
    assert queued, f"nothing in flight to {receiver}"
    data = queued[0].data
    body = data[ENVELOPE:]
    genuine = codec.decode(body)
    assert type(genuine).__name__ == message
    stranger = sc.new_key_pair(os.urandom)

    def sealed(record: Any) -> bytes:
        return _seal(sender.identity_private, sender.identity, codec.encode(record))

    bad = {
        "random bytes": (os.urandom(len(data)), "envelope"),
        "a short envelope": (os.urandom(ENVELOPE - 1), "envelope"),
        "the message signed by another key": (sender.identity + _sign(stranger.private, body) + body, "envelope"),
        "the message from another identity": (_seal(stranger.private, stranger.public, body), "refused"),
        "a truncated message": (data[:-7], "envelope"),
        "a truncated body, signed": (_seal(sender.identity_private, sender.identity, body[: len(body) // 2]),
                                     "decode"),
        "a flipped octet": (data[:-1] + bytes([data[-1] ^ 1]), "envelope"),
        "an altered message, signed": (sealed(_altered(message, genuine)), "refused"),
        "a message of the other type": (sealed(_other_type(sim, message, sender, genuine)), "refused"),
    }
    for what, (bytes_, code) in bad.items():
        entry = _deliver(party, bytes_)
        assert entry.code == code, f"{message}, {what}: {entry.code} {entry.detail}"
        assert entry.detail, what
    # ... and the genuine message is still taken afterwards.
    sim.step({"deliver": True})
    assert not [e for e in sim.trace if e.party == receiver and e.kind == "drop"
                and e.seq == queued[0].seq]


# --- sessions converge


def test_concurrent_sessions_converge_on_the_first_shared_key() -> None:
    scenario = _scenario("simultaneous_sessions")
    sim = Simulation(scenario)
    assert sim.run().ok
    alice, bob = _device(sim, "alice"), _device(sim, "bob")
    sa, sb = alice.active_session(bob.identity, "bob"), bob.active_session(alice.identity, "alice")
    assert sa is not None and sb is not None and sa.sk == sb.sk
    # Two sessions each, the same pair; the one whose shared key sorts first is used.
    assert sorted(s.sk for s in alice.sessions) == sorted(s.sk for s in bob.sessions)
    assert len(alice.sessions) == 2 and sa.sk == min(s.sk for s in alice.sessions)
    assert [s.superseded_at is not None for s in alice.sessions].count(True) == 1


def test_concurrent_sessions_converge_when_a_rotation_crosses_them() -> None:
    """README.md finding 3: Alice rotates her prekey after sending, before Bob's concurrent
    X3DH message reaches her. She takes his session expired (it is on her old prekey), Bob
    had kept it as the tie-break's winner. With the loser expired for good (the former
    rule) they used different sessions for ever; re-deciding the tie-break over what is
    still unexpired converges."""
    explorer = Explorer.for_scenario(_scenario("simultaneous_sessions"), user_events=2)
    path = (Choice("deliver", "bob", "DirectMessage"), Choice("event", "alice", "RotateBundle"),
            Choice("deliver", "alice", "DirectMessage"), Choice("event", "alice", "SendChat"),
            Choice("deliver", "bob", "DirectMessage"), Choice("event", "bob", "SendChat"),
            Choice("deliver", "alice", "DirectMessage"))
    world = explorer.replay(path)
    assert world.sim.network.in_flight() == 0
    assert sessions_converge(world) is None
    alice = cast(StatusDevice, world.parties["alice"].device)
    bob = cast(StatusDevice, world.parties["bob"].device)
    sa, sb = alice.active_session(bob.identity, "bob"), bob.active_session(alice.identity, "alice")
    assert sa is not None and sb is not None and sa.sk == sb.sk
    assert _received(alice) == ["hi", "hello"] and _received(bob) == ["hello", "hello"]


# --- fan-out


FANOUT = """
description = "fan-out"
protocol = "status"
seed = 11

[[party]]
name = "alice"
has_bundle_of = ["bob"]
paired_with = ["alice3"]
[[party]]
name = "alice3"
identity = "alice"
paired_with = ["alice"]
[[party]]
name = "alice2"
identity = "alice"
[[party]]
name = "bob"
paired_with = ["bob2", "bob3"]
[[party]]
name = "bob2"
identity = "bob"
[[party]]
name = "bob3"
identity = "bob"
[[party]]
name = "bob4"
identity = "bob"

[[step]]
start = true
[[step]]
party = "alice2"
event = "PairDevices"
[[step]]
deliver = true
[[step]]
party = "alice"
event = "SendChat"
to = "bob"
text = "one"
[[step]]
deliver = true
[[step]]
party = "alice"
event = "SendChat"
to = "bob"
text = "two"
[[step]]
deliver = true
"""


def test_a_message_fans_out_to_exactly_the_enabled_installations(tmp_path: Path) -> None:
    path = tmp_path / "fanout.toml"
    path.write_text(FANOUT, encoding="utf-8")
    sim = Simulation(load_scenario(path))
    sim.run()
    alice = _device(sim, "alice")
    names = {(d.identity, d.installation_id): n for n, d in sim.parties.items()
             for d in [cast(StatusDevice, d.device)]}
    first, second = ([names[r] for r in s.recipients] for s in alice.sent)
    # Bob's three paired installations from his bundle, and Alice's approved alice3; not
    # alice2, which asked to pair and was not approved, nor bob4, not yet seen.
    assert sorted(first) == ["alice3", "bob", "bob2", "bob3"]
    # bob4 answered with its bundle (spec 4.4): four installations of Bob now, at most 3 are
    # sent to, the most recently active first (bob4), then by id.
    assert sorted(second) == ["alice3", "bob", "bob2", "bob4"]
    assert [i.installation_id for i in alice.own_installations(enabled=False)] == ["alice2"]
    assert _received(_device(sim, "alice3")) == ["one", "two"] and _received(_device(sim, "alice2")) == []
    assert _received(_device(sim, "bob4")) == ["two"] and _received(_device(sim, "bob3")) == ["one"]


# --- replays


def test_a_replayed_message_changes_nothing() -> None:
    sim = _ready("first_message", 2)
    data = sim.network.queue("bob")[0].data
    sim.step({"deliver": True})
    entry = _deliver(sim.parties["bob"], data)
    assert entry.code == "refused", entry.detail


def test_a_replayed_bundle_advert_changes_nothing() -> None:
    sim = _ready("paired_device", 2)
    data = sim.network.queue("alice")[0].data
    sim.step({"deliver": True})
    party = sim.parties["alice"]
    before = (party.machine.state_name, repr(party.machine.buffer), party.device.snapshot())
    party.deliver(Delivery(999, "channel", "mallory", "alice", data))
    assert (party.machine.state_name, repr(party.machine.buffer), party.device.snapshot()) == before


# --- bundles and stale devices


def test_every_message_carries_a_newer_bundle() -> None:
    """status-go's addBundle re-signs the bundle with the time of sending (SignBundle)."""
    sim = _ready("lost_message", 3)
    stamps = [cast(Any, d).data for d in sim.network.queue("bob")]
    codec = sim.scenario.machines.CODEC
    bundles = [codec.decode(d[ENVELOPE:]).bundles[0] for d in stamps]
    assert len(bundles) == 2 and bundles[0].timestamp < bundles[1].timestamp
    assert all(sc.verify_bundle(_device(sim, "alice").bundle_of(b)) == _device(sim, "alice").identity
               for b in bundles)


def test_the_old_phone_of_a_recovered_account_is_stale_after_7_days() -> None:
    scenario = _scenario("recovery")
    sim = Simulation(scenario)
    for step in scenario.steps[:5]:
        sim.step(step)
    bob = _device(sim, "bob")
    alice_identity = _device(sim, "alice").identity
    assert sorted(i.installation_id for i in bob.targets(alice_identity)) == ["alice", "recovered"]
    sim.advance(7 * 24 * 3600 - 1)
    assert sorted(i.installation_id for i in bob.targets(alice_identity)) == ["alice", "recovered"]
    sim.advance(1)
    assert [i.installation_id for i in bob.targets(alice_identity)] == ["recovered"]


def _send(sim: Simulation, party: str, to: str, text: str) -> None:
    sim.step({"party": party, "event": "SendChat", "to": to, "text": text})


def test_a_bundle_rotates_at_the_first_message_after_24_hours() -> None:
    """status-go CreateBundle: a signed prekey made 24 hours before is replaced when the
    next bundle is made, not on a timer."""
    sim = _ready("expired_session", 5)  # hello and hi delivered
    bob = _device(sim, "bob")
    sim.advance(device.BUNDLE_REFRESH_INTERVAL - 1)
    _send(sim, "bob", "alice", "not yet")
    assert bob.current_prekey().version == 1
    sim.advance(1)
    assert bob.current_prekey().version == 1  # nothing happens until a bundle is made
    _send(sim, "bob", "alice", "now")
    assert bob.current_prekey().version == 2
    assert bob.current_prekey().created_at == sim.now
    sim.step({"deliver": True})
    alice = _device(sim, "alice")
    assert _received(alice) == ["hi", "not yet", "now"]
    # Bob's session on his old prekey expired with it; he made one from Alice's bundle.
    old = next(s for s in alice.sessions if s.bundle_id == bob.prekeys[0].public)
    assert old.expired_at == sim.now
    active = alice.active_session(bob.identity, "bob")
    assert active is not None and active.bundle_id == alice.current_prekey().public
    _send(sim, "bob", "alice", "same day")
    assert bob.current_prekey().version == 2


def test_an_expired_session_decrypts_for_14_days_then_is_gone() -> None:
    """Spec 3.4, with a message on the expired session delivered just before and just after
    the 14 days; its signed prekey goes with it (a late X3DH header cannot make it again)."""
    sim = _ready("expired_session", 9)  # Bob rotated; Alice's "late" and "too late" in flight
    bob = _device(sim, "bob")
    old_prekey = bob.prekeys[0]
    assert old_prekey.expired_at == sim.now
    sim.step({"deliver": ["alice"]})
    sim.advance(device.EXPIRED_SESSION_KEPT - 1)
    sim.step({"deliver": ["bob"], "max": 1})
    assert _received(bob) == ["hello", "late"]
    sim.advance(1)
    party = sim.parties["bob"]
    before = (party.machine.state_name, repr(party.machine.buffer), bob.snapshot())
    late = sim.network.queue("bob")[0]
    sim.step({"deliver": ["bob"]})
    assert (party.machine.state_name, repr(party.machine.buffer), bob.snapshot()) == before
    assert sim.trace[-1].kind == "drop" and sim.trace[-1].code == "refused", sim.trace[-1]
    assert late not in sim.network.queue("bob")
    _send(sim, "bob", "alice", "pruned")  # the next step prunes what is no longer retained
    assert old_prekey not in bob.prekeys and all(s.bundle_id != old_prekey.public for s in bob.sessions)


def test_deliver_names_its_receivers() -> None:
    sim = _ready("expired_session", 9)
    assert sim.network.queue("alice") and len(sim.network.queue("bob")) == 2
    sim.step({"deliver": ["alice"]})
    assert not sim.network.queue("alice") and len(sim.network.queue("bob")) == 2
    for bad, message in (({"deliver": ["carol"]}, "names no party carol"), ({"deliver": "bob"}, "true or a list")):
        with pytest.raises(ScenarioError, match=message):
            sim.step(bad)


@pytest.mark.parametrize("change, message", [
    ({"lost_at": "soon"}, "lost_at"),
    ({"colour": "red"}, "unknown keys"),
    ({"has_bundle_of": ["alice"]}, "has_bundle_of"),
])
def test_tables_that_make_no_sense_are_refused(change: dict[str, Any], message: str) -> None:
    scenario = _scenario("first_message")
    parties = [dict(scenario.parties[0], **change), *scenario.parties[1:]]
    with pytest.raises(ScenarioError, match=message):
        Simulation(dataclasses.replace(scenario, parties=parties))


# --- deliberate bugs the explorer catches


def _unapproved_too(self: StatusDevice, identity: bytes) -> tuple[Any, ...]:
    """Fan-out to every installation seen, approved or not (the user's approval skipped)."""
    return tuple(i for i in self.installations if i.identity == identity)[:sc.MAX_INSTALLATIONS]


def _own_session(self: StatusDevice, identity: bytes, installation_id: str) -> Any:
    """Spec 3.2 ignored: each side keeps using the session it started, where it has one."""
    live = [s for s in self.sessions if s.identity == identity and s.installation_id == installation_id
            and s.expired_at is None]
    return min(live, key=lambda s: (not s.initiator, s.sk)) if live else None


@pytest.mark.parametrize(("method", "bug", "scenario", "invariant"), [
    ("targets", _unapproved_too, "paired_device", "unapproved_receive_nothing"),
    ("active_session", _own_session, "simultaneous_sessions", "sessions_converge"),
])
def test_the_explorer_catches_a_broken_installation(method: str, bug: Any, scenario: str, invariant: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_scenario(SCENARIOS[scenario])
    assert Explorer.for_scenario(loaded).run().violations == []
    monkeypatch.setattr(StatusDevice, method, bug)
    report = Explorer.for_scenario(load_scenario(SCENARIOS[scenario])).run()
    assert invariant in {v.invariant for v in report.violations}, report.violations
