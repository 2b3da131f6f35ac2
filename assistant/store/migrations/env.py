"""Alembic environment: migrations run programmatically by ``assistant.store.Store.migrate`` on a connection
it passes in ``config.attributes["connection"]`` (same code for SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import context

from assistant.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through the service (they run at start-up) or assistant.store.Store(url).migrate()"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
