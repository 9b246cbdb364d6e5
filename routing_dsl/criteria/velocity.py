"""Velocity and style: `sales_velocity` (slowest sellers first) and `broken_style` (only
facilities whose assortment of the style is already broken, fewest available variants first).

Both look at the products being placed: velocity adds up the facility's known sales velocity
of each (products in id order), broken style counts the available variants of each product's
style (a variant counts above BUFFER units of net stock) and drops a facility where a style is
complete, or a product that has no style.
"""

from __future__ import annotations

import math

from . import Criterion
from ._jit import EPS, find_row, jitable

BUFFER = 3  # HotWax counts a variant as available only above 3 units


@jitable
def variant_available(net):
    return net - BUFFER > EPS


def _velocity_reference(rank, facility):
    velocity = rank.ctx.velocity
    known = [velocity[(facility, p)] for p in rank.products if (facility, p) in velocity]
    return sum(known) if known else None


@jitable
def _velocity_key(view, r, f, n_products):
    total = 0.0
    known = False
    for m in range(n_products):
        p = view.products[m]
        pos = find_row(view.v_fac, view.v_ptr[p], view.v_ptr[p + 1], f)
        if pos >= 0:
            total += view.v_val[pos]
            known = True
    return total if known else math.nan


def _broken_reference(rank, facility):
    ctx = rank.ctx
    total = 0
    for product in rank.products:
        style = ctx.style.get(product)
        if style is None:
            return None
        variants = ctx.variants[style]
        available = sum(1 for v in variants
                        if variant_available(rank.available(facility, v)))
        if available >= len(variants):
            return None
        total += available
    return float(total)


@jitable
def _broken_key(view, r, f, n_products):
    total = 0
    for m in range(n_products):
        s = view.style_of[view.products[m]]
        if s < 0:
            return math.nan
        available = 0
        for k in range(view.style_ptr[s], view.style_ptr[s + 1]):
            v = view.style_var[k]
            if v >= 0:
                pos = find_row(view.s_fac, view.p_ptr[v], view.p_ptr[v + 1], f)
                if pos >= 0 and variant_available(view.s_net[pos]):
                    available += 1
        if available >= view.style_size[s]:
            return math.nan
        total += available
    return float(total)


CRITERIA = [
    Criterion("sales_velocity", "inventory_sort",
              "How fast the facility sells the product; slowest first.", nullable=True,
              hotwax="salesVelocity", samples=("sales_velocity", "sales_velocity desc"),
              reference=_velocity_reference, kernel=_velocity_key,
              explain=lambda ex, measure, facility: {"sales_velocity": None}),
    Criterion("broken_style", "inventory_sort",
              "Only facilities whose assortment of the style is already broken, fewest "
              "available variants first.", hotwax="brokenStyle",
              samples=("broken_style", "broken_style desc"), excludes_missing=True,
              reference=_broken_reference, kernel=_broken_key,
              explain=lambda ex, measure, facility: {"broken_style": None}),
]
