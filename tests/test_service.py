"""The HTTP service, in process (ASGI) and fuzzed from its OpenAPI document: decisions equal
the batch engine's, bad requests get problem documents, never a 500."""

from __future__ import annotations

import copy
import json
import re
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


def _upgrade(db: str) -> None:
    """Migrate a run store in this process, not through another interpreter: the served
    process is what these tests drive; `routing db upgrade` as a command is tested apart."""
    store = RunStore(db)
    try:
        store.upgrade()
    finally:
        store.dispose()


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


@pytest.mark.parametrize("literal", [str(2**64), "1e400", str(2**53)])
@pytest.mark.parametrize("commit", [False, True], ids=["quote", "commit"])
def test_a_quantity_outside_the_supported_range_is_a_422_for_quotes_and_commits(
        client, literal, commit):
    order = copy.deepcopy(DOCUMENT["orders"][0])
    order["ship_groups"][0]["items"][0]["quantity"] = "@"
    body = {"order": order, "commit": commit}
    if commit:
        body["idempotency_key"] = "k-1"
    answer = client.post("/v1/decisions", content=json.dumps(body).replace('"@"', literal),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == (
        f"order.ship_groups.0.items.0.quantity: {literal} is outside the supported range "
        "(finite numbers up to 9007199254740991)")


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
        assert 'routing_batches_total{trigger="api",status="succeeded"} 1' in metrics
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


def test_the_api_with_a_run_store_never_answers_500(stored):
    """The same, with a run store behind the endpoints that read it (PostgreSQL when there is
    one: it refuses what SQLite stores, a NUL in a string)."""
    from hypothesis import given
    schema = schemathesis.openapi.from_asgi("/openapi.json", make_app(stored))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(excluded_checks=[positive_data_acceptance])
        check()


def test_routing_serve_answers_http_and_stops_on_sigterm(tmp_path):
    import os

    import httpx

    from routing_dsl.service.launch import serving
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    _upgrade(db)
    with serving([str(EXAMPLE / "omnichannel.route"), "--source", str(EXAMPLE / "snapshot.json"),
                  "--db", db], cwd=EXAMPLE, env={**os.environ, "ROUTING_TOKEN": "t0ken"}) as served:
        base = served.base
        body = {"order": DOCUMENT["orders"][1]}
        assert httpx.post(f"{base}/v1/decisions", json=body).status_code == 401
        token = {"Authorization": "Bearer t0ken"}
        answer = httpx.post(f"{base}/v1/decisions", json=body, headers=token)
        assert answer.status_code == 200 and answer.json()["lines"]
        commit = {**body, "commit": True, "idempotency_key": "checkout-1"}
        # the first scheduled round may hold the partition: 503 + Retry-After, key unused
        deadline = time.monotonic() + 90
        while (committed := httpx.post(f"{base}/v1/decisions", json=commit,
                                       headers=token)).status_code == 503:
            assert committed.headers["Retry-After"] and time.monotonic() < deadline
            time.sleep(0.1)
        assert committed.status_code == 200 and committed.json()["committed"], committed.text
        assert httpx.post(f"{base}/v1/decisions", json=commit, headers=token).json() == \
            committed.json()
        [batch] = committed.json()["batches"]
        assert httpx.get(f"{base}/v1/batches/{batch}").json()["allocations"] == \
            len(committed.json()["lines"])
        assert httpx.get(f"{base}/openapi.json").json()["paths"]["/v1/decisions"]
    assert served.process.returncode == 0, served.stderr  # SIGTERM is a clean stop


def test_a_refresh_from_a_broken_source_is_a_409_and_the_loaded_state_stays(tmp_path):
    """`routing serve` reads its source through the application layer, which raises typed
    errors: a source that became invalid answers 409, one that went away 503 with Retry-After,
    each a problem document naming the problem (it used to exit the worker and drop the
    connection), and decisions go on against the state loaded before."""
    import os

    import httpx

    from routing_dsl.service.launch import serving
    source = tmp_path / "snapshot.json"
    source.write_text(json.dumps(DOCUMENT))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    _upgrade(db)
    env = {**os.environ, "ROUTING_TOKEN": "t0ken"}
    with serving([str(EXAMPLE / "omnichannel.route"), "--source", str(source), "--db", db],
                 cwd=tmp_path, env=env) as served:
        token = {"Authorization": "Bearer t0ken"}
        loaded = httpx.get(f"{served.base}/healthz").json()["loaded_at"]
        source.write_text(json.dumps(dict(DOCUMENT, timezone="Mars/Olympus")))
        broken = httpx.post(f"{served.base}/v1/state/refresh", headers=token)
        assert broken.status_code == 409
        assert broken.headers["content-type"].startswith("application/problem+json")
        assert "timezone: unknown time zone 'Mars/Olympus'" in broken.json()["detail"]
        source.unlink()
        gone = httpx.post(f"{served.base}/v1/state/refresh", headers=token)
        assert gone.status_code == 503 and gone.headers["retry-after"]
        assert "no such file or directory" in gone.json()["detail"]
        assert httpx.get(f"{served.base}/healthz").json()["loaded_at"] == loaded
        quote = httpx.post(f"{served.base}/v1/decisions", headers=token,
                           json={"order": DOCUMENT["orders"][1]})
        assert quote.status_code == 200 and quote.json()["lines"]
    assert served.process.returncode == 0, served.stderr


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
    from routing_dsl.app import load_plan
    from routing_dsl.snapshot import Order
    the_plan = load_plan(route_file)
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
    from routing_dsl.bench.scenarios import PLAN as BENCH_PLAN, SHIPPING_PLAN, Scenario, generate
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


def test_quotes_skip_a_rule_outside_its_window_as_a_run_does():
    """A rule outside its `active` window is skipped by every quote, as a run skips it (the
    live state lowers a routing's rules once per load; such a routing is a new copy at every
    decision, with the same rules)."""
    from routing_dsl.snapshot import Order, parse_snapshot
    text = (EXAMPLE / "omnichannel.route").read_text(encoding="utf-8").replace(
        'rule "Nearest warehouse ships everything" extends',
        'rule "Nearest warehouse ships everything" active until "2026-01-01" extends', 1)
    assert "active until" in text
    windowed = compile_program(Workspace().check_text(text, name="omnichannel.route").program)
    state = LiveState([windowed], lambda: load_snapshot(EXAMPLE / "snapshot.json"))
    state.refresh()
    for _ in range(3):  # the same answers, decision after decision
        for document in DOCUMENT["orders"]:
            order = Order.model_validate(document)
            answer = state.quote(order)
            fresh = run_plan(windowed, parse_snapshot(dict(DOCUMENT, orders=[document])),
                             explain=True, explain_orders={order.id})
            assert answer["lines"] == fresh["allocations"], order.id
            assert answer["explanations"] == fresh["explanations"], order.id
            assert "Nearest warehouse ships everything" not in json.dumps(answer)


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


# ---- HTTP limits ----

def _order_with_lines(count: int) -> dict:
    order = json.loads(json.dumps(DOCUMENT["orders"][1]))
    group = order["ship_groups"][0]
    group["items"] = [dict(group["items"][0], id=str(k)) for k in range(count)]
    return order


def test_bodies_over_the_limit_are_413_problems_declared_or_streamed():
    from routing_dsl.service.server import Limits
    state = LiveState([PLAN], lambda: load_snapshot(EXAMPLE / "snapshot.json"))
    state.refresh()
    with TestClient(create_app(state, limits=Limits(max_body_bytes=4096))) as client:
        declared = client.post("/v1/decisions", content=b"x" * 5000,
                               headers={"content-type": "application/json"})

        def chunks():  # no Content-Length: the bytes are counted as they come
            for _ in range(5):
                yield b" " * 1000
        streamed = client.post("/v1/decisions", content=chunks(),
                               headers={"content-type": "application/json"})
        for answer in (declared, streamed):
            assert answer.status_code == 413
            assert answer.headers["content-type"] == "application/problem+json"
            assert "4096 bytes" in answer.json()["detail"]
            assert answer.headers["connection"] == "close"
        assert client.post("/v1/state/refresh", content=b"x" * 5000).status_code == 413
        assert client.post("/v1/decisions", json={"order": DOCUMENT["orders"][1]}).status_code \
            == 200


def test_an_order_with_more_lines_than_allowed_is_a_422(client):
    answer = client.post("/v1/decisions", json={"order": _order_with_lines(101)})
    assert answer.status_code == 422
    assert answer.json()["title"] == "too many lines"
    assert "101 lines" in answer.json()["detail"] and "--max-lines" in answer.json()["detail"]
    assert client.post("/v1/decisions", json={"order": _order_with_lines(100)}).status_code \
        == 200


def test_big_decisions_run_on_a_worker_thread_not_on_the_event_loop():
    """A quote of up to 20 lines (about a millisecond) runs on the event loop; a bigger one
    on a worker thread, so that it never holds up the other requests."""
    import threading
    seen = []

    class Watched(LiveState):
        def quote(self, order, explain=True):
            seen.append(threading.current_thread())
            return super().quote(order, explain)
    state = Watched([PLAN], lambda: load_snapshot(EXAMPLE / "snapshot.json"))
    state.refresh()
    on_loop = {}
    with TestClient(create_app(state)) as client:
        loop = client.portal.call(threading.current_thread)  # the app's event loop thread
        for lines in (3, 20, 21, 100):
            seen.clear()
            answer = client.post("/v1/decisions", json={"order": _order_with_lines(lines)})
            assert answer.status_code == 200
            on_loop[lines] = seen == [loop]
    assert on_loop == {3: True, 20: True, 21: False, 100: False}


def test_a_batch_is_found_by_id_however_many_came_after(tmp_path):
    import uuid
    from datetime import UTC, datetime, timedelta

    from routing_dsl.ops import schema as t
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    oldest = store.start_batch(group="G", product_store="STORE", plan_json="{}",
                               source_name="rules.route", source_text=None, snapshot_hash="",
                               started=datetime(2026, 1, 1, tzinfo=UTC))
    start = datetime(2026, 2, 1, tzinfo=UTC)
    with store.engine.begin() as connection:
        plan = connection.execute(t.batches.select()).mappings().one()["plan_hash"]
        connection.execute(t.batches.insert(), [
            {"id": str(uuid.uuid4()), "trigger": "api", "group_name": "G",
             "product_store": "STORE", "plan_hash": plan, "snapshot_hash": "",
             "started": start + timedelta(seconds=k), "status": "succeeded",
             "attempted_items": 1, "brokered_items": 1, "allocations": 1, "unfillable": 0}
            for k in range(10_050)])
    with TestClient(make_app(store)) as client:
        found = client.get(f"/v1/batches/{oldest}")
        assert found.status_code == 200 and found.json()["id"] == oldest
        assert client.get(f"/v1/batches/{uuid.uuid4()}").status_code == 404


def test_metrics_query_nothing(tmp_path):
    """/metrics is built from counters kept as things happen: a scrape costs no query, however
    big the run store."""
    import sqlalchemy as sa
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: statements.append(statement))
    with TestClient(make_app(store)) as client:
        assert client.post("/v1/groups/Omnichannel brokering/runs").status_code == 200
        assert statements  # the run did write
        statements.clear()
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert 'routing_batches_total{trigger="api",status="succeeded"} 1' in metrics.text
        assert statements == []


HOSTILE = [
    ("get", "/console?until=9999-12-31", 200),
    ("get", "/console?since=9999-12-31&until=9999-12-31", 200),
    ("get", "/console?since=0001-01-01", 200),
    ("get", "/console?until=2027-02-30", 422),
    ("get", "/console?since=99999-01-01", 422),
    ("get", "/console?since=yesterday", 422),
    ("get", "/console?group=a%00b", 422),
    ("get", "/v1/batches?limit=0", 422),
    ("get", "/v1/batches?limit=1001", 422),
    ("get", "/v1/batches?limit=1e999", 422),
    ("get", "/v1/batches?limit=%00", 422),
    ("get", "/v1/batches/a%00b", 422),
    ("get", "/v1/batches/" + "9" * 5000, 404),
    ("get", "/v1/orders/a%00b/history", 422),
    ("get", "/console/batches/a%00b", 422),
    ("get", "/console/batches/a%00b/rules", 422),
    ("get", "/console/orders/a%00b", 422),
    ("post", "/v1/groups/a%00b/runs", 422),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """An app with a run store on PostgreSQL when there is one (where a NUL answered 500),
    else on SQLite."""
    from .conftest import PG_ADMIN, postgres_database
    import sqlalchemy as sa
    try:
        with sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3}).connect():
            reachable = True
    except Exception:  # noqa: BLE001 - no server here: SQLite it is
        reachable = False
    if reachable:
        with postgres_database("hostile") as url:
            store = RunStore(url)
            store.upgrade()
            yield store
            store.dispose()
        return
    store = RunStore(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'runs.db'}")
    store.upgrade()
    yield store


@pytest.mark.parametrize("method, path, status", HOSTILE, ids=[p for _, p, _ in HOSTILE])
def test_hostile_query_parameters_and_ids_get_4xx_never_500(stored, method, path, status):
    with TestClient(make_app(stored), raise_server_exceptions=False) as client:
        answer = getattr(client, method)(path)
    assert answer.status_code == status, answer.text
    if status >= 400:
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("where", ["order id", "item id", "idempotency key", "product"])
def test_a_nul_in_a_decision_is_refused_and_leaves_nothing_running(stored, where):
    order = json.loads(json.dumps(DOCUMENT["orders"][1]))
    body = {"order": order, "commit": True, "idempotency_key": "k-nul"}
    if where == "order id":
        order["id"] = "O\u00001"
    elif where == "item id":
        order["ship_groups"][0]["items"][0]["id"] = "1\u0000"
    elif where == "product":
        order["ship_groups"][0]["items"][0]["product"] = "\u0000"
    else:
        body["idempotency_key"] = "k\u0000"
    with TestClient(make_app(stored), raise_server_exceptions=False) as client:
        answer = client.post("/v1/decisions", json=body)
        assert answer.status_code == 422, answer.text
        assert "NUL" in answer.json()["detail"]
    assert [b for b in stored.batches(1000) if b.status == "running"] == []
    # an escaped backslash before u0000 is text, not a NUL
    with TestClient(make_app(stored)) as client:
        order["id"] = "O\\u0000"
        order["ship_groups"][0]["items"][0].update(id="1", product="RUN-9")
        assert client.post("/v1/decisions", json={"order": order}).status_code == 200


def test_responses_carry_security_headers(client):
    api = client.get("/healthz")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    console = client.get("/console")
    policy = console.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy
    assert "script-src" not in policy and "frame-ancestors 'none'" in policy
    assert console.headers["x-frame-options"] == "DENY"
    assert "style=" not in console.text  # inline styles would be refused by the policy
    assert "content-security-policy" not in client.get("/docs").headers  # it loads scripts


# ---- the server's own limits, against a real `routing serve` ----

def _lower_open_files_limit() -> None:
    """In the server's process before it starts: the soft limit most systems default to."""
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """`routing serve` with short timeouts, small caps, and a soft open-file limit of 1,024."""
    import os

    from routing_dsl.service.launch import serving
    folder = tmp_path_factory.mktemp("limited")
    _upgrade(f"sqlite:///{folder / 'runs.db'}")
    env = {k: v for k, v in os.environ.items() if k != "ROUTING_TOKEN"}
    with serving([str(EXAMPLE / "omnichannel.route"), "--source",
                  str(EXAMPLE / "snapshot.json"), "--db", str(folder / "runs.db"),
                  "--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1",
                  "--max-lines", "2", "--max-body-bytes", "4096", "--max-connections", "300"],
                 cwd=folder, env=env, preexec_fn=_lower_open_files_limit) as served:
        yield served


def _closed_within(connection, seconds: float) -> bytes:
    """What the server sent before closing ``connection`` (fails if it stays open longer)."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"still open after {seconds} s; received {received[:80]!r}")
    except OSError:
        pass
    connection.close()
    return received


def test_idle_connections_neither_exhaust_descriptors_nor_starve_health_checks(limited):
    import resource
    import socket

    import httpx
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2400:
        pytest.skip(f"this test opens 1,100 connections; the hard open-file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2400), hard))
    limits = (f"/proc/{limited.process.pid}/limits")
    server_soft = next(line.split()[3] for line in open(limits) if line.startswith("Max open"))
    assert server_soft == str(hard)  # raised from 1,024 to the hard limit at start
    host, port = limited.base.removeprefix("http://").split(":")
    idle = []
    try:
        for k in range(1100):
            idle.append(socket.create_connection((host, int(port))))
            if k % 275 == 274:
                assert httpx.get(f"{limited.base}/healthz").status_code == 200
        metrics = httpx.get(f"{limited.base}/metrics").text
        # at the cap of 300, each new connection closed the one idle the longest (or, on a
        # machine slow enough that opening them took over a second, the header timeout did)
        closed = {reason: int(n) for reason, n in re.findall(
            r'closed_total\{reason="(\w+)"\} (\d+)', metrics)}
        assert closed.get("evicted", 0) > 0
        assert closed.get("evicted", 0) + closed.get("header_timeout", 0) >= 1100 - 300
        # and idle connections that never send a byte go at the header timeout: within the
        # same 1.5 s as before, read every 0.1 s rather than once at the end
        deadline = time.monotonic() + 1.5
        while True:
            metrics = httpx.get(f"{limited.base}/metrics").text
            open_now = int(re.search(r"routing_http_connections (\d+)", metrics).group(1))
            if open_now <= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert open_now <= 2
    finally:
        for connection in idle:
            connection.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_slow_senders_are_cut_off(limited):
    import socket
    host, port = limited.base.removeprefix("http://").split(":")
    # the three timeouts run side by side (each connection is its own), each still held to
    # closing within 3 s of its last byte sent
    # a body that never comes whole: 408 after the body timeout
    body = socket.create_connection((host, int(port)))
    body.sendall(b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                 b"content-length: 400\r\n\r\n{\"order\"")
    body_sent = time.monotonic()
    # a kept-alive connection idle after its answer is closed at the keep-alive timeout
    kept = socket.create_connection((host, int(port)))
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    kept_sent = time.monotonic()
    # headers trickled a byte at a time (slowloris): 408 once the header timeout is up
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        for _ in range(20):
            time.sleep(0.2)
            slow.sendall(b"X")
    except OSError:
        pass
    answer = _closed_within(slow, 3)
    assert answer.startswith(b"HTTP/1.1 408") and b"request headers too slow" in answer
    assert time.monotonic() - started < 3
    answer = _closed_within(body, max(0.01, 3 - (time.monotonic() - body_sent)))
    assert answer.startswith(b"HTTP/1.1 408") and b"request body too slow" in answer
    assert _closed_within(kept, max(0.01, 3 - (time.monotonic() - kept_sent))).startswith(
        b"HTTP/1.1 200")
    # headers over 64 KiB: 431
    big = socket.create_connection((host, int(port)))
    big.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000)
    assert _closed_within(big, 3).startswith(b"HTTP/1.1 431")
    import httpx
    metrics = httpx.get(f"{limited.base}/metrics").text
    for reason in ("header_timeout", "body_timeout", "idle", "header_too_large"):
        assert f'reason="{reason}"' in metrics


def test_serve_options_set_the_body_and_line_limits(limited):
    import httpx
    too_many = httpx.post(f"{limited.base}/v1/decisions", json={"order": _order_with_lines(3)})
    assert too_many.status_code == 422 and "at most 2" in too_many.json()["detail"]
    too_big = httpx.post(f"{limited.base}/v1/decisions", content=b" " * 5000,
                         headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and "4096" in too_big.json()["detail"]
    assert httpx.post(f"{limited.base}/v1/decisions",
                      json={"order": _order_with_lines(2)}).status_code == 200


def test_the_service_doc_health_example_is_what_healthz_answers():
    from datetime import UTC, datetime

    from routing_dsl.ops.scheduler import Supervision
    doc = (ROOT / "docs" / "service.md").read_text()
    example = json.loads(re.search(r"<!-- tested: healthz -->\n```json\n(.*?)```", doc,
                                   re.S).group(1))
    supervision = Supervision()
    for _ in range(3):
        supervision.failed("scheduler rules.route", datetime(2027, 1, 5, 13, 1, tzinfo=UTC),
                           "source: snapshot.json: not valid JSON: unexpected end of data", 4)
    state = LiveState([PLAN], lambda: load_snapshot(EXAMPLE / "snapshot.json"))
    state.refresh()
    with TestClient(create_app(state, supervision=supervision)) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body.keys() == example.keys() and body["scheduler"].keys() == \
        example["scheduler"].keys()
    assert body["status"] == example["status"] and body["reasons"] == example["reasons"]
    supervision.clear("scheduler rules.route")
    with TestClient(create_app(state, supervision=supervision)) as client:
        assert client.get("/healthz").json()["status"] == "ok"


def test_a_refresh_from_a_source_that_cannot_be_read_keeps_the_state_loaded_before(tmp_path):
    source = tmp_path / "snapshot.json"
    source.write_text((EXAMPLE / "snapshot.json").read_text())
    state = LiveState([PLAN], lambda: load_snapshot(source))
    state.refresh()
    loaded = state.loaded_at
    with TestClient(create_app(state)) as client:
        source.write_text(source.read_text()[:300])  # half-written
        assert client.post("/v1/state/refresh").status_code == 409
        from routing_dsl.app import snapshot_source  # what `routing serve` reads with
        state.source = snapshot_source(source)
        source.unlink()  # gone
        gone = client.post("/v1/state/refresh")
        assert gone.status_code == 503 and gone.headers["retry-after"]
        assert "no such file" in gone.json()["detail"]
        assert state.loaded_at == loaded
        assert client.post("/v1/decisions", json={"order": DOCUMENT["orders"][1]}) \
            .json()["lines"]


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
