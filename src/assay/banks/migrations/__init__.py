"""Alembic migrations of the bank store (banks, entries, signals, changes, meta,
model_fingerprints) and the service tables (api_keys, audit_log, jobs).

They are the only path to the schema: :class:`assay.banks.store.Store` brings every
store it opens to :data:`HEAD` (see ``Store._ensure_schema``), and ``upgrade(engine)``
does the same for a bare engine. Both are safe to run from several processes at once:
on PostgreSQL an advisory lock serialises them, on SQLite an immediate write
transaction does. Revisions 0001 and 0003 adopt tables that assay created before
Alembic existed (they create only the tables that are missing), so no bank is touched.
Revision 0004 seeds the pruning watermark in ``meta`` and adds two indexes the
followers of the store need (``changes.at``, disabled entries). Revision 0005 gives banks
a ``kind`` (``flagged`` or ``known-good``). Revision 0006 adds ``reviews``, the examiners'
decisions on matches (assay.review). Revision 0007 adds camera fingerprints, 0008
the hash exchanges feeding banks (assay.exchanges); 0009 seeds the `pdq_variant_kinds` meta
key, so that no reader has to scan every entry's meta for it.

Alembic itself is imported only when a migration runs: opening a store that is
already at :data:`HEAD` reads one row and never loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # SQLAlchemy loads with the store: the SQLite reader reads HEAD without it
    import sqlalchemy as sa
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
LOCK_KEY: Final = 0x6173736179  # "assay": one advisory lock id for schema changes

# Every revision this code knows, oldest first (a test checks them against the
# scripts). Kept here so that the open path can tell "at head", "older" and "from a
# newer assay" apart without loading Alembic.
REVISIONS: Final = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")
HEAD: Final = REVISIONS[-1]
VERSION_TABLE: Final = "alembic_version"


def config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision, as Alembic reads it from the scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None
    return head


def script_revisions() -> list[str]:
    """Every revision among the scripts, oldest first."""
    from alembic.script import ScriptDirectory

    return [s.revision for s in reversed(list(ScriptDirectory.from_config(config()).walk_revisions()))]


def current(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        revs = revisions(conn)
    return revs[0] if revs else None


def revisions(conn: sa.Connection) -> list[str] | None:
    """The revisions stamped in the database, or None where it has no version table."""
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return stamped(conn)


def stamped(conn: sa.Connection) -> list[str]:
    """The revisions in the version table (which must exist), sorted."""
    return sorted(str(r) for r in conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars())


def lock(conn: sa.Connection) -> None:
    """Serialise schema changes between processes (PostgreSQL; SQLite's write lock does it there).
    Held until the transaction of ``conn`` ends."""
    if conn.dialect.name == "postgresql":
        import sqlalchemy as sa

        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})


def upgrade_in(conn: sa.Connection, revision: str = "head") -> None:
    """Run the migrations on ``conn``, inside the transaction the caller holds (and commits)."""
    from alembic import command

    command.upgrade(config(conn), revision)


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (default: the newest)."""
    with engine.begin() as conn:
        lock(conn)
        upgrade_in(conn, revision)
