"""Windows of whole orders, each with its share of the stock and the daily order limits, so
that they can be solved at the same time and still never oversell together.

A window takes whole orders in the routing's order until the next would bring it past the
`window` setting's number of lines. Each window gets what the rules gave its orders (the stock
and orders per facility their allocations took) plus an even share of what the rules left
unused, among the windows that could use it. So the rules' allocation is feasible in every
window - each window can only do better than the rules did with it - and the windows' shares
never add up to more than there is.
"""

from __future__ import annotations

import numpy as np

from .candidates import Batch
from .model import Window


def cut(batch: Batch, window_lines: int) -> list[np.ndarray]:
    """Unit indices of each window: whole orders in the order they first appear."""
    lines = np.diff(batch.unit_first_item)
    order_lines = np.bincount(batch.unit_order, lines, minlength=int(batch.unit_order.max()) + 1
                              if len(batch.unit_order) else 0)
    first_seen = []
    seen = set()
    for order in batch.unit_order.tolist():
        if order not in seen:
            seen.add(order)
            first_seen.append(order)
    window_of = np.zeros(len(order_lines), np.int64)
    current, filled = 0, 0
    for order in first_seen:
        size = order_lines[order]
        if filled and filled + size > window_lines:
            current += 1
            filled = 0
        window_of[order] = current
        filled += size
    unit_window = window_of[batch.unit_order] if len(batch.unit_order) else np.zeros(0, np.int64)
    return [np.flatnonzero(unit_window == w) for w in range(current + 1 if first_seen else 0)]


def _split(total: float, count: int, whole: bool) -> np.ndarray:
    """``total`` in ``count`` even shares (whole units when ``whole``; the first shares take
    what does not divide)."""
    if count == 0:
        return np.zeros(0)
    if whole:
        base, extra = divmod(int(round(max(total, 0.0))), count)
        return np.array([base + (1 if k < extra else 0) for k in range(count)], np.float64)
    return np.full(count, max(total, 0.0) / count)


def windows(batch: Batch, groups: list[np.ndarray], rules_x: np.ndarray,
            rules_packages: list[tuple]) -> list[Window]:
    """The windows of ``groups`` (from `cut`) with their shares. ``rules_x`` is the rules'
    quantity per edge, ``rules_packages`` their packages (unit, facility, rule, lines)."""
    n_windows = len(groups)
    unit_window = np.zeros(len(batch.unit_first_item) - 1, np.int64)
    for w, units in enumerate(groups):
        unit_window[units] = w
    edge_window = unit_window[batch.item_unit[batch.edge_item]]
    n_prod = max(1, len(batch.products))
    fp = batch.edge_facility * n_prod + batch.item_product[batch.edge_item]
    whole = bool(np.all(np.abs(batch.item_quantity - np.round(batch.item_quantity)) < 1e-9))
    shares: list[dict] = [{} for _ in range(n_windows)]
    rooms = [batch.facility_room.copy() for _ in range(n_windows)]
    if n_windows == 1:
        shares[0] = dict(batch.stock)
    elif n_windows > 1:
        used: dict[tuple[int, int], float] = {}
        for key, w, quantity in zip(fp.tolist(), edge_window.tolist(), rules_x.tolist(),
                                    strict=True):
            if quantity > 0:
                used[(key, w)] = used.get((key, w), 0.0) + quantity
        wanting: dict[int, list[int]] = {}
        for key, w in sorted(set(zip(fp.tolist(), edge_window.tolist(), strict=True))):
            wanting.setdefault(key, []).append(w)
        for key, ws in wanting.items():
            total = batch.stock.get((key // n_prod, key % n_prod), 0.0)
            taken = [used.get((key, w), 0.0) for w in ws]
            extra = _split(total - sum(taken), len(ws), whole)
            for w, mine, more in zip(ws, taken, extra.tolist(), strict=True):
                shares[w][(key // n_prod, key % n_prod)] = mine + more
        # daily order limits: the rules' packages per facility and window, and a share of
        # the rest among the windows that could ship from the facility
        counted = np.zeros((n_windows, len(batch.facilities)))
        for u, f, rule, _ in rules_packages:
            if not batch.rule_ignores_limit[rule]:
                counted[unit_window[u], f] += 1
        reach = np.zeros((n_windows, len(batch.facilities)), np.bool_)
        reach[edge_window, batch.edge_facility] = True
        for f in np.flatnonzero(np.isfinite(batch.facility_room)).tolist():
            ws = np.flatnonzero(reach[:, f]).tolist()
            extra = _split(batch.facility_room[f] - counted[:, f].sum(), len(ws), True)
            for room in rooms:
                room[f] = 0.0
            for w, more in zip(ws, extra.tolist(), strict=True):
                rooms[w][f] = counted[w, f] + more
    filled = np.bincount(edge_window, rules_x, minlength=n_windows)
    return [Window(index=w, units=units, stock=shares[w], room=rooms[w], floor=float(filled[w]))
            for w, units in enumerate(groups)]
