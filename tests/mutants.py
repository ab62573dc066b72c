"""Deliberate bugs in copies of protocols/keysync.fsm, for the explorer's mutation tests.

Each mutant replaces one exact, unique piece of the draft's FSM (`old` occurs once) and
names the invariant whose violation exposes it, under the explorer's default settings
(no faults, one answer per user, no timeouts) on which the unmutated FSM passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Mutant:
    name: str
    old: str
    new: str
    caught_by: str
    settings: dict[str, Any] = field(default_factory=dict)  # explorer options beyond the defaults
    scenario: str = "form_group.toml"


MUTANTS = [
    Mutant(
        "keys sent before the Offerer's user accepts",
        """            on CommitAcceptRequester {
                if sameNegotiation
                    go HandshakingPhase2Offerer;
            }""",
        """            on CommitAcceptRequester {
                if sameNegotiation {
                    do prepareOwnKeys;
                    send OwnKeysOfferer;
                    go HandshakingPhase2Offerer;
                }
            }""",
        "no_keys_before_both_accepted",
    ),
    Mutant(
        "Requester sends its keys on its own Accept, before the Offerer's",
        """            on Accept {
                do trustThisKey;
                send CommitAcceptRequester;
                go HandshakingPhase1Requester;
            }""",
        """            on Accept {
                do trustThisKey;
                send CommitAcceptRequester;
                do prepareOwnKeys;
                send OwnKeysRequester;
                go HandshakingPhase1Requester;
            }""",
        "no_keys_before_both_accepted",
    ),
    Mutant(
        "missing untrustThisKey on Rollback in HandshakingPhase1Offerer",
        """        state HandshakingPhase1Offerer {
            on Rollback {
                if sameNegotiation {
                    do untrustThisKey;
                    go Sole;""",
        """        state HandshakingPhase1Offerer {
            on Rollback {
                if sameNegotiation {
                    go Sole;""",
        "trust_withdrawn",
    ),
    Mutant(
        "missing untrustThisKey on CommitReject in HandshakingPhase1Requester",
        """        state HandshakingPhase1Requester {
            on Rollback {
                if sameNegotiation {
                    do untrustThisKey;
                    go Sole;
                }
            }

            on CommitReject {
                if sameNegotiation {
                    do untrustThisKey;
                    do disable;""",
        """        state HandshakingPhase1Requester {
            on Rollback {
                if sameNegotiation {
                    do untrustThisKey;
                    go Sole;
                }
            }

            on CommitReject {
                if sameNegotiation {
                    do disable;""",
        "trust_withdrawn",
    ),
    Mutant(
        "go to the wrong state: the Requester goes Sole after receiving the Offerer's keys",
        """                    do ownKeysAreDefaultKeys;
                    do showGroupCreated;
                    go Grouped;""",
        """                    do ownKeysAreDefaultKeys;
                    do showGroupCreated;
                    go Sole;""",
        "agreement_on_the_outcome",
    ),
    Mutant(
        "go to the wrong state: the Offerer's Phase2 Accept goes straight to Grouped",
        """            on Accept {
                do trustThisKey;
                send CommitAcceptOfferer;
                go FormingGroupOfferer;
            }""",
        """            on Accept {
                do trustThisKey;
                send CommitAcceptOfferer;
                go Grouped;
            }""",
        "no_stall_after_acceptance",
    ),
    Mutant(
        "the Offerer forgets to send its own keys",
        """                    do prepareOwnKeysFromBackup;
                    send OwnKeysOfferer;""",
        """                    do prepareOwnKeysFromBackup;""",
        "no_stall_after_acceptance",
    ),
    Mutant(
        "the Offerer moves on without confirming with CommitAcceptOfferer",
        """            on CommitAcceptRequester {
                if sameNegotiation {
                    send CommitAcceptOfferer;
                    go FormingGroupOfferer;""",
        """            on CommitAcceptRequester {
                if sameNegotiation {
                    go FormingGroupOfferer;""",
        "no_stall_after_acceptance",
    ),
    Mutant(
        "removed sameChallenge guard: a Sole device opens a handshake for any NegotiationRequest",
        """            on NegotiationRequest {
                if sameChallenge { // challenge accepted
                    do storeNegotiation;
                    // offerer is accepting by confirming NegotiationOpen
                    // repeating response is implicit
                    send NegotiationOpen;
                    go HandshakingOfferer;
                }
            }""",
        """            on NegotiationRequest {
                do storeNegotiation;
                send NegotiationOpen;
                go HandshakingOfferer;
            }""",
        "no_stall",
    ),
    Mutant(
        "a wrong guard: a device answers its own Beacon",
        """            on Beacon {
                if sameChallenge {
                    debug > this is our own Beacon; ignore
                }
                else {
                    if weAreOfferer {""",
        """            on Beacon {
                if fromGroupMember {
                    debug > this is our own Beacon; ignore
                }
                else {
                    if weAreOfferer {""",
        "no_stall",
    ),
    Mutant(
        "a Reject on the Requester that sends no CommitReject",
        """            // Reject is CommitReject
            on Reject {
                send CommitReject;
                do disable;
                go End;
            }

            on CommitReject {
                if sameNegotiation {
                    do disable;
                    go End;
                }
            }

            // Accept means init Phase1Commit
            on Accept {
                do trustThisKey;
                send CommitAcceptRequester;""",
        """            // Reject is CommitReject
            on Reject {
                do disable;
                go End;
            }

            on CommitReject {
                if sameNegotiation {
                    do disable;
                    go End;
                }
            }

            // Accept means init Phase1Commit
            on Accept {
                do trustThisKey;
                send CommitAcceptRequester;""",
        "no_stall",
    ),
    Mutant(
        "the Offerer's Accept opens its dialog again (HandshakingPhase2Offerer asks for the Accept it had)",
        """            // Accept means init Phase1Commit
            on Accept {
                do trustThisKey;
                go HandshakingPhase1Offerer;
            }""",
        """            // Accept means init Phase1Commit
            on Accept {
                do trustThisKey;
                go HandshakingPhase2Offerer;
            }""",
        "users_are_asked_once",
    ),
    Mutant(
        "a Reject that ends the FSM without disabling sync",
        """            // Reject is CommitReject
            on Reject {
                send CommitReject;
                do disable;
                go End;
            }

            on CommitReject {
                if sameNegotiation {
                    do disable;
                    go End;
                }
            }

            // Accept means init Phase1Commit
            on Accept {
                do trustThisKey;
                go HandshakingPhase1Offerer;""",
        """            // Reject is CommitReject
            on Reject {
                send CommitReject;
                go End;
            }

            on CommitReject {
                if sameNegotiation {
                    do disable;
                    go End;
                }
            }

            // Accept means init Phase1Commit
            on Accept {
                do trustThisKey;
                go HandshakingPhase1Offerer;""",
        "ended_devices_are_disabled",
    ),
]
