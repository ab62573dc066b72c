"""`fsmc explore --cluster ADDRESS`: the explorer's parallel search on a Dask cluster.

The shards of runtime.harness.parallel run as Dask actors, one per worker of the cluster
(a shard keeps its worlds and its part of the seen-set between calls: an actor is Dask's
stateful task). The coordinator is this process: level by level it calls every actor and
routes the claims between them, some 30 bytes a state; worlds never travel.

Dask rather than Ray: the search needs long-lived stateful workers and small messages,
which Dask's actors give with a pure-Python scheduler and workers that start in a second
on any machine with the project installed (`dask scheduler`, `dask worker ADDRESS`); Ray
brings an object store, a C++ core and a heavier runtime for what is here a few calls per
level. Each worker builds its own explorer from the scenario's path (`scenario_explorer`),
so the workers need the project (the same checkout and virtual environment) at the same
path, as distributed TLC's workers need the spec.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runtime.errors import UsageError
from runtime.harness.explore import Explorer, Report
from runtime.harness.parallel import Shard, search

__all__ = ["DaskPool", "explore", "scenario_explorer"]


def scenario_explorer(path: str, overrides: dict[str, Any], reduce: bool = True) -> Explorer:
    """An explorer for the scenario at `path` with `fsmc explore`'s overrides: what each
    worker of a cluster builds for itself (a module-level function, so Dask can send it)."""
    from fsmc.build import load_scenario

    return Explorer.for_scenario(load_scenario(Path(path)), reduce=reduce, **overrides)


CONNECT_TIMEOUT = 10  # seconds to wait for the scheduler


class DaskPool:
    """Shards as actors on the workers of the Dask cluster at `address`, one per worker
    (or `count`, spread over the workers in turn)."""

    def __init__(self, address: str, make_explorer: Callable[[], Explorer], count: int | None = None) -> None:
        try:
            from distributed import Client
        except ImportError as e:  # pragma: no cover - an extra of the package
            raise UsageError("--cluster needs Dask's distributed package: pip install 'fsmc[cluster]'") from e
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]
        except OSError as e:
            raise UsageError(f"--cluster {address}: no Dask scheduler answers there ({e})") from e
        workers = sorted(self.client.scheduler_info()["workers"])
        if not workers:
            self.client.close()  # type: ignore[no-untyped-call]
            raise UsageError(f"--cluster {address}: the scheduler has no workers")
        self.count = count or len(workers)
        futures = [self.client.submit(Shard, make_explorer, i, self.count, actor=True, pure=False,
                                      workers=[workers[i % len(workers)]]) for i in range(self.count)]
        self.actors = [f.result() for f in futures]

    def call(self, method: str, args: Sequence[tuple[Any, ...]], shards: Sequence[int] | None = None) -> list[Any]:
        chosen = range(self.count) if shards is None else shards
        pending = [getattr(self.actors[i], method)(*a) for i, a in zip(chosen, args, strict=True)]
        return [p.result() for p in pending]

    def close(self) -> None:
        self.actors = []
        self.client.close()  # type: ignore[no-untyped-call]


def explore(address: str, scenario_path: Path, overrides: dict[str, Any], *, reduce: bool = True,
            digest: bool = False, max_states: int | None = None, count: int | None = None,
            progress: Callable[[Report], None] | None = None) -> Report:
    """The breadth-first search of a scenario on the cluster at `address`."""
    pool = DaskPool(address, functools.partial(scenario_explorer, str(scenario_path.resolve()), overrides, reduce),
                    count)
    try:
        return search(pool, progress=progress, max_states=max_states, digest=digest)
    finally:
        pool.close()
