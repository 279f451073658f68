"""GET /metrics of a real 2-worker `assay serve` (issue 25): the Prometheus exposition
parses, every worker's requests are in it (prometheus_client multiprocess mode), the
counters move with traffic, labels hold no hashes, content ids or keys, and the route
is protected by its role or served on a listen address of its own."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from service_cluster import SHARED, Cluster, make_keys
from service_helpers import free_port, running

SHARES_CLUSTERS = True  # with test_service_hma.py and test_service_strict.py (service_cluster.SHARED)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return SHARED.get("sqlite", tmp_path_factory)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[Samples, str]:
    r = httpx.get(url, headers=headers, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, r.text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


PLANTED_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (13000, 13000), 0).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_metrics_need_the_admin_role(svc: Cluster) -> None:
    assert httpx.get(svc.url + "/metrics", timeout=30).status_code == 401
    assert httpx.get(svc.url + "/metrics", headers=svc.h("match"), timeout=30).status_code == 403
    scrape(svc.url + "/metrics", svc.h("admin"))


def test_counters_of_every_worker_move_with_traffic(svc: Cluster) -> None:
    with svc.client("curate") as cur:
        assert cur.post("/v1/banks", json={"name": "metrics-bank"}).status_code == 201
        r = cur.post("/v1/banks/metrics-bank/entries",
                     json={"content_id": "secret-content-id", "signals": {"pdq": PLANTED_PDQ}})
        assert r.status_code == 201, r.text
    before, _ = scrape(svc.url + "/metrics", svc.h("admin"))
    n = 24

    def lookup(i: int) -> str:  # new connections: both workers answer
        r = httpx.get(svc.url + "/v1/lookup", headers=svc.h("match"), timeout=30,
                      params={"signal_type": "pdq", "value": PLANTED_PDQ if i % 3 == 0 else "0" * 63 + "1"})
        assert r.status_code == 200, r.text
        return r.headers["x-served-by"]

    deadline = time.monotonic() + 30
    while True:  # the entry is in every worker's index before counting
        workers = set()
        ok = True
        for _ in range(8):
            r = httpx.get(svc.url + "/v1/lookup", headers=svc.h("match"), timeout=30,
                          params={"signal_type": "pdq", "value": PLANTED_PDQ})
            workers.add(r.headers["x-served-by"])
            ok = ok and bool(r.json()["matches"])
        if ok and len(workers) == 2:
            break
        assert time.monotonic() < deadline, "the entry never reached both workers"
    before, _ = scrape(svc.url + "/metrics", svc.h("admin"))
    with ThreadPoolExecutor(4) as pool:
        served = list(pool.map(lookup, range(n)))
    assert len(set(served)) == 2, "one worker answered every lookup; the test needs both"
    r = httpx.post(svc.url + "/h/hash", headers=svc.h("match"), timeout=60,
                   files={"photo": ("bomb.png", _bomb(), "image/png")})
    assert r.status_code == 413
    assert httpx.get(svc.url + "/v1/lookup", params={"signal_type": "pdq", "value": PLANTED_PDQ},
                     timeout=30).status_code == 401
    after, text = scrape(svc.url + "/metrics", svc.h("admin"))

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Exactly n: both workers' counts are summed (either alone would be fewer).
    assert moved("assay_http_requests_total", route="/v1/lookup", method="GET", status="200") == n
    assert moved("assay_http_requests_total", route="/v1/lookup", method="GET", status="401") == 1
    assert moved("assay_http_requests_total", route="/h/hash", method="POST", status="413") == 1
    assert moved("assay_http_request_duration_seconds_count", route="/v1/lookup", method="GET") == n + 1
    assert moved("assay_lookups_total", signal_type="pdq") == n
    assert moved("assay_matches_total", signal_type="pdq", bank="metrics-bank") == n // 3
    assert moved("assay_rejected_total", reason="pixel-budget") == 1
    assert value(after, "assay_index_signals", signal_type="pdq") >= 1
    assert value(after, "assay_index_loaded") == 1
    assert value(after, "assay_index_followed_timestamp_seconds") > time.time() - 60
    assert value(after, "assay_index_load_seconds_count") >= 2  # one load per worker
    # Nothing a label could leak: hashes, content ids, keys, file names.
    for secret in (PLANTED_PDQ, "secret-content-id", *svc.keys.values(), "bomb.png"):
        assert secret not in text


def test_rate_limit_rejections_are_counted(svc: Cluster, tmp_path: Path) -> None:
    from assay.service.app import open_store
    from assay.service.auth import create_key
    from assay.service.settings import Settings

    store = open_store(Settings(db=svc.db))
    try:
        slow = create_key(store.engine, "slow-metrics", "match", 0.02)[1]
    finally:
        store.close()
    before, _ = scrape(svc.url + "/metrics", svc.h("admin"))
    codes = [httpx.get(svc.url + "/v1/lookup", params={"signal_type": "md5", "value": "0" * 32},
                       headers={"X-API-Key": slow}, timeout=30).status_code for _ in range(6)]
    after, _ = scrape(svc.url + "/metrics", svc.h("admin"))
    assert codes.count(429) >= 4
    assert value(after, "assay_rejected_total", reason="rate") - value(before, "assay_rejected_total",
                                                                      reason="rate") == codes.count(429)


def test_metrics_on_a_listen_address_of_their_own(tmp_path: Path) -> None:
    """ASSAY_SERVICE_METRICS_LISTEN: the supervisor serves every worker's metrics on
    another port, without a key; with the role "off" the API's port has no /metrics."""
    db = f"sqlite:///{tmp_path / 'banks.sqlite3'}"
    keys = make_keys(db)
    port = free_port()
    with running(db, 2, tmp_path, ASSAY_SERVICE_METRICS_LISTEN=f"127.0.0.1:{port}",
                 ASSAY_SERVICE_METRICS_ROLE="off") as server:
        assert httpx.get(server.url + "/metrics", headers={"X-API-Key": keys["admin"]},
                         timeout=30).status_code == 404
        before, _ = scrape(f"http://127.0.0.1:{port}/metrics")
        for _ in range(10):
            r = httpx.get(server.url + "/v1/lookup", params={"signal_type": "md5", "value": "0" * 32},
                          headers={"X-API-Key": keys["match"]}, timeout=30)
            assert r.status_code == 200
        after, _ = scrape(f"http://127.0.0.1:{port}/metrics")
        labels = {"route": "/v1/lookup", "method": "GET", "status": "200"}
        assert value(after, "assay_http_requests_total", **labels) - \
            value(before, "assay_http_requests_total", **labels) == 10
        assert value(after, "assay_index_loaded") == 1
