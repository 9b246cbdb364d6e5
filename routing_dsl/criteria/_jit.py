"""The evaluation functions both engines share, and the comparisons they use.

A function marked `@jitable` is plain Python in numba's subset: the reference engine calls
it as it is, and `routing_dsl.engine.jit.register` makes numba compile it into the kernel
wherever the kernel calls it (numba is imported there, never here). The kernel's compiled
code is cached with the sources of this package in its key, so changing a criterion recompiles.
"""

from __future__ import annotations

EPS = 1e-9
KM_PER_MILE = 1.609344
NO_DATE = 2 ** 40  # a promised day no delivery misses (an item without a promised date)

# Comparison operators as the codes the kernel and the lowered rules use.
OPS = {"<": 0, "<=": 1, ">": 2, ">=": 3, "==": 4, "!=": 5}

JITABLE: list = []


def jitable(function):
    """Mark ``function`` for the kernel: called as is by the reference engine, compiled by
    numba into the compiled one."""
    JITABLE.append(function)
    return function


@jitable
def compare(op, a, b):
    """``a <op> b`` for an operator code (OPS)."""
    if op == 0:
        return a < b
    if op == 1:
        return a <= b
    if op == 2:
        return a > b
    if op == 3:
        return a >= b
    if op == 4:
        return a == b
    return a != b


@jitable
def measured(op, number, value, item_value):
    """A condition's check on a measured fact: ``value`` (NaN: unknown) passes ``<op>
    number``; unknown never passes (``item_value`` is not read)."""
    return value == value and compare(op, value, number)


@jitable
def with_split(value, new_package, split):
    """A sort value plus what one more package costs (`split_cost`) when placing here opens
    one."""
    return value + split if new_package else value


@jitable
def find_row(facilities, lo, hi, f):
    """Position of facility ``f`` among one product's rows facilities[lo:hi] (sorted), or
    -1."""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if facilities[mid] < f:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and facilities[lo] == f else -1
