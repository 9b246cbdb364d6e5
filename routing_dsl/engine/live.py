"""The fast engine on a live state: `LiveArrays`, the service's live stock with the fast
engine's arrays beside it, and `decide`, which runs one decision on the engine the plan and
the request call for.

A service decides order after order against one loaded snapshot (service.state). The
reference engine reads the live stock's dictionaries (runtime.LiveStock); the fast engine
reads arrays: stock rows by product, then facility, the facilities' points, limits and daily
counts, velocity rows by product. `LiveArrays` builds them once per load, next to the
dictionaries, and keeps both current with the same calls (`taken`, `counted`), so a quote
copies only its order's products' rows (engine.fast.FastContext.from_live), never a
snapshot's worth.

Which engine decides is `engine.choose`'s answer, as for `routing run --engine auto`, with
one more reason for the reference engine: a request it decides faster (`SMALL_LINES`), which
`routing bench --service` measures (docs/service.md, "Speed"). Both give the same bytes
(tests/test_service_engines.py).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from ..runtime import LiveStock, Prepared, radians, run_plan
from . import choose
from .stockrows import pointers, stock_rows

if TYPE_CHECKING:
    from ..plan import Plan
    from ..shipping import RateModel
    from ..snapshot import Snapshot
    from .ir import Rates

# Requests of fewer lines than these are decided by the reference engine under `auto`: the
# compiled kernel's fixed cost (its dispatch, the tables of a run) is more than the reference
# engine spends on them. Without explanations the crossing is between 10 and 20 lines;
# explained, between 20 and 30 since the reference engine's explanations examine the
# facilities they only count step by step (4 December: 4.1 against 4.9 ms at 20 lines, 5.6
# against 5.1 ms at 30). Measured with `routing bench --service` (docs/service.md, "Which
# engine decides").
SMALL_LINES = {False: 20, True: 25}  # explain -> lines below which `auto` is reference


class LiveArrays(LiveStock):
    """A `LiveStock` with the fast engine's arrays of the same stock, kept current with it.

    Facilities are coded in id order, products in id order (as engine.fast.FastContext codes
    them); stock rows are brokerable rows at real facilities, by product then facility:
    product p's rows are p_ptr[p]:p_ptr[p + 1] of ``s_fac`` (facility code), ``s_net`` (net
    stock now: the dictionaries' figure, the same float) and ``s_atp`` (ATP now). Velocity
    rows (every row with a velocity) likewise by v_ptr, v_fac, v_val. ``orders`` holds each
    facility's orders today now."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        columns = snapshot.inventory.columns
        infos = sorted(snapshot.facilities, key=lambda f: f.id)
        self.fac_ids = [f.id for f in infos]
        self.fac_index = {f: k for k, f in enumerate(self.fac_ids)}
        self.prod_ids = sorted(columns.product_ids)
        self.prod_index = {p: k for k, p in enumerate(self.prod_ids)}
        virtual = np.array([f.virtual for f in infos] or [False], np.bool_)
        found = stock_rows(columns, self.fac_index, self.prod_index, virtual)
        n_prod = len(self.prod_ids)
        self.p_ptr = pointers(found.counts, n_prod)
        self.s_fac = found.fac
        self.s_net = columns.atp[found.rows] - columns.minimum_stock[found.rows]
        self.s_atp = columns.atp[found.rows]
        self.v_ptr = pointers(found.v_counts, n_prod)
        self.v_fac, self.v_val = found.v_fac, found.v_val
        points = [radians(f.lat, f.lon) for f in infos]
        self.f_has = np.array([r is not None for r in points], np.bool_)
        self.f_phi, self.f_lam, self.f_cos = (
            np.array([r[k] if r else 0.0 for r in points], np.float64) for k in range(3))
        self.f_limit = np.array([-1 if f.max_orders_per_day is None else f.max_orders_per_day
                                 for f in infos], np.int64)
        self.orders = np.array([self.orders_today.get(f, 0) for f in self.fac_ids], np.int64)
        self._rates: dict = {}

    def taken(self, facility: str, product: str, total: float) -> None:
        super().taken(facility, product, total)
        row = self.row(facility, product)
        if row >= 0:
            self.s_atp[row] = self.atp[(facility, product)]
            self.s_net[row] = self.stock[product][facility]

    def counted(self, facility: str, total: int) -> None:
        super().counted(facility, total)
        if facility in self.loaded_orders:
            self.orders[self.fac_index[facility]] = self.orders_today[facility]

    def row(self, facility: str, product: str) -> int:
        """The stock row of ``facility`` and ``product`` (-1: none)."""
        p, f = self.prod_index.get(product), self.fac_index.get(facility)
        if p is None or f is None:
            return -1
        low, high = int(self.p_ptr[p]), int(self.p_ptr[p + 1])
        k = low + int(np.searchsorted(self.s_fac[low:high], f))
        return k if k < high and self.s_fac[k] == f else -1

    def rate_tables(self, model: RateModel, product_ids: list[str]) -> Rates:
        """`ir.rate_tables(model, product_ids)`, the cards' tables (which do not depend on
        the products) built once per rate model."""
        from . import ir
        known = self._rates.get(id(model))
        if known is None or known[0] is not model:
            known = self._rates[id(model)] = (model, ir.rate_tables(model, []))
        tables = known[1]
        pw, pv = ir.product_rate_columns(model, product_ids)
        return tables._replace(pw=pw, pv=pv)


def live_stock(snapshot: Snapshot, arrays: bool) -> LiveStock:
    """The live stock of ``snapshot``: with the fast engine's arrays when ``arrays``."""
    if arrays:
        load_kernel()
        return LiveArrays(snapshot)
    return LiveStock(snapshot)


# The compiled kernel, loaded from numba's cache (or compiled, when the cache misses: after
# an upgrade that skipped `routing warm`, seconds to minutes) by a thread of its own, started
# with the first live state that may use it. Until it is loaded `auto` decides on the
# reference engine (the same bytes), so no request waits for a compile; `--engine fast`
# waits, as asked.
KERNEL_LOADED = threading.Event()
_kernel_loading = threading.Lock()
_kernel_thread: list[threading.Thread] = []


def load_kernel() -> None:
    """Start loading the kernel in the background, once per process."""
    with _kernel_loading:
        if _kernel_thread:
            return

        def load() -> None:
            from .warm import warm
            try:
                warm()
            finally:  # a kernel that failed to build fails the decisions that ask for it
                KERNEL_LOADED.set()
        thread = threading.Thread(target=load, name="kernel", daemon=True)
        _kernel_thread.append(thread)
        thread.start()


def needs_arrays(engine: str) -> bool:
    """Whether a live state deciding under ``engine`` may run the fast engine (and so keeps
    `LiveArrays`)."""
    return engine != "reference"


def engine_for(engine: str, single: Snapshot, explain: bool, live: LiveStock) -> str:
    """The engine that decides ``single`` (one order): `engine.choose`, the
    reference engine for a request it decides faster under `auto` (SMALL_LINES), and for a
    live state without arrays."""
    lines = sum(len(g.items) for o in single.orders for g in o.ship_groups)
    small = lines < SMALL_LINES[bool(explain)]
    chosen = choose(engine, small=small)
    if chosen == "fast" and (not isinstance(live, LiveArrays)
                             or (engine == "auto" and not KERNEL_LOADED.is_set())):
        return "reference"
    return chosen


def decide(plan: Plan, single: Snapshot, *, engine: str, live: LiveStock,
           prepared: Prepared | None, group=None, explain: bool = True,
           explain_orders=None) -> dict:
    """One decision (`run_plan` without the run-wide `inventory_after`), on the live stock,
    by the engine `engine_for` picks: the same result document either way."""
    if engine_for(engine, single, explain, live) == "fast":
        from ..runtime import Run
        from .fast import FastAllocator, FastContext
        return Run(plan, single, explain, explain_orders, None, prepared, live, False,
                   context=FastContext, allocator=FastAllocator).run(group, None, None)
    return run_plan(plan, single, group=group, explain=explain, explain_orders=explain_orders,
                    prepared=prepared, live=live, after=False)
