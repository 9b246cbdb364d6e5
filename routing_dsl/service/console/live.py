"""The console's views of the live state: what waits in each queue and for how long, stock
and daily counts per facility and product, orders found by id, ship group, product or
facility, and which routing would take a waiting order next.

The indexes are built once per load of the live state (the snapshot does not change until the
next refresh; what decisions take since is read from the state as it stands). "Which routing
next" is a dry run of the plans on the order alone (`interpreter.run_plan`, the engine's own
entry point), against the state with what was taken applied: it changes nothing.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ...runtime import run_plan
from ...ops.ledger import apply_order, replace_fields

EPSILON = 1e-9
# How long units have waited, by their order's date against the snapshot's clock.
AGE_BUCKETS = (("under 1 h", timedelta(hours=1)), ("1–4 h", timedelta(hours=4)),
               ("4–24 h", timedelta(days=1)), ("1–3 days", timedelta(days=3)),
               ("3–7 days", timedelta(days=7)), ("over 7 days", None))
NO_DATE = "no order date"
# A routing's queue filter, by operator: does it take ship groups waiting in ``queue``?
_QUEUE_TEST = {"==": lambda queue, ids: queue == ids[0], "!=": lambda queue, ids: queue != ids[0],
               "in": lambda queue, ids: queue in ids, "not in": lambda queue, ids: queue not in ids,
               "is null": lambda queue, ids: False, "is not null": lambda queue, ids: True}


@dataclass
class Waiting:
    """A ship group waiting in a queue (its units as loaded)."""

    order: object
    group: object
    ordered: datetime | None


@dataclass
class LiveIndex:
    """Lookups over one loaded snapshot."""

    snapshot: object
    orders: dict = field(default_factory=dict)            # id -> order
    order_ids: list = field(default_factory=list)         # sorted
    by_product: dict = field(default_factory=dict)        # product -> sorted order ids
    by_ship_group: dict = field(default_factory=dict)     # ship group id -> sorted order ids
    by_facility: dict = field(default_factory=dict)       # where a ship group is -> order ids
    facilities: dict = field(default_factory=dict)        # id -> facility
    waiting: dict = field(default_factory=dict)           # queue -> [Waiting], oldest first
    stock_by_facility: dict = field(default_factory=dict)  # facility -> rows by product
    stock_by_product: dict = field(default_factory=dict)   # product -> rows by facility

    @classmethod
    def build(cls, snapshot) -> LiveIndex:
        index = cls(snapshot)
        products, groups, places = defaultdict(set), defaultdict(set), defaultdict(set)
        index.facilities = {f.id: f for f in snapshot.facilities}
        queues = {f.id for f in snapshot.facilities if f.virtual}
        waiting = defaultdict(list)
        for order in snapshot.orders:
            index.orders[order.id] = order
            for group in order.ship_groups:
                groups[group.id].add(order.id)
                places[group.facility].add(order.id)
                for item in group.items:
                    products[item.product].add(order.id)
                if group.facility in queues:
                    waiting[group.facility].append(Waiting(order, group, order.order_date))
        index.order_ids = sorted(index.orders)
        index.by_product = {k: sorted(v) for k, v in products.items()}
        index.by_ship_group = {k: sorted(v) for k, v in groups.items()}
        index.by_facility = {k: sorted(v) for k, v in places.items()}
        far = datetime.max.replace(tzinfo=snapshot.now.tzinfo)
        index.waiting = {q: sorted(rows, key=lambda w: (w.ordered or far, w.order.id,
                                                        w.group.id))
                         for q, rows in waiting.items()}
        by_facility, by_product = defaultdict(list), defaultdict(list)
        for row in snapshot.inventory:
            by_facility[row.facility].append(row)
            by_product[row.product].append(row)
        index.stock_by_facility = {k: sorted(v, key=lambda r: r.product)
                                   for k, v in by_facility.items()}
        index.stock_by_product = {k: sorted(v, key=lambda r: r.facility)
                                  for k, v in by_product.items()}
        return index


_built: dict = {}
_building = threading.Lock()


def index_of(state) -> LiveIndex | None:
    """The index of the state's snapshot as loaded now (built on first use after a load)."""
    snapshot = state.snapshot
    if snapshot is None:
        return None
    with _building:
        known = _built.get("index")
        if known is None or known.snapshot is not snapshot:
            known = _built["index"] = LiveIndex.build(snapshot)
        return known


# ---- search ----

def search(index: LiveIndex | None, q: str, by: str, after: str, limit: int) -> list[str]:
    """Order ids of the live state matching ``q`` (an order id prefix, or a ship group,
    product or facility id), after ``after``, in order."""
    if index is None:
        return []
    if by == "order":
        ids = index.order_ids
        start = bisect.bisect_right(ids, after) if after >= q else bisect.bisect_left(ids, q)
        found = []
        for order_id in ids[start:]:
            if not order_id.startswith(q) or len(found) >= limit:
                break
            found.append(order_id)
        return found
    table = {"ship_group": index.by_ship_group, "product": index.by_product,
             "facility": index.by_facility}[by]
    ids = table.get(q, [])
    start = bisect.bisect_right(ids, after)
    return ids[start:start + limit]


# ---- queues ----

def waiting_now(state, index: LiveIndex) -> dict:
    """What waits in each queue now: the snapshot's ship groups as loaded, with what the
    ledger's pending lines did to them (`LiveState.pending`): allocated units no longer
    open, items moved to another queue waiting there."""
    effects = state.pending()
    if not effects:
        return index.waiting
    touched = effects.orders
    waiting = {q: [w for w in rows if w.order.id not in touched]
               for q, rows in index.waiting.items()}
    for order_id in touched:
        order = index.orders.get(order_id)
        if order is None:
            continue
        current = apply_order(order, effects)
        for group in current.ship_groups:
            facility = index.facilities.get(group.facility)
            if facility is not None and facility.virtual:
                waiting.setdefault(group.facility, []).append(
                    Waiting(current, group, current.order_date))
    far = datetime.max.replace(tzinfo=index.snapshot.now.tzinfo)
    return {q: sorted(rows, key=lambda w: (w.ordered or far, w.order.id, w.group.id))
            for q, rows in waiting.items()}


def open_units(waiting: Waiting) -> tuple[float, int]:
    """Units of a waiting ship group still to route (approved, not cancelled), and how many
    items hold them."""
    if waiting.order.status != "APPROVED":
        return 0.0, 0
    units, items = 0.0, 0
    for item in waiting.group.items:
        if item.status != "APPROVED":
            continue
        left = item.quantity - item.cancel_quantity
        if left > EPSILON:
            units += left
            items += 1
    return units, items


def age_bucket(now: datetime, ordered: datetime | None) -> str:
    if ordered is None:
        return NO_DATE
    age = now - ordered
    for name, bound in AGE_BUCKETS:
        if bound is None or age < bound:
            return name
    return AGE_BUCKETS[-1][0]


def routings_for(state, queue: str, stores: list[str]) -> list[dict]:
    """The routings whose group routes one of ``stores`` and whose queue filter takes
    ``queue``, in the order they run (their other filters may still leave an order out)."""
    found = []
    for plan in state.plans:
        for group in plan.groups:
            if group.product_store not in stores:
                continue
            for routing in group.routings:
                tests = [c for c in routing.filters if c.field == "queue"]
                if all(_QUEUE_TEST[c.op](queue, c.ids) for c in tests):
                    found.append({"group": group, "routing": routing.name})
    return found


def queue_summary(state, index: LiveIndex | None) -> list[dict]:
    """Each queue: ship groups and units waiting, by age, and the routings that draw from
    it."""
    if index is None:
        return []
    rows = []
    now = waiting_now(state, index)
    for queue in sorted(q for q, f in index.facilities.items() if f.virtual):
        ages = dict.fromkeys([name for name, _ in AGE_BUCKETS] + [NO_DATE], 0.0)
        groups, units = 0, 0.0
        for waiting in now.get(queue, ()):
            left, _ = open_units(waiting)
            if left <= EPSILON:
                continue
            groups += 1
            units += left
            ages[age_bucket(index.snapshot.now, waiting.ordered)] += left
        facility = index.facilities[queue]
        rows.append({"queue": queue, "ship_groups": groups, "units": units, "ages": ages,
                     "routings": routings_for(state, queue, facility.product_stores)})
    return rows


def waiting_page(state, index: LiveIndex, queue: str, start: int, limit: int
                 ) -> tuple[list[dict], int]:
    """One page of the ship groups waiting in ``queue``, oldest first, each with what a run
    now would do with it; and how many wait in all."""
    waiting = [w for w in waiting_now(state, index).get(queue, ())
               if open_units(w)[0] > EPSILON]
    rows = []
    for entry in waiting[start:start + limit]:
        units, items = open_units(entry)
        rows.append({"order": entry.order.id, "ship_group": entry.group.id, "units": units,
                     "items": items, "ordered": entry.ordered,
                     "age": age_bucket(index.snapshot.now, entry.ordered),
                     "next": next_routing(state, entry)})
    return rows, len(waiting)


def next_routing(state, waiting: Waiting) -> dict | None:
    """What the plans would do now with one waiting ship group (as `waiting_now` has it,
    the ledger's pending lines applied): the first routing that takes it (group, routing,
    rule) and the outcome, from a dry run on that ship group alone against the live state;
    None when no routing takes it."""
    order, ship_group = waiting.order, waiting.group.id
    # the ship group alone: one the ledger split across queues holds its id more than once
    current = replace_fields(order, ship_groups=type(order.ship_groups)([waiting.group]))
    single = state.order_snapshot(current)
    for plan in state.plans:
        result = run_plan(plan, single, prepared=state.prepared(plan), after=False)
        order_of = {(g.name, r.name): k for k, (g, r) in enumerate(
            (g, r) for g in plan.groups for r in g.routings)}
        entries = [(order_of.get((a["group"], a["routing"]), 0), "allocate", a)
                   for a in result["allocations"] if a["ship_group"] == ship_group]
        names = {r.name: g.name for g in plan.groups for r in g.routings}
        entries += [(order_of.get((names.get(u["routing"]), u["routing"]), 0),
                     u["action"], u) for u in result["unfillable"]
                    if u["ship_group"] == ship_group]
        if not entries:
            continue
        first = min(entries, key=lambda e: e[0])[0]
        chosen = [e for e in entries if e[0] == first]
        entry = chosen[0][2]
        facilities = sorted({e[2]["facility"] for e in chosen if e[1] == "allocate"})
        parked = sorted({e[2]["queue"] for e in chosen if e[1] == "moved"})
        return {"group": names.get(entry["routing"], ""), "routing": entry["routing"],
                "rule": entry["rule"], "facilities": facilities, "queues": parked,
                "left": all(e[1] not in ("allocate", "moved") for e in chosen)}
    return None


# ---- stock ----

def facility_rows(state, index: LiveIndex | None, after: str, limit: int) -> list[dict]:
    """Facilities (not queues) by id, after ``after``: orders today against the daily
    limit, and the stock they hold."""
    if index is None:
        return []
    ids = sorted(f for f, facility in index.facilities.items() if not facility.virtual)
    start = bisect.bisect_right(ids, after)
    rows = []
    for facility_id in ids[start:start + limit]:
        facility = index.facilities[facility_id]
        stock = index.stock_by_facility.get(facility_id, [])
        rows.append({"facility": facility_id, "type": facility.type,
                     **daily(state, facility), "products": len(stock),
                     "units": sum(r.atp for r in stock)})
    return rows


def daily(state, facility) -> dict:
    """Orders the facility took today (as loaded, plus the decisions since) and its
    limit."""
    today = facility.orders_today + state.counted_today().get(facility.id, 0)
    limit = facility.max_orders_per_day
    return {"orders_today": today, "limit": limit,
            "full": limit is not None and today >= limit}


def stock_rows(state, index: LiveIndex | None, reserved: dict, *, facility: str | None,
               product: str | None, after: str, limit: int) -> list[dict]:
    """Stock rows of one facility (by product) or of one product (by facility), after
    ``after``: stock as loaded, held back (minimum stock), reserved, and what is left."""
    if index is None:
        return []
    if facility is not None:
        rows = index.stock_by_facility.get(facility, [])
        if product is not None:
            rows = [r for r in rows if r.product == product]
        key = "product"
    else:
        rows = index.stock_by_product.get(product, [])
        key = "facility"
    keys = [getattr(r, key) for r in rows]
    start = bisect.bisect_right(keys, after)
    shown = []
    for row in rows[start:start + limit]:
        taken = reserved.get((row.facility, row.product), 0.0)
        place = index.facilities.get(row.facility)
        shown.append({"facility": row.facility, "product": row.product, "stock": row.atp,
                      "minimum": row.minimum_stock, "reserved": taken,
                      "available": row.atp - row.minimum_stock - taken,
                      "brokering": row.allow_brokering,
                      **(daily(state, place) if place is not None else {})})
    return shown
