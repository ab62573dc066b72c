"""Berty contact request invariants, for the explorer (runtime.harness.explore;
docs/exploration.md). Parties marked `attacker` are not honest: these judge the others.

- `authentication` (safety): an honest Requester completes a handshake only with the
  account it expected (the contact its user holds), and an honest Responder records a
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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from protocols.berty.device import REQUESTER, RESPONDER, BertyDevice
from runtime.manifest import Invariants

if TYPE_CHECKING:
    from runtime.harness.explore import World

__all__ = ["INVARIANTS", "observed"]


def device(world: World, name: str) -> BertyDevice:
    return cast(BertyDevice, world.parties[name].device)


def observed(p: Any) -> tuple[Any, ...]:
    """What the safety invariants read of a party: its outcomes and its handshake's a.b."""
    d = p.device
    ab = d.handshake.ab if d.handshake is not None else None
    return d.sent, d.requests, d.contacts, d.blocked, d.sessions, ab


def _honest(world: World) -> dict[str, BertyDevice]:
    return {n: device(world, n) for n in world.parties if not device(world, n).attacker}


def _owner(world: World) -> dict[bytes, str]:
    return {device(world, n).account.public: n for n in world.parties}


def authentication(world: World) -> str | None:
    honest = _honest(world)
    owner = _owner(world)
    for name, d in honest.items():
        for role, account, ab in d.sessions:
            if role == REQUESTER and (d.contact is None or account != d.contact.account):
                return f"{name} completed a handshake with {owner.get(account, '?')}, not the contact it holds"
            peer = owner.get(account)
            if role == RESPONDER and peer in honest and (REQUESTER, d.account.public, ab) not in honest[peer].sessions:
                return f"{name} recorded a request from {peer}, who completed no such handshake with it"
    return None


def secrecy(world: World) -> str | None:
    honest = _honest(world)
    owner = _owner(world)
    shared = {ab: f"{owner.get(account, '?')} and {name}" for name, d in honest.items()
              for role, account, ab in d.sessions if role == RESPONDER and owner.get(account) in honest}
    for name in world.parties:
        d = device(world, name)
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


def blocked_stay_out(world: World) -> str | None:
    for name, d in _honest(world).items():
        again = [a for a, _ in d.requests + d.contacts if a in d.blocked]
        if again:
            return f"{name} recorded a request from an account it blocked"
    return None


INVARIANTS = Invariants(safety=(authentication, secrecy, blocked_stay_out), quiescent=(agreement,),
                        observed=observed, replays_change_nothing=True, replayable=("RequesterHello",))
