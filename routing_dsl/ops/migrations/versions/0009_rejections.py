"""Rejections of committed lines (POST /v1/rejections, `routing reject`): which facility
refused which order line, when and why, and how many units' reservations that released.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("product_store", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("ship_group", sa.Text, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("facility", sa.Text, nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", Time, nullable=False),
        sa.Column("created", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejections"),
    )
    op.create_index("uq_rejections_key", "rejections", ["key"], unique=True)
    op.create_index("ix_rejections_order", "rejections", ["order_id"])
    op.create_index("ix_rejections_store", "rejections", ["product_store", "id"])


def downgrade() -> None:
    op.drop_table("rejections")
