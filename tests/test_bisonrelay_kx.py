"""BisonRelay's P2P key exchange (protocols/bisonrelay/kx.py), with the real sntrup4591761.

BisonRelay's own tests hold no fixed KX vectors (their keys are random), so the KX is checked by its
properties: both sides of invite -> half -> full end with mirrored ratchet seeds, blobs open only
for their key and fail loudly otherwise, the alice rule is BR's. The BLAKE-256 behind the derived RV
points is checked against decred's known answers (tests/vectors/bisonrelay-blake256.json).

The messages travel sealed in a small JSON codec local to these tests, shaped like BR's JSON; the
project's own wire format (ASN.1 UPER) comes later. Keys are made once per module: sntrup key
generation is the slow part.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from typing import Any

import pytest
from nacl.bindings import crypto_scalarmult_base

from protocols.bisonrelay import kx, sntrup4591761
from protocols.bisonrelay.kx import (
    AcceptedInvite,
    CompletedKX,
    FullIdentity,
    KeyExchange,
    KXError,
    OOBPublicIdentityInvite,
    PendingInvite,
    PublicIdentity,
    RMOFullKX,
    RMOHalfKX,
)

VECTORS = Path(__file__).parent / "vectors" / "bisonrelay-blake256.json"
CT = sntrup4591761.CIPHERTEXT_SIZE


class Drbg:
    """A reproducible ``random(n)``: SHAKE-256 of a seed and a counter; records what it hands out."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.count = 0
        self.drawn: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        self.count += 1
        out = hashlib.shake_256(self.seed + self.count.to_bytes(8, "big")).digest(n)
        self.drawn.append(out)
        return out


# --- a test codec shaped like BR's JSON (hex for fixed arrays, base64 for []byte) -----------------


def _pub_obj(p: PublicIdentity) -> dict[str, Any]:
    return {
        "name": p.name, "nick": p.nick, "sigKey": p.sig_key.hex(), "key": p.key.hex(),
        "identity": p.identity.hex(), "digest": p.digest.hex(), "signature": p.signature.hex(),
        "avatar": base64.b64encode(p.avatar).decode() if p.avatar else None,
    }  # fmt: skip


def _pub_from(o: dict[str, Any]) -> PublicIdentity:
    return PublicIdentity(
        name=o["name"], nick=o["nick"], sig_key=bytes.fromhex(o["sigKey"]), key=bytes.fromhex(o["key"]),
        identity=bytes.fromhex(o["identity"]), digest=bytes.fromhex(o["digest"]),
        signature=bytes.fromhex(o["signature"]), avatar=base64.b64decode(o["avatar"] or ""),
    )  # fmt: skip


def _kx_obj(k: KeyExchange) -> dict[str, Any]:
    return {"public": base64.b64encode(k.public).decode(), "cipher": k.cipher.hex()}


def _kx_from(o: dict[str, Any]) -> KeyExchange:
    return KeyExchange(public=base64.b64decode(o["public"]), cipher=bytes.fromhex(o["cipher"]))


def encode_invite(i: OOBPublicIdentityInvite) -> bytes:
    obj = {"public": _pub_obj(i.public), "initialrendezvous": i.initial_rendezvous.hex(),
           "resetrendezvous": i.reset_rendezvous.hex()}  # fmt: skip
    return json.dumps(obj).encode()


def decode_invite(b: bytes) -> OOBPublicIdentityInvite:
    o = json.loads(b)
    return OOBPublicIdentityInvite(public=_pub_from(o["public"]),
                                   initial_rendezvous=bytes.fromhex(o["initialrendezvous"]),
                                   reset_rendezvous=bytes.fromhex(o["resetrendezvous"]))  # fmt: skip


def encode_half(h: RMOHalfKX) -> bytes:
    obj = {"public": _pub_obj(h.public), "halfkx": _kx_obj(h.half_kx),
           "initialrendezvous": h.initial_rendezvous.hex(), "resetrendezvous": h.reset_rendezvous.hex()}  # fmt: skip
    return json.dumps(obj).encode()


def decode_half(b: bytes) -> RMOHalfKX:
    o = json.loads(b)
    return RMOHalfKX(public=_pub_from(o["public"]), half_kx=_kx_from(o["halfkx"]),
                     initial_rendezvous=bytes.fromhex(o["initialrendezvous"]),
                     reset_rendezvous=bytes.fromhex(o["resetrendezvous"]))  # fmt: skip


def encode_full(f: RMOFullKX) -> bytes:
    return json.dumps({"fullkx": _kx_obj(f.full_kx)}).encode()


def decode_full(b: bytes) -> RMOFullKX:
    return RMOFullKX(full_kx=_kx_from(json.loads(b)["fullkx"]))


# --- fixtures: identities once per module, one complete KX ----------------------------------------


@pytest.fixture(scope="module")
def alice() -> FullIdentity:
    return kx.new_identity("Alice McMalice", "alice", Drbg(b"alice"))


@pytest.fixture(scope="module")
def bob() -> FullIdentity:
    return kx.new_identity("Bob Bobberino", "bob", Drbg(b"bob"))


@pytest.fixture(scope="module")
def carol() -> FullIdentity:
    return kx.new_identity("Carol", "carol", Drbg(b"carol"))


def run_kx(inviter: FullIdentity, acceptor: FullIdentity, seed: bytes) -> tuple[CompletedKX, CompletedKX]:
    """invite (out of band) -> sealed RMOHalfKX at initialRV -> sealed RMOFullKX at step3RV."""
    ri, ra = Drbg(seed + b"/inviter"), Drbg(seed + b"/acceptor")
    pending, invite = kx.create_invite(inviter.public, ri)
    oob = encode_invite(invite)  # plain, out of band

    accepted, half = kx.accept_invite(acceptor, decode_invite(oob), ra)
    blob2 = kx.seal(encode_half(half), invite.public.key, ra)

    half_at_inviter = decode_half(kx.open(blob2, inviter.private_key))
    assert half_at_inviter == half
    done_inviter, full = kx.answer_half_kx(inviter, pending, half_at_inviter, ri)
    blob3 = kx.seal(encode_full(full), half_at_inviter.public.key, ri)

    done_acceptor = kx.finish_full_kx(acceptor, accepted, decode_full(kx.open(blob3, acceptor.private_key)))
    return done_inviter, done_acceptor


@pytest.fixture(scope="module")
def completed(alice: FullIdentity, bob: FullIdentity) -> tuple[CompletedKX, CompletedKX]:
    """Alice invites, Bob accepts."""
    return run_kx(alice, bob, b"kx1")


# --- BLAKE-256 and RV points ----------------------------------------------------------------------


def test_blake256_known_answers() -> None:
    rows = json.loads(VECTORS.read_text(encoding="utf-8"))["blake256"]
    assert len(rows) >= 20
    for row in rows:
        assert kx.blake256(bytes.fromhex(row["data"])).hex() == row["blake256"], row["name"]


def test_rv_points() -> None:
    key = bytes(range(32))
    assert kx.ratchet_rendezvous(key, 7) == kx.blake256(key + b"\x07\x00\x00\x00")  # little-endian count
    assert kx.ratchet_rendezvous(key, 0) != kx.ratchet_rendezvous(key, 1)
    assert kx.paid_invite_rendezvous(key) == kx.blake256(key)
    r = Drbg(b"rv")
    assert kx.new_rendezvous(r) == r.drawn[-1] and len(r.drawn[-1]) == 32  # random, not derived
    with pytest.raises(KXError) as e:
        kx.ratchet_rendezvous(key[:31], 0)
    assert e.value.what == "length"


def test_autokx_tie_break_yields_on_exactly_one_side() -> None:
    a, b = bytes([1]) + bytes(31), bytes([2]) + bytes(31)
    # Each side compares the incoming invite's RV with its own outstanding one: the views are swapped.
    assert kx.autokx_yields(a, b) != kx.autokx_yields(b, a)
    assert kx.autokx_yields(a, b)  # big-endian: the smaller incoming RV yields
    assert not kx.autokx_yields(a, a)


# --- identities -----------------------------------------------------------------------------------


def test_identity_fields(alice: FullIdentity) -> None:
    p = alice.public
    assert (len(p.sig_key), len(p.key), len(p.identity), len(p.signature)) == (32, 1218, 32, 64)
    assert len(alice.private_key) == 1600 and len(alice.private_sig_key) == 64
    assert alice.private_sig_key[32:] == p.sig_key  # Go's layout: seed || public
    assert p.identity == hashlib.sha256(p.key).digest()
    assert p.digest == hashlib.sha256(p.sig_key + p.key + p.identity).digest()
    assert p.verify() and p.verify_identity()
    signature = alice.sign(b"hello")
    assert len(signature) == 64


def test_identity_is_reproducible(alice: FullIdentity) -> None:
    assert kx.new_identity("Alice McMalice", "alice", Drbg(b"alice")) == alice


def test_identity_signature_covers_keys_not_names(alice: FullIdentity, bob: FullIdentity) -> None:
    p = alice.public
    # BR signs SHA-256(sig_key || key || identity): renaming keeps the signature valid ...
    assert replace(p, name="Mallory", nick="m", avatar=b"\x89PNG").verify()
    # ... while any key swap breaks it, or the id.
    assert not replace(p, key=bob.public.key).verify()
    assert not replace(p, key=bob.public.key).verify_identity()
    assert not replace(p, sig_key=bob.public.sig_key).verify()
    assert not replace(p, signature=bytes(64)).verify()


def test_records_are_frozen_and_sized(alice: FullIdentity) -> None:
    with pytest.raises(FrozenInstanceError):
        alice.public.name = "x"  # type: ignore[misc]
    with pytest.raises(KXError) as e:
        replace(alice.public, key=alice.public.key[:-1])
    assert e.value.what == "length" and "key" in str(e.value)
    with pytest.raises(KXError):
        KeyExchange(public=bytes(71), cipher=bytes(CT))
    with pytest.raises(KXError):
        OOBPublicIdentityInvite(public=alice.public, initial_rendezvous=bytes(31), reset_rendezvous=bytes(32))


# --- seal / open ----------------------------------------------------------------------------------


def test_seal_open_round_trip_and_layout(alice: FullIdentity) -> None:
    r = Drbg(b"seal")
    message = b"half kx goes here"
    blob = kx.seal(message, alice.public.key, r)
    assert len(blob) == CT + 24 + 16 + len(message)
    assert blob[CT : CT + 24] == r.drawn[-1]  # the random nonce, drawn last, right after c
    assert kx.open(blob, alice.private_key) == message
    assert kx.open(blob, alice.private_key) == message  # no state: opens again
    assert kx.seal(message, alice.public.key, Drbg(b"seal")) == blob  # reproducible
    assert kx.open(kx.seal(b"", alice.public.key, r), alice.private_key) == b""


def test_seal_parts_is_seal_split(alice: FullIdentity) -> None:
    c, box = kx.seal_parts(b"transitive", alice.public.key, Drbg(b"p"))
    assert len(c) == CT
    assert kx.seal(b"transitive", alice.public.key, Drbg(b"p")) == c + box
    assert kx.open_parts(c, box, alice.private_key) == b"transitive"


def test_open_tampered_box(alice: FullIdentity) -> None:
    blob = bytearray(kx.seal(b"message", alice.public.key, Drbg(b"t")))
    for where in (CT + 3, CT + 24 + 2, len(blob) - 1):  # nonce, tag, ciphertext body
        bad = bytearray(blob)
        bad[where] ^= 0x01
        with pytest.raises(KXError) as e:
            kx.open(bytes(bad), alice.private_key)
        assert e.value.what == "secretbox"


def test_open_tampered_ciphertext(alice: FullIdentity) -> None:
    blob = kx.seal(b"message", alice.public.key, Drbg(b"tc"))
    # A byte of the confirmation hash, then of the rounded polynomial: sntrup's checks (weight,
    # re-encryption, confirmation) fail, which BR treats as "could not decapsulate", even where
    # the recovered key would still be the right one.
    for where in (5, 500, CT - 1):
        bad = bytearray(blob)
        bad[where] ^= 0x01
        with pytest.raises(KXError) as e:
            kx.open(bytes(bad), alice.private_key)
        assert e.value.what == "decapsulation", where


def test_open_truncated(alice: FullIdentity) -> None:
    blob = kx.seal(b"message", alice.public.key, Drbg(b"tr"))
    for size in (0, CT - 1, CT, CT + 24 + 15):
        with pytest.raises(KXError) as e:
            kx.open(blob[:size], alice.private_key)
        assert e.value.what == "length", size
        assert "at least" in str(e.value)
    with pytest.raises(KXError) as e:
        kx.open(blob[:-1], alice.private_key)  # long enough, but the box lost a byte
    assert e.value.what == "secretbox"


def test_open_blob_for_another_key(alice: FullIdentity, bob: FullIdentity) -> None:
    blob = kx.seal(b"for bob only", bob.public.key, Drbg(b"other"))
    with pytest.raises(KXError) as e:
        kx.open(blob, alice.private_key)
    assert e.value.what == "decapsulation"
    assert kx.open(blob, bob.private_key) == b"for bob only"


def test_secretbox_is_sw_seal() -> None:
    key = bytes([2]) * 32
    box = kx.secretbox_seal(b"Hello, world!", key, lambda n: bytes([1]) * n)
    assert box[:24] == bytes([1]) * 24 and len(box) == 24 + 16 + 13
    assert kx.secretbox_open(box, key) == b"Hello, world!"
    with pytest.raises(KXError) as e:
        kx.secretbox_open(box, bytes(32))
    assert e.value.what == "secretbox"


# --- the ratchet key exchange ---------------------------------------------------------------------


def test_full_kx_seeds_mirror(completed: tuple[CompletedKX, CompletedKX]) -> None:
    inviter, acceptor = completed
    i, a = inviter.seed, acceptor.seed
    assert i.root_key == a.root_key
    # What one side sends with, the other receives with.
    assert i.send_header_key == a.recv_header_key != bytes(32)
    assert i.send_chain_key == a.recv_chain_key != bytes(32)
    assert i.next_send_header_key == a.next_recv_header_key
    assert i.next_recv_header_key == a.next_send_header_key
    assert a.send_header_key == i.recv_header_key == bytes(32)  # not yet: alice ratchets first
    assert a.send_chain_key == i.recv_chain_key == bytes(32)
    # The inviter's X25519 key is the first ratchet key; alice holds its public.
    assert a.recv_ratchet_public == crypto_scalarmult_base(i.send_ratchet_private)
    assert a.send_ratchet_private == i.recv_ratchet_public == bytes(32)
    assert (i.my_half, i.their_half) == (a.their_half, a.my_half)
    # The first message RVs meet, both ways.
    assert i.send_rendezvous() == a.recv_rendezvous()
    assert a.send_rendezvous() == i.recv_rendezvous()
    assert i.send_rendezvous() != a.send_rendezvous()
    # Labels: every derived key distinct.
    keys = {i.root_key, i.send_header_key, i.next_send_header_key, i.next_recv_header_key, i.send_chain_key}
    assert len(keys) == 5


def test_full_kx_rvs_and_peers(
    completed: tuple[CompletedKX, CompletedKX], alice: FullIdentity, bob: FullIdentity
) -> None:
    inviter, acceptor = completed
    assert inviter.peer == bob.public and acceptor.peer == alice.public
    assert inviter.initial_rendezvous == acceptor.initial_rendezvous
    assert inviter.my_reset_rendezvous == acceptor.their_reset_rendezvous
    assert inviter.their_reset_rendezvous == acceptor.my_reset_rendezvous
    rvs = {inviter.initial_rendezvous, inviter.my_reset_rendezvous, inviter.their_reset_rendezvous}
    assert len(rvs) == 3


def test_alice_rule(completed: tuple[CompletedKX, CompletedKX]) -> None:
    inviter, acceptor = completed
    # The acceptor (who sent RMOHalfKX) completes as alice; the inviter does not.
    assert acceptor.seed.alice and acceptor.seed.ratchet
    assert not inviter.seed.alice and not inviter.seed.ratchet
    # shared = SHA-256(alice's encapsulated key || the inviter's), keys = HMAC-SHA256(shared, label).
    shared = hashlib.sha256(acceptor.seed.my_half + inviter.seed.my_half).digest()
    assert inviter.seed.root_key == hmac.new(shared, b"root key", hashlib.sha256).digest()
    assert inviter.seed.send_header_key == hmac.new(shared, b"header key", hashlib.sha256).digest()
    assert inviter.seed.send_chain_key == hmac.new(shared, b"chain key", hashlib.sha256).digest()
    assert acceptor.seed.next_send_header_key == hmac.new(shared, b"next send header key", hashlib.sha256).digest()
    assert acceptor.seed.next_recv_header_key == hmac.new(shared, b"next receive header key", hashlib.sha256).digest()


def test_both_sides_non_alice_disagree(alice: FullIdentity, bob: FullIdentity) -> None:
    ha, kxa = kx.fill_key_exchange(bob.public.key, Drbg(b"ha"))
    hb, kxb = kx.fill_key_exchange(alice.public.key, Drbg(b"hb"))
    sa = kx.complete_key_exchange(ha, kxb, alice.private_key, alice=False)
    sb = kx.complete_key_exchange(hb, kxa, bob.private_key, alice=False)
    assert sa.root_key != sb.root_key  # the order of the halves is what the rule fixes
    sb = kx.complete_key_exchange(hb, kxa, bob.private_key, alice=True)
    assert sa.root_key == sb.root_key and sa.send_chain_key == sb.recv_chain_key


def test_key_exchange_shape(bob: FullIdentity) -> None:
    half, k = kx.fill_key_exchange(bob.public.key, Drbg(b"shape"))
    assert len(k.cipher) == CT and len(k.public) == 24 + 16 + 32
    # Public is the X25519 public of kx_private, boxed under the encapsulated key.
    assert kx.secretbox_open(k.public, half.my_half) == crypto_scalarmult_base(half.kx_private)
    assert sntrup4591761.decapsulate(k.cipher, bob.private_key) == half.my_half


def test_complete_rejects_bad_halves(alice: FullIdentity, bob: FullIdentity, carol: FullIdentity) -> None:
    ha, _ = kx.fill_key_exchange(bob.public.key, Drbg(b"r1"))
    _, kxb = kx.fill_key_exchange(alice.public.key, Drbg(b"r2"))
    tampered = KeyExchange(public=kxb.public[:-1] + bytes([kxb.public[-1] ^ 1]), cipher=kxb.cipher)
    with pytest.raises(KXError) as e:
        kx.complete_key_exchange(ha, tampered, alice.private_key, alice=True)
    assert e.value.what == "secretbox"
    # A half encapsulated to someone else does not complete.
    _, kxc = kx.fill_key_exchange(carol.public.key, Drbg(b"r3"))
    with pytest.raises(KXError) as e:
        kx.complete_key_exchange(ha, kxc, alice.private_key, alice=True)
    assert e.value.what == "decapsulation"


def test_complete_validates_the_ecdh_point(alice: FullIdentity) -> None:
    # A well-formed half whose boxed point is 0: built by hand, as an attacker would.
    cipher, k = sntrup4591761.encapsulate(alice.public.key, Drbg(b"pt"))
    bad = KeyExchange(public=kx.secretbox_seal(bytes(32), k, Drbg(b"n")), cipher=cipher)
    half, _ = kx.fill_key_exchange(alice.public.key, Drbg(b"h"))
    with pytest.raises(KXError) as e:
        kx.complete_key_exchange(half, bad, alice.private_key, alice=True)
    assert e.value.what == "ecdh-point"


@pytest.mark.parametrize(
    ("value", "ok"), [(0, False), (2, False), (3, True), (2**255 - 20, True), (2**255 - 19, False), (2**256 - 1, False)]
)
def test_validate_ecdh_point(value: int, ok: bool) -> None:
    point = value.to_bytes(32, "little")
    if ok:
        kx.validate_ecdh_point(point)
    else:
        with pytest.raises(KXError) as e:
            kx.validate_ecdh_point(point)
        assert e.value.what == "ecdh-point"


def test_self_kx_refused(alice: FullIdentity) -> None:
    _, invite = kx.create_invite(alice.public, Drbg(b"self"))
    with pytest.raises(KXError) as e:
        kx.accept_invite(alice, invite, Drbg(b"self2"))
    assert e.value.what == "self-kx"


def test_pending_states(alice: FullIdentity, bob: FullIdentity) -> None:
    pending, invite = kx.create_invite(alice.public, Drbg(b"pend"))
    assert isinstance(pending, PendingInvite)
    assert (pending.initial_rendezvous, pending.my_reset_rendezvous) == (
        invite.initial_rendezvous, invite.reset_rendezvous)  # fmt: skip
    accepted, half = kx.accept_invite(bob, invite, Drbg(b"pend2"))
    assert isinstance(accepted, AcceptedInvite)
    assert accepted.step3_rendezvous == half.initial_rendezvous == half.step3_rendezvous
    assert accepted.their_reset_rendezvous == invite.reset_rendezvous
    assert accepted.my_reset_rendezvous == half.reset_rendezvous
    assert half.public == bob.public and accepted.peer == alice.public


# --- ratchet reset --------------------------------------------------------------------------------


def test_reset_invite_opens_only_for_the_peer(
    completed: tuple[CompletedKX, CompletedKX], alice: FullIdentity, bob: FullIdentity, carol: FullIdentity
) -> None:
    inviter, acceptor = completed  # Alice invited, Bob accepted
    # Bob asks for a reset: a *new* invite, sealed to Alice's known key, sent to her reset RV.
    r = Drbg(b"reset")
    pending, invite = kx.create_invite(bob.public, r)
    blob = kx.seal(encode_invite(invite), acceptor.peer.key, r)
    destination = acceptor.their_reset_rendezvous
    assert destination == inviter.my_reset_rendezvous  # where Alice listens
    assert invite.initial_rendezvous != acceptor.initial_rendezvous  # fresh RVs

    with pytest.raises(KXError):
        kx.open(blob, carol.private_key)
    with pytest.raises(KXError):
        kx.open(blob, bob.private_key)

    received = decode_invite(kx.open(blob, alice.private_key))
    kx.check_reset_invite(received, inviter.peer)  # it is Bob's known identity
    with pytest.raises(KXError) as e:
        kx.check_reset_invite(received, carol.public)
    assert e.value.what == "reset-identity"

    # Alice accepts: in the new KX she is alice=True, Bob (who asked) is the inviter.
    accepted, half = kx.accept_invite(alice, received, Drbg(b"reset-a"))
    done_bob, full = kx.answer_half_kx(bob, pending, half, Drbg(b"reset-b"))
    done_alice = kx.finish_full_kx(alice, accepted, full)
    assert done_alice.seed.alice and not done_bob.seed.alice
    assert done_alice.seed.root_key == done_bob.seed.root_key != acceptor.seed.root_key


def test_reset_from_impostor_with_same_name(alice: FullIdentity, bob: FullIdentity, carol: FullIdentity) -> None:
    fake = replace(carol.public, name=bob.public.name, nick=bob.public.nick)
    _, invite = kx.create_invite(fake, Drbg(b"imp"))
    with pytest.raises(KXError) as e:
        kx.check_reset_invite(invite, bob.public)
    assert e.value.what == "reset-identity"
