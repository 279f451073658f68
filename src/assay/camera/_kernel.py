"""The compiled (numba) inner loop of the residual filters: for every element of a
sub-band, the local signal variance as the smallest over the square windows 3, 5, 7 and 9
of the mean square minus the noise variance (floored at 0), and the part of the element the
adaptive Wiener filter removes, ``x * s0^2 / (s^2 + s0^2)``. One pass over an integral image
(float64: sums of squares over millions of elements) instead of a numpy pass per window
and per operation; the interior, where no window reaches the border, is a loop the compiler
vectorises. ``cache=True`` keeps the compiled code on disk."""

from __future__ import annotations

import numpy as np
from numba import njit

RADII = (1, 2, 3, 4)  # windows 3, 5, 7, 9


@njit(cache=True, nogil=True)
def _clipped(s, i, j, h, w, noise_var):  # type: ignore[no-untyped-def]
    """The smallest variance at (i, j) near the border: outside counts as 0, and is counted."""
    best = np.inf
    for r in range(1, 5):
        r0 = max(i - r, 0)
        r1 = min(i + r + 1, h)
        c0 = max(j - r, 0)
        c1 = min(j + r + 1, w)
        total = s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]
        var = total / ((2 * r + 1) * (2 * r + 1)) - noise_var
        best = min(best, var)
    return max(best, 0.0)


@njit(cache=True, nogil=True)
def noise_part(band, noise_var):  # type: ignore[no-untyped-def]
    """``band`` float32 (h, w) -> float32 (h, w): what the filter removes from each element."""
    return _filter(band, noise_var, False)


@njit(cache=True, nogil=True)
def wiener_gain(band, noise_var):  # type: ignore[no-untyped-def]
    """``band`` float32 (h, w) -> float32 (h, w): the factor s0^2 / (s^2 + s0^2) itself
    (noise_part is band x this), for a filter applied to another array than its input."""
    return _filter(band, noise_var, True)


@njit(cache=True, nogil=True)
def _filter(band, noise_var, gain_only):  # type: ignore[no-untyped-def]
    h, w = band.shape
    s = np.zeros((h + 1, w + 1), np.float64)
    for i in range(h):
        acc = 0.0
        for j in range(w):
            v = np.float64(band[i, j])
            acc += v * v
            s[i + 1, j + 1] = s[i, j + 1] + acc
    out = np.empty((h, w), np.float32)
    a1, a2, a3, a4 = 1.0 / 9.0, 1.0 / 25.0, 1.0 / 49.0, 1.0 / 81.0
    for i in range(h):
        inner = 4 <= i < h - 4
        lo, hi = (4, w - 4) if inner and w > 8 else (w, w)
        for j in range(min(lo, w)):
            best = _clipped(s, i, j, h, w, noise_var)
            g = noise_var / (best + noise_var)
            out[i, j] = g if gain_only else band[i, j] * g
        if lo < hi:
            # rows of the integral image each window needs, for this row
            t1, b1 = s[i - 1], s[i + 2]
            t2, b2 = s[i - 2], s[i + 3]
            t3, b3 = s[i - 3], s[i + 4]
            t4, b4 = s[i - 4], s[i + 5]
            for j in range(lo, hi):
                v1 = (b1[j + 2] - t1[j + 2] - b1[j - 1] + t1[j - 1]) * a1
                v2 = (b2[j + 3] - t2[j + 3] - b2[j - 2] + t2[j - 2]) * a2
                v3 = (b3[j + 4] - t3[j + 4] - b3[j - 3] + t3[j - 3]) * a3
                v4 = (b4[j + 5] - t4[j + 5] - b4[j - 4] + t4[j - 4]) * a4
                best = max(min(min(v1, v2), min(v3, v4)) - noise_var, 0.0)
                g = noise_var / (best + noise_var)
                out[i, j] = g if gain_only else band[i, j] * g
        for j in range(max(hi, lo), w):
            best = _clipped(s, i, j, h, w, noise_var)
            g = noise_var / (best + noise_var)
            out[i, j] = g if gain_only else band[i, j] * g
    return out


@njit(cache=True, nogil=True)
def luma_u8(img, w0, w1, w2):  # type: ignore[no-untyped-def]
    """``img`` uint8 (h, w, 3) -> float32 (h, w): w0 r + w1 g + w2 b, in float32 as numpy
    computes it on a float32 copy of the photo (which costs four times the photo's bytes)."""
    h, w, _ = img.shape
    out = np.empty((h, w), np.float32)
    a, b, c = np.float32(w0), np.float32(w1), np.float32(w2)
    for i in range(h):
        for j in range(w):
            out[i, j] = np.float32(img[i, j, 0]) * a + np.float32(img[i, j, 1]) * b + np.float32(img[i, j, 2]) * c
    return out


@njit(cache=True, nogil=True)
def noise_part_stack(bands, noise_var):  # type: ignore[no-untyped-def]
    """``bands`` float32 (n, h, w): noise_part of each (the colour channels of one sub-band
    in one call)."""
    out = np.empty(bands.shape, np.float32)
    for c in range(bands.shape[0]):
        out[c] = noise_part(bands[c], noise_var)
    return out


@njit(cache=True, nogil=True)
def zero_mean_2x2(x):  # type: ignore[no-untyped-def]
    """``x`` float32 (h, w) -> float32 (h, w): on each of the four 2x2 sub-lattices, each
    column less its mean, then each row less its mean (sums in float64): three passes over
    the array instead of numpy's strided copies."""
    h, w = x.shape
    colsum = np.zeros((2, w), np.float64)
    for i in range(h):
        p = i & 1
        for j in range(w):
            colsum[p, j] += x[i, j]
    nrows = ((h + 1) // 2, h // 2)
    for p in range(2):
        if nrows[p]:
            for j in range(w):
                colsum[p, j] /= nrows[p]
    ncols = ((w + 1) // 2, w // 2)
    out = np.empty((h, w), np.float32)
    for i in range(h):
        p = i & 1
        s0 = 0.0
        s1 = 0.0
        for j in range(w):
            v = np.float32(x[i, j] - colsum[p, j])
            out[i, j] = v
            if j & 1:
                s1 += v
            else:
                s0 += v
        m0 = np.float32(s0 / ncols[0]) if ncols[0] else np.float32(0.0)
        m1 = np.float32(s1 / ncols[1]) if ncols[1] else np.float32(0.0)
        for j in range(w):
            out[i, j] -= m1 if j & 1 else m0
    return out


@njit(cache=True, nogil=True)
def variance(x):  # type: ignore[no-untyped-def]
    """Population variance of a float32 array, summed in float64, in one pass."""
    flat = x.ravel()
    s = 0.0
    q = 0.0
    for v in flat:
        d = np.float64(v)
        s += d
        q += d * d
    n = flat.size
    m = s / n
    return max(q / n - m * m, 0.0)
