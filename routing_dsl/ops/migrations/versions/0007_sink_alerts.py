"""The OMS write-back's record (what each batch wrote back, the conflicts it refused) and the
alert rules' state (which rule fires for which group, since when).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sink_batches",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("sink", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("orders_applied", sa.Integer, nullable=False),
        sa.Column("conflicts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("at", Time, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name="pk_sink_batches"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_sink_batches_batch_id_batches"),
        sa.CheckConstraint("status in ('applied', 'failed')", name="ck_sink_batches_status"),
    )
    op.create_table(
        "sink_conflicts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("expected_version", sa.Integer),
        sa.Column("found_version", sa.Integer),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sink_conflicts"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_sink_conflicts_batch_id_batches"),
    )
    op.create_index("ix_sink_conflicts_batch", "sink_conflicts", ["batch_id"])
    op.create_index("ix_sink_conflicts_order", "sink_conflicts", ["order_id"])
    op.create_table(
        "alert_state",
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("firing", sa.Boolean, nullable=False),
        sa.Column("since", Time),
        sa.Column("value", sa.Float),
        sa.Column("message", sa.Text),
        sa.Column("batch_id", sa.String(36)),
        sa.Column("updated", Time, nullable=False),
        sa.PrimaryKeyConstraint("rule", "group_name", name="pk_alert_state"),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
    op.drop_index("ix_sink_conflicts_order", table_name="sink_conflicts")
    op.drop_index("ix_sink_conflicts_batch", table_name="sink_conflicts")
    op.drop_table("sink_conflicts")
    op.drop_table("sink_batches")
