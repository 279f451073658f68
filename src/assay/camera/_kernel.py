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


RING = 16  # rows of the integral image kept: a row's windows reach 4 above and 5 below (10)


@njit(cache=True, nogil=True)
def _square(v):  # type: ignore[no-untyped-def]
    """|v|^2 in float64, for a real or a complex element."""
    x = np.float64(v.real)
    y = np.float64(v.imag)
    return x * x + y * y


@njit(cache=True, nogil=True)
def _clipped(s, i, j, h, w, noise_var):  # type: ignore[no-untyped-def]
    """The smallest variance at (i, j) near the border: outside counts as 0, and is counted.
    ``s`` holds integral-image row r at r % RING."""
    best = np.inf
    for r in range(1, 5):
        r0 = max(i - r, 0) % RING
        r1 = min(i + r + 1, h) % RING
        c0 = max(j - r, 0)
        c1 = min(j + r + 1, w)
        total = s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]
        var = total / ((2 * r + 1) * (2 * r + 1)) - noise_var
        best = min(best, var)
    return max(best, 0.0)


@njit(cache=True, nogil=True)
def noise_part(band, noise_var, out):  # type: ignore[no-untyped-def]
    """``band`` float32 (h, w) -> ``out`` (h, w), which may be ``band`` itself: what the
    filter removes from each element, band x s0^2 / (s^2 + s0^2)."""
    _filter(band, noise_var, out)


@njit(cache=True, nogil=True)
def wiener_spectrum(f, noise_var):  # type: ignore[no-untyped-def]
    """``f`` complex64 (h, w), in place: each element times the filter's factor
    s0^2 / (s^2 + s0^2), s^2 the local variance of |f| (the Wiener filter of the magnitude,
    applied to the spectrum: the filter's output over its input is that factor)."""
    _filter(f, noise_var, f)


@njit(cache=True, nogil=True)
def _filter(band, noise_var, out):  # type: ignore[no-untyped-def]
    """out = band x s0^2 / (s^2 + s0^2). The integral image of |band|^2 (float64: sums of
    squares over millions of elements) is kept as a ring of RING rows, each computed from
    the band before the row that needs it last is written: ``out`` may be ``band``, and no
    image-sized float64 array is allocated (numba's allocations are not the huge pages
    numpy's are: each 4-KiB page faulted in cost more system time than the arithmetic)."""
    h, w = band.shape
    s = np.zeros((RING, w + 1), np.float64)
    done = 0  # integral-image rows 0..done are in the ring
    a1, a2, a3, a4 = 1.0 / 9.0, 1.0 / 25.0, 1.0 / 49.0, 1.0 / 81.0
    for i in range(h):
        while done < min(i + 5, h):
            prev = s[done % RING]
            row = s[(done + 1) % RING]
            acc = 0.0
            row[0] = 0.0
            for j in range(w):
                acc += _square(band[done, j])
                row[j + 1] = prev[j + 1] + acc
            done += 1
        inner = 4 <= i < h - 4
        lo, hi = (4, w - 4) if inner and w > 8 else (w, w)
        for j in range(min(lo, w)):
            best = _clipped(s, i, j, h, w, noise_var)
            out[i, j] = band[i, j] * (noise_var / (best + noise_var))
        if lo < hi:
            # rows of the integral image each window needs, for this row
            t1, b1 = s[(i - 1) % RING], s[(i + 2) % RING]
            t2, b2 = s[(i - 2) % RING], s[(i + 3) % RING]
            t3, b3 = s[(i - 3) % RING], s[(i + 4) % RING]
            t4, b4 = s[(i - 4) % RING], s[(i + 5) % RING]
            for j in range(lo, hi):
                v1 = (b1[j + 2] - t1[j + 2] - b1[j - 1] + t1[j - 1]) * a1
                v2 = (b2[j + 3] - t2[j + 3] - b2[j - 2] + t2[j - 2]) * a2
                v3 = (b3[j + 4] - t3[j + 4] - b3[j - 3] + t3[j - 3]) * a3
                v4 = (b4[j + 5] - t4[j + 5] - b4[j - 4] + t4[j - 4]) * a4
                best = max(min(min(v1, v2), min(v3, v4)) - noise_var, 0.0)
                out[i, j] = band[i, j] * (noise_var / (best + noise_var))
        for j in range(max(hi, lo), w):
            best = _clipped(s, i, j, h, w, noise_var)
            out[i, j] = band[i, j] * (noise_var / (best + noise_var))


@njit(cache=True, nogil=True)
def luma_u8(img, w0, w1, w2, out):  # type: ignore[no-untyped-def]
    """``img`` uint8 (h, w, 3) -> ``out`` float32 (h, w): w0 r + w1 g + w2 b, in float32 as
    numpy computes it on a float32 copy of the photo (which costs four times the photo's
    bytes). Output arrays come from numpy (huge pages; see _filter)."""
    h, w, _ = img.shape
    a, b, c = np.float32(w0), np.float32(w1), np.float32(w2)
    for i in range(h):
        for j in range(w):
            out[i, j] = np.float32(img[i, j, 0]) * a + np.float32(img[i, j, 1]) * b + np.float32(img[i, j, 2]) * c


@njit(cache=True, nogil=True)
def noise_part_stack(bands, noise_var, out):  # type: ignore[no-untyped-def]
    """``bands`` float32 (n, h, w): noise_part of each (the colour channels of one sub-band
    in one call); ``out`` may be ``bands``."""
    for c in range(bands.shape[0]):
        _filter(bands[c], noise_var, out[c])


@njit(cache=True, nogil=True)
def zero_mean_2x2(x, out):  # type: ignore[no-untyped-def]
    """``x`` float32 (h, w) -> ``out`` float32 (h, w), which may be ``x``: on each of the
    four 2x2 sub-lattices, each column less its mean, then each row less its mean (sums in
    float64): three passes over the array instead of numpy's strided copies."""
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
def conj_product_energy(t, k, p, even):  # type: ignore[no-untyped-def]
    """``t``, ``k`` complex64 (h, half), half-planes of real transforms of width 2 (half - 1)
    (``even``) or 2 half - 1: writes p = conj(t) k and returns the sum of |p|^2 over the full
    plane in float64 (the inner columns stand for two: themselves and their mirror)."""
    h, half = t.shape
    stop = half - 1 if even else half  # the Nyquist column, when the width is even, counts once
    total = 0.0
    for i in range(h):
        v = np.conj(t[i, 0]) * k[i, 0]
        p[i, 0] = v
        edge = _square(v)
        inner = 0.0
        for j in range(1, stop):
            v = np.conj(t[i, j]) * k[i, j]
            p[i, j] = v
            inner += _square(v)
        if even:
            v = np.conj(t[i, half - 1]) * k[i, half - 1]
            p[i, half - 1] = v
            edge += _square(v)
        total += 2.0 * inner + edge
    return total


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


@njit(cache=True, nogil=True)
def dwt_cols(x, f_lo, f_hi, lo, hi):  # type: ignore[no-untyped-def]
    """One level of the wavelet transform of ``x`` float32 (n, m) along its first axis, with
    symmetric extension (PyWavelets' "symmetric": x[-1 - i] = x[i], x[n + i] = x[n - 1 - i],
    repeated for signals shorter than the filter): lo[o] = sum_j f_lo[j] x[2 o + 1 - j], hi
    likewise, into ``lo`` and ``hi`` float32 ((n + L - 1) // 2, m). Each output row is
    accumulated from whole input rows, so the inner loop runs along contiguous memory (what
    PyWavelets does along this axis gathers strided columns)."""
    n, m = x.shape
    flen = f_lo.shape[0]
    for o in range(lo.shape[0]):
        lo_row = lo[o]
        hi_row = hi[o]
        lo_row[:] = 0.0
        hi_row[:] = 0.0
        for j in range(flen):
            i = 2 * o + 1 - j
            if i < 0 or i >= n:
                i = i % (2 * n)
                if i >= n:
                    i = 2 * n - 1 - i
            src = x[i]
            a = f_lo[j]
            b = f_hi[j]
            for c in range(m):
                v = src[c]
                lo_row[c] += a * v
                hi_row[c] += b * v


@njit(cache=True, nogil=True)
def idwt_cols(a, d, r_lo, r_hi, out, with_a):  # type: ignore[no-untyped-def]
    """The inverse of dwt_cols (PyWavelets' idwt along the first axis): out[r] =
    sum_k a[k] r_lo[r + L - 2 - 2 k] + d[k] r_hi[r + L - 2 - 2 k] over the k that index the
    filters, ``out`` float32 (2 N - L + 2, m); ``with_a`` False: ``a`` taken as zeros (and not
    read)."""
    nk = d.shape[0]
    flen = r_lo.shape[0]
    m = d.shape[1]
    for r in range(out.shape[0]):
        row = out[r]
        row[:] = 0.0
        for k in range(max(r // 2, 0), min((r + flen - 2) // 2, nk - 1) + 1):
            t = r + flen - 2 - 2 * k
            cd = r_hi[t]
            dr = d[k]
            if with_a:
                ca = r_lo[t]
                ar = a[k]
                for c in range(m):
                    row[c] += ca * ar[c] + cd * dr[c]
            else:
                for c in range(m):
                    row[c] += cd * dr[c]
