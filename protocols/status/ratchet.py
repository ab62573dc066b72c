"""Status's Double Ratchet, as status-go runs status-im/doubleratchet with its EthereumCrypto.

Sans-IO, with an immutable state: `ratchet_encrypt` and `ratchet_decrypt` map a frozen
`SessionState` (and a message) to a new state and a result, and `Session` is a thin mutable
holder of the current state for callers who want one. A decryption that fails raises
`RatchetError` and leaves the state as it was. Randomness is drawn only for a new ratchet
key (the initiator's first, and each DH step's), from the `random(n) -> bytes` given.

Sources. The Status PFS specification (section 2.1 primitives, 2.4.2 Double Ratchet, which
defers to Signal's Double Ratchet specification), status-im/doubleratchet v3.0.0 at commit
1e33002a, the version status-go vendors (session.go New, NewWithRemoteKey, RatchetEncrypt,
RatchetDecrypt, DeleteMk; state.go DefaultState, dhRatchet, skipMessageKeys, applyChanges;
chains.go; message.go MessageHeader.Encode; keys_storage.go; options.go), and status-go at
commit c72f4913: eth-node/crypto/ethereum_crypto.go (EthereumCrypto: GenerateDH, DH, KdfRK,
KdfCK, Encrypt, Decrypt, deriveEncKeys, computeSignature), protocol/encryption/encryptor.go
(defaultEncryptorConfig, createNewSession, encryptUsingDR, decryptUsingDR, DecryptPayload,
ConfirmMessageProcessed) and protocol/encryption/persistence.go (the SQLite keys storage:
TruncateMks, DeleteOldMks, DeleteMk). Where the specification and status-go differ we follow
status-go, and a comment marked "SPEC:" says what the specification says instead; where we
differ from status-go, a comment marked "STATUS-GO:" says how and why.

Keys and DH. The DH function is pluggable (`Curve`): `SECP256K1` is EthereumCrypto's (33-byte
compressed points, the unhashed 32-byte x-coordinate, protocols/status/crypto.py perform_dh),
what Status runs; `X25519` is doubleratchet's DefaultCrypto (clamped 32-byte scalars, raw
X25519), for the interoperability tests against other Double Ratchets.

    KDF_RK(rk, dh)  HKDF-SHA-256(ikm = dh, salt = rk, info = ROOT_KDF_INFO), 96 bytes:
                    new root key [0:32], chain key [32:64], header key [64:96] (unused)
    KDF_CK(ck)      chain key = HMAC-SHA-256(ck, 0x0f), message key = HMAC-SHA-256(ck, 0x10)
    ENCRYPT(mk, pt, ad)
                    enc, auth, iv = HKDF-SHA-256(ikm = mk, salt = 32 zero bytes,
                                                 info = MESSAGE_KEYS_INFO), 80 bytes: 32/32/16
                    c = iv || AES-256-CTR(enc, iv)(pt);  payload = c || HMAC-SHA-256(auth, ad || c)
    header          (dh, n, pn) -> LE32(n) || LE32(pn) || dh, the associated data after the
                    caller's (status-go passes none)

Initialisation (doubleratchet DefaultState): the root key and BOTH chain keys start as the
X3DH shared key. The initiator (NewWithRemoteKey) takes the responder's signed prekey as the
remote ratchet key, draws its ratchet key and steps the root chain once for its sending
chain; its receiving chain stays on the shared key, for what the responder sends before it
hears from the initiator. The responder (New) takes its signed prekey as its ratchet key and
has no remote key yet: it can send at once, on the shared-key chain, under the prekey.

Decryption (RatchetDecrypt). A message key already stored under (dh, n) is tried first.
Otherwise: on a new remote key, skip the current receiving chain up to the header's pn and
do a DH step (a new receiving chain from the root, a fresh ratchet key, a new sending chain);
then skip up to n and derive the message key. Each skip is refused if n is behind the chain
("bad until") or more than max_skip ahead of it. Only if the MAC verifies is anything kept.

Stored message keys (applyChanges, the SQLite keys storage). Every receiving-chain key
derived gets a sequence number (keys_count). status-go keeps each skipped key AND the key of
each message it decrypted, until the application confirms the message
(ConfirmMessageProcessed deletes it); after each decryption it keeps only the
max_message_keys_per_session newest keys and drops those whose sequence number is
keys_count - max_keep or less. `decrypt(confirm=True)`, the default, is status-go's
HandleMessage directly followed by ConfirmMessageProcessed, so a replay is refused;
`confirm=False` leaves the key stored as status-go does until `confirm_processed`.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from hashlib import sha256
from typing import Any, ClassVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base
from nacl.exceptions import CryptoError

from protocols.status import crypto as sc
from protocols.status.crypto import Random
from runtime.errors import VerificationError

__all__ = [
    "AES_BLOCK_SIZE",
    "CHAIN_KEY_INPUT",
    "DOUBLERATCHET_DEFAULT_LIMITS",
    "MAC_SIZE",
    "MESSAGE_KEYS_INFO",
    "MESSAGE_KEYS_SIZE",
    "MESSAGE_KEY_INPUT",
    "ROOT_KDF_INFO",
    "ROOT_KDF_SIZE",
    "SECP256K1",
    "STATUS_GO_LIMITS",
    "X25519",
    "Curve",
    "Limits",
    "Message",
    "RatchetError",
    "Session",
    "SessionState",
    "SkippedKey",
    "Stage",
    "accept",
    "aead_decrypt",
    "aead_encrypt",
    "confirm_message",
    "encode_header",
    "hkdf_sha256",
    "hmac_sha256",
    "initiate",
    "kdf_ck",
    "kdf_rk",
    "message_keys",
    "ratchet_decrypt",
    "ratchet_encrypt",
]

ROOT_KDF_INFO = b"rsZUpEuXUqqwXBvSy3EcievAh4cMj6QL"
"""HKDF info of KDF_RK (ethereum_crypto.go KdfRK; the same in doubleratchet default_crypto.go)."""

ROOT_KDF_SIZE = 96
"""KdfRK reads 96 bytes: root key, chain key, header key (header encryption is never used)."""

CHAIN_KEY_INPUT = 15
MESSAGE_KEY_INPUT = 16
"""KdfCK's one-byte HMAC inputs (`ckInput`, `mkInput`, ethereum_crypto.go KdfCK)."""

MESSAGE_KEYS_INFO = b"pcwSByyx2CRdryCffXJwy7xgVZWtW5Sh"
"""HKDF info of deriveEncKeys (ethereum_crypto.go), whose salt is 32 zero bytes."""

MESSAGE_KEYS_SIZE = 80
"""deriveEncKeys reads 80 bytes: AES-256 key, HMAC key, 16-byte IV."""

AES_BLOCK_SIZE = 16
MAC_SIZE = 32

_UINT32 = 1 << 32
_HEADER = struct.Struct("<II")


# --- errors ------------------------------------------------------------------------------


class Stage(StrEnum):
    """What failed, in status-go's words (the prefixes of RatchetDecrypt's errors)."""

    HEADER = "bad header"
    INITIAL = "can't generate dh secret"
    SKIPPED = "can't decrypt skipped message"
    SKIP_PREVIOUS = "can't skip previous chain message keys"
    RATCHET_STEP = "can't perform ratchet step"
    SKIP_CURRENT = "can't skip current chain message keys"
    DECRYPT = "can't decrypt"


class RatchetError(VerificationError, ValueError):
    """A Double Ratchet message that cannot be decrypted: a MAC that does not verify, a
    message key deleted or never kept (a replay), too many skipped messages, a ratchet key
    that is not a point. `str()` is status-go's error text ("can't skip current chain
    message keys: too many messages"). A remote fault (a `runtime.errors.VerificationError`,
    so drivers drop the message and trace it); also a `ValueError`. The session is unchanged."""

    code: ClassVar[str] = "status-ratchet"

    def __init__(self, stage: Stage, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


# --- Diffie-Hellman ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Curve:
    """A Diffie-Hellman function for the ratchet: key_pair(random) -> (private, public),
    public_key(private) -> public, dh(private, public) -> shared (ValueError if it cannot)."""

    name: str
    key_pair: Callable[[Random], tuple[bytes, bytes]]
    public_key: Callable[[bytes], bytes]
    dh: Callable[[bytes, bytes], bytes]


def _secp256k1_pair(random: Random) -> tuple[bytes, bytes]:
    pair = sc.new_key_pair(random)
    return pair.private, pair.public


SECP256K1 = Curve(name="secp256k1", key_pair=_secp256k1_pair, public_key=sc.public_key, dh=sc.perform_dh)
"""EthereumCrypto's DH (ethereum_crypto.go GenerateDH, DH): what status-go runs."""
# SPEC: section 2.1 lists "Elliptic curve Diffie-Hellman key exchange (Curve25519)" for the
# Double Ratchet; status-go configures doubleratchet with EthereumCrypto (encryptor.go
# getDRSession, createNewSession: dr.WithCrypto(crypto.EthereumCrypto{})), whose ratchet
# keys are secp256k1, compressed, and whose DH is ECIES's raw x-coordinate.


def _x25519_public(private: bytes) -> bytes:
    if len(private) != 32:
        raise ValueError(f"an X25519 private key is 32 bytes, not {len(private)}")
    return bytes(crypto_scalarmult_base(private))


def _x25519_pair(random: Random) -> tuple[bytes, bytes]:
    # DefaultCrypto.GenerateDH clamps the scalar itself (X25519 would clamp it anyway).
    private = bytearray(random(32))
    private[0] &= 248
    private[31] &= 127
    private[31] |= 64
    return bytes(private), _x25519_public(bytes(private))


def _x25519_dh(private: bytes, public: bytes) -> bytes:
    if len(private) != 32 or len(public) != 32:
        raise ValueError("X25519 keys are 32 bytes")
    try:
        return bytes(crypto_scalarmult(private, public))
    except CryptoError as exc:
        # STATUS-GO: Go's curve25519.ScalarMult returns the all-zero output of a low-order
        # point; libsodium refuses it, so do we.
        raise ValueError("X25519 with a low-order point") from exc


X25519 = Curve(name="x25519", key_pair=_x25519_pair, public_key=_x25519_public, dh=_x25519_dh)
"""doubleratchet's DefaultCrypto DH (default_crypto.go GenerateDH, DH), for interop tests."""


# --- limits ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How many message keys a session derives ahead and keeps (doubleratchet options.go
    WithMaxSkip, WithMaxKeep, WithMaxMessageKeysPerSession)."""

    max_skip: int
    """The most message keys one skip may derive: n may be at most recv_n + max_skip."""
    max_keep: int
    """Keys whose sequence number is keys_count - max_keep or less are dropped."""
    max_message_keys_per_session: int
    """At most this many keys are stored, the newest by sequence number."""

    def __post_init__(self) -> None:
        for name in ("max_skip", "max_keep", "max_message_keys_per_session"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int")  # options.go


STATUS_GO_LIMITS = Limits(max_skip=1000, max_keep=3000, max_message_keys_per_session=2000)
"""status-go's (protocol/encryption/encryptor.go defaultEncryptorConfig), passed to every
session it makes."""

DOUBLERATCHET_DEFAULT_LIMITS = Limits(max_skip=1000, max_keep=2000, max_message_keys_per_session=2000)
"""doubleratchet's own defaults (state.go DefaultState), which status-go overrides."""
# SPEC: Signal's Double Ratchet leaves MAX_SKIP to the application; the doubleratchet README
# still says skipped keys are "deleted after 100 ratchet steps", which its code no longer does.


# --- KDFs and AEAD -----------------------------------------------------------------------


_BLOCK = 64  # SHA-256's block size
_IPAD = int.from_bytes(b"\x36" * _BLOCK, "big")
_OPAD = int.from_bytes(b"\x5c" * _BLOCK, "big")


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104's padded keys K ^ ipad, K ^ opad for HMAC-SHA-256 under `key`."""
    # Why not the hmac module: every key here (chain, message, HKDF's PRK, MAC key) is used
    # once or a few times, and hmac.digest sets up an OpenSSL MAC context per call (1.5 µs
    # here); two SHA-256 calls over precomputed pads are 0.6 µs, and the pads are shared by
    # the two outputs of KDF_CK and the three blocks of HKDF's expand. Checked against the
    # hmac module for every key length in tests/test_status_ratchet.py.
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    padded = int.from_bytes(key.ljust(_BLOCK, b"\0"), "big")
    return (padded ^ _IPAD).to_bytes(_BLOCK, "big"), (padded ^ _OPAD).to_bytes(_BLOCK, "big")


def _hmac(pads: tuple[bytes, bytes], data: bytes) -> bytes:
    inner, outer = pads
    return sha256(outer + sha256(inner + data).digest()).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-256 (RFC 2104), as Go's hmac.New(sha256.New, key)."""
    return _hmac(_hmac_pads(key), data)


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    pads = _hmac_pads(prk)
    block, out, counter = b"", b"", 1
    while len(out) < length:
        block = _hmac(pads, block + info + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869), as golang.org/x/crypto/hkdf.New(sha256.New, ikm, salt, info)."""
    if not 0 <= length <= 255 * 32:
        raise ValueError("HKDF-SHA-256 gives at most 8160 bytes")
    # An empty salt is HashLen zeros (RFC 5869 2.2), which pad as the empty key does.
    return _hkdf_expand(hmac_sha256(salt, ikm), info, length)


def kdf_rk(root_key: bytes, dh_out: bytes) -> tuple[bytes, bytes, bytes]:
    """KDF_RK (EthereumCrypto.KdfRK): (root key, chain key, header key)."""
    # SPEC: section 2.1 says only "key derivation is done using HKDF"; the info string and
    # the 96-byte split are EthereumCrypto's.
    out = hkdf_sha256(dh_out, root_key, ROOT_KDF_INFO, ROOT_KDF_SIZE)
    return out[:32], out[32:64], out[64:96]


def _kdf_rk_chain(root_key: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """kdf_rk's root and chain keys without the header key, which status-go never uses:
    HKDF's output is a run of independent blocks, so its first 64 bytes are the same, one
    HMAC sooner (a DH step does two root steps)."""
    out = hkdf_sha256(dh_out, root_key, ROOT_KDF_INFO, 64)
    return out[:32], out[32:64]


_CHAIN_KEY_BYTE = bytes((CHAIN_KEY_INPUT,))
_MESSAGE_KEY_BYTE = bytes((MESSAGE_KEY_INPUT,))


def kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK (EthereumCrypto.KdfCK): (next chain key, message key)."""
    pads = _hmac_pads(chain_key)
    return _hmac(pads, _CHAIN_KEY_BYTE), _hmac(pads, _MESSAGE_KEY_BYTE)


_ZERO_SALT = _hmac_pads(bytes(32))


def message_keys(message_key: bytes) -> tuple[bytes, bytes, bytes]:
    """deriveEncKeys: (AES-256 key, HMAC-SHA-256 key, 16-byte IV) from a message key."""
    out = _hkdf_expand(_hmac(_ZERO_SALT, message_key), MESSAGE_KEYS_INFO, MESSAGE_KEYS_SIZE)
    return out[:32], out[32:64], out[64:80]


def aead_encrypt(message_key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """EthereumCrypto.Encrypt: iv || AES-256-CTR(pt) || HMAC-SHA-256(auth, ad || iv || ct)."""
    # SPEC: section 2.1 "AES-256-CTR with HMAC-SHA-256 and IV derived alongside an encryption
    # key", as status-go does; Signal's recommendation is AES-256-CBC. The IV is derived AND
    # sent, in front of the ciphertext, under the MAC. CTR counts over the whole 16-byte
    # block, big-endian, as Go's cipher.NewCTR does.
    enc_key, auth_key, iv = message_keys(message_key)
    body = iv + _ctr(enc_key, iv, plaintext)
    return body + hmac_sha256(auth_key, associated_data + body)


def aead_decrypt(message_key: bytes, payload: bytes, associated_data: bytes,
                 stage: Stage = Stage.DECRYPT) -> bytes:
    """EthereumCrypto.Decrypt, or RatchetError(stage, "invalid signature")."""
    if len(payload) < MAC_SIZE:
        # STATUS-GO: Decrypt slices payload[:len-32] unchecked and panics on a shorter one.
        raise RatchetError(stage, "ciphertext shorter than its MAC")
    body, tag = payload[:-MAC_SIZE], payload[-MAC_SIZE:]
    enc_key, auth_key, _ = message_keys(message_key)
    # STATUS-GO: computeSignature's tag is compared with bytes.Equal; we compare in
    # constant time, which accepts and refuses exactly the same payloads.
    if not hmac.compare_digest(hmac_sha256(auth_key, associated_data + body), tag):
        raise RatchetError(stage, "invalid signature")
    if len(body) < AES_BLOCK_SIZE:
        # STATUS-GO: would panic on body[:16]; only a holder of the key can get here.
        raise RatchetError(stage, "ciphertext shorter than its IV")
    # Decrypt uses the IV the payload carries (MAC-checked), not the derived one.
    iv = body[:AES_BLOCK_SIZE]
    return _ctr(enc_key, iv, body[AES_BLOCK_SIZE:])


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-256-CTR over the whole 16-byte counter block (OpenSSL's, through `cryptography`:
    half the cost of setting up pycryptodome's per message)."""
    cipher = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def encode_header(dh: bytes, n: int, pn: int) -> bytes:
    """MessageHeader.Encode: LE32(n) || LE32(pn) || dh (41 bytes with a secp256k1 key)."""
    # SPEC: Signal's Double Ratchet binds AD = Encode(IK_A) || Encode(IK_B) from X3DH into
    # every message; status-go calls RatchetEncrypt/RatchetDecrypt with nil associated data
    # (encryptUsingDR, decryptUsingDR), so only this header is authenticated, and the
    # identity keys are not.
    return _HEADER.pack(n, pn) + dh


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A Double Ratchet message as status-go puts it in EncryptedMessageProtocol: DRHeader's
    key (the sender's ratchet public key), n, pn, and the payload field (the AEAD output:
    IV, ciphertext, MAC). DRHeader.id, the bundle's signed prekey, is the transport's."""

    # SPEC: section 2.4.2 calls the container DirectMessageProtocol, in
    # ProtocolMessage.direct_message (101); status-go's protocol_message.proto names them
    # EncryptedMessageProtocol and encrypted_message, adds HR_header = 102 (group hash
    # ratchet) and drops ProtocolMessage.bundle = 1. DRHeader is as the spec gives it.
    dh: bytes
    n: int
    pn: int
    payload: bytes

    def header(self) -> bytes:
        """The header as the associated data encodes it."""
        return encode_header(self.dh, self.n, self.pn)


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedKey:
    """A stored message key: the sender's ratchet key and message number it decrypts, the
    key, and its sequence number (the receiving key count when it was derived)."""

    dh: bytes
    n: int
    mk: bytes = field(repr=False)
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionState:
    """The whole state of one side, as status-go's sessions and keys tables hold it
    (persistence.go sqliteSessionStorage.Save, sqliteKeysStorage): a frozen value, to copy,
    compare and hash. `skipped` is in sequence order."""

    curve: Curve
    limits: Limits
    dh_private: bytes = field(repr=False)
    dh_public: bytes
    dh_remote: bytes
    """The remote ratchet key; b"" until the responder's first DH step (status-go's nil DHr)."""
    root_key: bytes = field(repr=False)
    send_key: bytes = field(repr=False)
    send_n: int
    recv_key: bytes = field(repr=False)
    recv_n: int
    pn: int
    keys_count: int
    skipped: tuple[SkippedKey, ...] = ()
    # STATUS-GO: State.Step is stored but never advanced, and HKs/NHKs/HKr/NHKr (header
    # encryption) are never used by status-go; neither is kept here.


# --- the ratchet -------------------------------------------------------------------------


_STATE_FIELDS = tuple(f.name for f in fields(SessionState))


def _evolve(state: SessionState, **changes: Any) -> SessionState:
    """`state` with `changes`: dataclasses.replace, without its introspection per call (a
    fifth of a message's decryption)."""
    return SessionState(**{n: changes[n] if n in changes else getattr(state, n) for n in _STATE_FIELDS})


def _check_shared_key(shared_key: bytes) -> None:
    # newState refuses only a nil key; HKDF and HMAC take any length, and X3DH gives 32.
    if not isinstance(shared_key, bytes) or not shared_key:
        raise ValueError("sharedKey mustn't be empty")


def initiate(shared_key: bytes, their_ratchet_public: bytes, random: Random, *,
             curve: Curve = SECP256K1, limits: Limits = STATUS_GO_LIMITS) -> SessionState:
    """The X3DH initiator's state (NewWithRemoteKey): remote key = the responder's signed
    prekey, a fresh ratchet key from `random`, the sending chain from one root step; the
    receiving chain on the shared key."""
    _check_shared_key(shared_key)
    private, public = curve.key_pair(random)
    try:
        secret = curve.dh(private, their_ratchet_public)
    except ValueError as exc:
        raise RatchetError(Stage.INITIAL, str(exc)) from exc
    root_key, send_key = _kdf_rk_chain(shared_key, secret)
    return SessionState(curve=curve, limits=limits, dh_private=private, dh_public=public,
                        dh_remote=their_ratchet_public, root_key=root_key, send_key=send_key, send_n=0,
                        recv_key=shared_key, recv_n=0, pn=0, keys_count=0)


def accept(shared_key: bytes, our_ratchet_private: bytes, *,
           curve: Curve = SECP256K1, limits: Limits = STATUS_GO_LIMITS) -> SessionState:
    """The X3DH responder's state (New with the signed prekey pair): ratchet key = the signed
    prekey, no remote key yet, root and both chains on the shared key."""
    # SPEC: in Signal's Double Ratchet the responder has no sending chain until its first DH
    # step; doubleratchet's DefaultState seeds both chains with the shared key "so that both
    # parties could send and receive messages from the very beginning".
    _check_shared_key(shared_key)
    return SessionState(curve=curve, limits=limits, dh_private=our_ratchet_private,
                        dh_public=curve.public_key(our_ratchet_private), dh_remote=b"", root_key=shared_key,
                        send_key=shared_key, send_n=0, recv_key=shared_key, recv_n=0, pn=0, keys_count=0)


def ratchet_encrypt(state: SessionState, plaintext: bytes,
                    associated_data: bytes = b"") -> tuple[SessionState, Message]:
    """RatchetEncrypt: the next message key of the sending chain encrypts the plaintext under
    the caller's associated data followed by the header."""
    if state.send_n >= _UINT32:
        # STATUS-GO: SendCh.N is a uint32: after message 2^32 - 1 it wraps to 0 and the
        # next messages reuse numbers the receiver has passed. We stop instead.
        raise OverflowError("the sending chain is exhausted (2^32 messages)")
    send_key, mk = kdf_ck(state.send_key)
    header = encode_header(state.dh_public, state.send_n, state.pn)
    message = Message(dh=state.dh_public, n=state.send_n, pn=state.pn,
                      payload=aead_encrypt(mk, plaintext, associated_data + header))
    return _evolve(state, send_key=send_key, send_n=state.send_n + 1), message


def _check_message(message: Message) -> None:
    if not isinstance(message, Message):
        raise TypeError("decrypt takes a Message")
    if not isinstance(message.dh, bytes) or not isinstance(message.payload, bytes):
        raise RatchetError(Stage.HEADER, "dh and payload are bytes")
    for name, value in (("n", message.n), ("pn", message.pn)):
        # DRHeader's n and pn are protobuf uint32s.
        if not isinstance(value, int) or not 0 <= value < _UINT32:
            raise RatchetError(Stage.HEADER, f"{name} is not a uint32")


def _skip(state: SessionState, until: int, stage: Stage) -> tuple[SessionState, tuple[SkippedKey, ...]]:
    # skipMessageKeys: derive the receiving chain's keys up to message `until`, under the
    # current remote key, each numbered with the running keys_count.
    if until < state.recv_n:
        raise RatchetError(stage, "bad until: probably an out-of-order message that was deleted")
    if state.recv_n + state.limits.max_skip < until:
        raise RatchetError(stage, "too many messages")
    if until == state.recv_n:
        return state, ()  # the message in order: nothing to skip
    recv_key, n, seq = state.recv_key, state.recv_n, state.keys_count
    keys: list[SkippedKey] = []
    while n < until:
        recv_key, mk = kdf_ck(recv_key)
        keys.append(SkippedKey(dh=state.dh_remote, n=n, mk=mk, seq=seq))
        n += 1
        seq += 1
    return _evolve(state, recv_key=recv_key, recv_n=n, keys_count=seq), tuple(keys)


def _dh_ratchet(state: SessionState, their_public: bytes, random: Random) -> SessionState:
    # dhRatchet: a receiving chain from DH(our key, theirs), a fresh ratchet key, a sending
    # chain from DH(new key, theirs); pn remembers the length of the old sending chain.
    curve = state.curve
    try:
        recv_secret = curve.dh(state.dh_private, their_public)
    except ValueError as exc:
        raise RatchetError(Stage.RATCHET_STEP, f"failed to generate dh receive ratchet secret: {exc}") from exc
    root_key, recv_key = _kdf_rk_chain(state.root_key, recv_secret)
    private, public = curve.key_pair(random)
    send_secret = curve.dh(private, their_public)  # the same public key worked just above
    root_key, send_key = _kdf_rk_chain(root_key, send_secret)
    return _evolve(state, pn=state.send_n, dh_remote=their_public, root_key=root_key,
                   recv_key=recv_key, recv_n=0, dh_private=private, dh_public=public,
                   send_key=send_key, send_n=0)


def _without(keys: tuple[SkippedKey, ...], dh: bytes, n: int) -> tuple[SkippedKey, ...]:
    return tuple(key for key in keys if not (key.n == n and key.dh == dh))


def ratchet_decrypt(state: SessionState, message: Message, random: Random, associated_data: bytes = b"", *,
                    confirm: bool = True) -> tuple[SessionState, bytes]:
    """RatchetDecrypt (and, with confirm, ConfirmMessageProcessed's DeleteMk): the new state
    and the plaintext, or RatchetError with nothing changed. `random` is drawn from only
    for a DH step."""
    _check_message(message)
    ad = associated_data + encode_header(message.dh, message.n, message.pn)

    # A stored key (skipped, or kept until confirmation)? keys_count does not move.
    for key in state.skipped:
        if key.n == message.n and key.dh == message.dh:
            plaintext = aead_decrypt(key.mk, message.payload, ad, Stage.SKIPPED)
            if confirm:
                state = _evolve(state, skipped=_without(state.skipped, message.dh, message.n))
            return state, plaintext

    # Everything below works on new values and is returned only on success (RatchetDecrypt
    # works on a copy of the state, `sc`, and applies it after Decrypt).
    work = state
    skipped_previous: tuple[SkippedKey, ...] = ()
    # bytes.Equal: status-go's nil DHr equals an empty key, as b"" does here.
    if message.dh != work.dh_remote:
        work, skipped_previous = _skip(work, message.pn, Stage.SKIP_PREVIOUS)
        work = _dh_ratchet(work, message.dh, random)
    work, skipped_current = _skip(work, message.n, Stage.SKIP_CURRENT)
    recv_key, mk = kdf_ck(work.recv_key)
    plaintext = aead_decrypt(mk, message.payload, ad, Stage.DECRYPT)

    # applyChanges: store the skipped keys and this message's own key ("waiting for
    # confirmation"), then TruncateMks, then DeleteOldMks.
    keys_count = work.keys_count + 1
    stored = work.skipped + skipped_previous + skipped_current
    if not confirm:
        stored += (SkippedKey(dh=work.dh_remote, n=message.n, mk=mk, seq=work.keys_count),)
    limits = work.limits
    # TruncateMks keeps the newest max_message_keys_per_session keys, this message's own
    # among them even when confirm deletes it just after: it takes a place.
    room = limits.max_message_keys_per_session - (1 if confirm else 0)
    if len(stored) > room:
        stored = stored[len(stored) - room:] if room > 0 else ()
    if keys_count >= limits.max_keep:
        floor = keys_count - limits.max_keep
        stored = tuple(key for key in stored if key.seq > floor)
    # SPEC: Signal's Double Ratchet never stores the key of the message it decrypts, and
    # deletes a skipped key once used. status-go keeps both until the application calls
    # ConfirmMessageProcessed, so a duplicate decrypts again until then; confirm=True does
    # that call at once (the key is never stored, but counted as status-go counts it), and
    # a replay is refused.
    return _evolve(work, recv_key=recv_key, recv_n=work.recv_n + 1, keys_count=keys_count,
                   skipped=stored), plaintext


def confirm_message(state: SessionState, dh: bytes, n: int) -> SessionState:
    """ConfirmMessageProcessed / DeleteMk: forget the stored key of message (dh, n), if any."""
    # STATUS-GO: the SQLite keys table is looked up by (public_key, msg_num) across all
    # sessions; keys live in their session here.
    return _evolve(state, skipped=_without(state.skipped, dh, n))


class Session:
    """One side of a Double Ratchet session: holds the current `SessionState` and the
    `random` its DH steps draw from. Every method either succeeds and moves to the new state
    or raises and leaves it as it was."""

    __slots__ = ("_random", "_state")

    def __init__(self, state: SessionState, random: Random) -> None:
        if not isinstance(state, SessionState):
            raise TypeError("Session takes a SessionState")
        self._state = state
        self._random = random

    @classmethod
    def initiate(cls, shared_key: bytes, their_ratchet_public: bytes, random: Random, *,
                 curve: Curve = SECP256K1, limits: Limits = STATUS_GO_LIMITS) -> Session:
        """The X3DH initiator's session: `their_ratchet_public` is the bundle's signed prekey."""
        return cls(initiate(shared_key, their_ratchet_public, random, curve=curve, limits=limits), random)

    @classmethod
    def accept(cls, shared_key: bytes, our_ratchet_private: bytes, random: Random, *,
               curve: Curve = SECP256K1, limits: Limits = STATUS_GO_LIMITS) -> Session:
        """The X3DH responder's session: `our_ratchet_private` is the signed prekey's key."""
        return cls(accept(shared_key, our_ratchet_private, curve=curve, limits=limits), random)

    @classmethod
    def restore(cls, state: SessionState, random: Random) -> Session:
        """A session continuing from a snapshot."""
        return cls(state, random)

    def snapshot(self) -> SessionState:
        """The current state, a frozen value."""
        return self._state

    @property
    def ratchet_public(self) -> bytes:
        """Our current ratchet public key (the next message's DRHeader.key)."""
        return self._state.dh_public

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> Message:
        """Encrypt the next message (status-go passes no associated data)."""
        self._state, message = ratchet_encrypt(self._state, plaintext, associated_data)
        return message

    def decrypt(self, message: Message, associated_data: bytes = b"", *, confirm: bool = True) -> bytes:
        """Decrypt a message, or raise RatchetError and change nothing. With confirm=False the
        message key stays stored, as in status-go until `confirm_processed`."""
        self._state, plaintext = ratchet_decrypt(self._state, message, self._random, associated_data,
                                                 confirm=confirm)
        return plaintext

    def confirm_processed(self, message: Message) -> None:
        """ConfirmMessageProcessed: forget the key kept for a message decrypted unconfirmed."""
        self._state = confirm_message(self._state, message.dh, message.n)
