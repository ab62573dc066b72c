"""`fsmc run`: a scenario's parties as separate OS processes over a real transport.

The coordinator (`Run`) starts one worker process per party (`python -m fsmc.run worker
...`), each with its own store (runtime.store) under the run's store directory, and
plays the scenario's steps: a start or an event goes to its party's worker; `deliver`
waits until the run is quiet (every worker idle, no step taken for a while); `advance`
moves every party's clock. The workers write their trace entries as JSON lines as their
steps complete; the coordinator merges them by time into one sequence chart, and at the
end rebuilds each party's device from the record its worker reports, to check the
scenario's expectations as `fsmc simulate` does and print the same JSON summary.

A worker is an asyncio driver (runtime.aio) over Redis Streams (runtime.net.redis) or
loopback TCP to the first party by name (runtime.net.tcp); with `--transport memory` the parties
are tasks of this process on one in-memory network (runtime.net.memory). With
`--transport redis` and no `--redis-url` the coordinator starts a redis-server of its own
(runtime.net.redisserver) and stops it at the end. The store key is the run's, random,
handed to the workers in their environment (FSMC_STORE_KEY), never on a command line.
A worker that dies is restarted by `restart(name)` from its store: what the crash tests
do (tests/test_run.py). SIGUSR1 makes a worker print where each of its tasks waits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fsmc.build import load_scenario
from runtime.durable import DurableParty, PartyRecord, record_of, restore
from runtime.errors import ScenarioError
from runtime.harness.simulation import Result, Scenario, Simulation, scenario_devices, scenario_party
from runtime.party import Party, TraceEntry
from runtime.store import Store, new_key
from runtime.values import Values

__all__ = ["Run", "run_scenario"]

QUIET_POLLS = 3  # polls in a row with every worker idle and no new step
POLL = 0.06  # seconds between polls (a worker's read waits up to READ_BLOCK_MS for news)


# --- the worker: one party, one process


def _party_for(scenario: Scenario, name: str, transport: Any, clock: Any) -> Party:
    """The party as the simulator builds it (the same devices from the same seeds), on
    `transport` under `clock`."""
    # make_devices builds every party's device from one random source: this one's is
    # the same only when all are built; the others are dropped.
    _, _, devices = scenario_devices(scenario)
    return scenario_party(scenario, name, devices[name], transport, clock, [])


async def serve(scenario: Scenario, name: str, transport: Any, store_dir: Path, key: bytes,
                commands: Any, emit: Callable[[str, Any], None], *, die_after: int | None = None,
                die_before: int | None = None) -> None:
    """One party: built as the simulator builds it, resumed from its store if it has one,
    driven by runtime.aio over `transport`; `commands` (an async iterator of dicts) are
    the coordinator's, `emit(kind, value)` its answers and the trace."""
    from runtime.aio import AsyncParty, WallClock

    clock = WallClock()
    party = _party_for(scenario, name, transport, clock)
    values = Values(scenario.machines)
    path = store_dir / f"{name}.sqlite"
    protocol = scenario.protocol.name
    store = (Store.open(path, key, party=name, protocol=protocol) if path.exists()
             else Store.create(path, key, party=name, protocol=protocol))
    durable = DurableParty.resume(party, store, values, autopost=False, positions=transport.positions,
                                  clock_offset=lambda: clock.offset)
    if durable.record is not None:
        transport.restore(durable.record.positions)
        clock.offset = durable.record.clock_offset
    driver = AsyncParty(party, transport, clock, durable=durable, before_event=scenario.protocol.before_event,
                        on_trace=lambda e: emit("trace", e._asdict()))
    if die_after is not None or die_before is not None:
        # The crash tests': SIGKILL right after the commit of step `die_after` (nothing of it
        # written yet), or inside the first step from `die_before` on that takes a delivery,
        # before its commit (the delivery is read again after the restart).
        original = durable._commit

        def commit_and_die() -> None:
            if (die_before is not None and durable.step + 1 >= die_before and driver.current == "deliver"):
                os.kill(os.getpid(), signal.SIGKILL)
            original()
            if durable.step == die_after:
                os.kill(os.getpid(), signal.SIGKILL)
        durable._commit = commit_and_die  # type: ignore[method-assign]
    await transport.connect()
    emit("ready", {"step": durable.step, "resumed": durable.record is not None})
    runner = asyncio.create_task(driver.run())
    try:
        async for command in commands:
            what = command["cmd"]
            if what == "start":
                driver.start()
            elif what == "event":
                driver.event(command["name"], command.get("step"))
            elif what == "advance":
                driver.advance(float(command["seconds"]))
            elif what == "status":
                if runner.done():
                    runner.result()  # a step that raised: the worker ends with its error
                emit("status", {"idle": await driver.quiet(), "steps": driver.steps, "state": party.machine.state_name,
                                "committed": durable.step})
            elif what == "finish":
                driver.stop()
                await runner
                record = record_of(party, transport.positions(), clock.offset)
                emit("final", {"record": values.encode(record).decode()})
                break
    finally:
        if not runner.done():
            runner.cancel()
        await transport.close()
        store.close()


async def _stdin_commands() -> Any:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield json.loads(line)


async def _worker(args: argparse.Namespace) -> int:
    from runtime.net.redis import RedisTransport

    def dump_tasks() -> None:  # SIGUSR1: where every task of the worker is waiting, to stderr
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)

    scenario = load_scenario(Path(args.scenario))
    names = [p["name"] for p in scenario.parties]
    transport: Any
    if args.tcp:
        from runtime.net.tcp import TcpTransport

        addresses = {}
        for item in args.tcp.split(","):
            party, _, where = item.partition("=")
            host, _, port = where.rpartition(":")
            addresses[party] = (host, int(port))
        transport = TcpTransport(args.party, addresses, index=names.index(args.party))
    else:
        transport = RedisTransport(args.redis_url, args.namespace, args.party, names, index=names.index(args.party))

    def emit(kind: str, value: Any) -> None:
        sys.stdout.write(json.dumps({kind: value}) + "\n")
        sys.stdout.flush()

    await serve(scenario, args.party, transport, Path(args.store), bytes.fromhex(os.environ["FSMC_STORE_KEY"]),
                _stdin_commands(), emit, die_after=args.die_after, die_before=args.die_before)
    return 0


# --- the coordinator


@dataclass
class Worker:
    """A party's worker as the coordinator sees it: commands in, lines out."""

    name: str
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    status: dict[str, Any] = field(default_factory=dict)

    def send(self, command: dict[str, Any]) -> None:
        raise NotImplementedError

    def poll(self) -> int | None:
        """None while it runs, else its exit code."""
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError


@dataclass
class ProcessWorker(Worker):
    """A worker process (`python -m fsmc.run worker`), over Redis."""

    process: subprocess.Popen[bytes] | None = None

    def send(self, command: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died: the coordinator sees it at its next poll

    def poll(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class LocalWorker(Worker):
    """A party as an asyncio task of this process (the memory transport)."""

    loop: asyncio.AbstractEventLoop | None = None
    commands: asyncio.Queue[dict[str, Any] | None] | None = None
    task: Any = None  # a concurrent.futures.Future of the task

    def send(self, command: dict[str, Any]) -> None:
        assert self.loop is not None and self.commands is not None
        self.loop.call_soon_threadsafe(self.commands.put_nowait, command)

    def poll(self) -> int | None:
        return None if not self.task.done() else (1 if self.task.exception() else 0)

    def wait(self, timeout: float | None = None) -> int:
        self.task.result(timeout)
        return 0

    def kill(self) -> None:
        if not self.task.done():
            self.send({"cmd": "finish"})


class Run:
    """A scenario's parties as workers, the steps played from here: worker processes over
    Redis (`redis_url`), or, with `redis_url=None`, asyncio tasks of this process on one
    in-memory network."""

    def __init__(self, scenario_path: Path, redis_url: str | None, store: Path, *, transport: str | None = None,
                 die_after: dict[str, int] | None = None, die_before: dict[str, int] | None = None) -> None:
        self.path = Path(scenario_path)
        self.scenario = load_scenario(self.path)
        self.redis_url = redis_url
        self.transport = transport or ("memory" if redis_url is None else "redis")
        if self.transport == "tcp":
            from runtime.net.redisserver import free_port

            self.tcp = ",".join(f"{p['name']}=127.0.0.1:{free_port()}" for p in self.scenario.parties)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._network: Any = None
        self.store = Path(store)
        self.store.mkdir(parents=True, exist_ok=True)
        self.namespace = f"fsmc:{uuid.uuid4().hex[:12]}"
        self.key = new_key()
        self.die_after = dict(die_after or {})
        self.die_before = dict(die_before or {})
        self.trace: list[TraceEntry] = []
        self.finals: dict[str, dict[str, Any]] = {}
        self.workers: dict[str, Worker] = {}
        self.restarts: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- processes

    def _spawn(self, name: str, die_after: int | None = None, die_before: int | None = None) -> Worker:
        worker: Worker
        if self.transport == "memory":
            worker = self._spawn_local(name)
        else:
            command = [sys.executable, "-m", "fsmc.run", "worker", str(self.path), "--party", name,
                       "--namespace", self.namespace, "--store", str(self.store)]
            command += ["--tcp", self.tcp] if self.transport == "tcp" else ["--redis-url", str(self.redis_url)]
            if die_after is not None:
                command += ["--die-after", str(die_after)]
            if die_before is not None:
                command += ["--die-before", str(die_before)]
            env = dict(os.environ, FSMC_STORE_KEY=self.key.hex())
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            worker = ProcessWorker(name, process=process)
            threading.Thread(target=self._read, args=(worker, process.stdout), daemon=True).start()
        return worker

    def _ready(self, worker: Worker) -> Worker:
        ready = self._expect(worker, "ready", timeout=60)
        worker.status = {"committed": ready["step"]}
        return worker

    def _spawn_local(self, name: str) -> Worker:
        from runtime.harness.network import InMemoryNetwork
        from runtime.net.memory import MemoryLink

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, daemon=True).start()
            self._network = InMemoryNetwork(mailboxes=self.scenario.protocol.mailboxes)
        loop = self._loop
        worker = LocalWorker(name, loop=loop)

        def emit(kind: str, value: Any) -> None:
            if kind == "trace":
                with self._lock:
                    self.trace.append(TraceEntry(**value))
            else:
                worker.lines.put({kind: value})

        async def commands() -> Any:
            while (command := await worker.commands.get()) is not None:  # type: ignore[union-attr]
                yield command

        async def party() -> None:
            worker.commands = asyncio.Queue()
            try:
                await serve(self.scenario, name, MemoryLink(self._network, name), self.store, self.key,
                            commands(), emit)
            finally:
                worker.lines.put({"eof": True})
        worker.task = asyncio.run_coroutine_threadsafe(party(), loop)
        return worker

    def _read(self, worker: Worker, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for raw in stream:
            message = json.loads(raw)
            if "trace" in message:
                with self._lock:
                    self.trace.append(TraceEntry(**message["trace"]))
            else:
                worker.lines.put(message)
        worker.lines.put({"eof": True})

    def _expect(self, worker: Worker, kind: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = worker.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{worker.name}: no {kind} within {timeout} s") from None
            if kind in message:
                return message[kind]
            if "eof" in message:
                raise ChildProcessError(f"{worker.name}: the worker ended (exit {worker.wait()})")

    def start_workers(self) -> None:
        """Every party's worker, started together (each builds its party), then ready."""
        for spec in self.scenario.parties:
            name = spec["name"]
            self.workers[name] = self._spawn(name, self.die_after.get(name), self.die_before.get(name))
        for worker in self.workers.values():
            self._ready(worker)

    def restart(self, name: str) -> None:
        """The worker's process died: start it again, from its store."""
        old = self.workers[name]
        old.wait()
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self.workers[name] = self._ready(self._spawn(name))

    def _alive(self) -> None:
        """Restart the workers that died (a crash test's SIGKILL)."""
        for name, worker in list(self.workers.items()):
            if worker.poll() is not None:
                self.restart(name)

    # --- steps

    def poll(self) -> dict[str, dict[str, Any]]:
        self._alive()
        for worker in self.workers.values():
            worker.send({"cmd": "status"})
        for name, worker in self.workers.items():
            try:
                worker.status = self._expect(worker, "status", timeout=120)
            except ChildProcessError:
                self.restart(name)
                return self.poll()
        return {name: w.status for name, w in self.workers.items()}

    def wait_quiet(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        calm, last = 0, None
        while calm < QUIET_POLLS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path.name}: the run did not settle within {timeout} s")
            time.sleep(POLL)
            status = self.poll()
            steps = {name: s["steps"] for name, s in status.items()}
            idle = all(s["idle"] for s in status.values())
            calm = calm + 1 if idle and steps == last else 0
            last = steps

    def _targets(self, step: dict[str, Any]) -> list[str]:
        if "in_state" in step:
            status = self.poll()  # the run is quiet: as the simulator, no party there is an error
            found = [n for n in self.workers if status[n]["state"] == step["in_state"]]
            if not found:
                states = ", ".join(f"{n} in {s['state']}" for n, s in status.items())
                raise ScenarioError(f"{self.path}: step {step}: no party is in {step['in_state']} ({states})")
            return found[: int(step.get("count", 1))]
        who = step.get("party", "all")
        return list(self.workers) if who == "all" else [who]

    def step(self, step: dict[str, Any], timeout: float = 120) -> None:
        """Play one scenario step; each waits until the run is quiet (within `timeout`)."""
        self._alive()
        if "start" in step:
            for name in self._targets(step):
                self.workers[name].send({"cmd": "start"})
            self.wait_quiet(timeout)
        elif "event" in step:
            for name in self._targets(step):
                self.workers[name].send({"cmd": "event", "name": step["event"], "step": step})
            self.wait_quiet(timeout)
        elif "deliver" in step:
            self.wait_quiet(timeout)
        elif "advance" in step:
            for worker in self.workers.values():
                worker.send({"cmd": "advance", "seconds": float(step["advance"])})
            self.wait_quiet(timeout)

    def finish(self) -> Result:
        self.wait_quiet()
        for worker in self.workers.values():
            worker.send({"cmd": "finish"})
        for name, worker in self.workers.items():
            self.finals[name] = self._expect(worker, "final", timeout=120)
            worker.wait(timeout=30)
        return self._result()

    def _result(self) -> Result:
        """The parties as their workers left them, checked as the simulator checks them."""
        sim = Simulation(self.scenario)
        values = Values(self.scenario.machines)
        for name, final in self.finals.items():
            record = values.decode(final["record"].encode())
            assert isinstance(record, PartyRecord)
            restore(sim.parties[name], record)
        with self._lock:
            trace = sorted(self.trace, key=lambda e: (e.time, e.kind != "send"))
        sim.trace[:] = trace
        return Result(sim.summary(), trace, sim.check(), list(sim.parties))

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.kill()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def play(self) -> Result:
        try:
            self.start_workers()
            for step in self.scenario.steps:
                self.step(step)
            return self.finish()
        finally:
            self.stop()


TRANSPORTS = ("memory", "redis", "tcp")


def run_scenario(path: Path, transport: str = "redis", *, redis_url: str | None = None, store: Path | None = None,
                 die_after: dict[str, int] | None = None,
                 die_before: dict[str, int] | None = None) -> tuple[Result, Run]:
    """Play a scenario: over Redis (a server of its own when no URL is given), or as tasks
    of this process on the in-memory network. Stores in `store`, else a temporary directory."""
    from runtime.net.redisserver import RedisServer

    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r}: one of {', '.join(TRANSPORTS)}")
    with tempfile.TemporaryDirectory(prefix="fsmc-run-") as tmp:
        where = Path(store) if store is not None else Path(tmp) / "stores"
        if transport != "redis" or redis_url is not None:
            run = Run(path, redis_url if transport == "redis" else None, where, transport=transport,
                      die_after=die_after, die_before=die_before)
            return run.play(), run
        with RedisServer() as server:
            run = Run(path, server.url, where, die_after=die_after, die_before=die_before)
            return run.play(), run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsmc.run")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="one party of a run (started by the coordinator)")
    worker.add_argument("scenario")
    worker.add_argument("--party", required=True)
    worker.add_argument("--redis-url")
    worker.add_argument("--tcp", metavar="A=HOST:PORT,B=HOST:PORT,...",
                        help="TCP to the first party by name, not Redis: every party's address")
    worker.add_argument("--namespace", required=True)
    worker.add_argument("--store", required=True)
    worker.add_argument("--die-after", type=int, default=None, help="crash tests: SIGKILL after step N's commit")
    worker.add_argument("--die-before", type=int, default=None,
                        help="crash tests: SIGKILL before the commit of the first delivery step from N on")
    args = parser.parse_args(argv)
    return asyncio.run(_worker(args))


if __name__ == "__main__":
    sys.exit(main())
