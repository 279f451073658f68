"""Alembic as the one path to the store schema: new stores, stores made by earlier
assay versions, concurrent opening, stores from a newer assay; SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import assay.banks.fingerprints as fp_mod
import assay.banks.store as store_mod
from assay.banks import migrations
from assay.banks.fingerprints import FingerprintStore
from assay.banks.store import Store
from assay.errors import StoreError
from assay.models.fingerprint import Fingerprint, fingerprint_arrays

CORE = {"meta", "banks", "entries", "signals", "changes"}
ALL_TABLES = CORE | {"api_keys", "audit_log", "jobs", "model_fingerprints", "alembic_version", "reviews"}
NOW = datetime(2026, 1, 2, 3, 4, 5)


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    e = sa.create_engine(store_url)
    yield e
    e.dispose()


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def stamped(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small_fingerprint(seed: int) -> Fingerprint:
    conv = np.random.default_rng(seed).standard_normal((32, 24, 3, 3), dtype=np.float32)
    return fingerprint_arrays({"model.diffusion_model.input_blocks.1.0.in_layers.2.weight": conv})


def make_old_store(engine: sa.Engine, *, stamp: str | None, with_fingerprints: bool) -> bytes | None:
    """A store as an earlier assay left it: the CLI's create_all and no alembic_version
    (``stamp=None``), or the service's migrations up to ``stamp``; with or without the
    model_fingerprints table its first use created. Returns the banked fingerprint."""
    if stamp is None:
        store_mod.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(store_mod.meta_table.insert().values(key="schema_version", value="1"))
    else:
        migrations.upgrade(engine, stamp)
    data = None
    with engine.begin() as conn:
        bank_id = conn.execute(store_mod.banks_table.insert().values(
            name="kept", description="old", enabled=True, pdq_threshold=12,
            created_at=NOW, updated_at=NOW)).inserted_primary_key[0]
        entry_id = conn.execute(store_mod.entries_table.insert().values(
            bank_id=bank_id, content_id="e1", note="n", source="old.csv", added_at=NOW,
            meta={"case": 7}, enabled=True)).inserted_primary_key[0]
        conn.execute(store_mod.signals_table.insert(), [
            dict(entry_id=entry_id, bank_id=bank_id, signal_type="md5", value="1" * 32),
            dict(entry_id=entry_id, bank_id=bank_id, signal_type="pdq", value="f" * 64),
        ])
    if with_fingerprints:
        fp_mod._meta.create_all(engine)  # what fingerprints.py did on first use
        fp = small_fingerprint(1)
        data = fp.to_bytes()
        with engine.begin() as conn:
            conn.execute(fp_mod.fingerprints_table.insert().values(
                bank_id=bank_id, content_id="model-a", kind="checkpoint", role=None, note="flagged",
                k=fp.k, created_at=NOW, summary=fp.summary().astype("<f4").tobytes(), data=data))
    return data


def test_revisions_known_to_the_open_path_are_the_scripts() -> None:
    assert list(migrations.REVISIONS) == migrations.script_revisions()
    assert migrations.HEAD == migrations.head()


def test_new_store_is_created_at_head(store_url: str, engine: sa.Engine) -> None:
    with Store(store_url) as s:
        s.create_bank("b")
    assert tables(engine) >= ALL_TABLES
    assert stamped(engine) == [migrations.HEAD]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == "1"
    with Store(store_url) as s:  # reopening at head changes nothing
        assert [b.name for b in s.list_banks()] == ["b"]
    assert stamped(engine) == [migrations.HEAD]


def test_reopening_at_head_does_not_write_or_load_alembic(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    Store(str(db)).close()
    before = digest(db)
    code = ("import sys; from assay.banks.store import Store; "
            f"Store({str(db)!r}).close(); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert digest(db) == before


@pytest.mark.parametrize(("stamp", "with_fingerprints"), [
    (None, False),  # CLI store before fingerprints were used
    (None, True),  # CLI store with fingerprints banked
    ("0002", True),  # service store (migrated to 0002) with fingerprints banked
    ("0002", False),
])
def test_old_store_is_adopted_with_its_data(store_url: str, engine: sa.Engine, stamp: str | None,
                                            with_fingerprints: bool) -> None:
    data = make_old_store(engine, stamp=stamp, with_fingerprints=with_fingerprints)
    assert "alembic_version" in tables(engine) if stamp else "alembic_version" not in tables(engine)
    with Store(store_url) as s:
        assert stamped(engine) == [migrations.HEAD]
        assert tables(engine) >= ALL_TABLES
        bank = s.get_bank("kept")
        assert (bank.description, bank.pdq_threshold) == ("old", 12)
        e = s.get_entry("kept", "e1")
        assert e is not None and (e.note, e.source, e.meta) == ("n", "old.csv", {"case": 7})
        assert e.signals == {"md5": ("1" * 32,), "pdq": ("f" * 64,)}
        assert len(s.load_signals("pdq")) == 1
        fs = FingerprintStore(s)
        if with_fingerprints:
            got = fs.get("kept", "model-a")
            assert got is not None and got.fingerprint.to_bytes() == data
        # and the adopted store takes new writes in every table
        s.add_entry("kept", "e2", {"md5": "2" * 32})
        fs.add("kept", "model-b", small_fingerprint(2))
        assert sorted(r.content_id for r in fs.list("kept")) == (
            ["model-a", "model-b"] if with_fingerprints else ["model-b"])
    with Store(store_url) as s:  # adopted once: the second open finds it at head
        assert stamped(engine) == [migrations.HEAD]
        assert s.stats("kept").entries == 2


def test_0004_brings_pruning_to_a_0003_store(store_url: str, engine: sa.Engine) -> None:
    make_old_store(engine, stamp="0003", with_fingerprints=False)
    with engine.begin() as conn:  # a removal recorded long ago by the 0003 code
        conn.execute(store_mod.changes_table.insert().values(
            bank_id=1, signal_id=99, signal_type="pdq", op="remove", at=NOW))
    with Store(store_url) as s:
        assert stamped(engine) == [migrations.HEAD]
        indexes = {ix["name"] for t in ("changes", "entries") for ix in sa.inspect(engine).get_indexes(t)}
        assert {"ix_changes_at", "ix_entries_disabled"} <= indexes
        assert s.changes_watermark() == 0 and s.max_change_seq() == 1
        assert s.prune_changes() == 1  # older than the default week
        assert s.get_entry("kept", "e1") is not None  # only change records go
    with Store(store_url) as s:
        assert s.changes_watermark() == 1 and s.max_change_seq() == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'changes_pruned_seq'")).scalar() == "1"


@pytest.mark.parametrize("with_variants", [False, True])
def test_0009_seeds_the_variant_kinds_key_so_no_reader_scans_every_entry(
        store_url: str, engine: sa.Engine, with_variants: bool) -> None:
    make_old_store(engine, stamp="0008", with_fingerprints=False)
    if with_variants:
        with engine.begin() as conn:
            conn.execute(store_mod.entries_table.insert().values(
                bank_id=1, content_id="v1", added_at=NOW, enabled=True,
                meta={"pdq_variants": {"a" * 64: "crop-4"}}))
    with Store(store_url) as s:
        expected = {"crop", "region", "trimmed", "upper"} if with_variants else set()
        assert s.pdq_variant_kinds() == expected
        with engine.begin() as conn:  # the answer is the key's, not a scan's
            conn.execute(store_mod.entries_table.delete())
        assert s.pdq_variant_kinds() == expected
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'pdq_variant_kinds'")).scalar()
    assert set(json.loads(raw)) == expected


def test_the_planner_reads_disabled_entries_from_their_partial_index(store_url: str, engine: sa.Engine) -> None:
    """The WHERE of ix_entries_disabled must be implied by the query the store runs on
    every refresh, or the index is never used (a scan of every entry instead)."""
    Store(store_url).close()
    query = sa.select(store_mod.entries_table.c.id).where(~store_mod.entries_table.c.enabled)
    sql = str(query.compile(engine))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # an empty table is scanned otherwise
            plan = " ".join(conn.exec_driver_sql("EXPLAIN " + sql).scalars())
        else:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_entries_disabled" in plan


def test_store_from_a_newer_assay_revision_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite3"
    with Store(str(db)) as s:
        s.create_bank("b")
    e = sa.create_engine(f"sqlite:///{db}")
    with e.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0042'"))
    e.dispose()
    before = digest(db)
    with pytest.raises(StoreError) as err:
        Store(str(db))
    msg = str(err.value)
    assert str(db) in msg and "'0042'" in msg and "newer" in msg and migrations.HEAD in msg
    assert digest(db) == before


@pytest.mark.postgres
def test_store_from_a_newer_assay_revision_is_refused_on_postgres(pg_url: str) -> None:
    Store(pg_url).close()
    e = sa.create_engine(pg_url)
    try:
        with e.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'abcdef99'"))
        with pytest.raises(StoreError, match=r"revision 'abcdef99' is newer") as err:
            Store(pg_url)
        assert "127.0.0.1" in str(err.value)
        assert stamped(e) == ["abcdef99"]  # untouched
    finally:
        e.dispose()


def test_another_apps_alembic_database_is_not_an_assay_store(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    e = sa.create_engine(f"sqlite:///{db}")
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('1975ea83b712')")
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    e.dispose()
    before = digest(db)
    with pytest.raises(StoreError, match="not an assay store"):
        Store(str(db))
    assert digest(db) == before


def test_read_only_old_store_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    e = sa.create_engine(f"sqlite:///{db}")
    make_old_store(e, stamp=None, with_fingerprints=False)
    e.dispose()
    before = digest(db)
    with pytest.raises(StoreError) as err:
        Store(f"sqlite:///file:{db}?mode=ro&uri=true")
    msg = str(err.value)
    assert str(db) in msg and "upgrading the store schema" in msg and "read-only" in msg
    assert digest(db) == before
    with Store(str(db)) as s:  # writable again: adopted
        assert s.get_entry("kept", "e1") is not None


def _open_in_processes(url: str, n: int) -> list[subprocess.Popen[str]]:
    code = "import sys; from assay.banks.store import Store; Store(sys.argv[1]).close()"
    return [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(n)]


def _finish(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


@pytest.mark.postgres
def test_processes_opening_a_new_store_at_once_migrate_it_once(pg_url: str) -> None:
    # Hold the schema lock while two processes open the same new store: both get past
    # the unlocked check and queue on the lock, so the second must see the first's
    # work when it gets its turn (rather than both running the migrations).
    app = f"assay-mig-{uuid.uuid4().hex[:8]}"
    holder = sa.create_engine(pg_url)
    procs: list[subprocess.Popen[str]] = []
    try:
        with holder.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": migrations.LOCK_KEY})
            conn.commit()
            try:
                procs = _open_in_processes(f"{pg_url}&application_name={app}", 2)
                waiting, deadline = 0, time.monotonic() + 120  # a guard against hanging, not a timing
                while waiting < 2:
                    if time.monotonic() > deadline:
                        pytest.fail("the openers never queued on the schema lock")
                    for p in procs:
                        if p.poll() is not None:
                            pytest.fail(f"opener exited before the lock was released: {p.communicate()[1]}")
                    waiting = conn.execute(sa.text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE a.application_name = :app AND l.locktype = 'advisory' AND NOT l.granted"),
                        {"app": app}).scalar_one()
                    conn.commit()
                    time.sleep(0.05)
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": migrations.LOCK_KEY})
                conn.commit()
        _finish(procs)
        assert stamped(holder) == [migrations.HEAD]
        assert tables(holder) >= ALL_TABLES
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        holder.dispose()


def test_processes_opening_a_new_sqlite_store_at_once(tmp_path: Path) -> None:
    db = tmp_path / "race.sqlite3"
    _finish(_open_in_processes(str(db), 3))
    e = sa.create_engine(f"sqlite:///{db}")
    try:
        assert stamped(e) == [migrations.HEAD]
        assert tables(e) >= ALL_TABLES
    finally:
        e.dispose()
