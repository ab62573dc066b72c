"""The diagram backend: edge labels from handler paths, styles, simplified variant."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ROOT, check_golden

from fsmc.backends import dot
from fsmc.compiler import load


def test_golden(snippet: Path) -> None:
    c = load(snippet)
    (protocol,) = c.document.protocols
    out = dot.render(c, protocol)
    assert sorted(out) == ["demo/ping_full.dot", "demo/ping_simplified.dot"]
    check_golden("ping_full.dot", out["demo/ping_full.dot"])


def test_edge_labels_follow_paths_through_handlers(snippet: Path) -> None:
    c = load(snippet)
    (fsm,) = c.document.protocols[0].fsms
    labels = {(e.source, e.target, e.label) for e in dot.edges(fsm)}
    assert ("InitState", "Waiting", "Init [ready] / Hello") in labels
    assert ("InitState", "Idle", "Init [!ready]") in labels
    assert ("Idle", None, "Hello [fromPeer] / Welcome") in labels
    assert ("Waiting", "End", "Cancel") in labels


def keysync_dot(simplified: bool) -> str:
    c = load(ROOT / "protocols" / "keysync" / "keysync.fsm")
    name = "keysync/keysync_simplified.dot" if simplified else "keysync/keysync_full.dot"
    return dot.render(c, c.document.protocols[0])[name]


def test_keysync_full_diagram() -> None:
    text = keysync_dot(False)
    for state in ["InitState", "Sole", "HandshakingOfferer", "HandshakingRequester", "HandshakingPhase1Offerer",
                  "HandshakingPhase1Requester", "HandshakingPhase2Offerer", "FormingGroupOfferer",
                  "FormingGroupRequester", "Grouped", "GroupKeyResetElection", "HandshakingToJoin",
                  "HandshakingToJoinPhase1", "HandshakingToJoinPhase2", "JoiningGroup", "HandshakingGrouped",
                  "HandshakingGroupedPhase1", "End"]:
        assert f'"{state}" [' in text, state
    assert ('"HandshakingPhase1Offerer" -> "FormingGroupOfferer" '
            '[label="CommitAcceptRequester [sameNegotiation] / CommitAcceptOfferer"];') in text
    # stable states (timeout=off) are drawn filled with a double border
    assert '"Sole" [label=<<B>Sole</B>' in text and "peripheries=2" in text.split('"Sole" [')[1].split("\n")[0]
    assert "peripheries=2" not in text.split('"HandshakingOfferer" [')[1].split("\n")[0]
    assert 'label="Cancel / Rollback"' in text


def test_keysync_simplified_diagram_drops_cancel_and_reject() -> None:
    text = keysync_dot(True)
    edges = [line for line in text.splitlines() if "->" in line]
    assert edges, text
    for event in ("Cancel", "Reject", "Rollback", "CommitReject"):
        assert not any(f'label="{event}' in line for line in edges), event
    assert '"End"' not in text  # only Reject and CommitReject lead there
    assert len(edges) < len([line for line in keysync_dot(False).splitlines() if "->" in line])


def test_rendering_is_deterministic() -> None:
    assert keysync_dot(False) == keysync_dot(False)


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_svg_is_well_formed_and_names_every_state() -> None:
    text = keysync_dot(False)
    svg = dot.svg(text)
    assert svg == dot.svg(text)
    root = ET.fromstring(svg)
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    assert {"Sole", "Grouped", "End", "HandshakingGroupedPhase1"} <= titles
