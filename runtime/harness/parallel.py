"""The explorer's breadth-first search on several workers: processes on this machine, or
a cluster's workers (fsmc.cluster runs the same shards as Dask actors).

Level by level, as distributed TLC does. Every worker (a `Shard`) holds its part of the
current level (worlds with their paths) and its part of the seen-set: the fingerprints
(runtime.harness.fingerprint) whose first eight bytes, modulo the number of workers, name
it. A level has two rounds:
  1. `expand`: each shard takes the successors of its worlds, keeps them, and sends each
     successor's fingerprint, rank and place (a *claim*) to the shard that owns it;
  2. `judge`: each shard decides the claims it owns against its seen-set;
then the coordinator numbers the granted claims, and `accept` makes them the shards' next
level and checks the invariants on them. Worlds stay where they were found: what crosses
between workers is a claim, some 30 bytes, never a world. Where a level is unevenly
spread, the coordinator moves worlds as paths (`give`, `take`), which the receiving shard
replays; a world's successors are then found where it went.

The search is the one-process breadth-first search (`Explorer.run`), not merely one with
the same states: a claim's place is its parent's number in its level and its own among
the parent's successors, which is the order in which the one-process search meets it, and
an owner decides its claims in that order, as that search does (a world is explored unless
a world of its state with a rank that subsumes it was met before: `Explorer.rank`). So it
explores the same worlds, counts the same transitions and subsumptions, and reports the
same first counterexample of each invariant (each violation carries the moment the
one-process search would have met it). The workers only change where the work is done.

The coordinator (`search`) talks to shards through a `Pool`: `LocalPool` forks
processes and talks over pipes; fsmc.cluster's pool calls Dask actors.
"""

from __future__ import annotations

import contextlib
import heapq
import multiprocessing
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from runtime.errors import LocalError, UsageError
from runtime.harness.explore import (
    _YOUNG,
    Choice,
    Collector,
    Explorer,
    Report,
    Violation,
    World,
    _code,
    _seen_bytes,
    _subsumes,
)
from runtime.harness.fingerprint import combine

__all__ = ["LocalPool", "Pool", "Shard", "explore", "owner", "search"]

# The parent's number in its level and the successor's among the parent's, as one number
# (parent << 16 | successor: a sort compares ints faster than tuples).
Place = int
_SUCCESSORS = 1 << 16
Claim = tuple[bytes, int, Place]  # (fingerprint, rank code, place)
# When the one-process search meets a check: (the depth of the world it is expanding, that
# world's number in its level, the successor's index among its successors; -1 for the
# expanded world's own terminal check).
Moment = tuple[int, int, int]


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
        self.level: list[tuple[World, tuple[Choice, ...], int]] = []  # (world, path, number)
        # Successors that may be granted, with their parents' paths and their choices.
        self.kept: dict[Place, tuple[World, tuple[Choice, ...], Choice | None]] = {}
        self.mine: list[Claim] = []  # the claims of this level that this shard owns
        self.report = Report()
        self.first: dict[str, tuple[Moment, Violation]] = {}  # invariant -> its first violation
        self.root: World | None = None
        self._gc: Collector | None = None
        self.counted = self.explorer.counts()  # see `result`

    # --- the rounds of a level

    def start(self) -> list[Claim]:
        """The initial world, claimed by shard 0 only (every shard builds it alike)."""
        root = self.root = self.explorer.initial()
        self._collect()  # as Explorer.run does, until `release`
        if self.index != 0:
            return []
        fingerprint, code = self.explorer.fingerprint(root), _code(self.explorer.rank(root))
        self.kept = {0: (root, (), None)}
        return [(fingerprint, code, 0)]

    def expand(self) -> dict[int, list[Claim]]:
        """Successors of this shard's level, kept; their claims, by owning shard (those
        this shard owns stay here, for its `judge`)."""
        explorer, report = self.explorer, self.report
        kept: dict[Place, tuple[World, tuple[Choice, ...], Choice | None]] = {}
        first: set[tuple[bytes, int]] = set()
        claims: dict[int, list[Claim]] = {}
        count, index = self.count, self.index
        seen = self.seen
        level, self.level = self.level, []
        # In order of number (worlds taken from another shard come last): a shard's
        # first of equal claims is then its earliest.
        level.sort(key=lambda entry: -entry[2])
        while level:
            world, path, number = level.pop()  # dropped once expanded, as the one-process search does
            successors = explorer.expand(world, path, report)
            if successors is None:
                continue
            if len(successors) > _SUCCESSORS:
                raise UsageError(f"a world with {len(successors)} successors: more than the parallel search numbers")
            if not successors and explorer.terminal and not world.held:
                self._check(world, path, (len(path), number, -1), explorer.terminal)
            if explorer.stalled and explorer.stuck(world, [choice for choice, _ in successors]):
                self._check(world, path, (len(path), number, -1), explorer.stalled)
            for i, (choice, nxt) in enumerate(successors):
                explorer.taken(nxt, report)
                fingerprint, code = explorer.fingerprint(nxt), _code(explorer.rank(nxt))
                owning = int.from_bytes(fingerprint[:8], "big") % count
                if owning == index:
                    # Owned here: refused now if the seen-set (which only `judge` changes)
                    # refuses it, as `judge` would.
                    found = seen.get(fingerprint)
                    if found is not None:
                        ranks = (found,) if isinstance(found, int) else found
                        if any(_subsumes(r, code) for r in ranks):
                            report.subsumed += code not in ranks
                            continue
                place = number << 16 | i
                # Of equal claims only the first can be granted: keep its world.
                if (fingerprint, code) not in first:
                    first.add((fingerprint, code))
                    kept[place] = nxt, path, choice
                if owning in claims:
                    claims[owning].append((fingerprint, code, place))
                else:
                    claims[owning] = [(fingerprint, code, place)]
            del world
        self.kept = kept
        self.mine = claims.pop(index, [])
        return claims

    def judge(self, claims: dict[int, list[Claim]]) -> list[tuple[Place, int]]:
        """This shard's decision on the claims it owns (its own and those other shards
        sent, by shard): the places of those granted, in order, with the shard that
        found each. In order of place, as the one-process search meets them: a claim is
        granted unless a world of its state was explored with a rank that subsumes it."""
        ordered = [(place, fingerprint, code, shard)
                   for shard, owned in claims.items() for fingerprint, code, place in owned]
        ordered.extend((place, fingerprint, code, self.index) for fingerprint, code, place in self.mine)
        ordered.sort()
        self.mine = []
        seen, report = self.seen, self.report
        granted = []
        for place, fingerprint, code, shard in ordered:
            found = seen.get(fingerprint)
            ranks: tuple[int, ...] | None = (found,) if isinstance(found, int) else found
            if ranks is not None:
                if any(_subsumes(r, code) for r in ranks):
                    report.subsumed += code not in ranks
                    continue
                seen[fingerprint] = (*ranks, code)
            else:
                seen[fingerprint] = code
            granted.append((place, shard))
        return granted

    def accept(self, granted: list[tuple[Place, int]], depth: int) -> int:
        """The granted successors (place, number), in their order, become the next level
        (`depth`); their invariants are checked. Returns the size of the next level."""
        report, kept = self.report, self.kept
        for place, number in granted:
            world, parent, choice = kept[place]
            path = parent if choice is None else parent + (choice,)
            report.states += 1
            if not report.states & _YOUNG and self._gc is not None:
                self._gc.young()
            report.max_depth = max(report.max_depth, len(path))
            self._check(world, path, (depth - 1, place >> 16, place & (_SUCCESSORS - 1)))
            self.level.append((world, path, number))
        self.kept = {}
        return len(self.level)

    def refuse(self) -> None:
        """The level's claims beyond the states bound: forgotten, the search incomplete."""
        self.report.complete = False
        if "states" not in self.report.bounded_by:
            self.report.bounded_by.append("states")

    def _check(self, world: World, path: tuple[Choice, ...], moment: Moment, checks: list[Any] | None = None) -> None:
        """Explorer._check, keeping each invariant's violation the one-process search
        would have met first."""
        for name, message in self.explorer.violations(world, self.report, checks):
            known = self.first.get(name)
            if known is None or moment < known[0]:
                self.first[name] = moment, Violation(name, message, path)

    def split(self, index: int, count: int) -> None:
        """Become shard `index` of `count`, from the whole search so far (in a forked
        worker): its share of the level, its part of the seen-set, a report of its own
        (the lead's counts are reported once, by the coordinator)."""
        self.index, self.count = index, count
        self.seen = {k: v for k, v in self.seen.items() if owner(k, count) == index}
        self.level = self.level[index::count]
        self.report = Report()
        self.first = {}
        self.counted = self.explorer.counts()  # the lead's counts are the lead's
        self._collect()  # the lead's collector was restored before the fork

    # --- moving worlds between shards

    def give(self, count: int) -> list[tuple[tuple[Choice, ...], int]]:
        """The paths and numbers of `count` worlds of the next level, for another shard."""
        given, self.level = self.level[len(self.level) - count:], self.level[:len(self.level) - count]
        return [(path, number) for _, path, number in given]

    def take(self, given: Sequence[tuple[tuple[Choice, ...], int]]) -> int:
        """Worlds given by another shard, rebuilt by replaying their paths: in order of
        path, each from the world where it leaves the path before it (paths of one level
        share most of their steps), so each step of their tree is replayed once."""
        assert self.root is not None
        trail: list[World] = [self.root]  # the worlds along the last path replayed
        last: tuple[Choice, ...] = ()
        for path, number in sorted(given, key=lambda entry: [str(c) for c in entry[0]]):
            shared = 0
            while shared < min(len(path), len(last)) and path[shared] == last[shared]:
                shared += 1
            del trail[shared + 1:]
            for choice in path[shared:]:
                trail.append(self.explorer.apply(trail[-1], choice))
            last = tuple(path)
            self.level.append((trail[-1], last, number))
        return len(self.level)

    # --- the end

    def _collect(self) -> None:
        self._gc = Collector().__enter__()

    def release(self) -> None:
        """The collector as it was before the search."""
        if self._gc is not None:
            self._gc.__exit__()
            self._gc = None

    def result(self, fingerprints: bool) -> dict[str, Any]:
        self.release()
        r = self.report
        return {"states": r.states, "transitions": r.transitions, "max_depth": r.max_depth,
                "complete": r.complete, "bounded_by": r.bounded_by, "first": list(self.first.values()),
                "violating": r.violating, "unhandled": r.unhandled, "quiet_states": r.quiet_states,
                "subsumed": r.subsumed, "terminal_states": r.terminal_states,
                "seen_bytes": _seen_bytes(self.seen), "distinct": len(self.seen),
                "fingerprints": sorted(self.seen) if fingerprints else None,
                "counts": self.explorer.counted_since(self.counted)}


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
        chosen = range(self.count) if shards is None else shards
        for i, a in zip(chosen, args, strict=True):
            self._pipes[i].send((method, a))
        results = []
        for i in chosen:
            try:
                ok, value = self._pipes[i].recv()
            except (EOFError, ConnectionError) as e:
                # A worker that dies says nothing: the operating system killed it (most
                # often for memory: every worker holds its share of the search's worlds).
                process = self._processes[i]
                process.join(1)
                raise LocalError(f"worker {i} of the parallel search died (exit code {process.exitcode}; "
                                   "a negative one is the signal that killed it, -9 most often for memory): "
                                   "bound the search (--max-states, --max-faults) or use fewer workers") from e
            if not ok:
                raise RuntimeError(f"worker {i}: {value}")
            results.append(value)
        return results

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
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
        os._exit(1)
    while (request := pipe.recv()) is not None:
        method, args = request
        try:
            pipe.send((True, getattr(shard, method)(*args)))
        except BaseException:  # noqa: BLE001
            pipe.send((False, traceback.format_exc()))
    os._exit(0)  # no clean-up of the worlds: the process ends


class _Here:
    """One shard in this process, as a pool: the levels searched before the workers fork."""

    count = 1

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def call(self, method: str, args: Sequence[tuple[Any, ...]], shards: Sequence[int] | None = None) -> list[Any]:
        return [getattr(self.shard, method)(*a) for a in args]

    def close(self) -> None:
        pass


WARM = 64  # worlds per worker in the level at which the workers are forked


def explore(explorer: Explorer, workers: int, progress: Callable[[Report], None] | None = None) -> Report:
    """`explorer`'s breadth-first search on `workers` processes of this machine. The
    first levels are searched here, until a level holds enough worlds to share (`WARM`
    per worker); then the workers are forked, each inheriting its share of that level,
    its part of the seen-set and every step remembered so far (runtime.harness.moves),
    and the search goes on level by level on them."""
    if explorer.search != "bfs":
        raise UsageError("the search on several workers is breadth-first: leave search=dfs out, or use one worker")
    lead = Shard(lambda: explorer, 0, 1)
    here = _Here(lead)
    level = _Level(here, explorer.max_states, explorer.digest_states)
    try:
        level.start()
        while level.go_on() and (workers == 1 or level.size < WARM * workers):
            level.next()
        if not level.go_on() or workers == 1:
            return level.finish()
        prefix = lead.result(False)
        prefix["distinct"] = prefix["seen_bytes"] = 0  # the workers hold the seen-set now
        pool = LocalPool(lead, workers)
        try:
            return search(pool, level.carry_on(pool, prefix), progress)
        finally:
            pool.close()
    finally:
        lead.release()


def search(pool: Pool, level: _Level | None = None, progress: Callable[[Report], None] | None = None,
           max_states: int | None = None, digest: bool = False) -> Report:
    """The breadth-first search on the pool's shards, from the initial world or from
    `level` (levels searched before); the report as `Explorer.run`'s."""
    if level is None:
        level = _Level(pool, max_states, digest)
        level.start()
    last = time.perf_counter()
    while level.go_on():
        level.next()
        if progress is not None and time.perf_counter() - last > 0.2:
            last = time.perf_counter()
            progress(level.progress())
    return level.finish()


class _Level:
    """The coordinator's side of the search: the rounds of each level on a pool."""

    def __init__(self, pool: Pool, max_states: int | None, digest: bool) -> None:
        self.pool, self.max_states, self.digest = pool, max_states, digest
        self.t0 = time.perf_counter()
        self.depth = 0  # of the level the shards hold
        self.size = 0  # worlds in it
        self.states = 0  # accepted so far
        self.bounded = False
        self.prefix: dict[str, Any] | None = None

    def start(self) -> None:
        claims = self.pool.call("start", [() for _ in range(self.pool.count)])
        self._decide({owner(claims[0][0][0], self.pool.count): {0: claims[0]}}, depth=0)

    def go_on(self) -> bool:
        return self.size > 0 and not self.bounded

    def next(self) -> None:
        n = self.pool.count
        expanded = self.pool.call("expand", [() for _ in range(n)])
        by_owner: dict[int, dict[int, list[Claim]]] = {}
        for shard, claims in enumerate(expanded):
            for owning, owned in claims.items():
                by_owner.setdefault(owning, {})[shard] = owned
        self._decide(by_owner, self.depth + 1)

    def _decide(self, by_owner: dict[int, dict[int, list[Claim]]], depth: int) -> None:
        """Judge the claims at their owners, number the granted ones in the one-process
        search's order, and have their finders accept them."""
        n = self.pool.count
        verdicts = self.pool.call("judge", [(by_owner.get(i, {}),) for i in range(n)])
        granted = list(heapq.merge(*verdicts))  # each owner's in order of place
        if self.max_states is not None and self.states + len(granted) > self.max_states:
            granted = granted[:max(0, self.max_states - self.states)]
            self.bounded = True
            self.pool.call("refuse", [() for _ in range(n)])
        shares: list[list[tuple[Place, int]]] = [[] for _ in range(n)]
        for number, (place, shard) in enumerate(granted):
            shares[shard].append((place, number))
        sizes = self.pool.call("accept", [(share, depth) for share in shares])
        self.states += len(granted)
        self.depth, self.size = depth, sum(sizes)
        if self.size:
            _balance(self.pool, sizes, depth)

    def carry_on(self, pool: Pool, prefix: dict[str, Any]) -> _Level:
        """This search, its next levels on `pool` (whose shards hold the current one)."""
        self.pool, self.prefix = pool, prefix
        return self

    def progress(self) -> Report:
        report = Report(states=self.states, max_depth=self.depth)
        report.seconds = time.perf_counter() - self.t0
        report.workers = self.pool.count
        return report

    def finish(self) -> Report:
        results = self.pool.call("result", [(self.digest,) for _ in range(self.pool.count)])
        return _merge(results + ([self.prefix] if self.prefix else []), self.t0, workers=self.pool.count)


def _balance(pool: Pool, sizes: list[int], depth: int) -> None:
    """Even out the next level: the largest shares give worlds (as paths) to the
    smallest. A world moved costs its path's replay, so only where the spread is worth
    it: in the first levels (whose worlds have the largest futures and the shortest
    paths) when it exceeds a tenth of the mean, later when it exceeds a fifth."""
    mean = sum(sizes) / len(sizes)
    if sum(sizes) < 2 * len(sizes):
        return
    spread = mean / 10 if depth <= EARLY else mean / 5
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    while sizes[order[-1]] - sizes[order[0]] > max(1.0, spread):
        rich, poor = order[-1], order[0]
        count = (sizes[rich] - sizes[poor]) // 2
        given = pool.call("give", [(count,)], [rich])[0]
        pool.call("take", [(given,)], [poor])
        sizes[rich] -= count
        sizes[poor] += count
        order = sorted(range(len(sizes)), key=lambda i: sizes[i])


EARLY = 12  # levels


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
    moves, pure = zip(*(r["counts"] for r in results), strict=True)
    report.moves = (sum(m[0] for m in moves), sum(m[1] for m in moves))
    report.pure = (sum(p[0] for p in pure), sum(p[1] for p in pure))
    # Each invariant's first violation, and the violations in the order met, as the
    # one-process search reports them.
    first: dict[str, tuple[Moment, Violation]] = {}
    for r in results:
        for moment, v in r["first"]:
            if v.invariant not in first or moment < first[v.invariant][0]:
                first[v.invariant] = moment, v
    report.violations = [v for _, v in sorted(first.values(), key=lambda mv: mv[0])]
    if results[0]["fingerprints"] is not None:
        report.digest = combine(b"".join(sorted(f for r in results for f in r["fingerprints"] or ()))).hex()
    report.seconds = time.perf_counter() - t0
    return report
