"""Run state: what a run knows and changes while it routes.

It owns the run's context (`Context`: indexes over the snapshot built once per run, the
stock and daily counts routing takes from, the rate model), the order lines as the run sees
them (`ItemState`: open quantity, queue, auto-cancel date), the units a routing routes
(`Unit`), facilities (`FacilityInfo`) and what runs on the same facilities share (`Prepared`).
Nothing here decides anything: unit selection (`runtime.units`), the allocator
(`runtime.allocation`) and the explainer (`runtime.explanation`) read and change this state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from ..shipping import RateModel
from ..snapshot import Item, Order, ShipGroup, Snapshot
from .geometry import haversine_radians, radians
from .stock import LiveStock, facility_orders_today, index_inventory

EPSILON = 1e-9  # quantities closer than this are equal
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


class ItemState:
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
class Unit:
    """What a routing routes at once: a ship group's open items waiting in one queue (or, in
    item-by-item mode, one item), with the distances and zones worked out for it so far."""

    order: Order
    ship_group: ShipGroup
    queue: str
    items: list[ItemState]
    distances: dict[str, float] = field(default_factory=dict)  # facility -> km, per unit
    zones: dict[str, int] = field(default_factory=dict)  # facility -> zone of its rate card
    packages: int = 0  # packages earlier rules shipped for the unit

    @cached_property
    def target(self) -> tuple[float, float, float] | None:
        ship_to = self.ship_group.ship_to
        return radians(ship_to.lat, ship_to.lon) if ship_to else None

    def km_to(self, info: FacilityInfo) -> float | None:
        """Distance from the facility to the ship-to address, computed once per unit; None
        when either has no coordinates."""
        distance = self.distances.get(info.id)  # only ever set with both coordinates
        if distance is None:
            point, target = info.radians, self.target
            if point is None or target is None:
                return None
            distance = self.distances[info.id] = haversine_radians(
                point[0], point[1], point[2], target[0], target[1], target[2])
        return distance


@dataclass
class FacilityInfo:
    """A facility as routing reads it: its coordinates (also in radians), daily order limit,
    groups (with sequence numbers) and the stores it serves."""

    id: str
    virtual: bool
    lat: float | None
    lon: float | None
    limit: int | None
    groups: dict[str, int | None]
    stores: frozenset[str]
    radians: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        self.radians = radians(self.lat, self.lon)


class Prepared:
    """What runs on snapshots with the same facilities can share (a service deciding order
    after order against one live state): the facility index, each routing's lowered rules,
    each rule's facilities per store, the grouping of facilities for explanations, and the
    rate model (for one `now`; it also holds the products and rate cards). Keyed by the
    plan's rule objects, so it is only for the plans it was filled with; make a new one when
    the facilities, products or rate cards change."""

    def __init__(self) -> None:
        self.facilities: dict[str, FacilityInfo] | None = None
        self.products: tuple | None = None  # by id, variants of each style, style of each
        self.rates: RateModel | None = None
        self.static: dict[tuple, frozenset[str]] = {}
        self.explain: dict[tuple, tuple] = {}
        self.rules: dict[tuple, tuple] = {}  # ids of a routing's rules -> (them, lowered)


class RunError(Exception):
    """A configuration problem found at run time; recorded on the routing's run, never turned
    into 'unfillable'."""


@dataclass
class Context:
    """Indexes over the snapshot, built once per run."""

    snapshot: Snapshot
    prepared: Prepared | None = None
    live: LiveStock | None = None
    zone: ZoneInfo = field(init=False)
    now: datetime = field(init=False)
    facilities: dict[str, FacilityInfo] = field(init=False)
    stock: dict[str, dict[str, float]] = field(init=False)  # product -> facility -> net left
    atp: dict[tuple[str, str], float] = field(init=False)
    velocity: dict[tuple[str, str], float] = field(init=False)
    variants: dict[str, list[str]] = field(init=False)
    style: dict[str, str] = field(init=False)
    orders_today: dict[str, int] = field(init=False)
    delivery_days: dict[tuple[str, str | None], int | None] = field(init=False)
    items: list[ItemState] = field(init=False)

    def __post_init__(self) -> None:
        snapshot = self.snapshot
        self.zone = ZoneInfo(snapshot.timezone)
        self.now = snapshot.now.astimezone(self.zone)
        shared = self.prepared
        if shared is not None and shared.facilities is not None:
            self.facilities = shared.facilities
        else:
            self.facilities = {
                f.id: FacilityInfo(f.id, f.virtual, f.lat, f.lon, f.max_orders_per_day,
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
            self.from_live(self.live)
        else:
            self.orders_today = facility_orders_today(snapshot)
            self.index_inventory(snapshot)
        self.delivery_days = {}
        for method in snapshot.shipment_methods:
            self.delivery_days[(method.id, method.carrier)] = method.delivery_days
            self.delivery_days.setdefault((method.id, None), method.delivery_days)
        self.index_items(snapshot, products)
        if shared is not None and shared.rates is not None and shared.rates.now == self.now:
            self.rates = shared.rates
        else:
            self.rates = RateModel(snapshot, self.zone, self.now, sorted(self.facilities))
            if shared is not None:
                shared.rates = self.rates

    def from_live(self, live: LiveStock) -> None:
        """Counts and stock from the live state (a hook, like index_inventory): a copy of the
        stock of the orders' products and their styles' variants (all a run may look at or
        change); ATP and velocity are only read, so shared."""
        self.orders_today = dict(live.orders_today)
        products = self.live_products()
        self.stock = defaultdict(dict)
        for product in products:
            level = live.stock.get(product)
            if level is not None:
                self.stock[product] = dict(level)
        self.atp, self.velocity = live.atp, live.velocity

    def live_products(self) -> set[str]:
        """The products a run on a live state may look at or change: its orders' products
        and their styles' variants."""
        products = {i.product for o in self.snapshot.orders for g in o.ship_groups
                    for i in g.items}
        for style in {self.style.get(p) for p in products} - {None}:
            products.update(self.variants.get(style, ()))
        return products

    def index_items(self, snapshot: Snapshot, products: dict) -> None:
        """Every order line as an ItemState, in `order_lines` order (an engine may keep them
        otherwise: a hook)."""
        info_cache: dict[str, tuple] = {}
        self.items = []
        for order, ship_group, item in order_lines(snapshot):
            info = info_cache.get(item.product)
            if info is None:
                product = products.get(item.product)
                info = (frozenset(product.categories) if product else frozenset(),
                        product.parent if product else None)
                info_cache[item.product] = info
            self.items.append(ItemState(order, ship_group, item, info))

    def index_inventory(self, snapshot: Snapshot) -> None:
        """Stock, ATP and velocity from the snapshot's rows (a hook, like index_items)."""
        self.stock, self.atp, self.velocity = index_inventory(
            snapshot.inventory, {f for f, info in self.facilities.items() if info.virtual})

    def end_of_day(self, days: int) -> datetime:
        """The last moment of the day ``days`` after the run's, in its time zone."""
        day = (self.now + timedelta(days=days)).date()
        return datetime.combine(day, time.max, tzinfo=self.zone)


def order_lines(snapshot: Snapshot) -> Iterable[tuple[Order, ShipGroup, Item]]:
    """Every order line with its order and ship group, in (order, ship group, item) id
    order: the order a run looks at them in."""
    for order in sorted(snapshot.orders, key=_by_id):
        groups = order.ship_groups
        for ship_group in sorted(groups, key=_by_id) if len(groups) > 1 else groups:
            items = ship_group.items
            for item in sorted(items, key=_by_id) if len(items) > 1 else items:
                yield order, ship_group, item


def _by_id(thing) -> str:
    return thing.id

def open_needs(items: Iterable[ItemState]) -> dict[str, float]:
    """Open quantity per product over ``items``."""
    needs: dict[str, float] = defaultdict(float)
    for item in items:
        needs[item.product] += item.open
    return needs

