"""Fills numba's on-disk cache (``cache=True``, beside the sources) with the kernels the
tests compile: the multi-index's (banks/_mih_numba.py), the text check's
(text/_kernel.py) and the watermark decoder's (provenance/_wm_kernel.py, ~2 s). conftest.py runs this in a process of its own when a test session
starts, so that their first compile (~20-35 s of one core on a fresh clone) runs beside
the first tests, on the core they leave idle, instead of inside test_index.py. The
kernels are reached through the same entry points the tests use, so a changed kernel
is compiled here too; a signature this misses is compiled where it is first used, as
before. Compiled code is the same wherever it was compiled: no test result depends on
this having run.
"""

from __future__ import annotations

import importlib.util

import numpy as np


def text_kernel() -> None:
    from assay.text._kernel import maximal_matches

    def frozen(a: np.ndarray) -> np.ndarray:  # shards are read-only memory maps
        a.setflags(write=False)
        return a

    text = frozen(np.frombuffer(b"in the beginning was the word\xffand the word was", dtype=np.uint8).copy())
    sa = frozen(np.argsort([text[i:].tobytes() for i in range(len(text))]).astype(np.int32))
    q = frozen(np.frombuffer(b"the word was", dtype=np.uint8).copy())
    for max_hits in (0, 4):
        maximal_matches(text, sa, q, 8, 4, max_hits)


def watermark_kernel() -> None:
    from assay.provenance.watermark import block_votes

    block_votes(np.zeros((64, 64, 3), np.uint8), compiled=True)  # every block on a vote boundary


def index_kernels() -> None:
    from assay.banks import _mih
    from assay.banks.index import HammingIndex

    if _mih.NUMBA is None:
        return
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    ids = np.arange(len(codes), dtype=np.int64)
    for fast_table_bytes in (1 << 40, 0):  # the "filtered" and the "rows" layouts
        index = HammingIndex(bits=256, chunk_bits=16)
        index._kernel = _mih.NUMBA
        index.fast_table_bytes = fast_table_bytes
        index.add(codes[:200], ids[:200])
        index.merge()
        index.add(codes[200:], ids[200:])  # a buffer beside the main part
        index.remove(ids[:3])
        for radius in (0, 31, 64, 256):  # probes, and scans past scan_fraction
            index.search(codes[5].tobytes(), radius)  # a read-only query
            index.search_flat(codes[:8].copy(), radius)


def main() -> None:
    if importlib.util.find_spec("numba") is None:
        return
    watermark_kernel()
    text_kernel()
    index_kernels()


if __name__ == "__main__":
    main()
