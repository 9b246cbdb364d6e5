"""The compiled allocation loop: one routing's sorted units through its rules.

Everything here is numbers, read from the lowered IR's named tables (`engine.ir`):
facilities, products and items are integer ids, stock is one row per (product, facility)
grouped by product, and a rule is a row of its tables. The procedure is the reference
interpreter's, step for step (docs/semantics.md), with the same epsilon tests and the same
order of floating-point operations, so both engines give the same bytes. What the Python
driver prepares: eligibility, filters and the unit order (shared with the reference), the
IR (each rule's static facility mask, radians of every coordinate, the rate tables).

`route_units` (Python) allocates the loop's scratch; the compiled loop (`_route`) and the
functions it calls (`jit.helper`) allocate nothing, so numba compiles them without reference
counting, which was most of their compiled code (docs/performance.md, "The compiled kernel's
compile time").
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..criteria import FACTS, ITEM_FACTS, RegistryError, shared
from ..criteria.distance import haversine_radians
from ..criteria.lifecycle import days_since_refusal
from ..shipping import bucket_cost, delivery_day, weight_bucket, zone_of
from . import ir
from .ir import ALLOCATED, FACT_CODES, ITEM_FACT_CODES, LEFT_OPEN, USED_FULL
from .jit import condition_passes, helper, jit, sort_value

# The facts the kernel computes for the conditions of each stage (criteria.FACTS): a fact
# the registry declares and the kernel does not compute stops the import.
COMPUTED = {"facility": (), "candidate": ("km", "transit"), "placement": ("package_cost",),
            "serve": ("delivery", "available", "refused")}
if {stage: set(facts) for stage, facts in FACTS.items()} != \
        {stage: set(facts) for stage, facts in COMPUTED.items()} or \
        set(ITEM_FACTS) != {"promised", "open"}:
    raise RegistryError(f"the kernel computes the facts {COMPUTED} and the item facts "
                        f"promised and open; the registry declares {FACTS} and {ITEM_FACTS}")
F_KM, F_TRANSIT = FACT_CODES["candidate"]["km"], FACT_CODES["candidate"]["transit"]
F_COST = FACT_CODES["placement"]["package_cost"]
F_DELIVERY, F_AVAILABLE, F_REFUSED = (FACT_CODES["serve"][fact]
                                      for fact in ("delivery", "available", "refused"))
I_PROMISED, I_OPEN = ITEM_FACT_CODES["promised"], ITEM_FACT_CODES["open"]
N_FACTS = max(len(facts) for facts in FACTS.values())  # scratch for any stage's facts
N_ITEM_FACTS = len(ITEM_FACTS)

# What an inventory sort's kernel function reads (criteria: ``kernel(view, r, f, n)``): the
# placed products (the first n, in id order), the candidates' measures (distance in the
# rule's unit, balance), the rules' sequence numbers, the shipping keys of the step being
# ranked and the rules' split costs, the stock and the sort tables (ir.SortTables).
RankView = namedtuple("RankView", "products c_has c_dist bal seq ship_rank ship_new "
                                  "split_distance ship_added split_money ship_delivery p_ptr "
                                  "s_fac s_net v_ptr v_fac v_val style_of style_ptr style_var "
                                  "style_size sort_excludes")
# Scratch the kernel keeps per call, by facility: each facility's distance (km) and zone for
# the unit being routed (valid where the stamp is the unit's position + 1).
Cache = namedtuple("Cache", "dist_stamp km zone_stamp zone")
# The stock the step has placed but not committed: rows f, p, q.
Pending = namedtuple("Pending", "f p q")
# What serving an item reads: the items and stock, the rules' serve-stage conditions
# (ir.Conditions.serve) and today, the rate cards' transit days and each facility's day its
# packages leave, the unit's zones (Cache.zone), the stock pending (Pending) and scratch for
# the facts of a facility and an item (by fact code) that the placement and serve stages
# compare. Each helper is handed the tables it reads, no more: numba passes a table as one
# argument per array field, and the kernel's compile time grows with them.
Serve = namedtuple("Serve", "items stock stage today leaves transit zone pend facts "
                            "item_facts")
# The items being placed together: positions k[:n] in the unit starting at u0 of unit_items.
Step = namedtuple("Step", "k n u0 unit_items")
# A ranking: the first n rows of ``order`` index ``keys``; column ``last`` is the facility.
Ranked = namedtuple("Ranked", "keys order n last")
# `max_facilities` for the rule and unit: N (-1: none), the ship group key, the number of
# facilities, the run's table of pairs in use (ir.Used) and the rule's placements so far.
Cap = namedtuple("Cap", "limit sgk n_fac used pl_fac")
# The rule's packages so far, by facility (a package where stamp is the rule's): weight, volume.
Packages = namedtuple("Packages", "stamp w v")
# Per candidate, the shipping keys of the step being ranked: what placing adds to the
# package's cost, whether it passes the rule's cost limits, opens a package, its delivery day.
ShipKeys = namedtuple("ShipKeys", "added ok new delivery")
# Candidates of the rule: the list, a stamp per facility (the rule's stamp: a candidate) and
# how many open items each fills in full.
Candidates = namedtuple("Candidates", "list stamp full")
# Scratch for ranking: key rows, two row orders and the facilities holding the products.
Sorting = namedtuple("Sorting", "keys order_a order_b holding")
# What route_units allocates for its loop (`_route`), sized by the run (facilities, the
# largest unit): the caches and measures by facility, the rule's packages and shipping keys,
# the placements, the stock pending, scratch for the facts of serving, of the candidates,
# of explanations and checks, per item of the unit (last rule and action, open items, needed
# products and quantities, steps, the placed products) and for ranking.
Scratch = namedtuple("Scratch", "cache cands seen_stamp c_dist c_has bal packages ship "
                                "pl_item pl_fac pl_qty pending facts item_facts cand_facts "
                                "ex_scratch checked last_rule last_action open_k need_p "
                                "step_of step_k need_q products sorting")
# A rule's placements: item, facility and quantity of the first n rows.
Placed = namedtuple("Placed", "item fac qty n")
# Scratch for the rule's checks (`_rule_checks`): per open item its quantity placed; the
# facilities placed at and the value of their shipments.
Checked = namedtuple("Checked", "filled pf_fac pf_val")
# What explaining a rule of a unit reads (`_explain_rule`): where it is (rule, unit and its
# position, ship group key, rate card, rule stamp), the unit's open items (positions open_k
# of the unit's items from u0) and their products with summed open quantities; the rule's
# placements and what its checks said of them (`_rule_checks`); the run's tables; the
# candidates' measures; scratch by facility (stamps: holds stock, chosen) and for facts.
ExAt = namedtuple("ExAt", "r u ui sgk c u0 unit_items open_k n_open need_p need_q n_need "
                          "stamp")
ExTables = namedtuple("ExTables", "rules conditions items facilities stock rates units used")
Measures = namedtuple("Measures", "has dist bal full cand")
ExScratch = namedtuple("ExScratch", "hold chosen facts item_facts")
# what happened last to an item that stays open: as the result's unfillable "action" says it
ACTIONS = ("left", "auto_cancel_cleared", "auto_cancel_set", "moved")
AC_UNCHANGED, AC_NONE = -2, -1  # auto-cancel codes; >= 0 is "now + that many days"
# `_check_fails`: the facility passes the check, or fails it (not on an item)
PASSES, FAILS = -1, -2
CANNOT = -1.0  # `_servable`: the facility may not serve the item (a servable quantity is > EPS)
EPS, KM_PER_MILE, _find = shared.EPS, shared.KM_PER_MILE, shared.find_row


@helper
def _net(stock, p, f):
    """Net stock of product ``p`` at facility ``f`` (0.0 without a row) and the row, or -1."""
    pos = _find(stock.fac, stock.p_ptr[p], stock.p_ptr[p + 1], f)
    if pos < 0:
        return 0.0, pos
    return stock.net[pos], pos


@helper
def _less(keys, a, b, width):
    for k in range(width):
        if keys[a, k] < keys[b, k]:
            return True
        if keys[a, k] > keys[b, k]:
            return False
    return False


@helper
def _sort_rows(keys, n, width, order, buffer):
    """Row indices 0..n-1 ordered by their key rows (merge sort; keys end with the facility,
    so no two rows tie), in ``order`` or ``buffer`` (scratch, both at least n long): returns
    whether they ended in ``buffer``."""
    for k in range(n):
        order[k] = k
    in_buffer = False
    run = 1
    while run < n:
        for lo in range(0, n, 2 * run):
            mid = min(lo + run, n)
            hi = min(lo + 2 * run, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _less(keys, order[j], order[i], width):
                    buffer[k] = order[j]
                    j += 1
                else:
                    buffer[k] = order[i]
                    i += 1
                k += 1
            while i < mid:
                buffer[k] = order[i]
                i += 1
                k += 1
            while j < hi:
                buffer[k] = order[j]
                j += 1
                k += 1
        order, buffer = buffer, order
        in_buffer = not in_buffer
        run *= 2
    return in_buffer


@helper
def _km_at(cache, ui, f, u, facilities, units):
    """The distance in km from ``f`` to unit ``u`` (the ``ui``-th routed; both have
    coordinates), once per unit."""
    if cache.dist_stamp[f] != ui + 1:
        cache.km[f] = haversine_radians(facilities.phi[f], facilities.lam[f],
                                        facilities.cos[f], units.phi[u], units.lam[u],
                                        units.cos[u])
        cache.dist_stamp[f] = ui + 1
    return cache.km[f]


@helper
def _zone_of(rates, c, f, dest, has_km, km):
    """The zone under card ``c`` (-1: none) of a package from ``f`` (shipping.zone_of)."""
    if c < 0:
        return -1
    return zone_of(rates.chart, rates.chart_ptr[c], rates.columns[c], rates.origin[c, f], dest,
                   has_km, km, rates.miles[c], rates.band[c], rates.n_zones[c])


@helper
def _zone_at(cache, ui, f, u, c, facilities, units, rates):
    """The zone of a package from ``f`` to unit ``u`` (the ``ui``-th routed), once per unit;
    the distance, when needed, from the unit's distance cache."""
    if cache.zone_stamp[f] != ui + 1:
        has_km = facilities.has[f] and units.has[u]
        km = 0.0
        if has_km:
            km = _km_at(cache, ui, f, u, facilities, units)
        cache.zone[f] = _zone_of(rates, c, f, units.dest[u], has_km, km)
        cache.zone_stamp[f] = ui + 1
    return cache.zone[f]


@helper
def _bucket(rates, c, weight, volume):
    """The weight bucket of a package under card ``c`` (shipping.weight_bucket), -1 for
    none."""
    if c < 0:
        return -1
    return weight_bucket(rates.weights[c], rates.n_weights[c], rates.divisor[c], weight,
                         volume)


@helper
def _price(rates, c, z, f, b):
    """A package's cost in bucket ``b`` of zone ``z`` from ``f`` (shipping.bucket_cost; NaN
    without either)."""
    if c < 0:
        return np.nan
    return bucket_cost(rates.price[c], rates.amounts[c], rates.multiplier[c], rates.handling[f],
                       z, b)


@helper
def _package_cost(rates, c, z, f, weight, volume):
    """`shipping.RateModel.cost`: NaN when it cannot be priced."""
    return _price(rates, c, z, f, _bucket(rates, c, weight, volume))


@helper
def _first_filling(serve, r, c, step, ranked, n_pend, cap, n_pl):
    """The first ranked facility that can fill every one of the step's items in full (open
    quantities of the same product summed, in item order) and that ``cap`` lets ship
    (`_may_open`), or -1."""
    for h in range(ranked.n):
        f = int(ranked.keys[ranked.order[h], ranked.last])
        if _may_open(f, cap, n_pl) and _fills(serve, r, c, step, f, n_pend):
            return f
    return -1


@helper
def _fills(serve, r, c, step, f, n_pend):
    """Whether facility ``f`` can fill every one of the step's items in full (`_first_filling`)."""
    it_prod, it_open = serve.items.prod, serve.items.open
    for o in range(step.n):
        i = step.unit_items[step.u0 + step.k[o]]
        need = 0.0
        for o2 in range(step.n):
            i2 = step.unit_items[step.u0 + step.k[o2]]
            if it_prod[i2] == it_prod[i]:
                need += it_open[i2]
        available = _servable(serve, r, c, i, f, n_pend)
        if available == CANNOT or not available + EPS >= need:
            return False
    return True


@helper
def _admit(out, u, r, step, ranked, whole, serve, c, cap):
    """The ranked facilities rule ``r`` admits for the step (ir.Fixed.admit), as allocation
    rows (unit, rule, item, facility): with ``whole`` (`assign single`, a kept item group) each
    that may open and fills all the step's items in full, each of them a row; otherwise each
    that may serve its item."""
    counts = out.counts
    first = step.unit_items[step.u0 + step.k[0]]
    for h in range(ranked.n):
        f = int(ranked.keys[ranked.order[h], ranked.last])
        if whole:
            if not (_may_open(f, cap, 0) and _fills(serve, r, c, step, f, 0)):
                continue
        elif _servable(serve, r, c, first, f, 0) == CANNOT:
            continue
        for o in range(step.n if whole else 1):
            row = counts[ALLOCATED]
            out.a_unit[row] = u
            out.a_rule[row] = r
            out.a_item[row] = step.unit_items[step.u0 + step.k[o]]
            out.a_fac[row] = f
            counts[ALLOCATED] = row + 1


@helper
def _excluded(items, i, f):
    for k in range(items.excl_ptr[i], items.excl_ptr[i + 1]):
        if items.excl[k] == f:
            return True
    return False


@helper
def _passes(stage, r, facts, item_facts):
    """Whether rule ``r``'s conditions of ``stage`` (ir.Stage) all pass on ``facts`` and
    ``item_facts`` (by fact code): each its criterion's check (`condition_passes`)."""
    for k in range(stage.n[r]):
        item_fact = stage.item_fact[r, k]
        if not condition_passes(stage.code[r, k], stage.op[r, k], stage.number[r, k],
                                facts[stage.fact[r, k]],
                                item_facts[item_fact] if item_fact >= 0 else 0.0):
            return False
    return True


@helper
def _slot(keys, key):
    """Where ``key`` is in the open-addressing table ``keys`` (-1: empty), or would go."""
    mask = keys.shape[0] - 1
    h = (key * 2654435761) & mask
    while keys[h] != -1 and keys[h] != key:
        h = (h + 1) & mask
    return h


@jit
def rehash(old, new):
    """The table of (ship group, facility) pairs in use ``old`` into ``new`` (larger, all
    -1)."""
    for k in range(old.shape[0]):
        if old[k] != -1:
            new[_slot(new, old[k])] = old[k]


@helper
def _may_open(f, cap, n_pl):
    """`interpreter._may_open`: under `max_facilities`, a facility the ship group already
    ships from (in the run or this rule's first ``n_pl`` placements) may take more; another
    only while fewer than N do."""
    if cap.limit < 0:
        return True
    pl_fac = cap.pl_fac
    for x in range(n_pl):
        if pl_fac[x] == f:
            return True
    used_keys = cap.used.keys
    key = cap.sgk * cap.n_fac + f
    if used_keys[_slot(used_keys, key)] == key:
        return True
    extra = 0
    for x in range(n_pl):
        g = pl_fac[x]
        first = True
        for y in range(x):
            if pl_fac[y] == g:
                first = False
                break
        other = cap.sgk * cap.n_fac + g
        if first and used_keys[_slot(used_keys, other)] != other:
            extra += 1
    return cap.used.per_group[cap.sgk] + extra < cap.limit


@helper
def _rule_checks(only_all, threshold, items, opened, placed, scratch):
    """The rule's checks on its placements (the reference's `_post_checks`: `only_all`, then
    the shipment value threshold per facility and of what stays open), on the unit's open
    items ``opened`` (a Step) with ``scratch`` (Checked): whether they reject the
    placements and why (ir.NOT_REJECTED, ir.REJECTED_*), the facility a threshold names (the
    first in facility order; -1: none) and the value it names. The decision reads the code,
    the explanation (`_explain_rule`) all three: one evaluation for both."""
    it_price, it_adj, it_qty, it_open = items.price, items.adj, items.qty, items.open
    filled, pf_fac, pf_val = scratch.filled, scratch.pf_fac, scratch.pf_val
    n_open = opened.n
    for o in range(n_open):
        filled[o] = 0.0
    n_pf = 0  # the facilities placed at and the value of their shipments
    for x in range(placed.n):
        i, f, q = placed.item[x], placed.fac[x], placed.qty[x]
        for o in range(n_open):
            if opened.unit_items[opened.u0 + opened.k[o]] == i:
                filled[o] += q
        value = q * it_price[i] + it_adj[i] * (q / it_qty[i])
        found = False
        for y in range(n_pf):
            if pf_fac[y] == f:
                pf_val[y] += value
                found = True
                break
        if not found:
            pf_fac[n_pf] = f
            pf_val[n_pf] = value
            n_pf += 1
    complete = True
    for o in range(n_open):
        if not filled[o] + EPS >= it_open[opened.unit_items[opened.u0 + opened.k[o]]]:
            complete = False
    if only_all and not complete:
        return ir.REJECTED_ONLY_ALL, -1, 0.0
    if threshold != 0.0 and not (n_pf == 1 and complete):
        best = -1
        for y in range(n_pf):
            if pf_val[y] + EPS < threshold and (best < 0 or pf_fac[y] < pf_fac[best]):
                best = y
        if best >= 0:
            return ir.REJECTED_FACILITY, pf_fac[best], pf_val[best]
        if not complete:
            open_value = 0.0
            for o in range(n_open):
                i = opened.unit_items[opened.u0 + opened.k[o]]
                rest = it_open[i] - filled[o]
                if rest > EPS:
                    open_value += rest * it_price[i] + it_adj[i] * (rest / it_qty[i])
            if open_value + EPS < threshold:
                return ir.REJECTED_OPEN, -1, open_value
    return ir.NOT_REJECTED, -1, 0.0


def route_units(start, units, items, facilities, stock, rules, conditions, sorts, rates, used,
                out, explain, fixed=None):
    """Route the units units.order[start:] in order (ir: every argument but ``start`` is one
    of its tables). Returns (next unit, rows it needs) when the output rows are too few for
    the next unit (the caller grows them and calls again), else (len(units.order), 0). When
    the table of (ship group, facility) pairs in use (``used``, kept when a rule has
    `max_facilities`) could fill past half for the next unit, out.counts[USED_FULL] is set
    and (next unit, 0) returned, for the caller to grow it; when the explanation rows could
    not take the next unit, explain.counts[EXPLAIN_FULL] and (next unit, rows it needs). The
    units ``explain.wanted`` have their rules explained (`_explain_rule`). With ``fixed``
    (ir.Fixed), the rules commit its placements instead of choosing.

    Python: allocates the loop's scratch, sized by the run (facilities, the largest unit),
    and hands it to the compiled loop (`_route`), which allocates nothing and so is compiled
    without reference counting (jit.helper)."""
    n_fac = len(facilities.has)
    n_rules = len(rules.single)
    order = units.order[start:]
    lo, hi = units.ptr[order], units.ptr[order + 1]
    # a placement per (item, facility holding it) of the largest unit
    held = np.diff(stock.p_ptr)[items.prod[units.items]]
    rows = np.concatenate(([0], np.cumsum(held)))
    most_items = max(1, int((hi - lo).max())) if len(order) else 1
    most_rows = int((rows[hi] - rows[lo]).max()) + 1 if len(order) else 1
    if fixed is None:
        fixed = ir.no_fixed()
    elif len(fixed.ptr) > 1:  # a rule's fixed placements are its rows of the scratch
        most_rows = max(most_rows, int(np.diff(fixed.ptr).max()) + 1)
    by_fac = np.zeros(n_fac)
    ship = ShipKeys(np.zeros(n_fac), np.ones(n_fac, np.bool_), np.zeros(n_fac, np.bool_),
                    np.zeros(n_fac))  # _shipping_keys of the step being ranked
    cache = Cache(np.zeros(n_fac, np.int64), np.zeros(n_fac), np.zeros(n_fac, np.int64),
                  np.full(n_fac, -1, np.int64))
    width = 2 * (int(sorts.n.max()) if n_rules else 0) + 3
    scratch = Scratch(
        cache=cache,
        cands=Candidates(np.empty(n_fac, np.int64), np.zeros(n_fac, np.int64),
                         np.zeros(n_fac, np.int64)),
        seen_stamp=np.zeros(n_fac, np.int64), c_dist=by_fac.copy(),
        c_has=np.zeros(n_fac, np.bool_), bal=by_fac.copy(),
        # facilities with a package in the rule (stamp), its weight and volume
        packages=Packages(np.zeros(n_fac, np.int64), by_fac.copy(), by_fac.copy()),
        ship=ship, pl_item=np.empty(most_rows, np.int64), pl_fac=np.empty(most_rows, np.int64),
        pl_qty=np.empty(most_rows),
        pending=Pending(np.empty(most_rows, np.int64), np.empty(most_rows, np.int64),
                        np.empty(most_rows)),
        facts=np.empty(N_FACTS), item_facts=np.empty(N_ITEM_FACTS), cand_facts=np.empty(N_FACTS),
        ex_scratch=ExScratch(np.zeros(n_fac, np.int64), np.zeros(n_fac, np.int64),
                             np.empty(N_FACTS), np.empty(N_ITEM_FACTS)),
        checked=Checked(np.empty(most_items), np.empty(most_rows, np.int64),
                        np.empty(most_rows)),
        **{name: np.empty(most_items, np.int64)
           for name in ("last_rule", "last_action", "open_k", "need_p", "step_of", "step_k")},
        need_q=np.empty(most_items), products=np.empty(most_items, np.int64),
        sorting=Sorting(np.empty((n_fac, width)), np.empty(n_fac, np.int64),
                        np.empty(n_fac, np.int64), np.empty(n_fac, np.int64)))
    return _route(start, units, items, facilities, stock, rules, conditions, sorts, rates, used,
                  out, explain, scratch, fixed)


@jit(_nrt=False)
def _route(start, units, items, facilities, stock, rules, conditions, sorts, rates, used, out,
           explain, scratch, fixed):
    """`route_units`' loop, on the scratch it allocated (compiled without reference counting:
    see jit.helper)."""
    order, unit_ptr, unit_items = units.order, units.ptr, units.items
    u_has, u_sgk = units.has, units.ship_group
    it_prod, it_open, it_group = items.prod, items.open, items.group
    f_has, f_limit, orders_today = facilities.has, facilities.limit, facilities.orders_today
    p_ptr, s_fac, s_net = stock.p_ptr, stock.fac, stock.net
    counts = out.counts
    tracking = used.keys.shape[0] > 1
    fixing = fixed.ptr.shape[0] > 1
    admitting = fixed.admit[0]
    transit, leaves = rates.transit, rates.leaves
    n_fac = f_has.shape[0]
    n_rules = rules.single.shape[0]
    cache, cands, sorting = scratch.cache, scratch.cands, scratch.sorting
    cand_list, cand_stamp, full = cands.list, cands.stamp, cands.full
    seen_stamp, c_dist, c_has, bal = scratch.seen_stamp, scratch.c_dist, scratch.c_has, scratch.bal
    holders = sorting.holding
    packages, ship = scratch.packages, scratch.ship
    # the tables made of the run's arrays and the scratch (made here: Python would convert
    # the run's arrays once more for each)
    serve = Serve(items, stock, conditions.serve, conditions.today, leaves, transit, cache.zone,
                  scratch.pending, scratch.facts, scratch.item_facts)
    tables = sorts.tables
    view = RankView(scratch.products, c_has, c_dist, bal, rules.seq, rules.ship_rank, ship.new,
                    rules.split_distance, ship.added, rules.split_money, ship.delivery, p_ptr,
                    s_fac, s_net, tables.v_ptr, tables.v_fac, tables.v_val, tables.style_of,
                    tables.style_ptr, tables.style_var, tables.style_size, tables.excludes)
    pk_stamp, pk_w, pk_v = packages.stamp, packages.w, packages.v
    pl_item, pl_fac, pl_qty = scratch.pl_item, scratch.pl_fac, scratch.pl_qty
    cand_facts, ex_scratch, checked = scratch.cand_facts, scratch.ex_scratch, scratch.checked
    last_rule, last_action, open_k = scratch.last_rule, scratch.last_action, scratch.open_k
    need_p, need_q = scratch.need_p, scratch.need_q
    step_of, step_k = scratch.step_of, scratch.step_k
    ex_tables = ExTables(rules, conditions, items, facilities, stock, rates, units, used)
    stamp = 0
    for ui in range(start, len(order)):
        u = order[ui]
        u0, u1 = unit_ptr[u], unit_ptr[u + 1]
        n_items = u1 - u0
        bound = 0
        for k in range(u0, u1):
            p = it_prod[unit_items[k]]
            bound += p_ptr[p + 1] - p_ptr[p]
        bound = bound * n_rules + 1
        if counts[ALLOCATED] + bound > out.a_unit.shape[0]:
            return ui, bound
        if tracking and 2 * (used.count[0] + min(bound, n_fac)) > used.keys.shape[0]:
            counts[USED_FULL] = 1
            return ui, 0
        explaining = u < explain.wanted.shape[0] and explain.wanted[u]
        if explaining and (explain.counts[ir.EXPLAINED] + n_rules > explain.r_unit.shape[0]
                           or explain.counts[ir.CHOSEN] + bound > explain.c_fac.shape[0]
                           or explain.a_int.shape[1] > 0 and explain.counts[ir.NEEDS]
                           + n_rules * n_items > explain.d_prod.shape[0]):
            explain.counts[ir.EXPLAIN_FULL] = 1
            return ui, bound + n_rules * (n_items + 1)
        sgk = u_sgk[u]
        for k in range(n_items):
            last_rule[k] = -1
            last_action[k] = 0
        c = units.card[u]
        unit_pk = 0  # packages earlier rules shipped for the unit
        for r in range(n_rules):
            n_open = 0
            for k in range(n_items):
                if it_open[unit_items[u0 + k]] > EPS:
                    open_k[n_open] = k
                    n_open += 1
            if n_open == 0:
                break
            for o in range(n_open):
                last_rule[open_k[o]] = r
            # ---- candidates: static mask, stock, order limit, distance ----
            stamp += 1
            n_hold = 0
            # distinct products of the open items with their summed open quantity
            n_need = 0
            for o in range(n_open):
                i = unit_items[u0 + open_k[o]]
                found = False
                for j in range(n_need):
                    if need_p[j] == it_prod[i]:
                        need_q[j] += it_open[i]
                        found = True
                        break
                if not found:
                    need_p[n_need] = it_prod[i]
                    need_q[n_need] = it_open[i]
                    n_need += 1
            static = rules.static[r]
            if rules.single[r]:
                p0 = need_p[0]
                for j in range(p_ptr[p0], p_ptr[p0 + 1]):
                    f = s_fac[j]
                    if not static[f] or not s_net[j] + EPS >= need_q[0]:
                        continue
                    ok = True
                    for m in range(1, n_need):
                        q, pos = _net(stock, need_p[m], f)
                        if pos < 0 or not q + EPS >= need_q[m]:
                            ok = False
                            break
                    if ok:
                        holders[n_hold] = f
                        n_hold += 1
            else:
                for o in range(n_open):
                    p = it_prod[unit_items[u0 + open_k[o]]]
                    for j in range(p_ptr[p], p_ptr[p + 1]):
                        f = s_fac[j]
                        if s_net[j] > EPS and static[f] and seen_stamp[f] != stamp:
                            seen_stamp[f] = stamp
                            holders[n_hold] = f
                            n_hold += 1
            if fixing:  # no candidates: the rule commits its fixed placements (below)
                n_hold = 0
            n_cand = 0
            for h in range(n_hold):
                f = holders[h]
                if not rules.ignore_limit[r] and f_limit[f] >= 0 and \
                        orders_today[f] >= f_limit[f]:
                    continue
                has = False
                d = 0.0
                if rules.uses_distance[r]:
                    if f_has[f] and u_has[u]:
                        has = True
                        d = _km_at(cache, ui, f, u, facilities, units)
                    else:
                        if not f_has[f]:
                            facilities.warn[f] = True
                        if not u_has[u]:
                            units.warn[u] = True
                # the conditions, their facts computed only for facilities that need them: a
                # rule without conditions on the zone decides before the zone is looked up
                candidate = conditions.candidate
                on_zone = candidate.needs[r, F_TRANSIT]
                cand_facts[F_KM] = d if has else np.nan
                cand_facts[F_TRANSIT] = np.nan
                if candidate.n[r] > 0 and not on_zone and \
                        not _passes(candidate, r, cand_facts, cand_facts):
                    continue
                if rules.uses_zone[r]:
                    z = _zone_at(cache, ui, f, u, c, facilities, units, rates)
                    if on_zone:
                        cand_facts[F_TRANSIT] = transit[c, z] if z >= 0 else np.nan
                        if not _passes(candidate, r, cand_facts, cand_facts):
                            continue
                cand_stamp[f] = stamp
                cand_list[n_cand] = f
                n_cand += 1
                c_has[f] = has
                c_dist[f] = d * rules.factor[r] if has else 0.0
            # ---- measures that do not depend on what is placed ----
            for cc in range(n_cand):
                bal[cand_list[cc]] = 0.0
                full[cand_list[cc]] = n_open if rules.single[r] else 0
            if rules.balance[r]:  # a sort needs the unit's net stock
                for j0 in range(n_need):
                    p = need_p[j0]
                    for j in range(p_ptr[p], p_ptr[p + 1]):
                        if cand_stamp[s_fac[j]] == stamp and s_net[j] > 0:
                            bal[s_fac[j]] += s_net[j]
            if not rules.single[r]:
                serve_n = conditions.serve.n[r]
                for o in range(n_open):
                    i = unit_items[u0 + open_k[o]]
                    need = it_open[i]
                    p = it_prod[i]
                    for j in range(p_ptr[p], p_ptr[p + 1]):
                        f = s_fac[j]
                        q = s_net[j]
                        if cand_stamp[f] != stamp or q + EPS < need or _excluded(items, i, f):
                            continue
                        # with serve conditions, as _servable with nothing placed yet
                        if serve_n == 0 or q > EPS and _serve_passes(serve, r, c, i, f, q):
                            full[f] += 1
            # ---- assignment ----
            n_pl = 0
            n_pend = 0
            n_pk = 0
            cap = Cap(rules.cap[r], sgk, n_fac, used, pl_fac)
            last = 2 * sorts.n[r] + 2
            if rules.single[r]:
                step = Step(open_k, n_open, u0, unit_items)
                if rules.ship_rank[r]:
                    _shipping_keys(serve, rates, conditions.placement, rules.costs[r], r, c,
                                   step, cands, n_cand, stamp, n_pk + unit_pk, packages, ship)
                n_rank, in_b = _rank(r, step, items, stock, sorts, cands, n_cand, stamp,
                                     rules.ship_rank[r], ship.ok, view, sorting)
                ranked_rows = sorting.order_b if in_b else sorting.order_a
                if admitting:
                    _admit(out, u, r, step, Ranked(sorting.keys, ranked_rows, n_rank, last),
                           True, serve, c, cap)
                    n_rank = 0
                f = _first_filling(serve, r, c, step,
                                   Ranked(sorting.keys, ranked_rows, n_rank, last), n_pend,
                                   cap, n_pl)
                if f >= 0:
                    for o in range(n_open):
                        i = unit_items[u0 + open_k[o]]
                        pl_item[n_pl] = i
                        pl_fac[n_pl] = f
                        pl_qty[n_pl] = it_open[i]
                        n_pl += 1
            else:
                # steps: one item, or (keep_item_groups_together) the open items of a group
                n_steps = 0
                for o in range(n_open):
                    i = unit_items[u0 + open_k[o]]
                    step_of[o] = -1
                    if rules.keep_groups[r] and it_group[i] >= 0:
                        for o2 in range(o):
                            if it_group[unit_items[u0 + open_k[o2]]] == it_group[i]:
                                step_of[o] = step_of[o2]
                                break
                    if step_of[o] < 0:
                        step_of[o] = n_steps
                        n_steps += 1
                for s in range(n_steps):
                    n_step = 0
                    for o in range(n_open):
                        if step_of[o] == s:
                            step_k[n_step] = open_k[o]
                            n_step += 1
                    step = Step(step_k, n_step, u0, unit_items)
                    first = unit_items[u0 + step_k[0]]
                    if rules.ship_rank[r]:
                        _shipping_keys(serve, rates, conditions.placement, rules.costs[r], r,
                                       c, step, cands, n_cand, stamp, n_pk + unit_pk, packages,
                                       ship)
                    n_rank, in_b = _rank(r, step, items, stock, sorts, cands, n_cand, stamp,
                                         rules.ship_rank[r], ship.ok, view, sorting)
                    ranked_rows = sorting.order_b if in_b else sorting.order_a
                    if admitting:
                        _admit(out, u, r, step, Ranked(sorting.keys, ranked_rows, n_rank, last),
                               rules.keep_groups[r] and it_group[first] >= 0, serve, c, cap)
                        continue
                    if rules.keep_groups[r] and it_group[first] >= 0:
                        f = _first_filling(serve, r, c, step,
                                           Ranked(sorting.keys, ranked_rows, n_rank, last),
                                           n_pend, cap, n_pl)
                        if f >= 0:
                            for o in range(n_step):
                                i = unit_items[u0 + step_k[o]]
                                pl_item[n_pl] = i
                                pl_fac[n_pl] = f
                                pl_qty[n_pl] = it_open[i]
                                n_pl += 1
                                n_pend = _add_pending(serve.pend, n_pend, f, it_prod[i], it_open[i])
                                n_pk = _pack(packages, stamp, rates, c, f, it_prod[i],
                                             it_open[i], n_pk)
                        continue
                    i = first
                    p = it_prod[i]
                    remaining = it_open[i]
                    for h in range(n_rank):
                        f = int(sorting.keys[ranked_rows[h], last])
                        if not _may_open(f, cap, n_pl):
                            continue
                        available = _servable(serve, r, c, i, f, n_pend)
                        if available == CANNOT:
                            continue
                        if rules.whole_lines[r]:
                            if available + EPS < remaining:
                                continue
                            take = remaining
                        else:
                            take = available if available <= remaining else remaining
                        pl_item[n_pl] = i
                        pl_fac[n_pl] = f
                        pl_qty[n_pl] = take
                        n_pl += 1
                        n_pend = _add_pending(serve.pend, n_pend, f, p, take)
                        n_pk = _pack(packages, stamp, rates, c, f, p, take, n_pk)
                        remaining -= take
                        if remaining <= EPS:
                            break

            if fixing:
                n_pl = _fixed_rows(fixed, u * n_rules + r, pl_item, pl_fac, pl_qty)
            # ---- the rule's checks ----
            placed = Placed(pl_item, pl_fac, pl_qty, n_pl)
            rejection = ir.NOT_REJECTED, -1, 0.0
            if n_pl > 0 and not fixing:
                rejection = _rule_checks(rules.only_all[r], rules.threshold[r], items,
                                         Step(open_k, n_open, u0, unit_items),
                                         placed, checked)
            rejected = rejection[0] != ir.NOT_REJECTED
            if explaining:
                _explain_rule(explain, ExAt(r, u, ui, sgk, c, u0, unit_items, open_k, n_open,
                                            need_p, need_q, n_need, stamp),
                              placed, rejection, ex_tables, cache,
                              Measures(c_has, c_dist, bal, full, cand_stamp), ex_scratch)
            # ---- commit ----
            if not rejected and n_pl > 0:
                n_new = 0
                for x in range(n_pl):
                    i, f, q = pl_item[x], pl_fac[x], pl_qty[x]
                    new = True
                    out.a_first[counts[ALLOCATED]] = counts[ALLOCATED]
                    for y in range(x):
                        if pl_fac[y] == f:
                            new = False
                            out.a_first[counts[ALLOCATED]] = counts[ALLOCATED] - x + y
                            break
                    if new:
                        n_new += 1
                        unit_pk += 1
                        orders_today[f] += 1
                        if tracking:  # the ship group ships from f: max_facilities counts it
                            key = sgk * n_fac + f
                            slot = _slot(used.keys, key)
                            if used.keys[slot] != key:
                                used.keys[slot] = key
                                used.per_group[sgk] += 1
                                used.count[0] += 1
                    pos = _net(stock, it_prod[i], f)[1]
                    s_net[pos] -= q
                    stock.alloc[pos] += q
                    it_open[i] -= q
                    items.ac[i] = AC_NONE
                    items.brokered[i] = True
                    row = counts[ALLOCATED]
                    out.a_unit[row] = u
                    out.a_item[row] = i
                    out.a_fac[row] = f
                    out.a_qty[row] = q
                    out.a_rule[row] = r
                    out.a_new[row] = new
                    if f_has[f] and u_has[u]:
                        km = _km_at(cache, ui, f, u, facilities, units)
                        out.a_dist[row] = km / KM_PER_MILE if rules.miles[r] else km
                    else:
                        out.a_dist[row] = np.nan
                    counts[ALLOCATED] = row + 1
                # ---- the packages' costs (interpreter._price) ----
                first_row = counts[ALLOCATED] - n_pl
                for x in range(n_pl):
                    row = first_row + x
                    f, p, q = pl_fac[x], it_prod[pl_item[x]], pl_qty[x]
                    out.a_cost[row] = np.nan
                    out.a_weight[row] = 0.0
                    out.a_transit[row] = -1
                    out.a_delivery[row] = -1
                    if c < 0:
                        continue
                    if out.a_new[row]:
                        pk_stamp[f] = -stamp  # this commit's package at f (the rule's are done)
                        pk_w[f] = 0.0
                        pk_v[f] = 0.0
                    out.a_weight[row] = rates.pw[c, p] * q
                    pk_w[f] += rates.pw[c, p] * q
                    pk_v[f] += rates.pv[c, p] * q
                if c >= 0:
                    for x in range(n_pl):
                        row = first_row + x
                        f = pl_fac[x]
                        z = _zone_at(cache, ui, f, u, c, facilities, units, rates)
                        out.a_cost[row] = _package_cost(rates, c, z, f, pk_w[f], pk_v[f])
                        if z >= 0:
                            out.a_transit[row] = transit[c, z]
                            out.a_delivery[row] = delivery_day(leaves[f], transit[c], z)
            if admitting:  # nothing placed, nothing acted on; no rule after a move runs
                if rules.move[r] >= 0:
                    break
                continue
            # ---- what happens to what stays open ----
            moved = False
            any_left = False
            for o in range(n_open):
                if it_open[unit_items[u0 + open_k[o]]] > EPS:
                    any_left = True
            if any_left:
                for o in range(n_open):
                    i = unit_items[u0 + open_k[o]]
                    if not it_open[i] > EPS:
                        continue
                    if rules.clear_ac[r]:
                        items.ac[i] = AC_NONE
                        last_action[open_k[o]] = 1
                    elif rules.ac_days[r] >= 0:
                        items.ac[i] = rules.ac_days[r]
                        last_action[open_k[o]] = 2
                    if rules.move[r] >= 0:
                        items.queue[i] = rules.move[r]
                        last_action[open_k[o]] = 3
                moved = rules.move[r] >= 0
            if moved:
                break
        for k in range(n_items):
            i = unit_items[u0 + k]
            if it_open[i] > EPS:
                row = counts[LEFT_OPEN]
                out.x_unit[row] = u
                out.x_item[row] = i
                out.x_open[row] = it_open[i]
                out.x_rule[row] = last_rule[k]
                out.x_action[row] = last_action[k]
                counts[LEFT_OPEN] = row + 1
    return len(order), 0


@helper
def _fixed_rows(fixed, at, pl_item, pl_fac, pl_qty):
    """The fixed placements ``at`` (a unit's rule) as the rule's placements; how many (those
    of no quantity left out, as the reference's fixed commit leaves them)."""
    n_pl = 0
    for x in range(fixed.ptr[at], fixed.ptr[at + 1]):
        if fixed.qty[x] > EPS:
            pl_item[n_pl] = fixed.item[x]
            pl_fac[n_pl] = fixed.fac[x]
            pl_qty[n_pl] = fixed.qty[x]
            n_pl += 1
    return n_pl


@helper
def _pack(packages, stamp, rates, c, f, p, q, n_pk):
    """Add ``q`` units of product ``p`` to the rule's package at ``f`` (interpreter._pack);
    returns how many facilities have one."""
    if packages.stamp[f] != stamp:
        packages.stamp[f] = stamp
        packages.w[f] = 0.0
        packages.v[f] = 0.0
        n_pk += 1
    w = np.nan
    v = 0.0
    if c >= 0:
        w = rates.pw[c, p]
        v = rates.pv[c, p]
    packages.w[f] += w * q
    packages.v[f] += v * q
    return n_pk


@helper
def _pending(pend, n_pend, f, p):
    for k in range(n_pend):
        if pend.f[k] == f and pend.p[k] == p:
            return pend.q[k]
    return 0.0


@helper
def _add_pending(pend, n_pend, f, p, q):
    for k in range(n_pend):
        if pend.f[k] == f and pend.p[k] == p:
            pend.q[k] = pend.q[k] + q
            return n_pend
    pend.f[n_pend] = f
    pend.p[n_pend] = p
    pend.q[n_pend] = 0.0 + q
    return n_pend + 1


@helper
def _serve_passes(serve, r, c, i, f, available):
    """Whether ``f``, with ``available`` net stock of item ``i``'s product, passes the rule's
    serve-stage conditions for the item under the unit's card ``c``."""
    stage = serve.stage
    if stage.n[r] == 0:
        return True
    items, facts, item_facts = serve.items, serve.facts, serve.item_facts
    facts[F_AVAILABLE] = available
    facts[F_DELIVERY] = np.nan
    z = serve.zone[f]
    if stage.needs[r, F_DELIVERY] and z >= 0:
        facts[F_DELIVERY] = delivery_day(serve.leaves[f], serve.transit[max(c, 0)],
                                         z)
    facts[F_REFUSED] = np.nan
    if stage.needs[r, F_REFUSED]:
        facts[F_REFUSED] = days_since_refusal(serve.today, items.rej_ptr,
                                              items.rej_fac, items.rej_day, i, f)
    item_facts[I_PROMISED] = items.promised[i]
    item_facts[I_OPEN] = items.open[i]
    return _passes(stage, r, facts, item_facts)


@helper
def _servable(serve, r, c, i, f, n_pend):
    """What facility ``f`` may give of item ``i`` under the unit's card ``c``: its net stock
    less what the step placed (the first ``n_pend`` rows), or CANNOT when it may not serve
    the item (excluded, nothing left, or the rule's serve-stage conditions fail):
    interpreter._can_serve, which the caller completes with the quantity it needs."""
    items = serve.items
    if _excluded(items, i, f):
        return CANNOT
    p = items.prod[i]
    available = _net(serve.stock, p, f)[0] - _pending(serve.pend, n_pend, f, p)
    if available <= EPS:
        return CANNOT
    if not _serve_passes(serve, r, c, i, f, available):
        return CANNOT
    return available


@helper
def _shipping_keys(serve, rates, placement, costs, r, c, step, cands, n_cand, stamp, opened,
                   packages, keys):
    """Per candidate, what `_rank` needs of shipping for placing the step's items
    (interpreter._ranking): whether it would open a new package, the cost the package there
    would have and whether it passes the rule's cost limits, what placing adds and the
    delivery day (NaN: unknown)."""
    items = serve.items
    weight = 0.0
    volume = 0.0
    if costs:  # interpreter._weight of the placed items
        for o in range(step.n):
            i = step.unit_items[step.u0 + step.k[o]]
            if c < 0:
                weight = np.nan
                volume = 0.0
                break
            weight += rates.pw[c, items.prod[i]] * items.open[i]
            volume += rates.pv[c, items.prod[i]] * items.open[i]
    alone = _bucket(rates, c, weight, volume) if costs else -1
    for k in range(n_cand):
        f = cands.list[k]
        has_package = packages.stamp[f] == stamp
        keys.new[f] = opened > 0 and not has_package
        keys.ok[f] = True
        z = serve.zone[f]
        keys.delivery[f] = delivery_day(rates.leaves[f], rates.transit[c], z) \
            if c >= 0 and z >= 0 else np.nan
        if not costs:
            continue
        if has_package:
            total = _package_cost(rates, c, z, f, packages.w[f] + weight,
                                  packages.v[f] + volume)
        else:  # 0.0 + weight is weight: the step's own bucket
            total = _price(rates, c, z, f, alone)
        if placement.n[r] > 0:
            serve.facts[F_COST] = total
            keys.ok[f] = _passes(placement, r, serve.facts, serve.item_facts)
        added = total - (_package_cost(rates, c, z, f, packages.w[f], packages.v[f])
                         if has_package else 0.0)
        keys.added[f] = added


@helper
def _rank(r, step, items, stock, sorts, cands, n_cand, stamp, shipping_keys, ship_ok, view,
          sorting):
    """Candidates holding every placed product, in rank order: the rule's sorts, then more
    items in full, then (one item placed) its availability there, then facility id. Fills the
    first rows of ``sorting.keys`` (the facility in column 2 * sorts + 2) and returns how
    many, and whether their row order is in ``sorting.order_b`` (else ``order_a``). Each sort's value is its criterion's (`sort_value` over
    ``view``; NaN: missing, which drops the facility for a sort that excludes missing
    values). With ``shipping_keys``, a facility whose package fails the rule's cost limits
    (``ship_ok``) is left out."""
    products = view.products
    it_prod, it_open = items.prod, items.open
    p_ptr, s_fac, s_net = stock.p_ptr, stock.fac, stock.net
    holding, keys = sorting.holding, sorting.keys
    n_products = 0
    for o in range(step.n):
        p = it_prod[step.unit_items[step.u0 + step.k[o]]]
        known = False
        for m in range(n_products):
            if products[m] == p:
                known = True
        if not known:  # kept in id order: sorts that add up per product do so in that order
            m = n_products
            while m > 0 and products[m - 1] > p:
                products[m] = products[m - 1]
                m -= 1
            products[m] = p
            n_products += 1
    n_hold = 0
    if n_products == 1:
        p = products[0]
        for j in range(p_ptr[p], p_ptr[p + 1]):
            if s_net[j] > EPS and cands.stamp[s_fac[j]] == stamp:
                holding[n_hold] = s_fac[j]
                n_hold += 1
    else:
        for c2 in range(n_cand):
            f = cands.list[c2]
            ok = True
            for m in range(n_products):
                if not _net(stock, products[m], f)[0] > EPS:
                    ok = False
                    break
            if ok:
                holding[n_hold] = f
                n_hold += 1
    n_sort = sorts.n[r]
    width = 2 * n_sort + 3
    single = step.unit_items[step.u0 + step.k[0]] if step.n == 1 else -1
    n_row = 0
    for h in range(n_hold):
        f = holding[h]
        if shipping_keys and not ship_ok[f]:
            continue
        dropped = False
        for m in range(n_sort):
            code = sorts.code[r, m]
            value = sort_value(code, view, r, f, n_products)
            if value == value:
                keys[n_row, 2 * m] = 0.0
                keys[n_row, 2 * m + 1] = -value if sorts.desc[r, m] else value
            elif view.sort_excludes[code]:
                dropped = True
                break
            else:
                keys[n_row, 2 * m] = -1.0 if sorts.nulls_first[r, m] else 1.0
                keys[n_row, 2 * m + 1] = 0.0
        if dropped:
            continue
        keys[n_row, 2 * n_sort] = -cands.full[f]
        ratio = 0.0
        if single >= 0 and it_open[single] != 0.0:
            ratio = -(_net(stock, products[0], f)[0] / it_open[single])
        keys[n_row, 2 * n_sort + 1] = ratio
        keys[n_row, 2 * n_sort + 2] = f
        n_row += 1
    return n_row, _sort_rows(keys, n_row, width, sorting.order_a, sorting.order_b)


# ---- explanations ------------------------------------------------------------------------------

@helper
def _excluding(items, at, f):
    """The first open item of the unit that excludes ``f`` (`excluded_facilities`), or
    -1."""
    for o in range(at.n_open):
        i = at.unit_items[at.u0 + at.open_k[o]]
        if _excluded(items, i, f):
            return i
    return -1


@helper
def _check_fails(stage_code, pos, at, f, tables, cache, cost, scratch):
    """Whether facility ``f`` fails the rule's check at position ``pos`` of the stage
    ``stage_code`` (ir.STAGE_CODES), on the facts the reference explainer compares: the
    candidate's distance or transit days, the cost (``cost``) of one package of the open
    items, or for each open item its net stock there with nothing placed, delivery day and
    rejection age. Returns PASSES, FAILS or the open item that fails (serve stage), and the
    fact compared (of that item)."""
    r, u, c = at.r, at.u, at.c
    conditions, items, rates = tables.conditions, tables.items, tables.rates
    facilities, units = tables.facilities, tables.units
    facts, item_facts = scratch.facts, scratch.item_facts
    if stage_code == 0:
        stage = conditions.candidate
        facts[F_KM] = np.nan
        if facilities.has[f] and units.has[u]:
            facts[F_KM] = _km_at(cache, at.ui, f, u, facilities, units)
        facts[F_TRANSIT] = np.nan
        if c >= 0:
            z = _zone_at(cache, at.ui, f, u, c, facilities, units, rates)
            if z >= 0:
                facts[F_TRANSIT] = rates.transit[c, z]
        value = facts[stage.fact[r, pos]]
        if condition_passes(stage.code[r, pos], stage.op[r, pos], stage.number[r, pos], value,
                            0.0):
            return PASSES, value
        return FAILS, value
    if stage_code == 1:
        stage = conditions.placement
        if condition_passes(stage.code[r, pos], stage.op[r, pos], stage.number[r, pos], cost,
                            0.0):
            return PASSES, cost
        return FAILS, cost
    stage = conditions.serve
    z = -1
    if c >= 0:
        z = _zone_at(cache, at.ui, f, u, c, facilities, units, rates)
    for o in range(at.n_open):
        i = at.unit_items[at.u0 + at.open_k[o]]
        facts[F_AVAILABLE] = _net(tables.stock, items.prod[i], f)[0]
        facts[F_DELIVERY] = np.nan
        if z >= 0:
            facts[F_DELIVERY] = delivery_day(rates.leaves[f], rates.transit[c], z)
        facts[F_REFUSED] = days_since_refusal(conditions.today, items.rej_ptr, items.rej_fac,
                                              items.rej_day, i, f)
        item_facts[I_PROMISED] = items.promised[i]
        item_facts[I_OPEN] = items.open[i]
        item_fact = stage.item_fact[r, pos]
        value = facts[stage.fact[r, pos]]
        if not condition_passes(stage.code[r, pos], stage.op[r, pos], stage.number[r, pos],
                                value, item_facts[item_fact] if item_fact >= 0 else 0.0):
            return i, value
    return PASSES, 0.0


@helper
def _open_package(rates, items, at):
    """Weight and volume of one package of the unit's open items (shipping.weight)."""
    c = at.c
    weight = 0.0
    volume = 0.0
    for o in range(at.n_open):
        if c < 0:
            return np.nan, 0.0
        i = at.unit_items[at.u0 + at.open_k[o]]
        weight += rates.pw[c, items.prod[i]] * items.open[i]
        volume += rates.pv[c, items.prod[i]] * items.open[i]
    return weight, volume


@helper
def _asked_rows(explain, row, at):
    """Start explained row ``row`` for the facilities asked about: none yet kept out by the
    kernel's reasons (ir.ASKED_STATIC), and the unit's needs (product, open quantity)."""
    for a in range(explain.a_int.shape[1]):
        explain.a_int[row, a, ir.A_COLUMN] = ir.ASKED_STATIC
    first = explain.counts[ir.NEEDS]
    explain.r_need[row] = first
    explain.r_n_need[row] = at.n_need
    for m in range(at.n_need):
        explain.d_prod[first + m] = at.need_p[m]
        explain.d_qty[first + m] = at.need_q[m]
    explain.counts[ir.NEEDS] = first + at.n_need


@helper
def _asked_detail(explain, row, a, f, column, item, value, cost, at, tables, cache, measures):
    """Facility ``f``, the ``a``-th asked about, in explained row ``row``: the reason column
    that kept it out, the item and the value that reason compared (-1, NaN: none), what it
    would be ranked by (its measures as a candidate, one package of the open items' cost
    ``cost`` and delivery day) and its net stock of the unit's needs (ir.Explain)."""
    rates, units, facilities = tables.rates, tables.units, tables.facilities
    explain.a_int[row, a, ir.A_COLUMN] = column
    explain.a_int[row, a, ir.A_ITEM] = item
    explain.a_val[row, a, ir.A_VALUE] = value
    explain.a_val[row, a, ir.A_OPEN] = tables.items.open[item] if item >= 0 else 0.0
    candidate = measures.cand[f] == at.stamp
    explain.a_int[row, a, ir.A_CAND] = candidate
    explain.a_int[row, a, ir.A_FULL] = measures.full[f] if candidate else 0
    explain.a_val[row, a, ir.A_DIST] = measures.dist[f] if candidate and measures.has[f] \
        else np.nan
    explain.a_val[row, a, ir.A_BAL] = measures.bal[f] if candidate else 0.0
    explain.a_val[row, a, ir.A_COST] = cost
    explain.a_val[row, a, ir.A_DAY] = np.nan
    if at.c >= 0:
        z = _zone_at(cache, at.ui, f, at.u, at.c, facilities, units, rates)
        if z >= 0:
            explain.a_val[row, a, ir.A_DAY] = delivery_day(rates.leaves[f], rates.transit[at.c],
                                                           z)
    first = explain.r_need[row]
    for m in range(at.n_need):
        explain.d_net[first + m, a] = _net(tables.stock, at.need_p[m], f)[0]


@helper
def _explain_rule(explain, at, placed, rejection, tables, cache, measures, scratch):
    """One rule of an explained unit, as the reference explainer (runtime.explanation)
    reports it, into the explanation rows (ir.Explain): the outcome, why the placements were
    rejected, the chosen facilities with what they were ranked by, and every other facility
    the rule may use counted under the first reason that kept it out, in the explainer's
    order: the order limit, no stock, the rule's checks in explanation order (with
    `excluded_facilities` among them), `max_facilities`, `assign single`, the rejection,
    the ranking; for a facility asked about (``explain.asked``), that reason's values too
    (`_asked_detail`). Called after the rule's checks and before its commit, on the state
    the rule decided from."""
    rules, items, stock, rates = tables.rules, tables.items, tables.stock, tables.rates
    facilities, units, used = tables.facilities, tables.units, tables.used
    r, u, c, stamp = at.r, at.u, at.c, at.stamp
    counts = explain.counts
    row = counts[ir.EXPLAINED]
    counts[ir.EXPLAINED] = row + 1
    explain.r_unit[row] = u
    explain.r_rule[row] = r
    explain.r_card[row] = c
    for t in range(explain.r_count.shape[1]):
        explain.r_count[row, t] = 0
    code, rej_fac, rej_value = rejection
    rejected = code != ir.NOT_REJECTED
    explain.r_rejected[row] = code
    explain.r_rej_fac[row] = rej_fac
    explain.r_rej_value[row] = rej_value
    # the outcome and the chosen facilities, in facility order
    chosen = scratch.chosen
    first = counts[ir.CHOSEN]
    n_chosen = 0
    outcome = 0
    if not rejected and placed.n > 0:
        total = 0.0
        for x in range(placed.n):
            total += placed.qty[x]
        wanted = 0.0
        for o in range(at.n_open):
            wanted += items.open[at.unit_items[at.u0 + at.open_k[o]]]
        outcome = 1 if total + EPS >= wanted else 2
        for x in range(placed.n):
            f = placed.fac[x]
            if chosen[f] != stamp:
                chosen[f] = stamp
                k = first + n_chosen
                while k > first and explain.c_fac[k - 1] > f:
                    explain.c_fac[k] = explain.c_fac[k - 1]
                    k -= 1
                explain.c_fac[k] = f
                n_chosen += 1
    explain.r_outcome[row] = outcome
    explain.r_chosen[row] = first
    explain.r_n_chosen[row] = n_chosen
    counts[ir.CHOSEN] = first + n_chosen
    weight, volume = _open_package(rates, items, at)
    for k in range(first, first + n_chosen):
        f = explain.c_fac[k]
        explain.c_dist[k] = measures.dist[f] if measures.has[f] else np.nan
        explain.c_bal[k] = measures.bal[f]
        explain.c_full[k] = measures.full[f]
        explain.c_cost[k] = np.nan
        explain.c_day[k] = np.nan
        if c >= 0:
            z = _zone_at(cache, at.ui, f, u, c, facilities, units, rates)
            explain.c_cost[k] = _package_cost(rates, c, z, f, weight, volume)
            if z >= 0:
                explain.c_day[k] = delivery_day(rates.leaves[f], rates.transit[c], z)
    # the facilities holding some of the unit's products
    hold = scratch.hold
    for m in range(at.n_need):
        p = at.need_p[m]
        for j in range(stock.p_ptr[p], stock.p_ptr[p + 1]):
            if stock.net[j] > EPS:
                hold[stock.fac[j]] = stamp
    # `max_facilities`: the facilities the ship group ships from, with the chosen
    cap = rules.cap[r]
    shipping = 0
    if cap >= 0:
        n_fac = facilities.has.shape[0]
        shipping = used.per_group[at.sgk]
        for k in range(first, first + n_chosen):
            key = at.sgk * n_fac + explain.c_fac[k]
            if used.keys[_slot(used.keys, key)] != key:
                shipping += 1
    n_asked = explain.a_int.shape[1]
    if n_asked > 0:
        explain.r_shipping[row] = used.per_group[at.sgk] if cap >= 0 else 0
        _asked_rows(explain, row, at)
    static = rules.static[r]
    check_limit = not rules.ignore_limit[r]
    n_checks, excl_at = explain.n[r], explain.excl_at[r]
    reason = explain.reason[r]
    for f in range(static.shape[0]):
        if not static[f] or chosen[f] == stamp:
            continue
        item = -1  # what the reason compared, for a facility asked about
        value = np.nan
        cost = np.nan
        if check_limit and facilities.limit[f] >= 0 and \
                facilities.orders_today[f] >= facilities.limit[f]:
            column = ir.REASON_LIMIT
            value = float(facilities.orders_today[f])
        elif hold[f] != stamp:
            column = ir.REASON_NO_STOCK
        else:
            column = -1
            if c >= 0:
                cost = _package_cost(rates, c,
                                     _zone_at(cache, at.ui, f, u, c, facilities, units, rates),
                                     f, weight, volume)
            for k in range(n_checks):
                if k == excl_at:
                    item = _excluding(items, at, f)
                    if item >= 0:
                        column = ir.REASON_EXCLUDED
                        break
                failed, value = _check_fails(explain.stage[r, k], explain.pos[r, k], at, f,
                                             tables, cache, cost, scratch)
                if failed != PASSES:
                    column = ir.N_FIXED_REASONS + k
                    item = failed
                    break
            if column < 0 and excl_at >= n_checks:
                item = _excluding(items, at, f)
                if item >= 0:
                    column = ir.REASON_EXCLUDED
            if column < 0 and cap >= 0:
                key = at.sgk * facilities.has.shape[0] + f
                if used.keys[_slot(used.keys, key)] != key and shipping >= cap:
                    column = ir.REASON_CAP
            if column < 0 and rules.single[r]:
                for m in range(at.n_need):
                    if _net(stock, at.need_p[m], f)[0] + EPS < at.need_q[m]:
                        column = ir.REASON_SINGLE
                        break
            if column < 0:
                column = ir.REASON_REJECTED if rejected else ir.REASON_RANKED
        if n_asked > 0 and explain.asked[f] >= 0:
            _asked_detail(explain, row, explain.asked[f], f, column, item, value, cost, at,
                          tables, cache, measures)
        t = reason[column]
        seen = explain.r_count[row, t]
        if seen < 3:
            explain.r_examples[row, t, seen] = f
        explain.r_count[row, t] = seen + 1
