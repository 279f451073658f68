"""What the border/bar variants cost: hashing time per image and extra hashes per image.

Same files, one process, rounds interleaved: assay's fast PDQ with the variants
(the default) against ``--no-variants``, on the shared photos and rewrites of them
(borders, bars) as JPEG. Reports the median per-image time of each and their ratio,
and how many extra PDQ hashes the variants add per image (each is one more query in
a scan and one more index entry for an entry banked with `bank add --image`).

    .venv/bin/python bench/bench_trim.py [--rounds 7] [--testdata ../shared/testdata]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image, ImageOps

from assay.media.hashes import hash_image_bytes

ROOT = Path(__file__).resolve().parents[1]


def _enc(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=88)
    return buf.getvalue()


def corpus(testdata: Path) -> list[bytes]:
    pdq = testdata / "pdq"
    paths = sorted((pdq / "reg-test-input" / "labelme-subset").glob("*.jpg"))
    paths += [pdq / "bridge-mods" / "aaa-orig.jpg", pdq / "reg-test-input" / "exif-rotn" / "exif-rotn-1.jpg"]
    out = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        out.append(p.read_bytes())
        out.append(_enc(ImageOps.expand(im, border=(w // 10, h // 10) * 2, fill=(0, 0, 0))))
        bars = Image.new("RGB", (w, int(h / 0.6)), (0, 0, 0))
        bars.paste(im, (0, (bars.height - h) // 2))
        out.append(_enc(bars))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    args = ap.parse_args()
    files = corpus(args.testdata)
    per = {True: [], False: []}
    ratios = []
    for _ in range(args.rounds):
        times = {}
        for variants in (True, False):
            t0 = time.perf_counter()
            for data in files:
                hash_image_bytes(data, variants=variants)
            times[variants] = (time.perf_counter() - t0) / len(files)
            per[variants].append(times[variants])
        ratios.append(times[True] / times[False])
    extra = [len([v for v in (hash_image_bytes(d).trimmed or {}) if "+" not in v]) for d in files]
    print(f"{len(files)} images ({len(files) // 3} photos, each also with a 10% black border and 20% bars), "
          f"{args.rounds} rounds")
    print(f"with variants:    {1000 * statistics.median(per[True]):.2f} ms/image")
    print(f"--no-variants:    {1000 * statistics.median(per[False]):.2f} ms/image")
    print(f"ratio (median of rounds): {statistics.median(ratios):.2f}x")
    print(f"extra PDQ hashes per image: mean {statistics.mean(extra):.2f}, max {max(extra)}; "
          f"images with any: {sum(1 for e in extra if e)}/{len(extra)}")


if __name__ == "__main__":
    main()
