"""vPDQ in banks: a banked video is one entry, its frame hashes are its ``vpdq`` signals.

A video entry holds one ``vpdq`` signal per distinct frame hash of quality >= 50 (what
Meta's rule compares after its quality filter and dedupe), so every frame hash goes into
the same Hamming index as PDQ-like types do. Its meta keeps the whole hash in Meta's text
form (``meta["vpdq"]["text"]``: every frame, low-quality ones too, for export) and how many
frames the rule compares (``meta["vpdq"]["frames"]``, the denominator of the banked side's
share).

Matching a video: each of its (filtered, deduplicated) frames is a query; the index
answers every banked frame within the search radius; hits are grouped per banked video
and Meta's rule decides per video (:func:`video_matches`). Hits carry every pair within
the radius, so both shares are exact, not estimated from the nearest hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import InvalidBankInput, InvalidSignal
from ..media.video import (
    VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT,
    VPDQ_DISTANCE_THRESHOLD,
    VPDQ_QUALITY_THRESHOLD,
    VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
    VpdqFeature,
    dumps,
    loads,
    prepare,
)
from ..report.schema import Match, VideoMatch

if TYPE_CHECKING:
    from .matcher import Hit, Query
    from .refs import SignalRef
    from .store import ImportRecord

META_KEY = "vpdq"
# Views of a banked video besides its frames as stored (named so in the entry's pdq_variants)
VIEWS = ("trimmed", "displayed")
MAX_VPDQ_META_JSON = 8 * 1024**2  # a 4 h video at 1 frame/s is ~1.3 MB of text


def bank_record(features: Sequence[VpdqFeature], content_id: str, *, note: str | None = None,
                extra: Sequence[tuple[str, str]] = (), line: int = 0,
                trimmed: Sequence[VpdqFeature] = (), displayed: Sequence[VpdqFeature] = ()) -> ImportRecord:
    """The import record of one video: its kept frame hashes as ``vpdq`` signals (plus
    ``extra`` signals such as its ``video_md5``), the whole hash in the meta. ``trimmed``: the
    same frames with uniform borders/bars cut off (``VideoHashes.trimmed``, a letterboxed or
    framed video): its hashes are banked too, named ``trimmed`` in the meta's ``pdq_variants``,
    so that a clean copy matches; they are not counted in the video's ``frames`` (the banked
    share stays Meta's, over the frames as stored). ``displayed``: the frames turned as
    displayed (``VideoHashes.displayed``, a video with a display rotation), banked the same way
    under the name ``displayed``, so that a copy whose pixels were turned matches."""
    from .store import ImportRecord

    kept = prepare(features)
    if not kept and not extra:
        raise InvalidBankInput(f"video {content_id!r}: no frame of quality >= {VPDQ_QUALITY_THRESHOLD} "
                               "(nothing Meta's rule could match)")
    seen = {f.hex for f in kept}
    views: dict[str, list[VpdqFeature]] = {}
    for view, fs in (("trimmed", trimmed), ("displayed", displayed)):
        new = [f for f in prepare(fs) if f.hex not in seen] if kept else []
        if new:
            views[view] = new
            seen.update(f.hex for f in new)
    meta: dict[str, Any] | None = None
    if kept:
        meta = {META_KEY: {"frames": len(kept), "text": dumps(features)}}
        for view, fs in (("trimmed", trimmed), ("displayed", displayed)):
            if view in views:
                meta[META_KEY][view] = dumps(fs)
                meta.setdefault("pdq_variants", {}).update({f.hex: view for f in views[view]})
    signals = tuple(("vpdq", f.hex) for f in kept) + \
        tuple(("vpdq", f.hex) for fs in views.values() for f in fs) + tuple(extra)
    return ImportRecord(content_id, signals, note, meta, line)


def check_meta(meta: dict[str, Any], signals: Sequence[tuple[str, str]]) -> None:
    """The ``vpdq`` meta of an entry must say how many frames it has, and that count must
    be the entry's number of distinct vpdq signals (a forged count would skew the share)."""
    v = meta.get(META_KEY)
    if v is None:
        return
    named = meta.get("pdq_variants")
    values = {value for t, value in signals if t == "vpdq"}
    # the hashes of the frames with their borders cut off, or turned, are not the video's frames
    n = len({x for x in values if not (isinstance(named, dict) and named.get(x) in VIEWS)})
    frames = v.get("frames") if isinstance(v, dict) else None
    if type(frames) is not int or frames != n:
        raise InvalidBankInput(f"meta {META_KEY!r}: 'frames' must be the entry's number of vpdq hashes ({n}, "
                               "not counting those named 'trimmed' or 'displayed' in 'pdq_variants')")
    for key in ("text", *VIEWS):
        text = v.get(key)
        if text is not None and not isinstance(text, str):
            raise InvalidBankInput(f"meta {META_KEY!r}: {key!r} must be a hash in Meta's text form")


def entry_frames(meta: Any) -> int | None:
    """How many frames a banked video's rule compares, from its entry meta, or None."""
    v = meta.get(META_KEY) if isinstance(meta, dict) else None
    n = v.get("frames") if isinstance(v, dict) else None
    return n if type(n) is int and n > 0 else None


def entry_text(meta: Any) -> str | None:
    """The banked video's whole hash in Meta's text form, or None."""
    v = meta.get(META_KEY) if isinstance(meta, dict) else None
    t = v.get("text") if isinstance(v, dict) else None
    return t if isinstance(t, str) else None


def frame_times(meta: Any, value: str) -> tuple[tuple[int, float], ...]:
    """(position, timestamp) of each frame of a banked video whose hash is ``value``: its
    position among the frames Meta's rule compares (quality >= 50, in order, repeated hashes
    kept), so that consecutive positions are consecutive samples. Empty without the text form."""
    text = entry_text(meta)
    if not text:
        return ()
    v = meta.get(META_KEY) if isinstance(meta, dict) else None
    views = tuple(x if isinstance(x := (v.get(k) if isinstance(v, dict) else None), str) else "" for k in VIEWS)
    return _frames_by_hash(text, *views).get(value, ())


@lru_cache(maxsize=16)
def _frames_by_hash(text: str, trimmed: str, displayed: str = "") -> dict[str, tuple[tuple[int, float], ...]]:
    """Hash -> (position, timestamp) of its frames; a hash of the trimmed or the displayed
    view takes the position of the frame it was made from."""
    try:
        frames = loads(text)
        inside = [*(loads(trimmed) if trimmed else []), *(loads(displayed) if displayed else [])]
    except InvalidSignal:
        return {}
    out: dict[str, list[tuple[int, float]]] = {}
    position: dict[int, int] = {}
    for pos, f in enumerate(f for f in frames if f.quality >= VPDQ_QUALITY_THRESHOLD):
        out.setdefault(f.hex, []).append((pos, f.timestamp))
        position[f.frame_number] = pos
    for f in inside:
        pos = position.get(f.frame_number)
        if f.quality >= VPDQ_QUALITY_THRESHOLD and pos is not None and (pos, f.timestamp) not in out.get(f.hex, ()):
            out.setdefault(f.hex, []).append((pos, f.timestamp))
    return {k: tuple(v) for k, v in out.items()}


def frame_queries(frames: Sequence[Any], quality: int = VPDQ_QUALITY_THRESHOLD) -> tuple[list[Query], list[Any]]:
    """(queries, the frames they stand for): one ``vpdq`` query per kept frame
    (quality filter, dedupe). ``frames``: anything with ``hex``, ``quality``, ``timestamp``."""
    from .matcher import Query

    kept = prepare(frames, quality)
    return [Query("vpdq", f.hex, None, f.quality) for f in kept], kept


def video_matches(
    hits: Sequence[Hit],
    refs: dict[int, SignalRef],
    frames: Sequence[Any],
    offset: int = 0,
    *,
    threshold: int | None = None,
    query_percent: float = VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
    compared_percent: float = VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT,
) -> list[Match]:
    """Meta's rule per banked video. ``hits``: index hits of the frame queries, which sit
    at positions ``offset + i`` for ``frames[i]`` (the kept frames of ``frame_queries``).
    A frame pair counts within ``threshold`` (else the bank's PDQ threshold, else 31).
    Only videos that pass the rule are returned, best query share first."""
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for pos, _q, sid, dist in hits:
        i = pos - offset
        ref = refs.get(sid)
        if ref is None or ref.signal_type != "vpdq" or not 0 <= i < len(frames):
            continue
        limit = threshold if threshold is not None else (
            ref.bank_pdq_threshold if ref.bank_pdq_threshold is not None else VPDQ_DISTANCE_THRESHOLD)
        if dist > limit:
            continue
        g = groups.setdefault((ref.bank, ref.entry_id), {"ref": ref, "q": set(), "c": set(), "best": (dist, sid)})
        g["q"].add(i)
        g["c"].add(sid)
        if (dist, sid) < g["best"]:
            g["best"] = (dist, sid)
    out: list[Match] = []
    for g in groups.values():
        ref: SignalRef = g["ref"]
        qp = len(g["q"]) * 100.0 / len(frames)
        n = ref.entry_frames
        cp = min(100.0, len(g["c"]) * 100.0 / n) if n else None
        # Without the banked video's frame count only a zero threshold can be met.
        ok = qp >= query_percent and (cp >= compared_percent if cp is not None else compared_percent <= 0)
        if not ok:
            continue
        dist, sid = g["best"]
        # mostly through the banked frames with their borders cut off, or turned: say so
        through = [refs[c].variant for c in g["c"] if refs[c].variant in VIEWS]
        view = max(VIEWS, key=through.count) if len(through) * 2 > len(g["c"]) else None
        out.append(Match(
            bank=ref.bank, content_id=ref.content_id, signal_type="vpdq", value=refs[sid].value,
            distance=dist, strength="perceptual", bank_variant=view,
            bank_kind="known-good" if ref.bank_kind == "known-good" else None,
            note=ref.note, entry_id=ref.entry_id,
            video=VideoMatch(query_match_percent=round(qp, 2),
                             compared_match_percent=round(cp, 2) if cp is not None else None,
                             query_frames=len(frames), compared_frames=n,
                             matched_query_frames=len(g["q"]), matched_compared_frames=len(g["c"]),
                             query_segments=_segments(sorted(g["q"]), frames),
                             compared_segments=_banked_segments(g["c"], refs)),
        ))
    out.sort(key=lambda m: (-m.video.query_match_percent, m.distance, m.bank, m.content_id))  # type: ignore[union-attr]
    return out


def _banked_segments(sids: set[int], refs: dict[int, SignalRef]) -> list[tuple[float, float]]:
    """Runs of consecutive banked frames that some query frame matched, as (first, last)
    timestamps in the banked video: which part of it the query shows."""
    found = sorted({pt for sid in sids for pt in refs[sid].frame_times})
    runs: list[tuple[float, float]] = []
    prev = -2
    for pos, ts in found:
        if pos == prev + 1:
            runs[-1] = (runs[-1][0], ts)
        elif pos != prev:
            runs.append((ts, ts))
        prev = pos
    return runs


def _segments(positions: list[int], frames: Sequence[Any]) -> list[tuple[float, float]]:
    """Runs of consecutive matching query frames as (first, last) timestamps."""
    runs: list[tuple[float, float]] = []
    start = prev = None
    for i in positions:
        if start is None:
            start = prev = i
        elif i == prev + 1:  # type: ignore[operator]
            prev = i
        else:
            runs.append((frames[start].timestamp, frames[prev].timestamp))  # type: ignore[index]
            start = prev = i
    if start is not None:
        runs.append((frames[start].timestamp, frames[prev].timestamp))  # type: ignore[index]
    return runs
