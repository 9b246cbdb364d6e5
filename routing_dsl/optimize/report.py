"""What an allocation of a batch costs, and the result's `optimization` section.

Costs are the engine's: each package priced by the rate model's cost function (as the result's
`shipping_cost` is), in whole cents; `split_cost` per package of a ship group beyond its first;
`late_cost` per unit and day after its promised day. The section compares the rules'
allocation with the optimum's, and gives each rule whose units the optimum allocates
differently the cost difference of those units (positive: the rule's choices cost that much
more than the optimum's for the same units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..shipping import cents
from .candidates import Batch, package_price

EPS = 1e-9


@dataclass
class Figures:
    """One allocation of a batch, measured."""

    shipping_cents: int
    unpriced_packages: int
    packages: int
    extra_packages: int
    split_orders: int
    late_units: float
    late_unit_days: float
    filled_units: float
    unfilled_units: float
    cost: float  # shipping + split_cost x extra packages + late_cost x late unit-days
    unit_cost: np.ndarray  # the same, per unit

    def to_json(self) -> dict:
        return {"cost": _money(self.cost), "shipping_cost": self.shipping_cents / 100,
                "packages": self.packages, "unpriced_packages": self.unpriced_packages,
                "split_orders": self.split_orders, "extra_packages": self.extra_packages,
                "late_units": _number(self.late_units),
                "late_unit_days": _number(self.late_unit_days),
                "filled_units": _number(self.filled_units),
                "unfilled_units": _number(self.unfilled_units)}


def measure(rates, batch: Batch, pair_of: dict, placements: list[tuple],
            split_cost: float, late_cost: float) -> Figures:
    """What ``placements`` (line, facility, quantity, rule) cost, package by package: the
    engine's packages, one per (unit, facility, rule)."""
    n_units = len(batch.unit_first_item) - 1
    unit_cost = np.zeros(n_units)
    unit_packages = np.zeros(n_units, np.int64)
    packages: dict[tuple[int, int, int], list] = {}
    late_units = late_unit_days = filled = 0.0
    for k, f, quantity, rule in placements:
        u = int(batch.item_unit[k])
        package = packages.setdefault((u, f, rule), [0.0, 0.0])
        package[0] += batch.item_weight[k] * quantity
        package[1] += batch.item_volume[k] * quantity
        filled += quantity
        delivery = int(batch.package_delivery[pair_of[(u, f)]])
        days = delivery - int(batch.item_promised[k]) if delivery >= 0 else 0
        if days > 0:
            late_units += quantity
            late_unit_days += quantity * days
            unit_cost[u] += late_cost * quantity * days
    total_cents, unpriced = 0, 0
    for (u, f, _), (weight, volume) in packages.items():
        unit_packages[u] += 1
        price = package_price(batch, rates, pair_of[(u, f)], u, f, weight, volume)
        amount = cents(price)
        if amount is None:
            unpriced += 1
            continue
        total_cents += amount
        unit_cost[u] += amount / 100
    group_packages = np.bincount(batch.unit_ship_group, unit_packages,
                                 minlength=int(batch.unit_ship_group.max()) + 1
                                 if n_units else 0)
    extra = np.maximum(group_packages - 1, 0)
    split_orders = len({int(batch.unit_order[u]) for u in range(n_units)
                        if group_packages[batch.unit_ship_group[u]] > 1})
    unit_cost += np.maximum(unit_packages - 1, 0) * split_cost
    total = total_cents / 100 + split_cost * float(extra.sum()) + late_cost * late_unit_days
    return Figures(total_cents, unpriced, len(packages), int(extra.sum()), split_orders,
                   late_units, late_unit_days, filled,
                   float(batch.item_quantity.sum()) - filled, total, unit_cost)


def unit_packages(rates, batch: Batch, pair_of: dict, placements: list[tuple], u: int,
                  rules: list[str]) -> list[dict]:
    """The packages ``placements`` ship for unit ``u``: facility, rule, lines, price and
    delivery day, as an explanation shows them."""
    from ..shipping import iso_day
    packages: dict[tuple[int, int], list] = {}
    for k, f, quantity, rule in placements:
        if int(batch.item_unit[k]) == u:
            packages.setdefault((f, rule), []).append((k, quantity))
    shown = []
    for (f, rule), lines in sorted(packages.items(), key=lambda p: (batch.facilities[p[0][0]],
                                                                   p[0][1])):
        pair = pair_of[(u, f)]
        weight = sum(batch.item_weight[k] * q for k, q in lines)
        volume = sum(batch.item_volume[k] * q for k, q in lines)
        price = package_price(batch, rates, pair, u, f, weight, volume)
        amount = cents(price)
        shown.append({"facility": batch.facilities[f], "rule": rules[rule],
                      "items": [{"item": batch.items[k].item.id, "product": batch.products[
                          int(batch.item_product[k])], "quantity": _number(q)}
                                for k, q in sorted(lines)],
                      "shipping_cost": None if amount is None else amount / 100,
                      "delivery_date": iso_day(int(batch.package_delivery[pair]))})
    return shown


def section(group: str, routing: str, mode: str, status: str, windows: int, work: dict,
            rules: Figures, optimum: Figures, bound: float | None, batch: Batch,
            differs: np.ndarray, deciding: list[str | None], item_mode: bool) -> dict:
    """The `optimization` entry of one routing run. ``deciding`` is the rule that decided
    each unit in the rules' run (its first allocation's, else the last rule it reached)."""
    by_rule: dict[str, list] = {}
    units = []
    for u in np.flatnonzero(differs).tolist():
        unit = batch.units[u]
        extra = float(rules.unit_cost[u] - optimum.unit_cost[u])
        rule = deciding[u]
        entry = by_rule.setdefault(rule, [0, 0.0])
        entry[0] += 1
        entry[1] += extra
        record = {"order": unit.order.id, "ship_group": unit.ship_group.id}
        if item_mode:
            record["item"] = unit.items[0].item.id
        record.update(rule=rule, rules_cost=_money(rules.unit_cost[u]),
                      optimized_cost=_money(optimum.unit_cost[u]))
        units.append(record)
    rule_costs = [{"rule": rule, "units": count, "extra_cost": _money(extra)}
                  for rule, (count, extra) in by_rule.items()]
    rule_costs.sort(key=lambda r: (-r["extra_cost"], str(r["rule"])))
    return {"group": group, "routing": routing, "mode": mode, "status": status,
            "windows": windows, **_headline(rules.cost, optimum.cost, bound),
            "rules": rules.to_json(), "optimized": optimum.to_json(), "work": work,
            "rule_costs": rule_costs, "units": units}


def _headline(rules_cost: float, optimized_cost: float, bound: float | None) -> dict:
    if bound is not None:
        bound = min(bound, optimized_cost)
    gap = None
    if bound is not None:
        gap = 0.0 if optimized_cost <= EPS else round(max(0.0, optimized_cost - bound)
                                                      / optimized_cost, 6)
    return {"rules_cost": _money(rules_cost), "optimized_cost": _money(optimized_cost),
            "saving": _money(rules_cost - optimized_cost),
            "lower_bound": None if bound is None else _money(bound), "gap": gap}


SUMMED = ("cost", "shipping_cost", "packages", "unpriced_packages", "split_orders",
          "extra_packages", "late_units", "late_unit_days", "filled_units", "unfilled_units")


def combine(sections: list[dict]) -> dict:
    """The result's `optimization`: every optimised routing run, and their totals."""
    def total(side: str) -> dict:
        return {key: _number(sum(s[side][key] for s in sections)) for key in SUMMED}
    rules_cost = sum(s["rules_cost"] for s in sections)
    optimized = sum(s["optimized_cost"] for s in sections)
    bounds = [s["lower_bound"] for s in sections]
    bound = None if any(b is None for b in bounds) else sum(bounds)
    statuses = sorted({s["status"] for s in sections})
    return {**_headline(rules_cost, optimized, bound),
            "status": statuses[0] if len(statuses) == 1 else "mixed",
            "rules": total("rules"), "optimized": total("optimized"), "routings": sections}


def _money(value: float) -> float:
    return round(float(value) + 0.0, 2) + 0.0


def _number(value: float) -> float | int:
    rounded = round(float(value), 6)
    return int(rounded) if rounded == int(rounded) else rounded
