"""Benchmark: `assay`'s full model analysis vs `sha256sum` on the same multi-GB file.

Generates (once, cached) a random-weight fp16 checkpoint with the real SD 1.5 key
layout and shapes, as safetensors and as a torch zip (pickle) checkpoint. For each,
with the page cache warm for both tools, it runs alternately, in child processes:

  - ``sha256sum FILE`` (what a user would run to fingerprint a model), and
  - ``analyze_model(FILE)``: parse + pickle safety scan + architecture + metadata +
    all hashes (SHA-256, AutoV1/V2/V3, BLAKE3, CRC32, MD5) in one read,

and reports median wall time and peak RSS (``/usr/bin/time -f '%e %M'``) and the
ratio. Usage::

    .venv/bin/python bench/bench_model.py [--dir /tmp/assay-bench] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import modelgen  # noqa: E402

TIME = "/usr/bin/time"
CHILD = (
    "import sys; from assay.models.analyzer import analyze_model; "
    "r = analyze_model(sys.argv[1]); "
    "assert r.hashes is not None and r.arch is not None; "
    "print(r.arch.family, r.safety.verdict, r.hashes.autov2)"
)


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB, stdout of one child process.

    Measured by /usr/bin/time: a child forked from this (large) Python process would
    report the parent's pages in its own peak RSS before it execs."""
    if Path(TIME).exists():
        cmd = [TIME, "-f", "%e %M", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{cmd} failed: {proc.stderr}")
    rss = float("nan")
    if cmd[0] == TIME:
        secs, kb = proc.stderr.strip().splitlines()[-1].split()
        wall, rss = float(secs), int(kb) / 1024
    return wall, rss, proc.stdout.strip()


def warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(16 * 1024 * 1024):
            pass


def ensure(path: Path, writer: str) -> Path:
    specs = modelgen.sd15(dt="F16")
    if path.exists() and path.stat().st_size >= modelgen.total_bytes(specs):
        return path
    t0 = time.perf_counter()
    tmp = path.with_suffix(".part")
    if writer == "safetensors":
        modelgen.write_safetensors(tmp, specs)
    else:
        modelgen.write_torch_zip(tmp, specs)
    tmp.rename(path)
    print(f"generated {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


def bench(path: Path, repeat: int) -> dict[str, float | str]:
    warm(path)
    ours, theirs, rss_ours, rss_theirs = [], [], [], []
    out = ""
    for i in range(repeat):
        pair = [("sha256sum", ["sha256sum", str(path)]), ("assay", [sys.executable, "-c", CHILD, str(path)])]
        if i % 2:
            pair.reverse()
        for name, cmd in pair:
            wall, rss, text = run(cmd)
            if name == "assay":
                ours.append(wall)
                rss_ours.append(rss)
                out = text
            else:
                theirs.append(wall)
                rss_theirs.append(rss)
    a, s = statistics.median(ours), statistics.median(theirs)
    return {
        "file": path.name,
        "size_gb": path.stat().st_size / 1e9,
        "sha256sum_s": s,
        "assay_s": a,
        "ratio": a / s,
        "sha256sum_rss_mb": statistics.median(rss_theirs),
        "assay_rss_mb": max(rss_ours),
        "assay_out": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/assay-bench"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    files = [
        ensure(args.dir / "sd15-random-fp16.safetensors", "safetensors"),
        ensure(args.dir / "sd15-random-fp16.ckpt", "torch-zip"),
    ]
    print(f"repeats: {args.repeat}, cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}")
    print("| file | size | sha256sum (median) | assay model (median) | ratio | RSS sha256sum | RSS assay (max) |")
    print("|---|---|---|---|---|---|---|")
    for f in files:
        r = bench(f, args.repeat)
        print(
            f"| {r['file']} | {r['size_gb']:.2f} GB | {r['sha256sum_s']:.2f} s | {r['assay_s']:.2f} s | "
            f"{r['ratio']:.2f}x | {r['sha256sum_rss_mb']:.0f} MB | {r['assay_rss_mb']:.0f} MB |"
        )
        print(f"  assay said: {r['assay_out']}", file=sys.stderr)


if __name__ == "__main__":
    main()
