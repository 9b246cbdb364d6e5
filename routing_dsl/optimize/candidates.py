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

Each edge keeps, per class, the set of rules admitting it (bit masks over the routing's
rules), so that a package of the optimum can be named after the first rule that admits every
line in it as it ships (`model`). Rules after the first one that moves what it leaves to a
queue are never reached with anything open, so they admit nothing. Nothing here imports the
solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..runtime.rules import prepare_rules

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
    # per edge: the rules admitting it, as a bit mask per class (FREE, WHOLE, GROUP, UNIT)
    edge_item: np.ndarray
    edge_facility: np.ndarray
    edge_masks: np.ndarray  # (edges, 4) int64
    # per rule: whether it ignores daily limits, its safety-stock threshold (NaN: none)
    rule_ignores_limit: np.ndarray
    rule_safety: np.ndarray
    rule_strict: np.ndarray
    rule_cap: np.ndarray  # max_facilities, -1 without
    # per facility
    facility_room: np.ndarray  # orders it may still take today (inf: no limit)
    facility_rate_index: np.ndarray  # its index in the rate model, -1 without one
    # per (facility, product): net stock when the routing starts
    stock: dict[tuple[int, int], float] = field(default_factory=dict)
    # per ship group: the facilities it already ships from in this run (`max_facilities`)
    ship_group_used: list = field(default_factory=list)
    # per rule: the interpreter's prepared rule, for its placement checks (`shipping_cost`
    # limits): `admitted` checks them on one line's package, a package of several lines must
    # pass them as it grows, as the rule places it (`model.placeable`)
    prepared: list = field(default_factory=list)
    # per package (unit, facility) some edge reaches, in (unit, facility) order
    package_unit: np.ndarray = None
    package_facility: np.ndarray = None
    package_zone: np.ndarray = None  # zone under the unit's card, -1 unknown
    package_delivery: np.ndarray = None  # ordinal day it arrives, -1 unknown

    @property
    def lines(self) -> int:
        return len(self.items)


def collect(interp, units: list, store: str, routing) -> Batch:
    """The batch of ``units`` (the routing's, in its order) as the routing's rules admit it at
    the interpreter's current state (``interp`` and ``units``: as the run's allocator's
    `admitting` gives them, the reference engine's run and units, or a view of them)."""
    prepared = prepare_rules(routing)
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
        card = interp.allocator.shipping.card(unit) if rates else -1
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
            admitted = interp.allocator.admitted(store, rule, unit)
            bit = 1 << rule.index
            for facility, served in admitted.items():
                f = facilities.setdefault(facility, len(facilities))
                for state in served:
                    masks = edges.setdefault((index[id(state)], f), [0, 0, 0, 0])
                    masks[rule_class(rule.rule, state)] |= bit
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
    safety = [safety_threshold(rule) for rule in routing.rules]
    used = getattr(interp, "used", {})
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
        edge_masks=np.array([edges[key] for key in keys], np.int64).reshape(len(keys), 4),
        rule_ignores_limit=np.array([r.ignore_facility_order_limit for r in routing.rules],
                                    np.bool_),
        rule_safety=np.array([np.nan if t is None else t[0] for t in safety]),
        rule_strict=np.array([t is not None and t[1] for t in safety], np.bool_),
        rule_cap=np.array([-1 if getattr(r, "max_facilities", None) is None
                           else r.max_facilities for r in routing.rules], np.int64),
        prepared=prepared,
        facility_room=np.array(room, np.float64),
        facility_rate_index=np.array([rates.facility_index.get(n, -1) if rates else -1
                                      for n in names], np.int64),
        stock=stock, ship_group_used=[list(used.get(key, ())) for key in ship_groups])
    return batch


def add_edges(batch: Batch, extra: list[tuple[int, int]]) -> None:
    """Let the rules' own allocations (line, facility) be edges, admitting nothing by
    themselves: a rule may ship what `admitted` did not list at the routing's start (a
    `broken_style` assortment that broke as stock went, an `assign single` rule taking what an
    earlier rule left of a unit, a whole-line rule the rest of a line), but only in the state
    the rules' run had reached. The rules' packages are the model's columns as they are
    (`model.candidates`), tied to the unit's other rules' packages; the edges only let the
    batch measure and price them."""
    if not extra:
        return
    present = set(zip(batch.edge_item.tolist(), batch.edge_facility.tolist(), strict=True))
    keys = sorted({(k, f) for k, f in extra} - present)
    if not keys:
        return
    masks = np.zeros((len(keys), 4), np.int64)
    items = np.r_[batch.edge_item, [k for k, _ in keys]]
    facilities = np.r_[batch.edge_facility, [f for _, f in keys]]
    order = np.lexsort((facilities, items))
    batch.edge_item = items[order]
    batch.edge_facility = facilities[order]
    batch.edge_masks = np.vstack([batch.edge_masks, masks])[order]


def price(interp, batch: Batch) -> None:
    """Each package's (unit, facility) zone and delivery day, as the engine computes them."""
    rates = interp.ctx.rates
    n_fac = max(1, len(batch.facilities))
    pairs = np.unique(batch.item_unit[batch.edge_item] * n_fac + batch.edge_facility) \
        if len(batch.edge_item) else np.zeros(0, np.int64)
    units, facilities = pairs // n_fac, pairs % n_fac
    zones, delivery = [], []
    for u, f in zip(units.tolist(), facilities.tolist(), strict=True):
        card = int(batch.unit_card[u])
        index = int(batch.facility_rate_index[f])
        zone = interp.allocator.shipping.zone(batch.units[u], batch.facilities[f]) \
            if card >= 0 and index >= 0 else -1
        zones.append(zone)
        delivery.append(rates.delivery(card, zone, index) if zone >= 0 else -1)
    batch.package_unit = units.astype(np.int64)
    batch.package_facility = facilities.astype(np.int64)
    batch.package_zone = np.array(zones, np.int64)
    batch.package_delivery = np.array(delivery, np.int64)


def package_price(batch: Batch, rates, pair: int, u: int, f: int, weight: float,
                  volume: float) -> float:
    """What a package of ``weight`` and ``volume`` costs to ship from facility ``f`` to unit
    ``u`` (``pair``: their (unit, facility) pair); NaN when it cannot be priced (no rate card
    or zone; a zone is known only for a facility with rates)."""
    card, zone = int(batch.unit_card[u]), int(batch.package_zone[pair])
    if card < 0 or zone < 0:
        return float("nan")
    return rates.cost(card, zone, int(batch.facility_rate_index[f]), float(weight),
                      float(volume))
