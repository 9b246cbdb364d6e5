"""One run at a time per product store, across processes and machines.

PostgreSQL: a session advisory lock keyed by the store id, held on a connection kept open for
the run (so it dies with the process). SQLite: a lease row (owner, expiry) renewed by a
background thread while the run lives and taken over by anyone once it has expired.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from . import schema as t
from .store import RunStore

LEASE_SECONDS = 30.0


def lock_key(product_store: str) -> int:
    """A signed 64-bit advisory-lock key for a store id."""
    digest = hashlib.blake2b(product_store.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class StoreLock:
    """``with StoreLock(store, "STORE") as held:`` -- ``held`` says whether this process may
    run the store now; the lock is released on exit (or with the process)."""

    def __init__(self, store: RunStore, product_store: str, lease_seconds: float = LEASE_SECONDS):
        self.store = store
        self.product_store = product_store
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

    def _acquire(self) -> bool:
        if self._postgres:
            connection = self.store.engine.connect()
            got = connection.execute(sa.text("select pg_try_advisory_lock(:k)"),
                                     {"k": lock_key(self.product_store)}).scalar()
            connection.commit()
            if got:
                self._connection = connection
            else:
                connection.close()
            return bool(got)
        if not self._take_lease():
            return False
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name=f"lease {self.product_store}")
        self._renewer.start()
        return True

    def _take_lease(self) -> bool:
        now = datetime.now(UTC)
        self._clear_dead_local_holder()
        statement = sa.text(
            "insert into leases (name, owner, expires) values (:name, :owner, :expires) "
            "on conflict(name) do update set owner = excluded.owner, "
            "expires = excluded.expires where leases.expires < :now "
            "or leases.owner = excluded.owner")
        with self.store.engine.begin() as connection:
            done = connection.execute(statement, {
                "name": self.product_store, "owner": self.owner,
                "expires": (now + self.lease).isoformat(), "now": now.isoformat()})
            return done.rowcount == 1

    def _clear_dead_local_holder(self) -> None:
        """A lease held by a process of this host that no longer exists is void at once
        (without waiting for it to expire)."""
        with self.store.engine.begin() as connection:
            owner = connection.execute(sa.select(t.leases.c.owner).where(
                t.leases.c.name == self.product_store)).scalar()
            if owner is None or owner == self.owner:
                return
            host, _, rest = owner.partition(":")
            pid = rest.split(":", 1)[0]
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                connection.execute(t.leases.delete().where(
                    t.leases.c.name == self.product_store, t.leases.c.owner == owner))

    def _renew(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            self._take_lease()

    def _release(self) -> None:
        if self._connection is not None:
            self._connection.execute(sa.text("select pg_advisory_unlock(:k)"),
                                     {"k": lock_key(self.product_store)})
            self._connection.commit()
            self._connection.close()
            self._connection = None
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self.store.engine.begin() as connection:
            connection.execute(t.leases.delete().where(t.leases.c.name == self.product_store,
                                                       t.leases.c.owner == self.owner))


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
