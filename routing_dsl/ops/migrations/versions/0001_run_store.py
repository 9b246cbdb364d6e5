"""The run store: plans, batches, runs, allocations, unfillable items, history.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("source_text", sa.Text),
        sa.Column("plan_json", sa.Text, nullable=False),
        sa.Column("created", Time, nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_plans"),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("product_store", sa.Text, nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("snapshot_hash", sa.String(64), nullable=False),
        sa.Column("started", Time, nullable=False),
        sa.Column("finished", Time),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempted_items", sa.Integer, nullable=False),
        sa.Column("brokered_items", sa.Integer, nullable=False),
        sa.Column("allocations", sa.Integer, nullable=False),
        sa.Column("unfillable", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        sa.ForeignKeyConstraint(["plan_hash"], ["plans.hash"],
                                name="fk_batches_plan_hash_plans"),
        sa.CheckConstraint("status in ('running', 'succeeded', 'failed', 'skipped')",
                           name="ck_batches_status"),
        sa.CheckConstraint("trigger in ('manual', 'scheduled', 'api')",
                           name="ck_batches_trigger"),
    )
    op.create_index("ix_batches_started", "batches", ["started"])
    op.create_table(
        "runs",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("routing", sa.Text, nullable=False),
        sa.Column("attempted_items", sa.Integer, nullable=False),
        sa.Column("brokered_items", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("batch_id", "position", name="pk_runs"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_runs_batch_id_batches"),
    )
    op.create_table(
        "allocations",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("ship_group", sa.Text, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("facility", sa.Text, nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("new_ship_group", sa.Text, nullable=False),
        sa.Column("routing", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("distance", sa.Float),
        sa.Column("distance_unit", sa.String(2), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "position", name="pk_allocations"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_allocations_batch_id_batches"),
    )
    op.create_table(
        "unfillable",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("ship_group", sa.Text, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("routing", sa.Text, nullable=False),
        sa.Column("rule", sa.Text),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("auto_cancel_date", sa.Text),
        sa.PrimaryKeyConstraint("batch_id", "position", name="pk_unfillable"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_unfillable_batch_id_batches"),
    )
    op.create_table(
        "history",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("ship_group", sa.Text, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("from_facility", sa.Text, nullable=False),
        sa.Column("to_facility", sa.Text, nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("routing", sa.Text, nullable=False),
        sa.Column("rule", sa.Text),
        sa.Column("reason", sa.String(24), nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_history"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_history_batch_id_batches"),
    )
    op.create_index("ix_history_order", "history", ["order_id"])
    op.create_index("ix_history_at", "history", ["at"])


def downgrade() -> None:
    for index, table in (("ix_history_at", "history"), ("ix_history_order", "history"),
                         ("ix_batches_started", "batches")):
        op.drop_index(index, table_name=table)
    for table in ("history", "unfillable", "allocations", "runs", "batches", "plans"):
        op.drop_table(table)
