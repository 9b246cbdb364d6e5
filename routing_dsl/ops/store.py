"""The run store: every plan run, batch, routing run, allocation, unfillable item and moved
item, in SQLite (the default) or PostgreSQL.

A batch is recorded in two steps: ``start_batch`` commits a ``running`` row, and
``finish_batch`` writes everything the batch decided and its final status in **one**
transaction, so a process killed mid-batch leaves the whole batch or none of it. A batch left
``running`` by a dead process is closed as ``failed`` (HotWax's stale-run close-out) by
``locks.close_stale``, which every command that opens the store runs first: only batches
whose product store no live process holds are closed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from . import schema as t

DEFAULT_URL = "sqlite:///routing.db"
# What an OMS must do for each unfilled item, by the action routing took.
_OUTBOX_KIND = {"moved": "move_to_queue", "auto_cancel_set": "set_auto_cancel",
                "auto_cancel_cleared": "clear_auto_cancel"}


class StoreError(Exception):
    """The store cannot be used (unreachable, not migrated, bad URL); the message says why."""


def database_url(given: str | None) -> str:
    """``--db`` as given, else ``ROUTING_DB``, else ``routing.db`` in the working directory. A
    bare file path means SQLite; ``postgresql://`` means PostgreSQL through psycopg 3."""
    url = given or os.environ.get("ROUTING_DB") or DEFAULT_URL
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _engine(url: str) -> sa.Engine:
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 30.0})

            @sa.event.listens_for(engine, "connect")
            def _connect(dbapi_connection, _record) -> None:
                dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
                cursor = dbapi_connection.cursor()
                for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                    cursor.execute(f"PRAGMA {pragma}")
                cursor.close()

            @sa.event.listens_for(engine, "begin")
            def _begin(connection) -> None:
                # IMMEDIATE: a second writer waits for busy_timeout instead of failing at once
                connection.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as error:
        raise StoreError(f"cannot use database {_safe(url)}: {error}") from None


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location",
                           str(resources.files("routing_dsl.ops") / "migrations"))
    config.attributes["connection"] = connection
    return config


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BatchRecord:
    id: str
    group: str
    product_store: str
    trigger: str
    status: str
    started: datetime
    finished: datetime | None
    attempted_items: int
    brokered_items: int
    allocations: int
    unfillable: int
    error: str | None


class RunStore:
    """One database: owns its engine; every write is an explicit transaction."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)

    # ---- schema ----
    def upgrade(self) -> str:
        """Create or upgrade the schema to the newest migration; returns its revision."""
        try:
            with self.engine.begin() as connection:
                command.upgrade(_config(connection), "head")
        except sa.exc.OperationalError as error:
            raise StoreError(f"cannot reach {_safe(self.url)}: {error.orig}") from None
        return self.revision() or ""

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def require_current(self) -> None:
        """Refuse to work on a database whose schema is missing or old (and never create a
        SQLite file just to find that out)."""
        database = sa.engine.make_url(self.url).database
        if self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:") \
                and not Path(database).exists():
            raise StoreError(f"{database}: no run store here; create it with "
                             f"`routing db upgrade --db {database}`")
        try:
            current = self.revision()
        except sa.exc.OperationalError as error:
            raise StoreError(f"cannot reach {_safe(self.url)}: {error.orig}") from None
        with self.engine.connect() as connection:
            head = ScriptDirectory.from_config(_config(connection)).get_current_head()
        if current != head:
            state = "has no run store" if current is None else f"is at revision {current}"
            raise StoreError(f"{_safe(self.url)} {state}; run `routing db upgrade --db URL` "
                             f"(newest: {head})")

    # ---- batches ----
    def close_stale(self, product_store: str) -> int:
        """Close the batches of ``product_store`` left ``running``; the caller holds the
        store's lock, so no live process is running them (see locks.close_stale)."""
        with self.engine.begin() as connection:
            return connection.execute(
                t.batches.update().where(t.batches.c.status == "running",
                                         t.batches.c.product_store == product_store).values(
                    status="failed", finished=_now(),
                    error="the process running this batch stopped before it finished")
            ).rowcount

    def running_stores(self) -> list[str]:
        with self.engine.connect() as connection:
            return [row[0] for row in connection.execute(
                sa.select(t.batches.c.product_store).where(
                    t.batches.c.status == "running").distinct().order_by(
                    t.batches.c.product_store))]

    def start_batch(self, *, group: str, product_store: str, plan_json: str, source_name: str,
                    source_text: str | None, snapshot_hash: str, trigger: str = "manual",
                    started: datetime | None = None) -> str:
        """Commit a ``running`` batch (and the plan, the first time it runs); ``started`` is
        now unless a scheduler gives the time of its slot's round."""
        plan_hash = hashlib.sha256(plan_json.encode("utf-8")).hexdigest()
        batch_id = str(uuid.uuid4())
        with self.engine.begin() as connection:
            known = connection.execute(sa.select(t.plans.c.hash).where(
                t.plans.c.hash == plan_hash)).first()
            if known is None:
                connection.execute(t.plans.insert().values(
                    hash=plan_hash, source_name=source_name, source_text=source_text,
                    plan_json=plan_json, created=_now()))
            connection.execute(t.batches.insert().values(
                id=batch_id, trigger=trigger, group_name=group, product_store=product_store,
                plan_hash=plan_hash, snapshot_hash=snapshot_hash,
                started=(started or _now()).astimezone(UTC),  # SQLite keeps no offset: store UTC
                status="running", attempted_items=0, brokered_items=0, allocations=0,
                unfillable=0))
        return batch_id

    def finish_batch(self, batch_id: str, batch: dict, allocations: list[dict],
                     unfillable: list[dict], origins: dict[tuple[str, str], str]) -> None:
        """Everything one group run decided, in one transaction. ``origins`` maps (order,
        ship group) to the facility (queue) it waited in, for the history of moves."""
        now = _now()
        runs = batch.get("runs", [])
        status = "skipped" if batch.get("skipped") else (
            "failed" if any(r["error"] for r in runs) else "succeeded")
        error = batch.get("skipped") or "; ".join(r["error"] for r in runs if r["error"]) or None
        with self.engine.begin() as connection:
            if runs:
                connection.execute(t.runs.insert(), [
                    {"batch_id": batch_id, "position": i, **r} for i, r in enumerate(runs)])
            if allocations:
                connection.execute(t.allocations.insert(), [
                    {"batch_id": batch_id, "position": i, "order_id": a["order"],
                     **{k: a[k] for k in ("ship_group", "item", "product", "facility",
                                          "quantity", "new_ship_group", "routing", "rule",
                                          "distance", "distance_unit", "shipping_cost",
                                          "transit_days", "delivery_date")}}
                    for i, a in enumerate(allocations)])
            if unfillable:
                connection.execute(t.unfillable.insert(), [
                    {"batch_id": batch_id, "position": i, "order_id": u["order"],
                     **{k: u[k] for k in ("ship_group", "item", "product", "quantity",
                                          "routing", "rule", "action", "queue",
                                          "auto_cancel_date")}}
                    for i, u in enumerate(unfillable)])
            moves = [{"batch_id": batch_id, "order_id": a["order"], "ship_group": a["ship_group"],
                      "item": a["item"], "from_facility": origins[(a["order"], a["ship_group"])],
                      "to_facility": a["facility"], "quantity": a["quantity"],
                      "group_name": batch["group"], "routing": a["routing"], "rule": a["rule"],
                      "reason": "allocated", "at": now} for a in allocations]
            moves += [{"batch_id": batch_id, "order_id": u["order"], "ship_group": u["ship_group"],
                       "item": u["item"], "from_facility": origins[(u["order"], u["ship_group"])],
                       "to_facility": u["queue"], "quantity": u["quantity"],
                       "group_name": batch["group"], "routing": u["routing"], "rule": u["rule"],
                       "reason": "moved_to_queue", "at": now}
                      for u in unfillable if u["action"] == "moved"]
            if moves:
                connection.execute(t.history.insert(), moves)
            outbox = [{"batch_id": batch_id, "kind": "allocation", "order_id": a["order"],
                       "payload": json.dumps(a, sort_keys=True), "created": now}
                      for a in allocations]
            outbox += [{"batch_id": batch_id, "kind": _OUTBOX_KIND[u["action"]],
                        "order_id": u["order"], "payload": json.dumps(u, sort_keys=True),
                        "created": now} for u in unfillable if u["action"] in _OUTBOX_KIND]
            if outbox:
                connection.execute(t.outbox.insert(), outbox)
            connection.execute(t.batches.update().where(t.batches.c.id == batch_id).values(
                status=status, finished=now, error=error,
                attempted_items=sum(r["attempted_items"] for r in runs),
                brokered_items=sum(r["brokered_items"] for r in runs),
                allocations=len(allocations), unfillable=len(unfillable)))

    def pending(self, limit: int = 1000) -> list[dict]:
        """Outbox rows not yet acknowledged, oldest first."""
        query = sa.select(t.outbox).where(t.outbox.c.acked.is_(None)).order_by(
            t.outbox.c.id).limit(limit)
        with self.engine.connect() as connection:
            return [{"id": r["id"], "batch": r["batch_id"], "kind": r["kind"],
                     "order": r["order_id"], "decision": json.loads(r["payload"])}
                    for r in connection.execute(query).mappings()]

    def ack(self, ids: list[int] | None = None, batch: str | None = None) -> int:
        """Mark outbox rows applied (by id, or every row of a batch); returns how many."""
        condition = t.outbox.c.acked.is_(None)
        if ids is not None:
            condition = condition & t.outbox.c.id.in_(ids)
        if batch is not None:
            condition = condition & (t.outbox.c.batch_id == batch)
        with self.engine.begin() as connection:
            return connection.execute(t.outbox.update().where(condition).values(
                acked=_now())).rowcount

    def fail_batch(self, batch_id: str, error: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(t.batches.update().where(t.batches.c.id == batch_id).values(
                status="failed", finished=_now(), error=error))

    # ---- reading ----
    def batches(self, limit: int = 100, *, group: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                batch_id: str | None = None) -> list[BatchRecord]:
        """Batches, newest first: of one group, started in [since, until), or one by id."""
        query = sa.select(t.batches)
        if group is not None:
            query = query.where(t.batches.c.group_name == group)
        if since is not None:
            query = query.where(t.batches.c.started >= since)
        if until is not None:
            query = query.where(t.batches.c.started < until)
        if batch_id is not None:
            query = query.where(t.batches.c.id == batch_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(
                t.batches.c.started.desc(), t.batches.c.id).limit(limit)).mappings()
            return [BatchRecord(row["id"], row["group_name"], row["product_store"],
                                row["trigger"], row["status"], _utc(row["started"]),
                                row["finished"] and _utc(row["finished"]),
                                row["attempted_items"], row["brokered_items"],
                                row["allocations"], row["unfillable"], row["error"])
                    for row in rows]

    def batch_detail(self, batch_id: str) -> dict | None:
        """One batch with its runs, allocations, unfillable items and the plan it ran (its
        source file's name and text), or None."""
        found = self.batches(1, batch_id=batch_id)
        if not found:
            return None
        with self.engine.connect() as connection:
            plan = connection.execute(
                sa.select(t.plans.c.source_name, t.plans.c.source_text, t.plans.c.plan_json)
                .join(t.batches, t.batches.c.plan_hash == t.plans.c.hash)
                .where(t.batches.c.id == batch_id)).mappings().one()

            def rows(table) -> list[dict]:
                query = sa.select(table).where(table.c.batch_id == batch_id).order_by(
                    table.c.position)
                return [dict(r) for r in connection.execute(query).mappings()]
            return {"batch": found[0], "plan": dict(plan), "runs": rows(t.runs),
                    "allocations": rows(t.allocations), "unfillable": rows(t.unfillable)}

    def history(self, *, order: str | None = None, group: str | None = None,
                since: datetime | None = None, limit: int = 10_000) -> list[dict]:
        query = sa.select(t.history, t.batches.c.status).join(
            t.batches, t.batches.c.id == t.history.c.batch_id)
        if order is not None:
            query = query.where(t.history.c.order_id == order)
        if group is not None:
            query = query.where(t.history.c.group_name == group)
        if since is not None:
            query = query.where(t.history.c.at >= since)
        query = query.order_by(t.history.c.at, t.history.c.id).limit(limit)
        with self.engine.connect() as connection:
            return [{"order": r["order_id"], "ship_group": r["ship_group"], "item": r["item"],
                     "from": r["from_facility"], "to": r["to_facility"],
                     "quantity": r["quantity"], "group": r["group_name"],
                     "routing": r["routing"], "rule": r["rule"], "reason": r["reason"],
                     "at": _utc(r["at"]).isoformat(), "batch": r["batch_id"]}
                    for r in connection.execute(query).mappings()]

    def purge(self, older_than: timedelta) -> int:
        """Delete finished batches (and everything they recorded) started before now minus
        ``older_than``; returns how many batches went."""
        cutoff = _now() - older_than
        with self.engine.begin() as connection:
            old = sa.select(t.batches.c.id).where(t.batches.c.started < cutoff,
                                                   t.batches.c.status != "running")
            ids = [row[0] for row in connection.execute(old)]
            for table in (t.history, t.allocations, t.unfillable, t.runs, t.outbox):
                connection.execute(table.delete().where(table.c.batch_id.in_(ids)))
            connection.execute(t.batches.delete().where(t.batches.c.id.in_(ids)))
            used = sa.select(t.batches.c.plan_hash)
            connection.execute(t.plans.delete().where(t.plans.c.hash.not_in(used)))
        return len(ids)

    def reserved(self, *, since: datetime | None, facility: str | None = None,
                 product: str | None = None) -> dict[tuple[str, str], float]:
        """Units decisions took that the source does not show yet, per (facility, product),
        for the console's stock page: today, what batches finished at or after ``since``
        (when the live state was loaded) allocated. The one place that number comes from:
        the reservation ledger replaces it here."""
        if since is None:
            return {}
        a, b = t.allocations.c, t.batches.c
        recent = sa.select(b.id).where(b.finished >= since)  # few: found first, by index
        query = sa.select(a.facility, a.product, sa.func.sum(a.quantity)).where(
            a.batch_id.in_(recent)).group_by(a.facility, a.product)
        if facility is not None:
            query = query.where(a.facility == facility)
        if product is not None:
            query = query.where(a.product == product)
        with self.engine.connect() as connection:
            return {(f, p): float(quantity or 0) for f, p, quantity in connection.execute(query)}

    def dispose(self) -> None:
        self.engine.dispose()


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the store writes is UTC
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w`` or ``45m`` -> a duration."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([mhdw])\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h, 2w or 45m")
    number, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: number})
