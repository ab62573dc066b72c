"""Berty parties for scenarios (runtime.harness.simulation), and the protocol's own
expectations.

    [[party]]
    name = "bob"
    responds = true            # listens on its account's public rendezvous point

    [[party]]
    name = "alice"
    knows = "bob"              # holds bob's contact (account key and rendezvous seed)

    [[party]]
    name = "mallory"
    attacker = true            # not honest: the invariants judge what the others do
    knows = "bob"              # a stranger who learnt bob's rendezvous point
    listens_on = "bob"         # and listens on it, as bob does, to answer in his place

Each party's account key and rendezvous seed are drawn from the scenario's seed. `knows`
hands over the contact as it is when the scenario starts (a responder that renews its
seed later is out of reach of it); `blocks = "alice"` makes a responder that blocked that
account before.

Steps: `event = "SendContactRequest"` on a requester; `"AcceptContact"`,
`"DiscardContact"` or `"BlockContact"` on a responder whose dialog is open
(`in_state = "Requested"`); `"RenewSeed"` on a listening responder.

Expectations (`check`): `contacts = { bob = ["alice"] }` (whom each party added, by
party name), `sent = ...` is the generic key (messages sent); `requested = { alice =
["bob"] }` (whom each requester completed a handshake with), `blocked = { bob =
["alice"] }`, `pending = { bob = ["alice"] }` (requests awaiting the user).

Device linking (the fsm DeviceLinking, protocols/berty/linking.py): a party runs it with
`fsm = "DeviceLinking"` (a party with any of the keys below, or named by a `link_to`,
is a linking party too, and must not run another fsm):

    [[party]]
    name = "a"                 # a device of the account: it displays an invitation
    fsm = "DeviceLinking"
    camera = true              # A can scan QR codes: the QR code challenge (else the PIN)
    # fingerprint = true       # the user asked for the fingerprint challenge (scripted linking)
    # scans = "b"              # whose QR code the user scans with A's camera (default: the
                               # one honest device that links to A)

    [[party]]
    name = "b"                 # the new device
    fsm = "DeviceLinking"
    link_to = "a"              # its user scanned A's invitation
    # types_pin_of = "a"       # the PIN its user types (default: the inviter's)
    # types_wrong_pin = true   # or another

    [[party]]
    name = "mallory"
    fsm = "DeviceLinking"
    attacker = true
    link_to = "a"              # intercepted A's invitation; its user types a wrong PIN
    # requests_as = "b"        # and requests with b's device ID instead of its own

Each device's Device ID key pair, and an inviter's account, invitation token and PIN, are
drawn from the scenario's seed when the devices are made. Steps: `event = "ScanQRCode"`,
`"ConfirmFingerprint"` or `"RejectFingerprint"` on the inviter, `"EnterPin"` on the new
device. Expectations: `linked = { a = ["b"] }` (the devices whose ID the inviter sealed
the account's secrets to), `refused = { a = ["mallory"] }` (whose challenge failed),
`holds_account = ["b"]` (exactly the new devices that hold an account's secrets; the
generic `same_keys = [["a", "b"]]` compares the secrets held).

Multi-member groups (the fsm MultiMemberGroup, protocols/berty/group_device.py): a party
runs it with `fsm = "MultiMemberGroup"` (a party with any of the keys below, or named by
an `invited_to` or `injects_into`, is a group party too, and must not run another fsm):

    [[party]]
    name = "alice"
    creates = true             # draws a new group (the group id key, the secret, its sig)

    [[party]]
    name = "bob"
    invited_to = "alice"       # holds alice's group's invitation: its id, secret and sig

    [[party]]
    name = "mallory"
    attacker = true
    injects_into = "alice"     # knows the group id, not the secret: writes under its own

Each device's alias key (its member key in the group is derived from it) and its device
key for the group are drawn from the scenario's seed; every group party replicates both
logs from the start. Steps: `event = "Join"` (the device announces itself; on the creator,
it publishes the group first), `event = "SendGroupMessage"` with `text = "..."` (default
`<name> #<counter>`). Expectations: `reads = { bob = ["hello"] }` (the texts each device
opened, sorted), `members = { bob = ["alice", "bob"] }` (the members it indexed),
`holds_chains_of = { bob = ["alice"] }` (the devices whose chain key it holds),
`unreadable = { carol = 1 }` (how many messages it held and found sent before the chain
key it was given).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from protocols.berty import crypto
from protocols.berty.crypto import Ed25519KeyPair
from protocols.berty.device import BertyDevice, Contact
from protocols.berty.group_device import GROUP, GroupMemberDevice, log_addresses
from protocols.berty.groups import (
    Group,
    GroupState,
    MemberDevice,
    join,
    multi_member_key,
    new_device_chain_key,
    new_device_key,
    new_multi_member_group,
)
from protocols.berty.linking import PIN_DIGITS, Account, Invitation, LinkingDevice, draw_pin
from runtime.errors import ScenarioError
from runtime.seeded import SeededRandom

__all__ = ["EXPECTATIONS", "GROUP", "LINKING", "before_event", "check", "make_devices", "names_of"]

KEYS = {"name", "fsm", "responds", "knows", "attacker", "listens_on", "blocks"}
LINKING = "DeviceLinking"  # the fsm of device linking
LINK_KEYS = {"name", "fsm", "attacker", "camera", "fingerprint", "scans", "link_to", "types_pin_of",
             "types_wrong_pin", "requests_as"}
_LINK_ONLY = LINK_KEYS - {"name", "fsm", "attacker"}
_INVITER_KEYS = {"camera", "fingerprint", "scans"}
_JOINER_KEYS = {"link_to", "types_pin_of", "types_wrong_pin", "requests_as"}
GROUP_KEYS = {"name", "fsm", "creates", "invited_to", "attacker", "injects_into"}
_GROUP_ONLY = {"creates", "invited_to", "injects_into"}


def make_devices(parties: list[dict[str, Any]],
                 rng: random.Random) -> dict[str, BertyDevice | LinkingDevice | GroupMemberDevice]:
    linking = _linking_parties(parties)
    grouped = _group_parties(parties, linking)
    devices: dict[str, BertyDevice | LinkingDevice | GroupMemberDevice] = {}
    contact_specs: list[dict[str, Any]] = []
    link_specs: list[dict[str, Any]] = []
    group_specs: list[dict[str, Any]] = []
    own: dict[str, SeededRandom] = {}
    for spec in parties:  # one random source per party, in the order of the tables
        own[spec["name"]] = SeededRandom(rng.getrandbits(64))
        name = spec["name"]
        (link_specs if name in linking else group_specs if name in grouped else contact_specs).append(spec)
    devices.update(_contact_devices(contact_specs, [spec["name"] for spec in parties], own))
    devices.update(_linking_devices(link_specs, linking, own))
    devices.update(_group_devices(group_specs, grouped, own))
    return {spec["name"]: devices[spec["name"]] for spec in parties}


def _contact_devices(parties: list[dict[str, Any]], names: list[str],
                     own_rng: dict[str, SeededRandom]) -> dict[str, BertyDevice]:
    devices: dict[str, BertyDevice] = {}
    for spec in parties:
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise ScenarioError(f"party {spec['name']}: unknown keys {', '.join(unknown)} "
                                f"(Berty parties take {', '.join(sorted(KEYS))})")
        own = own_rng[spec["name"]]
        account = Ed25519KeyPair.from_seed(own.randbytes(32))
        responds = bool(spec.get("responds")) or "listens_on" in spec
        device = BertyDevice(spec["name"], account, responds=responds, attacker=bool(spec.get("attacker")),
                             rng=own)
        if responds:
            device.seed = own.randbytes(32)
        devices[spec["name"]] = device
    for spec in parties:
        device = devices[spec["name"]]
        for key in ("knows", "listens_on", *(("blocks",) if "blocks" in spec else ())):
            if key in spec and spec[key] not in names:
                raise ScenarioError(f"party {spec['name']}: {key} = {spec[key]!r} is no party of the scenario")
            if key in spec and spec[key] not in devices:
                raise ScenarioError(f"party {spec['name']}: {key} = {spec[key]!r} runs device linking")
        if "knows" in spec:
            peer = devices[spec["knows"]]
            if not peer.responds:
                raise ScenarioError(f"party {spec['name']}: knows {spec['knows']}, who does not respond")
            device.contact = Contact(peer.account.public, peer.seed)
        if "listens_on" in spec:
            # Where the party listens: on the other's point, with its own key (it cannot
            # have the other's).
            device.seed = devices[spec["listens_on"]].seed
            device.listens_as = devices[spec["listens_on"]].account.public
        if "blocks" in spec:
            device.blocked = frozenset({devices[spec["blocks"]].account.public})
    return devices


def _linking_parties(parties: list[dict[str, Any]]) -> set[str]:
    """The parties that run device linking: `fsm = "DeviceLinking"`, a linking key, or
    named by a `link_to`. A party that says it runs another fsm must have none of them."""
    linking = {spec["name"] for spec in parties if spec.get("fsm") == LINKING or set(spec) & _LINK_ONLY}
    linking |= {spec["link_to"] for spec in parties if isinstance(spec.get("link_to"), str)}
    for spec in parties:
        if spec["name"] in linking and spec.get("fsm", LINKING) != LINKING:
            raise ScenarioError(f"party {spec['name']}: runs fsm {spec['fsm']}, but takes part in device linking "
                                f"(fsm = \"{LINKING}\")")
    return linking


def _linking_devices(parties: list[dict[str, Any]], linking: set[str],
                     own_rng: dict[str, SeededRandom]) -> dict[str, LinkingDevice]:
    inviters = {spec["link_to"] for spec in parties if "link_to" in spec} | {
        spec["name"] for spec in parties if set(spec) & _INVITER_KEYS}
    devices: dict[str, LinkingDevice] = {}
    for spec in parties:
        name = spec["name"]
        unknown = sorted(set(spec) - LINK_KEYS)
        if unknown:
            raise ScenarioError(f"party {name}: unknown keys {', '.join(unknown)} "
                                f"(device linking parties take {', '.join(sorted(LINK_KEYS))})")
        for key in ("camera", "fingerprint", "types_wrong_pin", "attacker"):
            if not isinstance(spec.get(key, False), bool):
                raise ScenarioError(f"party {name}: {key} must be true or false")
        for key in ("scans", "link_to", "types_pin_of", "requests_as"):
            if key in spec and spec[key] not in linking:
                raise ScenarioError(f"party {name}: {key} = {spec[key]!r} is no device linking party")
            if key in spec and spec[key] == name:
                raise ScenarioError(f"party {name}: {key} names the party itself")
        own = own_rng[name]
        device = LinkingDevice(name, Ed25519KeyPair.from_seed(own.randbytes(crypto.KEY_SIZE)),
                               attacker=bool(spec.get("attacker")), rng=own)
        if name in inviters:
            if set(spec) & _JOINER_KEYS:
                raise ScenarioError(f"party {name}: a device of the account, it links to no other "
                                    f"({', '.join(sorted(set(spec) & _JOINER_KEYS))})")
            if device.attacker:
                raise ScenarioError(f"party {name}: an inviter is a device of the account, not an attacker")
            device.own_account = Account.generate(own)
            device.token = own.randbytes(16)
            device.pin = draw_pin(own)
            device.camera, device.fingerprint = bool(spec.get("camera")), bool(spec.get("fingerprint"))
        elif "link_to" not in spec:
            raise ScenarioError(f"party {name}: links to no device (link_to) and is linked to by none")
        devices[name] = device
    for spec in parties:
        device = devices[spec["name"]]
        if "link_to" in spec:
            _join(device, spec, devices)
        elif device.own_account is not None and device.camera:
            device.scanned = crypto.linking_qr_payload(_scanned(spec, parties, devices).device_id)
        elif "scans" in spec:
            raise ScenarioError(f"party {spec['name']}: scans a QR code, but has no camera")
    return devices


def _join(device: LinkingDevice, spec: dict[str, Any], devices: dict[str, LinkingDevice]) -> None:
    """A new device: the invitation its user scanned, the PIN they type, an attacker's claim."""
    inviter = devices[spec["link_to"]]
    device.invitation = Invitation(inviter.name, inviter.device_id, inviter.token)
    if "types_pin_of" in spec:
        shown = devices[spec["types_pin_of"]]
        if shown.own_account is None:
            raise ScenarioError(f"party {spec['name']}: types_pin_of = {shown.name!r}, which shows no PIN")
        device.typed_pin = shown.pin
    elif spec.get("types_wrong_pin") or device.attacker:
        # An attacker does not see A's screen: its user types a PIN that is not A's.
        device.typed_pin = str((int(inviter.pin) + 1) % 10**PIN_DIGITS).zfill(PIN_DIGITS)
    else:
        device.typed_pin = inviter.pin
    if "requests_as" in spec:
        if not device.attacker:
            raise ScenarioError(f"party {spec['name']}: only an attacker requests with another's device ID")
        device.claims = devices[spec["requests_as"]].device_id


def _scanned(spec: dict[str, Any], parties: list[dict[str, Any]], devices: dict[str, LinkingDevice]) -> LinkingDevice:
    """Whose QR code the user scans with A's camera: `scans`, or the one honest device
    that links to A."""
    if "scans" in spec:
        return devices[spec["scans"]]
    honest = [s["name"] for s in parties if s.get("link_to") == spec["name"] and not s.get("attacker")]
    if len(honest) != 1:
        raise ScenarioError(f"party {spec['name']}: say whose QR code its user scans (scans = \"...\"): "
                            f"{len(honest)} honest devices link to it")
    return devices[honest[0]]


def _group_parties(parties: list[dict[str, Any]], linking: set[str]) -> set[str]:
    """The parties that run a multi-member group: `fsm = "MultiMemberGroup"`, a group key,
    or named by an `invited_to` or `injects_into`."""
    grouped = {spec["name"] for spec in parties if spec.get("fsm") == GROUP or set(spec) & _GROUP_ONLY}
    grouped |= {spec[key] for spec in parties for key in ("invited_to", "injects_into")
                if isinstance(spec.get(key), str)}
    for spec in parties:
        if spec["name"] in grouped and (spec.get("fsm", GROUP) != GROUP or spec["name"] in linking):
            raise ScenarioError(f"party {spec['name']}: runs fsm {spec.get('fsm', LINKING)}, but takes part in a "
                                f"group (fsm = \"{GROUP}\")")
    return grouped


def _group_devices(parties: list[dict[str, Any]], grouped: set[str],
                   own_rng: dict[str, SeededRandom]) -> dict[str, GroupMemberDevice]:
    """The creators first (their groups are the invitations), then the invitees and the
    outsiders. Each device's alias key and device key are drawn from its own source."""
    creators = {spec["name"] for spec in parties if spec.get("creates")}
    devices: dict[str, GroupMemberDevice] = {}
    for spec in parties:
        name = spec["name"]
        unknown = sorted(set(spec) - GROUP_KEYS)
        if unknown:
            raise ScenarioError(f"party {name}: unknown keys {', '.join(unknown)} "
                                f"(group parties take {', '.join(sorted(GROUP_KEYS))})")
        for key in ("creates", "attacker"):
            if not isinstance(spec.get(key, False), bool):
                raise ScenarioError(f"party {name}: {key} must be true or false")
        roles = [k for k in ("creates", "invited_to", "injects_into") if spec.get(k)]
        if len(roles) != 1:
            raise ScenarioError(f"party {name}: a group party creates the group (creates = true), is invited to "
                                f"a creator's (invited_to = \"...\"), or injects into one (attacker = true, "
                                f"injects_into = \"...\"): not {roles or 'none'}")
        for key in ("invited_to", "injects_into"):
            if key in spec and spec[key] not in creators:
                raise ScenarioError(f"party {name}: {key} = {spec[key]!r} is no party that creates a group")
        if "injects_into" in spec and not spec.get("attacker"):
            raise ScenarioError(f"party {name}: only an attacker injects into a group it is not invited to")
        if spec.get("attacker") and "injects_into" not in spec:
            raise ScenarioError(f"party {name}: an attacker injects into a group (injects_into = \"...\")")
    order = sorted(parties, key=lambda spec: not spec.get("creates"))
    for spec in order:
        name, own = spec["name"], own_rng[spec["name"]]
        alias = Ed25519KeyPair.from_seed(own.randbytes(crypto.KEY_SIZE))
        device_key = new_device_key(own.randbytes)
        group_key = None
        if spec.get("creates"):
            group, group_key = new_multi_member_group(own.randbytes)
        elif "invited_to" in spec:
            group = devices[spec["invited_to"]].state.group  # the invitation: id key, secret, sig
        else:
            # An outsider knows the group id, not its secret: it writes under a secret of
            # its own, with no valid secret sig (join() would refuse such a group).
            real = devices[spec["injects_into"]].state.group
            group = Group(real.public_key, own.randbytes(crypto.KEY_SIZE), bytes(crypto.SIGNATURE_SIZE))
        member = MemberDevice(multi_member_key(alias, group.public_key), device_key)
        if spec.get("attacker"):
            state = GroupState(group=group, own=member, own_chain=new_device_chain_key(own.randbytes))
        else:
            state = join(group, member, own.randbytes)
        devices[name] = GroupMemberDevice(name, alias, group_key=group_key, attacker=bool(spec.get("attacker")),
                                          logs=log_addresses(group.public_key), rng=own, group=state)
    return devices


def before_event(device: Any, event: str, step: dict[str, Any]) -> None:
    """SendGroupMessage: the step's `text`, if it has one (else the device's default)."""
    if isinstance(device, GroupMemberDevice) and event == "SendGroupMessage":
        text = step.get("text")
        if text is not None and not isinstance(text, str):
            raise ScenarioError(f"step {step}: text must be a string")
        device.text = text


def names_of(parties: dict[str, Any]) -> dict[bytes, str]:
    """Account key -> party name (contact request parties), and device ID -> party name
    (device linking parties), for messages people read."""
    names = {p.device.account.public: name for name, p in parties.items() if isinstance(p.device, BertyDevice)}
    names.update({p.device.device_id: name for name, p in parties.items() if isinstance(p.device, LinkingDevice)})
    for name, p in parties.items():
        if isinstance(p.device, GroupMemberDevice):
            names[p.device.device_pk] = names[p.device.member_pk] = name
    return names


# The [expect] keys `check` reads.
EXPECTATIONS = ("contacts", "requested", "blocked", "pending", "linked", "refused", "holds_account",
                "reads", "members", "holds_chains_of", "unreadable")


def check(expect: dict[str, Any], parties: dict[str, Any]) -> list[str]:
    failures = []
    who = names_of(parties)

    def named(keys: Any) -> list[str]:
        return sorted(who.get(k, k.hex()[:8]) for k in keys)

    views: dict[str, tuple[type, Callable[[Any], list[str]]]] = {
        "contacts": (BertyDevice, lambda d: named(a for a, _ in d.contacts)),
        "requested": (BertyDevice, lambda d: named(a for a, _ in d.sent)),
        "blocked": (BertyDevice, lambda d: named(d.blocked)),
        "pending": (BertyDevice, lambda d: named(a for a, _ in d.requests)),
        "linked": (LinkingDevice, lambda d: named(d.handed)),
        "refused": (LinkingDevice, lambda d: named(k for _, k in d.refused)),
        "reads": (GroupMemberDevice, lambda d: sorted(p.decode(errors="replace") for _, _, p in d.read)),
        "members": (GroupMemberDevice, lambda d: named(d.state.members())),
        "holds_chains_of": (GroupMemberDevice, lambda d: named(k for k, _ in d.state.chains)),
    }
    kinds = {BertyDevice: "contact request", LinkingDevice: "linking", GroupMemberDevice: "group"}
    for key, (kind, view) in views.items():
        for name, wanted in expect.get(key, {}).items():
            device = parties[name].device
            if not isinstance(device, kind):
                failures.append(f"{name}: {key} is for {kinds[kind]} parties")
                continue
            got = view(device)
            if got != sorted(wanted):
                failures.append(f"{name}: {key} {got}, expected {sorted(wanted)}")
    for name, wanted in expect.get("unreadable", {}).items():
        device = parties[name].device
        if not isinstance(device, GroupMemberDevice):
            failures.append(f"{name}: unreadable is for group parties")
        elif len(device.unreadable) != wanted:
            failures.append(f"{name}: {len(device.unreadable)} messages found unreadable, expected {wanted}")
    if "holds_account" in expect:
        got = sorted(name for name, p in parties.items() if isinstance(p.device, LinkingDevice)
                     and p.device.own_account is None and p.device.account is not None)
        if got != sorted(expect["holds_account"]):
            failures.append(f"the new devices holding an account are {got}, expected {sorted(expect['holds_account'])}")
    return failures
