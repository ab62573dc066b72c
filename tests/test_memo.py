"""runtime.memo: pure functions remembered, bounded and counted; KeySync's envelopes
opened through it exactly as without it."""

from __future__ import annotations

import pytest

from protocols.keysync.envelope import DeviceKeys, _open, open_envelope, seal
from runtime import memo
from runtime.errors import EnvelopeError, VerificationError


def test_a_pure_function_is_computed_once_per_input_and_counted() -> None:
    calls: list[int] = []

    @memo.pure(2)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    reused, computed = memo.counts()
    assert [square(3), square(3), square(4), square(3)] == [9, 9, 16, 9]
    assert calls == [3, 4]
    assert memo.counts() == (reused + 2, computed + 2)
    square(5)  # two at most: 4, the least recently used, goes, and 3 stays
    square(3)
    square(4)
    assert calls == [3, 4, 5, 4]


def test_an_envelope_opens_through_the_memo_as_without_it() -> None:
    alice, bob, eve = (DeviceKeys.generate(bytes([i]) * 32) for i in (1, 2, 3))
    sealed = seal(b"payload", alice, [bob.public])
    signed_only = seal(b"hello", alice)
    tampered = bytearray(sealed)
    tampered[len(tampered) // 2] ^= 1
    for data, keys in ((sealed, (bob,)), (signed_only, ()), (signed_only, (eve,))):
        assert open_envelope(data, keys) == open_envelope(data, list(keys)) == _open(data, keys)
    # A failure is raised afresh each time, with the message the plain open gives.
    for data, keys, kind in ((sealed, (eve,), EnvelopeError), (bytes(tampered), (bob,), VerificationError),
                             (sealed, (), EnvelopeError), (tampered, (bob,), VerificationError)):
        with pytest.raises(kind) as plain:
            _open(bytes(data), keys)
        raised = []
        for _ in range(2):
            with pytest.raises(kind) as memoised:
                open_envelope(data, keys)  # type: ignore[arg-type] - a bytearray, as a driver may pass
            raised.append(memoised.value)
            assert str(memoised.value) == str(plain.value)
        assert raised[0] is not raised[1]
