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
down_revision = "0005"
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

# Each figure of a batch `b`, from its rows aggregated in two passes over its allocations
# (`a`: sums, `g`: ship groups and splits), one over its runs (`r`) and one over its
# unfillable items (`u`).
FIGURES = {
    "batch_count": "1",
    "attempted_items": "b.attempted_items",
    "brokered_items": "b.brokered_items",
    "allocations": "coalesce(a.allocations, 0)",
    "units_routed": "coalesce(a.units, 0)",
    "ship_groups": "coalesce(g.ship_groups, 0)",
    "split_ship_groups": "coalesce(g.split, 0)",
    "distance_km": "coalesce(a.km, 0)",
    "distance_rows": "coalesce(a.measured, 0)",
    "distance_mi_rows": "coalesce(a.miles, 0)",
    "shipping_cost": "coalesce(a.cost, 0)",
    "costed_units": "coalesce(a.costed, 0)",
    "late_items": "coalesce(r.late, 0)",
    "unfilled_items": "coalesce(u.items, 0)",
    "unfilled_units": "coalesce(u.units, 0)",
}
KEY = ("hour", "group_name", "trigger", "status")


def hour(dialect: str) -> str:
    """Hours since 1970 (UTC) of the batch's start."""
    if dialect == "postgresql":
        return "CAST(floor(extract(epoch FROM b.started) / 3600) AS INTEGER)"
    return "CAST(strftime('%s', b.started) AS INTEGER) / 3600"


def per_batch(dialect: str, rows: str, where: str) -> str:
    """Each batch ``where`` selects, with its figures; ``rows`` picks the child rows to
    aggregate (by their `batch_id`)."""
    figures = ", ".join(f"{expression} AS {name}" for name, expression in FIGURES.items())
    return (
        f"SELECT {hour(dialect)} AS hour, b.group_name, b.trigger, b.status, {figures} "
        f"FROM batches b "
        f"LEFT JOIN (SELECT batch_id, count(*) AS allocations, sum(quantity) AS units, "
        f"sum(CASE WHEN distance IS NULL THEN 0 WHEN distance_unit = 'km' THEN distance "
        f"ELSE distance * 1.609344 END) AS km, "
        f"sum(CASE WHEN distance IS NULL THEN 0 ELSE 1 END) AS measured, "
        f"sum(CASE WHEN distance IS NOT NULL AND distance_unit = 'mi' THEN 1 ELSE 0 END) "
        f"AS miles, sum(coalesce(shipping_cost, 0)) AS cost, "
        f"sum(CASE WHEN shipping_cost IS NULL THEN 0 ELSE quantity END) AS costed "
        f"FROM allocations WHERE {rows} GROUP BY batch_id) a ON a.batch_id = b.id "
        f"LEFT JOIN (SELECT batch_id, count(*) AS ship_groups, "
        f"sum(CASE WHEN packages > 1 THEN 1 ELSE 0 END) AS split FROM ("
        f"SELECT batch_id, count(DISTINCT new_ship_group) AS packages FROM allocations "
        f"WHERE {rows} GROUP BY batch_id, order_id, ship_group) s GROUP BY batch_id) g "
        f"ON g.batch_id = b.id "
        f"LEFT JOIN (SELECT batch_id, sum(late_items) AS late FROM runs WHERE {rows} "
        f"GROUP BY batch_id) r ON r.batch_id = b.id "
        f"LEFT JOIN (SELECT batch_id, count(*) AS items, sum(quantity) AS units "
        f"FROM unfillable WHERE {rows} GROUP BY batch_id) u ON u.batch_id = b.id "
        f"WHERE {where}")


def rollup(dialect: str, rows: str, where: str) -> list[str]:
    """The statements adding the finished batches ``where`` selects to the hourly rows."""
    sums = ", ".join(f"sum({name})" for name in FIGURES)
    added = ", ".join(f"{name} = hourly_stats.{name} + excluded.{name}" for name in FIGURES)
    stats = (f"INSERT INTO hourly_stats ({', '.join(KEY)}, {', '.join(FIGURES)}) "
             f"SELECT {', '.join(KEY)}, {sums} FROM ({per_batch(dialect, rows, where)}) x "
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
    body = ";\n".join(rollup(dialect, "batch_id = NEW.id", "b.id = NEW.id")) + ";"
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
        sqlite_with_rowid=False,  # rows kept in key order: a period is one contiguous read
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
        sqlite_with_rowid=False,
    )
    op.create_index("ix_hourly_parked_group", "hourly_parked", ["group_name", "hour"])
    finished = "b.status <> 'running'"  # the batches there already
    for statement in rollup(dialect, "batch_id IN (SELECT id FROM batches "
                                     "WHERE status <> 'running')", finished):
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
