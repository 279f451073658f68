"""Geometry variants (issue #23) at full scale: rewrites matched, false matches, costs.

Runs tests/crop_eval.py on every shared photo (PDQ quality >= 50) and every rewrite
group (borders and bars, mirror, caption bands over and below the picture, centred and
off-centre crops), each saved as JPEG q90, JPEG q70 and PNG, banked as ``bank add
--image`` banks and queried as ``scan`` queries; then false matches over ordered pairs
of unrelated images, plain PDQ and with the variants side by side; then what the
variants cost: hashing time per image (variants on and off, rounds interleaved) and
hashes per image on each side.

    .venv/bin/python bench/eval_crops.py [--testdata ../shared/testdata] [--rounds 5]

Reduced scale (a before/after check of a change that must not change results):
``--photos 6 --formats jpeg90 --rounds 0``. ``--mode reference`` queries as ``scan --mode
reference`` does (the unrelated images are all under 512 pixels a side, where both modes
give the same hashes, so the false-match part is the same in both modes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import crop_eval  # noqa: E402
from assay.media.hashes import hash_image_bytes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--misses", action="store_true", help="list every miss")
    ap.add_argument("--photos", type=int, default=None, help="only the first N photos (reduced scale)")
    ap.add_argument("--no-false-matches", action="store_true", help="skip the unrelated pairs")
    ap.add_argument("--names", default=None, help="only the photos whose names contain one of these (comma list)")
    ap.add_argument("--mode", choices=("fast", "reference"), default="fast",
                    help="PDQ mode of the queries (scan --mode); banked as bank add --image banks")
    ap.add_argument("--formats", default="jpeg90,jpeg70,png", help="rewrites saved as, e.g. jpeg90,png")
    args = ap.parse_args()
    photos = crop_eval.photos(args.testdata, limit=args.photos)
    if args.names:
        photos = [(n, im) for n, im in photos if any(k in n for k in args.names.split(","))]
    formats = tuple(("PNG", 0) if f == "png" else ("JPEG", int(f.removeprefix("jpeg")))
                    for f in args.formats.lower().split(","))
    print(f"{len(photos)} photos: {', '.join(n for n, _ in photos)}")
    print("formats: " + ", ".join(f"{f}{q or ''}" for f, q in formats) + f"; queries in {args.mode} mode\n")
    print("| rewrites | matched | share | matched through (query / bank variant, top 4) |\n|---|---|---|---|")
    t0 = time.perf_counter()
    results = crop_eval.evaluate(photos, formats=formats, mode=args.mode)
    for group, res in results.items():
        top = ", ".join(f"{k} {v}" for k, v in sorted(res.how.items(), key=lambda kv: -kv[1])[:4])
        print(f"| {group} | {res.found}/{res.total} | {100 * res.found / res.total:.1f}% | {top} |")
    print(f"\n(evaluation {time.perf_counter() - t0:.0f} s)")
    for group, res in results.items():
        if res.misses and args.misses:
            print(f"\nmissed, {group}:\n  " + "\n  ".join(res.misses))
        elif res.misses:
            print(f"missed, {group}: {len(res.misses)}, e.g. {'; '.join(res.misses[:3])}")

    if args.no_false_matches:
        return
    images = crop_eval.unrelated(args.testdata)
    fm = crop_eval.false_matches(images)
    dp, dv = np.array(fm.plain_distances), np.array(fm.variant_distances)
    print(f"\nUnrelated images: {len(images)}, {fm.pairs} ordered pairs, {fm.compared} with a query hash "
          "of quality >= 50\n")
    print("| distance <= | plain PDQ pairs | with variants |\n|---|---|---|")
    for r in (31, 40, 48, 56, 64, 72):
        print(f"| {r} | {int((dp <= r).sum())} | {int((dv <= r).sum())} |")
    print(f"| nearest pair | {int(dp.min())} | {int(dv.min())} |")

    if args.rounds <= 0:
        return
    data = [crop_eval.encode(im, "JPEG", 88) for _, im in photos]
    per: dict[str, list[float]] = {"none": [], "query": [], "bank": []}
    for _ in range(args.rounds):
        for key, kw in (("none", {"variants": False}), ("query", {}), ("bank", {"bank_variants": True})):
            t = time.perf_counter()
            for d in data:
                hash_image_bytes(d, **kw)  # type: ignore[arg-type]
            per[key].append((time.perf_counter() - t) / len(data))
    nq = [len(crop_eval.query_hashes(hash_image_bytes(d))) for d in data]
    nb = [len(crop_eval.bank_hashes(hash_image_bytes(d, bank_variants=True))) for d in data]
    print(f"\nHashing, {len(data)} JPEGs, median of {args.rounds} rounds:\n")
    print("| | ms/image | PDQ hashes per image |\n|---|---|---|")
    print(f"| --no-variants | {1000 * statistics.median(per['none']):.2f} | 1 |")
    print(f"| scan (query variants) | {1000 * statistics.median(per['query']):.2f} | "
          f"mean {statistics.mean(nq):.1f}, max {max(nq)} looked up |")
    print(f"| bank add --image (query + bank variants hashed) | {1000 * statistics.median(per['bank']):.2f} | "
          f"mean {statistics.mean(nb):.1f}, max {max(nb)} banked |")


if __name__ == "__main__":
    main()
