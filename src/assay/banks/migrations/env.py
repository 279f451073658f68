"""Alembic environment: always run on a connection handed over by
:func:`assay.banks.migrations.upgrade` (no alembic.ini, no URL in a file)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run assay migrations through assay.banks.migrations.upgrade(engine)")

context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
