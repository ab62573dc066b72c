"""Two-phase commit's invariants, for the explorer (runtime.harness.explore;
docs/exploration.md). They read the parties' logs (protocols.commit.party): the
transactions each party decided, the ones the coordinator proposed, and the answers the
users gave.

- `atomicity` (safety): no transaction is committed by one party (participant or
  coordinator) and aborted by another.
- `commit_needs_every_yes` (safety): no party commits a transaction unless the user of
  every participant it invited answered Yes to it.
- `quiet_means_decided` (quiescent): when nothing is in flight and no timer is pending,
  every participant that joined a transaction has decided it.
- `abort_needs_a_no` (safety): no party aborts a transaction unless the user of a
  participant it invited answered No to it, or a timeout fired (the coordinator's, or a
  dialog's, which votes no).
- `every_participant_decides` (terminal): when a run without faults or timeouts ends
  and no user is still to answer, the coordinator and every participant of every
  proposed transaction have decided it.
- `parties_come_up` (quiescent): no party is still in InitState.
- `states_agree_with_records` (safety): a party is in the state its record names: the
  coordinator Idle or Collecting as it decided its transaction or not; a participant
  Ready, Voting, Prepared, Committed or Aborted, as its record says of its transaction.
- `every_yes_commits` (terminal): and a transaction every invited user answered Yes to
  (with no other answer to it) is committed by all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from protocols.commit.party import ABORT, COMMIT, CommitParty
from runtime.manifest import Invariants, states_agree

if TYPE_CHECKING:
    from runtime.harness.explore import World

__all__ = ["INVARIANTS", "observed"]

PAST = {COMMIT: "committed", ABORT: "aborted"}


def party(world: World, name: str) -> CommitParty:
    return cast(CommitParty, world.parties[name].device)


def observed(p: Any) -> tuple[Any, ...]:
    """What the safety invariants read of a party: its decisions, its user's answers and
    the transactions it proposed."""
    d = p.device
    return d.outcomes, d.answers, d.proposals


def _short(tid: bytes) -> str:
    return tid.hex()[:8]


def atomicity(world: World) -> str | None:
    decided: dict[bytes, dict[str, list[str]]] = {}
    for name in world.parties:
        for tid, outcome in party(world, name).outcomes:
            decided.setdefault(tid, {}).setdefault(outcome, []).append(name)
    for tid, by_outcome in decided.items():
        if len(by_outcome) > 1:
            views = "; ".join(f"{', '.join(names)} {PAST[outcome]}" for outcome, names in sorted(by_outcome.items()))
            return f"transaction {_short(tid)}: {views}"
    return None


def commit_needs_every_yes(world: World) -> str | None:
    invited: dict[bytes, tuple[str, ...]] = {}
    for name in world.parties:
        invited.update(party(world, name).proposals)
    yes = {(name, tid) for name in world.parties for tid, answer in party(world, name).answers if answer == "Yes"}
    for name in world.parties:
        for tid, outcome in party(world, name).outcomes:
            if outcome != COMMIT:
                continue
            missing = [p for p in invited.get(tid, ()) if (p, tid) not in yes]
            if missing:
                return f"{name} committed {_short(tid)}, but the users of {', '.join(missing)} did not answer Yes"
    return None


def abort_needs_a_no(world: World) -> str | None:
    """Validity, the other half of `commit_needs_every_yes`: an abort has a cause. A
    participant aborts on its user's No, on its dialog's timeout (a no), or on the
    coordinator's Abort; the coordinator on a participant's No or on its own timeout."""
    if world.timeouts_fired:
        return None
    no = {tid for name in world.parties for tid, answer in party(world, name).answers if answer == "No"}
    for name in world.parties:
        for tid, outcome in party(world, name).outcomes:
            if outcome == ABORT and tid not in no:
                return f"{name} aborted {_short(tid)}, but no user answered No to it and no timeout fired"
    return None


def _joined_undecided(world: World) -> dict[str, str]:
    """Participants in a transaction they have not decided, with their states."""
    return {n: world.state_of(n) for n in world.parties
            if not party(world, n).coordinating() and party(world, n).undecided()}


def quiet_means_decided(world: World) -> str | None:
    waiting = _joined_undecided(world)
    return f"quiet, but {waiting} joined a transaction they have not decided" if waiting else None


def _dialog_open(p: Any) -> bool:
    machine = p.machine
    return bool(machine.handles(machine.Event["Yes"]))


def _user_to_answer(world: World) -> bool:
    """A participant's dialog is open on a transaction its user has not answered: the run
    waits for the user (or the dialog's timeout), not for a message. A dialog open again
    on an answered transaction waits for nobody."""
    for name, p in world.parties.items():
        d = party(world, name)
        if _dialog_open(p) and not any(tid == d.tid for tid, _ in d.answers):
            return True
    return False


def every_participant_decides(world: World) -> str | None:
    if world.faults or world.timeouts_fired:
        return None
    if _user_to_answer(world):
        return None
    problems = []
    for name in world.parties:
        for tid, participants in party(world, name).proposals:
            if party(world, name).outcome(tid) is None:
                problems.append(f"{name} never decided {_short(tid)}")
            problems += [f"{p} never decided {_short(tid)} ({world.state_of(p)})" for p in participants
                         if party(world, p).outcome(tid) is None]
    return f"the run ended, but {'; '.join(problems)}" if problems else None


def _rest_state(d: CommitParty) -> str:
    """The state a party's record puts it in: the coordinator Idle once it decided its
    transaction, Collecting while not; a participant Ready before its first transaction,
    Voting while its user is to answer, Prepared after a Yes and until the decision, then
    Committed or Aborted as it decided."""
    if d.coordinating():
        return "Collecting" if d.undecided() else "Idle"
    if d.tid is None:
        return "Ready"
    outcome = d.outcome(d.tid)
    if outcome is not None:
        return "Committed" if outcome == COMMIT else "Aborted"
    return "Prepared" if d.vote else "Voting"


def states_agree_with_records(world: World) -> str | None:
    """Between any two steps each party is in the one state its record names
    (`_rest_state`). A machine that goes to the wrong state keeps its log right and
    breaks this, and the state is what its next message meets: a participant still in
    Voting after its vote takes no decision, a coordinator left in Collecting no proposal.
    Safety (`states_agree` says why the reduction judges it soundly); a party still in
    InitState is `parties_come_up`'s to judge."""
    return states_agree(world, lambda name: _rest_state(party(world, name)), excused=("InitState",))


def parties_come_up(world: World) -> str | None:
    """In a quiet state no party is still in InitState: each comes up to where its role
    starts (the coordinator Idle, a participant Ready), or nothing it never does can fail."""
    stuck = [n for n in world.parties if world.state_of(n) == "InitState"]
    return f"quiet, but {', '.join(stuck)} never left InitState" if stuck else None


def every_yes_commits(world: World) -> str | None:
    """Progress, the converse of `commit_needs_every_yes`: when a run without faults or
    timeouts ends with no dialog open, a transaction whose every invited participant's user
    answered Yes, and nobody's anything else, is committed by the coordinator and every
    participant. (Deciding, `every_participant_decides`, holds as well for an abort.)"""
    if world.faults or world.timeouts_fired or _user_to_answer(world):
        return None
    answers = {(name, tid): answer for name in world.parties for tid, answer in party(world, name).answers}
    for name in world.parties:
        for tid, participants in party(world, name).proposals:
            if any(t == tid and a != "Yes" for (_, t), a in answers.items()):
                continue
            if not all(answers.get((p, tid)) == "Yes" for p in participants):
                continue
            wrong = [n for n in (name, *participants) if party(world, n).outcome(tid) != COMMIT]
            if wrong:
                return (f"every user answered Yes to {_short(tid)}, but {', '.join(wrong)} did not commit it "
                        f"({', '.join(world.state_of(n) for n in wrong)})")
    return None


INVARIANTS = Invariants(
    safety=(atomicity, commit_needs_every_yes, abort_needs_a_no, states_agree_with_records),
    quiescent=(quiet_means_decided, parties_come_up),
    terminal=(every_participant_decides, every_yes_commits),
    observed=observed,
)
