"""The wire codec: message objects to UPER bytes and back, through asn1tools.

The ASN.1 module comes from the compiler (generated/<protocol>.asn1); the protocol's type
is a CHOICE of fsms, each a CHOICE of messages (draft A.1.6, B.2). Generated message and
record classes say how their fields map to ASN.1 (`WIRE`), so one converter serves all.

Bad bytes raise `DecodeError`, and only that: it names the message and field where the
decoder stopped (`Sync.keysync.beacon.version.minor: out of data`). A driver catches it,
traces the drop and changes nothing.

asn1tools' pure-Python UPER is slow, so encoding and decoding first try runtime/uper.py,
the same type compiled into closures, which writes and reads exactly asn1tools' bytes and
values. It refuses whatever it is not sure of (invalid values, bad or unusual bytes); then
asn1tools does the work as before, so results and error messages are asn1tools' either way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asn1tools
import asn1tools.codecs
from asn1tools.codecs import uper

from runtime import uper as fast_uper
from runtime.errors import DecodeError, EncodeError

__all__ = ["Codec", "DecodeError", "EncodeError"]


def _to_wire(record: Any) -> dict[str, Any]:
    out = {}
    for w in record.WIRE:
        value = getattr(record, w.name)
        if value is None:  # an OPTIONAL member left out (a mandatory one: asn1tools says which)
            continue
        if w.record is not None:
            value = [_to_wire(v) for v in value] if w.many else _to_wire(value)
        elif w.choices:
            if not isinstance(value, w.choices):
                names = ", ".join(c.__name__ for c in w.choices)
                raise TypeError(f"{w.name}: expected one of {names}, got {type(value).__name__}")
            value = (value.CHOICE, _to_wire(value))
        elif w.many:
            value = list(value)
        out[w.wire] = value
    return out


def _from_wire(cls: type[Any], value: dict[str, Any]) -> Any:
    kwargs = {}
    for w in cls.WIRE:
        if w.wire not in value:  # an absent DEFAULT member: the class default applies
            continue
        v = value[w.wire]
        if w.record is not None:
            v = tuple(_from_wire(w.record, x) for x in v) if w.many else _from_wire(w.record, v)
        elif w.choices:
            choice, inner = v
            embedded = next((c for c in w.choices if choice == c.CHOICE), None)
            if embedded is None:
                raise ValueError(f"{w.wire}: no such message {choice}")
            v = _from_wire(embedded, inner)
        elif w.many:
            v = tuple(v)
        kwargs[w.name] = v
    return cls(**kwargs)


_DECODED_CACHE = 4096


class Codec:
    """UPER codec of one protocol type over its message classes."""

    def __init__(self, asn1: Path | Sequence[Path], protocol_type: str, messages: Iterable[type[Any]], *,
                 fast: bool = True) -> None:
        """`asn1`: the module file, or the files compiled together (the engine's layout of a
        module per fsm, backends/asn1.py). `fast=False` keeps to asn1tools (tests compare
        the two)."""
        self._paths = [asn1] if isinstance(asn1, Path) else list(asn1)
        self._type = protocol_type
        self._by_choice = {(m.FSM, m.CHOICE): m for m in messages}
        self._compiled: Any = None
        self._fast: fast_uper.FastType | None = None
        self._fast_done = not fast  # compiled, or not to be (then _fast stays None)
        self._lock = threading.Lock()
        # Decoded messages by their bytes. A broadcast reaches every party as the same
        # bytes, and messages are immutable, so one decoding serves all receivers (n
        # parties decode n^2 broadcasts). Bounded: cleared when full.
        self._decoded: dict[bytes, Any] = {}

    def __deepcopy__(self, memo: dict[int, object]) -> Codec:
        return self  # stateless once compiled; worlds copied by the explorer share it

    @property
    def spec(self) -> Any:
        """The compiled asn1tools specification, compiled on first use."""
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = asn1tools.compile_files([str(p) for p in self._paths], "uper")
        return self._compiled

    @property
    def fast(self) -> fast_uper.FastType | None:
        """The fast UPER codec of the protocol type, compiled on first use from the
        specification; None if the type uses a construct it does not handle."""
        if not self._fast_done:
            spec = self.spec  # outside the lock: `spec` takes it
            with self._lock:
                if not self._fast_done:
                    try:
                        self._fast = fast_uper.compile_type(spec, self._type)
                    except NotImplementedError:
                        self._fast = None
                    self._fast_done = True
        return self._fast

    def encode(self, message: Any) -> bytes:
        try:
            value = (message.FSM, (message.CHOICE, _to_wire(message)))
            fast = self.fast
            if fast is not None:
                try:
                    return fast.encode(value)
                except Exception:  # noqa: BLE001 - refused: asn1tools encodes or words the error
                    pass
            return bytes(self.spec.encode(self._type, value, check_constraints=True))
        except asn1tools.Error as e:
            raise EncodeError(f"{type(message).__name__}: {e}") from e
        except KeyError as e:  # asn1tools' word for an ENUMERATED value it does not know
            raise EncodeError(f"{type(message).__name__}: no such enumerated value {e}") from e
        except (AttributeError, TypeError, ValueError) as e:
            raise EncodeError(f"{type(message).__name__}: {e}") from e

    def forget(self) -> None:
        """Empty the cache of decoded messages (a benchmark's cold start)."""
        self._decoded.clear()

    def decode(self, data: bytes) -> Any:
        if not isinstance(data, bytes | bytearray):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        message = self._decoded.get(data)
        if message is None:
            message = self._decode_message(data)
            if len(self._decoded) >= _DECODED_CACHE:
                self._decoded.clear()
            self._decoded[data] = message
        return message

    def _decode_message(self, data: bytes) -> Any:
        if not data:
            raise DecodeError(f"{self._type}: empty input")
        try:
            (fsm, (choice, value)), bits = self._decode(data)
        except asn1tools.Error as e:
            raise DecodeError(str(e)) from e
        except Exception as e:  # noqa: BLE001 - asn1tools raises assorted internal errors on garbage
            raise DecodeError(f"{self._type}: malformed input ({type(e).__name__}: {e})") from e
        cls = self._by_choice.get((fsm, choice))
        if cls is None:
            raise DecodeError(f"{self._type}.{fsm}.{choice}: no such message")
        try:
            message = _from_wire(cls, value)
        except (KeyError, TypeError, ValueError) as e:
            raise DecodeError(f"{self._type}.{fsm}.{choice}: {e}") from e
        # UPER leaves no room for extra bytes beyond the last octet's padding.
        if (bits + 7) // 8 < len(data):
            raise DecodeError(f"{self._type}.{fsm}.{choice}: trailing data after the message")
        return message

    def _decode(self, data: bytes) -> tuple[Any, int]:
        """The decoded value and how many bits it took. asn1tools' UPER decode does not
        say how much it read; its decoder does (re-encoding to find out cost as much as
        the decoding itself). The fast decoder first; whatever it refuses (bad bytes among
        others), asn1tools decodes or raises, naming the place."""
        fast = self.fast
        if fast is not None:
            try:
                return fast.decode(data)
            except Exception:  # noqa: BLE001 - refused: asn1tools decides
                pass
        compiled = self.spec._types[self._type]
        decoder = uper.Decoder(bytearray(data))
        try:
            value = compiled._type.decode(decoder)
        except asn1tools.codecs.ErrorWithLocation as e:
            e.add_location(compiled._type)
            raise
        compiled.check_constraints(value)
        return value, decoder.number_of_read_bits()
