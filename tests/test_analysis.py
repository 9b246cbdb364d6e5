"""`routing analyze`: shadowed rules, routings no order can enter, rules that take any
facility; each finding named, the cases it must not report, and soundness on generated rules
and snapshots (a reported rule never allocates, a reported routing takes no order)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_dsl.authoring.analysis import analyze
from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.compiler import compile_program
from routing_dsl.interpreter import run_plan

from .conftest import ROOT
from .test_engines import FILTERS, checked_programs, snapshots

HEADER = ("declare queue _NA_, PARK\ndeclare facility_group A, B, C\n"
          "declare shipment_method NEXT_DAY, STANDARD\n")


def findings(routings: str) -> list[tuple[str, str]]:
    text = HEADER + 'group "G" for store STORE {\n' + routings + "\n}\n"
    result = Workspace().check_text(text, name="rules.route")
    assert not [d for d in result.diagnostics if d.is_error], result.diagnostics
    return [(d.code, d.message) for d in analyze(result.program)]


def routing(rules: str, filters: str = "queue == _NA_") -> str:
    return f'routing "R" {{ filter {{ {filters} }} {rules} }}'


def test_a_rule_after_a_free_split_over_more_facilities_is_shadowed():
    found = findings(routing(
        'rule "any warehouse or store" { assign partial inventory { facility_group in [A, B] '
        'distance <= 100 mi } }'
        'rule "near warehouses" { assign single inventory { facility_group == A '
        'distance <= 50 mi } }'))
    assert [code for code, _ in found] == ["RT501"]
    assert "rule 'near warehouses' of routing 'R' can never allocate" in found[0][1]


@pytest.mark.parametrize("earlier", [
    "assign single inventory { facility_group in [A, B] }",           # may fail where split wins
    "assign partial inventory { facility_group == A brokering_safety_stock > 1 }",
    "assign partial inventory { facility_group == A shipment_threshold 10 }",
    "assign partial inventory { facility_group == A only_if_all_items_available }",
    "assign partial inventory { facility_group == A keep_item_groups_together }",
    "assign partial inventory { facility_group == A distance <= 10 mi }",  # nearer only
    "assign partial inventory { facility_group == B }",                # other facilities
])
def test_rules_that_may_leave_something_shadow_nothing(earlier):
    found = findings(routing(f'rule "first" {{ {earlier} }} rule "second" {{ assign partial '
                             'inventory { facility_group == A distance <= 50 mi } }'))
    assert [code for code, _ in found if code == "RT501"] == []


def test_order_limits_the_earlier_rule_respects_leave_room():
    found = findings(routing(
        'rule "first" { assign partial inventory { facility_group == A } }'
        'rule "second" { assign partial inventory { facility_group == A '
        'ignore_facility_order_limit } }'))
    assert found == []


@pytest.mark.parametrize("filters, words", [
    ("queue == _NA_ queue == PARK", "queue conditions leave no value"),
    ("queue == _NA_ shipment_method == NEXT_DAY shipment_method in [STANDARD]",
     "shipment_method conditions leave no value"),
    ("queue == _NA_ shipment_method is null shipment_method != NEXT_DAY "
     "shipment_method is not null", "ask for a value and for none"),
    ("queue == _NA_ promise_date <= 1 days promise_date > 2 days",
     "leave no promised date between them"),
    ("queue == _NA_ promise_date < 2 days promise_date >= 2 days",
     "leave no promised date between them"),
    ("queue == _NA_ origin_facility_group in [A] origin_facility_group not in [A, B]",
     "require one of the values they also exclude"),
])
def test_filters_no_order_can_pass_are_reported(filters, words):
    found = findings(routing('rule "r" { assign partial inventory { facility_group == A } }',
                             filters))
    assert [code for code, _ in found] == ["RT502"]
    assert words in found[0][1]


@pytest.mark.parametrize("filters", [
    "queue in [_NA_, PARK] queue != PARK",
    "queue == _NA_ promise_date <= 2 days promise_date >= 2 days",
    "queue == _NA_ origin_facility_group == A origin_facility_group == B",  # two origins' groups
    "queue == _NA_ shipment_method != NEXT_DAY shipment_method is null",
])
def test_filters_some_order_can_pass_are_not_reported(filters):
    assert findings(routing('rule "r" { assign partial inventory { facility_group == A } }',
                            filters)) == []


def test_a_rule_without_an_inventory_condition_is_reported():
    found = findings(routing('rule "anything goes" { assign partial sort by distance }'))
    assert [code for code, _ in found] == ["RT503"]


def test_the_command_reports_and_gates(tmp_path):
    source = tmp_path / "rules.route"
    source.write_text(HEADER + 'group "G" for store STORE {\n' + routing(
        'rule "anything goes" { assign partial }') + "\n}\n")
    result = CliRunner().invoke(main, ["analyze", str(source)])
    assert result.exit_code == 0 and "warning[RT503]" in result.stdout
    assert CliRunner().invoke(main, ["analyze", "--strict", str(source)]).exit_code == 1
    clean = CliRunner().invoke(main, ["analyze", "--strict", str(ROOT / "examples")])
    assert clean.exit_code == 0, clean.output


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(checked_programs(most_filters=3), snapshots(), st.sampled_from(FILTERS))
def test_findings_hold_on_every_snapshot(program, snapshot, _):
    result = run_plan(compile_program(program), snapshot)
    for diagnostic in analyze(program):
        if diagnostic.code == "RT501":
            rule, routing_name = diagnostic.message.split("'")[1:4:2]
            assert not [a for a in result["allocations"] if a["rule"] == rule
                        and a["routing"] == routing_name], diagnostic
        if diagnostic.code == "RT502":
            name = diagnostic.message.split("'")[1]
            runs = [r for b in result["batches"] for r in b["runs"] if r["routing"] == name]
            assert all(r["attempted_items"] == 0 for r in runs), diagnostic
