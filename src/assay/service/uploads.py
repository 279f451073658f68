"""Bounded cost of image uploads in one worker.

* **Pixel budget.** An image whose header declares more than ``max_upload_pixels``
  (default 50 MP) is refused with ``413 too-large`` before a pixel is decoded: a 20 KB
  PNG can declare 13000 x 13000 pixels. probe.py does so from the first kilobytes of a
  streamed multipart body; the check here is the authority for what gets through.
* **Reduced decoding.** Hashing decodes JPEGs at 1/2..1/8 scale and grey images as
  one byte a pixel (media/decode.py), so an upload is weighed by the pixels its decode
  really holds. Provenance weighs ``PROVENANCE_WEIGHT`` times the pixels its sources
  will decode (``pixels_to_decode``: none for most images; the watermark search reads
  the top 16 MP of rows of a large PNG).
* **Heavy uploads per worker and per key.** An upload weighing at least
  ``heavy_from_pixels`` is heavy. A worker runs heavy decodes up to
  ``heavy_worker_pixels`` in flight (one at a time at least: a lone upload is never
  refused for its weight, the pixel budget is for that); beyond, ``503 busy`` with
  ``Retry-After``. A key may have ``heavy_per_key`` heavy uploads in flight on a
  worker, or in the whole service when Redis is configured (``SharedHeavy``); beyond,
  ``429 rate-limited`` with ``Retry-After``. Nothing queues, so memory never grows
  with the number of waiting clients: they retry.
* **Lookups first, decodes apart.** Heavy decodes run in a decoder process of the
  worker at nice 10 (decoder.py), so that the event loop answering lookups gets the
  cores first and shares neither GIL nor heap with them.
* **Memory returned.** After a heavy decode the decoder hands freed heap memory back
  to the system (glibc's ``malloc_trim``); without it a worker kept ~700 MB after one
  bomb.

Callers whose uploads keep being refused (bombs back to back) are refused from their
headers for a while: penalty.py.

Counters of all this, and the worker's resident and peak memory, are at
``GET /v1/limits`` (admin), answered by whichever worker takes the request.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from ..config import Limits
from ..errors import Busy, DecodeError, RateLimited, UnsupportedFormat
from ..media import decode
from ..media.hashes import DEFAULT_LIMITS, ImageHashes, hash_image_bytes
from . import metrics
from .auth import Principal
from .decoder import HeavyDecoder, memory, trim_memory
from .state import role

log = logging.getLogger("assay.service.uploads")

# Provenance holds the RGB pixels, an RGBA copy for some sources and the watermark
# decoder's planes: measured ~14 bytes a pixel at peak against ~2 for a grey hash.
PROVENANCE_WEIGHT = 3
RETRY_AFTER = 1.0  # seconds: a heavy decode of the budget's size takes about that


# KEYS[1]: a sorted set of a key's heavy uploads in flight (member: a token, score: its
# start, Redis's clock); ARGV: token, limit, lease seconds. Entries older than the lease
# (a worker that died mid-decode never removed its own) are dropped first. Returns the
# number in flight after the add, or 0 when refused (nothing added).
_HEAVY_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(lease))
return n + 1
"""


def _limit(exc: RateLimited, name: str) -> RateLimited:
    exc.limit = name  # type: ignore[attr-defined]  # the reason label of assay_rejected_total
    return exc


class SharedHeavy:
    """A key's heavy uploads in flight, counted in Redis for every worker and instance
    that uses it (the rate limits' Redis and prefix). Redis errors propagate."""

    LEASE = 600.0  # seconds: far longer than a decode within the budget takes

    def __init__(self, url: str, prefix: str, timeout: float = 0.5) -> None:
        import redis

        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError, TimeoutError, ValueError)
        self.prefix = prefix + "heavy:"
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._admit = self._client.register_script(_HEAVY_ADMIT)

    def admit(self, key: object, token: str, limit: int) -> int:
        """In flight for ``key`` after admitting ``token``, or 0 when it is refused."""
        return int(self._admit(keys=[f"{self.prefix}{key}"], args=[token, limit, self.LEASE]))

    def release(self, key: object, token: str) -> None:
        self._client.zrem(f"{self.prefix}{key}", token)

    def close(self) -> None:
        self._client.close()


class UploadGate:
    """Admission of heavy decodes in one worker (thread-safe: decodes run on threads).
    With ``shared`` (Redis), a key's limit holds for the whole service; while Redis is
    unreachable, per worker as without it."""

    def __init__(self, worker_pixels: int, heavy_from: int, per_key: int,
                 shared: SharedHeavy | None = None) -> None:
        self.worker_pixels = worker_pixels
        self.heavy_from = heavy_from
        self.per_key = per_key
        self.shared = shared
        self.shared_down = False
        self._lock = threading.Lock()
        self._in_flight = 0
        self._keys: dict[object, int] = {}
        self.stats = {"admitted_heavy": 0, "refused_busy": 0, "refused_key": 0, "refused_budget": 0,
                      "max_in_flight_pixels": 0,
                      "max_in_flight_per_key": 0, "largest_admitted_pixels": 0, "trims": 0,
                      "rss_after_last_heavy_bytes": 0, "max_in_flight_per_key_shared": 0,
                      "refused_key_elsewhere": 0, "heavy_after_border": 0}

    def _admit_shared(self, key: object) -> str | None:
        """Admit in Redis: the token to release, None when Redis is not in use or
        unreachable (then this worker's count decides). Raises RateLimited."""
        if self.shared is None:
            return None
        token = uuid.uuid4().hex
        try:
            n = self.shared.admit(key, token, self.per_key)
        except self.shared.errors as exc:
            if not self.shared_down:
                self.shared_down = True
                log.warning("heavy-upload limits: Redis unreachable (%s); each worker counts a key's "
                            "uploads on its own until it is back", type(exc).__name__)
            return None
        self.shared_down = False
        with self._lock:
            if n == 0:
                self.stats["refused_key"] += 1
                if not self._keys.get(key):
                    self.stats["refused_key_elsewhere"] += 1
            else:
                s = self.stats
                s["max_in_flight_per_key_shared"] = max(s["max_in_flight_per_key_shared"], n)
        if n == 0:
            raise _limit(RateLimited(
                f"this key already has {self.per_key} large image upload(s) in progress "
                f"(limit {self.per_key} for the service)", retry_after=RETRY_AFTER,
                hint="send large images one after another, or smaller ones"), "heavy-key")
        return token

    def _release_shared(self, key: object, token: str | None) -> None:
        if token is None or self.shared is None:
            return
        try:
            self.shared.release(key, token)
        except self.shared.errors:
            pass  # the lease ends it

    @contextmanager
    def held(self, key: object, weight: int) -> Iterator[None]:
        if weight < self.heavy_from:
            yield
            return
        token = self._admit_shared(key)
        try:
            with self._held_here(key, weight, shared=token is not None):
                yield
        finally:
            self._release_shared(key, token)

    @contextmanager
    def _held_here(self, key: object, weight: int, shared: bool) -> Iterator[None]:
        with self._lock:
            mine = self._keys.get(key, 0)
            if not shared and mine >= self.per_key:
                self.stats["refused_key"] += 1
                raise _limit(RateLimited(
                    f"this key already has {mine} large image upload(s) in progress on this worker "
                    f"(limit {self.per_key})", retry_after=RETRY_AFTER,
                    hint="send large images one after another, or smaller ones"), "heavy-key")
            if self._in_flight and self._in_flight + weight > self.worker_pixels:
                self.stats["refused_busy"] += 1
                raise _limit(Busy("the service is decoding other large images; try again shortly",
                                  retry_after=RETRY_AFTER, hint="retry after the Retry-After delay"), "heavy-busy")
            self._in_flight += weight
            metrics.HEAVY_IN_FLIGHT.inc(weight)
            self._keys[key] = mine + 1
            s = self.stats
            s["admitted_heavy"] += 1
            s["max_in_flight_pixels"] = max(s["max_in_flight_pixels"], self._in_flight)
            s["max_in_flight_per_key"] = max(s["max_in_flight_per_key"], mine + 1)
            s["largest_admitted_pixels"] = max(s["largest_admitted_pixels"], weight)
        try:
            yield
        finally:
            metrics.HEAVY_IN_FLIGHT.dec(weight)
            with self._lock:
                self._in_flight -= weight
                left = self._keys[key] - 1
                if left:
                    self._keys[key] = left
                else:
                    del self._keys[key]
                idle = self._in_flight == 0
            if idle and trim_memory():  # the decode's buffers, freed, go back to the system
                with self._lock:
                    self.stats["trims"] += 1
            with self._lock:
                self.stats["rss_after_last_heavy_bytes"] = memory()["rss_bytes"]

    def count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def counters(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {**self.stats, "in_flight_pixels": self._in_flight}
        return out


def image_limits(max_pixels: int) -> Limits:
    return replace(DEFAULT_LIMITS, max_pixels=max_pixels)


def refuse_unbudgeted(data: bytes, name: str) -> None:
    """JPEG XL is not decoded by the service: its reader (pillow-jxl-plugin) decodes the
    whole image as the file is opened, before the pixel budget could weigh or hold it."""
    from ..sniff import sniff_bytes

    if sniff_bytes(data[:64], len(data)).format == "jxl":
        raise UnsupportedFormat(name, "JPEG XL image: not decoded by the service (its decoder cannot be held "
                                "to the pixel budget)", hint="hash it with `assay hash` or `assay scan`")


def hash_within_budget(gate: UploadGate, decoder: HeavyDecoder, limits: Limits, key: object, data: bytes,
                       name: str, dihedral: bool, variants: bool = False,
                       bank_kinds: frozenset[str] | None = None) -> ImageHashes:
    """Hash an upload on this thread: refused over the pixel budget (header only), then
    admitted by its decode's weight. Raises TooLarge, Busy, RateLimited, decode errors.
    ``variants``: also the query variants a scan looks up (mirror, borders, crops, caption
    band; anchored regions and the upper region only if ``bank_kinds`` has them)."""
    refuse_unbudgeted(data, name)
    opened = decode.open_image(data, name, limits)
    weight = decode.decode_pixels(opened)
    # A border or caption band found among the variants is placed on a finer decode (decode.fine_luma):
    # counted too. While it would keep the upload light, it stays light; when a border
    # asks for a finer decode that would make it heavy, the upload is admitted again as
    # heavy with both decodes counted (few uploads have borders).
    fine = decode.fine_pixels(opened) if variants else 0
    kw = {"path": name, "mode": "fast", "dihedral": dihedral, "limits": limits, "variants": variants,
          "bank_kinds": bank_kinds}
    if fine and weight < gate.heavy_from <= weight + fine:
        try:
            with gate.held(key, weight):
                return hash_image_bytes(data, fine_budget=gate.heavy_from - 1 - weight, **kw)  # type: ignore[arg-type]
        except decode.FineOverBudget:
            gate.count("heavy_after_border")
    weight += fine
    with gate.held(key, weight):
        if weight >= gate.heavy_from:
            return decoder.run(hash_image_bytes, name, data, **kw)
        return hash_image_bytes(data, **kw)  # type: ignore[arg-type]


def provenance_within_budget(gate: UploadGate, decoder: HeavyDecoder, limits: Limits, key: object, data: bytes,
                             name: str, fmt: str, trust_anchors: Path | None) -> Any:
    from ..provenance.analyzer import analyze_provenance, pixels_to_decode

    try:
        decode.open_image(data, name, limits)  # the pixel budget, from the header
    except (UnsupportedFormat, DecodeError):
        pass  # not decodable here: provenance reads its metadata, and decodes nothing
    weight = pixels_to_decode(Path(name), data, fmt, limits) * PROVENANCE_WEIGHT
    with gate.held(key, weight):
        if weight >= gate.heavy_from:
            return decoder.run(analyze_provenance, name, Path(name), data, fmt, trust_anchors=trust_anchors,
                               limits=limits)
        return analyze_provenance(Path(name), data, fmt, trust_anchors=trust_anchors, limits=limits)


def video_limits(max_bytes: int, max_pixels: int, wall_clock_s: float) -> Any:
    """Limits of one uploaded video: the upload's size, the image pixel budget per frame,
    an hour of footage and a wall-clock budget (the decoder process also bounds memory)."""
    from ..media.video import VideoLimits

    return VideoLimits(max_file_bytes=max_bytes, max_duration_s=3600.0, max_frames=3600 * 120,
                       max_pixels=max_pixels, max_decoded_bytes=64 * 1024**3, wall_clock_s=wall_clock_s)


def hash_video_within_budget(gate: UploadGate, decoder: HeavyDecoder, limits: Any, key: object, path: Path,
                             name: str) -> Any:
    """vPDQ of an uploaded video (a temporary file): always a heavy decode, so a worker
    and a key hold only as many at once as heavy images (busy / rate-limited beyond),
    and it runs in the decoder process, where its memory is returned when it ends."""
    from functools import partial

    from ..media.video import hash_video_file

    with gate.held(key, max(gate.heavy_from, 1)):
        return decoder.run(partial(hash_video_file, name=name), name, path, limits=limits)


async def run_video_hash(request: Request, path: Path, name: str) -> Any:
    state = request.app.state.assay
    s = state.settings
    limits = video_limits(s.max_upload_bytes, s.max_upload_pixels, s.video_wall_clock_s)
    return await run_in_threadpool(hash_video_within_budget, state.uploads, state.decoder, limits,
                                   getattr(request.state, "key_id", None), path, name)


async def run_hash(request: Request, data: bytes, name: str, dihedral: bool, variants: bool = False) -> ImageHashes:
    """``variants`` for an upload that is matched: the query variants scan looks up, those
    that only banked variants can match only if this worker's banks hold some."""
    state = request.app.state.assay
    kinds = state.index.variant_kinds if variants else None
    return await run_in_threadpool(hash_within_budget, state.uploads, state.decoder, state.image_limits,
                                   getattr(request.state, "key_id", None), data, name, dihedral, variants, kinds)


async def run_provenance(request: Request, data: bytes, name: str, fmt: str, trust_anchors: Path | None) -> Any:
    state = request.app.state.assay
    return await run_in_threadpool(provenance_within_budget, state.uploads, state.decoder, state.image_limits,
                                   getattr(request.state, "key_id", None), data, name, fmt, trust_anchors)


router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/limits", summary="This worker's upload limits, their counters and its memory (admin)")
async def limits(request: Request, _: Annotated[Principal, Depends(role("admin"))]) -> Response:
    import orjson

    state = request.app.state.assay
    s = state.settings
    body = {
        "worker": os.getpid(),
        "max_upload_pixels": s.max_upload_pixels, "heavy_from_pixels": s.heavy_from_pixels,
        "heavy_worker_pixels": s.heavy_worker_pixels, "heavy_per_key": s.heavy_per_key,
        "heavy": state.uploads.counters(),
        "refusal_penalties": state.penalties.counters(),
        "decoder": {"mode": state.decoder.mode, "restarts": state.decoder.restarts,
                    "last_memory": state.decoder.last_memory},
        "memory": memory(),
    }
    return Response(orjson.dumps(body), media_type="application/json")
