"""Property tests of the parser: generated programs round-trip; no input crashes it."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsmc import model as m
from fsmc.diagnostics import Diagnostics, Position
from fsmc.format import format_document
from fsmc.parser import parse_text

KEYWORDS = {"include", "protocol", "fsm", "version", "state", "on", "if", "else", "do", "send",
            "go", "external", "message", "field", "auto", "to", "debug", "list", "embed"}
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
ids = st.integers(0, 10_000)
P = Position("x.fsm", 0, 0)


def attribute() -> st.SearchStrategy[m.Attribute]:
    return st.builds(m.Attribute, names, st.one_of(names, ids), st.just(P))


def statements(depth: int) -> st.SearchStrategy[tuple[m.Statement, ...]]:
    simple = st.one_of(
        st.builds(m.Do, names, st.just(P)),
        st.builds(m.Send, names, st.just(P), st.one_of(st.none(), names)),
        st.builds(m.Go, names, st.just(P)),
        st.builds(m.Debug, st.from_regex(r"[a-z][a-z ;{}]{0,15}[a-z]", fullmatch=True), st.just(P)),
    )
    if depth > 0:
        inner = statements(depth - 1)
        simple = st.one_of(simple, st.builds(m.If, names, inner, st.one_of(st.none(), inner), st.just(P)))
    return st.lists(simple, max_size=4).map(tuple)


def fields(depth: int) -> st.SearchStrategy[tuple[m.Field, ...]]:
    """Plain and auto fields, the engine's embeds, and lists of fields and lists."""
    plain = st.builds(m.Field, st.sampled_from([m.FieldKind.FIELD, m.FieldKind.AUTO]), names, names, st.just(P))
    embed = st.builds(m.Field, st.just(m.FieldKind.EMBED), names, names, st.just(P), st.just(()), names)
    one = st.one_of(plain, embed)
    if depth > 0:
        one = st.one_of(one, st.builds(m.Field, st.just(m.FieldKind.LIST), names, names, st.just(P),
                                       fields(depth - 1)))
    return st.lists(one, max_size=3).map(tuple)


fsms = st.builds(
    m.Fsm, names, ids, st.lists(attribute(), max_size=2).map(tuple),
    st.lists(ids, max_size=3).map(tuple),
    st.lists(st.builds(m.State, names, st.lists(st.builds(m.Handler, names, statements(2), st.just(P)),
                                                 max_size=3).map(tuple),
                       st.lists(attribute(), max_size=2).map(tuple), st.just(P)), max_size=3).map(tuple),
    st.lists(st.builds(m.Message, names, ids, st.lists(attribute(), max_size=3).map(tuple),
                       fields(2), st.just(P)), max_size=3).map(tuple),
    st.lists(st.builds(m.External, names, ids, st.just(P)), max_size=2).map(tuple),
    st.just(P),
)
documents = st.builds(
    m.Document, st.just("x.fsm"),
    st.lists(st.builds(m.Include, st.from_regex(r"\./[a-z]{1,6}\.fsm", fullmatch=True), st.just(P)),
             max_size=2).map(tuple),
    st.lists(st.builds(m.Protocol, names, ids, st.lists(attribute(), max_size=2).map(tuple),
                       st.lists(fsms, max_size=2).map(tuple), st.just(P)), max_size=2).map(tuple),
)


def strip(node: Any) -> Any:
    """The node with every position and the source text blanked, recursively."""
    if isinstance(node, tuple):
        return tuple(strip(n) for n in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            changes[f.name] = P if isinstance(value, Position) else strip(value)
        if isinstance(node, m.Document):
            changes["source"] = ""
        return dataclasses.replace(node, **changes)
    return node


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_printed_model_parses_to_the_same_model(doc: m.Document) -> None:
    text = format_document(doc)
    d = Diagnostics()
    parsed = parse_text(text, "x.fsm", d)
    assert not d.items, d.render() + "\n" + text
    assert strip(parsed) == strip(doc)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("protcl fsmaeing{};=,0123456789/*>\n\tXYZdbu")), max_size=200))
def test_any_text_gives_a_model_or_diagnostics_never_an_exception(text: str) -> None:
    d = Diagnostics()
    doc = parse_text(text, "x.fsm", d)
    assert isinstance(doc, m.Document)
    for diag in d:
        assert diag.position.line >= 1 and diag.position.column >= 1
        assert diag.position.line <= text.count("\n") + 2


@settings(max_examples=100, deadline=None)
@given(documents, st.data())
def test_a_deleted_token_is_reported_not_raised(doc: m.Document, data: st.DataObject) -> None:
    text = format_document(doc)
    tokens = text.split(" ")
    if len(tokens) < 2:
        return
    i = data.draw(st.integers(0, len(tokens) - 1))
    broken = " ".join(tokens[:i] + tokens[i + 1:])
    d = Diagnostics()
    parse_text(broken, "x.fsm", d)  # must not raise; diagnostics, if any, are positioned
    assert all(x.code == "syntax" for x in d.items)
