"""Which spans of a text reproduce indexed works: exact spans, near-verbatim passages,
coverage. Offsets are code points of the original texts (the checked text and each
work as ingested)."""

from __future__ import annotations

import bisect
import itertools
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .index import Shard, TextIndex, map_span, mid_unit
from .normalize import Normalized, normalize

SCHEMA = "assay.text/1"
DEFAULT_MIN_CHARS = 50


@dataclass
class Source:
    work: str
    start: int  # code points of the work's original text
    end: int
    norm_start: int = field(default=0, compare=False)  # work's normalised character offset

    def to_json(self) -> dict[str, Any]:
        return {"work": self.work, "start": self.start, "end": self.end}


@dataclass
class Span:
    start: int  # code points of the checked text
    end: int
    kind: str  # "exact" | "near"
    similarity: float
    changed_words: int
    sources: list[Source]
    norm_start: int = 0  # checked text's normalised offsets
    norm_end: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "kind": self.kind,
                "similarity": round(self.similarity, 4), "changed_words": self.changed_words,
                "sources": [s.to_json() for s in self.sources]}


@dataclass
class WorkCoverage:
    work: str
    title: str
    chars: int  # characters of the checked text inside this work's spans
    coverage: float

    def to_json(self) -> dict[str, Any]:
        return {"work": self.work, "title": self.title, "chars": self.chars,
                "coverage": round(self.coverage, 6)}


@dataclass
class CheckResult:
    path: str
    chars: int
    coverage: float
    coverage_exact: float
    spans: list[Span]
    works: list[WorkCoverage]
    min_chars: int = DEFAULT_MIN_CHARS

    @property
    def longest(self) -> Span | None:
        return max(self.spans, key=lambda s: s.end - s.start, default=None)

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "path": self.path, "chars": self.chars,
                "coverage": round(self.coverage, 6), "coverage_exact": round(self.coverage_exact, 6),
                "spans": [s.to_json() for s in self.spans], "works": [w.to_json() for w in self.works]}


@dataclass
class _Query:
    norm: Normalized
    q: np.ndarray  # normalised UTF-8 bytes
    lead: np.ndarray  # bool: byte starts a character
    chars_before: np.ndarray  # characters before each byte position (len + 1)


def _query(text: str | Normalized, markup: bool = False) -> _Query:
    norm = text if isinstance(text, Normalized) else normalize(text, markup=markup)
    q = np.frombuffer(norm.text.encode("utf-8"), dtype=np.uint8)
    lead = (q & 0xC0) != 0x80
    return _Query(norm, q, lead, np.concatenate(([0], np.cumsum(lead))).astype(np.int64))


MAX_CHECKED_BYTES = 64 * 1024**2


def read_checked(path: Path) -> str:
    """A text to check (ingest.decode_utf8: UTF-8, or UTF-16/UTF-32 with a byte-order mark), at most 64 MiB."""
    from ..errors import InputError

    try:
        if path.is_dir():
            raise InputError(path, "a folder, not a text file")
        if path.stat().st_size > MAX_CHECKED_BYTES:
            raise InputError(path, f"larger than {MAX_CHECKED_BYTES // 1024**2} MiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    from .ingest import decode_utf8

    return decode_utf8(path, data)


def is_markup(path: Path | str) -> bool:
    """Whether a checked file is read as HTML (by its name: .html, .htm, .xhtml)."""
    from .ingest import HTML_SUFFIXES

    return Path(path).suffix.lower() in HTML_SUFFIXES


def seed_length(min_chars: int) -> int:
    return max(1, min(32, min_chars // 2))


def _scan(index: TextIndex, qy: _Query, min_bytes: int, max_hits: int = 0) -> list[tuple[Shard, np.ndarray]]:
    """Raw maximal byte matches of at least ``min_bytes``, per shard (all of them, or
    those with a seed of at most ``max_hits`` places)."""
    from ._kernel import maximal_matches

    if len(qy.q) < min_bytes:  # too short to hold a match: none, in every shard
        return [(shard, np.zeros((0, 3), dtype=np.int64)) for shard in index.shards]
    k = seed_length(min_bytes)
    out = []
    for shard in index.shards:
        rows, bad = maximal_matches(shard.text, shard.sa, qy.q, min_bytes, k, max_hits)
        if bad >= 0:
            raise shard.damaged("sa.npy", f"entry {bad:,} points outside the text or out of order")
        out.append((shard, rows))
    return out


def exact_matches(index: TextIndex, text: str | _Query, min_chars: int = DEFAULT_MIN_CHARS,
                  scanned: list[tuple[Shard, np.ndarray]] | None = None
                  ) -> tuple[_Query, list[tuple[int, int, Source]]]:
    """Every maximal exact match of at least ``min_chars`` normalised characters, as
    (normalised start, normalised end, source) in the checked text."""
    if min_chars < 1:
        raise ValueError("min_chars must be at least 1")
    qy = text if isinstance(text, _Query) else _query(text)
    if scanned is None:
        scanned = _scan(index, qy, min_chars)
    found: list[tuple[int, int, Source]] = []
    for shard, rows in scanned:
        for a, e, b in rows[rows[:, 1] - rows[:, 0] >= min_chars].tolist():
            hit = _to_chars(qy, shard, a, e, b, min_chars)
            if hit is not None:
                found.append(hit)
    return qy, found


def _trim_query(qy: _Query, a: int, e: int) -> tuple[int, int]:
    """Byte range -> whole characters of the checked text, never inside a unit."""
    m = len(qy.q)
    while a < e and not qy.lead[a]:
        a += 1
    while e > a and e < m and not qy.lead[e]:
        e -= 1
    return int(qy.chars_before[a]), int(qy.chars_before[e])


def _to_chars(qy: _Query, shard: Shard, a: int, e: int, b: int, min_chars: int
              ) -> tuple[int, int, Source] | None:
    shard.check_bytes(b, b + e - a)
    m = len(qy.q)
    while a < e and not qy.lead[a]:  # start inside a character: move to the next one
        a += 1
        b += 1
    while e > a and e < m and not qy.lead[e]:
        e -= 1
    qa, qe = int(qy.chars_before[a]), int(qy.chars_before[e])
    if qe - qa < min_chars:
        return None
    wi = shard.work_at(b)
    w = shard.works[wi]
    wc = shard.char_index(b) - w.char_start
    segs = np.asarray(shard.segs[w.seg_lo:w.seg_hi])
    norm = qy.norm
    # A span starts and ends on whole original characters: never inside the several
    # normalised characters one original character became (ß -> ss).
    while qa < qe and (not norm.unit_start(qa) or mid_unit(segs, wc, w.norm_chars)):
        qa += 1
        wc += 1
    while qe > qa and (not norm.unit_start(qe) or mid_unit(segs, wc + qe - qa, w.norm_chars)):
        qe -= 1
    # and never starts or ends with white space (a cited passage starts at a word)
    while qa < qe and norm.text[qa] == " ":
        qa += 1
        wc += 1
    while qe > qa and norm.text[qe - 1] == " ":
        qe -= 1
    qa_words, qe = _whole_words(qy, shard.text, w, qa, qe, b + _qbyte(qy, qa) - a, b + _qbyte(qy, qe) - a)
    wc += qa_words - qa
    qa = qa_words
    if qe - qa < min_chars:
        return None
    ws, we = map_span(segs, wc, wc + qe - qa)
    return qa, qe, Source(w.id, ws, we, wc)


# A match that starts or ends inside a word of the work is cut back to whole words of the
# work: "it is -- And God called" matched the last letter of "darkness" before "And God
# called" and was reported from "s -- And God"; "light day" is not copied from "twilight
# day". (A checked text's own word may run on into the passage, as in "...0It is a" where
# no space was written: the work's words are what was copied.) A word longer than this
# (scripts written without spaces) stays whole.
_WORD_SLACK = 40


def _qbyte(qy: _Query, c: int) -> int:
    """Byte offset in the normalised checked text of its character ``c``."""
    return int(np.searchsorted(qy.chars_before, c + 1, side="left")) - 1 if c < len(qy.norm.text) else len(qy.q)


def _whole_words(qy: _Query, wtext: np.ndarray, w: Any, qa: int, qe: int,
                 wb_start: int | None, wb_end: int | None) -> tuple[int, int]:
    """(qa, qe) moved inward to the work's word edges: ``wb_start``/``wb_end`` are the
    work's bytes (in ``wtext``) where the span's first character starts and its last ends
    (None: not known there, left as it is)."""
    text = qy.norm.text
    space = 0x20
    if wb_start is not None and wb_start > w.byte_start and int(wtext[wb_start - 1]) != space:
        at = text.find(" ", qa, min(qe, qa + _WORD_SLACK))
        if at >= 0:
            qa = at + 1
    if wb_end is not None and wb_end < w.byte_end and int(wtext[wb_end]) != space:
        at = text.rfind(" ", max(qa, qe - _WORD_SLACK), qe)
        if at >= 0:
            qe = at
    return qa, qe


def check(index: TextIndex, text: str, *, path: str = "", min_chars: int = DEFAULT_MIN_CHARS,
          near: bool = True, markup: bool = False) -> CheckResult:
    """Spans of ``text`` found in the index's works, with coverage per work and overall.
    ``markup``: ``text`` is an HTML file as written (is_markup): its tags are not text and
    its character references are the characters they name; offsets stay those of the file."""
    from .rewrite import second_reading

    if min_chars < 1:
        raise ValueError("min_chars must be at least 1")
    qy = _query(text, markup)
    spans = _spans(index, qy, min_chars, near)
    # The text read again with the rewrites that hide a copy undone (letter-spacing,
    # digits for letters, joined words, line numbers, markup): its spans are added.
    again = second_reading(text, qy.norm, markup=markup, segment=_segmenter(index, min_chars))
    if again is not None:
        spans = _union(spans, _spans(index, _query(again), min_chars, near))
    spans = _not_inside_verbatim(spans)
    titles = {w.id: w.title for w in index.works()} if spans else {}
    return _result(path, text, spans, titles, min_chars)


# A letter-spaced run whose gaps are all alike, or words written with no space between
# them, are given the word ends of a work where a stretch of at least this share of
# min_chars letters is found with them; each start's
# search visits at most _SEGMENT_NODES places of a suffix array, a run's all starts
# together _SEGMENT_BUDGET per letter (a run of one letter repeated cannot take long).
_SEGMENT_SHARE = 0.6
_SEGMENT_NODES = 4096
_SEGMENT_BUDGET = 256


def _segmenter(index: TextIndex, min_chars: int) -> Any:
    """Where the index's works put spaces between the letters of a letter-spaced run
    (rewrite.second_reading's ``segment``)."""
    from ._kernel import spaced_segments

    min_bytes = max(8, int(_SEGMENT_SHARE * min_chars))

    def segment(letters: np.ndarray, lead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spaces = np.zeros(len(letters), dtype=bool)
        covered = np.zeros(len(letters), dtype=bool)
        for shard in index.shards:
            s, c = spaced_segments(shard.text, shard.sa, letters, lead, min_bytes, _SEGMENT_NODES,
                                   _SEGMENT_BUDGET * len(letters) + _SEGMENT_NODES)
            spaces |= s
            covered |= c
        return spaces, covered

    return segment


def _spans(index: TextIndex, qy: _Query, min_chars: int, near: bool) -> list[Span]:
    """The exact (and near-verbatim) spans of one reading of the checked text."""
    from .near import anchor_chars

    scanned = _scan(index, qy, min_chars)
    _, found = exact_matches(index, qy, min_chars, scanned)
    groups: dict[tuple[int, int], list[Source]] = {}
    for qa, qe, src in found:
        groups.setdefault((qa, qe), []).append(src)
    spans = []
    for (qa, qe), srcs in sorted(groups.items()):
        s, e = qy.norm.original_span(qa, qe)
        srcs.sort(key=lambda x: (x.work, x.start))
        spans.append(Span(s, e, "exact", 1.0, 0, srcs, qa, qe))
    if near:
        from .near import PIECE_MAX_PLACES

        # pieces: the exact spans, and shorter matches whose seed is not a common phrase
        pieces = _scan(index, qy, anchor_chars(min_chars), PIECE_MAX_PLACES) if anchor_chars(min_chars) < min_chars else scanned
        merged = [(sh, np.unique(np.concatenate([ex, rows]), axis=0) if len(rows) else ex)
                  for (sh, ex), (_, rows) in zip(scanned, pieces, strict=True)]
        spans = sorted(spans + _near_spans(qy, merged, min_chars), key=lambda s: (s.start, -s.end, s.kind))
    # A span of repetition ("the the the ...", a rule of dashes, "0000") or of counting
    # ("1 2 3 ... 119", "chapter i chapter ii ...") is found in a work without being
    # copied from it: not evidence, whatever its length.
    return [sp for sp in spans if informative(qy.norm.text[sp.norm_start:sp.norm_end], min_chars)]


def _union(first: list[Span], second: list[Span]) -> list[Span]:
    """The spans of two readings of one text: a span both found (the same range of the
    text, kind and similarity) is one, with the places of both."""
    by_key: dict[tuple[int, int, str, float], Span] = {}
    for sp in first + second:
        key = (sp.start, sp.end, sp.kind, round(sp.similarity, 4))
        have = by_key.get(key)
        if have is None:
            by_key[key] = sp
            continue
        seen = {(s.work, s.start, s.end) for s in have.sources}
        have.sources += [s for s in sp.sources if (s.work, s.start, s.end) not in seen]
        have.sources.sort(key=lambda x: (x.work, x.start))
        have.changed_words = min(have.changed_words, sp.changed_words)
    return sorted(by_key.values(), key=lambda s: (s.start, -s.end, s.kind))


def _not_inside_verbatim(spans: list[Span]) -> list[Span]:
    """Places of a work inside a longer passage already found verbatim in that work are
    left out: a refrain ("And the evening and the morning were the first day") that
    recurs in the work is found at each recurrence (verbatim in part, nearly in whole),
    and each was counted as one more passage reproduced. A place in another work stays;
    so does every place of the same passage (they are one span with several sources)."""

    by_work: dict[str, list[tuple[int, int]]] = {}
    for sp in spans:
        if sp.kind == "exact":
            for work in {src.work for src in sp.sources}:
                by_work.setdefault(work, []).append((sp.start, sp.end))
    reach: dict[str, tuple[list[int], list[int]]] = {}  # starts, and the furthest end so far
    for work, ranges in by_work.items():
        ranges.sort()
        ends = list(itertools.accumulate((e for _, e in ranges), max))
        reach[work] = ([s for s, _ in ranges], ends)

    def inside(work: str, sp: Span) -> bool:
        if work not in reach:
            return False
        starts, ends = reach[work]
        i = bisect.bisect_right(starts, sp.start)  # verbatim passages starting at or before it
        if i and ends[i - 1] > sp.end:
            return True
        if sp.kind == "near":
            return bool(i) and ends[i - 1] >= sp.end
        j = bisect.bisect_left(starts, sp.start)  # ... or starting before it, ending where it ends
        return bool(j) and ends[j - 1] >= sp.end

    kept = []
    for sp in spans:
        sources = [src for src in sp.sources if not inside(src.work, sp)]
        if sources:
            sp.sources = sources
            kept.append(sp)
    return kept


#: A span counts only if its normalised text, with counting steps replaced by one symbol,
#: deflates to at least this share of ``min_chars`` bytes. Every 50-character window of
#: ~100 K characters of licence prose (/usr/share/common-licenses, Python's LICENSE)
#: deflates to at least 27 bytes except runs of blanks to fill in (16-24); 400 characters
#: of "the the ... a a" deflate to 7, "1 2 3 ... 119" to 9 once its steps are one symbol.
MIN_INFORMATION = 0.4

_ROMAN = re.compile(r"(?=[mdclxvi])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})")
_ROMAN_VALUES = {"m": 1000, "d": 500, "c": 100, "l": 50, "x": 10, "v": 5, "i": 1}


def _number(token: str) -> int | None:
    if token.isascii() and token.isdigit():
        return int(token[:18])
    if len(token) <= 15 and _ROMAN.fullmatch(token):
        vals = [_ROMAN_VALUES[c] for c in token]
        return sum(-v if i + 1 < len(vals) and v < vals[i + 1] else v for i, v in enumerate(vals))
    return None


def informative(norm_text: str, min_chars: int) -> bool:
    """Whether a span's normalised text says more than repetition or counting does: its
    bytes, each number that is one more than the number before it (arabic or roman:
    page, line, chapter and list numbers) replaced by one symbol, deflate to at least
    ``MIN_INFORMATION * min_chars`` bytes."""
    need = MIN_INFORMATION * min_chars
    tokens = norm_text.split(" ")
    prev: int | None = None
    for i, tok in enumerate(tokens):
        n = _number(tok)
        if n is None:
            continue
        if prev is not None and n == prev + 1:
            tokens[i] = "\x01"
        prev = n
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return len(z.compress(" ".join(tokens).encode("utf-8")) + z.flush()) >= need


def _near_spans(qy: _Query, scanned: list[tuple[Shard, np.ndarray]], min_chars: int) -> list[Span]:
    from .near import MIN_SIMILARITY, chains, changed_words

    groups: dict[tuple[int, int, float, int], list[Source]] = {}
    for shard, rows in scanned:
        if not len(rows):
            continue
        works = np.searchsorted(shard.byte_starts, rows[:, 2], side="right") - 1
        for chain in chains(rows, works):
            shard.check_bytes(chain[0].b, chain[-1].f)  # the pieces, the gaps between them
            w = shard.works[chain[0].work]
            segs = np.asarray(shard.segs[w.seg_lo:w.seg_hi])
            # characters of each piece, on both sides
            parts = []
            for p in chain:
                qa, qe = _trim_query(qy, p.a, p.e)
                wa = shard.char_index(_next_lead(shard.text, p.b, p.f)) - w.char_start
                parts.append((qa, qe, wa, wa + (qe - qa)))
            # the work's text from the first piece to the last, decoded once
            first, last = chain[0], chain[-1]
            b0 = _next_lead(shard.text, first.b, first.f)
            f1 = last.f - (last.e - _trim_end(qy, last.a, last.e))
            w_span = shard.decode(b0, f1)
            qa0, qe1 = parts[0][0], parts[-1][1]
            wa0, we1 = parts[0][2], parts[-1][3]
            while qa0 < qe1 and (not qy.norm.unit_start(qa0) or mid_unit(segs, wa0, w.norm_chars)):
                qa0 += 1
                wa0 += 1
            while qe1 > qa0 and (not qy.norm.unit_start(qe1) or mid_unit(segs, we1, w.norm_chars)):
                qe1 -= 1
                we1 -= 1
            while qa0 < qe1 and qy.norm.text[qa0] == " ":
                qa0 += 1
                wa0 += 1
            while qe1 > qa0 and qy.norm.text[qe1 - 1] == " ":
                qe1 -= 1
                we1 -= 1
            # the work's word edges, where the edge is in the first or last piece (exact there)
            (pa, pe, _, _), (la, le, _, _) = parts[0], parts[-1]
            wb_start = b0 + _qbyte(qy, qa0) - _qbyte(qy, pa) if pa <= qa0 <= pe else None
            wb_end = f1 - (_qbyte(qy, le) - _qbyte(qy, qe1)) if la <= qe1 <= le else None
            qa_words, qe_words = _whole_words(qy, shard.text, w, qa0, qe1, wb_start, wb_end)
            wa0 += qa_words - qa0
            we1 -= qe1 - qe_words
            qa0, qe1 = qa_words, qe_words
            matched = sum(max(0, min(qe, qe1) - max(qa, qa0)) for qa, qe, _, _ in parts)
            if matched < min_chars or qe1 - qa0 < min_chars:
                continue
            similarity = 2 * matched / ((qe1 - qa0) + (we1 - wa0))
            if similarity < MIN_SIMILARITY:
                continue
            w_text = w_span[wa0 - parts[0][2]:we1 - parts[0][2]]
            gaps = [(parts[i][1] - qa0, parts[i + 1][0] - qa0, parts[i][3] - wa0, parts[i + 1][2] - wa0)
                    for i in range(len(parts) - 1)]
            changed = changed_words(qy.norm.text[qa0:qe1], w_text, gaps)
            ws, we = map_span(segs, wa0, we1)
            # places with the same passage, similarity and changes are one span
            key = (qa0, qe1, round(similarity, 4), changed)
            groups.setdefault(key, []).append(Source(w.id, ws, we, wa0))
    spans = []
    for (qa, qe, similarity, changed), srcs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[0][2])):
        s, e = qy.norm.original_span(qa, qe)
        srcs.sort(key=lambda x: (x.work, x.start))
        spans.append(Span(s, e, "near", similarity, changed, srcs, qa, qe))
    return spans


def _next_lead(text: np.ndarray, b: int, f: int) -> int:
    while b < f and (int(text[b]) & 0xC0) == 0x80:
        b += 1
    return b


def _trim_end(qy: _Query, a: int, e: int) -> int:
    while e > a and e < len(qy.q) and not qy.lead[e]:
        e -= 1
    return e


def _result(path: str, text: str, spans: list[Span], titles: dict[str, str], min_chars: int) -> CheckResult:
    n = len(text)
    any_mask = np.zeros(n, dtype=bool)
    exact_mask = np.zeros(n, dtype=bool)
    per_work: dict[str, np.ndarray] = {}
    for sp in spans:
        any_mask[sp.start:sp.end] = True
        if sp.kind == "exact":
            exact_mask[sp.start:sp.end] = True
        for w in {s.work for s in sp.sources}:
            per_work.setdefault(w, np.zeros(n, dtype=bool))[sp.start:sp.end] = True
    works = [WorkCoverage(w, titles.get(w, w), int(m.sum()), float(m.sum()) / n if n else 0.0)
             for w, m in per_work.items()]
    works.sort(key=lambda w: (-w.chars, w.work))
    return CheckResult(path, n, float(any_mask.sum()) / n if n else 0.0,
                       float(exact_mask.sum()) / n if n else 0.0, spans, works, min_chars)
