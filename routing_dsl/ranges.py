"""The numeric range the engines support, as types and as a check on JSON values.

Every number routing reads or writes fits a float exactly: whole numbers within
±(2^53 - 1) (both engines hold them as float64; beyond, 2^53 + 1 would silently become 2^53)
and finite reals within the same bounds (NaN and infinity never pass). The bound and its
wording are :mod:`routing_dsl.validation`'s, which the snapshot loaders use: one range. The contracts use these types
(results; the HTTP bodies check their numbers with :func:`out_of_range`), so a number outside
the range is refused at the boundary with its path, never carried to where it cannot be held
or written (a 64-bit database column, orjson, a numpy array).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

from .validation import MAX_INTEGER as MAX_WHOLE
from .validation import RANGE

Count = Annotated[int, Field(ge=0, le=MAX_WHOLE)]
"""A whole number of things: 0 to 2^53 - 1."""
Whole = Annotated[int, Field(ge=-MAX_WHOLE, le=MAX_WHOLE)]
"""A whole number: ±(2^53 - 1)."""
Amount = Annotated[float, Field(ge=0, le=MAX_WHOLE, allow_inf_nan=False)]
"""A quantity, a distance, money: finite, 0 to 2^53 - 1."""
Positive = Annotated[float, Field(gt=0, le=MAX_WHOLE, allow_inf_nan=False)]
"""A quantity that is there: more than 0, at most 2^53 - 1."""
Real = Annotated[float, Field(ge=-MAX_WHOLE, le=MAX_WHOLE, allow_inf_nan=False)]
"""A finite number from ±(2^53 - 1)."""


def out_of_range(value: Any, path: str = "") -> tuple[str, Any] | None:
    """(path, number) of the first number in a JSON value beyond the range (a whole number
    beyond 2^53 - 1 either way, a real that is not finite or beyond it), or None; the path is
    written `order.ship_groups.0.items.0.quantity`, as pydantic writes its errors'."""
    return find(value, _beyond, path) if _any_beyond(value) else None


def _any_beyond(value: Any) -> bool:
    """Whether a JSON value (as a JSON reader gives it) holds a number beyond the range: the
    common answer, no, without writing paths (a quote's body is checked on every request)."""
    stack = [value]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
        elif kind is float:
            if not -MAX_WHOLE <= value <= MAX_WHOLE:  # NaN and infinities too
                return True
        elif kind is int and not -MAX_WHOLE <= value <= MAX_WHOLE:
            return True
    return False


def _beyond(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_WHOLE


def find(value: Any, test, path: str = "") -> tuple[str, Any] | None:
    """(path, value) of the first value in a JSON value (depth first, keys in order) that
    ``test`` holds for, or None."""
    found = _find(value, test)
    if found is None:
        return None
    keys, hit = found
    return ".".join([path, *map(str, reversed(keys))] if path else
                    map(str, reversed(keys))), hit


def _find(value: Any, test) -> tuple[list, Any] | None:
    """`find`'s walk: the keys to the value found (innermost first), and the value; the
    path is only written for what is found."""
    if test(value):
        return [], value
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find(item, test)
        if found is not None:
            found[0].append(key)
            return found
    return None


def describe(number: Any) -> str:
    """A number as a refusal quotes it: short, whatever its size."""
    text = repr(number)
    return text if len(text) <= 30 else f"{text[:12]}...({len(text)} digits)"


OUT_OF_RANGE = f"is outside the supported range ({RANGE})"
