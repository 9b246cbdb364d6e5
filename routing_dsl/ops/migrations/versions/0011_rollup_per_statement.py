"""PostgreSQL: the hourly rollups of migration 0006 kept by a trigger per statement, not per
batch.

A group of committed decisions settles its batches (one per decision) in one UPDATE
(`RunStore.settle_batches`); the row trigger ran its two aggregate statements once per batch
(about 0.65 ms of PostgreSQL's CPU a commit), this one runs them once per UPDATE, over the
batches that statement moved out of `running` (its transition tables). What the rollups hold
is the same. SQLite has no statement triggers: its row trigger stays.

Revision ID: 0011
Revises: 0010
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# the batches the UPDATE moved out of `running`, as an array: the rollup statements take it
# as a parameter and keep one generic plan per connection (planned at every call, over the
# transition tables or for each array, they cost 2-3 ms each time), along the batch_id
# indexes (a generic plan made while the tables are small would scan them whole for good)
SETTLED = ("SELECT array_agg(settled.id) FROM settled JOIN unsettled "
           "ON unsettled.id = settled.id "
           "WHERE unsettled.status = 'running' AND settled.status <> 'running'")


def _console():
    """Migration 0006, for its rollup statements and row trigger (one text of them)."""
    path = Path(__file__).with_name("0006_console.py")
    spec = importlib.util.spec_from_file_location("migration_0006_console", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    console = _console()
    console.drop_trigger("postgresql")
    body = ";\n".join(console.rollup("postgresql", "batch_id = ANY(ids)", "b.id = ANY(ids)"))
    op.execute(f"CREATE FUNCTION batches_rollup() RETURNS trigger LANGUAGE plpgsql "
               f"SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$\n"
               f"DECLARE ids varchar[];\n"
               f"BEGIN\n{SETTLED} INTO ids;\n"
               f"IF ids IS NULL THEN RETURN NULL; END IF;\n"
               f"{body};\nRETURN NULL;\nEND $$")
    # transition tables allow no column list (UPDATE OF status): any UPDATE fires it, and
    # one that settles no batch adds nothing
    op.execute("CREATE TRIGGER batches_rollup AFTER UPDATE ON batches "
               "REFERENCING OLD TABLE AS unsettled NEW TABLE AS settled "
               "FOR EACH STATEMENT EXECUTE FUNCTION batches_rollup()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    console = _console()
    console.drop_trigger("postgresql")
    console.create_trigger("postgresql")
