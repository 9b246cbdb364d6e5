"""The run store's tables (one MetaData; Alembic migrations create and upgrade them)."""

from __future__ import annotations

import sqlalchemy as sa

# Named constraints, so SQLite batch migrations can drop them later.
metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

Time = sa.DateTime(timezone=True)

plans = sa.Table(
    "plans", metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("source_name", sa.Text, nullable=False),
    sa.Column("source_text", sa.Text),
    sa.Column("plan_json", sa.Text, nullable=False),
    sa.Column("created", Time, nullable=False),
)

batches = sa.Table(
    "batches", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("group_name", sa.Text, nullable=False),
    sa.Column("product_store", sa.Text, nullable=False),
    sa.Column("plan_hash", sa.String(64), sa.ForeignKey("plans.hash"), nullable=False),
    sa.Column("snapshot_hash", sa.String(64), nullable=False),
    sa.Column("started", Time, nullable=False),
    sa.Column("finished", Time),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempted_items", sa.Integer, nullable=False, default=0),
    sa.Column("brokered_items", sa.Integer, nullable=False, default=0),
    sa.Column("allocations", sa.Integer, nullable=False, default=0),
    sa.Column("unfillable", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    # the rules' version label, beside the plan's hash (migration 0008)
    sa.Column("version_label", sa.Text),
    sa.CheckConstraint("status in ('running', 'succeeded', 'failed', 'skipped')",
                       name="status"),
    sa.CheckConstraint("trigger in ('manual', 'scheduled', 'api')", name="trigger"),
    sa.Index("ix_batches_started", "started"),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("routing", sa.Text, nullable=False),
    sa.Column("attempted_items", sa.Integer, nullable=False),
    sa.Column("brokered_items", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("shipping_cost", sa.Float, nullable=False, server_default="0"),
    sa.Column("packages", sa.Integer, nullable=False, server_default="0"),
    sa.Column("split_orders", sa.Integer, nullable=False, server_default="0"),
    sa.Column("late_items", sa.Integer, nullable=False, server_default="0"),
)

allocations = sa.Table(
    "allocations", metadata,
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
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
    sa.Column("shipping_cost", sa.Float),
    sa.Column("transit_days", sa.Integer),
    sa.Column("delivery_date", sa.Text),
)

unfillable = sa.Table(
    "unfillable", metadata,
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
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
)

# One row per moved item, as HotWax's OrderFacilityChange: from where to where, and why.
history = sa.Table(
    "history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              nullable=False),
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
    sa.Index("ix_history_order", "order_id"),
    sa.Index("ix_history_at", "at"),
)

# SQLite's stand-in for PostgreSQL advisory locks: who runs a product store, until when.
# Times are ISO 8601 UTC text, so they compare as strings in SQL.
leases = sa.Table(
    "leases", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("expires", sa.Text, nullable=False),
)

# Decisions for the OMS, written in the batch's own transaction; the OMS reads the rows it has
# not acknowledged, applies them (idempotently, keyed by id), and sets `acked`. `dedupe` names
# the decision and the state of the unit it was taken on: one pending row per decision.
outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created", Time, nullable=False),
    sa.Column("acked", Time),
    sa.Column("dedupe", sa.String(64)),
    sa.Index("ix_outbox_pending", "acked", "id"),
    sa.Index("uq_outbox_dedupe_pending", "dedupe", unique=True,
             postgresql_where=sa.text("acked IS NULL"), sqlite_where=sa.text("acked IS NULL")),
)

# The reservation ledger: what each committed decision or batch took or changed (one row per
# outbox row, written in the same transaction), applied to the source's data until the source
# reflects it (see ops/ledger.py). Rows of a product store are only written under its lock, so
# its ids grow in commit order: a reader holding the lock (or tolerating lag) reads only the
# rows of a store above the last id it applied.
reservations = sa.Table(
    "reservations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("product_store", sa.Text, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("ship_group", sa.Text, nullable=False),
    sa.Column("item", sa.Text, nullable=False),
    sa.Column("product", sa.Text, nullable=False),
    sa.Column("facility", sa.Text),            # allocation: where from; move: the queue
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("opens", sa.Boolean, nullable=False),  # a new shipment at the facility
    sa.Column("day", sa.String(10), nullable=False),  # the decision's local date
    sa.Column("auto_cancel_date", sa.Text),
    sa.Column("created", Time, nullable=False),
    # the decision was voided (the OMS refused it): the line no longer applies
    sa.Column("released", Time),
    sa.Index("ix_reservations_store", "product_store", "id"),
    sa.Index("ix_reservations_order", "order_id"),
    sa.Index("ix_reservations_outbox", "outbox_id"),
)

# The last ledger id written per product store (updated with the rows, under the store's
# lock): where a reader that loaded the ledger continues from.
ledger_heads = sa.Table(
    "ledger_heads", metadata,
    sa.Column("product_store", sa.Text, primary_key=True),
    sa.Column("last_id", sa.Integer, nullable=False),
)

# Idempotency keys of committed decisions: the request's digest and the answer given, written
# in the decision's transaction. Global: one key, one decision, whatever the store.
decision_keys = sa.Table(
    "decision_keys", metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("request", sa.String(64), nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("created", Time, nullable=False),
    sa.Index("ix_decision_keys_created", "created"),
)

# ---- the console's reads (migration 0006) ----
# Indexes for the console's and the CLI's paged queries (tests/test_console_queries.py checks
# with EXPLAIN that every page query uses one).
sa.Index("ix_batches_status_started", batches.c.status, batches.c.started)
sa.Index("ix_batches_group_started", batches.c.group_name, batches.c.started)
sa.Index("ix_batches_group_trigger_started", batches.c.group_name, batches.c.trigger,
         batches.c.started)
sa.Index("ix_batches_finished", batches.c.finished)
sa.Index("ix_allocations_order", allocations.c.order_id)
sa.Index("ix_allocations_product_order", allocations.c.product, allocations.c.order_id)
sa.Index("ix_unfillable_order", unfillable.c.order_id)
sa.Index("ix_unfillable_product_order", unfillable.c.product, unfillable.c.order_id)
sa.Index("ix_history_ship_group_order", history.c.ship_group, history.c.order_id)
sa.Index("ix_history_to_order", history.c.to_facility, history.c.order_id)

# Hourly rollups of finished batches, kept by a trigger on `batches` (fired once per batch,
# when it leaves `running`: its allocations, unfillable items and runs are written by then),
# so the dashboard reads a few hundred rows for a month however many batches ran. They outlive
# `routing purge`: trends stay when the detail goes. `hour` counts hours since 1970 (UTC).
hourly_stats = sa.Table(
    "hourly_stats", metadata,
    sa.Column("hour", sa.Integer, primary_key=True),
    sa.Column("group_name", sa.Text, primary_key=True),
    sa.Column("trigger", sa.String(16), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("batch_count", sa.Integer, nullable=False),
    sa.Column("attempted_items", sa.Integer, nullable=False),
    sa.Column("brokered_items", sa.Integer, nullable=False),
    sa.Column("allocations", sa.Integer, nullable=False),
    sa.Column("units_routed", sa.Float, nullable=False),
    sa.Column("ship_groups", sa.Integer, nullable=False),
    sa.Column("split_ship_groups", sa.Integer, nullable=False),
    sa.Column("distance_km", sa.Float, nullable=False),
    sa.Column("distance_rows", sa.Integer, nullable=False),
    sa.Column("distance_mi_rows", sa.Integer, nullable=False),
    sa.Column("shipping_cost", sa.Float, nullable=False),
    sa.Column("costed_units", sa.Float, nullable=False),
    sa.Column("late_items", sa.Integer, nullable=False),
    sa.Column("unfilled_items", sa.Integer, nullable=False),
    sa.Column("unfilled_units", sa.Float, nullable=False),
    sa.Index("ix_hourly_stats_group", "group_name", "hour"),
    sqlite_with_rowid=False,
)

# Units moved to each queue (parked), per hour and group.
hourly_parked = sa.Table(
    "hourly_parked", metadata,
    sa.Column("hour", sa.Integer, primary_key=True),
    sa.Column("group_name", sa.Text, primary_key=True),
    sa.Column("queue", sa.Text, primary_key=True),
    sa.Column("units", sa.Float, nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Index("ix_hourly_parked_group", "group_name", "hour"),
    sqlite_with_rowid=False,
)

# ---- the OMS write-back and the alerts (migration 0007) ----
# What the write-back did with each batch it was given (ops/writeback.py).
sink_batches = sa.Table(
    "sink_batches", metadata,
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("sink", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("orders_applied", sa.Integer, nullable=False),
    sa.Column("conflicts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("at", Time, nullable=False),
    sa.CheckConstraint("status in ('applied', 'failed')", name="status"),
)

# A decision the write-back refused: its order changed in the OMS since the snapshot was read
# (its version differs), so the next round decides it again.
sink_conflicts = sa.Table(
    "sink_conflicts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("expected_version", sa.Integer),
    sa.Column("found_version", sa.Integer),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Index("ix_sink_conflicts_batch", "batch_id"),
    sa.Index("ix_sink_conflicts_order", "order_id"),
)

# Which alert rule fires for which group (empty: for all), shared by every process using the
# store, so a change of state is announced once (ops/alerts.py).
alert_state = sa.Table(
    "alert_state", metadata,
    sa.Column("rule", sa.Text, primary_key=True),
    sa.Column("group_name", sa.Text, primary_key=True),
    sa.Column("firing", sa.Boolean, nullable=False),
    sa.Column("since", Time),
    sa.Column("value", sa.Float),
    sa.Column("message", sa.Text),
    sa.Column("batch_id", sa.String(36)),
    sa.Column("updated", Time, nullable=False),
)

# ---- rolling out a rule change (migration 0008, routing_dsl/rollout) ----
# One shadow run or canary of a candidate version beside production, and where it stands:
# `active` until a guard trips it, `routing rollout abort` ends it or `promote` makes the
# candidate production. Every process sharing the store follows this row.
ROLLOUT_MODES = ("shadow", "canary")
ROLLOUT_STATUSES = ("active", "tripped", "aborted", "promoted")
rollouts = sa.Table(
    "rollouts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("candidate_key", sa.String(64), nullable=False),  # digest of its plans' hashes
    sa.Column("candidate_label", sa.Text, nullable=False),
    sa.Column("candidate_plans", sa.Text, nullable=False),     # JSON: hash, label, source
    sa.Column("production_label", sa.Text, nullable=False),
    sa.Column("production_plans", sa.Text, nullable=False),
    sa.Column("share", sa.Float),                               # canary: percent of orders
    sa.Column("guards", sa.Text),                               # canary: JSON of its guards
    sa.Column("started", Time, nullable=False),
    sa.Column("updated", Time, nullable=False),
    sa.Column("ended", Time),
    sa.Column("reason", sa.Text),
    sa.CheckConstraint("mode in ('shadow', 'canary')", name="mode"),
    sa.CheckConstraint("status in ('active', 'tripped', 'aborted', 'promoted')",
                       name="status"),
    sa.Index("ix_rollouts_status", "status", "mode"),
    sa.Index("ix_rollouts_candidate", "candidate_key", "mode"),
    # one canary at a time per store: the one every process follows
    sa.Index("uq_rollouts_active_canary", "mode", unique=True,
             postgresql_where=sa.text("status = 'active' AND mode = 'canary'"),
             sqlite_where=sa.text("status = 'active' AND mode = 'canary'")),
)

# Each version's figures per batch during a rollout. Shadow: two rows per production batch
# (`production`, and `candidate`: what the candidate decided on the same state, applied
# nowhere, with the units whose decisions differ). Canary: one row per batch, of the version
# that made it.
rollout_kpis = sa.Table(
    "rollout_kpis", metadata,
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("role", sa.String(12), primary_key=True),
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id", ondelete="CASCADE"),
              nullable=False),
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
    sa.Column("differences", sa.Text),                          # JSON, the first ones
    sa.Column("error", sa.Text),
    sa.CheckConstraint("role in ('production', 'candidate')", name="role"),
    sa.Index("ix_rollout_kpis_rollout", "rollout_id", "role", "started"),
    sa.Index("ix_rollout_kpis_started", "mode", "started"),
)

# ---- rejections (migration 0009) ----
# A facility's refusal of a committed line (POST /v1/rejections, `routing reject`): the line's
# reservations are released (`reservations.released`) and every snapshot routed afterwards
# carries the rejection on the item (ops/rejections.py), so rules can keep away from the
# rejecter. `key` is the request's idempotency key (also in decision_keys, with the answer).
rejections = sa.Table(
    "rejections", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("product_store", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("ship_group", sa.Text, nullable=False),
    sa.Column("item", sa.Text, nullable=False),
    sa.Column("product", sa.Text, nullable=False),
    sa.Column("facility", sa.Text, nullable=False),
    sa.Column("quantity", sa.Float, nullable=False),  # units whose reservation was released
    sa.Column("reason", sa.Text),
    sa.Column("at", Time, nullable=False),
    sa.Column("created", Time, nullable=False),
    sa.Index("uq_rejections_key", "key", unique=True),
    sa.Index("ix_rejections_order", "order_id"),
    sa.Index("ix_rejections_store", "product_store", "id"),
)

# ---- batch optimisation (migration 0010) ----
# Each optimised routing run of a batch: the result's `optimization` entry (docs/snapshot.md),
# its headline as columns and each side's figures and the rules that cost most as JSON.
optimizations = sa.Table(
    "optimizations", metadata,
    sa.Column("batch_id", sa.String(36), sa.ForeignKey("batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("routing", sa.Text, nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("windows", sa.Integer, nullable=False),
    sa.Column("rules_cost", sa.Float, nullable=False),
    sa.Column("optimized_cost", sa.Float, nullable=False),
    sa.Column("saving", sa.Float, nullable=False),
    sa.Column("lower_bound", sa.Float),
    sa.Column("gap", sa.Float),
    sa.Column("rules", sa.Text, nullable=False),       # JSON: the rules' figures
    sa.Column("optimized", sa.Text, nullable=False),   # JSON: the optimum's
    sa.Column("rule_costs", sa.Text, nullable=False),  # JSON: rule, units, extra_cost
)
