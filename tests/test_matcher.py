"""Matching through the store and the index, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from assay.banks import matcher as matcher_mod
from assay.banks.matcher import Matcher, Query
from assay.banks.store import Store, changes_table


def _flip(hex_value: str, nbits: int, rng: np.random.Generator) -> str:
    b = np.frombuffer(bytes.fromhex(hex_value), dtype=np.uint8).copy()
    bits = np.unpackbits(b)
    idx = rng.choice(256, size=nbits, replace=False)
    bits[idx] ^= 1
    return np.packbits(bits).tobytes().hex()


def _rand_hex(rng: np.random.Generator) -> str:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def test_thresholds_per_bank_and_per_query(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    q = _rand_hex(rng)
    store.create_bank("strict", pdq_threshold=20)
    store.create_bank("loose")
    for d in (0, 10, 20, 21, 31, 32, 40):
        store.add_entry("strict", f"s{d}", {"pdq": _flip(q, d, rng)})
        store.add_entry("loose", f"l{d}", {"pdq": _flip(q, d, rng)})
    for _ in range(200):  # unrelated noise
        store.add_entry("loose", f"noise{_}", {"pdq": _rand_hex(rng)})
    m = Matcher(store, snapshot_dir=tmp_path / "snap")
    found = {(x.bank, x.content_id, x.distance) for x in m.lookup([Query("pdq", q)])}
    assert found == {("strict", f"s{d}", d) for d in (0, 10, 20)} | {("loose", f"l{d}", d) for d in (0, 10, 20, 21, 31)}
    # a query threshold overrides every bank's
    found = {(x.bank, x.content_id) for x in m.lookup([Query("pdq", q)], threshold=10)}
    assert found == {("strict", "s0"), ("strict", "s10"), ("loose", "l0"), ("loose", "l10")}
    found = {x.content_id for x in m.lookup([Query("pdq", q)], threshold=40)}
    assert {"s32", "s40", "l32", "l40"} <= found


def test_follows_adds_removes_and_bank_switches(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    a, b = _rand_hex(rng), _rand_hex(rng)
    md5 = "9e107d9d372bb6826bd81d3542a419d6"
    store.create_bank("known")
    store.add_entry("known", "a", {"pdq": a, "md5": md5}, note="first")
    m = Matcher(store, snapshot_dir=tmp_path / "snap")
    m.load()
    assert [x.content_id for x in m.lookup([Query("pdq", b)])] == []
    store.add_entry("known", "b", {"pdq": _flip(b, 5, rng)})
    assert m.refresh()
    hits = m.lookup([Query("pdq", b)])
    assert [(x.content_id, x.distance) for x in hits] == [("b", 5)]
    hits = m.lookup([Query("md5", md5)])
    assert [(x.content_id, x.signal_type, x.note) for x in hits] == [("a", "md5", "first")]
    store.remove_entry("known", "a")
    m.refresh()
    assert m.lookup([Query("pdq", a)]) == [] and m.lookup([Query("md5", md5)]) == []
    store.set_bank_enabled("known", False)
    m.refresh()
    assert m.lookup([Query("pdq", b)]) == []
    store.set_bank_enabled("known", True)
    m.refresh()
    assert [x.content_id for x in m.lookup([Query("pdq", b)])] == ["b"]


def test_low_quality_not_matched_unless_asked(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = _rand_hex(rng)
    store.create_bank("k")
    store.add_entry("k", "a", {"pdq": a})
    m = Matcher(store, snapshot_dir=tmp_path / "snap")
    assert m.lookup([Query("pdq", a, quality=49)]) == []
    assert len(m.lookup([Query("pdq", a, quality=49)], include_low_quality=True)) == 1
    assert len(m.lookup([Query("pdq", a, quality=50)])) == 1


def _file_backed(a: np.ndarray) -> bool:
    while a is not None:
        if isinstance(a, np.memmap):
            return True
        a = a.base  # type: ignore[assignment]
    return False


def _bank_of(store: Store, codes: list[str]) -> None:
    """Bank "k" with entries e0, e1, ... holding these PDQ hashes."""
    store.create_bank("k")
    for i, c in enumerate(codes):
        store.add_entry("k", f"e{i}", {"pdq": c})


def test_snapshot_is_reused_and_caught_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_mod, "SNAPSHOT_MIN", 10)
    rng = np.random.default_rng(4)
    codes = [_rand_hex(rng) for _ in range(50)]
    with Store(f"sqlite:///{tmp_path / 'b.sqlite3'}") as store:
        _bank_of(store, codes)
        snap = tmp_path / "snap"
        m1 = Matcher(store, snapshot_dir=snap)
        m1.load()
        assert (snap / "pdq" / "state.json").is_file()
        # the process that built the index serves it from the mapped snapshot too
        assert _file_backed(m1._hamming["pdq"]._main.table)
        assert [x.content_id for x in m1.lookup([Query("pdq", codes[7])])] == ["e7"]
        late = _rand_hex(rng)
        store.add_entry("k", "late", {"pdq": late})
        store.remove_entry("k", "e0")
        m2 = Matcher(store, snapshot_dir=snap)
        m2.load()
        assert [x.content_id for x in m2.lookup([Query("pdq", late)])] == ["late"]
        assert m2.lookup([Query("pdq", codes[0])]) == []
        assert [x.content_id for x in m2.lookup([Query("pdq", codes[7])])] == ["e7"]
        # a damaged snapshot is only a cache: rebuilt, never trusted
        for f in (snap / "pdq" / "index").iterdir():
            f.write_bytes(b"garbage")
        m3 = Matcher(store, snapshot_dir=snap)
        assert [x.content_id for x in m3.lookup([Query("pdq", codes[7])])] == ["e7"]


@pytest.mark.parametrize("threshold", [None, 12, 40])
def test_batched_lookup_equals_one_lookup_per_query(tmp_path: Path, threshold: int | None) -> None:
    rng = np.random.default_rng(5)
    with Store(f"sqlite:///{tmp_path / 'b.sqlite3'}") as store:
        for name, t in (("a", 10), ("b", None), ("c", 50)):
            store.create_bank(name, pdq_threshold=t)
        centres = [_rand_hex(rng) for _ in range(12)]
        for i, c in enumerate(centres):
            for j, d in enumerate((0, 8, 15, 30, 45)):
                store.add_entry("abc"[(i + j) % 3], f"e{i}-{d}", {"pdq": _flip(c, d, rng), "md5": f"{i:02d}{j:030d}"})
        m = Matcher(store, snapshot_dir=tmp_path / "snap")
        queries = [Query("pdq", _flip(c, 3, rng), quality=q) for c, q in zip(centres, [100, 40] * 6, strict=True)]
        queries += [Query("md5", f"{i:02d}{0:030d}") for i in range(0, 12, 3)] + [Query("pdq", _rand_hex(rng))]
        for low in (False, True):
            one_by_one = [x for q in queries for x in m.lookup([q], threshold=threshold, include_low_quality=low)]
            batched = m.lookup(queries, threshold=threshold, include_low_quality=low)
            key = lambda x: (x.bank, x.content_id, x.signal_type, x.distance)  # noqa: E731
            assert sorted(map(key, batched)) == sorted(map(key, one_by_one))
            assert batched  # the data guarantees hits


# -- pruned changes ----------------------------------------------------------------------
def _prune_all(store: Store) -> None:
    """Age every change record past the retention, then prune: the watermark becomes
    the newest change seq."""
    with store.engine.begin() as conn:
        for seq, at in conn.execute(sa.select(changes_table.c.seq, changes_table.c.at)).all():
            conn.execute(changes_table.update().where(changes_table.c.seq == seq).values(at=at - timedelta(days=30)))
    store.prune_changes(older_than=timedelta(days=7))
    assert store.changes_watermark() == store.max_change_seq()


def _count_loads(m: Matcher, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    full_load = m.load

    def counted() -> None:
        calls.append(1)
        full_load()

    monkeypatch.setattr(m, "load", counted)
    return calls


def test_reloads_when_the_changes_it_needs_were_pruned(store: Store, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    a, b, c = _rand_hex(rng), _rand_hex(rng), _rand_hex(rng)
    md5 = "9e107d9d372bb6826bd81d3542a419d6"
    store.create_bank("k")
    store.add_entry("k", "a", {"pdq": a, "md5": md5})
    store.add_entry("k", "b", {"pdq": b})
    store.add_entry("k", "c", {"pdq": c})
    m = Matcher(store, snapshot_dir=tmp_path / "snap")
    m.load()
    loads = _count_loads(m, monkeypatch)
    store.remove_entry("k", "a")  # its change records are pruned before m sees them
    _prune_all(store)
    assert m.refresh()
    assert len(loads) == 1
    # gone from the index itself, not only filtered out of the answers
    assert m.size() == {"pdq": 2}
    assert m.lookup([Query("pdq", a)]) == [] and m.lookup([Query("md5", md5)]) == []
    assert [x.content_id for x in m.lookup([Query("pdq", b)])] == ["b"]
    store.remove_entry("k", "b")  # and from the new cursor on, it follows incrementally
    m.refresh()
    assert len(loads) == 1 and m.size() == {"pdq": 1}


def test_a_cursor_at_or_above_the_watermark_keeps_following_incrementally(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    codes = {name: _rand_hex(rng) for name in "abcd"}
    store.create_bank("k")
    for name in "abc":
        store.add_entry("k", name, {"pdq": codes[name]})
    m = Matcher(store, snapshot_dir=tmp_path / "snap")
    m.load()
    store.remove_entry("k", "a")
    m.refresh()
    _prune_all(store)  # m has applied everything pruned: its cursor is the watermark
    loads = _count_loads(m, monkeypatch)
    store.remove_entry("k", "b")
    assert m.refresh()
    assert loads == [] and m.size() == {"pdq": 1}
    assert m.lookup([Query("pdq", codes["b"])]) == []
    # a Matcher loaded once every change record is gone follows from the watermark
    _prune_all(store)
    m2 = Matcher(store, snapshot_dir=tmp_path / "snap2")
    m2.load()
    loads2 = _count_loads(m2, monkeypatch)
    store.add_entry("k", "d", {"pdq": codes["d"]})
    store.remove_entry("k", "c")
    assert m2.refresh()
    assert loads2 == [] and m2.size() == {"pdq": 1}
    assert [x.content_id for x in m2.lookup([Query("pdq", codes["d"])])] == ["d"]


def test_a_snapshot_older_than_the_pruned_changes_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_mod, "SNAPSHOT_MIN", 10)
    rng = np.random.default_rng(8)
    codes = [_rand_hex(rng) for _ in range(50)]
    with Store(f"sqlite:///{tmp_path / 'b.sqlite3'}") as store:
        _bank_of(store, codes)
        snap = tmp_path / "snap"
        Matcher(store, snapshot_dir=snap).load()
        before = json.loads((snap / "pdq" / "state.json").read_text())
        store.remove_entry("k", "e0")
        _prune_all(store)
        m = Matcher(store, snapshot_dir=snap)
        m.load()
        assert m.size() == {"pdq": 49}  # not the snapshot caught up without the removal
        assert m.lookup([Query("pdq", codes[0])]) == []
        after = json.loads((snap / "pdq" / "state.json").read_text())
        assert before["last_seq"] < store.changes_watermark() <= after["last_seq"]  # rewritten


def test_small_indexes_move_out_of_the_shared_snapshot_when_asked(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_mod, "SNAPSHOT_MIN", 10)
    rng = np.random.default_rng(10)
    codes = [_rand_hex(rng) for _ in range(50)]
    with Store(f"sqlite:///{tmp_path / 'b.sqlite3'}") as store:
        _bank_of(store, codes)
        snap = tmp_path / "snap"
        shared = Matcher(store, snapshot_dir=snap)
        shared.load()
        assert shared._hamming["pdq"].is_mapped()
        size = shared._hamming["pdq"].memory_bytes()
        private = Matcher(store, snapshot_dir=snap, private_max_bytes=size)
        private.load()  # maps the snapshot, then copies it
        assert not private._hamming["pdq"].is_mapped()
        assert [x.content_id for x in private.lookup([Query("pdq", codes[7])])] == ["e7"]
        too_big = Matcher(store, snapshot_dir=snap, private_max_bytes=size - 1)
        too_big.load()
        assert too_big._hamming["pdq"].is_mapped()
        # a cold build within the limit is kept as it is (huge pages already): the snapshot
        # is written for the other processes, not mapped back and copied again
        cold = Matcher(store, snapshot_dir=tmp_path / "snap2", private_max_bytes=size)
        cold.load()
        assert not cold._hamming["pdq"].is_mapped() and (tmp_path / "snap2" / "pdq" / "state.json").is_file()
