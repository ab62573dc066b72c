"""Diagram backend: each fsm as a graphviz graph, full and simplified.

Drawn from the same model as the code, in the same regeneration (never by hand):

- nodes: every state and End. Stable states (timeout=off: Sole and Grouped, A.1.1) are
  filled and double-bordered, transitional states plain, InitState is entered from a dot,
  End is a double circle. The tooltip gives the state's effective timeout.
- edges: one per path through a handler that ends in `go`, labelled
  `Event [cond && !other] / Sent, Messages` with the conditions taken on that path and the
  messages sent on it before the `go`.
- handlers that never change state (they only act or send) are listed inside the state's
  box as `Event [cond] / Messages` lines instead of drawing a self-loop for each, which
  would bury the transitions of Grouped and Sole under loops.
  Paths that neither send nor act (an ignored Beacon, a failed sameNegotiation) are not
  listed: they are the implicit "ignore".
- the simplified diagram leaves out the transitions taken on Cancel, Reject, Rollback and
  CommitReject, as the draft's second figure does (A.1); a state no remaining transition
  touches is left out too (in KeySync, End: only Reject and CommitReject lead there).
- an fsm without states (the engine's Distribution and Storage, containers of messages)
  has no diagram, as the engine's gen_dot.ysl2 draws only `fsm[count(state)>0]`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from fsmc import model as m
from fsmc.backends.common import header, module_name, source_name
from fsmc.compiler import Compilation

__all__ = ["SIMPLIFIED_AWAY", "Edge", "edges", "render", "render_dot", "render_with_svg", "svg"]

SIMPLIFIED_AWAY = frozenset({"Cancel", "Reject", "Rollback", "CommitReject"})


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str | None  # None: the path stays in the state
    event: str
    conditions: tuple[str, ...]  # "c" or "!c"
    sends: tuple[str, ...]
    acts: bool = True  # the path sends or runs an action

    @property
    def label(self) -> str:
        text = self.event
        if self.conditions:
            text += f" [{' && '.join(self.conditions)}]"
        if self.sends:
            text += f" / {', '.join(self.sends)}"
        return text


_Path = tuple[str | None, tuple[str, ...], tuple[str, ...], bool]


def _paths(body: tuple[m.Statement, ...], conditions: tuple[str, ...], sends: tuple[str, ...],
           acts: bool) -> list[_Path]:
    """Every path through a statement list: (go target or None, conditions, sends, acts)."""
    if not body:
        return [(None, conditions, sends, acts)]
    first, rest = body[0], body[1:]
    if isinstance(first, m.Go):
        return [(first.state, conditions, sends, acts)]  # go ends the handler
    if isinstance(first, m.Send):
        return _paths(rest, conditions, sends + (first.message,), True)
    if isinstance(first, m.Do):
        return _paths(rest, conditions, sends, True)
    if isinstance(first, m.If):
        out: list[_Path] = []
        for branch, cond in ((first.then, first.condition), (first.orelse or (), f"!{first.condition}")):
            for target, conds, sent, did in _paths(branch, conditions + (cond,), sends, acts):
                if target is not None:
                    out.append((target, conds, sent, did))
                else:  # the branch falls through to the statements after the if
                    out += _paths(rest, conds, sent, did)
        return out
    return _paths(rest, conditions, sends, acts)


def edges(fsm: m.Fsm) -> list[Edge]:
    """Every path of every handler, in source order."""
    out = []
    for state, handler in fsm.handlers():
        for target, conds, sent, acts in _paths(handler.body, (), (), False):
            out.append(Edge(state.name, target, handler.event, conds, sent, acts))
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_dot(fsm: m.Fsm, source: str, simplified: bool) -> str:
    all_edges = edges(fsm)
    left_out = sorted({e.event for e in all_edges} & SIMPLIFIED_AWAY)
    if simplified:
        all_edges = [e for e in all_edges if e.event not in SIMPLIFIED_AWAY]
    transitions = [e for e in all_edges if e.target is not None and e.target != e.source]
    stays = [e for e in all_edges if (e.target is None or e.target == e.source) and e.acts]
    # A state is drawn when something leads to it or leaves it (InitState always).
    shown = {m.INIT_STATE} | {e.source for e in transitions} | {e.target for e in transitions if e.target}
    # The title names what the simplified diagram leaves out, of what this fsm handles.
    leaves = f"without {', '.join(left_out)}" if left_out else "nothing to leave out"
    title = f"fsm {fsm.name}" + (f" (simplified: {leaves})" if simplified else "")
    lines = [
        header(source, "//").rstrip(),
        f"digraph {_quote(fsm.name + ('_simplified' if simplified else ''))} {{",
        f"    label={_quote(title)};",
        "    labelloc=t; fontname=\"Helvetica\"; fontsize=16;",
        "    rankdir=TB; nodesep=0.4; ranksep=0.5;",
        "    node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];",
        "    edge [fontname=\"Helvetica\", fontsize=9];",
        "    __start [shape=point, width=0.15, label=\"\"];",
    ]
    for state in fsm.states:
        if state.name not in shown:
            continue
        timeout = fsm.timeout(state)
        stable = timeout is None
        rows = [f"<B>{_html(state.name)}</B>"]
        rows += [_html(e.label) for e in stays if e.source == state.name and e.event != m.INIT_EVENT]
        label = "<" + "<BR/>".join(rows) + ">"
        tooltip = "stable: no timeout" if stable else f"transitional: times out after {timeout} s"
        style = 'style="rounded,filled", fillcolor="#dbe9f6", peripheries=2' if stable else "style=rounded"
        lines.append(f"    {_quote(state.name)} [label={label}, {style}, tooltip={_quote(tooltip)}];")
    if any(e.target == m.END_STATE for e in transitions):
        lines.append(f"    {_quote(m.END_STATE)} [shape=doublecircle, style=\"\", label=\"End\", fontsize=10];")
    lines.append(f"    __start -> {_quote(m.INIT_STATE)};")
    for e in transitions:
        assert e.target is not None
        lines.append(f"    {_quote(e.source)} -> {_quote(e.target)} [label={_quote(e.label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(compilation: Compilation, protocol: m.Protocol) -> dict[str, str]:
    source = source_name(compilation.path)
    out = {}
    folder = module_name(compilation, protocol)  # two protocols' fsms may share a name
    for fsm in protocol.fsms:
        if fsm.stateless:
            continue
        base = f"{folder}/{fsm.name.lower()}"
        out[f"{base}_full.dot"] = render_dot(fsm, source, simplified=False)
        out[f"{base}_simplified.dot"] = render_dot(fsm, source, simplified=True)
    return out


class GraphvizMissing(RuntimeError):
    pass


def svg(dot_text: str) -> str:
    """Render with graphviz's `dot`; the output depends only on the input and dot's version."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing("graphviz `dot` is not installed: run `make setup` (it installs graphviz)")
    result = subprocess.run([dot, "-Tsvg"], input=dot_text.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode("utf-8")


def render_with_svg(compilation: Compilation, protocol: m.Protocol) -> dict[str, str]:
    out = render(compilation, protocol)
    for name, text in list(out.items()):
        out[name.removesuffix(".dot") + ".svg"] = svg(text)
    return out
