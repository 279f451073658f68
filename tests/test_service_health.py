"""Health of a real 2-worker `assay serve` while its store fails, on SQLite and on
PostgreSQL: HMA's /status says INDEX-NOT-LOADED while the workers load their index and
INDEX-STALE once they cannot follow the store; a 503 store-error shows the store's
location to admin keys only. Faults come from tests/faults (a sitecustomize on the
server's PYTHONPATH that fails or holds SQL statements while a flag file exists), so
they work on SQLite too, where no network can be cut (the PostgreSQL-only test in
test_service_outage.py cuts a real TCP connection)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service_cluster import KINDS, Cluster, make_keys
from service_helpers import Server, running, store_error_views, store_location_markers

FAULTS = Path(__file__).parent / "faults"


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'banks.sqlite3'}"
        return
    from conftest import pg_schema

    with pg_schema() as url:
        yield url


def fault_env(flags: Path, **env: str) -> dict[str, str]:
    flags.mkdir(exist_ok=True)
    path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH", "")) if p)
    return {"ASSAY_TEST_FAULTS": str(flags), "PYTHONPATH": path, **env}


def answers_everywhere(c: Cluster, path: str, want: tuple[int, str], headers: dict[str, str] | None = None,
                       timeout: float = 60) -> None:
    def ask(client: httpx.Client) -> tuple[str, bool]:
        r = client.get(path, headers=headers)
        return r.headers["x-served-by"], (r.status_code, r.text) == want or \
            (want[1] == "" and r.status_code == want[0])
    c.on_every_worker(ask, timeout=timeout)


LOOKUP = {"signal_type": "md5", "value": "0" * 32}


def wait_up(server: Server, timeout: float = 60) -> None:
    """Until the server accepts connections (liveness), not until it is ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(server.url + "/status/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and server.proc.poll() is None, server.output()
        time.sleep(0.1)


def test_status_says_index_not_loaded_until_the_index_loads(db: str, tmp_path: Path) -> None:
    """Workers whose index cannot be read at start answer anyway, saying so: /status 503
    INDEX-NOT-LOADED (HMA), /ready 503 with index_loaded false, lookups 503 busy with
    Retry-After, liveness 200; they try again, and once the load goes through,
    I-AM-ALIVE and lookups answer."""
    keys = make_keys(db)
    flags = tmp_path / "flags"
    env = fault_env(flags, ASSAY_SERVICE_REFRESH_INTERVAL="0.05", ASSAY_SERVICE_STORE_RETRY_SECONDS="0.2")
    (flags / "index-fail").touch()
    server = Server(db, 2, tmp_path, **env)
    try:
        c = Cluster(server, db, keys, 2)
        wait_up(server)
        answers_everywhere(c, "/status", (503, "INDEX-NOT-LOADED"))
        assert httpx.get(server.url + "/status/live", timeout=30).text == "I-AM-ALIVE"
        r = httpx.get(server.url + "/ready", timeout=30)
        assert r.status_code == 503 and r.json()["index_loaded"] is False and r.json()["ready"] is False
        r = httpx.get(server.url + "/v1/lookup", params=LOOKUP, headers=c.h("match"), timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy", r.text
        assert int(r.headers["retry-after"]) >= 1 and "loading its index" in r.json()["error"]["message"]
        r = httpx.get(server.url + "/m/index/status", headers=c.h("match"), timeout=30)
        assert r.status_code == 200 and r.json()["pdq"]["present"] is False
        (flags / "index-fail").unlink()
        answers_everywhere(c, "/status", (200, "I-AM-ALIVE"))  # at the next retry (0.2 s here)
        server.wait_ready()
        r = httpx.get(server.url + "/v1/lookup", params=LOOKUP, headers=c.h("match"), timeout=30)
        assert r.status_code == 200 and r.json() == {"matches": []}
    finally:
        server.stop()


def test_store_failure_makes_status_stale_and_shows_the_location_to_admin_keys_only(
        db: str, tmp_path: Path) -> None:
    """Two outages of the store on one server (one 2-worker start instead of two).
    First: /status 503 INDEX-STALE on every worker once the index has not caught up
    with the store for index_stale_seconds (1 here); /status/live stays 200; I-AM-ALIVE
    again once the store answers. Second: 503 store-error while the store fails; the
    store's reason names where it lives; an admin key (the operator) sees it, a curate
    key gets the documented code alone."""
    flags = tmp_path / "flags"
    keys = make_keys(db)
    env = fault_env(flags, ASSAY_SERVICE_INDEX_STALE_SECONDS="1", ASSAY_SERVICE_REFRESH_INTERVAL="0.05",
                    ASSAY_SERVICE_KEY_CACHE_SECONDS="60")
    with running(db, 2, tmp_path, **env) as server:
        c = Cluster(server, db, keys, 2)
        answers_everywhere(c, "/status", (200, "I-AM-ALIVE"))
        (flags / "store-down").touch()
        answers_everywhere(c, "/status", (503, "INDEX-STALE"))
        assert httpx.get(server.url + "/status/live", timeout=30).status_code == 200
        r = httpx.get(server.url + "/ready", timeout=30)
        assert r.status_code == 503 and r.json()["store_reachable"] is False
        (flags / "store-down").unlink()
        answers_everywhere(c, "/status", (200, "I-AM-ALIVE"))

        def warm(client: httpx.Client) -> tuple[str, bool]:  # both keys verified and cached on the worker
            a = client.get("/v1/banks", headers=c.h("admin"))
            b = client.get("/v1/banks", headers=c.h("curate"))
            same = a.headers["x-served-by"] == b.headers["x-served-by"]
            return a.headers["x-served-by"], same and a.status_code == b.status_code == 200

        c.on_every_worker(warm)
        (flags / "store-down").touch()
        told = store_error_views(c, db, 6)
        for text in told["admin"]:
            assert next(m for m in store_location_markers(db) if m) in text and "disk I/O error" in text, text


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = [int(c) for c in (task / "children").read_text().split()]
                out.update(kids)
                todo += kids
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_no_process_outlives_the_server(tmp_path: Path) -> None:
    """SIGTERM to `assay serve` alone (as a process manager sends it): its workers stop,
    and so do their image decoder processes (which once stayed behind, waiting)."""
    db = f"sqlite:///{tmp_path / 'banks.sqlite3'}"
    make_keys(db)
    server = Server(db, 2, tmp_path)
    try:
        server.wait_ready()
        deadline = time.monotonic() + 60
        while True:  # workers, and a decoder under each (started once the index is loaded)
            tree = _descendants(server.proc.pid)
            if len(tree) >= 4:
                break
            assert time.monotonic() < deadline, tree
            time.sleep(0.2)
        os.kill(server.proc.pid, 15)
        server.proc.wait(60)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in tree):
            assert time.monotonic() < deadline, [p for p in tree if _alive(p)]
            time.sleep(0.2)
    finally:
        server.stop()
