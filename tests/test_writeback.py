"""Write-back into the OMS (`--sink oms`) on SQLite and PostgreSQL: a scheduled round reads
the OMS tables, routes, writes the moves back, and the next round routes nothing twice; an
order the OMS changes between the read and the write-back is refused, recorded, left for the
next round, and never overwritten; a batch delivered twice is applied once."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from routing_dsl.app import snapshot_source
from routing_dsl.checker import Workspace
from routing_dsl.cli import main
from routing_dsl.compiler import compile_program
from routing_dsl.ops import schema as t
from routing_dsl.ops.hooks import AfterBatches
from routing_dsl.ops.oms import load
from routing_dsl.ops.runner import run_recorded
from routing_dsl.ops.scheduler import Scheduler
from routing_dsl.ops.store import RunStore
from routing_dsl.ops.writeback import OmsSink, WriteBackError, read_sink_mapping

from .conftest import ROOT, postgres_database

EXAMPLE = ROOT / "examples" / "omnichannel"
PLAN = compile_program(Workspace().check_path(EXAMPLE / "omnichannel.route").program)
DOCUMENT = json.loads((EXAMPLE / "snapshot.json").read_text())
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(params=["sqlite", "postgresql", "postgresql, one database"])
def databases(request, tmp_path):
    """(OMS URL, run store URL): apart on SQLite and on PostgreSQL, and on PostgreSQL in
    one database (the write-back and the outbox acknowledgement then commit together)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'oms.db'}", f"sqlite:///{tmp_path / 'runs.db'}"
        return
    with postgres_database("wb_oms") as oms:
        if request.param == "postgresql":
            with postgres_database("wb_runs") as runs:
                yield oms, runs
        else:
            yield oms, oms


def prepared(databases):
    oms, runs = databases
    load(oms, DOCUMENT)
    store = RunStore(runs)
    store.upgrade()
    return oms, store


def rows(url: str, query: str) -> list:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(query)]
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def add_order(oms: str, order_id: str, product: str, quantity: int) -> None:
    """A web order arriving in the OMS: its rows, at the end of each table."""
    def next_position(table: str) -> str:
        return f"(select coalesce(max(position), -1) + 1 from {table})"
    execute(oms,
            f"insert into oms_order (position, id, product_store, status, order_date, "
            f"sales_channel, priority, origin_facility, version) values "
            f"({next_position('oms_order')}, '{order_id}', 'STORE', 'APPROVED', "
            f"'2026-11-23T08:00:00-05:00', 'WEB_CHANNEL', null, null, 1)",
            f"insert into oms_ship_group (position, order_id, id, facility, shipment_method, "
            f"carrier, has_ship_to, lat, lon, postal_code, country) values "
            f"({next_position('oms_ship_group')}, '{order_id}', '00001', '_NA_', null, null, "
            f"true, 40.71, -74.0, null, null)",
            f"insert into oms_order_item (position, order_id, ship_group, id, product, status, "
            f"quantity, cancel_quantity, unit_price, adjustments, promised_date, ship_before, "
            f"ship_after, auto_cancel_date, item_group) values "
            f"({next_position('oms_order_item')}, '{order_id}', '00001', '00001', '{product}', "
            f"'APPROVED', {quantity}, 0, 10, 0, null, null, null, null, null)")


def test_a_scheduled_round_writes_back_and_the_next_routes_nothing_twice(databases):
    oms, store = prepared(databases)
    atp_before = dict(((f, p), a) for f, p, a in rows(
        oms, "select facility, product, atp from oms_inventory"))
    counts_before = dict(rows(oms, "select id, orders_today from oms_facility"))
    events: list = []
    clock = Clock(datetime(2026, 11, 23, 9, 1, tzinfo=NEW_YORK))
    scheduler = Scheduler(store, PLAN, snapshot_source(oms), log=events.append, clock=clock)
    scheduler.after = AfterBatches(OmsSink(oms), log=events.append)
    first = scheduler.run_once()
    assert [b["status"] for b in first] == ["succeeded"]
    [written] = [e for e in events if e["event"] == "writeback"]
    assert written["orders"] == 4 and written["conflicts"] == 0
    # the OMS holds the moves: whole ship groups moved, a split one in new ship groups
    groups = dict(((o, g), f) for o, g, f in rows(
        oms, "select order_id, id, facility from oms_ship_group"))
    assert groups[("O-1001", "00001")] == "WH_NJ" and groups[("O-1002", "00001")] == "WH_CA"
    assert groups[("O-1004", "00001")] == "UNFILLABLE_PARKING"  # parked whole
    assert ("O-1003", "00001") not in groups  # split: each share in a new ship group
    assert sorted(f for (o, _), f in groups.items() if o == "O-1003") == [
        "ST_BKN", "ST_BOS", "ST_NYC", "UNFILLABLE_PARKING"]
    assert groups[("O-1005", "00001")] == "_NA_"  # no routing takes it
    units = dict(((o, g, i), q) for o, g, i, q in rows(
        oms, "select order_id, ship_group, id, quantity from oms_order_item"))
    assert sum(q for (o, _, i), q in units.items() if (o, i) == ("O-1003", "00001")) == 45
    # stock and daily counts taken as a reservation would
    batch = store.batch_detail(first[0]["batch"])
    taken: dict = {}
    for a in batch["allocations"]:
        taken[(a["facility"], a["product"])] = taken.get((a["facility"], a["product"]), 0) + \
            a["quantity"]
    atp_after = dict(((f, p), a) for f, p, a in rows(
        oms, "select facility, product, atp from oms_inventory"))
    assert {k: atp_before[k] - atp_after[k] for k in atp_before
            if atp_before[k] != atp_after[k]} == pytest.approx(taken)
    counts_after = dict(rows(oms, "select id, orders_today from oms_facility"))
    assert counts_after["WH_NJ"] == counts_before["WH_NJ"] + 1
    assert counts_after["ST_NYC"] == counts_before["ST_NYC"] + 1
    # acknowledged in the outbox, recorded in the run store
    assert store.pending() == []
    with store.engine.connect() as connection:
        assert connection.execute(sa.select(t.sink_batches.c.status)).scalars().all() == \
            ["applied"]
    # the next round reads the OMS again: only the order that came in since is routed
    add_order(oms, "O-2001", "RUN-8", 1)
    clock.now += timedelta(minutes=15)
    second = scheduler.run_once()
    assert [b["status"] for b in second] == ["succeeded"]
    again = store.batch_detail(second[0]["batch"])
    assert {a["order_id"] for a in again["allocations"]} == {"O-2001"}
    assert {u["order_id"] for u in again["unfillable"]} <= {"O-2001"}
    decided = [(a["order_id"], a["item"]) for b in (batch, again) for a in b["allocations"]]
    ordered = {(o["id"], i["id"]): i["quantity"] for o in DOCUMENT["orders"]
               for g in o["ship_groups"] for i in g["items"]} | {("O-2001", "00001"): 1}
    routed: dict = {}
    for b in (batch, again):
        for a in b["allocations"]:
            routed[(a["order_id"], a["item"])] = routed.get((a["order_id"], a["item"]), 0) + \
                a["quantity"]
    assert all(routed[key] <= ordered[key] for key in routed) and decided
    assert rows(oms, "select facility from oms_ship_group where order_id = 'O-2001'") != \
        [("_NA_",)]
    clock.now += timedelta(minutes=15)
    third = scheduler.run_once()
    assert store.batch_detail(third[0]["batch"])["allocations"] == []
    store.dispose()


def test_an_order_changed_in_the_oms_after_the_read_is_refused_and_left(databases):
    oms, store = prepared(databases)
    snapshot = snapshot_source(oms)()
    # a customer service agent moves O-1001's ship group meanwhile (the OMS adds one to the
    # order's version, as it does at every change)
    execute(oms, "update oms_ship_group set shipment_method = 'NEXT_DAY' "
                 "where order_id = 'O-1001'",
            "update oms_order set version = version + 1 where id = 'O-1001'")
    sink = OmsSink(oms)
    result, ids = run_recorded(store, PLAN, snapshot, source_text=None)
    [outcome] = sink.deliver(store, ids, snapshot)
    assert outcome.error is None
    assert sorted(outcome.applied) == ["O-1002", "O-1003", "O-1004"]
    [conflict] = outcome.conflicts
    assert (conflict["order"], conflict["expected"], conflict["found"]) == ("O-1001", 1, 2)
    # not overwritten: the agent's change stands, the order still waits
    assert rows(oms, "select facility, shipment_method from oms_ship_group "
                     "where order_id = 'O-1001'") == [("_NA_", "NEXT_DAY")]
    assert rows(oms, "select version from oms_order where id = 'O-1001'") == [(2,)]
    with store.engine.connect() as connection:
        recorded = connection.execute(sa.select(t.sink_conflicts)).mappings().all()
    assert [(r["order_id"], r["expected_version"], r["found_version"]) for r in recorded] == [
        ("O-1001", 1, 2)]
    assert "changed in the OMS since the snapshot was read" in recorded[0]["detail"]
    # the next round decides it again, from what the OMS holds now
    fresh = snapshot_source(oms)()
    _, later = run_recorded(store, PLAN, fresh, source_text=None)
    [again] = sink.deliver(store, later, fresh)
    assert again.applied == ["O-1001"] and again.conflicts == []
    assert rows(oms, "select facility from oms_ship_group where order_id = 'O-1001'") == [
        ("WH_NJ",)]
    sink.dispose()
    store.dispose()


def test_an_oms_transaction_in_flight_is_waited_for_and_not_overwritten(databases):
    """The OMS updates an order in a transaction still open when the write-back comes: the
    write-back waits for it, then finds the version changed."""
    oms, store = prepared(databases)
    snapshot = snapshot_source(oms)()
    _, ids = run_recorded(store, PLAN, snapshot, source_text=None)
    engine = sa.create_engine(oms, poolclass=sa.NullPool)
    connection = engine.connect()
    if engine.dialect.name == "sqlite":
        connection.exec_driver_sql("begin immediate")
    transaction = connection.begin() if engine.dialect.name != "sqlite" else None
    connection.exec_driver_sql("update oms_order set version = version + 1, "
                               "sales_channel = 'PHONE_CHANNEL' where id = 'O-1002'")
    sink = OmsSink(oms)
    done: list = []
    writer = threading.Thread(target=lambda: done.extend(sink.deliver(store, ids, snapshot)))
    writer.start()
    time.sleep(1.0)
    assert writer.is_alive()  # waiting for the OMS's transaction
    if transaction is not None:
        transaction.commit()
    else:
        connection.exec_driver_sql("commit")
    writer.join(timeout=60)
    connection.close()
    engine.dispose()
    [outcome] = done
    assert [c["order"] for c in outcome.conflicts] == ["O-1002"]
    assert rows(oms, "select sales_channel, version from oms_order where id = 'O-1002'") == [
        ("PHONE_CHANNEL", 2)]
    assert rows(oms, "select facility from oms_ship_group where order_id = 'O-1002'") == [
        ("_NA_",)]
    sink.dispose()
    store.dispose()


def test_a_batch_delivered_twice_is_applied_once(databases):
    oms, store = prepared(databases)
    snapshot = snapshot_source(oms)()
    _, ids = run_recorded(store, PLAN, snapshot, source_text=None)
    sink = OmsSink(oms)
    [first] = sink.deliver(store, ids, snapshot)
    state = rows(oms, "select facility, product, atp from oms_inventory order by position")
    [second] = sink.deliver(store, ids, snapshot)
    assert second.already and second.applied == first.applied and second.conflicts == []
    assert rows(oms, "select facility, product, atp from oms_inventory order by position") == \
        state
    assert rows(oms, "select count(*) from oms_applied_batch") == [(1,)]
    sink.dispose()
    store.dispose()


def test_an_unreachable_oms_writes_nothing_and_acknowledges_nothing(tmp_path):
    oms, store = prepared((f"sqlite:///{tmp_path / 'oms.db'}",
                           f"sqlite:///{tmp_path / 'runs.db'}"))
    snapshot = snapshot_source(oms)()
    _, ids = run_recorded(store, PLAN, snapshot, source_text=None)
    execute(oms, "drop table oms_applied_batch")  # the OMS is not what it was
    [outcome] = OmsSink(oms).deliver(store, ids, snapshot)
    assert outcome.error and "oms_applied_batch" in outcome.error
    assert len(store.pending()) == 8  # every decision still waits in the outbox
    with store.engine.connect() as connection:
        assert connection.execute(sa.select(t.sink_batches.c.status)).scalars().all() == \
            ["failed"]
    assert rows(oms, "select count(*) from oms_ship_group where facility = '_NA_'") == [(5,)]


def test_routing_run_with_the_oms_sink(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["oms", "load", str(EXAMPLE / "snapshot.json"), "--db",
                                "oms.db"]).exit_code == 0
    command = ["run", str(EXAMPLE / "omnichannel.route"), "--snapshot", "sqlite:///oms.db",
               "--db", "runs.db", "--sink", "oms", "--out", "result.json"]
    first = runner.invoke(main, command)
    assert first.exit_code == 0, first.output
    assert "wrote 4 orders back into the OMS" in first.stderr
    assert '"event": "writeback"' in first.stderr
    second = runner.invoke(main, command)
    assert "wrote 0 orders back into the OMS" in second.stderr
    refused = runner.invoke(main, ["run", str(EXAMPLE / "omnichannel.route"), "--snapshot",
                                   str(EXAMPLE / "snapshot.json"), "--db", "runs.db", "--sink",
                                   "oms"])
    assert refused.exit_code == 2 and "give a database URL as the snapshot" in refused.stderr
    what_if = runner.invoke(main, [*command, "--what-if", "close WH_NJ"])
    assert what_if.exit_code == 2 and "--what-if" in what_if.stderr


def test_a_mapping_can_name_its_own_sink_statements(tmp_path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[sink]\nreserve = "update stock set qty = qty - :quantity '
                       'where fac = :facility and sku = :product"\n')
    statements = read_sink_mapping(mapping)
    assert statements["reserve"] == ("update stock set qty = qty - :quantity where fac = "
                                     ":facility and sku = :product",)
    assert statements["claim_order"]  # the rest: the reference schema's
    for bad in ('[sink]\nreseve = "x"\n', '[sink]\nreserve = []\n', 'sink = "x"\n'):
        mapping.write_text(bad)
        with pytest.raises(WriteBackError):
            read_sink_mapping(mapping)


def test_the_console_shows_what_was_written_back_and_what_was_refused(tmp_path):
    from fastapi.testclient import TestClient

    from routing_dsl.service.app import create_app
    from routing_dsl.service.state import LiveState
    oms, store = prepared((f"sqlite:///{tmp_path / 'oms.db'}",
                           f"sqlite:///{tmp_path / 'runs.db'}"))
    snapshot = snapshot_source(oms)()
    execute(oms, "update oms_order set version = version + 1 where id = 'O-1001'")
    _, ids = run_recorded(store, PLAN, snapshot, source_text=None)
    OmsSink(oms).deliver(store, ids, snapshot)
    state = LiveState([PLAN], lambda: snapshot)
    state.refresh()
    with TestClient(create_app(state, store)) as client:
        batch = client.get(f"/console/batches/{ids[0]}").text
        assert "3 orders written" in batch and "1 refused" in batch
        assert 'id="conflicts"' in batch and "O-1001" in batch
        order = client.get("/console/orders/O-1001").text
        assert 'id="refused"' in order and "changed in the OMS" in order
    store.dispose()


def test_serve_once_writes_back_with_its_scheduled_round(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["oms", "load", str(EXAMPLE / "snapshot.json"), "--db",
                                "oms.db"]).exit_code == 0
    served = runner.invoke(main, ["serve", str(EXAMPLE / "omnichannel.route"), "--source",
                                  "sqlite:///oms.db", "--db", "runs.db", "--sink", "oms",
                                  "--once"])
    assert served.exit_code == 0, served.output
    events = [json.loads(line) for line in served.stderr.splitlines() if line.startswith("{")]
    [written] = [e for e in events if e["event"] == "writeback"]
    assert written["orders"] == 4
    assert rows(f"sqlite:///{tmp_path / 'oms.db'}",
                "select facility from oms_ship_group where order_id = 'O-1001'") == [("WH_NJ",)]


REJECTIONS = ROOT / "examples" / "rejections"


def until(check, what: str, seconds: float = 20.0):
    """Wait for work done after the answer (the write-back of a committed decision)."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def test_a_rerouted_line_and_a_committed_decision_are_written_back(databases):
    """`routing serve --sink oms`: a line a store refuses goes, rerouted, to its new facility
    in the OMS (the version this sink's own write left is the one expected, not the older
    read's); a committed decision is written back at the version its request sent; a reroute
    of an order the OMS changed since is refused and its reservation released."""
    from fastapi.testclient import TestClient

    from routing_dsl.service.app import create_app
    from routing_dsl.service.state import LiveState

    oms, runs = databases
    load(oms, json.loads((REJECTIONS / "snapshot.json").read_text()))
    store = RunStore(runs)
    store.upgrade()
    plan = compile_program(Workspace().check_path(REJECTIONS / "rejections.route").program)
    state = LiveState([plan], snapshot_source(oms), store=store)
    state.refresh()
    sink = OmsSink(oms)

    def where(order_id: str) -> list:
        return rows(oms, "select g.facility, i.quantity from oms_ship_group g join "
                         "oms_order_item i on i.order_id = g.order_id and i.ship_group = g.id "
                         f"where g.order_id = '{order_id}' order by g.id")

    def refused(batch: str) -> list:
        return rows(runs, f"select order_id from sink_conflicts where batch_id = '{batch}'")

    def settled(batch: str) -> bool:
        return bool(rows(runs, f"select status from sink_batches where batch_id = '{batch}'"))

    try:
        with TestClient(create_app(state, after=AfterBatches(sink))) as client:
            ran = client.post("/v1/groups/Store brokering/runs")
            assert ran.status_code == 200, ran.text
            assert where("R-2") == [("ST_NYC", 1.0)]  # the round's write-back
            answer = client.post("/v1/rejections", json={
                "order_id": "R-2", "item": "00001", "facility": "ST_NYC", "reroute": True,
                "reason": "DAMAGED", "idempotency_key": "r2-nyc"})
            assert answer.status_code == 200, answer.text
            [line] = answer.json()["decision"]["lines"]
            [batch] = answer.json()["decision"]["batches"]
            until(lambda: settled(batch), "the reroute's write-back")
            assert line["facility"] != "ST_NYC" and refused(batch) == []
            assert where("R-2") == [(line["facility"], 1.0)]
            assert rows(runs, f"select count(*) from outbox where batch_id = '{batch}' "
                              "and acked is null") == [(0,)]

            # a web order the live state has not read: the version its request sends
            add_order(oms, "W-1", "TEE-M", 1)
            order = {"id": "W-1", "product_store": "STORE", "version": 1, "ship_groups": [
                {"id": "00001", "facility": "_NA_", "ship_to": {"lat": 40.71, "lon": -74.0},
                 "items": [{"id": "00001", "product": "TEE-M", "quantity": 1}]}]}
            committed = client.post("/v1/decisions", json={
                "order": order, "commit": True, "idempotency_key": "w1"}).json()
            [placed] = committed["lines"]
            until(lambda: settled(committed["batches"][0]), "the commit's write-back")
            assert where("W-1") == [(placed["facility"], 1.0)]

            # the OMS changes W-1 itself, then its store refuses it: the reroute is not
            # written over the OMS's change, and its reservation stops counting
            execute(oms, "update oms_order set version = version + 1 where id = 'W-1'")
            again = client.post("/v1/rejections", json={
                "order_id": "W-1", "item": "00001", "facility": placed["facility"],
                "reroute": True, "order": order, "idempotency_key": "w1-refused"}).json()
            [batch] = again["decision"]["batches"]
            until(lambda: settled(batch), "the second reroute's write-back")
            assert refused(batch) == [("W-1",)] and where("W-1") == [(placed["facility"], 1.0)]
            assert rows(runs, f"select count(*) from reservations where batch_id = '{batch}' "
                              "and released is null") == [(0,)]
    finally:
        sink.dispose()
        store.dispose()
