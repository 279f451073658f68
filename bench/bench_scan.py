"""Scan throughput (issue #19): the full scan against the chain of tools a user would run
instead, the hashing-only scan against Pillow's 1/8-scale decode, and a walk of many
tiny files (time to the first record, parent memory).

    .venv/bin/python bench/bench_scan.py --corpus /tmp/assay-scan-corpus --rounds 3
    .venv/bin/python bench/bench_scan.py --only empty --empty 1000000
    .venv/bin/python bench/bench_scan.py --corpus /tmp/assay-scan-corpus --no-variants  # PDQ variants off
    .venv/bin/python bench/bench_scan.py --corpus /tmp/assay-scan-corpus --plain-banks  # variants plain lists can match

The mixed folder (bench/scan_corpus.py, >= 1,000 files: the shared test photos and
fixtures, generated PNG/JPEG/WebP with and without generator metadata, a few watermarked,
random-weight model files) is made once and reused with --corpus.

Because the machine is shared, every rate is given per CPU second as well as per wall
second: files / CPU seconds (this process's, exiftool's, and for a scan on worker processes
the CPU the workers measured for every step of every file), which a busy machine disturbs
far less than wall time. Rounds interleave the contenders; figures
are medians over rounds; ratios are medians of the per-round ratios.

1. Full scan: ``run_scan`` with default settings (hashes, trimmed variants, provenance,
   models, case links; no banks) on ``--workers`` processes, with ``timings=True`` (the
   per-step table is printed). Peer chain, per file, one process of its own: python-threatexchange's
   PDQ hasher (``pdq_from_file``) on images, ``exiftool -j -G`` through one ``-stay_open``
   process, and c2pa-python's Reader (offline settings, as assay uses) on every file. The
   chain computes less than assay (no MD5/SHA-1/SHA-256, no generator-metadata parsing, no
   watermark, no model analysis), which favours it.
2. Records: the same folder scanned again with the shortcuts of #19 turned off (no decode
   sharing, C2PA SDK on every file, watermark searched on every image): every record must
   be equal except for the watermark's "not checked" notes (file times left out).
3. Hashing only: ``run_scan`` with provenance and models off, one process, on the images,
   against Pillow opening each file's bytes with ``draft("RGB", (w // 8, h // 8))`` and
   loading it (JPEGs at 1/8 scale; other formats have no reduced decode).
4. Floor (``--only floor``): the library work the records cannot do without, timed alone in
   one process beside the chain: MD5, SHA-1 and SHA-256 of every file (hashlib); every image
   decoded at the scale fast PDQ reads it, by the decoders assay uses (libjpeg's 1/8, 1/4 or
   1/2 scale in "L"; PNG through ISA-L and Pillow's unfiltering; still WebP through libwebp;
   Pillow for the rest); and, where the watermark is searched, the full decode of a JPEG and
   the compiled block votes. Everything else (PDQ's arithmetic, metadata and C2PA parsing,
   model analysis, records, the walk, worker processes) counts as zero, so chain / floor is
   the highest ratio any code writing these records on these libraries could reach.
5. Many tiny files: ``--empty N`` two-byte files in folders of 1,000, scanned by the CLI
   (``assay scan DIR --no-banks -o FILE``) in a subprocess: seconds until the report
   (FILE.partial while the scan runs) holds its first file record and the CPU seconds the
   scan's processes (parent and workers) had used by then, the parent's peak RSS
   (VmHWM), files/s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assay.config import ScanSettings  # noqa: E402
from assay.scan.run import run_scan  # noqa: E402
from scan_corpus import IMAGE_SUFFIXES, build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def proc_cpu(pid: int) -> float:
    """CPU seconds of a running process (utime + stime from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its living descendants (a scan's pool workers)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += proc_cpu(p)
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except (OSError, ValueError):
            pass  # gone meanwhile
    return total


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# -- 1. full scan against the chain -----------------------------------------------------------


def _kinds(plain_banks: bool) -> frozenset[str] | None:
    """The variant kinds the banks hold: none (banks of plain hash lists, the query's
    mirror, trimmed, crop and caption variants only) or unknown (every query variant:
    banks holding ``bank add --image`` entries)."""
    return frozenset() if plain_banks else None


def assay_full(corpus: Path, workers: int, variants: bool = True,
               plain_banks: bool = False) -> tuple[float, float, Any, dict[str, dict[str, Any]]]:
    """Wall and CPU seconds: the parent's own CPU plus what the workers measured for every
    step of every file (scan --timings). The workers' start-up and the passing of records
    between processes are left out: a pool's workers are not always reaped by the time the
    scan returns, so RUSAGE_CHILDREN would count them in a later round."""
    records: dict[str, dict[str, Any]] = {}
    c0, t0 = time.process_time(), time.perf_counter()
    summary = run_scan([corpus], ScanSettings(workers=workers, variants=variants,
                                              bank_variant_kinds=_kinds(plain_banks)), None,
                       lambda r: records.__setitem__(r.path, r.to_json_dict()), timings=True)
    cpu = time.process_time() - c0 + (summary.timings.cpu if workers > 1 else 0.0)
    return time.perf_counter() - t0, cpu, summary, records


class Exiftool:
    """One exiftool process for the whole run (``-stay_open``), as batch users run it."""

    def __init__(self) -> None:
        exe = shutil.which("exiftool")
        if exe is None:
            raise SystemExit("exiftool not found: apt-get install libimage-exiftool-perl")
        self.proc = subprocess.Popen([exe, "-stay_open", "True", "-@", "-"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def json(self, path: Path) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"-j\n-G\n{path}\n-execute\n".encode())
        self.proc.stdin.flush()
        out = b""
        while not out.endswith(b"{ready}\n"):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("exiftool stopped")
            out += line
        body = out[: -len(b"{ready}\n")]
        return json.loads(body) if body.strip() else None

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(b"-stay_open\nFalse\n")
        self.proc.stdin.flush()
        self.proc.wait(30)


def chain(files: list[Path], exiftool: Exiftool) -> tuple[float, float, dict[str, int]]:
    import c2pa
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_file

    from assay.provenance.c2pa import MIME, OFFLINE_SETTINGS
    from assay.sniff import sniff_path

    ctx = c2pa.Context(settings=c2pa.Settings.from_dict(OFFLINE_SETTINGS))
    found = {"pdq": 0, "exiftool": 0, "c2pa": 0}
    c0, e0, t0 = time.process_time(), exiftool.cpu(), time.perf_counter()
    for path in files:
        sniffed = sniff_path(path)
        if sniffed.kind == "image":
            try:
                pdq_from_file(path)
                found["pdq"] += 1
            except Exception:  # noqa: S110 - a broken image: the chain moves on, as assay does
                pass
        if exiftool.json(path):
            found["exiftool"] += 1
        mime = MIME.get(sniffed.format)
        if mime:
            try:
                with path.open("rb") as f:
                    reader = c2pa.Reader.try_create(mime, f, None, ctx)
                    if reader is not None:
                        with reader:
                            reader.json()
                        found["c2pa"] += 1
            except Exception:  # noqa: S110 - unreadable or remote-only manifests, as assay reports them
                pass
    wall = time.perf_counter() - t0
    return wall, time.process_time() - c0 + exiftool.cpu() - e0, found


_CHILD_EXIFTOOL: Exiftool | None = None


def chain_in_child(files: list[Path]) -> tuple[float, float, dict[str, int]]:
    """chain() in the chain's own process, with one exiftool kept for every round."""
    global _CHILD_EXIFTOOL
    if _CHILD_EXIFTOOL is None:
        _CHILD_EXIFTOOL = Exiftool()
    return chain(files, _CHILD_EXIFTOOL)


def close_child_exiftool() -> None:
    if _CHILD_EXIFTOOL is not None:
        _CHILD_EXIFTOOL.close()


# -- 2. records with the shortcuts off -------------------------------------------------------


def records_without_shortcuts(corpus: Path, variants: bool = True, plain_banks: bool = False) -> dict[str, dict[str, Any]]:
    """One in-process scan with decode sharing, the C2PA gate and the watermark's
    encoding check turned off."""
    from assay.provenance import analyzer, watermark
    from assay.provenance.context import ImageContext

    saved = (analyzer.may_carry_c2pa, ImageContext.adopt_image, watermark.unsuitable)
    analyzer.may_carry_c2pa = lambda ctx: True  # type: ignore[assignment]
    ImageContext.adopt_image = lambda self, im: None  # type: ignore[method-assign]
    watermark.unsuitable = lambda ctx: None  # type: ignore[assignment]
    try:
        out: dict[str, dict[str, Any]] = {}
        run_scan([corpus], ScanSettings(workers=1, variants=variants, bank_variant_kinds=_kinds(plain_banks)), None,
                 lambda r: out.__setitem__(r.path, r.to_json_dict()))
        return out
    finally:
        analyzer.may_carry_c2pa, ImageContext.adopt_image, watermark.unsuitable = saved  # type: ignore[method-assign]


def compare(fast: dict[str, dict[str, Any]], slow: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Records equal except file times and the watermark's not-checked notes?"""
    notes = other = 0
    examples: list[str] = []
    for path in sorted(set(fast) | set(slow)):
        a, b = dict(fast.get(path, {})), dict(slow.get(path, {}))
        a.pop("times", None)
        b.pop("times", None)
        if a == b:
            continue
        pa, pb = dict(a.get("provenance") or {}), dict(b.get("provenance") or {})
        pa.pop("not_checked", None)
        pb.pop("not_checked", None)
        if {**a, "provenance": pa} == {**b, "provenance": pb}:
            notes += 1
        else:
            other += 1
            if len(examples) < 5:
                examples.append(path)
    return {"records": len(fast), "equal_but_not_checked_notes": notes, "other_differences": other,
            "examples": examples}


# -- 3. hashing only against Pillow's reduced decode -------------------------------------------


def hashing_only(files: list[Path], variants: bool = True, plain_banks: bool = False) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    run_scan(files, ScanSettings(workers=1, provenance=False, models=False, variants=variants,
                                 bank_variant_kinds=_kinds(plain_banks)), None, lambda r: None,
             case_links=False)
    return time.perf_counter() - t0, time.process_time() - c0


def pillow_eighth(files: list[Path]) -> tuple[float, float]:
    from PIL import Image

    c0, t0 = time.process_time(), time.perf_counter()
    for path in files:
        try:
            im = Image.open(io.BytesIO(path.read_bytes()))
            w, h = im.size
            im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
            im.load()
        except Exception:  # noqa: S110 - broken fixtures: assay records them as errors
            pass
    return time.perf_counter() - t0, time.process_time() - c0


# -- 4. the floor --------------------------------------------------------------------------------


def floor(files: list[Path]) -> dict[str, float]:
    """CPU seconds of the unavoidable library work (see the module's docstring, part 4), by
    kind; images that fail to decode count what was spent on them."""
    import hashlib

    from PIL import Image

    from assay.config import Limits
    from assay.media import codecs
    from assay.media.decode import REDUCE_FROM, _jpeg_scale
    from assay.provenance import watermark as wm
    from assay.provenance.context import ImageContext
    from assay.sniff import sniff_bytes

    wm.preload()  # the compiled votes, loaded before timing
    spent = {"digests": 0.0, "decode": 0.0, "watermark": 0.0}
    for path in files:
        data = path.read_bytes()
        fmt = sniff_bytes(data[:512], len(data)).format
        searched = False  # where the watermark is searched (judged untimed: parsing is not the floor)
        if path.suffix.lower() in IMAGE_SUFFIXES and fmt in ("jpeg", "png", "webp", "bmp", "tiff", "gif"):
            try:
                searched = wm.unsuitable(ImageContext(path, data, fmt, Limits())) is None
            except Exception:  # noqa: S110 - not decodable: not searched
                pass
        c0 = time.process_time()
        for name in ("md5", "sha1", "sha256"):
            hashlib.new(name, data).digest()
        c1 = time.process_time()
        spent["digests"] += c1 - c0
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        im = None
        try:
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if fmt == "jpeg" and min(w, h) >= REDUCE_FROM:
                scale = _jpeg_scale(w, h)
                im.draft("L", (w // scale, h // scale))
                im.load()
                im = None  # not the full image
            elif fmt == "webp" and (rgba := codecs.webp_rgba(data, w, h)) is not None:
                im = Image.frombuffer("RGBA", (w, h), rgba, "raw", "RGBA", 0, 1)
            else:
                if fmt == "png" and codecs.png_direct(im, data):
                    try:
                        im.load()
                    except codecs.NotExact:
                        im = Image.open(io.BytesIO(data))
                im.load()
        except Exception:  # noqa: S110 - broken fixtures: their cost so far counts
            im = None
        c2 = time.process_time()
        spent["decode"] += c2 - c1
        try:
            if searched:
                if im is None:  # a JPEG decoded at reduced scale: decoded whole now
                    im = Image.open(io.BytesIO(data))
                    im.load()
                if im.mode not in ("RGB", "RGBA"):
                    im = im.convert("RGB")
                wm.image_votes(im, compiled=True)
        except Exception:  # noqa: S110 - as above
            pass
        spent["watermark"] += time.process_time() - c2
    return spent


# -- 5. many tiny files -------------------------------------------------------------------------


def tiny_files(root: Path, n: int) -> None:
    per = 1000
    for d in range((n + per - 1) // per):
        sub = root / f"d{d:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(min(per, n - d * per)):
            (sub / f"f{i:04d}.txt").write_bytes(b"x\n")


def many_files(n: int, keep: Path | None, first_only: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="assay-empty-"))
    root = keep or tmp / "files"
    try:
        t0 = time.perf_counter()
        if not (root / "d00000").is_dir():
            tiny_files(root, n)
        made = time.perf_counter() - t0
        report = tmp / "report.jsonl"
        exe = ROOT / ".venv" / "bin" / "assay"
        env = {**os.environ, "ASSAY_DATA_DIR": str(tmp / "data")}
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(exe), "scan", str(root), "--no-banks", "-o", str(report)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        first = first_cpu = None
        hwm = 0
        while proc.poll() is None:
            partial = report.with_name(report.name + ".partial")  # renamed at the end
            if first is None and partial.exists():
                with partial.open("rb") as f:
                    if f.readline() and f.readline().endswith(b"\n"):
                        first = time.perf_counter() - t0
                        first_cpu = tree_cpu(proc.pid)
                        if first_only:
                            proc.terminate()
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                hwm = max(hwm, int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1]))
            except (OSError, StopIteration):
                pass
            time.sleep(0.05 if first is None else 0.5)
        wall = time.perf_counter() - t0
        if first_only:
            return {"files": n, "first_record_s": first, "first_record_cpu_s": first_cpu,
                    "parent_peak_rss_mb": round(hwm / 1024, 1), "made_in_s": round(made, 1)}
        with report.open("rb") as f:
            records = sum(1 for _ in f) - 2  # header and summary lines
        return {"files": n, "records": records, "made_in_s": round(made, 1), "first_record_s": first,
                "first_record_cpu_s": first_cpu,
                "parent_peak_rss_mb": round(hwm / 1024, 1), "wall_s": round(wall, 1),
                "files_per_s": round(records / wall, 1), "exit": proc.returncode}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="the mixed folder (made here if missing or empty)")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--empty", type=int, default=100_000, help="tiny files for part 4")
    ap.add_argument("--empty-dir", type=Path, help="keep (or reuse) the tiny files here")
    ap.add_argument("--first-only", action="store_true",
                    help="part 4: stop the scan at its first record (first-record time only; the whole "
                    "run's parent RSS needs the full run)")
    ap.add_argument("--no-variants", action="store_true",
                    help="assay without the PDQ query variants (scan --no-variants): trimmed borders, "
                    "mirror and crop regions")
    ap.add_argument("--plain-banks", action="store_true",
                    help="the query variants a scan computes against banks of plain hash lists (mirror, "
                    "trimmed, centred crops, caption bands: ~7 an image), not every one (~50: banks "
                    "holding `bank add --image` entries, the default here)")
    ap.add_argument("--only", choices=["full", "records", "hashing", "floor", "empty"], action="append")
    a = ap.parse_args()
    parts = set(a.only or ["full", "records", "hashing", "floor", "empty"])
    tmp = None
    corpus = a.corpus
    if corpus is None:
        tmp = tempfile.mkdtemp(prefix="assay-scan-corpus-")
        corpus = Path(tmp)
    if parts != {"empty"} and (not corpus.is_dir() or not any(corpus.iterdir())):
        t0 = time.perf_counter()
        n = build(corpus, a.files)
        print(f"corpus: {n} files made in {time.perf_counter() - t0:.0f} s", flush=True)
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    variants = not a.no_variants
    plain = a.plain_banks
    out: dict[str, Any] = {"load_start": load(), "workers": a.workers, "variants": variants,
                           "variant_kinds": "plain-banks" if plain else "all", "files": len(files),
                           "bytes": sum(p.stat().st_size for p in files)}
    print(f"{len(files)} files ({out['bytes'] / 1e6:.0f} MB), {len(images)} images; load {load()}", flush=True)

    if "full" in parts:
        if shutil.which("exiftool") is None:
            raise SystemExit("exiftool not found: apt-get install libimage-exiftool-perl")
        # The chain runs in a process of its own (with its exiftool): c2pa-python loaded into
        # this one would make run_scan start its workers from a fork server
        # (pipeline._worker_context), which `assay scan` never does, from the second round on.
        import multiprocessing as mp

        chain_proc = mp.get_context("spawn").Pool(1)
        rows: list[dict[str, float]] = []
        last = None
        try:
            for r in range(a.rounds):
                order = ("assay", "chain") if r % 2 == 0 else ("chain", "assay")
                row: dict[str, float] = {}
                for who in order:
                    if who == "assay":
                        wall, cpu, summary, _ = assay_full(corpus, a.workers, variants, plain)
                        row |= {"assay_wall": wall, "assay_cpu": cpu}
                        last = summary
                    else:
                        wall, cpu, found = chain_proc.apply(chain_in_child, (files,))
                        row |= {"chain_wall": wall, "chain_cpu": cpu}
                rows.append(row)
                print(f"round {r + 1}: assay {len(files) / row['assay_cpu']:.1f} files/CPU-s "
                      f"({len(files) / row['assay_wall']:.1f} files/s wall), chain "
                      f"{len(files) / row['chain_cpu']:.1f} files/CPU-s ({len(files) / row['chain_wall']:.1f} wall); "
                      f"load {load()}", flush=True)
        finally:
            chain_proc.apply(close_child_exiftool)
            chain_proc.close()
            chain_proc.join()
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        out["full"] = {
            "rounds": rows,
            "assay_files_per_cpu_s": round(len(files) / med["assay_cpu"], 1),
            "assay_files_per_s_wall": round(len(files) / med["assay_wall"], 1),
            "assay_files_per_s_wall_per_core": round(len(files) / med["assay_wall"] / a.workers, 1),
            "chain_files_per_cpu_s": round(len(files) / med["chain_cpu"], 1),
            "chain_files_per_s_wall": round(len(files) / med["chain_wall"], 1),
            "ratio_cpu": round(statistics.median(r["chain_cpu"] / r["assay_cpu"] for r in rows), 2),
            "ratio_wall_per_core": round(statistics.median(
                r["chain_wall"] / (r["assay_wall"] * a.workers) for r in rows), 2),
            "chain_found": found,
        }
        if last is not None and last.timings is not None:
            out["full"]["timings"] = last.timings.to_json_dict()
            print("cost per step, last assay round:")
            print("\n".join("  " + ln for ln in last.timings.lines()))
        print(json.dumps({k: v for k, v in out["full"].items() if k not in ("rounds", "timings")}), flush=True)

    if "records" in parts:
        _, _, _, fast = assay_full(corpus, a.workers, variants, plain)
        slow = records_without_shortcuts(corpus, variants, plain)
        out["records"] = compare(fast, slow)
        print("records:", json.dumps(out["records"]), flush=True)

    if "hashing" in parts:
        rows = []
        for r in range(a.rounds):
            row = {}
            for who in (("assay", "pillow") if r % 2 == 0 else ("pillow", "assay")):
                wall, cpu = hashing_only(images, variants, plain) if who == "assay" else pillow_eighth(images)
                row |= {f"{who}_wall": wall, f"{who}_cpu": cpu}
            rows.append(row)
            print(f"round {r + 1}: hashing-only {row['assay_cpu']:.2f} CPU-s, Pillow 1/8 {row['pillow_cpu']:.2f} "
                  f"CPU-s; load {load()}", flush=True)
        out["hashing"] = {
            "images": len(images),
            "rounds": rows,
            "ratio_cpu": round(statistics.median(r["assay_cpu"] / r["pillow_cpu"] for r in rows), 3),
            "ratio_wall": round(statistics.median(r["assay_wall"] / r["pillow_wall"] for r in rows), 3),
            "assay_images_per_cpu_s": round(len(images) / statistics.median(r["assay_cpu"] for r in rows), 1),
            "pillow_images_per_cpu_s": round(len(images) / statistics.median(r["pillow_cpu"] for r in rows), 1),
        }
        print("hashing:", json.dumps({k: v for k, v in out["hashing"].items() if k != "rounds"}), flush=True)

    if "floor" in parts:
        import multiprocessing as mp

        if shutil.which("exiftool") is None:
            raise SystemExit("exiftool not found: apt-get install libimage-exiftool-perl")
        chain_proc = mp.get_context("spawn").Pool(1)
        rows = []
        try:
            for r in range(a.rounds):
                row = {}
                for who in (("floor", "chain") if r % 2 == 0 else ("chain", "floor")):
                    if who == "floor":
                        spent = floor(files)
                        row |= {"floor_cpu": sum(spent.values())} | {f"floor_{k}": v for k, v in spent.items()}
                    else:
                        _, row["chain_cpu"], _ = chain_proc.apply(chain_in_child, (files,))
                rows.append(row)
                print(f"round {r + 1}: floor {row['floor_cpu']:.2f} CPU-s (digests {row['floor_digests']:.2f}, "
                      f"decode {row['floor_decode']:.2f}, watermark {row['floor_watermark']:.2f}), chain "
                      f"{row['chain_cpu']:.2f} CPU-s: at most {row['chain_cpu'] / row['floor_cpu']:.2f}x; "
                      f"load {load()}", flush=True)
        finally:
            chain_proc.apply(close_child_exiftool)
            chain_proc.close()
            chain_proc.join()
        out["floor"] = {
            "rounds": rows,
            **{k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]},
            "floor_ms_per_file": round(1000 * statistics.median(r["floor_cpu"] for r in rows) / len(files), 3),
            "best_possible_ratio": round(statistics.median(r["chain_cpu"] / r["floor_cpu"] for r in rows), 2),
        }
        print("floor:", json.dumps({k: v for k, v in out["floor"].items() if k != "rounds"}), flush=True)

    if "empty" in parts:
        out["empty"] = many_files(a.empty, a.empty_dir, a.first_only)
        print("many tiny files:", json.dumps(out["empty"]), flush=True)

    out["load_end"] = load()
    print(json.dumps(out))
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
