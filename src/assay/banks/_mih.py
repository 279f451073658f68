"""Inner loops of the Hamming index: compiled with numba when present, numpy otherwise.

Both kernels take the same arrays and return the same results, so the index code
above them never cares which one runs; the tests run every case through both.
The numpy kernel exists for correctness (and for machines without numba): on 10M
codes it was ~5-7x slower than the compiled one (82 q/s, measured), as each query expands ~40k
candidate positions through half a dozen temporary arrays.

Layout shared by both kernels (see index.py for how it is built):
  codes   (n, W) uint64   one row per entry; W = bits // 64
  table   per chunk, one entry per row, grouped by that chunk's value, in one of two layouts:
          "rows"     (m, n) int32      the row number (4 bytes an entry)
          "filtered" (m, n, 2) uint64  word 0: ``f1`` filter bits, word 1: ``f2`` filter bits | row << 32
  offsets (m, 2**cb + 1)  int32, CSR: entries with chunk c == k are table[c, offsets[c,k]:offsets[c,k+1]]
  alive   (n,) bool       tombstones: False rows are never returned
Chunk c of a row is bits [c*cb, (c+1)*cb) of the row read as little-endian words:
(codes[row, c // (64//cb)] >> ((c % (64//cb)) * cb)) & (2**cb - 1).

The filter bits of chunk c are the ``f1 + f2`` (up to 96) bits that follow the chunk,
cyclically: bits [(c+1)*cb, (c+1)*cb + f1) in word 0 and the next f2 in word 1. Their
Hamming distance to the same bits of the query is a lower bound of the full distance,
so a candidate whose filter distance exceeds the radius is dropped without reading
its code. With 96 bits a random candidate passes at radius 31 with probability
~4e-4, so a lookup reads the bucket entries of the probed keys sequentially and
touches ``codes`` (a random read) about once per real neighbour. Against the "rows"
layout (a random code read per candidate) this was 3.3x the lookups/s at 1M and
4.3x at 10M, for 4x the table memory (measured); index.py picks the layout by size.
Offsets are int32 (rows < 2**31): the offset tables of 16-bit chunks take 4 MB rather
than 8, and every probe reads them at random (1.7x the speed of a stripped-down probe
loop at 20k rows, where they dominate; within the noise at 1M). Entries of 12 bytes
(filter bits alone, rows in a parallel array) were tried and dropped: no faster on
misses, 1.4x slower on queries with 32 neighbours (each hit costs a random read of its
row), measured side by side at 1M.
Row numbers read from a table are bounds-checked by the kernels, so a damaged
snapshot can give wrong answers but never reads outside ``codes``.

Search results come back flat: ``qoff`` (q+1,) int64 so that query i owns
``rows[qoff[i]:qoff[i+1]]`` and ``dists[...]``, each segment sorted by (distance, row).
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import numpy as np

Kernel = SimpleNamespace  # attributes: name, build, probe, scan

# A query's result segment is sorted by this packed key; rows < 2**31 and
# distances <= 2**16 keep it inside int64.
_ROW_SPAN = np.int64(1) << np.int64(31)
# Builds of at least this many rows spread the chunks over threads.
BUILD_PARALLEL_MIN = 100_000


_HUGE = 2 << 20  # a transparent huge page (x86-64, arm64 with 4K pages)
_MADV_HUGEPAGE = 14  # Linux <sys/mman.h>


@lru_cache(maxsize=1)
def _madvise() -> Any:
    """libc's madvise, or None off Linux or where transparent huge pages are off."""
    try:
        mode = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
        if "[never]" in mode:
            return None
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).madvise
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return fn
    except (OSError, AttributeError):
        return None


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``np.empty`` whose 2 MB-aligned interior is advised to use transparent huge pages
    (before any page is touched, so faults get huge pages). A lookup reads ~272 random
    places of the tables: with 4 KB pages each is a TLB miss and a page walk, and inside
    a loaded server (caches shared with HTTP work, the other worker and the clients) the
    walks miss too: huge pages took the index's CPU per query from 45-58 to 34-37 us
    there (1M PDQ, measured side by side); alone in a process it made no difference."""
    a = np.empty(shape, dtype=dtype)
    advise = _madvise()
    if advise is not None and a.nbytes >= 2 * _HUGE:
        start = -(-a.ctypes.data // _HUGE) * _HUGE
        end = (a.ctypes.data + a.nbytes) // _HUGE * _HUGE
        if end > start:
            advise(start, end - start, _MADV_HUGEPAGE)  # advice only: failure changes nothing
    return a


@lru_cache(maxsize=64)
def flip_masks(chunk_bits: int, max_flips: int) -> np.ndarray:
    """All chunk values with at most ``max_flips`` bits set, fewest bits first (int64)."""
    values = np.arange(1 << chunk_bits, dtype=np.int64)
    weights = np.bitwise_count(values)
    keep = values[weights <= max_flips]
    masks = keep[np.argsort(weights[keep], kind="stable")]
    masks.flags.writeable = False
    return masks


def filter_bits(bits: int, chunk_bits: int) -> tuple[int, int]:
    """(f1, f2): filter bits kept in an entry's first and second word. They never
    overlap each other or the chunk itself, so their distance is a lower bound."""
    avail = bits - chunk_bits
    f1 = min(64, avail)
    return f1, min(32, avail - f1)


def _low_mask(nbits: int) -> np.uint64:
    return np.uint64((1 << nbits) - 1) if nbits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)


def _np_window(codes: np.ndarray, start: int, nbits: int) -> np.ndarray:
    """Bits [start, start + nbits) of every row, cyclically, as uint64 (nbits <= 64)."""
    n, w = codes.shape
    start %= 64 * w
    if nbits == 0:
        return np.zeros(n, dtype=np.uint64)
    i, off = divmod(start, 64)
    val = codes[:, i] >> np.uint64(off)
    if off:
        val = val | (codes[:, (i + 1) % w] << np.uint64(64 - off))
    return val & _low_mask(nbits)


def _np_filters(codes: np.ndarray, chunk: int, chunk_bits: int) -> tuple[np.ndarray, np.ndarray]:
    f1, f2 = filter_bits(codes.shape[1] * 64, chunk_bits)
    start = (chunk + 1) * chunk_bits
    return _np_window(codes, start, f1), _np_window(codes, start + f1, f2)


# --------------------------------------------------------------------------- numpy


def _np_chunk_keys(codes: np.ndarray, chunk_bits: int) -> np.ndarray:
    """(m, n) int64 chunk values of every row."""
    per_word = 64 // chunk_bits
    mask = np.uint64((1 << chunk_bits) - 1)
    m = codes.shape[1] * per_word
    keys = np.empty((m, codes.shape[0]), dtype=np.int64)
    for c in range(m):
        shift = np.uint64((c % per_word) * chunk_bits)
        keys[c] = (codes[:, c // per_word] >> shift) & mask
    return keys


def _np_build(codes: np.ndarray, chunk_bits: int, filtered: bool = True) -> tuple[np.ndarray, np.ndarray]:
    n = codes.shape[0]
    nkeys = 1 << chunk_bits
    per_word = 64 // chunk_bits
    mask = np.uint64(nkeys - 1)
    m = codes.shape[1] * per_word
    table = empty((m, n, 2), np.uint64) if filtered else empty((m, n), np.int32)
    offsets = np.zeros((m, nkeys + 1), dtype=np.int32)
    for c in range(m):
        shift = np.uint64((c % per_word) * chunk_bits)
        keys = ((codes[:, c // per_word] >> shift) & mask).astype(np.int64)
        # Stable, so rows stay ascending inside a bucket (better locality on lookup).
        order = np.argsort(keys, kind="stable")
        if filtered:
            a, b = _np_filters(codes[order], c, chunk_bits)
            table[c, :, 0] = a
            table[c, :, 1] = b | (order.astype(np.uint64) << np.uint64(32))
        else:
            table[c] = order
        offsets[c, 1:] = np.cumsum(np.bincount(keys, minlength=nkeys))
    return table, offsets


def _np_finish(
    counts: list[int], rows: list[np.ndarray], dists: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    qoff = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=qoff[1:])
    if rows:
        return qoff, np.concatenate(rows).astype(np.int64), np.concatenate(dists).astype(np.int32)
    return qoff, np.empty(0, np.int64), np.empty(0, np.int32)


def _np_sorted(rows: np.ndarray, dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((rows, dists))
    return rows[order], dists[order]


def _np_probe(
    codes: np.ndarray,
    alive: np.ndarray,
    table: np.ndarray,
    offsets: np.ndarray,
    queries: np.ndarray,
    radius: int,
    max_flips: int,
    chunk_bits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, n = table.shape[:2]
    masks = flip_masks(chunk_bits, max_flips)
    stride = offsets.shape[1]
    flat_off = offsets.ravel().astype(np.int64)
    flat_table = (table[:, :, 1] >> np.uint64(32)).ravel() if table.ndim == 3 else table.ravel()
    chunk_base = (np.arange(m, dtype=np.int64) * stride)[:, None]
    table_base = np.repeat(np.arange(m, dtype=np.int64) * n, len(masks))
    qkeys = _np_chunk_keys(queries, chunk_bits)  # (m, q)
    counts, out_rows, out_d = [], [], []
    for i in range(queries.shape[0]):
        probe = ((qkeys[:, i : i + 1] ^ masks[None, :]) + chunk_base).ravel()
        start = flat_off[probe]
        length = flat_off[probe + 1] - start
        total = int(length.sum())
        # Expand the CSR ranges into one array of table positions without a Python loop.
        before = np.cumsum(length) - length
        pos = np.repeat(start + table_base - before, length) + np.arange(total)
        cand = flat_table[pos].astype(np.int64)
        cand = cand[cand < len(alive)]  # a damaged snapshot's rows are never read
        d = np.bitwise_count(codes[cand] ^ queries[i]).sum(axis=1, dtype=np.int32)
        hit = d <= radius
        # A row can sit in several probed buckets; keep it once.
        cand, first = np.unique(cand[hit], return_index=True)
        d = d[hit][first]
        live = alive[cand]
        r, dd = _np_sorted(cand[live], d[live])
        counts.append(len(r))
        out_rows.append(r)
        out_d.append(dd)
    return _np_finish(counts, out_rows, out_d)


def _np_scan(
    codes: np.ndarray, alive: np.ndarray, queries: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts, out_rows, out_d = [], [], []
    # Bound the temporary (block, W) arrays so a scan of a huge bank stays small.
    block = 1 << 16
    for i in range(queries.shape[0]):
        rows_q, d_q = [], []
        for lo in range(0, codes.shape[0], block):
            d = np.bitwise_count(codes[lo : lo + block] ^ queries[i]).sum(axis=1, dtype=np.int32)
            hit = np.flatnonzero((d <= radius) & alive[lo : lo + block])
            rows_q.append(hit + lo)
            d_q.append(d[hit])
        r = np.concatenate(rows_q) if rows_q else np.empty(0, np.int64)
        dd = np.concatenate(d_q) if d_q else np.empty(0, np.int32)
        r, dd = _np_sorted(r, dd)
        counts.append(len(r))
        out_rows.append(r)
        out_d.append(dd)
    return _np_finish(counts, out_rows, out_d)


NUMPY: Kernel = SimpleNamespace(name="numpy", build=_np_build, probe=_np_probe, scan=_np_scan)


@lru_cache(maxsize=64)
def _writable_masks(chunk_bits: int, max_flips: int) -> np.ndarray:
    # numba compiles a separate specialisation for read-only arrays; hand it a
    # writable copy so every call shares one compiled kernel.
    return flip_masks(chunk_bits, max_flips).copy()


# Below this many rows the numpy kernels answer a lookup in well under a millisecond and
# build in milliseconds: no numba import (~0.3 s) and no compile on a cold cache (seconds).
SMALL_INDEX_ROWS = 50_000


@lru_cache(maxsize=1)
def numba_kernel() -> Kernel | None:
    """The compiled kernels, imported on first need; None where numba is missing."""
    try:
        from ._mih_numba import NUMBA
    except ImportError:  # pragma: no cover - machines without numba
        return None
    return NUMBA


def kernel_for(rows: int) -> Kernel:
    """The kernels for an index of ``rows`` rows (both give identical results)."""
    if rows < SMALL_INDEX_ROWS:
        return NUMPY
    return numba_kernel() or NUMPY


def __getattr__(name: str) -> Any:
    # NUMBA and DEFAULT stay importable names, resolved (and numba imported) on first use.
    if name == "NUMBA":
        return numba_kernel()
    if name == "DEFAULT":
        return numba_kernel() or NUMPY
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
