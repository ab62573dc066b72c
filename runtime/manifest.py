"""A protocol's manifest: everything the runtime, the harness and the tests need of it.

Each protocol folder (protocols/<name>/, docs/protocols.md) declares one `Manifest` as
`PROTOCOL` in its package; `runtime.registry` finds it by name. Nothing in the runtime
names a protocol: where a protocol's rules matter (the user's possible answers, what a
negotiation is, what the scenario's expectations mean, which invariants hold), the
harness asks the manifest.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from runtime.errors import RegistryError

if TYPE_CHECKING:
    from runtime.harness.explore import World
    from runtime.party import Party

__all__ = ["Invariant", "Invariants", "Manifest", "states_agree"]

# An invariant is a function of an explored world: None while it holds, else what is wrong.
Invariant = Callable[["World"], "str | None"]
MakeDevices = Callable[[list[dict[str, Any]], Any], dict[str, Any]]
BeforeEvent = Callable[[Any, str, dict[str, Any]], None]
Check = Callable[[dict[str, Any], dict[str, "Party"]], list[str]]


@dataclass(frozen=True, kw_only=True)
class Invariants:
    """The designer's invariants (docs/exploration.md): `safety` holds in every world,
    `quiescent` in every quiet one (nothing in flight, no timer pending), `terminal`
    where the environment has no choice left, `stalled` where nothing is left to happen
    but what disturbs a run (a timeout, a fault, a user's answer that does not consent),
    and where the run ends (the progress a run must make without any of them: a timeout
    that would rescue a stuck handshake does not excuse it). `observed(party)` is what the safety
    invariants read of a party; declaring it allows the partial-order reduction.
    `replays_change_nothing`: explored with the replay fault, a message delivered again
    must leave its receiver as it was (its machine's state and its device's record): the
    explorer then checks that after every replay, as the safety invariant of that name,
    except for the messages named in `replayable`: those nothing can authenticate by the
    protocol's design (a handshake's first message), whose replays the other invariants
    judge."""

    safety: tuple[Invariant, ...] = ()
    quiescent: tuple[Invariant, ...] = ()
    terminal: tuple[Invariant, ...] = ()
    stalled: tuple[Invariant, ...] = ()
    observed: Callable[[Party], Hashable] | None = None
    replays_change_nothing: bool = False
    replayable: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [i.__name__ for i in (*self.safety, *self.quiescent, *self.terminal, *self.stalled)]


def states_agree(world: World, expected: Callable[[str], str | None], excused: Collection[str] = ()) -> str | None:
    """A `states_agree_with_records` invariant's check: every party of `world` is in the
    state its record names, `expected(name)` (None: the party is not judged), unless it
    is in one of the `excused` states. A go to the wrong state keeps the record right, and
    the state is what the party's next message meets: only such a check sees it.

    Safety, though it reads the machines' states, which `observed` leaves out: the
    partial-order reduction still judges it soundly where the protocol's silent steps
    are deliveries. It is a conjunction of one fact per party, and a step the reduction
    takes first sends nothing, so it changes only its own party's fact: each party's fact
    in a world the reduction skips is that party's fact in a world it explores."""
    for name in world.parties:
        want = expected(name)
        if want is None:
            continue
        state = world.state_of(name)
        if state != want and state not in excused:
            return f"{name} is in {state}, but its record says {want}"
    return None


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """One protocol, as the tools see it."""

    name: str  # the folder, the generated module (generated.<name>) and the diagrams' folder
    title: str  # for people: "pEp KeySync (draft-pep-keysync-03)"
    folder: Path  # protocols/<name>/
    fsm: str  # the machine a scenario's parties run unless it names another
    make_devices: MakeDevices  # (the scenario's [[party]] tables, a seeded random source) -> {name: device}
    invariants: Invariants = field(default_factory=Invariants)
    source: str = ""  # the DSL file in `folder`; default <name>.fsm
    # Called before a scenario step's event with the step's table (KeySync: KeyGen makes
    # the key it announces; mpENC: an operation takes the step's members).
    before_event: BeforeEvent | None = None
    # The protocol's own expectations of a scenario's [expect] table: -> failures.
    check: Check | None = None
    # The answers a user may give in a dialog (the explorer offers each where a state
    # handles it), and what the user answers to: a device's current negotiation.
    user_events: tuple[str, ...] = ()
    negotiation: Callable[[Any], Hashable] | None = None
    # The answers that consent (KeySync's Accept): the explorer records what each
    # consented to (`negotiation`), and they leave a run undisturbed, where any other
    # answer, like a fault or a timeout, excuses the invariants that promise progress.
    consents: tuple[str, ...] = ()
    # Scenario [expect] keys the protocol's `check` reads (besides the generic ones).
    expectations: Sequence[str] = ()
    # The network is a store-and-forward relay (BisonRelay's server): what is posted to an
    # address nobody listens on waits there for the first party that subscribes, instead
    # of reaching no one (runtime.harness.network.InMemoryNetwork.mailboxes).
    mailboxes: bool = False
    # A protocol in the pEp engine's tree layout (codegen/*.fsm beside asn.1/pEp.asn1) is
    # compiled into a package, generated/<name>/, one module per DSL file: `module` names
    # the one of `source` (keysync_engine: sync, of codegen/sync.fsm).
    module: str = ""

    @property
    def dsl(self) -> Path:
        return self.folder / (self.source or f"{self.name}.fsm")

    @property
    def scenarios(self) -> list[Path]:
        return sorted((self.folder / "scenarios").glob("*.toml"))

    @property
    def generated(self) -> str:
        """The module applications import: the committed output of `make generate`."""
        return f"generated.{self.name}.{self.module}" if self.module else f"generated.{self.name}"

    def import_generated(self) -> ModuleType:
        try:
            return importlib.import_module(self.generated)
        except ImportError as e:
            raise RegistryError(f"{self.name}: cannot import {self.generated} ({e}); run `make generate`") from e
