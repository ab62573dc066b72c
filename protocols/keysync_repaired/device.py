"""The repaired KeySync's device: the draft's, with the one action the repairs add and
the timeout handler that repairs finding 3.

Everything else (conditions, actions, envelopes, key ring) is the draft's
(protocols/keysync/device.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.keysync.device import KeySyncDevice

if TYPE_CHECKING:
    from generated.keysync_repaired import KeySyncBindings

__all__ = ["NEGOTIATION_STATES", "RepairedDevice"]

# The states a timeout can end a negotiation in after this device's user accepted it,
# so with the partner's key trusted (trustThisKey on Accept). Not GroupKeyResetElection:
# there `partner` is whichever device the last negotiation was with, now a member.
NEGOTIATION_STATES = frozenset({
    "HandshakingPhase1Offerer", "HandshakingPhase1Requester",
    "FormingGroupOfferer", "FormingGroupRequester",
    "HandshakingToJoinPhase1", "JoiningGroup", "HandshakingGroupedPhase1",
})


class RepairedDevice(KeySyncDevice):
    def useOwnNegotiation(self) -> None:
        """The negotiation this device is in into the I/O buffer, before a send: the
        buffer holds the last received message's (A.1.6.9), handled or not, which may
        be another negotiation's (finding 5). The draft's useOwnChallenge and
        useOwnResponse do the same for the challenge and the response."""
        self.buffer.negotiation = self.negotiation

    def timed_out(self, state: str) -> None:
        """Repair 3: a negotiation that times out withdraws the trust its Accept granted,
        as a Rollback or CommitReject does in the same states (finding 3). The pEp engine
        handles a timeout in the application (sync.act: `timeout KeySync`), and the
        timeout resets the machine without a handler of the FSM's, so the repair is here;
        `untrustThisKey` is the draft's own action."""
        super().timed_out(state)
        if state in NEGOTIATION_STATES:
            self.untrustThisKey()


if TYPE_CHECKING:
    def _conforms(device: RepairedDevice) -> KeySyncBindings:
        """mypy checks the device against the repaired FSM's interface."""
        return device
