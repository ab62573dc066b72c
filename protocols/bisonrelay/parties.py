"""BisonRelay parties for scenarios (runtime.harness.simulation), and the protocol's own
expectations.

    [[party]]
    name = "alice"             # made an invite, handed to bob before the scenario (bob's invite_from)

    [[party]]
    name = "bob"
    invite_from = "alice"      # holds alice's invite (OOBPublicIdentityInvite), out of band

    [[party]]
    name = "carol"
    knows = ["alice", "bob"]   # a KX with each completed before the scenario (both sides hold it)

    [[party]]
    name = "dave"
    mediator = "carol"         # RequestMediateIdentity asks carol ...
    target = "bob"             # ... to introduce dave to bob
    reset_with = "carol"       # ResetRatchet resets this ratchet (default: the first one held)

    [[party]]
    name = "mallory"
    attacker = true            # not honest: the invariants judge what the others do
    invite_from = "alice"      # learnt alice's invite: may answer it in bob's place
    listens_on = ["alice"]     # listens at alice's RVs as they are when the scenario starts

    [[party]]
    name = "oscar"
    attacker = true
    invite_from = "bob"
    claims_identity_of = "alice"   # answers bob's invite with alice's id, name and nick, its own keys

    [[party]]
    name = "bob"
    verifies_identities = true     # (a fix, not BR's) refuses an RMOHalfKX whose id is not its key's

    [[party]]
    name = "trudy"
    attacker = true
    impersonates = "alice"     # learnt bob's reset RV for alice: ResetRatchet sends bob a reset
    reset_with = "bob"         # invite there, with alice's name and nick and trudy's keys
    copies_identity = true     # (optional) or with alice's whole public identity

Each party's identity (Ed25519 and sntrup4591761 keys) is drawn from the scenario's seed,
and so is everything a party draws later. `invite_from = "alice"` makes alice's device
create its invite (kx.create_invite: its RVs from alice's random source) and wait at its
initial RV, exactly as if alice had done it before the scenario; every party naming alice
holds that one invite. `knows` runs a real KX (kx.py's four steps) between the two before
the scenario, the party that names the other as inviter: both hold the seed, the reset RVs
and the ratchet's RVs. That is the precondition of a reset and of an auto-KX: the mediator
must know both members, the requester must know the mediator and not the target.

Steps: `event = "AcceptInvite"` on a party holding an invite; `"ResetRatchet"` on a party
holding a ratchet; `"RequestMediateIdentity"` on a party with a mediator and a target;
`{ party = "alice", event = "SendChat", to = "bob", text = "hi" }` sends a chat message over
the ratchet with bob (`before_event`). Without `to` (the explorer's steps have none) it goes
to the first peer the party holds a ratchet with; without `text`, the text is the party's
name and the number of the message it sends ("alice 1", "alice 2", ...).

Expectations (`check`), by party name: `completed = { bob = ["alice"] }` (the KXs each
party completed in the run, in order), `peers = { bob = ["alice", "carol"] }` (whom it
holds a ratchet with now), `matching = [["alice", "bob"]]` (both hold a ratchet with the
other, and the two are one: kx seeds that fit, device.seeds_match), `reseeded =
[["alice", "bob"]]` (matching, and neither holds the ratchet it held before with the other),
`dropped = { alice = ["rendezvous"] }` (the codes of the messages it dropped), `received =
{ bob = ["hi", "how are you"] }` (the chat messages it decrypted, in order), `chatted = {
alice = ["hi"] }` (those it sent, in order).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from protocols.bisonrelay import kx
from protocols.bisonrelay.device import MANUAL, BisonRelayDevice, Inviting, Outgoing, Peer, seeds_match
from runtime.errors import ScenarioError
from runtime.seeded import SeededRandom

__all__ = ["EXPECTATIONS", "before_event", "check", "make_devices"]

KEYS = {"name", "fsm", "transports", "invite_from", "knows", "mediator", "target", "reset_with", "attacker",
        "listens_on", "impersonates", "copies_identity", "claims_identity_of", "verifies_identities"}
ATTACKS = ("listens_on", "impersonates", "copies_identity", "claims_identity_of")


def _known_kx(inviter: BisonRelayDevice, acceptor: BisonRelayDevice) -> None:
    """A KX run to its end before the scenario, with each party's own random source."""
    pending, invite = kx.create_invite(inviter.public, inviter.rng.randbytes)
    accepted, half = kx.accept_invite(acceptor.identity, invite, acceptor.rng.randbytes)
    done, full = kx.answer_half_kx(inviter.identity, pending, half, inviter.rng.randbytes)
    finished = kx.finish_full_kx(acceptor.identity, accepted, full)
    for device, d in ((inviter, done), (acceptor, finished)):
        device.peers = (*device.peers, Peer(d.peer, d.seed, d.initial_rendezvous, d.my_reset_rendezvous,
                                            d.their_reset_rendezvous))
        device.setup = MappingProxyType({**device.setup, d.peer.identity: d.seed})


def _listed(value: Any) -> list[str] | None:
    """A party's name or a list of them (None if it is neither)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def make_devices(parties: list[dict[str, Any]], rng: random.Random) -> dict[str, BisonRelayDevice]:
    names = [spec["name"] for spec in parties]
    devices: dict[str, BisonRelayDevice] = {}
    for spec in parties:
        name = spec["name"]
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise ScenarioError(f"party {name}: unknown keys {', '.join(unknown)} "
                                f"(BisonRelay parties take {', '.join(sorted(KEYS))})")
        for key in ("invite_from", "mediator", "target", "reset_with", "impersonates", "claims_identity_of"):
            if key in spec and (spec[key] not in names or spec[key] == name):
                raise ScenarioError(f"party {name}: {key} = {spec[key]!r} is no other party of the scenario")
        for key in ("knows", "listens_on"):
            listed = _listed(spec.get(key, []))
            if listed is None or any(k not in names or k == name for k in listed):
                raise ScenarioError(f"party {name}: {key} = {spec[key]!r} must name other parties of the scenario")
        attacks = [k for k in ATTACKS if k in spec]
        if attacks and not spec.get("attacker"):
            raise ScenarioError(f"party {name}: {', '.join(attacks)} is for an attacker (attacker = true)")
        own = SeededRandom(rng.getrandbits(64))
        identity = kx.new_identity(name.capitalize(), name, own.randbytes)
        devices[name] = BisonRelayDevice(name, identity, attacker=bool(spec.get("attacker")), rng=own,
                                         verifies_identities=bool(spec.get("verifies_identities")))
    by_id = MappingProxyType({d.id: name for name, d in devices.items()})
    for device in devices.values():
        device.names = by_id
    # The invites handed over out of band: one per inviter, whoever holds it.
    for spec in parties:
        if "invite_from" in spec:
            inviter = devices[spec["invite_from"]]
            if inviter.inviting is None:
                pending, invite = kx.create_invite(inviter.public, inviter.rng.randbytes)
                inviter.inviting = Inviting(pending, MANUAL, None)
                inviter.made = invite
            devices[spec["name"]].invite = inviter.made
    # The KXs completed before the scenario, each pair once.
    pairs: list[tuple[str, str]] = []
    for spec in parties:
        for other in _listed(spec.get("knows", [])) or []:
            if (spec["name"], other) not in pairs and (other, spec["name"]) not in pairs:
                pairs.append((spec["name"], other))
    for a, b in pairs:
        _known_kx(devices[a], devices[b])
    for spec in parties:
        device = devices[spec["name"]]
        if ("mediator" in spec) != ("target" in spec):
            raise ScenarioError(f"party {spec['name']}: mediator and target go together")
        if "mediator" in spec:
            mediator, target = devices[spec["mediator"]], devices[spec["target"]]
            if device.peer(mediator.id) is None:
                raise ScenarioError(f"party {spec['name']}: asks {spec['mediator']} to mediate, "
                                    f"but does not know {spec['mediator']} (knows)")
            if device.peer(target.id) is not None:
                raise ScenarioError(f"party {spec['name']}: already knows its target {spec['target']}")
            device.mediator, device.target = mediator.id, target.id
        if "claims_identity_of" in spec:
            # The victim's id, name and nick with the attacker's own keys, digest and signature:
            # Verify() passes, VerifyIdentity() (id = SHA-256 of the key) does not.
            posed = devices[spec["claims_identity_of"]].public
            digest = kx.identity_digest(device.public.sig_key, device.public.key, posed.identity)
            device.poses_as = kx.PublicIdentity(name=posed.name, nick=posed.nick, sig_key=device.public.sig_key,
                                                key=device.public.key, identity=posed.identity, digest=digest,
                                                signature=device.identity.sign(digest))
        if "impersonates" in spec:
            if "reset_with" not in spec:
                raise ScenarioError(f"party {spec['name']}: impersonates needs reset_with (whom it sends the reset)")
            victim, receiver = devices[spec["impersonates"]], devices[spec["reset_with"]]
            entry = receiver.peer(victim.id)
            if entry is None:
                raise ScenarioError(f"party {spec['name']}: {spec['reset_with']} holds no ratchet with "
                                    f"{spec['impersonates']} to reset")
            device.forged_reset = Outgoing(entry.my_reset_rendezvous, receiver.public.key, "reset")
            device.reset_with = victim.id
            device.claims = victim.public if spec.get("copies_identity") else kx.PublicIdentity(
                name=victim.public.name, nick=victim.public.nick, sig_key=device.public.sig_key,
                key=device.public.key, identity=device.public.identity, digest=device.public.digest,
                signature=device.public.signature)
        elif "reset_with" in spec:
            peer = devices[spec["reset_with"]]
            if device.peer(peer.id) is None:
                raise ScenarioError(f"party {spec['name']}: reset_with = {spec['reset_with']!r}, "
                                    "a party it holds no ratchet with (knows)")
            device.reset_with = peer.id
    for spec in parties:
        # Where the others listen now: the attacker learnt those RVs (the relay sees them).
        for other in _listed(spec.get("listens_on", [])) or []:
            devices[spec["name"]].overhears |= frozenset(devices[other]._rendezvous())
    return devices


def before_event(device: BisonRelayDevice, event: str, step: dict[str, Any] | None = None) -> None:
    """SendChat: whom the user writes to and what (the step's `to` and `text`, else the first
    peer and a numbered text); the fsm decides whether it goes out or resets the ratchet.

    What the user asks for is recorded, for the invariants that promise it: an AcceptInvite
    of the invite it holds, a ResetRatchet with a peer to reset, a RequestMediateIdentity
    it may make (`invite_accepted`, `resets_asked`, `introduction_asked`: their KXs
    complete), and each chat to a peer it holds a ratchet with (`chats_asked`: it goes
    out). Every user event consents, so the explorer's record of consents cannot tell an
    AcceptInvite from a ResetRatchet with no peer to reset."""
    if event == "AcceptInvite" and device.invite is not None:
        device.invite_accepted = True
    if event == "ResetRatchet" and (peer := device.reset_peer()) is not None:
        device.resets_asked = (*device.resets_asked, peer)
    if event == "RequestMediateIdentity" and device.mayRequestMediation():
        device.introduction_asked = True
    if event != "SendChat":
        return
    step = step or {}
    to = step.get("to")
    if to is not None:
        ids = {name: identity for identity, name in device.names.items()}
        if to not in ids:
            raise ScenarioError(f"party {device.name}: SendChat to {to!r}, no party of the scenario")
        device.chat_to = ids[to]
    else:
        device.chat_to = device.peers[0].identity if device.peers else None
    text = step.get("text")
    device.chat_text = str(text) if text is not None else f"{device.name} {len(device.chats_sent) + 1}"
    if device.peer(device.chat_to) is not None:
        device.chats_asked += 1


# The [expect] keys `check` reads.
EXPECTATIONS = ("completed", "peers", "matching", "reseeded", "dropped", "received", "chatted")


def _device(parties: dict[str, Any], name: str) -> BisonRelayDevice:
    device: BisonRelayDevice = parties[name].device
    return device


def check(expect: dict[str, Any], parties: dict[str, Any]) -> list[str]:
    failures = []
    views: dict[str, Callable[[BisonRelayDevice], list[str]]] = {
        "completed": lambda d: [d.who(c.peer) for c in d.completed],
        "peers": lambda d: sorted(d.who(p.identity) for p in d.peers),
        "received": lambda d: [text for _, text in d.chats_received],
        "chatted": lambda d: [text for _, text in d.chats_sent],
    }
    for key, view in views.items():
        for name, wanted in expect.get(key, {}).items():
            got = view(_device(parties, name))
            if got != (sorted(wanted) if key == "peers" else wanted):
                failures.append(f"{name}: {key} {got}, expected {wanted}")
    for key in ("matching", "reseeded"):
        for a, b in expect.get(key, []):
            da, db = _device(parties, a), _device(parties, b)
            pa, pb = da.peer(db.id), db.peer(da.id)
            if pa is None or pb is None:
                failures.append(f"{a} and {b}: not both hold a ratchet with the other")
            elif not seeds_match(pa.seed, pb.seed):
                failures.append(f"{a} and {b}: their ratchets do not match")
            elif key == "reseeded":
                for d, p, other in ((da, pa, db), (db, pb, da)):
                    before = [d.setup[other.id]] if other.id in d.setup else []
                    before += [c.seed for c in d.completed if c.peer == other.id and c.seed != p.seed]
                    if not before or any(s.root_key == p.seed.root_key for s in before):
                        failures.append(f"{d.name}: its ratchet with {other.name} is not a new one")
    for name, wanted in expect.get("dropped", {}).items():
        got = sorted({e.code or "" for e in parties[name].trace if e.party == name and e.kind == "drop"})
        if got != sorted(wanted):
            failures.append(f"{name}: dropped {got}, expected {sorted(wanted)}")
    return failures
