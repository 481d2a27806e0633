"""Alembic environment: migrations run on the connection handed in by ``Database.upgrade``."""

from __future__ import annotations

from alembic import context

from operadora.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through operadora.store.db.Database.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
