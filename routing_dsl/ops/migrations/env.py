"""Alembic environment: migrations run on the connection the store passes in, or on an
engine built from the configured URL (one migration set for SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from routing_dsl.ops.schema import metadata

config = context.config


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"), poolclass=sa.NullPool)
    with engine.connect() as fresh:
        run(fresh)
