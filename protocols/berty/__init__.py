"""Berty's contact request handshake (the Berty protocol; berty/weshnet's internal/handshake),
its device linking (the Berty protocol's "Linking Devices": our construction), and its
multi-member groups (the metadata log, Secret Entries, the symmetric ratchet's messages).

| file | what |
| --- | --- |
| berty.fsm | the fsm ContactRequest, both roles (Requester: Idle to RequestSent; Responder: Listening to Requested) |
| berty.fsm | the fsm DeviceLinking, both roles (the account's device: Invited to Closed; the new one: to Linked) |
| berty.fsm | the fsm MultiMemberGroup, one device of a member in a group (Invited, Member) |
| BertyTypes.asn1 | the types: PublicKey, Box; DeviceId, InvitationToken, ChallengeKind, Signature, SealedAccount |
| BertyTypes.asn1 | groups: GroupEnvelope (a log entry's envelope; its log signature is a Signature) |
| crypto.py | rendezvous points, the handshake's boxes, contact groups, linking challenges (as weshnet computes them) |
| device.py | the conditions and actions ContactRequest names, the device's state record |
| linking.py | device linking: the account's secrets, how they are sealed, the bindings of DeviceLinking |
| groups.py | groups: weshnet's entries, envelopes and symmetric ratchet (sans-IO, pure) |
| group_device.py | the bindings of MultiMemberGroup: the logs as addresses, entries verified in `open`, held messages |
| parties.py | scenario parties (who responds, who knows whom, who links to whom, attackers), the expectations |
| invariants.py | authentication, secrecy, agreement, blocked accounts stay out; replays change nothing |
| invariants.py | linking: secrets only after the user's challenge, to the device that passed it, never to attackers |
| invariants.py | groups: opened as sent, forward secrecy for late members, outsiders stay out, what is sent opens |
| scenarios/ | a request accepted, discarded, blocked; a renewed seed; attackers |
| scenarios/link_* | linking: each challenge passed and failed; attackers with the invitation |
| scenarios/group_* | groups: three members talking, a late member, reordered, lost and replayed messages, an outsider |
| README.md | notes: the protocol, how it maps to weshnet, the choices made, what exploring shows |
"""

from collections.abc import Hashable
from pathlib import Path
from typing import Any

from protocols.berty.device import BertyDevice
from protocols.berty.group_device import GroupMemberDevice
from protocols.berty.invariants import INVARIANTS
from protocols.berty.linking import LinkingDevice
from protocols.berty.parties import EXPECTATIONS, before_event, check, make_devices
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "BertyDevice", "GroupMemberDevice", "LinkingDevice", "negotiation"]


def negotiation(device: Any) -> Hashable:
    """What a user's consent answers to: in device linking, the challenge and the device ID
    it is for (on A, the requesting device's; on B, its own); nothing in the contact request."""
    if isinstance(device, LinkingDevice):
        shown = device.candidate_id if device.own_account is not None else device.requested_id
        return device.challenge, shown
    return None


PROTOCOL = Manifest(
    name="berty",
    title="Berty: contact request, device linking, multi-member groups (weshnet)",
    folder=Path(__file__).resolve().parent,
    fsm="ContactRequest",
    make_devices=make_devices,
    before_event=before_event,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
    # The Requester's user asks for the contact; the Responder's user answers it. In device
    # linking, the user scans B's QR code with A, types A's PIN on B, or compares the
    # fingerprints on A. In a group, the user activates the group on the device (Join)
    # and writes (SendGroupMessage). The explorer offers each where the party's state
    # handles it, within the user budget.
    user_events=("SendContactRequest", "AcceptContact", "DiscardContact", "BlockContact",
                 "ScanQRCode", "EnterPin", "ConfirmFingerprint", "RejectFingerprint",
                 "Join", "SendGroupMessage"),
    # Doing the challenge consents to it (what is scanned or typed is the scenario's: a
    # wrong one fails the challenge, which the invariants judge); a rejected fingerprint,
    # like a discarded request, disturbs the run. Joining a group and writing to it must
    # lead to progress (every member reads what was sent to it).
    consents=("SendContactRequest", "AcceptContact", "ScanQRCode", "EnterPin", "ConfirmFingerprint",
              "Join", "SendGroupMessage"),
    negotiation=negotiation,
)
