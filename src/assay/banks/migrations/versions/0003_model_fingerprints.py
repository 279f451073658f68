"""Model weight fingerprints in banks (assay.banks.fingerprints).

Before this revision the table was created on first use by fingerprints.py with the
same definition: where it exists it is adopted as it is, rows and all.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("model_fingerprints"):
        return
    op.create_table(
        "model_fingerprints",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("bank_id", sa.Integer, nullable=False),
        sa.Column("content_id", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(64), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("summary", sa.LargeBinary, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("bank_id", "content_id", name="uq_model_fingerprints_bank_content"),
        sa.CheckConstraint("kind IN ('checkpoint', 'lora', 'base')", name="ck_model_fingerprints_kind"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_model_fingerprints_bank_id", "model_fingerprints", ["bank_id"])


def downgrade() -> None:
    # Banked fingerprints are never dropped automatically.
    pass
