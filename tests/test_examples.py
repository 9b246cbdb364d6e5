"""Every example runs end to end against its snapshot and gives its expected result."""

from __future__ import annotations


import pytest

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.interpreter import run_plan
from routing_dsl.plan import load_plan
from routing_dsl.result import Result, dump_result
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
    golden(folder / "expected.json", dump_result(result, pretty=True).decode())


@pytest.mark.parametrize("folder", EXAMPLES, ids=lambda p: p.name)
def test_compiled_plan_runs_the_same_as_the_source(folder):
    plan = compiled(folder)
    reloaded = load_plan(plan.to_json())
    snapshot = load_snapshot(folder / "snapshot.json")
    assert dump_result(run_plan(reloaded, snapshot)) == dump_result(run_plan(plan, snapshot))


def test_every_example_has_a_snapshot():
    routes = {p.parent for p in (ROOT / "examples").glob("*/*.route")}
    assert routes == set(EXAMPLES)


def test_explanations_count_every_facility_not_chosen_under_a_reason():
    folder = ROOT / "examples" / "omnichannel"
    snapshot = load_snapshot(folder / "snapshot.json")
    result = run_plan(compiled(folder), snapshot, explain=True,
                      explain_facilities={f.id for f in snapshot.facilities})
    Result.model_validate(result)
    for unit in result["explanations"]:
        store = next(o.product_store for o in snapshot.orders if o.id == unit["order"])
        serving = {f.id for f in snapshot.facilities if not f.virtual and store in
                   f.product_stores}
        for rule in unit["rules"]:
            chosen = {c["facility"] for c in rule["chosen"]}
            counted = sum(group["count"] for group in rule["not_chosen"])
            assert counted + len(chosen) == len(serving)
            detailed = {f["facility"]: f for f in rule["facilities"]}
            assert set(detailed) == serving
            for group in rule["not_chosen"]:
                for example in group["examples"]:
                    assert detailed[example]["excluded_by"]["condition"] == group["condition"]
