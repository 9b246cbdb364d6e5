"""Scale-out: partitions by the store–facility graph, and results byte-identical to one run
whatever the executor and the number of workers."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.interpreter import run_plan
from routing_dsl.result import dump_result
from routing_dsl.scaleout import partitions, route_partitioned
from routing_dsl.snapshot import parse_snapshot

from .builders import NOW, facility, item, order, stock

STORES = ["S1", "S2", "S3", "S4"]


def multi_store_plan(stores=STORES, paused=()):
    groups = "\n".join(
        f'group "G-{s}" for store {s} {{\n routing "R" {{ filter {{ queue == _NA_ }}\n'
        f'  rule "near" {{ assign partial inventory {{ distance <= 300 mi }} sort by distance }}\n'
        f'  rule "any" {{ assign single inventory {{ facility_group == A }} '
        f'when unfilled {{ move to queue PARK }} }} }} }}' for s in stores)
    text = "declare queue _NA_, PARK\ndeclare facility_group A\n" + groups
    result = Workspace().check_text(text, name="stores.route")
    assert not [d for d in result.diagnostics if d.is_error], result.diagnostics
    return compile_program(result.program)


def multi_store_world(serving: list[list[str]], orders_of: list[str], lower: int = 0):
    facilities = [facility(f"F{k}", 40.0 + k / 3, -74.0 + k / 4, groups={"A": 1},
                           limit=2 if k % 3 == 0 else None, stores=stores)
                  for k, stores in enumerate(serving)]
    queues = [{"id": q, "virtual": True, "product_stores": STORES} for q in ("_NA_", "PARK")]
    inventory = [stock(f"F{k}", product, 3 + (k + n) % 4 - lower)
                 for k in range(len(serving)) for n, product in enumerate(["P1", "P2"])]
    orders = [order(f"O{n}", [item("00001", "P1", 1 + n % 3), item("00002", "P2", 2)],
                    store=store, ship_to=(40.5 + n / 10, -73.9), date=f"2026-11-2{n % 9}T10:00:00-05:00")
              for n, store in enumerate(orders_of)]
    return parse_snapshot({
        "format": "routing-snapshot/1", "now": NOW, "timezone": "America/New_York",
        "product_stores": [{"id": s} for s in STORES], "facilities": facilities + queues,
        "products": [{"id": "P1"}, {"id": "P2"}], "inventory": inventory, "orders": orders})


def test_stores_sharing_a_facility_route_together():
    snapshot = multi_store_world([["S1"], ["S1", "S2"], ["S3"], ["S4"], ["S4"]], STORES * 2)
    found = partitions(multi_store_plan(), snapshot)
    assert [p.stores for p in found] == [("S1", "S2"), ("S3",), ("S4",)]
    assert found[0].groups == ("G-S1", "G-S2") and found[0].facilities == ("F0", "F1")
    assert [p.orders for p in found] == [4, 2, 2]


def test_every_executor_and_worker_count_gives_the_bytes_of_one_run():
    snapshot = multi_store_world([["S1"], ["S1", "S2"], ["S3"], ["S3", "S4"], ["S4"], ["S2"]],
                                 ["S1", "S2", "S3", "S4", "S4", "S1", "S3", "S2"] * 3)
    plan = multi_store_plan()
    one_run = dump_result(run_plan(plan, snapshot))
    assert len(partitions(plan, snapshot)) == 2
    for executor, jobs in (("local", 1), ("process", 1), ("process", 2)):
        for engine in ("reference", "fast"):
            merged = route_partitioned(plan, snapshot, executor=executor, jobs=jobs,
                                       engine=engine)
            assert dump_result(merged) == one_run, (executor, jobs, engine)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(st.sampled_from(STORES), min_size=1, max_size=2, unique=True),
                min_size=1, max_size=6),
       st.lists(st.sampled_from(STORES), min_size=1, max_size=12),
       st.integers(0, 3), st.lists(st.sampled_from(STORES), max_size=4, unique=True))
def test_partitioned_runs_equal_one_run(serving, orders_of, lower, routed):
    plan = multi_store_plan(routed or STORES)
    snapshot = multi_store_world(serving, orders_of, lower)
    assert dump_result(route_partitioned(plan, snapshot, engine="reference")) == \
        dump_result(run_plan(plan, snapshot))


def test_the_example_runs_the_same_on_a_process_pool_and_is_recorded(tmp_path):
    from click.testing import CliRunner

    from routing_dsl.cli import main

    from .conftest import ROOT
    folder = ROOT / "examples" / "multi_store"
    base = ["run", str(folder / "multi_store.route"), "--snapshot", str(folder / "snapshot.json"),
            "--out", "-"]
    local = CliRunner().invoke(main, base)
    pooled = CliRunner().invoke(main, [*base, "--executor", "process", "--jobs", "2"])
    assert local.exit_code == pooled.exit_code == 0, pooled.output
    assert pooled.stdout == local.stdout
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
    recorded = CliRunner().invoke(main, [*base, "--executor", "process", "--db", db])
    assert recorded.exit_code == 0, recorded.output
    assert "recorded 3 batches" in recorded.stderr
    refused = CliRunner().invoke(main, [*base, "--executor", "process", "--explain"])
    assert refused.exit_code == 2 and "without explanations" in refused.stderr
    shown = CliRunner().invoke(main, ["partitions", str(folder / "multi_store.route"),
                                      "--snapshot", str(folder / "snapshot.json")])
    assert shown.stdout.splitlines() == [
        "partition 1: stores BRAND_A, BRAND_B; groups Brand A, Brand B; 5 facilities, 7 orders",
        "partition 2: stores OUTLET; groups Outlet; 2 facilities, 3 orders"]


def test_ray_tasks_give_the_bytes_of_one_run():
    import pytest
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[dev]')")
    snapshot = multi_store_world([["S1"], ["S1", "S2"], ["S3"], ["S4"]], STORES * 3)
    plan = multi_store_plan()
    merged = route_partitioned(plan, snapshot, executor="ray", engine="fast")
    assert dump_result(merged) == dump_result(run_plan(plan, snapshot))


def test_without_ray_the_ray_executor_says_how_to_get_it(monkeypatch):
    import sys

    from click.testing import CliRunner

    from routing_dsl.cli import main

    from .conftest import ROOT
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    folder = ROOT / "examples" / "multi_store"
    result = CliRunner().invoke(main, ["run", str(folder / "multi_store.route"), "--snapshot",
                                       str(folder / "snapshot.json"), "--executor", "ray"])
    assert result.exit_code == 2
    assert "pip install 'routing-dsl[ray]'" in result.stderr


def test_a_worker_killed_mid_run_fails_the_batches_cleanly_and_a_rerun_routes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import orjson

    from routing_dsl.bench.suite import stores_scenario
    from routing_dsl.ops.store import RunStore
    text, document = stores_scenario(stores=6, orders=1500)
    (tmp_path / "stores.route").write_text(text)
    (tmp_path / "snapshot.json").write_bytes(orjson.dumps(document))
    from click.testing import CliRunner

    from routing_dsl.cli import main
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    routing = [sys.executable, "-m", "routing_dsl"]
    # only the run to kill and its rerun need processes of their own; the rest run in this one
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", db]).exit_code == 0
    command = [*routing, "run", str(tmp_path / "stores.route"), "--snapshot",
               str(tmp_path / "snapshot.json"), "--db", db, "--executor", "process",
               "--jobs", "2", "--engine", "reference", "--out", str(tmp_path / "result.json")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def workers() -> list[int]:
        """The pool's worker processes (spawned children, not the resource tracker)."""
        found = []
        for task in os.listdir(f"/proc/{process.pid}/task"):
            with open(f"/proc/{process.pid}/task/{task}/children") as children:
                for pid in children.read().split():
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        line = cmdline.read()
                    if b"spawn_main" in line and b"resource_tracker" not in line:
                        found.append(int(pid))
        return found
    deadline = time.monotonic() + 120
    while not workers():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(workers()[0], signal.SIGKILL)
    _, errors = process.communicate(timeout=120)
    assert process.returncode != 0
    assert b"Traceback" not in errors
    store = RunStore(db)
    assert {b.status for b in store.batches()} == {"failed"}
    assert store.history() == [] and not (tmp_path / "result.json").exists()
    rerun = subprocess.run(command, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    # the rerun decided what one process decides on the snapshot (the killed run recorded
    # nothing to hold back), and a run recorded after it finds everything taken
    arguments = command[len(routing):]
    plain = [*arguments[:arguments.index("--db")], *arguments[arguments.index("--db") + 2:]]
    local = CliRunner().invoke(main, [*plain[:plain.index("--executor")], "--out", "-"])
    assert local.exit_code == 0, local.output
    assert (tmp_path / "result.json").read_bytes() == local.stdout_bytes
    again = CliRunner().invoke(main, [*arguments[:arguments.index("--executor")], "--out", "-"])
    assert again.exit_code == 0, again.output
    assert orjson.loads(again.stdout_bytes)["allocations"] == []
    store.dispose()


def test_one_partition_on_a_pool_routes_in_this_process_and_says_so(monkeypatch):
    from routing_dsl.scaleout import tasks as module

    def no_pool(*_):
        raise AssertionError("a pool started for one partition")
    monkeypatch.setattr(module, "_on_processes", no_pool)
    snapshot = multi_store_world([["S1", "S2"], ["S2", "S3", "S4"]], STORES * 2)
    plan = multi_store_plan()
    assert len(partitions(plan, snapshot)) == 1
    said = []
    merged = route_partitioned(plan, snapshot, executor="process", jobs=2, engine="fast",
                               warn=said.append)
    assert dump_result(merged) == dump_result(run_plan(plan, snapshot))
    assert said == ["--executor process: the run is one partition (its stores share "
                    "facilities), so it routes in this process"]


def test_the_cli_says_when_a_pool_has_one_partition_to_route():
    from click.testing import CliRunner

    from routing_dsl.cli import main

    from .conftest import ROOT
    folder = ROOT / "examples" / "omnichannel"
    base = ["run", str(folder / "omnichannel.route"), "--snapshot",
            str(folder / "snapshot.json"), "--out", "-"]
    pooled = CliRunner().invoke(main, [*base, "--executor", "process"])
    assert pooled.exit_code == 0, pooled.output
    assert "warning: --executor process: the run is one partition" in pooled.stderr
    assert pooled.stdout == CliRunner().invoke(main, base).stdout


def test_parts_travel_as_columns_and_records():
    """A part is the snapshot's objects, pickled: stock as numpy columns (ids numbered as a
    loader numbers the rows it reads), orders as records, even when the snapshot was read as
    models; nothing parsed again."""
    import pickle

    from routing_dsl.engine.columnar import OrderRecord
    from routing_dsl.scaleout.partition import part_bytes
    from routing_dsl.snapshot import load_snapshot

    from .conftest import ROOT
    folder = ROOT / "examples" / "multi_store"
    snapshot = load_snapshot(folder / "snapshot.json")
    plan = compile_program(Workspace().check_text(
        (folder / "multi_store.route").read_text(), "multi_store.route").program)
    parts = partitions(plan, snapshot)
    read = [pickle.loads(part_bytes(snapshot, p)) for p in parts]
    for part, pieces in zip(parts, read, strict=True):
        assert pieces.inventory.forms == {"columns"}
        assert all(isinstance(o, OrderRecord) for o in pieces.orders)
        assert len(pieces.orders) == part.orders
        columns = pieces.inventory.columns
        assert set(columns.facility_ids) <= set(part.facilities)
        assert list(dict.fromkeys(columns.facility[k] for k in range(len(columns)))) == \
            list(range(len(columns.facility_ids)))
    assert sum(len(p.inventory) for p in read) == len(snapshot.inventory)
