"""Added scan time of case links (issue 24): the same generated case scanned with and
without linking, interleaved round by round, ratio = median of the per-round ratios (wall time, and the process's CPU time, which a
busy shared machine disturbs less; with ``--workers 1`` all analysis runs in this process).

    .venv/bin/python bench/bench_case_links.py --decoys 200 --rounds 5

The case is tests/test_case_links.py's: 5 model files (SD 1.5 layout at 1/16 scale, an
fp16 copy, a fine-tune, 2 LoRAs), 40 images naming them, 10 naming absent models,
10 without metadata, a degenerate AutoV1, plus ``--decoys`` small unrelated LoRAs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from assay.config import ScanSettings  # noqa: E402
from assay.scan.links import CaseLinker  # noqa: E402
from assay.scan.run import run_scan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decoys", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    import test_case_links as case

    with tempfile.TemporaryDirectory(prefix="assay-links-bench-") as tmp:
        root = Path(tmp) / "case"
        case.build_case(root, decoys=a.decoys)
        settings = ScanSettings(workers=a.workers)
        records: list = []
        run_scan([root], settings, None, records.append, case_links=False)  # also warms the cache
        # The linker's own work over the scan's records (hold + resolve), many times over:
        # steadier than the difference of two noisy scans.
        reps = 50
        t0 = time.process_time()
        for _ in range(reps):
            linker = CaseLinker()
            for r in records:
                r.case_links = None
                linker.hold(r)
            linker.resolve()
            list(linker.records())
        link_cpu = (time.process_time() - t0) / reps
        on, off, ratios, cpu_ratios = [], [], [], []
        links = 0
        for i in range(a.rounds):
            times, cpu = {}, {}
            for flag in ((True, False) if i % 2 == 0 else (False, True)):
                t0, c0 = time.perf_counter(), time.process_time()
                s = run_scan([root], settings, None, lambda r: None, case_links=flag)
                times[flag] = time.perf_counter() - t0
                cpu[flag] = time.process_time() - c0
                if flag:
                    links = s.case_links.links
            on.append(times[True])
            off.append(times[False])
            ratios.append(times[True] / times[False])
            cpu_ratios.append(cpu[True] / cpu[False])
        print(f"linker alone (hold + resolve over the {len(records)} records): {link_cpu * 1000:.2f} ms CPU")
        print(f"files: {s.files}, links: {links}, rounds: {a.rounds}, workers: {a.workers}")
        print(f"scan with links    median {statistics.median(on):.2f} s  {[round(x, 2) for x in on]}")
        print(f"scan without links median {statistics.median(off):.2f} s  {[round(x, 2) for x in off]}")
        print(f"CPU-time ratio (this process): median {statistics.median(cpu_ratios):.3f}  "
              f"{[round(x, 3) for x in cpu_ratios]}")
        print(f"ratio with/without: median {statistics.median(ratios):.3f}  {[round(x, 3) for x in ratios]}")


if __name__ == "__main__":
    main()
