"""Order fields: the filters and sorts of a routing (which units it takes, in what order).

A filter's ``predicate`` is the reference engine's test of one unit (and the fast engine's for
fields it has no column of); ``mask`` tests every unit at once over the fast engine's integer
columns. A sort's ``value_of`` gives one unit's value (None: missing), ``column`` every unit's
(NaN: missing); both engines order units by (null flag, value) per sort, then by ids.
"""

from __future__ import annotations

from . import Criterion
from .text import ids_text

EQUALITY = ("==", "!=")
MEMBERSHIP = ("in", "not in")
NULLS = ("is null", "is not null")
ORDERING = ("<", "<=", ">", ">=")
COMPARE_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def describe(condition) -> str:
    """The filter as written (`sales_channel == WEB`, `promise_date <= 2 days`)."""
    value = ids_text(condition.ids) if condition.ids else (
        f"{condition.days} days" if condition.days is not None else "")
    return f"{condition.field} {condition.op} {value}"


# ---- id fields: one value per unit, compared with the listed ids ---------------------------

def id_predicate(get, op: str, ids):
    """``get(unit)`` against ``ids``: a missing value is in no list and equal to nothing."""
    wanted = frozenset(ids)
    if op in ("==", "in"):
        return lambda unit: (value := get(unit)) is not None and value in wanted
    if op in ("!=", "not in"):
        return lambda unit: (value := get(unit)) is None or value not in wanted
    if op == "is null":
        return lambda unit: get(unit) is None
    return lambda unit: get(unit) is not None


def id_mask(codes, index: dict[str, int], op: str, ids):
    """`id_predicate` over a column of integer codes (-1: no value)."""
    import numpy as np
    wanted = np.array(sorted({index[i] for i in ids if i in index}), np.int64)
    member = (codes >= 0) & np.isin(codes, wanted)
    if op in ("==", "in"):
        return member
    if op in ("!=", "not in"):
        return (codes < 0) | ~member
    return codes < 0 if op == "is null" else codes >= 0


def _id_field(name: str, doc: str, example: str, get, column, operators, hotwax,
              samples) -> Criterion:
    def predicate(condition, ctx):
        return id_predicate(get, condition.op, condition.ids)

    def mask(condition, ctx, heads, sgs):
        codes, index = column(ctx, heads, sgs)
        return id_mask(codes, index, condition.op, condition.ids)
    return Criterion(name, "order_filter", doc, value=name, operators=operators,
                     example=example, hotwax=hotwax, samples=samples, predicate=predicate,
                     describe=describe, mask=mask)


# ---- origin facility group, product category, promise date ---------------------------------

def _origin_group_predicate(condition, ctx):
    wanted = frozenset(condition.ids)
    facilities = ctx.facilities

    def origin_groups(unit):
        origin = unit.order.origin_facility
        if origin is None:
            return None
        info = facilities.get(origin)
        return frozenset(info.groups) if info else frozenset()
    op = condition.op
    if op in ("==", "in"):
        return lambda u: (g := origin_groups(u)) is not None and not g.isdisjoint(wanted)
    if op in ("!=", "not in"):
        return lambda u: (g := origin_groups(u)) is None or g.isdisjoint(wanted)
    if op == "is null":
        return lambda u: u.order.origin_facility is None
    return lambda u: u.order.origin_facility is not None


def _category_predicate(condition, ctx):
    wanted = frozenset(condition.ids)
    if condition.op in ("==", "in"):
        return lambda u: any(not i.categories.isdisjoint(wanted) for i in u.items)
    return lambda u: all(i.categories.isdisjoint(wanted) for i in u.items)


def _promise_predicate(condition, ctx):
    # a promise-date filter routes item by item, so the unit has one item
    if condition.op == "is null":
        return lambda u: u.items[0].item.promised_date is None
    if condition.op == "is not null":
        return lambda u: u.items[0].item.promised_date is not None
    cutoff = ctx.end_of_day(condition.days or 0)
    compare = COMPARE_OPS[condition.op]
    return lambda u: (d := u.items[0].item.promised_date) is not None and compare(d, cutoff)


# ---- order sorts ---------------------------------------------------------------------------

def _earliest(attribute: str):
    def value_of(unit, ctx, ranks):
        values = [getattr(i.item, attribute) for i in unit.items]
        values = [v.timestamp() for v in values if v is not None]
        return min(values) if values else None

    def column(ctx, units, heads, sgs, ranks):
        import numpy as np
        per_item = getattr(ctx, f"it_{attribute}")
        return np.fmin.reduceat(per_item[units.items], units.ptr[:-1]) \
            if len(units) else np.zeros(0)
    return value_of, column


def _order_date(unit, ctx, ranks):
    return unit.order.order_date.timestamp() if unit.order.order_date else None


def _delivery_days(unit, ctx, ranks):
    group = unit.ship_group
    return ctx.delivery_days.get((group.shipment_method, group.carrier),
                                 ctx.delivery_days.get((group.shipment_method, None)))


def _priority_rank(unit, ctx, ranks):
    """Priorities in the order the plan declares them; undeclared ones after those."""
    if unit.order.priority is None:
        return None
    return ranks.get(unit.order.priority.upper(), len(ranks))


def _priority_column(ctx, units, heads, sgs, ranks):
    import numpy as np
    names = list(ctx.priority_codes)
    by_code = np.array([ranks.get(n.upper(), len(ranks)) for n in names] + [np.nan],
                       np.float64)
    return by_code[ctx.sg_priority[sgs]]  # code -1 (no priority) is NaN


_SHIP_BEFORE = _earliest("ship_before")
_SHIP_AFTER = _earliest("ship_after")

CRITERIA = [
    _id_field("queue", "The queue (virtual facility) the ship group waits in.",
              "queue == _NA_", lambda u: u.queue,
              lambda ctx, heads, sgs: (ctx.it_queue[heads], ctx.fac_index),
              EQUALITY + MEMBERSHIP, "facilityId", ("queue == _NA_", "queue in [_NA_, PARK]")),
    _id_field("shipment_method", "The ship group's shipment method.",
              "shipment_method in [NEXT_DAY, SECOND_DAY]",
              lambda u: u.ship_group.shipment_method,
              lambda ctx, heads, sgs: (ctx.sg_method[sgs], ctx.method_codes),
              EQUALITY + MEMBERSHIP + NULLS, "shipmentMethodTypeId",
              ("shipment_method == NEXT_DAY", "shipment_method != NEXT_DAY")),
    _id_field("sales_channel", "The order's sales channel.",
              "sales_channel not in [POS_CHANNEL]", lambda u: u.order.sales_channel,
              lambda ctx, heads, sgs: (ctx.sg_channel[sgs], ctx.channel_codes),
              EQUALITY + MEMBERSHIP + NULLS, "salesChannelEnumId",
              ("sales_channel in [WEB]", "sales_channel is not null")),
    _id_field("priority", "The order's priority.", "priority == HIGH",
              lambda u: u.order.priority,
              lambda ctx, heads, sgs: (ctx.sg_priority[sgs], ctx.priority_codes),
              EQUALITY + MEMBERSHIP + NULLS, "priority",
              ("priority == HIGH", "priority is null")),
    Criterion(
        "promise_date", "order_filter",
        "The item's promised date, compared with the end of the day N days from the "
        "snapshot's `now` (negative N looks into the past). Any promise-date filter "
        "switches the routing to item-by-item mode.",
        value="days", operators=ORDERING + NULLS, example="promise_date within 2 days",
        hotwax="promiseDaysCutoff", samples=("promise_date <= 2 days",),
        predicate=_promise_predicate, describe=describe, extra={"sugar": ("within",)}),
    Criterion(
        "origin_facility_group", "order_filter",
        "A facility group that the order's origin facility belongs to.",
        value="facility_group", operators=EQUALITY + MEMBERSHIP + NULLS,
        example="origin_facility_group in [US_STORES]", hotwax="originFacilityGroupId",
        samples=("origin_facility_group == A",), predicate=_origin_group_predicate,
        describe=describe),
    Criterion(
        "product_category", "order_filter",
        "A category of the products being routed: a ship group matches when any of its "
        "items does.", value="category", operators=EQUALITY + MEMBERSHIP,
        example="product_category == FOOTWEAR", hotwax="productCategoryId",
        samples=("product_category == SHOES", "product_category != SHOES"),
        predicate=_category_predicate, describe=describe),
    Criterion("ship_before", "order_sort", "The items' ship-before date (the earliest).",
              nullable=True, hotwax="shipBeforeDate", samples=("ship_before",),
              value_of=_SHIP_BEFORE[0], column=_SHIP_BEFORE[1]),
    Criterion("ship_after", "order_sort", "The items' ship-after date (the earliest).",
              nullable=True, hotwax="shipAfterDate", samples=("ship_after desc",),
              value_of=_SHIP_AFTER[0], column=_SHIP_AFTER[1]),
    Criterion("order_date", "order_sort", "When the order was placed. The default sort.",
              nullable=True, hotwax="orderDate", samples=("order_date", "order_date desc"),
              value_of=_order_date,
              column=lambda ctx, units, heads, sgs, ranks: ctx.sg_order_date[sgs]),
    Criterion("delivery_days", "order_sort",
              "Delivery days of the ship group's shipment method.", nullable=True,
              hotwax="deliveryDays", samples=("delivery_days", "delivery_days nulls first"),
              value_of=_delivery_days,
              column=lambda ctx, units, heads, sgs, ranks: ctx.sg_delivery[sgs]),
    Criterion("priority", "order_sort",
              "Order priority, in the order priorities are declared (HIGH first).",
              nullable=True, hotwax="priority",
              samples=("priority", "priority desc nulls first"), value_of=_priority_rank,
              column=_priority_column),
]

# HotWax's default order: oldest order first (a routing without sorts).
DEFAULT_SORT = "order_date"
