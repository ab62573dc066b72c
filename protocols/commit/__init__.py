"""Two-phase commit with abort: a coordinator and its participants in one fsm.

| file | what |
| --- | --- |
| commit.fsm | the fsm Transaction, both roles: Idle, Collecting; Ready, Voting, Prepared, Committed, Aborted |
| Commit.asn1 | the types the messages use: TID, PartyList, Version |
| party.py | the conditions and actions the fsm names, the plain envelope, the party's state record |
| parties.py | scenario parties (who coordinates whom) and the protocol's expectations |
| invariants.py | what the explorer checks: atomicity, commit only on every Yes, progress |
| scenarios/ | all vote yes, one votes no, a vote that never comes |
| README.md | notes: the protocol, the choices made, what exploring shows |
"""

from pathlib import Path

from protocols.commit.invariants import INVARIANTS
from protocols.commit.parties import EXPECTATIONS, before_event, check, make_devices
from protocols.commit.party import CommitParty
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "CommitParty"]

PROTOCOL = Manifest(
    name="commit",
    title="Two-phase commit with abort",
    folder=Path(__file__).resolve().parent,
    fsm="Transaction",
    make_devices=make_devices,
    before_event=before_event,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
    # The user's events: the coordinator's Propose, a participant's answers. The explorer
    # offers each where the party's state handles it, within the user budget.
    user_events=("Propose", "Yes", "No"),
)
