"""Shipping cost and delivery dates: the carrier rate model both engines route with.

It owns what a package costs and when it arrives (docs/semantics.md, "Shipping cost and
delivery dates"). A package is what one facility ships for one unit in one rule (one new ship
group). Its zone comes from the rate card's postal zone chart, else from its distance bands;
its billable weight is the larger of actual and dimensional weight, rounded up to a whole
unit; its cost is the zone's price for that weight bucket, plus surcharges, plus the
facility's handling cost. It leaves today, or tomorrow after the facility's same-day cutoff,
and arrives after the zone's transit days.

Everything is prepared once per run as numbers: per card, its zones, prices and each
product's weight and volume in the card's units; per facility, its handling cost, the day its
packages leave and its place in each card's zone chart. The reference interpreter reads the
Python lists; the compiled kernel reads the same values as numpy arrays (`arrays`), and both
compute a cost with the same operations in the same order, so they agree to the last bit.
Each engine prices the packages it commits; `shares` and `RunTotals` turn those costs into
the result's figures with the same Python code for both, so results agree byte for byte.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

KM_PER_MILE = 1.609344
LB_PER_KG = 2.20462262185
CM_PER_IN = 2.54
EPS = 1e-9
# the figures every run and batch carries: shipping cost, packages, orders split into more
# than one package, items that arrive after their promised date
TOTALS = ("shipping_cost", "packages", "split_orders", "late_items")
NO_DATE = 2 ** 40  # a promised day no delivery misses


class RateModel:
    """The snapshot's rate cards, facilities and products as numbers for one run."""

    def __init__(self, snapshot, zone, now: datetime,
                 facility_ids: list[str] | None = None):
        self.cards = []
        self.card_of: dict[tuple[str, str | None], int] = {}
        for method in snapshot.shipment_methods:
            if method.rates is None:
                continue
            index = len(self.cards)
            self.cards.append(method.rates)
            self.card_of[(method.id, method.carrier)] = index
            self.card_of.setdefault((method.id, None), index)
        self.zone, self.now = zone, now
        self.today = now.date().toordinal()
        self.facility_ids, self.facility_index = [], {}
        self.handling, self.leaves, self.products, self.prepared = [], [], {}, []
        if not self.cards:  # nothing to price: nothing to prepare
            return
        facilities = {f.id: f for f in snapshot.facilities}
        self.facility_ids = facility_ids if facility_ids is not None else sorted(facilities)
        self.facility_index = {f: k for k, f in enumerate(self.facility_ids)}
        self.handling = [facilities[f].handling_cost for f in self.facility_ids]
        local = now.time()
        self.leaves = [self.today + (1 if facilities[f].same_day_cutoff is not None
                                     and local >= time.fromisoformat(
                                         facilities[f].same_day_cutoff) else 0)
                       for f in self.facility_ids]
        postal = [facilities[f].postal_code for f in self.facility_ids]
        self.products = {p.id: p for p in snapshot.products}
        self.prepared = [_Card(card, postal) for card in self.cards]

    def __bool__(self) -> bool:
        return bool(self.cards)

    def card(self, shipment_method: str | None, carrier: str | None) -> int:
        """The card of a ship group's method and carrier (a row for any carrier when none is
        for its carrier), or -1."""
        if shipment_method is None:
            return -1
        found = self.card_of.get((shipment_method, carrier))
        if found is None:
            found = self.card_of.get((shipment_method, None), -1)
        return found

    def destination(self, card: int, ship_to) -> int:
        """The ship-to address's column in the card's zone chart, or -1."""
        return self.prepared[card].destination(ship_to.postal_code if ship_to else None)

    def zone_of(self, card: int, facility: int, destination: int, km: float | None) -> int:
        """The zone (an index into the card's zones) of a package from ``facility``, or -1."""
        return _zone(self.prepared[card], facility, destination, km)

    def weight(self, card: int, product: str) -> tuple[float, float]:
        """Weight (NaN when unknown) and volume (0 without dimensions) of one unit of
        ``product`` in the card's units."""
        return self.prepared[card].product(self.products.get(product))

    def cost(self, card: int, zone: int, facility: int, weight: float, volume: float) -> float:
        """Cost of one package, NaN when it cannot be priced."""
        return _cost(self.prepared[card], zone, self.handling[facility], weight, volume)

    def billing(self, card: int) -> tuple[list[float], float]:
        """The card's weight buckets (upper limits, in its unit) and its dimensional divisor
        (0: none): what a package's billable weight is measured against."""
        prepared = self.prepared[card]
        return list(prepared.weights), prepared.divisor

    def transit(self, card: int, zone: int) -> int:
        return self.prepared[card].transit[zone]

    def delivery(self, card: int, zone: int, facility: int) -> int:
        """The day (ordinal) a package from ``facility`` arrives; -1 without a zone."""
        if zone < 0:
            return -1
        return self.leaves[facility] + self.prepared[card].transit[zone]

    def promised(self, value: datetime | None) -> int:
        """The promised day as an ordinal in the snapshot's zone; NO_DATE without one."""
        if value is None:
            return NO_DATE
        return value.astimezone(self.zone).date().toordinal()

    def product_columns(self, product_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`_Card.product` for every product and card at once, with the same operations."""
        import numpy as np
        found = [self.products.get(p) for p in product_ids]
        weight = np.array([np.nan if p is None or p.weight is None else p.weight
                           for p in found], np.float64)
        kg = np.array([p is not None and p.weight_unit == "kg" for p in found], np.bool_)
        sizes = [None if p is None else p.dimensions for p in found]
        sized = np.array([d is not None for d in sizes], np.bool_)
        cm = np.array([d is not None and d.unit == "cm" for d in sizes], np.bool_)
        length, width, height = (np.array([getattr(d, side) if d else 0.0 for d in sizes],
                                          np.float64) for side in ("length", "width", "height"))
        weights, volumes = [], []
        for card in self.prepared:
            if card.kg:
                weights.append(np.where(kg, weight, weight / LB_PER_KG))
                scale = np.where(cm, 1.0, CM_PER_IN)
            else:
                weights.append(np.where(kg, weight * LB_PER_KG, weight))
                scale = np.where(cm, 1.0 / CM_PER_IN, 1.0)
            volume = (length * scale) * (width * scale) * (height * scale)
            volumes.append(np.where(sized, volume, 0.0))
        return np.array(weights), np.array(volumes)


class _Card:
    """One rate card as plain numbers."""

    def __init__(self, card, postal_codes: list[str | None]):
        import numpy as np
        self.miles = card.distance_unit == "mi"
        self.bands = [math.inf if z.max_distance is None else z.max_distance for z in card.zones]
        self.transit = [z.transit_days for z in card.zones]
        self.prices = [list(z.prices) for z in card.zones]
        self.weights = list(card.weights)
        self.divisor = card.dim_divisor or 0.0
        self.amounts = 0.0
        percent = 0.0
        for surcharge in card.surcharges:
            self.amounts += surcharge.amount
            percent += surcharge.percent
        self.multiplier = 1.0 + percent / 100.0
        self.kg = card.weight_unit == "kg"
        number = {z.zone: k for k, z in enumerate(card.zones)}
        origins = sorted({z.origin for z in card.postal_zones})
        self.destinations = {d: k for k, d in enumerate(sorted(
            {z.destination for z in card.postal_zones}))}
        self.dest_length = len(next(iter(self.destinations), ""))
        origin_index = {o: k for k, o in enumerate(origins)}
        length = len(origins[0]) if origins else 0
        self.origin = [origin_index.get(code[:length], -1) if code and length else -1
                       for code in postal_codes]
        self.chart = np.full((max(1, len(origins)), max(1, len(self.destinations))), -1,
                             np.int64)
        for entry in card.postal_zones:
            self.chart[origin_index[entry.origin], self.destinations[entry.destination]] = \
                number[entry.zone]
        self._products: dict[str, tuple[float, float]] = {}

    def destination(self, postal_code: str | None) -> int:
        if not postal_code or not self.dest_length:
            return -1
        return self.destinations.get(postal_code[:self.dest_length], -1)

    def product(self, product) -> tuple[float, float]:
        if product is None or product.weight is None:
            return math.nan, 0.0
        found = self._products.get(product.id)
        if found is None:
            weight = product.weight
            if product.weight_unit == "lb" and self.kg:
                weight = weight / LB_PER_KG
            elif product.weight_unit == "kg" and not self.kg:
                weight = weight * LB_PER_KG
            volume = 0.0
            size = product.dimensions
            if size is not None:
                scale = 1.0
                if size.unit == "in" and self.kg:
                    scale = CM_PER_IN
                elif size.unit == "cm" and not self.kg:
                    scale = 1.0 / CM_PER_IN
                volume = (size.length * scale) * (size.width * scale) * (size.height * scale)
            found = self._products[product.id] = (weight, volume)
        return found


def _zone(card: _Card, facility: int, destination: int, km: float | None) -> int:
    origin = card.origin[facility]
    if origin >= 0 and destination >= 0:
        found = int(card.chart[origin, destination])
        if found >= 0:
            return found
    if km is None:
        return -1
    distance = km / KM_PER_MILE if card.miles else km
    for z, limit in enumerate(card.bands):
        if distance <= limit + EPS:
            return z
    return -1


def _cost(card: _Card, zone: int, handling: float, weight: float, volume: float) -> float:
    """The kernel's `_package_cost`, operation for operation."""
    if zone < 0 or weight != weight:
        return math.nan
    billable = weight
    if card.divisor > 0.0:
        dimensional = volume / card.divisor
        if dimensional > billable:
            billable = dimensional
    rounded = math.ceil(billable - EPS)
    for b, limit in enumerate(card.weights):
        if rounded <= limit + EPS:
            return (card.prices[zone][b] + card.amounts) * card.multiplier + handling
    return math.nan


def cents(cost: float) -> int | None:
    """A cost in whole cents, None when unknown."""
    return None if cost != cost else int(round(cost * 100))


def money(amount_cents: int | None) -> float | None:
    return None if amount_cents is None else amount_cents / 100


# ---- what a run's packages cost ----------------------------------------------------------------

def shares(cost: float, weights: list[float]) -> list[int | None]:
    """A package's cost in cents shared among its rows by weight (in row order); the last row
    takes what rounding left over, so the shares add up to the package's cost."""
    total = cents(cost)
    if total is None:
        return [None] * len(weights)
    weight = sum(weights)
    result, left = [], total
    for k, w in enumerate(weights):
        share = left if k == len(weights) - 1 else int(round(total * w / weight))
        result.append(share)
        left -= share
    return result


class RunTotals:
    """One routing run's shipping figures, added up as its packages are committed."""

    __slots__ = ("cents", "packages", "split", "late")

    def __init__(self) -> None:
        self.cents = 0
        self.packages = 0
        self.split: dict[tuple[str, str], int] = {}  # (order, ship group) -> packages
        self.late: set = set()

    def package(self, order: str, ship_group: str, cost_cents: int | None) -> None:
        self.packages += 1
        key = (order, ship_group)
        self.split[key] = self.split.get(key, 0) + 1
        if cost_cents is not None:
            self.cents += cost_cents

    def figures(self) -> dict:
        return {"shipping_cost": self.cents, "packages": self.packages,
                "split_orders": len({order for (order, _), n in self.split.items() if n > 1}),
                "late_items": len(self.late)}


def attach_totals(batches: list[dict], totals: dict[tuple[str, str], RunTotals]) -> None:
    """Every run record gets its figures, every batch their sum (costs in whole cents until
    shown, so that sums are exact)."""
    for batch in batches:
        sums = dict.fromkeys(TOTALS, 0)
        for run in batch["runs"]:
            found = totals.get((batch["group"], run["routing"]))
            figures = found.figures() if found else dict.fromkeys(TOTALS, 0)
            for key, value in figures.items():
                sums[key] += value
            run.update(figures, shipping_cost=money(figures["shipping_cost"]))
        batch["totals"] = dict(sums, shipping_cost=money(sums["shipping_cost"]))


def iso_day(ordinal: int) -> str | None:
    return None if ordinal < 0 else date.fromordinal(ordinal).isoformat()
