"""Unit selection: which orders a routing routes, and in what order.

It owns what is in force at the run's time (`active from`/`until` windows of routings and
rules), eligibility (approved items of the store's approved orders, waiting in one of its
queues), the routing's filters and sorts (each criterion's hooks in
`routing_dsl.criteria.orders`), and the reasons an order was not routed
(`not_routed_reasons`, what `routing explain` says of an order no routing picked up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from ..criteria import REGISTRY
from ..criteria.orders import DEFAULT_SORT
from ..criteria.text import ids_text
from ..plan import OrderCondition, Plan, PlanRouting
from ..snapshot import Snapshot
from .state import EPSILON, Context, Unit


def window_bound(text: str | None, zone: ZoneInfo) -> datetime | None:
    """An `active from`/`until` bound as a moment: with its UTC offset, else a wall-clock
    time in ``zone`` (the group's)."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def in_window(step, now: datetime, zone: ZoneInfo) -> bool:
    """Whether a routing or rule runs at ``now``: `from <= now < until`."""
    start, end = window_bound(step.active_from, zone), window_bound(step.active_until, zone)
    return (start is None or start <= now) and (end is None or now < end)


def order_predicate(condition: OrderCondition, ctx: Context) -> Callable[[Unit], bool]:
    """The filter's test of one unit (criteria.orders)."""
    return REGISTRY("order_filter")[condition.field].predicate(condition, ctx)


def priority_ranks(priority_order: list[str]) -> dict[str, int]:
    """Each declared priority's rank (the first declaration of a name counts)."""
    ranks: dict[str, int] = {}
    for rank, name in enumerate(priority_order):
        ranks.setdefault(name.upper(), rank)
    return ranks


def unit_sort_key(routing: PlanRouting, ctx: Context, priority_order: list[str]):
    """The key units are routed in: the routing's order sorts (the default one when it has
    none), then order, ship group and (item by item) item id."""
    ranks = priority_ranks(priority_order)
    sorts = REGISTRY("order_sort")
    parts = [(sorts[DEFAULT_SORT].value_of, False, False)] if not routing.sorts else [
        (sorts[sort.field].value_of, sort.descending, sort.nulls_first)
        for sort in routing.sorts]

    def key(unit: Unit):
        values = []
        for get, descending, nulls_first in parts:
            value = get(unit, ctx, ranks)
            if value is None:
                values.append((-1 if nulls_first else 1, 0))
            else:
                values.append((0, -value if descending else value))
        first = unit.items[0]
        values.append((unit.order.id, unit.ship_group.id, first.item.id if len(unit.items) == 1
                       and routing.item_mode else ""))
        return tuple(values)
    return key


def eligible_units(ctx: Context, store: str, item_mode: bool) -> list[Unit]:
    """The units of ``store`` that may be routed: approved items of its approved orders with
    something open, waiting in one of its queues; one per item in ``item_mode``, else one per
    ship group and queue, in item order (ship group, then item id)."""
    facilities = ctx.facilities
    units: list[Unit] = []
    current: dict[tuple, Unit] = {}
    for state in ctx.items:
        order = state.order
        if (order.product_store != store or order.status != "APPROVED"
                or state.item.status != "APPROVED" or state.open <= EPSILON):
            continue
        queue = facilities.get(state.queue)
        if queue is None or not queue.virtual or store not in queue.stores:
            continue
        if item_mode:
            units.append(Unit(order, state.ship_group, state.queue, [state]))
            continue
        key = (order.id, state.ship_group.id, state.queue)
        unit = current.get(key)
        if unit is None:
            unit = current[key] = Unit(order, state.ship_group, state.queue, [])
            units.append(unit)
        unit.items.append(state)
    return units


def select_units(ctx: Context, store: str, routing: PlanRouting,
                 priority_order: list[str]) -> list[Unit]:
    """The routing's units: eligible, passing its filters, in its order."""
    predicates = [order_predicate(c, ctx) for c in routing.filters]
    units = [u for u in eligible_units(ctx, store, routing.item_mode)
             if all(p(u) for p in predicates)]
    if len(units) > 1:  # (a decision's one unit needs no key)
        units.sort(key=unit_sort_key(routing, ctx, priority_order))
    return units


def in_force(routing: PlanRouting, now: datetime, zone: ZoneInfo) -> PlanRouting | None:
    """The routing with the rules whose windows hold ``now`` (itself when every one does),
    or None when its own window does not or no rule is left: skipped as if draft."""
    if not in_window(routing, now, zone):
        return None
    rules = [rule for rule in routing.rules if in_window(rule, now, zone)]
    if len(rules) == len(routing.rules):
        return routing
    return routing.model_copy(update={"rules": rules}) if rules else None


def absent_queues(group, facilities: dict) -> str | None:
    """When every routing of ``group`` filters on queues the snapshot does not have (as
    queues), say which: that is why nothing was eligible, not the orders."""
    reasons = []
    for routing in group.routings:
        named = [c for c in routing.filters if c.field == "queue" and c.op in ("==", "in")]
        absent = [q for c in named for q in c.ids
                  if q not in facilities or not facilities[q].virtual]
        if not named or len(absent) < sum(len(c.ids) for c in named):
            return None
        shown = ", ".join(repr(q) for q in dict.fromkeys(absent))
        reasons.append(f"routing {routing.name!r} filters on queue {shown}, which the snapshot "
                       "does not have (a facility with that id and \"virtual\": true)")
    return "; ".join(reasons) or None


def not_routed_reasons(plan: Plan, snapshot: Snapshot, result: dict, order_id: str) -> list[str]:
    """Why no routing picked up ``order_id`` (as the snapshot had it): the order or its items
    not approved, nothing left open, ship groups not waiting in a queue of the store, the
    store's group skipped, or, per routing, the first filter condition the order fails."""
    order = next((o for o in snapshot.orders if o.id == order_id), None)
    if order is None:
        return [f"order {order_id!r} is not in the snapshot"]
    ctx = Context(snapshot)
    reasons = []
    if order.status != "APPROVED":
        reasons.append(f"the order's status is {order.status!r}, not 'APPROVED'")
    states = [s for s in ctx.items if s.order.id == order_id]
    if states and all(s.item.status != "APPROVED" for s in states):
        reasons.append("no item of the order is 'APPROVED'")
    if states and all(s.open <= EPSILON for s in states):
        reasons.append("nothing is left to route (every unit is cancelled)")
    for group in order.ship_groups:
        queue = ctx.facilities.get(group.facility)
        if queue is None or not queue.virtual:
            reasons.append(f"ship group {group.id!r} is at {group.facility!r}, which is not a "
                           "queue (a facility with \"virtual\": true)")
        elif order.product_store not in queue.stores:
            reasons.append(f"ship group {group.id!r} waits in {group.facility!r}, whose "
                           f"product_stores do not include {order.product_store!r}")
    groups = [g for g in plan.groups if g.product_store == order.product_store]
    if not groups:
        reasons.append(f"no group routes product store {order.product_store!r}")
    batches = {b["group"]: b for b in result["batches"]}
    for group in groups:
        batch = batches.get(group.name)
        if batch is None:
            reasons.append(f"group {group.name!r} was not run (another group was selected)")
            continue
        if batch.get("skipped"):
            reasons.append(f"group {group.name!r} was skipped: {batch['skipped']}")
            continue
        for routing in group.routings:
            units = [Unit(order, s.ship_group, s.queue, [s]) for s in states] \
                if routing.item_mode else [
                    Unit(order, g, g.facility, [s for s in states if s.ship_group is g])
                    for g in order.ship_groups]
            for unit in units:
                if not unit.items:
                    continue
                for condition in routing.filters:
                    if not order_predicate(condition, ctx)(unit):
                        where = f" ({condition.source.label()})" if condition.source else ""
                        value = ids_text(condition.ids) if condition.ids else (
                            f"{condition.days} days" if condition.days is not None else "")
                        reasons.append(f"routing {routing.name!r}: ship group "
                                       f"{unit.ship_group.id!r} fails the filter "
                                       f"`{condition.field} {condition.op} {value}`{where}")
                        break
    return list(dict.fromkeys(reasons)) or ["it was eligible, but every routing that could "
                                            "take it was excluded by --group or --routing"]
