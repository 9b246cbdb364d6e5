"""Parser: source text -> AST (:mod:`routing_dsl.nodes`) plus syntax diagnostics.

A hand-written lexer and recursive-descent parser for the grammar in ``grammar/routing.lark``
(the grammar stays the readable specification; a test holds the two together). Writing it by
hand buys what an editor and a pull request need from a parser:

* **bounded cost**: one pass over the tokens, no backtracking, no recursion deeper than the
  grammar's fixed block nesting plus :data:`MAX_LIST_DEPTH`; at most :data:`MAX_SYNTAX_ERRORS`
  diagnostics are built, the rest are counted;
* **one mistake, one error**: after an error the parser skips to the next statement it knows
  (panic mode); a block left open is closed where its parent's next statement starts and is
  reported once, at its opening brace;
* **words are words**: keywords are whole identifiers, recognised only where the grammar can
  take them, so field names such as ``queue`` stay names in a filter.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from . import nodes as n
from .criteria import REGISTRY
from .diagnostics import MAX_DIAGNOSTICS, Diagnostic, Fix, omitted_diagnostic
from .source import SourceFile, Span
from .suggest import did_you_mean

MAX_LIST_DEPTH = 8
MAX_SYNTAX_ERRORS = MAX_DIAGNOSTICS

KEYWORDS = (
    "use", "let", "declare", "template", "group", "for", "store", "schedule", "paused",
    "routing", "active", "draft", "archived", "filter", "sort", "by", "asc", "desc", "nulls",
    "first", "last", "rule", "extends", "assign", "inventory", "keep_item_groups_together",
    "ignore_facility_order_limit", "only_if_all_items_available", "shipment_threshold",
    "split_cost", "when",
    "unfilled", "next", "move", "to", "queue", "auto_cancel", "after", "clear", "in", "not",
    "is", "null", "within", "mi", "km", "days", "day", "from", "until", "max_facilities",
    "version", "optimize",
)

_UPPER = {word: word.upper() for word in KEYWORDS}
_PUNCTUATION = {
    "==": "EQ", "!=": "NE", "<=": "LE", ">=": "GE", "<": "LT", ">": "GT", "=": "ASSIGN_OP",
    "{": "LBRACE", "}": "RBRACE", "[": "LBRACKET", "]": "RBRACKET", ",": "COMMA", ".": "DOT",
}
_COMPARISONS = {"EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}

_READABLE = {
    "NAME": "a name", "STRING": "a string", "SIGNED_NUMBER": "a number", "$END": "end of file",
    **{terminal: f"`{text}`" for text, terminal in _PUNCTUATION.items()},
}

_TOP = ("use", "let", "declare", "template", "group", "version")
_GROUP = ("schedule", "routing")
_ROUTING = ("filter", "sort", "rule", "optimize")
_RULE = ("assign", "inventory", "sort", "when")
# The rule settings (criteria.settings): those with a value take one after the name.
_FLAGS = tuple(REGISTRY("setting"))
_VALUED = frozenset(name for name, c in REGISTRY("setting").items() if c.value)
# An inventory block's members: its settings, and `not` starting `not rejected within N days`
_INVENTORY = _FLAGS + ("not",)
_ACTIONS = ("next", "move", "auto_cancel", "clear")
_UNITS = ("mi", "km", "days", "day")
_STATUSES = ("active", "draft", "archived")
# Words that, after a field name, continue a condition.
_CONDITION_WORDS = ("in", "not", "is", "within")

_LEX = re.compile(r"""
    (?P<ws>[ \t\r\n\f]+)
  | (?P<comment>\#[^\n]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<open_string>"(?:[^"\\\n]|\\.)*)
  | (?P<punct>==|!=|<=|>=|[<>={}\[\],.])
  | (?P<bad>[\s\S])
""", re.VERBOSE)

_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')
_ESCAPE = re.compile(r"\\(.)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def keyword_terminals() -> dict[str, str]:
    """Terminal name -> keyword text (``AUTO_CANCEL`` -> ``auto_cancel``), as in the grammar."""
    return {word.upper(): word for word in KEYWORDS}


def readable(terminal: str) -> str:
    if terminal in _READABLE:
        return _READABLE[terminal]
    return f"`{terminal.lower()}`" if terminal.lower() in KEYWORDS else terminal.lower()


def describe_expected(expected: set[str]) -> str:
    names = sorted({readable(t) for t in expected})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def scan_comments(text: str) -> tuple[n.Comment, ...]:
    return tuple(
        n.Comment(Span(m.start(), m.end()), m.group())
        for m in _COMMENT_OR_STRING.finditer(text)
        if m.group().startswith("#")
    )


@dataclass(slots=True)
class Token:
    """A lexed token. ``type`` is NAME for every word until the parser consumes it as a
    keyword, when it becomes the keyword's terminal name (``GROUP``), as in the grammar."""

    type: str
    value: str
    start: int
    end: int
    line: int  # 0-based

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)


def tokenize(source: SourceFile, report) -> list[Token]:
    """The tokens of ``source`` ending with ``$END``; bad characters go to ``report``."""
    tokens: list[Token] = []
    text = source.text
    line = 0
    bad_end = -1
    for match in _LEX.finditer(text):
        kind = match.lastgroup
        start, end = match.span()
        if kind == "ws" or kind == "comment":
            line += text.count("\n", start, end)
            continue
        if kind == "name":
            tokens.append(Token("NAME", match.group(), start, end, line))
        elif kind == "number":
            tokens.append(Token("SIGNED_NUMBER", match.group(), start, end, line))
        elif kind == "string":
            tokens.append(Token("STRING", match.group(), start, end, line))
            control = _CONTROL.search(text, start, end)
            if control:
                report("RT102", f"control character `{_printable(control.group())}` in a string",
                       Span(control.start(), control.end()),
                       "strings hold printable text; remove the character")
        elif kind == "punct":
            tokens.append(Token(_PUNCTUATION[match.group()], match.group(), start, end, line))
        elif kind == "open_string":
            report("RT102", "unterminated string", Span(start, start + 1),
                   "close the string with `\"` on the same line")
            tokens.append(Token("STRING", match.group() + '"', start, end, line))
        else:
            if start != bad_end:
                report("RT102", f"unexpected character `{_printable(match.group())}`",
                       Span(start, end), None)
            bad_end = end
    tokens.append(Token("$END", "", len(text), len(text), line))
    return tokens


def _printable(char: str) -> str:
    return char if char.isprintable() else f"\\u{ord(char):04x}"


class _Closed(Exception):
    """Unwinds a statement whose tokens ran out (end of file) or whose block ended."""


@dataclass
class _Block:
    what: str           # "routing `Web`"
    brace: Token        # its opening `{`
    members: tuple[str, ...]


class Parser:
    """One parse of one file. ``parse()`` is the entry point."""

    def __init__(self, source: SourceFile):
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.omitted = 0
        self.bad_offsets: list[int] = []  # where the lexer reported characters it dropped
        self.tokens = tokenize(source, self._report_character)
        self.pos = 0
        self.blocks: list[_Block] = []
        self.unclosed_reported = 0   # blocks reported as never closed, not yet paid back
        self.end_reported = False    # one "end of file" error explains every block left open
        self.expected: set[str] = set()
        # For completion: the consumed tokens and what was expected when the text ran out.
        self.consumed: list[Token] = []
        self.at_end: tuple[list[Token], set[str]] | None = None

    # ---- diagnostics -----------------------------------------------------------------------
    def _report(self, code: str, message: str, span: Span, hint: str | None,
                fixes: tuple[Fix, ...] = ()) -> None:
        if len(self.diagnostics) >= MAX_SYNTAX_ERRORS:
            self.omitted += 1
            return
        self.diagnostics.append(Diagnostic(code, message, self.source, span, hint=hint,
                                           fixes=fixes))

    def _report_character(self, code: str, message: str, span: Span, hint: str | None) -> None:
        self.bad_offsets.append(span.start)
        self._report(code, message, span, hint)

    def _explained(self) -> bool:
        """Whether a character dropped just before the current token explains its error."""
        after = self.consumed[-1].end if self.consumed else 0
        index = bisect.bisect_left(self.bad_offsets, after)
        return index < len(self.bad_offsets) and self.bad_offsets[index] <= self.peek.start

    def _unexpected(self, guesses: tuple[str, ...] = ()) -> None:
        """Report the current token as unexpected, naming what was expected; a word close to
        an expected keyword gets a "did you mean"."""
        token = self.peek
        if self._explained():
            self._note_end()
            return
        if token.type == "$END":
            self._note_end()
            if self.end_reported:
                return
            self.end_reported = True
            end = len(self.source.text.rstrip())
            self._report("RT103", "unexpected end of file", Span(end, end),
                         f"expected {describe_expected(self.expected)}")
            return
        hint = f"expected {describe_expected(self.expected)}"
        fixes: tuple[Fix, ...] = ()
        if token.type == "NAME":
            guesses = guesses + tuple(t.lower() for t in self.expected if t.lower() in KEYWORDS)
            guess = did_you_mean(token.value, guesses)
            if guess and guess != token.value:
                hint = f"did you mean `{guess}`?"
                fixes = (Fix(f"Change to `{guess}`", token.span, guess),)
        self._report("RT101", f"unexpected {_shown(token)}", token.span, hint, fixes)

    def _note_end(self) -> None:
        if self.at_end is None:
            self.at_end = (list(self.consumed), set(self.expected))

    # ---- tokens ----------------------------------------------------------------------------
    @property
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def peek_at(self, ahead: int) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self, as_type: str | None = None) -> Token:
        token = self.tokens[self.pos]
        if as_type is not None:
            token.type = as_type
        if token.type != "$END":
            self.pos += 1
            self.consumed.append(token)
        self.expected = set()
        return token

    def at(self, terminal: str) -> bool:
        self.expected.add(terminal)
        return self.peek.type == terminal

    def at_word(self, *words: str) -> bool:
        """The current token is one of the keywords ``words`` (checked as whole words)."""
        self.expected.update(_UPPER[w] for w in words)
        token = self.peek
        return token.type == "NAME" and token.value in words

    def accept(self, terminal: str) -> Token | None:
        return self.advance() if self.at(terminal) else None

    def accept_word(self, *words: str) -> Token | None:
        if self.at_word(*words):
            return self.advance(self.peek.value.upper())
        return None

    def expect(self, terminal: str) -> Token:
        if self.at(terminal):
            return self.advance()
        self._unexpected()
        raise _Closed

    def expect_word(self, word: str) -> Token:
        if self.at_word(word):
            return self.advance(word.upper())
        self._unexpected((word,))
        raise _Closed

    # ---- recovery --------------------------------------------------------------------------
    def _enclosing_member(self, token: Token) -> bool:
        """Whether ``token`` starts a statement of a block around the innermost one (so the
        innermost block is missing its `}`)."""
        if token.type != "NAME":
            return False
        if token.value in _TOP:
            return True
        for block in self.blocks[:-1]:
            if token.value in block.members:
                return True
        return False

    def _skip_statement(self, members: tuple[str, ...], line: int | None) -> None:
        """Panic mode: drop tokens up to the next statement of this block or a parent, the end
        of the block, or (in condition blocks, where ``line`` is given) the next line. Braces
        are skipped in pairs."""
        while True:
            token = self.peek
            if token.type in ("$END", "RBRACE"):
                return
            if line is not None and token.line != line:
                return
            if token.type == "NAME" and (token.value in members or self._enclosing_member(token)):
                return
            if token.type == "LBRACE":
                self._skip_braces()
                continue
            self.advance()

    def _skip_braces(self) -> None:
        depth = 0
        while self.peek.type != "$END":
            token = self.advance()
            if token.type == "LBRACE":
                depth += 1
            elif token.type == "RBRACE":
                depth -= 1
                if depth == 0:
                    return

    # ---- blocks ----------------------------------------------------------------------------
    def block(self, what: str, members: tuple[str, ...], member, *,
              conditions: bool = False) -> tuple[list, Token | None]:
        """Parse ``{ member* }``. Returns the members and the closing brace (None when the
        block was never closed)."""
        if not self.at("LBRACE"):
            self._unexpected()
            if self.peek_at(1).type != "LBRACE":
                raise _Closed
            self.advance()  # one stray word before the `{`: drop it and parse the block
        brace = self.advance()
        self.blocks.append(_Block(what, brace, members))
        items: list = []
        try:
            while True:
                self.expected.update(_UPPER[word] for word in members)
                if conditions:
                    self.expected.add("NAME")
                if self.at("RBRACE"):
                    return items, self.advance()
                token = self.peek
                if token.type == "$END":
                    self._never_closed(brace, what, at_end=True)
                    return items, None
                if token.type == "NAME" and token.value not in members and \
                        self._enclosing_member(token) and not (
                            conditions and self._continues_condition()):
                    self._never_closed(brace, what, at_end=False)
                    return items, None
                start = self.pos
                try:
                    node = member()
                    if node is not None:
                        items.append(node)
                except _Closed:
                    pass
                if self.pos == start and self.peek.type not in ("RBRACE", "$END"):
                    self.advance()  # never loop on a token that starts nothing
        finally:
            self.blocks.pop()

    def _starts_statement(self, token: Token) -> bool:
        return token.value in _TOP or any(token.value in b.members for b in self.blocks)

    def _continues_condition(self) -> bool:
        after = self.peek_at(1)
        return after.type in _COMPARISONS or (after.type == "NAME"
                                              and after.value in _CONDITION_WORDS)

    def _never_closed(self, brace: Token, what: str, *, at_end: bool) -> None:
        self._note_end()
        if at_end and (self.unclosed_reported or self.end_reported):
            return  # the brace already reported, or the innermost block at the end explains it
        self.end_reported = self.end_reported or at_end
        line = self.source.position(brace.start).line
        if at_end:
            hint = f"add `}}` to close the {what} opened on line {line}"
        else:
            where = self.source.position(self.peek.start).line
            hint = (f"add `}}` before line {where}, where `{_clip(self.peek.value)}` starts a "
                    f"statement outside the {what}")
            self.unclosed_reported += 1
        self._report("RT103", f"`{{` of {what} is never closed", brace.span, hint)

    def statement(self, members: tuple[str, ...], parsers: dict, *,
                  conditions: bool = False):
        """One member of a block: dispatch on the leading keyword, recover on errors."""
        token = self.peek
        line = token.line if conditions else None
        for word in members:
            self.expected.add(_UPPER[word])
        if token.type == "NAME" and token.value in parsers:
            try:
                return parsers[token.value]()
            except _Closed:
                self._skip_statement(members, line)
                return None
        if conditions and token.type == "NAME":
            try:
                return self.condition()
            except _Closed:
                self._skip_statement(members, line)
                return None
        if conditions:
            self.expected.add("NAME")
        self._unexpected(members)
        if token.type != "$END":
            self.advance()
            self._skip_statement(members, line)
        return None

    # ---- module ----------------------------------------------------------------------------
    def module(self) -> n.Module:
        parsers = {"use": self.use_decl, "let": self.let_decl, "declare": self.declare_decl,
                   "template": self.template_decl, "group": self.group_decl,
                   "version": self.version_decl}
        items = []
        while True:
            for word in _TOP:
                self.expected.add(_UPPER[word])
            token = self.peek
            if token.type == "$END":
                self._note_end()
                break
            if token.type == "RBRACE":
                if self.unclosed_reported:
                    self.unclosed_reported -= 1  # the brace of a block reported as unclosed
                else:
                    self._report("RT101", "unexpected `}`", token.span,
                                 "no block is open here; remove it")
                self.advance()
                continue
            node = self.statement(_TOP, parsers)
            if node is not None:
                items.append(node)
        return n.Module(span=Span(0, len(self.source.text)), items=tuple(items))

    def version_decl(self) -> n.Version:
        start = self.advance("VERSION")
        label = self.string()
        return n.Version(span=Span(start.start, label.span.end), label=label)

    def use_decl(self) -> n.Use:
        start = self.advance("USE")
        if self.at("STRING"):
            target = self.advance()
            return n.Use(span=Span(start.start, target.end), target=_unquote(target.value),
                         is_path=True, target_span=target.span)
        first = self.expect("NAME")
        last = first
        parts = [first.value]
        while self.at("DOT"):
            self.advance()
            last = self.expect("NAME")
            parts.append(last.value)
        return n.Use(span=Span(start.start, last.end), target=".".join(parts), is_path=False,
                     target_span=Span(first.start, last.end))

    def let_decl(self) -> n.Let:
        start = self.advance("LET")
        name = self.expect("NAME")
        value = self.value(after=self.expect("ASSIGN_OP"))
        return n.Let(span=Span(start.start, value.span.end or name.end), name=_ident(name),
                     value=value)

    def declare_decl(self) -> n.Declare:
        start = self.advance("DECLARE")
        kind = self.expect("NAME")
        entries = [self.declared()]
        while self.at("COMMA"):
            self.advance()
            entries.append(self.declared())
        return n.Declare(span=Span(start.start, entries[-1].span.end), kind=_ident(kind),
                         entries=tuple(entries))

    def declared(self) -> n.Declared:
        name = self.expect("NAME")
        doc = self.accept("STRING")
        return n.Declared(span=Span(name.start, (doc or name).end), name=_ident(name),
                          doc=_unquote(doc.value) if doc else None)

    def template_decl(self) -> n.Template:
        start = self.advance("TEMPLATE")
        name = self.expect("NAME")
        body, end = self.rule_body(f"template `{_clip(name.value)}`")
        return n.Template(span=Span(start.start, end), name=_ident(name), body=body)

    # ---- groups ----------------------------------------------------------------------------
    def group_decl(self) -> n.Group:
        start = self.advance("GROUP")
        name = self.string()
        self.expect_word("for")
        self.expect_word("store")
        store = self.value(ids_only=True)
        parsers = {"schedule": self.schedule, "routing": self.routing}
        members, close = self.block(f"group `{_clip(name.value)}`", _GROUP,
                                    lambda: self.statement(_GROUP, parsers))
        return n.Group(span=Span(start.start, self._end(close)), name=name, store=store,
                       members=tuple(members))

    def schedule(self) -> n.Schedule:
        start = self.advance("SCHEDULE")
        cron = self.string()
        zone = None
        end = cron.span.end
        if self.accept_word("in"):
            zone = self.string()
            end = zone.span.end
        paused = self.accept_word("paused")
        if paused:
            end = paused.end
        return n.Schedule(span=Span(start.start, end), cron=cron, timezone=zone,
                          paused=paused is not None)

    def routing(self) -> n.Routing:
        start = self.advance("ROUTING")
        name = self.string()
        status, window = self.status()
        parsers = {"filter": self.filter_block, "sort": self.sort_clause, "rule": self.rule,
                   "optimize": self.optimize_block}
        members, close = self.block(f"routing `{_clip(name.value)}`", _ROUTING,
                                    lambda: self.statement(_ROUTING, parsers))
        return n.Routing(span=Span(start.start, self._end(close)), name=name, status=status,
                         members=tuple(members), window=window)

    def status(self) -> tuple[n.Ident | None, n.Window | None]:
        """A status, and after `active` an optional window (`from "..."`, `until "..."`,
        or both in that order)."""
        token = self.accept_word(*_STATUSES)
        if token is None or token.value != "active":
            return (_ident(token) if token else None), None
        start = end = None
        if self.accept_word("from"):
            start = self.string()
        if self.accept_word("until"):
            end = self.string()
        if start is None and end is None:
            return _ident(token), None
        # the window spans from its first keyword (the token after `active`) to its last string
        first = self.consumed[len(self.consumed) - (4 if start and end else 2)]
        return _ident(token), n.Window(span=Span(first.start, (end or start).span.end),
                                       start=start, end=end)

    def filter_block(self) -> n.Filter:
        start = self.advance("FILTER")
        members, close = self.block("filter", (), lambda: self.statement((), {}, conditions=True),
                                    conditions=True)
        return n.Filter(span=Span(start.start, self._end(close)), conditions=tuple(members))

    def optimize_block(self) -> n.Optimize:
        start = self.advance("OPTIMIZE")
        members, close = self.block("optimize block", (), self.optimize_setting,
                                    conditions=True)
        return n.Optimize(span=Span(start.start, self._end(close)), settings=tuple(members))

    def optimize_setting(self) -> n.OptimizeSetting | None:
        """``name value`` on one line; the names are checked against the settings table by
        the checker, so a misspelt one gets a "did you mean" there."""
        self.expected.add("NAME")
        if not self.at("NAME"):
            self._unexpected()
            if self.peek.type != "$END":
                self.advance()
            self._skip_statement((), self.consumed[-1].line if self.consumed else None)
            return None
        name = self.advance()
        token = self.peek
        if token.type in ("RBRACE", "$END") or token.line != name.line:
            from .optimize.settings import SETTINGS
            example = SETTINGS[name.value].example if name.value in SETTINGS else "mode report"
            self._report("RT101", f"expected a value after `{_clip(name.value)}`", name.span,
                         f"write the value on the same line, for example `{example}`")
            return None
        try:
            value = self.value()
        except _Closed:
            self._skip_statement((), name.line)
            return None
        return n.OptimizeSetting(span=Span(name.start, value.span.end), name=_ident(name),
                                 value=value)

    def sort_clause(self) -> n.Sort:
        start = self.advance("SORT")
        self.expect_word("by")
        keys = [self.sort_key()]
        while self.at("COMMA"):
            self.advance()
            keys.append(self.sort_key())
        return n.Sort(span=Span(start.start, keys[-1].span.end), keys=tuple(keys))

    def sort_key(self) -> n.SortKey:
        field = self.expect("NAME")
        end = field.end
        direction = self.accept_word("asc", "desc")
        if direction:
            end = direction.end
        nulls = None
        if self.accept_word("nulls"):
            which = self.accept_word("first", "last")
            if which is None:
                self._unexpected()
                raise _Closed
            nulls, end = which.value, which.end
        return n.SortKey(span=Span(field.start, end), field=_ident(field),
                         descending=direction is not None and direction.value == "desc",
                         nulls=nulls)

    # ---- rules -----------------------------------------------------------------------------
    def rule(self) -> n.Rule:
        start = self.advance("RULE")
        name = self.string()
        status, window = self.status()
        end = (window or status or name).span.end
        extends = None
        if self.accept_word("extends"):
            token = self.expect("NAME")
            extends, end = _ident(token), token.end
        body = None
        if self.at("LBRACE"):
            body, end = self.rule_body(f"rule `{_clip(name.value)}`")
        return n.Rule(span=Span(start.start, end), name=name, status=status, extends=extends,
                      body=body, window=window)

    def rule_body(self, what: str) -> tuple[tuple, int]:
        parsers = {"assign": self.assign, "inventory": self.inventory_block,
                   "sort": self.sort_clause, "when": self.unfilled_block}
        members, close = self.block(what, _RULE, lambda: self.statement(_RULE, parsers))
        return tuple(members), self._end(close)

    def assign(self) -> n.Assign:
        start = self.advance("ASSIGN")
        mode = self.expect("NAME")
        return n.Assign(span=Span(start.start, mode.end), mode=_ident(mode))

    def inventory_block(self) -> n.Inventory:
        start = self.advance("INVENTORY")
        parsers = {flag: self.flag for flag in _FLAGS}
        parsers["not"] = self.negated_condition
        members, close = self.block(
            "inventory block", _INVENTORY,
            lambda: self.statement(_INVENTORY, parsers, conditions=True), conditions=True)
        return n.Inventory(span=Span(start.start, self._end(close)), members=tuple(members))

    def flag(self) -> n.Flag:
        token = self.advance(self.peek.value.upper())
        if token.value in _VALUED:
            value = self.value()
            return n.Flag(span=Span(token.start, value.span.end), name=token.value, value=value)
        return n.Flag(span=token.span, name=token.value)

    def unfilled_block(self) -> n.Unfilled:
        start = self.advance("WHEN")
        self.expect_word("unfilled")
        parsers = {"next": self.next_rule, "move": self.move_to_queue,
                   "auto_cancel": self.auto_cancel, "clear": self.clear_auto_cancel}
        members, close = self.block("`when unfilled` block", _ACTIONS,
                                    lambda: self.statement(_ACTIONS, parsers))
        return n.Unfilled(span=Span(start.start, self._end(close)), actions=tuple(members))

    def next_rule(self) -> n.NextRule:
        start = self.advance("NEXT")
        end = self.expect_word("rule")
        return n.NextRule(span=Span(start.start, end.end))

    def move_to_queue(self) -> n.MoveToQueue:
        start = self.advance("MOVE")
        self.expect_word("to")
        end = self.expect_word("queue")
        queue = None
        token = self.peek
        self.expected.update(("NAME", "STRING", "SIGNED_NUMBER", "LBRACKET"))
        if token.type in ("STRING", "SIGNED_NUMBER", "LBRACKET") or (
                token.type == "NAME" and token.value not in _ACTIONS):
            queue = self.value()
        return n.MoveToQueue(span=Span(start.start, queue.span.end if queue else end.end),
                             queue=queue)

    def auto_cancel(self) -> n.AutoCancel:
        start = self.advance("AUTO_CANCEL")
        self.expect_word("after")
        days = self.value()
        return n.AutoCancel(span=Span(start.start, days.span.end), days=days)

    def clear_auto_cancel(self) -> n.ClearAutoCancel:
        start = self.advance("CLEAR")
        end = self.expect_word("auto_cancel")
        return n.ClearAutoCancel(span=Span(start.start, end.end))

    # ---- conditions and values -------------------------------------------------------------
    def negated_condition(self) -> n.Condition:
        """`not FIELD within VALUE` (`not rejected within 7 days`)."""
        start = self.advance("NOT")
        field = self.expect("NAME")
        self.expect_word("within")
        value = self.value(after=self.consumed[-1])
        return n.Condition(span=Span(start.start, value.span.end), field=_ident(field),
                           op="not within", value=value)

    def condition(self) -> n.Condition:
        field = self.advance()
        ident = _ident(field)
        token = self.peek
        for terminal in _COMPARISONS:
            self.expected.add(terminal)
        if token.type in _COMPARISONS:
            op = _COMPARISONS[self.advance().type]
            value = self.value(after=token)
            return n.Condition(span=Span(field.start, value.span.end), field=ident, op=op,
                               value=value)
        if self.accept_word("in"):
            value = self.value(after=self.consumed[-1])
            return n.Condition(span=Span(field.start, value.span.end), field=ident, op="in",
                               value=value)
        if self.accept_word("not"):
            self.expect_word("in")
            value = self.value(after=self.consumed[-1])
            return n.Condition(span=Span(field.start, value.span.end), field=ident,
                               op="not in", value=value)
        if self.accept_word("is"):
            negated = self.accept_word("not")
            end = self.expect_word("null")
            return n.Condition(span=Span(field.start, end.end), field=ident,
                               op="is not null" if negated else "is null", value=None)
        if self.accept_word("within"):
            value = self.value(after=self.consumed[-1])
            return n.Condition(span=Span(field.start, value.span.end), field=ident, op="<=",
                               value=value, written_within=True)
        if token.type == "$END":
            self._unexpected()
            raise _Closed
        shown = _shown(token)
        guess = did_you_mean(field.value, _FLAGS) if token.type in (
            "NAME", "RBRACE", "SIGNED_NUMBER") else None
        hint = (f"did you mean the flag `{guess}`?" if guess else
                "conditions read `field <op> value`, with op one of == != < <= > >= in, "
                "not in, is null, is not null")
        self._report("RT101", f"expected an operator after `{_clip(field.value)}`, found {shown}",
                     token.span, hint)
        raise _Closed

    def string(self) -> n.StringLit:
        token = self.peek
        if self.at("STRING"):
            self.advance()
            return n.StringLit(span=token.span, value=_unquote(token.value))
        self._unexpected()
        raise _Closed

    def value(self, *, after: Token | None = None, ids_only: bool = False,
              depth: int = 0) -> n.Value:
        """A name, string, number (with unit) or list. ``after`` is the operator before it: a
        name on a later line that is itself followed by an operator starts the next condition,
        so the value here is missing."""
        token = self.peek
        self.expected.update(("NAME", "STRING"))
        if not ids_only:
            self.expected.update(("SIGNED_NUMBER", "LBRACKET"))
        if token.type == "NAME":
            if after is not None and token.line != after.line and (
                    self._continues_condition() or self._starts_statement(token)):
                self._missing_value(after)
                return n.MissingValue(span=Span(after.end, after.end))
            self.advance()
            return n.NameRef(span=token.span, name=token.value)
        if token.type == "STRING":
            self.advance()
            return n.StringLit(span=token.span, value=_unquote(token.value))
        if ids_only:
            self._unexpected()
            raise _Closed
        if token.type == "SIGNED_NUMBER":
            self.advance()
            unit = self.accept_word(*_UNITS)
            return n.NumberLit(span=Span(token.start, (unit or token).end), text=token.value,
                               unit=unit.value if unit else None)
        if token.type == "LBRACKET":
            return self.list_value(depth)
        self._unexpected()
        if after is not None and token.type in ("RBRACE", "$END"):
            return n.MissingValue(span=Span(after.end, after.end))
        raise _Closed

    def _missing_value(self, after: Token) -> None:
        if self._explained():
            return
        self._report("RT101", f"expected a value after `{_clip(after.value)}`",
                     Span(after.start, after.end),
                     "write the value on the same line, for example `queue == _NA_`")

    def list_value(self, depth: int) -> n.ListLit:
        start = self.advance()
        if depth >= MAX_LIST_DEPTH:
            self._report("RT101", "lists nested too deeply", start.span,
                         "a list holds names, strings or numbers")
            self._skip_brackets()
            raise _Closed
        items = []
        while True:
            if self.at("RBRACKET"):
                end = self.advance()
                return n.ListLit(span=Span(start.start, end.end), items=tuple(items))
            items.append(self.value(depth=depth + 1))
            if not self.accept("COMMA"):
                end = self.expect("RBRACKET")
                return n.ListLit(span=Span(start.start, end.end), items=tuple(items))

    def _skip_brackets(self) -> None:
        depth = 1
        tokens = self.tokens
        pos = self.pos
        while depth:
            kind = tokens[pos].type
            if kind in ("$END", "RBRACE"):
                break
            depth += 1 if kind == "LBRACKET" else -1 if kind == "RBRACKET" else 0
            pos += 1
        if pos > self.pos:
            self.consumed.append(tokens[pos - 1])
        self.pos = pos
        self.expected = set()

    def _end(self, close: Token | None) -> int:
        if close is not None:
            return close.end
        return self.consumed[-1].end if self.consumed else 0


def _clip(text: str, width: int = 40) -> str:
    """Quote at most ``width`` characters of a token in a message: a 40 KB name stays one line."""
    return text if len(text) <= width else text[: width - 3] + "..."


def _shown(token: Token) -> str:
    if token.type == "STRING":
        return f"string {_clip(token.value)}"
    return f"`{_clip(token.value)}`"


def _unquote(raw: str) -> str:
    return _ESCAPE.sub(r"\1", raw[1:-1])


def _ident(token: Token) -> n.Ident:
    return n.Ident(span=token.span, name=token.value)


def parse(source: SourceFile) -> tuple[n.Module, list[Diagnostic]]:
    """Parse one file. Always returns a module; syntax problems come back as diagnostics."""
    parser = Parser(source)
    module = parser.module()
    diagnostics = sorted(parser.diagnostics, key=Diagnostic.sort_key)
    if parser.omitted:
        diagnostics.append(omitted_diagnostic(source, parser.omitted))
    module = n.Module(span=module.span, items=module.items, comments=scan_comments(source.text))
    return module, diagnostics


def parse_prefix(text: str) -> tuple[list[Token], set[str]]:
    """For completion: the tokens of ``text`` as the parser consumed them (keywords typed as
    keywords) and the terminals it would accept where ``text`` ends."""
    parser = Parser(SourceFile("<prefix>", text))
    parser.module()
    if parser.at_end is None:
        return parser.consumed, set()
    return parser.at_end
