"""Rolling out a rule change: each batch's version label, the rollouts (shadow runs and
canaries) and each version's figures per batch during one.

`batches` gains its column with a plain ALTER TABLE ADD COLUMN (no batch rebuild on SQLite),
so the rollup trigger of migration 0006 stays.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
ACTIVE_CANARY = sa.text("status = 'active' AND mode = 'canary'")


def upgrade() -> None:
    op.add_column("batches", sa.Column("version_label", sa.Text))
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("candidate_key", sa.String(64), nullable=False),
        sa.Column("candidate_label", sa.Text, nullable=False),
        sa.Column("candidate_plans", sa.Text, nullable=False),
        sa.Column("production_label", sa.Text, nullable=False),
        sa.Column("production_plans", sa.Text, nullable=False),
        sa.Column("share", sa.Float),
        sa.Column("guards", sa.Text),
        sa.Column("started", Time, nullable=False),
        sa.Column("updated", Time, nullable=False),
        sa.Column("ended", Time),
        sa.Column("reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.CheckConstraint("mode in ('shadow', 'canary')", name="ck_rollouts_mode"),
        sa.CheckConstraint("status in ('active', 'tripped', 'aborted', 'promoted')",
                           name="ck_rollouts_status"),
    )
    op.create_index("ix_rollouts_status", "rollouts", ["status", "mode"])
    op.create_index("ix_rollouts_candidate", "rollouts", ["candidate_key", "mode"])
    op.create_index("uq_rollouts_active_canary", "rollouts", ["mode"], unique=True,
                    postgresql_where=ACTIVE_CANARY, sqlite_where=ACTIVE_CANARY)
    op.create_table(
        "rollout_kpis",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("rollout_id", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("group_name", sa.Text, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started", Time, nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("version_label", sa.Text),
        sa.Column("units_routed", sa.Float, nullable=False),
        sa.Column("allocations", sa.Integer, nullable=False),
        sa.Column("packages", sa.Integer, nullable=False),
        sa.Column("split_orders", sa.Integer, nullable=False),
        sa.Column("shipping_cost", sa.Float, nullable=False),
        sa.Column("costed_units", sa.Float, nullable=False),
        sa.Column("distance_km", sa.Float, nullable=False),
        sa.Column("distance_rows", sa.Integer, nullable=False),
        sa.Column("distance_mi_rows", sa.Integer, nullable=False),
        sa.Column("late_units", sa.Float, nullable=False),
        sa.Column("unfilled_units", sa.Float, nullable=False),
        sa.Column("parked_units", sa.Float, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("differing_units", sa.Integer, nullable=False),
        sa.Column("differences", sa.Text),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("batch_id", "role", name="pk_rollout_kpis"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE",
                                name="fk_rollout_kpis_batch_id_batches"),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], ondelete="CASCADE",
                                name="fk_rollout_kpis_rollout_id_rollouts"),
        sa.CheckConstraint("role in ('production', 'candidate')", name="ck_rollout_kpis_role"),
    )
    op.create_index("ix_rollout_kpis_rollout", "rollout_kpis",
                    ["rollout_id", "role", "started"])
    op.create_index("ix_rollout_kpis_started", "rollout_kpis", ["mode", "started"])


def downgrade() -> None:
    op.drop_index("ix_rollout_kpis_started", table_name="rollout_kpis")
    op.drop_index("ix_rollout_kpis_rollout", table_name="rollout_kpis")
    op.drop_table("rollout_kpis")
    op.drop_index("uq_rollouts_active_canary", table_name="rollouts")
    op.drop_index("ix_rollouts_candidate", table_name="rollouts")
    op.drop_index("ix_rollouts_status", table_name="rollouts")
    op.drop_table("rollouts")
    with op.batch_alter_table("batches", recreate="never") as table:
        table.drop_column("version_label")
