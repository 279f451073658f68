"""Service settings: one frozen object, built from flags or ``ASSAY_SERVICE_*`` variables.

Uvicorn starts each worker process from the import string of an app factory, so
everything a worker needs travels through the environment (``to_env`` /
``from_env``); nothing is shared in memory between workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import data_dir, default_db_url, normalize_db_url
from ..errors import AssayError

PREFIX = "ASSAY_SERVICE_"
ROLES = ("match", "curate", "admin")


@dataclass(frozen=True)
class Settings:
    db: str = ""  # SQLAlchemy URL or file path; "" = the embedded default store
    # Role given to requests without a key; None = no anonymous access (the default).
    anonymous_role: str | None = None
    workers: int = 1
    # Per-key budget in requests/s. Without Redis: for the whole instance, shared evenly
    # by its workers (an in-process token bucket per worker). With Redis: for every
    # worker and instance that uses that Redis and prefix together.
    rate_limit: float = 5000.0
    # A key's bucket holds this many seconds of its own rate (at least 1 request): how
    # many requests it may send at once after being idle. Per worker without Redis,
    # where each worker's bucket holds this much of the worker's share of the rate.
    rate_burst_seconds: float = 1.0
    rate_limit_redis_url: str = ""  # "" = in-process buckets; else ASSAY_REDIS_URL too
    rate_limit_redis_prefix: str = "assay:ratelimit:"
    max_json_bytes: int = 4 * 1024**2
    max_upload_bytes: int = 64 * 1024**2  # images to hash or analyse
    max_model_bytes: int = 8 * 1024**3
    video_wall_clock_s: float = 120.0  # decoding budget of one uploaded video (size: max_upload_bytes)
    max_import_bytes: int = 4 * 1024**3
    max_batch: int = 1000
    # Images declaring more pixels are refused (413) before decoding (uploads.py).
    max_upload_pixels: int = 50_000_000
    # An upload whose decode holds this many pixels or more is heavy: each worker runs
    # heavy decodes up to heavy_worker_pixels at once (one at least), each key at most
    # heavy_per_key of them per worker; beyond, 503/429 with Retry-After.
    heavy_from_pixels: int = 4_000_000
    heavy_worker_pixels: int = 64_000_000
    heavy_per_key: int = 2
    # Heavy decodes run in decoder processes of each worker ("process", heavy_processes
    # of them, at nice 10) or on threads of the worker at nice 10 ("thread").
    heavy_decoder: str = "process"
    heavy_processes: int = 1
    # A caller (key, or address without a key) whose image uploads were refused this many
    # times (pixel budget, too large, not a valid image: 400/413/415/422) within
    # upload_refusal_window seconds has its image uploads refused 429 from their headers
    # for upload_refusal_penalty seconds (penalty.py). Per worker, or with Redis for the
    # service. 0 = off.
    upload_refusal_limit: int = 20
    upload_refusal_window: float = 60.0
    upload_refusal_penalty: float = 30.0
    max_entry_signals: int = 256  # signal values one bank entry may hold
    body_timeout: float = 30.0  # seconds without a byte from a client before 408
    # A request's headers must be complete this many seconds after the connection
    # opened or the request's first byte, else the connection is closed (slow clients).
    header_timeout: float = 5.0
    idle_timeout: float = 5.0  # an idle keep-alive connection is closed after this
    # How often each worker follows the store. On PostgreSQL a worker is also woken by a
    # notice when a write commits, so this is only the fallback there.
    refresh_interval: float = 0.15
    # A worker whose index load failed at start (store unreachable, index unreadable)
    # tries again this many seconds later, and so on; one whose LISTEN connection
    # (PostgreSQL) broke listens again as long after.
    store_retry_seconds: float = 5.0
    # Each worker copies a PDQ index of at most this many MB (~3M hashes) out of the
    # shared snapshot into its own memory with huge pages: ~1.3x less CPU per lookup under
    # load, for one copy per worker (0: every worker serves the shared mapped snapshot).
    index_private_mb: float = 1024.0
    # Change records (removals, enable/disable) older than this are pruned; an index or
    # snapshot that has not followed the store for as long loads again. 0 = keep forever.
    changes_retention_days: float = 7.0
    prune_interval: float = 3600.0  # seconds between prunes (each worker; idempotent)
    # /status (HMA) answers 503 INDEX-STALE once the index has not caught up with the
    # store for this long (HMA's INDEX_CACHE_MAX_STALE_SEC); 0 = never stale.
    index_stale_seconds: float = 65.0
    key_cache_seconds: float = 5.0  # a revoked key stops working within this time
    job_stale_seconds: float = 15.0  # a running job without heartbeat for this long died
    snapshot_dir: str = ""  # "" = under the data dir
    # Where upload bodies are streamed, shared by the instance's workers; files of dead
    # workers are removed when a worker starts. "" = <data dir>/service-tmp.
    tmp_dir: str = ""
    text_index: str = ""  # text index folder for /v1/text, "" = none
    trust_anchors: str = ""  # PEM bundle for C2PA, "" = none
    # GET /metrics (Prometheus) needs a key of this role; "none": no key (for a port only
    # Prometheus reaches); "off": no such route (e.g. with metrics_listen).
    metrics_role: str = "admin"
    # "HOST:PORT": the supervisor process also serves the metrics of every worker there
    # (no key), apart from the API. "" = not.
    metrics_listen: str = ""
    access_log: bool = True
    # Enabled hash exchanges (assay exchange) are fetched when their last fetch is older
    # than this many seconds, by one worker at a time (a lease in the store). 0 = never.
    exchange_interval: float = 900.0

    def __post_init__(self) -> None:
        if self.anonymous_role is not None and self.anonymous_role not in ROLES:
            raise AssayError(
                f"invalid anonymous role {self.anonymous_role!r}", hint=f"use one of {', '.join(ROLES)}"
            )
        if self.workers < 1:
            raise AssayError(f"invalid worker count {self.workers}: at least 1")
        if self.index_private_mb < 0:
            raise AssayError(f"invalid index_private_mb {self.index_private_mb}: megabytes, 0 or more")
        if self.max_entry_signals < 1:
            raise AssayError(f"invalid max_entry_signals {self.max_entry_signals}: at least 1")
        if min(self.max_upload_pixels, self.heavy_from_pixels, self.heavy_worker_pixels, self.heavy_per_key) < 1:
            raise AssayError("invalid upload limits: max_upload_pixels, heavy_from_pixels, "
                             "heavy_worker_pixels and heavy_per_key must be at least 1")
        if self.upload_refusal_limit < 0 or not (self.upload_refusal_window > 0 and self.upload_refusal_penalty > 0):
            raise AssayError("invalid upload refusal penalty: upload_refusal_limit 0 (off) or more, "
                             "upload_refusal_window and upload_refusal_penalty seconds, more than 0")
        if self.heavy_decoder not in ("process", "thread") or self.heavy_processes < 1:
            raise AssayError(f"invalid heavy decoder {self.heavy_decoder!r} x {self.heavy_processes}",
                             hint="heavy_decoder: process or thread; heavy_processes: at least 1")
        if self.metrics_role not in (*ROLES, "none", "off"):
            raise AssayError(f"invalid metrics role {self.metrics_role!r}",
                             hint=f"use one of {', '.join(ROLES)}, none or off")
        if self.metrics_listen and not self.metrics_listen.rpartition(":")[2].isdigit():
            raise AssayError(f"invalid metrics address {self.metrics_listen!r}", hint="HOST:PORT, e.g. 127.0.0.1:9464")
        if not self.rate_burst_seconds > 0:
            raise AssayError(f"invalid rate_burst_seconds {self.rate_burst_seconds}: seconds, more than 0")
        if self.exchange_interval < 0:
            raise AssayError(f"invalid exchange interval {self.exchange_interval}: seconds, 0 (off) or more")
        if not self.store_retry_seconds > 0:
            raise AssayError(f"invalid store_retry_seconds {self.store_retry_seconds}: seconds, more than 0")
        if self.prune_interval <= 0:
            raise AssayError(f"invalid prune interval {self.prune_interval}: seconds, more than 0")
        scheme = self.rate_limit_redis_url.partition("://")[0]
        if self.rate_limit_redis_url and scheme not in ("redis", "rediss", "unix"):
            raise AssayError("invalid Redis URL for rate limits: expected redis://, rediss:// or unix://",
                             hint="e.g. redis://127.0.0.1:6379/0")

    @property
    def db_url(self) -> str:
        return normalize_db_url(self.db) if self.db else default_db_url()

    @property
    def snapshot_path(self) -> Path | None:
        return Path(self.snapshot_dir) if self.snapshot_dir else None

    @property
    def tmp_path(self) -> Path:
        return Path(self.tmp_dir).expanduser() if self.tmp_dir else data_dir() / "service-tmp"

    def to_env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[PREFIX + f.name.upper()] = "" if value is None else str(value)
        return out

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        if PREFIX + "RATE_LIMIT_REDIS_URL" not in env and env.get("ASSAY_REDIS_URL"):
            kwargs["rate_limit_redis_url"] = env["ASSAY_REDIS_URL"]
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            default = f.default
            try:
                if f.name == "anonymous_role":
                    kwargs[f.name] = raw or None
                elif isinstance(default, bool):
                    kwargs[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif isinstance(default, int):
                    kwargs[f.name] = int(raw)
                elif isinstance(default, float):
                    kwargs[f.name] = float(raw)
                else:
                    kwargs[f.name] = raw
            except ValueError:
                raise AssayError(f"{PREFIX}{f.name.upper()}={raw!r} is not a valid {type(default).__name__}") from None
        return cls(**kwargs)
