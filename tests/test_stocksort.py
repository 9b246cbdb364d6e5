"""The fast engine's stock rows in order (engine/stocksort.py): by product, then facility,
exactly the order a sort of the pairs gives, for any subset of rows in any order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_dsl.engine.stocksort import by_product


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_rows_come_by_product_then_facility(n_fac, n_prod, data):
    pairs = data.draw(st.lists(st.tuples(st.integers(0, n_fac - 1), st.integers(0, n_prod - 1)),
                               unique=True, max_size=n_fac * n_prod))
    facility = np.array([f for f, _ in pairs], np.int32)
    product = np.array([p for _, p in pairs], np.int32)
    shuffled = data.draw(st.permutations(range(len(pairs))))
    rows = np.array(shuffled[:data.draw(st.integers(0, len(pairs)))], np.int64)
    out = np.empty(len(rows), np.int32)
    by_product(rows, facility, product, n_fac, n_prod, out)
    expected = rows[np.lexsort((facility[rows], product[rows]))] if len(rows) else rows
    assert out.tolist() == expected.tolist()
