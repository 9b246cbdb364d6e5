"""Distances on the earth: the great-circle distance the engines measure facilities to
ship-to addresses with, and the mile factor (a rule reads distances in km or mi).

The fast engine's kernel computes the same formula, operation for operation
(`routing_dsl.engine.kernel`); the SQL baseline (`routing_dsl.bench.sqlbaseline`) too.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088
KM_PER_MILE = 1.609344


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on a sphere of radius EARTH_RADIUS_KM."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    return haversine_radians(p1, math.radians(lon1), math.cos(p1),
                             p2, math.radians(lon2), math.cos(p2))


def haversine_radians(p1: float, l1: float, cos1: float, p2: float, l2: float,
                       cos2: float) -> float:
    """haversine_km between two points given as `radians` gives them (computed once per
    point, not per pair)."""
    a = math.sin((p2 - p1) / 2) ** 2 + cos1 * cos2 * math.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def radians(lat: float | None, lon: float | None) -> tuple[float, float, float] | None:
    """A point as (latitude, longitude, cos latitude) in radians, what haversine_radians
    takes; None without coordinates."""
    if lat is None or lon is None:
        return None
    phi = math.radians(lat)
    return phi, math.radians(lon), math.cos(phi)

