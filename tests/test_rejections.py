"""Rejections in real time (issue 23): `POST /v1/rejections` and `routing reject` record that a
facility refused a committed line, release its reservation in the ledger, and route the item
again at once; every later routing with the run store carries the rejection. On SQLite and
PostgreSQL; plus the snapshot side: rejections and tags read alike by every loader."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from routing_dsl.cli import main
from routing_dsl.ops import schema as t
from routing_dsl.ops.store import RunStore
from routing_dsl.service.app import create_app
from routing_dsl.service.state import LiveState

from .builders import facility, item, order, plan, stock, world
from .conftest import ROOT, postgres_database

RULES = ('routing "R" { filter { queue == _NA_ } rule "Nearest, no recent refusal" { '
         'assign partial inventory { not rejected within 7 days } sort by distance } }')
PLAN = plan(RULES)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    with postgres_database("routing_rejections") as url:
        yield url


def snapshot(orders=()):
    """NEAR and FAR, two units of P1 each; ``orders`` wait in _NA_."""
    return world([facility("NEAR", 40.72, -74.0), facility("FAR", 40.9, -74.0)],
                 [stock("NEAR", "P1", 2), stock("FAR", "P1", 2)], list(orders), products=["P1"])


def web_order(oid: str, quantity: int = 1) -> dict:
    return {"id": oid, "product_store": "STORE", "ship_groups": [
        {"id": "00001", "facility": "_NA_", "ship_to": {"lat": 40.71, "lon": -74.0},
         "items": [{"id": "00001", "product": "P1", "quantity": quantity}]}]}


@pytest.fixture
def service(db_url):
    store = RunStore(db_url)
    store.upgrade()
    state = LiveState([PLAN], lambda: snapshot(), store=store)
    state.refresh()
    with TestClient(create_app(state)) as client:
        yield client, store, state
    store.dispose()


def rejection(oid: str = "A", key: str = "rej-1", **extra) -> dict:
    return {"order": oid, "item": "00001", "facility": "NEAR", "reason": "NOT_IN_STOCK",
            "idempotency_key": key, **extra}


def test_a_rejection_releases_the_line_and_reroutes_the_item_away_from_the_rejecter(service):
    client, store, state = service
    committed = client.post("/v1/decisions", json={"order": web_order("A"), "commit": True,
                                                   "idempotency_key": "buy-A"})
    assert [line["facility"] for line in committed.json()["lines"]] == ["NEAR"]
    answer = client.post("/v1/rejections", json=rejection(
        reroute=True, order_document=web_order("A"), at="2026-11-23T08:00:00-05:00"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rejection"] | {"id": 0} == {
        "id": 0, "order": "A", "ship_group": "00001", "item": "00001", "product": "P1",
        "facility": "NEAR", "quantity": 1.0, "reason": "NOT_IN_STOCK",
        "at": "2026-11-23T13:00:00+00:00"}
    # routed again at once: NEAR refused it today, so FAR ships it; committed, in a batch
    assert [(line["facility"], line["quantity"]) for line in body["decision"]["lines"]] == [
        ("FAR", 1)]
    assert body["decision"]["committed"] and len(body["decision"]["batches"]) == 1
    # the released unit is NEAR's again: another order takes both
    quote = client.post("/v1/decisions", json={"order": web_order("B", 2)}).json()
    assert [(line["facility"], line["quantity"]) for line in quote["lines"]] == [("NEAR", 2)]
    # the ledger: NEAR's line released, FAR's holds
    held = [(line.facility, line.quantity) for line in store.ledger(reflected_before=None)
            if line.kind == "allocation"]
    assert held == [("FAR", 1.0)]
    listed = client.get("/v1/orders/A/rejections").json()
    assert [(r["facility"], r["reason"]) for r in listed] == [("NEAR", "NOT_IN_STOCK")]


def test_a_rejection_is_idempotent_by_key(service):
    client, store, _ = service
    client.post("/v1/decisions", json={"order": web_order("A"), "commit": True,
                                       "idempotency_key": "buy-A"})
    body = rejection(reroute=True, order_document=web_order("A"))
    first = client.post("/v1/rejections", json=body)
    again = client.post("/v1/rejections", json=body)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    with store.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(t.rejections)
                                  ).scalar() == 1
    other = client.post("/v1/rejections", json=rejection(reason="DAMAGED"))
    assert other.status_code == 409 and "another request" in other.json()["detail"]


def test_rejecting_a_line_no_decision_holds_there_is_a_404(service):
    client, _, _ = service
    answer = client.post("/v1/rejections", json=rejection("NEVER"))
    assert answer.status_code == 404
    assert "no committed line of order 'NEVER'" in answer.json()["detail"]


@pytest.mark.parametrize("change, words", [
    ({"idempotency_key": None}, "idempotency_key"),
    ({"facility": ""}, "facility"),
    ({"at": "2026-11-23T08:00:00"}, "at"),
    ({"reroute": 1}, "reroute: Value error, must be a boolean"),
    ({"extra": True}, "extra"),
    ({"order": 7}, "order"),
])
def test_a_bad_rejection_is_a_422_naming_the_field(service, change, words):
    client, _, _ = service
    body = {k: v for k, v in {**rejection(), **change}.items() if v is not None}
    answer = client.post("/v1/rejections", json=body)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(words.split(":")[0]), answer.json()
    assert words in answer.json()["detail"]


def test_later_batches_carry_the_rejection_and_avoid_the_rejecter(db_url):
    # a scheduled round routes WAITING to NEAR; NEAR rejects it (no reroute); the next round
    # routes it again, to FAR
    store = RunStore(db_url)
    store.upgrade()
    state = LiveState([PLAN], lambda: snapshot([order("WAITING", [item("00001", "P1", 1)])]),
                      store=store)
    state.refresh()
    group = PLAN.groups[0]
    first, _ = state.run_group(PLAN, group)
    assert [a["facility"] for a in first["allocations"]] == ["NEAR"]
    from routing_dsl.ops.rejections import RejectionRequest
    answer = json.loads(state.reject(RejectionRequest(
        order="WAITING", item="00001", facility="NEAR", key="k", reason="DAMAGED")))
    assert answer["decision"] is None and answer["rejection"]["quantity"] == 1.0
    second, _ = state.run_group(PLAN, group)
    assert [a["facility"] for a in second["allocations"]] == ["FAR"]
    store.dispose()


def test_routing_reject_records_and_reroutes_from_the_command_line(tmp_path):
    folder = ROOT / "examples" / "rejections"
    db = str(tmp_path / "runs.db")
    runner = CliRunner()
    ran = runner.invoke(main, ["run", str(folder / "rejections.route"), "--snapshot",
                               str(folder / "snapshot.json"), "--db", db,
                               "--out", str(tmp_path / "r.json")])
    assert ran.exit_code == 0, ran.output
    # R-2's TEE-M went to ST_NYC; ST_NYC refuses it now: it goes elsewhere at once
    done = runner.invoke(main, ["reject", "--db", db, "--order", "R-2", "--item", "00001",
                                "--facility", "ST_NYC", "--reason", "DAMAGED", "--key", "r2",
                                "--reroute", str(folder / "rejections.route"),
                                "--source", str(folder / "snapshot.json")])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert answer["rejection"]["quantity"] == 1
    [line] = answer["decision"]["lines"]
    assert line["facility"] != "ST_NYC" and line["rule"] == \
        "Nearest place that has not refused it"
    again = runner.invoke(main, ["reject", "--db", db, "--order", "R-2", "--item", "00001",
                                 "--facility", "ST_NYC", "--key", "r2-other"])
    assert again.exit_code == 1 and "no committed line" in again.stderr
    bad = runner.invoke(main, ["reject", "--db", db, "--order", "R-2", "--item", "00001",
                               "--facility", "ST_NYC", "--key", "k", "--at", "2026-11-23T08:00"])
    assert bad.exit_code == 2 and "--at" in bad.stderr


def test_the_console_order_page_shows_the_rejection_history(service):
    client, _, _ = service
    client.post("/v1/decisions", json={"order": web_order("A"), "commit": True,
                                       "idempotency_key": "buy-A"})
    client.post("/v1/rejections", json=rejection(at="2026-11-22T16:00:00-05:00"))
    page = client.get("/console/orders/A")
    assert page.status_code == 200
    history = page.text.split('id="rejections"')[1].split("</table>")[0]
    assert "NEAR" in history and "NOT_IN_STOCK" in history and "2026-11-22" in history


# ---- the snapshot side ---------------------------------------------------------------------

def test_rejections_and_tags_read_alike_by_every_loader(tmp_path):
    from routing_dsl.engine.columnar import load_columnar, order_records
    from routing_dsl.snapshot import load_snapshot
    path = ROOT / "examples" / "rejections" / "snapshot.json"
    reference, columnar = load_snapshot(path), load_columnar(path)
    assert order_records(reference) == order_records(columnar)
    [r1] = [o for o in columnar.orders if o.id == "R-1"]
    assert r1.tags == ("VIP",)
    [rejected] = r1.ship_groups[0].items[0].rejections
    assert (rejected.facility, rejected.reason, rejected.at.isoformat()) == (
        "ST_NYC", "NOT_IN_STOCK", "2026-11-22T16:00:00-05:00")


def test_an_oms_database_without_the_rejection_and_tag_tables_reads(tmp_path):
    from routing_dsl.ops.oms import read_snapshot
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    loaded = CliRunner().invoke(main, ["oms", "load", str(ROOT / "examples" / "rejections" /
                                                          "snapshot.json"), "--db", url])
    assert loaded.exit_code == 0, loaded.output
    assert sum(len(i.rejections) for o in read_snapshot(url).orders for g in o.ship_groups
               for i in g.items) == 6
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # as a database filled before these tables existed
        connection.exec_driver_sql("drop table oms_item_rejection")
        connection.exec_driver_sql("drop table oms_order_tag")
    engine.dispose()
    again = read_snapshot(url)
    assert not any(o.tags for o in again.orders)


def test_the_service_doc_rejection_example_answers_as_the_doc_says(tmp_path):
    import re

    from routing_dsl.checker import Workspace
    from routing_dsl.compiler import compile_program
    from routing_dsl.snapshot import load_snapshot
    folder = ROOT / "examples" / "omnichannel"
    the_plan = compile_program(Workspace().check_path(folder / "omnichannel.route").program)
    doc = (ROOT / "docs" / "service.md").read_text()

    def block(name: str) -> dict:
        return json.loads(re.search(rf"<!-- tested: {name} -->\n```json\n(.*?)```", doc,
                                    re.S).group(1))
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    state = LiveState([the_plan], lambda: load_snapshot(folder / "snapshot.json"), store=store)
    state.refresh()
    with TestClient(create_app(state)) as client:
        client.post("/v1/decisions", json={**block("decision"), "commit": True,
                                           "idempotency_key": "checkout-7f3a"})
        answer = client.post("/v1/rejections", json=block("rejection"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["decision"] is None
        assert (body["rejection"]["facility"], body["rejection"]["quantity"]) == ("WH_NJ", 1.0)
        assert '"facility": "WH_NJ", "quantity": 1.0' in doc
        rerouted = client.post("/v1/rejections", json={
            **block("rejection"), "idempotency_key": "again", "facility": "WH_NJ",
            "reroute": True, "order_document": block("decision")["order"]})
        assert rerouted.status_code == 404  # released already: nothing holds it there
    store.dispose()
