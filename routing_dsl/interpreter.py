"""Interpreter: plan + snapshot -> result document (routing-result/1).

The reference engine lives in `routing_dsl.runtime`, one module per concern (run state, unit
selection, rules, allocation, explanation, the run); this module re-exports its public names
for the callers that know it by this name.
"""

from __future__ import annotations

from .criteria.text import number
from .runtime import (EARTH_RADIUS_KM, EPSILON, KM_PER_MILE, RESULT_FORMAT, Allocator, Context,
                      LiveStock, Prepared, ReferenceAllocator, Run, RunError, eligible_units,
                      haversine_km, haversine_radians, not_routed_reasons, order_lines,
                      order_predicate, priority_ranks, radians, run_plan)
from .runtime.explanation import EXCLUSIONS_RANK
from .runtime.rules import group_reason, prepare_rule
from .runtime.state import ItemState, Unit, latest_rejections
from .runtime.units import in_window, window_bound

__all__ = ["EARTH_RADIUS_KM", "EPSILON", "EXCLUSIONS_RANK", "KM_PER_MILE", "RESULT_FORMAT",
           "Allocator", "Context", "LiveStock", "Prepared", "ReferenceAllocator", "Run",
           "RunError", "eligible_units", "haversine_km", "haversine_radians", "in_window",
           "latest_rejections", "not_routed_reasons", "order_lines", "order_predicate",
           "priority_ranks", "radians", "run_plan", "window_bound"]


# ---- the old private names engine/fast.py imports and overrides ------------------------------
# This block goes when the fast engine implements runtime.protocol.Allocator by composition
# (issue 21): it subclasses the interpreter today, importing these names and overriding the
# hooks below by their old private names. Nothing else may use them (tests/test_layers.py).

_group_reason, _number, _order_predicate = group_reason, number, order_predicate
_ItemState, _prepare_rule, _radians, _Unit = ItemState, prepare_rule, radians, Unit


class _Context(Context):
    """The run context with its indexing hooks under their old names (the fast engine's
    context overrides `_index_inventory` and `_index_items`)."""

    def index_inventory(self, snapshot) -> None:
        self._index_inventory(snapshot)

    def _index_inventory(self, snapshot) -> None:
        Context.index_inventory(self, snapshot)

    def index_items(self, snapshot, products: dict) -> None:
        self._index_items(snapshot, products)

    def _index_items(self, snapshot, products: dict) -> None:
        Context.index_items(self, snapshot, products)


class _Interpreter(Run):
    """A run whose allocator is its own methods under their old names (the fast engine
    overrides `_select_units`, `_item_count`, `_route_units` and `_inventory_after`), each
    the reference allocator's unless overridden."""

    context_class = _Context

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reference, self.allocator = self.allocator, _OwnHooks(self)

    def _select_units(self, store, routing):
        return self.reference.select_units(store, routing)

    def _item_count(self, units) -> int:
        return self.reference.count_items(units)

    def _route_units(self, group_name, store, routing, units, progress, fixed=None) -> int:
        return self.reference.route_units(group_name, store, routing, units, progress, fixed)

    def _inventory_after(self) -> list[dict]:
        return self.reference.inventory_after()

    def _new_ship_group(self, order_id: str, ship_group_id: str) -> str:
        return self.new_ship_group(order_id, ship_group_id)

    def _warn_facility(self, facility: str) -> None:
        self.warn_facility(facility)

    def _warn_ship_to(self, order: str, ship_group: str) -> None:
        self.warn_ship_to(order, ship_group)


class _OwnHooks:
    """The Allocator of an `_Interpreter`: its old-named methods."""

    def __init__(self, run: _Interpreter) -> None:
        self.run = run

    def select_units(self, store, routing):
        return self.run._select_units(store, routing)

    def count_items(self, units) -> int:
        return self.run._item_count(units)

    def route_units(self, group_name, store, routing, units, progress, fixed=None) -> int:
        if fixed is None:
            return self.run._route_units(group_name, store, routing, units, progress)
        return self.run._route_units(group_name, store, routing, units, progress, fixed)

    def inventory_after(self) -> list[dict]:
        return self.run._inventory_after()


def open_run(plan, snapshot, engine: str = "reference") -> Run:
    """A run of ``plan`` on ``snapshot`` on ``engine`` ("reference" or "fast"), for a caller
    that needs more than its result document (scale-out merges partitions by the run's
    `spans` and `warnings`). Goes into the runtime, without the fast engine's private class,
    with the block above."""
    if engine == "fast":
        from .engine.fast import _FastInterpreter
        return _FastInterpreter(plan, snapshot, False, None)
    return Run(plan, snapshot, False, None)
