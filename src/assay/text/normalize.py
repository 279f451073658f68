"""The normalised form texts are matched on, with a map back to the original.

Matching runs on NFKC, case-folded text in which look-alike letters of other scripts
are the Latin letter they imitate (Unicode TR39 confusables), diacritics of Latin,
Greek and Cyrillic letters are dropped, punctuation is dropped (dashes and slashes
become spaces), white-space runs are collapsed to one space, line-end hyphenation
and e-mail quote markers at line starts are removed, and invisible characters (format
characters, Unicode's default-ignorable code points: zero-width marks, soft hyphen,
bidi controls, variation selectors, Hangul fillers, tags) are dropped. Every
normalised character remembers the range of original code points it came from
(``ostart``/``oend``), so that a span found in normalised text is reported at offsets
a reader can find by opening the original.

A base character with its combining marks is one unit; a character whose normalised
form is several characters (``ß`` -> ``ss``, ``ﬁ`` -> ``fi``) is one unit of several
normalised characters, all mapping to that one original character. The common case
(one code point in, one out or none) runs as numpy table look-ups, so that a 100 MB
corpus normalises in seconds.

Every rule looks at one unit, or (white space, hyphenation, quote markers) at the
characters next to a line break or a space, so normalising an original slice that
starts and ends on whole units gives the normalised characters it maps to.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._confusables import LOOKALIKES

# The version of these rules: an index stores the normalised text, so an index made
# under other rules cannot be queried (index.py refuses it; rebuild it).
VERSION = 2

# Dashes (general category Pd), minus signs and slashes stand between words: a space.
# Other punctuation (and the symbols used as apostrophes) is dropped.
_SPACE_PUNCT = frozenset("\u2212/\\")
_DROPPED_SYMBOLS = frozenset("`\u00b4\u02bc\u02b9\u02bb\u02bd")
# Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15): invisible in
# rendering, so they can be slipped between letters. (Format characters are dropped too.)
_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
              (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
              (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
              (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
# Combining marks of general use (Combining Diacritical Marks and their supplements, marks
# for symbols, half marks): dropped on any base. Script-specific marks (Indic vowel signs,
# Hebrew and Arabic points, ...) are kept unless their base is a Latin, Greek or Cyrillic
# letter or not a letter at all.
_GENERIC_MARKS = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))
_LGC = ((0x0000, 0x052F), (0x1C80, 0x1C8F), (0x1D00, 0x1DBF), (0x1E00, 0x1FFF), (0x2C60, 0x2C7F),
        (0xA640, 0xA69F), (0xA720, 0xA7FF), (0xAB30, 0xAB6F), (0xFB00, 0xFB06))
# Hyphen, then optional spaces, a line end, more white space (and quote markers), before
# a word (the character before the hyphen is checked in Python: a look-behind slows
# every position).
_HYPHENATION = re.compile(r"[-\u2010\u00ad][ \t]*(?:\r\n|\n|\r)[ \t\r\n>]*(?=\w)")
# E-mail and Markdown quote markers at the start of a line ("> ", "> > "): dropped. Only
# after a line break, never at the start of the text (a slice starting there must
# normalise as the whole text does).
_QUOTE_MARKERS = re.compile(r"(?<=[\r\n])[ \t]*>(?:[ \t]*>)*[ \t]?")

# Markup of an HTML file checked as written (normalize(markup=True)): comments, scripts and
# styles, tags, and character references. Tags are case-insensitive; a "<" not followed by
# a letter, "/", "!" or "?" is text.
_MARKUP = re.compile(r"<!--.*?(?:-->|\Z)|<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)"
                     r"|</?([A-Za-z][A-Za-z0-9:-]*)(?:\s[^<>]*)?/?>|<[!?][^<>]*>"
                     r"|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});", re.S | re.I)

_SLOW = np.uint32(0xFFFFFFFF)  # table value: this code point needs the per-unit path
_DROP = np.uint32(0xFFFFFFFE)  # table value: dropped (format characters)
_DROP8 = np.uint8(0xFE)  # the same in the table of ASCII (not a UTF-8 byte)
_BMP = 0x10000


_IGNORED, _GENERIC, _LGC_BASE = 1, 2, 4


@lru_cache(maxsize=1)
def _flags() -> bytes:
    """Per code point: _IGNORED, _GENERIC (a mark of general use), _LGC_BASE (ranges above)."""
    flags = bytearray(0x110000)
    for bit, ranges in ((_IGNORED, _IGNORABLE), (_GENERIC, _GENERIC_MARKS), (_LGC_BASE, _LGC)):
        for lo, hi in ranges:
            flags[lo:hi + 1] = bytes(f | bit for f in flags[lo:hi + 1])
    return bytes(flags)


def fold(s: str) -> str:
    """NFKC, case folding, default-ignorable code points dropped, combining marks dropped
    where they are diacritics (see _GENERIC_MARKS): the rules before look-alikes and
    punctuation (tools/make_confusables.py derives its table through this)."""
    s = unicodedata.normalize("NFKC", s)
    s = unicodedata.normalize("NFKC", s.casefold())
    if s.isascii():
        return s
    flags = _flags()
    out: list[str] = []
    folds = True  # marks with no base are dropped as diacritics
    for ch in unicodedata.normalize("NFD", s):
        f = flags[ord(ch)]
        if f & _IGNORED:
            continue
        if unicodedata.category(ch) in ("Mn", "Me"):
            if folds or f & _GENERIC:
                continue
        else:
            folds = not ch.isalpha() or bool(f & _LGC_BASE)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _map_unit(s: str) -> str:
    """The normalised form of one unit (a character with its combining marks)."""
    out = []
    for ch in fold(s):
        ch = LOOKALIKES.get(ch, ch)
        cat = unicodedata.category(ch)
        if ch.isspace() or cat == "Pd" or ch in _SPACE_PUNCT:
            out.append(" ")
        elif cat == "Cf" or cat[0] == "P" or ch in _DROPPED_SYMBOLS:
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
    kept = t[t != _DROP]
    assert int(kept.max()) < 128, "ASCII normalises to ASCII (or is dropped)"
    return np.where(t == _DROP, _DROP8, t).astype(np.uint8)


@dataclass(frozen=True)
class Normalized:
    """A normalised text and, per normalised character, its original code-point range."""

    text: str
    ostart: np.ndarray  # int64, len(text)
    oend: np.ndarray  # int64, len(text)
    original_length: int
    # bool, len(text): where units start, when ostart alone does not tell (a space the
    # checked text's second reading puts between two letters maps to no code point)
    starts: np.ndarray | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Original code-point range of normalised characters [start, end)."""
        if end <= start:
            o = int(self.ostart[start]) if start < len(self.text) else self.original_length
            return o, o
        return int(self.ostart[start]), int(self.oend[end - 1])

    def unit_start(self, i: int) -> bool:
        """Whether normalised position i starts a unit (is not inside an expansion)."""
        if i <= 0 or i >= len(self.text):
            return True
        return bool(self.starts[i]) if self.starts is not None else bool(self.ostart[i] != self.ostart[i - 1])


def _markup_units(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, what it stands for) of each tag, comment, script or style (nothing; a
    space for a tag that starts or ends a block: ``<p>``, ``<br>``, ``<li>`` ...) and character
    reference (the character: ``&amp;`` is ``&``) of an HTML text."""
    import html

    from .ingest import _BLOCK

    for m in _MARKUP.finditer(text):
        tok = m.group()
        if tok[0] == "&":
            value = html.unescape(tok)
            if value == tok:  # not a reference HTML knows: text
                continue
        else:
            value = " " if (m.group(2) or "").lower() in _BLOCK else ""
        yield m.start(), m.end(), value


def normalize(text: str, *, markup: bool = False) -> Normalized:
    """Normalise ``text`` (see the module docstring) with its offset map. ``markup``: the
    text is HTML as written in a file; its tags, comments, scripts and styles are not text
    (a block's tag is a space) and a character reference is the character it names, each
    one unit mapping to its code points in the file."""
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
    drop = mapped == (_DROP8 if mapped.dtype == np.uint8 else _DROP)
    if "\n" in text or "\r" in text:
        for m in _HYPHENATION.finditer(text):
            if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "_"):
                drop[m.start():m.end()] = True
        if ">" in text:
            for m in _QUOTE_MARKERS.finditer(text):
                drop[m.start():m.end()] = True
    # Units of several code points (a base and its combining marks), characters that
    # become several, and those outside the table take the slow path as a whole.
    pieces: dict[int, tuple[str, int]] = {}  # unit start -> (normalised unit, unit end)
    tagged = None  # code points inside markup units
    if markup and ("<" in text or "&" in text):
        tagged = np.zeros(n, dtype=bool)
        for a, b, value in _markup_units(text):
            tagged[a:b] = True
            mapped_value = _map_unit(value) if value else ""
            drop[a:b] = not mapped_value  # (no unit kept for what becomes nothing: a page of tags is no dict)
            if mapped_value:
                pieces[a] = (mapped_value, b)
        if mapped.dtype == np.uint8 and not all(v.isascii() for v, _ in pieces.values()):
            mapped = mapped.astype(np.uint32)  # an ASCII page naming "&copy;" or "&#1078;"
    slow = mapped == _SLOW
    if tagged is not None:
        slow &= ~tagged
    slow_pos = np.flatnonzero(slow)
    last_end = -1
    for p in slow_pos.tolist():
        if p < last_end or drop[p]:
            continue
        start = p
        if unicodedata.combining(text[p]) and p > 0 and not drop[p - 1] and p - 1 >= last_end \
                and (tagged is None or not tagged[p - 1]):
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
