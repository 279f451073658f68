"""A scan report changed or damaged after the scan, read back by `assay report` (HTML,
CSV, CASE/UCO) and `assay review`: each line that is JSON of an assay schema but holds
a field of another type than a scan writes is an error naming the file and the line,
never a traceback.

The cases are recipes found by fuzzing a real report (tests/casegen.py): set one field
of one record (the first of its schema that has the field) to a value of another JSON
type; the sweep replays a few hundred such edits, drawn from ``random.Random(n)`` alone.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import casegen
from assay import review as rv
from assay.report.caseuco import write_case
from assay.report.csvout import write_csv
from assay.report.html import Options, render_html
from assay.report.reader import ReportError

Path_ = tuple[str | int, ...]


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    case = casegen.build(tmp_path_factory.mktemp("seed"))
    return [json.loads(line) for line in case.report.read_text(encoding="utf-8").splitlines()]


def _get(obj: Any, path: Path_) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def edited(records: list[dict[str, Any]], schema: str, path: Path_, value: Any) -> tuple[list[str], int]:
    """The report's lines with ``path`` of the first ``schema`` record holding it set to
    ``value``, and that line's number."""
    for i, rec in enumerate(records):
        if rec.get("schema") != schema:
            continue
        try:
            parent = _get(rec, path[:-1])
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        rec = json.loads(json.dumps(rec))
        _get(rec, path[:-1])[path[-1]] = value
        lines = [json.dumps(r) for r in records]
        lines[i] = json.dumps(rec)
        return lines, i + 1
    raise AssertionError(f"no {schema} record with {path}")


def renderers(tmp: Path) -> dict[str, Callable[[Path], object]]:
    opts = Options(title="t", case_id=None, examiner=None, decisions=None, decisions_source=None)
    return {"html": lambda r: render_html(r, tmp / "c.html", opts),
            "csv": lambda r: write_csv(r, tmp / "csv", decisions=None, overwrite=True),
            "case": lambda r: write_case(r, tmp / "c.jsonld", decisions=None),
            "review": lambda r: list(rv.report_items(r))}


def outcomes(report: Path, tmp: Path) -> dict[str, str | None]:
    """Each reader's error message (None: it read the report)."""
    out: dict[str, str | None] = {}
    for name, run in renderers(tmp).items():
        try:
            run(report)
            out[name] = None
        except ReportError as exc:
            assert exc.path.startswith(str(report)) and "\n" not in exc.reason, exc
            out[name] = str(exc)
    return out


# Each ended in a traceback (TypeError, AttributeError, ValueError) in one reader or more.
@pytest.mark.parametrize(("schema", "path", "value", "readers"), [
    ("assay.file/1", ("errors",), -1, {"html", "csv", "case"}),
    ("assay.file/1", ("matches",), True, {"html", "csv", "case", "review"}),
    ("assay.file/1", ("signals",), 1.5, {"html", "csv", "case"}),
    ("assay.file/1", ("signals", 0, "type"), [], {"html", "csv", "case"}),
    ("assay.file/1", ("times", "mtime"), True, {"case"}),
    ("assay.file/1", ("times", "mtime"), {"a": 1}, {"case"}),
    ("assay.scan-summary/1", ("matches_by_bank",), 1.5, {"html"}),
    ("assay.scan-summary/1", ("files",), "../../etc/passwd", {"html"}),
    ("assay.case-links/1", ("not_present", 0, "named_as"), 1e308, {"html"}),
    ("assay.case-links/1", ("not_present", 0, "image_count"), "\u202e", {"html"}),
])
def test_field_of_another_type_is_an_error_naming_the_line(seed: list[dict[str, Any]], tmp_path: Path, schema: str,
                                                           path: Path_, value: Any, readers: set[str]) -> None:
    lines, lineno = edited(seed, schema, path, value)
    report = tmp_path / "r.jsonl"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "csv").mkdir()
    got = outcomes(report, tmp_path)
    failed = {name for name, msg in got.items() if msg is not None}
    assert failed >= readers, got
    for name in failed:
        msg = got[name]
        assert msg is not None and "holds a field of another type than `assay scan` writes" in msg, msg
        if schema == "assay.file/1":
            assert msg.startswith(f"{report}:{lineno}: a record "), msg
        else:
            assert msg.startswith(f"{report}: its ") and f"record (line {lineno})" in msg, msg
    assert not list(tmp_path.glob("*.partial"))


def test_cli_report_and_review_name_the_line(seed: list[dict[str, Any]], tmp_path: Path) -> None:
    lines, lineno = edited(seed, "assay.file/1", ("matches",), True)
    report = tmp_path / "r.jsonl"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = str(tmp_path / "store.sqlite3")
    for args in (["report", str(report), "-o", str(tmp_path / "x.html")],
                 ["report", str(report), "--format", "case", "-o", str(tmp_path / "x.jsonld")],
                 ["report", str(report), "--format", "csv", "-o", str(tmp_path)],
                 ["--db", db, "review", "list", str(report)]):
        res: Any = casegen.invoke(*args)  # no traceback, no other exception
        assert res.exit_code == 1, (args, res.output)
        assert f"{report}:{lineno}: a record holds a field of another type" in " ".join(res.output.split()), res.output
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x.jsonld").exists()


_VALUES: list[Any] = [None, "x", "", -1, 2**70, 1.5, 1e308, [], {}, [1, "a"], {"a": 1}, True, "9" * 5000, "\u202e"]


def _paths(obj: Any, prefix: Path_ = ()) -> list[Path_]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:5]):
            out += _paths(v, (*prefix, i))
    return out


def test_fuzzed_reports(seed: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "csv").mkdir()
    for n in range(150):
        r = random.Random(n).random
        records = json.loads(json.dumps(seed))
        for _ in range(1 + int(r() * 3)):
            rec = records[int(r() * len(records))]
            paths = _paths(rec)
            path = paths[int(r() * len(paths))]
            parent = _get(rec, path[:-1])
            if r() < 0.25 and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = _VALUES[int(r() * len(_VALUES))]
        report = tmp_path / f"{n}.jsonl"
        report.write_text("\n".join(json.dumps(x) for x in records) + "\n", encoding="utf-8")
        outcomes(report, tmp_path)


# ------------------------------------------------- partial reports: scan --engine dask --resume
def _dask_out(tmp: Path) -> tuple[Path, Any]:
    from assay.config import ScanSettings
    from assay.scan.dask_engine import run_dask_scan

    distributed = pytest.importorskip("distributed")
    (tmp / "in").mkdir()
    for i in range(6):
        (tmp / "in" / f"f{i}.txt").write_text(f"file {i}\n")
    settings = ScanSettings(provenance=False, models=False, workers=1)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        run_dask_scan([str(tmp / "in")], settings, None, str(tmp / "out"), client=client, partition_size=2)
    manifest = json.loads((tmp / "out" / "_manifest.json").read_text())
    manifest["status"] = "running"  # as a scan stopped half-way leaves it
    (tmp / "out" / "_manifest.json").write_text(json.dumps(manifest, indent=1))
    return tmp / "out", settings


def _set(path: Path, *keys: str, value: Any) -> None:
    obj = json.loads(path.read_text())
    _get(obj, keys[:-1])[keys[-1]] = value
    path.write_text(json.dumps(obj))


# Each ended `assay scan --engine dask --resume` in a traceback (JSONDecodeError,
# UnicodeDecodeError, ValueError from int(), TypeError adding text to a count).
@pytest.mark.parametrize(("rel", "damage"), [
    ("_manifest.json", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
    ("_manifest.json", lambda p: p.write_bytes(b"\xff" + p.read_bytes()[1:])),
    ("_manifest.json", lambda p: _set(p, "header", value=[])),
    ("_done/part-000001.json", lambda p: p.write_bytes(p.read_bytes()[:-40])),
    ("_done/part-000001.json", lambda p: _set(p, "part", value="x")),
    ("_done/part-000001.json", lambda p: _set(p, "summary", "files", value="x")),
    ("_done/part-000001.json", lambda p: _set(p, "summary", "kinds", value=[1])),
])
def test_resume_from_a_damaged_scan_state_names_the_file(tmp_path: Path, rel: str,
                                                         damage: Callable[[Path], None]) -> None:
    from assay.errors import AssayError
    from assay.scan.dask_engine import run_dask_scan

    out, settings = _dask_out(tmp_path)
    damage(out / rel)
    with pytest.raises(AssayError) as err:  # before any cluster is asked for
        run_dask_scan([str(tmp_path / "in")], settings, None, str(out), partition_size=2, resume=True,
                      client=object())
    assert str(err.value).startswith(f"{out}/{rel}: damaged, not as the scan wrote it ("), err.value
