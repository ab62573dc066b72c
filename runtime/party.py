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
- Timeouts: a party left longer than its state's timeout in a state that has one
  (InitState aside) times out (`Machine.timeout`: the language's rule, back to InitState)
  and the application is told (the engine's SYNC_NOTIFY_TIMEOUT). The engine applies the
  fsm's threshold to every such state and ignores numeric `timeout=` values; fsmc
  honours them, as the draft says states have timeouts (A.1.1).

Every trace entry is a structured record: what tools read of it (the state and event of
an ignored event, the error code of a drop) is in its fields, never in its text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from runtime.codec import Codec
from runtime.copying import Copier, copy_fields, share, values
from runtime.device import Device
from runtime.errors import RemoteError
from runtime.machine import Debug, Effect, Ignored, Machine, Notify, Send, Transition
from runtime.records import MessageType, Security
from runtime.transport import Delivery, Transport

__all__ = ["Party", "TraceEntry"]


class TraceEntry(NamedTuple):
    """One line of a run's trace. A NamedTuple, as a party writes several per message:
    cheaper to build than a frozen dataclass (bench/bench_gka.py)."""

    time: float
    party: str
    kind: str  # send, receive, drop, state, ignored, debug, timeout, event, notify, fault
    detail: str  # for people
    peer: str | None = None  # the other party of a send or receive
    message: str | None = None
    seq: int | None = None  # network log position, to pair sends and receives
    state: str | None = None  # ignored: the state; state: the new state; timeout: the state left
    event: str | None = None  # ignored: what was ignored (an event or message name); event: its name
    code: str | None = None  # drop: why, as a code (an error's code, refused, stopped, ratelimit, lost)

    def __deepcopy__(self, memo: dict[int, Any]) -> TraceEntry:
        return self  # immutable: copies of a world (the explorer's) share it


@dataclass
class Party:
    name: str
    machine: Machine
    device: Device
    codec: Codec
    network: Transport
    clock: Callable[[], float]
    trace: list[TraceEntry] = field(default_factory=list)
    transports: tuple[str, ...] = ("channel",)
    active_transport: str | None = None
    deadline: float | None = None
    # Message id -> when its rate limit (A.1.6.4) lets it be sent again.
    rate_limited_until: dict[int, float] = field(default_factory=dict)
    listening: frozenset[str] = frozenset()  # the addresses the transport delivers from
    # When set, sends wait here as (transport, to, data, label) until the driver posts them
    # (`post`): runtime.durable commits a step before anything it sent leaves.
    outbox: list[tuple[str, str | None, bytes, Any]] | None = None

    def __post_init__(self) -> None:
        self.network.attach(self.name, self.transports)
        self.machine.capture = self.device.capture
        self.device.clock = self.clock
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
        self._log("event", label, event=label)
        self.device.receiving(None, None)
        self._run(self.machine.dispatch(event), label)

    def deliver(self, delivery: Delivery) -> None:
        """A message arrives. Whatever cannot be used (a RemoteError: bytes, envelope,
        verification; a security context not met; a stopped machine) is traced as a drop
        and changes nothing."""
        try:
            data, context = self.device.open(delivery.data)
            message = self.codec.decode(data)
        except RemoteError as e:
            self._log("drop", f"{type(e).__name__}: {e}", peer=delivery.sender, seq=delivery.seq, code=e.code)
            return
        name = type(message).__name__
        if self.machine.MESSAGES.get(message.ID) is not type(message):
            # Another fsm's message (a protocol's fsms share one wire type): not this
            # machine's to handle, whatever its number means here.
            self._log("drop", f"{name}: a message of fsm {message.FSM}", peer=delivery.sender, message=name,
                      seq=delivery.seq, code="foreign")
            return
        if message.SECURITY is Security.IGNORE:
            self._log("drop", f"{name}: security=ignore", peer=delivery.sender, message=name, seq=delivery.seq,
                      code="ignore")
            return
        if self.machine.stopped:
            self._log("drop", f"{name}: machine stopped", peer=delivery.sender, message=name, seq=delivery.seq,
                      code="stopped")
            return
        refusal = self.device.admit(message, context)
        if refusal is not None:
            self._log("drop", f"{name}: {refusal}", peer=delivery.sender, message=name, seq=delivery.seq,
                      code="refused")
            return
        self.active_transport = delivery.transport
        self._log("receive", name, peer=delivery.sender, message=name, seq=delivery.seq)
        self.device.receiving(message, context)
        self._run(self.machine.receive(message), name)

    def tick(self) -> bool:
        """Fire the state timeout if it is due; True when it fired."""
        if self.deadline is None or self.clock() < self.deadline or self.machine.stopped:
            return False
        state = self.machine.state_name
        self._log("timeout", f"{state} timed out; back to InitState", state=state)
        self.deadline = None
        self.device.timed_out(state)
        self._log("notify", f"timeout in {state}")
        self._run(self.machine.timeout(), "Timeout")
        return True

    # --- effects

    def _run(self, effects: list[Effect], cause: str) -> None:
        self._effects(effects, cause)
        wanted = self.device.listening()
        if wanted != self.listening:  # the transport follows what the device listens on
            for address in sorted(self.listening - wanted):
                self.network.unsubscribe(self.name, address)
            for address in sorted(wanted - self.listening):
                self.network.subscribe(self.name, address)
            self.listening = wanted

    def _effects(self, effects: list[Effect], cause: str) -> None:
        name_of = self.machine.name_of
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect)
            elif isinstance(effect, Transition):
                new = name_of(effect.new)
                self._log("state", f"{name_of(effect.old)} -> {new}", state=new)
                timeout = self.machine.TIMEOUTS.get(effect.new)
                initial = effect.new == self.machine.INITIAL
                self.deadline = None if timeout is None or initial else self.clock() + timeout
            elif isinstance(effect, Ignored):
                state = name_of(effect.state)
                self._log("ignored", f"{cause} in {state}", state=state, event=cause)
            elif isinstance(effect, Debug):
                self._log("debug", effect.text)
            elif isinstance(effect, Notify):
                detail = f" ({' '.join(effect.detail)})" if effect.detail else ""
                self._log("notify", f"{effect.name}{detail}")

    def _send(self, effect: Send) -> None:
        message = effect.message
        if message.SECURITY is Security.IGNORE:
            self._log("drop", f"{message.NAME}: security=ignore, not sent", message=message.NAME, code="ignore")
            return
        now = self.clock()
        if now < self.rate_limited_until.get(message.ID, now):
            self._log("drop", f"{message.NAME}: rate limit {message.RATELIMIT}s", message=message.NAME,
                      code="ratelimit")
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
            if self.outbox is not None:
                self.outbox.append((transport, effect.to, data, label))
            else:
                self.post(transport, effect.to, data, label)

    def post(self, transport: str, to: str | None, data: bytes, label: Any) -> None:
        """Put a sealed message on the transport (label: (sender, message, description))."""
        seq = self.network.post(self.name, transport, data, to=to, label=label)
        name = label[1].NAME
        self._log("send", name, peer=to, message=name, seq=seq)

    def _log(self, kind: str, detail: str, peer: str | None = None, message: str | None = None,
             seq: int | None = None, state: str | None = None, event: str | None = None,
             code: str | None = None) -> None:
        self.trace.append(_new(TraceEntry, (self.clock(), self.name, kind, detail, peer, message, seq, state, event,
                                            code)))


# How a party's fields are copied (runtime.copying); the others are deep-copied. The
# trace holds frozen TraceEntry records, and is the simulation's own list (see values).
_PARTY_COPY: dict[str, Copier] = {
    "name": share, "transports": share, "active_transport": share, "deadline": share, "listening": share,
    "trace": values, "rate_limited_until": values, "outbox": share,  # a durable party is not copied
}

_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__
