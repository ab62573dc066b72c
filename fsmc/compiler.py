"""The front of the pipeline: read, parse, load type modules, find embedded protocols, check.

`load(path)` is what every command and backend starts from; it never raises on bad
input, it reports. Backends run only on a compilation without errors.

Where a protocol's field types come from:
- `asn1=Name` on the protocol (the fsmc extension): `Name.asn1` beside the DSL file, and
  fsmc's own layout of the generated ASN.1 (one file, type module included);
- otherwise the pEp engine's way: its generator imports PEP from `asn.1/pEp.asn1` of the
  engine's tree, where the FSM files are in `codegen/`; fsmc looks there (or takes the file
  given as `types`, `fsmc --types FILE`), and then writes the generated ASN.1 as the
  engine's generator does, a module per fsm and per protocol (backends/asn1.py).

An `embed Protocol Fsm name;` names another protocol: fsmc looks for it in the file and
the files it includes, then in the other `.fsm` files of the file's folder (the engine
keeps sync.fsm and distribution.fsm side by side), then in each folder of `search`
(`fsmc -I DIR`); the protocol found is loaded as a compilation of its own, so the
backends can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fsmc import model as m
from fsmc.asn1types import TypeModule, load_type_module
from fsmc.check import check
from fsmc.diagnostics import Diagnostics
from fsmc.parser import parse_file

__all__ = ["ENGINE_TYPE_MODULE", "Compilation", "Options", "load"]

# The engine tree's type module, from its codegen/ folder (gen_messages.ysl2's pEp_imports).
ENGINE_TYPE_MODULE = Path("..") / "asn.1" / "pEp.asn1"
# What the engine's generated modules import from it, whatever their fields use.
ENGINE_IMPORTS = ("Version", "Identity", "IdentityList", "TID", "Hash", "Rating")


@dataclass(frozen=True)
class Options:
    """What the command line adds to the DSL files: the engine's type module when it is not
    in the engine tree's place, and folders to find embedded protocols in."""

    types: Path | None = None
    search: tuple[Path, ...] = ()


@dataclass
class Compilation:
    path: Path
    document: m.Document
    types: dict[str, TypeModule | None]  # protocol name -> its ASN.1 type module
    diagnostics: Diagnostics
    # Protocols whose type module was found the engine's way: their ASN.1 is the engine's.
    engine: set[str] = field(default_factory=set)
    # Embedded protocols by name, each the compilation of the file that declares it.
    embedded: dict[str, Compilation] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.diagnostics.errors

    def type_module(self, protocol: m.Protocol) -> TypeModule | None:
        return self.types.get(protocol.name)

    def engine_layout(self, protocol: m.Protocol) -> bool:
        return protocol.name in self.engine

    def embedded_protocol(self, name: str) -> tuple[Compilation, m.Protocol] | None:
        """The compilation and protocol an `embed` of `name` refers to."""
        for c in (self, self.embedded.get(name)):
            if c is not None:
                found = next((p for p in c.document.protocols if p.name == name), None)
                if found is not None:
                    return c, found
        return None

    @property
    def embedded_protocols(self) -> dict[str, m.Protocol]:
        """The protocols other files declare that embeds name, by name (for the checker)."""
        return {name: p for name, c in self.embedded.items() for p in c.document.protocols if p.name == name}

    def embedded_by(self, protocol: m.Protocol) -> list[tuple[Compilation, m.Protocol]]:
        """The other protocols `protocol` embeds, each once, declared in this file or in
        others (what they embed in turn is theirs to find: the backends recurse)."""
        out: list[tuple[Compilation, m.Protocol]] = []
        for name in dict.fromkeys(f.protocol for fsm in protocol.fsms for f in fsm.embeds() if f.protocol):
            found = self.embedded_protocol(name)
            if found is not None and found[1] is not protocol:
                out.append(found)
        return out

    def embedded_from_other_files(self, protocol: m.Protocol) -> list[tuple[Compilation, m.Protocol]]:
        """The protocols `protocol` embeds that other files declare (this file's own are
        rendered with it)."""
        return [found for found in self.embedded_by(protocol) if found[0] is not self]


def load(path: Path, diagnostics: Diagnostics | None = None, options: Options = Options(),
         _loading: frozenset[Path] = frozenset()) -> Compilation:
    d = diagnostics if diagnostics is not None else Diagnostics()
    document = parse_file(path, d)
    types: dict[str, TypeModule | None] = {}
    engine: set[str] = set()
    for protocol in document.protocols:
        types[protocol.name] = None
        attribute = protocol.asn1
        if attribute is None:
            module = _engine_types(protocol, options, d)
            if module is not None:
                types[protocol.name] = module
                engine.add(protocol.name)
            continue
        if not isinstance(attribute.value, str):
            continue
        module_path = Path(attribute.position.path).parent / f"{attribute.value}.asn1"
        try:
            types[protocol.name] = load_type_module(module_path)
        except ValueError as e:
            d.report(attribute.position, "asn1-module",
                     f"cannot load ASN.1 type module {attribute.value}: {e}")
    compilation = Compilation(path, document, types, d, engine)
    syntax_ok = not any(diag.code == "syntax" for diag in d.items)
    if syntax_ok:
        _find_embedded(compilation, options, _loading | {path.resolve()})
        check(document, types, d, compilation.embedded_protocols)
    return compilation


def _engine_types(protocol: m.Protocol, options: Options, d: Diagnostics) -> TypeModule | None:
    """The engine's PEP type module for a protocol that names none, or None after saying
    where fsmc looked (only when a field needs a type of it: a protocol of bool and int
    fields needs no module)."""
    place = options.types or Path(protocol.position.path).parent / ENGINE_TYPE_MODULE
    if place.is_file():
        try:
            module = load_type_module(place)
        except ValueError as e:
            d.report(protocol.position, "asn1-module", f"cannot load the ASN.1 type module of {protocol.name}: {e}")
            return None
        missing = [t for t in ENGINE_IMPORTS if t not in module.types]
        if module.name != "PEP" or missing:
            d.report(protocol.position, "asn1-module",
                     f"{place} is not the pEp engine's type module: the engine's generated modules import "
                     f"{', '.join(ENGINE_IMPORTS)} FROM PEP"
                     + (f", and it lacks {', '.join(missing)}" if missing else f", and it is {module.name}"))
            return None
        return module
    if any(fsm.field_types() - set(m.BUILTIN_TYPES) for fsm in protocol.fsms):
        d.report(protocol.position, "asn1-module",
                 f"protocol {protocol.name} names no ASN.1 type module (asn1=...) and the pEp engine's was not "
                 f"found: looked for {place.resolve()}" + ("" if options.types is not None else
                                                          "; give one with --types FILE"))
    return None


def _find_embedded(compilation: Compilation, options: Options, loading: frozenset[Path]) -> None:
    """Load the protocols that `embed`s name and the file does not declare."""
    d = compilation.diagnostics
    declared = {p.name for p in compilation.document.protocols}
    wanted: dict[str, m.Field] = {}
    for protocol in compilation.document.protocols:
        for fsm in protocol.fsms:
            for f in fsm.embeds():
                assert f.protocol is not None
                if f.protocol not in declared:
                    wanted.setdefault(f.protocol, f)
    folders = [compilation.path.parent, *options.search]
    for name, first in wanted.items():
        found = _search(name, folders, compilation.path)
        if found is None:
            places = ", ".join(str(f) for f in folders)
            d.report(first.position, "unknown-embed",
                     f"embed of unknown protocol {name}: not declared in {compilation.path.name} or the files it "
                     f"includes, nor in the .fsm files of {places}" + ("" if options.search else
                                                                        "; add a folder with -I DIR"))
            continue
        if found.resolve() in loading:
            d.report(first.position, "unknown-embed",
                     f"embed of protocol {name} from {found}, which embeds {compilation.path.name}: "
                     "protocols cannot embed each other")
            continue
        inner = load(found, Diagnostics(), options, loading)
        if inner.diagnostics.errors:
            d.report(first.position, "unknown-embed",
                     f"protocol {name} is in {found}, which has {len(inner.diagnostics.errors)} error(s): "
                     f"run fsmc check {found}")
            continue
        compilation.embedded[name] = inner
        # What the embedded protocol embeds, the backends import too.
        for other, c in inner.embedded.items():
            compilation.embedded.setdefault(other, c)


def _search(protocol: str, folders: Sequence[Path], exclude: Path) -> Path | None:
    """The first .fsm file in `folders` declaring `protocol`: the file named after it first
    (distribution.fsm for Distribution), then the others in name order. Files are read by
    the parser for their protocol lines only when named otherwise."""
    for folder in folders:
        named = folder / f"{protocol.lower()}.fsm"
        candidates = [named] if named.is_file() else []
        candidates += sorted(p for p in folder.glob("*.fsm") if p != named)
        for candidate in candidates:
            if candidate.resolve() == exclude.resolve():
                continue
            doc = parse_file(candidate, Diagnostics())
            if any(p.name == protocol for p in doc.protocols):
                return candidate
    return None
