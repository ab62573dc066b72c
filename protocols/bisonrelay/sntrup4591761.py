"""Streamlined NTRU Prime 4591^761 (sntrup4591761), byte-compatible with companyzero/sntrup4591761.

BisonRelay's post-quantum KEM is the Go package github.com/companyzero/sntrup4591761, a port
of the 2017 NTRU Prime reference code (https://ntruprime.cr.yp.to/ntruprime-20170816.pdf).
These are the 2017 parameters p = 761, q = 4591, w = 286. They are *not* sntrup761 (the
2019+ NIST-round version), which has other encodings, hashes and sizes. This module is our own
implementation. Keys, ciphertexts and shared keys are byte for byte those of the Go code,
and a given random stream gives the keys that Go gives when built with a current toolchain
(Go 1.26 or later, see "Randomness" below).

Rings
-----
R = Z[x]/(x^761 - x - 1). Rq = R/q with q = 4591 is a field, because x^761 - x - 1 is
irreducible mod 4591. R3 = R/3 is not a field. An element is a vector of 761 coefficients.
An Rq coefficient is kept in its centred form [-2295, 2295], and an R3 coefficient in
{-1, 0, 1}. "Small" means every coefficient is in {-1, 0, 1}. "t-small" means small with
exactly w = 286 nonzero coefficients.

A product is a plain integer convolution (numpy, int64, no overflow because the coefficients
are at most 2^15 by 2), then a fold of x^k for k >= 761 into x^(k-761) + x^(k-760), then the
centred residue. The Go code freezes after each multiply-add. That gives the same result
because its `Freeze` returns the exact centred residue on every value a product can produce
(|a| <= 2295 + 2 * 32768). The tests check this over that range.

Reciprocals (1/(3f) in Rq, 1/g in R3) use the extended Euclidean algorithm on numpy
vectors: about 1500 vector updates of at most 762 coefficients each. An inverse is unique, so
any correct algorithm gives what the Go code's constant-time divstep loop gives. The only
thing that matters is *whether* g is invertible in R3, because that decides whether key
generation draws another g. Euclid answers that exactly (the gcd is a constant).

Key generation:  g small and invertible in R3, f t-small, h = g / (3f) in Rq.
    public key  = Encode_q(h)                                  1218 bytes
    private key = Encode_3(f) || Encode_3(1/g in R3) || public key    191 + 191 + 1218 = 1600
Encapsulation:  r t-small, c = Round3(h r), where Round3 rounds each coefficient to a multiple of 3.
    s = SHA-512(Encode_3(r))                                    (the 191-byte encoding of r)
    ciphertext = s[0:32] || Encode_rounded(c)                  32 + 1015 = 1047 bytes
    shared key = s[32:64]                                       32 bytes
Decapsulation:  t = c f in Rq, e = 3t mod q (centred) mod 3, r' = e * (1/g) in R3 (3cf = gr + 3ef
    with small terms, so mod 3 it leaves g r). Then r' is checked three ways: weight(r') = 286,
    Round3(h r') = c, and SHA-512(Encode_3(r'))[0:32] = the ciphertext's first 32 bytes (the
    confirmation). The key SHA-512(Encode_3(r'))[32:64] is returned whatever the checks say.

Rejection: what the Go code does on a bad ciphertext
-----------------------------------------------------
`Decapsulate(c, sk) (*SharedKey, int)` always returns SHA-512(Encode_3(r'))[32:] for the r' it
recovered, with ok = 1 only when all three checks pass. It does not mix a secret into the
key the way the later sntrup761 implicit rejection does. So a ciphertext whose confirmation bytes
were altered, or whose rounded part moved by a small amount (NTRU decryption absorbs it),
decapsulates to the *same* key with ok = 0. A ciphertext altered a lot gives an unrelated
key, also with ok = 0. BisonRelay checks `ok != 1` at every call site and rejects. `decapsulate`
returns exactly the Go key bytes. `decapsulate_checked` also returns the flag, and that is
what a caller mirroring BisonRelay must use.

Encodings (little-endian, as the Go code lays them out)
-------------------------------------------------------
* Encode_3 (191 bytes): coefficient 4i+j is stored as (c + 1) in bits 2j..2j+1 of byte i.
  Byte 190 holds coefficient 760. Decoding reads each 2-bit field as (field - 1) and ignores
  the top 6 bits of byte 190. A field of 3 decodes to 2, as in Go. The value is not rejected.
* Encode_q (1218 bytes): with x = c + 2295 in [0, 4590], each group of five coefficients is the
  8-byte number x0 + 6144 x1 + 6144^2 x2 + 6144^3 x3 + 6144^4 x4 (6144 = 3 * 2^11). That is the
  value Go's shift-and-add sequence builds. Coefficient 760 takes the last 2 bytes.
* Encode_rounded (1015 bytes): with y = (c + 2295) / 3 in [0, 1530], each group of three is the
  4-byte number y0 + 1536 y1 + 1536^2 y2, and coefficients 759 and 760 take 3 bytes as y0 + 1536 y1.
* Decoding does not validate, exactly as in Go: any bytes of the right length decode. For a
  malformed encoding (a digit out of range), the result is whatever Go's fixed-point
  arithmetic gives: uint32 wrap-around, then `modq.Freeze` on the int32 value with int32
  wrap-around, then truncation to int16. This module emulates that arithmetic bit for bit, so
  even malformed public keys and ciphertexts give Go's outputs. The only extra validation here
  is on length (Go's fixed-size array types make a wrong length impossible there): a wrong
  length raises ValueError naming the input and its expected size.

Randomness: how `random(n)` is read
-----------------------------------
The Go code reads its io.Reader only through `random32` (zx/random.go). That is one
`io.ReadFull` of 4 bytes, taken as a little-endian 32-bit word. So every call here is
`random(4)`, and it must return exactly 4 bytes. Anything else raises ValueError, where Go
returns the reader's error.

* generate_key: 761 words make g (`RandomSmall`). If g is not invertible in R3, 761 more
  words are read for a new g, and again until one is invertible. Then 761 words make f
  (`RandomTSmall`). On the usual first-try success that is 1522 calls of random(4), g before f.
* encapsulate: 761 words make r (`RandomTSmall`), so 761 calls of random(4).

Small (g): coefficient i = ((word_i & (2^30 - 1)) * 3 >> 30) - 1. No rejection sampling.
t-small (f, r): clear bit 0 of words 0..285, clear bit 1 and set bit 0 of words 286..760, sort
the words, take coefficient i = (sorted_i & 3) - 1. The sort is Go's sorting network of
`minmax` swaps. `minmax` compares the words as uint32 values through
`subtle.ConstantTimeLessOrEq`. In Go 1.26 and later that function is a compiler intrinsic for
`x <= y` on the full int, so the network sorts correctly and this module uses an ordinary sort
of the uint32 words. Before Go 1.26, `ConstantTimeLessOrEq` computed the sign of the int32
`x - y - 1`. That is wrong whenever two words are 2^31 or more apart, so older Go builds put
f's and r's nonzero coefficients elsewhere for the same stream. Such keys still interoperate,
because any t-small f or r is valid. `_t_small_from_words(..., go_before_1_26=True)`
reproduces the old behaviour with the same network.

This code is not constant-time (Euclid branches on the data, numpy's sort is not
oblivious). It is meant for simulation, tests and interoperability work, not for keys that an
attacker can time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = [
    "CIPHERTEXT_SIZE",
    "PRIVATE_KEY_SIZE",
    "PUBLIC_KEY_SIZE",
    "SHARED_KEY_SIZE",
    "decapsulate",
    "decapsulate_checked",
    "encapsulate",
    "generate_key",
]

PUBLIC_KEY_SIZE = 1218
PRIVATE_KEY_SIZE = 1600
CIPHERTEXT_SIZE = 1047
SHARED_KEY_SIZE = 32

P = 761  # degree of x^p - x - 1
Q = 4591  # the modulus of Rq
W = 286  # nonzero coefficients of a t-small element (2t, t = 143)
_Q_HALF = (Q - 1) // 2  # 2295: centred Rq coefficients lie in [-_Q_HALF, _Q_HALF]

_SMALL_BYTES = 191  # Encode_3: 4 coefficients a byte, 761 = 4 * 190 + 1
_RQ_BYTES = 1218  # Encode_q: 152 groups of 5 in 8 bytes, plus 2 bytes
_ROUNDED_BYTES = 1015  # Encode_rounded: 253 groups of 3 in 4 bytes, plus 3 bytes
_CONFIRM_BYTES = 32  # first half of SHA-512(Encode_3(r)), in front of the ciphertext

Poly = npt.NDArray[np.int64]
Random = Callable[[int], bytes]

_U32 = 0xFFFFFFFF


# --- fixed-width integer emulation (Go's uint32/int32/int16 wrap-around) ------------------------


def _u32(x: Poly) -> Poly:
    """Reduce to Go's uint32: done before every right shift, the one place wrap-around shows."""
    return x & _U32


def _s32(x: Poly) -> Poly:
    """Reinterpret as Go's int32 (two's complement)."""
    return ((x + 2**31) & _U32) - 2**31


def _s16(x: Poly) -> Poly:
    """Go's int16(...) conversion: keep the low 16 bits, signed."""
    return ((x + 2**15) & 0xFFFF) - 2**15


def _freeze_q_go(a: Poly) -> Poly:
    """Go's `modq.Freeze` on int32 values, bit for bit, including its int16 result.

    For |a| up to about 2^17 this is the centred residue mod q. The decoders are the only place
    it can see other values (from malformed bytes), and there we need Go's exact answer.
    """
    a = _s32(a - Q * (_s32(228 * a) >> 20))
    a = _s32(a - Q * (_s32(58470 * a + 134217728) >> 28))
    return _s16(a)


def _cmod(a: Poly, m: int) -> Poly:
    """Centred residue: [-(m-1)/2, (m-1)/2] for odd m."""
    half = (m - 1) // 2
    return (a + half) % m - half


# --- randomness ------------------------------------------------------------------------------------


def _read_words(random: Random, count: int) -> Poly:
    """`count` calls of random(4), each a little-endian uint32 (Go's `random32`)."""
    chunks: list[bytes] = []
    for _ in range(count):
        chunk = bytes(random(4))
        if len(chunk) != 4:
            raise ValueError(f"random(4) returned {len(chunk)} bytes; it must return exactly 4")
        chunks.append(chunk)
    return np.frombuffer(b"".join(chunks), dtype="<u4").astype(np.int64)


def _small_from_words(words: Poly) -> Poly:
    """Go's `RandomSmall`: the top two of the low 30 bits scaled to {0, 1, 2}, minus 1."""
    return (((words & 0x3FFFFFFF) * 3) >> 30) - 1


@functools.cache
def _sorting_network(n: int) -> tuple[tuple[Poly, Poly], ...]:
    """The compare-exchange stages of Go's `sort` (zx/random.go), as index vectors.

    Within one stage no index appears twice: the first stage pairs i with i + p (bit p of i
    clear), and the later ones pair i + p (bit p set) with i + q (bit p clear). So a whole
    stage can run as one vector operation.
    """
    stages: list[tuple[Poly, Poly]] = []
    top = 1
    while top < n - top:
        top += top
    p = top
    while p > 0:
        i = np.arange(n - p, dtype=np.int64)
        i = i[(i & p) == 0]
        stages.append((i, i + p))
        q = top
        while q > p:
            i = np.arange(n - q, dtype=np.int64)
            i = i[(i & p) == 0]
            stages.append((i + p, i + q))
            q >>= 1
        p >>= 1
    return tuple(stages)


def _network_sort(words: Poly, *, go_before_1_26: bool) -> Poly:
    """Run Go's sorting network on uint32 words with the comparator Go's `minmax` gets.

    `minmax(x, y)` swaps when ConstantTimeLessOrEq(y, x) = 1. Go 1.26+ computes y <= x. Older Go
    computed ((int32(y) - int32(x) - 1) >> 31) & 1, which is y <= x only while |y - x| < 2^31.
    """
    x = words.copy()
    for lo, hi in _sorting_network(len(x)):
        a = x[lo]
        b = x[hi]
        swap = _s32(b - a - 1) < 0 if go_before_1_26 else b <= a
        x[lo] = np.where(swap, b, a)
        x[hi] = np.where(swap, a, b)
    return x


def _t_small_from_words(words: Poly, *, go_before_1_26: bool = False) -> Poly:
    """Go's `RandomTSmall`: 286 words marked to become +-1 and 475 to become 0, shuffled by sorting."""
    w = words.copy()
    w[:W] &= ~1  # low bits 0b?0: (w & 3) - 1 is -1 or +1
    w[W:] = (w[W:] & ~2) | 1  # low bits 0b01: (w & 3) - 1 is 0
    # With a correct comparator the network sorts, and any correct sort gives the same sequence.
    w = _network_sort(w, go_before_1_26=True) if go_before_1_26 else np.sort(w)
    return (w & 3) - 1


# --- encodings ---------------------------------------------------------------------------------------


def _encode_small(f: Poly) -> bytes:
    """Encode_3: (c + 1) in two bits, four coefficients a byte, low bits first; last byte alone."""
    v = f + 1
    packed = (v[0:760:4] + (v[1:760:4] << 2) + (v[2:760:4] << 4) + (v[3:760:4] << 6)) & 0xFF
    body: bytes = packed.astype(np.uint8).tobytes()
    return body + bytes([int(v[760]) & 0xFF])


def _decode_small(data: bytes) -> Poly:
    """Inverse of Encode_3, as Go reads it: each 2-bit field minus 1, so {-1, 0, 1, 2}."""
    b = np.frombuffer(data, dtype=np.uint8, count=_SMALL_BYTES).astype(np.int64)
    f = np.empty(P, dtype=np.int64)
    for j in range(4):
        f[j:760:4] = ((b[:190] >> (2 * j)) & 3) - 1
    f[760] = (b[190] & 3) - 1
    return f


def _encode_rq(h: Poly) -> bytes:
    """Encode_q: five coefficients (offset to [0, 4590]) as one base-6144 number in 8 bytes."""
    x = h + _Q_HALF
    g = x[:760].reshape(152, 5)
    value = g[:, 0] + 6144 * (g[:, 1] + 6144 * (g[:, 2] + 6144 * (g[:, 3] + 6144 * g[:, 4])))
    body: bytes = value.astype("<u8").tobytes()
    return body + int(x[760]).to_bytes(2, "little")


def _decode_rq(data: bytes) -> Poly:
    """Go's `rq.Decode`, bit for bit.

    For valid bytes this undoes Encode_q. Go extracts each digit with fixed-point reciprocals in
    uint32 arithmetic and never rejects, so malformed bytes give wrapped values that we must match.
    """
    c = np.frombuffer(data, dtype=np.uint8, count=_RQ_BYTES).astype(np.int64)
    c0, c1, c2, c3, c4, c5, c6, c7 = (c[k:1216:8] for k in range(8))
    c6 = c6 + (c7 << 8)
    f4 = _u32(103564 * c6 + 405 * (c5 + 1)) >> 19
    c5 = _u32(c5 + (c6 << 8) - ((f4 * 81) << 4))
    c4 = _u32(c4 + (c5 << 8))
    f3 = _u32(9709 * (c4 + 2)) >> 19
    c4 = _u32(c4 - ((f3 * 27) << 1))
    c3 = _u32(c3 + (c4 << 8))
    f2 = _u32(233017 * c3 + 910 * (c2 + 2)) >> 19
    c2 = _u32(c2 + (c3 << 8) - ((f2 * 9) << 6))
    c1 = _u32(c1 + (c2 << 8))
    f1 = _u32(21845 * (c1 + 2) + 85 * c0) >> 19
    c1 = _u32(c1 - ((f1 * 3) << 3))
    f0 = _u32(c0 + (c1 << 8))
    digits = np.empty(P, dtype=np.int64)
    for j, fj in enumerate((f0, f1, f2, f3, f4)):
        digits[j:760:5] = fj
    digits[760] = c[1216] + (c[1217] << 8)
    # int32(digit + q - qshift), then Freeze (which also truncates to int16, as Go stores it).
    return _freeze_q_go(_s32(digits + Q - _Q_HALF))


def _round3(h: Poly) -> Poly:
    """Go's `rq.Round3`: each centred coefficient to a nearby multiple of 3 (21846/2^16 ~ 1/3)."""
    return ((21846 * (h + _Q_HALF) + 32768) >> 16) * 3 - _Q_HALF


def _encode_rounded(c: Poly) -> bytes:
    """Encode_rounded: (c + 2295) / 3 in [0, 1530], three a 4-byte base-1536 number, last two in 3 bytes."""
    y = (21846 * (c + _Q_HALF)) >> 16  # exact division by 3 on Round3's outputs, as Go does it
    g = y[:759].reshape(253, 3)
    value = g[:, 0] + 1536 * (g[:, 1] + 1536 * g[:, 2])
    tail = int(y[759]) + 1536 * int(y[760])
    body: bytes = value.astype("<u4").tobytes()
    return body + tail.to_bytes(3, "little")


def _decode_rounded(data: bytes) -> Poly:
    """Go's `rq.DecodeRounded`, bit for bit (uint32 fixed-point digit extraction, no rejection)."""
    b = np.frombuffer(data, dtype=np.uint8, count=_ROUNDED_BYTES).astype(np.int64)

    def two_digits(c0: Poly, c1: Poly, c2: Poly) -> tuple[Poly, Poly]:
        # The low two base-1536 digits of c0 + 2^8 c1 + 2^16 c2 (c2 already carries higher bytes).
        f1 = _u32(89478485 * c2 + 349525 * c1 + 1365 * (c0 + 1)) >> 21
        c1 = _u32(c1 + (c2 << 8) - ((f1 * 3) << 1))
        return _u32(c0 + (c1 << 8)), f1

    c0, c1, c2, c3 = (b[k:1012:4] for k in range(4))
    f2 = _u32(14913081 * c3 + 58254 * c2 + 228 * (c1 + 2)) >> 21
    c2 = _u32(c2 + (c3 << 8) - ((f2 * 9) << 2))
    f0, f1 = two_digits(c0, c1, c2)
    t0, t1 = two_digits(b[1012:1013], b[1013:1014], b[1014:1015])
    digits = np.empty(P, dtype=np.int64)
    digits[0:759:3] = f0
    digits[1:759:3] = f1
    digits[2:759:3] = f2
    digits[759] = t0[0]
    digits[760] = t1[0]
    return _freeze_q_go(_s32(digits * 3 + Q - _Q_HALF))


# --- ring arithmetic ---------------------------------------------------------------------------------


def _mul(a: Poly, b: Poly, m: int) -> Poly:
    """a * b in Z_m[x]/(x^761 - x - 1), centred. The inputs are any int16-sized integers."""
    full = np.convolve(a, b)  # exact: at most 761 * 2^15 * 2 in magnitude
    out = full[:P].copy()
    # x^k = x^(k-761) (x + 1) for k = 761..1520, and k - 760 <= 760, so one fold suffices.
    out[: P - 1] += full[P:]
    out[1:] += full[P:]
    return _cmod(out, m)


def _degree(a: Poly, start: int) -> int:
    """Index of the highest nonzero coefficient at or below `start` (-1 for zero)."""
    d = start
    while d >= 0 and a[d] == 0:
        d -= 1
    return d


def _reciprocal(s: Poly, m: int) -> Poly | None:
    """1/s in Z_m[x]/(x^761 - x - 1) (m prime), as residues in [0, m), or None if s is not invertible.

    This is the extended Euclidean algorithm. It keeps ta*s = a and tb*s = b modulo
    x^761 - x - 1 and cancels the leading term of the higher-degree remainder with a shifted
    copy of the other. The cofactors never exceed degree 761, so the vectors hold them.
    """
    n = P
    a = np.zeros(n + 1, dtype=np.int64)
    a[0] = a[1] = m - 1  # x^761 - x - 1
    a[n] = 1
    b = np.zeros(n + 1, dtype=np.int64)
    b[:n] = s % m
    ta = np.zeros(n + 1, dtype=np.int64)
    tb = np.zeros(n + 1, dtype=np.int64)
    tb[0] = 1
    da, db = n, _degree(b, n - 1)
    while db > 0:
        lead_inv = pow(int(b[db]), -1, m)
        while da >= db:
            c = int(a[da]) * lead_inv % m
            k = da - db
            a[k : da + 1] = (a[k : da + 1] - c * b[: db + 1]) % m
            ta[k:] = (ta[k:] - c * tb[: n + 1 - k]) % m
            da = _degree(a, da - 1)
        a, b, ta, tb, da, db = b, a, tb, ta, db, da
    if db < 0:  # the remainders reached 0 before a constant: gcd(s, x^761 - x - 1) is not 1
        return None
    result: Poly = tb[:n] * pow(int(b[0]), -1, m) % m
    return result


# --- the KEM -----------------------------------------------------------------------------------------


def _check_length(name: str, value: bytes, size: int) -> bytes:
    data = bytes(value)
    if len(data) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(data)}")
    return data


def _check_poly(name: str, poly: Poly) -> Poly:
    arr = np.asarray(poly, dtype=np.int64)
    if arr.shape != (P,):
        raise ValueError(f"{name} must have {P} coefficients, got shape {arr.shape}")
    return arr


def _derive_keys(f: Poly, g: Poly, g_inv: Poly) -> tuple[bytes, bytes]:
    """The deterministic half of key generation (Go's `deriveKey`)."""
    f3_inv = _reciprocal(3 * f, Q)
    if f3_inv is None:  # Rq is a field: only f = 0 mod q lands here
        raise ValueError("f is zero in Rq, so 3f has no reciprocal")
    h = _mul(f3_inv, g, Q)
    public_key = _encode_rq(h)
    private_key = _encode_small(f) + _encode_small(_cmod(g_inv, 3)) + public_key
    return public_key, private_key


def _keys_from(f: Poly, g: Poly) -> tuple[bytes, bytes]:
    """(public key, private key) for the given f and g, like Go's test around `deriveKey`.

    The KAT lines give f and g instead of a random stream. g must be invertible in R3.
    """
    f = _check_poly("f", f)
    g = _check_poly("g", g)
    g_inv = _reciprocal(g, 3)
    if g_inv is None:
        raise ValueError("g is not invertible in R3")
    return _derive_keys(f, g, g_inv)


def _encapsulate_with(public_key: bytes, r: Poly) -> tuple[bytes, bytes]:
    """(ciphertext, shared key) for a given t-small r (Go's `createCipher`)."""
    pk = _check_length("public key", public_key, PUBLIC_KEY_SIZE)
    r = _check_poly("r", r)
    c = _round3(_mul(_decode_rq(pk), r, Q))
    digest = hashlib.sha512(_encode_small(r)).digest()
    return digest[:_CONFIRM_BYTES] + _encode_rounded(c), digest[_CONFIRM_BYTES:]


def decapsulate_checked(ciphertext: bytes, private_key: bytes) -> tuple[bytes, bool]:
    """(shared key, ok): Go's `Decapsulate`, whose int result is ok (1) or not (0).

    The key is returned whether or not the checks pass, exactly as Go returns it.
    """
    ct = _check_length("ciphertext", ciphertext, CIPHERTEXT_SIZE)
    sk = _check_length("private key", private_key, PRIVATE_KEY_SIZE)
    f = _decode_small(sk[:_SMALL_BYTES])
    g_inv = _decode_small(sk[_SMALL_BYTES : 2 * _SMALL_BYTES])
    h = _decode_rq(sk[2 * _SMALL_BYTES :])
    c = _decode_rounded(ct[_CONFIRM_BYTES:])
    # 3 c f = g r + 3 e f in Rq with every coefficient small, so mod 3 it is g r.
    t = _mul(c, f, Q)
    r = _mul(_cmod(_cmod(3 * t, Q), 3), g_inv, 3)
    weight_ok = int(np.count_nonzero(r)) == W
    reencrypts = bool(np.array_equal(_round3(_mul(h, r, Q)), c))
    digest = hashlib.sha512(_encode_small(r)).digest()
    confirms = hmac.compare_digest(digest[:_CONFIRM_BYTES], ct[:_CONFIRM_BYTES])
    return digest[_CONFIRM_BYTES:], weight_ok and reencrypts and confirms


def generate_key(random: Random) -> tuple[bytes, bytes]:
    """A new (public key, private key). It reads random(4) 761 times per g tried, then 761 times for f."""
    while True:
        g = _small_from_words(_read_words(random, P))
        g_inv = _reciprocal(g, 3)
        if g_inv is not None:
            break
    f = _t_small_from_words(_read_words(random, P))
    return _derive_keys(f, g, g_inv)


def encapsulate(public_key: bytes, random: Random) -> tuple[bytes, bytes]:
    """(ciphertext, shared key) for `public_key`. It reads random(4) 761 times for r."""
    pk = _check_length("public key", public_key, PUBLIC_KEY_SIZE)
    r = _t_small_from_words(_read_words(random, P))
    return _encapsulate_with(pk, r)


def decapsulate(ciphertext: bytes, private_key: bytes) -> bytes:
    """The shared key Go's `Decapsulate` returns, whether or not its checks pass.

    Go also returns ok (0 on a ciphertext that fails its checks) and BisonRelay rejects on
    ok != 1. Use `decapsulate_checked` to get that flag.
    """
    return decapsulate_checked(ciphertext, private_key)[0]
