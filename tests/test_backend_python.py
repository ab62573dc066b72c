"""The Python backend: golden output for a snippet, and the generated code driven."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import ROOT, check_golden, run_tool, tool

from fsmc.backends import asn1, python
from fsmc.compiler import load
from runtime import Debug, Ignored, Send, Transition, UnsetFieldError


def compile_snippet(path: Path) -> ModuleType:
    c = load(path)
    assert c.ok, c.diagnostics.render()
    (protocol,) = c.document.protocols
    out = path.parent / "out"
    out.mkdir()
    for name, text in {**python.render(c, protocol), **asn1.render(c, protocol)}.items():
        (out / name).write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("demo_generated", out / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_generated"] = module
    spec.loader.exec_module(module)
    return module


def test_golden(snippet: Path) -> None:
    c = load(snippet)
    (protocol,) = c.document.protocols
    check_golden("demo.py", python.render(c, protocol)["demo.py"])


class Bindings:
    """Conditions answer from a dict; actions are recorded."""

    def __init__(self, machine_buffer: Any = None, **conditions: bool) -> None:
        self.conditions = conditions
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in self.conditions:
            return lambda: self.conditions[name]
        if name == "sender":
            return lambda: "bob"
        return lambda: self.calls.append(name)


def test_generated_machine_runs(snippet: Path) -> None:
    g = compile_snippet(snippet)
    assert [e.name for e in g.PingEvent] == ["Timeout", "Init", "Hello", "Welcome", "Cancel", "Poke"]
    assert g.PingEvent.Poke == 132 and g.PingEvent.Cancel == 131
    assert {g.PingState.InitState: 30, g.PingState.Idle: None, g.PingState.Waiting: 30} == g.Ping.TIMEOUTS

    b = Bindings(ready=False, fromPeer=True)
    machine = g.Ping(b)
    effects = machine.start()
    assert b.calls == ["prepare"]
    assert effects == [Debug("not ready yet"), Transition(g.PingState.InitState, g.PingState.Idle, 1)]
    assert machine.state is g.PingState.Idle

    # Sending loads fields from the I/O buffer and computes the auto Version (version 2, 1).
    with pytest.raises(UnsetFieldError, match="Hello: field challenge"):
        machine.dispatch(g.PingEvent.Poke)
    machine.buffer.challenge = bytes(16)
    (sent,) = machine.dispatch(g.PingEvent.Poke)
    assert sent == Send(g.Hello(challenge=bytes(16), version=g.Version(major=2, minor=1)))

    # Receiving copies fields into the buffer; `send ... to peer` addresses the bound peer.
    members = (g.Member(name="alice", key_id=b"12345678"),)
    machine.buffer.members, machine.buffer.is_group = members, True
    effects = machine.receive(g.Hello(challenge=b"c" * 16, version=g.Version()))
    assert machine.buffer.challenge == b"c" * 16
    assert effects == [Send(g.Welcome(challenge=b"c" * 16, members=members, is_group=True), to="bob")]

    # An event without a handler is ignored, visibly; Cancel in Idle has none.
    assert machine.dispatch(g.PingEvent.Cancel) == [Ignored(g.PingState.Idle, g.PingEvent.Cancel)]


def test_go_ends_the_handler_and_enters_the_new_state(snippet: Path) -> None:
    g = compile_snippet(snippet)
    b = Bindings(ready=True)
    machine = g.Ping(b)
    machine.buffer.challenge = bytes(16)
    effects = machine.start()
    assert [type(e) for e in effects] == [Send, Transition]
    assert b.calls == []  # `do prepare` after the go never ran
    assert machine.state is g.PingState.Waiting
    assert machine.dispatch(g.PingEvent.Cancel)[-1] == Transition(g.PingState.Waiting, 0, g.PingEvent.Cancel)
    assert machine.stopped
    assert machine.dispatch(g.PingEvent.Poke) == []  # End is terminal


def test_generated_keysync_module_passes_ruff_and_mypy() -> None:
    ruff, mypy = tool("ruff"), tool("mypy")
    if ruff is None or mypy is None:
        pytest.skip("ruff or mypy not installed")
    r = run_tool([ruff, "check", "generated"], ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_tool([mypy, "--strict", "generated/keysync.py", "generated/mpenc.py"], ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_nested_ifs_without_else_become_one_condition(snippet: Path) -> None:
    text = snippet.read_text().replace("fsm Ping 1, threshold=30 {", """fsm Ping 1, threshold=30 {
        state Nested {
            on Poke {
                if a {
                    if b {
                        if c
                            do both;
                    }
                }
                if d {
                    if e
                        do kept;
                }
                else
                    do other;
            }
        }""")
    snippet.write_text(text)
    c = load(snippet)
    (protocol,) = c.document.protocols
    code = python.render(c, protocol)["demo.py"]
    assert "        if b.a() and b.b() and b.c():\n            b.both()\n" in code
    # An else keeps its if apart: the inner if only runs when d holds.
    assert "        if b.d():\n            if b.e():\n                b.kept()\n        else:\n" in code


def test_an_event_raised_inside_a_handler_runs_after_it(snippet: Path) -> None:
    g = compile_snippet(snippet)
    machine: Any = None

    class Raising(Bindings):
        def __getattr__(self, name: str) -> Any:
            if name == "storeMembers":  # an action that dispatches: must not nest
                def store() -> None:
                    self.calls.append("storeMembers")
                    assert machine.dispatch(g.PingEvent.Cancel) is machine.effects
                    assert machine.state is g.PingState.Waiting  # Cancel has not run yet
                return store
            return super().__getattr__(name)

    machine = g.Ping(Raising(ready=True))
    machine.buffer.challenge = bytes(16)
    machine.start()
    effects = machine.receive(g.Welcome(challenge=bytes(16), members=(), is_group=False))
    # Welcome's handler goes to Idle; the Cancel raised inside it runs after, in Idle.
    assert effects[-2:] == [Transition(g.PingState.Waiting, g.PingState.Idle, g.PingEvent.Welcome),
                            Ignored(g.PingState.Idle, g.PingEvent.Cancel)]
    assert machine.dispatch(g.PingEvent.Cancel) == [Ignored(g.PingState.Idle, g.PingEvent.Cancel)]


def test_states_that_would_share_a_python_constant_are_refused(snippet: Path) -> None:
    text = snippet.read_text(encoding="utf-8")
    snippet.write_text(text.replace("state Waiting {", "state IDLE {}\n        state Waiting {"), encoding="utf-8")
    c = load(snippet)
    assert c.ok, c.diagnostics.render()
    with pytest.raises(ValueError, match="states Idle and IDLE would both be the Python constant PING_IDLE"):
        python.render(c, c.document.protocols[0])


def test_send_to_each_sends_one_copy_to_each_party_captured_for_it(snippet: Path) -> None:
    """`send M to each peers;`: the bindings name the receivers; every copy is captured
    for its receiver (Status seals each pairwise)."""
    snippet.write_text(snippet.read_text().replace("on Poke send Hello;", "on Poke send Hello to each installations;"))
    c = load(snippet)
    assert c.ok, c.diagnostics.render()
    code = python.render(c, c.document.protocols[0])["demo.py"]
    assert "def installations(self) -> Sequence[str]: ..." in code
    assert "        for to in b.installations():\n            self.send(Hello, to=to)\n" in code
    g = compile_snippet(snippet)
    b = Bindings(ready=False)
    b.installations = lambda: ("phone", "laptop", "bob")  # type: ignore[attr-defined]
    machine = g.Ping(b)
    captured: list[tuple[str, str | None]] = []
    machine.capture = lambda message, to: captured.append((type(message).__name__, to)) or to
    machine.start()
    machine.buffer.challenge = bytes(16)
    sends = [e for e in machine.dispatch(g.PingEvent.Poke) if isinstance(e, Send)]
    assert [(e.to, e.context) for e in sends] == [("phone", "phone"), ("laptop", "laptop"), ("bob", "bob")]
    assert captured == [("Hello", "phone"), ("Hello", "laptop"), ("Hello", "bob")]


def test_optional_members_and_inline_lists_round_trip(snippet: Path) -> None:
    """An OPTIONAL member is `T | None = None`, absent on the wire when None (a nested
    SEQUENCE too); an inline `SEQUENCE OF T` member is a tuple of T, as a named list is."""
    types = snippet.parent / "Types.asn1"
    types.write_text(types.read_text().replace(
        "MemberList ::= SEQUENCE OF Member",
        "Header ::= SEQUENCE { n INTEGER (0..255) }\n"
        "Member ::= SEQUENCE { name Name, key-id OCTET STRING (SIZE(8)), header Header OPTIONAL,\n"
        "                      tags SEQUENCE OF Name, note Name OPTIONAL }\n"
        "MemberList ::= SEQUENCE OF Member").replace(
        "Member ::= SEQUENCE { name Name, key-id OCTET STRING (SIZE(8)) }\n", ""))
    g = compile_snippet(snippet)
    assert g.Member.__dataclass_fields__["header"].default is None
    plain = g.Member(name="a", key_id=b"12345678", tags=())
    full = g.Member(name="b", key_id=b"87654321", header=g.Header(n=7), tags=("x", "y"), note="hi")
    for fast in (True, False):
        codec = g.CODEC if fast else type(g.CODEC)(g.CODEC._paths, g.CODEC._type, g.Ping.MESSAGES.values(), fast=False)
        message = g.Welcome(challenge=bytes(16), members=(plain, full), is_group=True)
        data = codec.encode(message)
        assert codec.decode(data) == message
    # Leaving a member out costs its presence bit only.
    one = g.CODEC.encode(g.Welcome(challenge=bytes(16), members=(plain,), is_group=True))
    assert len(one) < len(g.CODEC.encode(g.Welcome(challenge=bytes(16), members=(full,), is_group=True)))
