"""Matching signals against every enabled bank, through in-memory indexes.

The Matcher loads each signal type's values from the store once into an index
(Hamming multi-index for PDQ-like types, exact for the rest) and then follows
the store incrementally: entries added or removed since the last refresh are
applied to the index, never a rebuild from scratch (unless the store pruned the
changes the index would need: then it loads again). Hamming indexes of large
stores are snapshotted on disk (memory-mapped), so a CLI scan against a bank of
millions of hashes starts in seconds. Bank metadata (names, content ids, notes,
thresholds) is looked up only for the few index hits, never on the hot path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .. import signals as signal_types
from ..config import data_dir
from ..errors import ChangesPruned
from ..report.schema import FileRecord, Match, SignalValue

if TYPE_CHECKING:  # numpy, the index and the store (SQLAlchemy) load when a Matcher does
    from .index import ExactIndex, HammingIndex
    from .refs import SignalRef
    from .store import Changes, Store

LOW_QUALITY = 50
SNAPSHOT_MIN = 200_000  # below this many hashes a reload from the store is cheap enough


class Query(NamedTuple):
    """One hash to look up (a NamedTuple: a batch makes one per signal, and a frozen
    dataclass took ~1.8 us to make, a tuple ~0.3)."""

    signal_type: str
    value: str
    variant: str | None = None
    quality: int | None = None
    mode: str | None = None  # how the value was obtained, e.g. "named-by-metadata"


Hit = tuple[int, Query, int, int]  # query position, query, signal id, distance
NAMED_BY_METADATA = "named-by-metadata"


def skip_reason(q: Query, include_low_quality: bool = False) -> str | None:
    """Why a query is not looked up at all, or None: a PDQ of low quality (unless asked
    for) or a value that says nothing about its file (a degenerate AutoV1)."""
    st = signal_types.get(q.signal_type)
    if q.quality is not None and st.match == "hamming" and q.quality < LOW_QUALITY and not include_low_quality:
        return f"low quality ({q.quality} < {LOW_QUALITY}); pass --include-low-quality to match it"
    why = st.degenerate_reason(q.value) if st.degenerate else None
    if why is not None:
        return f"degenerate {st.name} value: {why}"
    return None


def split_known_good(matches: list[Match]) -> tuple[list[Match], list[Match]]:
    """(findings, known-good hits). A hit in a known-good bank is never a finding; only
    an exact one marks the file known-good (a short hash or a near-duplicate image says
    too little to clear a file)."""
    findings = [m for m in matches if m.bank_kind != "known-good"]
    known = [m for m in matches if m.bank_kind == "known-good" and m.strength == "exact"]
    return findings, known


def strength_of(st: signal_types.SignalType, mode: str | None, *variants: str | None) -> str:
    # A hash read from an image's metadata only says the image NAMES a file with that
    # hash, whatever the hash's own strength.
    if mode == NAMED_BY_METADATA:
        return NAMED_BY_METADATA
    if st.strength == "perceptual" and any(is_partial(v) for v in variants):
        return PARTIAL
    return st.strength


PARTIAL = "perceptual-partial"
# Variants that stand for the whole picture: the 8 rotations/flips, the content inside
# uniform borders, a 16-bit greyscale image's samples scaled to 8 bits, the picture turned
# by its EXIF orientation (or back), a TGA's rows the other way up, its negative. Every other variant
# (crop-N, upper-85, uncaptioned ...) is a part of the picture: a match through it says
# less (media/crops.py).
_WHOLE = frozenset({"original", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus", "flipminus",
                    "mirror", "mirrored", "trimmed", "trimmed-even", "scaled", "displayed", "stored",
                    "rows-flipped", "rotated-90", "rotated-180", "rotated-270", "inverted",
                    "flipped-vertical", "flipped-diagonal", "flipped-antidiagonal"})


#: The rotations/flips of ``--dihedral``: asked for by name, always written in a record.
DIHEDRAL = frozenset({"original", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus", "flipminus"})


def is_geometry_variant(variant: str | None) -> bool:
    """Whether a PDQ variant is one of the extra queries for evasive rewrites (mirror,
    borders, crops, caption bands, anchored regions: media/crops.py), not the image's own
    hash or a rotation/flip asked for with ``--dihedral``."""
    return bool(variant) and variant not in DIHEDRAL


def drop_unmatched_variants(rec: FileRecord, *, keep_all: bool = False) -> None:
    """Leave in ``rec.signals`` only the geometry-variant PDQ hashes that matched something
    (an image has ~50 of them, ~8 KB of JSON, and almost all match nothing); the match's
    ``query`` indexes follow. ``rec.image.variant_hashes`` says how many were computed;
    ``keep_all`` (``scan --all-variants``) keeps them all. A video's mirrored frames
    (``rec.video.vpdq_mirrored``, as many hashes as its own vPDQ) likewise, and each of its
    turned views (``rec.video.vpdq_turned``)."""
    rec.signals, computed = keep_matched_variants(rec.signals, [*rec.matches, *(rec.known_good or ())], keep_all)
    if rec.image is not None and computed:
        rec.image.variant_hashes = computed
    v = rec.video
    if v is None or keep_all:
        return
    through = {m.query_variant for m in [*rec.matches, *(rec.known_good or ())]}
    if v.vpdq_mirrored and "mirrored" not in through:
        v.vpdq_mirrored = None
    if v.vpdq_turned:
        v.vpdq_turned = {view: fs for view, fs in v.vpdq_turned.items() if view in through} or None


def keep_matched_variants(signals: list[SignalValue], matches: Sequence[Match],
                          keep_all: bool = False) -> tuple[list[SignalValue], int]:
    """(the signals without the geometry-variant PDQ hashes no match came from, how many
    such hashes there were); each match's ``query`` (an index into ``signals``) is
    updated to the kept list."""
    used = {m.query for m in matches if m.query is not None}
    kept: list[SignalValue] = []
    remap: dict[int, int] = {}
    computed = 0
    for i, s in enumerate(signals):
        if s.type == "pdq" and is_geometry_variant(s.variant):
            computed += 1
            if i not in used and not keep_all:
                continue
        remap[i] = len(kept)
        kept.append(s)
    if len(kept) != len(signals):
        for m in matches:
            if m.query is not None:
                m.query = remap.get(m.query)
    return kept, computed


def is_partial(variant: str | None) -> bool:
    """Whether a PDQ variant hashes only part of the picture (a later frame of an
    animation, ``frame-N``, and the picture inside margins of one colour,
    ``trimmed-top-left``, are whole pictures; the picture between two blurred bars,
    ``trimmed-blur``, is not: the bars may be a photo's own calm parts)."""
    if not variant:
        return False
    return any((part not in _WHOLE and not part.startswith(("frame-", "trimmed-"))) or part == "trimmed-blur"
               for part in variant.split("+"))


class Matcher:
    def __init__(self, store: Store, *, snapshot_dir: Path | None = None, snapshots: bool = True,
                 private_max_bytes: int = 0) -> None:
        """``private_max_bytes``: a Hamming index mapped from its snapshot and at most this
        big is copied into the process's own memory, with huge pages (see
        ``HammingIndex.to_private_memory``); 0 keeps every one mapped and shared."""
        self.store = store
        self.private_max_bytes = private_max_bytes
        self._snapshots = snapshots
        self._snapshot_root = snapshot_dir or (data_dir() / "index" / _store_key(store))
        self._hamming: dict[str, HammingIndex] = {}
        self._exact: dict[str, ExactIndex] = {}
        self._last_signal_id = 0
        self._last_seq = 0
        self._loaded = False

    # -- loading and following the store ---------------------------------------------
    def load(self) -> None:
        """Build every index from the store (or its snapshot), then catch up."""
        from .index import ExactIndex
        self._last_signal_id = self.store.max_signal_id()
        self._last_seq = self.store.max_change_seq()
        for st in signal_types.all_types():
            if st.match == "hamming":
                self._hamming[st.name] = self._load_hamming(st)
            else:
                loaded = self.store.load_signals(st.name, up_to_signal_id=self._last_signal_id)
                idx = ExactIndex(st.hex_len // 2)
                if len(loaded.signal_ids):
                    idx.add(loaded.values, loaded.signal_ids)
                self._exact[st.name] = idx
        self._loaded = True

    def _load_hamming(self, st: signal_types.SignalType) -> HammingIndex:
        from .index import HammingIndex
        snap = self._snapshot_root / st.name
        state_file = snap / "state.json"
        if self._snapshots and state_file.is_file():
            try:
                state = json.loads(state_file.read_text())
                idx = HammingIndex.load(snap / "index")
                # ChangesPruned (a snapshot older than the store's retention of changes)
                # lands below like any other stale snapshot: rebuilt.
                changes = self.store.changes_since(state["last_signal_id"], state["last_seq"])
                if not changes.banks_changed and changes.last_signal_id <= self._last_signal_id:
                    self._apply_to(idx, st.name, changes)
                    if self._private(idx):
                        try:
                            idx.to_private_memory()
                        except (MemoryError, RuntimeError):  # keep serving the mapped snapshot
                            pass
                    return idx
            except Exception:  # a stale or damaged snapshot is only a cache: rebuild
                pass
        loaded = self.store.load_signals(st.name, up_to_signal_id=self._last_signal_id)
        idx = HammingIndex(bits=st.bits)
        if len(loaded.signal_ids):
            idx.add(loaded.values, loaded.signal_ids)
        if self._snapshots and len(idx) >= SNAPSHOT_MIN and self._write_snapshot(st.name, idx) \
                and not self._private(idx):
            # Serve from the mapped snapshot rather than the private build: every process
            # that maps it shares one copy of the pages (memory, and caches) and the
            # private arrays are freed.
            try:
                mapped = HammingIndex.load(self._snapshot_root / st.name / "index")
            except Exception:  # the snapshot is only a cache: keep the built index
                return idx
            if len(mapped) == len(idx):
                return mapped
        return idx

    def _private(self, idx: HammingIndex) -> bool:
        """Whether this process keeps its own copy of the index (``private_max_bytes``)."""
        return idx.memory_bytes() <= self.private_max_bytes

    def _write_snapshot(self, name: str, idx: HammingIndex) -> bool:
        snap = self._snapshot_root / name
        tmp = snap.with_name(name + ".tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            idx.save(tmp / "index")
            state = {"last_signal_id": self._last_signal_id, "last_seq": self._last_seq}
            (tmp / "state.json").write_text(json.dumps(state))
            shutil.rmtree(snap, ignore_errors=True)
            tmp.rename(snap)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # no snapshot; next start rebuilds
            return False
        return True

    def _apply_to(self, idx: HammingIndex | ExactIndex, signal_type: str, changes: Changes) -> None:
        added = changes.added.get(signal_type)
        if added is not None and len(added.signal_ids):
            idx.add(added.values, added.signal_ids)
        if len(changes.removed_signal_ids):
            idx.remove(changes.removed_signal_ids)

    def refresh(self) -> bool:
        """Apply what changed in the store since the last load/refresh. Returns True
        if anything changed. A bank enabled or disabled means a full reload, and so
        does a cursor older than the changes the store still keeps."""
        if not self._loaded:
            self.load()
            return True
        try:
            changes = self.store.changes_since(self._last_signal_id, self._last_seq)
        except ChangesPruned:  # removals since the cursor may be lost: only a load is exact
            self.load()
            return True
        if changes.banks_changed:
            self.load()
            return True
        changed = bool(len(changes.removed_signal_ids)) or any(
            len(v.signal_ids) for v in changes.added.values()
        )
        for name, idx in [*self._hamming.items(), *self._exact.items()]:
            self._apply_to(idx, name, changes)
        self._last_signal_id = changes.last_signal_id
        self._last_seq = changes.last_seq
        return changed

    # -- lookups ---------------------------------------------------------------------
    def lookup(
        self,
        queries: Sequence[Query],
        *,
        threshold: int | None = None,
        include_low_quality: bool = False,
        variants: bool = True,
    ) -> list[Match]:
        """Match queries against every enabled bank.

        ``threshold`` (Hamming types) overrides each bank's own threshold; without
        it a bank's ``pdq_threshold`` applies, else the signal type's default (31).
        ``variants=False`` is the strict mode (``--no-variants``): hashes banked for a
        variant of an image (trimmed, crops ...) are not matched either.
        """
        if not self._loaded:
            self.load()
        hits = self._search(queries, threshold, include_low_quality)
        if not hits:
            return []
        refs = self.store.resolve(sorted({sid for _, _, sid, _ in hits}))
        return matches_from_hits(hits, refs, threshold, variants=variants)

    def _search(
        self, queries: Sequence[Query], threshold: int | None, include_low_quality: bool
    ) -> list[Hit]:
        thresholds = self.store.bank_thresholds()
        max_bank = max([t for t in thresholds.values() if t is not None], default=0)
        return search_indexes(self._hamming, self._exact, max_bank, queries, threshold, include_low_quality)

    def match_signals(
        self,
        signals: Iterable[SignalValue],
        *,
        threshold: int | None = None,
        include_low_quality: bool = False,
        variants: bool = True,
    ) -> list[Match]:
        """Match the signals of ONE subject: each bank entry is reported once per signal
        type, by its strongest match (see ``best_per_entry``)."""
        queries = [Query(s.type, s.value, s.variant, s.quality, s.mode) for s in signals]
        hits, refs = self.hits(queries, threshold=threshold, include_low_quality=include_low_quality)
        return best_per_entry(matches_from_hits(refuted_removed(hits, refs, queries), refs, threshold,
                                                variants=variants), regions_in(queries))

    def hits(self, queries: Sequence[Query], *, threshold: int | None = None,
             include_low_quality: bool = False) -> tuple[list[Hit], dict[int, SignalRef]]:
        """Index hits of ``queries`` and what their signal ids stand for (``Store.resolve``)."""
        if not self._loaded:
            self.load()
        hits = self._search(queries, threshold, include_low_quality)
        return hits, (self.store.resolve(sorted({sid for _, _, sid, _ in hits})) if hits else {})

    def match_subject(
        self,
        signals: Iterable[SignalValue],
        frames: Sequence[object] = (),
        trimmed: Sequence[object] | None = (),
        *,
        displayed: Sequence[object] | None = (),
        mirrored: Sequence[object] | None = (),
        turned: Mapping[str, Sequence[object]] | None = None,
        threshold: int | None = None,
        include_low_quality: bool = False,
        variants: bool = True,
    ) -> list[Match]:
        """``match_signals`` for a subject that may be a video: its vPDQ ``frames`` are
        looked up in the same batch and matched per banked video by Meta's rule."""
        queries, n, kept = subject_queries(signals, frames, trimmed, displayed, mirrored, turned)
        hits, refs = self.hits(queries, threshold=threshold, include_low_quality=include_low_quality)
        return subject_matches(queries, n, kept, hits, refs, threshold, variants=variants)

    def size(self) -> dict[str, int]:
        if not self._loaded:
            self.load()
        return {k: len(v) for k, v in [*self._hamming.items(), *self._exact.items()] if len(v)}


def subject_queries(signals: Iterable[SignalValue], frames: Sequence[object] = (),
                    trimmed: Sequence[object] | None = (),
                    displayed: Sequence[object] | None = (),
                    mirrored: Sequence[object] | None = (),
                    turned: Mapping[str, Sequence[object]] | None = None) -> tuple[list[Query], int, list[object]]:
    """(queries, how many are the subject's signals, the video's views): the signals'
    queries first, then one per kept frame of a video (banks/videos.py), then one per kept
    frame of its view with borders cut off (``trimmed``, when it has one), of its frames
    turned as displayed (``displayed``, a video with a display rotation), of its frames
    mirrored (``mirrored``) and of its frames turned or flipped (``turned``: view name ->
    frames, media/video.py TURNED_VIEWS). The views are opaque to callers: they hand them to
    ``subject_matches``."""
    queries = [Query(s.type, s.value, s.variant, s.quality, s.mode) for s in signals]
    n = len(queries)
    views: list[object] = []
    if frames:
        from .videos import frame_queries

        for name, fs in ((None, frames), ("trimmed", trimmed or ()), ("displayed", displayed or ()),
                         ("mirrored", mirrored or ()), *(turned or {}).items()):
            if fs:
                fq, kept = frame_queries(fs)
                views.append((name, len(queries), kept))
                queries += fq
    return queries, n, views


def subject_matches(queries: Sequence[Query], n_signals: int, frames: Sequence[object], hits: Sequence[Hit],
                    refs: dict[int, SignalRef], threshold: int | None, *, variants: bool = True) -> list[Match]:
    """The matches of one subject from its index hits (``subject_queries`` order): each
    bank entry once per signal type (``best_per_entry``), and each banked video that
    Meta's rule matches with its frames (one ``vpdq`` match with the shares)."""
    sig = refuted_removed([h for h in hits if h[0] < n_signals], refs, queries[:n_signals])
    out = best_per_entry(matches_from_hits(sig, refs, threshold, variants=variants),
                         regions_in(queries[:n_signals])) if sig else []
    if frames:
        from .videos import video_matches

        best: dict[tuple[str, str], Match] = {}
        for name, offset, kept in frames:  # type: ignore[misc]
            end = offset + len(kept)
            for m in video_matches([h for h in hits if offset <= h[0] < end], refs, kept, offset,
                                   threshold=threshold):
                if name is not None:
                    m = m.model_copy(update={"query_variant": name})
                key = (m.bank, m.content_id)
                old = best.get(key)
                if old is None or m.video.query_match_percent > old.video.query_match_percent:  # type: ignore[union-attr]
                    best[key] = m
        out += list(best.values())
    return out


def refuted_removed(hits: Sequence[Hit], refs: dict[int, SignalRef], queries: Sequence[Query]) -> list[Hit]:
    """The hits of ONE subject without the short whole-file hashes (AutoV1, AutoV2, CRC32) its
    own full-length hash refutes: an entry banked with its SHA-256 (or MD5, SHA-1, BLAKE3)
    is not a file whose hash of that type is another. AutoV1 hashes 64 KiB at offset 1 MiB,
    which in two fine-tunes of one base is often the same frozen text encoder: the files
    share it, not their identity. A hash the file's metadata names (another file) is never
    refuted by the file's own."""
    from .refs import FULL_FILE_HASHES, SHORT_FILE_HASHES

    own = {q.signal_type: q.value.lower() for q in queries
           if q.signal_type in FULL_FILE_HASHES and q.mode != NAMED_BY_METADATA}
    if not own:
        return list(hits)

    def refuted(h: Hit) -> bool:
        ref = refs.get(h[2])
        if ref is None or ref.signal_type not in SHORT_FILE_HASHES or h[1].mode == NAMED_BY_METADATA:
            return False
        return any(t in own and own[t] != v.lower() for t, v in ref.entry_file_hashes)

    return [h for h in hits if not refuted(h)]


def search_indexes(
hamming: dict[str, HammingIndex],
exact: dict[str, ExactIndex],
max_bank: int,
queries: Sequence[Query],
threshold: int | None,
include_low_quality: bool,
) -> list[Hit]:
    """Index hits (query position, query, signal_id, distance), in query order, from the
    indexes alone (no store: a Dask worker searches a shipped snapshot this way).
    ``max_bank``: the largest PDQ threshold of an enabled bank (the search radius). The Hamming queries
    of one signal type go to the index in one ``search_many`` call: per call the
    kernel has a fixed cost that dominates a single query, so a batch of 100
    would otherwise pay it 100 times."""
    import numpy as np

    per_query: list[list[tuple[int, Query, int, int]]] = [[] for _ in queries]
    grouped: dict[str, list[int]] = {}  # hamming type -> positions in queries
    types: dict[str, signal_types.SignalType] = {}
    for pos, q in enumerate(queries):
        st = types.get(q.signal_type)
        if st is None:
            st = types[q.signal_type] = signal_types.get(q.signal_type)
        if st.match == "hamming":
            if q.quality is not None and q.quality < LOW_QUALITY and not include_low_quality:
                continue
            grouped.setdefault(st.name, []).append(pos)
        else:
            idx_e = exact.get(st.name)
            if idx_e is None or len(idx_e) == 0:
                continue
            if st.degenerate and st.degenerate_reason(q.value):  # matches files, not this file
                continue
            per_query[pos] = [(pos, q, int(i), 0) for i in idx_e.search(bytes.fromhex(q.value))]
    for name, positions in grouped.items():
        idx = hamming.get(name)
        if idx is None or len(idx) == 0:
            continue
        st = signal_types.get(name)
        radius = threshold if threshold is not None else max(st.default_threshold, max_bank)
        nbytes = st.bits // 8
        raw = [bytes.fromhex(queries[p].value) for p in positions]
        if any(len(r) != nbytes for r in raw):
            bad = next(queries[p].value for p, r in zip(positions, raw, strict=True) if len(r) != nbytes)
            raise ValueError(f"a {name} code has {nbytes} bytes, got {bad!r}")
        codes = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), nbytes)
        # Flat answers: a batch of mostly misses costs no per-query arrays.
        qoff, ids, dists = idx.search_flat(codes, radius)
        ids_l, dists_l = ids.tolist(), dists.tolist()
        for k in np.flatnonzero(np.diff(qoff)).tolist():
            pos = positions[k]
            q = queries[pos]
            lo, hi = int(qoff[k]), int(qoff[k + 1])
            per_query[pos] = [(pos, q, ids_l[j], dists_l[j]) for j in range(lo, hi)]
    return [h for hs in per_query for h in hs]


def matches_from_hits(hits: Sequence[Hit], refs: dict[int, SignalRef], threshold: int | None,
                      *, variants: bool = True) -> list[Match]:
    """Index hits turned into matches with the banks' metadata (``Store.resolve``):
    bank thresholds applied, one match per (query, bank, content id, type), nearest first.
    ``variants=False``: hashes banked for a variant of an image are not matched."""
    matches: list[Match] = []
    seen: set[tuple[int, str, str, str]] = set()
    for pos, q, sid, dist in sorted(hits, key=lambda h: (h[3], h[2], h[0])):
        ref = refs.get(sid)
        if ref is None:  # removed since the index saw it
            continue
        if not variants and ref.variant is not None:
            continue
        st = signal_types.get(ref.signal_type)
        if st.match == "hamming":
            limit = threshold
            if limit is None:
                limit = ref.bank_pdq_threshold if ref.bank_pdq_threshold is not None else st.default_threshold
            if dist > limit:
                continue
        key = (pos, ref.bank, ref.content_id, ref.signal_type)
        if key in seen:
            continue
        seen.add(key)
        matches.append(
            Match(
                bank=ref.bank,
                content_id=ref.content_id,
                signal_type=ref.signal_type,
                value=ref.value,
                distance=dist,
                strength=strength_of(st, q.mode, q.variant, ref.variant),
                bank_kind="known-good" if ref.bank_kind == "known-good" else None,
                query=pos,
                query_variant=q.variant,
                bank_variant=ref.variant,
                note=ref.note,
                entry_id=ref.entry_id,
            )
        )
    return matches


#: A match through anchored regions ("region-N" query variants, media/crops.py) counts
#: only when at least this many of the subject's regions match the same entry. Over
#: 13,776 pairs of unrelated images (bench/eval_crops.py) no pair had even one region
#: within 31 (nearest 68); two keep a margin for banks far larger than that set.
REGION_MIN_AGREE = 2


def _is_region(variant: str | None) -> bool:
    return bool(variant) and variant.startswith("region-")  # type: ignore[union-attr]


def best_per_entry(matches: list[Match], regions_queried: int = 0) -> list[Match]:
    """One match per (bank, entry, signal type) among matches of one subject: a whole-
    picture match before a partial one, then the nearest. A near-duplicate also matches
    through most of its variants (its crops match the banked crops); one line says it.
    Anchored regions vote: an entry reached only through them needs ``REGION_MIN_AGREE``
    of the subject's regions (``regions_queried`` of them were looked up), and its match
    says how many agreed."""
    votes: dict[tuple[str, str, str], set[int]] = {}
    for m in matches:
        if _is_region(m.query_variant):
            votes.setdefault((m.bank, m.content_id, m.signal_type), set()).add(m.query if m.query is not None else -1)
    best: dict[tuple[str, str, str], Match] = {}
    for m in matches:
        key = (m.bank, m.content_id, m.signal_type)
        if _is_region(m.query_variant) and len(votes[key]) < REGION_MIN_AGREE:
            continue
        old = best.get(key)
        if old is None or (m.strength == PARTIAL, m.distance) < (old.strength == PARTIAL, old.distance):
            best[key] = m
    out: list[Match] = []
    for m in matches:
        key = (m.bank, m.content_id, m.signal_type)
        if best.get(key) is not m:
            continue
        if _is_region(m.query_variant):
            m = m.model_copy(update={"regions_agreeing": len(votes[key]),
                                     "regions_queried": max(regions_queried, len(votes[key]))})
        out.append(m)
    return out


def regions_in(queries: Iterable[Query | SignalValue]) -> int:
    """How many anchored-region hashes are among a subject's queries."""
    return sum(1 for q in queries if _is_region(q.variant))


def _store_key(store: Store) -> str:
    return hashlib.sha256(store.url_for_display.encode()).hexdigest()[:16]

