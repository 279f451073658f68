"""Bounded cost of image uploads in one worker.

* **Pixel budget.** An image whose header declares more than ``max_upload_pixels``
  (default 50 MP) is refused with ``413 too-large`` before a pixel is decoded: a 20 KB
  PNG can declare 13000 x 13000 pixels.
* **Reduced decoding.** Hashing decodes JPEGs at 1/2..1/8 scale and grey images as
  one byte a pixel (media/decode.py), so an upload is weighed by the pixels its decode
  really holds; provenance analysis needs every pixel in RGB and more, and weighs
  ``PROVENANCE_WEIGHT`` times its pixel count.
* **Heavy uploads per worker and per key.** An upload weighing at least
  ``heavy_from_pixels`` is heavy. A worker runs heavy decodes up to
  ``heavy_worker_pixels`` in flight (one at a time at least: a lone upload is never
  refused for its weight, the pixel budget is for that); beyond, ``503 busy`` with
  ``Retry-After``. A key may have ``heavy_per_key`` heavy uploads in flight on a
  worker; beyond, ``429 rate-limited`` with ``Retry-After``. Nothing queues, so memory
  never grows with the number of waiting clients: they retry.
* **Lookups first.** Heavy decodes run on a few threads of their own at a lower
  scheduling priority (nice 10, Linux threads are scheduled one by one), so that the
  event loop answering lookups gets the cores first; Pillow and numpy release the GIL
  while they decode and shrink.
* **Memory returned.** After a heavy decode the worker hands freed heap memory back to
  the system (glibc's ``malloc_trim``); without it a worker kept ~700 MB after one bomb.

Counters of all this, and the worker's resident and peak memory, are at
``GET /v1/limits`` (admin), answered by whichever worker takes the request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from ..config import Limits
from ..errors import Busy, DecodeError, RateLimited, UnsupportedFormat
from ..media import decode
from ..media.hashes import DEFAULT_LIMITS, ImageHashes, hash_image_bytes
from .auth import Principal
from .state import role

T = TypeVar("T")

# Provenance holds the RGB pixels, an RGBA copy for some sources and the watermark
# decoder's planes: measured ~14 bytes a pixel at peak against ~2 for a grey hash.
PROVENANCE_WEIGHT = 3
RETRY_AFTER = 1.0  # seconds: a heavy decode of the budget's size takes about that


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to call
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def trim_memory() -> bool:
    """Hand freed heap memory back to the system (glibc); False where unavailable."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


HEAVY_NICE = 10
HEAVY_THREADS = 4  # more than a worker admits at once by default: the gate limits, not this


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HEAVY_NICE)
    except (OSError, AttributeError):  # not Linux, or not permitted: same priority then
        pass


_heavy_pool: ThreadPoolExecutor | None = None
_heavy_lock = threading.Lock()


def _run_heavy(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn`` on a low-priority heavy-decode thread; this thread waits for it."""
    global _heavy_pool
    with _heavy_lock:
        if _heavy_pool is None:
            _heavy_pool = ThreadPoolExecutor(HEAVY_THREADS, thread_name_prefix="assay-heavy",
                                             initializer=_lower_priority)
    return _heavy_pool.submit(fn, *args, **kwargs).result()


def memory() -> dict[str, int]:
    """This process's resident and peak resident memory (bytes; 0 where unknown)."""
    out = {"rss_bytes": 0, "peak_rss_bytes": 0}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_bytes"] = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                out["peak_rss_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


class UploadGate:
    """Admission of heavy decodes in one worker (thread-safe: decodes run on threads)."""

    def __init__(self, worker_pixels: int, heavy_from: int, per_key: int) -> None:
        self.worker_pixels = worker_pixels
        self.heavy_from = heavy_from
        self.per_key = per_key
        self._lock = threading.Lock()
        self._in_flight = 0
        self._keys: dict[object, int] = {}
        self.stats = {"admitted_heavy": 0, "refused_busy": 0, "refused_key": 0, "max_in_flight_pixels": 0,
                      "max_in_flight_per_key": 0, "largest_admitted_pixels": 0, "trims": 0,
                      "rss_after_last_heavy_bytes": 0}

    @contextmanager
    def held(self, key: object, weight: int) -> Iterator[None]:
        if weight < self.heavy_from:
            yield
            return
        with self._lock:
            mine = self._keys.get(key, 0)
            if mine >= self.per_key:
                self.stats["refused_key"] += 1
                raise RateLimited(
                    f"this key already has {mine} large image upload(s) in progress on this worker "
                    f"(limit {self.per_key})", retry_after=RETRY_AFTER,
                    hint="send large images one after another, or smaller ones")
            if self._in_flight and self._in_flight + weight > self.worker_pixels:
                self.stats["refused_busy"] += 1
                raise Busy("the service is decoding other large images; try again shortly",
                           retry_after=RETRY_AFTER, hint="retry after the Retry-After delay")
            self._in_flight += weight
            self._keys[key] = mine + 1
            s = self.stats
            s["admitted_heavy"] += 1
            s["max_in_flight_pixels"] = max(s["max_in_flight_pixels"], self._in_flight)
            s["max_in_flight_per_key"] = max(s["max_in_flight_per_key"], mine + 1)
            s["largest_admitted_pixels"] = max(s["largest_admitted_pixels"], weight)
        try:
            yield
        finally:
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

    def counters(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {**self.stats, "in_flight_pixels": self._in_flight}
        return out


def image_limits(max_pixels: int) -> Limits:
    return replace(DEFAULT_LIMITS, max_pixels=max_pixels)


def hash_within_budget(gate: UploadGate, limits: Limits, key: object, data: bytes, name: str,
                       dihedral: bool) -> ImageHashes:
    """Hash an upload on this thread: refused over the pixel budget (header only), then
    admitted by its decode's weight. Raises TooLarge, Busy, RateLimited, decode errors."""
    weight = decode.decode_pixels(decode.open_image(data, name, limits))
    with gate.held(key, weight):
        if weight >= gate.heavy_from:
            return _run_heavy(hash_image_bytes, data, path=name, mode="fast", dihedral=dihedral, limits=limits)
        return hash_image_bytes(data, path=name, mode="fast", dihedral=dihedral, limits=limits)


def provenance_within_budget(gate: UploadGate, limits: Limits, key: object, data: bytes, name: str,
                             fmt: str, trust_anchors: Path | None) -> Any:
    from ..provenance.analyzer import analyze_provenance

    try:
        opened = decode.open_image(data, name, limits)
        weight = opened.width * opened.height * PROVENANCE_WEIGHT
    except (UnsupportedFormat, DecodeError):
        weight = 0  # not decodable here: provenance reads its metadata, and decodes nothing
    with gate.held(key, weight):
        if weight >= gate.heavy_from:
            return _run_heavy(analyze_provenance, Path(name), data, fmt, trust_anchors=trust_anchors, limits=limits)
        return analyze_provenance(Path(name), data, fmt, trust_anchors=trust_anchors, limits=limits)


async def run_hash(request: Request, data: bytes, name: str, dihedral: bool) -> ImageHashes:
    state = request.app.state.assay
    return await run_in_threadpool(hash_within_budget, state.uploads, state.image_limits,
                                   getattr(request.state, "key_id", None), data, name, dihedral)


async def run_provenance(request: Request, data: bytes, name: str, fmt: str, trust_anchors: Path | None) -> Any:
    state = request.app.state.assay
    return await run_in_threadpool(provenance_within_budget, state.uploads, state.image_limits,
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
        "memory": memory(),
    }
    return Response(orjson.dumps(body), media_type="application/json")
