"""The `fsmc` command: check, inspect, compile, diagram.

Exit status: 0 on success, 1 when the input has errors (or warnings with --werror),
2 on bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsmc import model as m
from fsmc.compiler import Compilation, Options, load
from fsmc.inspect import document_json

if TYPE_CHECKING:
    from runtime.harness.simulation import Result, Scenario

__all__ = ["main"]


def _options(args: argparse.Namespace) -> Options:
    types = getattr(args, "types", None)
    return Options(types=Path(types) if types else None,
                   search=tuple(Path(d) for d in getattr(args, "include", None) or ()))


def _load_all(files: Sequence[str], werror: bool,
              options: Options | None = None) -> tuple[list[Compilation], bool]:
    """Load and check every file; print diagnostics; True when all may go to the backends."""
    compilations = []
    ok = True
    for name in files:
        c = load(Path(name), options=options or Options())
        if len(c.diagnostics):
            print(c.diagnostics.render(werror=werror), file=sys.stderr)
        if c.diagnostics.errors or (werror and c.diagnostics.warnings):
            ok = False
        compilations.append(c)
    return compilations, ok


def write_if_changed(path: Path, text: str) -> bool:
    """Write only when the content differs, so regeneration leaves file times alone."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


Backend = Callable[[Compilation, m.Protocol], dict[str, str]]


def _run_backend(args: argparse.Namespace, backend: Backend, what: str) -> int:
    compilations, ok = _load_all(args.files, args.werror, _options(args))
    if not ok:
        return 1
    out = Path(args.output)
    for c in compilations:
        for protocol in c.document.protocols:
            for name, text in sorted(backend(c, protocol).items()):
                target = out / name
                changed = write_if_changed(target, text)
                if not args.quiet:
                    print(f"{what}: {target}{'' if changed else ' (unchanged)'}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    compilations, ok = _load_all(args.files, args.werror, _options(args))
    for c in compilations:
        n_err, n_warn = len(c.diagnostics.errors), len(c.diagnostics.warnings)
        if not args.quiet:
            print(f"{c.path}: {n_err} error(s), {n_warn} warning(s)", file=sys.stderr)
    return 0 if ok else 1


def _cmd_inspect(args: argparse.Namespace) -> int:
    (c,), ok = _load_all([args.file], werror=False, options=_options(args))
    if not ok:
        return 1
    data = document_json(c.document)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for p in data["protocols"]:
        print(f"protocol {p['name']} {p['id']}")
        for f in p["fsms"]:
            stateless = " (stateless)" if f["stateless"] else ""
            print(f"  fsm {f['name']} {f['id']}, threshold={f['threshold']}, version {f['versions']}{stateless}")
            for s in f["states"]:
                timeout = "off" if s["timeout"] is None else f"{s['timeout']}s"
                print(f"    state {s['name']} (timeout {timeout})")
                for h in s["handlers"]:
                    go = f" -> {', '.join(h['transitions'])}" if h["transitions"] else ""
                    sends = f" / {', '.join(h['sends'])}" if h["sends"] else ""
                    print(f"      on {h['event']} [{h['kind']}]{sends}{go}")
            for msg in f["messages"]:
                print(f"    message {msg['name']} {msg['id']} {msg['type']} ratelimit={msg['ratelimit']} "
                      f"security={msg['security']}")
            for e in f["externals"]:
                print(f"    external {e['name']} {e['id']}")
            print(f"    signaled: {', '.join(f['signaled'])}")
    return 0


def _cmd_format(args: argparse.Namespace) -> int:
    from fsmc.format import format_document

    (c,), ok = _load_all([args.file], werror=False, options=_options(args))
    if any(d.code == "syntax" for d in c.diagnostics.items):
        return 1
    sys.stdout.write(format_document(c.document))
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from fsmc.backends import asn1, python

    def both(c: Compilation, p: m.Protocol) -> dict[str, str]:
        # The output directory is a package: generated code is imported as generated.<protocol>.
        return {"__init__.py": python.PACKAGE_INIT, **python.render(c, p), **asn1.render(c, p)}

    return _run_backend(args, both, "compiled")


def _cmd_diagram(args: argparse.Namespace) -> int:
    from fsmc.backends import dot

    return _run_backend(args, dot.render_with_svg, "diagram")


def _scenario(path: str) -> Scenario | int:
    """The scenario, its protocol compiled from the DSL file as it is on disk; or the exit
    status after saying, in one line, what is missing and where (a DSL file that does not
    compile: its diagnostics)."""
    from fsmc.build import BuildError, load_scenario
    from runtime.errors import LocalError

    try:
        return load_scenario(Path(path))
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    except LocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _report(result: Result, title: str, args: argparse.Namespace) -> int:
    """A run's outcome as `simulate` and `run` print it: the chart (and --msc's SVG), each
    party's state and keys, the failed expectations; or --json. Exit 1 when one failed."""
    from runtime.harness import msc

    if args.msc:
        write_if_changed(Path(args.msc), msc.svg(result.trace, result.order, title))
    if args.json:
        print(json.dumps(result.json(), indent=2))
    else:
        print(title)
        print(msc.text(result.trace, result.order))
        for name, party in result.parties.items():
            print(f"{name}: {party['state']}, keys {party['keys']}")
        for failure in result.failures:
            print(f"FAILED: {failure}")
        print("ok" if result.ok else "expectations failed")
    return 0 if result.ok else 1


def _cmd_simulate(args: argparse.Namespace) -> int:
    from runtime.errors import LocalError
    from runtime.harness.simulation import Simulation

    scenario = _scenario(args.scenario)
    if isinstance(scenario, int):
        return scenario
    try:
        result = Simulation(scenario).run()
    except LocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    title = f"{scenario.path.name}: {scenario.description}"
    return _report(result, title, args)


def _cmd_run(args: argparse.Namespace) -> int:
    from fsmc.run import run_scenario
    from runtime.errors import LocalError

    scenario = _scenario(args.scenario)
    if isinstance(scenario, int):
        return scenario
    try:
        result, _ = run_scenario(scenario.path, args.transport, redis_url=args.redis_url,
                                 store=Path(args.store) if args.store else None)
    except (LocalError, TimeoutError, ChildProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    title = f"{scenario.path.name}: {scenario.description} (over {args.transport})"
    return _report(result, title, args)


def _cmd_mutate(args: argparse.Namespace) -> int:
    from fsmc import mutate
    from fsmc.build import BuildError
    from runtime.errors import LocalError

    operators = tuple(o.strip() for o in args.operators.split(",")) if args.operators else mutate.OPERATORS
    unknown = set(operators) - set(mutate.OPERATORS)
    if unknown:
        print(f"error: unknown operators {', '.join(sorted(unknown))} (known: {', '.join(mutate.OPERATORS)})",
              file=sys.stderr)
        return 2
    only = [int(x) for x in args.mutants.split(",")] if args.mutants else []
    settings = {key: getattr(args, key) for key in ("faults", "max_faults", "max_depth", "max_states",
                                                     "user_events", "timeouts")}
    settings = {k: v for k, v in settings.items() if v is not None}
    try:
        run = mutate.prepare([Path(p) for p in args.scenarios], settings, operators, only, args.sample, args.seed)
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    except LocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.list:
        for mu in run.mutants:
            print(f"{mu.index:4} {mu.location}: {mu.operator}: {mu.description}")
        return 0
    workers = args.workers or mutate.cores()
    t0 = time.perf_counter()
    show = sys.stderr.isatty() and not args.json
    outcomes = mutate.mutate(run, workers, mutate.progress_bar() if show else None)
    seconds = time.perf_counter() - t0
    score = mutate.score(outcomes)
    by = {mu.index: mu for mu in run.mutants}
    counts = mutate.tally(outcomes)
    if args.json:
        print(json.dumps({
            "dsl": str(run.compilation.path), "scenarios": [str(s.path) for s in run.scenarios],
            "settings": settings, "workers": workers, "seconds": round(seconds, 2), "score": score, **counts,
            "baselines": {k: sorted(b.violations) for k, b in run.baselines.items()},
            "mutants": [{"index": o.mutant, "operator": by[o.mutant].operator, "description": by[o.mutant].description,
                         "location": by[o.mutant].location, **dataclasses.asdict(o)} for o in outcomes],
        }, indent=2))
    else:
        for o in outcomes:
            mu = by[o.mutant]
            if o.status == "survived":
                print(f"{mu.location}: survived{' (bounded)' if o.bounded else ''}: {mu.operator}: {mu.description}")
        for o in outcomes:
            if o.status == "killed" and args.verbose:
                mu = by[o.mutant]
                print(f"{mu.location}: killed by {o.invariant} ({o.scenario}, {o.counterexample} steps): "
                      f"{mu.description}")
        shown = "n/a" if score is None else f"{100 * score:.1f}%"
        print(f"{len(outcomes)} mutants: {counts['killed']} killed, {counts['survived']} survived, "
              f"{counts['equivalent']} equivalent, {counts['invalid']} invalid; score {shown} "
              f"({seconds:.1f} s, {workers} worker{'s' if workers != 1 else ''})")
    if args.min_score is not None:
        wanted = float(args.min_score.rstrip("%")) / (100 if args.min_score.endswith("%") else 1)
        if score is None or score < wanted:
            return 1
    return 0


def _explore(args: argparse.Namespace, explorer: Any, path: Path, overrides: dict[str, Any],
             progress: Any) -> Any:
    """The search `fsmc explore` asked for: on a cluster, on several processes (breadth
    first only), or in this one."""
    from runtime.errors import UsageError
    from runtime.harness import parallel

    if args.cluster:
        from fsmc import cluster

        if explorer.search != "bfs":
            raise UsageError("--cluster searches breadth-first: leave --search dfs out")
        return cluster.explore(args.cluster, path, {**overrides, "exact": None}, reduce=not args.no_reduction,
                               max_states=explorer.max_states, count=args.workers, progress=progress)
    import os

    cores = len(os.sched_getaffinity(0))
    workers = args.workers if args.workers is not None else (cores if explorer.search == "bfs" and not explorer.exact
                                                              else 1)
    if workers < 1:
        raise UsageError("--workers: at least 1")
    if workers > 1 and explorer.exact:
        raise UsageError("--exact keeps snapshots, which only one process can compare: use one worker")
    if workers == 1:
        return explorer.run(progress)
    return parallel.explore(explorer, workers, progress)


def _cmd_explore(args: argparse.Namespace) -> int:
    from runtime.errors import LocalError
    from runtime.harness import msc
    from runtime.harness.explore import Explorer, Report, unhandled_report
    from runtime.harness.simulation import trace_json

    scenario = _scenario(args.scenario)
    if isinstance(scenario, int):
        return scenario
    # The scenario's [explore] table gives defaults; the command line overrides them.
    overrides = {key: getattr(args, key) for key in ("faults", "max_faults", "max_depth", "max_states",
                                                      "user_events", "timeouts", "signals", "invariants", "search")}
    overrides["exact"] = args.exact or None
    try:
        explorer = Explorer.for_scenario(scenario, reduce=not args.no_reduction, **overrides)
    except (ValueError, LocalError) as e:
        print(f"error: {scenario.path}: {e}", file=sys.stderr)
        return 2
    faults = explorer.faults

    def progress(r: Report) -> None:
        print(f"\r  {r.states} states, {r.transitions} transitions, depth {r.max_depth}, "
              f"{r.states_per_second:.0f} states/s ", end="", file=sys.stderr, flush=True)

    show = sys.stderr.isatty() and not args.json
    try:
        report = _explore(args, explorer, scenario.path, overrides, progress if show else None)
    except LocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if show:
        print("\r" + " " * 79 + "\r", end="", file=sys.stderr)
    counterexamples = []
    for v in report.violations:
        world = explorer.replay(v.path)
        counterexamples.append((v, world.sim.trace, list(world.parties)))
        if args.msc:
            out = Path(args.msc) / f"{scenario.path.stem}-{v.invariant}.svg"
            write_if_changed(out, msc.svg(world.sim.trace, list(world.parties), f"{v.invariant}: {v.message}"))
    if args.json:
        print(json.dumps({
            "states": report.states, "transitions": report.transitions, "complete": report.complete,
            "max_depth": report.max_depth, "seconds": round(report.seconds, 3),
            "bounded_by": report.bounded_by, "faults": sorted(faults), "max_faults": explorer.max_faults,
            "search": explorer.search, "subsumed": report.subsumed, "distinct": report.distinct,
            "workers": report.workers, "exact": explorer.exact, "seen_bytes": report.seen_bytes,
            "moves": {"replayed": report.moves[0], "taken": report.moves[1]},
            "pure": {"reused": report.pure[0], "computed": report.pure[1]},
            "violations": [{"invariant": v.invariant, "message": v.message, "worlds": report.violating[v.invariant],
                            "choices": [str(c) for c in v.path],
                            "trace": trace_json(trace)} for v, trace, _ in counterexamples],
            "unhandled": [{"state": s, "event": e, "count": n} for (s, e), n in sorted(report.unhandled.items())],
        }, indent=2))
        return 1 if report.violations else 0
    model = ", ".join(sorted(faults)) or "none"
    if faults and explorer.max_faults is not None:
        model += f" (at most {explorer.max_faults} per run)"
    print(f"{scenario.path.name}: {scenario.description}")
    print(f"faults: {model}; user answers per party: {explorer.user_events}; timeouts per party: "
          f"{explorer.timeouts}; signals: {', '.join(explorer.signals) or 'none'}")
    search = "breadth-first" if explorer.search == "bfs" else "depth-first"
    where = f"{report.workers} workers" if report.workers > 1 else "1 worker"
    seen = "snapshots" if explorer.exact else "fingerprints"
    print(f"{report.states} states ({search}; {report.subsumed} more subsumed), {report.transitions} transitions, "
          f"max depth {report.max_depth}, {report.quiet_states} quiet, {report.seconds:.2f} s, "
          f"{report.states_per_second:.0f} states/s on {where}; seen-set of {seen}, "
          f"{report.bytes_per_state:.0f} bytes/state")
    replayed, taken = report.moves
    reused, computed = report.pure
    print(f"steps replayed from remembered moves: {replayed} of {replayed + taken}; "
          f"pure cryptography reused: {reused} of {reused + computed} results")
    if report.complete:
        print("complete: every reachable state was explored")
    else:
        print(f"INCOMPLETE: bounded by {' and '.join(report.bounded_by)}; this is not a proof")
    if report.unhandled:
        print("events that arrived where no handler exists (times seen):")
        print("\n".join(unhandled_report(report)))
    for v, trace, parties in counterexamples:
        print(f"\nVIOLATED {v.invariant}: {v.message}")
        shortest = "shortest counterexample" if explorer.search == "bfs" else "counterexample (depth-first)"
        worlds = report.violating[v.invariant]
        print(f"{worlds} world{'s' if worlds != 1 else ''} break it; {shortest} ({len(v.path)} steps): "
              f"{'; '.join(str(c) for c in v.path)}")
        print(msc.text(trace, parties))
    if not report.violations:
        print("no invariant violated")
    return 1 if report.violations else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fsmc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        return p

    def sources(p: argparse.ArgumentParser) -> None:
        p.add_argument("--types", metavar="FILE.asn1",
                       help="the pEp engine's type module PEP, for files that name none (default: "
                            "../asn.1/pEp.asn1 from the file's folder, as in the engine's tree)")
        p.add_argument("-I", "--include", action="append", metavar="DIR",
                       help="a folder of .fsm files to find embedded protocols in (after the file's own)")

    p = command("check", "check DSL files and report every error", _cmd_check)
    p.add_argument("files", nargs="+")
    p.add_argument("--werror", action="store_true", help="treat warnings as errors")
    p.add_argument("-q", "--quiet", action="store_true")
    sources(p)

    p = command("inspect", "print the checked model", _cmd_inspect)
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sources(p)

    p = command("simulate", "run a scenario and print its sequence chart", _cmd_simulate)
    p.add_argument("scenario")
    p.add_argument("--json", action="store_true", help="parties, trace and verdict as JSON")
    p.add_argument("--msc", metavar="FILE.svg", help="also write the sequence chart as SVG")

    p = command("run", "run a scenario's parties as separate processes over a real transport", _cmd_run)
    p.add_argument("scenario")
    p.add_argument("--transport", choices=("memory", "redis", "tcp"), default="redis",
                   help="redis: one process per party over Redis Streams (a server of its own unless "
                        "--redis-url); tcp: one process per party over loopback TCP to the first by name; "
                        "memory: the parties as tasks of one process on the in-memory network")
    p.add_argument("--redis-url", metavar="URL", help="a running server, e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--store", metavar="DIR", help="the parties' stores (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="parties, trace and verdict as JSON (as simulate's)")
    p.add_argument("--msc", metavar="FILE.svg", help="also write the sequence chart as SVG")

    p = command("explore", "explore every interleaving of a scenario and check its invariants", _cmd_explore)
    p.add_argument("scenario")
    # Lists and bounds are read by Explorer.for_scenario, as the [explore] table's are.
    p.add_argument("--faults", help="comma-separated: loss, dup, reorder, replay")
    p.add_argument("--max-faults", metavar="N",
                   help="faults on one run (default 1 when --faults is given; 'none' for no bound)")
    p.add_argument("--max-depth", type=int, metavar="N", help="stop paths after N steps")
    p.add_argument("--max-states", type=int, metavar="N", help="stop after N distinct states")
    p.add_argument("--user-events", type=int, metavar="N", help="user answers per party (default 1)")
    p.add_argument("--timeouts", type=int, metavar="N", help="state timeouts that may fire per party (default 0)")
    p.add_argument("--signals", metavar="E,..", help="signaled events a party may raise, once each")
    p.add_argument("--invariants", metavar="MODULE",
                   help="a module whose INVARIANTS replace the protocol's (default: the protocol's own)")
    p.add_argument("--no-reduction", action="store_true", help="explore every interleaving, even commuting ones")
    p.add_argument("--search", choices=("bfs", "dfs"),
                   help="breadth-first (default: shortest counterexamples) or depth-first (for spaces too "
                        "large to hold a level in memory)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes searching breadth first together (default: the cores available; "
                        "1 with --search dfs)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="search on the Dask cluster whose scheduler is at ADDRESS (tcp://host:port), "
                        "one shard per worker (or --workers shards)")
    p.add_argument("--exact", action="store_true",
                   help="keep whole snapshots in the seen-set instead of 128-bit fingerprints (one worker)")
    p.add_argument("--json", action="store_true", help="counts and violations as JSON")
    p.add_argument("--msc", metavar="DIR", help="write each counterexample as an SVG sequence chart")

    p = command("mutate", "mutation testing: small bugs in the FSM, and whether its invariants catch them",
                _cmd_mutate)
    p.add_argument("scenarios", nargs="+", help="scenarios of one protocol, explored for each mutant")
    p.add_argument("--operators", metavar="OP,..", help="the mutation operators (default: all; --list shows them)")
    p.add_argument("--mutants", metavar="N,..", help="only these mutants (by the numbers --list prints)")
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    p.add_argument("--sample", type=int, metavar="N", help="a random sample of N mutants (the same for one --seed)")
    p.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    p.add_argument("--faults", help="as explore's: comma-separated loss, dup, reorder, replay")
    p.add_argument("--max-faults", metavar="N")
    p.add_argument("--max-depth", type=int, metavar="N")
    p.add_argument("--max-states", type=int, metavar="N", help="bound each exploration (a mutant may loop)")
    p.add_argument("--user-events", type=int, metavar="N")
    p.add_argument("--timeouts", type=int, metavar="N")
    p.add_argument("--workers", type=int, metavar="N", help="processes (default: the cores available)")
    p.add_argument("--min-score", metavar="S", help="exit 1 below this score (0.8 or 80%%)")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the killed mutants")
    p.add_argument("--json", action="store_true", help="every mutant's verdict as JSON")

    p = command("format", "print a file in canonical layout (comments are not kept)", _cmd_format)
    p.add_argument("file")
    sources(p)

    for name, help, func, default in (
        ("compile", "generate Python machines and the ASN.1 module", _cmd_compile, "generated"),
        ("diagram", "render state diagrams (DOT and SVG)", _cmd_diagram, "diagrams"),
    ):
        p = command(name, help, func)
        p.add_argument("files", nargs="+")
        p.add_argument("-o", "--output", default=default, help=f"output directory (default {default}/)")
        p.add_argument("--werror", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        sources(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
