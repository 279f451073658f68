"""Chain of custody in every scan (issue 16, item 1): the header line, per-file hashes
and times, the report's SHA-256 sidecar, and no secret in any of it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.config import ScanSettings
from assay.demo import pattern
from assay.scan.custody import SNAPSHOT_METHOD, redact, settings_dict

runner = CliRunner()


def _invoke(*args: str, env: dict[str, str] | None = None):  # noqa: ANN202
    res = runner.invoke(app, list(args), env={"COLUMNS": "300", **(env or {})})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    return res


def _lines(report: Path) -> list[dict]:
    return [json.loads(x) for x in report.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def case(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    d.mkdir()
    pattern("rings", seed=1).save(d / "a.png")
    (d / "notes.txt").write_text("chain of custody\n")
    (d / "sub").mkdir()
    (d / "sub" / "data.bin").write_bytes(os.urandom(3000))
    return d


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_header_names_the_scan_the_banks_and_the_inputs(tmp_path: Path, case: Path) -> None:
    db = tmp_path / "banks.db"
    assert _invoke("--db", str(db), "--create", "bank", "create", "known").exit_code == 0
    md5 = hashlib.md5((case / "notes.txt").read_bytes()).hexdigest()
    assert _invoke("--db", str(db), "bank", "add", "known", "--content-id", "c1", "--md5", md5,
                   "--sha1", "a" * 40).exit_code == 0
    report = tmp_path / "r.jsonl"
    res = _invoke("--db", str(db), "scan", str(case), "-o", str(report), "--workers", "1")
    assert res.exit_code == 0, res.output
    lines = _lines(report)
    head, summary = lines[0], lines[-1]
    assert head["schema"] == "assay.scan-header/1" and head["tool"] == "assay" and head["version"]
    assert uuid.UUID(head["scan_id"]).version == 4
    started = datetime.fromisoformat(head["started_at"])
    assert started.utcoffset().total_seconds() == 0
    assert head["inputs"] == [str(case)] and head["host"] and "user" in head
    assert head["settings"]["workers"] == 1 and head["settings"]["pdq_mode"] == "fast"
    (bank,) = head["banks"]
    assert bank["name"] == "known" and bank["kind"] == "flagged" and bank["entries"] == 1
    expected = hashlib.sha256("".join(f"{t}\t{v}\n" for t, v in sorted([("md5", md5), ("sha1", "a" * 40)]))
                              .encode()).hexdigest()
    assert bank["snapshot"] == expected and head["bank_snapshot_method"] == SNAPSHOT_METHOD
    schemas = Path(__file__).resolve().parents[1] / "docs" / "schemas"
    for line in (head, summary):
        name = line["schema"].replace("/", "-") + ".schema.json"
        jsonschema.Draft202012Validator(json.loads((schemas / name).read_text())).validate(line)
    # the summary closes the same scan
    assert summary["schema"] == "assay.scan-summary/1" and summary["scan_id"] == head["scan_id"]
    assert summary["started_at"] == head["started_at"]
    assert datetime.fromisoformat(summary["ended_at"]) >= started and "seconds" in summary
    # and the readable summary still reads well, naming the checksum file and the scan
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in res.stdout.splitlines() if ln.count("│") >= 3}
    assert rows["files"] == "3 files: 1 image, 2 other files"
    assert rows["matched files"] == "1 (known: 1)"
    assert rows["report"] == f"{report} (SHA-256 in {report}.sha256)"
    assert rows["scan id"] == head["scan_id"]
    # a bank too big to hash at every scan is named by its counts, and says why
    res = _invoke("--db", str(db), "scan", str(case), "-o", str(tmp_path / "r2.jsonl"), "--workers", "1",
                  env={"ASSAY_SNAPSHOT_MAX_SIGNALS": "1"})
    assert res.exit_code == 0, res.output
    (big,) = _lines(tmp_path / "r2.jsonl")[0]["banks"]
    assert big["snapshot"] is None and "2 signals, more than the 1" in big["snapshot_skipped"]
    assert big["signals"] == {"md5": 1, "sha1": 1}


def test_a_password_on_the_command_line_never_reaches_the_report(tmp_path: Path, case: Path) -> None:
    report = tmp_path / "r.jsonl"
    url = "postgresql://examiner:hunter2-s3cret@db.example:5432/banks"
    code = "import sys; from assay.cli import main; sys.argv[0] = 'assay'; main()"
    res = subprocess.run([sys.executable, "-c", code, "--db", url, "scan", "--no-banks", str(case),
                          "-o", str(report), "--workers", "1"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    raw = report.read_text()
    assert "hunter2" not in raw
    head = json.loads(raw.splitlines()[0])
    assert head["argv"] == ["assay", "--db", "postgresql://examiner:***@db.example:5432/banks", "scan",
                            "--no-banks", str(case), "-o", str(report), "--workers", "1"]
    assert head["banks"] == []
    # the lineage store in the settings is a URL too
    s = settings_dict(ScanSettings(lineage_db="postgresql+psycopg://u:pw@h/db"))
    assert s["lineage_db"] == "postgresql+psycopg://u:***@h/db"
    assert redact("--db=postgresql://a:b@c/d") == "--db=postgresql://a:***@c/d"
    assert redact("/plain/path.db") == "/plain/path.db"


def test_every_record_carries_size_hashes_and_file_times(tmp_path: Path, case: Path) -> None:
    with zipfile.ZipFile(case / "bundle.zip", "w") as z:
        info = zipfile.ZipInfo("inner/member.txt", date_time=(2020, 5, 17, 10, 30, 2))
        z.writestr(info, b"member bytes")
    with tarfile.open(case / "t.tar", "w") as t:
        ti = tarfile.TarInfo("x.txt")
        ti.size, ti.mtime = 3, 1_600_000_000
        import io
        t.addfile(ti, io.BytesIO(b"xyz"))
    os.utime(case / "notes.txt", (1_500_000_000.25, 1_400_000_000.5))  # atime, mtime
    before = {p: p.stat() for p in case.rglob("*") if p.is_file()}
    report = tmp_path / "r.jsonl"
    assert _invoke("scan", "--no-banks", str(case), "-o", str(report), "--workers", "2").exit_code == 0
    lines = _lines(report)
    assert [x["schema"] for x in (lines[0], lines[-1])] == ["assay.scan-header/1", "assay.scan-summary/1"]
    recs = [r for r in lines if r["schema"] == "assay.file/1"]
    assert len(recs) == 7 == len(lines) - 2
    members = {"bundle.zip!/inner/member.txt": (b"member bytes", "2020-05-17T10:30:02"),
               "t.tar!/x.txt": (b"xyz", _iso(1_600_000_000))}
    for r in recs:
        sig = {s["type"]: s["value"] for s in r["signals"] if "variant" not in s}
        rel = r["path"][len(str(case)) + 1:]
        if rel in members:
            data, mtime = members[rel]
            assert r["times"] == {"source": "archive", "mtime": mtime}
        else:
            p = Path(r["path"])
            data, st = p.read_bytes(), before[p]
            assert r["times"] == {"source": "filesystem", "mtime": _iso(st.st_mtime),
                                  "ctime": _iso(st.st_ctime), "atime": _iso(st.st_atime)}
        assert r["size"] == len(data)
        assert sig["md5"] == hashlib.md5(data).hexdigest()
        assert sig["sha1"] == hashlib.sha1(data).hexdigest()
        assert sig["sha256"] == hashlib.sha256(data).hexdigest()
        assert sum(1 for s in r["signals"] if s["type"] in ("md5", "sha1", "sha256")) == 3  # none twice
    notes = next(r for r in recs if r["path"].endswith("notes.txt"))
    assert notes["times"]["mtime"] == "2014-05-13T16:53:20.500000+00:00"


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_sidecar_verifies_the_report_and_catches_one_changed_byte(tmp_path: Path, case: Path) -> None:
    report = tmp_path / "r.jsonl"
    assert _invoke("scan", "--no-banks", str(case), "-o", str(report), "--workers", "1").exit_code == 0
    sidecar = tmp_path / "r.jsonl.sha256"
    assert sidecar.read_text() == f"{hashlib.sha256(report.read_bytes()).hexdigest()}  r.jsonl\n"
    ok = subprocess.run(["sha256sum", "-c", sidecar.name], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0 and "r.jsonl: OK" in ok.stdout
    data = bytearray(report.read_bytes())
    i = data.index(b'"size":') + 7
    data[i] = ord("9") if data[i] != ord("9") else ord("8")
    report.write_bytes(bytes(data))
    bad = subprocess.run(["sha256sum", "-c", sidecar.name], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1 and "FAILED" in bad.stdout


def test_sidecar_is_never_overwritten_and_not_written_for_stdout(tmp_path: Path, case: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = _invoke("scan", "--no-banks", str(case), "--json", "--workers", "1")
    assert res.exit_code == 0
    assert json.loads(res.stdout.splitlines()[0])["schema"] == "assay.scan-header/1"
    assert not list(tmp_path.glob("*.sha256"))
    # a checksum file the user already has stops the scan before anything is written
    (tmp_path / "r.jsonl.sha256").write_text("precious\n")
    res = _invoke("scan", "--no-banks", str(case), "-o", "r.jsonl", "--workers", "1")
    assert res.exit_code == 1 and "r.jsonl.sha256" in res.stderr and "--overwrite" in res.stderr
    assert (tmp_path / "r.jsonl.sha256").read_text() == "precious\n" and not (tmp_path / "r.jsonl").exists()
    res = _invoke("scan", "--no-banks", str(case), "-o", "r.jsonl", "--workers", "1", "--overwrite")
    assert res.exit_code == 0
    assert (tmp_path / "r.jsonl.sha256").read_text().endswith("  r.jsonl\n")

