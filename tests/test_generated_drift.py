"""generated/ and diagrams/ are exactly what the compiler produces from protocols/, and
exactly what `fsmc simulate` and `fsmc explore` compile from the DSL files on disk.

`make generate` rewrites them; this test fails when a committed file drifts (someone
edited generated code, or changed the compiler without regenerating).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT

from fsmc import build
from fsmc.cli import main
from runtime import registry

# One module per protocol folder in generated/, and the folders in the pEp engine's tree
# layout (codegen/*.fsm) as packages, generated/<name>/, as `make generate` writes them.
PROTOCOLS = [str(m.dsl.relative_to(ROOT)) for m in registry.protocols().values() if not m.module]
TREES = {m.name: sorted(str(p.relative_to(ROOT)) for p in m.dsl.parent.glob("*.fsm"))
         for m in registry.protocols().values() if m.module}
IGNORED = {"py.typed", "__pycache__"}


def files(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): p.read_text(encoding="utf-8") for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name not in IGNORED and "__pycache__" not in p.parts}


def regenerate(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(ROOT)  # sources are named relative to the checkout, as `make generate` does
    out = tmp_path / command
    assert main([command, "--quiet", "-o", str(out), *PROTOCOLS]) == 0
    for name, sources in TREES.items():
        assert main([command, "--quiet", "-o", str(out / name), *sources]) == 0
    return files(out)


def test_every_protocol_of_the_registry_is_a_dsl_file_of_the_project() -> None:
    assert PROTOCOLS and all((ROOT / p).is_file() for p in PROTOCOLS)
    assert all(TREES.values())


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


@pytest.mark.parametrize("name", sorted(registry.protocols()))
def test_what_scenarios_run_is_the_committed_module(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scenario's machines, compiled from the DSL file, are byte for byte generated/."""
    monkeypatch.chdir(ROOT)
    module = build.protocol_machines(registry.get(name))
    assert module.__file__ is not None
    compiled = Path(module.__file__)
    manifest = registry.get(name)
    committed = ROOT / "generated" / (f"{name}/{manifest.module}" if manifest.module else name)
    names = [p.name for p in compiled.parent.iterdir() if p.suffix in (".py", ".asn1")]
    assert f"{committed.name}.py" in names and len(names) >= 2, names
    for file in names:
        assert (compiled.parent / file).read_text(encoding="utf-8") == \
            (committed.parent / file).read_text(encoding="utf-8"), f"{name}: {file}"
