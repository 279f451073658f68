"""Camera sensor fingerprints (PRNU) in banks (assay.camera.store): one row per enrolled
camera, its fingerprint compressed (float16, zlib) with the photos it came from.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "camera_fingerprints",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("bank_id", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("images", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("meta", sa.Text, nullable=True),  # JSON: photos (sha256, size), EXIF make/model/serial
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("bank_id", "name", name="uq_camera_fingerprints_bank_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_camera_fingerprints_bank_id", "camera_fingerprints", ["bank_id"])


def downgrade() -> None:
    # Enrolled cameras are never dropped automatically.
    pass
