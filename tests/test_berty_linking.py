"""Berty's device linking (protocols/berty/linking.py, the fsm DeviceLinking), run.

- the account's secrets arrive intact, and the new device can use them: the same account
  key, the same public rendezvous point, the same contact groups and account group;
- bad input for each linking message, where it is awaited (random bytes, a truncated
  message, a wrong key or token, a message from someone else, a message of another step):
  dropped or rejected with its step and reason, and nothing changes (the device's record
  and the machine's state); the one exception is the PIN, whose one attempt a wrong
  signature from the requester spends: the linking ends, and nothing leaves A;
- the scenarios explored under every fault, and deliberate bugs the invariants catch;
- the scenario tables make_devices refuses.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from nacl.bindings import crypto_secretbox

from fsmc.build import load_scenario, machines
from protocols.berty import crypto
from protocols.berty.linking import (
    ACCOUNT_SIZE,
    Account,
    LinkingDevice,
    LinkingError,
    LinkingState,
    open_account,
    seal_account,
    secrets_box_key,
)
from protocols.berty.parties import make_devices
from runtime.errors import ScenarioError
from runtime.framing import seal_named
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation
from runtime.party import Party
from runtime.seeded import SeededRandom
from runtime.transport import Delivery

FOLDER = ROOT / "protocols" / "berty"
SCENARIOS = FOLDER / "scenarios"
LINKS = sorted(SCENARIOS.glob("link_*.toml"))
QR, PIN, FINGERPRINT = SCENARIOS / "link_qr_code.toml", SCENARIOS / "link_pin.toml", SCENARIOS / "link_fingerprint.toml"


def device(sim: Simulation, name: str) -> LinkingDevice:
    d = sim.parties[name].device
    assert isinstance(d, LinkingDevice)
    return d


def started(path: Path) -> Simulation:
    sim = Simulation(load_scenario(path))
    sim.step({"start": True})
    return sim


def until(sim: Simulation, party: str, state: str) -> None:
    """Deliver in channel order until `party` is in `state`."""
    while sim.parties[party].machine.state_name != state:
        d = sim.network.next()
        assert d is not None, f"{party} never reached {state}"
        sim.parties[d.receiver].deliver(d)


def compared(record: LinkingState) -> LinkingState:
    """What tells states apart: not the message handled, its sender, the notes."""
    return dataclasses.replace(record, message=None, sender=None, rejected=())


def encoded(party: Party, name: str, **fields: Any) -> bytes:
    cls = next(c for c in party.machine.MESSAGES.values() if name == c.NAME)
    return party.codec.encode(cls(**fields))


def inject(sim: Simulation, to: str, data: bytes) -> list[Any]:
    """Hand `to` these envelope bytes; the trace entries it wrote."""
    start = len(sim.trace)
    sim.parties[to].deliver(Delivery(10_000, "channel", "?", to, data))
    return sim.trace[start:]


def unchanged(sim: Simulation, to: str, data: bytes) -> list[Any]:
    party = sim.parties[to]
    before = compared(device(sim, to).snapshot()), party.machine.state_name
    entries = inject(sim, to, data)
    after = compared(device(sim, to).snapshot()), party.machine.state_name
    assert after == before, f"{to} changed on bad input: {entries}"
    assert not any(e.kind == "send" for e in entries), entries
    return entries


def rejected(sim: Simulation, name: str) -> str:
    notes = device(sim, name).rejected
    assert notes, f"{name} rejected nothing"
    return notes[-1]


# --- what linking hands over


@pytest.mark.parametrize("path", [QR, PIN, FINGERPRINT], ids=lambda p: p.stem)
def test_the_account_arrives_intact_and_the_new_device_can_use_it(path: Path) -> None:
    sim = Simulation(load_scenario(path))
    assert sim.run().ok
    a, b = device(sim, "a"), device(sim, "b")
    assert a.own_account is not None and b.account is not None
    assert b.account == a.own_account and b.account.encode() == a.own_account.encode()
    assert b.holds() == a.holds() and b.material_digest() == a.material_digest() != ""
    # The same account key, alias key, public rendezvous point, account group.
    assert b.account.key.public == a.own_account.key.public
    assert b.account.alias.public == a.own_account.alias.public
    when = datetime(2026, 5, 1, tzinfo=UTC)
    assert b.account.rendezvous_point(when).rotation_topic == a.own_account.rendezvous_point(when).rotation_topic
    assert b.account.group.link_key == a.own_account.group.link_key
    # B can sign as the account, and lands in the same contact group as A with anyone.
    peer = crypto.Ed25519KeyPair.from_seed(bytes([9]) * 32)
    assert b.account.contact_group(peer.public) == a.own_account.contact_group(peer.public)
    assert crypto.contact_group(peer, b.account.key.public) == b.account.contact_group(peer.public)
    assert b.account.key.sign(b"hello") == a.own_account.key.sign(b"hello")
    # The device keys stay each device's own.
    assert b.device_key != a.device_key and b.device_id in a.handed


def test_the_secrets_travel_only_sealed() -> None:
    sim = Simulation(load_scenario(QR))
    sim.run()
    a = device(sim, "a")
    assert a.own_account is not None
    secrets = a.own_account.encode()
    for _, d in sim.network.log:
        assert secrets[:32] not in d.data and a.own_account.group.secret not in d.data


def test_account_encode_and_decode_round_trip_and_refuse_what_is_not_an_account() -> None:
    account = Account.generate(SeededRandom(3))
    data = account.encode()
    assert len(data) == ACCOUNT_SIZE == 256 and Account.decode(data) == account
    with pytest.raises(LinkingError, match="256 octets, not 255"):
        Account.decode(data[:-1])
    forged = data[:5 * 32] + bytes(64) + data[5 * 32 + 64:]  # the group secret sig
    with pytest.raises(LinkingError, match="group secret sig does not verify"):
        Account.decode(forged)


def test_the_box_opens_only_for_the_device_and_invitation_it_was_sealed_for() -> None:
    rng = SeededRandom(4)
    a, b, other = (crypto.Ed25519KeyPair.from_seed(rng.randbytes(32)) for _ in range(3))
    account, token, nonce = Account.generate(rng), rng.randbytes(16), rng.randbytes(24)
    sealed = seal_account(a, b.public, token, account, nonce)
    assert len(sealed) == 24 + 16 + 256 and sealed[:24] == nonce
    assert open_account(b, a.public, token, sealed) == account
    assert secrets_box_key(a, b.public, a.public, b.public, token) == secrets_box_key(b, a.public, a.public,
                                                                                     b.public, token)
    for who, sender, tok, data in [(other, a.public, token, sealed),  # another device key
                                   (b, other.public, token, sealed),  # not from A's device key
                                   (b, a.public, bytes(16), sealed),  # another invitation
                                   (b, a.public, token, sealed[:-1]),  # truncated
                                   (b, a.public, token, sealed[:24] + bytes([sealed[24] ^ 1]) + sealed[25:])]:
        with pytest.raises(LinkingError, match="does not open"):
            open_account(who, sender, tok, data)
    with pytest.raises(LinkingError, match="shorter than a nonce"):
        open_account(b, a.public, token, sealed[:39])
    with pytest.raises(LinkingError, match="no shared secret"):
        open_account(b, bytes(32), token, sealed)  # a small-order "device ID"


# --- bad input for each message


def _bad_bytes(sim: Simulation, to: str, valid: bytes) -> None:
    """Random bytes, and the valid message truncated: dropped before any handler."""
    for seed in range(3):
        r = random.Random(seed)
        entries = unchanged(sim, to, r.randbytes(r.randrange(1, 120)))
        assert entries[0].kind == "drop" and entries[0].code in ("envelope", "decode"), entries
    for cut in (1, len(valid) // 2, len(valid) - 1):
        entries = unchanged(sim, to, valid[:cut])
        assert entries and entries[0].kind == "drop", (cut, entries)


def _other_steps(sim: Simulation, to: str, sender: str, step: str) -> None:
    """Every other linking message, well formed and from the expected peer: ignored."""
    party = sim.parties[to]
    fields: dict[str, dict[str, Any]] = {
        "LinkRequest": {"device": device(sim, sender).device_id, "invitation": bytes(16)},
        "LinkChallenge": {"device": device(sim, to).device_id, "challenge": "qrCode"},
        "PinResponse": {"signature": bytes(64)},
        "AccountSecrets": {"sealed": bytes(296)},
    }
    for name, values in fields.items():
        if name != step:
            entries = unchanged(sim, to, seal_named(sender, encoded(party, name, **values)))
            assert any(e.kind == "ignored" for e in entries), (name, entries)


def test_a_bad_link_request_changes_nothing() -> None:
    sim = started(QR)
    a, b = device(sim, "a"), device(sim, "b")
    assert b.invitation is not None
    party = sim.parties["a"]

    def request(**fields: Any) -> bytes:
        values = {"device": b.device_id, "invitation": b.invitation.token} | fields  # type: ignore[union-attr]
        return seal_named("b", encoded(party, "LinkRequest", **values))

    _bad_bytes(sim, "a", request())
    unchanged(sim, "a", request(invitation=bytes(16)))
    assert "the token is not that of the open invitation" in rejected(sim, "a")
    unchanged(sim, "a", request(device=bytes(32)))  # a small-order point
    assert rejected(sim, "a").startswith("linking: 3. Link Request: the device ID is no usable key")
    unchanged(sim, "a", request(device=a.device_id))
    assert "this device's own" in rejected(sim, "a")
    _other_steps(sim, "a", "b", "LinkRequest")
    assert a.invitation_open and sim.parties["a"].machine.state_name == "Invited"


def test_a_bad_link_challenge_changes_nothing() -> None:
    sim = started(QR)
    until(sim, "a", "ScanningQRCode")  # b's request taken; the challenge in flight
    b = device(sim, "b")
    party = sim.parties["b"]

    def challenge(sender: str = "a", **fields: Any) -> bytes:
        values = {"device": b.device_id, "challenge": "pin"} | fields
        return seal_named(sender, encoded(party, "LinkChallenge", **values))

    _bad_bytes(sim, "b", challenge())
    unchanged(sim, "b", challenge(device=device(sim, "a").device_id))
    assert rejected(sim, "b") == "linking: 4. Link Challenge: for another device ID"
    unchanged(sim, "b", challenge("mallory"))
    assert "from mallory, not the invitation's peer" in rejected(sim, "b")
    _other_steps(sim, "b", "a", "LinkChallenge")
    until(sim, "b", "ShowingQRCode")  # and the real one is taken


def _awaiting_pin() -> Simulation:
    sim = started(PIN)
    until(sim, "b", "EnteringPin")
    assert sim.parties["a"].machine.state_name == "AwaitingPin"
    return sim


def test_a_bad_pin_response_changes_nothing() -> None:
    sim = _awaiting_pin()
    a, b = device(sim, "a"), device(sim, "b")
    signature = crypto.sign_linking_pin(b.device_key, a.pin, a.device_id + a.token)
    valid = seal_named("b", encoded(sim.parties["a"], "PinResponse", signature=signature))
    _bad_bytes(sim, "a", valid)
    # From someone other than the device A challenges: not an attempt, ignored.
    unchanged(sim, "a", seal_named("mallory", encoded(sim.parties["a"], "PinResponse", signature=signature)))
    _other_steps(sim, "a", "b", "PinResponse")
    # And the real one still links.
    inject(sim, "a", valid)
    assert a.handed == (b.device_id,) and sim.parties["a"].machine.state_name == "Closed"


@pytest.mark.parametrize("how", ["another key", "another PIN", "another invitation"])
def test_a_pin_signature_that_does_not_verify_spends_the_pin_and_sends_nothing(how: str) -> None:
    """The PIN's one attempt (crypto.new_linking_pin): a signature from the requester that
    does not verify ends the linking, or a guesser would have 10**6 tries."""
    sim = _awaiting_pin()
    a, b = device(sim, "a"), device(sim, "b")
    key = crypto.Ed25519KeyPair.from_seed(bytes([7]) * 32) if how == "another key" else b.device_key
    pin = "000000" if a.pin != "000000" else "000001"
    signature = crypto.sign_linking_pin(key, pin if how == "another PIN" else a.pin,
                                        a.device_id + (bytes(16) if how == "another invitation" else a.token))
    entries = inject(sim, "a", seal_named("b", encoded(sim.parties["a"], "PinResponse", signature=signature)))
    assert rejected(sim, "a").startswith("linking: PIN challenge: the PIN signature does not verify")
    assert not any(e.kind == "send" for e in entries)
    assert a.handed == () and a.refused == (("pin", b.device_id),) and not a.invitation_open
    assert sim.parties["a"].machine.state_name == "Closed"


def _awaiting_account(path: Path) -> Simulation:
    sim = started(path)
    if path == PIN:
        until(sim, "b", "EnteringPin")
        sim.step({"party": "b", "event": "EnterPin"})
        until(sim, "a", "Closed")
    else:
        until(sim, "b", "ShowingQRCode")
        sim.step({"party": "a", "event": "ScanQRCode"})
    assert device(sim, "a").handed  # the real box is in flight
    return sim


@pytest.mark.parametrize("path", [QR, PIN], ids=lambda p: p.stem)
def test_bad_account_secrets_change_nothing(path: Path) -> None:
    sim = _awaiting_account(path)
    a, b = device(sim, "a"), device(sim, "b")
    assert a.own_account is not None
    party = sim.parties["b"]
    state = party.machine.state_name

    def secrets(sealed: bytes, sender: str = "a") -> bytes:
        return seal_named(sender, encoded(party, "AccountSecrets", sealed=sealed))

    nonce = bytes(24)
    good = seal_account(a.device_key, b.device_id, a.token, a.own_account, nonce)
    _bad_bytes(sim, "b", secrets(good))
    stranger = crypto.Ed25519KeyPair.from_seed(bytes([8]) * 32)
    key = secrets_box_key(a.device_key, b.device_id, a.device_id, b.device_id, a.token)
    for bad, reason in [
        (seal_account(stranger, b.device_id, a.token, a.own_account, nonce), "does not open"),  # not A's key
        (seal_account(a.device_key, stranger.public, a.token, a.own_account, nonce), "does not open"),  # to another
        (seal_account(a.device_key, b.device_id, bytes(16), a.own_account, nonce), "does not open"),  # invitation
        (good[:-1], "does not open"),  # the box truncated
        (nonce + bytes(crypto_secretbox(random.Random(1).randbytes(256), nonce, key)), "group secret sig"),
        (nonce + bytes(crypto_secretbox(a.own_account.encode()[:200], nonce, key)), "256 octets, not 200"),
    ]:
        unchanged(sim, "b", secrets(bad))
        assert rejected(sim, "b").startswith("linking: 6. Account Secrets") and reason in rejected(sim, "b")
    unchanged(sim, "b", secrets(good, "mallory"))
    assert "not the invitation's peer" in rejected(sim, "b")
    _other_steps(sim, "b", "a", "AccountSecrets")
    assert b.account is None and party.machine.state_name == state
    sim.deliver_until_quiet()  # the real one
    assert b.account == a.own_account and party.machine.state_name == "Linked"


def test_a_message_of_the_other_fsm_is_dropped_as_foreign() -> None:
    sim = started(QR)
    contact = load_scenario(SCENARIOS / "contact_accepted.toml").machines
    data = contact.CODEC.encode(contact.RequesterHello(ephemeral=bytes(range(32))))
    entries = unchanged(sim, "a", seal_named("b", data))
    assert entries[0].kind == "drop" and entries[0].code == "foreign"


# --- explored


@pytest.mark.parametrize("path", LINKS, ids=lambda p: p.stem)
def test_every_linking_scenario_explores_completely_under_every_fault(path: Path) -> None:
    report = Explorer.for_scenario(load_scenario(path), faults="loss,dup,reorder,replay", timeouts=1).run()
    assert report.complete and report.violations == [], report.violations[:1]


def test_a_careless_fingerprint_confirmation_lets_an_attacker_in(tmp_path: Path) -> None:
    """The document's warning: the user can confirm without reading. With Mallory's
    request first, a confirmed fingerprint is hers; the explorer reaches it, and
    attackers_stay_out excuses exactly that (the user's confirmation of her ID)."""
    text = (SCENARIOS / "link_attacker_qr.toml").read_text()
    assert text.count("camera = true") == 1
    path = tmp_path / "link_attacker_fingerprint.toml"
    path.write_text(text.replace("camera = true", "fingerprint = true"))
    scenario = load_scenario(path)
    sim = Simulation(scenario)
    for step in ({"start": True}, {"deliver": True}, {"party": "a", "event": "ConfirmFingerprint"},
                 {"deliver": True}):
        sim.step(step)
    mallory = device(sim, "mallory")
    assert mallory.account == device(sim, "a").own_account
    assert ("fingerprint", mallory.device_id) in device(sim, "a").verified
    report = Explorer.for_scenario(scenario, faults="replay", timeouts=1).run()
    assert report.complete and report.violations == []


def _mutant(tmp_path: Path, old: str, new: str) -> Any:
    source = (FOLDER / "berty.fsm").read_text()
    assert source.count(old) == 1, old
    (tmp_path / "berty.fsm").write_text(source.replace(old, new))
    shutil.copy(FOLDER / "BertyTypes.asn1", tmp_path)
    return machines(tmp_path / "berty.fsm")


def _violated(path: Path, module: Any, invariant: str, **settings: Any) -> None:
    scenario = dataclasses.replace(load_scenario(path), machines=module)
    explorer = Explorer.for_scenario(scenario, **settings)
    report = explorer.run()
    names = {v.invariant for v in report.violations}
    assert invariant in names, report.violations
    violation = next(v for v in report.violations if v.invariant == invariant)
    checks = {i.__name__: i for i in (*explorer.safety, *explorer.quiescent, *explorer.terminal)}
    assert checks[invariant](explorer.replay(violation.path)) is not None
    clean = Explorer.for_scenario(load_scenario(path), **settings).run()
    assert clean.complete and clean.violations == []


SCAN = """            on ScanQRCode {
                if scannedCodeMatches {
                    do sealAccount;
                    send AccountSecrets to candidate;
                    go Closed;
                }
                do refuseLinking;
                go Closed;
            }"""


def test_a_device_that_seals_on_any_scan_is_caught(tmp_path: Path) -> None:
    """The bug: A hands the secrets over whatever the user scanned."""
    module = _mutant(tmp_path, SCAN, SCAN.replace("""                do refuseLinking;
                go Closed;""", """                do sealAccount;
                send AccountSecrets to candidate;
                go Closed;"""))
    _violated(SCENARIOS / "link_attacker_qr.toml", module, "secrets_only_after_challenge")
    _violated(SCENARIOS / "link_attacker_qr.toml", module, "attackers_stay_out")


def test_a_device_that_takes_any_pin_signature_is_caught(tmp_path: Path) -> None:
    """The bug: A checks who answers, not what they signed."""
    module = _mutant(tmp_path, "if pinSignatureValid {", "if fromCandidate {")
    _violated(SCENARIOS / "link_attacker_pin.toml", module, "attackers_stay_out")
    _violated(SCENARIOS / "link_wrong_pin.toml", module, "secrets_only_after_challenge")


def test_a_new_device_that_ignores_the_challenge_kind_is_caught(tmp_path: Path) -> None:
    """The bug: B never asks its user for the PIN and waits for the secrets: A's PIN
    challenge is never answered. Nothing leaves A, so no safety invariant fails; with no
    timeout to end it, linking_ends does."""
    module = _mutant(tmp_path, """                    if pinChallenge
                        go EnteringPin;""", """                    if pinChallenge
                        go AwaitingAccount;""")
    assert not Simulation(dataclasses.replace(load_scenario(PIN), machines=module)).run().ok
    _violated(PIN, module, "linking_ends", faults="loss", timeouts=0)


def test_an_invitation_that_is_not_spent_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug, in the device: A takes a request and leaves its invitation open. The
    invariants say so at once; without them, replays_change_nothing shows why it matters:
    after the challenge times out, a replayed request opens a second one."""
    take: Callable[[LinkingDevice], None] = LinkingDevice.takeRequest

    def keep_open(self: LinkingDevice) -> None:
        take(self)
        self.invitation_open = True

    monkeypatch.setattr(LinkingDevice, "takeRequest", keep_open)
    scenario = load_scenario(SCENARIOS / "link_wrong_pin.toml")
    report = Explorer.for_scenario(scenario, faults="replay", timeouts=1).run()
    assert "secrets_only_after_challenge" in {v.invariant for v in report.violations}
    only_replays = dataclasses.replace(scenario.protocol.invariants, safety=(), terminal=())
    report = Explorer.for_scenario(scenario, invariants=only_replays, faults="replay", timeouts=1).run()
    assert any(v.invariant == "replays_change_nothing" and "LinkRequest" in v.message for v in report.violations)


# --- scenario tables


@pytest.mark.parametrize(("parties", "message"), [
    ([{"name": "a", "camera": True}, {"name": "b", "link_to": "a"}, {"name": "c", "link_to": "a"}],
     "say whose QR code"),
    ([{"name": "a", "scans": "b"}, {"name": "b", "link_to": "a"}], "has no camera"),
    ([{"name": "a"}, {"name": "b", "link_to": "a", "requests_as": "a"}], "only an attacker"),
    ([{"name": "a"}, {"name": "b", "link_to": "a", "fsm": "ContactRequest"}], "takes part in device linking"),
    ([{"name": "a"}, {"name": "b", "link_to": "a", "camera": 1}], "camera must be true or false"),
    ([{"name": "a"}, {"name": "b", "link_to": "a", "colour": "red"}], "unknown keys colour"),
    ([{"name": "a"}, {"name": "b", "link_to": "b"}], "names the party itself"),
    ([{"name": "a", "fsm": "DeviceLinking"}, {"name": "b", "link_to": "a", "types_pin_of": "b"}],
     "names the party itself"),
    ([{"name": "a", "attacker": True}, {"name": "b", "link_to": "a"}], "not an attacker"),
    ([{"name": "a", "camera": True, "link_to": "b"}, {"name": "b"}], "links to no other"),
    ([{"name": "a"}, {"name": "b", "fsm": "DeviceLinking"}, {"name": "c", "link_to": "a"}], "links to no device"),
    ([{"name": "a"}, {"name": "b", "link_to": "a"}, {"name": "c", "knows": "a"}], "runs device linking"),
])
def test_tables_that_make_no_sense_are_refused(parties: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        make_devices(parties, random.Random(0))


def test_the_contact_parties_are_made_as_before_beside_linking_ones() -> None:
    """A linking party among contact parties leaves theirs as a scenario without it
    makes them (one random source per party, in table order)."""
    contact = [{"name": "bob", "responds": True}, {"name": "alice", "knows": "bob"}]
    alone = make_devices(contact, random.Random(5))
    mixed = make_devices([*contact, {"name": "a"}, {"name": "b", "link_to": "a"}], random.Random(5))
    for name in ("bob", "alice"):
        assert alone[name].snapshot() == mixed[name].snapshot()
        assert alone[name].account == mixed[name].account  # type: ignore[union-attr]
    assert isinstance(mixed["a"], LinkingDevice) and isinstance(mixed["b"], LinkingDevice)
