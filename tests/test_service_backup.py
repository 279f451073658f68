"""Backup and restore of a PostgreSQL store, as docs/operations.md tells an operator to
do it: pg_dump of the store's schema, pg_restore into a new database, and the index
rebuilt from the restored store holds the same entries and answers every lookup as the
index of the original does (removed and disabled entries, bank thresholds, keys)."""

from __future__ import annotations

import random
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from assay.banks.matcher import Matcher, Query
from assay.banks.store import ImportRecord, Store
from assay.service.auth import create_key, list_keys

pytestmark = pytest.mark.postgres


def _flip(value: str, bits: int, rng: random.Random) -> str:
    n = int(value, 16)
    for b in rng.sample(range(256), bits):
        n ^= 1 << b
    return f"{n:064x}"


def _answers(matcher: Matcher, queries: list[Query]) -> list[tuple]:
    out = []
    for q in queries:
        for m in matcher.lookup([q], threshold=None):
            out.append((q.value, m.bank, m.content_id, m.signal_type, m.value, m.distance))
    return sorted(out)


def test_dump_restore_gives_an_equal_index(tmp_path: Path) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump / pg_restore not installed")
    from conftest import PG_URL, pg_schema

    rng = random.Random(7)
    with pg_schema() as url:
        schema = unquote(url).rsplit("=", 1)[1]
        store = Store(url)
        store.create_bank("known", pdq_threshold=24)
        store.create_bank("other")
        pdqs = [f"{rng.getrandbits(256):064x}" for _ in range(300)]
        for bank, parity in (("known", 1), ("other", 0)):
            store.import_records(bank, (ImportRecord(f"c{i}", (("pdq", v), ("md5", f"{rng.getrandbits(128):032x}")))
                                        for i, v in enumerate(pdqs) if i % 2 == parity), "test")
        store.remove_entry("known", "c1")
        store.set_entry_enabled("other", "c2", False)
        create_key(store.writer, "pipeline", "match", None)
        queries = [Query("pdq", _flip(v, rng.randrange(0, 30), rng)) for v in pdqs] + \
            [Query("pdq", f"{rng.getrandbits(256):064x}") for _ in range(50)]
        original = Matcher(store, snapshots=False)
        original.load()
        want, want_sizes = _answers(original, queries), original.size()
        want_keys = [(k.name, k.role, k.prefix) for k in list_keys(store.engine)]
        store.close()
        assert want and any(a[0] != a[4] for a in want)  # near matches, not only exact ones

        dump = tmp_path / "assay.dump"
        u = sa.make_url(PG_URL)
        conn = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
        subprocess.run(["pg_dump", *conn, "--format=custom", f"--schema={schema}", f"--file={dump}",
                        u.database or "test"], check=True, capture_output=True, timeout=300)
        restored_db = f"restore_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{restored_db}"'))
        try:
            subprocess.run(["pg_restore", *conn, "--no-owner", f"--dbname={restored_db}", str(dump)],
                           check=True, capture_output=True, timeout=300)
            restored_url = url.replace(f"/{u.database}?", f"/{restored_db}?")
            restored = Store(restored_url, create=False)
            try:
                index = Matcher(restored, snapshots=False)
                index.load()
                assert index.size() == want_sizes
                assert _answers(index, queries) == want
                assert [(k.name, k.role, k.prefix) for k in list_keys(restored.engine)] == want_keys
                # The restored store takes writes and the index follows them.
                restored.add_entry("known", "after-restore", {"pdq": pdqs[0][::-1]})
                index.refresh()
                assert any(m.content_id == "after-restore"
                           for m in index.lookup([Query("pdq", pdqs[0][::-1])], threshold=0))
            finally:
                restored.close()
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{restored_db}" WITH (FORCE)'))
            admin.dispose()
