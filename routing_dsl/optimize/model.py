"""One window's mixed-integer program, built from the batch's arrays (never a Python object per
variable): what an allocation costs, and the routing's rules as constraints.

Columns, in this order:

- `x` per admitted (line, facility) edge: the quantity shipped (integer when every quantity
  is whole);
- `y` per package (unit, facility): 1 when the facility ships anything of the unit;
- `b` per weight bucket of a package whose price depends on its weight: exactly one is 1
  when the package ships, and its cap bounds the package's billable weight (the larger of
  actual and dimensional weight) - so the objective pays the rate card's price exactly;
- `s` per package with a UNIT edge (the whole unit from that facility), `g` per (item group,
  facility) with a GROUP edge, `w` per WHOLE edge (the whole line), `m` per edge under a
  safety-stock threshold (the allocation that sees the least stock);
- `e` per ship group: its packages beyond the first.

Rows: each line ships at most its open quantity; each (facility, product) gives at most the
window's share of its net stock; an edge ships only in its package; a package's bucket holds
its weight; a facility takes at most its share of the orders it may still take today; the
classes of `candidates` (whole unit, group, line); the safety thresholds; and the window fills
at least the units the rules filled in it.

Objective: package prices (an unpriced package costs `unknown`), `split_cost` per extra
package, `late_cost` per unit and day late, `penalty` per unit left open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .candidates import GROUP, UNIT, WHOLE, Batch

EPS = 1e-9
WEIGHT_SLACK = 1e-7  # a package at exactly a bucket's cap is billed in it


@dataclass
class Window:
    """A set of whole orders solved together, with its share of the stock and daily limits."""

    index: int
    units: np.ndarray  # unit indices, in the routing's order
    edges: np.ndarray  # edge indices
    stock: dict  # (facility, product) -> quantity
    room: np.ndarray  # per facility: orders it may take
    floor: float  # units the rules filled in the window
    warm: np.ndarray  # the rules' quantity per edge of the window


@dataclass
class Prices:
    split_cost: float
    late_cost: float
    penalty: float  # per unit left open
    unknown: float  # per package that cannot be priced


@dataclass
class Model:
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integral: np.ndarray  # bool per column
    matrix: sparse.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    offset: float
    n_edges: int
    warm: np.ndarray  # every column's value for the rules' allocation (the warm start)


def package_index(batch: Batch) -> np.ndarray:
    """The package of each edge."""
    n_fac = max(1, len(batch.facilities))
    keys = batch.package_unit * n_fac + batch.package_facility
    edge_keys = batch.item_unit[batch.edge_item] * n_fac + batch.edge_facility
    return np.searchsorted(keys, edge_keys)


def late_days(batch: Batch, edges: np.ndarray, packages: np.ndarray) -> np.ndarray:
    """Days each edge's allocation would arrive after the line's promised day (0 on time or
    unknown)."""
    delivery = batch.package_delivery[packages[edges]]
    promised = batch.item_promised[batch.edge_item[edges]]
    days = delivery - promised
    return np.where((delivery >= 0) & (days > 0), days, 0).astype(np.float64)


def package_weights(batch: Batch, edge_quantity: np.ndarray, edges: np.ndarray,
                    packages: np.ndarray):
    """Billable weight of each package the quantities make (NaN: an unknown weight)."""
    item = batch.edge_item[edges]
    pkg = packages[edges]
    weight = np.bincount(pkg, batch.item_weight[item] * edge_quantity,
                         minlength=len(batch.package_unit))
    divisor = batch.package_divisor[pkg]
    dim = np.where(divisor > 0, batch.item_volume[item] / np.where(divisor > 0, divisor, 1), 0)
    volume = np.bincount(pkg, dim * edge_quantity, minlength=len(batch.package_unit))
    return np.maximum(weight, volume)


def build(batch: Batch, window: Window, prices: Prices, packages: np.ndarray) -> Model:
    """The window's program. ``packages`` is `package_index(batch)`."""
    edges = window.edges
    n_x = len(edges)
    item = batch.edge_item[edges]
    q = batch.item_quantity[item]
    fac = batch.edge_facility[edges]
    product = batch.item_product[item]
    eclass = batch.edge_class[edges]
    pkg_global = packages[edges]
    pkg_ids, pkg_of_edge = np.unique(pkg_global, return_inverse=True)
    n_y = len(pkg_ids)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    row_lo: list[np.ndarray] = []
    row_hi: list[np.ndarray] = []
    n_rows = 0

    def add_rows(r, c, v, lo, hi):
        nonlocal n_rows
        rows.append(np.asarray(r, np.int64) + n_rows)
        cols.append(np.asarray(c, np.int64))
        vals.append(np.asarray(v, np.float64))
        row_lo.append(np.asarray(lo, np.float64))
        row_hi.append(np.asarray(hi, np.float64))
        n_rows += len(row_lo[-1])

    cost_parts: list[np.ndarray] = []
    lower_parts: list[np.ndarray] = []
    upper_parts: list[np.ndarray] = []
    integral_parts: list[np.ndarray] = []
    n_cols = 0

    def add_cols(cost, lower, upper, integral):
        nonlocal n_cols
        start = n_cols
        cost_parts.append(np.asarray(cost, np.float64))
        lower_parts.append(np.broadcast_to(np.asarray(lower, np.float64), len(cost)).copy())
        upper_parts.append(np.broadcast_to(np.asarray(upper, np.float64), len(cost)).copy())
        integral_parts.append(np.broadcast_to(np.asarray(integral, np.bool_), len(cost)).copy())
        n_cols += len(cost)
        return start

    whole = bool(np.all(np.abs(q - np.round(q)) < EPS))
    # x: late cost, an unknown weight's price, minus the penalty for an open unit
    late = late_days(batch, edges, packages) * prices.late_cost
    unknown_weight = ~np.isfinite(batch.item_weight[item])
    x_cost = late - prices.penalty + np.where(unknown_weight, prices.unknown / q, 0.0)
    x0 = add_cols(x_cost, 0.0, q, whole)
    # y: a package's price when one bucket covers whatever it may weigh
    starts, ends = batch.bucket_start[pkg_ids], batch.bucket_start[pkg_ids + 1]
    weight_of_edge = np.where(unknown_weight, 0.0, batch.item_weight[item])
    divisor = batch.package_divisor[pkg_global]
    dim_of_edge = np.where(divisor > 0, batch.item_volume[item] / np.where(divisor > 0, divisor,
                                                                             1.0), 0.0)
    bill_of_edge = np.maximum(weight_of_edge, dim_of_edge)
    heaviest = np.bincount(pkg_of_edge, bill_of_edge * q, minlength=n_y)
    lightest = np.full(n_y, np.inf)
    np.minimum.at(lightest, pkg_of_edge, np.where(bill_of_edge > 0, bill_of_edge, np.inf))
    y_cost = np.zeros(n_y)
    bucket_rows = []  # (package, first bucket, last bucket, overflow)
    for p in range(n_y):
        s, e = int(starts[p]), int(ends[p])
        if s == e:
            y_cost[p] = prices.unknown
            continue
        caps = batch.bucket_cap[s:e]
        low = int(np.searchsorted(caps + WEIGHT_SLACK, min(lightest[p], heaviest[p])))
        high = int(np.searchsorted(caps + WEIGHT_SLACK, heaviest[p]))
        overflow = high >= len(caps)
        low = min(low, len(caps) - 1)
        high = min(high, len(caps) - 1)
        if low == high and not overflow:
            y_cost[p] = batch.bucket_cost[s + low]
        else:
            bucket_rows.append((p, s + low, s + high, overflow))
    y0 = add_cols(y_cost, 0.0, 1.0, True)
    x_cols = x0 + np.arange(n_x)
    y_cols = y0 + pkg_of_edge
    # demand: each line at most its open quantity
    lines, line_of_edge = np.unique(item, return_inverse=True)
    add_rows(line_of_edge, x_cols, np.ones(n_x), np.full(len(lines), -np.inf),
             batch.item_quantity[lines])
    # stock: the window's share of each (facility, product)
    n_prod = max(1, len(batch.products))
    fp = fac * n_prod + product
    fp_ids, fp_of_edge = np.unique(fp, return_inverse=True)
    share = np.array([window.stock.get((int(k // n_prod), int(k % n_prod)), 0.0)
                      for k in fp_ids])
    add_rows(fp_of_edge, x_cols, np.ones(n_x), np.full(len(fp_ids), -np.inf),
             np.maximum(share, 0.0))
    # link: an edge ships only in its package
    add_rows(np.r_[np.arange(n_x), np.arange(n_x)], np.r_[x_cols, y_cols],
             np.r_[np.ones(n_x), -q], np.full(n_x, -np.inf), np.zeros(n_x))
    # buckets
    bucket_of: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
    if bucket_rows:
        b_cost, b_cap, b_pkg = [], [], []
        for p, first, last, overflow in bucket_rows:
            for j in range(first, last + 1):
                b_cost.append(batch.bucket_cost[j])
                b_cap.append(batch.bucket_cap[j])
                b_pkg.append(p)
            if overflow:
                b_cost.append(prices.unknown)
                b_cap.append(heaviest[p] + 1.0)
                b_pkg.append(p)
        b_pkg = np.array(b_pkg, np.int64)
        b0 = add_cols(np.array(b_cost), 0.0, 1.0, True)
        b_cols = b0 + np.arange(len(b_pkg))
        b_cap = np.array(b_cap)
        owners, b_row = np.unique(b_pkg, return_inverse=True)
        for k, p in enumerate(owners.tolist()):
            mask = b_pkg == p
            bucket_of[p] = (k, b_cols[mask], b_cap[mask])
        # one bucket when the package ships
        add_rows(np.r_[b_row, np.arange(len(owners))], np.r_[b_cols, y0 + owners],
                 np.r_[np.ones(len(b_cols)), -np.ones(len(owners))],
                 np.zeros(len(owners)), np.zeros(len(owners)))
        # its billable weight within the chosen bucket's cap: actual, then dimensional
        position = {p: k for k, p in enumerate(owners.tolist())}
        in_buckets = np.isin(pkg_of_edge, owners)
        e_rows = np.array([position[p] for p in pkg_of_edge[in_buckets].tolist()], np.int64)
        for per_unit in (weight_of_edge, dim_of_edge):
            if not np.any(per_unit[in_buckets] > 0):
                continue
            add_rows(np.r_[e_rows, b_row], np.r_[x_cols[in_buckets], b_cols],
                     np.r_[per_unit[in_buckets], -(b_cap + WEIGHT_SLACK)],
                     np.full(len(owners), -np.inf), np.zeros(len(owners)))
    # daily order limits: the window's share of each facility's room
    counted = np.zeros(n_y, np.bool_)
    np.logical_or.at(counted, pkg_of_edge, batch.edge_counts[edges])
    pkg_fac = batch.package_facility[pkg_ids]
    limited = counted & np.isfinite(window.room[pkg_fac])
    if np.any(limited):
        lf, lf_row = np.unique(pkg_fac[limited], return_inverse=True)
        add_rows(lf_row, y0 + np.flatnonzero(limited), np.ones(int(limited.sum())),
                 np.full(len(lf), -np.inf), window.room[lf])
    # splits: packages of a ship group beyond the first
    e_group = None
    if prices.split_cost > 0:
        sg = batch.unit_ship_group[batch.package_unit[pkg_ids]]
        sg_ids, sg_row = np.unique(sg, return_inverse=True)
        e0 = add_cols(np.full(len(sg_ids), prices.split_cost), 0.0, np.inf, False)
        add_rows(np.r_[sg_row, np.arange(len(sg_ids))],
                 np.r_[y0 + np.arange(n_y), e0 + np.arange(len(sg_ids))],
                 np.r_[np.ones(n_y), -np.ones(len(sg_ids))],
                 np.full(len(sg_ids), -np.inf), np.ones(len(sg_ids)))
        e_group = (e0, sg_row, len(sg_ids))
    # classes: an edge's allocation takes the whole unit, group or line, or nothing. A UNIT
    # or GROUP edge ships only with its indicator, and the indicator ships every line of the
    # unit (group) there in full.
    indicators = []  # (column of each edge's indicator or -1, number of indicators, start)
    unit_owner = np.zeros(n_y, np.bool_)
    unit_owner[pkg_of_edge[eclass == UNIT]] = True
    if np.any(unit_owner):
        s_index = np.cumsum(unit_owner) - 1
        s0 = add_cols(np.zeros(int(unit_owner.sum())), 0.0, 1.0, True)
        column = np.where(unit_owner[pkg_of_edge], s0 + s_index[pkg_of_edge], -1)
        indicators.append((column, eclass == UNIT))
    line_group = batch.item_group[item]
    grouped = (eclass == GROUP)
    if np.any(grouped):
        n_fac = max(1, len(batch.facilities))
        gf = np.where(line_group >= 0, line_group * n_fac + fac, -1)
        keys = np.unique(gf[grouped])
        z0 = add_cols(np.zeros(len(keys)), 0.0, 1.0, True)
        position = np.searchsorted(keys, gf)
        has = (gf >= 0) & (position < len(keys)) & (keys[np.minimum(position, len(keys) - 1)]
                                                      == gf)
        column = np.where(has, z0 + np.minimum(position, len(keys) - 1), -1)
        # a group some member of which cannot ship from the facility never goes there whole
        members = np.bincount(batch.item_group[batch.item_group >= 0],
                              minlength=int(line_group.max()) + 1)
        present = np.bincount(np.minimum(position, len(keys) - 1)[has], minlength=len(keys))
        short = present < members[keys // n_fac]
        upper_parts[-1][short] = 0.0
        indicators.append((column, grouped))
    for column, own in indicators:
        mine = np.flatnonzero(own)
        every = np.flatnonzero(column >= 0)
        k1, k2 = len(mine), len(every)
        add_rows(np.r_[np.arange(k1), np.arange(k1), k1 + np.arange(k2), k1 + np.arange(k2)],
                 np.r_[x_cols[mine], column[mine], x_cols[every], column[every]],
                 np.r_[np.ones(k1), -q[mine], -np.ones(k2), q[every]],
                 np.full(k1 + k2, -np.inf), np.zeros(k1 + k2))
    whole_edges = np.flatnonzero(eclass == WHOLE)
    w0 = None
    if len(whole_edges):
        w0 = add_cols(np.zeros(len(whole_edges)), 0.0, 1.0, True)
        n = len(whole_edges)
        add_rows(np.r_[np.arange(n), np.arange(n)], np.r_[x_cols[whole_edges], w0 + np.arange(n)],
                 np.r_[np.ones(n), -q[whole_edges]], np.zeros(n), np.zeros(n))
    # safety thresholds: ordered with the largest allocation last, each allocation sees more
    # than (or at least) the threshold: sum - last <= share - threshold
    safety = batch.edge_safety[edges]
    safe = np.flatnonzero(np.isfinite(safety))
    m0 = None
    if len(safe):
        m0 = add_cols(np.zeros(len(safe)), 0.0, 1.0, True)
        m_cols = m0 + np.arange(len(safe))
        sfp, sfp_row = np.unique(fp[safe], return_inverse=True)
        limit = np.zeros(len(sfp))
        for k, key in enumerate(sfp.tolist()):
            mask = fp[safe] == key
            threshold = safety[safe][mask].max()
            strict = bool(batch.edge_strict[edges][safe][mask].any())
            limit[k] = window.stock.get((key // n_prod, key % n_prod), 0.0) - threshold - (
                1e-6 if strict else 0.0)
        add_rows(np.r_[sfp_row, sfp_row], np.r_[x_cols[safe], m_cols],
                 np.r_[np.ones(len(safe)), -q[safe]], np.full(len(sfp), -np.inf), limit)
        add_rows(np.r_[sfp_row], m_cols, np.ones(len(safe)), np.full(len(sfp), -np.inf),
                 np.ones(len(sfp)))
        n = len(safe)
        add_rows(np.r_[np.arange(n), np.arange(n)], np.r_[m_cols, x_cols[safe]],
                 np.r_[q[safe], -np.ones(n)], np.full(n, -np.inf), np.zeros(n))
    # the window fills at least what the rules filled in it
    add_rows(np.zeros(n_x), x_cols, np.ones(n_x), [window.floor - 1e-6], [np.inf])

    cost = np.concatenate(cost_parts)
    matrix = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                       np.concatenate(cols))),
                               shape=(n_rows, n_cols))
    matrix.sum_duplicates()
    offset = prices.penalty * float(batch.item_quantity[lines].sum())

    def complete(x: np.ndarray) -> np.ndarray:
        """Every column's value for edge quantities ``x`` (for the warm start)."""
        values = np.zeros(n_cols)
        values[x_cols] = x
        used = np.zeros(n_y, np.bool_)
        np.logical_or.at(used, pkg_of_edge, x > EPS)
        values[y0:y0 + n_y] = used
        if bucket_of:
            weight = np.bincount(pkg_of_edge, weight_of_edge * x, minlength=n_y)
            dim = np.bincount(pkg_of_edge, dim_of_edge * x, minlength=n_y)
            bill = np.maximum(weight, dim)
            for p, (_, columns, caps) in bucket_of.items():
                if used[p]:
                    j = int(np.searchsorted(caps + WEIGHT_SLACK, bill[p]))
                    values[columns[min(j, len(columns) - 1)]] = 1.0
        if e_group is not None:
            e0, sg_row, n_sg = e_group
            packages_per = np.bincount(sg_row, used.astype(np.float64), minlength=n_sg)
            values[e0:e0 + n_sg] = np.maximum(packages_per - 1, 0)
        for column, own in indicators:
            used_edge = own & (x > EPS) & (column >= 0)
            values[column[used_edge]] = 1.0
        if w0 is not None:
            values[w0:w0 + len(whole_edges)] = (x[whole_edges] > EPS)
        if m0 is not None:
            taken = x[safe]
            for key in np.unique(fp[safe]).tolist():
                mask = np.flatnonzero((fp[safe] == key) & (taken > EPS))
                if len(mask):
                    values[m0 + mask[np.argmax(taken[mask])]] = 1.0
        return values

    return Model(cost=cost, lower=np.concatenate(lower_parts),
                 upper=np.concatenate(upper_parts), integral=np.concatenate(integral_parts),
                 matrix=matrix, row_lower=np.concatenate(row_lo),
                 row_upper=np.concatenate(row_hi), offset=offset, n_edges=n_x,
                 warm=complete(window.warm))
