"""Fast UPER: asn1tools' UPER codec of one type, compiled once into nested closures.

asn1tools encodes and decodes by walking its type tree for every value, a method call and
a string slice per field; for mpENC's greeting packets that costs more than anything but
the cryptography. `compile_type` walks asn1tools' compiled tree once instead (the UPER
tree and, alongside it, the constraints checker's tree) and returns a `FastType` whose
encoder and decoder are closures over what each type needs: bit widths, index maps,
alphabets, size limits. Encoders return an integer and its width in bits; decoders read
fields straight out of the bytes at a bit position.

It is a second implementation of asn1tools, not of X.691: every encoding is byte for byte
what asn1tools writes and every decoding is what asn1tools reads, its quirks included
(UTF8String SIZE is not PER-visible; a semi-constrained INTEGER is written as an
unconstrained one; ENUMERATED carries no extension bit under EXTENSIBILITY IMPLIED). It
enforces what asn1tools' type check and constraints check (`check_constraints=True`)
enforce, on encoding and on decoding.

The fast path is only ever a shortcut, for the caller to try first: it refuses (raises an
exception, of no particular type) whatever it is not sure of -- a value asn1tools would
reject, an unusual Python type, an extension bit set, an extension addition, truncated or
malformed data -- and the caller then asks asn1tools, which succeeds or words the error.
So it must never return something asn1tools would not, and may refuse more than asn1tools
does. A construct it does not handle at all (BIT STRING, REAL, time types, recursive
types...) makes `compile_type` raise NotImplementedError, and the caller keeps asn1tools
for the whole type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asn1tools.codecs import constraints_checker as cc
from asn1tools.codecs import per, uper

__all__ = ["FastType", "Refused", "compile_type"]

# An encoder maps a value to (bits, number of bits); a decoder maps (data, bit position)
# to (value, new bit position).
Encoder = Callable[[Any], tuple[int, int]]
Decoder = Callable[[bytes, int], tuple[Any, int]]

_INF = float("inf")
_FRAGMENT = 16384  # X.691 11.9: lengths from 16K on are written in fragments of 16K..64K
_FOLD = 32  # lists longer than this are joined pairwise (see _join)
_DIGITS = "0123456789abcdefghijklmnopqrstuv"  # int(..., base) digits of bases 2..32


class Refused(ValueError):
    """The fast path does not take this value or these bytes; asn1tools decides."""


class FastType:
    """Encoder and decoder of one compiled type; stateless, so shared between threads."""

    __slots__ = ("_decoder", "_encoder")

    def __init__(self, encoder: Encoder, decoder: Decoder) -> None:
        self._encoder = encoder
        self._decoder = decoder

    def encode(self, value: Any) -> bytes:
        """The UPER bytes of `value`, as asn1tools writes them; raises if it refuses."""
        bits, n = self._encoder(value)
        pad = -n & 7
        return (bits << pad).to_bytes((n + pad) >> 3, "big")

    def decode(self, data: bytes) -> tuple[Any, int]:
        """The value in `data` and how many bits it took; raises if it refuses."""
        if type(data) is not bytes:
            data = bytes(data)
        return self._decoder(data, 0)


def compile_type(spec: Any, name: str) -> FastType:
    """The fast codec of type `name` of an asn1tools UPER specification
    (`asn1tools.compile_files(..., "uper")`). NotImplementedError: a construct it does not
    handle, keep asn1tools for this type."""
    compiled = spec._types[name]
    if not isinstance(compiled, uper.CompiledType):
        raise NotImplementedError(f"{name}: not a UPER specification")
    return FastType(*_compile(compiled._type, compiled.constraints_checker._type))


# --- reading and writing bits ------------------------------------------------------------


def _read(data: bytes, pos: int, n: int) -> int:
    """The n-bit unsigned integer at bit `pos`."""
    end = pos + n
    if end > len(data) << 3:
        raise Refused("out of data")
    first = pos >> 3
    last = (end + 7) >> 3
    # Only the bytes the field spans: shifting an integer of the whole message would cost
    # time in its length for every field.
    return (int.from_bytes(data[first:last], "big") >> ((last << 3) - end)) & ((1 << n) - 1)


def _read_bytes(data: bytes, pos: int, count: int) -> bytes:
    first = pos >> 3
    shift = pos & 7
    if first + count + (shift > 0) > len(data):  # the last octet is partly read if shifted
        raise Refused("out of data")
    if not shift:
        return data[first : first + count]
    whole = int.from_bytes(data[first : first + count + 1], "big") >> (8 - shift)
    return (whole & ((1 << (count << 3)) - 1)).to_bytes(count, "big")


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    """A length determinant (X.691 11.9.3.6-8) as asn1tools reads it: 1 or 2 octets, or a
    fragment of 16K, 32K, 48K or 64K."""
    index = pos >> 3
    shift = pos & 7
    # Past the end of the data, indexing raises: the refusal wanted.
    first = data[index] if not shift else ((data[index] << 8 | data[index + 1]) >> (8 - shift)) & 0xFF
    if first < 0x80:
        return first, pos + 8
    if first < 0xC0:
        return ((first & 0x3F) << 8) | _read(data, pos + 8, 8), pos + 16
    if 0xC1 <= first <= 0xC4:
        return (first & 0x07) * _FRAGMENT, pos + 8
    raise Refused("bad length determinant")


def _length(length: int) -> tuple[int, int]:
    """The determinant of a length below 16K."""
    return (length, 8) if length < 0x80 else (0x8000 | length, 16)


def _fragments(length: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, determinant, its bits) of each fragment of a length from 16K on, as
    asn1tools cuts them: 64K at most each, then the remainder (possibly 0) with a 1- or
    2-octet determinant."""
    out: list[tuple[int, int, int, int]] = []
    start = 0
    while length - start >= _FRAGMENT:
        multiple = min((length - start) // _FRAGMENT, 4)
        stop = start + multiple * _FRAGMENT
        out.append((start, stop, 0xC0 | multiple, 8))
        start = stop
    out.append((start, length, *_length(length - start)))
    return out


def _join(parts: list[tuple[int, int]]) -> tuple[int, int]:
    """The concatenation of many bit fields, in pairwise rounds: appending each one to a
    growing integer would copy that integer every time (quadratic in the list)."""
    while len(parts) > 1:
        joined = [((a << m) | b, n + m) for (a, n), (b, m) in zip(parts[::2], parts[1::2], strict=False)]
        if len(parts) & 1:
            joined.append(parts[-1])
        parts = joined
    return parts[0] if parts else (0, 0)


def _append(bits: int, n: int, parts: list[tuple[int, int]]) -> tuple[int, int]:
    if len(parts) > _FOLD:
        more, m = _join(parts)
        return (bits << m) | more, n + m
    for more, m in parts:
        bits = (bits << m) | more
        n += m
    return bits, n


def _bytes_unbound(value: bytes | bytearray) -> tuple[int, int]:
    length = len(value)
    if length < _FRAGMENT:
        bits, n = _length(length)
        return (bits << (length << 3)) | int.from_bytes(value, "big"), n + (length << 3)
    parts: list[tuple[int, int]] = []
    for start, stop, determinant, n in _fragments(length):
        parts.append((determinant, n))
        parts.append((int.from_bytes(value[start:stop], "big"), (stop - start) << 3))
    return _join(parts)


def _read_bytes_unbound(data: bytes, pos: int) -> tuple[bytes, int]:
    index = pos >> 3
    shift = pos & 7
    if not shift and index < len(data) and data[index] < 0x80:  # below 128 octets, aligned
        stop = index + 1 + data[index]
        if stop > len(data):
            raise Refused("out of data")
        return data[index + 1 : stop], stop << 3
    length, pos = _read_length(data, pos)
    if length < _FRAGMENT:
        return _read_bytes(data, pos, length), pos + (length << 3)
    chunks: list[bytes] = []
    while True:
        chunks.append(_read_bytes(data, pos, length))
        pos += length << 3
        if length < _FRAGMENT:
            return b"".join(chunks), pos
        length, pos = _read_length(data, pos)


def _unconstrained(value: int) -> tuple[int, int]:
    """An unconstrained whole number: length octet(s), then two's complement in as few
    octets as hold the sign (asn1tools' append_unconstrained_whole_number)."""
    n = value.bit_length()
    if value < 0:
        count = (n + 7) // 8
        value += 1 << (8 * count)
        if not value & (1 << (8 * count - 1)):
            value |= 0xFF << (8 * count)
            count += 1
    elif value > 0:
        count = (n + 7) // 8
        if n == 8 * count:
            count += 1
    else:
        count = 1
    if count >= _FRAGMENT:
        raise Refused("integer too long")
    bits, n = _length(count)
    return (bits << (8 * count)) | value, n + 8 * count


def _read_unconstrained(data: bytes, pos: int) -> tuple[int, int]:
    count, pos = _read_length(data, pos)
    if not 0 < count < _FRAGMENT:  # asn1tools fails on 0 octets and misreads fragments
        raise Refused("bad integer length")
    value = _read(data, pos, 8 * count)
    if value >> (8 * count - 1):
        value -= 1 << (8 * count)
    return value, pos + 8 * count


# --- compiling types ---------------------------------------------------------------------


def _compile(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    # Exact classes: subclasses change behaviour (UTCTime is a VisibleString, the
    # AdditionGroup a Sequence).
    kind = type(t)
    if kind is per.Sequence or kind is per.Set:
        return _members(t, checker)
    if kind is uper.SequenceOf or kind is uper.SetOf:
        return _array(t, checker)
    if kind is uper.Choice:
        return _choice(t, checker)
    if kind is per.Enumerated:
        return _enumerated(t, checker)
    if kind is uper.Integer:
        return _integer(t, checker)
    if kind is per.Boolean:
        return _boolean(t, checker)
    if kind is per.Null:
        return _null(t, checker)
    if kind is uper.OctetString:
        return _octets(t, checker)
    if kind is per.UTF8String:
        return _utf8(t, checker)
    if kind in (uper.NumericString, uper.PrintableString, uper.IA5String, uper.VisibleString):
        return _known_multiplier(t, checker)
    raise NotImplementedError(f"{t.type_name} {t.name!r}")


def _expect(t: Any, checker: Any, kind: type) -> None:
    if not isinstance(checker, kind):
        raise NotImplementedError(f"{t.type_name} {t.name!r}: constraints checked as {type(checker).__name__}")


def _bounds(checker: Any) -> tuple[Any, Any]:
    """The constraints checker's range (none when the constraint is extensible)."""
    low, high = checker.minimum, checker.maximum
    return (-_INF if low == "MIN" else low), (_INF if high == "MAX" else high)


def _root_range(t: Any) -> tuple[int, int]:
    """The root range (of a SIZE or an INTEGER) that asn1tools writes values and lengths
    against: both bounds must be numbers (an extensible SIZE (1..MAX, ...) is not)."""
    low, high = t.minimum, t.maximum
    if type(low) is not int or type(high) is not int:
        raise NotImplementedError(f"{t.type_name} {t.name!r}: a range without numeric bounds")
    return low, high


_MANDATORY, _OPTIONAL, _DEFAULT = 0, 1, 2


def _members(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """SEQUENCE and SET: extension bit, presence bits of OPTIONAL and DEFAULT members, the
    members. Extension additions are refused (encoding and decoding)."""
    _expect(t, checker, cc.Dict)
    checkers = {m.name: m for m in checker.members}
    extensible = t.additions is not None
    added = set()
    for addition in t.additions or ():
        added.add(addition.name)
        added.update(m.name for m in getattr(addition, "root_members", ()))
    additions = frozenset(added)
    plan: list[tuple[str, Encoder, Decoder, int, Any, bool]] = []
    for m in t.root_members:
        if m.name not in checkers:
            raise NotImplementedError(f"{t.type_name} {t.name!r}: member {m.name!r} unchecked")
        encode, decode = _compile(m, checkers[m.name])
        if m.optional and m.default is not None:
            raise NotImplementedError(f"{t.type_name} {t.name!r}: {m.name!r} both OPTIONAL and DEFAULT")
        kind = _OPTIONAL if m.optional else _MANDATORY if m.default is None else _DEFAULT
        # asn1tools puts an absent DEFAULT member's default into the decoded value and
        # checks its constraints: if the fast encoder refuses the default, refuse it too.
        default_ok = True
        if kind == _DEFAULT:
            try:
                encode(m.default)
            except Exception:  # noqa: BLE001 - refusing is all that matters
                default_ok = False
        plan.append((m.name, encode, decode, kind, m.default, default_ok))
    flags = sum(kind != _MANDATORY for _, _, _, kind, _, _ in plan)
    head = extensible + flags  # the extension bit (0) is the top bit of the head
    if not flags:
        return _plain_members(extensible, additions, [(name, e, d) for name, e, d, _, _, _ in plan])

    def encode_members(value: Any) -> tuple[int, int]:
        if type(value) is not dict:
            raise Refused("expected a dict")
        if additions and not additions.isdisjoint(value):
            raise Refused("extension additions")
        present = 0
        parts: list[tuple[int, int]] = []
        for name, encode, _, kind, default, _ in plan:
            if kind == _MANDATORY:
                parts.append(encode(value[name]))
            elif name in value:
                member = value[name]
                part = encode(member)  # a DEFAULT value is checked even when not sent
                if kind == _OPTIONAL or member != default:
                    present = (present << 1) | 1
                    parts.append(part)
                else:
                    present <<= 1
            else:
                present <<= 1
        bits, n = present, head
        for more, m in parts:
            bits = (bits << m) | more
            n += m
        return bits, n

    def decode_members(data: bytes, pos: int) -> tuple[Any, int]:
        present = _read(data, pos, head)
        if present >> flags:
            raise Refused("extension additions")
        pos += head
        flag = flags
        out: dict[str, Any] = {}
        for name, _, decode, kind, default, default_ok in plan:
            if kind == _MANDATORY:
                out[name], pos = decode(data, pos)
                continue
            flag -= 1
            if present >> flag & 1:
                out[name], pos = decode(data, pos)
            elif kind == _DEFAULT:
                if not default_ok:
                    raise Refused("default out of constraints")
                out[name] = default
        return out, pos

    return encode_members, decode_members


def _plain_members(
    extensible: bool, additions: frozenset[str], plan: list[tuple[str, Encoder, Decoder]]
) -> tuple[Encoder, Decoder]:
    """A SEQUENCE without OPTIONAL or DEFAULT members, the most common kind."""
    encoders = [(name, encode) for name, encode, _ in plan]
    decoders = [(name, decode) for name, _, decode in plan]

    def encode_plain(value: Any) -> tuple[int, int]:
        if type(value) is not dict:
            raise Refused("expected a dict")
        if additions and not additions.isdisjoint(value):
            raise Refused("extension additions")
        bits, n = 0, int(extensible)
        for name, encode in encoders:
            more, m = encode(value[name])
            bits = (bits << m) | more
            n += m
        return bits, n

    def decode_plain(data: bytes, pos: int) -> tuple[Any, int]:
        if extensible:
            # The extension bit, read inline (past the end, indexing raises).
            if data[pos >> 3] >> (7 - (pos & 7)) & 1:
                raise Refused("extension additions")
            pos += 1
        out: dict[str, Any] = {}
        for name, decode in decoders:
            out[name], pos = decode(data, pos)
        return out, pos

    return encode_plain, decode_plain


def _choice(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """CHOICE: extension bit, the root index (when more than one), the alternative.
    Alternatives added after the extension marker are refused."""
    _expect(t, checker, cc.Choice)
    root = [t.root_index_to_member[i] for i in range(len(t.root_index_to_member))]
    if not root:
        raise NotImplementedError(f"CHOICE {t.name!r} without alternatives")
    extensible = t.additions_index_to_member is not None
    width = t.root_number_of_bits if len(root) > 1 else 0
    head = extensible + width
    by_name: dict[str, tuple[int, Encoder]] = {}
    by_index: list[tuple[str, Decoder]] = []
    for index, m in enumerate(root):
        if m.name not in checker.name_to_member:
            raise NotImplementedError(f"CHOICE {t.name!r}: alternative {m.name!r} unchecked")
        encode, decode = _compile(m, checker.name_to_member[m.name])
        by_name[m.name] = (index, encode)
        by_index.append((m.name, decode))

    def encode_choice(value: Any) -> tuple[int, int]:
        if type(value) is not tuple or len(value) != 2 or type(value[0]) is not str:
            raise Refused("expected (name, value)")
        index, encode = by_name[value[0]]
        bits, n = encode(value[1])
        return (index << n) | bits, head + n

    def decode_choice(data: bytes, pos: int) -> tuple[Any, int]:
        index = _read(data, pos, head)
        if index >= len(by_index):  # also an extension bit set
            raise Refused("no such alternative")
        name, decode = by_index[index]
        value, pos = decode(data, pos + head)
        return (name, value), pos

    return encode_choice, decode_choice


def _enumerated(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """ENUMERATED: extension bit (if any), the index among the root values sorted by
    number. Values added after the extension marker are refused."""
    _expect(t, checker, cc.Enumerated)
    values = [t.root_index_to_data[i] for i in range(len(t.root_index_to_data))]
    index = dict(t.root_data_to_index)
    kinds = frozenset(type(v) for v in values)
    if not values or not kinds <= {str, int}:
        raise NotImplementedError(f"ENUMERATED {t.name!r}")
    head = (t.additions_index_to_data is not None) + t.root_number_of_bits

    def encode_enumerated(value: Any) -> tuple[int, int]:
        if type(value) not in kinds:
            raise Refused("not a value of the enumeration")
        return index[value], head

    def decode_enumerated(data: bytes, pos: int) -> tuple[Any, int]:
        found = _read(data, pos, head)
        if found >= len(values):  # also an extension bit set
            raise Refused("no such enumeration index")
        return values[found], pos + head

    return encode_enumerated, decode_enumerated


def _integer(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """INTEGER: n bits above the lower bound when asn1tools has both bounds, else an
    unconstrained whole number (asn1tools writes a semi-constrained one so too); an
    extensible range adds a bit, set for values outside the root."""
    _expect(t, checker, cc.Integer)
    low, high = _bounds(checker)
    extensible = bool(t.has_extension_marker)
    width = t.number_of_bits
    if width is None:
        if extensible:  # asn1tools compares values with None and fails
            raise NotImplementedError(f"INTEGER {t.name!r}: extensible without bounds")

        def encode_unconstrained(value: Any) -> tuple[int, int]:
            if type(value) is not int or not low <= value <= high:
                raise Refused("integer out of range")
            return _unconstrained(value)

        def decode_unconstrained(data: bytes, pos: int) -> tuple[Any, int]:
            value, pos = _read_unconstrained(data, pos)
            if not low <= value <= high:
                raise Refused("integer out of range")
            return value, pos

        return encode_unconstrained, decode_unconstrained

    minimum, maximum = _root_range(t)
    if not extensible:

        def encode_constrained(value: Any) -> tuple[int, int]:
            if type(value) is not int or not minimum <= value <= maximum or not low <= value <= high:
                raise Refused("integer out of range")
            return value - minimum, width

        def decode_constrained(data: bytes, pos: int) -> tuple[Any, int]:
            value = _read(data, pos, width) + minimum
            if value > maximum or not low <= value <= high:
                raise Refused("integer out of range")
            return value, pos + width

        return encode_constrained, decode_constrained

    def encode_extensible(value: Any) -> tuple[int, int]:
        if type(value) is not int or not low <= value <= high:
            raise Refused("integer out of range")
        if minimum <= value <= maximum:
            return value - minimum, 1 + width
        bits, n = _unconstrained(value)
        return (1 << n) | bits, 1 + n

    def decode_extensible(data: bytes, pos: int) -> tuple[Any, int]:
        if _read(data, pos, 1):
            value, pos = _read_unconstrained(data, pos + 1)
        else:
            value = _read(data, pos + 1, width) + minimum
            if value > maximum:
                raise Refused("integer out of range")
            pos += 1 + width
        if not low <= value <= high:
            raise Refused("integer out of range")
        return value, pos

    return encode_extensible, decode_extensible


def _boolean(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    _expect(t, checker, cc.Boolean)

    def encode_boolean(value: Any) -> tuple[int, int]:
        if type(value) is not bool:
            raise Refused("expected a bool")
        return int(value), 1

    def decode_boolean(data: bytes, pos: int) -> tuple[Any, int]:
        return bool(_read(data, pos, 1)), pos + 1

    return encode_boolean, decode_boolean


def _null(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    _expect(t, checker, cc.Null)

    def encode_null(value: Any) -> tuple[int, int]:
        if value is not None:
            raise Refused("expected None")
        return 0, 0

    def decode_null(data: bytes, pos: int) -> tuple[Any, int]:
        return None, pos

    return encode_null, decode_null


def _octets(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """OCTET STRING: the length (n bits above the lower bound, nothing for a fixed size,
    a length determinant when unbounded), the octets. An extensible SIZE adds a bit; set,
    a length determinant follows (refused when decoding)."""
    _expect(t, checker, cc.Bytes)
    low, high = _bounds(checker)
    extensible = bool(t.has_extension_marker)
    width = t.number_of_bits
    if width is None:
        minimum, maximum = 0, 0
    else:
        minimum, maximum = _root_range(t)
    if extensible:
        minimum, maximum = _root_range(t)
    if not extensible and width == 0 and low <= minimum <= high:
        return _fixed_octets(minimum)

    def encode_root(value: bytes | bytearray, length: int) -> tuple[int, int]:
        if width is None:
            return _bytes_unbound(value)
        if not minimum <= length <= maximum:
            raise Refused("size out of range")
        return ((length - minimum) << (length << 3)) | int.from_bytes(value, "big"), width + (length << 3)

    def decode_root(data: bytes, pos: int) -> tuple[bytes, int]:
        if width is None:
            return _read_bytes_unbound(data, pos)
        length = minimum + _read(data, pos, width)
        if length > maximum:
            raise Refused("size out of range")
        pos += width
        return _read_bytes(data, pos, length), pos + (length << 3)

    def encode_octets(value: Any) -> tuple[int, int]:
        if type(value) is not bytes and type(value) is not bytearray:
            raise Refused("expected bytes")
        length = len(value)
        if not low <= length <= high:
            raise Refused("size out of range")
        if not extensible:
            return encode_root(value, length)
        if minimum <= length <= maximum:
            bits, n = encode_root(value, length)
            return bits, n + 1
        if length >= _FRAGMENT:  # asn1tools writes one fragment's determinant, all octets
            raise Refused("extended size too long")
        bits, n = _length(length)
        return (((1 << n) | bits) << (length << 3)) | int.from_bytes(value, "big"), 1 + n + (length << 3)

    def decode_octets(data: bytes, pos: int) -> tuple[Any, int]:
        if extensible:
            if _read(data, pos, 1):
                raise Refused("extended size")
            pos += 1
        value, pos = decode_root(data, pos)
        if not low <= len(value) <= high:
            raise Refused("size out of range")
        return value, pos

    return encode_octets, decode_octets


def _fixed_octets(size: int) -> tuple[Encoder, Decoder]:
    """OCTET STRING (SIZE(n)), n below 64K: just the octets (keys, nonces, hashes)."""
    width = size << 3

    def encode_fixed(value: Any) -> tuple[int, int]:
        if (type(value) is bytes or type(value) is bytearray) and len(value) == size:
            return int.from_bytes(value, "big"), width
        raise Refused("expected bytes of the size")

    def decode_fixed(data: bytes, pos: int) -> tuple[Any, int]:
        return _read_bytes(data, pos, size), pos + width

    return encode_fixed, decode_fixed


def _is_fixed_octets(t: Any, checker: Any) -> bool:
    return (
        type(t) is uper.OctetString
        and not t.has_extension_marker
        and t.number_of_bits == 0
        and isinstance(checker, cc.Bytes)
        and _bounds(checker)[0] <= t.minimum <= _bounds(checker)[1]
    )


def _utf8(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """UTF8String: a length determinant in octets, the octets; SIZE counts characters and
    is not PER-visible, asn1tools checks it only as a constraint."""
    _expect(t, checker, cc.String)
    low, high = _bounds(checker)
    alphabet = None if checker.permitted_alphabet is None else frozenset(checker.permitted_alphabet)

    def encode_utf8(value: Any) -> tuple[int, int]:
        if type(value) is not str or not low <= len(value) <= high:
            raise Refused("expected a str of the right size")
        if alphabet is not None and not alphabet.issuperset(value):
            raise Refused("character not permitted")
        return _bytes_unbound(value.encode("utf-8"))

    def decode_utf8(data: bytes, pos: int) -> tuple[Any, int]:
        raw, pos = _read_bytes_unbound(data, pos)
        value = raw.decode("utf-8")
        if not low <= len(value) <= high:
            raise Refused("size out of range")
        if alphabet is not None and not alphabet.issuperset(value):
            raise Refused("character not permitted")
        return value, pos

    return encode_utf8, decode_utf8


def _known_multiplier(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """PrintableString, IA5String, NumericString, VisibleString: an extension bit if the
    SIZE is extensible (always 0: asn1tools' UPER writes no other), the length as for an
    OCTET STRING but in characters, each character's index in the permitted alphabet in
    `bits` bits."""
    _expect(t, checker, cc.String)
    bits: int = t.bits_per_character
    if t.ENCODING != "ascii" or not 1 <= bits <= 8:
        # A one-character alphabet takes 0 bits, and asn1tools then decodes "".
        raise NotImplementedError(f"{t.type_name} {t.name!r}: {bits} bits per character")
    low, high = _bounds(checker)
    extensible = bool(t.has_extension_marker)
    width = t.number_of_bits
    minimum, maximum = (0, 0) if width is None else _root_range(t)
    allowed = checker.permitted_alphabet  # what the constraints check lets through
    alphabet = t.permitted_alphabet
    # Encoding: asn1tools encodes a character in ASCII, then looks its code up.
    codes: dict[str, int] = {}
    for code, index in alphabet.encode_map.items():
        if code < 0x80 and index < 1 << bits and (allowed is None or chr(code) in allowed):
            codes[chr(code)] = index
    encodable = frozenset(codes)
    # Decoding: asn1tools keeps the low octet of the code and decodes ASCII.
    chars: list[str | None] = [None] * (1 << bits)
    for index, code in alphabet.decode_map.items():
        if 0 <= index < 1 << bits and code & 0xFF < 0x80 and (allowed is None or chr(code & 0xFF) in allowed):
            chars[index] = chr(code & 0xFF)
    # A string is a number in base 2**bits, whose digits int() reads for bases up to 32
    # and format() writes for bases 2, 8 and 16 (Hash, 4 bits): far faster than a loop
    # over characters. No digit limit applies to int() in bases that are powers of 2.
    to_digit = {ord(c): _DIGITS[i] for c, i in codes.items()} if bits <= 5 else {}
    from_digit = {ord(_DIGITS[i]): c for i, c in enumerate(chars)} if bits <= 5 else {}  # None deletes
    spec = {1: "b", 3: "o", 4: "x"}.get(bits)
    # Otherwise 8 characters at a time, which fill `bits` octets exactly: one character at
    # a time would shift an integer as long as the string for every character.
    mask = (1 << bits) - 1
    shifts = range(7 * bits, -1, -bits)

    def pack(value: str) -> int:
        if not value:
            return 0
        if bits <= 5:
            return int(value.translate(to_digit), 1 << bits)
        pad = -len(value) & 7
        octets: list[int] = []
        for start in range(0, len(value), 8):
            group = 0
            for c in value[start : start + 8]:
                group = (group << bits) | codes[c]
            octets.append(group)
        octets[-1] <<= bits * pad
        return int.from_bytes(b"".join(g.to_bytes(bits, "big") for g in octets), "big") >> (bits * pad)

    def unpack(packed: int, length: int) -> str:
        if not length:
            return ""
        if spec is not None:
            value = format(packed, f"0{length}{spec}").translate(from_digit)
        else:
            pad = -length & 7
            raw = (packed << (bits * pad)).to_bytes(bits * (length + pad) // 8, "big")
            found: list[str | None] = []
            for start in range(0, len(raw), bits):
                group = int.from_bytes(raw[start : start + bits], "big")
                found.extend([chars[(group >> shift) & mask] for shift in shifts])
            value = "".join([c for c in found[:length] if c is not None])
        if len(value) != length:
            raise Refused("character not permitted")
        return value

    def encode_string(value: Any) -> tuple[int, int]:
        if type(value) is not str:
            raise Refused("expected a str")
        length = len(value)
        if not low <= length <= high or not encodable.issuperset(value):
            raise Refused("size out of range or character not permitted")
        if width is None:
            if length < _FRAGMENT:
                head, n = _length(length)
                out, m = _append(head, n, [(pack(value), bits * length)])
            else:
                parts: list[tuple[int, int]] = []
                for start, stop, determinant, n in _fragments(length):
                    parts.append((determinant, n))
                    parts.append((pack(value[start:stop]), bits * (stop - start)))
                out, m = _join(parts)
        else:
            if not minimum <= length <= maximum:
                raise Refused("size out of range")
            out, m = ((length - minimum) << (bits * length)) | pack(value), width + bits * length
        return out, m + extensible

    def decode_string(data: bytes, pos: int) -> tuple[Any, int]:
        if extensible:
            if _read(data, pos, 1):
                raise Refused("extended size")
            pos += 1
        if width is None:
            pieces: list[str] = []
            while True:
                length, pos = _read_length(data, pos)
                pieces.append(unpack(_read(data, pos, bits * length), length))
                pos += bits * length
                if length < _FRAGMENT:
                    break
            value = "".join(pieces)
        else:
            length = minimum + _read(data, pos, width)
            if length > maximum:
                raise Refused("size out of range")
            pos += width
            value = unpack(_read(data, pos, bits * length), length)
            pos += bits * length
        if not low <= len(value) <= high:
            raise Refused("size out of range")
        return value, pos

    return encode_string, decode_string


def _array(t: Any, checker: Any) -> tuple[Encoder, Decoder]:
    """SEQUENCE OF and SET OF: the count as an OCTET STRING's length, the elements."""
    _expect(t, checker, cc.List)
    encode_element, decode_element = _compile(t.element_type, checker.element_type)
    low, high = _bounds(checker)
    extensible = bool(t.has_extension_marker)
    width = t.number_of_bits
    minimum, maximum = (0, 0) if width is None else _root_range(t)
    if extensible:
        minimum, maximum = _root_range(t)

    def encode_elements(value: list[Any]) -> tuple[int, int]:
        return _append(0, 0, [encode_element(e) for e in value])

    def decode_elements(data: bytes, pos: int, count: int, out: list[Any]) -> int:
        for _ in range(count):
            element, pos = decode_element(data, pos)
            out.append(element)
        return pos

    if _is_fixed_octets(t.element_type, checker.element_type):
        # Lists of keys and nonces: all the octets at once, instead of a call per element.
        size: int = t.element_type.minimum

        def encode_elements(value: list[Any]) -> tuple[int, int]:
            for e in value:
                if (type(e) is not bytes and type(e) is not bytearray) or len(e) != size:
                    raise Refused("expected bytes of the size")
            return int.from_bytes(b"".join(value), "big"), len(value) * size << 3

        def decode_elements(data: bytes, pos: int, count: int, out: list[Any]) -> int:
            raw = _read_bytes(data, pos, count * size)
            out.extend([raw[i : i + size] for i in range(0, count * size, size)])
            return pos + (count * size << 3)

    def encode_root(value: list[Any], count: int) -> tuple[int, int]:
        if width is not None:
            if not minimum <= count <= maximum:
                raise Refused("size out of range")
            head, n = count - minimum, width
        elif count < _FRAGMENT:
            head, n = _length(count)
        else:
            parts: list[tuple[int, int]] = []
            for start, stop, determinant, m in _fragments(count):
                parts.append((determinant, m))
                parts.append(encode_elements(value[start:stop]))
            return _join(parts)
        bits, m = encode_elements(value)
        return (head << m) | bits, n + m

    def encode_array(value: Any) -> tuple[int, int]:
        if type(value) is not list:
            raise Refused("expected a list")
        count = len(value)
        if not low <= count <= high:
            raise Refused("size out of range")
        if not extensible:
            return encode_root(value, count)
        if minimum <= count <= maximum:
            bits, n = encode_root(value, count)
            return bits, n + 1
        if count >= _FRAGMENT:  # asn1tools writes one fragment's determinant, all elements
            raise Refused("extended size too long")
        head, n = _length(count)
        bits, m = encode_elements(value)
        return (((1 << n) | head) << m) | bits, 1 + n + m

    def decode_array(data: bytes, pos: int) -> tuple[Any, int]:
        if extensible:
            if _read(data, pos, 1):
                raise Refused("extended size")
            pos += 1
        out: list[Any] = []
        if width is None:
            while True:
                count, pos = _read_length(data, pos)
                pos = decode_elements(data, pos, count, out)
                if count < _FRAGMENT:
                    break
        else:
            count = minimum + _read(data, pos, width)
            if count > maximum:
                raise Refused("size out of range")
            pos = decode_elements(data, pos + width, count, out)
        if not low <= len(out) <= high:
            raise Refused("size out of range")
        return out, pos

    return encode_array, decode_array
