"""The benchmarks' own inputs stay valid: `make bench` is not run by `make test`, so what
it builds is checked here (a synthetic protocol the checker rejects stops the bench)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import ROOT

from fsmc.compiler import load

sys.path.insert(0, str(ROOT / "bench"))

import bench_compiler  # noqa: E402


def test_the_compiler_benchs_synthetic_protocol_compiles(tmp_path: Path) -> None:
    keysync = ROOT / "protocols" / "keysync" / "keysync.fsm"
    path = tmp_path / "keysync3.fsm"
    path.write_text(bench_compiler.synthetic(keysync.read_text(encoding="utf-8"), 3), encoding="utf-8")
    (tmp_path / "pEp.asn1").write_text((keysync.parent / "pEp.asn1").read_text(encoding="utf-8"))
    compilation = load(path)
    assert compilation.ok, compilation.diagnostics.render()
    assert [f.name for f in compilation.document.protocols[0].fsms] == ["KeySync1", "KeySync2", "KeySync3"]
