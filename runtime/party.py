"""A party: one machine with its device, on a network, under a clock — the driver.

The machine core is sans-IO; this is where its effects meet the world:

- Send: rate limit (A.1.6.4), encode with the protocol's codec, let the device seal the
  bytes in an envelope for the message's security context (A.1.6.3), post it: broadcast
  on every transport the party is on, anycast on the active transport (the one the last
  Sync message came in on, A.1.6.2), or to one party for `send M to peer`.
- Receive: the device opens the envelope (signature, decryption), the codec decodes, the
  device admits the message or not by its security context, and only then the machine
  sees it. Anything that fails is traced as a drop and changes nothing: the machine stays
  in its state, with its buffer and its keys.
- Timeouts, as the pEp engine does them: a party left longer than its state's timeout in
  a state that has one (InitState aside) is reset to InitState, whose Init handler takes
  it on, and the application is told (the engine's SYNC_NOTIFY_TIMEOUT). The engine
  applies the fsm's threshold to every such state and ignores numeric `timeout=` values;
  fsmc honours them, as the draft says states have timeouts (A.1.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from runtime.codec import Codec, DecodeError
from runtime.copying import Copier, copy_fields, share, values
from runtime.envelope import EnvelopeError
from runtime.machine import END, Debug, Effect, Ignored, Machine, Notify, Send, Transition
from runtime.network import Delivery
from runtime.records import MessageType

__all__ = ["Device", "Network", "Party", "TraceEntry"]


class Network(Protocol):
    """The transports a party is on: the in-memory network first, real ones later."""

    def attach(self, party: str, transports: tuple[str, ...]) -> None: ...

    def post(self, sender: str, transport: str, data: bytes, to: str | None = None,
             label: Any = None) -> int:
        """Send `data` to every member of `transport` (the sender included) or to `to`;
        returns the message's position in the channel's log. `label` is a canonical
        description of the message for tools that compare states (the explorer)."""
        ...


class Device(Protocol):
    """What a protocol's device implementation gives the driver."""

    def capture(self, message: Any) -> Any:
        """What sealing `message` needs of the moment it is sent (keys to sign with and
        to attach); the machine calls this from `send`. A value, never changed after:
        the Send effect carries it, and copies of a world share their past effects."""
        ...

    def seal(self, message: Any, data: bytes, captured: Any) -> bytes: ...

    def describe(self, captured: Any) -> Any:
        """A canonical, hashable description of what `capture` returned (signer, keys
        attached): with the message it identifies a sealed message whatever its nonces."""
        ...

    def open(self, data: bytes) -> tuple[bytes, Any]:
        """The Sync message bytes and an opaque context (sender, attachments); raises
        EnvelopeError when the envelope cannot be verified or opened."""
        ...

    def admit(self, message: Any, context: Any) -> str | None:
        """None to accept the message, else why its security context is not met."""
        ...

    def receiving(self, message: Any, context: Any) -> None:
        """The message is about to be handled: remember its sender and attachments.
        (None, None) before a user or signaled event."""
        ...

    @property
    def disabled(self) -> bool: ...

    def material_digest(self) -> str:
        """A digest of the device's key material: equal exactly when the material is."""
        ...

    def timed_out(self, state: str) -> None:
        """Tell the application a state timed out (the pEp engine's SYNC_NOTIFY_TIMEOUT)."""
        ...


class TraceEntry(NamedTuple):
    """One line of a run's trace. A NamedTuple, as a party writes several per message:
    cheaper to build than a frozen dataclass (bench/bench_gka.py)."""

    time: float
    party: str
    kind: str  # send, receive, drop, state, ignored, debug, timeout, event, notify, fault
    detail: str
    peer: str | None = None  # the other party of a send or receive
    message: str | None = None
    seq: int | None = None  # network log position, to pair sends and receives

    def __deepcopy__(self, memo: dict[int, Any]) -> TraceEntry:
        return self  # immutable: copies of a world (the explorer's) share it


@dataclass
class Party:
    name: str
    machine: Machine
    device: Device
    codec: Codec
    network: Network
    clock: Callable[[], float]
    trace: list[TraceEntry] = field(default_factory=list)
    transports: tuple[str, ...] = ("channel",)
    active_transport: str | None = None
    deadline: float | None = None
    # Message id -> when its rate limit (A.1.6.4) lets it be sent again.
    rate_limited_until: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.network.attach(self.name, self.transports)
        self.machine.capture = self.device.capture
        if self.active_transport is None:
            self.active_transport = self.transports[0]

    def __deepcopy__(self, memo: dict[int, Any]) -> Party:
        # The machine, device, network and clock (a bound method of the simulation) are
        # copied through memo: a party's copy uses the copies of the world's objects.
        return copy_fields(self, memo, _PARTY_COPY)

    # --- inputs

    def start(self) -> None:
        self._run(self.machine.start(), "Init")

    def event(self, event: int, name: str | None = None) -> None:
        """A user or signaled event (Accept, KeyGen, ...)."""
        label = name or str(event)
        self._log("event", label)
        self.device.receiving(None, None)
        self._run(self.machine.dispatch(event), label)

    def deliver(self, delivery: Delivery) -> None:
        try:
            data, context = self.device.open(delivery.data)
            message = self.codec.decode(data)
        except (EnvelopeError, DecodeError) as e:
            self._log("drop", f"{type(e).__name__}: {e}", peer=delivery.sender, seq=delivery.seq)
            return
        name = type(message).__name__
        if self.machine.stopped:
            self._log("drop", f"{name}: machine stopped", peer=delivery.sender, message=name, seq=delivery.seq)
            return
        refusal = self.device.admit(message, context)
        if refusal is not None:
            self._log("drop", f"{name}: {refusal}", peer=delivery.sender, message=name, seq=delivery.seq)
            return
        self.active_transport = delivery.transport
        self._log("receive", name, peer=delivery.sender, message=name, seq=delivery.seq)
        self.device.receiving(message, context)
        self._run(self.machine.receive(message), name)

    def tick(self) -> bool:
        """Fire the state timeout if it is due; True when it fired."""
        if self.deadline is None or self.clock() < self.deadline or self.machine.stopped:
            return False
        state = self.machine.state
        self._log("timeout", f"{_name(self.machine, state)} timed out; back to InitState")
        self.deadline = None
        self.device.timed_out(_name(self.machine, state))
        self._log("notify", f"timeout in {_name(self.machine, state)}")
        self.machine.reset()
        self._run(self.machine.start(), "Timeout")
        return True

    # --- effects

    def _run(self, effects: list[Effect], cause: str) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect)
            elif isinstance(effect, Transition):
                self._log("state", f"{_name(self.machine, effect.old)} -> {_name(self.machine, effect.new)}")
                timeout = self.machine.TIMEOUTS.get(effect.new)
                initial = effect.new == self.machine.INITIAL
                self.deadline = None if timeout is None or initial else self.clock() + timeout
            elif isinstance(effect, Ignored):
                self._log("ignored", f"{cause} in {_name(self.machine, effect.state)}")
            elif isinstance(effect, Debug):
                self._log("debug", effect.text)
            elif isinstance(effect, Notify):
                detail = f" ({' '.join(effect.detail)})" if effect.detail else ""
                self._log("notify", f"{effect.name}{detail}")
        # A.1.3.2: disable shuts the FSM down; it ends in End whatever the handler did.
        if self.device.disabled and not self.machine.stopped:
            self._log("state", f"{_name(self.machine, self.machine.state)} -> End (disabled)")
            self.machine.reset(END)
            self.deadline = None

    def _send(self, effect: Send) -> None:
        message = effect.message
        now = self.clock()
        if now < self.rate_limited_until.get(message.ID, now):
            self._log("drop", f"{message.NAME}: rate limit {message.RATELIMIT}s", message=message.NAME)
            return
        if message.RATELIMIT:
            self.rate_limited_until[message.ID] = now + message.RATELIMIT
        data = self.device.seal(message, self.codec.encode(message), effect.context)
        # A.1.6.2: broadcast is copied on all transports; anycast (and a message to one
        # party) goes on the active transport, the one the last Sync message came in on.
        active = self.active_transport or self.transports[0]
        broadcast = effect.to is None and message.TYPE is MessageType.BROADCAST
        transports: tuple[str, ...] = self.transports if broadcast else (active,)
        for transport in transports:
            label = (self.name, message, self.device.describe(effect.context))
            seq = self.network.post(self.name, transport, data, to=effect.to, label=label)
            self._log("send", message.NAME, peer=effect.to, message=message.NAME, seq=seq)

    def _log(self, kind: str, detail: str, peer: str | None = None, message: str | None = None,
             seq: int | None = None) -> None:
        self.trace.append(_new(TraceEntry, (self.clock(), self.name, kind, detail, peer, message, seq)))


# How a party's fields are copied (runtime.copying); the others are deep-copied. The
# trace holds frozen TraceEntry records, and is the simulation's own list (see values).
_PARTY_COPY: dict[str, Copier] = {
    "name": share, "transports": share, "active_transport": share, "deadline": share,
    "trace": values, "rate_limited_until": values,
}


def _name(machine: Machine, state: int) -> str:
    names = _STATE_NAMES.get(type(machine))
    if names is None:  # once per machine class: an enum lookup per trace line is not free
        states = getattr(type(machine), "State", None)
        names = _STATE_NAMES[type(machine)] = {int(s): s.name for s in states} if states is not None else {}
    return names.get(state) or str(state)


_STATE_NAMES: dict[type, dict[int, str]] = {}
_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__
