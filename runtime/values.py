"""State records as bytes and back: what a store writes of a party.

A device's state record (`Device.snapshot`), a machine's I/O buffer and the generated
records in them are plain values: None, bools, numbers, strings, bytes, tuples, lists,
frozensets, dicts, enums and (frozen) dataclasses and NamedTuples of those, with a few
objects of libraries (PyNaCl keys) and functions named by their module (Status's curve).
`Values.encode` writes such a value as JSON with a tag per non-JSON kind, and
`Values.decode` rebuilds an equal value.

Why not pickle: a store outlives the code that wrote it, and pickle runs whatever the
bytes name. Here a class or function is looked up by name, only in the project's own
packages (`TRUSTED`), and built from its fields; anything else is a `ValueFormatError`
naming where in the value it is. The generated module of a protocol is referred to as
"generated" (its real module may be a build cache's), so a record written by one build
reads in the next.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import importlib
import json
import types
from collections.abc import Callable
from typing import Any

from nacl.public import PrivateKey
from nacl.signing import SigningKey

__all__ = ["TRUSTED", "ValueFormatError", "Values"]

TRUSTED = ("protocols.", "runtime.", "generated.")
"""The packages whose classes and functions a record may name."""

GENERATED = "@generated"


class ValueFormatError(ValueError):
    """A value that cannot be written, or bytes that are no value this codec wrote."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where or 'the value'}: {problem}")
        self.where = where
        self.problem = problem


class Values:
    """Encodes and decodes values for one protocol: `generated` is its generated module
    (the machines and their records), which records name as "@generated"."""

    def __init__(self, generated: types.ModuleType | None = None) -> None:
        self.generated = generated

    # --- encoding

    def encode(self, value: Any) -> bytes:
        return json.dumps(self._to_tree(value, ""), separators=(",", ":"), sort_keys=True).encode()

    def _name(self, obj: Any, where: str) -> str:
        module, qualname = obj.__module__, obj.__qualname__
        if self.generated is not None and module == self.generated.__name__:
            return f"{GENERATED}:{qualname}"
        if "<" in qualname or not module.startswith(TRUSTED):
            raise ValueFormatError(where, f"{module}.{qualname} is not a named class or function of "
                                          f"{', '.join(p.rstrip('.') for p in TRUSTED)}")
        return f"{module}:{qualname}"

    def _to_tree(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, enum.Enum):  # before int: an IntEnum is an int
            return {"enum": self._name(type(value), where), "name": value.name}
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return {"float": repr(value)}
            return value
        if isinstance(value, bytes):
            return {"bytes": base64.b64encode(value).decode()}
        if isinstance(value, PrivateKey):
            return {"x25519": base64.b64encode(bytes(value)).decode()}
        if isinstance(value, SigningKey):
            return {"ed25519": base64.b64encode(bytes(value)).decode()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"record": self._name(type(value), where),
                    "fields": {f.name: self._to_tree(getattr(value, f.name), f"{where}.{f.name}")
                               for f in dataclasses.fields(value)}}
        if isinstance(value, tuple) and hasattr(type(value), "_fields"):  # a NamedTuple
            names: tuple[str, ...] = type(value)._fields  # type: ignore[attr-defined]
            return {"tuple": self._name(type(value), where),
                    "items": [self._to_tree(x, f"{where}.{n}") for n, x in zip(names, value, strict=True)]}
        if isinstance(value, tuple):
            return {"t": [self._to_tree(x, f"{where}[{i}]") for i, x in enumerate(value)]}
        if isinstance(value, list):
            return {"l": [self._to_tree(x, f"{where}[{i}]") for i, x in enumerate(value)]}
        if isinstance(value, (frozenset, set)):
            items = [self._to_tree(x, f"{where}{{}}") for x in value]
            # One order for one set, whatever the hash seed: the encoding of a value is one.
            items.sort(key=lambda t: json.dumps(t, sort_keys=True))
            return {"frozenset" if isinstance(value, frozenset) else "set": items}
        if isinstance(value, (dict, types.MappingProxyType)):
            pairs = [[self._to_tree(k, f"{where}{{key}}"), self._to_tree(v, f"{where}[{k!r}]")]
                     for k, v in value.items()]
            return {"proxy" if isinstance(value, types.MappingProxyType) else "dict": pairs}
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            return {"function": self._name(value, where)}
        raise ValueFormatError(where, f"a {type(value).__module__}.{type(value).__qualname__} cannot be stored")

    # --- decoding

    def decode(self, data: bytes) -> Any:
        try:
            tree = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueFormatError("", f"not a stored value ({e})") from e
        return self._from_tree(tree, "")

    def _lookup(self, name: Any, where: str) -> Any:
        if not isinstance(name, str) or ":" not in name:
            raise ValueFormatError(where, f"{name!r} names no class")
        module_name, qualname = name.split(":", 1)
        if module_name == GENERATED:
            if self.generated is None:
                raise ValueFormatError(where, f"{qualname} of a generated module, and none was given")
            module: Any = self.generated
        elif module_name.startswith(TRUSTED):
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                raise ValueFormatError(where, f"no module {module_name} ({e})") from e
        else:
            raise ValueFormatError(where, f"{module_name} is not one of the packages a record may name")
        obj = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise ValueFormatError(where, f"{module_name} has no {qualname}")
        return obj

    def _from_tree(self, tree: Any, where: str) -> Any:
        if tree is None or isinstance(tree, (bool, int, float, str)):
            return tree
        if not isinstance(tree, dict) or len(tree) not in (1, 2):
            raise ValueFormatError(where, f"not a stored value: {str(tree)[:60]}")
        try:
            return self._tagged(tree, where)
        except ValueFormatError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, binascii.Error) as e:
            raise ValueFormatError(where, f"cannot be rebuilt ({type(e).__name__}: {e})") from e

    def _tagged(self, tree: dict[str, Any], where: str) -> Any:
        decode: Callable[[Any, str], Any] = self._from_tree
        if "bytes" in tree:
            return base64.b64decode(tree["bytes"], validate=True)
        if "t" in tree:
            return tuple(decode(x, f"{where}[{i}]") for i, x in enumerate(tree["t"]))
        if "l" in tree:
            return [decode(x, f"{where}[{i}]") for i, x in enumerate(tree["l"])]
        if "frozenset" in tree:
            return frozenset(decode(x, f"{where}{{}}") for x in tree["frozenset"])
        if "set" in tree:
            return {decode(x, f"{where}{{}}") for x in tree["set"]}
        if "dict" in tree or "proxy" in tree:
            stored = tree["dict"] if "dict" in tree else tree["proxy"]
            pairs = {decode(k, f"{where}{{key}}"): decode(v, f"{where}[{k!r}]") for k, v in stored}
            return pairs if "dict" in tree else types.MappingProxyType(pairs)
        if "float" in tree:
            return float(tree["float"])
        if "x25519" in tree:
            return PrivateKey(base64.b64decode(tree["x25519"], validate=True))
        if "ed25519" in tree:
            return SigningKey(base64.b64decode(tree["ed25519"], validate=True))
        if "enum" in tree:
            cls = self._lookup(tree["enum"], where)
            if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
                raise ValueFormatError(where, f"{tree['enum']} is not an enum")
            return cls[tree["name"]]
        if "function" in tree:
            fn = self._lookup(tree["function"], where)
            if not isinstance(fn, (types.FunctionType, types.BuiltinFunctionType)):
                raise ValueFormatError(where, f"{tree['function']} is not a function")
            return fn
        if "record" in tree:
            return self._record(tree, where)
        if "tuple" in tree:
            cls = self._lookup(tree["tuple"], where)
            if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
                raise ValueFormatError(where, f"{tree['tuple']} is not a NamedTuple")
            items = [decode(x, f"{where}.{n}") for n, x in zip(cls._fields, tree["items"], strict=False)]
            return tuple.__new__(cls, items)
        raise ValueFormatError(where, f"unknown tag {sorted(tree)}")

    def _record(self, tree: dict[str, Any], where: str) -> Any:
        cls = self._lookup(tree["record"], where)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueFormatError(where, f"{tree['record']} is not a dataclass")
        stored = tree["fields"]
        if not isinstance(stored, dict):
            raise ValueFormatError(where, "fields are not a table")
        declared = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(stored) - set(declared))
        if unknown:
            raise ValueFormatError(where, f"{cls.__qualname__} has no field {', '.join(unknown)}")
        values = {name: self._from_tree(v, f"{where}.{name}") for name, v in stored.items()}
        # Through __init__ (a record's own checks run), then the fields it does not take.
        record = cls(**{n: v for n, v in values.items() if declared[n].init})
        for name, value in values.items():
            if not declared[name].init:
                object.__setattr__(record, name, value)
        return record
