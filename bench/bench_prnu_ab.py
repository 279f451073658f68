"""Before/after in one run: CPU seconds of one 12-MP photo against one fingerprint of its size
(assay.camera.prnu.detect, no search, as provenance does) with this checkout's code and with
another revision's, in alternate subprocesses on the same photo; medians and the ratio.

    git -C . archive REV src | tar -x -C /tmp/assay-before     # the code to compare with
    .venv/bin/python bench/bench_prnu_ab.py --before /tmp/assay-before/src [--rounds 3]

Each subprocess times ``detect`` with a new fingerprint (its FFT included: what a first photo
costs) and again with the FFT cached (every later photo of a scan).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np
from assay.camera import prnu
k = np.load(sys.argv[1]); photo = np.load(sys.argv[2])
prnu.residual(photo[:128, :128])  # compiled kernels loaded before timing
fp = prnu.Fingerprint(k, 20)
c = time.process_time(); d = prnu.detect(photo, fp, rotations=False, translations=False); first = time.process_time() - c
c = time.process_time(); prnu.detect(photo, fp, rotations=False, translations=False); cached = time.process_time() - c
print(json.dumps({"cpu_s": first, "cpu_s_fingerprint_fft_cached": cached, "pce": d.pce, "code": prnu.__file__}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="the src/ directory of the revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from prnu_synth import scene

    shape = (3000, 4000)
    k = np.random.default_rng(1).normal(0, 0.01, shape).astype(np.float32)
    photo = np.clip(scene(5, shape) * (1 + k[..., None]), 0, 255).astype(np.uint8)
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as d:
        np.save(Path(d) / "k.npy", k)
        np.save(Path(d) / "photo.npy", photo)
        for _ in range(args.rounds):
            for label, path in (("before", args.before), ("after", str(ROOT / "src"))):
                env = dict(os.environ, PYTHONPATH=path)
                out = subprocess.run([sys.executable, "-c", CHILD, str(Path(d) / "k.npy"), str(Path(d) / "photo.npy")],
                                     capture_output=True, text=True, env=env, check=True)
                runs[label].append(json.loads(out.stdout))
                print(label, out.stdout.strip(), flush=True)
    med = statistics.median
    summary = {label: {key: med(r[key] for r in rs) for key in ("cpu_s", "cpu_s_fingerprint_fft_cached")}
               for label, rs in runs.items()}
    summary["ratio"] = summary["before"]["cpu_s"] / summary["after"]["cpu_s"]
    summary["ratio_fingerprint_fft_cached"] = (summary["before"]["cpu_s_fingerprint_fft_cached"]
                                               / summary["after"]["cpu_s_fingerprint_fft_cached"])
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
