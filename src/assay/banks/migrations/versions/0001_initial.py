"""Initial schema: the bank store tables of store.py (schema version 1) plus the
service's api_keys and audit_log.

Tables that already exist are left alone, so a store created by Store() before
Alembic (same definitions) is adopted as it is.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tables() -> list[tuple[str, list[sa.SchemaItem], dict[str, object]]]:
    auto = {"sqlite_autoincrement": True}
    return [
        ("meta", [
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        ], {}),
        ("banks", [
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(64), nullable=False, unique=True),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("enabled", sa.Boolean, nullable=False),
            sa.Column("pdq_threshold", sa.Integer, nullable=True),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
        ], auto),
        ("entries", [
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("bank_id", sa.Integer, nullable=False),
            sa.Column("content_id", sa.Text, nullable=False),
            sa.Column("note", sa.Text, nullable=True),
            sa.Column("source", sa.Text, nullable=True),
            sa.Column("added_at", sa.DateTime, nullable=False),
            sa.Column("meta", sa.JSON, nullable=True),
            sa.Column("enabled", sa.Boolean, nullable=False),
            sa.UniqueConstraint("bank_id", "content_id", name="uq_entries_bank_content"),
        ], auto),
        ("signals", [
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("entry_id", _ID, nullable=False),
            sa.Column("bank_id", sa.Integer, nullable=False),
            sa.Column("signal_type", sa.String(32), nullable=False),
            sa.Column("value", sa.Text, nullable=False),
            sa.UniqueConstraint("entry_id", "signal_type", "value", name="uq_signals_entry_type_value"),
            sa.Index("ix_signals_type_value", "signal_type", "value"),
        ], auto),
        ("changes", [
            sa.Column("seq", _ID, primary_key=True, autoincrement=True),
            sa.Column("bank_id", sa.Integer, nullable=False),
            sa.Column("signal_id", sa.BigInteger, nullable=True),
            sa.Column("signal_type", sa.String(32), nullable=True),
            sa.Column("op", sa.String(8), nullable=False),
            sa.Column("at", sa.DateTime, nullable=False),
            sa.CheckConstraint("op IN ('add', 'remove')", name="ck_changes_op"),
        ], auto),
        ("api_keys", [
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("prefix", sa.String(16), nullable=False),
            sa.Column("rate_limit", sa.Float, nullable=True),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("revoked_at", sa.DateTime, nullable=True),
        ], auto),
        ("audit_log", [
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("at", sa.DateTime, nullable=False, index=True),
            sa.Column("key_id", sa.Integer, nullable=True),
            sa.Column("actor", sa.String(128), nullable=False),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("bank", sa.String(64), nullable=True),
            sa.Column("detail", sa.Text, nullable=False),
        ], auto),
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, items, kw in _tables():
        if name not in existing:
            op.create_table(name, *items, **kw)
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).first() is None:
        bind.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '1')"))


def downgrade() -> None:
    # Dropping banks is never automatic: only the service tables go.
    op.drop_table("audit_log")
    op.drop_table("api_keys")
