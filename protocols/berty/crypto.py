"""The cryptography of the Berty protocol as its running implementation, berty/weshnet, computes it.

Sans-IO and pure: every function maps bytes (and a time) to bytes, nothing is mutated, no
clock is read, nothing is sent. Randomness is drawn only where a fresh secret is needed
(ephemeral keys, seeds, PINs) and can always be passed in instead, so tests and simulations
are deterministic.

Sources. The Berty protocol document (sections Rendezvous Point, Account, Linking Devices,
Adding Contacts, Handshake, Groups), and weshnet at commit d735e1d4 (github.com/berty/weshnet):
internal/handshake/{doc,handshake,request,response}.go, api/go-internal/handshake/handshake.proto,
pkg/rendezvous/{rendezvous,rotation}.go, tinder_swiper.go, contact_request_manager.go, orbitdb.go,
pkg/cryptoutil/cryptoutil.go, pkg/secretstore/{keys_utils,device_keystore_wrapper}.go and
pkg/protocoltypes/group.go. Where the two differ we follow weshnet, and a comment marked
"DOCUMENT:" beside the code says what the document says instead.

Keys. Account and device keys are Ed25519 (`Ed25519KeyPair`; weshnet holds them as libp2p
keys, whose raw private form is libsodium's 64-byte seed ‖ public). Where a Diffie-Hellman is
needed weshnet converts them to X25519 (pkg/cryptoutil: the private key is SHA-512(seed)[:32]
clamped, the public key the birational map u = (1+y)/(1-y)), which is what libsodium's
crypto_sign_ed25519_{sk,pk}_to_curve25519 compute for every valid key.

Rendezvous points (pkg/rendezvous). A point is HMAC-SHA256 keyed with topic ‖ seed over the
8-byte big-endian Unix time of the start of the current period; peers advertise and look up
its standard base64. For contact requests the topic is the standard base64 of the account's
raw public key and the seed the account's 32-byte public rendezvous seed; for groups it is
the group's OrbitDB store address and the group's link key. weshnet's running service uses
the "static" rotation interval (2**63-1 ns), so in practice a point never rotates before 2262.

Contact request handshake (internal/handshake), Requester A (ephemeral a), Responder B
(ephemeral b). `x.y` is NaCl's box.Precompute (crypto_box_beforenm: HSalsa20 over X25519),
never the raw X25519 output; account keys enter it converted to X25519.

    1. Requester Hello       A -> B  HelloPayload{a}
    2. Responder Hello       B -> A  HelloPayload{b}               both: a.b
    3. Requester Authenticate A -> B  BoxEnvelope{secretbox[SHA-256(a.b ‖ a.B), nonce 1]
                                       (RequesterAuthenticatePayload{A, sig_A(a.b)})}
    4. Responder Accept      B -> A  BoxEnvelope{secretbox[SHA-256(a.b ‖ A.B), nonce 2]
                                       (ResponderAcceptPayload{sig_B(a.b)})}
    5. Requester Acknowledge A -> B  RequesterAcknowledgePayload{success: true}

Each message travels as a protobuf, length-prefixed with a uvarint (at most 2048 bytes) on a
libp2p stream of protocol /wesh/contact_req/1.0.0. The opening functions raise
`HandshakeError` naming the step and what failed. After step 5 the Requester sends its
ShareableContact{pk, public_rendezvous_seed, metadata} on the same stream, outside any box;
the Responder checks that pk is the A of step 3 (contact_request_manager.go).

Contact group (pkg/secretstore). Both accounts derive it alone, from their own private key and
the other's public key, so every device of both accounts lands in the same group: s = raw
X25519 of the converted account keys; s is an Ed25519 seed, and the 64-byte raw private key
it gives (s ‖ pub(s)) is the input of HKDF-SHA256 (no salt, no info), whose first 32 bytes are
the seed of the group's key (public part: the group id) and next 32 the group secret (the
seed of the group's signing key, and its symmetric key). The link key is HKDF-SHA3-256(secret,
info=group id).

Device linking: weshnet has no device-linking code (a new device restores an exported
account). `device_fingerprint`, `linking_qr_payload`, `new_linking_pin`, `sign_linking_pin`
and their verifiers are our constructions from the document's text; their labels say so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from nacl.bindings import (
    crypto_box_beforenm,
    crypto_scalarmult,
    crypto_scalarmult_base,
    crypto_secretbox,
    crypto_secretbox_open,
    crypto_sign,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import CryptoError

from runtime.errors import VerificationError

__all__ = [
    "CONTACT_REQUEST_PROTOCOL",
    "DEFAULT_ROTATION_INTERVAL",
    "FINGERPRINT_LABEL",
    "KEY_SIZE",
    "LINKING_PIN_LABEL",
    "LINKING_QR_PREFIX",
    "MAX_FRAME_SIZE",
    "MESSAGE_STORE_TYPE",
    "METADATA_STORE_TYPE",
    "NONCE_REQUESTER_AUTHENTICATE",
    "NONCE_RESPONDER_ACCEPT",
    "NONCE_SIZE",
    "OUT_OF_STORE_SECRET_INFO",
    "RENDEZVOUS_SEED_SIZE",
    "ROTATION_GRACE_PERIOD",
    "SIGNATURE_SIZE",
    "STATIC_ROTATION_INTERVAL",
    "ContactGroup",
    "Ed25519KeyPair",
    "EphemeralKeyPair",
    "HandshakeError",
    "RendezvousPoint",
    "Step",
    "accept_box_key",
    "account_shared_secret",
    "authenticate_box_key",
    "contact_group",
    "contact_group_from_pair_secret",
    "contact_pair_secret",
    "contact_request_rendezvous",
    "contact_request_topic",
    "decode_box_envelope",
    "decode_hello",
    "device_fingerprint",
    "display_fingerprint",
    "ed25519_private_to_x25519",
    "ed25519_public_to_x25519",
    "encode_box_envelope",
    "encode_hello",
    "encode_requester_acknowledge",
    "ephemeral_shared_secret",
    "fingerprint_matches",
    "frame",
    "group_store_name",
    "link_key",
    "linking_pin_message",
    "linking_qr_payload",
    "marshal_libp2p_public_key",
    "new_linking_pin",
    "new_rendezvous_seed",
    "next_rotation",
    "open_requester_authenticate",
    "open_responder_accept",
    "out_of_store_group_reference",
    "out_of_store_secret",
    "period_start",
    "rendezvous_point",
    "rendezvous_point_at",
    "requester_ephemeral_account_secret",
    "responder_ephemeral_account_secret",
    "rotation_topic",
    "seal_requester_authenticate",
    "seal_responder_accept",
    "sign_linking_pin",
    "split_frame",
    "unmarshal_libp2p_public_key",
    "verify_linking_pin",
    "verify_linking_qr",
    "verify_requester_acknowledge",
]

KEY_SIZE = 32  # cryptoutil.KeySize: every key and shared secret here
NONCE_SIZE = 24  # cryptoutil.NonceSize: XSalsa20's nonce
SIGNATURE_SIZE = 64
RENDEZVOUS_SEED_SIZE = 32  # protocoltypes.RendezvousSeedLength

# internal/handshake/handshake.go: the boxes of steps 3 and 4 use constant nonces, the Go
# arrays [24]byte{1} and [24]byte{2}. Safe only because each box key is used once: it hashes
# in a.b, which is fresh per handshake, and the two steps' keys differ (a.B vs A.B).
NONCE_REQUESTER_AUTHENTICATE = bytes([1]) + bytes(NONCE_SIZE - 1)
NONCE_RESPONDER_ACCEPT = bytes([2]) + bytes(NONCE_SIZE - 1)

CONTACT_REQUEST_PROTOCOL = "/wesh/contact_req/1.0.0"  # contact_request_manager.go: contactRequestV1
MAX_FRAME_SIZE = 2048  # protoio.NewDelimitedReader(stream, 2048) on both sides

# pkg/rendezvous/rendezvous.go and rotation.go.
DEFAULT_ROTATION_INTERVAL = timedelta(hours=24)
ROTATION_GRACE_PERIOD = timedelta(minutes=10)
# rotation.go NewStaticRotationInterval: time.Until(a far-future time), which saturates at
# Go's largest Duration, 2**63-1 ns. orbitdb.go installs it by default and service.go hands
# the same interval to the swiper, so it is what weshnet runs with. Python's timedelta stops
# at microseconds: the last 807 ns of the period are dropped (it ends in April 2262 anyway).
STATIC_ROTATION_INTERVAL = timedelta(microseconds=(2**63 - 1) // 1000)

METADATA_STORE_TYPE = "wesh_group_metadata"  # orbitdb.go applyDefaults
MESSAGE_STORE_TYPE = "wesh_group_messages"
OUT_OF_STORE_SECRET_INFO = b"push_secret_ref"  # secret_store.go namespaceOutOfStoreSecret

# Our own labels for the device-linking constructions (weshnet has none): domain separation,
# so a fingerprint or a PIN signature can never be mistaken for another use of the same key.
FINGERPRINT_LABEL = b"fsmc/berty/device-id-fingerprint/v1"
LINKING_PIN_LABEL = b"fsmc/berty/linking-pin-signature/v1"
LINKING_QR_PREFIX = "berty-device-fingerprint:1:"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_UINT64_MASK = (1 << 64) - 1
_LIBP2P_KEY_TYPE_ED25519 = 1  # libp2p crypto.pb KeyType: RSA=0, Ed25519=1, Secp256k1=2, ECDSA=3


# --- errors ------------------------------------------------------------------------------


class Step(StrEnum):
    """Where a `HandshakeError` happened: the five steps of the contact request and the
    device-linking challenges."""

    REQUESTER_HELLO = "1. Requester Hello"
    RESPONDER_HELLO = "2. Responder Hello"
    REQUESTER_AUTHENTICATE = "3. Requester Authenticate"
    RESPONDER_ACCEPT = "4. Responder Accept"
    REQUESTER_ACKNOWLEDGE = "5. Requester Acknowledge"
    LINKING_QR_CODE = "linking: QR code challenge"
    LINKING_PIN = "linking: PIN challenge"


class HandshakeError(VerificationError, ValueError):
    """A handshake or linking message that does not verify: a box that does not open, a
    signature that does not verify, a field of the wrong length, bytes that are not the
    message. A remote fault (a `runtime.errors.VerificationError`, so drivers drop the
    message and trace it); also a `ValueError`. Nothing is changed by the failed call."""

    code: ClassVar[str] = "handshake"

    def __init__(self, step: Step, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


# --- keys --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ed25519KeyPair:
    """An account or device key: the 32-byte seed and the 32-byte public key."""

    seed: bytes = field(repr=False)
    public: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519KeyPair:
        if len(seed) != KEY_SIZE:
            raise ValueError(f"an Ed25519 seed is {KEY_SIZE} bytes, not {len(seed)}")
        public, _ = crypto_sign_seed_keypair(seed)
        return cls(seed=bytes(seed), public=bytes(public))

    @classmethod
    def generate(cls) -> Ed25519KeyPair:
        return cls.from_seed(secrets.token_bytes(KEY_SIZE))

    @property
    def secret_key(self) -> bytes:
        """seed ‖ public: libsodium's secret key, Go's ed25519.PrivateKey, libp2p's Raw()."""
        return self.seed + self.public

    def sign(self, message: bytes) -> bytes:
        """A plain Ed25519 signature (what libp2p's Ed25519PrivateKey.Sign makes)."""
        return bytes(crypto_sign(message, self.secret_key)[:SIGNATURE_SIZE])


@dataclass(frozen=True, slots=True)
class EphemeralKeyPair:
    """An X25519 key pair used for one handshake (box.GenerateKey)."""

    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def from_private(cls, private: bytes) -> EphemeralKeyPair:
        if len(private) != KEY_SIZE:
            raise ValueError(f"an X25519 private key is {KEY_SIZE} bytes, not {len(private)}")
        return cls(private=bytes(private), public=bytes(crypto_scalarmult_base(private)))

    @classmethod
    def generate(cls) -> EphemeralKeyPair:
        return cls.from_private(secrets.token_bytes(KEY_SIZE))


def ed25519_public_to_x25519(public: bytes) -> bytes:
    """An Ed25519 public key as an X25519 one (cryptoutil.EdwardsToMontgomeryPub).

    libsodium's conversion, which also rejects (ValueError) small-order points and points
    outside the prime-order subgroup; weshnet's (filippo.io/edwards25519 SetBytes +
    BytesMontgomery) converts them. No honest key is either, so the outputs agree wherever
    both accept."""
    if len(public) != KEY_SIZE:
        raise ValueError(f"an Ed25519 public key is {KEY_SIZE} bytes, not {len(public)}")
    try:
        return bytes(crypto_sign_ed25519_pk_to_curve25519(public))
    except CryptoError as exc:
        raise ValueError("not a valid Ed25519 public key (small order or off the prime-order subgroup)") from exc


def ed25519_private_to_x25519(key: Ed25519KeyPair) -> bytes:
    """An Ed25519 private key as an X25519 one: SHA-512(seed)[:32], clamped. libsodium's
    crypto_sign_ed25519_sk_to_curve25519 and weshnet's cryptoutil.PrivateKeyToCurve25519
    compute exactly this."""
    return bytes(crypto_sign_ed25519_sk_to_curve25519(key.secret_key))


def marshal_libp2p_public_key(public: bytes) -> bytes:
    """libp2p's crypto.MarshalPublicKey of an Ed25519 key: the protobuf PublicKey{Type:
    Ed25519, Data: public}. Step 3 carries the Requester's account key in this form."""
    if len(public) != KEY_SIZE:
        raise ValueError(f"an Ed25519 public key is {KEY_SIZE} bytes, not {len(public)}")
    return _pb_varint_field(1, _LIBP2P_KEY_TYPE_ED25519) + _pb_bytes_field(2, public, keep_empty=True)


def unmarshal_libp2p_public_key(data: bytes) -> bytes:
    """The raw Ed25519 key in a libp2p-marshalled PublicKey; ValueError if it is not one.

    libp2p would also accept RSA, secp256k1 and ECDSA keys here; weshnet then fails later,
    when it converts the key to X25519 for step 4. We refuse them at once."""
    fields = _pb_parse(data)
    key_type = fields.get((1, _WIRE_VARINT))
    key_data = fields.get((2, _WIRE_BYTES))
    # PublicKey is proto2 with both fields required.
    if not isinstance(key_type, int) or not isinstance(key_data, bytes):
        raise ValueError("not a libp2p PublicKey (Type and Data are required)")
    if key_type != _LIBP2P_KEY_TYPE_ED25519:
        raise ValueError(f"not an Ed25519 key (libp2p key type {key_type})")
    if len(key_data) != KEY_SIZE:
        raise ValueError(f"an Ed25519 public key is {KEY_SIZE} bytes, not {len(key_data)}")
    return key_data


# --- rendezvous points -------------------------------------------------------------------


def _unix_seconds(when: datetime) -> int:
    """Go's time.Time.Unix(): whole seconds since the epoch, rounded down."""
    if when.tzinfo is None or when.utcoffset() is None:
        # Go's times always carry a location; a naive datetime would silently mean local time.
        raise ValueError("the time must be timezone-aware")
    return (when - _EPOCH) // _SECOND


def rendezvous_point(topic: bytes, seed: bytes, when: datetime) -> bytes:
    """The rendezvous point of `topic` and `seed` at the instant `when`, as weshnet's
    rendezvous.GenerateRendezvousPointForPeriod computes it: HMAC-SHA256 keyed with
    topic ‖ seed, over the big-endian uint64 of `when`'s Unix seconds. 32 bytes.

    `when` is used as given: weshnet's callers (RotationInterval.NewRendezvousPointForPeriod)
    first round it down to the start of its period, which `rendezvous_point_at` does.
    """
    # DOCUMENT: the document's rendezvousPoint is SHA-256(id ‖ HMAC-SHA256(key=seed, msg=a
    # 32-byte buffer whose first 8 bytes are the big-endian time)). weshnet keys the HMAC
    # with id ‖ seed, MACs only the 8 time bytes, and uses the HMAC itself as the point,
    # with no outer hash (pkg/rendezvous/rendezvous.go).
    # uint64(date.Unix()): a time before 1970 wraps to its two's complement, as in Go.
    timestamp = (_unix_seconds(when) & _UINT64_MASK).to_bytes(8, "big")
    return hmac.new(topic + seed, timestamp, hashlib.sha256).digest()


def _period_seconds(rotation_period: timedelta) -> int:
    # RoundTimePeriod: a negative interval counts as its absolute value, and the division is
    # by int64(interval.Seconds()), the whole seconds. Go would divide by zero (panic) for
    # an interval under one second; we refuse it.
    seconds = abs(rotation_period) // _SECOND
    if seconds == 0:
        raise ValueError("a rotation period must be at least one second")
    return seconds


def period_start(when: datetime, rotation_period: timedelta = STATIC_ROTATION_INTERVAL) -> datetime:
    """The start of the rotation period holding `when` (rendezvous.RoundTimePeriod): the
    Unix time rounded to a multiple of the period's whole seconds, in `when`'s time zone."""
    unix = _unix_seconds(when)
    seconds = _period_seconds(rotation_period)
    # Go's integer division truncates toward zero, so before 1970 weshnet rounds *up* (to
    # the later multiple): kept, so both sides of a pre-1970 clock agree with weshnet.
    periods = abs(unix) // seconds if unix >= 0 else -(abs(unix) // seconds)
    return (_EPOCH + timedelta(seconds=periods * seconds)).astimezone(when.tzinfo)


def next_rotation(when: datetime, rotation_period: timedelta = STATIC_ROTATION_INTERVAL) -> datetime:
    """When the point of `when`'s period stops being used (rendezvous.NextTimePeriod): the
    period's start plus the whole period, fractions of a second included as in Go."""
    return period_start(when, rotation_period) + abs(rotation_period)


@dataclass(frozen=True, slots=True, kw_only=True)
class RendezvousPoint:
    """One period's rendezvous point (weshnet's rendezvous.Point)."""

    topic: bytes
    seed: bytes = field(repr=False)
    rotation_period: timedelta
    start: datetime
    deadline: datetime  # Point.Deadline(): the next period's start
    rotation: bytes  # Point.RawRotationTopic(): the HMAC

    @property
    def rotation_topic(self) -> str:
        """What peers advertise and look up on the rendezvous services (RotationTopic)."""
        return rotation_topic(self.rotation)

    def next(self) -> RendezvousPoint:
        """The following period's point: weshnet's Point.NextPoint once the deadline has
        passed (the point for deadline + 1 s)."""
        # rotation.go's Point.IsExpired is inverted (TTL() > 0, true while the point is still
        # valid), so PointForTopic "rotates" a live point, and NextPoint then recomputes the
        # current period's point for time.Now(): the same point. Harmless with the static
        # interval, and the swiper (tinder_swiper.go) decides rotation by comparing
        # time.Now() with Deadline() instead, which is what this models.
        return rendezvous_point_at(self.topic, self.seed, self.deadline + _SECOND, self.rotation_period)


def rendezvous_point_at(
    topic: bytes, seed: bytes, when: datetime, rotation_period: timedelta = STATIC_ROTATION_INTERVAL
) -> RendezvousPoint:
    """The point in use at `when` (RotationInterval.NewRendezvousPointForPeriod): the HMAC of
    the period's start, valid until the next rotation. The same for every `when` within a
    period, another one in the next."""
    # DOCUMENT: the document builds the time token "following the core principles of RFC
    # 6238" and implies regular rotation; weshnet's running service uses the static interval,
    # so every time from 1970 to 2262 rounds to Unix 0 and points never rotate (orbitdb.go
    # NewStaticRotationInterval, passed to the swiper in service.go). Only its tests use
    # hourly periods. DefaultRotationInterval (24 h) is used only as a grace period.
    start = period_start(when, rotation_period)
    return RendezvousPoint(
        topic=bytes(topic),
        seed=bytes(seed),
        rotation_period=abs(rotation_period),
        start=start,
        deadline=start + abs(rotation_period),
        rotation=rendezvous_point(topic, seed, start),
    )


def rotation_topic(rotation: bytes) -> str:
    """A point as the string weshnet advertises and subscribes to: its standard base64."""
    return base64.b64encode(rotation).decode("ascii")


def contact_request_topic(account_public_key: bytes) -> bytes:
    """The topic of an account's public (contact request) rendezvous point: the standard
    base64 of its raw Ed25519 key, as ASCII bytes (Swiper.Announce / WatchTopic)."""
    # DOCUMENT: "The resource ID used here is the Account ID"; weshnet passes the raw key
    # through base64.StdEncoding before it becomes the HMAC key's prefix (tinder_swiper.go).
    if len(account_public_key) != KEY_SIZE:
        raise ValueError(f"an account key is {KEY_SIZE} bytes, not {len(account_public_key)}")
    return base64.b64encode(account_public_key)


def contact_request_rendezvous(
    account_public_key: bytes,
    rendezvous_seed: bytes,
    when: datetime,
    rotation_period: timedelta = STATIC_ROTATION_INTERVAL,
) -> RendezvousPoint:
    """Where the Responder announces itself and the Requester looks for it at `when`
    (contact_request_manager.go enableAnnounce / enqueueRequest)."""
    if len(rendezvous_seed) != RENDEZVOUS_SEED_SIZE:
        # ShareableContact.CheckFormat demands exactly 32 bytes.
        raise ValueError(f"a public rendezvous seed is {RENDEZVOUS_SEED_SIZE} bytes, not {len(rendezvous_seed)}")
    return rendezvous_point_at(contact_request_topic(account_public_key), rendezvous_seed, when, rotation_period)


def new_rendezvous_seed() -> bytes:
    """A fresh public rendezvous seed (store_metadata.go genNewSeed): 32 random bytes. A new
    one revokes the old contact-request point."""
    return secrets.token_bytes(RENDEZVOUS_SEED_SIZE)


# --- contact request handshake: key schedule ----------------------------------------------


def _precompute(public: bytes, private: bytes, step: Step, what: str) -> bytes:
    """NaCl box.Precompute: HSalsa20(X25519(private, public)). libsodium refuses a public key
    that makes the X25519 output all zero (a low-order point); Go's box does not check and
    would go on with a key everyone knows. We stop, naming the step."""
    if len(public) != KEY_SIZE:
        raise HandshakeError(step, f"{what}: the public key is {len(public)} bytes, not {KEY_SIZE}")
    try:
        return bytes(crypto_box_beforenm(public, private))
    except CryptoError as exc:
        raise HandshakeError(step, f"{what}: low-order public key, no shared secret") from exc


def check_ephemeral_public(public: bytes, step: Step) -> None:
    """Refuse an ephemeral public key no shared secret can come from (a wrong length, a
    low-order point), as `_precompute` would later: for a receiver to refuse the message
    before it acts on it. Any clamped scalar sends a low-order point to zero (clamping
    makes it a multiple of the cofactor), so a fixed one tells."""
    _precompute(public, _PROBE, step, "the ephemeral key")


_PROBE = bytes([9]) * KEY_SIZE


def _account_public_to_x25519(public: bytes, step: Step, whose: str) -> bytes:
    try:
        return ed25519_public_to_x25519(public)
    except ValueError as exc:
        raise HandshakeError(step, f"the {whose} account key cannot be converted to X25519: {exc}") from exc


def ephemeral_shared_secret(own_ephemeral: EphemeralKeyPair, peer_ephemeral_public: bytes) -> bytes:
    """a.b: box.Precompute of the two ephemeral keys, the same on both sides (computed in
    step 2: the Responder on sending b, the Requester on receiving it). It is what both
    accounts sign, and half of both box keys."""
    # DOCUMENT: "Secrets are derived using the X25519 protocol": weshnet runs X25519 through
    # NaCl's HSalsa20 (box.Precompute), for a.b, a.B and A.B alike (internal/handshake).
    return _precompute(peer_ephemeral_public, own_ephemeral.private, Step.RESPONDER_HELLO, "a.b")


def requester_ephemeral_account_secret(own_ephemeral: EphemeralKeyPair, responder_account_public: bytes) -> bytes:
    """a.B on the Requester's side: its ephemeral key with the Responder's account key,
    which it knows beforehand (from the Responder's shareable contact)."""
    public = _account_public_to_x25519(responder_account_public, Step.REQUESTER_AUTHENTICATE, "Responder's")
    return _precompute(public, own_ephemeral.private, Step.REQUESTER_AUTHENTICATE, "a.B")


def responder_ephemeral_account_secret(own_account: Ed25519KeyPair, requester_ephemeral_public: bytes) -> bytes:
    """a.B on the Responder's side: its account key with the Requester's ephemeral key."""
    return _precompute(
        requester_ephemeral_public, ed25519_private_to_x25519(own_account), Step.REQUESTER_AUTHENTICATE, "a.B"
    )


def account_shared_secret(own_account: Ed25519KeyPair, peer_account_public: bytes) -> bytes:
    """A.B: box.Precompute of the two account keys, the same on both sides. The Responder can
    compute it only after step 3 has told it who A is."""
    public = _account_public_to_x25519(peer_account_public, Step.RESPONDER_ACCEPT, "peer's")
    return _precompute(public, ed25519_private_to_x25519(own_account), Step.RESPONDER_ACCEPT, "A.B")


def authenticate_box_key(shared_ephemeral: bytes, ephemeral_account_secret: bytes) -> bytes:
    """The key of step 3's box: SHA-256(a.b ‖ a.B) (cryptoutil.ConcatAndHashSha256)."""
    # DOCUMENT: "sealed with a.b and a.B": concretely, one secretbox under the hash of both.
    return hashlib.sha256(_key(shared_ephemeral, "a.b") + _key(ephemeral_account_secret, "a.B")).digest()


def accept_box_key(shared_ephemeral: bytes, account_secret: bytes) -> bytes:
    """The key of step 4's box: SHA-256(a.b ‖ A.B)."""
    return hashlib.sha256(_key(shared_ephemeral, "a.b") + _key(account_secret, "A.B")).digest()


def _key(value: bytes, what: str) -> bytes:
    # Our own side's values: a wrong length is a programming error, not a remote fault.
    if len(value) != KEY_SIZE:
        raise ValueError(f"{what} is {KEY_SIZE} bytes, not {len(value)}")
    return value


# --- contact request handshake: the boxes ------------------------------------------------


def _verify(public: bytes, message: bytes, signature: bytes, step: Step, whose: str) -> None:
    # libp2p's Verify is Go's crypto/ed25519.Verify; libsodium's is stricter only for keys and
    # signatures no honest signer makes (small-order points, non-canonical encodings).
    if len(signature) != SIGNATURE_SIZE:
        raise HandshakeError(step, f"the {whose} signature is {len(signature)} bytes, not {SIGNATURE_SIZE}")
    try:
        crypto_sign_open(signature + message, public)
    except CryptoError as exc:
        raise HandshakeError(step, f"the {whose} signature of a.b does not verify") from exc


def _open_box(box: bytes, nonce: bytes, key: bytes, step: Step) -> bytes:
    try:
        return bytes(crypto_secretbox_open(box, nonce, key))
    except CryptoError as exc:
        # Also a box shorter than its 16-byte tag: libsodium refuses it the same way.
        raise HandshakeError(step, "the box does not open (wrong key or altered bytes)") from exc


def seal_requester_authenticate(requester_account: Ed25519KeyPair, shared_ephemeral: bytes, box_key: bytes) -> bytes:
    """Step 3, Requester: secretbox[box_key, nonce 1](RequesterAuthenticatePayload{A, sig_A(a.b)}),
    the content of the BoxEnvelope sent to the Responder."""
    # The signature is over the 32 bytes of a.b (the precomputed box key of the ephemerals),
    # nothing else: no label, no transcript, no ephemeral public keys.
    payload = _pb_bytes_field(1, marshal_libp2p_public_key(requester_account.public)) + _pb_bytes_field(
        2, requester_account.sign(_key(shared_ephemeral, "a.b"))
    )
    return bytes(crypto_secretbox(payload, NONCE_REQUESTER_AUTHENTICATE, _key(box_key, "the box key")))


def open_requester_authenticate(box: bytes, shared_ephemeral: bytes, box_key: bytes) -> bytes:
    """Step 3, Responder: opens the box under SHA-256(a.b ‖ a.B), checks the Requester's
    signature of a.b with the account key inside, and returns that key (raw, 32 bytes).
    Raises HandshakeError(REQUESTER_AUTHENTICATE) when any of that fails."""
    step = Step.REQUESTER_AUTHENTICATE
    plain = _open_box(box, NONCE_REQUESTER_AUTHENTICATE, _key(box_key, "the box key"), step)
    fields = _pb_parse_for(plain, step, "RequesterAuthenticatePayload")
    try:
        account = unmarshal_libp2p_public_key(_pb_bytes(fields, 1))
    except ValueError as exc:
        raise HandshakeError(step, f"requester_account_id: {exc}") from exc
    _verify(account, _key(shared_ephemeral, "a.b"), _pb_bytes(fields, 2), step, "Requester's")
    # weshnet converts A only when it computes A.B for step 4; checking it here keeps step 3
    # the one that rejects a key step 4 could not use.
    _account_public_to_x25519(account, step, "Requester's")
    return account


def seal_responder_accept(responder_account: Ed25519KeyPair, shared_ephemeral: bytes, box_key: bytes) -> bytes:
    """Step 4, Responder: secretbox[box_key, nonce 2](ResponderAcceptPayload{sig_B(a.b)}),
    the content of the BoxEnvelope sent back."""
    payload = _pb_bytes_field(1, responder_account.sign(_key(shared_ephemeral, "a.b")))
    return bytes(crypto_secretbox(payload, NONCE_RESPONDER_ACCEPT, _key(box_key, "the box key")))


def open_responder_accept(box: bytes, shared_ephemeral: bytes, box_key: bytes, responder_account_public: bytes) -> None:
    """Step 4, Requester: opens the box under SHA-256(a.b ‖ A.B) and checks the Responder's
    signature of a.b. Returns nothing; raises HandshakeError(RESPONDER_ACCEPT) on failure."""
    step = Step.RESPONDER_ACCEPT
    plain = _open_box(box, NONCE_RESPONDER_ACCEPT, _key(box_key, "the box key"), step)
    fields = _pb_parse_for(plain, step, "ResponderAcceptPayload")
    # DOCUMENT: agrees: "a secret box containing the signature of a.b", sealed with a.b and A.B.
    _verify(responder_account_public, _key(shared_ephemeral, "a.b"), _pb_bytes(fields, 1), step, "Responder's")


# --- contact request handshake: the messages ---------------------------------------------


def encode_hello(ephemeral_public: bytes) -> bytes:
    """Steps 1 and 2: HelloPayload{ephemeral_pub_key}."""
    return _pb_bytes_field(1, _key(ephemeral_public, "an ephemeral public key"))


def decode_hello(data: bytes, step: Step) -> bytes:
    """The ephemeral public key in a HelloPayload (step 1 or 2, for the error's name)."""
    fields = _pb_parse_for(data, step, "HelloPayload")
    key = _pb_bytes(fields, 1)
    if len(key) != KEY_SIZE:  # cryptoutil.KeySliceToArray
        raise HandshakeError(step, f"the ephemeral public key is {len(key)} bytes, not {KEY_SIZE}")
    return key


def encode_box_envelope(box: bytes) -> bytes:
    """Steps 3 and 4: BoxEnvelope{box}."""
    return _pb_bytes_field(1, box)


def decode_box_envelope(data: bytes, step: Step) -> bytes:
    """The box in a BoxEnvelope (step 3 or 4). An absent box is empty and fails to open."""
    return _pb_bytes(_pb_parse_for(data, step, "BoxEnvelope"), 1)


def encode_requester_acknowledge() -> bytes:
    """Step 5: RequesterAcknowledgePayload{success: true}."""
    # DOCUMENT: "the Requester sends an acknowledgement": in weshnet a bare protobuf bool,
    # neither boxed nor signed (request.go sendRequesterAcknowledge).
    return _pb_varint_field(1, 1)


def verify_requester_acknowledge(data: bytes) -> None:
    """Step 5, Responder: the acknowledgement must say success (response.go refuses false or
    absent with ErrInvalidInput)."""
    step = Step.REQUESTER_ACKNOWLEDGE
    success = _pb_parse_for(data, step, "RequesterAcknowledgePayload").get((1, _WIRE_VARINT), 0)
    if not success:
        raise HandshakeError(step, "the Requester did not acknowledge success")


def frame(message: bytes) -> bytes:
    """A message as it goes on the stream: uvarint length ‖ message (protoio delimited)."""
    if len(message) > MAX_FRAME_SIZE:
        raise ValueError(f"a message is at most {MAX_FRAME_SIZE} bytes, not {len(message)}")
    return _uvarint(len(message)) + message


def split_frame(buffer: bytes, step: Step) -> tuple[bytes, bytes] | None:
    """The first framed message in `buffer` and the bytes after it, or None while it is
    incomplete. A length over 2048 fails as weshnet's reader does."""
    try:
        length, start = _read_uvarint(buffer, 0)
    except _Truncated:
        return None
    except ValueError as exc:
        raise HandshakeError(step, f"bad frame length: {exc}") from exc
    if length > MAX_FRAME_SIZE:
        raise HandshakeError(step, f"a frame of {length} bytes is over the {MAX_FRAME_SIZE}-byte limit")
    if len(buffer) - start < length:
        return None
    return bytes(buffer[start : start + length]), bytes(buffer[start + length :])


# --- contact group -----------------------------------------------------------------------


def _hkdf(hash_name: str, ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """RFC 5869 HKDF (golang.org/x/crypto/hkdf). An empty salt is the hash's length of zeros
    (the same HMAC key, since HMAC pads keys with zeros)."""
    size = hashlib.new(hash_name).digest_size
    prk = hmac.new(salt or bytes(size), ikm, hash_name).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


@dataclass(frozen=True, slots=True)
class ContactGroup:
    """The contact group of two accounts, as weshnet's getGroupForContact fills its Group
    (GroupType contact, no SecretSig) plus what weshnet derives from it."""

    public_key: bytes  # Group.public_key: the group id (its hex is GroupIDAsString)
    secret: bytes = field(repr=False)  # Group.secret: the symmetric key and the signing key's seed
    signing_public_key: bytes  # Group.GetSigningPubKey(): verifies the group's log entries
    link_key: bytes = field(repr=False)  # Group.GetLinkKeyArray(): seeds the group's rendezvous point

    @property
    def group_id(self) -> str:
        return self.public_key.hex()

    def signing_key(self) -> Ed25519KeyPair:
        """Group.GetSigningPrivKey(): the Ed25519 key whose seed is the secret."""
        return Ed25519KeyPair.from_seed(self.secret)


def contact_pair_secret(own_account: Ed25519KeyPair, peer_account_public: bytes) -> bytes:
    """The secret both accounts share: raw X25519 of the converted account keys
    (deviceKeystore.getOrComputeECDH). Symmetric: X25519(a, B) = X25519(b, A)."""
    # Not box.Precompute here, unlike the handshake: github.com/aead/ecdh's ComputeSecret
    # is a bare curve25519.ScalarMult.
    public = ed25519_public_to_x25519(peer_account_public)
    try:
        return bytes(crypto_scalarmult(ed25519_private_to_x25519(own_account), public))
    except CryptoError as exc:
        raise ValueError("low-order account key, no shared secret") from exc


def contact_group_from_pair_secret(pair_secret: bytes) -> ContactGroup:
    """The group from the pair secret (getKeysForGroupOfContact + getGroupForContact)."""
    # weshnet makes the secret an Ed25519 private key and feeds its libp2p Raw() form, the
    # 64 bytes seed ‖ public, to HKDF-SHA256 with no salt and no info.
    contact_pair_key = Ed25519KeyPair.from_seed(_key(pair_secret, "the pair secret"))
    okm = _hkdf("sha256", contact_pair_key.secret_key, b"", 2 * KEY_SIZE)
    group_key = Ed25519KeyPair.from_seed(okm[:KEY_SIZE])
    secret = okm[KEY_SIZE:]
    return ContactGroup(
        public_key=group_key.public,
        secret=secret,
        signing_public_key=Ed25519KeyPair.from_seed(secret).public,
        link_key=link_key(group_key.public, secret),
    )


def contact_group(own_account: Ed25519KeyPair, peer_account_public: bytes) -> ContactGroup:
    """The contact group of our account and the peer's: the same from either side, and from
    every device of either account (secretStore.GetGroupForContact)."""
    # DOCUMENT: "The Group Secret, Group ID and Attachment Key are generated by the sender of
    # the Contact Request using X25519": in weshnet both sides derive the group on their own
    # (nothing is sent), and there is no attachment key: what it derives besides the group
    # id and secret are the signing key (seed = secret) and the link key.
    return contact_group_from_pair_secret(contact_pair_secret(own_account, peer_account_public))


def link_key(group_public_key: bytes, secret: bytes) -> bytes:
    """protocoltypes.ComputeLinkKey: HKDF-SHA3-256(secret, no salt, info = group id), 32 bytes.
    It seals the group's exchanged heads and seeds its rendezvous point."""
    return _hkdf("sha3_256", secret, group_public_key, KEY_SIZE)


def out_of_store_secret(secret: bytes) -> bytes:
    """secretstore.getGroupOutOfStoreSecret: HKDF-SHA3-256(group secret, info "push_secret_ref")."""
    return _hkdf("sha3_256", secret, OUT_OF_STORE_SECRET_INFO, KEY_SIZE)


def out_of_store_group_reference(secret: bytes, sender_device_public: bytes, counter: int) -> bytes:
    """secretstore.createOutOfStoreGroupReference: which group a push notification is for,
    HKDF-SHA3-256(out_of_store_secret, info = sender device key ‖ uint64 BE counter)."""
    info = sender_device_public + (counter & _UINT64_MASK).to_bytes(8, "big")
    return _hkdf("sha3_256", out_of_store_secret(secret), info, KEY_SIZE)


def group_store_name(group_public_key: bytes, store_type: str) -> str:
    """The OrbitDB store name of a group's log (orbitdb.go: hex(group id) _ store type). The
    group's rendezvous topic is the store's full address, /orbitdb/<manifest CID>/<name>,
    whose CID OrbitDB computes; its seed is `link_key` (orbitdb.go RegisterRotation)."""
    # DOCUMENT: "The resource ID used here is the Group ID": weshnet uses the OrbitDB address
    # of each store (one point for the metadata log, one for the message log), with the link
    # key as seed.
    return f"{group_public_key.hex()}_{store_type}"


# --- device linking (our construction: weshnet has none) ---------------------------------


def device_fingerprint(device_public_key: bytes) -> bytes:
    """The fingerprint of a device ID: SHA-256(FINGERPRINT_LABEL ‖ raw Ed25519 public key).

    The document's QR code and fingerprint challenges compare "the fingerprint of its Device
    ID" without defining it; weshnet has no linking code. A full 32-byte hash: a device that
    wants to impersonate another would need a second preimage."""
    if len(device_public_key) != KEY_SIZE:
        raise ValueError(f"a device ID is {KEY_SIZE} bytes, not {len(device_public_key)}")
    return hashlib.sha256(FINGERPRINT_LABEL + device_public_key).digest()


def display_fingerprint(device_public_key: bytes) -> str:
    """The fingerprint challenge's text, shown by both devices for the user to compare: the
    first 20 bytes (160 bits) of the fingerprint in base32, 8 groups of 4."""
    text = base64.b32encode(device_fingerprint(device_public_key)[:20]).decode("ascii")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def fingerprint_matches(fingerprint: bytes, device_public_key: bytes) -> bool:
    """Whether a fingerprint is that of this device ID (constant-time comparison)."""
    return hmac.compare_digest(fingerprint, device_fingerprint(device_public_key))


def linking_qr_payload(device_public_key: bytes) -> str:
    """What the new device B shows as a QR code: LINKING_QR_PREFIX ‖ base64url(fingerprint)."""
    return LINKING_QR_PREFIX + base64.urlsafe_b64encode(device_fingerprint(device_public_key)).decode("ascii")


def verify_linking_qr(payload: str, device_public_key: bytes) -> None:
    """QR code challenge, device A: the scanned payload must carry the fingerprint of the
    device ID A received in the linking request. HandshakeError(LINKING_QR_CODE) otherwise."""
    step = Step.LINKING_QR_CODE
    if not payload.startswith(LINKING_QR_PREFIX):
        raise HandshakeError(step, "the QR code is not a device fingerprint")
    encoded = payload[len(LINKING_QR_PREFIX) :]
    # Strict: the lenient decoder would skip stray characters instead of refusing them.
    if not _BASE64URL.fullmatch(encoded):
        raise HandshakeError(step, "the QR code's fingerprint is not base64url")
    try:
        scanned = base64.urlsafe_b64decode(encoded)
    except binascii.Error as exc:
        raise HandshakeError(step, "the QR code's fingerprint is not base64url") from exc
    if len(scanned) != hashlib.sha256().digest_size:
        raise HandshakeError(step, f"the fingerprint is {len(scanned)} bytes, not 32")
    if not fingerprint_matches(scanned, device_public_key):
        raise HandshakeError(step, "the fingerprint is not that of the device ID in the linking request")


def new_linking_pin(digits: int = 6) -> str:
    """PIN challenge, device A: a uniformly random PIN of `digits` decimal digits to display.
    It is single-use: A must end the linking attempt after one failed verification, which is
    what bounds an attacker to one guess in 10**digits."""
    if not 4 <= digits <= 12:
        raise ValueError("a linking PIN has 4 to 12 digits")
    return str(secrets.randbelow(10**digits)).zfill(digits)


def linking_pin_message(pin: str, context: bytes = b"") -> bytes:
    """What B signs: LINKING_PIN_LABEL ‖ uint16 BE len(context) ‖ context ‖ PIN digits.

    `context` binds the signature to this linking session (e.g. A's peer ID from the
    invitation) so it cannot be replayed into another; both devices must pass the same."""
    if not (pin.isascii() and pin.isdigit()) or not 4 <= len(pin) <= 12:
        raise ValueError("a linking PIN is 4 to 12 decimal digits")
    if len(context) > 0xFFFF:
        raise ValueError("the linking context is at most 65535 bytes")
    return LINKING_PIN_LABEL + len(context).to_bytes(2, "big") + context + pin.encode("ascii")


def sign_linking_pin(device: Ed25519KeyPair, pin: str, context: bytes = b"") -> bytes:
    """PIN challenge, device B: the signature, with its device key, of the PIN the user typed."""
    return device.sign(linking_pin_message(pin, context))


def verify_linking_pin(device_public_key: bytes, pin: str, signature: bytes, context: bytes = b"") -> None:
    """PIN challenge, device A: B's signature must verify, with the device ID from the
    linking request, over the PIN A displayed. HandshakeError(LINKING_PIN) otherwise."""
    step = Step.LINKING_PIN
    if len(device_public_key) != KEY_SIZE:
        raise HandshakeError(step, f"the device ID is {len(device_public_key)} bytes, not {KEY_SIZE}")
    if len(signature) != SIGNATURE_SIZE:
        raise HandshakeError(step, f"the signature is {len(signature)} bytes, not {SIGNATURE_SIZE}")
    try:
        crypto_sign_open(signature + linking_pin_message(pin, context), device_public_key)
    except CryptoError as exc:
        raise HandshakeError(step, "the PIN signature does not verify with the device ID") from exc


# --- a little protobuf -------------------------------------------------------------------
# Just what the handshake messages need: varint and bytes fields, parsed as Go's protobuf
# does (any order, the last occurrence wins, unknown fields and fields of an unexpected wire
# type ignored). Groups (wire types 3 and 4), which proto3 never writes, are refused.

_WIRE_VARINT, _WIRE_FIXED64, _WIRE_BYTES, _WIRE_FIXED32 = 0, 1, 2, 5


class _Truncated(ValueError):
    """Bytes that end inside a varint."""


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise _Truncated("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value > _UINT64_MASK:
                raise ValueError("varint over 64 bits")
            return value, pos
    raise ValueError("varint over 10 bytes")


def _pb_varint_field(number: int, value: int) -> bytes:
    return _uvarint(number << 3 | _WIRE_VARINT) + _uvarint(value)


def _pb_bytes_field(number: int, value: bytes, keep_empty: bool = False) -> bytes:
    # proto3 omits an empty bytes field; libp2p's proto2 PublicKey writes it anyway.
    if not value and not keep_empty:
        return b""
    return _uvarint(number << 3 | _WIRE_BYTES) + _uvarint(len(value)) + value


def _pb_parse(data: bytes) -> dict[tuple[int, int], int | bytes]:
    """Fields by (number, wire type); ValueError for bytes that are not a protobuf message."""
    fields: dict[tuple[int, int], int | bytes] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _read_uvarint(data, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field number 0")
        value: int | bytes
        if wire == _WIRE_VARINT:
            value, pos = _read_uvarint(data, pos)
        elif wire == _WIRE_BYTES:
            length, pos = _read_uvarint(data, pos)
            if len(data) - pos < length:
                raise ValueError("a field runs past the end")
            value, pos = bytes(data[pos : pos + length]), pos + length
        elif wire in (_WIRE_FIXED64, _WIRE_FIXED32):
            size = 8 if wire == _WIRE_FIXED64 else 4
            if len(data) - pos < size:
                raise ValueError("a field runs past the end")
            value, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        else:
            raise ValueError(f"wire type {wire}")
        fields[(number, wire)] = value
    return fields


def _pb_parse_for(data: bytes, step: Step, message: str) -> dict[tuple[int, int], int | bytes]:
    try:
        return _pb_parse(data)
    except ValueError as exc:
        raise HandshakeError(step, f"not a {message}: {exc}") from exc


def _pb_bytes(fields: dict[tuple[int, int], int | bytes], number: int) -> bytes:
    value = fields.get((number, _WIRE_BYTES), b"")
    return value if isinstance(value, bytes) else b""
