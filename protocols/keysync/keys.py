"""Own identities and keys of a KeySync device (draft-pep-keysync A.1.2, A.1.3).

A device has own identities (one per account) and key pairs; each own identity has a
default key. Forming or joining a device group copies every own private key to every
device of the group (2.2.1.1 steps 10-11, 2.2.2.1 steps 12-13), and the received keys or
the own keys become the identities' defaults. Trust is what the user granted in a
handshake (trustThisKey) and withdrew on Cancel or Reject (untrustThisKey).

Key pairs are real: an Ed25519 signing key and an X25519 encryption key (PyNaCl), named
by a fingerprint over both public keys.

A keyring's state as a value is a `RingState` (`snapshot`, `KeyRing.restore`): what
tells two keyrings apart is which private keys they hold (by fingerprint), the defaults,
trust and the group; the key material itself follows from the fingerprints, and the
public keys and identities learnt are kept in the record without telling states apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocols.keysync.envelope import DeviceKeys

__all__ = ["KeyRing", "OwnIdentity", "RingState"]


@dataclass(frozen=True, slots=True)
class OwnIdentity:
    """An own identity: the account an address belongs to (B.2 Identity, less the key)."""

    address: str
    username: str
    user_id: str = "pEp_own_userId"
    lang: str = "en"

    def __deepcopy__(self, memo: dict[int, Any]) -> OwnIdentity:
        return self  # immutable: copies of a world (the explorer's) share it


@dataclass(frozen=True, slots=True)
class RingState:
    """A keyring as a value (see the module's docstring for what is compared)."""

    private: frozenset[str]
    default: tuple[tuple[str, str], ...]  # (address, fpr), by address
    trusted: frozenset[str]
    mistrusted: frozenset[str]
    group: frozenset[str]
    sync: str | None
    keys: tuple[tuple[str, DeviceKeys], ...] = field(compare=False)  # (fpr, private keys), as added
    public: tuple[tuple[str, bytes], ...] = field(compare=False)
    identities: tuple[tuple[str, OwnIdentity], ...] = field(compare=False)


@dataclass
class KeyRing:
    """What a device holds: key pairs by fingerprint, defaults per address, trust."""

    private: dict[str, DeviceKeys] = field(default_factory=dict)
    public: dict[str, bytes] = field(default_factory=dict)  # fpr -> verify key || box key
    identities: dict[str, OwnIdentity] = field(default_factory=dict)  # address -> identity
    default: dict[str, str] = field(default_factory=dict)  # address -> fpr
    # Frozensets, changed by the methods below only, by rebinding: a snapshot and the
    # copies restored from it share them.
    trusted: frozenset[str] = frozenset()
    mistrusted: frozenset[str] = frozenset()
    group: frozenset[str] = frozenset()  # fingerprints of the device group's keys
    # The key a grouped device signs Sync messages with: the group's default key when the
    # group formed. New keys (KeyGen, key reset) are shared signed with it, so the other
    # members, who do not know them yet, still see a message from the group.
    sync: str | None = None

    def snapshot(self) -> RingState:
        return RingState(frozenset(self.private), tuple(sorted(self.default.items())), self.trusted,
                         self.mistrusted, self.group, self.sync, tuple(self.private.items()),
                         tuple(self.public.items()), tuple(self.identities.items()))

    @classmethod
    def restore(cls, state: RingState) -> KeyRing:
        return cls(dict(state.keys), dict(state.public), dict(state.identities),
                   dict(state.default), state.trusted, state.mistrusted, state.group, state.sync)

    def trust(self, fpr: str) -> None:
        """The user trusts this key (trustThisKey, A.1.3)."""
        self.trusted |= {fpr}
        self.mistrusted -= {fpr}

    def untrust(self, fpr: str) -> None:
        """The trust granted in a handshake is withdrawn (untrustThisKey)."""
        self.trusted -= {fpr}

    def add_to_group(self, fprs: Iterable[str]) -> None:
        self.group |= frozenset(fprs)

    def leave_group(self) -> None:
        self.group = frozenset()

    def add(self, keys: DeviceKeys) -> str:
        fpr = keys.fingerprint
        self.private[fpr] = keys
        self.public[fpr] = keys.verify_key + keys.public
        return fpr

    def add_identity(self, identity: OwnIdentity, keys: DeviceKeys) -> str:
        fpr = self.add(keys)
        self.identities[identity.address] = identity
        self.default[identity.address] = fpr
        return fpr

    def learn_public(self, verify_key: bytes, public: bytes) -> str:
        fpr = hashlib.sha256(verify_key + public).hexdigest()[:40].upper()
        self.public.setdefault(fpr, verify_key + public)
        return fpr

    @property
    def primary(self) -> str:
        """The default key of the first own identity: the key that signs Sync messages
        (the Active Transport's account, A.1.2.3)."""
        first = sorted(self.identities)[0]
        return self.default[first]

    def signing_keys(self) -> DeviceKeys:
        if self.sync is not None and self.sync in self.private:
            return self.private[self.sync]
        return self.private[self.primary]

    def encryption_key(self, fpr: str) -> bytes:
        return self.public[fpr][32:]

    def material_digest(self) -> str:
        """Equal exactly when two devices hold the same private keys (defaults aside:
        which key is default is a per-device choice the key reset protocol settles)."""
        h = hashlib.sha256()
        for fpr in sorted(self.private):
            k = self.private[fpr]
            h.update(fpr.encode() + bytes(k.signing) + bytes(k.encryption))
        return h.hexdigest()[:16]

    def export(self, fprs: list[str]) -> bytes:
        """Private key material for an attachment: fpr (20) + seeds (32 + 32) each."""
        out = bytearray()
        for fpr in sorted(fprs):
            k = self.private[fpr]
            out += bytes.fromhex(fpr) + bytes(k.signing) + bytes(k.encryption)
        return bytes(out)

    @staticmethod
    def parse_export(data: bytes) -> list[DeviceKeys]:
        """Keys from an attachment; raises ValueError for malformed or mislabelled data."""
        from nacl.public import PrivateKey
        from nacl.signing import SigningKey

        size = 20 + 32 + 32
        if len(data) % size:
            raise ValueError(f"key attachment of {len(data)} bytes is not a whole number of keys")
        keys = []
        for i in range(0, len(data), size):
            fpr, sign, box = data[i:i + 20], data[i + 20:i + 52], data[i + 52:i + size]
            k = DeviceKeys(SigningKey(sign), PrivateKey(box))
            if k.fingerprint != fpr.hex().upper():
                raise ValueError("key attachment: fingerprint does not match the key")
            keys.append(k)
        return keys
