"""Benchmark: assay's pickle/model-file safety scan vs picklescan on the whole corpus.

The corpus is tests/pickle_corpus.py: malicious samples by gadget class (each would
create a canary file or reach the network if loaded; nothing here loads them) and
benign samples (standard-library values at protocols 0-5, numpy files written by
numpy, torch layouts, Keras archives). Both tools scan every file in the same process,
alternating file by file, ``--repeat`` rounds; the report gives

- files/s of each tool over the whole corpus (sum of per-file medians) and the ratio;
- the confusion counts of each tool (malicious -> dangerous/suspicious/safe/error,
  benign -> safe/suspicious/dangerous/error);
- every sample on which the two disagree, with the reason for assay's verdict.

picklescan is imported before any timing (its import is not part of a scan).
Optionally the large realistic files too (``--large``: a ~100 MB SD1.5-layout torch
zip written by tests/modelgen.py and the shared silero_vad.jit). Usage::

    .venv/bin/python bench/bench_pickle_scan.py [--repeat 5] [--large] [--dir /tmp/assay-bench-pickle]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import picklescan.scanner  # noqa: E402  (imported before timing: issue 21)

import modelgen  # noqa: E402
import pickle_corpus  # noqa: E402
from assay.errors import InputError  # noqa: E402
from assay.models import scan_file  # noqa: E402

RANK = {"safe": 0, "suspicious": 1, "dangerous": 2}


def ours(path: Path) -> tuple[str, str]:
    """(verdict, the first reason that decided it)."""
    try:
        reports = scan_file(path)
    except InputError as exc:
        return "error", exc.reason
    verdict = max((r.verdict for r in reports), key=RANK.__getitem__, default="safe")
    if verdict == "safe":
        named = sorted({g for r in reports for g in r.globals})
        return verdict, ("names only allow-listed data builders / value types: " + ", ".join(named)
                         if named else "plain data, no global named")
    why = next((f"{f.global_name or 'container'}: {f.reason}" for r in reports for f in r.findings
                if f.severity == verdict), "")
    return verdict, why


def theirs(path: Path) -> tuple[str, str]:
    r = picklescan.scanner.scan_file_path(str(path))
    flagged = sorted({f"{g.module}.{g.name}" for g in r.globals if g.safety.value != "innocuous"})
    if r.infected_files:
        return "dangerous", ", ".join(flagged)
    if r.scan_err:
        return "error", ""
    return ("suspicious" if r.suspicious_count else "safe"), ", ".join(flagged)


def timed(fn, path: Path | str) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn(path)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/assay-bench-pickle"))
    ap.add_argument("--large", action="store_true", help="also the ~100 MB torch zip and silero_vad.jit")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    canary = args.dir / "CANARY"
    items = pickle_corpus.write_corpus(pickle_corpus.corpus(canary), args.dir / "corpus")

    ta: dict[Path, list[float]] = {p: [] for _, p in items}
    tp: dict[Path, list[float]] = {p: [] for _, p in items}
    scan_theirs = picklescan.scanner.scan_file_path
    for _ in range(args.repeat):
        for _, p in items:  # alternate so that noise hits both alike; API calls only
            ta[p].append(timed(scan_file, p))
            tp[p].append(timed(scan_theirs, str(p)))
    a = sum(statistics.median(v) for v in ta.values())
    b = sum(statistics.median(v) for v in tp.values())
    n = len(items)
    print(f"corpus: {n} files ({sum(1 for s, _ in items if s.expect == 'dangerous')} malicious, "
          f"{sum(1 for s, _ in items if s.expect == 'safe')} benign), {args.repeat} rounds\n")
    print("| tool | files/s (sum of per-file medians) |")
    print("|---|---|")
    print(f"| assay scan_file | {n / a:.0f} |")
    print(f"| picklescan scan_file_path | {n / b:.0f} |")
    print(f"| ratio assay/picklescan | {b / a:.2f}x |\n")

    verdicts = {p: (ours(p), theirs(p)) for _, p in items}
    for label, idx in (("assay", 0), ("picklescan", 1)):
        for expect in ("dangerous", "safe"):
            c = Counter(verdicts[p][idx][0] for s, p in items if s.expect == expect)
            shown = ", ".join(f"{k} {c[k]}" for k in ("dangerous", "suspicious", "safe", "error") if c[k])
            print(f"- {label}, {'malicious' if expect == 'dangerous' else 'benign'}: {shown}")
    missed = [s.name for s, p in items if verdicts[p][0][0] != s.expect]
    print(f"\nassay verdicts other than expected: {len(missed)} {missed if missed else ''}")
    print(f"canary created: {canary.exists()}\n")

    print("| sample | gadget | expected | assay | picklescan | why assay says so |")
    print("|---|---|---|---|---|---|")
    for s, p in items:
        (va, why), (vp, flagged) = verdicts[p]
        if va != vp:
            pic = f"{vp} ({flagged})" if flagged else vp
            print(f"| {s.name} | {s.gadget} | {s.expect} | {va} | {pic} | {why[:160]} |")

    if args.large:
        sd = args.dir / "sd15-layout.ckpt"
        if not sd.exists():
            modelgen.write_torch_zip(sd, modelgen.sd15(scale=0.02))
        large = {"SD1.5-layout torch zip": sd,
                 "silero_vad.jit (TorchScript)": ROOT.parent / "shared/testdata/models/silero_vad.jit"}
        print("\n| file | assay | picklescan | assay median | picklescan median | ratio |")
        print("|---|---|---|---|---|---|")
        for label, path in large.items():
            if not path.exists():
                continue
            xa, xp = [], []
            for _ in range(args.repeat):
                xa.append(timed(scan_file, path))
                xp.append(timed(scan_theirs, str(path)))
            ma, mp = statistics.median(xa), statistics.median(xp)
            print(f"| {label} | {ours(path)[0]} | {theirs(path)[0]} | {ma * 1000:.0f} ms | "
                  f"{mp * 1000:.0f} ms | {mp / ma:.2f}x |")


if __name__ == "__main__":
    main()
