"""Invariants over random snapshots: never allocate beyond net stock, never route more than
is open, respect daily limits, and give byte-identical results for the same input."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing_dsl.interpreter import run_plan
from routing_dsl.result import dump_result

from .builders import facility, item, order, plan, stock, world
from .strategies import sampled

RULES = [
    'rule "single" { assign single sort by distance }',
    'rule "partial" { assign partial sort by inventory_balance desc }',
    'rule "safety" { assign partial inventory { brokering_safety_stock > 1 } }',
    'rule "kits" { assign partial inventory { keep_item_groups_together '
    'only_if_all_items_available } sort by distance }',
    'rule "near" { assign partial inventory { distance <= 30 mi shipment_threshold 5 } '
    'sort by distance, sales_velocity }',
    'rule "groups" { assign single inventory { facility_group in [A, B] facility_group != C } '
    'sort by facility_sequence, broken_style }',
]
PRODUCTS = ["P1", "P2", "P3"]


# built once, not on every draw (see tests/strategies.py sampled)
COORDINATES = st.one_of(st.none(), st.tuples(st.floats(40.0, 41.0), st.floats(-74.5, -73.5)))
LIMITS = st.one_of(st.none(), st.integers(0, 3))
VELOCITIES = st.one_of(st.none(), st.floats(0, 5))


@st.composite
def snapshots(draw):
    facilities = []
    for index in range(draw(st.integers(1, 4))):
        groups = {g: draw(st.integers(1, 3)) for g in draw(st.sets(sampled("ABC")))}
        coords = draw(COORDINATES)
        facilities.append(facility(f"F{index}", *(coords or (None, None)), groups=groups,
                                   limit=draw(LIMITS),
                                   today=draw(st.integers(0, 2))))
    inventory = []
    for f in facilities:
        for product in draw(st.sets(sampled(PRODUCTS))):
            inventory.append(stock(f["id"], product, draw(st.integers(-2, 8)),
                                   minimum=draw(st.integers(0, 3)), brokering=draw(st.booleans()),
                                   velocity=draw(VELOCITIES)))
    orders = []
    for o in range(draw(st.integers(1, 6))):
        items = []
        for i in range(draw(st.integers(1, 4))):
            quantity = draw(st.integers(1, 5))
            items.append(item(f"{i:05d}", draw(sampled(PRODUCTS)), quantity,
                              cancel_quantity=draw(st.integers(0, quantity)),
                              unit_price=draw(sampled([1.0, 5.0, 20.0])),
                              item_group=draw(sampled([None, None, "K1", "K2"]))))
        orders.append(order(f"O{o}", items, ship_to=draw(sampled(
            [(40.7, -74.0), (40.2, -74.3), None]))))
    products = [{"id": "P1", "parent": "S"}, {"id": "P2", "parent": "S"}, {"id": "P3"}]
    return world(facilities, inventory, orders, products=products)


@st.composite
def plans(draw):
    rules = draw(st.lists(sampled(RULES), min_size=1, max_size=3, unique=True))
    return plan('routing "R" { filter { queue == _NA_ } ' + " ".join(rules) + " }")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), plans())
def test_never_allocates_beyond_net_stock_or_open_quantity(snapshot, the_plan):
    result = run_plan(the_plan, snapshot)
    net = {(r.facility, r.product): r.atp - r.minimum_stock for r in snapshot.inventory
           if r.allow_brokering}
    taken = defaultdict(float)
    per_item = defaultdict(float)
    for allocation in result["allocations"]:
        assert allocation["quantity"] > 0
        taken[(allocation["facility"], allocation["product"])] += allocation["quantity"]
        per_item[(allocation["order"], allocation["item"])] += allocation["quantity"]
    for key, quantity in taken.items():
        assert key in net and quantity <= net[key] + 1e-9, key
    for o in snapshot.orders:
        for g in o.ship_groups:
            for i in g.items:
                assert per_item[(o.id, i.id)] <= i.quantity - i.cancel_quantity + 1e-9


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), plans())
def test_daily_order_limits_hold(snapshot, the_plan):
    result = run_plan(the_plan, snapshot)
    before = {f.id: f.orders_today for f in snapshot.facilities}
    limits = {f.id: f.max_orders_per_day for f in snapshot.facilities}
    for count in result["facility_counts_after"]:
        limit = limits[count["facility"]]
        if limit is not None and count["orders_today"] > before[count["facility"]]:
            assert count["orders_today"] <= limit


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), plans())
def test_runs_are_deterministic(snapshot, the_plan):
    first = dump_result(run_plan(the_plan, snapshot, explain=True))
    second = dump_result(run_plan(the_plan, snapshot, explain=True))
    assert first == second
