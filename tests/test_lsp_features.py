"""Editor features as pure functions: completion, hover, navigation, rename, outline,
folding, semantic tokens, formatting and quick fixes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import TextDocument

from routing_dsl.bench.suite import lsp_document
from routing_dsl.lsp import features as f

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel" / "omnichannel.route"
TEXT = EXAMPLE.read_text()


@pytest.fixture(scope="module")
def result():
    return f.Project().check(EXAMPLE)


def labels(result, text: str, needle: str, delta: int = 0) -> set[str]:
    return {c.label for c in f.complete(result, text, text.index(needle) + delta)}


def test_completion_of_order_fields_in_a_filter(result):
    found = labels(result, TEXT, "queue == _NA_")
    assert {"queue", "shipment_method", "promise_date"} <= found
    assert "distance" not in found


def test_completion_of_inventory_fields_and_flags(result):
    found = labels(result, TEXT, "facility_group == WAREHOUSES")
    assert {"facility_group", "distance", "keep_item_groups_together"} <= found
    assert "queue" not in found


def test_completion_of_operators_that_fit_the_field(result):
    assert labels(result, TEXT, "queue == _NA_", len("queue ")) == {"==", "!=", "in", "not in"}
    text = TEXT.replace("distance <= 1000 mi", "distance ")
    assert labels(result, text, "distance \n", len("distance ")) == {"<", "<=", ">", ">="}


def test_completion_of_ids_of_the_expected_kind(result):
    found = labels(result, TEXT, "queue == _NA_", len("queue == "))
    assert {"_NA_", "UNFILLABLE_PARKING", "BACKORDER_PARKING"} <= found
    assert "WEB_CHANNEL" not in found
    channels = labels(result, TEXT, "WEB_CHANNEL, PHONE")
    assert {"WEB_CHANNEL", "AMAZON_CHANNEL"} <= channels and "_NA_" not in channels


def test_completion_of_templates_sorts_and_keywords(result):
    assert {"closest_single_facility", "nearest_split"} <= labels(
        result, TEXT, "closest_single_facility")
    assert {"ship_before", "order_date", "priority"} <= labels(result, TEXT, "priority, order")
    rule_sort = 'group "G" for store S { routing "R" { rule "r" { sort by '
    found = {c.label for c in f.complete(result, rule_sort, len(rule_sort))}
    assert {"distance", "inventory_balance", "facility_sequence"} <= found
    assert "order_date" not in found
    rule_body = labels(result, TEXT, "inventory {\n        facility_group == WAREHOUSES")
    assert {"assign", "inventory", "sort", "when"} <= rule_body


def test_completion_on_broken_text_does_not_fail():
    assert isinstance(f.complete(None, 'group "G" for store S { @@ ', 27), list)


def test_hover_documents_fields_keywords_operators_and_ids(result):
    def hover_text(needle, delta=0):
        found = f.hover(result, TEXT.index(needle) + delta)
        return found[0] if found else None
    assert "order's sales channel" in hover_text("sales_channel in")
    assert "Great-circle distance" in hover_text("distance <= 1000")
    assert "less than or equal" in hover_text("<= 1000")
    assert "Brokering queue" in hover_text("_NA_")
    assert "optionally `paused`" in hover_text("schedule")
    assert "HotWax Commerce's standard ids" in hover_text("hotwax")


def test_hover_shows_a_constants_value(tmp_path: Path):
    path = tmp_path / "c.route"
    text = 'let NEAR = 25 mi\ngroup "G" for store S { routing "R" { rule "r" { assign single inventory { distance <= NEAR } } } }\n'
    path.write_text(text)
    checked = f.Project().check(path)
    found = f.hover(checked, text.index("NEAR }"))
    assert "let NEAR = 25 mi" in found[0]


def workspace(tmp_path: Path) -> f.Project:
    (tmp_path / "lib.route").write_text("let NEAR = 25 mi\ntemplate nearest { assign single sort by distance }\n")
    for name in ("a", "b"):
        (tmp_path / f"{name}.route").write_text(
            f'use "lib.route"\ngroup "{name}" for store S {{ routing "R" {{\n'
            f' rule "r" extends nearest {{ inventory {{ distance <= NEAR }} }} }} }}\n')
    return f.Project(roots=[tmp_path])


def test_definition_references_and_rename_across_the_workspace(tmp_path: Path):
    project = workspace(tmp_path)
    a = project.check(tmp_path / "a.route")
    text = a.parsed.source.text
    definition = f.definition_at(a, text.index("NEAR"))
    assert definition.kind == "constant"
    assert Path(definition.where.source.name).name == "lib.route"
    references = f.find_references(project.check_all(), definition)
    assert sorted(Path(p).name for p, _ in references) == ["a.route", "b.route", "lib.route"]
    edits = f.rename(project.check_all(), definition, "CLOSE")
    assert sorted(Path(p).name for p in edits) == ["a.route", "b.route", "lib.route"]
    template = f.definition_at(a, text.index("nearest"))
    assert template.kind == "template"
    assert len(f.find_references(project.check_all(), template)) == 3


def test_references_to_a_module_however_its_path_is_spelled(tmp_path: Path):
    project = workspace(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.route").write_text('use "../lib.route"\n')
    a = project.check(tmp_path / "a.route")
    module = f.definition_at(a, a.parsed.source.text.index("lib.route"))
    assert module.kind == "module"
    found = f.find_references(project.check_all(), module)
    assert sorted(Path(p).name for p, _ in found) == ["a.route", "b.route", "c.route"]


def test_rename_refuses_keywords_and_ids(tmp_path: Path):
    project = workspace(tmp_path)
    a = project.check(tmp_path / "a.route")
    definition = f.definition_at(a, a.parsed.source.text.index("NEAR"))
    assert f.rename(project.check_all(), definition, "rule") == "`rule` is a keyword"
    assert f.rename(project.check_all(), definition, "1x") == "`1x` is not a name"


def test_document_symbols_outline_group_routing_rule(result):
    [group] = [s for s in f.document_symbols(result.parsed.module) if s.kind == "group"]
    assert group.name == "Omnichannel brokering"
    assert [r.name for r in group.children] == ["Web orders", "Marketplace orders"]
    assert [r.name for r in group.children[0].children] == [
        "Nearest warehouse ships everything", "Nearest stores split the order"]


def test_folding_ranges_cover_blocks_and_comment_runs(result):
    ranges = f.folding_ranges(result.parsed.source, result.parsed.module)
    assert (1, 2) in ranges  # the two header comment lines
    assert any(start == 7 for start, _ in ranges)  # the group


def test_semantic_tokens_classify_by_role(result):
    tokens = {(TEXT[o:o + n], kind) for o, n, kind in f.semantic_tokens(result)}
    assert ("queue", "property") in tokens
    assert ("group", "keyword") in tokens
    assert ("_NA_", "enumMember") in tokens
    assert ("closest_single_facility", "function") in tokens
    assert ('"0 */15 * * * ?"', "string") in tokens


def test_formatting_matches_routing_fmt(result):
    assert f.format_document(result) == TEXT


def test_quick_fix_for_did_you_mean(tmp_path: Path):
    path = tmp_path / "typo.route"
    path.write_text('use std.hotwax\ngroup "G" for store S { routing "R" { filter { queue == UNFILLABLE_PARKIN } rule "r" { assign single } } }\n')
    [diagnostic] = f.own_diagnostics(f.Project().check(path))
    [fix] = diagnostic.fixes
    assert fix.replacement == "UNFILLABLE_PARKING"


def test_diagnostic_ranges_are_utf16_for_editors(tmp_path: Path):
    # an emoji is one code point but two UTF-16 units: the range must count two
    text = 'group "🚚 fast" for store S { routing "R" { filter { queue == NOPE } rule "r" { assign single } } }\n'
    path = tmp_path / "emoji.route"
    path.write_text(text)
    [diagnostic] = f.own_diagnostics(f.Project().check(path))
    document = TextDocument(path.as_uri(), text)
    start = document.client_position_at_offset(diagnostic.span.start)
    assert start == types.Position(0, text.index("NOPE") + 1)


def test_diagnostics_latency_benchmark(benchmark, tmp_path: Path):
    text = lsp_document(2000)
    project = f.Project()
    path = tmp_path / "big.route"
    diagnostics = benchmark(lambda: f.own_diagnostics(project.check(path, text)))
    assert diagnostics == []


GOLDEN_FILES = sorted((ROOT / "tests" / "golden" / "diagnostics").glob("RT*.route"))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_editor_diagnostics_are_those_of_routing_check(path, monkeypatch):
    from routing_dsl.checker import Workspace
    monkeypatch.chdir(path.parent)
    checked = Workspace().check_path(path)
    expected = [(d.code, d.message, d.span) for d in checked.diagnostics
                if d.source is checked.parsed.source]
    editor = f.own_diagnostics(f.Project(roots=[path.parent]).check(path))
    assert [(d.code, d.message, d.span) for d in editor] == expected


DAMAGED = [p for p in sorted((ROOT / "examples").rglob("*.route"))]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.sampled_from(DAMAGED), st.data())
def test_no_feature_fails_on_broken_text(path, data):
    text = path.read_text()
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 30)))
    junk = data.draw(st.sampled_from(["", "{", "}", '"', "@", "== ==", "rule", "\n", "🚚"]))
    broken = text[:start] + junk + text[end:]
    result = f.Project().check(path, broken)
    offset = data.draw(st.integers(0, len(broken)))
    f.complete(result, broken, offset)
    f.hover(result, offset)
    f.definition_at(result, offset)
    f.document_symbols(result.parsed.module)
    f.folding_ranges(result.parsed.source, result.parsed.module)
    f.semantic_tokens(result)
    formatted = f.format_document(result)
    assert formatted is None or not result.parsed.syntax_diagnostics


# ---- editor features added for large, shared and broken workspaces --------------------------

def test_rename_refuses_a_name_that_exists(tmp_path: Path):
    project = workspace(tmp_path)
    (tmp_path / "lib.route").write_text(
        "let NEAR = 25 mi\nlet FAR = 90 mi\ntemplate nearest { assign single sort by distance }\n")
    project.invalidate()
    a = project.check(tmp_path / "a.route")
    definition = f.definition_at(a, a.parsed.source.text.index("NEAR"))
    assert f.rename(project.check_all(), definition, "FAR", project) == \
        "`FAR` already exists in a.route"
    assert f.rename(project.check_all(), definition, "nearest", project) != \
        "`nearest` already exists in lib.route"  # templates and constants are apart


def test_rename_never_edits_the_installed_stdlib(tmp_path: Path):
    project = workspace(tmp_path)
    text = 'use std.templates\ngroup "G" for store S { routing "R" { rule "r" extends ' \
           'closest_single_facility } }\n'
    (tmp_path / "c.route").write_text(text)
    c = project.check(tmp_path / "c.route")
    definition = f.definition_at(c, text.index("closest_single_facility"))
    assert definition.kind == "template"
    assert f.rename_target(definition, project) == \
        "`closest_single_facility` is defined outside the workspace"


def test_workspace_symbols_search_every_file(tmp_path: Path):
    project = workspace(tmp_path)
    found = f.workspace_symbols(project.check_all(), "near")
    assert {(Path(path).name, symbol.kind) for path, symbol in found} >= {
        ("lib.route", "constant"), ("lib.route", "template")}
    assert [s.name for _, s in f.workspace_symbols(project.check_all(), "R")].count("R") == 2


def test_document_links_on_use(tmp_path: Path):
    project = workspace(tmp_path)
    a = project.check(tmp_path / "a.route")
    [(span, target)] = f.document_links(a)
    assert a.parsed.source.slice(span) == '"lib.route"'
    assert Path(target) == (tmp_path / "lib.route").resolve()


@pytest.mark.parametrize("prefix, expected, absent", [
    ("use std.", {"hotwax", "templates"}, {"queue"}),
    ('use "', {"../catalog.route"}, {"_NA_"}),
    ('group "G" for store S {\n  schedule "0 * * * *" in "America/New_', {"America/New_York"},
     {"_NA_"}),
    ('group "G" for store S { routing "R" { rule "r" { assign single\n'
     '  when unfilled { move to queue ', {"UNFILLABLE_PARKING"}, {"next", "move", "WEB_CHANNEL"}),
    ('group "G" for store S { routing "R" { rule "r" { assign partial\n'
     '  inventory { delivery_date <= ', {"promise_date"}, {"_NA_", "WEB_CHANNEL"}),
    ('group "G" for store S { routing "R" { rule "r" { assign partial\n'
     '  inventory { ', {"shipping_cost", "transit_days", "delivery_date", "split_cost"},
     {"queue"}),
    ('group "G" for store S { routing "R" { rule "r" { assign partial\n'
     '  sort by ', {"shipping_cost", "delivery_date"}, {"order_date"}),
    # issue 23: rejections, facilities per order, tags, active windows
    ('group "G" for store S { routing "R" { rule "r" { assign partial\n'
     '  inventory { ', {"not", "max_facilities", "distance"}, {"rejected", "tags"}),
    ('group "G" for store S { routing "R" { rule "r" { assign partial\n'
     '  inventory { not ', {"rejected"}, {"distance", "max_facilities"}),
    ('group "G" for store S { routing "R" { rule "r" { assign partial\n'
     '  inventory { not rejected ', {"within"}, {"in", "=="}),
    ('group "G" for store S { routing "R" { filter { ', {"tags", "rejections"}, {"rejected"}),
    ('group "G" for store S { routing "R" active ', {"from", "until"}, {"draft"}),
    ('group "G" for store S { routing "R" active from "2026-11-27" ', {"until"}, {"from"}),
])
def test_completion_in_context(result, prefix, expected, absent):
    text = "use std.hotwax\n" + prefix
    found = {c.label for c in f.complete(result, text, len(text))}
    assert expected <= found
    assert not (absent & found)


@given(st.text(alphabet="a\u00e9\U0001f600\n", max_size=40))
def test_positions_are_lines_and_utf16_units(text):
    from routing_dsl.source import SourceFile
    positions = f.Positions(SourceFile("t", text))
    for offset in range(len(text) + 1):
        line_start = text.rfind("\n", 0, offset) + 1
        units = len(text[line_start:offset].encode("utf-16-le")) // 2
        expected = (text.count("\n", 0, offset), units)
        assert positions.position(offset) == expected
        assert positions.offset(*expected) == offset
