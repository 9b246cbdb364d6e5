"""Seeded fuzzing of the front end: damaged, repeated and hostile `.route` text through the
checker, the formatter and every editor feature. Nothing may raise; a file shows at most
MAX_DIAGNOSTICS diagnostics plus one count line; every span lies inside the text.

`make test` runs a fixed number of cases; `pytest -m fuzz` runs many more (same seeds + more).
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from lark import Lark
from lark.exceptions import UnexpectedInput

from routing_dsl.checker import Workspace
from routing_dsl.diagnostics import MAX_DIAGNOSTICS
from routing_dsl.errorcodes import CODES
from routing_dsl.lsp import features as f
from routing_dsl.parser import KEYWORDS, keyword_terminals, parse
from routing_dsl.source import SourceFile

from .conftest import ROOT
from .strategies import programs

SOURCES = [p.read_text() for p in sorted((ROOT / "examples").rglob("*.route"))] + \
    [p.read_text() for p in sorted((ROOT / "stdlib").rglob("*.route"))]
FRAGMENTS = ["{", "}", "[", "]", "==", '"', "@", "\x00", "\u202e", "\U0001f600", "rule",
             "routing", "group", "inventory", "inventroy", "drafty", "assignx", "1e999",
             "9" * 60, "-", ".", ",", "\n", "#", "queue == ", "use ", 'use "../../x"', "\\",
             "/" * 300, "let", "=", "days", "mi", "\t", "\r"]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(7)
        at = rng.randint(0, len(text))
        end = min(len(text), at + rng.randint(0, 60))
        if kind == 0:
            text = text[:at] + text[end:]
        elif kind == 1:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        elif kind == 2:
            text = text[:at] + text[at:end] * rng.randint(2, 50) + text[end:]
        elif kind == 3:
            text = text[:at] + "[" * rng.randint(10, 2000) + text[at:]
        elif kind == 4:
            text = text[:at] + "".join(chr(rng.randint(0, 0x2FF)) for _ in range(30)) + text[at:]
        elif kind == 5:
            text = text[:at] + rng.choice(FRAGMENTS) * rng.randint(50, 3000) + text[at:]
        else:
            text = text[:at]
    return text


def exercise(text: str) -> None:
    result = Workspace().check_text(text, "fuzz.route", ROOT / "examples" / "fuzz.route")
    diagnostics = result.diagnostics
    shown = [d for d in diagnostics if d.code != "RT199"]
    assert len(shown) <= MAX_DIAGNOSTICS and len(diagnostics) - len(shown) <= 1
    for diagnostic in diagnostics:
        assert diagnostic.code in CODES
        assert 0 <= diagnostic.span.start <= diagnostic.span.end <= len(text)
    if not result.parsed.syntax_diagnostics:
        formatted = f.format_document(result)
        reparsed, problems = parse(SourceFile("again.route", formatted))
        assert problems == []
    positions = f.Positions(result.parsed.source)
    f.semantic_tokens(result)
    f.document_symbols(result.parsed.module)
    f.folding_ranges(result.parsed.source, result.parsed.module)
    rng = random.Random(len(text))
    for _ in range(3):
        offset = rng.randint(0, len(text))
        positions.position(offset)
        f.complete(result, text, offset)
        f.hover(result, offset)
        f.definition_at(result, offset)


def _cases(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(rng, rng.choice(SOURCES))


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_front_end(seed):
    for text in _cases(seed, 25):
        exercise(text)


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(1000, 1040))
def test_fuzz_front_end_long(seed):
    for text in _cases(seed, 250):
        exercise(text)


# ---- the parser agrees with the grammar (the specification) --------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _lark() -> Lark:
    return Lark((ROOT / "grammar" / "routing.lark").read_text(), parser="lalr")


def test_parser_keywords_are_the_grammars():
    grammar = {t.name: t.pattern.value for t in _lark().terminals
               if t.pattern.type == "str" and t.pattern.value.isidentifier()}
    assert grammar == keyword_terminals()
    assert len(KEYWORDS) == len(set(KEYWORDS))


def test_parser_and_grammar_agree_on_damaged_examples():
    """On text the grammar accepts, the parser reports no syntax error and vice versa (for
    text without words the grammar's lexer splits differently, such as `drafty`)."""
    lark = _lark()
    known = {word for text in SOURCES for word in _WORD.findall(text)}
    rng = random.Random(99)
    agreed = 0
    for _ in range(1500):
        text = mutate(rng, rng.choice(SOURCES))
        if len(text) > 20_000 or any(ch in text for ch in "\\\u202e") or any(
                ord(ch) < 32 and ch not in "\n\t" or ch == "\x7f" for ch in text):
            continue  # control characters in strings are our rule, not the grammar's
        if any(word.startswith(KEYWORDS) for word in set(_WORD.findall(text)) - known):
            continue  # Lark's lexer splits `assignx` into `assign` `x`; words are words here
        try:
            lark.parse(text)
            accepted = True
        except UnexpectedInput:
            accepted = False
        _, problems = parse(SourceFile("t.route", text))
        assert (problems == []) == accepted, text
        agreed += 1
    assert agreed > 700


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_every_generated_program_is_accepted_by_grammar_and_parser(text):
    _LARK.parse(text)
    _, problems = parse(SourceFile("t.route", text))
    assert problems == []


_LARK = _lark()
