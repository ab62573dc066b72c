"""mpENC's group key agreement (MEGA's Multi-Party Encrypted Messaging, 5.2): CLIQUES
(x25519) and ASKE (ed25519) in one member fsm, with the concurrency resolver of 3.3.

| file | what |
| --- | --- |
| mpenc.fsm | the member fsm: states Alone, InSession, Upflowing, Confirming |
| mpENC.asn1 | the packet records of 5.2.3 as ASN.1 types |
| crypto.py | CLIQUES IKA/AKA and ASKE as pure functions |
| member.py | the member's conditions and actions, the resolver, its state record |
| parties.py | scenario members and mpENC's expectations |
| invariants.py | what the explorer checks |
| scenarios/ | establish, a sequence of operations, concurrent operations |
| README.md | the design, the choices where it is silent, what the tests show |
"""

from pathlib import Path

from protocols.mpenc.invariants import INVARIANTS
from protocols.mpenc.parties import EXPECTATIONS, before_event, check, make_devices
from runtime.manifest import Manifest

__all__ = ["PROTOCOL"]

PROTOCOL = Manifest(
    name="mpenc",
    title="mpENC group key agreement (CLIQUES + ASKE)",
    folder=Path(__file__).resolve().parent,
    fsm="Member",
    make_devices=make_devices,
    before_event=before_event,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
)
