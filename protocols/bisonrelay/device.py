"""A BisonRelay client in the P2P key exchange: the bindings of protocols/bisonrelay/bisonrelay.fsm.

One class serves every role, as the fsm does: a client is the inviter (of a manual invite
made before the scenario, of a reset it asked for, of an auto-KX invite a mediator asked it
for), the acceptor (of a manual invite its user holds, of a reset invite, of an auto-KX
invite), and the mediator between users it holds ratchets with; it runs one KX at a time,
or two when a reset invite comes while its own invite waits (the fsm's Crossing). The
cryptography and the message contents are protocols/bisonrelay/kx.py, as BR computes them.

What it keeps (`KXState`, its state as a value):

- `peers`: the users it holds a ratchet with (BR's address book), each with the seed the
  KX gave (`kx.RatchetSeed`), the reset RVs, and the counts of the ratchet messages sent
  and received (the seam for the Double Ratchet, see below);
- the KX under way, if any: `inviting` (a `kx.PendingInvite`, waiting at its initial RV)
  or `accepting` (a `kx.AcceptedInvite`, waiting at its step-3 RV), and `mediation`, the
  introduction the user asked a mediator for;
- `used_invites`: the initial RVs of the invites it accepted, and of the reset invites it
  received (BR keeps one KX record per initial RV, clientdb.SaveKX refuses a second: an
  invite is accepted once; one that came while the client could not take it is lost);
- `completed`: every KX completed in the run, with whom it was expected (for the
  invariants, which see only the present).

Wire. BR composes ``zlib(JSON(RMOHeader) "\\n" JSON(payload) "\\n")`` and seals it with
``rpc.EncryptRMO``; we seal our UPER encoding of the message (runtime's codec) instead,
with the same ``kx.seal``: ``c (1047) || nonce (24) || secretbox``. The RMOHeader's
command is our CHOICE's tag; its version and timestamp (which BR does not check) are not
carried. The relay stores a payload at an RV and hands it to whoever subscribed there as
``RVBlob{ID: rv, Decoded: blob}``; our network does not tell a device at which address a
delivery arrived, so what we post is the RV (32 octets) followed by the blob, and a
device takes a delivery only at an RV it listens on now (`open`).

The ratchet seam. The relay messages of the auto-KX (RMMediateIdentity, RMInvite,
RMTransitiveMessage, RMTransitiveMessageFwd) go over the ratchet between two users who
completed a KX. The Double Ratchet is the next step; until it is there, such a message is
sealed with ``kx.seal`` to the peer's identity key and posted at the ratchet's RV of its
count, ``BLAKE-256(header key || LE32(n))`` under the first header keys of the seed
(`Peer.send_rendezvous`, `recv_rendezvous`): the RVs BR's ratchet uses before its first DH
step. What authenticates them is that only the two users know those RVs; a receiver
listens at the RV of the next count only, so a message is taken once (and a second one in
flight the same way would reach no one: the flows here never have one). Replace
`_ratchet_send`, and `seal` and `open` at "ratchet" RVs, by the ratchet's encryption, its
RVs and its counts, and the seam closes.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from protocols.bisonrelay import kx
from protocols.bisonrelay.ratchet import (
    GO_ZERO_TIME_MS,
    RESET_OLD_RATCHETS_INTERVAL,
    Ratchet,
    RatchetBusted,
    RatchetError,
    RatchetState,
    _x25519,
)
from runtime.device import DeviceBase
from runtime.errors import DecodeError, EnvelopeError
from runtime.memo import pure
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.bisonrelay import PeerKXBindings

__all__ = [
    "ACCEPTOR",
    "INVITER",
    "Accepting",
    "Arrival",
    "BisonRelayDevice",
    "Completion",
    "Inviting",
    "KXState",
    "Outgoing",
    "Peer",
    "RendezvousError",
    "rv_address",
    "seeds_match",
]

INVITER, ACCEPTOR = "inviter", "acceptor"
MANUAL, RESET, AUTOKX = "manual", "reset", "autokx"
_ZERO = bytes(kx.KEY_SIZE)

# Where each message may arrive: the step of the KX an RV is for decides what it takes.
RELAYED = ("RMMediateIdentity", "RMInvite", "RMTransitiveMessage", "RMTransitiveMessageFwd")
CHAT = "RMPrivateMessage"
# How far ahead on a receive chain a client listens (see the module: the relay keeps what is
# posted at an RV until its subscriber comes; our network routes at post time).
LISTEN_AHEAD = 4
BELONGS = {
    "initial": ("RMOHalfKX",),  # the initial RV of our invite
    "step3": ("RMOFullKX",),  # the step-3 RV of the invite we accepted
    "reset": ("OOBPublicIdentityInvite",),  # our reset RV for a peer
    "ratchet": (*RELAYED, CHAT),  # a peer's ratchet's RVs
    "overheard": (),  # another's RV an attacker listens on
}


class RendezvousError(EnvelopeError):
    """A blob at an RV the device does not listen on (any more): BR has unsubscribed, and the
    relay hands it to no one."""

    code: ClassVar[str] = "rendezvous"


def rv_address(rv: bytes) -> str:
    """The transport address of an RV (the "rv:" prefix keeps addresses apart from party
    names; 64 bits of it tell RVs apart in charts)."""
    return "rv:" + rv.hex()[:16]


@pure(16384)
def _ratchet_rv(header_key: bytes, count: int) -> bytes:
    return kx.ratchet_rendezvous(header_key, count)


@pure(4096)
def _send_rv(state: RatchetState) -> bytes:
    return Ratchet.restore(state).send_rendezvous()


@pure(4096)
def _recv_rvs(state: RatchetState) -> tuple[bytes, ...]:
    """The RVs a client listens at for a peer's ratchet messages: `recv_rendezvous()` (the
    next count of the receive chain, and the drain RV once there is one), each with the
    LISTEN_AHEAD - 1 counts after it, and the first counts after 0 of the chain the peer's
    next DH step starts (its header key is known ahead: nextRecvHeaderKey; its count 0 goes
    to the old chain's RV)."""
    current, drain = Ratchet.restore(state).recv_rendezvous()
    key = state.next_recv_header_key if state.recv_header_key == _ZERO else state.recv_header_key
    rvs = [current, *(_ratchet_rv(key, state.recv_count + i) for i in range(1, LISTEN_AHEAD))]
    if drain is not None:
        rvs += [drain, *(_ratchet_rv(state.prev_recv_header_key, state.prev_recv_count + i)
                         for i in range(1, LISTEN_AHEAD))]
    if state.recv_header_key != _ZERO:
        rvs += [_ratchet_rv(state.next_recv_header_key, i) for i in range(1, LISTEN_AHEAD)]
    return tuple(dict.fromkeys(rvs))


def _encrypt(state: RatchetState, data: bytes, now: float, random: kx.Random) -> tuple[RatchetState, bytes | None]:
    """Ratchet.encrypt of `data` from `state` at `now`: the new state and the message, or the
    busted state and None (BR: encryptRM keeps the error and sends nothing)."""
    ratchet = Ratchet.restore(state, random=random, clock=lambda: now)
    try:
        blob = ratchet.encrypt(data)
    except RatchetBusted:
        return ratchet.snapshot(), None
    return ratchet.snapshot(), blob


def _decrypt(state: RatchetState, blob: bytes, now: float) -> tuple[bytes, RatchetState]:
    """Ratchet.decrypt of `blob` from `state` at `now`, kept: the plaintext and the new state
    (RatchetError, and no change, when it does not decrypt)."""
    def compute() -> tuple[bytes, RatchetState]:
        ratchet = Ratchet.restore(state, clock=lambda: now)
        return ratchet.decrypt(blob), ratchet.snapshot()

    kept: tuple[bytes, RatchetState] = _kept(("decrypt", state, blob, now), compute)
    return kept


def _would_bust(state: RatchetState) -> bool:
    """The next encrypt makes a DH step whose X25519 fails (the peer's key is of low order)."""
    if not state.ratchet:
        return False
    try:
        _x25519(bytes([9]) + bytes(31), state.recv_ratchet_public)
    except RatchetError:
        return True
    return False


def decrypts(state: RatchetState, blob: bytes) -> bool:
    """Whether a ratchet in `state` decrypts `blob` (for the forward-secrecy invariant)."""
    try:
        _decrypt(state, blob, 0.0)
    except RatchetError:
        return False
    return True


# The explorer runs one computation in many worlds (a delivery that commutes with other
# parties' steps): the results of kx.py's pure functions are kept, bounded, by their inputs,
# and for those that draw randomness by the random source's state too (`_drawing`), which
# the kept result then advances as the computation did. Failures are kept as well.
_MEMO: dict[Any, Any] = {}
_MEMO_SIZE = 8192


def _kept(key: Any, compute: Any) -> Any:
    hit = _MEMO.get(key)
    if hit is None:
        try:
            hit = (compute(), None)
        except (kx.KXError, DecodeError, RatchetError) as e:
            hit = (None, e)
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[key] = hit
    if hit[1] is not None:
        raise hit[1].with_traceback(None)  # a fresh traceback each time: the kept one would grow
    return hit[0]


def _open_blob(blob: bytes, private_key: bytes) -> bytes:
    """kx.open of a blob with our key."""
    opened: bytes = _kept(("open", blob, private_key), lambda: kx.open(blob, private_key))
    return opened


def _check_half(cipher: bytes, public: bytes, private_key: bytes) -> None:
    """The checks `kx.complete_key_exchange` makes of the peer's half (decapsulation, the
    sealed X25519 key, its range), run ahead so that a half that fails them is dropped before
    the fsm takes it. The half ratchet given is a stand-in: only the result depends on it."""
    own = kx.HalfRatchet(kx_private=_ZERO, my_half=_ZERO, their_public_key=bytes(1218))
    theirs = kx.KeyExchange(public=public, cipher=cipher)
    _kept(("half", cipher, public, private_key),
          lambda: kx.complete_key_exchange(own, theirs, private_key, alice=True))


@dataclass(frozen=True, slots=True)
class Peer:
    """A user we completed a KX with (BR's address book entry and its ratchet)."""

    public: kx.PublicIdentity
    seed: kx.RatchetSeed
    initial_rendezvous: bytes  # the KX's id
    my_reset_rendezvous: bytes  # we listen here for its reset invites
    their_reset_rendezvous: bytes  # we send ours here, sealed to public.key
    # The ratchet's state (Ratchet.snapshot()): from the seed when the KX completes (None given).
    ratchet: RatchetState = None  # type: ignore[assignment]
    made: float = 0.0  # when the KX completed (device clock, seconds)

    def __post_init__(self) -> None:
        if self.ratchet is None:
            object.__setattr__(self, "ratchet", Ratchet.from_seed(self.seed).snapshot())

    @property
    def identity(self) -> bytes:
        return self.public.identity

    def send_rendezvous(self) -> bytes:
        """Where our next message to the peer goes (read before the encrypt)."""
        return _send_rv(self.ratchet)

    def recv_rendezvous(self) -> tuple[bytes, ...]:
        """Where we listen for the peer's messages (`_recv_rvs`)."""
        return _recv_rvs(self.ratchet)


@dataclass(frozen=True, slots=True)
class Inviting:
    """An invite of ours waiting for its RMOHalfKX (clientdb.KXData at Step2IDKX)."""

    pending: kx.PendingInvite
    how: str  # manual, reset, autokx
    expected: bytes | None  # whom it is for: the reset's peer, the auto-KX invitee; None: whoever holds it
    mediator: bytes | None = None


@dataclass(frozen=True, slots=True)
class Accepting:
    """An invite we accepted, waiting for its RMOFullKX (clientdb.KXData at Step3IDKX)."""

    accepted: kx.AcceptedInvite
    how: str


@dataclass(frozen=True, slots=True)
class Completion:
    """A KX completed in the run: how, in which role, with whom, whom we expected, the seed."""

    how: str
    role: str
    peer: bytes  # the identity we completed with
    expected: bytes | None  # the identity we expected (None: a manual invite's inviter expects anyone)
    seed: kx.RatchetSeed
    key: bytes  # the sntrup4591761 key the identity came with: our half is encapsulated to it


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Where the message being sent goes and whom it is sealed to (what `capture` returns)."""

    rv: bytes
    key: bytes  # the receiver's sntrup4591761 public key
    what: str  # initial, step3, reset, ratchet
    peer: bytes | None = None  # for a ratchet message: whose ratchet encrypts it
    encrypted: bytes | None = None  # for a ratchet message: the ratchet's output (None if it busted)


@dataclass(frozen=True, slots=True)
class Arrival:
    """Where a delivery arrived (the context `open` returns): the RV, the step it is for,
    and the peer it belongs to, if any."""

    rv: bytes
    step: str  # a key of BELONGS
    peer: bytes | None = None
    ratchet: RatchetState | None = None  # at a ratchet RV: the ratchet's state after the decrypt
    blob: bytes = b""  # at a ratchet RV: the ratchet message


@dataclass(frozen=True, slots=True)
class KXState:
    """A client's state as a value. The message being handled, where it came from, where
    the next one goes and the notes of expired KXs tell no states apart."""

    peers: tuple[Peer, ...]
    inviting: Inviting | None
    accepting: Accepting | None
    mediation: tuple[bytes, bytes] | None  # (mediator, target) we asked to be introduced to
    used_invites: frozenset[bytes]
    completed: tuple[Completion, ...]
    chats_sent: tuple[tuple[bytes, str], ...] = ()  # (to, text), in order
    chats_received: tuple[tuple[bytes, str], ...] = ()  # (from, text), in order
    queued: tuple[tuple[bytes, str], ...] = ()  # (to, text) waiting for a reset of that ratchet
    flushing: tuple[tuple[bytes, str], ...] = ()  # (to, text) a completed reset signalled SendChat for
    invite_accepted: bool = False  # the user accepted the invite it holds (parties.before_event), for the invariants
    resets_asked: tuple[bytes, ...] = ()  # the peers whose ratchet the user asked to reset (the same)
    introduction_asked: bool = False  # the user asked the mediator for an introduction to the target (the same)
    chat_kx: tuple[bytes, ...] = ()  # for each of chats_sent, the KX (its initial RV) of the ratchet it went over
    chats_asked: int = 0  # chats the user wrote to a peer it holds a ratchet with (parties.before_event)
    sealed: tuple[tuple[bytes, bytes], ...] = field(default=(), compare=False)  # (to, ratchet message) of chats
    opened: tuple[tuple[bytes, bytes], ...] = field(default=(), compare=False)  # (from, ratchet message) of chats
    expired: tuple[str, ...] = field(default=(), compare=False)
    outgoing: Outgoing | None = field(default=None, compare=False)
    message: Any = field(default=None, compare=False)
    arrival: Arrival | None = field(default=None, compare=False)


def seeds_match(a: kx.RatchetSeed, b: kx.RatchetSeed) -> bool:
    """Two ends of one ratchet: one side is alice, each one's send keys are the other's receive
    keys, the root key is one, each holds the half the other encapsulated, and alice's peer
    ratchet key is the other side's."""
    from nacl.bindings import crypto_scalarmult_base

    if a.alice == b.alice:
        return False
    alice, other = (a, b) if a.alice else (b, a)
    return (a.root_key == b.root_key
            and a.send_header_key == b.recv_header_key and a.recv_header_key == b.send_header_key
            and a.next_send_header_key == b.next_recv_header_key and a.next_recv_header_key == b.next_send_header_key
            and a.send_chain_key == b.recv_chain_key and a.recv_chain_key == b.send_chain_key
            and a.my_half == b.their_half and a.their_half == b.my_half
            and alice.recv_ratchet_public == bytes(crypto_scalarmult_base(other.send_ratchet_private)))


@dataclass(eq=False)
class BisonRelayDevice(DeviceBase[KXState]):
    """A client: its identity, what it was handed before the scenario, and its KX state."""

    name: str
    identity: kx.FullIdentity
    invite: kx.OOBPublicIdentityInvite | None = None  # a manual invite handed over out of band
    made: kx.OOBPublicIdentityInvite | None = None  # the manual invite it made and handed out
    mediator: bytes | None = None  # whom the user asks for an introduction (RequestMediateIdentity)
    target: bytes | None = None  # to whom
    reset_with: bytes | None = None  # whose ratchet ResetRatchet resets (default: the first peer's)
    # Not an honest party (the invariants judge the others): one that listens at others' RVs,
    # one that sends reset invites to another's reset RV, claiming an identity.
    attacker: bool = False
    overhears: frozenset[bytes] = frozenset()
    forged_reset: Outgoing | None = None  # where a forged reset invite goes
    claims: kx.PublicIdentity | None = None  # the identity it puts in its reset invites
    poses_as: kx.PublicIdentity | None = None  # the identity it puts in its RMOHalfKX
    # Whether an inviter checks the identity in an RMOHalfKX (its id is the hash of its key,
    # its signature verifies). BR does not (handleStep2IDKX): README.md, finding 2.
    verifies_identities: bool = False
    # A ratchet that received nothing for this long after it sent is reset when the user sends
    # (BR: ResetAllOldRatchets, 30 days).
    idle_interval: float = RESET_OLD_RATCHETS_INTERVAL
    # The chat message the user sends next (parties.before_event sets them from the step).
    chat_to: bytes | None = None
    chat_text: str | None = None
    # identity -> party name, for people; and the ratchets held when the scenario starts (read-only:
    # a world's copies share them)
    names: Mapping[bytes, str] = field(default_factory=lambda: MappingProxyType({}))
    setup: Mapping[bytes, kx.RatchetSeed] = field(default_factory=lambda: MappingProxyType({}))
    rng: SeededRandom = field(default_factory=SeededRandom)
    machine: Any = None
    # state (KXState)
    peers: tuple[Peer, ...] = ()
    inviting: Inviting | None = None
    accepting: Accepting | None = None
    mediation: tuple[bytes, bytes] | None = None
    used_invites: frozenset[bytes] = frozenset()
    completed: tuple[Completion, ...] = ()
    chats_sent: tuple[tuple[bytes, str], ...] = ()
    chats_received: tuple[tuple[bytes, str], ...] = ()
    queued: tuple[tuple[bytes, str], ...] = ()
    flushing: tuple[tuple[bytes, str], ...] = ()
    invite_accepted: bool = False
    resets_asked: tuple[bytes, ...] = ()
    introduction_asked: bool = False
    chat_kx: tuple[bytes, ...] = ()
    chats_asked: int = 0
    sealed: tuple[tuple[bytes, bytes], ...] = ()
    opened: tuple[tuple[bytes, bytes], ...] = ()
    expired: tuple[str, ...] = ()
    outgoing: Outgoing | None = None
    message: Any = None
    arrival: Arrival | None = None

    def snapshot(self) -> KXState:
        return KXState(self.peers, self.inviting, self.accepting, self.mediation, self.used_invites,
                       self.completed, self.chats_sent, self.chats_received, self.queued, self.flushing,
                       self.invite_accepted, self.resets_asked, self.introduction_asked, self.chat_kx,
                       self.chats_asked, self.sealed, self.opened, self.expired, self.outgoing, self.message,
                       self.arrival)

    def restore(self, state: KXState) -> None:
        self.peers, self.inviting, self.accepting = state.peers, state.inviting, state.accepting
        self.mediation, self.used_invites, self.completed = state.mediation, state.used_invites, state.completed
        self.chats_sent, self.chats_received = state.chats_sent, state.chats_received
        self.queued, self.flushing = state.queued, state.flushing
        self.invite_accepted, self.resets_asked = state.invite_accepted, state.resets_asked
        self.introduction_asked, self.chat_kx = state.introduction_asked, state.chat_kx
        self.chats_asked = state.chats_asked
        self.sealed, self.opened = state.sealed, state.opened
        self.expired, self.outgoing = state.expired, state.outgoing
        self.message, self.arrival = state.message, state.arrival

    # --- what the scenarios and the invariants read

    @property
    def public(self) -> kx.PublicIdentity:
        return self.identity.public

    @property
    def id(self) -> bytes:
        return self.identity.public.identity

    def peer(self, identity: bytes | None) -> Peer | None:
        return next((p for p in self.peers if p.identity == identity), None)

    def who(self, identity: bytes | None) -> str:
        if identity is None:
            return "?"
        return self.names.get(identity, identity.hex()[:8])

    # --- the generated module: its records and codec (those of the machine's own module, so
    # that a compiled copy of the fsm, a mutant, gets its own)

    @property
    def _module(self) -> ModuleType:
        return sys.modules[type(self.machine).__module__]

    def _wire_identity(self, p: kx.PublicIdentity) -> Any:
        return self._module.PublicIdentity(name=p.name, nick=p.nick, sigKey=p.sig_key, key=p.key, identity=p.identity,
                                           digest=p.digest, signature=p.signature, avatar=p.avatar)

    def _wire_half(self, k: kx.KeyExchange) -> Any:
        return self._module.KeyExchange(public=k.public, cipher=k.cipher)

    @staticmethod
    def _identity_of(r: Any) -> kx.PublicIdentity:
        return kx.PublicIdentity(name=r.name, nick=r.nick, sig_key=r.sigKey, key=r.key, identity=r.identity,
                                 digest=r.digest, signature=r.signature, avatar=r.avatar)

    @staticmethod
    def _half_of(r: Any) -> kx.KeyExchange:
        return kx.KeyExchange(public=r.public, cipher=r.cipher)

    def _invite_of(self, m: Any) -> kx.OOBPublicIdentityInvite:
        return kx.OOBPublicIdentityInvite(public=self._identity_of(m.public), initial_rendezvous=m.initialRendezvous,
                                          reset_rendezvous=m.resetRendezvous)

    def _transitive_invite(self, fwd: Any) -> kx.OOBPublicIdentityInvite:
        """The invite inside a forwarded transitive message: opened with our key (kx.open_parts),
        decoded as our OOBPublicIdentityInvite, and its id the hash of its key (BR:
        VerifyIdentity). KXError or DecodeError when it is not."""
        def compute() -> kx.OOBPublicIdentityInvite:
            plain = kx.open_parts(fwd.cipherText, fwd.box, self.identity.private_key)
            message = self._module.CODEC.decode(plain)
            if type(message).__name__ != "OOBPublicIdentityInvite":
                raise DecodeError(f"a transitive message carries {type(message).__name__}, not an invite")
            invite = self._invite_of(message)
            if not invite.public.verify_identity():
                raise kx.KXError("identity", "the transitive invite's id is not the hash of its key")
            return invite

        key = ("transitive", fwd.cipherText, fwd.box, self.identity.private_key, type(self.machine).__module__)
        invite: kx.OOBPublicIdentityInvite = _kept(key, compute)
        return invite

    def _random(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def _drawing(self, compute: Any, *args: Any) -> Any:
        """`compute(*args, random)` with our random source, kept by its inputs and the source's
        state: a kept result sets the source to the state the computation left it in."""
        key = (compute, args, self.rng.getstate())
        hit = _MEMO.get(key)
        if hit is None:
            hit = (compute(*args, self._random), self.rng.getstate())
            if len(_MEMO) >= _MEMO_SIZE:
                _MEMO.clear()
            _MEMO[key] = hit
        else:
            self.rng.setstate(hit[1])
        return hit[0]

    # --- the driver's side

    def _rendezvous(self) -> dict[bytes, Arrival]:
        """Every RV the client listens on now, and what arrives there."""
        where: dict[bytes, Arrival] = {}
        for rv in self.overhears:
            where[rv] = Arrival(rv, "overheard")
        for p in self.peers:
            where[p.my_reset_rendezvous] = Arrival(p.my_reset_rendezvous, "reset", p.identity)
            for rv in p.recv_rendezvous():
                where[rv] = Arrival(rv, "ratchet", p.identity)
        if self.inviting is not None:
            rv = self.inviting.pending.initial_rendezvous
            where[rv] = Arrival(rv, "initial")
        if self.accepting is not None:
            rv = self.accepting.accepted.step3_rendezvous
            where[rv] = Arrival(rv, "step3", self.accepting.accepted.peer.identity)
        return where

    def listening(self) -> frozenset[str]:
        return frozenset(rv_address(rv) for rv in self._rendezvous())

    def capture(self, message: Any, to: str | None = None) -> Outgoing:
        """Where the message goes; a ratchet message is encrypted here, when it is sent
        (remoteuser.go encryptRM), so that the next one in the same step (the chats a
        completed reset flushes) is read at the RV the ratchet moved to."""
        assert self.outgoing is not None, f"{self.name}: {type(message).__name__} sent with no destination"
        captured = self.outgoing
        if captured.what != "ratchet":
            return captured
        peer = self.peer(captured.peer)
        assert peer is not None
        data = self._module.CODEC.encode(message)
        encrypted: tuple[RatchetState, bytes | None] = self._drawing(_encrypt, peer.ratchet, data, self.clock())
        state, sealed = encrypted
        self._replace_peer(peer.identity, lambda p: replace(p, ratchet=state))
        if sealed is None:
            self.expired = (*self.expired, f"ratchet with {self.who(peer.identity)} busted")
        elif type(message).__name__ == CHAT:
            self.sealed = (*self.sealed, (peer.identity, sealed))
        return replace(captured, encrypted=sealed)

    def describe(self, captured: Outgoing) -> tuple[str, str, str]:
        return captured.what, captured.rv.hex()[:16], hashlib.sha256(captured.key).hexdigest()[:16]

    def seal(self, message: Any, data: bytes, captured: Outgoing) -> bytes:
        """The RV, then kx.seal of our encoding to the receiver's key. BR's EncryptRMO seals
        zlib(JSON(RMOHeader) "\\n" JSON(message) "\\n") the same way; `data` is our UPER
        encoding instead, and the RV in front stands for the relay's RouteMessage{Rendezvous}.
        A message to a peer we hold a ratchet with is that ratchet's encryption of our encoding
        instead (remoteuser.go encryptRM, done by `capture`), posted at the send RV read before
        the encrypt; the ratchet stepped. If the encrypt busted the ratchet, the busted state is
        kept and what is posted is the RV alone, which no one takes (BR sends nothing)."""
        if captured.what == "ratchet":
            return captured.rv + (captured.encrypted or b"")
        blob: bytes = self._drawing(kx.seal, data, captured.key)
        return captured.rv + blob

    def open(self, data: bytes) -> tuple[bytes, Arrival]:
        """The blob at an RV we listen on, opened with our key (BR: DecryptOOB). A
        RendezvousError elsewhere; a KXError (a VerificationError) when it does not open."""
        if len(data) < kx.RV_SIZE:
            raise EnvelopeError(f"{len(data)} octets: shorter than an RV")
        rv, blob = data[: kx.RV_SIZE], data[kx.RV_SIZE:]
        arrival = self._rendezvous().get(rv)
        if arrival is None:
            raise RendezvousError(f"not listening at RV {rv.hex()[:16]}")
        if arrival.step == "ratchet":
            peer = self.peer(arrival.peer)
            assert peer is not None
            plain, state = _decrypt(peer.ratchet, blob, self.clock())
            return plain, replace(arrival, ratchet=state, blob=blob)
        return _open_blob(blob, self.identity.private_key), arrival

    def admit(self, message: Any, arrival: Arrival) -> str | None:
        """What opened must belong where it arrived, and must pass BR's checks of it: the step,
        no KX with ourselves, the ratchet halves that must complete, a reset invite from the
        identity we know and not seen before, a transitive invite that opens and is whom it
        says."""
        name = type(message).__name__
        if name not in BELONGS[arrival.step]:
            return f"{name} does not belong at a {arrival.step} RV"
        try:
            if name == "RMOHalfKX":
                if hmac.compare_digest(message.public.identity, self.id):
                    return "self-kx: the half KX is our own"
                public = self._identity_of(message.public)
                if self.verifies_identities and not (public.verify_identity() and public.verify()):
                    return "identity: the half KX's id is not its key's, or its signature does not verify"
                _check_half(message.halfKX.cipher, message.halfKX.public, self.identity.private_key)
            elif name == "RMOFullKX":
                _check_half(message.fullKX.cipher, message.fullKX.public, self.identity.private_key)
            elif name == "OOBPublicIdentityInvite":
                peer = self.peer(arrival.peer)
                assert peer is not None
                kx.check_reset_invite(self._invite_of(message), peer.public)
                if message.initialRendezvous in self.used_invites:
                    return "this reset invite was accepted before"
            elif name == "RMTransitiveMessageFwd":
                self._transitive_invite(message)
        except (kx.KXError, DecodeError) as e:
            return str(e)
        return None

    def receiving(self, message: Any, arrival: Arrival | None) -> None:
        """What is taken is used up, whatever the fsm does with it: a message at a ratchet RV
        moves the ratchet on (the state its decrypt left: the message key is used up), and a reset
        invite is one we have seen (we take each once: one that comes while we are in a KX
        of our own is lost, BR would run both KXs; see README.md)."""
        self.message, self.arrival = message, arrival
        if arrival is not None and arrival.step == "ratchet":
            state = arrival.ratchet
            assert state is not None
            self._replace_peer(arrival.peer, lambda p: replace(p, ratchet=state))
        elif arrival is not None and arrival.step == "reset":
            self.used_invites = self.used_invites | {message.initialRendezvous}

    def material_digest(self) -> str:
        """The root keys of the ratchets held: equal digests, the same ratchets."""
        return b"".join(sorted(p.seed.root_key for p in self.peers)).hex()

    def timed_out(self, state: str) -> None:
        """The KX under way expired (BR removes stale KX records and stops listening at their
        RVs): forgotten; the ratchets held stay."""
        what = ("invite" if self.inviting else "accepted invite" if self.accepting else
                "introduction" if self.mediation else "nothing")
        self.expired = (*self.expired, f"{what} expired in {state}")
        self.inviting = self.accepting = self.mediation = None

    # --- the helpers of the actions

    def _replace_peer(self, identity: bytes | None, change: Any) -> None:
        self.peers = tuple(change(p) if p.identity == identity else p for p in self.peers)

    def _ratchet_send(self, identity: bytes) -> None:
        """The next ratchet message to `identity`: at the ratchet's send RV, read now, before
        `seal` encrypts it (remoteuser.go encryptRM)."""
        peer = self.peer(identity)
        assert peer is not None
        self.outgoing = Outgoing(peer.send_rendezvous(), peer.public.key, "ratchet", identity)

    def _fill_half_kx(self, half: kx.RMOHalfKX) -> None:
        b = self.machine.buffer
        b.public, b.halfKX = self._wire_identity(half.public), self._wire_half(half.half_kx)
        b.initialRendezvous, b.resetRendezvous = half.initial_rendezvous, half.reset_rendezvous

    def _accept(self, invite: kx.OOBPublicIdentityInvite, how: str) -> None:
        """client/kx.go acceptInvite: our half, the step-3 RV and our reset RV, to the initial RV."""
        accepted, half = self._drawing(kx.accept_invite, self.identity, invite)
        if self.poses_as is not None:
            half = replace(half, public=self.poses_as)
        self.accepting = Accepting(accepted, how)
        self.used_invites = self.used_invites | {invite.initial_rendezvous}  # (a reset's: already)
        self._fill_half_kx(half)
        self.outgoing = Outgoing(invite.initial_rendezvous, invite.public.key, "initial")

    def _complete(self, done: kx.CompletedKX, role: str, how: str, expected: bytes | None) -> None:
        """BR's kxCompleted and initRemoteUser: the user's ratchet is the new one (a reset
        replaces the old), its reset RVs are the new ones."""
        entry = Peer(done.peer, done.seed, done.initial_rendezvous, done.my_reset_rendezvous,
                     done.their_reset_rendezvous, made=self.clock())
        self.peers = (*(p for p in self.peers if p.identity != done.peer.identity), entry)
        self.completed = (*self.completed, Completion(how, role, done.peer.identity, expected, done.seed,
                                                            done.peer.key))
        self.machine.notify("kx completed", (how, role, self.who(done.peer.identity)))
        # The chats that waited for this ratchet go out over it, in order: one SendChat each,
        # run after this step (run to completion), each taking the head of `flushing`.
        waiting = tuple(chat for chat in self.queued if chat[0] == done.peer.identity)
        if waiting:
            self.queued = tuple(chat for chat in self.queued if chat[0] != done.peer.identity)
            self.flushing = (*self.flushing, *waiting)
            for _ in waiting:
                self.machine.signal(self.machine.Event.SendChat)

    def _reset_target(self, identity: bytes | None = None) -> tuple[Outgoing, bytes] | None:
        """Where ResetRatchet's invite goes (or a reset of the ratchet with `identity`), and
        the identity it is for."""
        if self.forged_reset is not None and identity is None:
            return self.forged_reset, self.reset_with or b""
        with_ = identity if identity is not None else self.reset_with
        peer = self.peer(with_) if with_ is not None else (self.peers[0] if self.peers else None)
        if peer is None:
            return None
        return Outgoing(peer.their_reset_rendezvous, peer.public.key, "reset"), peer.identity

    # --- conditions

    def invitePending(self) -> bool:
        return self.inviting is not None

    def holdsInvite(self) -> bool:
        return self.invite is not None and self.invite.initial_rendezvous not in self.used_invites

    def reset_peer(self) -> bytes | None:
        """Whose ratchet a ResetRatchet resets now, if anyone's."""
        target = self._reset_target()
        return None if target is None else target[1]

    def hasPeer(self) -> bool:
        return self._reset_target() is not None

    def mayRequestMediation(self) -> bool:
        """An introduction to a user we hold no ratchet with, through one we do, one at a time."""
        return (self.mediator is not None and self.target is not None and self.peer(self.mediator) is not None
                and self.peer(self.target) is None and self.mediation is None)

    def knowsTarget(self) -> bool:
        """The mediator holds a ratchet with the target (BR: rul.byID, else it refuses)."""
        assert self.arrival is not None
        return self.peer(self.message.identity) is not None and self.message.identity != self.arrival.peer

    def knowsRecipient(self) -> bool:
        return self.peer(self.message.forIdentity) is not None

    def _chat(self) -> tuple[bytes, str] | None:
        """What this SendChat sends: the next chat a completed reset flushes, else the user's
        (parties.before_event set it)."""
        if self.flushing:
            return self.flushing[0]
        if self.chat_to is None or self.chat_text is None:
            return None
        return self.chat_to, self.chat_text

    def _chat_done(self) -> None:
        if self.flushing:
            self.flushing = self.flushing[1:]

    def mayChat(self) -> bool:
        """The chat message is for a peer we hold a ratchet with."""
        chat = self._chat()
        return chat is not None and self.peer(chat[0]) is not None

    def ratchetNeedsReset(self) -> bool:
        """The ratchet with the chat's peer is busted (an encrypt failed: BR's rError), its next
        encrypt would bust it (a DH step against a low-order key), or it is idle: nothing
        decrypted for `idle_interval`, nor the ratchet made in it, though we sent (Ratchet.idle;
        BR's ResetAllOldRatchets resets a ratchet that never decrypted at once, since its
        last decryption is Go's zero time: a new one would be idle here)."""
        chat = self._chat()
        peer = None if chat is None else self.peer(chat[0])
        if peer is None:
            return False
        ratchet = Ratchet.restore(peer.ratchet, clock=self.clock)
        if ratchet.busted is not None or _would_bust(peer.ratchet):
            return True
        return (peer.ratchet.last_encrypt_time != GO_ZERO_TIME_MS and ratchet.idle(self.idle_interval)
                and self.clock() - peer.made >= self.idle_interval)

    def requestedInvite(self) -> bool:
        """BR handleTransitiveIDInvite: we asked this mediator for this user."""
        assert self.arrival is not None and self.arrival.peer is not None
        invite = self._transitive_invite(self.message)
        return self.mediation == (self.arrival.peer, invite.public.identity)

    # Not used by bisonrelay.fsm, which runs the KXs as BR does: the conditions and the action
    # of a proposed fix for crossing resets (README.md, finding 1; tests/test_bisonrelay.py).

    def crossingReset(self) -> bool:
        """The reset invite that arrived is from the peer our own pending reset is for."""
        assert self.arrival is not None
        return self.inviting is not None and self.inviting.how == RESET and self.inviting.expected == self.arrival.peer

    def crossingYields(self) -> bool:
        """Of two crossing resets, the one with the smaller initial RV yields (the tie-break
        BR applies to auto-KX invites only, kx.autokx_yields): each side sees the RVs swapped,
        so exactly one side ignores the other's invite."""
        assert self.inviting is not None
        return self.crossingReset() and kx.autokx_yields(self.message.initialRendezvous,
                                                         self.inviting.pending.initial_rendezvous)

    def abandonInvite(self) -> None:
        """Our own pending invite is given up (we stop listening at its initial RV)."""
        self.inviting = None

    # --- actions

    def acceptInvite(self) -> None:
        assert self.invite is not None
        self._accept(self.invite, MANUAL)

    def createResetInvite(self) -> None:
        """client/kx.go requestReset: a new invite, new RVs, to the peer's reset RV."""
        target = self._reset_target()
        assert target is not None
        outgoing, identity = target
        pending, invite = self._drawing(kx.create_invite, self.claims or self.public)
        self.inviting = Inviting(pending, RESET, identity)
        b = self.machine.buffer
        b.public = self._wire_identity(invite.public)
        b.initialRendezvous, b.resetRendezvous = invite.initial_rendezvous, invite.reset_rendezvous
        self.outgoing = outgoing

    def resetChatRatchet(self) -> None:
        """The reset of the chat peer's ratchet (client/kx.go requestReset), as ResetRatchet's;
        the chat waits for it in the queue. BR gives the encrypt error to the user, who resets
        and sends again: the queue does that second step, so no chat is lost to a reset."""
        self.queueChat()
        target = self._reset_target(self.queued[-1][0])
        assert target is not None
        outgoing, identity = target
        pending, invite = self._drawing(kx.create_invite, self.public)
        self.inviting = Inviting(pending, RESET, identity)
        b = self.machine.buffer
        b.public = self._wire_identity(invite.public)
        b.initialRendezvous, b.resetRendezvous = invite.initial_rendezvous, invite.reset_rendezvous
        self.outgoing = outgoing
        self.machine.notify("ratchet reset", (self.who(identity),))

    def queueChat(self) -> None:
        """The chat waits until a reset of its peer's ratchet completes."""
        chat = self._chat()
        assert chat is not None
        self._chat_done()
        self.queued = (*self.queued, chat)

    def sendChat(self) -> None:
        """client.PM: RMPrivateMessage{message} over the ratchet with the chat's peer."""
        chat = self._chat()
        assert chat is not None
        self._chat_done()
        to, text = chat
        self.machine.buffer.message = text
        self.chats_sent = (*self.chats_sent, chat)
        peer = self.peer(to)
        self.chat_kx = (*self.chat_kx, peer.initial_rendezvous if peer is not None else b"")
        self._ratchet_send(to)

    def receiveChat(self) -> None:
        """handlePM: the message, recorded in order (and the ratchet message it came in)."""
        assert self.arrival is not None and self.arrival.peer is not None
        self.chats_received = (*self.chats_received, (self.arrival.peer, self.message.message))
        self.opened = (*self.opened, (self.arrival.peer, self.arrival.blob))

    def acceptResetInvite(self) -> None:
        """client/kx.go handleReset (admit checked the identity): accept it as any invite."""
        self._accept(self._invite_of(self.message), RESET)

    def requestMediation(self) -> None:
        assert self.mediator is not None and self.target is not None
        self.mediation = (self.mediator, self.target)
        self.machine.buffer.identity = self.target
        self._ratchet_send(self.mediator)

    def askTargetForInvite(self) -> None:
        """client_autokx.go handleMediateID: RMInvite{the requester's identity, from our
        address book} to the target."""
        assert self.arrival is not None
        requester = self.peer(self.arrival.peer)
        assert requester is not None
        self.machine.buffer.invitee = self._wire_identity(requester.public)
        self._ratchet_send(self.message.identity)

    def createTransitiveInvite(self) -> None:
        """client_autokx.go handleRMInvite: an invite for the invitee, sealed to its key
        (sendTransitive: seal_parts), through the mediator who asked."""
        assert self.arrival is not None and self.arrival.peer is not None
        invitee = self._identity_of(self.message.invitee)
        pending, invite = self._drawing(kx.create_invite, self.public)
        self.inviting = Inviting(pending, AUTOKX, invitee.identity, self.arrival.peer)
        m = self._module
        encoded = m.CODEC.encode(m.OOBPublicIdentityInvite(
            public=self._wire_identity(invite.public), initialRendezvous=invite.initial_rendezvous,
            resetRendezvous=invite.reset_rendezvous))
        ciphertext, box = self._drawing(kx.seal_parts, encoded, invitee.key)
        b = self.machine.buffer
        b.forIdentity, b.cipherText, b.box = invitee.identity, ciphertext, box
        self._ratchet_send(self.arrival.peer)

    def forwardTransitive(self) -> None:
        """client_rm_handlers.go handleTransitiveMsg: the same ciphertext and box, from the sender."""
        assert self.arrival is not None and self.arrival.peer is not None
        b = self.machine.buffer
        b.fromIdentity, b.cipherText, b.box = self.arrival.peer, self.message.cipherText, self.message.box
        self._ratchet_send(self.message.forIdentity)

    def acceptTransitiveInvite(self) -> None:
        invite = self._transitive_invite(self.message)
        self.mediation = None
        self._accept(invite, AUTOKX)

    def answerHalfKX(self) -> None:
        """client/kx.go handleStep2IDKX: complete (not alice), answer at the step-3 RV, stop
        listening at the initial RV: a second answer reaches no one."""
        assert self.inviting is not None
        m = self.message
        half = kx.RMOHalfKX(public=self._identity_of(m.public), half_kx=self._half_of(m.halfKX),
                            initial_rendezvous=m.initialRendezvous, reset_rendezvous=m.resetRendezvous)
        done, full = self._drawing(kx.answer_half_kx, self.identity, self.inviting.pending, half)
        inviting, self.inviting = self.inviting, None
        self._complete(done, INVITER, inviting.how, inviting.expected)
        self.machine.buffer.fullKX = self._wire_half(full.full_kx)
        self.outgoing = Outgoing(half.initial_rendezvous, half.public.key, "step3")

    def finishFullKX(self) -> None:
        """client/kx.go handleStep3IDKX: complete as alice."""
        assert self.accepting is not None
        full = kx.RMOFullKX(full_kx=self._half_of(self.message.fullKX))
        own, accepted = self.identity, self.accepting.accepted
        done: kx.CompletedKX = _kept(("finish", own, accepted, full), lambda: kx.finish_full_kx(own, accepted, full))
        accepting, self.accepting = self.accepting, None
        self._complete(done, ACCEPTOR, accepting.how, accepting.accepted.peer.identity)

    # --- peers: where `send ... to` posts (what the action before it chose)

    def _to(self, what: str) -> str:
        assert self.outgoing is not None and self.outgoing.what == what, (self.outgoing, what)
        return rv_address(self.outgoing.rv)

    def inviterRV(self) -> str:
        return self._to("initial")

    def acceptorRV(self) -> str:
        return self._to("step3")

    def peerResetRV(self) -> str:
        return self._to("reset")

    def mediatorRV(self) -> str:
        return self._to("ratchet")

    def targetRV(self) -> str:
        return self._to("ratchet")

    def recipientRV(self) -> str:
        return self._to("ratchet")

    def chatPeerRV(self) -> str:
        return self._to("ratchet")


if TYPE_CHECKING:
    def _conforms(device: BisonRelayDevice) -> PeerKXBindings:
        """mypy checks the device against the interface generated from bisonrelay.fsm."""
        return device
