"""Hash exchanges: an initial fetch of N signals and an incremental fetch of changes,
through a loopback server that speaks NCMEC's hash-sharing API (tests/exchange_fakes.py,
entries generated on the fly, 1,000 per page as NCMEC pages them), driven by
python-threatexchange's real NCMEC client.

Side by side, in one run, each in its own process (CPU seconds and peak RSS of that
process; the server runs in this one):
  - assay: `assay exchange fetch` into a store (one transaction per page, checkpoint kept);
  - library: python-threatexchange's own way, as its CLI stores fetches: every update
    merged in memory (naive_fetch_merge), then converted to signals
    (naive_convert_to_signal_type); nothing persisted until the end (its CLI then pickles).
Then the incremental part (assay only): CHANGES updates (90% new entries, 10% deletions
of fetched ones) fetched into the store followed by two service workers' indexes
(LiveIndex, as `assay serve` runs them); the time from the fetch's last commit until
every change is visible on both workers.

    python bench/bench_exchange.py --n 1000000 --changes 1000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from exchange_fakes import NcmecEntry, NcmecServer  # noqa: E402

PER_SECOND = 1000  # entries per second of NCMEC time: one full page per 1 s window


def pdq_of(i: int) -> str:
    return hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).hexdigest()


class SyntheticNcmec(NcmecServer):
    """N image entries (one PDQ each) at t0 + i // PER_SECOND, made when asked for, plus
    ``extra`` entries (changes) at later times."""

    def __init__(self, n: int, t0: int) -> None:
        super().__init__([], page_size=1000)
        self.n, self.t0 = n, t0
        self.extra: list[NcmecEntry] = []

    def select(self, lo: int, hi: int, offset: int, size: int) -> tuple[list[NcmecEntry], int]:
        a = max(0, (lo - self.t0) * PER_SECOND)
        b = min(self.n, max(0, (hi - self.t0) * PER_SECOND))
        synth = max(0, b - a)
        extra = [e for e in self.extra if lo <= e.timestamp < hi]
        out: list[NcmecEntry] = []
        for i in range(a + offset, min(b, a + offset + size)):
            out.append(NcmecEntry(f"e{i}", 42, self.t0 + i // PER_SECOND, "image", {"pdq": pdq_of(i)}))
        rest = offset + len(out) - synth
        if len(out) < size:
            out += extra[max(0, rest):max(0, rest) + size - len(out)]
        return out, synth + len(extra)


def _usage() -> dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": r.ru_utime + r.ru_stime, "peak_rss_mb": r.ru_maxrss / 1024}


def child_assay(db: str, base: str) -> dict[str, Any]:
    from assay.banks.store import Store
    from assay.exchanges import config as cfg
    from assay.exchanges.fetch import fetch

    with Store(db) as store:
        store.create_bank("ncmec")
        cfg.add(store, "nc", "ncmec", "ncmec", {"base_url": base})
        started = time.perf_counter()
        r = fetch(store, "nc")
        wall = time.perf_counter() - started
        signals = sum(store.stats("ncmec").signals.values())
    return {"wall_s": wall, "pages": r.pages, "added": r.added, "signals": signals, **_usage()}


def child_library(base: str) -> dict[str, Any]:
    from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment
    from threatexchange.exchanges.impl.ncmec_api import NCMECCollabConfig, NCMECSignalExchangeAPI
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    class API(NCMECSignalExchangeAPI):
        def get_client(self, environment: Any) -> Any:
            client = super().get_client(environment)
            client._base_url = base
            return client

    collab = NCMECCollabConfig(name="nc", environment=NCMECEnvironment.test_Industry)
    api = API(collab, "user", "pw")
    started = time.perf_counter()
    state: dict[str, Any] = {}
    pages = 0
    for delta in api.fetch_iter([PdqSignal], None):
        API.naive_fetch_merge(state, delta.updates)
        pages += 1
    converted = API.naive_convert_to_signal_type([PdqSignal, VideoMD5Signal], collab, state)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "pages": pages, "added": len(state),
            "signals": sum(len(v) for v in converted.values()), **_usage()}


def _run_child(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ASSAY_EXCHANGE_NC_CREDENTIALS": "user:pw"}
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"child {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def incremental(db: str, srv: SyntheticNcmec, changes: int, tmp: Path) -> dict[str, Any]:
    from assay.banks.matcher import Query
    from assay.banks.store import Store
    from assay.exchanges.fetch import fetch
    from assay.service.matching import LiveIndex

    os.environ["ASSAY_EXCHANGE_NC_CREDENTIALS"] = "user:pw"
    workers = [LiveIndex(Store(db), interval=0.15, snapshot_dir=tmp / f"snap{i}") for i in range(2)]
    for w in workers:
        w.load()
        w.start()
    try:
        ts = int(time.time()) - 6  # after the first fetch's end (its start - 5 s), before this one's
        n_del = changes // 10
        new = [NcmecEntry(f"n{i}", 42, ts, "image", {"pdq": pdq_of(10**9 + i)}) for i in range(changes - n_del)]
        gone = [NcmecEntry(f"e{i}", 42, ts, "image", deleted=True) for i in range(n_del)]
        srv.extra = new + gone
        commits: list[float] = []
        with Store(db) as store:
            started = time.perf_counter()
            r = fetch(store, "nc", on_commit=lambda _r: commits.append(time.perf_counter()))
            fetch_s = time.perf_counter() - started
        committed = commits[-1]
        new_q = [Query("pdq", e.fingerprints["pdq"]) for e in new]
        gone_q = [Query("pdq", pdq_of(i)) for i in range(n_del)]
        seen: list[float] = []
        for w in workers:
            while True:
                hits = {m.value for m in w.lookup(new_q, 0, False)}
                stale = w.lookup(gone_q, 0, False)
                if len(hits) == len(new_q) and not stale:
                    seen.append(time.perf_counter())
                    break
                if time.perf_counter() - committed > 30:
                    raise SystemExit("changes not visible on a worker within 30 s")
                time.sleep(0.005)
        return {"fetch_s": fetch_s, "pages": r.pages, "added": r.added, "removed": r.removed,
                "visible_after_commit_s": [round(t - committed, 3) for t in seen]}
    finally:
        for w in workers:
            w.stop()
            w.store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--db", default="", help="store URL (default: a new SQLite file)")
    ap.add_argument("--child", choices=["assay", "library"], help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--skip-library", action="store_true")
    a = ap.parse_args()
    if a.child == "assay":
        print(json.dumps(child_assay(a.db, a.base)))
        return
    if a.child == "library":
        print(json.dumps(child_library(a.base)))
        return
    span = (a.n + PER_SECOND - 1) // PER_SECOND
    t0 = int(time.time()) - span - 3600
    with tempfile.TemporaryDirectory() as d, SyntheticNcmec(a.n, t0) as srv:
        db = a.db or f"sqlite:///{d}/bench.sqlite3"
        results: dict[str, Any] = {"n": a.n, "changes": a.changes, "store": db.split(":")[0]}
        results["assay"] = _run_child(["--child", "assay", "--db", db, "--base", srv.base])
        if not a.skip_library:
            results["library"] = _run_child(["--child", "library", "--base", srv.base])
            results["ratio_wall_assay_over_library"] = round(results["assay"]["wall_s"] / results["library"]["wall_s"], 2)
            results["ratio_rss_assay_over_library"] = round(
                results["assay"]["peak_rss_mb"] / results["library"]["peak_rss_mb"], 2)
        results["incremental"] = incremental(db, srv, a.changes, Path(d))
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
