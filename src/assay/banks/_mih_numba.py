"""The compiled (numba) kernels of the multi-index, apart from :mod:`._mih` so that
importing numba (and compiling or loading the kernels) happens only when an index is
large enough to need them: small indexes use the numpy kernels, so a command that
looks up a few hashes in a small bank, and the first scan after install, never wait
for numba. ``cache=True`` keeps the compiled kernels on disk: beside this file, or,
when the install is read-only, in numba's per-user cache directory."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import numpy as np

from ._mih import _ROW_SPAN, BUILD_PARALLEL_MIN, Kernel, _writable_masks, empty

# --------------------------------------------------------------------------- numba
# Defined at module level (not in a factory) so that numba's on-disk cache works.

try:
    from llvmlite import binding as _llvm
    from llvmlite import ir as _ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - exercised on machines without numba
    NUMBA: Kernel | None = None
else:

    @intrinsic
    def _popcount64(typingctx: Any, x: Any) -> Any:
        # LLVM's ctpop becomes the POPCNT instruction on the host CPU.
        sig = types.int64(types.uint64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.ctpop(args[0])

        return sig, codegen

    # Opaque pointers (LLVM >= 15) changed the intrinsic's mangled name.
    _PREFETCH_FN = "llvm.prefetch.p0" if _llvm.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"
    # Buckets are random places in a table of 16 bytes x m x n (256 MB at 1M): their
    # first entries are prefetched _AHEAD_BUCKETS buckets before they are scanned
    # (16 bytes an entry, 4 a cache line); the hardware prefetcher streams the rest
    # of a long bucket once it has started. Without it a lookup waits for one miss
    # per bucket, in sequence (1.5x lookups/s at 1M with it, measured for 8-16 ahead).
    _AHEAD_BUCKETS = 12
    # "rows" layout: candidate codes fetched ahead inside a bucket; the code gathers are
    # random reads (320 MB at 10M), 12 ahead keeps ~12 misses in flight (1.4-1.5x
    # lookups/s at 10M against no prefetch, measured for 8 and 16).
    _AHEAD_ROWS = 12
    # Threads for one build (every core, at most 4: beyond that memory bandwidth rules).
    _BUILD_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
    _PREFETCH_SPAN = 32

    @intrinsic
    def _prefetch_row(typingctx: Any, codes: Any, row: Any) -> Any:
        sig = types.void(codes, types.intp)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            zero = context.get_constant(types.intp, 0)
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], zero])
            i8p = _ir.IntType(8).as_pointer()
            i32 = _ir.IntType(32)
            fnty = _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH_FN)
            # read, high temporal locality, data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

    @njit(cache=True, nogil=True, inline="always")
    def _distance(codes: np.ndarray, row: int, q: np.ndarray, w: int) -> int:
        # PDQ's four words get a straight-line body; a runtime-length loop costs
        # ~30% of lookup speed at 10M codes (measured).
        if w == 4:
            return (
                _popcount64(codes[row, 0] ^ q[0])
                + _popcount64(codes[row, 1] ^ q[1])
                + _popcount64(codes[row, 2] ^ q[2])
                + _popcount64(codes[row, 3] ^ q[3])
            )
        d = 0
        for j in range(w):
            d += _popcount64(codes[row, j] ^ q[j])
        return d

    @njit(cache=True, nogil=True)
    def _nb_window_plan(w: int, chunk_bits: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Where each chunk's two filter words come from, worked out once so the
        per-row loops do no division: ``words[c, p] = (i, j)`` (the word holding
        the window's start and the next one), ``bits[c, p] = (shift, mask)``."""
        avail = 64 * w - chunk_bits
        f1 = min(64, avail)
        f2 = min(32, avail - f1)
        words = np.zeros((m, 2, 2), dtype=np.int64)
        bits = np.zeros((m, 2, 2), dtype=np.uint64)
        for c in range(m):
            for part in range(2):
                nbits = f1 if part == 0 else f2
                start = ((c + 1) * chunk_bits + part * f1) % (64 * w)
                words[c, part, 0] = start // 64
                words[c, part, 1] = (start // 64 + 1) % w
                bits[c, part, 0] = np.uint64(start % 64)
                if nbits == 64:
                    bits[c, part, 1] = np.uint64(0xFFFFFFFFFFFFFFFF)
                else:
                    bits[c, part, 1] = (np.uint64(1) << np.uint64(nbits)) - np.uint64(1)
        return words, bits

    @njit(cache=True, nogil=True, inline="always")
    def _nb_window(lo: np.uint64, hi: np.uint64, off: np.uint64, mask: np.uint64) -> np.uint64:
        """A filter word from the two code words it spans (see _nb_window_plan).
        Scalars only: a call that passes arrays pays reference counting (~7x the
        build time, measured)."""
        if off == 0:
            return lo & mask
        return ((lo >> off) | (hi << (np.uint64(64) - off))) & mask

    @njit(cache=True, nogil=True)
    def _nb_chunk_order(codes: np.ndarray, chunk_bits: int, c: int, off: np.ndarray,
                        pos: np.ndarray, order: np.ndarray) -> None:
        """Counting sort of the rows by chunk ``c``: CSR offsets into ``off`` and the
        rows, grouped by chunk value and ascending inside a group, into ``order``."""
        n = codes.shape[0]
        per_word = 64 // chunk_bits
        nkeys = 1 << chunk_bits
        kmask = np.uint64(nkeys - 1)
        word = c // per_word
        shift = np.uint64((c % per_word) * chunk_bits)
        for i in range(n):
            off[np.int64((codes[i, word] >> shift) & kmask) + 1] += 1
        for k in range(nkeys):
            off[k + 1] += off[k]
        pos[:] = off[:nkeys]
        for i in range(n):
            k = np.int64((codes[i, word] >> shift) & kmask)
            order[pos[k]] = i
            pos[k] += 1

    @njit(cache=True, nogil=True)
    def _nb_build_rows(codes: np.ndarray, chunk_bits: int, first: int, step: int,
                       table: np.ndarray, offsets: np.ndarray) -> None:
        """Fill chunks first, first + step, ... of a "rows" table (one thread's share)."""
        pos = np.empty(1 << chunk_bits, dtype=np.int64)
        for c in range(first, table.shape[0], step):
            _nb_chunk_order(codes, chunk_bits, c, offsets[c], pos, table[c])

    @njit(cache=True, nogil=True)
    def _nb_build_filtered(codes: np.ndarray, chunk_bits: int, first: int, step: int,
                           table: np.ndarray, offsets: np.ndarray) -> None:
        """Fill chunks first, first + step, ... of a "filtered" table (one thread's share).
        The rows are sorted as 4-byte numbers, then the 16-byte entries are filled in
        order (scattering the entries themselves was several times slower at 10M)."""
        n, w = codes.shape
        m = table.shape[0]
        words, bits = _nb_window_plan(w, chunk_bits, m)
        pos = np.empty(1 << chunk_bits, dtype=np.int64)
        order = np.empty(n, dtype=np.int32)
        for c in range(first, m, step):
            _nb_chunk_order(codes, chunk_bits, c, offsets[c], pos, order)
            i0, j0, i1, j1 = words[c, 0, 0], words[c, 0, 1], words[c, 1, 0], words[c, 1, 1]
            s0, m0, s1, m1 = bits[c, 0, 0], bits[c, 0, 1], bits[c, 1, 0], bits[c, 1, 1]
            for t in range(n):
                i = order[t]
                table[c, t, 0] = _nb_window(codes[i, i0], codes[i, j0], s0, m0)
                table[c, t, 1] = _nb_window(codes[i, i1], codes[i, j1], s1, m1) | (np.uint64(i) << np.uint64(32))

    def _nb_build(codes: np.ndarray, chunk_bits: int, filtered: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Chunks are independent: large builds spread them over threads (the
        compiled loops release the GIL)."""
        n, w = codes.shape
        m = w * (64 // chunk_bits)
        if filtered:
            table = empty((m, n, 2), np.uint64)
            fill = _nb_build_filtered
        else:
            table = empty((m, n), np.int32)
            fill = _nb_build_rows
        offsets = np.zeros((m, (1 << chunk_bits) + 1), dtype=np.int32)
        threads = min(_BUILD_THREADS, m) if n >= BUILD_PARALLEL_MIN else 1
        if threads == 1:
            fill(codes, chunk_bits, 0, 1, table, offsets)
        else:
            with ThreadPoolExecutor(threads, thread_name_prefix="assay-index-build") as pool:
                list(pool.map(lambda f: fill(codes, chunk_bits, f, threads, table, offsets), range(threads)))
        return table, offsets

    @njit(cache=True, nogil=True)
    def _sort_segment(rows: np.ndarray, dists: np.ndarray, lo: int, hi: int) -> None:
        if hi - lo < 2:
            return
        key = dists[lo:hi].astype(np.int64) * _ROW_SPAN + rows[lo:hi]
        order = np.argsort(key)
        r = rows[lo:hi][order]
        d = dists[lo:hi][order]
        rows[lo:hi] = r
        dists[lo:hi] = d

    @njit(cache=True, nogil=True)
    def _probed_earlier(codes: np.ndarray, row: int, qk: np.ndarray, shifts: np.ndarray, c: int,
                        per_word: int, kmask: np.uint64, max_flips: int) -> bool:
        """Pigeonhole finds a row through every chunk within max_flips of the query;
        a row is reported only from the first such chunk, so True if a chunk before
        ``c`` already found it. Runs only for rows within the radius (rare)."""
        for j in range(c):
            kj = (codes[row, j // per_word] >> shifts[j]) & kmask
            if _popcount64(kj ^ qk[j]) <= max_flips:
                return True
        return False

    @njit(cache=True, nogil=True)
    def _nb_probe(
        codes: np.ndarray,
        alive: np.ndarray,
        table: np.ndarray,
        offsets: np.ndarray,
        queries: np.ndarray,
        radius: int,
        max_flips: int,
        chunk_bits: int,
        masks: np.ndarray,
        qoff: np.ndarray,
        rows: np.ndarray,
        dists: np.ndarray,
        q_start: int,
    ) -> int:
        """Fill qoff/rows/dists from query q_start on; return how many queries are
        complete (fewer than all when rows/dists are full)."""
        nq, w = queries.shape
        m, n = table.shape[0], table.shape[1]
        per_word = 64 // chunk_bits
        kmask = np.uint64((1 << chunk_bits) - 1)
        low32 = np.uint64(0xFFFFFFFF)
        words, bits = _nb_window_plan(w, chunk_bits, m)
        cap = rows.shape[0]
        flat = table.reshape(m * n, 2)
        nprobe = masks.shape[0]
        nb = m * nprobe
        # Every bucket of a query is located first, so the entries of the buckets
        # _AHEAD_BUCKETS later can be prefetched while this one is scanned.
        b_lo = np.empty(nb, dtype=np.int64)
        b_hi = np.empty(nb, dtype=np.int64)
        b_c = np.empty(nb, dtype=np.int64)
        qk = np.empty(m, dtype=np.uint64)
        qa = np.empty(m, dtype=np.uint64)
        qb = np.empty(m, dtype=np.uint64)
        shifts = np.empty(m, dtype=np.uint64)
        for c in range(m):
            shifts[c] = np.uint64((c % per_word) * chunk_bits)
        count = qoff[q_start]
        for qi in range(q_start, nq):
            q = queries[qi]
            b = 0
            for c in range(m):
                qk[c] = (q[c // per_word] >> shifts[c]) & kmask
                qa[c] = _nb_window(q[words[c, 0, 0]], q[words[c, 0, 1]], bits[c, 0, 0], bits[c, 0, 1])
                qb[c] = _nb_window(q[words[c, 1, 0]], q[words[c, 1, 1]], bits[c, 1, 0], bits[c, 1, 1])
                qc = np.int64(qk[c])
                base = c * n
                for p in range(nprobe):
                    key = qc ^ masks[p]
                    b_lo[b] = base + offsets[c, key]
                    b_hi[b] = base + offsets[c, key + 1]
                    b_c[b] = c
                    b += 1
            for j in range(min(_AHEAD_BUCKETS, nb)):
                for t in range(b_lo[j], min(b_hi[j], b_lo[j] + _PREFETCH_SPAN), 4):
                    _prefetch_row(flat, t)
            for j in range(nb):
                ja = j + _AHEAD_BUCKETS
                if ja < nb:
                    for t in range(b_lo[ja], min(b_hi[ja], b_lo[ja] + _PREFETCH_SPAN), 4):
                        _prefetch_row(flat, t)
                c = b_c[j]
                a = qa[c]
                bb = qb[c]
                for t in range(b_lo[j], b_hi[j]):
                    e1 = flat[t, 1]
                    if _popcount64(flat[t, 0] ^ a) + _popcount64((e1 ^ bb) & low32) > radius:
                        continue
                    row = np.int64(e1 >> np.uint64(32))
                    if row >= n:  # only a damaged snapshot has such an entry
                        continue
                    d = _distance(codes, row, q, w)
                    if d > radius:
                        continue
                    if not alive[row] or _probed_earlier(codes, row, qk, shifts, c, per_word, kmask, max_flips):
                        continue
                    if count == cap:
                        return qi
                    rows[count] = row
                    dists[count] = d
                    count += 1
            _sort_segment(rows, dists, qoff[qi], count)
            qoff[qi + 1] = count
        return nq

    @njit(cache=True, nogil=True)
    def _nb_probe_rows(
        codes: np.ndarray,
        alive: np.ndarray,
        table: np.ndarray,
        offsets: np.ndarray,
        queries: np.ndarray,
        radius: int,
        max_flips: int,
        chunk_bits: int,
        masks: np.ndarray,
        qoff: np.ndarray,
        rows: np.ndarray,
        dists: np.ndarray,
        q_start: int,
    ) -> int:
        """_nb_probe for the "rows" layout: every candidate's code is read (a random
        read, prefetched _AHEAD_ROWS candidates ahead inside a bucket)."""
        nq, w = queries.shape
        m, n = table.shape
        per_word = 64 // chunk_bits
        kmask = np.uint64((1 << chunk_bits) - 1)
        cap = rows.shape[0]
        qk = np.empty(m, dtype=np.uint64)
        shifts = np.empty(m, dtype=np.uint64)
        for c in range(m):
            shifts[c] = np.uint64((c % per_word) * chunk_bits)
        count = qoff[q_start]
        for qi in range(q_start, nq):
            q = queries[qi]
            for c in range(m):
                qk[c] = (q[c // per_word] >> shifts[c]) & kmask
            for c in range(m):
                qc = np.int64(qk[c])
                for p in range(masks.shape[0]):
                    key = qc ^ masks[p]
                    lo = offsets[c, key]
                    hi = offsets[c, key + 1]
                    for t in range(lo, min(lo + _AHEAD_ROWS, hi)):
                        if table[c, t] < n:
                            _prefetch_row(codes, table[c, t])
                    for t in range(lo, hi):
                        if t + _AHEAD_ROWS < hi and table[c, t + _AHEAD_ROWS] < n:
                            _prefetch_row(codes, table[c, t + _AHEAD_ROWS])
                        row = np.int64(table[c, t])
                        if row < 0 or row >= n:  # only a damaged snapshot has such an entry
                            continue
                        d = _distance(codes, row, q, w)
                        if d > radius:
                            continue
                        if not alive[row] or _probed_earlier(codes, row, qk, shifts, c, per_word, kmask, max_flips):
                            continue
                        if count == cap:
                            return qi
                        rows[count] = row
                        dists[count] = d
                        count += 1
            _sort_segment(rows, dists, qoff[qi], count)
            qoff[qi + 1] = count
        return nq

    @njit(cache=True, nogil=True)
    def _nb_scan(
        codes: np.ndarray,
        alive: np.ndarray,
        queries: np.ndarray,
        radius: int,
        qoff: np.ndarray,
        rows: np.ndarray,
        dists: np.ndarray,
        q_start: int,
    ) -> int:
        nq, w = queries.shape
        n = codes.shape[0]
        cap = rows.shape[0]
        count = qoff[q_start]
        for qi in range(q_start, nq):
            q = queries[qi]
            for row in range(n):
                d = _distance(codes, row, q, w)
                if d <= radius and alive[row]:
                    if count == cap:
                        return qi
                    rows[count] = row
                    dists[count] = d
                    count += 1
            _sort_segment(rows, dists, qoff[qi], count)
            qoff[qi + 1] = count
        return nq

    def _resuming(run: Any, nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Output size is unknown up front. When the buffers fill, the kernel stops
        # after the last complete query; we grow them and it resumes from there.
        cap = 1024 + 64 * nq
        qoff = np.zeros(nq + 1, dtype=np.int64)
        rows = np.empty(cap, dtype=np.int64)
        dists = np.empty(cap, dtype=np.int32)
        done = 0
        while True:
            done = run(qoff, rows, dists, done)
            if done == nq:
                count = qoff[nq]
                return qoff, rows[:count].copy(), dists[:count].copy()
            keep = qoff[done]
            cap *= 4
            rows = np.concatenate([rows[:keep], np.empty(cap - keep, dtype=np.int64)])
            dists = np.concatenate([dists[:keep], np.empty(cap - keep, dtype=np.int32)])

    def _nb_probe_entry(
        codes: np.ndarray,
        alive: np.ndarray,
        table: np.ndarray,
        offsets: np.ndarray,
        queries: np.ndarray,
        radius: int,
        max_flips: int,
        chunk_bits: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        masks = _writable_masks(chunk_bits, max_flips)
        kernel = _nb_probe if table.ndim == 3 else _nb_probe_rows
        return _resuming(
            lambda qoff, rows, dists, start: kernel(
                codes, alive, table, offsets, queries, radius, max_flips, chunk_bits,
                masks, qoff, rows, dists, start,
            ),
            queries.shape[0],
        )

    def _nb_scan_entry(
        codes: np.ndarray, alive: np.ndarray, queries: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _resuming(
            lambda qoff, rows, dists, start: _nb_scan(
                codes, alive, queries, radius, qoff, rows, dists, start
            ),
            queries.shape[0],
        )

    NUMBA = SimpleNamespace(name="numba", build=_nb_build, probe=_nb_probe_entry, scan=_nb_scan_entry)
