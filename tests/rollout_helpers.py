"""What the rollout tests share: the rules of production and of candidates, snapshots, stores
on SQLite and PostgreSQL, and the run store's contents that decisions reach."""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from routing_dsl.bench.suite import BENCH_ROUTE, generate
from routing_dsl.checker import Workspace
from routing_dsl.compiler import compile_program
from routing_dsl.ops.store import RunStore
from routing_dsl.plan import Plan

from .conftest import postgres_database

PRODUCTION = 'version "2026-11"\n' + BENCH_ROUTE
# the candidate looks for warehouses closer by: more splits, shorter distances
CLOSER = PRODUCTION.replace('version "2026-11"', 'version "2026-11-bf"').replace(
    "distance <= 1500 mi", "distance <= 300 mi")
# a candidate that allocates nothing and parks every unit
PARK_EVERYTHING = """\
version "park-everything"
declare queue _NA_, PARK
declare facility_group WAREHOUSES, STORES

group "Bench" for store STORE {
  routing "All orders" {
    filter { queue == _NA_ }
    sort by order_date
    rule "Nothing is close enough" {
      assign single
      inventory {
        facility_group == WAREHOUSES
        distance <= 0 mi
      }
      when unfilled { move to queue PARK }
    }
  }
}
"""


def compiled(text: str, name: str) -> Plan:
    result = Workspace().check_text(text, name=name)
    assert not result.has_errors, [d.message for d in result.diagnostics]
    return compile_program(result.program)


def snapshot(ship_groups: int = 200, facilities: int = 30, products: int = 40, seed: int = 7):
    return generate(facilities=facilities, ship_groups=ship_groups, products=products,
                    seed=seed)


@contextmanager
def database(kind: str, tmp_path, name: str = "runs"):
    """A fresh, migrated run store: a SQLite file, or a PostgreSQL database of its own."""
    if kind == "sqlite":
        store = RunStore(f"sqlite:///{tmp_path / (name + '.db')}")
        store.upgrade()
        try:
            yield store
        finally:
            store.dispose()
        return
    with postgres_database(f"rollout_{name}") as url:
        store = RunStore(url)
        store.upgrade()
        try:
            yield store
        finally:
            store.dispose()


def reached(store: RunStore) -> dict:
    """What decisions wrote where an OMS or a later decision sees it: the outbox, the ledger,
    the history, the batches' versions (ids and times left out, so two stores compare)."""
    def rows(sql: str) -> list:
        with store.engine.connect() as connection:
            return sorted(tuple(r) for r in connection.exec_driver_sql(sql))
    return {
        "outbox": rows("select kind, order_id, payload from outbox"),
        "ledger": rows("select kind, order_id, ship_group, item, product, facility, quantity, "
                       "opens from reservations"),
        "history": rows("select order_id, ship_group, item, from_facility, to_facility, "
                        "quantity, reason from history"),
        "versions": rows("select b.trigger, b.group_name, p.hash, b.version_label, "
                         "b.allocations, b.unfillable from batches b join plans p "
                         "on p.hash = b.plan_hash"),
    }


def count(store: RunStore, table: str) -> int:
    with store.engine.connect() as connection:
        return connection.execute(sa.text(f"select count(*) from {table}")).scalar()
