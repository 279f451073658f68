"""Model lineage benchmark: fingerprint extraction vs sha256sum, bank queries, size.

    .venv/bin/python bench/bench_lineage.py [--file PATH] [--repeat 3] [--bank 10000]

1. A 2 GB fp16 SD 1.5 checkpoint (real key names and shapes, random weights, written
   by tests/modelgen.py unless --file names one) is hashed with ``sha256sum`` and
   fingerprinted by assay, alternately, ``--repeat`` times, each in its own process:
   wall time medians, their ratio, and the fingerprint process's peak RSS.
2. Fingerprint size in bytes and as a share of the file.
3. A SQLite bank of ``--bank`` model fingerprints: 50 at full SD 1.5 size (the base,
   fine-tunes of it, unrelated bases, flagged LoRAs; built from the measured
   fingerprint by the linearity of sketches) plus small unrelated decoys (checkpoints
   and LoRAs of a few full-size tensors each, so the database stays a few GB smaller;
   the query reads only their 5 KB summaries unless they are candidates). Query time
   (median of 5) cold (summaries loaded from the store) and warm (index reused).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

FP_CHILD = """
import sys
from assay.models.fingerprint import fingerprint_file
fp = fingerprint_file(sys.argv[1], k=int(sys.argv[3]))
open(sys.argv[2], "wb").write(fp.to_bytes())
"""


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process.
    CPU time is reported too because on a shared machine wall time mostly measures
    the other tenants."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed with status {status}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def ensure_checkpoint(path: Path) -> Path:
    if path.exists():
        return path
    import modelgen

    print(f"writing {path} (random fp16 SD 1.5, real key names and shapes) ...", flush=True)
    modelgen.write_safetensors(path, modelgen.sd15(1.0, dt="F16"), seed=1)
    return path


def bench_extraction(path: Path, repeat: int, k: int, out: Path) -> dict[str, float]:
    sha, fp, rss, sha_cpu, fp_cpu = [], [], [], [], []
    for _ in range(repeat):
        w, c, _ = timed(["sha256sum", str(path)])
        sha.append(w)
        sha_cpu.append(c)
        w, c, r = timed([sys.executable, "-c", FP_CHILD, str(path), str(out), str(k)])
        fp.append(w)
        fp_cpu.append(c)
        rss.append(r)
    return {"sha256sum": statistics.median(sha), "fingerprint": statistics.median(fp),
            "sha_cpu": statistics.median(sha_cpu), "fp_cpu": statistics.median(fp_cpu),
            "rss": max(rss), "sha_all": sha, "fp_all": fp}


def bench_bank(fp_bytes: bytes, n_bank: int, workdir: Path) -> dict[str, float]:
    from assay.banks.fingerprints import FingerprintStore, query
    from assay.banks.store import Store
    from assay.models.fingerprint import Fingerprint, TensorSketch
    from assay.models.lora_apply import apply_lora

    base = Fingerprint.from_bytes(fp_bytes)
    rng = np.random.default_rng(0)

    def noise_like(fp: Fingerprint, rel: float, kind: str, names: list[str] | None = None) -> Fingerprint:
        out = Fingerprint(k=fp.k, kind=kind)
        for n in names or list(fp.tensors):
            t = fp.tensors[n]
            s = rng.standard_normal(t.sketch.shape).astype(np.float32) * np.float32(rel * (np.std(t.sketch) + 1e-12))
            out.tensors[n] = TensorSketch(n, t.shape, s, rel * t.norm, 0.0)
        return out

    def plus(a: Fingerprint, b: Fingerprint, kind: str) -> Fingerprint:
        out = Fingerprint(k=a.k, kind=kind)
        for n, t in a.tensors.items():
            s = t.sketch + (b.tensors[n].sketch if n in b.tensors else 0)
            out.tensors[n] = TensorSketch(n, t.shape, s.astype(np.float32), t.norm, t.mean)
        return out

    attn = [n for n, t in base.tensors.items() if t.is_matrix and n.endswith(("to_q.weight", "to_v.weight"))]
    store = Store(str(workdir / "bank.sqlite3"))
    store.create_bank("bases")
    store.create_bank("flagged")
    store.create_bank("decoys")
    fs = FingerprintStore(store)
    fs.add("bases", "sd15", base, kind="base")
    loras = []
    for i in range(10):
        lo = noise_like(base, 0.1, "lora", attn)
        loras.append(lo)
        fs.add("flagged", f"lora-{i}", lo)
    for i in range(20):
        fs.add("flagged", f"finetune-{i}", plus(base, noise_like(base, 0.05, "checkpoint"), "checkpoint"))
    for i in range(19):
        fs.add("bases", f"unrelated-{i}", noise_like(base, 1.0, "base"))
    small = attn[:4]
    t0 = time.perf_counter()
    batch: list[tuple[str, Fingerprint]] = []
    for i in range(n_bank - 50):
        batch.append((f"decoy-{i}", noise_like(base, 1.0, "lora" if i % 2 else "checkpoint", small)))
        if len(batch) == 1000:
            fs.add_many("decoys", batch)
            batch = []
    fs.add_many("decoys", batch)
    fill = time.perf_counter() - t0
    suspect = plus(apply_lora(base, loras[3], 0.5), noise_like(base, 0.01, "checkpoint"), "checkpoint")
    cold, warm, cached = [], [], []
    rep = None
    for _ in range(5):
        t = time.perf_counter()
        rep = query(store, suspect)
        cold.append(time.perf_counter() - t)
    idx = fs.index()
    for _ in range(5):
        t = time.perf_counter()
        rep = query(store, suspect, index=idx)  # a new FingerprintStore: nothing cached
        warm.append(time.perf_counter() - t)
    for _ in range(5):
        t = time.perf_counter()
        rep = query(fs, suspect, index=idx)  # decoded candidates cached, as in a scan
        cached.append(time.perf_counter() - t)
    t = time.perf_counter()
    fs.index()
    load = time.perf_counter() - t
    assert rep is not None
    found = [f"{lo.entry} at {lo.strength:.2f}" for lo in rep.loras]
    store.close()
    return {"entries": len(idx), "fill": fill, "cold": statistics.median(cold),
            "warm": statistics.median(warm), "cached": statistics.median(cached), "index_load": load, "found": found,
            "derived": [d.entry for d in rep.derived][:3]}


def bench_permuted(n_bank: int, workdir: Path, repeat: int = 3) -> dict[str, object]:
    from safetensors.numpy import save_file

    import permutations as pm
    from assay.banks.fingerprints import FingerprintStore, query
    from assay.banks.store import Store
    from assay.models.alignment import open_suspect, query_file
    from assay.models.fingerprint import Fingerprint, TensorSketch, fingerprint_file

    shape = {"hidden": 384, "layers": 6, "ff": 1536, "vocab": 30522, "positions": 512}
    a = pm.bert(1, **shape)
    rng = np.random.default_rng(7)
    p = pm.bert_permute_hidden(a, rng.permutation(384))
    for n in range(6):
        p = pm.bert_permute_heads(p, n, rng.permutation(12), heads=12)
        p = pm.bert_permute_ffn(p, n, rng.permutation(1536))
    orig, perm = workdir / "minilm.safetensors", workdir / "minilm-permuted.safetensors"
    save_file(a, str(orig))
    save_file(p, str(perm))
    t = time.perf_counter()
    fp_a = fingerprint_file(orig)
    extract = time.perf_counter() - t
    size = len(fp_a.to_bytes())
    sha = timed(["sha256sum", str(orig)])[0]
    store = Store(str(workdir / "perm-bank.sqlite3"), create=True)
    store.create_bank("flagged")
    fs = FingerprintStore(store)
    fs.add("flagged", "minilm", fp_a)
    fs.add("flagged", "minilm-seed2", fingerprint_file(_write(workdir, "b", pm.bert(2, **shape), save_file)))
    names = [n for n, t in fp_a.tensors.items() if t.is_matrix][:4]
    batch: list[tuple[str, Fingerprint]] = []
    for i in range(n_bank - 2):
        d = Fingerprint(k=fp_a.k, kind="checkpoint")
        near = i % 3 == 0  # a third look like fine-tunes of this architecture to the pre-filter
        for nm in names:
            t0 = fp_a.tensors[nm]
            sk = rng.standard_normal(t0.sketch.shape).astype(np.float32) * np.float32(np.std(t0.sketch))
            inv = t0.inv * (1 + rng.uniform(0.02, 0.1) * rng.standard_normal(t0.inv.shape)) if near else \
                rng.uniform(0, 2 * float(t0.inv.max()), t0.inv.shape)
            d.tensors[nm] = TensorSketch(nm, t0.shape, sk, t0.norm, 0.0, inv=inv.astype(np.float32))
        batch.append((f"decoy-{i}", d))
        if len(batch) == 1000:
            fs.add_many("flagged", batch)
            batch = []
    fs.add_many("flagged", batch)
    t = time.perf_counter()
    idx = fs.index()
    index_load = time.perf_counter() - t
    suspect_fp = fingerprint_file(perm)

    def clocked(fn: Any) -> tuple[float, float, Any]:
        """Medians of wall and CPU seconds (this process, all threads) over ``repeat`` runs."""
        walls, cpus, out = [], [], None
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            out = fn()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        return statistics.median(walls), statistics.median(cpus), out

    # the fingerprint alone: the bank lookup, then units paired on format-3 features (no weights)
    blind_wall, blind_cpu, blind = clocked(lambda: query(fs, suspect_fp, index=idx))

    def with_weights() -> Any:
        with open_suspect(perm) as tensors:  # the fingerprint known, the weights at hand
            return query(fs, suspect_fp, index=idx, tensors=tensors)

    aligned_wall, aligned_cpu, _ = clocked(with_weights)
    wall, cpu, rep = clocked(lambda: query_file(fs, perm, index=idx))
    fp_wall, fp_cpu, _ = clocked(lambda: fingerprint_file(perm))
    store.close()
    return {"file": orig.stat().st_size, "fp_size": size, "extract": extract, "sha": sha,
            "query": wall, "query_cpu": cpu, "fp_only": fp_wall, "fp_cpu": fp_cpu, "entries": len(idx),
            "blind_query": blind_wall, "blind_cpu": blind_cpu, "aligned": aligned_wall,
            "aligned_cpu": aligned_cpu, "index_load": index_load,
            "found": rep.explanations()[0], "blind": blind.explanations()[0]}


def _write(workdir: Path, name: str, arrays: dict[str, np.ndarray], save_file: object) -> Path:
    path = workdir / f"{name}.safetensors"
    save_file(arrays, str(path))  # type: ignore[operator]
    return path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=Path(tempfile.gettempdir()) / "assay-bench" / "sd15_fp16.safetensors")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bank", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--permuted", action="store_true", help="only part 4: permuted copies (issue #22)")
    args = ap.parse_args()
    if args.permuted:
        with tempfile.TemporaryDirectory() as tmp:
            r = bench_permuted(args.bank, Path(tmp))
        print(f"MiniLM-sized BERT, {r['file'] / 1e6:.1f} MB float32: fingerprint {r['fp_size']} bytes = "
              f"{100 * r['fp_size'] / r['file']:.2f}% of the file; extraction {r['extract']:.2f} s "
              f"(sha256sum {r['sha']:.2f} s)")
        print(f"bank of {r['entries']} fingerprints (summaries loaded in {r['index_load']:.2f} s); permuted "
              f"copy, medians, CPU seconds (wall in brackets):")
        print(f"  query_file (fingerprint the suspect, look up, align, answer) {r['query_cpu']:.2f} "
              f"({r['query']:.2f}); of which fingerprinting the suspect {r['fp_cpu']:.2f} ({r['fp_only']:.2f})")
        print(f"  query with the suspect's fingerprint and weights (look up, align, answer) "
              f"{r['aligned_cpu']:.2f} ({r['aligned']:.2f})")
        print(f"  the same query from the fingerprint alone {r['blind_cpu']:.2f} ({r['blind_query']:.2f})")
        print(f"with alignment: {r['found']}")
        print(f"from the fingerprint alone (format 3 unit features, no weights): {r['blind']}")
        return 0
    args.file.parent.mkdir(parents=True, exist_ok=True)
    path = ensure_checkpoint(args.file)
    size = path.stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fp.bin"
        ext = bench_extraction(path, args.repeat, args.k, out)
        fp_bytes = out.read_bytes()
        print(f"file {path} ({size / 1e9:.2f} GB), k={args.k}, {args.repeat} runs each, alternating")
        print(f"sha256sum   median {ext['sha256sum']:.2f} s  (runs: {', '.join(f'{x:.1f}' for x in ext['sha_all'])})")
        print(f"fingerprint median {ext['fingerprint']:.2f} s  (runs: {', '.join(f'{x:.1f}' for x in ext['fp_all'])})")
        print(f"CPU seconds median: sha256sum {ext['sha_cpu']:.2f}, fingerprint {ext['fp_cpu']:.2f} "
              f"(ratio {ext['fp_cpu'] / ext['sha_cpu']:.2f}x)")
        print(f"wall ratio fingerprint / sha256sum: {ext['fingerprint'] / ext['sha256sum']:.2f}x; "
              f"fingerprint peak RSS {ext['rss']:.0f} MB")
        print(f"fingerprint size {len(fp_bytes)} bytes = {100 * len(fp_bytes) / size:.3f}% of the file")
        b = bench_bank(fp_bytes, args.bank, Path(tmp))
        print(f"bank of {b['entries']} fingerprints (filled in {b['fill']:.0f} s): query median "
              f"cold {b['cold']:.3f} s (summaries from SQLite {b['index_load']:.3f} s), "
              f"index reused {b['warm']:.3f} s, index and decoded candidates reused {b['cached']:.3f} s")
        print(f"found: {b['found']}; derived from: {b['derived']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
