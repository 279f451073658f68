"""Where a worker runs its heavy image decodes (uploads.py decides which are heavy).

Kept free of the web framework: decoder processes import this module and the
hashing code, nothing else of the service.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from ..errors import TooLarge

T = TypeVar("T")
log = logging.getLogger("assay.service.decoder")


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


def _decoder_init() -> None:
    """Start of a decoder process: lower priority, gone with its worker, and the
    hashing code loaded now rather than on the first upload."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, HEAVY_NICE)
    except (OSError, AttributeError):
        pass
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="assay-decoder-watch",
                     daemon=True).start()
    from ..media import hashes  # noqa: F401


def _exit_with_parent(parent: int) -> None:
    # A worker that is killed, or stops before its pool told the decoder to, would leave
    # it waiting for work for ever (found: orphans of stopped test servers).
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _in_decoder(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, dict[str, int]]:
    """Runs in the decoder process: ``fn``, then freed heap back to the system. Also
    returns this process's memory: its peak (the largest decode's), and its resident
    memory before and after the hand-back."""
    try:
        result = fn(*args, **kwargs)
    finally:
        before = memory()
        trim_memory()
    return result, {**before, "rss_after_trim_bytes": memory()["rss_bytes"], "pid": os.getpid()}


class HeavyDecoder:
    """Where one worker runs its heavy decodes.

    ``process`` (the default): ``processes`` decoder processes of its own, started
    fresh (spawn, not a fork of the worker and its index) at nice 10. The worker's
    event loop never shares the GIL or the heap with a decode: a decode's memory is
    the decoder's, returned when the decode ends, and an image that exhausts it ends
    the decoder, not the worker (a new one is started). ``thread``: threads of the
    worker at nice 10 (Linux schedules threads one by one), the decode's memory in
    the worker's heap."""

    def __init__(self, mode: str, processes: int) -> None:
        self.mode = mode
        self.processes = processes
        self._lock = threading.Lock()
        self._pool: Executor | None = None
        self.restarts = 0
        self.last_memory: dict[str, int] = {}

    def _executor(self) -> Executor:
        with self._lock:
            if self._pool is None:
                if self.mode == "process":
                    import multiprocessing as mp

                    self._pool = ProcessPoolExecutor(self.processes, mp_context=mp.get_context("spawn"),
                                                     initializer=_decoder_init)
                else:
                    self._pool = ThreadPoolExecutor(HEAVY_THREADS, thread_name_prefix="assay-heavy",
                                                    initializer=_lower_priority)
            return self._pool

    def start(self) -> None:
        """Start the decoder processes now (they take a second or two to import)."""
        if self.mode == "process":
            pool = self._executor()
            try:
                for f in [pool.submit(os.getpid) for _ in range(self.processes)]:
                    f.result()
            except Exception as exc:  # the first heavy upload tries again, and says why if it fails
                log.warning("the image decoder process did not start: %s", exc)

    def run(self, fn: Callable[..., T], name: str, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a decoder; this thread waits for it."""
        pool = self._executor()
        if self.mode != "process":
            return pool.submit(fn, *args, **kwargs).result()
        try:
            result, mem = pool.submit(_in_decoder, fn, *args, **kwargs).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:  # the first to notice starts a new one
                    self._pool = None
                    self.restarts += 1
                    pool.shutdown(wait=False, cancel_futures=True)
            raise TooLarge(name, "decoding this image exhausted the memory of the service's image decoder") from None
        self.last_memory = mem
        return result

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            # Waits for a decode in progress (seconds at most), so that the decoders
            # are told to stop before the worker exits.
            pool.shutdown(wait=True, cancel_futures=True)


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
