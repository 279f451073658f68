"""The service for real: `assay serve` with several workers on PostgreSQL.

- concurrent lookups while imports and deletions run: never a wrong or missing match
  for a committed entry, and every worker sees every write;
- kill -9 of the worker running a bulk import: the bank is as before, the service
  answers, the job is reported failed;
- database unreachable (a TCP proxy we stop): lookups keep answering from the loaded
  index, writes get 503, readiness says so; all recovers when it is back.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa

from assay.service.app import open_store
from assay.service.auth import create_key
from assay.service.settings import Settings
from service_helpers import TcpProxy, running

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _keys(db: str) -> tuple[str, str]:
    store = open_store(Settings(db=db))
    try:
        _, curate = create_key(store.engine, "curator", "curate")
        _, match = create_key(store.engine, "pipeline", "match")
    finally:
        store.close()
    return curate, match


def _hashes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def _wait_job(client: httpx.Client, location: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise TimeoutError(location)


def _every_worker_sees(url: str, key: str, value: str, expect: bool, workers: int, timeout: float = 30) -> None:
    """Each worker must answer ``expect``; one that disagrees starts the count again.

    Workers share one listening socket and the kernel hands a new connection to
    whichever worker is waiting in accept(): an idle worker can take every sequential
    connection while a busy one gets none. So each round opens several connections at
    once, which reaches the busy workers too."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout

    def ask(_: int) -> tuple[str, bool]:
        r = httpx.get(url + "/v1/lookup", params={"signal_type": "pdq", "value": value, "threshold": 0},
                      headers={"X-API-Key": key}, timeout=30)
        assert r.status_code == 200, r.text
        return r.headers["x-served-by"], bool(r.json()["matches"])

    with ThreadPoolExecutor(4 * workers) as pool:
        while len(seen) < workers:
            assert time.monotonic() < deadline, f"only workers {seen} agree on {value}: expected found={expect}"
            answers = list(pool.map(ask, range(4 * workers)))
            if all(found == expect for _, found in answers):
                seen |= {worker for worker, _ in answers}
            else:
                seen.clear()  # a worker disagreed: not yet propagated everywhere
                time.sleep(0.05)


def _every_worker_agrees(url: str, key: str, present: list[str], absent: list[str], workers: int,
                         timeout: float = 30) -> None:
    """Like _every_worker_sees, for many values at once in one batch lookup a connection."""
    want = {v: True for v in present} | {v: False for v in absent}
    body = {"signals": [{"id": v, "type": "pdq", "value": v} for v in want], "threshold": 0}
    seen: set[str] = set()
    deadline = time.monotonic() + timeout

    def ask(_: int) -> tuple[str, dict[str, bool]]:
        r = httpx.post(url + "/v1/lookup/batch", json=body, headers={"X-API-Key": key}, timeout=30)
        assert r.status_code == 200, r.text
        return r.headers["x-served-by"], {x["id"]: bool(x["matches"]) for x in r.json()["results"]}

    wrong: list[tuple[str, str]] = []
    with ThreadPoolExecutor(4 * workers) as pool:
        while len(seen) < workers:
            assert time.monotonic() < deadline, f"only workers {seen} agree; wrong (worker, value): {wrong[:5]}"
            answers = list(pool.map(ask, range(4 * workers)))
            wrong = [(w, v) for w, got in answers for v in want if got[v] != want[v]]
            if wrong:
                seen.clear()
                time.sleep(0.05)
            else:
                seen |= {worker for worker, _ in answers}


def test_concurrent_lookups_during_imports_and_deletions(pg_url: str, tmp_path: Path) -> None:
    curate, match = _keys(pg_url)
    stable = _hashes(200, 1)
    with running(pg_url, 2, tmp_path) as srv:
        cur = httpx.Client(base_url=srv.url, headers={"X-API-Key": curate}, timeout=30)
        assert cur.post("/v1/banks", json={"name": "stable"}).status_code == 201
        assert cur.post("/v1/banks", json={"name": "churn"}).status_code == 201
        r = cur.post("/v1/banks/stable/import", content="\n".join(stable).encode())
        assert _wait_job(cur, r.headers["location"])["status"] == "done"
        _every_worker_sees(srv.url, match, stable[-1], True, 2)

        stop = threading.Event()
        failures: list[str] = []
        lookups = [0]

        def lookup_loop(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=srv.url, headers={"X-API-Key": match}, timeout=30) as c:
                while not stop.is_set():
                    batch = rng.sample(stable, 20)
                    r = c.post("/v1/lookup/batch", json={
                        "signals": [{"id": v, "type": "pdq", "value": v} for v in batch], "threshold": 0})
                    if r.status_code != 200:
                        failures.append(f"status {r.status_code}: {r.text[:200]}")
                        continue
                    for item in r.json()["results"]:
                        got = {(m["bank"], m["content_id"]) for m in item["matches"]}
                        if got != {("stable", item["id"])}:
                            failures.append(f"{item['id']}: got {sorted(got)}")
                    lookups[0] += 1

        threads = [threading.Thread(target=lookup_loop, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        churned: list[str] = []
        removed: list[str] = []
        try:
            for round_ in range(3):
                batch = _hashes(1000, 100 + round_)
                r = cur.post("/v1/banks/churn/import", content="\n".join(batch).encode())
                assert _wait_job(cur, r.headers["location"])["status"] == "done"
                churned.extend(batch)
                gone = random.Random(round_).sample(churned, 20)
                for v in gone:
                    r = cur.delete(f"/v1/banks/churn/entries/{v}")
                    assert r.status_code == 204, r.text
                    churned.remove(v)
                removed.extend(gone)
                # this round's last addition and its last removal reach every worker
                _every_worker_sees(srv.url, match, next(v for v in reversed(batch) if v in churned), True, 2)
                _every_worker_sees(srv.url, match, gone[-1], False, 2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, failures[:5]
        assert lookups[0] > 10
        # Every removal of every round is gone, and what is left matches, on every worker.
        assert len(removed) == len(set(removed)) == 60
        _every_worker_agrees(srv.url, match, present=churned[::50], absent=removed, workers=2)
        stats = cur.get("/v1/banks/churn").json()
        assert stats["entries"] == len(churned) == 3000 - 60


def test_kill_9_during_bulk_import_leaves_bank_as_before(pg_url: str, tmp_path: Path) -> None:
    curate, match = _keys(pg_url)
    before = _hashes(100, 7)
    big = _hashes(20_000, 8)
    env = {"ASSAY_SERVICE_JOB_STALE_SECONDS": "2"}
    with running(pg_url, 2, tmp_path, **env) as srv:
        cur = httpx.Client(base_url=srv.url, headers={"X-API-Key": curate}, timeout=60)
        assert cur.post("/v1/banks", json={"name": "b"}).status_code == 201
        r = cur.post("/v1/banks/b/import", content="\n".join(before).encode())
        assert _wait_job(cur, r.headers["location"])["status"] == "done"

        # The gate: while we hold a lock on the audit log, the import inserts every entry
        # and then waits, inside its transaction, to write its audit row. So the kill
        # lands inside the transaction however fast or slow the machine is.
        gate = sa.create_engine(pg_url)
        held = gate.connect()
        held.begin()
        held.execute(sa.text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
        try:
            r = cur.post("/v1/banks/b/import", content="\n".join(big).encode())
            assert r.status_code == 202, r.text
            location = r.headers["location"]
            # autocommit: pg_stat_activity is a snapshot that holds for a whole transaction
            with gate.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
                _until(lambda: watch.execute(sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND l.relation = 'audit_log'::regclass "
                    "AND a.query ILIKE 'INSERT INTO audit_log%'")).scalar() == 1,
                       60, "the import never reached its audit row")
            job = cur.get(location).json()
            assert job["status"] == "running", job
            worker_pid = int(job["owner"].rsplit(":", 1)[1])
            assert worker_pid != srv.proc.pid
            os.kill(worker_pid, signal.SIGKILL)
        finally:
            held.rollback()  # the dead worker's backend now finds its client gone and rolls back
            held.close()
            gate.dispose()
        cur.close()  # its kept-alive connection may have belonged to the dead worker
        cur = httpx.Client(base_url=srv.url, headers={"X-API-Key": curate}, timeout=60,
                           limits=httpx.Limits(max_keepalive_connections=0))

        job = _wait_job(cur, location, timeout=60)
        assert job["status"] == "failed" and job["error"]["code"] == "interrupted"
        stats = cur.get("/v1/banks/b").json()
        assert stats["entries"] == len(before) and stats["signals"] == {"pdq": len(before)}
        for v in (big[0], big[len(big) // 2]):
            _every_worker_sees(srv.url, match, v, False, 1)
        _every_worker_sees(srv.url, match, before[0], True, 1)
        # The same import again succeeds (nothing half-written blocks it).
        r = cur.post("/v1/banks/b/import", content="\n".join(big[:1000]).encode())
        assert _wait_job(cur, r.headers["location"])["result"]["added_entries"] == 1000


def test_database_unreachable_lookups_keep_answering(pg_url: str, tmp_path: Path) -> None:
    curate, match = _keys(pg_url)
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    known = _hashes(50, 3)
    try:
        # LISTEN is tried again every 0.5 s (5 s by default) once the database is back
        env = {"ASSAY_SERVICE_REFRESH_INTERVAL": "0.2", "ASSAY_SERVICE_STORE_RETRY_SECONDS": "0.5"}
        with running(via_proxy, 1, tmp_path, **env) as srv:
            cur = httpx.Client(base_url=srv.url, headers={"X-API-Key": curate}, timeout=30)
            m = httpx.Client(base_url=srv.url, headers={"X-API-Key": match}, timeout=30)
            assert cur.post("/v1/banks", json={"name": "b"}).status_code == 201
            r = cur.post("/v1/banks/b/import", content="\n".join(known).encode())
            assert _wait_job(cur, r.headers["location"])["status"] == "done"
            for v in known:  # warm this worker's metadata cache
                assert m.get("/v1/lookup", params={"signal_type": "pdq", "value": v}).json()["matches"]
            _until(lambda: m.get("/ready").json()["store_notices"] is True, 15, "the worker never listened")

            proxy.stop()
            deadline = time.monotonic() + 15
            while m.get("/ready").status_code != 503:
                assert time.monotonic() < deadline, "readiness never noticed the database is gone"
                time.sleep(0.1)
            for v in known:
                r = m.get("/v1/lookup", params={"signal_type": "pdq", "value": v, "threshold": 0})
                assert r.status_code == 200 and [x["content_id"] for x in r.json()["matches"]] == [v]
            miss = _hashes(1, 99)[0]
            r = m.get("/v1/lookup", params={"signal_type": "pdq", "value": miss, "threshold": 0})
            assert r.status_code == 200 and r.json() == {"matches": []}
            r = cur.post("/v1/banks/b/entries", json={"content_id": "new", "signals": {"pdq": miss}})
            assert r.status_code == 503 and r.json()["error"]["code"] == "store-error"
            assert cur.post("/v1/banks", json={"name": "c"}).status_code == 503

            proxy.start()
            deadline = time.monotonic() + 30
            while m.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "never recovered"
                time.sleep(0.2)
            r = cur.post("/v1/banks/b/entries", json={"content_id": "new", "signals": {"pdq": miss}})
            assert r.status_code == 201, r.text
            _every_worker_sees(srv.url, match, miss, True, 1)
            _until(lambda: m.get("/ready").json()["store_notices"] is True, 30, "the worker never listened again")
    finally:
        proxy.close()


def _until(check: Callable[[], bool], seconds: float, failure: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, failure
        time.sleep(0.1)
