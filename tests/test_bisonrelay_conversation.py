"""BisonRelay conversations over the ratchet (protocols/bisonrelay: SendChat, RMPrivateMessage):
what the scenarios do not show on their own: the busted ratchet's reset, the invariants catching
what they are for, and a chat message replayed or altered changing nothing."""

from __future__ import annotations

import dataclasses
import os
from types import SimpleNamespace
from typing import Any, cast

import pytest
from conftest import ROOT

from fsmc.build import load_scenario
from protocols.bisonrelay.device import BisonRelayDevice, rv_address
from protocols.bisonrelay.invariants import delivery, forward_secrecy
from protocols.bisonrelay.ratchet import Ratchet
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation
from runtime.transport import Delivery

FOLDER = ROOT / "protocols" / "bisonrelay" / "scenarios"


def _ready(name: str, steps: int) -> Simulation:
    scenario = load_scenario(FOLDER / f"{name}.toml")
    sim = Simulation(scenario)
    for step in scenario.steps[:steps]:
        sim.step(step)
    return sim


def _device(sim: Simulation, name: str) -> BisonRelayDevice:
    return cast(BisonRelayDevice, sim.parties[name].device)


def _world(sim: Simulation) -> Any:
    return SimpleNamespace(parties=sim.parties)


def test_the_conversation_goes_over_the_ratchet() -> None:
    sim = _ready("chat_conversation", 99)
    alice, bob = _device(sim, "alice"), _device(sim, "bob")
    assert [t for _, t in bob.chats_received] == ["hi", "how are you"]
    assert [t for _, t in alice.chats_received] == ["hello", "fine"]
    pa, pb = alice.peer(bob.id), bob.peer(alice.id)
    assert pa is not None and pb is not None
    assert pa.ratchet.send_count + pb.ratchet.send_count > 0 and pa.ratchet.root_key == pb.ratchet.root_key
    # Each is listening where the other posts next.
    assert pa.send_rendezvous() in pb.recv_rendezvous() and pb.send_rendezvous() in pa.recv_rendezvous()
    assert delivery(_world(sim)) is None and forward_secrecy(_world(sim)) is None


def test_a_replayed_or_altered_chat_message_changes_nothing() -> None:
    sim = _ready("chat_conversation", 2)  # Alice's "hi" in flight
    [(to, blob)] = _device(sim, "alice").sealed
    bob_party, bob = sim.parties["bob"], _device(sim, "bob")
    assert to == bob.id
    sim.step({"deliver": True})
    before = bob.snapshot()
    for data in (blob, blob[:-1] + bytes([blob[-1] ^ 1])):
        for at in bob._rendezvous():
            bob_party.deliver(Delivery(999, "channel", "mallory", "bob", at + data))
            assert bob.snapshot() == before
    assert [t for _, t in bob.chats_received] == ["hi"]


def test_the_invariants_catch_a_double_delivery_and_a_ratchet_that_still_decrypts() -> None:
    sim = _ready("chat_conversation", 99)
    bob = _device(sim, "bob")
    bob.chats_received = (*bob.chats_received, bob.chats_received[0])
    assert delivery(_world(sim)) is not None
    sim = _ready("chat_conversation", 99)
    alice, bob = _device(sim, "alice"), _device(sim, "bob")
    entry = alice.peer(bob.id)
    assert entry is not None
    fresh = Ratchet.restore(entry.ratchet, random=os.urandom).encrypt(b"not yet received")
    bob.opened = (*bob.opened, (alice.id, fresh))
    assert forward_secrecy(_world(sim)) is not None


def test_a_busted_ratchet_is_reset_when_the_user_sends_and_the_conversation_goes_on() -> None:
    sim = _ready("chat_conversation", 1)
    alice, bob = _device(sim, "alice"), _device(sim, "bob")
    entry = alice.peer(bob.id)
    assert entry is not None
    # A low-order peer key: the next encrypt's DH step would fail (BR: rError).
    busted = dataclasses.replace(entry.ratchet, ratchet=True, recv_ratchet_public=bytes(32))
    alice.peers = tuple(dataclasses.replace(p, ratchet=busted) if p is entry else p for p in alice.peers)
    sim.step({"party": "alice", "event": "SendChat", "to": "bob", "text": "hi"})
    assert sim.parties["alice"].machine.state_name == "AwaitingHalfKX" and alice.chats_sent == ()
    assert alice.queued == ((bob.id, "hi"),)
    # During the reset the ratchet is still busted: a second chat waits too.
    sim.step({"party": "alice", "event": "SendChat", "to": "bob", "text": "still there?"})
    assert alice.queued == ((bob.id, "hi"), (bob.id, "still there?")) and alice.chats_sent == ()
    sim.step({"deliver": True})
    # The reset completed: both went over the new ratchet, in order, and were received.
    assert alice.queued == () and alice.flushing == ()
    assert [t for _, t in alice.chats_sent] == ["hi", "still there?"]
    assert [t for _, t in bob.chats_received] == ["hi", "still there?"]
    sim.step({"party": "alice", "event": "SendChat", "to": "bob", "text": "hi again"})
    sim.step({"deliver": True})
    assert [t for _, t in bob.chats_received] == ["hi", "still there?", "hi again"]
    assert rv_address(alice.peer(bob.id).send_rendezvous()).startswith("rv:")  # type: ignore[union-attr]


def test_a_chat_during_a_reset_goes_over_the_old_ratchet_and_the_next_over_the_new() -> None:
    """BR's send queue encrypts with the ratchet the user holds: the old one until the reset
    completes (SendChat is handled in every state)."""
    sim = _ready("chat_conversation", 3)  # "hi" delivered
    alice, bob = _device(sim, "alice"), _device(sim, "bob")
    old = alice.peer(bob.id)
    assert old is not None
    sim.step({"party": "alice", "event": "ResetRatchet"})
    assert sim.parties["alice"].machine.state_name == "AwaitingHalfKX"
    sim.step({"party": "alice", "event": "SendChat", "to": "bob", "text": "meanwhile"})
    assert alice.queued == () and [t for _, t in alice.chats_sent] == ["hi", "meanwhile"]
    assert alice.peer(bob.id).seed == old.seed  # type: ignore[union-attr]
    sim.step({"deliver": True})
    assert [t for _, t in bob.chats_received] == ["hi", "meanwhile"]
    assert alice.peer(bob.id).seed != old.seed  # type: ignore[union-attr]
    sim.step({"party": "alice", "event": "SendChat", "to": "bob", "text": "after"})
    sim.step({"deliver": True})
    assert [t for _, t in bob.chats_received] == ["hi", "meanwhile", "after"]


def test_the_explorer_catches_a_device_that_keeps_its_ratchet_where_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device that decrypts a chat but keeps the ratchet as it was before (the message
    key not used up): the replayed chat decrypts again, and the explorer says so."""
    scenario = load_scenario(FOLDER / "chat_replay.toml")
    assert Explorer.for_scenario(scenario).run().violations == []
    keeping = BisonRelayDevice.receiving

    def receiving(self: BisonRelayDevice, message: Any, arrival: Any) -> None:
        if arrival is not None and arrival.step == "ratchet":
            arrival = dataclasses.replace(arrival, step="kept")  # the new ratchet state is dropped
        keeping(self, message, arrival)

    monkeypatch.setattr(BisonRelayDevice, "receiving", receiving)
    report = Explorer.for_scenario(load_scenario(FOLDER / "chat_replay.toml")).run()
    found = {v.invariant for v in report.violations}
    assert found & {"delivery", "replays_change_nothing", "forward_secrecy"}, report.violations
