"""scan --timings: what each analysis step cost, in the summary (text and JSON), never in records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from assay.cli import app
from assay.config import ScanSettings
from assay.report.schema import FileRecord
from assay.scan.run import run_scan

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture()
def case(tmp_path: Path) -> Path:
    root = tmp_path / "case"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(buf, "PNG")
        (root / f"p{i}.png").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (root / "small.jpg").write_bytes(buf.getvalue())
    (root / "notes.txt").write_text("plain text\n")
    (root / "empty.bin").write_bytes(b"")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_summary_adds_up_each_step(case: Path, workers: int) -> None:
    records: list[FileRecord] = []
    summary = run_scan([case], ScanSettings(workers=workers), None, records.append, timings=True)
    t = summary.timings
    assert t is not None and t.workers == workers
    stages = t.stages
    # every stage counts the files it ran on
    assert stages["read"].files == 6  # the empty file is read too (and stops there)
    assert stages["image-hash"].files == 4 and stages["provenance"].files == 4
    assert stages["file-hash"].files == 1
    assert stages["custody"].files == 5
    assert stages["provenance.watermark"].files == 3  # 300x300 RGB PNGs; the JPEG is too small
    assert stages["provenance.xmp"].files == 4
    assert all(s.wall >= 0 and s.cpu >= 0 for s in stages.values())
    assert stages["image-hash"].cpu > 0
    # sub-stages are parts of their analyzer, not added to the total
    assert t.cpu == pytest.approx(sum(s.cpu for n, s in stages.items() if "." not in n))
    doc = summary.to_json_dict()["timings"]
    assert doc["schema"] == "assay.scan-timings/1" and list(doc["stages"])[:1] != ["provenance.xmp"]
    # records never carry timings
    assert all("timing" not in json.dumps(r.to_json_dict()) for r in records)
    # and without the option the summary has none
    plain = run_scan([case], ScanSettings(workers=1), None, lambda r: None)
    assert plain.timings is None and "timings" not in plain.to_json_dict()


def test_cli_text_and_json(case: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["scan", "--no-banks", str(case), "-o", str(tmp_path / "r.jsonl"), "--workers", "1",
                              "--timings"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = res.output
    assert "cost per step" in text and "Traceback" not in text
    lines = {ln.split()[0]: ln.split() for ln in text.splitlines()[text.splitlines().index(
        next(ln for ln in text.splitlines() if "cost per step" in ln)) + 2:] if ln.strip()}
    assert lines["image-hash"][1] == "4" and lines["provenance"][1] == "4" and lines["watermark"][1] == "3"
    summary = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[-1])
    schema = json.loads((ROOT / "docs/schemas/assay.scan-summary-1.schema.json").read_text())
    jsonschema.validate(summary, schema)
    assert summary["timings"]["stages"]["image-hash"]["files"] == 4
    res = runner.invoke(app, ["scan", "--no-banks", str(case), "--json", "--workers", "1"])
    last = json.loads(res.output.strip().splitlines()[-1])
    jsonschema.validate(last, schema)
    assert "timings" not in last and "cost per step" not in res.output


def test_dask_partitions_add_up_to_the_same_timings(case: Path) -> None:
    from assay.scan.dask_engine import merge_summary
    from assay.scan.partitions import _summary_of
    from assay.scan.run import ScanSummary
    from assay.scan.timings import Timings

    records: list[FileRecord] = []
    local = run_scan([case], ScanSettings(workers=1), None, records.append, timings=True)
    total = ScanSummary(timings=Timings())
    for part in (records[:3], records[3:]):  # two partitions, summed as the dask engine does
        merge_summary(total, json.loads(json.dumps(_summary_of(part))))
    assert total.timings is not None and local.timings is not None
    assert {s: t.files for s, t in total.timings.stages.items()} == {s: t.files for s, t in local.timings.stages.items()}
    for stage, t in local.timings.stages.items():
        assert total.timings.stages[stage].cpu == pytest.approx(t.cpu, abs=1e-3)
    # a scan without --timings ignores what partitions carry
    plain = ScanSummary()
    merge_summary(plain, _summary_of(records))
    assert plain.timings is None
