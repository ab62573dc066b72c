"""Scenarios: a protocol's executable test vectors, run on the in-memory network.

A scenario file (TOML; the format is documented in docs/scenarios.md) names its protocol
(the registry's name: its manifest says how to build the parties' devices and what its
expectations mean), the parties, the steps, the fault model with its seed, and what must
hold at the end. One seed reproduces a run exactly: every random choice (TIDs, keys,
faults) comes from it.

The machines a scenario runs come from a loader given to `load_scenario`: the compiler's
(`fsmc.build.load_scenario` compiles the protocol's DSL file as it is on disk), or by
default the protocol's committed module generated.<name>, for applications that run
without the compiler.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from runtime import registry
from runtime.copying import Copier, copy_fields, share, values
from runtime.errors import LocalError, ScenarioError
from runtime.harness.network import FaultModel, InMemoryNetwork
from runtime.manifest import Manifest
from runtime.party import Party, TraceEntry
from runtime.seeded import SeededRandom
from runtime.transport import Transport

__all__ = ["Result", "Scenario", "ScenarioError", "Simulation", "load_scenario", "trace_json"]

MAX_DELIVERIES = 100_000


# The [expect] keys every protocol has; a manifest adds its own (`expectations`).
EXPECT = ("state", "same_keys", "different_keys", "sent", "timeouts")
EXPLORE = ("faults", "max_faults", "max_depth", "max_states", "user_events", "timeouts", "signals", "invariants",
           "search", "prefix", "exact")
Machines = Callable[[Manifest], ModuleType]


@dataclass
class Scenario:
    path: Path
    description: str
    protocol: Manifest
    machines: ModuleType  # the compiled protocol: machine classes and CODEC
    fsm: str  # the machine class the parties run
    seed: int
    faults: FaultModel
    parties: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    expect: dict[str, Any]
    explore: dict[str, Any] = field(default_factory=dict)  # the explorer's settings

    def __deepcopy__(self, memo: dict[int, Any]) -> Scenario:
        return self  # read-only once loaded: copies of a world (the explorer's) share it


def _need(data: dict[str, Any], key: str, kind: type, path: Path, where: str = "") -> Any:
    if key not in data:
        raise ScenarioError(f"{path}: missing {where}{key}")
    if not isinstance(data[key], kind):
        raise ScenarioError(f"{path}: {where}{key} must be a {kind.__name__}")
    return data[key]


def _known(table: dict[str, Any], known: tuple[str, ...] | list[str], path: Path, where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ScenarioError(f"{path}: [{where}] has no key {', '.join(unknown)} (it has {', '.join(sorted(known))})")


def _read_scenario(path: Path, seen: frozenset[Path]) -> dict[str, Any]:
    """A scenario file's table. `based_on = "other.toml"` (relative to the file) starts from
    another scenario's table, whose top-level keys the file's own replace: the pEp engine's
    KeySync runs the draft's scenarios with `protocol = "keysync_engine"` and nothing else."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"{path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: {e}") from e
    base = data.pop("based_on", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ScenarioError(f"{path}: based_on: expected the path of a scenario file")
    other = (path.parent / base).resolve()
    if other in seen or other == path.resolve():
        raise ScenarioError(f"{path}: based_on: {base} is based on this file")
    return {**_read_scenario(other, seen | {path.resolve()}), **data}


def load_scenario(path: Path, machines: Machines | None = None) -> Scenario:
    """Read a scenario file; `machines` gives the compiled protocol (default: its
    committed generated module). ScenarioError names the file and what is wrong."""
    data = _read_scenario(path, frozenset())
    name = _need(data, "protocol", str, path)
    try:
        manifest = registry.get(name)
    except LocalError as e:
        raise ScenarioError(f"{path}: protocol: {e}") from e
    faults = data.get("faults", {})
    try:
        fault_model = FaultModel(**faults)
    except TypeError as e:
        raise ScenarioError(f"{path}: [faults]: {e}") from e
    parties = _need(data, "party", list, path)
    names = [_need(p, "name", str, path, "party.") for p in parties]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{path}: two parties with one name")
    steps = _need(data, "step", list, path)
    for i, step in enumerate(steps, 1):
        if "party" in step and step["party"] not in names and step["party"] != "all":
            raise ScenarioError(f"{path}: step {i}: unknown party {step['party']!r}")
    expect = data.get("expect", {})
    _known(expect, [*EXPECT, *manifest.expectations], path, "expect")
    explore = data.get("explore", {})
    _known(explore, EXPLORE, path, "explore")
    if machines is not None:
        module = machines(manifest)  # its errors are the loader's (a compiler's: diagnostics)
    else:
        try:
            module = manifest.import_generated()
        except LocalError as e:
            raise ScenarioError(f"{path}: {e}") from e
    fsm = data.get("fsm", manifest.fsm)
    for where, chosen in [("fsm", fsm), *((f"party {p['name']}: fsm", p["fsm"]) for p in parties if "fsm" in p)]:
        if not isinstance(getattr(module, chosen, None), type):
            raise ScenarioError(f"{path}: {where}: protocol {name} has no fsm {chosen!r}")
    return Scenario(
        path=path,
        description=data.get("description", ""),
        protocol=manifest,
        machines=module,
        fsm=fsm,
        seed=int(data.get("seed", 0)),
        faults=fault_model,
        parties=parties,
        steps=steps,
        expect=expect,
        explore=explore,
    )


@dataclass
class Result:
    parties: dict[str, dict[str, Any]]
    trace: list[TraceEntry]
    failures: list[str]
    order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def json(self) -> dict[str, Any]:
        return {"parties": self.parties, "trace": trace_json(self.trace), "ok": self.ok, "failures": self.failures}


def trace_json(trace: list[TraceEntry]) -> list[dict[str, Any]]:
    return [e._asdict() for e in trace]


# How a simulation's fields are copied (runtime.copying); the others are deep-copied.
# The trace holds frozen TraceEntry records.
_SIMULATION_COPY: dict[str, Copier] = {"now": share, "trace": values}


def scenario_devices(scenario: Scenario) -> tuple[SeededRandom, int, dict[str, Any]]:
    """A scenario's random source, its network's seed and its parties' devices, drawn in
    that order from the scenario's seed: every build of the scenario (a simulation, a
    party's process in `fsmc run`, a party rebuilt after a crash) gets the same devices."""
    rng = SeededRandom(scenario.seed)
    network_seed = rng.getrandbits(64)
    return rng, network_seed, scenario.protocol.make_devices(scenario.parties, rng)


def scenario_party(scenario: Scenario, name: str, device: Any, network: Transport, clock: Callable[[], float],
                   trace: list[TraceEntry]) -> Party:
    """The party `name` of a scenario: its device running the scenario's fsm, or its own (a
    coordinator among participants), on `network` under `clock`."""
    spec = next(s for s in scenario.parties if s["name"] == name)
    machine = getattr(scenario.machines, spec.get("fsm", scenario.fsm))(device)
    device.machine = machine
    return Party(name, machine, device, scenario.machines.CODEC, network, clock, trace,
                 transports=tuple(spec.get("transports", ["channel"])))


class Simulation:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.now = 0.0
        self.rng, network_seed, self.devices = scenario_devices(scenario)
        self.network = InMemoryNetwork(seed=network_seed, faults=scenario.faults,
                                       mailboxes=scenario.protocol.mailboxes)
        self.trace: list[TraceEntry] = []
        self.parties: dict[str, Party] = {
            spec["name"]: scenario_party(scenario, spec["name"], self.devices[spec["name"]], self.network,
                                         self.clock, self.trace)
            for spec in scenario.parties}

    def __deepcopy__(self, memo: dict[int, Any]) -> Simulation:
        # The network, random source, devices and parties are deep-copied through memo:
        # the parties' copies get the copied network, devices and trace, and a clock bound
        # to this copy.
        return copy_fields(self, memo, _SIMULATION_COPY)

    def clock(self) -> float:
        return self.now

    def _targets(self, step: dict[str, Any]) -> list[Party]:
        """The step's parties: by name, "all", or (`in_state`) those now in a state, for
        roles that are decided during the run (which device becomes the Requester)."""
        if "in_state" in step:
            found = [p for p in self.parties.values() if p.machine.state_name == step["in_state"]]
            if not found:
                raise ScenarioError(f"{self.scenario.path}: step {step}: no party is in {step['in_state']}")
            return found[: int(step.get("count", 1))]
        who = step.get("party", "all")
        return list(self.parties.values()) if who == "all" else [self.parties[who]]

    def _receivers(self, step: dict[str, Any]) -> list[str] | None:
        """`deliver = true`: every party; `deliver = ["bob"]`: only what is in flight to these
        (the rest stays in flight: late messages, a party offline)."""
        which = step["deliver"]
        if which is True:
            return None
        if not isinstance(which, list) or not which or not all(isinstance(n, str) for n in which):
            raise ScenarioError(f"{self.scenario.path}: step {step}: deliver is true or a list of party names")
        unknown = [n for n in which if n not in self.parties]
        if unknown:
            raise ScenarioError(f"{self.scenario.path}: step {step}: deliver names no party {', '.join(unknown)}")
        return which

    def deliver_until_quiet(self, limit: int = MAX_DELIVERIES, receivers: Collection[str] | None = None) -> int:
        """Deliver in channel order until nothing is due (to `receivers`, when given)."""
        count = 0
        while count < limit:
            d = self.network.next(receivers)
            if d is None:
                break
            self.parties[d.receiver].deliver(d)
            count += 1
        return count

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.network.now = self.now
        for party in self.parties.values():
            party.tick()

    def step(self, step: dict[str, Any]) -> None:
        if "start" in step:
            for party in self._targets(step):
                party.start()
        elif "event" in step:
            before = self.scenario.protocol.before_event
            for party in self._targets(step):
                event = party.machine.Event[step["event"]]  # type: ignore[attr-defined]
                if before is not None:
                    before(party.device, step["event"], step)
                party.event(event, step["event"])
        elif "deliver" in step:
            self.deliver_until_quiet(int(step.get("max", MAX_DELIVERIES)), self._receivers(step))
        elif "advance" in step:
            self.advance(float(step["advance"]))
        else:
            raise ScenarioError(f"{self.scenario.path}: step {step}: expected start, event, deliver or advance")

    def run(self) -> Result:
        for step in self.scenario.steps:
            try:
                self.step(step)
            except KeyError as e:
                raise ScenarioError(f"{self.scenario.path}: step {step}: unknown {e}") from e
        return Result(self.summary(), self.trace, self.check(), list(self.parties))

    def summary(self) -> dict[str, dict[str, Any]]:
        return {name: {"state": p.machine.state_name, "keys": p.device.material_digest()}
                for name, p in self.parties.items()}

    def check(self) -> list[str]:
        """The scenario's expectations: the generic ones here (EXPECT), the protocol's own
        by its manifest's `check`."""
        expect, failures = self.scenario.expect, []
        summary = self.summary()
        for name, state in expect.get("state", {}).items():
            if summary[name]["state"] != state:
                failures.append(f"{name} is in {summary[name]['state']}, expected {state}")
        for group in expect.get("same_keys", []):
            digests = {summary[n]["keys"] for n in group}
            if len(digests) != 1:
                failures.append(f"{', '.join(group)} hold different key material")
        for group in expect.get("different_keys", []):
            if len({summary[n]["keys"] for n in group}) != len(group):
                failures.append(f"{', '.join(group)} should hold different key material")
        for name, messages in expect.get("sent", {}).items():
            sent = {e.message for e in self.trace if e.party == name and e.kind == "send"}
            for message in messages:
                if message not in sent:
                    failures.append(f"{name} did not send {message}")
        for name, count in expect.get("timeouts", {}).items():
            fired = sum(1 for e in self.trace if e.party == name and e.kind == "timeout")
            if fired != count:
                failures.append(f"{name} timed out {fired} times, expected {count}")
        check = self.scenario.protocol.check
        if check is not None:
            failures += check(expect, self.parties)
        return failures
