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
from .candidates import Batch
from .model import late_days

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


def measure(rates, batch: Batch, packages: np.ndarray, x: np.ndarray, split_cost: float,
            late_cost: float) -> Figures:
    """What quantities ``x`` (per edge) cost, package by package."""
    used_edges = np.flatnonzero(x > EPS)
    n_units = len(batch.unit_first_item) - 1
    unit_cost = np.zeros(n_units)
    pkg = packages[used_edges]
    items = batch.edge_item[used_edges]
    quantities = x[used_edges]
    total_cents, unpriced = 0, 0
    used_packages = np.unique(pkg)
    weight = np.bincount(pkg, batch.item_weight[items] * quantities,
                         minlength=len(batch.package_unit))
    volume = np.bincount(pkg, batch.item_volume[items] * quantities,
                         minlength=len(batch.package_unit))
    unit_packages = np.zeros(n_units, np.int64)
    for p in used_packages.tolist():
        u = int(batch.package_unit[p])
        unit_packages[u] += 1
        card, zone = int(batch.unit_card[u]), int(batch.package_zone[p])
        index = int(batch.facility_rate_index[batch.package_facility[p]])
        price = rates.cost(card, zone, index, float(weight[p]), float(volume[p])) \
            if card >= 0 and zone >= 0 and index >= 0 else float("nan")
        amount = cents(price)
        if amount is None:
            unpriced += 1
            continue
        total_cents += amount
        unit_cost[u] += amount / 100
    late = late_days(batch, used_edges, packages)
    late_units = float(quantities[late > 0].sum())
    late_unit_days = float((late * quantities).sum())
    np.add.at(unit_cost, batch.item_unit[items], late * quantities * late_cost)
    group_packages = np.bincount(batch.unit_ship_group, unit_packages,
                                 minlength=int(batch.unit_ship_group.max()) + 1
                                 if n_units else 0)
    extra = np.maximum(group_packages - 1, 0)
    split_orders = len({int(batch.unit_order[u]) for u in range(n_units)
                        if group_packages[batch.unit_ship_group[u]] > 1})
    unit_cost += np.maximum(unit_packages - 1, 0) * split_cost
    filled = float(quantities.sum())
    total = total_cents / 100 + split_cost * float(extra.sum()) + late_cost * late_unit_days
    return Figures(total_cents, unpriced, len(used_packages), int(extra.sum()), split_orders,
                   late_units, late_unit_days, filled,
                   float(batch.item_quantity.sum()) - filled, total, unit_cost)


def section(group: str, routing: str, mode: str, status: str, windows: int, work: dict,
            rules: Figures, optimum: Figures, bound: float | None, batch: Batch,
            rules_x: np.ndarray, best_x: np.ndarray, deciding: list[str | None],
            item_mode: bool) -> dict:
    """The `optimization` entry of one routing run. ``deciding`` is the rule that decided
    each unit in the rules' run (its first allocation's, else the last rule it reached)."""
    differs = np.zeros(len(batch.unit_first_item) - 1, np.bool_)
    changed = np.abs(rules_x - best_x) > EPS
    differs[batch.item_unit[batch.edge_item[changed]]] = True
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
