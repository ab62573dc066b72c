"""BisonRelay (companyzero/bisonrelay): its KEM, sntrup4591761, and its P2P key exchange.

| file | what |
| --- | --- |
| sntrup4591761.py | the KEM, byte-compatible with companyzero/sntrup4591761 |
| kx.py | the KX's cryptography and message contents, as BR computes them |
| bisonrelay.fsm | the fsm PeerKX, every role: manual invite, ratchet reset, auto-KX through a mediator |
| BRTypes.asn1 | the types the messages use: PublicIdentity, KeyExchange, RV, ShortID, Ciphertext, SealedBox |
| device.py | the conditions and actions the fsm names, the sealing at RVs, the client's state record |
| parties.py | scenario parties (invites held, ratchets known, mediators, attackers) and the protocol's expectations |
| invariants.py | authentication, secrecy, agreement; replays change nothing |
| scenarios/ | an invite accepted and never accepted, resets, an impostor, an auto-KX, attackers, replays |
| README.md | notes: the protocol, how it maps to BR, the choices made, what exploring shows |
"""

from pathlib import Path

from protocols.bisonrelay.device import BisonRelayDevice
from protocols.bisonrelay.invariants import INVARIANTS
from protocols.bisonrelay.parties import EXPECTATIONS, check, make_devices
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "BisonRelayDevice"]

PROTOCOL = Manifest(
    name="bisonrelay",
    title="BisonRelay P2P key exchange (companyzero/bisonrelay)",
    folder=Path(__file__).resolve().parent,
    fsm="PeerKX",
    make_devices=make_devices,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
    # The acceptor's user accepts the invite it holds; a user resets a ratchet; a member asks
    # the mediator for an introduction. The explorer offers each where the party's state
    # handles it, within the user budget. All three consent: they start a KX the invariants
    # promise to see through (agreement) on a run without faults or timeouts.
    user_events=("AcceptInvite", "ResetRatchet", "RequestMediateIdentity"),
    consents=("AcceptInvite", "ResetRatchet", "RequestMediateIdentity"),
)
