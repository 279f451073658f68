"""Camera fingerprints as provenance evidence (issue #18, item 3): `assay provenance` and
`assay scan` compare images with the store's enrolled cameras of their size, on synthetic
cameras (tests/prnu_synth.py). What is supported: the photo as taken, turned 90, 180 or 270
degrees (pixels rotated, width and height swapped or not). Not compared here: crops and
resized photos (`assay camera match` searches crops)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from assay.camera import prnu
from assay.camera.evidence import SOURCE, CameraBank, evidence
from assay.camera.store import CameraRecord
from assay.cli import app
from assay.provenance.verdict import verdict
from assay.report.provenance import Evidence
from prnu_synth import Camera, scene

SHAPE = (160, 224)  # (H, W)
runner = CliRunner()


@pytest.fixture(scope="module")
def cams() -> list[Camera]:
    return [Camera(seed, 4, SHAPE, sigma=0.012) for seed in (41, 42)]  # two of one model


@pytest.fixture(scope="module")
def bank(cams: list[Camera]) -> CameraBank:
    prints = {i + 1: prnu.estimate([c.photo(scene(3000 * c.seed + j, SHAPE), 90, j) for j in range(10)])
              for i, c in enumerate(cams)}
    recs = [CameraRecord(i, "case", f"phone {'AB'[i - 1]}", SHAPE[0], SHAPE[1], 10, datetime(2026, 1, 1),
                         {"exif": [{"make": "Synth", "model": "S1"}]}) for i in prints]
    return CameraBank(recs, lambda r: prints[r.id])


def _items(pixels: np.ndarray, bank: CameraBank) -> list[Evidence]:
    return [e for e in evidence(pixels, bank) if e.source == SOURCE]


def test_the_true_camera_is_found_and_no_other(cams: list[Camera], bank: CameraBank) -> None:
    photo = cams[0].photo(scene(77_001, SHAPE), 88, seed=5)
    found = _items(photo, bank)
    assert len(found) == 1
    e = found[0]
    assert (e.claim, e.strength, e.facts["camera"], e.facts["rotation"]) == ("camera-captured", "strong", "phone A", 0)
    assert e.facts["pce"] >= 60 and e.facts["false_alarm"] < 1e-9 and e.facts["threshold"] == 60
    assert "strong evidence that this camera took it" in e.summary
    v = verdict(found)
    assert v.startswith("captured by camera case/phone A (sensor fingerprint match, PCE ")
    assert "original" not in v and "not AI" not in v
    # the other camera of the same model: only the true one is named
    other = _items(cams[1].photo(scene(77_002, SHAPE), 88, seed=6), bank)
    assert [x.facts.get("camera") for x in other] == ["phone B"]


def test_turned_photos_are_found_in_every_quarter(cams: list[Camera], bank: CameraBank) -> None:
    photo = cams[1].photo(scene(77_010, SHAPE), 90, seed=7)
    for k in (1, 2, 3):
        found = _items(np.ascontiguousarray(np.rot90(photo, k)), bank)
        assert len(found) == 1 and found[0].strength == "strong", k
        assert found[0].facts["camera"] == "phone B" and found[0].facts["rotation"] == (360 - 90 * k) % 360


def test_below_the_threshold_says_nothing_either_way(bank: CameraBank) -> None:
    plain = np.clip(scene(77_020, SHAPE), 0, 255).astype(np.uint8)  # no sensor pattern at all
    found = _items(plain, bank)
    assert len(found) == 1
    e = found[0]
    assert (e.claim, e.strength) == ("unknown", "weak")
    assert e.facts["compared"] == 2 and all(c["pce"] < 60 for c in e.facts["cameras"])
    assert "says nothing either way" in e.summary
    assert "not taken" not in e.summary and "not from" not in e.summary
    assert verdict(found) == "no provenance evidence found"


def test_crops_and_resized_photos_are_not_compared(cams: list[Camera], bank: CameraBank) -> None:
    photo = cams[0].photo(scene(77_030, SHAPE), 90, seed=8)
    assert evidence(np.ascontiguousarray(photo[8:150, 16:200]), bank) == []
    smaller = np.asarray(Image.fromarray(photo).resize((SHAPE[1] // 2, SHAPE[0] // 2)))
    assert evidence(smaller, bank) == []
    # an RGBA photo of the camera's size: the colour channels are compared
    rgba = np.dstack([photo, np.full(SHAPE, 255, np.uint8)])
    assert _items(rgba, bank)[0].facts["camera"] == "phone A"


def test_verdict_keeps_conflicting_evidence() -> None:
    match = Evidence(source=SOURCE, claim="camera-captured", strength="strong", summary="s",
                     facts={"camera": "A", "bank": "case", "pce": 812.34})
    ai = Evidence(source="a1111", claim="ai-generated", strength="strong", summary="s",
                  facts={"generator": "A1111"})
    exif = Evidence(source="camera", claim="camera-captured", strength="weak", summary="s", facts={"make": "X"})
    assert verdict([exif, match]) == "captured by camera case/A (sensor fingerprint match, PCE 812.3)"
    v = verdict([ai, match, exif])
    assert v.startswith("AI-generated: generator metadata (A1111)")
    assert "conflicting: sensor fingerprint of camera case/A (PCE 812.3)" in v


def _png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path, "PNG")
    return path


@pytest.fixture(scope="module")
def enrolled(cams: list[Camera], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cams")
    db = d / "store.sqlite3"
    files = [_png(d / f"e{i}.png", cams[0].photo(scene(88_000 + i, SHAPE), 92, 300 + i)) for i in range(10)]
    r = runner.invoke(app, ["--db", str(db), "--create", "camera", "enroll", "phone A", "--bank", "case",
                            *map(str, files)])
    assert r.exit_code == 0, r.output
    empty = d / "empty.sqlite3"
    assert runner.invoke(app, ["--db", str(empty), "--create", "bank", "list"]).exit_code == 0
    q = d / "q"
    q.mkdir()
    return {"db": db, "empty": empty, "dir": q,
            "own": _png(q / "own.png", cams[0].photo(scene(88_100, SHAPE), 88, 400)),
            "other": _png(q / "other.png", cams[1].photo(scene(88_101, SHAPE), 88, 401)),
            "small": _png(q / "small.png", cams[0].photo(scene(88_102, SHAPE), 88, 402)[:100, :100])}


def test_provenance_readable_and_json_on_empty_and_full_stores(enrolled: dict[str, Path]) -> None:
    own, other, small = (str(enrolled[k]) for k in ("own", "other", "small"))
    r = runner.invoke(app, ["--db", str(enrolled["empty"]), "provenance", own])
    assert r.exit_code == 0 and "Traceback" not in r.output
    assert "camera-fingerprint" not in r.output and "sensor fingerprint" not in r.output
    r = runner.invoke(app, ["--db", str(enrolled["db"]), "provenance", own, other, small])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    text = r.output
    own_part = text[text.index(own):text.index(other)]
    assert "captured by camera case/phone A (sensor fingerprint match, PCE" in own_part
    other_part = text[text.index(other):text.index(small)]
    assert "captured by camera" not in other_part and "says nothing either way" in other_part
    assert "sensor fingerprint" not in text[text.index(small):]
    r = runner.invoke(app, ["--db", str(enrolled["db"]), "provenance", own, "--json"])
    rec = json.loads(r.stdout)
    item = next(e for e in rec["evidence"] if e["source"] == SOURCE)
    assert item["strength"] == "strong" and item["facts"]["camera"] == "phone A" and item["facts"]["pce"] >= 60
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[1] / "docs/schemas/assay.provenance-1.schema.json").read_text())
    jsonschema.validate(rec, schema)
    r = runner.invoke(app, ["--db", str(enrolled["db"]), "provenance", own, "--no-cameras", "--json"])
    assert all(e["source"] != SOURCE for e in json.loads(r.stdout)["evidence"])
    r = runner.invoke(app, ["--db", str(enrolled["db"]), "provenance", own, "--camera-threshold", "1e9", "--json"])
    item = next(e for e in json.loads(r.stdout)["evidence"] if e["source"] == SOURCE)
    assert item["claim"] == "unknown"


def test_scan_adds_the_evidence_only_when_cameras_are_enrolled(enrolled: dict[str, Path], tmp_path: Path) -> None:
    def scan(db: Path) -> tuple[dict, dict[str, dict]]:
        out = tmp_path / f"{db.stem}.jsonl"
        r = runner.invoke(app, ["--db", str(db), "scan", str(enrolled["dir"]), "-o", str(out), "--workers", "1"])
        assert r.exit_code == 0, r.output
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        return lines[0], {Path(x["path"]).name: x for x in lines if "path" in x and "kind" in x}

    header, recs = scan(enrolled["empty"])
    assert header["settings"]["camera_db"] is None
    assert all(e["source"] != SOURCE for x in recs.values() for e in x["provenance"]["evidence"])
    header, recs = scan(enrolled["db"])
    assert header["settings"]["camera_db"]
    own = [e for e in recs["own.png"]["provenance"]["evidence"] if e["source"] == SOURCE]
    assert own[0]["facts"]["camera"] == "phone A" and own[0]["strength"] == "strong"
    assert recs["own.png"]["provenance"]["verdict"].startswith("captured by camera case/phone A")
    assert [e["claim"] for e in recs["other.png"]["provenance"]["evidence"] if e["source"] == SOURCE] == ["unknown"]
    assert all(e["source"] != SOURCE for e in recs["small.png"]["provenance"]["evidence"])


def test_a_threshold_that_would_match_unrelated_photos_is_refused(enrolled: dict[str, Path]) -> None:
    for args in (["provenance", str(enrolled["own"]), "--camera-threshold", "0"],
                 ["camera", "match", str(enrolled["own"]), "--threshold", "-5"],
                 ["scan", str(enrolled["dir"]), "--camera-threshold", "1", "-o", "-"]):
        r = runner.invoke(app, ["--db", str(enrolled["db"]), *args])
        assert r.exit_code == 2 and "Traceback" not in r.output, args
        assert "threshold" in r.output
