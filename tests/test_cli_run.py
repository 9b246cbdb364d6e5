"""`routing compile | run | explain | schema` as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.plan import PLAN_VERSION

from .conftest import GOLDEN, ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"
SOURCE = str(EXAMPLE / "omnichannel.route")
SNAPSHOT = str(EXAMPLE / "snapshot.json")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_run_writes_the_result_and_prints_a_summary(tmp_path: Path):
    out = tmp_path / "result.json"
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--out", str(out), "--pretty")
    assert result.exit_code == 0, result.output
    assert "routing 'Web orders': 6 items attempted, 5 brokered" in result.stdout
    assert "rule 'Nearest stores split the order': 3 allocations" in result.stdout
    document = json.loads(out.read_text())
    assert document["format"] == "routing-result/1"
    assert out.read_text() == (EXAMPLE / "expected.json").read_text()


def test_run_without_out_prints_json_and_summary_on_stderr():
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["format"] == "routing-result/1"
    assert "allocations" in result.stderr


def test_compiled_plan_runs_like_the_source(tmp_path: Path):
    plan = tmp_path / "plan.json"
    assert invoke("compile", SOURCE, "-o", str(plan)).exit_code == 0
    from_plan = invoke("run", str(plan), "--snapshot", SNAPSHOT)
    from_source = invoke("run", SOURCE, "--snapshot", SNAPSHOT)
    assert from_plan.stdout == from_source.stdout


def test_a_plan_of_another_version_is_refused(tmp_path: Path):
    plan = tmp_path / "plan.json"
    invoke("compile", SOURCE, "-o", str(plan))
    document = json.loads(plan.read_text())
    document["plan_version"] = PLAN_VERSION + 1
    plan.write_text(json.dumps(document))
    result = invoke("run", str(plan), "--snapshot", SNAPSHOT)
    assert result.exit_code == 2
    assert "plan version 2 is not supported" in result.stderr
    assert "recompile" in result.stderr


def test_compile_refuses_a_file_with_errors(tmp_path: Path):
    out = tmp_path / "plan.json"
    result = invoke("compile", str(GOLDEN / "diagnostics" / "RT201.route"), "-o", str(out))
    assert result.exit_code == 1
    assert "RT201" in result.stdout
    assert not out.exists()


def test_bad_snapshot_names_file_path_and_problem_and_writes_nothing(tmp_path: Path):
    snapshot = json.loads(Path(SNAPSHOT).read_text())
    snapshot["orders"][3]["ship_groups"][0]["items"][0]["quantity"] = -2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(snapshot))
    out = tmp_path / "result.json"
    result = invoke("run", SOURCE, "--snapshot", str(bad), "--out", str(out))
    assert result.exit_code == 2
    assert f"{bad}: orders[3].ship_groups[0].items[0].quantity: must be > 0, got -2" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_top_level_key_is_refused(tmp_path: Path):
    snapshot = json.loads(Path(SNAPSHOT).read_text())
    snapshot["order"] = []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(snapshot))
    result = invoke("run", SOURCE, "--snapshot", str(bad))
    assert result.exit_code == 2
    assert "order: unknown field" in result.stderr


def test_snapshot_that_is_not_json(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    result = invoke("run", SOURCE, "--snapshot", str(bad))
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr


def test_unknown_group_is_a_usage_error():
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--group", "Nope")
    assert result.exit_code == 2
    assert "no group named 'Nope'" in result.stderr


def test_explain_says_where_an_order_went_and_why_not_elsewhere():
    result = invoke("explain", SOURCE, "--snapshot", SNAPSHOT, "--order", "O-1002",
                    "--facility", "WH_NJ")
    assert result.exit_code == 0, result.output
    assert "rule 'Nearest warehouse ships everything'" in result.stdout
    assert "filled -> WH_CA" in result.stdout
    assert "not WH_NJ: assign single: one facility must fill every item" in result.stdout


def test_explain_names_the_condition_and_values_that_excluded_a_facility():
    result = invoke("explain", SOURCE, "--snapshot", SNAPSHOT, "--order", "O-1003",
                    "--facility", "ST_OUT")
    assert "not ST_OUT: facility_group in [STORES, FLAGSHIP_STORES]" in result.stdout
    assert 'facility_groups=["CLEARANCE_STORES", "US_STORES"]' in result.stdout


def test_explain_unknown_order():
    result = invoke("explain", SOURCE, "--snapshot", SNAPSHOT, "--order", "NOPE")
    assert result.exit_code == 2


def test_schemas_are_json_schema():
    for kind in ("snapshot", "result", "plan"):
        result = invoke("schema", kind)
        assert result.exit_code == 0
        assert "properties" in json.loads(result.stdout)


def test_snapshot_folder_with_ndjson_and_csv(tmp_path: Path):
    snapshot = json.loads(Path(SNAPSHOT).read_text())
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps(
        {k: snapshot[k] for k in ("format", "now", "timezone")}))
    for name in ("product_stores", "facilities", "products", "shipment_methods"):
        (folder / f"{name}.json").write_text(json.dumps(snapshot[name]))
    (folder / "orders.ndjson").write_text("\n".join(json.dumps(o) for o in snapshot["orders"]))
    lines = ["facility,product,atp,minimum_stock,allow_brokering,sales_velocity"]
    for row in snapshot["inventory"]:
        velocity = row.get("sales_velocity")
        lines.append(f"{row['facility']},{row['product']},{row['atp']},{row['minimum_stock']},"
                     f"{str(row['allow_brokering']).lower()},{'' if velocity is None else velocity}")
    (folder / "inventory.csv").write_text("\n".join(lines) + "\n")
    from_folder = invoke("run", SOURCE, "--snapshot", str(folder))
    from_file = invoke("run", SOURCE, "--snapshot", SNAPSHOT)
    assert from_folder.exit_code == 0, from_folder.output
    assert from_folder.stdout == from_file.stdout


def test_output_into_a_missing_folder_is_an_input_error(tmp_path: Path):
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--out",
                    str(tmp_path / "missing" / "result.json"))
    assert result.exit_code == 2
    assert "cannot write here" in result.stderr


def test_run_refuses_files_that_are_neither_source_nor_plan():
    result = invoke("run", str(ROOT / "README.md"), "--snapshot", SNAPSHOT)
    assert result.exit_code == 2
    assert "expected a .route file or a compiled plan" in result.stderr


def test_an_internal_error_is_reported_without_a_traceback(monkeypatch):
    import routing_dsl.engine as engine

    def broken(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(engine, "route", broken)
    monkeypatch.delenv("ROUTING_DEBUG", raising=False)
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT)
    assert result.exit_code == 3
    assert "internal error: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.output


def test_output_cut_short_by_a_closed_pipe_exits_quietly():
    import subprocess
    import sys

    # like `routing bench | head -1`: the reader is gone before the second report is printed
    process = subprocess.Popen([sys.executable, "-m", "routing_dsl", "bench", "--facilities",
                                "20", "--ship-groups", "50", "--products", "20", "--rounds", "1",
                                "--lsp-lines", "50", "--hostile-size", "1000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().startswith(b"50 ship groups")
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait() == 0
    assert "internal error" not in stderr and "Traceback" not in stderr


def test_ranked_below_carries_both_facilities_sort_keys():
    from routing_dsl.interpreter import run_plan

    from .builders import facility, item, order, rule_plan, stock, world
    snap = world([facility("NEAR", 40.72, -74.0), facility("FAR", 41.5, -74.0)],
                 [stock("NEAR", "P", 5), stock("FAR", "P", 5)],
                 [order("O1", [item("1", "P", 1)])])
    result = run_plan(rule_plan("assign single sort by distance"), snap, explain=True,
                      explain_facilities={"FAR"})
    [rule] = result["explanations"][0]["rules"]
    assert rule["chosen"][0]["facility"] == "NEAR"
    [far] = rule["facilities"]
    reason = far["excluded_by"]
    assert reason["condition"] == "ranked below the chosen facilities"
    assert reason["values"]["sort_keys"]["distance"] > reason["values"]["chosen"]["NEAR"][
        "distance"]


@pytest.mark.parametrize("unit", ["mi", "km"])
def test_explained_distance_is_the_allocation_distance(unit):
    """An explanation's distance comes from the evaluation that chose the facility: the same
    figure, in the rule's unit, as the allocation's (it was once divided by 1.609 again)."""
    from routing_dsl.interpreter import run_plan

    from .builders import facility, item, order, rule_plan, stock, world
    snap = world([facility("NEAR", 40.72, -74.0), facility("FAR", 34.05, -118.24)],
                 [stock("FAR", "P", 5)], [order("O1", [item("1", "P", 1)])])
    result = run_plan(rule_plan(f"assign single inventory {{ distance < 5000 {unit} }} "
                                "sort by distance"), snap, explain=True)
    [allocation] = result["allocations"]
    [chosen] = result["explanations"][0]["rules"][0]["chosen"]
    assert chosen["sort_keys"]["distance"] == allocation["distance"]
    assert chosen["sort_keys"]["distance_unit"] == allocation["distance_unit"] == unit
    assert allocation["distance"] > (3900 if unit == "km" else 2400)


def test_explain_says_why_an_order_was_not_routed(tmp_path: Path):
    document = json.loads(Path(SNAPSHOT).read_text())
    first, second, third = document["orders"][:3]
    first["status"] = "CREATED"
    second["ship_groups"][0]["facility"] = "WH_NJ"
    third["sales_channel"] = "POS_CHANNEL"
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document))
    expected = {first["id"]: "the order's status is 'CREATED', not 'APPROVED'",
                second["id"]: "is at 'WH_NJ', which is not a queue",
                third["id"]: "fails the filter `sales_channel in"}
    for order_id, reason in expected.items():
        result = invoke("explain", SOURCE, "--snapshot", str(path), "--order", order_id)
        assert result.exit_code == 0, result.output
        assert "no routing picked it up" in result.stdout
        assert reason in result.stdout, result.stdout


def test_run_explain_summarises_and_details_only_asked_facilities(tmp_path: Path):
    out = tmp_path / "r.json"
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--explain", "--facility", "WH_NJ",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    for unit in json.loads(out.read_text())["explanations"]:
        for rule in unit["rules"]:
            assert {f["facility"] for f in rule.get("facilities", [])} <= {"WH_NJ"}
            assert all(len(group["examples"]) <= 3 for group in rule["not_chosen"])


def test_the_summary_shows_what_the_packages_cost(tmp_path: Path):
    folder = ROOT / "examples" / "shipping_cost"
    result = invoke("run", str(folder / "shipping_cost.route"), "--snapshot",
                    str(folder / "snapshot.json"), "--out", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "r.json").read_text())
    totals = document["batches"][0]["totals"]
    assert (f"shipping: {totals['packages']} packages, shipping {totals['shipping_cost']:.2f}, "
            f"{totals['split_orders']} split order") in result.stdout
    plain = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--out", str(tmp_path / "p.json"))
    assert "shipping: 5 packages, 1 split order, 0 late items" in plain.stdout


def test_the_summary_counts_unfilled_items_per_group(tmp_path):
    # three groups with a routing of the same name: each showed the total (4) as its own
    stores = ["A", "B", "C"]
    rules = "declare queue _NA_, PARK\n" + "".join(
        f'group "G{s}" for store {s} {{\n  routing "Web orders" {{\n'
        '    filter { queue == _NA_ }\n    rule "r" {\n      assign partial\n'
        '      when unfilled { move to queue PARK }\n    }\n  }\n}\n' for s in stores)
    (tmp_path / "rules.route").write_text(rules)

    def order(oid, store, products):
        return {"id": oid, "product_store": store, "order_date": "2026-11-22T10:00:00",
                "ship_groups": [{"id": "00001", "facility": "_NA_",
                                 "ship_to": {"lat": 40.7, "lon": -74.0},
                                 "items": [{"id": f"{n:05}", "product": p, "quantity": 1}
                                           for n, p in enumerate(products, start=1)]}]}
    snapshot = {
        "format": "routing-snapshot/1", "now": "2026-11-23T09:30:00+00:00", "timezone": "UTC",
        "product_stores": [{"id": s} for s in stores],
        "facilities": [{"id": "WH", "lat": 40.7, "lon": -74.0, "product_stores": stores},
                       {"id": "_NA_", "virtual": True, "product_stores": stores},
                       {"id": "PARK", "virtual": True, "product_stores": stores}],
        "products": [{"id": "IN"}, {"id": "OUT"}],
        "inventory": [{"facility": "WH", "product": "IN", "atp": 10}],
        "orders": [order("O-A", "A", ["IN"]), order("O-B", "B", ["OUT", "OUT", "OUT"]),
                   order("O-C", "C", ["IN", "OUT"])]}
    (tmp_path / "snapshot.json").write_text(json.dumps(snapshot))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "rules.route"), "--snapshot",
                                       str(tmp_path / "snapshot.json"), "--out",
                                       str(tmp_path / "result.json")])
    assert result.exit_code == 0, result.output
    groups = result.stdout.split("group ")[1:]
    assert [("unfilled items: " in g) and g.split("unfilled items: ")[1].split("\n")[0]
            for g in groups] == [False, "3 moved", "1 moved"]
    assert "routing 'Web orders': 1 item attempted" in groups[0]  # not "1 items"
    assert "routing 'Web orders': 3 items attempted" in groups[1]


def test_explain_shows_an_optimised_orders_rule_choice_beside_the_optimum_with_costs():
    """Issue 24: `routing explain --order` on an order `optimize` changed shows what the
    rules chose and what the optimum ships, each with its cost."""
    example = ROOT / "examples" / "optimize"
    result = invoke("explain", str(example / "optimize.route"), "--snapshot",
                    str(example / "snapshot.json"), "--order", "P-1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "    optimisation (apply): the rules' choice costs 11.03, the optimum's 12.19" \
        in lines
    assert ("      rules: ST_NYC (rule 'Nearest facility') ships 00001 x1 for 11.03, "
            "arriving 2026-11-24") in lines
    assert ("      optimum: ST_BOS (rule 'Nearest facility') ships 00001 x1 for 12.19, "
            "arriving 2026-11-25") in lines
    # what was shipped is the optimum's (mode apply)
    assert "  allocated: item 00001 x1 -> ST_BOS (rule 'Nearest facility')" in lines
