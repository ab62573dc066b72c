"""Checks whose examples need several files or a setup, and the model's derived facts."""

from __future__ import annotations

from pathlib import Path

from fsmc.compiler import load
from fsmc.model import EventKind


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def codes(path: Path) -> list[tuple[int, int, str]]:
    return sorted((d.position.line, d.position.column, d.code) for d in load(path).diagnostics)


def test_include_merges_protocols_and_reports_missing_files(tmp_path: Path) -> None:
    write(tmp_path, "other.fsm", "protocol Other 2 { fsm G 1 { state InitState { } } }\n")
    main = write(tmp_path, "main.fsm", "include ./fsm.yml2\ninclude other.fsm\ninclude missing.fsm\n"
                 "protocol P 1 { fsm F 1 { state InitState { } } }\n")
    c = load(main)
    assert [p.name for p in c.document.protocols] == ["Other", "P"]
    assert codes(main) == [(3, 9, "include")]


def test_include_of_itself_is_reported(tmp_path: Path) -> None:
    main = write(tmp_path, "self.fsm", "include self.fsm\n")
    assert codes(main) == [(1, 9, "include")]


def test_duplicate_fsm_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "p.fsm", """protocol P 1 {
  fsm F 1 { state InitState { on Init { send M; } on M do x; } message M 2 { field int a; field bool a; } }
  fsm F 2 { state InitState { } }
  fsm G 1 { state InitState { } }
}
""")
    assert codes(path) == [(2, 91, "duplicate-field"), (2, 91, "field-type-conflict"),
                           (3, 7, "duplicate-fsm"), (4, 7, "duplicate-fsm")]


def test_event_conflict_and_reserved_names(tmp_path: Path) -> None:
    path = write(tmp_path, "p.fsm", """protocol P 1 {
  fsm F 1 {
    state InitState { on Init { send M; } on M do x; }
    state End { }
    external M 130;
    external Init 131;
    message M 2 { }
  }
}
""")
    got = codes(path)
    assert (4, 11, "reserved-name") in got
    assert (5, 14, "event-conflict") in got
    assert (6, 14, "reserved-name") in got


def test_missing_asn1_module_is_reported_at_the_attribute(tmp_path: Path) -> None:
    path = write(tmp_path, "p.fsm", "protocol P 1, asn1=Nope { fsm F 1 { state InitState { } } }\n")
    assert (1, 15, "asn1-module") in codes(path)


def test_broken_asn1_module_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "Bad.asn1", "BAD DEFINITIONS ::= BEGIN X ::= SEQUENCE { END\n")
    path = write(tmp_path, "p.fsm", "protocol P 1, asn1=Bad { fsm F 1 { state InitState { } } }\n")
    c = load(path)
    assert [d.code for d in c.diagnostics.errors] == ["asn1-module"]
    assert "Bad.asn1" in c.diagnostics.errors[0].message


def test_events_are_numbered_as_the_pep_engine_does(tmp_path: Path) -> None:
    path = write(tmp_path, "p.fsm", """protocol P 1 {
  fsm F 1, threshold=30 {
    state InitState { on Init { send M; go S; } on M do x; on KeyGen do y; }
    state S timeout=off { on Init do z; on Accept go InitState; on CannotDecrypt send M; }
    state T timeout=5 { }
    external Accept 129;
    external Reject 130;
    message M 7 { }
  }
}
""")
    c = load(path)
    (fsm,) = c.document.protocols[0].fsms
    numbers = {e.name: (e.kind, e.number) for e in fsm.events()}
    assert numbers == {
        "Timeout": (EventKind.TIMEOUT, 0), "Init": (EventKind.INIT, 1), "M": (EventKind.MESSAGE, 7),
        "Accept": (EventKind.EXTERNAL, 129), "Reject": (EventKind.EXTERNAL, 130),
        "KeyGen": (EventKind.SIGNALED, 131), "CannotDecrypt": (EventKind.SIGNALED, 132),
    }
    assert [fsm.timeout(s) for s in fsm.states] == [30, None, 5]
