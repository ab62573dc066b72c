"""The codec: every KeySync message round-trips; bad bytes raise DecodeError only."""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generated import keysync, mpenc
from runtime import DecodeError, EncodeError

TID = st.binary(min_size=16, max_size=16)
HASH = st.text(alphabet="0123456789ABCDEF", min_size=16, max_size=128)
PSTRING = st.text(max_size=30)
IDENTITY = st.builds(keysync.Identity, address=PSTRING, fpr=HASH, user_id=PSTRING, username=PSTRING,
                     comm_type=st.integers(0, 255), lang=st.text(alphabet="abcdefghijklmnopqrstuvwxyz",
                                                                 min_size=2, max_size=2))
BY_FIELD = {
    "challenge": TID, "response": TID, "negotiation": TID, "key": HASH, "is_group": st.booleans(),
    "version": st.builds(keysync.Version, major=st.integers(0, 255), minor=st.integers(0, 255)),
    "ownIdentities": st.lists(IDENTITY, max_size=3).map(tuple),
}
MESSAGES = list(keysync.KeySync.MESSAGES.values())


def message_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    return st.builds(cls, **{f.name: BY_FIELD[f.name] for f in dataclasses.fields(cls)})


messages = st.one_of([message_strategy(cls) for cls in MESSAGES])


def test_every_message_has_a_strategy() -> None:
    for cls in MESSAGES:
        for name in typing.get_type_hints(cls):
            assert name in BY_FIELD or name.isupper(), (cls.NAME, name)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_every_message_round_trips(message: Any) -> None:
    data = keysync.CODEC.encode(message)
    assert keysync.CODEC.decode(data) == message


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        message = keysync.CODEC.decode(data)
    except DecodeError:
        return
    assert keysync.CODEC.decode(keysync.CODEC.encode(message)) == message


@settings(max_examples=200, deadline=None)
@given(messages, st.data())
def test_truncated_or_corrupted_bytes_never_raise_anything_else(message: Any, data: st.DataObject) -> None:
    encoded = keysync.CODEC.encode(message)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    flip = data.draw(st.integers(0, len(encoded) * 8 - 1))
    corrupted = bytearray(encoded)
    corrupted[flip // 8] ^= 1 << (flip % 8)
    for bad in (encoded[:cut], bytes(corrupted)):
        with contextlib.suppress(DecodeError):
            keysync.CODEC.decode(bad)


def test_errors_name_message_and_field() -> None:
    beacon = keysync.CODEC.encode(keysync.Beacon(challenge=bytes(16), version=keysync.Version()))
    try:
        keysync.CODEC.decode(beacon[:5])
    except DecodeError as e:
        assert "beacon.challenge" in str(e)
    else:
        raise AssertionError("truncated Beacon decoded")
    try:
        keysync.CODEC.encode(keysync.Beacon(challenge=bytes(15), version=keysync.Version()))
    except EncodeError as e:
        assert "Beacon" in str(e) and "challenge" in str(e)
    else:
        raise AssertionError("15-byte TID encoded")


def test_trailing_bytes_are_refused() -> None:
    from generated.mpenc import CODEC as GKA
    from generated.mpenc import Confirm, Version

    data = GKA.encode(Confirm(version=Version(major=1, minor=0), source="alice", prevPf=bytes(32),
                              sessionSignature=bytes(64)))
    assert GKA.decode(data).source == "alice"
    with pytest.raises(DecodeError, match="trailing data after the message"):
        GKA.decode(data + b"\x00")


def test_an_enumerated_type_carries_its_extension_bit() -> None:
    # X.691: an extensible ENUMERATED starts with the extension bit, then the index in two
    # bits: refresh (3) is 0 11, padded 0x60. Without the bit it would be 0xc0.
    assert mpenc.CODEC.spec.encode("Operation", "refresh") == b"\x60"
    assert mpenc.CODEC.fast is not None
