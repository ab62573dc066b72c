"""Status invariants, for the explorer (docs/exploration.md).

- `chats_decrypt_once` (safety): every chat an installation decrypted was sent, by the
  installation it came from, to it, with that plaintext; and none is decrypted twice.
- `unapproved_receive_nothing` (safety): an installation encrypts its identity's
  conversations only to its own installations its user approved.
- `every_chat_arrives` (quiescent, without faults): every chat reached every installation
  it was encrypted to (but a scenario's lost phone, `lost_at`).
- `sessions_converge` (quiescent, without faults): two installations holding usable
  sessions with each other hold the same one (spec 3.2: concurrent sessions converge),
  unless one rotated its prekey and the other has not seen the new bundle yet.
- `forward_secrecy` (quiescent): an installation's current session cannot decrypt the
  messages it decrypted before (their keys are gone).
- `installations_come_up` (quiescent): every installation is Ready and set up (dated
  prekeys, a bundle), and `asked_chats_are_sent` (quiescent, without faults): no chat its
  user wrote waits unsent while its recipient can be reached. Without them an installation
  that never comes up, or a SendChat that sends nothing, broke no invariant (`fsmc mutate`
  on first_message: 50% before, 75% with them).

Asked of the FSM's own requests and fan-out (`fsmc mutate` over every scenario scored
57.6% before them; each kills what no security invariant sees):

- `chats_fan_out` (safety): a chat sent is encrypted to an installation of its
  addressee, and to every installation of the sender's own identity enabled when it was
  sent (spec 4: every message to every device of both identities).
- `senders_are_known` (safety): an installation knows every installation it decrypted a
  chat from (it takes the message's bundles first), so it can answer.
- `requests_are_done` (safety): each RotateBundle the user asked for made a new signed
  prekey, and each installation the user approved is enabled.
- `pairings_are_seen` (quiescent, without faults): after a PairDevices, every other
  installation of the identity (but a lost one) knows the paired one.
- `contacts_learn_installations` (quiescent, without faults): an installation that sent
  a chat to an identity knows all its installations (but a lost one) afterwards: one that
  the chat did not reach answers with its bundle (spec 4.4).

Replays change nothing (`replays_change_nothing`): a DirectMessage entry decrypts once
(the message key is deleted at once: ratchet.py's confirm=True), a bundle no newer than
the last taken from its installation is ignored. Except BundleAdvert (`replayable`): it is
nothing but a signed, public bundle; replayed to an installation that never had it, it
teaches a genuine bundle, which bundles are for (spec 2.2: they travel over any channel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from protocols.status.device import StatusDevice, _decrypts
from runtime.manifest import Invariants

if TYPE_CHECKING:
    from runtime.harness.explore import World

__all__ = ["INVARIANTS", "observed"]


def _devices(world: World) -> dict[str, StatusDevice]:
    return {n: cast(StatusDevice, p.device) for n, p in world.parties.items()}


def observed(p: Any) -> tuple[Any, ...]:
    d = p.device
    return d.sent, d.received, d.own_installations(True)


def chats_decrypt_once(world: World) -> str | None:
    devices = _devices(world)
    by_key = {(d.identity, d.installation_id): d for d in devices.values()}
    for name, d in devices.items():
        if len(set(d.received)) != len(d.received):
            return f"{name} decrypted a chat twice"
        for identity, iid, plaintext in d.received:
            sender = by_key.get((identity, iid))
            if sender is None or not any(s.plaintext == plaintext and (d.identity, d.installation_id) in s.recipients
                                         for s in sender.sent):
                return f"{name} decrypted {plaintext!r}, which {iid} never sent to it"
    return None


def unapproved_receive_nothing(world: World) -> str | None:
    for name, d in _devices(world).items():
        approved = {i.installation_id for i in d.own_installations(True)}
        for s in d.sent:
            for identity, iid in s.recipients:
                if identity == d.identity and iid not in approved:
                    return f"{name} encrypted a chat to {iid}, an installation its user did not approve"
    return None


def every_chat_arrives(world: World) -> str | None:
    if world.faults or world.timeouts_fired:
        return None
    devices = _devices(world)
    by_key = {(d.identity, d.installation_id): (n, d) for n, d in devices.items()}
    for name, d in devices.items():
        for s in d.sent:
            for key in s.recipients:
                if key not in by_key:
                    continue
                rname, r = by_key[key]
                if r.lost():
                    continue  # the scenario's lost phone: nothing reaches it, by design
                if (d.identity, d.installation_id, s.plaintext) not in r.received:
                    return f"{rname} never decrypted {s.plaintext!r} from {name}"
    return None


def _rotation_unannounced(a: StatusDevice, b: StatusDevice) -> bool:
    """Whether `a` rotated its signed prekey and `b` has not yet taken a bundle with it: `a`
    expired the sessions `b` made from the old one, `b` still uses one until a bundle tells."""
    known = next((i for i in b.installations if (i.identity, i.installation_id)
                  == (a.identity, a.installation_id)), None)
    return known is not None and known.version < a.current_prekey().version


def sessions_converge(world: World) -> str | None:
    if world.faults or world.timeouts_fired:
        return None
    devices = list(_devices(world).items())
    for an, a in devices:
        for bn, b in devices:
            if an >= bn:
                continue
            if _rotation_unannounced(a, b) or _rotation_unannounced(b, a):
                continue
            sa = a.active_session(b.identity, b.installation_id)
            sb = b.active_session(a.identity, a.installation_id)
            if sa is not None and sb is not None and sa.sk != sb.sk:
                return f"{an} and {bn} use different sessions with each other"
    return None


def forward_secrecy(world: World) -> str | None:
    for name, d in _devices(world).items():
        for identity, iid, bundle_id, message in d.history:
            s = next((s for s in d.sessions if (s.identity, s.installation_id, s.bundle_id)
                      == (identity, iid, bundle_id)), None)
            if s is not None and _decrypts(s.state, message):
                return f"{name}'s current session with {iid} still decrypts message {message.n} it read before"
    return None


def installations_come_up(world: World) -> str | None:
    """In a quiet state every installation is up: Ready, its signed prekey dated and its
    bundle made (setUp). An installation that never comes up breaks no other invariant:
    nothing it does not send can fail to arrive."""
    if not world.quiet:
        return None
    for name, d in _devices(world).items():
        if world.state_of(name) != "Ready":
            return f"{name} is quiet in {world.state_of(name)}, not Ready"
        if d.bundle is None or any(p.created_at is None for p in d.prekeys):
            return f"{name} is Ready but not set up (no bundle, or an undated prekey)"
    return None


def asked_chats_are_sent(world: World) -> str | None:
    """In a quiet state of a run without faults or timeouts, no chat the user wrote waits
    unsent while its recipient can be reached (SendChat sends what the user composed)."""
    if not world.quiet or world.faults or world.timeouts_fired:
        return None
    for name, d in _devices(world).items():
        if d.compose is not None and d.hasRecipient():
            return f"{name}'s user wrote {d.compose[1]!r}, which was never sent"
    return None


def _known(d: StatusDevice) -> set[tuple[bytes, str]]:
    return {(i.identity, i.installation_id) for i in d.installations} | {(d.identity, d.installation_id)}


def chats_fan_out(world: World) -> str | None:
    for name, d in _devices(world).items():
        for s in d.sent:
            if not any(identity == s.to for identity, _ in s.recipients):
                return f"{name} sent {s.plaintext!r} to no installation of its addressee"
            missing = sorted(iid for identity, iid in s.own if (identity, iid) not in s.recipients)
            if missing:
                return f"{name} sent {s.plaintext!r} without a copy for its own {', '.join(missing)}"
    return None


def senders_are_known(world: World) -> str | None:
    for name, d in _devices(world).items():
        known = _known(d)
        unknown = sorted({iid for identity, iid, _ in d.received if (identity, iid) not in known})
        if unknown:
            return f"{name} read chats from {', '.join(unknown)}, which it does not know"
    return None


def requests_are_done(world: World) -> str | None:
    for name, d in _devices(world).items():
        rotations = sum(1 for event, _ in d.asked if event == "RotateBundle")
        if d.current_prekey().version < 1 + rotations:
            return f"{name}'s user asked for {rotations} rotations, its signed prekey is version " \
                   f"{d.current_prekey().version}"
        enabled = {i.installation_id for i in d.own_installations(True)}
        refused = [iid for event, iid in d.asked if event == "ApproveInstallation" and iid and iid not in enabled]
        if refused:
            return f"{name}'s user approved {refused[0]}, which is not enabled"
    return None


def _reachable(world: World, d: StatusDevice) -> bool:
    return not d.lost() and world.state_of(d.name) == "Ready"


def pairings_are_seen(world: World) -> str | None:
    if not world.quiet or world.faults or world.timeouts_fired:
        return None
    devices = _devices(world)
    for name, d in devices.items():
        if not any(event == "PairDevices" for event, _ in d.asked):
            continue
        for other, o in devices.items():
            if o is not d and o.identity == d.identity and _reachable(world, o) \
                    and (d.identity, d.installation_id) not in _known(o):
                return f"{name} paired, but {other} does not know it"
    return None


def contacts_learn_installations(world: World) -> str | None:
    if not world.quiet or world.faults or world.timeouts_fired:
        return None
    devices = _devices(world)
    for name, d in devices.items():
        known = _known(d)
        for to in {s.to for s in d.sent if s.to != d.identity}:
            unknown = [other for other, o in devices.items() if o.identity == to and _reachable(world, o)
                       and (o.identity, o.installation_id) not in known]
            if unknown:
                return f"{name} wrote to {devices[unknown[0]].identity_name}, but does not know {', '.join(unknown)}"
    return None


INVARIANTS = Invariants(safety=(chats_decrypt_once, unapproved_receive_nothing, chats_fan_out, senders_are_known,
                                requests_are_done),
                        quiescent=(every_chat_arrives, sessions_converge, forward_secrecy,
                                   installations_come_up, asked_chats_are_sent, pairings_are_seen,
                                   contacts_learn_installations),
                        observed=observed, replays_change_nothing=True, replayable=("BundleAdvert",))
