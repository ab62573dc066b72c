"""KeySync parties for scenarios: devices of one user, some already grouped; KeySync's
expectations of a scenario.

`make_devices` builds each party's KeySyncDevice from its scenario table:

    [[party]]
    name = "laptop"
    identities = ["alice@example.org"]   # own identities; default: one shared address
    group = "home"                       # parties with one group name start grouped

Grouped parties are built as a formed group leaves them (2.2.1.1): every member holds
every member's original keys, the identities' defaults are one member's keys, and all of
them are group keys.
"""

from __future__ import annotations

import random
from typing import Any

from protocols.keysync.device import KeySyncDevice
from protocols.keysync.envelope import DeviceKeys, EnvelopeError, open_envelope, seal
from protocols.keysync.keys import KeyRing, OwnIdentity
from runtime.seeded import SeededRandom

__all__ = ["EXPECTATIONS", "before_event", "check", "make_devices"]

DEFAULT_ADDRESS = "alice@example.org"


def _keys(rng: random.Random | SeededRandom) -> DeviceKeys:
    return DeviceKeys.generate(rng.getrandbits(256).to_bytes(32, "big"))


def make_devices(parties: list[dict[str, Any]], rng: random.Random,
                 device_class: type[KeySyncDevice] = KeySyncDevice) -> dict[str, KeySyncDevice]:
    """The scenario's devices, of class `device_class` (a variant's: protocols/keysync_repaired)."""
    devices: dict[str, KeySyncDevice] = {}
    for spec in parties:
        ring = KeyRing()
        for address in spec.get("identities", [DEFAULT_ADDRESS]):
            ring.add_identity(OwnIdentity(address, address.split("@")[0].title()), _keys(rng))
        devices[spec["name"]] = device_class(spec["name"], ring, SeededRandom(rng.getrandbits(64)))
        devices[spec["name"]].original = frozenset(ring.private)  # type: ignore[attr-defined]
    groups: dict[str, list[KeySyncDevice]] = {}
    for spec in parties:
        if "group" in spec:
            groups.setdefault(spec["group"], []).append(devices[spec["name"]])
    for members in groups.values():
        leader = members[0].keyring
        for device in members:
            ring = device.keyring
            for other in members:
                for fpr, keys in other.keyring.private.items():
                    ring.private.setdefault(fpr, keys)
                    ring.public.setdefault(fpr, keys.verify_key + keys.public)
            for address, fpr in leader.default.items():
                ring.identities.setdefault(address, leader.identities[address])
                ring.default[address] = fpr
        every = set().union(*(set(d.keyring.private) for d in members))
        for device in members:
            device.keyring.add_to_group(every)
            device.keyring.sync = device.keyring.primary
    for device in devices.values():
        device.initial = frozenset(device.keyring.private)  # type: ignore[attr-defined]
    return devices


def before_event(device: KeySyncDevice, event: str, step: dict[str, Any] | None = None) -> None:
    """KeyGen is what the core signals after generating a key: generate one first (for
    the first own identity; it becomes that identity's default)."""
    if event == "KeyGen":
        address = sorted(device.keyring.identities)[0]
        device.keyring.add_identity(device.keyring.identities[address], _keys(device.rng))


# The [expect] keys `check` reads (docs/scenarios.md).
EXPECTATIONS = ("holds_originals", "holds_only_own_keys", "key_reset_leaders", "no_private_keys_sent", "disabled")


def check(expect: dict[str, Any], parties: dict[str, Any]) -> list[str]:
    """KeySync expectations:
    - `holds_originals = ["a", "b"]`: each of these parties holds every other's original
      private keys, so a message encrypted to any device's original key decrypts on all
      of them (checked by decrypting one);
    - `holds_only_own_keys = [...]`: no key it did not start with;
    - `key_reset_leaders = N`: how many devices led a group key reset;
    - `no_private_keys_sent = true`: no message carried private keys;
    - `disabled = [...]`: these devices ran `disable`."""
    failures = []
    if "key_reset_leaders" in expect:
        leaders = sum(p.device.resets for p in parties.values())
        if leaders != expect["key_reset_leaders"]:
            failures.append(f"{leaders} devices led the key reset, expected {expect['key_reset_leaders']}")
    for name in expect.get("holds_only_own_keys", []):
        device = parties[name].device
        foreign = set(device.keyring.private) - device.initial
        if foreign:
            failures.append(f"{name} holds keys it did not start with: {sorted(f[:8] for f in foreign)}")
    if expect.get("no_private_keys_sent"):
        for name, p in parties.items():
            if p.device.sent_keys_to:
                failures.append(f"{name} sent private keys: {p.device.sent_keys_to}")
    for name in expect.get("disabled", []):
        if not parties[name].device.disabled:
            failures.append(f"{name} is not disabled")
    names = expect.get("holds_originals", [])
    for sender in names:
        s = parties[sender].device
        for fpr in sorted(s.original):
            keys = s.keyring.private[fpr]
            probe = seal(b"probe", keys, [keys.public])
            for receiver in names:
                r = parties[receiver].device
                try:
                    open_envelope(probe, list(r.keyring.private.values()))
                except EnvelopeError:
                    failures.append(f"{receiver} cannot decrypt a message to {sender}'s original key {fpr[:8]}")
    return failures
