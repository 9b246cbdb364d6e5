"""`routing bench --console`: the console's pages against a run store the size of a busy
year (100,000 batches, a million history rows by default), on SQLite.

The store is filled in bulk, as the run store's own writes would leave it: batches, their
runs, allocations, unfillable items and history rows, the hourly rollups kept by the
trigger (the batches are inserted `running` and then finished, so the trigger does the
work it does in production). Each page is then asked for through the application (the ASGI
app in this process, as uvicorn would call it) and timed; the baseline, measured in the same
run, is `/healthz`, the cheapest answer the same stack gives. The target is 200 ms a page.
Recording one batch is timed too, with and without the console's indexes and trigger, for
the price they add to every batch.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_MS = 200.0
GROUPS = ("Web orders", "Store fulfilment", "Marketplace", "Backorders")
QUEUES = ("UNFILLABLE_PARKING", "BACKORDER_PARKING", "REJECTED_ITEM_PARKING")


@dataclass
class ConsoleReport:
    batches: int
    history: int
    allocations: int
    fill_seconds: float
    floor_ms: float
    pages: dict[str, float] = field(default_factory=dict)  # page -> median ms
    record_ms: tuple[float, float] | None = None            # a batch: before, with console

    def text(self) -> str:
        lines = [f"console: run store with {self.batches:,} batches, {self.history:,} history "
                 f"rows, {self.allocations:,} allocations (SQLite; filled in "
                 f"{self.fill_seconds:.0f} s); median of 5, target {TARGET_MS:.0f} ms a page; "
                 f"baseline /healthz {self.floor_ms:.2f} ms"]
        width = max(len(name) for name in self.pages)
        for name, ms in self.pages.items():
            verdict = "ok" if ms <= TARGET_MS else "OVER TARGET"
            lines.append(f"  {name:<{width}}  {ms:8.1f} ms  ({ms / self.floor_ms:6.0f}x the "
                         f"baseline)  {verdict}")
        if self.record_ms is not None:
            before, after = self.record_ms
            lines.append(f"  recording a batch of 5,000 allocations (median of 7): {before:.0f} ms "
                         f"without, {after:.0f} ms with the console's indexes and "
                         f"rollup trigger ({after / before:.2f}x)")
        return "\n".join(lines)

    @property
    def slowest(self) -> float:
        return max(self.pages.values())


def fill(store, batches: int, history: int, seed: int = 26) -> dict:
    """Bulk-fill ``store`` (migrated) with ``batches`` finished batches spread over the last
    90 days and about ``history`` history rows (as many allocations; a fifth as many
    unfillable items). Returns ids the pages are asked about."""
    import sqlalchemy as sa

    from ..ops import schema as t
    rng = random.Random(seed)
    now = datetime.now(UTC)
    per_batch = max(1, history // batches)
    orders = max(1000, history // 2)
    products = [f"P{k:06d}" for k in range(20_000)]
    facilities = [f"F{k:04d}" for k in range(200)]
    with store.engine.begin() as connection:
        connection.execute(t.plans.insert(), [{"hash": "0" * 64, "source_name": "bench.route",
                                               "source_text": None, "plan_json": "{}",
                                               "created": now}])
    ids: list[str] = []
    chunk = 5000
    for first in range(0, batches, chunk):
        rows, runs, allocated, unfilled, moves = [], [], [], [], []
        for k in range(first, min(batches, first + chunk)):
            batch_id = f"{k:08d}-0000-4000-8000-{rng.getrandbits(48):012x}"
            ids.append(batch_id)
            started = now - timedelta(days=90) * (1 - k / batches)
            group = GROUPS[k % len(GROUPS)]
            rows.append({"id": batch_id, "trigger": "scheduled" if k % 50 else "api",
                         "group_name": group, "product_store": "STORE", "plan_hash": "0" * 64,
                         "snapshot_hash": f"{k:064x}", "started": started,
                         "finished": started + timedelta(seconds=2), "status": "running",
                         "attempted_items": per_batch + 2, "brokered_items": per_batch,
                         "allocations": per_batch, "unfillable": 2, "error": None})
            runs.append({"batch_id": batch_id, "position": 0, "routing": group,
                         "attempted_items": per_batch + 2, "brokered_items": per_batch,
                         "error": None, "shipping_cost": 7.5 * per_batch, "packages": per_batch,
                         "split_orders": rng.randint(0, 2), "late_items": rng.randint(0, 1)})
            for position in range(per_batch):
                order = f"O{rng.randrange(orders):08d}"
                facility = rng.choice(facilities)
                allocated.append({
                    "batch_id": batch_id, "position": position, "order_id": order,
                    "ship_group": "00001", "item": f"{position + 1:05d}",
                    "product": rng.choice(products), "facility": facility, "quantity": 1.0,
                    "new_ship_group": "00001-1", "routing": group, "rule": "Nearest",
                    "distance": rng.uniform(1, 1500), "distance_unit": "mi",
                    "shipping_cost": 7.5, "transit_days": 3, "delivery_date": None})
                moves.append({"batch_id": batch_id, "order_id": order, "ship_group": "00001",
                              "item": f"{position + 1:05d}", "from_facility": "_NA_",
                              "to_facility": facility, "quantity": 1.0, "group_name": group,
                              "routing": group, "rule": "Nearest", "reason": "allocated",
                              "at": started})
            for position in range(2):
                unfilled.append({
                    "batch_id": batch_id, "position": position,
                    "order_id": f"O{rng.randrange(orders):08d}", "ship_group": "00001",
                    "item": "00001", "product": rng.choice(products), "quantity": 1.0,
                    "routing": group, "rule": "Nearest", "action": "moved",
                    "queue": QUEUES[k % len(QUEUES)], "auto_cancel_date": None})
        with store.engine.begin() as connection:
            connection.execute(t.batches.insert(), rows)
            connection.execute(t.runs.insert(), runs)
            connection.execute(t.allocations.insert(), allocated)
            connection.execute(t.unfillable.insert(), unfilled)
            connection.execute(t.history.insert(), moves)
            statuses = [{"i": r["id"], "s": "failed" if i % 97 == 0 else (
                "skipped" if i % 89 == 0 else "succeeded")} for i, r in enumerate(rows)]
            connection.execute(  # finishing fires the rollup trigger, batch by batch
                sa.text("update batches set status = :s, error = case when :s = 'failed' "
                        "then 'source: the OMS database is down' end where id = :i"), statuses)
    return {"ids": ids, "order": moves[0]["order_id"], "product": allocated[0]["product"],
            "facility": allocated[0]["facility"]}


def console_bench(batches: int = 100_000, history: int = 1_000_000, rounds: int = 5,
                  record: bool = True) -> ConsoleReport:
    """Fill a SQLite run store and time every console page against it."""
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from ..ops import schema as t
    from ..ops.scheduler import Supervision
    from ..ops.store import RunStore
    from ..service.app import create_app
    from ..service.state import LiveState
    from .suite import bench_plan, generate

    with tempfile.TemporaryDirectory(prefix="routing-console-bench-") as folder:
        store = RunStore(f"sqlite:///{Path(folder) / 'runs.db'}")
        store.upgrade()
        started = time.perf_counter()
        known = fill(store, batches, history)
        filled = time.perf_counter() - started
        with store.engine.connect() as connection:
            rows = connection.execute(sa.select(sa.func.count()).select_from(t.history)).scalar()
            allocations = connection.execute(
                sa.select(sa.func.count()).select_from(t.allocations)).scalar()
        snapshot = generate(facilities=200, ship_groups=2000, products=500)
        plan = bench_plan()
        state = LiveState([plan], lambda: snapshot, store=store)
        state.refresh()
        app = create_app(state, store, supervision=Supervision())
        ids = known["ids"]
        a, b = ids[-1], ids[-2]
        pages = {
            "dashboard, 24 hours": "/console?period=24h",
            "dashboard, 7 days": "/console?period=7d",
            "dashboard, 90 days": "/console?period=90d",
            "dashboard, 90 days, one group": "/console?period=90d&group=Marketplace",
            "batches, newest": "/console/batches",
            "batches, failed": "/console/batches?status=failed",
            "batches, one group, a page deep in": "/console/batches?group=Web%20orders&before="
            + _cursor(store, ids[len(ids) // 2]),
            "batch": f"/console/batches/{a}",
            "two batches compared": f"/console/compare?a={a}&b={b}",
            "orders, by id prefix": "/console/orders?q=O0001",
            "orders, by product": f"/console/orders?q={known['product']}&by=product",
            "orders, by facility": f"/console/orders?q={known['facility']}&by=facility",
            "orders, by ship group": "/console/orders?q=00001&by=ship_group",
            "order": f"/console/orders/{known['order']}",
            "queues": "/console/queues",
            "queue": "/console/queues/_NA_",
            "stock, facilities": "/console/stock",
            "stock, one facility": "/console/stock?facility=F00010",
            "stock, one product": "/console/stock?product=P00010",
        }
        report = ConsoleReport(batches, rows, allocations, filled, 0.0)
        with TestClient(app) as client:
            report.floor_ms = _median(client, "/healthz", rounds * 4)
            for name, path in pages.items():
                report.pages[name] = _median(client, path, rounds)
        store.dispose()
    if record:
        report.record_ms = record_cost()
    return report


def _cursor(store, batch_id: str) -> str:
    from urllib.parse import quote
    found = store.batches(1, batch_id=batch_id)[0]
    return quote(f"{found.started.isoformat()}|{found.id}")


def _median(client, path: str, rounds: int) -> float:
    timings = []
    for _ in range(rounds + 1):  # the first warms caches (the live state's indexes) up
        began = time.perf_counter()
        answer = client.get(path)
        timings.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
    return statistics.median(timings[1:])


def record_cost(allocations: int = 5000, rounds: int = 7) -> tuple[float, float]:
    """Milliseconds to record one batch of ``allocations`` allocations (finish_batch's one
    transaction: rows, history, outbox, ledger), without and with the console's indexes and
    trigger (migration 0006; the store is otherwise at head, as recording needs every later
    column): the median of ``rounds``, the two stores taking turns so that both see the same
    machine."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from ..ops import ledger
    from ..ops.store import RunStore
    rng = random.Random(5)
    products = [f"P{rng.randrange(5000):05d}" for _ in range(allocations)]

    def decided(number: int) -> tuple[list[dict], ledger.Decisions]:
        """One batch's allocations (orders of its own: the outbox holds one pending row per
        decision) and what recording them writes beside."""
        allocated = [{"order": f"O{number:03d}-{k:07d}", "ship_group": "00001",
                      "item": "00001", "product": products[k], "facility": f"F{k % 200:04d}",
                      "quantity": 1, "new_ship_group": "00001-1", "group": "G",
                      "routing": "R", "rule": "r", "distance": 10.0, "distance_unit": "mi",
                      "shipping_cost": None, "transit_days": None, "delivery_date": None}
                     for k in range(allocations)]
        states = {(a["order"], "00001", "00001"): ledger.ItemState("_NA_", 1.0, None)
                  for a in allocated}
        return allocated, ledger.decisions("G", allocated, [], states, product_store="STORE",
                                           day="2026-01-01", at=datetime.now(UTC))
    batch = {"group": "G", "product_store": "STORE",
             "runs": [{"routing": "R", "attempted_items": allocations,
                       "brokered_items": allocations, "error": None, "shipping_cost": 0,
                       "packages": allocations, "split_orders": 0, "late_items": 0}]}
    with tempfile.TemporaryDirectory(prefix="routing-record-bench-") as folder:
        stores = []
        for console in (False, True):
            store = RunStore(f"sqlite:///{Path(folder) / f'console-{console}.db'}")
            store.upgrade()
            if not console:
                with store.engine.begin() as connection:
                    connection.execute(sa.text("DROP TRIGGER IF EXISTS batches_rollup"))
                    for name in _console_indexes():
                        connection.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
            stores.append(store)
        timings: list[list[float]] = [[], []]
        for number in range(rounds):
            allocated, decisions = decided(number)
            for k, store in enumerate(stores):
                batch_id = store.start_batch(group="G", product_store="STORE", plan_json="{}",
                                             source_name="x", source_text=None,
                                             snapshot_hash="x")
                began = time.perf_counter()
                store.finish_batch(batch_id, batch, allocated, [], decisions)
                timings[k].append((time.perf_counter() - began) * 1000)
        for store in stores:
            store.dispose()
    return statistics.median(timings[0]), statistics.median(timings[1])


def _console_indexes() -> list[str]:
    """The names of the indexes the console's migration (0006) creates."""
    import importlib.util
    path = Path(__file__).parent.parent / "ops" / "migrations" / "versions" / "0006_console.py"
    spec = importlib.util.spec_from_file_location("routing_migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [name for name, _, _ in module.INDEXES]
