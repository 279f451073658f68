"""PDQ: Meta's 256-bit perceptual image hash.

Two ways to compute it:

* ``reference_pdq`` hands the full-resolution pixels to the ``pdqhash`` binding of
  Meta's C++ code: bit-identical to python-threatexchange, slow on large images.
* ``fast_pdq`` starts from a *reduced* luma plane (a JPEG decoded at 1/2..1/8 scale,
  or an image shrunk by whole-pixel block averages) and re-creates PDQ's own
  downsampling in the coordinates of the original image: PDQ blurs with two passes
  of a box filter ("Jarosz" tent filter) and then samples 64x64 points. Both steps
  are linear, so they collapse into one 64xN weight matrix per axis; each reduced
  pixel stands for the block of original pixels it averages, so its weight is the
  sum of theirs. The DCT, median threshold and quality metric then follow the C++
  code on the float 64x64 buffer (no 8-bit rounding in between).

Bit order everywhere: the hex string as python-threatexchange prints it, i.e. the
256 bits big-endian, so ``bytes.fromhex(pdq_hex(bits))`` is the packed bit vector.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InvalidSignal
from ..signals import PDQ

# The order pdqhash.compute_dihedral returns its eight hashes in (see its bindings.pyx,
# which follows pdqDihedralHash256esFromFloatLuma in Meta's C++).
DIHEDRAL_NAMES: tuple[str, ...] = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flipx",
    "flipy",
    "flipplus",
    "flipminus",
)

PDQ_BITS = 256
_MIN_HASHABLE_DIM = 5  # Meta's C++: smaller images hash to all zeros, quality 0
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class PdqResult:
    hex: str
    quality: int
    dihedral: dict[str, str] | None = None


# ---------------------------------------------------------------- bit/hex helpers


def pdq_hex(bits: np.ndarray) -> str:
    """256 bits (any integer/bool array, most significant first) -> 64 lower-case hex."""
    flat = np.asarray(bits).reshape(-1)
    if flat.size != PDQ_BITS:
        raise ValueError(f"a PDQ hash has {PDQ_BITS} bits, got {flat.size}")
    return np.packbits(flat.astype(bool)).tobytes().hex()


def hex_to_bytes(value: str) -> bytes:
    """Canonical 32-byte form of a PDQ hex string (raises InvalidSignal)."""
    return bytes.fromhex(PDQ.normalize(value))


def hex_to_array(value: str) -> np.ndarray:
    """PDQ hex -> np.uint8[32], the layout the bank index uses."""
    return np.frombuffer(hex_to_bytes(value), dtype=np.uint8).copy()


def array_to_hex(packed: np.ndarray) -> str:
    """np.uint8[32] -> PDQ hex."""
    arr = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if arr.size != PDQ_BITS // 8:
        raise InvalidSignal("pdq", repr(arr), f"expected {PDQ_BITS // 8} bytes, got {arr.size}")
    return arr.tobytes().hex()


def hamming(a: str, b: str) -> int:
    """Hamming distance between two PDQ hex strings."""
    return (
        int.from_bytes(hex_to_bytes(a), "big") ^ int.from_bytes(hex_to_bytes(b), "big")
    ).bit_count()


# ---------------------------------------------------------------- reference path


def reference_pdq(rgb: np.ndarray, *, dihedral: bool = False) -> PdqResult:
    """PDQ exactly as Meta's binding computes it, from an (H, W, 3) uint8 array."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) array, got shape {arr.shape}")
    import pdqhash  # Meta's binding: the reference mode only (the default fast mode never needs it)

    if not dihedral:
        bits, quality = pdqhash.compute(arr)
        return PdqResult(pdq_hex(bits), int(quality))
    variants, quality = pdqhash.compute_dihedral(arr)
    hexes = {name: pdq_hex(v) for name, v in zip(DIHEDRAL_NAMES, variants, strict=True)}
    return PdqResult(hexes["original"], int(quality), hexes)


# ---------------------------------------------------------------- fast path


def luma_of(rgb: np.ndarray) -> np.ndarray:
    """PDQ's luma (Rec. 601 weights) as float32, from (H, W, 3) or (H, W) uint8."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    return rgb[:, :, :3].astype(np.float32) @ _LUMA


def _box_window(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive-exclusive bounds of each output's window in Meta's box1DFloat.

    Output ``o`` averages inputs ``[o - (window - half), o + half)`` clipped to the
    vector, with ``half = (window + 2) // 2`` (so odd windows are centred, even
    windows lean one pixel left, as in the C++).
    """
    half = (window + 2) // 2
    o = np.arange(n)
    return np.maximum(o - (window - half), 0), np.minimum(o + half, n)


@lru_cache(maxsize=64)
def _axis_band(n_orig: int, block: int, n_reduced: int) -> tuple[np.ndarray, np.ndarray]:
    """The weights as a band: (64, L) input indices and their (64, L) weights.

    Each output only sees about two PDQ cells of input, so a dense matrix product
    would be mostly zeros, and BLAS threads that wait for a busy core turn a 0.2 ms
    product into tens of milliseconds. A gathered band with einsum stays in one
    thread and touches only the non-zero weights.
    """
    return _nonzero_band(_axis_weights(n_orig, block, n_reduced))


def _nonzero_band(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column index, float32 weights) of the narrowest band of equal width, one start
    per row, that holds every non-zero weight of each row of ``weights``."""
    n = weights.shape[1]
    nz = weights != 0
    first = nz.argmax(axis=1)
    last = n - 1 - nz[:, ::-1].argmax(axis=1)
    width = int((last - first).max()) + 1
    starts = np.minimum(first, n - width)
    index = starts[:, None] + np.arange(width)[None, :]
    return index, np.take_along_axis(weights, index, axis=1).astype(np.float32)


def _tent_entries(n_orig: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The difference-array entries of PDQ's tent blur + decimation along an axis of
    ``n_orig`` pixels (see ``_axis_weights``): row, column and value of each, in the
    order they are added (every +share, then every -share)."""
    window = (n_orig + 2 * 64 - 1) // (2 * 64)
    lo, hi = _box_window(n_orig, window)
    # Decimation samples the blurred image at the centre of each of 64 cells.
    centres = (((np.arange(64) + 0.5) * n_orig) / 64).astype(np.int64)
    # Second pass: each sampled output averages first-pass outputs k in [lo, hi).
    # First pass: output k averages inputs [lo[k], hi[k]). Accumulate the weights
    # through a difference array so the cost is O(64 * window), not O(64 * n^2).
    # Every row at once: row r's ks, padded to the longest (the mask keeps the real ones),
    # added in the same order as one row after another (the same sums, bit for bit).
    counts = hi[centres] - lo[centres]
    ks = lo[centres][:, None] + np.arange(int(counts.max()))[None, :]
    real = np.arange(ks.shape[1])[None, :] < counts[:, None]
    rows = np.broadcast_to(np.arange(64)[:, None], ks.shape)[real]
    ks = ks[real]
    share = 1.0 / (counts[rows] * (hi[ks] - lo[ks]))
    return np.concatenate([rows, rows]), np.concatenate([lo[ks], hi[ks]]), np.concatenate([share, -share])


def _axis_weights(n_orig: int, block: int, n_reduced: int) -> np.ndarray:
    """(64, n_reduced) float64: PDQ's tent blur + decimation along one axis of an
    image ``n_orig`` pixels long, expressed on a grid reduced by ``block``."""
    rows, cols, vals = _tent_entries(n_orig)
    # np.bincount adds its weights one after another in input order, as np.add.at does,
    # at a fraction of the cost: the same sums, bit for bit.
    diff = np.bincount(rows * (n_orig + 1) + cols, vals, minlength=64 * (n_orig + 1)).reshape(64, n_orig + 1)
    weights = np.cumsum(diff[:, :n_orig], axis=1)
    weights[np.abs(weights) < 1e-12] = 0.0  # cancellation residue of the cumsum
    if block > 1:
        pad = n_reduced * block - n_orig
        if pad < 0:
            raise ValueError(f"reduced size {n_reduced} x {block} does not cover {n_orig}")
        weights = np.pad(weights, ((0, 0), (0, pad))).reshape(64, n_reduced, block).sum(axis=2)
    elif n_reduced != n_orig:
        raise ValueError(f"reduced size {n_reduced} differs from {n_orig} at block 1")
    return weights


@lru_cache(maxsize=256)
def _tent_rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``_axis_weights(n, 1, n)`` on each row's support only: (first column of each row,
    (64, L) weights from there, zero past the row's end). Every value is the dense
    form's, bit for bit: the cumulative sum of a row is 0.0 before its first entry, so
    summing from that entry gives the same partial sums; what follows the row's last
    entry is the cancellation residue, which the dense form zeroes. Where that could
    differ (a residue of 1e-12 or more, a zero inside a row) the dense form is used."""
    rows, cols, vals = _tent_entries(n)
    first = np.full(64, n, dtype=np.int64)
    np.minimum.at(first, rows, cols)
    end = np.zeros(64, dtype=np.int64)
    np.maximum.at(end, rows, cols)  # the last entry (a -share): the row ends before it
    width = int((end - first).max()) + 1
    local = np.bincount(rows * width + (cols - first[rows]), vals, minlength=64 * width).reshape(64, width)
    sums = np.cumsum(local, axis=1)
    sums[np.abs(sums) < 1e-12] = 0.0
    idx = np.arange(width)[None, :]
    last = np.minimum(end, n) - 1  # the dense form has n columns
    inside = idx <= (last - first)[:, None]
    residue = np.take_along_axis(sums, (end - first)[:, None], axis=1)[:, 0]
    if np.any(residue[end < n] != 0) or np.any(np.where(inside, sums == 0, False)):
        virtual = _axis_weights(n, 1, n)
        nzv = virtual != 0
        a = nzv.argmax(axis=1)
        lv = int((n - nzv[:, ::-1].argmax(axis=1) - a).max())
        vi = a[:, None] + np.arange(lv)[None, :]
        return a, np.where(vi < n, np.take_along_axis(virtual, np.minimum(vi, n - 1), axis=1), 0.0)
    lv = int((last - first).max()) + 1
    return first, np.where(inside, sums, 0.0)[:, :lv]


# Two forms give the same weights, bit for bit: numpy's (below) and the compiled one of
# _pdq_kernel, ~0.1 ms against a few microseconds a span. The region variants of a query
# take a few dozen spans an image. The compiled form needs numba, whose import costs a
# process ~0.4 CPU-s once: a process uses numpy until it has computed COMPILED_AFTER spans
# (~100 images' regions), or at once when the kernel is loaded already (a scan's parent
# loads it before forking workers that will hash many images' regions: scan/pipeline.py).
COMPILED_AFTER = 4000
_spans_computed = 0


def _use_compiled() -> bool:
    global _spans_computed
    _spans_computed += 1
    return "assay.media._pdq_kernel" in sys.modules or _spans_computed > COMPILED_AFTER


def preload() -> None:
    """Load the compiled span weights now (see COMPILED_AFTER)."""
    _axis_band_span.__wrapped__(0.5, 300.25, 2, 160, compiled=True)


@lru_cache(maxsize=512)
def _axis_band_span(start: float, length: float, block: int, n_reduced: int,
                    compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``_axis_band`` for the span [start, start + length) of original pixels, which may
    begin and end inside a pixel: PDQ's filter as if the image had been cut to that span
    and resampled (box filter) to ``round(length)`` pixels, on the reduced grid (each
    original pixel's weight goes to the reduced pixel holding it). ``compiled``: force
    one form or the other (None: as _use_compiled decides)."""
    n = max(1, round(length))
    step = length / n
    lo = start + step * np.arange(n)
    last = min(int(np.ceil(start + length)), n_reduced * block) - 1
    if compiled or (compiled is None and _use_compiled()):
        from ._pdq_kernel import band_span

        a, vals = _tent_rows(n)
        return band_span(lo, step, last, a, vals, int(np.ceil(step)), block, n_reduced)  # type: ignore[no-any-return]
    j0 = np.floor(lo).astype(np.int64)
    first = int(j0[0])
    # Each output row sees a few PDQ cells of the span: work on each row's support only
    # (the virtual pixels where its weight is not zero), in row-local columns. The sums
    # are those of the dense form in the same order (zeros left out add nothing).
    a, vals = _tent_rows(n)  # PDQ on the cut-out span, each row from its first virtual pixel
    lv = vals.shape[1]
    vi = a[:, None] + np.arange(lv)[None, :]  # (64, lv) virtual pixels of each row
    inside = vi < n
    vi = np.minimum(vi, n - 1)
    kmax = int(np.ceil(step))
    c0 = j0[a] - first  # each row's first column (span-relative)
    lc = int((j0[vi].max(axis=1) - j0[a]).max()) + kmax + 1
    rows = np.broadcast_to(np.arange(64)[:, None], vi.shape)
    # Each virtual pixel averages the original pixels it overlaps (at most ceil(step) + 1),
    # in the order of a loop of np.add.at: pass k, then virtual pixels left to right
    # (np.bincount adds in input order too, so the sums are the same, bit for bit).
    flat: list[np.ndarray] = []
    weight: list[np.ndarray] = []
    for k in range(kmax + 1):
        j = j0 + k
        share = (np.minimum(lo + step, j + 1) - np.maximum(lo, j)).clip(0) / step
        ok = inside & (share[vi] > 0) & (j[vi] <= last)
        flat.append(rows[ok] * lc + (j[vi] - first - c0[:, None])[ok])
        weight.append((vals * share[vi])[ok])
    local_w = np.bincount(np.concatenate(flat), np.concatenate(weight), minlength=64 * lc).reshape(64, lc)
    cell0 = first // block
    width = (last // block) - cell0 + 1
    # Row-local columns into reduced cells, left to right within a cell.
    g = first + c0[:, None] + np.arange(lc)[None, :]  # global column of each local one
    cells = g // block - cell0
    valid = g <= last
    binned = np.bincount((np.arange(64)[:, None] * width + cells)[valid], local_w[valid],
                         minlength=64 * width).reshape(64, width)
    local, band = _nonzero_band(binned)
    return np.minimum(cell0 + local, n_reduced - 1), band


def fast_pdq_box(
    luma: np.ndarray,
    orig_size: tuple[int, int],
    block: tuple[int, int],
    box: tuple[float, float, float, float],
) -> PdqResult:
    """PDQ of the region ``box`` = (top, bottom, left, right) in *original* pixels, from
    the reduced luma plane: as if the image had been cropped to it and then hashed
    with ``fast_pdq``. Edges may fall inside a reduced pixel or an original one
    (crop variants need that precision: PDQ moves by ~14 bits per 0.5% of a side, and a
    pixel is 0.4% of a 256-px photo); coordinates are kept to 1/64 pixel."""
    top, bottom, left, right = (round(float(v) * 64) / 64 for v in box)
    w, h = orig_size
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise ValueError(f"box {box} outside an image of size {orig_size}")
    if right - left < _MIN_HASHABLE_DIM or bottom - top < _MIN_HASHABLE_DIM:
        return PdqResult("0" * 64, 0)
    h_r, w_r = luma.shape
    iy, by = _axis_band_span(top, bottom - top, block[1], h_r)
    ix, bx = _axis_band_span(left, right - left, block[0], w_r)
    plane = luma.astype(np.float32, copy=False)
    rows = np.einsum("il,ilw->iw", by, plane[iy])
    return pdq_from_64(np.einsum("jl,ijl->ij", bx, rows[:, ix]))


def fast_pdq_boxes(
    luma: np.ndarray,
    orig_size: tuple[int, int],
    block: tuple[int, int],
    boxes: Sequence[tuple[float, float, float, float]],
) -> list[PdqResult]:
    """``fast_pdq_box`` of every box, the same values for less: boxes with the same rows
    (the anchored regions of media/crops.py share their spans) share the row pass, and
    the final stage (DCT, quality, median, bits) runs on all the boxes at once."""
    w, h = orig_size
    h_r, w_r = luma.shape
    plane = luma.astype(np.float32, copy=False)
    out: list[PdqResult | None] = [None] * len(boxes)
    rows_of: dict[tuple[float, float], np.ndarray] = {}
    by_cols: dict[tuple[float, float], list[tuple[int, tuple[float, float]]]] = {}
    for k, box in enumerate(boxes):
        top, bottom, left, right = (round(float(v) * 64) / 64 for v in box)
        if not (0 <= top < bottom <= h and 0 <= left < right <= w):
            raise ValueError(f"box {box} outside an image of size {orig_size}")
        if right - left < _MIN_HASHABLE_DIM or bottom - top < _MIN_HASHABLE_DIM:
            out[k] = PdqResult("0" * 64, 0)
            continue
        if (top, bottom) not in rows_of:
            iy, by = _axis_band_span(top, bottom - top, block[1], h_r)
            rows_of[(top, bottom)] = np.einsum("il,ilw->iw", by, plane[iy])
        by_cols.setdefault((left, right), []).append((k, (top, bottom)))
    bufs: list[np.ndarray] = []
    at: list[int] = []
    for (left, right), members in by_cols.items():
        # the column pass of every box on these columns at once
        ix, bx = _axis_band_span(left, right - left, block[0], w_r)
        rows = np.stack([rows_of[key] for _, key in members])
        bufs.append(np.einsum("jl,nijl->nij", bx, rows[:, :, ix]))
        at += [k for k, _ in members]
    if bufs:
        for k, res in zip(at, pdq_from_64_many(np.concatenate(bufs)), strict=True):
            out[k] = res
    return out  # type: ignore[return-value]


def pdq_from_64_many(bufs: np.ndarray) -> list[PdqResult]:
    """``pdq_from_64`` of each of (n, 64, 64) buffers, computed together."""
    bufs = np.asarray(bufs, dtype=np.float32)
    dct = _dct_matrix()
    d = np.matmul(np.matmul(dct, bufs), dct.T)
    # Quality: sums of integers below 2**24 in float32 are exact in any order. The same
    # float32 operations as ``_quality``, in place (one buffer per direction).
    totals = np.zeros(len(bufs), dtype=np.int64)
    for a, b in ((bufs[:, :-1, :], bufs[:, 1:, :]), (bufs[:, :, :-1], bufs[:, :, 1:])):
        t = np.subtract(a, b)
        t *= np.float32(100)
        t /= np.float32(255)
        np.trunc(t, out=t)
        np.abs(t, out=t)
        totals += t.sum(axis=(1, 2)).astype(np.int64)
    flat = d.reshape(len(d), -1)
    median = np.partition(flat, 127, axis=1)[:, 127:128]
    packed = np.packbits((flat > median)[:, ::-1], axis=1)
    return [PdqResult(p.tobytes().hex(), min(int(t) // 90, 100)) for p, t in zip(packed, totals, strict=True)]


def downsample_to_64(
    luma: np.ndarray, orig_size: tuple[int, int], block: tuple[int, int]
) -> np.ndarray:
    """PDQ's 64x64 buffer, from a luma plane reduced from ``orig_size`` (W, H) by
    ``block`` (bx, by) original pixels per reduced pixel."""
    h_r, w_r = luma.shape
    iy, by = _axis_band(orig_size[1], block[1], h_r)
    ix, bx = _axis_band(orig_size[0], block[0], w_r)
    plane = luma.astype(np.float32, copy=False)
    rows = np.einsum("il,ilw->iw", by, plane[iy])  # (64, w_r)
    return np.einsum("jl,ijl->ij", bx, rows[:, ix])  # (64, 64)


def downsample_to_64_and_mirror(
    luma: np.ndarray, orig_size: tuple[int, int], block: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``downsample_to_64`` of the plane and of its left-right mirror, from one row pass
    (the mirror's rows are the plane's reversed): the same values as two calls."""
    h_r, w_r = luma.shape
    iy, by = _axis_band(orig_size[1], block[1], h_r)
    ix, bx = _axis_band(orig_size[0], block[0], w_r)
    plane = luma.astype(np.float32, copy=False)
    rows = np.einsum("il,ilw->iw", by, plane[iy])
    return (np.einsum("jl,ijl->ij", bx, rows[:, ix]),
            np.einsum("jl,ijl->ij", bx, np.ascontiguousarray(rows[:, ::-1])[:, ix]))


def fast_pdq_and_mirror(
    luma: np.ndarray, orig_size: tuple[int, int], block: tuple[int, int] = (1, 1), *, dihedral: bool = False,
) -> tuple[PdqResult, PdqResult]:
    """(``fast_pdq`` of the plane, ``fast_pdq`` of its left-right mirror): one row pass."""
    w, h = orig_size
    if w < _MIN_HASHABLE_DIM or h < _MIN_HASHABLE_DIM:
        return fast_pdq(luma, orig_size, block, dihedral=dihedral), fast_pdq(luma, orig_size, block)
    plain, mirror = downsample_to_64_and_mirror(luma, orig_size, block)
    return pdq_from_64(plain, dihedral=dihedral), pdq_from_64(mirror)


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    i = np.arange(1, 17)[:, None]
    j = np.arange(64)[None, :]
    return (np.sqrt(2.0 / 64.0) * np.cos((np.pi / 2.0 / 64.0) * i * (2 * j + 1))).astype(np.float32)


def _quality(buf: np.ndarray) -> int:
    # Meta's heuristic: count significant gradients; int() truncates toward zero as in C.
    dy = np.trunc((buf[:-1, :] - buf[1:, :]) * 100 / 255)
    dx = np.trunc((buf[:, :-1] - buf[:, 1:]) * 100 / 255)
    total = int(np.abs(dy).sum() + np.abs(dx).sum())
    return min(total // 90, 100)


def _bits_hex(dct16: np.ndarray) -> str:
    flat = dct16.reshape(-1)
    # torben() returns the lower median: the 128th smallest of 256 values.
    median = np.partition(flat, 127)[127]
    # Bit k (k = 16*i + j) is the k-th least significant bit of the printed hash.
    return pdq_hex((flat > median)[::-1])


def _dihedral_dct(d: np.ndarray) -> dict[str, np.ndarray]:
    """The DCT of each rotation/flip, from the original's (sign patterns from the C++)."""
    idx = np.arange(16)
    odd_i = (idx % 2 == 1)[:, None]
    odd_j = (idx % 2 == 1)[None, :]
    odd_ij = ((idx[:, None] + idx[None, :]) % 2) == 1
    return {
        "original": d,
        "rot90": np.where(odd_j, d, -d).T,
        "rot180": np.where(odd_ij, -d, d),
        "rot270": np.where(odd_i, d, -d).T,
        "flipx": np.where(odd_i, d, -d),
        "flipy": np.where(odd_j, d, -d),
        "flipplus": d.T,
        "flipminus": np.where(odd_ij, -d, d).T,
    }


def pdq_from_64(buf: np.ndarray, *, dihedral: bool = False) -> PdqResult:
    """PDQ hash and quality from a float 64x64 luma buffer (Meta's final stage)."""
    buf = np.asarray(buf, dtype=np.float32)
    dct = _dct_matrix()
    d = (dct @ buf) @ dct.T
    quality = _quality(buf)
    if not dihedral:
        return PdqResult(_bits_hex(d), quality)
    hexes = {name: _bits_hex(v) for name, v in _dihedral_dct(d).items()}
    return PdqResult(hexes["original"], quality, hexes)


def fast_pdq(
    luma: np.ndarray,
    orig_size: tuple[int, int],
    block: tuple[int, int] = (1, 1),
    *,
    dihedral: bool = False,
) -> PdqResult:
    """PDQ from a (possibly reduced) float/uint8 luma plane of an image whose
    full size is ``orig_size`` (W, H)."""
    w, h = orig_size
    if w < _MIN_HASHABLE_DIM or h < _MIN_HASHABLE_DIM:
        zero = "0" * 64
        return PdqResult(zero, 0, dict.fromkeys(DIHEDRAL_NAMES, zero) if dihedral else None)
    return pdq_from_64(downsample_to_64(luma, orig_size, block), dihedral=dihedral)
