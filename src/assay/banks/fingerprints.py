"""Model fingerprints in banks: flagged checkpoints, flagged LoRAs and known bases.

Fingerprints live in the same store and the same banks as image hashes, in a
table of their own (``model_fingerprints``, created by the store's migrations like
every other table) and are written through the store's guarded transactions. Each row keeps the full serialised
fingerprint (``data``) and a small linear summary (``summary``, 5 KB) so that a
query against thousands of entries reads only summaries, picks a few candidates
(:class:`FingerprintIndex`) and loads just their full fingerprints.

A record that no longer decodes (truncated, corrupt, from a newer assay) is reported
as "not comparable" for that entry; it never stops a query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import InvalidBankInput
from ..models.fingerprint import (
    COMPONENTS,
    DEFAULT_K,
    SUMMARY_DIM,
    Fingerprint,
    FingerprintError,
    fingerprint_file,
)
from ..models.lineage import BankModel, LineageReport, NotComparable, answer, nnls
from .store import Store, banks_table

__all__ = [
    "KINDS",
    "FingerprintIndex",
    "FingerprintRecord",
    "FingerprintStore",
    "add_model",
    "query",
]

KINDS = ("checkpoint", "lora", "base")
CACHE_ENTRIES = 32  # decoded fingerprints kept per FingerprintStore (~8 MB each at SD 1.5 size)
_SUMMARY_BYTES = len(COMPONENTS) * SUMMARY_DIM * 4
# Rows written since fingerprint format 2 append the permutation-invariant summary, and
# rows written since renamed tensors are paired by content (lineage_renamed.pair_by_content) the
# shape-keyed summary after it (NaN invariants when the fingerprint has none).
_SUMMARY_BYTES_INV = 2 * _SUMMARY_BYTES
_SHAPE_BYTES = SUMMARY_DIM * 4
_SUMMARY_BYTES_SHAPE = _SUMMARY_BYTES_INV + _SHAPE_BYTES
INV_CANDIDATES = 2  # entries pre-selected on invariants alone (permuted copies)
INV_MAX = 0.25  # relative distance of invariant summaries beyond which nothing is related
SHAPE_CANDIDATES = 2  # entries pre-selected on their shape-keyed summary (renamed copies)
SHAPE_COS = 0.5  # a renamed copy or fine-tune measures ~1; unrelated models ~0


def summary_bytes(fp: Fingerprint) -> bytes:
    """The bank's pre-filter record: the linear summary, the summary of the permutation
    invariants (NaN when the fingerprint has none), then the shape-keyed summary."""
    out = fp.summary().astype("<f4").tobytes()
    inv = fp.invariant_summary()
    out += (inv.astype("<f4").tobytes() if inv is not None
            else np.full(len(COMPONENTS) * SUMMARY_DIM, np.nan, dtype="<f4").tobytes())
    return out + fp.shape_summary().astype("<f4").tobytes()

# What the code reads and writes; the table is created by migration 0003 (keep the two in step).
_meta = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
fingerprints_table = sa.Table(
    "model_fingerprints",
    _meta,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("bank_id", sa.Integer, nullable=False, index=True),
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


@dataclass(frozen=True)
class FingerprintRecord:
    id: int
    bank: str
    content_id: str
    kind: str
    role: str | None
    note: str | None
    k: int
    created_at: datetime
    size: int  # bytes of the serialised fingerprint


class FingerprintStore:
    """Fingerprint rows of a :class:`Store`, sharing its engine and its banks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[int, tuple[Any, BankModel]] = {}

    @property
    def engine(self) -> Engine:
        return self.store.engine

    def _bank_id(self, bank: str) -> int:
        return self.store.get_bank(bank).id

    # -- writing -------------------------------------------------------------------------
    def add(
        self, bank: str, content_id: str, fingerprint: Fingerprint, *, kind: str | None = None,
        role: str | None = None, note: str | None = None, replace: bool = False,
    ) -> FingerprintRecord:
        kind = kind or fingerprint.kind
        if kind not in KINDS:
            raise InvalidBankInput(f"model kind {kind!r} is not one of {', '.join(KINDS)}")
        if (kind == "lora") != (fingerprint.kind == "lora"):
            raise InvalidBankInput(
                f"{content_id!r}: a {fingerprint.kind} fingerprint cannot be banked as kind {kind!r}")
        if not content_id or len(content_id) > 512:
            raise InvalidBankInput("content id must be 1-512 characters")
        bank_id = self._bank_id(bank)
        data = fingerprint.to_bytes()
        summary = summary_bytes(fingerprint)
        row = dict(bank_id=bank_id, content_id=content_id, kind=kind, role=role, note=note,
                   k=fingerprint.k, created_at=datetime.now(UTC).replace(tzinfo=None),
                   summary=summary, data=data)
        t = fingerprints_table
        with self.store.transaction(f"adding model fingerprint {content_id!r}") as conn:
            old = conn.execute(sa.select(t.c.id).where(
                (t.c.bank_id == bank_id) & (t.c.content_id == content_id))).scalar()
            if old is not None:
                if not replace:
                    raise InvalidBankInput(
                        f"bank {bank!r} already holds a model fingerprint {content_id!r}",
                        hint="remove it first, or add it again with --replace")
                conn.execute(t.update().where(t.c.id == old).values(**row))
                new_id = int(old)
            else:
                new_id = int(conn.execute(t.insert().values(**row)).inserted_primary_key[0])
        return FingerprintRecord(new_id, bank, content_id, kind, role, note, fingerprint.k,
                                 row["created_at"], len(data))

    def add_exported(self, bank: str, content_id: str, data: bytes, *, kind: str, role: str | None,
                     note: str | None, created_at: datetime | None) -> FingerprintRecord:
        """Add a fingerprint as ``bank export`` wrote it: its serialised bytes are kept as
        they are (checked by decoding them; the summary is recomputed, not trusted) and
        so is its creation time. An entry already there with the same bytes is left alone."""
        fp = Fingerprint.from_bytes(data, where=f"exported fingerprint {content_id!r}")
        if kind not in KINDS or (kind == "lora") != (fp.kind == "lora"):
            raise InvalidBankInput(f"{content_id!r}: a {fp.kind} fingerprint cannot be banked as kind {kind!r}")
        if not content_id or len(content_id) > 512:
            raise InvalidBankInput("content id must be 1-512 characters")
        bank_id = self._bank_id(bank)
        t = fingerprints_table
        row = dict(bank_id=bank_id, content_id=content_id, kind=kind, role=role, note=note, k=fp.k,
                   created_at=created_at or datetime.now(UTC).replace(tzinfo=None),
                   summary=summary_bytes(fp), data=bytes(data))
        with self.store.transaction(f"importing model fingerprint {content_id!r}") as conn:
            old = conn.execute(sa.select(t.c.id, t.c.data).where(
                (t.c.bank_id == bank_id) & (t.c.content_id == content_id))).first()
            if old is not None:
                if bytes(old[1]) != bytes(data):
                    raise InvalidBankInput(
                        f"bank {bank!r} already holds a different model fingerprint {content_id!r}",
                        hint="remove it first (assay bank remove) to replace it")
                new_id = int(old[0])
            else:
                new_id = int(conn.execute(t.insert().values(**row)).inserted_primary_key[0])
        return FingerprintRecord(new_id, bank, content_id, kind, role, note, fp.k, row["created_at"], len(data))

    def export_rows(self, bank: str) -> Iterable[dict[str, Any]]:
        """Every fingerprint of a bank with its serialised bytes, for ``bank export``."""
        t, b = fingerprints_table, banks_table
        q = self._select(t.c.content_id, t.c.kind, t.c.role, t.c.note, t.c.created_at, t.c.data).where(
            b.c.name == bank).order_by(t.c.content_id)
        with self.store.connection("exporting model fingerprints") as conn:
            ids = [r[0] for r in conn.execute(self._select(t.c.id).where(b.c.name == bank).order_by(t.c.content_id))]
        for i in ids:  # one at a time: each can be megabytes
            with self.store.connection("exporting model fingerprints") as conn:
                r = conn.execute(q.where(t.c.id == i)).first()
            if r is not None:
                yield {"content_id": r[0], "kind": r[1], "role": r[2], "note": r[3], "created_at": r[4],
                       "data": bytes(r[5])}

    def add_many(self, bank: str, items: Iterable[tuple[str, Fingerprint]], *, kind: str | None = None) -> int:
        """Add many (content id, fingerprint) pairs in one transaction (all or nothing)."""
        bank_id = self._bank_id(bank)
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = []
        for content_id, fp in items:
            k_ = kind or fp.kind
            if k_ not in KINDS or (k_ == "lora") != (fp.kind == "lora"):
                raise InvalidBankInput(f"{content_id!r}: a {fp.kind} fingerprint cannot be banked as {k_!r}")
            if not content_id or len(content_id) > 512:
                raise InvalidBankInput("content id must be 1-512 characters")
            rows.append(dict(bank_id=bank_id, content_id=content_id, kind=k_, role=None, note=None,
                             k=fp.k, created_at=now, summary=summary_bytes(fp),
                             data=fp.to_bytes()))
        if rows:
            with self.store.transaction(f"adding {len(rows)} model fingerprints") as conn:
                conn.execute(fingerprints_table.insert(), rows)
        return len(rows)

    def remove(self, bank: str, content_id: str) -> bool:
        bank_id = self._bank_id(bank)
        t = fingerprints_table
        with self.store.transaction("removing a model fingerprint") as conn:
            res = conn.execute(t.delete().where((t.c.bank_id == bank_id) & (t.c.content_id == content_id)))
        return bool(res.rowcount)

    # -- reading -------------------------------------------------------------------------
    def _select(self, *cols: Any) -> sa.Select[Any]:
        t, b = fingerprints_table, banks_table
        return sa.select(*cols).select_from(t.join(b, t.c.bank_id == b.c.id))

    def list(self, bank: str | None = None) -> list[FingerprintRecord]:
        t, b = fingerprints_table, banks_table
        q = self._select(t.c.id, b.c.name, t.c.content_id, t.c.kind, t.c.role, t.c.note, t.c.k,
                         t.c.created_at, sa.func.length(t.c.data)).order_by(t.c.id)
        if bank is not None:
            q = q.where(b.c.name == bank)
        with self.store.connection("listing model fingerprints") as conn:
            return [FingerprintRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7], int(r[8]))
                    for r in conn.execute(q)]

    def get(self, bank: str, content_id: str) -> BankModel | None:
        """The entry with its decoded fingerprint; FingerprintError if it is corrupt."""
        t, b = fingerprints_table, banks_table
        q = self._select(b.c.name, t.c.content_id, t.c.kind, t.c.role, t.c.data).where(
            (b.c.name == bank) & (t.c.content_id == content_id))
        with self.store.connection("reading a model fingerprint") as conn:
            r = conn.execute(q).first()
        if r is None:
            return None
        fp = Fingerprint.from_bytes(r[4], where=f"bank {r[0]!r} entry {r[1]!r}")
        return BankModel(r[0], r[1], r[2], fp, r[3])

    def load(self, ids: Sequence[int]) -> tuple[list[BankModel], list[NotComparable]]:
        """Full fingerprints of the given rows; undecodable rows come back as reasons.
        Decoded fingerprints are kept (a few dozen, keyed by row id and write time) so
        that a scan asking about many files decodes each candidate once."""
        t, b = fingerprints_table, banks_table
        good: list[BankModel] = []
        bad: list[NotComparable] = []
        if not ids:
            return good, bad
        want = [int(i) for i in ids]
        with self.store.connection("reading model fingerprints") as conn:
            stamps = dict(conn.execute(sa.select(t.c.id, t.c.created_at).where(t.c.id.in_(want))).all())
            missing = [i for i in want if i in stamps and self._cache.get(i, (None,))[0] != stamps[i]]
            rows = conn.execute(self._select(t.c.id, b.c.name, t.c.content_id, t.c.kind, t.c.role,
                                             t.c.data).where(t.c.id.in_(missing))).all() if missing else []
        for rid, name, cid, kind, role, data in rows:
            try:
                fp = Fingerprint.from_bytes(data, where=f"bank {name!r} entry {cid!r}")
            except FingerprintError as exc:
                bad.append(NotComparable(f"{name}/{cid}", f"stored fingerprint unreadable: {exc}"))
                self._cache.pop(rid, None)
                continue
            self._cache[rid] = (stamps[rid], BankModel(name, cid, kind, fp, role))
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
        broken = {n.entry for n in bad}
        for i in want:
            hit = self._cache.get(i)
            if hit is not None and hit[0] == stamps.get(i) and hit[1].label not in broken:
                good.append(hit[1])
        return good, bad

    def index(self, banks: Iterable[str] | None = None) -> FingerprintIndex:
        """Summaries of every fingerprint in the given (default: all enabled) banks."""
        t, b = fingerprints_table, banks_table
        q = self._select(t.c.id, b.c.name, t.c.content_id, t.c.kind, t.c.k, t.c.summary)
        if banks is None:
            q = q.where(b.c.enabled.is_(True))
        else:
            q = q.where(b.c.name.in_(list(banks)))
        with self.store.connection("loading model fingerprint summaries") as conn:
            rows = conn.execute(q.order_by(t.c.id)).all()
        return FingerprintIndex.from_rows(rows)


@dataclass
class FingerprintIndex:
    """Summary vectors of many fingerprints, for choosing the few worth a full look."""

    ids: np.ndarray  # (N,) row ids
    labels: list[str]
    kinds: np.ndarray  # (N,) str
    ks: np.ndarray  # (N,) sketch sizes
    summaries: np.ndarray  # (N, len(COMPONENTS), SUMMARY_DIM) float32
    broken: list[NotComparable]
    _norms: np.ndarray | None = None
    # (N, len(COMPONENTS) * SUMMARY_DIM) invariant summaries; NaN rows for format-1 entries
    invariants: np.ndarray | None = None
    _inv_sq: np.ndarray | None = None  # squared norms of the invariant rows, float64
    # (N, SUMMARY_DIM) shape-keyed summaries (renamed copies); NaN rows for older entries
    shapes: np.ndarray | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> FingerprintIndex:
        sizes = (_SUMMARY_BYTES, _SUMMARY_BYTES_INV, _SUMMARY_BYTES_SHAPE)
        ok = [r for r in rows if r[5] is not None and len(r[5]) in sizes]
        broken = [NotComparable(f"{r[1]}/{r[2]}", "stored fingerprint summary is truncated or corrupt")
                  for r in rows if r[5] is None or len(r[5]) not in sizes]
        summaries = (np.frombuffer(b"".join(bytes(r[5][:_SUMMARY_BYTES]) for r in ok), dtype="<f4")
                     .reshape(len(ok), len(COMPONENTS), SUMMARY_DIM)) if ok else np.zeros(
                         (0, len(COMPONENTS), SUMMARY_DIM), np.float32)
        nan = np.full(len(COMPONENTS) * SUMMARY_DIM, np.nan, dtype="<f4").tobytes()
        invariants = (np.frombuffer(b"".join(bytes(r[5][_SUMMARY_BYTES:_SUMMARY_BYTES_INV]) or nan for r in ok),
                                    dtype="<f4").reshape(len(ok), -1)
                      ) if ok else np.zeros((0, len(COMPONENTS) * SUMMARY_DIM), np.float32)
        no_shape = np.full(SUMMARY_DIM, np.nan, dtype="<f4").tobytes()  # rows banked before
        shapes = (np.frombuffer(b"".join(bytes(r[5][_SUMMARY_BYTES_INV:]) or no_shape for r in ok),
                                dtype="<f4").reshape(len(ok), SUMMARY_DIM)
                  ) if ok else np.zeros((0, SUMMARY_DIM), np.float32)
        return cls(
            np.array([int(r[0]) for r in ok], dtype=np.int64), [f"{r[1]}/{r[2]}" for r in ok],
            np.array([r[3] for r in ok], dtype=object), np.array([int(r[4]) for r in ok]),
            summaries, broken, invariants=invariants, shapes=shapes,
        )

    def _shape_candidates(self, suspect: Fingerprint, models: np.ndarray, taken: list[int]) -> list[int]:
        """Models whose shape-keyed summary (tensor names left out) is nearest the suspect's:
        where a copy with renamed tensors hides from the name-keyed summaries. Related or
        not is decided later, by pairing the tensors (lineage_renamed.pair_by_content)."""
        if self.shapes is None or not len(models):
            return []
        s = suspect.shape_summary().astype(np.float64)
        sn = np.linalg.norm(s)
        if sn == 0:
            return []
        rows = self.shapes[models].astype(np.float64)
        with np.errstate(invalid="ignore"):
            cos = rows @ s / np.maximum(np.linalg.norm(rows, axis=1) * sn, 1e-300)
        cos[~np.isfinite(cos)] = -np.inf  # rows banked before the shape summary
        order = np.argsort(-cos, kind="stable")
        out = [int(models[i]) for i in order if cos[i] >= SHAPE_COS and int(models[i]) not in taken]
        return out[:SHAPE_CANDIDATES]

    def _invariant_candidates(self, suspect: Fingerprint, models: np.ndarray, taken: list[int]) -> list[int]:
        """Models whose permutation invariants are nearest the suspect's: where a permuted
        copy hides from the linear summary. Related or not is decided later, after alignment."""
        inv = suspect.invariant_summary()
        if inv is None or self.invariants is None or not len(models):
            return []
        s = inv.ravel().astype(np.float64)
        # A float32 pass over the whole index (one matrix-vector product, squared norms
        # computed once per index) keeps the few within reach of INV_MAX; only those get
        # the exact float64 distance. Float32 error is ~1e-6 of rel**2, far inside the margin.
        if self._inv_sq is None or len(self._inv_sq) != len(self):
            with np.errstate(invalid="ignore"):
                self._inv_sq = np.einsum("ij,ij->i", self.invariants, self.invariants, dtype=np.float64)
        sq = self._inv_sq[models]
        dots = (self.invariants @ s.astype(np.float32))[models].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            approx = (sq + float(s @ s) - 2.0 * dots) / np.maximum(sq, 1e-300)
        near = np.flatnonzero(approx <= (INV_MAX + 0.05) ** 2)  # NaN (format-1 rows) is never near
        cand = self.invariants[models[near]].astype(np.float64)
        with np.errstate(invalid="ignore"):
            rel = np.linalg.norm(cand - s, axis=1) / np.maximum(np.linalg.norm(cand, axis=1), 1e-300)
        rel[~np.isfinite(rel)] = np.inf
        order = np.argsort(rel, kind="stable")
        out = [int(models[near[i]]) for i in order if rel[i] <= INV_MAX and int(models[near[i]]) not in taken]
        return out[:INV_CANDIDATES]

    def __len__(self) -> int:
        return len(self.ids)

    def candidates(self, suspect: Fingerprint, limit: int = 6) -> list[int]:
        """Row ids of the models and LoRAs worth comparing in full with ``suspect``."""
        if not len(self):
            return []
        s = suspect.summary()
        same_k = self.ks == suspect.k
        flat = self.summaries.reshape(len(self), -1)
        sn = np.linalg.norm(s)
        if self._norms is None or len(self._norms) != len(self):
            self._norms = np.linalg.norm(flat, axis=1)
        norms = self._norms
        cos = flat @ s.ravel() / np.maximum(norms * sn, 1e-300)
        if (outliers := suspect.scale_outliers()) and np.linalg.norm(robust := suspect.summary(outliers)) > 0:
            # A copy padded with a tensor of huge values (it loads and runs the same) hides
            # from the summary: the entries are also looked for without such tensors, and
            # the merge weights below measured on that summary.
            cos = np.maximum(cos, flat @ robust.ravel() / np.maximum(norms * np.linalg.norm(robust), 1e-300))
            s = robust
        is_lora = self.kinds == "lora"
        models = np.flatnonzero(same_k & (is_lora == (suspect.kind == "lora")))
        pool = [int(i) for i in models[np.argsort(-cos[models])][:4 * limit] if cos[i] > 0.05]
        if not pool:
            picked = self._invariant_candidates(suspect, models, [])
            picked += self._shape_candidates(suspect, models, picked)
            return [int(self.ids[i]) for i in picked]
        # NNLS on the summaries picks a sparse set that explains the suspect (merge
        # ingredients), where near-duplicates of one model would crowd a top-k list.
        cols = flat[pool].astype(np.float64)
        w = nnls(cols @ cols.T, cols @ s.ravel())
        picked = pool[:3] + [pool[i] for i in np.argsort(-w) if w[i] > 1e-6]
        picked = list(dict.fromkeys(picked))[:limit]
        # Whether a suspect carries a flagged checkpoint's change is measured from the
        # checkpoint's base: the closest banked base comes along (lineage._carried_changes).
        bases = [i for i in pool if self.kinds[i] == "base"]
        if bases and bases[0] not in picked:
            picked.append(bases[0])
        picked += self._invariant_candidates(suspect, models, picked)
        picked += self._shape_candidates(suspect, models, picked)
        loras = np.flatnonzero(same_k & is_lora)
        if suspect.kind != "lora" and len(loras):
            # What the chosen models do not explain is where a merged LoRA would show.
            resid = s.ravel() - w @ cols
            rn = np.linalg.norm(resid)
            lcos = np.abs(flat[loras] @ resid) / np.maximum(norms[loras] * rn, 1e-300)
            picked += [int(i) for i in loras[np.argsort(-lcos)][: max(2, limit - 2)]]
        return [int(self.ids[i]) for i in picked]


def model_fingerprint(path: Path | str, kind: str = "checkpoint", *, k: int = DEFAULT_K) -> Fingerprint:
    """The fingerprint of the model or LoRA file at ``path``, to be banked as ``kind``."""
    fp = fingerprint_file(Path(path), k=k, kind="lora" if kind == "lora" else kind)
    if kind != "lora" and fp.kind == "lora":
        raise InvalidBankInput(f"{path}: this is a LoRA file; add it with kind 'lora'")
    if kind == "lora" and fp.kind != "lora":
        raise InvalidBankInput(f"{path}: not a LoRA file, cannot be added with kind 'lora'")
    return fp


def add_model(
    store: Store, bank: str, content_id: str, path: Path | str, kind: str = "checkpoint", *,
    role: str | None = None, note: str | None = None, k: int = DEFAULT_K, replace: bool = False,
    fingerprint: Fingerprint | None = None,
) -> FingerprintRecord:
    """Fingerprint the model or LoRA file at ``path`` (unless ``fingerprint`` is that
    already) and add it to ``bank``."""
    fp = fingerprint if fingerprint is not None else model_fingerprint(path, kind, k=k)
    return FingerprintStore(store).add(bank, content_id, fp, kind=kind, role=role, note=note,
                                       replace=replace)


def base_banked(store: Store, fingerprint: Fingerprint, label: str) -> bool:
    """Whether some banked base (kind base, in any bank) is the checkpoint's own base: it
    derives from it or is a copy of it (the entry ``label`` itself left out). Without one,
    a model trained further from the checkpoint cannot be told from a sibling (another
    fine-tune of the same base) and is listed as related, not matched."""
    rep = query(store, fingerprint)
    return any(f.kind == "base" and f.entry != label for f in (*rep.same, *rep.derived))


def query(
    store: Store | FingerprintStore, suspect: Fingerprint, banks: Iterable[str] | None = None, *,
    index: FingerprintIndex | None = None, limit: int = 6, tensors: Mapping[str, np.ndarray] | None = None,
) -> LineageReport:
    """Answer the lineage questions for ``suspect`` against the banks' fingerprints.
    For many queries pass one FingerprintStore (its decoded-fingerprint cache) and a
    prebuilt ``index`` (no reloading of summaries). With the suspect's ``tensors``
    (:func:`assay.models.alignment.open_suspect`) permuted copies are found too."""
    fs = store if isinstance(store, FingerprintStore) else FingerprintStore(store)
    idx = index if index is not None else fs.index(banks)
    ids = idx.candidates(suspect, limit=limit)
    entries, broken = fs.load(ids)
    report = answer(suspect, entries, tensors)
    report.not_comparable[:0] = idx.broken + broken
    other_k = int(np.count_nonzero(idx.ks != suspect.k))
    if other_k:
        report.notes.append(f"{other_k} bank fingerprints use another sketch size and were skipped")
    return report
