"""`assay serve` under load: a 1M-hash PDQ bank, 2 workers, a load generator in a
second process on loopback (a small asyncio HTTP/1.1 client with keep-alive).

Measured, each as the median of --repeats runs of --seconds:
  - single lookups (GET /v1/lookup): requests/s, p50/p99 latency, in a closed loop (32
    connections, each sending as soon as its answer is in: the most the server does) and
    in an open loop offering --rate requests/s (latency from when each request was due);
  - batch lookups of 100 signals (POST /v1/lookup/batch): signals/s, p50/p99;
  - hash-and-look-up of 1-MP JPEG uploads (POST /v1/match): uploads/s, p50/p99;
  - the time for an added entry to be matchable on every worker;
  - start-up time to /ready (cold: index built from the store; warm: snapshot), and the
    resident memory of the server's processes once ready (mapped snapshot pages that
    workers share are counted in each).
``--startup-only`` measures just the start-ups (for --n 10000000; pass --db PATH to keep
the store between runs: an existing bank "big" is reused, not imported again).
Each bomb phase also gives the server's CPU seconds (its processes, bombs and lookups
together), a figure that other load on the machine does not inflate; run it with
``ASSAY_SERVICE_UPLOAD_REFUSAL_LIMIT=0`` in the environment for the service without the
penalty of callers whose uploads keep being refused.
``--propagation-only`` measures just the add -> matchable time (``--rounds`` adds); with
``--db`` a PostgreSQL URL it measures the store the service is meant to run on there, e.g.
``--db 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench'``
(a schema of its own; the bench creates it if missing and leaves it for reuse).
  - bomb uploads: 4 clients of one key sending, back to back, a 20 KB 1-bit PNG of
    13000 x 13000 pixels (169 MP) to /h/hash, then (another key) a 7000 x 7000 one (49 MP,
    within the default pixel budget, so really decoded), while single lookups are offered at
    --rate/s: status codes, lookup p50/p99 meanwhile, and each worker's peak resident
    memory during the phase (VmHWM, reset before it through /proc/PID/clear_refs).
Side by side (same run, same machine): HMA's matcher core, python-threatexchange's
PDQ index (faiss, what HMA loads in each worker), answering the same single lookups
in-process without any HTTP: an upper bound of what HMA can serve. It runs with the
same number of cores as the server: one process per worker, each with its own index
(as HMA's workers each load it) and one faiss thread, all at once, interleaved with
assay's runs (each repeat: assay's loads, then the peer's, the server idle meanwhile).

    .venv/bin/python bench/bench_service.py --n 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

SERVE = "import sys, typer; from assay.service.cli import serve; typer.run(serve)"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- load generator (runs in its own process) ---------------------------------------------
async def _conn_loop(port: int, requests: list[bytes], deadline: float, lat: list[float], errors: list[int],
                     interval: float = 0.0) -> None:
    """Closed loop (interval 0): the next request leaves when the answer is in. Open loop
    (interval > 0): requests are due every ``interval`` seconds and latency counts from
    when a request was due, so a slow answer also delays (and is charged to) the ones
    queued behind it (no coordinated omission)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = random.randrange(len(requests))
    due = time.perf_counter() + random.random() * interval
    while time.perf_counter() < deadline:
        req = requests[i % len(requests)]
        i += 1
        if interval:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            t0 = due
            due += interval
        else:
            t0 = time.perf_counter()
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        lat.append(time.perf_counter() - t0)
        if status != 200:
            errors.append(status)
    writer.close()


def _client(port: int, requests: list[bytes], seconds: float, conns: int, out: mp.Queue, rate: float = 0.0) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    lat: list[float] = []
    errors: list[int] = []

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        interval = conns / rate if rate else 0.0
        await asyncio.gather(*(_conn_loop(port, requests, deadline, lat, errors, interval) for _ in range(conns)))

    t0 = time.perf_counter()
    try:
        asyncio.run(main())
    except Exception as exc:  # report, never leave the parent waiting
        out.put((0, 1.0, [], [repr(exc)], 1))
        return
    out.put((len(lat), time.perf_counter() - t0, sorted(lat), errors[:5], len(errors)))


def _jitter(seconds: float, out: mp.Queue) -> None:
    """How late a process that sleeps 2 ms at a time wakes up: the scheduling delay
    any request on this machine pays at that moment, before Python does anything."""
    late: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(0.002)
        late.append(time.perf_counter() - t0 - 0.002)
    late.sort()
    out.put({"p50": late[len(late) // 2] * 1000, "p99": late[int(len(late) * 0.99)] * 1000, "rps": 0.0})


def jitter(seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_jitter, args=(seconds, q))
    p.start()
    r = q.get(timeout=seconds + 120)
    p.join()
    return r


def load(port: int, requests: list[bytes], seconds: float, conns: int, rate: float = 0.0) -> dict[str, float]:
    """Closed loop over ``conns`` connections, or an open loop offering ``rate`` requests/s."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_client, args=(port, requests, seconds, conns, q, rate))
    p.start()
    n, wall, lat, errs, nerr = q.get(timeout=seconds + 120)
    p.join()
    if nerr:
        raise SystemExit(f"{nerr} non-200 answers, e.g. {errs}")
    return {"rps": n / wall, "p50": lat[len(lat) // 2] * 1000, "p99": lat[int(len(lat) * 0.99)] * 1000}


def http_request(method: str, path: str, key: str, body: bytes = b"", ctype: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
    if body:
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# -- set-up ---------------------------------------------------------------------------------
def ensure_pg_schema(db: str) -> None:
    """Create the schema a PostgreSQL URL's search_path names, if it is missing."""
    import re
    from urllib.parse import unquote

    import sqlalchemy as sa

    if not db.startswith("postgresql"):
        return
    url = sa.make_url(db)
    m = re.search(r"search_path=([A-Za-z0-9_]+)", unquote(str(url.query.get("options", ""))))
    if m is None:
        return
    engine = sa.create_engine(url.difference_update_query(["options"]).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{m.group(1)}"'))
    engine.dispose()


def build_store(db: str, n: int) -> list[str]:
    from assay.banks.store import ImportRecord
    from assay.service.app import open_store
    from assay.service.settings import Settings

    ensure_pg_schema(db)
    rng = random.Random(1)
    store = open_store(Settings(db=db))
    values = [f"{rng.getrandbits(256):064x}" for _ in range(n)]
    if any(b.name == "big" for b in store.list_banks()):
        print(f"reusing bank 'big' in {db}", flush=True)
        store.close()
        return values
    store.create_bank("big")
    t0 = time.perf_counter()
    store.import_records("big", (ImportRecord(v, (("pdq", v),)) for v in values), "bench")
    print(f"imported {n:,} PDQ hashes in {time.perf_counter() - t0:.1f} s", flush=True)
    store.close()
    return values


def make_key(db: str, role: str) -> str:
    from assay.service.app import open_store
    from assay.service.auth import create_key
    from assay.service.settings import Settings

    store = open_store(Settings(db=db))
    try:
        return create_key(store.engine, f"bench-{role}-{uuid.uuid4().hex[:6]}", role, rate_limit=1e9)[1]
    finally:
        store.close()


def start_server(db: str, port: int, workers: int, data_dir: str,
                 heavy_decoder: str = "process") -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "ASSAY_DATA_DIR": data_dir, "ASSAY_SERVICE_HEAVY_DECODER": heavy_decoder}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--port", str(port), "--workers", str(workers), "--db", db,
         "--no-access-log", "--rate-limit", "1e9"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(Path(data_dir).parent / "server.log", "a"))  # noqa: SIM115
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("server died at start-up")
        time.sleep(0.05)
    return proc, time.perf_counter() - t0


def tree_rss_mb(pid: int) -> float:
    """Resident MB of a process and its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants (Linux /proc):
    the server's cost of a phase, which other load on the machine does not inflate."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def jpeg_1mp(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1000, 0:1000]
    img = np.stack([(x * (seed + 1) // 7) % 256, (y // 3) % 256, ((x ^ y) // 5) % 256], -1).astype(np.uint8)
    img = (img + rng.integers(0, 8, img.shape, dtype=np.uint8)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(data: bytes) -> tuple[bytes, str]:
    b = "benchboundary7e3"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def flip(value: str, bits: int, rng: random.Random) -> str:
    n = int(value, 16)
    for b in rng.sample(range(256), bits):
        n ^= 1 << b
    return f"{n:064x}"


def worker_clients(port: int, key: str, workers: int) -> list[httpx.Client]:
    """One keep-alive connection per worker. A connection stays with the worker that
    accepted it, and which one does is the kernel's choice: open connections (held, so
    that each new one is a new accept) until every worker (X-Served-By) has one."""
    by_worker: dict[str, httpx.Client] = {}
    spare: list[httpx.Client] = []
    for _ in range(400):
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key},
                         limits=httpx.Limits(max_connections=1), timeout=60)
        pid = c.get("/status").headers["x-served-by"]
        if pid in by_worker:
            spare.append(c)
        else:
            by_worker[pid] = c
        if len(by_worker) == workers:
            break
    for c in spare:
        c.close()
    if len(by_worker) < workers:
        raise SystemExit(f"reached only workers {sorted(by_worker)} of {workers}")
    return list(by_worker.values())


def propagation(port: int, curate: str, match: str, workers: int, rounds: int) -> list[float]:
    """Seconds from the add's answer until every worker (seen via X-Served-By) matches it,
    asking each worker in turn on its own kept-alive connection (new connections would
    measure which worker the kernel hands them to rather than the propagation)."""
    rng = random.Random()  # fresh hashes each run: a reused store must not hold them already
    out = []
    clients = worker_clients(port, match, workers)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": curate}, timeout=60) as cur:
        for _ in range(rounds):
            v = f"{rng.getrandbits(256):064x}"
            r = cur.post("/v1/banks/big/entries", json={"content_id": "prop-" + v[:16], "signals": {"pdq": v}})
            assert r.status_code == 201, r.text
            t0 = time.perf_counter()
            seen: set[str] = set()
            while len(seen) < workers:
                answered: set[str] = set()
                for c in clients:
                    rr = c.get("/v1/lookup", params={"signal_type": "pdq", "value": v, "threshold": 0})
                    answered.add(rr.headers["x-served-by"])
                    if rr.json()["matches"]:
                        seen.add(rr.headers["x-served-by"])
                if len(answered) < workers:
                    # A kept-alive connection closed by the idle timeout (a loaded machine)
                    # came back on the other worker's socket: take one per worker again.
                    for c in clients:
                        c.close()
                    clients = worker_clients(port, match, workers)
            out.append(time.perf_counter() - t0)
            time.sleep(0.2 + 0.3 * rng.random())  # not in step with the workers' polling
    for c in clients:
        c.close()
    return out


def _peer_process(n: int, queries: list[str], conn) -> None:  # noqa: ANN001 - a Connection
    """One HMA worker's index: python-threatexchange's PDQIndex over the same bank, one
    faiss thread; on each "go" it answers queries for the given seconds and reports
    how many (the bank is regenerated here from the seed: nothing big crosses a pipe)."""
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex
    except ImportError as exc:
        conn.send(("unavailable", repr(exc)))
        return
    rng = random.Random(1)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(n)]
    t0 = time.perf_counter()
    index = PDQIndex.build([(v, i) for i, v in enumerate(values)])
    del values
    conn.send(("built", time.perf_counter() - t0))
    i = random.randrange(len(queries))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        start_at, seconds = msg
        while time.time() < start_at:  # every process starts at once
            time.sleep(0.001)
        done = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            index.query(queries[i % len(queries)])
            i += 1
            done += 1
        conn.send(("ran", done / (time.perf_counter() - t0)))


class HmaPeer:
    """``procs`` processes, each with its own PDQIndex: HMA with one worker per core."""

    def __init__(self, n: int, queries: list[str], procs: int) -> None:
        ctx = mp.get_context("spawn")
        self.conns = []
        self.procs = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_peer_process, args=(n, queries, child), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        answers = [c.recv() for c in self.conns]
        self.available = all(a[0] == "built" for a in answers)
        self.build_seconds = max(a[1] for a in answers) if self.available else 0.0
        if not self.available:
            print(f"HMA peer unavailable: {answers[0][1]}", flush=True)

    def run(self, seconds: float) -> float:
        """Lookups/s of all processes together, over the same ``seconds``."""
        start_at = time.time() + 0.2
        for c in self.conns:
            c.send((start_at, seconds))
        return sum(c.recv()[1] for c in self.conns)

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except OSError:
                pass
        for p in self.procs:
            p.join(10)


# -- bomb uploads ---------------------------------------------------------------------------
def bomb_png(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side), 0).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _bomb_client(port: int, key: str, payload: bytes, seconds: float, clients: int, out: mp.Queue) -> None:
    """``clients`` threads, each sending the payload to /h/hash back to back."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    deadline = time.perf_counter() + seconds
    codes: Counter[int] = Counter()

    def send(_: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=300) as c:
            while time.perf_counter() < deadline:
                try:
                    r = c.post("/h/hash", files={"photo": ("bomb.png", payload, "image/png")})
                    codes[r.status_code] += 1
                    if r.status_code in (429, 503):  # as a client honouring Retry-After would, but impatient
                        time.sleep(0.05)
                except httpx.HTTPError as exc:
                    codes[type(exc).__name__] += 1  # type: ignore[index]

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(clients)))
    out.put(dict(codes))


def worker_pids(port: int, admin: str, workers: int) -> list[int]:
    pids: set[int] = set()
    for _ in range(400):
        r = httpx.get(f"http://127.0.0.1:{port}/v1/limits", headers={"X-API-Key": admin}, timeout=30)
        pids.add(r.json()["worker"])
        if len(pids) == workers:
            return sorted(pids)
    raise SystemExit(f"reached only workers {sorted(pids)} of {workers}")


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def bomb_phase(port: int, admin: str, bomber: str, single: list[bytes], workers: int, payload: bytes,
               seconds: float, rate: float, server_pid: int) -> dict[str, object]:
    """Bombs from 4 clients while single lookups are offered at ``rate``/s: status codes,
    lookup latency meanwhile, each worker's peak RSS during the phase."""
    pids = worker_pids(port, admin, workers)
    helpers = [c for pid in pids for c in children(pid)]  # decoder processes (and their resource tracker)
    for pid in pids + helpers:  # VmHWM := VmRSS now, so the peak is this phase's
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_bomb_client, args=(port, bomber, payload, seconds + 1, 4, q))
    p.start()
    time.sleep(1)  # the bombs are in flight before the lookups start
    cpu0 = tree_cpu_s(server_pid)
    lookups = load(port, single, seconds, 64, rate=rate)
    lookups["server_cpu_s"] = tree_cpu_s(server_pid) - cpu0
    codes = q.get(timeout=seconds + 600)
    p.join()
    peaks = {pid: _status_kb(pid, "VmHWM") / 1024 for pid in pids}
    after = {pid: _status_kb(pid, "VmRSS") / 1024 for pid in pids}
    helper_peaks = {pid: _status_kb(pid, "VmHWM") / 1024 for pid in helpers}
    return {"codes": codes, "lookups": lookups, "peak_mb": peaks, "rss_after_mb": after,
            "decoder_peak_mb": helper_peaks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--db", default="", help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-bombs", action="store_true", help="skip the bomb-upload phases")
    ap.add_argument("--rate", type=float, default=2000, help="offered single lookups/s for the open-loop run")
    ap.add_argument("--startup-only", action="store_true", help="measure only cold and warm start-up")
    ap.add_argument("--propagation-only", action="store_true", help="measure only add -> matchable on every worker")
    ap.add_argument("--rounds", type=int, default=10, help="adds for the propagation measurement")
    ap.add_argument("--heavy-decoder", choices=("process", "thread"), default="process",
                    help="where the server runs heavy decodes (ASSAY_SERVICE_HEAVY_DECODER)")
    ap.add_argument("--bombs-only", action="store_true",
                    help="only the floor, the lookups at --rate without bombs and the bomb phases")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-service-")
    db = args.db or str(Path(tmp) / "bank.db")
    values = build_store(db, args.n)
    if args.startup_only:
        data_dir = str(Path(tmp) / "data")
        for kind in ("cold", "warm", "warm"):
            proc, t = start_server(db, free_port(), args.workers, data_dir)
            time.sleep(1)
            rss = tree_rss_mb(proc.pid)
            proc.terminate()
            proc.wait()
            print(f"bank {args.n:,} PDQ, {args.workers} workers: start-up to /ready {kind} {t:.1f} s, "
                  f"server RSS {rss:,.0f} MB", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    curate, match = make_key(db, "curate"), make_key(db, "match")
    if args.propagation_only:
        port = free_port()
        proc, _ = start_server(db, port, args.workers, str(Path(tmp) / "data"))
        try:
            prop = propagation(port, curate, match, args.workers, args.rounds)
        finally:
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"bank {args.n:,} PDQ, {args.workers} workers, {args.rounds} adds: add -> matchable on all workers: "
              f"median {statistics.median(prop) * 1000:.0f} ms, max {max(prop) * 1000:.0f} ms")
        return
    rng = random.Random(3)
    # 1 query in 10 has a planted neighbour (distance 0..20); the rest are misses, like an upload stream
    queries = [flip(rng.choice(values), rng.randrange(21), rng) if i % 10 == 0 else f"{rng.getrandbits(256):064x}"
               for i in range(5000)]

    peer = None if args.no_baseline else HmaPeer(args.n, queries, args.workers)
    if peer is not None and not peer.available:
        peer = None
    admin = make_key(db, "admin")
    # One key per bomb phase: the 169-MP flood gets its key penalised for its refusals
    # (docs/service.md), which would otherwise hold back the 49-MP phase after it.
    bombers = {side: make_key(db, "match") for side in (13000, 7000)}
    port = free_port()
    data_dir = str(Path(tmp) / "data")
    proc, cold = start_server(db, port, args.workers, data_dir, args.heavy_decoder)
    results: dict[str, list[dict[str, float]]] = {"single": [], "single_at_rate": [], "batch100": [], "upload": [],
                                                  "floor_at_rate": [], "jitter": []}
    peer_rps: list[float] = []
    bombs: dict[str, dict[str, object]] = {}
    try:
        single = [http_request("GET", f"/v1/lookup?signal_type=pdq&value={q}", match) for q in queries]
        import orjson

        batches = []
        for i in range(0, len(queries) - 100, 100):
            body = orjson.dumps({"signals": [{"type": "pdq", "value": q} for q in queries[i:i + 100]]})
            batches.append(http_request("POST", "/v1/lookup/batch", match, body, "application/json"))
        uploads = []
        for s in range(8):
            body, ctype = multipart(jpeg_1mp(s))
            uploads.append(http_request("POST", "/v1/match", match, body, ctype))
        # The floor: the cheapest route of the same server (no key, no index, no body),
        # offered at the same rate: what HTTP on this machine costs before any lookup.
        floor = [b"GET /status/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]
        load(port, single, 2, 16)  # warm-up
        for _ in range(args.repeats):
            results["jitter"].append(jitter(args.seconds))
            results["floor_at_rate"].append(load(port, floor, args.seconds, 64, rate=args.rate))
            cpu0 = tree_cpu_s(proc.pid)
            results["single_at_rate"].append(load(port, single, args.seconds, 64, rate=args.rate))
            results["single_at_rate"][-1]["server_cpu_s"] = tree_cpu_s(proc.pid) - cpu0
            if args.bombs_only:
                continue
            results["single"].append(load(port, single, args.seconds, 32))
            results["batch100"].append(load(port, batches, args.seconds, 4))
            results["upload"].append(load(port, uploads, args.seconds, 4))
            if peer is not None:  # interleaved: the same minutes of the shared machine
                peer_rps.append(peer.run(args.seconds))
        prop = [] if args.bombs_only else propagation(port, curate, match, args.workers, 10)
        if not args.no_bombs:
            for name, side in (("169 MP", 13000), ("49 MP", 7000)):
                bombs[name] = bomb_phase(port, admin, bombers[side], single, args.workers, bomb_png(side),
                                         args.seconds, args.rate, proc.pid)
    finally:
        proc.terminate()
        proc.wait()
        if peer is not None:
            peer.close()
    proc, warm = start_server(db, free_port(), args.workers, data_dir)
    proc.terminate()
    proc.wait()
    if not args.db:
        shutil.rmtree(tmp, ignore_errors=True)  # ~0.5 GB of store and snapshot at 1M

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind]) if results[kind] else float("nan")

    def runs(kind: str) -> str:
        return ", ".join(f"{r['p99']:.1f}" for r in results[kind])

    print(f"\nbank {args.n:,} PDQ, {args.workers} workers, heavy decoder: {args.heavy_decoder}, load generator "
          f"in a second process, medians of {args.repeats} x {args.seconds:g} s; penalty for refused uploads: "
          f"{os.environ.get('ASSAY_SERVICE_UPLOAD_REFUSAL_LIMIT', 'default')} refusals "
          f"(ASSAY_SERVICE_UPLOAD_REFUSAL_LIMIT; 0 = off)")
    print(f"machine floor: a process sleeping 2 ms at a time wakes late by p50 {med('jitter', 'p50'):.2f} ms, "
          f"p99 {med('jitter', 'p99'):.2f} ms (runs: {runs('jitter')})")
    print(f"floor: GET /status/live at {args.rate:g}/s offered (open loop, 64 connections): "
          f"{med('floor_at_rate', 'rps'):8.0f} req/s   p50 {med('floor_at_rate', 'p50'):.1f} ms  "
          f"p99 {med('floor_at_rate', 'p99'):.1f} ms (runs: "
          f"{runs('floor_at_rate')})")
    print(f"single at {args.rate:g}/s offered (open loop, 64 connections): {med('single_at_rate', 'rps'):8.0f} req/s   "
          f"p50 {med('single_at_rate', 'p50'):.1f} ms  p99 {med('single_at_rate', 'p99'):.1f} ms (runs: "
          f"{runs('single_at_rate')}); server CPU {med('single_at_rate', 'server_cpu_s'):.2f} s a run")
    print(f"single lookups : {med('single', 'rps'):8.0f} req/s   p50 {med('single', 'p50'):.1f} ms  p99 {med('single', 'p99'):.1f} ms")
    print(f"batch of 100   : {med('batch100', 'rps') * 100:8.0f} signals/s ({med('batch100', 'rps'):.0f} req/s)  "
          f"p50 {med('batch100', 'p50'):.1f} ms  p99 {med('batch100', 'p99'):.1f} ms")
    print(f"1-MP JPEG match: {med('upload', 'rps'):8.0f} uploads/s  p50 {med('upload', 'p50'):.1f} ms  p99 {med('upload', 'p99'):.1f} ms")
    if prop:
        print(f"add -> matchable on all workers: median {statistics.median(prop) * 1000:.0f} ms, "
              f"max {max(prop) * 1000:.0f} ms")
    print(f"start-up to /ready: cold {cold:.1f} s, warm (snapshot) {warm:.1f} s")
    for name, b in bombs.items():
        lk = b["lookups"]
        peaks = ", ".join(f"{v:.0f}" for v in b["peak_mb"].values())  # type: ignore[union-attr]
        after = ", ".join(f"{v:.0f}" for v in b["rss_after_mb"].values())  # type: ignore[union-attr]
        helpers = ", ".join(f"{v:.0f}" for v in b["decoder_peak_mb"].values())  # type: ignore[union-attr]
        print(f"{name} 1-bit PNG bombs, 4 clients of one key on /h/hash for {args.seconds:g} s: answers {b['codes']}; "
              f"single lookups meanwhile at {args.rate:g}/s offered: {lk['rps']:.0f} req/s "  # type: ignore[index]
              f"p50 {lk['p50']:.1f} ms p99 {lk['p99']:.1f} ms; server CPU {lk['server_cpu_s']:.2f} s "  # type: ignore[index]
              f"(bombs and lookups); peak RSS per worker {peaks} MB, "
              f"RSS after {after} MB; peak RSS of the workers' child processes (decoders, resource "
              f"trackers) {helpers or 'none'} MB")
    if peer is not None and peer_rps:
        te = statistics.median(peer_rps)
        print(f"threatexchange PDQIndex (HMA's index), {args.workers} processes (one per worker, one faiss "
              f"thread each), in-process, no HTTP, interleaved with the runs above (build "
              f"{peer.build_seconds:.1f} s): {te:.0f} lookups/s (runs: {', '.join(f'{r:.0f}' for r in peer_rps)}) "
              f"-> assay over HTTP is {med('single', 'rps') / te:.2f}x")


if __name__ == "__main__":
    main()
