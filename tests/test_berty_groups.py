"""Berty's groups and chain-key ratchet as weshnet computes them (protocols/berty/groups.py).

Known answers: tests/vectors/berty-groups.json, made by weshnet's own functions run in Go
(weshnet's tests have no fixed values for groups; the README of the vectors says how).
Then the protocol: groups of several members and devices exchanging messages, forward
secrecy for late joiners, the receive window (out of order inside, refused beyond, nothing
changed by a refusal), replays, altered and forged entries and messages, and hypothesis
over delivery orders.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random as pyrandom
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_secretbox

from protocols.berty import groups as bg
from protocols.berty.crypto import Ed25519KeyPair
from protocols.berty.groups import Failure, GroupDevice, GroupError, LogEntry
from protocols.berty.linking import Account
from runtime.errors import UsageError, VerificationError

VECTORS = Path(__file__).parent / "vectors" / "berty-groups.json"
V: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _key(label: str) -> Ed25519KeyPair:
    return Ed25519KeyPair.from_seed(_seed(label))


def _given(*values: bytes) -> Callable[[int], bytes]:
    """A `random` that hands out the given values, in order."""
    pending = iter(values)

    def draw(n: int) -> bytes:
        value = next(pending)
        assert len(value) == n
        return value

    return draw


def _det(label: str) -> Callable[[int], bytes]:
    """A deterministic `random`: SHA-512 of the label and a counter."""
    counter = itertools.count()

    def draw(n: int) -> bytes:
        return hashlib.sha512(f"{label}/{next(counter)}".encode()).digest()[:n]

    return draw


def _hex(value: str) -> bytes:
    return bytes.fromhex(value)


# --- known answers -----------------------------------------------------------------------


def _vector_group() -> tuple[bg.Group, Ed25519KeyPair]:
    g = V["group"]
    return bg.new_multi_member_group(_given(_seed(g["group_seed_label"]), _seed(g["signing_seed_label"])))


GROUP, GROUP_KEY = _vector_group()
MEMBER = {who: bg.multi_member_key(_key(m["alias_seed_label"]), GROUP.public_key)
          for who, m in zip(("alice", "bob"), V["member_keys"], strict=True)}
DEVICE = {who: _key(label) for who, label in V["device_seed_labels"].items()}
CHAIN_KEY = _hex(V["derive_next_keys"]["chain_key"])


def test_vector_constants() -> None:
    c = V["constants"]
    assert bg.PRECOMPUTE_MESSAGE_KEY_COUNT == c["PrecomputeMessageKeyCount"]["value"] == 100
    assert c["PrecomputeOutOfStoreGroupRefsCount"]["value"] == bg.PRECOMPUTE_OUT_OF_STORE_GROUP_REFS_COUNT
    def go_names(prefix: str, kind: Any) -> dict[str, int]:
        return {prefix + "".join(w.title() for w in t.name.split("_")): t.value for t in kind}

    assert go_names("GroupType", bg.GroupType) == c["GroupType"]["value"]
    assert go_names("EventType", bg.EventType) == c["EventType"]["value"]


def test_vector_multi_member_group() -> None:
    g = V["group"]
    assert GROUP.public_key.hex() == g["public_key"]
    assert GROUP.secret.hex() == g["secret"]
    assert GROUP.secret_sig.hex() == g["secret_sig"]
    assert GROUP.signing_public_key.hex() == g["signing_public_key"]
    assert GROUP.link_key.hex() == g["link_key"]
    assert GROUP.link_key_sig.hex() == g["link_key_sig"]
    assert GROUP.encode().hex() == g["protobuf"]
    assert bg.Group.decode(_hex(g["protobuf"])) == GROUP
    assert GROUP_KEY.public == GROUP.public_key
    GROUP.verify()


def test_vector_member_keys() -> None:
    for who, m in zip(("alice", "bob"), V["member_keys"], strict=True):
        assert MEMBER[who].seed.hex() == m["member_seed"]
        assert MEMBER[who].public.hex() == m["member_public"]
        own = bg.own_member_device(GROUP, _key("account " + who), _key(m["alias_seed_label"]), DEVICE[who])
        assert own.member == MEMBER[who]  # not the account key: a member id of its own


def test_vector_derive_next_keys() -> None:
    d = V["derive_next_keys"]
    steps = {s["counter"]: s for s in d["steps"]}
    chain_key = CHAIN_KEY
    for counter in range(1, 102):
        chain_key, message_key = bg.derive_next_keys(chain_key, b"", _hex(d["group_id"]))
        if counter in steps:
            assert chain_key.hex() == steps[counter]["chain_key"]
            assert message_key.hex() == steps[counter]["message_key"]
    # preComputeKeys: the window of keys 1..100 and the chain stored at 100.
    chain = bg.ReceiverChain.register(bg.DeviceChainKey(CHAIN_KEY, 0), GROUP.public_key)
    assert chain.chain == bg.DeviceChainKey(_hex(steps[100]["chain_key"]), 100)
    assert [c for c, _ in chain.keys] == list(range(1, 101))
    assert chain.message_key(1).hex() == steps[1]["message_key"]
    assert chain.message_key(100).hex() == steps[100]["message_key"]
    spent = chain.spend(1, GROUP.public_key)  # preComputeNextKey: key 101 joins the window
    assert spent.message_key(101).hex() == steps[101]["message_key"]


def test_vector_member_entry() -> None:
    e = V["member_entry"]
    own = bg.MemberDevice(MEMBER["alice"], DEVICE["alice"])
    metadata = bg.member_device_metadata(own)
    assert metadata.payload.hex() == e["payload"]
    assert metadata.sig.hex() == e["sig"]
    assert metadata.encode().hex() == e["metadata"]
    assert bg.seal_metadata(GROUP, metadata, _given(_hex(e["nonce"]))).hex() == e["envelope"]
    opened, entry = bg.open_metadata(GROUP, _hex(e["envelope"]))
    assert opened == metadata
    assert entry == bg.MemberDeviceEntry(MEMBER["alice"].public, DEVICE["alice"].public, _hex(e["member_sig"]))


def test_vector_initial_member_entry() -> None:
    e = V["initial_member_entry"]
    metadata = bg.initial_member_metadata(GROUP_KEY, DEVICE["alice"].public)
    got = (metadata.payload.hex(), metadata.sig.hex(), metadata.encode().hex())
    assert got == (e["payload"], e["sig"], e["metadata"])
    assert bg.seal_metadata(GROUP, metadata, _given(_hex(e["nonce"]))).hex() == e["envelope"]
    state = bg.join(GROUP, bg.MemberDevice(MEMBER["alice"], DEVICE["alice"]), _det("alice"))
    assert bg.claim_ownership(state, GROUP_KEY) == metadata  # weshnet announces the device key


@pytest.mark.parametrize("case", V["secret_entries"], ids=lambda c: f"counter {c['counter']}")
def test_vector_secret_entry(case: dict[str, Any]) -> None:
    chain = bg.DeviceChainKey(CHAIN_KEY, case["counter"])
    assert chain.encode().hex() == case["device_chain_key"]
    box = bg.seal_device_chain_key(DEVICE["alice"], MEMBER["bob"].public, chain, GROUP)
    assert box.hex() == case["box"]
    metadata = bg.secret_metadata(bg.MemberDevice(MEMBER["alice"], DEVICE["alice"]), MEMBER["bob"].public, chain, GROUP)
    assert (metadata.payload.hex(), metadata.sig.hex(), metadata.encode().hex()) == (
        case["payload"], case["sig"], case["metadata"])
    assert bg.seal_metadata(GROUP, metadata, _given(_hex(case["nonce"]))).hex() == case["envelope"]
    _, entry = bg.open_metadata(GROUP, _hex(case["envelope"]))
    assert isinstance(entry, bg.SecretEntry)
    assert bg.open_device_chain_key(MEMBER["bob"], entry.device_pk, entry.payload, GROUP) == chain


def test_vector_alias_entries() -> None:
    a = V["alias_entries"]
    bob = bg.MemberDevice(MEMBER["bob"], DEVICE["bob"])
    alias = _key("fsmc berty groups: alias key bob")
    added = bg.contact_alias_key_metadata(bob, alias.public)
    assert (added.payload.hex(), added.sig.hex()) == (a["contact_alias_key_added"]["payload"],
                                                      a["contact_alias_key_added"]["sig"])
    resolver = bg.alias_resolver_metadata(bob)  # weshnet's: resolver and proof left empty
    assert (resolver.payload.hex(), resolver.sig.hex()) == (a["alias_resolver_added"]["payload"],
                                                            a["alias_resolver_added"]["sig"])
    assert bg.verify_metadata(GROUP, resolver) == bg.AliasResolverEntry(DEVICE["bob"].public)


def test_vector_messages_seal_and_open() -> None:
    cases = V["messages"]["cases"]
    chain = bg.DeviceChainKey(CHAIN_KEY, 0)
    for case in cases:
        envelope, chain = bg.seal_message(DEVICE["alice"], chain, GROUP, case["plaintext_utf8"].encode(),
                                          _given(_hex(case["nonce"])))
        assert envelope.hex() == case["envelope"]
        assert chain.counter == case["counter"]
        env, headers = bg.open_message_headers(GROUP, envelope)
        assert headers.encode().hex() == case["headers"]
        assert env.message.hex() == case["message"]
        assert headers.sig.hex() == case["sig"]
    # Bob, given Alice's chain at 0 in the vector's Secret Entry, reads both, in either order.
    bob = bg.join(GROUP, bg.MemberDevice(MEMBER["bob"], DEVICE["bob"]), _det("bob"))
    secret = V["secret_entries"][0]
    bob, _ = bg.apply_metadata(bob, bg.GroupMetadata.decode(_hex(secret["metadata"])))
    for case in reversed(cases):
        bob, received = bg.receive_message(bob, bg.sign_log_entry(GROUP, _hex(case["envelope"])))
        assert received.plaintext == case["plaintext_utf8"].encode()
        assert received.counter == case["counter"]
        assert received.member_pk is None  # Alice's Member Entry never came: read anyway


# --- a small world: devices sharing a group's two logs -------------------------------------


class World:
    """Devices of one group and its metadata log, delivered to everyone in order."""

    def __init__(self, group: bg.Group, precompute: int = bg.PRECOMPUTE_MESSAGE_KEY_COUNT) -> None:
        self.group = group
        self.precompute = precompute
        self.metadata: list[LogEntry] = []
        self.read: dict[str, int] = {}
        self.devices: dict[str, GroupDevice] = {}

    def join(self, name: str, member: str, *, device: Ed25519KeyPair | None = None) -> GroupDevice:
        """A device of `member` (an account named so) joins as weshnet's ActivateGroupContext
        does: it reads the metadata log, sends its chain to the members it finds, announces
        itself; then everyone settles."""
        alias = _key("alias " + member)
        account = _key("account " + member)
        own = bg.own_member_device(self.group, account, alias, device or bg.new_device_key(_det("device " + name)))
        dev = GroupDevice.joining(self.group, own, _det("random " + name), self.precompute)
        self.devices[name] = dev
        self.read[name] = 0
        self.settle()
        self.metadata.append(dev.announce())
        self.settle()
        return dev

    def settle(self) -> None:
        while True:
            progress = False
            for name, dev in self.devices.items():
                while self.read[name] < len(self.metadata):
                    dev.receive_metadata(self.metadata[self.read[name]])
                    self.read[name] += 1
                    progress = True
                new = dev.share_pending_secrets()
                self.metadata.extend(new)
                progress = progress or bool(new)
            if not progress:
                return


def _multi_member(label: str) -> tuple[bg.Group, Ed25519KeyPair]:
    return bg.new_multi_member_group(_det("group " + label))


@pytest.fixture(scope="module")
def world() -> World:
    group, group_key = _multi_member("main")
    w = World(group)
    alice = w.join("alice-1", "alice")
    w.metadata.append(alice.claim_ownership(group_key))
    w.join("bob-1", "bob")
    w.join("alice-2", "alice")
    w.join("carol-1", "carol")
    w.settle()
    return w


def test_group_of_several_members_and_devices(world: World) -> None:
    devices = world.devices
    names = sorted(devices)
    members = {name: devices[name].member_pk for name in names}
    assert members["alice-1"] == members["alice-2"] != members["bob-1"]  # one member, two devices
    assert members["alice-1"] != _key("account alice").public  # a member id, not the account id
    for name in names:
        state = devices[name].state
        assert set(state.members()) == set(members.values())
        assert state.admins == (devices["alice-1"].device_pk,)
        assert {pk for pk, _ in state.chains} == {devices[n].device_pk for n in names if n != name}
    for sender in names:
        for i in range(3):
            text = f"{sender} #{i}".encode()
            entry = devices[sender].send(text)
            for receiver in names:
                if receiver != sender:
                    got = devices[receiver].receive(entry)
                    assert (got.plaintext, got.device_pk, got.member_pk, got.counter) == (
                        text, devices[sender].device_pk, members[sender], i + 1)


def test_late_joiner_cannot_read_earlier_messages() -> None:
    group, _ = _multi_member("forward secrecy")
    w = World(group)
    alice, bob = w.join("alice", "alice"), w.join("bob", "bob")
    before = [alice.send(b"before %d" % i) for i in range(3)]
    for entry in before:
        bob.receive(entry)
    dave = w.join("dave", "dave")
    # Alice's Secret Entry to Dave carries her chain as it is now: counter 3.
    assert dave.state.chain_of(alice.device_pk).first_counter == 3  # type: ignore[union-attr]
    state = dave.snapshot()
    for entry in before:
        with pytest.raises(GroupError) as info:
            dave.receive(entry)
        assert info.value.failure is Failure.COUNTER_BEFORE_CHAIN
        assert dave.snapshot() is state
    # No key Dave holds reaches back: every message key he has is for counters after 3.
    chain = dave.state.chain_of(alice.device_pk)
    assert chain is not None and min(c for c, _ in chain.keys) == 4
    after = alice.send(b"after")
    assert dave.receive(after).plaintext == b"after"
    assert bob.receive(after).plaintext == b"after"


def test_a_members_later_device_reads_since_the_members_first_arrival() -> None:
    """weshnet sends a chain key once per member, to the member key: a second device of a
    member opens the Secret Entries its member got, so it reads what the first device
    could, messages sent before this second device existed included."""
    group, _ = _multi_member("second device")
    w = World(group)
    alice, bob = w.join("alice", "alice"), w.join("bob-1", "bob")
    sent = [alice.send(b"%d" % i) for i in range(2)]
    bob2 = w.join("bob-2", "bob")
    assert bob2.state.chain_of(alice.device_pk).first_counter == 0  # type: ignore[union-attr]
    assert [bob2.receive(e).plaintext for e in sent] == [b"0", b"1"]
    assert bob.device_pk != bob2.device_pk


def test_contact_group_messages() -> None:
    a, b = _key("account a"), _key("account b")
    group = bg.contact_group(a, b.public)
    assert group == bg.contact_group(b, a.public) and group.group_type is bg.GroupType.CONTACT
    w = World(group)
    da = w.join("a", "a", device=_key("device a"))
    db = w.join("b", "b", device=_key("device b"))
    assert da.member_pk == a.public and da.device_pk == _key("device a").public  # account and device keys
    assert db.receive(da.send(b"hi b")).plaintext == b"hi b"
    assert da.receive(db.send(b"hi a")).plaintext == b"hi a"


def test_account_group_of_linked_devices() -> None:
    account = Account.generate(pyrandom.Random(7))
    group = bg.account_group(account)
    assert (group.public_key, group.secret, group.group_type) == (account.key.public, account.alias.seed,
                                                                  bg.GroupType.ACCOUNT)
    # The document's account group (linking.py's, random keys) is another group altogether.
    document = bg.Group.from_account_group(account.group)
    assert document.public_key != group.public_key
    document.verify()
    own1 = bg.own_member_device(group, account.key, account.alias, _key("device 1"))
    own2 = bg.own_member_device(group, account.key, account.alias, _key("device 2"))
    assert own1.member == own2.member == account.key
    d1, d2 = GroupDevice.joining(group, own1, _det("d1")), GroupDevice.joining(group, own2, _det("d2"))
    for sender, receiver in ((d1, d2), (d2, d1)):
        receiver.receive_metadata(sender.publish(bg.member_device_metadata(sender.state.own)))
    for dev in (d1, d2):
        for entry in dev.share_pending_secrets():
            d1.receive_metadata(entry)
            d2.receive_metadata(entry)
    assert d2.receive(d1.send(b"sync")).plaintext == b"sync"


# --- the window --------------------------------------------------------------------------


def _pair(precompute: int = 5, label: str = "window") -> tuple[GroupDevice, GroupDevice]:
    group, _ = _multi_member(label)
    w = World(group, precompute)
    return w.join("alice", "alice"), w.join("bob", "bob")


def test_out_of_order_within_window_and_beyond() -> None:
    alice, bob = _pair(precompute=5)
    sent = [alice.send(b"m%d" % i) for i in range(1, 13)]  # counters 1..12
    assert bob.receive(sent[4]).counter == 5  # the window's last key
    assert bob.receive(sent[1]).counter == 2
    state = bob.snapshot()
    with pytest.raises(GroupError) as info:
        bob.receive(sent[7])  # counter 8: keys held are 1, 3, 4, 6, 7
    assert info.value.failure is Failure.COUNTER_AHEAD
    assert bob.snapshot() is state
    assert [bob.receive(sent[i]).counter for i in (0, 2, 3)] == [1, 3, 4]
    assert bob.receive(sent[7]).plaintext == b"m8"  # the window moved on: held then tried again
    chain = bob.state.chain_of(alice.device_pk)
    assert chain is not None and len(chain.keys) == 5  # always `precompute` unspent keys


def test_default_window_is_a_hundred_keys() -> None:
    alice, bob = _pair(precompute=bg.PRECOMPUTE_MESSAGE_KEY_COUNT, label="default window")
    sent = [alice.send(b"%d" % i) for i in range(101)]
    with pytest.raises(GroupError) as info:
        bob.receive(sent[100])  # counter 101
    assert info.value.failure is Failure.COUNTER_AHEAD
    assert bob.receive(sent[99]).counter == 100
    assert bob.receive(sent[100]).counter == 101


def test_hundred_missed_messages_block_the_chain() -> None:
    """A receiver that never gets `precompute` messages of a device holds only their keys:
    the device's later messages are all ahead of its window, for good."""
    alice, bob = _pair(precompute=5, label="stuck")
    sent = [alice.send(b"%d" % i) for i in range(8)]
    for entry in sent[5:]:  # counters 6..8, with 1..5 never delivered
        with pytest.raises(GroupError) as info:
            bob.receive(entry)
        assert info.value.failure is Failure.COUNTER_AHEAD
    assert bob.receive(sent[0]).counter == 1  # one old message, and one more key
    assert bob.receive(sent[5]).counter == 6


def test_replay_and_duplicate_rejected() -> None:
    alice, bob = _pair()
    entry = alice.send(b"once")
    assert bob.receive(entry).plaintext == b"once"
    state = bob.snapshot()
    for again in (entry, replace(entry), bg.sign_log_entry(bob.state.group, entry.payload)):
        with pytest.raises(GroupError) as info:
            bob.receive(again)
        assert info.value.failure is Failure.COUNTER_REPLAYED
        assert bob.snapshot() is state


def test_unknown_device_and_own_message() -> None:
    alice, bob = _pair(label="unknown")
    carol = GroupDevice.joining(alice.state.group, bg.MemberDevice(_key("carol member"), _key("carol device")),
                                _det("carol"))
    with pytest.raises(GroupError) as info:
        bob.receive(carol.send(b"who?"))
    assert info.value.failure is Failure.UNKNOWN_DEVICE
    with pytest.raises(GroupError) as info:
        alice.receive(alice.send(b"mine"))
    assert info.value.failure is Failure.OWN_MESSAGE


def test_unannounced_device_is_read_but_flagged() -> None:
    """weshnet takes a chain key from any device whose signature verifies, announced or not."""
    alice, bob = _pair(label="unannounced")
    group = alice.state.group
    ghost = GroupDevice.joining(group, bg.MemberDevice(_key("ghost member"), _key("ghost device")), _det("ghost"))
    bob.receive_metadata(ghost.publish(bg.secret_metadata(ghost.state.own, bob.member_pk, ghost.state.own_chain,
                                                          group)))
    got = bob.receive(ghost.send(b"boo"))
    assert got.plaintext == b"boo" and got.member_pk is None


# --- altered and forged ------------------------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def _expect(failure: Failure, call: Callable[[], object], device: GroupDevice) -> GroupError:
    state = device.snapshot()
    with pytest.raises(GroupError) as info:
        call()
    assert info.value.failure is failure, info.value
    assert isinstance(info.value, VerificationError) and isinstance(info.value, ValueError)
    assert info.value.code == "berty-group" and str(failure) in str(info.value)
    assert device.snapshot() is state
    return info.value


def test_altered_message_rejected_changing_nothing() -> None:
    alice, bob = _pair(label="altered message")
    group = alice.state.group
    entry = alice.send(b"intact")
    env = bg.MessageEnvelope.decode(entry.payload)
    _expect(Failure.LOG_SIGNATURE, lambda: bob.receive(replace(entry, sig=_flip(entry.sig, 3))), bob)
    _expect(Failure.LOG_SIGNATURE, lambda: bob.receive(replace(entry, payload=_flip(entry.payload, 40))), bob)

    def resigned(altered: bg.MessageEnvelope) -> LogEntry:  # an insider: holds the group secret
        return bg.sign_log_entry(group, altered.encode())

    headers = _flip(env.message_headers, 0)
    _expect(Failure.ENVELOPE, lambda: bob.receive(resigned(replace(env, message_headers=headers))), bob)
    _expect(Failure.PAYLOAD, lambda: bob.receive(resigned(replace(env, message=_flip(env.message, 20)))), bob)
    _expect(Failure.NONCE, lambda: bob.receive(resigned(replace(env, nonce=env.nonce[:23]))), bob)
    assert bob.receive(entry).plaintext == b"intact"  # and the original still opens


def test_message_signed_by_another_device_rejected() -> None:
    """An insider that knows Alice's chain (it was Alice's key's box, say) but not her
    device key cannot sign as her."""
    alice, bob = _pair(label="wrong signer")
    group = alice.state.group
    mallory = _key("mallory device")
    envelope, _ = bg.seal_message(mallory, alice.state.own_chain, group, b"forged", _det("m"))
    env, headers = bg.open_message_headers(group, envelope)
    forged_headers = replace(headers, device_pk=alice.device_pk)
    nonce = env.nonce
    sealed_headers = bytes(crypto_secretbox(forged_headers.encode(), nonce, group.shared_secret))
    forged = bg.sign_log_entry(group, replace(env, message_headers=sealed_headers).encode())
    _expect(Failure.MESSAGE_SIGNATURE, lambda: bob.receive(forged), bob)


def test_altered_metadata_rejected_changing_nothing() -> None:
    alice, bob = _pair(label="altered metadata")
    group = alice.state.group
    carol_own = bg.MemberDevice(_key("carol member"), _key("carol device"))
    good = bg.secret_metadata(carol_own, bob.member_pk, bg.DeviceChainKey(b"k" * 32, 9), group)
    entry = bg.publish_metadata(group, good, _det("n"))
    _expect(Failure.LOG_SIGNATURE, lambda: bob.receive_metadata(replace(entry, payload=_flip(entry.payload, 30))), bob)
    env = entry.payload
    _expect(Failure.ENVELOPE, lambda: bob.receive_metadata(bg.sign_log_entry(group, _flip(env, len(env) - 1))), bob)
    # The Secret Entry's payload altered and re-signed by its device: the box does not open.
    secret = good.entry()
    assert isinstance(secret, bg.SecretEntry)
    altered = replace(secret, payload=_flip(secret.payload, 5))
    _expect(Failure.SECRET_BOX, lambda: bob.receive_metadata(
        bg.publish_metadata(group, bg.sign_entry(altered, carol_own.device), _det("n2"))), bob)
    # The payload altered, the device's signature kept: the signature check fails first.
    _expect(Failure.DEVICE_SIGNATURE, lambda: bob.receive_metadata(
        bg.publish_metadata(group, replace(good, payload=altered.encode()), _det("n3"))), bob)
    bob.receive_metadata(entry)
    assert bob.state.chain_of(carol_own.device.public) is not None


def test_secret_entry_with_the_wrong_box_key_rejected() -> None:
    """A box sealed to another member, or by a device other than the one named."""
    alice, bob = _pair(label="wrong box key")
    group = alice.state.group
    carol_own = bg.MemberDevice(_key("carol member"), _key("carol device"))
    chain = bg.DeviceChainKey(b"c" * 32, 0)
    to_other = bg.seal_device_chain_key(carol_own.device, _key("someone else").public, chain, group)
    from_other = bg.seal_device_chain_key(_key("other device"), bob.member_pk, chain, group)
    for box in (to_other, from_other):
        metadata = bg.sign_entry(bg.SecretEntry(carol_own.device.public, bob.member_pk, box), carol_own.device)
        entry = bob.publish(metadata)
        _expect(Failure.SECRET_BOX, lambda: bob.receive_metadata(entry), bob)  # noqa: B023
    with pytest.raises(GroupError) as info:
        bg.open_device_chain_key(bob.state.own.member, carol_own.device.public, to_other, group)
    assert info.value.failure is Failure.SECRET_BOX


def test_entries_signed_by_non_members_rejected() -> None:
    alice, bob = _pair(label="outsiders")
    group = alice.state.group
    outsider_group, _ = _multi_member("elsewhere")  # no secret of ours: cannot sign, seal or open
    mallory = bg.MemberDevice(_key("mallory member"), _key("mallory device"))
    announce = bg.member_device_metadata(mallory)
    _expect(Failure.LOG_SIGNATURE, lambda: bob.receive_metadata(bg.publish_metadata(outsider_group, announce)), bob)
    # Even with a valid log signature (stolen signing key), the envelope needs the secret.
    foreign = bg.seal_metadata(outsider_group, announce)
    _expect(Failure.ENVELOPE, lambda: bob.receive_metadata(bg.sign_log_entry(group, foreign)), bob)
    _expect(Failure.LOG_SIGNATURE, lambda: bob.receive(
        LogEntry(alice.send(b"x").payload, outsider_group.signing_key().sign(b"x"))), bob)
    # Insiders forging others: Alice's device claimed for Bob's member id, with Alice's
    # member signature (it is over the device key only) ...
    alices = bg.member_device_metadata(alice.state.own).entry()
    assert isinstance(alices, bg.MemberDeviceEntry)
    forged = bg.MemberDeviceEntry(bob.member_pk, alice.device_pk, alices.member_sig)
    _expect(Failure.MEMBER_SIGNATURE, lambda: bob.receive_metadata(bob.publish(bg.sign_entry(forged, mallory.device))),
            bob)
    claim = bg.MemberDeviceEntry(bob.member_pk, mallory.device.public, mallory.member.sign(mallory.device.public))
    _expect(Failure.MEMBER_SIGNATURE, lambda: bob.receive_metadata(
        bob.publish(bg.sign_entry(claim, mallory.device))), bob)  # Bob's member id claimed by Mallory
    alias = bg.ContactAliasKeyEntry(alice.device_pk, b"a" * 32)
    payload = alias.encode()
    _expect(Failure.DEVICE_SIGNATURE, lambda: bob.receive_metadata(bob.publish(
        bg.GroupMetadata(int(alias.event_type), payload, mallory.device.sign(payload)))), bob)
    # ... and an Init Member Entry not signed by the group id key.
    _expect(Failure.GROUP_SIGNATURE, lambda: bob.receive_metadata(
        bob.publish(bg.initial_member_metadata(mallory.device, mallory.device.public))), bob)
    _expect(Failure.EVENT_TYPE, lambda: bob.receive_metadata(bob.publish(bg.GroupMetadata(1001, b"", b""))), bob)
    assert bob.state.admins == () and mallory.device.public not in dict(bob.state.devices)


def test_invitation_with_a_wrong_secret_sig_refused() -> None:
    group, _ = _multi_member("invitation")
    tampered = replace(group, secret=_flip(group.secret, 0))
    with pytest.raises(GroupError) as info:
        bg.join(tampered, bg.MemberDevice(_key("m"), _key("d")))
    assert info.value.failure is Failure.SECRET_SIG
    with pytest.raises(GroupError) as info:
        bg.Group.decode(_flip(group.encode(), 0))
    assert info.value.failure in (Failure.DECODE, Failure.KEY)


def test_share_chain_key_once_per_member() -> None:
    alice, bob = _pair(label="share once")
    with pytest.raises(UsageError):
        bg.share_chain_key(alice.state, bob.member_pk)
    assert bg.members_awaiting_secret(alice.state) == ()


def test_alias_proof_document_construction() -> None:
    group, _ = _multi_member("alias")
    alias = _key("alias bob")
    own = bg.MemberDevice(bg.multi_member_key(alias, group.public_key), _key("device bob"))
    resolver = bg.alias_resolver(alias.public, group.public_key)
    entry = bg.verify_metadata(group, bg.alias_resolver_metadata(own, resolver, bg.alias_proof(alias, resolver)))
    assert isinstance(entry, bg.AliasResolverEntry)
    bg.verify_alias_proof(entry, alias.public, group.public_key)
    with pytest.raises(GroupError) as info:
        bg.verify_alias_proof(entry, _key("alias carol").public, group.public_key)
    assert info.value.failure is Failure.ALIAS_PROOF
    empty = bg.verify_metadata(group, bg.alias_resolver_metadata(own))  # weshnet's: nothing to check
    assert isinstance(empty, bg.AliasResolverEntry)
    with pytest.raises(GroupError):
        bg.verify_alias_proof(empty, alias.public, group.public_key)


def test_snapshot_restore_and_copies() -> None:
    alice, bob = _pair(label="snapshot")
    entries = [alice.send(b"%d" % i) for i in range(3)]
    before = bob.snapshot()
    assert copy.deepcopy(before) is before and hash(before) == hash(bob.snapshot())
    bob.receive(entries[2])
    after = bob.snapshot()
    assert after != before
    bob.restore(before)
    assert bob.snapshot() == before
    bob.receive(entries[2])
    assert bob.snapshot() == after  # deterministic: the same input gives the same state


# --- hypothesis: delivery orders ---------------------------------------------------------


@pytest.fixture(scope="module")
def three() -> tuple[bg.Group, dict[str, bg.GroupState], dict[str, list[LogEntry]]]:
    """Alice and Carol each send 6 messages; Bob's state before any arrives."""
    group, _ = _multi_member("orders")
    w = World(group, precompute=4)
    alice, bob, carol = w.join("alice", "alice"), w.join("bob", "bob"), w.join("carol", "carol")
    sent = {"alice": [alice.send(b"a%d" % i) for i in range(6)], "carol": [carol.send(b"c%d" % i) for i in range(6)]}
    return group, {"bob": bob.snapshot()}, sent



def _deliver(state: bg.GroupState, order: list[LogEntry]) -> tuple[bg.GroupState, list[bytes]]:
    """A driver that holds what it cannot open yet and retries it after every success."""
    held: list[LogEntry] = []
    opened: list[bytes] = []
    for entry in order:
        held.append(entry)
        progress = True
        while progress:
            progress = False
            for waiting in list(held):
                try:
                    state, got = bg.receive_message(state, waiting)
                except GroupError as exc:
                    assert exc.failure is Failure.COUNTER_AHEAD
                    continue
                opened.append(got.plaintext)
                held.remove(waiting)
                progress = True
    assert not held
    return state, opened


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_delivery_order_opens_everything_once(three: Any, rnd: pyrandom.Random) -> None:
    _, states, sent = three
    order = sent["alice"] + sent["carol"]
    rnd.shuffle(order)
    state, opened = _deliver(states["bob"], order)
    assert sorted(opened) == sorted([b"a%d" % i for i in range(6)] + [b"c%d" % i for i in range(6)])
    # The state reached does not depend on the order: each chain's window is the same.
    reference, _ = _deliver(states["bob"], sent["alice"] + sent["carol"])
    assert state == reference
    for entry in order:
        with pytest.raises(GroupError) as info:
            bg.receive_message(state, entry)
        assert info.value.failure is Failure.COUNTER_REPLAYED


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_single_altered_byte_is_rejected(three: Any, data: st.DataObject) -> None:
    group, states, sent = three
    entry = sent["alice"][0]
    which = data.draw(st.sampled_from(["payload", "sig"]))
    blob = getattr(entry, which)
    index = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    altered = blob[:index] + bytes([blob[index] ^ (1 << bit)]) + blob[index + 1:]
    state = states["bob"]
    with pytest.raises(GroupError):
        bg.receive_message(state, replace(entry, **{which: altered}))
    # An insider re-signing the altered envelope gets no further.
    if which == "payload":
        with pytest.raises(GroupError):
            bg.receive_message(state, bg.sign_log_entry(group, altered))


@settings(max_examples=25, deadline=None)
@given(st.permutations(range(5)), st.integers(0, 4))
def test_metadata_in_any_order_reaches_the_same_index(order: list[int], dup: int) -> None:
    """The metadata log is unordered (a CRDT): Member and Secret Entries applied in any
    order, with one delivered twice, give the same state."""
    group = _ORDER_GROUP
    entries = list(_ORDER_ENTRIES)
    results = []
    for sequence in (list(range(5)), [*order, dup]):
        state = _ORDER_BOB
        for i in sequence:
            state, _ = bg.apply_metadata(state, entries[i])
        results.append(state)
    assert results[0] == results[1]
    assert len(results[0].chains) == 2 and len(results[0].devices) == 3
    assert group.public_key == results[0].group.public_key


def _order_setup() -> tuple[bg.Group, bg.GroupState, list[bg.GroupMetadata]]:
    group, _ = bg.new_multi_member_group(_det("index group"))
    owns = [bg.MemberDevice(_key(f"member {i}"), _key(f"device {i}")) for i in range(3)]
    bob = bg.join(group, owns[0], _det("index bob"))
    chain = bg.DeviceChainKey(b"z" * 32, 0)
    entries = [bg.member_device_metadata(o) for o in owns]
    entries += [bg.secret_metadata(o, owns[0].member.public, chain, group) for o in owns[1:]]
    return group, bob, entries


_ORDER_GROUP, _ORDER_BOB, _ORDER_ENTRIES = _order_setup()


def test_public_api_is_exported() -> None:
    assert all(hasattr(bg, name) for name in bg.__all__)
