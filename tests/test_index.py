"""HammingIndex / ExactIndex: exact recall against an independent brute force.

The reference distance counts differing bits with np.unpackbits on the raw bytes,
so it shares nothing with the index (word views, popcount, chunk tables).
Every Hamming test runs through both kernels (compiled and numpy).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.banks import _mih
from assay.banks.index import ExactIndex, HammingIndex
from assay.errors import InputError, StoreError

KERNELS = [_mih.NUMPY] + ([_mih.NUMBA] if _mih.NUMBA is not None else [])


LAYOUTS = {"filtered": 1 << 40, "rows": 0}  # layout -> fast_table_bytes that selects it


@pytest.fixture(params=[(k, layout) for k in KERNELS for layout in LAYOUTS],
                ids=lambda p: f"{p[0].name}-{p[1]}")
def make(request: pytest.FixtureRequest):
    kernel, layout = request.param

    def factory(bits: int = 256, chunk_bits: int = 16) -> HammingIndex:
        idx = HammingIndex(bits=bits, chunk_bits=chunk_bits)
        idx._kernel = kernel
        idx.fast_table_bytes = LAYOUTS[layout]
        return idx

    return factory


def brute(codes: np.ndarray, ids: np.ndarray, q: np.ndarray, radius: int) -> list[tuple[int, int]]:
    """(distance, id) pairs within radius, sorted: the expected answer."""
    if not len(codes):
        return []
    d = np.unpackbits(codes ^ q[None, :], axis=1).sum(axis=1)
    keep = d <= radius
    return sorted(zip(d[keep].tolist(), ids[keep].tolist(), strict=True))


def pairs(result: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, int]]:
    ids, dists = result
    assert ids.dtype == np.int64 and dists.dtype == np.int32
    return list(zip(dists.tolist(), ids.tolist(), strict=True))


def flip(code: np.ndarray, nbits: int, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``code`` with exactly ``nbits`` distinct bits flipped."""
    bits = np.unpackbits(code).copy()
    where = rng.choice(bits.size, size=nbits, replace=False)
    bits[where] ^= 1
    return np.packbits(bits)


def random_codes(rng: np.random.Generator, n: int, nbytes: int = 32) -> np.ndarray:
    return rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)


def clustered(rng: np.random.Generator, n: int, nbytes: int = 32, spread: int = 80) -> np.ndarray:
    """Codes in clusters, so that every radius up to ~64 has hits to find."""
    bases = random_codes(rng, max(1, n // 50), nbytes)
    out = bases[rng.integers(0, len(bases), n)].copy()
    for row in out:
        # Skewed towards few flips, so that small radii have neighbours too.
        row[:] = flip(row, int(spread * rng.random() ** 2), rng)
    return out


# --------------------------------------------------------------------------- recall


def test_planted_neighbours_at_every_distance_are_found(make) -> None:
    rng = np.random.default_rng(7)
    background = random_codes(rng, 20_000)
    queries = random_codes(rng, 4)
    planted, planted_ids, expected = [], [], []
    next_id = 1_000_000
    for qi, q in enumerate(queries):
        expected.append([])
        for d in [*range(32), 32, 33, 40]:
            planted.append(flip(q, d, rng))
            planted_ids.append(next_id)
            if d <= 31:
                expected[qi].append((d, next_id))
            next_id += 1
    codes = np.concatenate([background, np.array(planted)])
    ids = np.concatenate([np.arange(len(background)), planted_ids])
    idx = make()
    idx.add(codes, ids)
    for qi, q in enumerate(queries):
        got = pairs(idx.search(q, 31))
        # Random background codes sit ~128 bits away; the brute force is the full truth.
        assert got == brute(codes, ids, q, 31)
        assert [p for p in got if p[1] >= 1_000_000] == expected[qi]


@pytest.mark.parametrize("radius", [0, 8, 31, 32, 48, 64])
@pytest.mark.parametrize("force_probe", [False, True], ids=["auto", "probe"])
def test_matches_brute_force(make, radius: int, force_probe: bool) -> None:
    rng = np.random.default_rng(radius)
    codes = clustered(rng, 6_000)
    ids = rng.choice(10**9, size=len(codes), replace=False).astype(np.int64)
    idx = make()
    if force_probe:  # exercise the chunk tables beyond the radius where a scan wins
        idx.scan_fraction = float("inf")
    idx.add(codes, ids)
    queries = np.concatenate([codes[rng.integers(0, len(codes), 6)], random_codes(rng, 2)])
    results = idx.search_many(queries, radius)
    assert len(results) == len(queries)
    total = 0
    for q, res in zip(queries, results, strict=True):
        want = brute(codes, ids, q, radius)
        total += len(want)
        assert pairs(res) == want
    if radius >= 8:
        assert total > len(queries)  # the data really has neighbours at this radius


@pytest.mark.parametrize(("bits", "chunk_bits", "radius"), [(256, 8, 31), (256, 8, 40), (64, 16, 9), (128, 4, 20)])
def test_other_layouts_match_brute_force(make, bits: int, chunk_bits: int, radius: int) -> None:
    rng = np.random.default_rng(bits + chunk_bits)
    codes = clustered(rng, 3_000, bits // 8, spread=bits // 4)
    ids = np.arange(len(codes), dtype=np.int64) * 3
    idx = make(bits, chunk_bits)
    idx.scan_fraction = float("inf")
    idx.add(codes, ids)
    for q in codes[:5]:
        assert pairs(idx.search(q, radius)) == brute(codes, ids, q, radius)


def test_extreme_radii(make) -> None:
    rng = np.random.default_rng(3)
    codes = random_codes(rng, 500)
    ids = np.arange(500, dtype=np.int64)
    idx = make()
    idx.add(codes, ids)
    assert pairs(idx.search(codes[0], 256)) == brute(codes, ids, codes[0], 256)
    assert len(idx.search(codes[0], 256)[0]) == 500
    # 20 x 500 hits overflow the kernel's first output buffer: it must resume, not lose any.
    many = idx.search_many(codes[:20], 256)
    assert [pairs(r) for r in many] == [brute(codes, ids, q, 256) for q in codes[:20]]
    idx.scan_fraction = float("inf")
    many = idx.search_many(codes[:20], 200)
    assert [pairs(r) for r in many] == [brute(codes, ids, q, 200) for q in codes[:20]]
    assert pairs(idx.search(codes[9], 0)) == [(0, 9)]
    assert pairs(idx.search(codes[9].tobytes(), 0)) == [(0, 9)]  # bytes work as well


# --------------------------------------------------------------------------- updates


def test_adds_after_build_are_found_and_removes_vanish(make) -> None:
    rng = np.random.default_rng(11)
    codes = random_codes(rng, 5_000)
    idx = make()
    idx.add(codes, np.arange(5_000))
    q = random_codes(rng, 1)[0]
    near = np.array([flip(q, 3, rng), flip(q, 30, rng)])
    idx.add(near, np.array([90_001, 90_002]))
    assert pairs(idx.search(q)) == [(3, 90_001), (30, 90_002)]
    assert len(idx) == 5_002
    idx.remove([90_001])
    assert pairs(idx.search(q)) == [(30, 90_002)]
    idx.remove(np.array([17, 123_456_789]))  # an unknown id is ignored
    assert pairs(idx.search(codes[17], 0)) == []
    assert len(idx) == 5_000
    idx.add(codes[17:18], np.array([17]))  # a removed id can come back
    assert pairs(idx.search(codes[17], 0)) == [(0, 17)]


def test_merge_keeps_results_and_drops_tombstones(make) -> None:
    rng = np.random.default_rng(12)
    codes = clustered(rng, 4_000)
    ids = np.arange(4_000, dtype=np.int64) + 10
    idx = make()
    idx.buffer_min = 300  # make adds cross the merge threshold several times
    idx.background_merge = False  # the memory comparison below needs merges done in add()
    for lo in range(0, 4_000, 250):
        idx.add(codes[lo : lo + 250], ids[lo : lo + 250])
    gone = ids[::7]
    idx.remove(gone)
    keep = ~np.isin(ids, gone)
    queries = codes[:40]
    before = [pairs(r) for r in idx.search_many(queries, 40)]
    assert before == [brute(codes[keep], ids[keep], q, 40) for q in queries]
    mem_before = idx.memory_bytes()
    idx.merge()
    assert [pairs(r) for r in idx.search_many(queries, 40)] == before
    assert len(idx) == int(keep.sum())
    assert idx.memory_bytes() < mem_before  # tombstoned rows are really gone


def test_duplicate_codes_under_different_ids(make) -> None:
    rng = np.random.default_rng(5)
    code = random_codes(rng, 1)
    idx = make()
    idx.add(np.repeat(code, 3, axis=0), np.array([30, 10, 20]))
    idx.add(code, np.array([5]))  # in the buffer: results still ordered by id
    assert pairs(idx.search(code[0])) == [(0, 5), (0, 10), (0, 20), (0, 30)]


def test_empty_index(make, tmp_path: Path) -> None:
    idx = make()
    q = np.zeros(32, np.uint8)
    assert len(idx) == 0
    assert pairs(idx.search(q)) == []
    assert idx.search_many(np.zeros((0, 32), np.uint8)) == []
    idx.add(np.zeros((0, 32), np.uint8), np.zeros(0, np.int64))
    idx.remove([])
    idx.save(tmp_path / "empty")
    assert len(HammingIndex.load(tmp_path / "empty")) == 0


def test_sees_every_add_that_returned_before_the_search() -> None:
    """Readers in other threads never miss an entry whose add() had returned."""
    rng = np.random.default_rng(13)
    idx = HammingIndex()
    idx.buffer_min = 64  # merges happen while readers run
    q = random_codes(rng, 1)[0]
    near = np.array([flip(q, int(d), rng) for d in rng.integers(0, 20, 600)])
    committed = 0
    errors: list[str] = []

    def reader() -> None:
        while committed < len(near):
            seen = committed
            found = set(idx.search(q)[0].tolist())
            if not set(range(seen)) <= found:
                errors.append(f"missed {sorted(set(range(seen)) - found)[:5]}")
                return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(len(near)):
        idx.add(near[i : i + 1], np.array([i]))
        committed = i + 1
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(idx.search(q)[0].tolist()) == list(range(len(near)))


@pytest.mark.skipif(_mih.NUMBA is None, reason="numba not installed")
def test_threaded_build_equals_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.banks import _mih_numba

    rng = np.random.default_rng(33)
    codes = clustered(rng, 5_000).view("<u8").astype(np.uint64)
    for filtered in (True, False):
        monkeypatch.setattr(_mih_numba, "BUILD_PARALLEL_MIN", 10**9)
        one = _mih.NUMBA.build(codes, 16, filtered)
        monkeypatch.setattr(_mih_numba, "BUILD_PARALLEL_MIN", 1)
        monkeypatch.setattr(_mih_numba, "_BUILD_THREADS", 3)  # uneven share of 16 chunks
        many = _mih.NUMBA.build(codes, 16, filtered)
        assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])
        want = _mih.NUMPY.build(codes, 16, filtered)
        assert np.array_equal(one[0], want[0]) and np.array_equal(one[1], want[1])
        assert one[0].dtype == (np.uint64 if filtered else np.int32)


def test_layout_follows_the_table_budget(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Filtered entries while 16 bytes x chunks x rows fit the budget, row numbers
    beyond; both answer the same, and a snapshot keeps its layout."""
    rng = np.random.default_rng(34)
    codes = clustered(rng, 3_000)
    ids = np.arange(3_000, dtype=np.int64)
    monkeypatch.setenv("ASSAY_INDEX_FAST_TABLE_MB", str(16 * 16 * 2_000 / (1 << 20)))
    idx = HammingIndex()
    idx.buffer_min = 10
    idx.add(codes[:2_000], ids[:2_000])
    assert idx._main.table.ndim == 3  # 2,000 rows: exactly the budget
    small = [pairs(r) for r in idx.search_many(codes[:30], 40)]
    idx.add(codes[2_000:], ids[2_000:])
    assert idx._main.table.ndim == 2 and idx._main.table.dtype == np.int32
    assert [pairs(r) for r in idx.search_many(codes[:30], 40)] == [
        brute(codes, ids, q, 40) for q in codes[:30]]
    assert small == [brute(codes[:2_000], ids[:2_000], q, 40) for q in codes[:30]]
    idx.save(tmp_path / "rows")
    assert json.loads((tmp_path / "rows" / "meta.json").read_text())["layout"] == "rows"
    back = HammingIndex.load(tmp_path / "rows")
    assert back._main.table.ndim == 2
    assert [pairs(r) for r in back.search_many(codes[:30], 40)] == [brute(codes, ids, q, 40) for q in codes[:30]]
    monkeypatch.setenv("ASSAY_INDEX_FAST_TABLE_MB", "lots")
    with pytest.raises(ValueError, match="ASSAY_INDEX_FAST_TABLE_MB must be a number"):
        HammingIndex()


def _gated_kernel(base: SimpleNamespace, gate: threading.Event, started: threading.Event,
                  fail: bool = False) -> SimpleNamespace:
    """``base`` whose build waits for ``gate`` (or raises MemoryError), so a test can
    act while a background merge is in the middle of its rebuild."""

    def build(codes: np.ndarray, chunk_bits: int, filtered: bool = True) -> tuple[np.ndarray, np.ndarray]:
        started.set()
        assert gate.wait(30)
        if fail:
            raise MemoryError("test: no memory for the rebuild")
        return base.build(codes, chunk_bits, filtered)

    return SimpleNamespace(name=base.name, build=build, probe=base.probe, scan=base.scan)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_background_merge_keeps_adds_and_removals_made_while_it_runs(kernel: SimpleNamespace) -> None:
    rng = np.random.default_rng(31)
    codes = clustered(rng, 1_200)
    ids = np.arange(1_200, dtype=np.int64)
    idx = HammingIndex()
    idx._kernel = kernel
    idx.buffer_min = 50  # adds of more rows than this are bulk loads, merged in the call
    idx.add(codes[:1_000], ids[:1_000])
    assert idx._merging is None and idx._main.n == 1_000
    gate, started = threading.Event(), threading.Event()
    idx._kernel = _gated_kernel(kernel, gate, started)
    idx.add(codes[1_000:1_030], ids[1_000:1_030])
    idx.add(codes[1_030:1_060], ids[1_030:1_060])  # crosses the limit: merge starts
    assert started.wait(30) and idx._merging is not None
    # While the rebuild waits: adds, removals from the old main part, from the rows
    # being merged and from the new rows, and a removed id added back.
    for lo in range(1_060, 1_200, 20):
        idx.add(codes[lo : lo + 20], ids[lo : lo + 20])
    gone = np.concatenate([ids[0:1_000:9], ids[1_000:1_060:4], ids[1_100:1_200:5]])
    idx.remove(gone)
    idx.add(codes[:1], ids[:1])  # id 0 was removed above (0 % 9 == 0): back again
    live = np.ones(1_200, dtype=bool)
    live[gone] = False
    live[0] = True

    def check() -> None:
        assert len(idx) == int(live.sum())
        for q in codes[::40]:
            assert pairs(idx.search(q, 40)) == brute(codes[live], ids[live], q, 40)

    check()  # answers right while the merge is still running
    gate.set()
    idx.wait_for_merge()
    assert idx._main.n > 1_000  # the merged rows are in the new main part
    check()
    idx.merge()
    check()


def test_failed_background_merge_leaves_the_index_as_it_was() -> None:
    rng = np.random.default_rng(32)
    codes = clustered(rng, 600)
    ids = np.arange(600, dtype=np.int64)
    idx = HammingIndex()
    idx.buffer_min = 50
    idx.add(codes[:500], ids[:500])
    gate, started = threading.Event(), threading.Event()
    base = idx._kernel
    idx._kernel = _gated_kernel(base, gate, started, fail=True)
    idx.add(codes[500:540], ids[500:540])
    idx.add(codes[540:580], ids[540:580])  # crosses the limit: merge starts
    assert started.wait(30)
    idx.add(codes[580:], ids[580:])
    idx.remove(ids[:10])
    gate.set()
    big = clustered(np.random.default_rng(35), 60)
    idx._kernel = base
    idx.add(big, np.arange(1_000, 1_060))  # a bulk add after the failure still goes through
    assert len(idx) == 650
    idx.remove(np.arange(1_000, 1_060))
    with pytest.raises(RuntimeError, match="background index merge failed: test: no memory"):
        idx.wait_for_merge()
    idx.wait_for_merge()  # the error is reported once
    assert len(idx) == 590
    for q in codes[::50]:
        assert pairs(idx.search(q, 40)) == brute(codes[10:], ids[10:], q, 40)
    idx.merge()
    assert idx._main.n == 590


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(make, tmp_path: Path, mmap: bool) -> None:
    rng = np.random.default_rng(21)
    codes = clustered(rng, 3_000)
    ids = np.arange(3_000, dtype=np.int64) * 2
    idx = make()
    idx.add(codes[:2_900], ids[:2_900])
    idx.add(codes[2_900:], ids[2_900:])  # stays in the buffer
    idx.remove(ids[:300:3])
    queries = codes[::100]
    want = [pairs(r) for r in idx.search_many(queries, 31)]
    idx.save(tmp_path / "snap")
    loaded = HammingIndex.load(tmp_path / "snap", mmap=mmap)
    loaded._kernel = idx._kernel
    assert len(loaded) == len(idx)
    assert [pairs(r) for r in loaded.search_many(queries, 31)] == want
    # The loaded index keeps taking changes, and the files on disk do not change.
    on_disk = (tmp_path / "snap" / "alive.npy").read_bytes()
    loaded.remove(ids[:1])
    loaded.add(codes[:1], np.array([-1]))
    assert pairs(loaded.search(codes[0], 0)) == [(0, -1)]
    assert (tmp_path / "snap" / "alive.npy").read_bytes() == on_disk
    # Saving over the directory the index is mapped from is safe.
    loaded.save(tmp_path / "snap")
    again = HammingIndex.load(tmp_path / "snap", mmap=mmap)
    assert pairs(again.search(codes[0], 0)) == [(0, -1)]


def test_save_refuses_to_overwrite_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not overwriting"):
        HammingIndex().save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _saved(tmp_path: Path, fast_table_bytes: int = 1 << 40) -> Path:
    rng = np.random.default_rng(1)
    idx = HammingIndex()
    idx.fast_table_bytes = fast_table_bytes
    idx.add(random_codes(rng, 190), np.arange(190))
    idx.merge()
    idx.add(random_codes(rng, 10), np.arange(190, 200))  # and a few in the buffer
    idx.save(tmp_path / "snap")
    return tmp_path / "snap"


def test_load_rejects_missing_and_damaged_snapshots(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="meta.json missing"):
        HammingIndex.load(tmp_path / "nothing")
    snap = _saved(tmp_path)
    meta = json.loads((snap / "meta.json").read_text())
    (snap / "meta.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(InputError, match="version"):
        HammingIndex.load(snap)
    (snap / "meta.json").write_text(json.dumps(meta))
    (snap / "table.npy").write_bytes((snap / "codes.npy").read_bytes()[:100])
    with pytest.raises(InputError, match="table.npy"):
        HammingIndex.load(snap)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_out_of_range_rows_in_a_snapshot_are_never_read(tmp_path: Path, kernel: SimpleNamespace, layout: str) -> None:
    """Row numbers inside the table are not validated at load (that would read the
    whole table); the kernels must skip them instead of reading past the codes."""
    snap = _saved(tmp_path, LAYOUTS[layout])
    table = np.load(snap / "table.npy")
    if layout == "filtered":
        # Filter bits 0 pass for a zero query; every row points past the end.
        table[:] = 0
        table[:, :, 1] = np.uint64(10_000) << np.uint64(32)
    else:
        table[:] = 10_000
        table[:, ::2] = -5
    np.save(snap / "table.npy", table)
    idx = HammingIndex.load(snap)
    idx._kernel = kernel
    ids, d = idx.search(np.zeros(32, np.uint8), 31)
    assert set(ids.tolist()) <= set(range(190, 200))  # only buffer rows can still match


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(["meta.json", "codes.npy", "ids.npy", "table.npy", "offsets.npy", "alive.npy"]),
    cut=st.integers(min_value=0, max_value=20_000),
    junk=st.binary(min_size=0, max_size=64),
)
def test_load_fuzz_never_crashes(tmp_path_factory: pytest.TempPathFactory, target: str, cut: int, junk: bytes) -> None:
    snap = _saved(tmp_path_factory.mktemp("fuzz"))
    data = (snap / target).read_bytes()
    cut = min(cut, len(data))
    (snap / target).write_bytes(data[:cut] + junk + data[cut + len(junk) :])
    try:
        idx = HammingIndex.load(snap)
    except InputError as exc:
        assert str(snap) in str(exc)
    else:  # damage the validation cannot see (code bits) still gives bounded answers
        ids, _ = idx.search(np.zeros(32, np.uint8), 64)
        assert set(ids.tolist()) <= set(range(200))


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_value_errors() -> None:
    idx = HammingIndex()
    good = np.zeros((2, 32), np.uint8)
    with pytest.raises(ValueError, match=r"shape \(n, 32\).*\(2, 31\)"):
        idx.add(np.zeros((2, 31), np.uint8), np.arange(2))
    with pytest.raises(ValueError, match="uint8"):
        idx.add(good.astype(np.int64), np.arange(2))
    with pytest.raises(ValueError, match="2 codes but 3 ids"):
        idx.add(good, np.arange(3))
    with pytest.raises(ValueError, match="repeated: 4"):
        idx.add(good, np.array([4, 4]))
    with pytest.raises(ValueError, match="integer"):
        idx.add(good, np.array([1.0, 2.0]))
    idx.add(good, np.array([1, 2]))
    with pytest.raises(ValueError, match="already in the index: 2"):
        idx.add(good[:1], np.array([2]))
    with pytest.raises(ValueError, match="radius must be between 0 and 256, got -1"):
        idx.search(good[0], -1)
    with pytest.raises(ValueError, match="radius"):
        idx.search(good[0], 257)
    with pytest.raises(ValueError, match="radius must be an integer"):
        idx.search(good[0], 3.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(1, 31\)"):
        idx.search(b"\0" * 31)
    with pytest.raises(ValueError, match="bytes or a uint8 array"):
        idx.search("00" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="search_many"):
        idx.search(good)
    with pytest.raises(ValueError, match="bits"):
        HammingIndex(bits=100)
    with pytest.raises(ValueError, match="chunk_bits"):
        HammingIndex(chunk_bits=12)
    assert len(idx) == 2  # nothing half-added


def test_from_hex() -> None:
    pdq = "f" * 64
    arr = HammingIndex.from_hex([pdq, "0" * 64])
    assert arr.shape == (2, 32) and arr.dtype == np.uint8
    assert arr[0].tobytes() == bytes.fromhex(pdq)
    with pytest.raises(ValueError, match="#1 is not hexadecimal"):
        HammingIndex.from_hex([pdq, "zz" * 32])
    with pytest.raises(ValueError, match="#1 has 62 digits"):
        HammingIndex.from_hex([pdq, "0" * 62])
    assert HammingIndex.from_hex([]).shape == (0, 32)


# --------------------------------------------------------------------------- property


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    n=st.integers(min_value=0, max_value=300),
    radius=st.integers(min_value=0, max_value=70),
    chunk_bits=st.sampled_from([8, 16]),
)
def test_property_updates_match_brute_force(make, data: st.DataObject, n: int, radius: int, chunk_bits: int) -> None:
    """Any sequence of adds, removes and merges answers like a brute force over the live set."""
    seed = data.draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    codes = clustered(rng, n + 20, spread=40)
    idx = make(256, chunk_bits)
    idx.buffer_min = data.draw(st.integers(min_value=1, max_value=64))
    if data.draw(st.booleans()):
        idx.scan_fraction = float("inf")
    live: dict[int, int] = {}  # id -> row in codes
    cursor = 0
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        op = data.draw(st.sampled_from(["add", "add", "remove", "merge"]))
        if op == "add" and cursor < len(codes):
            k = data.draw(st.integers(min_value=1, max_value=len(codes) - cursor))
            new_ids = np.arange(cursor, cursor + k) * 5 - 700
            idx.add(codes[cursor : cursor + k], new_ids)
            live.update(zip(new_ids.tolist(), range(cursor, cursor + k), strict=True))
            cursor += k
        elif op == "remove" and live:
            drop = data.draw(st.lists(st.sampled_from(sorted(live)), max_size=20))
            idx.remove(drop + [10**12])
            for i in drop:
                live.pop(i, None)
        elif op == "merge":
            idx.merge()
    assert len(idx) == len(live)
    ids = np.array(sorted(live), dtype=np.int64)
    rows = np.array([live[i] for i in ids.tolist()], dtype=np.int64)
    queries = codes[rng.integers(0, len(codes), 3)]
    for q, res in zip(queries, idx.search_many(queries, radius), strict=True):
        assert pairs(res) == brute(codes[rows], ids, q, radius)


# --------------------------------------------------------------------------- exact


def test_exact_index_basics() -> None:
    idx = ExactIndex(32)
    rng = np.random.default_rng(2)
    keys = random_codes(rng, 1000)
    ids = np.arange(1000, dtype=np.int64) + 100
    idx.add(keys, ids)
    assert idx.search(keys[5].tobytes()).tolist() == [105]
    assert idx.search(keys[5].tobytes().hex()).tolist() == [105]  # hex works as well
    assert idx.search(keys[5]).tolist() == [105]
    # Same first 8 bytes, different tail: the prefix search must not confuse them.
    twin = keys[5].copy()
    twin[31] ^= 1
    assert idx.search(twin.tobytes()).tolist() == []
    idx.add(np.array([twin, keys[5]]), np.array([7, 8]))  # a second id on keys[5]
    assert idx.search(keys[5].tobytes()).tolist() == [8, 105]
    assert idx.search(twin.tobytes()).tolist() == [7]
    idx.remove([105, 7, 424242])
    assert idx.search(keys[5].tobytes()).tolist() == [8]
    assert idx.search(twin.tobytes()).tolist() == []
    assert len(idx) == 1000
    idx.merge()
    assert idx.search(keys[5].tobytes()).tolist() == [8]
    assert idx.search(keys[999].tobytes()).tolist() == [1099]
    assert len(idx) == 1000
    idx.add(keys[5:6], np.array([105]))  # removed id comes back
    assert idx.search(keys[5].tobytes()).tolist() == [8, 105]
    assert idx.memory_bytes() > 1000 * 32


def test_exact_index_bad_inputs() -> None:
    idx = ExactIndex(16)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        idx.add(np.zeros((1, 32), np.uint8), np.array([1]))
    with pytest.raises(ValueError, match="16 bytes, got 15"):
        idx.search(b"\0" * 15)
    with pytest.raises(ValueError, match="not hexadecimal"):
        idx.search("xyz")
    idx.add(np.zeros((1, 16), np.uint8), np.array([1]))
    with pytest.raises(ValueError, match="already in the index: 1"):
        idx.add(np.ones((1, 16), np.uint8), np.array([1]))
    with pytest.raises(ValueError, match="nbytes"):
        ExactIndex(0)


@settings(max_examples=40, deadline=None)
@given(
    nbytes=st.sampled_from([4, 5, 16, 32]),
    ops=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "merge"]), st.lists(st.integers(0, 30), max_size=12)),
        max_size=8,
    ),
    buffer_min=st.integers(min_value=1, max_value=20),
)
def test_exact_index_property(nbytes: int, ops: list[tuple[str, list[int]]], buffer_min: int) -> None:
    """Keys drawn from a small pool (so they repeat) behave like a dict of sets."""
    rng = np.random.default_rng(nbytes)
    pool = random_codes(rng, 8, nbytes)
    pool[1, :] = pool[0, :]
    pool[1, -1] ^= 0x80  # shares every byte but one with key 0
    idx = ExactIndex(nbytes)
    idx.buffer_min = buffer_min
    model: dict[int, int] = {}  # id -> pool row
    next_id = 0
    for op, args in ops:
        if op == "add":
            rows = np.array([a % len(pool) for a in args], dtype=np.int64)
            new_ids = np.arange(next_id, next_id + len(rows))
            idx.add(pool[rows].reshape(-1, nbytes), new_ids)
            model.update(zip(new_ids.tolist(), rows.tolist(), strict=True))
            next_id += len(rows)
        elif op == "remove":
            idx.remove(args)
            for a in args:
                model.pop(a, None)
        else:
            idx.merge()
    assert len(idx) == len(model)
    for row, key in enumerate(pool):
        want = sorted(i for i, r in model.items() if r == row)
        assert idx.search(key.tobytes()).tolist() == want


def test_search_flat_is_search_many_in_three_arrays(make) -> None:
    """Hits in the main part and the buffer, queries without any: the flat form holds
    the same answers, query by query, in order."""
    rng = np.random.default_rng(51)
    codes = clustered(rng, 800, spread=30)
    ids = np.arange(800, dtype=np.int64) * 3
    idx = make()
    idx.buffer_min = 1_000  # the second add stays in the buffer
    idx.add(codes[:600], ids[:600])
    idx.merge()
    idx.add(codes[600:], ids[600:])
    assert idx._view.buf_n == 200
    queries = np.concatenate([codes[[5, 650, 599]], random_codes(rng, 2), codes[[700]]])
    qoff, got_ids, got_d = idx.search_flat(queries, 40)
    assert qoff.shape == (len(queries) + 1,) and qoff[0] == 0 and qoff[-1] == len(got_ids) == len(got_d)
    for i, q in enumerate(queries):
        part = (got_ids[qoff[i] : qoff[i + 1]], got_d[qoff[i] : qoff[i + 1]])
        assert pairs(part) == brute(codes, ids, q, 40)
    assert qoff[4] == qoff[3] and qoff[5] == qoff[4]  # the random queries have no hits
    assert all(qoff[i + 1] > qoff[i] for i in (0, 1, 2, 5))


def test_empty_advises_huge_pages_on_its_aligned_interior(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(_mih, "_madvise", lambda: lambda start, length, advice: calls.append((start, length, advice)))
    big = _mih.empty((3_000_000, 2), np.uint64)  # 48 MB
    assert big.shape == (3_000_000, 2) and big.dtype == np.uint64
    ((start, length, advice),) = calls
    lo, hi = big.ctypes.data, big.ctypes.data + big.nbytes
    assert advice == 14 and start % (2 << 20) == 0 and length % (2 << 20) == 0
    assert lo <= start and start + length <= hi and length >= big.nbytes - 2 * (2 << 20)
    _mih.empty((1000, 4), np.uint64)  # small arrays are left alone
    assert len(calls) == 1
    monkeypatch.setattr(_mih, "_madvise", lambda: None)  # no THP: plain memory
    assert _mih.empty((3_000_000, 2), np.uint64).shape == (3_000_000, 2)


def test_a_mapped_index_moves_to_private_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(52)
    codes = clustered(rng, 3_000, spread=30)
    ids = np.arange(3_000, dtype=np.int64) * 7
    idx = HammingIndex()
    idx.add(codes, ids)
    idx.merge()
    idx.save(tmp_path / "snap")
    mapped = HammingIndex.load(tmp_path / "snap")
    assert mapped.is_mapped() and not idx.is_mapped()
    queries = codes[:40]
    want = [pairs(r) for r in mapped.search_many(queries, 31)]
    mapped.to_private_memory()
    assert not mapped.is_mapped()
    assert [pairs(r) for r in mapped.search_many(queries, 31)] == want
    mapped.remove(ids[:10])  # still a working index: removals and adds
    extra = random_codes(rng, 5)
    mapped.add(extra, np.arange(5) + 10**9)
    assert len(mapped) == 3_000 - 10 + 5
    live_codes = np.concatenate([codes[10:], extra])
    live_ids = np.concatenate([ids[10:], np.arange(5) + 10**9])
    assert [pairs(r) for r in mapped.search_many(queries, 31)] == [brute(live_codes, live_ids, q, 31) for q in queries]
