"""Two-phase commit parties for scenarios (runtime.harness.simulation), and the
protocol's own expectations.

    [[party]]
    name = "bank"
    participants = ["alice", "bob"]   # this party coordinates: its transactions invite these

    [[party]]
    name = "alice"                     # a participant: no participants of its own

Steps: `event = "Propose"` on the coordinator starts a transaction; `event = "Yes"` or
`"No"` on a participant answers its dialog (`in_state = "Voting"` finds one whose dialog
is open).

Expectations (`check`): `outcome = { alice = "commit", bank = "commit" }` (how each party
decided its last transaction: "commit", "abort" or "none"), `atomic = true` (every
transaction was decided alike by every party that decided it).
"""

from __future__ import annotations

import random
from typing import Any

from protocols.commit.party import CommitParty
from runtime.errors import ScenarioError
from runtime.seeded import SeededRandom

__all__ = ["EXPECTATIONS", "before_event", "check", "make_devices"]

ANSWERS = ("Yes", "No")


def make_devices(parties: list[dict[str, Any]], rng: random.Random) -> dict[str, CommitParty]:
    names = {spec["name"] for spec in parties}
    devices = {}
    for spec in parties:
        invites = tuple(spec.get("participants", ()))
        unknown = sorted(set(invites) - names)
        if unknown or spec["name"] in invites:
            raise ScenarioError(f"party {spec['name']}: participants must be other parties of the scenario "
                                f"({', '.join(unknown) or spec['name']} is not)")
        devices[spec["name"]] = CommitParty(spec["name"], invites, SeededRandom(rng.getrandbits(64)))
    return devices


def before_event(device: CommitParty, event: str, step: dict[str, Any] | None = None) -> None:
    """The user's answer is recorded as the user gave it, before the fsm acts on it."""
    if event in ANSWERS:
        device.answer(event)


# The [expect] keys `check` reads.
EXPECTATIONS = ("outcome", "atomic")


def check(expect: dict[str, Any], parties: dict[str, Any]) -> list[str]:
    failures = []
    devices: dict[str, CommitParty] = {name: p.device for name, p in parties.items()}
    for name, wanted in expect.get("outcome", {}).items():
        got = devices[name].last_outcome or "none"
        if got != wanted:
            failures.append(f"{name} decided {got}, expected {wanted}")
    if expect.get("atomic"):
        decided: dict[bytes, set[str]] = {}
        for device in devices.values():
            for tid, outcome in device.outcomes:
                decided.setdefault(tid, set()).add(outcome)
        for tid, outcomes in decided.items():
            if len(outcomes) > 1:
                failures.append(f"transaction {tid.hex()[:8]} was both committed and aborted")
    return failures
