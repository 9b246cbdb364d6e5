"""Batch optimisation (issue 24): per batch, each optimised routing run's `optimization`
entry - what the rules cost against the optimum, the solver's lower bound and gap, both sides'
splits, late and unfilled units, and the rules that cost most.

A new table, so nothing of `batches` (and the rollup trigger of migration 0006) changes.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "optimizations",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("routing", sa.Text, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("windows", sa.Integer, nullable=False),
        sa.Column("rules_cost", sa.Float, nullable=False),
        sa.Column("optimized_cost", sa.Float, nullable=False),
        sa.Column("saving", sa.Float, nullable=False),
        sa.Column("lower_bound", sa.Float),
        sa.Column("gap", sa.Float),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("optimized", sa.Text, nullable=False),
        sa.Column("rule_costs", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_optimizations_batch_id_batches"),
        sa.PrimaryKeyConstraint("batch_id", "position", name="pk_optimizations"),
    )


def downgrade() -> None:
    op.drop_table("optimizations")
