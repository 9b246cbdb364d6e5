"""Shipping and delivery: what a package costs (`shipping_cost`), how long it travels
(`transit_days`) and when it arrives (`delivery_date`), under the ship group's rate card.

The rate model (routing_dsl.shipping) gives a facility's zone for the unit's address, a
package's cost and the day it arrives; these criteria compare and sort by them. A facility
without a zone (or a unit without a card) has no transit days, no cost and no delivery date:
it fails their conditions and sorts last on them.
"""

from __future__ import annotations

from datetime import date

from . import Criterion
from ._jit import NO_DATE, OPS, compare, jitable, measured, with_split
from .orders import ORDERING
from .text import fmt


@jitable
def delivered_by(op, unused, delivery, promised):
    """The package arrives by the item's promised day (an item without one passes; a facility
    without a delivery date fails an item with one)."""
    return promised == NO_DATE or (delivery == delivery and compare(op, delivery, promised))


def _lower(condition, rule) -> tuple[int, float]:
    return OPS[condition.op], 0.0 if condition.number is None else condition.number


def _iso(day: float) -> str | None:
    return None if day != day else date.fromordinal(int(day)).isoformat()


def _cost_text(rule, condition) -> str:
    return f"shipping_cost {condition.op} {condition.number:.2f}"


def _transit_text(rule, condition) -> str:
    return f"transit_days {condition.op} {fmt(condition.number)}"


def _delivery_text(rule, condition) -> str:
    return f"delivery_date {condition.op} promise_date"


def _explain_cost(ex, condition, value, item) -> tuple[str, dict]:
    return (_cost_text(ex.rule, condition),
            {"shipping_cost": None if value != value else round(value, 2)})


def _explain_transit(ex, condition, value, item) -> tuple[str, dict]:
    return (_transit_text(ex.rule, condition),
            {"transit_days": None if value != value else int(value)})


def _explain_delivery(ex, condition, value, item) -> tuple[str, dict]:
    return (_delivery_text(ex.rule, condition),
            {"item": item.item.id, "delivery_date": _iso(value),
             "promised_date": item.item.promised_date.astimezone(ex.zone).date().isoformat()})


def _cost_reference(rank, facility):
    added = rank.added
    return None if added != added else with_split(added, rank.new_package, rank.split_money)


@jitable
def _cost_key(view, r, f, n_products):
    return with_split(view.ship_added[f], view.ship_new[f], view.split_money[r])


def _delivery_reference(rank, facility):
    day = rank.delivery(facility)
    return None if day != day else day


@jitable
def _delivery_key(view, r, f, n_products):
    return view.ship_delivery[f]


def explain_package(ex, facility) -> dict:
    """What one package of the unit's open items would cost from ``facility`` and when it
    would arrive (shown with every facility's sort keys when the unit has a rate card)."""
    cost = ex.package_cost(facility)
    return {"shipping_cost": None if cost != cost else round(cost, 2),
            "delivery_date": _iso(ex.delivery(facility))}


CRITERIA = [
    Criterion(
        "shipping_cost", "inventory_condition",
        "What the package the facility would ship costs under the ship group's rate card "
        "(its zone's price for the package's billable weight, surcharges and the facility's "
        "handling cost), checked each time the rule places items there. Facilities whose "
        "cost is unknown never pass.",
        value="money", operators=ORDERING, example="shipping_cost <= 15.00",
        samples=("shipping_cost <= 12", "shipping_cost < 9.5"),
        needs=frozenset({"zone", "placement", "costs"}), stage="placement", fact="package_cost",
        reference=measured, kernel=measured, lower=_lower, explain=_explain_cost,
        explain_text=_cost_text, explain_rank=40),
    Criterion(
        "transit_days", "inventory_condition",
        "Days in transit from the facility to the ship-to address under the ship group's "
        "rate card (its zone's transit days). Facilities without a zone never pass.",
        value="transit", operators=ORDERING, example="transit_days <= 2",
        samples=("transit_days <= 1", "transit_days < 3 days"), needs=frozenset({"zone"}),
        stage="candidate", fact="transit", reference=measured, kernel=measured,
        lower=_lower, explain=_explain_transit, explain_text=_transit_text, explain_rank=20),
    Criterion(
        "delivery_date", "inventory_condition",
        "`delivery_date <= promise_date`: the facility delivers each item by its promised "
        "date (the day the package leaves, after the facility's same-day cutoff, plus "
        "transit days). Items without a promised date pass; facilities without a zone fail "
        "items that have one.",
        value="promise", operators=("<=", "<"), example="delivery_date <= promise_date",
        samples=("delivery_date <= promise_date", "delivery_date < promise_date"),
        needs=frozenset({"zone"}), stage="serve", fact="delivery", item_fact="promised",
        reference=delivered_by, kernel=delivered_by, lower=_lower,
        explain=_explain_delivery, explain_text=_delivery_text, explain_rank=30),
    Criterion(
        "shipping_cost", "inventory_sort",
        "Cheapest first: what placing the items there adds to the shipment, the whole "
        "package at a facility not yet shipping any of the unit, only the extra weight at "
        "one that is (plus `split_cost` for a new package). Unknown costs sort last.",
        nullable=True, samples=("shipping_cost", "shipping_cost desc nulls first"),
        needs=frozenset({"zone", "placement", "costs"}), reference=_cost_reference,
        kernel=_cost_key,
        explain=lambda ex, measure, facility: {}),
    Criterion(
        "delivery_date", "inventory_sort",
        "Earliest delivery first: the day the package leaves plus its transit days. Unknown "
        "dates sort last.", nullable=True, samples=("delivery_date", "delivery_date desc"),
        needs=frozenset({"zone", "placement"}), reference=_delivery_reference,
        kernel=_delivery_key,
        explain=lambda ex, measure, facility: {}),
]
