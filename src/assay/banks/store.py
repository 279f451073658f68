"""The bank store: hash banks in SQLite (default) or PostgreSQL, through SQLAlchemy.

Four tables hold the data (``banks``, ``entries``, ``signals``, ``changes``) and a
fifth (``meta``) the schema version. Values are stored as canonical lower-case hex
text, validated by their signal type from :mod:`assay.signals`; nothing here knows
which signal types exist.

Matching never queries this store row by row: an in-memory index is built from
:meth:`Store.load_signals` (the hot path, raw DBAPI cursors and vectorised hex
decoding) and then follows the store through :meth:`Store.changes_since`. New
signals are found by ``signals.id > last_id`` (ids are never reused); removals,
entry enable/disable and bank enable/disable/delete are written to ``changes``.
On PostgreSQL every such write also sends a NOTIFY on commit, so followers can wait
for writes (:meth:`Store.listen_changes`) instead of only polling. ``changes`` is
pruned by age (:meth:`Store.prune_changes`); an index whose cursor is older than
what was pruned gets :class:`assay.errors.ChangesPruned` and must load again.

Every database failure surfaces as :class:`assay.errors.StoreError` naming the URL
(password masked) and the reason. The store never deletes, recreates or
overwrites a database file it cannot use.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from .. import signals as signal_types
from ..config import default_db_url, normalize_db_url, sqlite_file_uri
from ..errors import (
    AssayError,
    BankExists,
    BankImportError,
    BankNotFound,
    ChangesPruned,
    InvalidBankInput,
    InvalidSignal,
    StoreError,
    StoreMissing,
)
from . import migrations
from .refs import (
    FULL_FILE_HASHES,
    SHORT_FILE_HASHES,
    VARIANTS_IN_META,
    SignalRef,
    variant_kind,
    variant_kinds,
    with_file_hashes,
)
from .refs import VARIANT_KINDS_KEY as _VARIANT_KINDS_KEY
from .refs import ref_extras as _ref_extras

SCHEMA_VERSION: Final = 1

MAX_CONTENT_ID = 512
MAX_NOTE = 4096
MAX_META_JSON = 64 * 1024
MAX_PROBLEMS = 20
# First a letter or digit: no ".", "..", hidden-file or option-like ("-x") names.
_BANK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CANONICAL = re.compile(r"[0-9a-f]+")
_BATCH = 50_000  # rows per executemany / fetchmany: big enough to amortise round trips
_PG_WRITE_LOCK = 0x61737361  # "assa": first key of the bank writers' advisory lock
_LOAD_CHUNK = 200_000  # signal ids per aggregated read in load_signals
_PAGE = 2000  # entries per page when iterating a bank
_IN_CHUNK = 500  # ids per "IN (...)" list, well below every driver's parameter limit
# PostgreSQL NOTIFY channel of committed bank writes; the payload is the store's schema,
# so that stores in other schemas of the same database are told apart.
CHANGES_CHANNEL: Final = "assay_changes"
_PRUNED_KEY = "changes_pruned_seq"  # meta key: every change with seq <= it was deleted

# ---------------------------------------------------------------------------------------
# Schema. These definitions are what the code reads and writes; the tables themselves
# are created and changed only by the Alembic migrations in .migrations, which
# Store() runs when it opens a store that is not at their head (_ensure_schema).
# ---------------------------------------------------------------------------------------
metadata = sa.MetaData()

# No FOREIGN KEY constraints: they cost a lookup per inserted row (a trigger per row in
# PostgreSQL), which dominates a 10M-row import. Only this module writes the tables and
# it deletes children with their parents explicitly (delete_bank, remove_entry).

# SQLite only reuses-proof-increments an INTEGER PRIMARY KEY declared AUTOINCREMENT;
# BIGINT there would not even alias the rowid.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

banks_table = sa.Table(
    "banks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("pdq_threshold", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    # Only a server default: inserts that do not name it (stores at older revisions, see
    # tests) must not send the column at all.
    sa.Column("kind", sa.String(16), nullable=False, server_default="flagged"),
    sqlite_autoincrement=True,
)

entries_table = sa.Table(
    "entries",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("bank_id", sa.Integer, nullable=False),
    sa.Column("content_id", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("added_at", sa.DateTime, nullable=False),
    sa.Column("meta", sa.JSON, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.UniqueConstraint("bank_id", "content_id", name="uq_entries_bank_content"),
    # The few disabled entries, read by every refresh that brings new signals (_load):
    # without it, a scan of every entry. The WHERE forms are how `~enabled` renders.
    sa.Index("ix_entries_disabled", "id", sqlite_where=sa.text("enabled = 0"),
             postgresql_where=sa.text("NOT enabled")),
    sqlite_autoincrement=True,
)

signals_table = sa.Table(
    "signals",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("entry_id", _ID, nullable=False),
    sa.Column("bank_id", sa.Integer, nullable=False),
    sa.Column("signal_type", sa.String(32), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.UniqueConstraint("entry_id", "signal_type", "value", name="uq_signals_entry_type_value"),
    sa.Index("ix_signals_type_value", "signal_type", "value"),
    sqlite_autoincrement=True,  # ids must never be reused: indexes follow "id > last"
)

changes_table = sa.Table(
    "changes",
    metadata,
    sa.Column("seq", _ID, primary_key=True, autoincrement=True),
    sa.Column("bank_id", sa.Integer, nullable=False),
    # NULL signal_id: the bank itself was enabled ('add'), disabled or deleted ('remove')
    sa.Column("signal_id", sa.BigInteger, nullable=True),
    sa.Column("signal_type", sa.String(32), nullable=True),
    sa.Column("op", sa.String(8), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.CheckConstraint("op IN ('add', 'remove')", name="ck_changes_op"),
    sa.Index("ix_changes_at", "at"),  # pruning by age (prune_changes)
    sqlite_autoincrement=True,
)


# ---------------------------------------------------------------------------------------
# Values handed out: small frozen dataclasses, never ORM objects or rows.
# ---------------------------------------------------------------------------------------
#: What a hit in a bank means. "flagged": the file is a finding (what every bank was
#: before kinds existed). "known-good": a hash set of known files (e.g. NSRL): an exact
#: hit marks the file known-good and keeps it out of the findings.
BANK_KINDS: Final = ("flagged", "known-good")


@dataclass(frozen=True)
class Bank:
    id: int
    name: str
    description: str
    enabled: bool
    pdq_threshold: int | None
    created_at: datetime
    updated_at: datetime
    kind: str = "flagged"


@dataclass(frozen=True)
class Entry:
    bank: str
    content_id: str
    note: str | None
    source: str | None
    added_at: datetime
    meta: dict[str, Any] | None
    enabled: bool
    signals: dict[str, tuple[str, ...]]  # signal type -> canonical values
    id: int = 0  # the store's integer id of the entry (HMA's bank_content_id)


class ImportRecord(NamedTuple):
    """One entry (or part of one) to import. ``line`` is where it came from, for errors.

    Records with the same ``content_id`` merge into one entry: the first record's
    note and meta win, the signals accumulate. (A NamedTuple rather than a frozen
    dataclass: imports create tens of millions of them.)
    """

    content_id: str
    signals: tuple[tuple[str, str], ...]  # (signal type, value)
    note: str | None = None
    meta: dict[str, Any] | None = None
    line: int = 0
    # Kept from an export (``bank export`` then ``bank import``); None: the import's
    # source (the file) and time, as for any new entry.
    source: str | None = None
    added_at: datetime | None = None
    enabled: bool = True


@dataclass(frozen=True)
class ImportResult:
    """``total`` counts the signal values offered; ``duplicates`` those already in the
    bank or repeated in the input; ``degenerate`` those not banked because they say
    nothing about a file (e.g. AutoV1 ``e3b0c442``, the hash of an empty window), see
    ``SignalType.degenerate`` (``total == added_signals + duplicates + degenerate``)."""

    added_entries: int
    added_signals: int
    duplicates: int
    total: int
    degenerate: int = 0


@dataclass(frozen=True)
class BankStats:
    bank: str
    enabled: bool
    entries: int
    enabled_entries: int
    signals: dict[str, int]
    last_added: datetime | None


@dataclass(frozen=True)
class LoadedSignals:
    """Signals of one type as arrays, row i = (values[i], signal_ids[i], bank_ids[i])."""

    signal_type: str
    values: np.ndarray  # (n, nbytes) uint8
    signal_ids: np.ndarray  # (n,) int64
    bank_ids: np.ndarray  # (n,) int32

    def __len__(self) -> int:
        return len(self.signal_ids)


@dataclass(frozen=True)
class Changes:
    """What changed since a (signal id, change seq) cursor.

    Apply ``removed_signal_ids`` and ``added`` in either order: they are disjoint,
    ``added`` holds only signals absent from an index built at the cursor, and
    ``removed_signal_ids`` may name ids such an index never held (ignore those).
    ``banks_changed`` says a bank was enabled, disabled or deleted since the cursor;
    its signals are NOT listed here: rebuild (or mask by ``changed_bank_ids``).
    """

    added: dict[str, LoadedSignals]
    removed_signal_ids: np.ndarray  # int64
    banks_changed: bool
    last_signal_id: int
    last_seq: int
    changed_bank_ids: frozenset[int] = field(default_factory=frozenset)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass
class _Validated:
    content_id: str
    note: str | None
    meta_json: str | None
    signals: list[tuple[str, str]]
    degenerate: list[tuple[str, str, str]] = field(default_factory=list)  # (type, value, why): not banked
    source: str | None = None
    added_at: datetime | None = None  # naive UTC
    enabled: bool = True


# The write transaction this thread or task has open, per store (see Store.transaction).
_TRANSACTION: ContextVar[tuple[Store, Connection] | None] = ContextVar("assay_store_write", default=None)


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------
class Store:
    """Hash banks in a SQL database. ``url`` is a SQLAlchemy URL or a file path;
    ``None`` means the embedded default (``ASSAY_DB`` or SQLite in the data dir).

    ``create=False`` refuses (:class:`StoreMissing`) a store that does not exist yet: an
    SQLite file that is absent or empty, or a PostgreSQL database/schema without assay's
    tables. Nothing is created or written then."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        raw = default_db_url() if url is None else normalize_db_url(url)
        self._url = _parse_url(raw)
        self.url_for_display: str = self._url.render_as_string(hide_password=True)
        self._dialect = self._url.get_backend_name()
        self._engine: Engine | None = None
        self._writer: Engine | None = None
        self._create = create
        if not create and self._dialect == "sqlite":
            db = self._url.database or ""
            memory = db in ("", ":memory:") or "mode=memory" in db or db.startswith("file:")
            if not memory and not (Path(db).expanduser().is_file() and Path(db).expanduser().stat().st_size):
                raise self._missing()
        try:
            with self._guard("opening the store"):
                self._engine = _make_engine(self._url, self.url_for_display)
                self._ensure_schema()
                self._use_wal()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        return cls(url)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._writer = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url_for_display!r})"

    # -- plumbing ----------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreError(f"{self.url_for_display}: the store is closed")
        return self._engine

    @property
    def writer(self) -> Engine:
        """The engine for write transactions: on SQLite they BEGIN IMMEDIATE, taking the
        write lock before their first read, so concurrent writers (other workers) queue
        on the busy timeout; a deferred transaction that read first would instead fail
        with "database is locked" when it tries to write after another writer
        committed. Same pool as ``engine``; on PostgreSQL the same engine."""
        engine = self.engine
        if self._dialect != "sqlite":
            return engine
        if self._writer is None:
            self._writer = engine.execution_options(sqlite_begin_immediate=True)
        return self._writer

    def guard(self, action: str) -> AbstractContextManager[None]:
        """Turn database failures inside the block into a StoreError naming the store
        and ``action`` (e.g. "adding model fingerprints")."""
        return self._guard(action)

    def transaction(self, action: str) -> AbstractContextManager[Connection]:
        """A guarded write transaction: committed when the block ends, rolled back on an
        error. On PostgreSQL it takes the writers' lock, as every bank write does.

        Store writes and reads made inside the block (on this store, in this thread or
        task) join it instead of committing on their own, so a caller can make several
        writes and its own statements (e.g. an audit row) commit or roll back together."""
        return self._write(action)

    def connection(self, action: str) -> AbstractContextManager[Connection]:
        """A guarded connection for reading."""
        return self._read(action)

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn driver and SQLAlchemy failures into a StoreError naming the URL."""
        try:
            yield
        except AssayError:
            raise
        except (sa.exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise _store_error(self.url_for_display, action, exc) from exc
        except Exception as exc:  # psycopg errors, without importing psycopg eagerly
            if type(exc).__module__.startswith("psycopg"):
                raise _store_error(self.url_for_display, action, exc) from exc
            raise

    def _joined(self) -> Connection | None:
        current = _TRANSACTION.get()
        return current[1] if current is not None and current[0] is self else None

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        joined = self._joined()
        if joined is not None:  # inside an open write: the outer block commits or rolls back
            with self._guard(action):
                yield joined
            return
        with self._guard(action), self.writer.begin() as conn:
            if self._dialect == "postgresql":
                # Writers take turns (SQLite's own rule too). Otherwise a long import could
                # commit signal ids or change seqs below ones a reader has already passed,
                # and changes_since() would never hand them out.
                # One lock per schema, so that stores in other schemas never wait on this one.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"),
                             {"key": _PG_WRITE_LOCK})
            token = _TRANSACTION.set((self, conn))
            try:
                yield conn
            finally:
                _TRANSACTION.reset(token)

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        joined = self._joined()
        if joined is not None:  # see the open write's own rows (and never wait on its locks)
            with self._guard(action):
                yield joined
            return
        with self._guard(action), self.engine.connect() as conn:
            yield conn

    def _use_wal(self) -> None:
        """SQLite: WAL mode, once the file is known to be an assay store. Several service
        workers share one file; in WAL mode readers (every worker polls the store) never
        block the writer nor it them. Persistent in the file; a read-only file or
        directory keeps the mode it has."""
        db = self._url.database or ""
        if self._dialect != "sqlite" or db in ("", ":memory:") or "mode=memory" in db:
            return
        try:
            with self.engine.connect() as conn:
                # On the driver's connection: outside a transaction, where the mode can change.
                conn.connection.dbapi_connection.execute("PRAGMA journal_mode = WAL").fetchall()  # type: ignore[union-attr]
        except (sa.exc.SQLAlchemyError, sqlite3.Error):
            pass

    # -- schema --------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        """Bring the store to the head of the migrations. A store already there costs
        three small reads and never loads Alembic; any other is examined again, and
        migrated, under the schema lock, so that processes opening it at once
        migrate it once."""
        with self.engine.connect() as conn:
            if self._at_head(conn):
                return
            if not self._create and not _has_assay_tables(conn):
                raise self._missing()
        self._migrate()

    def _missing(self) -> StoreMissing:
        return StoreMissing(f"no assay store at {self.url_for_display}",
                            hint="check the path or URL; to make a new store there, pass --create")

    def _at_head(self, conn: Connection) -> bool:
        """True if the store is at the migrations' head, False if it needs them (new,
        made before Alembic, or older); StoreError if it is someone else's database or
        comes from a newer assay. Reads only."""
        tables = set(sa.inspect(conn).get_table_names())
        if "meta" not in tables:
            if tables:  # someone else's database: never add tables to it
                raise StoreError(
                    f"{self.url_for_display}: not an assay store (it holds other tables: "
                    f"{', '.join(sorted(tables)[:5])})",
                    hint="use a new file, or a dedicated PostgreSQL database or schema; nothing was written",
                )
            return False  # empty: a new store
        revisions = migrations.stamped(conn) if migrations.VERSION_TABLE in tables else []
        unknown = [r for r in revisions if r not in migrations.REVISIONS]
        if unknown:
            raise StoreError(
                f"{self.url_for_display}: store schema revision {unknown[0]!r} is newer than this "
                f"assay understands (it knows revisions up to {migrations.HEAD})",
                hint="upgrade assay; the store was left untouched",
            )
        version = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).scalar()
        if version is not None and (not version.isdigit() or int(version) > SCHEMA_VERSION):
            raise StoreError(
                f"{self.url_for_display}: store schema version {version!r} is newer than "
                f"this assay understands ({SCHEMA_VERSION})",
                hint="upgrade assay; the store was left untouched",
            )
        return revisions == [migrations.HEAD]

    def _migrate(self) -> None:
        from alembic.util import CommandError  # loaded only when a store needs migrating

        action = f"upgrading the store schema to revision {migrations.HEAD}"
        with self._guard(action), self.engine.connect() as conn:
            # IMMEDIATE on SQLite: take the write lock before reading the schema, so that a
            # second process waits for the first instead of failing on a lock upgrade.
            conn.execution_options(sqlite_begin_immediate=True)
            with conn.begin():
                migrations.lock(conn)
                if self._at_head(conn):  # another process migrated it while we waited
                    return
                try:
                    migrations.upgrade_in(conn)
                except CommandError as exc:
                    raise StoreError(f"{self.url_for_display}: {action} failed: {exc}",
                                     hint="the store was left untouched") from None

    def _bank_row(self, conn: Connection, name: str) -> sa.Row[Any]:
        row = conn.execute(sa.select(banks_table).where(banks_table.c.name == name)).first()
        if row is None:
            known = conn.execute(sa.select(banks_table.c.name).order_by(banks_table.c.name).limit(21)).scalars().all()
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise BankNotFound(
                f"no bank named {name!r} in {self.url_for_display}",
                hint=f"known banks: {shown}" if known else "the store has no banks yet; create one first",
            )
        return row

    # -- banks -------------------------------------------------------------------------
    def create_bank(self, name: str, description: str = "", pdq_threshold: int | None = None,
                    kind: str = "flagged") -> Bank:
        _check_bank_name(name)
        _check_text("description", description, MAX_NOTE)
        _check_threshold(pdq_threshold)
        _check_kind(kind)
        now = _now()
        with self._write(f"creating bank {name!r}") as conn:
            exists = conn.execute(sa.select(banks_table.c.id).where(banks_table.c.name == name)).first()
            if exists is not None:
                raise BankExists(f"a bank named {name!r} already exists in {self.url_for_display}",
                                 hint="pick another name or import into the existing bank")
            conn.execute(
                banks_table.insert().values(
                    name=name, description=description, enabled=True,
                    pdq_threshold=pdq_threshold, created_at=now, updated_at=now, kind=kind,
                )
            )
            return _bank(self._bank_row(conn, name))

    def get_bank(self, name: str) -> Bank:
        with self._read("reading a bank") as conn:
            return _bank(self._bank_row(conn, name))

    def list_banks(self) -> list[Bank]:
        with self._read("listing banks") as conn:
            rows = conn.execute(sa.select(banks_table).order_by(banks_table.c.name)).all()
        return [_bank(r) for r in rows]

    def set_bank_enabled(self, name: str, enabled: bool) -> None:
        with self._write(f"updating bank {name!r}") as conn:
            row = self._bank_row(conn, name)
            if bool(row.enabled) == bool(enabled):
                return
            now = _now()
            conn.execute(
                banks_table.update().where(banks_table.c.id == row.id).values(enabled=bool(enabled), updated_at=now)
            )
            conn.execute(changes_table.insert().values(
                bank_id=row.id, signal_id=None, signal_type=None, op="add" if enabled else "remove", at=now))
            self._notify_followers(conn)

    def update_bank(
        self,
        name: str,
        description: str | None = None,
        pdq_threshold: int | None | _Unset = UNSET,
        enabled: bool | None = None,
    ) -> Bank:
        """Change a bank's description, threshold (``pdq_threshold=None`` clears it) and/or
        whether it is matched against, in one transaction."""
        if enabled is not None:
            with self._write(f"updating bank {name!r}"):
                self.set_bank_enabled(name, enabled)
                return self.update_bank(name, description, pdq_threshold)
        values: dict[str, Any] = {}
        if description is not None:
            _check_text("description", description, MAX_NOTE)
            values["description"] = description
        if not isinstance(pdq_threshold, _Unset):
            _check_threshold(pdq_threshold)
            values["pdq_threshold"] = pdq_threshold
        with self._write(f"updating bank {name!r}") as conn:
            row = self._bank_row(conn, name)
            if values:
                values["updated_at"] = _now()
                conn.execute(banks_table.update().where(banks_table.c.id == row.id).values(**values))
                if "pdq_threshold" in values:  # followers re-read thresholds on refresh
                    self._notify_followers(conn)
            return _bank(self._bank_row(conn, name))

    def rename_bank(self, name: str, new_name: str) -> Bank:
        """Give a bank a new name; its entries, signals and fingerprints stay as they are
        (they refer to the bank by id), and matches name it by its new name at once."""
        _check_bank_name(new_name)
        with self._write(f"renaming bank {name!r}") as conn:
            row = self._bank_row(conn, name)
            if new_name != name:
                taken = conn.execute(sa.select(banks_table.c.id).where(banks_table.c.name == new_name)).first()
                if taken is not None:
                    raise BankExists(f"a bank named {new_name!r} already exists in {self.url_for_display}",
                                     hint="pick another name")
                conn.execute(banks_table.update().where(banks_table.c.id == row.id)
                             .values(name=new_name, updated_at=_now()))
                self._notify_followers(conn)
            return _bank(self._bank_row(conn, new_name))

    def delete_bank(self, name: str) -> None:
        with self._write(f"deleting bank {name!r}") as conn:
            row = self._bank_row(conn, name)
            conn.execute(changes_table.insert().values(
                bank_id=row.id, signal_id=None, signal_type=None, op="remove", at=_now()))
            conn.execute(signals_table.delete().where(signals_table.c.bank_id == row.id))
            conn.execute(entries_table.delete().where(entries_table.c.bank_id == row.id))
            # its model weight fingerprints (banks/fingerprints.py) and enrolled cameras
            # (assay.camera.store) go with it
            conn.execute(sa.text("DELETE FROM model_fingerprints WHERE bank_id = :b"), {"b": row.id})
            conn.execute(sa.text("DELETE FROM camera_fingerprints WHERE bank_id = :b"), {"b": row.id})
            conn.execute(banks_table.delete().where(banks_table.c.id == row.id))
            self._notify_followers(conn)

    # -- entries -----------------------------------------------------------------------
    def add_entry(
        self,
        bank: str,
        content_id: str,
        signals: Mapping[str, str | Sequence[str]],
        note: str | None = None,
        source: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> ImportResult:
        """Add one entry (or new signals to an existing one). Bad input raises
        InvalidSignal / UnknownSignalType / InvalidBankInput before anything is written."""
        if not isinstance(signals, Mapping):
            raise InvalidBankInput("signals must map signal types to a value or a list of values")
        pairs: list[tuple[str, str]] = []
        for st_name, vals in signals.items():
            for v in vals if isinstance(vals, list | tuple) else [vals]:
                pairs.append((st_name, v))
        record = ImportRecord(content_id, tuple(pairs), note, dict(meta) if meta is not None else None)
        v = _validate(record, {})  # raise the precise error for a single entry
        if not v.signals:  # only degenerate values: nothing an entry could be matched by
            t, value, why = v.degenerate[0]
            raise InvalidSignal(t, value, f"{why}; refused: it would match unrelated files")
        return self.import_records(bank, [record], source or "add_entry")

    def remove_entry(self, bank: str, content_id: str) -> bool:
        with self._write(f"removing an entry from bank {bank!r}") as conn:
            bank_row = self._bank_row(conn, bank)
            entry_id = self._entry_id(conn, bank_row.id, content_id)
            if entry_id is None:
                return False
            self._record_signal_changes(conn, bank_row.id, entry_id, "remove")
            conn.execute(signals_table.delete().where(signals_table.c.entry_id == entry_id))
            conn.execute(entries_table.delete().where(entries_table.c.id == entry_id))
            self._notify_followers(conn)
            return True

    def set_entry_enabled(self, bank: str, content_id: str, enabled: bool) -> None:
        with self._write(f"updating an entry of bank {bank!r}") as conn:
            bank_row = self._bank_row(conn, bank)
            row = conn.execute(
                sa.select(entries_table.c.id, entries_table.c.enabled).where(
                    entries_table.c.bank_id == bank_row.id, entries_table.c.content_id == content_id)
            ).first()
            if row is None:
                raise InvalidBankInput(f"bank {bank!r} has no entry {content_id!r}")
            if bool(row.enabled) == bool(enabled):
                return
            conn.execute(entries_table.update().where(entries_table.c.id == row.id).values(enabled=bool(enabled)))
            self._record_signal_changes(conn, bank_row.id, row.id, "add" if enabled else "remove")
            self._notify_followers(conn)

    def set_entry_note(self, bank: str, content_id: str, note: str | None) -> None:
        """Replace an entry's note (None clears it); what it matches is unchanged."""
        with self._write(f"updating an entry of bank {bank!r}") as conn:
            bank_row = self._bank_row(conn, bank)
            entry_id = self._entry_id(conn, bank_row.id, content_id)
            if entry_id is None:
                raise InvalidBankInput(f"bank {bank!r} has no entry {content_id!r}")
            conn.execute(entries_table.update().where(entries_table.c.id == entry_id).values(note=note))

    def _entry_id(self, conn: Connection, bank_id: int, content_id: str) -> int | None:
        return conn.execute(
            sa.select(entries_table.c.id).where(
                entries_table.c.bank_id == bank_id, entries_table.c.content_id == content_id)
        ).scalar()

    def _record_signal_changes(self, conn: Connection, bank_id: int, entry_id: int, op: str) -> None:
        s = signals_table
        conn.execute(
            changes_table.insert().from_select(
                ["bank_id", "signal_id", "signal_type", "op", "at"],
                sa.select(s.c.bank_id, s.c.id, s.c.signal_type, sa.literal(op), sa.literal(_now(), sa.DateTime))
                .where(s.c.entry_id == entry_id).order_by(s.c.id),
            )
        )

    def _notify_followers(self, conn: Connection) -> None:
        """Tell the indexes listening on this store (PostgreSQL) that a write changes what
        they hold. NOTIFY is transactional: the notice leaves when the write commits and
        never if it rolls back; repeats within one transaction arrive as one."""
        if self._dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_notify(:channel, current_schema())"), {"channel": CHANGES_CHANNEL})

    def get_entry(self, bank: str, content_id: str) -> Entry | None:
        with self._read(f"reading an entry of bank {bank!r}") as conn:
            bank_row = self._bank_row(conn, bank)
            row = conn.execute(
                sa.select(entries_table).where(
                    entries_table.c.bank_id == bank_row.id, entries_table.c.content_id == content_id)
            ).first()
            if row is None:
                return None
            return self._entries_with_signals(conn, bank, [row])[0]

    def get_entry_by_id(self, bank: str, entry_id: int) -> Entry | None:
        """The entry with this integer id, if it is in ``bank``."""
        with self._read(f"reading an entry of bank {bank!r}") as conn:
            bank_row = self._bank_row(conn, bank)
            row = conn.execute(
                sa.select(entries_table).where(entries_table.c.bank_id == bank_row.id, entries_table.c.id == entry_id)
            ).first()
            if row is None:
                return None
            return self._entries_with_signals(conn, bank, [row])[0]

    def iter_entries(self, bank: str, limit: int | None = None, offset: int = 0) -> Iterator[Entry]:
        """Entries of a bank ordered by content id, fetched page by page (bounded memory)."""
        page = _PAGE
        with self._read(f"reading bank {bank!r}") as conn:
            bank_id = self._bank_row(conn, bank).id
        last: str | None = None
        remaining = limit
        first = True
        while remaining is None or remaining > 0:
            n = page if remaining is None else min(page, remaining)
            q = sa.select(entries_table).where(entries_table.c.bank_id == bank_id)
            if last is not None:
                q = q.where(entries_table.c.content_id > last)
            q = q.order_by(entries_table.c.content_id).limit(n)
            if first and offset:
                q = q.offset(offset)
            first = False
            with self._read(f"reading bank {bank!r}") as conn:
                rows = conn.execute(q).all()
                got = self._entries_with_signals(conn, bank, rows)
            yield from got
            if len(rows) < n:
                return
            last = rows[-1].content_id
            if remaining is not None:
                remaining -= len(rows)

    def _entries_with_signals(self, conn: Connection, bank: str, rows: Sequence[sa.Row[Any]]) -> list[Entry]:
        by_entry: dict[int, dict[str, list[str]]] = {r.id: {} for r in rows}
        ids = list(by_entry)
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            for eid, st, val in conn.execute(
                sa.select(signals_table.c.entry_id, signals_table.c.signal_type, signals_table.c.value)
                .where(signals_table.c.entry_id.in_(chunk)).order_by(signals_table.c.id)
            ):
                by_entry[eid].setdefault(st, []).append(val)
        return [
            Entry(
                bank=bank, content_id=r.content_id, note=r.note, source=r.source,
                added_at=_utc(r.added_at), meta=_meta(r.meta), enabled=bool(r.enabled),
                signals={k: tuple(v) for k, v in by_entry[r.id].items()}, id=int(r.id),
            )
            for r in rows
        ]

    # -- import ------------------------------------------------------------------------
    def import_records(self, bank: str, records: Iterable[ImportRecord], source: str) -> ImportResult:
        """Import records into a bank in ONE transaction: all or nothing, idempotent.

        Every record is validated (signal values through their signal type); if any
        is bad, or ``records`` raises (e.g. a parser's BankImportError), nothing is
        written and BankImportError lists up to 20 problems by line. Existing entries
        are never modified; their new signals are added.
        """
        _check_text("source", source, MAX_NOTE)
        problems: list[tuple[int, str]] = []
        counts = _Counts()
        types: dict[str, signal_types.SignalType] = {}

        def valid() -> Iterator[_Validated]:
            for rec in records:
                try:
                    v = _validate(rec, types)
                except AssayError as exc:
                    problems.append((rec.line, str(exc)))
                    if len(problems) >= MAX_PROBLEMS:
                        raise BankImportError(source, problems) from None
                    continue
                counts.total += len(v.signals) + len(v.degenerate)
                counts.degenerate += len(v.degenerate)
                if not problems and v.signals:  # once anything is bad, only look for more problems
                    yield v

        now = _now()
        kinds: set[str] = set()

        def noted(items: Iterator[_Validated]) -> Iterator[_Validated]:
            for v in items:  # the variants an entry banked from pixels has (bank add --image)
                if v.meta_json is not None and '"pdq_variants"' in v.meta_json:
                    meta = json.loads(v.meta_json)
                    named = meta.get("pdq_variants") if isinstance(meta, dict) else None
                    if isinstance(named, dict):
                        kinds.update(variant_kind(str(n)) for n in named.values())
                yield v

        with self._write(f"importing into bank {bank!r}") as conn:
            bank_row = self._bank_row(conn, bank)
            if self._dialect == "postgresql":
                added_e, added_s = _import_postgres(conn, bank_row.id, noted(valid()), source, now)
            else:
                added_e, added_s = _import_sqlite(conn, bank_row.id, noted(valid()), source, now)
            if problems:
                raise BankImportError(source, problems)  # rolls the transaction back
            if kinds and added_s:
                known = self._variant_kinds(conn)
                if not kinds <= known:
                    m = meta_table
                    value = json.dumps(sorted(known | kinds))
                    if not conn.execute(m.update().where(m.c.key == _VARIANT_KINDS_KEY).values(value=value)).rowcount:
                        conn.execute(m.insert().values(key=_VARIANT_KINDS_KEY, value=value))
            if added_e or added_s:
                conn.execute(banks_table.update().where(banks_table.c.id == bank_row.id).values(updated_at=now))
                self._notify_followers(conn)
        return ImportResult(added_e, added_s, counts.total - added_s - counts.degenerate, counts.total,
                            counts.degenerate)

    # -- stats -------------------------------------------------------------------------
    def stats(self, bank: str) -> BankStats:
        e, s = entries_table, signals_table
        with self._read(f"reading bank {bank!r}") as conn:
            row = self._bank_row(conn, bank)
            n, n_enabled, last = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.case((e.c.enabled, 1), else_=0)), 0),
                    sa.func.max(e.c.added_at),
                ).where(e.c.bank_id == row.id)
            ).one()
            by_type = conn.execute(
                sa.select(s.c.signal_type, sa.func.count()).where(s.c.bank_id == row.id).group_by(s.c.signal_type)
            ).all()
        return BankStats(
            bank=row.name, enabled=bool(row.enabled), entries=int(n), enabled_entries=int(n_enabled),
            signals={t: int(c) for t, c in sorted(by_type)}, last_added=_utc(last) if last else None,
        )

    # -- the index's side --------------------------------------------------------------
    def load_signals(self, signal_type: str, up_to_signal_id: int | None = None) -> LoadedSignals:
        """Every signal of a type in enabled banks and enabled entries (optionally only
        ids <= ``up_to_signal_id``), as arrays ready for an index."""
        st = signal_types.get(signal_type)
        with self._read(f"loading {st.name} signals") as conn:
            # Most types are absent from most stores: one index probe instead of a
            # scan of the whole signals table (seven empty types cost minutes at 10M).
            present = conn.execute(
                sa.select(signals_table.c.id).where(signals_table.c.signal_type == st.name).limit(1)
            ).first()
            if present is None:
                return _empty(st.name, (st.hex_len + 1) // 2)
            hi = int(conn.execute(sa.select(sa.func.max(signals_table.c.id))).scalar() or 0)
            if up_to_signal_id is not None:
                hi = min(hi, int(up_to_signal_id))
            return self._load(conn, st, 0, hi)

    def _load(self, conn: Connection, st: signal_types.SignalType, lo: int, hi: int,
              only: Sequence[int] = ()) -> LoadedSignals:
        """The hot path: signals of type ``st`` with ids in (lo, hi] (or in ``only``).

        The database concatenates each chunk of ~_LOAD_CHUNK rows into four strings
        (ids, bank ids, entry ids, hex values) that numpy parses in C: no Python object
        per row. Enabled banks and disabled entries (both few) are filtered in numpy
        rather than by a join."""
        enabled_banks = np.array(
            conn.execute(sa.select(banks_table.c.id).where(banks_table.c.enabled)).scalars().all(), dtype=np.int64)
        disabled_entries = np.array(
            conn.execute(sa.select(entries_table.c.id).where(~entries_table.c.enabled)).scalars().all(),
            dtype=np.int64)
        nbytes = (st.hex_len + 1) // 2
        pad = "0" if st.hex_len % 2 else ""
        if self._dialect == "postgresql":
            ph = "%s"
            cols = ("string_agg(id::text, ','), string_agg(bank_id::text, ','), "
                    f"string_agg(entry_id::text, ','), string_agg('{pad}' || value, '')")
            # One pass feeds all four aggregates in the same row order; a parallel plan
            # would combine partial results and is not worth it for one chunk anyway.
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        else:
            ph = "?"
            cols = f"group_concat(id), group_concat(bank_id), group_concat(entry_id), group_concat('{pad}' || value, '')"
        # Keep both planners on the id range: an index on signal_type would be scanned whole
        # for every chunk (PostgreSQL did so in a BitmapAnd, 8x slower at 10M rows).
        type_col = "signal_type || ''" if self._dialect == "postgresql" else "+signal_type"
        dbapi = conn.connection.driver_connection
        cur = dbapi.cursor()
        chunks: list[tuple[str, list[int]]] = []
        if only:
            ids = sorted({int(i) for i in only})
            for i in range(0, len(ids), _IN_CHUNK):
                part = ids[i : i + _IN_CHUNK]
                chunks.append((f"id IN ({','.join([ph] * len(part))})", part))
        else:
            chunks = [(f"id > {ph} AND id <= {ph}", [a, min(a + _LOAD_CHUNK, hi)]) for a in range(lo, hi, _LOAD_CHUNK)]
        parts: list[LoadedSignals] = []
        try:
            for where, params in chunks:
                cur.execute(f"SELECT {cols} FROM signals WHERE {where} AND {type_col} = {ph}", [*params, st.name])
                ids_s, banks_s, entries_s, values_s = cur.fetchone()
                if not ids_s:
                    continue
                ids_a = np.fromstring(ids_s, dtype=np.int64, sep=",")
                bank_a = np.fromstring(banks_s, dtype=np.int64, sep=",")
                codes = np.frombuffer(bytes.fromhex(values_s), dtype=np.uint8).reshape(-1, nbytes)
                if not len(ids_a) == len(bank_a) == len(codes):
                    raise StoreError(f"{self.url_for_display}: inconsistent rows while loading {st.name} signals")
                keep = np.isin(bank_a, enabled_banks)
                if len(disabled_entries):
                    keep &= ~np.isin(np.fromstring(entries_s, dtype=np.int64, sep=","), disabled_entries)
                if not keep.all():
                    ids_a, bank_a, codes = ids_a[keep], bank_a[keep], codes[keep]
                parts.append(LoadedSignals(st.name, codes, ids_a, bank_a.astype(np.int32)))
        finally:
            cur.close()
        return _concat(st.name, parts)

    def max_signal_id(self) -> int:
        with self._read("reading the store") as conn:
            return int(conn.execute(sa.select(sa.func.max(signals_table.c.id))).scalar() or 0)

    def max_change_seq(self) -> int:
        with self._read("reading the store") as conn:
            last = int(conn.execute(sa.select(sa.func.max(changes_table.c.seq))).scalar() or 0)
            # Pruning may have emptied the table: a cursor is never below what was pruned.
            return max(last, self._watermark(conn))

    def changes_watermark(self) -> int:
        """The highest change seq pruned (0: none). Every change with seq <= it is gone,
        so an index whose cursor seq is below it cannot catch up (ChangesPruned)."""
        with self._read("reading the store") as conn:
            return self._watermark(conn)

    def _watermark(self, conn: Connection) -> int:
        value = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == _PRUNED_KEY)).scalar()
        return int(value) if value else 0

    #: Change records deleted per write transaction by prune_changes.
    PRUNE_STEP = 50_000

    def prune_changes(self, older_than: timedelta = timedelta(days=7)) -> int:
        """Delete the change records older than ``older_than`` and raise the watermark to
        the highest seq deleted. Returns how many were deleted. Idempotent, and safe to
        run from several processes at once (it is a bank write: writers take turns).

        Indexes at a cursor below the new watermark then get ChangesPruned from
        changes_since and load again; with a retention of days, only an index (or an
        on-disk snapshot) that has not followed the store for that long."""
        c = changes_table
        cutoff = _now() - older_than
        with self._read("reading changes") as conn:
            # Delete by seq, up to the newest old record: everything at or below the
            # watermark is gone, whatever the clocks of the writers said in `at`.
            through = conn.execute(sa.select(sa.func.max(c.c.seq)).where(c.c.at < cutoff)).scalar()
        if through is None:
            return 0
        deleted = 0
        while True:
            # A big backlog (the first prune of an old store) goes in steps of at most
            # PRUNE_STEP records, each its own short write: writers wait one step, not all.
            with self._write("pruning changes") as conn:
                first = conn.execute(sa.select(sa.func.min(c.c.seq))).scalar()
                upper = int(through) if first is None else min(int(through), int(first) + self.PRUNE_STEP - 1)
                deleted += max(conn.execute(c.delete().where(c.c.seq <= upper)).rowcount, 0)
                mark = max(upper, self._watermark(conn))
                m = meta_table
                if not conn.execute(m.update().where(m.c.key == _PRUNED_KEY).values(value=str(mark))).rowcount:
                    conn.execute(m.insert().values(key=_PRUNED_KEY, value=str(mark)))
            if upper >= through:
                return deleted

    def changes_since(self, signal_id: int, seq: int) -> Changes:
        """What an index built at cursor (signal_id, seq) must apply to catch up.

        Raises ChangesPruned if changes after ``seq`` were pruned: the index may hold
        signals removed since, and only a full load can tell."""
        s, e, b, c = signals_table, entries_table, banks_table, changes_table
        with self._read("reading changes") as conn:
            last_seq = int(conn.execute(sa.select(sa.func.max(c.c.seq))).scalar() or 0)
            last_id = int(conn.execute(sa.select(sa.func.max(s.c.id))).scalar() or 0)
            last_seq, last_id = max(last_seq, seq), max(last_id, signal_id)
            rows = conn.execute(
                sa.select(c.c.bank_id, c.c.signal_id, c.c.op)
                .where(c.c.seq > seq, c.c.seq <= last_seq).order_by(c.c.seq)
            ).all()
            # Read after the rows: a prune that committed before they were read (and may
            # have deleted some) is seen here, so a short list is never taken as complete.
            pruned = self._watermark(conn)
            if seq < pruned:
                raise ChangesPruned(
                    f"{self.url_for_display}: changes after seq {seq} were pruned (up to seq {pruned}); "
                    "an index at that cursor cannot catch up", watermark=pruned)
            changed_banks = frozenset(r.bank_id for r in rows if r.signal_id is None)
            # Whether the index holds a signal follows from the FIRST change after the
            # cursor ('remove' -> it was active then), whether it should from the data now.
            first_op: dict[int, str] = {}
            for r in rows:
                if r.signal_id is not None and r.signal_id <= signal_id:
                    first_op.setdefault(r.signal_id, r.op)
            touched = sorted(first_op)
            active: set[int] = set()
            for i in range(0, len(touched), _IN_CHUNK):
                active.update(conn.execute(
                    sa.select(s.c.id).join(e, e.c.id == s.c.entry_id).join(b, b.c.id == s.c.bank_id)
                    .where(s.c.id.in_(touched[i : i + _IN_CHUNK]), e.c.enabled, b.c.enabled)
                ).scalars())
            removed = [sid for sid in touched if first_op[sid] == "remove" and sid not in active]
            readd = [sid for sid in touched if first_op[sid] == "add" and sid in active]
            added: dict[str, LoadedSignals] = {}
            new_types = conn.execute(
                sa.select(s.c.signal_type).where(s.c.id > signal_id, s.c.id <= last_id).distinct()
            ).scalars().all()
            readd_types = conn.execute(
                sa.select(s.c.signal_type).where(s.c.id.in_(readd)).distinct()
            ).scalars().all() if readd else []
            for name in sorted(set(new_types) | set(readd_types)):
                try:
                    st = signal_types.get(name)
                except AssayError:
                    continue  # a type this process does not know cannot be indexed
                parts = [self._load(conn, st, signal_id, last_id)]
                if readd:
                    parts.append(self._load(conn, st, 0, 0, only=readd))
                added[st.name] = _concat(st.name, parts)
        return Changes(
            added=added,
            removed_signal_ids=np.array(removed, dtype=np.int64),
            banks_changed=bool(changed_banks),
            last_signal_id=last_id,
            last_seq=last_seq,
            changed_bank_ids=changed_banks,
        )

    def resolve(self, signal_ids: Sequence[int]) -> dict[int, SignalRef]:
        """Bank, content id and note of signals, for turning index hits into matches.
        Signals removed or disabled since the index saw them are absent."""
        s, e, b = signals_table, entries_table, banks_table
        ids = sorted({int(i) for i in signal_ids})
        out: dict[int, SignalRef] = {}
        with self._read("resolving matches") as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                q = (
                    sa.select(s.c.id, b.c.name, e.c.content_id, s.c.signal_type, s.c.value, e.c.note, b.c.pdq_threshold,
                              e.c.id, b.c.kind, e.c.meta)
                    .join(e, e.c.id == s.c.entry_id).join(b, b.c.id == s.c.bank_id)
                    .where(s.c.id.in_(ids[i : i + _IN_CHUNK]), e.c.enabled, b.c.enabled)
                )
                for r in conn.execute(q):
                    variant, frames, times = _ref_extras(r[9], r[4])
                    out[int(r[0])] = SignalRef(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]),
                                               r[8] or "flagged", variant, frames, times)
            entries = sorted({r.entry_id for r in out.values() if r.signal_type in SHORT_FILE_HASHES})
            rows = []
            for i in range(0, len(entries), _IN_CHUNK):
                rows += conn.execute(sa.select(s.c.entry_id, s.c.signal_type, s.c.value).where(
                    s.c.entry_id.in_(entries[i : i + _IN_CHUNK]), s.c.signal_type.in_(FULL_FILE_HASHES))).all()
            if rows:
                out = with_file_hashes(out, rows)
        return out

    def pdq_variant_kinds(self) -> frozenset[str]:
        """The kinds of image variant (``trimmed``, ``crop``, ``upper``, ``region``) that
        PDQ hashes of this store's banks stand for: a scan need not compute the query
        variants that only such hashes can match (anchored regions, the upper region)
        when no bank holds any. Kinds of deleted entries stay (a few needless queries,
        never a missed match)."""
        with self._read("reading banks") as conn:
            return frozenset(self._variant_kinds(conn))

    def _variant_kinds(self, conn: Connection) -> set[str]:
        raw = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == _VARIANT_KINDS_KEY)).scalar()
        found = None
        if raw is None:  # a store written before the key: look for an entry banked with variants
            e = entries_table
            found = conn.execute(sa.select(e.c.id).where(e.c.meta.is_not(None),
                                                         sa.cast(e.c.meta, sa.Text).like(VARIANTS_IN_META))
                                 .limit(1)).first()
        return set(variant_kinds(raw, found is not None))

    def bank_thresholds(self) -> dict[int, int | None]:
        """bank id -> pdq threshold (None: the signal type's default), enabled banks only."""
        with self._read("reading banks") as conn:
            rows = conn.execute(sa.select(banks_table.c.id, banks_table.c.pdq_threshold).where(banks_table.c.enabled))
            return {int(i): t for i, t in rows}

    def listen_changes(self) -> ChangeListener | None:
        """A dedicated connection told of every committed write that changes what an index
        holds (PostgreSQL LISTEN/NOTIFY), for a follower to wait on instead of polling
        alone. None on SQLite, which has no notices: poll there."""
        if self._dialect != "postgresql":
            return None
        with self._guard("listening for changes"):
            # Outside the pool: the connection lives as long as the listener, idle in LISTEN.
            cargs, cparams = self.engine.dialect.create_connect_args(self._url)
            cparams.setdefault("connect_timeout", 10)
            cparams.setdefault("application_name", "assay-listen")
            # A peer that vanished without closing the socket is noticed within ~1 min.
            cparams.update(keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
            conn = self.engine.dialect.connect(*cargs, **cparams)
            try:
                conn.autocommit = True
                schema = conn.execute("SELECT current_schema()").fetchone()[0]
                conn.execute(f"LISTEN {CHANGES_CHANNEL}")
            except BaseException:
                conn.close()
                raise
        return ChangeListener(conn, schema, self.url_for_display)


class ChangeListener:
    """One PostgreSQL connection LISTENing for the committed writes of one store (made by
    :meth:`Store.listen_changes`). Used by one thread at a time."""

    def __init__(self, conn: Any, schema: str, shown: str) -> None:
        self._conn = conn  # a psycopg connection in autocommit mode
        self._schema = schema
        self._shown = shown

    @property
    def backend_pid(self) -> int:
        """The server process of the connection (pg_stat_activity.pid)."""
        return int(self._conn.info.backend_pid)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True as soon as a write to this store committed
        (notices for stores in other schemas are skipped), False if none did.
        StoreError if the connection is lost: make a new listener."""
        try:
            for notice in self._conn.notifies(timeout=timeout):
                if notice.payload == self._schema:
                    return True
        except Exception as exc:  # psycopg errors, without importing psycopg here
            raise _store_error(self._shown, "listening for changes", exc) from exc
        return False

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # a broken connection: nothing left to release
            pass


# ---------------------------------------------------------------------------------------
# Bulk import, one function per database: both run inside the caller's transaction.
# ---------------------------------------------------------------------------------------
@dataclass
class _Counts:
    total: int = 0
    degenerate: int = 0


def _batches(it: Iterator[_Validated], n: int) -> Iterator[list[_Validated]]:
    batch: list[_Validated] = []
    for v in it:
        batch.append(v)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


_STAGE_SQL = ("CREATE TEMP TABLE assay_import (n INTEGER PRIMARY KEY, content_id TEXT, note TEXT, "
              "meta TEXT, signal_type TEXT, value TEXT, src TEXT, added TEXT, enabled INTEGER)")
_SQLITE_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME text form


def _import_sqlite(conn: Connection, bank_id: int, rows: Iterator[_Validated], source: str,
                   now: datetime) -> tuple[int, int]:
    # Stage everything in a temporary table, then insert in content-id order: the
    # b-trees of entries and signals then grow almost sequentially, where row-by-row
    # inserts of random hashes would touch a random page of each index per row.
    dbapi = conn.connection.driver_connection
    cur = dbapi.cursor()
    old_cache = cur.execute("PRAGMA cache_size").fetchone()[0]
    cur.execute("PRAGMA cache_size = -262144")  # 256 MiB while loading
    stamp = now.strftime(_SQLITE_STAMP)
    try:
        cur.execute("DROP TABLE IF EXISTS temp.assay_import")
        cur.execute(_STAGE_SQL)
        for batch in _batches(rows, _BATCH):
            cur.executemany(
                "INSERT INTO assay_import (content_id, note, meta, signal_type, value, src, added, enabled) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(v.content_id, v.note, v.meta_json, t, val, v.source,
                  v.added_at.strftime(_SQLITE_STAMP) if v.added_at is not None else None, int(v.enabled))
                 for v in batch for t, val in v.signals],
            )
        cur.execute(
            "INSERT OR IGNORE INTO entries (bank_id, content_id, note, source, added_at, meta, enabled) "
            "SELECT ?, content_id, note, COALESCE(src, ?), COALESCE(added, ?), meta, enabled FROM assay_import "
            "ORDER BY content_id, n",
            (bank_id, source, stamp),
        )
        added_e = cur.rowcount
        cur.execute(
            "INSERT OR IGNORE INTO signals (entry_id, bank_id, signal_type, value) "
            "SELECT e.id, e.bank_id, i.signal_type, i.value FROM assay_import i "
            "JOIN entries e ON e.bank_id = ? AND e.content_id = i.content_id ORDER BY e.id, i.n",
            (bank_id,),
        )
        added_s = cur.rowcount
        cur.execute("DROP TABLE temp.assay_import")
    finally:
        cur.execute(f"PRAGMA cache_size = {int(old_cache)}")
        cur.close()
    return max(added_e, 0), max(added_s, 0)


def _import_postgres(conn: Connection, bank_id: int, rows: Iterator[_Validated], source: str,
                     now: datetime) -> tuple[int, int]:
    # COPY into a temporary table, then two set-based INSERT ... ON CONFLICT DO NOTHING
    # (deduplicating against what is there), in content-id order for the same b-tree
    # locality as on SQLite.
    dbapi = conn.connection.driver_connection
    with dbapi.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '256MB'")  # sort the staged rows in memory
        cur.execute(
            "CREATE TEMP TABLE assay_import (n bigint, content_id text, note text, meta text, "
            "signal_type text, value text, src text, added timestamp, enabled boolean) ON COMMIT DROP"
        )
        n = 0
        with cur.copy("COPY assay_import FROM STDIN") as copy:
            for v in rows:
                for t, val in v.signals:
                    n += 1
                    copy.write_row((n, v.content_id, v.note, v.meta_json, t, val, v.source, v.added_at, v.enabled))
        if n == 0:
            cur.execute("DROP TABLE assay_import")
            return 0, 0
        cur.execute("ANALYZE assay_import")  # temp tables get no autovacuum statistics
        cur.execute(
            "INSERT INTO entries (bank_id, content_id, note, source, added_at, meta, enabled) "
            "SELECT %s, content_id, note, COALESCE(src, %s), COALESCE(added, %s), meta::json, enabled FROM assay_import "
            "ORDER BY content_id, n ON CONFLICT (bank_id, content_id) DO NOTHING",
            (bank_id, source, now),
        )
        added_e = cur.rowcount
        cur.execute(
            "INSERT INTO signals (entry_id, bank_id, signal_type, value) "
            "SELECT e.id, e.bank_id, i.signal_type, i.value FROM assay_import i "
            "JOIN entries e ON e.bank_id = %s AND e.content_id = i.content_id ORDER BY e.id, i.n "
            "ON CONFLICT (entry_id, signal_type, value) DO NOTHING",
            (bank_id,),
        )
        added_s = cur.rowcount
        cur.execute("DROP TABLE assay_import")
        if added_s > 100_000:  # fresh statistics, or plans keep assuming the tables are tiny
            cur.execute("ANALYZE entries")
            cur.execute("ANALYZE signals")
    return max(added_e, 0), max(added_s, 0)


# ---------------------------------------------------------------------------------------
# Validation and small helpers
# ---------------------------------------------------------------------------------------
def check_record(record: ImportRecord) -> None:
    """Raise the AssayError the store would raise for this record (parsers use it to
    report every problem with its line before anything is written)."""
    _validate(record, {})


def _validate(rec: ImportRecord, types: dict[str, signal_types.SignalType]) -> _Validated:
    cid = rec.content_id
    if not isinstance(cid, str) or not cid:
        raise InvalidBankInput("content_id is missing or not a string")
    if not rec.signals or not isinstance(rec.signals, tuple | list):
        raise InvalidBankInput(f"entry {cid!r} has no signal")
    out: list[tuple[str, str]] = []
    degenerate: list[tuple[str, str, str]] = []
    for pair in rec.signals:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str):
            raise InvalidBankInput(f"entry {cid!r}: signals must be (type, value) pairs")
        name, value = pair
        st = types.get(name)
        if st is None:
            st = types[name] = signal_types.get(name)
        # Values from our own parsers are canonical already: one regex instead of normalize().
        if not (type(value) is str and len(value) == st.hex_len and _CANONICAL.fullmatch(value)):
            value = st.normalize(value)
        why = st.degenerate_reason(value) if st.degenerate else None
        if why is not None:
            degenerate.append((st.name, value, why))
        else:
            out.append((st.name, value))
    if not ((len(out) == 1 and cid == out[0][1]) or (not out and len(degenerate) == 1 and cid == degenerate[0][1])):
        # a canonical hash is always a fine id
        _check_text("content_id", cid, MAX_CONTENT_ID, single_line=True)
        if cid != cid.strip():
            raise InvalidBankInput(f"content_id {cid!r} has leading or trailing whitespace")
    if rec.note is not None:
        _check_text("note", rec.note, MAX_NOTE)
    meta_json = None
    if rec.meta:  # an empty object is no meta
        if not isinstance(rec.meta, dict):
            raise InvalidBankInput("meta must be a JSON object")
        try:
            meta_json = json.dumps(rec.meta, ensure_ascii=False, sort_keys=True, allow_nan=False)
            meta_json.encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidBankInput(f"meta is not storable JSON: {exc}") from None
        limit = MAX_META_JSON
        if "vpdq" in rec.meta:  # a banked video keeps its whole vPDQ hash (banks/videos.py)
            from .videos import MAX_VPDQ_META_JSON, check_meta

            check_meta(rec.meta, out)
            limit = MAX_VPDQ_META_JSON
        if len(meta_json) > limit or "\x00" in meta_json or "\\u0000" in meta_json:
            raise InvalidBankInput(f"meta is larger than {limit} characters or holds NUL")
    source, added_at, enabled = rec.source, rec.added_at, rec.enabled
    if source is not None:
        _check_text("source", source, MAX_NOTE)
    if added_at is not None:
        if not isinstance(added_at, datetime):
            raise InvalidBankInput("added_at must be a date and time")
        added_at = added_at.astimezone(UTC).replace(tzinfo=None) if added_at.tzinfo else added_at
    if not isinstance(enabled, bool):
        raise InvalidBankInput("enabled must be true or false")
    return _Validated(cid, rec.note, meta_json, out, degenerate, source, added_at, enabled)


def _check_text(what: str, value: object, limit: int, *, single_line: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidBankInput(f"{what} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidBankInput(f"{what} is longer than {limit} characters")
    if _CONTROL.search(value) if single_line else "\x00" in value:
        raise InvalidBankInput(f"{what} contains a control character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidBankInput(f"{what} is not valid Unicode text") from None


def _check_bank_name(name: object) -> None:
    if not isinstance(name, str) or not _BANK_NAME.fullmatch(name):
        raise InvalidBankInput(
            f"invalid bank name {name!r}: use 1-64 characters among letters, digits, '_', '.', '-', "
            "starting with a letter or digit")


def _check_kind(kind: object) -> None:
    if kind not in BANK_KINDS:
        raise InvalidBankInput(f"invalid bank kind {kind!r}: expected one of {', '.join(BANK_KINDS)}")


def _check_threshold(t: object) -> None:
    if t is None:
        return
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= 256:
        raise InvalidBankInput(f"invalid pdq_threshold {t!r}: expected an integer 0-256 or None")


def _now() -> datetime:
    # Stored naive in UTC so that SQLite and PostgreSQL hold the same value.
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(dt: datetime | str) -> datetime:
    if isinstance(dt, str):  # a raw SQLite read; SQLAlchemy normally parses it
        dt = datetime.fromisoformat(dt)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _meta(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {"value": value}


def _bank(row: sa.Row[Any]) -> Bank:
    return Bank(
        id=int(row.id), name=row.name, description=row.description or "", enabled=bool(row.enabled),
        pdq_threshold=row.pdq_threshold, created_at=_utc(row.created_at), updated_at=_utc(row.updated_at),
        kind=row.kind or "flagged",
    )


def _empty(name: str, nbytes: int) -> LoadedSignals:
    return LoadedSignals(name, np.zeros((0, nbytes), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int32))


def _concat(name: str, parts: list[LoadedSignals]) -> LoadedSignals:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty(name, (signal_types.get(name).hex_len + 1) // 2)
    if len(parts) == 1:
        return parts[0]
    return LoadedSignals(
        name,
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.signal_ids for p in parts]),
        np.concatenate([p.bank_ids for p in parts]),
    )


def _has_assay_tables(conn: Connection) -> bool:
    return "meta" in set(sa.inspect(conn).get_table_names())


def _parse_url(raw: str) -> URL:
    try:
        url = sa.make_url(raw)
    except (sa.exc.ArgumentError, ValueError) as exc:
        shown = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", raw)
        raise StoreError(f"{shown}: not a database URL ({exc})",
                         hint="use a file path, sqlite:///path or postgresql+psycopg://user@host/db") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"{url.render_as_string(hide_password=True)}: unsupported database {backend!r}",
            hint="assay stores banks in SQLite or PostgreSQL",
        )
    if backend == "postgresql" and url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _make_engine(url: URL, shown: str) -> Engine:
    if url.get_backend_name() == "postgresql":
        args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            args["connect_timeout"] = 10  # an unreachable server fails fast
        engine = sa.create_engine(url, connect_args=args, pool_pre_ping=True)
        with engine.connect():
            pass  # fail here, with the URL, rather than on first use
        return engine
    db = url.database or ""
    memory = db in ("", ":memory:") or "mode=memory" in db
    if not memory and not db.startswith("file:"):
        parent = Path(db).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{shown}: cannot create the directory {parent}: {exc.strerror or exc}") from None
        if Path(db).is_dir():
            raise StoreError(f"{shown}: {db} is a directory, not a database file")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    elif not db.startswith("file:") and (ro := _read_only(Path(db).expanduser(), shown)) is not None:
        url = url.set(database=sqlite_file_uri(Path(db).expanduser().resolve()),
                      query={**url.query, **ro, "uri": "true"})
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's BEGIN below, not the sqlite3 module, delimit transactions,
        # so that a multi-statement import really is one transaction.
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_begin_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _read_only(path: Path, shown: str) -> dict[str, str] | None:
    """The SQLite URI parameters that read ``path`` where it cannot be written (a bank on write-blocked
    or read-only media, a read-only share or volume), else None. SQLite opens a WAL-mode
    file there only with its -wal and -shm files beside it, or as immutable: with no log
    left beside it, the file holds every committed row and is opened immutable (no locks,
    no log); with both, read-only through them. A log without its index cannot be read
    from such media: refused, rather than leave out the rows in the log."""
    if not path.is_file() or (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        return None
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    has_log = wal.is_file() and wal.stat().st_size > 0
    if not has_log:
        return {"mode": "ro", "immutable": "1"}
    if shm.is_file():
        return {"mode": "ro"}
    raise StoreError(f"{shown}: the store cannot be written here and its write-ahead log ({wal.name}) "
                     f"has no index file ({shm.name}) beside it, so the rows in the log cannot be read",
                     hint="copy the store and its -wal file to writable storage and open the copy")


def _store_error(shown: str, action: str, exc: BaseException) -> StoreError:
    orig = getattr(exc, "orig", None) or exc
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    low = reason.lower()
    hint = None
    if "readonly" in low or "read-only" in low or "read only" in low:
        hint = "the database is read-only; nothing was written. Point ASSAY_DB (or --db) at a writable store"
    elif "unable to open" in low:
        hint = "check that the file and its directory exist and are writable"
    elif "not a database" in low:
        hint = "this file is not an assay store (SQLite database); it was left untouched"
    elif "connect" in low or "timeout" in low or "refused" in low:
        hint = "is the database server running and the URL right?"
    return StoreError(f"{shown}: {action} failed: {reason}", hint=hint)
