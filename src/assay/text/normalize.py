"""The normalised form texts are matched on, with a map back to the original.

Matching runs on NFKC, case-folded text with curly quotes and dashes unified,
whitespace runs collapsed to one space, line-end hyphenation removed and format
characters (soft hyphen, zero-width marks, BOM) dropped. Every normalised character
remembers the range of original code points it came from (``ostart``/``oend``), so
that a span found in normalised text is reported at offsets a reader can find by
opening the original.

A base character with its combining marks is one unit (NFKC composes them); a
character whose normalised form is several characters (``ß`` -> ``ss``, ``ﬁ`` ->
``fi``) is one unit of several normalised characters, all mapping to that one
original character. The common case (one code point in, one out) runs as numpy table
look-ups, so that a 100 MB corpus normalises in seconds.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_QUOTES = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
           "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"',
           "\u00bb": '"', "`": "'", "\u00b4": "'"}
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2e3a\u2e3b"
# Hyphen, then optional spaces, a line end, more white space, before a word (the
# character before the hyphen is checked in Python: a look-behind slows every position).
_HYPHENATION = re.compile(r"[-\u2010\u00ad][ \t]*(?:\r\n|\n|\r)[ \t\r\n]*(?=\w)")

_SLOW = np.uint32(0xFFFFFFFF)  # table value: this code point needs the per-unit path
_DROP = np.uint32(0xFFFFFFFE)  # table value: dropped (format characters)
_BMP = 0x10000


def _map_unit(s: str) -> str:
    """The normalised form of one unit (a character with its combining marks)."""
    s = unicodedata.normalize("NFKC", s)
    s = unicodedata.normalize("NFKC", s.casefold())
    out = []
    for ch in s:
        if ch in _QUOTES:
            out.append(_QUOTES[ch])
        elif ch in _DASHES:
            out.append("-")
        elif ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) == "Cf":
            continue
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=1)
def _tables() -> np.ndarray:
    """The one code point each code point of the Basic Multilingual Plane becomes, or
    _SLOW (several, or a combining mark, which joins its base) or _DROP."""
    table = np.empty(_BMP, dtype=np.uint32)
    for cp in range(_BMP):
        ch = chr(cp)
        if 0xD800 <= cp < 0xE000 or unicodedata.combining(ch):
            table[cp] = _SLOW
            continue
        m = _map_unit(ch)
        if m == "":
            table[cp] = _DROP
        elif len(m) == 1:
            table[cp] = ord(m)
        else:
            table[cp] = _SLOW
    return table


@lru_cache(maxsize=1)
def _ascii_table() -> np.ndarray:
    t = _tables()[:128]
    assert int(t.max()) < 128, "ASCII normalises to ASCII"
    return t.astype(np.uint8)


@dataclass(frozen=True)
class Normalized:
    """A normalised text and, per normalised character, its original code-point range."""

    text: str
    ostart: np.ndarray  # int64, len(text)
    oend: np.ndarray  # int64, len(text)
    original_length: int

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Original code-point range of normalised characters [start, end)."""
        if end <= start:
            o = int(self.ostart[start]) if start < len(self.text) else self.original_length
            return o, o
        return int(self.ostart[start]), int(self.oend[end - 1])

    def unit_start(self, i: int) -> bool:
        """Whether normalised position i starts a unit (is not inside an expansion)."""
        return i <= 0 or i >= len(self.text) or self.ostart[i] != self.ostart[i - 1]


def normalize(text: str) -> Normalized:
    """Normalise ``text`` (see the module docstring) with its offset map."""
    n = len(text)
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return Normalized("", e, e, 0)
    if n >= 2**31 - 1:
        raise ValueError("a text of 2^31 code points or more cannot be normalised in one piece")
    table = _tables()
    if text.isascii():  # one byte a character, none slow or dropped: 4x less to move
        mapped = _ascii_table()[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    else:
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if int(cps.max()) < _BMP:
            mapped = table[cps]
        else:
            mapped = np.where(cps < _BMP, table[np.minimum(cps, _BMP - 1)], _SLOW)
    # Line-end hyphenation: the hyphen and the white space after it are dropped.
    drop = mapped == _DROP
    if "\n" in text or "\r" in text:
        for m in _HYPHENATION.finditer(text):
            if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "_"):
                drop[m.start():m.end()] = True
    # Units of several code points (a base and its combining marks), characters that
    # become several, and those outside the table take the slow path as a whole.
    pieces: dict[int, tuple[str, int]] = {}  # unit start -> (normalised unit, unit end)
    slow_pos = np.flatnonzero(mapped == _SLOW)
    last_end = -1
    for p in slow_pos.tolist():
        if p < last_end or drop[p]:
            continue
        start = p
        if unicodedata.combining(text[p]) and p > 0 and not drop[p - 1] and p - 1 >= last_end:
            start = p - 1  # a mark joins the character before it
            pieces.pop(start, None)
        end = p + 1
        while end < n and not drop[end] and unicodedata.combining(text[end]):
            end += 1
        pieces[start] = (_map_unit(text[start:end]), end)
        last_end = end
    idx = np.int32
    if not pieces and not drop.any():
        out = mapped
        src = np.arange(n, dtype=idx)
        src_end = src + 1
    else:
        keep_cp = ~drop
        for start, (_s, end) in pieces.items():
            keep_cp[start:end] = False
        lens = keep_cp.astype(idx)
        for start, (s, _end) in pieces.items():
            lens[start] = len(s)
        pos = np.cumsum(lens, dtype=np.int64) - lens
        total = int(pos[-1] + lens[-1])
        out = np.empty(total, dtype=mapped.dtype)
        src = np.repeat(np.arange(n, dtype=idx), lens)
        src_end = src + 1
        fpos = np.flatnonzero(keep_cp)
        out[pos[fpos]] = mapped[fpos]
        for start, (s, end) in pieces.items():
            if s:
                o = int(pos[start])
                out[o:o + len(s)] = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)
                src_end[o:o + len(s)] = end
    # Collapse white-space runs: a space after a space is dropped, and the kept one
    # stretches over the run in the original.
    total = len(out)
    if total > 1:
        sp = out == 0x20
        dup = sp[1:] & sp[:-1]
        if dup.any():
            keep = np.ones(total, dtype=bool)
            keep[1:] = ~dup
            # (ends never decrease along the text: the last of a run is its end)
            kept = np.flatnonzero(keep)
            group_last = np.empty(len(kept), dtype=np.int64)
            group_last[:-1] = kept[1:] - 1
            group_last[-1] = total - 1
            out, src, src_end = out[kept], src[kept], src_end[group_last]
    norm = (out.tobytes().decode("ascii" if out.dtype == np.uint8 else "utf-32-le")) if len(out) else ""
    return Normalized(norm, src, src_end, n)


def normalize_text(text: str) -> str:
    """Only the normalised text (no map)."""
    return normalize(text).text
