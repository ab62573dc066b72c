"""Berty's multi-member groups as an fsm: the bindings of MultiMemberGroup (protocols/berty/
berty.fsm). The cryptography is groups.py's (weshnet's entries, envelopes and symmetric
ratchet); this module is the device around it: what each party holds, how the two logs
are carried, what the conditions check and the actions do.

## The model (notes)

**A party is one device of one member.** Every member has one device here, so the Secret
Entry weshnet also boxes to its own member (for the member's other devices) is left out:
no other device would open it. A device's member key is derived from its account's alias
key and the group id (`groups.multi_member_key`), its device key is drawn for the group.

**The logs are addresses.** The group's metadata log and message log are two addresses
(`berty-group/<group id>/metadata`, `.../messages`) that every device holding the group
listens on from the start, and an entry is posted to the log it belongs to. Why addresses
and not a broadcast on the `channel` transport: the logs reach exactly the group's
replicas (a scenario may hold parties of the contact request or linking beside them, and
two groups would not mix), and an outsider who knows the group id can post to them, as
anyone can write a block to IPFS, without being able to read or write an entry that
verifies. Every replica listens from the start because it replicates the whole log
(OrbitDB): a device that announces itself late still holds the entries posted before, as
weshnet's does, so the forward secrecy it gets is the cryptography's, not the transport's
(it receives the earlier messages and cannot open them). The sender receives its own
entries back, and drops them (`own message`): what it posted it indexed when it posted.

**Entries travel as weshnet writes them.** Each fsm message carries one log entry: its
envelope (a GroupEnvelope protobuf for the metadata log, a MessageEnvelope for the
message log, both sealed under the group secret) and the group signing key's signature of
it (`groups.LogEntry`). The fsm message's kind (InitMemberEntry, MemberEntry, SecretEntry,
GroupMessage) names what it carries, for the fsm and for people; weshnet's log entries
carry no such label, and the device checks that the entry inside is of that kind. The
plain envelope of runtime/framing.py names the sender (an address to nobody: the entries
prove what they prove).

**Verification is in `open`.** An entry or message that does not verify (the log
signature, the envelope, the entry's signatures, a Secret Entry's box, a message's key,
payload or signature) raises the `GroupError` that says why: the driver drops it, traced
with the code `berty-group`, and nothing changes. What verifies is computed there as a
new `GroupState` (groups.py's functions are pure), and the action that takes it
(`indexEntry`, `readMessage`) commits it. Two failures are not final: a message from a
device whose chain key has not arrived (`unknown device`), or past its window (`counter
ahead of window`), is held, as weshnet queues it, and tried again whenever a chain is
registered or a message opens. A held message that then turns out to predate the chain
key this device was given (`counter before chain key`) is dropped, and counted as
unreadable: the late member's forward secrecy.

**The flow.** Join on the creator publishes the Init Member Entry (its device key, signed
by the group id key, which it then never uses again) and its Member Entry. Join on an
invitee publishes its Member Entry, then a Secret Entry for each member it learnt from
the metadata log it replicated. A member device that indexes the Member Entry of a new
member sends it a Secret Entry: its current chain key and counter, boxed to the member key.
The signaled event ShareSecret loops one Secret Entry at a time, while a member awaits one
(`groups.members_awaiting_secret`). SendGroupMessage seals the user's text with the next
message key (`groups.send_message`); the text is the step's `text`, or `<name> #<counter>`.
"""

from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from protocols.berty.crypto import Ed25519KeyPair
from protocols.berty.groups import (
    Entry,
    Failure,
    GroupError,
    GroupState,
    InitialMemberEntry,
    LogEntry,
    MemberDeviceEntry,
    ReceivedMessage,
    SecretEntry,
    apply_metadata,
    claim_ownership,
    member_device_metadata,
    members_awaiting_secret,
    open_message_headers,
    publish_metadata,
    receive_message,
    receive_metadata,
    send_message,
    share_chain_key,
)
from runtime.device import DeviceBase
from runtime.framing import NamedEnvelope, open_named
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.berty import MultiMemberGroupBindings

__all__ = ["GROUP", "GroupMemberDevice", "GroupRecord", "Incoming", "SentMessage", "log_addresses"]

GROUP = "MultiMemberGroup"  # the fsm

# What an fsm message must carry.
_KINDS: dict[str, type[Entry]] = {
    "InitMemberEntry": InitialMemberEntry,
    "MemberEntry": MemberDeviceEntry,
    "SecretEntry": SecretEntry,
}
# The failures after which a message is held and tried again, not dropped.
_WAIT = frozenset({Failure.UNKNOWN_DEVICE, Failure.COUNTER_AHEAD})


# Explorations open one entry in many worlds (a delivery that commutes with other steps):
# the functions are pure, so their results (or the GroupError raised) are kept by their
# inputs, as protocols/bisonrelay/device.py keeps its own. Bounded: cleared when full.
_KEPT: dict[tuple[str, GroupState, LogEntry], Any] = {}
_KEPT_MAX = 50_000


def _kept(kind: str, function: Any, state: GroupState, entry: LogEntry) -> Any:
    key = (kind, state, entry)
    result = _KEPT.get(key)
    if result is None:
        try:
            result = function(state, entry)
        except GroupError as e:
            result = e
        if len(_KEPT) >= _KEPT_MAX:
            _KEPT.clear()
        _KEPT[key] = result
    if isinstance(result, GroupError):
        raise result.with_traceback(None)
    return result


def _receive_message(state: GroupState, entry: LogEntry) -> tuple[GroupState, ReceivedMessage]:
    result: tuple[GroupState, ReceivedMessage] = _kept("message", receive_message, state, entry)
    return result


def _receive_metadata(state: GroupState, entry: LogEntry) -> tuple[GroupState, Entry]:
    result: tuple[GroupState, Entry] = _kept("metadata", receive_metadata, state, entry)
    return result


def log_addresses(group_public_key: bytes) -> tuple[str, str]:
    """The addresses of a group's metadata log and message log."""
    gid = group_public_key.hex()[:16]
    return f"berty-group/{gid}/metadata", f"berty-group/{gid}/messages"


class SentMessage(NamedTuple):
    """A message this device sent: its counter, its plaintext, and the members its chain
    key had been boxed to when it sent it (those that can open it)."""

    counter: int
    plaintext: bytes
    served: tuple[bytes, ...]


class Incoming(NamedTuple):
    """What `open` made of a log entry: its sender (the envelope's word), the fsm message's
    kind, the entry, and, when it verified, the state it leads to and what it carried
    (the entry, or the message opened). `state` None: a message held for later."""

    sender: str
    kind: str
    entry: LogEntry
    state: GroupState | None
    carried: Entry | ReceivedMessage | None


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """A group device's state as a value: its view of the group (groups.GroupState: its
    chain, the devices and members indexed, the chains it holds, whom it served), whether
    it announced itself, the messages held for a chain key, what it sent and what it read
    (sender device key, counter, plaintext; sorted, as the order of reading tells nothing
    the invariants need). The entry being handled, the text to send next, the messages
    found unreadable and the notes of rejected input tell no states apart."""

    group: GroupState
    announced: bool
    held: tuple[tuple[bytes, bytes], ...]
    sent: tuple[SentMessage, ...]
    read: tuple[tuple[bytes, int, bytes], ...]
    unreadable: tuple[tuple[bytes, int], ...] = field(compare=False)
    incoming: Incoming | None = field(compare=False)
    text: str | None = field(compare=False)
    rejected: tuple[str, ...] = field(compare=False)


@dataclass(eq=False)
class GroupMemberDevice(NamedEnvelope, DeviceBase[GroupRecord]):
    """A device in a multi-member group: the creator's (`group_key`, the group id key it
    claims ownership with), an invitee's, or an outsider's (`attacker`: it knows the group
    id, not the secret; its GroupState is of a group with that id and a secret of its own,
    so all it writes is refused). Configuration first, then the state (`GroupRecord`)."""

    name: str
    alias: Ed25519KeyPair  # the account's alias key: the member key is derived from it
    group_key: Ed25519KeyPair | None = None  # the creator's group id key, used once
    attacker: bool = False
    logs: tuple[str, str] = ("", "")  # the metadata log's address, the message log's
    rng: random.Random | SeededRandom = field(default_factory=random.Random)
    machine: Any = None
    # state (GroupRecord)
    group: GroupState | None = None
    announced: bool = False
    held: tuple[tuple[bytes, bytes], ...] = ()
    sent: tuple[SentMessage, ...] = ()
    read: tuple[tuple[bytes, int, bytes], ...] = ()
    unreadable: tuple[tuple[bytes, int], ...] = ()
    incoming: Incoming | None = None
    text: str | None = None
    rejected: tuple[str, ...] = ()

    def snapshot(self) -> GroupRecord:
        assert self.group is not None
        return GroupRecord(self.group, self.announced, self.held, self.sent, self.read, self.unreadable,
                           self.incoming, self.text, self.rejected)

    def restore(self, state: GroupRecord) -> None:
        self.group, self.announced, self.held, self.sent = state.group, state.announced, state.held, state.sent
        self.read, self.unreadable, self.incoming = state.read, state.unreadable, state.incoming
        self.text, self.rejected = state.text, state.rejected

    # --- what the scenarios and the invariants read

    @property
    def state(self) -> GroupState:
        assert self.group is not None
        return self.group

    @property
    def device_pk(self) -> bytes:
        return self.state.own.device.public

    @property
    def member_pk(self) -> bytes:
        return self.state.own.member.public

    def _random(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def _awaiting(self) -> tuple[bytes, ...]:
        """The members awaiting our chain key: announced, not served, not our own member
        (one device per member: nobody else would open it)."""
        return tuple(m for m in members_awaiting_secret(self.state) if m != self.member_pk)

    def _note(self, error: GroupError) -> None:
        self.rejected = (*self.rejected, str(error))

    def _buffer(self, entry: LogEntry) -> None:
        buffer = self.machine.buffer
        buffer.envelope, buffer.logSig = entry.payload, entry.sig

    def _codec(self) -> Any:
        # The compiled module of the machine (the DSL file on disk), not generated/.
        return sys.modules[type(self.machine).__module__].CODEC

    # --- the driver's side

    def open(self, data: bytes) -> tuple[bytes, Incoming]:
        """The entry verified against this device's view of the group, and the state it
        leads to; GroupError (dropped, nothing changed) when it does not verify."""
        inner, sender = open_named(data)
        if sender == self.name:
            raise GroupError(Failure.OWN_MESSAGE, "an entry this device posted, back from the log")
        message = self._codec().decode(inner)
        kind = type(message).__name__
        entry = LogEntry(bytes(message.envelope), bytes(message.logSig))
        if kind == "GroupMessage":
            try:
                state, received = _receive_message(self.state, entry)
            except GroupError as e:
                if e.failure in _WAIT:
                    return inner, Incoming(sender, kind, entry, None, None)
                self._note(e)
                if e.failure is Failure.COUNTER_BEFORE_CHAIN:
                    self._unreadable(entry)
                raise
            return inner, Incoming(sender, kind, entry, state, received)
        try:
            state, got = _receive_metadata(self.state, entry)
            wanted = _KINDS.get(kind)
            if wanted is None or not isinstance(got, wanted):
                raise GroupError(Failure.EVENT_TYPE, f"a {kind} that carries a {type(got).__name__}")
        except GroupError as e:
            self._note(e)
            raise
        return inner, Incoming(sender, kind, entry, state, got)

    def admit(self, message: Any, context: Incoming) -> str | None:
        return None

    def receiving(self, message: Any, context: Incoming | None) -> None:
        self.incoming = context

    def material_digest(self) -> str:
        """The group the device holds (its id and secret): equal digests, the same group."""
        group = self.state.group
        return hashlib.sha256(group.public_key + group.secret).hexdigest()

    def timed_out(self, state: str) -> None:
        self.rejected = (*self.rejected, f"timeout in {state}")

    def listening(self) -> frozenset[str]:
        return frozenset(self.logs)

    # --- conditions

    def creating(self) -> bool:
        return self.group_key is not None

    def messageOpens(self) -> bool:
        return self.incoming is not None and self.incoming.state is not None

    def secretAwaited(self) -> bool:
        return bool(self._awaiting())

    # --- actions

    def claimOwnership(self) -> None:
        """The creator's Init Member Entry, signed by the group id key (then discarded)."""
        assert self.group_key is not None
        metadata = claim_ownership(self.state, self.group_key)
        self.group, _ = apply_metadata(self.state, metadata)
        self._buffer(publish_metadata(self.state.group, metadata, self._random))
        self.machine.notify("group created", (self.state.group.group_id[:16],))

    def announceDevice(self) -> None:
        """Our Member Entry: indexed at once (its echo from the log is dropped as our own)."""
        metadata = member_device_metadata(self.state.own)
        self.group, _ = apply_metadata(self.state, metadata)
        self.announced = True
        self._buffer(publish_metadata(self.state.group, metadata, self._random))

    def shareSecrets(self) -> None:
        if self._awaiting():
            self.machine.signal(self.machine.Event["ShareSecret"])

    def shareChainKey(self) -> None:
        """A Secret Entry: our chain key and counter, boxed to the first member awaiting it."""
        member = self._awaiting()[0]
        self.group, metadata = share_chain_key(self.state, member)
        self._buffer(publish_metadata(self.state.group, metadata, self._random))
        self.machine.notify("chain key shared", (member.hex()[:8], str(self.state.own_chain.counter)))

    def indexEntry(self) -> None:
        """Take the entry `open` verified; a chain it registered may open held messages."""
        assert self.incoming is not None and self.incoming.state is not None
        self.group = self.incoming.state
        self._retry()

    def holdMessage(self) -> None:
        assert self.incoming is not None
        entry = self.incoming.entry
        pair = (entry.payload, entry.sig)
        if pair not in self.held:
            self.held = tuple(sorted((*self.held, pair)))
        self.machine.notify("message held", ("its sender's chain key has not come",))

    def readMessage(self) -> None:
        assert self.incoming is not None and self.incoming.state is not None
        received = self.incoming.carried
        assert isinstance(received, ReceivedMessage)
        self._read(self.incoming.state, received)
        self._retry()

    def sealMessage(self) -> None:
        """The user's text (the step's, or a default), sealed with our next message key."""
        text = self.text if self.text is not None else f"{self.name} #{self.state.own_chain.counter + 1}"
        self.text = None
        served = self.state.secrets_sent
        self.group, entry = send_message(self.state, text.encode(), self._random)
        self.sent = (*self.sent, SentMessage(self.state.own_chain.counter, text.encode(), served))
        self._buffer(entry)

    # --- peers

    def metadataLog(self) -> str:
        return self.logs[0]

    def messageLog(self) -> str:
        return self.logs[1]

    # --- held messages

    def _read(self, state: GroupState, received: ReceivedMessage) -> None:
        self.group = state
        self.read = tuple(sorted((*self.read, (received.device_pk, received.counter, received.plaintext))))
        self.machine.notify("message read", (received.device_pk.hex()[:8], str(received.counter),
                                             received.plaintext.decode(errors="replace")))

    def _unreadable(self, entry: LogEntry) -> None:
        """A message sent before our chain key from its sender: noted (device, counter)."""
        try:
            _, headers = open_message_headers(self.state.group, entry.payload)
        except GroupError:
            return
        key = (headers.device_pk, headers.counter)
        if key not in self.unreadable:
            self.unreadable = tuple(sorted((*self.unreadable, key)))

    def _retry(self) -> None:
        """Try the held messages again until none opens: each one opened extends its
        sender's window, which may reach another."""
        progress = True
        while progress and self.held:
            progress = False
            for pair in self.held:
                entry = LogEntry(*pair)
                try:
                    state, received = _receive_message(self.state, entry)
                except GroupError as e:
                    if e.failure in _WAIT:
                        continue
                    self._note(e)
                    if e.failure is Failure.COUNTER_BEFORE_CHAIN:
                        self._unreadable(entry)
                    self.held = tuple(p for p in self.held if p != pair)
                    progress = True
                    break
                self.held = tuple(p for p in self.held if p != pair)
                self._read(state, received)
                progress = True
                break


if TYPE_CHECKING:
    def _conforms(device: GroupMemberDevice) -> MultiMemberGroupBindings:
        """mypy checks the device against the interface generated from berty.fsm."""
        return device
