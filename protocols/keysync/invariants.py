"""KeySync's invariants, for the explorer (runtime.harness.explore).

Written as a protocol designer would write them, outside the compiler: each is a
function of the composed world returning None when it holds, else what is wrong.
`safety` is checked in every state, `quiescent` in every quiet state (nothing in flight,
no timer pending), `terminal` where the explorer's budgets are spent and nothing is left
to happen but timeouts. The explorer tells devices apart by their state records
(protocols.keysync.device.DeviceState).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from protocols.keysync.device import KeySyncDevice
from runtime.manifest import Invariants

if TYPE_CHECKING:
    from runtime.harness.explore import World

__all__ = ["INVARIANTS", "negotiation", "observed"]

STABLE = {"Sole", "Grouped", "End"}
# Messages that carry private keys to the partner of a negotiation (2.2.1.1, 2.2.2.1);
# GroupKeysUpdate only goes to the group and belongs to no negotiation.
NEGOTIATION_KEYS = {"OwnKeysRequester", "OwnKeysOfferer", "GroupKeysForNewMember", "GroupKeysAndClose"}


def device(world: World, name: str) -> KeySyncDevice:
    return cast(KeySyncDevice, world.parties[name].device)


def observed(party: Any) -> int:
    """What the safety invariants read of a party (besides the users' answers): the keys
    it sent."""
    return len(party.device.sent_keys_to)


def negotiation(device: Any) -> bytes | None:
    """What a user's Accept answers: the device's current negotiation (A.1.3.4)."""
    return device.negotiation  # type: ignore[no-any-return]


def grouped_parties_share_keys(world: World) -> str | None:
    """(1) When every party is Grouped and quiet, all hold identical key material."""
    if not world.quiet or any(world.state_of(n) != "Grouped" for n in world.parties):
        return None
    digests = {n: device(world, n).keyring.material_digest() for n in world.parties}
    if len(set(digests.values())) > 1:
        return f"grouped parties hold different key material: {digests}"
    return None


def no_keys_before_both_accepted(world: World) -> str | None:
    """(2) No private key leaves a device before the user accepted on both sides of that
    negotiation."""
    for name in world.parties:
        for message, fprs, negotiation in device(world, name).sent_keys_to:
            if message not in NEGOTIATION_KEYS or not fprs:
                continue
            if negotiation not in world.accepted[name]:
                return f"{name} sent {message} with private keys before its user accepted"
            if not any(negotiation in acc for other, acc in world.accepted.items() if other != name):
                return f"{name} sent {message} with private keys before the partner's user accepted"
    return None


def no_deadlock(world: World) -> str | None:
    """(3) In a quiet state every party is in Sole, Grouped or End."""
    stuck = {n: world.state_of(n) for n in world.parties if world.state_of(n) not in STABLE}
    return f"quiet, but parties are stuck in {stuck}" if stuck else None


def _stalled(world: World) -> dict[str, str] | None:
    """The parties waiting in a handshake state for a message that cannot come, in a run
    without faults or timeouts that has ended (no message in flight, no choice left) with
    no dialog open; None if there are none. A party may wait while some dialog is open,
    because that user may still answer. After a fault or a timeout, waiting for a timeout
    is how the draft recovers (the quiet checks, with timeouts in the budget, verify that
    it does)."""
    if world.faults or world.timeouts_fired or world.sim.network.in_flight():
        return None
    if any(_dialog_open(p) for p in world.parties.values()):
        return None
    stuck = {n: world.state_of(n) for n in world.parties if world.state_of(n) not in STABLE}
    return stuck or None


def no_stall_after_acceptance(world: World) -> str | None:
    """(3) A run in which every user who answered accepted, without faults or timeouts,
    never ends with a party waiting in a handshake state: the worst stall, where the users
    did everything asked of them."""
    stuck = _stalled(world)
    if stuck is None or world.disturbed:
        return None
    return f"every user accepted, nothing in flight and no dialog open, but {stuck} can only wait for a timeout"


def no_stall(world: World) -> str | None:
    """(3, continued) The same after a user's Cancel or Reject: the other devices must be
    told and go back to where they were, not wait for a timeout (the draft's finding 5 is
    one such stall, reported apart from stalls after acceptance)."""
    stuck = _stalled(world)
    if stuck is None or not world.disturbed:
        return None
    return f"after a Cancel or Reject, nothing in flight and no dialog open, but {stuck} can only wait for a timeout"


def _groups(world: World) -> list[list[str]]:
    """The Grouped parties, by group: two are in one group when they mark a key in common
    as the group's (keyring.group)."""
    grouped = [n for n in world.parties if world.state_of(n) == "Grouped"]
    groups: list[list[str]] = []
    for name in grouped:
        keys = device(world, name).keyring.group
        for g in groups:
            if any(keys & device(world, other).keyring.group for other in g):
                g.append(name)
                break
        else:
            groups.append([name])
    return groups


def grouped_parties_use_the_same_keys(world: World) -> str | None:
    """(8) In a quiet state, the devices of one group agree on the keys in use: for every
    own identity the same default key (the key they encrypt and sign with), which each of
    them marks as a key of the group (what it admits group messages by). Holding the same
    keys (1) is not using them. (The group marks are not compared whole: a joining device
    also marks its key of before the join, which it no longer uses.)"""
    if not world.quiet:
        return None
    for group in _groups(world):
        views = {n: dict(device(world, n).keyring.default) for n in group}
        first, *rest = group
        for other in rest:
            mine, theirs = views[first], views[other]
            differ = sorted(a for a in mine.keys() | theirs.keys() if mine.get(a) != theirs.get(a))
            if differ:
                return f"{first} and {other} are grouped but use different default keys for {', '.join(differ)}"
        for name in group:
            unmarked = set(views[name].values()) - device(world, name).keyring.group
            if unmarked:
                return f"{name} is grouped but does not mark its key in use {sorted(unmarked)[0][:8]} as the group's"
    return None


def group_keys_stay_in_the_group(world: World) -> str | None:
    """(9) In a quiet state, no private key a group uses (a member's default key) is held
    by a device outside that group: after a Reject, Cancel, timeout or leave, what a device
    outside the group may keep are keys the group no longer uses."""
    if not world.quiet:
        return None
    groups = _groups(world)
    for group in groups:
        in_use = {fpr for n in group for fpr in device(world, n).keyring.default.values()}
        for outsider in world.parties:
            if outsider in group:
                continue
            held = in_use & set(device(world, outsider).keyring.private)
            own = set(getattr(device(world, outsider), "original", ()))
            if held - own:
                return (f"{outsider} ({world.state_of(outsider)}) holds the private key in use "
                        f"{sorted(held - own)[0][:8]} of the group {', '.join(group)}")
    return None


def _dialog_open(party: Any) -> bool:
    machine = party.machine
    return bool(machine.handles(machine.Event["Accept"]))


def agreement_on_the_outcome(world: World) -> str | None:
    """(4) In a quiet state, the devices that completed the same negotiation agree on
    whether it formed (or enlarged) a group: either each of them is Grouped and holds the
    others' original keys, or none is. (Members of an existing group stay Grouped when a
    joining device is rejected, but without its keys: that is agreement.)"""
    by_negotiation: dict[bytes, list[str]] = {}
    for name in world.parties:
        negotiation = device(world, name).negotiation
        if negotiation is not None and world.state_of(name) in STABLE:
            by_negotiation.setdefault(negotiation, []).append(name)
    for negotiation, names in by_negotiation.items():
        joined = {n: world.state_of(n) == "Grouped" and all(
            device(world, o).original <= set(device(world, n).keyring.private)  # type: ignore[attr-defined]
            for o in names if o != n) for n in names}
        if len(set(joined.values())) > 1:
            views = ", ".join(f"{n} {world.state_of(n)}{'' if joined[n] else ' (not joined)'}" for n in names)
            return f"negotiation {negotiation.hex()[:8]}: {views}"
    return None


def _trusted_foreign(world: World, name: str) -> str | None:
    """The keys `name` trusts without holding their private part (shortened, for a
    message), or None: a device's own keys and its group's are held, any other is another
    device's."""
    ring = device(world, name).keyring
    foreign = ring.trusted - set(ring.private)
    return ", ".join(sorted(f[:8] for f in foreign)) if foreign else None


def trust_withdrawn(world: World) -> str | None:
    """(7) In a quiet state, a device that is not Grouped trusts no other device's key:
    the handshake's trustThisKey is withdrawn (untrustThisKey) when no group forms."""
    for name in world.parties:
        if world.state_of(name) == "Grouped":
            continue
        foreign = _trusted_foreign(world, name)
        if foreign:
            return f"{name} is {world.state_of(name)} but trusts {foreign}"
    return None


def accepted_negotiations_group(world: World) -> str | None:
    """(5) Progress: once the users accepted on both devices of a negotiation, and no
    Reject, Cancel or fault intervened, the quiet end has both devices grouped."""
    for name, acc in world.accepted.items():
        for negotiation in acc:
            partners = [o for o, a in world.accepted.items() if o != name and negotiation in a]
            if not partners:
                continue
            if world.disturbed:
                return None
            for n in [name, *partners]:
                if world.state_of(n) != "Grouped":
                    return f"{name} and {', '.join(partners)} accepted, but {n} ended in {world.state_of(n)}"
    return None


def ended_devices_are_disabled(world: World) -> str | None:
    """(10) In a quiet state a device in End has disabled sync: End is where `disable`
    takes the FSM (A.1.3.2), and a device there that did not disable sync is stuck in a
    state with no handler while its sync still runs."""
    for name in world.parties:
        if world.state_of(name) == "End" and not device(world, name).is_disabled:
            return f"{name} is in End, but did not disable sync"
    return None


def devices_meet(world: World) -> str | None:
    """(11) Progress before any dialog: in a quiet state of a run without faults, timeouts
    or a user's Reject or Cancel, no Sole device is left beside another device that could
    take it in (Sole, or Grouped and not disabled). A Sole device's Beacon reaches the
    others, and one of them offers or asks (2.2.1.1, 2.2.2.1): the devices meet and a
    dialog opens. (Invariant 5 begins where this one ends, at both users' Accept.)"""
    if world.disturbed or world.faults:
        return None
    sole = [n for n in world.parties if world.state_of(n) == "Sole" and not device(world, n).is_disabled]
    others = [n for n in world.parties if n not in sole and world.state_of(n) in ("Sole", "Grouped")
              and not device(world, n).is_disabled]
    if sole and (len(sole) > 1 or others):
        return f"quiet, but {', '.join(sole)} never met {', '.join([*sole[1:], *others])}"
    return None


def users_are_asked_once(world: World) -> str | None:
    """(12) At the end of a run no device shows a dialog about a negotiation its user
    already answered (accepted, rejected or cancelled): a user is asked once (2.2.1.1; a
    second dialog for the same negotiation is a handshake state entered again)."""
    for name, party in world.parties.items():
        if not _dialog_open(party):
            continue
        asked = negotiation(party.device)
        if asked in world.accepted[name]:
            return f"{name} asks its user again about a negotiation the user accepted ({world.state_of(name)})"
        if asked in world.answered[name]:
            return (f"{name} asks its user again about a negotiation the user rejected or cancelled "
                    f"({world.state_of(name)})")
    return None


def grouped_devices_trust_their_group(world: World) -> str | None:
    """(13) In a quiet state of a run without faults or timeouts, a Grouped device trusts
    no key but its group's: every other device's key it trusts is one whose private part
    it holds, as the group's members hold each other's. A joining device's key, trusted
    by a member on its user's Accept or on another member's GroupTrustThisKey, is
    withdrawn when the join ends without that device (7 asks the same of devices that are
    not Grouped). After a lost message or a timeout a member may be left trusting it: a
    Grouped device has no timer, and the new device's CommitReject is not acknowledged
    (as finding 6's GroupKeysAndClose is not)."""
    if world.faults or world.timeouts_fired:
        return None
    for name in world.parties:
        if world.state_of(name) != "Grouped":
            continue
        foreign = _trusted_foreign(world, name)
        if foreign:
            return f"{name} is Grouped but trusts {foreign}, a key outside its group"
    return None


def every_member_is_asked(world: World) -> str | None:
    """(14) 2.2.2.1, steps 5 and 6: the winner's GroupHandshake "activates the Trustwords
    dialog on all Grouped Devices", so that the user may accept on any of them. In a world
    with nothing in flight, of a run without faults or timeouts, while a member of a group
    shows the dialog of a negotiation that no user has accepted yet, every other member of
    its group that has not disabled sync shows it too. (A lost GroupHandshake leaves a
    member's user unasked; the join still completes through the others.)

    A safety check, since a dialog state has a timer and a world with one is never quiet;
    but only of worlds with nothing in flight, which the reduction never leaves out (the
    worlds it skips have the delivery it took first in flight), so that it may read more
    of a party than `observed`."""
    if world.sim.network.in_flight() or world.faults or world.timeouts_fired:
        return None
    accepted = set().union(*world.accepted.values())
    for name, party in world.parties.items():
        asked = negotiation(party.device)
        group = device(world, name).keyring.group
        if not group or not _dialog_open(party) or asked in accepted:
            continue
        for other, p in world.parties.items():
            theirs = cast(KeySyncDevice, p.device)
            if other == name or theirs.is_disabled or not group & theirs.keyring.group:
                continue
            if not _dialog_open(p) or negotiation(p.device) != asked:
                return (f"{name} asks its user about negotiation {asked.hex()[:8] if asked else None}, "
                        f"but {other} of its group does not ({world.state_of(other)})")
    return None


INVARIANTS = Invariants(
    safety=(no_keys_before_both_accepted, every_member_is_asked),
    quiescent=(grouped_parties_share_keys, no_deadlock, agreement_on_the_outcome, accepted_negotiations_group,
               trust_withdrawn, grouped_parties_use_the_same_keys, group_keys_stay_in_the_group,
               ended_devices_are_disabled, devices_meet, grouped_devices_trust_their_group),
    terminal=(no_stall_after_acceptance, no_stall, users_are_asked_once),
    observed=observed,
)
