"""Seeded campaigns on the JSON contracts (routing_dsl/fuzz/contracts.py): plans generated
from the plan schema and broken at one place, run as `routing run PLAN` runs them; results
generated from the result schema, validated and read by everything that reads results. Each
finding is a named test below. `make test` runs a few hundred inputs; `pytest -m fuzz` many
more over several seeds."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from routing_dsl import app
from routing_dsl.cli import main
from routing_dsl.fuzz.contracts import (plan_campaign, plan_documents, read_result,
                                        result_campaign, result_documents)
from routing_dsl.fuzz.surfaces import Project
from routing_dsl.plan import Plan
from routing_dsl.result import Result, dump_result

from .test_fuzz_surfaces import no_findings


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    return Project(tmp_path_factory.mktemp("contracts"))


def test_generated_plans_run_or_are_refused_in_one_line_naming_the_file(project):
    no_findings(plan_campaign(22, 300, project))


def test_generated_results_are_refused_naming_the_path_or_read_by_every_reader(project):
    no_findings(result_campaign(22, 200, project, "sqlite://"))


def test_routing_run_gives_exit_0_2_or_4_and_one_line_for_generated_plans(project):
    path, snapshot = project.folder / "cli.plan.json", project.folder / "snapshot.json"
    codes = set()
    for text, note in plan_documents(random.Random(9), project, 40):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = CliRunner().invoke(main, ["run", str(path), "--snapshot", str(snapshot),
                                           "--out", "-"])
        codes.add(result.exit_code)
        assert result.exit_code in (0, 2, 4), (note, result.output)
        if result.exit_code == 2:
            [line] = result.stderr.splitlines()
            assert line.startswith(f"error: {path}"), line
    assert {0, 2} <= codes


def test_generated_plans_are_valid_for_the_published_schema_before_they_are_broken(project):
    import jsonschema
    schema = Plan.model_json_schema()
    for text, _ in plan_documents(random.Random(4), project, 60, mutate_share=0.0):
        try:
            document = json.loads(text)
        except ValueError:
            continue  # damaged as text
        jsonschema.validate(document, schema)


# ---- findings ------------------------------------------------------------------------------------

def test_a_plan_with_a_lone_surrogate_is_refused_naming_the_path(project, tmp_path):
    """Found by the plan campaign: `"name": "\\ud83d"` loaded, ran, and then the result could
    not be written (TypeError from orjson, exit 3)."""
    document = json.loads(project.plan.to_json())
    document["groups"][0]["name"] = "\ud83d"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(app.InputError) as refused:
        app.load_plan(path)
    assert str(refused.value) == (f"{path}: invalid plan at groups[0].name: expected text, "
                                  "got a lone UTF-16 surrogate")
    result = CliRunner().invoke(main, ["run", str(path), "--snapshot",
                                       str(project.folder / "snapshot.json")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


def test_the_plan_schema_requires_the_format_and_version_the_loader_requires(project):
    """Found by the plan campaign: the published schema let a plan leave out `format` and
    `plan_version` (they have defaults), and the loader refused every such plan."""
    schema = Plan.model_json_schema()
    assert {"format", "plan_version"} <= set(schema["required"])
    Plan.model_validate(json.loads(project.plan.to_json()))


@pytest.mark.parametrize("path, value", [
    (("allocations", 0, "quantity"), 2**64),
    (("batches", 0, "runs", 0, "packages"), 10**30),
    (("inventory_after", 0, "atp"), float("nan")),
    (("batches", 0, "totals", "shipping_cost"), float("inf")),
    (("facility_counts_after", 0, "orders_today"), 2**53 + 1),
])
def test_a_result_number_beyond_the_engines_range_is_refused_by_the_contract(project, path,
                                                                            value):
    """Found by the result campaign: the result schema took any number, and a result holding
    2^64 could not be written (orjson) or recorded (SQLite's 64-bit columns)."""
    from routing_dsl.engine import route
    document = json.loads(dump_result(route(project.plan, project.snapshot)))
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as refused:
        Result.model_validate_json(json.dumps(document), strict=True)
    assert refused.value.errors()[0]["loc"] == path


def test_a_negative_auto_cancel_is_refused_by_the_checker_and_the_plan_loader(project,
                                                                             tmp_path):
    """Found by the long plan campaign: `auto_cancel_days: -1` loaded (day offsets may be
    negative), and the engines disagreed: the fast engine reads -1 as "no auto-cancel", the
    reference engine set a date in the past. The language refused nothing either."""
    from routing_dsl.checker import Workspace
    text = ('declare queue _NA_, PARK\ngroup "G" for store STORE {\n  routing "R" {\n'
            '    filter { queue == _NA_ }\n    rule "r" {\n      assign single\n'
            '      when unfilled { move to queue PARK auto_cancel after -1 days }\n    }\n'
            '  }\n}\n')
    [error] = [d for d in Workspace().check_text(text, "neg.route").diagnostics if d.is_error]
    assert error.code == "RT307" and error.message == "`auto_cancel after` cannot be negative"
    document = json.loads(project.plan.to_json())
    document["groups"][0]["routings"][0]["rules"][1]["actions"]["auto_cancel_days"] = -1
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(app.InputError) as refused:
        app.load_plan(path)
    assert str(refused.value) == (f"{path}: invalid plan at groups.0.routings.0.rules.1."
                                  "actions.auto_cancel_days: -1 is out of range (0 to 3,650)")


def test_a_plan_value_of_the_wrong_json_type_is_refused_naming_it(project, tmp_path):
    """Found by the long plan campaign: `"auto_cancel_days": "-1"` (a string) was read as the
    number -1: the plan loader converted JSON types as Python would."""
    document = json.loads(project.plan.to_json())
    document["groups"][0]["routings"][0]["rules"][1]["actions"]["auto_cancel_days"] = "3"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(app.InputError) as refused:
        app.load_plan(path)
    assert str(refused.value) == (f"{path}: invalid plan at groups.0.routings.0.rules.1."
                                  "actions.auto_cancel_days: Input should be a valid integer")


def test_an_allocation_of_nothing_is_refused_by_the_result_contract(project):
    """Found by the long result campaign: the schema allowed an allocation of quantity 0
    (no engine writes one), and two of them for one item could not both be recorded (the
    outbox's deduplication key repeated)."""
    from routing_dsl.engine import route
    document = json.loads(dump_result(route(project.plan, project.snapshot)))
    document["allocations"][0]["quantity"] = 0
    with pytest.raises(ValidationError) as refused:
        Result.model_validate_json(json.dumps(document), strict=True)
    assert refused.value.errors()[0]["loc"] == ("allocations", 0, "quantity")


@pytest.mark.parametrize("field, value", [("auto_cancel_date", ""),
                                          ("auto_cancel_date", "NaN"),
                                          ("auto_cancel_date", "-1"),
                                          ("auto_cancel_date", "1700000000")])
def test_a_result_date_that_is_not_one_is_refused_by_the_result_contract(project, field,
                                                                         value):
    """Found by the long result campaign: the schema took any string for an auto-cancel
    date, and recording the result failed reading it (ValueError: Invalid isoformat
    string). Then a string of digits: pydantic read "-1" as a Unix time, the run store
    did not."""
    document = {"format": "routing-result/1", "allocations": [], "batches": [],
                "inventory_after": [], "facility_counts_after": [], "warnings": [],
                "unfillable": [{"order": "O-1", "ship_group": "00001", "item": "00001",
                                "product": "P", "quantity": 1, "routing": "R", "rule": "r",
                                "action": "auto_cancel_set", "queue": "Q", field: value}]}
    with pytest.raises(ValidationError) as refused:
        Result.model_validate_json(json.dumps(document), strict=True)
    assert refused.value.errors()[0]["loc"] == ("unfillable", 0, field)


@pytest.mark.parametrize("model, field", [
    ("Allocation", "shipping_cost"), ("Allocation", "transit_days"),
    ("Allocation", "delivery_date"), ("RunRecord", "shipping_cost"),
    ("RunRecord", "packages"), ("RunRecord", "split_orders"), ("RunRecord", "late_items")])
def test_fields_every_engine_writes_are_required_by_the_result_schema(model, field):
    """Found by the result campaign: the schema let a result leave these out (with a
    default), and the run store's recording read them with `row[field]` (KeyError)."""
    schema = Result.model_json_schema()
    assert field in schema["$defs"][model]["required"]


def test_every_reader_reads_the_engines_result(project):
    from routing_dsl.engine import route
    from routing_dsl.ops.store import RunStore
    store = RunStore("sqlite://")
    store.upgrade()
    result = route(project.plan, project.snapshot)
    Result.model_validate(result)
    read_result(json.loads(dump_result(result)), result, store, project)
    assert store.batches(10)
    store.dispose()


def test_result_documents_come_from_the_schema(project):
    valid = [d for d, note in result_documents(random.Random(2), project, 40, mutate_share=0)]
    for document in valid:
        Result.model_validate_json(json.dumps(document), strict=True)


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(3))
def test_generated_plans_long(project, seed):
    no_findings(plan_campaign(1000 + seed, 4000, project))


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(3))
def test_generated_results_long(project, seed):
    no_findings(result_campaign(1000 + seed, 3000, project, "sqlite://"))
