"""Review decisions on matches (``assay review``, ``/v1/reviews``): one row per match
(record id: file SHA-256, bank, content id, signal type and value; see
assay.review.ids) with its current decision, who made it, when and why. Every
decision is also an audit_log row (action ``review.set``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("record_id", sa.String(16), primary_key=True),
        sa.Column("file_sha256", sa.String(64), nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("scan_id", sa.String(64), nullable=True),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("content_id", sa.Text, nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("distance", sa.Integer, nullable=True),
        sa.Column("strength", sa.String(32), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("reviewer", sa.String(128), nullable=True),
        sa.Column("decided_at", sa.DateTime, nullable=True),
        sa.Column("registered_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_reviews_bank_decision", "reviews", ["bank", "decision"])


def downgrade() -> None:
    op.drop_index("ix_reviews_bank_decision", table_name="reviews")
    op.drop_table("reviews")
