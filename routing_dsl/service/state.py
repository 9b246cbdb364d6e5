"""The live state: the snapshot a service decides against, loaded from its source at start
and on refresh, and quotes (decisions without side effects) computed against it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..interpreter import run_plan
from ..plan import Plan
from ..snapshot import Order, Snapshot, SnapshotError, parse_snapshot


class DecisionError(Exception):
    """A decision request that cannot be decided as given (the message says why)."""


@dataclass
class LiveState:
    plans: list[Plan]
    source: Callable[[], Snapshot]
    snapshot: Snapshot | None = None
    loaded_at: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    decisions: int = 0
    latencies: list[float] = field(default_factory=list)

    def refresh(self) -> None:
        snapshot = self.source()
        with self.lock:
            self.snapshot, self.loaded_at = snapshot, datetime.now(UTC)

    def group(self, name: str):
        for plan in self.plans:
            for group in plan.groups:
                if group.name == name:
                    return plan, group
        return None, None

    def quote(self, order: Order) -> dict:
        """Where ``order`` would ship from now: its lines' facilities, quantities, rules and
        distances, what would stay unfilled, and the explanation. Changes nothing."""
        started = time.perf_counter()
        with self.lock:
            snapshot = self.snapshot
        if snapshot is None:
            raise DecisionError("the live state is not loaded")
        document = snapshot.model_dump(mode="json")
        document["orders"] = [order.model_dump(mode="json")]
        try:
            single = parse_snapshot(document, "order")
        except SnapshotError as error:
            raise DecisionError("; ".join(error.problems)) from None
        lines, unfilled, explanations = [], [], []
        for plan in self.plans:
            result = run_plan(plan, single, explain=True, explain_orders={order.id})
            lines += result["allocations"]
            unfilled += result["unfillable"]
            explanations += result["explanations"]
        self.decisions += 1
        self.latencies.append(time.perf_counter() - started)
        del self.latencies[:-10_000]
        return {"order": order.id, "lines": lines, "unfilled": unfilled,
                "explanations": explanations}
