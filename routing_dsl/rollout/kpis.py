"""One batch's figures as a rollout compares two versions, and the units whose decisions
differ.

The figures come from a batch's rows (its allocations, unfilled items and runs), so that
production's batch and the candidate's run on the same state are measured alike:

- **units routed**: the quantity allocated; **allocations**: allocation rows;
- **packages**: new ship groups; **split orders**: orders with a ship group sent in more than
  one package;
- **shipping cost** (and the units it covers, for a cost per unit); **distance** (summed in
  km, and how many rows measured it, for a mean; rows measured in miles are counted so that
  a plan written in miles reads in miles);
- **late units**: units whose package arrives after the line's promised date;
- **unfilled units**: every unit left open; **parked units**: those moved to a queue;
- **errors**: routings of the batch that failed (a candidate that raised counts one).

A unit (order, ship group, item) differs when the facilities and quantities it was allocated
from differ, or what stayed open differs (quantity, action, queue); the rules' names do not
count (a renamed rule that decides the same is no difference).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import date
from zoneinfo import ZoneInfo

KM_PER_MILE = 1.609344
DIFFERENCES_KEPT = 50  # differing units kept per batch (all are counted)


@dataclass
class Kpis:
    units_routed: float = 0.0
    allocations: int = 0
    packages: int = 0
    split_orders: int = 0
    shipping_cost: float = 0.0
    costed_units: float = 0.0
    distance_km: float = 0.0
    distance_rows: int = 0
    distance_mi_rows: int = 0
    late_units: float = 0.0
    unfilled_units: float = 0.0
    parked_units: float = 0.0
    errors: int = 0

    def add(self, other: Kpis) -> Kpis:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @classmethod
    def of_row(cls, row) -> Kpis:
        """From a `rollout_kpis` row (a mapping)."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def values(self) -> dict:
        return asdict(self)

    # ---- derived ----
    @property
    def attempted_units(self) -> float:
        return self.units_routed + self.unfilled_units

    @property
    def unfilled_rate(self) -> float | None:
        """Unfilled units per unit attempted, in percent (None when none was)."""
        attempted = self.attempted_units
        return 100.0 * self.unfilled_units / attempted if attempted else None

    @property
    def cost_per_unit(self) -> float | None:
        """Shipping cost per unit whose cost is known (None when none is)."""
        return self.shipping_cost / self.costed_units if self.costed_units else None

    @property
    def distance_unit(self) -> str:
        return "mi" if self.distance_rows and self.distance_mi_rows == self.distance_rows \
            else "km"

    @property
    def mean_distance(self) -> float | None:
        """In `distance_unit` (None when no allocation measured one)."""
        if not self.distance_rows:
            return None
        mean = self.distance_km / self.distance_rows
        return mean / KM_PER_MILE if self.distance_unit == "mi" else mean

    def report(self) -> dict:
        """The figures as reports show them (the sums, then what derives from them)."""
        shown = {name: _round(value) for name, value in self.values().items()
                 if name not in ("costed_units", "distance_km", "distance_rows",
                                 "distance_mi_rows")}
        shown["shipping_cost"] = round(self.shipping_cost, 2)
        shown["mean_distance"] = _round(self.mean_distance, 2)
        shown["distance_unit"] = self.distance_unit if self.distance_rows else None
        shown["unfilled_rate"] = _round(self.unfilled_rate, 2)
        shown["cost_per_unit"] = _round(self.cost_per_unit, 4)
        return shown


def _round(value, digits: int = 6):
    if value is None:
        return None
    value = round(value, digits)
    return int(value) if float(value).is_integer() else value


class Promises:
    """The promised day of each order line of a snapshot, in its time zone, looked up by
    (order, ship group, item); the orders are indexed the first time one is asked for."""

    def __init__(self, snapshot) -> None:
        self.snapshot = snapshot
        self.zone = ZoneInfo(snapshot.timezone)
        self._orders: dict | None = None

    def day(self, order: str, ship_group: str, item: str) -> date | None:
        if self._orders is None:
            self._orders = {o.id: o for o in self.snapshot.orders}
        found = self._orders.get(order)
        if found is None:
            return None
        for group in found.ship_groups:
            if group.id == ship_group:
                for line in group.items:
                    if line.id == item:
                        promised = line.promised_date
                        return None if promised is None else \
                            promised.astimezone(self.zone).date()
        return None


def batch_kpis(allocations: list[dict], unfillable: list[dict], runs: list[dict],
               promises: Promises | None = None, errors: int = 0) -> Kpis:
    """The figures of one batch's rows (result entries: allocations, unfillable items, the
    batch's runs)."""
    kpis = Kpis(errors=errors + sum(1 for r in runs if r.get("error")))
    packages: dict[tuple, set] = defaultdict(set)
    for a in allocations:
        quantity = a["quantity"]
        kpis.units_routed += quantity
        kpis.allocations += 1
        packages[(a["order"], a["ship_group"])].add(a["new_ship_group"])
        cost = a.get("shipping_cost")
        if cost is not None:
            kpis.shipping_cost += cost
            kpis.costed_units += quantity
        if a["distance"] is not None:
            kpis.distance_rows += 1
            if a["distance_unit"] == "mi":
                kpis.distance_mi_rows += 1
                kpis.distance_km += a["distance"] * KM_PER_MILE
            else:
                kpis.distance_km += a["distance"]
        delivered = a.get("delivery_date")
        if delivered and promises is not None:
            promised = promises.day(a["order"], a["ship_group"], a["item"])
            if promised is not None and promised < date.fromisoformat(delivered):
                kpis.late_units += quantity
    kpis.packages = sum(len(p) for p in packages.values())
    kpis.split_orders = len({order for (order, _), p in packages.items() if len(p) > 1})
    for u in unfillable:
        kpis.unfilled_units += u["quantity"]
        if u["action"] == "moved":
            kpis.parked_units += u["quantity"]
    return kpis


def batch_rows(result: dict, group, stores: dict[str, str]) -> tuple[list, list, list]:
    """A plan group's rows of a result (as the run store records its batch: its allocations,
    the unfilled items of its routings and store, its runs)."""
    routings = {r.name for r in group.routings}
    allocations = [a for a in result["allocations"] if a["group"] == group.name]
    unfillable = [u for u in result["unfillable"] if u["routing"] in routings
                  and stores.get(u["order"]) == group.product_store]
    runs = next((b["runs"] for b in result["batches"] if b["group"] == group.name), [])
    return allocations, unfillable, runs


def differences(production: tuple[list, list], candidate: tuple[list, list],
                kept: int = DIFFERENCES_KEPT) -> tuple[int, list[dict]]:
    """How many units' decisions differ between two versions' (allocations, unfilled) rows of
    one batch, and the first ``kept`` of them (in unit order), each with what each version
    did."""
    old, new = _decisions(*production), _decisions(*candidate)
    changed = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    shown = [{"order": o, "ship_group": g, "item": i,
              "production": _describe(old.get((o, g, i))),
              "candidate": _describe(new.get((o, g, i)))} for o, g, i in changed[:kept]]
    return len(changed), shown


def _decisions(allocations: list[dict], unfillable: list[dict]) -> dict[tuple, tuple]:
    placed: dict[tuple, list] = defaultdict(list)
    left: dict[tuple, list] = defaultdict(list)
    for a in allocations:
        placed[(a["order"], a["ship_group"], a["item"])].append((a["facility"], a["quantity"]))
    for u in unfillable:
        left[(u["order"], u["ship_group"], u["item"])].append(
            (u["action"], u["queue"], u["quantity"]))
    return {key: (tuple(sorted(placed.get(key, ()))), tuple(sorted(left.get(key, ()))))
            for key in set(placed) | set(left)}


def _describe(decision: tuple | None) -> str:
    """``WH_NJ x2, ST_BOS x1; moved to PARKING x1`` (``not routed`` when the version left the
    unit alone)."""
    if decision is None:
        return "not routed"
    placed, left = decision
    parts = [", ".join(f"{facility} x{_plain(quantity)}" for facility, quantity in placed)]
    parts += [f"{action.replace('_', ' ')}{' to ' + queue if action == 'moved' else ''} "
              f"x{_plain(quantity)}" for action, queue, quantity in left]
    return "; ".join(p for p in parts if p)


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"
