"""The DSL file as it is on disk, compiled into importable Python: what `fsmc simulate`,
`fsmc explore` and the tests run, so that an edited FSM is what runs, with no `make
generate` in between.

`machines(path)` compiles a DSL file with the Python and ASN.1 backends (exactly what
`fsmc compile` writes into generated/: the drift test compares the two) and imports the
result. Compilations are cached by content in a directory (FSMC_CACHE, else
~/.cache/fsmc): an entry is keyed by the compiler's own source, the DSL file's path and
text, and records every other file the compilation read (included DSL files, ASN.1 type
modules) with its digest, so an edit to any of them compiles again. Within a process a
module is imported once per content.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType

from fsmc.backends import asn1, python
from fsmc.backends.common import module_name, source_name
from fsmc.compiler import load
from runtime.errors import LocalError
from runtime.harness.simulation import Scenario
from runtime.harness.simulation import load_scenario as _load_scenario
from runtime.manifest import Manifest

__all__ = ["BuildError", "cache_dir", "load_scenario", "machines", "protocol_machines"]

PACKAGE = "fsmc_built"  # the compiled modules' package: fsmc_built.<digest>.<module>


class BuildError(LocalError):
    """The DSL file does not compile; the message holds its rendered diagnostics."""

    code = "build"


def cache_dir() -> Path:
    configured = os.environ.get("FSMC_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fsmc"


@cache
def _compiler_digest() -> str:
    """The compiler's own source: a changed backend or template makes a new entry."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".lark", ".j2") and p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_modules: dict[tuple[str, str], ModuleType] = {}  # (entry, module) -> the imported module


def machines(path: Path, module: str | None = None) -> ModuleType:
    """The compiled module of the DSL file at `path` (the one protocol it declares, or
    `module` among several): its machine classes, records and CODEC."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise BuildError(f"{path}: {e.strerror}") from e
    key = hashlib.sha256(b"\0".join([_compiler_digest().encode(), source_name(path).encode(),
                                     str(path.resolve()).encode(), text])).hexdigest()[:32]
    entry = cache_dir() / key
    files = _cached(entry) or _compile(path, entry)
    name = module or (files[0] if len(files) == 1 else None)
    if name is None or name not in files:
        raise BuildError(f"{path}: compiles to {', '.join(files)}; which one is `module`?")
    found = _modules.get((key, name))
    if found is None:
        found = _modules[(key, name)] = _import(entry, key, name)
    return found


def protocol_machines(manifest: Manifest) -> ModuleType:
    """A protocol's DSL file, compiled: the `machines` loader for scenarios."""
    return machines(manifest.dsl, manifest.module or manifest.name)


def load_scenario(path: Path) -> Scenario:
    """A scenario whose protocol is compiled from its DSL file as it is on disk."""
    return _load_scenario(Path(path), protocol_machines)


def _cached(entry: Path) -> list[str] | None:
    """The entry's module names, if it exists and every file it read is unchanged."""
    try:
        record = json.loads((entry / "inputs.json").read_text(encoding="utf-8"))
        for name, digest in record["inputs"].items():
            # Recorded resolved: one that now resolves elsewhere (became a link) is read
            # from another place, which the generated files name.
            if Path(name).resolve() != Path(name) or _digest(Path(name)) != digest:
                return None
        modules: list[str] = record["modules"]
        if all((entry / f"{m}.py").is_file() for m in modules):
            return modules
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _compile(path: Path, entry: Path) -> list[str]:
    compilation = load(path)
    if compilation.diagnostics.errors:
        raise BuildError(compilation.diagnostics.render())
    files: dict[str, str] = {}
    modules = []
    for protocol in compilation.document.protocols:
        modules.append(module_name(compilation, protocol))
        files.update(python.render(compilation, protocol))
        files.update(asn1.render(compilation, protocol))
    inputs: set[str] = set()
    for c in (compilation, *compilation.embedded.values()):  # an embedded protocol's files too
        inputs |= {str(Path(p.position.path).resolve()) for p in c.document.protocols}
        inputs |= {str(t.path.resolve()) for t in c.types.values() if t is not None}
    inputs.discard(str(path.resolve()))  # the key holds its text
    # Written to a temporary directory and renamed into place: two processes compiling
    # at once each get a whole entry (the second rename finds the first's and keeps it).
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
    for name, text in files.items():
        (work / name).write_text(text, encoding="utf-8")
    record = {"source": str(path.resolve()), "modules": modules,
              "inputs": {name: _digest(Path(name)) for name in sorted(inputs)}}
    (work / "inputs.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    if entry.exists():
        shutil.rmtree(entry)
    try:
        work.rename(entry)
    except OSError:
        shutil.rmtree(work)
    return modules


def import_entry(entry: Path, key: str, name: str) -> ModuleType:
    """Import `name` of a directory of compiled modules (fsmc mutate's, in a temporary
    directory) as fsmc_built.<key>.<name>; `forget_entry` takes it out again."""
    return _import(entry, key, name)


def forget_entry(module: ModuleType) -> None:
    """Remove a module imported by `import_entry`, its package and its siblings."""
    package = module.__name__.rpartition(".")[0]
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _import(entry: Path, key: str, name: str) -> ModuleType:
    """Import <entry>/<name>.py as fsmc_built.<key>.<name> (registered in sys.modules:
    dataclasses and devices look their records' module up there)."""
    qualified = f"{PACKAGE}.{key}.{name}"
    if qualified in sys.modules:  # imported already by a sibling that embeds it
        return sys.modules[qualified]
    for package, where in ((PACKAGE, []), (f"{PACKAGE}.{key}", [str(entry)])):
        if package not in sys.modules:
            holder = ModuleType(package)
            # The entry is a package: a module embedding another protocol imports it
            # from beside itself (`from .distribution import ...`).
            holder.__path__ = where
            sys.modules[package] = holder
    spec = importlib.util.spec_from_file_location(qualified, entry / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module
