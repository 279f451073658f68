"""Single lookups in an SQLite store through the standard library, for one-file commands.

``assay match`` and ``assay model`` look up a handful of hashes. Through :class:`Store`
and :class:`~assay.banks.matcher.Matcher` that means importing SQLAlchemy and building
an index of every signal type first: most of a second of start-up for a few indexed
reads. :class:`SqliteReader` answers the same questions with ``sqlite3`` and the store's
own indexes (exact types by ``(signal_type, value)``; PDQ by comparing the query with
every enabled PDQ hash, while a store holds at most :data:`MAX_HAMMING` of them), and
turns hits into matches with the Matcher's own rules (:func:`~assay.banks.matcher.
matches_from_hits`), so that both give the same answer (tests/test_store_reader.py).

It reads only, from one transaction, and only a store that is already at the
migrations' head; anything else (a missing, new, older, foreign or PostgreSQL store,
or more PDQ hashes than brute force should compare) is left to :class:`Store` and the
Matcher, which create, migrate, refuse or index as they always do.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import signals as signal_types
from .migrations import HEAD

if TYPE_CHECKING:
    from ..report.schema import Match
    from .matcher import Query
    from .refs import SignalRef

# Beyond this many hashes of a Hamming type (~6 MB of PDQ), the Matcher's index (and its
# snapshots) is the better path; below it, comparing each query with every hash costs
# milliseconds.
MAX_HAMMING = 100_000
_IN_CHUNK = 500
_SCHEMA_VERSION = 1  # store.SCHEMA_VERSION (a test keeps the two equal)
# The sizes of a readable model fingerprint summary (banks/fingerprints.py: format 1,
# format 2 with its permutation-invariant half, and with the shape-keyed summary after it;
# a test keeps the two modules equal).
SUMMARY_SIZES = (5120, 10240, 11264)


class SqliteReader:
    """Read-only lookups in an SQLite assay store at the migrations' head."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, url: str) -> SqliteReader | None:
        """The reader of ``url``, or None where :class:`Store` must open it instead."""
        if not url.startswith("sqlite:///") or "?" in url or "mode=memory" in url or url.startswith("sqlite:///file:"):
            return None
        path = Path(url[len("sqlite:///"):]).expanduser()
        if str(path) in ("", ":memory:"):
            return None
        try:
            if not path.is_file() or not path.stat().st_size:
                return None  # Store refuses it, or makes the embedded default
            conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error):
            return None
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("BEGIN")  # one snapshot for every read that follows
            if not _at_head(conn):
                conn.close()
                return None
        except sqlite3.Error:
            conn.close()
            return None
        return cls(conn)

    def close(self) -> None:
        try:
            self._conn.rollback()
        finally:
            self._conn.close()

    def __enter__(self) -> SqliteReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pdq_variant_kinds(self) -> frozenset[str]:
        """As :meth:`Store.pdq_variant_kinds`."""
        from .refs import VARIANT_KINDS_KEY, VARIANTS_IN_META, variant_kinds

        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (VARIANT_KINDS_KEY,)).fetchone()
        found = None
        if row is None:
            found = self._conn.execute("SELECT 1 FROM entries WHERE meta IS NOT NULL AND CAST(meta AS TEXT) LIKE ? "
                                       "LIMIT 1", (VARIANTS_IN_META,)).fetchone()
        return variant_kinds(row[0] if row else None, found is not None)

    # -- lookups -----------------------------------------------------------------------
    def lookup(self, queries: Sequence[Query], *, threshold: int | None = None,
               include_low_quality: bool = False, variants: bool = True) -> list[Match] | None:
        """What ``Matcher.lookup`` answers for these queries, or None if a Hamming type
        holds more than MAX_HAMMING hashes (then the Matcher's index should answer)."""
        from .matcher import matches_from_hits

        found = self.hits(queries, threshold=threshold, include_low_quality=include_low_quality)
        if found is None:
            return None
        hits, refs = found
        return matches_from_hits(hits, refs, threshold, variants=variants) if hits else []

    def hits(self, queries: Sequence[Query], *, threshold: int | None = None, include_low_quality: bool = False
             ) -> tuple[list[Any], dict[int, SignalRef]] | None:
        """``Matcher.hits``: (index hits, refs), or None where the Matcher should answer."""
        from .matcher import LOW_QUALITY

        per_query: list[list[tuple[int, Query, int, int]]] = [[] for _ in queries]
        grouped: dict[str, list[int]] = {}
        for pos, q in enumerate(queries):
            st = signal_types.get(q.signal_type)
            if st.match == "hamming":
                if q.quality is not None and q.quality < LOW_QUALITY and not include_low_quality:
                    continue
                grouped.setdefault(st.name, []).append(pos)
                continue
            if st.degenerate and st.degenerate_reason(q.value):  # matches files, not this file
                continue
            value = bytes.fromhex(q.value).hex()
            rows = self._conn.execute(
                "SELECT s.id FROM signals s JOIN entries e ON e.id = s.entry_id JOIN banks b ON b.id = s.bank_id "
                "WHERE s.signal_type = ? AND s.value = ? AND e.enabled = 1 AND b.enabled = 1",
                (st.name, value)).fetchall()
            per_query[pos] = [(pos, q, int(r[0]), 0) for r in rows]
        if grouped:
            max_bank = max([t for t in self.bank_thresholds().values() if t is not None], default=0)
            for name, positions in grouped.items():
                st = signal_types.get(name)
                if self._more_than(name, MAX_HAMMING):
                    return None
                radius = threshold if threshold is not None else max(st.default_threshold, max_bank)
                for pos, sid, dist in self._hamming(st, [queries[p] for p in positions], positions, radius):
                    per_query[pos].append((pos, queries[pos], sid, dist))
        hits = [h for hs in per_query for h in hs]
        return hits, (self.resolve(sorted({sid for _, _, sid, _ in hits})) if hits else {})

    def _more_than(self, signal_type: str, n: int) -> bool:
        return self._conn.execute("SELECT 1 FROM signals WHERE signal_type = ? LIMIT 1 OFFSET ?",
                                  (signal_type, n)).fetchone() is not None

    def _hamming(self, st: signal_types.SignalType, queries: Sequence[Query], positions: Sequence[int],
                 radius: int) -> Iterable[tuple[int, int, int]]:
        """(query position, signal id, distance) of every enabled hash within ``radius``."""
        import numpy as np

        nbytes = st.bits // 8
        # Both aggregates walk the same rows in the same order (one statement).
        ids_s, values_s = self._conn.execute(
            "SELECT group_concat(s.id), group_concat(s.value, '') FROM signals s "
            "JOIN entries e ON e.id = s.entry_id JOIN banks b ON b.id = s.bank_id "
            "WHERE s.signal_type = ? AND e.enabled = 1 AND b.enabled = 1", (st.name,)).fetchone()
        if not ids_s:
            return []
        raw = [bytes.fromhex(q.value) for q in queries]
        if any(len(r) != nbytes for r in raw):
            bad = next(q.value for q, r in zip(queries, raw, strict=True) if len(r) != nbytes)
            raise ValueError(f"a {st.name} code has {nbytes} bytes, got {bad!r}")
        ids = np.array([int(i) for i in ids_s.split(",")], dtype=np.int64)
        codes = np.frombuffer(bytes.fromhex(values_s), dtype=np.uint8).reshape(len(ids), nbytes)
        popcount = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
        out = []
        for pos, r in zip(positions, raw, strict=True):
            dist = popcount[codes ^ np.frombuffer(r, dtype=np.uint8)].sum(axis=1)
            for k in np.flatnonzero(dist <= radius).tolist():
                out.append((pos, int(ids[k]), int(dist[k])))
        return out

    def resolve(self, signal_ids: Sequence[int]) -> dict[int, SignalRef]:
        """``Store.resolve``: bank, content id and note of enabled signals."""
        from .refs import (
            FULL_FILE_HASHES,
            SHORT_FILE_HASHES,
            SignalRef,
            ref_extras,
            with_file_hashes,
        )

        ids = sorted({int(i) for i in signal_ids})
        out: dict[int, SignalRef] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            part = ids[i:i + _IN_CHUNK]
            rows = self._conn.execute(
                "SELECT s.id, b.name, e.content_id, s.signal_type, s.value, e.note, b.pdq_threshold, e.id, b.kind, "
                "e.meta "
                "FROM signals s JOIN entries e ON e.id = s.entry_id JOIN banks b ON b.id = s.bank_id "
                f"WHERE s.id IN ({','.join('?' * len(part))}) AND e.enabled = 1 AND b.enabled = 1", part)
            metas: dict[int, Any] = {}  # a video's meta is parsed once for all its frames
            for r in rows:
                entry = int(r[7])
                if entry not in metas:
                    metas[entry] = json.loads(r[9]) if isinstance(r[9], str) else r[9]
                variant, frames, times = ref_extras(metas[entry], r[4])
                out[int(r[0])] = SignalRef(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], entry,
                                           r[8] or "flagged", variant, frames, times)
        entries = sorted({r.entry_id for r in out.values() if r.signal_type in SHORT_FILE_HASHES})
        found: list[Any] = []
        for i in range(0, len(entries), _IN_CHUNK):
            part = entries[i:i + _IN_CHUNK]
            found += self._conn.execute(
                f"SELECT entry_id, signal_type, value FROM signals WHERE entry_id IN ({','.join('?' * len(part))}) "
                f"AND signal_type IN ({','.join('?' * len(FULL_FILE_HASHES))})", (*part, *FULL_FILE_HASHES)).fetchall()
        return with_file_hashes(out, found) if found else out

    def bank_thresholds(self) -> dict[int, int | None]:
        """``Store.bank_thresholds``: bank id -> PDQ threshold, enabled banks only."""
        return {int(i): t for i, t in self._conn.execute("SELECT id, pdq_threshold FROM banks WHERE enabled = 1")}

    def fingerprint_count(self, banks: Sequence[str] | None) -> int:
        """How many model fingerprints lineage would compare with: those of ``banks`` (or
        of every enabled bank) whose summary has a readable size (the others are reported
        as not comparable, as ``FingerprintIndex`` does)."""
        sql = ("SELECT count(*) FROM model_fingerprints t JOIN banks b ON b.id = t.bank_id "
               f"WHERE length(t.summary) IN ({','.join('?' * len(SUMMARY_SIZES))}) AND ")
        if banks is None:
            return int(self._conn.execute(sql + "b.enabled = 1", SUMMARY_SIZES).fetchone()[0])
        names = list(banks)
        if not names:
            return 0
        return int(self._conn.execute(sql + f"b.name IN ({','.join('?' * len(names))})",
                                      (*SUMMARY_SIZES, *names)).fetchone()[0])

    def camera_count(self) -> int:
        """``CameraStore.count``: enrolled cameras in enabled banks."""
        return int(self._conn.execute("SELECT count(*) FROM camera_fingerprints t JOIN banks b ON b.id = t.bank_id "
                                      "WHERE b.enabled = 1").fetchone()[0])


def _at_head(conn: sqlite3.Connection) -> bool:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"meta", "alembic_version", "banks", "entries", "signals", "model_fingerprints"} <= tables:
        return False
    revisions = sorted(str(r[0]) for r in conn.execute("SELECT version_num FROM alembic_version"))
    if revisions != [HEAD]:
        return False
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version: Any = row[0] if row else None
    return version is None or (isinstance(version, str) and version.isdigit() and int(version) <= _SCHEMA_VERSION)
