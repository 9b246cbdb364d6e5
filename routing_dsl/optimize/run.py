"""An optimised routing run, as a run calls it (`runtime.run.Run.routing`, for a routing
with an `optimize` block).

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

from ..runtime.state import RunError
from ..scaleout.tasks import map_tasks
from .candidates import add_edges, collect, price
from .model import build, candidates, prices_of
from .report import measure, section, unit_packages
from .solve import Solution, solve, warm_objective
from .windows import cut, windows

EPS = 1e-9
SOLVER_CPU: list[list[float]] = []  # per solve of a batch, each window's solver CPU seconds
# (what `routing bench --scenario optimize` reports; never in a result)
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


def optimise_routing(interp, group_name: str, store: str, routing, units: list,
                     progress) -> int:
    """Route ``units`` (the routing's, in its order) as the `optimize` block says; returns how
    many items got stock, as the allocator's `route_units` does."""
    settings = routing.optimize
    warnings = dict(interp.warnings)
    batch = collect(*interp.allocator.admitting(store, routing, units), store, routing)
    interp.warnings = warnings  # the rules' run below warns about what it looks at
    saved = interp.checkpoint(units)
    first_allocation, first_unfilled = len(interp.allocations), len(interp.unfillable)
    brokered = interp.allocator.route_units(group_name, store, routing, units, progress)
    later = list(getattr(interp, "later", ()))
    rules_total = None  # what this routing's rules and the later routings' rules fill
    later_taken: dict = {}  # (facility, product) -> what the later routings' rules take
    if settings.mode == "apply" and later:
        filled, later_taken = later_filled(interp, later)
        rules_total = _filled(interp, first_allocation) + filled
    rules_x, rules_packages, deciding, rules_rows = _rules_allocation(
        interp, batch, routing, interp.allocations[first_allocation:],
        interp.unfillable[first_unfilled:], saved)
    pair_of = {(u, f): p for p, (u, f) in enumerate(zip(batch.package_unit.tolist(),
                                                        batch.package_facility.tolist(),
                                                        strict=True))}
    rates = interp.ctx.rates
    rules_placements = [(k, f, q, r) for u, f, r, content in rules_packages
                        for k, q in sorted(content.items())]
    rules = measure(rates, batch, pair_of, rules_placements, settings.split_cost,
                    settings.late_cost)
    found = _optimum(interp, batch, settings, pair_of, rules_x, rules_packages,
                     rules_placements, rules)
    explained = interp.explanations[saved.explanations:]  # the rules' run, explained
    mode = settings.mode

    def applied(found) -> float:
        """Commit ``found``'s placements; how many fewer units the run would then fill than
        after the rules' decisions (0 when no later routing run)."""
        nonlocal brokered
        interp.restore(saved)
        brokered = interp.allocator.route_units(group_name, store, routing, units, None,
                                                _fixed(batch, found[0], rules_rows, found[2]))
        interp.explanations[saved.explanations:] = explained
        if rules_total is None:
            return 0.0
        return rules_total - _filled(interp, saved.allocations) - later_filled(interp, later)[0]

    if mode == "apply" and np.any(found[2]):
        short = applied(found)
        if short > EPS:
            # the optimum takes stock the later routings' rules fill more units with: solve
            # again leaving them what they took after the rules' decisions
            reserved = {key: max(0.0, quantity - later_taken.get(
                (batch.facilities[key[0]], batch.products[key[1]]), 0.0))
                for key, quantity in batch.stock.items()}
            full, batch.stock = batch.stock, reserved
            again = _optimum(interp, batch, settings, pair_of, rules_x, rules_packages,
                             rules_placements, rules)
            batch.stock = full
            if np.any(again[2]):  # else the rules' decisions stand (below)
                short, found = applied(again), again
        if short > EPS:
            # still short: the rules' decisions stand, as in `report` mode, and the result
            # says why
            interp.restore(saved)
            brokered = interp.allocator.route_units(group_name, store, routing, units, None)
            interp.explanations[saved.explanations:] = explained
            mode = "report"
            interp.warnings[f"optimize:{group_name}:{routing.name}"] = (
                f"group {group_name!r} routing {routing.name!r}: the optimum was not applied: "
                f"with it, the routings after this one would fill {_count(short)} fewer "
                "units than after the rules' decisions (an optimum never fills fewer units "
                "than the rules)")
    placements, optimum, differs, bound, statuses, n_parts, nodes, iterations, pruned = found
    if interp.explain:
        _explain(interp, batch, pair_of, routing, mode, explained, rules_placements,
                 placements, rules, optimum)
    interp.optimizations.append(section(
        group_name, routing.name, mode, _status(statuses), n_parts,
        {"nodes": nodes, "simplex_iterations": iterations, "pruned_pairs": pruned},
        rules, optimum, bound, batch,
        differs, deciding, routing.item_mode))
    found = getattr(interp, "optimized", None)
    if found is None:
        found = interp.optimized = {}
    found[(group_name, routing.name)] = (batch, pair_of, rules_placements, placements, rules,
                                         optimum)
    return brokered


def _optimum(interp, batch, settings, pair_of, rules_x, rules_packages, rules_placements,
             rules) -> tuple:
    """The batch's windows solved: placements (line, facility, quantity, rule), their figures,
    the units they change, the bound, the statuses, windows, nodes, iterations and the
    (line, facility) pairs left out of the programs."""
    rates = interp.ctx.rates
    units = batch.units
    parts = windows(batch, cut(batch, settings.window), rules_x, rules_packages)
    unit_window = np.zeros(len(units), np.int64)
    for part in parts:
        unit_window[part.units] = part.index
    tasks, chosen_from, pruned = [], [], 0
    for part in parts:
        mine = [p for p in rules_packages if unit_window[p[0]] == part.index]
        packages, warm = candidates(batch, part.units, rates, pair_of, mine,
                                    settings.facilities_per_line, part.stock,
                                    settings.late_cost)
        pruned += packages.pruned
        prices = prices_of(settings, packages)
        model = build(batch, part, prices, packages, warm)
        tasks.append((model, settings.work_limit, settings.time_limit))
        chosen_from.append((packages, prices, model, warm))
    executor, jobs = _EXECUTION.get()
    solutions = map_tasks(solve, tasks, executor=executor, jobs=jobs)
    placements, bound, statuses, nodes, iterations = [], 0.0, set(), 0, 0
    SOLVER_CPU.append([s.cpu_s for s in solutions])
    for (packages, prices, model, warm), solution in zip(chosen_from, solutions, strict=True):
        statuses.add(solution.status)
        nodes += solution.nodes
        iterations += solution.iterations
        columns = _choose(model, solution, warm)
        for j in columns:
            rule = int(packages.rule[j])
            for i in range(packages.start[j], packages.start[j + 1]):
                placements.append((int(packages.line[i]), int(packages.facility[j]),
                                   float(packages.quantity[i]), rule))
        filled = float(sum(packages.quantity[packages.start[j]:packages.start[j + 1]].sum()
                           for j in columns))
        window_bound = _money_bound(solution, prices, model, filled)
        bound = None if bound is None or window_bound is None else bound + window_bound
    optimum = measure(rates, batch, pair_of, placements, settings.split_cost,
                      settings.late_cost)
    if optimum.cost > rules.cost + EPS and optimum.unfilled_units >= rules.unfilled_units - EPS:
        placements, optimum = rules_placements, rules  # never worse than the rules
    differs = _differs(batch, rules_placements, placements)
    return (placements, optimum, differs, bound, statuses, len(parts), nodes, iterations,
            pruned)


def later_filled(interp, later: list[tuple]) -> tuple[float, dict]:
    """The units the rules of the routing runs ``later`` (group, store, routing) fill from the
    run's current state, and what they take per (facility, product); the state is put back
    after."""
    saved, first = [], len(interp.allocations)
    for group_name, store, routing in later:
        try:
            interp.validate_routing(routing, store)
        except RunError:
            continue  # it records its error and routes nothing
        units = interp.allocator.select_units(store, routing)
        saved.append(interp.checkpoint(units))
        interp.allocator.route_units(group_name, store, routing, units, None)
    filled = _filled(interp, first)
    taken: dict[tuple[str, str], float] = {}
    for row in interp.allocations[first:]:
        key = (row["facility"], row["product"])
        taken[key] = taken.get(key, 0.0) + float(row["quantity"])
    for state in reversed(saved):
        interp.restore(state)
    return filled, taken


def _filled(interp, first: int) -> float:
    # one field of the rows (the fast engine's are columns: no dictionary per row)
    return float(sum(interp.allocations.field("quantity")[first:]))


def _count(quantity: float) -> str:
    return f"{quantity:g}"


def _explain(interp, batch, pair_of, routing, mode, explained, rules_placements, placements,
             rules, optimum) -> None:
    """Each explained unit of the routing: the rules' packages and the optimum's, with their
    costs (`routing explain --order`)."""
    unit_of = {}
    for u, unit in enumerate(batch.units):
        key = (unit.order.id, unit.ship_group.id,
               unit.items[0].item.id if routing.item_mode else None)
        unit_of[key] = u
    names = [rule.name for rule in routing.rules]
    rates = interp.ctx.rates
    for entry in explained:
        u = unit_of.get((entry["order"], entry["ship_group"], entry.get("item")))
        if u is None:
            continue
        entry["optimization"] = {
            "mode": mode,
            "rules_cost": round(float(rules.unit_cost[u]), 2),
            "optimized_cost": round(float(optimum.unit_cost[u]), 2),
            "rules": unit_packages(rates, batch, pair_of, rules_placements, u, names),
            "optimized": unit_packages(rates, batch, pair_of, placements, u, names)}


def _rules_allocation(interp, batch, routing, rows, unfilled_rows, saved):
    """The rules' quantity per edge, their packages (unit, facility, rule, {line: quantity})
    and the rule that decided each unit."""
    line_of = {(s.order.id, s.ship_group.id, s.item.id): k for k, s in enumerate(batch.items)}
    facility_of = {name: f for f, name in enumerate(batch.facilities)}
    rule_index = {rule.name: r for r, rule in enumerate(routing.rules)}
    n_units = len(batch.unit_first_item) - 1
    deciding: list[str | None] = [None] * n_units
    placed, extra, in_order = [], [], []
    packages: dict[str, list] = {}  # new ship group -> unit, facility, rule, lines
    for row in rows:
        k = line_of[(row["order"], row["ship_group"], row["item"])]
        f = facility_of.get(row["facility"])
        if f is None:
            f = _add_facility(interp, batch, row["facility"], saved)
            facility_of[row["facility"]] = f
        r = rule_index[row["rule"]]
        u = int(batch.item_unit[k])
        extra.append((k, f))
        placed.append((k, f, float(row["quantity"])))
        in_order.append((k, f, float(row["quantity"]), r))
        package = packages.setdefault((row["order"], row["new_ship_group"]), [u, f, r, {}])
        package[3][k] = package[3].get(k, 0.0) + float(row["quantity"])
        if deciding[u] is None:
            deciding[u] = row["rule"]
    for row in unfilled_rows:
        k = line_of.get((row["order"], row["ship_group"], row["item"]))
        if k is not None and deciding[int(batch.item_unit[k])] is None:
            deciding[int(batch.item_unit[k])] = row["rule"]
    add_edges(batch, extra)
    stock_at_start = saved.stock
    for k, f in zip(batch.edge_item.tolist(), batch.edge_facility.tolist(), strict=True):
        key = (f, int(batch.item_product[k]))
        if key not in batch.stock:
            batch.stock[key] = stock_at_start.get(batch.products[key[1]], {}).get(
                batch.facilities[f], 0.0)
    price(interp, batch)
    edge_of = {(k, f): e for e, (k, f) in enumerate(zip(batch.edge_item.tolist(),
                                                       batch.edge_facility.tolist(),
                                                       strict=True))}
    x = np.zeros(len(batch.edge_item))
    for k, f, quantity in placed:
        x[edge_of[(k, f)]] += quantity
    return x, [tuple(p) for p in packages.values()], deciding, in_order


def _add_facility(interp, batch, name: str, saved) -> int:
    """A facility only the rules' run used (see `candidates.add_edges`)."""
    limit = interp.ctx.facilities[name].limit
    orders_today = saved.orders_today
    batch.facilities.append(name)
    batch.facility_room = np.r_[batch.facility_room,
                                np.inf if limit is None else max(0, limit - orders_today[name])]
    rates = interp.ctx.rates
    batch.facility_rate_index = np.r_[batch.facility_rate_index,
                                      rates.facility_index.get(name, -1) if rates else -1]
    return len(batch.facilities) - 1


def _choose(model, solution: Solution, warm: list[int]) -> list[int]:
    """The packages the window ships: the solver's when they cost less than the rules'."""
    if solution.x is not None and solution.objective < warm_objective(model) - 1e-6:
        return np.flatnonzero(solution.x > 0.5).tolist()
    return sorted(set(warm))


def _money_bound(solution: Solution, prices, model, filled: float):
    """The solver's bound as a bound on the window's cost, for allocations that fill as much
    as the chosen one (the penalty for the units it leaves open taken off)."""
    if not np.isfinite(solution.bound):
        return None
    open_units = model.offset / prices.penalty - filled if prices.penalty else 0.0
    return max(0.0, solution.bound - prices.penalty * open_units)


def _status(statuses: set[str]) -> str:
    for name in ("error", "infeasible", "time_limit", "work_limit"):
        if name in statuses:
            return name
    return "optimal"


def _differs(batch, first: list[tuple], second: list[tuple]) -> np.ndarray:
    """Units whose placements (line, facility, quantity, rule) differ."""
    def by_unit(placements):
        found: dict[int, list] = {}
        for k, f, q, r in placements:
            found.setdefault(int(batch.item_unit[k]), []).append((k, f, round(q, 6), r))
        return {u: sorted(p) for u, p in found.items()}
    a, b = by_unit(first), by_unit(second)
    differs = np.zeros(len(batch.unit_first_item) - 1, np.bool_)
    for u in set(a) | set(b):
        differs[u] = a.get(u) != b.get(u)
    return differs


def _fixed(batch, placements: list[tuple], rules_rows: list[tuple],
           differs: np.ndarray) -> dict:
    """Unit index -> rule index -> (item state, facility, quantity): what `route_units`
    commits for an optimised batch. A unit the optimum changes in line then facility order;
    one it keeps in the order the rules placed it (``rules_rows``), so that its new ship
    groups and rows are the rules' own."""
    fixed: dict[int, dict[int, list]] = {}
    kept = [p for p in rules_rows if not differs[int(batch.item_unit[p[0]])]]
    changed = sorted(p for p in placements if differs[int(batch.item_unit[p[0]])])
    for k, f, q, r in kept + changed:
        u = int(batch.item_unit[k])
        fixed.setdefault(u, {}).setdefault(r, []).append(
            (batch.items[k], batch.facilities[f], q))
    return fixed
