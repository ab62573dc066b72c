"""Message sequence charts of a run, as text and as SVG, from the trace.

One lane per party. A delivered message is an arrow from its sender's lane to its
receiver's; a message dropped on arrival (bad signature, security context not met, rate
limit) ends in an `x` with the reason; state changes, user events, timeouts,
notifications and the faults the explorer injects are notes in the party's lane. Messages
a party receives from itself (the draft's channel delivers own broadcasts to the sender
too, 1.2) are shown as `(own)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from runtime.party import TraceEntry

__all__ = ["Row", "rows", "svg", "text"]

SHOWN = {"receive", "drop", "state", "event", "timeout", "notify", "fault"}


@dataclass(frozen=True, slots=True)
class Row:
    time: float
    kind: str  # arrow, own, drop, note
    source: str
    target: str
    label: str


def rows(trace: Sequence[TraceEntry]) -> list[Row]:
    out = []
    for e in trace:
        if e.kind not in SHOWN:
            continue
        if e.kind == "receive" and e.peer is not None:
            out.append(Row(e.time, "own" if e.peer == e.party else "arrow", e.peer, e.party, e.detail))
        elif e.kind == "drop":
            out.append(Row(e.time, "drop", e.peer or e.party, e.party, e.detail))
        else:
            label = {"state": "[{}]", "event": "<{}>", "timeout": "timeout: {}", "notify": "{}",
                     "fault": "! {}"}[e.kind]
            out.append(Row(e.time, "note", e.party, e.party, label.format(e.detail)))
    return out


def text(trace: Sequence[TraceEntry], parties: Sequence[str], width: int = 26) -> str:
    lanes = {p: i * width + width // 2 for i, p in enumerate(parties)}
    total = width * len(parties)
    lines = ["".join(p.center(width) for p in parties)]

    def blank() -> list[str]:
        row = [" "] * total
        for x in lanes.values():
            row[x] = "|"
        return row

    for r in rows(trace):
        row = blank()
        a, b = lanes[r.source], lanes[r.target]
        if r.kind == "arrow":
            lo, hi = min(a, b), max(a, b)
            for x in range(lo + 1, hi):
                row[x] = "-"
            row[b - 1 if b > a else b + 1] = ">" if b > a else "<"
            label = f" {r.label} "
            start = max(lo + 2, (lo + hi - len(label)) // 2)
            for i, ch in enumerate(label[: max(0, hi - lo - 3)]):
                row[start + i] = ch
            line = "".join(row)
        else:
            note = {"own": f"<- {r.label} (own)", "drop": f"x {r.label}", "note": r.label}[r.kind]
            line = "".join(row[: b + 1]) + " " + note
            rest = "".join(row[b + 1 + len(note) + 1:])
            line = (line + rest) if len(line) < total else line
        lines.append(f"{line.rstrip()}")
    return "\n".join(lines) + "\n"


def svg(trace: Sequence[TraceEntry], parties: Sequence[str], title: str = "") -> str:
    lane_w, row_h, top = 240, 22, 60
    chart = rows(trace)
    width = lane_w * len(parties) + 40
    height = top + row_h * (len(chart) + 1) + 20
    x = {p: 20 + i * lane_w + lane_w // 2 for i, p in enumerate(parties)}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width // 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for p, px in x.items():
        out.append(f'<text x="{px}" y="{top - 16}" text-anchor="middle" font-weight="bold">{escape(p)}</text>')
        out.append(f'<line x1="{px}" y1="{top - 8}" x2="{px}" y2="{height - 10}" stroke="#999"/>')
    for i, r in enumerate(chart):
        y = top + row_h * (i + 1)
        a, b = x[r.source], x[r.target]
        if r.kind == "arrow":
            out.append(f'<line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="black" marker-end="url(#a)"/>')
            out.append(f'<text x="{(a + b) // 2}" y="{y - 4}" text-anchor="middle">{escape(r.label)}</text>')
        elif r.kind == "drop":
            out.append(f'<text x="{b + 6}" y="{y + 4}" fill="#b00">x {escape(r.label)}</text>')
        else:
            label = f"{r.label} (own)" if r.kind == "own" else r.label
            color = "#666" if r.kind == "own" else "#036"
            out.append(f'<text x="{b + 6}" y="{y + 4}" fill="{color}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
