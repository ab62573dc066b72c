"""Status's Double Ratchet (protocols/status/ratchet.py) against status-go, and against
Syndace's `doubleratchet` package.

Known answers: tests/vectors/status-go-harness.json holds whole conversations run by
status-go's own code (its vendored status-im/doubleratchet with EthereumCrypto, fixed ratchet
keys): every message byte for byte, every error text, the states; we replay them.
tests/vectors/status-upstream-tests.json holds what the Go tests fix (keys, sizes, errors).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import random as stdlib_random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from doubleratchet import (
    ChainNotAvailableException,
    DuplicateMessageException,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from syndace_status import (
    SYNDACE_CURVES,
    StatusDoubleRatchet,
    SyndaceCurve25519Ratchet,
    from_syndace,
    syndace_config,
    to_syndace,
)

from protocols.status import crypto as sc
from protocols.status import ratchet as dr
from runtime.errors import VerificationError

VECTORS = Path(__file__).parent / "vectors"
UPSTREAM: dict[str, Any] = json.loads((VECTORS / "status-upstream-tests.json").read_text(encoding="utf-8"))
HARNESS: dict[str, Any] = json.loads((VECTORS / "status-go-harness.json").read_text(encoding="utf-8"))
SK = bytes.fromhex(UPSTREAM["doubleratchet_keys"]["sk"])


def _seeded(seed: int) -> sc.Random:
    rng = stdlib_random.Random(seed)
    return rng.randbytes


def _feeder(keys_hex: list[str]) -> sc.Random:
    keys = [bytes.fromhex(k) for k in keys_hex]

    def random(n: int) -> bytes:
        assert n == 32
        return keys.pop(0)

    return random


def _pair(seed: int = 1, *, curve: dr.Curve = dr.SECP256K1, limits: dr.Limits = dr.STATUS_GO_LIMITS,
          ) -> tuple[dr.Session, dr.Session]:
    """Alice (X3DH initiator) and Bob (responder, whose signed prekey is the first ratchet key)."""
    bob_random, alice_random = _seeded(seed), _seeded(seed + 1_000_000)
    bob_prekey, bob_prekey_public = curve.key_pair(bob_random)
    shared = bytes(stdlib_random.Random(seed).randbytes(32))
    alice = dr.Session.initiate(shared, bob_prekey_public, alice_random, curve=curve, limits=limits)
    bob = dr.Session.accept(shared, bob_prekey, bob_random, curve=curve, limits=limits)
    return alice, bob


def _refused(session: dr.Session, message: dr.Message, match: str | None = None) -> dr.RatchetError:
    """Decrypting must raise RatchetError and leave the session's state exactly as it was."""
    before = session.snapshot()
    with pytest.raises(dr.RatchetError, match=match) as info:
        session.decrypt(message)
    assert session.snapshot() == before
    return info.value


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


# --- known answers -----------------------------------------------------------------------


def test_harness_kdfs_and_aead() -> None:
    ec = HARNESS["ethereum_crypto"]
    rk = ec["kdf_rk"]
    assert dr.kdf_rk(bytes.fromhex(rk["rk"]), bytes.fromhex(rk["dh_out"])) == (
        bytes.fromhex(rk["root_key"]), bytes.fromhex(rk["chain_key"]), bytes.fromhex(rk["header_key"]))
    assert dr._kdf_rk_chain(bytes.fromhex(rk["rk"]), bytes.fromhex(rk["dh_out"])) == (
        bytes.fromhex(rk["root_key"]), bytes.fromhex(rk["chain_key"]))
    ck = ec["kdf_ck"]
    assert dr.kdf_ck(bytes.fromhex(ck["ck"])) == (bytes.fromhex(ck["chain_key"]), bytes.fromhex(ck["message_key"]))
    for case in ec["encrypt"]:
        mk, pt, ad = bytes.fromhex(case["mk"]), bytes.fromhex(case["plaintext"]), bytes.fromhex(case["ad"])
        payload = dr.aead_encrypt(mk, pt, ad)
        assert payload.hex() == case["ciphertext"]
        assert dr.aead_decrypt(mk, payload, ad) == pt
        if "decrypt_with_other_ad" in case:
            with pytest.raises(dr.RatchetError, match=case["decrypt_with_other_ad"]):
                dr.aead_decrypt(mk, payload, b"not secret at all")
    h = ec["header_encode"]
    assert dr.encode_header(bytes.fromhex(h["dh"]), int(h["n"]), int(h["pn"])).hex() == h["encoded"]


def _replay(conversation: dict[str, Any]) -> None:
    """Run a harness conversation step by step and compare everything status-go recorded."""
    limits = dr.Limits(**conversation["limits"])
    shared = bytes.fromhex(conversation["shared_key"])
    prekey = bytes.fromhex(conversation["bob_ratchet_private"])
    sessions = {
        "alice": dr.Session.initiate(shared, sc.public_key(prekey), _feeder(conversation["alice_dh_privates"]),
                                     limits=limits),
        "bob": dr.Session.accept(shared, prekey, _feeder(conversation["bob_dh_privates"]), limits=limits),
    }
    sent: list[dr.Message] = []
    for index, step in enumerate(conversation["steps"]):
        where = f"{conversation['name']} step {index}"
        session = sessions[step["party"]]
        if step["op"] == "encrypt":
            message = session.encrypt(step["plaintext"].encode())
            expected = conversation["messages"][step["result"]["message"]]
            assert (message.dh.hex(), message.n, message.pn, message.payload.hex()) == (
                expected["dh"], expected["n"], expected["pn"], expected["payload"]), where
            sent.append(message)
        elif step["op"] == "encrypt_discard":
            for _ in range(step["count"]):
                session.encrypt(b"discarded")
        elif step["op"] == "decrypt":
            message = sent[step["message"]]
            tamper = step.get("tamper", "")
            if tamper == "payload":
                message = dataclasses.replace(message, payload=_flip(message.payload, len(message.payload) - 1))
            elif tamper == "iv":
                message = dataclasses.replace(message, payload=_flip(message.payload, 0))
            elif tamper in ("n", "pn"):
                message = dataclasses.replace(message, **{tamper: getattr(message, tamper) + 1})
            result = step["result"]
            if "error" in result:
                assert result["state_unchanged"] is True
                error = _refused(session, message)
                assert str(error) == result["error"], where
            else:
                assert session.decrypt(message, confirm=step.get("confirm", False)) == result["plaintext"].encode()
        elif step["op"] == "confirm":
            session.confirm_processed(sent[step["message"]])
        else:
            state, expected_state = session.snapshot(), step["result"]
            got = {"dh_private": state.dh_private.hex(), "dh_public": state.dh_public.hex(),
                   "dh_remote": state.dh_remote.hex(), "root_key": state.root_key.hex(),
                   "send_key": state.send_key.hex(), "send_n": state.send_n, "recv_key": state.recv_key.hex(),
                   "recv_n": state.recv_n, "pn": state.pn, "keys_count": state.keys_count}
            assert got == {k: expected_state[k] for k in got}, where
            keys = sorted(state.skipped, key=lambda key: (key.dh, key.n))
            assert len(keys) == expected_state["skipped_count"], where
            digest = sc.keccak256(*(k.dh + struct.pack("<I", k.n) + k.mk for k in keys))
            assert digest.hex() == expected_state["skipped_digest"], where
            if "skipped" in expected_state:
                assert [(k.dh.hex(), k.n, k.mk.hex()) for k in keys] == [
                    (e["dh"], e["n"], e["mk"]) for e in expected_state["skipped"]], where


@pytest.mark.parametrize("conversation", HARNESS["conversations"], ids=lambda c: c["name"])
def test_harness_conversation(conversation: dict[str, Any]) -> None:
    """Byte for byte what status-go's doubleratchet + EthereumCrypto did with the same keys:
    messages, plaintexts, error texts, the states between, the stored keys."""
    _replay(conversation)


def test_upstream_aead_sizes_and_errors() -> None:
    """default_crypto_test.go TestDefaultCrypto_EncryptDecrypt (the same AEAD as EthereumCrypto's)."""
    v = UPSTREAM["aead"]
    mk, msg = bytes.fromhex(v["mk"]), v["plaintext_ascii"].encode()
    for ad in (b"", b"any secret"):
        payload = dr.aead_encrypt(mk, msg, ad)
        assert len(payload) == v["ciphertext_size"] and dr.aead_decrypt(mk, payload, ad) == msg
    payload = dr.aead_encrypt(mk, msg, v["encrypt_ad_ascii"].encode())
    with pytest.raises(dr.RatchetError, match=v["error_other_ad"]):
        dr.aead_decrypt(mk, payload, v["decrypt_ad_ascii"].encode())
    payload = dr.aead_encrypt(mk, msg, b"")
    broken = payload[:-1] + bytes([payload[-1] ^ 57])
    with pytest.raises(dr.RatchetError, match=v["error_last_byte_xor_57"]):
        dr.aead_decrypt(mk, broken, b"")


def test_upstream_x25519_pairs_and_clamping() -> None:
    """state_test.go's Curve25519 pairs; TestDefaultCrypto_GenerateDH_Basic's clamped bits."""
    v = UPSTREAM["doubleratchet_keys"]
    for who in ("alice", "bob"):
        assert dr.X25519.public_key(bytes.fromhex(v[who + "_private"])).hex() == v[who + "_public"]
    alice = bytes.fromhex(v["alice_private"])
    bob_public = bytes.fromhex(v["bob_public"])
    assert dr.X25519.dh(alice, bob_public) == dr.X25519.dh(bytes.fromhex(v["bob_private"]),
                                                           bytes.fromhex(v["alice_public"]))
    c = UPSTREAM["generate_dh_clamping"]
    for seed in range(20):
        private, public = dr.X25519.key_pair(_seeded(seed))
        assert private[0] & 7 == c["private_0_and_7"]
        assert private[31] & 128 == c["private_31_and_128"] and private[31] & 64 == c["private_31_and_64"]
        assert public == dr.X25519.public_key(private)


def test_upstream_header_layout() -> None:
    """message_test.go: Encode is n, pn (little-endian uint32s) and the key; 40 bytes with a
    Curve25519 key, 41 with a compressed secp256k1 key (Decode, never used by status-go,
    would refuse those)."""
    v = UPSTREAM["header"]
    dh = bytes.fromhex(v["dh"])
    encoded = dr.encode_header(dh, v["n"], v["pn"])
    assert len(encoded) == v["encoded_size"]
    assert struct.unpack("<II", encoded[:8]) == (v["n"], v["pn"]) and encoded[8:] == dh
    assert dr.Message(dh=dh, n=v["n"], pn=v["pn"], payload=b"").header() == encoded
    assert len(dr.encode_header(sc.public_key(SK), 0, 0)) == 41


def test_skipped_messages_max_skip_1_over_x25519() -> None:
    """doubleratchet session_test.go TestSession_RatchetDecrypt_CommunicationSkippedMessages,
    as written there (DefaultCrypto's Curve25519, WithMaxSkip(1), no confirmation)."""
    keys = UPSTREAM["doubleratchet_keys"]
    limits = dataclasses.replace(dr.DOUBLERATCHET_DEFAULT_LIMITS, max_skip=1)
    bob = dr.Session.accept(SK, bytes.fromhex(keys["bob_private"]), _seeded(7), curve=dr.X25519, limits=limits)
    alice = dr.Session.initiate(SK, bob.ratchet_public, _seeded(8), curve=dr.X25519, limits=limits)
    texts = [b"hi", b"bob", b"how are you?", b"still do cryptography?", b"you there?", b"bob? bob? BOB? BOB?"]
    m = [alice.encrypt(t) for t in texts]

    def stored() -> int:  # MkSkipped.Count(bob.DHr)
        state = bob.snapshot()
        return sum(1 for key in state.skipped if key.dh == state.dh_remote)

    _refused(bob, dataclasses.replace(m[1], payload=_flip(m[1].payload, len(m[1].payload) - 1)))
    assert stored() == 0
    assert bob.decrypt(m[1], confirm=False) == b"bob"
    assert stored() == 2  # m0 skipped, m1's own key kept for confirmation
    _refused(bob, m[5], "too many messages")
    assert bob.decrypt(m[2], confirm=False) == b"how are you?"
    _refused(bob, dataclasses.replace(m[3], payload=_flip(m[3].payload, len(m[3].payload) - 1)))
    for i in (3, 0, 4, 5):
        assert bob.decrypt(m[i], confirm=False) == texts[i]


# --- conversations -----------------------------------------------------------------------


@pytest.mark.parametrize("curve", [dr.SECP256K1, dr.X25519], ids=lambda c: c.name)
def test_ping_pong_steps_the_dh_ratchet_each_turn(curve: dr.Curve) -> None:
    alice, bob = _pair(3, curve=curve)
    seen: set[bytes] = set()
    for turn in range(6):
        sender, receiver = (alice, bob) if turn % 2 == 0 else (bob, alice)
        message = sender.encrypt(b"turn %d" % turn)
        assert message.dh not in seen  # a new ratchet key every turn
        seen.add(message.dh)
        assert (message.n, message.pn) == (0, 0 if turn < 2 else 1)
        assert receiver.decrypt(message) == b"turn %d" % turn
    assert all(len(dh) == (33 if curve is dr.SECP256K1 else 32) for dh in seen)


def test_responder_may_send_first_on_the_shared_key_chain() -> None:
    alice, bob = _pair(4)
    early = [bob.encrypt(b"early %d" % i) for i in range(3)]
    prekey_public = bob.ratchet_public
    assert {m.dh for m in early} == {prekey_public} and [m.n for m in early] == [0, 1, 2]
    assert alice.decrypt(early[1]) == b"early 1"  # no DH step: the prekey is Alice's remote key
    assert alice.snapshot().dh_remote == prekey_public
    first = alice.encrypt(b"first")
    assert bob.decrypt(first) == b"first"
    reply = bob.encrypt(b"reply")
    assert (reply.pn, reply.n) == (3, 0) and reply.dh != prekey_public
    assert alice.decrypt(reply) == b"reply"
    assert alice.decrypt(early[2]) == b"early 2"  # kept when the chain was left
    assert alice.decrypt(early[0]) == b"early 0"


def test_out_of_order_within_a_chain_and_across_steps() -> None:
    alice, bob = _pair(5)
    a = [alice.encrypt(b"a%d" % i) for i in range(5)]
    for i in (4, 0, 2):
        assert bob.decrypt(a[i]) == b"a%d" % i
    b = [bob.encrypt(b"b%d" % i) for i in range(3)]
    assert alice.decrypt(b[2]) == b"b2"
    a2 = alice.encrypt(b"a-next")
    assert bob.decrypt(a2) == b"a-next"  # a DH step with a1 and a3 still pending
    for i in (3, 1):
        assert bob.decrypt(a[i]) == b"a%d" % i
    for i in (0, 1):
        assert alice.decrypt(b[i]) == b"b%d" % i
    assert alice.snapshot().skipped == () and bob.snapshot().skipped == ()


def test_max_skip_is_exact_on_the_current_chain() -> None:
    """encryption_test.go TestMaxSkipKeys / TestMaxSkipKeysError at status-go's MaxSkip 1000."""
    alice, bob = _pair(6)
    for _ in range(dr.STATUS_GO_LIMITS.max_skip):
        alice.encrypt(b"lost")
    edge, beyond = alice.encrypt(b"edge"), alice.encrypt(b"beyond")
    assert (edge.n, beyond.n) == (1000, 1001)
    error = _refused(bob, beyond, "too many messages")
    assert error.stage is dr.Stage.SKIP_CURRENT
    assert str(error) == UPSTREAM["errors"]["too_many"]
    assert bob.decrypt(edge) == b"edge"
    assert len(bob.snapshot().skipped) == 1000
    assert bob.decrypt(beyond) == b"beyond"


@pytest.mark.parametrize(("lost", "ok"), [(999, True), (1000, False)])
def test_max_skip_is_exact_on_the_previous_chain(lost: int, ok: bool) -> None:
    alice, bob = _pair(7)
    assert bob.decrypt(alice.encrypt(b"a0")) == b"a0"
    reply = bob.encrypt(b"b0")
    for _ in range(lost + 1):
        alice.encrypt(b"lost")
    assert alice.decrypt(reply) == b"b0"
    after = alice.encrypt(b"after")  # pn = lost + 2: Bob must skip lost + 1 keys of the old chain
    assert after.pn == lost + 2
    if ok:
        assert bob.decrypt(after) == b"after"
    else:
        error = _refused(bob, after, "too many messages")
        assert error.stage is dr.Stage.SKIP_PREVIOUS


def test_keys_per_session_bound_at_status_go_size() -> None:
    """encryption_test.go TestMaxMessageKeysPerSession at its size: 2000 keys kept, FIFO."""
    limits = dataclasses.replace(dr.STATUS_GO_LIMITS, max_skip=100_000, max_keep=100_000)
    alice, bob = _pair(8, limits=limits)
    messages = [alice.encrypt(b"text") for _ in range(dr.STATUS_GO_LIMITS.max_message_keys_per_session + 1)]
    assert bob.decrypt(messages[-1]) == b"text"
    assert len(bob.snapshot().skipped) == 1999  # 2001 stored, truncated to 2000, the confirmed one gone
    error = _refused(bob, messages[0])
    assert str(error) == UPSTREAM["errors"]["deleted"]
    assert bob.decrypt(messages[1]) == b"text"


def test_status_go_limits_bound_the_store() -> None:
    alice, bob = _pair(9)
    first = alice.encrypt(b"first")
    for _ in range(999):
        alice.encrypt(b"lost")
    assert bob.decrypt(alice.encrypt(b"a")) == b"a"  # 1000 skipped
    assert alice.decrypt(bob.encrypt(b"b")) == b"b"
    second_chain = [alice.encrypt(b"lost") for _ in range(1000)]
    assert bob.decrypt(alice.encrypt(b"c")) == b"c"  # 1000 more: 2001 stored before truncation
    assert len(bob.snapshot().skipped) == 1999
    _refused(bob, first)  # the oldest went first
    assert bob.decrypt(second_chain[0]) == b"lost"


def test_replays_are_refused_and_change_nothing() -> None:
    alice, bob = _pair(10)
    a = [alice.encrypt(b"a%d" % i) for i in range(3)]
    assert bob.decrypt(a[2]) == b"a2"
    assert bob.decrypt(a[0]) == b"a0"  # from the skipped keys
    for message in (a[2], a[0]):
        assert _refused(bob, message, "bad until").stage is dr.Stage.SKIP_CURRENT
    assert alice.decrypt(bob.encrypt(b"b")) == b"b"
    assert bob.decrypt(alice.encrypt(b"new chain")) == b"new chain"
    for message in (a[2], a[0]):  # now from an old chain
        assert _refused(bob, message, "bad until").stage is dr.Stage.SKIP_PREVIOUS
    assert bob.decrypt(a[1]) == b"a1"


def test_unconfirmed_keys_decrypt_again_until_confirmed() -> None:
    """encryption_test.go TestMessageConfirmation: a message decrypts twice until
    ConfirmMessageProcessed, and never after."""
    alice, bob = _pair(11)
    message = alice.encrypt(b"once")
    assert bob.decrypt(message, confirm=False) == b"once"
    assert bob.decrypt(message, confirm=False) == b"once"
    bob.confirm_processed(message)
    assert str(_refused(bob, message)) == UPSTREAM["errors"]["deleted"]


@pytest.mark.parametrize("tamper", ["payload first", "payload middle", "payload last", "short payload",
                                    "mac only", "n", "pn", "dh other key", "dh not a point", "empty dh"])
def test_altered_messages_are_refused_and_change_nothing(tamper: str) -> None:
    alice, bob = _pair(12)
    assert bob.decrypt(alice.encrypt(b"hello")) == b"hello"
    message = alice.encrypt(b"secret")
    if tamper.startswith("payload"):
        index = {"first": 0, "middle": len(message.payload) // 2, "last": len(message.payload) - 1}[tamper[8:]]
        altered = dataclasses.replace(message, payload=_flip(message.payload, index))
    elif tamper == "short payload":
        altered = dataclasses.replace(message, payload=message.payload[:31])
    elif tamper == "mac only":
        altered = dataclasses.replace(message, payload=message.payload[-32:])
    elif tamper in ("n", "pn"):
        altered = dataclasses.replace(message, **{tamper: getattr(message, tamper) + 1})
    elif tamper == "dh other key":
        altered = dataclasses.replace(message, dh=sc.public_key(SK))
    elif tamper == "dh not a point":  # with a pn that gets past the previous chain's skip
        altered = dataclasses.replace(message, dh=b"\x02" + b"\xff" * 32, pn=1)
    else:
        altered = dataclasses.replace(message, dh=b"")
    error = _refused(bob, altered)
    assert isinstance(error, VerificationError) and isinstance(error, ValueError) and error.code == "status-ratchet"
    if tamper == "dh not a point":
        assert error.stage is dr.Stage.RATCHET_STEP
    assert bob.decrypt(message) == b"secret"


@pytest.mark.parametrize("value", [-1, 1 << 32])
def test_header_numbers_are_uint32(value: int) -> None:
    alice, bob = _pair(13)
    message = alice.encrypt(b"x")
    for name in ("n", "pn"):
        assert _refused(bob, dataclasses.replace(message, **{name: value})).stage is dr.Stage.HEADER


def test_forward_secrecy_of_a_snapshot() -> None:
    """After both sides have sent after receiving, neither device's state decrypts what
    came before: the message keys are gone and so are the old ratchet keys."""
    alice, bob = _pair(14)
    traffic: list[dr.Message] = []
    states: list[dr.SessionState] = []
    for turn in range(4):  # a, b, a, b
        sender, receiver = (alice, bob) if turn % 2 == 0 else (bob, alice)
        for i in range(2):
            states += [alice.snapshot(), bob.snapshot()]
            message = sender.encrypt(b"turn %d.%d" % (turn, i))
            assert receiver.decrypt(message) == b"turn %d.%d" % (turn, i)
            traffic.append(message)
    for snapshot in (alice.snapshot(), bob.snapshot()):
        assert snapshot.skipped == ()
        # The ratchet keys of the first exchange (Alice's first, Bob's signed prekey) are gone.
        assert snapshot.dh_private not in {s.dh_private for s in states[:4]}
        for message in traffic:
            thief = dr.Session.restore(snapshot, _seeded(99))
            with pytest.raises(dr.RatchetError):
                thief.decrypt(message)


def test_snapshots_are_frozen_values() -> None:
    alice, bob = _pair(15)
    a = [alice.encrypt(b"a%d" % i) for i in range(3)]
    assert bob.decrypt(a[2]) == b"a2"
    snapshot = bob.snapshot()
    assert hash(snapshot) == hash(dataclasses.replace(snapshot)) and snapshot == dataclasses.replace(snapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.recv_n = 0  # type: ignore[misc]
    assert isinstance(snapshot.skipped, tuple) and "mk=" not in repr(snapshot.skipped)
    # Two restored copies go the same way; the original is unaffected.
    copy1, copy2 = dr.Session.restore(snapshot, _seeded(1)), dr.Session.restore(snapshot, _seeded(1))
    assert copy1.decrypt(a[0]) == copy2.decrypt(a[0]) == b"a0"
    assert copy1.snapshot() == copy2.snapshot() != snapshot
    assert bob.snapshot() == snapshot
    # The functional core gives the same state as the Session holder.
    state, plaintext = dr.ratchet_decrypt(snapshot, a[1], _seeded(2))
    holder = dr.Session.restore(snapshot, _seeded(2))
    assert holder.decrypt(a[1]) == plaintext == b"a1" and holder.snapshot() == state


def test_errors_and_guards() -> None:
    with pytest.raises(ValueError, match="empty"):
        dr.Session.accept(b"", SK, _seeded(1))
    with pytest.raises(ValueError):
        dr.Limits(max_skip=-1, max_keep=0, max_message_keys_per_session=0)
    with pytest.raises(dr.RatchetError) as info:
        dr.Session.initiate(SK, b"\x02" + b"\xff" * 32, _seeded(1))
    assert info.value.stage is dr.Stage.INITIAL
    alice, _ = _pair(16)
    last_state, last = dr.ratchet_encrypt(dataclasses.replace(alice.snapshot(), send_n=(1 << 32) - 1), b"x")
    assert last.n == (1 << 32) - 1
    with pytest.raises(OverflowError):
        dr.ratchet_encrypt(last_state, b"x")
    with pytest.raises(TypeError):
        dr.Session(object(), _seeded(1))  # type: ignore[arg-type]
    assert issubclass(dr.RatchetError, VerificationError) and dr.RatchetError.code == "status-ratchet"


def test_constants_match_the_sources() -> None:
    c = UPSTREAM["constants"]
    assert c["root_kdf_info"]["value_ascii"].encode() == dr.ROOT_KDF_INFO
    assert c["message_keys_info"]["value_ascii"].encode() == dr.MESSAGE_KEYS_INFO
    assert (c["root_kdf_size"]["value"], c["message_keys_size"]["value"]) == (dr.ROOT_KDF_SIZE, dr.MESSAGE_KEYS_SIZE)
    assert c["chain_key_input"]["value"] == dr.CHAIN_KEY_INPUT
    assert c["message_key_input"]["value"] == dr.MESSAGE_KEY_INPUT
    for ours, theirs in ((dr.STATUS_GO_LIMITS, c["status_go_limits"]), (dr.DOUBLERATCHET_DEFAULT_LIMITS,
                                                                        c["doubleratchet_limits"])):
        assert dataclasses.asdict(ours) == {k: v for k, v in theirs.items() if k != "source"}


@given(st.one_of(st.binary(max_size=64), st.binary(min_size=65, max_size=200)), st.binary(max_size=300))
def test_hmac_sha256_is_the_standard_librarys(key: bytes, data: bytes) -> None:
    # Every key length: under, at and over SHA-256's 64-byte block (hashed first).
    assert dr.hmac_sha256(key, data) == hmac.digest(key, data, "sha256")
    for length in (0, 32, 63, 64, 65, 129):
        key = bytes(range(length))
        assert dr.hmac_sha256(key, data) == hmac.digest(key, data, "sha256")


@given(st.binary(max_size=80), st.binary(max_size=40), st.binary(max_size=40), st.integers(0, 300))
def test_hkdf_sha256_is_rfc_5869(ikm: bytes, salt: bytes, info: bytes, length: int) -> None:
    expected = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm) \
        if length else b""
    assert dr.hkdf_sha256(ikm, salt, info, length) == expected


# --- random interleavings ----------------------------------------------------------------

ops = st.lists(st.tuples(st.sampled_from(["send"] * 4 + ["deliver"] * 3 + ["drop", "replay", "tamper"]),
                         st.sampled_from(["alice", "bob"]), st.integers(min_value=0, max_value=1 << 16)),
               min_size=10, max_size=60)


def _confirmed_is_kept_then_deleted(state: dr.SessionState, message: dr.Message) -> None:
    """decrypt(confirm=True) never stores the message's key: the same state as status-go's
    storing it (taking its place under the limits) and deleting it on confirmation."""
    fixed = lambda n: b"\x07" * n  # noqa: E731 (a DH step draws the same key in both)
    try:
        confirmed, plaintext = dr.ratchet_decrypt(state, message, fixed, confirm=True)
    except dr.RatchetError:
        with pytest.raises(dr.RatchetError):
            dr.ratchet_decrypt(state, message, fixed, confirm=False)
        return
    kept, same = dr.ratchet_decrypt(state, message, fixed, confirm=False)
    assert same == plaintext
    assert confirmed == dr.confirm_message(kept, message.dh, message.n)


def _interleave(script: list[tuple[str, str, int]], seed: int, limits: dr.Limits, *, strict: bool) -> None:
    """Play a script of sends, deliveries in any order, drops, replays and tamperings.

    Always: a decryption gives the sent plaintext or raises RatchetError with the state
    unchanged; replays and altered messages are refused. With `strict` (limits far above
    the script's size) every fresh message must decrypt."""
    alice, bob = _pair(seed, limits=limits)
    sessions = {"alice": alice, "bob": bob}
    in_flight: dict[str, list[tuple[dr.Message, bytes]]] = {"alice": [], "bob": []}  # to that party
    delivered: dict[str, list[dr.Message]] = {"alice": [], "bob": []}
    counter = 0
    for op, side, k in script:
        if op in ("deliver", "drop", "tamper") and not in_flight[side]:
            side = "bob" if side == "alice" else "alice"  # act where there is something to act on
        other = "bob" if side == "alice" else "alice"
        session = sessions[side]
        if op == "send":
            counter += 1
            plaintext = b"%s #%d" % (side.encode(), counter)
            in_flight[other].append((sessions[side].encrypt(plaintext), plaintext))
        elif op in ("deliver", "drop") and in_flight[side]:
            message, plaintext = in_flight[side].pop(k % len(in_flight[side]))
            if op == "drop":
                continue
            before = session.snapshot()
            _confirmed_is_kept_then_deleted(before, message)
            try:
                assert session.decrypt(message) == plaintext
                delivered[side].append(message)
                event("delivered")
            except dr.RatchetError as error:
                assert not strict, "a fresh message within the limits was refused"
                assert session.snapshot() == before
                event(f"fresh message refused: {error.stage}")
        elif op == "replay" and delivered[side]:
            _refused(session, delivered[side][k % len(delivered[side])])
            event("replay refused")
        elif op == "tamper" and in_flight[side]:
            message, _ = in_flight[side][k % len(in_flight[side])]
            kind = k % 5
            if kind == 0:
                altered = dataclasses.replace(message, payload=_flip(message.payload, k % len(message.payload)))
            elif kind == 1:
                altered = dataclasses.replace(message, n=message.n + 1 + k % 3)
            elif kind == 2:
                altered = dataclasses.replace(message, pn=(message.pn + 1) % (1 << 32))
            elif kind == 3:
                altered = dataclasses.replace(message, dh=sc.public_key(sc.keccak256(b"%d" % k)))
            else:
                altered = dataclasses.replace(message, payload=message.payload[: k % len(message.payload)])
            _refused(session, altered)
            event("altered message refused")


@given(ops, st.integers(min_value=0, max_value=1000))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_interleavings_within_status_go_limits(script: list[tuple[str, str, int]], seed: int) -> None:
    _interleave(script, seed, dr.STATUS_GO_LIMITS, strict=True)


@given(ops, st.integers(min_value=0, max_value=1000))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_interleavings_with_tight_limits(script: list[tuple[str, str, int]], seed: int) -> None:
    _interleave(script, seed, dr.Limits(max_skip=2, max_keep=6, max_message_keys_per_session=3), strict=False)


# --- interoperability with Syndace's doubleratchet (configured in tests/syndace_status.py)


Order = Callable[[int], list[int]]
ORDERS: list[Order] = [lambda k: list(range(k)), lambda k: list(reversed(range(k))),
                       lambda k: [*range(1, k), 0]]


async def _talk(ours: dr.Session, theirs: StatusDoubleRatchet, *, we_send_first: bool, rounds: int = 6) -> None:
    """Bursts both ways (each burst after a DH step), delivered out of order."""
    for turn in range(rounds):
        burst = 1 + turn % 3
        order = ORDERS[turn % len(ORDERS)](burst)
        if (turn % 2 == 0) == we_send_first:
            sent = [ours.encrypt(b"ours %d.%d" % (turn, i)) for i in range(burst)]
            for i in order:
                assert await theirs.decrypt_message(to_syndace(sent[i]), b"") == b"ours %d.%d" % (turn, i)
        else:
            received = [await theirs.encrypt_message(b"theirs %d.%d" % (turn, i), b"") for i in range(burst)]
            for i in order:
                assert ours.decrypt(from_syndace(received[i])) == b"theirs %d.%d" % (turn, i)


@pytest.mark.parametrize("curve_name", list(SYNDACE_CURVES))
def test_syndace_initiates_we_accept(curve_name: str) -> None:
    """Syndace's encrypt_initial_message is the X3DH initiator's NewWithRemoteKey: the same
    sending chain from one root step; our responder (New) meets it. Then both ways."""
    curve, ratchet_class = SYNDACE_CURVES[curve_name]
    shared = sc.x3dh_shared_key(sc.keccak256(b"ik a"), sc.keccak256(b"ek a"), sc.public_key(sc.keccak256(b"ik b")),
                                sc.public_key(sc.keccak256(b"spk b")))
    prekey, prekey_public = curve.key_pair(_seeded(21))

    async def run() -> None:
        theirs, first = await StatusDoubleRatchet.encrypt_initial_message(
            **syndace_config(ratchet_class), shared_secret=shared, recipient_ratchet_pub=prekey_public,
            message=b"hello", associated_data=b"")
        ours = dr.Session.accept(shared, prekey, _seeded(22), curve=curve)
        assert ours.decrypt(from_syndace(first)) == b"hello"
        await _talk(ours, theirs, we_send_first=False)
        # Each refuses the other's replays, in its own way.
        replay = ours.encrypt(b"once")
        assert await theirs.decrypt_message(to_syndace(replay), b"") == b"once"
        with pytest.raises(DuplicateMessageException):
            await theirs.decrypt_message(to_syndace(replay), b"")

    asyncio.run(run())


@pytest.mark.parametrize("curve_name", list(SYNDACE_CURVES))
def test_we_initiate_syndace_accepts(curve_name: str) -> None:
    """Our initiator against Syndace's decrypt_initial_message (the responder's first DH step
    on the initiator's key, as RatchetDecrypt does it for New's session). Then both ways."""
    curve, ratchet_class = SYNDACE_CURVES[curve_name]
    shared = sc.keccak256(b"shared")
    prekey, prekey_public = curve.key_pair(_seeded(23))

    async def run() -> None:
        ours = dr.Session.initiate(shared, prekey_public, _seeded(24), curve=curve)
        first = ours.encrypt(b"hello")
        theirs, plaintext = await StatusDoubleRatchet.decrypt_initial_message(
            **syndace_config(ratchet_class), shared_secret=shared, own_ratchet_priv=prekey,
            message=to_syndace(first), associated_data=b"")
        assert plaintext == b"hello"
        await _talk(ours, theirs, we_send_first=False)
        reply = await theirs.encrypt_message(b"once", b"")
        assert ours.decrypt(from_syndace(reply)) == b"once"
        _refused(ours, from_syndace(reply))

    asyncio.run(run())


def test_where_syndace_and_status_cannot_meet() -> None:
    """Status's responder can send before it has heard from the initiator: doubleratchet's
    DefaultState seeds its sending chain, and the initiator's receiving chain, with the
    shared key, under the signed prekey. Syndace has neither chain: it can only make a
    responder from the initiator's first message, and its initiator has no receiving chain
    until a DH step, so such an early message cannot be read. (The other differences do not
    stop them meeting: Syndace has no wire format, so a header is mapped field by field;
    the associated data layout is the DoubleRatchet subclass's to choose, and ours is
    Status's; its skipped-key policies differ: a FIFO of max_num_skipped_message_keys,
    and a previous-chain skip over the threshold only warns where status-go refuses.)"""
    prekey, prekey_public = dr.X25519.key_pair(_seeded(25))
    shared = sc.keccak256(b"shared")

    async def run() -> None:
        theirs, _ = await StatusDoubleRatchet.encrypt_initial_message(
            **syndace_config(SyndaceCurve25519Ratchet), shared_secret=shared, recipient_ratchet_pub=prekey_public,
            message=b"hello", associated_data=b"")
        ours = dr.Session.accept(shared, prekey, _seeded(26), curve=dr.X25519)
        early = ours.encrypt(b"before hearing from you")
        with pytest.raises((AssertionError, ChainNotAvailableException)):
            await theirs.decrypt_message(to_syndace(early), b"")

    asyncio.run(run())
