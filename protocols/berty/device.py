"""A Berty account's device in the contact request: the bindings of protocols/berty/berty.fsm.

One class serves both roles, as the fsm does: a device configured to respond listens on
its account's public rendezvous point; a device that knows another account's contact
(its account key and rendezvous seed, from a QR code or a link) may request it.

What it keeps (`ContactState`, its state as a value):

- the rendezvous seed, and whether the device listens on the point it gives (`listening`
  is what the driver keeps the transport in step with);
- the handshake under way: the own ephemeral key, the peer's, the party at the other end
  of the stream, a.b and the peer's account key once authenticated;
- the outcomes: the requests this account sent (the Responder's account key and the
  contact group), the requests it received and what its user did with them, the
  accounts it blocked, the contacts it added.

The cryptography is protocols/berty/crypto.py, as weshnet computes it. A message that
does not verify makes its condition false (the fsm ignores it) and is noted for people
(`rejected`, which tells no states apart): nothing else changes, so a replayed or
altered message leaves the device as it was.

The envelope is runtime.framing's: it names the other end of the stream, which is whom
the answers go to; it proves nothing, the handshake's boxes do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from protocols.berty import crypto
from protocols.berty.crypto import Ed25519KeyPair, EphemeralKeyPair, HandshakeError
from runtime.device import DeviceBase
from runtime.framing import NamedEnvelope
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.berty import ContactRequestBindings

__all__ = ["ANSWERED", "REQUESTER", "RESPONDER", "BertyDevice", "Contact", "ContactState", "Handshake", "point_address"]

# A session's role: the Requester's, completed at step 4; the Responder's, recorded at
# step 5; and the Responder's signature of a.b given at step 4 (`answered`), which is all a
# Requester's completion rests on.
REQUESTER, RESPONDER, ANSWERED = "requester", "responder", "answered"
_HELLOS = {"RequesterHello": crypto.Step.REQUESTER_HELLO, "ResponderHello": crypto.Step.RESPONDER_HELLO}

# Simulated time 0 is this instant: rendezvous points are computed for a date.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def point_address(account: bytes, seed: bytes, when: datetime,
                  rotation: timedelta = crypto.STATIC_ROTATION_INTERVAL) -> str:
    """The transport address of an account's public rendezvous point at `when`: the point's
    rotation topic, as weshnet announces it (the "rv:" prefix keeps addresses apart from
    party names)."""
    return "rv:" + crypto.contact_request_rendezvous(account, seed, when, rotation).rotation_topic


@dataclass(frozen=True, slots=True)
class Contact:
    """What a user hands over to be added: an account key and its rendezvous seed."""

    account: bytes
    seed: bytes

    def __deepcopy__(self, memo: dict[int, Any]) -> Contact:
        return self  # immutable: copies of a world (the explorer's) share it


@dataclass(frozen=True, slots=True)
class Handshake:
    """One contact request handshake, as far as it went: the own and the peer's ephemeral
    keys, the stream's other end, the secrets computed so far and the peer's account key
    once known (the Requester knows it from the start; the Responder from step 3)."""

    ephemeral: EphemeralKeyPair
    peer: str | None = None  # the party at the other end of the stream
    peer_ephemeral: bytes | None = None
    ab: bytes | None = None  # a.b: the ephemerals' precomputed box key
    a_b: bytes | None = None  # a.B: the Requester's ephemeral with the Responder's account
    peer_account: bytes | None = None


@dataclass(frozen=True, slots=True)
class ContactState:
    """A device's state as a value. The message being handled, its sender and the notes
    of rejected messages tell no states apart."""

    seed: bytes  # this account's public rendezvous seed
    published: str | None  # the address of the point it listens on, or None
    handshake: Handshake | None
    sent: tuple[tuple[bytes, bytes], ...]  # requests sent: (Responder's account, contact group id)
    requests: tuple[tuple[bytes, bytes], ...]  # incoming: (Requester's account, its a.b), the user to answer
    contacts: tuple[tuple[bytes, bytes], ...]  # accepted: (account, contact group id)
    discarded: tuple[bytes, ...]
    blocked: frozenset[bytes]
    sessions: tuple[tuple[str, bytes, bytes], ...]  # handshakes: (role, peer account, a.b); see ANSWERED
    message: Any = field(compare=False)
    sender: str | None = field(compare=False)
    rejected: tuple[str, ...] = field(compare=False)


@dataclass(eq=False)
class BertyDevice(NamedEnvelope, DeviceBase[ContactState]):
    """A device of an account: a Responder (`responds`) and/or a Requester of `contact`."""

    name: str
    account: Ed25519KeyPair
    responds: bool = False  # listens on its public rendezvous point for contact requests
    contact: Contact | None = None  # whom this device's user may request
    # Not an honest party (the invariants judge the others); one that listens on another
    # account's point, with that account's key and seed but its own private key.
    attacker: bool = False
    listens_as: bytes | None = None
    rotation: timedelta = crypto.STATIC_ROTATION_INTERVAL  # weshnet's: points do not rotate
    rng: random.Random | SeededRandom = field(default_factory=random.Random)
    machine: Any = None
    # state (ContactState)
    seed: bytes = b""
    published: str | None = None
    handshake: Handshake | None = None
    sent: tuple[tuple[bytes, bytes], ...] = ()
    requests: tuple[tuple[bytes, bytes], ...] = ()
    contacts: tuple[tuple[bytes, bytes], ...] = ()
    discarded: tuple[bytes, ...] = ()
    blocked: frozenset[bytes] = frozenset()
    sessions: tuple[tuple[str, bytes, bytes], ...] = ()
    message: Any = None
    sender_name: str | None = None
    rejected: tuple[str, ...] = ()

    def snapshot(self) -> ContactState:
        return ContactState(self.seed, self.published, self.handshake, self.sent, self.requests, self.contacts,
                            self.discarded, self.blocked, self.sessions, self.message, self.sender_name,
                            self.rejected)

    def restore(self, state: ContactState) -> None:
        self.seed, self.published, self.handshake = state.seed, state.published, state.handshake
        self.sent, self.requests, self.contacts = state.sent, state.requests, state.contacts
        self.discarded, self.blocked, self.sessions = state.discarded, state.blocked, state.sessions
        self.message, self.sender_name, self.rejected = state.message, state.sender, state.rejected

    # --- what the application, the scenarios and the invariants read

    @property
    def buffer(self) -> Any:
        return self.machine.buffer

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.clock())

    def own_point(self) -> str:
        return point_address(self.listens_as or self.account.public, self.seed, self.now(), self.rotation)

    def group_with(self, account: bytes) -> crypto.ContactGroup:
        return crypto.contact_group(self.account, account)

    def _reject(self, error: HandshakeError) -> bool:
        self.rejected = (*self.rejected, str(error))
        self.machine.notify("rejected", (error.step.value,))
        return False

    # --- the driver's side

    def listening(self) -> frozenset[str]:
        return frozenset({self.published}) if self.published is not None else self.NOWHERE

    def admit(self, message: Any, sender: str) -> str | None:
        if sender == self.name:
            return "own message"
        if message.NAME in _HELLOS:
            try:
                crypto.check_ephemeral_public(bytes(message.ephemeral), _HELLOS[message.NAME])
            except HandshakeError as e:
                return str(e)
        return None

    def receiving(self, message: Any, sender: str | None) -> None:
        self.message, self.sender_name = message, sender

    def material_digest(self) -> str:
        """The contact groups this account is in: equal digests, the same groups."""
        groups = sorted({g for _, g in self.sent} | {g for _, g in self.contacts})
        return b"".join(groups).hex()

    def timed_out(self, state: str) -> None:
        self.rejected = (*self.rejected, f"timeout in {state}")

    # --- conditions

    def responding(self) -> bool:
        return self.responds

    def knowsResponder(self) -> bool:
        return self.contact is not None

    def requesterAuthentic(self) -> bool:
        """Step 3 opens under sha256(a.b || a.B) and its signature of a.b verifies, from the
        party this handshake answered."""
        hs = self.handshake
        if hs is None or hs.ab is None or hs.a_b is None or self.sender_name != hs.peer:
            return False
        try:
            account = crypto.open_requester_authenticate(self.message.box, hs.ab,
                                                         crypto.authenticate_box_key(hs.ab, hs.a_b))
        except HandshakeError as e:
            return self._reject(e)
        self.handshake = replace(hs, peer_account=account)
        return True

    def requesterBlocked(self) -> bool:
        assert self.handshake is not None and self.handshake.peer_account is not None
        return self.handshake.peer_account in self.blocked

    def responderAuthentic(self) -> bool:
        """Step 4 opens under sha256(a.b || A.B) and is signed by the account expected."""
        hs = self.handshake
        if hs is None or hs.ab is None or hs.peer_account is None or self.sender_name != hs.peer:
            return False
        try:
            key = crypto.accept_box_key(hs.ab, crypto.account_shared_secret(self.account, hs.peer_account))
            crypto.open_responder_accept(self.message.box, hs.ab, key, hs.peer_account)
        except HandshakeError as e:
            return self._reject(e)
        return True

    def acknowledged(self) -> bool:
        hs = self.handshake
        return (hs is not None and hs.peer_account is not None and self.sender_name == hs.peer
                and bool(self.message.success))

    # --- actions

    def forgetHandshake(self) -> None:
        """Back in InitState (the start, or a handshake that timed out): the Responder
        (re)publishes its point, and an unfinished handshake's keys are gone."""
        self.handshake = None
        if self.responds:
            if not self.seed:
                self.seed = self.rng.randbytes(crypto.RENDEZVOUS_SEED_SIZE)
            self.published = self.own_point()

    def newEphemeralKey(self) -> None:
        """A fresh ephemeral key for a new handshake. The Requester knows from the start
        whom it expects (takeRequesterKey forgets that for a Responder)."""
        expected = self.contact.account if self.contact is not None else None
        self.handshake = Handshake(EphemeralKeyPair.from_private(self.rng.randbytes(crypto.KEY_SIZE)),
                                   peer_account=expected)
        self.buffer.ephemeral = self.handshake.ephemeral.public

    def takeRequesterKey(self) -> None:
        """Step 2, Responder: a.b and a.B from the Requester's ephemeral key."""
        hs = self.handshake
        assert hs is not None
        peer = bytes(self.message.ephemeral)
        self.handshake = replace(hs, peer=self.sender_name, peer_ephemeral=peer, peer_account=None,
                                  ab=crypto.ephemeral_shared_secret(hs.ephemeral, peer),
                                  a_b=crypto.responder_ephemeral_account_secret(self.account, peer))

    def takeResponderKey(self) -> None:
        """Step 2, Requester: a.b and a.B from the Responder's ephemeral key and the
        account key the Requester expects."""
        hs = self.handshake
        assert hs is not None and self.contact is not None
        peer = bytes(self.message.ephemeral)
        self.handshake = replace(hs, peer=self.sender_name, peer_ephemeral=peer,
                                  ab=crypto.ephemeral_shared_secret(hs.ephemeral, peer),
                                  a_b=crypto.requester_ephemeral_account_secret(hs.ephemeral, self.contact.account))

    def sealAuthenticate(self) -> None:
        hs = self.handshake
        assert hs is not None and hs.ab is not None and hs.a_b is not None
        self.buffer.box = crypto.seal_requester_authenticate(self.account, hs.ab,
                                                             crypto.authenticate_box_key(hs.ab, hs.a_b))

    def sealAccept(self) -> None:
        hs = self.handshake
        assert hs is not None and hs.ab is not None and hs.peer_account is not None
        key = crypto.accept_box_key(hs.ab, crypto.account_shared_secret(self.account, hs.peer_account))
        self.buffer.box = crypto.seal_responder_accept(self.account, hs.ab, key)
        self.sessions = (*self.sessions, (ANSWERED, hs.peer_account, hs.ab))

    def addOutgoingContact(self) -> None:
        """Step 5, Requester: the Responder is verified; the request is sent, and the
        contact group is known (weshnet: ContactRequestOutgoingSent)."""
        hs = self.handshake
        assert hs is not None and hs.peer_account is not None and hs.ab is not None
        group = self.group_with(hs.peer_account)
        self.sent = (*self.sent, (hs.peer_account, group.public_key))
        self.sessions = (*self.sessions, (REQUESTER, hs.peer_account, hs.ab))
        self.buffer.success = True

    def endHandshake(self) -> None:
        """The handshake is over (its last message is sent): its ephemeral keys are gone."""
        self.handshake = None
        if self.sent:
            self.machine.notify("contact request sent", (self.sent[-1][1].hex()[:8],))

    def addIncomingRequest(self) -> None:
        hs = self.handshake
        assert hs is not None and hs.peer_account is not None and hs.ab is not None
        self.requests = (*self.requests, (hs.peer_account, hs.ab))
        self.sessions = (*self.sessions, (RESPONDER, hs.peer_account, hs.ab))
        self.handshake = None

    def refuseBlocked(self) -> None:
        hs = self.handshake
        assert hs is not None and hs.peer_account is not None
        self.machine.notify("blocked account refused", (hs.peer_account.hex()[:8],))
        self.handshake = None

    def askUser(self) -> None:
        if self.requests:
            self.machine.notify("incoming contact request", (self.requests[-1][0].hex()[:8],))

    def acceptContact(self) -> None:
        account, _ = self.requests[-1]
        self.requests = self.requests[:-1]
        self.contacts = (*self.contacts, (account, self.group_with(account).public_key))

    def discardRequest(self) -> None:
        account, _ = self.requests[-1]
        self.requests = self.requests[:-1]
        self.discarded = (*self.discarded, account)

    def blockRequester(self) -> None:
        account, _ = self.requests[-1]
        self.requests = self.requests[:-1]
        self.blocked = self.blocked | {account}

    def renewSeed(self) -> None:
        """A new seed: the new point is where requests now reach this account, and a
        Requester holding the old seed reaches nobody."""
        self.seed = self.rng.randbytes(crypto.RENDEZVOUS_SEED_SIZE)
        self.published = self.own_point()

    # --- peers: whom `send ... to` addresses

    def responderPoint(self) -> str:
        assert self.contact is not None
        return point_address(self.contact.account, self.contact.seed, self.now(), self.rotation)

    def responder(self) -> str:
        assert self.handshake is not None and self.handshake.peer is not None
        return self.handshake.peer

    def requester(self) -> str:
        assert self.handshake is not None and self.handshake.peer is not None
        return self.handshake.peer


if TYPE_CHECKING:
    def _conforms(device: BertyDevice) -> ContactRequestBindings:
        """mypy checks the device against the interface generated from berty.fsm."""
        return device
