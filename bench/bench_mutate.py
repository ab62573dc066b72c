"""Mutation scores: `fsmc mutate` over each protocol's main scenarios, every operator.

For each run (RUNS): how many mutants, killed, survived, equivalent and invalid, the
score (killed / (killed + survived)), the time and the workers; the surviving mutants are
listed with their place in the DSL file (docs/exploration.md explains them). Each
exploration is bounded (max_states): a mutant whose states grow past it and breaks nothing
on the way counts as survived, and is marked bounded.

    python bench/bench_mutate.py ["run label" ...]     # e.g. keysync "keysync_repaired (join)"
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsmc import mutate

ROOT = Path(__file__).resolve().parent.parent
MAX_STATES = 20_000


@dataclass(frozen=True)
class MutationRun:
    label: str
    protocol: str
    scenarios: tuple[str, ...]  # each explored with its [explore] settings, and these:
    settings: dict[str, Any] = field(default_factory=lambda: {"max_states": MAX_STATES})
    sample: int | None = None  # a sample of the mutants, the same for the seed
    seed: int = 0


def every_scenario(protocol: str) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in (ROOT / "protocols" / protocol / "scenarios").glob("*.toml")))


RUNS = [
    # The main run of each protocol.
    MutationRun("keysync", "keysync", ("form_group.toml",)),
    MutationRun("keysync_engine", "keysync_engine", ("form_group.toml",)),
    # mpENC: each operation explored at least once (the include in sequence5), and two at once.
    MutationRun("mpenc", "mpenc", ("establish.toml", "concurrent.toml", "sequence5.toml", "exclude.toml",
                                   "refresh.toml")),
    MutationRun("commit", "commit", ("all_yes.toml",)),
    MutationRun("berty", "berty", ("contact_accepted.toml",)),
    # BisonRelay: every scenario (resets, the auto-KX and the chats are explored apart from
    # the manual KX; 2.5 min).
    MutationRun("bisonrelay", "bisonrelay", every_scenario("bisonrelay")),
    # Status: every scenario (each explores some of the FSM's duties: pairing, rotation,
    # approval, the answer to a message without an entry; 4 s in all).
    MutationRun("status", "status", every_scenario("status")),
    # The repaired KeySync, where no defect of the draft's hides a mutant: the form group
    # with one answer per user and with two (a mutant that shows a dialog again is
    # answered, not left open); and every mutant judged on the form group first (a kill
    # there ends it) and then on the settled join (43,582 states unmutated, about 3 s a
    # mutant since the explorer's copy-on-write worlds; breadth first now fits in memory).
    MutationRun("keysync_repaired", "keysync_repaired", ("form_group.toml", "form_group_two_answers.toml")),
    # A join bounded at 60,000 states left 7 mutants unjudged (bounded); at 400,000 each
    # of them is either killed or completes.
    MutationRun("keysync_repaired (join)", "keysync_repaired", ("form_group.toml", "join_settled_group.toml"),
                {"max_states": 400_000}),
]


def _scenarios(names: tuple[str, ...]) -> str:
    shown = ",".join(n.removesuffix(".toml") for n in names)
    return shown if len(shown) < 42 else f"{names[0].removesuffix('.toml')} and {len(names) - 1} more"


def main(labels: list[str]) -> None:
    workers = mutate.cores()
    print(f"fsmc mutate, every operator, {workers} workers")
    print(f"{'run':<38}{'scenarios':<42}{'mutants':>8}{'killed':>8}{'survived':>9}{'equiv':>7}{'invalid':>8}"
          f"{'score':>8}{'seconds':>9}")
    survivors = []
    for r in RUNS:
        if labels and r.label not in labels:
            continue
        paths = [ROOT / "protocols" / r.protocol / "scenarios" / s for s in r.scenarios]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            print(f"{r.label}: no scenario {missing[0].name}", file=sys.stderr)
            continue
        run = mutate.prepare(paths, r.settings, sample=r.sample, seed=r.seed)
        t0 = time.perf_counter()
        outcomes = mutate.mutate(run, workers)
        seconds = time.perf_counter() - t0
        count = mutate.tally(outcomes)
        score = mutate.score(outcomes)
        shown = "n/a" if score is None else f"{100 * score:.1f}%"
        label = r.label if r.sample is None else f"{r.label}, {r.sample} sampled"
        print(f"{label:<38}{_scenarios(r.scenarios):<42}{len(outcomes):>8}{count['killed']:>8}"
              f"{count['survived']:>9}{count['equivalent']:>7}{count['invalid']:>8}{shown:>8}{seconds:>9.1f}",
              flush=True)
        by = {mu.index: mu for mu in run.mutants}
        survivors += [(r.label, by[o.mutant], o) for o in outcomes if o.status == "survived"]
    print("\nsurviving mutants:")
    for label, mu, o in survivors:
        print(f"  {label}: {mu.location}: {mu.operator}{' (bounded)' if o.bounded else ''}: {mu.description}")


if __name__ == "__main__":
    main(sys.argv[1:])
