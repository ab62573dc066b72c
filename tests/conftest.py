from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("FSMC_UPDATE_GOLDEN") == "1"

# A small protocol using every construct, for golden files: its text is the test's input.
SNIPPET_ASN1 = """TYPES DEFINITIONS AUTOMATIC TAGS EXTENSIBILITY IMPLIED ::=
BEGIN
TID ::= OCTET STRING (SIZE(16))
Name ::= UTF8String (SIZE(0..64))
Member ::= SEQUENCE { name Name, key-id OCTET STRING (SIZE(8)) }
MemberList ::= SEQUENCE OF Member
Version ::= SEQUENCE { major INTEGER (0..255) DEFAULT 1, minor INTEGER (0..255) DEFAULT 0 }
END
"""
SNIPPET = """include ./fsm.yml2
protocol Demo 3, asn1=Types {
    fsm Ping 1, threshold=30 {
        version 2, 1;
        state InitState {
            on Init {
                if ready {
                    send Hello;
                    go Waiting;
                }
                do prepare;
                debug > not ready yet
                go Idle;
            }
        }
        state Idle timeout=off {
            on Poke send Hello;
            on Hello {
                if fromPeer
                    send Welcome to sender;
                else {
                    debug > our own Hello
                }
            }
        }
        state Waiting {
            on Welcome {
                do storeMembers;
                go Idle;
            }
            on Cancel go End;
        }
        external Cancel 131;
        message Hello 2, type=broadcast, ratelimit=5, security=unencrypted {
            field TID challenge;
            auto Version version;
        }
        message Welcome 3, security=untrusted {
            field TID challenge;
            field MemberList members;
            field bool is_group;
        }
    }
}
"""


@pytest.fixture
def snippet(tmp_path: Path) -> Path:
    (tmp_path / "Types.asn1").write_text(SNIPPET_ASN1, encoding="utf-8")
    path = tmp_path / "demo.fsm"
    path.write_text(SNIPPET, encoding="utf-8")
    return path


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"golden file {name} was missing and has been written; check it and rerun")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (FSMC_UPDATE_GOLDEN=1 rewrites it)"


def tool(name: str) -> str | None:
    venv = ROOT / ".venv" / "bin" / name
    return str(venv) if venv.exists() else shutil.which(name)


def run_tool(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
