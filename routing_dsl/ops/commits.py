"""What a group of committed decisions reads once its partition's lock is held, in one round
trip on PostgreSQL.

A group (service/state.py) reads the idempotency keys it brings, the ledger lines other
transactions wrote since its process last looked, its orders' own earlier lines and their
recorded rejections, and (PostgreSQL) the ids its outbox rows and ledger lines will take.
On PostgreSQL these go in the lock's own pipeline (`locks.locked(..., prefetch=...)`), after
the lock statements, so the server runs them once the lock is granted and answers them all
at once: on a loaded machine each round trip costs a scheduling of both processes, and a
group made five of them before deciding. On SQLite they are plain statements in the
transaction.

The statements are written once, with arrays instead of expanded lists: one text per store
count, which psycopg prepares after a few uses (no planning per group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from . import rejections
from .ledger import Line
from .store import RunStore, LINE_COLUMNS

_KNOWN_KEYS = "select key, request, answer from decision_keys where key = any(%s)"
_LEDGER = (f"select {LINE_COLUMNS} from reservations r join outbox o on o.id = r.outbox_id "
           "where r.released is null and {where} order by r.id")
_UNREFLECTED = "(o.acked is null or o.acked >= %s)"
_REJECTIONS = ("select id, product_store, order_id, ship_group, item, product, facility, "
               "quantity, reason, at from rejections where order_id = any(%s) order by id")
_IDS = ("select nextval(pg_get_serial_sequence('outbox', 'id')), "
        "nextval(pg_get_serial_sequence('reservations', 'id')) from generate_series(1, %s)")


@dataclass
class GroupReads:
    """The reads of one group: ``keys`` it brings, lines of ``stores`` above ``after`` (each
    store's last line seen), lines and rejections of ``orders``, unreflected by a source read
    with cutoff ``reflected_before``; ``ids`` (outbox id, ledger id) pairs taken ahead on
    PostgreSQL (`RunStore.record` takes more if its rows need more)."""

    store: RunStore
    keys: list[str]
    stores: list[str]
    after: dict[str, int]
    orders: set[str]
    reflected_before: datetime | None
    ids_wanted: int = 0
    known: dict[str, tuple[str, str]] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)   # new lines of the stores
    own: list[Line] = field(default_factory=list)     # the orders' lines, of the stores
    refused: list[rejections.Rejection] = field(default_factory=list)
    ids: list[tuple[int, int]] = field(default_factory=list)
    _cursors: list | None = None

    def send(self, raw) -> None:
        """PostgreSQL: queue the statements on ``raw`` (a psycopg connection in pipeline
        mode, the partition's lock statements queued before them)."""
        unreflected = [] if self.reflected_before is None else [self.reflected_before]
        reflected = [_UNREFLECTED] if unreflected else []
        stores = sorted(self.stores)
        after = "(" + " or ".join(["(r.product_store = %s and r.id > %s)"] * len(stores)) + ")"
        statements = [
            (_KNOWN_KEYS, [sorted(self.keys)]),
            (_LEDGER.format(where=" and ".join([*reflected, after])),
             [*unreflected, *[v for s in stores for v in (s, self.after.get(s, 0))]]),
            # by order only: its index finds them (a store's lines are the whole ledger)
            (_LEDGER.format(where=" and ".join([*reflected, "r.order_id = any(%s)"])),
             [*unreflected, sorted(self.orders)]),
            (_REJECTIONS, [sorted(self.orders)]),
        ]
        if self.ids_wanted:
            statements.append((_IDS, [self.ids_wanted]))
        self._cursors = []
        for query, params in statements:
            cursor = raw.cursor()
            cursor.execute(query, params)
            self._cursors.append(cursor)

    def run(self, connection: sa.Connection) -> None:
        """Once the lock is held: collect what `send` queued (PostgreSQL), or read it now."""
        stores = set(self.stores)
        if self._cursors is None:
            self.known = self.store.decision_keys(self.keys, connection)
            self.lines = self.store.ledger(reflected_before=self.reflected_before,
                                           stores=self.stores, after=self.after,
                                           connection=connection)
            self.own = [line for line in self.store.ledger(
                reflected_before=self.reflected_before, orders=self.orders,
                connection=connection) if line.product_store in stores]
            self.refused = rejections.stored(connection, orders=self.orders)
            return
        results = []
        for cursor in self._cursors:
            results.append(cursor.fetchall())
            cursor.close()
        self._cursors = None
        keys, lines, own, refused, *ids = results
        self.known = {key: (request, answer) for key, request, answer in keys}
        self.lines = [Line(*row) for row in lines]
        self.own = [line for line in (Line(*row) for row in own) if line.product_store in stores]
        self.refused = [rejections.Rejection(*row[:9], rejections.stored_time(row[9]))
                        for row in refused]
        self.ids = sorted(tuple(row) for row in ids[0]) if ids else []
