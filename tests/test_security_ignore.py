"""`security=ignore`, the pEp engine's (storage.fsm and sync.fsm's ReceiverRating): the
machines neither send nor take such a message, whatever its security: the checker does
not warn that it is never sent or handled, and reports a `send` of it (ignored-send)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import SNIPPET_ASN1
from test_backend_python import compile_snippet

from fsmc.compiler import load
from runtime.harness.network import InMemoryNetwork
from runtime.party import Party
from runtime.records import Security

TEXT = """include ./fsm.yml2
protocol Demo 3, asn1=Types {
    fsm Ping 1 {
        version 1, 0;
        state InitState {
            on Init {
                do setChallenge;
                send Hello;
                go Idle;
            }
        }
        state Idle timeout=off {
            on Hello
                do heard;
        }
        message Hello 2, type=broadcast, security=unencrypted {
            field TID challenge;
        }
        // stored by the application, never on the channel
        message Rating 3, security=ignore {
            field TID challenge;
        }
    }
}
"""


class Plain:
    """A device with no envelope: the bytes are the encoding."""

    def __init__(self) -> None:
        self.machine: Any = None
        self.heard_count = 0

    def clock(self) -> float:
        return 0.0

    def capture(self, message: Any, to: str | None = None) -> None:
        return None

    def setChallenge(self) -> None:
        self.machine.buffer.challenge = bytes(16)

    def seal(self, message: Any, data: bytes, captured: Any) -> bytes:
        return data

    def describe(self, captured: Any) -> Any:
        return None

    def open(self, data: bytes) -> tuple[bytes, Any]:
        return data, None

    def admit(self, message: Any, context: Any) -> str | None:
        return None

    def receiving(self, message: Any, context: Any) -> None:
        pass

    def listening(self) -> frozenset[str]:
        return frozenset()

    def heard(self) -> None:
        self.heard_count += 1


def _compiled(tmp_path: Path) -> Any:
    (tmp_path / "Types.asn1").write_text(SNIPPET_ASN1, encoding="utf-8")
    path = tmp_path / "demo.fsm"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_a_message_with_security_ignore_is_neither_sent_nor_taken(tmp_path: Path) -> None:
    path = _compiled(tmp_path)
    compilation = load(path)
    assert compilation.ok and not [d for d in compilation.diagnostics if "Rating" in d.message]
    g = compile_snippet(path)
    assert g.Rating.SECURITY is Security.IGNORE
    network = InMemoryNetwork()
    device = Plain()
    machine = g.Ping(device)
    device.machine = machine
    party = Party("a", machine, device, g.CODEC, network, device.clock)
    party.start()
    assert [d.label[1].NAME for d in network.queue("a")] == ["Hello"]
    hello = network.next()
    assert hello is not None
    party.deliver(hello)
    assert device.heard_count == 1
    # One arriving anyway (another implementation's) is dropped before anything sees it.
    rating = g.CODEC.encode(g.Rating(challenge=bytes(16)))
    before = (machine.state_name, repr(machine.buffer))
    party.deliver(hello._replace(seq=99, data=rating))
    assert (machine.state_name, repr(machine.buffer)) == before and device.heard_count == 1
    assert (party.trace[-1].kind, party.trace[-1].code, party.trace[-1].message) == ("drop", "ignore", "Rating")


def test_a_send_of_an_ignored_message_is_an_error(tmp_path: Path) -> None:
    path = _compiled(tmp_path)
    path.write_text(TEXT.replace("send Hello;", "send Hello;\n                send Rating;"), encoding="utf-8")
    errors = load(path).diagnostics.errors
    assert [(d.position.line, d.position.column, d.code) for d in errors] == [(9, 22, "ignored-send")]
    assert "security=ignore" in errors[0].message
