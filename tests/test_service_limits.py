"""Limits of `assay serve`, each against a real 2-worker server (tests/service_helpers.py)
on SQLite and on PostgreSQL: concurrent writers on one SQLite file, rate-limit bursts
that follow a key's rate, authentication before the body is read, connections that
stall in their headers, and the cost of image uploads (pixel budget, heavy uploads
per worker and per key, memory given back)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from assay.service.app import open_store
from assay.service.auth import create_key
from assay.service.settings import Settings
from service_helpers import Server, running

WORKERS = 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store of the server under test: an SQLite file (the default kind), then a
    fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return str(request.getfixturevalue("pg_url"))


def _key(db: str, role: str, rate_limit: float | None = None) -> str:
    store = open_store(Settings(db=db))
    try:
        return create_key(store.engine, f"{role}-{random.random()}", role, rate_limit)[1]
    finally:
        store.close()


@pytest.fixture
def serve(db: str, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """(server, db) with the default settings; tests needing others start their own."""
    with running(db, WORKERS, tmp_path) as srv:
        yield srv, db


# -- writers on one store ------------------------------------------------------------------
def test_concurrent_writers_all_succeed(serve: tuple[Server, str]) -> None:
    """4 threads x 60 entry writes through both workers: on SQLite the writers queue on
    the file's lock (WAL, immediate transactions) instead of failing with 503 'database
    is locked'; every entry is then in the bank."""
    srv, db = serve
    h = {"X-API-Key": _key(db, "curate")}
    with httpx.Client(base_url=srv.url, headers=h, timeout=60) as c:
        assert c.post("/v1/banks", json={"name": "w"}).status_code == 201

    def writer(t: int) -> list[tuple[int, str]]:
        rng = random.Random(t)
        out = []
        # A connection per thread, new for each write: both workers take writes.
        for i in range(60):
            r = httpx.post(f"{srv.url}/v1/banks/w/entries", headers=h, timeout=60, json={
                "content_id": f"t{t}-{i}", "signals": {"pdq": f"{rng.getrandbits(256):064x}"}})
            out.append((r.status_code, r.text[:200]))
        return out

    with ThreadPoolExecutor(4) as pool:
        results = [x for chunk in pool.map(writer, range(4)) for x in chunk]
    failures = [r for r in results if r[0] not in (200, 201)]
    assert failures == [], f"{len(failures)} of {len(results)} writes failed: {failures[:3]}"
    with httpx.Client(base_url=srv.url, headers=h, timeout=60) as c:
        assert c.get("/v1/banks/w").json()["entries"] == 240
