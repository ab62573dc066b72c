"""The explorer's breadth-first search on several workers: processes on this machine, or
a cluster's workers (fsmc.cluster runs the same shards as Dask actors).

Level by level, as distributed TLC does. Every worker (a `Shard`) holds its part of the
current level (worlds with their paths) and its part of the seen-set: the fingerprints
(runtime.harness.fingerprint) whose first eight bytes, modulo the number of workers, name
it. A level has three rounds:
  1. `expand`: each shard takes the successors of its worlds, keeps them, and sends each
     successor's fingerprint and rank (a *claim*) to the shard that owns it;
  2. `judge`: each shard decides the claims it owns against its seen-set, all claims of
     the level at once: a claim is granted unless an explored world or another claim
     subsumes it (`Explorer.rank`), and of equal claims one wins, from a shard the
     fingerprint picks; a claim is never decided by the order in which claims arrived;
  3. `accept`: each shard makes the granted successors its next level, checks the
     invariants on them, and forgets the rest.
Worlds stay where they were found: what crosses between workers is 17 bytes a claim,
never a world. When the next level is unevenly spread, the coordinator moves worlds as
paths (`give`, `take`), which the receiving shard replays; a world's successors are then
found where it went.

Every state is explored once per rank that no other subsumes, as in the one-process
search, so the two explore the same set of states (the digest of their fingerprints is
equal) and find the same invariants violated, at the same depth. Within a level the order
differs, so where two worlds of one state but different ranks (faults, disturbed) meet in
one level, the counts of explored worlds may differ from the one-process search by those
duplicates; without faults and disturbances they are equal.

The coordinator (`search`) talks to shards through a `Pool`: `LocalPool` forks
processes and talks over pipes; fsmc.cluster's pool calls Dask actors.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from runtime.errors import UsageError
from runtime.harness.explore import Choice, Explorer, Report, Violation, World, _code, _seen_bytes, _subsumes
from runtime.harness.fingerprint import combine

__all__ = ["LocalPool", "Pool", "Shard", "owner", "search"]

Claim = tuple[bytes, int]  # (fingerprint, rank code)


def owner(fingerprint: bytes, count: int) -> int:
    """The shard that owns a fingerprint's place in the seen-set."""
    return int.from_bytes(fingerprint[:8], "big") % count


class Shard:
    """One worker's part of the search: its worlds of the current level, the successors
    it found and claimed, and its part of the seen-set."""

    def __init__(self, make_explorer: Callable[[], Explorer], index: int, count: int) -> None:
        self.explorer = make_explorer()
        self.explorer.exact = False  # shards compare fingerprints: they are what crosses
        self.index, self.count = index, count
        self.seen: dict[bytes, int | tuple[int, ...]] = {}
        self.level: list[tuple[World, tuple[Choice, ...]]] = []
        self.found: dict[Claim, tuple[World, tuple[Choice, ...]]] = {}
        self.report = Report()
        self.violated: set[str] = set()
        self.root: World | None = None

    # --- the rounds of a level

    def start(self) -> list[Claim]:
        """The initial world, claimed by shard 0 only (every shard builds it alike)."""
        root = self.root = self.explorer.initial()
        # As Explorer.run does: what exists now is out of the collector's way, and a
        # level of worlds is collected rarely.
        gc.freeze()
        gc.set_threshold(20_000, 10, 10)
        if self.index != 0:
            return []
        claim = self.explorer.fingerprint(root), _code(self.explorer.rank(root))
        self.found = {claim: (root, ())}
        return [claim]

    def expand(self) -> dict[int, list[Claim]]:
        """Successors of this shard's level, kept; their claims, by owning shard."""
        explorer, report = self.explorer, self.report
        found: dict[bytes, dict[int, tuple[World, tuple[Choice, ...]]]] = {}
        level, self.level = self.level, []
        level.reverse()
        while level:
            world, path = level.pop()  # dropped once expanded, as the one-process search does
            if explorer.max_depth is not None and len(path) >= explorer.max_depth:
                if any(True for _ in explorer.choices(world)):
                    report.complete = False
                    if "depth" not in report.bounded_by:
                        report.bounded_by.append("depth")
                continue
            successors = explorer.successors(world)
            if not successors and explorer.terminal and not world.held:
                report.terminal_states += 1
                explorer._check(world, path, report, self.violated, explorer.terminal)
            for choice, nxt in successors:
                report.transitions += 1
                for _party, state, event in nxt.ignored:
                    report.unhandled[(state, event)] += 1
                fingerprint, code = explorer.fingerprint(nxt), _code(explorer.rank(nxt))
                ranks = found.setdefault(fingerprint, {})
                if code not in ranks:  # the first of this shard's equal successors
                    ranks[code] = nxt, path + (choice,)
            del world
        self.found = {}
        claims: dict[int, list[Claim]] = {}
        for fingerprint, ranks in found.items():
            for code, kept in ranks.items():
                if any(_subsumes(other, code) for other in ranks if other != code):
                    report.subsumed += 1
                    continue
                self.found[(fingerprint, code)] = kept
                claims.setdefault(owner(fingerprint, self.count), []).append((fingerprint, code))
        return claims

    def judge(self, claims: dict[int, list[Claim]]) -> dict[int, list[Claim]]:
        """This shard's decision on the claims it owns (by claiming shard): granted, or
        subsumed by an explored world or another claim of this level."""
        by_state: dict[bytes, list[tuple[int, int]]] = {}
        for shard in sorted(claims):
            for fingerprint, code in claims[shard]:
                by_state.setdefault(fingerprint, []).append((code, shard))
        granted: dict[int, list[Claim]] = {}
        seen = self.seen
        for fingerprint, wanted in by_state.items():
            explored = seen.get(fingerprint, ())
            explored = (explored,) if type(explored) is int else explored
            codes = {code for code, _ in wanted}
            new = []
            for code in sorted(codes):
                if (any(_subsumes(r, code) for r in explored)
                        or any(_subsumes(other, code) for other in codes if other != code)):
                    # A world of this state was explored, or is about to be, with a rank
                    # that subsumes this one (the same rank again is no subsumption).
                    self.report.subsumed += code not in explored
                    continue
                # Of the shards that found it, one its fingerprint picks: no shard is
                # favoured, and the levels stay evenly spread.
                finders = sorted({shard for c, shard in wanted if c == code})
                winner = finders[int.from_bytes(fingerprint[8:12], "big") % len(finders)]
                granted.setdefault(winner, []).append((fingerprint, code))
                new.append(code)
            if new:
                both = (*explored, *new)
                seen[fingerprint] = both[0] if len(both) == 1 else both
        return granted

    def accept(self, granted: list[Claim], room: int | None) -> tuple[int, int]:
        """The granted successors become the next level (at most `room` of them: the
        states bound), their invariants checked. Returns (worlds in the next level,
        claims refused, which were subsumed)."""
        explorer, report = self.explorer, self.report
        refused = len(self.found) - len(granted)
        for claim in granted:
            if room is not None and room <= 0:
                report.complete = False
                if "states" not in report.bounded_by:
                    report.bounded_by.append("states")
                break
            world, path = self.found[claim]
            report.states += 1
            report.max_depth = max(report.max_depth, len(path))
            explorer._check(world, path, report, self.violated)
            self.level.append((world, path))
            if room is not None:
                room -= 1
        self.found = {}
        return len(self.level), refused

    def split(self, index: int, count: int) -> None:
        """Become shard `index` of `count`, from the whole search so far (in a forked
        worker): its share of the level, its part of the seen-set, a report of its own
        (the lead's counts are reported once, by the coordinator)."""
        self.index, self.count = index, count
        self.seen = {k: v for k, v in self.seen.items() if owner(k, count) == index}
        self.level = self.level[index::count]
        self.report = Report()

    # --- moving worlds between shards

    def give(self, count: int) -> list[tuple[Choice, ...]]:
        """The paths of `count` worlds of the next level, which another shard takes."""
        given, self.level = self.level[-count:] if count else [], self.level[:-count] if count else self.level
        return [path for _, path in given]

    def take(self, paths: Sequence[tuple[Choice, ...]]) -> int:
        """Worlds given by another shard, rebuilt by replaying their paths."""
        root = self.root
        for path in paths:
            world = root
            for choice in path:
                world = self.explorer.apply(world, choice)
            self.level.append((world, tuple(path)))
        return len(self.level)

    # --- the end

    def result(self, fingerprints: bool) -> dict[str, Any]:
        r = self.report
        return {"states": r.states, "transitions": r.transitions, "max_depth": r.max_depth,
                "complete": r.complete, "bounded_by": r.bounded_by, "violations": r.violations,
                "violating": r.violating, "unhandled": r.unhandled, "quiet_states": r.quiet_states,
                "subsumed": r.subsumed, "terminal_states": r.terminal_states,
                "seen_bytes": _seen_bytes(self.seen), "distinct": len(self.seen),
                "fingerprints": sorted(self.seen) if fingerprints else None,
                "moves": (self.explorer.moves.hits, self.explorer.moves.misses)}


class Pool(Protocol):
    """Shards somewhere: `call` runs a method on each named shard (all at once), and
    returns their results in order."""

    count: int

    def call(self, method: str, args: Sequence[tuple[Any, ...]], shards: Sequence[int] | None = None) -> list[Any]: ...

    def close(self) -> None: ...


class LocalPool:
    """Shards in processes of this machine, forked from this one (so they share its
    compiled machines and need nothing pickled but claims and paths)."""

    def __init__(self, lead: Shard | Callable[[], Explorer], count: int) -> None:
        """`lead`: a shard whose search so far each worker inherits (`Shard.split`), or
        how a worker makes its explorer to start afresh."""
        if "fork" not in multiprocessing.get_all_start_methods():
            raise UsageError("--workers needs processes started by fork (Linux, macOS)")
        context = multiprocessing.get_context("fork")
        self.count = count
        self._pipes = []
        self._processes = []
        for i in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(lead, i, count, theirs), daemon=True)
            process.start()
            theirs.close()
            self._pipes.append(ours)
            self._processes.append(process)

    def call(self, method: str, args: Sequence[tuple[Any, ...]], shards: Sequence[int] | None = None) -> list[Any]:
        shards = range(self.count) if shards is None else shards
        for i, a in zip(shards, args):
            self._pipes[i].send((method, a))
        results = []
        for i in shards:
            ok, value = self._pipes[i].recv()
            if not ok:
                raise RuntimeError(f"worker {i}: {value}")
            results.append(value)
        return results

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _serve(lead: Shard | Callable[[], Explorer], index: int, count: int, pipe: Any) -> None:
    """A worker process: builds its shard, then runs the methods the coordinator sends."""
    try:
        if isinstance(lead, Shard):
            shard = lead
            shard.split(index, count)
        else:
            shard = Shard(lead, index, count)
    except BaseException:  # noqa: BLE001 - reported to the coordinator, which raises it
        error = traceback.format_exc()
        while (request := pipe.recv()) is not None:
            pipe.send((False, error))
        return
    while (request := pipe.recv()) is not None:
        method, args = request
        try:
            pipe.send((True, getattr(shard, method)(*args)))
        except BaseException:  # noqa: BLE001
            pipe.send((False, traceback.format_exc()))
    os._exit(0)  # no clean-up of the worlds: the process ends


def explore(explorer: Explorer, workers: int, progress: Callable[[Report], None] | None = None) -> Report:
    """`explorer`'s breadth-first search on `workers` processes of this machine. The
    first levels are searched here, until a level holds enough worlds to share
    (`WARM` per worker); then the workers are forked, each inheriting its share of that
    level, its part of the seen-set and every step remembered so far
    (runtime.harness.moves), and the search goes on level by level on them."""
    if explorer.search != "bfs":
        raise UsageError("the search on several workers is breadth-first: leave search=dfs out, or use one worker")
    t0 = time.perf_counter()
    lead = Shard(lambda: explorer, 0, 1)
    claims = {0: lead.start()}
    while True:
        granted = lead.judge(claims)
        room = None if explorer.max_states is None else explorer.max_states - lead.report.states
        size, _ = lead.accept(granted.get(0, []), room)
        if not size or size >= WARM * workers or not lead.report.complete:
            break
        claims = {0: [c for owned in lead.expand().values() for c in owned]}
    if not lead.level or workers == 1 or not lead.report.complete:
        while lead.level:  # finish here
            claims = {0: [c for owned in lead.expand().values() for c in owned]}
            room = None if explorer.max_states is None else explorer.max_states - lead.report.states
            lead.accept(lead.judge(claims).get(0, []), room)
        return _merge([lead.result(explorer.digest_states)], t0)
    prefix = lead.result(False)
    prefix["distinct"] = prefix["seen_bytes"] = 0  # the workers hold the seen-set now
    pool = LocalPool(lead, workers)
    try:
        return search(pool, prefix, explorer.max_states, explorer.digest_states, progress, t0)
    finally:
        pool.close()


BALANCE = True
WARM = 64  # worlds per worker in the level at which the workers are forked


def search(pool: Pool, prefix: dict[str, Any] | None = None, max_states: int | None = None, digest: bool = False,
           progress: Callable[[Report], None] | None = None, t0: float | None = None) -> Report:
    """The breadth-first search on the pool's shards; the report as `Explorer.run`'s.
    `prefix`: the result of the levels searched before (the shards hold the next), else
    the shards start from the initial world."""
    t0 = time.perf_counter() if t0 is None else t0
    last = time.perf_counter()
    n = pool.count
    report = Report()
    report.states = prefix["states"] if prefix else 0
    if prefix is None:
        claims = pool.call("start", [() for _ in range(n)])
        root = claims[0][0]
        judged = [({0: claims[0]} if owner(root[0], n) == i else {},) for i in range(n)]
    while True:
        if prefix is not None or report.states:
            expanded = pool.call("expand", [() for _ in range(n)])
            pending: dict[int, dict[int, list[Claim]]] = {}
            for shard, by_owner in enumerate(expanded):
                for owning, owned in by_owner.items():
                    pending.setdefault(owning, {})[shard] = owned
            judged = [(pending.get(i, {}),) for i in range(n)]
        verdicts = pool.call("judge", judged)
        granted: list[list[Claim]] = [[] for _ in range(n)]
        for by_shard in verdicts:
            for shard, claims_ in by_shard.items():
                granted[shard].extend(claims_)
        room = None if max_states is None else max_states - report.states
        args = []
        for i in range(n):
            share = None if room is None else max(0, min(len(granted[i]), room))
            if room is not None:
                room -= share or 0
            args.append((granted[i], share))
        sizes = [size for size, _ in pool.call("accept", args)]
        report.states += sum(len(g) if share is None else share for g, share in args)
        if not any(sizes) or (max_states is not None and report.states >= max_states):
            break
        if BALANCE: _balance(pool, sizes)
        if progress is not None and time.perf_counter() - last > 0.2:
            last = time.perf_counter()
            report.seconds = last - t0
            progress(report)
    results = pool.call("result", [(digest,) for _ in range(n)])
    return _merge(results + ([prefix] if prefix else []), t0, workers=n)


def _balance(pool: Pool, sizes: list[int]) -> None:
    """Even out the next level: the largest shares give worlds (as paths) to the
    smallest, where the spread is worth the replays (more than a fifth of the mean)."""
    total = sum(sizes)
    mean = total / len(sizes)
    if total < 2 * len(sizes) or max(sizes) - min(sizes) <= max(1.0, mean / 4):
        return
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    while order and sizes[order[-1]] - sizes[order[0]] > max(1.0, mean / 4):
        rich, poor = order[-1], order[0]
        count = int((sizes[rich] - sizes[poor]) // 2)
        if count <= 0:
            break
        paths = pool.call("give", [(count,)], [rich])[0]
        pool.call("take", [(paths,)], [poor])
        sizes[rich] -= count
        sizes[poor] += count
        order = sorted(range(len(sizes)), key=lambda i: sizes[i])


def _merge(results: list[dict[str, Any]], t0: float, workers: int = 1) -> Report:
    report = Report()
    report.states = sum(r["states"] for r in results)
    report.transitions = sum(r["transitions"] for r in results)
    report.max_depth = max(r["max_depth"] for r in results)
    report.complete = all(r["complete"] for r in results)
    report.bounded_by = sorted({b for r in results for b in r["bounded_by"]})
    report.violating = sum((Counter(r["violating"]) for r in results), Counter())
    report.unhandled = sum((Counter(r["unhandled"]) for r in results), Counter())
    report.quiet_states = sum(r["quiet_states"] for r in results)
    report.subsumed = sum(r["subsumed"] for r in results)
    report.terminal_states = sum(r["terminal_states"] for r in results)
    report.seen_bytes = sum(r["seen_bytes"] for r in results)
    report.distinct = sum(r["distinct"] for r in results)
    report.workers = workers
    # The shortest counterexample of each invariant (all shards search level by level);
    # of equally short ones, the first in the order of their steps' text, so that the
    # choice does not depend on which worker found which.
    shortest: dict[str, Violation] = {}
    for r in results:
        for v in r["violations"]:
            best = shortest.get(v.invariant)
            if best is None or (len(v.path), [str(c) for c in v.path]) < (len(best.path), [str(c) for c in best.path]):
                shortest[v.invariant] = v
    order = {v.invariant: i for r in results for i, v in enumerate(r["violations"])}
    report.violations = sorted(shortest.values(), key=lambda v: (len(v.path), order[v.invariant]))
    if results[0]["fingerprints"] is not None:
        report.digest = combine(b"".join(sorted(f for r in results for f in r["fingerprints"] or ()))).hex()
    report.seconds = time.perf_counter() - t0
    return report
