"""A second reading of a checked text: the rewrites an output may carry to hide a copied
passage, undone on the checked side only.

Some rewrites cannot be undone by the normalisation both sides share, because undoing
them in every text would merge words or change numbers a work holds: letters spaced out
(``I n  t h e  b e g i n n i n g``), digits for letters (``1n th3 b3g1nn1ng``), words
joined by underscores or dots (``in_the_beginning``), line numbers and numbered-list
markers at line starts (``12: ``), table bars, HTML markup in a text that is not an HTML
file, emoji and other symbols between words (``in👏the👏beginning``), and note marks
(``beginning[12]``, ``beginning¹``). The checked text is read a second time with them
undone and the spans of that reading are added to those of the first (match.check): the first reading still
finds everything it found, the works' side (the index) is never rewritten, and a work's
offsets come from the index as before. Each character of the second reading keeps the
range of code points of the checked text it came from, as in normalize.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from .normalize import Normalized, normalize

# Letter-spacing: runs of at least _MIN_ITEMS single characters (a character and its
# marks) each separated from the next by white space, optionally around one separator
# symbol (" / ", " | ", " · "), or by a joiner (a hyphen, dash, "+" or "~"). Letters
# joined so, words apart: the joiners are removed. Otherwise the narrowest white-space
# separator is the gap between letters and is removed; a wider one, a separator symbol,
# and a line break beside either is a word gap and reads as a space. A run whose gaps are
# all alike (line breaks aside) says nothing about where its words end: it is given the
# word ends of a work that has its letters (``segment``, from the index), or left as it is.
_SEP_SYMBOLS = "/|\u00b7\u2022\u2027\u2219\u22c5"
_JOINS = "\\-\u2010-\u2014+~"  # a hyphen, dash, plus or tilde between letters: "t-h-e"
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\ufe00-\ufe0f\u200b-\u200d\u2060"
# a character, its marks, and punctuation written against it ("h." in "e a r t h.  A n d")
_ITEM = rf"[^\s{_SEP_SYMBOLS}{_JOINS}{_MARKS}][{_MARKS}]*[^\w\s{_SEP_SYMBOLS}{_JOINS}]{{0,3}}"
_SEP = rf"\s*[{_JOINS}][\s{_JOINS}]*|\s+(?:[{_SEP_SYMBOLS}]\s+)?"
_MIN_ITEMS = 6
_MIN_WORD_GAPS = 0.08
_SPACED = re.compile(rf"(?<![^\W_])(?:{_ITEM}(?:{_SEP})){{{_MIN_ITEMS - 1},}}{_ITEM}(?![^\W_])")
_SEP_RE = re.compile(_SEP)

# Words joined by underscores, dots or plus signs (three words at least, not all of one
# letter as in "U.S.A" and not all digits as in "1.2.3"): the joiners (with the
# punctuation beside them: "earth,_and") are spaces.
_JOINER = r"(?:[^\w\s]|_)*[_.+](?:[^\w\s]|_)*"
_JOINED = re.compile(rf"(?<![\w.+])[^\W_]+(?:{_JOINER}[^\W_]+){{2,}}")
_JOINERS = re.compile(_JOINER)

# Line numbers and numbered-list markers at the start of a line ("12: ", "12. ", "3) ",
# "[4] ", "1:1 ", "  7\t"): dropped where they count (see _counting); "+ " list markers.
_LINE_NUMBER = re.compile(r"(?m)^[ \t]*(?:\[?\d{1,6}(?:[:.]\d{1,6})?[\].:)|]?|\+)[ \t]+(?=\S)")

# Digits (and "$", "@") for letters, in a token that mixes them with letters: 1n th3 b3g1nn1ng.
# A number is never folded (verse numbers, years), nor an ordinal (4th, 21st).
_LEET = str.maketrans("013456789$", "oieasgtbgs")
_ORDINAL = re.compile(r"\d*(?:1st|2nd|3rd|\dth)")
_AT = re.compile(r"(?<=[^\W_])@|@(?=[^\W\d_])")

# Note marks against a word: "beginning[12]", "beginning[a]", "beginning¹²".
_NOTE = re.compile(r"(?<=[^\W\d_])(?:\[(?:\d{1,3}|[a-z])\]|[\u00b9\u00b2\u00b3\u2070\u2074-\u2079]+)(?![^\W_])")


@lru_cache(maxsize=1)
def _symbols() -> re.Pattern[str]:
    """Runs of symbols outside ASCII that the normalisation keeps (emoji, stars, arrows,
    their skin-tone modifiers) and that stand for no letter or digit (not circled letters
    or regional indicators, which are letters there): between words, a space."""
    from .normalize import _map_unit

    ranges: list[list[int]] = []
    for cp in (*range(0x80, 0x10000), *range(0x1F000, 0x1FB00)):
        ch = chr(cp)
        if unicodedata.category(ch)[0] != "S":
            continue
        m = _map_unit(ch)
        if not m.strip() or any(c.isalnum() for c in m):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    cls = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{cls}]+")


_MARKUP_HINT = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


_WHITE = np.zeros(0x3002, dtype=bool)  # the last entry stands for every code point above U+3000
_WHITE[[9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]] = True


_APART = np.zeros(128, dtype=bool)
_APART[[ord(c) for c in "!\"'(),-.:;?[]{}+~`"]] = True


def _candidates(text: str) -> tuple[bool, list[tuple[int, int]]]:
    """Cheap look-outs (numpy over the code points; the regular expressions cost several
    times a normalisation on every text): whether the text may hold a letter-spaced run
    (six characters standing alone within a few characters of each other), and the
    white-space-delimited chunks that may hold joined words (a joiner between two
    characters that are not white space)."""
    if text.isascii():
        cps = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        white = np.ones(len(cps) + 2, dtype=bool)
        white[1:-1] = _WHITE[:128][cps]
    else:
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        white = np.ones(len(cps) + 2, dtype=bool)
        white[1:-1] = _WHITE[np.minimum(cps, len(_WHITE) - 1)]
    # white space, a joiner ("t-h-e") or ASCII punctuation ("h." in "e a r t h.  A n d")
    apart = white.copy()
    apart[1:-1] |= _APART[np.minimum(cps, 127)] & (cps < 128) | ((cps >= 0x2010) & (cps <= 0x2014))
    alone = np.flatnonzero(~apart[1:-1] & apart[:-2] & apart[2:])
    spaced = False
    if len(alone) >= _MIN_ITEMS:
        near = np.concatenate(([0], (np.diff(alone) <= 8).astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(near))
        spaced = bool(len(edges)) and int((edges[1::2] - edges[::2]).max()) >= _MIN_ITEMS - 1
    joined = np.flatnonzero(((cps == 46) | (cps == 95) | (cps == 43)) & ~white[:-2] & ~white[2:])
    chunks: list[tuple[int, int]] = []
    for j in joined.tolist():
        if chunks and j < chunks[-1][1]:
            continue
        a = j
        while a > 0 and not white[a]:  # white[a] is the code point before j's chunk position a
            a -= 1
        b = j + 1
        while b < len(cps) and not white[b + 1]:
            b += 1
        chunks.append((a, b))
    return spaced, chunks


Uniform = list[tuple[int, int, int, int]]  # per letter-spaced run with gaps all alike: (item, gap) ranges


def _spaced_edits(text: str) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]], list[Uniform]]:
    """The letter gaps of letter-spaced runs (to remove), the runs, and the runs whose
    gaps are all alike (each item's range and the gap after it; the last gap is empty)."""
    edits: list[tuple[int, int, str]] = []
    runs: list[tuple[int, int]] = []
    uniform: list[Uniform] = []
    for m in _SPACED.finditer(text):
        run = m.group()
        items = _SEP_RE.split(run)
        if sum(1 for ch in items if ch[:1].isalnum()) < 0.8 * len(items):
            continue  # a rule of asterisks, a row of punctuation
        seps = [(s.start(), s.end(), None if _word_gap_mark(s.group()) else s.end() - s.start())
                for s in _SEP_RE.finditer(run)]
        base = m.start()
        joins = [(a, b) for a, b, w in seps if w is None and b - a == 1 and not run[a].isspace()
                 and run[a] not in _SEP_SYMBOLS]
        if joins:  # "t-h-e b-e-g": joined letters, words apart; all joined: where words end is not written
            runs.append((m.start(), m.end()))
            if len(joins) < len(seps):
                edits.extend((base + a, base + b, "") for a, b in joins)
                edits.extend(_word_gaps(run, base, [(a, b) for a, b, w in seps if (a, b) not in joins]))
                continue
            seps = [(a, b, 1) for a, b, _ in seps]
        plain = {w for _, _, w in seps if w is not None}
        if not plain:
            continue
        if not joins:
            runs.append((m.start(), m.end()))
        # a line break may end a line inside a word or between words: it tells where words
        # end only beside wider gaps or separator symbols
        symbols = any(w is None and not run[a:b].isspace() for a, b, w in seps)
        narrow = min(plain)
        # words of ten letters on average at most: a wider gap now and then (two spaces
        # after a full stop) does not tell where words end
        wider = sum(1 for _, _, w in seps if w is None or w > narrow)
        if (len(plain) == 1 and not symbols) or wider < _MIN_WORD_GAPS * len(seps):
            # gaps all alike: where words end is not written here (segment may know)
            bounds = [0] + [x for a, b, _ in seps for x in (a, b)] + [len(run)]
            uniform.append([(base + bounds[2 * j], base + bounds[2 * j + 1], base + bounds[2 * j + 1],
                             base + (bounds[2 * j + 2] if 2 * j + 2 < len(bounds) - 1 else bounds[2 * j + 1]))
                            for j in range(len(items))])
            continue
        edits.extend((base + a, base + b, "") for a, b, w in seps if w == narrow)
        edits.extend(_word_gaps(run, base, [(a, b) for a, b, w in seps if w != narrow]))
    return edits, runs, uniform


def _word_gaps(run: str, base: int, gaps: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Word gaps written with a symbol the normalisation keeps ("+ + +", " | "): a space."""
    return [(base + a, base + b, " ") for a, b in gaps if not run[a:b].isspace()]


def _word_gap_mark(sep: str) -> bool:
    return not sep.isspace() or "\n" in sep or "\r" in sep


def _joined_edits(text: str, chunks: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    edits = []
    for m in (m for a, b in chunks for m in _JOINED.finditer(text, a, b)):
        words = _JOINERS.split(m.group())
        if all(len(w) == 1 for w in words) or all(w.isdigit() for w in words):
            continue
        edits.extend((m.start() + j.start(), m.start() + j.end(), " ") for j in _JOINERS.finditer(m.group()))
    return edits


Segmenter = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _segmented(uniform: list[Uniform], segment: Segmenter, base: Normalized) -> list[tuple[int, int, str]]:
    """Gaps to remove in letter-spaced runs whose gaps are all alike, where ``segment``
    (the index: match.check) finds their letters with the spaces of a work: every gap
    inside such a stretch but those where the work has a space. The letters are those of
    ``base`` (the first reading) inside the run."""
    edits: list[tuple[int, int, str]] = []
    for items in uniform:
        starts = np.array([a for a, _, _, _ in items], dtype=np.int64)
        lo = int(np.searchsorted(base.ostart, items[0][0], side="left"))
        hi = int(np.searchsorted(base.ostart, items[-1][1], side="left"))
        cps = np.frombuffer(base.text[lo:hi].encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        keep = np.flatnonzero(cps != 32)
        if len(keep) < 2:
            continue
        owner = np.searchsorted(starts, base.ostart[lo + keep], side="right") - 1
        if int(cps[keep].max()) < 128:
            letters = cps[keep].astype(np.uint8)
        else:
            encoded = [chr(c).encode("utf-8") for c in cps[keep].tolist()]
            letters = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            owner = np.repeat(owner, [len(e) for e in encoded])
        first = np.ones(len(letters), dtype=bool)
        first[1:] = owner[1:] != owner[:-1]
        spaces, covered = segment(letters, (letters & 0xC0) != 0x80)
        # the gaps from the item before to this one go when the letters on both sides are
        # in one stretch and the work has no space before this item's first letter
        joined = first & covered & ~spaces
        joined[0] = False
        joined[1:] &= covered[:-1]
        for i in np.flatnonzero(joined).tolist():
            for k in range(int(owner[i - 1]), int(owner[i])):
                _, _, ga, gb = items[k]
                if gb > ga:
                    edits.append((ga, gb, ""))
    return edits


# Words written with no space between them ("inthebeginning", "InTheBeginning"): a token of
# the first reading of more than this many letters, with the words of letters beside it
# (up to as many letters on either side), is given the word ends of a work that has its letters (segment, as for letter-spaced
# runs), as spaces put in (the spaces it has stay).
_LONG_TOKEN = 24


def _unspaced(base: Normalized, segment: Segmenter, taken: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Spaces to put in long tokens of letters; ``taken``: ranges of the checked text other
    rewrites already undo (words joined by underscores read as one long token first)."""
    q = np.frombuffer(base.text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    bounds = np.concatenate(([-1], np.flatnonzero(q == 32), [len(q)]))
    long = np.flatnonzero(np.diff(bounds) > _LONG_TOKEN + 1)
    if not len(long):
        return []
    starts = [a for a, _ in taken]
    edits: list[tuple[int, int, str]] = []
    done = -1
    for k in long.tolist():
        if k <= done:
            continue
        a, b = int(bounds[k]) + 1, int(bounds[k + 1])
        if not base.text[a:b].isalpha() or (taken and _inside(taken, starts, int(base.ostart[a]), int(base.oend[b - 1]))):
            continue
        # with the words of letters beside it, up to a long token's length on either side
        lo, hi, j = a, b, k
        while j > 0 and a - lo < _LONG_TOKEN:
            pa, pb = int(bounds[j - 1]) + 1, int(bounds[j])
            if not base.text[pa:pb].isalpha():
                break
            lo, j = pa, j - 1
        j = k
        while j + 2 < len(bounds) and hi - b < _LONG_TOKEN:
            na, nb = int(bounds[j + 1]) + 1, int(bounds[j + 2])
            if not base.text[na:nb].isalpha() or nb - na > _LONG_TOKEN:
                break
            hi, j = nb, j + 1
        done = j
        chars = [c for c in range(lo, hi) if base.text[c] != " "]
        encoded = [base.text[c].encode("utf-8") for c in chars]
        letters = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        char = np.repeat(np.array(chars), [len(e) for e in encoded])
        spaces, covered = segment(letters, (letters & 0xC0) != 0x80)
        put = spaces & covered
        put[0] = False
        put[1:] &= covered[:-1] & (char[1:] == char[:-1] + 1)  # no space there yet
        for i in np.flatnonzero(put).tolist():
            c = int(char[i])
            if base.unit_start(c):
                p = int(base.ostart[c])
                edits.append((p, p, " "))
    return edits


def _edits(text: str, segment: Segmenter | None = None, base: Normalized | None = None) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, replacement) of the original text, in order."""
    maybe_spaced, chunks = _candidates(text)
    spaced, runs, uniform = _spaced_edits(text) if maybe_spaced else ([], [], [])
    if uniform and segment is not None and base is not None:
        spaced += _segmented(uniform, segment, base)
    edits = _joined_edits(text, chunks)
    if segment is not None and base is not None:
        taken = sorted((e[0], e[1]) for e in edits) + runs
        spaced += _unspaced(base, segment, sorted(taken))
    numbers = list(_LINE_NUMBER.finditer(text))
    if runs:  # inside a letter-spaced run, "7 h 3" is letters, not a line number and a word
        starts = [a for a, _ in runs]
        numbers = [m for m in numbers if not _inside(runs, starts, m.start(), m.end())]
    edits += _counting(numbers)
    if "|" in text:
        edits += [(m.start(), m.start() + 1, " ") for m in re.finditer(r"\|", text)]
    if "@" in text:
        edits += [(m.start(), m.end(), "a") for m in _AT.finditer(text)]
    if "[" in text or not text.isascii():
        edits += [(m.start(), m.end(), "") for m in _NOTE.finditer(text)]
    if not text.isascii():
        edits += [(m.start(), m.end(), " ") for m in _symbols().finditer(text)]
    edits = sorted(edits + spaced)
    kept: list[tuple[int, int, str]] = []
    for e in edits:  # the first of two edits that overlap wins
        if not kept or e[0] >= kept[-1][1]:
            kept.append(e)
    return kept


def _counting(numbers: list[re.Match[str]]) -> list[tuple[int, int, str]]:
    """The line numbers that count (each one more than the one before it, or one less than
    the next: "70 r3c31v3" at two line starts is leetspeak, not numbering), and "+ "
    list markers where two lines or more start with one."""
    values = [int(d[-1]) if (d := re.findall(r"\d+", m.group())) else None for m in numbers]
    out = []
    for i, (m, v) in enumerate(zip(numbers, values, strict=True)):
        if v is None:
            counts = sum(1 for x in values if x is None) >= 2
        else:
            counts = (i > 0 and values[i - 1] == v - 1) or (i + 1 < len(values) and values[i + 1] == v + 1)
        if counts:
            out.append((m.start(), m.end(), ""))
    return out


def _inside(runs: list[tuple[int, int]], starts: list[int], a: int, b: int) -> bool:
    i = bisect.bisect_right(starts, b - 1) - 1
    return i >= 0 and runs[i][1] > a


def _apply(text: str, edits: list[tuple[int, int, str]]) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """The edited text, per character of it the original range it stands for (a
    replacement's characters all stand for the range it replaced; an insertion, for the
    empty range where it goes), and the replacement it is part of (-1: none)."""
    parts: list[str] = []
    seg_a: list[int] = []  # per piece: original start, end, length in the edited text, copied?
    seg_b: list[int] = []
    seg_n: list[int] = []
    copied: list[bool] = []
    at = 0
    for a, b, rep in [*edits, (len(text), len(text), "")]:
        if a > at:
            parts.append(text[at:a])
            seg_a.append(at)
            seg_b.append(a)
            seg_n.append(a - at)
            copied.append(True)
        if rep:
            parts.append(rep)
            seg_a.append(a)
            seg_b.append(b)
            seg_n.append(len(rep))
            copied.append(False)
        at = b
    lens = np.array(seg_n, dtype=np.int64)
    seg = np.repeat(np.arange(len(lens)), lens)
    within = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    a_arr = np.array(seg_a, dtype=np.int64)[seg]
    is_copy = np.array(copied, dtype=bool)[seg]
    mstart = np.where(is_copy, a_arr + within, a_arr)
    mend = np.where(is_copy, mstart + 1, np.array(seg_b, dtype=np.int64)[seg])
    rid = np.where(is_copy, -1, seg)  # the replacement each character is part of
    return "".join(parts), mstart, mend, rid


def _fold_leet(norm: str) -> str:
    """Digits for letters undone in the tokens of a normalised text that mix them with
    letters, and in a number of at most three digits beside such a token ("1 4m" -> "i am",
    "70 53nd" -> "to send"; a year or a verse number stays)."""
    cps = np.frombuffer(norm.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    digit = (cps - 48) < 10
    letter = ((cps - 97) < 26) | (cps >= 128)
    dollar = cps == 36
    adj = np.flatnonzero((digit[:-1] & letter[1:]) | (letter[:-1] & digit[1:])
                         | (dollar[:-1] & letter[1:]) | (letter[:-1] & dollar[1:]))
    if not len(adj):
        return norm
    spaces = np.flatnonzero(cps == 32)
    k = np.searchsorted(spaces, adj, side="right")
    starts = np.where(k > 0, spaces[np.maximum(k - 1, 0)] + 1, 0) if len(spaces) else np.zeros_like(adj)
    ends = spaces[np.minimum(k, len(spaces) - 1)] if len(spaces) else np.full_like(adj, len(cps))
    ends = np.where(k < len(spaces), ends, len(cps))
    out: list[str] | None = None
    n = len(norm)
    for a, b in sorted(set(zip(starts.tolist(), ends.tolist(), strict=True))):
        if _ORDINAL.fullmatch(norm, a, b):
            continue
        if out is None:
            out = list(norm)
        # a number of at most three digits on either side
        if a >= 2:
            p = norm.rfind(" ", 0, a - 1) + 1
            if 0 < a - 1 - p <= 3 and norm[p:a - 1].isdigit():
                a = p
        if b < n:
            e = norm.find(" ", b + 1)
            e = n if e < 0 else e
            if 0 < e - b - 1 <= 3 and norm[b + 1:e].isdigit():
                b = e
        # "he11o": a doubled 1 is ll, one 1 is i
        out[a:b] = norm[a:b].replace("11", "ll").translate(_LEET)
    return norm if out is None else "".join(out)


def _digit_by_letter(norm: str) -> bool:
    """Whether a digit (or "$") stands next to a letter in a normalised text."""
    q = np.frombuffer(norm.encode("utf-8"), dtype=np.uint8)
    digit = ((q - 48) < 10) | (q == 36)
    letter = ((q - 97) < 26) | (q >= 128)
    return bool((digit[:-1] & letter[1:]).any() or (letter[:-1] & digit[1:]).any())


def second_reading(text: str, base: Normalized, *, markup: bool = False,
                   segment: Segmenter | None = None) -> Normalized | None:
    """The checked text normalised with the rewrites above undone, each normalised
    character mapping to the code points of ``text`` it came from; None when it reads
    the same as ``base`` (the normal reading, ``normalize(text, markup=markup)``).
    ``segment(letters, lead)``: where an index's works put spaces between these letters
    (UTF-8 bytes; lead: a byte starts a character), as (space before byte i, byte i is in
    a stretch found), for letter-spaced runs whose gaps are all alike and words written
    with no space between them."""
    edits = _edits(text, segment, base)
    html = not markup and ("<" in text or "&" in text) and _MARKUP_HINT.search(text) is not None
    if not edits and not html:  # digits for letters alone: the first reading, folded
        folded = _fold_leet(base.text) if _digit_by_letter(base.text) else base.text
        return None if folded == base.text else Normalized(folded, base.ostart, base.oend, len(text))
    if not edits:
        norm = normalize(text, markup=markup or html)
        folded = _fold_leet(norm.text) if _digit_by_letter(norm.text) else norm.text
        return None if folded == base.text or not folded else Normalized(folded, norm.ostart, norm.oend, len(text))
    edited, mstart, mend, rid = _apply(text, edits)
    norm = normalize(edited, markup=markup or html)
    folded = _fold_leet(norm.text) if _digit_by_letter(norm.text) else norm.text
    if folded == base.text or not folded:
        return None
    # a unit starts where the edited text's does, but not inside one replacement
    t = norm.ostart
    starts = np.ones(len(t), dtype=bool)
    if len(t) > 1:
        r = rid[t]
        starts[1:] = (t[1:] != t[:-1]) & ~((r[1:] == r[:-1]) & (r[1:] >= 0))
    return Normalized(folded, mstart[t], mend[norm.oend - 1], len(text), starts)
