"""mpENC's group key agreement (protocols/gka.fsm) run between members: establish for
n = 2..8, include, exclude, refresh, an active attacker on the channel, and concurrent
operations settled by the concurrency resolver."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from fsmc.build import load_scenario
from protocols.mpenc import crypto
from protocols.mpenc.member import GreetingMember, Session
from runtime.harness.network import Delivery
from runtime.harness.simulation import Scenario, Simulation

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
SEQUENCE = ROOT / "protocols" / "mpenc" / "scenarios" / "sequence5.toml"


def scenario(n: int, seed: int = 1) -> Scenario:
    return dataclasses.replace(load_scenario(SEQUENCE), path=Path(f"mpenc_{n}.toml"), description=f"{n} members",
                               seed=seed, parties=[{"name": name} for name in NAMES[:n]], steps=[{"start": True}],
                               expect={}, explore={})


def member(sim: Simulation, name: str) -> GreetingMember:
    device = sim.parties[name].device
    assert isinstance(device, GreetingMember)
    return device


def state(sim: Simulation, name: str) -> str:
    return str(sim.parties[name].machine.state.name)  # type: ignore[attr-defined]


def ask(sim: Simulation, name: str, event: str, members: tuple[str, ...] = ()) -> None:
    sim.step({"party": name, "event": event, "members": list(members)})


def session(sim: Simulation, name: str) -> Session:
    s = member(sim, name).session
    assert s is not None, f"{name} has no session"
    return s


def established(n: int, seed: int = 1) -> Simulation:
    sim = Simulation(scenario(n, seed))
    sim.step({"start": True})
    ask(sim, "alice", "Establish", tuple(NAMES[1:n]))
    sim.deliver_until_quiet()
    return sim


def assert_agree(sim: Simulation, names: list[str]) -> Session:
    sessions = [session(sim, n) for n in names]
    first = sessions[0]
    for name, s in zip(names, sessions, strict=True):
        assert state(sim, name) == "InSession"
        assert sorted(s.members) == sorted(names)
        assert (s.group_key, s.sid, s.chain_hash) == (first.group_key, first.sid, first.chain_hash), name
        # Phase 3: every other member's session signature verified.
        assert s.verified == frozenset(names), name
    return first


@pytest.mark.parametrize("n", range(2, 9))
def test_establish(n: int) -> None:
    sim = established(n)
    s = assert_agree(sim, NAMES[:n])
    assert s.group_key == crypto.group_key(crypto.cardinal_key(list(s.intermediate_keys), 0,
                                                               list(session(sim, "alice").privates)))
    assert len(s.group_key) == 32


def test_establish_upflow_goes_member_to_member() -> None:
    sim = established(4)
    upflows = [(e.party, e.peer) for e in sim.trace if e.kind == "send" and e.message == "Upflow"]
    assert upflows == [("alice", "bob"), ("bob", "carol"), ("carol", "dave")]  # to the next member
    downflows = [e.party for e in sim.trace if e.kind == "send" and e.message == "Downflow"]
    assert downflows == ["dave"]  # the last member of the upflow


def new_member_cannot_reach(key: bytes, privates: tuple[bytes, ...], keys: tuple[bytes, ...]) -> bool:
    """Nothing a member can compute from these intermediate keys with its contributions
    is `key`."""
    for k in keys:
        try:
            if crypto.group_key(crypto.apply_privates(list(privates), k)) == key:
                return False
        except crypto.GkaCryptoError:
            continue
    return True


@pytest.mark.parametrize("new", [("erin",), ("erin", "frank")])
def test_include(new: tuple[str, ...]) -> None:
    sim = Simulation(scenario(6))
    sim.step({"start": True})
    ask(sim, "alice", "Establish", ("bob", "carol", "dave"))
    sim.deliver_until_quiet()
    old = assert_agree(sim, ["alice", "bob", "carol", "dave"])
    ask(sim, "bob", "Include", new)
    sim.deliver_until_quiet()
    now = assert_agree(sim, ["alice", "bob", "carol", "dave", *new])
    assert now.group_key != old.group_key and now.sid != old.sid
    for name in new:
        s = session(sim, name)
        assert new_member_cannot_reach(old.group_key, s.privates, s.intermediate_keys)
    if len(new) == 1:
        assert state(sim, "frank") == "Alone" and member(sim, "frank").session is None


@pytest.mark.parametrize("gone", [("bob",), ("bob", "dave")])
def test_exclude(gone: tuple[str, ...]) -> None:
    sim = established(5)
    before = {name: session(sim, name) for name in gone}
    ask(sim, "carol", "Exclude", gone)
    sim.deliver_until_quiet()
    rest = [n for n in NAMES[:5] if n not in gone]
    now = assert_agree(sim, rest)
    for name in gone:
        assert state(sim, name) == "Alone" and member(sim, name).session is None
        # What the excluded member could compute from the new downflow with everything
        # it held is not the new group key.
        assert new_member_cannot_reach(now.group_key, before[name].privates, now.intermediate_keys)


def test_refresh_changes_the_key_not_the_members() -> None:
    sim = established(4)
    old = assert_agree(sim, NAMES[:4])
    ask(sim, "dave", "Refresh")
    sim.deliver_until_quiet()
    now = assert_agree(sim, NAMES[:4])
    assert now.members == old.members
    assert now.group_key != old.group_key and now.sid != old.sid and now.chain_hash != old.chain_hash


@pytest.mark.parametrize("path", sorted((ROOT / "protocols" / "mpenc" / "scenarios").glob("*.toml")),
                         ids=lambda p: p.name)
def test_scenario_files(path: Path) -> None:
    result = Simulation(load_scenario(path)).run()
    assert result.ok, result.failures
    assert "none" not in {p["keys"] for p in result.parties.values() if p["state"] == "InSession"}


# --- an active attacker on the channel


def in_flight(sim: Simulation, name: str) -> list[tuple[str, int, Delivery]]:
    return [(r, i, d) for r, q in sim.network._queues.items() for i, d in enumerate(q)
            if d.label is not None and name == d.label[1].NAME]


def tamper(sim: Simulation, name: str, change: Any, resign: bool = False) -> None:
    """Rewrite every copy in flight of the packet `name`: decode, `change(message)`,
    encode; keep the signature (the attacker has no ephemeral key), or, with `resign`,
    sign with a key of the attacker's own."""
    codec = sim.parties["alice"].codec
    attacker = crypto.signing_key_pair(bytes(range(32)))
    found = in_flight(sim, name)
    assert found, f"no {name} in flight"
    for receiver, i, d in found:
        body = codec.decode(d.data[crypto.SIGNATURE_SIZE:])
        forged = codec.encode(change(body, attacker))
        signature = crypto.sign_packet(attacker.seed, forged) if resign else d.data[:crypto.SIGNATURE_SIZE]
        sim.network._queues[receiver][i] = d._replace(data=signature + forged)


def replace_at(values: tuple[bytes, ...], index: int, value: bytes) -> tuple[bytes, ...]:
    return (*values[:index], value, *values[index + 1:])


ATTACKS = {
    "intermediate key": lambda m, a: dataclasses.replace(
        m, intermediateKeys=replace_at(m.intermediateKeys, 0, crypto.apply_privates([bytes(32)], None))),
    "nonce": lambda m, a: dataclasses.replace(m, nonces=replace_at(m.nonces, 1, bytes(32))),
    "ephemeral key": lambda m, a: dataclasses.replace(
        m, ephemeralKeys=replace_at(m.ephemeralKeys, m.members.index(m.source), a.public)),
}


def finish(sim: Simulation) -> None:
    """Deliver what is left, then let every timeout pass."""
    sim.deliver_until_quiet()
    sim.advance(61)
    sim.deliver_until_quiet()


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("resign", [False, True], ids=["kept-signature", "re-signed"])
def test_an_altered_downflow_fails_and_the_session_stays(attack: str, resign: bool) -> None:
    sim = established(4)
    old = assert_agree(sim, NAMES[:4])
    ask(sim, "carol", "Refresh")
    tamper(sim, "Downflow", ATTACKS[attack], resign)
    finish(sim)
    kept = assert_agree(sim, NAMES[:4])
    assert kept == old  # the previous session, intact, for every honest member
    assert any("timed out" in why for why in member(sim, "carol").log)


def test_an_altered_upflow_fails_and_no_one_gets_a_session() -> None:
    sim = Simulation(scenario(3))
    sim.step({"start": True})
    ask(sim, "alice", "Establish", ("bob", "carol"))
    tamper(sim, "Upflow", ATTACKS["nonce"], resign=True)
    finish(sim)
    for name in NAMES[:3]:
        assert member(sim, name).session is None and state(sim, name) == "Alone"


def test_a_replayed_downflow_changes_nothing() -> None:
    sim = established(3)
    ask(sim, "bob", "Refresh")
    recorded = [(r, d) for r, _, d in in_flight(sim, "Downflow")]
    sim.deliver_until_quiet()
    after = assert_agree(sim, NAMES[:3])
    for receiver, d in recorded:  # the old downflow, again
        sim.network._queues[receiver].append(d)
    finish(sim)
    assert assert_agree(sim, NAMES[:3]) == after
    drops = [e for e in sim.trace if e.kind == "receive" and e.message == "Downflow"]
    assert drops  # it was delivered, and the resolver rejected it


def test_concurrent_operations_one_wins_everywhere() -> None:
    sim = established(5)
    before = assert_agree(sim, NAMES[:5])
    ask(sim, "alice", "Refresh")
    ask(sim, "bob", "Exclude", ("erin",))  # both name the same previous operation
    finish(sim)
    # The channel orders alice's downflow first: her refresh wins for every member,
    # bob's exclude is rejected by all (bob included), and the chain hashes agree.
    now = assert_agree(sim, NAMES[:5])
    assert now.members == before.members and now.group_key != before.group_key
    assert any("came first" in why for why in member(sim, "bob").log)
    # Every member's trace (and so the sequence chart) says why bob's downflow went nowhere.
    rejected = {e.party for e in sim.trace if e.kind == "notify"
                and e.detail == "rejected by the resolver (bob's exclude downflow came after another operation's)"}
    assert rejected == set(NAMES[:5])


def test_concurrent_include_against_refresh() -> None:
    sim = Simulation(scenario(5))
    sim.step({"start": True})
    ask(sim, "alice", "Establish", ("bob", "carol", "dave"))
    sim.deliver_until_quiet()
    ask(sim, "carol", "Include", ("erin",))
    ask(sim, "dave", "Refresh")
    finish(sim)
    now = assert_agree(sim, NAMES[:5])  # carol's include came first
    assert "erin" in now.members


def test_concurrent_refreshes_of_two_members() -> None:
    sim = established(2)
    before = assert_agree(sim, NAMES[:2])
    ask(sim, "alice", "Refresh")
    ask(sim, "bob", "Refresh")
    sim.deliver_until_quiet()  # no timeout needed: bob joins alice's refresh at once
    now = assert_agree(sim, NAMES[:2])
    assert now.group_key != before.group_key


# --- exploration: every order of delivery, lost, duplicated and reordered packets


@pytest.mark.parametrize(("name", "settings"), [
    ("establish.toml", {}),
    ("establish.toml", {"faults": frozenset({"loss"}), "max_faults": 1, "timeouts": 1}),
    ("concurrent.toml", {}),
])
def test_explored_completely_and_holds(name: str, settings: dict[str, Any]) -> None:
    from runtime.harness.explore import Explorer

    report = Explorer(load_scenario(ROOT / "protocols" / "mpenc" / "scenarios" / name), **settings).run()
    assert report.complete and report.violations == []
    assert report.quiet_states > 0


def test_exploration_catches_a_member_that_completes_too_early(tmp_path: Path) -> None:
    import shutil

    from fsmc.build import machines
    from runtime.harness.explore import Explorer

    source = (ROOT / "protocols" / "mpenc" / "mpenc.fsm").read_text()
    old = """                if confirmationVerified {
                    if allConfirmed {
                        do completeOperation;
                        go InSession;
                    }
                }"""
    assert source.count(old) == 1
    (tmp_path / "src").mkdir()
    shutil.copy(ROOT / "protocols" / "mpenc" / "mpENC.asn1", tmp_path / "src")
    (tmp_path / "src" / "mpenc.fsm").write_text(source.replace(old, """                if confirmationVerified {
                    do completeOperation;
                    go InSession;
                }"""))
    scenario = dataclasses.replace(load_scenario(ROOT / "protocols" / "mpenc" / "scenarios" / "establish.toml"),
                                   machines=machines(tmp_path / "src" / "mpenc.fsm"))
    report = Explorer(scenario).run()
    assert [v.invariant for v in report.violations] == ["members_agree"]
    assert "completed without verifying" in report.violations[0].message
