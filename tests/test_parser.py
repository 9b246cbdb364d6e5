"""Parsing: the AST for every construct (golden dumps), spans, and recovery from errors."""

from __future__ import annotations

import pprint

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_dsl import nodes as n
from routing_dsl.parser import parse
from routing_dsl.source import SourceFile

from .conftest import GOLDEN, ROOT

PARSE = GOLDEN / "parse"
EXAMPLES = sorted((ROOT / "examples").rglob("*.route"))


def parsed(text: str):
    return parse(SourceFile("t.route", text))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_parse_to_golden_ast(path, golden):
    module, diagnostics = parsed(path.read_text(encoding="utf-8"))
    assert diagnostics == []
    golden(PARSE / f"{path.stem}.ast", pprint.pformat(n.dump(module), width=100) + "\n")


def test_spans_point_at_the_source():
    text = 'group "G" for store S {\n  routing "R" {\n    filter { queue == _NA_ }\n  }\n}\n'
    module, _ = parsed(text)
    condition = module.items[0].members[0].members[0].conditions[0]
    assert text[condition.span.start:condition.span.end] == "queue == _NA_"
    assert text[condition.field.span.start:condition.field.span.end] == "queue"
    assert text[condition.value.span.start:condition.value.span.end] == "_NA_"


def test_keywords_are_contextual():
    # `queue` is a keyword in `move to queue` but a field name in a filter.
    module, diagnostics = parsed(
        'group "G" for store S { routing "R" { filter { queue == _NA_ } '
        'rule "x" { assign single when unfilled { move to queue Q } } } }')
    assert diagnostics == []
    assert module.items[0].members[0].members[0].conditions[0].field.name == "queue"


def test_every_syntax_error_is_reported_in_one_run():
    text = ('group "G" for store S {\n  routing "R" {\n    filter { queue == }\n'
            '    rule "a" { assign single inventory { distance <= 5 mi @ } }\n'
            '    rule "b" { assign partial sort by distance, }\n  }\n}\n')
    _, diagnostics = parsed(text)
    lines = [(d.code, d.source.position(d.span.start).line) for d in diagnostics]
    assert lines == [("RT101", 3), ("RT102", 4), ("RT101", 5)]


def test_recovery_keeps_the_rest_of_the_file():
    module, diagnostics = parsed(
        'group "G" for store S { routing "R" { filter { priority HIGH } '
        'rule "a" { assign single } rule "b" { assign partial } } }')
    assert [d.code for d in diagnostics] == ["RT101"]
    rules = [m for m in module.items[0].members[0].members if isinstance(m, n.Rule)]
    assert [r.name.value for r in rules] == ["a", "b"]


def test_missing_closing_brace_is_reported_once_at_the_open_block():
    text = 'group "G" for store S {\n  routing "R" {\n'
    _, diagnostics = parsed(text)
    assert [d.code for d in diagnostics] == ["RT103"]
    assert diagnostics[0].span.start == text.index("{", text.index("routing"))
    assert diagnostics[0].message == "`{` of routing `R` is never closed"


def test_a_statement_cut_short_at_the_end_is_one_error():
    _, diagnostics = parsed('group "G" for store S {\n  routing "R" {\n    rule "a" { assign')
    assert [(d.code, d.message) for d in diagnostics] == [("RT103", "unexpected end of file")]


def test_unterminated_string():
    _, diagnostics = parsed('group "G for store S {}\n')
    assert diagnostics[0].code == "RT102"
    assert diagnostics[0].message == "unterminated string"


TOKENS = ['group', '"G"', 'for', 'store', 'S', '{', '}', 'routing', 'rule', 'filter', 'queue',
          '==', 'in', 'not', '[', ']', ',', 'assign', 'single', 'inventory', 'distance', '<=',
          '5', 'mi', 'sort', 'by', 'when', 'unfilled', 'move', 'to', '#c\n', '@', '"', '\n',
          'let', 'X', '=', 'use', 'std.hotwax', 'is', 'null', 'template', 'extends']


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_parser_never_crashes_on_token_soup(tokens):
    module, diagnostics = parsed(" ".join(tokens))
    assert isinstance(module, n.Module)
    assert all(d.code.startswith("RT1") for d in diagnostics)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_parser_never_crashes_on_random_text(text):
    module, diagnostics = parsed(text)
    assert isinstance(module, n.Module)
    for diagnostic in diagnostics:
        assert 0 <= diagnostic.span.start <= len(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXAMPLES), st.data())
def test_parser_never_crashes_on_damaged_examples(path, data):
    text = path.read_text(encoding="utf-8")
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    junk = data.draw(st.sampled_from(["", "{", "}", "==", '"', "@", "rule", "\n"]))
    module, diagnostics = parsed(text[:start] + junk + text[end:])
    assert isinstance(module, n.Module)
