"""Bank kinds: ``banks.kind`` is ``flagged`` (a hit is a finding, every bank so far) or
``known-good`` (a hash set of known files such as NSRL: an exact hit marks the file
known-good and keeps it out of the findings).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store created from store.py's metadata (before Alembic) may have the column already.
    if "kind" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("banks")}:
        return
    # A plain ADD COLUMN with a constant default: no table rebuild on either database,
    # and every existing bank becomes "flagged", which is what it meant until now.
    op.add_column("banks", sa.Column("kind", sa.String(16), nullable=False, server_default="flagged"))


def downgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.drop_column("kind")
