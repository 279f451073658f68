"""The `assay` command end to end: banks, scan, match, hash, errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from assay.cli import app, main
from assay.demo import pattern
from assay.errors import AssayError

runner = CliRunner()


def _run(*args: str, db: Path) -> tuple[int, str]:
    res = runner.invoke(app, ["--db", str(db), *args])
    if isinstance(res.exception, AssayError):  # main() turns these into status 1
        return 1, str(res.exception)
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout


def _assay(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point, for exit codes and stderr messages."""
    code = "import sys; from assay.cli import main; sys.argv[0] = 'assay'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy()
    )


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The console entry point ``main()`` in this process: the same status and stderr
    as ``_assay`` without a new interpreter (the tests below keep real processes too)."""
    capsys.readouterr()
    with mock.patch.object(sys, "argv", ["assay", *args]):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    d.mkdir()
    pattern("rings", seed=1).save(d / "known.png")
    pattern("rings", seed=1).save(d / "known-copy.jpg", quality=80)
    pattern("blobs", seed=7).save(d / "unrelated.png")
    (d / "notes.txt").write_text("hello")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    return d


def test_bank_lifecycle_and_scan(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "banks.sqlite3"
    code, out = _run("hash", "--json", str(folder / "known.png"), db=db)
    assert code == 0
    rec = json.loads(out)
    assert rec["schema"] == "assay.file/1" and rec["kind"] == "image"
    pdq = next(s["value"] for s in rec["signals"] if s["type"] == "pdq")
    md5 = next(s["value"] for s in rec["signals"] if s["type"] == "md5")

    assert _run("bank", "create", "known", "--create", "--threshold", "31", db=db)[0] == 0
    lst = tmp_path / "list.txt"
    lst.write_text(f"# known material\n{pdq}\n\n" + "0" * 64 + "\n")
    code, out = _run("bank", "import", "known", str(lst), "--json", db=db)
    assert code == 0 and json.loads(out)["added_signals"] == 2
    code, out = _run("bank", "import", "known", str(lst), "--json", db=db)  # idempotent
    assert json.loads(out)["added_signals"] == 0 and json.loads(out)["duplicates"] == 2
    assert _run("bank", "add", "known", "--content-id", "case-1", "--md5", md5, "--note", "from CLI", db=db)[0] == 0

    code, out = _run("bank", "list", "--json", db=db)
    (bank,) = json.loads(out)
    assert bank["name"] == "known" and bank["entries"] == 3 and bank["signals"] == {"md5": 1, "pdq": 2}

    report = tmp_path / "report.jsonl"
    code, out = _run("scan", str(folder), "-o", str(report), "--workers", "1", db=db)
    assert code == 0, out
    records = {Path(r["path"]).name: r for r in map(json.loads, report.read_text().splitlines())
               if r["schema"] == "assay.file/1"}
    assert set(records) == {"known.png", "known-copy.jpg", "unrelated.png", "notes.txt", "broken.jpg"}
    assert {(m["content_id"], m["signal_type"]) for m in records["known.png"]["matches"]} == {
        (pdq, "pdq"), ("case-1", "md5")
    }
    assert [m["content_id"] for m in records["known-copy.jpg"]["matches"]] == [pdq]
    assert records["unrelated.png"]["matches"] == []
    assert records["broken.jpg"]["errors"] and records["notes.txt"]["kind"] == "other"

    # never overwrite a report; --json streams records plus a summary line
    code, _ = _run("scan", str(folder), "-o", str(report), db=db)
    assert code == 1
    code, out = _run("scan", str(folder), "--json", "--workers", "1", "--fail-on-match", db=db)
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 3
    assert lines[-1]["schema"] == "assay.scan-summary/1" and lines[-1]["matched_files"] == 2
    assert len(lines) == 7 and lines[0]["schema"] == "assay.scan-header/1"

    code, out = _run("match", "--pdq", pdq, "--json", db=db)
    assert [m["content_id"] for m in json.loads(out)["matches"]] == [pdq]
    assert _run("bank", "disable", "known", db=db)[0] == 0
    code, out = _run("match", "--pdq", pdq, "--json", db=db)
    assert json.loads(out)["matches"] == []
    assert _run("bank", "enable", "known", db=db)[0] == 0
    assert _run("bank", "remove", "known", "case-1", db=db)[0] == 0
    code, out = _run("match", "--md5", md5, "--json", db=db)
    assert json.loads(out)["matches"] == []

    exported = tmp_path / "export.csv"
    assert _run("bank", "export", "known", "--format", "csv", "-o", str(exported), db=db)[0] == 0
    assert pdq in exported.read_text()
    assert _run("bank", "create", "copy", db=db)[0] == 0
    code, out = _run("bank", "import", "copy", str(exported), "--json", db=db)
    assert json.loads(out)["added_signals"] == 2


def test_errors_are_clear_and_nothing_is_imported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "b.sqlite3"
    assert _run("bank", "create", "k", "--create", db=db)[0] == 0
    rng = np.random.default_rng(0)
    good = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(5)]
    csv = tmp_path / "bad.csv"
    csv.write_text("signal_type,value,content_id,note\n" + "".join(f"pdq,{h},c{i},\n" for i, h in enumerate(good[:3]))
                   + "pdq,nothex,c9,\n" + f"pdq,{good[4]},c4,\n")
    res = _assay("--db", str(db), "bank", "import", "k", str(csv))
    assert res.returncode == 1
    assert "line 5" in res.stderr and "nothing was imported" in res.stderr
    code, out = _run("bank", "stats", "k", "--json", db=db)
    assert json.loads(out)["entries"] == 0

    # the same entry point in process from here on (the import above ran a real one)
    code, _, stderr = _main(capsys, "--db", str(db), "match", "--pdq", "xyz")
    assert code == 2 and "invalid pdq value" in stderr  # a bad option value
    code, _, stderr = _main(capsys, "--db", str(db), "bank", "show", "nope")
    assert code == 1 and "nope" in stderr
    # a missing folder is created for a new store; a path under a file cannot be
    fresh = tmp_path / "no" / "such" / "dir" / "x.sqlite3"
    code, _, stderr = _main(capsys, "--db", str(fresh), "--create", "bank", "list")
    assert code == 0, stderr
    assert fresh.is_file() and "Traceback" not in stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = _main(capsys, "--db", str(blocker / "x.sqlite3"), "--create", "bank", "list")
    assert code == 1 and "error:" in stderr and "Traceback" not in stderr
    assert blocker.read_text() == "x"


def test_hash_reports_failures_per_file(tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(img)
    (tmp_path / "t.txt").write_text("x")
    res = _assay("hash", "--json", str(img), str(tmp_path / "t.txt"), str(tmp_path / "missing.png"))
    assert res.returncode == 1
    recs = [json.loads(x) for x in res.stdout.splitlines()]
    assert recs[0]["kind"] == "image" and not recs[0].get("errors")
    assert recs[1]["errors"][0]["code"] == "unsupported-format"
    assert recs[2]["kind"] == "error"


def test_demo_runs_on_the_embedded_store(tmp_path: Path) -> None:
    res = _assay("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert re.search(r"matched files +│ [1-9][0-9]* \(demo: ", res.stdout), res.stdout
    recs = [json.loads(x) for x in (tmp_path / "demo" / "report.jsonl").read_text().splitlines()]
    matched = {Path(r["path"]).name for r in recs if r.get("matches")}
    assert "rings-copy.png" in matched and "rings-rot90.png" in matched
    assert not any(n.startswith("upload-") for n in matched)
    # the embedded store lives under the (test-isolated) data directory
    assert (Path(os.environ["ASSAY_DATA_DIR"]) / "assay.sqlite3").is_file()


def test_bank_prune_changes(tmp_path: Path) -> None:
    """Old change records go; recent ones stay; a second prune finds nothing more."""
    db = tmp_path / "banks.sqlite3"
    assert _run("bank", "create", "b", "--create", db=db)[0] == 0
    for i in range(3):
        assert _run("bank", "add", "b", "--content-id", f"c{i}", "--md5", f"{i:032x}", db=db)[0] == 0
    assert _run("bank", "remove", "b", "c0", db=db)[0] == 0
    assert _run("bank", "remove", "b", "c1", db=db)[0] == 0  # two change records
    code, out = _run("bank", "prune-changes", "--json", db=db)  # 7 days: both are recent
    assert code == 0 and json.loads(out) == {"deleted": 0, "pruned_through_seq": 0}
    code, out = _run("bank", "prune-changes", "--older-than-days", "0", "--json", db=db)
    got = json.loads(out)
    assert code == 0 and got["deleted"] == 2 and got["pruned_through_seq"] >= 2
    code, out = _run("bank", "prune-changes", "--older-than-days", "0", db=db)
    assert code == 0 and "deleted 0 change records" in out
    assert _run("bank", "prune-changes", "--older-than-days", "-1", db=db)[0] != 0


def test_a_scan_never_reads_its_own_report(tmp_path: Path) -> None:
    """A report written into the scanned folder (``assay scan . -o report.jsonl``) was
    itself a record: its .partial, hashed while being written; with --overwrite the old
    report and checksum too. The header names what was left out."""
    case = tmp_path / "case"
    case.mkdir()
    pattern("rings", seed=1).save(case / "known.png")
    db = tmp_path / "s.db"
    for extra in ((), ("--overwrite",)):
        res = _assay("--db", str(db), "--create", "scan", str(case), "--no-banks", "-o", str(case / "r.jsonl"), *extra)
        assert res.returncode == 0, res.stderr
        lines = [json.loads(x) for x in (case / "r.jsonl").read_text().splitlines()]
        assert [r["path"] for r in lines if r["schema"] == "assay.file/1"] == [str(case / "known.png")]
        assert lines[0]["not_scanned"] == [str(case / n) for n in ("r.jsonl", "r.jsonl.partial", "r.jsonl.sha256")]
        assert lines[-1]["files"] == 1
    res = _assay("--db", str(db), "scan", str(case), "--no-banks", "--json")  # stdout: nothing of its own
    header = json.loads(res.stdout.splitlines()[0])
    assert "not_scanned" not in header and res.stdout.count('"assay.file/1"') == 3
