"""Berty's groups and their symmetric chain-key ratchet, as berty/weshnet computes them.

Sans-IO and pure: every function maps values to values. A state (`GroupState`, one device's
view of one group) is a frozen record, and each operation returns a new state beside what
it produced; a call that fails raises and leaves the old state as it was, so a rejected
entry or message changes nothing. `GroupDevice` is the same thing behind a mutable handle,
with `snapshot`/`restore`, for drivers and the explorer. Randomness is drawn only through a
`random(n) -> bytes` parameter (default `os.urandom`).

Sources. The Berty protocol document (sections Groups, Messages, Joining a Group), and
weshnet at commit d735e1d4 (github.com/berty/weshnet): pkg/protocoltypes/group.go,
api/protocol/protocoltypes.proto, pkg/secretstore/{chain_key,secret_store,
secret_store_messages,secret_store_interfaces,device_keystore_wrapper,member_device,
keys_utils}.go, pkg/cryptoutil/cryptoutil.go, events.go, events_sig_checkers.go, group.go,
group_context.go, store_metadata.go, store_metadata_index.go, store_message.go,
api_multimember.go and orbitdb_signed_entry_{identity_provider,keystore}.go. Where the two
differ we follow weshnet, and a comment marked "DOCUMENT:" beside the code says what the
document says instead.

Groups (protocoltypes.Group). A group is its id key pair's public key (the group id), a
32-byte secret, the id key's signature of the secret (`secret_sig`, multi-member groups
only) and a type. The secret is three things at once: the XSalsa20-Poly1305 key of every
envelope of the group's two logs, the seed of the group's Ed25519 signing key (which signs
the logs' entries: every holder of the secret can write) and, with the group id, the input
of the link key (crypto.link_key). A multi-member group is drawn at random by its creator
(NewGroupMultiMember: two Ed25519 keys, the second one's seed being the secret), whose id
key signs the secret and the link key, then announces the creator and is discarded. The
contact group is derived by both accounts (crypto.contact_group); the account group is the
account's key as group id and its alias ("account proof") key's seed as secret.

Members and devices (deviceKeystore.memberDeviceForGroup). In account and contact groups
the member key is the account key and the device key the device's one key. In a
multi-member group the member key is derived, so that every device of an account is the
same member without agreeing on anything: its seed is the raw X25519 of the alias key and
the group id, both converted from Ed25519 (`multi_member_key`); the device key is drawn at
random for each group.

The metadata log (events.go, store_metadata.go). Each entry is a GroupEnvelope{nonce,
secretbox[group secret, random nonce](GroupMetadata{event type, payload, sig, empty
ProtocolMetadata})}, the payload being one of the protobufs below and `sig` the signature
of the payload bytes:

    Init Member Entry   MultiMemberGroupInitialMemberAnnounced{member_pk}   sig: group id key
    Member Entry        GroupMemberDeviceAdded{member_pk, device_pk,        sig: device key
                          member_sig = member key's signature of device_pk}
    Secret Entry        GroupDeviceChainKeyAdded{device_pk, dest_member_pk, sig: device key
                          box(DeviceChainKey{chain_key, counter}) from the sender's device
                          key to the destination's member key, nonce = group id[:24]}
    alias entries       ContactAliasKeyAdded{device_pk, alias_pk}           sig: device key
                        MultiMemberGroupAliasResolverAdded{device_pk,       sig: device key
                          alias_resolver, alias_proof}

Each device posts a Member Entry for itself and, for every member it learns of (itself
included, so its other devices learn its chain), one Secret Entry with its current chain
key and counter (group_context.go handleGroupMetadataEvent, sendSecretsToExistingMembers).

The symmetric ratchet (secret_store_messages.go). A device's chain starts as 32 random
bytes and counter 0. `derive_next_keys` is HKDF-SHA256 with the chain key as input, no
salt and the group id as info: the first 32 bytes are the next chain key, the next 32 the
message key. To send, a device with chain (CK, n) derives (CK', K) = derive_next_keys(CK),
seals EncryptedMessage{plaintext} with secretbox under K and the nonce uint64-BE(n+1) ‖ 16
zero bytes, signs the EncryptedMessage bytes with its device key, and posts
MessageEnvelope{secretbox[group secret, random nonce](MessageHeaders{n+1, device_pk,
sig}), the sealed message, nonce}; its chain becomes (CK', n+1). A receiver that got a
chain (CK0, c0) in a Secret Entry does not ratchet on demand: it precomputes the message
keys of counters c0+1 .. c0+100 (PrecomputeMessageKeyCount) and keeps the chain at c0+100;
each message it opens spends the key of its counter and extends the window by one more key.
A counter whose key is not there is refused: already spent (a replay), at or before c0 (the
message predates the chain key this device was given: forward secrecy for late joiners),
or past the window.

Logs (orbitdb_signed_entry_*.go). Every entry of both logs is an ipfs-log entry signed by
the group's signing key. We keep that as `LogEntry`: the envelope and the signing key's
signature of it (ipfs-log signs its own encoding of the entry, which holds the envelope
beside the clock and parents; the key and its meaning are the same). It is what keeps
outsiders out: without the secret no one can sign, nor seal, nor open.

What weshnet does not check, and neither do we (findings, each tested):
- membership is the group secret, not the member list: a Secret Entry is taken from any
  device whose signature verifies, announced or not (weshnet posts its secrets before its
  Member Entry, and the log is unordered), and its messages are then read; `ReceivedMessage`
  says whether the device was announced (`member_pk`), for callers who care;
- a member's chain key is sent once per member, to the member key: a member's device that
  joins later opens the Secret Entries addressed to its member earlier, and so reads the
  messages sent since the member's first device arrived;
- a receiver that misses 100 consecutive messages of a device never opens that device's
  later ones: the window holds the 100 keys it was not given messages for.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from nacl.bindings import (
    crypto_box,
    crypto_box_open,
    crypto_secretbox,
    crypto_secretbox_open,
    crypto_sign_open,
)
from nacl.exceptions import CryptoError

from protocols.berty import crypto
from protocols.berty.crypto import (  # the little protobuf codec crypto.py writes, shared
    _WIRE_BYTES,
    _WIRE_VARINT,
    KEY_SIZE,
    NONCE_SIZE,
    SIGNATURE_SIZE,
    ContactGroup,
    Ed25519KeyPair,
    _hkdf,
    _pb_bytes_field,
    _pb_parse,
    _uvarint,
)
from runtime.errors import UsageError, VerificationError

if TYPE_CHECKING:
    from protocols.berty.linking import Account, AccountGroup

__all__ = [
    "COUNTER_MODULUS",
    "PRECOMPUTE_MESSAGE_KEY_COUNT",
    "PRECOMPUTE_OUT_OF_STORE_GROUP_REFS_COUNT",
    "SECRETBOX_OVERHEAD",
    "AliasResolverEntry",
    "ContactAliasKeyEntry",
    "DeviceChainKey",
    "Entry",
    "EventType",
    "Failure",
    "Group",
    "GroupDevice",
    "GroupError",
    "GroupMetadata",
    "GroupState",
    "GroupType",
    "InitialMemberEntry",
    "LogEntry",
    "MemberDevice",
    "MemberDeviceEntry",
    "MessageEnvelope",
    "MessageHeaders",
    "Random",
    "ReceivedMessage",
    "ReceiverChain",
    "SecretEntry",
    "account_group",
    "alias_proof",
    "alias_resolver",
    "alias_resolver_metadata",
    "apply_metadata",
    "claim_ownership",
    "contact_alias_key_metadata",
    "contact_group",
    "counter_nonce",
    "derive_next_keys",
    "group_id_nonce",
    "initial_member_metadata",
    "join",
    "member_device_metadata",
    "members_awaiting_secret",
    "multi_member_key",
    "new_device_chain_key",
    "new_device_key",
    "new_multi_member_group",
    "open_device_chain_key",
    "open_message",
    "open_message_headers",
    "open_metadata",
    "own_member_device",
    "publish_metadata",
    "receive_message",
    "receive_metadata",
    "seal_device_chain_key",
    "seal_message",
    "seal_metadata",
    "secret_metadata",
    "send_message",
    "share_chain_key",
    "sign_entry",
    "sign_log_entry",
    "verify_alias_proof",
    "verify_log_entry",
    "verify_metadata",
]

Random = Callable[[int], bytes]

# pkg/secretstore/secret_store_interfaces.go: the receive window (message keys precomputed
# per sending device) and, for push notifications, the group references kept either side of
# a counter (crypto.out_of_store_group_reference; not used by the logs).
PRECOMPUTE_MESSAGE_KEY_COUNT = 100
PRECOMPUTE_OUT_OF_STORE_GROUP_REFS_COUNT = 100
COUNTER_MODULUS = 1 << 64  # DeviceChainKey.counter and MessageHeaders.counter are uint64
SECRETBOX_OVERHEAD = 16  # Poly1305 tag (secretbox and box)
_PUBLIC_KEY_SIZE = 32


class GroupType(IntEnum):
    """protocoltypes.GroupType."""

    UNDEFINED = 0
    ACCOUNT = 1
    CONTACT = 2
    MULTI_MEMBER = 3


class EventType(IntEnum):
    """The protocoltypes.EventType values of the entries modelled here. weshnet knows more
    (the account group's contact and group events, app metadata, replication): we refuse
    those as unknown."""

    GROUP_MEMBER_DEVICE_ADDED = 1
    GROUP_DEVICE_CHAIN_KEY_ADDED = 2
    CONTACT_ALIAS_KEY_ADDED = 201
    MULTI_MEMBER_GROUP_ALIAS_RESOLVER_ADDED = 301
    MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED = 302


# --- errors ------------------------------------------------------------------------------


class Failure(StrEnum):
    """What failed, in a `GroupError`."""

    LOG_SIGNATURE = "log entry signature"  # not signed by the group's signing key
    SECRET_SIG = "group secret sig"  # the group id key's signature of the secret
    DECODE = "decoding"  # bytes that are not the protobuf
    NONCE = "nonce"  # a nonce that is not 24 bytes
    ENVELOPE = "envelope"  # a secretbox under the group secret that does not open
    EVENT_TYPE = "event type"  # a metadata event type not modelled
    KEY = "public key"  # not a 32-byte Ed25519 key (or not convertible to X25519)
    GROUP_SIGNATURE = "group id signature"  # Init Member Entry
    MEMBER_SIGNATURE = "member signature"  # Member Entry's member_sig
    DEVICE_SIGNATURE = "device signature"  # an entry's sig by its device_pk
    ALIAS_PROOF = "alias proof"
    SECRET_DESTINATION = "secret destination"  # a Secret Entry for another member
    SECRET_BOX = "secret box"  # a Secret Entry's box that does not open
    OWN_MESSAGE = "own message"  # a message this device sent itself
    UNKNOWN_DEVICE = "unknown device"  # no chain key from the sending device
    COUNTER_BEFORE_CHAIN = "counter before chain key"  # sent before this device's chain key
    COUNTER_REPLAYED = "counter replayed"  # its message key is already spent
    COUNTER_AHEAD = "counter ahead of window"  # past the precomputed message keys
    PAYLOAD = "message payload"  # a secretbox under the message key that does not open
    MESSAGE_SIGNATURE = "message signature"  # the sender device's signature of the message


class GroupError(VerificationError, ValueError):
    """A group entry or message that does not verify: a log signature, an envelope or box
    that does not open, a signature by the wrong key, a counter whose message key is not
    held. A remote fault (a `runtime.errors.VerificationError`, so drivers drop and trace
    it); also a `ValueError`. `failure` names what failed. Nothing is changed by the call."""

    code: ClassVar[str] = "berty-group"

    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(f"{failure}: {reason}")
        self.failure = failure
        self.reason = reason


def _check_key(public: bytes, what: str) -> bytes:
    # crypto.UnmarshalEd25519PublicKey checks the length only.
    if len(public) != _PUBLIC_KEY_SIZE:
        raise GroupError(Failure.KEY, f"the {what} is {len(public)} bytes, not {_PUBLIC_KEY_SIZE}")
    return public


def _verify(public: bytes, message: bytes, signature: bytes, failure: Failure, what: str) -> None:
    # libp2p's Ed25519 Verify is Go's crypto/ed25519.Verify; libsodium's is stricter only
    # for keys and signatures no honest signer makes (small-order points, non-canonical s).
    if len(signature) != SIGNATURE_SIZE:
        raise GroupError(failure, f"the {what} is {len(signature)} bytes, not {SIGNATURE_SIZE}")
    try:
        crypto_sign_open(signature + message, public)
    except (CryptoError, ValueError) as exc:
        raise GroupError(failure, f"the {what} does not verify") from exc


def _secretbox_open(box: bytes, nonce: bytes, key: bytes, failure: Failure, what: str) -> bytes:
    try:
        return bytes(crypto_secretbox_open(box, nonce, key))
    except (CryptoError, ValueError) as exc:
        # Also a box shorter than its tag: libsodium and Go's secretbox.Open refuse it alike.
        raise GroupError(failure, f"the {what} does not open (wrong key or altered bytes)") from exc


def _parse(data: bytes, message: str) -> dict[tuple[int, int], int | bytes]:
    try:
        return _pb_parse(data)
    except ValueError as exc:
        raise GroupError(Failure.DECODE, f"not a {message}: {exc}") from exc


def _bytes(fields: dict[tuple[int, int], int | bytes], number: int) -> bytes:
    value = fields.get((number, _WIRE_BYTES), b"")
    return value if isinstance(value, bytes) else b""


def _uint(fields: dict[tuple[int, int], int | bytes], number: int) -> int:
    value = fields.get((number, _WIRE_VARINT), 0)
    return value if isinstance(value, int) else 0


def _varint_field(number: int, value: int) -> bytes:
    # proto3 omits a zero scalar (crypto._pb_varint_field always writes it).
    return _uvarint(number << 3 | _WIRE_VARINT) + _uvarint(value) if value else b""


def _empty_message_field(number: int) -> bytes:
    # A non-nil empty sub-message (&ProtocolMetadata{}) is written as tag ‖ length 0.
    return _pb_bytes_field(number, b"", keep_empty=True)


# --- groups ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """protocoltypes.Group: what an invitation carries, and what every member holds."""

    public_key: bytes  # the group id
    secret: bytes = field(repr=False)  # envelopes' key, signing key's seed, link key's input
    secret_sig: bytes = b""  # the group id key's signature of the secret (multi-member)
    group_type: GroupType = GroupType.MULTI_MEMBER
    sign_pub: bytes = b""  # the signing public key, for replicas that lack the secret
    link_key_value: bytes = field(default=b"", repr=False)  # Group.link_key, when sent
    link_key_sig: bytes = b""  # the group id key's signature of the link key (never checked)

    def __deepcopy__(self, memo: dict[int, Any]) -> Group:
        return self  # immutable: copies of a world share it

    @property
    def group_id(self) -> str:
        """GroupIDAsString: the hex of the group id."""
        return self.public_key.hex()

    def signing_key(self) -> Ed25519KeyPair:
        """GetSigningPrivKey: the Ed25519 key whose seed is the secret."""
        return Ed25519KeyPair.from_seed(self.secret)

    @property
    def signing_public_key(self) -> bytes:
        """GetSigningPubKey: sign_pub when set, else the signing key's public part."""
        return self.sign_pub or self.signing_key().public

    @property
    def link_key(self) -> bytes:
        """GetLinkKeyArray: the link_key field when it is 32 bytes, else computed."""
        if len(self.link_key_value) == KEY_SIZE:
            return self.link_key_value
        return crypto.link_key(self.public_key, self.secret)

    @property
    def shared_secret(self) -> bytes:
        """GetSharedSecret: the secret copied into a 32-byte array (zero-padded, truncated)."""
        return (self.secret + bytes(KEY_SIZE))[:KEY_SIZE]

    def verify(self) -> None:
        """IsValid: the secret sig must verify with the group id, over the secret (weshnet
        checks it when an account joins a group). GroupError(SECRET_SIG) otherwise."""
        _check_key(self.public_key, "group id")
        _verify(self.public_key, self.secret, self.secret_sig, Failure.SECRET_SIG, "group secret sig")

    def encode(self) -> bytes:
        """The Group protobuf (an invitation: MultiMemberGroupInvitationCreate hands it out)."""
        return (_pb_bytes_field(1, self.public_key) + _pb_bytes_field(2, self.secret)
                + _pb_bytes_field(3, self.secret_sig) + _varint_field(4, int(self.group_type))
                + _pb_bytes_field(5, self.sign_pub) + _pb_bytes_field(6, self.link_key_value)
                + _pb_bytes_field(7, self.link_key_sig))

    @classmethod
    def decode(cls, data: bytes) -> Group:
        """A Group from its protobuf; GroupError(DECODE) for bytes that are not one, or a
        group type weshnet does not know."""
        f = _parse(data, "Group")
        try:
            kind = GroupType(_uint(f, 4))
        except ValueError as exc:
            raise GroupError(Failure.DECODE, f"group type {_uint(f, 4)} is not one weshnet knows") from exc
        return cls(_check_key(_bytes(f, 1), "group id"), _bytes(f, 2), _bytes(f, 3), kind,
                   _bytes(f, 5), _bytes(f, 6), _bytes(f, 7))

    @classmethod
    def from_contact_group(cls, group: ContactGroup) -> Group:
        """getGroupForContact: the contact group crypto.py derives, as a Group (no sig)."""
        return cls(group.public_key, group.secret, b"", GroupType.CONTACT)

    @classmethod
    def from_account_group(cls, group: AccountGroup) -> Group:
        """The document's account group, as linking.py hands it over (random keys, as a
        multi-member group's), typed ACCOUNT. weshnet's account group is `account_group`."""
        return cls(group.public_key, group.secret, group.secret_sig, GroupType.ACCOUNT)


def new_multi_member_group(random: Random = os.urandom) -> tuple[Group, Ed25519KeyPair]:
    """NewGroupMultiMember: a new group and its id key pair, which the creator uses once
    (`claim_ownership`) and discards.

    Two random Ed25519 keys: the group id key, and a signing key whose 32-byte seed becomes
    the secret. The id key signs the secret (secret_sig) and the link key (link_key_sig)."""
    # DOCUMENT: the document adds an Attachment Key to the group's secrets; weshnet has none
    # (its link key, derived from the secret, seals the exchanged heads and seeds the
    # rendezvous point), and it signs the link key as well as the secret.
    group_key = Ed25519KeyPair.from_seed(_draw(random, KEY_SIZE))
    secret = Ed25519KeyPair.from_seed(_draw(random, KEY_SIZE)).seed  # SeedFromEd25519PrivateKey
    link = crypto.link_key(group_key.public, secret)
    group = Group(group_key.public, secret, group_key.sign(secret), GroupType.MULTI_MEMBER,
                  link_key_sig=group_key.sign(link))
    return group, group_key


def contact_group(own_account: Ed25519KeyPair, peer_account_public: bytes) -> Group:
    """secretStore.GetGroupForContact: the contact group of two accounts (crypto.py)."""
    return Group.from_contact_group(crypto.contact_group(own_account, peer_account_public))


def account_group(account: Account) -> Group:
    """secretStore.GetGroupForAccount: the account key as group id, the seed of the alias
    ("account proof") key as secret, no secret sig."""
    # DOCUMENT: "The keys and secrets of the Account Group are randomly generated at the
    # creation of the account in the same way as in Multi-Member Groups" (linking.py's
    # AccountGroup, see Group.from_account_group). weshnet derives the group from the two
    # account keys instead, so the account's group id is its public account key and every
    # holder of the alias key holds the group's secret.
    return Group(account.key.public, account.alias.seed, b"", GroupType.ACCOUNT)


def _draw(random: Random, n: int) -> bytes:
    value = bytes(random(n))
    if len(value) != n:
        raise UsageError(f"random({n}) returned {len(value)} bytes")
    return value


# --- members and devices -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberDevice:
    """ownMemberDevice: the member key and the device key a device uses in one group."""

    member: Ed25519KeyPair
    device: Ed25519KeyPair

    def __deepcopy__(self, memo: dict[int, Any]) -> MemberDevice:
        return self


def multi_member_key(alias: Ed25519KeyPair, group_public_key: bytes) -> Ed25519KeyPair:
    """computeMemberKeyForMultiMemberGroup: the member key of an account in a multi-member
    group. Its seed is the raw X25519 of the alias key and the group id, both converted
    from Ed25519 (getOrComputeECDH, the same computation as the contact pair secret), so
    every device of the account derives the same member key without talking, and the
    member key tells nothing of the account to whoever lacks the alias key."""
    # DOCUMENT: "a distinct Member ID, specific to this Group (derived from the Group ID and
    # some secret accounts)": the secret is the alias key, the derivation X25519.
    return Ed25519KeyPair.from_seed(crypto.contact_pair_secret(alias, _check_key(group_public_key, "group id")))


def new_device_key(random: Random = os.urandom) -> Ed25519KeyPair:
    """getOrGenerateDeviceKeyForMultiMemberGroup: a fresh device key for one group."""
    # DOCUMENT: "their devices will use a Member Device ID (randomly generated)": as weshnet.
    return Ed25519KeyPair.from_seed(_draw(random, KEY_SIZE))


def own_member_device(group: Group, account: Ed25519KeyPair, alias: Ed25519KeyPair,
                      device: Ed25519KeyPair) -> MemberDevice:
    """memberDeviceForGroup: in account and contact groups, the account key and `device`
    (the device's one key); in a multi-member group, the derived member key and `device`,
    which is then the device's key for this group alone (`new_device_key`)."""
    if group.group_type in (GroupType.ACCOUNT, GroupType.CONTACT):
        return MemberDevice(account, device)
    if group.group_type == GroupType.MULTI_MEMBER:
        return MemberDevice(multi_member_key(alias, group.public_key), device)
    raise UsageError(f"unknown group type {group.group_type}")


# --- the symmetric ratchet ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceChainKey:
    """protocoltypes.DeviceChainKey: a chain key and the counter of the last message key
    derived from it (0 for a new chain)."""

    chain_key: bytes = field(repr=False)
    counter: int = 0

    def encode(self) -> bytes:
        return _pb_bytes_field(1, self.chain_key) + _varint_field(2, self.counter % COUNTER_MODULUS)

    @classmethod
    def decode(cls, data: bytes) -> DeviceChainKey:
        # weshnet takes the chain key at whatever length it comes (HKDF accepts any input).
        f = _parse(data, "DeviceChainKey")
        return cls(_bytes(f, 1), _uint(f, 2))


def new_device_chain_key(random: Random = os.urandom) -> DeviceChainKey:
    """newDeviceChainKey: 32 random bytes, counter 0."""
    return DeviceChainKey(_draw(random, KEY_SIZE), 0)


def derive_next_keys(chain_key: bytes, salt: bytes, group_id: bytes) -> tuple[bytes, bytes]:
    """deriveNextKeys: (next chain key, message key) = the 64 bytes of HKDF-SHA256 with the
    chain key as input, `salt` as salt and the group id as info. weshnet always passes a
    nil salt (the HMAC key is then 32 zero bytes); the parameter is the document's."""
    # DOCUMENT: "salt [64]byte ... Salt length must be equal to hash length (64 bytes for
    # sha256)": SHA-256's length is 32, and weshnet passes no salt at all ("TODO: Salt?").
    okm = _hkdf("sha256", chain_key, group_id, 2 * KEY_SIZE, salt)
    return okm[:KEY_SIZE], okm[KEY_SIZE:]


def counter_nonce(counter: int) -> bytes:
    """uint64AsNonce: the message's nonce, its counter as a big-endian uint64 then 16 zero
    bytes. Unique per message key, which is used once."""
    return (counter % COUNTER_MODULUS).to_bytes(8, "big") + bytes(NONCE_SIZE - 8)


def group_id_nonce(group_public_key: bytes) -> bytes:
    """groupIDToNonce: the Secret Entries' box nonce, the group id's first 24 bytes. weshnet
    sends one Secret Entry per (sender device, destination member), so each box key seals
    one box; a second entry to the same member (a device that lost its index) would reuse
    the nonce with another plaintext only if its chain moved, which it then did."""
    return (group_public_key + bytes(NONCE_SIZE))[:NONCE_SIZE]


@dataclass(frozen=True, slots=True)
class ReceiverChain:
    """What a device keeps of another device's chain (the cache namespace of secretStore):
    the stored chain, whose counter is the last precomputed one, the counter the chain key
    was received at, and the unspent message keys by counter."""

    chain: DeviceChainKey
    first_counter: int  # the counter of the chain key as received: messages up to it predate it
    keys: tuple[tuple[int, bytes], ...] = field(repr=False)

    # DOCUMENT: "they need to rotate the sender's chain key until they reach the message
    # counter": weshnet never ratchets on demand. It precomputes a fixed window of message
    # keys when it registers a chain and adds one key per message opened, so a counter past
    # the window is refused (and queued by its message store) however close it is.

    @classmethod
    def register(cls, chain: DeviceChainKey, group_id: bytes,
                 count: int = PRECOMPUTE_MESSAGE_KEY_COUNT) -> ReceiverChain:
        """preComputeKeys: the message keys of counters c+1 .. c+count, the chain at c+count."""
        chain_key, counter, keys = chain.chain_key, chain.counter, []
        for _ in range(count):
            counter = (counter + 1) % COUNTER_MODULUS
            chain_key, message_key = derive_next_keys(chain_key, b"", group_id)
            keys.append((counter, message_key))
        return cls(DeviceChainKey(chain_key, counter), chain.counter, tuple(keys))

    def message_key(self, counter: int) -> bytes:
        """The unspent message key of `counter`; GroupError naming why it is not held."""
        for held, key in self.keys:
            if held == counter:
                return key
        # Counters start at 0 and grow by one per message: 2**64 messages never happen, so
        # the wrap-around weshnet's uint64 would allow is not considered here.
        if counter <= self.first_counter:
            raise GroupError(Failure.COUNTER_BEFORE_CHAIN,
                             f"counter {counter} is at or before {self.first_counter}, the counter of the chain key "
                             "this device was given: the message was sent before it")
        if counter > self.chain.counter:
            raise GroupError(Failure.COUNTER_AHEAD,
                             f"counter {counter} is past the window (message keys up to {self.chain.counter})")
        raise GroupError(Failure.COUNTER_REPLAYED, f"the message key of counter {counter} is already spent")

    def spend(self, counter: int, group_id: bytes) -> ReceiverChain:
        """postDecryptActions: drop the key of `counter` and precompute one more
        (preComputeNextKey), so the window always holds `count` unspent keys."""
        # DOCUMENT: "Once the message key has been used, it is discarded": weshnet moves it to
        # a cache by the log entry's CID (putKeyForCID), so the same entry opens again when
        # the log is read again. We drop it: a second delivery is refused as a replay, and a
        # driver that rereads a log dedups entries by their identity, as OrbitDB does by CID.
        keys = tuple(pair for pair in self.keys if pair[0] != counter)
        next_counter = (self.chain.counter + 1) % COUNTER_MODULUS
        chain_key, message_key = derive_next_keys(self.chain.chain_key, b"", group_id)
        return ReceiverChain(DeviceChainKey(chain_key, next_counter), self.first_counter,
                             (*keys, (next_counter, message_key)))


# --- metadata entries --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitialMemberEntry:
    """MultiMemberGroupInitialMemberAnnounced: the group's creator, signed by the group id key."""

    event_type: ClassVar[EventType] = EventType.MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED
    member_pk: bytes

    def encode(self) -> bytes:
        return _pb_bytes_field(1, self.member_pk)

    @classmethod
    def decode(cls, data: bytes) -> InitialMemberEntry:
        return cls(_check_key(_bytes(_parse(data, "MultiMemberGroupInitialMemberAnnounced"), 1), "initial member key"))


@dataclass(frozen=True, slots=True)
class MemberDeviceEntry:
    """GroupMemberDeviceAdded: a member's device in the group. member_sig is the member
    key's signature of the raw device key; the entry is signed by the device key."""

    event_type: ClassVar[EventType] = EventType.GROUP_MEMBER_DEVICE_ADDED
    member_pk: bytes
    device_pk: bytes
    member_sig: bytes

    def encode(self) -> bytes:
        return (_pb_bytes_field(1, self.member_pk) + _pb_bytes_field(2, self.device_pk)
                + _pb_bytes_field(3, self.member_sig))

    @classmethod
    def decode(cls, data: bytes) -> MemberDeviceEntry:
        f = _parse(data, "GroupMemberDeviceAdded")
        return cls(_check_key(_bytes(f, 1), "member key"), _check_key(_bytes(f, 2), "device key"), _bytes(f, 3))


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """GroupDeviceChainKeyAdded: a device's chain key boxed to one member; signed by the device."""

    event_type: ClassVar[EventType] = EventType.GROUP_DEVICE_CHAIN_KEY_ADDED
    device_pk: bytes
    dest_member_pk: bytes
    payload: bytes  # box(DeviceChainKey), sender device -> destination member

    def encode(self) -> bytes:
        return (_pb_bytes_field(1, self.device_pk) + _pb_bytes_field(2, self.dest_member_pk)
                + _pb_bytes_field(3, self.payload))

    @classmethod
    def decode(cls, data: bytes) -> SecretEntry:
        f = _parse(data, "GroupDeviceChainKeyAdded")
        return cls(_check_key(_bytes(f, 1), "device key"), _check_key(_bytes(f, 2), "destination member key"),
                   _bytes(f, 3))


@dataclass(frozen=True, slots=True)
class ContactAliasKeyEntry:
    """ContactAliasKeyAdded (contact groups): the sender account's alias public key."""

    event_type: ClassVar[EventType] = EventType.CONTACT_ALIAS_KEY_ADDED
    device_pk: bytes
    alias_pk: bytes

    def encode(self) -> bytes:
        return _pb_bytes_field(1, self.device_pk) + _pb_bytes_field(2, self.alias_pk)

    @classmethod
    def decode(cls, data: bytes) -> ContactAliasKeyEntry:
        f = _parse(data, "ContactAliasKeyAdded")
        return cls(_check_key(_bytes(f, 1), "device key"), _bytes(f, 2))


@dataclass(frozen=True, slots=True)
class AliasResolverEntry:
    """MultiMemberGroupAliasResolverAdded (multi-member groups): the Alias Entry."""

    event_type: ClassVar[EventType] = EventType.MULTI_MEMBER_GROUP_ALIAS_RESOLVER_ADDED
    device_pk: bytes
    alias_resolver: bytes = b""
    alias_proof: bytes = b""

    def encode(self) -> bytes:
        return (_pb_bytes_field(1, self.device_pk) + _pb_bytes_field(2, self.alias_resolver)
                + _pb_bytes_field(3, self.alias_proof))

    @classmethod
    def decode(cls, data: bytes) -> AliasResolverEntry:
        f = _parse(data, "MultiMemberGroupAliasResolverAdded")
        return cls(_check_key(_bytes(f, 1), "device key"), _bytes(f, 2), _bytes(f, 3))


Entry = InitialMemberEntry | MemberDeviceEntry | SecretEntry | ContactAliasKeyEntry | AliasResolverEntry
_ENTRY_TYPES: dict[int, type[Entry]] = {
    int(kind.event_type): kind
    for kind in (InitialMemberEntry, MemberDeviceEntry, SecretEntry, ContactAliasKeyEntry, AliasResolverEntry)
}


@dataclass(frozen=True, slots=True)
class GroupMetadata:
    """protocoltypes.GroupMetadata: an entry's type, its payload bytes and their signature."""

    event_type: int
    payload: bytes
    sig: bytes

    def encode(self) -> bytes:
        """As sealGroupEnvelope marshals it, with an empty ProtocolMetadata (field 4)."""
        return (_varint_field(1, self.event_type % (1 << 64)) + _pb_bytes_field(2, self.payload)
                + _pb_bytes_field(3, self.sig) + _empty_message_field(4))

    @classmethod
    def decode(cls, data: bytes) -> GroupMetadata:
        f = _parse(data, "GroupMetadata")
        # event_type is an int32 enum: Go keeps the low 32 bits of the varint, signed.
        raw = _uint(f, 1) & 0xFFFFFFFF
        return cls(raw - (1 << 32) if raw >= 1 << 31 else raw, _bytes(f, 2), _bytes(f, 3))

    def entry(self) -> Entry:
        """The payload as the entry its type names (no signature checked)."""
        kind = _ENTRY_TYPES.get(self.event_type)
        if kind is None:
            raise GroupError(Failure.EVENT_TYPE, f"event type {self.event_type} is not a group entry modelled here")
        return kind.decode(self.payload)


def sign_entry(entry: Entry, device: Ed25519KeyPair) -> GroupMetadata:
    """signProtoWithDevice: the metadata of a device-signed entry, its payload signed by
    `device` (the key the entry's device_pk must name for it to verify)."""
    payload = entry.encode()
    return GroupMetadata(int(entry.event_type), payload, device.sign(payload))


def initial_member_metadata(group_key: Ed25519KeyPair, member_pk: bytes) -> GroupMetadata:
    """The Init Member Entry: `member_pk` announced, signed by the group id key."""
    payload = InitialMemberEntry(member_pk).encode()
    return GroupMetadata(int(EventType.MULTI_MEMBER_GROUP_INITIAL_MEMBER_ANNOUNCED), payload, group_key.sign(payload))


def member_device_metadata(own: MemberDevice) -> GroupMetadata:
    """MetadataStoreAddDeviceToGroup: the Member Entry of our device."""
    # DOCUMENT: "The signature of the Group ID and the member device ID public key by the
    # member ID secret key": weshnet's member key signs the raw device key alone (a "TODO:
    # signature of what ??? ensure it can't be replayed" in the .proto). In a multi-member
    # group both keys are the group's own, but in account and contact groups they are the
    # account and device keys, so a Member Entry of one such group verifies in every other
    # such group of the same account: only the group secret, needed to seal it, stops it.
    device = own.device.public
    return sign_entry(MemberDeviceEntry(own.member.public, device, own.member.sign(device)), own.device)


def seal_device_chain_key(sender_device: Ed25519KeyPair, dest_member_pk: bytes, chain: DeviceChainKey,
                          group: Group) -> bytes:
    """encryptDeviceChainKey: box(DeviceChainKey) from the sender's device key to the
    destination's member key (both converted to X25519), nonce `group_id_nonce`."""
    # DOCUMENT: "a secret box sealed with a shared secret R.S": the receiver's key in it is
    # its member key, not a device key, so one Secret Entry serves every device of a member.
    peer = _to_x25519(dest_member_pk, "destination member key")
    return bytes(crypto_box(chain.encode(), group_id_nonce(group.public_key), peer,
                            crypto.ed25519_private_to_x25519(sender_device)))


def open_device_chain_key(own_member: Ed25519KeyPair, sender_device_pk: bytes, box: bytes,
                          group: Group) -> DeviceChainKey:
    """decryptDeviceChainKey: our member key and the sender's device key open the box."""
    peer = _to_x25519(sender_device_pk, "sender device key")
    try:
        opened = bytes(crypto_box_open(box, group_id_nonce(group.public_key), peer,
                                       crypto.ed25519_private_to_x25519(own_member)))
    except (CryptoError, ValueError) as exc:
        raise GroupError(Failure.SECRET_BOX, "the chain key's box does not open (not for this member, "
                         "not from this device, or altered)") from exc
    return DeviceChainKey.decode(opened)


def _to_x25519(public: bytes, what: str) -> bytes:
    try:
        return crypto.ed25519_public_to_x25519(_check_key(public, what))
    except ValueError as exc:
        if isinstance(exc, GroupError):
            raise
        raise GroupError(Failure.KEY, f"the {what} is not an Ed25519 point X25519 can take: {exc}") from exc


def secret_metadata(own: MemberDevice, dest_member_pk: bytes, chain: DeviceChainKey, group: Group) -> GroupMetadata:
    """MetadataStoreSendSecret: the Secret Entry giving `chain` to the member `dest_member_pk`."""
    box = seal_device_chain_key(own.device, dest_member_pk, chain, group)
    return sign_entry(SecretEntry(own.device.public, dest_member_pk, box), own.device)


def contact_alias_key_metadata(own: MemberDevice, alias_public: bytes) -> GroupMetadata:
    """ContactSendAliasKey: in a contact group, our account's alias public key."""
    return sign_entry(ContactAliasKeyEntry(own.device.public, alias_public), own.device)


def alias_resolver_metadata(own: MemberDevice, resolver: bytes = b"", proof: bytes = b"") -> GroupMetadata:
    """SendAliasProof: the Alias Entry. weshnet sends it with an empty resolver and proof
    ("TODO: should be a hmac value of something"), which is the default here; pass
    `alias_resolver` and `alias_proof` for the document's."""
    # DOCUMENT: the Alias Entry is "composed of an Alias Resolver and an Alias Proof" that
    # identify the member to contacts who know its alias key: weshnet's carries neither, so
    # in weshnet no one can yet recognise a contact in a multi-member group this way.
    return sign_entry(AliasResolverEntry(own.device.public, resolver, proof), own.device)


def alias_resolver(alias_public: bytes, group_public_key: bytes) -> bytes:
    """The document's Alias Resolver, "an HMAC of the Alias public Key and the Group ID":
    HMAC-SHA256 keyed with the alias key over the group id, as the .proto's comment
    writes it (hmac(aliasPK, GroupID)). weshnet computes none."""
    return hmac.new(alias_public, group_public_key, hashlib.sha256).digest()


def alias_proof(alias: Ed25519KeyPair, resolver: bytes) -> bytes:
    """The document's Alias Proof: the alias key's signature of the resolver."""
    # The .proto's comment says aliasSKSig(GroupID) instead; we follow the document, the
    # proof then binding the resolver it travels with.
    return alias.sign(resolver)


def verify_alias_proof(entry: AliasResolverEntry, alias_public: bytes, group_public_key: bytes) -> None:
    """Whether an Alias Entry is that of the account whose alias key is `alias_public`:
    its resolver must be theirs for this group and its proof verify. GroupError(ALIAS_PROOF)."""
    if not hmac.compare_digest(entry.alias_resolver, alias_resolver(alias_public, group_public_key)):
        raise GroupError(Failure.ALIAS_PROOF, "the alias resolver is not that of this alias key and group")
    _verify(alias_public, entry.alias_resolver, entry.alias_proof, Failure.ALIAS_PROOF, "alias proof")


def verify_metadata(group: Group, metadata: GroupMetadata) -> Entry:
    """The entry, once its signatures verify (events_sig_checkers.go): the Init Member Entry
    by the group id key, a Member Entry by its member key (member_sig over the device key)
    and its device key, every other entry by the device key it names. GroupError otherwise."""
    entry = metadata.entry()
    if isinstance(entry, InitialMemberEntry):
        _verify(group.public_key, metadata.payload, metadata.sig, Failure.GROUP_SIGNATURE,
                "Init Member Entry's signature by the group id key")
        return entry
    if isinstance(entry, MemberDeviceEntry):
        _verify(entry.member_pk, entry.device_pk, entry.member_sig, Failure.MEMBER_SIGNATURE,
                "member key's signature of the device key")
    _verify(entry.device_pk, metadata.payload, metadata.sig, Failure.DEVICE_SIGNATURE,
            "entry's signature by its device key")
    return entry


def seal_metadata(group: Group, metadata: GroupMetadata, random: Random = os.urandom) -> bytes:
    """sealGroupEnvelope: GroupEnvelope{nonce, secretbox[group secret, nonce](metadata)}."""
    nonce = _draw(random, NONCE_SIZE)  # cryptoutil.GenerateNonce: a random nonce per entry
    event = bytes(crypto_secretbox(metadata.encode(), nonce, group.shared_secret))
    return _pb_bytes_field(1, nonce) + _pb_bytes_field(2, event)


def open_metadata(group: Group, envelope: bytes) -> tuple[GroupMetadata, Entry]:
    """openGroupEnvelope: the metadata and its entry, the envelope opened and the entry's
    signatures verified. GroupError naming what failed otherwise."""
    f = _parse(envelope, "GroupEnvelope")
    nonce = _bytes(f, 1)
    if len(nonce) != NONCE_SIZE:
        raise GroupError(Failure.NONCE, f"the envelope's nonce is {len(nonce)} bytes, not {NONCE_SIZE}")
    data = _secretbox_open(_bytes(f, 2), nonce, group.shared_secret, Failure.ENVELOPE, "metadata envelope")
    metadata = GroupMetadata.decode(data)
    return metadata, verify_metadata(group, metadata)


# --- the logs' entries -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An entry of a group's metadata or message log: an envelope and the group signing
    key's signature of it (what OrbitDB's ipfs-log entry signature, made with the group's
    signing key as identity, proves: the writer holds the group secret)."""

    payload: bytes
    sig: bytes

    # DOCUMENT: "the secret box is signed with a key derived from the Group Secret": the
    # secret is the signing key's seed itself (Group.GetSigningPrivKey), and what is signed
    # is the ipfs-log entry around the envelope.


def sign_log_entry(group: Group, payload: bytes) -> LogEntry:
    """The log entry of an envelope, signed with the group's signing key."""
    return LogEntry(payload, group.signing_key().sign(payload))


def verify_log_entry(group: Group, entry: LogEntry) -> bytes:
    """The envelope, if the entry is signed by the group's signing key (which a replica
    that lacks the secret checks with sign_pub); GroupError(LOG_SIGNATURE) otherwise."""
    _verify(group.signing_public_key, entry.payload, entry.sig, Failure.LOG_SIGNATURE,
            "log entry's signature by the group signing key")
    return entry.payload


def publish_metadata(group: Group, metadata: GroupMetadata, random: Random = os.urandom) -> LogEntry:
    """metadataStoreAddEvent: the metadata sealed in its envelope, as a signed log entry."""
    return sign_log_entry(group, seal_metadata(group, metadata, random))


# --- messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageHeaders:
    """protocoltypes.MessageHeaders (its metadata map is neither written nor read here)."""

    counter: int
    device_pk: bytes
    sig: bytes

    def encode(self) -> bytes:
        return (_varint_field(1, self.counter % COUNTER_MODULUS) + _pb_bytes_field(2, self.device_pk)
                + _pb_bytes_field(3, self.sig))

    @classmethod
    def decode(cls, data: bytes) -> MessageHeaders:
        f = _parse(data, "MessageHeaders")
        return cls(_uint(f, 1), _check_key(_bytes(f, 2), "sender device key"), _bytes(f, 3))


@dataclass(frozen=True, slots=True)
class MessageEnvelope:
    """protocoltypes.MessageEnvelope: the sealed headers, the sealed message, the headers' nonce."""

    message_headers: bytes
    message: bytes
    nonce: bytes

    def encode(self) -> bytes:
        return (_pb_bytes_field(1, self.message_headers) + _pb_bytes_field(2, self.message)
                + _pb_bytes_field(3, self.nonce))

    @classmethod
    def decode(cls, data: bytes) -> MessageEnvelope:
        f = _parse(data, "MessageEnvelope")
        return cls(_bytes(f, 1), _bytes(f, 2), _bytes(f, 3))


def _encrypted_message(plaintext: bytes) -> bytes:
    # messageStoreAddMessage: EncryptedMessage{plaintext, &ProtocolMetadata{}}.
    return _pb_bytes_field(1, plaintext) + _empty_message_field(2)


def seal_message(device: Ed25519KeyPair, chain: DeviceChainKey, group: Group, plaintext: bytes,
                 random: Random = os.urandom) -> tuple[bytes, DeviceChainKey]:
    """SealEnvelope: the MessageEnvelope of `plaintext` from the device whose chain is
    `chain`, and the chain after it (counter + 1).

    The message key K and the next chain key are derive_next_keys(chain key); the message
    is EncryptedMessage{plaintext} in a secretbox under K with nonce counter_nonce(counter
    + 1), signed (in the clear) by the device key; the headers {counter + 1, device key,
    signature} go in a secretbox under the group secret with a random nonce."""
    # DOCUMENT: the document's Message Entry is one secret box under the group secret holding
    # the message box, the signature, the device key and the counter: weshnet seals only the
    # headers (counter, device key, signature) under the group secret and puts the message
    # box beside them in the MessageEnvelope.
    # DOCUMENT: the document's Message Entry lists "the signature of this secret box with the
    # Device ID secret key": weshnet signs the message before it is sealed (sealPayload), so
    # only a reader of the message can check it; the sealed bytes are covered by the message
    # key's MAC and, on the log, by the group signing key.
    message = _encrypted_message(plaintext)
    sig = device.sign(message)
    # weshnet calls deriveNextKeys twice with the same chain key (in sealPayload for K, then
    # in preComputeNextKey for the next chain): once is the same.
    next_chain_key, message_key = derive_next_keys(chain.chain_key, b"", group.public_key)
    counter = (chain.counter + 1) % COUNTER_MODULUS
    sealed = bytes(crypto_secretbox(message, counter_nonce(counter), message_key))
    headers = MessageHeaders(counter, device.public, sig).encode()
    nonce = _draw(random, NONCE_SIZE)
    envelope = MessageEnvelope(bytes(crypto_secretbox(headers, nonce, group.shared_secret)), sealed, nonce)
    return envelope.encode(), DeviceChainKey(next_chain_key, counter)


def open_message_headers(group: Group, envelope: bytes) -> tuple[MessageEnvelope, MessageHeaders]:
    """OpenEnvelopeHeaders: the envelope and its headers, opened with the group secret."""
    env = MessageEnvelope.decode(envelope)
    if len(env.nonce) != NONCE_SIZE:
        raise GroupError(Failure.NONCE, f"the headers' nonce is {len(env.nonce)} bytes, not {NONCE_SIZE}")
    data = _secretbox_open(env.message_headers, env.nonce, group.shared_secret, Failure.ENVELOPE, "message headers")
    return env, MessageHeaders.decode(data)


def open_message(message_key: bytes, headers: MessageHeaders, sealed: bytes) -> bytes:
    """openPayloadWithMessageKey: the plaintext of a message whose key is `message_key`,
    once the sender device's signature verifies over the EncryptedMessage bytes."""
    data = _secretbox_open(sealed, counter_nonce(headers.counter), message_key, Failure.PAYLOAD, "message")
    _verify(headers.device_pk, data, headers.sig, Failure.MESSAGE_SIGNATURE,
            "message's signature by the sender device key")
    return _bytes(_parse(data, "EncryptedMessage"), 1)


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message opened: its sender device, the member that device announced itself as
    (None if it never did: weshnet reads it all the same), its counter and plaintext."""

    device_pk: bytes
    member_pk: bytes | None
    counter: int
    plaintext: bytes


# --- one device's state in one group -----------------------------------------------------


def _get(pairs: tuple[tuple[bytes, Any], ...], key: bytes) -> Any:
    i = bisect.bisect_left(pairs, key, key=lambda pair: pair[0])
    return pairs[i][1] if i < len(pairs) and pairs[i][0] == key else None


def _put(pairs: tuple[tuple[bytes, Any], ...], key: bytes, value: Any) -> tuple[tuple[bytes, Any], ...]:
    # Sorted tuples, not dicts: hashable and compared as values, in one canonical order.
    i = bisect.bisect_left(pairs, key, key=lambda pair: pair[0])
    if i < len(pairs) and pairs[i][0] == key:
        return (*pairs[:i], (key, value), *pairs[i + 1:])
    return (*pairs[:i], (key, value), *pairs[i:])


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupState:
    """One device's view of one group (the secret store and the metadata index of weshnet
    for that group): its keys, its own chain, the devices and members the metadata log
    announced, the chains other devices gave it, the members it gave its chain to."""

    group: Group
    own: MemberDevice
    own_chain: DeviceChainKey
    devices: tuple[tuple[bytes, bytes], ...] = ()  # device key -> member key (Member Entries)
    admins: tuple[bytes, ...] = ()  # the keys Init Member Entries announced
    secrets_sent: tuple[bytes, ...] = ()  # the members our chain key was boxed to, sorted
    chains: tuple[tuple[bytes, ReceiverChain], ...] = ()  # device key -> its chain
    alias_keys: tuple[tuple[bytes, bytes], ...] = ()  # device key -> alias key (contact groups)
    alias_entries: tuple[AliasResolverEntry, ...] = ()
    precompute: int = PRECOMPUTE_MESSAGE_KEY_COUNT

    def __deepcopy__(self, memo: dict[int, Any]) -> GroupState:
        return self

    def member_of(self, device_pk: bytes) -> bytes | None:
        """The member a device announced itself as, or None."""
        member: bytes | None = _get(self.devices, device_pk)
        return member

    def members(self) -> tuple[bytes, ...]:
        """The members announced, sorted."""
        return tuple(sorted({member for _, member in self.devices}))

    def chain_of(self, device_pk: bytes) -> ReceiverChain | None:
        chain: ReceiverChain | None = _get(self.chains, device_pk)
        return chain


def join(group: Group, own: MemberDevice, random: Random = os.urandom,
         precompute: int = PRECOMPUTE_MESSAGE_KEY_COUNT) -> GroupState:
    """PutGroup: a device enters a group, with a new chain of its own (counter 0). A
    multi-member group's secret sig must verify (GroupJoin checks it)."""
    if group.group_type == GroupType.MULTI_MEMBER:
        group.verify()
    if precompute < 1:
        raise UsageError("the window holds at least one message key")
    return GroupState(group=group, own=own, own_chain=new_device_chain_key(random), precompute=precompute)


def claim_ownership(state: GroupState, group_key: Ed25519KeyPair) -> GroupMetadata:
    """ClaimGroupOwnership: the creator's Init Member Entry, signed by the group id key."""
    # DOCUMENT: the Init Member Entry holds "The Member ID public key (M_P)": weshnet puts
    # the creator's device key in member_pk (m.devicePublicKeyRaw), and the index lists
    # that key among the admins.
    if state.group.group_type != GroupType.MULTI_MEMBER:
        raise UsageError("only a multi-member group has an initial member")
    if group_key.public != state.group.public_key:
        raise UsageError("this is not the group id key")
    return initial_member_metadata(group_key, state.own.device.public)


def members_awaiting_secret(state: GroupState) -> tuple[bytes, ...]:
    """The announced members (ours included) our chain key was not yet boxed to: weshnet
    sends one Secret Entry to each (sendSecretsToExistingMembers, and on every Member Entry)."""
    return tuple(member for member in state.members() if member not in state.secrets_sent)


def share_chain_key(state: GroupState, dest_member_pk: bytes) -> tuple[GroupState, GroupMetadata]:
    """SendSecret: the Secret Entry giving our current chain (key and counter) to a member,
    and the state that remembers it was sent. UsageError if it already was
    (ErrGroupSecretAlreadySentToMember). A member given it now reads only what we send
    from now on: the chain cannot be run backwards."""
    if dest_member_pk in state.secrets_sent:
        raise UsageError("the chain key was already sent to this member")
    metadata = secret_metadata(state.own, dest_member_pk, state.own_chain, state.group)
    return replace(state, secrets_sent=tuple(sorted((*state.secrets_sent, dest_member_pk)))), metadata


def apply_metadata(state: GroupState, metadata: GroupMetadata) -> tuple[GroupState, Entry]:
    """Verify a metadata entry and index it (metadataStoreIndex, handleGroupMetadataEvent):

    - a Member Entry adds its device (once; a device already known keeps its member);
    - a Secret Entry for our member from a device whose chain we lack is opened and its
      chain registered (`ReceiverChain.register`); one from our own device marks its
      destination as served; others (for other members, chains already held) change nothing;
    - an Init Member Entry adds its key to the admins; alias entries are recorded.

    GroupError, and nothing changed, if a signature or our box does not verify."""
    entry = verify_metadata(state.group, metadata)
    own_member, own_device = state.own.member.public, state.own.device.public
    if isinstance(entry, MemberDeviceEntry):
        if state.member_of(entry.device_pk) is not None:
            return state, entry
        return replace(state, devices=_put(state.devices, entry.device_pk, entry.member_pk)), entry
    if isinstance(entry, SecretEntry):
        if entry.device_pk == own_device:
            # handleGroupDeviceChainKeyAdded: the index learns whom we already served.
            if entry.dest_member_pk in state.secrets_sent:
                return state, entry
            return replace(state, secrets_sent=tuple(sorted((*state.secrets_sent, entry.dest_member_pk)))), entry
        if entry.dest_member_pk != own_member or state.chain_of(entry.device_pk) is not None:
            # ErrGroupSecretOtherDestMember is ignored; registerChainKey ignores a device
            # already registered ("Device is already registered, ignore it").
            return state, entry
        chain = open_device_chain_key(state.own.member, entry.device_pk, entry.payload, state.group)
        registered = ReceiverChain.register(chain, state.group.public_key, state.precompute)
        return replace(state, chains=_put(state.chains, entry.device_pk, registered)), entry
    if isinstance(entry, InitialMemberEntry):
        if entry.member_pk in state.admins:
            return state, entry
        return replace(state, admins=tuple(sorted((*state.admins, entry.member_pk)))), entry
    if isinstance(entry, ContactAliasKeyEntry):
        return replace(state, alias_keys=_put(state.alias_keys, entry.device_pk, entry.alias_pk)), entry
    if entry in state.alias_entries:
        return state, entry
    return replace(state, alias_entries=(*state.alias_entries, entry)), entry


def receive_metadata(state: GroupState, log_entry: LogEntry) -> tuple[GroupState, Entry]:
    """A metadata log entry: its log signature, its envelope, its entry's signatures, then
    `apply_metadata`. GroupError naming what failed, and nothing changed, otherwise."""
    envelope = verify_log_entry(state.group, log_entry)
    metadata, _ = open_metadata(state.group, envelope)
    return apply_metadata(state, metadata)


def send_message(state: GroupState, plaintext: bytes, random: Random = os.urandom) -> tuple[GroupState, LogEntry]:
    """messageStoreAddMessage: the message as a signed log entry, and the state with our
    chain one step on. The message key is not kept: the sender does not reopen its own
    messages here (weshnet caches it to read its own entries back from the log)."""
    envelope, chain = seal_message(state.own.device, state.own_chain, state.group, plaintext, random)
    return replace(state, own_chain=chain), sign_log_entry(state.group, envelope)


def receive_message(state: GroupState, log_entry: LogEntry) -> tuple[GroupState, ReceivedMessage]:
    """A message log entry (MessageStore.openMessage, secretStore.OpenEnvelopePayload): its
    log signature, its headers, the unspent message key of its counter in the sender's
    window, the message and its signature; then that key is spent and the window grows by
    one. GroupError naming what failed, and nothing changed, otherwise: weshnet queues a
    message it cannot open yet and retries it when the device's chain key comes or another
    of its messages opens; a driver here holds it and tries again."""
    group = state.group
    envelope = verify_log_entry(group, log_entry)
    env, headers = open_message_headers(group, envelope)
    if headers.device_pk == state.own.device.public:
        raise GroupError(Failure.OWN_MESSAGE, "this device sent the message (it keeps no key to reopen it)")
    chain = state.chain_of(headers.device_pk)
    if chain is None:
        raise GroupError(Failure.UNKNOWN_DEVICE, "no chain key from the sending device (no Secret Entry for "
                         "this member from it yet)")
    plaintext = open_message(chain.message_key(headers.counter), headers, env.message)
    spent = chain.spend(headers.counter, group.public_key)
    received = ReceivedMessage(headers.device_pk, state.member_of(headers.device_pk), headers.counter, plaintext)
    return replace(state, chains=_put(state.chains, headers.device_pk, spent)), received


# --- a device's handle -------------------------------------------------------------------


class GroupDevice:
    """A device in one group, as a mutable handle over `GroupState` for drivers, tests and
    the explorer: each call replaces `state` with the next one, or raises and keeps it.
    `snapshot` is the state itself (a frozen value, compared and hashed as one), `restore`
    puts one back."""

    def __init__(self, state: GroupState, random: Random = os.urandom) -> None:
        self.state = state
        self.random = random

    @classmethod
    def joining(cls, group: Group, own: MemberDevice, random: Random = os.urandom,
                precompute: int = PRECOMPUTE_MESSAGE_KEY_COUNT) -> GroupDevice:
        return cls(join(group, own, random, precompute), random)

    def snapshot(self) -> GroupState:
        return self.state

    def restore(self, state: GroupState) -> None:
        self.state = state

    @property
    def device_pk(self) -> bytes:
        return self.state.own.device.public

    @property
    def member_pk(self) -> bytes:
        return self.state.own.member.public

    def publish(self, metadata: GroupMetadata) -> LogEntry:
        return publish_metadata(self.state.group, metadata, self.random)

    def announce(self) -> LogEntry:
        """Our Member Entry, as a log entry (applied to our own state when it is received)."""
        return self.publish(member_device_metadata(self.state.own))

    def claim_ownership(self, group_key: Ed25519KeyPair) -> LogEntry:
        return self.publish(claim_ownership(self.state, group_key))

    def share_pending_secrets(self) -> list[LogEntry]:
        """A Secret Entry for every announced member not yet served (ourselves included)."""
        entries = []
        for member in members_awaiting_secret(self.state):
            self.state, metadata = share_chain_key(self.state, member)
            entries.append(self.publish(metadata))
        return entries

    def receive_metadata(self, log_entry: LogEntry) -> Entry:
        self.state, entry = receive_metadata(self.state, log_entry)
        return entry

    def send(self, plaintext: bytes) -> LogEntry:
        self.state, log_entry = send_message(self.state, plaintext, self.random)
        return log_entry

    def receive(self, log_entry: LogEntry) -> ReceivedMessage:
        self.state, received = receive_message(self.state, log_entry)
        return received
