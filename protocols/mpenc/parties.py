"""Members of an mpENC group for scenarios (runtime.harness.simulation).

    [[party]]
    name = "alice"            # the member id (pid)

Every member gets a static ed25519 identity key from the scenario's seed, and knows every
other member's public identity key (the design assumes a PKI for them, 5.2.2). Steps ask
for operations with the members they concern:

    [[step]]
    party = "alice"
    event = "Establish"       # Establish, Include, Exclude, Refresh
    members = ["bob", "carol"]

Expectations (`check`): `same_group_key = [["alice", "bob"], ...]` (these members derived
one group key), `different_group_key = [["alice", "dave"]]`, `no_session = ["dave"]`,
`members = { alice = ["alice", "bob"] }` (the session's members), `same_chain_hash`.
"""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import Any

from protocols.mpenc import crypto
from protocols.mpenc.member import GreetingMember
from runtime.seeded import SeededRandom

__all__ = ["EXPECTATIONS", "before_event", "check", "make_devices"]

OPERATIONS = {"Establish": "establish", "Include": "include", "Exclude": "exclude", "Refresh": "refresh"}


def make_devices(parties: list[dict[str, Any]], rng: random.Random) -> dict[str, GreetingMember]:
    keys = {spec["name"]: crypto.signing_key_pair(rng.getrandbits(256).to_bytes(32, "big")) for spec in parties}
    directory = MappingProxyType({name: pair.public for name, pair in sorted(keys.items())})
    return {name: GreetingMember(name, pair, directory, SeededRandom(rng.getrandbits(64)))
            for name, pair in keys.items()}


def before_event(device: GreetingMember, event: str, step: dict[str, Any] | None = None) -> None:
    """An operation's request carries the members it concerns."""
    if event in OPERATIONS:
        device.request_operation(OPERATIONS[event], tuple((step or {}).get("members", ())))


# The [expect] keys `check` reads.
EXPECTATIONS = ("same_group_key", "different_group_key", "no_session", "members", "same_chain_hash")


def check(expect: dict[str, Any], parties: dict[str, Any]) -> list[str]:
    failures = []
    members = {name: p.device for name, p in parties.items()}
    for group in expect.get("same_group_key", []):
        keys = {members[n].group_key for n in group}
        if len(keys) != 1 or None in keys:
            failures.append(f"{', '.join(group)} do not share one group key")
    for group in expect.get("different_group_key", []):
        each = [members[n].group_key for n in group]
        if len(set(each)) != len(each):
            failures.append(f"{', '.join(group)} share a group key")
    for name in expect.get("no_session", []):
        if members[name].session is not None:
            failures.append(f"{name} has a session")
    for name, expected in expect.get("members", {}).items():
        session = members[name].session
        got = list(session.members) if session is not None else []
        if sorted(got) != sorted(expected):
            failures.append(f"{name}'s session has members {got}, expected {sorted(expected)}")
    for group in expect.get("same_chain_hash", []):
        chains = {members[n].session.chain_hash if members[n].session else None for n in group}
        if len(chains) != 1 or None in chains:
            failures.append(f"{', '.join(group)} do not agree on the chain hash")
    return failures
