"""Model lineage evaluation at full SD 1.5 size: the table, wall time and peak RSS.

    nice -n 10 /usr/bin/time -v .venv/bin/python bench/bench_lineage_eval.py [--scale 1.0] [--max-rss 6000]

Runs ``tests/lineage_eval.py --full`` (every suspect of the matrix: conversions, EMA,
renames, fine-tunes, merges, a swapped VAE, flagged LoRAs of ranks 4-128, LoHa and LoKr
at strengths 0.1-1.0, unknown LoRAs, unrelated models) in a child process at
``--scale`` (1.0: real SD 1.5 shapes, 1.07 B float32 weights per model) and reports
the child's wall time, CPU time and peak RSS. Suspects are generated one tensor at a
time, so the peak stays near the size of a few tensors plus the flagged LoRAs' factors.
The base and the flagged model are kept in a temporary cache directory (2 x 4.3 GB at
scale 1, removed at the end) so most suspects read them instead of drawing them again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--small-matrix", action="store_true", help="the CI matrix instead of --full")
    ap.add_argument("--max-rss", type=float, default=6000, metavar="MB",
                    help="stop the run once its peak RSS exceeds this (default 6000)")
    ap.add_argument("--cache-dir", type=Path, help="where the base models are cached (default: a temp dir)")
    ap.add_argument("--verbose", action="store_true", help="every suspect's findings")
    args = ap.parse_args()

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="assay-lineage-eval-"))
    cmd = [sys.executable, str(ROOT / "tests" / "lineage_eval.py"), "--scale", str(args.scale),
           "--progress", "--cache-dir", str(cache), "--max-rss", str(args.max_rss)]
    if not args.small_matrix:
        cmd.append("--full")
    if args.verbose:
        cmd.append("--verbose")
    print("$ " + " ".join(cmd), flush=True)
    t = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    print(f"\nlineage eval, scale {args.scale:g}{'' if args.small_matrix else ', full matrix'}: "
          f"wall {wall / 60:.1f} min, CPU {(usage.ru_utime + usage.ru_stime) / 60:.1f} min, "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MB, exit status {code}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
