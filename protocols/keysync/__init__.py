"""pEp KeySync (draft-pep-keysync-03): the draft's FSM as written, and its bindings.

| file | what |
| --- | --- |
| keysync.fsm | the FSM of Appendix B.1, transcribed (page-break repairs marked) |
| pEp.asn1 | the ASN.1 types of B.2 the messages use |
| device.py | the conditions (A.1.2) and actions (A.1.3), security contexts (A.1.6.3), the device's state record |
| keys.py | own identities, key pairs, trust, the device group |
| envelope.py | signed (Ed25519) and encrypted (X25519 sealed boxes) envelopes |
| trustwords.py | trustwords of two fingerprints, for the handshake dialogs |
| parties.py | scenario parties (devices of one user, some grouped) and KeySync's expectations |
| invariants.py | what the explorer checks (docs/exploration.md) |
| scenarios/ | the draft's scenarios of section 2, and their faults |
| README.md | notes: where fsmc differs from the pEp engine, and why |
"""

from pathlib import Path

from protocols.keysync.device import KeySyncDevice, Notification
from protocols.keysync.invariants import INVARIANTS, negotiation
from protocols.keysync.keys import KeyRing, OwnIdentity
from protocols.keysync.parties import EXPECTATIONS, before_event, check, make_devices
from protocols.keysync.trustwords import trustwords
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "KeyRing", "KeySyncDevice", "Notification", "OwnIdentity", "trustwords"]

PROTOCOL = Manifest(
    name="keysync",
    title="pEp KeySync (draft-pep-keysync-03)",
    folder=Path(__file__).resolve().parent,
    fsm="KeySync",
    make_devices=make_devices,
    before_event=before_event,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
    # The dialog's answers (A.1.5.5 externals); an Accept consents to the negotiation.
    user_events=("Accept", "Reject", "Cancel"),
    consents=("Accept",),
    negotiation=negotiation,
)
