"""Berty's contact request handshake (the Berty protocol; berty/weshnet's internal/handshake).

| file | what |
| --- | --- |
| berty.fsm | the fsm ContactRequest, both roles (Requester: Idle to RequestSent; Responder: Listening to Requested) |
| BertyTypes.asn1 | the types the messages use: PublicKey, Box |
| crypto.py | rendezvous points, the handshake's boxes, contact groups, linking challenges (as weshnet computes them) |
| device.py | the conditions and actions the fsm names, the device's state record |
| parties.py | scenario parties (who responds, who knows whom, attackers) and the protocol's expectations |
| invariants.py | authentication, secrecy, agreement, blocked accounts stay out; replays change nothing |
| scenarios/ | a request accepted, discarded, blocked; a renewed seed; attackers |
| README.md | notes: the protocol, how it maps to weshnet, the choices made, what exploring shows |
"""

from pathlib import Path

from protocols.berty.device import BertyDevice
from protocols.berty.invariants import INVARIANTS
from protocols.berty.parties import EXPECTATIONS, check, make_devices
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "BertyDevice"]

PROTOCOL = Manifest(
    name="berty",
    title="Berty contact request (weshnet)",
    folder=Path(__file__).resolve().parent,
    fsm="ContactRequest",
    make_devices=make_devices,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
    # The Requester's user asks for the contact; the Responder's user answers it. The
    # explorer offers each where the party's state handles it, within the user budget.
    user_events=("SendContactRequest", "AcceptContact", "DiscardContact", "BlockContact"),
    consents=("SendContactRequest", "AcceptContact"),
)
