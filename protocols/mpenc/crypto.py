"""The cryptographic core of mpENC's group key agreement, sans-IO (design chapter 5.2).

Two subprotocols run on the same packets:

- CLIQUES (5.2.1), a group Diffie-Hellman over x25519, gives every member the same
  *cardinal key* (the shared group secret). IKA builds it from nothing with an *upflow*
  (each member in turn adds its private contribution to a growing list of *intermediate
  keys*) and a *downflow* (the last member broadcasts the final list). AKA changes it:
  include (upflow to the new members), exclude and refresh (a downflow only).
- ASKE (5.2.2) gives every member an *ephemeral* ed25519 signing key, bound to the
  session by a *session id* (sid) built from everyone's *nonce*, and authenticated by a
  *session signature* made with the member's static identity key.

Everything here is a pure function over bytes: no state, no I/O, no clock. Which member
is where in the list, who is next in the upflow and what goes into which packet is the
caller's business (the protocol layer). Randomness is a parameter (`Entropy`) so that
tests and simulations can be deterministic; the default is the OS's CSPRNG.

Indices are 0-based here; the design numbers members from 1 (p1, x1, ...).

Every value an attacker can send us (intermediate keys, signatures, public keys) is
checked where it is used; a bad one raises `GkaCryptoError` naming what failed.
Programming errors (wrong argument shapes from our own side) raise `ValueError`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeAlias, runtime_checkable

from nacl.bindings import (
    crypto_scalarmult,
    crypto_scalarmult_base,
    crypto_sign,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import BadSignatureError, CryptoError

from runtime.errors import VerificationError
from runtime.memo import pure

__all__ = [
    "ACK_SIG_CONTEXT",
    "BASE_POINT",
    "GREET_SIG_CONTEXT",
    "GROUP_KEY_INFO",
    "KEY_SIZE",
    "NONCE_SIZE",
    "AkaUpflow",
    "Downflow",
    "Entropy",
    "GkaCryptoError",
    "RandomSource",
    "SigningKeyPair",
    "aka_exclude",
    "aka_include",
    "aka_refresh",
    "apply_privates",
    "cardinal_key",
    "downflow",
    "group_key",
    "hkdf_sha256",
    "ika_start",
    "new_ephemeral_signing_key",
    "new_nonce",
    "new_private_contribution",
    "session_authenticator",
    "session_id",
    "session_signature",
    "sign_packet",
    "signing_key_pair",
    "upflow",
    "verify_packet_signature",
    "verify_session_signature",
]

KEY_SIZE = 32  # x25519 scalars and points, ed25519 seeds and public keys
NONCE_SIZE = 32
SIGNATURE_SIZE = 64
# The x25519 base point G (u = 9), as an intermediate key: the first upflow carries it as
# "the intermediate key lacking p1's contribution" (5.2.1, u1 = (G, x1G)).
BASE_POINT = bytes([9]) + bytes(31)
GROUP_KEY_INFO = b"mpenc group key"
# Fixed context strings, so a signature made for one purpose cannot be replayed as another.
ACK_SIG_CONTEXT = b"acksig"  # session signatures (5.2.2, m_i = CTX || pid_i || E_i || k_i || sid)
GREET_SIG_CONTEXT = b"greetmsgsig"  # MESSAGE_SIGNATURE of greeting packets (5.2.3)


class GkaCryptoError(VerificationError):
    """A value received from another member failed a cryptographic check (a RemoteError:
    the message is dropped or the operation fails, and the session stays)."""


# --- randomness ------------------------------------------------------------------------


@runtime_checkable
class RandomSource(Protocol):
    """Anything with `randbytes(n)`, e.g. `random.Random` (tests, simulations only)."""

    def randbytes(self, n: int, /) -> bytes: ...


# None means the OS CSPRNG; a RandomSource or a function n -> n bytes (e.g. os.urandom)
# makes a run reproducible. A seeded random.Random is NOT secure: use it in tests only.
Entropy: TypeAlias = RandomSource | Callable[[int], bytes] | None


def _random_bytes(n: int, source: Entropy) -> bytes:
    # getattr, not isinstance(source, RandomSource): a runtime Protocol check costs more
    # than the draw itself.
    randbytes = getattr(source, "randbytes", None)
    if source is None:
        data = secrets.token_bytes(n)
    elif randbytes is not None:
        data = randbytes(n)
    else:
        data = source(n)  # type: ignore[operator]
    if not isinstance(data, bytes) or len(data) != n:
        raise ValueError(f"entropy source gave {type(data).__name__} of the wrong size, wanted {n} bytes")
    return data


def new_private_contribution(source: Entropy = None) -> bytes:
    """A fresh x25519 private key contribution (32 random bytes; x25519 clamps on use)."""
    return _random_bytes(KEY_SIZE, source)


def new_nonce(source: Entropy = None) -> bytes:
    """A fresh ASKE nonce k_i (32 random bytes)."""
    return _random_bytes(NONCE_SIZE, source)


# --- x25519 ----------------------------------------------------------------------------


def _check_size(value: bytes, size: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"{what} must be {size} bytes")


def _scalarmult(private: bytes, intermediate: bytes, what: str) -> bytes:
    """x25519(private, intermediate); intermediate comes from the network, so check it."""
    if not isinstance(intermediate, bytes) or len(intermediate) != KEY_SIZE:
        raise GkaCryptoError(f"{what} is not a {KEY_SIZE}-byte x25519 point")
    try:
        return bytes(crypto_scalarmult(private, intermediate))
    except CryptoError as exc:
        # libsodium refuses an all-zero result: the point has low order, and would make
        # the "shared" secret a constant that an attacker knows.
        raise GkaCryptoError(f"{what} is a low-order x25519 point") from exc


def apply_privates(privates: Sequence[bytes], intermediate: bytes | None) -> bytes:
    """Multiply `intermediate` (the base point G when None) by each contribution in turn.

    The contributions stay separate: x25519 clamps every scalar it is given, so a product
    of contributions computed modulo the group order would be clamped into a different
    number and give a wrong key ("Updating Private Key Contributions", 5.2.1).
    """
    if not privates:
        raise ValueError("at least one private contribution is needed")
    for private in privates:
        _check_size(private, KEY_SIZE, "a private contribution")
    point: bytes | None = intermediate
    for private in privates:
        if point is None:
            point = bytes(crypto_scalarmult_base(private))
        else:
            point = _scalarmult(private, point, "the intermediate key")
    assert point is not None  # privates is not empty
    return point


# --- CLIQUES IKA -----------------------------------------------------------------------


class Downflow(NamedTuple):
    """What the member starting a downflow broadcasts, and what it keeps."""

    intermediate_keys: list[bytes]  # to broadcast: entry i lacks only member i's contribution
    privates: list[bytes]  # the sender's contributions, oldest first: keep them all
    cardinal_key: bytes  # the sender's new shared group secret: keep, never send


class AkaUpflow(NamedTuple):
    """An include's first upflow message, and the initiator's updated contributions."""

    intermediate_keys: list[bytes]  # to send to the first new member: n old entries + cardinal
    privates: list[bytes]  # the initiator's contributions, oldest first: keep them all


def ika_start(private: bytes) -> list[bytes]:
    """The first member's upflow u1 = (G, x1G) (5.2.1 IKA, "Upflow").

    The first member has no predecessor: its list of intermediate keys lacking its own
    contribution is just (G), and the cardinal it adds to is G too, so this is `upflow`
    applied to (G).
    """
    return upflow([BASE_POINT], private)


def upflow(intermediate_keys: Sequence[bytes], private: bytes) -> list[bytes]:
    """The next upflow message from the one received, with a fresh contribution x_i.

    The received list (u_{i-1} in the design, i entries for the i-th member) is
    `init; ckey`: i-1 intermediate keys, each lacking one previous member's contribution,
    then the cardinal key holding all of them. The result (u_i, i+1 entries) is

        x_i.init; ckey; x_i.ckey

    Every old intermediate key gets our contribution (it now lacks only its own member's);
    the previous cardinal passes unaltered, becoming the entry that lacks only ours; the
    new cardinal holds everyone's so far. E.g. u2 = (x2G, x1G, x2x1G) from u1 = (G, x1G).
    """
    _check_size(private, KEY_SIZE, "the private contribution")
    if not intermediate_keys:
        raise GkaCryptoError("the upflow carries no intermediate keys")
    *init, ckey = intermediate_keys
    mixed = [_scalarmult(private, key, f"intermediate key #{i}") for i, key in enumerate(init)]
    new_cardinal = _scalarmult(private, ckey, "the cardinal key")
    return [*mixed, ckey, new_cardinal]


def downflow(intermediate_keys: Sequence[bytes], private: bytes) -> Downflow:
    """The last member's step: an upflow step whose new cardinal is the group secret.

    The last member mixes in its contribution exactly as in `upflow`, but the new cardinal
    key now holds every member's contribution: it keeps that as the shared secret and
    broadcasts only the n intermediate keys (5.2.1 IKA, "Downflow").
    """
    *keys, secret = upflow(intermediate_keys, private)
    return Downflow(keys, [private], secret)


def cardinal_key(intermediate_keys: Sequence[bytes], own_index: int, privates: Sequence[bytes]) -> bytes:
    """The shared group secret, from a received downflow.

    Entry `own_index` is the one intermediate key lacking exactly our contributions;
    applying all of them (every contribution we ever made, 5.2.1) gives the cardinal key.
    """
    if not 0 <= own_index < len(intermediate_keys):
        raise GkaCryptoError(f"the downflow has no intermediate key for member #{own_index}")
    try:
        return apply_privates(privates, intermediate_keys[own_index])
    except GkaCryptoError as exc:
        raise GkaCryptoError(f"own intermediate key #{own_index}: {exc}") from exc


# --- CLIQUES AKA -----------------------------------------------------------------------


def _renew(
    intermediate_keys: Sequence[bytes], own_index: int, privates: Sequence[bytes], new_private: bytes
) -> Downflow:
    """Update our contribution ("Updating Private Key Contributions", 5.2.1).

    Every intermediate key except our own gets the new contribution x'; our own entry
    is left as it is, so it still lacks all of our contributions. The new cardinal key is
    our own entry times all of our contributions, old and new. The old ones are not folded
    into our entry: that entry times the old ones is the previous group secret, and it
    would be broadcast.
    """
    _check_size(new_private, KEY_SIZE, "the new private contribution")
    if not 0 <= own_index < len(intermediate_keys):
        raise ValueError(f"own index {own_index} is not in a list of {len(intermediate_keys)} intermediate keys")
    all_privates = [*privates, new_private]
    renewed = [
        key if i == own_index else _scalarmult(new_private, key, f"intermediate key #{i}")
        for i, key in enumerate(intermediate_keys)
    ]
    secret = cardinal_key(intermediate_keys, own_index, all_privates)
    return Downflow(renewed, all_privates, secret)


def aka_include(
    intermediate_keys: Sequence[bytes], own_index: int, privates: Sequence[bytes], new_private: bytes
) -> AkaUpflow:
    """Start an include: the upflow to the first new member (5.2.1 AKA, "Member Inclusion").

    `intermediate_keys` is the last downflow (n entries, ours at `own_index`). Following the
    design's three steps: (1) our own entry times our old contributions, i.e. the old group
    secret, is the base of the new cardinal; it must not be sent as is, so (2) we make a
    new contribution x' and (3) apply x' to every entry except our own, and to that new
    cardinal. The new members are appended to the member list after the old ones, so
    our index does not change. Each new member then runs `upflow` (or `downflow` if it is
    the last), adding its own entry; so exactly one cardinal is appended here, however
    many members are being included. E.g. for p5 joining p1..p4, started by p1:

        u1' = (x4x3x2G, x'1x4x3x1G, x'1x4x2x1G, x'1x3x2x1G, x'1x1x4x3x2G)
    """
    renewed = _renew(intermediate_keys, own_index, privates, new_private)
    return AkaUpflow([*renewed.intermediate_keys, renewed.cardinal_key], renewed.privates)


def aka_exclude(
    intermediate_keys: Sequence[bytes],
    own_index: int,
    privates: Sequence[bytes],
    new_private: bytes,
    excluded: Collection[int],
) -> Downflow:
    """Exclude members: renew our contribution, drop their entries, broadcast the rest.

    (5.2.1 AKA, "Member Exclusion".) The excluded members' contributions stay mixed into
    the remaining entries and so into the new secret; what locks them out is our new x',
    which the renewal puts into every entry they could use and which they never learn.
    Indices are into the current list; in the returned list the
    entries keep their order (our own index shifts down by the excluded ones before us).
    We never exclude ourselves (3.3): a member leaves by other means.
    """
    dropped = set(excluded)
    if not dropped:
        raise ValueError("an exclude needs at least one member to exclude")
    if len(dropped) != len(excluded):
        raise ValueError("a member is excluded twice")
    if own_index in dropped:
        raise ValueError("we never exclude ourselves")
    if not all(0 <= i < len(intermediate_keys) for i in dropped):
        raise ValueError(f"excluded indices {sorted(dropped)} are not all in the member list")
    renewed = _renew(intermediate_keys, own_index, privates, new_private)
    kept = [key for i, key in enumerate(renewed.intermediate_keys) if i not in dropped]
    return Downflow(kept, renewed.privates, renewed.cardinal_key)


def aka_refresh(
    intermediate_keys: Sequence[bytes], own_index: int, privates: Sequence[bytes], new_private: bytes
) -> Downflow:
    """Refresh the group secret: renew our contribution and broadcast every entry (5.2.1 AKA)."""
    return _renew(intermediate_keys, own_index, privates, new_private)


# --- key derivation ----------------------------------------------------------------------


def hkdf_sha256(ikm: bytes, info: bytes = b"", salt: bytes = b"", length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract, then expand to `length` bytes."""
    hash_len = hashlib.sha256().digest_size
    if not 0 < length <= 255 * hash_len:
        raise ValueError(f"HKDF-SHA256 cannot make {length} bytes")
    # RFC 5869 2.2: a missing salt is HashLen zero bytes.
    prk = hmac.new(salt or bytes(hash_len), ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // hash_len) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def group_key(cardinal: bytes) -> bytes:
    """The group encryption key: the first HKDF-SHA256 block of the cardinal key.

    Empty salt, info b"mpenc group key": the raw x25519 output is not uniformly random, so
    it is never used as a key directly.
    """
    return hkdf_sha256(cardinal, GROUP_KEY_INFO)


# --- ASKE --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKeyPair:
    """An ed25519 key pair: `seed` is the 32-byte private key, `public` the 32-byte key."""

    seed: bytes = field(repr=False)
    public: bytes


@pure(4096)
def _keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, libsodium's 64-byte secret key) of an ed25519 seed. Deriving them is
    a scalar multiplication; a member signs many packets with one ephemeral key, so each
    seed's keys are derived once."""
    _check_size(seed, KEY_SIZE, "an ed25519 seed")
    public, secret = crypto_sign_seed_keypair(seed)
    return bytes(public), bytes(secret)


def signing_key_pair(seed: bytes) -> SigningKeyPair:
    """The ed25519 key pair of a 32-byte seed."""
    return SigningKeyPair(seed, _keypair(seed)[0])


def _sign(seed: bytes, message: bytes) -> bytes:
    # libsodium's combined form is signature || message: the signature is its head.
    return bytes(crypto_sign(message, _keypair(seed)[1])[:SIGNATURE_SIZE])


def new_ephemeral_signing_key(source: Entropy = None) -> SigningKeyPair:
    """A fresh ephemeral signing key pair (e_i, E_i) for one session (5.2.2, phase 1)."""
    return signing_key_pair(_random_bytes(KEY_SIZE, source))


def _member_bytes(member_id: str) -> bytes:
    # Member ids are text (XMPP JIDs on Mega); the reference vector is reproduced by their
    # UTF-8 bytes, concatenated without separators or lengths.
    return member_id.encode("utf-8")


def session_id(members: Sequence[str], nonces: Sequence[bytes]) -> bytes:
    """sid = SHA-256(pid_1 || ... || pid_n || k_1 || ... || k_n), ids in lexical order.

    `nonces[i]` belongs to `members[i]`; the pairs are sorted by member id (as UTF-8
    bytes, which is code point order) so every member computes the same sid whatever
    the upflow order. As in mpENC, nothing delimits the parts: the bytes must match the
    reference implementation, and each nonce is fixed-size in real use.
    """
    if len(members) != len(nonces):
        raise ValueError(f"{len(members)} members but {len(nonces)} nonces")
    if len(set(members)) != len(members):
        raise ValueError("a member id appears twice; the order of nonces would be ambiguous")
    pairs = sorted(zip((_member_bytes(m) for m in members), nonces, strict=True))
    digest = hashlib.sha256()
    for member, _ in pairs:
        digest.update(member)
    for _, nonce in pairs:
        digest.update(nonce)
    return digest.digest()


def session_authenticator(member_id: str, ephemeral_public: bytes, nonce: bytes, sid: bytes) -> bytes:
    """H(m_i), m_i = b"acksig" || pid_i || E_i || k_i || sid: what a session signature signs.

    k_i is in m_i although it is already in sid, so as not to depend on how sid is made
    (5.2.2, footnote). mpENC signs the hash of m_i, not m_i itself.
    """
    return hashlib.sha256(ACK_SIG_CONTEXT + _member_bytes(member_id) + ephemeral_public + nonce + sid).digest()


def session_signature(
    static_signing_key: bytes, member_id: str, ephemeral_public: bytes, nonce: bytes, sid: bytes
) -> bytes:
    """sigma_{s_i}(m_i): the 64-byte ed25519 signature by the static identity key (seed).

    It binds our ephemeral key and nonce to this session, and to what we believe all the
    members' contributions are (they are all in sid).
    """
    _check_size(static_signing_key, KEY_SIZE, "the static signing key (an ed25519 seed)")
    message = session_authenticator(member_id, ephemeral_public, nonce, sid)
    return _sign(static_signing_key, message)


def _verify(public: bytes, message: bytes, signature: bytes, what: str) -> None:
    if not isinstance(public, bytes) or len(public) != KEY_SIZE:
        raise GkaCryptoError(f"{what}: the public key is not {KEY_SIZE} bytes")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise GkaCryptoError(f"{what}: the signature is not {SIGNATURE_SIZE} bytes")
    if not _verifies(public, message, signature):
        raise GkaCryptoError(f"{what} does not verify")


@pure(8192)
def _verifies(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` over `message` verifies under `public` (runtime.memo: in an
    exploration the same packet reaches members in many worlds)."""
    try:
        crypto_sign_open(signature + message, public)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


def verify_session_signature(
    static_public: bytes, member_id: str, ephemeral_public: bytes, nonce: bytes, sid: bytes, signature: bytes
) -> None:
    """Check member_id's session signature against our own sid and its static key (phase 3).

    Raises GkaCryptoError if it does not verify.
    """
    message = session_authenticator(member_id, ephemeral_public, nonce, sid)
    _verify(static_public, message, signature, f"session signature of member {member_id!r}")


def sign_packet(ephemeral_signing_key: bytes, message: bytes) -> bytes:
    """MESSAGE_SIGNATURE of a greeting packet: ed25519 by the ephemeral key (seed) over
    b"greetmsgsig" || S, where S is the packet's bytes from PROTOCOL_VERSION on (5.2.3)."""
    _check_size(ephemeral_signing_key, KEY_SIZE, "the ephemeral signing key (an ed25519 seed)")
    return _sign(ephemeral_signing_key, GREET_SIG_CONTEXT + message)


def verify_packet_signature(ephemeral_public: bytes, message: bytes, signature: bytes) -> None:
    """Check a greeting packet's MESSAGE_SIGNATURE; raises GkaCryptoError if it fails.

    The ephemeral key is only trusted once the sender's session signature has verified;
    until then this proves only that the packet is whole.
    """
    _verify(ephemeral_public, GREET_SIG_CONTEXT + message, signature, "greeting packet signature")
