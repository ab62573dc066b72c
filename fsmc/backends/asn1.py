"""ASN.1 backend: the messages of a protocol as ASN.1 modules, as the pEp engine writes them.

The engine's generator (and so its wire format, UPER per A.1.6) follows this scheme:

- one module per fsm, named after it in capitals (KEYSYNC), `DEFINITIONS AUTOMATIC TAGS
  EXTENSIBILITY IMPLIED`, importing the types it uses from the type module (PEP);
- each message a SEQUENCE of its fields in declaration order, `_` in names written `-`;
- the fsm a CHOICE of its messages named in lowerCamelCase, tagged [APPLICATION id], in
  id order;
- one module per protocol (SYNC) whose type (Sync) is a CHOICE of its fsms tagged
  [APPLICATION fsm-id], with an extension marker after the first.

With `asn1=` on the protocol (fsmc's layout), one output file holds the type module
verbatim, then the fsms' modules, then the protocol's, so generated/ is self-contained.

Without it, the protocol takes its types as the pEp engine does (compiler.py), and fsmc
writes what the engine's generator (codegen/gen_messages.ysl2) writes: one file per
protocol and per fsm, named in lower case (sync.asn1, keysync.asn1), each module with the
engine's object identifier, EXPORTS and fixed IMPORTS from PEP; messages, lists and CHOICE
alternatives in declaration order; beside them the type module, copied as pEp.asn1, and
the modules of embedded protocols. Only the leading comment differs from the engine's
(which credits the generator's author): from the module name on, the files are the
engine's byte for byte (tests/test_engine_dialect.py compares them with the generator's
output). One difference in kind: two embeds of one fsm import it once, where the engine
writes the IMPORTS line twice.
"""

from __future__ import annotations

from fsmc import model as m
from fsmc.backends.common import header, source_name
from fsmc.backends.common import module_name as file_name
from fsmc.compiler import Compilation

__all__ = ["asn1_name", "choice_name", "codec_files", "module_name", "render", "render_text"]

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
    used = sorted(fsm.field_types() - set(_BUILTIN))
    out = [f"{module_name(fsm.name)} DEFINITIONS AUTOMATIC TAGS EXTENSIBILITY IMPLIED ::=", "", "BEGIN", ""]
    if used and type_module is not None:
        out += [f"IMPORTS {', '.join(used)} FROM {type_module};", ""]
    for msg in sorted(fsm.messages, key=lambda x: x.id):
        if not msg.fields:
            out.append(f"{msg.name} ::= SEQUENCE {{")
            out.append("}")
        else:
            out.append(f"{msg.name} ::= SEQUENCE {{")
            out.append(_engine_members(msg.fields).rstrip("\n"))
            out.append("}")
        out.append("")
        for lst in m.records(msg.fields):
            out += [f"{lst.type} ::= SEQUENCE {{", _engine_members(lst.fields).rstrip("\n"), "}", ""]
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
    if compilation.engine_layout(protocol):
        return engine_render(compilation, protocol)
    return {f"{file_name(compilation, protocol)}.asn1": render_text(compilation, protocol)}


# --- the engine's layout (gen_messages.ysl2) ---------------------------------------------

_OID = "{ iso(1) org(3) dod(6) internet(1) private(4) enterprise(1) pEp(47878)"
_ENGINE_HEAD = "DEFINITIONS AUTOMATIC TAGS EXTENSIBILITY IMPLIED ::=\n\nBEGIN\n\n"


def engine_file(name: str) -> str:
    return f"{name.lower()}.asn1"


def _engine_type(f: m.Field) -> str:
    return _BUILTIN.get(f.type, f.type.replace("_", "-"))


def _engine_members(fields: tuple[m.Field, ...]) -> str:
    lines = []
    for f in fields:
        of = "SEQUENCE OF " if f.kind is m.FieldKind.LIST else ""
        lines.append(f"    {asn1_name(f.name)} {of}{_engine_type(f)}")
    return "".join(line + (",\n" if i < len(lines) - 1 else "\n") for i, line in enumerate(lines))


def _engine_header(name: str, source: str) -> str:
    # The engine's header has three blocks of comments; so has this one, so that the files
    # without their comment lines are the engine's byte for byte (blank lines included).
    return (header(source, "--") + f"\n-- {name} protocol for p≡p\n-- in the layout of the pEp engine's "
            "generator (codegen/gen_messages.ysl2)\n\n-- From the module name on, as the engine writes it.\n\n")


def _engine_protocol(protocol: m.Protocol, source: str) -> str:
    fsms = protocol.fsms  # in declaration order, as the engine's fsm[1], fsm[position()>1]
    out = _engine_header(protocol.name, source)
    out += f"{module_name(protocol.name)}\n    {_OID} {protocol.name.lower()}({protocol.id}) }}\n\n"
    out += _ENGINE_HEAD + "IMPORTS\n"
    out += "".join(f"    {f.name} FROM {module_name(f.name)}\n" for f in fsms) + ";\n\n"
    out += f"{protocol.name} ::= CHOICE {{\n"
    if fsms:
        first, rest = fsms[0], fsms[1:]
        out += f"    {protocol_choice_name(first)} [APPLICATION {first.id}] {first.name}{',' if rest else ''}\n"
        if rest:
            out += "    ...,\n"
        out += "".join(f"    {protocol_choice_name(f)} [APPLICATION {f.id}] {f.name}"
                       f"{',' if i < len(rest) - 1 else ''}\n" for i, f in enumerate(rest))
    return out + "}\n\nEND\n\n"


def _engine_fsm(protocol: m.Protocol, fsm: m.Fsm, source: str) -> str:
    from fsmc.compiler import ENGINE_IMPORTS

    out = _engine_header(fsm.name, source)
    out += (f"{module_name(fsm.name)}\n    {_OID} {protocol.name.lower()}({protocol.id}) "
            f"{fsm.name.lower()}({fsm.id}) }}\n\n")
    out += _ENGINE_HEAD + f"EXPORTS {fsm.name};\nIMPORTS {', '.join(ENGINE_IMPORTS)} FROM PEP\n"
    embeds = dict.fromkeys((f.type, f.protocol or "") for f in fsm.embeds())
    out += "".join(f"        {t} FROM {module_name(p)}\n" for t, p in embeds) + ";\n\n"
    for msg in fsm.messages:
        out += f"{msg.name} ::= SEQUENCE {{\n{_engine_members(msg.fields)}}}\n\n"
        for lst in m.records(msg.fields):
            out += f"{lst.type.replace('_', '-')} ::= SEQUENCE {{\n{_engine_members(lst.fields)}}}\n\n"
    out += f"{fsm.name} ::= CHOICE {{\n"
    out += "".join(f"    {choice_name(msg.name)} [APPLICATION {msg.id}] {msg.name}"
                   f"{',' if i < len(fsm.messages) - 1 else ''}\n" for i, msg in enumerate(fsm.messages))
    return out + "}\n\nEND\n\n"


def engine_render(compilation: Compilation, protocol: m.Protocol) -> dict[str, str]:
    """The engine's files for a protocol and its fsms, the type module, and the files of
    the protocols it embeds (the codec compiles them together)."""
    source = source_name(compilation.path)
    files = {engine_file(protocol.name): _engine_protocol(protocol, source)}
    for fsm in protocol.fsms:
        files[engine_file(fsm.name)] = _engine_fsm(protocol, fsm, source)
    types = compilation.type_module(protocol)
    if types is not None:
        files[types.path.name] = types.text
    for embedded in compilation.embedded_from_other_files(protocol):
        files.update(render(*embedded))  # with what it embeds in turn
    return files


def codec_files(compilation: Compilation, protocol: m.Protocol) -> list[str]:
    """The ASN.1 files the protocol's codec compiles, in the output directory: its own and
    those of every protocol it embeds, in turn (those of its own file's too, which
    `engine_render` leaves to that protocol's rendering)."""
    if not compilation.engine_layout(protocol):
        return [f"{file_name(compilation, protocol)}.asn1"]
    files: set[str] = set()
    todo, done = [protocol], set()
    while todo:  # this file's protocols that it embeds, and that they embed (once each)
        p = todo.pop()
        if p.name not in done:
            done.add(p.name)
            files |= set(engine_render(compilation, p))
            todo += [q for c, q in compilation.embedded_by(p) if c is compilation]
    return sorted(files)
