"""Benchmark: one-file commands as whole processes, against the tool a user would run per file.

Sets up the case of bench/RESULTS.md "CLI start-up per file" (a store with two banks:
10,000 PDQ + 10,000 MD5 hashes in ``images``, one model with its file hashes and weight
fingerprint in ``models``; a 640x480 PNG; a 131-byte pickle of a plain dict), then runs each
pair of commands in turn (A B A B ...), ``--rounds`` times after one warm-up each, and prints
the medians of wall and CPU seconds (user + system of the finished child, from the operating
system's accounting) and the median of the pairwise ratios. Usage::

    .venv/bin/python bench/bench_startup.py [--rounds 9] [--dir /tmp/assay-bench-startup]
    .venv/bin/python bench/bench_startup.py --before /tmp/old/src   # and against an older tree

exiftool and picklescan must be on PATH (picklescan: ``pip install picklescan``).

The commands run as after any install: with Python's byte-code cache. A
``PYTHONDONTWRITEBYTECODE`` in the caller's environment is not passed on (the warm-up
writes the cache, as a first run does): with it, and no ``__pycache__`` beside an
editable install's sources, every run compiles assay's ~40 modules from source (~0.1 s
of CPU that no installed copy spends). ``--before SRC`` also runs each command from
another source tree (``git archive OLD src | tar -x -C DIR``; PYTHONPATH=DIR/src, the
same interpreter), in turn with this tree's, and prints new/before medians.

On a shared machine, ``--realtime`` runs every process (assay's and the peers') under
``chrt -f 50`` (SCHED_FIFO; needs root or CAP_SYS_NICE): other processes then cannot
preempt them, so their walls approach a quiet machine's. Each run is well under a second,
and the kernel's real-time throttling keeps 5% of each core for everything else.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

MD5 = "20def2ffb08bd7f8adc9d14cce39d7ee"


def setup(d: Path) -> dict[str, Path]:
    import numpy as np

    from assay.banks.store import ImportRecord, Store
    from assay.demo import pattern

    d.mkdir(parents=True, exist_ok=True)
    png, pkl, db = d / "p.png", d / "small.pkl", d / "banks.sqlite3"
    pattern("rings", seed=2).save(png)
    pkl.write_bytes(pickle.dumps({"weights": [1, 2, 3], "name": "plain"}))  # a plain value, no code
    if not db.exists():
        rng = np.random.default_rng(7)
        pdq = [bytes(r).hex() for r in rng.integers(0, 256, (10_000, 32), dtype=np.uint8)]
        md5 = [bytes(r).hex() for r in rng.integers(0, 256, (10_000, 16), dtype=np.uint8)]
        model = d / "m.safetensors"
        _safetensors(model, {f"layer{i}.weight": rng.standard_normal((64, 64)).astype(np.float32) for i in range(8)})
        with Store(str(db)) as store:
            store.create_bank("images")
            store.import_records("images", (ImportRecord(f"p{i}", (("pdq", v),)) for i, v in enumerate(pdq)), "bench")
            store.import_records("images", (ImportRecord(f"m{i}", (("md5", v),)) for i, v in enumerate(md5)), "bench")
            store.create_bank("models")
        # its file hashes and its weight fingerprint, as a user banks a model
        subprocess.run([str(Path(sys.executable).with_name("assay")), "--db", str(db), "bank", "add-model", "models",
                        str(model), "--id", "m1", "--kind", "checkpoint"], check=True, stdout=subprocess.DEVNULL)
    return {"png": png, "pkl": pkl, "db": db}


def _safetensors(path: Path, tensors: dict) -> None:
    import json
    import struct

    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# Byte-code cached, as an installed copy has it (see the module's docstring).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PREFIX: list[str] = []  # ["chrt", "-f", "50"] with --realtime


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall s, cpu s, exit status) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    rc = subprocess.run([*PREFIX, *cmd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        env=env or ENV).returncode
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rc


def pair(a: list[str], b: list[str], rounds: int, env_a: dict[str, str] | None = None,
         env_b: dict[str, str] | None = None) -> dict[str, float]:
    run(a, env_a), run(b, env_b)  # warm-up: page cache, byte-code
    ra, rb = [], []
    for _ in range(rounds):
        ra.append(run(a, env_a))
        rb.append(run(b, env_b))
    med = statistics.median
    return {
        "a_cpu": med(r[1] for r in ra), "a_wall": med(r[0] for r in ra), "b_wall": med(r[0] for r in rb),
        "b_cpu": med(r[1] for r in rb),
        "cpu_ratio": med(x[1] / y[1] for x, y in zip(ra, rb, strict=True)),
        "wall_ratio": med(x[0] / y[0] for x, y in zip(ra, rb, strict=True)),
        "a_rc": ra[-1][2], "b_rc": rb[-1][2],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/assay-bench-startup"))
    ap.add_argument("--before", type=Path, help="an older source tree (its src/ folder) to compare with")
    ap.add_argument("--realtime", action="store_true", help="run every process under chrt -f 50 (see above)")
    args = ap.parse_args()
    if args.realtime:
        PREFIX[:] = ["chrt", "-f", "50"]
        if subprocess.run([*PREFIX, "true"], capture_output=True).returncode:
            sys.exit("chrt -f 50 is not allowed here (needs root or CAP_SYS_NICE)")
    f = setup(args.dir)
    assay = str(Path(sys.executable).with_name("assay"))
    exiftool, picklescan = shutil.which("exiftool"), shutil.which("picklescan") or str(
        Path(sys.executable).with_name("picklescan"))
    if exiftool is None:
        sys.exit("exiftool is not on PATH")
    db = ["--db", str(f["db"])]
    cases = [
        ([assay, *db, "hash", str(f["png"])], [exiftool, str(f["png"])]),
        ([assay, *db, "provenance", str(f["png"])], [exiftool, str(f["png"])]),
        ([assay, *db, "match", "--md5", MD5], [exiftool, str(f["png"])]),
        ([assay, *db, "model", str(f["pkl"])], [picklescan, "-p", str(f["pkl"])]),
    ]
    print(f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds" + (", SCHED_FIFO" if args.realtime else ""))
    print("| command (A) | peer (B) | A cpu s | A wall s | B wall s | A/B cpu | A/B wall |")
    print("|---|---|---|---|---|---|---|")
    for a, b in cases:
        r = pair(a, b, args.rounds)
        shown_a = "assay " + " ".join(a[1:]).replace(str(args.dir) + "/", "")
        shown_b = Path(b[0]).name + " " + " ".join(b[1:]).replace(str(args.dir) + "/", "")
        print(f"| `{shown_a}` | `{shown_b}` | {r['a_cpu']:.2f} | {r['a_wall']:.2f} | {r['b_wall']:.2f} | "
              f"{r['cpu_ratio']:.1f} | {r['wall_ratio']:.1f} |" + ("" if r["a_rc"] in (0, 1) else f" rc {r['a_rc']}"))
    print(f"load average {os.getloadavg()[0]:.1f}")
    if args.before is not None:
        before(args, [a for a, _ in cases])


def before(args: argparse.Namespace, commands: list[list[str]]) -> None:
    """Each command from this tree and from ``--before``, the same launcher for both."""
    here = Path(__file__).resolve().parents[1] / "src"
    launch = [sys.executable, "-c", "import sys; sys.argv[0] = 'assay'; from assay.cli import main; main()"]
    env_new, env_old = {**ENV, "PYTHONPATH": str(here)}, {**ENV, "PYTHONPATH": str(args.before.resolve())}
    print(f"\nthis tree ({here}) against {args.before}, load average {os.getloadavg()[0]:.1f}")
    print("| command | new cpu s | before cpu s | new/before cpu | new wall s | before wall s | new/before wall |")
    print("|---|---|---|---|---|---|---|")
    for cmd in commands:
        r = pair([*launch, *cmd[1:]], [*launch, *cmd[1:]], args.rounds, env_new, env_old)
        shown = " ".join(cmd[3:]).replace(str(args.dir) + "/", "")
        print(f"| `{shown}` | {r['a_cpu']:.2f} | {r['b_cpu']:.2f} | {r['cpu_ratio']:.2f} | {r['a_wall']:.2f} | "
              f"{r['b_wall']:.2f} | {r['wall_ratio']:.2f} |" + ("" if r["a_rc"] == r["b_rc"] else " exit codes differ"))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
