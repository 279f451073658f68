"""Camera sensor fingerprints on real cameras: the photos of six Nikon cameras (two D200, two
D70, two D70s; the Dresden Image Database subset that prnu-python keeps in test/data), read
from a checkout of prnu-python (``--data``: its ``test/data``; nothing is copied into this
project).

Each camera is enrolled (assay's estimator, the photos at full size, as stored) from
flat-field photos, and every held-out photo is compared with every fingerprint as
``assay camera match`` does (four turns; a photo smaller than a fingerprint is searched over
every crop position). Two splits:

- ``ff10-nat``: fingerprints from the 10 flat-field photos of each camera; tests: the natural
  photos (16 in that subset: 1 per D200, 2-5 per D70 and D70s).
- ``ff5-ff5``: fingerprints from flat-field photos 1-5; tests: flat-field photos 6-10.

Printed: every PCE (JSON lines), and per split the true-pair PCEs, the cross-camera PCEs by
kind (same model, another model of the same size, crop search across sizes), and the
decisions at PCE 60. Fingerprints are kept in ``--cache`` between runs.

    .venv/bin/python bench/bench_prnu_real.py --data /tmp/prnu-python/test/data [--cache /tmp/prnu-real]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from assay.camera import prnu
from assay.camera.photos import load_photo


def device(path: Path) -> str:
    return path.stem.rsplit("_", 1)[0]  # Nikon_D70s_1_23220 -> Nikon_D70s_1


def model(dev: str) -> str:
    return dev.rsplit("_", 1)[0]


def fingerprint(paths: list[Path], cache: Path, key: str) -> prnu.Fingerprint:
    f = cache / f"{key}.npz"
    if f.exists():
        z = np.load(f)
        return prnu.Fingerprint(z["k"], int(z["images"]))
    est = prnu.Estimator()
    for p in paths:
        est.add(load_photo(p).pixels)
    fp = est.fingerprint()
    np.savez(f, k=fp.k, images=fp.images)
    return fp


def run_split(name: str, enrol: dict[str, list[Path]], tests: list[Path], cache: Path) -> dict[str, object]:
    prints = {dev: fingerprint(ps, cache, f"{name}-{dev}") for dev, ps in sorted(enrol.items())}
    rows = []
    for t in tests:
        c = time.process_time()
        pr = prnu.probe(load_photo(t).pixels)
        probe_s = time.process_time() - c
        for dev, fp in prints.items():
            c = time.process_time()
            det = prnu.detect(pr, fp)
            same = device(t) == dev
            h, w = pr.turns[0].shape
            kind = ("true" if same else "same-model" if model(device(t)) == model(dev)
                    else "other-model" if (h, w) == fp.shape else "crop-search")
            row = {"split": name, "photo": t.name, "camera": dev, "kind": kind,
                   "pce": None if det is None else round(det.pce, 1),
                   "rotation": None if det is None else det.rotation,
                   "peak": None if det is None else det.peak,
                   "probe_cpu_s": round(probe_s, 3), "detect_cpu_s": round(time.process_time() - c, 3)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    summary: dict[str, object] = {"split": name, "fingerprints": {d: fp.images for d, fp in prints.items()},
                                  "tests": len(tests)}
    for kind in ("true", "same-model", "other-model", "crop-search"):
        v = sorted(r["pce"] for r in rows if r["kind"] == kind and r["pce"] is not None)
        if not v:
            continue
        summary[kind] = {"pairs": len(v), "min": v[0], "median": statistics.median(v), "max": v[-1],
                         "at_or_above_60": sum(x >= prnu.DEFAULT_THRESHOLD for x in v)}
    true = [r for r in rows if r["kind"] == "true"]
    summary["true_rotation_and_peak_right"] = sum(r["rotation"] == 0 and tuple(r["peak"]) == (0, 0) for r in true)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prnu-python's test/data (ff-jpg/, nat-jpg/)")
    ap.add_argument("--cache", default="/tmp/prnu-real")
    ap.add_argument("--split", choices=("ff10-nat", "ff5-ff5", "both"), default="both")
    args = ap.parse_args()
    data, cache = Path(args.data), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    ff: dict[str, list[Path]] = {}
    for p in sorted((data / "ff-jpg").glob("*.JPG")):
        ff.setdefault(device(p), []).append(p)
    nat = sorted((data / "nat-jpg").glob("*.JPG"))
    out = []
    if args.split in ("ff10-nat", "both"):
        out.append(run_split("ff10-nat", ff, nat, cache))
    if args.split in ("ff5-ff5", "both"):
        out.append(run_split("ff5-ff5", {d: ps[:5] for d, ps in ff.items()}, [p for ps in ff.values() for p in ps[5:]],
                             cache))
    for s in out:
        print(json.dumps({"summary": s}, indent=1))


if __name__ == "__main__":
    main()
