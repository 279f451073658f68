"""What followers of the store need: pruning of ``changes`` and cheap refreshes.

- the watermark ``changes_pruned_seq`` in ``meta``: the highest change seq deleted by
  Store.prune_changes (an index whose cursor is below it must load again);
- ``ix_changes_at``: pruning deletes by age;
- ``ix_entries_disabled``, a partial index of the (few) disabled entries: every refresh
  that brings new signals reads them, which was a scan of every entry (~70-170 ms at 1M).
  The WHERE clauses are the forms SQLAlchemy renders for ``NOT entries.enabled``, so
  that both planners see the query implies them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    # A store created from store.py's metadata (before Alembic) may have them already.
    if "ix_changes_at" not in {ix["name"] for ix in inspector.get_indexes("changes")}:
        op.create_index("ix_changes_at", "changes", ["at"])
    if "ix_entries_disabled" not in {ix["name"] for ix in inspector.get_indexes("entries")}:
        op.create_index("ix_entries_disabled", "entries", ["id"],
                        sqlite_where=sa.text("enabled = 0"), postgresql_where=sa.text("NOT enabled"))
    if bind.execute(sa.text("SELECT value FROM meta WHERE key = 'changes_pruned_seq'")).first() is None:
        bind.execute(sa.text("INSERT INTO meta (key, value) VALUES ('changes_pruned_seq', '0')"))


def downgrade() -> None:
    # The watermark stays: the changes below it are gone whatever the revision.
    op.drop_index("ix_entries_disabled", "entries")
    op.drop_index("ix_changes_at", "changes")
