"""The compiled (numba) pixel pass of the watermark decoder (watermark.py): every block's vote
from RGBX rows as Pillow stores them, in one pass over the pixels with no U plane kept, ~3x
less CPU than two Pillow matrix conversions, a merge and numpy cell sums (bench/RESULTS.md,
scan throughput, fourth pass). The votes are the Pillow pass's, bit for bit (watermark.py
says why whole-number cell sums decide all but the blocks on a vote boundary, which are
recomputed here in float64 exactly as the reference rounds them). ``cache=True`` keeps the
compiled code on disk.

U is OpenCV's fixed-point BGR2YUV (14-bit coefficients, round half up):
  Y = (4899 R + 9617 G + 1868 B + 2^13) >> 14
  U = ((B - Y) * 8061 + (128 << 14) + 2^13) >> 14
OpenCV clips U to 0..255; B - Y lies in -255..255, which puts U in 3..253, so the clip
never acts and is left out (tests/test_watermark.py checks all 2^24 colours).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_HAAR = 0.7071067811865476  # as watermark._HAAR
SCALE = 36


@njit(inline="always")
def _u(r, g, b):  # type: ignore[no-untyped-def]
    y = (4899 * r + 9617 * g + 1868 * b + 8192) >> 14
    return ((b - y) * 8061 + 2105344) >> 14


@njit(inline="always")
def _pixel_u(row, x):  # type: ignore[no-untyped-def]
    return _u(np.int32(row[4 * x]), np.int32(row[4 * x + 1]), np.int32(row[4 * x + 2]))


@njit(cache=True, nogil=True)
def blocks_u(rgbx, by, bx):  # type: ignore[no-untyped-def]
    """``rgbx`` uint8 (h, 4 * w): pixels of 4 bytes (R, G, B, pad); ``by``, ``bx`` int64 (n,):
    blocks of 8x8 pixels -> their U, uint8 (n, 8, 8)."""
    n = by.shape[0]
    out = np.empty((n, 8, 8), np.uint8)
    for k in range(n):
        for i in range(8):
            row = rgbx[by[k] * 8 + i]
            for j in range(8):
                out[k, i, j] = _pixel_u(row, bx[k] * 8 + j)
    return out


@njit(cache=True, nogil=True)
def block_maxima(rgbx, bh, bw):  # type: ignore[no-untyped-def]
    """``rgbx`` as in blocks_u, at least 8 * bh rows of 8 * bw pixels -> int32 (bh, bw): per
    block of 8x8 pixels (4x4 cells of 2x2), the largest cell sum of U but the first cell's."""
    best = np.zeros((bh, bw), np.int32)
    n = bw * 8
    u = np.empty(n, np.int32)
    cells = np.empty(bw * 4, np.int32)
    for bi in range(bh):
        for ci in range(4):
            cells[:] = 0
            for di in range(2):
                row = rgbx[bi * 8 + ci * 2 + di]
                for j in range(n):
                    u[j] = _pixel_u(row, j)
                for j in range(bw * 4):
                    cells[j] += u[2 * j] + u[2 * j + 1]
            for bj in range(bw):
                m = best[bi, bj]
                for cj in range(1 if ci == 0 else 0, 4):
                    m = max(m, cells[bj * 4 + cj])
                best[bi, bj] = m
    return best


@njit(cache=True, nogil=True)
def _boundary_vote(rgbx, bi, bj):  # type: ignore[no-untyped-def]
    """The vote of block (bi, bj) as the reference casts it: the Haar approximation in
    float64 as PyWavelets rounds it (columns first, products rounded before the sum),
    the largest magnitude but [0, 0], mod 36 above 18."""
    u = np.empty((8, 8), np.float64)
    for i in range(8):
        row = rgbx[bi * 8 + i]
        for j in range(8):
            u[i, j] = _pixel_u(row, bj * 8 + j)
    m = 0.0
    for r in range(4):
        for c in range(4):
            if r == 0 and c == 0:
                continue
            a = u[2 * r, 2 * c] * _HAAR + u[2 * r + 1, 2 * c] * _HAAR
            b = u[2 * r, 2 * c + 1] * _HAAR + u[2 * r + 1, 2 * c + 1] * _HAAR
            m = max(m, abs(a * _HAAR + b * _HAAR))
    return m % SCALE > 0.5 * SCALE  # exact, as fmod (m >= 0)


@njit(cache=True, nogil=True)
def votes(rgbx, bh, bw):  # type: ignore[no-untyped-def]
    """``rgbx`` as in block_maxima -> float64 (bh * bw,): each block's vote (0 or 1), row-major."""
    best = block_maxima(rgbx, bh, bw)
    out = np.empty(bh * bw, np.float64)
    for bi in range(bh):
        for bj in range(bw):
            rest = best[bi, bj] % (2 * SCALE)
            if rest == 0 or rest == SCALE:
                vote = _boundary_vote(rgbx, bi, bj)
            else:
                vote = rest > SCALE
            out[bi * bw + bj] = 1.0 if vote else 0.0
    return out
