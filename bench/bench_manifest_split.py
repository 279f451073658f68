"""Manifests read by the workers (issue #15): what the client pays to plan a scan of an
S3 Inventory, before (it read every row) and now (it reads manifest.json and cuts it into
segments), and what a worker pays to read one segment and write its plan.

    .venv/bin/python bench/bench_manifest_split.py --rows 1000000 --files 4 --rounds 3

Data: an S3 Inventory (CSV.gz data files, the columns Bucket, Key, Size, LastModifiedDate,
keys URL-encoded as AWS writes them) on local disk, ``--rows`` rows over ``--files`` files.
Contenders, one process each, CPU time (process_time) and wall, medians of ``--rounds``:
- client, before: every row read by the client and cut into partitions (``manifest_items``
  + ``plan``, as the engine did until the workers read manifests);
- client, now: ``manifest_segments`` (the client's whole share of the manifest);
- worker: ``split_segment`` of one data file into a local output folder (per row).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from assay.config import ScanSettings
from assay.scan.dask_engine import plan
from assay.scan.partitions import Job, split_segment
from assay.scan.sources import manifest_items, manifest_segments


def make_inventory(root: Path, rows: int, files: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    per = -(-rows // files)
    for f in range(files):
        lines = []
        for i in range(f * per, min(rows, (f + 1) * per)):
            key = quote(f"uploads/{i % 997:03d}/photo {i:09d}.jpg")
            lines.append(f'"evidence","{key}","{10_000 + i % 90_000}","2026-01-02T03:04:05.000Z"\n')
        name = f"data/{f:04d}.csv.gz"
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(gzip.compress("".join(lines).encode(), 6))
        entries.append({"key": str(root / name), "size": (root / name).stat().st_size, "MD5checksum": f"m{f}"})
    m = root / "manifest.json"
    m.write_text(json.dumps({"sourceBucket": "evidence", "fileFormat": "CSV",
                             "fileSchema": "Bucket, Key, Size, LastModifiedDate", "files": entries}))
    return m


def timed(fn: object) -> tuple[float, float, object]:
    c0, t0 = time.process_time(), time.perf_counter()
    r = fn()  # type: ignore[operator]
    return time.process_time() - c0, time.perf_counter() - t0, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partition-size", type=int, default=256)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assay-bench-split-"))
    try:
        run(work, a)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, a: argparse.Namespace) -> None:
    m = make_inventory(work / "inv", a.rows, a.files)
    job = Job("bench", str(work / "out"), ScanSettings())
    res: dict[str, list[tuple[float, float]]] = {"before": [], "now": [], "worker": []}
    for _ in range(a.rounds):
        c, w, n = timed(lambda: sum(1 for _ in plan(manifest_items(str(m)), a.partition_size)))
        res["before"].append((c, w))
        c, w, segs = timed(lambda: manifest_segments(str(m)))
        res["now"].append((c, w))
        seg = segs[0]  # type: ignore[index]
        c, w, index = timed(lambda seg=seg: split_segment(job, 0, seg.to_json_dict(), a.partition_size))
        res["worker"].append((c / index["items"], w / index["items"]))  # type: ignore[index]
    per_file = -(-a.rows // a.files)
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
    print(f"{a.rows:,} rows in {a.files} CSV.gz files ({per_file:,} a file), partitions of {a.partition_size}")
    print(f"client, before (reads every row): CPU {med['before'][0]:.2f} s, wall {med['before'][1]:.2f} s, "
          f"{n:,} partitions")
    print(f"client, now (manifest.json only): CPU {1000 * med['now'][0]:.2f} ms, wall {1000 * med['now'][1]:.2f} ms, "
          f"{len(segs):,} segments")  # type: ignore[arg-type]
    print(f"worker, one segment: CPU {1e6 * med['worker'][0]:.1f} us a row "
          f"({1 / med['worker'][0]:,.0f} rows per CPU second), wall {1e6 * med['worker'][1]:.1f} us a row")


if __name__ == "__main__":
    main()
