"""Prometheus metrics of ``assay serve``, every uvicorn worker counted.

prometheus_client in multiprocess mode: each worker writes its samples into memory-
mapped files of one directory (``PROMETHEUS_MULTIPROC_DIR``, which ``assay serve`` makes
afresh for its workers and removes when it stops); a scrape reads them all, whichever
worker answers. ``GET /metrics`` needs a key of ``metrics_role`` (admin by default;
``none``: no key, for a listen address only Prometheus reaches; ``off``: no route), and
``assay serve --metrics-port`` serves the same from the supervisor process on an address
of its own instead.

Labels hold route templates (``/v1/banks/{name}``), methods, status codes, signal types,
bank names and reasons; never content ids, hashes, file names or keys. docs/operations.md
lists every metric and the alert rules built on them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as mp_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .ratelimit import ASGIApp, Message, Receive, Scope, Send

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BYTES = tuple(float(2**k) for k in range(10, 27, 2))  # 1 KiB .. 64 MiB

REQUESTS = Counter("assay_http_requests_total", "HTTP requests answered, by route template, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("assay_http_request_duration_seconds", "Time to answer, by route template and method",
                    ["route", "method"], buckets=_LATENCY)
LOOKUPS = Counter("assay_lookups_total", "Signals looked up in the index, by signal type", ["signal_type"])
MATCHES = Counter("assay_matches_total", "Matches returned, by signal type and bank", ["signal_type", "bank"])
REJECTED = Counter("assay_rejected_total", "Requests refused by a limit, by reason "
                   "(rate, heavy-key, heavy-busy, pixel-budget, index-loading)", ["reason"])
UPLOAD_BYTES = Histogram("assay_upload_bytes", "Sizes of image uploads hashed or analysed", buckets=_BYTES)
HEAVY_IN_FLIGHT = Gauge("assay_heavy_in_flight_pixels", "Pixels of heavy decodes in flight (all workers)",
                        multiprocess_mode="livesum")
INDEX_SIGNALS = Gauge("assay_index_signals", "Signals in a worker's index, by signal type (the largest worker's)",
                      ["signal_type"], multiprocess_mode="max")
INDEX_LOADED = Gauge("assay_index_loaded", "1 when every live worker has loaded its index (min over workers)",
                     multiprocess_mode="livemin")
INDEX_LOAD = Histogram("assay_index_load_seconds", "Index loads (at start, after pruned changes)",
                       buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
INDEX_REFRESH = Histogram("assay_index_refresh_seconds", "Rounds of following the store (read and merge changes)",
                          buckets=_LATENCY)
INDEX_FOLLOWED = Gauge("assay_index_followed_timestamp_seconds",
                       "When a worker's index last caught up with the store (Unix time; the oldest worker's)",
                       multiprocess_mode="livemin")
EXCHANGE_FETCHES = Counter("assay_exchange_fetches_total", "Exchange fetches that ran, by exchange and status "
                           "(ok, error)", ["exchange", "status"])
EXCHANGE_RECORDS = Counter("assay_exchange_records_total", "Records applied by exchange fetches, by exchange and "
                           "outcome (added, updated, removed, unchanged, invalid, skipped)", ["exchange", "outcome"])
EXCHANGE_FETCH_SECONDS = Histogram("assay_exchange_fetch_seconds", "Duration of exchange fetches, by exchange",
                                   ["exchange"], buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600))
EXCHANGE_LAST_SUCCESS = Gauge("assay_exchange_last_success_timestamp_seconds",
                              "When an exchange's last successful fetch ended (Unix time; the newest worker's)",
                              ["exchange"], multiprocess_mode="max")


def multiprocess() -> bool:
    return bool(os.environ.get(ENV_DIR))


def exposition() -> tuple[bytes, str]:
    """The metrics of every worker (multiprocess mode) or of this process."""
    if multiprocess():
        registry = CollectorRegistry()
        mp_metrics.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_exchange_fetch(result: Any) -> None:
    """One finished exchange fetch (assay.exchanges.fetch.FetchResult), failed or not.
    Labels carry the exchange's configured name, never signals or content ids."""
    name = result.exchange
    EXCHANGE_FETCHES.labels(name, result.status).inc()
    EXCHANGE_FETCH_SECONDS.labels(name).observe(result.seconds)
    for outcome in ("added", "updated", "removed", "unchanged", "invalid"):
        n = getattr(result, outcome)
        if n:
            EXCHANGE_RECORDS.labels(name, outcome).inc(n)
    skipped = sum(result.skipped.values())
    if skipped:
        EXCHANGE_RECORDS.labels(name, "skipped").inc(skipped)
    if result.status == "ok":
        EXCHANGE_LAST_SUCCESS.labels(name).set(time.time())


def rejected(exc: Exception) -> None:
    """Count a refusal by a limit (a RateLimited, Busy among them): its ``limit``
    attribute names which (set where it is raised), else the key's rate limit."""
    REJECTED.labels(getattr(exc, "limit", "rate")).inc()


def worker_exit() -> None:
    """A worker stops: its live gauges leave the sums."""
    if multiprocess():
        mp_metrics.mark_process_dead(os.getpid())


_STATIC: frozenset[str] | None = None


def _static_path(scope: Scope) -> str:
    """The path of a request answered before routing (a refused key or upload), when it
    is a route without parameters; else "unmatched" (never a raw path: it could hold a
    bank name or anything a client made up)."""
    global _STATIC
    if _STATIC is None:
        from .openapi import flat_routes

        _STATIC = frozenset(p for r in flat_routes(scope["app"]) if "{" not in (p := getattr(r, "path", "{")))
    path = scope.get("path", "")
    return path if path in _STATIC else "unmatched"


def observe_matches(queries: Any, matches: Any) -> None:
    """Lookups by signal type, matches by signal type and bank."""
    counts: dict[str, int] = {}
    for q in queries:
        counts[q.signal_type] = counts.get(q.signal_type, 0) + 1
    for name, n in counts.items():
        LOOKUPS.labels(name).inc(n)
    for m in matches:
        MATCHES.labels(m.signal_type, m.bank).inc()


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (after routing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template: Any = getattr(route, "path", None) or _static_path(scope)
            method = scope.get("method", "")
            REQUESTS.labels(template, method, str(status[0])).inc()
            LATENCY.labels(template, method).observe(time.perf_counter() - start)
