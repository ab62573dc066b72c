"""A party of two-phase commit: the bindings of protocols/commit/commit.fsm.

One device class serves both roles, as the fsm does: a party configured with
participants is the coordinator, any other party a participant. The fsm says when each
step happens; this module keeps what the steps need:

- the transaction under way (its TID, its participants, its coordinator), the votes the
  coordinator heard for it, the vote a participant sent;
- the log of decided transactions (`outcomes`: TID and "commit" or "abort", in order),
  from which the coordinator answers a participant's Inquiry, and which the invariants
  read;
- the user's answers (`answers`), recorded when the user gives them (parties.before_event),
  apart from what the fsm then does with them: the invariants compare the two.

The protocol needs no cryptography. The envelope only names its sender
(runtime.framing), so that the coordinator knows who voted and whom to answer; bytes
that do not open are an EnvelopeError (a RemoteError: the driver drops them). `admit`
refuses a party's own broadcasts, decisions from anyone but the transaction's
coordinator, and votes from anyone it did not invite.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.device import DeviceBase
from runtime.framing import NamedEnvelope
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.commit import TransactionBindings

__all__ = ["ABORT", "COMMIT", "CommitParty", "PartyState"]

COMMIT, ABORT = "commit", "abort"
TID_SIZE = 8  # Commit.asn1: TID ::= OCTET STRING (SIZE(8))


@dataclass(frozen=True, slots=True)
class PartyState:
    """A party's state as a value. The transaction under way, the votes, the logs tell
    states apart; the message being handled, its sender and the notes do not."""

    tid: bytes | None  # the transaction under way, or the last one
    participants: tuple[str, ...]  # the transaction's participants
    coordinator: str | None  # a participant: the transaction's coordinator
    votes: frozenset[tuple[str, bool]]  # the coordinator: the votes heard for `tid`
    vote: bool | None  # a participant: what it voted for `tid`
    outcomes: tuple[tuple[bytes, str], ...]  # every transaction decided here, in order
    answers: tuple[tuple[bytes, str], ...]  # the user's answers: (TID, "Yes" or "No")
    proposals: tuple[tuple[bytes, tuple[str, ...]], ...]  # the coordinator: every transaction proposed
    message: Any = field(compare=False)
    sender: str | None = field(compare=False)
    log: tuple[str, ...] = field(compare=False)


@dataclass(eq=False)
class CommitParty(NamedEnvelope, DeviceBase[PartyState]):
    """A coordinator (`invites` names its participants) or a participant (no `invites`)."""

    name: str
    invites: tuple[str, ...] = ()  # configuration: whom a coordinator's transactions invite
    rng: random.Random | SeededRandom = field(default_factory=random.Random)
    machine: Any = None
    tid: bytes | None = None
    participants: tuple[str, ...] = ()
    coordinator_name: str | None = None
    votes: frozenset[tuple[str, bool]] = frozenset()
    vote: bool | None = None
    outcomes: tuple[tuple[bytes, str], ...] = ()
    answers: tuple[tuple[bytes, str], ...] = ()
    proposals: tuple[tuple[bytes, tuple[str, ...]], ...] = ()
    message: Any = None
    sender_name: str | None = None
    log: tuple[str, ...] = ()

    def snapshot(self) -> PartyState:
        return PartyState(self.tid, self.participants, self.coordinator_name, self.votes, self.vote, self.outcomes,
                          self.answers, self.proposals, self.message, self.sender_name, self.log)

    def restore(self, state: PartyState) -> None:
        self.tid, self.participants, self.coordinator_name = state.tid, state.participants, state.coordinator
        self.votes, self.vote, self.outcomes = state.votes, state.vote, state.outcomes
        self.answers, self.proposals = state.answers, state.proposals
        self.message, self.sender_name, self.log = state.message, state.sender, state.log

    # --- what the application, the scenarios and the invariants read

    @property
    def buffer(self) -> Any:
        return self.machine.buffer

    def outcome(self, tid: bytes | None) -> str | None:
        """How this party decided `tid`, or None."""
        return next((o for t, o in self.outcomes if t == tid), None)

    @property
    def last_outcome(self) -> str | None:
        return self.outcomes[-1][1] if self.outcomes else None

    def answer(self, event: str) -> None:
        """The user answered the dialog (parties.before_event): Yes or No."""
        if self.tid is not None:
            self.answers = (*self.answers, (self.tid, event))

    def _decide(self, outcome: str) -> None:
        assert self.tid is not None
        if self.outcome(self.tid) is None:
            self.outcomes = (*self.outcomes, (self.tid, outcome))
        self.machine.notify(f"{outcome} {self.tid.hex()[:8]}")

    def _note(self, text: str) -> None:
        self.log = (*self.log, text)

    # --- the driver's side (the plain envelope that names its sender: NamedEnvelope)

    def admit(self, message: Any, sender: str) -> str | None:
        if sender == self.name:
            return "own message"
        name = message.NAME
        if name in ("Vote", "Inquiry"):
            if not self.invites:
                return f"{name} to a party that coordinates nothing"
            known = {p for _, ps in self.proposals for p in ps}
            if sender not in known:
                return f"{name} from {sender}, who was never invited"
        elif self.invites:
            return f"{name} to a coordinator"
        elif name in ("Commit", "Abort") and sender != self.coordinator_name:
            return f"{name} from {sender}, not the transaction's coordinator"
        return None

    def receiving(self, message: Any, sender: str | None) -> None:
        self.message, self.sender_name = message, sender

    def material_digest(self) -> str:
        """Two-phase commit carries no keys: the digest is of the decided transactions, so
        that parties with equal digests decided the same transactions the same way."""
        return hashlib.sha256(repr(self.outcomes).encode()).hexdigest()

    def timed_out(self, state: str) -> None:
        self._note(f"timeout in {state}")

    # --- conditions

    def coordinating(self) -> bool:
        return bool(self.invites)

    def undecided(self) -> bool:
        """A transaction is under way and this party has not decided it."""
        return self.tid is not None and self.outcome(self.tid) is None

    def prepared(self) -> bool:
        """A participant that voted yes and has not heard the decision."""
        return self.undecided() and self.vote is True

    def decided(self) -> bool:
        """The coordinator decided the transaction the message names."""
        return self.outcome(self.message.tid) is not None

    def committed(self) -> bool:
        return self.outcome(self.message.tid) == COMMIT

    def sameTransaction(self) -> bool:
        return self.tid is not None and self.message.tid == self.tid

    def votedNo(self) -> bool:
        return not self.message.yes

    def allVotedYes(self) -> bool:
        yes = {p for p, v in self.votes if v}
        return yes.issuperset(self.participants)

    def invited(self) -> bool:
        """A Prepare that names this party, of a transaction it has not seen."""
        m = self.message
        seen = {t for t, _ in self.outcomes} | ({self.tid} if self.tid is not None else set())
        return self.name in m.participants and m.tid not in seen

    # --- actions: the coordinator

    def newTransaction(self) -> None:
        self.tid = self.rng.getrandbits(8 * TID_SIZE).to_bytes(TID_SIZE, "big")
        self.participants = self.invites
        self.votes = frozenset()
        self.proposals = (*self.proposals, (self.tid, self.participants))
        self.buffer.tid = self.tid
        self.buffer.participants = self.participants

    def recordVote(self) -> None:
        assert self.sender_name is not None
        self.votes |= {(self.sender_name, bool(self.message.yes))}

    def decideCommit(self) -> None:
        self._decide(COMMIT)
        self.buffer.tid = self.tid

    def decideAbort(self) -> None:
        self._decide(ABORT)
        self.buffer.tid = self.tid

    # --- actions: a participant

    def joinTransaction(self) -> None:
        m = self.message
        self.tid, self.participants, self.coordinator_name = m.tid, tuple(m.participants), self.sender_name
        self.vote = None

    def askUser(self) -> None:
        assert self.tid is not None
        self.machine.notify("vote on", (self.tid.hex()[:8],))

    def voteYes(self) -> None:
        self.vote = True
        self.buffer.tid, self.buffer.yes = self.tid, True

    def voteNo(self) -> None:
        """A no aborts at once: the participant never promised to commit."""
        self.vote = False
        self.buffer.tid, self.buffer.yes = self.tid, False
        self._decide(ABORT)

    def commitTransaction(self) -> None:
        self._decide(COMMIT)

    def abortTransaction(self) -> None:
        self._decide(ABORT)

    def askForDecision(self) -> None:
        self.buffer.tid = self.tid

    # --- peers: whom `send ... to` addresses

    def coordinator(self) -> str:
        assert self.coordinator_name is not None, "a participant outside a transaction sends nothing"
        return self.coordinator_name

    def sender(self) -> str:
        assert self.sender_name is not None, "an answer needs a message to answer"
        return self.sender_name


if TYPE_CHECKING:
    def _conforms(party: CommitParty) -> TransactionBindings:
        """mypy checks the party against the interface generated from commit.fsm."""
        return party
