"""One writer at a time per partition, across processes and machines.

The unit of locking is the **partition**: product stores linked by the real facilities they
share (they share those facilities' stock and daily order counts). A lock is taken on every
store of the partition, in sorted order, so two processes whose snapshots partition the stores
differently still exclude each other wherever their partitions overlap, and never deadlock.

Two ways to hold it:

- ``PartitionLock`` for a batch, which routes outside any transaction (seconds, for a large
  run) and then writes in one. PostgreSQL: session advisory locks on a connection kept for
  the batch (they die with the process); the batch writes on that same connection, so a lost
  connection can never write without its lock. SQLite: lease rows (owner, expiry) renewed by
  a thread while the batch lives, checked again in the transaction that writes.
- ``locked`` for a committed decision, which decides and writes inside one short transaction.
  PostgreSQL: transaction advisory locks on the same keys, under ``lock_timeout``. SQLite:
  ``BEGIN IMMEDIATE`` (one writer for the whole file) and no live lease of another owner.

Both wait a bounded time for a busy lock, then give up: a batch is recorded as ``skipped``, a
decision raises ``Busy`` (the API answers 503 with Retry-After and nothing is written).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from . import schema as t
from .store import SQLITE_WAIT, RunStore

LEASE_SECONDS = 30.0
BATCH_WAIT = 10.0   # seconds a batch waits for its partition before it is skipped
COMMIT_WAIT = 2.0   # seconds a committed decision waits before it is refused (503)
_RETRY = 0.02       # seconds between two tries of a busy SQLite lease
_BUSY_STATES = {"55P03", "40P01"}  # lock_not_available, deadlock_detected


class Busy(Exception):
    """The partition stayed locked by another writer for the whole wait."""


class LockLost(Exception):
    """A batch's lock was gone when it came to write (its lease expired and was taken, or its
    connection died): nothing was written."""


def lock_key(product_store: str) -> int:
    """A signed 64-bit advisory-lock key for a store id."""
    digest = hashlib.blake2b(product_store.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lock_domains(snapshot, stores: Iterable[str]) -> list[tuple[str, ...]]:
    """The partitions (sorted stores each) holding ``stores``, over every store the snapshot
    names: what must be locked to decide for them."""
    from ..scaleout import connected_stores
    wanted = set(stores)
    known = [s.id for s in snapshot.product_stores] + [
        s for f in snapshot.facilities if not f.virtual for s in f.product_stores]
    domains = [tuple(sorted(c)) for c in connected_stores(snapshot, known + sorted(wanted))
               if wanted.intersection(c)]
    return sorted(domains)


def psycopg_error() -> type:
    import psycopg
    return psycopg.Error


def _is_busy(error: sa.exc.DBAPIError) -> bool:
    if getattr(error.orig, "sqlstate", None) in _BUSY_STATES:
        return True
    return "database is locked" in str(error.orig)


class PartitionLock:
    """``with PartitionLock(store, stores, wait=s) as held:`` -- ``held`` says whether this
    process holds every store of ``stores`` now (waiting up to ``wait`` seconds for them);
    they are released on exit, or with the process. ``transaction()`` writes under them."""

    def __init__(self, store: RunStore, stores: Iterable[str], wait: float = 0.0,
                 lease_seconds: float = LEASE_SECONDS):
        self.store = store
        self.stores = sorted(set(stores))
        self.wait = wait
        self.lease = timedelta(seconds=lease_seconds)
        self.owner = owner_id()
        self.held = False
        self._connection: sa.Connection | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def _postgres(self) -> bool:
        return self.store.engine.dialect.name == "postgresql"

    def __enter__(self) -> bool:
        self.held = self._acquire()
        return self.held

    def __exit__(self, *exc) -> None:
        if self.held:
            self._release()
        self.held = False

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One write transaction while the lock is held; LockLost (and nothing written) when
        it is not any more."""
        if self._connection is not None:
            try:
                with self._connection.begin():
                    yield self._connection
            except sa.exc.OperationalError as error:
                if self._connection.invalidated or self._connection.closed:
                    raise LockLost(f"the connection holding the lock died: {error.orig}") \
                        from None
                raise
            return
        with self.store.engine.begin() as connection:
            now = datetime.now(UTC).isoformat()
            mine = connection.execute(sa.select(sa.func.count()).select_from(t.leases).where(
                t.leases.c.name.in_(self.stores), t.leases.c.owner == self.owner,
                t.leases.c.expires > now)).scalar()
            if mine != len(self.stores):
                raise LockLost("the lease of " + ", ".join(self.stores) + " expired and was "
                               "taken over")
            yield connection

    # ---- PostgreSQL ----
    def _acquire(self) -> bool:
        deadline = time.monotonic() + self.wait
        if self._postgres:
            return self._advisory(deadline)
        while not self._take_lease():
            if time.monotonic() + _RETRY > deadline:
                return False
            time.sleep(_RETRY)
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name=f"lease {' '.join(self.stores)}")
        self._renewer.start()
        return True

    def _advisory(self, deadline: float) -> bool:
        connection = self.store.engine.connect()
        taken: list[int] = []
        try:
            for key in sorted(lock_key(s) for s in self.stores):
                left = deadline - time.monotonic()
                if left <= 0:
                    got = connection.execute(sa.text("select pg_try_advisory_lock(:k)"),
                                             {"k": key}).scalar()
                else:
                    connection.execute(sa.text("select set_config('lock_timeout', :ms, true)"),
                                       {"ms": str(max(1, int(left * 1000)))})
                    connection.execute(sa.text("select pg_advisory_lock(:k)"), {"k": key})
                    got = True
                connection.commit()
                if not got:
                    break
                taken.append(key)
        except sa.exc.DBAPIError as error:
            if not _is_busy(error):
                connection.close()
                raise
            connection.rollback()  # session locks taken so far survive the rollback
        if len(taken) == len(self.stores):
            self._connection = connection
            return True
        for key in taken:
            connection.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": key})
        connection.commit()
        connection.close()
        return False

    # ---- SQLite ----
    def _take_lease(self) -> bool:
        """Take (or renew) the lease of every store at once, or none."""
        now = datetime.now(UTC)
        statement = sa.text(
            "insert into leases (name, owner, expires) values (:name, :owner, :expires) "
            "on conflict(name) do update set owner = excluded.owner, "
            "expires = excluded.expires where leases.expires < :now "
            "or leases.owner = excluded.owner")
        with self.store.engine.begin() as connection:
            _clear_dead_local_holders(connection, self.stores, self.owner)
            for name in self.stores:
                done = connection.execute(statement, {
                    "name": name, "owner": self.owner,
                    "expires": (now + self.lease).isoformat(), "now": now.isoformat()})
                if done.rowcount != 1:
                    connection.rollback()
                    return False
            return True

    def _renew(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            try:
                self._take_lease()
            except sa.exc.OperationalError:
                pass  # a busy file: the next try (before expiry) renews it

    def _release(self) -> None:
        if self._connection is not None:
            try:
                for key in sorted(lock_key(s) for s in self.stores):
                    self._connection.execute(sa.text("select pg_advisory_unlock(:k)"),
                                             {"k": key})
                self._connection.commit()
            except sa.exc.DBAPIError:
                pass  # a dead connection took its locks with it
            self._connection.close()
            self._connection = None
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self.store.engine.begin() as connection:
            connection.execute(t.leases.delete().where(t.leases.c.name.in_(self.stores),
                                                       t.leases.c.owner == self.owner))


class StoreLock(PartitionLock):
    """The lock of one product store, not waiting: ``with StoreLock(store, "S") as held``."""

    def __init__(self, store: RunStore, product_store: str, lease_seconds: float = LEASE_SECONDS):
        super().__init__(store, [product_store], 0.0, lease_seconds)
        self.product_store = product_store


@contextmanager
def locked(store: RunStore, stores: Iterable[str], wait: float = COMMIT_WAIT,
           prefetch=None, keep: bool = False) -> Iterator[sa.Connection]:
    """A write transaction holding the lock of every store of ``stores`` until it ends;
    raises Busy (nothing written) when they stay taken for ``wait`` seconds. Any lock wait
    inside the transaction (an idempotency key another transaction is writing) is bounded by
    the same deadline and is Busy too. ``prefetch`` (a `commits.GroupReads`) reads once the
    lock is held, before the block runs: on PostgreSQL in the lock's own round trip. With
    ``keep`` (a committer thread) its PostgreSQL connection stays checked out for the
    thread's next transaction, until `release_kept`."""
    names = sorted(set(stores))
    deadline = time.monotonic() + wait
    if store.engine.dialect.name == "postgresql":
        kept = _kept(store) if keep else None
        try:
            if kept is not None:
                try:
                    with _locked_on(kept, names, wait, prefetch) as connection:
                        yield connection
                    return
                except _DeadBeforeLock:
                    _release_kept(store)  # it died idle: once more on a checked one
            connection = store.engine.connect()
            try:
                with _locked_on(connection, names, wait, prefetch) as connection:
                    yield connection
            except BaseException:
                connection.close()
                raise
            if keep:
                _keep(store, connection)
            else:
                connection.close()
        except _DeadBeforeLock as dead:
            if isinstance(dead.error, psycopg_error()):
                raise sa.exc.DBAPIError.instance(None, None, dead.error,
                                                 psycopg_error()) from dead.error
            raise dead.error from None
        except sa.exc.DBAPIError as error:
            if _is_busy(error):
                raise Busy("the partition of " + ", ".join(names) + " stayed locked") from None
            raise
        except psycopg_error() as error:  # the lock's own statements, sent by the driver
            if getattr(error, "sqlstate", None) in _BUSY_STATES:
                raise Busy("the partition of " + ", ".join(names) + " stayed locked") from None
            raise sa.exc.DBAPIError.instance(None, None, error, psycopg_error()) from error
        return
    while True:
        left = deadline - time.monotonic()
        connection = store.engine.connect()
        try:
            # the wait for the file's write lock is bounded by what is left of ours
            connection.connection.driver_connection.execute(
                f"pragma busy_timeout = {max(1, int(left * 1000))}")
            try:
                transaction = connection.begin()
                connection.execute(sa.text("select 1"))  # BEGIN IMMEDIATE happens here
            except sa.exc.OperationalError as error:
                if _is_busy(error):
                    raise Busy("the run store stayed locked by another writer") from None
                raise
            if not _leased_elsewhere(connection, names):
                with transaction:
                    if prefetch is not None:
                        prefetch.run(connection)
                    yield connection
                return
            transaction.rollback()
        finally:
            with suppress(Exception):  # the pooled connection waits as long as before
                connection.connection.driver_connection.execute(
                    f"pragma busy_timeout = {int(SQLITE_WAIT * 1000)}")
            connection.close()
        if time.monotonic() + _RETRY > deadline:
            raise Busy("a batch holds the partition of " + ", ".join(names))
        time.sleep(_RETRY)


# A thread's connection for committed decisions on PostgreSQL, kept checked out between its
# groups: each checkout from the pool pings the server first, a round trip a group (a group
# makes three). One that died meanwhile fails the lock's own statements, before anything
# is written: the group then runs once more on a checked connection. `release_kept` gives it
# back to the pool (a committer thread with nothing to do).
_KEPT = threading.local()


class _DeadBeforeLock(Exception):
    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _kept(store: RunStore) -> sa.Connection | None:
    kept = getattr(_KEPT, "connections", None)
    connection = kept.get(store.engine) if kept is not None else None
    if connection is not None and (connection.closed or connection.invalidated
                                   or connection.in_transaction()
                                   or connection.connection.driver_connection.broken):
        _release_kept(store)  # left in a state no group should start from
        return None
    return connection


def _keep(store: RunStore, connection: sa.Connection) -> None:
    if getattr(_KEPT, "connections", None) is None:
        _KEPT.connections = weakref.WeakKeyDictionary()
    if connection.invalidated or connection.closed or \
            connection.connection.driver_connection.broken:
        connection.close()
        return
    _KEPT.connections[store.engine] = connection


def _release_kept(store: RunStore) -> None:
    kept = getattr(_KEPT, "connections", None)
    connection = kept.pop(store.engine, None) if kept is not None else None
    if connection is not None:
        with suppress(Exception):
            connection.close()


def release_kept() -> None:
    """Give this thread's kept connections back to their pools."""
    kept = getattr(_KEPT, "connections", None)
    for connection in list(kept.values()) if kept is not None else []:
        with suppress(Exception):
            connection.close()
    if kept is not None:
        kept.clear()


@contextmanager
def _locked_on(connection: sa.Connection, names: list[str], wait: float,
               prefetch) -> Iterator[sa.Connection]:
    """`locked`'s transaction on ``connection`` (PostgreSQL). _DeadBeforeLock when the
    connection was found dead by the lock's statements (nothing was sent that wrote)."""
    keys = sorted(lock_key(s) for s in names)
    raw = connection.connection.driver_connection
    try:
        transaction = connection.begin()
        # both statements in one round trip (psycopg's pipeline mode), in order
        with raw.pipeline(), raw.cursor() as cursor:
            cursor.execute("select set_config('lock_timeout', %s, true)",
                           (str(max(1, int(wait * 1000))),))
            cursor.execute("select pg_advisory_xact_lock(k) "
                           "from unnest(cast(%s as bigint[])) k", (keys,))
            if prefetch is not None:
                prefetch.send(raw)
    except (sa.exc.DBAPIError, psycopg_error()) as error:
        if raw.broken or raw.closed:
            with suppress(Exception):
                connection.invalidate()
            raise _DeadBeforeLock(error) from error
        with suppress(Exception):
            transaction.rollback()
        raise
    with transaction:
        if prefetch is not None:
            prefetch.run(connection)
        yield connection


def _leased_elsewhere(connection: sa.Connection, stores: list[str]) -> bool:
    """Whether a live process holds the lease of one of ``stores`` (SQLite)."""
    _clear_dead_local_holders(connection, stores, None)
    now = datetime.now(UTC).isoformat()
    return connection.execute(sa.select(t.leases.c.name).where(
        t.leases.c.name.in_(stores), t.leases.c.expires >= now).limit(1)).first() is not None


def _clear_dead_local_holders(connection: sa.Connection, stores: list[str],
                              me: str | None) -> None:
    """A lease held by a process of this host that no longer exists is void at once (without
    waiting for it to expire)."""
    host = socket.gethostname()
    for name, owner in connection.execute(sa.select(t.leases.c.name, t.leases.c.owner).where(
            t.leases.c.name.in_(stores))).all():
        if owner == me:
            continue
        where, _, rest = owner.partition(":")
        pid = rest.split(":", 1)[0]
        if where == host and pid.isdigit() and not _alive(int(pid)):
            connection.execute(t.leases.delete().where(t.leases.c.name == name,
                                                       t.leases.c.owner == owner))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def close_stale(store: RunStore) -> int:
    """Close as failed the batches left ``running`` by processes that died: those of every
    product store whose lock this process can take (so no live process is running it)."""
    closed = 0
    for product_store in store.running_stores():
        with StoreLock(store, product_store) as held:
            if held:
                closed += store.close_stale(product_store)
    return closed
