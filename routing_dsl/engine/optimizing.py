"""What an optimised routing (routing_dsl.optimize.run) asks of the fast engine beyond routing.

- `save` and `restore`: the state routing a batch may change, in the fast engine's layout
  (the rows of the batch's products' stock, the daily counts, the items' open quantities,
  queues and auto-cancel dates, the (ship group, facility) pairs in use, the new ship
  groups' next numbers, the facilities warned about), so the rules' run, the look-ahead of
  the later routings and the optimum's commit all run in the kernel.
- `reference_view`: the batch's units and the run as `optimize.candidates.collect` reads
  them, on the fast run's state now (its products' net stock and velocity, the daily counts),
  with what each rule admits for each unit answered by one pass of the kernel
  (ir.Fixed.admit: each rule's candidates, ranking and serve checks, nothing committed), as
  the reference allocator's `admitted` answers it.
- `fixed_table`: the optimum's placements (unit -> rule -> item state, facility, quantity)
  as the kernel's table (ir.Fixed), which its rules commit instead of choosing.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..runtime.packages import ShippingFacts
from ..runtime.state import ItemState, Unit
from . import ir

if TYPE_CHECKING:
    from .fast import FastAllocator


class FastSaved(NamedTuple):
    """The fast engine's state saved (`save`)."""

    stock: dict[str, dict[str, float]]  # the products' net stock (Checkpoint.stock)
    orders_today: dict[str, int]
    rows: np.ndarray  # the products' stock rows, and their net and taken quantities
    net: np.ndarray
    taken: np.ndarray
    counts: np.ndarray  # the daily counts by facility code
    items: np.ndarray  # the units' items, their open quantities, queues, actions
    open: np.ndarray
    queue: np.ndarray
    ac: np.ndarray
    auto_cancel: list
    brokered: np.ndarray
    used: ir.Used | None
    next_number: np.ndarray | None
    fac_warn: np.ndarray


def save(allocator: FastAllocator, units) -> FastSaved:
    """What routing ``units`` (a _UnitSet) may change."""
    ctx = allocator.ctx
    items = units.items.copy()
    products = np.unique(ctx.it_prod[items])
    starts, ends = ctx.p_ptr[products], ctx.p_ptr[products + 1]
    sizes = ends - starts
    rows = (np.repeat(starts - np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes)
            + np.arange(int(sizes.sum()))).astype(np.int64)
    stock: dict[str, dict[str, float]] = {}
    fac_ids, prod_ids = ctx.fac_ids, ctx.prod_ids
    for p, low, high in zip(products.tolist(), starts.tolist(), ends.tolist(), strict=True):
        if high > low:
            stock[prod_ids[p]] = dict(zip([fac_ids[f] for f in ctx.s_fac[low:high].tolist()],
                                          ctx.s_net[low:high].tolist(), strict=True))
    table = allocator.used_table
    return FastSaved(
        stock, dict(ctx.orders_today), rows, ctx.s_net[rows].copy(), ctx.s_alloc[rows].copy(),
        ctx.orders_today_array.copy(), items, ctx.it_open[items].copy(),
        ctx.it_queue[items].copy(), ctx.it_ac[items].copy(),
        [ctx.it_auto_cancel[i] for i in items.tolist()], ctx.brokered[items].copy(),
        None if table is None else ir.Used(*(column.copy() for column in table)),
        None if allocator.next_number is None else allocator.next_number.copy(),
        ctx.fac_warn.copy())


def restore(allocator: FastAllocator, saved: FastSaved) -> None:
    """Put back what `save` saved."""
    ctx = allocator.ctx
    ctx.s_net[saved.rows] = saved.net
    ctx.s_alloc[saved.rows] = saved.taken
    ctx.orders_today = dict(saved.orders_today)
    ctx.orders_today_array[:] = saved.counts
    items = saved.items
    ctx.it_open[items] = saved.open
    ctx.it_queue[items] = saved.queue
    ctx.it_ac[items] = saved.ac
    for i, value in zip(items.tolist(), saved.auto_cancel, strict=True):
        ctx.it_auto_cancel[i] = value
    ctx.brokered[items] = saved.brokered
    ctx.fac_warn[:] = saved.fac_warn
    allocator.used_table = None if saved.used is None else ir.Used(
        *(column.copy() for column in saved.used))
    allocator.next_number = None if saved.next_number is None else saved.next_number.copy()


class _RunView:
    """What `optimize.candidates.collect` reads of a run: its context (the view), the
    facilities each ship group ships from, and an allocator answering `admitted` and
    `shipping` (`_Admitted`)."""

    def __init__(self, ctx, used: dict[tuple[str, str], list[str]], allocator) -> None:
        self.ctx, self.used, self.allocator = ctx, used, allocator


class _Admitted:
    """The reference allocator's answers to `collect`, from the kernel's rows: `admitted`
    (facility -> the unit's open item states it admits, in the reference's order: by rank
    for `assign single`, else by facility id) and the shipping facts."""

    def __init__(self, ctx, answers: dict[tuple[int, int], dict], position: dict[int, int]):
        self.shipping = ShippingFacts(ctx)
        self._answers, self._position = answers, position

    def admitted(self, store: str, prepared, unit: Unit) -> dict[str, list]:
        return self._answers.get((self._position[id(unit)], prepared.index), {})


def reference_view(allocator: FastAllocator, units, routing,
                   rows: tuple[np.ndarray, ...]) -> tuple[_RunView, list[Unit], dict]:
    """``units`` (a _UnitSet) as the reference engine's units on the run's state now, a view
    of the run that answers what ``routing``'s rules admit for them from the kernel's
    ``rows`` (unit, rule, item, facility: ir.Fixed.admit), and each item state's index in
    the run's items."""
    ctx = allocator.ctx
    found, line_of = [], {}
    ptr, positions = units.ptr.tolist(), units.items.tolist()
    open_, queue = ctx.it_open, ctx.it_queue
    for u in range(len(units)):
        states = []
        for k in positions[ptr[u]:ptr[u + 1]]:
            static = ctx.items[k]  # order, ship group, line, product facts: fixed in a run
            state = ItemState(static.order, static.ship_group, static.item,
                              (static.categories, static.style))
            left = float(open_[k])
            if left != state.open:
                state.open = left
            state.queue = ctx.fac_ids[queue[k]]
            state.auto_cancel = ctx.it_auto_cancel[k]
            states.append(state)
            line_of[id(state)] = k
        head = states[0]
        found.append(Unit(head.order, head.ship_group, head.queue, states))
    products = {ctx.it_product_id[k] for k in positions}
    view = _context(ctx, products)
    return (_RunView(view, _used(allocator, found),
                     _Admitted(view, _answers(ctx, routing, {k: s for s, k in zip(
                         (s for unit in found for s in unit.items), positions, strict=True)}, rows),
                               {id(unit): u for u, unit in enumerate(found)})),
            found, line_of)


def _answers(ctx, routing, states: dict[int, ItemState], rows) -> dict[tuple[int, int], dict]:
    """The kernel's admitted rows as `admitted` answers, per (unit, rule) (``states``: the
    item states by item index)."""
    a_unit, a_rule, a_item, a_fac = (column.tolist() for column in rows)
    single = [rule.assign == "single" for rule in routing.rules]
    answers: dict[tuple[int, int], dict] = {}
    for u, r, i, f in zip(a_unit, a_rule, a_item, a_fac, strict=True):
        by_code = answers.get((u, r))
        if by_code is None:
            by_code = answers[(u, r)] = {}
        by_code.setdefault(f, []).append(states[i])
    fac_ids = ctx.fac_ids
    return {key: {fac_ids[f]: found_[f] for f in (found_ if single[key[1]] else sorted(found_))}
            for key, found_ in answers.items()}


def _context(ctx, products: set[str]):
    """The run's context as the reference engine holds it, for ``products`` and their
    styles' variants (all a routing of their units reads)."""
    view = copy.copy(ctx)
    products = set(products)
    for style in {ctx.style.get(p) for p in products} - {None}:
        products.update(ctx.variants.get(style, ()))
    stock: dict[str, dict[str, float]] = defaultdict(dict)
    velocity: dict[tuple[str, str], float] = {}
    fac_ids, tables = ctx.fac_ids, ctx.sort_tables
    for product in sorted(products):
        code = ctx.prod_index.get(product)
        if code is None:
            continue
        low, high = int(ctx.p_ptr[code]), int(ctx.p_ptr[code + 1])
        if high > low:
            stock[product] = dict(zip(
                [fac_ids[f] for f in ctx.s_fac[low:high].tolist()],
                ctx.s_net[low:high].tolist(), strict=True))  # net of what was taken
        if code + 1 < len(tables.v_ptr):
            low, high = int(tables.v_ptr[code]), int(tables.v_ptr[code + 1])
            for f, value in zip(tables.v_fac[low:high].tolist(),
                                tables.v_val[low:high].tolist(), strict=True):
                velocity[(fac_ids[f], product)] = value
    view.stock, view.velocity, view.atp = stock, velocity, {}
    view.orders_today = {f: n for f, n in zip(fac_ids, ctx.orders_today_array.tolist(),
                                              strict=True) if f in ctx.orders_today}
    return view


def _used(allocator: FastAllocator, units: list[Unit]) -> dict[tuple[str, str], list[str]]:
    """The facilities each of ``units``' ship groups ships from in the run so far, in id
    order (what `max_facilities` counts; the kernel keeps them only when some rule has it)."""
    table, ctx = allocator.used_table, allocator.ctx
    if table is None or len(table.keys) <= 1:
        return {}
    n_fac = len(ctx.fac_ids)
    keys = table.keys[table.keys >= 0]
    wanted = {(u.order.id, u.ship_group.id) for u in units}
    name = {}
    for g in range(len(ctx.ship_groups)):
        key = (ctx.orders[g].id, ctx.ship_groups[g].id)
        if key in wanted:
            name[int(ctx.sg_key[g])] = key
    used: dict[tuple[str, str], list[str]] = {}
    for key in np.sort(keys).tolist():
        group = name.get(key // n_fac)
        if group is not None:
            used.setdefault(group, []).append(ctx.fac_ids[key % n_fac])
    return {group: sorted(facilities) for group, facilities in used.items()}


def fixed_table(fixed: dict, n_units: int, n_rules: int, line_of: dict,
                fac_index: dict[str, int]) -> ir.Fixed:
    """``fixed`` (unit index -> rule index -> [(item state, facility, quantity)], as
    optimize.run gives it) as the kernel's table; ``line_of``: each state's item index."""
    sizes = np.zeros(max(1, n_units * n_rules), np.int64)
    item, fac, qty = [], [], []
    for u in sorted(fixed):
        for r in sorted(fixed[u]):
            placements = fixed[u][r]
            sizes[u * n_rules + r] = len(placements)
    for u in sorted(fixed):
        for r in sorted(fixed[u]):
            for state, facility, quantity in fixed[u][r]:
                item.append(line_of[id(state)])
                fac.append(fac_index[facility])
                qty.append(quantity)
    return ir.Fixed(np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
                    np.array(item or [0], np.int64), np.array(fac or [0], np.int64),
                    np.array(qty or [0.0], np.float64), np.zeros(1, np.bool_))
