"""The compiled inner loop of a check: seeds of the query looked up in one shard's
suffix array, each hit extended to a maximal exact match.

Why it is complete: with seeds of ``k`` bytes every ``step = min_bytes - k + 1``
query bytes, any match of at least ``min_bytes`` bytes contains a whole seed, so it
is found by its first seed; a later seed of the same match sees that it can extend
back past the seed before it and leaves the match to that one, so each maximal match
is reported once. Works are separated by 0xFF, a byte UTF-8 never uses, so no match
crosses from one work into the next. ``cache=True`` keeps the compiled code on disk.

The suffix array is read from disk unhashed (see index.py), so it is not trusted: an
entry outside the text ends the search (compiled code does not check bounds), and every
hit is compared with its seed from the seed's first byte, so that an entry out of order
can never be reported as a match. Either is returned as ``damaged`` = the suffix-array
index of the bad entry (-1 when all was well).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _bound(text, sa, q, p, k, upper):  # type: ignore[no-untyped-def]
    """First suffix-array index whose suffix's first k bytes are >= q[p:p+k]
    (> with ``upper``); -1 - i if entry i points outside the text."""
    n = text.shape[0]
    lo = 0
    hi = sa.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        s = sa[mid]
        if s < 0 or s >= n:
            return -1 - mid
        c = 0
        for i in range(k):
            if s + i >= n:
                c = -1
                break
            a = text[s + i]
            b = q[p + i]
            if a != b:
                c = -1 if a < b else 1
                break
        if c < 0 or (upper and c == 0):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def maximal_matches(text, sa, q, min_bytes, k, max_hits):  # type: ignore[no-untyped-def]
    """Every maximal exact match of at least ``min_bytes`` between the query ``q`` and
    ``text``: rows (query start, query end, text start). ``max_hits`` > 0 skips seeds
    that occur more often than that (the pieces of near-verbatim passages: a common
    phrase would cost time and join nothing); 0 finds everything. Returns the rows and
    ``damaged`` (see the module docstring)."""
    n = text.shape[0]
    m = q.shape[0]
    step = min_bytes - k + 1
    cap = 64
    res = np.empty((cap, 3), dtype=np.int64)
    cnt = 0
    p = 0
    while p + k <= m:
        lo = _bound(text, sa, q, p, k, False)
        if lo < 0:
            return res[:0], -1 - lo
        hi = _bound(text, sa, q, p, k, True) if lo < sa.shape[0] else lo
        if hi < 0:
            return res[:0], -1 - hi
        if max_hits > 0 and hi - lo > max_hits:
            p += step
            continue
        lim = p - step
        for j in range(lo, hi):
            t = np.int64(sa[j])
            if t < 0 or t >= n:
                return res[:0], j
            a = p
            b = t
            first = True
            while a > 0 and b > 0 and q[a - 1] == text[b - 1]:
                a -= 1
                b -= 1
                if a <= lim:
                    first = False
                    break
            if not first:
                continue
            e = p
            f = t
            while e < m and f < n and q[e] == text[f]:
                e += 1
                f += 1
            if e - p < k:
                return res[:0], j
            if e - a >= min_bytes:
                if cnt == cap:
                    cap *= 2
                    bigger = np.empty((cap, 3), dtype=np.int64)
                    bigger[:cnt] = res[:cnt]
                    res = bigger
                res[cnt, 0] = a
                res[cnt, 1] = e
                res[cnt, 2] = b
                cnt += 1
        p += step
    return res[:cnt], -1
