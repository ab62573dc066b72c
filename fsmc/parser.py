"""Parse DSL text into the model, reporting syntax errors with their positions.

The grammar (grammar.lark) is parsed with lark's LALR parser; a Transformer builds
model nodes at once. Syntax errors do not stop the parse: the parser recovers at the
next `;` or `}` so that one run reports every error in a file (a later error in the
same statement is usually a consequence of the first and is not reported).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from fsmc import model as m
from fsmc.diagnostics import Diagnostics, Position

__all__ = ["parse_file", "parse_text"]

# Token names as the user knows them, for "expected ..." messages.
_TOKEN_NAMES = {
    "NAME": "a name", "INT": "a number", "PATH": "a path", "DEBUG": "debug >",
    "SEMICOLON": "';'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "EQUAL": "'='",
    "FIELD_KIND": "'field' or 'auto'", "$END": "end of file", "LIST": "'list'", "EMBED": "'embed'",
}
# Tokens after which a statement or declaration has ended: where recovery resumes.
_SYNC = {"SEMICOLON", "RBRACE", "LBRACE"}


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files("fsmc").joinpath("grammar.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _expected(tokens: set[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(t, repr(t.lower()) if t.isupper() else t) for t in tokens})
    anon = {
        "__ANON_0": "'include'",
    }
    names = [anon.get(n, n) for n in names]
    if len(names) > 6:
        names = names[:6] + ["..."]
    return ", ".join(names)


def _keyword(token_type: str) -> str:
    # lark names keyword terminals by their text in capitals (e.g. "STATE" for "state").
    return _TOKEN_NAMES.get(token_type, f"'{token_type.lower()}'")


class _Build(Transformer[Token, Any]):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _pos(self, meta: Any) -> Position:
        return Position(self.path, meta.line, meta.column)

    def _tpos(self, token: Token) -> Position:
        return Position(self.path, token.line or 0, token.column or 0)

    @staticmethod
    def _split(children: list[Any], kind: type) -> list[Any]:
        return [c for c in children if isinstance(c, kind)]

    @v_args(meta=True)
    def start(self, meta: Any, children: list[Any]) -> tuple[list[m.Include], list[m.Protocol]]:
        return self._split(children, m.Include), self._split(children, m.Protocol)

    def include(self, children: list[Token]) -> m.Include:
        return m.Include(str(children[0]), self._tpos(children[0]))

    def attribute(self, children: list[Token]) -> m.Attribute:
        name, value = children
        v: str | int = int(value) if value.type == "INT" else str(value)
        return m.Attribute(str(name), v, self._tpos(name))

    @v_args(meta=True)
    def protocol(self, meta: Any, children: list[Any]) -> m.Protocol:
        name, ident, *rest = children
        return m.Protocol(
            str(name), int(ident), tuple(self._split(rest, m.Attribute)),
            tuple(self._split(rest, m.Fsm)), self._tpos(name),
        )

    @v_args(meta=True)
    def fsm(self, meta: Any, children: list[Any]) -> m.Fsm:
        name, ident, *rest = children
        versions: tuple[int, ...] = ()
        for c in rest:
            if isinstance(c, tuple):
                versions = c
        return m.Fsm(
            name=str(name), id=int(ident),
            attributes=tuple(self._split(rest, m.Attribute)),
            versions=versions,
            states=tuple(self._split(rest, m.State)),
            messages=tuple(self._split(rest, m.Message)),
            externals=tuple(self._split(rest, m.External)),
            position=self._tpos(name),
        )

    def version(self, children: list[Token]) -> tuple[int, ...]:
        return tuple(int(c) for c in children)

    def state(self, children: list[Any]) -> m.State:
        name, *rest = children
        return m.State(
            str(name), tuple(self._split(rest, m.Handler)),
            tuple(self._split(rest, m.Attribute)), self._tpos(name),
        )

    def handler(self, children: list[Any]) -> m.Handler:
        event, body = children
        return m.Handler(str(event), body, self._tpos(event))

    def body(self, children: list[Any]) -> tuple[m.Statement, ...]:
        (inner,) = children
        return inner if isinstance(inner, tuple) else (inner,)

    def block(self, children: list[Any]) -> tuple[m.Statement, ...]:
        return tuple(children)

    # Statements are placed at the name they use: that is where a mistake is.
    def do(self, children: list[Token]) -> m.Do:
        return m.Do(str(children[0]), self._tpos(children[0]))

    def send(self, children: list[Token]) -> m.Send:
        each = any(t.type == "EACH" for t in children)
        names = [t for t in children if t.type != "EACH"]
        to = str(names[1]) if len(names) > 1 else None
        return m.Send(str(names[0]), self._tpos(names[0]), to, each)

    def go(self, children: list[Token]) -> m.Go:
        return m.Go(str(children[0]), self._tpos(children[0]))

    def debug(self, children: list[Token]) -> m.Debug:
        (token,) = children
        text = str(token).split(">", 1)[1].strip()
        return m.Debug(text, self._tpos(token))

    @v_args(meta=True)
    def if_(self, meta: Any, children: list[Any]) -> m.If:
        cond, then, *orelse = children
        return m.If(str(cond), then, orelse[0] if orelse else None, self._pos(meta))

    def external(self, children: list[Token]) -> m.External:
        name, ident = children
        return m.External(str(name), int(ident), self._tpos(name))

    def message(self, children: list[Any]) -> m.Message:
        name, ident, *rest = children
        return m.Message(
            str(name), int(ident), tuple(self._split(rest, m.Attribute)),
            tuple(self._split(rest, m.Field)), self._tpos(name),
        )

    def field(self, children: list[Token]) -> m.Field:
        kind, type_, name = children
        return m.Field(m.FieldKind(str(kind)), str(type_), str(name), self._tpos(kind))

    @v_args(meta=True)
    def list_(self, meta: Any, children: list[Any]) -> m.Field:
        type_, name, *members = children
        return m.Field(m.FieldKind.LIST, str(type_), str(name), self._pos(meta),
                       fields=tuple(self._split(members, m.Field)))

    @v_args(meta=True)
    def embed(self, meta: Any, children: list[Token]) -> m.Field:
        protocol, fsm, name = children
        return m.Field(m.FieldKind.EMBED, str(fsm), str(name), self._pos(meta), protocol=str(protocol))


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return repr(str(token))


def parse_text(text: str, path: str, diagnostics: Diagnostics) -> m.Document:
    """Parse one file's text; syntax errors go to `diagnostics`, the rest is still built."""
    diagnostics.add_source(path, text)
    recovery = _Recovery(text, path, diagnostics)
    try:
        tree = _parser().parse(text, on_error=recovery.on_error)
    except UnexpectedInput as e:  # recovery gave up; what it reported stands
        if not recovery.reported:
            line, column = max(getattr(e, "line", 1), 1), max(getattr(e, "column", 1), 1)
            diagnostics.report(Position(path, line, column), "syntax", str(e).splitlines()[0])
        return m.Document(path, (), (), text)
    includes, protocols = _Build(path).transform(tree)
    return m.Document(path, tuple(includes), tuple(protocols), text)


class _Recovery:
    """Panic-mode error recovery, as yacc does it, on lark's interactive parser.

    At an unexpected token the parser pops its stack to the nearest state that accepts
    the token and goes on from there; a token no state accepts is dropped. Errors are
    reported only until recovery has placed a token again, so that one mistake gives one
    diagnostic. At end of file, open blocks are closed so what was parsed is kept.
    """

    def __init__(self, text: str, path: str, diagnostics: Diagnostics) -> None:
        self.text, self.path, self.diagnostics = text, path, diagnostics
        self.quiet = False
        self.reported = False

    def report(self, line: int, column: int, message: str) -> None:
        if not self.quiet:
            self.diagnostics.report(Position(self.path, line, column), "syntax", message)
            self.reported = True
        self.quiet = True

    def on_error(self, e: UnexpectedInput) -> bool:
        if isinstance(e, UnexpectedCharacters):
            char = self.text[e.pos_in_stream] if e.pos_in_stream is not None else "?"
            self.report(e.line, e.column, f"unexpected character {char!r}")
            return True  # lark skips the character
        if not isinstance(e, UnexpectedToken) or e.interactive_parser is None:
            return False
        parser, token = e.interactive_parser, e.token
        expected = _expected(set(e.accepts or e.expected))
        if token.type == "$END":
            line, column = _eof_position(self.text)
            self.report(line, column, f"unexpected end of file, expected {expected}")
            return self._close_blocks(parser)
        self.report(e.line, e.column, f"unexpected {_describe(token)}, expected {expected}")
        if _pop_until_accepted(parser, token.type):
            parser.feed_token(token)
            self.quiet = False
        return True

    @staticmethod
    def _close_blocks(parser: Any) -> bool:
        for _ in range(1000):
            choices = parser.choices()
            if "$END" in choices:
                return True
            if "RBRACE" not in choices:
                return False
            parser.feed_token(Token("RBRACE", "}"))
        return False


def _pop_until_accepted(parser: Any, token_type: str) -> bool:
    """Pop the LALR stack to the nearest state accepting `token_type`; False if none does."""
    state = parser.parser_state
    table = state.parse_conf.parse_table.states
    stack = state.state_stack
    for depth in range(len(stack) - 1, -1, -1):
        if token_type in table[stack[depth]]:
            del stack[depth + 1 :]
            del state.value_stack[depth:]
            return True
    return False


def _eof_position(text: str) -> tuple[int, int]:
    """Just after the last character, on the last line that has one."""
    lines = text.splitlines() or [""]
    return len(lines), len(lines[-1]) + 1


def read_source(path: Path, diagnostics: Diagnostics) -> str | None:
    """The file's text, or None after reporting why it is not DSL text."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        diagnostics.report(Position(name, 1, 1), "include", f"cannot read {name}: {e.strerror}")
        return None
    nul = data.find(b"\0")
    if nul != -1:
        line, col = _offset_position(data, nul)
        diagnostics.report(Position(name, line, col), "binary", "binary input: NUL byte")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _offset_position(data, e.start)
        diagnostics.report(
            Position(name, line, col), "encoding",
            f"not UTF-8: byte 0x{data[e.start]:02x} cannot be decoded",
        )
        return None


def _offset_position(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, len(data[start:offset].decode("utf-8", "replace")) + 1


def parse_file(path: Path, diagnostics: Diagnostics, _seen: frozenset[Path] = frozenset()) -> m.Document:
    """Parse a file and the DSL files it includes, merging their protocols.

    `include ./fsm.yml2` (B.1) names the language definition of the pEp toolchain, which
    fsmc's grammar implements; it is accepted and adds nothing. Any other include is a DSL
    file, parsed and merged, relative to the including file.
    """
    name = str(path)
    text = read_source(path, diagnostics)
    if text is None:
        return m.Document(name, (), ())
    doc = parse_text(text, name, diagnostics)
    protocols = list(doc.protocols)
    for inc in doc.includes:
        if inc.path.endswith(".yml2"):
            continue
        target = (path.parent / inc.path).resolve()
        if target in _seen or target == path.resolve():
            diagnostics.report(inc.position, "include", f"{inc.path} includes itself")
            continue
        if not target.is_file():
            diagnostics.report(inc.position, "include", f"cannot include {inc.path}: no such file")
            continue
        included = parse_file(target, diagnostics, _seen | {path.resolve()})
        protocols = list(included.protocols) + protocols
    return m.Document(name, doc.includes, tuple(protocols), text)
