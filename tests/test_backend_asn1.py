"""The ASN.1 backend: golden module text, and byte compatibility with the pEp engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asn1tools
import pytest
from conftest import ROOT, check_golden

from fsmc.backends import asn1
from fsmc.compiler import load
from generated import keysync
from runtime import EncodeError

# The copy travels with the project (tests/vectors/README.md names its source); the shared
# original is checked against it when it is beside the project.
VECTORS_COPY = Path(__file__).parent / "vectors" / "pep-keysync-uper.json"
VECTORS_SHARED = ROOT.parent / "shared" / "vectors" / "pep-keysync-uper.json"
VECTORS = json.loads(VECTORS_COPY.read_text())


def test_the_vectors_are_the_shared_ones() -> None:
    if not VECTORS_SHARED.exists():
        pytest.skip("no shared/ beside the project")
    assert json.loads(VECTORS_SHARED.read_text()) == VECTORS


def test_golden(snippet: Path) -> None:
    c = load(snippet)
    (protocol,) = c.document.protocols
    text = asn1.render(c, protocol)["demo.asn1"]
    check_golden("demo.asn1", text)
    asn1tools.compile_string(text, "uper")  # it is valid ASN.1 for asn1tools


def test_keysync_module_follows_the_engine_scheme() -> None:
    c = load(ROOT / "protocols" / "keysync" / "keysync.fsm")
    text = asn1.render(c, c.document.protocols[0])["keysync.asn1"]
    assert "KEYSYNC DEFINITIONS AUTOMATIC TAGS EXTENSIBILITY IMPLIED ::=" in text
    assert "IMPORTS Hash, IdentityList, TID, Version FROM PEP;" in text
    assert "    beacon [APPLICATION 2] Beacon,\n    negotiationRequest [APPLICATION 3] NegotiationRequest," in text
    assert "    is-group BOOLEAN\n" in text
    assert "Sync ::= CHOICE {\n    keysync [APPLICATION 1] KeySync,\n    ...\n}" in text


def vector_message(vector: dict[str, Any]) -> Any:
    tids = {k: bytes.fromhex(v) for k, v in VECTORS["tids"].items()}
    values = {k: tids.get(v, v) if isinstance(v, str) else v for k, v in vector["value"].items()}
    if "version" in values:
        values["version"] = keysync.Version(**values["version"])
    return getattr(keysync, vector["message"])(**values)


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["message"])
def test_encodes_exactly_the_engine_bytes(vector: dict[str, Any]) -> None:
    assert keysync.CODEC.encode(vector_message(vector)).hex() == vector["uper_hex"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["message"])
def test_decodes_the_engine_bytes(vector: dict[str, Any]) -> None:
    assert keysync.CODEC.decode(bytes.fromhex(vector["uper_hex"])) == vector_message(vector)


def test_hash_size_constraint_survives() -> None:
    """asn1tools keeps SIZE(16..128) on Hash only in the rewritten form (pEp.asn1 comment);
    with it a 40-digit Hash's length takes 7 bits, and too short a Hash is rejected."""
    with pytest.raises(EncodeError, match="key"):
        keysync.CODEC.encode(keysync.GroupHandshake(negotiation=bytes(16), key="ABCD"))
