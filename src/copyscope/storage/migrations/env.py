"""Alembic environment: runs against the connection copyscope hands it."""
from alembic import context

from copyscope.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - copyscope always passes its connection
    raise RuntimeError("copyscope migrations run through copyscope.storage.migrate")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
