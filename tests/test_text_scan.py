"""`assay scan --text-index`: text files checked against a text index, as one more
analyzer; other files untouched; the summary counts them and --fail-on-match sees them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from assay.cli import app

runner = CliRunner()
WORK = ("The keeper of the northern light wrote in her ledger that the winter had been long, "
        "that the gulls had gone south early, and that no ship had passed since the first snow.")


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "works").mkdir()
    (tmp_path / "works" / "ledger.txt").write_text(WORK)
    res = runner.invoke(app, ["text", "index", str(tmp_path / "works"), "--index", str(tmp_path / "ix")])
    assert res.exit_code == 0, res.output
    case = tmp_path / "case"
    case.mkdir()
    (case / "output-1.txt").write_text("Sure. " + WORK.upper() + " Anything else?")
    (case / "output-2.md").write_text("An original answer about tide tables and the price of lamp oil in 1890.")
    (case / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (case / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 30)
    # saved by PowerShell's `>` (UTF-16 with its byte-order mark): was skipped as binary
    (case / "output-3.txt").write_bytes(("Quoting it: " + WORK).encode("utf-16"))
    (case / "output-4.txt").write_bytes(("As asked: " + WORK).encode("utf-16-le"))  # no mark
    return case, tmp_path / "ix"


def test_scan_checks_text_files(tmp_path: Path) -> None:
    case, ix = _setup(tmp_path)
    report = tmp_path / "r.jsonl"
    res = runner.invoke(app, ["--db", str(tmp_path / "s.sqlite3"), "--create", "scan", str(case), "--no-banks",
                              "--workers", "1", "--text-index", str(ix), "-o", str(report)],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "text reproduction" in res.stdout and "3 text files with passages of indexed works" in res.stdout
    recs = {Path(r["path"]).name: r for r in map(json.loads, report.read_text().splitlines())
            if r.get("schema") == "assay.file/1"}
    hit = recs["output-1.txt"]["text"]
    (span,) = [s for s in hit["spans"] if s["kind"] == "exact"]
    # the whole work but its final full stop (punctuation is not matched: no span ends on it)
    assert span["sources"] == [{"work": "ledger", "start": 0, "end": len(WORK) - 1}]
    assert (case / "output-1.txt").read_text()[span["start"]:span["end"]] == WORK.upper()[:-1]
    assert recs["output-2.md"]["text"]["spans"] == [] and recs["output-2.md"]["text"]["coverage"] == 0
    (span,) = [s for s in recs["output-3.txt"]["text"]["spans"] if s["kind"] == "exact"]
    assert (span["start"], span["end"]) == (len("Quoting it: "), len("Quoting it: ") + len(WORK) - 1)
    (span,) = [s for s in recs["output-4.txt"]["text"]["spans"] if s["kind"] == "exact"]
    assert (span["start"], span["end"]) == (len("As asked: "), len("As asked: ") + len(WORK) - 1)
    assert "text" not in recs["blob.bin"] and not recs["blob.bin"].get("errors")
    assert "text" not in recs["latin1.txt"]
    summary = json.loads(report.read_text().splitlines()[-1])
    assert summary["text_reproductions"] == 3
    res = runner.invoke(app, ["--db", str(tmp_path / "s.sqlite3"), "scan", str(case), "--no-banks", "--workers", "1",
                              "--text-index", str(ix), "-o", str(tmp_path / "r2.jsonl"), "--fail-on-match"])
    assert res.exit_code == 3


def test_scan_without_text_index_and_with_a_bad_one(tmp_path: Path) -> None:
    case, _ = _setup(tmp_path)
    db = ["--db", str(tmp_path / "s.sqlite3"), "--create"]
    res = runner.invoke(app, [*db, "scan", str(case), "--no-banks", "--workers", "1", "-o", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 0
    assert all("text" not in json.loads(ln) for ln in (tmp_path / "r.jsonl").read_text().splitlines())
    res = runner.invoke(app, [*db, "scan", str(case), "--no-banks", "--text-index", str(tmp_path / "nowhere"),
                              "-o", str(tmp_path / "r3.jsonl")])
    assert res.exit_code == 1 and "no text index at" in res.stderr
    assert not (tmp_path / "r3.jsonl").exists()


def test_scan_reads_an_html_output_without_its_markup(tmp_path: Path) -> None:
    _, ix = _setup(tmp_path)
    case = tmp_path / "html"
    case.mkdir()
    words = WORK.split(" ")
    page = "<html><body><p>" + " ".join(f"<b>{w}</b>" if i % 3 == 0 else w for i, w in enumerate(words)) + "</p></body></html>"
    (case / "answer.html").write_text(page)
    report = tmp_path / "h.jsonl"
    res = runner.invoke(app, ["--db", str(tmp_path / "h.sqlite3"), "--create", "scan", str(case), "--no-banks",
                              "--workers", "1", "--text-index", str(ix), "-o", str(report)])
    assert res.exit_code == 0, res.output
    (rec,) = [r for r in map(json.loads, report.read_text().splitlines()) if r.get("schema") == "assay.file/1"]
    (span,) = [s for s in rec["text"]["spans"] if s["kind"] == "exact"]
    assert span["sources"] == [{"work": "ledger", "start": 0, "end": len(WORK) - 1}]
    assert page[span["start"]:].startswith("The</b> keeper") and page[:span["end"]].endswith("first snow")
