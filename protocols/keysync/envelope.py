"""Signed and encrypted envelopes for Sync messages (PyNaCl).

The draft carries Sync messages inside pEp messages (A.1.6.8 step 4), which are signed
by the sending device and, depending on the message's security context (A.1.6.3),
encrypted. The envelope plays that role here:

    magic "FSE1" | flags | sender signing key (32) | sender encryption key (32)
    | recipient count (1) | per recipient: key id (8) + sealed content key (80)
    | nonce (24) | body | signature (64)

- Every envelope is signed with the device's Ed25519 key over all bytes before the
  signature, and carries the sender's public keys, as pEp attaches the sender's key to
  every message. A receiver decides separately whether it trusts that key.
- An encrypted envelope seals a fresh XSalsa20-Poly1305 content key to each recipient's
  X25519 key (crypto_box_seal), so one broadcast serves every device of the channel.
- Any failure raises `EnvelopeError` (bad magic, truncation, no key for us) or its
  subclass `VerificationError` (bad signature, MAC failure), both RemoteErrors
  (runtime.errors): the driver drops the message and nothing changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from nacl.bindings import crypto_sign_BYTES
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import SecretBox
from nacl.signing import SigningKey, VerifyKey
from nacl.utils import random as nacl_random

from runtime.errors import EnvelopeError, VerificationError
from runtime.memo import pure

__all__ = ["DeviceKeys", "EnvelopeError", "Opened", "open_envelope", "seal"]

MAGIC = b"FSE1"
_ENCRYPTED = 0x01
_KEY_ID = 8
_SEALED_KEY = SecretBox.KEY_SIZE + 48  # crypto_box_seal overhead


def key_id(public: bytes) -> bytes:
    return hashlib.sha256(public).digest()[:_KEY_ID]


@dataclass(frozen=True)
class DeviceKeys:
    """A device's key pairs: Ed25519 to sign, X25519 to receive encrypted envelopes."""

    signing: SigningKey
    encryption: PrivateKey

    def __deepcopy__(self, memo: dict[int, object]) -> DeviceKeys:
        return self  # immutable: copies of a world (the explorer's) share their keys

    @classmethod
    def generate(cls, seed: bytes | None = None) -> DeviceKeys:
        """Fresh keys; from a 32-byte seed when given (reproducible simulations)."""
        if seed is None:
            return cls(SigningKey.generate(), PrivateKey.generate())
        sign_seed = hashlib.sha256(b"sign" + seed).digest()
        box_seed = hashlib.sha256(b"box" + seed).digest()
        return cls(SigningKey(sign_seed), PrivateKey(box_seed))

    @property
    def verify_key(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def public(self) -> bytes:
        return bytes(self.encryption.public_key)

    @property
    def fingerprint(self) -> str:
        """40 upper-case hex digits over both public keys, like an OpenPGP fingerprint."""
        return hashlib.sha256(self.verify_key + self.public).hexdigest()[:40].upper()


@dataclass(frozen=True, slots=True)
class Opened:
    sender_verify_key: bytes
    sender_public: bytes
    encrypted: bool
    payload: bytes

    def __deepcopy__(self, memo: dict[int, object]) -> Opened:
        return self  # immutable: copies of a world (the explorer's) share it

    @property
    def sender_fingerprint(self) -> str:
        return hashlib.sha256(self.sender_verify_key + self.sender_public).hexdigest()[:40].upper()


def seal(payload: bytes, sender: DeviceKeys, recipients: Iterable[bytes] | None = None) -> bytes:
    """Sign `payload`; encrypt it to each X25519 public key in `recipients` when given."""
    head = bytearray(MAGIC)
    keys = sorted(set(recipients)) if recipients is not None else None
    head.append(_ENCRYPTED if keys is not None else 0)
    head += sender.verify_key + sender.public
    if keys is None:
        head.append(0)
        body = bytes(24) + payload
    else:
        if not 0 < len(keys) < 256:
            raise ValueError("an encrypted envelope needs 1 to 255 recipients")
        content_key = nacl_random(SecretBox.KEY_SIZE)
        head.append(len(keys))
        for k in keys:
            head += key_id(k) + SealedBox(PublicKey(k)).encrypt(content_key)
        encrypted = SecretBox(content_key).encrypt(payload)
        body = bytes(encrypted)  # nonce (24) + ciphertext
    signed = bytes(head) + body
    return signed + sender.signing.sign(signed).signature


def open_envelope(data: bytes, receiver: DeviceKeys | Iterable[DeviceKeys] | None) -> Opened:
    """Verify the signature and decrypt with whichever of `receiver`'s keys the envelope
    was sealed to; raises EnvelopeError saying what failed."""
    keys = () if receiver is None else (receiver,) if isinstance(receiver, DeviceKeys) else tuple(receiver)
    opened = _opened(bytes(data) if type(data) is not bytes else data, keys)
    if isinstance(opened, Opened):
        return opened
    error, message = opened
    raise error(message)


@pure(8192)
def _opened(data: bytes, keys: tuple[DeviceKeys, ...]) -> Opened | tuple[type[EnvelopeError], str]:
    """`open_envelope`, a function of the bytes and the keys alone (runtime.memo): the
    same envelope reaches the same keys in many explored worlds. A failure is returned,
    as its class and message, for the caller to raise."""
    try:
        return _open(data, keys)
    except EnvelopeError as e:
        return type(e), str(e)


def _open(data: bytes, keys: tuple[DeviceKeys, ...]) -> Opened:
    fixed = len(MAGIC) + 1 + 32 + 32 + 1
    if len(data) < fixed + 24 + crypto_sign_BYTES:
        raise EnvelopeError(f"envelope truncated: {len(data)} bytes")
    if data[:4] != MAGIC:
        raise EnvelopeError("not an fsmc envelope (bad magic)")
    signed, signature = data[:-crypto_sign_BYTES], data[-crypto_sign_BYTES:]
    flags = data[4]
    verify, public = data[5:37], data[37:69]
    try:
        VerifyKey(verify).verify(signed, signature)
    except (CryptoError, ValueError) as e:
        raise VerificationError("bad signature") from e
    count = data[69]
    offset = fixed
    entries = []
    for _ in range(count):
        entries.append((signed[offset:offset + _KEY_ID], signed[offset + _KEY_ID:offset + _KEY_ID + _SEALED_KEY]))
        offset += _KEY_ID + _SEALED_KEY
    if offset + 24 > len(signed):
        raise EnvelopeError("envelope truncated in its recipient list")
    body = signed[offset:]
    if not flags & _ENCRYPTED:
        return Opened(verify, public, False, body[24:])
    if not keys:
        raise EnvelopeError("encrypted envelope and no key to open it")
    mine = {key_id(k.public): k for k in keys}
    for kid, sealed in entries:
        k = mine.get(kid)
        if k is None:
            continue
        try:
            content_key = SealedBox(k.encryption).decrypt(sealed)
            return Opened(verify, public, True, SecretBox(content_key).decrypt(body))
        except CryptoError as e:
            raise VerificationError("cannot decrypt: authentication failed") from e
    raise EnvelopeError("not encrypted to this device")
