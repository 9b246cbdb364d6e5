"""The front end under hostile and broken input: every input gives diagnostics, never an
exception; one mistake gives one error; imports cannot reach outside the project."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.diagnostics import MAX_DIAGNOSTICS, render_text
from routing_dsl.parser import parse
from routing_dsl.source import SourceFile

from .conftest import ROOT

OMNICHANNEL = (ROOT / "examples" / "omnichannel" / "omnichannel.route").read_text()


def check(text: str, path: Path | None = None):
    return Workspace().check_text(text, "t.route", path).diagnostics


def codes(text: str) -> list[str]:
    return [d.code for d in check(text)]


def errors_in_omnichannel(text: str):
    path = ROOT / "examples" / "omnichannel" / "omnichannel.route"
    return [d for d in check(text, path) if d.is_error]


# ---- bounded parsing -----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "let X = " + "[" * 500 + "]" * 500,
    'group "g" for store S { routing "r" { filter { queue == ' + "[" * 3000 + "}",
    'group "g" for store S { routing "r" { rule "a" { inventory { facility_id in '
    + "[" * 3000 + "] } } } }",
], ids=["let", "before-brace", "inventory"])
def test_deep_nesting_is_a_diagnostic_not_a_recursion_error(text):
    diagnostics = check(text)
    assert any(d.message == "lists nested too deeply" for d in diagnostics)


@pytest.mark.parametrize("text", [
    'group "g" for store S { routing "r" { filter { ' + "queue == " * 1000,
    'group "g" for store S {' * 2000,
    "let " + "a" * 40_000,
    "@ x " * 20_000,
    "".join("{}[]@=<\n\"a1 ,.#"[i * 7 % 15] for i in range(60_000)),
], ids=["repeated-operator", "nested-groups", "long-name", "garbage", "mixed-garbage"])
def test_errors_are_capped_with_a_count_of_the_rest(text):
    diagnostics = check(text)
    shown = [d for d in diagnostics if d.code != "RT199"]
    assert len(shown) <= MAX_DIAGNOSTICS
    omitted = [d for d in diagnostics if d.code == "RT199"]
    assert len(omitted) <= 1
    if omitted:
        assert len(shown) == MAX_DIAGNOSTICS
        assert omitted[0].message.startswith("and ")


def test_a_long_name_is_one_error():
    _, diagnostics = parse(SourceFile("t.route", "let " + "a" * 40_000 + " = "))
    assert [d.code for d in diagnostics] == ["RT103"]


# ---- one mistake, one error ----------------------------------------------------------------

def _closers(text: str) -> list[int]:
    lines = text.split("\n")
    return [i for i, line in enumerate(lines) if line.strip() == "}"]


@pytest.mark.parametrize("index", range(len(_closers(OMNICHANNEL))))
def test_any_missing_closing_brace_is_one_error_at_an_opening_brace(index):
    lines = OMNICHANNEL.split("\n")
    line = _closers(OMNICHANNEL)[index]
    errors = errors_in_omnichannel("\n".join(lines[:line] + lines[line + 1:]))
    assert [d.code for d in errors] == ["RT103"]
    assert errors[0].source.slice(errors[0].span) == "{"
    assert errors[0].message.endswith("is never closed")


@pytest.mark.parametrize("word", ["inventory", "filter", "rule", "sort", "routing"])
def test_a_misspelled_keyword_is_one_error_with_a_suggestion(word):
    typo = word[:2] + word[3] + word[2] + word[4:]
    errors = errors_in_omnichannel(OMNICHANNEL.replace(f"{word} ", f"{typo} ", 1))
    assert [(d.code, d.hint) for d in errors] == [("RT101", f"did you mean `{word}`?")]
    assert errors[0].fixes[0].replacement == word


def test_keywords_are_whole_words():
    text = 'group "G" for store S { routing "R" drafty { rule "a" { assignx single } } }'
    _, diagnostics = parse(SourceFile("t.route", text))
    assert [d.message for d in diagnostics] == ["unexpected `drafty`", "unexpected `assignx`"]
    assert [d.hint for d in diagnostics] == ["did you mean `draft`?", "did you mean `assign`?"]


def test_a_misspelled_assign_gets_did_you_mean():
    _, diagnostics = parse(SourceFile("t.route", 'template t { asign single }'))
    assert [d.hint for d in diagnostics] == ["did you mean `assign`?"]


def test_a_bad_character_is_not_also_a_missing_value():
    assert codes("let X = @\nlet Y = 1\n") == ["RT102"]


def test_a_value_left_out_does_not_swallow_the_next_condition():
    text = ('group "G" for store S { routing "R" { filter {\n queue ==\n priority == HIGH\n}\n'
            'rule "a" { assign single } } }')
    _, diagnostics = parse(SourceFile("t.route", text))
    assert [d.message for d in diagnostics] == ["expected a value after `==`"]


# ---- values the checker bounds -------------------------------------------------------------

def _rule(body: str) -> str:
    return ('use std.hotwax\ngroup "G" for store STORE { routing "R" { rule "a" { assign partial\n'
            f'{body}\n}} }} }}\n')


@pytest.mark.parametrize("body, message", [
    ("when unfilled { auto_cancel after 1" + "0" * 400 + " days }",
     "`auto_cancel after` is out of range"),
    ("when unfilled { auto_cancel after 99999999 days }", "`auto_cancel after` is out of range"),
    ("inventory { distance <= 1e999 mi }", None),
    ("inventory { distance <= 100000 mi }", "`distance` is out of range"),
    ("inventory { brokering_safety_stock > 1" + "0" * 50 + " }",
     "`brokering_safety_stock` is out of range"),
])
def test_numbers_have_ranges(body, message):
    diagnostics = check(_rule(body))
    assert any(d.is_error for d in diagnostics)
    if message:
        assert message in [d.message for d in diagnostics]


def test_promise_date_cutoff_has_a_range():
    text = ('use std.hotwax\ngroup "G" for store STORE { routing "R" {\n'
            'filter { promise_date within 9' + "9" * 30 + ' days }\n'
            'rule "a" { assign partial } } }\n')
    assert "`promise_date` is out of range" in [d.message for d in check(text)]


def test_a_time_zone_is_looked_up_never_opened():
    for zone in ["/".join(["a"] * 600), "../../../etc/passwd", "\x00", "America/New_York/.."]:
        text = f'group "G" for store S {{ schedule "0 * * * *" in "{zone}" }}'
        assert "RT408" in codes(text) or "RT102" in codes(text)


def test_a_control_character_in_a_string_is_an_error_for_check_and_fmt(tmp_path):
    path = tmp_path / "nul.route"
    path.write_text('let X = "\x00abc"\n')
    runner = CliRunner()
    checked = runner.invoke(main, ["check", str(path)])
    assert checked.exit_code == 1
    assert "control character `\\u0000` in a string" in checked.stdout
    formatted = runner.invoke(main, ["fmt", str(path)])
    assert formatted.exit_code == 1


# ---- imports -------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / ".routing-root").write_text("")
    (tmp_path / "secret.route").write_text("let SECRET = TOKEN_abc123\n")
    (tmp_path / "secret.txt").write_text("PASSWORD=hunter2\n")
    return root


@pytest.mark.parametrize("target", [
    "../secret.route", "../secret.txt", "/etc/passwd", "/proc/self/environ",
    "../../../../../../etc/passwd", "\x00.route", "nested/../../secret.route",
])
def test_use_cannot_read_outside_the_project(project, target):
    entry = project / "main.route"
    entry.write_text(f'use "{target}"\n')
    result = CliRunner().invoke(main, ["check", str(entry)])
    assert result.exit_code == 1
    assert "RT204" in result.stdout
    assert "hunter2" not in result.output and "abc123" not in result.output
    assert "root:" not in result.output


def test_use_of_a_link_that_leaves_the_project_is_refused(project):
    (project / "link.route").symlink_to(project.parent / "secret.route")
    (project / "main.route").write_text('use "link.route"\n')
    diagnostics = Workspace().check_path(project / "main.route").diagnostics
    assert [d.message for d in diagnostics] == ["cannot import `link.route` is outside the project"]


def test_use_of_a_file_that_is_not_route_is_refused(project):
    (project / "data.json").write_text("{}")
    (project / "main.route").write_text('use "data.json"\n')
    [diagnostic] = Workspace().check_path(project / "main.route").diagnostics
    assert diagnostic.message == "cannot import `data.json` is not a `.route` file"


def test_use_of_a_link_to_itself(project):
    (project / "loop.route").symlink_to(project / "loop.route")
    (project / "main.route").write_text('use "loop.route"\n')
    [diagnostic] = Workspace().check_path(project / "main.route").diagnostics
    assert diagnostic.code == "RT204"


def test_a_long_chain_of_imports_is_cut_with_a_diagnostic(project):
    for i in range(250):
        (project / f"m{i}.route").write_text(f'use "m{i + 1}.route"\n')
    (project / "m250.route").write_text("let LAST = 1\n")
    diagnostics = Workspace().check_path(project / "m0.route").diagnostics
    assert any("imports nest more than 32 modules deep" in d.message for d in diagnostics)


def test_imports_inside_the_project_still_work(project):
    (project / "lib").mkdir()
    (project / "lib" / "ids.route").write_text("declare queue Q1\n")
    (project / "sub").mkdir()
    (project / "sub" / "main.route").write_text(
        'use "../lib/ids.route"\ngroup "G" for store S { routing "R" { filter { queue == Q1 }\n'
        'rule "a" { assign single } } }\n')
    diagnostics = Workspace().check_path(project / "sub" / "main.route").diagnostics
    assert [d for d in diagnostics if d.is_error] == []


def test_check_refuses_a_file_that_is_not_route_in_one_line():
    result = CliRunner().invoke(main, ["check", str(ROOT / "examples" / "omnichannel" /
                                                  "snapshot.json")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "not a .route file" in result.output


def test_rendered_diagnostics_never_quote_a_file_that_is_not_a_module(project, monkeypatch):
    monkeypatch.chdir(project)  # and back after: later tests resolve paths from the clone
    entry = project / "main.route"
    entry.write_text('use "../secret.txt"\nuse "/etc/passwd"\n')
    text = "\n".join(render_text(d) for d in Workspace().check_path(entry).diagnostics)
    assert "hunter2" not in text and "root:x" not in text


def test_use_of_a_stdlib_name_too_long_for_the_file_system():
    diagnostics = check("use std." + "let" * 400 + "\n")
    assert [d.code for d in diagnostics] == ["RT204"]
