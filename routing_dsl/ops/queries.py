"""What the console and the CLI read from the run store: paged, indexed queries only.

Every query here is bounded (a page, a period's hourly rollups, one order, one batch) and
served by an index (migration 0006; `tests/test_console_queries.py` holds each page to it
with EXPLAIN on SQLite and PostgreSQL), so pages stay fast with 100,000 batches and a million
history rows. Paging is by key (`after`, `before`), never by offset.

What the stock page shows as reserved comes from `RunStore.reserved`, the one place that
knows what decisions have taken that the source does not show yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from . import schema as t
from .store import BatchRecord, RunStore, utc

PAGE = 50
SEARCH_FIELDS = ("order", "ship_group", "product", "facility")


@dataclass(frozen=True)
class BatchRow(BatchRecord):
    """A batch as lists show it: its record, and the plan version (hash) it ran."""

    plan_hash: str = ""

    @property
    def version(self) -> str:
        """The version as lists show it: its label and a short hash (the hash alone for
        rules without a label)."""
        return version_text(self.version_label, self.plan_hash)

    @property
    def cursor(self) -> str:
        """Where the page after this row starts (see `batches`' ``before``)."""
        return f"{self.started.isoformat()}|{self.id}"


def version_text(label: str | None, plan_hash: str) -> str:
    """``2026-11-bf@3f2a9c1b`` (label, then the plan hash's first 8 characters), or the
    hash's first 12 without a label."""
    return f"{label}@{plan_hash[:8]}" if label else plan_hash[:12]


def parse_cursor(text: str) -> tuple[datetime, str]:
    """``STARTED|ID`` (a `BatchRow.cursor`) -> its parts; ValueError when malformed."""
    started, bar, batch_id = text.partition("|")
    if not bar or not batch_id or len(batch_id) > 36:
        raise ValueError(f"{text[:80]!r} is not a page cursor")
    moment = datetime.fromisoformat(started)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC), batch_id


def batches(store: RunStore, *, group: str | None = None, status: str | None = None,
            since: datetime | None = None, until: datetime | None = None,
            before: tuple[datetime, str] | None = None, limit: int = PAGE) -> list[BatchRow]:
    """Batches newest first (by start, then id), filtered, one page: those after the cursor
    ``before`` (the last row of the previous page)."""
    b = t.batches.c
    query = sa.select(t.batches)
    if group is not None:
        query = query.where(b.group_name == group)
    if status is not None:
        query = query.where(b.status == status)
    if since is not None:
        query = query.where(b.started >= since)
    if until is not None:
        query = query.where(b.started < until)
    if before is not None:
        query = query.where(sa.tuple_(b.started, b.id) < sa.tuple_(*before))
    query = query.order_by(b.started.desc(), b.id.desc()).limit(limit)
    with store.engine.connect() as connection:
        return [_batch_row(row) for row in connection.execute(query).mappings()]


def _batch_row(row) -> BatchRow:
    return BatchRow(row["id"], row["group_name"], row["product_store"], row["trigger"],
                    row["status"], utc(row["started"]), row["finished"] and utc(row["finished"]),
                    row["attempted_items"], row["brokered_items"], row["allocations"],
                    row["unfillable"], row["error"], row["version_label"], row["plan_hash"])


# ---- the dashboard ----

FIGURES = ("batch_count", "attempted_items", "brokered_items", "allocations", "units_routed",
           "ship_groups", "split_ship_groups", "distance_km", "distance_rows",
           "distance_mi_rows", "shipping_cost", "costed_units", "late_items", "unfilled_items",
           "unfilled_units")


def hour_of(moment: datetime) -> int:
    """Hours since 1970 (UTC), as the rollups count them."""
    return int(moment.astimezone(UTC).timestamp() // 3600)


def moment_of(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


@dataclass
class Bucket:
    """The figures of one stretch of a period (an hour, a day or a week), by status."""

    start: datetime
    by_status: dict[str, dict[str, float]]
    parked: dict[str, float]

    def total(self, figure: str) -> float:
        return sum(values[figure] for values in self.by_status.values())

    def count(self, status: str) -> int:
        return int(self.by_status.get(status, {}).get("batch_count", 0))


def dashboard(store: RunStore, *, since: datetime, until: datetime, step_hours: int,
              group: str | None = None) -> list[Bucket]:
    """The period's buckets (``step_hours`` long, from ``since``), every one of them, empty
    ones too: figures from the hourly rollups, and units parked per queue."""
    first, last = hour_of(since), hour_of(until - timedelta(microseconds=1)) + 1
    s, p = t.hourly_stats.c, t.hourly_parked.c
    bucket = ((s.hour - first) // step_hours).label("bucket")
    query = sa.select(bucket, s.status, *[sa.func.sum(getattr(s, f)).label(f)
                                          for f in FIGURES]).where(
        s.hour >= first, s.hour < last).group_by(bucket, s.status)
    parked_bucket = ((p.hour - first) // step_hours).label("bucket")
    parked = sa.select(parked_bucket, p.queue, sa.func.sum(p.units).label("units")).where(
        p.hour >= first, p.hour < last).group_by(parked_bucket, p.queue)
    if group is not None:
        query = query.where(s.group_name == group)
        parked = parked.where(p.group_name == group)
    count = max(1, -(-(last - first) // step_hours))
    buckets = [Bucket(moment_of(first + k * step_hours), {}, {}) for k in range(count)]
    with store.engine.connect() as connection:
        for row in connection.execute(query).mappings():
            buckets[int(row["bucket"])].by_status[row["status"]] = {
                f: float(row[f] or 0) for f in FIGURES}
        for row in connection.execute(parked).mappings():
            buckets[int(row["bucket"])].parked[row["queue"]] = float(row["units"] or 0)
    return buckets


def failed_batches(store: RunStore, *, since: datetime, until: datetime,
                   group: str | None = None, limit: int = 10) -> list[BatchRow]:
    """The period's failed batches, newest first."""
    return batches(store, group=group, status="failed", since=since, until=until, limit=limit)


def last_scheduled(store: RunStore, group: str) -> datetime | None:
    """When the group's latest scheduled batch started."""
    b = t.batches.c
    query = sa.select(sa.func.max(b.started)).where(b.group_name == group,
                                                    b.trigger == "scheduled")
    with store.engine.connect() as connection:
        found = connection.execute(query).scalar()
    return utc(found) if found is not None else None


# ---- orders ----

def _prefix(column, text: str):
    """``column`` starts with ``text``: a range the index serves, and an exact check."""
    return sa.and_(column >= text, column < text + "\U0010ffff",
                   sa.func.substr(column, 1, len(text)) == text)


def search_orders(store: RunStore, q: str, by: str = "order", after: str = "",
                  limit: int = PAGE) -> list[str]:
    """Order ids the run store knows, in order, after ``after``: by order id prefix, by
    ship group id, by product (allocated or left unfilled), or by facility (allocated to it
    or moved into it, a queue)."""
    h, a, u = t.history.c, t.allocations.c, t.unfillable.c
    if by == "order":
        sources = [(h.order_id, _prefix(h.order_id, q)), (u.order_id, _prefix(u.order_id, q))]
    elif by == "ship_group":
        sources = [(h.order_id, h.ship_group == q)]
    elif by == "product":
        sources = [(a.order_id, a.product == q), (u.order_id, u.product == q)]
    elif by == "facility":
        sources = [(h.order_id, h.to_facility == q)]
    else:
        raise ValueError(f"search by one of {', '.join(SEARCH_FIELDS)}")
    found: set[str] = set()
    with store.engine.connect() as connection:
        for column, condition in sources:
            query = sa.select(column).where(condition, column > after).group_by(column) \
                .order_by(column).limit(limit)
            found.update(row[0] for row in connection.execute(query))
    return sorted(found)[:limit]


def order_summaries(store: RunStore, orders: list[str]) -> dict[str, dict]:
    """For each order: moves recorded, the last one's time, where it went last."""
    if not orders:
        return {}
    h = t.history.c
    query = sa.select(h.order_id, h.to_facility, h.at, h.reason).where(
        h.order_id.in_(orders)).order_by(h.order_id, h.at, h.id)
    summaries: dict[str, dict] = {}
    with store.engine.connect() as connection:
        for row in connection.execute(query).mappings():
            entry = summaries.setdefault(row["order_id"], {"moves": 0})
            entry.update(moves=entry["moves"] + 1, last=utc(row["at"]),
                         to=row["to_facility"], reason=row["reason"])
    return summaries


def order_decisions(store: RunStore, order: str, limit: int = 200) -> list[dict]:
    """Every decision recorded for one order, newest batch first: its allocations and the
    items it left unfilled (with what happened to them), each with its batch."""
    a, u, b = t.allocations.c, t.unfillable.c, t.batches.c
    allocated = sa.select(
        a.batch_id, a.position, b.started, b.status, b.group_name, a.ship_group, a.item,
        a.product, a.quantity, a.routing, a.rule, a.facility, a.new_ship_group, a.distance,
        a.distance_unit, a.shipping_cost, a.delivery_date).join(
        t.batches, b.id == a.batch_id).where(a.order_id == order).order_by(
        b.started.desc(), a.batch_id, a.position).limit(limit)
    unfilled = sa.select(
        u.batch_id, u.position, b.started, b.status, b.group_name, u.ship_group, u.item,
        u.product, u.quantity, u.routing, u.rule, u.action, u.queue,
        u.auto_cancel_date).join(t.batches, b.id == u.batch_id).where(
        u.order_id == order).order_by(b.started.desc(), u.batch_id, u.position).limit(limit)
    rows = []
    with store.engine.connect() as connection:
        for row in connection.execute(allocated).mappings():
            rows.append({**row, "started": utc(row["started"]), "outcome": "allocated"})
        for row in connection.execute(unfilled).mappings():
            rows.append({**row, "started": utc(row["started"]),
                         "outcome": row["action"].replace("_", " "),
                         "facility": row["queue"] if row["action"] == "moved" else None})
    rows.sort(key=lambda r: (-r["started"].timestamp(), r["batch_id"],
                             r["outcome"] != "allocated", r["position"]))
    return rows[:limit]


def batch_hashes(store: RunStore, ids: list[str]) -> list[tuple[str, str]]:
    """(plan hash, snapshot hash) of each batch, in the order given."""
    b = t.batches.c
    with store.engine.connect() as connection:
        found = {row.id: (row.plan_hash, row.snapshot_hash) for row in connection.execute(
            sa.select(b.id, b.plan_hash, b.snapshot_hash).where(b.id.in_(ids)))}
    return [found.get(i, ("", "")) for i in ids]


def writeback(store: RunStore, *, batch_id: str | None = None, order: str | None = None
              ) -> dict:
    """What the OMS write-back did with a batch (its record) and the conflicts it refused,
    for one batch or one order."""
    c = t.sink_conflicts.c
    conflicts = sa.select(t.sink_conflicts).order_by(c.id).limit(200)
    conflicts = conflicts.where(c.batch_id == batch_id) if batch_id is not None else \
        conflicts.where(c.order_id == order)
    with store.engine.connect() as connection:
        record = None
        if batch_id is not None:
            record = connection.execute(sa.select(t.sink_batches).where(
                t.sink_batches.c.batch_id == batch_id)).mappings().first()
        return {"record": dict(record) if record else None,
                "conflicts": [dict(r) for r in connection.execute(conflicts).mappings()]}
