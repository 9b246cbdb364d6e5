"""What shadowing costs (`routing bench --shadow`): a recorded batch with and without a
shadow candidate, and committed decisions with and without one, as ratios measured in the
same run (rounds interleaved, medians).

The batch pays for the candidate's run (after production's commit, its locks released) and
for recording both versions' figures; a decision pays only for copying the state it is
decided on, the candidate running on a worker thread after the answer is given.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .suite import BENCH_ROUTE, generate

# The candidate looks for warehouses closer by: about as much work as production.
CANDIDATE = BENCH_ROUTE.replace("distance <= 1500 mi", "distance <= 300 mi")


@dataclass
class ShadowCost:
    ship_groups: int
    facilities: int
    rounds: int
    batch_alone: float          # seconds, median
    batch_shadowed: float
    decisions: int
    decision_alone: float       # seconds, median latency of one commit
    decision_shadowed: float
    decision_alone_p99: float
    decision_shadowed_p99: float

    @property
    def batch_ratio(self) -> float:
        return self.batch_shadowed / self.batch_alone

    @property
    def decision_ratio(self) -> float:
        return self.decision_shadowed / self.decision_alone

    def text(self) -> str:
        return (f"shadow cost: {self.ship_groups:,} ship groups, {self.facilities:,} "
                f"facilities, SQLite run store, median of {self.rounds} interleaved rounds\n"
                f"  batch:      {self.batch_alone:.3f} s alone, {self.batch_shadowed:.3f} s "
                f"with a shadow candidate: {self.batch_ratio:.2f}x (the candidate routes the "
                "same state again, after production's commit)\n"
                f"  decisions:  {self.decisions} commits, p50 "
                f"{self.decision_alone * 1000:.2f} ms alone, "
                f"{self.decision_shadowed * 1000:.2f} ms shadowed: "
                f"{self.decision_ratio:.2f}x (p99 {self.decision_alone_p99 * 1000:.2f} -> "
                f"{self.decision_shadowed_p99 * 1000:.2f} ms; the candidate runs after the "
                "answer; target below 2x)")


def _plans():
    from ..checker import Workspace
    from ..compiler import compile_program
    return [compile_program(Workspace().check_text(text, name=name).program)
            for text, name in ((BENCH_ROUTE, "production.route"),
                               (CANDIDATE, "candidate.route"))]


def shadow_cost(facilities: int = 1000, ship_groups: int = 5000, products: int = 2000,
                rounds: int = 3, decisions: int = 300) -> ShadowCost:
    from ..ops.runner import run_recorded
    from ..ops.store import RunStore
    from ..rollout.controller import Rollout

    production, candidate = _plans()
    snapshot = generate(facilities, ship_groups, products)
    alone, shadowed = [], []
    decided_alone, decided_shadowed = [], []
    with tempfile.TemporaryDirectory(prefix="routing-shadow-bench-") as folder:
        for k in range(rounds):
            for shadow in (False, True):
                store = RunStore(f"sqlite:///{Path(folder) / f'r{k}-{int(shadow)}.db'}")
                store.upgrade()
                rollout = None
                if shadow:
                    rollout = Rollout(store, "shadow", [production], [candidate],
                                      log=lambda event: None)
                    rollout.start()
                recorder = rollout.run_recorded if rollout else run_recorded
                started = time.perf_counter()
                recorder(store, production, snapshot, trigger="scheduled", source_text=None)
                (shadowed if shadow else alone).append(time.perf_counter() - started)
                latencies = _decisions(store, production, snapshot, rollout, decisions)
                (decided_shadowed if shadow else decided_alone).extend(latencies)
                if rollout is not None:
                    rollout.stop()
                store.dispose()
    return ShadowCost(ship_groups, facilities, rounds, statistics.median(alone),
                      statistics.median(shadowed), decisions,
                      statistics.median(decided_alone), statistics.median(decided_shadowed),
                      _p99(decided_alone), _p99(decided_shadowed))


def _decisions(store, plan, snapshot, rollout, count: int) -> list[float]:
    """Commit ``count`` new orders one after another on a live state: each one's latency."""
    from ..service.state import LiveState
    state = LiveState([plan], lambda: snapshot, store=store, rollout=rollout)
    state.refresh()
    orders = [o.model_copy(update={"id": f"BENCH-{k}"})
              for k, o in enumerate(snapshot.orders[:count])]
    latencies = []
    for order in orders:
        started = time.perf_counter()
        state.commit(order, f"bench-{order.id}", explain=False)
        latencies.append(time.perf_counter() - started)
    if rollout is not None:
        rollout.drain(timeout=120)
    return latencies


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
