"""Benchmark: the first scan after install against the second (issue #12 item 8: <= 1.5x).

Each round copies this tree's ``src/`` to a fresh folder without any ``__pycache__`` (no
byte-code, no numba cache: as just installed from source), scans the demo images with it
twice and keeps the whole processes' CPU (user + system) and wall seconds. The first run
writes the byte-code, as an editable install's first run does (a ``PYTHONDONTWRITEBYTECODE``
of the caller is not passed on). Prints the medians and the median of the pairwise ratios.
Usage::

    .venv/bin/python bench/bench_first_scan.py [--rounds 5] [--workers 1] [--dir /tmp/assay-bench-first-scan]

The demo images and their bank are made once in ``--dir`` (``assay demo``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, cpu s, exit status) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    rc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/assay-bench-first-scan"))
    args = ap.parse_args()
    d = args.dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    db, images, out = d / "demo.sqlite3", d / "demo-data" / "images", d / "scan.jsonl"
    if not db.exists():
        subprocess.run([str(Path(sys.executable).with_name("assay")), "demo", "--dir", str(d / "demo-data"),
                        "--db", str(db)], check=True, stdout=subprocess.DEVNULL, env=ENV)
    fresh = d / "fresh"
    env = {**ENV, "PYTHONPATH": str(fresh / "src")}
    cmd = [sys.executable, "-c", "import sys; sys.argv[0] = 'assay'; from assay.cli import main; main()",
           "--db", str(db), "scan", str(images), "--json", "--workers", str(args.workers), "-o", str(out)]

    def scan() -> tuple[float, float, int]:
        for p in (out, out.with_name(out.name + ".sha256")):
            p.unlink(missing_ok=True)
        return run(cmd, env)

    here = Path(__file__).resolve().parents[1] / "src"
    first, second = [], []
    print(f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds, {args.workers} worker(s)")
    for _ in range(args.rounds):
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(here, fresh / "src", ignore=shutil.ignore_patterns("__pycache__"))
        first.append(scan())
        second.append(scan())
    if any(r[2] for r in first + second):
        sys.exit(f"a scan failed (exit statuses {[r[2] for r in first + second]})")
    records = len(out.read_text().splitlines())
    shutil.rmtree(fresh, ignore_errors=True)
    med = statistics.median
    print(f"scan of {images} ({records} lines of JSON)")
    print("| | CPU s | wall s |\n|---|---|---|")
    print(f"| first scan | {med(r[1] for r in first):.2f} | {med(r[0] for r in first):.2f} |")
    print(f"| second scan | {med(r[1] for r in second):.2f} | {med(r[0] for r in second):.2f} |")
    print(f"| first/second (median of pairs) | {med(a[1] / b[1] for a, b in zip(first, second, strict=True)):.2f} | "
          f"{med(a[0] / b[0] for a, b in zip(first, second, strict=True)):.2f} |")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
