"""States per second of systematic exploration, against a plain simulation in the same run.

Each exploration runs a KeySync scenario under one fault model and prints its state and
transition counts, depth, time and rate, whether it completed, and which invariants it
found violated. The baseline is the same scenario run as a plain simulation (one path,
no copies, no hashing) in this process: the ratio says what one explored transition
costs against one simulated delivery.

    python bench/bench_explore.py [--quick]     # --quick: two-device scenarios only

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
SCENARIOS = ROOT / "protocols" / "keysync" / "scenarios"
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


def simulated_delivery_cost(name: str) -> float:
    """Seconds per delivery of the scenario run as a plain simulation."""
    scenario = load_scenario(SCENARIOS / name)
    deliveries, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        result = Simulation(scenario).run()
        deliveries += sum(1 for e in result.trace if e.kind in ("receive", "ignored", "drop"))
    return (time.perf_counter() - t0) / deliveries


def main(quick: bool) -> None:
    baseline = {name: simulated_delivery_cost(name) for name in (FORM, JOIN, JOIN_FROM_START)}
    for name, cost in baseline.items():
        print(f"baseline: {name} as a simulation: {1 / cost:,.0f} deliveries/s")
    print()
    header = f"{'scenario':34} {'faults':18} {'states':>8} {'trans':>8} {'depth':>5} {'time s':>7} " \
             f"{'states/s':>8} {'x sim':>6}  result"
    print(header)
    print("-" * len(header))
    for name, label, settings in RUNS:
        if quick and name != FORM:
            continue
        explorer = Explorer(load_scenario(SCENARIOS / name), **settings)  # type: ignore[arg-type]
        report = explorer.run()
        per_transition = report.seconds / max(report.transitions, 1)
        verdict = "complete" if report.complete else f"bounded by {', '.join(report.bounded_by)}"
        if report.violations:
            verdict += ": violated " + ", ".join(v.invariant for v in report.violations)
        print(f"{name:34} {label:18} {report.states:8} {report.transitions:8} {report.max_depth:5} "
              f"{report.seconds:7.1f} {report.states_per_second:8.0f} {per_transition / baseline[name]:6.1f}  "
              f"{verdict}", flush=True)


if __name__ == "__main__":
    main("--quick" in sys.argv[1:])
