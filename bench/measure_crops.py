"""How far geometry moves PDQ: the measurements media/crops.py is designed from.

For each shared photo (PDQ quality >= 50; tests/crop_eval.py), the fast-mode PDQ
distance between a reference region and the same region moved a little:

* centred crops of c per side against the whole image (how finely a crop grid must be
  spaced), and against a banked 5% crop (the tolerance around one grid point);
* a 90% box shifted sideways by s (translation alone);
* one side cut by c (an off-centre crop);
* the image's own hash of its mirror against PDQ's DCT-domain flip (``flipy``).

Then the grid actually used (media/crops.py: banked crops at 2..10%, query crops at
0.4..1.6%) on crops of every 0.5% up to 11%: the best distance per cut.

    .venv/bin/python bench/measure_crops.py [--testdata ../shared/testdata]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import crop_eval  # noqa: E402
from assay.media.hashes import hash_image_bytes  # noqa: E402
from assay.media.pdq import hamming  # noqa: E402


def box(im: Image.Image, t: float, b: float, left: float, r: float) -> Image.Image:
    w, h = im.size
    return im.crop((round(left * w), round(t * h), round(w - r * w), round(h - b * h)))


def pdq(im: Image.Image, **kw: object) -> str:
    return hash_image_bytes(crop_eval.encode(im, "JPEG", 90), variants=False, **kw).pdq  # type: ignore[arg-type]


def row(label: str, dists: list[int]) -> None:
    within = sum(d <= crop_eval.THRESHOLD for d in dists)
    print(f"| {label} | {statistics.median(dists):.0f} | {max(dists)} | {within}/{len(dists)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    args = ap.parse_args()
    photos = [im for _, im in crop_eval.photos(args.testdata)]
    print(f"{len(photos)} photos (PDQ quality >= 50), JPEG q90, fast mode\n")
    print("| rewrite | median distance | max | within 31 |\n|---|---|---|---|")
    whole = [pdq(im) for im in photos]
    for c in (0.005, 0.01, 0.02, 0.03, 0.05):
        row(f"centred crop {c * 100:g}% a side vs whole", [hamming(o, pdq(box(im, c, c, c, c))) for o, im in zip(whole, photos, strict=True)])
    five = [pdq(box(im, 0.05, 0.05, 0.05, 0.05)) for im in photos]
    for c in (0.04, 0.045, 0.055, 0.06):
        row(f"centred crop {c * 100:g}% vs banked 5% crop", [hamming(o, pdq(box(im, c, c, c, c))) for o, im in zip(five, photos, strict=True)])
    for s in (0.005, 0.01, 0.02):
        row(f"90% box shifted {s * 100:g}% sideways", [hamming(o, pdq(box(im, 0.05, 0.05, 0.05 + s, 0.05 - s))) for o, im in zip(five, photos, strict=True)])
    for c in (0.01, 0.02, 0.05, 0.10):
        row(f"one side cut {c * 100:g}%", [hamming(o, pdq(box(im, 0, 0, 0, c))) for o, im in zip(whole, photos, strict=True)])
    mirrors = [pdq(ImageOps.mirror(im)) for im in photos]
    flips = [hash_image_bytes(crop_eval.encode(im, "JPEG", 90), variants=False, dihedral=True).dihedral["flipy"]  # type: ignore[index]
             for im in photos]
    row("mirror: DCT-domain flip (flipy) vs hash of the mirror", [hamming(a, b) for a, b in zip(flips, mirrors, strict=True)])
    own = [hash_image_bytes(crop_eval.encode(ImageOps.mirror(im), "JPEG", 90)).regions["mirror"][0] for im in photos]  # type: ignore[index]
    row("mirror: the query's mirror variant vs the original", [hamming(a, b) for a, b in zip(whole, own, strict=True)])

    print("\nThe grids of media/crops.py (query crops x banked crops), best distance per cut:\n")
    print("| cut a side | median | max | within 31 |\n|---|---|---|---|")
    banked = [crop_eval.bank_hashes(hash_image_bytes(crop_eval.encode(im, "JPEG", 95), bank_variants=True)) for im in photos]
    for k in range(0, 23):
        c = k * 0.005
        ds = []
        for im, b in zip(photos, banked, strict=True):
            q = crop_eval.query_hashes(hash_image_bytes(crop_eval.encode(box(im, c, c, c, c), "JPEG", 90)))
            ds.append(crop_eval.best(q, b)[0])
        row(f"{c * 100:.1f}%", ds)


if __name__ == "__main__":
    main()
