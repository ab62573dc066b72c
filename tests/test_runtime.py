"""The runtime around the machines: network order and faults, envelopes, security
contexts, rate limits, garbage that changes nothing."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from fsmc.build import load_scenario
from generated import keysync
from protocols.keysync.envelope import DeviceKeys, EnvelopeError, open_envelope, seal
from runtime.errors import UsageError
from runtime.harness.network import FaultModel, InMemoryNetwork
from runtime.harness.simulation import Simulation

SCENARIOS = ROOT / "protocols" / "keysync" / "scenarios"


def simulation(name: str) -> Simulation:
    return Simulation(load_scenario(SCENARIOS / name))


# --- network


def test_every_device_receives_the_channel_in_one_order() -> None:
    """Draft 1.2: every own device, the sender included, receives in the same order."""
    net = InMemoryNetwork(seed=1)
    for p in ("a", "b", "c"):
        net.attach(p)
    for i, sender in enumerate("abcabc"):
        net.post(sender, "channel", bytes([i]))
    got: dict[str, list[bytes]] = {"a": [], "b": [], "c": []}
    while (d := net.next()) is not None:
        got[d.receiver].append(d.data)
    assert got["a"] == got["b"] == got["c"] == [bytes([i]) for i in range(6)]


def test_a_message_to_an_address_reaches_whoever_listens_on_it_then() -> None:
    """A rendezvous point: posted to, it reaches its listeners at that moment; once
    nobody listens, a message to it reaches nobody, and the log says so."""
    net = InMemoryNetwork()
    for p in ("alice", "bob", "mallory"):
        net.attach(p)
    net.subscribe("bob", "rv:1")
    net.subscribe("mallory", "rv:1")
    net.post("alice", "channel", b"hello", to="rv:1")
    assert [(d.receiver, d.data) for d in net.pending()] == [("bob", b"hello"), ("mallory", b"hello")]
    net.post("alice", "channel", b"to bob", to="bob")  # a party's name is its own address
    net.unsubscribe("bob", "rv:1")
    net.unsubscribe("mallory", "rv:1")
    assert net.listeners("rv:1") == ()
    net.post("alice", "channel", b"late", to="rv:1")
    assert [d.data for d in net.queue("bob")] == [b"hello", b"to bob"]
    assert [d.data for d in net.queue("mallory")] == [b"hello"]
    assert net.log[-1][0] == "unrouted" and net.log[-1][1].data == b"late"


def test_a_relay_keeps_what_nobody_heard_for_the_first_subscriber_in_posting_order() -> None:
    """mailboxes (BisonRelay's server): posted to an address nobody listens on, a message
    waits there, out of flight, and goes to the first party that subscribes, in the order
    posted even when it subscribes to later addresses first; copies keep their own store."""
    net = InMemoryNetwork(mailboxes=True)
    for p in ("alice", "bob", "carol"):
        net.attach(p)
    net.post("alice", "channel", b"first", to="rv:1")
    net.post("alice", "channel", b"second", to="rv:2")
    net.post("alice", "channel", b"direct", to="bob")
    assert net.in_flight() == 1 and [a for a, _ in net.stored()] == ["rv:1", "rv:2"]
    twin = copy.deepcopy(net)
    net.subscribe("bob", "rv:2")
    net.subscribe("bob", "rv:1")
    assert [d.data for d in net.queue("bob")] == [b"first", b"second", b"direct"]
    assert all(d.receiver == "bob" for d in net.queue("bob")) and net.stored() == ()
    net.subscribe("carol", "rv:1")  # fetched already: the relay hands a payload out once
    assert net.queue("carol") == []
    assert [a for a, _ in twin.stored()] == ["rv:1", "rv:2"] and [d.data for d in twin.queue("bob")] == [b"direct"]
    plain = InMemoryNetwork()
    plain.attach("alice")
    plain.post("alice", "channel", b"lost", to="rv:1")
    plain.attach("bob")
    plain.subscribe("bob", "rv:1")
    assert plain.queue("bob") == [] and plain.stored() == () and plain.log[-1][0] == "unrouted"


def test_an_address_and_a_party_cannot_share_a_name() -> None:
    net = InMemoryNetwork()
    net.attach("bob")
    with pytest.raises(UsageError, match="bob is a party"):
        net.subscribe("alice", "bob")
    net.subscribe("bob", "rv:1")
    with pytest.raises(UsageError, match="rv:1 is an address"):
        net.attach("rv:1")


def test_a_party_listens_where_its_device_says_after_each_input() -> None:
    """The driver keeps the transport in step with `Device.listening`."""
    sim = Simulation(load_scenario(ROOT / "protocols" / "commit" / "scenarios" / "all_yes.toml"))
    party = sim.parties["alice"]
    device = party.device
    assert party.listening == frozenset() and sim.network.listeners("rv:alice") == ()
    device.listening = lambda: frozenset({"rv:alice"})  # type: ignore[method-assign]
    party.event(party.machine.Event.Yes, "Yes")  # type: ignore[attr-defined]
    assert sim.network.listeners("rv:alice") == ("alice",)
    device.listening = lambda: frozenset()  # type: ignore[method-assign]
    party.event(party.machine.Event.Yes, "Yes")  # type: ignore[attr-defined]
    assert sim.network.listeners("rv:alice") == () and party.listening == frozenset()


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32))
def test_faults_are_reproducible_from_the_seed(seed: int) -> None:
    def run() -> list[tuple[str, int, str]]:
        net = InMemoryNetwork(seed=seed, faults=FaultModel(loss=0.2, duplicate=0.2, reorder=0.3))
        for p in ("a", "b"):
            net.attach(p)
        for i in range(20):
            net.post("a" if i % 2 else "b", "channel", bytes([i]))
        out = []
        while (d := net.next()) is not None:
            out.append((d.receiver, d.seq, d.data.hex()))
        return out

    assert run() == run()


def test_fault_model_from_the_command_line() -> None:
    f = FaultModel.parse("loss,dup,reorder", rate=0.25)
    assert (f.loss, f.duplicate, f.reorder, f.delay) == (0.25, 0.25, 0.25, 0.0)


# --- envelopes


def test_envelope_is_signed_and_encrypted_to_its_recipients() -> None:
    a, b, c = (DeviceKeys.generate(bytes([i]) * 32) for i in range(3))
    sealed = seal(b"secret", a, [b.public])
    assert open_envelope(sealed, b).payload == b"secret"
    assert open_envelope(sealed, b).sender_fingerprint == a.fingerprint
    for bad_receiver in (c, None):
        try:
            open_envelope(sealed, bad_receiver)
        except EnvelopeError:
            pass
        else:
            raise AssertionError("opened without the key")
    tampered = bytearray(sealed)
    tampered[100] ^= 0x40
    try:
        open_envelope(bytes(tampered), b)
    except EnvelopeError as e:
        assert "signature" in str(e)
    else:
        raise AssertionError("tampered envelope opened")


# --- parties: bad input changes nothing


def snapshot(sim: Simulation) -> object:
    return {name: (p.machine.state, copy.deepcopy(p.machine.buffer), sorted(p.device.keyring.private),
                   sorted(p.device.keyring.trusted), p.device.negotiation)
            for name, p in sim.parties.items()}


def handshaking() -> Simulation:
    sim = simulation("form_group.toml")
    sim.step({"start": True})
    sim.step({"deliver": True})
    return sim


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_from_the_network_changes_nothing(data: bytes) -> None:
    sim = handshaking()
    before = snapshot(sim)
    sim.network.post("phone", "channel", data, to="laptop")
    sim.deliver_until_quiet()
    assert snapshot(sim) == before
    assert sim.trace[-1].kind == "drop"


def test_a_tampered_message_is_dropped_and_changes_nothing() -> None:
    sim = handshaking()
    laptop = sim.parties["laptop"]
    requester = laptop if laptop.machine.state.name == "HandshakingRequester" else sim.parties["phone"]
    offerer = sim.parties["phone" if requester is laptop else "laptop"]
    # The offerer's Rollback would send the requester back to Sole; flip one bit of it.
    offerer.machine.buffer.negotiation = requester.device.negotiation
    offerer.device.seen[requester.device.keyring.primary] = requester.device.keyring.encryption_key(
        requester.device.keyring.primary)
    good = offerer.device.seal(keysync.Rollback(negotiation=requester.device.negotiation),
                               keysync.CODEC.encode(keysync.Rollback(negotiation=requester.device.negotiation)),
                               offerer.device.capture(keysync.Rollback(negotiation=requester.device.negotiation)))
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 1
    before = snapshot(sim)
    sim.network.post(offerer.name, "channel", bytes(bad), to=requester.name)
    sim.deliver_until_quiet()
    assert snapshot(sim) == before
    assert "bad signature" in sim.trace[-1].detail
    # the untampered message does act
    sim.network.post(offerer.name, "channel", good, to=requester.name)
    sim.deliver_until_quiet()
    assert requester.machine.state.name == "Sole"


def test_a_trusted_message_from_an_untrusted_key_is_dropped_before_any_handler() -> None:
    """GroupKeysUpdate (security=attach_own_keys_for_group) from a stranger: dropped, its
    attached keys not imported, the machine's state and keys unchanged."""
    sim = simulation("cannot_decrypt.toml")
    sim.step({"start": True})
    sim.step({"deliver": True})
    laptop = sim.parties["laptop"]
    stranger = DeviceKeys.generate(b"s" * 32)
    from protocols.keysync.keys import KeyRing

    ring = KeyRing()
    ring.add(stranger)
    message = keysync.GroupKeysUpdate(ownIdentities=())
    data = keysync.CODEC.encode(message)
    payload = len(data).to_bytes(2, "big") + data + ring.export([stranger.fingerprint])
    envelope = seal(payload, stranger, [laptop.device.keyring.encryption_key(laptop.device.keyring.primary)])
    before = snapshot(sim)
    sim.network.attach("stranger")
    sim.network.post("stranger", "channel", envelope, to="laptop")
    sim.deliver_until_quiet()
    assert snapshot(sim) == before
    assert "neither trusted nor of the group" in sim.trace[-1].detail
    assert stranger.fingerprint not in laptop.device.keyring.private


def test_rate_limit_drops_a_second_beacon_within_ten_seconds() -> None:
    sim = simulation("form_group.toml")
    sim.step({"start": True})
    laptop = sim.parties["laptop"]
    laptop.event(laptop.machine.Event.KeyGen, "KeyGen")  # Sole: on KeyGen send Beacon
    drops = [e for e in sim.trace if e.party == "laptop" and e.kind == "drop"]
    assert drops and "rate limit 10s" in drops[-1].detail
    sim.advance(10)
    laptop.event(laptop.machine.Event.KeyGen, "KeyGen")
    assert sim.trace[-1].kind == "send" and sim.trace[-1].message == "Beacon"


def test_broadcast_goes_on_every_transport_anycast_on_the_active_one(tmp_path: Path) -> None:
    text = (SCENARIOS / "form_group.toml").read_text()
    text = text.replace('name = "laptop"\n', 'name = "laptop"\ntransports = ["imap", "smtp"]\n')
    text = text.replace('name = "phone"\n', 'name = "phone"\ntransports = ["imap", "smtp"]\n')
    path = tmp_path / "two_transports.toml"
    path.write_text(text)
    sim = Simulation(load_scenario(path))
    result = sim.run()
    assert result.ok, result.failures
    beacons = {(e.party, e.seq) for e in result.trace if e.kind == "send" and e.message == "Beacon"}
    # the initial Beacon of each device went out on both transports
    assert len([b for b in beacons if b[0] == "laptop"]) >= 2
    requests = [e for e in result.trace if e.kind == "send" and e.message == "CommitAcceptRequester"]
    assert len(requests) == 1  # anycast: one copy, on the active transport


def test_next_follows_channel_order_with_or_without_tracking() -> None:
    def run(track: bool, tamper: bool) -> list[tuple[int, str]]:
        net = InMemoryNetwork(track_order=track)
        for party in ("carol", "alice", "bob"):
            net.attach(party)
        for i, sender in enumerate(["bob", "alice", "carol", "alice"]):
            net.post(sender, "channel", bytes([i]), to="carol" if i == 2 else None)
            if tamper and i == 1:
                net._queues["bob"].pop(0)  # changed from outside: next must still be right
        out = []
        while (d := net.next()) is not None:
            out.append((d.seq, d.receiver))
        return out

    expected = run(False, False)
    assert expected[:3] == [(1, "alice"), (1, "bob"), (1, "carol")]
    assert run(True, False) == expected
    assert run(True, True) == run(False, True) == [e for e in expected if e != (1, "bob")]
