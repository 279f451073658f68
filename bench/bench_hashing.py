"""Image hashing throughput: assay (fast and reference PDQ) vs python-threatexchange.

One process, one thread, the same files for every contender, rounds interleaved so
that load on a shared machine hits all contenders alike. Reports the median
images/s over rounds and the median of the per-round ratios.

    .venv/bin/python bench/bench_hashing.py [--rounds 7] [--testdata ../shared/testdata]

assay's numbers include what it returns on top of PDQ: reading the file once,
MD5 and SHA-256 of the bytes. threatexchange's ``pdq_from_file`` computes PDQ only.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_file

from assay.config import Limits
from assay.media import decode, hamming, hash_image_file
from assay.media.hashes import file_digests
from assay.media.pdq import fast_pdq

ROOT = Path(__file__).resolve().parents[1]


def photo_like(w: int, h: int, seed: int) -> np.ndarray:
    """Benign synthetic 'photo': smooth random field at several scales, edges,
    and fine noise in part of the frame (file sizes like a q90 camera JPEG)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for cells, amp in ((6, 1.0), (24, 0.35), (96, 0.15)):
        coarse = rng.integers(0, 256, (cells * h // w + 1, cells, 3), dtype=np.uint8)
        up = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
        out += np.asarray(up, np.float32) * amp
    out /= 1.5
    y0 = h // 3
    out[y0:, : w // 2] += rng.normal(0, 14, (h - y0, w // 2, 1)).astype(np.float32)
    out[:, w // 2 :] += ((np.arange(w - w // 2) // 16) % 2 * 20.0)[None, :, None]
    return out.clip(0, 255).astype(np.uint8)


def make_jpegs(folder: Path, size: tuple[int, int], n: int, tag: str) -> list[Path]:
    paths = []
    for i in range(n):
        p = folder / f"{tag}-{i}.jpg"
        Image.fromarray(photo_like(*size, seed=100 + i)).save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


CONTENDERS: dict[str, Callable[[Path], object]] = {
    "threatexchange pdq_from_file": pdq_from_file,
    "assay fast": lambda p: hash_image_file(p),
    "assay reference": lambda p: hash_image_file(p, mode="reference"),
}
BASELINE = "threatexchange pdq_from_file"


def run_set(name: str, files: list[Path], rounds: int) -> list[str]:
    for fn in CONTENDERS.values():  # warm caches (weights, imports, page cache)
        fn(files[0])
    per_round: dict[str, list[float]] = {k: [] for k in CONTENDERS}
    for _ in range(rounds):
        # Interleave per file, so a burst of load from other processes lands on
        # every contender rather than on whichever happened to run then.
        spent = dict.fromkeys(CONTENDERS, 0.0)
        for f in files:
            for label, fn in CONTENDERS.items():
                t0 = time.perf_counter()
                fn(f)
                spent[label] += time.perf_counter() - t0
        for label in CONTENDERS:
            per_round[label].append(len(files) / spent[label])
    lines = []
    base = per_round[BASELINE]
    for label, rates in per_round.items():
        ratios = [r / b for r, b in zip(rates, base, strict=True)]
        lines.append(
            f"| {name} | {label} | {statistics.median(rates):.1f} | "
            f"{statistics.median(ratios):.1f}x |"
        )
    dist = [
        hamming(hash_image_file(f).pdq, hash_image_file(f, mode="reference").pdq) for f in files
    ]
    lines.append(
        f"| {name} | fast vs reference Hamming distance | median {statistics.median(dist)}, "
        f"max {max(dist)} | |"
    )
    return lines


def stage_profile(path: Path, reps: int) -> list[str]:
    """Where the fast path spends its time on one file (median ms over reps)."""
    data = path.read_bytes()
    limits = Limits()

    def t(fn: Callable[[], object]) -> float:
        xs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            xs.append(time.perf_counter() - t0)
        return statistics.median(xs) * 1000

    def decode_only() -> object:
        return decode.reduced_luma(decode.open_image(data, str(path), limits))

    reduced, _ = decode_only()
    full = np.asarray(Image.open(io.BytesIO(data)))
    return [
        f"| read file | {t(path.read_bytes):.1f} |",
        f"| MD5 + SHA-256 | {t(lambda: file_digests(data)):.1f} |",
        f"| open + reduced decode (JPEG draft, luma) -> {reduced.luma.shape[1]}x{reduced.luma.shape[0]} | {t(decode_only):.1f} |",
        f"| PDQ from reduced plane (filter weights, DCT, median) | {t(lambda: fast_pdq(reduced.luma, reduced.orig_size, reduced.block)):.2f} |",
        f"| for scale: full-size decode (what threatexchange does) | {t(lambda: Image.open(io.BytesIO(data)).load()):.1f} |",
        f"| for scale: threatexchange's whole hasher on this file ({full.shape[1]}x{full.shape[0]}) | {t(lambda: pdq_from_file(path)):.1f} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--testdata", type=Path, default=ROOT.parent / "shared" / "testdata")
    ap.add_argument("--only", default="", help="run only sets whose name contains this")
    args = ap.parse_args()

    print(f"# bench_hashing: {args.rounds} rounds, medians; ratio = median of per-round ratios")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sets: list[tuple[str, list[Path]]] = []
        exif = sorted((args.testdata / "pdq" / "reg-test-input" / "exif-rotn").glob("*.jpg"))
        if exif:
            sets.append(("12-MP photos (shared exif-rotn, 4)", exif))
        sets.append(
            ("12-MP generated q90 (4000x3000, 3)", make_jpegs(folder, (4000, 3000), 3, "g12"))
        )
        sets.append(("1-MP generated q90 (1152x864, 6)", make_jpegs(folder, (1152, 864), 6, "g1")))
        bridge = sorted((args.testdata / "pdq" / "bridge-mods").glob("*.jpg"))
        bridge = [p for p in bridge if Image.open(p).size == (1600, 1004)]
        if bridge:
            sets.append((f"1.6-MP photos (shared bridge-mods, {len(bridge)})", bridge))
        sets = [(n, f) for n, f in sets if args.only in n]
        for name, files in sets:
            sizes = [f.stat().st_size for f in files]
            print(f"\n{name}: mean file size {statistics.mean(sizes) / 1e6:.2f} MB")
        print("\n| set | contender | images/s | vs threatexchange |\n|---|---|---|---|")
        for name, files in sets:
            for line in run_set(name, files, args.rounds):
                print(line, flush=True)
        print(
            "\n## Fast path stages, first file of the first set (median ms)\n\n| stage | ms |\n|---|---|"
        )
        for line in stage_profile(sets[0][1][0], reps=max(5, args.rounds)):
            print(line)


if __name__ == "__main__":
    main()
