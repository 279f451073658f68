"""What the geometry variants cost at lookup: images/s against a large PDQ index, with
every variant hash of each image looked up (as ``scan`` does, one batch per image) and
with the plain hash alone, assay's HammingIndex beside faiss IndexBinaryMultiHash on
the same batches, one thread each.

Index: n random 256-bit codes plus, for each shared photo, every hash ``bank add
--image`` stores (plain, trimmed, centred crops, upper region, anchored regions).
Queries: for each photo, rewrites (10% black border, 6% centred crop, an off-centre
crop of ~15% of the area, a caption band of 12%) as ``scan`` hashes them.

    .venv/bin/python bench/bench_crops_lookup.py --n 10000000 [--repeats 3] [--images 12]

``--images N`` times only the first N query images (faiss at 10M takes seconds an image
with every variant hash).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import crop_eval  # noqa: E402
from assay.banks.index import HammingIndex  # noqa: E402
from assay.media.hashes import hash_image_bytes  # noqa: E402

RADIUS = 31


def codes_of(hexes: list[str]) -> np.ndarray:
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in hexes), dtype=np.uint8).reshape(len(hexes), 32)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    ap.add_argument("--images", type=int, default=0, help="time only the first N query images (0: all)")
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    photos = crop_eval.photos(args.testdata)
    banked = [v for _, im in photos
              for _, v in crop_eval.bank_hashes(hash_image_bytes(crop_eval.encode(im, "JPEG", 95), bank_variants=True))]
    rng = random.Random(1)
    rewrites = [crop_eval.GROUPS["borders and bars (up to 25%)"]["border 10% black"],
                crop_eval.centred_crop(0.06, 0.06), crop_eval.offcentre_crop(0.15, 0.15),
                crop_eval.caption_over(0.12, "opaque")]
    batches = [[v for _, v in crop_eval.query_hashes(hash_image_bytes(crop_eval.encode(fn(im, rng), "JPEG", 85)))]
               for _, im in photos for fn in rewrites]
    if args.images:  # a spread of rewrites: every k-th image
        step = max(1, len(batches) // args.images)
        batches = batches[::step][:args.images]
    variant_batches = [codes_of(b) for b in batches]
    plain_batches = [codes_of(b[:1]) for b in batches]
    per_image = [len(b) for b in batches]
    codes = np.random.default_rng(0).integers(0, 256, size=(args.n, 32), dtype=np.uint8)
    codes = np.concatenate([codes, codes_of(banked)])
    print(f"index: {args.n:,} random codes + {len(banked)} banked hashes of {len(photos)} photos "
          f"({len(banked) / len(photos):.1f} an image); {len(batches)} query images, "
          f"{statistics.mean(per_image):.1f} variant hashes an image (max {max(per_image)})")
    warm = HammingIndex()  # compile the kernels before anything is timed
    warm.add(codes[:10], np.arange(10))
    warm.search_flat(codes[:2], RADIUS)
    t = time.perf_counter()
    ours = HammingIndex()
    ours.add(codes, np.arange(len(codes), dtype=np.int64))
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    mh = faiss.IndexBinaryMultiHash(256, 16, 16)
    mh.nflip = 1
    mh.add(codes)
    t_mh = time.perf_counter() - t
    print(f"build: ours {t_ours:.1f} s ({ours.memory_bytes() / 1e9:.2f} GB), faiss multihash {t_mh:.1f} s; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")

    def run_ours(bs: list[np.ndarray]) -> None:
        for b in bs:
            ours.search_flat(b, RADIUS)

    def run_mh(bs: list[np.ndarray]) -> None:
        for b in bs:
            mh.range_search(b, RADIUS + 1)

    run_ours(variant_batches[:2])  # the size-specific kernels, once
    rows = []
    for label, bs in (("plain hash only (--no-variants)", plain_batches), ("every variant hash", variant_batches)):
        rates = {}
        for name, fn in (("ours", run_ours), ("faiss", run_mh)):
            times = []
            for _ in range(args.repeats):  # CPU seconds (one thread each): the machine is shared
                t = time.process_time()
                fn(bs)
                times.append(time.process_time() - t)
            rates[name] = len(bs) / statistics.median(times)
        rows.append((label, rates["ours"], rates["faiss"]))
    print("\n| queries per image | assay images per CPU s | faiss IndexBinaryMultiHash images per CPU s | ratio |\n|---|---|---|---|")
    for label, a, f in rows:
        print(f"| {label} | {a:,.1f} | {f:,.1f} | {a / f:.1f}x |")
    found = sum(len(ours.search_flat(b, RADIUS)[1]) > 0 for b in variant_batches)
    print(f"\nquery images with a hit (variants): {found}/{len(variant_batches)}")


if __name__ == "__main__":
    main()
