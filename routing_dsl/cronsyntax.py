"""Schedules the checker can accept without loading croniter.

croniter decides what a schedule may be (the scheduler runs on it), but importing it costs
`routing check` a fifth of its start (it loads dateutil and its time-zone database). Most
schedules are plain: numbers, ranges, steps, lists, `*`, and `?` in a Quartz day field.
`plainly_valid` accepts exactly those, within each field's bounds; anything else (names like
MON or JAN, `L`, `#`, `W`, odd steps) is left to croniter. What it accepts, croniter accepts
too: a property test holds it so (tests/test_checker.py)."""

from __future__ import annotations

import re

# (lowest, highest) per field: 5 fields are minute, hour, day of month, month, day of week;
# 6 (Quartz) put the seconds first; 7 add the year
_BOUNDS = {5: ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6)),
           6: ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)),
           7: ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6), (1970, 2099))}
_ITEM = re.compile(r"(?:\*|(\d{1,4})(?:-(\d{1,4}))?)(?:/(\d{1,2}))?\Z")


def plainly_valid(expression: str) -> bool:
    """Whether ``expression`` is a plain schedule croniter accepts (False: ask croniter)."""
    fields = expression.split()
    bounds = _BOUNDS.get(len(fields))
    if bounds is None:
        return False
    days = (3, 5) if len(fields) > 5 else ()  # `?`: "no matter", in a Quartz day field
    return all(field == "?" and k in days or _plain_field(field, *bounds[k])
               for k, field in enumerate(fields))


def _plain_field(field: str, lowest: int, highest: int) -> bool:
    for item in field.split(","):
        match = _ITEM.match(item)
        if match is None:
            return False
        first, last, step = match.groups()
        if item.startswith("*"):
            if step is None and item != "*":
                return False
        elif not lowest <= int(first) <= (int(last) if last else int(first)) <= highest:
            return False
        elif step is not None and last is None:
            return False  # N/S: left to croniter
        if step is not None and not 1 <= int(step) <= 59:
            return False
    return True
