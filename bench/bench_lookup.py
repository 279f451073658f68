"""PDQ bank lookup, radius 31: assay's HammingIndex against faiss, side by side in one run.

Bank: n random 256-bit codes; for each query, 32 planted neighbours at distances
0..31 are part of the bank. Everything runs on one thread. Reported per contender:
queries/s (median of --repeats runs over the same queries), recall of the planted
neighbours, build time, memory (RSS growth while building; ours also memory_bytes()).
Then assay-only figures: snapshot save/load (mmap) time, one add + lookup, a full
merge, and the exact (SHA-256) index against a Python dict.

    .venv/bin/python bench/bench_lookup.py --n 1000000
    .venv/bin/python bench/bench_lookup.py --n 10000000
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from assay.banks import _mih  # noqa: E402
from assay.banks.index import ExactIndex, HammingIndex  # noqa: E402

RADIUS = 31


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def size(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def median_rate(run: Callable[[], object], count: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return count / statistics.median(times)


def each(fn: Callable[..., object], items: object, *extra: object) -> list[object]:
    return [fn(x, *extra) for x in items]  # type: ignore[attr-defined]


def make_bank(n: int, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray, set[tuple[int, int]]]:
    """Codes (n, 32) uint8, queries (nq, 32), and the planted (query, row) pairs."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(nq, 32), dtype=np.uint8)
    planted: set[tuple[int, int]] = set()
    rows = rng.choice(n, size=nq * (RADIUS + 1), replace=False)
    k = 0
    for qi in range(nq):
        for d in range(RADIUS + 1):
            bits = np.unpackbits(queries[qi]).copy()
            bits[rng.choice(256, size=d, replace=False)] ^= 1
            codes[rows[k]] = np.packbits(bits)
            planted.add((qi, int(rows[k])))
            k += 1
    return codes, queries, planted


def recall(found: list[np.ndarray], planted: set[tuple[int, int]], nq: int) -> float:
    want = {p for p in planted if p[0] < nq}
    got = {(qi, int(r)) for qi, rows in enumerate(found) for r in rows}
    return len(want & got) / len(want)


def build_all(codes: np.ndarray, with_faiss: bool) -> dict[str, tuple[object, float, int]]:
    """Every contender built once and kept alive: name -> (index, build s, RSS growth).

    Nothing is freed between builds, so each RSS growth counts only its own index
    (faiss first: our build's freed temporaries must not be reused by its arrays).
    """
    built: dict[str, tuple[object, float, int]] = {}
    if with_faiss:
        import faiss

        faiss.omp_set_num_threads(1)
        for name, make in (
            ("flat", lambda: faiss.IndexBinaryFlat(256)),
            ("multihash", lambda: faiss.IndexBinaryMultiHash(256, 16, 16)),
        ):
            gc.collect()
            before = rss()
            t = time.perf_counter()
            index = make()
            if name == "multihash":
                index.nflip = 1
            index.add(codes)
            built[name] = (index, time.perf_counter() - t, rss() - before)
    # Load numba and the compiled kernels before measuring our own growth.
    warm = HammingIndex()
    warm.add(codes[:10], np.arange(10))
    warm.search(codes[0], RADIUS)
    gc.collect()
    before = rss()
    t = time.perf_counter()
    idx = HammingIndex()
    idx.add(codes, np.arange(len(codes), dtype=np.int64))
    built["ours"] = (idx, time.perf_counter() - t, rss() - before)
    return built


def faiss_search(index: object, q: np.ndarray) -> list[np.ndarray]:
    # faiss' binary range_search keeps distances strictly below the radius.
    lims, _, labels = index.range_search(q, RADIUS + 1)  # type: ignore[attr-defined]
    return [labels[lims[i] : lims[i + 1]] for i in range(len(q))]


def bench_lookups(codes, queries, planted, built, args, out: list[str]) -> None:
    idx = built["ours"][0]
    assert isinstance(idx, HammingIndex)
    nq = {"ours": len(queries), "multihash": min(args.mh_queries, len(queries))}
    nq["flat"] = min(args.flat_queries, len(queries))
    runs: dict[str, Callable[[], object]] = {
        "ours_single": partial(each, idx.search, queries, RADIUS),
        "ours_batch": partial(idx.search_many, queries, RADIUS),
    }
    for name in ("multihash", "flat"):
        if name in built:
            runs[name] = partial(faiss_search, built[name][0], np.ascontiguousarray(queries[: nq[name]]))
    count = {"ours_single": nq["ours"], "ours_batch": nq["ours"], **nq}
    # Repeats interleave the contenders, so load from other processes hits all alike.
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    rate = {k: count[k] / statistics.median(v) for k, v in times.items()}

    # Distances must be exact too, not only the ids.
    for qi in range(min(len(queries), 50)):
        ids, dists = idx.search(queries[qi], RADIUS)
        ref = np.unpackbits(codes[ids] ^ queries[qi], axis=1).sum(axis=1)
        assert np.array_equal(ref, dists), "wrong distance"
    rec = recall([ids for ids, _ in idx.search_many(queries, RADIUS)], planted, len(queries))
    _, build, grown = built["ours"]
    base = rate.get("multihash")
    vs = (lambda k: f"{rate[k] / base:,.1f}x") if base else (lambda k: "")
    out.append(
        f"| assay HammingIndex ({idx.kernel_name}), one query per call | {rate['ours_single']:,.0f} "
        f"| {rec:.2%} | {build:.1f} s | {size(idx.memory_bytes())} (memory_bytes), "
        f"{size(grown)} RSS | {vs('ours_single')} |"
    )
    out.append(
        f"| assay HammingIndex ({idx.kernel_name}), search_many({nq['ours']}) "
        f"| {rate['ours_batch']:,.0f} | {rec:.2%} | | | {vs('ours_batch')} |"
    )
    labels = {
        "multihash": "faiss IndexBinaryMultiHash(256,16,16), nflip=1",
        "flat": "faiss IndexBinaryFlat",
    }
    for name in ("multihash", "flat"):
        if name not in built:
            continue
        index, build, grown = built[name]
        q = np.ascontiguousarray(queries[: nq[name]])
        frec = recall(faiss_search(index, q), planted, nq[name])
        out.append(
            f"| {labels[name]}, range_search ({nq[name]} queries per call) | {rate[name]:,.1f} "
            f"| {frec:.2%} | {build:.1f} s | {size(grown)} RSS | {vs(name)} |"
        )


def bench_updates(codes, queries, idx: HammingIndex, args, notes: list[str]) -> None:
    nq = len(queries)
    extra = queries[:7].copy()
    extra[:, 0] ^= 0xFF
    add_ms, look_ms = [], []
    for i in range(len(extra)):  # the first lookup also loads the buffer-scan kernel
        t = time.perf_counter()
        idx.add(extra[i : i + 1], np.array([-1 - i]))
        add_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        ids, _ = idx.search(extra[i], RADIUS)
        look_ms.append((time.perf_counter() - t) * 1e3)
        assert -1 - i in ids.tolist()
    t = time.perf_counter()
    idx.remove(np.arange(0, len(codes), 1000))
    rm_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    idx.merge()
    merge_s = time.perf_counter() - t

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t = time.perf_counter()
        idx.save(Path(tmp) / "snap")
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        loaded = HammingIndex.load(Path(tmp) / "snap", mmap=True)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        loaded.search(queries[0], RADIUS)
        first_ms = (time.perf_counter() - t) * 1e3
        after = median_rate(partial(each, loaded.search, queries, RADIUS), nq, args.repeats)
    notes.append(
        f"Updates: add 1 entry {statistics.median(add_ms[1:]):.2f} ms, then its lookup "
        f"(radius {RADIUS}) {statistics.median(look_ms[1:]):.2f} ms (medians of {len(add_ms) - 1}), no rebuild "
        f"(first add + lookup: {add_ms[0]:.2f} + {look_ms[0]:.2f} ms); "
        f"remove {len(codes) // 1000:,} ids {rm_ms:.1f} ms; explicit full merge {merge_s:.1f} s. "
        f"Snapshot: save {save_s:.1f} s, load (mmap, validated) {load_s:.2f} s, first lookup "
        f"after load {first_ms:.1f} ms, then {after:,.0f} q/s."
    )


def bench_exact(n: int, args, out: list[str]) -> None:
    rng = np.random.default_rng(args.seed + 1)
    keys = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    ids = np.arange(n, dtype=np.int64)
    probe = [keys[i].tobytes() for i in rng.integers(0, n, 2000)]
    gc.collect()
    before = rss()
    t = time.perf_counter()
    idx = ExactIndex(32)
    idx.add(keys, ids)
    build = time.perf_counter() - t
    grown = rss() - before
    rate = median_rate(partial(each, idx.search, probe), len(probe), args.repeats)
    assert all(len(idx.search(k)) for k in probe[:100])
    del idx
    gc.collect()
    before = rss()
    t = time.perf_counter()
    raw = keys.tobytes()
    table = {raw[i * 32 : (i + 1) * 32]: i for i in range(n)}
    dict_build = time.perf_counter() - t
    dict_grown = rss() - before
    dict_rate = median_rate(partial(each, table.get, probe), len(probe), args.repeats)
    del table
    out.append("")
    out.append("| exact SHA-256 index | lookups/s | build | memory (RSS growth) |")
    out.append("|---|---|---|---|")
    out.append(f"| assay ExactIndex (sorted prefixes) | {rate:,.0f} | {build:.1f} s | {size(grown)} |")
    out.append(f"| Python dict bytes -> int | {dict_rate:,.0f} | {dict_build:.1f} s | {size(dict_grown)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="bank size")
    p.add_argument("--queries", type=int, default=1000, help="queries for assay")
    p.add_argument("--mh-queries", type=int, default=None,
                   help="queries for faiss MultiHash (default: the same set as assay's)")
    p.add_argument("--flat-queries", type=int, default=None,
                   help="queries for faiss Flat (brute force, a recall reference; default a subset)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tmp", default=None, help="directory for the snapshot test")
    p.add_argument("--no-faiss", action="store_true")
    p.add_argument("--no-exact", action="store_true")
    args = p.parse_args()
    big = args.n >= 5_000_000
    # The ratio is against MultiHash: it gets the very queries assay gets, at every n.
    args.mh_queries = args.mh_queries or args.queries
    args.flat_queries = args.flat_queries or (50 if big else 300)

    codes, queries, planted = make_bank(args.n, args.queries, args.seed)
    out = [
        f"n = {args.n:,} random 256-bit codes, {args.queries} queries x 32 planted neighbours "
        f"at distances 0..31, radius {RADIUS}, one thread, median of {args.repeats} runs, "
        f"kernel {_mih.DEFAULT.name}",
        "",
        "| contender | queries/s | recall of planted | build | memory | vs MultiHash |",
        "|---|---|---|---|---|---|",
    ]
    built = build_all(codes, not args.no_faiss)
    bench_lookups(codes, queries, planted, built, args, out)
    idx = built.pop("ours")[0]
    built.clear()  # free faiss before the update and exact-index figures
    gc.collect()
    notes: list[str] = []
    assert isinstance(idx, HammingIndex)
    bench_updates(codes, queries, idx, args, notes)
    del idx
    out += ["", *notes]
    if not args.no_exact:
        del codes
        bench_exact(args.n, args, out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
