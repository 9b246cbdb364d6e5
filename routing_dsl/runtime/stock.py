"""Stock: the snapshot's inventory indexed for routing (net stock by product and facility,
ATP and sales velocity), and `LiveStock`, the same index kept current across runs.

A run's own copy of these lives in its context (`runtime.state.Context`); the service keeps
one `LiveStock` per loaded snapshot so that deciding an order does not re-index it.
"""

from __future__ import annotations

from collections import defaultdict

from ..snapshot import Snapshot


class LiveStock:
    """The stock and daily order counts of one loaded snapshot, indexed once and kept current
    as routing takes from it (a service deciding order after order against one live state).
    A run given one reads stock and counts from here, copying only its orders' products,
    instead of indexing its snapshot's inventory rows and facilities (which it ignores).

    Taken quantities are given as totals since the load, so each figure is computed as a
    snapshot with those totals applied would have it: `atp - taken`, then `- minimum_stock`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.stock, self.atp, self.velocity = index_inventory(
            snapshot.inventory, {f.id for f in snapshot.facilities if f.virtual})
        self.loaded_atp = dict(self.atp)
        self.minimum = {(row.facility, row.product): row.minimum_stock
                        for row in snapshot.inventory
                        if row.product in self.stock and row.facility in self.stock[row.product]}
        self.loaded_orders = facility_orders_today(snapshot)
        self.orders_today = dict(self.loaded_orders)

    def taken(self, facility: str, product: str, total: float) -> None:
        """``total`` units of ``product`` taken at ``facility`` since the load."""
        key = (facility, product)
        if key not in self.loaded_atp:
            return
        atp = self.atp[key] = self.loaded_atp[key] - total
        if key in self.minimum:
            self.stock[product][facility] = atp - self.minimum[key]

    def counted(self, facility: str, total: int) -> None:
        """``total`` orders added at ``facility`` since the load."""
        if facility in self.loaded_orders:
            self.orders_today[facility] = self.loaded_orders[facility] + total


def index_inventory(rows, virtual: set[str]):
    """Net stock by product and facility (brokerable rows at facilities not ``virtual``), ATP
    and sales velocity by (facility, product)."""
    stock: dict[str, dict[str, float]] = defaultdict(dict)
    atp, velocity = {}, {}
    for row in rows:
        key = (row.facility, row.product)
        atp[key] = row.atp
        if row.sales_velocity is not None:
            velocity[key] = row.sales_velocity
        if row.allow_brokering and row.facility not in virtual:
            stock[row.product][row.facility] = row.atp - row.minimum_stock
    return stock, atp, velocity


def facility_orders_today(snapshot: Snapshot) -> dict[str, int]:
    """Orders placed today at each real facility, as the snapshot has them."""
    return {f.id: f.orders_today for f in snapshot.facilities if not f.virtual}

