"""Checker behaviour beyond the one-example-per-code goldens."""

from __future__ import annotations

from pathlib import Path

from routing_dsl.checker import Workspace
from routing_dsl.loader import Loader

from .conftest import ROOT

HEADER = "use std.hotwax\ndeclare facility_group WAREHOUSES, STORES\n"


def check(text: str, name: str = "t.route"):
    return Workspace().check_text(HEADER + text, name=name)


def codes(text: str) -> list[str]:
    return [d.code for d in check(text).diagnostics]


def group(body: str) -> str:
    return f'group "G" for store STORE {{\n routing "R" {{\n{body}\n }}\n}}\n'


def test_examples_are_clean_whatever_the_day():
    # `make demo` checks them by the machine's clock: no window of theirs may ever end (RT416)
    from datetime import UTC, datetime
    for now in (None, datetime(2026, 11, 23, 14, 30, tzinfo=UTC),
                datetime(2099, 12, 31, tzinfo=UTC)):
        workspace = Workspace(now=now)
        for path in sorted((ROOT / "examples").rglob("*.route")):
            assert workspace.check_path(path).diagnostics == [], (path, now)


def test_stdlib_is_clean():
    workspace = Workspace()
    for path in sorted((ROOT / "stdlib").rglob("*.route")):
        assert workspace.check_path(path).diagnostics == [], path


def test_every_problem_is_reported_together():
    found = codes(group('filter { queue == NOPE priority in [HIGH, NEXT_DAY] }\n'
                        'rule "a" { assign single inventory { distance <= 5 } }'))
    assert found == ["RT201", "RT206", "RT305"]


def test_did_you_mean_offers_a_fix():
    result = check(group('filter { queue == UNFILLABLE_PARKNG }\n rule "a" { assign single }'))
    [diagnostic] = result.diagnostics
    assert diagnostic.hint == "did you mean `UNFILLABLE_PARKING`?"
    [fix] = diagnostic.fixes
    assert fix.replacement == "UNFILLABLE_PARKING"
    assert result.parsed.source.slice(fix.span) == "UNFILLABLE_PARKNG"


def test_field_at_the_wrong_level_says_where_it_belongs():
    [diagnostic] = check(group('filter { distance <= 5 mi }\n rule "a" { assign single }')).diagnostics
    assert diagnostic.code == "RT301"
    assert "inventory" in diagnostic.hint


def test_constants_are_substituted_and_typed_at_use():
    result = check('let EXPRESS = [NEXT_DAY, SECOND_DAY]\nlet NEAR = 20 km\n' + group(
        'filter { shipment_method in EXPRESS }\n'
        'rule "a" { assign single inventory { distance <= NEAR } }'))
    assert result.diagnostics == []
    routing = result.program.groups[0].routings[0]
    assert routing.filters[0].ids == ("NEXT_DAY", "SECOND_DAY")
    rule = routing.rules[0]
    assert rule.conditions[0].number == 20.0 and rule.distance_unit == "km"


def test_constant_of_the_wrong_kind_names_the_constant():
    result = check("let EXPRESS = [NEXT_DAY]\n" + group(
        'filter { queue in EXPRESS }\n rule "a" { assign single }'))
    [diagnostic] = result.diagnostics
    assert diagnostic.code == "RT206" and "through `EXPRESS`" in diagnostic.message


def test_quoted_ids_are_literal():
    assert codes(group('filter { queue == "CUSTOM_QUEUE" }\n rule "a" { assign single }')) == []


def test_template_clauses_merge_with_the_rule():
    result = check("use std.templates\n" + group(
        'rule "a" extends closest_single_facility {\n'
        ' inventory { facility_group == WAREHOUSES }\n'
        ' when unfilled { move to queue UNFILLABLE_PARKING } }'))
    assert result.diagnostics == []
    rule = result.program.groups[0].routings[0].rules[0]
    assert rule.assign == "single"
    assert [s.field for s in rule.sorts] == ["distance", "inventory_balance"]
    assert rule.sorts[1].descending
    assert rule.conditions[0].ids == ("WAREHOUSES",)
    assert rule.move_to_queue == "UNFILLABLE_PARKING"


def test_rule_sort_replaces_the_template_sort():
    result = check("use std.templates\n" + group(
        'rule "a" extends closest_single_facility { sort by sales_velocity }'))
    assert [s.field for s in result.program.groups[0].routings[0].rules[0].sorts] == [
        "sales_velocity"]


def test_promise_date_switches_to_item_mode():
    result = check(group('filter { promise_date within 2 days }\n rule "a" { assign partial }'))
    assert result.program.groups[0].routings[0].item_mode


def test_draft_routing_without_rules_is_fine():
    assert codes(group('rule "a" draft { assign single }').replace(
        'routing "R" {', 'routing "R" draft {')) == ["RT413"]


def test_imports_of_files_resolve_relative_to_the_importer(tmp_path: Path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "catalog.route").write_text("declare queue MY_QUEUE\n")
    main = tmp_path / "main.route"
    main.write_text('use "lib/catalog.route"\n' + group(
        'filter { queue == MY_QUEUE }\n rule "a" { assign single }'))
    assert Workspace().check_path(main).diagnostics == []


def test_open_buffers_override_files_on_disk(tmp_path: Path):
    main = tmp_path / "main.route"
    main.write_text("this is not valid")
    loader = Loader(overrides={main.resolve(): group('rule "a" { assign single }')})
    assert Workspace(loader).check_path(main).diagnostics == []


def test_single_rule_in_item_mode_is_a_warning_not_an_error():
    result = check(group('filter { promise_date within 1 days }\n rule "a" { assign single }'))
    assert [(d.code, d.level.value) for d in result.diagnostics] == [("RT404", "warning")]
    assert not result.has_errors


def test_cron_forms():
    for cron, ok in [("*/15 * * * *", True), ("0 */15 * * * ?", True), ("0 0 2 * * ? 2027", True),
                     ("61 * * * *", False), ("* * *", False)]:
        text = f'group "G" for store S {{ schedule "{cron}" routing "R" {{ rule "a" {{ assign single }} }} }}'
        assert (codes(text) == []) == ok, cron


def test_contradictory_distances_exclude_every_facility():
    found = codes(group('rule "a" { assign partial inventory { distance < 10 mi '
                        'distance > 20 mi } }'))
    assert found == ["RT406"]
    assert codes(group('rule "a" { assign partial inventory { distance <= 10 mi '
                       'distance >= 10 mi } }')) == []
    assert codes(group('rule "a" { assign partial inventory { distance < 10 mi '
                       'distance >= 10 mi } }')) == ["RT406"]


def test_settings_without_effect_in_single_rules_are_flagged():
    found = codes(group('rule "a" { assign single inventory { keep_item_groups_together '
                        'only_if_all_items_available } }'))
    assert found == ["RT414", "RT414"]


def _shipping_rule(inventory: str, sorts: str = "sort by shipping_cost") -> str:
    return group(f' rule "r" {{ assign partial inventory {{ {inventory} }} {sorts} }}')


def test_shipping_criteria_are_typed_like_the_others():
    assert codes(_shipping_rule("shipping_cost <= 15.00 transit_days <= 2 "
                                "delivery_date <= promise_date split_cost 3")) == []
    assert codes(_shipping_rule("transit_days <= 2 days")) == []
    assert codes(_shipping_rule("shipping_cost <= 15 mi")) == ["RT305"]   # money, no unit
    assert codes(_shipping_rule("transit_days <= 1.5")) == ["RT306"]      # whole days
    assert codes(_shipping_rule("shipping_cost <= -1")) == ["RT307"]
    assert codes(_shipping_rule("delivery_date <= WAREHOUSES")) == ["RT304"]
    assert codes(_shipping_rule("delivery_date > promise_date")) == ["RT303"]
    assert codes(_shipping_rule("shipping_cost in [1, 2]")) == ["RT303"]


def test_split_cost_without_the_sort_it_adds_to_has_no_effect():
    assert codes(_shipping_rule("split_cost 3.00", "sort by distance")) == ["RT414"]
    assert codes(_shipping_rule("split_cost 50 mi", "sort by shipping_cost")) == ["RT414"]
    assert codes(_shipping_rule("split_cost 50 mi", "sort by distance")) == []
    assert codes(group(' rule "r" { assign single inventory { split_cost 3.00 } '
                       'sort by shipping_cost }')) == ["RT414"]
