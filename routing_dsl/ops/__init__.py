"""Operations: what lets routing run unattended against a database.

``store`` keeps the run store (plans, batches, runs, allocations, unfillable items and the
history of moved items) in SQLite or PostgreSQL through SQLAlchemy, with its schema owned by
the Alembic migrations in ``migrations/``. The core never imports this package; it calls the
core (compile, run) and records what happened.
"""
