"""The compiled allocation loop: one routing's sorted units through its rules.

Everything here is numbers: facilities, products and items are integer ids, stock is one
array per (product, facility) row grouped by product (`p_ptr`, `s_fac`, `s_net`), and a rule
is a row of parameter arrays. The procedure is the reference interpreter's, step for step
(docs/semantics.md), with the same epsilon tests and the same order of floating-point
operations, so both engines give the same bytes. What the Python driver prepares: eligibility,
filters and the unit order (shared with the reference), each rule's static facility mask, and
radians of every coordinate.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..criteria import REGISTRY
from ..criteria._jit import EPS, KM_PER_MILE, compare as _compare, find_row as _find
from ..criteria.lifecycle import days_since_refusal, not_refused_within
from .jit import jit, sort_value

EARTH_RADIUS_KM = 6371.0088

# inventory sort -> the code `sort_value` dispatches on (the registry's order)
SORT_FIELDS = {name: code for code, name in enumerate(REGISTRY("inventory_sort"))}
SORT_EXCLUDES = np.array([c.excludes_missing for c in REGISTRY("inventory_sort").values()],
                         np.bool_)

# What the velocity and style sorts read: velocity by product (rows v_ptr[p]:v_ptr[p + 1] of
# v_fac/v_val, by facility), each product's style (-1: none), each style's variants (codes,
# -1 for a variant no row or line names) and how many it has; which sorts drop a facility
# without a value.
SortTables = namedtuple("SortTables", "v_ptr v_fac v_val style_of style_ptr style_var "
                                      "style_size sort_excludes")
# What an inventory sort's kernel function reads (criteria: ``kernel(view, r, f, n)``): the
# placed products (the first n, in id order), the candidates' measures (distance in the
# rule's unit, balance), the rules' sequence numbers, the shipping keys of the step being
# ranked and the rules' split costs, the stock, the tables above and the facilities' counts.
RankView = namedtuple("RankView", "products c_has c_dist bal seq ship_rank ship_new "
                                  "split_distance ship_added split_money ship_delivery p_ptr "
                                  "s_fac s_net v_ptr v_fac v_val style_of style_ptr style_var "
                                  "style_size orders_today f_limit sort_excludes")
# what happened last to an item that stays open: as the result's unfillable "action" says it
ACTIONS = ("left", "auto_cancel_cleared", "auto_cancel_set", "moved")
AC_UNCHANGED, AC_NONE = -2, -1  # auto-cancel codes; >= 0 is "now + that many days"
NO_DATE = 2 ** 40  # shipping.NO_DATE: an item without a promised date


@jit(inline="always")
def _net(p_ptr, s_fac, s_net, p, f):
    """Net stock of product ``p`` at facility ``f`` (0.0 without a row) and the row, or -1."""
    pos = _find(s_fac, p_ptr[p], p_ptr[p + 1], f)
    if pos < 0:
        return 0.0, pos
    return s_net[pos], pos


@jit
def _less(keys, a, b, width):
    for k in range(width):
        if keys[a, k] < keys[b, k]:
            return True
        if keys[a, k] > keys[b, k]:
            return False
    return False


@jit
def _sort_rows(keys, n, width, order, buffer):
    """Row indices 0..n-1 ordered by their key rows (merge sort; keys end with the facility,
    so no two rows tie), in ``order`` or ``buffer`` (scratch, both at least n long): the one
    returned."""
    for k in range(n):
        order[k] = k
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
        run *= 2
    return order


@jit(inline="always")
def _km(phi1, lam1, cos1, phi2, lam2, cos2):
    """`interpreter._haversine_radians`, operation for operation."""
    a = math.sin((phi2 - phi1) / 2) ** 2 + cos1 * cos2 * math.sin((lam2 - lam1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@jit(inline="always")
def _zone_of(c, f, dest, has_km, km, rates):
    """`shipping._zone`: the card's zone chart, else its distance bands; -1 for none."""
    band, scalars, miles, origin = rates[0], rates[4], rates[5], rates[6]
    chart_ptr, columns, chart = rates[7], rates[8], rates[9]
    if c < 0:
        return -1
    o = origin[c, f]
    if o >= 0 and dest >= 0:
        z = chart[chart_ptr[c] + o * columns[c] + dest]
        if z >= 0:
            return z
    if not has_km:
        return -1
    d = km / KM_PER_MILE if miles[c] else km
    for z in range(int(scalars[c, 0])):
        if d <= band[c, z] + EPS:
            return z
    return -1


@jit(inline="always")
def _zone_at(f, ui, u, c, u_dest, f_has, u_has, f_phi, f_lam, f_cos, u_phi, u_lam, u_cos,
             dist_stamp, km_cache, zone_stamp, zone_cache, rates):
    """The zone of a package from ``f`` to unit ``u`` (the ``ui``-th routed), once per unit;
    the distance, when needed, from the unit's distance cache."""
    if zone_stamp[f] != ui + 1:
        has_km = f_has[f] and u_has[u]
        km = 0.0
        if has_km:
            if dist_stamp[f] != ui + 1:
                km_cache[f] = _km(f_phi[f], f_lam[f], f_cos[f], u_phi[u], u_lam[u], u_cos[u])
                dist_stamp[f] = ui + 1
            km = km_cache[f]
        zone_cache[f] = _zone_of(c, f, u_dest[u], has_km, km, rates)
        zone_stamp[f] = ui + 1
    return zone_cache[f]


@jit(inline="always")
def _bucket(c, weight, volume, weights, scalars):
    """The weight bucket of a package (`shipping._cost`'s billable weight), -1 for none."""
    if c < 0 or weight != weight:
        return -1
    billable = weight
    divisor = scalars[c, 2]
    if divisor > 0.0:
        dimensional = volume / divisor
        if dimensional > billable:
            billable = dimensional
    rounded = math.ceil(billable - EPS)
    for b in range(int(scalars[c, 1])):
        if rounded <= weights[c, b] + EPS:
            return b
    return -1


@jit(inline="always")
def _price(c, z, f, b, price, scalars, handling):
    """A package's cost in bucket ``b`` of zone ``z`` from ``f`` (NaN without either)."""
    if b < 0 or z < 0:
        return np.nan
    return (price[c, z, b] + scalars[c, 3]) * scalars[c, 4] + handling[f]


@jit(inline="always")
def _package_cost(c, z, f, weight, volume, price, weights, scalars, handling):
    """`shipping._cost`, operation for operation: NaN when it cannot be priced."""
    return _price(c, z, f, _bucket(c, weight, volume, weights, scalars), price, scalars,
                  handling)


@jit
def _first_filling(r, ks, n_k, u0, unit_items, order, n_rank, keys, last, it_prod, it_open,
                   it_excl_ptr, it_excl, p_ptr, s_fac, s_net, r_has_safety, r_safety_op,
                   r_safety_thr, pend_f, pend_p, pend_q, n_pend, promise, refused, cap):
    """The first ranked facility that can fill every one of the items ``ks`` in full (open
    quantities of the same product summed, in item order) and that ``cap`` lets ship
    (`_may_open`), or -1."""
    for h in range(n_rank):
        f = int(keys[order[h], last])
        if not _may_open(f, cap):
            continue
        ok = True
        for o in range(n_k):
            i = unit_items[u0 + ks[o]]
            need = 0.0
            for o2 in range(n_k):
                i2 = unit_items[u0 + ks[o2]]
                if it_prod[i2] == it_prod[i]:
                    need += it_open[i2]
            if not _can_serve(r, i, f, need, True, it_prod, it_open, it_excl_ptr, it_excl,
                              p_ptr, s_fac, s_net, r_has_safety, r_safety_op, r_safety_thr,
                              pend_f, pend_p, pend_q, n_pend, promise, refused):
                ok = False
                break
        if ok:
            return f
    return -1


@jit(inline="always")
def _excluded(it_excl_ptr, it_excl, i, f):
    for k in range(it_excl_ptr[i], it_excl_ptr[i + 1]):
        if it_excl[k] == f:
            return True
    return False


@jit(inline="always")
def _refused(refused, i, f):
    """Whether the rule's `not rejected within N days` keeps ``f`` from item ``i``
    (criteria.lifecycle): ``refused`` holds N (NaN: no such condition), today's day ordinal
    and the items' rejections as columns."""
    days, today, ptr, facilities, on = refused
    if days != days:
        return False
    return not not_refused_within(0, days, days_since_refusal(today, ptr, facilities, on, i, f),
                                  0.0)


@jit(inline="always")
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


@jit(inline="always")
def _may_open(f, cap):
    """`interpreter._may_open`: under `max_facilities` (``cap``: N, -1 for none, the unit's
    ship group key, the number of facilities, the run's table of (ship group, facility)
    pairs in use and its count per ship group, the rule's placements so far), a facility the
    ship group already ships from (in the run or this rule) may take more; another only while
    fewer than N do."""
    n, sgk, n_fac, used_keys, sg_used, pl_fac, n_pl = cap
    if n < 0:
        return True
    for x in range(n_pl):
        if pl_fac[x] == f:
            return True
    key = sgk * n_fac + f
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
        other = sgk * n_fac + g
        if first and used_keys[_slot(used_keys, other)] != other:
            extra += 1
    return sg_used[sgk] + extra < n


@jit
def route_units(start, units, unit_ptr, unit_items, u_has, u_phi, u_lam, u_cos,
                it_prod, it_open, it_queue, it_ac, it_group, it_excl_ptr, it_excl,
                it_price, it_adj, it_qty,
                f_has, f_phi, f_lam, f_cos, f_limit, orders_today,
                p_ptr, s_fac, s_net, s_alloc,
                r_single, r_ignore_limit, r_keep, r_only_all, r_threshold, r_factor,
                r_uses_dist, r_miles, r_ndist, r_dist_op, r_dist_km, r_has_safety,
                r_safety_op, r_safety_thr, r_nsort, r_sort_field, r_sort_desc, r_sort_nf,
                r_clear_ac, r_ac_days, r_move, r_static, r_seq, shipping, u_card, u_dest,
                it_promise, rates, tables, lifecycle,
                a_unit, a_item, a_fac, a_qty, a_rule, a_dist, a_new, a_first, a_cost, a_weight,
                a_transit, a_delivery, x_unit, x_item, x_open,
                x_rule, x_action, counts, brokered, fac_warn, unit_warn):
    """Route units[start:] in order. Returns (next unit, rows it needs) when the output
    arrays are too small for the next unit (the caller grows them and calls again), else
    (len(units), 0). ``shipping`` holds the rules' shipping settings (see fast._rule_arrays),
    ``rates`` the rate model's arrays (shipping.RateModel.arrays), ``lifecycle`` the rules'
    `not rejected within` days and `max_facilities`, the items' rejections and the run's
    table of (ship group, facility) pairs in use (fast._lifecycle): when that table could
    fill past half for the next unit, counts[3] is set and (next unit, 0) returned, for the
    caller to grow it."""
    r_refuse, today, rej_ptr, rej_fac, rej_day = lifecycle[0], lifecycle[1], lifecycle[2], \
        lifecycle[3], lifecycle[4]
    r_cap, u_sgk, used_keys, sg_used, used_n = lifecycle[5], lifecycle[6], lifecycle[7], \
        lifecycle[8], lifecycle[9]
    tracking = used_keys.shape[0] > 1
    r_uses_zone, r_ntransit, r_transit_op, r_transit_days = shipping[0], shipping[2], \
        shipping[3], shipping[4]
    r_promise_op, r_split_dist, r_ship_rank = shipping[8], shipping[10], shipping[11]
    transit, pw, pv, leaves = rates[1], rates[10], rates[11], rates[13]
    n_fac = f_has.shape[0]
    n_rules = r_single.shape[0]
    cand_stamp = np.zeros(n_fac, np.int64)
    seen_stamp = np.zeros(n_fac, np.int64)
    dist_stamp = np.zeros(n_fac, np.int64)
    km_cache = np.zeros(n_fac)
    c_dist = np.zeros(n_fac)
    c_has = np.zeros(n_fac, np.bool_)
    bal = np.zeros(n_fac)
    full = np.zeros(n_fac, np.int64)
    cand_list = np.empty(n_fac, np.int64)
    holders = np.empty(n_fac, np.int64)
    zone_stamp = np.zeros(n_fac, np.int64)
    zone_cache = np.full(n_fac, -1, np.int64)
    pk_stamp = np.zeros(n_fac, np.int64)  # facilities with a package in the rule (stamp)
    pk_w = np.zeros(n_fac)
    pk_v = np.zeros(n_fac)
    ship_added = np.zeros(n_fac)  # _shipping_keys of the step being ranked
    ship_ok = np.ones(n_fac, np.bool_)
    ship_new = np.zeros(n_fac, np.bool_)
    ship_delivery = np.zeros(n_fac)
    stamp = 0
    # scratch for the largest unit, made once: a placement per (item, facility holding it)
    most_items, most_rows = 1, 1
    for ui in range(start, len(units)):
        u = units[ui]
        rows = 0
        for k in range(unit_ptr[u], unit_ptr[u + 1]):
            p = it_prod[unit_items[k]]
            rows += p_ptr[p + 1] - p_ptr[p]
        most_items = max(most_items, unit_ptr[u + 1] - unit_ptr[u])
        most_rows = max(most_rows, rows + 1)
    pl_item = np.empty(most_rows, np.int64)
    pl_fac = np.empty(most_rows, np.int64)
    pl_qty = np.empty(most_rows)
    pend_f = np.empty(most_rows, np.int64)
    pend_p = np.empty(most_rows, np.int64)
    pend_q = np.empty(most_rows)
    pf_fac = np.empty(most_rows, np.int64)
    pf_val = np.empty(most_rows)
    last_rule = np.empty(most_items, np.int64)
    last_action = np.empty(most_items, np.int64)
    open_k = np.empty(most_items, np.int64)
    need_p = np.empty(most_items, np.int64)
    need_q = np.empty(most_items)
    step_of = np.empty(most_items, np.int64)
    step_k = np.empty(most_items, np.int64)
    filled = np.empty(most_items)
    products = np.empty(most_items, np.int64)
    view = RankView(products, c_has, c_dist, bal, r_seq, r_ship_rank, ship_new, r_split_dist,
                    ship_added, shipping[9], ship_delivery, p_ptr, s_fac, s_net, tables.v_ptr,
                    tables.v_fac, tables.v_val, tables.style_of, tables.style_ptr,
                    tables.style_var, tables.style_size, orders_today, f_limit,
                    tables.sort_excludes)
    width = 2 * (max(r_nsort) if n_rules else 0) + 3
    keys = np.empty((n_fac, width))
    order_a = np.empty(n_fac, np.int64)
    order_b = np.empty(n_fac, np.int64)
    for ui in range(start, len(units)):
        u = units[ui]
        u0, u1 = unit_ptr[u], unit_ptr[u + 1]
        n_items = u1 - u0
        bound = 0
        for k in range(u0, u1):
            p = it_prod[unit_items[k]]
            bound += p_ptr[p + 1] - p_ptr[p]
        bound = bound * n_rules + 1
        if counts[0] + bound > a_unit.shape[0]:
            return ui, bound
        if tracking and 2 * (used_n[0] + min(bound, n_fac)) > used_keys.shape[0]:
            counts[3] = 1
            return ui, 0
        sgk = u_sgk[u]
        for k in range(n_items):
            last_rule[k] = -1
            last_action[k] = 0
        c = u_card[u]
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
            refused = (r_refuse[r], today, rej_ptr, rej_fac, rej_day)
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
            static = r_static[r]
            if r_single[r]:
                p0 = need_p[0]
                for j in range(p_ptr[p0], p_ptr[p0 + 1]):
                    f = s_fac[j]
                    if not static[f] or not s_net[j] + EPS >= need_q[0]:
                        continue
                    ok = True
                    for m in range(1, n_need):
                        q, pos = _net(p_ptr, s_fac, s_net, need_p[m], f)
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
            n_cand = 0
            for h in range(n_hold):
                f = holders[h]
                if not r_ignore_limit[r] and f_limit[f] >= 0 and orders_today[f] >= f_limit[f]:
                    continue
                has = False
                d = 0.0
                if r_uses_dist[r]:
                    if f_has[f] and u_has[u]:
                        has = True
                        if dist_stamp[f] != ui + 1:
                            km_cache[f] = _km(f_phi[f], f_lam[f], f_cos[f], u_phi[u], u_lam[u],
                                              u_cos[u])
                            dist_stamp[f] = ui + 1
                        d = km_cache[f]
                    else:
                        if not f_has[f]:
                            fac_warn[f] = True
                        if not u_has[u]:
                            unit_warn[u] = True
                if r_ndist[r] > 0:
                    if not has:
                        continue
                    passes = True
                    for m in range(r_ndist[r]):
                        if not _compare(r_dist_op[r, m], d, r_dist_km[r, m]):
                            passes = False
                            break
                    if not passes:
                        continue
                if r_uses_zone[r]:
                    z = _zone_at(f, ui, u, c, u_dest, f_has, u_has, f_phi, f_lam, f_cos, u_phi,
                                 u_lam, u_cos, dist_stamp, km_cache, zone_stamp, zone_cache,
                                 rates)
                    if r_ntransit[r] > 0:
                        if z < 0:
                            continue
                        passes = True
                        for m in range(r_ntransit[r]):
                            if not _compare(r_transit_op[r, m], transit[c, z],
                                            r_transit_days[r, m]):
                                passes = False
                                break
                        if not passes:
                            continue
                cand_stamp[f] = stamp
                cand_list[n_cand] = f
                n_cand += 1
                c_has[f] = has
                c_dist[f] = d * r_factor[r] if has else 0.0
            # ---- measures that do not depend on what is placed ----
            wants_balance = shipping[12][r]  # a sort needs the unit's net stock
            for cc in range(n_cand):
                bal[cand_list[cc]] = 0.0
                full[cand_list[cc]] = n_open if r_single[r] else 0
            if wants_balance:
                for j0 in range(n_need):
                    p = need_p[j0]
                    for j in range(p_ptr[p], p_ptr[p + 1]):
                        if cand_stamp[s_fac[j]] == stamp and s_net[j] > 0:
                            bal[s_fac[j]] += s_net[j]
            if not r_single[r]:
                for o in range(n_open):
                    i = unit_items[u0 + open_k[o]]
                    need = it_open[i]
                    p = it_prod[i]
                    for j in range(p_ptr[p], p_ptr[p + 1]):
                        f = s_fac[j]
                        if cand_stamp[f] != stamp:
                            continue
                        q = s_net[j]
                        if q + EPS < need or _excluded(it_excl_ptr, it_excl, i, f) or \
                                _refused(refused, i, f):
                            continue
                        if r_promise_op[r] >= 0 and it_promise[i] != NO_DATE and (
                                zone_cache[f] < 0 or not _compare(
                                    r_promise_op[r], leaves[f] + transit[c, zone_cache[f]],
                                    it_promise[i])):
                            continue
                        if r_has_safety[r] and not (
                                q > EPS and _compare(r_safety_op[r], q, r_safety_thr[r])
                                and not q + EPS < it_open[i]):
                            continue
                        full[f] += 1
            # ---- assignment ----
            n_pl = 0
            n_pend = 0
            n_pk = 0
            promise = (r_promise_op[r], it_promise, zone_cache, leaves, transit[max(c, 0)])
            if r_single[r]:
                if r_ship_rank[r]:
                    _shipping_keys(r, open_k, n_open, u0, unit_items, it_prod, it_open,
                                   cand_list, n_cand, stamp, n_pk + unit_pk, c, zone_cache,
                                   pk_stamp, pk_w, pk_v, shipping, rates, ship_added, ship_ok,
                                   ship_new, ship_delivery)
                n_rank, order = _rank(r, open_k, n_open, u0, unit_items, it_prod, it_open,
                                      p_ptr, s_fac, s_net, cand_list, n_cand, cand_stamp,
                                      stamp, full, r_nsort, r_sort_field, r_sort_desc,
                                      r_sort_nf, holders, keys, order_a, order_b,
                                      r_ship_rank[r], ship_ok, view)
                last = 2 * r_nsort[r] + 2
                f = _first_filling(r, open_k, n_open, u0, unit_items, order, n_rank, keys, last,
                                   it_prod, it_open, it_excl_ptr, it_excl, p_ptr, s_fac, s_net,
                                   r_has_safety, r_safety_op, r_safety_thr, pend_f, pend_p,
                                   pend_q, n_pend, promise, refused,
                                   (r_cap[r], sgk, n_fac, used_keys, sg_used, pl_fac, n_pl))
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
                    if r_keep[r] and it_group[i] >= 0:
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
                    first = unit_items[u0 + step_k[0]]
                    if r_ship_rank[r]:
                        _shipping_keys(r, step_k, n_step, u0, unit_items, it_prod, it_open,
                                       cand_list, n_cand, stamp, n_pk + unit_pk, c, zone_cache,
                                       pk_stamp, pk_w, pk_v, shipping, rates, ship_added,
                                       ship_ok, ship_new, ship_delivery)
                    n_rank, order = _rank(r, step_k, n_step, u0, unit_items, it_prod, it_open,
                                          p_ptr, s_fac, s_net, cand_list, n_cand, cand_stamp,
                                          stamp, full, r_nsort, r_sort_field, r_sort_desc,
                                          r_sort_nf, holders, keys, order_a, order_b,
                                          r_ship_rank[r], ship_ok, view)
                    last = 2 * r_nsort[r] + 2
                    if r_keep[r] and it_group[first] >= 0:
                        f = _first_filling(r, step_k, n_step, u0, unit_items, order, n_rank,
                                           keys, last, it_prod, it_open, it_excl_ptr, it_excl,
                                           p_ptr, s_fac, s_net, r_has_safety, r_safety_op,
                                           r_safety_thr, pend_f, pend_p, pend_q, n_pend,
                                           promise, refused,
                                           (r_cap[r], sgk, n_fac, used_keys, sg_used, pl_fac,
                                            n_pl))
                        if f >= 0:
                            for o in range(n_step):
                                i = unit_items[u0 + step_k[o]]
                                pl_item[n_pl] = i
                                pl_fac[n_pl] = f
                                pl_qty[n_pl] = it_open[i]
                                n_pl += 1
                                n_pend = _add_pending(pend_f, pend_p, pend_q, n_pend, f,
                                                      it_prod[i], it_open[i])
                                n_pk = _pack(f, it_prod[i], it_open[i], c, stamp, pk_stamp,
                                             pk_w, pk_v, pw, pv, n_pk)
                        continue
                    i = first
                    p = it_prod[i]
                    remaining = it_open[i]
                    for h in range(n_rank):
                        f = int(keys[order[h], last])
                        if not _may_open(f, (r_cap[r], sgk, n_fac, used_keys, sg_used, pl_fac,
                                             n_pl)) or \
                                not _can_serve(r, i, f, 0.0, False, it_prod, it_open,
                                               it_excl_ptr, it_excl, p_ptr, s_fac, s_net,
                                               r_has_safety, r_safety_op, r_safety_thr, pend_f,
                                               pend_p, pend_q, n_pend, promise, refused):
                            continue
                        available = _net(p_ptr, s_fac, s_net, p, f)[0] - _pending(
                            pend_f, pend_p, pend_q, n_pend, f, p)
                        if r_has_safety[r]:
                            if available + EPS < remaining:
                                continue
                            take = remaining
                        else:
                            take = available if available <= remaining else remaining
                        pl_item[n_pl] = i
                        pl_fac[n_pl] = f
                        pl_qty[n_pl] = take
                        n_pl += 1
                        n_pend = _add_pending(pend_f, pend_p, pend_q, n_pend, f, p, take)
                        n_pk = _pack(f, p, take, c, stamp, pk_stamp, pk_w, pk_v, pw, pv, n_pk)
                        remaining -= take
                        if remaining <= EPS:
                            break
            # ---- the rule's checks ----
            rejected = False
            if n_pl > 0:
                n_pf = 0
                for o in range(n_open):
                    filled[o] = 0.0
                for x in range(n_pl):
                    i, f, q = pl_item[x], pl_fac[x], pl_qty[x]
                    for o in range(n_open):
                        if unit_items[u0 + open_k[o]] == i:
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
                    if not filled[o] + EPS >= it_open[unit_items[u0 + open_k[o]]]:
                        complete = False
                if r_only_all[r] and not complete:
                    rejected = True
                threshold = r_threshold[r]
                if not rejected and threshold != 0.0 and not (n_pf == 1 and complete):
                    for y in range(n_pf):
                        if pf_val[y] + EPS < threshold:
                            rejected = True
                    if not rejected and not complete:
                        open_value = 0.0
                        for o in range(n_open):
                            i = unit_items[u0 + open_k[o]]
                            rest = it_open[i] - filled[o]
                            if rest > EPS:
                                open_value += rest * it_price[i] + it_adj[i] * (rest / it_qty[i])
                        if open_value + EPS < threshold:
                            rejected = True
            # ---- commit ----
            if not rejected and n_pl > 0:
                n_new = 0
                for x in range(n_pl):
                    i, f, q = pl_item[x], pl_fac[x], pl_qty[x]
                    new = True
                    a_first[counts[0]] = counts[0]
                    for y in range(x):
                        if pl_fac[y] == f:
                            new = False
                            a_first[counts[0]] = counts[0] - x + y
                            break
                    if new:
                        n_new += 1
                        unit_pk += 1
                        orders_today[f] += 1
                        if tracking:  # the ship group ships from f: max_facilities counts it
                            key = sgk * n_fac + f
                            slot = _slot(used_keys, key)
                            if used_keys[slot] != key:
                                used_keys[slot] = key
                                sg_used[sgk] += 1
                                used_n[0] += 1
                    pos = _net(p_ptr, s_fac, s_net, it_prod[i], f)[1]
                    s_net[pos] -= q
                    s_alloc[pos] += q
                    it_open[i] -= q
                    it_ac[i] = AC_NONE
                    brokered[i] = True
                    row = counts[0]
                    a_unit[row] = u
                    a_item[row] = i
                    a_fac[row] = f
                    a_qty[row] = q
                    a_rule[row] = r
                    a_new[row] = new
                    if f_has[f] and u_has[u]:
                        if dist_stamp[f] != ui + 1:
                            km_cache[f] = _km(f_phi[f], f_lam[f], f_cos[f], u_phi[u], u_lam[u],
                                              u_cos[u])
                            dist_stamp[f] = ui + 1
                        a_dist[row] = km_cache[f] / KM_PER_MILE if r_miles[r] else km_cache[f]
                    else:
                        a_dist[row] = np.nan
                    counts[0] = row + 1
                # ---- the packages' costs (interpreter._price) ----
                first_row = counts[0] - n_pl
                for x in range(n_pl):
                    row = first_row + x
                    f, p, q = pl_fac[x], it_prod[pl_item[x]], pl_qty[x]
                    a_cost[row] = np.nan
                    a_weight[row] = 0.0
                    a_transit[row] = -1
                    a_delivery[row] = -1
                    if c < 0:
                        continue
                    if a_new[row]:
                        pk_stamp[f] = -stamp  # this commit's package at f (the rule's are done)
                        pk_w[f] = 0.0
                        pk_v[f] = 0.0
                    a_weight[row] = pw[c, p] * q
                    pk_w[f] += pw[c, p] * q
                    pk_v[f] += pv[c, p] * q
                if c >= 0:
                    for x in range(n_pl):
                        row = first_row + x
                        f = pl_fac[x]
                        z = _zone_at(f, ui, u, c, u_dest, f_has, u_has, f_phi, f_lam, f_cos,
                                     u_phi, u_lam, u_cos, dist_stamp, km_cache, zone_stamp,
                                     zone_cache, rates)
                        a_cost[row] = _package_cost(c, z, f, pk_w[f], pk_v[f], rates[2],
                                                    rates[3], rates[4], rates[12])
                        if z >= 0:
                            a_transit[row] = transit[c, z]
                            a_delivery[row] = leaves[f] + transit[c, z]
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
                    if r_clear_ac[r]:
                        it_ac[i] = AC_NONE
                        last_action[open_k[o]] = 1
                    elif r_ac_days[r] >= 0:
                        it_ac[i] = r_ac_days[r]
                        last_action[open_k[o]] = 2
                    if r_move[r] >= 0:
                        it_queue[i] = r_move[r]
                        last_action[open_k[o]] = 3
                moved = r_move[r] >= 0
            if moved:
                break
        for k in range(n_items):
            i = unit_items[u0 + k]
            if it_open[i] > EPS:
                row = counts[1]
                x_unit[row] = u
                x_item[row] = i
                x_open[row] = it_open[i]
                x_rule[row] = last_rule[k]
                x_action[row] = last_action[k]
                counts[1] = row + 1
    return len(units), 0


@jit(inline="always")
def _pack(f, p, q, c, stamp, pk_stamp, pk_w, pk_v, pw, pv, n_pk):
    """Add ``q`` units of product ``p`` to the rule's package at ``f`` (interpreter._pack);
    returns how many facilities have one."""
    if pk_stamp[f] != stamp:
        pk_stamp[f] = stamp
        pk_w[f] = 0.0
        pk_v[f] = 0.0
        n_pk += 1
    w = np.nan
    v = 0.0
    if c >= 0:
        w = pw[c, p]
        v = pv[c, p]
    pk_w[f] += w * q
    pk_v[f] += v * q
    return n_pk


@jit(inline="always")
def _pending(pend_f, pend_p, pend_q, n_pend, f, p):
    for k in range(n_pend):
        if pend_f[k] == f and pend_p[k] == p:
            return pend_q[k]
    return 0.0


@jit(inline="always")
def _add_pending(pend_f, pend_p, pend_q, n_pend, f, p, q):
    for k in range(n_pend):
        if pend_f[k] == f and pend_p[k] == p:
            pend_q[k] = pend_q[k] + q
            return n_pend
    pend_f[n_pend] = f
    pend_p[n_pend] = p
    pend_q[n_pend] = 0.0 + q
    return n_pend + 1


@jit
def _can_serve(r, i, f, need, has_need, it_prod, it_open, it_excl_ptr, it_excl, p_ptr, s_fac,
               s_net, r_has_safety, r_safety_op, r_safety_thr, pend_f, pend_p, pend_q, n_pend,
               promise, refused):
    """Whether facility ``f`` may give stock for item ``i`` (all of ``need`` if has_need).
    ``promise``: the rule's `delivery_date` operator (-1 for none), the items' promised days,
    the unit's zones, the day each facility's packages leave and the unit's card's transit
    days per zone."""
    if _excluded(it_excl_ptr, it_excl, i, f) or _refused(refused, i, f):
        return False
    promise_op, it_promise, zone_cache, leaves, transit = promise
    if promise_op >= 0 and it_promise[i] != NO_DATE:
        z = zone_cache[f]
        if z < 0:
            return False
        if not _compare(promise_op, leaves[f] + transit[z], it_promise[i]):
            return False
    p = it_prod[i]
    available = _net(p_ptr, s_fac, s_net, p, f)[0] - _pending(pend_f, pend_p, pend_q, n_pend,
                                                             f, p)
    if available <= EPS:
        return False
    if r_has_safety[r]:
        if not _compare(r_safety_op[r], available, r_safety_thr[r]) or \
                available + EPS < it_open[i]:
            return False
    return not has_need or available + EPS >= need


@jit(inline="always")
def _shipping_keys(r, step_k, n_step, u0, unit_items, it_prod, it_open, cand_list, n_cand,
                   stamp, opened, c, zone_cache, pk_stamp, pk_w, pk_v, shipping, rates,
                   ship_added, ship_ok, ship_new, ship_delivery):
    """Per candidate, what `_rank` needs of shipping for placing the step's items
    (interpreter._ranking): whether it would open a new package, the cost the package there
    would have and whether it passes the rule's cost limits, what placing adds and the
    delivery day (NaN: unknown)."""
    r_costs, r_ncost, r_cost_op, r_cost_lim = shipping[1], shipping[5], shipping[6], shipping[7]
    transit, price, weights, scalars = rates[1], rates[2], rates[3], rates[4]
    pw, pv, handling, leaves = rates[10], rates[11], rates[12], rates[13]
    costs = r_costs[r]
    weight = 0.0
    volume = 0.0
    if costs:  # interpreter._weight of the placed items
        for o in range(n_step):
            i = unit_items[u0 + step_k[o]]
            if c < 0:
                weight = np.nan
                volume = 0.0
                break
            weight += pw[c, it_prod[i]] * it_open[i]
            volume += pv[c, it_prod[i]] * it_open[i]
    alone = _bucket(c, weight, volume, weights, scalars) if costs else -1
    for k in range(n_cand):
        f = cand_list[k]
        has_package = pk_stamp[f] == stamp
        ship_new[f] = opened > 0 and not has_package
        ship_ok[f] = True
        z = zone_cache[f]
        ship_delivery[f] = leaves[f] + transit[c, z] if c >= 0 and z >= 0 else np.nan
        if not costs:
            continue
        if has_package:
            total = _package_cost(c, z, f, pk_w[f] + weight, pk_v[f] + volume, price, weights,
                                  scalars, handling)
        else:  # 0.0 + weight is weight: the step's own bucket
            total = _price(c, z, f, alone, price, scalars, handling)
        if r_ncost[r] > 0:
            passes = total == total
            for m in range(r_ncost[r]):
                if passes and not _compare(r_cost_op[r, m], total, r_cost_lim[r, m]):
                    passes = False
            ship_ok[f] = passes
        added = total - (_package_cost(c, z, f, pk_w[f], pk_v[f], price, weights, scalars,
                                       handling) if has_package else 0.0)
        ship_added[f] = added


@jit
def _rank(r, step_k, n_step, u0, unit_items, it_prod, it_open, p_ptr, s_fac, s_net,
          cand_list, n_cand, cand_stamp, stamp, full, r_nsort, r_sort_field, r_sort_desc,
          r_sort_nf, holding, keys, order_a, order_b, shipping_keys, ship_ok, view):
    """Candidates holding every placed product, in rank order: the rule's sorts, then more
    items in full, then (one item placed) its availability there, then facility id. Fills the
    first rows of ``keys`` (the facility in column 2 * sorts + 2) and returns how many, and
    the row order. Each sort's value is its criterion's (`sort_value` over ``view``; NaN:
    missing, which drops the facility for a sort that ``sort_excludes``). With
    ``shipping_keys``, a facility whose package fails the rule's cost limits (``ship_ok``) is
    left out."""
    products = view.products
    n_products = 0
    for o in range(n_step):
        p = it_prod[unit_items[u0 + step_k[o]]]
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
            if s_net[j] > EPS and cand_stamp[s_fac[j]] == stamp:
                holding[n_hold] = s_fac[j]
                n_hold += 1
    else:
        for c2 in range(n_cand):
            f = cand_list[c2]
            ok = True
            for m in range(n_products):
                if not _net(p_ptr, s_fac, s_net, products[m], f)[0] > EPS:
                    ok = False
                    break
            if ok:
                holding[n_hold] = f
                n_hold += 1
    n_sort = r_nsort[r]
    width = 2 * n_sort + 3
    single = unit_items[u0 + step_k[0]] if n_step == 1 else -1
    n_row = 0
    for h in range(n_hold):
        f = holding[h]
        if shipping_keys and not ship_ok[f]:
            continue
        dropped = False
        for m in range(n_sort):
            code = r_sort_field[r, m]
            value = sort_value(code, view, r, f, n_products)
            if value == value:
                keys[n_row, 2 * m] = 0.0
                keys[n_row, 2 * m + 1] = -value if r_sort_desc[r, m] else value
            elif view.sort_excludes[code]:
                dropped = True
                break
            else:
                keys[n_row, 2 * m] = -1.0 if r_sort_nf[r, m] else 1.0
                keys[n_row, 2 * m + 1] = 0.0
        if dropped:
            continue
        keys[n_row, 2 * n_sort] = -full[f]
        ratio = 0.0
        if single >= 0 and it_open[single] != 0.0:
            ratio = -(_net(p_ptr, s_fac, s_net, products[0], f)[0] / it_open[single])
        keys[n_row, 2 * n_sort + 1] = ratio
        keys[n_row, 2 * n_sort + 2] = f
        n_row += 1
    return n_row, _sort_rows(keys, n_row, width, order_a, order_b)
