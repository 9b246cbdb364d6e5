"""HotWax interchange: a group export read into a `.route` file, and written back, losslessly
on exports that cover every parameter, operator and action."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.interchange.hotwax import (HotWaxImportError, canonical, export_group,
                                            import_group)

from .conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "hotwax"
GOLDEN = ROOT / "tests" / "golden" / "hotwax"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def exported(text: str) -> dict:
    program = Workspace().check_text(text, name="imported.route").program
    [group] = program.groups
    return export_group(group)


@pytest.mark.parametrize("name", ["every-parameter", "odd-values"])
def test_an_export_becomes_a_formatted_checked_route_file(name, golden, tmp_path):
    out = tmp_path / f"{name}.route"
    result = invoke("import-hotwax", FIXTURES / f"{name}.json", "-o", out)
    assert result.exit_code == 0, result.output
    golden(GOLDEN / f"{name}.route", out.read_text())
    assert invoke("check", out).exit_code == 0
    assert invoke("fmt", "--check", out).exit_code == 0


@pytest.mark.parametrize("name", ["every-parameter", "odd-values"])
def test_the_round_trip_is_lossless(name):
    document = json.loads((FIXTURES / f"{name}.json").read_text())
    text, _ = import_group(document)
    again = exported(text)
    assert canonical(again) == canonical(document)
    # and a second round changes nothing at all
    assert exported(import_group(again)[0]) == again


def test_odd_values_are_read_as_hotwax_reads_them():
    text, notes = import_group(json.loads((FIXTURES / "odd-values.json").read_text()))
    assert 'queue in [_NA_, "PRE-ORDER"]' in text          # IN, spaces, an id to quote
    assert "priority is null" in text                       # equals with no value
    assert "sales_channel is not null" in text              # not-equals with no value
    assert "shipment_method == NEXT_DAY" in text            # no operator is equals
    assert "sort by order_date desc" in text
    assert "keep_item_groups_together" not in text          # splitting allowed: the default
    assert "ignore_facility_order_limit" not in text        # `n` is false
    assert "distance <= 120.5 mi" in text
    assert "auto_cancel after 5 days" in text               # the last of two wins
    assert 'group "Odd \\"values\\" \\\\ and aliases" for store "OMS-STORE"' in text
    assert 'schedule "0 0 * * * ?" paused' in text
    assert any("assignmentEnumId: missing" in n for n in notes)
    assert any("a second ORA_AUTO_CANCEL_DAYS" in n for n in notes)
    assert any("actions[2]: no actionValue" in n for n in notes)


def test_what_cannot_be_translated_is_listed_by_json_path_and_nothing_is_written(tmp_path):
    out = tmp_path / "out.route"
    result = invoke("import-hotwax", FIXTURES / "unsupported.json", "-o", out)
    assert result.exit_code == 1
    assert not out.exists()
    assert "error: " + str(FIXTURES / "unsupported.json") + ": routings[0]" in result.stderr
    for words in ["routings[0].statusId: unknown status 'ROUTING_PAUSED'",
                  "routings[0].orderFilters[0].fieldName: unknown order filter 'orderTypeId'",
                  "routings[0].orderFilters[1].operator: operator 'like' has no counterpart",
                  "routings[0].orderFilters[2].fieldName: unknown sort 'orderDate; drop table'",
                  "routings[0].rules[0].assignmentEnumId: 'ORA_SOME'",
                  "routings[0].rules[0].inventoryFilters[0].fieldValue: 'far' is not a number",
                  "routings[0].rules[0].inventoryFilters[1].fieldName: unknown inventory "
                  "filter 'weekOfSupply'",
                  "routings[0].rules[0].actions[0].actionTypeEnumId: unknown action "
                  "'ORA_BROKER'"]:
        assert words in result.stderr, words
    assert "nothing written" in result.stderr


@pytest.mark.parametrize("content, words", [
    (b"[1, 2]", "expected a JSON object"),
    (b"{not json", "not valid JSON"),
    (b'{"productStoreId": "S", "routings": {"a": 1}}',
     "routings: expected a list or null, got an object"),
    (b"[" * 100_000, "not valid JSON"),
])
def test_a_hostile_or_broken_export_is_refused_in_one_line(tmp_path, content, words):
    path = tmp_path / "group.json"
    path.write_bytes(content)
    result = invoke("import-hotwax", path)
    assert result.exit_code in (1, 2)
    assert words in result.stderr and "Traceback" not in result.output


def test_examples_export_and_come_back_unchanged(tmp_path):
    source = ROOT / "examples" / "omnichannel" / "omnichannel.route"
    result = invoke("export-hotwax", source)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["productStoreId"] == "STORE" and document["routings"]
    text, _ = import_group(document)
    assert canonical(exported(text)) == canonical(document)


def test_what_hotwax_cannot_hold_is_refused_on_export(tmp_path):
    source = tmp_path / "rules.route"
    source.write_text('declare queue _NA_\ngroup "G" for store STORE {\n  routing "R" {\n'
                      '    filter { queue == _NA_ }\n    sort by ship_before nulls first\n'
                      '    rule "r" { assign partial }\n  }\n}\n')
    result = invoke("export-hotwax", source)
    assert result.exit_code == 1
    assert "rules.route:5:13: HotWax cannot sort `ship_before` with nulls first" in result.stderr
    assert invoke("export-hotwax", source, "--group", "nope").exit_code == 2


def test_export_names_every_shipping_criterion_hotwax_cannot_hold(tmp_path):
    out = tmp_path / "group.json"
    result = invoke("export-hotwax", str(ROOT / "examples" / "shipping_cost" /
                                         "shipping_cost.route"), "-o", str(out))
    assert result.exit_code == 1 and not out.exists()
    assert "shipping_cost.route:21:9: HotWax has no `transit_days` condition" in result.stderr
    assert "HotWax has no `split_cost` setting" in result.stderr
    assert "HotWax cannot sort by `shipping_cost`" in result.stderr


def test_export_names_every_lifecycle_criterion_hotwax_cannot_hold(tmp_path):
    """Rejection queues are queue filters HotWax holds; counting rejections, avoiding recent
    rejecters per rule, order tags, facility caps and effective dates it cannot (issue 23)."""
    source = tmp_path / "rules.route"
    source.write_text(
        'use std.hotwax\ndeclare tag VIP\ngroup "G" for store STORE {\n'
        '  routing "Rejected" active until "2999-01-01" {\n'
        '    filter { queue == REJECTED_ITM_PARKING  rejections < 3  tags in [VIP] }\n'
        '    rule "r" active from "2026-11-27" {\n      assign partial\n'
        '      inventory { not rejected within 7 days  max_facilities 2 }\n    }\n  }\n}\n')
    out = tmp_path / "group.json"
    result = invoke("export-hotwax", source, "-o", str(out))
    assert result.exit_code == 1 and not out.exists()
    for words in ("rules.route:4:11: HotWax has no effective dates on a routing",
                  "rules.route:5:45: HotWax has no `rejections` filter",
                  "HotWax has no `tags` filter", "rules.route:6:10: HotWax has no effective "
                  "dates on a rule", "HotWax has no `max_facilities` setting",
                  "rules.route:8:19: HotWax has no `rejected` condition"):
        assert words in result.stderr, words
    assert "REJECTED_ITM_PARKING" not in result.stderr  # a queue filter HotWax holds


def rejection_queue_group(extra_filter: dict | None = None) -> dict:
    """A HotWax group whose routing takes items back from the rejection queue and parks
    what no warehouse can take there again (HotWax's own rejection flow)."""
    filters = [{"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": "facilityId",
                "operator": "in", "fieldValue": "REJECTED_ITM_PARKING,_NA_", "sequenceNum": 1}]
    if extra_filter is not None:
        filters.append({"conditionTypeEnumId": "ENTCT_FILTER", "sequenceNum": 2,
                        **extra_filter})
    return {"productStoreId": "STORE", "groupName": "Rejected items", "routings": [{
        "routingName": "Rejected again", "statusId": "ROUTING_ACTIVE", "sequenceNum": 1,
        "orderFilters": filters,
        "rules": [{"ruleName": "Any warehouse", "statusId": "RULE_ACTIVE", "sequenceNum": 1,
                   "assignmentEnumId": "ORA_MULTI", "inventoryFilters": [],
                   "actions": [{"actionTypeEnumId": "ORA_MV_TO_QUEUE",
                                "actionValue": "REJECTED_ITM_PARKING"}]}]}]}


def test_rejection_queues_come_in_and_go_out_as_hotwax_holds_them(tmp_path):
    source = tmp_path / "group.json"
    source.write_text(json.dumps(rejection_queue_group()))
    out = tmp_path / "group.route"
    assert invoke("import-hotwax", source, "-o", out).exit_code == 0
    text = out.read_text()
    assert "queue in [REJECTED_ITM_PARKING, _NA_]" in text
    assert "move to queue REJECTED_ITM_PARKING" in text
    [routing] = exported(text)["routings"]
    assert strip_ids(routing["orderFilters"]) == [
        ("ENTCT_FILTER", "facilityId", "in", "REJECTED_ITM_PARKING,_NA_")]
    assert routing["rules"][0]["actions"] == [{"actionTypeEnumId": "ORA_MV_TO_QUEUE",
                                               "actionValue": "REJECTED_ITM_PARKING"}]


def test_an_order_tag_filter_is_named_as_what_hotwax_cannot_hold_both_ways(tmp_path):
    """HotWax's UI lets one pick order tags, its engine does not filter on them: an export
    carrying such a filter is not imported silently without it, and a `tags` filter is not
    exported; each says so where it is."""
    source = tmp_path / "group.json"
    source.write_text(json.dumps(rejection_queue_group(
        {"fieldName": "orderTags", "operator": "in", "fieldValue": "VIP"})))
    out = tmp_path / "group.route"
    result = invoke("import-hotwax", source, "-o", out)
    assert result.exit_code == 1 and not out.exists()
    assert ("routings[0].orderFilters[1].fieldName: unknown order filter 'orderTags': "
            "HotWax's brokering query filters on facilityId, ") in result.stderr
    assert "an order-tag filter chosen in its UI is not applied by it" in result.stderr
    assert "`tags in [VIP]`" in result.stderr and "Traceback" not in result.output
    route = tmp_path / "tags.route"
    for condition in ("tags in [VIP]", "tags not in [VIP]", "tags is null"):
        route.write_text('use std.hotwax\ndeclare tag VIP\ngroup "G" for store STORE {\n'
                         f'  routing "R" {{\n    filter {{ {condition} }}\n'
                         '    rule "r" { assign partial }\n  }\n}\n')
        result = invoke("export-hotwax", route, "-o", tmp_path / "out.json")
        assert result.exit_code == 1 and not (tmp_path / "out.json").exists(), condition
        assert result.stderr.strip() == (
            f"error: {route}:5:14: HotWax has no `tags` filter: order tags are shown in its "
            "UI, but its brokering query (EligibleOrdersQuery) does not read them"), condition


def strip_ids(filters: list[dict]) -> list[tuple]:
    """Each filter's meaning, in sequence order (spaces in comma lists are spelling)."""
    return [(f.get("conditionTypeEnumId"), f.get("fieldName"), f.get("operator"),
             f.get("fieldValue") and f["fieldValue"].replace(", ", ","))
            for f in sorted(filters, key=lambda f: f["sequenceNum"])]


def test_the_round_trip_keeps_each_rules_filters_in_their_order():
    document = json.loads((FIXTURES / "every-parameter.json").read_text())
    again = exported(import_group(document)[0])
    original = {rule["ruleName"]: strip_ids(rule["inventoryFilters"])
                for routing in document["routings"] for rule in routing["rules"]}
    for routing in again["routings"]:
        for rule in routing["rules"]:
            # the distance used to move to the end of its rule
            assert strip_ids(rule["inventoryFilters"]) == original[rule["ruleName"]]


RULE_WITH_IMPERIAL = {
    "productStoreId": "STORE", "groupName": "G", "description": "Two lines\nof description",
    "routings": [{"routingName": "R", "description": "Web orders", "sequenceNum": 1,
                  "rules": [{"ruleName": "r", "description": "Nearest first",
                             "assignmentEnumId": "ORA_MULTI", "inventoryFilters": [
        {"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": "distance",
         "operator": "less-equals", "fieldValue": "250", "sequenceNum": 1},
        {"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": "measurementSystem",
         "fieldValue": "IMPERIAL", "sequenceNum": 2},
        {"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": "shipmentThreshold",
         "fieldValue": "25", "sequenceNum": 3},
        {"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": "facilityGroupId",
         "operator": "equals", "fieldValue": "STORES", "sequenceNum": 4},
        {"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": "ignoreFacilityOrderLimit",
         "fieldValue": "Y", "sequenceNum": 5},
        {"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": "brokeringSafetyStock",
         "operator": "greater-equals", "fieldValue": "3", "sequenceNum": 6}]}]}]}


def test_an_explicit_imperial_and_the_order_of_conditions_survive_the_round_trip():
    text, _ = import_group(RULE_WITH_IMPERIAL)
    again = exported(text)
    [rule] = again["routings"][0]["rules"]
    # export wrote the settings after the conditions, and no measurementSystem for miles
    assert strip_ids(rule["inventoryFilters"]) == strip_ids(
        RULE_WITH_IMPERIAL["routings"][0]["rules"][0]["inventoryFilters"])


def test_descriptions_are_carried_as_comments_and_exported_back():
    text, _ = import_group(RULE_WITH_IMPERIAL)  # the group's description used to be dropped
    assert "# description: Two lines\n# description: of description\ngroup \"G\"" in text
    assert "# description: Web orders\n  routing \"R\"" in text
    assert "# description: Nearest first\n    rule \"r\"" in text
    again = exported(text)
    assert again["description"] == "Two lines\nof description"
    assert again["routings"][0]["description"] == "Web orders"
    assert again["routings"][0]["rules"][0]["description"] == "Nearest first"


def test_a_rule_in_miles_exports_its_measurement_system(tmp_path):
    source = tmp_path / "rules.route"
    source.write_text('declare facility_group STORES\ngroup "G" for store S {\n'
                      '  routing "R" {\n    rule "r" {\n      assign partial\n'
                      '      inventory {\n        distance <= 250 mi\n'
                      '        shipment_threshold 40.00\n        facility_group == STORES\n'
                      '      }\n    }\n  }\n}\n')
    result = invoke("export-hotwax", source)
    assert result.exit_code == 0, result.output
    [rule] = json.loads(result.stdout)["routings"][0]["rules"]
    assert [f["fieldName"] for f in rule["inventoryFilters"]] == [
        "distance", "measurementSystem", "shipmentThreshold", "facilityGroupId"]
    assert rule["inventoryFilters"][1]["fieldValue"] == "IMPERIAL"


# Found by the HotWax fuzzer (tests/test_fuzz_surfaces.py): the cron, status, assignment,
# field name, action type and surrogate cases exited 3 from somewhere in the import; the NaN
# sequence, the schedule given as text and the list action value were read without a word.
@pytest.mark.parametrize("change, words", [
    (lambda d: d["schedule"].update(cronExpression=5),
     "schedule.cronExpression: expected a string or null, got an integer"),
    (lambda d: d["routings"][0].update(statusId={"id": "ROUTING_ACTIVE"}),
     "routings[0].statusId: expected a string or null, got an object"),
    (lambda d: d["routings"][0]["rules"][0].update(assignmentEnumId=["ORA_SINGLE"]),
     "routings[0].rules[0].assignmentEnumId: expected a string or null, got a list"),
    (lambda d: d["routings"][0]["orderFilters"][0].update(operator=1),
     "routings[0].orderFilters[0].operator: expected a string or null, got an integer"),
    (lambda d: d["routings"][1].update(sequenceNum=float("nan")),
     "routings[1].sequenceNum: expected a number within the supported range (finite "
     "numbers up to 9007199254740991)"),
    (lambda d: d["routings"][0].update(rules=[5]),
     "routings[0].rules[0]: expected an object, got an integer"),
    (lambda d: d.update(schedule="0 * * * *"),
     "schedule: expected an object or null, got a string"),
    (lambda d: d["routings"][0]["rules"][0]["actions"][0].update(actionValue=[1]),
     "routings[0].rules[0].actions[0].actionValue: expected"),
    (lambda d: d["routings"][0]["orderFilters"][0].update(fieldName={}),
     "routings[0].orderFilters[0].fieldName: expected a string or null, got an object"),
    (lambda d: d["routings"][0]["rules"][0]["actions"][0].update(actionTypeEnumId=[]),
     "routings[0].rules[0].actions[0].actionTypeEnumId: expected a string or null, got a list"),
    (lambda d: d.update(groupName="\ud83d"),  # JSON can escape a lone surrogate; UTF-8 cannot
     "groupName: expected text, got a lone UTF-16 surrogate"),
])
def test_a_value_of_the_wrong_json_type_is_one_line_naming_its_path(tmp_path, change, words):
    document = json.loads((FIXTURES / "every-parameter.json").read_text())
    change(document)
    path = tmp_path / "group.json"
    path.write_text(json.dumps(document))
    result = invoke("import-hotwax", path, "-o", tmp_path / "out.route")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"error: {path}: {words}"] or \
        (len(result.stderr.splitlines()) == 1 and words in result.stderr)
    assert not (tmp_path / "out.route").exists()


def test_a_number_beyond_float_range_is_a_problem_not_infinity(tmp_path):
    document = json.loads((FIXTURES / "every-parameter.json").read_text())
    document["routings"][1]["rules"][0]["inventoryFilters"][1]["fieldValue"] = "1e400"
    with pytest.raises(HotWaxImportError, match=r"inventoryFilters\[1\].fieldValue: '1e400' "
                                                r"is outside the supported range"):
        import_group(document)


def test_a_negative_auto_cancel_is_a_problem_naming_its_path():
    """The language refuses `auto_cancel after -1 days` (the engines disagreed on it, found
    by the plan campaign): an import says where the export holds it."""
    from routing_dsl.checker import Workspace
    [group] = Workspace().check_path(
        ROOT / "examples" / "backorder_parking" / "backorder_parking.route").program.groups
    document = export_group(group)
    [action] = [a for r in document["routings"] for rule in r["rules"]
                for a in rule["actions"] if a["actionTypeEnumId"] == "ORA_AUTO_CANCEL_DAYS"]
    action["actionValue"] = "-1"
    with pytest.raises(HotWaxImportError) as refused:
        import_group(document, name="g.json")
    assert refused.value.problems == [
        "g.json: routings[0].rules[0].actions[1].actionValue: '-1' days cannot be negative"]


def test_a_rule_status_on_a_routing_is_not_a_routing_status():
    # found by the round trip of the HotWax fuzzer: RULE_ARCHIVED on a routing was read as
    # archived, and exported back as ROUTING_ARCHIVED
    document = json.loads((FIXTURES / "every-parameter.json").read_text())
    document["routings"][0]["statusId"] = "RULE_ARCHIVED"
    with pytest.raises(HotWaxImportError, match=r"routings\[0\].statusId: unknown status "
                                                "'RULE_ARCHIVED'"):
        import_group(document)
