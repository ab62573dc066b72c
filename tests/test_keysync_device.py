"""KeySync's conditions and actions (A.1.2, A.1.3) one by one, on a real device."""

from __future__ import annotations

import random
import uuid

import pytest

from generated.keysync import CODEC, CommitReject, Identity, KeySync
from protocols.keysync import KeyRing, KeySyncDevice, OwnIdentity, trustwords
from protocols.keysync.envelope import DeviceKeys, EnvelopeError


def device(seed: int = 1) -> KeySyncDevice:
    ring = KeyRing()
    rng = random.Random(seed)
    ring.add_identity(OwnIdentity("alice@example.org", "Alice"), DeviceKeys.generate(rng.randbytes(32)))
    d = KeySyncDevice(f"d{seed}", ring, rng)
    d.machine = KeySync(d)
    return d


def test_challenge_and_response_are_uuid4_tids() -> None:
    d = device()
    d.newChallengeAndNegotiationBase()
    for tid in (d.challenge, d.response):
        assert len(tid) == 16 and uuid.UUID(bytes=tid).version == 4
    assert d.machine.buffer.challenge == d.challenge and d.machine.buffer.response == d.response


def test_open_negotiation_is_the_xor_of_base_and_partner_challenge() -> None:
    d = device()
    d.newChallengeAndNegotiationBase()
    partner = bytes(range(16))
    d.machine.buffer.challenge = partner
    d.openNegotiation()
    assert d.negotiation == bytes(a ^ b for a, b in zip(d.response, partner, strict=True))
    assert d.machine.buffer.negotiation == d.negotiation and d.partner is None


def test_we_are_offerer_when_the_partner_challenge_is_greater() -> None:
    d = device()
    d.challenge = bytes([0x80]) + bytes(15)
    d.machine.buffer.challenge = bytes([0x81]) + bytes(15)
    assert d.weAreOfferer()
    d.machine.buffer.challenge = bytes([0x7F]) + bytes(15)
    assert not d.weAreOfferer()
    d.machine.buffer.challenge = d.challenge
    assert d.sameChallenge() and not d.weAreOfferer()


def test_same_negotiation_needs_a_stored_negotiation() -> None:
    d = device()
    d.machine.buffer.negotiation = bytes(16)
    assert not d.sameNegotiation()
    d.storeNegotiation()
    assert d.sameNegotiation()
    d.machine.buffer.negotiation = bytes(15) + b"\x01"
    assert not d.sameNegotiation()


def test_trust_and_untrust_of_the_partner_key() -> None:
    d = device()
    d.partner = "AB" * 20
    d.trustThisKey()
    assert d.partner in d.keyring.trusted and d.machine.buffer.key == d.partner
    d.untrustThisKey()
    assert d.partner not in d.keyring.trusted and d.machine.buffer.key is None


def test_key_election() -> None:
    d = device()
    d.partner = "F" * 40
    assert d.keyElectionWon() == (d.keyring.primary < "F" * 40)
    d.partner = "0" * 40
    assert not d.keyElectionWon()


def test_prepare_backup_and_restore_own_keys() -> None:
    d = device()
    d.prepareOwnKeys()
    (identity,) = d.machine.buffer.ownIdentities
    assert isinstance(identity, Identity) and identity.fpr == d.keyring.primary
    d.backupOwnKeys()
    d.keyring.add(DeviceKeys.generate(b"x" * 32))
    d.prepareOwnKeys()
    assert len(d.prepared) == 2
    d.prepareOwnKeysFromBackup()
    assert d.prepared == d.backup and len(d.prepared) == 1


def test_key_reset_ungrouped_replaces_the_default_and_leaves_the_group() -> None:
    d = device()
    old = d.keyring.primary
    d.keyring.add_to_group([old])
    d.resetOwnKeysUngrouped()
    assert d.keyring.primary != old and not d.keyring.group and not d.deviceGrouped()


def test_trustwords_are_the_same_on_both_devices() -> None:
    a, b = "4ABE3AAF59AC32CFE4F86500A9411D176FF00E97", "0123456789ABCDEF0123456789ABCDEF01234567"
    assert trustwords(a, b) == trustwords(b, a)
    assert len(trustwords(a, b)) == 5 and trustwords(a, b) != trustwords(a, a.replace("4", "5"))


def test_tell_we_are_grouped_sets_the_buffer() -> None:
    d = device()
    d.tellWeAreGrouped()
    assert d.machine.buffer.is_group is True
    d.tellWeAreNotGrouped()
    assert d.machine.buffer.is_group is False


def test_a_message_label_names_whom_it_is_encrypted_to() -> None:
    """The explorer tells worlds apart by the labels of the messages in flight: a
    CommitReject sealed before and one sealed after its sender saw another device's key
    differ in who can open them, and so must their labels (else the two worlds are
    merged as one)."""
    a, b = device(1), device(2)
    reject = CommitReject(negotiation=bytes(16))
    before = a.capture(reject)
    a.seen[b.keyring.primary] = b.keyring.encryption_key(b.keyring.primary)
    after = a.capture(reject)
    assert a.describe(before) != a.describe(after)
    assert a.describe(after) == a.describe(a.capture(reject))  # whatever the nonces
    data = CODEC.encode(reject)
    assert b.open(a.seal(reject, data, after))[0] == data
    with pytest.raises(EnvelopeError, match="not encrypted to this device"):
        b.open(a.seal(reject, data, before))
