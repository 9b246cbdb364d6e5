"""One window's mixed-integer program: a choice of packages, the routing's rules as
constraints.

A *package* is what the engine ships as one new ship group: some lines of one unit from one
facility, committed by one rule. The model's columns are candidate packages (binary) - every
set of a unit's lines that one rule admits together at a facility (all sets for units of up
to `ALL_SETS_UP_TO` lines there; the whole set, single lines and pairs for larger ones), each
shipping its lines' open quantities, plus a part of one line alone where a rule may split it -
and each package is priced exactly: the rate model's cost function on its weight and volume
(so the objective pays what the result will show), plus `late_cost` per unit and day late.
Then `e` per ship group (its packages beyond the first, at `split_cost`) and `m` per
(facility, product, quantity) under a safety-stock threshold (how much the allocation that
sees the least stock takes).

A package is admitted by a rule when the rule admits each of its lines at the facility as it
ships there (candidates' classes): FREE always, WHOLE for a whole line, GROUP when the line's
item group ships whole in it, UNIT when the package is the whole unit. It names the first such
rule. So the rules' own packages are columns too, and the rules' allocation is a solution.

Rows: each line ships at most its open quantity; a unit gets at most one package per
(facility, rule), as the engine commits it; each (facility, product) gives at most the
window's share of its net stock; a facility takes at most its share of the orders it may still
take today (packages of rules that ignore the limit aside); the safety thresholds; and the
window fills at least the units the rules filled in it. This formulation (a choice among
exactly priced packages) has a far tighter linear relaxation than one that prices packages
through weight buckets, which is what makes 1,500-line windows solve in seconds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .candidates import FREE, GROUP, UNIT, WHOLE, Batch, package_price

EPS = 1e-9
ALL_SETS_UP_TO = 6  # lines of a unit at one facility for which every subset is a package


@dataclass
class Window:
    """A set of whole orders solved together, with its share of the stock and daily limits."""

    index: int
    units: np.ndarray  # unit indices, in the routing's order
    stock: dict  # (facility, product) -> quantity
    room: np.ndarray  # per facility: orders it may take
    floor: float  # units the rules filled in the window


@dataclass
class Prices:
    split_cost: float
    late_cost: float
    penalty: float  # per unit left open
    unknown: float  # per package that cannot be priced


@dataclass
class Packages:
    """A window's candidate packages: unit, facility, naming rule, shipping cost (NaN: it
    cannot be priced), unit-days late, and lines (CSR: ``start``, ``line``, ``quantity``)."""

    unit: np.ndarray
    facility: np.ndarray
    rule: np.ndarray
    shipping: np.ndarray
    late: np.ndarray
    start: np.ndarray
    line: np.ndarray
    quantity: np.ndarray
    latest: float  # the most days any line of them arrives late
    tied: list  # columns of rules' packages that ship only with their unit's other ones
    pruned: int = 0  # admitted (line, facility) pairs left out (`cheapest`)

    def __len__(self) -> int:
        return len(self.unit)


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
    n_packages: int
    warm: np.ndarray  # every column's value for the rules' allocation (the warm start)


def _lowest(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


def placeable(batch: Batch, rates, pair_of: dict, u: int, f: int, rule: int,
              content: list[tuple[int, float]]) -> bool:
    """Whether ``rule`` places ``content`` (lines and quantities of unit ``u``) as one package
    at facility ``f`` within its placement conditions (`shipping_cost` limits). The rule
    checks the package each time it places items there: its steps in line order (an item
    group together under `keep_item_groups_together`, everything at once under `assign
    single`), each weighed at its lines' open quantities on top of what earlier steps put in
    the package. `admitted` only checked each line alone."""
    prepared = batch.prepared[rule]
    checks = prepared.placement_checks
    if not checks:
        return True
    pair = pair_of[(u, f)]

    def cost(w: float, v: float) -> float:
        return package_price(batch, rates, pair, u, f, w, v)

    weight, volume, quantity = batch.item_weight, batch.item_volume, batch.item_quantity
    steps: list[list[tuple[int, float]]] = []
    if prepared.rule.assign == "single":
        steps = [list(content)]
    else:
        grouped: dict[int, list] = {}
        for k, q in content:
            group = int(batch.item_group[k]) if prepared.rule.keep_item_groups_together else -1
            if group < 0:
                steps.append([(k, q)])
            elif group in grouped:
                grouped[group].append((k, q))
            else:
                grouped[group] = [(k, q)]
                steps.append(grouped[group])
    w_in = v_in = 0.0
    for step in steps:
        w = w_in + sum(weight[k] * quantity[k] for k, _ in step)
        v = v_in + sum(volume[k] * quantity[k] for k, _ in step)
        if not all(check.passes(cost(w, v)) for check in checks):
            return False
        w_in += sum(weight[k] * q for k, q in step)
        v_in += sum(volume[k] * q for k, q in step)
    return True


def cheapest(batch: Batch, rates, pair_of: dict, by_unit: dict, keep: int, stock: dict,
             late_cost: float, extra: list) -> tuple[dict, int]:
    """``by_unit`` (unit -> facility -> admitted lines) cut to the facilities worth a column:
    for each line, the ``keep`` cheapest facilities admitting it (its own package's shipping
    cost there, plus ``late_cost`` per unit and day late; then the most stock in the window's
    share, then the facility's index), and every facility the rules shipped the unit from
    (``extra``), so the rules' allocation stays a solution. A unit keeps the union of its
    lines' facilities, each with every line it admits there, so packages of several lines
    (whole units, item groups) stay where all of them are kept. Also how many admitted
    (line, facility) pairs were left out. Windows with many facilities in reach are where the
    program grows; a line's far dearer facilities seldom make an optimum."""
    chosen: dict[int, set[int]] = {}
    for u, f, _, _ in extra:
        chosen.setdefault(int(u), set()).add(int(f))
    weight, volume, quantity = batch.item_weight, batch.item_volume, batch.item_quantity
    product, promised = batch.item_product, batch.item_promised
    kept_units, pruned = {}, 0
    for u, facilities in by_unit.items():
        ranked: dict[int, list] = {}
        for f, admitted in facilities.items():
            pair = pair_of[(u, f)]
            delivery = int(batch.package_delivery[pair])
            for k, _ in admitted:
                q = float(quantity[k])
                price = package_price(batch, rates, pair, u, f, weight[k] * q, volume[k] * q)
                if not np.isfinite(price):
                    price = np.inf
                if delivery >= 0 and delivery > promised[k]:
                    price += late_cost * q * (delivery - int(promised[k]))
                ranked.setdefault(k, []).append(
                    (price, -stock.get((f, int(product[k])), 0.0), f))
        kept = set(chosen.get(u, ()))
        for options in ranked.values():
            options.sort()
            kept.update(f for _, _, f in options[:keep])
        mine = {}
        for f, admitted in facilities.items():
            if f in kept:
                mine[f] = admitted
            else:
                pruned += len(admitted)
        kept_units[u] = mine
    return kept_units, pruned


def candidates(batch: Batch, units: np.ndarray, rates, pair_of: dict,
               extra: list, keep: int | None = None, stock: dict | None = None,
               late_cost: float = 0.0) -> tuple[Packages, list[int]]:
    """The window's candidate packages, and the column of each of ``extra`` (the rules' own
    packages: (unit, facility, rule, {line: quantity}), added when not among them). With
    ``keep``, only at each line's ``keep`` cheapest facilities and the rules' (`cheapest`;
    ``stock`` is the window's share, the tie-breaker)."""
    unit_rows, fac_rows, rule_rows, cost_rows, late_rows, starts, lines_out, qty_out = \
        [], [], [], [], [], [0], [], []
    latest = 0
    index: dict[tuple, int] = {}
    weight, volume = batch.item_weight, batch.item_volume
    quantity = batch.item_quantity
    first = batch.unit_first_item

    def add(u: int, f: int, rule: int, content: list[tuple[int, float]]) -> int:
        key = (u, f, rule, tuple(content))
        found = index.get(key)
        if found is not None:
            return found
        pair = pair_of[(u, f)]
        price = package_price(batch, rates, pair, u, f,
                              sum(weight[k] * q for k, q in content),
                              sum(volume[k] * q for k, q in content))
        delivery = int(batch.package_delivery[pair])
        late = 0.0
        if delivery >= 0:
            days = [max(0, delivery - int(batch.item_promised[k])) for k, _ in content]
            late = sum(q * d for (_, q), d in zip(content, days, strict=True))
            nonlocal latest
            latest = max(latest, *days)
        index[key] = len(unit_rows)
        unit_rows.append(u)
        fac_rows.append(f)
        rule_rows.append(rule)
        cost_rows.append(price)
        late_rows.append(late)
        for k, q in content:
            lines_out.append(k)
            qty_out.append(q)
        starts.append(len(lines_out))
        return index[key]

    def first_placing(allowed: int, u: int, f: int, content: list) -> int | None:
        """The first rule of ``allowed`` (a bit mask) that places ``content`` as one package
        at ``f`` (a rule's `shipping_cost` limit may refuse the package its lines make
        together, and a later rule without it take them)."""
        while allowed:
            rule = _lowest(allowed)
            if placeable(batch, rates, pair_of, u, f, rule, content):
                return rule
            allowed &= allowed - 1
        return None

    wanted = np.zeros(len(first) - 1, np.bool_)
    wanted[units] = True
    by_unit: dict[int, dict[int, list]] = {}
    unit_of_edge = batch.item_unit[batch.edge_item]
    admits = batch.edge_masks.any(axis=1) if len(batch.edge_masks) else np.zeros(0, np.bool_)
    for e in np.flatnonzero(wanted[unit_of_edge] & admits).tolist():
        k, f = int(batch.edge_item[e]), int(batch.edge_facility[e])
        by_unit.setdefault(int(unit_of_edge[e]), {}).setdefault(f, []).append(
            (k, [int(m) for m in batch.edge_masks[e]]))
    pruned = 0
    if keep is not None:
        by_unit, pruned = cheapest(batch, rates, pair_of, by_unit, keep, stock or {},
                                   late_cost, extra)
    groups = batch.item_group
    for u in units.tolist():
        everything = set(range(int(first[u]), int(first[u + 1])))
        members: dict[int, set] = {}
        for k in everything:
            if groups[k] >= 0:
                members.setdefault(int(groups[k]), set()).add(k)
        for f, admitted in sorted(by_unit.get(u, {}).items()):
            lines = [k for k, _ in admitted]
            masks = dict(admitted)
            if len(lines) <= ALL_SETS_UP_TO:
                subsets = itertools.chain.from_iterable(
                    itertools.combinations(lines, size) for size in range(1, len(lines) + 1))
            else:
                subsets = itertools.chain(((k,) for k in lines),
                                          itertools.combinations(lines, 2), [tuple(lines)])
            for subset in subsets:
                chosen = set(subset)
                whole_unit = chosen == everything
                allowed = -1
                for k in subset:
                    m = masks[k]
                    valid = m[FREE] | m[WHOLE]
                    if groups[k] >= 0 and members[int(groups[k])] <= chosen:
                        valid |= m[GROUP]
                    if whole_unit:
                        valid |= m[UNIT]
                    allowed &= valid
                    if not allowed:
                        break
                content = [(k, float(quantity[k])) for k in subset]
                rule = first_placing(allowed, u, f, content)
                if rule is not None:
                    add(u, f, rule, content)
            for k in lines:  # part of a line, alone, where a rule may split it
                free = masks[k][FREE]
                q = quantity[k]
                if free and q > 1 and abs(q - round(q)) < EPS:
                    for part in range(1, int(round(q))):
                        rule = first_placing(free, u, f, [(k, float(part))])
                        if rule is not None:
                            add(u, f, rule, [(k, float(part))])
    # the rules' own packages; one no rule admits from the routing's start (it needed the
    # state the rules' run had reached: see `candidates.add_edges`) ships only beside the
    # rest of its unit's rules' packages
    warm, tied = [], []
    for u, f, rule, content in extra:
        known = len(unit_rows)
        warm.append(add(u, f, rule, sorted(content.items())))
        if warm[-1] >= known:
            tied.append(warm[-1])
    packages = Packages(np.array(unit_rows, np.int64), np.array(fac_rows, np.int64),
                        np.array(rule_rows, np.int64), np.array(cost_rows, np.float64),
                        np.array(late_rows, np.float64), np.array(starts, np.int64),
                        np.array(lines_out, np.int64), np.array(qty_out, np.float64),
                        float(latest), tied, pruned)
    return packages, warm


def prices_of(settings, packages: Packages) -> Prices:
    """The objective's prices for a window: a package that cannot be priced costs twice the
    dearest that can, plus one; `unfilled_penalty auto` is more than the dearest package, a
    split and the latest delivery together, so filling one more unit always pays."""
    known = packages.shipping[np.isfinite(packages.shipping)]
    unknown = 2.0 * float(known.max() if len(known) else 1.0) + 1.0
    penalty = settings.unfilled_penalty
    if penalty is None:
        penalty = unknown + settings.split_cost + settings.late_cost * packages.latest + 1.0
    return Prices(settings.split_cost, settings.late_cost, float(penalty), unknown)


def build(batch: Batch, window: Window, prices: Prices, packages: Packages,
          warm_columns: list[int]) -> Model:
    """The window's program over ``packages`` (from `candidates`)."""
    n = len(packages)
    counts = np.diff(packages.start)
    column = np.repeat(np.arange(n), counts)
    line, qty = packages.line, packages.quantity
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

    filled = np.bincount(column, qty, minlength=n)
    shipping = np.where(np.isfinite(packages.shipping), packages.shipping, prices.unknown)
    cost = [shipping + prices.late_cost * packages.late - prices.penalty * filled]
    lower, upper, integral = [np.zeros(n)], [np.ones(n)], [np.ones(n, np.bool_)]
    n_cols = n
    # each line at most its open quantity
    lines, line_row = np.unique(line, return_inverse=True)
    add_rows(line_row, column, qty, np.full(len(lines), -np.inf), batch.item_quantity[lines])
    # each (facility, product) at most the window's share of its net stock
    n_prod = max(1, len(batch.products))
    fac = packages.facility[column]
    fp = fac * n_prod + batch.item_product[line]
    fp_ids, fp_row = np.unique(fp, return_inverse=True)
    share = np.array([window.stock.get((int(k // n_prod), int(k % n_prod)), 0.0)
                      for k in fp_ids.tolist()])
    add_rows(fp_row, column, qty, np.full(len(fp_ids), -np.inf), np.maximum(share, 0.0))
    # one package per (unit, facility, rule): a rule commits what it ships from a facility
    # for a unit as one package (two candidates there are alternatives)
    n_fac = max(1, len(batch.facilities))
    n_rules = max(1, len(batch.rule_safety))
    ufr = (packages.unit * n_fac + packages.facility) * n_rules + packages.rule
    ufr_ids, ufr_row, ufr_count = np.unique(ufr, return_inverse=True, return_counts=True)
    several = ufr_count[ufr_row] > 1
    if np.any(several):
        alternatives, alt_row = np.unique(ufr_row[several], return_inverse=True)
        add_rows(alt_row, np.flatnonzero(several), np.ones(int(several.sum())),
                 np.full(len(alternatives), -np.inf), np.ones(len(alternatives)))
    # daily order limits: one order per package, unless its rule ignores the limit
    counted = ~batch.rule_ignores_limit[packages.rule] & np.isfinite(
        window.room[packages.facility])
    if np.any(counted):
        limited, limit_row = np.unique(packages.facility[counted], return_inverse=True)
        add_rows(limit_row, np.flatnonzero(counted), np.ones(int(counted.sum())),
                 np.full(len(limited), -np.inf), window.room[limited])
    # packages of a ship group beyond its first
    split = None
    if prices.split_cost > 0 and n:
        group = batch.unit_ship_group[packages.unit]
        groups, group_row = np.unique(group, return_inverse=True)
        e0 = n_cols
        n_cols += len(groups)
        cost.append(np.full(len(groups), prices.split_cost))
        lower.append(np.zeros(len(groups)))
        upper.append(np.full(len(groups), np.inf))
        integral.append(np.zeros(len(groups), np.bool_))
        add_rows(np.r_[group_row, np.arange(len(groups))],
                 np.r_[np.arange(n), e0 + np.arange(len(groups))],
                 np.r_[np.ones(n), -np.ones(len(groups))],
                 np.full(len(groups), -np.inf), np.ones(len(groups)))
        split = (e0, group_row, len(groups))
    # safety thresholds: with the largest allocation last, each sees more than (or at least)
    # the threshold: taken - last <= share - threshold. `m` per (facility, product) and
    # quantity says how much the last allocation there takes; one of them at most, and only
    # a quantity some shipped line there has.
    threshold = batch.rule_safety[packages.rule[column]]
    warmed = np.zeros(n, np.bool_)
    warmed[warm_columns] = True
    safe = np.flatnonzero(np.isfinite(threshold))
    safety = None
    if len(safe):
        sizes = np.round(qty[safe], 6)
        keys, key_row = np.unique(fp[safe], return_inverse=True)
        pairs = np.unique(np.c_[key_row, sizes], axis=0)
        m0 = n_cols
        n_m = len(pairs)
        n_cols += n_m
        cost.append(np.zeros(n_m))
        lower.append(np.zeros(n_m))
        upper.append(np.ones(n_m))
        integral.append(np.ones(n_m, np.bool_))
        pair_key = pairs[:, 0].astype(np.int64)
        limit = np.zeros(len(keys))
        for k, key in enumerate(keys.tolist()):
            mine = safe[key_row == k]
            strict = bool(batch.rule_strict[packages.rule[column[mine]]].any())
            limit[k] = window.stock.get((key // n_prod, key % n_prod), 0.0) \
                - threshold[mine].max() - (1e-6 if strict else 0.0)
            shipped = warmed[column[mine]]
            if limit[k] < 0 and not shipped.any():
                # the window's share there is under the threshold and the rules shipped
                # nothing there in it: the window ships nothing there under the threshold
                # (else nothing shipped would break the row, and the program be infeasible)
                upper[0][column[mine]] = 0.0
                limit[k] = 0.0
            elif shipped.any():
                rules_row = float(qty[mine][shipped].sum() - qty[mine][shipped].max())
                if limit[k] < rules_row - 1e-9:
                    # the rules shipped more there than the window's share leaves above the
                    # threshold (they saw the whole stock, the window sees its share): the
                    # window ships there under the threshold only the rules' own packages, or
                    # fewer of them, which each see at least the stock they saw in the rules'
                    # run whatever the other windows take after (their shares are apart)
                    upper[0][column[mine][~shipped]] = 0.0
                    limit[k] = rules_row
        add_rows(np.r_[key_row, pair_key], np.r_[column[safe], m0 + np.arange(n_m)],
                 np.r_[qty[safe], -pairs[:, 1]], np.full(len(keys), -np.inf), limit)
        add_rows(pair_key, m0 + np.arange(n_m), np.ones(n_m), np.full(len(keys), -np.inf),
                 np.ones(len(keys)))
        # a last allocation of quantity s needs a shipped line there of at least s
        r, c, v = [np.arange(n_m)], [m0 + np.arange(n_m)], [np.ones(n_m)]
        for j, (k, size) in enumerate(pairs.tolist()):
            big = safe[(key_row == int(k)) & (sizes >= size - 1e-9)]
            r.append(np.full(len(big), j))
            c.append(column[big])
            v.append(-np.ones(len(big)))
        add_rows(np.concatenate(r), np.concatenate(c), np.concatenate(v),
                 np.full(n_m, -np.inf), np.zeros(n_m))
        safety = (m0, pairs, keys, key_row, sizes, safe)
    # max_facilities N: after a rule, the facilities a ship group ships from (in this run so
    # far, and in packages of this rule and earlier ones) are at most N, when the rule ships
    # any of its packages (a conservative reading of "a facility in use may take more")
    capped = []
    if np.any(batch.rule_cap >= 0) and n:
        group_of = batch.unit_ship_group[packages.unit]
        by_group: dict[int, list[int]] = {}
        for j in np.flatnonzero(batch.rule_cap[packages.rule] >= 0).tolist():
            by_group.setdefault(int(group_of[j]), [])
        for j, g in enumerate(group_of.tolist()):
            if g in by_group:
                by_group[g].append(j)
        index_of = {name: f for f, name in enumerate(batch.facilities)}
        r_rows, r_cols, r_vals, r_hi = [], [], [], []
        for g, members in by_group.items():
            prior = {index_of.get(name, -1 - k)
                     for k, name in enumerate(batch.ship_group_used[g])}
            for r in sorted({int(packages.rule[j]) for j in members
                             if batch.rule_cap[packages.rule[j]] >= 0}):
                earlier = [j for j in members if packages.rule[j] <= r
                           and int(packages.facility[j]) not in prior]
                facilities = sorted({int(packages.facility[j]) for j in earlier})
                v0 = n_cols
                n_cols += len(facilities) + 1  # one per new facility, and `a`
                a = v0 + len(facilities)
                cost.append(np.zeros(len(facilities) + 1))
                lower.append(np.zeros(len(facilities) + 1))
                upper.append(np.ones(len(facilities) + 1))
                integral.append(np.ones(len(facilities) + 1, np.bool_))
                at = {f: v0 + k for k, f in enumerate(facilities)}
                for j in earlier:  # a package at a new facility uses it
                    r_rows.append([len(r_hi), len(r_hi)])
                    r_cols.append([j, at[int(packages.facility[j])]])
                    r_vals.append([1.0, -1.0])
                    r_hi.append(0.0)
                for j in members:  # the rule ships
                    if packages.rule[j] == r:
                        r_rows.append([len(r_hi), len(r_hi)])
                        r_cols.append([j, a])
                        r_vals.append([1.0, -1.0])
                        r_hi.append(0.0)
                big = float(len(facilities))
                room = float(batch.rule_cap[r]) - len(prior)
                r_rows.append([len(r_hi)] * (len(facilities) + 1))
                r_cols.append(list(at.values()) + [a])
                r_vals.append([1.0] * len(facilities) + [big])
                r_hi.append(big + room)
                capped.append((g, r, at, a, earlier, members))
        if r_hi:
            add_rows(np.concatenate([np.asarray(x) for x in r_rows]),
                     np.concatenate([np.asarray(x) for x in r_cols]),
                     np.concatenate([np.asarray(x, np.float64) for x in r_vals]),
                     np.full(len(r_hi), -np.inf), np.array(r_hi))
    # a rules' package that needed the state their run had reached, only beside the rest of
    # the unit's rules' packages
    if packages.tied and warm_columns:
        mine: dict[int, list[int]] = {}
        for j in sorted(set(warm_columns)):
            mine.setdefault(int(packages.unit[j]), []).append(j)
        ties = [(j, i) for j in packages.tied for i in mine[int(packages.unit[j])] if i != j]
        if ties:
            add_rows(np.repeat(np.arange(len(ties)), 2), np.asarray(ties).ravel(),
                     np.tile([1.0, -1.0], len(ties)), np.full(len(ties), -np.inf),
                     np.zeros(len(ties)))
    # at least the units the rules filled
    add_rows(np.zeros(n, np.int64), np.arange(n), filled, [window.floor - 1e-6], [np.inf])
    matrix = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                       np.concatenate(cols))),
                               shape=(n_rows, n_cols))
    matrix.sum_duplicates()
    cost_all = np.concatenate(cost)
    offset = prices.penalty * float(batch.item_quantity[lines].sum())
    warm = np.zeros(n_cols)
    warm[warm_columns] = 1.0
    if split is not None:
        e0, group_row, n_groups = split
        warm[e0:e0 + n_groups] = np.maximum(
            np.bincount(group_row, warm[:n], minlength=n_groups) - 1, 0)
    if safety is not None:
        m0, pairs, keys, key_row, sizes, safe = safety
        taken = warm[column[safe]] > 0.5
        for k in range(len(keys)):
            shipped = sizes[(key_row == k) & taken]
            if len(shipped):
                j = np.flatnonzero((pairs[:, 0] == k) & (np.abs(pairs[:, 1] - shipped.max())
                                                          < 1e-9))
                warm[m0 + j[0]] = 1.0
    for _, r, at, a, earlier, members in capped:
        for j in earlier:
            if warm[j] > 0.5:
                warm[at[int(packages.facility[j])]] = 1.0
        if any(warm[j] > 0.5 and packages.rule[j] == r for j in members):
            warm[a] = 1.0
    return Model(cost=cost_all, lower=np.concatenate(lower), upper=np.concatenate(upper),
                 integral=np.concatenate(integral), matrix=matrix,
                 row_lower=np.concatenate(row_lo), row_upper=np.concatenate(row_hi),
                 offset=offset, n_packages=n, warm=warm)
