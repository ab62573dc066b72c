"""Status parties for scenarios: each party is one installation of an identity.

    [[party]]
    name = "alice"              # the party: one installation
    identity = "alice"          # its identity (default: the name); parties naming the same
                                # identity share its key, drawn once
    installation = "alice-1"    # its installation id (default: the name)
    has_bundle_of = ["bob"]     # identities whose bundle it holds at the start (a scanned
                                # QR code or contact code): every installation of theirs
                                # that is paired at the start
    paired_with = ["alice2"]    # parties of its own identity paired and approved at the start
    lost_at = 1                 # from this simulated time (seconds) on the installation is
                                # gone (a lost phone): it takes no message any more

Steps: `event = "SendChat"` with `to = "bob"` (an identity) and `text = "..."` (defaults:
the first other identity it can reach, "hello"); `"RotateBundle"`; `"ApproveInstallation"`
(the oldest pending installation of its own identity); `"PairDevices"` (its bundle to its
own identity's topic).

Expectations (`check`): `received = { bob = ["hello"] }` (the texts each party decrypted,
in order), `sessions = { alice = 1 }` (its usable sessions), `approved = { alice = ["alice2"] }`
(the own installations it sends to, by party name), `targets = { bob = ["alice2"] }` (the
parties its next message to their identity reaches).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from protocols.status import crypto as sc
from protocols.status.device import Installation, PreKey, StatusDevice
from runtime.errors import ScenarioError
from runtime.seeded import SeededRandom

__all__ = ["EXPECTATIONS", "before_event", "check", "make_devices"]

KEYS = {"name", "identity", "installation", "has_bundle_of", "paired_with", "lost_at"}


def make_devices(parties: list[dict[str, Any]], rng: random.Random) -> dict[str, StatusDevice]:
    keys: dict[str, sc.KeyPair] = {}
    own: dict[str, SeededRandom] = {}
    for spec in parties:
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise ScenarioError(f"party {spec['name']}: unknown keys {', '.join(unknown)} "
                                f"(Status parties take {', '.join(sorted(KEYS))})")
        own[spec["name"]] = SeededRandom(rng.getrandbits(64))
        identity = spec.get("identity", spec["name"])
        if identity not in keys:
            keys[identity] = sc.new_key_pair(own[spec["name"]].randbytes)
    directory: Mapping[str, bytes] = MappingProxyType({n: k.public for n, k in keys.items()})
    devices: dict[str, StatusDevice] = {}
    ids: set[str] = set()
    for spec in parties:
        name, identity = spec["name"], spec.get("identity", spec["name"])
        iid = spec.get("installation", name)
        if not isinstance(iid, str) or not iid or iid in ids:
            raise ScenarioError(f"party {name}: installation {iid!r} must be a new non-empty string")
        ids.add(iid)
        r = own[name]
        lost_at = spec.get("lost_at")
        if lost_at is not None and (isinstance(lost_at, bool) or not isinstance(lost_at, (int, float))):
            raise ScenarioError(f"party {name}: lost_at must be a time in seconds")
        device = StatusDevice(name, identity, keys[identity].private, keys[identity].public, iid, directory, rng=r,
                              lost_at=None if lost_at is None else float(lost_at))
        pair = sc.new_key_pair(r.randbytes)
        device.prekeys = (PreKey(1, pair.private, pair.public),)
        devices[name] = device
    by_identity: dict[str, list[StatusDevice]] = {}
    for d in devices.values():
        by_identity.setdefault(d.identity_name, []).append(d)
    for spec in parties:
        d = devices[spec["name"]]
        for other in spec.get("paired_with", []):
            if other not in devices or devices[other].identity != d.identity or other == d.name:
                raise ScenarioError(f"party {d.name}: paired_with {other!r} is no other installation of its identity")
            o = devices[other]
            d.installations = (*d.installations, Installation(o.identity, o.installation_id, o.prekeys[0].public,
                                                              1, 0, enabled=True))
        if len(d.installations) > sc.MAX_INSTALLATIONS - 1:
            raise ScenarioError(f"party {d.name}: at most {sc.MAX_INSTALLATIONS} paired installations")
    for d in devices.values():
        d._rebundle()
    for spec in parties:
        d = devices[spec["name"]]
        for identity in spec.get("has_bundle_of", []):
            if identity not in by_identity or identity == d.identity_name:
                raise ScenarioError(f"party {d.name}: has_bundle_of {identity!r} is no other identity")
            # The bundle of the identity's first installation: its own prekey and those of
            # the installations it paired with.
            source = by_identity[identity][0]
            assert source.bundle is not None
            for iid, key in source.bundle.signed_pre_keys:
                d.installations = (*d.installations, Installation(source.identity, iid, key.signed_pre_key,
                                                                  key.version, source.bundle.timestamp, enabled=True))
        d.installations = tuple(sorted(d.installations, key=lambda i: (i.identity, i.installation_id)))
    return devices


def before_event(device: StatusDevice, event: str, step: dict[str, Any] | None = None) -> None:
    """SendChat: the step's `to` (an identity name) and `text`; the explorer's default is
    the first other identity the installation can reach, and "hello". The other requests
    are recorded for the invariants (StatusDevice.asked): what the user asked for, and, of
    an approval, which installation was pending."""
    if event in ("RotateBundle", "PairDevices"):
        device.asked = (*device.asked, (event, ""))
    if event == "ApproveInstallation":
        pending = device.own_installations(enabled=False)
        device.asked = (*device.asked, (event, pending[0].installation_id if pending else ""))
    if event != "SendChat":
        return
    step = step or {}
    if "to" in step:
        if step["to"] not in device.directory:
            raise ScenarioError(f"SendChat to {step['to']!r}: no such identity")
        to = device.directory[step["to"]]
    else:
        reachable = [k for n, k in sorted(device.directory.items()) if k != device.identity and device.targets(k)]
        to = reachable[0] if reachable else device.identity
    device.compose = (to, str(step.get("text", "hello")))


EXPECTATIONS = ("received", "sessions", "approved", "targets")


def check(expect: dict[str, Any], parties: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    devices: dict[str, StatusDevice] = {n: p.device for n, p in parties.items()}
    by_installation = {d.installation_id: n for n, d in devices.items()}
    for name, wanted in expect.get("received", {}).items():
        got = [pt.decode().split(":", 1)[1] for _, _, pt in devices[name].received]
        if got != list(wanted):
            failures.append(f"{name}: received {got}, expected {list(wanted)}")
    for name, wanted in expect.get("sessions", {}).items():
        got_n = sum(1 for s in devices[name].sessions if s.usable)
        if got_n != wanted:
            failures.append(f"{name}: {got_n} usable sessions, expected {wanted}")
    for name, wanted in expect.get("approved", {}).items():
        d = devices[name]
        got = sorted(by_installation.get(i.installation_id, i.installation_id) for i in d.own_installations(True))
        if got != sorted(wanted):
            failures.append(f"{name}: approved {got}, expected {sorted(wanted)}")
    for name, wanted in expect.get("targets", {}).items():
        d = devices[name]
        who = {devices[w].identity for w in wanted} or {k for k in d.directory.values() if k != d.identity}
        got = sorted(by_installation.get(i.installation_id, i.installation_id) for k in who for i in d.targets(k))
        if got != sorted(wanted):
            failures.append(f"{name}: sends to {got}, expected {sorted(wanted)}")
    return failures
