"""The fast engine's driver: the reference interpreter with its hot loop swapped out.

Eligibility, order filters, the unit order, run records and the result document are the
reference interpreter's own code; what changes is the state (stock, item and facility state
as numpy arrays with integer ids, built once per run) and `_route_units`, which hands a
routing's sorted units to the compiled loop in `kernel` and turns its output rows back into
the result's allocations and unfillable items.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np

from ..interpreter import (_Context, _group_reason, _Interpreter, _number, _prepare_rule,
                           _radians, _Unit)
from ..plan import Plan, PlanRouting
from ..snapshot import Snapshot
from . import kernel
from .columnar import inventory_columns

# Sorts whose keys depend on more than one product's stock per facility: reference only.
REFERENCE_ONLY_SORTS = ("sales_velocity", "broken_style")


class FastUnsupported(Exception):
    """The plan or the options need the reference engine."""


def unsupported_reason(plan: Plan, *, explain: bool = False) -> str | None:
    """Why the fast engine cannot run ``plan`` (None when it can)."""
    if explain:
        return "explanations are produced by the reference engine"
    for group in plan.groups:
        for routing in group.routings:
            for rule in routing.rules:
                for sort in rule.sorts:
                    if sort.field in REFERENCE_ONLY_SORTS:
                        return (f"rule {rule.name!r} sorts by {sort.field}, which only the "
                                "reference engine implements")
    return None


def run_fast(plan: Plan, snapshot: Snapshot, *, group: str | frozenset[str] | None = None,
             routing: str | None = None, progress=None) -> dict:
    """Run ``plan`` on ``snapshot`` like `interpreter.run_plan` (without explanations), with
    the same result, byte for byte. Raises FastUnsupported for plans it cannot run."""
    reason = unsupported_reason(plan)
    if reason:
        raise FastUnsupported(reason)
    return _FastInterpreter(plan, snapshot, False, None).run(group, routing, progress)


class _FastContext(_Context):
    def _index_inventory(self, snapshot: Snapshot) -> None:
        columns = inventory_columns(snapshot)
        self.stock = self.atp = self.velocity = None  # the reference's dictionaries: not built
        self.fac_ids = sorted(self.facilities)  # index order is id order: ranking ties on it
        self.fac_index = {f: k for k, f in enumerate(self.fac_ids)}
        infos = [self.facilities[f] for f in self.fac_ids]
        self.prod_ids = sorted(columns.product_ids)
        self.prod_index = {p: k for k, p in enumerate(self.prod_ids)}
        fac_map = np.array([self.fac_index[f] for f in columns.facility_ids] or [0], np.int64)
        prod_map = np.array([self.prod_index[p] for p in columns.product_ids] or [0], np.int64)
        facility, product = fac_map[columns.facility], prod_map[columns.product]
        virtual = np.array([info.virtual for info in infos], np.bool_)
        rows = np.nonzero(columns.allow_brokering & ~virtual[facility])[0]
        rows = rows[np.lexsort((facility[rows], product[rows]))]
        self.s_row = rows
        self.s_fac = facility[rows]
        self.s_prod = product[rows]
        self.s_net = columns.atp[rows] - columns.minimum_stock[rows]
        self.s_alloc = np.zeros(len(rows))
        self.atp_column = columns.atp
        self.p_counts = np.bincount(self.s_prod, minlength=len(self.prod_ids))
        radians = [_radians(info.lat, info.lon) for info in infos]
        self.f_has = np.array([r is not None for r in radians], np.bool_)
        self.f_phi, self.f_lam, self.f_cos = (
            np.array([r[k] if r else 0.0 for r in radians], np.float64) for k in range(3))
        self.f_limit = np.array([-1 if i.limit is None else i.limit for i in infos], np.int64)
        self.orders_today_array = np.array(
            [self.orders_today.get(f, 0) for f in self.fac_ids], np.int64)

    def __post_init__(self) -> None:
        super().__post_init__()
        items = self.items
        # products ordered but never stocked get ids after the stocked ones (no rows)
        for state in items:
            if state.product not in self.prod_index:
                self.prod_index[state.product] = len(self.prod_ids)
                self.prod_ids.append(state.product)
        counts = np.zeros(len(self.prod_ids), np.int64)
        counts[:len(self.p_counts)] = self.p_counts
        self.p_ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.item_index = {id(state): k for k, state in enumerate(items)}
        n = len(items)
        self.it_prod = np.fromiter((self.prod_index[s.product] for s in items), np.int64, n)
        self.it_open = np.fromiter((s.open for s in items), np.float64, n)
        self.it_queue = np.fromiter((self.fac_index[s.queue] for s in items), np.int64, n)
        self.it_ac = np.full(n, kernel.AC_UNCHANGED, np.int64)
        groups: dict[str, int] = {}
        self.it_group = np.fromiter(
            (-1 if s.item.item_group is None else groups.setdefault(s.item.item_group,
                                                                    len(groups))
             for s in items), np.int64, n)
        excluded = [[self.fac_index[f] for f in s.item.excluded_facilities
                     if f in self.fac_index] for s in items]
        self.it_excl_ptr = np.concatenate(
            ([0], np.cumsum([len(e) for e in excluded]))).astype(np.int64)
        self.it_excl = np.array([f for e in excluded for f in e] or [0], np.int64)
        self.it_price = np.fromiter((s.item.unit_price for s in items), np.float64, n)
        self.it_adj = np.fromiter((s.item.adjustments for s in items), np.float64, n)
        self.it_qty = np.fromiter((s.item.quantity for s in items), np.float64, n)
        self.brokered = np.zeros(n, np.bool_)
        self.fac_warn = np.zeros(len(self.fac_ids), np.bool_)


class _FastInterpreter(_Interpreter):
    context_class = _FastContext

    def _rule_arrays(self, routing: PlanRouting, store: str) -> tuple:
        ctx = self.ctx
        rules = routing.rules
        n_rules, n_fac = len(rules), len(ctx.fac_ids)
        prepared = [_prepare_rule(rule, index) for index, rule in enumerate(rules)]
        width_d = max([len(p.distance) for p in prepared] + [1])
        width_s = max([len(rule.sorts) for rule in rules] + [1])
        dist_op = np.zeros((n_rules, width_d), np.int64)
        dist_km = np.zeros((n_rules, width_d))
        sort_field = np.zeros((n_rules, width_s), np.int64)
        sort_desc = np.zeros((n_rules, width_s), np.bool_)
        sort_nf = np.zeros((n_rules, width_s), np.bool_)
        static = np.zeros((n_rules, n_fac), np.bool_)
        seq = np.full((n_rules, n_fac), np.nan)
        infos = [ctx.facilities[f] for f in ctx.fac_ids]
        serving = [not info.virtual and store in info.stores for info in infos]
        for r, (rule, prep) in enumerate(zip(rules, prepared, strict=True)):
            for k, (_, km, condition) in enumerate(prep.distance):
                dist_op[r, k] = kernel.OPS[condition.op]
                dist_km[r, k] = km
            for k, sort in enumerate(rule.sorts):
                sort_field[r, k] = kernel.SORT_FIELDS[sort.field]
                sort_desc[r, k] = sort.descending
                sort_nf[r, k] = sort.nulls_first
            for f, info in enumerate(infos):
                static[r, f] = serving[f] and _group_reason(prep, info) is None
                numbers = [info.groups[g] for g in prep.include_ids
                           if g in info.groups and info.groups[g] is not None]
                if numbers:
                    seq[r, f] = min(numbers)
        safety = [p.safety for p in prepared]
        actions = [rule.actions for rule in rules]
        return (
            np.array([rule.assign == "single" for rule in rules], np.bool_),
            np.array([rule.ignore_facility_order_limit for rule in rules], np.bool_),
            np.array([rule.keep_item_groups_together for rule in rules], np.bool_),
            np.array([rule.only_if_all_items_available for rule in rules], np.bool_),
            np.array([rule.shipment_threshold or 0.0 for rule in rules], np.float64),
            np.array([p.unit_factor for p in prepared], np.float64),
            np.array([p.uses_distance for p in prepared], np.bool_),
            np.array([rule.distance_unit != "km" for rule in rules], np.bool_),
            np.array([len(p.distance) for p in prepared], np.int64), dist_op, dist_km,
            np.array([s is not None for s in safety], np.bool_),
            np.array([kernel.OPS[s[2].op] if s else 0 for s in safety], np.int64),
            np.array([s[1] if s else 0.0 for s in safety], np.float64),
            np.array([len(rule.sorts) for rule in rules], np.int64), sort_field, sort_desc,
            sort_nf,
            np.array([a.clear_auto_cancel for a in actions], np.bool_),
            np.array([-1 if a.auto_cancel_days is None else a.auto_cancel_days
                      for a in actions], np.int64),
            np.array([-1 if a.move_to_queue is None else ctx.fac_index[a.move_to_queue]
                      for a in actions], np.int64),
            static, seq)

    def _route_units(self, group_name: str, store: str, routing: PlanRouting,
                     units: list[_Unit], progress) -> int:
        ctx = self.ctx
        index = ctx.item_index
        unit_items = np.fromiter((index[id(s)] for u in units for s in u.items), np.int64)
        unit_ptr = np.concatenate(([0], np.cumsum([len(u.items) for u in units]))).astype(
            np.int64)
        targets = [_target(u) for u in units]
        u_has = np.array([t is not None for t in targets] or [False], np.bool_)
        u_phi, u_lam, u_cos = (np.array([t[k] if t else 0.0 for t in targets] or [0.0])
                               for k in range(3))
        items = unit_items
        ctx.it_ac[items] = kernel.AC_UNCHANGED
        ctx.brokered[items] = False
        unit_warn = np.zeros(len(units) or 1, np.bool_)
        capacity = max(1 << 14, 2 * len(items))
        rows = _Rows(capacity, len(items))
        counts = np.zeros(2, np.int64)
        order = np.arange(len(units), dtype=np.int64)
        arrays = self._rule_arrays(routing, store)
        start = 0
        while True:
            start, needed = kernel.route_units(
                start, order, unit_ptr, unit_items, u_has, u_phi, u_lam, u_cos,
                ctx.it_prod, ctx.it_open, ctx.it_queue, ctx.it_ac, ctx.it_group,
                ctx.it_excl_ptr, ctx.it_excl, ctx.it_price, ctx.it_adj, ctx.it_qty,
                ctx.f_has, ctx.f_phi, ctx.f_lam, ctx.f_cos, ctx.f_limit,
                ctx.orders_today_array, ctx.p_ptr, ctx.s_fac, ctx.s_net, ctx.s_alloc,
                *arrays, *rows.allocation_arrays(), *rows.unfillable_arrays(), counts,
                ctx.brokered, ctx.fac_warn, unit_warn)
            if start >= len(units):
                break
            rows.grow(int(counts[0]) + int(needed))
        self._emit(group_name, routing, units, rows, counts, unit_warn)
        if progress is not None:
            progress(len(units))
        return int(np.count_nonzero(ctx.brokered[items]))

    def _emit(self, group_name: str, routing: PlanRouting, units: list[_Unit], rows: _Rows,
              counts: np.ndarray, unit_warn: np.ndarray) -> None:
        """The kernel's output rows as the result's allocations and unfillable items; the
        item states brought up to date for the routings that follow."""
        ctx = self.ctx
        fac_ids, states, rules = ctx.fac_ids, ctx.items, routing.rules
        names: dict[int, str] = {}
        commit = None
        n_alloc = int(counts[0])
        a_unit, a_item, a_fac, a_qty, a_rule, a_dist, a_new = (
            column[:n_alloc].tolist() for column in rows.allocation_arrays())
        append = self.allocations.append
        for k in range(n_alloc):
            unit = units[a_unit[k]]
            state = states[a_item[k]]
            rule = rules[a_rule[k]]
            facility = a_fac[k]
            if commit != (a_unit[k], a_rule[k]):
                commit = (a_unit[k], a_rule[k])
                names = {}
            if a_new[k]:
                names[facility] = self._new_ship_group(unit.order.id, unit.ship_group.id)
            distance = a_dist[k]
            append({
                "order": unit.order.id, "ship_group": unit.ship_group.id,
                "item": state.item.id, "product": state.product,
                "facility": fac_ids[facility], "quantity": _number(a_qty[k]),
                "new_ship_group": names[facility], "group": group_name,
                "routing": routing.name, "rule": rule.name,
                "distance": None if math.isnan(distance) else round(distance, 2),
                "distance_unit": rule.distance_unit,
            })
        unit_of = {}
        for position, unit in enumerate(units):
            for state in unit.items:
                unit_of[id(state)] = position
        n_left = int(counts[1])
        x_item, x_open, x_rule, x_action = (
            column[:n_left].tolist() for column in rows.unfillable_arrays())
        for k in range(n_left):
            state = states[x_item[k]]
            unit = units[unit_of[id(state)]]
            code = int(ctx.it_ac[x_item[k]])
            self.unfillable.append({
                "order": unit.order.id, "ship_group": unit.ship_group.id,
                "item": state.item.id, "product": state.product,
                "quantity": _number(x_open[k]), "routing": routing.name,
                "rule": rules[x_rule[k]].name if x_rule[k] >= 0 else None,
                "action": kernel.ACTIONS[x_action[k]],
                "queue": fac_ids[ctx.it_queue[x_item[k]]],
                "auto_cancel_date": _auto_cancel(state.auto_cancel, code, ctx),
            })
        for unit in units:
            for state in unit.items:
                k = ctx.item_index[id(state)]
                state.open = float(ctx.it_open[k])
                state.queue = fac_ids[ctx.it_queue[k]]
                code = int(ctx.it_ac[k])
                if code != kernel.AC_UNCHANGED:
                    state.auto_cancel = _auto_cancel_value(state.auto_cancel, code, ctx)
        for position in np.nonzero(unit_warn[:len(units)])[0]:
            self._warn_ship_to(units[position])
        for f in np.nonzero(ctx.fac_warn)[0]:
            self._warn_facility(fac_ids[f])
        for f, count in zip(fac_ids, ctx.orders_today_array.tolist(), strict=True):
            if f in ctx.orders_today:
                ctx.orders_today[f] = count

    def _inventory_after(self) -> list[dict]:
        ctx = self.ctx
        changed = np.nonzero(ctx.s_alloc)[0]
        entries = sorted(
            (ctx.fac_ids[ctx.s_fac[k]], ctx.prod_ids[ctx.s_prod[k]],
             float(ctx.atp_column[ctx.s_row[k]]) - float(ctx.s_alloc[k]))
            for k in changed.tolist())
        return [{"facility": f, "product": p, "atp": _number(atp)} for f, p, atp in entries]


class _Rows:
    """The kernel's output arrays: allocation rows (grown on demand) and unfillable rows (at
    most one per item routed)."""

    def __init__(self, capacity: int, items: int):
        self._allocations = _allocation_columns(capacity)
        self._unfillable = (np.empty(items or 1, np.int64), np.empty(items or 1),
                            np.empty(items or 1, np.int64), np.empty(items or 1, np.int64))

    def allocation_arrays(self) -> tuple:
        return self._allocations

    def unfillable_arrays(self) -> tuple:
        return self._unfillable

    def grow(self, needed: int) -> None:
        old = self._allocations
        bigger = _allocation_columns(max(needed, 2 * len(old[0])))
        for target, source in zip(bigger, old, strict=True):
            target[:len(source)] = source
        self._allocations = bigger


def _allocation_columns(capacity: int) -> tuple:
    return (np.empty(capacity, np.int64), np.empty(capacity, np.int64),
            np.empty(capacity, np.int64), np.empty(capacity), np.empty(capacity, np.int64),
            np.empty(capacity), np.empty(capacity, np.bool_))


def _target(unit: _Unit):
    ship_to = unit.ship_group.ship_to
    return _radians(ship_to.lat, ship_to.lon) if ship_to else None


def _auto_cancel_value(current, code: int, ctx):
    if code == kernel.AC_UNCHANGED:
        return current
    if code == kernel.AC_NONE:
        return None
    return ctx.now + timedelta(days=code)


def _auto_cancel(current, code: int, ctx) -> str | None:
    value = _auto_cancel_value(current, code, ctx)
    return value.isoformat() if value else None
