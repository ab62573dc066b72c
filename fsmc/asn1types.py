"""The ASN.1 type module a protocol uses for its field types (A.1.6.5, B.2).

A protocol names its type module with the fsmc attribute `asn1=Name`: the file
`Name.asn1` beside the DSL file (KeySync: `protocol Sync 1, asn1=pEp` and
protocols/pEp.asn1). The module is parsed with asn1tools into plain descriptions that
the checker uses to know which field types exist and the backends use to map them to
Python types and to import them into the generated ASN.1 module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asn1tools

__all__ = ["Kind", "Member", "TypeInfo", "TypeModule", "load_type_module"]


class Kind(enum.Enum):
    BYTES = "bytes"
    STRING = "str"
    INTEGER = "int"
    BOOLEAN = "bool"
    ENUMERATED = "enum"
    SEQUENCE = "sequence"
    LIST = "list"  # SEQUENCE OF


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a SEQUENCE; `name` is the ASN.1 name (`user-id`)."""

    name: str
    type: str  # a type name of the module, or a builtin ASN.1 type
    default: Any = None
    optional: bool = False  # OPTIONAL: None in Python, absent on the wire

    @property
    def python_name(self) -> str:
        return self.name.replace("-", "_")


@dataclass(frozen=True, slots=True)
class TypeInfo:
    name: str
    kind: Kind
    members: tuple[Member, ...] = ()  # SEQUENCE
    element: str | None = None  # SEQUENCE OF
    values: tuple[str, ...] = ()  # ENUMERATED


@dataclass(frozen=True, slots=True)
class TypeModule:
    name: str  # the ASN.1 module name, e.g. PEP
    path: Path
    text: str
    types: dict[str, TypeInfo]

    def resolve(self, type_name: str) -> TypeInfo:
        return self.types[type_name]

    def dependencies(self, names: list[str]) -> list[str]:
        """`names` and every module type they use, dependencies first, each once."""
        out: list[str] = []

        def visit(name: str) -> None:
            info = self.types.get(name)
            if info is None or name in out:
                return
            for m in info.members:
                visit(m.type)
            if info.element is not None:
                visit(info.element)
            out.append(name)

        for n in names:
            visit(n)
        return out


_BUILTIN_KINDS = {
    "OCTET STRING": Kind.BYTES,
    "BIT STRING": Kind.BYTES,
    "INTEGER": Kind.INTEGER,
    "BOOLEAN": Kind.BOOLEAN,
    "ENUMERATED": Kind.ENUMERATED,
    "SEQUENCE": Kind.SEQUENCE,
    "SEQUENCE OF": Kind.LIST,
}


def _kind(asn1_type: str, types: dict[str, Any]) -> Kind:
    seen = set()
    while asn1_type in types and asn1_type not in seen:
        seen.add(asn1_type)
        asn1_type = types[asn1_type]["type"]
    if asn1_type in _BUILTIN_KINDS:
        return _BUILTIN_KINDS[asn1_type]
    if asn1_type.endswith("String"):
        return Kind.STRING
    raise ValueError(f"unsupported ASN.1 type {asn1_type}")


def load_type_module(path: Path) -> TypeModule:
    """Parse an ASN.1 file holding one module; raises ValueError saying what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
        parsed = asn1tools.parse_string(text)
        asn1tools.compile_dict(parsed, "uper")  # reject what asn1tools cannot encode
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from e
    except (asn1tools.ParseError, asn1tools.CompileError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: {e}") from e
    if len(parsed) != 1:
        raise ValueError(f"{path}: expected one ASN.1 module, found {len(parsed)}")
    (name, module), = parsed.items()
    raw = module["types"]
    types: dict[str, TypeInfo] = {}
    for tname, t in raw.items():
        kind = _kind(tname, raw)
        members = tuple(
            Member(mm["name"], _member_type(tname, mm, types), mm.get("default"), bool(mm.get("optional")))
            for mm in t.get("members", ()) if mm is not None and "name" in mm
        )
        element = t["element"]["type"] if t["type"] == "SEQUENCE OF" else None
        values = tuple(v[0] for v in t.get("values", []) if v is not None) if kind is Kind.ENUMERATED else ()
        types[tname] = TypeInfo(tname, kind, members, element, values)
    return TypeModule(name, path, text, types)


def _member_type(owner: str, member: dict[str, Any], types: dict[str, TypeInfo]) -> str:
    """A member's type name. An inline `SEQUENCE OF T` gets a type of its own in the model
    (named after its SEQUENCE and member, which no ASN.1 name can be), so that the Python
    side sees a list of T as it does for a named SEQUENCE OF type."""
    if member["type"] != "SEQUENCE OF":
        return str(member["type"])
    name = f"{owner}.{member['name']}"
    types[name] = TypeInfo(name, Kind.LIST, (), member["element"]["type"], ())
    return name
