"""One member's side of mpENC's greeting protocol: the bindings of protocols/gka.fsm.

The fsm says when each step happens; this module does the steps, with the cryptography
of protocols.mpenc.crypto (CLIQUES over x25519, ASKE with ed25519):

- an operation (establish, include, exclude, refresh) is an `Operation` record, replaced
  as it advances, so that copies of a world (the explorer's) share nothing mutable;
- a completed operation becomes the `Session`: members, the last downflow's intermediate
  keys, the own private contributions (all of them, kept separately: clamping corrupts
  combined scalars), nonces, ephemeral signing keys, sid, group key and chain hash;
- a failed operation leaves the session as it was.

Packets are signed with the sender's ephemeral key over `greetmsgsig || packet` (5.2.3
MESSAGE_SIGNATURE) and a packet whose signature does not verify is dropped before any
handler runs (`admit`). The ephemeral key is authenticated by the session signatures.

The concurrency resolver of 3.3 sees every packet on the ordered group channel
(`receiving`, below the fsm, as mpENC's ServerOrder is below its greeting protocol): an
operation's initial packet names the final packet of the previous operation (PREV_PF),
and every later packet of the operation names the initial packet; the earliest initial
packet naming a parent wins, the others are rejected by every member alike. The chain
hash over accepted operations, H(chain || initial || final), is kept by every member and
carried in every packet (CHAIN_HASH) so that joining members continue it and others can
check it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocols.mpenc import crypto
from protocols.mpenc.crypto import GkaCryptoError, SigningKeyPair
from runtime.device import DeviceBase
from runtime.errors import EnvelopeError
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.mpenc import MemberBindings

__all__ = ["GreetingMember", "MemberState", "Operation", "Session"]

SIGNATURE = crypto.SIGNATURE_SIZE
NO_CHAIN = bytes(32)  # the chain hash before the first operation


def packet_id(data: bytes) -> bytes:
    """A packet's reference (5.4: SHA-256), over its records (what its signature signs)."""
    return hashlib.sha256(data).digest()


def next_chain_hash(chain: bytes, initial: bytes, final: bytes) -> bytes:
    return hashlib.sha256(chain + initial + final).digest()


@dataclass(frozen=True, slots=True)
class Session:
    """What a completed operation leaves: the subsession the members now share."""

    members: tuple[str, ...]
    intermediate_keys: tuple[bytes, ...]  # the last downflow: entry i lacks only member i's contributions
    privates: tuple[bytes, ...]  # own contributions, oldest first, never combined
    nonces: tuple[bytes, ...]
    ephemeral_keys: tuple[bytes, ...]
    own_ephemeral: SigningKeyPair
    sid: bytes
    group_key: bytes
    final_packet: bytes  # PREV_PF of the next operation
    chain_hash: bytes
    verified: frozenset[str] = frozenset()  # members whose session signature we verified (and we)


@dataclass(frozen=True, slots=True)
class Operation:
    """An operation under way, as this member sees it."""

    kind: str  # establish, include, exclude, refresh
    members: tuple[str, ...]  # the members the operation's subsession will have, in upflow order
    prev_pf: bytes  # the parent: final packet of the previous operation
    chain_hash: bytes  # the chain hash before this operation
    own_nonce: bytes
    own_ephemeral: SigningKeyPair
    privates: tuple[bytes, ...]  # own contributions the new secret will hold
    initial: bytes | None = None  # the initial packet's reference, once accepted on the channel
    sent: bytes | None = None  # the reference of the initial packet we sent, if we started it
    intermediate_keys: tuple[bytes, ...] = ()
    nonces: tuple[bytes, ...] = ()
    ephemeral_keys: tuple[bytes, ...] = ()
    sid: bytes = b""
    cardinal: bytes = b""
    final: bytes | None = None  # the downflow's reference


@dataclass(frozen=True, slots=True)
class Packet:
    """What the driver gets from `open`: the packet's reference and signature."""

    reference: bytes
    signature: bytes
    body: bytes


def _packet(message: Any) -> str:
    """A packet in words, for the application: "carol's refresh downflow"."""
    operation = getattr(message, "operation", None)
    return f"{message.source}'s {f'{operation} ' if operation else ''}{type(message).__name__.lower()}"


# How the log ends an operation the concurrency resolver discarded for another (3.3): a
# designed outcome, not a failure of the protocol (the invariants tell the two apart).
SUPERSEDED = " came first"

@dataclass(frozen=True, slots=True)
class MemberState:
    """A member's state as a value: its session, the operation under way, the resolver's
    view of the channel and what the application asked for tell states apart; the packet
    being handled and the log of failures are kept without telling them apart."""

    session: Session | None
    operation: Operation | None
    confirmed: frozenset[str]
    request: tuple[str, tuple[str, ...]] | None
    parent: bytes | None
    taken: bytes | None
    left: bool
    packet: Packet | None = field(compare=False)
    message: Any = field(compare=False)
    verdict: bool = field(compare=False)
    rejection: str = field(compare=False)
    log: tuple[str, ...] = field(compare=False)


@dataclass(eq=False)
class GreetingMember(DeviceBase[MemberState]):
    """One member: its static identity key, what it knows of the others' static keys
    (`directory`: member id -> ed25519 public key), its session and operation."""

    name: str
    identity: SigningKeyPair
    directory: Mapping[str, bytes]  # read-only: every member (and every copy) shares it
    rng: random.Random | SeededRandom = field(default_factory=random.Random)
    machine: Any = None
    session: Session | None = None
    operation: Operation | None = None
    request: tuple[str, tuple[str, ...]] | None = None  # (operation, members) the application asked for
    # the packet being handled, and the resolver's verdict on it
    packet: Packet | None = None
    message: Any = None
    verdict: bool = False
    rejection: str = ""  # why the resolver rejected it, when it did
    # the concurrency resolver: the parent operations name, and the initial packet that won it
    parent: bytes | None = None
    taken: bytes | None = None
    left: bool = False  # excluded from the session
    # Members whose session signature verified in the operation under way (phase 3).
    # Kept beside the operation, not in it: it grows with every acknowledgement.
    confirmed: frozenset[str] = frozenset()
    log: tuple[str, ...] = ()  # what failed and why, for the application

    def snapshot(self) -> MemberState:
        return MemberState(self.session, self.operation, self.confirmed, self.request, self.parent, self.taken,
                           self.left, self.packet, self.message, self.verdict, self.rejection, self.log)

    def restore(self, state: MemberState) -> None:
        self.session, self.operation, self.confirmed = state.session, state.operation, state.confirmed
        self.request, self.parent, self.taken, self.left = state.request, state.parent, state.taken, state.left
        self.packet, self.message, self.verdict = state.packet, state.message, state.verdict
        self.rejection, self.log = state.rejection, state.log

    # --- helpers

    @property
    def buffer(self) -> Any:
        return self.machine.buffer

    def _entropy(self, n: int) -> bytes:
        return self.rng.getrandbits(8 * n).to_bytes(n, "big")

    def _static_key(self, member: str) -> bytes:
        key = self.directory.get(member)
        if key is None:
            raise GkaCryptoError(f"no static identity key for member {member!r}")
        return key

    def _fail(self, why: str) -> None:
        self.log = (*self.log, why)

    def _fill(self, *, dest: str | None = None, signature: bytes | None = None) -> None:
        """Load the operation's records into the I/O buffer for the next packet."""
        op = self.operation
        assert op is not None
        b = self.buffer
        b.operation = op.kind
        b.initial = op.initial is None
        b.source = self.name
        b.dest = dest if dest is not None else self.name
        b.members = op.members
        b.intermediateKeys = op.intermediate_keys
        b.nonces = op.nonces
        b.ephemeralKeys = op.ephemeral_keys
        # The initial packet names the parent; every later one names the initial packet.
        b.prevPf = op.prev_pf if op.initial is None else op.initial
        b.chainHash = op.chain_hash
        if signature is not None:
            b.sessionSignature = signature

    # --- the driver's side: packet signatures and the resolver

    def capture(self, message: Any, to: str | None = None) -> SigningKeyPair:
        op = self.operation
        if op is not None:
            return op.own_ephemeral
        assert self.session is not None, "a packet outside an operation needs a session"
        return self.session.own_ephemeral

    def describe(self, captured: SigningKeyPair) -> bytes:
        return captured.public

    def seal(self, message: Any, data: bytes, captured: SigningKeyPair) -> bytes:
        op = self.operation
        if op is not None:
            reference = packet_id(data)
            if message.NAME == "Downflow":
                op = dataclasses.replace(op, final=reference)  # our downflow ends the operation
            if getattr(message, "initial", False):
                op = dataclasses.replace(op, sent=reference)
                if op.kind == "establish":
                    # An establish's initial packet goes to the next member only (no
                    # session exists to guard): it is ours the moment it exists.
                    op = dataclasses.replace(op, initial=reference)
                    self.taken = reference
            self.operation = op
        return crypto.sign_packet(captured.seed, data) + data

    def open(self, data: bytes) -> tuple[bytes, Packet]:
        if len(data) <= SIGNATURE:
            raise EnvelopeError("packet too short for its signature")
        return data[SIGNATURE:], Packet(packet_id(data[SIGNATURE:]), data[:SIGNATURE], data[SIGNATURE:])

    def _sender_ephemeral(self, message: Any) -> bytes | None:
        """The ephemeral key the packet's source signs with: its entry in the packet's
        own list, else the one the operation or session holds for it."""
        members = getattr(message, "members", None)
        keys = getattr(message, "ephemeralKeys", None)
        if members is not None and keys is not None and message.source in members:
            i = members.index(message.source)
            if i < len(keys):
                return bytes(keys[i])
        for holder in (self.operation, self.session):
            if holder is not None and message.source in holder.members:
                i = holder.members.index(message.source)
                if i < len(holder.ephemeral_keys):
                    return holder.ephemeral_keys[i]
        return None

    def admit(self, message: Any, packet: Packet) -> str | None:
        key = self._sender_ephemeral(message)
        if key is None:
            return f"no ephemeral signing key known for {message.source}"
        try:
            crypto.verify_packet_signature(key, packet.body, packet.signature)
        except GkaCryptoError as e:
            return str(e)
        return None

    def receiving(self, message: Any, packet: Packet | None) -> None:
        self.message, self.packet = message, packet
        self.rejection = ""
        self.verdict = packet is not None and self._resolve(message, packet)

    def _resolve(self, message: Any, packet: Packet) -> bool:
        """3.3: accept the earliest initial packet naming our parent, and the later
        packets naming it; reject everything else. A member outside any session cannot
        know the previous operation: it follows the upflow addressed to it."""
        prev = getattr(message, "prevPf", None)
        initial = bool(getattr(message, "initial", False))
        joining = self.session is None and getattr(message, "dest", None) == self.name and self.taken is None
        if initial:
            if joining:
                self.parent = prev
            if prev != self.parent or self.taken is not None:
                self.rejection = (f"{_packet(message)} came after another operation's" if self.taken is not None
                                  else f"{_packet(message)} names another previous operation")
                return False
            self.taken = packet.reference
            op = self.operation
            if op is not None and op.initial is None:
                if message.source == self.name:
                    self.operation = dataclasses.replace(op, initial=packet.reference)
                else:
                    # Another member's operation won the parent first: ours is void for
                    # every member alike, as our initial packet comes after it.
                    self._abort(f"{message.source}'s {message.operation}{SUPERSEDED}")
                    self.taken = packet.reference
        elif joining and prev is not None:
            self.taken = prev  # a later upflow of an operation we were not there to see start
        elif prev is None:  # an acknowledgement: checked by its signature
            if self.taken is None:
                self.rejection = f"{_packet(message)} comes outside an operation"
            return self.taken is not None
        elif prev != self.taken:
            op = self.operation
            if self.taken is None and op is not None and op.sent == prev:
                # A later packet of the operation we started: the others accepted our
                # initial packet, whose own copy did not reach us.
                self.taken = prev
                self.operation = dataclasses.replace(op, initial=prev)
                return True
            self.rejection = f"{_packet(message)} belongs to an operation that was not accepted"
            return False
        return True

    @property
    def disabled(self) -> bool:
        return False

    def timed_out(self, state: str) -> None:
        """An operation that does not complete in time fails; the session stays."""
        self._abort(f"operation timed out in {state}")

    def _abort(self, why: str) -> None:
        if self.operation is not None:
            self._fail(why)
        self.operation, self.confirmed = None, frozenset()
        self.taken = None  # the parent is open again for the next operation

    # --- the application's side

    def request_operation(self, kind: str, members: tuple[str, ...]) -> None:
        self.request = (kind, members)

    def material_digest(self) -> str:
        """The group key's digest (equal exactly when the group keys are), or "none"."""
        key = self.group_key
        return hashlib.sha256(key).hexdigest()[:16] if key is not None else "none"

    @property
    def group_key(self) -> bytes | None:
        return self.session.group_key if self.session is not None else None

    # --- conditions

    def nextMember(self) -> str:
        """Where the upflow goes next: the member after us in the operation's list."""
        op = self.operation
        assert op is not None
        return op.members[op.members.index(self.name) + 1]

    def upflowForUs(self) -> bool:
        m = self.message
        return bool(self.verdict and m.dest == self.name and self.name in m.members)

    def lastInUpflow(self) -> bool:
        op = self.operation
        return op is not None and op.members[-1] == self.name

    def acceptedByResolver(self) -> bool:
        return self.verdict

    def weAreExcluded(self) -> bool:
        return self.name not in self.message.members

    def operationVoided(self) -> bool:
        """Our operation lost its parent to another member's (see `_resolve`)."""
        return self.operation is None

    def inSession(self) -> bool:
        return self.session is not None

    def downflowVerified(self) -> bool:
        """Phase 2 on receipt of the first downflow: our own contributions are in it as we
        made them, the sid follows from it, the sender's session signature verifies, and
        our entry with our contributions gives the cardinal key."""
        m = self.message
        op = self._operation_for_downflow(m)
        try:
            if op is None:
                raise GkaCryptoError("no operation or session to take the downflow into")
            members = tuple(m.members)
            if self.name not in members or len(m.intermediateKeys) != len(members) \
                    or len(m.nonces) != len(members) or len(m.ephemeralKeys) != len(members):
                raise GkaCryptoError("the downflow's lists do not match its members")
            i = members.index(self.name)
            if self.session is not None and m.chainHash != self.session.chain_hash:
                raise GkaCryptoError("the downflow's chain hash is not ours: the members disagree on the history")
            if m.nonces[i] != op.own_nonce or m.ephemeralKeys[i] != op.own_ephemeral.public:
                raise GkaCryptoError("the downflow does not carry our own nonce and ephemeral key")
            sid = crypto.session_id(members, list(m.nonces))
            j = members.index(m.source)
            crypto.verify_session_signature(self._static_key(m.source), m.source, m.ephemeralKeys[j], m.nonces[j],
                                            sid, m.sessionSignature)
            cardinal = crypto.cardinal_key(list(m.intermediateKeys), i, list(op.privates))
        except GkaCryptoError as e:
            self._fail(f"downflow from {m.source}: {e}")
            return False
        assert self.packet is not None
        self.operation = dataclasses.replace(
            op, members=members, intermediate_keys=tuple(m.intermediateKeys), nonces=tuple(m.nonces),
            ephemeral_keys=tuple(m.ephemeralKeys), sid=sid, cardinal=cardinal, final=self.packet.reference,
            initial=op.initial if op.initial is not None else self.taken)
        self.confirmed = frozenset({m.source})
        return True

    def _operation_for_downflow(self, m: Any) -> Operation | None:
        """The operation a downflow completes: ours, or, for a member in session whose
        group another member changes (exclude, refresh, include), a new one that keeps our
        nonce, ephemeral key and contributions."""
        op = self.operation
        if op is not None:
            return op
        s = self.session
        if s is None:
            return None
        i = s.members.index(self.name)
        return Operation(m.operation, tuple(m.members), self.parent or b"", s.chain_hash, s.nonces[i],
                         s.own_ephemeral, s.privates, initial=self.taken)

    def confirmationVerified(self) -> bool:
        m, op = self.message, self.operation
        if op is None or not op.sid:
            self._fail(f"confirmation from {m.source} outside an operation")
            return False
        try:
            if m.source not in op.members:
                raise GkaCryptoError(f"{m.source} is not a member of the operation")
            j = op.members.index(m.source)
            crypto.verify_session_signature(self._static_key(m.source), m.source, op.ephemeral_keys[j],
                                            op.nonces[j], op.sid, m.sessionSignature)
        except GkaCryptoError as e:
            self._fail(f"confirmation from {m.source}: {e}")
            return False
        self.confirmed |= {m.source}
        return True

    def allConfirmed(self) -> bool:
        op = self.operation
        return op is not None and bool(op.sid) and self.confirmed.issuperset(op.members)

    # --- actions

    def showRejected(self) -> None:
        """Tell the application that the concurrency resolver rejected a packet, and why
        (so that a sequence chart shows it)."""
        self.machine.notify("rejected by the resolver", (self.rejection,))

    def startOperation(self) -> None:
        """The application's request becomes an operation with a fresh nonce and
        ephemeral key (5.2.2 phase 1; an exclude and a refresh must renew the nonce so
        that the sid differs from any earlier one of the same members)."""
        assert self.request is not None, "an operation needs a request (protocols.mpenc.parties)"
        kind, asked = self.request
        self.request = None
        s = self.session
        nonce = crypto.new_nonce(self._entropy)
        ephemeral = crypto.new_ephemeral_signing_key(self._entropy)
        if kind == "establish":
            members = (self.name, *[m for m in asked if m != self.name])
            prev, chain = self._entropy(32), NO_CHAIN
            self.parent = prev
            self.operation = Operation(kind, members, prev, chain, nonce, ephemeral, ())
            return
        assert s is not None
        if kind == "include":
            members = (*s.members, *[m for m in asked if m not in s.members])
        elif kind == "exclude":
            members = tuple(m for m in s.members if m not in asked)
        else:
            members = s.members
        i = s.members.index(self.name)
        # An include keeps our nonce and ephemeral key, as the design's example shows.
        if kind == "include":
            nonce, ephemeral = s.nonces[i], s.own_ephemeral
        self.operation = Operation(kind, members, s.final_packet, s.chain_hash, nonce, ephemeral, s.privates)

    def contributeToUpflow(self) -> None:
        """Add our contribution, nonce and ephemeral key to the upflow, for the next
        member (5.2.1 IKA upflow, 5.2.2 phase 1)."""
        op = self.operation
        assert op is not None
        private = crypto.new_private_contribution(self._entropy)
        if op.kind == "establish" and op.members[0] == self.name:
            keys = crypto.ika_start(private)
        else:
            keys = crypto.upflow(list(self.buffer.intermediateKeys), private)
        self.operation = dataclasses.replace(
            op, privates=(*op.privates, private), intermediate_keys=tuple(keys),
            nonces=(*op.nonces, op.own_nonce), ephemeral_keys=(*op.ephemeral_keys, op.own_ephemeral.public))
        self._fill(dest=op.members[op.members.index(self.name) + 1])

    def joinOperation(self) -> None:
        """An upflow addressed to us: we take part in its operation."""
        m = self.message
        nonce = crypto.new_nonce(self._entropy)
        ephemeral = crypto.new_ephemeral_signing_key(self._entropy)
        self.operation = Operation(m.operation, tuple(m.members), m.prevPf, m.chainHash, nonce, ephemeral, (),
                                   initial=self.taken, intermediate_keys=tuple(m.intermediateKeys),
                                   nonces=tuple(m.nonces), ephemeral_keys=tuple(m.ephemeralKeys))

    def contributeToDownflow(self) -> None:
        """The last member of the upflow: add our contribution, keep the cardinal key,
        and broadcast every member's intermediate key, nonce and ephemeral key with our
        session signature (5.2.1 downflow, 5.2.2 phase 2)."""
        op = self.operation
        assert op is not None
        private = crypto.new_private_contribution(self._entropy)
        down = crypto.downflow(list(self.buffer.intermediateKeys), private)
        self.operation = dataclasses.replace(
            op, privates=(*op.privates, private), intermediate_keys=tuple(down.intermediate_keys),
            cardinal=down.cardinal_key, nonces=(*op.nonces, op.own_nonce),
            ephemeral_keys=(*op.ephemeral_keys, op.own_ephemeral.public))
        self._sign_downflow()

    def renewContribution(self) -> None:
        """An include, exclude or refresh started here: renew our contribution (5.2.1
        AKA). An include sends the upflow on to the first new member; an exclude or a
        refresh broadcasts the downflow at once."""
        op, s = self.operation, self.session
        assert op is not None and s is not None
        i = s.members.index(self.name)
        private = crypto.new_private_contribution(self._entropy)
        nonces = list(s.nonces)
        nonces[i] = op.own_nonce
        ephemeral_keys = list(s.ephemeral_keys)
        ephemeral_keys[i] = op.own_ephemeral.public
        if op.kind == "include":
            up = crypto.aka_include(list(s.intermediate_keys), i, list(s.privates), private)
            self.operation = dataclasses.replace(op, privates=tuple(up.privates),
                                                 intermediate_keys=tuple(up.intermediate_keys),
                                                 nonces=tuple(nonces), ephemeral_keys=tuple(ephemeral_keys))
            self._fill(dest=op.members[len(s.members)])
            return
        if op.kind == "exclude":
            gone = [k for k, m in enumerate(s.members) if m not in op.members]
            down = crypto.aka_exclude(list(s.intermediate_keys), i, list(s.privates), private, gone)
        else:
            down = crypto.aka_refresh(list(s.intermediate_keys), i, list(s.privates), private)
        kept = [k for k, m in enumerate(s.members) if m in op.members]
        self.operation = dataclasses.replace(
            op, privates=tuple(down.privates), intermediate_keys=tuple(down.intermediate_keys),
            cardinal=down.cardinal_key, nonces=tuple(nonces[k] for k in kept),
            ephemeral_keys=tuple(ephemeral_keys[k] for k in kept))
        self._sign_downflow()

    def _sign_downflow(self) -> None:
        op = self.operation
        assert op is not None
        sid = crypto.session_id(op.members, list(op.nonces))
        self.operation = op = dataclasses.replace(op, sid=sid)
        self.confirmed = frozenset({self.name})
        signature = crypto.session_signature(self.identity.seed, self.name, op.own_ephemeral.public, op.own_nonce,
                                             sid)
        self._fill(signature=signature)

    def acknowledge(self) -> None:
        """Phase 2: our own session signature, for every member to verify."""
        op = self.operation
        assert op is not None
        signature = crypto.session_signature(self.identity.seed, self.name, op.own_ephemeral.public, op.own_nonce,
                                             op.sid)
        self.confirmed |= {self.name}
        self.buffer.source = self.name
        self.buffer.sessionSignature = signature
        self.buffer.prevPf = op.initial

    def completeOperation(self) -> None:
        """Phase 3 done: every session signature verified. The new subsession replaces
        the old one; the chain hash moves on by this operation."""
        op = self.operation
        assert op is not None and op.initial is not None and op.final is not None
        initial, final = op.initial, op.final
        self.session = Session(op.members, op.intermediate_keys, op.privates, op.nonces, op.ephemeral_keys,
                               op.own_ephemeral, op.sid, crypto.group_key(op.cardinal), final,
                               next_chain_hash(op.chain_hash, initial, final), self.confirmed)
        self.operation, self.confirmed = None, frozenset()
        self.parent, self.taken = final, None

    def abortOperation(self) -> None:
        self._abort("operation failed")

    def leaveSession(self) -> None:
        """Excluded: our session ends (3.3: we leave the channel after that)."""
        self.session, self.operation, self.left = None, None, True
        self.parent = self.taken = None


if TYPE_CHECKING:
    def _conforms(member: GreetingMember) -> MemberBindings:
        """mypy checks the member against the interface generated from mpenc.fsm."""
        return member
