"""Formatting: canonical output (goldens), idempotence, round trip, comments kept."""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings

from routing_dsl.formatter import format_module
from routing_dsl.nodes import dump
from routing_dsl.parser import parse
from routing_dsl.source import SourceFile

from .conftest import GOLDEN, ROOT
from .strategies import programs

FORMAT = GOLDEN / "format"
EXAMPLES = sorted((ROOT / "examples").rglob("*.route")) + sorted((ROOT / "stdlib").rglob("*.route"))


def fmt(text: str) -> str:
    source = SourceFile("t.route", text)
    module, diagnostics = parse(source)
    assert not diagnostics, [d.message for d in diagnostics]
    return format_module(module, source)


def structure(text: str):
    module, diagnostics = parse(SourceFile("t.route", text))
    assert not diagnostics
    return dump(module)


@pytest.mark.parametrize("path", sorted(FORMAT.glob("*.route")), ids=lambda p: p.stem)
def test_format_golden(path, golden):
    golden(path.with_suffix(".formatted"), fmt(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_shipped_files_are_formatted(path):
    text = path.read_text(encoding="utf-8")
    assert fmt(text) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_format_is_idempotent_and_round_trips(text):
    formatted = fmt(text)
    assert fmt(formatted) == formatted
    assert structure(formatted) == structure(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_format_keeps_every_comment(text):
    before = parse(SourceFile("t", text))[0].comments
    after = parse(SourceFile("t", fmt(text)))[0].comments
    assert [c.text.rstrip() for c in after] == [c.text.rstrip() for c in before]


def test_comment_positions():
    text = ('# file header\nuse std.hotwax # trailing\n\n\n\n'
            'group "G" for store S { # after brace\n'
            '  # leading\n  routing "R" {rule "x" {assign single}}\n  # closing\n}\n')
    assert fmt(text) == (
        "# file header\nuse std.hotwax  # trailing\n\n"
        "group \"G\" for store S {  # after brace\n"
        "  # leading\n  routing \"R\" {\n    rule \"x\" {\n      assign single\n    }\n  }\n"
        "  # closing\n}\n")
