"""Shared fixtures: the public test data folder, a throw-away PostgreSQL schema, and a
bank store on each database."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# One BLAS thread in the tests and in every process they start (servers, workers, CLI
# runs): the suite's matrices are small (models at 1/16 scale), where a threaded BLAS
# spends more on waking its threads than on arithmetic, and on a busy machine far more
# (an 80x720 SVD: 4.5 ms of CPU with one thread, 330 ms with two, under load). The same
# reason models/fingerprint.py gives for its _one_blas_thread. Values do not depend on it.
# Set before numpy loads; setdefault keeps a value the caller chose.
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
for _var in _BLAS_THREADS:
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASSAY_TESTDATA", ROOT.parent / "shared" / "testdata"))
PG_URL = os.environ.get("ASSAY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real user's data directory or store from a test."""
    monkeypatch.setenv("ASSAY_DATA_DIR", str(tmp_path_factory.mktemp("assay-data")))
    monkeypatch.delenv("ASSAY_DB", raising=False)


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata; skipped where absent, a failure under CI."""
    if not SHARED.is_dir():
        msg = f"public test data not found at {SHARED} (see README: tests that need it skip)"
        if IN_CI:
            pytest.fail(msg + "; under CI it must be present")
        pytest.skip(msg)
    return SHARED


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A URL to a fresh schema on the real PostgreSQL server, dropped afterwards (for
    fixtures of any scope); skipped where the server is absent, a failure under CI."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # server not there
        engine.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} unreachable under CI: {exc}")
        pytest.skip(f"PostgreSQL at {PG_URL} unreachable: {exc}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to a fresh schema on the real PostgreSQL server; dropped afterwards."""
    with pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new bank store's URL: an SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'banks.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    """An open Store at ``store_url`` (closed afterwards)."""
    from assay.banks.store import Store

    s = Store(store_url)
    try:
        yield s
    finally:
        s.close()
