"""The compiled (numba) inner loop of the residual filters: for every element of a
sub-band, the local signal variance as the smallest over square windows of the mean
square minus the noise variance (floored at 0), and the part of the element the adaptive
Wiener filter removes, ``x * s0^2 / (s^2 + s0^2)``. One pass over an integral image
(float64: sums of squares over millions of elements) instead of a numpy pass per window
and per operation. ``cache=True`` keeps the compiled code on disk."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def noise_part(band, noise_var, radii):  # type: ignore[no-untyped-def]
    """``band`` float32 (h, w); ``radii`` the windows' half-sizes (window 2r+1). Outside the
    band counts as 0 and is counted in each window's area, as a zero-padded box filter."""
    h, w = band.shape
    s = np.zeros((h + 1, w + 1), np.float64)
    for i in range(h):
        acc = 0.0
        for j in range(w):
            v = band[i, j]
            acc += v * v
            s[i + 1, j + 1] = s[i, j + 1] + acc
    out = np.empty((h, w), np.float32)
    nr = radii.shape[0]
    for i in range(h):
        for j in range(w):
            best = np.inf
            for k in range(nr):
                r = radii[k]
                r0 = max(i - r, 0)
                r1 = min(i + r + 1, h)
                c0 = max(j - r, 0)
                c1 = min(j + r + 1, w)
                total = s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]
                side = 2 * r + 1
                var = total / (side * side) - noise_var
                if var < 0.0:
                    var = 0.0
                if var < best:
                    best = var
            out[i, j] = band[i, j] * (noise_var / (best + noise_var))
    return out
