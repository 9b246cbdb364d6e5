"""The live state: the snapshot a service decides against, loaded from its source at start
and on refresh, plus what routing has taken since (stock, daily order counts, allocated
lines), so that quotes, committed decisions and batches all see one another's consumption.

Quotes change nothing. A commit runs as a batch of one through the run store (its product
store's lock held, in this process and across processes) and is remembered by its
idempotency key. A batch runs on the snapshot with everything taken so far applied, and what
it takes is added in turn. A refresh replaces the snapshot and forgets what was taken: the
source is expected to hold it by then.
"""

from __future__ import annotations

import bisect
import gc
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..interpreter import LiveStock, Prepared, run_plan
from ..plan import Plan
from ..snapshot import Order, Snapshot, order_problems


# upper bounds of the decision latency histogram's buckets, in seconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class DecisionError(Exception):
    """A decision request that cannot be decided as given (the message says why)."""


class ConflictError(DecisionError):
    """An idempotency key reused for a different order."""


@dataclass
class LiveState:
    plans: list[Plan]
    source: Callable[[], Snapshot]
    texts: list[str | None] = field(default_factory=list)  # each plan's .route text, if any
    snapshot: Snapshot | None = None
    loaded_at: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    decisions: int = 0
    commits_total: int = 0
    # decisions per latency bucket (the last: beyond every bound), and their total time
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    # taken since the last refresh
    consumed: dict = field(default_factory=lambda: defaultdict(float))   # (facility, product)
    orders_added: dict = field(default_factory=lambda: defaultdict(int))  # facility
    allocated: dict = field(default_factory=lambda: defaultdict(float))  # (order, sg, item)
    commits: dict = field(default_factory=dict)  # idempotency key -> (order, answer)
    _rows: dict = field(default_factory=dict)  # product -> its inventory rows
    _facility_ids: frozenset = frozenset()
    _style: dict = field(default_factory=dict)  # product -> its style
    _variants: dict = field(default_factory=dict)  # style -> its products
    _prepared: dict = field(default_factory=dict)  # plan id -> indexes shared by its runs
    _live: LiveStock | None = None  # stock and counts as loaded, less what was taken
    _store_locks: dict = field(default_factory=lambda: defaultdict(threading.Lock))

    def refresh(self) -> None:
        snapshot = self.source()
        rows: dict[str, list] = defaultdict(list)
        for row in snapshot.inventory:
            rows[row.product].append(row)
        live = LiveStock(snapshot)
        with self.lock:
            self.snapshot, self.loaded_at, self._live = snapshot, datetime.now(UTC), live
            self._rows = dict(rows)
            self._facility_ids = frozenset(f.id for f in snapshot.facilities)
            self._style = {p.id: p.parent for p in snapshot.products if p.parent}
            self._variants = defaultdict(list)
            for product in snapshot.products:
                if product.parent:
                    self._variants[product.parent].append(product.id)
            self._prepared = {id(plan): Prepared() for plan in self.plans}
            self.consumed.clear()
            self.orders_added.clear()
            self.allocated.clear()
            self.commits.clear()
        # The state is long-lived and holds millions of objects: kept out of the cyclic
        # collector's reach, a decision never pays for walking them (p99 drops ~15x).
        gc.collect()
        gc.freeze()

    def group(self, name: str):
        for plan in self.plans:
            for group in plan.groups:
                if group.name == name:
                    return plan, group
        return None, None

    def text(self, plan: Plan) -> str | None:
        """The .route text ``plan`` was compiled from, recorded with its batches."""
        for known, text in zip(self.plans, self.texts, strict=False):
            if known is plan:
                return text
        return None

    def store_lock(self, product_store: str) -> threading.Lock:
        """The in-process lock of one product store: its batches and commits run one at a
        time, each seeing what the previous took."""
        with self.lock:
            return self._store_locks[product_store]

    # ---- decisions ----
    def quote(self, order: Order) -> dict:
        """Where ``order`` would ship from now: its lines' facilities, quantities, rules and
        distances, what would stay unfilled, and the explanation. Changes nothing."""
        started = time.perf_counter()
        lines, unfilled, explanations = [], [], []
        with self.lock:  # one consistent state: no commit or batch is absorbed halfway
            snapshot = self._loaded()
            self._check(order)
            single = snapshot.model_copy(update={"orders": [order], "inventory": []})
            for plan in self.plans:
                # stock and counts come from the live index, copied for this order only
                result = run_plan(plan, single, explain=True, explain_orders={order.id},
                                  prepared=self._prepared.get(id(plan)), live=self._live,
                                  after=False)
                lines += result["allocations"]
                unfilled += result["unfillable"]
                explanations += result["explanations"]
        self._count(started)
        return {"order": order.id, "lines": lines, "unfilled": unfilled,
                "explanations": explanations, "committed": False, "batches": []}

    def commit(self, order: Order, key: str, store) -> dict:
        """Decide ``order`` and take its stock: recorded in ``store`` as a batch of one per
        group, remembered under ``key`` (the same key again returns the same answer and takes
        nothing more; with a different order it is a ConflictError)."""
        from ..ops.runner import run_recorded
        started = time.perf_counter()
        with self.store_lock(order.product_store):
            with self.lock:
                known = self.commits.get(key)
            if known is not None:
                if known[0] != order:
                    raise ConflictError(f"idempotency key {key!r} was used for another order")
                return known[1]
            single = self.order_snapshot(order)
            lines, unfilled, explanations, batches = [], [], [], []
            for plan in self.plans:
                result, ids = run_recorded(store, plan, single, source_text=self.text(plan),
                                           trigger="api", explain=True,
                                           explain_orders={order.id})
                self.absorb(result)
                lines += result["allocations"]
                unfilled += result["unfillable"]
                explanations += result["explanations"]
                batches += ids
            answer = {"order": order.id, "lines": lines, "unfilled": unfilled,
                      "explanations": explanations, "committed": True, "batches": batches}
            with self.lock:
                self.commits[key] = (order, answer)
                self.commits_total += 1
        self._count(started)
        return answer

    def run_group(self, plan: Plan, group, store) -> tuple[dict, list[str]]:
        """Run one group now on the live state, recorded as a batch; what it takes stays
        taken for the decisions and batches that follow."""
        from ..ops.runner import run_recorded
        with self.store_lock(group.product_store):
            result, ids = run_recorded(store, plan, self.batch_snapshot(),
                                       source_text=self.text(plan),
                                       trigger="api", group=group.name)
            self.absorb(result)
        return result, ids

    def absorb(self, result: dict) -> None:
        """Add what a result took to the state."""
        with self.lock:
            seen = set()
            for allocation in result["allocations"]:
                facility, product = allocation["facility"], allocation["product"]
                self.consumed[(facility, product)] += allocation["quantity"]
                self._live.taken(facility, product, self.consumed[(facility, product)])
                self.allocated[(allocation["order"], allocation["ship_group"],
                                allocation["item"])] += allocation["quantity"]
                shipment = (allocation["order"], allocation["new_ship_group"])
                if shipment not in seen:
                    seen.add(shipment)
                    self.orders_added[facility] += 1
                    self._live.counted(facility, self.orders_added[facility])

    def batch_snapshot(self) -> Snapshot:
        """The snapshot with everything taken since the refresh applied: stock reduced,
        order counts raised, and allocated quantities no longer open."""
        with self.lock:
            snapshot = self._loaded()
            consumed, added = dict(self.consumed), dict(self.orders_added)
            allocated = dict(self.allocated)
        inventory = [row.model_copy(update={"atp": row.atp - consumed[(row.facility,
                                                                        row.product)]})
                     if (row.facility, row.product) in consumed else row
                     for row in snapshot.inventory]
        touched = {order for order, _, _ in allocated}
        orders = [_without_allocated(o, allocated) if o.id in touched else o
                  for o in snapshot.orders]
        return snapshot.model_copy(update={
            "inventory": inventory, "orders": orders,
            "facilities": self._facilities(snapshot, added)})

    # ---- helpers ----
    def _loaded(self) -> Snapshot:
        if self.snapshot is None:
            raise DecisionError("the live state is not loaded")
        return self.snapshot

    def _facilities(self, snapshot: Snapshot, added: dict) -> list:
        return [f.model_copy(update={"orders_today": f.orders_today + added[f.id]})
                if f.id in added else f for f in snapshot.facilities]

    def order_snapshot(self, order: Order, taken: bool = True) -> Snapshot:
        """A snapshot holding only ``order`` and the stock rows it can use (its products and
        their styles' variants), with what was taken applied (unless not ``taken``: as
        loaded): built from validated parts, so only the order's references are checked."""
        with self.lock:
            snapshot = self._loaded()
            consumed = dict(self.consumed) if taken else {}
            added = dict(self.orders_added) if taken else {}
            rows_by_product = self._rows
        products = {i.product for g in order.ship_groups for i in g.items}
        for style in {self._style.get(p) for p in products} - {None}:
            products.update(self._variants[style])
        inventory = []
        for product in sorted(products):
            for row in rows_by_product.get(product, ()):
                taken = consumed.get((row.facility, row.product))
                inventory.append(row if taken is None else
                                 row.model_copy(update={"atp": row.atp - taken}))
        single = Snapshot.model_construct(
            format=snapshot.format, now=snapshot.now, timezone=snapshot.timezone,
            product_stores=snapshot.product_stores,
            facilities=self._facilities(snapshot, added), products=snapshot.products,
            inventory=inventory, shipment_methods=snapshot.shipment_methods, orders=[order])
        self._check(order)
        return single

    def _check(self, order: Order) -> None:
        """The order's references, checked against the loaded facilities."""
        problems = order_problems(order, "order", self._facility_ids)
        if problems:
            raise DecisionError("; ".join(problems[:5]))

    def prepared(self, plan: Plan) -> Prepared | None:
        """The indexes ``plan``'s decisions share until the next refresh (the facilities do
        not change in between: only their daily counts, which are not indexed)."""
        with self.lock:
            return self._prepared.get(id(plan))

    def _count(self, started: float) -> None:
        with self.lock:
            self.decisions += 1
            seconds = time.perf_counter() - started
            self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds


def _without_allocated(order: Order, allocated: dict) -> Order:
    """``order`` with the quantities routing already allocated cancelled out of its lines
    (the ordered quantity, which shares adjustments, stays)."""
    groups = []
    for group in order.ship_groups:
        items = []
        for item in group.items:
            taken = allocated.get((order.id, group.id, item.id))
            items.append(item if not taken else item.model_copy(update={
                "cancel_quantity": min(item.quantity, item.cancel_quantity + taken)}))
        groups.append(group.model_copy(update={"items": items}))
    return order.model_copy(update={"ship_groups": groups})

