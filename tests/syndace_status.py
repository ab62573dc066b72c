"""Syndace's `doubleratchet` package configured as Status's construction, for the
interoperability tests (tests/test_status_ratchet.py) and the bench (bench/bench_ratchets.py).

Root KDF = HKDF-SHA-256 keyed (salted) by the root key with Status's info
(recommended.kdf_hkdf; Syndace's KDFChain takes 64 bytes, the first 64 of the 96
EthereumCrypto reads), chain KDF = one HMAC-SHA-256 per byte of the constant 0x0f 0x10
(recommended.kdf_separate_hmacs: chain key = HMAC(ck, 0x0f), message key = HMAC(ck,
0x10)), AEAD = Status's AES-256-CTR + HMAC layout (written here with the `cryptography`
package, independently of protocols/status/ratchet.py), associated data = Status's header
encoding. Its shipped DH ratchets are Curve25519 and Curve448 only; its
DiffieHellmanRatchet is abstract, so a secp256k1 subclass (with coincurve) runs Syndace's
ratchet over Status's own curve as well.
"""

from __future__ import annotations

import secrets
import struct
from typing import Any

from coincurve import PublicKey
from coincurve.utils import get_valid_secret
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from doubleratchet import AuthenticationFailedException, EncryptedMessage, Header
from doubleratchet import DoubleRatchet as SyndaceDoubleRatchet
from doubleratchet import aead as syndace_aead
from doubleratchet import diffie_hellman_ratchet as syndace_dh
from doubleratchet.recommended import HashFunction, kdf_hkdf, kdf_separate_hmacs
from doubleratchet.recommended.diffie_hellman_ratchet_curve25519 import (
    DiffieHellmanRatchet as SyndaceCurve25519Ratchet,
)

from protocols.status import ratchet as dr

STATUS_CHAIN_CONSTANT = bytes([dr.CHAIN_KEY_INPUT, dr.MESSAGE_KEY_INPUT])


class StatusRootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"rsZUpEuXUqqwXBvSy3EcievAh4cMj6QL"


class StatusChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


def _status_keys(key: bytes) -> tuple[bytes, bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=80, salt=bytes(32),
               info=b"pcwSByyx2CRdryCffXJwy7xgVZWtW5Sh").derive(key)
    return okm[:32], okm[32:64], okm[64:]


def _mac(key: bytes, data: bytes) -> bytes:
    h = crypto_hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


class StatusAEAD(syndace_aead.AEAD):
    """EthereumCrypto's Encrypt/Decrypt: iv || AES-256-CTR || HMAC-SHA-256(ad || iv || ct)."""

    @staticmethod
    async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        enc, auth, iv = _status_keys(key)
        encryptor = Cipher(algorithms.AES(enc), modes.CTR(iv)).encryptor()
        body = iv + encryptor.update(plaintext) + encryptor.finalize()
        return body + _mac(auth, associated_data + body)

    @staticmethod
    async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        enc, auth, _ = _status_keys(key)
        body, tag = ciphertext[:-32], ciphertext[-32:]
        if len(ciphertext) < 48 or not secrets.compare_digest(_mac(auth, associated_data + body), tag):
            raise AuthenticationFailedException("invalid signature")
        decryptor = Cipher(algorithms.AES(enc), modes.CTR(body[:16])).decryptor()
        return decryptor.update(body[16:]) + decryptor.finalize()


class StatusDoubleRatchet(SyndaceDoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
        # MessageHeader.Encode after the caller's associated data.
        return (associated_data + struct.pack("<II", header.sending_chain_length, header.previous_sending_chain_length)
                + header.ratchet_pub)


class SyndaceSecp256k1Ratchet(syndace_dh.DiffieHellmanRatchet):
    """Syndace's ratchet over secp256k1 with EthereumCrypto's DH (our subclass)."""

    # coincurve's PrivateKey() also derives two public keys (the point and BIP-340's x-only
    # one); a scalar and one base-point multiplication are all a ratchet key needs, as in
    # protocols/status/crypto.py, so that the bench compares ratchets, not key handling.
    @staticmethod
    def _generate_priv() -> bytes:
        return get_valid_secret()

    @staticmethod
    def _derive_pub(priv: bytes) -> bytes:
        return PublicKey.from_secret(priv).format(compressed=True)

    @staticmethod
    def _perform_diffie_hellman(own_priv: bytes, other_pub: bytes) -> bytes:
        return PublicKey(other_pub).multiply(own_priv).format(compressed=False)[1:33]


SYNDACE_CURVES: dict[str, tuple[dr.Curve, type[syndace_dh.DiffieHellmanRatchet]]] = {
    "x25519": (dr.X25519, SyndaceCurve25519Ratchet),
    "secp256k1": (dr.SECP256K1, SyndaceSecp256k1Ratchet),
}


def syndace_config(ratchet_class: type[syndace_dh.DiffieHellmanRatchet]) -> dict[str, Any]:
    return {"diffie_hellman_ratchet_class": ratchet_class, "root_chain_kdf": StatusRootKDF,
            "message_chain_kdf": StatusChainKDF, "message_chain_constant": STATUS_CHAIN_CONSTANT,
            "dos_protection_threshold": dr.STATUS_GO_LIMITS.max_skip,
            "max_num_skipped_message_keys": dr.STATUS_GO_LIMITS.max_message_keys_per_session,
            "aead": StatusAEAD}


def to_syndace(message: dr.Message) -> EncryptedMessage:
    return EncryptedMessage(header=Header(ratchet_pub=message.dh, previous_sending_chain_length=message.pn,
                                          sending_chain_length=message.n), ciphertext=message.payload)


def from_syndace(message: EncryptedMessage) -> dr.Message:
    h = message.header
    return dr.Message(dh=h.ratchet_pub, n=h.sending_chain_length, pn=h.previous_sending_chain_length,
                      payload=message.ciphertext)
