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


@njit(cache=True, nogil=True)
def _narrow(text, sa, lo, hi, d, c):  # type: ignore[no-untyped-def]
    """The part of sa[lo:hi] (suffixes sharing their first d bytes) whose byte d is c.
    An entry outside the text reads as a byte below every byte (no crash; the matcher
    that runs on the result checks every entry it reports)."""
    n = text.shape[0]
    a = lo
    b = hi
    while a < b:
        m = (a + b) >> 1
        s = sa[m] + d
        v = np.int64(text[s]) if 0 <= s < n else np.int64(-1)
        if v < c:
            a = m + 1
        else:
            b = m
    first = a
    b = hi
    while a < b:
        m = (a + b) >> 1
        s = sa[m] + d
        v = np.int64(text[s]) if 0 <= s < n else np.int64(-1)
        if v <= c:
            a = m + 1
        else:
            b = m
    return first, a


@njit(cache=True, nogil=True)
def _longest_spaced(text, sa, letters, lead, pos, cap, par, li, dd, los, his, spc, stack, spaces):  # type: ignore[no-untyped-def]
    """Longest run of ``letters`` from ``pos`` found in the text with a space, or none,
    before each letter (depth-first over the suffix array); returns its length in bytes
    and the places visited, and sets ``spaces[i]`` for the letters the text puts a space
    before."""
    m = letters.shape[0]
    lo, hi = _narrow(text, sa, 0, sa.shape[0], 0, np.int64(letters[pos]))
    if lo >= hi:
        return 0, 1
    par[0] = -1
    li[0] = pos + 1
    dd[0] = 1
    los[0] = lo
    his[0] = hi
    spc[0] = False
    count = 1
    top = 0
    stack[top] = 0
    top += 1
    best = 0
    while top > 0 and count + 2 <= cap:
        top -= 1
        k = stack[top]
        i = li[k]
        d = dd[k]
        if i > li[best]:
            best = k
        if i >= m:
            continue
        c = np.int64(letters[i])
        a, b = _narrow(text, sa, los[k], his[k], d, c)
        if a < b:
            par[count] = k
            li[count] = i + 1
            dd[count] = d + 1
            los[count] = a
            his[count] = b
            spc[count] = False
            stack[top] = count
            top += 1
            count += 1
        if lead[i]:
            a2, b2 = _narrow(text, sa, los[k], his[k], d, np.int64(32))
            if a2 < b2:
                a3, b3 = _narrow(text, sa, a2, b2, d + 1, c)
                if a3 < b3:
                    par[count] = k
                    li[count] = i + 1
                    dd[count] = d + 2
                    los[count] = a3
                    his[count] = b3
                    spc[count] = True
                    stack[top] = count
                    top += 1
                    count += 1
    k = best
    while k >= 0:
        if spc[k]:
            spaces[li[k] - 1] = True
        k = par[k]
    return li[best] - pos, count


@njit(cache=True, nogil=True)
def spaced_segments(text, sa, letters, lead, min_bytes, max_nodes, budget):  # type: ignore[no-untyped-def]
    """Where words end in ``letters`` (a text's letters with its spaces taken out), as
    one shard's text has them: from each start, the longest stretch of at least
    ``min_bytes`` the text holds with spaces put back; the next stretch starts where it
    ends. Returns ``spaces`` (a space goes before letter i) and ``covered`` (letter i is
    in such a stretch). A search from one start visits at most ``max_nodes`` places, all
    searches together at most ``budget`` (then the rest of the letters stay uncovered)."""
    m = letters.shape[0]
    spaces = np.zeros(m, dtype=np.bool_)
    covered = np.zeros(m, dtype=np.bool_)
    cap = max_nodes
    par = np.empty(cap, dtype=np.int64)
    li = np.empty(cap, dtype=np.int64)
    dd = np.empty(cap, dtype=np.int64)
    los = np.empty(cap, dtype=np.int64)
    his = np.empty(cap, dtype=np.int64)
    spc = np.empty(cap, dtype=np.bool_)
    stack = np.empty(cap, dtype=np.int64)
    found = np.zeros(m, dtype=np.bool_)
    pos = 0
    while pos < m:
        if not lead[pos]:
            pos += 1
            continue
        if budget <= 0:
            break
        n, visited = _longest_spaced(text, sa, letters, lead, pos, cap, par, li, dd, los, his, spc, stack, found)
        budget -= visited
        for i in range(pos, pos + n):
            if n >= min_bytes:
                covered[i] = True
                spaces[i] = found[i]
            found[i] = False
        pos += n if n >= min_bytes else 1
    return spaces, covered
