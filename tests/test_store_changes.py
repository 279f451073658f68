"""How the store tells its followers about writes: pruning of the ``changes`` table
(watermark, ChangesPruned) on SQLite and PostgreSQL, and LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from assay.banks.store import CHANGES_CHANNEL, ImportRecord, Store, changes_table
from assay.errors import ChangesPruned

WEEK = timedelta(days=7)


def pdq(i: int) -> str:
    return f"{i:064x}"


def backdate(store: Store, days: int, through_seq: int) -> None:
    """Make the change records up to ``through_seq`` look ``days`` old."""
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(changes_table.c.seq, changes_table.c.at)
                            .where(changes_table.c.seq <= through_seq)).all()
        for seq, at in rows:
            conn.execute(changes_table.update().where(changes_table.c.seq == seq)
                         .values(at=at - timedelta(days=days)))


def seqs(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(changes_table.c.seq).order_by(changes_table.c.seq)).scalars())


# -- pruning -----------------------------------------------------------------------------
def test_prune_deletes_old_changes_and_keeps_a_watermark(store: Store, store_url: str) -> None:
    store.create_bank("b")
    for i in range(4):
        store.add_entry("b", f"e{i}", {"pdq": pdq(i + 1), "md5": f"{i + 1:032x}"})
    assert store.changes_watermark() == 0
    store.remove_entry("b", "e0")  # two signals: two change records
    old = store.max_change_seq()
    store.set_entry_enabled("b", "e1", False)
    recent = seqs(store)[2:]
    backdate(store, 10, old)

    assert store.prune_changes(older_than=WEEK) == 2
    assert store.changes_watermark() == old
    assert seqs(store) == recent  # the recent ones are kept
    assert store.prune_changes(older_than=WEEK) == 0  # idempotent
    assert store.changes_watermark() == old
    with Store(store_url) as again:  # persisted with the store
        assert again.changes_watermark() == old
        assert again.max_change_seq() == max(recent)


def test_changes_since_a_pruned_cursor_raises(store: Store) -> None:
    store.create_bank("b")
    store.add_entry("b", "a", {"pdq": pdq(1)})
    store.add_entry("b", "c", {"pdq": pdq(2)})
    cursor = (store.max_signal_id(), store.max_change_seq())
    store.remove_entry("b", "a")
    pruned = store.max_change_seq()
    store.remove_entry("b", "c")
    backdate(store, 30, pruned)
    store.prune_changes(older_than=WEEK)

    with pytest.raises(ChangesPruned) as err:
        store.changes_since(*cursor)
    assert err.value.watermark == pruned
    # at the watermark nothing the cursor needs is gone: incremental as before
    ch = store.changes_since(cursor[0], pruned)
    assert ch.removed_signal_ids.tolist() == [2] and ch.last_seq == pruned + 1


def test_a_cursor_is_never_below_the_watermark_once_everything_is_pruned(store: Store) -> None:
    store.create_bank("b")
    store.add_entry("b", "a", {"pdq": pdq(1)})
    store.remove_entry("b", "a")
    last = store.max_change_seq()
    backdate(store, 30, last)
    assert store.prune_changes(older_than=WEEK) == 1
    assert seqs(store) == []
    # an index loaded now starts at the watermark, and can follow from there
    assert store.max_change_seq() == last
    ch = store.changes_since(store.max_signal_id(), store.max_change_seq())
    assert ch.last_seq == last and not len(ch.removed_signal_ids)
    # new change records continue above it (sequences never go back, even on SQLite)
    store.add_entry("b", "c", {"pdq": pdq(2)})
    store.remove_entry("b", "c")
    assert seqs(store) == [last + 1]


def test_a_big_prune_goes_in_short_steps(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog larger than PRUNE_STEP is deleted in several write transactions, each
    raising the watermark, and ends exactly like a prune in one step."""
    store.create_bank("b")
    for i in range(7):
        store.add_entry("b", f"e{i}", {"md5": f"{i + 1:032x}"})
    for i in range(6):
        store.remove_entry("b", f"e{i}")
    old = store.max_change_seq()
    store.remove_entry("b", "e6")  # recent: kept
    backdate(store, 30, old)
    writes: list[int] = []
    real_write = store._write

    def counting(action: str):  # type: ignore[no-untyped-def]
        if action == "pruning changes":
            writes.append(store.changes_watermark())
        return real_write(action)

    monkeypatch.setattr(store, "_write", counting)
    monkeypatch.setattr(Store, "PRUNE_STEP", 2)
    assert store.prune_changes(older_than=WEEK) == 6
    assert len(writes) == 3 and writes[0] == 0 < writes[1] < writes[2] < old  # the mark rose step by step
    assert store.changes_watermark() == old and seqs(store) == [old + 1]
    assert store.prune_changes(older_than=WEEK) == 0


def test_prune_is_a_write_that_joins_an_open_transaction(store: Store) -> None:
    store.create_bank("b")
    store.add_entry("b", "a", {"pdq": pdq(1)})
    store.remove_entry("b", "a")
    backdate(store, 30, store.max_change_seq())
    with pytest.raises(RuntimeError), store.transaction("test"):
        assert store.prune_changes(older_than=WEEK) == 1
        raise RuntimeError("roll back")
    assert store.changes_watermark() == 0 and len(seqs(store)) == 1


# -- LISTEN/NOTIFY -------------------------------------------------------------------------
def test_sqlite_has_no_listener(tmp_path: Path) -> None:
    with Store(str(tmp_path / "s.db")) as s:
        assert s.listen_changes() is None


def _notices_until_marker(pg_url: str, conn: psycopg.Connection, marker: str) -> list[str]:
    """Payloads received before ``marker`` (sent last by the test itself)."""
    e = sa.create_engine(pg_url)
    try:
        with e.begin() as c:
            c.execute(sa.text("SELECT pg_notify(:ch, :m)"), {"ch": CHANGES_CHANNEL, "m": marker})
    finally:
        e.dispose()
    got: list[str] = []
    for n in conn.notifies(timeout=30):
        if n.payload == marker:
            return got
        got.append(n.payload)
    raise AssertionError(f"the marker never arrived; got {got}")


@pytest.mark.postgres
def test_only_committed_writes_notify(pg_url: str) -> None:
    with Store(pg_url) as s:
        s.create_bank("b")
        schema = sa.make_url(pg_url).query["options"].split("=")[-1]
        # A raw listener, to count every notice: the ones before our marker are ours.
        cargs, cparams = s.engine.dialect.create_connect_args(s.engine.url)
        with s.engine.dialect.connect(*cargs, **cparams) as conn:
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANGES_CHANNEL}")
            with pytest.raises(RuntimeError), s.transaction("rolled back"):
                s.add_entry("b", "x", {"pdq": pdq(1)})
                raise RuntimeError("roll back")
            assert _notices_until_marker(pg_url, conn, "m1") == []
            with s.transaction("two writes, one commit"):
                s.add_entry("b", "x", {"pdq": pdq(1)})
                s.remove_entry("b", "x")
            assert _notices_until_marker(pg_url, conn, "m2") == [schema]  # one notice per commit


@pytest.mark.postgres
def test_every_write_that_changes_an_index_notifies(pg_url: str) -> None:
    with Store(pg_url) as s, Store(pg_url) as writer:
        listener = s.listen_changes()
        assert listener is not None
        try:
            writer.create_bank("b")
            writer.create_bank("gone")
            writes = {
                "add_entry": lambda: writer.add_entry("b", "x", {"pdq": pdq(1)}),
                "import_records": lambda: writer.import_records(
                    "b", [ImportRecord("y", (("pdq", pdq(2)),))], "test"),
                "set_entry_enabled": lambda: writer.set_entry_enabled("b", "x", False),
                "remove_entry": lambda: writer.remove_entry("b", "y"),
                "set_bank_enabled": lambda: writer.set_bank_enabled("b", False),
                "update_bank (threshold)": lambda: writer.update_bank("b", pdq_threshold=12),
                "delete_bank": lambda: writer.delete_bank("gone"),
            }
            for name, write in writes.items():
                write()
                assert listener.wait(timeout=30), f"{name} sent no notice"
            # a notice for a store in another schema of the database is not this store's
            with writer.engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_notify(:ch, 'some_other_schema')"), {"ch": CHANGES_CHANNEL})
            assert not listener.wait(timeout=0.5)
        finally:
            listener.close()
