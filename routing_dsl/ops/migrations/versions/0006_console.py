"""The console's reads: indexes for its paged queries, and hourly rollups of finished batches
kept by a trigger.

The trigger fires once per batch, when its status leaves `running` (the batch's allocations,
unfillable items and runs are written by then, in the same transaction), and adds the batch
to its hour's row; existing batches are added here. A later migration that rebuilds the
`batches` table on SQLite (`batch_alter_table`) drops the trigger and must create it again
(`tests/test_console_queries.py` checks it is there at head).

Revision ID: 0006
Revises: 0004 (issue 20's 0005 comes first once merged)
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_batches_status_started", "batches", ["status", "started"]),
    ("ix_batches_group_started", "batches", ["group_name", "started"]),
    ("ix_batches_group_trigger_started", "batches", ["group_name", "trigger", "started"]),
    ("ix_batches_finished", "batches", ["finished"]),
    ("ix_allocations_order", "allocations", ["order_id"]),
    ("ix_allocations_product_order", "allocations", ["product", "order_id"]),
    ("ix_unfillable_order", "unfillable", ["order_id"]),
    ("ix_unfillable_product_order", "unfillable", ["product", "order_id"]),
    ("ix_history_ship_group_order", "history", ["ship_group", "order_id"]),
    ("ix_history_to_order", "history", ["to_facility", "order_id"]),
)

# Each figure of one batch (the batch row is `b`), as an expression.
FIGURES = {
    "batch_count": "1",
    "attempted_items": "b.attempted_items",
    "brokered_items": "b.brokered_items",
    "allocations": "(SELECT count(*) FROM allocations a WHERE a.batch_id = b.id)",
    "units_routed": "(SELECT coalesce(sum(a.quantity), 0) FROM allocations a "
                    "WHERE a.batch_id = b.id)",
    "ship_groups": "(SELECT count(*) FROM (SELECT a.order_id FROM allocations a "
                   "WHERE a.batch_id = b.id GROUP BY a.order_id, a.ship_group) s)",
    "split_ship_groups": "(SELECT count(*) FROM (SELECT a.order_id FROM allocations a "
                         "WHERE a.batch_id = b.id GROUP BY a.order_id, a.ship_group "
                         "HAVING count(DISTINCT a.new_ship_group) > 1) s)",
    "distance_km": "(SELECT coalesce(sum(CASE WHEN a.distance_unit = 'km' THEN a.distance "
                   "ELSE a.distance * 1.609344 END), 0) FROM allocations a "
                   "WHERE a.batch_id = b.id AND a.distance IS NOT NULL)",
    "distance_rows": "(SELECT count(*) FROM allocations a WHERE a.batch_id = b.id "
                     "AND a.distance IS NOT NULL)",
    "distance_mi_rows": "(SELECT count(*) FROM allocations a WHERE a.batch_id = b.id "
                        "AND a.distance IS NOT NULL AND a.distance_unit = 'mi')",
    "shipping_cost": "(SELECT coalesce(sum(a.shipping_cost), 0) FROM allocations a "
                     "WHERE a.batch_id = b.id)",
    "costed_units": "(SELECT coalesce(sum(a.quantity), 0) FROM allocations a "
                    "WHERE a.batch_id = b.id AND a.shipping_cost IS NOT NULL)",
    "late_items": "(SELECT coalesce(sum(r.late_items), 0) FROM runs r WHERE r.batch_id = b.id)",
    "unfilled_items": "(SELECT count(*) FROM unfillable u WHERE u.batch_id = b.id)",
    "unfilled_units": "(SELECT coalesce(sum(u.quantity), 0) FROM unfillable u "
                      "WHERE u.batch_id = b.id)",
}
KEY = ("hour", "group_name", "trigger", "status")


def hour(dialect: str) -> str:
    """Hours since 1970 (UTC) of the batch's start."""
    if dialect == "postgresql":
        return "CAST(floor(extract(epoch FROM b.started) / 3600) AS INTEGER)"
    return "CAST(strftime('%s', b.started) AS INTEGER) / 3600"


def rollup(dialect: str, where: str) -> list[str]:
    """The statements adding the finished batches ``where`` selects to the hourly rows."""
    figures = ", ".join(f"{expression} AS {name}" for name, expression in FIGURES.items())
    sums = ", ".join(f"sum({name})" for name in FIGURES)
    added = ", ".join(f"{name} = hourly_stats.{name} + excluded.{name}" for name in FIGURES)
    stats = (f"INSERT INTO hourly_stats ({', '.join(KEY)}, {', '.join(FIGURES)}) "
             f"SELECT {', '.join(KEY)}, {sums} FROM (SELECT {hour(dialect)} AS hour, "
             f"b.group_name, b.trigger, b.status, {figures} FROM batches b WHERE {where}) x "
             f"WHERE true GROUP BY {', '.join(KEY)} "
             f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {added}")
    parked = (f"INSERT INTO hourly_parked (hour, group_name, queue, units, items) "
              f"SELECT {hour(dialect)}, b.group_name, u.queue, sum(u.quantity), count(*) "
              f"FROM unfillable u JOIN batches b ON b.id = u.batch_id "
              f"WHERE {where} AND u.action = 'moved' "
              f"GROUP BY {hour(dialect)}, b.group_name, u.queue "
              f"ON CONFLICT (hour, group_name, queue) DO UPDATE SET "
              f"units = hourly_parked.units + excluded.units, "
              f"items = hourly_parked.items + excluded.items")
    return [stats, parked]


def create_trigger(dialect: str) -> None:
    body = ";\n".join(rollup(dialect, "b.id = NEW.id")) + ";"
    when = "OLD.status = 'running' AND NEW.status <> 'running'"
    if dialect == "postgresql":
        op.execute(f"CREATE FUNCTION batches_rollup() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                   f"BEGIN\n{body}\nRETURN NULL;\nEND $$")
        op.execute(f"CREATE TRIGGER batches_rollup AFTER UPDATE OF status ON batches "
                   f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION batches_rollup()")
        return
    op.execute(f"CREATE TRIGGER batches_rollup AFTER UPDATE OF status ON batches "
               f"FOR EACH ROW WHEN {when}\nBEGIN\n{body}\nEND")


def drop_trigger(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS batches_rollup ON batches")
        op.execute("DROP FUNCTION IF EXISTS batches_rollup()")
    else:
        op.execute("DROP TRIGGER IF EXISTS batches_rollup")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_table(
        "hourly_stats",
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *[sa.Column(name, sa.Float if name in ("units_routed", "distance_km", "shipping_cost",
                                                "costed_units", "unfilled_units")
                    else sa.Integer, nullable=False) for name in FIGURES],
        sa.PrimaryKeyConstraint(*KEY, name="pk_hourly_stats"),
    )
    op.create_index("ix_hourly_stats_group", "hourly_stats", ["group_name", "hour"])
    op.create_table(
        "hourly_parked",
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("units", sa.Float, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("hour", "group_name", "queue", name="pk_hourly_parked"),
    )
    op.create_index("ix_hourly_parked_group", "hourly_parked", ["group_name", "hour"])
    for statement in rollup(dialect, "b.status <> 'running'"):  # the batches there already
        op.execute(statement)
    create_trigger(dialect)


def downgrade() -> None:
    drop_trigger(op.get_bind().dialect.name)
    op.drop_index("ix_hourly_parked_group", table_name="hourly_parked")
    op.drop_table("hourly_parked")
    op.drop_index("ix_hourly_stats_group", table_name="hourly_stats")
    op.drop_table("hourly_stats")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
