"""sntrup4591761 (protocols/bisonrelay/sntrup4591761.py) against companyzero/sntrup4591761.

The reference is the Go package BisonRelay uses (commit 9e0f3af of github.com/companyzero/
sntrup4591761). Its TestSage decodes f, g, r from each line of testdata/sage128.gz, builds the
keys from (f, g) with `deriveKey`, encapsulates with r through `createCipher`, and decapsulates
the line's ciphertext with the line's private key. test_kat does the same for all 128 lines.
The remaining tests pin what the KAT lines cannot show: how the random stream is read, what a
bad ciphertext gives, length checks, and the arithmetic the vectorised code relies on.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import random
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.bisonrelay import sntrup4591761 as kem

# The copy travels with the project (tests/vectors/README.md names its source); the shared
# original is checked against it when present.
VECTORS_COPY = Path(__file__).parent / "vectors" / "sntrup4591761-sage128.gz"
VECTORS_SHARED = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "sntrup4591761-sage128.gz"

FIELDS = ("f", "g", "r", "pk", "sk", "c", "k")


def _load_kat() -> list[dict[str, bytes]]:
    path = VECTORS_COPY if VECTORS_COPY.exists() else VECTORS_SHARED
    with gzip.open(path, "rt", encoding="ascii") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    return [dict(zip(FIELDS, (bytes.fromhex(part) for part in line.split(":")), strict=True)) for line in lines]


KAT = _load_kat()


def _seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


@functools.cache
def _pair() -> tuple[bytes, bytes]:
    """One key pair for the tests that only need some valid key."""
    return kem.generate_key(_seeded(2017))


# --- the reference vectors ---------------------------------------------------------------------------


def test_vector_copy_matches_shared_original() -> None:
    if not VECTORS_SHARED.exists():
        pytest.skip("no shared vectors next to this clone")
    assert VECTORS_COPY.read_bytes() == VECTORS_SHARED.read_bytes()


def test_vectors_are_128_lines_of_seven_fields() -> None:
    assert len(KAT) == 128
    sizes = {name: {len(line[name]) for line in KAT} for name in FIELDS}
    assert sizes == {"f": {191}, "g": {191}, "r": {191}, "pk": {1218}, "sk": {1600}, "c": {1047}, "k": {32}}


@pytest.mark.parametrize("n", range(len(KAT)), ids=lambda n: f"line{n + 1}")
def test_kat(n: int) -> None:
    line = KAT[n]
    # testKeyDerivation: (f, g) -> (pk, sk)
    pk, sk = kem._keys_from(kem._decode_small(line["f"]), kem._decode_small(line["g"]))
    assert pk == line["pk"]
    assert sk == line["sk"]
    # testEncapsulation: (pk, r) -> (c, k)
    c, k = kem._encapsulate_with(line["pk"], kem._decode_small(line["r"]))
    assert c == line["c"]
    assert k == line["k"]
    # testDecapsulation: (c, sk) -> k with ok = 1
    assert kem.decapsulate_checked(line["c"], line["sk"]) == (line["k"], True)
    assert kem.decapsulate(line["c"], line["sk"]) == line["k"]


# --- the public API ----------------------------------------------------------------------------------


def test_sizes() -> None:
    sizes = (kem.PUBLIC_KEY_SIZE, kem.PRIVATE_KEY_SIZE, kem.CIPHERTEXT_SIZE, kem.SHARED_KEY_SIZE)
    assert sizes == (1218, 1600, 1047, 32)
    pk, sk = _pair()
    ct, k = kem.encapsulate(pk, _seeded(1))
    assert (len(pk), len(sk), len(ct), len(k)) == (1218, 1600, 1047, 32)
    assert sk[382:] == pk  # the private key carries the public key, as Go lays it out


def test_seeded_round_trip_is_deterministic() -> None:
    pk, sk = kem.generate_key(_seeded(5))
    assert kem.generate_key(_seeded(5)) == (pk, sk)
    assert kem.generate_key(_seeded(6))[0] != pk
    ct, k = kem.encapsulate(pk, _seeded(9))
    assert kem.encapsulate(pk, _seeded(9)) == (ct, k)
    assert kem.decapsulate(ct, sk) == k
    assert kem.decapsulate_checked(ct, sk) == (k, True)


@settings(max_examples=4, deadline=None)
@given(key_seed=st.integers(0, 2**64 - 1), encap_seed=st.integers(0, 2**64 - 1))
def test_round_trip_property(key_seed: int, encap_seed: int) -> None:
    pk, sk = kem.generate_key(_seeded(key_seed))
    ct, k = kem.encapsulate(pk, _seeded(encap_seed))
    assert kem.decapsulate_checked(ct, sk) == (k, True)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**64 - 1))
def test_encapsulations_under_one_key_round_trip(seed: int) -> None:
    pk, sk = _pair()
    ct, k = kem.encapsulate(pk, _seeded(seed))
    assert kem.decapsulate(ct, sk) == k


# --- bad ciphertexts: what Go's Decapsulate returns ----------------------------------------------------
# Go returns (SHA-512(Encode_3(r'))[32:], ok) for the r' it recovers, with ok = 0 unless r' has
# weight 286, re-encrypts to the ciphertext and matches the 32 confirmation bytes. No secret is
# mixed in: the key on failure is what r' hashes to. BisonRelay rejects on ok != 1.


@settings(max_examples=25, deadline=None)
@given(pos=st.integers(0, kem.CIPHERTEXT_SIZE - 1), mask=st.integers(1, 255))
def test_any_tampered_byte_fails_the_check(pos: int, mask: int) -> None:
    pk, sk = _pair()
    ct, k = kem.encapsulate(pk, _seeded(3))
    bad = bytearray(ct)
    bad[pos] ^= mask
    key, ok = kem.decapsulate_checked(bytes(bad), sk)
    assert not ok
    assert kem.decapsulate(bytes(bad), sk) == key
    if pos < 32:  # the confirmation bytes only enter the check, never r', so the key stays
        assert key == k


def test_tampered_ciphertext_keys_as_go_defines_them() -> None:
    pk, sk = _pair()
    ct, k = kem.encapsulate(pk, _seeded(3))
    # One step in one rounded coefficient (c0 moves by 3): decryption absorbs it, so r' = r and
    # the key is unchanged. Only the flag tells the ciphertext was altered.
    nudged = ct[:32] + bytes([ct[32] ^ 1]) + ct[33:]
    assert kem.decapsulate_checked(nudged, sk) == (k, False)
    # A wholly different rounded part recovers some other r': another key, still ok = 0.
    garbage = ct[:32] + random.Random(4).randbytes(kem.CIPHERTEXT_SIZE - 32)
    key, ok = kem.decapsulate_checked(garbage, sk)
    assert not ok and key != k
    # The key on failure is exactly a hash of the r' Go recovers: f, 1/g and h from sk, nothing secret mixed in.
    f = kem._decode_small(sk[:191])
    t3 = kem._cmod(kem._cmod(3 * kem._mul(kem._decode_rounded(garbage[32:]), f, kem.Q), kem.Q), 3)
    r_bad = kem._mul(t3, kem._decode_small(sk[191:382]), 3)
    assert key == hashlib.sha512(kem._encode_small(r_bad)).digest()[32:]
    # Another key pair's private key: another key, ok = 0.
    other_sk = kem.generate_key(_seeded(11))[1]
    key, ok = kem.decapsulate_checked(ct, other_sk)
    assert not ok and key != k


# --- malformed input ---------------------------------------------------------------------------------


def test_wrong_lengths_raise_value_error() -> None:
    pk, sk = _pair()
    ct, _ = kem.encapsulate(pk, _seeded(1))
    for bad_pk in (pk[:-1], pk + b"\0", b""):
        with pytest.raises(ValueError, match=rf"public key must be 1218 bytes, got {len(bad_pk)}"):
            kem.encapsulate(bad_pk, _seeded(1))
        with pytest.raises(ValueError, match=r"public key must be 1218 bytes"):
            kem._encapsulate_with(bad_pk, kem._decode_small(KAT[0]["r"]))
    for bad_ct in (ct[:-1], ct + b"\0"):
        with pytest.raises(ValueError, match=rf"ciphertext must be 1047 bytes, got {len(bad_ct)}"):
            kem.decapsulate(bad_ct, sk)
    for bad_sk in (sk[:-1], sk + b"\0", pk):
        with pytest.raises(ValueError, match=rf"private key must be 1600 bytes, got {len(bad_sk)}"):
            kem.decapsulate(ct, bad_sk)


def test_short_random_reads_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"random\(4\) returned 3 bytes"):
        kem.generate_key(lambda n: b"\0" * (n - 1))
    with pytest.raises(ValueError, match=r"random\(4\) returned 0 bytes"):
        kem.encapsulate(_pair()[0], lambda n: b"")


def test_helpers_check_their_polynomials() -> None:
    f = kem._decode_small(KAT[0]["f"])
    with pytest.raises(ValueError, match="g must have 761 coefficients"):
        kem._keys_from(f, f[:-1])
    with pytest.raises(ValueError, match="g is not invertible in R3"):
        kem._keys_from(f, np.zeros(761, dtype=np.int64))
    with pytest.raises(ValueError, match="f is zero in Rq"):
        kem._keys_from(np.zeros(761, dtype=np.int64), kem._decode_small(KAT[0]["g"]))


def test_malformed_encodings_are_accepted_as_go_accepts_them() -> None:
    # Go decodes any bytes of the right length without complaint; so do we, with Go's values.
    pk, sk = _pair()
    junk_pk = b"\xff" * kem.PUBLIC_KEY_SIZE
    assert _go_rq_decode(junk_pk) == kem._decode_rq(junk_pk).tolist()
    assert min(_go_rq_decode(junk_pk)) < -2295  # out of the centred range: Go's Freeze, int16
    ct, k = kem.encapsulate(junk_pk, _seeded(1))
    assert len(ct) == kem.CIPHERTEXT_SIZE and len(k) == kem.SHARED_KEY_SIZE
    # 2-bit fields of 3 in the private key decode to coefficient 2 and are used as such.
    assert kem._decode_small(b"\xff" * 191).tolist() == [2] * 761
    key, ok = kem.decapsulate_checked(kem.encapsulate(pk, _seeded(1))[0], b"\xff" * 382 + pk)
    assert not ok and len(key) == 32


# --- how the random stream is read ---------------------------------------------------------------------
# The Go code reads its io.Reader only in random32 (zx/random.go:15-27): one io.ReadFull of a
# [4]byte, little-endian. RandomSmall (zx/random.go:64-73) and RandomTSmall (zx/random.go:78-99)
# each call it 761 times in coefficient order. GenerateKey (sntrup4591761.go:55-77) loops
# RandomSmall for g until r3.Reciprocal succeeds (lines 59-66), then RandomTSmall for f (line 71).
# Encapsulate (sntrup4591761.go:108-117) calls RandomTSmall for r once (line 110).


class Recording:
    """A `random` that logs each requested size and serves bytes from a fixed stream."""

    def __init__(self, stream: bytes) -> None:
        self.stream = stream
        self.offset = 0
        self.sizes: list[int] = []

    def __call__(self, n: int) -> bytes:
        self.sizes.append(n)
        chunk = self.stream[self.offset : self.offset + n]
        self.offset += n
        return chunk


def _words(stream: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(stream) // 4}I", stream[: len(stream) // 4 * 4]))


def _go_small(words: list[int]) -> list[int]:
    # zx/random.go:70: int8(((1073741823 & uint32(r)) * 3) >> 30) - 1
    return [(((w & 0x3FFFFFFF) * 3) >> 30) - 1 for w in words]


def _go_t_small(words: list[int]) -> list[int]:
    # zx/random.go:87-98, with Go 1.26+'s correct minmax comparison of the uint32 words
    marked = [w & ~1 for w in words[:286]] + [(w & ~2) | 1 for w in words[286:]]
    return [(w & 3) - 1 for w in sorted(marked)]


def test_key_generation_reads_761_words_for_g_then_761_for_f() -> None:
    stream = random.Random(21).randbytes(8 * 761)
    rec = Recording(stream)
    pk, sk = kem.generate_key(rec)
    assert rec.sizes == [4] * (2 * 761)  # this g was invertible at the first try
    words = _words(stream)
    g = np.array(_go_small(words[:761]), dtype=np.int64)
    f = np.array(_go_t_small(words[761:1522]), dtype=np.int64)
    assert (pk, sk) == kem._keys_from(f, g)
    assert int(np.count_nonzero(f)) == 286


def test_key_generation_draws_g_again_when_it_is_not_invertible() -> None:
    # Word 0x20000000 gives coefficient ((2^29 * 3) >> 30) - 1 = 0, so these 761 words make g = 0,
    # which has no inverse in R3: Go reads 761 more words for the next g (sntrup4591761.go:59-66).
    rejected = struct.pack("<I", 0x20000000) * 761
    assert kem._small_from_words(kem._read_words(Recording(rejected), 761)).tolist() == [0] * 761
    rest = random.Random(21).randbytes(8 * 761)
    rec = Recording(rejected + rest)
    keys = kem.generate_key(rec)
    assert rec.sizes == [4] * (3 * 761)
    assert keys == kem.generate_key(Recording(rest))


def test_encapsulation_reads_761_words_for_r() -> None:
    pk, sk = _pair()
    stream = random.Random(8).randbytes(4 * 761)
    rec = Recording(stream)
    ct, k = kem.encapsulate(pk, rec)
    assert rec.sizes == [4] * 761
    r = np.array(_go_t_small(_words(stream)), dtype=np.int64)
    assert (ct, k) == kem._encapsulate_with(pk, r)
    assert k == hashlib.sha512(kem._encode_small(r)).digest()[32:]
    assert ct[:32] == hashlib.sha512(kem._encode_small(r)).digest()[:32]


def test_t_small_sort_follows_go_1_26_comparison() -> None:
    words = kem._read_words(_seeded(30), 761)
    # Go's sorting network with a correct comparator is a sort: the module's np.sort stands for it.
    assert np.array_equal(kem._network_sort(words, go_before_1_26=False), np.sort(words))
    # Before Go 1.26, ConstantTimeLessOrEq's int32 subtraction misorders words 2^31 or more apart,
    # so the same stream gave another f or r; with words below 2^31 both comparators agree.
    assert not np.array_equal(kem._t_small_from_words(words), kem._t_small_from_words(words, go_before_1_26=True))
    low = words >> 1
    assert np.array_equal(kem._t_small_from_words(low), kem._t_small_from_words(low, go_before_1_26=True))
    assert int(np.count_nonzero(kem._t_small_from_words(words, go_before_1_26=True))) == 286


# --- the arithmetic the vectorised code stands on ----------------------------------------------------------


def _i32(x: int) -> int:
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def _i16(x: int) -> int:
    return ((x + 2**15) & 0xFFFF) - 2**15


def _go_freeze_q(a: int) -> int:
    # rq/modq/modq.go Freeze, every int32 operation wrapped
    a = _i32(a - _i32(4591 * _i32(_i32(228 * a) >> 20)))
    a = _i32(a - _i32(4591 * (_i32(_i32(58470 * a) + 134217728) >> 28)))
    return _i16(a)


def _go_freeze_3(a: int) -> int:
    # r3/mod3/mod3.go Freeze
    a = _i32(a - _i32(3 * (_i32(10923 * a) >> 15)))
    a = _i32(a - _i32(3 * (_i32(_i32(89478485 * a) + 134217728) >> 28)))
    return ((a + 128) & 0xFF) - 128


def _u(x: int) -> int:
    return x & 0xFFFFFFFF


def _go_rq_decode(c: bytes) -> list[int]:
    # rq/encoding.go Decode, line by line, every uint32 operation wrapped
    out: list[int] = []
    for j in range(0, 1216, 8):
        c0, c1, c2, c3, c4, c5, c6, c7 = c[j : j + 8]
        c6 = _u(c6 + (c7 << 8))
        f4 = _u(_u(103564 * c6) + _u(405 * (c5 + 1))) >> 19
        c5 = _u(c5 + _u(c6 << 8))
        c5 = _u(c5 - _u(_u(f4 * 81) << 4))
        c4 = _u(c4 + _u(c5 << 8))
        f3 = _u(9709 * _u(c4 + 2)) >> 19
        c4 = _u(c4 - _u(_u(f3 * 27) << 1))
        c3 = _u(c3 + _u(c4 << 8))
        f2 = _u(_u(233017 * c3) + _u(910 * (c2 + 2))) >> 19
        c2 = _u(c2 + _u(c3 << 8))
        c2 = _u(c2 - _u(_u(f2 * 9) << 6))
        c1 = _u(c1 + _u(c2 << 8))
        f1 = _u(_u(21845 * _u(c1 + 2)) + 85 * c0) >> 19
        c1 = _u(c1 - _u(_u(f1 * 3) << 3))
        c0 = _u(c0 + _u(c1 << 8))
        out += [_go_freeze_q(_i32(_u(d + 4591 - 2295))) for d in (c0, f1, f2, f3, f4)]
    out.append(_go_freeze_q(_i32(_u(c[1216] + (c[1217] << 8) + 4591 - 2295))))
    return out


def _go_rounded_pair(c0: int, c1: int, c2: int) -> tuple[int, int]:
    f1 = _u(_u(89478485 * c2) + _u(349525 * c1) + _u(1365 * (c0 + 1))) >> 21
    c1 = _u(c1 + _u(c2 << 8))
    c1 = _u(c1 - _u(_u(f1 * 3) << 1))
    return _u(c0 + _u(c1 << 8)), f1


def _go_rounded_decode(c: bytes) -> list[int]:
    # rq/encoding.go DecodeRounded, line by line
    digits: list[int] = []
    for j in range(0, 1012, 4):
        c0, c1, c2, c3 = c[j : j + 4]
        f2 = _u(_u(14913081 * c3) + _u(58254 * c2) + _u(228 * (c1 + 2))) >> 21
        c2 = _u(c2 + _u(c3 << 8))
        c2 = _u(c2 - _u(_u(f2 * 9) << 2))
        f0, f1 = _go_rounded_pair(c0, c1, c2)
        digits += [f0, f1, f2]
    digits += list(_go_rounded_pair(c[1012], c[1013], c[1014]))
    return [_go_freeze_q(_i32(_u(_u(d * 3) + 4591 - 2295))) for d in digits]


def test_freeze_is_the_centred_residue_wherever_products_reach() -> None:
    # Go's Mult freezes r + f[j]*g[i-j] with |r| <= 2295, f[j] any int16, g[i-j] in {-1, 0, 1, 2}.
    bound = 2295 + 2 * 32768
    a = np.arange(-bound - 1, bound + 2, dtype=np.int64)
    assert np.array_equal(kem._freeze_q_go(a), kem._cmod(a, kem.Q))
    sample = random.Random(1).sample(range(-bound, bound), 2000)
    assert [_go_freeze_q(x) for x in sample] == kem._cmod(np.array(sample, dtype=np.int64), kem.Q).tolist()
    # Go's R3 products (|a| <= 3) and the rounding of 3t (|a| <= 2295) stay where mod3.Freeze is exact.
    assert all(_go_freeze_3(x) == (x + 1) % 3 - 1 for x in range(-3 * 2295, 3 * 2295 + 1))


@settings(max_examples=8, deadline=None)
@given(data=st.binary(min_size=kem.PUBLIC_KEY_SIZE, max_size=kem.PUBLIC_KEY_SIZE))
def test_rq_decode_matches_go_on_any_bytes(data: bytes) -> None:
    assert kem._decode_rq(data).tolist() == _go_rq_decode(data)


@settings(max_examples=8, deadline=None)
@given(data=st.binary(min_size=1015, max_size=1015))
def test_rounded_decode_matches_go_on_any_bytes(data: bytes) -> None:
    assert kem._decode_rounded(data).tolist() == _go_rounded_decode(data)


def test_encodings_round_trip_on_their_ranges() -> None:
    rng = np.random.default_rng(4)
    for h in (rng.integers(-2295, 2296, 761), np.full(761, -2295), np.full(761, 2295)):
        h = h.astype(np.int64)
        assert np.array_equal(kem._decode_rq(kem._encode_rq(h)), h)
        c = kem._round3(h)
        assert set(np.unique(c % 3).tolist()) == {0}
        assert np.array_equal(kem._decode_rounded(kem._encode_rounded(c)), c)
    for s in (rng.integers(-1, 2, 761), np.full(761, -1), np.full(761, 1)):
        s = s.astype(np.int64)
        assert np.array_equal(kem._decode_small(kem._encode_small(s)), s)


def test_reciprocals_invert() -> None:
    rng = np.random.default_rng(5)
    one = np.zeros(761, dtype=np.int64)
    one[0] = 1
    for m in (3, kem.Q):
        s = rng.integers(-1, 2, 761).astype(np.int64)
        inv = kem._reciprocal(s, m)
        assert inv is not None
        assert np.array_equal(kem._mul(s, inv, m), one)
    assert kem._reciprocal(np.zeros(761, dtype=np.int64), 3) is None
