"""What `routing shadow` and `routing rollout status` report, and the console's rollout page
reads: both versions' figures side by side, per batch and in total, and where each rollout
stands."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .guards import Guards, tripped
from .kpis import Kpis
from .records import RolloutRecord, ShadowBatch, current_canary, listed, shadowed, window

# The figures shown, in order: (key of Kpis.report(), label)
SHOWN = (("units_routed", "units routed"), ("allocations", "allocations"),
         ("packages", "packages"), ("split_orders", "split orders"),
         ("shipping_cost", "shipping cost"), ("cost_per_unit", "cost per unit"),
         ("mean_distance", "mean distance"), ("late_units", "late units"),
         ("unfilled_units", "unfilled units"), ("unfilled_rate", "unfilled rate %"),
         ("parked_units", "parked units"), ("errors", "routing errors"))


def _version(side: dict) -> str:
    return side["version_label"] or side["plan_hash"][:12]


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def side_by_side(production: Kpis, candidate: Kpis, indent: str = "  ") -> list[str]:
    """Text lines: each figure, production's then the candidate's."""
    ours, theirs = production.report(), candidate.report()
    lines = [f"{indent}{'':<18}{'production':>14}{'candidate':>14}"]
    for key, label in SHOWN:
        a, b = ours[key], theirs[key]
        if key == "mean_distance":
            a = None if a is None else f"{cell(a)} {ours['distance_unit']}"
            b = None if b is None else f"{cell(b)} {theirs['distance_unit']}"
        lines.append(f"{indent}{label:<18}{cell(a):>14}{cell(b):>14}")
    return lines


@dataclass
class ShadowReport:
    batches: list[ShadowBatch]
    production: Kpis = field(default_factory=Kpis)
    candidate: Kpis = field(default_factory=Kpis)
    differing_units: int = 0

    def __post_init__(self) -> None:
        for batch in self.batches:
            self.production.add(batch.production["kpis"])
            self.candidate.add(batch.candidate["kpis"])
            self.differing_units += batch.differing_units

    def to_json(self) -> dict:
        def side(entry: dict) -> dict:
            return {"version": _version(entry), "version_label": entry["version_label"],
                    "plan_hash": entry["plan_hash"], "error": entry["error"],
                    **entry["kpis"].report()}
        return {
            "batches": [{"batch": b.batch_id, "group": b.group, "trigger": b.trigger,
                         "started": b.started.isoformat(), "production": side(b.production),
                         "candidate": side(b.candidate), "differing_units": b.differing_units,
                         "differences": b.differences} for b in self.batches],
            "total": {"batches": len(self.batches), "production": self.production.report(),
                      "candidate": self.candidate.report(),
                      "differing_units": self.differing_units}}

    def text(self) -> str:
        if not self.batches:
            return "no batch was shadowed in this period\n"
        lines = []
        for b in reversed(self.batches):  # oldest first: the total comes last
            lines.append(f"batch {b.batch_id} {b.started:%Y-%m-%d %H:%M:%S} UTC, group "
                         f"{b.group!r} ({b.trigger}): {_version(b.production)} -> "
                         f"{_version(b.candidate)}")
            lines += side_by_side(b.production["kpis"], b.candidate["kpis"])
            if b.candidate["error"]:
                lines.append(f"  candidate failed: {b.candidate['error']}")
            lines.append(f"  differing units: {b.differing_units}")
            for d in b.differences:
                lines.append(f"    order {d['order']} ship group {d['ship_group']} item "
                             f"{d['item']}: {d['production']} -> {d['candidate']}")
            if b.differing_units > len(b.differences):
                lines.append(f"    ... and {b.differing_units - len(b.differences)} more")
            lines.append("")
        lines.append(f"total over {len(self.batches)} batch"
                     f"{'' if len(self.batches) == 1 else 'es'}")
        lines += side_by_side(self.production, self.candidate)
        lines.append(f"  differing units: {self.differing_units}")
        return "\n".join(lines) + "\n"


@dataclass
class Standing:
    """Where a rollout stands, with (for a canary) its guards and both versions' figures
    over the guards' window."""

    rollout: RolloutRecord
    production: Kpis | None = None
    candidate: Kpis | None = None
    failing: list[str] = field(default_factory=list)
    batches: int = 0                   # a shadow's: batches measured
    last: datetime | None = None       # and when the last one started

    def to_json(self) -> dict:
        r = self.rollout
        return {"id": r.id, "mode": r.mode, "status": r.status,
                "candidate": r.candidate_label, "production": r.production_label,
                "candidate_plans": r.candidate_plans, "production_plans": r.production_plans,
                "share": r.share, "guards": r.guards, "started": r.started.isoformat(),
                "ended": r.ended.isoformat() if r.ended else None, "reason": r.reason,
                **({"batches_shadowed": self.batches,
                    "last_shadowed": self.last.isoformat() if self.last else None}
                   if r.mode == "shadow" else {}),
                "window": None if self.production is None else {
                    "production": self.production.report(),
                    "candidate": self.candidate.report(), "failing": self.failing}}

    def text(self) -> str:
        r = self.rollout
        share = f" of {r.share:g}% of orders" if r.share is not None else ""
        lines = [f"{r.mode} #{r.id}{share}: {r.candidate_label} beside {r.production_label}",
                 f"  status: {r.status}" + (f" since {_when(r.ended)}" if r.ended else ""),
                 f"  started: {_when(r.started)}"]
        if r.reason:
            lines.append(f"  why: {r.reason}")
        if r.mode == "shadow":
            lines.append(f"  batches shadowed: {self.batches}" + (
                f", the last at {_when(self.last)} (`routing shadow` shows them)"
                if self.last else ""))
        if r.guards:
            lines.append("  guards: " + ", ".join(f"{k} = {v}" for k, v in
                                                   sorted(r.guards.items())))
        if self.production is not None:
            lines.append(f"  each version's newest batches (a window of "
                         f"{r.guards.get('window', 1000):,} units):")
            lines += side_by_side(self.production, self.candidate, indent="    ")
            if r.status == "active":
                lines.append("  guards: " + ("; ".join(self.failing) if self.failing
                                             else "all hold"))
        return "\n".join(lines) + "\n"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def standings(store) -> list[Standing]:
    """The canary (in progress, else the latest) and the shadows in progress."""
    found = []
    canary = current_canary(store)
    if canary is not None:
        guards = Guards.model_validate(canary.guards or {})
        production = window(store, canary.id, "production", guards.window)
        candidate = window(store, canary.id, "candidate", guards.window)
        found.append(Standing(canary, production.kpis, candidate.kpis,
                              tripped(guards, production, candidate)))
    found += [Standing(r, None, None, [], *shadowed(store, r.id))
              for r in listed(store, active=True) if r.mode == "shadow"]
    return found
