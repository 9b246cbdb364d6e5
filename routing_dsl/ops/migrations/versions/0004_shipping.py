"""Shipping: each run's cost, packages, split orders and late items; each allocation's share
of its package's cost, its transit days and delivery date.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("shipping_cost", sa.Float, nullable=False,
                                   server_default="0"))
        for name in ("packages", "split_orders", "late_items"):
            table.add_column(sa.Column(name, sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("allocations") as table:
        table.add_column(sa.Column("shipping_cost", sa.Float))
        table.add_column(sa.Column("transit_days", sa.Integer))
        table.add_column(sa.Column("delivery_date", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("allocations") as table:
        for name in ("delivery_date", "transit_days", "shipping_cost"):
            table.drop_column(name)
    with op.batch_alter_table("runs") as table:
        for name in ("late_items", "split_orders", "packages", "shipping_cost"):
            table.drop_column(name)
