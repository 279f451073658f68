"""The store a command uses: never created by accident (issue 12, item 5), and where
`scan` writes what (-o with --json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.demo import pattern

runner = CliRunner()


def _invoke(*args: str, env: dict[str, str] | None = None):  # noqa: ANN202
    res = runner.invoke(app, list(args), env=env)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    return res


@pytest.fixture
def case(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    d.mkdir()
    pattern("rings", seed=1).save(d / "a.png")
    (d / "notes.txt").write_text("x")
    return d


@pytest.mark.parametrize("how", ["--db", "ASSAY_DB"])
def test_a_named_store_that_does_not_exist_is_refused(tmp_path: Path, case: Path, how: str) -> None:
    typo = tmp_path / "typo.sqlite3"
    for args in (["scan", str(case), "--json"], ["match", "--md5", "0" * 32, "--json"], ["bank", "list"],
                 ["bank", "create", "known"], ["model", str(case / "notes.txt")]):
        if how == "--db":
            res = _invoke("--db", str(typo), *args)
        else:
            res = _invoke(*args, env={"ASSAY_DB": str(typo)})
        assert res.exit_code == 2, (args, res.output)
        assert f"no assay store at sqlite:///{typo}" in res.stderr
        assert "--create" in res.stderr
        assert res.stdout == ""
        assert not typo.exists()  # nothing was created


def test_create_makes_the_store_once(tmp_path: Path) -> None:
    db = str(tmp_path / "new" / "banks.sqlite3")
    res = _invoke("--db", db, "bank", "create", "known", "--create")
    assert res.exit_code == 0 and "created bank known" in res.stdout
    assert _invoke("--db", db, "bank", "list", "--json").exit_code == 0  # now it exists
    other = str(tmp_path / "other.sqlite3")
    assert _invoke("--db", other, "--create", "bank", "list").exit_code == 0  # the global flag
    assert Path(other).is_file()
    res = _invoke("--db", str(tmp_path / "third.sqlite3"), "bank", "import", "k",
                  str(tmp_path / "missing.txt"), "--create")
    assert res.exit_code == 1 and "missing.txt" in res.stderr  # --create of `bank import` covers the store


def test_an_empty_file_is_not_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    res = _invoke("--db", str(empty), "bank", "list")
    assert res.exit_code == 2 and "no assay store" in res.stderr
    assert empty.stat().st_size == 0


def test_the_embedded_default_store_is_made_on_first_use(tmp_path: Path) -> None:
    import os

    res = _invoke("bank", "list")
    assert res.exit_code == 0 and "no banks yet" in res.stdout
    assert (Path(os.environ["ASSAY_DATA_DIR"]) / "assay.sqlite3").is_file()


@pytest.mark.postgres
def test_an_empty_postgres_schema_is_missing_unless_create(pg_url: str) -> None:
    res = _invoke("--db", pg_url, "bank", "list")
    assert res.exit_code == 2 and "no assay store at postgresql" in res.stderr
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []  # nothing was created
    finally:
        engine.dispose()
    assert _invoke("--db", pg_url, "bank", "create", "b", "--create").exit_code == 0
    res = _invoke("--db", pg_url, "bank", "list", "--json")
    assert res.exit_code == 0 and [b["name"] for b in json.loads(res.stdout)] == ["b"]


def test_scan_json_with_output_writes_the_file_and_prints_the_summary(tmp_path: Path, case: Path) -> None:
    report = tmp_path / "x.jsonl"
    res = _invoke("scan", str(case), "--json", "-o", str(report), "--workers", "1")
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in report.read_text().splitlines()[1:-1]]  # between header and summary
    assert sorted(Path(r["path"]).name for r in recs) == ["a.png", "notes.txt"]
    assert all(r["schema"] == "assay.file/1" for r in recs)
    (summary,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert summary["schema"] == "assay.scan-summary/1" and summary["files"] == 2
    # and it never overwrites
    res = _invoke("scan", str(case), "--json", "-o", str(report), "--workers", "1")
    assert res.exit_code == 1 and str(report) in res.stderr
    # without -o, --json streams every record and then the summary
    res = _invoke("scan", str(case), "--json", "--workers", "1")
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["schema"] for x in lines] == [
        "assay.scan-header/1", "assay.file/1", "assay.file/1", "assay.scan-summary/1"]


def test_scan_summary_counts_add_up_and_read_well(tmp_path: Path, case: Path) -> None:
    (case / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (case / "unreadable.png").symlink_to(tmp_path / "nowhere.png")
    # wide enough that no row wraps (the report path is long under pytest)
    res = _invoke("scan", str(case), "-o", str(tmp_path / "r.jsonl"), "--workers", "1", env={"COLUMNS": "300"})
    text = res.stdout
    recs = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()[1:-1]]  # the file records
    with_errors = sum(1 for r in recs if r.get("errors"))
    unreadable = sum(1 for r in recs if r["kind"] == "error")
    assert f"{len(recs)} files: " in text
    lines = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in text.splitlines() if ln.count("│") >= 3}
    kinds = lines["files"].split(": ", 1)[1].split(", ")
    assert sum(int(k.split()[0]) for k in kinds) == len(recs)  # the parts add up
    assert "1 other file" in kinds and "2 images" in kinds
    assert lines["errors"].startswith(f"{with_errors} file")
    parts = lines["errors"].split("(", 1)[1].split(")")[0].split(", ")
    assert sum(int(p.split()[0]) for p in parts) == with_errors
    assert unreadable == 0 or f"{unreadable} unreadable" in lines["errors"]
    assert not re.search(r"(?<![\d.,])1 (images|files|entries)\b(?!/s)", text), text  # "1 file", "16.1 files/s"
    assert not re.search(r"\(\d+ error\)", text)
    assert lines["matched files"] == "0"
