"""Interpreter: plan + snapshot -> result document (routing-result/1).

The reference engine lives in `routing_dsl.runtime`, one module per concern (run state, unit
selection, rules, allocation, explanation, the run); this module re-exports its public names
for the callers that know it by this name.
"""

from __future__ import annotations

from .runtime import (EARTH_RADIUS_KM, EPSILON, KM_PER_MILE, RESULT_FORMAT, Allocator, Context,
                      LiveStock, Prepared, ReferenceAllocator, Run, RunError, eligible_units,
                      haversine_km, haversine_radians, not_routed_reasons, order_lines,
                      order_predicate, priority_ranks, radians, run_plan)
from .runtime.explanation import EXCLUSIONS_RANK
from .runtime.state import latest_rejections
from .runtime.units import in_window, window_bound

__all__ = ["EARTH_RADIUS_KM", "EPSILON", "EXCLUSIONS_RANK", "KM_PER_MILE", "RESULT_FORMAT",
           "Allocator", "Context", "LiveStock", "Prepared", "ReferenceAllocator", "Run",
           "RunError", "eligible_units", "haversine_km", "haversine_radians", "in_window",
           "latest_rejections", "not_routed_reasons", "order_lines", "order_predicate",
           "priority_ranks", "radians", "run_plan", "window_bound"]


def open_run(plan, snapshot, engine: str = "reference") -> Run:
    """A run of ``plan`` on ``snapshot`` on ``engine`` ("reference" or "fast"), for a caller
    that needs more than its result document (scale-out merges partitions by the run's
    `spans` and `warnings`); the fast engine's run composes its context and allocator."""
    if engine == "fast":
        from .engine.fast import FastAllocator, FastContext
        return Run(plan, snapshot, False, None, context=FastContext, allocator=FastAllocator)
    return Run(plan, snapshot, False, None)
