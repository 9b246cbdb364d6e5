"""The fast engine's driver: a context and an allocator a runtime `Run` composes.

The walk over the plan, run records and the result document are the runtime's own
(runtime.run.Run); the fast engine brings its state (`FastContext`: stock, item and facility
state as numpy arrays with integer ids, built once per run, through the context's indexing
hooks) and its allocator (`FastAllocator`, implementing runtime.protocol.Allocator): unit
selection with array operations and `route_units`, which hands a routing's sorted units to
the compiled loop in `kernel` and turns its output rows back into the result's allocations
and unfillable items:

    Run(plan, snapshot, False, None, context=FastContext, allocator=FastAllocator)
"""

from __future__ import annotations

import functools
import math
from datetime import timedelta
from functools import cached_property

import numpy as np

from ..criteria import REGISTRY
from ..criteria.orders import DEFAULT_SORT
from ..plan import Plan, PlanRouting
from ..runtime import Context, Run, order_predicate, priority_ranks, radians
from ..runtime.rows import ResultRows
from ..runtime.state import ItemState, Unit
from ..runtime.packages import ShippingFacts
from ..shipping import RateModel, iso_day, shares
from ..snapshot import Snapshot
from . import ir, kernel, optimizing
from .columnar import inventory_columns
from .explained import FastExplainer
from .resultcolumns import AllocationColumns, InventoryColumns, RunStrings, UnfillableColumns
from .stockrows import INDEX, pointers, stock_rows


class _NoRates:
    """A snapshot without facilities, products or rate cards: the kernel's empty rates."""

    shipment_methods: list = []
    facilities: list = []
    products: list = []


_NO_RATES = _NoRates()


def run_fast(plan: Plan, snapshot: Snapshot, *, group: str | frozenset[str] | None = None,
             routing: str | None = None, explain: bool = False,
             explain_orders: set[str] | None = None, explain_facilities: set[str] | None = None,
             progress=None) -> dict:
    """Run ``plan`` on ``snapshot`` like `runtime.run_plan`, with the same result, byte for
    byte, explanations and optimised routings (engine.optimizing) included."""
    return Run(plan, snapshot, explain, explain_orders, explain_facilities,
               context=FastContext, allocator=FastAllocator).run(group, routing, progress)


class FastContext(Context):
    """The run's context with the fast engine's state: stock, facilities and order lines as
    arrays (runtime.state.Context's indexing hooks), the reference's item states made only
    if a reference-only filter asks (`items`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.live is None:  # from_live keeps only these already
            self._keep_ordered_rows()

    def _keep_ordered_rows(self) -> None:
        """Only the stock rows of the products the orders order and of their styles'
        variants: all a run reads or changes (the velocity rows are kept whole). At a million
        orders they are 85% of the rows; a run of a few orders keeps a few."""
        counts = self.p_counts
        n = len(counts)
        used = np.zeros(len(self.prod_ids), np.bool_)
        used[self.it_prod] = True
        if self.style:
            ordered = [p for p, u in zip(self.prod_ids, used.tolist(), strict=True) if u]
            for style in {self.style.get(p) for p in ordered} - {None}:
                for variant in self.variants.get(style, ()):
                    code = self.prod_index.get(variant)
                    if code is not None:
                        used[code] = True
        if used[:n].all() or not counts[~used[:n]].any():
            return
        keep = np.repeat(used[:n], counts)
        self.s_row, self.s_fac, self.s_net = self.s_row[keep], self.s_fac[keep], self.s_net[keep]
        self.s_alloc = np.zeros(len(self.s_row))
        self.p_counts = np.where(used[:n], counts, 0)
        self.p_ptr = pointers(self.p_counts, len(self.prod_ids))

    def index_inventory(self, snapshot: Snapshot) -> None:
        columns = inventory_columns(snapshot)
        self.stock = self.atp = self.velocity = None  # the reference's dictionaries: not built
        self.fac_ids = sorted(self.facilities)  # index order is id order: ranking ties on it
        self.fac_index = {f: k for k, f in enumerate(self.fac_ids)}
        infos = [self.facilities[f] for f in self.fac_ids]
        self.prod_ids = sorted(columns.product_ids)
        self.prod_index = {p: k for k, p in enumerate(self.prod_ids)}
        virtual = np.array([info.virtual for info in infos] or [False], np.bool_)
        found = stock_rows(columns, self.fac_index, self.prod_index, virtual)
        self.s_row, self.s_fac, self.p_counts = found.rows, found.fac, found.counts
        self.s_net = columns.atp[found.rows]
        self.s_net -= columns.minimum_stock[found.rows]
        self.s_alloc = np.zeros(len(found.rows))
        self.atp_column = columns.atp  # the snapshot's own: read at the changed rows at the end
        self._velocity = found.v_fac, found.v_counts, found.v_val
        points = [radians(info.lat, info.lon) for info in infos]
        self.f_has = np.array([r is not None for r in points], np.bool_)
        self.f_phi, self.f_lam, self.f_cos = (
            np.array([r[k] if r else 0.0 for r in points], np.float64) for k in range(3))
        self.f_limit = np.array([-1 if i.limit is None else i.limit for i in infos], np.int64)
        self.orders_today_array = np.array(
            [self.orders_today.get(f, 0) for f in self.fac_ids], np.int64)

    def from_live(self, live) -> None:
        """Stock and counts from a live state's arrays (engine.live.LiveArrays), the rows of
        the orders' products and their styles' variants only (all a run may look at or
        change), as index_inventory makes them from a snapshot; facilities' points and
        limits are shared (nothing changes them), the daily counts copied."""
        self.stock = self.atp = self.velocity = None  # the reference's dictionaries: not built
        self.fac_ids, self.fac_index = live.fac_ids, live.fac_index
        codes = sorted(live.prod_index[p] for p in self.live_products() if p in live.prod_index)
        self.prod_ids = [live.prod_ids[c] for c in codes]  # index order is still id order
        self.prod_index = {p: k for k, p in enumerate(self.prod_ids)}
        rows, counts = _slices(live.p_ptr, codes)
        self.s_row = np.arange(len(rows), dtype=INDEX)
        self.s_fac = live.s_fac[rows]
        self.s_net = live.s_net[rows]
        self.s_alloc = np.zeros(len(rows))
        self.atp_column = live.s_atp[rows]
        velocity, per_product = _slices(live.v_ptr, codes)
        self._velocity = live.v_fac[velocity], per_product, live.v_val[velocity]
        self.p_counts = counts
        self.f_has, self.f_phi, self.f_lam, self.f_cos, self.f_limit = (
            live.f_has, live.f_phi, live.f_lam, live.f_cos, live.f_limit)
        self.orders_today = dict(live.orders_today)
        self.orders_today_array = live.orders.copy()

    def index_items(self, snapshot: Snapshot, products: dict) -> None:
        """Order lines straight into arrays, in one pass and without per-line objects (the
        reference's item states are made only if a reference-only filter asks: `items`)."""
        self._products = products
        prod_index, fac_index = self.prod_index, self.fac_index
        stores: dict[str, int] = {}
        groups: dict[str, int] = {}
        lines, ship_groups, orders = [], [], []
        # per ship group (spread over its lines below)
        per_group, sg_store, sg_queue, sg_ready, sg_lat, sg_lon = [], [], [], [], [], []
        sg_method, sg_channel, sg_priority, sg_order_id, sg_id = [], [], [], [], []
        methods: dict[str, int] = {}
        channels: dict[str, int] = {}
        priorities: dict[str, int] = {}
        # per line; item groups, exclusions and rejections (rare) only where there are
        prod, open_, status, price, adj, qty = [], [], [], [], [], []
        item_ids, product_ids, auto_cancel = [], [], []
        grouped, excl_sizes, excl, rej_sizes, rej_fac, rej_day = {}, {}, [], {}, [], []
        sg_keys: dict[tuple[str, str], int] = {}
        sg_key = []
        zone = self.zone
        # order_lines' order, as loops rather than its generator (a tuple per line)
        for order in sorted(snapshot.orders, key=_by_id):
            store_code = None  # the order's codes, at its first ship group with lines
            in_order = order.ship_groups
            for ship_group in sorted(in_order, key=_by_id) if len(in_order) > 1 else in_order:
                items = ship_group.items
                if not items:  # no line: not one of the run's ship groups
                    continue
                if len(items) > 1:
                    items = sorted(items, key=_by_id)
                if store_code is None:
                    store_code = stores.setdefault(order.product_store, len(stores))
                    order_ready = order.status == "APPROVED"
                    channel, priority = order.sales_channel, order.priority
                    channel = -1 if channel is None else channels.setdefault(channel,
                                                                             len(channels))
                    priority = -1 if priority is None else priorities.setdefault(
                        priority, len(priorities))
                ship_groups.append(ship_group)
                orders.append(order)
                sg_store.append(store_code)
                sg_ready.append(order_ready)
                # a ship group split by queue is one ship group to max_facilities
                sg_key.append(sg_keys.setdefault((order.id, ship_group.id), len(sg_keys)))
                sg_queue.append(fac_index[ship_group.facility])
                sg_channel.append(channel)
                sg_priority.append(priority)
                method = ship_group.shipment_method
                sg_method.append(-1 if method is None else methods.setdefault(method,
                                                                             len(methods)))
                sg_order_id.append(order.id)
                sg_id.append(ship_group.id)
                place = ship_group.ship_to
                if place is None:
                    sg_lat.append(None)
                    sg_lon.append(None)
                else:
                    sg_lat.append(place.lat)
                    sg_lon.append(place.lon)
                per_group.append(len(items))
                for item in items:
                    product_id = item.product
                    product = prod_index.get(product_id)
                    if product is None:  # ordered but never stocked: an id with no rows
                        product = prod_index[product_id] = len(self.prod_ids)
                        self.prod_ids.append(product_id)
                    prod.append(product)
                    product_ids.append(product_id)
                    item_ids.append(item.id)
                    auto_cancel.append(item.auto_cancel_date)
                    open_.append(item.quantity - item.cancel_quantity)
                    status.append(item.status)
                    price.append(item.unit_price)
                    adj.append(item.adjustments)
                    qty.append(item.quantity)
                    if item.item_group is not None:
                        grouped[len(lines)] = groups.setdefault(item.item_group, len(groups))
                    if item.excluded_facilities:
                        size = len(excl)
                        excl.extend(fac_index[f] for f in item.excluded_facilities
                                    if f in fac_index)
                        excl_sizes[len(lines)] = len(excl) - size
                    if item.rejections:  # facilities not in the snapshot never match
                        for rejection in item.rejections:
                            rej_fac.append(fac_index.get(rejection.facility, -1))
                            rej_day.append(rejection.at.astimezone(zone).date().toordinal())
                        rej_sizes[len(lines)] = len(item.rejections)
                    lines.append(item)
        self.lines, self.ship_groups, self.orders = lines, ship_groups, orders
        n = len(lines)
        sg_of = np.repeat(np.arange(len(ship_groups), dtype=np.int64),
                          np.array(per_group, np.int64))
        counts = np.zeros(len(self.prod_ids), np.int64)
        counts[:len(self.p_counts)] = self.p_counts
        self.p_ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.it_prod = np.array(prod, np.int64)
        self.it_open = np.array(open_, np.float64)
        self.it_queue = np.array(sg_queue, np.int64)[sg_of]
        self.it_group = _sparse(grouped, n, -1)
        self.it_store = np.array(sg_store, np.int64)[sg_of]
        approved = ["APPROVED"] * n
        self.it_ready = np.array(sg_ready, np.bool_)[sg_of] & (
            np.ones(n, np.bool_) if status == approved else
            np.array([s == "APPROVED" for s in status], np.bool_))
        self.it_price = np.array(price, np.float64)
        self.it_adj = np.array(adj, np.float64)
        self.it_qty = np.array(qty, np.float64)
        self.it_sg = sg_of
        self.it_excl_ptr = np.concatenate(([0], np.cumsum(_sparse(excl_sizes, n, 0))))
        self.it_excl = np.array(excl or [0], np.int64)
        # the items' rejections: rows it_rej_ptr[i]:it_rej_ptr[i + 1], by facility and local
        # day (criteria.lifecycle)
        self.it_rej_ptr = np.concatenate(([0], np.cumsum(_sparse(rej_sizes, n, 0))))
        self.it_rej_fac = np.array(rej_fac or [-1], np.int64)
        self.it_rej_day = np.array(rej_day or [0], np.int64)
        self.sg_key = np.array(sg_key or [0], np.int64)
        self.n_sg_keys = max(1, len(sg_keys))
        self.it_ac = np.full(n, kernel.AC_UNCHANGED, np.int64)
        self.it_auto_cancel = auto_cancel
        self.store_index = stores
        self.sg_has, self.sg_phi, self.sg_lam, self.sg_cos = _targets(sg_lat, sg_lon)
        self.sg_method, self.method_codes = np.array(sg_method, np.int64), methods
        self.sg_channel, self.channel_codes = np.array(sg_channel, np.int64), channels
        self.sg_priority, self.priority_codes = np.array(sg_priority, np.int64), priorities
        # the strings a result row needs, per item
        self.it_order_id = _spread(sg_order_id, sg_of)
        self.it_sg_id = _spread(sg_id, sg_of)
        self.it_item_id = item_ids
        self.it_product_id = product_ids
        self.brokered = np.zeros(n, np.bool_)
        self.fac_warn = np.zeros(len(self.fac_ids), np.bool_)

    # what only some routings need, made when first asked for
    @cached_property
    def items(self) -> list[ItemState]:
        info_cache: dict[str, tuple] = {}
        states = []
        for k, item in enumerate(self.lines):
            info = info_cache.get(item.product)
            if info is None:
                product = self._products.get(item.product)
                info = info_cache[item.product] = (
                    frozenset(product.categories) if product else frozenset(),
                    product.parent if product else None)
            sg = self.it_sg[k]
            states.append(ItemState(self.orders[sg], self.ship_groups[sg], item, info))
        return states

    @cached_property
    def sg_order_date(self) -> np.ndarray:
        return _timestamps(o.order_date for o in self.orders)

    @cached_property
    def sg_delivery(self) -> np.ndarray:
        days = self.delivery_days
        return np.array([_nan(days.get((g.shipment_method, g.carrier),
                                       days.get((g.shipment_method, None))))
                         for g in self.ship_groups], np.float64)

    # shipping: only when a rule needs zones, costs or delivery dates
    @cached_property
    def sg_card(self) -> np.ndarray:
        return np.array([self.rates.card(g.shipment_method, g.carrier)
                         for g in self.ship_groups] or [-1], np.int64)

    @cached_property
    def sg_dest(self) -> np.ndarray:
        return np.array([-1 if c < 0 else self.rates.destination(c, g.ship_to)
                         for g, c in zip(self.ship_groups, self.sg_card.tolist(), strict=False)]
                        or [-1], np.int64)

    @cached_property
    def it_promise(self) -> np.ndarray:
        return np.array([self.rates.promised(item.promised_date) for item in self.lines]
                        or [0], np.int64)

    @cached_property
    def sort_tables(self) -> ir.SortTables:
        """Velocity by product and facility, and the styles' variants (ir.SortTables)."""
        v_fac, v_counts, v_val = self._velocity
        n_prod = len(self.prod_ids)
        # the styles of the run's products (a live state's run holds a few of them)
        styles = sorted({self.style.get(p) for p in self.prod_ids} - {None})
        style_code = {s: k for k, s in enumerate(styles)}
        style_of = np.array([style_code.get(self.style.get(p), -1) for p in self.prod_ids]
                            or [-1], np.int64)
        members = [[self.prod_index.get(v, -1) for v in self.variants[s]] for s in styles]
        style_ptr = np.concatenate(([0], np.cumsum([len(m) for m in members]))).astype(np.int64)
        known = len(v_fac) > 0
        return ir.SortTables(
            pointers(v_counts, n_prod), v_fac if known else np.zeros(1, INDEX),
            v_val if known else np.zeros(1),
            style_of, style_ptr,
            np.array([v for m in members for v in m] or [-1], np.int64),
            np.array([len(m) for m in members] or [0], np.int64), ir.SORT_EXCLUDES)

    @cached_property
    def rate_tables(self) -> ir.Rates:
        if self.live is not None:  # the cards' tables, built once per load
            return self.live.rate_tables(self.rates, self.prod_ids)
        return ir.rate_tables(self.rates, self.prod_ids)

    @cached_property
    def no_rates(self) -> ir.Rates:
        return _no_rates(self.zone, self.now)

    @cached_property
    def it_ship_before(self) -> np.ndarray:
        return _timestamps(item.ship_before for item in self.lines)

    @cached_property
    def it_ship_after(self) -> np.ndarray:
        return _timestamps(item.ship_after for item in self.lines)


class FastAllocator:
    """The fast engine's allocator (runtime.protocol.Allocator) over a `FastContext`: the
    reference's unit selection and order as array operations, each routing's units through
    the compiled loop (`kernel.route_units`) on the IR's tables (engine.ir), its output rows
    written into the run's records."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.ctx: FastContext = run.ctx
        self.used_table: ir.Used | None = None
        self._line_of: dict[int, int] = {}  # `admitting`'s item states -> item index
        self._packages_per_group = np.zeros(0, np.int64)  # in the routing run being routed
        self.explainer = FastExplainer(self) if run.explain else None
        self._run_strings: RunStrings | None = None
        # new ship groups' next numbers by ship group key (_new_ship_groups), and the keys
        # named by the run's rule instead (None: none)
        self.next_number: np.ndarray | None = None
        self._by_rule: np.ndarray | None = None

    def count_items(self, units: _UnitSet) -> int:
        return len(units.items)

    # ---- what an optimised routing asks (routing_dsl.optimize.run; engine.optimizing) ----
    def save(self, units: _UnitSet) -> optimizing.FastSaved:
        """The state routing ``units`` may change, in the engine's layout (`Run.checkpoint`)."""
        return optimizing.save(self, units)

    def restore(self, saved: optimizing.FastSaved) -> None:
        """Put back what `save` saved."""
        optimizing.restore(self, saved)

    def orders_of(self, units: _UnitSet) -> set[str]:
        """The ids of the orders of ``units``."""
        ids = self.ctx.it_order_id
        return {ids[i] for i in units.items.tolist()}

    def admitting(self, store: str, routing: PlanRouting, units: _UnitSet) -> tuple:
        """The run and units `optimize.candidates.collect` asks what ``routing``'s rules
        admit: the reference engine's view of them on the run's state now, answered by one
        pass of the kernel (engine.optimizing); the states' items are remembered for
        `route_units`' fixed placements."""
        view, found, self._line_of = optimizing.reference_view(
            self, units, routing, self._admitted(store, routing, units))
        return view, found

    def _admitted(self, store: str, routing: PlanRouting,
                  units: _UnitSet) -> tuple[np.ndarray, ...]:
        """What each of ``routing``'s rules admits for ``units`` on the run's state now
        (ir.Fixed.admit): rows of unit, rule, item and facility; nothing changes."""
        if not len(units):
            return tuple(np.zeros(0, np.int64) for _ in range(4))
        lowered, item_table, facilities, stock, rates = self._tables(units)
        # the rules' candidates may mark facilities without coordinates: not the run's warnings
        facilities = facilities._replace(warn=facilities.warn.copy())
        rules, conditions, sorts = self._lowered(routing, store)
        out, _ = self._drive(len(units), (lowered, item_table, facilities, stock),
                             (rules, conditions, sorts, rates),
                             ir.outputs(max(64 * len(units), 1), len(units.items)),
                             ir.no_explain(), ir.no_fixed(admit=True))
        n = int(out.counts[ir.ALLOCATED])
        return out.a_unit[:n], out.a_rule[:n], out.a_item[:n], out.a_fac[:n]

    @cached_property
    def shipping(self) -> ShippingFacts:
        """The packages' shipping facts the optimiser prices its batch by (`admitting`'s
        units)."""
        return ShippingFacts(self.ctx)

    def select_units(self, store: str, routing: PlanRouting) -> _UnitSet:
        """The reference's units, with array operations: eligible (approved items of the
        store's orders with something open, waiting in one of its queues; one unit per item,
        or per ship group and queue in order of first appearance), through the routing's
        filters, in its order."""
        ctx = self.ctx
        code = ctx.store_index.get(store)
        if code is None:
            return _UnitSet.empty()
        static = self.run.prepared.static  # shared by the runs on the same facilities
        queue_ok = static.get(("fast queues", store))
        if queue_ok is None:
            queue_ok = static[("fast queues", store)] = np.array(
                [ctx.facilities[f].virtual and store in ctx.facilities[f].stores
                 for f in ctx.fac_ids], np.bool_)
        found = np.nonzero(ctx.it_ready & (ctx.it_store == code) & (ctx.it_open > kernel.EPS)
                           & queue_ok[ctx.it_queue])[0]
        if routing.item_mode:
            units = _UnitSet(np.arange(len(found) + 1, dtype=np.int64), found)
        else:
            keys = ctx.it_sg[found] * len(ctx.fac_ids) + ctx.it_queue[found]
            _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            rank = np.empty(len(first), np.int64)
            rank[np.argsort(first, kind="stable")] = np.arange(len(first))
            unit_of = rank[inverse.ravel()]
            grouped = found[np.argsort(unit_of, kind="stable")]
            units = _UnitSet(np.concatenate(
                ([0], np.cumsum(np.bincount(unit_of, minlength=len(first))))).astype(np.int64),
                grouped)
        keep = np.ones(len(units), np.bool_)
        heads = units.heads()
        sgs = ctx.it_sg[heads]
        per_unit = []  # filters without columns: their predicate, unit by unit
        for condition in routing.filters:
            criterion = REGISTRY("order_filter")[condition.field]
            if criterion.mask is None:
                per_unit.append(order_predicate(condition, ctx))
            else:
                keep &= criterion.mask(condition, ctx, heads, sgs)
        if per_unit:
            for u in np.nonzero(keep)[0].tolist():
                unit = units.unit(u, ctx)
                keep[u] = all(predicate(unit) for predicate in per_unit)
        units = units.select(np.nonzero(keep)[0])
        return units.select(self._unit_order(routing, units))

    def _unit_order(self, routing: PlanRouting, units: _UnitSet) -> np.ndarray:
        """The reference's unit sort key as columns for one lexsort: per sort a null flag and
        the value, then the first item's position (items are in order, ship group, item id
        order, which is the key's last part)."""
        ctx = self.ctx
        heads = units.heads()
        sgs = ctx.it_sg[heads]
        ranks = priority_ranks(self.run.plan.priority_order)
        sorts = REGISTRY("order_sort")
        columns = []
        for sort in routing.sorts or [None]:
            criterion = sorts[DEFAULT_SORT if sort is None else sort.field]
            values = criterion.column(ctx, units, heads, sgs, ranks)
            null = np.isnan(values)
            nulls_first = sort is not None and sort.nulls_first
            descending = sort is not None and sort.descending
            columns.append(np.where(null, -1 if nulls_first else 1, 0))
            columns.append(np.where(null, 0.0, -values if descending else values))
        columns.append(heads)
        return np.lexsort(columns[::-1])

    def _used(self, grow: bool = False) -> ir.Used:
        """The run's (ship group, facility) pairs in use (ir.Used): kept only when some rule
        of the plan has `max_facilities` (else a table of one slot, which the kernel reads as
        "not kept")."""
        table = self.used_table
        if table is None:
            kept = any(rule.max_facilities is not None for group in self.run.plan.groups
                       for routing in group.routings for rule in routing.rules)
            table = ir.Used(np.full(1 << 12 if kept else 1, -1, np.int64),
                            np.zeros(self.ctx.n_sg_keys, np.int64), np.zeros(1, np.int64))
        elif grow:
            bigger = np.full(2 * len(table.keys), -1, np.int64)
            kernel.rehash(table.keys, bigger)
            table = table._replace(keys=bigger)
        self.used_table = table
        return table

    def _tables(self, units: _UnitSet) -> tuple[ir.Units, ir.Items, ir.Facilities, ir.Stock,
                                                 ir.Rates]:
        """The run's state and one routing run's units as the IR's tables."""
        ctx = self.ctx
        unit_items, unit_ptr = units.items, units.ptr
        heads = ctx.it_sg[unit_items[unit_ptr[:-1]]]
        u_has, u_phi, u_lam, u_cos = ((column[heads] if len(heads) else column[:1])
                                      for column in (ctx.sg_has, ctx.sg_phi, ctx.sg_lam,
                                                     ctx.sg_cos))
        if ctx.rates:  # the snapshot has rate cards: each unit's card and address
            u_card, u_dest, rates = ctx.sg_card[heads], ctx.sg_dest[heads], ctx.rate_tables
        else:
            # each item's promised day all the same: one without passes `delivery_date <=
            # promise_date`, one with fails it (no facility has a zone)
            u_card = u_dest = np.full(max(1, len(heads)), -1, np.int64)
            rates = ctx.no_rates
        lowered_units = ir.Units(
            order=np.arange(len(units), dtype=np.int64), ptr=unit_ptr, items=unit_items,
            has=u_has, phi=u_phi, lam=u_lam, cos=u_cos, card=u_card, dest=u_dest,
            ship_group=ctx.sg_key[heads] if len(heads) else np.zeros(1, np.int64),
            warn=np.zeros(len(units) or 1, np.bool_))
        items = ir.Items(
            prod=ctx.it_prod, open=ctx.it_open, queue=ctx.it_queue, ac=ctx.it_ac,
            group=ctx.it_group, excl_ptr=ctx.it_excl_ptr, excl=ctx.it_excl,
            price=ctx.it_price, adj=ctx.it_adj, qty=ctx.it_qty, promised=ctx.it_promise,
            rej_ptr=ctx.it_rej_ptr, rej_fac=ctx.it_rej_fac, rej_day=ctx.it_rej_day,
            brokered=ctx.brokered)
        facilities = ir.Facilities(ctx.f_has, ctx.f_phi, ctx.f_lam, ctx.f_cos, ctx.f_limit,
                                   ctx.orders_today_array, ctx.fac_warn)
        stock = ir.Stock(ctx.p_ptr, ctx.s_fac, ctx.s_net, ctx.s_alloc)
        return lowered_units, items, facilities, stock, rates

    def route_units(self, group_name: str, store: str, routing: PlanRouting,
                    units: _UnitSet, progress, fixed: dict | None = None) -> int:
        """Route ``units`` through the kernel; with ``fixed`` (unit index -> rule index ->
        placements of `admitting`'s item states, as the reference allocator takes them), the
        rules commit those placements instead of choosing, explaining nothing (the
        optimiser keeps the rules' run's explanations)."""
        ctx = self.ctx
        items = units.items
        run = self.run
        if not len(units):  # filtered out (most routings, for one order): nothing to lower
            run.totals[(group_name, routing.name)].packages += 0  # its totals, all zero
            if progress is not None:
                progress(0)
            return 0
        ctx.it_ac[items] = kernel.AC_UNCHANGED
        ctx.brokered[items] = False
        lowered_rules = self._lowered(routing, store)
        self._packages_per_group = np.zeros(len(ctx.ship_groups), np.int64)
        if fixed is not None:
            self._route(group_name, routing, units, lowered_rules, fixed=optimizing.fixed_table(
                fixed, len(units), len(routing.rules), self._line_of, ctx.fac_index))
        elif self.explainer is not None:
            # the kernel emits what the explanations show as it routes
            explain = self.explainer.tables(store, routing, units)
            explain = self._route(group_name, routing, units, lowered_rules, explain)
            if explain is not None:
                self.explainer.build(store, routing, units, explain)
        else:
            self._route(group_name, routing, units, lowered_rules)
        totals, per_group = run.totals[(group_name, routing.name)], self._packages_per_group
        for group in np.nonzero(per_group > 1)[0].tolist():
            key = (ctx.orders[group].id, ctx.ship_groups[group].id)
            totals.split[key] = totals.split.get(key, 0) + int(per_group[group])
        if progress is not None:
            progress(len(units))
        return int(np.count_nonzero(ctx.brokered[items]))

    def _lowered(self, routing: PlanRouting, store: str) -> tuple[ir.Rules, ir.Conditions,
                                                                   ir.Sorts]:
        """The routing's rules lowered for ``store`` (ir.lower_rules), with the run's sort
        tables; what depends only on the plan, the facilities and the day is kept in the
        run's prepared facts, so the runs of a service on one live state lower it once."""
        ctx = self.ctx
        key = ("fast rules", store, tuple(id(rule) for rule in routing.rules),
               ctx.now.date())
        static = self.run.prepared.static
        known = static.get(key)
        if known is None:
            known = static[key] = ir.lower_rules(routing, store, ctx, ctx.sort_tables)
            return known
        rules, conditions, sorts = known
        return rules, conditions, sorts._replace(tables=ctx.sort_tables)

    def _route(self, group_name: str, routing: PlanRouting, units: _UnitSet,
               lowered_rules: tuple[ir.Rules, ir.Conditions, ir.Sorts],
               explain: ir.Explain | None = None,
               fixed: ir.Fixed | None = None) -> ir.Explain | None:
        """Route ``units`` through the kernel and write its rows into the run's records;
        with ``explain``, the kernel's explanation rows too (returned); with ``fixed``, the
        rules commit its placements."""
        items = units.items
        lowered, item_table, facilities, stock, rates = self._tables(units)
        rules, conditions, sorts = lowered_rules
        # room for the rows of most runs at once (the kernel asks for more when it needs):
        # at most a row per rule and stock row of the items' products, which a small run
        # (a service's decision) gets at once rather than by a second call
        ptr, products = self.ctx.p_ptr, self.ctx.it_prod[items]
        held = int((ptr[products + 1] - ptr[products]).sum())
        out = ir.outputs(max(min(1 << 14, max(64 * len(units), held * len(routing.rules) + 1)),
                             2 * len(items)), len(items))
        out, explaining = self._drive(
            len(units), (lowered, item_table, facilities, stock),
            (rules, conditions, sorts, rates), out,
            explain if explain is not None else ir.no_explain(), fixed)
        self._emit(group_name, routing, units, out, lowered.warn, items)
        return None if explain is None else explaining

    def _drive(self, n_units: int, data: tuple, lowered: tuple, out: ir.Outputs,
               explaining: ir.Explain, fixed: ir.Fixed | None) -> tuple[ir.Outputs, ir.Explain]:
        """Call the kernel until it has routed all ``n_units`` units, growing what it says is
        too small for the next unit: the table of pairs in use, the explanation rows or the
        output rows. ``data``: the IR's units, items, facilities and stock; ``lowered``: the
        rules, conditions, sorts and rates. Returns the output and explanation rows."""
        units, items, facilities, stock = data
        rules, conditions, sorts, rates = lowered
        start = 0
        while True:
            start, needed = kernel.route_units(start, units, items, facilities, stock, rules,
                                               conditions, sorts, rates, self._used(), out,
                                               explaining, fixed)
            if start >= n_units:
                return out, explaining
            if out.counts[ir.USED_FULL]:  # the table of pairs in use is too full for the next unit
                out.counts[ir.USED_FULL] = 0
                self._used(grow=True)
            elif explaining.counts[ir.EXPLAIN_FULL]:
                explaining = ir.explain_grown(explaining, int(needed))
                explaining.counts[ir.EXPLAIN_FULL] = 0
            else:
                out = ir.grown(out, int(out.counts[ir.ALLOCATED]) + int(needed))

    def _emit(self, group_name: str, routing: PlanRouting, units: _UnitSet, out: ir.Outputs,
              unit_warn: np.ndarray, items: np.ndarray) -> None:
        """The kernel's output rows as the result's allocations and unfillable items: a
        block of columns each (engine.resultcolumns), no dictionary per row."""
        ctx = self.ctx
        fac_ids, rules = ctx.fac_ids, routing.rules
        order_ids, sg_ids = ctx.it_order_id, ctx.it_sg_id
        n_alloc = int(out.counts[ir.ALLOCATED])
        rows = out._replace(**{name: getattr(out, name)[:n_alloc]
                               for name in ir.ALLOCATION_COLUMNS})
        rule_names = [rule.name for rule in rules]
        run = self.run
        used = run.used if self.explainer is not None else None
        shipping = self._shipping_figures(group_name, routing.name, rows)
        # a new ship group per package, numbered in row order at its first row (a_first); the
        # package's other rows (same commit, same facility, same ship group) carry its number
        heads = np.nonzero(rows.a_new)[0]
        numbers = self._new_ship_groups(rows.a_item[heads])
        if used is not None:  # what an explanation of `max_facilities` shows, in order
            for i, f in zip(rows.a_item[heads].tolist(), rows.a_fac[heads].tolist(),
                            strict=True):
                shipping_from = used[(order_ids[i], sg_ids[i])]
                if fac_ids[f] not in shipping_from:
                    shipping_from.append(fac_ids[f])
        package = np.zeros(n_alloc, np.int64)
        package[heads] = np.arange(len(heads))
        strings = self._strings()
        run.allocations.add_columns(AllocationColumns(
            strings, rows.a_item.copy(), rows.a_fac.copy(), rows.a_qty.copy(),
            numbers[package[rows.a_first]] if n_alloc else numbers, group_name,
            routing.name, rows.a_rule.copy(), rule_names,
            [rule.distance_unit for rule in rules], rows.a_dist.copy(), shipping))
        n_left = int(out.counts[ir.LEFT_OPEN])
        x_item = out.x_item[:n_left].copy()
        run.unfillable.add_columns(UnfillableColumns(
            strings, x_item, out.x_open[:n_left].copy(), routing.name,
            out.x_rule[:n_left].copy(), rule_names, out.x_action[:n_left].copy(),
            kernel.ACTIONS, ctx.it_queue[x_item], _auto_cancel_dates(x_item, ctx)))
        # open quantities and queues live in the arrays, auto-cancel dates in a list
        for i in items[ctx.it_ac[items] != kernel.AC_UNCHANGED].tolist():
            ctx.it_auto_cancel[i] = _auto_cancel_value(ctx.it_auto_cancel[i], int(ctx.it_ac[i]),
                                                       ctx)
        for u in np.nonzero(unit_warn[:len(units)])[0].tolist():
            head = units.items[units.ptr[u]]
            run.warn_ship_to(order_ids[head], sg_ids[head])
        for f in np.nonzero(ctx.fac_warn)[0].tolist():
            run.warn_facility(fac_ids[f])
        # a count changes only where a package opens: at the facilities of these rows
        counts = ctx.orders_today_array
        for f in np.unique(rows.a_fac).tolist():
            if fac_ids[f] in ctx.orders_today:
                ctx.orders_today[fac_ids[f]] = int(counts[f])

    def _new_ship_groups(self, items: np.ndarray) -> np.ndarray:
        """The numbers of the new ship groups split from the ship groups of ``items`` (one
        each, in order), as `Run.new_ship_group` numbers them (a new id is the ship group's
        id, a dash and the number): the next number of its (order, ship group), from 1. A
        number whose id the order already holds is skipped there; only an order with an id
        that is another of its ids, a dash and more can hold one (generated ids never meet:
        the number follows the last dash), so those orders take the run's own rule and the
        others count in an array."""
        ctx = self.ctx
        if self.next_number is None:
            self.next_number = np.ones(ctx.n_sg_keys, np.int64)
            self._by_rule = _clashing_keys(ctx)
        keys = ctx.sg_key[ctx.it_sg[items]]
        # each key's next number, and one more for each earlier package of the key here
        order = np.argsort(keys, kind="stable")
        ranked = keys[order]
        starts = np.ones(len(keys), np.bool_)
        starts[1:] = ranked[1:] != ranked[:-1]
        first = np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))
        before = np.empty(len(keys), np.int64)
        before[order] = np.arange(len(keys)) - first
        numbers = self.next_number[keys] + before
        self.next_number += np.bincount(keys, minlength=len(self.next_number))
        if self._by_rule is not None:
            for k in np.nonzero(self._by_rule[keys])[0].tolist():
                i = int(items[k])
                numbers[k] = self.run.new_ship_group_number(ctx.it_order_id[i],
                                                            ctx.it_sg_id[i])
        return numbers

    def _strings(self) -> RunStrings:
        """The run's ids by index, shared by its blocks of rows."""
        ctx = self.ctx
        if self._run_strings is None:
            self._run_strings = RunStrings(ctx.it_order_id, ctx.it_sg_id, ctx.it_item_id,
                                           ctx.it_product_id, ctx.fac_ids)
        return self._run_strings

    def _shipping_figures(self, group_name: str, routing_name: str,
                          allocated: ir.Outputs) -> tuple[list, list, list] | None:
        """The routing's packages counted in its totals, and (when the snapshot has rate
        cards) the rows' cost shares, transit days and delivery dates (three columns), as
        ShippingFacts.price makes them: a package's cost in cents (numpy rounds half to even,
        as Python does), shared by weight among its rows."""
        ctx = self.ctx
        a_item, a_new, a_first = allocated.a_item, allocated.a_new, allocated.a_first
        a_cost, a_weight = allocated.a_cost, allocated.a_weight
        a_transit, a_delivery = allocated.a_transit, allocated.a_delivery
        totals = self.run.totals[(group_name, routing_name)]
        heads = np.nonzero(a_new)[0]
        totals.packages += len(heads)
        # counted over the routing run (see route_units): only ship groups in several
        # packages make split orders
        self._packages_per_group += np.bincount(ctx.it_sg[a_item[heads]],
                                                minlength=len(ctx.ship_groups))
        if not ctx.rates:
            return None
        whole = np.rint(a_cost * 100)  # each row's package, in cents (NaN: unknown)
        known = heads[~np.isnan(whole[heads])]
        totals.cents += int(whole[known].sum())
        late = (a_delivery >= 0) & (ctx.it_promise[a_item] < a_delivery)
        totals.late.update(a_item[late].tolist())
        size = np.bincount(a_first, minlength=len(a_first))
        share = np.where(np.isnan(whole), np.nan, whole / 100)
        costs = [None if c != c else c for c in share.tolist()]
        # packages of several rows share their cost: their rows by package, in row order
        rows = np.nonzero(size[a_first] > 1)[0]
        rows = rows[np.argsort(a_first[rows], kind="stable")]
        bounds = np.nonzero(np.diff(a_first[rows]))[0] + 1
        for members in np.split(rows, bounds) if len(rows) else ():
            members = members.tolist()
            weights = [float(a_weight[k]) for k in members]
            for k, cents_ in zip(members, shares(float(a_cost[members[0]]), weights),
                                 strict=True):
                costs[k] = None if cents_ is None else cents_ / 100
        days: dict[int, str | None] = {}
        transits, deliveries = [], []
        for transit, delivery in zip(a_transit.tolist(), a_delivery.tolist(), strict=True):
            if delivery < 0:
                transits.append(None)
                deliveries.append(None)
                continue
            shown = days.get(delivery)
            if shown is None:
                shown = days[delivery] = iso_day(delivery)
            transits.append(transit)
            deliveries.append(shown)
        return costs, transits, deliveries

    def inventory_after(self) -> ResultRows:
        """The stock rows the run took from, by facility then product id, as columns."""
        ctx = self.ctx
        changed = np.nonzero(ctx.s_alloc)[0]
        # each row's product: the one whose rows it is among
        fac, prod = ctx.s_fac[changed], np.searchsorted(ctx.p_ptr, changed, "right") - 1
        # ranks of the ids in string order (the pairs are unique: the ids decide)
        fac_rank, prod_rank = _ranks(ctx.fac_ids), _ranks(ctx.prod_ids)
        by_id = np.lexsort((prod_rank[prod], fac_rank[fac]))
        changed, fac, prod = changed[by_id], fac[by_id], prod[by_id]
        rows = ResultRows()
        rows.add_columns(InventoryColumns(
            ctx.fac_ids, ctx.prod_ids, fac.astype(np.int64), prod,
            ctx.atp_column[ctx.s_row[changed]] - ctx.s_alloc[changed]))
        return rows


class _UnitSet:
    """Units as arrays: unit u is the items items[ptr[u]:ptr[u + 1]] (indexes into the
    context's item list, in item order)."""

    def __init__(self, ptr: np.ndarray, items: np.ndarray):
        self.ptr, self.items = ptr, items

    @classmethod
    def empty(cls) -> _UnitSet:
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def heads(self) -> np.ndarray:
        return self.items[self.ptr[:-1]]

    def select(self, chosen: np.ndarray) -> _UnitSet:
        """The units ``chosen`` (positions), in that order."""
        lengths = np.diff(self.ptr)[chosen]
        ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        moves = np.repeat(self.ptr[:-1][chosen] - ptr[:-1], lengths)
        return _UnitSet(ptr, self.items[moves + np.arange(ptr[-1])])

    def unit(self, u: int, ctx) -> Unit:
        """Unit ``u`` as the runtime's object, for its order predicates (which
        read static fields only: queue comes from the arrays)."""
        positions = self.items[self.ptr[u]:self.ptr[u + 1]].tolist()
        states = [ctx.items[k] for k in positions]
        return Unit(states[0].order, states[0].ship_group,
                     ctx.fac_ids[ctx.it_queue[positions[0]]], states)


def _clashing_keys(ctx: FastContext) -> np.ndarray | None:
    """The ship group keys of the orders where a new ship group's id could be one the order
    already holds: an id that is another of its ids, a dash and more (None: no order)."""
    clashing = set()
    for order in ctx.snapshot.orders:
        if len(order.ship_groups) > 1:
            ids = {g.id for g in order.ship_groups}
            if any(a.startswith(b + "-") for a in ids for b in ids if a != b):
                clashing.add(order.id)
    if not clashing:
        return None
    keys = np.zeros(ctx.n_sg_keys, np.bool_)
    for k, order in enumerate(ctx.orders):
        if order.id in clashing:
            keys[ctx.sg_key[k]] = True
    return keys


@functools.lru_cache(maxsize=8)
def _no_rates(zone, now) -> ir.Rates:
    """The kernel's empty rates (made once per zone and moment: a service asks each time)."""
    return ir.rate_tables(RateModel(_NO_RATES, zone, now, []), [])


def _slices(ptr: np.ndarray, codes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The rows ptr[c]:ptr[c + 1] of each of ``codes``, in that order, and how many each."""
    starts, ends = ptr[codes], ptr[np.asarray(codes, np.int64) + 1]
    counts = (ends - starts).astype(np.int64)
    rows = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return (rows + np.arange(int(counts.sum()), dtype=np.int64)).astype(np.int64), counts


def _timestamps(values) -> np.ndarray:
    return np.fromiter((math.nan if v is None else v.timestamp() for v in values), np.float64)


def _nan(value) -> float:
    return math.nan if value is None else value


def _ranks(ids: list[str]) -> np.ndarray:
    """Each id's place among ``ids`` sorted."""
    ranks = np.zeros(max(1, len(ids)), np.int64)
    ranks[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return ranks


def _sparse(values: dict[int, int], n: int, default: int) -> np.ndarray:
    """An int64 column of ``n`` values: ``values`` where given, else ``default``."""
    column = np.full(n, default, np.int64)
    if values:
        column[np.fromiter(values.keys(), np.int64, len(values))] = np.fromiter(
            values.values(), np.int64, len(values))
    return column


def _by_id(thing) -> str:
    return thing.id


def _spread(values: list, index: np.ndarray) -> list:
    """``values[i]`` for each i of ``index``."""
    table = np.empty(len(values), dtype=object)
    table[:] = values
    return table[index].tolist()


def _targets(lat: list, lon: list) -> tuple[np.ndarray, ...]:
    """Whether each ship group has a destination, and where (`runtime.radians`: latitude,
    longitude and the cosine of the latitude, in radians; math.radians is a product by
    pi/180, which numpy's product of the same doubles is, bit for bit; the cosine is
    math's)."""
    if None in lat or None in lon:
        known = [a is not None and o is not None for a, o in zip(lat, lon, strict=True)]
        has = np.array(known or [False], np.bool_)
        lat = [a if k else 0.0 for a, k in zip(lat, known, strict=True)]
        lon = [o if k else 0.0 for o, k in zip(lon, known, strict=True)]
    else:
        has = np.ones(max(1, len(lat)), np.bool_)
        has[len(lat):] = False
    phi = np.array(lat or [0.0], np.float64) * _DEGREE
    lam = np.array(lon or [0.0], np.float64) * _DEGREE
    cos = np.array(list(map(math.cos, phi.tolist())), np.float64)
    return has, np.where(has, phi, 0.0), np.where(has, lam, 0.0), np.where(has, cos, 0.0)


_DEGREE = math.pi / 180.0


def _auto_cancel_value(current, code: int, ctx):
    if code == kernel.AC_UNCHANGED:
        return current
    if code == kernel.AC_NONE:
        return None
    return ctx.now + timedelta(days=code)


def _auto_cancel_dates(items: np.ndarray, ctx) -> list[str | None]:
    """Each of ``items``' auto-cancel date as its unfillable record shows it, after its
    routing's actions (kernel.AC_*)."""
    codes = ctx.it_ac[items].tolist()
    later = {code: (ctx.now + timedelta(days=code)).isoformat() for code in set(codes)
             if code >= 0}
    current = ctx.it_auto_cancel
    return [later[code] if code >= 0 else None if code == kernel.AC_NONE
            else None if current[i] is None else current[i].isoformat()
            for i, code in zip(items.tolist(), codes, strict=True)]
