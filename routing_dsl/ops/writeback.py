"""Decisions written back into the OMS: the `--sink oms` of `routing run` and `routing serve`.

After a recorded run commits, each batch's decisions (read back from the run store, the
truth) are written into the OMS database the snapshot was read from, one transaction per
batch: a ship group allocated whole to one facility, or parked whole in one queue, is moved
there (its id kept); otherwise each facility's share becomes a new ship group with the id
the result names (`00001-1`), and each queue's share a new one numbered the same way; items
left unfilled get their auto-cancel dates set or cleared; the allocated units come off the
facility's stock (`oms_inventory.atp`) and each new package counts toward its daily orders,
as the OMS's own reservation would.

Two guards. **Idempotent by batch id**: the batch is recorded in `oms_applied_batch` in the
same transaction, so a batch delivered twice is applied once. **No lost update**: an order
is only written when its `version` is still the one the snapshot read (the update claiming
it adds one, atomically); an order the OMS changed meanwhile is refused, the conflict is
recorded in the run store (`sink_conflicts`) and the order is left where it is, for the next
round to decide afresh. The OMS must add one to `oms_order.version` at every change of an
order, its ship groups or its items.

Each operation is a list of SQL statements with named parameters (DEFAULT_STATEMENTS, for
the reference schema); a mapping file's `[sink]` table replaces any of them, for an OMS with
its own tables.

Once a batch is written, its outbox rows are acknowledged (applied, or refused with the
conflict recorded): in the same transaction when the OMS and the run store are one database,
else right after. A write-back that fails (the OMS down) acknowledges nothing and is
recorded as failed; its units stay where the OMS has them and the next round decides them
again.
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from . import schema as t
from .store import database_now

EPSILON = 1e-6
LEFT_LIMIT = 100_000  # orders whose version this sink remembers leaving (memory stays bounded)
_NEXT_POSITION = "(SELECT coalesce(max(position), -1) + 1 FROM {table})"
_ITEM_COLUMNS = ("product, status, unit_price, promised_date, ship_before, ship_after, "
                 "auto_cancel_date, item_group")

# Operation -> its statements, run in order with the operation's named parameters.
DEFAULT_STATEMENTS: dict[str, tuple[str, ...]] = {
    # :order, :version -> claims the order when its version is still :version (one row)
    "claim_order": ("UPDATE oms_order SET version = version + 1 "
                    "WHERE id = :order AND version = :version",),
    # :order -> the order's version now (for the conflict's record)
    "current_version": ("SELECT version FROM oms_order WHERE id = :order",),
    # :order, :ship_group -> its items: id, quantity, cancel_quantity
    "ship_group_items": ("SELECT id, quantity, cancel_quantity FROM oms_order_item "
                         "WHERE order_id = :order AND ship_group = :ship_group",),
    # :order -> ids of its ship groups
    "ship_group_ids": ("SELECT id FROM oms_ship_group WHERE order_id = :order",),
    # :order, :ship_group, :facility
    "move_ship_group": ("UPDATE oms_ship_group SET facility = :facility "
                        "WHERE order_id = :order AND id = :ship_group",),
    # :order, :ship_group, :new_ship_group, :facility -> a copy of the ship group
    "new_ship_group": (
        "INSERT INTO oms_ship_group (position, order_id, id, facility, shipment_method, "
        "carrier, has_ship_to, lat, lon, postal_code, country) SELECT "
        + _NEXT_POSITION.format(table="oms_ship_group") + ", order_id, :new_ship_group, "
        ":facility, shipment_method, carrier, has_ship_to, lat, lon, postal_code, country "
        "FROM oms_ship_group WHERE order_id = :order AND id = :ship_group",),
    # :order, :ship_group, :item, :new_ship_group, :quantity -> that many units of the item
    # into the new ship group (its share of the adjustments with them)
    "move_units": (
        "INSERT INTO oms_order_item (position, order_id, ship_group, id, quantity, "
        "cancel_quantity, adjustments, " + _ITEM_COLUMNS + ") SELECT "
        + _NEXT_POSITION.format(table="oms_order_item") + ", order_id, :new_ship_group, id, "
        ":quantity, 0, adjustments * :quantity / quantity, " + _ITEM_COLUMNS
        + " FROM oms_order_item WHERE order_id = :order AND ship_group = :ship_group "
        "AND id = :item",
        "INSERT INTO oms_item_excluded_facility (position, order_id, ship_group, item, "
        "facility) SELECT position, order_id, :new_ship_group, item, facility "
        "FROM oms_item_excluded_facility WHERE order_id = :order "
        "AND ship_group = :ship_group AND item = :item",
        "UPDATE oms_order_item SET adjustments = adjustments - adjustments * :quantity / "
        "quantity, quantity = quantity - :quantity WHERE order_id = :order "
        "AND ship_group = :ship_group AND id = :item",
        "DELETE FROM oms_item_excluded_facility WHERE order_id = :order "
        "AND ship_group = :ship_group AND item = :item AND NOT EXISTS (SELECT 1 FROM "
        "oms_order_item i WHERE i.order_id = :order AND i.ship_group = :ship_group "
        "AND i.id = :item AND i.quantity > 0.000001)",
        "DELETE FROM oms_order_item WHERE order_id = :order AND ship_group = :ship_group "
        "AND id = :item AND quantity <= 0.000001"),
    # :order, :ship_group -> the ship group goes when no item is left in it
    "drop_empty": ("DELETE FROM oms_ship_group WHERE order_id = :order AND id = :ship_group "
                   "AND NOT EXISTS (SELECT 1 FROM oms_order_item i WHERE "
                   "i.order_id = :order AND i.ship_group = :ship_group)",),
    # :order, :ship_group, :item, :date (null clears it)
    "set_auto_cancel": ("UPDATE oms_order_item SET auto_cancel_date = :date "
                        "WHERE order_id = :order AND ship_group = :ship_group AND id = :item",),
    # :facility, :product, :quantity -> the units come off the facility's stock
    "reserve": ("UPDATE oms_inventory SET atp = atp - :quantity "
                "WHERE facility = :facility AND product = :product",),
    # :facility, :count -> new packages count toward the facility's daily orders
    "count_orders": ("UPDATE oms_facility SET orders_today = orders_today + :count "
                     "WHERE id = :facility",),
    # :batch -> the summary recorded when the batch was applied here, if it was
    "applied_batch": ("SELECT summary FROM oms_applied_batch WHERE batch_id = :batch",),
    # :batch, :at, :summary
    "record_batch": ("INSERT INTO oms_applied_batch (batch_id, applied_at, summary) "
                     "VALUES (:batch, :at, :summary)",),
}


class WriteBackError(Exception):
    """A sink mapping that cannot be used (the message says why)."""


def read_sink_mapping(path: Path | None) -> dict[str, tuple[str, ...]]:
    """The statements of a mapping file's `[sink]` table (each a SQL string or a list of
    them) over the defaults."""
    statements = dict(DEFAULT_STATEMENTS)
    if path is None:
        return statements
    try:
        given = tomllib.loads(path.read_text(encoding="utf-8")).get("sink", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise WriteBackError(f"{path}: {error}") from None
    if not isinstance(given, dict):
        raise WriteBackError(f"{path}: [sink] must be a table of operations")
    for name, value in given.items():
        if name not in DEFAULT_STATEMENTS:
            raise WriteBackError(f"{path}: [sink] has no operation {name!r} (operations: "
                                 f"{', '.join(DEFAULT_STATEMENTS)})")
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value or \
                not all(isinstance(s, str) and s.strip() for s in value):
            raise WriteBackError(f"{path}: [sink] {name}: a SQL statement or a list of them")
        statements[name] = tuple(value)
    return statements


@dataclass
class WriteBack:
    """What the write-back did with one batch."""

    batch_id: str
    applied: list[str] = field(default_factory=list)      # orders written
    conflicts: list[dict] = field(default_factory=list)   # order, expected, found, detail
    already: bool = False                                  # applied by an earlier delivery
    error: str | None = None                               # it failed: nothing was written


class OmsSink:
    """Writes batches' decisions into the OMS database at ``url``."""

    name = "oms"

    def __init__(self, url: str, statements: dict[str, tuple[str, ...]] | None = None):
        self.url = url
        self.statements = statements or dict(DEFAULT_STATEMENTS)
        self._engine = None
        # the version each order was left at by this sink's own claims: a later decision of
        # it (a commit, a rejected line rerouted) is expected there, not at the version an
        # older read of the source holds, which this sink's own write moved on
        self._left: dict[str, int] = {}
        self._lock = threading.Lock()  # one delivery at a time: batches land in order

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = _oms_engine(self.url)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def deliver(self, store, batch_ids: list[str], snapshot, orders=()) -> list[WriteBack]:
        """Write each batch (in order) into the OMS, comparing each order's version with
        the one ``snapshot`` read, or ``orders`` give (a committed decision's order, as its
        request sent it), or this sink's own write left, whichever is latest: versions only
        grow, so any other change of the order since is a conflict."""
        versions = {o.id: o.version for o in snapshot.orders}
        versions.update((o.id, o.version) for o in orders if o.version is not None)
        with self._lock:
            for order, version in list(self._left.items()):
                if versions.get(order) is None:
                    continue
                if versions[order] >= version:  # the source shows it now: not needed
                    del self._left[order]
                else:
                    versions[order] = version
            outcomes = [self._batch(store, batch_id, versions) for batch_id in batch_ids]
            for outcome in outcomes:
                if outcome.error is None and not outcome.already:
                    for order in outcome.applied:
                        self._left.pop(order, None)
                        self._left[order] = versions[order]
            while len(self._left) > LEFT_LIMIT:  # the oldest: a refresh has read them since
                del self._left[next(iter(self._left))]
        return outcomes

    # ---- one batch ----
    def _batch(self, store, batch_id: str, versions: dict) -> WriteBack:
        detail = store.batch_detail(batch_id)
        outcome = WriteBack(batch_id)
        if detail is None or detail["batch"].status == "running":
            outcome.error = "the batch is not finished"
            return outcome
        together = _same_database(self.url, store.url)
        try:
            if together:  # one database: the moves and the acknowledgement commit together
                with store.engine.begin() as connection:
                    self._apply(connection, detail, versions, outcome)
                    _record(connection, outcome)
            else:  # the OMS first, then the run store: a crash in between is repaired by
                # delivering again (the OMS says it has the batch; the store catches up)
                with self.engine.begin() as connection:
                    self._apply(connection, detail, versions, outcome)
                with store.engine.begin() as connection:
                    _record(connection, outcome)
        except sa.exc.SQLAlchemyError as error:
            outcome = WriteBack(batch_id, error=_describe(error))
            try:
                with store.engine.begin() as connection:
                    _record(connection, outcome)
            except sa.exc.SQLAlchemyError:
                pass  # the run store is down too: the caller logs the error
        return outcome

    def _run(self, connection, operation: str, **parameters):
        result = None
        for statement in self.statements[operation]:
            result = connection.execute(sa.text(statement), parameters)
        return result

    def _apply(self, connection, detail: dict, versions: dict, outcome: WriteBack) -> None:
        batch_id = outcome.batch_id
        known = self._run(connection, "applied_batch", batch=batch_id).first()
        if known is not None:  # delivered before: applied once
            summary = json.loads(known[0])
            outcome.applied, outcome.conflicts = summary["applied"], summary["conflicts"]
            outcome.already = True
            return
        allocations = defaultdict(list)
        unfilled = defaultdict(list)
        for row in detail["allocations"]:
            allocations[row["order_id"]].append(row)
        for row in detail["unfillable"]:
            if row["action"] != "left":
                unfilled[row["order_id"]].append(row)
        for order in dict.fromkeys([*allocations, *unfilled]):
            expected = versions.get(order)
            if expected is None:
                outcome.conflicts.append({
                    "order": order, "expected": None, "found": None,
                    "detail": "the snapshot holds no version for this order (the orders "
                              "query must select oms_order.version)"})
                continue
            claimed = self._run(connection, "claim_order", order=order, version=expected)
            if claimed.rowcount != 1:
                found = self._run(connection, "current_version", order=order).scalar()
                outcome.conflicts.append({
                    "order": order, "expected": expected, "found": found,
                    "detail": "the order is no longer in the OMS" if found is None else
                    f"the order changed in the OMS since the snapshot was read (version "
                    f"{expected}, now {found}): left for the next round"})
                continue
            versions[order] = expected + 1
            self._order(connection, order, allocations[order], unfilled[order])
            outcome.applied.append(order)
        self._run(connection, "record_batch", batch=batch_id,
                  at=datetime.now(UTC).isoformat(),
                  summary=json.dumps({"applied": outcome.applied,
                                      "conflicts": outcome.conflicts}))

    def _order(self, connection, order: str, allocations: list[dict],
               unfilled: list[dict]) -> None:
        """One claimed order's decisions: ship groups moved or split, items parked,
        auto-cancel dates, stock and daily counts."""
        groups: dict[str, dict] = defaultdict(lambda: {"allocations": [], "moves": {},
                                                       "cancels": {}})
        for row in allocations:
            groups[row["ship_group"]]["allocations"].append(row)
        for row in sorted(unfilled, key=lambda r: r["position"]):
            entry = groups[row["ship_group"]]
            if row["action"] == "moved":  # the last move of an item is where it ends
                entry["moves"][row["item"]] = (row["queue"], row["quantity"])
            else:
                entry["cancels"][row["item"]] = row["auto_cancel_date"] \
                    if row["action"] == "auto_cancel_set" else None
        for ship_group, entry in groups.items():
            self._ship_group(connection, order, ship_group, entry)
        packages: dict[str, set] = defaultdict(set)
        for row in allocations:
            self._run(connection, "reserve", facility=row["facility"], product=row["product"],
                      quantity=row["quantity"])
            packages[row["facility"]].add((row["ship_group"], row["new_ship_group"]))
        for facility, shipped in packages.items():
            self._run(connection, "count_orders", facility=facility, count=len(shipped))

    def _ship_group(self, connection, order: str, ship_group: str, entry: dict) -> None:
        items = {row[0]: float(row[1]) - float(row[2] or 0) for row in self._run(
            connection, "ship_group_items", order=order, ship_group=ship_group)}
        allocated: dict[str, float] = defaultdict(float)
        shares: dict[str, list] = {}  # new ship group -> (facility, [(item, quantity)])
        for row in entry["allocations"]:
            allocated[row["item"]] += row["quantity"]
            shares.setdefault(row["new_ship_group"], (row["facility"], []))[1].append(
                (row["item"], row["quantity"]))
        parked: dict[str, list] = defaultdict(list)  # queue -> [(item, quantity)]
        for item, (queue, quantity) in entry["moves"].items():
            left = min(quantity, items.get(item, 0.0) - allocated[item])
            if left > EPSILON:
                parked[queue].append((item, left))
        moved = defaultdict(float)
        for share in [*[s[1] for s in shares.values()], *parked.values()]:
            for item, quantity in share:
                moved[item] += quantity
        places = [facility for facility, _ in shares.values()] + list(parked)
        whole = len(places) == 1 and bool(items) and all(
            abs(moved[item] - open_units) <= EPSILON for item, open_units in items.items())
        if whole:
            self._run(connection, "move_ship_group", order=order, ship_group=ship_group,
                      facility=places[0])
            for item in allocated:
                self._run(connection, "set_auto_cancel", order=order, ship_group=ship_group,
                          item=item, date=None)
        elif places:
            for new_ship_group, (facility, share) in shares.items():
                self._split(connection, order, ship_group, new_ship_group, facility, share)
                for item, _ in share:
                    self._run(connection, "set_auto_cancel", order=order,
                              ship_group=new_ship_group, item=item, date=None)
            for queue, share in parked.items():
                taken = {row[0] for row in self._run(connection, "ship_group_ids",
                                                     order=order)}
                number = 1
                while f"{ship_group}-{number}" in taken:
                    number += 1
                self._split(connection, order, ship_group, f"{ship_group}-{number}", queue,
                            share)
            self._run(connection, "drop_empty", order=order, ship_group=ship_group)
        for item, date in entry["cancels"].items():
            self._run(connection, "set_auto_cancel", order=order, ship_group=ship_group,
                      item=item, date=date)

    def _split(self, connection, order: str, ship_group: str, new_ship_group: str,
               facility: str, share: list) -> None:
        self._run(connection, "new_ship_group", order=order, ship_group=ship_group,
                  new_ship_group=new_ship_group, facility=facility)
        for item, quantity in share:
            self._run(connection, "move_units", order=order, ship_group=ship_group, item=item,
                      new_ship_group=new_ship_group, quantity=float(quantity))


def _record(connection, outcome: WriteBack) -> None:
    """The run store's side: what the sink did with the batch, the conflicts it refused,
    and (when it went through) the batch's outbox rows acknowledged."""
    now = datetime.now(UTC)
    seen = connection.execute(sa.select(t.sink_batches.c.status).where(
        t.sink_batches.c.batch_id == outcome.batch_id)).scalar()
    if seen == "applied":
        return
    if seen is not None:  # an earlier delivery failed; this one says how it went
        connection.execute(t.sink_batches.delete().where(
            t.sink_batches.c.batch_id == outcome.batch_id))
    connection.execute(t.sink_batches.insert().values(
        batch_id=outcome.batch_id, sink="oms",
        status="failed" if outcome.error else "applied", orders_applied=len(outcome.applied),
        conflicts=len(outcome.conflicts), error=outcome.error, at=now))
    if outcome.error:
        return
    stamp = database_now(connection)  # what the ledger's reflection rule compares
    if outcome.conflicts:
        connection.execute(t.sink_conflicts.insert(), [
            {"batch_id": outcome.batch_id, "order_id": c["order"],
             "expected_version": c["expected"], "found_version": c["found"],
             "detail": c["detail"], "at": now} for c in outcome.conflicts])
        # a refused order's decisions never happened in the OMS: its ledger lines stop
        # applying at once, so the next round decides it afresh from what the OMS holds
        connection.execute(t.reservations.update().where(
            t.reservations.c.batch_id == outcome.batch_id,
            t.reservations.c.order_id.in_(sorted({c["order"] for c in outcome.conflicts})),
            t.reservations.c.released.is_(None)).values(released=stamp))
    connection.execute(t.outbox.update().where(
        t.outbox.c.batch_id == outcome.batch_id, t.outbox.c.acked.is_(None)).values(
        acked=stamp))


def _oms_engine(url: str) -> sa.Engine:
    """An engine on the OMS database: on SQLite, every transaction takes the write lock at
    its start (a second writer waits, never fails halfway); nothing else about the file is
    changed."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30.0})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def _same_database(first: str, second: str) -> bool:
    one, other = sa.engine.make_url(first), sa.engine.make_url(second)
    return (one.get_backend_name(), one.host, one.port, one.database) == \
        (other.get_backend_name(), other.host, other.port, other.database)


def _describe(error: sa.exc.SQLAlchemyError) -> str:
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause) else ''}"
