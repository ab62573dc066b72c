"""BisonRelay's P2P key exchange (KX): identities, sealed blobs, the ratchet's first keys, RV points.

This is the cryptography and the message *contents* of the KX as companyzero/bisonrelay implements
it (read at commit 8b1a3b4b, December 2025; file names below are in that repository). The message
*encoding* is not here: BR writes JSON (documented beside each record) and we will carry the same
fields in our own ASN.1 UPER later. Everything is a pure function over bytes and frozen records: no
state, no I/O, no clock; randomness is a parameter (``random(n) -> n bytes``, default the OS's
CSPRNG) so that tests and simulations are reproducible.

The flow (doc/p2p_kx.md; client/kx.go), with BR's own party names::

    inviter                                                   acceptor
    create_invite: OOBPublicIdentityInvite{public, initialRV, inviter_resetRV}
                  ---------------- out of band, plain ---------------->
                                                   accept_invite: RMOHalfKX{public, halfKX,
                                                                  step3RV, acceptor_resetRV}
                  <------ seal(msg2) = c1 || nonce || box, at initialRV --
    answer_half_kx: RMOFullKX{fullKX}      (ratchet complete here, alice=False)
                  -------- seal(msg3) = c2 || nonce || box, at step3RV -->
                                                   finish_full_kx       (ratchet complete, alice=True)

Constructions:

* **Identity** (zkidentity/zkidentity.go): an Ed25519 signing key, an sntrup4591761 KEM key, the
  *identity* ``SHA-256(sntrup public key)`` (the user's 32-byte id), a *digest*
  ``SHA-256(sig_key || key || identity)`` and an Ed25519 *signature* of the digest.
* **Sealed blob** (rpc/oob.go ``EncryptRMO``/``DecryptOOB``, sw/sw.go): ``(c, k) =
  Encapsulate(peer's sntrup key)``; blob = ``c (1047) || nonce (24, random) || secretbox(m, nonce,
  k)`` where secretbox is NaCl's XSalsa20-Poly1305 (16-byte tag first). BR's plaintext ``m`` is
  ``zlib(JSON(RMOHeader) "\\n" JSON(payload) "\\n")``; here ``m`` is whatever bytes the caller's codec
  made.
* **Ratchet key exchange** (ratchet/ratchet.go): it is *not* a Diffie-Hellman. Each side's
  ``KeyExchange`` half is ``cipher = Encapsulate(peer's identity sntrup key) -> (c, k)`` and
  ``public = secretbox(X25519 public of a fresh ratchet key, random nonce, k)``. Completing decapsulates
  the peer's half to ``k'`` and derives ``shared = SHA-256(k_alice || k_bob)`` (the key alice
  encapsulated first); then ``HMAC-SHA256(shared, label)`` for the labels "root key", "header key",
  "next send header key", "next receive header key", "chain key", assigned to fields by side (see
  ``complete_key_exchange``). The only X25519 key that matters afterwards is the *non-alice* side's
  (the inviter's): it is the first ratchet key; alice's sealed X25519 public is checked and dropped.
* **RV points**: the KX's own RVs (initialRV, step3RV, both reset RVs) are 32 random bytes each,
  never derived (client/kx.go ``createInvite``, ``acceptInvite``). The ratchet's message RVs that
  follow are ``BLAKE-256(header key || LE32(count))`` (``ratchet_rendezvous``), and a prepaid
  invite sits at ``BLAKE-256(invite key)`` (``paid_invite_rendezvous``); BLAKE-256 (the SHA-3
  finalist, as decred/dcrd's crypto/blake256, not BLAKE2) is implemented below.

Where doc/p2p_kx.md and the code differ, the code is followed; each difference is written beside the
code it concerns, marked "DOC DIFFERS".

Failures caused by data a peer sent (lengths, decapsulation, a box that does not open, an ECDH point
out of range, a reset from the wrong identity) raise ``KXError`` with a machine-readable ``what``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from nacl.bindings import (
    crypto_scalarmult_base,
    crypto_secretbox_easy,
    crypto_secretbox_open_easy,
    crypto_sign,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import BadSignatureError, CryptoError

from protocols.bisonrelay import sntrup4591761
from runtime.errors import VerificationError

__all__ = [
    "BOX_OVERHEAD",
    "CMD_FULL_KX",
    "CMD_HALF_KX",
    "CMD_PUBLIC_IDENTITY_INVITE",
    "ED25519_PRIVATE_KEY_SIZE",
    "ED25519_PUBLIC_KEY_SIZE",
    "KEY_EXCHANGE_PUBLIC_SIZE",
    "KEY_SIZE",
    "MIN_SEALED_SIZE",
    "NONCE_SIZE",
    "RMO_HEADER_VERSION",
    "RV_SIZE",
    "SIGNATURE_SIZE",
    "AcceptedInvite",
    "CompletedKX",
    "FullIdentity",
    "HalfRatchet",
    "InviteFunds",
    "KXError",
    "KeyExchange",
    "OOBPublicIdentityInvite",
    "PendingInvite",
    "PublicIdentity",
    "RMOFullKX",
    "RMOHalfKX",
    "RMOHeader",
    "Random",
    "RatchetSeed",
    "accept_invite",
    "answer_half_kx",
    "autokx_yields",
    "blake256",
    "check_reset_invite",
    "complete_key_exchange",
    "create_invite",
    "fill_key_exchange",
    "finish_full_kx",
    "identity_digest",
    "identity_from_key",
    "new_identity",
    "new_rendezvous",
    "open",
    "open_parts",
    "paid_invite_rendezvous",
    "ratchet_rendezvous",
    "seal",
    "seal_parts",
    "secretbox_open",
    "secretbox_seal",
    "validate_ecdh_point",
]

Random = Callable[[int], bytes]
"""A source of randomness: ``random(n)`` returns ``n`` bytes."""

KEY_SIZE = 32  # every symmetric key, sntrup shared key, X25519 key, hash and RV here
RV_SIZE = 32  # ratchet.RVPoint = zkidentity.ShortID, [32]byte
NONCE_SIZE = 24  # XSalsa20 nonce, prepended by sw.Seal
BOX_OVERHEAD = 16  # Poly1305 tag (secretbox.Overhead)
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_PRIVATE_KEY_SIZE = 64  # Go's ed25519.PrivateKey: seed (32) || public key (32)
SIGNATURE_SIZE = 64
# KeyExchange.Public: sw.Seal of a 32-byte X25519 public key.
KEY_EXCHANGE_PUBLIC_SIZE = NONCE_SIZE + BOX_OVERHEAD + KEY_SIZE
# The smallest blob seal() can make: a ciphertext and the box of an empty message.
MIN_SEALED_SIZE = sntrup4591761.CIPHERTEXT_SIZE + NONCE_SIZE + BOX_OVERHEAD

# rpc/oob.go: the RMOHeader that precedes each payload inside a sealed blob, and its commands.
RMO_HEADER_VERSION = 1
CMD_PUBLIC_IDENTITY_INVITE = "oobpublicidentityinvite"
CMD_HALF_KX = "ohalfkx"
CMD_FULL_KX = "ofullkx"

_ZERO_KEY = bytes(KEY_SIZE)


class KXError(VerificationError, ValueError):
    """Data from a peer failed a check of the KX; ``what`` names which, for code to branch on.

    A remote fault: a ``runtime.errors.VerificationError`` (code ``"kx"``), so that a driver drops
    the message and traces the drop, changing nothing; still a ``ValueError`` for plain callers.

    ``what`` is one of: ``"length"`` (a field or blob of the wrong size), ``"decapsulation"`` (sntrup
    rejected the ciphertext), ``"secretbox"`` (the box did not open: wrong key or tampered),
    ``"ecdh-point"`` (a ratchet public key out of range), ``"self-kx"`` (a KX with ourselves),
    ``"reset-identity"`` (a reset invite from another identity than the one we know),
    ``"identity"`` (a public identity whose id or signature does not check).
    """

    code: ClassVar[str] = "kx"

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what


def _check_size(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise KXError("length", f"{name} must be {size} bytes, got {len(value)}")


# --- BLAKE-256 (for the RV points derived from keys) ---------------------------------------------

# BLAKE-256 (Aumasson et al., the SHA-3 finalist; decred/dcrd crypto/blake256): SHA-256's IV, the
# first digits of pi as constants, 14 rounds of the ChaCha-like G over 16 words, big-endian words.
_B256_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip
_B256_C = (
    0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0, 0x082EFA98, 0xEC4E6C89,
    0x452821E6, 0x38D01377, 0xBE5466CF, 0x34E90C6C, 0xC0AC29B7, 0xC97C50DD, 0x3F84D5B5, 0xB5470917,
)  # fmt: skip
_B256_SIGMA = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)
# (a, b, c, d) of the four column steps, then the four diagonal steps, of one round.
_B256_STEPS = ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
               (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14))  # fmt: skip
_M32 = 0xFFFFFFFF


def _blake256_compress(h: list[int], block: bytes, counter: int) -> None:
    m = struct.unpack(">16I", block)
    t0, t1 = counter & _M32, counter >> 32
    c = _B256_C
    # The salt is zero in every use BR makes, so s[i] ^ c[i] is just c[i].
    v = [*h, c[0], c[1], c[2], c[3], t0 ^ c[4], t0 ^ c[5], t1 ^ c[6], t1 ^ c[7]]
    for r in range(14):
        s = _B256_SIGMA[r % 10]
        for i, (a, b, cc, d) in enumerate(_B256_STEPS):
            x, y = s[2 * i], s[2 * i + 1]
            v[a] = (v[a] + v[b] + (m[x] ^ c[y])) & _M32
            z = v[d] ^ v[a]
            v[d] = ((z >> 16) | (z << 16)) & _M32
            v[cc] = (v[cc] + v[d]) & _M32
            z = v[b] ^ v[cc]
            v[b] = ((z >> 12) | (z << 20)) & _M32
            v[a] = (v[a] + v[b] + (m[y] ^ c[x])) & _M32
            z = v[d] ^ v[a]
            v[d] = ((z >> 8) | (z << 24)) & _M32
            v[cc] = (v[cc] + v[d]) & _M32
            z = v[b] ^ v[cc]
            v[b] = ((z >> 7) | (z << 25)) & _M32
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


def blake256(data: bytes) -> bytes:
    """BLAKE-256 of ``data`` (unsalted), as decred's ``blake256.Sum256`` and ``chainhash.HashFunc``."""
    h = list(_B256_IV)
    bits = 8 * len(data)
    full = len(data) // 64
    for i in range(full):
        _blake256_compress(h, data[64 * i : 64 * i + 64], 512 * (i + 1))
    rest = data[64 * full :]
    length = bits.to_bytes(8, "big")
    # Padding: a 1 bit, zeros, a 1 bit, the 64-bit length. The counter is the number of message
    # bits up to the end of this block, or 0 for a block holding padding only.
    if len(rest) <= 55:
        pad = b"\x81" if len(rest) == 55 else b"\x80" + bytes(54 - len(rest)) + b"\x01"
        _blake256_compress(h, rest + pad + length, bits if rest else 0)
    else:
        _blake256_compress(h, rest + b"\x80" + bytes(63 - len(rest)), bits)
        _blake256_compress(h, bytes(55) + b"\x01" + length, 0)
    return struct.pack(">8I", *h)


# --- RV points ------------------------------------------------------------------------------------


def new_rendezvous(random: Random = os.urandom) -> bytes:
    """A fresh KX RV point: 32 random bytes.

    This is how BR makes every RV of the KX itself: the initial RV and the inviter's reset RV
    (client/kx.go ``createInvite``, also rpc/oob.go ``CreateOOBPublicIdentityInvite``), the step-3
    RV and the acceptor's reset RV (``acceptInvite``, also rpc ``NewHalfKX``). None is derived from
    a key or an identity, so nobody can link them to each other or to the users.
    """
    rv = random(RV_SIZE)
    _check_size("random RV", rv, RV_SIZE)
    return rv


def ratchet_rendezvous(header_key: bytes, count: int) -> bytes:
    """The RV of message ``count`` under ``header_key``: ``BLAKE-256(header_key || LE32(count))``.

    ratchet/ratchet.go ``ratchetRendezvous``: after the KX, messages go to RVs derived from the
    ratchet's header keys (doc/p2p_messaging.md). ``RatchetSeed.send_rendezvous`` and
    ``recv_rendezvous`` pick the header key BR picks for the first message.
    """
    _check_size("header key", header_key, KEY_SIZE)
    return blake256(header_key + struct.pack("<I", count))


def paid_invite_rendezvous(invite_key: bytes) -> bytes:
    """The RV where a prepaid invite is stored: ``BLAKE-256(invite_key)``.

    client/clientintf/invitekey.go ``PaidInviteKey.RVPoint`` (``chainhash.HashFunc``, which is
    BLAKE-256). A prepaid invite is the invite's JSON sealed with ``secretbox_seal`` under the
    32-byte random invite key, pushed to this RV; the key travels out of band (bech32 "brpik...").
    """
    _check_size("invite key", invite_key, KEY_SIZE)
    return blake256(invite_key)


def autokx_yields(incoming_initial_rv: bytes, outstanding_initial_rv: bytes) -> bool:
    """Whether an auto-KX invite must be skipped because of our own outstanding one with the same user.

    client/kx.go ``acceptInvite``: when both users receive a transitive invite from each other at
    the same time, each would start a ratchet of its own and the two would never agree. BR breaks
    the tie by comparing the RVs as big-endian numbers (``ShortID.Less``): the side whose incoming
    invite's initial RV is smaller than its own outstanding invite's skips the incoming one. Each side
    sees the two RVs swapped, so exactly one side yields. Only for auto-KX with a mediator, less
    than 30 days old and not for reset.
    """
    _check_size("initial RV", incoming_initial_rv, RV_SIZE)
    _check_size("initial RV", outstanding_initial_rv, RV_SIZE)
    return incoming_initial_rv < outstanding_initial_rv  # bytes compare = big-endian compare


# --- identities -----------------------------------------------------------------------------------


def identity_from_key(sntrup_public_key: bytes) -> bytes:
    """A user's id: ``SHA-256(sntrup public key)`` (zkidentity ``IdentityFromPub``)."""
    _check_size("sntrup public key", sntrup_public_key, sntrup4591761.PUBLIC_KEY_SIZE)
    return hashlib.sha256(sntrup_public_key).digest()


def identity_digest(sig_key: bytes, key: bytes, identity: bytes) -> bytes:
    """The digest an identity signs: ``SHA-256(sig_key || key || identity)``.

    DOC DIFFERS (zkidentity/zkidentity.go): the ``Digest`` field's comment says "digest of name,
    keys and identity", but ``RecalculateDigest`` and ``Verify`` hash only the Ed25519 key, the
    sntrup key and the id: the name, the nick and the avatar are not covered by the signature.
    """
    return hashlib.sha256(sig_key + key + identity).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicIdentity:
    """zkidentity.PublicIdentity: who a user is, as the user hands it out.

    BR's JSON: ``{"name", "nick", "sigKey": hex, "key": hex, "identity": hex, "digest": hex,
    "signature": hex, "avatar": base64 or null}``.
    """

    name: str  # full name, free text ("Alice McMalice")
    nick: str  # short handle ("alice")
    sig_key: bytes  # Ed25519 public key, 32 bytes (SigKey)
    key: bytes  # sntrup4591761 public key, 1218 bytes (Key): KX blobs are sealed to it
    identity: bytes  # SHA-256(key), 32 bytes: the user's id everywhere in BR (Identity)
    digest: bytes  # identity_digest(sig_key, key, identity), 32 bytes (Digest)
    signature: bytes  # Ed25519 signature of digest by sig_key, 64 bytes (Signature)
    avatar: bytes = b""  # an image, optional, unsigned (Avatar)

    def __post_init__(self) -> None:
        _check_size("sig_key", self.sig_key, ED25519_PUBLIC_KEY_SIZE)
        _check_size("key", self.key, sntrup4591761.PUBLIC_KEY_SIZE)
        _check_size("identity", self.identity, KEY_SIZE)
        _check_size("digest", self.digest, KEY_SIZE)
        _check_size("signature", self.signature, SIGNATURE_SIZE)

    def verify(self) -> bool:
        """zkidentity ``Verify``: the digest is that of the keys and id, and is signed by sig_key."""
        if not hmac.compare_digest(self.digest, identity_digest(self.sig_key, self.key, self.identity)):
            return False
        try:
            crypto_sign_open(self.signature + self.digest, self.sig_key)
        except (BadSignatureError, CryptoError):
            return False
        return True

    def verify_identity(self) -> bool:
        """zkidentity ``VerifyIdentity``: the id is the hash of the sntrup key."""
        return hmac.compare_digest(self.identity, identity_from_key(self.key))


@dataclass(frozen=True, slots=True, kw_only=True)
class FullIdentity:
    """zkidentity.FullIdentity: one's own identity with its private keys.

    BR's JSON: ``{"publicIdentity": ..., "privateSigKey": hex, "privateKey": hex}``.
    """

    public: PublicIdentity
    private_sig_key: bytes  # Ed25519 private key as Go holds it: seed || public key, 64 bytes
    private_key: bytes  # sntrup4591761 private key, 1600 bytes

    def __post_init__(self) -> None:
        _check_size("private_sig_key", self.private_sig_key, ED25519_PRIVATE_KEY_SIZE)
        _check_size("private_key", self.private_key, sntrup4591761.PRIVATE_KEY_SIZE)

    def sign(self, message: bytes) -> bytes:
        """A detached Ed25519 signature of ``message`` (zkidentity ``SignMessage``), 64 bytes."""
        return bytes(crypto_sign(message, self.private_sig_key))[:SIGNATURE_SIZE]


def new_identity(name: str, nick: str, random: Random = os.urandom, *, avatar: bytes = b"") -> FullIdentity:
    """A new identity with fresh keys (zkidentity ``NewWithRNG``).

    The Ed25519 key comes first from ``random`` (a 32-byte seed, as Go's ``ed25519.GenerateKey``
    reads), then the sntrup key pair, as BR draws them from one reader.
    """
    seed = random(32)
    _check_size("random Ed25519 seed", seed, 32)
    sig_public, sig_private = crypto_sign_seed_keypair(seed)
    key, private_key = sntrup4591761.generate_key(random)
    identity = identity_from_key(key)
    digest = identity_digest(bytes(sig_public), key, identity)
    signature = bytes(crypto_sign(digest, sig_private))[:SIGNATURE_SIZE]
    public = PublicIdentity(
        name=name,
        nick=nick,
        sig_key=bytes(sig_public),
        key=key,
        identity=identity,
        digest=digest,
        signature=signature,
        avatar=avatar,
    )
    return FullIdentity(public=public, private_sig_key=bytes(sig_private), private_key=private_key)


# --- sealed blobs ---------------------------------------------------------------------------------


def secretbox_seal(message: bytes, key: bytes, random: Random = os.urandom) -> bytes:
    """sw.Seal: ``nonce (24, random) || XSalsa20-Poly1305(message)`` (tag first, as NaCl/Go)."""
    _check_size("secretbox key", key, KEY_SIZE)
    nonce = random(NONCE_SIZE)
    _check_size("random nonce", nonce, NONCE_SIZE)
    return nonce + bytes(crypto_secretbox_easy(message, nonce, key))


def secretbox_open(box: bytes, key: bytes) -> bytes:
    """sw.Open: take the nonce off the front and open the rest; ``KXError`` if it does not open.

    (Go's sw.Open would panic on fewer than 24 bytes; here that is a length error.)
    """
    _check_size("secretbox key", key, KEY_SIZE)
    if len(box) < NONCE_SIZE + BOX_OVERHEAD:
        raise KXError("length", f"secretbox needs at least {NONCE_SIZE + BOX_OVERHEAD} bytes, got {len(box)}")
    try:
        return bytes(crypto_secretbox_open_easy(box[NONCE_SIZE:], box[:NONCE_SIZE], key))
    except CryptoError:
        raise KXError("secretbox", "the box does not open with this key (wrong key or altered)") from None


def _decapsulate(ciphertext: bytes, private_key: bytes) -> bytes:
    _check_size("sntrup ciphertext", ciphertext, sntrup4591761.CIPHERTEXT_SIZE)
    _check_size("sntrup private key", private_key, sntrup4591761.PRIVATE_KEY_SIZE)
    # Go's Decapsulate returns (key, ok) and always a key, even for a ciphertext that fails its
    # checks; every BR call site rejects on ok != 1 ("could not decapsulate"). The public
    # `decapsulate` gives the key alone, so the checked form is what mirrors BR here.
    key, ok = sntrup4591761.decapsulate_checked(ciphertext, private_key)
    if not ok:
        raise KXError("decapsulation", "sntrup4591761 rejected the ciphertext (not for this key, or altered)")
    _check_size("sntrup shared key", key, sntrup4591761.SHARED_KEY_SIZE)
    return key


def seal_parts(message: bytes, peer_public_key: bytes, random: Random = os.urandom) -> tuple[bytes, bytes]:
    """``(c, nonce || secretbox(message, k))`` with ``(c, k) = Encapsulate(peer_public_key)``.

    The two parts separately, as BR's transitive messages carry them (rpc/routedrpc.go
    ``RMTransitiveMessage{For, CipherText, Message}``, made in client/remoteuser.go
    ``sendTransitive``): that is how an auto-KX invite reaches its invitee through a mediator, who can
    read neither. ``seal`` concatenates them.
    """
    _check_size("peer sntrup public key", peer_public_key, sntrup4591761.PUBLIC_KEY_SIZE)
    ciphertext, key = sntrup4591761.encapsulate(peer_public_key, random)
    return ciphertext, secretbox_seal(message, key, random)


def open_parts(ciphertext: bytes, box: bytes, own_private_key: bytes) -> bytes:
    """The inverse of ``seal_parts`` (client/client_rm_handlers.go ``handleTransitiveMsgFwd``)."""
    return secretbox_open(box, _decapsulate(ciphertext, own_private_key))


def seal(message: bytes, peer_public_key: bytes, random: Random = os.urandom) -> bytes:
    """A KX blob: ``c (1047) || nonce (24) || secretbox(message, nonce, k)``, ``(c, k) = Encapsulate(peer)``.

    rpc/oob.go ``EncryptRMO``; length ``1047 + 24 + 16 + len(message)``. The randomness goes, in
    order, to the encapsulation and then to the nonce.

    DOC DIFFERS (doc/p2p_kx.md draws ``c1 ; blob2`` with ``blob2 = snacl.Seal(msg2, k1)``): "snacl" is
    BR's sw package; the blob is the plain concatenation of c and sw.Seal's output, and sw.Seal
    prepends a random 24-byte nonce (drawn from crypto/rand, not from the caller's reader). BR's
    ``msg`` is ``zlib(JSON(RMOHeader) "\\n" JSON(payload) "\\n")`` (rpc/oob.go ``ComposeRMO``), not
    the bare message.
    """
    ciphertext, box = seal_parts(message, peer_public_key, random)
    return ciphertext + box


def open(blob: bytes, own_private_key: bytes) -> bytes:  # noqa: A001 - the name the KX layer asked for
    """Open a ``seal`` blob with our sntrup private key (rpc/oob.go ``DecryptOOB``).

    ``KXError``: ``"length"`` when shorter than a ciphertext and an empty box, ``"decapsulation"``
    when sntrup rejects c (a blob for another key usually fails here), ``"secretbox"`` when the box
    does not open (altered, or sealed to another key).
    """
    if len(blob) < MIN_SEALED_SIZE:
        raise KXError("length", f"a sealed KX blob has at least {MIN_SEALED_SIZE} bytes, got {len(blob)}")
    split = sntrup4591761.CIPHERTEXT_SIZE
    return open_parts(blob[:split], blob[split:], own_private_key)


# --- the ratchet's key exchange -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyExchange:
    """ratchet.KeyExchange: one side's half of the ratchet's key exchange.

    BR's JSON: ``{"public": base64, "cipher": hex}``.
    """

    # sw.Seal(X25519 public of the side's ratchet key, k): nonce || box, 72 bytes (Public, []byte)
    public: bytes
    # sntrup4591761 ciphertext of k to the *peer's identity key*, 1047 bytes (Cipher)
    cipher: bytes

    def __post_init__(self) -> None:
        # BR's Public is a []byte of any length; a box of anything but a 32-byte key fails to open
        # or fails validate_ecdh_point, so the fixed size is checked up front.
        _check_size("KeyExchange.public", self.public, KEY_EXCHANGE_PUBLIC_SIZE)
        _check_size("KeyExchange.cipher", self.cipher, sntrup4591761.CIPHERTEXT_SIZE)


@dataclass(frozen=True, slots=True, kw_only=True)
class HalfRatchet:
    """What one side keeps between filling its ``KeyExchange`` and completing with the peer's.

    BR keeps these in a ratchet.Ratchet before CompleteKeyExchange (and in clientdb as its
    DiskState, the KX's ``HalfRatchet``): ``kxPrivate``, ``myHalf`` and ``TheirPublicKey``.
    """

    kx_private: bytes  # X25519 private key, 32 random bytes (r.kxPrivate, drawn in ratchet.New)
    my_half: bytes  # the sntrup shared key we encapsulated to the peer (r.myHalf)
    their_public_key: bytes  # the peer's sntrup identity key we encapsulated to (r.TheirPublicKey)

    def __post_init__(self) -> None:
        _check_size("kx_private", self.kx_private, KEY_SIZE)
        _check_size("my_half", self.my_half, KEY_SIZE)
        _check_size("their_public_key", self.their_public_key, sntrup4591761.PUBLIC_KEY_SIZE)


def fill_key_exchange(their_public_key: bytes, random: Random = os.urandom) -> tuple[HalfRatchet, KeyExchange]:
    """Our half of the ratchet KX: ``ratchet.New`` then ``FillKeyExchange``.

    ``kx_private = random(32)``; ``(c, k) = Encapsulate(their identity key)``;
    ``KeyExchange{cipher: c, public: sw.Seal(X25519(kx_private, base), k)}``. The randomness goes to
    the X25519 key, the encapsulation and the nonce, in that order (BR's order; its nonce comes
    from crypto/rand).

    DOC DIFFERS (doc/p2p_kx.md lists "ratchet.KeyExchange" as if it were DH publics): the half has
    no public key in the clear; it is an sntrup encapsulation to the peer's long-term identity key,
    and the X25519 public travels inside a box under the encapsulated key.
    """
    _check_size("their sntrup public key", their_public_key, sntrup4591761.PUBLIC_KEY_SIZE)
    kx_private = random(KEY_SIZE)
    _check_size("random X25519 key", kx_private, KEY_SIZE)
    cipher, my_half = sntrup4591761.encapsulate(their_public_key, random)
    # X25519 with the base point; libsodium clamps the scalar as Go's curve25519.ScalarBaseMult does.
    public = secretbox_seal(bytes(crypto_scalarmult_base(kx_private)), my_half, random)
    half = HalfRatchet(kx_private=kx_private, my_half=my_half, their_public_key=their_public_key)
    return half, KeyExchange(public=public, cipher=cipher)


_P25519 = 2**255 - 19


def validate_ecdh_point(point: bytes) -> None:
    """ratchet ``validateECDHpoint``: 32 bytes, read little-endian, in ``[3, 2^255 - 19)``.

    Only a range check (it rejects 0, 1, 2 and non-canonical encodings), not a subgroup check.
    """
    _check_size("ECDH point", point, KEY_SIZE)
    if not 3 <= int.from_bytes(point, "little") < _P25519:
        raise KXError("ecdh-point", "the ratchet public key is out of range")


def _hmac_label(key: bytes, label: bytes) -> bytes:
    # ratchet ``deriveKey``: HMAC-SHA256 keyed with the master key, the label as message.
    return hmac.new(key, label, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class RatchetSeed:
    """A BR ratchet right after CompleteKeyExchange: everything the Double Ratchet starts from.

    The fields are ratchet.Ratchet's, same names (``disk.RatchetState`` stores them so). The ones
    this side does not have yet are 32 zero bytes, as in BR, whose ratchet tests a header key for
    all-zero to know it has not been set (``isZeroKey``). Not here because they start empty: the
    counts ``sendCount``, ``recvCount``, ``prevSendCount``, ``prevRecvCount`` (all 0), the saved
    message keys (none) and ``prevRecvHeaderKey`` (zero). ``kxPrivate`` is dropped (nil) by BR here.

    One side is ``alice`` (the acceptor, who sent RMOHalfKX), the other not (the inviter):

    ==================== ============================ ============================
    field                alice (acceptor)             not alice (inviter)
    ==================== ============================ ============================
    root_key             H("root key")                H("root key")
    send_header_key      zero                         H("header key")
    recv_header_key      H("header key")              zero
    next_send_header_key H("next send header key")    H("next receive header key")
    next_recv_header_key H("next receive header key") H("next send header key")
    send_chain_key       zero                         H("chain key")
    recv_chain_key       H("chain key")               zero
    send_ratchet_private zero                         own kx_private
    recv_ratchet_public  the inviter's X25519 public  zero
    ratchet              True                         False
    ==================== ============================ ============================

    with ``H(label) = HMAC-SHA256(SHA-256(k_alice || k_inviter), label)``. So the inviter can send at
    once on the chain it has; alice first performs a DH ratchet step (a fresh X25519 key against
    ``recv_ratchet_public``) when she sends, which is what ``ratchet=True`` means in BR's ``Encrypt``.
    """

    alice: bool  # which side of CompleteKeyExchange this is (see complete_key_exchange)
    root_key: bytes  # rootKey: input of the next DH ratchet step
    send_header_key: bytes  # sendHeaderKey: encrypts our message headers; zero until set
    recv_header_key: bytes  # recvHeaderKey: decrypts the peer's headers; zero until set
    next_send_header_key: bytes  # nextSendHeaderKey: becomes send_header_key at our next DH step
    next_recv_header_key: bytes  # nextRecvHeaderKey: the peer's header key after its next DH step
    send_chain_key: bytes  # sendChainKey: our message keys come from it; zero until we ratchet
    recv_chain_key: bytes  # recvChainKey: the peer's message keys; zero until it ratchets
    send_ratchet_private: bytes  # sendRatchetPrivate: our current X25519 ratchet private key
    recv_ratchet_public: bytes  # recvRatchetPublic: the peer's current X25519 ratchet public key
    ratchet: bool  # ratchet: True if our next Encrypt starts with a DH ratchet step
    my_half: bytes  # myHalf: the sntrup shared key we encapsulated (kept in BR's disk state)
    their_half: bytes  # theirHalf: the sntrup shared key the peer encapsulated to us

    def __post_init__(self) -> None:
        for name in (
            "root_key", "send_header_key", "recv_header_key", "next_send_header_key",
            "next_recv_header_key", "send_chain_key", "recv_chain_key", "send_ratchet_private",
            "recv_ratchet_public", "my_half", "their_half",
        ):  # fmt: skip
            _check_size(name, getattr(self, name), KEY_SIZE)

    def send_rendezvous(self) -> bytes:
        """The RV of our first message (``Ratchet.SendRendezvous`` at count 0).

        BR uses the send header key, or the next one while the send header key is still zero (right
        after the KX, on alice's side).
        """
        key = self.next_send_header_key if self.send_header_key == _ZERO_KEY else self.send_header_key
        return ratchet_rendezvous(key, 0)

    def recv_rendezvous(self) -> bytes:
        """The RV where the peer's first message arrives (``Ratchet.RecvRendezvous`` at count 0).

        The receive header key, or the next one while it is zero (right after the KX, on the
        inviter's side). BR's second, "drain", RV is absent after a KX: the previous header key is zero.
        """
        key = self.next_recv_header_key if self.recv_header_key == _ZERO_KEY else self.recv_header_key
        return ratchet_rendezvous(key, 0)


def complete_key_exchange(
    half: HalfRatchet, theirs: KeyExchange, own_private_key: bytes, *, alice: bool
) -> RatchetSeed:
    """ratchet ``CompleteKeyExchange``: the first keys of the ratchet from our half and the peer's.

    1. ``their_half = Decapsulate(theirs.cipher, own sntrup private key)`` (``KXError`` "decapsulation").
    2. ``ratchet_public = sw.Open(theirs.public, their_half)`` (``KXError`` "secretbox"), then
       ``validate_ecdh_point`` (``KXError`` "ecdh-point").
    3. ``shared = SHA-256(my_half || their_half)`` if alice else ``SHA-256(their_half || my_half)``:
       always alice's encapsulated key first.
    4. The keys of ``RatchetSeed`` (see its table) are ``HMAC-SHA256(shared, label)``.

    No Diffie-Hellman is computed: the shared secret comes from the two sntrup encapsulations
    only, each to a long-term identity key. The peer's X25519 public is used only on alice's side
    (as ``recv_ratchet_public``); on the other side it is validated and then unused, and that side's
    own X25519 key becomes its first ``send_ratchet_private``.

    The "am I alice" rule is not a property of the keys but of the role (client/kx.go): the side that
    *accepted* an invite (sent RMOHalfKX, receives RMOFullKX) completes with ``alice=True``
    (``handleStep3IDKX``); the side that *made* the invite completes with ``alice=False`` (rpc
    ``NewFullRatchetKX``, from ``handleStep2IDKX``).

    DOC DIFFERS (doc/p2p_kx.md): the doc calls the inviter "Alice" and the acceptor "Bob"; in the
    ratchet it is the other way round: the doc's Bob is ``alice=True``.
    """
    their_half = _decapsulate(theirs.cipher, own_private_key)
    ratchet_public = secretbox_open(theirs.public, their_half)
    validate_ecdh_point(ratchet_public)

    first, second = (half.my_half, their_half) if alice else (their_half, half.my_half)
    shared = hashlib.sha256(first + second).digest()

    header = _hmac_label(shared, b"header key")
    next_send = _hmac_label(shared, b"next send header key")
    next_recv = _hmac_label(shared, b"next receive header key")
    chain = _hmac_label(shared, b"chain key")
    zero = _ZERO_KEY
    return RatchetSeed(
        alice=alice,
        root_key=_hmac_label(shared, b"root key"),
        # BR's non-alice side swaps the two "next" labels, so that each side's next send key is the
        # other's next receive key.
        send_header_key=zero if alice else header,
        recv_header_key=header if alice else zero,
        next_send_header_key=next_send if alice else next_recv,
        next_recv_header_key=next_recv if alice else next_send,
        send_chain_key=zero if alice else chain,
        recv_chain_key=chain if alice else zero,
        send_ratchet_private=zero if alice else half.kx_private,
        recv_ratchet_public=ratchet_public if alice else zero,
        ratchet=alice,
        my_half=half.my_half,
        their_half=their_half,
    )


# --- the KX messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteFunds:
    """rpc.InviteFunds: an optional on-chain gift that an invite can carry (redeemed before accepting).

    BR's JSON: ``{"txid": hex in Decred's reversed byte order (chainhash.Hash.String), "index",
    "tree", "private_key", "height_hint", "address"}``.
    """

    txid: bytes  # 32 bytes, internal (not display) byte order
    index: int  # uint32 output index
    tree: int  # int8 Decred tx tree
    private_key: str  # WIF private key controlling the output
    height_hint: int  # uint32
    address: str

    def __post_init__(self) -> None:
        _check_size("txid", self.txid, 32)


@dataclass(frozen=True, slots=True, kw_only=True)
class OOBPublicIdentityInvite:
    """rpc.OOBPublicIdentityInvite: msg1, the invite handed out of band (or relayed, or sent for reset).

    BR's serialized forms:

    * manual invite (client/kx.go ``createInvite``): ``json.Encoder.Encode``, i.e. compact JSON plus
      ``"\\n"``, uncompressed, unencrypted: ``{"public": PublicIdentity, "initialrendezvous": hex,
      "resetrendezvous": hex, "funds": InviteFunds}`` ("funds" omitted when absent);
    * prepaid invite: that JSON ``secretbox_seal``-ed under a random key, at
      ``paid_invite_rendezvous(key)``;
    * reset invite: inside a ``seal`` blob, as ``zlib(JSON(RMOHeader{command:
      "oobpublicidentityinvite"}) "\\n" JSON(invite) "\\n")``;
    * auto-KX: inside a signed routed message (``rpc.ComposeCompressedRM``) in ``seal_parts``.

    DOC DIFFERS (doc/p2p_kx.md): the doc's ``rpc.OOBPublicIdInvite`` is named
    OOBPublicIdentityInvite, carries the whole public identity (not just "Alice.PubKey") and an
    optional ``Funds``.
    """

    public: PublicIdentity  # the inviter (Public)
    initial_rendezvous: bytes  # the "initialRV": where the acceptor sends RMOHalfKX (InitialRendezvous)
    reset_rendezvous: bytes  # the inviter's reset RV: where it listens for resets (ResetRendezvous)
    funds: InviteFunds | None = None  # (Funds, optional)

    def __post_init__(self) -> None:
        _check_size("initial_rendezvous", self.initial_rendezvous, RV_SIZE)
        _check_size("reset_rendezvous", self.reset_rendezvous, RV_SIZE)


@dataclass(frozen=True, slots=True, kw_only=True)
class RMOHalfKX:
    """rpc.RMOHalfKX: msg2, the acceptor's answer, sealed to the inviter's key and sent to the initialRV.

    BR's JSON: ``{"public": PublicIdentity, "halfkx": KeyExchange, "initialrendezvous": hex,
    "resetrendezvous": hex}``; command "ohalfkx".

    DOC DIFFERS (doc/p2p_kx.md calls it "step3RV"; rpc/oob.go, client/kx.go ``acceptInvite``): the
    field holding the step-3 RV is named ``InitialRendezvous``, like the invite's different RV.
    """

    public: PublicIdentity  # the acceptor (Public)
    half_kx: KeyExchange  # the acceptor's ratchet half, encapsulated to the inviter (HalfKX)
    initial_rendezvous: bytes  # the step-3 RV: where the inviter sends RMOFullKX (InitialRendezvous)
    reset_rendezvous: bytes  # the acceptor's reset RV (ResetRendezvous)

    def __post_init__(self) -> None:
        _check_size("initial_rendezvous", self.initial_rendezvous, RV_SIZE)
        _check_size("reset_rendezvous", self.reset_rendezvous, RV_SIZE)

    @property
    def step3_rendezvous(self) -> bytes:
        """The doc's name for ``initial_rendezvous``."""
        return self.initial_rendezvous


@dataclass(frozen=True, slots=True, kw_only=True)
class RMOFullKX:
    """rpc.RMOFullKX: msg3, the inviter's ratchet half, sealed to the acceptor's key, sent to step3RV.

    BR's JSON: ``{"fullkx": KeyExchange}``; command "ofullkx".
    """

    full_kx: KeyExchange  # (FullKX)


@dataclass(frozen=True, slots=True, kw_only=True)
class RMOHeader:
    """rpc.RMOHeader: precedes the payload in BR's plaintext of a sealed KX blob.

    BR's JSON: ``{"version": 1, "timestamp": unix seconds, "command": CMD_*}``. Recorded for the
    wire format to come; ``seal``/``open`` do not use it.
    """

    version: int
    timestamp: int
    command: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingInvite:
    """The inviter's state while waiting at the initial RV (clientdb.KXData at stage Step2IDKX)."""

    initial_rendezvous: bytes  # we listen here for RMOHalfKX
    my_reset_rendezvous: bytes  # we will listen here for resets once the KX completes


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedInvite:
    """The acceptor's state while waiting at the step-3 RV (clientdb.KXData at stage Step3IDKX)."""

    peer: PublicIdentity  # the inviter
    half: HalfRatchet  # our ratchet half, completed by RMOFullKX
    initial_rendezvous: bytes  # the invite's initial RV: BR's id for this KX
    step3_rendezvous: bytes  # we listen here for RMOFullKX
    my_reset_rendezvous: bytes
    their_reset_rendezvous: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletedKX:
    """A finished KX: what BR's ``kxCompleted`` callback receives (client/kx.go)."""

    peer: PublicIdentity
    seed: RatchetSeed
    initial_rendezvous: bytes  # the KX's id (BR's ``initialRV``)
    my_reset_rendezvous: bytes  # we listen here for the peer's reset invites
    their_reset_rendezvous: bytes  # we send our reset invites here, sealed to peer.key


def create_invite(
    public: PublicIdentity, random: Random = os.urandom, *, funds: InviteFunds | None = None
) -> tuple[PendingInvite, OOBPublicIdentityInvite]:
    """Step 1 (client/kx.go ``createInvite``): an invite with a fresh initial RV and reset RV.

    For a reset, the same function makes the new invite, which is then ``seal``-ed to the peer's
    known key and sent to its reset RV (``requestReset``).

    DOC DIFFERS (doc/p2p_kx.md, "the initial rpc.OOBPublicIdentityInvite is directly encrypted"):
    a reset does not resend the first invite: ``requestReset`` creates a new one with new RVs. The
    user who asks for the reset is thus the new KX's inviter, and the one who receives it accepts it
    (``handleReset`` calls ``acceptInvite``), so the roles of alice may swap from the first KX.
    """
    initial = new_rendezvous(random)
    reset = new_rendezvous(random)
    invite = OOBPublicIdentityInvite(public=public, initial_rendezvous=initial, reset_rendezvous=reset, funds=funds)
    return PendingInvite(initial_rendezvous=initial, my_reset_rendezvous=reset), invite


def accept_invite(
    own: FullIdentity, invite: OOBPublicIdentityInvite, random: Random = os.urandom
) -> tuple[AcceptedInvite, RMOHalfKX]:
    """Step 2 (client/kx.go ``acceptInvite``; rpc ``NewHalfRatchetKX``, ``NewHalfKX``).

    Fills our ratchet half to the inviter's key, then draws the step-3 RV and our reset RV (BR's
    order). The caller seals the returned RMOHalfKX to ``invite.public.key`` and sends it to
    ``invite.initial_rendezvous``. ``KXError("self-kx")`` for an invite of our own.

    Like BR, this does not check the invite's signature (``PublicIdentity.verify``); for an auto-KX
    BR checks ``verify_identity`` first (client/client_autokx.go ``handleTransitiveIDInvite``).

    DOC DIFFERS (doc/p2p_kx.md, auto-KX "having the admin relay an OOBPublicIdentityInvite"): the
    mediator does not relay an invite of the requester. The requester asks the mediator
    (RMMediateIdentity{target id}); the mediator asks the target (RMInvite{requester's public
    identity}); the *target* creates the invite and sends it through the mediator sealed to the
    requester (RMTransitiveMessage, ``seal_parts``), who accepts it. So the target is the inviter.
    """
    if hmac.compare_digest(invite.public.identity, own.public.identity):
        raise KXError("self-kx", "the invite is our own")
    half, key_exchange = fill_key_exchange(invite.public.key, random)
    step3 = new_rendezvous(random)
    my_reset = new_rendezvous(random)
    accepted = AcceptedInvite(
        peer=invite.public,
        half=half,
        initial_rendezvous=invite.initial_rendezvous,
        step3_rendezvous=step3,
        my_reset_rendezvous=my_reset,
        their_reset_rendezvous=invite.reset_rendezvous,
    )
    return accepted, RMOHalfKX(
        public=own.public, half_kx=key_exchange, initial_rendezvous=step3, reset_rendezvous=my_reset
    )


def answer_half_kx(
    own: FullIdentity, pending: PendingInvite, half_kx: RMOHalfKX, random: Random = os.urandom
) -> tuple[CompletedKX, RMOFullKX]:
    """Step 3 (client/kx.go ``handleStep2IDKX``; rpc ``NewFullRatchetKX``): the inviter completes.

    Fills our half to the acceptor's key and completes with ``alice=False``. The caller seals the
    returned RMOFullKX to ``half_kx.public.key`` and sends it to ``half_kx.initial_rendezvous``
    (the step-3 RV). ``KXError("self-kx")`` if the answer comes from ourselves.
    """
    if hmac.compare_digest(half_kx.public.identity, own.public.identity):
        raise KXError("self-kx", "the half KX is our own")
    half, key_exchange = fill_key_exchange(half_kx.public.key, random)
    seed = complete_key_exchange(half, half_kx.half_kx, own.private_key, alice=False)
    done = CompletedKX(
        peer=half_kx.public,
        seed=seed,
        initial_rendezvous=pending.initial_rendezvous,
        my_reset_rendezvous=pending.my_reset_rendezvous,
        their_reset_rendezvous=half_kx.reset_rendezvous,
    )
    return done, RMOFullKX(full_kx=key_exchange)


def finish_full_kx(own: FullIdentity, accepted: AcceptedInvite, full_kx: RMOFullKX) -> CompletedKX:
    """Step 4 (client/kx.go ``handleStep3IDKX``): the acceptor completes with ``alice=True``."""
    seed = complete_key_exchange(accepted.half, full_kx.full_kx, own.private_key, alice=True)
    return CompletedKX(
        peer=accepted.peer,
        seed=seed,
        initial_rendezvous=accepted.initial_rendezvous,
        my_reset_rendezvous=accepted.my_reset_rendezvous,
        their_reset_rendezvous=accepted.their_reset_rendezvous,
    )


def check_reset_invite(invite: OOBPublicIdentityInvite, known: PublicIdentity) -> None:
    """client/kx.go ``handleReset``: a reset invite must come from the identity we already know.

    BR compares the Ed25519 key, the id and the sntrup key (not name, nick or signature);
    ``KXError("reset-identity")`` otherwise. After this the receiver accepts the invite as usual.
    """
    same = (
        hmac.compare_digest(invite.public.sig_key, known.sig_key)
        and hmac.compare_digest(invite.public.identity, known.identity)
        and hmac.compare_digest(invite.public.key, known.key)
    )
    if not same:
        raise KXError("reset-identity", "the reset invite is not from the identity we know")
