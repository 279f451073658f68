"""Bank import and index-load speed, SQLite and PostgreSQL, side by side with the
databases' own bulk loaders.

For each size N this generates N random PDQ hashes as a plain list file, then measures:

* ``assay import``: parse_file + Store.import_records (validation, dedupe, one
  transaction) into a fresh store;
* ``assay re-import``: the same file again (idempotent: everything is a duplicate);
* ``load_signals``: the index-building read of all N hashes into numpy arrays;
* baselines a user would otherwise reach for: ``sqlite3 .import`` / ``psql \\copy``
  of the file into a one-column table with a unique index (the raw floor: no
  validation, no entries, no idempotence);
* the naive read of the same store: a joined SELECT through SQLAlchemy and one
  ``bytes.fromhex`` per row.

PostgreSQL runs in a dedicated schema that is dropped afterwards. Medians over
``--repeat`` runs (imports of N >= 5M run once: they take minutes).

    .venv/bin/python bench/bench_import.py --n 1000000 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from assay.banks.formats import parse_file
from assay.banks.store import Store

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def write_list(path: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        fh.write("# random PDQ hashes for bench_import\n")
        for start in range(0, n, 1_000_000):
            m = min(1_000_000, n - start)
            raw = rng.integers(0, 256, size=(m, 32), dtype=np.uint8).tobytes().hex()
            fh.write("\n".join(raw[i * 64 : (i + 1) * 64] for i in range(m)))
            fh.write("\n")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def median_of(times: list[float]) -> float:
    return statistics.median(times)


class Target:
    """One database: how to get a fresh store URL and run the baseline loader."""

    name: str

    def fresh_url(self) -> str: ...
    def baseline_load(self, list_file: Path) -> float: ...
    def cleanup(self) -> None: ...


class SqliteTarget(Target):
    name = "sqlite"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0
        self.plain = work / "plain.sqlite3"

    def fresh_url(self) -> str:
        self.count += 1
        db = self.work / f"assay-{self.count}.sqlite3"
        db.unlink(missing_ok=True)
        return f"sqlite:///{db}"

    def baseline_load(self, list_file: Path) -> float:
        self.plain.unlink(missing_ok=True)
        body = self.work / "body.txt"
        with list_file.open() as src, body.open("w") as dst:
            dst.writelines(line for line in src if not line.startswith("#"))
        script = (
            "CREATE TABLE h(value TEXT NOT NULL UNIQUE);\n"
            "BEGIN;\n.mode csv\n"
            f".import {body} h\nCOMMIT;\n"
        )
        t, _ = timed(lambda: subprocess.run(["sqlite3", str(self.plain)], input=script, text=True, check=True))
        body.unlink()
        return t


    def cleanup(self) -> None:
        pass


class PostgresTarget(Target):
    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.base = url
        self.engine = sa.create_engine(url)
        self.schemas: list[str] = []
        self.plain_schema = self._schema()

    def _schema(self) -> str:
        schema = f"bench_import_{uuid.uuid4().hex[:10]}"
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        self.schemas.append(schema)
        return schema

    def fresh_url(self) -> str:
        return f"{self.base}?options=-csearch_path%3D{self._schema()}"

    def _psql_url(self) -> str:
        return sa.make_url(self.base).set(drivername="postgresql").render_as_string(hide_password=False)

    def baseline_load(self, list_file: Path) -> float:
        s = self.plain_schema
        script = (
            f'DROP TABLE IF EXISTS "{s}".h; CREATE TABLE "{s}".h(value TEXT NOT NULL UNIQUE);\n'
            f"\\copy \"{s}\".h FROM PROGRAM 'grep -v ^# {list_file}'\n"
        )
        t, _ = timed(lambda: subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", self._psql_url()], input=script, text=True, check=True))
        return t


    def cleanup(self) -> None:
        with self.engine.begin() as conn:
            for s in self.schemas:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')
        self.engine.dispose()


def naive_read(url: str) -> float:
    """What a straightforward implementation does: an ORM-style joined SELECT of the
    enabled signals through SQLAlchemy, then one bytes.fromhex per row."""
    engine = sa.create_engine(url)
    query = sa.text(
        "SELECT s.id, s.bank_id, s.value FROM signals s JOIN entries e ON e.id = s.entry_id "
        "JOIN banks b ON b.id = s.bank_id WHERE s.signal_type = 'pdq' AND e.enabled AND b.enabled"
    )

    def read() -> np.ndarray:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        assert len(ids) == len(rows)
        return np.array([np.frombuffer(bytes.fromhex(r[2]), np.uint8) for r in rows])

    try:
        t, _ = timed(read)
    finally:
        engine.dispose()
    return t


def bench_target(target: Target, list_file: Path, n: int, repeat: int) -> dict[str, float]:
    imports: list[float] = []
    url = ""
    runs = 1 if n >= 5_000_000 else repeat
    for _ in range(runs):
        url = target.fresh_url()
        with Store(url) as store:
            store.create_bank("bench")
            t, res = timed(lambda store=store: store.import_records("bench", parse_file(list_file), str(list_file)))
            assert res.added_signals == n, res  # type: ignore[attr-defined]
            imports.append(t)
    with Store(url) as store:
        t_re, res = timed(lambda: store.import_records("bench", parse_file(list_file), str(list_file)))
        assert res.added_signals == 0 and res.duplicates == n, res  # type: ignore[attr-defined]
        loads = []
        for _ in range(repeat):
            t, loaded = timed(lambda: store.load_signals("pdq"))
            assert loaded.values.shape == (n, 32)  # type: ignore[attr-defined]
            loads.append(t)
    base_loads = [target.baseline_load(list_file) for _ in range(runs)]
    # The naive read holds every row as Python objects (~2.5 GB at 10M): only up to 2M.
    base_reads = [naive_read(url) for _ in range(repeat)] if n <= 2_000_000 else [float("nan")]
    return {
        "import": median_of(imports),
        "reimport": t_re,
        "load": median_of(loads),
        "base_import": median_of(base_loads),
        "base_read": median_of(base_reads),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg", default=os.environ.get("ASSAY_TEST_PG", PG_DEFAULT))
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    # Interrupted runs still drop their PostgreSQL schemas and temporary files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = Path(tempfile.mkdtemp(prefix="assay-bench-import-", dir=args.workdir))
    print(f"python {sys.version.split()[0]}, sqlite {__import__('sqlite3').sqlite_version}, "
          f"cpus {os.cpu_count()}, workdir {work}")
    print("| database | N | assay import | rows/s | re-import (all duplicates) | raw bulk load "
          "(CLI, no validation) | import / raw | load_signals | naive SELECT+fromhex | naive / load_signals |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for n in args.n:
            list_file = work / f"pdq-{n}.txt"
            write_list(list_file, n)
            targets: list[Target] = []
            if not args.no_sqlite:
                targets.append(SqliteTarget(work))
            if not args.no_pg:
                targets.append(PostgresTarget(args.pg))
            for target in targets:
                try:
                    r = bench_target(target, list_file, n, args.repeat)
                finally:
                    target.cleanup()
                print(
                    f"| {target.name} | {n:,} | {r['import']:.1f} s | {n / r['import']:,.0f} | "
                    f"{r['reimport']:.1f} s | {r['base_import']:.1f} s | {r['import'] / r['base_import']:.2f}x | "
                    f"{r['load']:.2f} s | {r['base_read']:.2f} s | {r['base_read'] / r['load']:.1f}x |".replace("nan s", "not run").replace("nanx", "-"),
                    flush=True,
                )
                for f in work.glob("assay-*.sqlite3*"):
                    f.unlink()
            list_file.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
