"""The pEp engine's own FSM files (its codegen/ dialect): list, embed, security=ignore,
stateless fsms, several fsms per protocol, the engine's type module lookup, and ASN.1 as the
engine's generator writes it.

protocols/keysync_engine/ holds the transcription of the engine's files; tests/cases/engine/
holds small files of ours in the dialect (test_diagnostics.py checks their diagnostics).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import asn1tools
import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from fsmc import model as m
from fsmc.backends import asn1, dot, python
from fsmc.build import load_scenario, machines
from fsmc.cli import main
from fsmc.compiler import Options, load
from fsmc.diagnostics import Diagnostics
from fsmc.format import format_document
from fsmc.parser import parse_text
from runtime.errors import DecodeError
from runtime.harness.explore import Explorer

ENGINE = ROOT / "protocols" / "keysync_engine" / "codegen"
VECTORS = Path(__file__).parent / "vectors" / "pep-engine-asn1"
CASES = Path(__file__).parent / "cases" / "engine" / "codegen"


def body(text: str) -> str:
    """An ASN.1 file without its comment lines (the header is each generator's own); the
    blank lines stay."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("--"))


def engine_files() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(ENGINE.glob("*.fsm")):
        c = load(path)
        assert c.ok, c.diagnostics.render()
        for protocol in c.document.protocols:
            out.update(asn1.render(c, protocol))
    return out


def test_the_asn1_is_the_engine_generators_byte_for_byte() -> None:
    ours = engine_files()
    theirs = {p.name: p.read_text(encoding="utf-8") for p in VECTORS.glob("*.asn1")}
    assert len(theirs) == 10 and set(theirs) <= set(ours)
    assert set(ours) - set(theirs) == {"pEp.asn1"}  # the type module, copied beside them
    for name, text in theirs.items():
        assert body(ours[name]) == body(text), name


def test_the_engine_files_check_clean_but_for_the_engines_own_two_unhandled_messages() -> None:
    """The engine's GroupSync handles RequestUpdate, no message of its (a signaled event),
    and its TrustSync nothing of TrustRequest: the two warnings are the engine's."""
    warnings = []
    for path in sorted(ENGINE.glob("*.fsm")):
        c = load(path)
        assert not c.diagnostics.errors
        warnings += [(path.name, d.code, d.message) for d in c.diagnostics.warnings]
    assert warnings == [("sync.fsm", "message-never-handled", "message TrustRequest is never handled"),
                        ("sync.fsm", "message-never-handled", "message GroupSyncRequest is never handled")]


def test_the_model_of_the_engines_files() -> None:
    sync = load(ENGINE / "sync.fsm")
    (protocol,) = sync.document.protocols
    assert [(f.name, f.id, f.stateless) for f in protocol.fsms] == \
        [("KeySync", 1, False), ("TrustSync", 2, False), ("GroupSync", 3, False)]
    keysync = protocol.fsms[0]
    assert keysync.message("Beacon").ratelimit == 20  # the draft's is 10
    assert keysync.timeout(keysync.state("HandshakingOfferer")) == 120  # the draft's 600
    assert keysync.message("ReceiverRating").security is m.Security.IGNORE
    (embed,) = protocol.fsm("GroupSync").embeds()
    assert (embed.kind, embed.protocol, embed.type, embed.name) == \
        (m.FieldKind.EMBED, "Distribution", "ManagedGroup", "msg")
    assert set(sync.embedded) == {"Distribution"}
    distribution = load(ENGINE / "distribution.fsm").document.protocols[0]
    assert all(f.stateless for f in distribution.fsms)
    (commands,) = distribution.fsm("KeyReset").messages
    (lst,) = m.records(commands.fields)
    assert (lst.type, lst.name, [f.name for f in lst.fields]) == ("Command", "commandlist", ["ident", "newkey"])
    # fsm.yml2's defaults: threshold 20 for a protocol and an fsm that give none
    assert distribution.threshold == 20 and distribution.fsms[0].threshold == 20 and protocol.threshold == 20


def test_the_draft_keysync_is_untouched() -> None:
    """The draft's transcription keeps fsmc's one-file layout, byte for byte the committed file."""
    c = load(ROOT / "protocols" / "keysync" / "keysync.fsm")
    (protocol,) = c.document.protocols
    assert not c.engine_layout(protocol)
    assert list(asn1.render(c, protocol)) == ["keysync.asn1"]


def test_the_codec_compiles_the_set_and_carries_an_embedded_message() -> None:
    sync = machines(ENGINE / "sync.fsm", "sync")
    distribution = __import__(sync.__package__ + ".distribution", fromlist=["x"])
    # One type module, one set of record classes: sync imports distribution's.
    assert sync.Identity is distribution.Identity and sync.Version is distribution.Version
    who = sync.Identity(address="alice@example.org", fpr="0123456789ABCDEF" * 2, user_id="alice",
                        username="Alice", comm_type=255, lang="en", flags=0)
    inner = distribution.GroupInvite(groupIdentity=who, manager=who)
    update = sync.GroupSyncUpdate(msg=inner)
    data = sync.CODEC.encode(update)
    assert sync.CODEC.decode(data) == update
    # The bytes are the asn1tools encoding of the engine's own modules (the vectors).
    spec = asn1tools.compile_files([str(p) for p in sorted(VECTORS.glob("*.asn1"))]
                                   + [str(ROOT / "protocols" / "keysync_engine" / "asn.1" / "pEp.asn1")], "uper")
    ident = {"address": "alice@example.org", "fpr": "0123456789ABCDEF" * 2, "user-id": "alice",
             "username": "Alice", "comm-type": 255, "lang": "en", "flags": 0}
    value = ("groupsync", ("groupSyncUpdate", {"msg": ("groupInvite", {"groupIdentity": ident, "manager": ident})}))
    assert spec.encode("Sync", value) == data
    # An embed of a message of another fsm is refused when encoding, naming the field.
    with pytest.raises(Exception, match="msg: expected one of GroupInvite, GroupAdopted, GroupDissolve"):
        sync.CODEC.encode(sync.GroupSyncUpdate(msg=who))
    # Garbage after the embed's CHOICE index is a DecodeError naming the place.
    with pytest.raises(DecodeError, match="Sync.groupsync"):
        sync.CODEC.decode(data[:5])


def test_a_list_of_records_round_trips_and_a_stateless_fsm_has_no_machine() -> None:
    distribution = machines(ENGINE / "distribution.fsm", "distribution")
    who = distribution.Identity(address="a@b", fpr="ABCDEF0123456789", user_id="a", username="A",
                                comm_type=0, lang="en", flags=0)
    commands = distribution.Commands(version=distribution.Version(major=1, minor=0), commandlist=(
        distribution.Command(ident=who, newkey="0123456789ABCDEF"), distribution.Command(ident=who, newkey="F" * 40)))
    assert distribution.CODEC.decode(distribution.CODEC.encode(commands)) == commands
    assert not hasattr(distribution, "KeyReset") and not hasattr(distribution, "ManagedGroupState")
    c = load(ENGINE / "distribution.fsm")
    assert dot.render(c, c.document.protocols[0]) == {}  # the engine's gen_dot draws no stateless fsm
    storage = machines(ENGINE / "storage.fsm", "storage")
    assert storage.ReceiverRating.SECURITY.name == "IGNORE"


def test_our_engine_dialect_files_compile_and_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/cases/engine/codegen/meeting.fsm: two fsms, an embed of roster.fsm beside it,
    lists in lists, timeout=on with a protocol threshold, an empty handler."""
    c = load(CASES / "meeting.fsm")
    assert c.ok and not c.diagnostics.warnings, c.diagnostics.render()
    (protocol,) = c.document.protocols
    chair = protocol.fsm("Chair")
    assert protocol.threshold == 30 and chair.threshold == 20 and chair.timeout(chair.state("Waiting")) == 20
    files = asn1.render(c, protocol)
    assert sorted(files) == ["chair.asn1", "meeting.asn1", "members.asn1", "notes.asn1", "pEp.asn1", "roster.asn1"]
    assert "    chair [APPLICATION 1] Chair,\n    ...,\n    notes [APPLICATION 2] Notes\n" in files["meeting.asn1"]
    assert "IMPORTS Version, Identity, IdentityList, TID, Hash, Rating FROM PEP\n        Members FROM ROSTER\n;" \
        in files["chair.asn1"]
    roster = files["members.asn1"]
    assert roster.index("Joined ::= SEQUENCE") < roster.index("Seat ::= SEQUENCE") < roster.index("Neighbour ::=")
    assert "    seats SEQUENCE OF Seat\n" in roster and "    neighbours SEQUENCE OF Neighbour\n" in roster
    module = machines(CASES / "meeting.fsm", "meeting")
    members = __import__(module.__package__ + ".roster", fromlist=["x"])
    who = members.Identity(address="a@b", fpr="ABCDEF0123456789")
    seat = members.Seat(row=3, aisle=True, neighbours=(members.Neighbour(who=who),))
    joined = members.Joined(member=who, seats=(seat,))
    minutes = module.Minutes(meeting=bytes(16), change=joined)
    assert module.CODEC.decode(module.CODEC.encode(minutes)) == minutes
    assert module.Chair.TIMEOUTS[module.ChairState.Waiting] == 20
    assert "Rated" not in [h for h in module.Chair.HANDLERS[module.ChairState.Waiting]]


def test_an_embed_of_a_protocol_of_the_same_file_compiles_as_one_of_a_file_beside_it(tmp_path: Path) -> None:
    """Roster and Meeting in one file: Meeting's module imports Roster's message classes
    from Roster's module (each protocol has its own), and its codec compiles Roster's
    ASN.1 with its own; the bytes are those of the two files side by side."""
    (tmp_path / "codegen").mkdir()
    shutil.copytree(CASES.parent / "asn.1", tmp_path / "asn.1")
    text = (CASES / "roster.fsm").read_text() + (CASES / "meeting.fsm").read_text().split("include ./fsm.yml2")[1]
    (tmp_path / "codegen" / "both.fsm").write_text(text)
    c = load(tmp_path / "codegen" / "both.fsm")
    assert c.ok, c.diagnostics.render()
    assert asn1.codec_files(c, c.document.protocols[1]) == [
        "chair.asn1", "meeting.asn1", "members.asn1", "notes.asn1", "pEp.asn1", "roster.asn1"]
    meeting = machines(tmp_path / "codegen" / "both.fsm", "both_meeting")
    roster = machines(tmp_path / "codegen" / "both.fsm", "both_roster")
    assert meeting.Joined is roster.Joined and meeting.Left is roster.Left
    who = roster.Identity(address="a@b", fpr="ABCDEF0123456789")
    joined = roster.Joined(member=who, seats=(roster.Seat(row=3, aisle=True, neighbours=()),))
    minutes = meeting.Minutes(meeting=bytes(16), change=joined)
    data = meeting.CODEC.encode(minutes)
    assert meeting.CODEC.decode(data) == minutes
    apart = machines(CASES / "meeting.fsm", "meeting")
    members = __import__(apart.__package__ + ".roster", fromlist=["x"])
    same = apart.Minutes(meeting=bytes(16), change=members.Joined(
        member=members.Identity(address="a@b", fpr="ABCDEF0123456789"),
        seats=(members.Seat(row=3, aisle=True, neighbours=()),)))
    assert apart.CODEC.encode(same) == data


def test_the_type_module_is_found_as_the_engine_finds_it_or_given(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(CASES / "roster.fsm", tmp_path / "roster.fsm")
    assert main(["check", str(tmp_path / "roster.fsm")]) == 1
    err = capsys.readouterr().err
    assert f"looked for {tmp_path.parent / 'asn.1' / 'pEp.asn1'}; give one with --types FILE [asn1-module]" in err
    types = str(CASES.parent / "asn.1" / "pEp.asn1")
    assert main(["check", "--types", types, str(tmp_path / "roster.fsm")]) == 0
    (tmp_path / "Other.asn1").write_text("OTHER DEFINITIONS ::= BEGIN X ::= INTEGER END\n", encoding="utf-8")
    assert main(["check", "--types", str(tmp_path / "Other.asn1"), str(tmp_path / "roster.fsm")]) == 1
    assert "is not the pEp engine's type module" in capsys.readouterr().err


def test_an_embedded_protocol_is_found_beside_the_file_or_on_the_search_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(CASES / "meeting.fsm", tmp_path / "meeting.fsm")
    types = str(CASES.parent / "asn.1" / "pEp.asn1")
    assert main(["check", "--types", types, str(tmp_path / "meeting.fsm")]) == 1
    err = capsys.readouterr().err
    assert "embed of unknown protocol Roster" in err and str(tmp_path) in err and "-I DIR" in err
    assert main(["check", "--types", types, "-I", str(CASES), str(tmp_path / "meeting.fsm")]) == 0
    # A broken file that declares it: named, with its error count.
    broken = (CASES / "roster.fsm").read_text().replace("field int row;", "field Chair row;")
    (tmp_path / "roster.fsm").write_text(broken)
    assert main(["check", "--types", types, str(tmp_path / "meeting.fsm")]) == 1
    assert f"protocol Roster is in {tmp_path / 'roster.fsm'}, which has 1 error(s)" in capsys.readouterr().err
    c = load(tmp_path / "meeting.fsm", options=Options(types=Path(types), search=(CASES,)))
    assert not c.ok  # the file beside it comes first, broken or not


def test_the_commands_run_on_the_engines_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    files = [str(p.relative_to(ROOT)) for p in sorted(ENGINE.glob("*.fsm"))]
    assert main(["check", "--werror", *files[:2]]) == 0  # distribution and storage: nothing to say
    assert main(["check", files[2]]) == 0  # sync: the two warnings
    assert main(["compile", "-q", "-o", str(tmp_path / "g"), *files]) == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir() if p.suffix == ".py") == \
        ["__init__.py", "distribution.py", "storage.py", "sync.py"]
    if shutil.which("dot"):
        assert main(["diagram", "-q", "-o", str(tmp_path / "d"), *files]) == 0
        assert sorted(p.name for p in (tmp_path / "d" / "sync").glob("*.dot")) == [
            f"{f}_{kind}.dot" for f in ("groupsync", "keysync", "trustsync") for kind in ("full", "simplified")]
    capsys.readouterr()
    assert main(["inspect", "--json", files[0]]) == 0
    data = json.loads(capsys.readouterr().out)
    keyreset = data["protocols"][0]["fsms"][0]
    assert keyreset["stateless"] and keyreset["messages"][0]["fields"][1] == {
        "kind": "list", "type": "Command", "name": "commandlist",
        "fields": [{"kind": "field", "type": "Identity", "name": "ident"},
                   {"kind": "field", "type": "Hash", "name": "newkey"}]}


def test_format_prints_lists_and_embeds_back() -> None:
    text = (CASES / "roster.fsm").read_text() + (CASES / "meeting.fsm").read_text().split("include ./fsm.yml2")[1]
    doc = parse_text(text, "x.fsm", Diagnostics())
    again = parse_text(format_document(doc), "y.fsm", Diagnostics())
    assert format_document(again) == format_document(doc)
    printed = format_document(doc)
    assert "list Neighbour neighbours {" in printed and "embed Roster Members change;" in printed


def test_python_types_of_embeds_and_lists() -> None:
    c = load(ENGINE / "sync.fsm")
    text = python.render_text(c, c.document.protocols[0])
    assert "from .distribution import GroupAdopted, GroupDissolve, GroupInvite, Identity, Version\n" in text
    assert "class Identity" not in text
    assert "    msg: GroupInvite | GroupAdopted | GroupDissolve\n" in text
    assert 'Wire("msg", "msg", choices=(GroupInvite, GroupAdopted, GroupDissolve,))' in text


ENGINE_UPER = json.loads((Path(__file__).parent / "vectors" / "pep-keysync-uper.json").read_text())


@pytest.mark.parametrize("vector", ENGINE_UPER["vectors"], ids=lambda v: v["message"])
def test_the_engines_keysync_writes_the_engine_codecs_bytes(vector: dict[str, Any]) -> None:
    """asn1c's bytes (tests/vectors/pep-keysync-uper.json), from the engine's KeySync."""
    sync = machines(ENGINE / "sync.fsm", "sync")
    tids = {k: bytes.fromhex(v) for k, v in ENGINE_UPER["tids"].items()}
    values = {k: tids.get(v, v) if isinstance(v, str) else v for k, v in vector["value"].items()}
    if "version" in values:
        values["version"] = sync.Version(**values["version"])
    message = getattr(sync, vector["message"])(**values)
    assert sync.CODEC.encode(message).hex() == vector["uper_hex"]
    assert sync.CODEC.decode(bytes.fromhex(vector["uper_hex"])) == message


@pytest.mark.parametrize("scenario", ["form_group", "form_group_reject", "form_group_cancel"])
def test_the_engines_keysync_explores_as_the_drafts(scenario: str) -> None:
    """The two KeySyncs differ in timeouts, a rate limit and a message nobody sends: on the
    draft's scenarios their explorations have the same states, transitions and verdicts."""
    reports = {}
    for name in ("keysync", "keysync_engine"):
        report = Explorer.for_scenario(load_scenario(ROOT / "protocols" / name / "scenarios" / f"{scenario}.toml"),
                                       max_states=20_000).run()
        reports[name] = (report.states, report.transitions, report.complete,
                         sorted(v.invariant for v in report.violations))
    assert reports["keysync"] == reports["keysync_engine"]
    assert reports["keysync"][2], reports  # complete: the whole space, not a bound


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text("0123456789ABCDEF", min_size=16, max_size=128)),
                max_size=5))
def test_lists_of_records_round_trip_as_asn1tools_writes_them(entries: list[tuple[str, str]]) -> None:
    distribution = machines(ENGINE / "distribution.fsm", "distribution")
    commands = distribution.Commands(version=distribution.Version(major=1, minor=0), commandlist=tuple(
        distribution.Command(ident=distribution.Identity(address=a, fpr=h, user_id="u", username="n", comm_type=0,
                                                         lang="en", flags=7), newkey=h) for a, h in entries))
    data = distribution.CODEC.encode(commands)
    slow = type(distribution.CODEC)(distribution.CODEC._paths, "Distribution",
                                    [distribution.Commands], fast=False)
    assert slow.encode(commands) == data
    assert distribution.CODEC.decode(data) == commands == slow.decode(data)


def test_a_scenario_based_on_another_takes_its_table_and_replaces_keys(tmp_path: Path) -> None:
    from runtime.errors import ScenarioError
    from runtime.harness.simulation import load_scenario as load_plain

    engine = load_scenario(ROOT / "protocols" / "keysync_engine" / "scenarios" / "handshake_timeout.toml")
    draft = load_scenario(ROOT / "protocols" / "keysync" / "scenarios" / "handshake_timeout.toml")
    assert engine.protocol.name == "keysync_engine" and draft.protocol.name == "keysync"
    assert engine.parties == draft.parties and engine.expect == draft.expect  # taken from the draft's file
    assert [s.get("advance") for s in engine.steps] == [None, None, 119, 2]  # replaced
    loop = tmp_path / "loop.toml"
    loop.write_text('based_on = "loop.toml"\nprotocol = "keysync"\n')
    with pytest.raises(ScenarioError, match="based_on: loop.toml is based on this file"):
        load_plain(loop)
    (tmp_path / "bad.toml").write_text("based_on = 3\n")
    with pytest.raises(ScenarioError, match="based_on: expected the path of a scenario file"):
        load_plain(tmp_path / "bad.toml")
