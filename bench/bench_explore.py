"""States per second of systematic exploration, against the explorer as it was before its
optimisations, in the same run.

The baseline is the explorer of the tagged commit `explore-baseline` (the commit itself
when the tag is not in the clone), checked out in a git worktree beside the project with
bench/baseline.patch applied (fixes to the protocols' code since, and what the explorer
records of the users' answers, which both explorers need to explore the same, right,
state spaces), and run on the same scenarios, each
exploration in a process of its own (so that each peak memory is its own). Every row of
the new explorer with one worker and the same search order as a baseline row must
explore the same number of worlds and transitions and violate the same invariants; the
bench says MISMATCH and exits 1 where it does not.

    python bench/bench_explore.py [--quick] [--no-baseline] [--only TEXT]

--quick: the form group and the mpENC scenario only. --no-baseline: the new explorer only.
--only TEXT: the rows whose protocol, scenario and faults (as the table shows them) contain
TEXT, e.g. --only "join_settled_group reorder".

Columns: states (explored worlds), transitions, seconds, states/s, the seen-set's bytes
per state (fingerprints, 16 bytes each, and their table), the process's peak memory, the
ratio of states/s to the baseline's row (x base) or, for a row on several workers, to the
same search on one (x 1 w), the workers, and for a row on several workers what the
machine's cores gave just after it (`capacity`: at most the number of cores; a ratio of
workers to one worker is to be read against it). The baseline's faulty joins take several
minutes each (dup about 10, reorder about 8); the whole bench about 40 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE_TAG = "explore-baseline"
BASELINE_COMMIT = "4f58e4776b65115d5a3972400b35604dc1d8be19"  # the tag's commit, for clones without tags
# Applied to the baseline's worktree: KeySync's message labels without the recipients
# (fixed since), by which both explorers merged worlds that differ in who can open a
# message in flight (seen on the join with a reordered message); repair 11 and the
# invariants since (KeySync's invariants.py as it is); and the users' answers the
# explorer records (`World.answered`, part of the snapshot, which `users_are_asked_once`
# reads: on the draft's join they tell 207 more states apart), so that both explore the
# same FSM, the same space, against the same checks.
PATCH = ROOT / "bench" / "baseline.patch"
CORES = len(os.sched_getaffinity(0))

ALL = ["loss", "dup", "reorder"]


@dataclass(frozen=True)
class Run:
    protocol: str
    scenario: str
    faults: str  # as the table shows them
    settings: dict[str, Any] = field(default_factory=dict)
    baseline: bool = True  # also run on the baseline (one worker, same search)
    workers: tuple[int, ...] = (1,)


FORM, JOIN = "form_group.toml", "join_settled_group.toml"
RUNS = [
    Run("keysync_repaired", FORM, "none"),
    Run("keysync_repaired", FORM, "loss,dup,reorder", {"faults": ALL, "max_faults": 1}),
    Run("keysync_repaired", FORM, "loss,dup,reorder x2", {"faults": ALL, "max_faults": 2}, workers=(1, CORES)),
    Run("mpenc", "concurrent.toml", "loss,dup,reorder x2", {"faults": ALL, "max_faults": 2}, workers=(1, CORES)),
    Run("keysync", JOIN, "none", workers=(1, CORES)),
    Run("keysync_repaired", JOIN, "none", workers=(1, CORES)),
    # Depth first, as the baseline had to (a level of these did not fit in its memory).
    Run("keysync_repaired", JOIN, "loss (dfs)", {"faults": ["loss"], "max_faults": 1, "search": "dfs"}),
    Run("keysync_repaired", JOIN, "dup (dfs)", {"faults": ["dup"], "max_faults": 1, "search": "dfs"}),
    Run("keysync_repaired", JOIN, "reorder (dfs)", {"faults": ["reorder"], "max_faults": 1, "search": "dfs"}),
    # Breadth first, on one worker and on every core (the baseline did not hold these).
    Run("keysync_repaired", JOIN, "loss", {"faults": ["loss"], "max_faults": 1}, False, (1, CORES)),
    Run("keysync_repaired", JOIN, "dup", {"faults": ["dup"], "max_faults": 1}, False, (1, CORES)),
    Run("keysync_repaired", JOIN, "reorder", {"faults": ["reorder"], "max_faults": 1}, False, (1, CORES)),
    # Two lost messages per run: bounded, its rate and bound reported.
    Run("keysync_repaired", JOIN, "loss x2", {"faults": ["loss"], "max_faults": 2, "max_states": 3_000_000}, False,
        (CORES,)),
]
QUICK = [r for r in RUNS if r.scenario != JOIN]

# One exploration, in a process of its own, in the tree it runs in (the project or the
# baseline's worktree): its report as JSON. The baseline's Explorer takes the same
# settings; what it does not report (the seen-set's size, workers) is left out.
RUNNER = r"""
import json, resource, sys, time
from pathlib import Path
from fsmc.build import load_scenario
from runtime.harness.explore import Explorer
spec = json.loads(sys.argv[1])
settings = dict(spec["settings"])
if "faults" in settings:
    settings["faults"] = frozenset(settings["faults"])
explorer = Explorer(load_scenario(Path(spec["scenario"])), **settings)
if spec["workers"] > 1:
    from runtime.harness import parallel
    report = parallel.explore(explorer, spec["workers"])
else:
    report = explorer.run()
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"states": report.states, "transitions": report.transitions, "seconds": report.seconds,
                  "violated": sorted(report.violating), "complete": report.complete,
                  "seen_bytes": getattr(report, "seen_bytes", None), "workers": getattr(report, "workers", 1),
                  "peak": rss * 1024}))
"""


def baseline_tree(where: Path) -> Path:
    """A worktree of the baseline commit at `where` (made once, reused), with the fixes of
    PATCH applied: defects of the protocols' code that the baseline's explorer shares,
    without which both explorers would explore different (and wrong) state spaces."""
    if (where / "runtime" / "harness" / "explore.py").exists():
        if subprocess.run(["git", "-C", str(where), "apply", "--check", "--reverse", str(PATCH)],
                          capture_output=True).returncode != 0:
            subprocess.run(["git", "-C", str(where), "checkout", "--", "."], check=True, capture_output=True)
            subprocess.run(["git", "-C", str(where), "apply", str(PATCH)], check=True, capture_output=True)
        return where
    commit = BASELINE_TAG
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "-q", "--verify", f"{BASELINE_TAG}^{{commit}}"],
                      capture_output=True).returncode != 0:
        commit = BASELINE_COMMIT
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where), commit], check=True,
                   capture_output=True)
    subprocess.run(["git", "-C", str(where), "apply", str(PATCH)], check=True, capture_output=True)
    return where


def command(tree: Path, run: Run, workers: int, cache: Path) -> tuple[list[str], dict[str, str]]:
    """The RUNNER process of one exploration in `tree`: its command line and environment."""
    spec = {"scenario": str(tree / "protocols" / run.protocol / "scenarios" / run.scenario),
            "settings": run.settings, "workers": workers}
    # Each tree compiles the protocols with its own compiler, into a cache of its own.
    env = {**os.environ, "PYTHONPATH": str(tree), "FSMC_CACHE": str(cache)}
    return [sys.executable, "-c", RUNNER, json.dumps(spec)], env


def report_of(stdout: str) -> dict[str, Any]:
    """The report a RUNNER process printed last."""
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return report


def measure(tree: Path, run: Run, workers: int, cache: Path) -> dict[str, Any]:
    argv, env = command(tree, run, workers, cache)
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{run.protocol} {run.scenario} {run.faults} in {tree}:\n{done.stderr}")
    return report_of(done.stdout)


# What the machine's cores give at the moment, for the rows on several workers: this
# exploration (about 2 s) alone, then one copy per core at once, then alone again. On a
# virtual machine the cores are shared with others, and two processes at once were seen
# to take from 1.0 to 1.7 times as long each as one alone, changing from one minute to the
# next: a ratio of workers to one worker means little without what the cores gave while
# it was measured.
PROBE = Run("keysync_repaired", FORM, "probe", {"faults": ALL, "max_faults": 2})


def capacity(cache: Path) -> float:
    """The cores' worth now: CORES times the probe's seconds alone (the faster of a run
    before and one after) over its mean seconds with one copy per core at once (CORES on
    idle cores, less where they are shared)."""
    alone = float(measure(ROOT, PROBE, 1, cache)["seconds"])
    argv, env = command(ROOT, PROBE, 1, cache)
    copies = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(CORES)]
    seconds = [float(report_of(p.communicate()[0])["seconds"]) for p in copies]
    alone = min(alone, float(measure(ROOT, PROBE, 1, cache)["seconds"]))
    return CORES * alone / (sum(seconds) / len(seconds))


def row(run: Run, search: str, r: dict[str, Any], ratio: str, label: str = "", cores: str = "") -> str:
    rate = r["states"] / r["seconds"] if r["seconds"] else 0.0
    per_state = f"{r['seen_bytes'] / r['states']:.0f}" if r.get("seen_bytes") else "-"
    verdict = "complete" if r["complete"] else "bounded"
    if r["violated"]:
        verdict += ": " + ", ".join(r["violated"])
    return (f"{label or run.protocol:17} {run.scenario.removesuffix('.toml'):19} {run.faults:20} {search:6} "
            f"{r['states']:9} {r['transitions']:9} {r['seconds']:8.1f} {rate:8.0f} {per_state:>6} "
            f"{r['peak'] / 2**20:7.0f} {ratio:>7} {r['workers']:3} {cores:>5}  {verdict}")


def main(quick: bool, with_baseline: bool, only: str | None = None) -> int:
    runs = QUICK if quick else RUNS
    if only is not None:
        runs = [r for r in runs if only in f"{r.protocol} {r.scenario.removesuffix('.toml')} {r.faults}"]
        if not runs:
            raise SystemExit(f"--only {only!r}: no such row")
    mismatches = 0
    with tempfile.TemporaryDirectory(prefix="fsmc-bench-") as tmp:
        base = baseline_tree(ROOT / ".bench-baseline") if with_baseline else None
        header = (f"{'protocol':17} {'scenario':19} {'faults':20} {'search':6} {'states':>9} {'trans':>9} "
                  f"{'seconds':>8} {'states/s':>8} {'B/st':>6} {'peak MB':>7} {'ratio':>7} {'w':>3} {'cores':>5}"
                  "  result")
        print(f"baseline: {BASELINE_TAG} in {base}" if base else "baseline: none (--no-baseline)")
        print(header)
        print("-" * len(header))
        for run in runs:
            search = str(run.settings.get("search", "bfs"))
            old = None
            if base is not None and run.baseline:
                old = measure(base, run, 1, Path(tmp) / "baseline-cache")
                print(row(run, search, old, "", "  baseline"), flush=True)
            one = None
            for workers in run.workers:
                new = measure(ROOT, run, workers, Path(tmp) / "cache")
                ratio, cores = "", ""
                if workers > 1:
                    cores = f"{capacity(Path(tmp) / 'cache'):.2f}"
                if workers == 1 and old is not None:
                    ratio = f"{(new['states'] / new['seconds']) / (old['states'] / old['seconds']):.1f}x base"
                    if (new["states"], new["transitions"], new["violated"]) != \
                            (old["states"], old["transitions"], old["violated"]):
                        mismatches += 1
                        ratio = "MISMATCH"
                elif workers > 1 and one is not None:
                    ratio = f"{one['seconds'] / new['seconds']:.2f}x 1 w"
                    if (new["states"], new["transitions"], new["violated"]) != \
                            (one["states"], one["transitions"], one["violated"]):
                        mismatches += 1
                        ratio = "MISMATCH"
                if workers == 1:
                    one = new
                print(row(run, search, new, ratio, cores=cores), flush=True)
    if mismatches:
        print(f"\n{mismatches} MISMATCH(ES): the explorers disagree", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    only = args[args.index("--only") + 1] if "--only" in args[:-1] else None
    sys.exit(main("--quick" in args, "--no-baseline" not in args, only))
