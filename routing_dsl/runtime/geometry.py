"""Distances on the earth: the great-circle distance the engines measure facilities to
ship-to addresses with, and the mile factor (a rule reads distances in km or mi).

The formula is written once, in `routing_dsl.criteria.distance` (`haversine_radians`): this
engine calls it as Python, the fast engine's kernel compiles it.
"""

from __future__ import annotations

import math

from ..criteria.distance import (EARTH_RADIUS_KM, KM_PER_MILE,  # noqa: F401 (re-exported)
                                 haversine_radians)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on a sphere of radius EARTH_RADIUS_KM."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    return haversine_radians(p1, math.radians(lon1), math.cos(p1),
                             p2, math.radians(lon2), math.cos(p2))


def radians(lat: float | None, lon: float | None) -> tuple[float, float, float] | None:
    """A point as (latitude, longitude, cos latitude) in radians, what haversine_radians
    takes; None without coordinates."""
    if lat is None or lon is None:
        return None
    phi = math.radians(lat)
    return phi, math.radians(lon), math.cos(phi)

