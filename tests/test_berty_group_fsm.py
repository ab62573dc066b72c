"""Berty's multi-member groups as an fsm (protocols/berty/group_device.py, the fsm
MultiMemberGroup), run: groups.py's cryptography is tested in tests/test_berty_groups.py.

- the group scenarios meet their expectations and explore completely with their settings;
- bad input at every message (random bytes, an envelope under another group's secret, a
  truncated or altered envelope, an entry of another kind, a message of another log, a
  replay) is dropped with the GroupError that says why, and nothing changes;
- a late member holds the messages sent before it joined and never opens them, not even
  one sent while its Member Entry was on its way; it opens what follows;
- deliberate bugs the invariants catch: a chain that does not advance (forward secrecy),
  a member that does not share its chain key with a new member, a device that drops a
  message that overtook its sender's chain key instead of holding it (progress).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from fsmc.build import load_scenario, machines
from protocols.berty import group_device, invariants
from protocols.berty.group_device import GroupMemberDevice, GroupRecord
from protocols.berty.groups import (
    Failure,
    GroupError,
    GroupState,
    LogEntry,
    new_multi_member_group,
    receive_message,
    sign_log_entry,
)
from protocols.berty.parties import make_devices
from runtime.errors import ScenarioError
from runtime.framing import seal_named
from runtime.harness.explore import Explorer
from runtime.harness.simulation import Simulation
from runtime.manifest import Invariants
from runtime.seeded import SeededRandom
from runtime.transport import Delivery

FOLDER = ROOT / "protocols" / "berty"
SCENARIOS = FOLDER / "scenarios"
GROUPS = sorted(SCENARIOS.glob("group_*.toml"))
THREE, LATE = SCENARIOS / "group_three_members.toml", SCENARIOS / "group_late_member.toml"
KINDS = ("InitMemberEntry", "MemberEntry", "SecretEntry", "GroupMessage")


def device(sim: Simulation, name: str) -> GroupMemberDevice:
    d = sim.parties[name].device
    assert isinstance(d, GroupMemberDevice)
    return d


def run(path: Path, steps: int | None = None) -> Simulation:
    """The scenario's first `steps` steps (all of them by default)."""
    scenario = load_scenario(path)
    sim = Simulation(scenario)
    for step in scenario.steps[:steps]:
        sim.step(step)
    return sim


def compared(record: GroupRecord) -> GroupRecord:
    return dataclasses.replace(record, unreadable=(), incoming=None, text=None, rejected=())


def posted(sim: Simulation, kind: str) -> list[Any]:
    """The messages of this kind posted so far (their records, with envelope and logSig)."""
    return [d.label[1] for k, d in sim.network.log if k == "post" and d.label and kind == d.label[1].NAME]


def encoded(sim: Simulation, to: str, kind: str, envelope: bytes, sig: bytes) -> bytes:
    party = sim.parties[to]
    cls = next(c for c in party.machine.MESSAGES.values() if kind == c.NAME)
    return party.codec.encode(cls(envelope=envelope, logSig=sig))


def inject(sim: Simulation, to: str, data: bytes, sender: str = "mallory") -> list[Any]:
    start = len(sim.trace)
    sim.parties[to].deliver(Delivery(10_000, "channel", sender, to, data))
    return sim.trace[start:]


def unchanged(sim: Simulation, to: str, data: bytes) -> list[Any]:
    """Deliver, and check nothing changed and nothing was sent; the trace entries."""
    party = sim.parties[to]
    before = compared(device(sim, to).snapshot()), party.machine.state_name
    entries = inject(sim, to, data)
    after = compared(device(sim, to).snapshot()), party.machine.state_name
    assert after == before, f"{to} changed on bad input: {entries}"
    assert not any(e.kind in ("send", "receive") for e in entries), entries
    return entries


def dropped(sim: Simulation, to: str, data: bytes, code: tuple[str, ...] = ("berty-group",),
            failure: Failure | None = None) -> str:
    entries = unchanged(sim, to, data)
    drops = [e for e in entries if e.kind == "drop"]
    assert drops and drops[-1].code in code, entries
    if failure is not None:
        assert drops[-1].detail.startswith(f"GroupError: {failure}"), drops[-1].detail
    return drops[-1].detail


# --- the scenarios


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: p.stem)
def test_the_group_scenarios_meet_their_expectations(path: Path) -> None:
    result = Simulation(load_scenario(path)).run()
    assert result.failures == []


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: p.stem)
def test_every_group_scenario_explores_completely(path: Path) -> None:
    report = Explorer.for_scenario(load_scenario(path)).run()
    assert report.complete and report.violations == [], report.violations[:1]


def test_the_scenarios_cover_the_brief() -> None:
    assert {p.stem for p in GROUPS} == {"group_three_members", "group_late_member", "group_out_of_order",
                                       "group_lost_message", "group_replay", "group_outsider"}


# --- bad input at every message


@pytest.fixture
def settled() -> Simulation:
    """Three members, every chain key delivered, one message each read (group_three_members)."""
    sim = run(THREE, 9)
    assert {n: len(device(sim, n).state.chains) for n in ("alice", "bob", "carol")} == {
        "alice": 2, "bob": 2, "carol": 2}
    return sim


@pytest.mark.parametrize("kind", KINDS)
def test_random_bytes_are_dropped(settled: Simulation, kind: str) -> None:
    rnd = SeededRandom(KINDS.index(kind))
    for _ in range(20):  # a random length octet and name, then bytes that are no message
        dropped(settled, "bob", rnd.randbytes(rnd.randrange(1, 400)), code=("envelope", "decode"))
    dropped(settled, "bob", seal_named("mallory", rnd.randbytes(200)), code=("decode",))
    envelope, sig = rnd.randbytes(250), rnd.randbytes(64)
    dropped(settled, "bob", seal_named("mallory", encoded(settled, "bob", kind, envelope, sig)),
            failure=Failure.LOG_SIGNATURE)


@pytest.mark.parametrize("kind", KINDS)
def test_an_entry_under_another_groups_secret_is_dropped(settled: Simulation, kind: str) -> None:
    """An outsider's: well formed, sealed and signed, but under a secret of its own."""
    genuine = posted(settled, kind)[0]
    other, _ = new_multi_member_group(SeededRandom(2).randbytes)
    forged = sign_log_entry(other, bytes(genuine.envelope))
    data = seal_named("mallory", encoded(settled, "bob", kind, forged.payload, forged.sig))
    dropped(settled, "bob", data, failure=Failure.LOG_SIGNATURE)


@pytest.mark.parametrize("kind", KINDS)
def test_a_truncated_or_altered_entry_is_dropped(settled: Simulation, kind: str) -> None:
    group = device(settled, "alice").state.group
    genuine = posted(settled, kind)[0]
    envelope = bytes(genuine.envelope)
    # Cut, as it travels (the log signature no longer verifies).
    dropped(settled, "bob", seal_named("alice", encoded(settled, "bob", kind, envelope[:-7], bytes(genuine.logSig))),
            failure=Failure.LOG_SIGNATURE)
    # Cut or altered, and signed again by a holder of the secret: the envelope's MAC.
    for bad in (envelope[:-7], envelope[:-1] + bytes([envelope[-1] ^ 1])):
        signed = sign_log_entry(group, bad)
        detail = dropped(settled, "bob", seal_named("alice", encoded(settled, "bob", kind, signed.payload, signed.sig)))
        assert any(detail.startswith(f"GroupError: {f}") for f in (Failure.ENVELOPE, Failure.DECODE, Failure.PAYLOAD,
                                                                      Failure.NONCE)), detail


@pytest.mark.parametrize("kind", KINDS)
def test_an_entry_of_another_step_is_dropped(settled: Simulation, kind: str) -> None:
    """Each message kind carrying a genuine entry of every other kind."""
    for other in KINDS:
        if other == kind:
            continue
        genuine = posted(settled, other)[0]
        data = seal_named("alice", encoded(settled, "bob", kind, bytes(genuine.envelope), bytes(genuine.logSig)))
        detail = dropped(settled, "bob", data)
        metadata = {kind, other} - {"GroupMessage"} == {kind, other}
        if metadata:
            assert detail.startswith(f"GroupError: {Failure.EVENT_TYPE}"), detail
        else:
            assert detail.startswith(f"GroupError: {Failure.DECODE}") or detail.startswith(
                f"GroupError: {Failure.ENVELOPE}") or detail.startswith(f"GroupError: {Failure.NONCE}"), detail


@pytest.mark.parametrize("kind", KINDS)
def test_a_replayed_entry_or_message_changes_nothing(settled: Simulation, kind: str) -> None:
    for message in posted(settled, kind):
        sender = message_sender(settled, message)
        for to in ("alice", "bob", "carol"):
            data = seal_named(sender, encoded(settled, to, kind, bytes(message.envelope), bytes(message.logSig)))
            party = settled.parties[to]
            before = compared(device(settled, to).snapshot()), party.machine.state_name
            entries = inject(settled, to, data, sender=sender)
            assert (compared(device(settled, to).snapshot()), party.machine.state_name) == before, entries
            assert not any(e.kind == "send" for e in entries), entries
    if kind == "GroupMessage":
        genuine = posted(settled, kind)[0]
        data = seal_named("alice", encoded(settled, "bob", kind, bytes(genuine.envelope), bytes(genuine.logSig)))
        dropped(settled, "bob", data, failure=Failure.COUNTER_REPLAYED)


def message_sender(sim: Simulation, message: Any) -> str:
    return next(d.sender for k, d in sim.network.log if k == "post" and d.label and d.label[1] is message)


def test_a_device_drops_its_own_entries_back_from_the_log(settled: Simulation) -> None:
    genuine = posted(settled, "GroupMessage")[0]
    data = seal_named("alice", encoded(settled, "alice", "GroupMessage", bytes(genuine.envelope),
                                       bytes(genuine.logSig)))
    dropped(settled, "alice", data, failure=Failure.OWN_MESSAGE)


def test_a_message_from_an_unknown_device_is_held_once_and_opens_when_its_chain_comes() -> None:
    """bob gets alice's message before her Secret Entry: he holds it (a second copy is held
    once), and opens it when the chain key comes."""
    sim = run(THREE, 4)  # everyone joined; nothing delivered
    while sim.network.queue("alice"):  # alice indexes bob's and carol's Member Entries, shares
        d = sim.network.queue("alice")[0]
        sim.parties["alice"].deliver(sim.network.deliver(d))
    assert device(sim, "bob").member_pk in device(sim, "alice").state.secrets_sent
    sim.step({"party": "alice", "event": "SendGroupMessage", "text": "early"})
    early = posted(sim, "GroupMessage")[-1]
    data = seal_named("alice", encoded(sim, "bob", "GroupMessage", bytes(early.envelope), bytes(early.logSig)))
    bob = device(sim, "bob")
    inject(sim, "bob", data, sender="alice")
    assert len(bob.held) == 1 and bob.read == ()
    before = compared(bob.snapshot())
    inject(sim, "bob", data, sender="alice")
    assert compared(bob.snapshot()) == before  # held once
    sim.deliver_until_quiet()
    assert bob.held == () and [p for _, _, p in bob.read] == [b"early"] and bob.unreadable == ()


# --- forward secrecy for late members


def test_a_late_member_holds_the_earlier_messages_and_never_opens_them() -> None:
    sim = run(LATE)
    carol, alice, bob = device(sim, "carol"), device(sim, "alice"), device(sim, "bob")
    early = {(alice.device_pk, 1), (bob.device_pk, 1)}
    assert set(carol.unreadable) == early
    assert {(k, c) for k, c, _ in carol.read} == {(alice.device_pk, 2), (bob.device_pk, 2)}
    assert carol.state.chain_of(alice.device_pk).first_counter == 1  # type: ignore[union-attr]
    # With every key she will ever hold, the early messages still do not open.
    for message in posted(sim, "GroupMessage")[:2]:
        with pytest.raises(GroupError) as caught:
            receive_message(carol.state, LogEntry(bytes(message.envelope), bytes(message.logSig)))
        assert caught.value.failure is Failure.COUNTER_BEFORE_CHAIN


def test_a_message_sent_while_the_late_members_entry_travels_never_opens_for_it() -> None:
    sim = run(LATE, 8)  # carol just joined: her Member Entry is on its way
    sim.step({"party": "alice", "event": "SendGroupMessage", "text": "racing"})
    sim.deliver_until_quiet()
    sim.step({"party": "alice", "event": "SendGroupMessage", "text": "after"})
    sim.deliver_until_quiet()
    carol, bob = device(sim, "carol"), device(sim, "bob")
    assert sorted(p for _, _, p in carol.read) == [b"after"]
    assert sorted(p for _, _, p in bob.read) == [b"after", b"before carol (alice)", b"racing"]
    assert len(carol.unreadable) == 3  # the two early ones and the racing one


# --- the tables


@pytest.mark.parametrize(("parties", "message"), [
    ([{"name": "a", "creates": True, "invited_to": "a"}], "creates the group"),
    ([{"name": "a", "fsm": "MultiMemberGroup"}], "creates the group"),
    ([{"name": "a", "creates": True}, {"name": "b", "invited_to": "c"}], "no party that creates"),
    ([{"name": "a", "creates": True}, {"name": "m", "injects_into": "a"}], "only an attacker"),
    ([{"name": "a", "creates": True}, {"name": "m", "attacker": True, "fsm": "MultiMemberGroup"}],
     "injects into one"),
    ([{"name": "a", "creates": True, "knows": "b"}], "unknown keys"),
    ([{"name": "a", "creates": True, "fsm": "ContactRequest"}], "takes part in a group"),
])
def test_tables_that_make_no_sense_are_refused(parties: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        make_devices(parties, SeededRandom(0))


def test_group_parties_beside_contact_and_linking_ones() -> None:
    devices = make_devices([{"name": "bob", "responds": True}, {"name": "alice", "knows": "bob"},
                            {"name": "a", "fsm": "DeviceLinking"}, {"name": "b", "link_to": "a"},
                            {"name": "g", "creates": True}, {"name": "h", "invited_to": "g"}], SeededRandom(3))
    g, h = devices["g"], devices["h"]
    assert isinstance(g, GroupMemberDevice) and isinstance(h, GroupMemberDevice)
    assert g.state.group == h.state.group and g.member_pk != h.member_pk and g.group_key is not None
    assert h.group_key is None and g.listening() == h.listening()


# --- deliberate bugs


def _mutant(tmp_path: Path, old: str, new: str) -> Any:
    source = (FOLDER / "berty.fsm").read_text()
    assert source.count(old) == 1, old
    (tmp_path / "berty.fsm").write_text(source.replace(old, new))
    shutil.copy(FOLDER / "BertyTypes.asn1", tmp_path)
    return machines(tmp_path / "berty.fsm")


def _violated(path: Path, invariant: str, module: Any = None) -> None:
    scenario = load_scenario(path)
    if module is not None:
        scenario = dataclasses.replace(scenario, machines=module)
    explorer = Explorer.for_scenario(scenario)
    report = explorer.run()
    names = {v.invariant for v in report.violations}
    assert invariant in names, report.violations
    violation = next(v for v in report.violations if v.invariant == invariant)
    checks = {i.__name__: i for i in (*explorer.safety, *explorer.quiescent, *explorer.terminal)}
    assert checks[invariant](explorer.replay(violation.path)) is not None


def test_a_member_that_does_not_share_its_chain_with_a_new_member_is_caught(tmp_path: Path) -> None:
    module = _mutant(tmp_path, """            on MemberEntry {
                do indexEntry;
                do shareSecrets;
            }""", """            on MemberEntry
                do indexEntry;""")
    _violated(SCENARIOS / "group_replay.toml", "delivered_are_opened", module)


def test_a_chain_that_does_not_advance_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device that seals every message with its first message key: a late member given its
    chain key opens what was sent before it joined."""
    original = group_device.send_message

    def stuck(state: GroupState, plaintext: bytes, random: Any = os.urandom) -> tuple[GroupState, LogEntry]:
        sent, entry = original(state, plaintext, random)
        return dataclasses.replace(sent, own_chain=state.own_chain), entry

    monkeypatch.setattr(group_device, "send_message", stuck)
    _violated(LATE, "forward_secrecy")


def test_a_device_that_drops_what_overtook_its_chain_key_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening or dropping, nothing held: a message that overtakes its sender's Secret Entry
    (group_out_of_order explores a reorder) is lost for good. A reorder loses nothing, so
    every message must still be opened: the progress invariant, held to that under the
    reorder the explorer injects (which otherwise excuses it), catches the device that
    drops, and the device that holds passes it."""
    def even_reordered(world: Any) -> str | None:
        return invariants.delivered_are_opened(dataclasses.replace(world, faults=0, disturbed=False))

    strict = Invariants(quiescent=(even_reordered,))
    scenario = load_scenario(SCENARIOS / "group_out_of_order.toml")
    assert Explorer.for_scenario(scenario, invariants=strict).run().violations == []
    monkeypatch.setattr(group_device, "_WAIT", frozenset())
    report = Explorer.for_scenario(scenario, invariants=strict).run()
    assert [v.invariant for v in report.violations] == ["even_reordered"]
