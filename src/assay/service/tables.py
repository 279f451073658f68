"""Tables the service adds to the bank store: API keys, the audit log, import jobs.

They live in the same database as the banks (created by the Alembic migrations in
:mod:`assay.banks.migrations`), so every worker and instance sees the same keys,
audit trail and job states.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # SHA-256 of the whole key: keys are 256 random bits, so a slow password hash adds
    # nothing but latency to every request.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),  # shown in listings, never the key
    sa.Column("rate_limit", sa.Float, nullable=True),  # requests/s; NULL = service default
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime, nullable=True),
    sqlite_autoincrement=True,
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("key_id", sa.Integer, nullable=True),  # NULL: anonymous or the CLI
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("bank", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),  # JSON object: what changed, never content
    sqlite_autoincrement=True,
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("bank", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued|running|done|failed
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),  # heartbeat while running
    sa.Column("owner", sa.String(128), nullable=False),  # host:pid of the worker running it
    sa.Column("key_id", sa.Integer, nullable=True),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("records", sa.BigInteger, nullable=False, default=0),
    sa.Column("result", sa.Text, nullable=True),  # JSON
    sa.Column("error", sa.Text, nullable=True),  # JSON {code, message, problems}
)
