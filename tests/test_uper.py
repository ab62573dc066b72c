"""runtime/uper.py: the fast UPER codec writes and reads exactly what asn1tools does.

Every comparison is with asn1tools itself (`asn1_encode`, `asn1_decode`); values are
compared by repr too, so that True for 1 or bytearray for bytes would show. The fast codec
may refuse (raise) anything, but when it answers, asn1tools answers the same.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import asn1tools
import pytest
from asn1tools.codecs import per, uper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import HASH, TID

from generated import keysync, mpenc
from runtime import Codec, DecodeError, EncodeError
from runtime import uper as fast_uper
from runtime.codec import _to_wire


def examples(count: int) -> settings:
    return settings(max_examples=count, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def asn1_encode(spec: Any, name: str, value: Any) -> bytes:
    return bytes(spec.encode(name, value, check_constraints=True))


def asn1_decode(spec: Any, name: str, data: bytes) -> tuple[Any, int]:
    """asn1tools' decoding as the codec does it: value, constraints, bits read."""
    compiled = spec._types[name]
    decoder = uper.Decoder(bytearray(data))
    value = compiled._type.decode(decoder)
    compiled.check_constraints(value)
    return value, decoder.number_of_read_bits()


def same(a: Any, b: Any) -> bool:
    return bool(a == b) and repr(a) == repr(b)


def assert_encodes_as_asn1tools(fast: fast_uper.FastType, spec: Any, name: str, value: Any) -> bytes:
    expected = asn1_encode(spec, name, value)
    assert fast.encode(value) == expected
    decoded = fast.decode(expected)
    assert same(decoded, asn1_decode(spec, name, expected))
    return expected


def assert_decode_agrees(fast: fast_uper.FastType, spec: Any, name: str, data: bytes) -> None:
    """The fast decoder refuses, or returns exactly what asn1tools returns."""
    try:
        got = fast.decode(data)
    except Exception:  # noqa: BLE001 - refusing is allowed
        return
    assert same(got, asn1_decode(spec, name, data)), data.hex()


def assert_encode_agrees(fast: fast_uper.FastType, spec: Any, name: str, value: Any) -> None:
    """The fast encoder refuses, or writes exactly what asn1tools writes."""
    try:
        got = fast.encode(value)
    except Exception:  # noqa: BLE001 - refusing is allowed
        return
    assert got == asn1_encode(spec, name, value), value


# --- the protocols' messages --------------------------------------------------------------

# Multi-byte UTF-8 (2, 3 and 4 octets), and lengths around the 1- and 2-octet determinants.
WIDE = "é€😀"
MANY = st.one_of(st.integers(0, 3), st.sampled_from([127, 128, 129]))


def text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(min_size=min_size, max_size=min(max_size, 20)),
        st.text(alphabet=WIDE, min_size=min_size, max_size=min(max_size, 50)),
        st.text(alphabet="aé", min_size=max(min_size, 60), max_size=min(max_size, 130)),
        st.text(alphabet="😀", min_size=max_size, max_size=max_size),  # 4 octets a character
    )


def lists(element: st.SearchStrategy[Any], cheap: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Short lists of `element`, or about 128 of `cheap` (asn1tools takes its time)."""
    return MANY.flatmap(lambda n: st.lists(element if n < 4 else cheap, min_size=n, max_size=n).map(tuple))


PSTRING = text(0, 1024)
LANG = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=2)
IDENTITY = st.builds(keysync.Identity, address=PSTRING, fpr=HASH, user_id=PSTRING, username=PSTRING,
                     comm_type=st.integers(0, 255), lang=LANG)
CHEAP_IDENTITY = st.builds(keysync.Identity, address=st.sampled_from(["", "a@b", "é@€"]),
                           fpr=st.just("0123456789ABCDEF"), user_id=st.just("u"), username=st.just("😀"),
                           comm_type=st.integers(0, 255), lang=LANG)
SYNC_FIELDS = {
    "challenge": TID, "response": TID, "negotiation": TID, "key": HASH, "is_group": st.booleans(),
    "version": st.builds(keysync.Version, major=st.integers(0, 255), minor=st.integers(0, 255)),
    "ownIdentities": lists(IDENTITY, CHEAP_IDENTITY),
}
MEMBER_ID = text(1, 255)
KEY = st.binary(min_size=32, max_size=32)
GREETING_FIELDS = {
    "version": st.builds(mpenc.Version, major=st.integers(0, 255), minor=st.integers(0, 255)),
    "operation": st.sampled_from(["establish", "include", "exclude", "refresh"]),
    "initial": st.booleans(), "source": MEMBER_ID, "dest": MEMBER_ID,
    "members": lists(MEMBER_ID, st.sampled_from(["m", "é", "😀" * 255])),
    "intermediateKeys": lists(KEY, st.just(bytes(range(32)))),
    "nonces": lists(KEY, st.just(bytes(32))),
    "ephemeralKeys": lists(KEY, st.just(b"\xff" * 32)),
    "prevPf": KEY, "chainHash": KEY, "sessionSignature": st.binary(min_size=64, max_size=64),
}


def messages(classes: Any, fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.one_of([st.builds(cls, **{f.name: fields[f.name] for f in dataclasses.fields(cls)})
                      for cls in classes])


PROTOCOLS = {
    "sync": (keysync.CODEC, keysync.KeySync.MESSAGES.values(),
             messages(keysync.KeySync.MESSAGES.values(), SYNC_FIELDS)),
    "greeting": (mpenc.CODEC, mpenc.Member.MESSAGES.values(),
                 messages(mpenc.Member.MESSAGES.values(), GREETING_FIELDS)),
}


@functools.cache
def asn1tools_only(protocol: str) -> Codec:
    codec, classes, _ = PROTOCOLS[protocol]
    return Codec(codec._paths, codec._type, classes, fast=False)


def outcome(call: Any, argument: Any) -> tuple[str, Any]:
    """What the codec returns, or the error it raises and its words."""
    try:
        return "returns", call(argument)
    except Exception as e:  # noqa: BLE001 - compared, whatever it is
        return type(e).__name__, str(e)


def wire(message: Any) -> Any:
    return (message.FSM, (message.CHOICE, _to_wire(message)))


def fast_of(codec: Codec) -> fast_uper.FastType:
    fast = codec.fast
    assert fast is not None
    return fast


def test_the_protocol_types_compile() -> None:
    for codec, _, _ in PROTOCOLS.values():
        assert isinstance(codec.fast, fast_uper.FastType)
    assert asn1tools_only("sync").fast is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
@examples(60)
@given(data=st.data())
def test_messages_encode_and_decode_as_asn1tools(protocol: str, data: st.DataObject) -> None:
    codec, _, strategy = PROTOCOLS[protocol]
    message = data.draw(strategy)
    encoded = assert_encodes_as_asn1tools(fast_of(codec), codec.spec, codec._type, wire(message))
    assert codec.encode(message) == encoded
    assert codec._decode_message(encoded) == message


@pytest.mark.parametrize("count", [0, 1, 127, 128, 129])
def test_list_lengths_around_the_determinant(count: int) -> None:
    upflow = mpenc.Upflow(
        version=mpenc.Version(), operation="refresh", initial=False, source="😀" * 255, dest="é",
        members=tuple(f"member {i} €" for i in range(count)), intermediateKeys=(bytes(32),) * count,
        nonces=tuple(bytes([i]) * 32 for i in range(count)), ephemeralKeys=(b"\x80" * 32,) * count,
        prevPf=bytes(range(32)), chainHash=b"\x01" * 32)
    codec = mpenc.CODEC
    assert_encodes_as_asn1tools(fast_of(codec), codec.spec, codec._type, wire(upflow))
    offerer = keysync.OwnKeysOfferer(ownIdentities=(keysync.Identity(
        address="😀" * 1024, fpr="0123456789ABCDEF" * 8, user_id="€" * 43, username="é" * 64, comm_type=count % 256,
        lang="zz"),) * count)
    codec = keysync.CODEC
    assert_encodes_as_asn1tools(fast_of(codec), codec.spec, codec._type, wire(offerer))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@examples(100)
@given(data=st.data())
def test_truncated_corrupted_or_random_bytes_decode_as_asn1tools_or_are_refused(protocol: str,
                                                                               data: st.DataObject) -> None:
    codec, _, strategy = PROTOCOLS[protocol]
    encoded = codec.encode(data.draw(strategy))
    cut = data.draw(st.integers(0, len(encoded)))
    flips = data.draw(st.lists(st.integers(0, len(encoded) * 8 - 1), min_size=1, max_size=3))
    corrupted = bytearray(encoded)
    for flip in flips:
        corrupted[flip // 8] ^= 0x80 >> (flip % 8)
    noise = data.draw(st.binary(max_size=80))
    for bad in (encoded[:cut], bytes(corrupted), noise, encoded[:cut] + noise):
        assert_decode_agrees(fast_of(codec), codec.spec, codec._type, bad)
        # And the codec as a whole, with its error messages, is unchanged.
        assert outcome(codec._decode_message, bad) == outcome(asn1tools_only(protocol)._decode_message, bad)


# Values asn1tools refuses or might: wrong sizes, types, ranges, alphabets.
JUNK = st.one_of(
    st.integers(-2, 300), st.booleans(), st.none(), st.floats(allow_nan=False), st.text(max_size=3),
    st.binary(max_size=3),
    st.sampled_from([bytes(15), bytes(16), bytes(17), bytearray(16), bytes(31), bytes(32), bytearray(32), bytes(64),
                     "0123456789abcdef", "0123456789ABCDEF", "A" * 15, "A" * 129, "Z" * 16, "zz", "z", "ZZ", "",
                     "establish", "Establish", "a" * 256, "é" * 1025, -1, 256, 1.0, [], (), {}, ["x"], [b""],
                     ("member", {}), ("nope", {}), ("beacon", {})]),
)
_DELETE = object()


def paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            out += paths(item, (*path, index))
    return out


def replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        if new is _DELETE and not rest:
            del out[head]
        else:
            out[head] = replace(value[head], rest, new)
        return out
    items = list(value)
    if new is _DELETE and not rest:
        del items[head]
    else:
        items[head] = replace(value[head], rest, new)
    return items if isinstance(value, list) else tuple(items)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@examples(100)
@given(data=st.data())
def test_invalid_values_are_refused_or_encoded_as_asn1tools(protocol: str, data: st.DataObject) -> None:
    codec, _, strategy = PROTOCOLS[protocol]
    message = data.draw(strategy)
    value = wire(message)
    path = data.draw(st.sampled_from(paths(value)))
    bad = replace(value, path, data.draw(st.one_of(JUNK, st.just(_DELETE)) if path else JUNK))
    assert_encode_agrees(fast_of(codec), codec.spec, codec._type, bad)
    # The codec's errors are asn1tools' errors, word for word.
    fields = [f.name for f in dataclasses.fields(message)]
    if not fields:
        return
    odd = dataclasses.replace(message, **{data.draw(st.sampled_from(fields)): data.draw(JUNK)})
    assert outcome(codec.encode, odd) == outcome(asn1tools_only(protocol).encode, odd)


def test_known_errors_keep_their_words() -> None:
    beacon = keysync.CODEC.encode(keysync.Beacon(challenge=bytes(16), version=keysync.Version()))
    with pytest.raises(DecodeError, match=r"^Sync\.keysync\.beacon\.challenge: out of data"):
        keysync.CODEC._decode_message(beacon[:5])
    # 1 + 1 + 5 + 1 bits of CHOICEs and SEQUENCE, 128 of challenge, 3 of Version, 8 of major, 8 of minor.
    beacon = keysync.CODEC.encode(keysync.Beacon(challenge=bytes(16), version=keysync.Version(major=3, minor=4)))
    with pytest.raises(DecodeError, match=r"^Sync\.keysync\.beacon\.version\.minor: out of data"):
        keysync.CODEC._decode_message(beacon[:19])
    with pytest.raises(EncodeError, match="Beacon.*challenge.*Expected between 16 and 16 bytes, but got 15"):
        keysync.CODEC.encode(keysync.Beacon(challenge=bytes(15), version=keysync.Version()))
    with pytest.raises(EncodeError, match=r"Expected between 1 and 255 characters, but got 0"):
        mpenc.CODEC.encode(mpenc.Confirm(version=mpenc.Version(), source="", prevPf=bytes(32),
                                               sessionSignature=bytes(64)))


# --- every construct the compiler takes, on a module of its own -----------------------------

CONSTRUCTS = """
CONSTRUCTS DEFINITIONS AUTOMATIC TAGS ::=
BEGIN
Single ::= ENUMERATED { only }
Hex ::= PrintableString (FROM ("A".."F" | "0".."9"))
Hash ::= Hex (SIZE (16..128))  -- asn1tools drops this SIZE (see generated/sync.asn1)
Name ::= UTF8String (SIZE (1..5))
Named ::= Name (SIZE (2..3))
Color ::= ENUMERATED { red (-5), green (0), blue (7), ..., violet (9) }
Level ::= ENUMERATED { low, high, ... }
Ints ::= SEQUENCE {
    free INTEGER,
    semi INTEGER (-3..MAX),
    negative INTEGER (-1000..-900),
    wide INTEGER (0..100000),
    extensible INTEGER (0..10, ...),
    fixed INTEGER (5..5),
    optional INTEGER (0..7) OPTIONAL,
    default INTEGER (0..7) DEFAULT 3
}
Strings ::= SEQUENCE {
    ia5 IA5String (SIZE (0..200)),
    numeric NumericString,
    visible VisibleString (SIZE (3)),
    printable PrintableString (SIZE (1..4, ...)),
    binary IA5String (FROM ("ab")),
    octal PrintableString (FROM ("a".."e" | "x")) (SIZE (0..9)),
    quaternary PrintableString (FROM ("a".."c")),
    hex PrintableString (FROM ("0".."9" | "A".."F")) (SIZE (1..64)),
    five IA5String (FROM ("a".."z" | "0".."4")),
    utf UTF8String (SIZE (2..5)),
    hash Hash,
    named Named,
    any UTF8String,
    optional IA5String OPTIONAL
}
Octets ::= SEQUENCE {
    any OCTET STRING,
    range OCTET STRING (SIZE (0..20)),
    extensible OCTET STRING (SIZE (2..4, ...)),
    fixed OCTET STRING (SIZE (3)),
    empty OCTET STRING (SIZE (0)),
    default OCTET STRING DEFAULT '00FF'H
}
Lists ::= SEQUENCE {
    any SEQUENCE OF INTEGER (0..3),
    bounded SEQUENCE (SIZE (1..3)) OF BOOLEAN,
    fixed SEQUENCE (SIZE (2)) OF NULL,
    extensible SEQUENCE (SIZE (0..2, ...)) OF Color,
    keys SEQUENCE (SIZE (0..4)) OF OCTET STRING (SIZE (4)),
    set SET OF INTEGER (0..1)
}
Pick ::= CHOICE { a INTEGER (0..1), b BOOLEAN, ..., c NULL }
One ::= CHOICE { only BOOLEAN }
Record ::= SET { x BOOLEAN, y Pick OPTIONAL, ..., z INTEGER OPTIONAL }
Top ::= SEQUENCE {
    ints Ints, strings Strings, octets Octets, lists Lists, pick Pick, one One, record Record,
    color Color, level Level, single Single, flag BOOLEAN DEFAULT TRUE, level2 Level DEFAULT high,
    ...
}
END
"""


@functools.cache
def constructs() -> tuple[Any, fast_uper.FastType]:
    spec = asn1tools.compile_string(CONSTRUCTS, "uper")
    return spec, fast_uper.compile_type(spec, "Top")


def valid(t: Any, checker: Any, extended: bool) -> st.SearchStrategy[Any]:
    """Values of an asn1tools UPER type that its checks admit; `extended`: sizes and
    integers beyond extensible roots too."""
    kind = type(t)
    if kind in (per.Sequence, per.Set):
        members = {m.name: m for m in checker.members}
        required = {m.name: valid(m, members[m.name], extended) for m in t.root_members
                    if not m.optional and m.default is None}
        optional = {m.name: valid(m, members[m.name], extended) for m in t.root_members
                    if m.optional or m.default is not None}
        return st.fixed_dictionaries(required, optional=optional)
    if kind is uper.Choice:
        return st.one_of([valid(m, checker.name_to_member[m.name], extended).map(functools.partial(pair, m.name))
                          for m in t.root_index_to_member.values()])
    if kind is per.Enumerated:
        return st.sampled_from(sorted(t.root_data_to_index))
    if kind is per.Boolean:
        return st.booleans()
    if kind is per.Null:
        return st.none()
    if kind is uper.Integer:
        low, high = fast_uper._bounds(checker)
        if t.has_extension_marker and not extended:
            low, high = t.minimum, t.maximum
        return st.integers(None if low == -fast_uper._INF else low, None if high == fast_uper._INF else high)
    low, high = sizes(t, checker, extended)
    if kind in (uper.SequenceOf, uper.SetOf):
        return st.lists(valid(t.element_type, checker.element_type, extended), min_size=low, max_size=high)
    if kind is uper.OctetString:
        return st.binary(min_size=low, max_size=high)
    if kind is per.UTF8String:
        return st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=low, max_size=high)
    alphabet = sorted(chr(c) for c in t.permitted_alphabet.encode_map if chr(c) in checker.permitted_alphabet)
    return st.text(alphabet=alphabet, min_size=low, max_size=high)


def pair(name: str, value: Any) -> tuple[str, Any]:
    return name, value


def sizes(t: Any, checker: Any, extended: bool) -> tuple[int, int]:
    low, high = fast_uper._bounds(checker)
    low = 0 if low == -fast_uper._INF else low
    high = low + 40 if high == fast_uper._INF else high
    # asn1tools' UPER writes an extensible string's size as if within the root.
    extends = extended and type(t) in (uper.OctetString, uper.SequenceOf)
    if getattr(t, "has_extension_marker", False) and not extends:
        low, high = t.minimum, t.maximum
    return low, min(high, low + 40)


def top(extended: bool) -> st.SearchStrategy[Any]:
    spec, _ = constructs()
    compiled = spec._types["Top"]
    return valid(compiled._type, compiled.constraints_checker._type, extended)


@examples(150)
@given(top(extended=False))
def test_every_construct_encodes_and_decodes_as_asn1tools(value: Any) -> None:
    spec, fast = constructs()
    assert_encodes_as_asn1tools(fast, spec, "Top", value)


@examples(100)
@given(top(extended=True), st.data())
def test_extended_values_and_bad_bytes_agree_with_asn1tools(value: Any, data: st.DataObject) -> None:
    spec, fast = constructs()
    encoded = asn1_encode(spec, "Top", value)
    assert fast.encode(value) == encoded  # beyond the root, but still within what it writes
    cut = data.draw(st.integers(0, len(encoded)))
    flip = data.draw(st.integers(0, len(encoded) * 8 - 1))
    corrupted = bytearray(encoded)
    corrupted[flip // 8] ^= 0x80 >> (flip % 8)
    for bad in (encoded, encoded[:cut], bytes(corrupted), data.draw(st.binary(max_size=60))):
        assert_decode_agrees(fast, spec, "Top", bad)
    path = data.draw(st.sampled_from(paths(value)))
    assert_encode_agrees(fast, spec, "Top", replace(value, path, data.draw(JUNK)))


BIG = """
BIG DEFINITIONS AUTOMATIC TAGS ::=
BEGIN
Big ::= SEQUENCE {
    octets OCTET STRING, utf UTF8String, ia5 IA5String, hex PrintableString (FROM ("0".."9" | "A".."F")),
    list SEQUENCE OF BOOLEAN, huge OCTET STRING (SIZE (70000))
}
END
"""


@functools.cache
def big() -> tuple[Any, fast_uper.FastType]:
    spec = asn1tools.compile_string(BIG, "uper")
    return spec, fast_uper.compile_type(spec, "Big")


@pytest.mark.parametrize("length", [16383, 16384, 16385, 65536 + 16384 + 1])
def test_fragments_above_16k(length: int) -> None:
    spec, fast = big()
    count = length if length < 20000 else length // 4  # asn1tools takes 2 us an element
    value = {
        "octets": bytes(range(256)) * (length // 256) + b"\x01" * (length % 256),
        "utf": "é" * (length // 2) + "a" * (length % 2),  # the octets' count is split, not the characters'
        "ia5": "a\x00~" * (length // 3) + "z" * (length % 3),
        "hex": "0F" * (length // 2) + "A" * (length % 2),
        "list": [True, False] * (count // 2) + [True] * (count % 2),
        "huge": b"\x5a" * 70000,
    }
    assert_encodes_as_asn1tools(fast, spec, "Big", value)


@pytest.mark.parametrize("declaration", [
    "T ::= BIT STRING", "T ::= REAL", "T ::= SEQUENCE { a UTCTime }", "T ::= BMPString",
    "T ::= IA5String (FROM (\"a\"))", "T ::= OBJECT IDENTIFIER", "T ::= SEQUENCE { a T OPTIONAL }",
])
def test_what_it_does_not_handle_it_says_at_compile_time(declaration: str) -> None:
    spec = asn1tools.compile_string(f"M DEFINITIONS AUTOMATIC TAGS ::= BEGIN {declaration} END", "uper")
    with pytest.raises(NotImplementedError):
        fast_uper.compile_type(spec, "T")


def test_the_checked_constraints_are_enforced_on_decoding() -> None:
    # UTF8String's SIZE is not in the bits: only the constraints check rejects 0 characters.
    codec = mpenc.CODEC
    confirm = mpenc.Confirm(version=mpenc.Version(), source="", prevPf=bytes(32), sessionSignature=bytes(64))
    data = bytes(codec.spec.encode(codec._type, wire(confirm), check_constraints=False))
    with pytest.raises(fast_uper.Refused):
        fast_of(codec).decode(data)
    with pytest.raises(asn1tools.ConstraintsError):
        asn1_decode(codec.spec, codec._type, data)
    with pytest.raises(DecodeError, match="source: Expected between 1 and 255 characters, but got 0"):
        codec._decode_message(data)


def test_unusual_python_types_are_refused_not_coerced() -> None:
    spec, _ = constructs()
    fast = fast_uper.compile_type(spec, "Ints")
    value = {"free": 1, "semi": 0, "negative": -950, "wide": 7, "extensible": 3, "fixed": 5}
    assert fast.encode(value) == asn1_encode(spec, "Ints", value)
    for odd in ({**value, "free": True}, {**value, "default": True}, {**value, "wide": 7.0}, {**value, "fixed": 4}):
        with pytest.raises(fast_uper.Refused):
            fast.encode(odd)


def test_an_unknown_enumerated_value_is_an_encode_error_naming_the_message() -> None:
    upflow = mpenc.Upflow(
        version=mpenc.Version(), operation="merge", initial=True, source="a", dest="b", members=("a", "b"),
        intermediateKeys=(bytes(32),), nonces=(bytes(32),), ephemeralKeys=(bytes(32),), prevPf=bytes(32),
        chainHash=bytes(32))
    for codec in (mpenc.CODEC, asn1tools_only("greeting")):
        with pytest.raises(EncodeError, match="Upflow: no such enumerated value 'merge'"):
            codec.encode(upflow)
