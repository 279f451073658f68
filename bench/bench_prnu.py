"""Benchmark: camera sensor fingerprints (assay.camera) on synthetic cameras, and speed
against prnu-python (Politecnico di Milano's port of the Binghamton reference code).

Detection: ``--cameras`` synthetic cameras in two "models" (tests/prnu_synth.py), each
enrolled from ``--enrol`` photos (JPEG q 90), tested with ``--tests`` photos of its own at
JPEG q 85-95: true-positive rate at PCE 60, and every test photo against every other
camera's fingerprint (cross-camera pairs): false positives at PCE 60 and the largest PCE.

Speed (``--prnu-python PATH``: a checkout of prnu-python, run from a throw-away venv whose
python is ``--prnu-python-venv``): residual extraction and PCE of the same photos, one after
the other in one run, medians and ratios; and one 12-MP photo against one fingerprint.

    .venv/bin/python bench/bench_prnu.py [--size 512] [--cameras 8] [--enrol 20] [--tests 20]
        [--prnu-python /tmp/prnu-python --prnu-python-venv /tmp/prnuvenv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from assay.camera import prnu  # noqa: E402
from prnu_synth import Camera, scene  # noqa: E402


def detection(size: int, n_cams: int, n_enrol: int, n_tests: int) -> dict[str, float]:
    shape = (size, size)
    cams = [Camera(100 + i, i % 2, shape, sigma=float(np.linspace(0.005, 0.02, n_cams)[i])) for i in range(n_cams)]
    t = time.perf_counter()
    prints = [prnu.estimate([c.photo(scene(10_000 * c.seed + i, shape), 90, i) for i in range(n_enrol)]) for c in cams]
    enrol_s = time.perf_counter() - t
    tp = fn = fp = 0
    worst_neg, weakest_pos = -np.inf, np.inf
    qualities = (85, 90, 95)
    t = time.perf_counter()
    for ci, cam in enumerate(cams):
        for j in range(n_tests):
            pr = prnu.probe(cam.photo(scene(20_000 * cam.seed + j, shape), qualities[j % 3], 1000 + j),
                            rotations=False)
            for fi, fpr in enumerate(prints):
                d = prnu.detect(pr, fpr, rotations=False)
                assert d is not None
                if fi == ci:
                    tp += d.pce >= prnu.DEFAULT_THRESHOLD
                    fn += d.pce < prnu.DEFAULT_THRESHOLD
                    weakest_pos = min(weakest_pos, d.pce)
                else:
                    fp += d.pce >= prnu.DEFAULT_THRESHOLD
                    worst_neg = max(worst_neg, d.pce)
    test_s = time.perf_counter() - t
    pairs = n_cams * n_tests * (n_cams - 1)
    return {"tpr": tp / (tp + fn), "true_pairs": tp + fn, "false_positives": fp, "cross_pairs": pairs,
            "weakest_positive_pce": weakest_pos, "largest_negative_pce": worst_neg,
            "enrol_s_per_photo": enrol_s / (n_cams * n_enrol), "test_s_per_pair": test_s / (n_cams * n_tests * n_cams)}


PEER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import prnu
imgs = [np.load(p) for p in sys.argv[3:]]
k = np.load(sys.argv[2])
out = {"residual": [], "pce": []}
for im in imgs:
    t = time.perf_counter(); w = prnu.extract_single(im); out["residual"].append(time.perf_counter() - t)
    t = time.perf_counter()
    cc = prnu.crosscorr_2d(k * prnu.rgb2gray(im), w); p = prnu.pce(cc)["pce"]
    out["pce"].append(time.perf_counter() - t)
    out.setdefault("values", []).append(float(p))
print(json.dumps(out))
"""


def speed(size: int, repeat: int, peer_src: str | None, peer_python: str | None) -> dict[str, float]:
    shape = (size, size)
    cam = Camera(7, 0, shape)
    fp = prnu.estimate([cam.photo(scene(70_000 + i, shape), 90, i) for i in range(8)])
    photos = [cam.photo(scene(71_000 + i, shape), 90, 50 + i) for i in range(repeat)]
    ours_res, ours_pce = [], []
    for im in photos:
        t = time.perf_counter()
        w = prnu.residual(im.astype(np.float64)) * prnu._gray(im.astype(np.float64))
        ours_res.append(time.perf_counter() - t)
        t = time.perf_counter()
        prnu.pce(prnu._correlate(w, fp.k.astype(np.float64)), (0, 0))
        ours_pce.append(time.perf_counter() - t)
    out = {"ours_residual_s": statistics.median(ours_res), "ours_pce_s": statistics.median(ours_pce)}
    if peer_src and peer_python:
        with tempfile.TemporaryDirectory() as d:
            np.save(Path(d) / "k.npy", fp.k)
            paths = []
            for i, im in enumerate(photos):
                np.save(Path(d) / f"{i}.npy", im)
                paths.append(str(Path(d) / f"{i}.npy"))
            res = subprocess.run([peer_python, "-c", PEER, peer_src, str(Path(d) / "k.npy"), *paths],
                                 capture_output=True, text=True, check=True)
        peer = json.loads(res.stdout)
        out.update(peer_residual_s=statistics.median(peer["residual"]), peer_pce_s=statistics.median(peer["pce"]))
        out["residual_ratio"] = out["peer_residual_s"] / out["ours_residual_s"]
        out["pce_ratio"] = out["peer_pce_s"] / out["ours_pce_s"]
    return out


def twelve_mp() -> float:
    shape = (3000, 4000)
    rng = np.random.default_rng(1)
    k = rng.normal(0, 0.01, shape).astype(np.float32)
    fp = prnu.Fingerprint(k, 20)
    photo = np.clip(scene(5, shape) * (1 + k[..., None]), 0, 255).astype(np.uint8)
    t = time.perf_counter()
    d = prnu.detect(photo, fp, rotations=False, translations=False)
    dt = time.perf_counter() - t
    assert d is not None and d.pce > prnu.DEFAULT_THRESHOLD
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--enrol", type=int, default=20)
    ap.add_argument("--tests", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--prnu-python", default=None)
    ap.add_argument("--prnu-python-venv", default=None)
    ap.add_argument("--skip-12mp", action="store_true")
    args = ap.parse_args()
    print(json.dumps({"detection": detection(args.size, args.cameras, args.enrol, args.tests)}, indent=1))
    print(json.dumps({"speed": speed(args.size, args.repeat, args.prnu_python, args.prnu_python_venv)}, indent=1))
    if not args.skip_12mp:
        print(json.dumps({"12mp_photo_vs_one_fingerprint_s": twelve_mp()}))


if __name__ == "__main__":
    main()
