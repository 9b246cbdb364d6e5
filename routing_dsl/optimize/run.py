"""An optimised routing run, as the interpreter calls it (`_routing`, for a routing with an
`optimize` block).

1. The batch: the routing's units and what its rules admit, at the state the routing starts
   from (`candidates.collect`).
2. The rules route the batch as they always do: their allocation is the warm start, each
   window's fallback, and in `report` mode the result.
3. Windows of whole orders (`windows`), each a program (`model.build`), solved on the
   executor `executing` names (`solve`); a window keeps the rules' allocation unless the
   solver's is cheaper.
4. `apply`: the run is put back where the routing started and the optimum is committed unit
   by unit through the rules, each placement by the rule that admits it, so allocations, new
   ship groups, prices, totals, actions and unfillable records are the engine's own.
5. The `optimization` section (`report`).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import numpy as np

from ..scaleout.tasks import map_tasks
from .candidates import add_edges, collect, price
from .model import Prices, build, late_days, package_index
from .report import measure, section
from .solve import Solution, solve, warm_objective
from .windows import cut, windows

EPS = 1e-9
_EXECUTION = contextvars.ContextVar("optimize_execution", default=("local", 1))


@contextmanager
def executing(executor: str, jobs: int):
    """Solve windows on ``executor`` with ``jobs`` workers within the block (the answer is the
    same on any executor and any number of workers)."""
    token = _EXECUTION.set((executor, jobs))
    try:
        yield
    finally:
        _EXECUTION.reset(token)


def prices_for(batch, settings, packages) -> Prices:
    """The objective's prices; `unfilled_penalty auto` is more than any package, split and
    lateness one more unit could bring."""
    dearest = float(batch.bucket_cost.max()) if len(batch.bucket_cost) else 1.0
    unknown = 2 * dearest + 1.0
    latest = 0.0
    if len(batch.edge_item):
        latest = float(late_days(batch, np.arange(len(batch.edge_item)), packages).max())
    penalty = settings.unfilled_penalty
    if penalty is None:
        penalty = unknown + settings.split_cost + settings.late_cost * latest + 1.0
    return Prices(settings.split_cost, settings.late_cost, float(penalty), unknown)


def optimise_routing(interp, group_name: str, store: str, routing, units: list,
                     progress) -> int:
    """Route ``units`` (the routing's, in its order) as the `optimize` block says; returns how
    many items got stock, as `_route_units` does."""
    settings = routing.optimize
    warnings = dict(interp.warnings)
    batch = collect(interp, store, routing, units)
    interp.warnings = warnings  # the rules' run below warns about what it looks at
    saved = interp.checkpoint(units)
    first_allocation, first_unfilled = len(interp.allocations), len(interp.unfillable)
    brokered = interp._route_units(group_name, store, routing, units, progress)
    rows = interp.allocations[first_allocation:]
    rules_x, deciding = _rules_allocation(interp, batch, routing, rows,
                                          interp.unfillable[first_unfilled:], saved)
    packages = package_index(batch)
    prices = prices_for(batch, settings, packages)
    groups = cut(batch, settings.window)
    parts = windows(batch, groups, rules_x, packages)
    models = [build(batch, part, prices, packages) for part in parts]
    executor, jobs = _EXECUTION.get()
    solutions = map_tasks(solve, [(m, settings.work_limit, settings.time_limit)
                                  for m in models], executor=executor, jobs=jobs)
    best_x = rules_x.copy()
    bound, statuses, nodes, iterations = 0.0, set(), 0, 0
    for part, model, solution in zip(parts, models, solutions, strict=True):
        statuses.add(solution.status)
        nodes += solution.nodes
        iterations += solution.iterations
        chosen = _choose(model, solution, batch, part)
        if chosen is not None:
            best_x[part.edges] = chosen
        filled = float(best_x[part.edges].sum())
        window_bound = _money_bound(solution, prices, batch, part, filled)
        bound = None if bound is None or window_bound is None else bound + window_bound
    rates = interp.ctx.rates
    rules = measure(rates, batch, packages, rules_x, prices.split_cost, prices.late_cost)
    optimum = measure(rates, batch, packages, best_x, prices.split_cost, prices.late_cost)
    if optimum.cost > rules.cost + EPS and optimum.unfilled_units >= rules.unfilled_units - EPS:
        best_x, optimum = rules_x.copy(), rules  # never worse than the rules
    status = _status(statuses)
    if settings.mode == "apply" and np.any(np.abs(best_x - rules_x) > EPS):
        interp.restore(saved)
        brokered = interp._route_units(group_name, store, routing, units, None,
                                       _placements(batch, best_x))
    interp.optimizations.append(section(
        group_name, routing.name, settings.mode, status, len(parts),
        {"nodes": nodes, "simplex_iterations": iterations}, rules, optimum, bound, batch,
        rules_x, best_x, deciding, routing.item_mode))
    interp.optimized_units = getattr(interp, "optimized_units", {})
    interp.optimized_units[(group_name, routing.name)] = (batch, packages, rules_x, best_x)
    return brokered


def _rules_allocation(interp, batch, routing, rows, unfilled_rows, saved):
    """The rules' quantity per edge, and the rule that decided each unit."""
    line_of = {(s.order.id, s.ship_group.id, s.item.id): k for k, s in enumerate(batch.items)}
    facility_of = {name: f for f, name in enumerate(batch.facilities)}
    rule_index = {rule.name: r for r, rule in enumerate(routing.rules)}
    n_units = len(batch.unit_first_item) - 1
    deciding: list[str | None] = [None] * n_units
    placed, extra = [], []
    for row in rows:
        k = line_of[(row["order"], row["ship_group"], row["item"])]
        f = facility_of.get(row["facility"])
        if f is None:
            f = _add_facility(interp, batch, row["facility"], saved)
            facility_of[row["facility"]] = f
        extra.append((k, f, rule_index[row["rule"]]))
        placed.append((k, f, float(row["quantity"])))
        u = int(batch.item_unit[k])
        if deciding[u] is None:
            deciding[u] = row["rule"]
    for row in unfilled_rows:
        k = line_of.get((row["order"], row["ship_group"], row["item"]))
        if k is not None and deciding[int(batch.item_unit[k])] is None:
            deciding[int(batch.item_unit[k])] = row["rule"]
    add_edges(batch, extra)
    stock_at_start = saved[0]
    for k, f in zip(batch.edge_item.tolist(), batch.edge_facility.tolist(), strict=True):
        key = (f, int(batch.item_product[k]))
        if key not in batch.stock:
            batch.stock[key] = stock_at_start.get(batch.products[key[1]], {}).get(
                batch.facilities[f], 0.0)
    price(interp, batch)
    edge_of = {(k, f): e for e, (k, f) in enumerate(zip(batch.edge_item.tolist(),
                                                       batch.edge_facility.tolist(), strict=True))}
    x = np.zeros(len(batch.edge_item))
    for k, f, quantity in placed:
        x[edge_of[(k, f)]] += quantity
    return x, deciding


def _add_facility(interp, batch, name: str, saved) -> int:
    """A facility only the rules' run used (see `candidates.add_edges`)."""
    limit = interp.ctx.facilities[name].limit
    orders_today = saved[1]
    batch.facilities.append(name)
    batch.facility_room = np.r_[batch.facility_room,
                                np.inf if limit is None else max(0, limit - orders_today[name])]
    rates = interp.ctx.rates
    batch.facility_rate_index = np.r_[batch.facility_rate_index,
                                      rates.facility_index.get(name, -1) if rates else -1]
    return len(batch.facilities) - 1


def _choose(model, solution: Solution, batch, part) -> np.ndarray | None:
    """The solver's quantities for the window when they cost less than the rules' (whole
    quantities rounded), else None."""
    if solution.x is None:
        return None
    if solution.objective >= warm_objective(model) - 1e-6:
        return None
    x = np.clip(solution.x, 0.0, batch.item_quantity[batch.edge_item[part.edges]])
    whole = np.abs(batch.item_quantity - np.round(batch.item_quantity)) < EPS
    if np.all(whole):
        return np.round(x)
    return np.round(x, 6)


def _money_bound(solution: Solution, prices: Prices, batch, part, filled: float):
    """The solver's bound as a bound on the window's cost, for allocations that fill as much
    as the chosen one (the penalty for the units it leaves open taken off)."""
    if not np.isfinite(solution.bound):
        return None
    lines = np.unique(batch.edge_item[part.edges])
    open_units = float(batch.item_quantity[lines].sum()) - filled
    return max(0.0, solution.bound - prices.penalty * open_units)


def _status(statuses: set[str]) -> str:
    for name in ("error", "infeasible", "time_limit", "work_limit"):
        if name in statuses:
            return name
    return "optimal"


def _placements(batch, x: np.ndarray) -> dict:
    """Unit index -> rule index -> (item state, facility, quantity), in line then facility
    order: what `_route_units` commits for an optimised batch."""
    fixed: dict[int, dict[int, list]] = {}
    for e in np.flatnonzero(x > EPS).tolist():
        k = int(batch.edge_item[e])
        u = int(batch.item_unit[k])
        rule = int(batch.edge_rule[e])
        fixed.setdefault(u, {}).setdefault(rule, []).append(
            (batch.items[k], batch.facilities[int(batch.edge_facility[e])], float(x[e])))
    return fixed
