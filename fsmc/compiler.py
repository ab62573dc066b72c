"""The front of the pipeline: read, parse, load type modules, check.

`load(path)` is what every command and backend starts from; it never raises on bad
input, it reports. Backends run only on a compilation without errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fsmc import model as m
from fsmc.asn1types import TypeModule, load_type_module
from fsmc.check import check
from fsmc.diagnostics import Diagnostics
from fsmc.parser import parse_file

__all__ = ["Compilation", "load"]


@dataclass
class Compilation:
    path: Path
    document: m.Document
    types: dict[str, TypeModule | None]  # protocol name -> its ASN.1 type module
    diagnostics: Diagnostics

    @property
    def ok(self) -> bool:
        return not self.diagnostics.errors

    def type_module(self, protocol: m.Protocol) -> TypeModule | None:
        return self.types.get(protocol.name)


def load(path: Path, diagnostics: Diagnostics | None = None) -> Compilation:
    d = diagnostics if diagnostics is not None else Diagnostics()
    document = parse_file(path, d)
    types: dict[str, TypeModule | None] = {}
    for protocol in document.protocols:
        attribute = protocol.asn1
        types[protocol.name] = None
        if attribute is None or not isinstance(attribute.value, str):
            continue
        module_path = Path(attribute.position.path).parent / f"{attribute.value}.asn1"
        try:
            types[protocol.name] = load_type_module(module_path)
        except ValueError as e:
            d.report(attribute.position, "asn1-module",
                     f"cannot load ASN.1 type module {attribute.value}: {e}")
    if not any(diag.code == "syntax" for diag in d.items):
        check(document, types, d)
    return Compilation(path, document, types, d)
