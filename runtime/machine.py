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
- An action may stop its machine (`stop`, KeySync's `disable`, A.1.3.2): once the event
  and what it raised have run, the machine goes to End, whatever state it reached.
- A state timeout (`timeout`) puts the machine back into its initial state and runs that
  state's Init, as the pEp engine does; the driver decides when a timeout is due.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from runtime.errors import UnsetFieldError

__all__ = [
    "END",
    "INIT",
    "TIMEOUT",
    "Debug",
    "Effect",
    "Ignored",
    "Machine",
    "Notify",
    "missing",
    "Send",
    "Transition",
]

END = 0  # the implicit terminal state
TIMEOUT = 0  # event numbers as in the pEp engine
INIT = 1


def missing(message: str, field: str) -> UnsetFieldError:
    """The error generated `from_buffer` methods raise for an empty buffer slot."""
    return UnsetFieldError(f"send {message}: field {field} is not set in the I/O buffer")


# Effects are NamedTuples: immutable, and cheap to build on the dispatch path (a frozen
# dataclass pays object.__setattr__ per field; bench/bench_dispatch.py measures this).


class Send(NamedTuple):
    message: Any
    to: str | None = None
    # What the driver needs of the moment of sending (A.1.6.8 builds the transporting
    # message right there): e.g. the keys to sign with and to attach. See Machine.capture.
    context: Any = None


class Debug(NamedTuple):
    text: str


class Transition(NamedTuple):
    old: int
    new: int
    event: int


class Notify(NamedTuple):
    """Something for the application's UI (the draft's show* actions, A.1.3.12-19)."""

    name: str
    detail: Any = None


class Ignored(NamedTuple):
    state: int
    event: int


Effect = Send | Debug | Transition | Ignored | Notify
# tuple.__new__ builds a NamedTuple without its Python-level __new__: the hot path.
_new = tuple.__new__
Handler = Callable[[Any], int | None]
_DEBUGS: dict[str, Debug] = {}


class Machine:
    """Base of the generated machines; subclasses provide the tables below."""

    HANDLERS: ClassVar[dict[int, dict[int, Handler]]]  # state -> event -> handler
    TIMEOUTS: ClassVar[dict[int, float | None]]  # state -> seconds, None = off
    MESSAGES: ClassVar[dict[int, type[Any]]]  # event number -> message class
    AUTO_VALUES: ClassVar[dict[str, Any]]  # auto field type -> value (Version)
    INITIAL: ClassVar[int]

    __slots__ = ("bindings", "buffer", "capture", "effects", "_state", "_queue", "_running", "_stopping")

    # HANDLERS as a list indexed by state number (states are numbered 0..n): an index is
    # cheaper than a hash on every event. Keyed by plain ints: an IntEnum key makes every
    # lookup compare through IntEnum. Built once per class.
    _table: ClassVar[list[dict[int, Handler]]]
    # Every Transition effect made so far, by (old, new, event): there are few, they are
    # immutable, and a dict hit costs half of building the NamedTuple (bench_dispatch).
    _transitions: ClassVar[dict[tuple[int, int, int], Transition]]
    # State number -> name, for traces and tools (from the generated `State` enum).
    STATE_NAMES: ClassVar[dict[int, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "HANDLERS" in cls.__dict__:
            size = max(cls.HANDLERS, default=-1) + 1
            cls._table = [{int(event): handler for event, handler in cls.HANDLERS.get(state, {}).items()}
                          for state in range(size)]
            cls._transitions = {}
            states = cls.__dict__.get("State")
            if states is not None:
                cls.STATE_NAMES = {int(s): s.name for s in states}

    def __init__(self, bindings: Any, buffer: Any) -> None:
        self.bindings = bindings
        # Called with each message as it is sent; its result rides on the Send effect, so
        # a driver seals with the keys of that moment, not of the end of the handler.
        self.capture: Callable[[Any, str | None], Any] | None = None
        self.buffer = buffer
        self.effects: list[Effect] = []
        self._state = self.INITIAL
        self._queue: deque[int] = deque()
        self._running = False
        self._stopping = False

    def __deepcopy__(self, memo: dict[int, Any]) -> Machine:
        """A copy for the explorer, which copies whole worlds at every step: the
        bindings (the device) and the buffer are copied through `memo`, so that the copy
        of a device that points back at its machine points at this copy; the rest is
        copied by hand, as generic deepcopy of a slotted object is slow."""
        cls = type(self)
        twin = cls.__new__(cls)
        memo[id(self)] = twin  # before recursing: the bindings refer back to the machine
        twin.bindings = copy.deepcopy(self.bindings, memo)
        twin.buffer = copy.deepcopy(self.buffer, memo)
        # A bound method of the bindings: deepcopy binds it to their copy (via memo).
        twin.capture = copy.deepcopy(self.capture, memo)
        # The effects of the last dispatch were returned to its caller, who acted on them:
        # they are not the machine's state, and a copy (the explorer keeps many) starts
        # without them. Effects raised inside a running dispatch are never copied: worlds
        # are copied between steps.
        twin.effects = []
        twin._state = self._state
        twin._queue = deque(self._queue)  # event numbers
        twin._running = self._running
        twin._stopping = self._stopping
        extra = getattr(self, "__dict__", None)  # a subclass without __slots__
        if extra:
            twin.__dict__.update(copy.deepcopy(extra, memo))
        return twin

    @property
    def state(self) -> int:
        return self._state

    @property
    def state_id(self) -> int:
        """The state's number (`state` is the generated State enum member)."""
        return self._state

    @property
    def state_name(self) -> str:
        return self.name_of(self._state)

    @classmethod
    def name_of(cls, state: int) -> str:
        """A state's name, for traces: its number when the class has no State enum."""
        return cls.STATE_NAMES.get(state) or str(state)

    @property
    def stopped(self) -> bool:
        return self._state == END

    def handles(self, event: int) -> bool:
        """Whether the state the machine is in has a handler for `event`."""
        return event in self._table[self._state]

    def reset(self, state: int | None = None) -> None:
        """Put the machine into `state` (default InitState) without running handlers."""
        self._state = self.INITIAL if state is None else state
        self._queue.clear()

    # --- driving the machine

    def start(self) -> list[Effect]:
        """Run InitState's Init handler (and whatever it leads to)."""
        return self.dispatch(INIT)

    def timeout(self) -> list[Effect]:
        """The state timed out: back to the initial state, whose Init runs (the pEp
        engine's rule; docs/language.md)."""
        self.reset()
        return self.start()

    def stop(self) -> None:
        """Called by an action: the machine ends in End once the current event and what
        it raised have run (draft A.1.3.2, `disable`)."""
        self._stopping = True

    def dispatch(self, event: int) -> list[Effect]:
        """Run `event` and every event it raises to completion; return the effects."""
        if self._running:  # raised from inside a handler: runs after it
            self._queue.append(event)
            return self.effects
        effects: list[Effect] = []
        self.effects = effects
        queue = self._queue
        handlers = self._table
        transitions = self._transitions
        self._running = True
        try:
            state = self._state
            while state != END:  # End is terminal: what is queued then is dropped
                handler = handlers[state].get(event)
                if handler is None:
                    effects.append(_new(Ignored, (state, event)))
                else:
                    new = handler(self)
                    # Each state change runs the new state's Init at once (A.1.5.2);
                    # End has no handlers, so the chain stops there.
                    while new is not None and new != state:
                        key = (state, new, event)
                        transition = transitions.get(key)
                        if transition is None:
                            transition = transitions[key] = _new(Transition, key)
                        effects.append(transition)
                        self._state = state = new
                        init = handlers[new].get(INIT)
                        if init is None:
                            break
                        event = INIT
                        new = init(self)
                if not queue:
                    break
                event = queue.popleft()
                state = self._state
            else:
                queue.clear()
        finally:
            self._running = False
        if self._stopping:
            self._halt(effects, event)
        return effects

    def _halt(self, effects: list[Effect], event: int) -> None:
        self._stopping = False
        self._queue.clear()
        if self._state != END:
            effects.append(Transition(self._state, END, event))
            self._state = END

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
        """A.1.6.8: auto fields into the buffer, fields from the buffer, the message out.
        Each generated message class does the first two in its `from_buffer`."""
        message = message_class.from_buffer(self.buffer, self.AUTO_VALUES)
        capture = self.capture
        self.effects.append(_new(Send, (message, to, capture(message, to) if capture is not None else None)))

    def notify(self, name: str, detail: Any = None) -> None:
        """Called by actions that tell the application something, in handler order."""
        self.effects.append(_new(Notify, (name, detail)))

    def debug(self, text: str) -> None:
        # Generated handlers pass the literals of `debug >` lines: each Debug is made once
        # (the cache is bounded for callers that make up their texts).
        effect = _DEBUGS.get(text)
        if effect is None:
            effect = _new(Debug, (text,))
            if len(_DEBUGS) < 4096:
                _DEBUGS[text] = effect
        self.effects.append(effect)
