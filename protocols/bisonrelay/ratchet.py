"""BisonRelay's Double Ratchet with header encryption, as companyzero/bisonrelay's ratchet package runs it.

Read at commit 8b1a3b4b (December 2025) of companyzero/bisonrelay; file names below are in that
repository. The code is ratchet/ratchet.go (``Ratchet``, ``Encrypt``, ``Decrypt``, ``DiskState``,
``Unmarshal``), its JSON record ratchet/disk/disk.go (``RatchetState``) and what the client does
around it: client/clientdb/fscdb.go (``UpdateRatchet``: saved keys older than 31 days are left out
when the state is written), client/remoteuser.go (``encryptRM``, ``handleReceivedEncrypted``: which
RV a message goes to, what a failure means) and client/client_kx.go (the idle and old-ratchet
resets). The package is a fork of agl's pond ratchet (Axolotl with header keys); the seed
(doc/p2p_kx.md) only says that the KX "establishes a double ratchet", so everything here follows
the code. No Go toolchain that can build BR (it needs Go >= 1.23; 1.19 is all there is here) was
available, so this was not run against the Go code: it is checked against the Go source by reading,
by BR's own test scripts (tests/vectors/bisonrelay-ratchet.json) and by properties.

The start (the seam from the KX): ``kx.complete_key_exchange`` gives a ``kx.RatchetSeed``, the
fields of ``ratchet.Ratchet`` right after ``CompleteKeyExchange``; ``Ratchet.from_seed`` adds what
starts empty (counts 0, no saved keys, ``prevRecvHeaderKey`` zero, ``kxPrivate`` nil, Go's zero
times). The acceptor (``alice``) has a receive chain and ``ratchet=True``; the inviter has a send
chain whose X25519 key is the one alice received in the KX.

Keys. Every derivation is ``deriveKey``: ``HMAC-SHA256(key, label)`` with the labels below.

* Chain step (``Encrypt``, ``saveKeys``): ``message key = H(chain, "message key")``, then
  ``chain = H(chain, "chain key step")``.
* DH ratchet step, sender (``Encrypt`` while ``ratchet`` is set): a fresh X25519 private key
  ``random(32)``; ``shared = X25519(private, recvRatchetPublic)``; ``sendHeaderKey =
  nextSendHeaderKey``; ``km = SHA-256("root key update" || rootKey || shared)``; ``rootKey =
  H(km, "root key")``, ``nextSendHeaderKey = H(km, "next send header key")``, ``sendChainKey =
  H(km, "chain key")``; ``prevSendCount = sendCount``, ``sendCount = 0``, ``ratchet = False``.
* DH ratchet step, receiver (``Decrypt``, a header that opens with ``nextRecvHeaderKey``): the keys
  left on the old chain up to the header's previous count are saved, then ``shared =
  X25519(sendRatchetPrivate, header's public)``, the same ``km``, ``rootKey = H(km, "root key")``,
  the chain ``H(km, "chain key")``, ``prevRecvHeaderKey = recvHeaderKey``, ``recvHeaderKey =
  nextRecvHeaderKey``, ``nextRecvHeaderKey = H(km, "next send header key")``; the private key is
  zeroed and ``ratchet = True`` (our next message starts a step).

Message (``Encrypt``; ``EncryptedSize``): ``header nonce (24) || secretbox(header, header nonce,
sendHeaderKey) (64 + 16) || secretbox(plaintext, message nonce, message key) (len + 16)``, where
secretbox is NaCl's XSalsa20-Poly1305 (tag first) and the 64-byte header is ``LE32(sendCount) ||
LE32(prevSendCount) || X25519 public of sendRatchetPrivate (32) || message nonce (24)``. Both nonces
are random; nothing is authenticated beyond the two boxes (the header box is not bound to the body).

Receiving (``Decrypt``): (1) the saved keys: the first saved header key that opens the header
decides; its key for that count opens the body, or the body is "corrupt"; no key for that count
goes on to (2); (2) ``recvHeaderKey`` (if not zero): the count must not be below ``recvCount``
("duplicate") and at most ``MAX_MISSING_MESSAGES`` ahead ("reordering limit"); skipped message
keys are saved; (3) ``nextRecvHeaderKey``: refused while ``ratchet`` is set, else the DH step
above, with the same limits on the old chain and on the new one from 0. A failure changes nothing
(BR relies on it: remoteuser.go, "we're assuming that if Decrypt() errors, the internal ratchet
state was _not_ updated"); here each call works on values and commits only on success.

Saved keys never expire in memory. ``to_go_state`` (``DiskState(lifetime)``) leaves out those older
than the lifetime, 31 days in every BR call (fscdb.go ``UpdateRatchet``, ``StoreTransResetHalfKX``,
client/kx.go), so they are gone after the next load; there is no limit on how many are kept.

RVs (client/remoteuser.go ``encryptRM``): a message is posted at ``send_rendezvous()`` computed
*before* its ``encrypt``, ``BLAKE-256(header key || LE32(sendCount))`` (``kx.ratchet_rendezvous``)
with the send header key (the next one while it is still zero, right after the KX); the receiver
listens at ``recv_rendezvous()``: the receive header key (the next one while zero) at ``recvCount``,
and a "drain" RV, the previous receive header key at ``prevRecvCount``, once there is one. So the
message that starts a DH step goes to the RV of the *old* send header key: the receiver, which has
not stepped yet, listens there.

The busted ratchet. The ratchet package has no such state; BR's client has: when ``Encrypt`` fails
(only an X25519 with a low-order peer key can fail) ``encryptRM`` stores the error in
``RemoteUser.rError`` and never uses the ratchet to send again ("This means ratchet is busted"); the
user resets it (the reset KX through the reset RV, kx.py / device.py). Here that is ``busted`` in
the state and ``RatchetBusted`` from every later ``encrypt``. A failed ``Decrypt`` does *not* bust
the ratchet in BR (the message is dropped, the error logged, the ratchet kept); a ratchet that lost
step is found by time instead: no message received for a while (``idle``; client_kx.go
``handshakeIdleUsers``, ``ResetAllOldRatchets`` with 30 days by default) and then reset.

Where this differs from the Go code, on purpose: (1) an empty plaintext reached through a saved key
fails in both, but Go has deleted that key by then (``secretbox.Open`` returns nil, read as "no
key"); here nothing changes. (2) Go walks its saved-key map in random order; here the order is
canonical (no header opens under two keys, so results are the same). (3) ``recv_rendezvous`` gives
None where Go gives the zero RV. (4) Times are kept in milliseconds, not nanoseconds (Go's JSON
has milliseconds, and seconds for saved keys). (5) Go's JSON decoder folds case with Unicode
rules; here ``str.lower``.

The state as a value: ``snapshot()`` is a frozen ``RatchetState`` (the fields of Go's ``Ratchet``,
saved keys in a canonical order, times in Unix milliseconds with Go's zero time for "never", plus
our ``busted``), and ``Ratchet.restore`` makes a ratchet from one. Randomness is a ``random(n)``
parameter and time a ``clock()`` in seconds (the runtime's device clock), so runs are reproducible.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from nacl.bindings import (
    crypto_scalarmult,
    crypto_scalarmult_base,
    crypto_secretbox_easy,
    crypto_secretbox_open_easy,
)
from nacl.exceptions import CryptoError

from protocols.bisonrelay import kx
from runtime.errors import UsageError, VerificationError

__all__ = [
    "CHAIN_KEY_LABEL",
    "CHAIN_KEY_STEP_LABEL",
    "GO_STATE_FIELDS",
    "GO_ZERO_TIME_MS",
    "HEADER_KEY_LABEL",
    "HEADER_SIZE",
    "MAX_MISSING_MESSAGES",
    "MESSAGE_KEY_LABEL",
    "NEXT_RECV_HEADER_KEY_LABEL",
    "NONCE_IN_HEADER_OFFSET",
    "RESET_OLD_RATCHETS_INTERVAL",
    "ROOT_KEY_LABEL",
    "ROOT_KEY_UPDATE_LABEL",
    "SAVED_KEY_LIFETIME",
    "SEALED_HEADER_SIZE",
    "SEND_HEADER_KEY_LABEL",
    "Clock",
    "GoStateError",
    "Ratchet",
    "RatchetBusted",
    "RatchetError",
    "RatchetState",
    "SavedChain",
    "SavedKey",
    "encrypted_size",
]

Clock = Callable[[], float]
"""A clock: ``clock()`` returns the time in seconds since the Unix epoch (``time.time``)."""

KEY_SIZE = kx.KEY_SIZE
NONCE_SIZE = kx.NONCE_SIZE
BOX_OVERHEAD = kx.BOX_OVERHEAD

# ratchet/ratchet.go, the const block.
HEADER_SIZE = 4 + 4 + 32 + 24  # headerSize: count, previous count, X25519 public, message nonce
SEALED_HEADER_SIZE = NONCE_SIZE + HEADER_SIZE + BOX_OVERHEAD  # sealedHeaderSize: 104
NONCE_IN_HEADER_OFFSET = 4 + 4 + 32  # nonceInHeaderOffset
MAX_MISSING_MESSAGES = 80  # maxMissingMessages: skipped keys one message may make us derive

# ratchet/ratchet.go, the labels of deriveKey. The first four (with "next send header key") are
# also the KX's (kx.complete_key_exchange); the ratchet steps use the others.
CHAIN_KEY_LABEL = b"chain key"  # chainKeyLabel
HEADER_KEY_LABEL = b"header key"  # headerKeyLabel
NEXT_RECV_HEADER_KEY_LABEL = b"next receive header key"  # nextRecvHeaderKeyLabel
ROOT_KEY_LABEL = b"root key"  # rootKeyLabel
ROOT_KEY_UPDATE_LABEL = b"root key update"  # rootKeyUpdateLabel: prefix of SHA-256, not an HMAC label
SEND_HEADER_KEY_LABEL = b"next send header key"  # sendHeaderKeyLabel
MESSAGE_KEY_LABEL = b"message key"  # messageKeyLabel
CHAIN_KEY_STEP_LABEL = b"chain key step"  # chainKeyStepLabel

# client/clientdb/fscdb.go UpdateRatchet: r.DiskState(31 * 24 * time.Hour).
SAVED_KEY_LIFETIME = 31 * 24 * 3600.0
# client/client_kx.go ResetAllOldRatchets: "if limitInterval == 0 { limitInterval = time.Hour * 24 * 30 }".
RESET_OLD_RATCHETS_INTERVAL = 30 * 24 * 3600.0
# Go's zero time.Time (January 1, year 1, UTC) as UnixMilli: what DiskState writes for a ratchet
# that never encrypted (or decrypted).
GO_ZERO_TIME_MS = -62_135_596_800_000

# ratchet/disk/disk.go RatchetState: the JSON names, in the struct's order (encoding/json writes
# fields in that order). Every key is a []byte (base64, or null when nil), counts uint32, times int64.
GO_STATE_FIELDS = (
    "rootKey", "sendHeaderKey", "recvHeaderKey", "nextSendHeaderKey", "nextRecvHeaderKey",
    "prevRecvHeaderKey", "sendChainKey", "recvChainKey", "sendPrivate", "recvPublic", "sendCount",
    "recvCount", "prevSendCount", "prevRecvCount", "ratchet", "kxprivate", "myHalf", "theirHalf",
    "savedKeys", "lastEncryptTime", "lastDencryptTime",
)  # fmt: skip

_ZERO = bytes(KEY_SIZE)
_UINT32 = 0xFFFFFFFF
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_LE32X2 = struct.Struct("<II")


class RatchetError(VerificationError, ValueError):
    """A ratchet message that cannot be used; ``what`` names the check, the text BR's error.

    A remote fault (``runtime.errors.VerificationError``, code ``"ratchet"``): the driver drops the
    message and traces it; nothing changed. Also a ``ValueError``. ``what`` is one of ``"length"``
    (shorter than a sealed header), ``"header"`` (no header key opens the header), ``"duplicate"``
    (a count already used: a replay, or a key not kept), ``"reordering-limit"`` (more than
    ``MAX_MISSING_MESSAGES`` skipped), ``"corrupt"`` (the header opened, the body did not),
    ``"ratchet-flag"`` (a new chain from the peer before we answered its last one), ``"dh"`` (X25519
    with a low-order key), ``"randomness"`` (the random source gave the wrong length).
    """

    code: ClassVar[str] = "ratchet"

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what


class RatchetBusted(RatchetError):
    """The ratchet cannot send any more (BR: ``RemoteUser.rError``); the way out is a reset KX.

    Raised by the ``encrypt`` that fails (``what`` is ``"dh"``) and by every ``encrypt`` after it
    (``what`` is ``"busted"``).
    """

    code: ClassVar[str] = "ratchet-busted"


class GoStateError(UsageError, ValueError):
    """A Go state (``disk.RatchetState`` JSON) this ratchet cannot load (BR: ``ErrUnmarshal`` or
    the JSON decoder's type error). ``what`` names the field."""

    code: ClassVar[str] = "ratchet-state"

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedKey:
    """savedKey: the message key of a message not received yet, by its count."""

    num: int  # the message's count on its chain (uint32)
    key: bytes  # the message key (32)
    created: int  # when it was saved, Unix ms (Go keeps a time.Time; its JSON has seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedChain:
    """The saved message keys under one header key (Go: ``saved[headerKey]``), by count."""

    header_key: bytes
    keys: tuple[SavedKey, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RatchetState:
    """A ratchet's whole state as a value: Go's ``Ratchet`` fields (same names), and ``busted``.

    Keys not set yet are 32 zero bytes, as in Go (``isZeroKey``). ``saved`` is ordered by header key,
    then count (Go's map has no order; this one makes equal states equal records).
    """

    root_key: bytes  # rootKey
    send_header_key: bytes  # sendHeaderKey
    recv_header_key: bytes  # recvHeaderKey
    next_send_header_key: bytes  # nextSendHeaderKey
    next_recv_header_key: bytes  # nextRecvHeaderKey
    prev_recv_header_key: bytes  # prevRecvHeaderKey: the drain RV's key
    send_chain_key: bytes  # sendChainKey
    recv_chain_key: bytes  # recvChainKey
    send_ratchet_private: bytes  # sendRatchetPrivate (zeroed after a receiving DH step)
    recv_ratchet_public: bytes  # recvRatchetPublic
    send_count: int  # sendCount: count of our next message on the send chain
    recv_count: int  # recvCount: the next count expected on the receive chain
    prev_send_count: int  # prevSendCount: length of our previous send chain (in each header)
    prev_recv_count: int  # prevRecvCount: the drain RV's count
    ratchet: bool  # ratchet: our next encrypt starts a DH step
    kx_private: bytes | None = None  # kxPrivate: only in a half ratchet (nil after the KX)
    my_half: bytes | None = None  # myHalf: the sntrup key we encapsulated in the KX (kept by Go)
    their_half: bytes | None = None  # theirHalf
    saved: tuple[SavedChain, ...] = ()  # saved
    last_encrypt_time: int = GO_ZERO_TIME_MS  # lastEncryptTime, Unix ms
    last_decrypt_time: int = GO_ZERO_TIME_MS  # lastDecryptTime, Unix ms
    busted: str | None = None  # ours (BR's RemoteUser.rError): why encrypt failed, once it has

    def __post_init__(self) -> None:
        for name in _KEY_FIELDS:
            if len(getattr(self, name)) != KEY_SIZE:
                raise ValueError(f"{name} must be {KEY_SIZE} bytes")
        for name in ("kx_private", "my_half", "their_half"):
            value = getattr(self, name)
            if value is not None and len(value) != KEY_SIZE:
                raise ValueError(f"{name} must be {KEY_SIZE} bytes or None")
        for name in ("send_count", "recv_count", "prev_send_count", "prev_recv_count"):
            if not 0 <= getattr(self, name) <= _UINT32:
                raise ValueError(f"{name} must be a uint32")


_KEY_FIELDS = (
    "root_key", "send_header_key", "recv_header_key", "next_send_header_key", "next_recv_header_key",
    "prev_recv_header_key", "send_chain_key", "recv_chain_key", "send_ratchet_private",
    "recv_ratchet_public",
)  # fmt: skip

# (Go JSON name, our field) for the ten keys, in disk.go's order.
_GO_KEYS = tuple(zip(GO_STATE_FIELDS[:10], _KEY_FIELDS, strict=True))
_GO_COUNTS = (
    ("sendCount", "send_count"), ("recvCount", "recv_count"),
    ("prevSendCount", "prev_send_count"), ("prevRecvCount", "prev_recv_count"),
)  # fmt: skip
_GO_HALVES = (("kxprivate", "kx_private"), ("myHalf", "my_half"), ("theirHalf", "their_half"))

# A mutable view of the saved keys while one call computes: header key -> count -> key.
_Saved = dict[bytes, dict[int, SavedKey]]


def encrypted_size(message_size: int) -> int:
    """``EncryptedSize``: the length of ``encrypt``'s output for a plaintext of ``message_size``."""
    return NONCE_SIZE + HEADER_SIZE + BOX_OVERHEAD + message_size + BOX_OVERHEAD


def _derive(key: bytes, label: bytes) -> bytes:
    # deriveKey: HMAC-SHA256 keyed with the master key over the label.
    return hmac.digest(key, label, "sha256")


def _open(box: bytes, nonce: bytes, key: bytes) -> bytes | None:
    # secretbox.Open: None where Go returns ok=false (short input included).
    try:
        return bytes(crypto_secretbox_open_easy(box, nonce, key))
    except CryptoError:
        return None


def _x25519(private: bytes, public: bytes) -> bytes:
    # curve25519.X25519: Go fails only for an all-zero output (a low-order point); libsodium
    # refuses the same inputs (its list of low-order points, and an all-zero check).
    try:
        return bytes(crypto_scalarmult(private, public))
    except CryptoError:
        raise RatchetError("dh", "curve25519: bad input point: low order point") from None


def _root_step(root_key: bytes, shared: bytes) -> bytes:
    # The key of the step's HMACs: SHA-256("root key update" || rootKey || shared), not an HMAC.
    return hashlib.sha256(ROOT_KEY_UPDATE_LABEL + root_key + shared).digest()


def _draw(random: kx.Random, n: int) -> bytes:
    out = random(n)
    if len(out) != n:
        raise RatchetError("randomness", f"the random source gave {len(out)} bytes for {n}")
    return out


def _save_keys(
    header_key: bytes, chain_key: bytes, message_num: int, received_count: int, now_ms: int, saved: _Saved
) -> tuple[bytes, bytes]:
    """saveKeys: step ``chain_key`` from ``received_count`` to ``message_num``; return (the chain key
    after it, its message key), putting the skipped ones in ``saved`` (a scratch copy)."""
    if message_num < received_count:
        raise RatchetError("duplicate", "ratchet: duplicate message or message delayed longer than tolerance")
    if message_num - received_count > MAX_MISSING_MESSAGES:
        raise RatchetError("reordering-limit", "ratchet: message exceeds reordering limit")
    message_key = b""
    skipped: dict[int, SavedKey] = {}
    for n in range(received_count, message_num + 1):
        message_key = _derive(chain_key, MESSAGE_KEY_LABEL)
        chain_key = _derive(chain_key, CHAIN_KEY_STEP_LABEL)
        if n < message_num:
            skipped[n] = SavedKey(num=n, key=message_key, created=now_ms)
    if skipped:
        # mergeSavedKeys: into the entry of that header key, a new count replacing an old one.
        saved.setdefault(header_key, {}).update(skipped)
    return chain_key, message_key


def _saved_view(saved: tuple[SavedChain, ...]) -> _Saved:
    return {c.header_key: {k.num: k for k in c.keys} for c in saved}


def _saved_record(saved: _Saved) -> tuple[SavedChain, ...]:
    return tuple(
        SavedChain(header_key=hk, keys=tuple(keys[n] for n in sorted(keys))) for hk, keys in sorted(saved.items())
    )


def _ms(seconds: float) -> int:
    # time.Time.UnixMilli floors.
    return math.floor(seconds * 1000)


def _b64(value: bytes | None) -> str | None:
    # encoding/json: a []byte is standard base64 with padding, a nil one null.
    return None if value is None else base64.b64encode(value).decode("ascii")


def _rv_text(key: bytes, count: int) -> str:
    return f"{key.hex()}.{count:03d}"  # fmt.Sprintf("%x.%03d", key, count)


class Ratchet:
    """One side's ratchet with a peer: ``encrypt``, ``decrypt``, the RVs, the state (see the module).

    Make one with ``from_seed`` (after the KX), ``from_go_state`` (BR's saved JSON) or ``restore``
    (a ``snapshot``). Every operation that fails leaves the state as it was, except a failing
    ``encrypt``, which busts the ratchet as BR's client does.
    """

    __slots__ = ("_clock", "_random", "_state")

    def __init__(self, state: RatchetState, *, random: kx.Random = os.urandom, clock: Clock = time.time) -> None:
        self._state = state
        self._random = random
        self._clock = clock

    # --- making one -------------------------------------------------------------------------

    @classmethod
    def from_seed(cls, seed: kx.RatchetSeed, *, random: kx.Random = os.urandom, clock: Clock = time.time) -> Ratchet:
        """The ratchet ``CompleteKeyExchange`` leaves (``kx.complete_key_exchange``'s result).

        Go's ``Ratchet`` then has the seed's keys and flag, zero counts and ``prevRecvHeaderKey``,
        no saved keys, ``kxPrivate`` nil, and zero times (it never encrypted nor decrypted).
        """
        state = RatchetState(
            root_key=seed.root_key,
            send_header_key=seed.send_header_key,
            recv_header_key=seed.recv_header_key,
            next_send_header_key=seed.next_send_header_key,
            next_recv_header_key=seed.next_recv_header_key,
            prev_recv_header_key=_ZERO,
            send_chain_key=seed.send_chain_key,
            recv_chain_key=seed.recv_chain_key,
            send_ratchet_private=seed.send_ratchet_private,
            recv_ratchet_public=seed.recv_ratchet_public,
            send_count=0,
            recv_count=0,
            prev_send_count=0,
            prev_recv_count=0,
            ratchet=seed.ratchet,
            kx_private=None,
            my_half=seed.my_half,
            their_half=seed.their_half,
        )
        return cls(state, random=random, clock=clock)

    @classmethod
    def restore(cls, snapshot: RatchetState, *, random: kx.Random = os.urandom, clock: Clock = time.time) -> Ratchet:
        """A ratchet in the state ``snapshot`` (from ``snapshot()``)."""
        return cls(snapshot, random=random, clock=clock)

    def snapshot(self) -> RatchetState:
        """The state, as an immutable record (it is the state itself: nothing is copied)."""
        return self._state

    # --- Go's JSON state --------------------------------------------------------------------

    @classmethod
    def from_go_state(
        cls, state: Mapping[str, Any], *, random: kx.Random = os.urandom, clock: Clock = time.time
    ) -> Ratchet:
        """``Ratchet.Unmarshal`` of a decoded ``disk.RatchetState`` (the JSON object BR writes).

        As Go's encoding/json: keys are matched exactly or else ignoring case, unknown keys are
        ignored, the last of repeated keys wins, a missing or null field is its zero value; then
        as ``Unmarshal``: the ten keys must be 32 bytes, ``kxprivate``/``myHalf``/``theirHalf``
        32 bytes or empty (nil), saved entries 32-byte keys, creation times in seconds. Saved keys
        are not expired here (Go drops them when writing). A half ratchet's state (before the
        KX completes) loads too, as in Go. ``GoStateError`` otherwise.
        """
        if not isinstance(state, Mapping):
            raise GoStateError("state", "a RatchetState is a JSON object")
        f = _go_fields(state, GO_STATE_FIELDS)

        def key(go: str) -> bytes:
            return _go_key(go, f.get(go))

        def count(go: str) -> int:
            return _go_int(go, f.get(go), 0, _UINT32)

        def half(go: str) -> bytes | None:
            return _go_half(go, f.get(go))

        def when(go: str) -> int:
            return _go_int(go, f.get(go), _INT64_MIN, _INT64_MAX)

        flag = f.get("ratchet")
        if flag is not None and not isinstance(flag, bool):
            raise GoStateError("ratchet", "must be a JSON boolean")
        record = RatchetState(
            root_key=key("rootKey"),
            send_header_key=key("sendHeaderKey"),
            recv_header_key=key("recvHeaderKey"),
            next_send_header_key=key("nextSendHeaderKey"),
            next_recv_header_key=key("nextRecvHeaderKey"),
            prev_recv_header_key=key("prevRecvHeaderKey"),
            send_chain_key=key("sendChainKey"),
            recv_chain_key=key("recvChainKey"),
            send_ratchet_private=key("sendPrivate"),
            recv_ratchet_public=key("recvPublic"),
            send_count=count("sendCount"),
            recv_count=count("recvCount"),
            prev_send_count=count("prevSendCount"),
            prev_recv_count=count("prevRecvCount"),
            ratchet=bool(flag),
            kx_private=half("kxprivate"),
            my_half=half("myHalf"),
            their_half=half("theirHalf"),
            saved=_go_saved(f.get("savedKeys")),
            last_encrypt_time=when("lastEncryptTime"),
            last_decrypt_time=when("lastDencryptTime"),
        )
        return cls(record, random=random, clock=clock)

    def to_go_state(self, *, lifetime: float = SAVED_KEY_LIFETIME, now: float | None = None) -> dict[str, Any]:
        """``DiskState(lifetime)``: the ``disk.RatchetState`` BR writes, as a JSON-ready dict.

        Fields in the Go struct's order, so ``json.dumps(d, separators=(",", ":"))`` is the bytes
        Go's ``json.Marshal`` writes (up to the order of the saved keys, a Go map). Saved keys older
        than ``lifetime`` seconds at ``now`` (default: the clock) are left out, their header key's
        entry kept (with ``[]``) as Go does; this ratchet keeps them (as Go's memory does).
        ``savedKeys`` is null when there are none; ``busted`` is not part of BR's state.
        """
        s = self._state
        now_ms = _ms(self._clock() if now is None else now)
        limit_ms = lifetime * 1000
        out: dict[str, Any] = {go: _b64(getattr(s, ours)) for go, ours in _GO_KEYS}
        out.update({go: getattr(s, ours) for go, ours in _GO_COUNTS})
        out["ratchet"] = s.ratchet
        out.update({go: _b64(getattr(s, ours)) for go, ours in _GO_HALVES})
        out["savedKeys"] = [
            {
                "headerKey": _b64(chain.header_key),
                "messageKeys": [
                    {"num": k.num, "key": _b64(k.key), "creationTime": k.created // 1000}  # time.Unix(): seconds
                    for k in chain.keys
                    if not now_ms - k.created > limit_ms  # Go: now.Sub(savedKey.timestamp) > lifetime
                ],
            }
            for chain in s.saved
        ] or None
        out["lastEncryptTime"] = s.last_encrypt_time
        out["lastDencryptTime"] = s.last_decrypt_time  # sic: disk.go's JSON name
        return out

    # --- sending ----------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        """``Encrypt``: the message for ``plaintext`` (a DH step first if ``will_ratchet()``).

        Post it at the ``send_rendezvous()`` read *before* this call. Randomness: the new X25519
        key (on a step), the header nonce, the message nonce, in that order. ``RatchetBusted`` if the
        step's X25519 fails (the peer's key is of low order), and from then on.
        """
        s = self._state
        if s.busted is not None:
            raise RatchetBusted("busted", f"the ratchet is busted ({s.busted}); reset it")
        random = self._random
        send_private, send_header_key = s.send_ratchet_private, s.send_header_key
        next_send_header_key, root_key, chain_key = s.next_send_header_key, s.root_key, s.send_chain_key
        send_count, prev_send_count = s.send_count, s.prev_send_count
        if s.ratchet:
            send_private = _draw(random, KEY_SIZE)
            try:
                shared = _x25519(send_private, s.recv_ratchet_public)
            except RatchetError as e:
                # Go has already overwritten sendRatchetPrivate when X25519 fails, and BR saves that
                # ratchet at the next successful Decrypt: keep it, so that our Go state is the same.
                # (While `ratchet` is set the value is never used: the next encrypt draws anew.)
                self._state = replace(s, send_ratchet_private=send_private, busted=str(e))
                raise RatchetBusted("dh", str(e)) from None
            send_header_key = next_send_header_key
            km = _root_step(root_key, shared)
            root_key = _derive(km, ROOT_KEY_LABEL)
            next_send_header_key = _derive(km, SEND_HEADER_KEY_LABEL)
            chain_key = _derive(km, CHAIN_KEY_LABEL)
            prev_send_count, send_count = send_count, 0
        message_key = _derive(chain_key, MESSAGE_KEY_LABEL)
        chain_key = _derive(chain_key, CHAIN_KEY_STEP_LABEL)
        header_nonce = _draw(random, NONCE_SIZE)
        message_nonce = _draw(random, NONCE_SIZE)
        header = _LE32X2.pack(send_count, prev_send_count) + bytes(crypto_scalarmult_base(send_private)) + message_nonce
        out = (
            header_nonce
            + bytes(crypto_secretbox_easy(header, header_nonce, send_header_key))
            + bytes(crypto_secretbox_easy(plaintext, message_nonce, message_key))
        )
        self._state = replace(
            s,
            root_key=root_key,
            send_header_key=send_header_key,
            next_send_header_key=next_send_header_key,
            send_chain_key=chain_key,
            send_ratchet_private=send_private,
            send_count=(send_count + 1) & _UINT32,  # uint32, as Go's sendCount++
            prev_send_count=prev_send_count,
            ratchet=False,
            last_encrypt_time=_ms(self._clock()),
        )
        return out

    # --- receiving --------------------------------------------------------------------------

    def decrypt(self, message: bytes) -> bytes:
        """``Decrypt``: the plaintext of ``message``, or ``RatchetError`` and no change at all."""
        s = self._state
        if len(message) < SEALED_HEADER_SIZE:
            raise RatchetError("length", "ratchet: header too small to be valid")
        nonce = message[:NONCE_SIZE]
        sealed_header = message[NONCE_SIZE:SEALED_HEADER_SIZE]
        sealed_message = message[SEALED_HEADER_SIZE:]

        # 1. trySavedKeys. Go walks its map in random order; at most one header key opens a header.
        for index, chain in enumerate(s.saved):
            header = _open(sealed_header, nonce, chain.header_key)
            if header is None:
                continue
            num = _LE32X2.unpack_from(header)[0]
            hit = next((k for k in chain.keys if k.num == num), None)
            if hit is None:
                break  # "the message key might not have been saved because it's the next message key"
            plaintext = _open(sealed_message, header[NONCE_IN_HEADER_OFFSET:], hit.key)
            if plaintext is None:
                raise RatchetError("corrupt", "ratchet: corrupt message")
            if not plaintext:
                # Go's secretbox.Open(nil, ...) of an empty plaintext returns a nil slice, which
                # Decrypt reads as "no saved key" and goes on, so the message fails below
                # ("duplicate" on the current chain, "cannot decrypt" on an older one). Go has by
                # then deleted the key; here a failure changes nothing. BR never sends an empty
                # plaintext (its messages are compressed RMs).
                break
            left = tuple(k for k in chain.keys if k is not hit)
            # The key is used up; an entry left empty goes (Go deletes both).
            saved = s.saved[:index] + ((replace(chain, keys=left),) if left else ()) + s.saved[index + 1 :]
            self._state = replace(s, saved=saved, last_decrypt_time=_ms(self._clock()))
            return plaintext

        now_ms = _ms(self._clock())
        scratch = _saved_view(s.saved)

        # 2. The current receive header key (Go opens with the zero key too, then refuses it).
        header = _open(sealed_header, nonce, s.recv_header_key) if s.recv_header_key != _ZERO else None
        if header is not None:
            num = _LE32X2.unpack_from(header)[0]
            chain_key, message_key = _save_keys(s.recv_header_key, s.recv_chain_key, num, s.recv_count, now_ms, scratch)
            plaintext = _open(sealed_message, header[NONCE_IN_HEADER_OFFSET:], message_key)
            if plaintext is None:
                raise RatchetError("corrupt", "ratchet: corrupt message")
            self._state = replace(
                s,
                recv_chain_key=chain_key,
                saved=_saved_record(scratch),
                recv_count=(num + 1) & _UINT32,
                last_decrypt_time=now_ms,
            )
            return plaintext

        # 3. The next receive header key: the peer made a DH step.
        header = _open(sealed_header, nonce, s.next_recv_header_key)
        if header is None:
            raise RatchetError("header", "ratchet: cannot decrypt")
        if s.ratchet:
            raise RatchetError(
                "ratchet-flag", "ratchet: received message encrypted to next header key without ratchet flag set"
            )
        num, prev_count = _LE32X2.unpack_from(header)
        # The old chain's keys up to its end (the header's previous count), under the old header key.
        _save_keys(s.recv_header_key, s.recv_chain_key, prev_count, s.recv_count, now_ms, scratch)
        dh_public = header[8:NONCE_IN_HEADER_OFFSET]
        km = _root_step(s.root_key, _x25519(s.send_ratchet_private, dh_public))
        chain_key, message_key = _save_keys(
            s.next_recv_header_key, _derive(km, CHAIN_KEY_LABEL), num, 0, now_ms, scratch
        )
        plaintext = _open(sealed_message, header[NONCE_IN_HEADER_OFFSET:], message_key)
        if plaintext is None:
            raise RatchetError("corrupt", "ratchet: corrupt message")
        self._state = replace(
            s,
            root_key=_derive(km, ROOT_KEY_LABEL),
            recv_chain_key=chain_key,
            prev_recv_header_key=s.recv_header_key,
            recv_header_key=s.next_recv_header_key,
            next_recv_header_key=_derive(km, SEND_HEADER_KEY_LABEL),
            send_ratchet_private=_ZERO,  # used up: our next message makes a new one
            recv_ratchet_public=dh_public,
            prev_recv_count=s.recv_count,
            recv_count=(num + 1) & _UINT32,
            saved=_saved_record(scratch),
            ratchet=True,
            last_decrypt_time=now_ms,
        )
        return plaintext

    # --- RVs --------------------------------------------------------------------------------

    def _send_rv_key(self) -> bytes:
        s = self._state
        # sendRVKey: "This happens once right after kx" (alice's send header key is still zero).
        return s.next_send_header_key if s.send_header_key == _ZERO else s.send_header_key

    def send_rendezvous(self) -> bytes:
        """``SendRendezvous``: where the next ``encrypt``'s message is posted (read it before)."""
        return kx.ratchet_rendezvous(self._send_rv_key(), self._state.send_count)

    def recv_rendezvous(self) -> tuple[bytes, bytes | None]:
        """``RecvRendezvous``: (the RV of the peer's next message, the drain RV or None).

        The drain RV is the previous receive header key's at ``prevRecvCount``, once a DH step
        made one; Go returns the zero RV instead of None.
        """
        s = self._state
        key = s.next_recv_header_key if s.recv_header_key == _ZERO else s.recv_header_key
        rv = kx.ratchet_rendezvous(key, s.recv_count)
        if s.prev_recv_header_key == _ZERO:
            return rv, None
        return rv, kx.ratchet_rendezvous(s.prev_recv_header_key, s.prev_recv_count)

    def send_rendezvous_plain_text(self) -> str:
        """``SendRendezvousPlainText``: ``hex(key).count`` (count at least 3 digits), for logs."""
        return _rv_text(self._send_rv_key(), self._state.send_count)

    def recv_rendezvous_plain_text(self) -> tuple[str, str]:
        """``RecvRendezvousPlainText``: the two RVs as text, the drain ``""`` when there is none."""
        s = self._state
        key = s.next_recv_header_key if s.recv_header_key == _ZERO else s.recv_header_key
        drain = "" if s.prev_recv_header_key == _ZERO else _rv_text(s.prev_recv_header_key, s.prev_recv_count)
        return _rv_text(key, s.recv_count), drain

    # --- the rest of Go's API, and the busted signal ----------------------------------------

    def will_ratchet(self) -> bool:
        """``WillRatchet``: the next ``encrypt`` makes a DH step."""
        return self._state.ratchet

    def nb_saved_keys(self) -> int:
        """``NbSavedKeys``: how many skipped message keys are kept."""
        return sum(len(c.keys) for c in self._state.saved)

    def last_enc_dec_times(self) -> tuple[int, int]:
        """``LastEncDecTimes``: Unix ms of the last encrypt and decrypt (``GO_ZERO_TIME_MS``: never)."""
        return self._state.last_encrypt_time, self._state.last_decrypt_time

    @property
    def busted(self) -> str | None:
        """Why the ratchet can no longer send (a reset KX is needed), or None."""
        return self._state.busted

    def idle(self, interval: float = RESET_OLD_RATCHETS_INTERVAL, now: float | None = None) -> bool:
        """No message decrypted in the last ``interval`` seconds (or ever): BR's reason to reset.

        client_kx.go ``ResetAllOldRatchets`` (30 days unless told) and ``handshakeIdleUsers``
        (``AutoHandshakeInterval``) skip a user whose last decryption is after ``now - interval``.
        """
        now_ms = _ms(self._clock() if now is None else now)
        return not self._state.last_decrypt_time > now_ms - interval * 1000

    def __repr__(self) -> str:
        # No keys: a ratchet shows up in logs and traces.
        s = self._state
        return (
            f"Ratchet(send_count={s.send_count}, recv_count={s.recv_count}, ratchet={s.ratchet}, "
            f"saved={self.nb_saved_keys()}, busted={s.busted is not None})"
        )


# --- reading Go's JSON ----------------------------------------------------------------------


def _go_fields(obj: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # encoding/json: each key of the object, in order, goes to the field of that name, or else to
    # the one whose name matches ignoring case; later keys overwrite; others are dropped.
    lower = {n.lower(): n for n in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in names else lower.get(str(key).lower())
        if name is not None:
            out[name] = value
    return out


def _go_bytes(name: str, value: Any) -> bytes:
    if value is None:
        return b""  # null: a nil []byte
    if not isinstance(value, str):
        raise GoStateError(name, "a []byte is a base64 string")
    try:
        # Go decodes with base64.StdEncoding, which skips \r and \n.
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise GoStateError(name, "not standard base64") from None


def _go_key(name: str, value: Any) -> bytes:
    key = _go_bytes(name, value)
    if len(key) != KEY_SIZE:  # unmarshalKey
        raise GoStateError(name, f"must be {KEY_SIZE} bytes, got {len(key)} (ErrUnmarshal)")
    return key


def _go_half(name: str, value: Any) -> bytes | None:
    # kxPrivate, myHalf, theirHalf: empty means nil, else exactly 32 bytes.
    data = _go_bytes(name, value)
    return None if not data else _go_key(name, value)


def _go_int(name: str, value: Any, low: int, high: int) -> int:
    if value is None:
        return 0
    # Go parses integers only: no fractions, no exponents (json gives those as floats), no bools.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GoStateError(name, f"must be an integer in [{low}, {high}]")
    return value


def _go_saved(value: Any) -> tuple[SavedChain, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise GoStateError("savedKeys", "must be a JSON array")
    saved: _Saved = {}
    for entry in value:
        if entry is None:
            entry = {}  # a null element decodes to a zero struct; its nil header key then fails
        if not isinstance(entry, Mapping):
            raise GoStateError("savedKeys", "each entry is a JSON object")
        fields = _go_fields(entry, ("headerKey", "messageKeys"))
        header_key = _go_key("savedKeys.headerKey", fields.get("headerKey"))
        keys: dict[int, SavedKey] = {}
        message_keys = fields.get("messageKeys")
        if message_keys is not None and not isinstance(message_keys, list):
            raise GoStateError("savedKeys.messageKeys", "must be a JSON array")
        for mk in message_keys or ():
            if mk is None:
                mk = {}
            if not isinstance(mk, Mapping):
                raise GoStateError("savedKeys.messageKeys", "each entry is a JSON object")
            f = _go_fields(mk, ("num", "key", "creationTime"))
            num = _go_int("savedKeys.messageKeys.num", f.get("num"), 0, _UINT32)
            key = _go_key("savedKeys.messageKeys.key", f.get("key"))
            seconds = _go_int("savedKeys.messageKeys.creationTime", f.get("creationTime"), _INT64_MIN, _INT64_MAX)
            keys[num] = SavedKey(num=num, key=key, created=seconds * 1000)  # time.Unix(creationTime, 0)
        saved[header_key] = keys  # Unmarshal: r.saved[headerKey] = messageKeys (a repeat replaces)
    return _saved_record(saved)
