"""Berty's device linking: the bindings of the fsm DeviceLinking (protocols/berty/berty.fsm).

## Device linking (notes)

The Berty protocol document ("Linking Devices") gives the steps and the three challenges,
not the messages: its sequence figure is missing, and berty/weshnet has no linking code
(a new device there restores an exported account). So the sequence, the messages and the
constructions below are ours, from the document's text; each choice says why.

**Who.** A is a device of the account (it holds the account's secrets), B the new device.
An account holds, per "Account" and "Account Group": the Account ID key pair, the Alias
key pair, the public rendezvous seed, and the account group's keys and secrets, made at
the creation of the account as a multi-member group's are (the group ID public key, its
private key then discarded; the group secret; the group secret sig, the group ID key's
signature of the secret; the attachment key). `Account` holds exactly these; the account's
contact list, groups and settings then synchronise through the account group, which the
model does not run. Every device has its own Device ID key pair, which never leaves it.

**The sequence** (the document's steps 1 to 3, then our reading of the missing figure):

1. B generates its Device ID key pair (a scenario draws it when the devices are made).
2. A displays an invitation: A's peer ID and a one-time token, as a QR code or a URL. The
   user scans it with B: out of band, so a scenario hands it over when the devices are
   made (`link_to = "a"`). The peer ID names A's device key (a libp2p peer ID is the hash
   of the peer's public key): here A's party name, to address it, and A's Device ID.
3. B -> A **LinkRequest** {B's device ID, the token}. A takes the first request that
   carries the token of its open invitation, and the invitation is then spent: a replayed
   or a second request opens no second challenge, and a stranger who knows A's peer ID
   (it is announced on rendezvous points, it is not secret) cannot open challenge dialogs
   on A at will. A chooses the challenge ("the state diagram to choose a challenge", also
   missing, read from the text): the fingerprint when A's user asked for it (scripted
   linking: `fingerprint = true`), else the QR code when A has a camera (`camera =
   true`), else the PIN.
4. A -> B **LinkChallenge** {the device ID of the request, the challenge}. B takes it only
   from A (the stream to the peer of the invitation) and only for its own device ID.
5. The challenge, with the user:
   - *QR code*: B displays a QR code of its device ID's fingerprint
     (`crypto.linking_qr_payload`); A's user scans it (**ScanQRCode**) and A checks it is
     the fingerprint of the device ID in the request (`crypto.verify_linking_qr`).
   - *PIN*: A displays a 6-digit PIN; B's user types it (**EnterPin**); B -> A
     **PinResponse** {B's signature, with its device key, of the PIN}
     (`crypto.sign_linking_pin`, the context being A's device ID and the token, so that a
     signature belongs to this invitation); A verifies it with the device ID of the
     request. The PIN has one attempt: a signature from the requester that does not
     verify ends the linking, which bounds a guesser to one chance in 10^6.
   - *Fingerprint*: A and B display the fingerprint of B's device ID
     (`crypto.display_fingerprint`); A's user confirms (**ConfirmFingerprint**) or rejects
     (**RejectFingerprint**) that they are equal.
   A mismatched QR code, a wrong PIN or a rejected fingerprint ends the linking: the
   device that asked is not the one the user holds, and A sends nothing more.
6. On success A -> B **AccountSecrets** {the account's secrets, sealed to the device ID A
   verified}, and B becomes a device of the account (its `account`). On failure nothing
   leaves A and the invitation is closed; B learns it by its timeout (the fsm's
   threshold, 120 s) and gives up (Unlinked). A new attempt takes a new invitation.

**The transfer of the secrets.** A NaCl secretbox (XSalsa20-Poly1305) under

    SHA-256("fsmc/berty/linking-account-secrets/v1" ‖ x.y ‖ A's device ID ‖ B's device ID ‖ token)

where `x.y` is box.Precompute (HSalsa20 over X25519, as weshnet's handshake computes its
secrets) of A's and B's device keys converted to X25519 (libsodium's conversion, as
crypto.py does for account keys), with a fresh random 24-octet nonce sent before the
box. Why this:
- *to B's device ID*: only the holder of the device key A verified can open it. A device
  that requests with another's device ID (it saw B's request) and passes the challenge
  on B's behalf gets a box it cannot open.
- *from A's device key*, not an anonymous sealed box: B's device ID is public (it travels
  in the clear in step 3), so anyone could seal an account to it; B accepts only a box
  that opens with the device key of the invitation's peer ID, so no one can make B join
  another account (an account-injection attack: B would then sync its user's data there).
- *the label, both device IDs and the token in the key*: the key serves this purpose,
  these two devices and this invitation only; as the token is single-use, each key seals
  one box. No forward secrecy: a later thief of A's or B's device key could open a
  recorded box, but such a thief holds the account's secrets anyway (each device stores
  them beside its device key).
- B also checks what it opened: exactly 256 octets, and the group secret sig verifying
  with the group ID key, over the group secret.

**What the model leaves out.** The libp2p stream and its secure channel (the plain
envelope names the sender and proves nothing; the boxes and signatures prove what
matters); several invitations, or a linked device linking others (the document allows
it: "there is no hierarchy between devices"); device revocation (the document: impossible);
the synchronisation over the account group after linking.

**What the user does, in scenarios.** The user is physically present at both devices, so
what they carry between them is configuration made when the devices are made: A's PIN is
drawn from A's seeded random source then (it is shown when the PIN challenge starts, and
used once, as the invitation is); B's table says which PIN the user types
(`types_pin_of = "a"`, the default for an honest device linking to A, or
`types_wrong_pin = true`); A's table says whose QR code the user scans (`scans = "b"`,
the default being the one honest device linking to A; `scans = "mallory"` scans an
attacker's). A fingerprint is compared by the user, who answers ConfirmFingerprint or
RejectFingerprint: the explorer tries both.

**Scenarios** (scenarios/link_*.toml; explored with their `[explore]` settings, and by
tests/test_berty_linking.py under loss, dup, reorder and replay with one timeout each:
complete, no invariant violated):

| scenario | outcome | states (own settings) | states (every fault) |
| --- | --- | --- | --- |
| link_qr_code | the user scans B's code: B linked | 60 | 141 |
| link_qr_mismatch | the user scans another new device's code: refused, nothing leaves A | 511 | 1,081 |
| link_pin | the user types A's PIN on B: B linked | 68 | 174 |
| link_wrong_pin | a wrong PIN: its one attempt spent, refused | 62 | 156 |
| link_fingerprint | scripted linking, the user confirms: B linked | 61 | 138 |
| link_fingerprint_rejected | the user rejects: refused (explored after the answer) | 4 | 4 |
| link_attacker_qr | Mallory has the invitation and asks first: the scan of B's code refuses her | 511 | 1,081 |
| link_attacker_pin | the same with the PIN: her guess spends it, refused | 656 | 1,386 |
| link_attacker_claims_id | Mallory asks first with B's ID: the box, sealed to it, does not open for her | 418 | 1,031 |

**Findings.**
1. *An attacker who has the invitation can spend it* (link_attacker_*): her request,
   first, takes the one-time token, and B's finds A busy. She gets no secret (the QR code
   or PIN challenge stops her), but B is not linked: a denial of service, the price of
   the single-use token that makes replays harmless.
2. *A device ID claimed by another* (link_attacker_claims_id): the challenge checks the
   device ID, not who will receive the box. Mallory asks with B's ID, the user scans B's
   code, which matches, and A seals the secrets to B's ID and sends them to Mallory. She
   cannot open them, but A believes B linked. An authenticated stream whose peer key is
   the device key would close it, or B's signed acknowledgement before A shows success;
   the model keeps the document's messages and shows the effect.
3. *The fingerprint challenge admits whom the user confirms*: with Mallory's request first
   and a user who confirms without reading, Mallory joins the account (the explorer
   reaches it; `attackers_stay_out` excuses only a fingerprint the user confirmed). The
   document says as much; A offers it only when asked for.
4. *B learns of a refusal by its timeout*: nothing leaves A on failure, not even a
   refusal, so B waits out the fsm's threshold.
5. *A modelling shortcut*: the explorer lets A's user scan while B's challenge is still
   on its way (or lost), which no user could; harmless, since the code scanned is B's
   either way and the box is sealed to the ID checked.

Bad input (tests/test_berty_linking.py): random bytes, a truncated message, a wrong
token, an unusable or A's own device ID, a challenge for another device or from another
peer, a box under another key or invitation or around something not an account, a message
of another step, a message of the other fsm: each is dropped or rejected with its step
and reason, and changes nothing. The exception is by design: a PIN signature from the
requester that does not verify spends the PIN (one attempt), and ends the linking.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from nacl.bindings import crypto_box_beforenm, crypto_secretbox, crypto_secretbox_open, crypto_sign_open
from nacl.exceptions import CryptoError

from protocols.berty import crypto
from protocols.berty.crypto import Ed25519KeyPair, HandshakeError
from runtime.device import DeviceBase
from runtime.errors import UsageError, VerificationError
from runtime.framing import NamedEnvelope
from runtime.seeded import SeededRandom

if TYPE_CHECKING:
    from generated.berty import DeviceLinkingBindings

__all__ = [
    "ACCOUNT_SIZE",
    "CHALLENGES",
    "FINGERPRINT",
    "PIN",
    "PIN_DIGITS",
    "QR_CODE",
    "SECRETS_LABEL",
    "TOKEN_SIZE",
    "Account",
    "AccountGroup",
    "Invitation",
    "LinkingDevice",
    "LinkingError",
    "LinkingState",
    "LinkingStep",
    "draw_pin",
    "open_account",
    "pin_context",
    "seal_account",
    "secrets_box_key",
]

# The challenges, as the ASN.1 type ChallengeKind spells them.
QR_CODE, PIN, FINGERPRINT = "qrCode", "pin", "fingerprint"
CHALLENGES = (QR_CODE, PIN, FINGERPRINT)

TOKEN_SIZE = 16  # the invitation's one-time token: 128 bits
PIN_DIGITS = 6
SECRETS_LABEL = b"fsmc/berty/linking-account-secrets/v1"
_KEY, _SIG = crypto.KEY_SIZE, crypto.SIGNATURE_SIZE
ACCOUNT_SIZE = 4 * _KEY + _KEY + _SIG + _KEY  # 256: see Account.encode


class LinkingStep(StrEnum):
    """Where a `LinkingError` happened (the QR code and PIN checks raise crypto's
    HandshakeError, with Step.LINKING_QR_CODE and Step.LINKING_PIN)."""

    LINK_REQUEST = "linking: 3. Link Request"
    LINK_CHALLENGE = "linking: 4. Link Challenge"
    ACCOUNT_SECRETS = "linking: 6. Account Secrets"


class LinkingError(VerificationError, ValueError):
    """A linking message that does not verify: a wrong token or device ID, a challenge
    for another device, a box that does not open, secrets that are not an account. A
    remote fault (drivers drop and trace it); also a ValueError. Nothing is changed."""

    code: ClassVar[str] = "linking"

    def __init__(self, step: LinkingStep, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


# --- what an account holds ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountGroup:
    """The account group's keys and secrets ("Account Group": made as a multi-member
    group's, at the creation of the account). The group ID's private key signed the
    secret and was discarded."""

    public_key: bytes  # the group ID
    secret: bytes = field(repr=False)  # encrypts the group's payloads
    secret_sig: bytes  # the group ID key's signature of the secret
    attachment_key: bytes = field(repr=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> AccountGroup:
        return self  # immutable: copies of a world share it

    @property
    def link_key(self) -> bytes:
        """What seeds the group's rendezvous point, as weshnet derives it (crypto.link_key)."""
        return crypto.link_key(self.public_key, self.secret)


@dataclass(frozen=True, slots=True)
class Account:
    """An account's secrets: what every device of the account holds, and what linking
    hands to a new device. The Device ID key pair is not part of it: it is the device's."""

    key: Ed25519KeyPair  # the Account ID key pair
    alias: Ed25519KeyPair  # the Alias key pair
    rendezvous_seed: bytes = field(repr=False)  # the public rendezvous seed
    group: AccountGroup

    def __deepcopy__(self, memo: dict[int, Any]) -> Account:
        return self  # immutable: copies of a world share it

    @classmethod
    def generate(cls, rng: random.Random | SeededRandom) -> Account:
        """A new account ("Account Creation" steps 1, 2 and 4, and its account group)."""
        key = Ed25519KeyPair.from_seed(rng.randbytes(_KEY))
        alias = Ed25519KeyPair.from_seed(rng.randbytes(_KEY))
        seed = rng.randbytes(crypto.RENDEZVOUS_SEED_SIZE)
        group_key = Ed25519KeyPair.from_seed(rng.randbytes(_KEY))  # used once, then discarded
        secret = rng.randbytes(_KEY)
        group = AccountGroup(group_key.public, secret, group_key.sign(secret), rng.randbytes(_KEY))
        return cls(key, alias, seed, group)

    def encode(self) -> bytes:
        """The 256 octets linking seals: the account key's seed, the alias key's seed, the
        rendezvous seed, the group ID, the group secret (32 each), the group secret sig
        (64), the attachment key (32)."""
        g = self.group
        return (self.key.seed + self.alias.seed + self.rendezvous_seed + g.public_key + g.secret + g.secret_sig
                + g.attachment_key)

    @classmethod
    def decode(cls, data: bytes) -> Account:
        """The account in what `encode` made; LinkingError if it is not one (a wrong
        length, a group secret sig that does not verify)."""
        step = LinkingStep.ACCOUNT_SECRETS
        if len(data) != ACCOUNT_SIZE:
            raise LinkingError(step, f"the account's secrets are {ACCOUNT_SIZE} octets, not {len(data)}")
        parts = [data[i:i + _KEY] for i in range(0, 5 * _KEY, _KEY)]
        sig, attachment = data[5 * _KEY:5 * _KEY + _SIG], data[5 * _KEY + _SIG:]
        key_seed, alias_seed, seed, group_id, secret = parts
        try:
            crypto_sign_open(sig + secret, group_id)
        except (CryptoError, ValueError) as exc:
            raise LinkingError(step, "the group secret sig does not verify with the group ID") from exc
        return cls(Ed25519KeyPair.from_seed(key_seed), Ed25519KeyPair.from_seed(alias_seed), seed,
                   AccountGroup(group_id, secret, sig, attachment))

    def digest(self) -> str:
        """Equal exactly when the secrets are."""
        return hashlib.sha256(self.encode()).hexdigest()

    # --- what a device does with them

    def rendezvous_point(self, when: Any) -> crypto.RendezvousPoint:
        """The account's public rendezvous point at `when`, where contact requests reach it."""
        return crypto.contact_request_rendezvous(self.key.public, self.rendezvous_seed, when)

    def contact_group(self, peer_account: bytes) -> crypto.ContactGroup:
        return crypto.contact_group(self.key, peer_account)


@dataclass(frozen=True, slots=True)
class Invitation:
    """What A displays and B's user scans (step 2): A's peer ID (its address and its
    Device ID) and the one-time token."""

    peer: str
    device_id: bytes
    token: bytes = field(repr=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> Invitation:
        return self


# --- the constructions --------------------------------------------------------------


def draw_pin(rng: random.Random | SeededRandom, digits: int = PIN_DIGITS) -> str:
    """A uniformly random PIN of `digits` decimal digits (crypto.new_linking_pin's, from a
    seeded source: scenarios are reproducible)."""
    return str(rng.randrange(10**digits)).zfill(digits)


def pin_context(inviter_device_id: bytes, token: bytes) -> bytes:
    """What the PIN's signature is bound to (crypto.linking_pin_message's context): A's
    peer ID, as its device ID, and the invitation's token."""
    return inviter_device_id + token


def secrets_box_key(own: Ed25519KeyPair, peer_device_id: bytes, inviter_device_id: bytes,
                    joiner_device_id: bytes, token: bytes) -> bytes:
    """The secretbox key of step 6, on either side: SHA-256(label ‖ x.y ‖ A's ID ‖ B's ID ‖
    token), x.y the box.Precompute of the two device keys as X25519. LinkingError for a
    peer key that is no usable public key (off the curve, small order)."""
    step = LinkingStep.ACCOUNT_SECRETS
    try:
        shared = crypto_box_beforenm(crypto.ed25519_public_to_x25519(peer_device_id),
                                     crypto.ed25519_private_to_x25519(own))
    except (CryptoError, ValueError) as exc:
        raise LinkingError(step, f"no shared secret with the peer's device ID: {exc}") from exc
    return hashlib.sha256(SECRETS_LABEL + bytes(shared) + inviter_device_id + joiner_device_id + token).digest()


def seal_account(inviter: Ed25519KeyPair, joiner_device_id: bytes, token: bytes, account: Account,
                 nonce: bytes) -> bytes:
    """Step 6, A: nonce ‖ secretbox[secrets_box_key](the account's 256 octets)."""
    if len(nonce) != crypto.NONCE_SIZE:
        raise ValueError(f"a nonce is {crypto.NONCE_SIZE} octets, not {len(nonce)}")
    key = secrets_box_key(inviter, joiner_device_id, inviter.public, joiner_device_id, token)
    return nonce + bytes(crypto_secretbox(account.encode(), nonce, key))


def open_account(joiner: Ed25519KeyPair, inviter_device_id: bytes, token: bytes, sealed: bytes) -> Account:
    """Step 6, B: the account A sealed to B's device key, or LinkingError (a box that does
    not open: another key, another invitation, altered or truncated bytes; or what it
    holds is not an account)."""
    step = LinkingStep.ACCOUNT_SECRETS
    if len(sealed) < crypto.NONCE_SIZE + 16:
        raise LinkingError(step, f"{len(sealed)} octets are shorter than a nonce and a box's tag")
    key = secrets_box_key(joiner, inviter_device_id, inviter_device_id, joiner.public, token)
    try:
        plain = crypto_secretbox_open(sealed[crypto.NONCE_SIZE:], sealed[:crypto.NONCE_SIZE], key)
    except CryptoError as exc:
        raise LinkingError(step, "the box does not open (another device key or invitation, or altered bytes)") from exc
    return Account.decode(bytes(plain))


# --- the device -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkingState:
    """A linking device's state as a value. A's side: whether its invitation is open, the
    request it took (device ID and address) and the challenge it offered, the challenges
    passed and failed (challenge, device ID), the device IDs it sealed the account to. B's
    side: whether it sent its request, the challenge it got, the account it joined. The
    message being handled, its sender and the notes of rejected messages tell no states
    apart."""

    invitation_open: bool
    candidate: bytes | None
    candidate_peer: str | None
    challenge: str | None
    verified: tuple[tuple[str, bytes], ...]
    refused: tuple[tuple[str, bytes], ...]
    handed: tuple[bytes, ...]
    sent_request: bool
    account: Account | None
    message: Any = field(compare=False)
    sender: str | None = field(compare=False)
    rejected: tuple[str, ...] = field(compare=False)


@dataclass(eq=False)
class LinkingDevice(NamedEnvelope, DeviceBase[LinkingState]):
    """A device in device linking: A, the account's (`own_account`), or B, a new device
    that holds A's invitation (`invitation`). Configuration (set when the devices are
    made, never changed) first, then the state (`LinkingState`)."""

    name: str
    device_key: Ed25519KeyPair  # the Device ID key pair: never leaves the device
    own_account: Account | None = None  # A: the account it was created with
    # A's invitation and challenges.
    token: bytes = b""  # the invitation's one-time token
    camera: bool = False  # A can scan QR codes
    fingerprint: bool = False  # A's user asked for the fingerprint challenge (scripted linking)
    pin: str = ""  # the PIN A displays in a PIN challenge (drawn when the devices are made)
    scanned: str = ""  # what A's user scans with the camera: a QR code another device displays
    # B's side.
    invitation: Invitation | None = None  # what B's user scanned
    typed_pin: str | None = None  # what B's user types when asked for A's PIN
    claims: bytes | None = None  # an attacker's: the device ID it requests with, if not its own
    attacker: bool = False  # not honest: the invariants judge the others
    rng: random.Random | SeededRandom = field(default_factory=random.Random)
    machine: Any = None
    # state (LinkingState)
    invitation_open: bool = True
    candidate_id: bytes | None = None
    candidate_peer: str | None = None
    challenge: str | None = None
    verified: tuple[tuple[str, bytes], ...] = ()
    refused: tuple[tuple[str, bytes], ...] = ()
    handed: tuple[bytes, ...] = ()
    sent_request: bool = False
    account: Account | None = None
    message: Any = None
    sender_name: str | None = None
    rejected: tuple[str, ...] = ()

    def snapshot(self) -> LinkingState:
        return LinkingState(self.invitation_open, self.candidate_id, self.candidate_peer, self.challenge,
                            self.verified, self.refused, self.handed, self.sent_request, self.account, self.message,
                            self.sender_name, self.rejected)

    def restore(self, state: LinkingState) -> None:
        self.invitation_open, self.candidate_id = state.invitation_open, state.candidate
        self.candidate_peer = state.candidate_peer
        self.challenge, self.verified, self.refused = state.challenge, state.verified, state.refused
        self.handed, self.sent_request, self.account = state.handed, state.sent_request, state.account
        self.message, self.sender_name, self.rejected = state.message, state.sender, state.rejected

    # --- what the scenarios and the invariants read

    @property
    def device_id(self) -> bytes:
        return self.device_key.public

    @property
    def requested_id(self) -> bytes:
        """The device ID this device requests linking with: its own, or an attacker's claim."""
        return self.claims if self.claims is not None else self.device_key.public

    def holds(self) -> Account | None:
        """The account whose secrets the device holds: its own, or the one it joined."""
        return self.own_account if self.own_account is not None else self.account

    @property
    def buffer(self) -> Any:
        return self.machine.buffer

    def _context(self) -> bytes:
        if self.own_account is not None:
            return pin_context(self.device_id, self.token)
        assert self.invitation is not None
        return pin_context(self.invitation.device_id, self.invitation.token)

    def _reject(self, error: LinkingError | HandshakeError) -> bool:
        self.rejected = (*self.rejected, str(error))
        self.machine.notify("rejected", (str(error.step),))
        return False

    # --- the driver's side

    def admit(self, message: Any, sender: str) -> str | None:
        return "own message" if sender == self.name else None

    def receiving(self, message: Any, sender: str | None) -> None:
        self.message, self.sender_name = message, sender

    def material_digest(self) -> str:
        """The account's secrets the device holds: equal digests, the same secrets."""
        held = self.holds()
        return held.digest() if held is not None else ""

    def timed_out(self, state: str) -> None:
        self.rejected = (*self.rejected, f"timeout in {state}")

    # --- conditions

    def inviting(self) -> bool:
        return self.own_account is not None

    def invitationOpen(self) -> bool:
        return self.invitation_open

    def requested(self) -> bool:
        return self.sent_request

    def requestValid(self) -> bool:
        """Step 3, A: the request carries the open invitation's token and a device ID that
        can receive a box (a valid Ed25519 key, not A's own)."""
        step = LinkingStep.LINK_REQUEST
        if not self.invitation_open:
            return self._reject(LinkingError(step, "the invitation is spent"))
        if not hmac.compare_digest(bytes(self.message.invitation), self.token):
            return self._reject(LinkingError(step, "the token is not that of the open invitation"))
        device_id = bytes(self.message.device)
        if device_id == self.device_id:
            return self._reject(LinkingError(step, "the device ID is this device's own"))
        try:
            crypto.ed25519_public_to_x25519(device_id)
        except ValueError as exc:
            return self._reject(LinkingError(step, f"the device ID is no usable key: {exc}"))
        return True

    def fingerprintAsked(self) -> bool:
        return self.fingerprint

    def hasCamera(self) -> bool:
        return self.camera

    def scannedCodeMatches(self) -> bool:
        """5a, A: the QR code the user scanned is the fingerprint of the requesting device ID."""
        assert self.candidate_id is not None
        try:
            crypto.verify_linking_qr(self.scanned, self.candidate_id)
        except HandshakeError as e:
            return self._reject(e)
        self.verified = (*self.verified, (QR_CODE, self.candidate_id))
        return True

    def fromCandidate(self) -> bool:
        return self.sender_name == self.candidate_peer

    def pinSignatureValid(self) -> bool:
        """5b, A: the signature is the requesting device ID's, of the PIN A displays, for
        this invitation."""
        assert self.candidate_id is not None
        try:
            crypto.verify_linking_pin(self.candidate_id, self.pin, bytes(self.message.signature), self._context())
        except HandshakeError as e:
            return self._reject(e)
        self.verified = (*self.verified, (PIN, self.candidate_id))
        return True

    def challengeForThisDevice(self) -> bool:
        """Step 4, B: a challenge from the invitation's peer, for the device ID B requested with."""
        step = LinkingStep.LINK_CHALLENGE
        assert self.invitation is not None
        if self.sender_name != self.invitation.peer:
            return self._reject(LinkingError(step, f"from {self.sender_name}, not the invitation's peer"))
        if bytes(self.message.device) != self.requested_id:
            return self._reject(LinkingError(step, "for another device ID"))
        return True

    def qrCodeChallenge(self) -> bool:
        return bool(self.message.challenge == QR_CODE)

    def pinChallenge(self) -> bool:
        return bool(self.message.challenge == PIN)

    def fingerprintChallenge(self) -> bool:
        return bool(self.message.challenge == FINGERPRINT)

    def accountOpens(self) -> bool:
        """Step 6, B: from the invitation's peer, a box that opens under the key of A's
        device ID and B's, for this invitation, around an account."""
        assert self.invitation is not None
        if self.sender_name != self.invitation.peer:
            return self._reject(LinkingError(LinkingStep.ACCOUNT_SECRETS,
                                             f"from {self.sender_name}, not the invitation's peer"))
        try:
            self._opened()
        except LinkingError as e:
            return self._reject(e)
        return True

    def _opened(self) -> Account:
        assert self.invitation is not None
        return open_account(self.device_key, self.invitation.device_id, self.invitation.token,
                            bytes(self.message.sealed))

    # --- actions: A

    def showInvitation(self) -> None:
        self.machine.notify("invitation", (self.name, self.token.hex()[:8]))

    def takeRequest(self) -> None:
        """The request is taken: the invitation is spent on it, whatever follows."""
        self.invitation_open = False
        self.candidate_id = bytes(self.message.device)
        self.candidate_peer = self.sender_name

    def _offer(self, challenge: str) -> None:
        self.challenge = challenge
        self.buffer.device = self.candidate_id
        self.buffer.challenge = challenge

    def offerFingerprint(self) -> None:
        self._offer(FINGERPRINT)

    def offerQRCode(self) -> None:
        self._offer(QR_CODE)
        self.machine.notify("scan the QR code on the new device")

    def offerPin(self) -> None:
        self._offer(PIN)

    def showPin(self) -> None:
        self.machine.notify("PIN", (self.pin,))

    def showFingerprint(self) -> None:
        """A: the fingerprint of the requesting device ID; B: of its own."""
        shown = self.candidate_id if self.own_account is not None else self.requested_id
        assert shown is not None
        self.machine.notify("fingerprint", (crypto.display_fingerprint(shown),))

    def confirmFingerprint(self) -> None:
        """5c, A: the user says the fingerprints are equal: the challenge passed, on their word."""
        assert self.candidate_id is not None
        self.verified = (*self.verified, (FINGERPRINT, self.candidate_id))

    def sealAccount(self) -> None:
        """Step 6, A: the account's secrets, sealed to the device ID that passed the challenge."""
        assert self.own_account is not None and self.candidate_id is not None
        self.handed = (*self.handed, self.candidate_id)
        self.buffer.sealed = seal_account(self.device_key, self.candidate_id, self.token, self.own_account,
                                          self.rng.randbytes(crypto.NONCE_SIZE))
        self.machine.notify("account handed over", (self.candidate_id.hex()[:8],))

    def refuseLinking(self) -> None:
        assert self.challenge is not None and self.candidate_id is not None
        self.refused = (*self.refused, (self.challenge, self.candidate_id))
        self.machine.notify("linking refused", (self.challenge, self.candidate_id.hex()[:8]))

    def closeInvitation(self) -> None:
        self.invitation_open = False
        self.machine.notify("invitation closed")

    # --- actions: B

    def requestLinking(self) -> None:
        assert self.invitation is not None
        self.sent_request = True
        self.buffer.device = self.requested_id
        self.buffer.invitation = self.invitation.token

    def showQRCode(self) -> None:
        self.challenge = QR_CODE
        self.machine.notify("QR code", (crypto.linking_qr_payload(self.requested_id)[:40],))

    def askForPin(self) -> None:
        self.challenge = PIN
        self.machine.notify("enter the PIN shown on the other device")

    def signPin(self) -> None:
        if self.typed_pin is None:
            raise UsageError(f"{self.name}: no PIN for its user to type (typed_pin)")
        self.buffer.signature = crypto.sign_linking_pin(self.device_key, self.typed_pin, self._context())

    def joinAccount(self) -> None:
        """B holds the account's secrets: it is a device of the account."""
        self.account = self._opened()
        self.machine.notify("joined the account", (self.account.key.public.hex()[:8],))

    def announceLinked(self) -> None:
        self.machine.notify("linked")

    def giveUp(self) -> None:
        self.machine.notify("linking failed")

    # --- peers

    def inviter(self) -> str:
        assert self.invitation is not None
        return self.invitation.peer

    def candidate(self) -> str:
        assert self.candidate_peer is not None
        return self.candidate_peer


if TYPE_CHECKING:
    def _conforms(device: LinkingDevice) -> DeviceLinkingBindings:
        """mypy checks the device against the interface generated from berty.fsm."""
        return device
