"""Parser: source text -> AST (:mod:`routing_dsl.nodes`) plus syntax diagnostics.

Lark parses with LALR(1); syntax errors are repaired on the fly (a missing value, name or
closing brace is inserted; an unexpected token is dropped) so that one run reports every
syntax error and the language server always gets a tree to work with.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import nodes as n
from ._resources import grammar_path
from .diagnostics import Diagnostic
from .source import SourceFile, Span
from .suggest import did_you_mean

MISSING = "\x00missing"

# Tokens the recovery may insert, in order of preference, with their placeholder text.
_INSERTABLE = {
    "NAME": MISSING,
    "STRING": f'"{MISSING}"',
    "SIGNED_NUMBER": MISSING,
    "RBRACKET": "]",
    "RBRACE": "}",
    "COMMA": ",",
    "EQ": "==",
}
_LOOKAHEAD = 6

_READABLE = {
    "NAME": "a name",
    "STRING": "a string",
    "SIGNED_NUMBER": "a number",
    "$END": "end of file",
    "EQ": "`==`", "NE": "`!=`", "LT": "`<`", "LE": "`<=`", "GT": "`>`", "GE": "`>=`",
    "ASSIGN_OP": "`=`", "LBRACE": "`{`", "RBRACE": "`}`", "LBRACKET": "`[`",
    "RBRACKET": "`]`", "COMMA": "`,`", "DOT": "`.`",
}

_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


@lru_cache(maxsize=1)
def keyword_terminals() -> dict[str, str]:
    """Terminal name -> keyword text, for every keyword of the language."""
    result = {}
    for terminal in lark_parser().terminals:
        pattern = terminal.pattern
        if pattern.type == "str" and pattern.value.isidentifier():
            result[terminal.name] = pattern.value
    return result


def readable(terminal: str) -> str:
    if terminal in _READABLE:
        return _READABLE[terminal]
    keyword = keyword_terminals().get(terminal)
    return f"`{keyword}`" if keyword else terminal.lower()


def describe_expected(expected: set[str]) -> str:
    names = sorted({readable(t) for t in expected if not t.startswith("__")})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def scan_comments(text: str) -> tuple[n.Comment, ...]:
    return tuple(
        n.Comment(Span(m.start(), m.end()), m.group())
        for m in _COMMENT_OR_STRING.finditer(text)
        if m.group().startswith("#")
    )


class _Recovery:
    """The ``on_error`` callback: records a diagnostic, then repairs and resumes."""

    def __init__(self, source: SourceFile):
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self._last_char_error = -2

    def __call__(self, error: UnexpectedInput) -> bool:
        if isinstance(error, UnexpectedCharacters):
            return self._bad_character(error)
        if isinstance(error, UnexpectedToken):
            if error.token.type == "$END":
                return self._unexpected_end(error)
            return self._unexpected_token(error)
        return False

    def _bad_character(self, error: UnexpectedCharacters) -> bool:
        pos = error.pos_in_stream
        if pos != self._last_char_error + 1:
            char = self.source.text[pos : pos + 1]
            if char == '"':
                message, hint = "unterminated string", "close the string with `\"` on the same line"
            else:
                message, hint = f"unexpected character `{char}`", None
            self.diagnostics.append(
                Diagnostic("RT102", message, self.source, Span(pos, pos + 1), hint=hint))
        self._last_char_error = pos
        return True

    def _unexpected_end(self, error: UnexpectedToken) -> bool:
        end = len(self.source.text.rstrip())
        parser = error.interactive_parser
        expected = parser.accepts()
        self.diagnostics.append(Diagnostic(
            "RT103", "unexpected end of file", self.source, Span(end, end),
            hint=f"expected {describe_expected(expected)}"))
        for _ in range(200):
            accepts = parser.accepts()
            if "$END" in accepts:
                return True
            for terminal in ("RBRACE", "RBRACKET", "NAME", "STRING"):
                if terminal in accepts:
                    parser.feed_token(self._token(terminal, end))
                    break
            else:
                return False
        return False

    def _unexpected_token(self, error: UnexpectedToken) -> bool:
        token = error.token
        parser = error.interactive_parser
        accepts = parser.accepts()
        self.diagnostics.append(self._token_diagnostic(token, accepts))
        best = self._best_repair(parser, token, accepts)
        for terminal in best:
            parser.feed_token(self._token(terminal, token.start_pos))
        if best:
            parser.feed_token(token)
        return True  # with no insertion, the offending token is dropped

    def _best_repair(self, parser, token: Token, accepts: set[str]) -> tuple[str, ...]:
        """The insertion (of at most two tokens) before ``token``, or the deletion of ``token``
        (the empty tuple), after which the parser gets furthest into the rest of the file."""
        candidates: list[tuple[str, ...]] = [(t,) for t in _INSERTABLE if t in accepts]
        for first in list(candidates):
            trial = parser.copy()
            trial.feed_token(self._token(first[0], token.start_pos))
            candidates += [first + (t,) for t in _INSERTABLE if t in trial.accepts()]
        scored = [(self._lookahead(parser, (), None), 0, ())]
        for rank, candidate in enumerate(candidates, start=1):
            scored.append((self._lookahead(parser, candidate, token) - len(candidate), -rank,
                           candidate))
        return max(scored)[2]

    def _lookahead(self, parser, inserted: tuple[str, ...], token: Token | None) -> int:
        # Trials copy the value stack deeply: Lark's tree builder extends child lists in place.
        trial = parser.copy()
        fed = 0
        try:
            for terminal in inserted:
                trial.feed_token(self._token(terminal, 0))
            if token is not None:
                trial.feed_token(token)
                fed += 1
            for _ in trial.iter_parse():
                fed += 1
                if fed >= _LOOKAHEAD:
                    return fed
            trial.feed_token(Token("$END", ""))
            return _LOOKAHEAD
        except UnexpectedInput:
            return fed

    def _token_diagnostic(self, token: Token, accepts: set[str]) -> Diagnostic:
        span = Span(token.start_pos, token.end_pos)
        shown = f"`{token.value}`" if token.type != "STRING" else f"string {token.value}"
        hint = f"expected {describe_expected(accepts)}"
        previous = self._previous_word(token.start_pos)
        if (previous and accepts & {"EQ", "IN", "IS"}
                and token.type in ("NAME", "RBRACE", "SIGNED_NUMBER")):
            flags = ["keep_item_groups_together", "ignore_facility_order_limit",
                     "only_if_all_items_available", "shipment_threshold"]
            guess = did_you_mean(previous, flags)
            message = f"expected an operator after `{previous}`, found {shown}"
            hint = (f"did you mean the flag `{guess}`?" if guess else
                    "conditions read `field <op> value`, with op one of == != < <= > >= in, "
                    "not in, is null, is not null")
            return Diagnostic("RT101", message, self.source, span, hint=hint)
        return Diagnostic("RT101", f"unexpected {shown}", self.source, span, hint=hint)

    def _previous_word(self, offset: int) -> str:
        match = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", self.source.text[:offset])
        return match.group(1) if match else ""

    def _token(self, terminal: str, offset: int) -> Token:
        position = self.source.position(offset)
        return Token(terminal, _INSERTABLE.get(terminal, ""), start_pos=offset, end_pos=offset,
                     line=position.line, column=position.column,
                     end_line=position.line, end_column=position.column)


def parse(source: SourceFile) -> tuple[n.Module, list[Diagnostic]]:
    """Parse one file. Always returns a module; syntax problems come back as diagnostics."""
    recovery = _Recovery(source)
    comments = scan_comments(source.text)
    try:
        tree = lark_parser().parse(source.text, on_error=recovery)
        module = _Lower(source).transform(tree)
    except UnexpectedInput as error:  # recovery gave up: report and return what we have
        offset = getattr(error, "pos_in_stream", None) or len(source.text)
        recovery.diagnostics.append(Diagnostic(
            "RT101", "cannot recover from this syntax error", source, Span(offset, offset)))
        module = n.Module(span=Span(0, len(source.text)), items=())
    module = n.Module(span=Span(0, len(source.text)), items=module.items, comments=comments)
    return module, recovery.diagnostics


def _span(meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(0, 0)
    return Span(meta.start_pos, meta.end_pos)


def _tspan(token: Token) -> Span:
    return Span(token.start_pos, token.end_pos)


def _unquote(token: Token) -> str:
    raw = token.value[1:-1]
    return re.sub(r"\\(.)", r"\1", raw)


def _ident(token: Token) -> n.Ident:
    return n.Ident(span=_tspan(token), name=token.value)


@v_args(meta=True)
class _Lower(Transformer):
    """Lark tree -> AST nodes. Tokens arrive as-is; every rule returns a node or a plain value."""

    def __init__(self, source: SourceFile):
        super().__init__(visit_tokens=False)
        self.source = source

    def start(self, meta, items):
        return n.Module(span=Span(0, len(self.source.text)), items=tuple(items))

    # modules and declarations
    def use_decl(self, meta, children):
        target = children[1]
        if isinstance(target, Token):
            return n.Use(span=_span(meta), target=_unquote(target), is_path=True,
                         target_span=_tspan(target))
        text, span = target
        return n.Use(span=_span(meta), target=text, is_path=False, target_span=span)

    def dotted_name(self, meta, children):
        names = [c.value for c in children if c.type == "NAME"]
        return ".".join(names), _span(meta)

    def let_decl(self, meta, children):
        return n.Let(span=_span(meta), name=_ident(children[1]), value=children[3])

    def declare_decl(self, meta, children):
        entries = tuple(c for c in children[2:] if isinstance(c, n.Declared))
        return n.Declare(span=_span(meta), kind=_ident(children[1]), entries=entries)

    def declared(self, meta, children):
        name, doc = children
        return n.Declared(span=_span(meta), name=_ident(name),
                          doc=_unquote(doc) if doc is not None else None)

    def template_decl(self, meta, children):
        return n.Template(span=_span(meta), name=_ident(children[1]), body=children[2])

    # groups
    def group_decl(self, meta, children):
        members = tuple(c for c in children[5:] if isinstance(c, n.Node))
        return n.Group(span=_span(meta), name=self._string(children[1]), store=children[4],
                       members=members)

    def schedule(self, meta, children):
        _, cron, _, zone, paused = children
        return n.Schedule(span=_span(meta), cron=self._string(cron),
                          timezone=self._string(zone) if zone is not None else None,
                          paused=paused is not None)

    def routing(self, meta, children):
        members = tuple(c for c in children[3:] if isinstance(c, n.Node))
        return n.Routing(span=_span(meta), name=self._string(children[1]), status=children[2],
                         members=members)

    def status(self, meta, children):
        return _ident(children[0])

    def filter_block(self, meta, children):
        return n.Filter(span=_span(meta),
                        conditions=tuple(c for c in children if isinstance(c, n.Condition)))

    def sort_clause(self, meta, children):
        return n.Sort(span=_span(meta),
                      keys=tuple(c for c in children if isinstance(c, n.SortKey)))

    def sort_key(self, meta, children):
        field, direction, nulls = children
        return n.SortKey(span=_span(meta), field=_ident(field),
                         descending=direction == "desc", nulls=nulls)

    def direction(self, meta, children):
        return children[0].value

    def nulls(self, meta, children):
        return children[1].value

    # rules
    def rule(self, meta, children):
        _, name, status, _, extends, body = children
        return n.Rule(span=_span(meta), name=self._string(name), status=status,
                      extends=_ident(extends) if extends is not None else None, body=body)

    def rule_body(self, meta, children):
        return tuple(c for c in children if isinstance(c, n.Node))

    def assign(self, meta, children):
        return n.Assign(span=_span(meta), mode=_ident(children[1]))

    def inventory_block(self, meta, children):
        return n.Inventory(span=_span(meta),
                           members=tuple(c for c in children if isinstance(c, n.Node)))

    def flag(self, meta, children):
        value = children[1] if len(children) > 1 else None
        return n.Flag(span=_span(meta), name=children[0].value, value=value)

    def unfilled_block(self, meta, children):
        return n.Unfilled(span=_span(meta),
                          actions=tuple(c for c in children if isinstance(c, n.Node)))

    def next_rule(self, meta, children):
        return n.NextRule(span=_span(meta))

    def move_to_queue(self, meta, children):
        return n.MoveToQueue(span=_span(meta), queue=children[3])

    def auto_cancel(self, meta, children):
        return n.AutoCancel(span=_span(meta), days=children[2])

    def clear_auto_cancel(self, meta, children):
        return n.ClearAutoCancel(span=_span(meta))

    # conditions
    def compare(self, meta, children):
        field, op, value = children
        return n.Condition(span=_span(meta), field=_ident(field), op=op, value=value)

    def comparison(self, meta, children):
        return children[0].value

    def is_in(self, meta, children):
        return n.Condition(span=_span(meta), field=_ident(children[0]), op="in", value=children[2])

    def not_in(self, meta, children):
        return n.Condition(span=_span(meta), field=_ident(children[0]), op="not in",
                           value=children[3])

    def is_null(self, meta, children):
        return n.Condition(span=_span(meta), field=_ident(children[0]), op="is null", value=None)

    def is_not_null(self, meta, children):
        return n.Condition(span=_span(meta), field=_ident(children[0]), op="is not null",
                           value=None)

    def within(self, meta, children):
        return n.Condition(span=_span(meta), field=_ident(children[0]), op="<=",
                           value=children[2], written_within=True)

    # values
    def name_ref(self, meta, children):
        token = children[0]
        if token.value == MISSING:
            return n.MissingValue(span=_tspan(token))
        return n.NameRef(span=_tspan(token), name=token.value)

    def string(self, meta, children):
        token = children[0]
        if MISSING in token.value:
            return n.MissingValue(span=_tspan(token))
        return n.StringLit(span=_tspan(token), value=_unquote(token))

    def number(self, meta, children):
        token, unit = children
        if token.value == MISSING:
            return n.MissingValue(span=_tspan(token))
        return n.NumberLit(span=_span(meta), text=token.value, unit=unit)

    def unit(self, meta, children):
        return children[0].value

    def list(self, meta, children):
        items = tuple(c for c in children if isinstance(c, n.Node))
        return n.ListLit(span=_span(meta), items=items)

    def _string(self, token: Token) -> n.StringLit:
        value = "" if MISSING in token.value else _unquote(token)
        return n.StringLit(span=_tspan(token), value=value)
