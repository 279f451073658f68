"""Seed the store's ``pdq_variant_kinds`` meta key where it is missing.

Without the key, reading which image-variant kinds the banks hold (every refresh of a
service worker's index that brought changes) looked for one entry whose meta names
``pdq_variants`` by scanning the meta of every entry: seconds at a million entries that
all carry meta (banks fed by hash exchanges), and no answer ever cached. The scan is
done once here and its answer stored; imports keep the key up to date from then on.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KEY = "pdq_variant_kinds"
_ALL = ["crop", "region", "trimmed", "upper"]


def upgrade() -> None:
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT 1 FROM meta WHERE key = :k"), {"k": _KEY}).first() is not None:
        return
    found = conn.execute(sa.text("SELECT id FROM entries WHERE meta IS NOT NULL AND CAST(meta AS TEXT) LIKE :p "
                                 "LIMIT 1"), {"p": '%"pdq_variants"%'}).first()
    conn.execute(sa.text("INSERT INTO meta (key, value) VALUES (:k, :v)"),
                 {"k": _KEY, "v": json.dumps(_ALL if found is not None else [])})


def downgrade() -> None:
    pass
