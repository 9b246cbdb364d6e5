"""Packages: the shipping facts of a unit's packages under its ship group's rate card (its
zone from a facility, transit days, delivery day, the weight and volume of items, a
package's cost) and, when an allocation is committed, each new package's price shared among
its rows, with the run's totals.

The rate cards themselves (zones, price tables, surcharges, delivery calendars) are
`routing_dsl.shipping`'s `RateModel`; this module asks it for one unit's packages, caching
each unit's zones on the unit.
"""

from __future__ import annotations

import math

from ..shipping import RunTotals, cents, iso_day, shares
from .state import Context, Unit


class ShippingFacts:
    """What the reference allocator, the explainer and the optimiser read of a unit's
    packages; card -1 (no rate card) makes every figure unknown (NaN, None or -1)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def card(self, unit: Unit) -> int:
        """The rate card of the unit's ship group (its method and carrier); -1: none."""
        group = unit.ship_group
        return self.ctx.rates.card(group.shipment_method, group.carrier)

    def zone(self, unit: Unit, facility: str) -> int:
        """The zone of a package from ``facility`` to the unit's address under its ship
        group's rate card, once per unit; -1 without a card or a zone."""
        zone = unit.zones.get(facility)
        if zone is None:
            card = self.card(unit)
            zone = -1 if card < 0 else self.ctx.rates.zone_of(
                card, self.ctx.rates.facility_index[facility],
                self.ctx.rates.destination(card, unit.ship_group.ship_to),
                unit.km_to(self.ctx.facilities[facility]))
            unit.zones[facility] = zone
        return zone

    def transit(self, unit: Unit, facility: str) -> int | None:
        """Transit days of a package from ``facility``, None when unknown."""
        zone = self.zone(unit, facility)
        return None if zone < 0 else self.ctx.rates.transit(self.card(unit), zone)

    def delivery(self, unit: Unit, facility: str) -> int | None:
        """The day (ordinal) a package from ``facility`` arrives, None when unknown."""
        zone = self.zone(unit, facility)
        if zone < 0:
            return None
        return self.ctx.rates.delivery(self.card(unit), zone,
                                       self.ctx.rates.facility_index[facility])

    def weight(self, unit: Unit, items) -> tuple[float, float]:
        """Weight and volume of the open quantity of ``items``, in the unit's card's units."""
        card = self.card(unit)
        weight = volume = 0.0
        for item in items:
            if card < 0:
                return math.nan, 0.0
            w, v = self.ctx.rates.weight(card, item.product)
            weight += w * item.open
            volume += v * item.open
        return weight, volume

    def package_cost(self, unit: Unit, facility: str, weight: float, volume: float) -> float:
        """What a package of ``weight`` and ``volume`` from ``facility`` costs; NaN without a
        card."""
        card = self.card(unit)
        zone = self.zone(unit, facility)
        if card < 0:
            return math.nan
        return self.ctx.rates.cost(card, zone, self.ctx.rates.facility_index[facility], weight,
                                   volume)

    def price(self, unit: Unit, packages: dict[str, list], totals: RunTotals) -> None:
        """Each new package's cost (shared among its rows by weight), transit days and
        delivery date, and the run's totals."""
        rates = self.ctx.rates
        card = self.card(unit) if rates else -1
        for facility, entries in packages.items():
            if card < 0:
                totals.package(unit.order.id, unit.ship_group.id, None)
                continue
            index = rates.facility_index[facility]
            zone = self.zone(unit, facility)
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
