"""ASN.1 backend: the messages of a protocol as ASN.1 modules, as the pEp engine writes them.

The engine's generator (and so its wire format, UPER per A.1.6) follows this scheme:

- one module per fsm, named after it in capitals (KEYSYNC), `DEFINITIONS AUTOMATIC TAGS
  EXTENSIBILITY IMPLIED`, importing the types it uses from the type module (PEP);
- each message a SEQUENCE of its fields in declaration order, `_` in names written `-`;
- the fsm a CHOICE of its messages named in lowerCamelCase, tagged [APPLICATION id], in
  id order;
- one module per protocol (SYNC) whose type (Sync) is a CHOICE of its fsms tagged
  [APPLICATION fsm-id], with an extension marker after the first.

The output file holds the type module verbatim first, so generated/ is self-contained.
"""

from __future__ import annotations

from fsmc import model as m
from fsmc.backends.common import header, source_name
from fsmc.backends.common import module_name as file_name
from fsmc.compiler import Compilation

__all__ = ["asn1_name", "choice_name", "module_name", "render", "render_text"]

_BUILTIN = {"bool": "BOOLEAN", "int": "INTEGER"}


def module_name(name: str) -> str:
    return name.upper()


def choice_name(name: str) -> str:
    """lowerCamelCase alternative name: Beacon -> beacon, KeySync -> keySync."""
    return name[:1].lower() + name[1:]


def protocol_choice_name(fsm: m.Fsm) -> str:
    """The protocol CHOICE names its fsms in lower case, as the engine does (keysync)."""
    return fsm.name.lower()


def asn1_name(field: str) -> str:
    return field.replace("_", "-")


def _fsm_module(fsm: m.Fsm, type_module: str | None) -> list[str]:
    used = sorted({f.type for msg in fsm.messages for f in msg.fields if f.type not in _BUILTIN})
    out = [f"{module_name(fsm.name)} DEFINITIONS AUTOMATIC TAGS EXTENSIBILITY IMPLIED ::=", "", "BEGIN", ""]
    if used and type_module is not None:
        out += [f"IMPORTS {', '.join(used)} FROM {type_module};", ""]
    for msg in sorted(fsm.messages, key=lambda x: x.id):
        if not msg.fields:
            out.append(f"{msg.name} ::= SEQUENCE {{")
            out.append("}")
        else:
            out.append(f"{msg.name} ::= SEQUENCE {{")
            members = [f"    {asn1_name(f.name)} {_BUILTIN.get(f.type, f.type)}" for f in msg.fields]
            out.append(",\n".join(members))
            out.append("}")
        out.append("")
    alternatives = [
        f"    {choice_name(msg.name)} [APPLICATION {msg.id}] {msg.name}"
        for msg in sorted(fsm.messages, key=lambda x: x.id)
    ]
    out.append(f"{fsm.name} ::= CHOICE {{")
    out.append(",\n".join(alternatives))
    out += ["}", "", "END", ""]
    return out


def _protocol_module(protocol: m.Protocol) -> list[str]:
    fsms = sorted(protocol.fsms, key=lambda f: f.id)
    out = [f"{module_name(protocol.name)} DEFINITIONS AUTOMATIC TAGS EXTENSIBILITY IMPLIED ::=", "", "BEGIN", ""]
    if fsms:
        imports = "\n        ".join(f"{f.name} FROM {module_name(f.name)}" for f in fsms)
        out.append(f"IMPORTS {imports};")
    out += ["", f"{protocol.name} ::= CHOICE {{"]
    alternatives = [f"    {protocol_choice_name(f)} [APPLICATION {f.id}] {f.name}" for f in fsms]
    if alternatives:
        alternatives.insert(1, "    ...")
    out.append(",\n".join(alternatives))
    out += ["}", "", "END", ""]
    return out


def render_text(compilation: Compilation, protocol: m.Protocol) -> str:
    types = compilation.type_module(protocol)
    parts = [header(source_name(compilation.path), "--")]
    if types is not None:
        parts.append(f"-- The type module {types.name}, from {source_name(types.path)}:\n")
        parts.append(types.text.rstrip() + "\n")
    for fsm in sorted(protocol.fsms, key=lambda f: f.id):
        parts.append("\n".join(_fsm_module(fsm, types.name if types else None)))
    parts.append("\n".join(_protocol_module(protocol)))
    return "\n".join(parts)


def render(compilation: Compilation, protocol: m.Protocol) -> dict[str, str]:
    return {f"{file_name(compilation, protocol)}.asn1": render_text(compilation, protocol)}
