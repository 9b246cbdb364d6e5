"""The runtime: plan + snapshot -> result document (routing-result/1), by the reference
engine, the readable statement of the semantics (docs/semantics.md).

One module per concern, in the order a run meets them:

- `geometry`: great-circle distances, the mile factor;
- `stock`: the snapshot's inventory indexed (net stock, ATP, velocity), `LiveStock`;
- `state`: the run's context and the order lines, units and facilities it routes;
- `units`: which units a routing routes and in what order (windows, eligibility, filters,
  sorts), and why an order was not routed;
- `rules`: a rule's conditions lowered by stage, with their criteria;
- `packages`: a unit's packages under its rate card (zones, dates, weights, costs, prices);
- `protocol`: `Allocator`, what a run asks of an engine for each routing;
- `allocation`: the reference allocator (candidates, ranking, placement, commit, actions);
- `explanation`: why each rule chose what it chose, and why not the other facilities;
- `run`: the walk over the plan's groups and routings, the records, the result document.

What each criterion means lives in the criteria registry (routing_dsl.criteria); this
package applies them. `routing_dsl.interpreter` re-exports the public names.
"""

from __future__ import annotations

from .allocation import ReferenceAllocator
from .geometry import EARTH_RADIUS_KM, KM_PER_MILE, haversine_km, haversine_radians, radians
from .protocol import Allocator
from .run import RESULT_FORMAT, Run, run_plan
from .state import EPSILON, Context, Prepared, RunError, order_lines
from .stock import LiveStock
from .units import eligible_units, not_routed_reasons, order_predicate, priority_ranks

__all__ = ["EARTH_RADIUS_KM", "EPSILON", "KM_PER_MILE", "RESULT_FORMAT", "Allocator", "Context",
           "LiveStock", "Prepared", "ReferenceAllocator", "Run", "RunError", "eligible_units",
           "haversine_km", "haversine_radians", "not_routed_reasons", "order_lines",
           "order_predicate", "priority_ranks", "radians", "run_plan"]
