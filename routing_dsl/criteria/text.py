"""How criteria print values in explanations and messages."""

from __future__ import annotations


def number(value: float) -> float | int:
    """Quantities print as integers when whole; other numbers are rounded to 1e-6."""
    rounded = round(value, 6)
    return int(rounded) if rounded == int(rounded) else rounded


def fmt(value: float) -> str:
    return str(number(value))


def ids_text(ids) -> str:
    return ids[0] if len(ids) == 1 else "[" + ", ".join(ids) + "]"
