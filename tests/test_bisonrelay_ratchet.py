"""BisonRelay's Double Ratchet (protocols/bisonrelay/ratchet.py), started from a real KX (kx.py).

BisonRelay's ratchet tests (ratchet/ratchet_test.go) use random keys, so they hold no known-answer
ciphertexts; what they fix (their scripts, limits and sizes) is in tests/vectors/bisonrelay-ratchet.json
and is run here as they run it: after every step both ratchets are written to Go's JSON state and
read back. The construction is checked by recomputing messages by hand from the keys (HMAC-SHA256,
SHA-256, X25519, secretbox), the rest by properties. No Go toolchain able to build BR (Go >= 1.23)
is available, so nothing here was cross-checked by running the Go code.

Identities and the KX are made once per module (sntrup key generation is the slow part); each
test starts its ratchets from the KX's seeds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_scalarmult,
    crypto_scalarmult_base,
    crypto_secretbox_easy,
    crypto_secretbox_open_easy,
)

from protocols.bisonrelay import kx
from protocols.bisonrelay import ratchet as rt
from protocols.bisonrelay.ratchet import GoStateError, Ratchet, RatchetBusted, RatchetError, RatchetState
from runtime.errors import UsageError, VerificationError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "bisonrelay-ratchet.json").read_text(encoding="utf-8"))
T0 = 1_700_000_000.0  # the tests' clock starts here (whole seconds: Go's JSON keeps seconds for saved keys)
DAY = 24 * 3600.0

# ratchet/disk/disk.go, type RatchetState: (JSON name, Go type), in the struct's order.
GO_RATCHET_STATE = [
    ("rootKey", "[]byte"),
    ("sendHeaderKey", "[]byte"),
    ("recvHeaderKey", "[]byte"),
    ("nextSendHeaderKey", "[]byte"),
    ("nextRecvHeaderKey", "[]byte"),
    ("prevRecvHeaderKey", "[]byte"),
    ("sendChainKey", "[]byte"),
    ("recvChainKey", "[]byte"),
    ("sendPrivate", "[]byte"),  # SendRatchetPrivate
    ("recvPublic", "[]byte"),  # RecvRatchetPublic
    ("sendCount", "uint32"),
    ("recvCount", "uint32"),
    ("prevSendCount", "uint32"),
    ("prevRecvCount", "uint32"),
    ("ratchet", "bool"),
    ("kxprivate", "[]byte"),
    ("myHalf", "[]byte"),
    ("theirHalf", "[]byte"),
    ("savedKeys", "[]RatchetState_SavedKeys"),
    ("lastEncryptTime", "int64"),
    ("lastDencryptTime", "int64"),  # sic, LastDecryptTime's tag
]
# type RatchetState_SavedKeys and RatchetState_SavedKeys_MessageKey.
GO_SAVED_KEYS = [("headerKey", "[]byte"), ("messageKeys", "[]RatchetState_SavedKeys_MessageKey")]
GO_MESSAGE_KEY = [("num", "uint32"), ("key", "[]byte"), ("creationTime", "int64")]


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


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# --- fixtures: one real KX per module --------------------------------------------------------------


@pytest.fixture(scope="module")
def kx_done() -> tuple[kx.CompletedKX, kx.CompletedKX]:
    """(inviter's, acceptor's) completion: invite -> RMOHalfKX -> RMOFullKX, sealed as BR seals them."""
    inviter = kx.new_identity("Ivy Inviter", "ivy", Drbg(b"ivy"))
    acceptor = kx.new_identity("Ace Acceptor", "ace", Drbg(b"ace"))
    ri, ra = Drbg(b"kx/inviter"), Drbg(b"kx/acceptor")
    pending, invite = kx.create_invite(inviter.public, ri)
    accepted, half = kx.accept_invite(acceptor, invite, ra)
    kx.open(kx.seal(b"RMOHalfKX", inviter.public.key, ra), inviter.private_key)  # the sealing works both ways
    done_inviter, full = kx.answer_half_kx(inviter, pending, half, ri)
    done_acceptor = kx.finish_full_kx(acceptor, accepted, full)
    return done_inviter, done_acceptor


def pair(
    kx_done: tuple[kx.CompletedKX, kx.CompletedKX], tag: bytes = b"", clock: Clock | None = None
) -> tuple[Ratchet, Ratchet]:
    """(inviter ``a``, acceptor ``b``): BR's test names; ``a`` completed with alice=false."""
    c = clock or Clock()
    a = Ratchet.from_seed(kx_done[0].seed, random=Drbg(b"a" + tag), clock=c)
    b = Ratchet.from_seed(kx_done[1].seed, random=Drbg(b"b" + tag), clock=c)
    return a, b


def reload(r: Ratchet, clock: Clock, random: Drbg, lifetime: float = rt.SAVED_KEY_LIFETIME) -> Ratchet:
    """Through Go's JSON and back (clientdb's UpdateRatchet then readRatchet)."""
    text = json.dumps(r.to_go_state(lifetime=lifetime), separators=(",", ":"))
    return Ratchet.from_go_state(json.loads(text), random=random, clock=clock)


def rejects(r: Ratchet, message: bytes, what: str | tuple[str, ...] | None = None) -> RatchetError:
    """``decrypt`` fails, with ``what`` if given, and the state is exactly as before."""
    before = r.snapshot()
    with pytest.raises(RatchetError) as e:
        r.decrypt(message)
    assert r.snapshot() == before
    if what is not None:
        assert e.value.what in ((what,) if isinstance(what, str) else what), e.value
    return e.value


def h(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, label, hashlib.sha256).digest()


# --- constants and BR's fixed values ---------------------------------------------------------------


def test_constants_are_brs() -> None:
    c = VECTORS["constants"]
    assert (
        c["headerSize"], c["sealedHeaderSize"], c["nonceInHeaderOffset"], c["maxMissingMessages"],
    ) == (rt.HEADER_SIZE, rt.SEALED_HEADER_SIZE, rt.NONCE_IN_HEADER_OFFSET, rt.MAX_MISSING_MESSAGES)  # fmt: skip
    labels = c["labels"]
    assert rt.CHAIN_KEY_LABEL.decode() == labels["chainKeyLabel"]
    assert rt.HEADER_KEY_LABEL.decode() == labels["headerKeyLabel"]
    assert rt.NEXT_RECV_HEADER_KEY_LABEL.decode() == labels["nextRecvHeaderKeyLabel"]
    assert rt.ROOT_KEY_LABEL.decode() == labels["rootKeyLabel"]
    assert rt.ROOT_KEY_UPDATE_LABEL.decode() == labels["rootKeyUpdateLabel"]
    assert rt.SEND_HEADER_KEY_LABEL.decode() == labels["sendHeaderKeyLabel"]
    assert rt.MESSAGE_KEY_LABEL.decode() == labels["messageKeyLabel"]
    assert rt.CHAIN_KEY_STEP_LABEL.decode() == labels["chainKeyStepLabel"]
    assert c["diskStateLifetimeSeconds"] == rt.SAVED_KEY_LIFETIME
    assert c["resetAllOldRatchetsDefaultSeconds"] == rt.RESET_OLD_RATCHETS_INTERVAL


def test_encrypted_size(kx_done: Any) -> None:
    v = VECTORS["encrypted_size"]
    assert rt.encrypted_size(v["message_size"]) == v["size"] == 248
    a, _ = pair(kx_done)
    for n in (0, 1, 128, 5000):
        assert len(a.encrypt(bytes(n))) == rt.encrypted_size(n)


def test_invalid_ecdh_points_of_br_tests() -> None:
    # TestECDHpoints: the KX refuses these halves (kx.validate_ecdh_point, BR's validateECDHpoint).
    for point in VECTORS["invalid_ecdh_points"]["points_hex"]:
        with pytest.raises(kx.KXError):
            kx.validate_ecdh_point(bytes.fromhex(point))
    kx.validate_ecdh_point(bytes(crypto_scalarmult_base(bytes(range(32)))))


# --- the construction, recomputed by hand --------------------------------------------------------


def test_inviter_first_message_by_hand(kx_done: Any) -> None:
    """The inviter sends on the KX's chain at once: no DH step, its KX X25519 key in the header."""
    seed = kx_done[0].seed
    random = Drbg(b"hand/a")
    a = Ratchet.from_seed(seed, random=random, clock=Clock())
    out = a.encrypt(b"hello")
    header_nonce, message_nonce = random.drawn  # the header's, then the message's
    message_key = h(seed.send_chain_key, b"message key")
    header = struct.pack("<II", 0, 0) + bytes(crypto_scalarmult_base(seed.send_ratchet_private)) + message_nonce
    expected = (
        header_nonce
        + bytes(crypto_secretbox_easy(header, header_nonce, seed.send_header_key))
        + bytes(crypto_secretbox_easy(b"hello", message_nonce, message_key))
    )
    assert out == expected
    s = a.snapshot()
    assert s.send_chain_key == h(seed.send_chain_key, b"chain key step") and s.send_count == 1
    assert s.root_key == seed.root_key and not s.ratchet


def test_acceptor_first_message_is_a_dh_step_by_hand(kx_done: Any) -> None:
    seed = kx_done[1].seed
    assert seed.ratchet  # alice's first Encrypt ratchets
    random = Drbg(b"hand/b")
    b = Ratchet.from_seed(seed, random=random, clock=Clock())
    out = b.encrypt(b"hi")
    private, header_nonce, message_nonce = random.drawn  # the new X25519 key comes first
    shared = bytes(crypto_scalarmult(private, seed.recv_ratchet_public))
    km = hashlib.sha256(b"root key update" + seed.root_key + shared).digest()
    chain = h(km, b"chain key")
    header = struct.pack("<II", 0, 0) + bytes(crypto_scalarmult_base(private)) + message_nonce
    expected = (
        header_nonce
        + bytes(crypto_secretbox_easy(header, header_nonce, seed.next_send_header_key))  # next becomes current
        + bytes(crypto_secretbox_easy(b"hi", message_nonce, h(chain, b"message key")))
    )
    assert out == expected
    s = b.snapshot()
    assert s.root_key == h(km, b"root key")
    assert s.send_header_key == seed.next_send_header_key
    assert s.next_send_header_key == h(km, b"next send header key")
    assert s.send_chain_key == h(chain, b"chain key step")
    assert (s.send_count, s.prev_send_count, s.ratchet) == (1, 0, False)
    # And the header opens with the inviter's *next* receive header key (the step).
    assert bytes(crypto_secretbox_open_easy(out[24:104], out[:24], kx_done[0].seed.next_recv_header_key)) == header


def test_receiver_step_by_hand(kx_done: Any) -> None:
    """The inviter takes the acceptor's first message: a receiving DH step, every field as Go sets it."""
    a, _ = pair(kx_done, b"hand")
    random = Drbg(b"hand/b")
    b = Ratchet.from_seed(kx_done[1].seed, random=random, clock=Clock())
    before = a.snapshot()
    m = b.encrypt(b"hi")
    b_private = random.drawn[0]
    assert a.decrypt(m) == b"hi"
    s = a.snapshot()
    shared = bytes(crypto_scalarmult(before.send_ratchet_private, bytes(crypto_scalarmult_base(b_private))))
    km = hashlib.sha256(b"root key update" + before.root_key + shared).digest()
    assert s.root_key == h(km, b"root key") == b.snapshot().root_key
    assert s.recv_chain_key == h(h(km, b"chain key"), b"chain key step")
    assert (s.prev_recv_header_key, s.recv_header_key) == (before.recv_header_key, before.next_recv_header_key)
    assert s.next_recv_header_key == h(km, b"next send header key") == b.snapshot().next_send_header_key
    assert s.send_ratchet_private == bytes(32)  # zeroed: the next encrypt draws a new one
    assert a.to_go_state()["sendPrivate"] == base64.b64encode(bytes(32)).decode()
    assert s.recv_ratchet_public == bytes(crypto_scalarmult_base(b_private))
    assert (s.recv_count, s.prev_recv_count, s.ratchet, s.saved) == (1, 0, True, ())
    # The untouched side of the state.
    assert (s.send_header_key, s.send_chain_key, s.send_count) == (
        before.send_header_key, before.send_chain_key, before.send_count,
    )  # fmt: skip


def test_ratchets_are_reproducible(kx_done: Any) -> None:
    def run() -> list[bytes]:
        a, b = pair(kx_done, b"same")
        out = []
        for i in range(4):
            out.append(a.encrypt(b"%d" % i))
            b.decrypt(out[-1])
            out.append(b.encrypt(b"%d" % i))
            a.decrypt(out[-1])
        return out

    assert run() == run()


# --- conversations, RVs, DH steps ----------------------------------------------------------------


def test_rendezvous_right_after_the_kx(kx_done: Any) -> None:
    a, b = pair(kx_done)
    for r, done in ((a, kx_done[0]), (b, kx_done[1])):
        assert r.send_rendezvous() == done.seed.send_rendezvous()
        rv, drain = r.recv_rendezvous()
        assert rv == done.seed.recv_rendezvous() and drain is None
    # Each side listens where the other posts.
    assert a.send_rendezvous() == b.recv_rendezvous()[0] and b.send_rendezvous() == a.recv_rendezvous()[0]
    s = b.snapshot()
    assert b.send_rendezvous_plain_text() == f"{s.next_send_header_key.hex()}.000"
    assert b.recv_rendezvous_plain_text() == (f"{s.recv_header_key.hex()}.000", "")


def test_conversation_both_ways_with_dh_steps(kx_done: Any) -> None:
    """Bursts each way; the RV read before encrypt is where the receiver listens; a DH step each turn."""
    a, b = pair(kx_done)
    roots = {a.snapshot().root_key}
    turns = [(a, b, 3), (b, a, 1), (a, b, 2), (b, a, 4), (a, b, 1), (b, a, 1), (b, a, 2), (a, b, 5)]
    last_sender = None
    for n_turn, (sender, receiver, burst) in enumerate(turns):
        for i in range(burst):
            steps = sender.will_ratchet()
            assert steps == (i == 0 and sender is not last_sender and not (sender is a and n_turn == 0))
            rv = sender.send_rendezvous()
            assert rv == receiver.recv_rendezvous()[0]
            plaintext = b"turn %d message %d" % (n_turn, i)
            assert receiver.decrypt(sender.encrypt(plaintext)) == plaintext
            if steps:
                # Both ends made the same step: one new root key between them.
                assert sender.snapshot().root_key == receiver.snapshot().root_key not in roots
                roots.add(sender.snapshot().root_key)
                assert receiver.will_ratchet()
        last_sender = sender
    assert len(roots) == 1 + 6  # the KX's, then one per change of direction
    s = b.snapshot()
    assert b.recv_rendezvous()[1] == kx.ratchet_rendezvous(s.prev_recv_header_key, s.prev_recv_count)
    assert b.recv_rendezvous_plain_text()[1] == f"{s.prev_recv_header_key.hex()}.{s.prev_recv_count:03d}"
    assert a.nb_saved_keys() == b.nb_saved_keys() == 0


def test_rv_of_a_step_is_the_old_send_header_key(kx_done: Any) -> None:
    """remoteuser.go encryptRM reads SendRendezvous before Encrypt: a step goes to the old key's RV."""
    a, b = pair(kx_done)
    for _ in range(3):
        b.decrypt(a.encrypt(b"x"))
    a.decrypt(b.encrypt(b"y"))
    old = a.snapshot()
    rv = a.send_rendezvous()
    m = a.encrypt(b"step")
    assert rv == kx.ratchet_rendezvous(old.send_header_key, 3)
    assert a.snapshot().send_header_key == old.next_send_header_key != old.send_header_key
    assert b.recv_rendezvous()[0] == rv
    b.decrypt(m)
    assert b.recv_rendezvous() == (
        kx.ratchet_rendezvous(old.next_send_header_key, 1),
        kx.ratchet_rendezvous(old.send_header_key, 3),
    )


# --- out of order, limits ------------------------------------------------------------------------


def test_out_of_order_within_the_limit(kx_done: Any) -> None:
    a, b = pair(kx_done)
    messages = [a.encrypt(b"m%d" % i) for i in range(rt.MAX_MISSING_MESSAGES + 1)]
    assert b.decrypt(messages[-1]) == b"m80"  # 80 skipped: the most allowed
    assert b.nb_saved_keys() == 80
    for i in reversed(range(80)):
        assert b.decrypt(messages[i]) == b"m%d" % i
    assert b.nb_saved_keys() == 0 and b.snapshot().saved == ()


def test_big_skip_fails_and_changes_nothing(kx_done: Any) -> None:
    v = VECTORS["big_skip"]
    a, b = pair(kx_done)
    messages = [a.encrypt(b"m%d" % i) for i in range(v["messages"])]
    rejects(b, messages[-1], "reordering-limit")
    assert b.decrypt(messages[0]) == b"m0"  # nothing was lost
    assert b.decrypt(messages[-1]) == b"m81"  # now 80 behind it


def test_limit_on_a_new_chain_and_on_the_old_one(kx_done: Any) -> None:
    a, b = pair(kx_done)
    # New chain: the acceptor's first message, a step, numbered 81 on its chain.
    burst = [b.encrypt(b"n%d" % i) for i in range(82)]
    rejects(a, burst[81], "reordering-limit")
    assert a.decrypt(burst[80]) == b"n80"
    # Old chain: b steps to a chain 86 long, a reads 1 of it and answers; b's next step tells a the
    # old chain's length, and 85 keys to save are too many.
    a, b = pair(kx_done)
    b.decrypt(a.encrypt(b"0"))
    b_chain = [b.encrypt(b"b%d" % i) for i in range(86)]
    assert a.decrypt(b_chain[0]) == b"b0"
    b.decrypt(a.encrypt(b"a steps"))
    b_step = b.encrypt(b"b steps again")
    rejects(a, b_step, "reordering-limit")
    for m in b_chain[1:6]:
        a.decrypt(m)
    assert a.decrypt(b_step) == b"b steps again"  # 86 - 6 = 80 to save: allowed
    assert a.nb_saved_keys() == 80
    for i, m in enumerate(b_chain[6:], 6):
        assert a.decrypt(m) == b"b%d" % i
    assert a.nb_saved_keys() == 0


# --- replays, alterations ------------------------------------------------------------------------


def test_duplicates_and_replays_rejected(kx_done: Any) -> None:
    a, b = pair(kx_done)
    m0, m1, m2 = (a.encrypt(b"%d" % i) for i in range(3))
    assert b.decrypt(m2) == b"2"  # m0, m1 saved
    assert b.decrypt(m1) == b"1"  # through a saved key
    rejects(b, m2, "duplicate")  # current chain, count used
    rejects(b, m1, "duplicate")  # its saved key is gone
    reply = b.encrypt(b"reply")  # a step
    assert a.decrypt(reply) == b"reply"
    rejects(a, reply, "duplicate")  # the step's message, again
    step = a.encrypt(b"a steps")
    assert b.decrypt(step) == b"a steps"
    rejects(b, step, "duplicate")
    rejects(b, m2, "header")  # a past chain: no key opens its header now
    assert b.decrypt(m0) == b"0"  # the one still missing (saved across the step)
    rejects(b, m0, "header")


def test_altered_bytes_rejected(kx_done: Any) -> None:
    a, b = pair(kx_done)
    for receiver, m in ((b, a.encrypt(b"first")), (a, b.encrypt(b"other way, a step"))):
        for i in range(0, len(m), 3):
            altered = m[:i] + bytes([m[i] ^ 0x40]) + m[i + 1 :]
            rejects(receiver, altered, "corrupt" if i >= rt.SEALED_HEADER_SIZE else "header")
        rejects(receiver, m[: rt.SEALED_HEADER_SIZE - 1], "length")
        rejects(receiver, m[:-1], "corrupt")
        rejects(receiver, m[: rt.SEALED_HEADER_SIZE], "corrupt")
        rejects(receiver, m + b"\0", "corrupt")
        rejects(receiver, b"", "length")
    # Through a saved key: a bad body fails there (BR does not go on), the key stays for the real one.
    late, next_ = a.encrypt(b"late"), a.encrypt(b"next")
    b.decrypt(next_)
    rejects(b, late[:-1] + bytes([late[-1] ^ 1]), "corrupt")
    assert b.decrypt(late) == b"late"


def test_empty_plaintexts_as_go(kx_done: Any) -> None:
    """Go's secretbox.Open returns nil for an empty plaintext: fine on the current chain, but through a
    saved key Decrypt takes the nil for "no key" and fails (here without losing the key)."""
    a, b = pair(kx_done)
    assert b.decrypt(a.encrypt(b"")) == b""
    late = a.encrypt(b"")
    b.decrypt(a.encrypt(b"next"))
    rejects(b, late, "duplicate")
    assert b.nb_saved_keys() == 1


def test_ratchet_flag_refuses_a_second_new_chain(kx_done: Any) -> None:
    """A message to the next header key while our own step is due (BR: "without ratchet flag set")."""
    a, b = pair(kx_done)
    a.decrypt(b.encrypt(b"step"))  # a now must step before it can take another new chain
    assert a.will_ratchet()
    forger = Ratchet.restore(
        replace(b.snapshot(), send_header_key=a.snapshot().next_recv_header_key), random=Drbg(b"f")
    )
    rejects(a, forger.encrypt(b"forged"), "ratchet-flag")


def test_low_order_dh_public_in_a_header_rejected(kx_done: Any) -> None:
    a, b = pair(kx_done)
    # b's step message, rebuilt with a low-order X25519 public (0) in its header.
    m = b.encrypt(b"x")
    header = bytes(crypto_secretbox_open_easy(m[24:104], m[:24], b.snapshot().send_header_key))
    bad = header[:8] + bytes(32) + header[40:]
    forged = m[:24] + bytes(crypto_secretbox_easy(bad, m[:24], b.snapshot().send_header_key)) + m[104:]
    rejects(a, forged, "dh")
    assert a.decrypt(m) == b"x"


# --- forward secrecy -----------------------------------------------------------------------------


def test_forward_secrecy(kx_done: Any) -> None:
    """Once both sides have sent after receiving, neither side's state opens earlier traffic."""
    a, b = pair(kx_done)
    to_b: list[bytes] = []
    to_a: list[bytes] = []
    for i in range(3):
        for _ in range(2):
            to_b.append(a.encrypt(b"a%d" % i))
            b.decrypt(to_b[-1])
        to_a.append(b.encrypt(b"b%d" % i))
        a.decrypt(to_a[-1])
    for r, old in ((a, to_a + to_b), (b, to_b + to_a)):
        snap = r.snapshot()
        for m in old:
            rejects(Ratchet.restore(snap), m)
        assert snap.saved == ()  # no skipped key kept either


# --- Go's JSON state -----------------------------------------------------------------------------


def _check_shape(state: dict[str, Any]) -> None:
    assert list(state) == [name for name, _ in GO_RATCHET_STATE]
    for name, go_type in GO_RATCHET_STATE:
        value = state[name]
        if go_type == "[]byte":
            # encoding/json: a []byte is base64 (standard, padded) or null; never an array of numbers.
            assert value is None or (isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 32)
        elif go_type in ("uint32", "int64"):
            assert isinstance(value, int) and not isinstance(value, bool)
            if go_type == "uint32":
                assert 0 <= value < 2**32
        elif go_type == "bool":
            assert isinstance(value, bool)
        else:
            assert value is None or isinstance(value, list)
            for entry in value or ():
                assert list(entry) == [n for n, _ in GO_SAVED_KEYS]
                assert len(base64.b64decode(entry["headerKey"], validate=True)) == 32
                for mk in entry["messageKeys"]:
                    assert list(mk) == [n for n, _ in GO_MESSAGE_KEY]
                    assert isinstance(mk["num"], int) and isinstance(mk["creationTime"], int)
                    assert len(base64.b64decode(mk["key"], validate=True)) == 32


def test_go_state_shape(kx_done: Any) -> None:
    a, b = pair(kx_done)
    assert tuple(n for n, _ in GO_RATCHET_STATE) == rt.GO_STATE_FIELDS
    fresh = b.to_go_state()
    _check_shape(fresh)
    seed = kx_done[1].seed
    assert fresh["rootKey"] == base64.b64encode(seed.root_key).decode()
    assert fresh["sendHeaderKey"] == base64.b64encode(bytes(32)).decode()  # zero keys are 32 zero bytes, not null
    assert fresh["recvPublic"] == base64.b64encode(seed.recv_ratchet_public).decode()
    assert fresh["kxprivate"] is None  # CompleteKeyExchange drops it
    assert fresh["myHalf"] == base64.b64encode(seed.my_half).decode()
    assert fresh["theirHalf"] == base64.b64encode(seed.their_half).decode()
    assert fresh["savedKeys"] is None  # a nil slice
    assert fresh["lastEncryptTime"] == fresh["lastDencryptTime"] == rt.GO_ZERO_TIME_MS  # time.Time{}.UnixMilli()
    assert (fresh["sendCount"], fresh["recvCount"], fresh["ratchet"]) == (0, 0, True)
    # Mid-conversation, with saved keys.
    b.decrypt(a.encrypt(b"0"))
    a.encrypt(b"skipped")
    a.encrypt(b"skipped too")
    b.decrypt(a.encrypt(b"3"))
    state = b.to_go_state()
    _check_shape(state)
    assert state["savedKeys"] == [
        {
            "headerKey": base64.b64encode(b.snapshot().recv_header_key).decode(),
            "messageKeys": [
                {"num": 1, "key": state["savedKeys"][0]["messageKeys"][0]["key"], "creationTime": int(T0)},
                {"num": 2, "key": state["savedKeys"][0]["messageKeys"][1]["key"], "creationTime": int(T0)},
            ],
        }
    ]
    assert state["recvCount"] == 4 and state["lastDencryptTime"] == int(T0 * 1000)
    compact = json.dumps(state, separators=(",", ":"))
    assert compact.startswith('{"rootKey":"') and '"lastDencryptTime":1700000000000}' in compact


def test_go_state_round_trip_mid_conversation(kx_done: Any) -> None:
    clock = Clock()
    a, b = pair(kx_done, b"rt", clock)
    held: list[tuple[bytes, bytes]] = []
    for i in range(4):
        for j in range(3):
            m = a.encrypt(b"a%d.%d" % (i, j))
            if j == 1:
                held.append((m, b"a%d.%d" % (i, j)))  # delivered only after the round trip
            else:
                b.decrypt(m)
        clock.t += 1
        a.decrypt(b.encrypt(b"b%d" % i))
    assert b.nb_saved_keys() == 4
    for r in (a, b):
        loaded = reload(r, clock, Drbg(b"after"))
        assert loaded.snapshot() == r.snapshot()  # nothing lost (whole-second clock)
    a2, b2 = reload(a, clock, Drbg(b"after/a")), reload(b, clock, Drbg(b"after/b"))
    a1, b1 = (
        Ratchet.restore(a.snapshot(), random=Drbg(b"after/a"), clock=clock),
        Ratchet.restore(b.snapshot(), random=Drbg(b"after/b"), clock=clock),
    )
    for m, plaintext in held:
        assert b2.decrypt(m) == b1.decrypt(m) == plaintext
    for i in range(3):
        m1, m2 = a1.encrypt(b"x%d" % i), a2.encrypt(b"x%d" % i)
        assert m1 == m2 and b1.decrypt(m1) == b2.decrypt(m2) == b"x%d" % i
        r1, r2 = b1.encrypt(b"y"), b2.encrypt(b"y")
        assert r1 == r2 and a1.decrypt(r1) == a2.decrypt(r2) == b"y"
    assert b2.nb_saved_keys() == 0 and (a1.snapshot(), b1.snapshot()) == (a2.snapshot(), b2.snapshot())


def test_saved_keys_expire_when_written(kx_done: Any) -> None:
    clock = Clock()
    a, b = pair(kx_done, b"exp", clock)
    late = a.encrypt(b"late")
    b.decrypt(a.encrypt(b"on time"))
    clock.t = T0 + rt.SAVED_KEY_LIFETIME  # exactly the lifetime: kept (Go: "> lifetime" drops)
    assert b.to_go_state()["savedKeys"][0]["messageKeys"] != []
    clock.t += 1
    state = b.to_go_state()
    assert state["savedKeys"] == [
        {"headerKey": base64.b64encode(b.snapshot().recv_header_key).decode(), "messageKeys": []}
    ]
    assert b.nb_saved_keys() == 1  # still in memory, as in Go
    loaded = Ratchet.from_go_state(state, clock=clock)
    assert loaded.nb_saved_keys() == 0 and len(loaded.snapshot().saved) == 1  # the empty entry, as Go's Unmarshal
    rejects(loaded, late, "duplicate")
    assert b.to_go_state(lifetime=0)["savedKeys"][0]["messageKeys"] == []
    assert b.decrypt(late) == b"late"
    assert b.to_go_state()["savedKeys"] is None  # the entry went with its last key


def test_go_state_reading_rules(kx_done: Any) -> None:
    a, b = pair(kx_done)
    b.decrypt(a.encrypt(b"x"))
    state = b.to_go_state()
    # encoding/json: case-insensitive names, unknown fields ignored.
    odd = {k.upper() if k == "rootKey" else k: v for k, v in state.items()} | {"extra": [1, 2]}
    assert Ratchet.from_go_state(odd).snapshot() == Ratchet.from_go_state(state).snapshot()
    # Missing or null counts, flag and times are zero values.
    loose = {k: v for k, v in state.items() if k not in ("prevSendCount", "ratchet", "lastEncryptTime")}
    s = Ratchet.from_go_state(loose | {"prevRecvCount": None}).snapshot()
    assert (s.prev_send_count, s.ratchet, s.last_encrypt_time, s.prev_recv_count) == (0, False, 0, 0)
    bad: list[tuple[str, Any]] = [
        ("rootKey", None), ("rootKey", base64.b64encode(bytes(31)).decode()), ("rootKey", list(range(32))),
        ("rootKey", "not base64!"), ("sendCount", -1), ("sendCount", 2**32), ("sendCount", 1.0),
        ("sendCount", True), ("ratchet", 1), ("myHalf", base64.b64encode(bytes(16)).decode()),
        ("savedKeys", {}), ("savedKeys", [{"headerKey": None}]),
        ("savedKeys", [{"headerKey": state["rootKey"], "messageKeys": [{"num": 1, "key": None}]}]),
        ("lastEncryptTime", 2**63),
    ]  # fmt: skip
    for name, value in bad:
        with pytest.raises(GoStateError) as e:
            Ratchet.from_go_state(state | {name: value})
        assert e.value.what.startswith(name), (name, value)
        assert isinstance(e.value, UsageError) and isinstance(e.value, ValueError)
    # A half ratchet (client/kx.go keeps one in the KX record: kxprivate set, the rest zero) loads too.
    half = {name: base64.b64encode(bytes(32)).decode() for name in rt.GO_STATE_FIELDS[:10]}
    half |= {"kxprivate": base64.b64encode(b"\x07" * 32).decode(), "myHalf": base64.b64encode(b"\x01" * 32).decode()}
    s = Ratchet.from_go_state(half).snapshot()
    assert s.kx_private == b"\x07" * 32 and s.my_half == b"\x01" * 32 and s.their_half is None
    assert Ratchet.from_go_state(half).to_go_state()["kxprivate"] == half["kxprivate"]


# --- BR's test scripts, reloading through Go's JSON after each step --------------------------------


@pytest.mark.parametrize("name", [n for n in VECTORS["scripts"] if n.startswith("Test")])
def test_br_scripts(kx_done: Any, name: str) -> None:
    """ratchet_test.go testScript: deliver, drop or delay; both ratchets reloaded after every action."""
    lifetime = VECTORS["scripts"]["reload_lifetime_seconds"]
    clock = Clock()
    a, b = pair(kx_done, name.encode(), clock)
    delayed: dict[int, tuple[bytes, bytes, bool]] = {}
    msg_random = Drbg(name.encode() + b"/messages")
    for step, (obj, result, ident) in enumerate(VECTORS["scripts"][name]):
        if obj in ("sendA", "sendB"):
            sender, receiver = (a, b) if obj == "sendA" else (b, a)
            msg = msg_random(20)
            encrypted = sender.encrypt(msg)
            if result == "deliver":
                assert receiver.decrypt(encrypted) == msg, step
            elif result == "delay":
                assert ident not in delayed
                delayed[ident] = (msg, encrypted, sender is a)
            else:
                assert result == "drop"
        else:
            msg, encrypted, from_a = delayed.pop(ident)
            assert (b if from_a else a).decrypt(encrypted) == msg, step
        clock.t += 1
        a = reload(a, clock, Drbg(b"%s/a/%d" % (name.encode(), step)), lifetime)
        b = reload(b, clock, Drbg(b"%s/b/%d" % (name.encode(), step)), lifetime)


# --- errors, the busted ratchet, the state as a value -------------------------------------------


def test_error_types() -> None:
    e = RatchetError("corrupt", "ratchet: corrupt message")
    assert isinstance(e, VerificationError) and isinstance(e, ValueError)
    assert RatchetError.code == "ratchet" and RatchetBusted.code == "ratchet-busted"
    assert issubclass(RatchetBusted, RatchetError) and str(e) == "corrupt: ratchet: corrupt message"


# An X25519 point of order 8: in validateECDHpoint's range, so the KX takes it (ratchet_test.go's
# TestImpersonation remarks that bogus halves get through), and then alice's first Encrypt fails.
ORDER_8 = (325606250916557431795983626356110631294008115727848805560023387167927233504).to_bytes(32, "little")


def test_busted_ratchet(kx_done: Any) -> None:
    kx.validate_ecdh_point(ORDER_8)  # the KX accepts it
    clock = Clock()
    a, _ = pair(kx_done, b"bust", clock)
    seed = replace(kx_done[1].seed, recv_ratchet_public=ORDER_8)
    b = Ratchet.from_seed(seed, random=Drbg(b"bust"), clock=clock)
    before = b.snapshot()
    with pytest.raises(RatchetBusted) as e:
        b.encrypt(b"x")
    assert e.value.what == "dh" and b.busted is not None
    # As in Go: only the freshly drawn private key changed (Go overwrites it before X25519 fails).
    assert replace(b.snapshot(), send_ratchet_private=before.send_ratchet_private, busted=None) == before
    with pytest.raises(RatchetBusted) as e:
        b.encrypt(b"again")
    assert e.value.what == "busted"
    # Receiving still works (BR's handleReceivedEncrypted does not look at rError).
    assert b.decrypt(a.encrypt(b"still")) == b"still"
    # rError is not saved; a reloaded ratchet busts again on its first send.
    again = Ratchet.from_go_state(b.to_go_state(), random=Drbg(b"reload"), clock=clock)
    assert again.busted is None
    with pytest.raises(RatchetBusted):
        again.encrypt(b"x")


def test_idle_ratchets_are_reset_candidates(kx_done: Any) -> None:
    clock = Clock()
    a, b = pair(kx_done, b"idle", clock)
    assert b.idle()  # never received
    b.decrypt(a.encrypt(b"x"))
    assert not b.idle() and b.last_enc_dec_times() == (rt.GO_ZERO_TIME_MS, int(T0 * 1000))
    assert a.last_enc_dec_times() == (int(T0 * 1000), rt.GO_ZERO_TIME_MS)
    assert not b.idle(now=T0 + rt.RESET_OLD_RATCHETS_INTERVAL - 1)
    assert b.idle(now=T0 + rt.RESET_OLD_RATCHETS_INTERVAL)
    assert b.idle(interval=60, now=T0 + 61)


def test_snapshot_is_a_frozen_value(kx_done: Any) -> None:
    a, b = pair(kx_done)
    b.decrypt(a.encrypt(b"0"))
    a.encrypt(b"skip")
    b.decrypt(a.encrypt(b"2"))
    s = b.snapshot()
    assert isinstance(s, RatchetState) and not hasattr(s, "__dict__")
    with pytest.raises(FrozenInstanceError):
        s.recv_count = 9  # type: ignore[misc]
    assert hash(s) == hash(Ratchet.restore(s).snapshot())
    assert isinstance(s.saved, tuple) and isinstance(s.saved[0].keys, tuple)
    c = Ratchet.restore(s, random=Drbg(b"c"))
    assert c.decrypt(a.encrypt(b"3")) == b"3" and b.snapshot() == s  # the copy moved, not the original
    assert "key" not in repr(b).lower()


# --- property: random interleavings -------------------------------------------------------------

_SEND = st.tuples(st.just("send"), st.sampled_from("ab"), st.integers(1, 4))
_DELIVER = st.tuples(st.just("deliver"), st.integers(0, 1000))
_OPS = st.lists(
    st.one_of(
        _SEND,
        _SEND,
        _DELIVER,
        _DELIVER,
        _DELIVER,
        st.tuples(st.just("drop"), st.integers(0, 1000)),
        st.tuples(st.just("replay"), st.integers(0, 1000)),
        st.tuples(st.just("tamper"), st.integers(0, 1000), st.integers(0, 10_000)),
        st.tuples(st.just("persist"), st.sampled_from("ab")),
    ),
    min_size=25,
    max_size=80,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, seed=st.binary(min_size=1, max_size=4))
def test_random_interleavings(kx_done: Any, ops: list[tuple[Any, ...]], seed: bytes) -> None:
    """send bursts / deliver any in-flight message / drop / replay / tamper / persist: every message
    delivered decrypts once, to its plaintext; a replay or an altered one fails and changes nothing.
    (At most 75 messages in all, so no skip can exceed maxMissingMessages.)"""
    clock = Clock()
    parties = dict(zip("ab", pair(kx_done, b"prop" + seed, clock), strict=True))
    in_flight: list[tuple[str, bytes, bytes]] = []  # (to, message, plaintext)
    done: list[tuple[str, bytes]] = []
    sent = 0
    roots = {parties["a"].snapshot().root_key}
    for op in ops:
        roots.update(r.snapshot().root_key for r in parties.values())
        kind = op[0]
        if kind == "send":
            sender, burst = op[1], op[2]
            for _ in range(burst):
                if sent >= 75:  # keep every skip within maxMissingMessages
                    break
                plaintext = b"%s %d" % (sender.encode(), sent)
                sent += 1
                in_flight.append(("b" if sender == "a" else "a", parties[sender].encrypt(plaintext), plaintext))
        elif kind in ("deliver", "drop", "tamper") and in_flight:
            to, message, plaintext = in_flight[op[1] % len(in_flight)]
            if kind == "tamper":
                i = op[2] % len(message)
                rejects(parties[to], message[:i] + bytes([message[i] ^ 0x01]) + message[i + 1 :])
                continue
            in_flight.remove((to, message, plaintext))
            if kind == "deliver":
                assert parties[to].decrypt(message) == plaintext
                done.append((to, message))
        elif kind == "replay" and done:
            to, message = done[op[1] % len(done)]
            rejects(parties[to], message)
        elif kind == "persist":
            clock.t += 1
            parties[op[1]] = reload(parties[op[1]], clock, Drbg(b"persist%d" % clock.t))
    for to, message, plaintext in in_flight:  # the rest arrive, in the order sent
        assert parties[to].decrypt(message) == plaintext
        done.append((to, message))
    for to, message in done:
        rejects(parties[to], message)
    event(f"messages: {len(done) // 20 * 20}+")
    event(f"DH steps: {len(roots) - 1 if len(roots) < 6 else '5+'}")
