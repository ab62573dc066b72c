"""Parties as separate processes over Redis Streams, each with its store (`fsmc run`).

Every protocol's scenarios that make sense over a real network run as one OS process
per party, with a redis-server the tests start (runtime.net.redisserver), and end as the
simulator's do. A party killed with SIGKILL right after any of its steps' commits (before
it wrote what the step sent) and restarted from its store, and a broker restarted in the
middle of a run, change nothing of the outcome."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from fsmc.build import load_scenario
from fsmc.run import Run, run_scenario
from runtime.harness.simulation import Result, Simulation
from runtime.net.redisserver import RedisServer

pytestmark = pytest.mark.redis

SCENARIOS = ROOT / "protocols"


@pytest.fixture(scope="module")
def redis_server() -> Any:
    with RedisServer() as server:
        yield server


def _simulated(path: Path) -> Result:
    return Simulation(load_scenario(path)).run()


# Each ends as its simulation does, keys included, whatever the processes' timing: a
# sequential scenario has one outcome.
# KeySync's join_group starts all three devices at once, and over a real network a grouped
# device may start after the new device's Beacon: the handshakes then cross and can stall
# (docs/running.md, "What real runs found"); join_settled_group starts the group first.
SAME_AS_SIMULATED = [
    "keysync/form_group", "keysync/join_settled_group", "mpenc/establish", "mpenc/sequence5", "berty/contact_accepted",
    "bisonrelay/accepted_invite", "bisonrelay/chat_conversation", "status/paired_device",
]


@pytest.mark.parametrize("name", SAME_AS_SIMULATED)
def test_a_scenario_runs_as_processes_over_redis_and_ends_as_simulated(name: str, redis_server: Any,
                                                                     tmp_path: Path) -> None:
    path = SCENARIOS / f"{name.split('/')[0]}/scenarios/{name.split('/')[1]}.toml"
    result, run = run_scenario(path, "redis", redis_url=redis_server.url, store=tmp_path)
    assert result.ok, result.failures
    assert result.parties == _simulated(path).parties
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.sqlite" for n in result.parties)
    sends = [e for e in result.trace if e.kind == "send"]
    receives = {(e.seq, e.party) for e in result.trace if e.kind == "receive"}
    assert sends and receives  # the merged trace pairs them by the senders' sequence numbers
    assert {seq for seq, _ in receives} <= {e.seq for e in sends}


@pytest.mark.parametrize("name", ["keysync/form_group", "keysync/join_settled_group", "mpenc/establish",
                                  "bisonrelay/accepted_invite", "status/first_message"])
def test_parties_over_tcp_end_as_simulated(name: str, tmp_path: Path) -> None:
    """Loopback TCP, no broker: the first party by name orders the channel for all (three
    devices in the join, three members in mpENC's establish)."""
    path = SCENARIOS / f"{name.split('/')[0]}/scenarios/{name.split('/')[1]}.toml"
    result, _ = run_scenario(path, "tcp", store=tmp_path)
    assert result.ok, result.failures
    assert result.parties == _simulated(path).parties


def test_the_tcp_hub_orders_the_channel_for_every_peer_and_turns_strangers_away() -> None:
    """Three parties: each reads the channel in the hub's one order, its own posts
    included, what was posted before it connected too; a connection that names no party
    of the run, or one connected already, is closed unheard."""
    from runtime.net.redisserver import free_port
    from runtime.net.tcp import TcpTransport, _frame, _read_frame

    port = free_port()
    addresses = {name: ("127.0.0.1", port) for name in ("a", "b", "c")}

    async def main() -> None:
        hub, b, c = (TcpTransport(name, addresses, index=i) for i, name in enumerate("abc"))
        await hub.connect()
        for t in (hub, b, c):
            t.attach(t.party)
        hub.post("a", "channel", b"from a")
        await hub.flush()
        await b.connect()
        b.post("b", "channel", b"from b")
        await b.flush()
        for stranger in ("mallory", "b"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_frame({"op": "hello", "party": stranger}))
            assert await asyncio.wait_for(_read_frame(reader), 5) is None  # closed, nothing given
            writer.close()
        await c.connect()
        c.post("c", "channel", b"from c")
        await c.flush()
        seen: dict[str, list[bytes]] = {}
        for t in (hub, b, c):
            got: list[bytes] = []
            while len(got) < 3:
                got += [d.data for d, _ in await t.read(2000)]
            seen[t.party] = got
        assert seen["a"] == seen["b"] == seen["c"] == [b"from a", b"from b", b"from c"]
        for t in (c, b, hub):
            await t.close()

    asyncio.run(main())


def test_the_memory_transport_runs_the_same_driver_in_one_process(tmp_path: Path) -> None:
    path = SCENARIOS / "keysync/scenarios/join_settled_group.toml"
    result, _ = run_scenario(path, "memory", store=tmp_path)
    assert result.ok, result.failures
    assert result.parties == _simulated(path).parties


def _steps_taken(path: Path, redis_url: str, tmp: Path) -> dict[str, int]:
    run = Run(path, redis_url, tmp)
    try:
        run.start_workers()
        for step in run.scenario.steps:
            run.step(step)
        return {name: status["committed"] for name, status in run.poll().items()}
    finally:
        run.finish()
        run.stop()


CRASHED = ["keysync/form_group", "mpenc/establish"]


def _crash_runs(path: Path, redis_url: str, tmp: Path, kind: str) -> list[tuple[str, int, Result, Run]]:
    """A run per (party, step k) with that party killed at its k-th step (`kind`: die_after,
    or die_before), several at a time: each run is its own processes, streams and stores,
    and mostly waits."""
    steps = _steps_taken(path, redis_url, tmp / "reference")
    assert all(n > 1 for n in steps.values()), steps
    cases = [(party, k) for party, count in steps.items() for k in range(1, count + 1)]

    def one(case: tuple[str, int]) -> tuple[str, int, Result, Run]:
        party, k = case
        result, run = run_scenario(path, "redis", redis_url=redis_url, store=tmp / f"{party}-{k}",
                                   **{kind: {party: k}})  # type: ignore[arg-type]
        return party, k, result, run
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, cases))


@pytest.mark.parametrize("name", CRASHED)
def test_a_party_killed_after_any_step_and_restarted_from_its_store_changes_nothing(
        name: str, redis_server: Any, tmp_path: Path) -> None:
    path = SCENARIOS / f"{name.split('/')[0]}/scenarios/{name.split('/')[1]}.toml"
    reference = _simulated(path)
    for party, k, result, run in _crash_runs(path, redis_server.url, tmp_path, "die_after"):
        assert run.restarts == {party: 1}, (party, k, run.restarts)
        assert result.ok, (party, k, result.failures)
        # The same states and keys as without a crash; nothing applied twice: each party
        # received each message once.
        assert result.parties == reference.parties, (party, k)
        received = [(e.party, e.seq) for e in result.trace if e.kind == "receive"]
        assert len(received) == len(set(received)), (party, k)


def test_a_party_killed_inside_a_step_reads_its_delivery_again_and_changes_nothing(
        redis_server: Any, tmp_path: Path) -> None:
    """SIGKILL before the commit of a step that took a delivery: the delivery's position
    was not committed, so the restarted party reads it again and takes the step anew.
    (KeySync's run; mpENC's takes as long again and shows the same.)"""
    path = SCENARIOS / "keysync/scenarios/form_group.toml"
    reference = _simulated(path)
    runs = _crash_runs(path, redis_server.url, tmp_path, "die_before")
    for party, k, result, _ in runs:
        assert result.ok, (party, k, result.failures)
        assert result.parties == reference.parties, (party, k)
    crashed = {party for party, _, _, run in runs if run.restarts.get(party)}
    assert crashed == {party for party, _, _, _ in runs}  # each party died inside a delivery's step


def test_a_broker_restart_in_the_middle_of_a_run_is_a_pause(tmp_path: Path) -> None:
    """redis-server stopped and started again (its data kept) while the parties run: they
    reconnect with backoff and complete."""
    path = SCENARIOS / "keysync/scenarios/form_group.toml"
    with RedisServer() as server:
        run = Run(path, server.url, tmp_path)
        try:
            run.start_workers()
            steps = run.scenario.steps
            run.step(steps[0])
            server.stop()
            time.sleep(0.5)  # the parties find the broker gone
            threading.Timer(1.0, server.start).start()
            for step in steps[1:]:
                run.step(step)
            result = run.finish()
        finally:
            run.stop()
    assert result.ok, result.failures
    assert result.parties == _simulated(path).parties


def test_fsmc_run_prints_the_chart_and_the_same_json_as_simulate(redis_server: Any, tmp_path: Path) -> None:
    path = SCENARIOS / "keysync/scenarios/form_group.toml"
    out = subprocess.run([sys.executable, "-m", "fsmc", "run", str(path), "--redis-url", redis_server.url,
                          "--store", str(tmp_path), "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    ran = json.loads(out.stdout)
    simulated = _simulated(path).json()
    assert ran.keys() == simulated.keys() and ran["ok"] and ran["parties"] == simulated["parties"]
    assert {e["kind"] for e in ran["trace"]} >= {"send", "receive", "state"}
    text = subprocess.run([sys.executable, "-m", "fsmc", "run", str(path), "--transport", "memory"],
                          capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "laptop" in text.stdout and text.stdout.rstrip().endswith("ok")


def test_fsmc_run_with_a_damaged_store_names_the_file_and_writes_nothing(redis_server: Any, tmp_path: Path) -> None:
    path = SCENARIOS / "keysync/scenarios/form_group.toml"
    damaged = tmp_path / "laptop.sqlite"
    damaged.write_bytes(b"not a database, truncated" * 100)
    before = damaged.read_bytes()
    out = subprocess.run([sys.executable, "-m", "fsmc", "run", str(path), "--redis-url", redis_server.url,
                          "--store", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert f"{damaged}: not a store, or damaged" in out.stderr, out.stderr
    assert damaged.read_bytes() == before


def test_redis_streams_give_a_late_joiner_the_log_and_a_restarted_reader_what_it_had_not_taken(
        redis_server: Any) -> None:
    """runtime.net.redis on its own: posts to an address wait in its stream; a party that
    subscribes later reads them from the start, in order; a transport restored from
    committed positions reads on after the last consumed entry, and no earlier one."""
    from runtime.net.redis import RedisTransport

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        names = ["alice", "bob"]
        alice = RedisTransport(redis_server.url, "t-late", "alice", names, index=0)
        bob = RedisTransport(redis_server.url, "t-late", "bob", names, index=1)
        for t in (alice, bob):
            await t.connect()
            t.attach(t.party, ("channel",))
        for i in range(3):
            alice.post("alice", "channel", b"log %d" % i, to="rv:log")
        await alice.flush()
        bob.subscribe("bob", "rv:log")
        first = await bob.read(100)
        late = [d.data for d, _ in first]
        for _, position in first[:2]:
            bob.consume(position)  # two steps committed; the third was read, not committed
        committed = bob.positions()
        await bob.close()
        again = RedisTransport(redis_server.url, "t-late", "bob", names, index=1)
        await again.connect()
        again.attach("bob", ("channel",))
        again.subscribe("bob", "rv:log")
        again.restore(committed)
        resumed = [d.data for d, _ in await again.read(100)]
        alice.post("alice", "channel", b"to all")
        await alice.flush()
        channel = [d.data for d, _ in await again.read(100)]
        waiting_after = await again.waiting()
        for t in (alice, again):
            await t.close()
        assert not waiting_after
        return late, resumed, channel

    late, resumed, channel = asyncio.run(scenario())
    assert late == [b"log 0", b"log 1", b"log 2"]
    assert resumed == [b"log 2"]
    assert channel == [b"to all"]
