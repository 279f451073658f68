"""The Dask engine against the local engine (issue #15): same files, same cores.

    .venv/bin/python bench/bench_distributed.py --files 5000 --rounds 3

Data: ``--files`` mixed images (JPEG 60%, PNG 25%, WebP 15%; 256-640 px wide; edits of 48
generated patterns, so a bank of 48 originals matches some of them) written once under
``--data``. The same set is uploaded to an S3-compatible server on loopback (moto's
server, a separate process).

Contenders, interleaved round by round, full scans with banks, provenance and models:
- local: ``run_scan`` with 2 worker processes (the local engine, as ``assay scan``), report to a file;
- dask: ``run_dask_scan`` on a real ``dask scheduler`` and 2 ``dask worker`` processes (1 thread
  each) on 127.0.0.1, reading the folder, parts written to a local --out;
- dask-s3: the same, reading the set from the loopback S3 (``s3://bench/...``).
Files/s = files / wall seconds; ratio = median of the per-round ratios.

Then: the scheduler's overhead, as its process's CPU time during a scan divided by the
partitions and the files, and for a floor the same for no-op partitions (the task shape
alone); the extrapolation to 100 workers; on 500 of the files in partitions of 32: a worker
killed with SIGKILL mid-scan (files lost/duplicated), and a scan stopped after ~40% of its
partitions then ``--resume`` (partitions redone). CPU per file counts every process of an
engine (local: this process and its pool; dask: client, scheduler, workers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from assay.config import ScanSettings
from assay.scan.dask_engine import read_records, run_dask_scan
from assay.scan.run import run_scan

KINDS = ["rings", "waves", "blobs", "noise"]


def make_data(root: Path, n: int) -> list[Path]:
    """Mixed images (cached: made once per folder and count)."""
    from PIL import Image, ImageEnhance

    from assay.demo import pattern

    stamp = root / f".made-{n}"
    bases_dir = root / "bank-originals"
    if stamp.exists():
        return sorted(bases_dir.iterdir())
    rng = random.Random(15)
    bases_dir.mkdir(parents=True, exist_ok=True)
    bases = []
    for i in range(48):
        im = pattern(KINDS[i % 4], size=(640, 480), seed=1000 + i)
        p = bases_dir / f"base-{i:02d}.png"
        im.save(p)
        bases.append(im)
    for i in range(n):
        d = root / "images" / f"d{i // 500:02d}"
        d.mkdir(parents=True, exist_ok=True)
        im = bases[rng.randrange(48)]
        w = rng.choice([256, 320, 384, 512, 640])
        im = im.resize((w, w * 3 // 4))
        if rng.random() < 0.5:
            im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.8, 1.2))
        if rng.random() < 0.3:
            im = im.rotate(rng.choice([90, 180, 270]), expand=True)
        if rng.random() < 0.5:  # an unrelated image: different pixels entirely
            im = Image.effect_noise(im.size, rng.uniform(20, 80)).convert("RGB")
        r = rng.random()
        if r < 0.6:
            im.save(d / f"img-{i:05d}.jpg", quality=rng.choice([70, 85, 92]))
        elif r < 0.85:
            im.save(d / f"img-{i:05d}.png", compress_level=1)
        else:
            im.save(d / f"img-{i:05d}.webp", quality=80)
    stamp.write_text("ok")
    return sorted(bases_dir.iterdir())


def make_bank(db: str, originals: list[Path]) -> None:
    from assay.banks.formats import ImportRecord
    from assay.banks.store import Store
    from assay.media import hash_image_file

    records = []
    for p in originals:
        h = hash_image_file(p)
        records.append(ImportRecord(content_id=p.stem, signals=(("pdq", h.pdq), ("md5", h.md5))))
    with Store(db, create=True) as store:
        store.create_bank("bench")
        store.import_records("bench", records, source="bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children: none here), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cluster:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--dashboard-address", ":0"], "scheduler")
        wait_port(self.port)
        self.address = f"tcp://127.0.0.1:{self.port}"
        for i in range(2):
            self._start(["worker", self.address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                         "--no-dashboard", "--local-directory", str(logs / f"w{i}")], f"worker{i}")
        from distributed import Client

        self.client = Client(self.address, timeout=60)
        self.client.wait_for_workers(2, timeout=120)

    def _start(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115
        p = subprocess.Popen([sys.executable, "-m", "dask", *args], env=self.env, stdout=log, stderr=log,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def close(self) -> None:
        self.client.close()
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def noop_partition(job: Any, spec: Any) -> dict[str, Any]:
    return {"part": spec.number, "status": "done"}


def scheduler_floor(cl: Cluster, items: list[Any], parts: int, size: int) -> dict[str, float]:
    """Scheduler CPU and wall per partition for no-op partitions of the real task shape."""
    from distributed import as_completed

    from assay.scan.dask_engine import plan
    from assay.scan.partitions import Job

    job = Job("noop", "/tmp/none", ScanSettings())
    specs = list(plan((items * (1 + parts * size // max(len(items), 1)))[: parts * size], size))
    c0, t0 = cpu_seconds(cl.scheduler.pid), time.perf_counter()
    window, inflight = 6, set()
    ac = as_completed()
    it = iter(specs)
    for _ in range(window):
        s = next(it, None)
        if s is not None:
            f = cl.client.submit(noop_partition, job, s, pure=False)
            inflight.add(f)
            ac.add(f)
    for f in ac:
        f.result()
        inflight.discard(f)
        s = next(it, None)
        if s is not None:
            g = cl.client.submit(noop_partition, job, s, pure=False)
            ac.add(g)
    wall = time.perf_counter() - t0
    return {"sched_cpu_per_part_ms": 1000 * (cpu_seconds(cl.scheduler.pid) - c0) / len(specs),
            "wall_per_part_ms": 1000 * wall / len(specs), "parts": len(specs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partition-size", type=int, default=128)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "assay-bench-distributed")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--throughput-only", action="store_true",
                    help="skip the scheduler floor, the kill -9 and the resume runs (a shorter run)")
    a = ap.parse_args()
    data = a.data / f"n{a.files}"
    t0 = time.perf_counter()
    originals = make_data(data, a.files)
    print(f"data: {a.files} images under {data} ({time.perf_counter() - t0:.1f} s to make or find)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="assay-bench-dist-"))
    db = f"sqlite:///{work / 'store.sqlite3'}"
    make_bank(db, originals)
    from assay.banks.matcher import Matcher
    from assay.banks.store import Store

    store = Store(db)
    matcher = Matcher(store)
    matcher.load()
    settings = ScanSettings(workers=2, lineage_db=db)
    images = data / "images"

    env = dict(os.environ, ASSAY_WORKER_CACHE=str(work / "cache"))
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    # as docs/distributed.md says: without the nanny's MALLOC_TRIM_THRESHOLD_ (2x CPU per file with it)
    env["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"] = '{"MALLOC_TRIM_THRESHOLD_": None}'
    moto = None
    s3_url = None
    if not a.no_s3:
        import fsspec

        port = free_port()
        moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                                 str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        os.environ.update(creds)
        env.update(creds, FSSPEC_S3=json.dumps({"endpoint_url": endpoint}))
        fsspec.config.conf["s3"] = {"endpoint_url": endpoint}
        fs = fsspec.filesystem("s3")
        fs.mkdir("bench")
        t0 = time.perf_counter()
        fs.put(str(images), "bench/images", recursive=True)
        s3_url = "s3://bench/images/"
        print(f"uploaded to loopback S3 in {time.perf_counter() - t0:.1f} s", flush=True)
    logs = work / "logs"
    logs.mkdir()
    cl = Cluster(env, logs)
    c0, t0 = cpu_seconds(cl.scheduler.pid), time.perf_counter()
    time.sleep(5)
    idle = (cpu_seconds(cl.scheduler.pid) - c0) / (time.perf_counter() - t0)  # its ticks, heartbeats
    print(f"scheduler idle: {1000 * idle:.1f} ms CPU per second", flush=True)
    rows: dict[str, list[float]] = {"local": [], "dask": [], "dask-s3": []}
    cpu_rows: dict[str, list[float]] = {"local": [], "dask": [], "dask-s3": []}
    sched: list[dict[str, float]] = []
    worker_cpu_per_file: list[float] = []
    try:
        # one unmeasured scan each: caches, imports, the bank snapshot on the workers
        run_dask_scan([str(images / "d00")], settings, matcher, str(work / "warm"), client=cl.client,
                      partition_size=a.partition_size)
        run_scan([images / "d00"], settings, matcher, lambda r: None)
        contenders = ["local", "dask"] + (["dask-s3"] if s3_url else [])
        for rnd in range(a.rounds):
            order = contenders if rnd % 2 == 0 else contenders[::-1]
            for name in order:
                out = work / f"out-{name}-{rnd}"
                wpids = cl.worker_pids()
                wc0 = sum(cpu_seconds(p) for p in wpids.values())
                c0 = cpu_seconds(cl.scheduler.pid)
                self0, kids0 = _rusage(resource.RUSAGE_SELF), _rusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                if name == "local":
                    from assay.report.jsonl import ReportWriter

                    with ReportWriter(out.with_suffix(".jsonl")) as w:
                        s = run_scan([images], settings, matcher, lambda r, w=w: w.write(r.to_json_dict()))
                else:
                    src = str(images) if name == "dask" else s3_url
                    s = run_dask_scan([src], settings, matcher, str(out), client=cl.client,
                                      partition_size=a.partition_size)
                wall = time.perf_counter() - t0
                rate = s.files / wall
                rows[name].append(rate)
                # CPU of every process of the engine: on a busy shared machine wall time depends on
                # how many runnable processes each engine has; CPU per file does not
                own = _rusage(resource.RUSAGE_SELF) - self0
                if name == "local":
                    cpu = own + _rusage(resource.RUSAGE_CHILDREN) - kids0  # the pool's workers, reaped
                else:
                    cpu = own + cpu_seconds(cl.scheduler.pid) - c0 + sum(cpu_seconds(p) for p in wpids.values()) - wc0
                cpu_rows[name].append(1000 * cpu / s.files)
                line = (f"round {rnd} {name:8s} {s.files} files {wall:7.1f} s {rate:7.1f} files/s "
                        f"CPU {1000 * cpu / s.files:.1f} ms/file matched {s.matched_files}")
                if name != "local":
                    parts = -(-a.files // a.partition_size)
                    sc = cpu_seconds(cl.scheduler.pid) - c0 - idle * wall  # above its idle ticking
                    wcpu = sum(cpu_seconds(p) for p in wpids.values()) - wc0
                    sched.append({"cpu_per_part_ms": 1000 * sc / parts, "cpu_per_file_us": 1e6 * sc / s.files,
                                  "worker_cpu_per_part_s": wcpu / parts})
                    worker_cpu_per_file.append(wcpu / s.files)
                    line += f" | scheduler CPU {sc:.2f} s ({1000 * sc / parts:.1f} ms/partition), workers CPU {wcpu:.1f} s"
                print(line, flush=True)
        med = {k: statistics.median(v) for k, v in rows.items() if v}
        ratios = [d / loc for d, loc in zip(rows["dask"], rows["local"], strict=True)]
        print(f"\nfiles/s medians: {json.dumps({k: round(v, 1) for k, v in med.items()})}")
        print(f"dask / local: median {statistics.median(ratios):.3f} (rounds {', '.join(f'{r:.3f}' for r in ratios)})")
        cr = [loc / d for d, loc in zip(cpu_rows["dask"], cpu_rows["local"], strict=True)]
        print(f"CPU per file (all processes of each engine), medians ms: "
              f"{json.dumps({k: round(statistics.median(v), 2) for k, v in cpu_rows.items() if v})}; "
              f"local/dask CPU ratio (>1: dask needs less) {statistics.median(cr):.3f}")
        if rows["dask-s3"]:
            r3 = [d / loc for d, loc in zip(rows["dask-s3"], rows["local"], strict=True)]
            print(f"dask from S3 / local from disk: median {statistics.median(r3):.3f} "
                  f"(rounds {', '.join(f'{r:.3f}' for r in r3)})")
        if a.throughput_only:
            return
        # scheduler overhead and the extrapolation
        cpp = statistics.median(x["cpu_per_part_ms"] for x in sched)
        wpp = statistics.median(x["worker_cpu_per_part_s"] for x in sched)
        floor = scheduler_floor(cl, [it for it in _items(images)][:2000], 400, a.partition_size)
        print(f"\nscheduler CPU (above idle) per partition of {a.partition_size} files during scans: median {cpp:.1f} ms "
              f"({1000 * cpp / a.partition_size:.1f} us per file); worker CPU per partition {wpp:.2f} s "
              f"-> scheduler = {100 * cpp / 1000 / wpp:.2f}% of the work")
        print(f"no-op partitions of the same shape: scheduler CPU {floor['sched_cpu_per_part_ms']:.2f} ms, "
              f"round trip {floor['wall_per_part_ms']:.2f} ms per partition ({floor['parts']} partitions)")
        per_worker_parts_s = 1 / wpp
        at100 = 100 * per_worker_parts_s * cpp / 1000
        print(f"100 workers: {100 * per_worker_parts_s:.1f} partitions/s -> scheduler busy {100 * at100:.1f}% "
              f"of one core; overhead stays {100 * cpp / 1000 / wpp:.2f}% of the work per partition")
        subset = images / "d00"  # kill and resume on a part of the set: correctness, not speed
        kill_and_resume(cl, subset, settings, matcher, work, 32, len(list(subset.iterdir())))
    finally:
        cl.close()
        if moto is not None:
            moto.terminate()


def _rusage(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _items(images: Path) -> list[Any]:
    from assay.scan.walk import walk

    return list(walk([images]))


def _counts(out: Path) -> Counter[str]:
    return Counter(r["path"] for r in read_records(str(out)))


def kill_and_resume(cl: Cluster, images: Path, settings: ScanSettings, matcher: Any, work: Path, size: int,
                    n: int) -> None:
    expected = {str(p) for p in images.rglob("*") if p.is_file()}
    address, victim = next(iter(cl.worker_pids().items()))
    killed: list[str] = []

    def kill(p: Any) -> None:
        if p.parts_done >= 5 and not killed:
            killed.extend(str(k) for k in cl.client.processing([address]).get(address, ()))
            os.kill(victim, signal.SIGKILL)

    out = work / "out-kill"
    t0 = time.perf_counter()
    s = run_dask_scan([str(images)], settings, matcher, str(out), client=cl.client, partition_size=size,
                      on_progress=kill)
    c = _counts(out)
    lost = len(expected - set(c))
    dup = sum(v - 1 for v in c.values() if v > 1)
    print(f"\nkill -9 of worker pid {victim} while it ran {killed}: scan finished in {time.perf_counter() - t0:.1f} s, "
          f"{s.files} files, lost {lost}, duplicated {dup}")
    cl.client.wait_for_workers(2, timeout=120)
    out = work / "out-resume"
    parts = -(-n // size)
    stop_at = max(1, int(parts * 0.4))

    def stop(p: Any) -> None:
        if p.parts_done >= stop_at:
            raise KeyboardInterrupt

    try:
        run_dask_scan([str(images)], settings, matcher, str(out), client=cl.client, partition_size=size,
                      on_progress=stop)
    except KeyboardInterrupt:
        pass
    end = time.monotonic() + 120
    while any(cl.client.processing().values()) and time.monotonic() < end:
        time.sleep(0.2)
    before = len(list((out / "_done").iterdir()))
    seen: list[Any] = []
    s = run_dask_scan([str(images)], settings, matcher, str(out), client=cl.client, partition_size=size,
                      resume=True, on_progress=seen.append)
    p = seen[-1]
    c = _counts(out)
    lost = len(expected - set(c))
    dup = sum(v - 1 for v in c.values() if v > 1)
    print(f"stop after {stop_at} of {parts} partitions ({before} finished, in-flight ones included), then --resume: "
          f"skipped {p.parts_skipped}, redid {p.parts_done}; {s.files} files, lost {lost}, duplicated {dup}")


if __name__ == "__main__":
    main()
