"""Text checks of two versions of assay side by side in one process, interleaved output by
output (the order swapped every other output), e.g. before and after a change of the
normaliser. The older version is a copy of its `src/assay` renamed `assay_old` (the text
modules import each other relatively), each version with the index it built from the same
corpus (bench/bench_text.py --dir):

    cp -r OLD_CHECKOUT/src/assay /tmp/ab/assay_old
    PYTHONPATH=OLD_CHECKOUT/src .venv/bin/python bench/bench_text.py --mb 100 --dir /tmp/ab/old
    PYTHONPATH=src .venv/bin/python bench/bench_text.py --mb 100 --dir /tmp/ab/new
    PYTHONPATH=src .venv/bin/python bench/bench_text_ab.py --old-package /tmp/ab --old-index /tmp/ab/old/ix \\
        --new-index /tmp/ab/new/ix --mb 100

Reported: median check time (exact + near, exact only) and normalisation time of the
2 KB outputs for each version, and the CPU time to normalise the King James Bible.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-package", type=Path, required=True, help="folder holding assay_old/")
    ap.add_argument("--old-index", type=Path, required=True)
    ap.add_argument("--new-index", type=Path, required=True)
    ap.add_argument("--mb", type=int, default=100, help="as given to bench_text.py (the same outputs)")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    sys.path.insert(0, str(args.old_package))
    from assay_old.text.index import TextIndex as OldIndex  # type: ignore[import-not-found]
    from assay_old.text.match import check as old_check  # type: ignore[import-not-found]
    from assay_old.text.normalize import normalize as old_normalize  # type: ignore[import-not-found]

    import textgen
    from assay.text.index import TextIndex
    from assay.text.match import check
    from assay.text.normalize import normalize
    from bench_text import corpus

    works = corpus(args.mb, args.seed)
    rng = random.Random(args.seed)
    outputs = [textgen.llm_output(rng, works, chars=2048).text for _ in range(args.queries)]
    sides = [("old", old_check, OldIndex.open(args.old_index), old_normalize),
             ("new", check, TextIndex.open(args.new_index), normalize)]
    for _, chk, ix, _ in sides:
        chk(ix, outputs[0])  # compile the kernel, map the files
    times: dict[str, list[float]] = {f"{s} {w}": [] for s, *_ in sides for w in ("exact+near", "exact", "normalise")}
    for rep in range(args.reps):
        for i, text in enumerate(outputs):
            for side, chk, ix, norm in (sides if (i + rep) % 2 == 0 else sides[::-1]):
                t = time.perf_counter()
                chk(ix, text)
                times[f"{side} exact+near"].append(time.perf_counter() - t)
                t = time.perf_counter()
                chk(ix, text, near=False)
                times[f"{side} exact"].append(time.perf_counter() - t)
                t = time.perf_counter()
                norm(text)
                times[f"{side} normalise"].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"{name}: median {statistics.median(ts) * 1e3:.3f} ms over {len(ts)}")
    kjv = "".join(textgen.kjv_books().values())
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    for rep in range(3):
        for side, _, _, norm in (sides if rep % 2 == 0 else sides[::-1]):
            c = time.process_time()
            norm(kjv)
            cpu[side].append(time.process_time() - c)
    for side, ts in cpu.items():
        print(f"normalise the KJV ({len(kjv) / 1e6:.1f} M characters), {side}: median {statistics.median(ts):.2f} s CPU")


if __name__ == "__main__":
    main()
