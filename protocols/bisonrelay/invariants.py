"""BisonRelay P2P key exchange invariants, for the explorer (runtime.harness.explore;
docs/exploration.md). Parties marked `attacker` are not honest: these judge the others.

- `authentication` (safety): an honest party completes a KX only with the identity it
  expected: the acceptor with the invite's inviter, the inviter of a reset with the peer
  it reset, the inviter of an auto-KX with the invitee the mediator named. The inviter
  of a manual invite expects no one in particular (BR's KX record has no invitee): the
  invite is a bearer token, and whoever answers it first becomes the contact. A KX
  completed with an honest party's identity is with that party's key (README.md, finding
  2). And an honest acceptor that completed with an honest inviter holds the ratchet that
  inviter completed with it (the inviter completes first: it answers with RMOFullKX).
- `secrecy` (safety): no attacker holds a ratchet (its root key) that an honest party
  holds or held with an honest peer.
- `delivery` (safety): every chat message an honest party received from an honest one was
  sent by it to that party, and is received at most as many times as it was sent: the
  ratchet decrypts each message once, to its plaintext (the receiver's record is the
  decrypted text; a replayed or altered message is dropped by the ratchet).
- `forward_secrecy` (safety): the ratchet an honest party holds now decrypts none of the
  chat messages it received (Ratchet.restore(snapshot).decrypt fails on each): a state
  that leaks later does not give the past away. Each message key is used up when its
  message is decrypted, and a DH step replaces the chain (the stronger claim BR makes,
  after both sides sent after receiving, follows: those messages are among these).
- `consented_exchanges_complete` (stalled): progress; on a run without faults, timeouts,
  attackers or a user's refusal, an accepted invite's KX completes on both sides, before
  anything is left to happen that would disturb the run (a terminal check let a KX that
  waits for nothing pass: the acceptor's timeout was still to come, and once it came it
  excused the run).
- `states_agree_with_records` (safety): an honest party is in the state its record
  names: Ready with no KX under way, AwaitingHalfKX with an invite of its own waiting,
  AwaitingFullKX with an accepted one waiting, Crossing with both, and
  AwaitingTransitiveInvite with an introduction asked for and nothing else.
- `agreement` (quiescent): when nothing is in flight and no timer is pending, on a run
  without faults or timeouts, two honest parties either both hold a ratchet with the
  other, and the two match (device.seeds_match: one's send keys are the other's receive
  keys, one root key), or neither does.

Replays (the replay fault) must change nothing (`replays_change_nothing`), and no message
is exempt (`replayable` is empty). RMOHalfKX cannot be authenticated by design: anyone who
holds the invite can make one, and the inviter takes the first. But a replayed one is
never taken: the inviter stops listening at the initial RV with the first answer (BR
unsubscribes, and the relay keeps one payload per RV), and the same holds of the step-3 RV,
of a reset RV once the reset completed (a new one replaces it; before that a reset invite
is taken once, `used_invites`), and of the ratchet's RVs (one per message count).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from protocols.bisonrelay.device import ACCEPTOR, RESET, BisonRelayDevice, decrypts, seeds_match
from runtime.manifest import Invariants, states_agree

if TYPE_CHECKING:
    from runtime.harness.explore import World

__all__ = ["INVARIANTS", "agreement", "authentication", "delivery", "forward_secrecy", "observed", "secrecy"]


def device(world: World, name: str) -> BisonRelayDevice:
    return cast(BisonRelayDevice, world.parties[name].device)


def observed(p: Any) -> tuple[Any, ...]:
    """What the safety invariants read of a party: its completed KXs, the ratchets it holds
    (seeds and states) and its chat messages."""
    d = p.device
    return (d.completed, tuple((x.identity, x.seed.root_key, x.ratchet) for x in d.peers), d.chats_sent,
            d.chats_received, len(d.opened))


def _honest(world: World) -> dict[bytes, BisonRelayDevice]:
    found = (device(world, n) for n in world.parties)
    return {d.id: d for d in found if not d.attacker}


def authentication(world: World) -> str | None:
    honest = _honest(world)
    for d in honest.values():
        for c in d.completed:
            if c.expected is not None and c.peer != c.expected:
                return f"{d.name} completed a {c.how} KX with {d.who(c.peer)}, expecting {d.who(c.expected)}"
            other = honest.get(c.peer)
            if other is not None and c.key != other.public.key:
                return f"{d.name} completed a KX with {other.name}'s identity and another's key"
            if c.role == ACCEPTOR and other is not None and not any(
                    o.peer == d.id and seeds_match(o.seed, c.seed) for o in other.completed):
                return f"{d.name} completed a KX with {other.name}, who completed none that matches"
    return None


def secrecy(world: World) -> str | None:
    honest = _honest(world)
    shared: dict[bytes, str] = {}
    for d in honest.values():
        seeds = [(c.peer, c.seed) for c in d.completed] + [(p.identity, p.seed) for p in d.peers]
        for peer, seed in seeds:
            if peer in honest:
                shared[seed.root_key] = f"{d.name} and {honest[peer].name}"
    for name in world.parties:
        a = device(world, name)
        if not a.attacker:
            continue
        held = {c.seed.root_key for c in a.completed} | {p.seed.root_key for p in a.peers}
        leaked = held & set(shared)
        if leaked:
            return f"{name} holds the ratchet of {shared[leaked.pop()]}"
    return None


def delivery(world: World) -> str | None:
    honest = _honest(world)
    for d in honest.values():
        got = Counter(d.chats_received)
        for (sender, text), n in got.items():
            other = honest.get(sender)
            if other is None:
                continue
            sent = sum(1 for to, t in other.chats_sent if to == d.id and t == text)
            if n > sent:
                return f"{d.name} received {text!r} from {other.name} {n} times, sent {sent}"
    return None


def forward_secrecy(world: World) -> str | None:
    for d in _honest(world).values():
        for sender, blob in d.opened:
            p = d.peer(sender)
            if p is not None and decrypts(p.ratchet, blob):
                return f"{d.name}'s ratchet with {d.who(sender)} still decrypts a message it received"
    return None


def agreement(world: World) -> str | None:
    if world.faults or world.timeouts_fired:
        return None  # progress is only promised on a run without faults or timeouts
    honest = _honest(world)
    for a in honest.values():
        for b in honest.values():
            if a is b:
                continue
            pa, pb = a.peer(b.id), b.peer(a.id)
            if pa is not None and pb is None:
                return f"{a.name} holds a ratchet with {b.name}, who holds none with {a.name}"
            if pa is not None and pb is not None and not seeds_match(pa.seed, pb.seed):
                return f"{a.name} and {b.name} hold ratchets with each other that do not match"
    return None


def consented_exchanges_complete(world: World) -> str | None:
    """Progress: a run that ends without faults or timeouts, in which every user who
    answered consented and no attacker is on the channel, ends with each accepted invite's
    KX complete (the acceptor and the inviter hold matching ratchets with each other). The
    safety invariants hold as well for a KX that never completes; this one does not.
    (Chats are not promised here: one sent over the old ratchet while the peer resets it
    is not received, in chat_ratchet_reset explored; what BR does then is not settled.)"""
    if world.faults or world.timeouts_fired or world.disturbed or world.sim.network.in_flight():
        return None
    honest = _honest(world)
    if len(honest) < len(world.parties):
        return None
    for d in honest.values():
        if d.invite is None or not d.invite_accepted:
            continue
        inviter = honest.get(d.invite.public.identity)
        if inviter is None:
            continue
        mine, theirs = d.peer(inviter.id), inviter.peer(d.id)
        if mine is None or theirs is None:
            return (f"{d.name}'s user accepted {inviter.name}'s invite, but the KX did not complete "
                    f"({d.name} {world.state_of(d.name)}, {inviter.name} {world.state_of(inviter.name)})")
    for d in honest.values():
        for identity in set(d.resets_asked):
            other = honest.get(identity)
            if other is None:
                continue
            asked = d.resets_asked.count(identity)
            done = [sum(1 for c in x.completed if c.how == RESET and c.peer == y.id)
                    for x, y in ((d, other), (other, d))]
            if min(done) < asked:
                return (f"{d.name}'s user asked to reset the ratchet with {other.name}, but the reset did not "
                        f"complete ({d.name} {world.state_of(d.name)}, {other.name} {world.state_of(other.name)})")
        target = honest.get(d.target) if d.introduction_asked and d.target is not None else None
        if target is not None and (d.peer(target.id) is None or target.peer(d.id) is None):
            return (f"{d.name}'s user asked to be introduced to {target.name}, but the KX did not complete "
                    f"({d.name} {world.state_of(d.name)}, {target.name} {world.state_of(target.name)})")
    return None


def _rest_state(d: BisonRelayDevice) -> str:
    if d.inviting is not None:
        return "Crossing" if d.accepting is not None else "AwaitingHalfKX"
    if d.accepting is not None:
        return "AwaitingFullKX"
    return "AwaitingTransitiveInvite" if d.mediation is not None else "Ready"


def states_agree_with_records(world: World) -> str | None:
    """Between any two steps each honest party is in the one state its KX records name
    (`_rest_state`): the state decides what it listens for next, the records what it
    holds, and a go to the wrong state splits the two (an inviter back in Ready with its
    invite still waiting, an acceptor waiting in AwaitingHalfKX for an answer it never
    asked for). Safety (`states_agree` says why the reduction judges it soundly); an
    attacker is not judged."""
    def expected(name: str) -> str | None:
        d = device(world, name)
        return None if d.attacker else _rest_state(d)

    return states_agree(world, expected)


def chats_arrive(world: World) -> str | None:
    """Progress of a conversation: on a run without faults or timeouts, once nothing is left
    to happen but what would disturb it, every chat message an honest user sent to an
    honest peer over the ratchet that peer still holds with it was received, as often as it
    was sent. Not one sent over a ratchet the peer has replaced since (a reset completed on
    its side): the peer listens at the new ratchet's RVs only and cannot decrypt a message
    of the old one, so such a message is lost when it did not arrive before the reset
    completed, and this cannot tell the two apart. BR replaces the ratchet the same way
    (initRemoteUser); whether its client sends such a message again is not modelled
    (README.md, "What is left"). And every chat the user wrote to a peer went out: none
    waits still for a reset of its ratchet (queued, or flushed and not yet sent)."""
    if world.faults or world.timeouts_fired or world.disturbed or world.sim.network.in_flight():
        return None
    honest = _honest(world)
    for d in honest.values():
        waiting = d.queued + d.flushing
        if waiting:
            return (f"{d.name}'s chat {waiting[0][1]!r} waits for a reset of its ratchet that does not come "
                    f"({d.name} {world.state_of(d.name)})")
        if len(d.chats_sent) < d.chats_asked:
            return (f"{d.name}'s user wrote {d.chats_asked} chats to its peers, {len(d.chats_sent)} went out "
                    f"({d.name} {world.state_of(d.name)})")
        owed: Counter[tuple[bytes, str]] = Counter()
        for (to, text), kx_id in zip(d.chats_sent, d.chat_kx, strict=True):
            peer = honest.get(to)
            held = peer.peer(d.id) if peer is not None else None
            if held is not None and held.initial_rendezvous == kx_id:
                owed[(to, text)] += 1
        for (to, text), count in owed.items():
            peer = honest[to]
            if peer.chats_received.count((d.id, text)) < count:
                return (f"{d.name} sent {text!r} to {peer.name}, who never received it "
                        f"({peer.name} {world.state_of(peer.name)})")
    return None


INVARIANTS = Invariants(safety=(authentication, secrecy, delivery, forward_secrecy, states_agree_with_records),
                        quiescent=(agreement,),
                        stalled=(consented_exchanges_complete, chats_arrive), observed=observed,
                        replays_change_nothing=True)
