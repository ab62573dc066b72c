"""Berty contact request invariants, for the explorer (runtime.harness.explore;
docs/exploration.md). Parties marked `attacker` are not honest: these judge the others.

- `authentication` (safety): an honest Requester completes a handshake only with the
  account it expected (the contact its user holds), and, when that account is honest,
  only on a.b its device signed (step 4); an honest Responder records a
  request from an honest account only if that account's device completed the same
  handshake (the same a.b) with it: no one is added under an honest name it did not
  choose.
- `secrecy` (safety): no attacker holds the a.b of a handshake two honest parties
  completed with each other, nor computes the contact group of two honest accounts.
- `agreement` (quiescent): when nothing is in flight and no timer is pending, an honest
  Responder that recorded a request from an honest Requester and that Requester agree:
  the Requester has sent it to the Responder's account, and both hold the same contact
  group.
- `blocked_stay_out` (safety): an account a Responder blocked is never recorded again
  (no new request, no contact).

Replays (the replay fault) must change nothing (`replays_change_nothing`): a message of an
earlier handshake, delivered again, meets no ephemeral key that could open it. Except
RequesterHello (`replayable`): step 1 carries nothing a Responder could check, so a
replayed Hello starts a handshake, which cannot complete (step 3 needs the ephemeral
private key the replay lacks) and times out; the safety invariants judge that it never
completes (protocols/berty/README.md, finding 1).

Device linking (the fsm DeviceLinking; protocols/berty/linking.py). Each invariant reads
only the parties of its own fsm, so it holds trivially in a world of the other's.

- `secrets_only_after_challenge` (safety): an honest device of the account seals the
  account's secrets only to a device ID that passed the challenge of the one request its
  invitation took (a request taken spends the invitation).
- `challenges_are_the_users` (safety): a challenge passes exactly when the user did it
  right: a QR code passes for the device whose code the user scanned and fails for any
  other; a PIN passes when the device with the requested ID signed the PIN A displays
  (its user typed it) and fails otherwise; a fingerprint passes only on the user's
  confirmation.
- `held_only_if_handed` (safety): a new device holds an account's secrets only if a
  device of that account sealed them to its own device ID, and holds them intact.
- `attackers_stay_out` (safety): an attacker holds no account's secrets, unless the
  account's user confirmed the attacker's fingerprint (the challenge the document warns
  about: "the user can confirm the equality without carefully reading").
- `linking_ends` (terminal): on an undisturbed run (no fault, no timeout, no rejection),
  once nothing more can happen and no dialog is left open, every challenge A started is
  decided (A is Closed), and an honest device that passed it with its own device ID
  holds the account's secrets.

Linking messages replayed change nothing (`replays_change_nothing`, no exemption): the
invitation's token is spent by the request it takes, a challenge and a PIN are answered
once, and a new device takes one box.

Multi-member groups (the fsm MultiMemberGroup; protocols/berty/group_device.py). Parties
marked `attacker` (outsiders without the group secret) are not honest.

- `opened_as_sent` (safety): every message an honest device opened was sent by an honest
  device of the group, with that counter and that plaintext, and it opened it once.
- `forward_secrecy` (safety): an honest device opens a message only if its sender had boxed
  its chain key to the device's member before sending it; so a late member never opens a
  message sent before its Member Entry (which its sender must have indexed first).
- `outsiders_stay_out` (safety): no honest device indexes an outsider's device, holds its
  chain or opens its messages, and no outsider holds a chain or opens a message.
- `delivered_are_opened` (quiescent): on an undisturbed run (no fault), once nothing is in
  flight,
  every honest device has opened, exactly once, every message sent after its sender had
  boxed its chain key to the device's member; and every honest device that announced
  itself holds the chain of every other.

Group entries and messages replayed change nothing (no exemption): a Member Entry, Init
Member Entry or Secret Entry indexes nothing it did not (a device keeps its member, a chain
is registered once), a message's key is spent by its first opening, and a held message is
held once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from protocols.berty import crypto
from protocols.berty.device import ANSWERED, REQUESTER, RESPONDER, BertyDevice
from protocols.berty.group_device import GroupMemberDevice
from protocols.berty.linking import FINGERPRINT, PIN, QR_CODE, LinkingDevice
from runtime.manifest import Invariants

if TYPE_CHECKING:
    from runtime.harness.explore import World

__all__ = ["INVARIANTS", "observed"]


def device(world: World, name: str) -> BertyDevice:
    return cast(BertyDevice, world.parties[name].device)


def observed(p: Any) -> tuple[Any, ...]:
    """What the safety invariants read of a party: its outcomes and its handshake's a.b
    (contact request); the challenges passed and failed, the secrets sealed and held
    (device linking)."""
    d = p.device
    if isinstance(d, LinkingDevice):
        return d.verified, d.refused, d.handed, d.account
    if isinstance(d, GroupMemberDevice):
        state = d.state
        return d.read, d.sent, state.devices, tuple(k for k, _ in state.chains), state.secrets_sent, d.announced
    ab = d.handshake.ab if d.handshake is not None else None
    return d.sent, d.requests, d.contacts, d.blocked, d.sessions, ab


def _contacts(world: World) -> dict[str, BertyDevice]:
    """The parties that run the contact request."""
    return {n: p.device for n, p in world.parties.items() if isinstance(p.device, BertyDevice)}


def _honest(world: World) -> dict[str, BertyDevice]:
    return {n: d for n, d in _contacts(world).items() if not d.attacker}


def _owner(world: World) -> dict[bytes, str]:
    return {d.account.public: n for n, d in _contacts(world).items()}


def authentication(world: World) -> str | None:
    honest = _honest(world)
    owner = _owner(world)
    for name, d in honest.items():
        for role, account, ab in d.sessions:
            if role == REQUESTER and (d.contact is None or account != d.contact.account):
                return f"{name} completed a handshake with {owner.get(account, '?')}, not the contact it holds"
            peer = owner.get(account)
            if role == REQUESTER and peer in honest and (ANSWERED, d.account.public, ab) not in honest[peer].sessions:
                return f"{name} completed a handshake with {peer}, whose device never signed its a.b"
            if role == RESPONDER and peer in honest and (REQUESTER, d.account.public, ab) not in honest[peer].sessions:
                return f"{name} recorded a request from {peer}, who completed no such handshake with it"
    return None


def secrecy(world: World) -> str | None:
    honest = _honest(world)
    owner = _owner(world)
    shared = {ab: f"{owner.get(account, '?')} and {name}" for name, d in honest.items()
              for role, account, ab in d.sessions if role == RESPONDER and owner.get(account) in honest}
    for name, d in _contacts(world).items():
        if not d.attacker:
            continue
        held = {ab for _, _, ab in d.sessions} | ({d.handshake.ab} if d.handshake and d.handshake.ab else set())
        leaked = held & set(shared)
        if leaked:
            return f"{name} holds the a.b of the handshake {shared[leaked.pop()]} completed"
        groups = {g for _, g in d.sent} | {g for _, g in d.contacts}
        for a in honest.values():
            for b in honest.values():
                if a is not b and a.group_with(b.account.public).public_key in groups:
                    return f"{name} is in the contact group of two honest accounts"
    return None


def agreement(world: World) -> str | None:
    honest = _honest(world)
    owner = _owner(world)
    for name, d in honest.items():
        for account, _ in d.requests + d.contacts:
            peer = owner.get(account)
            if peer not in honest:
                continue
            mine = d.group_with(account).public_key
            if (d.account.public, mine) not in honest[peer].sent:
                return f"{name} holds a request from {peer}, whose device did not send it to {name}'s account"
    return None


def consented_requests_complete(world: World) -> str | None:
    """Progress: in a run that ends without faults or timeouts, in which every user who
    answered consented, a contact request its user sent to an honest Responder completes:
    the Requester has sent it (step 5) and the Responder's user has it (to answer, or
    answered with an accept). The security invariants above hold as well for a handshake
    that never happens; this one does not. With an attacker on the channel nothing is
    promised but the security invariants."""
    if world.faults or world.timeouts_fired or world.disturbed or world.sim.network.in_flight():
        return None
    if any(d.attacker for d in _contacts(world).values()):
        return None
    honest = _honest(world)
    owner = _owner(world)
    for name, d in honest.items():
        if d.contact is None or not world.accepted.get(name):
            continue
        peer = owner.get(d.contact.account)
        if peer not in honest or not honest[peer].responds or d.account.public in honest[peer].blocked:
            continue  # a Responder that blocked the Requester answers nothing after step 3, by design
        if not any(account == d.contact.account for account, _ in d.sent):
            return (f"{name}'s user requested {peer}'s contact, but {name} never sent the request "
                    f"({world.state_of(name)})")
        theirs = honest[peer].requests + honest[peer].contacts
        if not any(account == d.account.public for account, _ in theirs):
            return f"{name} sent its request, but {peer}'s user never got it ({world.state_of(peer)})"
    return None


def handshakes_end_at_rest(world: World) -> str | None:
    """Where a contact handshake ends: at the end of a run without faults, timeouts or an
    attacker, with nothing in flight, each party of the contact request rests in its
    role's state for what it holds. A Requester in RequestSent once it sent its request
    (step 5), else in Idle; a Responder in Requested while a request waits for its user,
    else in Listening. A party left in another state, or in the wrong one for what it
    holds, has lost its place in the protocol, even when no key went astray; and a
    Requester that sent its request holds the handshake's ephemeral keys no more.

    Checked where nothing is left to happen but what disturbs the run (`stalled`), so a
    party that waits in a handshake state for its timeout is judged before the timeout
    excuses the run. Not a Requester whose wait is how its handshake ends by design: one
    its Responder blocked, or one of a disturbed run (a request sent to a renewed seed's
    old point, or dropped by a refusal, gets no answer). A Responder has no such wait: once
    its user answered, it listens again."""
    if world.faults or world.timeouts_fired or world.sim.network.in_flight():
        return None
    contacts = _contacts(world)
    if any(d.attacker for d in contacts.values()):
        return None
    blocked = {a for d in contacts.values() for a in d.blocked}
    for name, d in contacts.items():  # every party honest
        if world.parties[name].deadline is not None and not d.responds \
                and (world.disturbed or d.account.public in blocked):
            continue
        responder_rest = "Requested" if d.requests else "Listening"
        rest = responder_rest if d.responds else "RequestSent" if d.sent else "Idle"
        if world.state_of(name) != rest:
            holds = (f"{len(d.requests)} request(s) waiting for its user" if d.responds
                     else "its request sent" if d.sent else "no request sent")
            return f"{name} ends in {world.state_of(name)}, with {holds}: it should rest in {rest}"
        if rest == "RequestSent" and d.handshake is not None:
            # Its last message sent, the Requester's handshake is over: its ephemeral keys
            # must be gone (endHandshake), or a later compromise opens the handshake.
            return f"{name} sent its request, but still holds the handshake's ephemeral keys"
    return None


def blocked_stay_out(world: World) -> str | None:
    for name, d in _honest(world).items():
        again = [a for a, _ in d.requests + d.contacts if a in d.blocked]
        if again:
            return f"{name} recorded a request from an account it blocked"
    return None


# --- device linking


def _linking(world: World) -> dict[str, LinkingDevice]:
    """The parties that run device linking."""
    return {n: p.device for n, p in world.parties.items() if isinstance(p.device, LinkingDevice)}


def _inviters(world: World) -> dict[str, LinkingDevice]:
    """The honest devices of an account (an inviter is never an attacker: parties.py)."""
    return {n: d for n, d in _linking(world).items() if d.own_account is not None and not d.attacker}


def _who(devices: dict[str, LinkingDevice], device_id: bytes) -> str:
    return next((n for n, d in devices.items() if d.device_id == device_id), device_id.hex()[:8])


def secrets_only_after_challenge(world: World) -> str | None:
    devices = _linking(world)
    for name, a in _inviters(world).items():
        passed = {k for _, k in a.verified}
        for k in a.handed:
            if k not in passed:
                return f"{name} sealed the account's secrets to {_who(devices, k)}, which passed no challenge"
        if len(a.verified) + len(a.refused) > 1 or len(a.handed) > 1:
            return f"{name} ran more than one challenge on its one invitation"
        if a.candidate_id is not None and a.invitation_open:
            return f"{name} took a request and its invitation is still open"
    return None


def _pin_typed(devices: dict[str, LinkingDevice], a: LinkingDevice, device_id: bytes) -> bool:
    """Whether the device that asked with `device_id` (A's candidate) holds that ID's key
    and its user typed the PIN A displays."""
    d = devices.get(a.candidate_peer or "")
    return d is not None and d.device_id == device_id and d.typed_pin == a.pin


def challenges_are_the_users(world: World) -> str | None:
    devices = _linking(world)
    for name, a in _inviters(world).items():
        for passed, entries in ((True, a.verified), (False, a.refused)):
            for kind, k in entries:
                if kind == QR_CODE:
                    right = a.scanned == crypto.linking_qr_payload(k)
                elif kind == PIN:
                    right = _pin_typed(devices, a, k)
                else:
                    assert kind == FINGERPRINT
                    continue  # the user's word either way
                if passed != right:
                    what = "passed" if passed else "failed"
                    return f"{name}'s {kind} challenge {what} for {_who(devices, k)}, though the user did otherwise"
    return None


def held_only_if_handed(world: World) -> str | None:
    devices = _linking(world)
    inviters = _inviters(world)
    for name, b in devices.items():
        if b.own_account is not None or b.account is None:
            continue
        sources = [a for a in inviters.values() if a.own_account == b.account]
        if not sources:
            return f"{name} holds account secrets no device of an account holds"
        if not any(b.device_id in a.handed for a in sources):
            return f"{name} holds an account's secrets, which no device of the account sealed to its device ID"
    return None


def attackers_stay_out(world: World) -> str | None:
    for name, m in _linking(world).items():
        if not m.attacker or m.account is None:
            continue
        confirmed = [a for a in _inviters(world).values()
                     if a.own_account == m.account and (FINGERPRINT, m.device_id) in a.verified]
        if not confirmed:
            return f"attacker {name} holds an account's secrets"
    return None


_DIALOGS = ("ScanQRCode", "EnterPin", "ConfirmFingerprint", "RejectFingerprint")


def linking_ends(world: World) -> str | None:
    if world.faults or world.timeouts_fired or world.disturbed:
        return None
    for p in world.parties.values():
        events = p.machine.Event  # type: ignore[attr-defined]
        if any(e in events.__members__ and p.machine.handles(events[e]) for e in _DIALOGS):
            return None  # a user still to answer: not stuck
    devices = _linking(world)
    for name, a in _inviters(world).items():
        if a.candidate_id is not None and world.parties[name].machine.state_name != "Closed":
            return f"{name}'s challenge of {_who(devices, a.candidate_id)} is never decided"
        for _, k in a.verified:
            b = devices.get(a.candidate_peer or "")
            if b is not None and not b.attacker and b.device_id == k and b.account != a.own_account:
                return f"{a.candidate_peer} passed {name}'s challenge, and does not hold the account's secrets"
    return None


# --- multi-member groups


def _grouped(world: World) -> dict[str, GroupMemberDevice]:
    """The parties that run a multi-member group."""
    return {n: p.device for n, p in world.parties.items() if isinstance(p.device, GroupMemberDevice)}


def _members(world: World) -> dict[str, GroupMemberDevice]:
    return {n: d for n, d in _grouped(world).items() if not d.attacker}


def opened_as_sent(world: World) -> str | None:
    members = _members(world)
    senders = {d.device_pk: (n, {(s.counter, s.plaintext) for s in d.sent}) for n, d in members.items()}
    for name, d in members.items():
        if len(set(d.read)) != len(d.read):
            return f"{name} opened a message twice"
        for device_pk, counter, plaintext in d.read:
            sender = senders.get(device_pk)
            if sender is None:
                return f"{name} opened a message from a device no member holds"
            if (counter, plaintext) not in sender[1]:
                return f"{name} opened message {counter} of {sender[0]} as a text {sender[0]} did not send"
    return None


def forward_secrecy(world: World) -> str | None:
    members = _members(world)
    served = {d.device_pk: (n, {s.counter: s.served for s in d.sent}) for n, d in members.items()}
    for name, d in members.items():
        for device_pk, counter, _ in d.read:
            sender, sent = served.get(device_pk, ("?", {}))
            if d.member_pk not in sent.get(counter, ()):
                return (f"{name} opened message {counter} of {sender}, sent before {sender} gave {name} its chain "
                        f"key")
    return None


def outsiders_stay_out(world: World) -> str | None:
    grouped = _grouped(world)
    outsiders = {d.device_pk: n for n, d in grouped.items() if d.attacker}
    for name, d in grouped.items():
        if d.attacker:
            if d.state.chains or d.read:
                return f"outsider {name} holds a member's chain key or opened a message"
            continue
        state = d.state
        for device_pk in [k for k, _ in state.devices] + [k for k, _ in state.chains] + [k for k, _, _ in d.read]:
            if device_pk in outsiders:
                return f"{name} took an entry or a message of outsider {outsiders[device_pk]}"
    return None


def delivered_are_opened(world: World) -> str | None:
    if world.faults or world.timeouts_fired or world.disturbed:
        return None
    members = _members(world)
    for name, d in members.items():
        opened = {(k, c) for k, c, _ in d.read}
        for sender, s in members.items():
            if s is d:
                continue
            for sent in s.sent:
                if d.member_pk in sent.served and (s.device_pk, sent.counter) not in opened:
                    return f"{name} never opened message {sent.counter} of {sender}, who had given it its chain key"
            if d.announced and s.announced and d.state.chain_of(s.device_pk) is None:
                return f"{name} never got the chain key of {sender}, both members"
    return None


INVARIANTS = Invariants(safety=(authentication, secrecy, blocked_stay_out, secrets_only_after_challenge,
                                challenges_are_the_users, held_only_if_handed, attackers_stay_out,
                                opened_as_sent, forward_secrecy, outsiders_stay_out),
                        quiescent=(agreement, delivered_are_opened),
                        terminal=(linking_ends, consented_requests_complete), stalled=(handshakes_end_at_rest,),
                        observed=observed, replays_change_nothing=True, replayable=("RequesterHello",))
