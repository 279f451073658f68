"""Correctness check of assay.camera against prnu-python (Politecnico di Milano's port of the
Binghamton reference code), on the same synthetic photos (tests/prnu_synth.py).

prnu-python runs in its own throw-away venv (``--prnu-python-venv``; with the numpy its
requirements pin, 1.23.5: under numpy 2 its enrolment fails on uint8 arithmetic) from a
checkout (``--prnu-python``); nothing of its code is imported here. Both tools get the same uint8
photos; compared:
- fingerprints: Pearson correlation of assay's and prnu-python's K per camera (and of each
  with the true synthetic pattern, which only a synthetic set knows);
- residuals: correlation of assay's residual and prnu-python's ``extract_single`` per photo;
- PCE: every test photo against every fingerprint, each tool with its own fingerprint and
  residual, at the maximum of the correlation surface (prnu-python's ``pce``): the ratio of
  the two on true pairs, the largest on cross-camera pairs, and decisions at 60 that differ.

``--write-reference FILE`` also writes what tests/test_prnu_reference.py checks: prnu-python's
PCE values and one of its fingerprints, from this run (data produced by the real tool).

    .venv/bin/python bench/compare_prnu.py --prnu-python /tmp/prnu-python \\
        --prnu-python-venv /tmp/prnuvenv123/bin/python [--size 256 --cameras 4 --enrol 16 --tests 6]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from assay.camera import prnu  # noqa: E402
from prnu_peer import pce_as_prnu_python  # noqa: E402
from prnu_synth import Camera, reference_set  # noqa: E402

PEER = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import prnu
d = np.load(sys.argv[2])
n_cams, n_tests = int(d["n_cams"]), int(d["n_tests"])
ks = [prnu.extract_multiple_aligned(list(d[f"enrol{c}"]), processes=1) for c in range(n_cams)]
tests = list(d["tests"])
ws = [prnu.extract_single(im) for im in tests]
pce = [[float(prnu.pce(prnu.crosscorr_2d(k * prnu.rgb2gray(im), w))["pce"]) for k in ks]
       for im, w in zip(tests, ws)]
np.savez(sys.argv[3], k=np.stack(ks), w=np.stack(ws))
print(json.dumps({"pce": pce}))
"""


def ours(enrol: list[list[np.ndarray]], tests: list[np.ndarray]) -> dict[str, Any]:
    """assay's fingerprints, and for each way of denoising a photo (each channel, as
    prnu-python; the luma, as assay matches) the residuals and PCE values."""
    ks = [prnu.estimate(e) for e in enrol]
    out: dict[str, Any] = {"k": np.stack([k.k for k in ks])}
    for ch in ("each", "luma"):
        ws = [prnu.residual(im, channels=ch) for im in tests]
        out[ch] = {"w": np.stack(ws), "pce": [[prnu.pce(prnu._correlate(w * prnu._gray(im.astype(np.float32)), k))[0]
                                               for k in ks] for im, w in zip(tests, ws, strict=True)]}
        if ch == "each":
            out["each_as_peer"] = {"w": out[ch]["w"], "pce": [[pce_as_prnu_python(k, im, w) for k in ks]
                                                             for im, w in zip(tests, ws, strict=True)]}
    return out


def peer(src: str, python: str, enrol: list[list[np.ndarray]], tests: list[np.ndarray]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        inp, outp = Path(d) / "in.npz", Path(d) / "out.npz"
        np.savez(inp, n_cams=len(enrol), n_tests=len(tests), tests=np.stack(tests),
                 **{f"enrol{c}": np.stack(e) for c, e in enumerate(enrol)})
        res = subprocess.run([python, "-c", PEER, src, str(inp), str(outp)], capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"prnu-python failed:\n{res.stderr[-3000:]}")
        arrays = np.load(outp)
        return {"k": arrays["k"], "w": arrays["w"], **json.loads(res.stdout.strip().splitlines()[-1])}


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def compare(cams: list[Camera], owner: list[int], a: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "fingerprint_corr_assay_vs_prnu_python": [round(corr(a["k"][c], p["k"][c]), 4) for c in range(len(cams))],
        "fingerprint_corr_with_true_pattern": {
            "assay": [round(corr(a["k"][c], cam.k), 4) for c, cam in enumerate(cams)],
            "prnu_python": [round(corr(p["k"][c], cam.k), 4) for c, cam in enumerate(cams)]},
    }
    for ch in ("each", "luma", "each_as_peer"):
        out[f"residual_{ch}"] = _pce_agreement(owner, a[ch], p)
    return out


def _pce_agreement(owner: list[int], a: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    true_ratio, cross_a, cross_p, differ = [], [], [], 0
    for t, row in enumerate(a["pce"]):
        for c, va in enumerate(row):
            vp = p["pce"][t][c]
            differ += (va >= 60) != (vp >= 60)
            if c == owner[t]:
                true_ratio.append(va / vp)
            else:
                cross_a.append(va)
                cross_p.append(vp)
    true_a = [a["pce"][t][owner[t]] for t in range(len(owner))]
    true_p = [p["pce"][t][owner[t]] for t in range(len(owner))]
    rc = [corr(x, y) for x, y in zip(a["w"], p["w"], strict=True)]
    return {
        "residual_corr_median": round(statistics.median(rc), 4), "residual_corr_min": round(min(rc), 4),
        "true_pairs": len(true_ratio),
        "true_pce_assay_median": round(statistics.median(true_a), 1),
        "true_pce_prnu_python_median": round(statistics.median(true_p), 1),
        "true_pce_ratio_median": round(statistics.median(true_ratio), 3),
        "true_pce_ratio_min": round(min(true_ratio), 3), "true_pce_ratio_max": round(max(true_ratio), 3),
        "cross_pairs": len(cross_a), "cross_pce_max_assay": round(max(cross_a), 1),
        "cross_pce_max_prnu_python": round(max(cross_p), 1),
        "decisions_at_60_that_differ": differ,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prnu-python", required=True)
    ap.add_argument("--prnu-python-venv", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--enrol", type=int, default=16)
    ap.add_argument("--tests", type=int, default=6)
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality of every photo; 0: no JPEG")
    ap.add_argument("--write-reference", type=Path, default=None)
    ap.add_argument("--prnu-python-commit", default=None, help="for the reference file, when PATH is no git checkout")
    args = ap.parse_args()
    quality = args.quality or None
    cams, enrol, tests, owner = reference_set(args.size, args.cameras, args.enrol, args.tests, quality)
    a = ours(enrol, tests)
    p = peer(args.prnu_python, args.prnu_python_venv, enrol, tests)
    print(json.dumps(compare(cams, owner, a, p), indent=1))
    if args.write_reference:
        commit = args.prnu_python_commit or subprocess.run(
            ["git", "-C", args.prnu_python, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
        versions = subprocess.run([args.prnu_python_venv, "-c", "import numpy, scipy, pywt; print(numpy.__version__, "
                                   "scipy.__version__, pywt.__version__)"], capture_output=True, text=True).stdout.split()
        k0 = p["k"][0].astype("<f2")
        ref = {
            "produced_by": "prnu-python (github.com/polimi-ispl/prnu-python) run by bench/compare_prnu.py",
            "prnu_python_commit": commit, "numpy_scipy_pywt": versions,
            "synthetic": {"size": args.size, "cameras": args.cameras, "enrol": args.enrol, "tests": args.tests,
                          "quality": quality},
            "owner": owner, "pce": [[round(v, 3) for v in row] for row in p["pce"]],
            "fingerprint0_f2_zlib_b64": base64.b64encode(zlib.compress(k0.tobytes(), 9)).decode(),
            "fingerprint0_shape": list(k0.shape),
        }
        args.write_reference.write_text(json.dumps(ref, indent=1) + "\n")


if __name__ == "__main__":
    main()
