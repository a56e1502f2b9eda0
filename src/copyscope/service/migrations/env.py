"""Alembic environment for the service tables (version table ``svc_alembic_version``)."""
from alembic import context

from copyscope.service.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - copyscope always passes its connection
    raise RuntimeError("service migrations run through copyscope.service.store.migrate")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  version_table="svc_alembic_version")
with context.begin_transaction():
    context.run_migrations()
