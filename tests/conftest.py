"""Shared fixtures: the public test data folder, a throw-away PostgreSQL schema, and a
bank store on each database."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
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


# -- byte-code and numba's first compile, beside the first tests (tests/warmup.py) ---------
# Modules whose tests compile numba kernels, and the warm-up stage that compiles them: they
# wait for that stage if the warm-up has not done it yet, rather than compile the same
# kernels beside it.
_NEEDS = {"test_camera": "camera", "test_prnu_": "camera", "test_watermark": "watermark",
          "test_text_": "text", "test_index.py": "index", "test_pdq_weights": "pdq"}
_warm: subprocess.Popen[bytes] | None = None
_warm_dir: Path | None = None


def _stage_of(item: pytest.Item) -> str | None:
    return next((stage for prefix, stage in _NEEDS.items() if item.path.name.startswith(prefix)), None)


def _stages_named(args: list[str]) -> set[str] | None:
    """The stages the test files named on the command line need; None (every stage) when
    a folder is named, as CI does (testpaths)."""
    stages: set[str] = set()
    for arg in args or ["."]:
        path = Path(arg.split("::", 1)[0])
        if not path.is_file():
            return None
        stages |= {stage for prefix, stage in _NEEDS.items() if path.name.startswith(prefix)}
    return stages


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the warm-up at once: it runs during collection (~25 s of one core for the
    whole suite) and the first tests, on the other core."""
    global _warm, _warm_dir
    if session.config.option.collectonly:
        return
    stages = _stages_named(session.config.args)
    if stages == set():
        return  # only test files that compile no kernel: not worth a process
    _warm_dir = Path(tempfile.mkdtemp(prefix="assay-warmup-"))
    with (_warm_dir / "log").open("wb") as log:
        _warm = subprocess.Popen([sys.executable, str(Path(__file__).with_name("warmup.py")), str(_warm_dir),
                                  *sorted(stages or ())], stdout=log, stderr=subprocess.STDOUT)


def _warm_end(stop: bool) -> None:
    global _warm
    if _warm is None or _warm_dir is None:
        return
    if stop and _warm.poll() is None:
        _warm.terminate()  # our own child; numba writes each cache file whole or not at all
    rc = _warm.wait()
    if not stop and rc != 0:
        warnings.warn(f"tests/warmup.py failed ({rc}); the kernels compile where first used: "
                      f"{(_warm_dir / 'log').read_text(errors='replace')[-500:]}", stacklevel=1)
    _warm = None
    shutil.rmtree(_warm_dir, ignore_errors=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    if _warm is not None and not any(_stage_of(item) for item in session.items):
        _warm_end(stop=True)  # nothing selected compiles kernels


def pytest_runtest_setup(item: pytest.Item) -> None:
    stage = _stage_of(item)
    if _warm is None or _warm_dir is None or stage is None:
        return
    while not (_warm_dir / stage).exists():
        if _warm.poll() is not None:
            _warm_end(stop=False)  # ended without that stage: says why, if it failed
            return
        time.sleep(0.05)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _warm_end(stop=True)
    _close_shared_clusters()


# -- service clusters shared by adjacent modules (service_cluster.SHARED) ---------------------
def _shares_clusters(item: pytest.Item | None) -> bool:
    return bool(getattr(getattr(item, "module", None), "SHARES_CLUSTERS", False))


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by module-scoped parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that share clusters run one after the other, where the first of them
    would run; the order inside each module stays as it was."""
    first = next((i for i, item in enumerate(items) if _shares_clusters(item)), None)
    if first is not None:
        sharing = [item for item in items if _shares_clusters(item)]
        items[first:] = sharing + [item for item in items[first:] if not _shares_clusters(item)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    if _shares_clusters(item) and not _shares_clusters(nextitem):
        _close_shared_clusters()  # the last of them has run: no idle servers for the rest


def _close_shared_clusters() -> None:
    module = sys.modules.get("service_cluster")  # imported by the modules that share them
    if module is not None:
        module.SHARED.close()


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real user's data directory or store from a test, nor another
    test's choice of store."""
    monkeypatch.setenv("ASSAY_DATA_DIR", str(tmp_path_factory.mktemp("assay-data")))
    monkeypatch.delenv("ASSAY_DB", raising=False)
    # The CLI's --db/--create live in module state that the top command sets once a process;
    # a test invoking a sub-command directly would inherit an earlier test's.
    common = sys.modules.get("assay.cli._common")
    if common is not None:
        monkeypatch.setattr(common, "_state", {"db": None, "create": False})


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
