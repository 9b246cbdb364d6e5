"""The run store: every plan run, batch, routing run, allocation, unfillable item and moved
item, the outbox of decisions for the OMS, the reservation ledger and the idempotency keys of
committed decisions, in SQLite (the default) or PostgreSQL.

A batch is recorded in two steps: ``start_batch`` commits a ``running`` row, and
``finish_batch`` writes everything the batch decided and its final status in **one**
transaction (with its outbox rows and ledger lines), so a process killed mid-batch leaves the
whole batch or none of it. A batch left ``running`` by a dead process is closed as ``failed``
(HotWax's stale-run close-out) by ``locks.close_stale``, which every command that opens the
store runs first: only batches whose product store no live process holds are closed. A
committed decision is written whole, batch included, in one transaction (``record``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from . import schema as t
from .schema import Time
from .ledger import Decisions, Line

DEFAULT_URL = "sqlite:///routing.db"
SQLITE_WAIT = 30.0  # seconds a SQLite writer waits for the file (busy_timeout)
# execution option of a read-only transaction: on SQLite a plain (deferred) BEGIN, which
# neither waits for nor blocks a writer
READ = {"routing_read": True}


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
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_WAIT})

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
                if connection.get_execution_options().get("routing_read"):
                    connection.exec_driver_sql("BEGIN")
                else:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        # No JIT: the run store's statements are short, and without fresh statistics
        # (autovacuum off or behind) the console rollup trigger's estimates grow with
        # the tables until every commit compiles it (~100 ms of server CPU each)
        return sa.create_engine(url, pool_pre_ping=True,
                                connect_args={"options": "-c jit=off"})
    except (sa.exc.ArgumentError, ImportError) as error:
        raise StoreError(f"cannot use database {safe_url(url)}: {error}") from None


def safe_url(url: str) -> str:
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


def _upsert(connection: sa.Connection, table: sa.Table):
    """The dialect's INSERT, which has ON CONFLICT clauses."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def plan_hash(plan_json: str) -> str:
    return hashlib.sha256(plan_json.encode("utf-8")).hexdigest()


def batch_values(batch: dict, allocations: list, unfillable: list) -> dict:
    """A finished batch's status, error and counts, from the result's batch entry."""
    runs = batch.get("runs", [])
    return {
        "status": "skipped" if batch.get("skipped") else (
            "failed" if any(r["error"] for r in runs) else "succeeded"),
        "error": batch.get("skipped") or "; ".join(r["error"] for r in runs if r["error"])
        or None,
        "attempted_items": sum(r["attempted_items"] for r in runs),
        "brokered_items": sum(r["brokered_items"] for r in runs),
        "allocations": len(allocations), "unfillable": len(unfillable)}


def optimizations_of(result: dict, group: str) -> list[dict]:
    """The result's `optimization` entries of ``group``'s optimised routing runs."""
    return [entry for entry in result.get("optimization", {}).get("routings", [])
            if entry["group"] == group]


def optimization_rows(batch_id: str, entries: list[dict]) -> list[dict]:
    """The `optimizations` rows of a batch's optimised routing runs (`optimizations_of`)."""
    return [{"batch_id": batch_id, "position": i, "routing": e["routing"], "mode": e["mode"],
             "status": e["status"], "windows": e["windows"], "rules_cost": e["rules_cost"],
             "optimized_cost": e["optimized_cost"], "saving": e["saving"],
             "lower_bound": e["lower_bound"], "gap": e["gap"],
             "rules": json.dumps(e["rules"], sort_keys=True),
             "optimized": json.dumps(e["optimized"], sort_keys=True),
             "rule_costs": json.dumps(e["rule_costs"])}
            for i, e in enumerate(entries)]


@dataclass
class Recorded:
    """One batch's decided rows, ready to write (see ``RunStore.record``)."""

    batch_id: str
    batch: dict                  # the result's batch entry (group, product store, runs)
    allocations: list[dict]
    unfillable: list[dict]
    decisions: Decisions         # history, outbox rows and their ledger lines
    # the result's `optimization` entries of the batch's routings (`optimizations_of`)
    optimizations: list[dict] = field(default_factory=list)


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
    version_label: str | None = None  # the rules' label (beside the plan hash)


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
            raise StoreError(f"cannot reach {safe_url(self.url)}: {error.orig}") from None
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
            raise StoreError(f"cannot reach {safe_url(self.url)}: {error.orig}") from None
        with self.engine.connect() as connection:
            head = ScriptDirectory.from_config(_config(connection)).get_current_head()
        if current != head:
            state = "has no run store" if current is None else f"is at revision {current}"
            raise StoreError(f"{safe_url(self.url)} {state}; run `routing db upgrade --db URL` "
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
        with self.reading() as connection:
            return [row[0] for row in connection.execute(
                sa.select(t.batches.c.product_store).where(
                    t.batches.c.status == "running").distinct().order_by(
                    t.batches.c.product_store))]

    def start_batch(self, *, group: str, product_store: str, plan_json: str, source_name: str,
                    source_text: str | None, snapshot_hash: str, trigger: str = "manual",
                    started: datetime | None = None, version_label: str | None = None) -> str:
        """Commit a ``running`` batch (and the plan, the first time it runs); ``started`` is
        now unless a scheduler gives the time of its slot's round; ``version_label`` is the
        plan's (see `Plan.version_label`)."""
        batch_id = str(uuid.uuid4())
        # an unlabelled plan's batch names no label column (a store before migration 0008,
        # as the upgrade tests fill one, takes it as before)
        with self.engine.begin() as connection:
            digest = self.save_plan(connection, plan_json, source_name, source_text)
            connection.execute(t.batches.insert().values(
                id=batch_id, trigger=trigger, group_name=group, product_store=product_store,
                plan_hash=digest, snapshot_hash=snapshot_hash,
                started=(started or _now()).astimezone(UTC),  # SQLite keeps no offset: store UTC
                status="running", attempted_items=0, brokered_items=0, allocations=0,
                unfillable=0, **({"version_label": version_label} if version_label else {})))
        return batch_id

    def save_plan(self, connection: sa.Connection, plan_json: str, source_name: str,
                  source_text: str | None) -> str:
        """The plan's row, written unless it is there (concurrent first runs of one plan do
        not collide); returns its hash."""
        digest = plan_hash(plan_json)
        connection.execute(_upsert(connection, t.plans).values(
            hash=digest, source_name=source_name, source_text=source_text,
            plan_json=plan_json, created=_now()).on_conflict_do_nothing())
        return digest

    def finish_batch(self, batch_id: str, batch: dict, allocations: list[dict],
                     unfillable: list[dict], decisions: Decisions,
                     connection: sa.Connection | None = None,
                     optimizations: list[dict] | None = None) -> None:
        """Everything one group run decided, in one transaction (``connection``'s, when
        given: the caller's, holding the partition's lock)."""
        if connection is None:
            with self.engine.begin() as connection:
                self.finish_batch(batch_id, batch, allocations, unfillable, decisions,
                                  connection, optimizations)
            return
        self.record(connection, [Recorded(batch_id, batch, allocations, unfillable,
                                          decisions, list(optimizations or []))])
        connection.execute(t.batches.update().where(t.batches.c.id == batch_id).values(
            finished=_now(), **batch_values(batch, allocations, unfillable)))

    def record(self, connection: sa.Connection, recorded: list[Recorded],
               ids: list[tuple[int, int]] = ()) -> dict[str, int]:
        """Write batches' runs, allocations, unfillable items, history, outbox rows and ledger
        lines (one statement per table for all of them); returns the last ledger id written
        per product store, also kept in ``ledger_heads``. The caller holds the lock of every
        product store whose lines it writes; ``ids``: (outbox id, ledger id) pairs it took
        under that lock (`commits.GroupReads`), used first."""
        runs, allocations, unfillable, history, outbox, lines = [], [], [], [], [], []
        optimized = []
        for entry in recorded:
            batch_id = entry.batch_id
            optimized += optimization_rows(batch_id, entry.optimizations)
            runs += [{"batch_id": batch_id, "position": i, **r}
                     for i, r in enumerate(entry.batch.get("runs", []))]
            allocations += [
                {"batch_id": batch_id, "position": i, "order_id": a["order"],
                 **{k: a[k] for k in ("ship_group", "item", "product", "facility",
                                      "quantity", "new_ship_group", "routing", "rule",
                                      "distance", "distance_unit", "shipping_cost",
                                      "transit_days", "delivery_date")}}
                for i, a in enumerate(entry.allocations)]
            unfillable += [
                {"batch_id": batch_id, "position": i, "order_id": u["order"],
                 **{k: u[k] for k in ("ship_group", "item", "product", "quantity",
                                      "routing", "rule", "action", "queue",
                                      "auto_cancel_date")}}
                for i, u in enumerate(entry.unfillable)]
            history += [{"batch_id": batch_id, **h} for h in entry.decisions.history]
            outbox += [{"batch_id": batch_id, **o} for o in entry.decisions.outbox]
            lines += [{"batch_id": batch_id, **line} for line in entry.decisions.lines]
        for table, rows in ((t.runs, runs), (t.allocations, allocations),
                            (t.unfillable, unfillable), (t.history, history),
                            (t.optimizations, optimized)):
            insert_rows(connection, table, rows)
        if not outbox:
            return {}
        # ids taken beforehand, so that the rows go in as plain rows (RETURNING makes the
        # driver parse one huge statement per thousand rows: 20x slower)
        taken = list(ids[:len(outbox)])
        if len(taken) < len(outbox):
            taken += _next_ids(connection, len(outbox) - len(taken))
        for row, line, (outbox_id, line_id) in zip(outbox, lines, taken, strict=True):
            row["id"] = line["outbox_id"] = outbox_id
            line["id"] = line_id
        insert_rows(connection, t.outbox, outbox)
        insert_rows(connection, t.reservations, lines)
        heads: dict[str, int] = {}
        for line in lines:
            store = line["product_store"]
            heads[store] = max(heads.get(store, 0), line["id"])
        rows = [{"product_store": s, "last_id": i} for s, i in sorted(heads.items())]
        if _pipeline(connection) is not None:
            _pipeline(connection).executemany(_SET_HEAD_PG, [tuple(r.values()) for r in rows])
        else:
            connection.execute(_SET_HEAD, rows)
        return heads

    def insert_batches(self, connection: sa.Connection, rows: list[dict]) -> None:
        """Finished batches' own rows (a committed decision's, written whole), inserted as
        ``running``: `settle_batches` gives them their status once their rows are written
        in the same transaction, so that what a batch's end sets off (the hourly rollup
        trigger of migration 0006) finds them all."""
        insert_rows(connection, t.batches, [{**row, "status": "running"} for row in rows])

    def settle_batches(self, connection: sa.Connection, rows: list[dict]) -> None:
        """The status of batches `insert_batches` wrote, now that their rows are written: on
        PostgreSQL in one statement, whose rollup trigger (migration 0011) then aggregates
        them all at once."""
        if rows and connection.dialect.name == "postgresql":
            statuses: dict[str, list[str]] = {}
            for row in rows:
                statuses.setdefault(row["status"], []).append(row["id"])
            for status, ids in statuses.items():  # one statement a status (all succeed)
                if _pipeline(connection) is not None:
                    _pipeline(connection).execute(_SETTLE_PG, (status, ids))
                else:
                    connection.exec_driver_sql(_SETTLE_PG, (status, ids))
        elif rows:
            connection.execute(
                t.batches.update().where(t.batches.c.id == sa.bindparam("batch"))
                .values(status=sa.bindparam("final")),
                [{"batch": row["id"], "final": row["status"]} for row in rows])

    # ---- the ledger ----
    def clock(self) -> datetime:
        """The database's clock (UTC): what acknowledgements are stamped with."""
        with self.reading() as connection:
            value = connection.execute(sa.select(database_now(connection))).scalar()
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return utc(value)

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read-only transaction (on SQLite it neither waits for nor blocks a writer)."""
        with self.engine.connect() as connection:
            connection.execution_options(**READ)
            with connection.begin():
                yield connection

    def heads(self, connection: sa.Connection | None = None) -> dict[str, int]:
        """The last ledger id written per product store."""
        if connection is None:
            with self.reading() as connection:
                return self.heads(connection)
        return dict(connection.execute(sa.select(t.ledger_heads.c.product_store,
                                                 t.ledger_heads.c.last_id)).all())

    def ledger(self, *, reflected_before: datetime | None, stores=None,
               after: dict[str, int] | None = None, orders=None,
               connection: sa.Connection | None = None) -> list[Line]:
        """The ledger lines a source read with cutoff ``reflected_before`` does not reflect
        (all of them for None), oldest first: of ``stores``, above the id ``after`` gives
        each of them, of ``orders``, when given."""
        if connection is None:
            with self.reading() as connection:
                return self.ledger(reflected_before=reflected_before, stores=stores,
                                   after=after, orders=orders, connection=connection)
        params: dict = {}
        if reflected_before is not None:
            params["cutoff"] = _cutoff_value(connection, reflected_before)
        if after is not None:
            stores = sorted(stores if stores is not None else after)
            for k, store in enumerate(stores):
                params[f"s{k}"], params[f"a{k}"] = store, after.get(store, 0)
        elif stores is not None:
            params["stores"] = sorted(stores)
        if orders is not None:
            params["orders"] = sorted(orders)
        statement = _ledger_query(connection.dialect.name, reflected_before is not None,
                                  len(stores) if after is not None else None,
                                  after is None and stores is not None, orders is not None)
        return [Line(*row) for row in connection.execute(statement, params)]

    # ---- idempotency keys ----
    def decision_keys(self, keys, connection: sa.Connection | None = None
                      ) -> dict[str, tuple[str, str]]:
        """The known ``keys``: each one's request digest and the answer given."""
        if connection is None:
            with self.reading() as connection:
                return self.decision_keys(keys, connection)
        return {key: (request, answer) for key, request, answer in connection.execute(
            _KNOWN_KEYS, {"keys": sorted(keys)})}

    def insert_keys(self, connection: sa.Connection, rows: list[dict]) -> set[str] | None:
        """Write idempotency keys (key, order_id, request, answer), in key order; returns the
        keys written: a key another transaction holds is not (it waits for that one). In a
        `pipelined` block that commits, None: a key taken fails the commit instead
        (`is_key_race`), so that nothing waits for this statement's answer."""
        if not rows:
            return set()
        cursor = _pipeline(connection)
        if cursor is not None and connection.info.get("pipeline_commits"):
            ordered = sorted(rows, key=lambda r: r["key"])
            created = _now()
            cursor.executemany(
                "insert into decision_keys (key, order_id, request, answer, created) "
                "values (%s, %s, %s, %s, %s)",
                [(r["key"], r["order_id"], r["request"], r["answer"], created)
                 for r in ordered])
            return None
        if cursor is not None:  # the group's last statement: its answer ends the pipeline
            ordered = sorted(rows, key=lambda r: r["key"])
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(ordered))
            cursor.execute(
                "insert into decision_keys (key, order_id, request, answer, created) "
                f"values {values} on conflict (key) do nothing returning key",
                [v for r in ordered for v in (r["key"], r["order_id"], r["request"],
                                             r["answer"], _now())])
            return {key for (key,) in cursor.fetchall()}
        params: dict = {"created": _now()}
        for k, row in enumerate(sorted(rows, key=lambda r: r["key"])):
            for name in ("key", "order_id", "request", "answer"):
                params[f"{name}{k}"] = row[name]
        return set(connection.execute(_insert_keys(len(rows)), params).scalars())

    def pending(self, limit: int = 1000) -> list[dict]:
        """Outbox rows not yet acknowledged, oldest first."""
        query = sa.select(t.outbox).where(t.outbox.c.acked.is_(None)).order_by(
            t.outbox.c.id).limit(limit)
        with self.reading() as connection:
            return [{"id": r["id"], "batch": r["batch_id"], "kind": r["kind"],
                     "order": r["order_id"], "decision": json.loads(r["payload"])}
                    for r in connection.execute(query).mappings()]

    def ack(self, ids: list[int] | None = None, batch: str | None = None) -> int:
        """Mark outbox rows applied (by id, or every row of a batch), stamped with the
        database's clock (see ledger.reflection_cutoff); returns how many."""
        condition = t.outbox.c.acked.is_(None)
        if ids is not None:
            condition = condition & t.outbox.c.id.in_(ids)
        if batch is not None:
            condition = condition & (t.outbox.c.batch_id == batch)
        with self.engine.begin() as connection:
            return connection.execute(t.outbox.update().where(condition).values(
                acked=database_now(connection))).rowcount

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
        with self.reading() as connection:
            rows = connection.execute(query.order_by(
                t.batches.c.started.desc(), t.batches.c.id).limit(limit)).mappings()
            return [BatchRecord(row["id"], row["group_name"], row["product_store"],
                                row["trigger"], row["status"], utc(row["started"]),
                                row["finished"] and utc(row["finished"]),
                                row["attempted_items"], row["brokered_items"],
                                row["allocations"], row["unfillable"], row["error"],
                                row["version_label"])
                    for row in rows]

    def batch_detail(self, batch_id: str) -> dict | None:
        """One batch with its runs, allocations, unfillable items and the plan it ran (its
        source file's name and text), or None."""
        found = self.batches(1, batch_id=batch_id)
        if not found:
            return None
        with self.reading() as connection:
            plan = connection.execute(
                sa.select(t.plans.c.hash, t.plans.c.source_name, t.plans.c.source_text,
                          t.plans.c.plan_json)
                .join(t.batches, t.batches.c.plan_hash == t.plans.c.hash)
                .where(t.batches.c.id == batch_id)).mappings().one()

            def rows(table) -> list[dict]:
                query = sa.select(table).where(table.c.batch_id == batch_id).order_by(
                    table.c.position)
                return [dict(r) for r in connection.execute(query).mappings()]
            optimized = [{**row, **{key: json.loads(row[key])
                                    for key in ("rules", "optimized", "rule_costs")}}
                         for row in rows(t.optimizations)]
            return {"batch": found[0], "plan": dict(plan), "runs": rows(t.runs),
                    "allocations": rows(t.allocations), "unfillable": rows(t.unfillable),
                    "optimizations": optimized}

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
        with self.reading() as connection:
            return [{"order": r["order_id"], "ship_group": r["ship_group"], "item": r["item"],
                     "from": r["from_facility"], "to": r["to_facility"],
                     "quantity": r["quantity"], "group": r["group_name"],
                     "routing": r["routing"], "rule": r["rule"], "reason": r["reason"],
                     "at": utc(r["at"]).isoformat(), "batch": r["batch_id"]}
                    for r in connection.execute(query).mappings()]

    def purge(self, older_than: timedelta) -> int:
        """Delete finished batches (and everything they recorded) started before now minus
        ``older_than``, except those with decisions the OMS has not acknowledged (their
        reservations still apply), and idempotency keys as old; returns how many batches
        went."""
        cutoff = _now() - older_than
        with self.engine.begin() as connection:
            waiting = sa.select(t.outbox.c.batch_id).where(t.outbox.c.acked.is_(None))
            old = sa.select(t.batches.c.id).where(t.batches.c.started < cutoff,
                                                   t.batches.c.status != "running",
                                                   t.batches.c.id.not_in(waiting))
            ids = [row[0] for row in connection.execute(old)]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                for table in (t.history, t.allocations, t.unfillable, t.runs, t.reservations,
                              t.outbox, t.optimizations):
                    connection.execute(table.delete().where(table.c.batch_id.in_(chunk)))
                connection.execute(t.batches.delete().where(t.batches.c.id.in_(chunk)))
            used = sa.select(t.batches.c.plan_hash)
            connection.execute(t.plans.delete().where(t.plans.c.hash.not_in(used)))
            connection.execute(t.decision_keys.delete().where(
                t.decision_keys.c.created < cutoff))
        return len(ids)

    def dispose(self) -> None:
        self.engine.dispose()


def _next_ids(connection: sa.Connection, count: int) -> list[tuple[int, int]]:
    """``count`` new (outbox id, ledger id) pairs, increasing. PostgreSQL: from the tables'
    sequences. SQLite (whose writer holds the whole file): above every id there, and above
    every ledger head, so a purge can never make a ledger id come back."""
    if connection.dialect.name == "postgresql":
        query = ("select nextval(pg_get_serial_sequence('outbox', 'id')), "
                 "nextval(pg_get_serial_sequence('reservations', 'id')) "
                 "from generate_series(1, %s)")
        cursor = _pipeline(connection)
        if cursor is not None:  # what was sent before goes with it, in one round trip
            cursor.execute(query, (count,))
            return sorted(tuple(row) for row in cursor.fetchall())
        return sorted(tuple(row) for row in connection.execute(sa.text(
            query.replace("%s", ":count")), {"count": count}))
    outbox, ledger, head = connection.execute(sa.select(
        sa.select(sa.func.coalesce(sa.func.max(t.outbox.c.id), 0)).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.func.max(t.reservations.c.id), 0)).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.func.max(t.ledger_heads.c.last_id), 0))
        .scalar_subquery())).one()
    ledger = max(ledger, head)
    return [(outbox + k, ledger + k) for k in range(1, count + 1)]


def is_key_race(error: BaseException) -> bool:
    """Whether ``error`` is an idempotency key another transaction wrote first (a commit
    `insert_keys` deferred its check to)."""
    diag = getattr(getattr(error, "orig", error), "diag", None)
    return getattr(diag, "constraint_name", None) == "pk_decision_keys"


@contextmanager
def pipelined(connection: sa.Connection, commit: bool = False) -> Iterator[None]:
    """On PostgreSQL, what the block writes (with `insert_rows`, `record`,
    `RunStore.insert_batches`, `settle_batches`, `insert_keys`) is sent without waiting for
    each statement's answer (psycopg's pipeline mode): a group of committed decisions is
    written in two round trips (its ledger ids, then the rest) instead of two per table by
    COPY, while its partition's lock is held. An error is raised as SQLAlchemy raises it
    (IntegrityError, OperationalError, ...), the transaction then rolled back as usual.
    With ``commit``, the transaction commits at the end of the block, in the same round trip
    (nothing may run on the connection after it). Nothing changes on SQLite."""
    if connection.dialect.name != "postgresql":
        yield
        return
    import psycopg
    raw = connection.connection.driver_connection
    try:
        with raw.pipeline(), raw.cursor() as cursor:
            connection.info["pipeline"] = cursor
            connection.info["pipeline_commits"] = commit
            try:
                yield
                if commit:
                    raw.commit()  # queued behind the writes; SQLAlchemy's commit finds none
            finally:
                connection.info.pop("pipeline", None)
                connection.info.pop("pipeline_commits", None)
    except psycopg.Error as error:
        raise sa.exc.DBAPIError.instance(None, None, error, psycopg.Error) from error


def _pipeline(connection: sa.Connection):
    """The cursor of the `pipelined` block ``connection`` is in, if any."""
    return connection.info.get("pipeline")


def insert_rows(connection: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """Insert ``rows`` (dicts): on PostgreSQL with COPY, about ten times cheaper per row
    than an INSERT, in the connection's transaction all the same; in a `pipelined` block
    (a few rows: a group of commits) as INSERTs sent with the block's other statements."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), rows)
        return
    shapes: dict[tuple, list[dict]] = {}
    for row in rows:
        shapes.setdefault(tuple(row), []).append(row)
    cursor = _pipeline(connection)
    if cursor is not None:
        # one statement a table, its rows as one JSON document (orjson, in C): a statement a
        # row cost the driver (and the server) about as much as the rest of the commit's
        # writes together, and a column an array cost the driver's Python array dumper
        # about a fifth of the committer's time (each string escaped by a regex)
        for columns, same in shapes.items():
            cursor.execute(_json_insert(table, columns), (_json_rows(columns, same),))
        return
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:
        for columns, same in shapes.items():
            names = ", ".join(f'"{c}"' for c in columns)
            with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                for row in same:
                    copy.write_row(tuple(row.values()))


@functools.cache
def _json_insert(table: sa.Table, columns: tuple[str, ...]) -> str:
    """INSERT of rows given as one JSON array of objects, each value read as its column's
    type by PostgreSQL (`json_populate_recordset` on the table's own row type; the columns
    not given keep their defaults)."""
    names = ", ".join(f'"{c}"' for c in columns)
    return (f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM '
            f'json_populate_recordset(null::"{table.name}", %s::json)')


def _json_rows(columns: tuple[str, ...], rows: list[dict]) -> str:
    """``rows`` as the JSON `_json_insert` reads: a column mixing booleans and integers
    as integers (JSON's true is no integer); a float that JSON cannot write (NaN, infinity) as
    its text, which PostgreSQL reads as that float."""
    mixed = [c for c in columns if {type(row[c]) for row in rows} >= {bool, int}]
    odd = [c for c in columns if any(isinstance(v, float) and not math.isfinite(v)
                                     for v in (row[c] for row in rows))]
    if mixed or odd:
        rows = [{**row, **{c: int(row[c]) for c in mixed if row[c] is not None},
                 **{c: str(row[c]) for c in odd if isinstance(row[c], float)}} for row in rows]
    # OPT_NON_STR_KEYS: rows read back from the database are keyed by SQLAlchemy's
    # `quoted_name`, a str subclass orjson refuses as a key without it
    return orjson.dumps(rows, default=_json_value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_value(value):
    item = getattr(value, "item", None)  # a numpy scalar
    if item is not None:
        return item()
    return str(value)


def database_now(connection: sa.Connection):
    """The database's current time as SQL: to the microsecond on PostgreSQL, to the
    millisecond on SQLite (in the text form SQLAlchemy writes there: UTC, six decimals)."""
    if connection.dialect.name == "postgresql":
        return sa.func.clock_timestamp()
    return sa.func.strftime("%Y-%m-%d %H:%M:%f", "now").concat("000")


_SETTLE_PG = "update batches set status = %s where id = any(%s)"

# The statements a committed decision runs, written once: building and compiling a Core
# construct costs more than running the statement.
LINE_COLUMNS = ("r.id, r.product_store, r.kind, r.order_id, r.ship_group, r.item, r.product, "
                 "r.facility, r.quantity, r.opens, r.day, r.auto_cancel_date")
_KNOWN_KEYS = sa.text("select key, request, answer from decision_keys where key in :keys"
                      ).bindparams(sa.bindparam("keys", expanding=True))
_SET_HEAD_PG = ("insert into ledger_heads (product_store, last_id) values (%s, %s) "
                "on conflict (product_store) do update set last_id = excluded.last_id")
_SET_HEAD = sa.text("insert into ledger_heads (product_store, last_id) "
                    "values (:product_store, :last_id) on conflict (product_store) "
                    "do update set last_id = excluded.last_id")


@functools.cache
def _ledger_query(dialect: str, reflection: bool, after_stores: int | None, in_stores: bool,
                  in_orders: bool) -> sa.TextClause:
    """The ledger lines not released (their decision voided): unreflected (an
    acknowledgement at or after ``:cutoff``, compared as text to the second on SQLite, where
    times are text: a stamp without fractions in that very second counts as at or after it),
    of stores above an id each, of stores, of orders."""
    where, binds = ["r.released is null"], []
    if reflection:
        acked = "o.acked" if dialect == "postgresql" else "cast(o.acked as text)"
        where.append(f"(o.acked is null or {acked} >= :cutoff)")
        binds.append(sa.bindparam("cutoff", type_=Time if dialect == "postgresql"
                                  else sa.Text))
    if after_stores is not None:
        where.append("(" + " or ".join(f"(r.product_store = :s{k} and r.id > :a{k})"
                                       for k in range(after_stores)) + ")")
    if in_stores:
        where.append("r.product_store in :stores")
        binds.append(sa.bindparam("stores", expanding=True))
    if in_orders:
        where.append("r.order_id in :orders")
        binds.append(sa.bindparam("orders", expanding=True))
    return sa.text(f"select {LINE_COLUMNS} from reservations r "
                   "join outbox o on o.id = r.outbox_id"
                   + " where " + " and ".join(where)
                   + " order by r.id").bindparams(*binds)


def _cutoff_value(connection: sa.Connection, cutoff: datetime):
    if connection.dialect.name == "postgresql":
        return cutoff
    return cutoff.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@functools.cache
def _insert_keys(count: int) -> sa.TextClause:
    values = ", ".join(f"(:key{k}, :order_id{k}, :request{k}, :answer{k}, :created)"
                       for k in range(count))
    return sa.text("insert into decision_keys (key, order_id, request, answer, created) "
                   f"values {values} on conflict (key) do nothing returning key").bindparams(
        sa.bindparam("created", type_=Time))


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the store writes is UTC
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w`` or ``45m`` -> a duration."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([mhdw])\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h, 2w or 45m")
    number, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: number})
