"""HotWax interchange: a group export read into a `.route` file, and written back, losslessly
on exports that cover every parameter, operator and action."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.interchange.hotwax import (canonical, export_group,
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
    (b'{"productStoreId": "S", "routings": {"a": 1}}', "routings: expected a list of objects"),
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
