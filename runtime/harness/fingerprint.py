"""Stable fingerprints of explored states: the same state, the same 128 bits, in every
process and on every machine.

The explorer keeps, for every state it has seen, a fingerprint rather than the state (as
TLC and SPIN do): 16 bytes of BLAKE2b over a canonical encoding of the snapshot's parts.
Two distinct states share a fingerprint with probability about n^2 / 2^129 among n states
(the birthday bound): 1.5e-21 at 10^9 states. TLC's 64-bit fingerprints give about 2.7e-2
there; 128 bits cost 8 bytes more per state. Within one process an exact seen-set is
available instead (`Explorer(exact=True)`, `fsmc explore --exact`).

Python's `hash` will not do: for strings it differs between processes (PYTHONHASHSEED),
and a distributed search routes each state to the worker its fingerprint names, so every
worker must compute the same one. `canonical` encodes values independently of hash
order: sets and dicts in the order of their elements' encodings.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import struct
import types
from typing import Any

__all__ = ["PROBABILITY_AT_1E9", "canonical", "collision_probability", "stable_hash"]

SIZE = 16  # bytes


def stable_hash(value: Any) -> bytes:
    return hashlib.blake2b(canonical(value), digest_size=SIZE).digest()


def combine(parts: bytes) -> bytes:
    """The fingerprint of a state from its parts' hashes, concatenated."""
    return hashlib.blake2b(parts, digest_size=SIZE).digest()


def collision_probability(states: int, bits: int = 8 * SIZE) -> float:
    """The chance that two of `states` distinct states share a fingerprint: 1 - e^(-n(n-1)/2^(bits+1)),
    about n^2 / 2^(bits+1) while small."""
    import math

    return -math.expm1(-states * (states - 1) / 2.0 ** (bits + 1))


PROBABILITY_AT_1E9 = collision_probability(10**9)


def canonical(value: Any) -> bytes:
    """An encoding of `value` (None, numbers, strings, bytes, enums, classes, tuples,
    lists, sets, dicts, records) that equal values share in every process."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    t = type(value)
    if value is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if value else b"F")
    elif t is int:
        text = str(value).encode()
        out.append(b"i%d:" % len(text) + text)
    elif t is str:
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(data) + data)
    elif t is bytes:
        out.append(b"b%d:" % len(value) + value)
    elif t is float:
        out.append(b"f" + struct.pack(">d", value))
    elif isinstance(value, enum.Enum):
        _encode(_name_of(t), out)
        _encode(value.value, out)
    elif isinstance(value, type):
        out.append(b"c")
        _encode(_name_of(value), out)
    elif isinstance(value, (tuple, list)):
        out.append(b"(%d:" % len(value))
        if dataclasses.is_dataclass(value):  # a record that is also a tuple: unlikely
            out.append(b"r")
        for item in value:
            _encode(item, out)
        if hasattr(value, "_fields"):  # a NamedTuple: its class counts, as for a record
            _encode(_name_of(t), out)
    elif isinstance(value, (frozenset, set)):
        items = sorted(canonical(item) for item in value)
        out.append(b"{%d:" % len(items))
        out.extend(items)
    elif isinstance(value, dict):
        pairs = sorted(canonical(k) + canonical(v) for k, v in value.items())
        out.append(b"d%d:" % len(pairs))
        out.extend(pairs)
    elif dataclasses.is_dataclass(value):
        # As the record's equality sees it: its class and the fields that compare.
        out.append(b"r")
        _encode(_name_of(t), out)
        for f in dataclasses.fields(value):
            if f.compare:
                _encode(getattr(value, f.name), out)
    elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        out.append(b"u")  # a function a record names (a hook): by name, as it compares by identity
        _encode(f"{value.__module__}.{value.__qualname__}", out)
    elif isinstance(value, int):  # an int subclass that is no enum
        _encode(_name_of(t), out)
        _encode(int(value), out)
    else:
        raise TypeError(f"no stable encoding for {t.__module__}.{t.__qualname__} in a snapshot")


def _name_of(cls: type) -> str:
    # Not the module: a mutant's machine module (fsmc mutate compiles each under a name of
    # its own) has the same records and messages, and the same states must match.
    return cls.__qualname__
