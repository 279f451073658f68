"""The compiled (numba) form of ``pdq._axis_band_span``: PDQ's filter weights along one axis of
a region whose edges may fall inside a pixel, on the reduced grid. The region variants of a
query (media/crops.py) need a few dozen such spans an image, each ~40 small numpy steps
(~0.1 ms); here one pass of loops (a few microseconds).

The weights are the numpy form's, bit for bit: every float64 sum adds the same terms in the
same order as its ``np.bincount`` calls do (pass k, then rows, then each row's virtual pixels
left to right; then rows and their columns left to right into reduced cells), each term the
same IEEE product, and no operation is fused (numba contracts nothing without fastmath).
tests/test_media_hashing.py compares both forms on random spans and on images' variants.
``cache=True`` keeps the compiled code on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, boundscheck=True)
def band_span(lo, step, last, a, vals, kmax, block, n_reduced):  # type: ignore[no-untyped-def]
    """``lo`` float64 (n,): where each of the span's n virtual pixels starts (original
    pixels); ``step``: their width; ``last``: the last original pixel the span covers;
    ``a`` int64 (64,), ``vals`` float64 (64, lv): ``pdq._tent_rows(n)``; ``kmax``:
    ceil(step). Returns (int64 (64, w) reduced cells, float32 (64, w) weights)."""
    n = lo.shape[0]
    lv = vals.shape[1]
    j0 = np.empty(n, np.int64)
    for i in range(n):
        j0[i] = np.int64(np.floor(lo[i]))
    first = j0[0]
    reach = 0
    for r in range(64):
        e = min(a[r] + lv - 1, n - 1)
        reach = max(reach, j0[e] - j0[a[r]])
    lc = reach + kmax + 1
    # Each virtual pixel averages the original pixels it overlaps, pass k by pass k.
    local = np.zeros((64, lc))
    for k in range(kmax + 1):
        for r in range(64):
            c0 = j0[a[r]] - first
            for c in range(lv):
                v = a[r] + c
                if v >= n:
                    continue
                j = j0[v] + k
                share = min(lo[v] + step, np.float64(j + 1)) - max(lo[v], np.float64(j))
                if share < 0.0:
                    share = 0.0
                share = share / step
                if share > 0.0 and j <= last:
                    local[r, j - first - c0] += vals[r, c] * share
    # Row-local columns into reduced cells, left to right within a cell.
    cell0 = first // block
    width = last // block - cell0 + 1
    binned = np.zeros((64, width))
    for r in range(64):
        c0 = j0[a[r]] - first
        for c in range(lc):
            g = first + c0 + c
            if g <= last:
                binned[r, g // block - cell0] += local[r, c]
    # The narrowest band of equal width holding each row's non-zero weights (pdq._nonzero_band:
    # a row of zeros spans the whole width, as argmax of no True gives 0).
    starts = np.zeros(64, np.int64)
    ends = np.full(64, width - 1, np.int64)
    for r in range(64):
        for c in range(width):
            if binned[r, c] != 0.0:
                starts[r] = c
                break
        for c in range(width - 1, -1, -1):
            if binned[r, c] != 0.0:
                ends[r] = c
                break
    bw = 0
    for r in range(64):
        bw = max(bw, ends[r] - starts[r] + 1)
    index = np.empty((64, bw), np.int64)
    band = np.empty((64, bw), np.float32)
    for r in range(64):
        s = min(starts[r], width - bw)
        for i in range(bw):
            index[r, i] = min(cell0 + s + i, n_reduced - 1)
            band[r, i] = np.float32(binned[r, s + i])
    return index, band
