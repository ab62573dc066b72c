"""Python backend: one module per protocol with a machine class per fsm.

The module holds, per fsm: the records of the ASN.1 types its messages use, the state and
event enums (events numbered as the pEp engine numbers them), one frozen dataclass per
message with its attributes as ClassVars, the I/O buffer, the conditions and actions as a
typing.Protocol for the application to implement, and the machine: one method per
handler, the handler's statements translated one to one, and its tables.

Statements are translated here (they nest); the template lays out the module.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jinja2

from fsmc import model as m
from fsmc.asn1types import Kind, TypeModule
from fsmc.backends.asn1 import asn1_name, choice_name, protocol_choice_name
from fsmc.backends.common import header, source_name
from fsmc.compiler import Compilation

__all__ = ["render", "render_text"]

_INDENT = "    "


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("fsmc", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _str(text: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def _tuple(items: list[str]) -> str:
    """A Python tuple literal of already-rendered items: (), (a,), (a, b)."""
    if len(items) == 1:
        return f"({items[0]},)"
    return f"({', '.join(items)})"


def py_name(asn1: str) -> str:
    return asn1.replace("-", "_")


class _Types:
    """Maps DSL and ASN.1 type names to Python annotations and wire shapes."""

    def __init__(self, module: TypeModule | None) -> None:
        self.module = module

    def annotation(self, type_name: str) -> str:
        if type_name == "bool":
            return "bool"
        if type_name == "int":
            return "int"
        if self.module is None or type_name not in self.module.types:
            return {"OCTET STRING": "bytes", "INTEGER": "int", "BOOLEAN": "bool"}.get(type_name, "str")
        info = self.module.types[type_name]
        if info.kind is Kind.SEQUENCE:
            return py_name(info.name)
        if info.kind is Kind.LIST:
            assert info.element is not None
            return f"tuple[{self.annotation(info.element)}, ...]"
        return {Kind.BYTES: "bytes", Kind.STRING: "str", Kind.INTEGER: "int",
                Kind.BOOLEAN: "bool", Kind.ENUMERATED: "str"}[info.kind]

    def wire(self, name: str, wire: str, type_name: str) -> str:
        """The `Wire(...)` describing a field: nested record and list-ness."""
        record, many = None, False
        if self.module is not None and type_name in self.module.types:
            info = self.module.types[type_name]
            if info.kind is Kind.LIST and info.element is not None:
                many = True
                element = self.module.types.get(info.element)
                if element is not None and element.kind is Kind.SEQUENCE:
                    record = py_name(element.name)
            elif info.kind is Kind.SEQUENCE:
                record = py_name(info.name)
        args = [_str(name), _str(wire)]
        if record is not None:
            args.append(record)
        if many:
            args.append("many=True")
        return f"Wire({', '.join(args)})"

    def records(self, used: list[str]) -> list[dict[str, Any]]:
        """The SEQUENCE types `used` needs, dependencies first, as template data."""
        if self.module is None:
            return []
        out = []
        for name in self.module.dependencies(used):
            info = self.module.types[name]
            if info.kind is not Kind.SEQUENCE:
                continue
            out.append({
                "name": py_name(name),
                "asn1": name,
                "fields": [
                    {"name": mm.python_name, "annotation": self.annotation(mm.type),
                     "default": None if mm.default is None else repr(mm.default)}
                    for mm in info.members
                ],
                "wire": [self.wire(mm.python_name, mm.name, mm.type) for mm in info.members],
            })
        return out


def _statements(body: tuple[m.Statement, ...], fsm: m.Fsm, depth: int) -> list[str]:
    pad = _INDENT * depth
    lines: list[str] = []
    for s in body:
        if isinstance(s, m.Do):
            lines.append(f"{pad}b.{s.action}()")
        elif isinstance(s, m.Send):
            to = f", to=b.{s.to}()" if s.to else ""
            lines.append(f"{pad}self.send({s.message}{to})")
        elif isinstance(s, m.Debug):
            lines.append(f"{pad}self.debug({_str(s.text)})")
        elif isinstance(s, m.Go):
            lines.append(f"{pad}return {fsm.name}State.{s.state}")
        else:
            lines.append(f"{pad}if b.{s.condition}():")
            lines += _statements(s.then, fsm, depth + 1) or [f"{pad}{_INDENT}pass"]
            if s.orelse is not None:
                lines.append(f"{pad}else:")
                lines += _statements(s.orelse, fsm, depth + 1) or [f"{pad}{_INDENT}pass"]
    return lines


def _uses_bindings(body: tuple[m.Statement, ...]) -> bool:
    return any(isinstance(s, m.Do | m.If) or (isinstance(s, m.Send) and s.to) for s in m.walk(body))


def _ends_with_return(body: tuple[m.Statement, ...]) -> bool:
    return bool(body) and isinstance(body[-1], m.Go)


def _fsm_context(fsm: m.Fsm, types: _Types, source: str) -> dict[str, Any]:
    states = [{"name": s.name, "value": i, "timeout": fsm.timeout(s), "line": s.position.line}
              for i, s in enumerate(fsm.states, start=1)]
    messages = []
    for msg in fsm.messages:
        messages.append({
            "name": msg.name,
            "id": msg.id,
            "choice": choice_name(msg.name),
            "type": msg.type.name,
            "ratelimit": msg.ratelimit,
            "security": msg.security.name,
            "line": msg.position.line,
            "fields": [{"name": f.name, "annotation": types.annotation(f.type)} for f in msg.fields],
            "buffer_fields": _tuple([_str(f.name) for f in msg.fields if f.kind is m.FieldKind.FIELD]),
            "auto": _tuple([f"({_str(f.name)}, {_str(f.type)})" for f in msg.fields if f.kind is m.FieldKind.AUTO]),
            "wire": [types.wire(f.name, asn1_name(f.name), f.type) for f in msg.fields],
            "attributes": ", ".join(f"{a.name}={a.value}" for a in msg.attributes),
        })
    handlers = []
    for s, h in fsm.handlers():
        body = _statements(h.body, fsm, 2)
        if not _ends_with_return(h.body):
            body.append(f"{_INDENT * 2}return None")
        handlers.append({
            "state": s.name,
            "event": h.event,
            "method": f"{s.name}_{h.event}",
            "line": h.position.line,
            "kind": fsm.event_kind(h.event).value,
            "bindings": _uses_bindings(h.body),
            "body": body,
        })
    used = sorted({f.type for msg in fsm.messages for f in msg.fields})
    return {
        "name": fsm.name,
        "id": fsm.id,
        "choice": protocol_choice_name(fsm),
        "threshold": fsm.threshold,
        "version": fsm.version,
        "line": fsm.position.line,
        "source": source,
        "states": states,
        "events": [{"name": e.name, "number": e.number, "kind": e.kind.value} for e in fsm.events()],
        "messages": messages,
        "buffer": [{"name": f.name, "annotation": types.annotation(f.type)} for f in fsm.buffer()],
        "conditions": list(fsm.conditions()),
        "actions": list(fsm.actions()),
        "peers": list(fsm.peers()),
        "handlers": handlers,
        "records": types.records(used),
        "auto_types": sorted({f.type for msg in fsm.messages for f in msg.fields if f.kind is m.FieldKind.AUTO}),
    }


def render_text(compilation: Compilation, protocol: m.Protocol) -> str:
    types = _Types(compilation.type_module(protocol))
    source = source_name(compilation.path)
    fsms = [_fsm_context(f, types, source) for f in protocol.fsms]
    # Records are shared by the fsms of a protocol: emit each once.
    seen: set[str] = set()
    records = []
    for f in fsms:
        for r in f["records"]:
            if r["name"] not in seen:
                seen.add(r["name"])
                records.append(r)
    return _environment().get_template("python_module.py.j2").render(
        header=header(source, "#"),
        protocol={"name": protocol.name, "id": protocol.id, "asn1": f"{protocol.name.lower()}.asn1"},
        fsms=fsms,
        records=records,
    )


def render(compilation: Compilation, protocol: m.Protocol) -> dict[str, str]:
    return {f"{protocol.name.lower()}.py": render_text(compilation, protocol)}
