"""The per-worker index: a Matcher that follows the store on a background thread and
answers lookups without touching the database on the hot path.

``Matcher.lookup`` asks the store for bank thresholds and for the metadata of index
hits. ``MetadataCache`` sits between the two: thresholds are re-read by the follower
thread on every refresh, resolved hits are kept (bounded) and evicted when the store
reports them removed. So lookups that miss (most traffic) or hit cached entries keep
answering from memory while the database is unreachable; only a first hit on an
uncached entry needs the database (503 while it is down).

Following by ``signals.id > last`` is sound because the store serialises its writers
(an advisory lock on PostgreSQL), so ids become visible in order.

The follower refreshes every ``interval`` seconds, and at once when woken: by a write
through this worker (``poke``) or, on PostgreSQL, by a notice that a write committed
anywhere (a listener thread holding one LISTEN connection; polling stays the fallback
while that connection is down). It also prunes old change records now and then.
"""

from __future__ import annotations

import contextvars
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool

from ..banks.matcher import Matcher, Query
from ..banks.store import ChangeListener, Changes, SignalRef, Store
from ..errors import Busy, StoreError
from ..report.schema import Match
from . import metrics

log = logging.getLogger("assay.service.index")
# Up to this many queries a lookup runs on the event loop (about 0.1-0.3 ms each at 1M
# PDQ hashes); more go to a thread.
INLINE_QUERIES = 16
LOADING_RETRY_AFTER = 5.0  # seconds
_cache_only: contextvars.ContextVar[bool] = contextvars.ContextVar("assay_cache_only", default=False)


class NeedsStore(Exception):
    """Raised inside a cache-only lookup when a hit's metadata is not cached."""


class MetadataCache:
    """A Store stand-in for the Matcher: everything passes through, except the two
    metadata reads of ``lookup``, which are served from memory when possible."""

    def __init__(self, store: Store, max_refs: int = 500_000) -> None:
        self._store = store
        self._max = max_refs
        self._refs: dict[int, SignalRef] = {}
        self._thresholds: dict[int, int | None] | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def bank_thresholds(self) -> dict[int, int | None]:
        if self._thresholds is None:
            self._thresholds = self._store.bank_thresholds()
        return self._thresholds

    def resolve(self, signal_ids: Sequence[int]) -> dict[int, SignalRef]:
        refs = self._refs
        missing = [i for i in signal_ids if i not in refs]
        if missing:
            if _cache_only.get():
                raise NeedsStore()
            fetched = self._store.resolve(missing)
            with self._lock:
                if len(refs) + len(fetched) > self._max:
                    refs.clear()  # crude but bounded; the hot set refills at once
                refs.update(fetched)
        return {i: refs[i] for i in signal_ids if i in refs}

    def changes_since(self, signal_id: int, seq: int) -> Changes:
        # ChangesPruned passes through: the Matcher loads again, and refs stay valid
        # (signal ids are never reused; a hit means the signal is active now).
        changes = self._store.changes_since(signal_id, seq)
        thresholds = self._store.bank_thresholds()
        with self._lock:
            # Cached refs carry the bank's threshold and the bank's enabled state.
            if changes.banks_changed or thresholds != self._thresholds:
                self._refs.clear()
            else:
                for sid in changes.removed_signal_ids.tolist():
                    self._refs.pop(int(sid), None)
            self._thresholds = thresholds
        return changes


class LiveIndex:
    """One worker's Matcher, its follower thread (and listener thread) and its health.

    ``retention``: change records older than this are pruned every ``prune_interval``
    seconds (None: never). ``listen_retry``: seconds between attempts to LISTEN again
    after the listen connection broke."""

    def __init__(self, store: Store, *, interval: float, snapshot_dir: Path | None,
                 retention: timedelta | None = None, prune_interval: float = 3600.0,
                 listen_retry: float = 5.0, private_max_bytes: int = 0) -> None:
        self.store = store
        self.cache = MetadataCache(store)
        self.matcher = Matcher(self.cache, snapshot_dir=snapshot_dir,  # type: ignore[arg-type]
                               private_max_bytes=private_max_bytes)
        self.interval = interval
        self.retention = retention
        self.prune_interval = prune_interval
        self.listen_retry = listen_retry
        self.loaded = False
        self.listening = False  # a LISTEN connection is up (PostgreSQL)
        self._listener: ChangeListener | None = None
        self.last_ok = 0.0
        self.last_error: str | None = None
        # Why rounds ran, for health checks and tests: a notice from the store, or the
        # interval running out with nothing waking the follower (a poll).
        self.notices = 0
        self.polls = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener_thread: threading.Thread | None = None
        self._next_prune = 0.0  # first prune on the first round: workers may never live an hour
        self._refresh_lock = threading.Lock()
        self._snapshot_root = snapshot_dir
        # The kinds of variant hashes the banks hold (Store.pdq_variant_kinds): an upload's
        # query variants only those can match are computed only with them. None: unknown.
        self.variant_kinds: frozenset[str] | None = None

    def load(self, lock_file: Path | None = None) -> None:
        # Workers of one instance share the on-disk snapshot: the first builds it, the
        # others wait on the file lock and then map it instead of rebuilding.
        metrics.INDEX_LOADED.set(0)
        started = time.perf_counter()
        with _file_lock(lock_file):
            self.matcher.load()
        self.cache.bank_thresholds()
        self._read_variant_kinds()
        # The index kernels compile on first use (seconds): pay that before /ready says so.
        self.matcher.lookup([Query("pdq", "0" * 64)], threshold=31)
        self.loaded = True
        self.last_ok = time.monotonic()
        metrics.INDEX_LOAD.observe(time.perf_counter() - started)
        metrics.INDEX_LOADED.set(1)
        self._followed(changed=True)

    def _read_variant_kinds(self) -> None:
        try:
            self.variant_kinds = self.store.pdq_variant_kinds()
        except Exception:  # unknown: every query variant, never a missed match
            self.variant_kinds = None

    def _followed(self, changed: bool) -> None:
        metrics.INDEX_FOLLOWED.set(time.time())
        if changed:
            for name, n in self.sizes().items():
                metrics.INDEX_SIGNALS.labels(name).set(n)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="assay-index-follower", daemon=True)
        self._thread.start()
        self._listener_thread = threading.Thread(target=self._listen, name="assay-index-listener", daemon=True)
        self._listener_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._listener_thread):
            if thread is not None:
                thread.join(timeout=5)

    def poke(self) -> None:
        """Refresh now (after a write through this worker)."""
        self._wake.set()

    def load_or_retry(self, lock_file: Path | None, then: Callable[[], None] | None = None,
                      retry: float = 5.0) -> bool:
        """Load now (the worker takes no request before this returns); once loaded, the
        follower starts, then ``then`` runs. A failed load (the store unreachable, the
        index unreadable) does not end the worker: it answers meanwhile (/status
        INDEX-NOT-LOADED, /ready 503, lookups 503 busy) and a thread tries again every
        ``retry`` seconds. True when loaded now."""

        def loaded() -> None:
            self.start()
            if then is not None:
                then()

        def failed(exc: Exception) -> None:
            self.last_error = f"index load failed: {exc}"
            log.warning("loading the index failed (next try in %g s): %s", retry, exc)

        try:
            self.load(lock_file)
        except Exception as exc:
            failed(exc)
        else:
            loaded()
            return True

        def again() -> None:
            while not self._stop.wait(retry):
                try:
                    self.load(lock_file)
                except Exception as exc:
                    failed(exc)
                    continue
                self.last_error = None
                loaded()
                return

        threading.Thread(target=again, name="assay-index-load", daemon=True).start()
        return False

    def refresh(self) -> bool:
        if not self.loaded:
            return False  # the load reads what is committed; the follower goes on from there
        started = time.perf_counter()
        with self._refresh_lock:
            changed = self.matcher.refresh()
        if changed:
            self._read_variant_kinds()
        self.last_ok = time.monotonic()
        self.last_error = None
        metrics.INDEX_REFRESH.observe(time.perf_counter() - started)
        self._followed(changed)
        return changed

    def _run(self) -> None:
        while not self._stop.is_set():
            # Cleared before the refresh, not after the wait: a wake-up that comes while
            # the refresh runs (a write it may have missed) makes one more round.
            self._wake.clear()
            try:
                self.refresh()
            except StoreError as exc:
                self.last_error = exc.message
            except Exception as exc:  # keep following; never kill the thread
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("index refresh failed")
            self._prune_if_due()
            if not self._wake.wait(self.interval):
                self.polls += 1

    def _prune_if_due(self) -> None:
        """Delete old change records. Every worker does it; it is idempotent and writers
        take turns, so the first one due does the work and the others find none."""
        if self.retention is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self.prune_interval
        try:
            deleted = self.store.prune_changes(older_than=self.retention)
        except Exception as exc:  # not a health matter: lookups and following go on
            log.warning("pruning old change records failed (next try in %.0f s): %s", self.prune_interval, exc)
            return
        if deleted:
            log.info("pruned %d change records older than %s", deleted, self.retention)

    def _listen(self) -> None:
        """Wake the follower whenever a write commits (PostgreSQL). Never ends the
        worker: while the connection is down the follower polls, and this thread
        tries to LISTEN again every ``listen_retry`` seconds."""
        down = False
        while not self._stop.is_set():
            try:
                listener = self.store.listen_changes()
            except Exception as exc:
                if not down:
                    log.warning("cannot LISTEN for store changes, polling meanwhile: %s", exc)
                down = True
                self._stop.wait(self.listen_retry)
                continue
            if listener is None:
                return  # SQLite: nothing to listen to; the follower polls
            if down:
                log.warning("listening for store changes again")
            down = False
            self._listener = listener
            self.listening = True
            self._wake.set()  # writes committed while nobody listened
            try:
                while not self._stop.is_set():
                    if listener.wait(timeout=1.0):  # bounded, so that stop() is seen
                        self.notices += 1
                        self._wake.set()
            except Exception as exc:
                log.warning("lost the LISTEN connection, polling meanwhile: %s", exc)
                down = True
            finally:
                self.listening = False
                self._listener = None
                listener.close()
            self._stop.wait(self.listen_retry)

    def store_reachable(self, within: float = 3.0) -> bool:
        return self.last_error is None and time.monotonic() - self.last_ok < within

    def lookup_cached(self, queries: Sequence[Query], threshold: int | None,
                      include_low_quality: bool) -> list[Match]:
        """Lookup that never waits on the database; raises NeedsStore instead."""
        token = _cache_only.set(True)
        try:
            return self.matcher.lookup(queries, threshold=threshold, include_low_quality=include_low_quality)
        finally:
            _cache_only.reset(token)

    def lookup(self, queries: Sequence[Query], threshold: int | None, include_low_quality: bool) -> list[Match]:
        return self.matcher.lookup(queries, threshold=threshold, include_low_quality=include_low_quality)

    async def lookup_many(self, queries: Sequence[Query], threshold: int | None,
                          include_low_quality: bool) -> list[Match]:
        if not self.loaded:
            exc = Busy("this worker is still loading its index", retry_after=LOADING_RETRY_AFTER,
                       hint="retry after the Retry-After delay; /ready says when the worker is ready")
            exc.limit = "index-loading"  # type: ignore[attr-defined]
            raise exc
        matches = await self._lookup_many(queries, threshold, include_low_quality)
        metrics.observe_matches(queries, matches)
        return matches

    async def _lookup_many(self, queries: Sequence[Query], threshold: int | None,
                           include_low_quality: bool) -> list[Match]:
        """Every query in one index pass per signal type and one metadata read.

        A few queries (a single lookup, its dihedral variants, an upload's hashes)
        answer inline from memory: a thread handoff would cost more than the search.
        Larger batches, and any lookup whose hits are not cached yet, run on a thread
        so the event loop keeps serving other requests meanwhile; they search once,
        never a cache-only attempt first and then again."""
        if len(queries) <= INLINE_QUERIES:
            try:
                return self.lookup_cached(queries, threshold, include_low_quality)
            except NeedsStore:
                pass
        return await run_in_threadpool(self.lookup, queries, threshold, include_low_quality)

    async def match_video(self, signals: Sequence[Any], frames: Sequence[Any], threshold: int | None,
                          trimmed: Sequence[Any] = (), displayed: Sequence[Any] = (),
                          mirrored: Sequence[Any] = (), turned: Mapping[str, Sequence[Any]] | None = None,
                          ) -> list[Match]:
        """A video's exact signals and vPDQ frames, banked videos matched by Meta's rule
        (``Matcher.match_subject``); on a thread: a video has dozens to thousands of frames."""
        if not self.loaded:
            exc = Busy("this worker is still loading its index", retry_after=LOADING_RETRY_AFTER,
                       hint="retry after the Retry-After delay; /ready says when the worker is ready")
            exc.limit = "index-loading"  # type: ignore[attr-defined]
            raise exc
        return await run_in_threadpool(partial(self.matcher.match_subject, signals, frames, trimmed,
                                               displayed=displayed, mirrored=mirrored, turned=turned,
                                               threshold=threshold))

    def sizes(self) -> dict[str, int]:
        return self.matcher.size() if self.loaded else {}


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
