"""The allocator protocol: what a run (runtime.run.Run) asks of an engine for each routing.

A run owns the walk over the plan and the result's records; an allocator owns how a
routing's orders become allocations. Two implement it: the reference allocator
(runtime.allocation.ReferenceAllocator, the readable statement of the semantics) and the
fast engine's compiled one (routing_dsl.engine.fast.FastAllocator). The differential tests hold any two allocators to the same bytes.

An allocator is made for one run, from the run (its factory takes the run), and reads and
changes the run's context (`run.ctx`: stock, daily counts, item states) and records
(`run.allocations`, `run.unfillable`, `run.explanations`, `run.totals`, `run.used`; ship
group ids through `run.new_ship_group`, warnings through `run.warn_facility` and
`run.warn_ship_to`). An engine that keeps its state otherwise (the fast engine's arrays)
brings its own context too, a subclass of runtime.state.Context overriding its indexing
hooks (`index_inventory`, `index_items`):

    Run(plan, snapshot, False, None, context=FastContext, allocator=FastAllocator)

A routing with an `optimize` block asks more of its allocator than this protocol
(routing_dsl.optimize.run): `save` and `restore` (the state routing a batch may change, in
the engine's own layout, for `Run.checkpoint`), `orders_of`, `admitting` (the run and units
`optimize.candidates.collect` asks what each rule admits), the packages' shipping facts
(`shipping`) and `route_units` with fixed placements. Both allocators answer them: the
reference one from its dictionaries, the fast one from its arrays and a pass of its kernel
(engine.optimizing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from typing import Protocol, runtime_checkable

from ..plan import PlanRouting


@runtime_checkable
class Allocator(Protocol):
    """Decides a run's routings, one at a time, in the plan's order."""

    def select_units(self, store: str, routing: PlanRouting) -> Sized:
        """The routing's units: the store's eligible ship groups (or items, item by item)
        that pass its filters, in its order (runtime.units says which and how). Their
        representation is the allocator's own; the run only hands them back."""

    def count_items(self, units) -> int:
        """How many items ``units`` hold (a routing run's `attempted_items`)."""

    def route_units(self, group_name: str, store: str, routing: PlanRouting, units,
                    progress: Callable[[int], None] | None) -> int:
        """Route ``units`` through the routing's rules, in order, appending to the run's
        records and taking from its stock; returns how many items got stock (the run's
        `brokered_items`). ``progress`` is called with the number of units done."""

    def inventory_after(self) -> Sequence[dict]:
        """The result's `inventory_after`: the ATP of each (facility, product) the run took
        from, by facility then product (a list, or runtime.rows.ResultRows)."""
