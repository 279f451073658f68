"""A real 2-worker `assay serve` with one key per role, on SQLite or on a fresh
PostgreSQL schema, for test modules that share one server across their tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from assay.service.app import open_store
from assay.service.auth import create_key
from assay.service.settings import Settings
from conftest import pg_schema
from service_helpers import Server, running

ROLES = ("match", "curate", "admin")


@dataclass
class Cluster:
    server: Server
    db: str
    keys: dict[str, str]
    workers: int

    @property
    def url(self) -> str:
        return self.server.url

    def h(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def client(self, role: str | None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.h(role) if role else {}, timeout=30)

    def on_every_worker(self, ask: Callable[[httpx.Client], tuple[str, bool]], timeout: float = 30) -> None:
        """Until every worker answered ``ok`` in one round: ``ask`` returns (the
        X-Served-By of its answer, ok). Rounds open several connections at once, or
        one idle worker could take every connection."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()

        def one(_: int) -> tuple[str, bool]:
            with httpx.Client(base_url=self.url, timeout=30) as c:
                return ask(c)

        with ThreadPoolExecutor(4 * self.workers) as pool:
            while len(seen) < self.workers:
                assert time.monotonic() < deadline, f"only workers {seen} agree"
                answers = list(pool.map(one, range(4 * self.workers)))
                if all(ok for _, ok in answers):
                    seen |= {w for w, _ in answers}
                else:
                    seen.clear()
                    time.sleep(0.05)


def make_keys(db: str) -> dict[str, str]:
    store = open_store(Settings(db=db))
    try:
        return {r: create_key(store.engine, f"{r}-key", r)[1] for r in ROLES}
    finally:
        store.close()


@contextlib.contextmanager
def cluster(kind: str, tmp: Path, workers: int = 2, **env: str) -> Iterator[Cluster]:
    """``kind``: "sqlite" or "postgres". ``env``: ASSAY_SERVICE_* settings."""
    with contextlib.ExitStack() as stack:
        db = (f"sqlite:///{tmp / 'banks.sqlite3'}" if kind == "sqlite" else stack.enter_context(pg_schema()))
        keys = make_keys(db)
        env = {"ASSAY_SERVICE_REFRESH_INTERVAL": "0.05", "ASSAY_SERVICE_KEY_CACHE_SECONDS": "0", **env}
        server = stack.enter_context(running(db, workers, tmp, **env))
        yield Cluster(server, db, keys, workers)


KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class SharedClusters:
    """One default ``cluster(kind, ...)`` per kind for the test modules that set
    ``SHARES_CLUSTERS = True`` (each start of a 2-worker server costs seconds). conftest.py
    runs those modules one after the other and closes the clusters once the next test is
    in another module. Their tests share one store: each uses banks, keys and values of
    its own, and asserts nothing about what the store holds besides."""

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None
        self._clusters: dict[str, Cluster] = {}

    def get(self, kind: str, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
        if kind not in self._clusters:
            if self._stack is None:
                self._stack = contextlib.ExitStack()
            tmp = tmp_path_factory.mktemp(f"shared-{kind}")
            self._clusters[kind] = self._stack.enter_context(cluster(kind, tmp))
        return self._clusters[kind]

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._clusters.clear()


SHARED = SharedClusters()
