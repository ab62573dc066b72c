"""A KeySync device: the conditions (A.1.2) and actions (A.1.3) of the draft, and the
security contexts of its messages (A.1.6.3), with real keys (PyNaCl).

The generated `KeySync` machine calls the conditions and actions by name; the driver
(runtime.party) calls `seal`, `open`, `admit` and `receiving` around every message.

Choices where the draft is silent, each tested:
- TIDs are UUID version 4 (B.2). The negotiation id is the own negotiation base XOR the
  partner's challenge (openNegotiation, A.1.3.4).
- A device signs Sync messages with the default key of its first own identity, its
  "sender key"; grouped devices share that key, so "from the device group" means signed
  by a key of the group (fromGroupMember).
- Messages other than `unencrypted` ones are encrypted to every device key this device
  has seen on the channel (pEp attaches the sender's key to every message); `trusted`
  and the `attach_own_keys_*` contexts also require the signer to be trusted or of the
  group. Private keys travel only as attachments of `attach_own_keys_*` messages, and
  are imported only from messages admitted by those rules.
- "Key material" is the set of private keys a device holds; `KeyRing.material_digest`.
- `disable` (A.1.3.2) stops the machine (`Machine.stop`): it ends in End once the event
  that disabled it has run, whatever state the handler went to.

The device's state is a `DeviceState` record (`snapshot`, `restore`). What tells two
devices apart is the negotiation (challenge, response, negotiation id, partner), the keys
prepared and backed up, the keyring (`RingState`), whether it is disabled, how often it
led a key reset and how many key-carrying messages it sent; the rest (what it saw on the
channel, the message being handled, what it told the application) is kept in the record
but follows from those or from history, and tells no states apart.
"""

from __future__ import annotations

import random
import sys
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocols.keysync.envelope import DeviceKeys, EnvelopeError, Opened, open_envelope, seal
from protocols.keysync.keys import KeyRing, OwnIdentity, RingState
from protocols.keysync.trustwords import trustwords
from runtime.device import DeviceBase
from runtime.records import Security
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.keysync import KeySyncBindings

__all__ = ["Context", "DeviceState", "KeySyncDevice", "Notification"]

_SYNC_LENGTH = 2  # bytes of the Sync message length in an envelope's payload


@dataclass(frozen=True, slots=True)
class Notification:
    """What a show* action tells the application (A.1.3.12-19), or a timeout."""

    name: str
    trustwords: tuple[str, ...] = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> Notification:
        return self  # immutable: copies of a world (the explorer's) share it


@dataclass(frozen=True, slots=True)
class Context:
    """What the driver learnt about an incoming message from its envelope."""

    opened: Opened
    attached: tuple[DeviceKeys, ...]

    def __deepcopy__(self, memo: dict[int, Any]) -> Context:
        return self  # immutable: copies of a world (the explorer's) share it

    @property
    def sender(self) -> str:
        return self.opened.sender_fingerprint


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A KeySync device's state as a value (see the module's docstring)."""

    challenge: bytes
    response: bytes
    negotiation: bytes | None
    partner: str | None
    prepared: tuple[str, ...]
    backup: tuple[str, ...]
    ring: RingState
    is_disabled: bool
    resets: int
    keys_sent: int  # how many messages carried private keys
    backup_identities: tuple[OwnIdentity, ...] = field(compare=False)
    seen: tuple[tuple[str, bytes], ...] = field(compare=False)
    sent_keys_to: tuple[tuple[str, tuple[str, ...], bytes | None], ...] = field(compare=False)
    notifications: tuple[Notification, ...] = field(compare=False)
    context: Context | None = field(compare=False)
    handling: str | None = field(compare=False)
    received: tuple[str, ...] = field(compare=False)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


@dataclass(eq=False)
class KeySyncDevice(DeviceBase[DeviceState]):
    """One device's side of KeySync. `machine` is set once the machine exists."""

    name: str
    keyring: KeyRing
    rng: random.Random | SeededRandom = field(default_factory=random.Random)
    machine: Any = None
    # negotiation state (A.1.3.3, A.1.3.4, A.1.3.20)
    challenge: bytes = b""
    response: bytes = b""
    negotiation: bytes | None = None
    partner: str | None = None  # fpr of the partner's sender key
    # the message being handled (None while a user or signaled event is)
    context: Context | None = None
    handling: str | None = None
    # keys
    prepared: tuple[str, ...] = ()  # fprs to attach to the next attach_own_keys message
    backup: tuple[str, ...] = ()
    backup_identities: tuple[OwnIdentity, ...] = ()
    received: tuple[str, ...] = ()  # fprs attached to the message being handled
    seen: dict[str, bytes] = field(default_factory=dict)  # fpr -> X25519 key, from the channel
    sent_keys_to: list[tuple[str, tuple[str, ...], bytes | None]] = field(default_factory=list)
    is_disabled: bool = False
    resets: int = 0  # how often this device led a group key reset
    notifications: list[Notification] = field(default_factory=list)

    def snapshot(self) -> DeviceState:
        return DeviceState(self.challenge, self.response, self.negotiation, self.partner, self.prepared, self.backup,
                           self.keyring.snapshot(), self.is_disabled, self.resets, len(self.sent_keys_to),
                           self.backup_identities, tuple(self.seen.items()), tuple(self.sent_keys_to),
                           tuple(self.notifications), self.context, self.handling, self.received)

    def restore(self, state: DeviceState) -> None:
        self.challenge, self.response = state.challenge, state.response
        self.negotiation, self.partner = state.negotiation, state.partner
        self.prepared, self.backup, self.backup_identities = state.prepared, state.backup, state.backup_identities
        self.keyring = KeyRing.restore(state.ring)
        self.is_disabled, self.resets = state.is_disabled, state.resets
        self.seen = dict(state.seen)
        self.sent_keys_to = list(state.sent_keys_to)
        self.notifications = list(state.notifications)
        self.context, self.handling, self.received = state.context, state.handling, state.received

    # --- helpers

    def _tid(self) -> bytes:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).bytes

    @property
    def buffer(self) -> Any:
        return self.machine.buffer

    def _show(self, name: str, handshake: bool = False) -> None:
        words: tuple[str, ...] = ()
        if handshake and self.partner is not None:
            words = trustwords(self.keyring.primary, self.partner)
        self.notifications.append(Notification(name, words))
        self.machine.notify(name, words)

    def _identities(self, identities: tuple[OwnIdentity, ...] | None = None) -> tuple[Any, ...]:
        """Own identities as the generated Identity records, with their default keys."""
        # The record of the machine's own module: a compiled copy of the FSM (a mutant, a
        # variant) has its own Identity class, and records of two classes never compare equal.
        Identity = sys.modules[type(self.machine).__module__].Identity  # noqa: N806

        # The engine's PEP module (protocols/keysync_engine/asn.1/pEp.asn1) adds flags to the
        # draft's Identity; an own identity carries none (the engine's 0).
        extra = {"flags": 0} if "flags" in Identity.__dataclass_fields__ else {}
        chosen = identities if identities is not None else tuple(self.keyring.identities.values())
        return tuple(
            Identity(address=i.address, fpr=self.keyring.default[i.address], user_id=i.user_id,
                     username=i.username, comm_type=255, lang=i.lang, **extra)
            for i in sorted(chosen, key=lambda i: i.address)
        )

    @property
    def disabled(self) -> bool:
        return self.is_disabled

    def material_digest(self) -> str:
        return self.keyring.material_digest()

    # --- the driver's side: envelopes and security contexts (A.1.6.3)

    def capture(self, message: Any, to: str | None = None) -> tuple[DeviceKeys, frozenset[bytes], bytes]:
        """At `send`: the key to sign with, the keys to encrypt to, the keys to attach.

        Messages of the trusted contexts are encrypted only to trusted and group keys, so
        that private keys attached to them cannot be opened by any other device on the
        channel, whatever that device then does; the untrusted context goes to every
        device key seen on the channel."""
        security: Security = message.SECURITY
        attachment = b""
        if security.attaches_keys:
            attachment = self.keyring.export(list(self.prepared))
            self.sent_keys_to.append((message.NAME, self.prepared, self.negotiation))
        signer = self.keyring.signing_keys()
        ring = self.keyring
        if security.trusted:
            fprs = (ring.trusted | ring.group | set(ring.private)) - ring.mistrusted
            recipients = frozenset({signer.public} | {ring.encryption_key(f) for f in fprs if f in ring.public})
        else:
            recipients = frozenset({signer.public, *self.seen.values()})
        return signer, recipients, attachment

    def describe(self, captured: tuple[DeviceKeys, frozenset[bytes], bytes]
                 ) -> tuple[str, tuple[str, ...], tuple[bytes, ...]]:
        """The signer, the keys attached, and the keys encrypted to: two messages alike in
        these open alike on every device. (Without the recipients, a message a receiver
        cannot open and one it can, sent by one sender in two worlds, were one; the
        explorer told their worlds apart by that, and merged different states.)"""
        signer, recipients, attachment = captured
        return (signer.fingerprint, tuple(k.fingerprint for k in KeyRing.parse_export(attachment)),
                tuple(sorted(recipients)))

    def seal(self, message: Any, data: bytes, captured: tuple[DeviceKeys, frozenset[bytes], bytes]) -> bytes:
        signer, recipients, attachment = captured
        payload = len(data).to_bytes(_SYNC_LENGTH, "big") + data + attachment
        if not message.SECURITY.encrypted:
            return seal(payload, signer)
        return seal(payload, signer, recipients)

    def open(self, data: bytes) -> tuple[bytes, Context]:
        opened = open_envelope(data, list(self.keyring.private.values()))
        payload = opened.payload
        if len(payload) < _SYNC_LENGTH:
            raise EnvelopeError("payload truncated")
        n = int.from_bytes(payload[:_SYNC_LENGTH], "big")
        sync, attachment = payload[_SYNC_LENGTH:_SYNC_LENGTH + n], payload[_SYNC_LENGTH + n:]
        if len(sync) != n:
            raise EnvelopeError("payload truncated")
        try:
            attached = tuple(KeyRing.parse_export(attachment))
        except ValueError as e:
            raise EnvelopeError(str(e)) from e
        fpr = opened.sender_fingerprint
        if fpr not in self.keyring.mistrusted:
            self.seen.setdefault(fpr, opened.sender_public)
        return sync, Context(opened, attached)

    def admit(self, message: Any, context: Context) -> str | None:
        security: Security = message.SECURITY
        if security.encrypted and not context.opened.encrypted:
            return f"security={security.value} needs an encrypted message"
        if security.trusted:
            # Own keys count as trusted: the channel brings a device its own messages
            # back (1.2), and grouped devices sign with the keys they share.
            sender = context.sender
            ring = self.keyring
            if sender not in ring.trusted and sender not in ring.group and sender not in ring.private:
                return f"security={security.value}: sender key {sender[:8]} is neither trusted nor of the group"
        if context.attached and not security.attaches_keys:
            return f"keys attached to a {security.value} message"
        return None

    def receiving(self, message: Any, context: Context | None) -> None:
        self.handling = None if message is None else message.NAME
        if context is None:
            return
        self.context = context
        self.keyring.learn_public(context.opened.sender_verify_key, context.opened.sender_public)
        # "all decryptable Messages containing keys are implicitly processed and the
        # received keys saved" (2.2.2.1, note to step 13): admitted attachments only.
        received = []
        for keys in context.attached:
            received.append(self.keyring.add(keys))
        self.received = tuple(received)

    # --- conditions (A.1.2)

    def deviceGrouped(self) -> bool:
        return bool(self.keyring.group)

    def fromGroupMember(self) -> bool:
        return self.context is not None and self.context.sender in self.keyring.group

    def keyElectionWon(self) -> bool:
        return self.partner is not None and self.partner > self.keyring.primary

    def sameChallenge(self) -> bool:
        return bool(self.buffer.challenge == self.challenge)

    def sameNegotiation(self) -> bool:
        return self.negotiation is not None and self.buffer.negotiation == self.negotiation

    def sameNegotiationAndPartner(self) -> bool:
        return self.sameNegotiation() and self.context is not None and self.context.sender == self.partner

    def sameResponse(self) -> bool:
        return bool(self.buffer.response == self.response)

    def weAreOfferer(self) -> bool:
        # TIDs compare as numbers: big-endian bytes compare the same way.
        return bool(self.buffer.challenge > self.challenge)

    # --- actions (A.1.3)

    def backupOwnKeys(self) -> None:
        self.backup = self.prepared
        self.backup_identities = tuple(self.keyring.identities.values())

    def disable(self) -> None:
        self.is_disabled = True
        self.machine.stop()

    def newChallengeAndNegotiationBase(self) -> None:
        self.challenge, self.response = self._tid(), self._tid()
        self.buffer.challenge, self.buffer.response = self.challenge, self.response

    def openNegotiation(self) -> None:
        self.partner = None
        self.buffer.key = None
        self.negotiation = _xor(self.response, self.buffer.challenge)
        self.buffer.negotiation = self.negotiation

    def ownKeysAreDefaultKeys(self) -> None:
        self.keyring.add_to_group(self.keyring.default.values())
        self.keyring.sync = self.keyring.primary

    def prepareOwnKeys(self) -> None:
        self.buffer.ownIdentities = self._identities()
        self.prepared = tuple(sorted(self.keyring.private))

    def prepareOwnKeysFromBackup(self) -> None:
        self.buffer.ownIdentities = self._identities(self.backup_identities)
        self.prepared = self.backup

    def receivedKeysAreDefaultKeys(self) -> None:
        for identity in self.buffer.ownIdentities or ():
            if identity.fpr in self.keyring.private:
                self.keyring.default[identity.address] = identity.fpr
        self.keyring.sync = self.keyring.primary

    def resetOwnGroupedKeys(self) -> None:
        self.resets += 1
        fresh = self._reset_keys()
        self.keyring.add_to_group(fresh)
        self.machine.signal(self.machine.Event.KeyGen)  # share the new keys (Grouped: on KeyGen)

    def resetOwnKeysUngrouped(self) -> None:
        self._reset_keys()
        self.keyring.leave_group()
        self.keyring.sync = None

    def _reset_keys(self) -> list[str]:
        fresh = []
        for _, identity in sorted(self.keyring.identities.items()):
            seed = self.rng.getrandbits(256).to_bytes(32, "big")
            fresh.append(self.keyring.add_identity(identity, DeviceKeys.generate(seed)))
        return fresh

    def saveGroupKeys(self) -> None:
        for identity in self.buffer.ownIdentities or ():
            if identity.address not in self.keyring.identities:
                own = OwnIdentity(identity.address, identity.username, identity.user_id, identity.lang)
                self.keyring.identities[identity.address] = own
                if identity.fpr in self.keyring.private:
                    self.keyring.default[identity.address] = identity.fpr
        self.keyring.add_to_group(self.received)
        self.keyring.add_to_group(self.keyring.default.values())

    def timed_out(self, state: str) -> None:
        self.notifications.append(Notification(f"timeout in {state}"))

    def showBeingInGroup(self) -> None:
        self._show("showBeingInGroup")

    def showBeingSole(self) -> None:
        self._show("showBeingSole")

    def showDeviceAccepted(self) -> None:
        self._show("showDeviceAccepted")

    def showDeviceAdded(self) -> None:
        self._show("showDeviceAdded")

    def showGroupCreated(self) -> None:
        self._show("showGroupCreated")

    def showGroupedHandshake(self) -> None:
        self._show("showGroupedHandshake", handshake=True)

    def showJoinGroupHandshake(self) -> None:
        self._show("showJoinGroupHandshake", handshake=True)

    def showSoleHandshake(self) -> None:
        self._show("showSoleHandshake", handshake=True)

    def storeNegotiation(self) -> None:
        self.negotiation = self.buffer.negotiation
        self.partner = self.context.sender if self.context is not None else None

    def storeThisKey(self) -> None:
        self.partner = self.buffer.key

    def tellWeAreGrouped(self) -> None:
        self.buffer.is_group = True

    def tellWeAreNotGrouped(self) -> None:
        self.buffer.is_group = False

    def trustThisKey(self) -> None:
        # On Accept the partner's stored key; on GroupTrustThisKey the key it carries.
        key = self.buffer.key if self.handling == "GroupTrustThisKey" else self.partner
        if key is None:
            return
        self.keyring.trust(key)
        self.buffer.key = key

    def untrustThisKey(self) -> None:
        if self.partner is not None:
            self.keyring.untrust(self.partner)
        self.buffer.key = None

    def useOwnChallenge(self) -> None:
        self.buffer.challenge = self.challenge

    def useOwnResponse(self) -> None:
        self.buffer.response = self.response

    def useThisKey(self) -> None:
        self.buffer.key = self.partner


if TYPE_CHECKING:
    def _conforms(device: KeySyncDevice) -> KeySyncBindings:
        """mypy checks the device against the interface generated from the FSM: an
        action or condition renamed in keysync.fsm fails `make check`."""
        return device
