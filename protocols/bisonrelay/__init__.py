"""BisonRelay (companyzero/bisonrelay): its KEM, sntrup4591761, and its P2P key exchange.

| file | what |
| --- | --- |
| sntrup4591761.py | the KEM, byte-compatible with companyzero/sntrup4591761 |
| kx.py | the KX's cryptography and message contents, as BR computes them |
| bisonrelay.fsm | the fsm PeerKX, every role: manual invite, ratchet reset, auto-KX through a mediator |
| BRTypes.asn1 | the types the messages use: PublicIdentity, KeyExchange, RV, ShortID, Ciphertext, SealedBox |
| device.py | the conditions and actions the fsm names, the sealing at RVs, the client's state record |
| ratchet.py | BR's Double Ratchet with header encryption: every message between users who completed a KX |
| parties.py | scenario parties (invites, ratchets known, mediators, attackers), chat steps, expectations |
| invariants.py | authentication, secrecy, delivery, forward secrecy, agreement; replays change nothing |
| scenarios/ | invites, resets, an impostor, an auto-KX, attackers, replays; conversations (chat_*) |
| README.md | notes: the protocol, how it maps to BR, the choices made, what exploring shows |
"""

from pathlib import Path

from protocols.bisonrelay.device import BisonRelayDevice
from protocols.bisonrelay.invariants import INVARIANTS
from protocols.bisonrelay.parties import EXPECTATIONS, before_event, check, make_devices
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "BisonRelayDevice"]

PROTOCOL = Manifest(
    name="bisonrelay",
    title="BisonRelay P2P key exchange (companyzero/bisonrelay)",
    folder=Path(__file__).resolve().parent,
    fsm="PeerKX",
    make_devices=make_devices,
    before_event=before_event,
    check=check,
    expectations=EXPECTATIONS,
    invariants=INVARIANTS,
    # The acceptor's user accepts the invite it holds; a user resets a ratchet; a member asks
    # the mediator for an introduction. The explorer offers each where the party's state
    # handles it, within the user budget. All three consent: they start a KX the invariants
    # promise to see through (agreement) on a run without faults or timeouts. A user's chat
    # message (SendChat) consents too (it goes over the ratchet, or resets a stale one); the
    # explorer raises it where a scenario lists it as a signal ([explore] signals), not as a
    # user event: a signal that is also a user event is counted against the user budget
    # (runtime/harness/explore.py), which would leave the signals unbounded.
    user_events=("AcceptInvite", "ResetRatchet", "RequestMediateIdentity"),
    consents=("AcceptInvite", "ResetRatchet", "RequestMediateIdentity", "SendChat"),
    # BR's server keeps a payload at its RV until the subscriber fetches it.
    mailboxes=True,
)
