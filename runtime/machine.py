"""The sans-IO core every generated machine runs on.

A machine consumes one event at a time and returns what must happen outside: messages
to send, debug lines, state changes (from which a driver sets timers), ignored events.
Nothing here does I/O, reads a clock or touches keys; drivers do (h11's design).

Rules (draft-pep-keysync A.1, and the pEp engine where the draft is silent):
- Entering a state runs its Init handler (A.1.5.2), at once, before queued events.
- `go` ends the handler that runs it (the engine's generated code returns there).
- Events raised while a handler runs (`signal`) are queued and run after it: handlers
  are never nested (run to completion).
- A (state, event) pair without a handler is ignored, and the effect `Ignored` says so:
  the draft's FSM relies on ignoring events (A.1.1.2).
- Sending (A.1.6.8): compute the auto fields into the I/O buffer, load every field of
  the message from the buffer, build the message. Receiving (A.1.6.9): copy its fields
  into the buffer, then signal the event named after the message.
- `End` (0) is terminal: the machine stops and ignores everything after.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "END",
    "INIT",
    "TIMEOUT",
    "BufferError",
    "Debug",
    "Effect",
    "Ignored",
    "Machine",
    "MachineError",
    "Send",
    "Transition",
]

END = 0  # the implicit terminal state
TIMEOUT = 0  # event numbers as in the pEp engine
INIT = 1


class MachineError(Exception):
    """A fault of the local side: the protocol text or its bindings are wrong."""

    code = "machine"


class BufferError(MachineError):
    """A message was sent with a field the I/O buffer does not hold."""

    code = "buffer"


@dataclass(frozen=True, slots=True)
class Send:
    message: Any
    to: str | None = None
    # What the driver needs of the moment of sending (A.1.6.8 builds the transporting
    # message right there): e.g. the keys to sign with and to attach. See Machine.capture.
    context: Any = None


@dataclass(frozen=True, slots=True)
class Debug:
    text: str


@dataclass(frozen=True, slots=True)
class Transition:
    old: int
    new: int
    event: int


@dataclass(frozen=True, slots=True)
class Ignored:
    state: int
    event: int


Effect = Send | Debug | Transition | Ignored
Handler = Callable[[Any], int | None]


class Machine:
    """Base of the generated machines; subclasses provide the tables below."""

    HANDLERS: ClassVar[dict[int, dict[int, Handler]]]  # state -> event -> handler
    TIMEOUTS: ClassVar[dict[int, float | None]]  # state -> seconds, None = off
    MESSAGES: ClassVar[dict[int, type[Any]]]  # event number -> message class
    AUTO_VALUES: ClassVar[dict[str, Any]]  # auto field type -> value (Version)
    INITIAL: ClassVar[int]

    __slots__ = ("bindings", "buffer", "capture", "effects", "_state", "_queue", "_running")

    def __init__(self, bindings: Any, buffer: Any) -> None:
        self.bindings = bindings
        # Called with each message as it is sent; its result rides on the Send effect, so
        # a driver seals with the keys of that moment, not of the end of the handler.
        self.capture: Callable[[Any], Any] | None = None
        self.buffer = buffer
        self.effects: list[Effect] = []
        self._state = self.INITIAL
        self._queue: deque[int] = deque()
        self._running = False

    @property
    def state(self) -> int:
        return self._state

    @property
    def stopped(self) -> bool:
        return self._state == END

    def reset(self, state: int | None = None) -> None:
        """Put the machine into `state` (default InitState) without running handlers."""
        self._state = self.INITIAL if state is None else state
        self._queue.clear()

    # --- driving the machine

    def start(self) -> list[Effect]:
        """Run InitState's Init handler (and whatever it leads to)."""
        return self.dispatch(INIT)

    def dispatch(self, event: int) -> list[Effect]:
        """Run `event` and every event it raises to completion; return the effects."""
        if self._running:  # raised from inside a handler: runs after it
            self._queue.append(event)
            return self.effects
        effects: list[Effect] = []
        self.effects = effects
        queue = self._queue
        queue.append(event)
        handlers = self.HANDLERS
        self._running = True
        try:
            while queue:
                event = queue.popleft()
                state = self._state
                if state == END:
                    queue.clear()
                    break
                handler = handlers[state].get(event)
                if handler is None:
                    effects.append(Ignored(state, event))
                    continue
                new = handler(self)
                # Each state change runs the new state's Init at once (A.1.5.2).
                while new is not None and new != state:
                    effects.append(Transition(state, new, event))
                    self._state = state = new
                    if new == END:
                        break
                    init = handlers[new].get(INIT)
                    if init is None:
                        break
                    event = INIT
                    new = init(self)
        finally:
            self._running = False
        return effects

    def signal(self, event: int) -> None:
        """Raise an event from an action; it runs after the current handler."""
        self._queue.append(event)

    def receive(self, message: Any) -> list[Effect]:
        """A.1.6.9: copy the message's fields into the I/O buffer, then signal its event."""
        buffer = self.buffer
        for name in message.FIELDS:
            setattr(buffer, name, getattr(message, name))
        for name, _ in message.AUTO:
            setattr(buffer, name, getattr(message, name))
        return self.dispatch(message.ID)

    # --- called by generated handlers

    def send(self, message_class: type[Any], to: str | None = None) -> None:
        """A.1.6.8: auto fields into the buffer, fields from the buffer, the message out."""
        buffer = self.buffer
        values = {}
        for name, type_name in message_class.AUTO:
            value = self.AUTO_VALUES[type_name]
            setattr(buffer, name, value)
            values[name] = value
        for name in message_class.FIELDS:
            value = getattr(buffer, name)
            if value is None:
                raise BufferError(f"send {message_class.NAME}: field {name} is not set in the I/O buffer")
            values[name] = value
        message = message_class(**values)
        capture = self.capture
        self.effects.append(Send(message, to, capture(message) if capture is not None else None))

    def debug(self, text: str) -> None:
        self.effects.append(Debug(text))
