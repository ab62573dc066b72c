"""The typed model of a DSL file: plain, immutable data with source positions.

The parser builds these nodes directly (nothing downstream sees parse trees); the checker
reads them and reports; the backends turn them into text. Names follow the draft's own
vocabulary (draft-pep-keysync-03, Appendix A.1): protocol, fsm, state, event handler,
condition, action, message, field, external.

Derived facts that several stages need (the kind and number of every event, the I/O
buffer, the conditions and actions an fsm uses) are computed here, from the model alone,
so that every backend agrees on them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from fsmc.diagnostics import Position

__all__ = [
    "BUILTIN_TYPES",
    "DEFAULT_THRESHOLD",
    "END_STATE",
    "INIT_EVENT",
    "INIT_STATE",
    "TIMEOUT_EVENT",
    "Attribute",
    "Debug",
    "Do",
    "Document",
    "Event",
    "EventKind",
    "External",
    "Field",
    "FieldKind",
    "Fsm",
    "Go",
    "Handler",
    "If",
    "Include",
    "Message",
    "MessageType",
    "Protocol",
    "Security",
    "Send",
    "State",
    "Statement",
    "field_types",
    "records",
    "walk",
]

INIT_STATE = "InitState"
END_STATE = "End"  # implicit terminal state (A.1.3.2: disable brings the FSM to End)
INIT_EVENT = "Init"
TIMEOUT_EVENT = "Timeout"
BUILTIN_TYPES = ("bool", "int")  # A.1.6.5: ASN.1 BOOLEAN and INTEGER
# The defaults codegen/fsm.yml2 declares (`decl protocol @name (id, threshold=20)`, the same
# for fsm); the draft gives none (its KeySync sets threshold=300). fsmc follows fsm.yml2.
DEFAULT_THRESHOLD = 20


class MessageType(enum.Enum):
    """A.1.6.2: broadcast is copied on all transports, anycast uses the active one."""

    BROADCAST = "broadcast"
    ANYCAST = "anycast"


class Security(enum.Enum):
    """A.1.6.3: the security context a message must arrive in."""

    UNENCRYPTED = "unencrypted"
    UNTRUSTED = "untrusted"
    TRUSTED = "trusted"
    ATTACH_OWN_KEYS_FOR_NEW_MEMBER = "attach_own_keys_for_new_member"
    ATTACH_OWN_KEYS_FOR_GROUP = "attach_own_keys_for_group"
    # The pEp engine's (fsm.yml2 admits any value; gen_statemachine.ysl2 acts on this one):
    # a message the engine's machines neither send nor take, whatever its security.
    IGNORE = "ignore"


class FieldKind(enum.Enum):
    FIELD = "field"  # copied in and out of the I/O buffer
    AUTO = "auto"  # computed when sending (A.1.6.5)
    # The pEp engine's (codegen/fsm.yml2), copied in and out of the I/O buffer like a field:
    LIST = "list"  # `list Type name { fields }`: a SEQUENCE OF a record declared in place
    EMBED = "embed"  # `embed Protocol Fsm name;`: one message of another protocol's fsm


class EventKind(enum.Enum):
    INIT = "init"
    MESSAGE = "message"  # A.1.5.3
    EXTERNAL = "external"  # A.1.5.5
    SIGNALED = "signaled"  # A.1.5.4
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Attribute:
    """`name=value` after a declaration; values are checked by the checker, not the parser."""

    name: str
    value: str | int
    position: Position


# --- statements of an event handler (A.1.5.1) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Do:
    action: str
    position: Position


@dataclass(frozen=True, slots=True)
class Send:
    message: str
    position: Position
    # fsmc extension: `send M to peer;` addresses one party; `peer` is bound by the
    # runtime like a condition. None sends as the message's type says.
    to: str | None = None
    # fsmc extension: `send M to each peers;` sends one copy to each party `peers` names
    # (Status fans a message out to every installation, pairwise encrypted).
    each: bool = False


@dataclass(frozen=True, slots=True)
class Go:
    state: str
    position: Position


@dataclass(frozen=True, slots=True)
class Debug:
    text: str
    position: Position


@dataclass(frozen=True, slots=True)
class If:
    condition: str
    then: tuple[Statement, ...]
    orelse: tuple[Statement, ...] | None
    position: Position


Statement = Do | Send | Go | Debug | If


def walk(statements: tuple[Statement, ...]) -> Iterator[Statement]:
    """Every statement, nested ones included, in source order."""
    for s in statements:
        yield s
        if isinstance(s, If):
            yield from walk(s.then)
            if s.orelse is not None:
                yield from walk(s.orelse)


# --- declarations ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handler:
    """`on Event ...`: the body runs to completion; `go` ends it (as in the pEp engine)."""

    event: str
    body: tuple[Statement, ...]
    position: Position

    def statements(self) -> Iterator[Statement]:
        return walk(self.body)

    @property
    def transitions(self) -> tuple[str, ...]:
        return tuple(sorted({s.state for s in self.statements() if isinstance(s, Go)}))

    @property
    def sends(self) -> tuple[str, ...]:
        return tuple(sorted({s.message for s in self.statements() if isinstance(s, Send)}))

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.action for s in self.statements() if isinstance(s, Do)))

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.condition for s in self.statements() if isinstance(s, If)))


@dataclass(frozen=True, slots=True)
class State:
    name: str
    handlers: tuple[Handler, ...]
    attributes: tuple[Attribute, ...]
    position: Position

    @property
    def timeout_attribute(self) -> Attribute | None:
        return next((a for a in self.attributes if a.name == "timeout"), None)

    def handler(self, event: str) -> Handler | None:
        return next((h for h in self.handlers if h.event == event), None)


@dataclass(frozen=True, slots=True)
class Field:
    """A member of a message. For a LIST, `type` names the record declared in place and
    `fields` are its members; for an EMBED, `protocol` and `type` name the embedded fsm."""

    kind: FieldKind
    type: str
    name: str
    position: Position
    fields: tuple[Field, ...] = ()
    protocol: str | None = None

    @property
    def in_buffer(self) -> bool:
        """Loaded from the I/O buffer when sending (everything but `auto`)."""
        return self.kind is not FieldKind.AUTO

    @property
    def shape(self) -> str:
        """What the field holds, as the I/O buffer compares it: one name, one shape."""
        if self.kind is FieldKind.LIST:
            return f"list {self.type}"
        if self.kind is FieldKind.EMBED:
            return f"embed {self.protocol} {self.type}"
        return self.type


def field_types(fields: tuple[Field, ...]) -> set[str]:
    """The type names that `fields` and the members of their lists are declared with:
    built-ins and types of the type module (a list's own type and an embed's fsm are
    declared by the DSL, not taken from the module)."""
    used: set[str] = set()
    for f in fields:
        if f.kind is FieldKind.LIST:
            used |= field_types(f.fields)
        elif f.kind is not FieldKind.EMBED:
            used.add(f.type)
    return used


def records(fields: tuple[Field, ...]) -> Iterator[Field]:
    """The list fields among `fields` and inside them, each before the lists it holds
    (document order, as the engine's generator writes their records)."""
    for f in fields:
        if f.kind is FieldKind.LIST:
            yield f
            yield from records(f.fields)


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    id: int
    attributes: tuple[Attribute, ...]
    fields: tuple[Field, ...]
    position: Position

    def _attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    @property
    def type(self) -> MessageType:
        a = self._attribute("type")
        return MessageType(a.value) if a is not None else MessageType.ANYCAST

    @property
    def ratelimit(self) -> int:
        a = self._attribute("ratelimit")
        return a.value if a is not None and isinstance(a.value, int) else 0

    @property
    def security(self) -> Security:
        a = self._attribute("security")
        return Security(a.value) if a is not None else Security.TRUSTED


@dataclass(frozen=True, slots=True)
class External:
    name: str
    id: int
    position: Position


@dataclass(frozen=True, slots=True)
class Event:
    """An event an fsm reacts to, numbered as the pEp engine numbers them."""

    name: str
    kind: EventKind
    number: int


@dataclass(frozen=True, slots=True)
class Fsm:
    name: str
    id: int
    attributes: tuple[Attribute, ...]
    versions: tuple[int, ...]
    states: tuple[State, ...]
    messages: tuple[Message, ...]
    externals: tuple[External, ...]
    position: Position

    @property
    def threshold(self) -> int:
        a = next((a for a in self.attributes if a.name == "threshold"), None)
        return a.value if a is not None and isinstance(a.value, int) else DEFAULT_THRESHOLD

    @property
    def version(self) -> tuple[int, int]:
        """The (major, minor) the `auto Version` field carries; `version 1, 2;` is 1.2."""
        major = self.versions[0] if self.versions else 1
        minor = self.versions[1] if len(self.versions) > 1 else 0
        return major, minor

    @property
    def stateless(self) -> bool:
        """An fsm without states (the engine's Distribution and Storage): a container of
        messages, with no machine."""
        return not self.states

    def field_types(self) -> set[str]:
        """The types its messages' fields use (field_types)."""
        return set().union(*(field_types(msg.fields) for msg in self.messages))

    def embeds(self) -> Iterator[Field]:
        for msg in self.messages:
            for f in msg.fields:
                if f.kind is FieldKind.EMBED:
                    yield f

    def state(self, name: str) -> State | None:
        return next((s for s in self.states if s.name == name), None)

    def message(self, name: str) -> Message | None:
        return next((m for m in self.messages if m.name == name), None)

    def timeout(self, state: State) -> int | None:
        """Effective timeout in seconds: explicit, else (none given, or fsm.yml2's default
        `on`) the threshold; None for `off`."""
        a = state.timeout_attribute
        if a is None:
            return self.threshold
        if a.value == "off":
            return None
        return a.value if isinstance(a.value, int) else self.threshold

    def handlers(self) -> Iterator[tuple[State, Handler]]:
        for s in self.states:
            for h in s.handlers:
                yield s, h

    def events(self) -> tuple[Event, ...]:
        """Every event, numbered as in the pEp engine so applications can inject by number.

        Timeout is 0 and Init 1; a message's event is its id, an external's its id; the
        signaled events (A.1.5.4: handled, but neither message nor external) follow the
        highest external (or message) id, in order of first use.
        """
        events = [Event(TIMEOUT_EVENT, EventKind.TIMEOUT, 0), Event(INIT_EVENT, EventKind.INIT, 1)]
        events += [Event(m.name, EventKind.MESSAGE, m.id) for m in self.messages]
        events += [Event(e.name, EventKind.EXTERNAL, e.id) for e in self.externals]
        known = {e.name for e in events}
        top = max((e.number for e in events), default=1)
        for name in self.signaled():
            if name not in known:
                top += 1
                events.append(Event(name, EventKind.SIGNALED, top))
                known.add(name)
        return tuple(events)

    def event_kind(self, name: str) -> EventKind:
        if name == INIT_EVENT:
            return EventKind.INIT
        if name == TIMEOUT_EVENT:
            return EventKind.TIMEOUT
        if any(m.name == name for m in self.messages):
            return EventKind.MESSAGE
        if any(e.name == name for e in self.externals):
            return EventKind.EXTERNAL
        return EventKind.SIGNALED

    def signaled(self) -> tuple[str, ...]:
        """Handled events that are neither Init, messages nor externals, in first-use order."""
        declared = {m.name for m in self.messages} | {e.name for e in self.externals}
        declared |= {INIT_EVENT, TIMEOUT_EVENT}
        return tuple(
            dict.fromkeys(h.event for _, h in self.handlers() if h.event not in declared)
        )

    def conditions(self) -> tuple[str, ...]:
        """The conditions used after `if`, in first-use order (they need no declaration)."""
        return tuple(dict.fromkeys(c for _, h in self.handlers() for c in h.conditions))

    def actions(self) -> tuple[str, ...]:
        """The actions used after `do`, in first-use order (they need no declaration)."""
        return tuple(dict.fromkeys(a for _, h in self.handlers() for a in h.actions))

    def peers(self) -> tuple[str, ...]:
        """The destinations named by `send M to peer;` and `send M to each peers;`, in
        first-use order."""
        return tuple(
            dict.fromkeys(
                s.to for _, h in self.handlers() for s in h.statements()
                if isinstance(s, Send) and s.to is not None
            )
        )

    def fanouts(self) -> tuple[str, ...]:
        """The destinations named by `send M to each peers;` (each names several parties)."""
        return tuple(
            dict.fromkeys(
                s.to for _, h in self.handlers() for s in h.statements()
                if isinstance(s, Send) and s.to is not None and s.each
            )
        )

    def buffer(self) -> tuple[Field, ...]:
        """The I/O buffer (A.1.6.7): one slot per field name, the first declaration's type."""
        slots: dict[str, Field] = {}
        for m in self.messages:
            for f in m.fields:
                slots.setdefault(f.name, f)
        return tuple(slots.values())


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    id: int
    attributes: tuple[Attribute, ...]
    fsms: tuple[Fsm, ...]
    position: Position

    @property
    def threshold(self) -> int:
        """The engine's protocol threshold (fsm.yml2 declares it, default 20; its C code
        defines it as <PROTOCOL>_THRESHOLD and uses only the fsms' own)."""
        a = next((a for a in self.attributes if a.name == "threshold"), None)
        return a.value if a is not None and isinstance(a.value, int) else DEFAULT_THRESHOLD

    def fsm(self, name: str) -> Fsm | None:
        return next((f for f in self.fsms if f.name == name), None)

    @property
    def asn1(self) -> Attribute | None:
        """fsmc extension: `asn1=Name` names the type module Name.asn1 beside the file."""
        return next((a for a in self.attributes if a.name == "asn1"), None)


@dataclass(frozen=True, slots=True)
class Include:
    path: str
    position: Position


@dataclass(frozen=True, slots=True)
class Document:
    """One parsed file: its includes and protocols (included files are merged in)."""

    path: str
    includes: tuple[Include, ...]
    protocols: tuple[Protocol, ...]
    source: str = field(repr=False, default="")
