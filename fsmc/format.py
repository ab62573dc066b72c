"""Print a model back as DSL text in one canonical layout (`fsmc format`).

Parsing the printed text gives the same model (positions aside); the property tests
rely on that to test the parser on generated programs. Comments are not part of the
model and are not printed.
"""

from __future__ import annotations

from fsmc import model as m

__all__ = ["format_document"]

_INDENT = "    "


def _attributes(attributes: tuple[m.Attribute, ...], comma: bool) -> str:
    sep = ", " if comma else " "
    return "".join(f"{sep}{a.name}={a.value}" for a in attributes)


def _statements(body: tuple[m.Statement, ...], depth: int) -> list[str]:
    pad = _INDENT * depth
    out: list[str] = []
    for s in body:
        if isinstance(s, m.Do):
            out.append(f"{pad}do {s.action};")
        elif isinstance(s, m.Send):
            out.append(f"{pad}send {s.message}{f' to {s.to}' if s.to else ''};")
        elif isinstance(s, m.Go):
            out.append(f"{pad}go {s.state};")
        elif isinstance(s, m.Debug):
            out.append(f"{pad}debug > {s.text}")
        else:
            out.append(f"{pad}if {s.condition} {{")
            out += _statements(s.then, depth + 1)
            if s.orelse is not None:
                out.append(f"{pad}}}")
                out.append(f"{pad}else {{")
                out += _statements(s.orelse, depth + 1)
            out.append(f"{pad}}}")
    return out


def _fields(fields: tuple[m.Field, ...], depth: int) -> list[str]:
    pad = _INDENT * depth
    out: list[str] = []
    for f in fields:
        if f.kind is m.FieldKind.LIST:
            out.append(f"{pad}list {f.type} {f.name} {{")
            out += _fields(f.fields, depth + 1)
            out.append(f"{pad}}}")
        elif f.kind is m.FieldKind.EMBED:
            out.append(f"{pad}embed {f.protocol} {f.type} {f.name};")
        else:
            out.append(f"{pad}{f.kind.value} {f.type} {f.name};")
    return out


def _fsm(fsm: m.Fsm, depth: int) -> list[str]:
    pad, inner = _INDENT * depth, _INDENT * (depth + 1)
    out = [f"{pad}fsm {fsm.name} {fsm.id}{_attributes(fsm.attributes, True)} {{"]
    if fsm.versions:
        out.append(f"{inner}version {', '.join(map(str, fsm.versions))};")
    for s in fsm.states:
        out.append(f"{inner}state {s.name}{_attributes(s.attributes, False)} {{")
        for h in s.handlers:
            out.append(f"{inner}{_INDENT}on {h.event} {{")
            out += _statements(h.body, depth + 3)
            out.append(f"{inner}{_INDENT}}}")
        out.append(f"{inner}}}")
    for e in fsm.externals:
        out.append(f"{inner}external {e.name} {e.id};")
    for msg in fsm.messages:
        out.append(f"{inner}message {msg.name} {msg.id}{_attributes(msg.attributes, True)} {{")
        out += _fields(msg.fields, depth + 2)
        out.append(f"{inner}}}")
    out.append(f"{pad}}}")
    return out


def format_document(document: m.Document) -> str:
    out: list[str] = [f"include {i.path}" for i in document.includes]
    for p in document.protocols:
        out.append(f"protocol {p.name} {p.id}{_attributes(p.attributes, True)} {{")
        for f in p.fsms:
            out += _fsm(f, 1)
        out.append("}")
    return "\n".join(out) + "\n"
