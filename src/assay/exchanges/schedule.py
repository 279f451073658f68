"""The service's exchange scheduler: every worker runs one, each wakes every ``tick``
seconds and fetches the enabled exchanges whose last fetch is older than ``interval``.
The lease in the ``exchanges`` row (assay.exchanges.config.claim) lets one worker at a
time fetch an exchange, across the workers of one instance and across instances
sharing a PostgreSQL store; the others skip it. Fetched pages reach every worker's
index as any bank write does (LiveIndex follows the store)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..banks.store import Store

log = logging.getLogger("assay.exchanges")


class Scheduler:
    def __init__(self, store: Store, *, interval: float, tick: float | None = None,
                 on_commit: Callable[[Any], None] | None = None,
                 on_done: Callable[[Any], None] | None = None) -> None:
        self.store = store
        self.interval = interval
        self.tick = tick if tick is not None else max(1.0, min(30.0, interval / 4))
        self.on_commit = on_commit
        self.on_done = on_done
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rounds = 0
        self.fetched = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            import threatexchange  # noqa: F401
        except ImportError:
            log.info("exchanges: python-threatexchange is not installed; no scheduled fetches")
            return
        self._thread = threading.Thread(target=self._run, name="assay-exchanges", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_once(self) -> int:
        from .fetch import fetch_due

        done = fetch_due(self.store, interval=self.interval, owner=self.owner,
                         sleep=lambda s: self._stop.wait(s), on_commit=self.on_commit,
                         on_done=self.on_done)
        self.rounds += 1
        self.fetched += len(done)
        return len(done)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception as exc:  # a store outage: try again next tick
                log.warning("exchanges: scheduled round failed: %s", exc)
            self._stop.wait(max(0.0, self.tick - (time.monotonic() - started)))
