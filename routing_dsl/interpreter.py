"""Interpreter: plan + snapshot -> result document (routing-result/1).

The procedure is docs/semantics.md, rule by rule. Filters and sorts are turned into closures
once per routing; stock is indexed by product so a rule only looks at facilities that hold what
the unit needs; state (stock, facility order counts, item queues) carries across the whole run.
Nothing reads the clock or iterates an unordered collection into the output: the same plan and
snapshot give the same bytes.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, time, timedelta
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

from .criteria import REGISTRY
from .criteria.distance import haversine_radians
from .criteria.groups import included, sequence_of
from .criteria.orders import DEFAULT_SORT
from .criteria.shipping import explain_package
from .criteria.text import ids_text as _ids, number as _number
from .plan import InventoryCondition, OrderCondition, Plan, PlanRouting, PlanRule
from .shipping import RateModel, RunTotals, attach_totals, cents, iso_day, shares
from .snapshot import Item, Order, ShipGroup, Snapshot

RESULT_FORMAT = "routing-result/1"
KM_PER_MILE = 1.609344
EPSILON = 1e-9


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (criteria.distance.haversine_radians)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    return _haversine_radians(p1, math.radians(lon1), math.cos(p1),
                              p2, math.radians(lon2), math.cos(p2))


_haversine_radians = haversine_radians  # one function for both engines (criteria.distance)


def _radians(lat: float | None, lon: float | None) -> tuple[float, float, float] | None:
    if lat is None or lon is None:
        return None
    phi = math.radians(lat)
    return phi, math.radians(lon), math.cos(phi)


# ---- run state ----------------------------------------------------------------------------

def latest_rejections(rejections) -> dict[str, tuple[float, object]]:
    """The latest rejection by each facility: facility -> (its time as seconds since the
    epoch, the rejection); at the same moment, the first listed."""
    latest: dict[str, tuple[float, object]] = {}
    for rejection in rejections:
        stamp = rejection.at.timestamp()
        known = latest.get(rejection.facility)
        if known is None or stamp > known[0]:
            latest[rejection.facility] = (stamp, rejection)
    return latest


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


class _ItemState:
    """One order line as the run sees it: where it waits and how much is still open."""

    __slots__ = ("order", "ship_group", "item", "product", "open", "line_quantity", "queue",
                 "auto_cancel", "excluded", "last_action", "last_rule", "categories", "style",
                 "rejected")

    def __init__(self, order: Order, ship_group: ShipGroup, item: Item, product_info):
        self.order = order
        self.ship_group = ship_group
        self.item = item
        self.product = item.product
        self.line_quantity = item.quantity - item.cancel_quantity
        self.open = self.line_quantity
        self.queue = ship_group.facility
        self.auto_cancel = item.auto_cancel_date
        self.excluded = frozenset(item.excluded_facilities)
        self.rejected = latest_rejections(item.rejections)
        self.last_action: str | None = None
        self.last_rule: str | None = None
        self.categories, self.style = product_info

    def value(self, quantity: float) -> float:
        """Shipment value of ``quantity`` units: price plus their share of the line's
        adjustments, shared per *ordered* unit, so cancelled units take their share away."""
        share = quantity / self.item.quantity
        return quantity * self.item.unit_price + self.item.adjustments * share


@dataclass
class _Unit:
    order: Order
    ship_group: ShipGroup
    queue: str
    items: list[_ItemState]
    distances: dict[str, float] = field(default_factory=dict)  # facility -> km, per unit
    zones: dict[str, int] = field(default_factory=dict)  # facility -> zone of its rate card
    packages: int = 0  # packages earlier rules shipped for the unit

    @cached_property
    def target(self) -> tuple[float, float, float] | None:
        ship_to = self.ship_group.ship_to
        return _radians(ship_to.lat, ship_to.lon) if ship_to else None

    def km_to(self, info: _FacilityInfo) -> float | None:
        """Distance from the facility to the ship-to address, computed once per unit; None
        when either has no coordinates."""
        if info.radians is None or self.target is None:
            return None
        distance = self.distances.get(info.id)
        if distance is None:
            distance = self.distances[info.id] = _haversine_radians(*info.radians, *self.target)
        return distance


@dataclass
class _FacilityInfo:
    id: str
    virtual: bool
    lat: float | None
    lon: float | None
    limit: int | None
    groups: dict[str, int | None]
    stores: frozenset[str]
    radians: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        self.radians = _radians(self.lat, self.lon)


class Prepared:
    """What runs on snapshots with the same facilities can share (a service deciding order
    after order against one live state): the facility index, each rule's facilities per store,
    the grouping of facilities for explanations, and the rate model (for one `now`; it also
    holds the products and rate cards). Keyed by the plan's rule objects, so it is only for
    the plans it was filled with; make a new one when the facilities, products or rate cards
    change."""

    def __init__(self) -> None:
        self.facilities: dict[str, _FacilityInfo] | None = None
        self.products: tuple | None = None  # by id, variants of each style, style of each
        self.rates: RateModel | None = None
        self.static: dict[tuple, frozenset[str]] = {}
        self.explain: dict[tuple, tuple] = {}


class RunError(Exception):
    """A configuration problem found at run time; recorded on the routing's run, never turned
    into 'unfillable'."""


class LiveStock:
    """The stock and daily order counts of one loaded snapshot, indexed once and kept current
    as routing takes from it (a service deciding order after order against one live state).
    A run given one reads stock and counts from here, copying only its orders' products,
    instead of indexing its snapshot's inventory rows and facilities (which it ignores).

    Taken quantities are given as totals since the load, so each figure is computed as a
    snapshot with those totals applied would have it: `atp - taken`, then `- minimum_stock`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.stock, self.atp, self.velocity = _index_inventory(
            snapshot.inventory, {f.id for f in snapshot.facilities if f.virtual})
        self.loaded_atp = dict(self.atp)
        self.minimum = {(row.facility, row.product): row.minimum_stock
                        for row in snapshot.inventory
                        if row.product in self.stock and row.facility in self.stock[row.product]}
        self.loaded_orders = _orders_today(snapshot)
        self.orders_today = dict(self.loaded_orders)

    def taken(self, facility: str, product: str, total: float) -> None:
        """``total`` units of ``product`` taken at ``facility`` since the load."""
        key = (facility, product)
        if key not in self.loaded_atp:
            return
        atp = self.atp[key] = self.loaded_atp[key] - total
        if key in self.minimum:
            self.stock[product][facility] = atp - self.minimum[key]

    def counted(self, facility: str, total: int) -> None:
        """``total`` orders added at ``facility`` since the load."""
        if facility in self.loaded_orders:
            self.orders_today[facility] = self.loaded_orders[facility] + total


def _index_inventory(rows, virtual: set[str]):
    """Net stock by product and facility (brokerable rows at facilities not ``virtual``), ATP
    and sales velocity by (facility, product)."""
    stock: dict[str, dict[str, float]] = defaultdict(dict)
    atp, velocity = {}, {}
    for row in rows:
        key = (row.facility, row.product)
        atp[key] = row.atp
        if row.sales_velocity is not None:
            velocity[key] = row.sales_velocity
        if row.allow_brokering and row.facility not in virtual:
            stock[row.product][row.facility] = row.atp - row.minimum_stock
    return stock, atp, velocity


def _orders_today(snapshot: Snapshot) -> dict[str, int]:
    return {f.id: f.orders_today for f in snapshot.facilities if not f.virtual}


@dataclass
class _Context:
    """Indexes over the snapshot, built once per run."""

    snapshot: Snapshot
    prepared: Prepared | None = None
    live: LiveStock | None = None
    zone: ZoneInfo = field(init=False)
    now: datetime = field(init=False)
    facilities: dict[str, _FacilityInfo] = field(init=False)
    stock: dict[str, dict[str, float]] = field(init=False)  # product -> facility -> net left
    atp: dict[tuple[str, str], float] = field(init=False)
    velocity: dict[tuple[str, str], float] = field(init=False)
    variants: dict[str, list[str]] = field(init=False)
    style: dict[str, str] = field(init=False)
    orders_today: dict[str, int] = field(init=False)
    delivery_days: dict[tuple[str, str | None], int | None] = field(init=False)
    items: list[_ItemState] = field(init=False)

    def __post_init__(self) -> None:
        snapshot = self.snapshot
        self.zone = ZoneInfo(snapshot.timezone)
        self.now = snapshot.now.astimezone(self.zone)
        shared = self.prepared
        if shared is not None and shared.facilities is not None:
            self.facilities = shared.facilities
        else:
            self.facilities = {
                f.id: _FacilityInfo(f.id, f.virtual, f.lat, f.lon, f.max_orders_per_day,
                                    dict(f.groups), frozenset(f.product_stores))
                for f in snapshot.facilities}
            if shared is not None:
                shared.facilities = self.facilities
        if shared is not None and shared.products is not None:
            products, self.variants, self.style = shared.products
        else:
            products = {p.id: p for p in snapshot.products}
            self.variants = defaultdict(list)
            for product in snapshot.products:
                if product.parent:
                    self.variants[product.parent].append(product.id)
            self.style = {p.id: p.parent for p in snapshot.products if p.parent}
            if shared is not None:
                shared.products = (products, self.variants, self.style)
        if self.live is not None:
            self._from_live(self.live)
        else:
            self.orders_today = _orders_today(snapshot)
            self._index_inventory(snapshot)
        self.delivery_days = {}
        for method in snapshot.shipment_methods:
            self.delivery_days[(method.id, method.carrier)] = method.delivery_days
            self.delivery_days.setdefault((method.id, None), method.delivery_days)
        self._index_items(snapshot, products)
        if shared is not None and shared.rates is not None and shared.rates.now == self.now:
            self.rates = shared.rates
        else:
            self.rates = RateModel(snapshot, self.zone, self.now, sorted(self.facilities))
            if shared is not None:
                shared.rates = self.rates

    def _from_live(self, live: LiveStock) -> None:
        """Counts and stock from the live state: a copy of the stock of the orders' products
        and their styles' variants (all a run may look at or change); ATP and velocity are
        only read, so shared."""
        self.orders_today = dict(live.orders_today)
        products = {i.product for o in self.snapshot.orders for g in o.ship_groups
                    for i in g.items}
        for style in {self.style.get(p) for p in products} - {None}:
            products.update(self.variants.get(style, ()))
        self.stock = defaultdict(dict)
        for product in products:
            level = live.stock.get(product)
            if level is not None:
                self.stock[product] = dict(level)
        self.atp, self.velocity = live.atp, live.velocity

    def _index_items(self, snapshot: Snapshot, products: dict) -> None:
        info_cache: dict[str, tuple] = {}
        self.items = []
        for order, ship_group, item in order_lines(snapshot):
            info = info_cache.get(item.product)
            if info is None:
                product = products.get(item.product)
                info = (frozenset(product.categories) if product else frozenset(),
                        product.parent if product else None)
                info_cache[item.product] = info
            self.items.append(_ItemState(order, ship_group, item, info))

    def _index_inventory(self, snapshot: Snapshot) -> None:
        self.stock, self.atp, self.velocity = _index_inventory(
            snapshot.inventory, {f for f, info in self.facilities.items() if info.virtual})

    def end_of_day(self, days: int) -> datetime:
        day = (self.now + timedelta(days=days)).date()
        return datetime.combine(day, time.max, tzinfo=self.zone)


def order_lines(snapshot: Snapshot) -> Iterable[tuple[Order, ShipGroup, Item]]:
    """Every order line with its order and ship group, in (order, ship group, item) id
    order: the order a run looks at them in."""
    for order in sorted(snapshot.orders, key=lambda o: o.id):
        for ship_group in sorted(order.ship_groups, key=lambda g: g.id):
            for item in sorted(ship_group.items, key=lambda i: i.id):
                yield order, ship_group, item


# ---- order filters and sorts, compiled to closures ----------------------------------------

def _order_predicate(condition: OrderCondition, ctx: _Context) -> Callable[[_Unit], bool]:
    """The filter's test of one unit (criteria.orders)."""
    return REGISTRY("order_filter")[condition.field].predicate(condition, ctx)


def priority_ranks(priority_order: list[str]) -> dict[str, int]:
    """Each declared priority's rank (the first declaration of a name counts)."""
    ranks: dict[str, int] = {}
    for rank, name in enumerate(priority_order):
        ranks.setdefault(name.upper(), rank)
    return ranks


def _unit_sort_key(routing: PlanRouting, ctx: _Context, priority_order: list[str]):
    ranks = priority_ranks(priority_order)
    sorts = REGISTRY("order_sort")
    parts = [(sorts[DEFAULT_SORT].value_of, False, False)] if not routing.sorts else [
        (sorts[sort.field].value_of, sort.descending, sort.nulls_first)
        for sort in routing.sorts]

    def key(unit: _Unit):
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


# ---- rules ------------------------------------------------------------------------------------

class _Check:
    """One inventory condition of a rule, lowered: its criterion, the operator code and the
    number it compares with (distances in km)."""

    __slots__ = ("criterion", "condition", "rule", "op", "number", "check")

    def __init__(self, criterion, condition: InventoryCondition, rule: PlanRule):
        self.criterion, self.condition, self.rule = criterion, condition, rule
        self.check = criterion.reference
        if criterion.lower is not None:
            self.op, self.number = criterion.lower(condition, rule)

    def passes(self, value, item_value=0.0) -> bool:
        return self.check(self.op, self.number, value, item_value)


class _Measure:
    """What ranking knows of a candidate when the rule starts: its distance (in the rule's
    unit, None without coordinates), the unit's net stock there, its sequence number and how
    many open items it fills in full."""

    __slots__ = ("distance", "balance", "sequence", "full")

    def __init__(self, distance, balance, sequence, full):
        self.distance, self.balance, self.sequence, self.full = distance, balance, sequence, full


@dataclass
class _PreparedRule:
    """A rule with its conditions lowered by stage (criteria.STAGES) and its sorts with their
    criteria; ``needs`` is what its criteria need computed."""

    rule: PlanRule
    index: int
    include_ids: frozenset[str]
    facility_checks: list[_Check]
    candidate_checks: list[_Check]
    placement_checks: list[_Check]
    serve_checks: list[_Check]
    sorts: list[tuple]  # (criterion, sort)
    needs: frozenset[str]
    whole_lines: bool
    # what a new package adds to the shipping_cost or the distance sort
    split_money: float = 0.0
    split_distance: float = 0.0

    @property
    def uses_distance(self) -> bool:
        return "km" in self.needs

    @property
    def uses_zone(self) -> bool:
        return "zone" in self.needs

    @property
    def unit_factor(self) -> float:
        return 1.0 if self.rule.distance_unit == "km" else 1.0 / KM_PER_MILE

    def explained_checks(self) -> list[_Check]:
        """The conditions after the facility stage, in the order explanations report them."""
        return sorted(self.candidate_checks + self.placement_checks + self.serve_checks,
                      key=lambda check: check.criterion.explain_rank)


def _prepare_rule(rule: PlanRule, index: int) -> _PreparedRule:
    conditions = REGISTRY("inventory_condition")
    stages: dict[str, list[_Check]] = {"facility": [], "candidate": [], "placement": [],
                                       "serve": []}
    needs: set[str] = set()
    for condition in rule.conditions:
        criterion = conditions[condition.field]
        stages[criterion.stage].append(_Check(criterion, condition, rule))
        needs |= criterion.needs
    for checks in stages.values():  # applied (and explained) in rank order, stably
        checks.sort(key=lambda check: check.criterion.explain_rank)
    sorts = [(REGISTRY("inventory_sort")[sort.field], sort) for sort in rule.sorts]
    for criterion, _ in sorts:
        needs |= criterion.needs
    prepared = _PreparedRule(
        rule, index, included(rule), stages["facility"], stages["candidate"],
        stages["placement"], stages["serve"], sorts, frozenset(needs),
        any(check.criterion.whole_lines for check in stages["serve"]))
    if rule.split_cost is not None and rule.assign == "partial":
        if rule.split_cost_unit == "money":
            prepared.split_money = rule.split_cost
        elif rule.split_cost_unit == rule.distance_unit:
            prepared.split_distance = rule.split_cost
        else:
            prepared.split_distance = rule.split_cost * KM_PER_MILE \
                if rule.split_cost_unit == "mi" else rule.split_cost / KM_PER_MILE
    return prepared


def _group_reason(prepared: _PreparedRule, info: _FacilityInfo) -> _Check | None:
    """The first facility-stage condition the facility fails, if any."""
    for check in prepared.facility_checks:
        if not check.check(check.condition, info):
            return check
    return None


class _Rank:
    """What an inventory sort reads of one candidate while a step's items are ranked
    (criteria, ``reference`` hooks): its measure, whether placing here opens a new package,
    what it adds to the package's cost (NaN: unknown), the placed products (in id order)."""

    __slots__ = ("run", "ctx", "unit", "products", "split_distance", "split_money", "measure",
                 "new_package", "added")

    def __init__(self, run, prepared: _PreparedRule, products: list[str]):
        self.run, self.ctx, self.unit = run, run.ctx, run.unit
        self.products = products
        self.split_distance, self.split_money = prepared.split_distance, prepared.split_money
        self.measure, self.new_package, self.added = None, False, math.nan

    def delivery(self, facility: str) -> float:
        day = self.run._delivery(self.unit, facility)
        return math.nan if day is None else day

    def available(self, facility: str, product: str) -> float:
        return self.run._available(facility, product, {})


class _Interpreter:
    context_class = _Context

    def __init__(self, plan: Plan, snapshot: Snapshot, explain: bool, explain_orders,
                 explain_facilities=None, prepared: Prepared | None = None,
                 live: LiveStock | None = None, after: bool = True):
        self.plan = plan
        self.prepared = prepared or Prepared()
        self.ctx = self.context_class(snapshot, prepared, live)
        self.after = after
        self.explain = explain
        self.explain_orders = explain_orders
        self.explain_facilities = frozenset(explain_facilities or ())
        self._explain_cache = self.prepared.explain
        self.allocations: list[dict] = []
        self.unfillable: list[dict] = []
        self.explanations: list[dict] = []
        self.warnings: dict[str, str] = {}
        self.allocated_atp: dict[tuple[str, str], float] = defaultdict(float)
        self.optimizations: list[dict] = []  # one section per optimised routing run
        self.totals: dict[tuple[str, str], RunTotals] = defaultdict(RunTotals)
        # New ship groups are named after the one they split from (`00001-1`, `00001-2`):
        # ids are opaque, so nothing parses them; an id already in the order is skipped.
        self.next_ship_group: dict[tuple[str, str], int] = {}
        self.taken_ship_groups = {o.id: {g.id for g in o.ship_groups} for o in snapshot.orders}
        # the facilities each ship group (order, ship group id) got stock from in this run,
        # in the order they were first chosen: what `max_facilities` counts
        self.used: dict[tuple[str, str], list[str]] = defaultdict(list)

    # ---- the run ----
    def run(self, group_name: str | frozenset[str] | None, routing_name: str | None,
            progress) -> dict:
        wanted = frozenset([group_name]) if isinstance(group_name, str) else group_name
        batches = []
        # where each group's allocations and unfillable items start (scale-out merges by it)
        self.spans: dict[str, tuple[int, int]] = {}
        for group in self.plan.groups:
            if wanted is not None and group.name not in wanted:
                continue
            self.spans[group.name] = (len(self.allocations), len(self.unfillable))
            store = next((s for s in self.ctx.snapshot.product_stores
                          if s.id == group.product_store), None)
            batch = {"group": group.name, "product_store": group.product_store, "runs": []}
            batches.append(batch)
            if store is None:
                batch["skipped"] = f"product store {group.product_store!r} is not in the snapshot"
                continue
            if not store.enable_brokering:
                batch["skipped"] = "brokering is disabled for this product store"
                continue
            queues = self.prepared.static.get(("queues", store.id))
            if queues is None:  # whether the store has a queue: once per set of facilities
                queues = self.prepared.static[("queues", store.id)] = any(
                    f.virtual and store.id in f.stores for f in self.ctx.facilities.values())
            if not queues:
                self.warnings[f"queue:{group.name}"] = (
                    f"group {group.name!r}: store {store.id!r} has no queue in the snapshot (a "
                    f"facility with \"virtual\": true and {store.id!r} in its product_stores), "
                    "so none of its orders can be routed")
            zone = ZoneInfo(group.timezone) if group.timezone else self.ctx.zone
            for routing in group.routings:
                if routing_name is not None and routing.name != routing_name:
                    continue
                routing = _in_force(routing, self.ctx.now, zone)
                if routing is None:  # outside its window, or every rule is: as if draft
                    continue
                batch["runs"].append(self._routing(group.name, store.id, routing, progress))
            if batch["runs"] and not any(run["attempted_items"] for run in batch["runs"]):
                absent = _absent_queues(group, self.ctx.facilities)
                self.warnings[f"eligible:{group.name}"] = (
                    f"group {group.name!r}: nothing to route: " + absent if absent
                    else f"group {group.name!r}: no ship group was eligible (approved, waiting "
                         f"in a queue of store {store.id!r}, and passing a routing's filter)")
        return self._result(batches)

    def _eligible_units(self, store: str, item_mode: bool) -> list[_Unit]:
        facilities = self.ctx.facilities
        units: list[_Unit] = []
        current: dict[tuple, _Unit] = {}
        for state in self.ctx.items:
            order = state.order
            if (order.product_store != store or order.status != "APPROVED"
                    or state.item.status != "APPROVED" or state.open <= EPSILON):
                continue
            queue = facilities.get(state.queue)
            if queue is None or not queue.virtual or store not in queue.stores:
                continue
            if item_mode:
                units.append(_Unit(order, state.ship_group, state.queue, [state]))
                continue
            key = (order.id, state.ship_group.id, state.queue)
            unit = current.get(key)
            if unit is None:
                unit = current[key] = _Unit(order, state.ship_group, state.queue, [])
                units.append(unit)
            unit.items.append(state)
        return units

    def _routing(self, group_name: str, store: str, routing: PlanRouting, progress) -> dict:
        record = {"routing": routing.name, "attempted_items": 0, "brokered_items": 0,
                  "error": None}
        try:
            self._validate_routing(routing, store)
        except RunError as error:
            record["error"] = str(error)
            return record
        units = self._select_units(store, routing)
        record["attempted_items"] = self._item_count(units)
        if routing.optimize is not None:
            from .optimize.run import optimise_routing
            record["brokered_items"] = optimise_routing(self, group_name, store, routing, units,
                                                        progress)
        else:
            record["brokered_items"] = self._route_units(group_name, store, routing, units,
                                                         progress)
        return record

    def _item_count(self, units: list[_Unit]) -> int:
        return sum(len(u.items) for u in units)

    def _select_units(self, store: str, routing: PlanRouting) -> list[_Unit]:
        """The routing's units: eligible, passing its filters, in its order."""
        predicates = [_order_predicate(c, self.ctx) for c in routing.filters]
        units = [u for u in self._eligible_units(store, routing.item_mode)
                 if all(p(u) for p in predicates)]
        units.sort(key=_unit_sort_key(routing, self.ctx, self.plan.priority_order))
        return units

    def _route_units(self, group_name: str, store: str, routing: PlanRouting,
                     units: list[_Unit], progress, fixed: dict | None = None) -> int:
        """Route the sorted, eligible units through the routing's rules; returns how many
        items got stock. With ``fixed`` (unit index -> rule index -> placements), each rule
        commits the placements given for it instead of choosing (an optimised batch, see
        routing_dsl.optimize.run); everything else, actions included, is the same."""
        rules = self.prepared_rules(routing)
        brokered: set[int] = set()
        for index, unit in enumerate(units):
            self._unit(group_name, store, routing, rules, unit, brokered,
                       None if fixed is None else fixed.get(index, {}))
            if progress is not None:
                progress(1)
        return len(brokered)

    @staticmethod
    def prepared_rules(routing: PlanRouting) -> list[_PreparedRule]:
        return [_prepare_rule(rule, index) for index, rule in enumerate(routing.rules)]

    def _validate_routing(self, routing: PlanRouting, store: str) -> None:
        for rule in routing.rules:
            queue = rule.actions.move_to_queue
            if queue is None:
                continue
            info = self.ctx.facilities.get(queue)
            where = f" ({rule.source.label()})" if rule.source else ""
            if info is None:
                raise RunError(f"rule {rule.name!r} moves items to queue {queue!r}, which is not "
                               f"a facility in the snapshot{where}")
            if not info.virtual:
                raise RunError(f"rule {rule.name!r} moves items to {queue!r}, which is not a "
                               f"queue (virtual facility){where}")

    # ---- one unit through the rules ----
    def _unit(self, group_name: str, store: str, routing: PlanRouting,
              rules: list[_PreparedRule], unit: _Unit, brokered: set[int],
              fixed: dict | None = None) -> None:
        explaining = self.explain and (self.explain_orders is None
                                       or unit.order.id in self.explain_orders)
        trace = [] if explaining else None
        self.unit = unit
        for prepared in rules:
            open_items = [i for i in unit.items if i.open > EPSILON]
            if not open_items:
                break
            for item in open_items:
                item.last_rule = prepared.rule.name
            moved = self._rule(group_name, store, routing, prepared, unit, open_items, brokered,
                               trace, None if fixed is None else fixed.get(prepared.index, ()))
            if moved:
                break
        for item in unit.items:
            if item.open > EPSILON:
                self.unfillable.append({
                    "order": unit.order.id, "ship_group": unit.ship_group.id,
                    "item": item.item.id, "product": item.product,
                    "quantity": _number(item.open), "routing": routing.name,
                    "rule": item.last_rule, "action": item.last_action or "left",
                    "queue": item.queue,
                    "auto_cancel_date": item.auto_cancel.isoformat() if item.auto_cancel else None,
                })
            item.last_action = None
            item.last_rule = None
        if trace is not None:
            entry = {"order": unit.order.id, "ship_group": unit.ship_group.id,
                     "routing": routing.name, "rules": trace}
            if routing.item_mode:
                entry["item"] = unit.items[0].item.id
            self.explanations.append(entry)

    def _candidates(self, store: str, prepared: _PreparedRule, unit: _Unit,
                    open_items: list[_ItemState]) -> dict[str, float | None]:
        """Facilities that pass every facility-level condition and hold some stock the unit
        needs, with their distance in the rule's unit (None without coordinates)."""
        static = self.prepared.static.get((store, id(prepared.rule)))
        if static is None:
            static = self.prepared.static[(store, id(prepared.rule))] = frozenset(
                info.id for info in self.ctx.facilities.values()
                if not info.virtual and store in info.stores
                and _group_reason(prepared, info) is None)
        stock = self.ctx.stock
        if prepared.rule.assign == "single":
            # only a facility holding every product in full can take a single unit;
            # start from the product stocked in the fewest places
            needs = _needs(open_items)
            holders: set[str] | None = None
            for product, need in sorted(needs.items(), key=lambda pn: len(stock.get(pn[0], ()))):
                level = stock.get(product, {})
                if holders is None:
                    holders = {f for f, q in level.items() if q + EPSILON >= need and f in static}
                else:
                    holders = {f for f in holders if level.get(f, 0.0) + EPSILON >= need}
                if not holders:
                    break
            holders = holders or set()
        else:
            holders = set()
            for item in open_items:
                holders.update(f for f, q in stock.get(item.product, {}).items()
                               if q > EPSILON and f in static)
        check_limit = not prepared.rule.ignore_facility_order_limit
        uses_distance, checks = prepared.uses_distance, prepared.candidate_checks
        factor = prepared.unit_factor
        facilities, orders_today = self.ctx.facilities, self.ctx.orders_today
        result: dict[str, float | None] = {}
        # holders' order does not matter: ranking ends with the facility id
        for facility_id in holders:
            info = facilities[facility_id]
            if check_limit and info.limit is not None and orders_today[facility_id] >= info.limit:
                continue
            distance = unit.km_to(info) if uses_distance else None
            if uses_distance and distance is None:
                self._missing_coordinates(info, unit)
            if checks and not all(check.passes(self._candidate_fact(
                    check.criterion.fact, unit, facility_id, distance)) for check in checks):
                continue
            result[facility_id] = None if distance is None else distance * factor
        return result

    def _candidate_fact(self, fact: str, unit: _Unit, facility: str,
                        distance: float | None) -> float:
        """A candidate-stage fact (criteria.FACTS) of ``facility`` for the unit: its
        distance in km, its transit days; NaN when unknown."""
        if fact == "km":
            return math.nan if distance is None else distance
        transit = self._transit(unit, facility)
        return math.nan if transit is None else transit

    # ---- shipping: zones, costs and delivery days of the unit's packages ----
    def _card(self, unit: _Unit) -> int:
        group = unit.ship_group
        return self.ctx.rates.card(group.shipment_method, group.carrier)

    def _zone(self, unit: _Unit, facility: str) -> int:
        """The zone of a package from ``facility`` to the unit's address under its ship
        group's rate card, once per unit; -1 without a card or a zone."""
        zone = unit.zones.get(facility)
        if zone is None:
            card = self._card(unit)
            zone = -1 if card < 0 else self.ctx.rates.zone_of(
                card, self.ctx.rates.facility_index[facility],
                self.ctx.rates.destination(card, unit.ship_group.ship_to),
                unit.km_to(self.ctx.facilities[facility]))
            unit.zones[facility] = zone
        return zone

    def _transit(self, unit: _Unit, facility: str) -> int | None:
        zone = self._zone(unit, facility)
        return None if zone < 0 else self.ctx.rates.transit(self._card(unit), zone)

    def _delivery(self, unit: _Unit, facility: str) -> int | None:
        """The day (ordinal) a package from ``facility`` arrives, None when unknown."""
        zone = self._zone(unit, facility)
        if zone < 0:
            return None
        return self.ctx.rates.delivery(self._card(unit), zone,
                                       self.ctx.rates.facility_index[facility])

    def _weight(self, unit: _Unit, items) -> tuple[float, float]:
        """Weight and volume of the open quantity of ``items``, in the unit's card's units."""
        card = self._card(unit)
        weight = volume = 0.0
        for item in items:
            if card < 0:
                return math.nan, 0.0
            w, v = self.ctx.rates.weight(card, item.product)
            weight += w * item.open
            volume += v * item.open
        return weight, volume

    def _package_cost(self, unit: _Unit, facility: str, weight: float, volume: float) -> float:
        card = self._card(unit)
        zone = self._zone(unit, facility)
        if card < 0:
            return math.nan
        return self.ctx.rates.cost(card, zone, self.ctx.rates.facility_index[facility], weight,
                                   volume)

    def _missing_coordinates(self, info: _FacilityInfo, unit: _Unit) -> None:
        if info.lat is None or info.lon is None:
            self._warn_facility(info.id)
        ship_to = unit.ship_group.ship_to
        if ship_to is None or ship_to.lat is None or ship_to.lon is None:
            self._warn_ship_to(unit.order.id, unit.ship_group.id)

    def _warn_facility(self, facility: str) -> None:
        self.warnings.setdefault(
            f"facility:{facility}",
            f"facility {facility} has no coordinates: it fails every distance condition "
            "and sorts last on distance")

    def _warn_ship_to(self, order: str, ship_group: str) -> None:
        self.warnings.setdefault(
            f"ship_to:{order}:{ship_group}",
            f"order {order} ship group {ship_group} has no ship-to "
            "coordinates: no facility passes its distance conditions")

    def _available(self, facility: str, product: str, pending: dict) -> float:
        return self.ctx.stock.get(product, {}).get(facility, 0.0) - pending.get(
            (facility, product), 0.0)

    def _can_serve(self, prepared: _PreparedRule, item: _ItemState, facility: str,
                   pending: dict, need: float | None = None) -> bool:
        """Whether ``facility`` may give stock for ``item`` (all of ``need`` if given)."""
        if facility in item.excluded:
            return False
        available = self._available(facility, item.product, pending)
        if available <= EPSILON:
            return False
        for check in prepared.serve_checks:
            if not check.passes(*self._serve_facts(check.criterion, item, facility, available)):
                return False
        return need is None or available + EPSILON >= need

    def _serve_facts(self, criterion, item: _ItemState, facility: str,
                     available: float) -> tuple[float, float]:
        """A serve-stage fact of ``facility`` and the item fact it is compared with
        (criteria.FACTS): its net stock left, its delivery day (NaN: none) or how many days
        before today it last rejected the item (NaN: never); the item's open quantity or its
        promised day."""
        if criterion.fact == "available":
            value = available
        elif criterion.fact == "refused":
            latest = item.rejected.get(facility)
            value = math.nan if latest is None else float(
                self.ctx.now.date().toordinal()
                - latest[1].at.astimezone(self.ctx.zone).date().toordinal())
        else:
            delivery = self._delivery(self.unit, facility)
            value = math.nan if delivery is None else delivery
        if criterion.item_fact == "open":
            return value, item.open
        return value, self.ctx.rates.promised(item.item.promised_date)

    def _measure(self, prepared: _PreparedRule, candidates: dict[str, float | None],
                 open_items: list[_ItemState]) -> dict[str, _Measure]:
        """Sort values of each candidate that do not depend on what is placed, measured once
        when the rule starts (_Measure)."""
        stock = self.ctx.stock
        balance = dict.fromkeys(candidates, 0.0)
        if "balance" in prepared.needs:
            for product in dict.fromkeys(i.product for i in open_items):
                for facility, quantity in stock.get(product, {}).items():
                    if facility in balance and quantity > 0:
                        balance[facility] += quantity
        if prepared.rule.assign == "single":
            full = dict.fromkeys(candidates, len(open_items))  # every candidate fills all
        else:
            full = dict.fromkeys(candidates, 0)
            for item in open_items:
                need, excluded = item.open, item.excluded
                for facility, quantity in stock.get(item.product, {}).items():
                    if facility not in full or quantity + EPSILON < need:
                        continue
                    if not prepared.serve_checks and facility not in excluded or \
                            self._can_serve(prepared, item, facility, {}, need):
                        full[facility] += 1
        measures = {}
        sequences = "sequence" in prepared.needs
        for facility in candidates:
            sequence = sequence_of(prepared.include_ids, self.ctx.facilities[facility]) \
                if sequences else None
            measures[facility] = _Measure(candidates[facility], balance[facility], sequence,
                                          full[facility])
        return measures

    def _ranking(self, prepared: _PreparedRule, measures: dict[str, _Measure],
                 placed: list[_ItemState]) -> list[str]:
        """Candidate facilities in rank order for placing ``placed``: the rule's sorts, then
        more items in full, then (one item placed) its availability there, then facility id.
        With costs, a facility whose package after placing fails a placement condition (the
        rule's `shipping_cost` limits) is left out; so is one a sort with ``excludes_missing``
        (broken_style) has no value for."""
        placed_products = sorted({i.product for i in placed})
        levels = [self.ctx.stock.get(p, {}) for p in placed_products]
        single_item = placed[0] if len(placed) == 1 else None
        keys = {}
        if len(levels) == 1:  # only facilities that hold the placed product
            holding = [f for f, q in levels[0].items() if q > EPSILON and f in measures]
        else:
            holding = [f for f in measures
                       if all(level.get(f, 0.0) > EPSILON for level in levels)]
        costs = "costs" in prepared.needs
        packages = self._packages
        opened = len(packages) + self.unit.packages  # packages the unit has so far
        if costs:
            weight, volume = self._weight(self.unit, placed)
        rank = _Rank(self, prepared, placed_products)
        for facility in holding:
            measure = measures[facility]
            rank.measure = measure
            rank.new_package = opened > 0 and facility not in packages
            if costs:
                # the package there after placing: its cost must pass the rule's limits, and
                # the shipping_cost sort ranks by what placing adds
                before = packages.get(facility)
                total = self._package_cost(self.unit, facility,
                                           (before[0] if before else 0.0) + weight,
                                           (before[1] if before else 0.0) + volume)
                if not all(check.passes(total) for check in prepared.placement_checks):
                    continue
                rank.added = total - (self._package_cost(self.unit, facility, *before)
                                      if before else 0.0)
            key = []
            for criterion, sort in prepared.sorts:
                value = criterion.reference(rank, facility)
                if value is None:
                    if criterion.excludes_missing:
                        break
                    key.append((-1 if sort.nulls_first else 1, 0))
                else:
                    key.append((0, -value if sort.descending else value))
            else:
                key.append((-measure.full,))
                if single_item is not None and single_item.open:
                    available = levels[0].get(facility, 0.0)
                    key.append((-(available / single_item.open),))
                key.append((facility,))
                keys[facility] = tuple(key)
        return sorted(keys, key=keys.__getitem__)

    def _rule(self, group_name: str, store: str, routing: PlanRouting, prepared: _PreparedRule,
              unit: _Unit, open_items: list[_ItemState], brokered: set[int],
              trace: list | None, fixed=None) -> bool:
        """Try one rule on the unit's open items. Returns True when the unit was moved to a
        queue (no later rule runs). With ``fixed``, the rule commits those placements (item,
        facility, quantity) and then acts on what stays open, as it would have."""
        rule = prepared.rule
        if fixed is not None:
            self._packages = {}
            placements = [p for p in fixed if p[2] > EPSILON]
            if placements:
                self._commit(group_name, routing, prepared, unit, placements, brokered)
            return self._actions(rule, open_items)
        candidates = self._candidates(store, prepared, unit, open_items)
        measures = self._measure(prepared, candidates, open_items)
        before = dict(measures) if trace is not None else None
        pending: dict[tuple[str, str], float] = {}
        placements: list[tuple[_ItemState, str, float]] = []
        self._packages: dict[str, list[float]] = {}  # facility -> weight, volume placed
        if rule.assign == "single":
            self._assign_single(prepared, measures, open_items, pending, placements)
        else:
            self._assign_partial(prepared, measures, open_items, pending, placements)
        rejection = self._post_checks(rule, open_items, placements)
        if trace is not None:
            trace.append(self._explain_rule(store, prepared, unit, open_items, before,
                                            placements, rejection))
        if rejection is None and placements:
            self._commit(group_name, routing, prepared, unit, placements, brokered)
        return self._actions(rule, open_items)

    def _actions(self, rule: PlanRule, open_items: list[_ItemState]) -> bool:
        """The rule's `when unfilled` actions on the items still open; True when they were
        moved to a queue."""
        left = [i for i in open_items if i.open > EPSILON]
        if not left:
            return False
        actions = rule.actions
        if actions.clear_auto_cancel:
            for item in left:
                item.auto_cancel = None
                item.last_action = "auto_cancel_cleared"
        elif actions.auto_cancel_days is not None:
            date = self.ctx.now + timedelta(days=actions.auto_cancel_days)
            for item in left:
                item.auto_cancel = date
                item.last_action = "auto_cancel_set"
        if actions.move_to_queue:
            for item in left:
                item.queue = actions.move_to_queue
                item.last_action = "moved"
            return True
        return False

    # ---- what batch optimisation asks (routing_dsl.optimize.candidates) ----
    def admitted(self, store: str, prepared: _PreparedRule, unit: _Unit) -> dict[str, list]:
        """Which open items of ``unit`` the rule admits at each facility, at the run's
        current state and with nothing allocated: facility -> the open items it may give
        stock to. It is the rule's own procedure with the choice left out: the candidates,
        each step's ranking (which drops a facility a placement condition or a filtering sort
        excludes) and the serve checks of `_assign_single` and `_assign_partial`, for every
        ranked facility rather than the first. An `assign single` rule admits a facility
        only for every open item, in full; with `keep_item_groups_together`, a group's items
        only all together, in full."""
        self.unit = unit
        open_items = [i for i in unit.items if i.open > EPSILON]
        if not open_items:
            return {}
        rule = prepared.rule
        measures = self._measure(prepared, self._candidates(store, prepared, unit, open_items),
                                 open_items)
        self._packages = {}
        found: dict[str, list] = defaultdict(list)
        if rule.assign == "single":
            for facility in self._ranking(prepared, measures, open_items):
                if self._first_filling(prepared, [facility], open_items, {}) is not None:
                    found[facility] = list(open_items)
            return dict(found)
        steps: list[list[_ItemState]] = []
        grouped: dict[str, list[_ItemState]] = {}
        for item in open_items:
            group = item.item.item_group if rule.keep_item_groups_together else None
            if group is None:
                steps.append([item])
            elif group in grouped:
                grouped[group].append(item)
            else:
                grouped[group] = [item]
                steps.append(grouped[group])
        for step in steps:
            together = rule.keep_item_groups_together and step[0].item.item_group is not None
            for facility in self._ranking(prepared, measures, step):
                if together:
                    if self._first_filling(prepared, [facility], step, {}) is not None:
                        found[facility].extend(step)
                elif self._can_serve(prepared, step[0], facility, {}):
                    found[facility].append(step[0])
        return {f: found[f] for f in sorted(found)}

    def checkpoint(self, units: list[_Unit]):
        """What routing ``units`` may change, to be put back with `restore` (an optimised
        routing routes its batch by the rules first: their decisions are its warm start)."""
        products = {i.product for u in units for i in u.items}
        orders = {u.order.id for u in units}
        return (
            {p: dict(self.ctx.stock[p]) for p in products if p in self.ctx.stock},
            dict(self.ctx.orders_today), dict(self.allocated_atp),
            [(i, i.open, i.queue, i.auto_cancel, i.last_action, i.last_rule)
             for u in units for i in u.items],
            [(u, u.packages) for u in units],
            len(self.allocations), len(self.unfillable), len(self.explanations),
            {k: copy.deepcopy(v) for k, v in self.totals.items()}, dict(self.next_ship_group),
            {o: set(self.taken_ship_groups[o]) for o in orders}, dict(self.warnings),
            {k: list(v) for k, v in self.used.items()})

    def restore(self, saved) -> None:
        (stock, orders_today, allocated, items, units, allocations, unfillable, explanations,
         totals, next_group, taken, warnings, used) = saved
        for product, level in stock.items():
            self.ctx.stock[product] = dict(level)
        self.ctx.orders_today = dict(orders_today)
        self.allocated_atp = defaultdict(float, allocated)
        for item, *state in items:
            item.open, item.queue, item.auto_cancel, item.last_action, item.last_rule = state
        for unit, packages in units:
            unit.packages = packages
        del self.allocations[allocations:]
        del self.unfillable[unfillable:]
        del self.explanations[explanations:]
        self.totals = defaultdict(RunTotals, {k: copy.deepcopy(v) for k, v in totals.items()})
        self.next_ship_group = dict(next_group)
        self.taken_ship_groups.update({o: set(g) for o, g in taken.items()})
        self.warnings = dict(warnings)
        self.used = defaultdict(list, {k: list(v) for k, v in used.items()})

    def _first_filling(self, prepared, ranking: list[str], items: list[_ItemState],
                       pending: dict) -> str | None:
        """The first facility in ``ranking`` that can fill every one of ``items`` in full
        (quantities of lines with the same product summed)."""
        needs = _needs(items)
        for facility in ranking:
            if not self._may_open(prepared, facility):
                continue
            if all(self._can_serve(prepared, item, facility, pending, needs[item.product])
                   for item in items):
                return facility
        return None

    def _may_open(self, prepared: _PreparedRule, facility: str) -> bool:
        """`max_facilities N`: a facility already shipping for the unit's ship group (in
        this run, or in this rule's placements so far) may take more; another only while
        fewer than N do."""
        cap = prepared.rule.max_facilities
        if cap is None:
            return True
        used = self.used.get((self.unit.order.id, self.unit.ship_group.id), ())
        if facility in used or facility in self._packages:
            return True
        return len(used) + sum(1 for f in self._packages if f not in used) < cap

    def _assign_single(self, prepared, measures, open_items, pending, placements) -> None:
        facility = self._first_filling(prepared, self._ranking(prepared, measures, open_items),
                                       open_items, pending)
        if facility is not None:
            placements.extend((item, facility, item.open) for item in open_items)

    def _assign_partial(self, prepared, measures, open_items, pending, placements) -> None:
        steps: list[list[_ItemState]] = []
        grouped: dict[str, list[_ItemState]] = {}
        for item in open_items:  # item-id order
            group = item.item.item_group if prepared.rule.keep_item_groups_together else None
            if group is None:
                steps.append([item])
            elif group in grouped:
                grouped[group].append(item)
            else:
                grouped[group] = [item]
                steps.append(grouped[group])
        for step in steps:
            ranking = self._ranking(prepared, measures, step)
            if prepared.rule.keep_item_groups_together and step[0].item.item_group is not None:
                facility = self._first_filling(prepared, ranking, step, pending)
                if facility is not None:
                    for item in step:
                        placements.append((item, facility, item.open))
                        key = (facility, item.product)
                        pending[key] = pending.get(key, 0.0) + item.open
                        self._pack(facility, item, item.open)
                continue
            item = step[0]
            remaining = item.open
            for facility in ranking:
                if not self._may_open(prepared, facility) or \
                        not self._can_serve(prepared, item, facility, pending):
                    continue
                available = self._available(facility, item.product, pending)
                if prepared.whole_lines:  # a line goes whole to one facility
                    if available + EPSILON < remaining:
                        continue
                    take = remaining
                else:
                    take = min(available, remaining)
                placements.append((item, facility, take))
                key = (facility, item.product)
                pending[key] = pending.get(key, 0.0) + take
                self._pack(facility, item, take)
                remaining -= take
                if remaining <= EPSILON:
                    break

    def _pack(self, facility: str, item: _ItemState, quantity: float) -> None:
        """Add ``quantity`` of ``item`` to the rule's package at ``facility``."""
        card = self._card(self.unit)
        w, v = self.ctx.rates.weight(card, item.product) if card >= 0 else (math.nan, 0.0)
        package = self._packages.get(facility)
        if package is None:
            package = self._packages[facility] = [0.0, 0.0]
        package[0] += w * quantity
        package[1] += v * quantity

    def _post_checks(self, rule: PlanRule, open_items, placements) -> str | None:
        """Why the rule's allocation is rejected, or None when it stands."""
        if not placements:
            return None
        filled: dict[int, float] = defaultdict(float)
        per_facility: dict[str, float] = defaultdict(float)
        for item, facility, quantity in placements:
            filled[id(item)] += quantity
            per_facility[facility] += item.value(quantity)
        complete = all(filled[id(i)] + EPSILON >= i.open for i in open_items)
        if rule.only_if_all_items_available and not complete:
            return "only_if_all_items_available: some items cannot be filled"
        threshold = rule.shipment_threshold
        if threshold and not (len(per_facility) == 1 and complete):
            for facility in sorted(per_facility):
                if per_facility[facility] + EPSILON < threshold:
                    return (f"shipment_threshold {threshold:.2f}: {facility} would ship "
                            f"{per_facility[facility]:.2f}")
            open_value = sum(i.value(i.open - filled[id(i)]) for i in open_items
                             if i.open - filled[id(i)] > EPSILON)
            if not complete and open_value + EPSILON < threshold:
                return (f"shipment_threshold {threshold:.2f}: what stays open is worth "
                        f"{open_value:.2f}")
        return None

    def _commit(self, group_name, routing, prepared, unit, placements, brokered) -> None:
        rule = prepared.rule
        new_groups: dict[str, str] = {}
        distance_cache: dict[str, float | None] = {}
        packages: dict[str, list] = {}  # facility -> its rows, items and quantities
        for item, facility, quantity in placements:
            if facility not in new_groups:
                unit.packages += 1
                new_groups[facility] = self._new_ship_group(unit.order.id, unit.ship_group.id)
                used = self.used[(unit.order.id, unit.ship_group.id)]
                if facility not in used:
                    used.append(facility)
                self.ctx.orders_today[facility] += 1
                distance_cache[facility] = self._distance(facility, unit, rule.distance_unit)
            self.ctx.stock[item.product][facility] -= quantity
            self.allocated_atp[(facility, item.product)] += quantity
            item.open -= quantity
            item.auto_cancel = None
            brokered.add(id(item))
            distance = distance_cache[facility]
            self.allocations.append({
                "order": unit.order.id, "ship_group": unit.ship_group.id, "item": item.item.id,
                "product": item.product, "facility": facility, "quantity": _number(quantity),
                "new_ship_group": new_groups[facility], "group": group_name,
                "routing": routing.name, "rule": rule.name,
                "distance": None if distance is None else round(distance, 2),
                "distance_unit": rule.distance_unit,
                "shipping_cost": None, "transit_days": None, "delivery_date": None,
            })
            packages.setdefault(facility, []).append((self.allocations[-1], item, quantity))
        self._price(unit, packages, self.totals[(group_name, routing.name)])

    def _price(self, unit: _Unit, packages: dict[str, list], totals: RunTotals) -> None:
        """Each new package's cost (shared among its rows by weight), transit days and
        delivery date, and the run's totals."""
        rates = self.ctx.rates
        card = self._card(unit) if rates else -1
        for facility, entries in packages.items():
            if card < 0:
                totals.package(unit.order.id, unit.ship_group.id, None)
                continue
            index = rates.facility_index[facility]
            zone = self._zone(unit, facility)
            weights, weight, volume = [], 0.0, 0.0
            for _, item, quantity in entries:
                w, v = rates.weight(card, item.product)
                weights.append(w * quantity)
                weight += w * quantity
                volume += v * quantity
            cost = rates.cost(card, zone, index, weight, volume)
            delivery = rates.delivery(card, zone, index)
            totals.package(unit.order.id, unit.ship_group.id, cents(cost))
            transit = None if zone < 0 else rates.transit(card, zone)
            for (row, item, _), share in zip(entries, shares(cost, weights), strict=True):
                row["shipping_cost"] = None if share is None else share / 100
                row["transit_days"] = transit
                row["delivery_date"] = iso_day(delivery)
                if delivery >= 0 and rates.promised(item.item.promised_date) < delivery:
                    totals.late.add(id(item))

    def _distance(self, facility: str, unit: _Unit, unit_name: str) -> float | None:
        km = unit.km_to(self.ctx.facilities[facility])
        if km is None:
            return None
        return km if unit_name == "km" else km / KM_PER_MILE

    def _new_ship_group(self, order_id: str, ship_group_id: str) -> str:
        taken = self.taken_ship_groups[order_id]
        number = self.next_ship_group.get((order_id, ship_group_id), 1)
        while f"{ship_group_id}-{number}" in taken:
            number += 1
        self.next_ship_group[(order_id, ship_group_id)] = number + 1
        new_id = f"{ship_group_id}-{number}"
        taken.add(new_id)
        return new_id

    def _inventory_after(self) -> list[dict]:
        # Only the rows the run changed: a large snapshot has millions of inventory rows, and
        # applying these to the snapshot chains runs just the same.
        return [{"facility": facility, "product": product,
                 "atp": _number(self.ctx.atp[(facility, product)] - consumed)}
                for (facility, product), consumed in sorted(self.allocated_atp.items())
                if consumed]

    def _result(self, batches: list[dict]) -> dict:
        attach_totals(batches, self.totals)
        result = {"format": RESULT_FORMAT, "allocations": self.allocations,
                  "unfillable": self.unfillable, "batches": batches}
        if self.after:
            result["inventory_after"] = self._inventory_after()
            result["facility_counts_after"] = [
                {"facility": f, "orders_today": self.ctx.orders_today[f]}
                for f in sorted(self.ctx.orders_today)]
        result["warnings"] = [self.warnings[k] for k in sorted(self.warnings)]
        if self.optimizations:
            from .optimize.report import combine
            result["optimization"] = combine(self.optimizations)
        if self.explain:
            result["explanations"] = self.explanations
        return result

    # ---- explanations ----
    def _explain_rule(self, store, prepared, unit, open_items, measures, placements,
                      rejection) -> dict:
        """What one rule did for a unit: the chosen facilities with their sort keys, every
        other facility of the store counted under the first condition that excluded it (with a
        few examples), and full detail only for the facilities asked about. Facilities are
        examined in stages (group, order limit, stock, then the rest) so that the cost follows
        the facilities that hold the stock, as routing's own does, not the store's size."""
        rule = prepared.rule
        chosen = sorted({facility for _, facility, _ in placements}) if rejection is None else []
        needs = dict(sorted(_needs(open_items).items()))  # reasons list products in order
        chosen_keys = {f: self._sort_keys(prepared, measures, f) for f in chosen}
        counts: dict[str, dict] = {}

        def note_all(facilities: list[str], reason: dict) -> None:
            """Count ``facilities`` (in order) under the reason's condition."""
            entry = counts.get(reason["condition"])
            if entry is None:
                entry = counts[reason["condition"]] = {"condition": reason["condition"],
                                                       "count": 0, "examples": []}
                if "source" in reason:
                    entry["source"] = reason["source"]
            entry["count"] += len(facilities)
            entry["examples"] += facilities[:3 - len(entry["examples"])]

        def note(facility: str, reason: dict) -> None:
            note_all([facility], reason)

        serving, failing_group, passing, limited = self._explain_facilities(store, prepared)
        # the group failures are the same for every unit: counted once per (store, rule)
        for reason, facilities in self._group_failures(store, prepared, failing_group):
            note_all(facilities, reason)
        at_limit = set()
        if not rule.ignore_facility_order_limit:
            for facility in limited:
                info = self.ctx.facilities[facility]
                if self.ctx.orders_today[facility] >= info.limit and facility not in chosen:
                    at_limit.add(facility)
                    note(facility, self._exclusion(prepared, info, unit, open_items, measures,
                                                   needs, rejection, chosen_keys, False))
        holding = set()
        for product in needs:
            for facility, quantity in self.ctx.stock.get(product, {}).items():
                if quantity > EPSILON:
                    holding.add(facility)
        without_stock = [f for f in passing if f not in holding and f not in at_limit
                         and f not in chosen]
        if without_stock:
            note_all(without_stock, {"condition": "net stock > 0"})
        for facility in passing:
            if facility in holding and facility not in at_limit and facility not in chosen:
                # counted, not shown: the reason's values are left out
                note(facility, self._exclusion(prepared, self.ctx.facilities[facility], unit,
                                               open_items, measures, needs, rejection,
                                               chosen_keys, False))
        outcome = "nothing"
        if rejection is None and placements:
            filled = sum(q for _, _, q in placements)
            outcome = "filled" if filled + EPSILON >= sum(i.open for i in open_items) \
                else "partly filled"
        result = {"rule": rule.name, "outcome": outcome,
                  "chosen": [{"facility": f, "sort_keys": chosen_keys[f]} for f in chosen],
                  "not_chosen": sorted(counts.values(),
                                       key=lambda e: (-e["count"], e["condition"]))}
        asked = sorted(self.explain_facilities & set(serving))
        if asked:
            result["facilities"] = [
                {"facility": f, "chosen": f in chosen_keys,
                 **({} if f in chosen_keys else {"excluded_by": self._exclusion(
                     prepared, self.ctx.facilities[f], unit, open_items, measures, needs,
                     rejection, chosen_keys)})}
                for f in asked]
        if rule.source:
            result["source"] = rule.source.label()
        if rejection:
            result["rejected"] = rejection
        return result

    def _group_failures(self, store: str, prepared: _PreparedRule, failing: list):
        """The facilities a group condition excludes, grouped by that condition (in
        facility order), computed once per (store, rule)."""
        key = ("groups", store, id(prepared.rule))
        found = self._explain_cache.get(key)
        if found is None:
            by_condition: dict[str, tuple[dict, list[str]]] = {}
            for facility, reason in failing:
                by_condition.setdefault(reason["condition"], (reason, []))[1].append(facility)
            found = self._explain_cache[key] = list(by_condition.values())
        return found

    def _explain_facilities(self, store: str, prepared: _PreparedRule):
        """Per (store, rule), computed once: the store's real facilities in id order, those a
        group condition excludes (with the reason), the others, and those of the others with
        an order limit."""
        key = (store, id(prepared.rule))
        found = self._explain_cache.get(key)
        if found is None:
            serving = sorted(f.id for f in self.ctx.facilities.values()
                             if not f.virtual and store in f.stores)
            failing = []
            for facility in serving:
                info = self.ctx.facilities[facility]
                check = _group_reason(prepared, info)
                if check is not None:
                    failing.append((facility, self._explained(check, info)))
            excluded = {f for f, _ in failing}
            passing = [f for f in serving if f not in excluded]
            limited = [f for f in passing if self.ctx.facilities[f].limit is not None]
            found = self._explain_cache[key] = (serving, failing, passing, limited)
        return found

    def _sort_keys(self, prepared: _PreparedRule, measures, facility: str) -> dict:
        """The values a facility was ranked by: the rule's sorts (each criterion's
        ``explain``), what one package of the unit's open items would cost from there and when
        it would arrive (when the unit has a rate card), then the items it fills in full."""
        measure = measures.get(facility) if measures else None
        if measure is None:
            return {}
        explaining = _Explaining(self, prepared.rule)
        keys: dict = {}
        for criterion, _ in prepared.sorts:
            keys.update(criterion.explain(explaining, measure, facility))
        if self._card(self.unit) >= 0:
            keys.update(explain_package(explaining, facility))
        keys["items_in_full"] = measure.full
        return keys

    def _explained(self, check: _Check, value, item=None, facility: str | None = None) -> dict:
        """The reason ``facility`` fails ``check`` (its criterion's ``explain``), with the
        value compared."""
        text, values = check.criterion.explain(_Explaining(self, check.rule, facility),
                                               check.condition, value, item)
        return _reason(text, check.condition.source, **values)

    def _exclusion(self, prepared, info, unit, open_items, measures, needs, rejection,
                   chosen_keys, detail: bool = True) -> dict:
        """The first condition that kept ``info`` from being chosen, with the values compared:
        the facility-stage conditions (groups), the order limit, stock, the rule's other
        conditions in their criteria's ``explain_rank`` order (with `excluded_facilities`
        among them), `assign single`, the rule's checks, and last the ranking (with both
        facilities' sort keys). ``needs`` is by product. Without ``detail`` the facility is
        only counted: it is known to pass the rule's group conditions, and the values are left
        out."""
        rule = prepared.rule
        failed = _group_reason(prepared, info) if detail else None
        if failed is not None:
            return self._explained(failed, info)
        if not rule.ignore_facility_order_limit and info.limit is not None and \
                self.ctx.orders_today[info.id] >= info.limit:
            return _reason("facility order limit", orders_today=self.ctx.orders_today[info.id],
                           max_orders_per_day=info.limit)
        levels = self.ctx.stock
        stock = {p: levels.get(p, {}).get(info.id, 0.0) for p in needs}
        if all(v <= EPSILON for v in stock.values()):
            return _reason("net stock > 0", **(
                {"net_stock": {p: _number(q) for p, q in stock.items()}} if detail else {}))
        km = unit.km_to(info)
        exclusions_done = False
        for check in prepared.explained_checks():
            criterion = check.criterion
            if not exclusions_done and criterion.explain_rank > EXCLUSIONS_RANK:
                exclusions_done = True
                for item in open_items:
                    if info.id in item.excluded:
                        return _reason("excluded_facilities", item=item.item.id)
            if criterion.stage == "candidate":
                value = self._candidate_fact(criterion.fact, unit, info.id, km)
                if not check.passes(value):
                    return self._explained(check, value)
            elif criterion.stage == "placement":  # one package of the open items
                value = self._package_cost(unit, info.id, *self._weight(unit, open_items))
                if not check.passes(value):
                    return self._explained(check, value)
            else:
                for item in open_items:
                    available = self._available(info.id, item.product, {})
                    value, item_value = self._serve_facts(criterion, item, info.id, available)
                    if not check.passes(value, item_value):
                        return self._explained(check, value, item, info.id)
        if not exclusions_done:
            for item in open_items:
                if info.id in item.excluded:
                    return _reason("excluded_facilities", item=item.item.id)
        cap = rule.max_facilities
        if cap is not None:
            shipping = list(self.used.get((unit.order.id, unit.ship_group.id), ()))
            shipping += [f for f in sorted(chosen_keys) if f not in shipping]
            if info.id not in shipping and len(shipping) >= cap:
                return _reason(f"max_facilities {cap}", shipping_from=shipping)
        if rule.assign == "single" and any(stock.get(p, 0) + EPSILON < q
                                           for p, q in needs.items()):
            if not detail:
                return _reason("assign single: one facility must fill every item")
            return _reason("assign single: one facility must fill every item",
                           needed={p: _number(q) for p, q in needs.items()},
                           net_stock={p: _number(q) for p, q in stock.items()})
        if rejection:
            return _reason(rejection)
        if not detail:
            return _reason("ranked below the chosen facilities")
        return _reason("ranked below the chosen facilities",
                       sort_keys=self._sort_keys(prepared, measures, info.id),
                       chosen=chosen_keys)


# `excluded_facilities` is explained after the conditions of lower rank (distance, transit)
# and before those of higher rank (delivery dates, costs, safety stock).
EXCLUSIONS_RANK = 25


class _Explaining:
    """What a criterion's ``explain`` reads: the rule, the snapshot's time zone, and (for the
    unit being explained) one package of its open items from a facility: its cost and its
    delivery day (NaN: unknown)."""

    def __init__(self, run: _Interpreter, rule: PlanRule, facility: str | None = None):
        self.run, self.rule, self.zone = run, rule, run.ctx.zone
        self.facility = facility  # the facility whose failing condition is explained

    def package_cost(self, facility: str) -> float:
        unit = self.run.unit
        return self.run._package_cost(unit, facility, *self.run._weight(
            unit, [i for i in unit.items if i.open > EPSILON]))

    def delivery(self, facility: str) -> float:
        day = self.run._delivery(self.run.unit, facility)
        return math.nan if day is None else day


def _reason(condition: str, source=None, **values) -> dict:
    reason = {"condition": condition, "values": values}
    if source is not None:
        reason["source"] = source.label()
    return reason


def _needs(items: Iterable[_ItemState]) -> dict[str, float]:
    """Open quantity per product over ``items``."""
    needs: dict[str, float] = defaultdict(float)
    for item in items:
        needs[item.product] += item.open
    return needs


def run_plan(plan: Plan, snapshot: Snapshot, *, group: str | frozenset[str] | None = None,
             routing: str | None = None, explain: bool = False,
             explain_orders: set[str] | None = None,
             explain_facilities: set[str] | None = None, progress=None,
             prepared: Prepared | None = None, live: LiveStock | None = None,
             after: bool = True) -> dict:
    """Run ``plan`` against ``snapshot`` and return the result document (only ``group``, or
    the groups of a set, when given). With ``explain``,
    the units of ``explain_orders`` (all when None) are explained, with full detail for the
    facilities in ``explain_facilities``. ``prepared`` carries indexes from earlier runs of
    the same plan on the same facilities (see Prepared); with ``live``, stock and daily counts
    come from it, not from the snapshot (see LiveStock). Without ``after``, the result leaves
    out `inventory_after` and `facility_counts_after` (a decision shows neither)."""
    return _Interpreter(plan, snapshot, explain, explain_orders, explain_facilities,
                        prepared, live, after).run(group, routing, progress)


def _in_force(routing: PlanRouting, now: datetime, zone: ZoneInfo) -> PlanRouting | None:
    """The routing with the rules whose windows hold ``now`` (itself when every one does),
    or None when its own window does not or no rule is left: skipped as if draft."""
    if not in_window(routing, now, zone):
        return None
    rules = [rule for rule in routing.rules if in_window(rule, now, zone)]
    if len(rules) == len(routing.rules):
        return routing
    return routing.model_copy(update={"rules": rules}) if rules else None


def _absent_queues(group, facilities: dict) -> str | None:
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
    ctx = _Context(snapshot)
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
            units = [_Unit(order, s.ship_group, s.queue, [s]) for s in states] \
                if routing.item_mode else [
                    _Unit(order, g, g.facility, [s for s in states if s.ship_group is g])
                    for g in order.ship_groups]
            for unit in units:
                if not unit.items:
                    continue
                for condition in routing.filters:
                    if not _order_predicate(condition, ctx)(unit):
                        where = f" ({condition.source.label()})" if condition.source else ""
                        value = _ids(condition.ids) if condition.ids else (
                            f"{condition.days} days" if condition.days is not None else "")
                        reasons.append(f"routing {routing.name!r}: ship group "
                                       f"{unit.ship_group.id!r} fails the filter "
                                       f"`{condition.field} {condition.op} {value}`{where}")
                        break
    return list(dict.fromkeys(reasons)) or ["it was eligible, but every routing that could "
                                            "take it was excluded by --group or --routing"]
