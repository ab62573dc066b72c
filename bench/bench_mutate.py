"""Mutation scores: `fsmc mutate` over each protocol's main scenarios, every operator.

For each protocol: how many mutants, killed, survived, equivalent and invalid, the score
(killed / (killed + survived)), the time and the workers; the surviving mutants are
listed with their place in the DSL file (docs/exploration.md explains them). Each
exploration is bounded (MAX_STATES): a mutant whose states grow past it and breaks nothing
on the way counts as survived, and is marked bounded.

    python bench/bench_mutate.py [protocol ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fsmc import mutate

ROOT = Path(__file__).resolve().parent.parent
MAX_STATES = 20_000

# The scenarios each protocol's mutants are judged on: the main run of each, explored
# with its [explore] settings.
SCENARIOS = {
    "keysync": ["form_group.toml"],
    "keysync_engine": ["form_group.toml"],
    "mpenc": ["establish.toml"],
    "commit": ["all_yes.toml"],
    "berty": ["contact_accepted.toml"],
    "bisonrelay": ["accepted_invite.toml"],
    "status": ["first_message.toml"],
}


def main(names: list[str]) -> None:
    workers = mutate.cores()
    print(f"fsmc mutate, every operator, explorations bounded at {MAX_STATES} states, {workers} workers")
    print(f"{'protocol':<16}{'scenarios':<28}{'mutants':>8}{'killed':>8}{'survived':>9}{'equiv':>7}{'invalid':>8}"
          f"{'score':>8}{'seconds':>9}")
    survivors = []
    for name in names or list(SCENARIOS):
        paths = [ROOT / "protocols" / name / "scenarios" / s for s in SCENARIOS[name]]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            print(f"{name}: no scenario {missing[0].name}", file=sys.stderr)
            continue
        run = mutate.prepare(paths, {"max_states": MAX_STATES})
        t0 = time.perf_counter()
        outcomes = mutate.mutate(run, workers)
        seconds = time.perf_counter() - t0
        count = mutate.tally(outcomes)
        score = mutate.score(outcomes)
        shown = "n/a" if score is None else f"{100 * score:.1f}%"
        print(f"{name:<16}{','.join(SCENARIOS[name]):<28}{len(outcomes):>8}{count['killed']:>8}"
              f"{count['survived']:>9}{count['equivalent']:>7}{count['invalid']:>8}{shown:>8}{seconds:>9.1f}",
              flush=True)
        by = {mu.index: mu for mu in run.mutants}
        survivors += [(name, by[o.mutant], o) for o in outcomes if o.status == "survived"]
    print("\nsurviving mutants:")
    for name, mu, o in survivors:
        print(f"  {name}: {mu.location}: {mu.operator}{' (bounded)' if o.bounded else ''}: {mu.description}")


if __name__ == "__main__":
    main(sys.argv[1:])
