"""Model-to-model links (issue #24 item 2): what `scan --model-links` adds to a scan of a
drive with model files (the case of tests/test_model_links.py: base, fp16 copy,
fine-tune, LoRA, LoRA-merged checkpoint, unrelated model, SD 1.5 layout at 1/16 scale,
plus ``--decoys`` unrelated random checkpoints), scans with and without the option
interleaved, the CLI as a user runs it, CPU time of the scan and all its processes.

    .venv/bin/python bench/bench_model_links.py --decoys 20 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import lineage_eval as ev  # noqa: E402
import modelgen  # noqa: E402

ASSAY = str(Path(sys.executable).with_name("assay"))


def _write(path: Path, arrays: dict, dt: str = "F32") -> None:
    vals = {k: np.asarray(v, dtype=np.float16 if dt == "F16" else np.float32) for k, v in arrays.items()}
    modelgen.write_safetensors(path, {k: (dt, v.shape) for k, v in vals.items()}, values=vals)


def build(root: Path, decoys: int) -> int:
    specs = modelgen.sd15(1 / 16, dt="F32")
    f32 = {k: v for k, v in specs.items() if v[0] == "F32"}
    base = ev.random_model(f32, 1)
    A = {k: np.asarray(base[k]) for k in base}
    lora = ev.random_lora(A, 4, 21)
    _write(root / "base.safetensors", A)
    _write(root / "base-fp16.safetensors", A, "F16")
    _write(root / "tuned.safetensors", {k: np.asarray(v) for k, v in ev.fine_tune(A, 0.02, 5).items()})
    _write(root / "style-lora.safetensors", lora.kohya())
    _write(root / "merged.safetensors", {k: np.asarray(v) for k, v in ev.apply_lora(A, lora, 0.8).items()})
    for i in range(decoys + 1):
        other = ev.random_model(f32, 100 + i)
        _write(root / f"other-{i}.safetensors", {k: np.asarray(other[k]) for k in other})
    return sum(p.stat().st_size for p in root.iterdir())


def scan(root: Path, out: Path, links: bool) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([ASSAY, "scan", str(root), "--no-banks", "-o", str(out), "--overwrite", "--workers", "1",
                    *(["--model-links"] if links else [])], check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decoys", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-modellinks-"))
    try:
        root = tmp / "drive"
        root.mkdir()
        size = build(root, args.decoys)
        n = len(list(root.iterdir()))
        print(f"{n} model files, {size / 1e6:.0f} MB; load {os.getloadavg()[0]:.1f}")
        res: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for r in range(args.rounds):
            for links in ((True, False) if r % 2 else (False, True)):
                res[links].append(scan(root, tmp / f"r-{links}.jsonl", links))
        for links in (False, True):
            walls = [w for w, _ in res[links]]
            cpus = [c for _, c in res[links]]
            print(f"scan {'with' if links else 'without'} --model-links: wall median {statistics.median(walls):.2f} s "
                  f"{[round(w, 2) for w in walls]}, CPU median {statistics.median(cpus):.2f} s")
        ratio_cpu = statistics.median(c for _, c in res[True]) / statistics.median(c for _, c in res[False])
        ratio_wall = statistics.median(w for w, _ in res[True]) / statistics.median(w for w, _ in res[False])
        print(f"ratio with/without: CPU {ratio_cpu:.2f}, wall {ratio_wall:.2f}")
        import json

        line = next(json.loads(x) for x in (tmp / "r-True.jsonl").read_text().splitlines()
                    if '"assay.case-links/1"' in x)
        print(f"model links found: {len(line['model_links'])} "
              f"({sorted((Path(x['a']).name, x['relation'], Path(x['b']).name) for x in line['model_links'])})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
