"""States per second of systematic exploration, against a plain simulation in the same run.

Each exploration runs a KeySync scenario under one fault model and prints its state and
transition counts, depth, time and rate, whether it completed, and which invariants it
found violated. The baseline is the same scenario run as a plain simulation (one path,
no copies, no hashing) in this process: the ratio says what one explored transition
costs against one simulated delivery.

    python bench/bench_explore.py [--quick] [PROTOCOL ...]

--quick: the two-device scenarios only. PROTOCOL: keysync (the draft), keysync_repaired
(the draft with its defects repaired: the same runs, docs/exploration.md, "The draft
repaired"); both by default.

The joins with faults take several minutes each: about 5 with loss (593,000 states), 25
with duplication (3,600,000 states), 25 with reordering (2,500,000 states).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fsmc.build import load_scenario
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ("keysync", "keysync_repaired")
FORM = "form_group.toml"
JOIN = "join_settled_group.toml"
JOIN_FROM_START = "join_group.toml"  # the group's own start interleaved with the join

RUNS: list[tuple[str, str, dict[str, object]]] = [
    (FORM, "none", {}),
    (FORM, "loss", {"faults": frozenset({"loss"}), "max_faults": 1}),
    (FORM, "dup", {"faults": frozenset({"dup"}), "max_faults": 1}),
    (FORM, "reorder", {"faults": frozenset({"reorder"}), "max_faults": 1}),
    (FORM, "loss,dup,reorder", {"faults": frozenset({"loss", "dup", "reorder"}), "max_faults": 1}),
    (FORM, "loss + timeouts", {"faults": frozenset({"loss"}), "max_faults": 1, "timeouts": 1}),
    (FORM, "none, 2 answers", {"user_events": 2}),
    (JOIN, "none", {}),
    # Depth first: a level of the join's faulty spaces does not fit in memory breadth first.
    (JOIN, "loss (dfs)", {"faults": frozenset({"loss"}), "max_faults": 1, "search": "dfs"}),
    (JOIN, "dup (dfs)", {"faults": frozenset({"dup"}), "max_faults": 1, "search": "dfs"}),
    (JOIN, "reorder (dfs)", {"faults": frozenset({"reorder"}), "max_faults": 1, "search": "dfs"}),
    (JOIN_FROM_START, "none (dfs)", {"search": "dfs"}),
]


def _scenarios(protocol: str) -> Path:
    return ROOT / "protocols" / protocol / "scenarios"


def simulated_delivery_cost(protocol: str, name: str) -> float:
    """Seconds per delivery of the scenario run as a plain simulation."""
    scenario = load_scenario(_scenarios(protocol) / name)
    deliveries, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        result = Simulation(scenario).run()
        deliveries += sum(1 for e in result.trace if e.kind in ("receive", "ignored", "drop"))
    return (time.perf_counter() - t0) / deliveries


def main(quick: bool, protocols: list[str]) -> None:
    names = (FORM,) if quick else (FORM, JOIN, JOIN_FROM_START)
    baseline = {(p, name): simulated_delivery_cost(p, name) for p in protocols for name in names}
    for (protocol, name), cost in baseline.items():
        print(f"baseline: {protocol} {name} as a simulation: {1 / cost:,.0f} deliveries/s")
    print()
    header = f"{'protocol':17} {'scenario':26} {'faults':18} {'states':>8} {'trans':>8} {'depth':>5} " \
             f"{'time s':>7} {'states/s':>8} {'x sim':>6}  result"
    print(header)
    print("-" * len(header))
    for protocol, (name, label, settings) in ((p, run) for p in protocols for run in RUNS):
        if quick and name != FORM:
            continue
        explorer = Explorer(load_scenario(_scenarios(protocol) / name), **settings)  # type: ignore[arg-type]
        report = explorer.run()
        per_transition = report.seconds / max(report.transitions, 1)
        verdict = "complete" if report.complete else f"bounded by {', '.join(report.bounded_by)}"
        if report.violations:
            verdict += ": violated " + ", ".join(v.invariant for v in report.violations)
        x_sim = per_transition / baseline[protocol, name]
        print(f"{protocol:17} {name:26} {label:18} {report.states:8} {report.transitions:8} {report.max_depth:5} "
              f"{report.seconds:7.1f} {report.states_per_second:8.0f} {x_sim:6.1f}  {verdict}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main("--quick" in args, [a for a in args if not a.startswith("--")] or list(PROTOCOLS))
