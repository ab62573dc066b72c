"""The diagnostic catalogue: every code has a bad example in tests/cases/errors/.

Each example file names what must be reported in `// expect: LINE:COL code` lines; the
test checks that exactly those diagnostics (by position and code) are reported, that
each renders as `path:line:col: severity: message`, the source line and a caret, and
that `fsmc check` exits 1 on errors (and on warnings with --werror).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsmc.cli import main
from fsmc.compiler import load
from fsmc.diagnostics import CATALOGUE, Severity

CASES = Path(__file__).parent / "cases" / "errors"
EXPECT = re.compile(r"//\s*expect:\s*(\d+):(\d+)\s+([a-z0-9-]+)")
# Files whose bytes cannot carry an expect comment.
BINARY_EXPECT = {"binary.fsm": [(2, 13, "binary")]}


def expectations(path: Path) -> list[tuple[int, int, str]]:
    if path.name in BINARY_EXPECT:
        return BINARY_EXPECT[path.name]
    text = path.read_bytes().decode("utf-8", "replace")
    return sorted((int(a), int(b), c) for a, b, c in EXPECT.findall(text))


# The pEp engine's dialect, in the engine's tree layout (codegen/ beside asn.1/pEp.asn1):
# valid files (no expect lines: nothing may be reported) and the errors of its constructs.
ENGINE_CASES = Path(__file__).parent / "cases" / "engine" / "codegen"
CASE_FILES = sorted(CASES.glob("*.fsm")) + sorted(ENGINE_CASES.glob("*.fsm"))


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_case_reports_exactly_its_expectations(path: Path) -> None:
    c = load(path)
    got = sorted((d.position.line, d.position.column, d.code) for d in c.diagnostics)
    assert got == expectations(path), c.diagnostics.render()


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_rendering_has_location_line_and_caret(path: Path) -> None:
    c = load(path)
    for d in c.diagnostics:
        text = d.render(c.diagnostics.line(d.position))
        head, *rest = text.split("\n")
        assert head.startswith(f"{path}:{d.position.line}:{d.position.column}: {d.severity.value}: ")
        if rest:
            source, caret = rest
            assert caret.endswith("^") and len(caret) == d.position.column


def test_catalogue_is_covered_by_examples() -> None:
    covered = {code for p in CASE_FILES for *_, code in expectations(p)}
    uncovered = set(CATALOGUE) - covered
    # Codes whose triggers need more than one file are tested in test_check.py.
    assert uncovered <= {"include", "duplicate-fsm", "duplicate-field", "event-conflict",
                         "reserved-name"}, uncovered


def test_check_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(CASES / "undefined_state.fsm")]) == 1
    err = capsys.readouterr().err
    assert "undefined_state.fsm:7:27: error: go to undefined state Sloe" in err
    assert "did you mean Sole?" in err
    assert main(["check", str(CASES / "warnings.fsm")]) == 0
    assert main(["check", "--werror", str(CASES / "warnings.fsm")]) == 1
    assert "error: state Island is unreachable" in capsys.readouterr().err


def test_warnings_are_warnings() -> None:
    c = load(CASES / "warnings.fsm")
    assert c.ok
    assert {d.severity for d in c.diagnostics} == {Severity.WARNING}
