"""Operations: what lets routing run unattended against a database.

``store`` keeps the run store (plans, batches, runs, allocations, unfillable items, the
history of moved items, the outbox, the reservation ledger and the idempotency keys of
committed decisions) in SQLite or PostgreSQL through SQLAlchemy, with its schema owned by the
Alembic migrations in ``migrations/``; ``ledger`` says what the ledger's lines do to the
source's data and when the source reflects them; ``locks`` gives one writer at a time per
partition (stores sharing facilities), across processes; ``runner`` records a run;
``scheduler`` runs groups on their cron slots; ``oms`` reads snapshots from SQL (and holds
the reference OMS schema); ``sinks`` pushes decisions out. The core never imports this
package; it calls the core (compile, run) and records what happened.
"""
