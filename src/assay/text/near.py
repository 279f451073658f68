"""Near-verbatim passages: exact matches of one work that follow each other in the same
order in the checked text and in the work, separated by small edits (a changed
spelling, punctuation, a few words), joined into one passage.

The pieces are the exact spans and the maximal exact matches of at least
``anchor_chars`` (half the minimum span, at least 20) whose seed occurs at no more than
``PIECE_MAX_PLACES`` places of a shard; gaps of at most ``MAX_GAP`` characters on either side
join them. A passage is reported when its pieces add up to at least the minimum span
length and its similarity, 2 x (characters in pieces) / (passage length in the text
+ passage length in the work), is at least ``MIN_SIMILARITY``. Changed words are
counted over the gaps, each widened to whole words on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MAX_GAP = 40  # normalised bytes between two pieces, on either side
# A seed found at more places than this in a shard (a common phrase) yields no pieces:
# the cost of extending every place grows with the corpus, and such places seldom join.
PIECE_MAX_PLACES = 256
MIN_SIMILARITY = 0.75
_WORD = re.compile(r"\w+|[^\w\s]")


def anchor_chars(min_chars: int) -> int:
    return min(min_chars, max(20, min_chars // 2))


@dataclass
class Piece:
    a: int  # query byte start
    e: int  # query byte end
    b: int  # shard byte start
    work: int  # index of the work in its shard

    @property
    def f(self) -> int:
        return self.b + self.e - self.a


def chains(rows: np.ndarray, works: np.ndarray) -> list[list[Piece]]:
    """Pieces of one shard grouped into chains of at least two: same work, in order on
    both sides, no overlap, gaps of at most MAX_GAP."""
    pieces = [Piece(int(a), int(e), int(b), int(w)) for (a, e, b), w in zip(rows, works, strict=True)]
    pieces.sort(key=lambda p: (p.work, p.b, p.a))
    every: list[list[Piece]] = []
    open_chains: list[list[Piece]] = []
    for p in pieces:
        # chains that end far behind this piece in the work can take nothing more
        open_chains = [ch for ch in open_chains if ch[-1].work == p.work and p.b - ch[-1].f <= MAX_GAP]
        best: tuple[int, list[Piece]] | None = None
        for ch in open_chains:
            last = ch[-1]
            gq, gw = p.a - last.e, p.b - last.f
            if 0 <= gq <= MAX_GAP and 0 <= gw <= MAX_GAP and (best is None or gq + gw < best[0]):
                best = (gq + gw, ch)
        if best is not None:
            best[1].append(p)
        else:
            open_chains.append([p])
            every.append(open_chains[-1])
    return [c for c in every if len(c) > 1]


def changed_words(q_text: str, w_text: str, gaps: list[tuple[int, int, int, int]]) -> int:
    """Words changed over the gaps (query start, end, work start, end in characters),
    each gap widened to whole words on both sides."""
    total = 0
    for qa, qe, wa, we in gaps:
        qa2, qe2 = _widen(q_text, qa, qe)
        wa2, we2 = _widen(w_text, wa, we)
        qw = _WORD.findall(q_text[qa2:qe2])
        ww = _WORD.findall(w_text[wa2:we2])
        if qw == ww:
            continue
        # words common to both ends of the widened gap are not changes
        i = 0
        while i < min(len(qw), len(ww)) and qw[i] == ww[i]:
            i += 1
        j = 0
        while j < min(len(qw), len(ww)) - i and qw[-1 - j] == ww[-1 - j]:
            j += 1
        total += max(len(qw) - i - j, len(ww) - i - j, 1)
    return total


def _widen(text: str, a: int, b: int) -> tuple[int, int]:
    while a > 0 and text[a - 1].isalnum():
        a -= 1
    while b < len(text) and text[b].isalnum():
        b += 1
    return a, b
