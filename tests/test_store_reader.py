"""The SQLite reader of one-file commands (banks/reader.py) answers exactly as the
Matcher does, and leaves every store it should not read to Store."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.banks import reader
from assay.banks import store as store_mod
from assay.banks.matcher import Matcher, Query
from assay.banks.reader import SqliteReader
from assay.banks.store import Store
from assay.cli import app

rng = random.Random(12)
MD5 = "20def2ffb08bd7f8adc9d14cce39d7ee"


def _pdq() -> str:
    return f"{rng.getrandbits(256):064x}"


def _flip(h: str, bits: int) -> str:
    v = int(h, 16)
    for b in rng.sample(range(256), bits):
        v ^= 1 << b
    return f"{v:064x}"


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def banks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("reader") / "banks.sqlite3"
    base = [_pdq() for _ in range(6)]
    with Store(str(path)) as s:
        s.create_bank("known")  # default threshold
        s.create_bank("tight", pdq_threshold=10)
        s.create_bank("loose", pdq_threshold=45)
        s.create_bank("good", kind="known-good")
        s.create_bank("off")
        for i, h in enumerate(base):
            s.add_entry("known", f"k{i}", {"pdq": [h], "md5": ["%032x" % (i + 1)]}, note=f"note {i}")
            s.add_entry("tight", f"t{i}", {"pdq": [_flip(h, 8), _flip(h, 20)]})
            s.add_entry("loose", f"l{i}", {"pdq": [_flip(h, 40)], "sha256": ["%064x" % (i + 7)]})
            s.add_entry("off", f"o{i}", {"pdq": [h], "md5": ["%032x" % (i + 1)]})
        s.add_entry("good", "g1", {"md5": [MD5], "sha1": ["a" * 40]})
        trimmed = _flip(base[1], 3)  # a hash banked for a variant of an image (bank add --image)
        s.add_entry("known", "with-variant", {"pdq": [_pdq(), trimmed]},
                    meta={"pdq_variants": {trimmed: "trimmed"}})
        s.add_entry("known", "dup", {"md5": [MD5], "autov1": ["e3b0c442"], "autov2": ["0123456789"]})
        s.add_entry("known", "disabled", {"pdq": [base[0]], "md5": [f"{1:032x}"]})
        s.set_entry_enabled("known", "disabled", False)
        s.set_bank_enabled("off", False)
        for _ in range(300):  # decoys
            s.add_entry("known", f"d{_}", {"pdq": [_pdq()]})
    queries = [Query("md5", MD5), Query("md5", f"{1:032x}"), Query("md5", "f" * 32), Query("sha1", "a" * 40),
               Query("sha256", f"{9:064x}"), Query("autov1", "e3b0c442"), Query("autov2", "0123456789"),
               Query("md5", MD5, None, None, "named-by-metadata")]
    for h in base:
        queries += [Query("pdq", h, None, 100), Query("pdq", _flip(h, 12), "rot90", 90),
                    Query("pdq", _flip(h, 30), None, 20), Query("pdq", _flip(h, 50))]
    return {"path": path, "queries": queries}


def _key(matches: list) -> list:
    return [m.model_dump(mode="json") for m in matches]


@pytest.mark.parametrize("threshold", [None, 0, 8, 31, 60])
@pytest.mark.parametrize("include_low_quality", [False, True])
@pytest.mark.parametrize("variants", [True, False])
def test_reader_answers_as_the_matcher(banks: dict, threshold: int | None, include_low_quality: bool,
                                       variants: bool) -> None:
    queries = banks["queries"]
    with Store(str(banks["path"]), create=False) as s:
        want = Matcher(s, snapshots=False).lookup(queries, threshold=threshold,
                                                  include_low_quality=include_low_quality, variants=variants)
    with SqliteReader.open(_url(banks["path"])) as r:
        got = r.lookup(queries, threshold=threshold, include_low_quality=include_low_quality,
                       variants=variants)
    assert got is not None
    assert _key(got) == _key(want)
    assert want  # the case has matches of every kind to compare
    kinds = {(m.bank, m.signal_type, m.strength) for m in want}
    assert {("good", "md5", "exact"), ("known", "pdq", "perceptual"), ("known", "md5", "named-by-metadata")} <= kinds
    if variants and threshold != 0:
        assert any(m.bank_variant == "trimmed" for m in want)


def test_reader_one_by_one_equals_batch(banks: dict) -> None:
    queries = banks["queries"]
    with SqliteReader.open(_url(banks["path"])) as r:
        batch = _key(r.lookup(queries))
        single = [m for i, q in enumerate(queries) for m in _key(r.lookup([q])) if m.update(query=i) is None]
    assert sorted(map(str, single)) == sorted(map(str, batch))


def test_fingerprint_count_is_what_lineage_would_read(tmp_path: Path) -> None:
    """Readable summaries of enabled (or named) banks, as FingerprintIndex counts them: a
    truncated one and a disabled bank's are left out."""
    import numpy as np

    from assay.banks.fingerprints import FingerprintStore
    from assay.models.fingerprint import fingerprint_file

    model = tmp_path / "m.safetensors"
    import json
    import struct

    arrs = {f"l{i}.weight": np.random.default_rng(i).standard_normal((32, 32)).astype(np.float32) for i in range(3)}
    header, off = {}, 0
    for k, a in arrs.items():
        header[k] = {"dtype": "F32", "shape": [32, 32], "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header).encode()
    model.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(a.tobytes() for a in arrs.values()))
    fp = fingerprint_file(model)
    db = tmp_path / "fp.sqlite3"
    with Store(str(db)) as s:
        fs = FingerprintStore(s)
        for bank in ("a", "b", "off"):
            s.create_bank(bank)
            fs.add(bank, "m1", fp)
            fs.add(bank, "m2", fp)
        s.set_bank_enabled("off", False)
        with s.transaction("damaging a summary") as conn:
            conn.exec_driver_sql("UPDATE model_fingerprints SET summary = x'00' WHERE id = 3")
        for names in (None, ["a"], ["b"], ["a", "off"], ["nosuch"]):
            with SqliteReader.open(_url(db)) as r:
                assert r.fingerprint_count(names) == len(fs.index(names)), names
        with SqliteReader.open(_url(db)) as r:
            assert r.fingerprint_count([]) == 0


def test_constants_follow_the_store() -> None:
    from assay.banks.fingerprints import _SUMMARY_BYTES, _SUMMARY_BYTES_INV, _SUMMARY_BYTES_SHAPE

    assert reader.SUMMARY_SIZES == (_SUMMARY_BYTES, _SUMMARY_BYTES_INV, _SUMMARY_BYTES_SHAPE)
    assert reader._SCHEMA_VERSION == store_mod.SCHEMA_VERSION


def test_stores_left_to_store(tmp_path: Path) -> None:
    assert SqliteReader.open(_url(tmp_path / "missing.sqlite3")) is None
    (tmp_path / "empty.sqlite3").write_bytes(b"")
    assert SqliteReader.open(_url(tmp_path / "empty.sqlite3")) is None
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database at all" * 100)
    assert SqliteReader.open(_url(tmp_path / "junk.sqlite3")) is None
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    assert SqliteReader.open(_url(other)) is None
    older = tmp_path / "older.sqlite3"
    Store(str(older)).close()
    with sqlite3.connect(older) as c:
        c.execute("UPDATE alembic_version SET version_num = '0004'")
    assert SqliteReader.open(_url(older)) is None
    assert SqliteReader.open("sqlite://") is None
    assert SqliteReader.open("postgresql://u@h/db") is None
    assert not (tmp_path / "missing.sqlite3").exists()  # never created


def test_cli_match_through_the_matcher_gives_the_same_text(banks: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store with more PDQ hashes than the reader compares goes to the Matcher: same output."""
    runner = CliRunner()
    args = ["--db", str(banks["path"]), "match", "--json", "--md5", MD5,
            *[a for q in banks["queries"] if q.signal_type == "pdq" for a in ("--pdq", q.value)]]
    fast = runner.invoke(app, args)
    monkeypatch.setattr(reader, "MAX_HAMMING", 10)
    slow = runner.invoke(app, args)
    assert fast.exit_code == slow.exit_code == 0
    assert fast.output == slow.output
    assert '"strength": "perceptual"' in fast.output
