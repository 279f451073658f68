"""Examiners' hash sets (issue 12 item 6): SHA-1, one-column and MD5,SHA1 CSVs, Project
VIC VICS JSON, NSRL RDS v3 as a known-good bank kept out of the findings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import assay.banks.hashsets as hashsets
import assay.banks.store as store_mod
from assay.banks import migrations
from assay.banks.formats import detect_format, parse_file
from assay.banks.matcher import Matcher
from assay.banks.store import Store
from assay.cli import app
from assay.errors import AssayError, BankImportError, InputError, InvalidBankInput
from assay.report.schema import SignalValue
from hashset_fixtures import file_hashes, make_rds_v3, make_vics

runner = CliRunner()
DATA = {f"f{i}.bin": f"benign generated file {i}\n".encode() * (i + 1) for i in range(5)}


def _run(db: Path, *args: str) -> tuple[int, str, str]:
    if not db.exists():  # a store named by --db must exist (or --create): make it on purpose
        Store(str(db), create=True).close()
    res = runner.invoke(app, ["--db", str(db), *args])
    if isinstance(res.exception, AssayError):
        return 1, str(res.exception), ""
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def _entries(store: Store, bank: str) -> dict[str, dict]:
    return {e.content_id: {"signals": e.signals, "meta": e.meta} for e in store.iter_entries(bank)}


# -- CSV -------------------------------------------------------------------------------------
@pytest.mark.parametrize("header, typ", [("md5", "md5"), ("MD5", "md5"), ("SHA-1", "sha1"), ("sha256", "sha256"),
                                         ("Sha1", "sha1")])
def test_one_column_csv_named_by_its_type(tmp_path: Path, header: str, typ: str) -> None:
    h = file_hashes(b"x")[typ]
    p = tmp_path / "one.csv"
    p.write_text(f"{header}\n{h}\n{file_hashes(b'y')[typ]}\n")
    recs = list(parse_file(p))
    assert [r.signals for r in recs] == [((typ, h.lower()),), ((typ, file_hashes(b"y")[typ].lower()),)]
    assert recs[0].content_id == h.lower()


def test_md5_sha1_csv_keeps_both_as_signals(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "set.csv"
    a, b = file_hashes(b"a"), file_hashes(b"b")
    p.write_text(f"MD5,SHA1,FileName\n{a['md5']},{a['sha1']},a.jpg\n{b['md5']},{b['sha1']},b.jpg\n")
    store.create_bank("set")
    res = store.import_records("set", parse_file(p), source=str(p))
    assert res.added_entries == 2 and res.added_signals == 4
    got = _entries(store, "set")
    assert got[a["md5"].lower()] == {"signals": {"md5": (a["md5"].lower(),), "sha1": (a["sha1"].lower(),)},
                                     "meta": {"FileName": "a.jpg"}}
    m = Matcher(store, snapshots=False).match_signals([SignalValue(type="sha1", value=b["sha1"].lower())])
    assert [(x.content_id, x.strength) for x in m] == [(b["md5"].lower(), "exact")]


# -- VICS --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pretty", [True, False])
def test_vics_json_media_become_entries(store: Store, tmp_path: Path, pretty: bool) -> None:
    items = [(7, 1, b"one"), (8, 2, b"two"), (9, 0, b"three")]
    p = make_vics(tmp_path / "vics.json", items, pretty=pretty)
    assert detect_format(p) == "vics"
    store.create_bank("vic")
    res = store.import_records("vic", parse_file(p), source=str(p))
    assert (res.added_entries, res.added_signals) == (3, 6)
    got = _entries(store, "vic")
    h = file_hashes(b"two")
    assert got["vics:8"]["signals"] == {"md5": (h["md5"].lower(),), "sha1": (h["sha1"].lower(),)}
    meta = got["vics:8"]["meta"]
    assert meta["category"] == 2 and meta["MediaSize"] == 3 and meta["hash_set"] == "Project VIC VICS"
    assert "MediaFiles" not in meta and "odata.id" not in meta


def test_vics_is_read_incrementally_across_any_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A minified export is one line far longer than any line format accepts.
    items = [(i, i % 4, f"media {i}".encode()) for i in range(6000)]
    p = make_vics(tmp_path / "big.json", items, pretty=False)
    assert p.stat().st_size > 1024 * 1024 and p.read_bytes().count(b"\n") == 0
    assert sum(1 for _ in parse_file(p)) == 6000
    monkeypatch.setattr(hashsets, "_CHUNK", 7)  # every value split across windows
    small = make_vics(tmp_path / "small.json", items[:40], pretty=False)
    recs = list(parse_file(small))
    assert [r.content_id for r in recs] == [f"vics:{i}" for i in range(40)]
    assert recs[39].meta["category"] == 3


def test_bad_vics_is_refused_with_its_place(tmp_path: Path) -> None:
    p = make_vics(tmp_path / "v.json", [(1, 1, b"a"), (2, 1, b"b")])
    doc = json.loads(p.read_text())
    doc["value"][1]["MD5"] = "not-a-hash"
    p.write_text(json.dumps(doc))
    with pytest.raises(BankImportError, match="Media item 2"):
        list(parse_file(p))
    p.write_text('{"@odata.context": "x", "value": [{"MediaID": 1, "MD5": "')
    with pytest.raises(InputError, match="v.json"):
        list(parse_file(p))
    with pytest.raises(InputError, match="without a 'value' list"):
        p.write_text('{"@odata.context": "x"}')
        list(parse_file(p))


# -- NSRL RDS v3 -----------------------------------------------------------------------------
@pytest.mark.parametrize("minimal", [False, True])
def test_nsrl_rds_v3_entries(store: Store, tmp_path: Path, minimal: bool) -> None:
    db = make_rds_v3(tmp_path / "RDS_test.db", DATA, minimal=minimal)
    assert detect_format(db) == "nsrl"
    store.create_bank("nsrl", kind="known-good")
    res = store.import_records("nsrl", parse_file(db), source=str(db))
    assert res.added_entries == len(DATA)  # the file shipped in two packages is one entry
    h = file_hashes(DATA["f0.bin"])
    e = _entries(store, "nsrl")[h["sha256"].lower()]
    assert e["signals"] == {"sha256": (h["sha256"].lower(),), "sha1": (h["sha1"].lower(),),
                            "md5": (h["md5"].lower(),)}  # never the 32-bit CRC
    assert e["meta"]["file_name"] == "f0.bin" and e["meta"]["package"] == "ExampleOS base 1.0"
    assert store.get_bank("nsrl").kind == "known-good"


def test_a_sqlite_file_that_is_not_nsrl_is_refused(tmp_path: Path) -> None:
    import sqlite3

    p = tmp_path / "other.db"
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    with pytest.raises(InputError, match="without a FILE table"):
        list(parse_file(p))


@pytest.fixture
def case(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    d.mkdir()
    for name, data in DATA.items():
        (d / name).write_bytes(data)
    (d / "flagged.bin").write_bytes(b"flagged generated bytes\n")
    return d


def test_nsrl_hits_are_known_good_and_not_findings(tmp_path: Path, case: Path) -> None:
    db = tmp_path / "s.sqlite3"
    rds = make_rds_v3(tmp_path / "RDS.db", DATA)
    code, out, _ = _run(db, "bank", "import", "nsrl", str(rds), "--create", "--json")
    assert code == 0 and json.loads(out)["kind"] == "known-good" and json.loads(out)["format"] == "nsrl"
    code, out, _ = _run(db, "scan", str(case), "--json", "--workers", "1", "--fail-on-match")
    assert code == 0, out  # known files are not a --fail-on-match hit
    lines = [json.loads(x) for x in out.splitlines()]
    recs = {Path(r["path"]).name: r for r in lines if "path" in r}
    summary = lines[-1]
    assert summary["matched_files"] == 0 and summary["known_good_files"] == len(DATA)
    kg = recs["f1.bin"]["known_good"]
    assert recs["f1.bin"]["matches"] == [] and {m["bank"] for m in kg} == {"nsrl"}
    assert {m["signal_type"] for m in kg} == {"md5", "sha1", "sha256"} and all(m["strength"] == "exact" for m in kg)
    assert "known_good" not in recs["flagged.bin"]

    # a flagged bank still makes findings beside it
    flagged = hashlib.md5((case / "flagged.bin").read_bytes()).hexdigest()
    assert _run(db, "bank", "add", "flags", "--content-id", "bad", "--md5", flagged)[0] == 1  # no such bank
    _run(db, "bank", "create", "flags")
    _run(db, "bank", "add", "flags", "--content-id", "bad", "--md5", flagged)
    code, out, _ = _run(db, "scan", str(case), "--json", "--workers", "1", "--fail-on-match")
    assert code == 3
    summary = json.loads(out.splitlines()[-1])
    assert summary["matched_files"] == 1 and summary["known_good_files"] == len(DATA)
    code, out, _ = _run(db, "scan", str(case), "--workers", "1", "-o", str(tmp_path / "report.jsonl"))
    assert "known-good files" in out and f"{len(DATA)} (in a known-good hash set" in out


def test_nsrl_is_never_imported_into_a_flagged_bank(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    rds = make_rds_v3(tmp_path / "RDS.db", DATA)
    _run(db, "bank", "create", "flags")
    code, out, err = _run(db, "bank", "import", "flags", str(rds))
    msg = out + err
    assert code == 1 and "known-good" in msg and "not imported" in msg
    code, out, _ = _run(db, "bank", "list", "--json")
    assert json.loads(out)[0]["entries"] == 0 and json.loads(out)[0]["kind"] == "flagged"


def test_bank_kind_is_validated(store: Store) -> None:
    with pytest.raises(InvalidBankInput, match="bank kind"):
        store.create_bank("x", kind="trusted")


def test_0005_gives_existing_banks_the_flagged_kind(store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        migrations.upgrade(engine, "0004")
        now = sa.func.now()
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO banks (name, description, enabled, created_at, updated_at) "
                                 "VALUES ('old', '', true, :t, :t)"), {"t": store_mod._now()})
        del now
        with Store(store_url) as s:
            assert s.get_bank("old").kind == "flagged"
            assert s.create_bank("kg", kind="known-good").kind == "known-good"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == migrations.HEAD
    finally:
        engine.dispose()
