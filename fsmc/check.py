"""Semantic checks over the model: every problem is reported, none stops the others.

Errors make a file unusable for the backends; warnings point at likely mistakes that the
draft's own FSM can legitimately contain (it relies on ignoring events, A.1.1.2), and
`--werror` turns them into errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fsmc import model as m
from fsmc.asn1types import Kind, TypeModule
from fsmc.diagnostics import Diagnostics, Position

__all__ = ["check", "edit_distance"]

_SECURITY = {s.value for s in m.Security}
_TYPES = {t.value for t in m.MessageType}
AUTO_TYPES = ("Version",)  # A.1.6.5: "The Version type is the only automatically calculated type"


@dataclass(frozen=True, slots=True)
class _AttributeRule:
    kind: str  # "int", "name", or "enum"
    choices: tuple[str, ...] = ()
    also: tuple[str, ...] = ()  # names allowed besides an int, e.g. timeout=off


_ATTRIBUTES: dict[str, dict[str, _AttributeRule]] = {
    "protocol": {"asn1": _AttributeRule("name"), "threshold": _AttributeRule("int")},
    "fsm": {"threshold": _AttributeRule("int")},
    # `on` is codegen/fsm.yml2's default: the fsm's threshold.
    "state": {"timeout": _AttributeRule("int", also=("off", "on"))},
    "message": {
        "type": _AttributeRule("enum", tuple(sorted(_TYPES))),
        "ratelimit": _AttributeRule("int"),
        "security": _AttributeRule("enum", tuple(sorted(_SECURITY))),
    },
}


def _check_attributes(where: str, owner: str, attributes: Iterable[m.Attribute], d: Diagnostics) -> None:
    rules = _ATTRIBUTES[where]
    seen: set[str] = set()
    for a in attributes:
        rule = rules.get(a.name)
        if rule is None:
            known = ", ".join(sorted(rules)) or "none"
            d.report(a.position, "invalid-attribute",
                     f"unknown attribute {a.name!r} of {where} {owner} (known: {known})")
            continue
        if a.name in seen:
            d.report(a.position, "invalid-attribute", f"attribute {a.name!r} given twice for {owner}")
        seen.add(a.name)
        ok = (
            (rule.kind == "int" and isinstance(a.value, int))
            or (rule.kind == "name" and isinstance(a.value, str))
            or (rule.kind == "enum" and a.value in rule.choices)
            or a.value in rule.also
        )
        if not ok:
            if rule.kind == "enum":
                expected = "one of " + ", ".join(rule.choices)
            elif rule.kind == "int":
                expected = "a number" + "".join(f" or {x}" for x in rule.also)
            else:
                expected = "a name"
            d.report(a.position, "invalid-attribute",
                     f"invalid value {a.value!r} for {a.name} of {owner}: expected {expected}")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, for typo hints."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _duplicates(items: Iterable[tuple[str | int, Position]], code: str, what: str, d: Diagnostics) -> None:
    first: dict[str | int, Position] = {}
    for key, pos in items:
        if key in first:
            p = first[key]
            d.report(pos, code, f"{what} {key} is already defined at line {p.line}")
        else:
            first[key] = pos


def check(document: m.Document, types: dict[str, TypeModule | None], d: Diagnostics,
          embedded: Mapping[str, m.Protocol] | None = None) -> None:
    """Check every protocol of a document; `types` maps protocol name to its type module,
    `embedded` the protocols its embeds name that other files declare."""
    protocols = {**(embedded or {}), **{p.name: p for p in document.protocols}}
    for protocol in document.protocols:
        _check_attributes("protocol", protocol.name, protocol.attributes, d)
        _duplicates(((f.name, f.position) for f in protocol.fsms), "duplicate-fsm", "fsm", d)
        _duplicates(((f.id, f.position) for f in protocol.fsms), "duplicate-fsm", "fsm id", d)
        _check_module_names(protocol, types.get(protocol.name), d)
        _check_python_names(protocol, types.get(protocol.name), d)
        _check_lists(protocol, types.get(protocol.name), d)
        for fsm in protocol.fsms:
            _check_fsm(fsm, types.get(protocol.name), d)
            _check_embeds(protocol, fsm, protocols, d)


def _check_embeds(protocol: m.Protocol, fsm: m.Fsm, protocols: Mapping[str, m.Protocol], d: Diagnostics) -> None:
    """`embed Protocol Fsm name;`: the fsm must exist and have messages (its CHOICE is the
    field's type). An unknown protocol the compiler reported, with the places it looked.
    An embed imports the other protocol's ASN.1 module, which exists in the engine's layout
    of a module per fsm (backends/asn1.py), not in fsmc's one file per protocol."""
    for f in fsm.embeds():
        assert f.protocol is not None
        target = protocols.get(f.protocol)
        if target is None:
            continue
        if protocol.asn1 is not None or target.asn1 is not None:
            which = protocol if protocol.asn1 is not None else target
            d.report(f.position, "embed-layout",
                     f"embed of {f.protocol} {f.type}: protocol {which.name} names its type module with asn1=, "
                     "whose one-file ASN.1 has no module to import from; an embed joins protocols that take "
                     "their types the pEp engine's way (asn.1/pEp.asn1 beside codegen/, or --types)")
            continue
        embedded = target.fsm(f.type)
        if embedded is None:
            names = {x.name for x in target.fsms}
            d.report(f.position, "unknown-embed",
                     f"embed of unknown fsm {f.type} of protocol {f.protocol} (its fsms: "
                     f"{', '.join(x.name for x in target.fsms) or 'none'})" + _hint(f.type, names))
        elif not embedded.messages:
            d.report(f.position, "unknown-embed",
                     f"embed of fsm {f.protocol} {f.type}, which has no messages: its CHOICE would be empty")


def _check_lists(protocol: m.Protocol, types: TypeModule | None, d: Diagnostics) -> None:
    """A list's record type is declared in the fsm's ASN.1 module and as a Python class:
    it must have members, and its name must be free there (the type module's types, the
    messages and fsms, other lists of other members)."""
    messages = {msg.name: f"message {msg.name}" for fsm in protocol.fsms for msg in fsm.messages}
    messages |= {fsm.name: f"fsm {fsm.name}" for fsm in protocol.fsms}
    declared: dict[str, m.Field] = {}
    for fsm in protocol.fsms:
        for msg in fsm.messages:
            for f in m.records(msg.fields):
                if not f.fields:
                    d.report(f.position, "empty-list", f"list {f.type} {f.name} has no fields: an ASN.1 SEQUENCE "
                                                       "of it would carry nothing")
                for member in f.fields:
                    if member.kind in (m.FieldKind.AUTO, m.FieldKind.EMBED):
                        d.report(member.position, "list-type",
                                 f"{member.kind.value} {member.name} in list {f.type}: a list holds fields and "
                                 "lists (codegen/fsm.yml2: list < field >)")
                clash = None
                if types is not None and f.type in types.types:
                    clash = f"the type {f.type} of the ASN.1 type module {types.name}"
                elif f.type in m.BUILTIN_TYPES:
                    clash = f"the built-in type {f.type}"
                elif f.type in messages:
                    clash = messages[f.type]
                elif f.type in declared and _members(declared[f.type]) != _members(f):
                    first = declared[f.type]
                    clash = f"the list {f.type} at line {first.position.line}, with other fields"
                if clash is not None:
                    d.report(f.position, "list-type", f"list type {f.type} is already {clash}: rename the list's type")
                else:
                    declared.setdefault(f.type, f)


def _members(f: m.Field) -> tuple[tuple[str, str, str], ...]:
    return tuple((x.kind.value, x.shape, x.name) for x in f.fields)


def _check_module_names(protocol: m.Protocol, types: TypeModule | None, d: Diagnostics) -> None:
    """The protocol and each fsm become ASN.1 modules named in upper case (the pEp
    engine's scheme, backends/asn1.py), compiled beside the type module: two of one name
    make asn1tools fail at the first message encoded (or recurse without end), long
    after `fsmc check` passed."""
    taken: dict[str, str] = {} if types is None else {types.name: f"the ASN.1 type module {types.name}"}
    for what, name, position in [("protocol", protocol.name, protocol.position),
                                 *(("fsm", f.name, f.position) for f in protocol.fsms)]:
        module = name.upper()
        if module not in taken:
            taken[module] = f"{what} {name}"
        elif taken[module] != f"{what} {name}":  # two fsms of one name are duplicate-fsm
            d.report(position, "asn1-name", f"{what} {name} would be ASN.1 module {module}, the name of "
                                            f"{taken[module]}: rename one")


def _check_python_names(protocol: m.Protocol, types: TypeModule | None, d: Diagnostics) -> None:
    """The generated Python module defines, at its top level, a class per fsm (and its
    State, Event, Buffer and Bindings), per message and per SEQUENCE type of the type
    module: two of one name, and the later silently replaces the earlier (an fsm named
    like a SEQUENCE its messages use would stand where the record class should)."""
    records = {t.name.replace("-", "_") for t in types.types.values() if t.kind is Kind.SEQUENCE} if types else set()
    taken: dict[str, str] = {}
    for fsm in protocol.fsms:
        for name, what in [(fsm.name, f"fsm {fsm.name}"),
                           *((fsm.name + suffix, f"fsm {fsm.name}'s {suffix} class")
                             for suffix in ("State", "Event", "Buffer", "Bindings"))]:
            _take_python_name(name, what, fsm.position, records, taken, d)
        for msg in fsm.messages:
            _take_python_name(msg.name, f"message {msg.name} of fsm {fsm.name}", msg.position, records, taken, d)
            for f in m.records(msg.fields):  # one class per list type (a clash is list-type)
                taken.setdefault(f.type, f"list {f.type}")


def _take_python_name(name: str, what: str, position: Position, records: set[str], taken: dict[str, str],
                      d: Diagnostics) -> None:
    if name in records:
        d.report(position, "python-name", f"{what} would be Python class {name}, the name of the record of "
                                          f"ASN.1 type {name}: rename one")
    elif name in taken and taken[name] != what:
        d.report(position, "python-name", f"{what} would be Python class {name}, the name of {taken[name]}: "
                                          f"rename one")
    else:
        taken.setdefault(name, what)


def _check_peers(fsm: m.Fsm, d: Diagnostics) -> None:
    """A peer names one party (`send M to peer;`) or several (`send M to each peers;`),
    never both: the binding returns a name or a sequence of names."""
    kinds: dict[str, bool] = {}
    for _, h in fsm.handlers():
        for s in h.statements():
            if not isinstance(s, m.Send) or s.to is None:
                continue
            if kinds.setdefault(s.to, s.each) != s.each:
                one, many = (f"`send M to each {s.to};`", f"`send M to {s.to};`")
                d.report(s.position, "peer-conflict", f"{s.to} is used as {one if s.each else many} here and "
                                                      f"as {many if s.each else one} elsewhere: a peer names "
                                                      f"one party or several, not both")


def _check_fsm(fsm: m.Fsm, types: TypeModule | None, d: Diagnostics) -> None:
    _check_attributes("fsm", fsm.name, fsm.attributes, d)
    states = {s.name for s in fsm.states}
    messages = {msg.name for msg in fsm.messages}
    externals = {e.name for e in fsm.externals}

    # --- declarations
    for s in fsm.states:
        if s.name == m.END_STATE:
            d.report(s.position, "reserved-name",
                     f"{m.END_STATE} is the implicit terminal state; it cannot be declared")
        _check_attributes("state", s.name, s.attributes, d)
        _duplicates(((h.event, h.position) for h in s.handlers), "duplicate-handler",
                    f"handler in state {s.name} for event", d)
    _duplicates(((s.name, s.position) for s in fsm.states), "duplicate-state", "state", d)
    if m.INIT_STATE not in states and fsm.states:
        d.report(fsm.position, "undefined-state", f"fsm {fsm.name} has no {m.INIT_STATE}, where every machine starts")

    _check_peers(fsm, d)
    _duplicates(((msg.name, msg.position) for msg in fsm.messages), "duplicate-message", "message", d)
    _duplicates(((msg.id, msg.position) for msg in fsm.messages), "duplicate-message", "message id", d)
    _duplicates(((e.name, e.position) for e in fsm.externals), "duplicate-external", "external", d)
    # Messages and externals share the event numbers (A.1.5.5), so their ids must differ too.
    message_ids = {msg.id: msg for msg in fsm.messages}
    for e in fsm.externals:
        if e.id in message_ids:
            other = message_ids[e.id]
            d.report(e.position, "duplicate-external",
                     f"external {e.name} has id {e.id}, the id of message {other.name} (line {other.position.line})")
    _duplicates(((e.id, e.position) for e in fsm.externals), "duplicate-external", "external id", d)
    for e in fsm.externals:
        if e.name in messages:
            d.report(e.position, "event-conflict", f"external {e.name} has the name of a message")
        if e.name in (m.INIT_EVENT, m.TIMEOUT_EVENT) or e.id in (0, 1):
            d.report(e.position, "reserved-name", f"external {e.name} {e.id}: Init (1) and Timeout (0) are reserved")
    for msg in fsm.messages:
        if msg.name in (m.INIT_EVENT, m.TIMEOUT_EVENT) or msg.id in (0, 1):
            d.report(msg.position, "reserved-name",
                     f"message {msg.name} {msg.id}: Init (1) and Timeout (0) are reserved")
        _check_attributes("message", msg.name, msg.attributes, d)
        _duplicates(((f.name, f.position) for f in msg.fields), "duplicate-field",
                    f"field of message {msg.name}", d)
        for f in msg.fields:
            _check_field_type(f, types, d)
        for f in m.records(msg.fields):
            _duplicates(((x.name, x.position) for x in f.fields), "duplicate-field", f"field of list {f.type}", d)
            for x in f.fields:
                if x.kind is m.FieldKind.FIELD:
                    _check_field_type(x, types, d)

    # The I/O buffer is shared by all messages (A.1.6.7): one name, one type.
    buffer: dict[str, m.Field] = {}
    for msg in fsm.messages:
        for f in msg.fields:
            first = buffer.setdefault(f.name, f)
            if first.shape != f.shape:
                d.report(f.position, "field-type-conflict",
                         f"field {f.name} is {f.shape} here but {first.shape} at line {first.position.line}; "
                         "all messages share one I/O buffer")

    # --- statements
    for _, h in fsm.handlers():
        for st in h.statements():
            if isinstance(st, m.Go) and st.state not in states and st.state != m.END_STATE:
                d.report(st.position, "undefined-state", f"go to undefined state {st.state}"
                         + _hint(st.state, states | {m.END_STATE}))
            elif isinstance(st, m.Send) and st.message not in messages:
                d.report(st.position, "undefined-message", f"send of undefined message {st.message}"
                         + _hint(st.message, messages))
            elif isinstance(st, m.Send) and (ignored := fsm.message(st.message)) is not None \
                    and ignored.security is m.Security.IGNORE:
                d.report(st.position, "ignored-send",
                         f"send of {ignored.name}, which is security=ignore (line {ignored.position.line}): the "
                         "machines neither send nor take it")

    # --- warnings
    if fsm.stateless:
        return  # a container of messages (the engine's Distribution): nothing is sent or handled here
    reachable = _reachable(fsm)
    for s in fsm.states:
        if s.name not in reachable:
            d.report(s.position, "unreachable-state", f"state {s.name} is unreachable from {m.INIT_STATE}")
    sent = {st.message for _, h in fsm.handlers() for st in h.statements() if isinstance(st, m.Send)}
    handled = {h.event for _, h in fsm.handlers()}
    for msg in fsm.messages:
        if msg.security is m.Security.IGNORE:
            continue  # neither sent nor taken by design (the pEp engine's ReceiverRating)
        # An fsm that sends nothing leaves its messages to the application (the engine's
        # TrustSync and GroupSync, whose C code sends them): no warning for each.
        if msg.name not in sent and sent:
            d.report(msg.position, "message-never-sent", f"message {msg.name} is never sent")
        if msg.name not in handled:
            d.report(msg.position, "message-never-handled", f"message {msg.name} is never handled")
    names = messages | externals
    for _, h in fsm.handlers():
        if h.event in names or h.event in (m.INIT_EVENT, m.TIMEOUT_EVENT):
            continue
        close = sorted(n for n in names if edit_distance(h.event.lower(), n.lower()) <= 2)
        if close:
            what = "message" if close[0] in messages else "external"
            d.report(h.position, "likely-typo",
                     f"event {h.event} is neither message nor external, so it is a signaled event; "
                     f"did you mean the {what} {close[0]}?")


def _check_field_type(f: m.Field, types: TypeModule | None, d: Diagnostics) -> None:
    if f.kind in (m.FieldKind.LIST, m.FieldKind.EMBED):
        return  # _check_lists and _check_embeds
    if f.kind is m.FieldKind.AUTO and f.type not in AUTO_TYPES:
        d.report(f.position, "unknown-type",
                 f"auto field {f.name} has type {f.type}; only {', '.join(AUTO_TYPES)} is computed automatically")
        return
    if f.type in m.BUILTIN_TYPES:
        return
    if types is None:
        return  # the compiler said why there is no type module, once for the protocol
    if f.type not in types.types:
        d.report(f.position, "unknown-type",
                 f"unknown type {f.type} of field {f.name}: not bool, int or a type of {types.name}"
                 + _hint(f.type, set(types.types)))


def _hint(name: str, candidates: set[str]) -> str:
    close = sorted((edit_distance(name, c), c) for c in candidates)
    if close and close[0][0] <= 2:
        return f"; did you mean {close[0][1]}?"
    return ""


def _reachable(fsm: m.Fsm) -> set[str]:
    graph = {s.name: {t for h in s.handlers for t in h.transitions} for s in fsm.states}
    seen, todo = set(), [m.INIT_STATE]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(graph.get(name, ()))
    return seen
