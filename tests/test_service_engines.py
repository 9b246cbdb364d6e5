"""The service's decisions on both engines: a quote or a commit answers the same bytes whether
the fast engine (its arrays kept current in the live state, engine.live) or the reference
engine decides it, with and without explanations, on every example and on generated
retailers where commits and batches take stock between the decisions."""

from __future__ import annotations

import json

import orjson
import pytest

from routing_dsl.app import load_plan
from routing_dsl.bench.scenarios import PLAN, SHIPPING_PLAN, Scenario, generate
from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.ops.store import RunStore
from routing_dsl.service.state import LiveState
from routing_dsl.snapshot import Order, Snapshot, load_snapshot

from .conftest import ROOT

EXAMPLES = ROOT / "examples"
CASES = [(route_file, snapshot) for folder in sorted(EXAMPLES.iterdir()) if folder.is_dir()
         for route_file in sorted(folder.glob("*.route"))
         for snapshot in sorted(folder.glob("snapshot*.json"))]
ENGINES = ("reference", "fast")


def states(plan, snapshot, store_for=None) -> dict[str, LiveState]:
    """A loaded live state per engine (each with its own run store, when ``store_for``)."""
    made = {}
    for engine in ENGINES:
        store = store_for(engine) if store_for else None
        made[engine] = LiveState([plan], lambda: snapshot, store=store, engine=engine)
        made[engine].refresh()
    return made


@pytest.mark.parametrize("route_file,snapshot_file", CASES,
                         ids=[f"{r.parent.name}/{r.name}/{s.name}" for r, s in CASES])
def test_quotes_answer_the_same_bytes_on_both_engines(route_file, snapshot_file):
    # every plan, optimised ones too (examples/optimize: `serve --engine fast` serves it)
    plan = load_plan(route_file)
    snapshot = load_snapshot(snapshot_file)
    live = states(plan, snapshot)
    orders = [Order.model_validate(o) for o in json.loads(snapshot_file.read_text())["orders"]]
    assert orders
    for _ in range(2):  # the second time round on what the first prepared
        for order in orders:
            for explain in (True, False):
                answers = {engine: orjson.dumps(state.quote(order, explain))
                           for engine, state in live.items()}
                assert answers["fast"] == answers["reference"], (order.id, explain)


def _without_batch_ids(answer: bytes) -> dict:
    decided = json.loads(answer)
    assert decided["committed"] and len(decided["batches"]) >= 1
    return {**decided, "batches": len(decided["batches"])}


@pytest.mark.parametrize("shipping,seed", [(False, 1), (False, 2), (True, 3)],
                         ids=["distance-1", "distance-2", "shipping"])
def test_quotes_and_commits_answer_alike_as_stock_is_taken(tmp_path, shipping, seed):
    """A generated retailer whose facilities start near their daily limits: quotes and
    commits (with and without explanations) interleaved, a batch halfway, on two services
    each with its own run store, one per engine: every answer the same (the commits' batch
    ids aside, fresh on each), so the fast engine's arrays follow what was taken."""
    document = generate(Scenario(orders=200, facilities=30, skus=25, shipping=shipping,
                                 seed=seed))
    for facility in document["facilities"]:
        if facility.get("max_orders_per_day"):
            facility["orders_today"] = facility["max_orders_per_day"] - 1
    orders = [Order.model_validate(o) for o in document["orders"][:120]]
    snapshot = Snapshot.model_validate({**document, "orders": document["orders"][120:]})
    plan = compile_program(Workspace().check_text(SHIPPING_PLAN if shipping else PLAN,
                                                  name="bench.route").program)

    def store_for(engine: str) -> RunStore:
        store = RunStore(f"sqlite:///{tmp_path / engine}.db")
        store.upgrade()
        return store
    live = states(plan, snapshot, store_for)
    commits = 0
    for k, order in enumerate(orders):
        if k == 60:
            for state in live.values():
                state.run_group(plan, plan.groups[0])
        if k % 3 == 2:
            explain = k % 2 == 0
            answers = {engine: _without_batch_ids(state.commit(order, f"key-{k}", explain))
                       for engine, state in live.items()}
            commits += bool(answers["fast"]["lines"])
        else:
            answers = {engine: orjson.dumps(state.quote(order, explain=k % 2 == 0))
                       for engine, state in live.items()}
        assert answers["fast"] == answers["reference"], (order.id, k)
    assert commits > 10  # the commits took stock: later answers depended on it


def test_auto_decides_on_the_reference_engine_until_the_kernel_is_loaded():
    """A service never waits for a compile it did not ask for: the kernel loads in a thread
    of its own from the first live state that may use it (a cache that misses compiles it,
    for minutes on a busy machine); until then `auto` decides on the reference engine."""
    from routing_dsl.engine import live
    document = generate(Scenario(orders=20, facilities=10, skus=40, seed=4))
    snapshot = Snapshot.model_validate(document)
    stock = live.live_stock(snapshot, arrays=True)  # starts loading the kernel
    lines = sum(len(g.items) for o in snapshot.orders for g in o.ship_groups)
    assert lines >= max(live.SMALL_LINES.values())  # large enough for the fast engine
    assert live.KERNEL_LOADED.wait(900)
    assert live.engine_for("auto", snapshot, False, stock) == "fast"
    # the kernel emits explanations itself: an explained decision of this size is fast too
    assert live.engine_for("auto", snapshot, True, stock) == "fast"
    live.KERNEL_LOADED.clear()
    try:
        assert live.engine_for("auto", snapshot, False, stock) == "reference"
        assert live.engine_for("fast", snapshot, False, stock) == "fast"
    finally:
        live.KERNEL_LOADED.set()
