"""The honest baseline `routing bench` measures against: routing the way HotWax does it.

The data sits in a SQL database (SQLite, in memory). For every ship group and every rule it
tries, one candidate query does the filtering (facility groups, daily order limit, stock,
distance) and computes the distance in SQL, ordered by the rule's sorts; the greedy assignment
runs over the rows it returns, and every reservation is written back with UPDATE before the
next ship group. It covers what the bench plans use (queue, shipment method and priority
filters; order date and priority sorts; group, distance and safety-stock conditions; single
and partial rules; moves to a queue) and refuses anything else, so that it can never measure a
different procedure: the bench asserts its allocations equal the engine's.
"""

from __future__ import annotations

import sqlite3

from ..runtime import EPSILON, KM_PER_MILE, haversine_radians, radians
from ..plan import Plan
from ..snapshot import Snapshot

_FILTERS = {"queue", "shipment_method", "priority"}
_ORDER_SORTS = {"order_date", "priority"}
_RULE_SORTS = {"distance", "inventory_balance"}
_SQL_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=", "!=": "<>"}


class Unsupported(Exception):
    """The plan uses something the baseline does not implement."""


def check_supported(plan: Plan) -> None:
    for group in plan.groups:
        for routing in group.routings:
            if routing.item_mode:
                raise Unsupported(f"routing {routing.name!r}: item-by-item mode")
            for condition in routing.filters:
                if condition.field not in _FILTERS or condition.op not in ("==", "in"):
                    raise Unsupported(f"routing {routing.name!r}: filter {condition.field}")
            for sort in routing.sorts:
                if sort.field not in _ORDER_SORTS:
                    raise Unsupported(f"routing {routing.name!r}: sort by {sort.field}")
            for rule in routing.rules:
                for sort in rule.sorts:
                    if sort.field not in _RULE_SORTS:
                        raise Unsupported(f"rule {rule.name!r}: sort by {sort.field}")
                for condition in rule.conditions:
                    if condition.field == "facility_group" and condition.op not in ("==", "in"):
                        raise Unsupported(f"rule {rule.name!r}: facility_group {condition.op}")
                if rule.keep_item_groups_together or rule.only_if_all_items_available or \
                        rule.shipment_threshold or rule.actions.clear_auto_cancel or \
                        rule.actions.auto_cancel_days is not None:
                    raise Unsupported(f"rule {rule.name!r}: settings or actions")


def sql_baseline(plan: Plan, snapshot: Snapshot) -> list[tuple]:
    """Route ``snapshot`` with ``plan`` the baseline's way; returns the allocations as (order,
    ship group, item, facility, quantity, rule)."""
    database = load_database(snapshot)
    try:
        return route_in_sql(plan, snapshot, database)
    finally:
        database.close()


def load_database(snapshot: Snapshot) -> sqlite3.Connection:
    """The snapshot's facilities, groups and net stock in an in-memory SQLite database, as an
    OMS holds them before routing starts (not part of the baseline's routing time)."""
    db = sqlite3.connect(":memory:")
    to_miles = 1.0 / KM_PER_MILE

    def distance(lat1, lon1, lat2, lon2, miles):
        a, b = radians(lat1, lon1), radians(lat2, lon2)
        if a is None or b is None:
            return None
        km = haversine_radians(*a, *b)
        return km * to_miles if miles else km

    db.create_function("distance", 5, distance, deterministic=True)
    db.executescript("""
        create table facility (id text primary key, lat real, lon real, lim integer,
                               today integer);
        create table facility_group (facility text, grp text, primary key (grp, facility));
        create table inventory (facility text, product text, net real,
                                primary key (product, facility));
    """)
    db.executemany("insert into facility values (?, ?, ?, ?, ?)", [
        (f.id, f.lat, f.lon, f.max_orders_per_day, f.orders_today)
        for f in snapshot.facilities if not f.virtual])
    db.executemany("insert into facility_group values (?, ?)", [
        (f.id, g) for f in snapshot.facilities if not f.virtual for g in f.groups])
    virtual = {f.id for f in snapshot.facilities if f.virtual}
    columns = snapshot.inventory.columns
    net = (columns.atp - columns.minimum_stock).tolist()
    db.executemany("insert into inventory values (?, ?, ?)", (
        (columns.facility_ids[f], columns.product_ids[p], net[k])
        for k, (f, p, allowed) in enumerate(zip(columns.facility.tolist(),
                                                columns.product.tolist(),
                                                columns.allow_brokering.tolist(), strict=True))
        if allowed and columns.facility_ids[f] not in virtual))
    db.commit()
    return db


def route_in_sql(plan: Plan, snapshot: Snapshot, db: sqlite3.Connection) -> list[tuple]:
    """The baseline's routing over a database from `load_database` (which it changes)."""
    check_supported(plan)
    stores: dict[str, list[str]] = {}
    for f in snapshot.facilities:
        if not f.virtual:
            for store in f.product_stores:
                stores.setdefault(store, []).append(f.id)
    queues = {f.id: set(f.product_stores) for f in snapshot.facilities if f.virtual}
    state = {}  # (order, ship group, item) -> [open, queue]
    lines = []
    for order in sorted(snapshot.orders, key=lambda o: o.id):
        for group in sorted(order.ship_groups, key=lambda g: g.id):
            for item in sorted(group.items, key=lambda i: i.id):
                state[(order.id, group.id, item.id)] = [item.quantity - item.cancel_quantity,
                                                        group.facility]
                lines.append((order, group, item))
    allocations: list[tuple] = []
    for plan_group in plan.groups:
        store = next((s for s in snapshot.product_stores if s.id == plan_group.product_store),
                     None)
        if store is None or not store.enable_brokering:
            continue
        serving = set(stores.get(store.id, ()))
        for routing in plan_group.routings:
            for order, group, items in _units(routing, plan, store.id, lines, state, queues):
                _route_unit(db, routing, serving, order, group, items, state, allocations)
    return allocations


def _units(routing, plan, store, lines, state, queues):
    units: dict[tuple, list] = {}
    for order, group, item in lines:
        open_, queue = state[(order.id, group.id, item.id)]
        if order.product_store != store or order.status != "APPROVED" or \
                item.status != "APPROVED" or open_ <= EPSILON or \
                store not in queues.get(queue, ()):
            continue
        values = {"queue": queue, "shipment_method": group.shipment_method,
                  "priority": order.priority}
        if all(values[c.field] is not None and values[c.field] in c.ids
               for c in routing.filters):
            units.setdefault((order.id, group.id, queue), [order, group, []])[2].append(item)
    ranks: dict[str, int] = {}
    for rank, name in enumerate(plan.priority_order):
        ranks.setdefault(name.upper(), rank)

    def key(unit):
        order, group, _ = unit
        parts = []
        for sort in routing.sorts or [None]:
            field = "order_date" if sort is None else sort.field
            if field == "order_date":
                value = order.order_date.timestamp() if order.order_date else None
            else:
                value = None if order.priority is None else ranks.get(order.priority.upper(),
                                                                      len(ranks))
            descending = sort is not None and sort.descending
            nulls_first = sort is not None and sort.nulls_first
            parts.append((-1 if nulls_first else 1, 0) if value is None
                         else (0, -value if descending else value))
        return (*parts, (order.id, group.id, ""))
    return sorted(units.values(), key=key)


def _route_unit(db, routing, serving, order, group, items, state, allocations):
    ship_to = group.ship_to
    lat, lon = (ship_to.lat, ship_to.lon) if ship_to else (None, None)
    for rule in routing.rules:
        open_items = [i for i in items if state[(order.id, group.id, i.id)][0] > EPSILON]
        if not open_items:
            return
        opened = {i.id: state[(order.id, group.id, i.id)][0] for i in open_items}
        rows = _candidates(db, rule, lat, lon, open_items, opened)
        facilities = {}  # id -> distance
        stock: dict[str, dict[str, float]] = {}
        for facility, d, product, net in rows:
            if facility in serving:
                facilities[facility] = d
                stock.setdefault(product, {})[facility] = net
        placements = _assign(rule, facilities, stock, open_items, opened)
        if placements:
            for facility in dict.fromkeys(f for _, f, _ in placements):
                db.execute("update facility set today = today + 1 where id = ?", (facility,))
            for item, facility, quantity in placements:
                db.execute("update inventory set net = net - ? where facility = ? and "
                           "product = ?", (quantity, facility, item.product))
                state[(order.id, group.id, item.id)][0] -= quantity
                allocations.append((order.id, group.id, item.id, facility, quantity,
                                    rule.name))
        left = [i for i in open_items if state[(order.id, group.id, i.id)][0] > EPSILON]
        if left and rule.actions.move_to_queue:
            for item in left:
                state[(order.id, group.id, item.id)][1] = rule.actions.move_to_queue
            return


def _candidates(db, rule, lat, lon, open_items, opened) -> list[tuple]:
    """The rule's one query: facilities in its groups, under their order limit, holding stock
    of the unit's products (all of it, for `assign single`), within its distance, in the order
    of its sorts."""
    miles = rule.distance_unit != "km"
    products = sorted({i.product for i in open_items})
    where, parameters = [], [lat, lon, miles]
    for condition in rule.conditions:
        if condition.field == "facility_group":
            marks = ", ".join("?" for _ in condition.ids)
            where.append(f"f.id in (select facility from facility_group where grp in ({marks}))")
            parameters += list(condition.ids)
        elif condition.field == "distance":
            where.append(f"d is not null and d {_SQL_OPS[condition.op]} ?")
            parameters.append(condition.number)
    if not rule.ignore_facility_order_limit:
        where.append("(f.lim is null or f.today < f.lim)")
    where.append(f"i.product in ({', '.join('?' for _ in products)}) and i.net > ?")
    parameters += [*products, EPSILON]
    if rule.assign == "single":
        needs: dict[str, float] = {}
        for item in open_items:
            needs[item.product] = needs.get(item.product, 0.0) + opened[item.id]
        each = " or ".join("(n.product = ? and n.net + ? >= ?)" for _ in needs)
        where.append(f"(select count(*) from inventory n where n.facility = f.id and ({each})) = ?")
        for product, need in needs.items():
            parameters += [product, EPSILON, need]
        parameters.append(len(needs))
    order_by = []
    for sort in rule.sorts:
        if sort.field == "distance":
            order_by.append(f"d is null, d {'desc' if sort.descending else 'asc'}")
    order_by.append("f.id")
    query = ("select f.id, distance(f.lat, f.lon, ?, ?, ?) as d, i.product, i.net "
             "from facility f join inventory i on i.facility = f.id "
             f"where {' and '.join(where)} order by {', '.join(order_by)}")
    return db.execute(query, parameters).fetchall()


def _assign(rule, facilities, stock, open_items, opened) -> list[tuple]:
    safety = next((c for c in rule.conditions if c.field == "brokering_safety_stock"), None)
    balance = dict.fromkeys(facilities, 0.0)
    if any(s.field == "inventory_balance" for s in rule.sorts):
        for product in {i.product for i in open_items}:
            for facility, net in stock.get(product, {}).items():
                if net > 0:
                    balance[facility] += net

    def passes_safety(net, need):
        if safety is None:
            return True
        op = _SQL_OPS[safety.op]
        threshold = safety.number
        ok = {"<": net < threshold, "<=": net <= threshold, ">": net > threshold,
              ">=": net >= threshold, "=": net == threshold, "<>": net != threshold}[op]
        return ok and net + EPSILON >= need

    full = dict.fromkeys(facilities, len(open_items) if rule.assign == "single" else 0)
    if rule.assign != "single":
        for item in open_items:
            for facility, net in stock.get(item.product, {}).items():
                if net + EPSILON >= opened[item.id] and facility not in \
                        item.excluded_facilities and (safety is None or (
                            net > EPSILON and passes_safety(net, opened[item.id]))):
                    full[facility] += 1

    def ranking(placed):
        products = sorted({i.product for i in placed})
        levels = [stock.get(p, {}) for p in products]
        holding = [f for f in facilities if all(level.get(f, 0.0) > EPSILON
                                                for level in levels)]
        single = placed[0] if len(placed) == 1 else None

        def key(facility):
            parts = []
            for sort in rule.sorts:
                value = facilities[facility] if sort.field == "distance" else balance[facility]
                parts.append((-1 if sort.nulls_first else 1, 0) if value is None
                             else (0, -value if sort.descending else value))
            parts.append((-full[facility],))
            if single is not None:
                parts.append((-(levels[0][facility] / opened[single.id]),))
            parts.append((facility,))
            return tuple(parts)
        return sorted(holding, key=key)

    pending: dict[tuple, float] = {}

    def available(facility, product):
        return stock.get(product, {}).get(facility, 0.0) - pending.get((facility, product), 0.0)

    def can_serve(item, facility, need=None):
        if facility in item.excluded_facilities:
            return False
        net = available(facility, item.product)
        if net <= EPSILON or not passes_safety(net, opened[item.id]):
            return False
        return need is None or net + EPSILON >= need

    placements = []
    if rule.assign == "single":
        needs: dict[str, float] = {}
        for item in open_items:
            needs[item.product] = needs.get(item.product, 0.0) + opened[item.id]
        for facility in ranking(open_items):
            if all(can_serve(i, facility, needs[i.product]) for i in open_items):
                return [(i, facility, opened[i.id]) for i in open_items]
        return []
    for item in open_items:
        remaining = opened[item.id]
        for facility in ranking([item]):
            if not can_serve(item, facility):
                continue
            net = available(facility, item.product)
            if safety is not None:
                if net + EPSILON < remaining:
                    continue
                take = remaining
            else:
                take = min(net, remaining)
            placements.append((item, facility, take))
            pending[(facility, item.product)] = pending.get((facility, item.product), 0.0) + take
            remaining -= take
            if remaining <= EPSILON:
                break
    return placements
