"""The explorer at scale: its optimisations (copy-on-write worlds, remembered moves,
numbered snapshots, fingerprints), its search on several workers and on a Dask cluster
each explore exactly what the plain search explores, on every protocol."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from fsmc.build import load_scenario
from fsmc.cli import main
from runtime import registry
from runtime.harness import parallel
from runtime.harness.explore import Explorer, Report
from runtime.harness.fingerprint import PROBABILITY_AT_1E9, canonical, collision_probability
from runtime.harness.moves import parties_share
from runtime.manifest import Manifest

FORM = ROOT / "protocols" / "keysync" / "scenarios" / "form_group.toml"


def outcome(report: Report) -> tuple[Any, ...]:
    """Everything a search reports but its time and memory."""
    return (report.states, report.transitions, report.subsumed, report.quiet_states, report.terminal_states,
            report.max_depth, report.complete, tuple(report.bounded_by), dict(report.violating),
            dict(report.unhandled), [(v.invariant, v.message, tuple(map(str, v.path))) for v in report.violations],
            report.distinct)


def small(manifest: Manifest) -> Path:
    """A scenario of the protocol whose exploration with one loss is small."""
    return manifest.scenarios[0]


def plain(scenario: Any, **settings: Any) -> Explorer:
    """The unoptimised search: whole worlds deep-copied at every step, nothing
    remembered, the seen-set of whole snapshots."""
    explorer = Explorer.for_scenario(scenario, exact=True, **settings)
    explorer.copy_on_write = False
    return explorer


@pytest.mark.parametrize("manifest", registry.protocols().values(), ids=registry.names())
def test_the_optimised_search_explores_what_the_plain_one_does(manifest: Manifest) -> None:
    scenario = load_scenario(small(manifest))
    for settings in ({}, {"faults": "loss,dup"}):
        fast = Explorer.for_scenario(scenario, **settings)
        expected = plain(scenario, **settings).run()
        got = fast.run()
        assert outcome(got) == outcome(expected), settings
        assert fast._cow and fast.moves.misses > 0  # it did take the fast path
        assert got.distinct == expected.distinct > 1


@pytest.mark.parametrize("manifest", registry.protocols().values(), ids=registry.names())
def test_the_search_on_workers_is_the_one_process_search(manifest: Manifest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same worlds, counts, first counterexamples and set of fingerprints on 1 to 3
    workers (forked early, so that the workers do most of the search)."""
    monkeypatch.setattr(parallel, "WARM", 1)
    scenario = load_scenario(small(manifest))
    one = Explorer.for_scenario(scenario, faults="loss")
    one.digest_states = True
    expected = one.run()
    for workers in (2, 3):
        explorer = Explorer.for_scenario(scenario, faults="loss")
        explorer.digest_states = True
        got = parallel.explore(explorer, workers)
        assert outcome(got) == outcome(expected), workers
        assert got.digest == expected.digest != ""


class Beside:
    """Shards in this process, called one after another: a pool whose traffic the test
    sees (a forked worker's is out of its reach)."""

    def __init__(self, make: Any, count: int) -> None:
        self.count = count
        self.shards = [parallel.Shard(make, i, count) for i in range(count)]
        self.given: list[int] = []  # worlds given away, at each level that evened out

    def call(self, method: str, args: Any, shards: Any = None) -> list[Any]:
        if method == "accept":
            self.given.extend(sum(a[2]) for a in args if a[2])
        chosen = range(self.count) if shards is None else shards
        return [getattr(self.shards[i], method)(*a) for i, a in zip(chosen, args, strict=True)]

    def close(self) -> None:
        pass


def test_workers_find_the_drafts_counterexample_as_one_process_does() -> None:
    """With a duplicated message the draft breaks `users_are_asked_once` (finding 10): on
    two and three shards, in the same worlds, with the same shortest counterexample; and
    worlds moved between shards to even out a level are explored where they went."""
    scenario = load_scenario(FORM)
    expected = Explorer.for_scenario(scenario, faults="dup").run()
    assert [v.invariant for v in expected.violations] == ["users_are_asked_once"]
    for count in (2, 3):
        pool = Beside(lambda: Explorer.for_scenario(scenario, faults="dup"), count)
        got = parallel.search(pool)
        assert outcome(got) == outcome(expected), count
        assert got.workers == count
        assert sum(pool.given) > 0, "no level was evened out: the moves went untested"


def test_a_level_is_evened_out_by_what_rebuilding_a_world_costs() -> None:
    """The shards over the mean give to those under it, a taker less the more a world
    costs it to rebuild (it rebuilds while the others expand); a small spread is left."""
    assert parallel.balance([100, 0]) == [(0, 1, 50)]
    assert parallel.balance([100, 0], cost=2.0) == [(0, 1, 25)]  # 75 expanded = 25 + 25 * 2
    assert parallel.balance([1000, 990]) == []  # under a fiftieth of the mean
    assert parallel.balance([2, 0]) == []  # two worlds apart, or fewer
    moves = parallel.balance([90, 0, 0, 30])
    assert all(giver in (0,) for giver, _, _ in moves)  # only what is over the mean gives
    assert sorted((taker, count) for _, taker, count in moves) == [(1, 30), (2, 30)]


def test_a_worker_that_dies_is_reported_not_hung_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker the operating system kills (most often for memory) ends the search with
    an error that says so and how it died, not with a bare EOFError from its pipe."""
    import signal

    from runtime.errors import LocalError

    monkeypatch.setattr(parallel, "WARM", 4)
    parent, expand = os.getpid(), parallel.Shard.expand

    def dying(self: parallel.Shard, *taken: Any) -> Any:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return expand(self, *taken)

    monkeypatch.setattr(parallel.Shard, "expand", dying)
    with pytest.raises(LocalError, match=r"worker \d of the parallel search died \(exit code -9"):
        parallel.explore(Explorer.for_scenario(load_scenario(FORM), faults="dup"), 2)


def test_the_command_uses_the_workers_it_is_given(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A search too small to share is finished by the first process: fork at 4 worlds a worker.
    monkeypatch.setattr(parallel, "WARM", 4)
    results = {}
    for workers in ("1", "2"):
        assert main(["explore", str(FORM), "--faults", "loss", "--workers", workers, "--json"]) == 0
        results[workers] = json.loads(capsys.readouterr().out)
    one, two = results["1"], results["2"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for key in ("states", "transitions", "subsumed", "distinct", "complete", "violations", "unhandled"):
        assert one[key] == two[key], key
    assert main(["explore", str(FORM), "--workers", "2", "--search", "dfs"]) == 2
    assert "breadth-first" in capsys.readouterr().err
    assert main(["explore", str(FORM), "--workers", "2", "--exact"]) == 2
    assert "one worker" in capsys.readouterr().err


def test_a_cluster_of_two_workers_explores_what_one_process_does(capsys: pytest.CaptureFixture[str]) -> None:
    """A Dask scheduler and two worker processes on loopback, started here; the shards
    run as actors on them and the result is the one-process search's."""
    distributed = pytest.importorskip("distributed")
    assert main(["explore", str(FORM), "--faults", "loss,dup", "--workers", "1", "--json"]) == 1
    expected = json.loads(capsys.readouterr().out)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert main(["explore", str(FORM), "--faults", "loss,dup", "--cluster", cluster.scheduler_address,
                     "--json"]) == 1
        got = json.loads(capsys.readouterr().out)
        with distributed.Client(cluster.scheduler_address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
    assert got["workers"] == 2
    for key in ("states", "transitions", "subsumed", "distinct", "complete", "unhandled"):
        assert got[key] == expected[key], key
    assert [(v["invariant"], v["choices"]) for v in got["violations"]] == \
        [(v["invariant"], v["choices"]) for v in expected["violations"]]


def test_a_cluster_address_where_nothing_listens_is_a_clear_error(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    from fsmc import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    assert main(["explore", str(FORM), "--cluster", "tcp://127.0.0.1:9"]) == 2
    assert "no Dask scheduler answers there" in capsys.readouterr().err


# --- fingerprints


def test_fingerprints_do_not_depend_on_the_process() -> None:
    """Python's hash of a string changes with PYTHONHASHSEED; the fingerprints, which
    workers on other machines must agree on, do not."""
    script = ("from pathlib import Path; from fsmc.build import load_scenario; "
              "from runtime.harness.explore import Explorer; "
              f"e = Explorer.for_scenario(load_scenario(Path({str(FORM)!r})), faults='loss'); "
              "e.digest_states = True; print(e.run().digest)")
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        digests.add(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                   check=True, cwd=ROOT).stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 32


def test_canonical_encoding_tells_values_apart_and_ignores_set_order() -> None:
    assert canonical(frozenset({"a", "b", "c"})) == canonical(frozenset({"c", "b", "a"}))
    assert canonical({"x": 1, "y": (2, b"z")}) == canonical({"y": (2, b"z"), "x": 1})
    distinct = [None, True, False, 0, 1, "1", b"1", 1.0, (), ("",), ((),), frozenset(), (1, 2), (12,), "a", ("a",)]
    assert len({canonical(v) for v in distinct}) == len(distinct)
    with pytest.raises(TypeError, match="no stable encoding"):
        canonical(object())


def test_the_collision_probability_is_the_birthday_bound() -> None:
    assert 1.4e-21 < PROBABILITY_AT_1E9 < 1.6e-21  # 128 bits
    assert 0.02 < collision_probability(10**9, bits=64) < 0.03  # as TLC's 64-bit fingerprints
    assert collision_probability(1) == 0.0


def test_a_seen_set_of_fingerprints_takes_less_memory_than_one_of_snapshots() -> None:
    scenario = load_scenario(FORM)
    fingerprints = Explorer.for_scenario(scenario, faults="loss").run()
    snapshots = Explorer.for_scenario(scenario, faults="loss", exact=True).run()
    assert outcome(fingerprints) == outcome(snapshots)
    assert 0 < fingerprints.bytes_per_state < snapshots.bytes_per_state


# --- copy-on-write


def test_parties_that_share_a_mutable_object_are_copied_whole() -> None:
    explorer = Explorer.for_scenario(load_scenario(FORM))
    world = explorer.initial()
    assert explorer._cow and not parties_share(world.sim)
    shared: list[int] = []
    for party in world.parties.values():
        party.device.shared = shared  # type: ignore[attr-defined]
        party.device.COPIED = (*party.device.COPIED, "shared")  # type: ignore[misc]
    assert parties_share(world.sim)


def test_a_world_and_its_successor_share_the_parties_the_step_left_alone() -> None:
    explorer = Explorer.for_scenario(load_scenario(FORM))
    world = explorer.initial()
    choice = next(c for c in explorer.choices(world) if c.kind == "deliver")
    before = {name: copy.deepcopy(p.device.snapshot()) for name, p in world.parties.items()}
    nxt = explorer.apply(world, choice)
    for name, p in nxt.parties.items():
        assert (p is world.parties[name]) == (name != choice.party)
    assert {name: p.device.snapshot() for name, p in world.parties.items()} == before  # left as it was
    again = explorer.apply(world, choice)  # remembered: the very party object again
    assert again.parties[choice.party] is nxt.parties[choice.party]
    assert explorer.fingerprint(again) == explorer.fingerprint(nxt)


def test_the_report_counts_remembered_steps_and_reused_cryptography(capsys: pytest.CaptureFixture[str]) -> None:
    explorer = Explorer.for_scenario(load_scenario(FORM), faults="loss,dup")
    report = explorer.run()
    replayed, taken = report.moves
    assert replayed > taken > 0 and replayed + taken == explorer.moves.hits + explorer.moves.misses
    reused, computed = report.pure
    assert reused > 0 and computed > 0  # the same envelopes reach the same keys in other worlds
    assert main(["explore", str(FORM), "--faults", "loss", "--workers", "1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["moves"]["replayed"] > 0 and set(shown["pure"]) == {"reused", "computed"}
