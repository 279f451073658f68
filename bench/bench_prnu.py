"""Benchmark: camera sensor fingerprints (assay.camera) on synthetic cameras, and speed
against prnu-python (Politecnico di Milano's port of the Binghamton reference code).

Detection: ``--cameras`` synthetic cameras in two "models" (tests/prnu_synth.py), each
enrolled from ``--enrol`` photos (JPEG q 90), tested with ``--tests`` photos of its own at
JPEG q 85-95: true-positive rate at PCE 60, and every test photo against every other
camera's fingerprint (cross-camera pairs): false positives at PCE 60 and the largest PCE.

Speed (``--prnu-python PATH``: a checkout of prnu-python, run from a throw-away venv whose
python is ``--prnu-python-venv``): residual extraction and PCE of the same photos, one after
the other in one run, medians of CPU seconds and ratios; and one 12-MP photo against one
fingerprint, by both. ``--skip-detection`` leaves out the detection rates.

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
    t = time.process_time()
    prints = [prnu.estimate([c.photo(scene(10_000 * c.seed + i, shape), 90, i) for i in range(n_enrol)]) for c in cams]
    enrol_s = time.process_time() - t
    tp = fn = fp = 0
    worst_neg, weakest_pos = -np.inf, np.inf
    qualities = (85, 90, 95)
    t = time.process_time()
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
    test_s = time.process_time() - t
    pairs = n_cams * n_tests * (n_cams - 1)
    return {"tpr": tp / (tp + fn), "true_pairs": tp + fn, "false_positives": fp, "cross_pairs": pairs,
            "weakest_positive_pce": weakest_pos, "largest_negative_pce": worst_neg,
            "enrol_cpu_s_per_photo": enrol_s / (n_cams * n_enrol), "test_cpu_s_per_pair": test_s / (n_cams * n_tests * n_cams)}


PEER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import prnu
k = np.load(sys.argv[2])
out = {"residual": [], "pce": [], "values": []}
for p in sys.argv[3:]:
    im = np.load(p)
    t = time.process_time(); w = prnu.extract_single(im); out["residual"].append(time.process_time() - t)
    t = time.process_time()
    cc = prnu.crosscorr_2d(k * prnu.rgb2gray(im), w); v = prnu.pce(cc)["pce"]
    out["pce"].append(time.process_time() - t)
    out["values"].append(float(v))
print(json.dumps(out))
"""


def _peer(peer_src: str, peer_python: str, k: np.ndarray, photos: list[np.ndarray]) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as d:
        np.save(Path(d) / "k.npy", k)
        paths = []
        for i, im in enumerate(photos):
            np.save(Path(d) / f"{i}.npy", im)
            paths.append(str(Path(d) / f"{i}.npy"))
        res = subprocess.run([peer_python, "-c", PEER, peer_src, str(Path(d) / "k.npy"), *paths],
                             capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def _ours(fp: prnu.Fingerprint, photos: list[np.ndarray]) -> dict[str, list[float]]:
    """CPU seconds per photo: the residual (times the photo's intensity, what is correlated),
    of each colour channel (prnu-python's work) and of the luma (what assay matches with);
    correlation + PCE with the fingerprint's FFT computed for the photo (as prnu-python does)
    and with it computed once for every photo (what assay does for a bank)."""
    out: dict[str, list[float]] = {"residual": [], "residual_luma": [], "pce": [], "pce_cached": [], "values": []}
    fp.spectrum()
    for im in photos:
        t = time.process_time()
        w = prnu.residual(im, channels="each") * prnu._gray(im.astype(np.float32))
        out["residual"].append(time.process_time() - t)
        t = time.process_time()
        prnu.residual(im, channels="luma") * prnu._gray(im.astype(np.float32))
        out["residual_luma"].append(time.process_time() - t)
        t = time.process_time()
        v = prnu._whole_pces(w, prnu.Fingerprint(fp.k, fp.images), turned=False)[0]
        out["pce"].append(time.process_time() - t)
        t = time.process_time()
        prnu._whole_pces(w, fp, turned=False)
        out["pce_cached"].append(time.process_time() - t)
        out["values"].append(v)
    return out


def speed(size: int, repeat: int, peer_src: str | None, peer_python: str | None) -> dict[str, float]:
    shape = (size, size)
    cam = Camera(7, 0, shape)
    fp = prnu.estimate([cam.photo(scene(70_000 + i, shape), 90, i) for i in range(8)])
    photos = [cam.photo(scene(71_000 + i, shape), 90, 50 + i) for i in range(repeat)]
    prnu.residual(photos[0][:128, :128])  # numba's kernel loaded before timing
    ours = _ours(fp, photos)
    med = statistics.median
    out = {"ours_residual_cpu_s": med(ours["residual"]), "ours_residual_luma_cpu_s": med(ours["residual_luma"]),
           "ours_pce_cpu_s": med(ours["pce"]),
           "ours_pce_cached_fingerprint_cpu_s": med(ours["pce_cached"])}
    if peer_src and peer_python:
        peer = _peer(peer_src, peer_python, fp.k, photos)
        out.update(peer_residual_cpu_s=med(peer["residual"]), peer_pce_cpu_s=med(peer["pce"]))
        out["residual_ratio"] = out["peer_residual_cpu_s"] / out["ours_residual_cpu_s"]
        out["residual_ratio_luma"] = out["peer_residual_cpu_s"] / out["ours_residual_luma_cpu_s"]
        out["pce_ratio"] = out["peer_pce_cpu_s"] / out["ours_pce_cpu_s"]
        out["pce_ratio_cached_fingerprint"] = out["peer_pce_cpu_s"] / out["ours_pce_cached_fingerprint_cpu_s"]
    return out


def twelve_mp(peer_src: str | None, peer_python: str | None, repeat: int = 3) -> dict[str, float]:
    """One 12-MP photo against one fingerprint of its size (residual of the luma + correlation
    + PCE, no search; as provenance does, turns aside): CPU and wall seconds (medians of
    ``repeat`` runs, the fingerprint's FFT included, and again with it cached), and
    prnu-python's CPU seconds on the same photo (residual of each channel)."""
    shape = (3000, 4000)
    rng = np.random.default_rng(1)
    k = rng.normal(0, 0.01, shape).astype(np.float32)
    photo = np.clip(scene(5, shape) * (1 + k[..., None]), 0, 255).astype(np.uint8)
    prnu.residual(photo[:128, :128])
    cpu, wall, cached = [], [], []
    for _ in range(repeat):
        fp = prnu.Fingerprint(k, 20)
        c, t = time.process_time(), time.perf_counter()
        d = prnu.detect(photo, fp, rotations=False, translations=False)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
        assert d is not None and d.pce > prnu.DEFAULT_THRESHOLD
        c = time.process_time()  # the fingerprint's FFT now cached, as for every photo after the first
        prnu.detect(photo, fp, rotations=False, translations=False)
        cached.append(time.process_time() - c)
    med = statistics.median
    out = {"ours_cpu_s": med(cpu), "ours_wall_s": med(wall), "ours_cpu_s_fingerprint_fft_cached": med(cached),
           "runs": repeat}
    if peer_src and peer_python:
        peer = _peer(peer_src, peer_python, k, [photo])
        out["peer_cpu_s"] = peer["residual"][0] + peer["pce"][0]
        out["ratio"] = out["peer_cpu_s"] / out["ours_cpu_s"]
    return out


def provenance_12mp(repeat: int = 3) -> dict[str, float]:
    """CPU seconds of analyze_provenance on one 12-MP JPEG (q90), without cameras and with one
    enrolled camera of its size (decode, luma residual, turns 0 and 180), medians; the
    fingerprint's FFT is computed in the first run only, as in a worker."""
    import io

    from PIL import Image

    from assay.camera.evidence import CameraBank
    from assay.camera.store import CameraRecord
    from assay.provenance.analyzer import analyze_provenance

    shape = (3000, 4000)
    k = np.random.default_rng(1).normal(0, 0.01, shape).astype(np.float32)
    photo = np.clip(scene(5, shape) * (1 + k[..., None]), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    fp = prnu.Fingerprint(k, 20)
    bank = CameraBank([CameraRecord(1, "case", "phone", shape[0], shape[1], 20, None, {})],  # type: ignore[arg-type]
                      lambda r: fp)
    prnu.residual(photo[:128, :128])
    out: dict[str, float] = {}
    for label, cams in (("no_camera_cpu_s", None), ("one_camera_cpu_s", bank)):
        runs = []
        for _ in range(repeat):
            c = time.process_time()
            rep = analyze_provenance(Path("p.jpg"), data, "jpeg", cameras=cams)
            runs.append(time.process_time() - c)
        out[label] = statistics.median(runs)
        out[label.replace("cpu_s", "verdict")] = rep.verdict  # type: ignore[assignment]
    return out


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
    ap.add_argument("--skip-detection", action="store_true")
    ap.add_argument("--provenance-12mp", action="store_true", help="CPU of provenance on a 12-MP JPEG, 0 or 1 camera")
    args = ap.parse_args()
    if not args.skip_detection:
        print(json.dumps({"detection": detection(args.size, args.cameras, args.enrol, args.tests)}, indent=1))
    print(json.dumps({"speed": speed(args.size, args.repeat, args.prnu_python, args.prnu_python_venv)}, indent=1))
    if args.provenance_12mp:
        print(json.dumps({"provenance_12mp_jpeg": provenance_12mp()}))
    if not args.skip_12mp:
        print(json.dumps({"12mp_photo_vs_one_fingerprint": twelve_mp(args.prnu_python, args.prnu_python_venv, args.repeat)}))


if __name__ == "__main__":
    main()
