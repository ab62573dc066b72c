"""Berty's cryptography as weshnet computes it (protocols/berty/crypto.py).

The known answers come from weshnet's tests (tests/vectors/berty-weshnet.json): only its
rendezvous tests have fixed values. The rest checks weshnet's constructions against oracles
written here from their definitions (NaCl's box, RFC 5869, the byte layout Go's protobuf
writes), and the properties the protocol needs: both sides of the handshake agree, a wrong
key, a changed byte or another signer fails in the step it belongs to, the contact group is
the same from both accounts and from no other pair, points rotate exactly at period bounds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_box,
    crypto_box_beforenm,
    crypto_scalarmult,
    crypto_scalarmult_base,
    crypto_secretbox,
    crypto_secretbox_open,
)

from protocols.berty import crypto as bc
from protocols.berty.crypto import (
    HandshakeError,
    Step,
)
from runtime.errors import VerificationError

VECTORS_COPY = Path(__file__).parent / "vectors" / "berty-weshnet.json"
VECTORS_SHARED = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "berty-weshnet.json"


def _load_vectors() -> dict[str, Any]:
    path = VECTORS_COPY if VECTORS_COPY.exists() else VECTORS_SHARED
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


V = _load_vectors()
seeds = st.binary(min_size=32, max_size=32)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _pair(n: int) -> bc.Ed25519KeyPair:
    return bc.Ed25519KeyPair.from_seed(hashlib.sha256(b"account %d" % n).digest())


def _ephemeral(n: int) -> bc.EphemeralKeyPair:
    return bc.EphemeralKeyPair.from_private(hashlib.sha256(b"ephemeral %d" % n).digest())


# --- reference vectors -------------------------------------------------------------------


def test_vector_copy_matches_shared_original() -> None:
    if not VECTORS_SHARED.exists():
        pytest.skip("no shared vectors next to this clone")
    assert json.loads(VECTORS_COPY.read_text()) == json.loads(VECTORS_SHARED.read_text())


@pytest.mark.parametrize("case", V["rendezvous_point"]["cases"])
def test_vector_rendezvous_point(case: dict[str, str]) -> None:
    point = bc.rendezvous_point(case["topic_utf8"].encode(), case["seed_utf8"].encode(), _time(case["time"]))
    assert point.hex() == case["expected"]


@pytest.mark.parametrize("case", V["round_time_period"]["cases"])
def test_vector_round_time_period(case: dict[str, Any]) -> None:
    when, period = _time(case["time"]), timedelta(seconds=case["period_seconds"])
    assert bc.period_start(when, period) == _time(case["out"])
    assert bc.next_rotation(when, period) == _time(case["next"])


def test_vector_constants() -> None:
    c = V["constants"]
    assert bc.NONCE_REQUESTER_AUTHENTICATE.hex() == c["nonce_requester_authenticate"]["value"]
    assert bc.NONCE_RESPONDER_ACCEPT.hex() == c["nonce_responder_accept"]["value"]
    assert c["default_rotation_interval_seconds"]["value"] == bc.DEFAULT_ROTATION_INTERVAL.total_seconds()
    assert c["rotation_grace_period_seconds"]["value"] == bc.ROTATION_GRACE_PERIOD.total_seconds()
    # Python keeps microseconds: the static interval is Go's, truncated to them.
    assert c["static_rotation_interval_nanoseconds"]["value"] // 1000 == bc.STATIC_ROTATION_INTERVAL // timedelta(
        microseconds=1
    )
    assert c["rendezvous_seed_length"]["value"] == bc.RENDEZVOUS_SEED_SIZE
    assert c["contact_request_protocol"]["value"] == bc.CONTACT_REQUEST_PROTOCOL
    assert c["delimited_reader_max_size"]["value"] == bc.MAX_FRAME_SIZE
    assert c["out_of_store_secret_namespace"]["value"].encode() == bc.OUT_OF_STORE_SECRET_INFO


# --- rendezvous points -------------------------------------------------------------------


def test_rendezvous_point_is_the_hmac_of_topic_and_seed_over_the_time() -> None:
    when = datetime(2020, 4, 10, 12, tzinfo=UTC)
    expected = hmac.new(b"topic" + b"seed", int(when.timestamp()).to_bytes(8, "big"), hashlib.sha256).digest()
    assert bc.rendezvous_point(b"topic", b"seed", when) == expected
    # Not the document's SHA-256(id ‖ HMAC(seed, 32-byte time buffer)).
    doc_mac = hmac.new(b"seed", int(when.timestamp()).to_bytes(8, "big") + bytes(24), hashlib.sha256).digest()
    assert bc.rendezvous_point(b"topic", b"seed", when) != hashlib.sha256(b"topic" + doc_mac).digest()


def test_rendezvous_point_uses_whole_seconds() -> None:
    when = datetime(2020, 4, 10, 12, tzinfo=UTC)
    assert bc.rendezvous_point(b"t", b"s", when + timedelta(microseconds=999_999)) == bc.rendezvous_point(
        b"t", b"s", when
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        bc.rendezvous_point(b"t", b"s", datetime(2020, 1, 1))


HOUR = timedelta(hours=1)


def test_point_is_stable_within_a_period_and_changes_at_its_end() -> None:
    start = datetime(2020, 4, 10, 12, tzinfo=UTC)
    first = bc.rendezvous_point_at(b"topic", b"seed", start, HOUR)
    assert first.start == start and first.deadline == start + HOUR
    for offset in (timedelta(0), timedelta(minutes=30), HOUR - timedelta(microseconds=1)):
        assert bc.rendezvous_point_at(b"topic", b"seed", start + offset, HOUR) == first
    after = bc.rendezvous_point_at(b"topic", b"seed", start + HOUR, HOUR)
    assert after.rotation != first.rotation
    assert after.rotation == bc.rendezvous_point(b"topic", b"seed", start + HOUR)
    assert first.next() == after
    assert first.rotation_topic == base64.b64encode(first.rotation).decode()


@settings(max_examples=60, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    period_seconds=st.integers(min_value=1, max_value=10 * 86400),
)
def test_period_bounds_property(when: datetime, period_seconds: int) -> None:
    period = timedelta(seconds=period_seconds)
    point = bc.rendezvous_point_at(b"topic", b"seed", when, period)
    assert point.start <= when < point.deadline
    assert int(point.start.timestamp()) % period_seconds == 0
    assert bc.rendezvous_point_at(b"topic", b"seed", point.deadline - timedelta(microseconds=1), period) == point
    assert bc.rendezvous_point_at(b"topic", b"seed", point.deadline, period).rotation != point.rotation


def test_static_interval_never_rotates_before_2262() -> None:
    # weshnet's service runs with NewStaticRotationInterval: every time rounds to Unix 0.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for when in (datetime(1970, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC)):
        point = bc.rendezvous_point_at(b"topic", b"seed", when)
        assert point.start == epoch
        assert point.rotation == bc.rendezvous_point(b"topic", b"seed", epoch)
        assert point.deadline == datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)


def test_period_start_keeps_the_time_zone() -> None:
    cet = timezone(timedelta(hours=2))
    when = datetime(2020, 4, 10, 14, 34, tzinfo=cet)
    start = bc.period_start(when, HOUR)
    assert start.tzinfo == cet and start == datetime(2020, 4, 10, 12, tzinfo=UTC)


def test_before_1970_rounds_toward_zero_like_go() -> None:
    when = datetime(1969, 12, 31, 23, 30, tzinfo=UTC)  # Unix -1800
    assert bc.period_start(when, HOUR) == datetime(1970, 1, 1, tzinfo=UTC)
    # uint64 of a negative Unix time: two's complement.
    expected = hmac.new(b"ts", (2**64 - 1800).to_bytes(8, "big"), hashlib.sha256).digest()
    assert bc.rendezvous_point(b"t", b"s", when) == expected


def test_sub_second_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one second"):
        bc.period_start(datetime(2020, 1, 1, tzinfo=UTC), timedelta(milliseconds=500))


def test_contact_request_rendezvous() -> None:
    account, seed = _pair(1), bytes(range(32))
    when = datetime(2024, 6, 1, tzinfo=UTC)
    point = bc.contact_request_rendezvous(account.public, seed, when)
    topic = base64.b64encode(account.public)
    assert point.topic == topic == bc.contact_request_topic(account.public)
    assert point.rotation == bc.rendezvous_point(topic, seed, datetime(1970, 1, 1, tzinfo=UTC))
    # A new seed (ContactRequestReferenceReset) moves the point.
    assert bc.contact_request_rendezvous(account.public, bc.new_rendezvous_seed(), when).rotation != point.rotation
    with pytest.raises(ValueError, match="32 bytes"):
        bc.contact_request_rendezvous(account.public, b"short", when)


# --- key conversion ----------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_conversion_matches_weshnet_and_is_consistent(seed: bytes) -> None:
    key = bc.Ed25519KeyPair.from_seed(seed)
    x_private = bc.ed25519_private_to_x25519(key)
    # cryptoutil.PrivateKeyToCurve25519: SHA-512 of the seed, clamped.
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    assert x_private == bytes(h)
    # TestCurve25519Conversion: the converted public key is the converted private key's.
    assert bc.ed25519_public_to_x25519(key.public) == crypto_scalarmult_base(x_private)


def test_invalid_public_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        bc.ed25519_public_to_x25519(b"\x01" * 31)
    identity = (1).to_bytes(32, "little")  # the neutral element: small order
    with pytest.raises(ValueError, match="small order"):
        bc.ed25519_public_to_x25519(identity)


def test_libp2p_public_key_marshalling() -> None:
    pk = _pair(1).public
    assert bc.marshal_libp2p_public_key(pk) == b"\x08\x01\x12\x20" + pk
    assert bc.unmarshal_libp2p_public_key(b"\x12\x20" + pk + b"\x08\x01") == pk  # any field order
    with pytest.raises(ValueError, match="key type 2"):
        bc.unmarshal_libp2p_public_key(b"\x08\x02\x12\x20" + pk)
    with pytest.raises(ValueError, match="required"):
        bc.unmarshal_libp2p_public_key(b"\x12\x20" + pk)


# --- the handshake -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Everything one honest handshake computed, on both sides."""

    requester_ab: bytes
    responder_ab: bytes
    requester_auth_key: bytes
    responder_auth_key: bytes
    authenticate_box: bytes
    learned_requester: bytes
    requester_accept_key: bytes
    responder_accept_key: bytes
    accept_box: bytes


def _handshake(
    requester: bc.Ed25519KeyPair, responder: bc.Ed25519KeyPair, a: bc.EphemeralKeyPair, b: bc.EphemeralKeyPair
) -> Run:
    # 1. Requester Hello, 2. Responder Hello: through the wire encoding and framing.
    split = bc.split_frame(bc.frame(bc.encode_hello(a.public)), Step.REQUESTER_HELLO)
    assert split is not None
    hello_a, rest = split
    assert rest == b""
    a_pub = bc.decode_hello(hello_a, Step.REQUESTER_HELLO)
    b_pub = bc.decode_hello(bc.encode_hello(b.public), Step.RESPONDER_HELLO)
    requester_ab = bc.ephemeral_shared_secret(a, b_pub)
    responder_ab = bc.ephemeral_shared_secret(b, a_pub)
    # 3. Requester Authenticate.
    requester_auth_key = bc.authenticate_box_key(
        requester_ab, bc.requester_ephemeral_account_secret(a, responder.public)
    )
    box3 = bc.seal_requester_authenticate(requester, requester_ab, requester_auth_key)
    responder_auth_key = bc.authenticate_box_key(responder_ab, bc.responder_ephemeral_account_secret(responder, a_pub))
    received3 = bc.decode_box_envelope(bc.encode_box_envelope(box3), Step.REQUESTER_AUTHENTICATE)
    learned = bc.open_requester_authenticate(received3, responder_ab, responder_auth_key)
    # 4. Responder Accept.
    responder_accept_key = bc.accept_box_key(responder_ab, bc.account_shared_secret(responder, learned))
    box4 = bc.seal_responder_accept(responder, responder_ab, responder_accept_key)
    requester_accept_key = bc.accept_box_key(requester_ab, bc.account_shared_secret(requester, responder.public))
    bc.open_responder_accept(box4, requester_ab, requester_accept_key, responder.public)
    # 5. Requester Acknowledge.
    bc.verify_requester_acknowledge(bc.encode_requester_acknowledge())
    return Run(
        requester_ab, responder_ab, requester_auth_key, responder_auth_key, box3, learned,
        requester_accept_key, responder_accept_key, box4,
    )  # fmt: skip


REQUESTER, RESPONDER, OTHER = _pair(1), _pair(2), _pair(3)
A, B = _ephemeral(1), _ephemeral(2)
RUN = _handshake(REQUESTER, RESPONDER, A, B)


@settings(max_examples=25, deadline=None)
@given(requester=seeds, responder=seeds, a=seeds, b=seeds)
def test_both_sides_derive_the_same_keys(requester: bytes, responder: bytes, a: bytes, b: bytes) -> None:
    run = _handshake(
        bc.Ed25519KeyPair.from_seed(requester),
        bc.Ed25519KeyPair.from_seed(responder),
        bc.EphemeralKeyPair.from_private(a),
        bc.EphemeralKeyPair.from_private(b),
    )
    assert run.requester_ab == run.responder_ab
    assert run.requester_auth_key == run.responder_auth_key
    assert run.requester_accept_key == run.responder_accept_key
    assert run.requester_auth_key != run.requester_accept_key
    assert run.learned_requester == bc.Ed25519KeyPair.from_seed(requester).public


def test_shared_secrets_are_nacl_box_precompute_not_raw_x25519() -> None:
    # a.b is box.Precompute: the key NaCl's crypto_box uses, so a secretbox under it is a box.
    message, nonce = b"hello", bytes(24)
    assert crypto_secretbox(message, nonce, RUN.requester_ab) == crypto_box(message, nonce, B.public, A.private)
    assert RUN.requester_ab != crypto_scalarmult(A.private, B.public)
    # a.B and A.B use the account keys converted to X25519.
    b_x = bc.ed25519_public_to_x25519(RESPONDER.public)
    assert bc.requester_ephemeral_account_secret(A, RESPONDER.public) == crypto_box_beforenm(b_x, A.private)
    a_x, b_priv = bc.ed25519_public_to_x25519(REQUESTER.public), bc.ed25519_private_to_x25519(RESPONDER)
    assert bc.account_shared_secret(RESPONDER, REQUESTER.public) == crypto_box_beforenm(a_x, b_priv)
    assert RUN.requester_auth_key == hashlib.sha256(RUN.requester_ab + crypto_box_beforenm(b_x, A.private)).digest()


def test_box_plaintexts_are_weshnets_protobufs() -> None:
    # Step 3: RequesterAuthenticatePayload{requester_account_id: libp2p PublicKey, requester_account_sig}.
    plain3 = crypto_secretbox_open(RUN.authenticate_box, bc.NONCE_REQUESTER_AUTHENTICATE, RUN.requester_auth_key)
    assert plain3 == b"\x0a\x24\x08\x01\x12\x20" + REQUESTER.public + b"\x12\x40" + REQUESTER.sign(RUN.requester_ab)
    assert len(RUN.authenticate_box) == 16 + len(plain3)
    # Step 4: ResponderAcceptPayload{responder_account_sig}.
    plain4 = crypto_secretbox_open(RUN.accept_box, bc.NONCE_RESPONDER_ACCEPT, RUN.requester_accept_key)
    assert plain4 == b"\x0a\x40" + RESPONDER.sign(RUN.requester_ab)
    assert bc.encode_hello(A.public) == b"\x0a\x20" + A.public
    assert bc.encode_box_envelope(b"xy") == b"\x0a\x02xy"
    assert bc.encode_requester_acknowledge() == b"\x08\x01"


def _step3_box(payload: bytes) -> bytes:
    return crypto_secretbox(payload, bc.NONCE_REQUESTER_AUTHENTICATE, RUN.responder_auth_key)


def test_step3_wrong_responder_key_fails() -> None:
    # A Requester that does not know the Responder's real account key cannot make this box.
    wrong_key = bc.authenticate_box_key(RUN.requester_ab, bc.requester_ephemeral_account_secret(A, OTHER.public))
    box = bc.seal_requester_authenticate(REQUESTER, RUN.requester_ab, wrong_key)
    with pytest.raises(HandshakeError, match="does not open") as info:
        bc.open_requester_authenticate(box, RUN.responder_ab, RUN.responder_auth_key)
    assert info.value.step is Step.REQUESTER_AUTHENTICATE
    assert isinstance(info.value, ValueError) and isinstance(info.value, VerificationError)


def test_step3_any_changed_byte_fails() -> None:
    for i in range(len(RUN.authenticate_box)):
        tampered = bytearray(RUN.authenticate_box)
        tampered[i] ^= 0x01
        with pytest.raises(HandshakeError) as info:
            bc.open_requester_authenticate(bytes(tampered), RUN.responder_ab, RUN.responder_auth_key)
        assert info.value.step is Step.REQUESTER_AUTHENTICATE
    for short in (b"", RUN.authenticate_box[:15], RUN.authenticate_box[:-1]):
        with pytest.raises(HandshakeError, match="does not open"):
            bc.open_requester_authenticate(short, RUN.responder_ab, RUN.responder_auth_key)
    # Nothing was changed by the failures: the genuine box still opens.
    assert bc.open_requester_authenticate(RUN.authenticate_box, RUN.responder_ab, RUN.responder_auth_key) == (
        REQUESTER.public
    )


def test_step3_signature_by_another_key_fails() -> None:
    # The box is right, it names A, but the signature is OTHER's.
    payload = b"\x0a\x24" + bc.marshal_libp2p_public_key(REQUESTER.public) + b"\x12\x40" + OTHER.sign(RUN.requester_ab)
    with pytest.raises(HandshakeError, match="Requester's signature of a.b does not verify") as info:
        bc.open_requester_authenticate(_step3_box(payload), RUN.responder_ab, RUN.responder_auth_key)
    assert str(info.value).startswith("3. Requester Authenticate: ")


def test_step3_signature_of_something_else_fails() -> None:
    payload = b"\x0a\x24" + bc.marshal_libp2p_public_key(REQUESTER.public) + b"\x12\x40" + REQUESTER.sign(b"WrongProof")
    with pytest.raises(HandshakeError, match="does not verify"):
        bc.open_requester_authenticate(_step3_box(payload), RUN.responder_ab, RUN.responder_auth_key)


def test_step3_wrong_lengths_and_key_types_fail() -> None:
    key_field = b"\x0a\x24" + bc.marshal_libp2p_public_key(REQUESTER.public)
    with pytest.raises(HandshakeError, match="63 bytes, not 64"):
        bad = key_field + b"\x12\x3f" + REQUESTER.sign(RUN.requester_ab)[:63]
        bc.open_requester_authenticate(_step3_box(bad), RUN.responder_ab, RUN.responder_auth_key)
    with pytest.raises(HandshakeError, match="0 bytes, not 64"):
        bc.open_requester_authenticate(_step3_box(key_field), RUN.responder_ab, RUN.responder_auth_key)
    secp = b"\x0a\x24\x08\x02\x12\x20" + REQUESTER.public + b"\x12\x40" + REQUESTER.sign(RUN.requester_ab)
    with pytest.raises(HandshakeError, match="requester_account_id: not an Ed25519 key"):
        bc.open_requester_authenticate(_step3_box(secp), RUN.responder_ab, RUN.responder_auth_key)
    short_key = b"\x0a\x23\x08\x01\x12\x1f" + REQUESTER.public[:31]
    with pytest.raises(HandshakeError, match="31"):
        bc.open_requester_authenticate(_step3_box(short_key), RUN.responder_ab, RUN.responder_auth_key)
    with pytest.raises(HandshakeError, match="not a RequesterAuthenticatePayload"):
        bc.open_requester_authenticate(_step3_box(b"\x0a\x50"), RUN.responder_ab, RUN.responder_auth_key)


def test_step3_accepts_what_go_protobuf_accepts() -> None:
    # Fields in the other order, plus an unknown field: Go's proto.Unmarshal takes it.
    sig = REQUESTER.sign(RUN.requester_ab)
    payload = b"\x12\x40" + sig + b"\x18\x07" + b"\x0a\x24" + bc.marshal_libp2p_public_key(REQUESTER.public)
    assert bc.open_requester_authenticate(_step3_box(payload), RUN.responder_ab, RUN.responder_auth_key) == (
        REQUESTER.public
    )


def test_step4_failures_name_the_step() -> None:
    wrong_key = bc.accept_box_key(RUN.responder_ab, bc.account_shared_secret(OTHER, REQUESTER.public))
    cases: list[tuple[bytes, bytes, str]] = [
        (bc.seal_responder_accept(RESPONDER, RUN.responder_ab, wrong_key), RESPONDER.public, "does not open"),
        (RUN.accept_box[:-1] + bytes([RUN.accept_box[-1] ^ 0x80]), RESPONDER.public, "does not open"),
        (bc.seal_responder_accept(OTHER, RUN.responder_ab, RUN.responder_accept_key), RESPONDER.public, "verify"),
        (RUN.accept_box, OTHER.public, "Responder's signature of a.b does not verify"),
        (
            crypto_secretbox(b"\x0a\x20" + bytes(32), bc.NONCE_RESPONDER_ACCEPT, RUN.responder_accept_key),
            RESPONDER.public,
            "32 bytes, not 64",
        ),
    ]
    for box, responder_public, reason in cases:
        with pytest.raises(HandshakeError, match=reason) as info:
            bc.open_responder_accept(box, RUN.requester_ab, RUN.requester_accept_key, responder_public)
        assert info.value.step is Step.RESPONDER_ACCEPT
        assert str(info.value).startswith("4. Responder Accept: ")


def test_step4_box_does_not_open_as_step3() -> None:
    # Distinct keys and nonces: a box of one step never passes as the other's.
    with pytest.raises(HandshakeError, match="does not open"):
        bc.open_requester_authenticate(RUN.accept_box, RUN.responder_ab, RUN.responder_auth_key)
    with pytest.raises(HandshakeError, match="does not open"):
        bc.open_responder_accept(RUN.authenticate_box, RUN.requester_ab, RUN.requester_auth_key, RESPONDER.public)


def test_hello_and_acknowledge_failures() -> None:
    with pytest.raises(HandshakeError, match="31 bytes, not 32") as info:
        bc.decode_hello(b"\x0a\x1f" + bytes(31), Step.RESPONDER_HELLO)
    assert info.value.step is Step.RESPONDER_HELLO
    with pytest.raises(HandshakeError, match="0 bytes"):
        bc.decode_hello(b"", Step.REQUESTER_HELLO)
    with pytest.raises(HandshakeError, match="low-order") as info:
        bc.ephemeral_shared_secret(A, bytes(32))
    assert info.value.step is Step.RESPONDER_HELLO
    for ack in (b"", b"\x08\x00"):
        with pytest.raises(HandshakeError, match="did not acknowledge") as info:
            bc.verify_requester_acknowledge(ack)
        assert info.value.step is Step.REQUESTER_ACKNOWLEDGE
    with pytest.raises(HandshakeError, match="not a RequesterAcknowledgePayload"):
        bc.verify_requester_acknowledge(b"\x08")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=bc.MAX_FRAME_SIZE), max_size=5), st.integers(min_value=1, max_value=700))
def test_frames_split_back_however_the_bytes_arrive(messages: list[bytes], chunk: int) -> None:
    stream = b"".join(bc.frame(m) for m in messages)
    received: list[bytes] = []
    buffer = b""
    for i in range(0, len(stream), chunk):
        buffer += stream[i : i + chunk]
        while (split := bc.split_frame(buffer, Step.REQUESTER_HELLO)) is not None:
            message, buffer = split
            received.append(message)
    assert received == messages and buffer == b""


def test_oversized_frames_fail() -> None:
    with pytest.raises(ValueError, match="at most 2048"):
        bc.frame(bytes(2049))
    with pytest.raises(HandshakeError, match="2049 bytes") as info:
        bc.split_frame(b"\x81\x10", Step.RESPONDER_ACCEPT)
    assert info.value.step is Step.RESPONDER_ACCEPT


# --- contact group -----------------------------------------------------------------------


def _hkdf_sha256_two_blocks(ikm: bytes) -> bytes:
    """RFC 5869 with no salt and no info, written out for exactly 64 bytes."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    t1 = hmac.new(prk, b"\x01", hashlib.sha256).digest()
    return t1 + hmac.new(prk, t1 + b"\x02", hashlib.sha256).digest()


def test_hkdf_matches_rfc5869() -> None:
    # RFC 5869 A.1 and A.3 (A.3: no salt, no info, as the contact group uses it).
    ikm = bytes([0x0B] * 22)
    okm = bc._hkdf("sha256", ikm, bytes(range(0xF0, 0xFA)), 42, salt=bytes(range(13)))
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    assert bc._hkdf("sha256", ikm, b"", 42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_contact_group_derivation_step_by_step() -> None:
    group = bc.contact_group(REQUESTER, RESPONDER.public)
    # getOrComputeECDH: raw X25519 of the converted account keys.
    secret = crypto_scalarmult(bc.ed25519_private_to_x25519(REQUESTER), bc.ed25519_public_to_x25519(RESPONDER.public))
    assert bc.contact_pair_secret(REQUESTER, RESPONDER.public) == secret
    # ... made an Ed25519 key, whose 64-byte raw form feeds HKDF-SHA256.
    okm = _hkdf_sha256_two_blocks(bc.Ed25519KeyPair.from_seed(secret).secret_key)
    assert group.public_key == bc.Ed25519KeyPair.from_seed(okm[:32]).public
    assert group.secret == okm[32:]
    assert group.signing_public_key == bc.Ed25519KeyPair.from_seed(okm[32:]).public == group.signing_key().public
    assert group.group_id == group.public_key.hex()
    # ComputeLinkKey: HKDF-SHA3-256(secret, info = group id).
    prk = hmac.new(bytes(32), group.secret, hashlib.sha3_256).digest()
    assert group.link_key == hmac.new(prk, group.public_key + b"\x01", hashlib.sha3_256).digest()
    assert group.secret.hex() not in repr(group) and group.link_key.hex() not in repr(group)


@settings(max_examples=25, deadline=None)
@given(a=seeds, b=seeds, c=seeds)
def test_contact_group_is_symmetric_and_pair_specific(a: bytes, b: bytes, c: bytes) -> None:
    ka, kb, kc = (bc.Ed25519KeyPair.from_seed(s) for s in (a, b, c))
    ab = bc.contact_group(ka, kb.public)
    assert ab == bc.contact_group(kb, ka.public)
    if len({ka.public, kb.public, kc.public}) == 3:
        assert bc.contact_group(ka, kc.public).public_key != ab.public_key
        assert bc.contact_group(kb, kc.public).secret != ab.secret


def test_out_of_store_values() -> None:
    group = bc.contact_group(REQUESTER, RESPONDER.public)
    oos = bc.out_of_store_secret(group.secret)
    assert oos == bc._hkdf("sha3_256", group.secret, b"push_secret_ref", 32)
    ref = bc.out_of_store_group_reference(group.secret, REQUESTER.public, 7)
    assert ref == bc._hkdf("sha3_256", oos, REQUESTER.public + (7).to_bytes(8, "big"), 32)
    assert ref != bc.out_of_store_group_reference(group.secret, REQUESTER.public, 8)
    name = bc.group_store_name(group.public_key, bc.METADATA_STORE_TYPE)
    assert name == group.public_key.hex() + "_wesh_group_metadata"


# --- device linking ----------------------------------------------------------------------

DEVICE, OTHER_DEVICE = _pair(10), _pair(11)


def test_linking_qr_code_challenge() -> None:
    payload = bc.linking_qr_payload(DEVICE.public)
    assert payload.startswith(bc.LINKING_QR_PREFIX)
    bc.verify_linking_qr(payload, DEVICE.public)
    assert bc.fingerprint_matches(bc.device_fingerprint(DEVICE.public), DEVICE.public)
    assert bc.device_fingerprint(DEVICE.public) == hashlib.sha256(bc.FINGERPRINT_LABEL + DEVICE.public).digest()
    for bad, reason in [
        (bc.linking_qr_payload(OTHER_DEVICE.public), "not that of the device ID"),
        ("https://example.org", "not a device fingerprint"),
        (bc.LINKING_QR_PREFIX + "!!!", "not base64url"),
        (bc.LINKING_QR_PREFIX + "AAAA", "3 bytes, not 32"),
    ]:
        with pytest.raises(HandshakeError, match=reason) as info:
            bc.verify_linking_qr(bad, DEVICE.public)
        assert info.value.step is Step.LINKING_QR_CODE


def test_linking_fingerprint_display() -> None:
    text = bc.display_fingerprint(DEVICE.public)
    groups = text.split(" ")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups)
    assert text != bc.display_fingerprint(OTHER_DEVICE.public)


def test_linking_pin_challenge() -> None:
    pin = bc.new_linking_pin()
    assert len(pin) == 6 and pin.isdigit()
    context = b"peer id of device A"
    signature = bc.sign_linking_pin(DEVICE, pin, context)
    bc.verify_linking_pin(DEVICE.public, pin, signature, context)
    other_pin = str((int(pin) + 1) % 10**6).zfill(6)
    for args, reason in [
        ((DEVICE.public, other_pin, signature, context), "does not verify"),
        ((OTHER_DEVICE.public, pin, signature, context), "does not verify"),
        ((DEVICE.public, pin, signature, b"another session"), "does not verify"),
        ((DEVICE.public, pin, bc.sign_linking_pin(OTHER_DEVICE, pin, context), context), "does not verify"),
        ((DEVICE.public, pin, signature[:-1], context), "63 bytes, not 64"),
        ((DEVICE.public[:31], pin, signature, context), "31 bytes, not 32"),
    ]:
        with pytest.raises(HandshakeError, match=reason) as info:
            bc.verify_linking_pin(*args)
        assert info.value.step is Step.LINKING_PIN
    with pytest.raises(ValueError, match="decimal digits"):
        bc.sign_linking_pin(DEVICE, "12a456")
    with pytest.raises(ValueError, match="4 to 12"):
        bc.new_linking_pin(3)


@settings(max_examples=30, deadline=None)
@given(digits=st.integers(min_value=4, max_value=12))
def test_linking_pins_have_the_digits_asked(digits: int) -> None:
    pin = bc.new_linking_pin(digits)
    assert len(pin) == digits and pin.isascii() and pin.isdigit()
