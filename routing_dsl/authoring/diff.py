"""Behavioural diff: two versions of the rules on one snapshot, compared unit by unit.

A unit is one order line (order, ship group, item). It changed when the facilities, quantities,
routings or rules it was allocated from differ, or what stayed unfilled differs. The report
lists every changed unit (old placements with `-`, new with `+`, and each side's rules tried
for the first `EXPLAINED` changed orders) and summary figures before and after: allocations,
split shipments, mean distance, unfilled items, orders per facility.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..engine import route
from ..plan import Plan
from ..shipping import TOTALS
from ..snapshot import Snapshot

EXPLAINED = 50  # changed orders explained on both sides; more would cost a run each


@dataclass
class UnitChange:
    order: str
    ship_group: str
    item: str
    product: str
    old: list[dict]
    new: list[dict]
    old_unfilled: list[dict]
    new_unfilled: list[dict]
    old_rules: list[str] = field(default_factory=list)
    new_rules: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"order": self.order, "ship_group": self.ship_group, "item": self.item,
                "product": self.product, "old": self.old, "new": self.new,
                "old_unfilled": self.old_unfilled, "new_unfilled": self.new_unfilled,
                "old_rules_tried": self.old_rules, "new_rules_tried": self.new_rules}


@dataclass
class Diff:
    changes: list[UnitChange]
    before: dict
    after: dict

    def to_json(self) -> dict:
        return {"units_changed": len(self.changes),
                "changes": [c.to_json() for c in self.changes],
                "before": self.before, "after": self.after}


def diff_plans(old: Plan, new: Plan, snapshot: Snapshot, engine: str = "auto") -> Diff:
    before, after = route(old, snapshot, engine=engine), route(new, snapshot, engine=engine)
    changes = compare(before, after)
    explained = list(dict.fromkeys(c.order for c in changes))[:EXPLAINED]
    if explained:
        old_tried = _rules_tried(old, snapshot, explained)
        new_tried = _rules_tried(new, snapshot, explained)
        for change in changes:
            key = (change.order, change.ship_group)
            change.old_rules = old_tried.get(key, [])
            change.new_rules = new_tried.get(key, [])
    return Diff(changes, figures(before), figures(after))


def compare(before: dict, after: dict) -> list[UnitChange]:
    """Units whose allocations or unfilled records differ, in (order, ship group, item)
    order."""
    old, new = _by_unit(before["allocations"]), _by_unit(after["allocations"])
    old_left, new_left = _by_unit(before["unfillable"]), _by_unit(after["unfillable"])
    products = {}
    for rows in (before["allocations"], after["allocations"], before["unfillable"],
                 after["unfillable"]):
        for row in rows:
            products[(row["order"], row["ship_group"], row["item"])] = row["product"]
    changes = []
    for key in sorted(set(old) | set(new) | set(old_left) | set(new_left)):
        placed = [_placement(r) for r in old.get(key, [])], [_placement(r)
                                                               for r in new.get(key, [])]
        left = [_left(r) for r in old_left.get(key, [])], [_left(r)
                                                          for r in new_left.get(key, [])]
        if placed[0] != placed[1] or left[0] != left[1]:
            changes.append(UnitChange(*key, products[key], placed[0], placed[1], left[0],
                                      left[1]))
    return changes


def figures(result: dict) -> dict:
    """A result's summary: allocations, split shipments (ship groups sent from more than one
    facility), mean distance, unfilled items, orders per facility, and the batches' shipping
    totals (cost, packages, late items)."""
    allocations = result["allocations"]
    shipments: dict[tuple, set] = defaultdict(set)
    orders: dict[str, set] = defaultdict(set)
    for a in allocations:
        shipments[(a["order"], a["ship_group"])].add(a["new_ship_group"])
        orders[a["facility"]].add(a["order"])
    distances = [a["distance"] for a in allocations if a["distance"] is not None]
    units = {a["distance_unit"] for a in allocations if a["distance"] is not None}
    return {
        "allocations": len(allocations),
        "split_shipments": sum(1 for groups in shipments.values() if len(groups) > 1),
        "mean_distance": round(sum(distances) / len(distances), 2) if distances else None,
        "distance_unit": units.pop() if len(units) == 1 else ("mixed" if units else None),
        "unfilled_items": len({(u["order"], u["ship_group"], u["item"])
                               for u in result["unfillable"]}),
        "orders_per_facility": {f: len(o) for f, o in sorted(orders.items())},
        **shipping_totals(result),
    }


def shipping_totals(result: dict) -> dict:
    """The batches' shipping totals added up: cost, packages, split orders, late items. The
    cost is None when no allocation has one (no rate cards): unknown, not free."""
    totals = [b["totals"] for b in result["batches"] if b.get("totals")]
    summed = {key: sum(t.get(key, 0) for t in totals) for key in TOTALS}
    costed = any(a.get("shipping_cost") is not None for a in result["allocations"])
    summed["shipping_cost"] = round(summed["shipping_cost"], 2) if costed else None
    return summed


def _money(amount: float | None) -> str:
    return "unknown" if amount is None else f"{amount:.2f}"


def render(diff: Diff, old_name: str, new_name: str, snapshot_name: str) -> str:
    lines = [f"routing diff: {old_name} -> {new_name} on {snapshot_name}", ""]
    for change in diff.changes:
        lines.append(f"~ order {change.order}, ship group {change.ship_group}, item "
                     f"{change.item} ({change.product})")
        for sign, placed, left in (("-", change.old, change.old_unfilled),
                                   ("+", change.new, change.new_unfilled)):
            for p in placed:
                where = f", {p['distance']} {p['distance_unit']}" if p["distance"] is not None \
                    else ""
                lines.append(f"    {sign} {p['facility']} x{_plain(p['quantity'])} by rule "
                             f"{p['rule']!r} (routing {p['routing']!r}{where})")
            for u in left:
                lines.append(f"    {sign} unfilled x{_plain(u['quantity'])}: {u['action']} "
                             f"after rule {u['rule']!r} (routing {u['routing']!r})")
        if change.old_rules or change.new_rules:
            lines.append(f"    old rules tried: {'; '.join(change.old_rules) or '-'}")
            lines.append(f"    new rules tried: {'; '.join(change.new_rules) or '-'}")
        lines.append("")
    before, after = diff.before, diff.after
    lines.append(f"{'summary':<22}{'before':>12}{'after':>12}")
    lines.append(f"{'  units changed':<22}{'':>12}{len(diff.changes):>12}")
    for label, key in (("allocations", "allocations"), ("split shipments", "split_shipments"),
                       ("unfilled items", "unfilled_items"), ("packages", "packages"),
                       ("late items", "late_items")):
        lines.append(f"{'  ' + label:<22}{before[key]:>12}{after[key]:>12}")
    if before["shipping_cost"] is not None or after["shipping_cost"] is not None:
        lines.append(f"{'  shipping cost':<22}{_money(before['shipping_cost']):>12}"
                     f"{_money(after['shipping_cost']):>12}")
    lines.append(f"{'  mean distance':<22}{_distance(before):>12}{_distance(after):>12}")
    moved = sorted(set(before["orders_per_facility"]) | set(after["orders_per_facility"]))
    shifts = [f"{f} {before['orders_per_facility'].get(f, 0)} -> "
              f"{after['orders_per_facility'].get(f, 0)}" for f in moved
              if before["orders_per_facility"].get(f, 0) != after["orders_per_facility"].get(f, 0)]
    lines.append(f"  orders per facility: {', '.join(shifts) if shifts else 'unchanged'}")
    lines.append("")
    count = len(diff.changes)
    lines.append("no unit changed" if not count else
                 f"{count} unit{'' if count == 1 else 's'} changed")
    return "\n".join(lines)


def _by_unit(rows: list[dict]) -> dict[tuple, list[dict]]:
    found: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        found[(row["order"], row["ship_group"], row["item"])].append(row)
    return found


def _placement(row: dict) -> dict:
    return {k: row[k] for k in ("facility", "quantity", "group", "routing", "rule", "distance",
                                "distance_unit")}


def _left(row: dict) -> dict:
    return {k: row[k] for k in ("quantity", "routing", "rule", "action", "queue")}


def _rules_tried(plan: Plan, snapshot: Snapshot, orders: list[str]) -> dict[tuple, list[str]]:
    result = route(plan, snapshot, engine="reference", explain=True, explain_orders=set(orders))
    tried: dict[tuple, list[str]] = defaultdict(list)
    for entry in result["explanations"]:
        for rule in entry["rules"]:
            chosen = ", ".join(c["facility"] for c in rule["chosen"])
            tried[(entry["order"], entry["ship_group"])].append(
                f"{rule['rule']}: {rule['outcome']}" + (f" ({chosen})" if chosen else ""))
    return tried


def _distance(figure: dict) -> str:
    if figure["mean_distance"] is None:
        return "-"
    return f"{figure['mean_distance']} {figure['distance_unit']}"


def _plain(number) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
