"""Alembic migrations of the bank store (banks, entries, signals, changes, meta) and
the service tables (api_keys, audit_log, jobs).

``upgrade(engine)`` brings a database to the newest revision. It is safe to call from
several processes at once: on PostgreSQL an advisory lock serialises them, on SQLite
the migration's write transaction does. The first revision adopts a store that
:class:`assay.banks.store.Store` created before Alembic existed (it creates only the
tables that are missing), so no existing bank is touched.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

HERE = Path(__file__).resolve().parent
_LOCK_KEY = 0x6173736179  # "assay": one advisory lock id for schema changes


def config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None
    return head


def current(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (default: the newest)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        command.upgrade(config(conn), revision)
