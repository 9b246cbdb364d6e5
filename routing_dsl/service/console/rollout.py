"""The console's rollout page (``/console/rollout``): where the canary and the shadows stand
(`rollout.report.standings`), both versions' figures over a period as SVG charts, and the
batches shadowed most recently, each version's figures side by side."""

from __future__ import annotations

from datetime import datetime, timedelta

from ...rollout import records
from ...rollout.kpis import KM_PER_MILE, Kpis
from ...rollout.report import standings
from . import charts

ROLES = ("production", "candidate")


def page_values(store, *, start: datetime, end: datetime, step: int) -> dict:
    """What the page shows for the period [start, end), in buckets of ``step`` hours."""
    if store is None:
        return {"standings": [], "charts": None, "shadowed": [], "totals": None}
    rows = records.series(store, since=start, until=end)
    buckets = max(1, int((end - start) / timedelta(hours=step)) + 1)
    sums = [{role: Kpis() for role in ROLES} for _ in range(buckets)]
    differing = [0] * buckets
    for row in rows:
        k = min(buckets - 1, int((row["started"] - start) / timedelta(hours=step)))
        sums[k][row["role"]].add(row["kpis"])
        if row["role"] == "candidate":
            differing[k] += row["differing_units"]
    shape = "%m-%d %H:00" if step == 1 else "%Y-%m-%d"
    labels = [(start + timedelta(hours=step * k)).strftime(shape) for k in range(buckets)]

    def line(figure) -> dict:
        return {role: [figure(s[role]) if s[role].attempted_units or s[role].errors else None
                       for s in sums] for role in ROLES}
    totals = {role: Kpis() for role in ROLES}
    for s in sums:
        for role in ROLES:
            totals[role].add(s[role])
    unit = totals["production"].distance_unit if totals["production"].distance_rows else \
        totals["candidate"].distance_unit
    per_unit = KM_PER_MILE if unit == "mi" else 1.0
    made = {
        "unfilled": charts.lines("chart-rollout-unfilled", "Unfilled rate (%)", labels,
                                 line(lambda k: k.unfilled_rate), fmt=lambda v: f"{v:.1f}%"),
        "cost": charts.lines("chart-rollout-cost", "Shipping cost per unit", labels,
                             line(lambda k: k.cost_per_unit)),
        "distance": charts.lines("chart-rollout-distance", f"Mean distance ({unit})", labels,
                                 line(lambda k: k.distance_km / k.distance_rows / per_unit
                                      if k.distance_rows else None),
                                 fmt=lambda v: f"{v:,.0f}"),
        "units": charts.lines("chart-rollout-units", "Units routed", labels,
                              line(lambda k: k.units_routed), fmt=lambda v: f"{v:,.0f}"),
        "differing": charts.bars("chart-rollout-differing", "Units decided differently "
                                 "(shadow)", labels, {"differing units": differing},
                                 fmt=lambda v: f"{v:,.0f}"),
    }
    return {"standings": standings(store), "charts": made if rows else None,
            "shadowed": records.shadow_batches(store, since=start, until=end, limit=50),
            "totals": {role: totals[role].report() for role in ROLES},
            "differing": sum(differing)}
