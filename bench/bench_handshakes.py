"""The contact handshakes: each complete run against its cryptography alone, the KEM's
costs, and the explorations of the attack scenarios.

- sntrup4591761 (BisonRelay's KEM): key generation, encapsulation, decapsulation.
- A handshake, run whole (every party's generated machine, UPER encoding and decoding,
  the envelopes, the in-memory network with its rendezvous points, the trace) against
  the same cryptography called directly, in the same order and number (the run's calls
  are counted, and the bench stops if the two differ). The goal, as for mpENC: the
  machinery adds at most 25% to the cryptography.
- The attack scenarios explored completely with every fault: states, time, verdict.

    python bench/bench_handshakes.py
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fsmc.build import load_scenario
from protocols.berty import crypto as berty
from protocols.berty.device import EPOCH, point_address
from protocols.bisonrelay import device as br_device
from protocols.bisonrelay import kx
from protocols.bisonrelay import sntrup4591761 as kem
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation

ROOT = Path(__file__).resolve().parent.parent
BERTY = ROOT / "protocols" / "berty" / "scenarios"
BISONRELAY = ROOT / "protocols" / "bisonrelay" / "scenarios"

# The functions of protocols.berty.crypto a contact request calls: the cryptography.
BERTY_CRYPTO = ("contact_request_rendezvous", "ephemeral_shared_secret", "requester_ephemeral_account_secret",
                "responder_ephemeral_account_secret", "account_shared_secret", "authenticate_box_key",
                "accept_box_key", "seal_requester_authenticate", "open_requester_authenticate",
                "seal_responder_accept", "open_responder_accept", "contact_group", "check_ephemeral_public")


def per_call(f: Callable[[], Any], seconds: float = 1.0) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        f()
        n += 1
    return (time.perf_counter() - t0) / n


def paired(whole: Callable[[], Any], alone: Callable[[], Any], rounds: int = 12,
           seconds: float = 0.4) -> tuple[float, float]:
    """Seconds per call of each, timed in alternating rounds, the best round of each: what
    else runs on the machine slows rounds, not the code."""
    best_whole = best_alone = float("inf")
    for _ in range(rounds):
        best_whole = min(best_whole, per_call(whole, seconds))
        best_alone = min(best_alone, per_call(alone, seconds))
    return best_whole, best_alone


def protocol_run(scenario: Any) -> None:
    """The scenario's steps as a simulation runs them, without checking its [expect]
    table afterwards (the test's part, not the protocol's)."""
    sim = Simulation(scenario)
    for step in scenario.steps:
        sim.step(step)


def kem_costs() -> None:
    rng = random.Random(1)
    pk, sk = kem.generate_key(rng.randbytes)
    ct, _ = kem.encapsulate(pk, rng.randbytes)
    print("sntrup4591761")
    for name, f in (("generate_key", lambda: kem.generate_key(rng.randbytes)),
                    ("encapsulate", lambda: kem.encapsulate(pk, rng.randbytes)),
                    ("decapsulate", lambda: kem.decapsulate(ct, sk))):
        print(f"  {name:14} {per_call(f) * 1e3:8.2f} ms")


@contextmanager
def counting(module: Any, names: tuple[str, ...]) -> Iterator[Counter[str]]:
    """Count the calls of `module`'s functions `names` (through the module, as callers
    reach them) while the block runs."""
    calls: Counter[str] = Counter()
    originals = {name: getattr(module, name) for name in names}

    def wrap(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return f(*args, **kwargs)
        return counted

    for name, f in originals.items():
        setattr(module, name, wrap(name, f))
    try:
        yield calls
    finally:
        for name, f in originals.items():
            setattr(module, name, f)


def berty_crypto_alone(seeds: tuple[bytes, bytes, bytes, bytes, bytes]) -> None:
    """The contact request's cryptography, as both sides of contact_accepted.toml call it:
    the Responder publishes its point, the Requester computes it; each side's ephemeral
    key and check of the other's, a.b and a.B on each side, step 3 sealed and opened,
    A.B and step 4 on each side, the contact group on each side."""
    a_seed, b_seed, rv_seed, ea, eb = seeds
    alice, bob = berty.Ed25519KeyPair.from_seed(a_seed), berty.Ed25519KeyPair.from_seed(b_seed)
    point_address(bob.public, rv_seed, EPOCH)  # Bob listens
    point_address(bob.public, rv_seed, EPOCH)  # Alice sends to it
    a, b = berty.EphemeralKeyPair.from_private(ea), berty.EphemeralKeyPair.from_private(eb)
    berty.check_ephemeral_public(a.public, berty.Step.REQUESTER_HELLO)
    ab_bob = berty.ephemeral_shared_secret(b, a.public)
    a_b_bob = berty.responder_ephemeral_account_secret(bob, a.public)
    berty.check_ephemeral_public(b.public, berty.Step.RESPONDER_HELLO)
    ab, a_b = berty.ephemeral_shared_secret(a, b.public), berty.requester_ephemeral_account_secret(a, bob.public)
    box = berty.seal_requester_authenticate(alice, ab, berty.authenticate_box_key(ab, a_b))
    account = berty.open_requester_authenticate(box, ab_bob, berty.authenticate_box_key(ab_bob, a_b_bob))
    accept_key = berty.accept_box_key(ab_bob, berty.account_shared_secret(bob, account))
    box = berty.seal_responder_accept(bob, ab_bob, accept_key)
    berty.open_responder_accept(box, ab, berty.accept_box_key(ab, berty.account_shared_secret(alice, bob.public)),
                                bob.public)
    berty.contact_group(alice, bob.public)
    berty.contact_group(bob, alice.public)


def berty_handshake() -> None:
    scenario = load_scenario(BERTY / "contact_accepted.toml")
    assert Simulation(scenario).run().failures == []
    rng = random.Random(2)
    with counting(berty, BERTY_CRYPTO) as run_calls:
        protocol_run(scenario)
    with counting(berty, BERTY_CRYPTO) as alone_calls:
        berty_crypto_alone(tuple(rng.randbytes(32) for _ in range(5)))  # type: ignore[arg-type]
    if run_calls != alone_calls:
        raise SystemExit(f"the cryptography alone is not the run's: {run_calls} against {alone_calls}")
    inputs = [tuple(rng.randbytes(32) for _ in range(5)) for _ in range(64)]
    it = iter(range(1 << 62))
    whole, alone = paired(lambda: protocol_run(scenario),
                          lambda: berty_crypto_alone(inputs[next(it) % 64]))  # type: ignore[arg-type]
    print(f"Berty contact request (contact_accepted.toml): whole run {whole * 1e3:.2f} ms, its cryptography "
          f"{alone * 1e3:.2f} ms: machinery {100 * (whole / alone - 1):+.0f}%")


# The cryptography of a BisonRelay KX: the KEM and the secretboxes (through the modules
# that call them, as kx.py does).
KEM_CALLS = ("generate_key", "encapsulate", "decapsulate_checked")
BOX_CALLS = ("secretbox_seal", "secretbox_open")


def bisonrelay_crypto_alone(rng: random.Random) -> None:
    """accepted_invite.toml's cryptography: two identities, the invite, the acceptor's
    half sealed to the inviter and opened, the inviter's answer sealed and opened, both
    ratchets completed."""
    alice = kx.new_identity("alice", "alice", rng.randbytes)
    bob = kx.new_identity("bob", "bob", rng.randbytes)
    pending, invite = kx.create_invite(alice.public, rng.randbytes)
    accepted, half = kx.accept_invite(bob, invite, rng.randbytes)
    kx.open(kx.seal(bytes(1800), alice.public.key, rng.randbytes), alice.private_key)
    completed, full = kx.answer_half_kx(alice, pending, half, rng.randbytes)
    kx.open(kx.seal(bytes(1200), bob.public.key, rng.randbytes), bob.private_key)
    kx.finish_full_kx(bob, accepted, full)


def bisonrelay_kx() -> None:
    scenario = load_scenario(BISONRELAY / "accepted_invite.toml")
    assert Simulation(scenario).run().failures == []

    def run() -> None:
        br_device._MEMO.clear()  # the explorer's memo of results: a simulation computes each once
        protocol_run(scenario)

    rng = random.Random(3)
    with counting(kem, KEM_CALLS) as run_kem, counting(kx, BOX_CALLS) as run_box:
        run()
    with counting(kem, KEM_CALLS) as alone_kem, counting(kx, BOX_CALLS) as alone_box:
        bisonrelay_crypto_alone(rng)
    run_calls, alone_calls = run_kem + run_box, alone_kem + alone_box
    if alone_calls - run_calls:  # the run must do at least the cryptography priced as its own
        raise SystemExit(f"the cryptography alone is not the run's: {run_calls} against {alone_calls}")
    whole, alone = paired(run, lambda: bisonrelay_crypto_alone(rng), rounds=6, seconds=1.0)
    print(f"BisonRelay KX (accepted_invite.toml): whole run {whole * 1e3:.1f} ms, its cryptography "
          f"{alone * 1e3:.1f} ms: machinery {100 * (whole / alone - 1):+.0f}%, including the cryptography the "
          f"run does beyond the KX's own: {dict(run_calls - alone_calls)} (admit checks a half before the fsm "
          f"takes it)")


ATTACKS = [
    (BERTY / "impostor_answers.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
    (BERTY / "stranger_requests.toml", {"faults": "replay"}),
    (BERTY / "man_in_the_middle.toml", {"faults": "replay", "max_faults": 2}),
    (BERTY / "contact_accepted.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
    (BISONRELAY / "attacker_answers_invite.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
    (BISONRELAY / "replayed_kx.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
    (BISONRELAY / "eavesdropper.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
    (BISONRELAY / "mediated_autokx.toml", {"faults": "loss,dup,reorder,replay", "timeouts": 1}),
]


def explorations() -> None:
    print(f"\n{'scenario':28} {'faults':30} {'states':>8} {'trans':>8} {'time s':>7} {'states/s':>8}  result")
    for path, settings in ATTACKS:
        report = Explorer.for_scenario(load_scenario(path), **settings).run()
        verdict = "complete" if report.complete else f"bounded by {', '.join(report.bounded_by)}"
        verdict += ": violated " + ", ".join(v.invariant for v in report.violations) if report.violations else \
            ", no invariant violated"
        label = f"{settings['faults']}" + (f", timeouts {settings['timeouts']}" if "timeouts" in settings else "") \
            + (f", {settings['max_faults']} per run" if "max_faults" in settings else "")
        print(f"{path.name:28} {label:30} {report.states:8} {report.transitions:8} {report.seconds:7.1f} "
              f"{report.states_per_second:8.0f}  {verdict}", flush=True)


if __name__ == "__main__":
    kem_costs()
    print()
    berty_handshake()
    bisonrelay_kx()
    explorations()
