"""`fsmc mutate`: mutation testing of a protocol's FSM against its invariants.

As mutmut and Stryker do for code, fsmc makes small deliberate bugs in the FSM (mutants),
one at a time, and asks whether the explorer, with the designer's invariants, notices.
A mutant is a copy of the checked model with one change, made by an operator:

| operator | the change |
| --- | --- |
| remove-send, remove-do, remove-go | a `send`, `do` or `go` statement removed |
| send-early | a `send` on a user's answer (Accept) in a state, made where the machine enters it |
| retarget-go | a `go` to another state of the fsm (or End) |
| negate-if | a condition negated (its branches swapped) |
| drop-if | a condition dropped: its `then` always runs |
| drop-else | an `else` removed |
| swap | two neighbouring statements swapped |

Each mutant is compiled in memory (a temporary directory, removed when its explorations
end), and each scenario is explored with the scenario's settings. Its verdict:

- **killed**: an exploration finds a violation of an invariant that the unmutated FSM does
  not violate on that scenario (the shortest counterexample is reported), or the machine
  fails at run time (a `send` whose fields the handler no longer fills);
- **equivalent**: every exploration explored exactly the unmutated FSM's states (the same
  set of state fingerprints and the same transitions): nothing the scenarios can observe
  differs, so no invariant could tell them apart;
- **survived**: otherwise; `bounded` when an exploration hit a bound;
- **invalid**: the mutant does not compile (it is not counted).

The score is killed / (killed + survived). Mutants run in parallel, one process per core
(forked after the unmutated FSM is explored, so every worker shares its fingerprints).
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fsmc import model as m
from fsmc.check import check
from fsmc.compiler import Compilation, load
from fsmc.diagnostics import Diagnostics, Position

__all__ = ["OPERATORS", "STATUSES", "Mutant", "Outcome", "Run", "cores", "mutants", "mutate", "score", "tally"]

OPERATORS = ("remove-send", "remove-do", "remove-go", "send-early", "retarget-go", "negate-if", "drop-if",
             "drop-else", "swap")


@dataclass(frozen=True)
class Mutant:
    index: int
    operator: str
    description: str
    position: Position
    document: m.Document = field(repr=False, compare=False)

    @property
    def location(self) -> str:
        from fsmc.backends.common import source_name

        return f"{source_name(self.position.path)}:{self.position.line}:{self.position.column}"


# --- the operators ------------------------------------------------------------------


def _text(s: m.Statement) -> str:
    if isinstance(s, m.Send):
        return f"send {s.message}" + (f" to {'each ' if s.each else ''}{s.to}" if s.to else "")
    if isinstance(s, m.Do):
        return f"do {s.action}"
    if isinstance(s, m.Go):
        return f"go {s.state}"
    if isinstance(s, m.If):
        return f"if {s.condition}"
    return f"debug > {s.text}"


Body = tuple[m.Statement, ...]
Edit = tuple[str, str, Position, Body]  # operator, description, where, the new body


def _edits(body: Body, targets: Sequence[str]) -> Iterator[Edit]:
    """Every one-place change of a handler's body, nested bodies included."""
    for i, s in enumerate(body):
        before, after = body[:i], body[i + 1:]
        if isinstance(s, m.Send | m.Do | m.Go):
            kind = {m.Send: "send", m.Do: "do", m.Go: "go"}[type(s)]
            yield f"remove-{kind}", f"remove `{_text(s)};`", s.position, before + after
        if isinstance(s, m.Go):
            for target in targets:
                if target != s.state:
                    yield ("retarget-go", f"`go {s.state};` goes to {target}", s.position,
                           (*before, m.Go(target, s.position), *after))
        if isinstance(s, m.If):
            yield ("negate-if", f"negate `if {s.condition}`", s.position,
                   (*before, m.If(s.condition, s.orelse or (), s.then, s.position), *after))
            yield "drop-if", f"drop `if {s.condition}`: always its then", s.position, before + s.then + after
            if s.orelse is not None:
                yield ("drop-else", f"drop the else of `if {s.condition}`", s.position,
                       (*before, dataclasses.replace(s, orelse=None), *after))
            for op, what, where, then in _edits(s.then, targets):
                yield op, what, where, (*before, dataclasses.replace(s, then=then), *after)
            if s.orelse is not None:
                for op, what, where, orelse in _edits(s.orelse, targets):
                    yield op, what, where, (*before, dataclasses.replace(s, orelse=orelse), *after)
        if i + 1 < len(body):
            nxt = body[i + 1]
            if not isinstance(s, m.Debug) and not isinstance(nxt, m.Debug) and _text(s) != _text(nxt):
                yield ("swap", f"swap `{_text(s)}` and `{_text(nxt)}`", s.position,
                       (*before, nxt, s, *body[i + 2:]))


def _insert_before_go(body: Body, state: str, send: m.Send) -> Iterator[Body]:
    """The body with `send` placed before one `go state;` (each such go in turn)."""
    for i, s in enumerate(body):
        if isinstance(s, m.Go) and s.state == state:
            yield (*body[:i], dataclasses.replace(send, position=s.position), *body[i:])
        elif isinstance(s, m.If):
            for then in _insert_before_go(s.then, state, send):
                yield (*body[:i], dataclasses.replace(s, then=then), *body[i + 1:])
            if s.orelse is not None:
                for orelse in _insert_before_go(s.orelse, state, send):
                    yield (*body[:i], dataclasses.replace(s, orelse=orelse), *body[i + 1:])


def _early_sends(fsm: m.Fsm, user_events: Sequence[str]) -> Iterator[tuple[str, str, Position, str, str, Body]]:
    """send-early: a message sent on a user's answer in state S, sent instead where another
    handler enters S (before the user has answered). Yields (operator, description,
    where, state, event, the new body of that state's handler)."""
    for state, handler in fsm.handlers():
        if handler.event not in user_events:
            continue
        for send in (s for s in handler.statements() if isinstance(s, m.Send)):
            for other, entering in fsm.handlers():
                for body in _insert_before_go(entering.body, state.name, send):
                    yield ("send-early", f"send {send.message} when {other.name} on {entering.event} enters "
                                         f"{state.name}, before the user's {handler.event} there",
                           send.position, other.name, entering.event, body)


def _replace_handler(document: m.Document, protocol: m.Protocol, fsm: m.Fsm, state: str, event: str,
                     body: Body) -> m.Document:
    def handlers(s: m.State) -> tuple[m.Handler, ...]:
        return tuple(dataclasses.replace(h, body=body) if s.name == state and h.event == event else h
                     for h in s.handlers)

    new_fsm = dataclasses.replace(fsm, states=tuple(dataclasses.replace(s, handlers=handlers(s)) for s in fsm.states))
    new_protocol = dataclasses.replace(protocol, fsms=tuple(new_fsm if f is fsm else f for f in protocol.fsms))
    return dataclasses.replace(document, protocols=tuple(new_protocol if p is protocol else p
                                                         for p in document.protocols))


def mutants(document: m.Document, fsms: Sequence[str], user_events: Sequence[str] = (),
            operators: Sequence[str] = OPERATORS) -> list[Mutant]:
    """The mutants of the named fsms by the chosen operators, in source order, numbered
    from 1 among the mutants of all operators."""
    out: list[tuple[str, str, Position, m.Document]] = []
    for protocol in document.protocols:
        for fsm in protocol.fsms:
            if fsm.name not in fsms:
                continue
            targets = [s.name for s in fsm.states] + [m.END_STATE]
            for state, handler in fsm.handlers():
                for op, what, where, body in _edits(handler.body, targets):
                    out.append((op, f"{fsm.name} {state.name} on {handler.event}: {what}", where,
                                _replace_handler(document, protocol, fsm, state.name, handler.event, body)))
            for op, what, where, state_name, event, body in _early_sends(fsm, user_events):
                out.append((op, f"{fsm.name}: {what}", where,
                            _replace_handler(document, protocol, fsm, state_name, event, body)))
    # Numbered before the operators are chosen: a number names one mutant in every run.
    out.sort(key=lambda x: (x[2].line, x[2].column, OPERATORS.index(x[0]), x[1]))
    return [Mutant(i, op, what, where, doc) for i, (op, what, where, doc) in enumerate(out, 1) if op in operators]


# --- compiling and exploring a mutant ------------------------------------------------


@dataclass
class Outcome:
    mutant: int
    status: str  # killed, survived, equivalent, invalid
    invariant: str | None = None
    scenario: str | None = None
    counterexample: int | None = None  # steps of the shortest counterexample
    bounded: bool = False
    states: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Baseline:
    """What the unmutated FSM does on a scenario: the verdicts a mutant must add to."""

    violations: frozenset[str]
    states: int
    transitions: int
    digest: str
    complete: bool


@dataclass
class Run:
    compilation: Compilation
    module: str  # the generated module the scenarios' parties run
    scenarios: list[Any]  # runtime.harness.simulation.Scenario
    settings: dict[str, Any]
    mutants: list[Mutant]
    baselines: dict[str, Baseline] = field(default_factory=dict)


def _compile(compilation: Compilation, document: m.Document, module: str, where: Path) -> Any:
    """The mutant's module, compiled into `where` and imported (a package of its own)."""
    from fsmc.backends import asn1, python
    from fsmc.build import import_entry

    d = Diagnostics()
    check(document, compilation.types, d, compilation.embedded_protocols)
    if d.errors:
        raise ValueError(d.errors[0].message)
    mutated = dataclasses.replace(compilation, document=document, diagnostics=d)
    for protocol in document.protocols:
        for name, text in {**python.render(mutated, protocol), **asn1.render(mutated, protocol)}.items():
            (where / name).write_text(text, encoding="utf-8")
    return import_entry(where, f"mutant{os.getpid()}_{where.name[-8:]}", module)


def _explore(run: Run, scenario: Any, module: Any, stop_beyond: frozenset[str] | None = None) -> Any:
    """Explore `scenario` with the machines of `module`; with `stop_beyond` (the
    baseline's violations), stop at the first violation not among them: the mutant is
    killed, and the rest of its space would not change the verdict."""
    from runtime.harness.explore import Explorer

    explorer = Explorer.for_scenario(dataclasses.replace(scenario, machines=module), **run.settings)
    explorer.digest_states = True
    explorer.stop_beyond = stop_beyond
    return explorer.run()


def baseline(run: Run) -> None:
    for scenario in run.scenarios:
        report = _explore(run, scenario, scenario.machines)
        run.baselines[str(scenario.path)] = Baseline(frozenset(v.invariant for v in report.violations),
                                                     report.states, report.transitions, report.digest,
                                                     report.complete)


def judge(run: Run, index: int) -> Outcome:
    """Compile mutant `index` and explore every scenario with it."""
    from fsmc.build import forget_entry

    mutant = next(mu for mu in run.mutants if mu.index == index)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fsmc-mutant-") as where:
        try:
            module = _compile(run.compilation, mutant.document, run.module, Path(where))
        except Exception as e:  # noqa: BLE001 - a mutant that does not compile is not counted
            return Outcome(index, "invalid", error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)
        try:
            same, bounded, states = True, False, 0
            for scenario in run.scenarios:
                base = run.baselines[str(scenario.path)]
                try:
                    report = _explore(run, scenario, module, base.violations)
                except Exception as e:  # noqa: BLE001 - the mutant broke the machine itself
                    # A machine that fails (a send whose fields its handler no longer set) is
                    # caught by the runtime, as a test runner counts a crash as a kill.
                    return Outcome(index, "killed", f"runtime error: {type(e).__name__}", scenario.path.name,
                                   None, False, states, time.perf_counter() - t0, f"{e}")
                states += report.states
                bounded |= bool(set(report.bounded_by) - {"violation"})
                new = [v for v in report.violations if v.invariant not in base.violations]
                if new:
                    shortest = min(new, key=lambda v: len(v.path))
                    return Outcome(index, "killed", shortest.invariant, scenario.path.name, len(shortest.path),
                                   bounded, states, time.perf_counter() - t0)
                same &= (report.digest, report.states, report.transitions, report.complete) == \
                    (base.digest, base.states, base.transitions, base.complete)
            status = "equivalent" if same else "survived"
            return Outcome(index, status, bounded=bounded, states=states, seconds=time.perf_counter() - t0)
        finally:
            forget_entry(module)


# A forked worker's run, inherited from the parent (fork copies it, baselines included).
_RUN: Run | None = None


def _judge_in_worker(index: int) -> Outcome:
    assert _RUN is not None
    return judge(_RUN, index)


def mutate(run: Run, workers: int = 1, progress: Callable[[Outcome, int, int], None] | None = None) -> list[Outcome]:
    """Judge every mutant of the run; `workers` processes (forked) when more than one."""
    global _RUN
    baseline(run)
    indexes = [mu.index for mu in run.mutants]
    outcomes: list[Outcome] = []
    if workers <= 1 or len(indexes) <= 1:
        for i in indexes:
            outcomes.append(judge(run, i))
            if progress is not None:
                progress(outcomes[-1], len(outcomes), len(indexes))
        return outcomes
    _RUN = run
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            futures = [pool.submit(_judge_in_worker, i) for i in indexes]
            for future in as_completed(futures):
                outcomes.append(future.result())
                if progress is not None:
                    progress(outcomes[-1], len(outcomes), len(indexes))
    finally:
        _RUN = None
    return sorted(outcomes, key=lambda o: o.mutant)


STATUSES = ("killed", "survived", "equivalent", "invalid")


def tally(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many mutants of each status."""
    return {s: sum(o.status == s for o in outcomes) for s in STATUSES}


def score(outcomes: Sequence[Outcome]) -> float | None:
    """killed / (killed + survived); None when no mutant counts."""
    count = tally(outcomes)
    counted = count["killed"] + count["survived"]
    return count["killed"] / counted if counted else None


def cores() -> int:
    """The workers by default: the cores this process may run on."""
    return len(os.sched_getaffinity(0))


def prepare(scenario_paths: Sequence[Path], settings: dict[str, Any], operators: Sequence[str] = OPERATORS,
            only: Sequence[int] = (), sample: int | None = None, seed: int = 0) -> Run:
    """The run for scenarios of one protocol: its DSL file loaded and its mutants listed."""
    from fsmc.build import load_scenario
    from runtime.errors import UsageError

    scenarios = [load_scenario(Path(p)) for p in scenario_paths]
    manifests = {s.protocol.name for s in scenarios}
    if len(manifests) != 1:
        raise UsageError(f"the scenarios are of {len(manifests)} protocols ({', '.join(sorted(manifests))}): "
                         "mutants are of one protocol's FSM")
    manifest = scenarios[0].protocol
    compilation = load(manifest.dsl)
    if not compilation.ok:
        raise UsageError(compilation.diagnostics.render())
    fsms = sorted({s.fsm for s in scenarios} | {p["fsm"] for s in scenarios for p in s.parties if "fsm" in p})
    listed = mutants(compilation.document, fsms, manifest.user_events, operators)
    if only:
        chosen = set(only)
        listed = [mu for mu in listed if mu.index in chosen]
    if sample is not None and sample < len(listed):  # the same sample for the same seed
        listed = sorted(random.Random(seed).sample(listed, sample), key=lambda mu: mu.index)
    return Run(compilation, manifest.module or manifest.name, scenarios, settings, listed)


def progress_bar(stream: Any = sys.stderr) -> Callable[[Outcome, int, int], None]:
    counts: dict[str, int] = {}

    def show(outcome: Outcome, done: int, total: int) -> None:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        width = 30
        filled = width * done // total
        tally = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        stream.write(f"\rmutants {done}/{total} [{'#' * filled}{'.' * (width - filled)}] {tally}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show
