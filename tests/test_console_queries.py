"""The console's reads on real databases: every query a page runs is served by an index
(EXPLAIN on SQLite and PostgreSQL), the hourly rollups the trigger keeps equal the batches'
own rows, and the pages' parameters are validated."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.ops import queries
from routing_dsl.ops import schema as t
from routing_dsl.ops.runner import run_recorded
from routing_dsl.ops.scheduler import Supervision
from routing_dsl.ops.store import RunStore
from routing_dsl.service.app import create_app
from routing_dsl.service.state import LiveState
from routing_dsl.snapshot import load_snapshot

from .conftest import ROOT, postgres_database

EXAMPLE = ROOT / "examples" / "omnichannel"
PLAN = compile_program(Workspace().check_path(EXAMPLE / "omnichannel.route").program)
SNAPSHOT = load_snapshot(EXAMPLE / "snapshot.json")
TABLES = {table.name for table in t.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
        store.upgrade()
        yield store
        store.dispose()
        return
    with postgres_database("console_q") as url:
        store = RunStore(url)
        store.upgrade()
        yield store
        store.dispose()


def record(store: RunStore, hours_ago: float, snapshot=SNAPSHOT) -> list[str]:
    started = datetime.now(UTC) - timedelta(hours=hours_ago)
    return run_recorded(store, PLAN, snapshot, source_text=None, trigger="scheduled",
                        started=started)[1]


def fail(store: RunStore, hours_ago: float, error: str = "source: gone") -> str:
    batch_id = store.start_batch(group="Omnichannel brokering", product_store="STORE",
                                 plan_json=PLAN.to_json(), source_name="x.route",
                                 source_text=None, snapshot_hash="", trigger="scheduled",
                                 started=datetime.now(UTC) - timedelta(hours=hours_ago))
    store.fail_batch(batch_id, error)
    return batch_id


def pages(batch_ids: list[str]) -> list[str]:
    a, b = batch_ids[0], batch_ids[1]
    return ["/console", "/console?period=24h", "/console?period=90d&group=Omnichannel%20brokering",
            "/console?since=2020-01-01&until=2099-01-01", "/console/batches",
            "/console/batches?status=failed", "/console/batches?group=Omnichannel%20brokering",
            "/console/batches?since=2020-01-01&until=2099-12-31",
            f"/console/batches?before={quote(datetime.now(UTC).isoformat() + '|z')}",
            f"/console/batches/{a}", f"/console/batches/{a}/rules",
            f"/console/compare?a={a}&b={b}", "/console/orders?q=O-10",
            "/console/orders?q=O-1&after=O-1001", "/console/orders?q=RUN-10&by=product",
            "/console/orders?q=00001&by=ship_group", "/console/orders?q=WH_NJ&by=facility",
            "/console/orders/O-1003", "/console/queues", "/console/queues/_NA_",
            "/console/stock", "/console/stock?facility=WH_NJ", "/console/stock?product=RUN-10",
            "/console/stock?facility=ST_NYC&product=RUN-10"]


def plan_lines(store: RunStore, statement: str, parameters) -> list[str]:
    with store.engine.connect() as connection:
        if store.engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return [row[-1] for row in rows]
        # PostgreSQL picks a sequential scan for a small table whatever its indexes: with
        # sequential scans off, it uses an index whenever one serves the query
        connection.exec_driver_sql("SET enable_seqscan = off")
        rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return [row[0] for row in rows]


def full_scans(store: RunStore, statement: str, lines: list[str]) -> list[str]:
    """Scans of a whole table: without an index, or along one without a LIMIT to stop
    them (a page read in index order stops at its last row)."""
    if store.engine.dialect.name == "sqlite":
        bounded = re.search(r"\bLIMIT\b", statement) is not None
        return [line for line in lines
                if (m := re.match(r"SCAN (\w+)(?: AS \w+)?( USING (?:COVERING )?INDEX \w+)?$",
                                  line)) and m.group(1) in TABLES
                and not (m.group(2) and bounded)]
    return [line for line in lines if "Seq Scan" in line]


def test_every_page_query_uses_an_index(store):
    ids = record(store, 30) + record(store, 2) + [fail(store, 1)]
    state = LiveState([PLAN], lambda: SNAPSHOT)
    state.refresh()
    app = create_app(state, store, supervision=Supervision())
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))
    sa.event.listen(store.engine, "before_cursor_execute", capture)
    with TestClient(app) as client:
        for path in pages(ids):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
    sa.event.remove(store.engine, "before_cursor_execute", capture)
    statements = {statement: parameters for statement, parameters in seen}
    assert len(statements) >= 12  # every kind of page query ran
    for statement, parameters in statements.items():
        lines = plan_lines(store, statement, parameters)
        assert full_scans(store, statement, lines) == [], (statement, lines)


def test_the_hourly_rollups_equal_the_batches_rows(store):
    for hours in (50, 49.5, 3, 2.2):
        record(store, hours)
    fail(store, 2)
    reread = SNAPSHOT.model_copy(update={"orders": SNAPSHOT.orders[:2]})
    record(store, 1, reread)
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(t.hourly_stats)).mappings().all()
        parked = connection.execute(sa.select(t.hourly_parked)).mappings().all()
        allocations = connection.execute(sa.select(t.allocations)).mappings().all()
        unfilled = connection.execute(sa.select(t.unfillable)).mappings().all()
        runs = connection.execute(sa.select(t.runs)).mappings().all()
        batches = connection.execute(sa.select(t.batches)).mappings().all()
    assert sum(r["batch_count"] for r in rows) == len(batches) == 6
    assert {(r["status"], r["batch_count"]) for r in rows if r["status"] == "failed"} == \
        {("failed", 1)}
    assert sum(r["units_routed"] for r in rows) == pytest.approx(
        sum(a["quantity"] for a in allocations))
    assert sum(r["allocations"] for r in rows) == len(allocations)
    assert sum(r["unfilled_units"] for r in rows) == pytest.approx(
        sum(u["quantity"] for u in unfilled))
    assert sum(r["late_items"] for r in rows) == sum(r["late_items"] for r in runs)
    assert sum(r["attempted_items"] for r in rows) == sum(b["attempted_items"] for b in batches)
    shipments: dict = {}
    for a in allocations:
        shipments.setdefault((a["batch_id"], a["order_id"], a["ship_group"]), set()).add(
            a["new_ship_group"])
    assert sum(r["ship_groups"] for r in rows) == len(shipments)
    assert sum(r["split_ship_groups"] for r in rows) == sum(
        1 for groups in shipments.values() if len(groups) > 1)
    km = sum(a["distance"] * (1.609344 if a["distance_unit"] == "mi" else 1)
             for a in allocations if a["distance"] is not None)
    assert sum(r["distance_km"] for r in rows) == pytest.approx(km)
    assert sum(p["units"] for p in parked) == pytest.approx(
        sum(u["quantity"] for u in unfilled if u["action"] == "moved"))
    hours = {r["hour"] for r in rows}
    assert len(hours) >= 4  # batches land in the hour they started
    # and the dashboard reads them back, period by period
    now = datetime.now(UTC)
    buckets = queries.dashboard(store, since=now - timedelta(days=3), until=now, step_hours=24)
    assert len(buckets) == 4  # 73 hours begun, by day
    assert sum(b.count("succeeded") for b in buckets) == 5
    assert sum(b.count("failed") for b in buckets) == 1
    assert sum(b.total("units_routed") for b in buckets) == pytest.approx(
        sum(a["quantity"] for a in allocations))


def test_batches_settled_together_reach_the_rollups_once_each(store):
    """A group of committed decisions settles its batches in one statement (on PostgreSQL
    the rollup trigger then runs once for all of them): each is counted once, with its
    rows, and a later update of settled batches adds nothing."""
    from routing_dsl.ops.store import insert_rows, pipelined
    record(store, 0.5)
    with store.engine.connect() as connection:
        batch = dict(connection.execute(sa.select(t.batches)).mappings().one())
        children = {table: connection.execute(sa.select(table).where(
            table.c.batch_id == batch["id"])).mappings().all()
            for table in (t.allocations, t.unfillable, t.runs)}
    copies = [{**batch, "id": f"copy-{k}", "status": "succeeded"} for k in range(3)]
    with store.engine.begin() as connection, pipelined(connection):
        store.insert_batches(connection, copies)
        for table, rows in children.items():
            insert_rows(connection, table, [{**row, "batch_id": copy["id"]}
                                            for copy in copies for row in rows])
        store.settle_batches(connection, copies)
    with store.engine.begin() as connection:  # touches settled batches: no batch leaves running
        connection.execute(t.batches.update().values(snapshot_hash="again"))
    with store.engine.connect() as connection:
        stats = connection.execute(sa.select(
            sa.func.sum(t.hourly_stats.c.batch_count), sa.func.sum(t.hourly_stats.c.allocations),
            sa.func.sum(t.hourly_stats.c.unfilled_items))).one()
    assert tuple(stats) == (4, 4 * len(children[t.allocations]),
                            4 * len(children[t.unfillable]))


def test_the_trigger_is_there_at_head_and_the_upgrade_adds_earlier_batches(tmp_path):
    from alembic import command

    from routing_dsl.ops.store import _config
    store = RunStore(f"sqlite:///{tmp_path / 'old.db'}")
    with store.engine.begin() as connection:
        command.upgrade(_config(connection), "0005")
    record(store, 5)
    fail(store, 4)
    store.upgrade()
    with store.engine.connect() as connection:
        triggers = connection.exec_driver_sql(
            "select name from sqlite_master where type = 'trigger'").scalars().all()
        counted = connection.execute(sa.select(sa.func.sum(t.hourly_stats.c.batch_count))
                                     ).scalar()
    assert "batches_rollup" in triggers and counted == 2
    record(store, 0)
    with store.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.sum(t.hourly_stats.c.batch_count))
                                  ).scalar() == 3
    store.dispose()


BAD = ["/console?period=1y", "/console?group=a%00b", "/console?since=2026-02-30",
       "/console/batches?status=done", "/console/batches?before=yesterday",
       "/console/batches?before=2026-01-01T00:00:00|" + "x" * 40,
       "/console/batches?group=" + "g" * 201, "/console/orders?q=a%00b",
       "/console/orders?q=x&by=colour", "/console/orders?q=" + "q" * 201,
       "/console/orders?q=x&after=%00", "/console/queues/_NA_?start=-1",
       "/console/queues/_NA_?start=x", "/console/queues/_NA_?start=1e999",
       "/console/stock?facility=%00", "/console/stock?product=" + "p" * 201,
       "/console/compare?a=%00&b=x"]


def answer(tmp_path, path: str):
    """What a console with an empty SQLite store and the example's live state answers."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    state = LiveState([PLAN], lambda: SNAPSHOT)
    state.refresh()
    with TestClient(create_app(state, store), raise_server_exceptions=False) as client:
        return client.get(path)


@pytest.mark.parametrize("path", BAD, ids=[p[:60] for p in BAD])
def test_bad_parameters_are_422_problems(tmp_path, path):
    answered = answer(tmp_path, path)
    assert answered.status_code == 422, answered.text
    assert answered.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/console/compare?a=nope&b=nope", "/console/queues/WH_NJ",
                                  "/console/queues/nope", "/console/stock?facility=nope"])
def test_unknown_things_are_404_problems(tmp_path, path):
    answered = answer(tmp_path, path)
    assert answered.status_code == 404, answered.text
    assert answered.headers["content-type"] == "application/problem+json"


def test_pages_answer_without_a_run_store_and_before_the_state_is_loaded():
    state = LiveState([PLAN], lambda: SNAPSHOT)
    with TestClient(create_app(state)) as client:
        for path in ("/console", "/console/batches", "/console/orders?q=O", "/console/queues",
                     "/console/stock", "/console/stock?product=RUN-10"):
            assert client.get(path).status_code == 200, path
        state.refresh()
        for path in ("/console", "/console/orders?q=O-1", "/console/orders/O-1003",
                     "/console/queues/_NA_", "/console/stock?facility=WH_NJ"):
            assert client.get(path).status_code == 200, path


def test_two_versions_of_the_rules_on_one_snapshot_are_compared_unit_by_unit(tmp_path):
    """As a shadow run would leave them: the same snapshot, two plans."""
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    routing = PLAN.groups[0].routings[0]
    stores_only = PLAN.model_copy(update={"groups": [PLAN.groups[0].model_copy(update={
        "routings": [routing.model_copy(update={"rules": routing.rules[1:]})]})]})
    [a] = run_recorded(store, PLAN, SNAPSHOT, source_text=None)[1]
    store.ack(batch=a)  # the OMS applied it: a source read after that holds it
    [b] = run_recorded(store, stores_only, SNAPSHOT, source_text=None,
                       reflected_before=store.clock() + timedelta(seconds=2))[1]
    state = LiveState([PLAN], lambda: SNAPSHOT)
    state.refresh()
    with TestClient(create_app(state, store)) as client:
        page = client.get(f"/console/compare?a={a}&b={b}").text
    changed = re.search(r'<table id="changed">(.*?)</table>', page, re.S)
    assert changed, "no unit-by-unit comparison"
    assert "O-1001" in changed.group(1) and "WH_NJ" in changed.group(1)
    store.dispose()
