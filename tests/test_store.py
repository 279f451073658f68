"""The bank store on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import assay.banks.store as store_mod
from assay import signals as signal_types
from assay.banks.store import ImportRecord, Store
from assay.errors import (
    BankExists,
    BankImportError,
    BankNotFound,
    InvalidBankInput,
    InvalidSignal,
    StoreError,
    UnknownSignalType,
)
from conftest import IN_CI


def pdq(i: int) -> str:
    return f"{i:064x}"


def rec(cid: str, *pairs: tuple[str, str], note: str | None = None, meta: dict | None = None, line: int = 0) -> ImportRecord:
    return ImportRecord(cid, tuple(pairs), note, meta, line)


def loaded_map(s: Store, signal_type: str = "pdq") -> dict[int, bytes]:
    ls = s.load_signals(signal_type)
    return {int(i): bytes(v) for i, v in zip(ls.signal_ids, ls.values, strict=True)}


# -- banks ------------------------------------------------------------------------------
def test_bank_crud(store: Store) -> None:
    b = store.create_bank("csam-v1.2", "known material", pdq_threshold=16)
    assert (b.name, b.description, b.pdq_threshold, b.enabled) == ("csam-v1.2", "known material", 16, True)
    assert b.created_at.tzinfo is not None
    assert store.get_bank("csam-v1.2") == b
    store.create_bank("a_bank")
    assert [x.name for x in store.list_banks()] == ["a_bank", "csam-v1.2"]
    with pytest.raises(BankExists):
        store.create_bank("a_bank")

    assert store.update_bank("csam-v1.2", description="d2").pdq_threshold == 16  # threshold untouched
    assert store.update_bank("csam-v1.2", pdq_threshold=None).pdq_threshold is None
    assert store.get_bank("csam-v1.2").description == "d2"

    store.set_bank_enabled("a_bank", False)
    assert store.get_bank("a_bank").enabled is False
    store.delete_bank("a_bank")
    with pytest.raises(BankNotFound) as err:
        store.get_bank("a_bank")
    assert "csam-v1.2" in str(err.value)  # the hint lists the banks that exist
    with pytest.raises(BankNotFound):
        store.delete_bank("a_bank")


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "caf\u00e9", "a/b", "semi;colon"])
def test_bad_bank_names(store: Store, name: str) -> None:
    with pytest.raises(InvalidBankInput):
        store.create_bank(name)
    assert store.list_banks() == []


@pytest.mark.parametrize("threshold", [-1, 257, True, "16", 3.5])
def test_bad_threshold(store: Store, threshold: object) -> None:
    with pytest.raises(InvalidBankInput):
        store.create_bank("b", pdq_threshold=threshold)  # type: ignore[arg-type]


# -- entries ----------------------------------------------------------------------------
def test_add_get_remove_entry(store: Store) -> None:
    store.create_bank("b")
    res = store.add_entry("b", "item-1", {"pdq": "0x" + "AB" * 32, "md5": ["C" * 32, "d" * 32]},
                          note="seen 2026", source="tip", meta={"case": 7, "tags": ["x"]})
    assert (res.added_entries, res.added_signals, res.duplicates, res.total) == (1, 3, 0, 3)
    e = store.get_entry("b", "item-1")
    assert e is not None
    assert e.signals == {"pdq": ("ab" * 32,), "md5": ("c" * 32, "d" * 32)}  # canonical lower hex
    assert (e.note, e.source, e.meta, e.enabled) == ("seen 2026", "tip", {"case": 7, "tags": ["x"]}, True)
    # Adding to an existing entry adds only what is new and never rewrites the note.
    res = store.add_entry("b", "item-1", {"md5": "d" * 32, "sha256": "e" * 64}, note="other")
    assert (res.added_entries, res.added_signals, res.duplicates) == (0, 1, 1)
    e = store.get_entry("b", "item-1")
    assert e is not None and e.note == "seen 2026" and e.signals["sha256"] == ("e" * 64,)
    assert store.get_entry("b", "nope") is None
    assert store.remove_entry("b", "item-1") is True
    assert store.remove_entry("b", "item-1") is False
    assert store.get_entry("b", "item-1") is None
    assert store.stats("b").signals == {}
    with pytest.raises(BankNotFound):
        store.add_entry("missing", "x", {"pdq": pdq(1)})


def test_bad_values_of_every_signal_type(store: Store) -> None:
    store.create_bank("b")
    for st in signal_types.all_types():
        good = "a" * st.hex_len
        store.add_entry("b", f"ok-{st.name}", {st.name: good})
        for bad in [good[:-1], good + "0", "g" * st.hex_len, "", " " * st.hex_len, "a" * (st.hex_len - 2) + "\u00e9\u00e9"]:
            with pytest.raises(InvalidSignal):
                store.add_entry("b", f"bad-{st.name}", {st.name: bad})
    with pytest.raises(UnknownSignalType):
        store.add_entry("b", "x", {"phash": "00"})
    with pytest.raises(InvalidSignal):
        store.add_entry("b", "x", {"pdq": 12345})  # type: ignore[dict-item]
    stats = store.stats("b")
    assert stats.entries == len(signal_types.all_types())  # the bad ones left no trace
    assert sum(stats.signals.values()) == len(signal_types.all_types())


@pytest.mark.parametrize(
    "cid, note, meta",
    [("", None, None), (" padded", None, None), ("a\nb", None, None), ("x" * 513, None, None),
     ("ok", "nul\x00", None), ("ok", None, {"k": float("nan")}), ("ok", None, {"k": "\ud800"}),
     ("ok", 5, None)],
)
def test_bad_entry_fields(store: Store, cid: str, note: object, meta: object) -> None:
    store.create_bank("b")
    with pytest.raises(InvalidBankInput):
        store.add_entry("b", cid, {"pdq": pdq(1)}, note=note, meta=meta)  # type: ignore[arg-type]
    assert store.stats("b").entries == 0


def test_set_entry_enabled_unknown(store: Store) -> None:
    store.create_bank("b")
    with pytest.raises(InvalidBankInput):
        store.set_entry_enabled("b", "nope", False)


def test_iter_entries_pages(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_PAGE", 7)  # several pages with a handful of rows
    store.create_bank("b")
    cids = [f"c{i:03d}" for i in range(40)]
    store.import_records("b", [rec(c, ("pdq", pdq(i)), ("md5", f"{i:032x}")) for i, c in enumerate(cids)], "t")
    got = list(store.iter_entries("b"))
    assert [e.content_id for e in got] == sorted(cids)
    assert all(e.signals == {"pdq": (pdq(int(e.content_id[1:])),), "md5": (f"{int(e.content_id[1:]):032x}",)} for e in got)
    assert [e.content_id for e in store.iter_entries("b", limit=10, offset=5)] == sorted(cids)[5:15]
    assert [e.content_id for e in store.iter_entries("b", limit=100, offset=35)] == sorted(cids)[35:]
    assert list(store.iter_entries("b", limit=0)) == []


# -- import -----------------------------------------------------------------------------
def test_import_is_idempotent(store: Store) -> None:
    store.create_bank("b")
    records = [rec(f"id{i}", ("pdq", pdq(i)), note=f"n{i}", meta={"i": i}) for i in range(30)]
    first = store.import_records("b", records, "file.txt")
    assert (first.added_entries, first.added_signals, first.duplicates, first.total) == (30, 30, 0, 30)
    before = (store.stats("b"), store.max_signal_id())
    again = store.import_records("b", records, "file.txt")
    assert (again.added_entries, again.added_signals, again.duplicates, again.total) == (0, 0, 30, 30)
    stats, _ = before
    after = store.stats("b")
    assert (after.entries, after.signals) == (stats.entries, stats.signals)
    assert len(loaded_map(store)) == 30


def test_duplicates_within_one_import(store: Store) -> None:
    store.create_bank("b")
    records = [
        rec("a", ("pdq", pdq(1)), note="first"),
        rec("a", ("pdq", pdq(1)), note="second"),  # exact duplicate line
        rec("a", ("pdq", pdq(2))),  # same entry, new signal
        rec("b", ("pdq", pdq(1))),  # same value in another entry is not a duplicate
        rec("c", ("pdq", "0x" + pdq(3).upper()), ("pdq", pdq(3))),  # same value twice once normalized
    ]
    res = store.import_records("b", records, "t")
    assert (res.added_entries, res.added_signals, res.duplicates, res.total) == (3, 4, 2, 6)
    a = store.get_entry("b", "a")
    assert a is not None and a.note == "first" and sorted(a.signals["pdq"]) == [pdq(1), pdq(2)]
    assert sorted(loaded_map(store).values()) == sorted(bytes.fromhex(pdq(i)) for i in (1, 2, 1, 3))


def test_import_all_or_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_BATCH", 5)  # the bad record comes after several flushed batches
    store.create_bank("b")
    store.add_entry("b", "keep", {"pdq": pdq(999)})
    records = [rec(f"id{i}", ("pdq", pdq(i)), line=i + 1) for i in range(40)]
    records[23] = rec("id23", ("pdq", "not-a-hash"), line=24)
    records[31] = rec("id31", ("md5", "00"), line=32)
    with pytest.raises(BankImportError) as err:
        store.import_records("b", records, "list.txt")
    assert [n for n, _ in err.value.problems] == [24, 32]
    assert "list.txt" in str(err.value) and "line 24" in str(err.value)
    assert store.stats("b").entries == 1
    assert list(loaded_map(store).values()) == [bytes.fromhex(pdq(999))]


def test_import_rolls_back_when_the_source_fails(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_BATCH", 5)
    store.create_bank("b")

    def records() -> Iterator[ImportRecord]:
        for i in range(30):
            yield rec(f"id{i}", ("pdq", pdq(i)))
        raise BankImportError("src.csv", [(31, "broken")])

    with pytest.raises(BankImportError):
        store.import_records("b", records(), "src.csv")
    assert store.stats("b").entries == 0 and loaded_map(store) == {}


def test_import_stops_after_twenty_problems(store: Store) -> None:
    store.create_bank("b")
    consumed = []

    def records() -> Iterator[ImportRecord]:
        for i in range(1000):
            consumed.append(i)
            yield rec(f"id{i}", ("pdq", "zz"), line=i + 1)

    with pytest.raises(BankImportError) as err:
        store.import_records("b", records(), "t")
    assert len(err.value.problems) == store_mod.MAX_PROBLEMS
    assert len(consumed) == store_mod.MAX_PROBLEMS  # it stopped reading


# -- the index's side -------------------------------------------------------------------
def test_load_signals_respects_enabled_flags(store: Store) -> None:
    store.create_bank("b1")
    store.create_bank("b2", pdq_threshold=10)
    store.import_records("b1", [rec(f"x{i}", ("pdq", pdq(i)), ("md5", f"{i:032x}")) for i in range(10)], "t")
    store.import_records("b2", [rec(f"y{i}", ("pdq", pdq(100 + i))) for i in range(5)], "t")

    def values() -> set[int]:
        return {int.from_bytes(v, "big") for v in loaded_map(store).values()}

    assert values() == set(range(10)) | set(range(100, 105))
    ls = store.load_signals("pdq")
    assert ls.values.dtype == np.uint8 and ls.values.shape == (15, 32)
    assert ls.signal_ids.dtype == np.int64 and ls.bank_ids.dtype == np.int32
    b2 = store.get_bank("b2").id
    assert {int(i) for i, b in zip(ls.signal_ids, ls.bank_ids, strict=True) if b == b2} == {
        sid for sid, ref in store.resolve(list(ls.signal_ids)).items() if ref.bank == "b2"}

    store.set_bank_enabled("b2", False)
    assert values() == set(range(10))
    assert b2 not in store.bank_thresholds()
    store.set_entry_enabled("b1", "x3", False)
    assert values() == set(range(10)) - {3}
    assert len(store.load_signals("md5")) == 9
    store.set_bank_enabled("b2", True)
    store.set_entry_enabled("b1", "x3", True)
    assert values() == set(range(10)) | set(range(100, 105))
    assert store.bank_thresholds() == {store.get_bank("b1").id: None, b2: 10}
    assert len(store.load_signals("sha256")) == 0 and store.load_signals("sha256").values.shape == (0, 32)
    with pytest.raises(UnknownSignalType):
        store.load_signals("nope")


def test_load_signals_across_chunks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_LOAD_CHUNK", 4)  # many chunks, some holding other types only
    store.create_bank("b1")
    store.create_bank("off")
    rng = random.Random(3)
    expected: dict[str, bytes] = {}
    for i in range(23):
        value = pdq(rng.getrandbits(256))
        store.add_entry("b1", f"e{i}", {"pdq": value, "md5": f"{i:032x}"} if i % 3 else {"md5": f"{i:032x}"})
        if i % 3:
            expected[f"e{i}"] = bytes.fromhex(value)
    store.add_entry("off", "z", {"pdq": pdq(1)})
    store.set_bank_enabled("off", False)
    store.set_entry_enabled("b1", "e4", False)
    del expected["e4"]
    ls = store.load_signals("pdq")
    refs = store.resolve(ls.signal_ids.tolist())
    assert {refs[int(i)].content_id: bytes(v) for i, v in zip(ls.signal_ids, ls.values, strict=True)} == expected
    assert len(ls) == len(expected)
    cut = sorted(ls.signal_ids.tolist())[5]
    assert sorted(store.load_signals("pdq", up_to_signal_id=cut).signal_ids.tolist()) == sorted(ls.signal_ids.tolist())[:6]


def test_resolve(store: Store) -> None:
    store.create_bank("b", pdq_threshold=20)
    store.add_entry("b", "c1", {"pdq": pdq(5)}, note="hello")
    ls = store.load_signals("pdq")
    sid = int(ls.signal_ids[0])
    ref = store.resolve([sid, sid, 10**9])[sid]
    assert (ref.bank, ref.content_id, ref.signal_type, ref.value, ref.note, ref.bank_pdq_threshold) == (
        "b", "c1", "pdq", pdq(5), "hello", 20)
    assert set(store.resolve([sid, 10**9])) == {sid}
    store.set_entry_enabled("b", "c1", False)
    assert store.resolve([sid]) == {}


def test_changes_since_sees_adds_and_removes(store: Store) -> None:
    store.create_bank("b")
    store.import_records("b", [rec(f"x{i}", ("pdq", pdq(i))) for i in range(5)], "t")
    cursor = (store.max_signal_id(), store.max_change_seq())
    ids = {ref.content_id: sid for sid, ref in store.resolve(list(store.load_signals("pdq").signal_ids)).items()}

    store.add_entry("b", "new", {"pdq": pdq(50), "md5": "f" * 32})
    store.remove_entry("b", "x1")
    store.set_entry_enabled("b", "x2", False)
    store.set_entry_enabled("b", "x3", False)
    store.set_entry_enabled("b", "x3", True)  # off and on again: nothing to apply
    ch = store.changes_since(*cursor)
    assert not ch.banks_changed
    assert sorted(ch.removed_signal_ids.tolist()) == sorted([ids["x1"], ids["x2"]])
    assert [bytes(v).hex() for v in ch.added["pdq"].values] == [pdq(50)]
    assert [bytes(v).hex() for v in ch.added["md5"].values] == ["f" * 32]
    assert ch.last_signal_id == store.max_signal_id() and ch.last_seq == store.max_change_seq()

    nothing = store.changes_since(ch.last_signal_id, ch.last_seq)
    assert nothing.added == {} and len(nothing.removed_signal_ids) == 0 and not nothing.banks_changed

    store.set_entry_enabled("b", "x2", True)
    back = store.changes_since(ch.last_signal_id, ch.last_seq)
    assert back.added["pdq"].signal_ids.tolist() == [ids["x2"]] and len(back.removed_signal_ids) == 0

    store.set_bank_enabled("b", False)
    off = store.changes_since(back.last_signal_id, back.last_seq)
    assert off.banks_changed and off.changed_bank_ids == {store.get_bank("b").id}


def test_changes_since_replays_to_a_fresh_load(store: Store) -> None:
    """An index that only follows changes_since ends up equal to a fresh load."""
    rng = random.Random(7)
    store.create_bank("b")
    index: dict[int, bytes] = {}
    cursor = (0, 0)
    live: list[str] = []
    for step in range(40):
        op = rng.random()
        if op < 0.45 or not live:
            cid = f"c{step}"
            store.add_entry("b", cid, {"pdq": pdq(rng.getrandbits(256))})
            live.append(cid)
        elif op < 0.6:
            store.remove_entry("b", live.pop(rng.randrange(len(live))))
        else:
            store.set_entry_enabled("b", rng.choice(live), rng.random() < 0.5)
        if rng.random() < 0.4:
            ch = store.changes_since(*cursor)
            assert not ch.banks_changed
            for sid in ch.removed_signal_ids.tolist():
                index.pop(sid, None)
            added = ch.added.get("pdq")
            if added is not None:
                for sid, v in zip(added.signal_ids.tolist(), added.values, strict=True):
                    assert sid not in index  # never handed out twice
                    index[sid] = bytes(v)
            cursor = (ch.last_signal_id, ch.last_seq)
            assert index == loaded_map(store)


def test_stats(store: Store) -> None:
    store.create_bank("b")
    store.import_records("b", [rec("a", ("pdq", pdq(1)), ("md5", "1" * 32)), rec("b", ("pdq", pdq(2)))], "t")
    store.set_entry_enabled("b", "b", False)
    st = store.stats("b")
    assert (st.entries, st.enabled_entries, st.signals, st.enabled) == (2, 1, {"md5": 1, "pdq": 2}, True)
    assert st.last_added is not None


def test_delete_bank_removes_its_entries(store: Store) -> None:
    store.create_bank("b")
    store.create_bank("other")
    store.add_entry("b", "x", {"pdq": pdq(1)})
    store.add_entry("other", "y", {"pdq": pdq(2)})
    store.delete_bank("b")
    assert list(loaded_map(store).values()) == [bytes.fromhex(pdq(2))]
    store.create_bank("b")
    assert store.stats("b").entries == 0 and store.get_entry("b", "x") is None


# -- opening and failing safely ---------------------------------------------------------
def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_default_store_lives_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_DATA_DIR", str(tmp_path / "deep" / "er"))
    with Store() as s:
        s.create_bank("b")
    assert (tmp_path / "deep" / "er" / "assay.sqlite3").is_file()
    with Store.open(str(tmp_path / "deep" / "er" / "assay.sqlite3")) as s:  # a bare path works too
        assert [b.name for b in s.list_banks()] == ["b"]


def test_read_only_uri_store_is_not_written(tmp_path: Path) -> None:
    db = tmp_path / "ro.sqlite3"
    with Store(f"sqlite:///{db}") as s:
        s.create_bank("b")
        s.add_entry("b", "x", {"pdq": pdq(1)})
    before = _digest(db)
    with Store(f"sqlite:///file:{db}?mode=ro&uri=true") as ro:
        assert ro.stats("b").entries == 1  # reading works
        with pytest.raises(StoreError) as err:
            ro.import_records("b", [rec("y", ("pdq", pdq(2)))], "t")
        assert "read-only" in str(err.value) or "readonly" in str(err.value)
        with pytest.raises(StoreError):
            ro.create_bank("c")
    assert _digest(db) == before


def _cannot_freeze(why: str) -> None:
    # A promised behaviour that this machine cannot set up: skipped on a laptop, a
    # failure under CI, which must be able to test it one way or the other.
    if IN_CI:
        pytest.fail(f"{why}; under CI the frozen-store test must run")
    pytest.skip(why)


@pytest.fixture(params=["chattr", "ro-bind"])
def immutable(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory holding a store that nobody may change, root included (tests run as
    root, which ignores file modes): made immutable with chattr +i, or bind-mounted
    onto itself read-only."""
    d = tmp_path / "frozen"
    d.mkdir()
    with Store(f"sqlite:///{d / 'banks.sqlite3'}") as s:
        s.create_bank("b")
        s.add_entry("b", "x", {"pdq": pdq(1)})
    if request.param == "chattr":
        chattr = shutil.which("chattr")
        if chattr is None:
            _cannot_freeze("chattr not available")
        files = [d / "banks.sqlite3", d]
        done = []
        try:
            for f in files:
                if subprocess.run([chattr, "+i", str(f)], capture_output=True).returncode != 0:
                    _cannot_freeze("chattr +i not permitted here (needs CAP_LINUX_IMMUTABLE)")
                done.append(f)
            yield d
        finally:
            for f in done:
                subprocess.run([chattr, "-i", str(f)], check=False)
        return
    mount = shutil.which("mount")
    if mount is None or subprocess.run([mount, "--bind", str(d), str(d)], capture_output=True).returncode != 0:
        _cannot_freeze("cannot bind-mount here (needs root / CAP_SYS_ADMIN)")
    try:
        if subprocess.run([mount, "-o", "remount,bind,ro", str(d)], capture_output=True).returncode != 0:
            _cannot_freeze("cannot remount read-only here")
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)


def test_immutable_store_raises_and_stays_intact(immutable: Path) -> None:
    db = immutable / "banks.sqlite3"
    before = _digest(db)
    with pytest.raises(StoreError) as err:
        with Store(str(db)) as s:
            assert s.stats("b").entries == 1
            s.add_entry("b", "y", {"pdq": pdq(2)})
    assert str(db) in str(err.value)
    with pytest.raises(StoreError):  # and a new store cannot be created in the frozen directory
        Store(str(immutable / "new.sqlite3"))
    assert _digest(db) == before
    assert sorted(p.name for p in immutable.iterdir()) == ["banks.sqlite3"]


def test_directory_that_cannot_be_created() -> None:
    # /proc refuses new directories even to root.
    with pytest.raises(StoreError) as err:
        Store("/proc/no-such-dir/banks.sqlite3")
    assert "/proc/no-such-dir" in str(err.value)


def test_not_a_database_is_left_untouched(tmp_path: Path) -> None:
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40)
    before = _digest(f)
    with pytest.raises(StoreError) as err:
        Store(str(f))
    assert "photo.jpg" in str(err.value)
    assert _digest(f) == before


def test_someone_elses_database_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO users (name) VALUES ('x')")
    engine.dispose()
    before = _digest(db)
    with pytest.raises(StoreError, match="not an assay store"):
        Store(str(db))
    assert _digest(db) == before


def test_store_from_a_newer_assay_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite3"
    Store(str(db)).close()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    engine.dispose()
    with pytest.raises(StoreError, match="newer"):
        Store(str(db))


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql+psycopg://u:p@h:notaport/db", "oracle://x"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(StoreError) as err:
        Store(url)
    assert ":p@" not in str(err.value)


def test_unreachable_server_masks_the_password() -> None:
    with pytest.raises(StoreError) as err:
        Store("postgresql://assay:s3cret-pw@127.0.0.1:1/db?connect_timeout=2")
    msg = str(err.value)
    assert "s3cret-pw" not in msg and "127.0.0.1:1" in msg and "***" in msg


def test_closed_store(tmp_path: Path) -> None:
    s = Store(str(tmp_path / "x.sqlite3"))
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.list_banks()
