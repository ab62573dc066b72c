"""Where the tools find protocols by name.

A protocol is a package that defines `PROTOCOL`, a `runtime.manifest.Manifest`: each
subpackage of `protocols` (this project's folders, docs/protocols.md), and any package
another distribution registers under the entry-point group `fsmc.protocols`. Found once,
on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata

from runtime.errors import RegistryError
from runtime.manifest import Manifest

__all__ = ["get", "names", "protocols"]

PACKAGE = "protocols"
ENTRY_POINTS = "fsmc.protocols"

_found: dict[str, Manifest] | None = None


def _manifest(module_name: str) -> Manifest | None:
    module = importlib.import_module(module_name)
    manifest = getattr(module, "PROTOCOL", None)
    if manifest is None:
        return None
    if not isinstance(manifest, Manifest):
        raise RegistryError(f"{module_name}.PROTOCOL is a {type(manifest).__name__}, not a Manifest")
    return manifest


def protocols() -> dict[str, Manifest]:
    """Every protocol found, by name."""
    global _found
    if _found is None:
        found: dict[str, Manifest] = {}
        try:
            package = importlib.import_module(PACKAGE)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                if info.ispkg:
                    manifest = _manifest(f"{PACKAGE}.{info.name}")
                    if manifest is not None:
                        found[manifest.name] = manifest
        except ModuleNotFoundError:
            pass
        for entry in metadata.entry_points(group=ENTRY_POINTS):
            manifest = entry.load()
            if isinstance(manifest, Manifest):
                found.setdefault(manifest.name, manifest)
        _found = found
    return _found


def names() -> list[str]:
    return sorted(protocols())


def get(name: str) -> Manifest:
    """The protocol called `name`; RegistryError naming the ones there are."""
    found = protocols()
    if name not in found:
        raise RegistryError(f"no protocol {name!r}: the registry has {', '.join(sorted(found)) or 'none'} "
                            f"(subpackages of {PACKAGE}/ defining PROTOCOL)")
    return found[name]
