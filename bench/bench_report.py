"""Case reports (issue #16): `assay report` on a generated 100,000-record scan report
(time, peak RSS, HTML size; CSV and CASE/UCO exports too), side by side in one run with
`jq` writing a plain inventory of the same report (what an examiner would otherwise run);
and the first paint of a 10,000-record HTML report in headless chromium.

    .venv/bin/python bench/bench_report.py --records 100000 --paint-records 10000 --rounds 3

The generated records are shaped like a scan's: every file with size, MD5, SHA-1,
SHA-256 (and PDQ for images), times; 1% with a bank match, 5% images with generator
metadata (prompt of ~300 characters), 1% model files, 0.5% with an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from assay.report.jsonl import write_sidecar  # noqa: E402

ASSAY = str(Path(sys.executable).with_name("assay"))


def _h(i: int, n: int, salt: str) -> str:
    return hashlib.sha256(f"{salt}{i}".encode()).hexdigest()[:n]


def make_report(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    words = "a photo of a cat on a red sofa studio lighting highly detailed sharp focus".split()
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"schema": "assay.scan-header/1", "tool": "assay", "version": "bench",
                            "scan_id": "00000000-0000-4000-8000-000000000000", "started_at": "2026-12-06T00:00:00+00:00",
                            "host": "bench", "user": "bench", "pid": 1, "argv": ["assay", "scan", "/evidence"],
                            "cwd": "/", "settings": {"workers": 2}, "banks": [
                                {"name": "known", "kind": "flagged", "entries": 1000, "signals": {"md5": 1000},
                                 "snapshot": _h(0, 64, "snap")}],
                            "bank_snapshot_method": "sha256", "inputs": ["/evidence"],
                            "inputs_absolute": ["/evidence"]}) + "\n")
        for i in range(n):
            kind = "image" if i % 3 else "other"
            rec: dict = {"schema": "assay.file/1", "path": f"/evidence/case-{i // 1000:03d}/dir-{i % 97}/file-{i:07d}.jpg",
                         "size": rng.randrange(1000, 5_000_000), "kind": kind, "format": "jpeg" if kind == "image" else None,
                         "signals": [{"type": "md5", "value": _h(i, 32, "m")}, {"type": "sha1", "value": _h(i, 40, "s")},
                                     {"type": "sha256", "value": _h(i, 64, "x")}],
                         "times": {"source": "filesystem", "mtime": "2026-11-01T10:00:00+00:00",
                                   "ctime": "2026-11-01T10:00:00+00:00", "atime": "2026-11-02T10:00:00+00:00"}}
            if kind == "image":
                rec["signals"].append({"type": "pdq", "value": _h(i, 64, "p"), "quality": 90, "mode": "fast"})
                rec["image"] = {"format": "JPEG", "width": 1024, "height": 768, "mode": "RGB"}
            if i % 100 == 7:
                rec["matches"] = [{"bank": "known", "content_id": f"c-{i}", "signal_type": "md5",
                                   "value": _h(i, 32, "m"), "distance": 0, "strength": "exact", "query": 0}]
            if kind == "image" and i % 20 == 1:
                prompt = " ".join(rng.choice(words) for _ in range(50))
                rec["provenance"] = {"verdict": "AI-generated: generator metadata (AUTOMATIC1111)", "evidence": [
                    {"source": "a1111", "claim": "ai-generated", "strength": "strong",
                     "summary": "AUTOMATIC1111 generation parameters in the PNG text chunk",
                     "facts": {"prompt": prompt, "negative_prompt": "blurry", "parameters": {
                         "Steps": "20", "Sampler": "Euler a", "Seed": str(i), "Model hash": "0123456789"}}}]}
            if i % 100 == 42:
                rec.update(kind="model", format="safetensors", model={
                    "format": "safetensors", "safety": {"verdict": "no-code", "findings": []},
                    "arch": {"family": "stable-diffusion-1", "kind": "checkpoint"},
                    "hashes": {"sha256": _h(i, 64, "x"), "autov2": _h(i, 10, "x")}})
            if i % 200 == 99:
                rec["errors"] = [{"stage": "read", "code": "decode-error", "message": "truncated JPEG"}]
            f.write(json.dumps(rec) + "\n")
        f.write(json.dumps({"schema": "assay.scan-summary/1", "files": n, "scan_id": "00000000-0000-4000-8000-000000000000",
                            "started_at": "2026-12-06T00:00:00+00:00", "ended_at": "2026-12-06T01:00:00+00:00",
                            "seconds": 3600.0}) + "\n")
    write_sidecar(path, path.with_name(path.name + ".sha256"))


def run(cmd: list[str], stdout: int | None = subprocess.DEVNULL) -> tuple[float, int, float]:
    """Wall seconds, the peak RSS (MB) and the CPU seconds of the command's own process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)  # noqa: S603
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd}: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
    return dt, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime


def first_paint(html: Path, rounds: int) -> tuple[list[float], list[float]]:
    from cdp import Browser, chromium_path

    binary = chromium_path()
    if binary is None:
        raise SystemExit("chromium not installed")
    fcp, load = [], []
    for _ in range(rounds):
        with Browser(binary) as b:  # a fresh browser and profile each round: nothing cached
            t = time.perf_counter()
            b.open(html)
            load.append(time.perf_counter() - t)
            fcp.append(b.js("performance.getEntriesByName('first-contentful-paint')[0].startTime") / 1000)
            assert b.problems() == [], b.problems()
    return fcp, load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--paint-records", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        big = tmp / "big.jsonl"
        make_report(big, args.records)
        print(f"report: {args.records:,} records, {big.stat().st_size / 1e6:.1f} MB; load {os.getloadavg()[0]:.1f}")
        env_db = ["--db", str(tmp / "none.sqlite3")]  # no store: decisions not read, nothing created
        times: dict[str, list[float]] = {"html": [], "csv": [], "case": [], "jq": []}
        cpu: dict[str, list[float]] = {"html": [], "csv": [], "case": [], "jq": []}
        rss: dict[str, int] = {}
        size = 0
        jq = shutil.which("jq")
        jq_prog = ('select(.schema=="assay.file/1") | [.path, .kind, (.size|tostring), '
                   '((.signals // []) | map(select(.type=="md5" or .type=="sha1" or .type=="sha256") | .value) '
                   '| join("\\t"))] | @tsv')
        for r in range(args.rounds):
            for fmt in ("html", "csv", "case"):
                out = tmp / f"out-{r}.{fmt}"
                dt, mb, c = run([ASSAY, *env_db, "report", str(big), "--format", fmt, "-o", str(out)])
                times[fmt].append(dt)
                cpu[fmt].append(c)
                rss[fmt] = max(rss.get(fmt, 0), mb)
                if fmt == "html":
                    size = out.stat().st_size
            if jq:
                with open(tmp / "inv.tsv", "w") as fh:
                    dt, _, c = run([jq, "-r", jq_prog, str(big)], stdout=fh.fileno())
                    times["jq"].append(dt)
                    cpu["jq"].append(c)
        med = {k: statistics.median(v) for k, v in times.items() if v}
        mcpu = {k: statistics.median(v) for k, v in cpu.items() if v}
        for fmt in ("html", "csv", "case"):
            extra = f", HTML {size / 1e6:.1f} MB" if fmt == "html" else ""
            print(f"assay report {fmt:<4}: wall median {med[fmt]:.2f} s (runs {', '.join(f'{x:.2f}' for x in times[fmt])}), "
                  f"CPU median {mcpu[fmt]:.2f} s, peak RSS {rss[fmt]} MB{extra}")
        if "jq" in med:
            print(f"jq inventory TSV : wall median {med['jq']:.2f} s, CPU median {mcpu['jq']:.2f} s; ratios (CPU) "
                  f"html/jq {mcpu['html'] / mcpu['jq']:.2f}, csv/jq {mcpu['csv'] / mcpu['jq']:.2f}, "
                  f"case/jq {mcpu['case'] / mcpu['jq']:.2f}")
        small = tmp / "small.jsonl"
        make_report(small, args.paint_records, seed=2)
        page = tmp / "small.html"
        run([ASSAY, *env_db, "report", str(small), "-o", str(page)])
        fcp, load = first_paint(page, max(args.rounds, 3))
        print(f"{args.paint_records:,}-record HTML ({page.stat().st_size / 1e6:.1f} MB) in headless chromium: "
              f"first contentful paint median {statistics.median(fcp):.2f} s (runs {', '.join(f'{x:.2f}' for x in fcp)}), "
              f"load event median {statistics.median(load):.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
