"""A Status installation: the bindings of protocols/status/status.fsm.

One party is one installation (device) of an identity. What it keeps (`InstallationState`):
its signed prekeys (the current one and older ones, for late X3DH messages), its current
bundle (its own signed prekey and those of its approved installations, signed by the
identity key), the installations it knows (its own identity's and its contacts', from
bundles), its Double Ratchet sessions (one per (identity, installation, bundle id), the
bundle id being the responder's signed prekey, as status-go's ratchet_info_v2), the
newest bundle timestamp taken per sending installation, and the logs the invariants read
(chats sent with their recipients, chats received).

The envelope stands for Waku's: the sender's identity key and its recoverable signature
over the encoded message (status-go takes the sender's identity key from the transport,
spec 2.4.1 "IK_A is sent at the transport layer level"). `admit` checks everything a
remote party controls before the fsm sees a message: the bundles' signatures, and that
the entry for this installation decrypts. A refused message changes nothing.

The cryptography is protocols/status/crypto.py (X3DH, bundles) and ratchet.py (the
Double Ratchet), as status-go computes them. Their pure results are kept by their inputs
(`_kept`, `_drawing`), as protocols/bisonrelay/device.py does: the explorer runs one
computation in many worlds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from coincurve import PrivateKey, PublicKey

from protocols.status import crypto as sc
from protocols.status import ratchet as dr
from runtime.device import DeviceBase
from runtime.errors import EnvelopeError, VerificationError
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.status import ChatBindings

__all__ = ["EXPIRED_SESSION_KEPT", "STALE_AFTER", "Installation", "InstallationState", "PreKey", "SentChat",
           "Session", "StatusDevice", "topic"]

DAY = 24 * 60 * 60.0
STALE_AFTER = 7 * DAY
"""Spec 4.3: an installation missing from its identity's bundles for 7 days is stale, and
no message is sent to it (`targets`). STATUS-GO: not implemented there."""
EXPIRED_SESSION_KEPT = 14 * DAY
"""Spec 3.4: an expired session is kept 14 days for late messages, then deleted; so is an
expired signed prekey, which could otherwise make the session again from a late message's
X3DH header. STATUS-GO: neither is ever deleted there."""
BUNDLE_REFRESH_INTERVAL = DAY
"""Spec 2.3: bundles rotate once every 24 hours. status-go (encryptor.go CreateBundle with
BundleRefreshInterval = 24 h) rotates lazily: when it next makes a bundle (for every message
it sends) and its signed prekey was made more than 24 hours before, it marks that bundle
expired and makes a new one. So do we (`_create_bundle`); a quiet installation rotates at
its next message, not at the 24th hour."""

_NS = 1_000_000_000


def topic(identity: bytes) -> str:
    """The address of an identity's partitioned topic, where all its installations listen
    (status-go derives it from the public key; here: a prefix of its Keccak-256)."""
    return "topic:" + sc.keccak256(identity)[:6].hex()


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreKey:
    """One of our signed prekeys: its version (from 1), its key pair, when it was made
    (device clock; status-go's bundles.timestamp) and when it expired."""

    version: int
    private: bytes = field(repr=False)
    public: bytes
    created_at: float | None = None  # None: made before the installation started (setUp stamps it)
    expired_at: float | None = None


@dataclass(frozen=True, slots=True)
class Installation:
    """An installation we know of (status-go's installations and bundles tables): its
    identity, id, newest signed prekey, the timestamp of the newest bundle naming it
    (its last activity), whether it is enabled (a contact's always; our own once the user
    approved it), and since when (device clock) bundles of its identity leave it out."""

    identity: bytes
    installation_id: str
    prekey: bytes
    version: int
    timestamp: int
    enabled: bool
    missing_since: float | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A Double Ratchet session with one installation (status-go's ratchet_info_v2 and
    sessions rows): named by (identity, installation, bundle id = the responder's signed
    prekey); the X3DH shared key; our X3DH ephemeral key while unconfirmed (initiator:
    the X3DH header goes with every message until the peer's first answer arrives); the
    peer's ephemeral key (responder); when it expired (re-keying, spec 3.3: for good);
    since when it lost spec 3.2's tie-break to a concurrent session (it is used again if
    the winner expires). Usable for sending: neither."""

    identity: bytes
    installation_id: str
    bundle_id: bytes
    sk: bytes = field(repr=False)
    state: dr.SessionState
    initiator: bool
    ephemeral: bytes | None = None
    peer_ephemeral: bytes | None = None
    expired_at: float | None = None
    superseded_at: float | None = None

    @property
    def usable(self) -> bool:
        return self.expired_at is None and self.superseded_at is None


@dataclass(frozen=True, slots=True)
class SentChat:
    """A chat message we sent: to which identity, its plaintext, the installations
    (identity, id) it was encrypted to, and those of our own identity it owes a copy
    (enabled when it was sent: the fan-out, for the invariants)."""

    to: bytes
    plaintext: bytes
    recipients: tuple[tuple[bytes, str], ...]
    own: tuple[tuple[bytes, str], ...] = ()


@dataclass(frozen=True, slots=True)
class InstallationState:
    prekeys: tuple[PreKey, ...]
    bundle: sc.Bundle | None
    installations: tuple[Installation, ...]
    sessions: tuple[Session, ...]
    newest: tuple[tuple[bytes, str, int], ...]
    sent: tuple[SentChat, ...]
    received: tuple[tuple[bytes, str, bytes], ...]
    counter: int
    compose: tuple[bytes, str] | None
    asked: tuple[tuple[str, str], ...]
    # For people and for the forward-secrecy check: tell no states apart.
    history: tuple[tuple[bytes, str, bytes, dr.Message], ...] = field(compare=False)
    message: Any = field(compare=False)
    sender: tuple[bytes, str] | None = field(compare=False)
    rejected: tuple[str, ...] = field(compare=False)


# --- kept computations --------------------------------------------------------------------

_MEMO: dict[Any, Any] = {}
_MEMO_SIZE = 16384


def _kept(key: Any, compute: Callable[[], Any]) -> Any:
    hit = _MEMO.get(key)
    if hit is None:
        try:
            hit = (compute(), None)
        except VerificationError as e:
            hit = (None, e)
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[key] = hit
    if hit[1] is not None:
        raise hit[1].with_traceback(None)
    return hit[0]


def _sign(private: bytes, data: bytes) -> bytes:
    sig: bytes = _kept(("sign", private, data),
                       lambda: PrivateKey(private).sign_recoverable(sc.keccak256(data), hasher=None))
    return sig


def _recover(sig: bytes, data: bytes) -> bytes:
    def compute() -> bytes:
        try:
            return PublicKey.from_signature_and_message(sig, sc.keccak256(data), hasher=None).format(compressed=True)
        except ValueError as e:
            raise EnvelopeError(f"envelope signature: {e}") from e
    key: bytes = _kept(("recover", sig, data), compute)
    return key


def _verify_bundle(bundle: sc.Bundle) -> bytes:
    key: bytes = _kept(("bundle", bundle), lambda: sc.verify_bundle(bundle))
    return key


def _signed_bundle(private: bytes, bundle: sc.Bundle) -> sc.Bundle:
    sig: bytes = _kept(("sign-bundle", private, bundle), lambda: sc.sign_bundle(private, bundle))
    return replace(bundle, signature=sig)


def _decrypts(state: dr.SessionState, message: dr.Message) -> bool:
    def compute() -> bool:
        try:
            dr.ratchet_decrypt(state, message, _no_random)
        except (dr.RatchetError, sc.StatusCryptoError):
            return False
        return True
    ok: bool = _kept(("decrypts", state, message), compute)
    return ok


def _no_random(n: int) -> bytes:
    return bytes(n - 1) + b"\x01"  # a valid scalar: only for trial decryptions


def _initiate(own_private: bytes, identity: bytes, prekey: bytes, random: sc.Random) -> tuple[bytes, bytes, Any]:
    """X3DH as initiator and the Double Ratchet's initial state: (sk, ephemeral public, state)."""
    sk, ephemeral = sc.x3dh_initiate(own_private, identity, prekey, random)
    return sk, ephemeral.public, dr.initiate(sk, prekey, random)


def _respond(own_private: bytes, prekey_private: bytes, identity: bytes, ephemeral: bytes) -> tuple[bytes, Any]:
    sk = sc.x3dh_shared_key_responder(own_private, prekey_private, identity, ephemeral)
    return sk, dr.accept(sk, prekey_private)


def _decrypt(state: dr.SessionState, message: dr.Message, random: sc.Random) -> tuple[dr.SessionState, bytes]:
    return dr.ratchet_decrypt(state, message, random)


# --- the device ---------------------------------------------------------------------------


@dataclass(eq=False)
class StatusDevice(DeviceBase[InstallationState]):
    """One installation of an identity."""

    name: str
    identity_name: str
    identity_private: bytes = field(repr=False)
    identity: bytes
    installation_id: str
    directory: Any  # identity name -> public key (immutable mapping), for the user's `to`
    rng: SeededRandom = field(default_factory=SeededRandom)
    lost_at: float | None = None  # from this time on (the scenario's phone is gone) it takes nothing
    machine: Any = None
    prekeys: tuple[PreKey, ...] = ()
    bundle: sc.Bundle | None = None
    installations: tuple[Installation, ...] = ()
    sessions: tuple[Session, ...] = ()
    newest: tuple[tuple[bytes, str, int], ...] = ()
    sent: tuple[SentChat, ...] = ()
    received: tuple[tuple[bytes, str, bytes], ...] = ()
    counter: int = 0
    compose: tuple[bytes, str] | None = None
    # The user's requests, for the invariants (parties.before_event): ("RotateBundle", ""),
    # ("PairDevices", ""), ("ApproveInstallation", the installation pending then, or "").
    asked: tuple[tuple[str, str], ...] = ()
    history: tuple[tuple[bytes, str, bytes, dr.Message], ...] = ()
    message: Any = None
    sender: tuple[bytes, str] | None = None
    rejected: tuple[str, ...] = ()

    def snapshot(self) -> InstallationState:
        return InstallationState(self.prekeys, self.bundle, self.installations, self.sessions, self.newest,
                                 self.sent, self.received, self.counter, self.compose, self.asked, self.history,
                                 self.message, self.sender, self.rejected)

    def restore(self, state: InstallationState) -> None:
        self.prekeys, self.bundle, self.installations = state.prekeys, state.bundle, state.installations
        self.sessions, self.newest, self.sent, self.received = state.sessions, state.newest, state.sent, state.received
        self.counter, self.compose, self.asked, self.history = state.counter, state.compose, state.asked, state.history
        self.message, self.sender, self.rejected = state.message, state.sender, state.rejected

    # --- helpers

    @property
    def buffer(self) -> Any:
        return self.machine.buffer

    @property
    def _types(self) -> Any:
        return sys.modules[type(self.machine).__module__]

    def _random(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def _drawing(self, compute: Any, *args: Any) -> Any:
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

    def _peek(self, compute: Any, *args: Any) -> Any:
        """What `_drawing` would return, leaving the random source as it is (for admit)."""
        saved = self.rng.getstate()
        try:
            return self._drawing(compute, *args)
        finally:
            self.rng.setstate(saved)

    def now(self) -> float:
        return self.clock()

    def lost(self) -> bool:
        """Whether the scenario's phone is gone (`lost_at`): it takes no message, sends none."""
        return self.lost_at is not None and self.now() >= self.lost_at

    def current_prekey(self) -> PreKey:
        return self.prekeys[-1]

    def own_installations(self, enabled: bool | None = None) -> tuple[Installation, ...]:
        return tuple(i for i in self.installations if i.identity == self.identity
                     and (enabled is None or i.enabled == enabled))

    def _stale(self, inst: Installation) -> bool:
        return inst.missing_since is not None and self.now() - inst.missing_since >= STALE_AFTER

    def targets(self, identity: bytes) -> tuple[Installation, ...]:
        """Whom a message to `identity` is encrypted to: its enabled installations that are
        not stale, the most recently active first, at most MAX_INSTALLATIONS (our own:
        MAX_INSTALLATIONS - 1 besides us; status-go GetActiveInstallations)."""
        cap = sc.MAX_INSTALLATIONS - 1 if identity == self.identity else sc.MAX_INSTALLATIONS
        found = [i for i in self.installations if i.identity == identity and i.enabled and not self._stale(i)]
        found.sort(key=lambda i: (-i.timestamp, i.installation_id))
        return tuple(found[:cap])

    def active_session(self, identity: bytes, installation_id: str) -> Session | None:
        """The session messages to the installation use: of the unexpired ones, the one
        whose shared key sorts first (spec 3.2). STATUS-GO: GetAnyRatchetInfo takes any
        unexpired one (LIMIT 1 without ORDER BY)."""
        live = [s for s in self.sessions if s.identity == identity and s.installation_id == installation_id
                and s.expired_at is None]
        return min(live, key=lambda s: s.sk) if live else None

    def _session(self, identity: bytes, installation_id: str, bundle_id: bytes) -> Session | None:
        return next((s for s in self.sessions if (s.identity, s.installation_id, s.bundle_id)
                     == (identity, installation_id, bundle_id) and self._retained(s)), None)

    def _retained(self, record: Session | PreKey) -> bool:
        """Spec 3.4: not yet 14 days past its expiry (a session's or prekey's; a session also
        14 days past losing the tie-break). What is not retained is gone whether `_prune`
        has dropped it yet or not: `admit`, which changes nothing, sees what `_prune` would."""
        now = self.now()
        if record.expired_at is not None and now - record.expired_at >= EXPIRED_SESSION_KEPT:
            return False
        superseded = getattr(record, "superseded_at", None)
        return superseded is None or now - superseded < EXPIRED_SESSION_KEPT

    def _put_session(self, new: Session) -> None:
        """Store a session, and settle which one is used (`_settle`)."""
        key = (new.identity, new.installation_id, new.bundle_id)
        others = tuple(s for s in self.sessions if (s.identity, s.installation_id, s.bundle_id) != key)
        self.sessions = tuple(sorted((*others, new), key=lambda s: (s.identity, s.installation_id, s.bundle_id)))
        self._settle()

    def _settle(self) -> None:
        """Spec 3.2: of the unexpired sessions with an installation, the one whose shared key
        sorts first is used, the others are marked superseded. Not expired for good: if the
        winner expires later (re-keying, spec 3.3), the next one is used again. Two
        installations may expire different sessions (one rotated its prekey before the
        other's concurrent X3DH message arrived); the tie-break over what each still has
        unexpired converges then, a stored expiry did not (README.md, finding 3)."""
        now = self.now()
        winners: dict[tuple[bytes, str], bytes] = {}
        for s in self.sessions:
            if s.expired_at is None:
                k = (s.identity, s.installation_id)
                if k not in winners or s.sk < winners[k]:
                    winners[k] = s.sk
        settled = []
        for s in self.sessions:
            if s.expired_at is None:
                win = winners[(s.identity, s.installation_id)] == s.sk
                if win and s.superseded_at is not None:
                    s = replace(s, superseded_at=None)
                elif not win and s.superseded_at is None:
                    s = replace(s, superseded_at=now)
                    self.machine.notify("concurrent sessions", (s.installation_id, "kept "
                                                                + winners[(s.identity, s.installation_id)].hex()[:8]))
            settled.append(s)
        self.sessions = tuple(settled)

    def _prune(self) -> None:
        """Spec 3.4: expired sessions are deleted 14 days after they expired (superseded
        ones too, 14 days after they lost the tie-break)."""
        self.sessions = tuple(s for s in self.sessions if self._retained(s))
        self.prekeys = tuple(p for p in self.prekeys if self._retained(p))  # the current one never expired

    def _rebundle(self) -> None:
        """Our bundle: our current signed prekey and our approved installations' (status-go
        CreateBundle over GetOurActiveInstallations), newer than the last one."""
        pre = self.current_prekey()
        keys = {self.installation_id: sc.SignedPreKey(signed_pre_key=pre.public, version=pre.version,
                                                      protocol_version=sc.PROTOCOL_VERSION)}
        for inst in self.targets(self.identity):
            keys[inst.installation_id] = sc.SignedPreKey(signed_pre_key=inst.prekey, version=inst.version,
                                                         protocol_version=sc.PROTOCOL_VERSION)
        stamp = int(self.now() * _NS)
        if self.bundle is not None:
            stamp = max(stamp, self.bundle.timestamp + 1)
        unsigned = sc.Bundle.create(self.identity, keys, timestamp=stamp)
        self.bundle = _signed_bundle(self.identity_private, unsigned)

    # --- wire records

    def _bundle_record(self, bundle: sc.Bundle) -> Any:
        t = self._types
        entries = tuple(t.PreKeyEntry(installationId=iid, signedPreKey=t.SignedPreKey(
            signedPreKey=k.signed_pre_key, version=k.version, protocolVersion=k.protocol_version))
            for iid, k in bundle.signed_pre_keys)
        return t.Bundle(identity=bundle.identity, signedPreKeys=entries, signature=bundle.signature,
                        timestamp=bundle.timestamp)

    @staticmethod
    def bundle_of(record: Any) -> sc.Bundle:
        """The crypto module's Bundle of a wire Bundle record."""
        try:
            return sc.Bundle.create(bytes(record.identity), [
                (e.installationId, sc.SignedPreKey(signed_pre_key=bytes(e.signedPreKey.signedPreKey),
                                                   version=e.signedPreKey.version,
                                                   protocol_version=e.signedPreKey.protocolVersion))
                for e in record.signedPreKeys], signature=bytes(record.signature), timestamp=record.timestamp)
        except (TypeError, ValueError) as e:
            raise sc.BundleError("bundle", str(e)) from e

    @staticmethod
    def _entry_for(message: Any, installation_id: str) -> Any:
        return next((e.message for e in getattr(message, "encrypted", ()) if e.installationId == installation_id),
                    None)

    @staticmethod
    def _dr_message(entry: Any) -> dr.Message:
        h = entry.drHeader
        return dr.Message(dh=bytes(h.key), n=h.n, pn=h.pn, payload=bytes(entry.payload))

    # --- the driver's side

    def listening(self) -> frozenset[str]:
        return frozenset({topic(self.identity)})

    def capture(self, message: Any, to: str | None = None) -> str:
        return self.installation_id

    def describe(self, captured: str) -> str:
        return captured

    def seal(self, message: Any, data: bytes, captured: str) -> bytes:
        return self.identity + _sign(self.identity_private, data) + data

    def open(self, data: bytes) -> tuple[bytes, bytes]:
        if len(data) < sc.PUBLIC_KEY_SIZE + sc.SIGNATURE_SIZE:
            raise EnvelopeError(f"an envelope is at least {sc.PUBLIC_KEY_SIZE + sc.SIGNATURE_SIZE} bytes")
        identity = data[:sc.PUBLIC_KEY_SIZE]
        sig = data[sc.PUBLIC_KEY_SIZE:sc.PUBLIC_KEY_SIZE + sc.SIGNATURE_SIZE]
        body = data[sc.PUBLIC_KEY_SIZE + sc.SIGNATURE_SIZE:]
        if sig[64] >= 4:
            raise EnvelopeError("envelope signature: invalid recovery id")
        if _recover(sig, body) != identity:
            raise EnvelopeError("envelope signature: not the sender identity's")
        return body, identity

    def admit(self, message: Any, identity: bytes) -> str | None:
        """Everything checked before anything changes. STATUS-GO: HandleMessage stores the
        bundles (ProcessPublicBundle) before DecryptPayload, so a failing message changes
        the receiver's installations there."""
        sender = message.installationId
        if self.lost():
            return "this installation is lost"
        if identity == self.identity and sender == self.installation_id:
            return "own message"
        try:
            for record in message.bundles:
                bundle = self.bundle_of(record)
                if _verify_bundle(bundle) != identity:
                    return "a bundle of another identity than the sender's"
            entry = self._entry_for(message, self.installation_id)
            if entry is not None:
                self._open_entry(identity, sender, entry, peek=True)
        except VerificationError as e:
            return str(e)
        return None

    def receiving(self, message: Any, identity: bytes | None) -> None:
        self.message = message
        self.sender = None if message is None or identity is None else (identity, message.installationId)

    def material_digest(self) -> str:
        """The shared keys of our usable sessions: two installations with one session
        between them, the same digest."""
        return b"".join(sorted(s.sk for s in self.sessions if s.usable)).hex()

    def timed_out(self, state: str) -> None:
        self.rejected = (*self.rejected, f"timeout in {state}")

    # --- receiving an entry

    def _open_entry(self, identity: bytes, installation_id: str, entry: Any, *, peek: bool) -> tuple[Session, bytes]:
        """Our entry of a message from (identity, installation): the session after it and the
        plaintext, or a VerificationError (RatchetError, StatusCryptoError) and nothing changed.
        An X3DH header for a session we do not have yet makes it from our signed prekey
        (status-go keyFromPassiveX3DH); the DR header's id names the session."""
        bundle_id = bytes(entry.drHeader.id)
        session = self._session(identity, installation_id, bundle_id)
        x3dh = entry.x3dhHeader
        if x3dh is not None and (session is None or (not session.initiator
                                                     and session.peer_ephemeral != bytes(x3dh.key))):
            if bytes(x3dh.id) != bundle_id:
                raise dr.RatchetError(dr.Stage.HEADER, "the X3DH header names another bundle than the DR header")
            prekey = next((p for p in self.prekeys if p.public == bundle_id and self._retained(p)), None)
            if prekey is None:
                raise dr.RatchetError(dr.Stage.INITIAL, "no signed prekey of ours with this bundle id")
            sk, state = _kept(("respond", self.identity_private, prekey.private, identity, bytes(x3dh.key)),
                              lambda: _respond(self.identity_private, prekey.private, identity, bytes(x3dh.key)))
            session = Session(identity, installation_id, bundle_id, sk, state, initiator=False,
                              peer_ephemeral=bytes(x3dh.key),
                              expired_at=None if prekey.expired_at is None else self.now())
        if session is None:
            raise dr.RatchetError(dr.Stage.INITIAL, "no session with this bundle id (errSessionNotFound)")
        message = self._dr_message(entry)
        run = self._peek if peek else self._drawing
        state, plaintext = run(_kept_decrypt, session.state, message)
        # RatchetInfoConfirmed: an answer in the session ends the X3DH headers.
        return replace(session, state=state, ephemeral=None), plaintext

    # --- conditions

    def hasRecipient(self) -> bool:
        return self.compose is not None and not self.lost() and bool(self.targets(self.compose[0]))

    def hasOwnDevices(self) -> bool:
        return bool(self.targets(self.identity))

    def entryForUs(self) -> bool:
        return self._entry_for(self.message, self.installation_id) is not None

    def fromOtherIdentity(self) -> bool:
        return self.sender is not None and self.sender[0] != self.identity

    def installationPending(self) -> bool:
        return bool(self.own_installations(enabled=False)) and \
            len(self.own_installations(enabled=True)) < sc.MAX_INSTALLATIONS - 1

    # --- actions

    def setUp(self) -> None:
        # The prekeys made with the installation are as old as its start on its clock
        # (the simulator's clock starts at 0; a real run's is the wall clock).
        self.prekeys = tuple(replace(p, created_at=self.now()) if p.created_at is None else p
                             for p in self.prekeys)
        if self.bundle is None:
            self._rebundle()

    def _encrypt_to(self, targets: tuple[Installation, ...], plaintext: bytes) -> tuple[Any, ...]:
        t = self._types
        entries = []
        for inst in targets:
            session = self.active_session(inst.identity, inst.installation_id)
            if session is None:
                sk, ephemeral, state = self._drawing(_initiate, self.identity_private, inst.identity, inst.prekey)
                session = Session(inst.identity, inst.installation_id, inst.prekey, sk, state, initiator=True,
                                  ephemeral=ephemeral)
            state, message = _encrypted(session.state, plaintext)
            x3dh = None if session.ephemeral is None else t.X3DHHeader(key=session.ephemeral, id=session.bundle_id)
            entries.append(t.EncryptedEntry(installationId=inst.installation_id, message=t.EncryptedMessage(
                x3dhHeader=x3dh, drHeader=t.DRHeader(key=message.dh, n=message.n, pn=message.pn,
                                                     id=session.bundle_id),
                payload=message.payload)))
            self._put_session(replace(session, state=state))
        return tuple(entries)

    def _fill(self, entries: tuple[Any, ...]) -> None:
        assert self.bundle is not None
        self.buffer.installationId = self.installation_id
        self.buffer.bundles = (self._bundle_record(self.bundle),)
        self.buffer.encrypted = entries

    def encryptForPeer(self) -> None:
        """status-go BuildEncryptedMessage: the chat, encrypted pairwise to each target
        installation of the peer, with our bundle."""
        assert self.compose is not None
        self._prune()
        # status-go addBundle -> CreateBundle -> SignBundle: every message's bundle is
        # re-signed with the time of sending, so receivers take it as newer.
        self._create_bundle()
        to, text = self.compose
        self.counter += 1
        plaintext = f"{self.counter}:{text}".encode()
        targets = self.targets(to)
        self._fill(self._encrypt_to(targets, plaintext))
        self.sent = (*self.sent, SentChat(to, plaintext, _keys(targets), _keys(self.targets(self.identity))))
        self.compose = None

    def encryptForOwnDevices(self) -> None:
        """The same chat to our other enabled installations (status-go sends it to our own
        identity too: every device holds the conversation)."""
        last = self.sent[-1]
        targets = self.targets(self.identity)
        # An entry-less message to our own topic would be read by nobody (and tell the
        # network we sent something): the fsm asks hasOwnDevices first.
        assert targets, "encryptForOwnDevices without an own installation to encrypt to"
        self._fill(self._encrypt_to(targets, last.plaintext))
        self.sent = (*self.sent[:-1], replace(last, recipients=last.recipients + _keys(targets)))

    def receiveChat(self) -> None:
        assert self.sender is not None
        identity, installation_id = self.sender
        self._prune()
        entry = self._entry_for(self.message, self.installation_id)
        session, plaintext = self._open_entry(identity, installation_id, entry, peek=False)
        self._put_session(session)
        self.received = (*self.received, (identity, installation_id, plaintext))
        kept = (identity, installation_id, session.bundle_id, self._dr_message(entry))
        self.history = (*self.history[-3:], kept)
        self.machine.notify("chat", (plaintext.decode(errors="replace"),))

    def takeBundles(self) -> None:
        """status-go ProcessPublicBundle for each bundle of the message (already verified):
        new installations (a contact's enabled; our own pending the user's approval), newer
        signed prekeys (spec 3.3: the sessions we made from the older one expire, and a new
        one is made on the next message), the stale-device timers (spec 4.3). A bundle no
        newer than the last taken from the same sending installation changes nothing."""
        assert self.sender is not None
        identity, sender = self.sender
        now = self.now()
        changed = False
        for record in self.message.bundles:
            bundle = self.bundle_of(record)
            last = next((ts for i, s, ts in self.newest if (i, s) == (identity, sender)), None)
            if last is not None and bundle.timestamp <= last:
                continue
            self.newest = tuple(sorted([(i, s, ts) for i, s, ts in self.newest if (i, s) != (identity, sender)]
                                       + [(identity, sender, bundle.timestamp)]))
            known = {(i.identity, i.installation_id): i for i in self.installations}
            named = set()
            for iid, key in bundle.signed_pre_keys:
                if iid == self.installation_id and identity == self.identity:
                    continue
                named.add(iid)
                old = known.get((identity, iid))
                if old is None:
                    known[(identity, iid)] = Installation(identity, iid, key.signed_pre_key, key.version,
                                                          bundle.timestamp, enabled=identity != self.identity)
                    if identity == self.identity:
                        self.machine.notify("new installation to approve", (iid,))
                    changed = True
                    continue
                new = replace(old, timestamp=max(old.timestamp, bundle.timestamp), missing_since=None)
                if key.version > old.version:
                    new = replace(new, prekey=key.signed_pre_key, version=key.version)
                    self.sessions = tuple(replace(s, expired_at=now) if s.identity == identity
                                          and s.installation_id == iid and s.initiator and s.bundle_id == old.prekey
                                          and s.expired_at is None else s for s in self.sessions)
                    self._settle()
                    self.machine.notify("re-keying", (iid, f"version {key.version}"))
                    changed = True
                known[(identity, iid)] = new
            for k, inst in known.items():
                if inst.identity == identity and inst.installation_id not in named and inst.missing_since is None:
                    known[k] = replace(inst, missing_since=now)
            self.installations = tuple(sorted(known.values(), key=lambda i: (i.identity, i.installation_id)))
        if changed and identity == self.identity:
            self._rebundle()

    def advertiseBundle(self) -> None:
        """Spec 4.4 / pairing: an empty message with our bundle, re-signed now (status-go
        GetBundle -> CreateBundle -> SignBundle)."""
        self._create_bundle()
        assert self.bundle is not None
        self.buffer.installationId = self.installation_id
        self.buffer.bundles = (self._bundle_record(self.bundle),)

    def _create_bundle(self) -> None:
        """status-go CreateBundle: rotate if our signed prekey is older than
        BUNDLE_REFRESH_INTERVAL, then re-sign the bundle."""
        created = self.current_prekey().created_at
        if created is not None and self.now() - created >= BUNDLE_REFRESH_INTERVAL:
            self.rotateBundle()
        else:
            self._rebundle()

    def rotateBundle(self) -> None:
        """A new signed prekey, one version up; the sessions peers made from the old one
        expire (status-go MarkBundleExpired), and our next bundles carry the new one."""
        now = self.now()
        old = self.current_prekey()
        pair = self._drawing(sc.new_key_pair)
        self.prekeys = (*(replace(p, expired_at=now) if p is old else p for p in self.prekeys),
                        PreKey(old.version + 1, pair.private, pair.public, created_at=now))
        self.sessions = tuple(replace(s, expired_at=now) if not s.initiator and s.bundle_id == old.public
                              and s.expired_at is None else s for s in self.sessions)
        self._settle()
        self._rebundle()
        self.machine.notify("bundle rotated", (f"version {old.version + 1}",))

    def approveInstallation(self) -> None:
        pending = self.own_installations(enabled=False)[0]
        self.installations = tuple(replace(i, enabled=True) if i is pending else i for i in self.installations)
        self._rebundle()
        self.machine.notify("installation approved", (pending.installation_id,))

    # --- peers

    def peerTopic(self) -> str:
        assert self.compose is not None or self.sent
        return topic(self.sent[-1].to)

    def ownTopic(self) -> str:
        return topic(self.identity)

    def senderTopic(self) -> str:
        assert self.sender is not None
        return topic(self.sender[0])


def _keys(installations: tuple[Installation, ...]) -> tuple[tuple[bytes, str], ...]:
    """Installations as (identity, installation id), as a SentChat records them."""
    return tuple((i.identity, i.installation_id) for i in installations)


def _encrypted(state: dr.SessionState, plaintext: bytes) -> tuple[dr.SessionState, dr.Message]:
    kept: tuple[dr.SessionState, dr.Message] = _kept(("encrypt", state, plaintext),
                                                     lambda: dr.ratchet_encrypt(state, plaintext))
    return kept


def _kept_decrypt(state: dr.SessionState, message: dr.Message, random: sc.Random) -> tuple[dr.SessionState, bytes]:
    return _decrypt(state, message, random)


if TYPE_CHECKING:
    def _conforms(device: StatusDevice) -> ChatBindings:
        """mypy checks the device against the interface generated from status.fsm."""
        return device
