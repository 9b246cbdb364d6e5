"""Explanations on the fast path: the runtime's `Explainer` on the state the kernel decided
from.

The fast allocator routes a unit to be explained on its own (engine.fast.FastAllocator).
Before the kernel decides it, this module takes the run's state as the reference engine
holds it, for that unit only: its items (open quantities, queues, auto-cancel dates), the
net stock and sales velocity of its products and their styles' variants, the facilities'
daily counts and the facilities its ship group already ships from. On that view the
reference allocator routes the unit with explanations, into records of its own that nothing
keeps but the explanation. After the kernel has decided, its rows for the unit must be the
view's, field for field: the explanation then describes the decision made, and a
disagreement is an engine defect, raised as `ExplanationMismatch`, never a silently wrong
explanation.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import TYPE_CHECKING

from ..plan import PlanRouting
from ..runtime import ReferenceAllocator
from ..runtime.state import ItemState, Unit
from ..shipping import RunTotals

if TYPE_CHECKING:
    from .fast import FastAllocator

# a new ship group's id is the run's to give: the view's are placeholders, not compared
_NOT_COMPARED = ("new_ship_group",)


class ExplanationMismatch(RuntimeError):
    """The kernel decided a unit otherwise than the reference engine on the same state."""


class ReferenceView:
    """What the reference allocator reads and writes of a run while it explains one unit:
    the run's plan, options and cache of prepared facts, its context seen through the view
    (``ctx``), and records of its own."""

    def __init__(self, run, ctx, used: dict[tuple[str, str], list[str]]) -> None:
        self.ctx, self.plan, self.prepared = ctx, run.plan, run.prepared
        self.explain, self.explain_orders = True, None
        self.explain_facilities = run.explain_facilities
        self.explanations: list[dict] = []
        self.allocations: list[dict] = []
        self.unfillable: list[dict] = []
        self.totals: dict = defaultdict(RunTotals)
        self.allocated_atp: dict = defaultdict(float)
        self.used = defaultdict(list, used)

    def new_ship_group(self, order_id: str, ship_group_id: str) -> str:
        return ""

    def warn_facility(self, facility: str) -> None:
        """The kernel warns for the run."""

    def warn_ship_to(self, order: str, ship_group: str) -> None:
        """The kernel warns for the run."""


class FastExplainer:
    """Explains the units a fast run is asked to explain (see the module's docstring)."""

    def __init__(self, allocator: FastAllocator) -> None:
        self.run, self.ctx = allocator.run, allocator.ctx

    def wanted(self, units) -> list[bool]:
        """Which of ``units`` the run explains."""
        orders, ids = self.run.explain_orders, self.ctx.it_order_id
        return [orders is None or ids[head] in orders for head in units.heads().tolist()]

    def before(self, group_name: str, store: str, routing: PlanRouting,
               unit_set) -> ReferenceView:
        """The reference engine's decision and explanation of the one unit of ``unit_set`` on
        the run's state now, before the kernel decides it."""
        ctx = self.ctx
        states = []
        for k in unit_set.items.tolist():
            static = ctx.items[k]  # order, ship group, line, product facts: fixed in a run
            state = ItemState(static.order, static.ship_group, static.item,
                              (static.categories, static.style))
            left = float(ctx.it_open[k])
            if left != state.open:
                state.open = left
            state.queue = ctx.fac_ids[ctx.it_queue[k]]
            state.auto_cancel = ctx.it_auto_cancel[k]
            states.append(state)
        head = states[0]
        unit = Unit(head.order, head.ship_group, head.queue, states)
        key = (head.order.id, head.ship_group.id)
        view = ReferenceView(self.run, self._context(states), {key: list(self.run.used[key])})
        ReferenceAllocator(view).route_units(group_name, store, routing, [unit], None)
        return view

    def after(self, view: ReferenceView, allocations: int, unfillable: int) -> None:
        """Check the kernel's rows for the unit (the run's records from ``allocations`` and
        ``unfillable`` on) against the view's, then keep the explanation."""
        run = self.run
        for mine, theirs, what in ((run.allocations[allocations:], view.allocations,
                                    "allocations"),
                                   (run.unfillable[unfillable:], view.unfillable,
                                    "unfillable items")):
            if _compared(mine) != _compared(theirs):
                raise ExplanationMismatch(
                    f"the fast engine's {what} for order {view.explanations[0]['order']} "
                    f"differ from the reference engine's on the same state: "
                    f"{_difference(_compared(mine), _compared(theirs))}")
        run.explanations.extend(view.explanations)

    def _context(self, states: list[ItemState]):
        """The run's context as the reference engine holds it, for the products of
        ``states`` and their styles' variants (all a unit's routing reads)."""
        ctx = self.ctx
        view = copy.copy(ctx)
        products = {s.product for s in states}
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


def _compared(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in _NOT_COMPARED} for row in rows]


def _difference(mine: list[dict], theirs: list[dict]) -> str:
    """The first row that differs, as the fields that differ (or the row counts)."""
    for k, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        fields = {f: (a.get(f), b.get(f)) for f in a.keys() | b.keys() if a.get(f) != b.get(f)}
        if fields:
            return f"row {k}: " + ", ".join(f"{f} {x!r} != {y!r}" for f, (x, y) in
                                            sorted(fields.items()))
    return f"{len(mine)} rows != {len(theirs)}"
