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
Python lists; the compiled kernel reads the same values as numpy arrays (`engine.ir.Rates`).
A zone, a weight bucket, a cost and a delivery day are computed by one function each
(`zone_of`, `weight_bucket`, `bucket_cost`, `delivery_day`, marked `@jitable`): the reference
calls them as plain Python, the kernel compiles them in, so both agree to the last bit.
Each engine prices the packages it commits; `shares` and `RunTotals` turn those costs into
the result's figures with the same Python code for both, so results agree byte for byte.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from ..criteria import shared

EPS, KM_PER_MILE, jitable = shared.EPS, shared.KM_PER_MILE, shared.jitable

if TYPE_CHECKING:
    import numpy as np

LB_PER_KG = 2.20462262185
CM_PER_IN = 2.54
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
        prepared = self.prepared[card]
        return zone_of(prepared.flat_chart, 0, prepared.columns, prepared.origin[facility],
                       destination, km is not None, 0.0 if km is None else km,
                       prepared.miles, prepared.bands, prepared.n_zones)

    def weight(self, card: int, product: str) -> tuple[float, float]:
        """Weight (NaN when unknown) and volume (0 without dimensions) of one unit of
        ``product`` in the card's units."""
        return self.prepared[card].product(self.products.get(product))

    def cost(self, card: int, zone: int, facility: int, weight: float, volume: float) -> float:
        """Cost of one package, NaN when it cannot be priced."""
        prepared = self.prepared[card]
        return bucket_cost(prepared.prices, prepared.amounts, prepared.multiplier,
                           self.handling[facility], zone,
                           weight_bucket(prepared.weights, prepared.n_weights, prepared.divisor,
                                         weight, volume))

    def billing(self, card: int) -> tuple[list[float], float]:
        """The card's weight buckets (upper limits, in its unit) and its dimensional divisor
        (0: none): what a package's billable weight is measured against."""
        prepared = self.prepared[card]
        return list(prepared.weights), prepared.divisor

    def transit(self, card: int, zone: int) -> int:
        return self.prepared[card].transit[zone]

    def delivery(self, card: int, zone: int, facility: int) -> int:
        """The day (ordinal) a package from ``facility`` arrives; -1 without a zone."""
        return delivery_day(self.leaves[facility], self.prepared[card].transit, zone)

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
        # what `zone_of` and `weight_bucket` read, as Python numbers for the reference engine
        self.flat_chart = self.chart.ravel().tolist()
        self.columns = self.chart.shape[1]
        self.n_zones, self.n_weights = len(self.bands), len(self.weights)
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


# ---- the shared evaluation: plain Python here, compiled into the fast engine's kernel --------

@jitable
def zone_of(chart, base, columns, origin, destination, has_km, km, miles, bands, n_zones):
    """A package's zone (an index into the card's zones), or -1: the card's zone chart (rows
    of ``columns`` from ``base`` in ``chart``; -1 where it has none) for the facility's
    ``origin`` row and the address's ``destination`` column (-1: not in the chart), else the
    first distance band the distance (``km`` when ``has_km``; in miles for a card in
    ``miles``) is within."""
    if origin >= 0 and destination >= 0:
        found = chart[base + origin * columns + destination]
        if found >= 0:
            return found
    if not has_km:
        return -1
    distance = km / KM_PER_MILE if miles else km
    for z in range(n_zones):
        if distance <= bands[z] + EPS:
            return z
    return -1


@jitable
def weight_bucket(weights, n_weights, divisor, weight, volume):
    """The bucket a package's billable weight falls in (the larger of its ``weight``, NaN:
    unknown, and its dimensional weight ``volume / divisor``, rounded up to a whole unit),
    or -1."""
    if weight != weight:
        return -1
    billable = weight
    if divisor > 0.0:
        dimensional = volume / divisor
        if dimensional > billable:
            billable = dimensional
    rounded = math.ceil(billable - EPS)
    for b in range(n_weights):
        if rounded <= weights[b] + EPS:
            return b
    return -1


@jitable
def bucket_cost(prices, amounts, multiplier, handling, zone, bucket):
    """A package's cost: its zone's price for its weight bucket (``prices[zone][bucket]``),
    plus surcharge ``amounts``, times the percentage ``multiplier``, plus the facility's
    ``handling``; NaN without a zone or a bucket."""
    if zone < 0 or bucket < 0:
        return math.nan
    return (prices[zone][bucket] + amounts) * multiplier + handling


@jitable
def delivery_day(leaves, transit, zone):
    """The day (ordinal) a package leaving on day ``leaves`` arrives, after its zone's
    ``transit`` days; -1 without a zone."""
    if zone < 0:
        return -1
    return leaves + transit[zone]


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
