"""Every example runs end to end against its snapshot and gives its expected result."""

from __future__ import annotations

import json

import pytest

from routing_dsl.checker import Workspace
from routing_dsl.cli import dump_result
from routing_dsl.compiler import compile_program
from routing_dsl.interpreter import run_plan
from routing_dsl.plan import load_plan
from routing_dsl.result import Result
from routing_dsl.snapshot import load_snapshot

from .conftest import ROOT

EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/snapshot.json"))


def compiled(folder):
    result = Workspace().check_path(folder / f"{folder.name}.route",
                                    name=f"examples/{folder.name}/{folder.name}.route")
    assert not result.has_errors
    return compile_program(result.program)


@pytest.mark.parametrize("folder", EXAMPLES, ids=lambda p: p.name)
def test_example_result_matches_expected(folder, golden):
    plan = compiled(folder)
    result = run_plan(plan, load_snapshot(folder / "snapshot.json"))
    Result.model_validate(result)
    golden(folder / "expected.json", dump_result(result))


@pytest.mark.parametrize("folder", EXAMPLES, ids=lambda p: p.name)
def test_compiled_plan_runs_the_same_as_the_source(folder):
    plan = compiled(folder)
    reloaded = load_plan(plan.to_json())
    snapshot = load_snapshot(folder / "snapshot.json")
    assert dump_result(run_plan(reloaded, snapshot)) == dump_result(run_plan(plan, snapshot))


def test_every_example_has_a_snapshot():
    routes = {p.parent for p in (ROOT / "examples").glob("*/*.route")}
    assert routes == set(EXAMPLES)


def test_explanations_validate_and_name_a_reason_for_every_facility_not_chosen():
    folder = ROOT / "examples" / "omnichannel"
    result = run_plan(compiled(folder), load_snapshot(folder / "snapshot.json"), explain=True)
    Result.model_validate(result)
    for unit in result["explanations"]:
        for rule in unit["rules"]:
            for facility in rule["facilities"]:
                assert facility["chosen"] or facility["excluded_by"]["condition"]
    json.dumps(result)
