"""Status's X3DH and prekey bundles over secp256k1, as status-go computes them.

Sans-IO and pure: every function maps bytes to bytes and nothing is mutated. Randomness is
drawn only where status-go draws a fresh private key, from a `random(n) -> bytes` the caller
passes, so tests and the explorer are deterministic.

Sources. The Status PFS specification ("Initial Conversational Security Specification",
sections 2.2-2.4), and status-go at commit c72f4913 (github.com/status-im/status-go):
protocol/encryption/x3dh.go (buildSignatureMaterial, SignBundle, NewBundleContainer,
ExtractIdentity, PerformDH, getSharedSecret, x3dhActive, x3dhPassive, PerformActiveX3DH,
PerformPassiveX3DH), protocol/encryption/protocol_message.proto (Bundle, SignedPreKey),
protocol/encryption/protocol.go (protocolVersion), protocol/encryption/encryptor.go
(defaultEncryptorConfig, CreateBundle), protocol/encryption/persistence.go (bundle versions),
eth-node/crypto/gethcrypto.go (Keccak256, ToECDSA, DecompressPubkey, SigToPub,
PubkeyToAddress), eth-node/crypto/crypto.go (Sign) and eth-node/crypto/ecies/ecies.go
(GenerateShared). Where the specification and status-go differ we follow status-go, and a
comment marked "SPEC:" beside the code says what the specification says instead; where we
differ from status-go a comment marked "STATUS-GO:" says how and why.

Keys. Private keys are 32-byte big-endian scalars in [1, n-1] (go-ethereum's ToECDSA, strict
about the length); public keys travel as 33-byte compressed points (CompressPubkey,
DecompressPubkey). Every key of the protocol, identity, signed prekey, ephemeral and ratchet
key alike, is a secp256k1 key.

Diffie-Hellman (x3dh.go PerformDH). ECIES's GenerateShared(pub, 16, 16): the x-coordinate of
d·P as a 32-byte big-endian number, left-padded: no hashing, no KDF, no cofactor.

X3DH (x3dh.go). Without one-time prekeys. For initiator A (identity IK_A, ephemeral EK_A)
and responder B (identity IK_B, signed prekey SPK_B):

    DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
    SK  = Keccak-256(DH1 || DH2 || DH3)                          (32 bytes)

B computes the same three values from its side (x3dhPassive). SK is the root key, and the
first chain key of both chains, of the Double Ratchet (protocols/status/ratchet.py).

Bundles (x3dh.go, protocol_message.proto). A Bundle carries the identity key, one
SignedPreKey per installation id (the prekey, its version, the protocol version), a
timestamp in Unix nanoseconds and a 65-byte recoverable signature [R || S || V] (V in {0, 1})
by the identity key over Keccak-256 of

    for each installation id in byte order: id || signed_pre_key || decimal(version)
    then, if the timestamp is not 0: decimal(timestamp)

Verification recovers the signer from the signature and accepts the bundle when its
Ethereum address (the last 20 bytes of Keccak-256 of the uncompressed point) is the
identity's. The identity key itself, the protocol versions and the map's order are not
signed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from coincurve import PrivateKey, PublicKey
from Crypto.Hash import keccak

from runtime.errors import VerificationError
from runtime.memo import pure

__all__ = [
    "BUNDLE_REFRESH_INTERVAL_MS",
    "MAX_INSTALLATIONS",
    "PRIVATE_KEY_SIZE",
    "PROTOCOL_VERSION",
    "PUBLIC_KEY_SIZE",
    "SECP256K1_ORDER",
    "SHARED_KEY_SIZE",
    "SIGNATURE_SIZE",
    "SSK_LEN",
    "Bundle",
    "BundleError",
    "KeyPair",
    "Random",
    "SignedPreKey",
    "StatusCryptoError",
    "keccak256",
    "new_bundle",
    "new_key_pair",
    "perform_dh",
    "public_key",
    "pubkey_to_address",
    "sign_bundle",
    "signature_material",
    "verify_bundle",
    "x3dh_initiate",
    "x3dh_shared_key",
    "x3dh_shared_key_responder",
]

Random = Callable[[int], bytes]
"""`random(n)` returns n bytes; every private key a call generates is drawn from it."""

PRIVATE_KEY_SIZE = 32
PUBLIC_KEY_SIZE = 33
SIGNATURE_SIZE = 65
SHARED_KEY_SIZE = 32
"""Keccak-256's output: the X3DH shared key."""

SSK_LEN = 16
"""x3dh.go `sskLen`: PerformDH asks ECIES's GenerateShared for sskLen + sskLen = 32 bytes,
the whole x-coordinate."""

PROTOCOL_VERSION = 1
"""protocol.go `protocolVersion`: what NewBundleContainer puts in SignedPreKey.protocol_version."""

MAX_INSTALLATIONS = 3
"""encryptor.go defaultEncryptorConfig `MaxInstallations`: the devices kept synchronised."""

BUNDLE_REFRESH_INTERVAL_MS = 24 * 60 * 60 * 1000
"""encryptor.go defaultEncryptorConfig `BundleRefreshInterval`: CreateBundle makes a new
signed prekey once the bundle is older than this (the spec's "once every 24 hours")."""

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""n, the order of secp256k1's group (gethcrypto.go `secp256k1N`)."""

_UINT32 = 1 << 32
_INT64 = 1 << 63


class StatusCryptoError(VerificationError, ValueError):
    """A key or signature from the network that cannot be used: a public key that is not a
    compressed secp256k1 point, a signature of the wrong shape. A remote fault (a
    `runtime.errors.VerificationError`, so drivers drop the message and trace it); also a
    `ValueError`. Nothing is changed by the failed call."""

    code: ClassVar[str] = "status-crypto"

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


class BundleError(StatusCryptoError):
    """A bundle whose signature does not verify (x3dh.go ExtractIdentity)."""

    code: ClassVar[str] = "status-bundle"


# --- primitives --------------------------------------------------------------------------


def keccak256(*parts: bytes) -> bytes:
    """Keccak-256 (Ethereum's, with the original Keccak padding: not SHA3-256) of the parts
    concatenated (gethcrypto.go Keccak256)."""
    h = keccak.new(digest_bits=256)
    for part in parts:
        h.update(part)
    return h.digest()


def _check_private(secret: bytes, what: str = "private key") -> bytes:
    # ToECDSA is strict: exactly 256 bits, 0 < d < n. Our own keys are the caller's to get
    # right, so this is a plain ValueError (a local fault), not a StatusCryptoError.
    if not isinstance(secret, bytes) or len(secret) != PRIVATE_KEY_SIZE:
        raise ValueError(f"{what}: a secp256k1 private key is {PRIVATE_KEY_SIZE} bytes")
    if not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
        raise ValueError(f"{what}: not in [1, n-1]")
    return secret


def _private(secret: bytes, what: str = "private key") -> PrivateKey:
    # coincurve's PrivateKey computes two public keys at once (the point and BIP-340's
    # x-only one: two base-point multiplications): for signing only.
    return PrivateKey(_check_private(secret, what))


def _public(point: bytes, what: str = "public key") -> PublicKey:
    # DecompressPubkey: 33 bytes, 0x02 or 0x03, an x on the curve. Keys come from the
    # network (bundles, headers), so a bad one is a remote fault.
    if not isinstance(point, bytes) or len(point) != PUBLIC_KEY_SIZE or point[0] not in (2, 3):
        raise StatusCryptoError(what, "not a 33-byte compressed secp256k1 point")
    try:
        return _decompressed(point)
    except ValueError as exc:
        raise StatusCryptoError(what, "not a point of secp256k1") from exc


@pure(256)
def _decompressed(point: bytes) -> PublicKey:
    # A ratchet's DH step multiplies the same remote key twice, and X3DH checks keys it then
    # uses: decompressing (a square root mod p) is a sixth of a multiplication. coincurve's
    # PublicKey is not changed by multiply(), so a cached one can be shared; only points
    # that parse are cached, and at most 256 of them.
    return PublicKey(point)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPair:
    """A secp256k1 key pair: the 32-byte scalar and the 33-byte compressed point."""

    private: bytes = field(repr=False)
    public: bytes


def public_key(private: bytes) -> bytes:
    """The compressed public key of a private key (CompressPubkey(&ToECDSA(d).PublicKey))."""
    return PublicKey.from_valid_secret(_check_private(private)).format(compressed=True)


def new_key_pair(random: Random) -> KeyPair:
    """A fresh secp256k1 key pair (crypto.GenerateKey): the first 32-byte draw of `random`
    that is a valid scalar, so a `random` that hands out chosen keys gets exactly those."""
    # STATUS-GO: Go's ecdsa.GenerateKey reads its own amount of entropy and reduces it
    # modulo n-1; keys from it are as uniform as ours, but not the same function of the
    # bytes. Rejection sampling keeps "the bytes are the key", which the tests' fixed keys
    # (tests/vectors/status-go-harness.json) rely on. A draw is out of range with
    # probability about 2^-128.
    while True:
        secret = random(PRIVATE_KEY_SIZE)
        if len(secret) != PRIVATE_KEY_SIZE:
            raise ValueError(f"random({PRIVATE_KEY_SIZE}) returned {len(secret)} bytes")
        if 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            return KeyPair(private=secret, public=public_key(secret))


def perform_dh(private: bytes, public: bytes) -> bytes:
    """secp256k1 Diffie-Hellman as status-go does it (x3dh.go PerformDH, ECIES GenerateShared
    with 16 + 16 bytes): the 32-byte big-endian x-coordinate of private·public, unhashed."""
    point = _public(public).multiply(_check_private(private))
    return point.format(compressed=False)[1 : 1 + SHARED_KEY_SIZE]


def pubkey_to_address(public: bytes) -> bytes:
    """The 20-byte Ethereum address of a public key (PubkeyToAddress): the last 20 bytes of
    Keccak-256 of the 64-byte uncompressed point without its 0x04 prefix."""
    return keccak256(_public(public).format(compressed=False)[1:])[12:]


# --- X3DH --------------------------------------------------------------------------------


def _shared_secret(dh1: bytes, dh2: bytes, dh3: bytes) -> bytes:
    # SPEC: section 2.4.1 defers to Signal's X3DH, whose SK = HKDF(F || DH1 || DH2 || DH3)
    # with F = 32 bytes 0xFF; status-go (getSharedSecret) hashes the bare concatenation
    # with Keccak-256: no F, no HKDF, no info string.
    return keccak256(dh1, dh2, dh3)


def x3dh_shared_key(
    our_identity_private: bytes,
    our_ephemeral_private: bytes,
    their_identity_public: bytes,
    their_signed_prekey_public: bytes,
) -> bytes:
    """The initiator's X3DH shared key (x3dh.go x3dhActive): Keccak-256 of DH(IK_A, SPK_B) ||
    DH(EK_A, IK_B) || DH(EK_A, SPK_B). Raises StatusCryptoError for a bad public key."""
    # SPEC: the spec lists ECIES among X3DH's primitives; status-go uses only ECIES's
    # GenerateShared, the raw ECDH above, and encrypts nothing with ECIES here.
    dh1 = perform_dh(our_identity_private, their_signed_prekey_public)
    dh2 = perform_dh(our_ephemeral_private, their_identity_public)
    dh3 = perform_dh(our_ephemeral_private, their_signed_prekey_public)
    return _shared_secret(dh1, dh2, dh3)


def x3dh_shared_key_responder(
    our_identity_private: bytes,
    our_signed_prekey_private: bytes,
    their_identity_public: bytes,
    their_ephemeral_public: bytes,
) -> bytes:
    """The responder's X3DH shared key (x3dh.go x3dhPassive): Keccak-256 of DH(SPK_B, IK_A) ||
    DH(IK_B, EK_A) || DH(SPK_B, EK_A), equal to the initiator's."""
    dh1 = perform_dh(our_signed_prekey_private, their_identity_public)
    dh2 = perform_dh(our_identity_private, their_ephemeral_public)
    dh3 = perform_dh(our_signed_prekey_private, their_ephemeral_public)
    return _shared_secret(dh1, dh2, dh3)


def x3dh_initiate(
    our_identity_private: bytes,
    their_identity_public: bytes,
    their_signed_prekey_public: bytes,
    random: Random,
) -> tuple[bytes, KeyPair]:
    """PerformActiveX3DH: a fresh ephemeral key from `random`, and the shared key with it.
    The ephemeral public key travels in X3DHHeader.key, the signed prekey in X3DHHeader.id."""
    # Check the peer's keys before drawing, as PerformActiveX3DH decompresses them first.
    _public(their_identity_public, "identity key")
    _public(their_signed_prekey_public, "signed prekey")
    ephemeral = new_key_pair(random)
    shared = x3dh_shared_key(our_identity_private, ephemeral.private, their_identity_public,
                             their_signed_prekey_public)
    return shared, ephemeral


# --- bundles -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedPreKey:
    """protocol_message.proto SignedPreKey: one installation's signed prekey (the bytes as
    they travel, normally a 33-byte compressed point), its version (persistence.go counts
    an installation's bundles from 1) and the protocol version (not signed)."""

    # SPEC: section 2.4.1's SignedPreKey has fields 1 and 2 only; status-go's
    # protocol_message.proto adds protocol_version = 3, outside the signature.
    signed_pre_key: bytes
    version: int = 0
    protocol_version: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.signed_pre_key, bytes):
            raise TypeError("signed_pre_key must be bytes")
        for name in ("version", "protocol_version"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < _UINT32:
                raise ValueError(f"{name} is a uint32")


def _installation_order(installation_id: str) -> bytes:
    # Go's sort.Strings compares bytes; protobuf strings are UTF-8, whose byte order is
    # the code-point order. encode() also refuses what is not valid UTF-8 (lone surrogates).
    return installation_id.encode("utf-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """protocol_message.proto Bundle: identity (33-byte compressed), the signed prekeys by
    installation id (a protobuf map: kept here as pairs sorted by id, the order the signature
    uses), the 65-byte signature, the timestamp in Unix nanoseconds (int64)."""

    identity: bytes
    signed_pre_keys: tuple[tuple[str, SignedPreKey], ...]
    signature: bytes = b""
    timestamp: int = 0

    def __post_init__(self) -> None:
        pairs = tuple(self.signed_pre_keys)
        for pair in pairs:
            if (not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str)
                    or not isinstance(pair[1], SignedPreKey)):
                raise TypeError("signed_pre_keys holds (installation id, SignedPreKey) pairs")
        ordered = tuple(sorted(pairs, key=lambda pair: _installation_order(pair[0])))
        ids = [installation_id for installation_id, _ in ordered]
        if len(set(ids)) != len(ids):
            raise ValueError("an installation id appears twice (signed_pre_keys is a map)")
        object.__setattr__(self, "signed_pre_keys", ordered)
        if not isinstance(self.identity, bytes) or not isinstance(self.signature, bytes):
            raise TypeError("identity and signature are bytes")
        if not isinstance(self.timestamp, int) or not -_INT64 <= self.timestamp < _INT64:
            raise ValueError("timestamp is an int64")

    @classmethod
    def create(
        cls,
        identity: bytes,
        signed_pre_keys: Mapping[str, SignedPreKey] | Iterable[tuple[str, SignedPreKey]],
        *,
        signature: bytes = b"",
        timestamp: int = 0,
    ) -> Bundle:
        """A bundle from a mapping (or pairs) of installation id to SignedPreKey."""
        items = signed_pre_keys.items() if isinstance(signed_pre_keys, Mapping) else signed_pre_keys
        return cls(identity=identity, signed_pre_keys=tuple(items), signature=signature, timestamp=timestamp)

    def prekey(self, installation_id: str) -> SignedPreKey | None:
        """The signed prekey of an installation, if the bundle has one."""
        for candidate, prekey in self.signed_pre_keys:
            if candidate == installation_id:
                return prekey
        return None

    def installations(self) -> tuple[str, ...]:
        """The installation ids, in byte order."""
        return tuple(installation_id for installation_id, _ in self.signed_pre_keys)


def signature_material(bundle: Bundle) -> bytes:
    """What a bundle's signature signs, Keccak-256 of which is signed (buildSignatureMaterial):
    for each installation id in byte order, id || signed_pre_key || decimal version; then the
    decimal timestamp unless it is 0."""
    # SPEC: section 2.4.1 gives "installation-id-1signed-pre-key1version1installation-id2...",
    # and "Sig(IK, Encode(SPK))"; status-go also appends the timestamp (kept out when 0 for
    # bundles made before it was signed). Version and timestamp are decimal ASCII
    # (strconv.FormatUint, strconv.FormatInt: a negative timestamp keeps its '-').
    parts: list[bytes] = []
    for installation_id, prekey in bundle.signed_pre_keys:  # already sorted by id
        parts += [_installation_order(installation_id), prekey.signed_pre_key, str(prekey.version).encode("ascii")]
    if bundle.timestamp != 0:
        parts.append(str(bundle.timestamp).encode("ascii"))
    return b"".join(parts)


def sign_bundle(identity_private: bytes, bundle: Bundle) -> bytes:
    """The 65-byte signature [R || S || V] of a bundle (SignBundle: crypto.Sign over Keccak-256
    of the signature material; libsecp256k1's RFC 6979 nonce, low S, V in {0, 1})."""
    # STATUS-GO: SignBundle first sets the bundle's timestamp to time.Now().UnixNano(), and
    # CreateBundle re-signs on every call, so each bundle it hands out is new. Being pure we
    # sign the timestamp the bundle carries: set it (dataclasses.replace) before signing.
    digest = keccak256(signature_material(bundle))
    return _private(identity_private, "identity key").sign_recoverable(digest, hasher=None)


def verify_bundle(bundle: Bundle) -> bytes:
    """The identity key (33-byte compressed) that signed the bundle (VerifyBundle /
    ExtractIdentity), or BundleError: the signer is recovered from the signature over
    Keccak-256 of the signature material and must have the identity's address."""
    identity = _public(bundle.identity, "bundle identity")
    signature = bundle.signature
    # SigToPub (secp256k1.RecoverPubkey): exactly 65 bytes, recovery id below 4.
    if len(signature) != SIGNATURE_SIZE:
        raise BundleError("bundle signature", f"a signature is {SIGNATURE_SIZE} bytes, not {len(signature)}")
    if signature[64] >= 4:
        raise BundleError("bundle signature", "invalid signature recovery id")
    digest = keccak256(signature_material(bundle))
    try:
        recovered = PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except ValueError as exc:
        raise BundleError("bundle signature", "no key recovers from it") from exc
    recovered_public = recovered.format(compressed=True)
    # ExtractIdentity compares addresses, not points: the same test short of a Keccak
    # collision, kept as status-go writes it.
    if pubkey_to_address(recovered_public) != keccak256(identity.format(compressed=False)[1:])[12:]:
        raise BundleError("bundle signature", "identity key and signature mismatch")
    return recovered_public


def new_bundle(
    identity_private: bytes,
    installation_id: str,
    timestamp: int,
    random: Random,
    *,
    version: int = 1,
    protocol_version: int = PROTOCOL_VERSION,
) -> tuple[Bundle, bytes]:
    """A signed one-installation bundle with a fresh signed prekey from `random`, and that
    prekey's private key (NewBundleContainer, then CreateBundle's SignBundle)."""
    # NewBundleContainer leaves version 0; AddPrivateBundle stores it as the installation's
    # last version + 1, and CreateBundle reads it back from there before signing, so the
    # bundles status-go publishes start at version 1.
    prekey = new_key_pair(random)
    unsigned = Bundle.create(
        public_key(identity_private),
        {installation_id: SignedPreKey(signed_pre_key=prekey.public, version=version,
                                       protocol_version=protocol_version)},
        timestamp=timestamp,
    )
    signature = sign_bundle(identity_private, unsigned)
    return Bundle(identity=unsigned.identity, signed_pre_keys=unsigned.signed_pre_keys,
                  signature=signature, timestamp=timestamp), prekey.private
