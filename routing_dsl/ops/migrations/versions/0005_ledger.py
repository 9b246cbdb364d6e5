"""The reservation ledger, its per-store heads, durable idempotency keys, and one pending
outbox row per decision.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
PENDING = sa.text("acked IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.add_column(sa.Column("dedupe", sa.String(64)))
    op.create_index("uq_outbox_dedupe_pending", "outbox", ["dedupe"], unique=True,
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("outbox_id", sa.Integer, nullable=False),
        sa.Column("product_store", sa.Text, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("ship_group", sa.Text, nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("facility", sa.Text),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("opens", sa.Boolean, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("auto_cancel_date", sa.Text),
        sa.Column("created", Time, nullable=False),
        sa.Column("released", Time),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_reservations_batch_id_batches"),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], ondelete="CASCADE",
                                name="fk_reservations_outbox_id_outbox"),
    )
    op.create_index("ix_reservations_store", "reservations", ["product_store", "id"])
    op.create_index("ix_reservations_order", "reservations", ["order_id"])
    op.create_index("ix_reservations_outbox", "reservations", ["outbox_id"])
    op.create_table(
        "ledger_heads",
        sa.Column("product_store", sa.Text, nullable=False),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("product_store", name="pk_ledger_heads"),
    )
    op.create_table(
        "decision_keys",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("request", sa.String(64), nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("created", Time, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_decision_keys"),
    )
    op.create_index("ix_decision_keys_created", "decision_keys", ["created"])


def downgrade() -> None:
    op.drop_index("ix_decision_keys_created", table_name="decision_keys")
    op.drop_table("decision_keys")
    op.drop_table("ledger_heads")
    for name in ("ix_reservations_outbox", "ix_reservations_order", "ix_reservations_store"):
        op.drop_index(name, table_name="reservations")
    op.drop_table("reservations")
    op.drop_index("uq_outbox_dedupe_pending", table_name="outbox")
    with op.batch_alter_table("outbox") as table:
        table.drop_column("dedupe")
