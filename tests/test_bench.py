"""Benchmarks (pytest-benchmark; run with `pytest tests/test_bench.py --benchmark-enable`).
By default they run once, as smoke tests of the benchmark code."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from routing_dsl.bench.suite import bench_plan, generate
from routing_dsl.cli import main
from routing_dsl.interpreter import run_plan
from routing_dsl.bench.scenarios import PLAN, Scenario
from routing_dsl.bench.scenarios import generate as generate_scenario
from routing_dsl.snapshot import parse_snapshot
from routing_dsl.bench.sqlbaseline import Unsupported, check_supported, sql_baseline

from .builders import plan as build_plan
from .conftest import ROOT


def test_bench_routing_throughput(benchmark):
    snapshot = generate(facilities=300, ship_groups=1000, products=500)
    plan = bench_plan()
    result = benchmark(run_plan, plan, snapshot)
    assert result["allocations"]


def test_sql_baseline_allocates_exactly_as_the_engine(benchmark):
    snapshot = generate(facilities=150, ship_groups=800, products=200)
    result = run_plan(bench_plan(), snapshot)
    baseline = benchmark(sql_baseline, bench_plan(), snapshot)
    assert len(baseline) > 100
    assert baseline == rows(result)


def rows(result: dict) -> list[tuple]:
    return [(a["order"], a["ship_group"], a["item"], a["facility"], a["quantity"], a["rule"])
            for a in result["allocations"]]


def test_sql_baseline_routes_the_scenario_plan_exactly_as_the_engine():
    """Three routings with shipment-method and priority filters, priority sorts, single and
    partial rules, safety stock and a move to a queue."""
    from routing_dsl.checker import Workspace
    from routing_dsl.compiler import compile_program
    snapshot = parse_snapshot(generate_scenario(Scenario(orders=600, facilities=60, skus=300)))
    the_plan = compile_program(Workspace().check_text(PLAN, "bench.route").program)
    result = run_plan(the_plan, snapshot)
    assert {a["routing"] for a in result["allocations"]} == {"Express", "Priority", "Standard"}
    assert any(u["action"] == "moved" for u in result["unfillable"])
    assert sql_baseline(the_plan, snapshot) == rows(result)


def test_sql_baseline_refuses_what_it_does_not_implement():
    import pytest
    for body in ('assign partial sort by facility_sequence inventory { facility_group == A }',
                 'assign partial inventory { shipment_threshold 5 }'):
        the_plan = build_plan(f'routing "R" {{ filter {{ queue == _NA_ }} rule "r" {{ {body} }} }}')
        with pytest.raises(Unsupported):
            check_supported(the_plan)


def test_bench_command_reports_a_ratio():
    result = CliRunner().invoke(main, ["bench", "--facilities", "50", "--ship-groups", "100",
                                       "--lsp-lines", "200", "--hostile-size", "5000",
                                       "--products", "100", "--rounds", "1",
                                       "--fuzz-inputs", "20"])
    assert result.exit_code == 0, result.output
    assert "x the baseline's throughput" in result.stdout
    hostile = result.stdout[result.stdout.index("hostile inputs from each surface"):]
    from routing_dsl.fuzz import SURFACES
    for surface in SURFACES:  # inputs, accepted, refused, findings (none)
        [row] = [line.split() for line in hostile.splitlines()[2:]
                 if line.split()[:1] == [surface]]
        assert row[1] == "20" and int(row[2]) + int(row[3]) == 20 and row[4] == "0", row


def test_scenarios_are_seeded_valid_and_realistic():
    from routing_dsl.bench.scenarios import Scenario, generate
    from routing_dsl.snapshot import parse_snapshot
    scenario = Scenario(orders=300, facilities=60, skus=500)
    document = generate(scenario)
    assert generate(scenario) == document
    assert generate(Scenario(orders=300, facilities=60, skus=500, seed=8)) != document
    snapshot = parse_snapshot(document)
    warehouses = [f for f in snapshot.facilities if "WAREHOUSES" in f.groups]
    stores = [f for f in snapshot.facilities if "STORES" in f.groups]
    assert len(warehouses) == 3 and len(stores) == 57
    per_facility = {}
    for row in snapshot.inventory:
        per_facility[row.facility] = per_facility.get(row.facility, 0) + 1
    assert min(per_facility[f.id] for f in warehouses) > 5 * max(per_facility[f.id]
                                                                  for f in stores)
    lines = [len(g.items) for o in snapshot.orders for g in o.ship_groups]
    assert min(lines) == 1 and max(lines) <= 6
    assert any(len(o.ship_groups) == 2 for o in snapshot.orders)


def test_bench_scenario_reports_json_and_gen_snapshot_writes_it(tmp_path):
    import json
    result = CliRunner().invoke(main, ["bench", "--scenario", "small", "--orders", "200",
                                       "--skus", "300", "--facilities", "40", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("ship_groups_per_s", "baseline_ship_groups_per_s", "speedup", "peak_rss_mb",
                "load_s", "compile_ms", "run_s", "json_load_s"):
        assert key in report
    assert report["run_vs_json_load"] == round(report["run_s"] / report["json_load_s"], 2)
    assert 0 < report["json_load_cpu_s"] and 0 < report["run_cpu_s"]
    assert report["orders"] == 200 and report["facilities"] == 40 and report["allocations"] > 0
    out = tmp_path / "snap.json"
    written = CliRunner().invoke(main, ["gen-snapshot", "--scenario", "small", "--orders", "50",
                                        "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert len(json.loads(out.read_text())["orders"]) == 50


def test_the_service_load_generator_reports_latency_and_throughput():
    from routing_dsl.bench.suite import service_latency
    report = service_latency(facilities=40, decisions=20, clients=2, commits=80,
                             commit_clients=4, workers=(2,))
    assert "p99" in report and "decisions/s" in report and "ms a decision" in report
    # two workers, each holding half the connections (drive spreads them and checks it)
    assert "2 workers (routing serve --workers 2)" in report
    assert report.count("committed decisions/s from 4 clients") == 2 and "ms a commit" in report


def test_the_stores_bench_compares_executors_on_the_same_bytes():
    from routing_dsl.bench.suite import stores_bench
    import importlib.util
    report = stores_bench(stores=3, orders=60)
    executors = 3 if importlib.util.find_spec("ray") else 2  # local, process (and Ray)
    assert "3 partitions" in report and report.count("the same bytes") == executors


def test_the_load_generator_checks_every_answer_over_keep_alive_connections(tmp_path):
    """Against a real `routing serve`: every request is answered on its client's one
    connection (the answers are read to their Content-Length, so none bleeds into the next),
    and an answer other than 200 stops the load with the server's status and words."""
    import orjson

    from routing_dsl.ops.store import RunStore
    from routing_dsl.service.launch import serving
    from routing_dsl.bench.loadgen import LoadError, drive, encode
    example = ROOT / "examples" / "omnichannel"
    document = json.loads((example / "snapshot.json").read_text())
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(db)  # migrated in this process: the served process is what is driven
    store.upgrade()
    store.dispose()
    with serving([str(example / "omnichannel.route"), "--source",
                  str(example / "snapshot.json"), "--db", db], cwd=example) as served:
        address = ("127.0.0.1", int(served.base.rsplit(":", 1)[1]))
        bodies = [orjson.dumps({"order": o}) for o in document["orders"]] * 5
        load = drive(address, encode("127.0.0.1", "/v1/decisions", bodies), clients=3)
        assert len(load.latencies) == len(bodies) and load.rate > 0
        assert 0 < load.percentile(0.5) <= load.percentile(0.99)
        bad = encode("127.0.0.1", "/v1/decisions", [bodies[0], b'{"order": 1}'])
        with pytest.raises(LoadError, match="HTTP 422.*order"):
            drive(address, bad)


def test_the_console_bench_times_every_page_against_a_filled_store():
    result = CliRunner().invoke(main, ["bench", "--console", "--console-batches", "400",
                                       "--console-history", "4000"])
    assert result.exit_code == 0, result.output
    assert "400 batches, 4,000 history rows" in result.stdout
    for page in ("dashboard, 90 days", "orders, by id prefix", "queue", "stock, one facility"):
        assert page in result.stdout
    assert "recording a batch of 5,000 allocations" in result.stdout


def test_the_startup_bench_reports_each_command_against_an_empty_python():
    from routing_dsl.bench.suite import startup_costs
    report = startup_costs(rounds=1)
    assert "as a multiple of `python -c pass`" in report
    for name in ("routing --help", "routing check", "routing run", "routing lsp"):
        assert re.search(rf"{name}: +\d+ ms +\( *\d+\.\dx", report), (name, report)
    assert "target 10x" in report and "target 25x" in report and "target 300 ms" in report
