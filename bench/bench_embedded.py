"""Pictures pasted onto noise or onto other pictures (media/embedded.py) and copies turned
by a small angle with filled corners (media/tilt.py): found, false matches, cost.

Turned: each photo turned 2, 5, 10 and -5 degrees (Pillow's rotate, bicubic, with and
without ``expand``, corners black and white), saved as JPEG q85; found when its
``untilted`` variant lies within 31 of the original's plain PDQ.

Each shared photo (tests/crop_eval.py's, PDQ quality >= 50) is pasted onto random noise
(colour 5/15/25% a side, grey 10%, one off-centre canvas touching an edge) and onto the
next photo (at 60%, 50%, 75% and 40% of its size, in four places), saved as PNG and JPEG
q85, and hashed as a scan hashes it; it is found when its ``embedded`` variant
lies within 31 of the original's plain PDQ (a plain bank: no image on the bank side).
False matches: every ``embedded`` hash against the plain hashes of every other photo
and of the unrelated images (tiles, documents, skies); and how many of the ordinary
pictures get an ``embedded`` query at all. Cost: the detector on the reduced plane a
scan hashes, per ordinary picture, beside the whole of hash_image_bytes.

    .venv/bin/python bench/bench_embedded.py [--testdata ../shared/testdata] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import crop_eval  # noqa: E402
from assay.media import decode, embedded, tilt  # noqa: E402
from assay.media.hashes import DEFAULT_LIMITS, hash_image_bytes  # noqa: E402
from assay.media.pdq import hamming  # noqa: E402

CANVASES = {  # name -> (top, bottom, left, right) shares, grey noise
    "colour 15%": ((0.15,) * 4, False), "colour 5%": ((0.05,) * 4, False), "colour 25%": ((0.25,) * 4, False),
    "grey 10%": ((0.10,) * 4, True), "off-centre, on the bottom edge": ((0.2, 0.0, 0.1, 0.15), False),
}


def on_noise(im: Image.Image, share: tuple[float, ...], grey: bool, seed: int) -> Image.Image:
    w, h = im.size
    t, b, lft, r = (round(s * n) for s, n in zip(share, (h, h, w, w), strict=True))
    noise = np.random.default_rng(seed).integers(0, 256, (h + t + b, w + lft + r, 1 if grey else 3), dtype=np.uint8)
    canvas = Image.fromarray(np.repeat(noise, 3, axis=2) if grey else noise)
    canvas.paste(im, (lft, t))
    return canvas


PICTURES = {  # name -> (scale, (x, y) shares of the width and height)
    "60% near the top left": (0.6, (0.05, 0.1)), "50% inside": (0.5, (0.3, 0.2)),
    "75% on the top edge": (0.75, (0.2, 0.0)), "40% near the bottom right": (0.4, (0.5, 0.45)),
}


def on_picture(im: Image.Image, background: Image.Image, scale: float, at: tuple[float, float]) -> Image.Image:
    w, h = im.size
    canvas = background.resize((w, h))
    canvas.paste(im.resize((int(w * scale), int(h * scale))), (int(w * at[0]), int(h * at[1])))
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    photos = crop_eval.photos(args.testdata)
    unrelated = crop_eval.unrelated(args.testdata)
    plain = {n: hash_image_bytes(crop_eval.encode(im, "PNG"), variants=False).pdq for n, im in photos}
    others = [h for h in (hash_image_bytes(crop_eval.encode(im), variants=False) for im in unrelated)
              if h.quality >= crop_eval.LOW]
    others_plain = [h.pdq for h in others]
    for kind, rewrites in (("noise", [(j, lambda im, k, j=j, c=c: on_noise(im, c[0], c[1], seed=10 * k + j))
                                      for j, c in enumerate(CANVASES.values())]),
                           ("a picture", [(j, lambda im, k, c=c: on_picture(im, photos[(k + 1) % len(photos)][1], *c))
                                          for j, c in enumerate(PICTURES.values())])):
        found = total = false = compared = fired = 0
        dists: list[int] = []
        for k, (name, im) in enumerate(photos):
            for _, rewrite in rewrites:
                edited = rewrite(im, k)
                for fmt in ("PNG", "JPEG"):
                    hashes = hash_image_bytes(crop_eval.encode(edited, fmt, 85))
                    got = (hashes.regions or {}).get("embedded")
                    total += 1
                    d = hamming(got[0], plain[name]) if got else 256
                    # a canvas the border trim takes for uniform (noise averaged away on a 1/8
                    # plane) is found as trimmed, and not looked up again as embedded
                    trimmed = min((hamming(v, plain[name]) for v, _ in (hashes.trimmed or {}).values()), default=256)
                    found += min(d, trimmed) <= crop_eval.THRESHOLD
                    fired += got is not None
                    if got:
                        dists.append(d)
                        for other in [v for n, v in plain.items() if n != name] + others_plain:
                            compared += 1
                            false += hamming(got[0], other) <= crop_eval.THRESHOLD
        n_rewrites = len(rewrites)
        print(f"on {kind}: {len(photos)} photos x {n_rewrites} x PNG/JPEG q85: found {found}/{total}, "
              f"an embedded query for {fired} (distance to the original: median "
              f"{statistics.median(dists) if dists else '-'}); within 31 of another photo or an unrelated "
              f"image: {false} of {compared}")
    turned: dict[tuple[str, int], list[int]] = {}
    false = compared = 0
    for name, im in photos:
        for angle in (2, 5, 10, -5):
            for expand in (True, False):
                for fill in ((0, 0, 0), (255, 255, 255)):
                    data = crop_eval.encode(im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=expand,
                                                      fillcolor=fill), "JPEG", 85)
                    got = (hash_image_bytes(data).regions or {}).get("untilted")
                    d = hamming(got[0], plain[name]) if got else 256
                    row = turned.setdefault(("with expand" if expand else "within its frame", abs(angle)), [0, 0, 0])
                    row[0] += d <= crop_eval.THRESHOLD
                    row[1] += got is not None
                    row[2] += 1
                    if got:
                        for other in [v for n, v in plain.items() if n != name] + others_plain:
                            compared += 1
                            false += hamming(got[0], other) <= crop_eval.THRESHOLD
    for (how, angle), (found, queried, total) in sorted(turned.items()):
        print(f"turned {angle} degrees {how}: found {found}/{total} (queried {queried})")
    print(f"untilted hashes within 31 of another photo or an unrelated image: {false} of {compared}")
    ordinary = [im for _, im in photos] + unrelated
    datas = [crop_eval.encode(im, "JPEG", 90) for im in ordinary]
    regions = [hash_image_bytes(d).regions or {} for d in datas]
    print(f"ordinary pictures with an embedded query: {sum('embedded' in r for r in regions)}, an untilted "
          f"query: {sum('untilted' in r for r in regions)}, of {len(datas)}")
    reduced = [decode.reduced_luma(decode.open_image(d, "x", DEFAULT_LIMITS))[0] for d in datas]
    det: list[float] = []
    whole: list[float] = []
    for _ in range(args.rounds):
        t = time.process_time()
        for r in reduced:
            if embedded.noise_canvas_box(r.luma) is None:
                embedded.picture_box(r.luma, gap=2 if r.block[0] > 1 else 1)
            tilt.tilt(r.luma)
        det.append((time.process_time() - t) / len(reduced) * 1000)
        t = time.process_time()
        for d in datas:
            hash_image_bytes(d)
        whole.append((time.process_time() - t) / len(datas) * 1000)
    print(f"CPU ms per ordinary picture (median of {args.rounds} rounds): detectors {statistics.median(det):.3f}, "
          f"hash_image_bytes with variants {statistics.median(whole):.2f}")


if __name__ == "__main__":
    main()
