"""Which facilities a routing's rules admit for each unit: the one adapter between the engine's
semantics and the optimiser.

Every condition is the engine's own: the interpreter answers `admitted` (its candidate and
serve checks, run at the state the routing starts from, with nothing allocated), and this
module only records the answers as arrays, with what each admitting rule demands of an
allocation (its *class*):

- FREE: any quantity from any admitted facility (an `assign partial` rule);
- WHOLE: the line whole from one facility (`brokering_safety_stock`; the model also keeps the
  threshold on the stock each allocation sees);
- GROUP: the item group whole from one facility (`keep_item_groups_together`);
- UNIT: the whole unit from one facility (`assign single`; also, conservatively, a partial
  rule with `only_if_all_items_available` or `shipment_threshold`, whose checks one facility
  shipping everything always passes).

When several rules admit a line at a facility, the least demanding class wins, and the
allocation names the first rule (in the routing's order) of that class. Rules after the first
one that moves what it leaves to a queue are never reached with anything open, so they admit
nothing. Nothing here imports the solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FREE, WHOLE, GROUP, UNIT = 0, 1, 2, 3
CLASS_NAMES = ("free", "whole line", "item group", "whole unit")


def rule_class(rule, item) -> int:
    """What ``rule`` demands of an allocation of ``item`` (an interpreter item state)."""
    if rule.assign == "single" or rule.only_if_all_items_available or rule.shipment_threshold:
        return UNIT
    if rule.keep_item_groups_together and item.item.item_group is not None:
        return GROUP
    if any(c.field == "brokering_safety_stock" for c in rule.conditions):
        return WHOLE
    return FREE


def safety_threshold(rule) -> tuple[float, bool] | None:
    """The rule's `brokering_safety_stock` threshold and whether it is strict (`>`)."""
    for condition in rule.conditions:
        if condition.field == "brokering_safety_stock":
            return condition.number, condition.op == ">"
    return None


@dataclass
class Batch:
    """One optimised routing's units, lines, facilities and admitted (line, facility) edges,
    as arrays. Units are in the routing's order; lines in unit order, then item-id order."""

    routing: str
    rules: list[str]
    units: list  # the interpreter's units
    items: list  # the interpreter's item states, one per open line
    facilities: list[str]
    products: list[str]
    # per unit
    unit_first_item: np.ndarray
    unit_ship_group: np.ndarray  # index of (order, ship group): splits are counted per it
    unit_order: np.ndarray  # index of the order: windows take whole orders
    unit_card: np.ndarray  # rate card, -1 without one
    # per line
    item_unit: np.ndarray
    item_quantity: np.ndarray
    item_product: np.ndarray
    item_weight: np.ndarray  # per unit of quantity, in the card's unit; NaN when unknown
    item_volume: np.ndarray
    item_promised: np.ndarray  # ordinal day, NO_DATE without a promise
    item_group: np.ndarray  # -1, or an index of (unit, item group)
    # per edge
    edge_item: np.ndarray
    edge_facility: np.ndarray
    edge_class: np.ndarray
    edge_rule: np.ndarray  # the rule an allocation along the edge names
    edge_counts: np.ndarray  # whether it counts against the facility's daily limit
    edge_safety: np.ndarray  # the threshold (NaN: none)
    edge_strict: np.ndarray
    # per facility
    facility_room: np.ndarray  # orders it may still take today (inf: no limit)
    facility_rate_index: np.ndarray  # its index in the rate model, -1 without one
    # per (facility, product): net stock when the routing starts
    stock: dict[tuple[int, int], float] = field(default_factory=dict)
    # per package (unit, facility) some edge reaches, in (unit, facility) order
    package_unit: np.ndarray = None
    package_facility: np.ndarray = None
    package_zone: np.ndarray = None  # zone under the unit's card, -1 unknown
    package_delivery: np.ndarray = None  # ordinal day it arrives, -1 unknown
    package_divisor: np.ndarray = None  # the card's dimensional divisor (0: none)
    # each package's weight buckets: caps (billable weight, whole units) and prices, from
    # bucket_start[p] to bucket_start[p + 1]; a package without a price has none
    bucket_start: np.ndarray = None
    bucket_cap: np.ndarray = None
    bucket_cost: np.ndarray = None

    @property
    def lines(self) -> int:
        return len(self.items)


def collect(interp, store: str, routing, units: list) -> Batch:
    """The batch of ``units`` (the routing's, in its order) as the routing's rules admit it at
    the interpreter's current state."""
    prepared = interp.prepared_rules(routing)
    reached = []
    for rule in prepared:
        reached.append(rule)
        if rule.rule.actions.move_to_queue:
            break
    rates = interp.ctx.rates
    facilities: dict[str, int] = {}
    products: dict[str, int] = {}
    ship_groups: dict[tuple[str, str], int] = {}
    orders: dict[str, int] = {}
    groups: dict[tuple[int, str], int] = {}
    unit_first, unit_sg, unit_order, unit_card = [], [], [], []
    items, item_unit, quantity, product, weight, volume, promised, group = ([] for _ in range(8))
    edges: dict[tuple[int, int], list] = {}  # (line, facility) -> [class, rule, counts, safety]
    for u, unit in enumerate(units):
        unit_first.append(len(items))
        unit_sg.append(ship_groups.setdefault((unit.order.id, unit.ship_group.id),
                                              len(ship_groups)))
        unit_order.append(orders.setdefault(unit.order.id, len(orders)))
        card = interp._card(unit) if rates else -1
        unit_card.append(card)
        index = {}
        for state in unit.items:
            if state.open <= 1e-9:
                continue
            index[id(state)] = len(items)
            items.append(state)
            item_unit.append(u)
            quantity.append(state.open)
            product.append(products.setdefault(state.product, len(products)))
            w, v = rates.weight(card, state.product) if card >= 0 else (float("nan"), 0.0)
            weight.append(w)
            volume.append(v)
            promised.append(rates.promised(state.item.promised_date))
            name = state.item.item_group
            group.append(-1 if name is None else groups.setdefault((u, name), len(groups)))
        for rule in reached:
            admitted = interp.admitted(store, rule, unit)
            safety = safety_threshold(rule.rule)
            for facility, served in admitted.items():
                f = facilities.setdefault(facility, len(facilities))
                for state in served:
                    k = index[id(state)]
                    kind = rule_class(rule.rule, state)
                    counts = not rule.rule.ignore_facility_order_limit
                    found = edges.get((k, f))
                    if found is None:
                        edges[(k, f)] = [kind, rule.index, counts, safety]
                    else:
                        found[2] = found[2] and counts
                        if kind < found[0]:
                            found[0], found[1], found[3] = kind, rule.index, safety
    unit_first.append(len(items))
    keys = sorted(edges)
    ctx = interp.ctx
    names = list(facilities)
    room = []
    for name in names:
        limit = ctx.facilities[name].limit
        room.append(np.inf if limit is None else max(0, limit - ctx.orders_today[name]))
    product_names = list(products)
    stock = {}
    for (k, f) in keys:
        key = (f, product[k])
        if key not in stock:
            stock[key] = ctx.stock.get(product_names[product[k]], {}).get(names[f], 0.0)
    safety_values = [edges[key][3] for key in keys]
    batch = Batch(
        routing=routing.name, rules=[r.name for r in routing.rules], units=list(units),
        items=items, facilities=names, products=product_names,
        unit_first_item=np.array(unit_first, np.int64),
        unit_ship_group=np.array(unit_sg, np.int64), unit_order=np.array(unit_order, np.int64),
        unit_card=np.array(unit_card, np.int64),
        item_unit=np.array(item_unit, np.int64), item_quantity=np.array(quantity, np.float64),
        item_product=np.array(product, np.int64), item_weight=np.array(weight, np.float64),
        item_volume=np.array(volume, np.float64), item_promised=np.array(promised, np.int64),
        item_group=np.array(group, np.int64),
        edge_item=np.array([k for k, _ in keys], np.int64),
        edge_facility=np.array([f for _, f in keys], np.int64),
        edge_class=np.array([edges[key][0] for key in keys], np.int64),
        edge_rule=np.array([edges[key][1] for key in keys], np.int64),
        edge_counts=np.array([edges[key][2] for key in keys], np.bool_),
        edge_safety=np.array([np.nan if s is None else s[0] for s in safety_values]),
        edge_strict=np.array([s is not None and s[1] for s in safety_values], np.bool_),
        facility_room=np.array(room, np.float64),
        facility_rate_index=np.array([rates.facility_index.get(n, -1) if rates else -1
                                      for n in names], np.int64),
        stock=stock)
    return batch


def add_edges(batch: Batch, extra: list[tuple[int, int, int]]) -> None:
    """Edges (line, facility, rule) the rules used but `admitted` did not list at the
    routing's start (a `broken_style` assortment that broke as stock went), kept as FREE so
    that the rules' allocation stays one the model can take."""
    if not extra:
        return
    known = set(zip(batch.edge_item.tolist(), batch.edge_facility.tolist(), strict=True))
    extra = sorted({(k, f, r) for k, f, r in extra if (k, f) not in known})
    if not extra:
        return
    order = np.lexsort((np.r_[batch.edge_facility, [f for _, f, _ in extra]],
                        np.r_[batch.edge_item, [k for k, _, _ in extra]]))
    batch.edge_item = np.r_[batch.edge_item, [k for k, _, _ in extra]][order]
    batch.edge_facility = np.r_[batch.edge_facility, [f for _, f, _ in extra]][order]
    batch.edge_class = np.r_[batch.edge_class, [FREE] * len(extra)][order]
    batch.edge_rule = np.r_[batch.edge_rule, [r for _, _, r in extra]][order]
    batch.edge_counts = np.r_[batch.edge_counts, [True] * len(extra)][order]
    batch.edge_safety = np.r_[batch.edge_safety, [np.nan] * len(extra)][order]
    batch.edge_strict = np.r_[batch.edge_strict, [False] * len(extra)][order]


def price(interp, batch: Batch) -> None:
    """Each package's zone, delivery day and weight buckets with their prices, by the rate
    model's own cost function (`RateModel.cost` at each bucket's whole-unit cap)."""
    rates = interp.ctx.rates
    pairs = np.unique(batch.item_unit[batch.edge_item] * len(batch.facilities)
                      + batch.edge_facility) if len(batch.edge_item) else np.zeros(0, np.int64)
    units = pairs // max(1, len(batch.facilities))
    facilities = pairs % max(1, len(batch.facilities))
    zones, delivery, divisor, start, caps, costs = [], [], [], [0], [], []
    for u, f in zip(units.tolist(), facilities.tolist(), strict=True):
        card = int(batch.unit_card[u])
        name = batch.facilities[f]
        zone = interp._zone(batch.units[u], name) if card >= 0 else -1
        index = int(batch.facility_rate_index[f])
        zones.append(zone if index >= 0 else -1)
        if zone < 0 or index < 0:
            delivery.append(-1)
            divisor.append(0.0)
            start.append(len(caps))
            continue
        delivery.append(rates.delivery(card, zone, index))
        weights, dim = rates.billing(card)
        divisor.append(dim)
        for limit in weights:
            cap = math.floor(limit + 1e-9)
            price = rates.cost(card, zone, index, float(cap), 0.0)
            if price == price:
                caps.append(float(cap))
                costs.append(price)
        start.append(len(caps))
    batch.package_unit = units.astype(np.int64)
    batch.package_facility = facilities.astype(np.int64)
    batch.package_zone = np.array(zones, np.int64)
    batch.package_delivery = np.array(delivery, np.int64)
    batch.package_divisor = np.array(divisor, np.float64)
    batch.bucket_start = np.array(start, np.int64)
    batch.bucket_cap = np.array(caps, np.float64)
    batch.bucket_cost = np.array(costs, np.float64)
