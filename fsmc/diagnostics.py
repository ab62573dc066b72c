"""Diagnostics: positioned errors and warnings, rendered as compilers do.

Every stage reports into a `Diagnostics` collector instead of raising, so one run of
`fsmc check` shows every problem in a file. Each diagnostic carries a code from the
catalogue in `CATALOGUE`; the rendering is `path:line:col: error: message [code]`, then
the source line and a caret under the column.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["CATALOGUE", "Diagnostic", "Diagnostics", "Position", "Severity"]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in a source file; line and column count from 1."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


# The catalogue of diagnostics: code -> (severity, what it means). The messages themselves
# are formatted where the problem is found; tests/test_diagnostics.py walks this catalogue
# with one bad example per code.
CATALOGUE: dict[str, tuple[Severity, str]] = {
    "syntax": (Severity.ERROR, "the text does not follow the grammar"),
    "encoding": (Severity.ERROR, "the file is not UTF-8 text"),
    "binary": (Severity.ERROR, "the file is binary, not DSL text"),
    "include": (Severity.ERROR, "an included file cannot be read"),
    "undefined-state": (Severity.ERROR, "go to a state that is not defined"),
    "undefined-message": (Severity.ERROR, "send of a message that is not defined"),
    "duplicate-state": (Severity.ERROR, "two states with one name"),
    "duplicate-handler": (Severity.ERROR, "two handlers for one event in one state"),
    "duplicate-message": (Severity.ERROR, "two messages with one name or id"),
    "duplicate-external": (Severity.ERROR, "two externals with one name or id"),
    "duplicate-fsm": (Severity.ERROR, "two fsms with one name or id in a protocol"),
    "duplicate-field": (Severity.ERROR, "two fields with one name in a message"),
    "unknown-type": (Severity.ERROR, "a field type that is neither built in nor in the type module"),
    "field-type-conflict": (Severity.ERROR, "one field name with two types (the I/O buffer is shared)"),
    "invalid-attribute": (Severity.ERROR, "an attribute that is unknown or has an invalid value"),
    "event-conflict": (Severity.ERROR, "an event name used by both a message and an external"),
    "asn1-module": (Severity.ERROR, "the ASN.1 type module cannot be found or compiled"),
    "asn1-name": (Severity.ERROR, "a protocol or fsm whose ASN.1 module would have another module's name"),
    "peer-conflict": (Severity.ERROR, "a peer used both for one party and, with `each`, for several"),
    "python-name": (Severity.ERROR, "an fsm, message or record whose Python class would have another's name"),
    "reserved-name": (Severity.ERROR, "a name the language reserves"),
    "unknown-embed": (Severity.ERROR, "an embed of a protocol or fsm that cannot be found"),
    "embed-layout": (Severity.ERROR, "an embed between protocols that name their type module with asn1="),
    "empty-list": (Severity.ERROR, "a list without fields"),
    "list-type": (Severity.ERROR, "a list whose type name is taken, or whose members a list cannot hold"),
    "ignored-send": (Severity.ERROR, "a send of a message that is security=ignore"),
    "unreachable-state": (Severity.WARNING, "a state not reachable from InitState"),
    "message-never-sent": (Severity.WARNING, "a message no handler sends"),
    "message-never-handled": (Severity.WARNING, "a message no state handles"),
    "likely-typo": (Severity.WARNING, "a signaled event named like a message or external"),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    position: Position
    severity: Severity
    code: str
    message: str

    def render(self, source_line: str | None) -> str:
        head = f"{self.position}: {self.severity.value}: {self.message} [{self.code}]"
        if source_line is None:
            return head
        # Tabs are kept so the caret lines up under the same characters in a terminal.
        pad = "".join("\t" if c == "\t" else " " for c in source_line[: self.position.column - 1])
        return f"{head}\n{source_line}\n{pad}^"


@dataclass
class Diagnostics:
    """Collects diagnostics from every stage; knows the sources to quote lines from."""

    items: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)

    def add_source(self, path: str, text: str) -> None:
        self.sources[path] = text.splitlines()

    def report(self, position: Position, code: str, message: str) -> None:
        severity = CATALOGUE[code][0]
        self.items.append(Diagnostic(position, severity, code, message))

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(sorted(self.items, key=lambda d: (d.position, d.code, d.message)))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self if d.severity is Severity.WARNING]

    def line(self, position: Position) -> str | None:
        lines = self.sources.get(position.path)
        if lines is None or not 1 <= position.line <= len(lines):
            return None
        return lines[position.line - 1]

    def render(self, werror: bool = False) -> str:
        out = []
        for d in self:
            if werror and d.severity is Severity.WARNING:
                d = Diagnostic(d.position, Severity.ERROR, d.code, d.message)
            out.append(d.render(self.line(d.position)))
        return "\n".join(out)
