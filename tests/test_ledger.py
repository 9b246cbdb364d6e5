"""The promises a router must keep, on real databases and real processes: never promise a unit
twice (across stores sharing a facility, processes, restarts and kill -9), never lose or repeat
an acknowledged decision (durable idempotency keys), never emit a decision twice, and a busy
partition answers 503 without consuming anything."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.ops.store import RunStore
from routing_dsl.service.launch import serving
from routing_dsl.snapshot import Order, parse_snapshot

from .conftest import postgres_database

NOW = "2026-11-23T09:30:00+00:00"
RULES = """declare queue _NA_, PARK

group "A" for store A {
  routing "R" {
    filter { queue in [_NA_, PARK] }
    rule "take" {
      assign partial
      when unfilled { move to queue PARK }
    }
  }
}

group "B" for store B {
  routing "R" {
    filter { queue in [_NA_, PARK] }
    rule "take" {
      assign partial
      when unfilled { move to queue PARK }
    }
  }
}
"""


def world(shared: bool = True, stock: int = 30, limit: int | None = 25,
          orders: list[dict] | None = None, now: str = NOW) -> dict:
    """Stores A and B, each with a store of its own, and (when ``shared``) a warehouse they
    share: 5 units of P1 at each store, ``stock`` at the warehouse, which takes ``limit``
    orders a day."""
    facilities = [
        {"id": "A_STORE", "lat": 40.0, "lon": -74.0, "product_stores": ["A"]},
        {"id": "B_STORE", "lat": 41.0, "lon": -73.0, "product_stores": ["B"]},
        {"id": "_NA_", "virtual": True, "product_stores": ["A", "B"]},
        {"id": "PARK", "virtual": True, "product_stores": ["A", "B"]},
    ]
    inventory = [{"facility": "A_STORE", "product": "P1", "atp": 5},
                 {"facility": "B_STORE", "product": "P1", "atp": 5}]
    if shared:
        facilities.append({"id": "WH", "lat": 40.5, "lon": -73.5, "product_stores": ["A", "B"],
                           "max_orders_per_day": limit})
        inventory.append({"facility": "WH", "product": "P1", "atp": stock})
    return {"format": "routing-snapshot/1", "now": now, "timezone": "UTC",
            "product_stores": [{"id": "A"}, {"id": "B"}], "facilities": facilities,
            "products": [{"id": "P1"}], "inventory": inventory,
            "shipment_methods": [], "orders": orders or []}


def order(oid: str, store: str, quantity: int = 1, queue: str = "_NA_") -> dict:
    return {"id": oid, "product_store": store, "order_date": "2026-11-22T10:00:00+00:00",
            "ship_groups": [{"id": "1", "facility": queue,
                             "ship_to": {"lat": 40.2, "lon": -73.8},
                             "items": [{"id": "1", "product": "P1", "quantity": quantity}]}]}


def commit_body(oid: str, store: str, key: str | None = None, quantity: int = 1) -> dict:
    return {"order": order(oid, store, quantity), "commit": True,
            "idempotency_key": key or f"key-{oid}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    with postgres_database("routing_ledger") as url:
        yield url


def prepare(tmp_path, db_url: str, document: dict) -> list[str]:
    """The rules, the snapshot and a migrated run store; the `routing serve` arguments."""
    (tmp_path / "rules.route").write_text(RULES)
    (tmp_path / "snapshot.json").write_text(json.dumps(document))
    subprocess.run([sys.executable, "-m", "routing_dsl", "db", "upgrade", "--db", db_url],
                   check=True, capture_output=True)
    return [str(tmp_path / "rules.route"), "--source", str(tmp_path / "snapshot.json"),
            "--db", db_url, "--poll-seconds", "3600"]


def assert_within_stock(store: RunStore, document: dict) -> dict:
    """Every unit allocated in the run store is stock of ``document``, no facility takes more
    orders than its daily limit, and no order line is allocated beyond its quantity (for the
    orders ``document`` holds). Returns the units allocated per (facility, product)."""
    stock = {(r["facility"], r["product"]): r["atp"] - r.get("minimum_stock", 0)
             for r in document["inventory"]}
    limits = {f["id"]: f["max_orders_per_day"] - f.get("orders_today", 0)
              for f in document["facilities"] if f.get("max_orders_per_day") is not None}
    lines = {(o["id"], g["id"], i["id"]): i["quantity"] - i.get("cancel_quantity", 0)
             for o in document["orders"] for g in o["ship_groups"] for i in g["items"]}
    taken: dict = {}
    allocated: dict = {}
    shipments: dict = {}
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "select order_id, ship_group, item, product, facility, quantity, new_ship_group "
            "from allocations").all()
    for order_id, ship_group, item, product, facility, quantity, new_group in rows:
        taken[(facility, product)] = taken.get((facility, product), 0) + quantity
        allocated[(order_id, ship_group, item)] = \
            allocated.get((order_id, ship_group, item), 0) + quantity
        shipments.setdefault(facility, set()).add((order_id, new_group))
    assert [k for k, q in taken.items() if q > stock.get(k, 0) + 1e-9] == [], taken
    assert [f for f, s in shipments.items() if f in limits and len(s) > limits[f]] == []
    assert [k for k, q in allocated.items() if k in lines and q > lines[k] + 1e-9] == []
    return taken


def post(client: httpx.Client, base: str, body: dict, attempts: int = 50) -> httpx.Response:
    """POST a commit, retrying a 503 as its Retry-After says (a busy partition)."""
    for _ in range(attempts):
        answer = client.post(f"{base}/v1/decisions", json=body, timeout=30)
        if answer.status_code != 503:
            return answer
        assert answer.headers["retry-after"]
        time.sleep(0.05)
    return answer


def drive(bases: list[str], bodies: list[dict], threads: int = 8) -> dict[str, dict]:
    """Send ``bodies`` from ``threads`` clients spread over the servers at ``bases``; the
    acknowledged answers by key (a connection refused by a killed server is no answer)."""
    acknowledged: dict[str, dict] = {}
    queue = list(reversed(bodies))
    guard = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client() as http:
            while True:
                with guard:
                    if not queue:
                        return
                    body = queue.pop()
                try:
                    answer = post(http, bases[k % len(bases)], body)
                except httpx.TransportError:
                    continue
                assert answer.status_code == 200, answer.text
                with guard:
                    acknowledged[body["idempotency_key"]] = answer.json()
    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return acknowledged


def recorded_keys(store: RunStore) -> dict[str, dict]:
    with store.engine.connect() as connection:
        return {key: json.loads(answer) for key, answer in connection.exec_driver_sql(
            "select key, answer from decision_keys").all()}


# ---- stores sharing a facility, several processes --------------------------------------------

@pytest.mark.parametrize("servers", [1, 2, 3])
def test_concurrent_commits_on_stores_sharing_a_facility_never_oversell(tmp_path, db_url,
                                                                        servers):
    """Orders of A and B compete for the shared warehouse, from ``servers`` `routing serve`
    processes on one run store: every acknowledged commit is recorded, with its answer, and
    no unit or daily order slot is sold twice."""
    document = world(stock=30, limit=25)
    arguments = prepare(tmp_path, db_url, document)
    # 90 units asked of 40 (5 at each store, 30 at the warehouse, which takes 25 orders)
    bodies = [commit_body(f"{'AB'[k % 2]}-{k}", "AB"[k % 2], quantity=1 + k % 2)
              for k in range(60)]
    with ExitStack() as running:
        bases = [running.enter_context(serving(arguments)).base for _ in range(servers)]
        acknowledged = drive(bases, bodies)
    assert len(acknowledged) == len(bodies)
    store = RunStore(db_url)
    taken = assert_within_stock(store, document)
    assert taken[("WH", "P1")] > 0 and taken[("A_STORE", "P1")] == 5  # the stock was contested
    keys = recorded_keys(store)
    assert keys == acknowledged  # every acknowledged answer is the one recorded
    lines = sum(len(a["lines"]) for a in acknowledged.values())
    assert lines == sum(b.allocations for b in store.batches(10_000))
    store.dispose()


def test_a_killed_server_loses_no_acknowledged_commit_and_resells_nothing(tmp_path, db_url):
    """kill -9 in the middle of a load; a new server on the same store answers every
    acknowledged key with its answer, reserves nothing more for them, and sells nothing
    that was committed before the kill again."""
    document = world(stock=40, limit=None)
    arguments = prepare(tmp_path, db_url, document)
    bodies = [commit_body(f"{'AB'[k % 2]}-{k}", "AB"[k % 2]) for k in range(160)]
    acknowledged: dict = {}
    with serving(arguments) as served:
        loader = threading.Thread(target=lambda: acknowledged.update(
            drive([served.base], bodies, threads=6)))
        loader.start()
        deadline = time.monotonic() + 60
        while RunStore(db_url).batches(5) == [] or len(RunStore(db_url).batches(100)) < 20:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        served.process.send_signal(signal.SIGKILL)
        loader.join()
    store = RunStore(db_url)
    before = recorded_keys(store)
    assert set(acknowledged) <= set(before)  # acknowledged means committed
    assert len(before) < len(bodies)  # the kill came mid-load
    batches_before = len(store.batches(100_000))
    with serving(arguments) as served, httpx.Client() as http:
        for body in bodies:
            answer = post(http, served.base, body)
            assert answer.status_code == 200, answer.text
            key = body["idempotency_key"]
            if key in before:
                assert answer.json() == before[key]  # the same answer, nothing reserved again
    assert len(store.batches(100_000)) == batches_before + len(bodies) - len(before)
    assert_within_stock(store, document)
    store.dispose()


# ---- idempotency keys -----------------------------------------------------------------------

def test_one_key_sent_at_once_with_two_stores_orders_gives_one_decision(tmp_path, db_url):
    """A and B share nothing (two partitions, two locks): the same key sent to two servers
    at the same moment, once with an order of A and once with one of B, is decided once;
    the other request gets that key's 409."""
    arguments = prepare(tmp_path, db_url, world(shared=False))
    with serving(arguments) as one, serving(arguments) as two:
        for k in range(12):
            bodies = [(one.base, commit_body(f"A-{k}", "A", key=f"same-{k}")),
                      (two.base, commit_body(f"B-{k}", "B", key=f"same-{k}"))]
            if k % 2:
                bodies.reverse()
            barrier = threading.Barrier(2)
            answers: list = [None, None]

            def send(i: int, base: str, body: dict, barrier=barrier, answers=answers) -> None:
                with httpx.Client() as http:
                    barrier.wait()
                    answers[i] = post(http, base, body)
            threads = [threading.Thread(target=send, args=(i, *pair))
                       for i, pair in enumerate(bodies)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(a.status_code for a in answers) == [200, 409], \
                [a.text for a in answers]
    store = RunStore(db_url)
    assert len(recorded_keys(store)) == 12
    assert len(store.batches(1000)) == 12  # one decision (a batch of one) per key
    store.dispose()


def test_a_busy_partition_answers_503_and_the_key_stays_unused(tmp_path, db_url):
    from routing_dsl.ops.locks import PartitionLock
    arguments = prepare(tmp_path, db_url, world())
    store = RunStore(db_url)
    body = commit_body("A-1", "A")
    with serving(arguments) as served, httpx.Client() as http:
        with PartitionLock(store, ["A", "B"]) as held:  # a batch routing the partition
            assert held
            started = time.monotonic()
            refused = http.post(f"{served.base}/v1/decisions", json=body, timeout=30)
            waited = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 1.5 < waited < 10  # a bounded wait
        assert recorded_keys(store) == {} and store.batches() == []
        again = http.post(f"{served.base}/v1/decisions", json=body, timeout=30)
        assert again.status_code == 200 and again.json()["committed"]
        assert again.json()["lines"]
        assert list(recorded_keys(store)) == ["key-A-1"]
    store.dispose()


def test_keys_survive_a_restart_and_hold_any_store_to_its_order(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    arguments = prepare(tmp_path, db, world())
    with serving(arguments) as served:
        first = httpx.post(f"{served.base}/v1/decisions", json=commit_body("A-1", "A"))
        assert first.status_code == 200
    with serving(arguments) as served:
        again = httpx.post(f"{served.base}/v1/decisions", json=commit_body("A-1", "A"))
        assert again.json() == first.json()
        other = httpx.post(f"{served.base}/v1/decisions",
                           json=commit_body("B-9", "B", key="key-A-1"))
        assert other.status_code == 409 and "idempotency" in other.json()["title"]
    assert len(RunStore(db).batches()) == 1


# ---- no decision emitted twice --------------------------------------------------------------

def test_a_parked_item_is_not_moved_again_across_rounds(tmp_path, db_url):
    """An order no facility can fill is parked in PARK once; later rounds (whose routing
    looks in PARK too) see it there and emit nothing more for it: no outbox, history or
    ledger row. The outbox holds one pending row per decision (a unique key)."""
    from routing_dsl.cli import main
    from click.testing import CliRunner
    document = world(orders=[order("BIG", "A", quantity=500), order("SMALL", "A")])
    prepare(tmp_path, db_url, document)
    command = ["run", str(tmp_path / "rules.route"), "--snapshot",
               str(tmp_path / "snapshot.json"), "--db", db_url, "--out", "-"]
    for _ in range(3):
        assert CliRunner().invoke(main, command).exit_code == 0
    store = RunStore(db_url)
    pending = store.pending()
    kinds = sorted((p["order"], p["kind"]) for p in pending)
    # BIG takes what A's store and the warehouse hold, the rest of it is parked, once;
    # SMALL finds nothing left and is parked, once
    assert kinds == [("BIG", "allocation"), ("BIG", "allocation"), ("BIG", "move_to_queue"),
                     ("SMALL", "move_to_queue")]
    moves = [h for h in store.history() if h["reason"] == "moved_to_queue"]
    assert sorted((m["order"], m["from"], m["to"]) for m in moves) == [
        ("BIG", "_NA_", "PARK"), ("SMALL", "_NA_", "PARK")]
    with store.engine.connect() as connection:
        dedupe = connection.exec_driver_sql("select dedupe from outbox").scalars().all()
        assert len(dedupe) == len(set(dedupe)) == len(pending)
        parked = connection.exec_driver_sql(
            "select count(*) from reservations where kind = 'move_to_queue'").scalar()
        assert parked == 2
    runs = [b for b in store.batches() if b.group == "A"]
    assert [b.allocations for b in runs] == [0, 0, 2]
    assert [b.unfillable for b in runs] == [2, 2, 2]  # seen again, not moved again
    assert_within_stock(store, document)
    store.dispose()


def test_the_outbox_refuses_a_second_pending_row_for_one_decision(db_url):
    import sqlalchemy as sa
    store = RunStore(db_url)
    store.upgrade()
    from routing_dsl.ops import schema as t
    row = {"batch_id": "b", "kind": "allocation", "order_id": "O", "payload": "{}",
           "created": datetime.now(UTC), "dedupe": "same"}
    with store.engine.begin() as connection:
        connection.execute(t.plans.insert().values(hash="h", source_name="x", plan_json="{}",
                                                   created=datetime.now(UTC)))
        connection.execute(t.batches.insert().values(
            id="b", trigger="api", group_name="G", product_store="S", plan_hash="h",
            snapshot_hash="", started=datetime.now(UTC), status="succeeded",
            attempted_items=0, brokered_items=0, allocations=0, unfillable=0))
        connection.execute(t.outbox.insert().values(**row))
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
        connection.execute(t.outbox.insert().values(**row))
    store.ack(batch="b")  # once applied, the unit's state may change: a new row may come
    with store.engine.begin() as connection:
        connection.execute(t.outbox.insert().values(**row))
    store.dispose()


# ---- the reflection rule --------------------------------------------------------------------

def test_a_static_source_never_gives_back_a_reservation(tmp_path):
    """Acknowledged or not, a decision stays applied on a source whose `now` is before the
    acknowledgement (a file, an old export): across restarts, and in `routing run`."""
    from click.testing import CliRunner

    from routing_dsl.cli import main
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    document = world(stock=2, limit=None, orders=[order("W", "A", quantity=9)])
    arguments = prepare(tmp_path, db, document)
    with serving(arguments) as served:
        taken = httpx.post(f"{served.base}/v1/decisions",
                           json=commit_body("A-1", "A", quantity=4)).json()
        assert sum(line["quantity"] for line in taken["lines"]) == 4
    store = RunStore(db)
    assert store.ack(batch=taken["batches"][0]) > 0
    with serving(arguments) as served:
        quote = httpx.post(f"{served.base}/v1/decisions", json={"order": order("Q", "A", 9)})
        # A reaches 7 units (its store's 5 and the warehouse's 2): 3 are left
        assert sum(line["quantity"] for line in quote.json()["lines"]) == 3
    run = CliRunner().invoke(main, ["run", str(tmp_path / "rules.route"), "--snapshot",
                                    str(tmp_path / "snapshot.json"), "--db", db, "--out", "-"])
    assert sum(a["quantity"] for a in json.loads(run.stdout)["allocations"]) == 3
    assert_within_stock(store, document)
    store.dispose()


# ---- any interleaving -----------------------------------------------------------------------

class Oms:
    """An OMS behind the source: it applies the outbox rows it acknowledges (stock out,
    daily counts up, allocated lines out of the queue, parked items into their queue), and
    its export is as of the moment it is read."""

    def __init__(self, document: dict):
        self.document = json.loads(json.dumps(document))

    def apply(self, rows: list[dict]) -> None:
        stock = {(r["facility"], r["product"]): r for r in self.document["inventory"]}
        facilities = {f["id"]: f for f in self.document["facilities"]}
        orders = {o["id"]: o for o in self.document["orders"]}
        opened = set()
        for row in rows:
            decision = row["decision"]
            if row["kind"] == "allocation":
                stock[(decision["facility"], decision["product"])]["atp"] -= \
                    decision["quantity"]
                if (decision["order"], decision["new_ship_group"]) not in opened:
                    opened.add((decision["order"], decision["new_ship_group"]))
                    facility = facilities[decision["facility"]]
                    facility["orders_today"] = facility.get("orders_today", 0) + 1
                source = orders.get(decision["order"])
                if source is not None:
                    item = source["ship_groups"][0]["items"][0]
                    item["cancel_quantity"] = item.get("cancel_quantity", 0) + \
                        decision["quantity"]
            elif row["kind"] == "move_to_queue" and decision["order"] in orders:
                orders[decision["order"]]["ship_groups"][0]["facility"] = decision["queue"]

    def read(self):
        return parse_snapshot({**self.document, "now": datetime.now(UTC).isoformat()})


STEPS = st.lists(st.one_of(
    st.tuples(st.just("commit"), st.sampled_from("AB"), st.integers(1, 4)),
    st.tuples(st.just("retry"), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("batch"), st.sampled_from("AB"), st.just(0)),
    st.tuples(st.just("ack"), st.integers(1, 6), st.just(0)),
    st.tuples(st.just("refresh"), st.just(""), st.just(0)),
    st.tuples(st.just("restart"), st.just(""), st.just(0))), min_size=1, max_size=24)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(steps=STEPS)
def test_any_interleaving_of_commits_batches_acks_and_restarts_stays_within_stock(
        tmp_path_factory, steps):
    from routing_dsl.service.state import LiveState
    folder = tmp_path_factory.mktemp("interleaving")
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    store.upgrade()
    plan = compile_program(Workspace().check_text(RULES, name="rules.route").program)
    base = world(stock=8, limit=3, orders=[order(f"S{k}", "AB"[k % 2], 1 + k % 3)
                                           for k in range(6)])
    oms = Oms(base)

    def start() -> LiveState:
        state = LiveState([plan], oms.read, store=store, commit_wait=0.5)
        state.refresh()
        return state
    state = start()
    keys: list[tuple[str, Order]] = []
    answers: dict[str, bytes] = {}
    acked = 0.0
    for step, (action, value, amount) in enumerate(steps):
        if action == "commit":
            wanted = Order.model_validate(order(f"C{step}", value, amount))
            key = f"k{step}"
            answers[key] = state.commit(wanted, key)
            keys.append((key, wanted))
        elif action == "retry" and keys:
            key, wanted = keys[value % len(keys)]
            assert state.commit(wanted, key) == answers[key]
        elif action == "batch":
            state.run_groups(plan, frozenset([value]), trigger="api")
        elif action == "ack":
            pending = store.pending()[:value]
            oms.apply(pending)
            store.ack([p["id"] for p in pending])
            acked = time.monotonic()
        elif action in ("refresh", "restart"):
            # acknowledgements count to the second (ledger.reflection_cutoff): let this read
            # be one that may reflect them
            time.sleep(max(0.0, acked + 1.0 - time.monotonic()))
            if action == "refresh":
                state.refresh()
            else:
                state = start()
    assert_within_stock(store, base)
    assert len(store.batches(1000)) >= len(answers)
    store.dispose()


def test_the_reflection_cutoff_is_the_earlier_of_the_read_and_the_snapshot_to_the_second():
    from routing_dsl.ops.ledger import reflection_cutoff
    read = datetime(2026, 12, 1, 10, 0, 5, 700_000, tzinfo=UTC)
    assert reflection_cutoff(read, read + timedelta(hours=1)) == read.replace(microsecond=0)
    old = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert reflection_cutoff(read, old) == old


def test_ledger_ids_never_come_back_after_a_purge(tmp_path):
    """SQLite hands out max(id) + 1: the ledger takes its ids above every head ever written,
    so a purge of the newest lines cannot make a reader skip new ones."""
    from click.testing import CliRunner

    from routing_dsl.cli import main
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    prepare(tmp_path, db, world(orders=[order("S1", "A")]))
    command = ["run", str(tmp_path / "rules.route"), "--snapshot",
               str(tmp_path / "snapshot.json"), "--db", db, "--out", "-"]
    assert CliRunner().invoke(main, command).exit_code == 0
    store = RunStore(db)
    first = store.heads()["A"]
    store.ack([p["id"] for p in store.pending()])
    assert store.purge(timedelta(0)) == 2 and store.ledger(reflected_before=None) == []
    prepare(tmp_path, db, world(orders=[order("S2", "A")]))
    assert CliRunner().invoke(main, command).exit_code == 0
    assert store.heads()["A"] > first
    store.dispose()


def test_daily_order_limits_hold_across_restarts_commits_and_batches(tmp_path):
    """The warehouse takes 3 orders a day: B's orders go there first (it is nearer than
    B's store). Reaching the limit through commits, the limit holds after a restart, for a
    batch of the source's orders, and for commits after it."""
    from routing_dsl.service.state import LiveState
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    store.upgrade()
    plan = compile_program(Workspace().check_text(RULES, name="rules.route").program)
    snapshot = parse_snapshot(world(stock=30, limit=3, orders=[order("S1", "B"),
                                                               order("S2", "B")]))

    def start() -> LiveState:
        state = LiveState([plan], lambda: snapshot, store=store)
        state.refresh()
        return state

    def facilities(answer: bytes) -> list[str]:
        return [line["facility"] for line in json.loads(answer)["lines"]]
    state = start()
    assert [facilities(state.commit(Order.model_validate(order(f"B{k}", "B")), f"k{k}"))
            for k in range(2)] == [["WH"], ["WH"]]
    state = start()
    assert facilities(state.commit(Order.model_validate(order("B2", "B")), "k2")) == ["WH"]
    state = start()
    assert facilities(state.commit(Order.model_validate(order("B3", "B")), "k3")) == \
        ["B_STORE"]
    result, _ = state.run_groups(plan, frozenset(["B"]))
    assert [a["facility"] for a in result["allocations"]] == ["B_STORE", "B_STORE"]
    assert_within_stock(store, world(stock=30, limit=3))
    store.dispose()


def test_two_thousand_commits_over_sixteen_connections_sell_the_stock_exactly_once(tmp_path):
    """More orders than stock, 16 clients at once on one server (SQLite): every commit is
    acknowledged and recorded, every unit is sold, none twice."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    document = world(stock=1500, limit=None)
    arguments = prepare(tmp_path, db, document)
    bodies = [commit_body(f"{'AB'[k % 2]}-{k}", "AB"[k % 2]) for k in range(2000)]
    with serving(arguments) as served:
        acknowledged = drive([served.base], bodies, threads=16)
    assert len(acknowledged) == 2000
    store = RunStore(db)
    assert recorded_keys(store) == acknowledged
    taken = assert_within_stock(store, document)
    assert taken == {("A_STORE", "P1"): 5, ("B_STORE", "P1"): 5, ("WH", "P1"): 1500}
    assert sum(len(a["lines"]) for a in acknowledged.values()) == 1510
    store.dispose()


def decided_ahead(base: str) -> dict[str, int]:
    """The server's count of commits decided ahead, kept and decided again (/metrics)."""
    found = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("routing_commits_decided_ahead_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = int(line.rsplit(" ", 1)[1])
    return found


def test_commits_decided_ahead_are_kept_and_sell_the_stock_exactly_once(tmp_path, db_url):
    """16 clients on one server: while a group commits, the next one is decided ahead and
    kept (nothing else changed what it read); retried keys among them get their first
    answer. Every unit is sold, none twice, every answer is the recorded one."""
    document = world(stock=300, limit=None)
    arguments = prepare(tmp_path, db_url, document)
    bodies = [commit_body(f"{'AB'[k % 2]}-{k}", "AB"[k % 2], quantity=1 + k % 2)
              for k in range(400)]
    bodies += bodies[100:140]  # retries, mixed into the load
    with serving(arguments) as served:
        acknowledged = drive([served.base], bodies, threads=16)
        ahead = decided_ahead(served.base)
    assert len(acknowledged) == 400
    assert ahead["kept"] > 0, ahead
    store = RunStore(db_url)
    assert recorded_keys(store) == acknowledged
    taken = assert_within_stock(store, document)
    assert taken == {("A_STORE", "P1"): 5, ("B_STORE", "P1"): 5, ("WH", "P1"): 300}
    assert len(store.batches(10_000)) == 400  # one decision a key
    store.dispose()


def test_an_order_committed_again_under_another_key_is_allocated_once(tmp_path, db_url):
    """Each order committed, then once answered committed again under another key, from 16
    clients: the second commit may be decided ahead, not knowing the first's lines, and is
    then decided again under the lock, where it sees them and allocates nothing more; no
    order line is allocated beyond its quantity."""
    document = world(stock=300, limit=None)
    arguments = prepare(tmp_path, db_url, document)
    pairs = [[commit_body(f"{'AB'[k % 2]}-{k}", "AB"[k % 2], key=f"{which}-{k}", quantity=2)
              for which in ("first", "second")] for k in range(150)]
    acknowledged: dict[str, dict] = {}
    guard = threading.Lock()

    def client(base: str) -> None:
        with httpx.Client() as http:
            while True:
                with guard:
                    if not pairs:
                        return
                    pair = pairs.pop()
                for body in pair:  # the second once the first is answered
                    answer = post(http, base, body)
                    assert answer.status_code == 200, answer.text
                    with guard:
                        acknowledged[body["idempotency_key"]] = answer.json()
    with serving(arguments) as served:
        clients = [threading.Thread(target=client, args=(served.base,)) for _ in range(16)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        ahead = decided_ahead(served.base)
    assert len(acknowledged) == 300 and ahead["kept"] > 0, ahead
    document["orders"] = [order(f"{'AB'[k % 2]}-{k}", "AB"[k % 2], 2) for k in range(150)]
    store = RunStore(db_url)
    assert recorded_keys(store) == acknowledged
    assert_within_stock(store, document)  # no line beyond its quantity
    for k in range(150):  # the first takes the order's 2 units, the second nothing
        assert sum(line["quantity"] for line in acknowledged[f"first-{k}"]["lines"]) == 2
        assert acknowledged[f"second-{k}"]["lines"] == []
    store.dispose()


def test_two_servers_on_one_partition_decide_again_what_the_other_changed(tmp_path, db_url):
    """Two `routing serve` processes commit to one partition: a group one decided ahead
    while the other wrote the stock it read is decided again under the lock (never
    written as decided ahead), and nothing is sold twice."""
    document = world(stock=300, limit=None)
    arguments = prepare(tmp_path, db_url, document)
    bodies = [commit_body(f"{'AB'[k % 2]}-{k}", "AB"[k % 2], quantity=1 + k % 2)
              for k in range(400)]
    with serving(arguments) as one, serving(arguments) as two:
        acknowledged = drive([one.base, two.base], bodies, threads=16)
        ahead = [decided_ahead(one.base), decided_ahead(two.base)]
    assert len(acknowledged) == 400
    assert sum(a["decided_again"] for a in ahead) > 0, ahead
    store = RunStore(db_url)
    assert recorded_keys(store) == acknowledged
    taken = assert_within_stock(store, document)
    assert taken == {("A_STORE", "P1"): 5, ("B_STORE", "P1"): 5, ("WH", "P1"): 300}
    store.dispose()


def test_quotes_see_what_another_process_committed_within_a_second(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    arguments = prepare(tmp_path, db, world(shared=False))
    with serving(arguments) as one, serving(arguments) as two:
        quote = {"order": order("Q", "A", 5)}
        assert sum(line["quantity"] for line in httpx.post(
            f"{two.base}/v1/decisions", json=quote).json()["lines"]) == 5
        taken = httpx.post(f"{one.base}/v1/decisions", json=commit_body("A-1", "A", quantity=5))
        assert sum(line["quantity"] for line in taken.json()["lines"]) == 5
        deadline = time.monotonic() + 5
        while httpx.post(f"{two.base}/v1/decisions", json=quote).json()["lines"]:
            assert time.monotonic() < deadline, "the other process's commit never showed"
            time.sleep(0.1)
        # and a commit there is decided on it at once, under the partition's lock
        late = httpx.post(f"{two.base}/v1/decisions", json=commit_body("A-2", "A"))
        assert late.json()["lines"] == []


def test_a_commit_after_the_database_dropped_the_committers_connection_is_made():
    """The committer keeps its connection between groups (no liveness check a group): one
    the server closed meanwhile (a restart, an idle timeout) is found dead before anything
    is written, and the commit runs on a fresh one: committed once, not a 503."""
    import sqlalchemy as sa

    from routing_dsl.service.state import LiveState
    plan = compile_program(Workspace().check_text(RULES, name="rules.route").program)
    snapshot = parse_snapshot(world(stock=30))
    with postgres_database("routing_kept") as url:
        store = RunStore(url)
        store.upgrade()
        state = LiveState([plan], lambda: snapshot, store=store)
        state.refresh()
        first = json.loads(state.commit(Order.model_validate(order("K1", "A")), "k1"))
        with store.engine.connect() as connection:  # every other session of the database
            dropped = connection.execute(sa.text(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where datname = current_database() and pid <> pg_backend_pid()")).scalar()
        second = json.loads(state.commit(Order.model_validate(order("K2", "A")), "k2"))
        again = json.loads(state.commit(Order.model_validate(order("K2", "A")), "k2"))
        assert dropped >= 1 and first["committed"] and second["committed"]
        assert again == second and len(recorded_keys(store)) == 2
        assert_within_stock(store, world(stock=30))
        store.dispose()
