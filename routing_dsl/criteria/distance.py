"""Distance: great-circle distance from a facility to the ship-to address.

The engines measure it in km once per unit and facility (the `km` fact); a rule's unit (`mi`
or `km`, from its distance conditions) only changes how limits are read and values shown. A
facility or address without coordinates has no distance: it fails every distance condition
and sorts last (or first with `nulls first`).
"""

from __future__ import annotations

import math

from . import Criterion
from ._jit import KM_PER_MILE, OPS, jitable, measured, with_split
from .orders import ORDERING
from .text import fmt


EARTH_RADIUS_KM = 6371.0088


@jitable
def haversine_radians(p1, l1, cos1, p2, l2, cos2):
    """Great-circle distance in km on a sphere of radius EARTH_RADIUS_KM between two points
    given as latitude and longitude in radians and the latitude's cosine."""
    a = math.sin((p2 - p1) / 2) ** 2 + cos1 * cos2 * math.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def km(number: float, unit: str) -> float:
    """A distance in the rule's unit, in km (how the engines compare it)."""
    return number * (1.0 if unit == "km" else KM_PER_MILE)


def in_unit(km_value: float, unit: str) -> float:
    """A distance in km in the rule's unit (as the result's rows show it)."""
    return km_value if unit == "km" else km_value / KM_PER_MILE


def _lower(condition, rule) -> tuple[int, float]:
    return OPS[condition.op], km(condition.number, rule.distance_unit)


def _text(rule, condition) -> str:
    return f"distance {condition.op} {fmt(condition.number)} {rule.distance_unit}"


def _explain(ex, condition, value, item) -> tuple[str, dict]:
    text = _text(ex.rule, condition)
    if value != value:
        return text, {"distance": None, "note": "missing coordinates"}
    return text, {"distance": round(in_unit(value, ex.rule.distance_unit), 2)}


def _reference_key(rank, facility):
    distance = rank.measure.distance
    if distance is None:
        return None
    return with_split(distance, rank.new_package, rank.split_distance)


@jitable
def _kernel_key(view, r, f, n_products):
    if not view.c_has[f]:
        return math.nan
    return with_split(view.c_dist[f], view.ship_rank[r] and view.ship_new[f],
                      view.split_distance[r])


def _explain_key(ex, measure, facility) -> dict:
    distance = measure.distance
    return {"distance": None if distance is None else round(distance, 2),
            "distance_unit": ex.rule.distance_unit}


CRITERIA = [
    Criterion(
        "distance", "inventory_condition",
        "Great-circle distance from the facility to the ship-to address, in `mi` or `km`; "
        "the unit also sets the rule's measurement system. Facilities or addresses without "
        "coordinates never pass.",
        value="distance", operators=ORDERING, example="distance <= 300 mi",
        hotwax="distance",
        samples=("distance <= 30 UNIT", "distance < 40 UNIT", "distance > 1 UNIT"),
        needs=frozenset({"km"}), stage="candidate", fact="km", reference=measured,
        kernel=measured, lower=_lower, explain=_explain, explain_text=_text, explain_rank=10),
    Criterion(
        "distance", "inventory_sort", "Nearest facility first.", nullable=True,
        hotwax="distance", samples=("distance", "distance desc"), needs=frozenset({"km"}),
        reference=_reference_key, kernel=_kernel_key, explain=_explain_key),
]
