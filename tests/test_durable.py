"""Parties that commit every step to their store and resume from it after a crash.

A run in which a party crashes between two steps, or after a step's commit but before
its messages were posted, and resumes from its store is the same run as one without a
crash: the same states, the same keys, the same messages (runtime/durable.py). Stores
that cannot be used are refused with the file and the problem named, and left as they
were (runtime/store.py)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from fsmc.build import load_scenario
from runtime import store as store_module
from runtime.durable import DurableParty, PartyRecord, record_of
from runtime.errors import StoreError
from runtime.harness.simulation import Scenario, Simulation, scenario_devices, scenario_party
from runtime.store import Outgoing, Store, new_key
from runtime.values import ValueFormatError, Values

ROOT = Path(__file__).resolve().parent.parent
KEY = bytes(range(32))


class Crash(Exception):
    """The process died here."""


class CrashingParty(DurableParty):
    """Dies once, right after a commit, before posting what the step sent."""

    armed = False

    def _post(self, entries: tuple[Outgoing, ...]) -> None:
        if self.armed and entries:
            self.armed = False
            raise Crash
        super()._post(entries)


def _scenario(protocol: str, name: str) -> Scenario:
    return load_scenario(ROOT / "protocols" / protocol / "scenarios" / f"{name}.toml")


def _durable(sim: Simulation, tmp: Path) -> dict[str, CrashingParty]:
    values = Values(sim.scenario.machines)
    durable = {}
    for name, party in sim.parties.items():
        store = Store.create(tmp / f"{name}.sqlite", KEY, party=name, protocol=sim.scenario.protocol.name)
        durable[name] = CrashingParty(party, store, values)
    sim.parties.update(durable)  # type: ignore[arg-type]
    return durable


def _rebuilt(sim: Simulation, name: str, tmp: Path) -> CrashingParty:
    """The crashed party's process starts again: a new device and machine, as configured
    at the start (from a fresh build of the scenario), resumed from its store."""
    _, _, devices = scenario_devices(sim.scenario)
    party = scenario_party(sim.scenario, name, devices[name], sim.network, sim.clock, sim.trace)
    sim.parties[name].store.close()
    store = Store.open(tmp / f"{name}.sqlite", KEY, party=name, protocol=sim.scenario.protocol.name)
    return CrashingParty.resume(party, store, Values(sim.scenario.machines))  # type: ignore[return-value]


def _outcome(sim: Simulation) -> tuple[Any, ...]:
    """What two runs must agree on to be one: every party's whole record (machine state,
    buffer, device state with its keys, random source), the messages sent, the verdict."""
    values = Values(sim.scenario.machines)
    records = {name: values.encode(record_of(getattr(p, "party", p))) for name, p in sim.parties.items()}
    sends = [(e.party, e.message, e.peer) for e in sim.trace if e.kind == "send"]
    return sim.summary(), records, sends, sim.check()


CRASHES: list[int] = []  # the steps at which a crash before posting happened, in all runs


def _run(protocol: str, name: str, tmp: Path, crash: tuple[int, str, bool] | None) -> tuple[Any, ...]:
    """The scenario with durable parties; `crash` = (after step k, party, before posting)."""
    sim = Simulation(_scenario(protocol, name))
    durable = _durable(sim, tmp)
    crashes: list[int] = []
    for k, step in enumerate(sim.scenario.steps):
        if crash is not None and crash[0] == k and crash[2]:
            durable[crash[1]].armed = True
        try:
            sim.step(step)
        except Crash:
            crashes.append(k)
            # The party's input was committed, its messages are in the outbox: the resumed
            # party posts them. The step goes on where the crash cut it short: a start of
            # every party starts the ones after the crashed one.
            assert crash is not None
            sim.parties[crash[1]] = _rebuilt(sim, crash[1], tmp)  # type: ignore[assignment]
            if "start" in step:
                names = [p.name for p in sim._targets(step)]
                for later in names[names.index(crash[1]) + 1:]:
                    sim.parties[later].start()
            continue
        if crash is not None and crash[0] == k:
            if crash[2]:
                durable[crash[1]].armed = False  # the step was not this party's input
            else:
                sim.parties[crash[1]] = _rebuilt(sim, crash[1], tmp)  # type: ignore[assignment]
    CRASHES.extend(crashes)
    return _outcome(sim)


CASES = [("keysync", "form_group"), ("mpenc", "establish")]


# Status draws a key at every X3DH and DH step: its random source must resume where it was.
@pytest.mark.parametrize(("protocol", "name"), [*CASES, ("status", "first_message")])
def test_a_party_that_crashes_between_any_two_steps_resumes_into_the_same_run(
        protocol: str, name: str, tmp_path: Path) -> None:
    plain = Simulation(_scenario(protocol, name))
    plain.run()
    reference = _outcome(plain)
    assert reference[3] == [], reference[3]
    (tmp_path / "none").mkdir()
    assert _run(protocol, name, tmp_path / "none", None) == reference
    steps = len(plain.scenario.steps)
    for k in range(steps):
        for party in sorted(plain.parties):
            where = tmp_path / f"{k}-{party}"
            where.mkdir()
            assert _run(protocol, name, where, (k, party, False)) == reference, (k, party)


@pytest.mark.parametrize(("protocol", "name"), CASES)
def test_a_party_that_crashes_before_posting_posts_on_resume_and_nothing_twice(
        protocol: str, name: str, tmp_path: Path) -> None:
    plain = Simulation(_scenario(protocol, name))
    plain.run()
    reference = _outcome(plain)
    CRASHES.clear()
    for k, step in enumerate(plain.scenario.steps):
        if "deliver" in step:
            continue  # the crash is armed for the party's own input: start or an event
        for party in sorted(plain.parties):
            where = tmp_path / f"{k}-{party}"
            where.mkdir()
            outcome = _run(protocol, name, where, (k, party, True))
            assert outcome == reference, (k, party)
    # Crashes happened, each at a party's own input (one that sent something).
    inputs = {k for k, step in enumerate(plain.scenario.steps) if "deliver" not in step and "advance" not in step}
    assert CRASHES and set(CRASHES) <= inputs


def test_every_record_of_every_protocols_scenarios_is_stored_and_read_back_as_it_was() -> None:
    for protocol in ("keysync", "mpenc", "berty", "bisonrelay", "status", "commit"):
        for path in sorted((ROOT / "protocols" / protocol / "scenarios").glob("*.toml")):
            sim = Simulation(load_scenario(path))
            sim.run()
            values = Values(sim.scenario.machines)
            for party in sim.parties.values():
                record = record_of(party)
                data = values.encode(record)
                back = values.decode(data)
                assert isinstance(back, PartyRecord) and values.encode(back) == data, (path.name, party.name)


def test_a_value_outside_the_project_is_refused_by_name() -> None:
    values = Values()
    with pytest.raises(ValueFormatError, match="cannot be stored"):
        values.encode({"x": object()})
    with pytest.raises(ValueFormatError, match="not one of the packages"):
        values.decode(b'{"record":"os:system","fields":{}}')
    with pytest.raises(ValueFormatError, match="not a stored value"):
        values.decode(b"\x00garbage")
    with pytest.raises(ValueFormatError, match=r"\.lambda|named class or function"):
        values.encode(lambda: None)


# --- the store file


def test_the_store_is_its_owners_alone_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with Store.create(path, KEY, party="a", protocol="keysync") as s:
        s.commit(1, b"private key 8f2c")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        for extra in (tmp_path / "a.sqlite-wal", tmp_path / "a.sqlite-shm"):
            assert extra.exists() and stat.S_IMODE(os.stat(extra).st_mode) == 0o600
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw = path.read_bytes()
    assert b"private key 8f2c" not in raw  # sealed at rest


def _stored(tmp_path: Path) -> Path:
    path = tmp_path / "a.sqlite"
    with Store.create(path, KEY, party="a", protocol="keysync") as s:
        s.commit(3, b"the record", [Outgoing("channel", None, b"wire", b"label")])
    return path


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda p: p.write_bytes(os.urandom(4096)), "not a store, or damaged"),
    (lambda p: p.write_bytes(p.read_bytes()[:1024]), "damaged|truncated|not a store"),
    (lambda p: p.write_bytes(b""), "empty or truncated"),
    (lambda p: _sql(p, "UPDATE meta SET value = '9' WHERE key = 'schema_version'"), "schema version 9 is newer"),
    (lambda p: _sql(p, "UPDATE party SET record = zeroblob(80)"), "record is damaged"),
    (lambda p: _sql(p, "DROP TABLE outbox"), "truncated: no table outbox"),
])
def test_a_store_that_cannot_be_used_is_refused_and_left_as_it_was(tmp_path: Path, damage: Any, problem: str) -> None:
    path = _stored(tmp_path)
    damage(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=problem) as error, Store.open(path, KEY) as s:
        s.load()
    assert str(path) in str(error.value)
    assert path.read_bytes() == before


def test_a_store_opened_with_another_key_or_for_another_party_is_refused(tmp_path: Path) -> None:
    path = _stored(tmp_path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="sealed under another key"):
        Store.open(path, new_key())
    with pytest.raises(StoreError, match="the store of party 'a', not 'b'"):
        Store.open(path, KEY, party="b")
    with pytest.raises(StoreError, match="exists already"):
        Store.create(path, KEY, party="a", protocol="keysync")
    assert path.read_bytes() == before
    with Store.open(path, KEY, party="a", protocol="keysync") as s:
        saved = s.load()
    assert saved is not None and saved.step == 3 and saved.record == b"the record"
    assert [(o.transport, o.data, o.label) for o in saved.outbox] == [("channel", b"wire", b"label")]


def test_an_older_schema_is_migrated_in_one_transaction_or_not_at_all(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _stored(tmp_path)
    # This fsmc's schema is 2; the file is 1. A migration that fails leaves it at 1.
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)

    def broken(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        raise RuntimeError("disk full")

    monkeypatch.setitem(store_module.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError, match="disk full"):
        Store.open(path, KEY)
    assert _sql(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert "priority" not in {row[1] for row in _sql(path, "PRAGMA table_info(outbox)")}
    monkeypatch.setitem(store_module.MIGRATIONS, 1,
                        lambda db: db.execute("ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"))
    with Store.open(path, KEY) as s:
        saved = s.load()
    assert saved is not None and saved.record == b"the record"
    assert _sql(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]


def _sql(path: Path, statement: str) -> list[Any]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        return db.execute(statement).fetchall()
    finally:
        db.close()
