"""generated/ and diagrams/ are exactly what the compiler produces from protocols/.

`make generate` rewrites them; this test fails when a committed file drifts (someone
edited generated code, or changed the compiler without regenerating).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT

from fsmc.cli import main

PROTOCOLS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protocols").glob("*.fsm"))
IGNORED = {"py.typed", "__pycache__"}


def files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.iterdir())
            if p.is_file() and p.name not in IGNORED}


def regenerate(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(ROOT)  # sources are named relative to the checkout, as `make generate` does
    out = tmp_path / command
    assert main([command, "--quiet", "-o", str(out), *PROTOCOLS]) == 0
    return files(out)


@pytest.mark.parametrize(("command", "directory"), [("compile", "generated"), ("diagram", "diagrams")])
def test_committed_output_is_up_to_date(command: str, directory: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if command == "diagram" and shutil.which("dot") is None:
        pytest.skip("graphviz not installed")
    fresh = regenerate(command, tmp_path, monkeypatch)
    committed = files(ROOT / directory)
    assert sorted(fresh) == sorted(committed), f"{directory}/ has missing or extra files: run `make generate`"
    for name in fresh:
        assert fresh[name] == committed[name], f"{directory}/{name} drifted: run `make generate`"
