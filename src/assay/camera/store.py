"""Camera fingerprints in banks: the table ``camera_fingerprints`` (created by migration
0007), written through the store's guarded transactions like every bank row.

A fingerprint is stored as float16 (its values are ~1e-2, far inside float16's precision
for a correlation) compressed with zlib, behind a small header: magic, format, height,
width. A row that does not decode is reported as not comparable, never a crash.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..banks.store import Store, banks_table
from ..errors import InputError, InvalidBankInput
from .prnu import Fingerprint

_MAGIC = b"APRN"
_FORMAT = 1
_HEADER = struct.Struct("<4sBII")
MAX_NAME = 256

_meta = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
cameras_table = sa.Table(  # what the code reads and writes; migration 0007 creates it
    "camera_fingerprints",
    _meta,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("bank_id", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("images", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("meta", sa.Text, nullable=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def encode(fp: Fingerprint) -> bytes:
    h, w = fp.shape
    body = np.ascontiguousarray(fp.k, dtype="<f2").tobytes()
    return _HEADER.pack(_MAGIC, _FORMAT, h, w) + zlib.compress(body, 6)


def decode(data: bytes, images: int, where: str) -> Fingerprint:
    try:
        magic, fmt, h, w = _HEADER.unpack_from(data)
        if magic != _MAGIC or fmt != _FORMAT:
            raise ValueError("not a camera fingerprint of a format this assay reads")
        body = zlib.decompress(data[_HEADER.size:], bufsize=h * w * 2)
        if len(body) != h * w * 2:
            raise ValueError(f"{len(body)} bytes for {w}x{h} values")
        k = np.frombuffer(body, dtype="<f2").reshape(h, w).astype(np.float32)
    except (struct.error, zlib.error, ValueError) as exc:
        raise InputError(where, f"stored camera fingerprint does not decode: {exc}") from None
    return Fingerprint(k, images)


@dataclass
class CameraRecord:
    id: int
    bank: str
    name: str
    height: int
    width: int
    images: int
    created_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)
    size: int = 0  # bytes stored


class CameraStore:
    """Camera fingerprint rows of a :class:`Store`, in its banks."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, bank: str, name: str, fp: Fingerprint, meta: dict[str, Any], *,
            replace: bool = False) -> CameraRecord:
        if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            raise InvalidBankInput(f"camera name must be 1-{MAX_NAME} printable characters")
        bank_id = self.store.get_bank(bank).id
        data = encode(fp)
        h, w = fp.shape
        row = dict(bank_id=bank_id, name=name, height=h, width=w, images=fp.images,
                   created_at=datetime.now(UTC).replace(tzinfo=None), meta=json.dumps(meta, sort_keys=True),
                   data=data)
        t = cameras_table
        with self.store.transaction(f"enrolling camera {name!r}") as conn:
            old = conn.execute(sa.select(t.c.id).where((t.c.bank_id == bank_id) & (t.c.name == name))).scalar()
            if old is not None:
                if not replace:
                    raise InvalidBankInput(f"bank {bank!r} already holds a camera named {name!r}",
                                           hint="pick another name, or enrol again with --replace")
                conn.execute(t.update().where(t.c.id == old).values(**row))
                new_id = int(old)
            else:
                new_id = int(conn.execute(t.insert().values(**row)).inserted_primary_key[0])
        return CameraRecord(new_id, bank, name, h, w, fp.images, row["created_at"], meta, len(data))

    def list(self, bank: str | None = None, name: str | None = None, *, enabled_only: bool = True) -> list[CameraRecord]:
        t, b = cameras_table, banks_table
        q = sa.select(t.c.id, b.c.name, t.c.name, t.c.height, t.c.width, t.c.images, t.c.created_at, t.c.meta,
                      sa.func.length(t.c.data)).join(b, b.c.id == t.c.bank_id)
        if bank is not None:
            self.store.get_bank(bank)  # a typo names the known banks
            q = q.where(b.c.name == bank)
        elif enabled_only:
            q = q.where(b.c.enabled.is_(True))
        if name is not None:
            q = q.where(t.c.name == name)
        with self.store.connection("listing cameras") as conn:
            rows = conn.execute(q.order_by(b.c.name, t.c.name)).all()
        return [CameraRecord(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5]), r[6],
                             json.loads(r[7]) if r[7] else {}, int(r[8] or 0)) for r in rows]

    def count(self) -> int:
        """Cameras in enabled banks (what provenance would compare images with)."""
        t, b = cameras_table, banks_table
        q = sa.select(sa.func.count()).select_from(t.join(b, b.c.id == t.c.bank_id)).where(b.c.enabled.is_(True))
        with self.store.connection("counting cameras") as conn:
            return int(conn.execute(q).scalar() or 0)

    def load(self, rec: CameraRecord) -> Fingerprint:
        t = cameras_table
        with self.store.connection("reading a camera fingerprint") as conn:
            data = conn.execute(sa.select(t.c.data).where(t.c.id == rec.id)).scalar()
        if data is None:
            raise InputError(f"{rec.bank}/{rec.name}", "camera removed while it was read")
        return decode(bytes(data), rec.images, f"{rec.bank}/{rec.name}")

    def remove(self, bank: str, name: str) -> bool:
        bank_id = self.store.get_bank(bank).id
        t = cameras_table
        with self.store.transaction("removing a camera") as conn:
            return bool(conn.execute(t.delete().where((t.c.bank_id == bank_id) & (t.c.name == name))).rowcount)
