"""The HTTP service, in process (ASGI) and fuzzed from its OpenAPI document: decisions equal
the batch engine's, bad requests get problem documents, never a 500."""

from __future__ import annotations

import json
import time

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.interpreter import run_plan
from routing_dsl.ops.store import RunStore
from routing_dsl.service.app import create_app
from routing_dsl.service.state import LiveState
from routing_dsl.snapshot import load_snapshot

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"
PLAN = compile_program(Workspace().check_path(EXAMPLE / "omnichannel.route").program)
DOCUMENT = json.loads((EXAMPLE / "snapshot.json").read_text())


def make_app(store=None):
    state = LiveState([PLAN], lambda: load_snapshot(EXAMPLE / "snapshot.json"), store=store)
    state.refresh()
    return create_app(state)


@pytest.fixture
def client():
    with TestClient(make_app()) as client:
        yield client


def test_a_quote_equals_the_batch_decision_for_that_order(client):
    order = DOCUMENT["orders"][1]
    answer = client.post("/v1/decisions", json={"order": order})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    alone = dict(DOCUMENT, orders=[order])
    from routing_dsl.snapshot import parse_snapshot
    expected = run_plan(PLAN, parse_snapshot(alone))
    assert [(line["item"], line["facility"], line["quantity"]) for line in body["lines"]] == [
        (a["item"], a["facility"], a["quantity"]) for a in expected["allocations"]]
    assert body["explanations"][0]["rules"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_a_quote_has_no_side_effects(client):
    order = DOCUMENT["orders"][1]
    first = client.post("/v1/decisions", json={"order": order}).json()
    second = client.post("/v1/decisions", json={"order": order}).json()
    assert first == second


@pytest.mark.parametrize("body, status, words", [
    ({"order": {"id": "X"}}, 422, "invalid request"),
    ({"order": DOCUMENT["orders"][0], "commit": True}, 422, "invalid request"),
    ({"order": DOCUMENT["orders"][0], "commit": True, "idempotency_key": ""}, 422,
     "invalid request"),
    ({"order": DOCUMENT["orders"][0], "commit": 0}, 422, "invalid request"),
    ({"order": dict(DOCUMENT["orders"][0], ship_groups=[
        dict(DOCUMENT["orders"][0]["ship_groups"][0], facility="NOWHERE")])}, 422,
     "cannot decide this order"),
    ({"order": DOCUMENT["orders"][0], "extra": 1}, 422, "invalid request"),
])
def test_bad_decision_requests_get_problem_documents(client, body, status, words):
    answer = client.post("/v1/decisions", json=body)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.json()["title"]


def test_not_json_and_unknown_routes(client):
    answer = client.post("/v1/decisions", content=b"{not json",
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/batches").status_code == 409  # no run store


def test_runs_batches_history_and_metrics_with_a_store(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    with TestClient(make_app(store)) as client:
        client.post("/v1/decisions", json={"order": DOCUMENT["orders"][0]})
        ran = client.post("/v1/groups/Omnichannel brokering/runs")
        assert ran.status_code == 200, ran.text
        [batch_id] = ran.json()["batches"]
        assert client.get(f"/v1/batches/{batch_id}").json()["trigger"] == "api"
        assert client.get("/v1/batches").json()[0]["id"] == batch_id
        assert client.get("/v1/batches/nope").status_code == 404
        assert client.post("/v1/groups/nope/runs").status_code == 404
        moves = client.get("/v1/orders/O-1002/history").json()
        assert {m["order"] for m in moves} == {"O-1002"}
        metrics = client.get("/metrics").text
        assert "routing_decisions_total 1" in metrics
        assert 'routing_batches{status="succeeded"} 1' in metrics
        for _ in range(2):
            client.post("/v1/decisions", json={"order": DOCUMENT["orders"][0]})
        assert_cumulative_histogram(client.get("/metrics").text, 3)
        assert client.post("/v1/state/refresh").status_code == 200


def assert_cumulative_histogram(metrics: str, decisions: int) -> None:
    """Buckets never fall as their bound rises, and +Inf and _count hold every decision."""
    import re
    buckets = [(float(bound), int(count)) for bound, count in re.findall(
        r'routing_decision_seconds_bucket\{le="([0-9.e-]+)"\} (\d+)', metrics)]
    assert len(buckets) >= 5 and buckets == sorted(buckets)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:], strict=False))
    assert f'routing_decision_seconds_bucket{{le="+Inf"}} {decisions}' in metrics
    assert f"routing_decision_seconds_count {decisions}" in metrics
    assert float(re.search(r"routing_decision_seconds_sum (\S+)", metrics).group(1)) > 0


def small_world():
    """One warehouse with one unit of P1, and an order waiting for it."""
    from .builders import facility, item, order, plan, stock, world
    snapshot = world([facility("WH")], [stock("WH", "P1", 1)],
                     [order("WAITING", [item("00001", "P1", 1)])])
    the_plan = plan('routing "R" { filter { queue == _NA_ } rule "r" { assign partial } }')
    return the_plan, snapshot


def order_for(oid: str) -> dict:
    return {"id": oid, "product_store": "STORE", "ship_groups": [
        {"id": "00001", "facility": "_NA_", "ship_to": {"lat": 40.7, "lon": -74.0},
         "items": [{"id": "00001", "product": "P1", "quantity": 1}]}]}


@pytest.fixture
def committing(tmp_path):
    the_plan, snapshot = small_world()
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    state = LiveState([the_plan], lambda: snapshot, store=store)
    state.refresh()
    with TestClient(create_app(state)) as client:
        yield client, store


def test_a_commit_reserves_the_stock_once_per_idempotency_key(committing):
    client, store = committing
    body = {"order": order_for("A"), "commit": True, "idempotency_key": "k-1"}
    first = client.post("/v1/decisions", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["committed"] and first.json()["lines"][0]["facility"] == "WH"
    again = client.post("/v1/decisions", json=body)
    assert again.json() == first.json()  # the same answer, and nothing more reserved
    assert [b.trigger for b in store.batches(10)] == ["api"]  # a batch of one
    # the unit is taken: another order is quoted nothing, and its commit gets nothing
    other = client.post("/v1/decisions", json={"order": order_for("B")}).json()
    assert other["lines"] == [] and other["unfilled"][0]["order"] == "B"
    reused = client.post("/v1/decisions", json={"order": order_for("B"), "commit": True,
                                                "idempotency_key": "k-1"})
    assert reused.status_code == 409 and "idempotency" in reused.json()["title"]
    assert "routing_commits_total 1" in client.get("/metrics").text


def test_a_batch_sees_what_commits_took_and_commits_see_what_batches_took(committing):
    client, store = committing
    client.post("/v1/decisions", json={"order": order_for("A"), "commit": True,
                                       "idempotency_key": "k-1"})
    ran = client.post("/v1/groups/G/runs").json()
    assert ran["allocations"] == 0 and ran["unfillable"] == 1  # WAITING finds no stock
    client.post("/v1/state/refresh")  # the source (a static file) does not reflect A
    assert client.post("/v1/groups/G/runs").json()["allocations"] == 0
    late = client.post("/v1/decisions", json={"order": order_for("C"), "commit": True,
                                              "idempotency_key": "k-2"}).json()
    assert late["lines"] == []  # the unit is still A's


def test_a_refresh_gives_back_only_what_the_source_reflects(tmp_path):
    """A commit's reservation stays applied across refreshes until the OMS acknowledged it
    before the source was read (and before the snapshot's `now`): then the source's own
    stock figure counts, never the reservation on top of it."""
    from datetime import UTC, datetime, timedelta

    from .builders import facility, item, order, stock, world
    the_plan, _ = small_world()
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    source = {"atp": 1, "now": "2026-11-23T09:30:00-05:00"}

    def read():
        return world([facility("WH")], [stock("WH", "P1", source["atp"])],
                     [order("WAITING", [item("00001", "P1", 1)])], now=source["now"])
    state = LiveState([the_plan], read, store=store)
    state.refresh()
    with TestClient(create_app(state)) as client:
        body = {"order": order_for("A"), "commit": True, "idempotency_key": "k-1"}
        assert client.post("/v1/decisions", json=body).json()["lines"]
        assert store.ack(batch=store.batches(1)[0].id) == 1  # the OMS applied A
        client.post("/v1/state/refresh")  # an export made before the ack: A still applies
        assert client.post("/v1/groups/G/runs").json()["allocations"] == 0
        # an export made after the ack shows A's unit gone: the ledger line is reflected
        source.update(atp=0, now=(datetime.now(UTC) + timedelta(seconds=2)).isoformat())
        time.sleep(1.1)  # acknowledgements count to the second
        client.post("/v1/state/refresh")
        assert client.post("/v1/groups/G/runs").json()["allocations"] == 0
        source.update(atp=1)  # the OMS received one more unit: WAITING gets it, once
        client.post("/v1/state/refresh")
        assert client.post("/v1/groups/G/runs").json()["allocations"] == 1
        assert client.post("/v1/groups/G/runs").json()["allocations"] == 0
        late = client.post("/v1/decisions", json={"order": order_for("C"), "commit": True,
                                                  "idempotency_key": "k-2"}).json()
        assert late["lines"] == []


def test_a_commit_needs_a_key_and_a_run_store(client):
    body = {"order": DOCUMENT["orders"][0], "commit": True}
    assert "idempotency_key" in client.post("/v1/decisions", json=body).json()["detail"]
    answer = client.post("/v1/decisions", json={**body, "idempotency_key": "k"})
    assert answer.status_code == 409 and "run store" in answer.json()["title"]


def test_with_a_token_every_write_needs_it_and_reads_do_not():
    state = LiveState([PLAN], lambda: load_snapshot(EXAMPLE / "snapshot.json"))
    state.refresh()
    with TestClient(create_app(state, token="s3cret")) as client:
        body = {"order": DOCUMENT["orders"][1]}
        refused = client.post("/v1/decisions", json=body)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.headers["content-type"].startswith("application/problem+json")
        wrong = client.post("/v1/decisions", json=body, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        assert client.post("/v1/state/refresh").status_code == 401
        good = client.post("/v1/decisions", json=body,
                           headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_serving_beyond_loopback_needs_a_token(monkeypatch):
    from click.testing import CliRunner

    from routing_dsl.cli import main
    monkeypatch.delenv("ROUTING_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", str(EXAMPLE / "omnichannel.route"), "--source",
                                       str(EXAMPLE / "snapshot.json"), "--port", "1",
                                       "--host", "0.0.0.0", "--db", "sqlite://"])
    assert result.exit_code == 2
    assert "ROUTING_TOKEN" in result.output


SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", make_app())


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_never_answers_500_to_any_request(case):
    # Every check but one: a body can match the schema and still name a facility that does
    # not exist, which is a 422 no JSON Schema can foresee.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_routing_serve_answers_http_and_stops_on_sigterm(tmp_path):
    import os
    import subprocess
    import sys

    import httpx

    from routing_dsl.service.launch import serving
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    subprocess.run([sys.executable, "-m", "routing_dsl", "db", "upgrade", "--db", db],
                   check=True, capture_output=True)
    with serving([str(EXAMPLE / "omnichannel.route"), "--source", str(EXAMPLE / "snapshot.json"),
                  "--db", db], cwd=EXAMPLE, env={**os.environ, "ROUTING_TOKEN": "t0ken"}) as served:
        base = served.base
        body = {"order": DOCUMENT["orders"][1]}
        assert httpx.post(f"{base}/v1/decisions", json=body).status_code == 401
        token = {"Authorization": "Bearer t0ken"}
        answer = httpx.post(f"{base}/v1/decisions", json=body, headers=token)
        assert answer.status_code == 200 and answer.json()["lines"]
        commit = {**body, "commit": True, "idempotency_key": "checkout-1"}
        committed = httpx.post(f"{base}/v1/decisions", json=commit, headers=token)
        assert committed.status_code == 200 and committed.json()["committed"]
        assert httpx.post(f"{base}/v1/decisions", json=commit, headers=token).json() == \
            committed.json()
        [batch] = committed.json()["batches"]
        assert httpx.get(f"{base}/v1/batches/{batch}").json()["allocations"] == \
            len(committed.json()["lines"])
        assert httpx.get(f"{base}/openapi.json").json()["paths"]["/v1/decisions"]
    assert served.process.returncode == 0, served.stderr  # SIGTERM is a clean stop


def test_the_service_doc_example_is_decided(client):
    import re
    doc = (ROOT / "docs" / "service.md").read_text()
    body = json.loads(re.search(r"<!-- tested: decision -->\n```json\n(.*?)```", doc,
                                re.S).group(1))
    answer = client.post("/v1/decisions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["lines"][0]["facility"]


EXAMPLE_CASES = [(route_file, snapshot_file)
                 for folder in sorted((ROOT / "examples").iterdir()) if folder.is_dir()
                 for route_file in sorted(folder.glob("*.route"))[:1]
                 for snapshot_file in sorted(folder.glob("snapshot*.json"))]


@pytest.mark.parametrize("route_file,snapshot_file", EXAMPLE_CASES,
                         ids=[f"{r.parent.name}/{s.name}" for r, s in EXAMPLE_CASES])
def test_decisions_sharing_indexes_answer_as_a_fresh_run_would(route_file, snapshot_file):
    """Quotes reuse the facility index and explanation groupings between decisions
    (interpreter.Prepared) and read stock from the live index (interpreter.LiveStock): on
    every example, every answer, second time round too, equals a run from scratch on the
    snapshot with that one order (all its stock rows, every sort and condition the examples
    use: styles, sales velocity, safety stock, rate cards)."""
    from routing_dsl.cli import load_plan_or_source
    from routing_dsl.snapshot import Order
    the_plan = load_plan_or_source(route_file)
    snapshot = load_snapshot(snapshot_file)
    state = LiveState([the_plan], lambda: snapshot)
    state.refresh()
    document = json.loads(snapshot_file.read_text())
    assert document["orders"]
    for _ in range(2):
        for entry in document["orders"]:
            order = Order.model_validate(entry)
            fresh = run_plan(the_plan, snapshot.model_copy(update={"orders": [order]}),
                             explain=True, explain_orders={order.id})
            answer = state.quote(order)
            assert answer["lines"] == fresh["allocations"], order.id
            assert answer["unfilled"] == fresh["unfillable"], order.id
            assert answer["explanations"] == fresh["explanations"], order.id


@pytest.mark.parametrize("shipping", [False, True], ids=["distance", "shipping"])
def test_quotes_from_the_live_index_equal_a_fresh_run_after_commits_and_batches(tmp_path,
                                                                                shipping):
    """A quote reads stock and daily counts from the live index (interpreter.LiveStock), kept
    as commits and batches take: its answer, explanations included, equals a run from
    scratch on the snapshot with everything taken so far applied. Facilities start near
    their daily limits, so counts decide too."""
    from routing_dsl.scenarios import PLAN as BENCH_PLAN, SHIPPING_PLAN, Scenario, generate
    from routing_dsl.snapshot import Order, Snapshot
    document = generate(Scenario(orders=160, facilities=24, skus=30, shipping=shipping))
    limited = 0
    for facility in document["facilities"]:
        if facility.get("max_orders_per_day"):
            facility["orders_today"] = facility["max_orders_per_day"] - 1
            limited += 1
    assert limited
    orders = [Order.model_validate(o) for o in document["orders"][:120]]
    # the source's own orders are the batch's; the ones decided over HTTP are not in it
    snapshot = Snapshot.model_validate({**document, "orders": document["orders"][120:]})
    text = SHIPPING_PLAN if shipping else BENCH_PLAN
    the_plan = compile_program(Workspace().check_text(text, name="bench.route").program)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    state = LiveState([the_plan], lambda: snapshot, store=store)
    state.refresh()
    quoted = committed = 0
    for k, order in enumerate(orders):
        if k == 60:  # a batch takes what it can of every order, commits included
            state.run_group(the_plan, the_plan.groups[0], store)
        if k % 3 == 2:
            state.commit(order, f"key-{k}")
            committed += 1
            continue
        answer = state.quote(order)
        fresh = run_plan(the_plan, state.batch_snapshot().model_copy(update={
            "orders": [order]}), explain=True, explain_orders={order.id})
        assert answer["lines"] == fresh["allocations"], order.id
        assert answer["unfilled"] == fresh["unfillable"], order.id
        assert answer["explanations"] == fresh["explanations"], order.id
        quoted += 1
    assert quoted == 80 and committed == 40
    taken = state.batch_snapshot()
    assert [r.atp for r in taken.inventory] != [r.atp for r in snapshot.inventory]
    assert any(f.orders_today >= f.max_orders_per_day  # some facility reached its limit
               for f in taken.facilities if f.max_orders_per_day)


def test_a_quote_sees_the_stock_of_its_styles_other_variants():
    """`broken_style` weighs the variants an order does not ask for: a quote copies their
    stock from the live index too, so it picks the broken assortment as a batch would."""
    from routing_dsl.snapshot import Order

    from .builders import facility, item, order, rule_plan, stock, world
    products = [{"id": v, "parent": "STYLE"} for v in ("S", "M", "L")]
    snapshot = world([facility("A_COMPLETE"), facility("Z_BROKEN")],
                     [stock("A_COMPLETE", v, 10) for v in ("S", "M", "L")]
                     + [stock("Z_BROKEN", "S", 10), stock("Z_BROKEN", "M", 10)],
                     [], products=products)
    the_plan = rule_plan("assign partial sort by broken_style")
    state = LiveState([the_plan], lambda: snapshot)
    state.refresh()
    wanted = Order.model_validate(order("O1", [item("1", "S", 1)]))
    answer = state.quote(wanted)
    fresh = run_plan(the_plan, snapshot.model_copy(update={"orders": [wanted]}), explain=True,
                     explain_orders={"O1"})
    assert [line["facility"] for line in answer["lines"]] == ["Z_BROKEN"]  # not the first by id
    assert answer["lines"] == fresh["allocations"]
    assert answer["explanations"] == fresh["explanations"]


def test_a_decision_without_explanation_has_the_same_lines(committing):
    client, _ = committing
    quote = client.post("/v1/decisions", json={"order": order_for("A")}).json()
    plain = client.post("/v1/decisions", json={"order": order_for("A"), "explain": False})
    assert plain.status_code == 200
    assert plain.json()["lines"] == quote["lines"] and plain.json()["explanations"] == []
    assert quote["explanations"]
    committed = client.post("/v1/decisions", json={"order": order_for("A"), "commit": True,
                                                   "explain": False, "idempotency_key": "k"})
    assert committed.json()["lines"] == quote["lines"]
    assert committed.json()["explanations"] == []
    assert client.post("/v1/decisions", json={"order": order_for("A"), "explain": 0}
                       ).status_code == 422
