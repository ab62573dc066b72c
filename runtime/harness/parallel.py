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
spread, the coordinator has the shards with more give worlds, as paths, at `accept`, and
those with fewer take them at their next `expand`, replaying the paths while the others
expand; a world's successors are then found where it went.

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
import multiprocessing
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Protocol

from runtime.errors import LocalError, UsageError
from runtime.harness.explore import (
    _YOUNG,
    FINE,
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

__all__ = ["LocalPool", "Pool", "Shard", "balance", "explore", "owner", "search"]

# Where a claim was found: the parent's number in its level, the successor's among the
# parent's, and the shard that found it, as one number ((parent << 16 | successor) *
# shards + finder). Places of a level are distinct, and ordered as the one-process search
# meets them; a sort compares ints faster than tuples.
Place = int
_SUCCESSORS = 1 << 16
Claim = tuple[Place, bytes, int]  # (place, fingerprint, rank code)
# A shard's work at a level: worlds expanded, their successors, worlds taken from other
# shards, the steps replayed to rebuild them.
Work = tuple[int, int, int, int]
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

    def start(self) -> list[list[Claim]]:
        """The initial world, claimed by shard 0 only (every shard builds it alike)."""
        root = self.root = self.explorer.initial()
        self._collect()  # as Explorer.run does, until `release`
        claims: list[list[Claim]] = [[] for _ in range(self.count)]
        if self.index == 0:
            fingerprint, code = self.explorer.fingerprint(root), _code(self.explorer.rank(root))
            self.kept = {0: (root, (), None)}
            claims[owner(fingerprint, self.count)].append((0, fingerprint, code))
        self.mine, claims[self.index] = claims[self.index], []
        return claims

    def expand(self, taken: Sequence[Sequence[tuple[tuple[Choice, ...], int]]] = ()
               ) -> tuple[list[list[Claim]], Work]:
        """Successors of this shard's level (and of the worlds `taken` from other shards,
        as `give` returned them), kept; their claims, by owning shard, each shard's in
        order of place (those this shard owns stay here, for its `judge`); and the work
        it did (worlds expanded, their successors, worlds taken, steps replayed)."""
        replayed = sum(self.take(given) for given in taken)
        expanded, successions = len(self.level), 0
        explorer, report = self.explorer, self.report
        kept: dict[Place, tuple[World, tuple[Choice, ...], Choice | None]] = {}
        first: set[tuple[bytes, int]] = set()  # the (fingerprint, rank code) kept
        count, index = self.count, self.index
        claims: list[list[Claim]] = [[] for _ in range(count)]
        seen = self.seen
        level, self.level = self.level, []
        # In order of number (worlds taken from another shard come last): a shard's
        # first of equal claims is then its earliest, and its claims are in order.
        level.sort(key=lambda entry: -entry[2])
        while level:
            world, path, number = level.pop()  # dropped once expanded, as the one-process search does
            successors = explorer.expand(world, path, report)
            if successors is None:
                continue
            successions += len(successors)
            if len(successors) > _SUCCESSORS:
                raise UsageError(f"a world with {len(successors)} successors: more than the parallel search numbers")
            if not successors and explorer.terminal and not world.held:
                self._check(world, path, (len(path), number, -1), explorer.terminal)
            if explorer.stalled and explorer.stuck(world, [choice for choice, _ in successors]):
                self._check(world, path, (len(path), number, -1), explorer.stalled)
            place = (number << 16) * count + index
            for choice, nxt in successors:
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
                            place += count
                            continue
                # Of equal claims only the first can be granted: keep its world.
                if (fingerprint, code) not in first:
                    first.add((fingerprint, code))
                    kept[place] = nxt, path, choice
                claims[owning].append((place, fingerprint, code))
                place += count
            del world
        self.kept = kept
        self.mine, claims[index] = claims[index], []
        return claims, (expanded, successions, sum(len(given) for given in taken), replayed)

    def judge(self, sent: Sequence[list[Claim]]) -> list[Place]:
        """This shard's decision on the claims it owns (its own, and those each other
        shard `sent`): the places of those granted, in order. In order of place, as the
        one-process search meets them: a claim is granted unless a world of its state was
        explored with a rank that subsumes it."""
        mine, self.mine = self.mine, []
        others = [claims for claims in sent if claims]
        ordered = sorted(chain(mine, *others)) if others else mine  # each in order already
        seen, report = self.seen, self.report
        granted = []
        for place, fingerprint, code in ordered:
            found = seen.get(fingerprint)
            if found is None:
                seen[fingerprint] = code
            else:
                ranks = (found,) if isinstance(found, int) else found
                if any(_subsumes(r, code) for r in ranks):
                    report.subsumed += code not in ranks
                    continue
                seen[fingerprint] = (*ranks, code)
            granted.append(place)
        return granted

    def accept(self, granted: list[tuple[Place, int]], depth: int,
               gives: Sequence[int] = ()) -> list[list[tuple[tuple[Choice, ...], int]]]:
        """The granted successors (place, number), in their order, become the next level
        (`depth`); their invariants are checked. Then, for each count in `gives`, that
        many of them are given away (`give`): the gifts, in order."""
        report, kept, count = self.report, self.kept, self.count
        verdict, counted, level = self.explorer.verdict, self.explorer.count, self.level
        states = report.states
        for place, number in granted:
            world, parent, choice = kept[place]
            path = parent if choice is None else parent + (choice,)
            states += 1
            if not states & _YOUNG and self._gc is not None:
                self._gc.young()
            checked = verdict(world)
            if checked is not FINE:
                failed = counted(checked, report)
                if failed:
                    at = place // count
                    self._note(failed, path, (depth - 1, at >> 16, at & (_SUCCESSORS - 1)))
            level.append((world, path, number))
        report.states = states
        if level:
            report.max_depth = max(report.max_depth, depth)
        self.kept = {}
        return [self.give(n) for n in gives]

    def refuse(self) -> None:
        """The level's claims beyond the states bound: forgotten, the search incomplete."""
        self.report.complete = False
        if "states" not in self.report.bounded_by:
            self.report.bounded_by.append("states")

    def _check(self, world: World, path: tuple[Choice, ...], moment: Moment, checks: list[Any] | None = None) -> None:
        """Explorer._check (of a world this shard explores)."""
        self._note(self.explorer.violations(world, self.report, checks), path, moment)

    def _note(self, failed: list[tuple[str, str]], path: tuple[Choice, ...], moment: Moment) -> None:
        """Violations met at `moment`: each invariant's kept if it is the one the
        one-process search would have met first."""
        for name, message in failed:
            known = self.first.get(name)
            if known is None or moment < known[0]:
                self.first[name] = moment, Violation(name, message, path)

    def split(self, index: int, count: int) -> None:
        """Become shard `index` of `count`, from the whole search so far (in a forked
        worker): its share of the level, its part of the seen-set, a report of its own
        (the lead's counts are reported once, by the coordinator). The share is a run of
        neighbouring worlds, not every count-th: neighbours share most of their parties,
        and their subtrees stay with the worker that has them, so a step that recurs in
        them is learned by one worker, not by each (on the join without faults, 2,776
        steps computed on two workers so, 4,051 when dealt out every other, 2,600 on one)."""
        self.index, self.count = index, count
        self.seen = {k: v for k, v in self.seen.items() if owner(k, count) == index}
        n = len(self.level)
        self.level = self.level[index * n // count:(index + 1) * n // count]
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
        number, each from the world where it leaves the path before it, so each step of
        their tree is replayed once. (A level's worlds in order of number are in the
        order of their paths' successor indices, as the search numbers them: the worlds
        below a step are next to each other.) Returns the steps replayed."""
        assert self.root is not None
        trail: list[World] = [self.root]  # the worlds along the last path replayed
        last: tuple[Choice, ...] = ()
        steps = 0
        for path, number in sorted(given, key=lambda entry: entry[1]):
            shared = 0
            while shared < min(len(path), len(last)) and path[shared] == last[shared]:
                shared += 1
            del trail[shared + 1:]
            for choice in path[shared:]:
                trail.append(self.explorer.apply(trail[-1], choice))
            steps += len(path) - shared
            last = tuple(path)
            self.level.append((trail[-1], last, number))
        return steps

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
        # Worlds given away at the last `accept`, by the shard that takes them.
        self.taken: list[list[list[tuple[tuple[Choice, ...], int]]]] = [[] for _ in range(pool.count)]
        self.work: list[int] = [0, 0, 0, 0]  # the shards' `Work`, summed over the levels

    def replay_cost(self) -> float:
        """What rebuilding a world given by another shard costs, in expansions of a
        world: the steps replayed for each (two until worlds have been moved), over its
        successors, at two replayed steps a successor (a successor is also
        fingerprinted and checked; 1.9 measured on the join with a lost message)."""
        expanded, successors, taken, replayed = self.work
        steps = replayed / taken if taken else 2.0
        return steps / (2 * max(1.0, successors / expanded if expanded else 1.0))

    def start(self) -> None:
        self._decide(self.pool.call("start", [() for _ in range(self.pool.count)]), depth=0)

    def go_on(self) -> bool:
        return self.size > 0 and not self.bounded

    def next(self) -> None:
        n = self.pool.count
        taken, self.taken = self.taken, [[] for _ in range(n)]
        results = self.pool.call("expand", [(taken[i],) for i in range(n)])
        for _, work in results:
            self.work = [total + done for total, done in zip(self.work, work, strict=True)]
        self._decide([claims for claims, _ in results], self.depth + 1)

    def _decide(self, claims: list[list[list[Claim]]], depth: int) -> None:
        """Judge the claims (by finder, by owner) at their owners, number the granted
        ones in the one-process search's order, and have their finders accept them (and
        even out the level)."""
        n = self.pool.count
        verdicts = self.pool.call("judge", [([claims[finder][i] for finder in range(n)],) for i in range(n)])
        granted = verdicts[0] if n == 1 else sorted(chain.from_iterable(verdicts))  # each in order already
        if self.max_states is not None and self.states + len(granted) > self.max_states:
            granted = granted[:max(0, self.max_states - self.states)]
            self.bounded = True
            self.pool.call("refuse", [() for _ in range(n)])
        shares: list[list[tuple[Place, int]]] = [[] for _ in range(n)]
        for number, place in enumerate(granted):
            shares[place % n].append((place, number))
        moves = balance([len(share) for share in shares], self.replay_cost()) if not self.bounded else []
        gives: list[list[int]] = [[] for _ in range(n)]
        for giver, _taker, count in moves:
            gives[giver].append(count)
        gifts = self.pool.call("accept", [(share, depth, gives[i]) for i, share in enumerate(shares)])
        for giver, taker, _count in moves:
            self.taken[taker].append(gifts[giver].pop(0))
        self.states += len(granted)
        self.depth, self.size = depth, len(granted)

    def carry_on(self, pool: Pool, prefix: dict[str, Any]) -> _Level:
        """This search, its next levels on `pool` (whose shards hold the current one)."""
        self.pool, self.prefix = pool, prefix
        self.taken = [[] for _ in range(pool.count)]
        return self

    def progress(self) -> Report:
        report = Report(states=self.states, max_depth=self.depth)
        report.seconds = time.perf_counter() - self.t0
        report.workers = self.pool.count
        return report

    def finish(self) -> Report:
        results = self.pool.call("result", [(self.digest,) for _ in range(self.pool.count)])
        return _merge(results + ([self.prefix] if self.prefix else []), self.t0, workers=self.pool.count)


def balance(sizes: Sequence[int], cost: float = 0.0) -> list[tuple[int, int, int]]:
    """How to even out a level spread over shards as `sizes`: moves (giver, taker,
    count), from the shards over the mean to those under it (a giver takes nothing: it
    gives from what it accepted). A world moved costs its taker `cost` expansions to
    rebuild, while the others expand: so a taker short of the mean by d takes
    2d / (2 + cost), which leaves it and its giver as busy (two shards: the giver keeps
    a + m worlds, the taker expands b - m and rebuilds m; equal for m = (a - b) / (2 +
    cost)). A spread under a fiftieth of the mean, or two worlds, is left."""
    total, n = sum(sizes), len(sizes)
    if n < 2 or max(sizes) - min(sizes) <= max(2, total / n / 50):
        return []
    mean, share = total / n, 2 / (2 + cost)
    over = [[int((size - mean) * share), i] for i, size in enumerate(sizes) if size > mean]
    under = [[int((mean - size) * share), i] for i, size in enumerate(sizes) if size < mean]
    moves = []
    while over and under:  # what is over the mean covers what is under it
        count = min(over[-1][0], under[-1][0])
        if count:
            moves.append((over[-1][1], under[-1][1], count))
        over[-1][0] -= count
        under[-1][0] -= count
        if not over[-1][0]:
            over.pop()
        if not under[-1][0]:
            under.pop()
    return moves


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
