"""What the geometry variants (issue #23) cost to hash: CPU ms per image, medians.

The shared photos of tests/crop_eval.py (PDQ quality >= 50) as JPEG q88, hashed in one
process, rounds interleaved: plain PDQ (``--no-variants``), the query variants of a scan
against banks holding every kind of variant hash (``bank add --image`` banks), against
banks of plain hash lists (imports: nothing but mirror, borders and caption bands can
match them), and ``bank add --image``. CPU time (time.process_time), so the figure
holds on a loaded machine; also the PDQ hashes each side computes.

    .venv/bin/python bench/bench_variant_hashing.py [--rounds 7] [--bordered] [--mode reference] [--photo F]

``--bordered`` adds a 10% black border to every photo (the case where the border's edge
is placed on a finer plane: media/decode.fine_luma). ``--cold`` empties PDQ's filter caches
before each image, as a scan of photos of many sizes meets them (each new size and region
builds its resampling weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import crop_eval  # noqa: E402
from assay.media import pdq  # noqa: E402
from assay.media.hashes import hash_image_bytes  # noqa: E402

CASES: dict[str, dict[str, Any]] = {
    "--no-variants": {"variants": False},
    "scan, banks with every variant kind": {},
    "scan, banks of plain hash lists": {"bank_kinds": frozenset()},
    "bank add --image": {"bank_variants": True},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--bordered", action="store_true")
    ap.add_argument("--cold", action="store_true", help="empty PDQ's filter caches before each image")
    ap.add_argument("--mode", choices=("fast", "reference"), default="fast", help="PDQ mode (scan --mode)")
    ap.add_argument("--photo", type=Path, action="append", default=None,
                    help="hash this file as stored instead of the shared photos (repeatable)")
    args = ap.parse_args()
    photos = crop_eval.photos(args.testdata) if not args.photo else []
    if args.bordered:
        border = crop_eval.GROUPS["borders and bars (up to 25%)"]["border 10% black"]
        photos = [(n, border(im, None)) for n, im in photos]  # type: ignore[arg-type]
    data = [crop_eval.encode(im, "JPEG", 88) for _, im in photos] + [p.read_bytes() for p in args.photo or []]
    cases = {k: {**kw, "mode": args.mode} for k, kw in CASES.items()}
    try:
        hash_image_bytes(data[0], bank_kinds=frozenset())
    except TypeError:  # a build without bank_kinds: every query variant, always
        del cases["scan, banks of plain hash lists"]
    for d in data:  # warm caches (filter bands, imports)
        for kw in cases.values():
            hash_image_bytes(d, **kw)
    per: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for key, kw in cases.items():
            spent = 0.0
            for d in data:
                if args.cold:
                    pdq._axis_band.cache_clear()
                    pdq._axis_band_span.cache_clear()
                t = time.process_time()
                hash_image_bytes(d, **kw)
                spent += time.process_time() - t
            per[key].append(spent / len(data))
    print(f"{len(data)} photos{' with a 10% black border' if args.bordered else ''}, "
          f"{'as stored' if args.photo else 'JPEG q88'}, {args.mode} mode"
          f"{', filter caches emptied before each image' if args.cold else ''}, "
          f"median of {args.rounds} rounds, CPU ms per image\n")
    print("| hashing | CPU ms/image | ratio to plain | PDQ hashes per image (mean) |\n|---|---|---|---|")
    plain = statistics.median(per["--no-variants"])
    for key, kw in cases.items():
        hs = [hash_image_bytes(d, **kw) for d in data]
        n = statistics.mean(1 + len(h.trimmed or {}) + len(h.regions or {}) + len(h.bank_regions or {}) for h in hs)
        ms = statistics.median(per[key])
        print(f"| {key} | {1000 * ms:.1f} | {ms / plain:.2f}x | {n:.1f} |")


if __name__ == "__main__":
    main()
