"""`make demo`: check and compile every protocol, render its diagrams, run simulations,
a run of separate processes over Redis, and explorations.

What runs is what a user runs: the `fsmc` commands, on protocols/*/*.fsm.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fsmc.cli import main as fsmc

ROOT = Path(__file__).resolve().parent.parent


def step(title: str, *args: str) -> None:
    print(f"\n== {title}\n$ fsmc {' '.join(args)}", flush=True)
    status = fsmc(list(args))
    if status != 0:
        sys.exit(status)


def main() -> int:
    protocols = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protocols").glob("*/*.fsm"))
    step("check every protocol", "check", *protocols)
    step("the KeySync model", "inspect", "protocols/keysync/keysync.fsm")
    step("compile: Python machines and the ASN.1 codec into generated/", "compile", *protocols)
    step("diagrams into diagrams/", "diagram", *protocols)
    (ROOT / "out").mkdir(exist_ok=True)
    step("simulate: two devices of one user form a device group (draft 2.2.1.1)", "simulate",
         "protocols/keysync/scenarios/form_group.toml", "--msc", "out/keysync_form_group.svg")
    step("simulate: five mpENC members establish a session, include, exclude, refresh (design 5.2)",
         "simulate", "protocols/mpenc/scenarios/sequence5.toml", "--msc", "out/gka_sequence5.svg")
    step("simulate: Alice requests Bob's contact over his rendezvous point, the five steps of Berty's handshake",
         "simulate", "protocols/berty/scenarios/contact_accepted.toml", "--msc", "out/berty_contact_accepted.svg")
    step("simulate: Alice's BisonRelay invite, accepted: RMOHalfKX and RMOFullKX over rendezvous points, sealed "
         "with sntrup4591761", "simulate", "protocols/bisonrelay/scenarios/accepted_invite.toml",
         "--msc", "out/bisonrelay_accepted_invite.svg")
    step("simulate: a Status conversation with a paired device: X3DH from a bundle, the Double Ratchet, every "
         "message fanned out pairwise to every approved installation", "simulate",
         "protocols/status/scenarios/paired_device.toml", "--msc", "out/status_paired_device.svg")
    step("simulate: a BisonRelay conversation over the ratchet the KX set up, each message at its own "
         "rendezvous point", "simulate", "protocols/bisonrelay/scenarios/chat_conversation.toml",
         "--msc", "out/bisonrelay_chat_conversation.svg")
    step("run for real: a KeySync join, three devices as three processes over Redis Streams (a redis-server "
         "of its own), each with its store: the group's two devices start, then the new one joins", "run",
         "protocols/keysync/scenarios/join_settled_group.toml", "--msc", "out/keysync_join_redis.svg")
    step("explore: every interleaving and user answer of forming a group, against KeySync's invariants",
         "explore", "protocols/keysync/scenarios/form_group.toml")
    step("explore: a stranger listens on Bob's rendezvous point and replays what it hears; Berty's invariants",
         "explore", "protocols/berty/scenarios/impostor_answers.toml")
    print("\nDiagrams:")
    for svg in sorted((ROOT / "diagrams").glob("*/*.svg")):
        print(f"  {svg.relative_to(ROOT)}")
    print("Sequence charts of the simulations:\n  out/keysync_form_group.svg\n  out/gka_sequence5.svg\n"
          "  out/berty_contact_accepted.svg\n  out/bisonrelay_accepted_invite.svg\n"
          "  out/bisonrelay_chat_conversation.svg\n  out/status_paired_device.svg\n"
          "  out/keysync_join_redis.svg (the run over Redis)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
