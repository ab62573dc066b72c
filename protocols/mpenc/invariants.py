"""mpENC's invariants, for the explorer (runtime.harness.explore; docs/exploration.md).

- `states_agree_with_records` (safety): a member is in the state its record names:
  Alone without a session or an operation, InSession with a session and no operation,
  Upflowing in an operation whose downflow it has not seen, Confirming in one whose
  downflow it sent or verified.
- `members_agree` (quiescent): members whose sessions have the same sid hold the same
  group key, members and chain hash, and each verified every member's session signature.
- `operations_end` (terminal): when a run without faults or timeouts ends, no member is
  left in the middle of an operation.
- `operations_succeed` (terminal): and no operation failed: no member logged a failure
  (but an operation the concurrency resolver discarded for another, 3.3),
  the members InSession hold their sessions (one sid), none with an operation open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from protocols.mpenc.member import SUPERSEDED, GreetingMember
from runtime.manifest import Invariants, states_agree

if TYPE_CHECKING:
    from runtime.harness.explore import World

__all__ = ["INVARIANTS"]


def member(world: World, name: str) -> GreetingMember:
    return cast(GreetingMember, world.parties[name].device)


def observed(party: Any) -> None:
    """The one safety invariant reads only each member's own state and record, one fact
    per member: every silent delivery may be reordered (see `states_agree_with_records`)."""
    return None


def _rest_state(m: GreetingMember) -> str:
    """The state a member's record puts it in between any two steps."""
    op = m.operation
    if op is None:
        return "Alone" if m.session is None else "InSession"
    return "Confirming" if op.sid else "Upflowing"


def states_agree_with_records(world: World) -> str | None:
    """Between any two steps each member is in the one state its record names
    (`_rest_state`): an operation is open exactly in Upflowing and Confirming, and its sid
    (known once the downflow is sent or verified) tells the two apart. A go to the wrong
    state keeps every key right and is what the next packet meets: a member left Alone
    with an operation open takes the next upflow as a new one, one InSession with its
    operation open starts another over it. Safety (`states_agree` says why the reduction
    judges it soundly)."""
    return states_agree(world, lambda name: _rest_state(member(world, name)))


def members_agree(world: World) -> str | None:
    by_sid: dict[bytes, list[str]] = {}
    for name in world.parties:
        session = member(world, name).session
        if session is not None:
            by_sid.setdefault(session.sid, []).append(name)
    for names in by_sid.values():
        sessions = [member(world, n).session for n in names]
        first = sessions[0]
        assert first is not None
        for name, s in zip(names, sessions, strict=True):
            assert s is not None
            if (s.group_key, s.members, s.chain_hash) != (first.group_key, first.members, first.chain_hash):
                return f"{names[0]} and {name} share a sid but not the group key, members or chain hash"
            if s.verified != frozenset(s.members):
                return f"{name} completed without verifying {sorted(set(s.members) - s.verified)}"
    return None


def operations_end(world: World) -> str | None:
    if world.faults or world.timeouts_fired or world.sim.network.in_flight():
        return None
    busy = {n: world.state_of(n) for n in world.parties if world.state_of(n) in ("Upflowing", "Confirming")}
    return f"nothing in flight, but {busy} wait in an operation" if busy else None


def operations_succeed(world: World) -> str | None:
    """Progress: a run without faults or timeouts ends with every operation done, not
    only ended (`operations_end` holds as well for an operation every member aborted): no
    member logged a failure, and the members InSession hold their sessions, one sid
    among them, with no operation left open."""
    if world.faults or world.timeouts_fired or world.sim.network.in_flight():
        return None
    for name in world.parties:
        failed = [why for why in member(world, name).log if not why.endswith(SUPERSEDED)]
        if failed:
            return f"{name}: {failed[-1]}, on a run without faults or timeouts"
    in_session = [n for n in world.parties if world.state_of(n) == "InSession"]
    sids = set()
    for name in in_session:
        m = member(world, name)
        if m.session is None or m.operation is not None:
            return f"{name} is InSession {'without a session' if m.session is None else 'with an operation open'}"
        sids.add(m.session.sid)
    if len(sids) > 1:
        return f"the members InSession ({', '.join(in_session)}) are in {len(sids)} sessions"
    return None


INVARIANTS = Invariants(safety=(states_agree_with_records,), quiescent=(members_agree,),
                        terminal=(operations_end, operations_succeed), observed=observed)
