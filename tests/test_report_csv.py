"""CSV export (issue 16, item 4): one file per table, every text cell that a spreadsheet
would run as a formula written with a leading apostrophe, numbers as numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import casegen
from assay.report.csvout import cell


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> casegen.Case:
    return casegen.build(tmp_path_factory.mktemp("csv"))


def _read(p: Path) -> list[dict[str, str]]:
    raw = p.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark: Excel reads UTF-8
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


@pytest.mark.parametrize(("value", "written"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+2", "'+1+2"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("plain", "plain"), ("a=b", "a=b"),
    (-5, -5), (3, 3), (None, ""), (True, "yes"),
])
def test_formula_cells_are_neutralised(value: object, written: object) -> None:
    assert cell(value) == written


def test_csv_export_tables(case: casegen.Case, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    res = casegen.invoke("--db", case.db, "report", str(case.report), "--format", "csv", "-o", str(out),
                         "--case-id", "=cmd|' /C calc'!A0")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "wrote 7 CSV files" in res.output  # type: ignore[attr-defined]
    lines = [json.loads(x) for x in case.report.read_text().splitlines()]
    files = [x for x in lines if x.get("schema") == "assay.file/1"]
    inv = _read(out / "inventory.csv")
    assert len(inv) == len(files)
    by_path = {r["path"]: r for r in inv}
    for rec in files:
        row = by_path[rec["path"]]
        sig = {s["type"]: s["value"] for s in rec["signals"] if "mode" not in s}
        assert (row["md5"], row["sha1"], row["sha256"]) == (sig["md5"], sig["sha1"], sig["sha256"])
        assert row["size"] == str(rec["size"])
    matches = _read(out / "matches.csv")
    assert len(matches) == 4 and {m["content_id"] for m in matches} == {casegen.CONTENT_ID, "photo-1"}
    ai = _read(out / "ai_evidence.csv")
    assert {r["path"].rsplit("/", 1)[1] for r in ai} == {"gen-0.png", "gen-1.png"}
    assert all("<script>window.__pwned=3</script>" in r["facts_json"] for r in ai)
    models = _read(out / "models.csv")
    assert {(Path(r["path"]).name, r["safety"]) for r in models} >= {("evil.pkl", "dangerous")}
    assert any(Path(r["path"]).name == "broken.png" for r in _read(out / "errors.csv"))
    case_rows = {r["field"]: r["value"] for r in _read(out / "case.csv")}
    assert case_rows["case_id"] == "'=cmd|' /C calc'!A0" and case_rows["integrity"] == "match"
    assert case_rows["scan_id"] == lines[0]["scan_id"]
    # no cell of any file starts a formula
    for f in out.glob("*.csv"):
        for row in csv.reader(f.read_bytes().decode("utf-8-sig").splitlines()):
            assert not any(c.startswith(("=", "+", "-", "@")) for c in row), (f.name, row)
    # nothing overwritten without --overwrite
    res = casegen.invoke("report", str(case.report), "--format", "csv", "-o", str(out))
    assert res.exit_code == 1 and "not overwriting" in res.output  # type: ignore[attr-defined]


def test_hostile_file_name_starting_a_formula(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "=1+1").write_text("x")
    report = tmp_path / "r.jsonl"
    assert casegen.invoke("scan", str(tmp_path / "c"), "--no-banks", "-o", str(report)).exit_code == 0  # type: ignore[attr-defined]
    out = tmp_path / "out"
    assert casegen.invoke("report", str(report), "--format", "csv", "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    (row,) = _read(out / "inventory.csv")
    assert row["path"] == str(tmp_path / "c" / "=1+1")  # the path starts with "/": as it is
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "@x").write_text("y")
    report2 = tmp_path / "r2.jsonl"
    monkeypatch.chdir(tmp_path / "d")
    assert casegen.invoke("scan", "@x", "--no-banks", "-o", str(report2)).exit_code == 0  # type: ignore[attr-defined]
    out2 = tmp_path / "out2"
    assert casegen.invoke("report", str(report2), "--format", "csv", "-o", str(out2)).exit_code == 0  # type: ignore[attr-defined]
    (row,) = _read(out2 / "inventory.csv")
    assert row["path"] == "'@x"
