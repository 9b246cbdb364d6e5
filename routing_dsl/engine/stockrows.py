"""The fast engine's stock rows, built once from a snapshot's inventory columns for a run
(engine.fast.FastContext) or a live state (engine.live.LiveArrays): brokerable rows at real
facilities by product, then facility, and the velocity rows (every row with a sales
velocity) likewise.

Facility codes and row numbers are 32-bit (`INDEX`): at 24 million stock rows each 64-bit
column of them was 193 MB, and a run kept five (docs/performance.md, "1M orders"). The
kernel reads the facility codes (`ir.Stock.fac`, `ir.SortTables.v_fac`) as these arrays,
whichever way the stock was built, so it is compiled for one type. Values (stock, velocity)
stay 64-bit floats: whole quantities go up to 2^53 - 1 (docs/authoring.md)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

INDEX = np.int32  # facility codes, and stock row numbers below 2^31 rows


class StockRows(NamedTuple):
    """Stock rows: the snapshot's row of each (``rows``), its facility code (``fac``) and
    how many rows each product has (``counts``, by product code, rows in that order); the
    velocity rows likewise (``v_fac``, ``v_counts``) with their value (``v_val``)."""

    rows: np.ndarray
    fac: np.ndarray
    counts: np.ndarray
    v_fac: np.ndarray
    v_counts: np.ndarray
    v_val: np.ndarray


def stock_rows(columns, fac_index: dict[str, int], prod_index: dict[str, int],
               virtual: np.ndarray) -> StockRows:
    """The rows of ``columns`` (snapshot.InventoryColumns) with facilities and products coded
    by ``fac_index`` and ``prod_index`` (id order), ``virtual`` by facility code. The
    temporaries are dropped as soon as they are used: at a million orders they are most of
    the run's peak."""
    n_fac, n_prod = max(1, len(fac_index)), len(prod_index)
    fac_map = np.array([fac_index[f] for f in columns.facility_ids] or [0], INDEX)
    prod_map = np.array([prod_index[p] for p in columns.product_ids] or [0], INDEX)
    facility, product = fac_map[columns.facility], prod_map[columns.product]
    rows = _by_product(np.flatnonzero(columns.allow_brokering & ~virtual[facility]),
                       facility, product, n_fac, n_prod)
    known = _by_product(np.flatnonzero(~np.isnan(columns.sales_velocity)), facility, product,
                        n_fac, n_prod)
    return StockRows(rows, facility[rows], np.bincount(product[rows], minlength=n_prod),
                     facility[known], np.bincount(product[known], minlength=n_prod),
                     columns.sales_velocity[known])


def _by_product(rows: np.ndarray, facility: np.ndarray, product: np.ndarray,
                n_fac: int, n_prod: int) -> np.ndarray:
    """``rows`` by product, then facility (the pairs are unique), as INDEX."""
    out = np.empty(len(rows), INDEX if len(facility) < 2**31 else np.int64)  # what numbers them
    if len(rows):
        from .stocksort import by_product  # numba: only where the fast engine indexes stock
        by_product(rows, facility, product, n_fac, n_prod, out)
    return out


def pointers(counts: np.ndarray, n: int) -> np.ndarray:
    """Row pointers (int64) of ``n`` codes from the rows of the first ones (``counts``; the
    codes after them have none): code c's rows are ptr[c]:ptr[c + 1]."""
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=ptr[1:len(counts) + 1])
    ptr[len(counts) + 1:] = ptr[len(counts)]
    return ptr
