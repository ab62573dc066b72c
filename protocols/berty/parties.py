"""Berty parties for scenarios (runtime.harness.simulation), and the protocol's own
expectations.

    [[party]]
    name = "bob"
    responds = true            # listens on its account's public rendezvous point

    [[party]]
    name = "alice"
    knows = "bob"              # holds bob's contact (account key and rendezvous seed)

    [[party]]
    name = "mallory"
    attacker = true            # not honest: the invariants judge what the others do
    knows = "bob"              # a stranger who learnt bob's rendezvous point
    listens_on = "bob"         # and listens on it, as bob does, to answer in his place

Each party's account key and rendezvous seed are drawn from the scenario's seed. `knows`
hands over the contact as it is when the scenario starts (a responder that renews its
seed later is out of reach of it); `blocks = "alice"` makes a responder that blocked that
account before.

Steps: `event = "SendContactRequest"` on a requester; `"AcceptContact"`,
`"DiscardContact"` or `"BlockContact"` on a responder whose dialog is open
(`in_state = "Requested"`); `"RenewSeed"` on a listening responder.

Expectations (`check`): `contacts = { bob = ["alice"] }` (whom each party added, by
party name), `sent = ...` is the generic key (messages sent); `requested = { alice =
["bob"] }` (whom each requester completed a handshake with), `blocked = { bob =
["alice"] }`, `pending = { bob = ["alice"] }` (requests awaiting the user).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from protocols.berty.crypto import Ed25519KeyPair
from protocols.berty.device import BertyDevice, Contact
from runtime.errors import ScenarioError
from runtime.seeded import SeededRandom

__all__ = ["EXPECTATIONS", "check", "make_devices", "names_of"]

KEYS = {"name", "fsm", "responds", "knows", "attacker", "listens_on", "blocks"}


def make_devices(parties: list[dict[str, Any]], rng: random.Random) -> dict[str, BertyDevice]:
    names = [spec["name"] for spec in parties]
    devices: dict[str, BertyDevice] = {}
    for spec in parties:
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise ScenarioError(f"party {spec['name']}: unknown keys {', '.join(unknown)} "
                                f"(Berty parties take {', '.join(sorted(KEYS))})")
        own = SeededRandom(rng.getrandbits(64))
        account = Ed25519KeyPair.from_seed(own.randbytes(32))
        responds = bool(spec.get("responds")) or "listens_on" in spec
        device = BertyDevice(spec["name"], account, responds=responds, attacker=bool(spec.get("attacker")),
                             rng=own)
        if responds:
            device.seed = own.randbytes(32)
        devices[spec["name"]] = device
    for spec in parties:
        device = devices[spec["name"]]
        for key in ("knows", "listens_on", *(("blocks",) if "blocks" in spec else ())):
            if key in spec and spec[key] not in names:
                raise ScenarioError(f"party {spec['name']}: {key} = {spec[key]!r} is no party of the scenario")
        if "knows" in spec:
            peer = devices[spec["knows"]]
            if not peer.responds:
                raise ScenarioError(f"party {spec['name']}: knows {spec['knows']}, who does not respond")
            device.contact = Contact(peer.account.public, peer.seed)
        if "listens_on" in spec:
            # Where the party listens: on the other's point, with its own key (it cannot
            # have the other's).
            device.seed = devices[spec["listens_on"]].seed
            device.listens_as = devices[spec["listens_on"]].account.public
        if "blocks" in spec:
            device.blocked = frozenset({devices[spec["blocks"]].account.public})
    return devices


def names_of(parties: dict[str, Any]) -> dict[bytes, str]:
    """Account key -> party name, for messages people read."""
    return {p.device.account.public: name for name, p in parties.items()}


# The [expect] keys `check` reads.
EXPECTATIONS = ("contacts", "requested", "blocked", "pending")


def check(expect: dict[str, Any], parties: dict[str, Any]) -> list[str]:
    failures = []
    who = names_of(parties)

    def named(keys: Any) -> list[str]:
        return sorted(who.get(k, k.hex()[:8]) for k in keys)

    views: dict[str, Callable[[BertyDevice], list[str]]] = {
        "contacts": lambda d: named(a for a, _ in d.contacts),
        "requested": lambda d: named(a for a, _ in d.sent),
        "blocked": lambda d: named(d.blocked),
        "pending": lambda d: named(a for a, _ in d.requests),
    }
    for key, view in views.items():
        for name, wanted in expect.get(key, {}).items():
            got = view(parties[name].device)
            if got != sorted(wanted):
                failures.append(f"{name}: {key} {got}, expected {sorted(wanted)}")
    return failures
