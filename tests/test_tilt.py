"""A copy turned by a small angle, its corners filled with one colour (media/tilt.py): the
angle measured from the corner triangles, the picture turned back and queried as variant
``untilted`` against plain banks, and no such query for pictures that were not turned."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import crop_eval
from assay.cli import app
from assay.demo import pattern
from assay.media import decode, tilt
from assay.media.hashes import DEFAULT_LIMITS, hash_image_bytes
from assay.media.pdq import hamming, luma_of

runner = CliRunner()
LABELME = Path("pdq") / "reg-test-input" / "labelme-subset"


def _encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.mark.parametrize("angle", [2.5, -3.0, 7.0, -12.0])
@pytest.mark.parametrize("expand", [True, False])
@pytest.mark.parametrize("fill", [(0, 0, 0), (255, 255, 255)])
def test_the_angle_and_the_way_it_was_turned_are_measured(angle: float, expand: bool, fill: tuple[int, ...]) -> None:
    turned = pattern("blobs", (320, 240), seed=5).rotate(angle, resample=Image.Resampling.BICUBIC,
                                                          expand=expand, fillcolor=fill)
    got = tilt.tilt(luma_of(np.asarray(turned)))
    assert got is not None
    assert abs(got.angle - angle) < 0.2 and got.cut is not expand and abs(got.colour - fill[0]) <= 2


_BLACK, _WHITE = (0, 0, 0), (255, 255, 255)


@pytest.mark.parametrize(("name", "angle", "expand", "fill"), [
    ("q0291.jpg", 5, True, _BLACK), ("q0291.jpg", 5, True, _WHITE), ("q0746.jpg", 10, True, _BLACK),
    ("q0746.jpg", -10, True, _WHITE), ("q1050.jpg", -10, True, _BLACK),
    ("q0291.jpg", 2, False, _BLACK), ("aaa-orig.jpg", 5, False, _BLACK),  # within its frame: corners cut off
    ("q0746.jpg", 2, False, _WHITE),  # 34 bits with the corners cut off left white
    # dark picture beside the black fill along some edges: three sides' angles agree
    ("q0746.jpg", 2, True, _BLACK), ("q1050.jpg", 2, True, _BLACK),
    ("q2821.jpg", -5, True, _WHITE),  # one side unmeasured (its bright picture beside the white fill)
    ("aaa-orig.jpg", 5, True, _BLACK), ("aaa-orig.jpg", -10, True, _BLACK),  # 1/8 JPEG: on the finer plane
])
def test_a_turned_copy_matches_its_plain_hash(testdata: Path, name: str, angle: float, expand: bool,
                                              fill: tuple[int, ...]) -> None:
    """Before, a copy turned 2-10 degrees matched nothing (60-130 bits from its original)."""
    path = testdata / ("pdq/bridge-mods" if name.startswith("aaa") else LABELME) / name
    im = Image.open(path).convert("RGB")
    original = hash_image_bytes(_encode(im, "PNG"), variants=False)
    got = hash_image_bytes(_encode(im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=expand,
                                             fillcolor=fill), "JPEG"))
    assert hamming(got.pdq, original.pdq) > 31
    value, quality = got.regions["untilted"]
    assert hamming(value, original.pdq) <= 31 and quality >= 50


def test_no_turn_found_in_pictures_that_were_not_turned(testdata: Path) -> None:
    """The shared photos, tiles, generated documents and skies, generated patterns, and
    pictures inside uniform borders (uniform corners, but no slope)."""
    images = [im for _, im in crop_eval.photos(testdata)] + crop_eval.unrelated(testdata)
    images += [pattern(k, (400, 300), seed=s) for k in ("noise", "checker", "waves", "rings", "blobs") for s in range(2)]
    images += [Image.new("RGB", (360, 280), c) for c in ((0, 0, 0), (250, 250, 250))]
    for canvas in images[-2:]:
        canvas.paste(pattern("waves", (300, 200), seed=1), (30, 40))
    for im in images:
        data = _encode(im, "JPEG")
        reduced, _ = decode.reduced_luma(decode.open_image(data, "x", DEFAULT_LIMITS))
        assert tilt.tilt(reduced.luma) is None
        assert tilt.tilt(luma_of(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))) is None


def test_a_scan_finds_a_turned_copy_against_a_plain_hash_list(testdata: Path, tmp_path: Path) -> None:
    photo = testdata / LABELME / "q0746.jpg"
    pdq = hash_image_bytes(photo.read_bytes(), variants=False).pdq
    db = str(tmp_path / "s.sqlite3")
    assert runner.invoke(app, ["--db", db, "bank", "create", "known", "--create"]).exit_code == 0
    assert runner.invoke(app, ["--db", db, "bank", "add", "known", "--content-id", "q0746", "--pdq", pdq]).exit_code == 0
    case = tmp_path / "case"
    case.mkdir()
    Image.open(photo).rotate(6, resample=Image.Resampling.BICUBIC, expand=True).save(case / "turned.jpg", quality=85)
    res = runner.invoke(app, ["--db", db, "scan", str(case), "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    [rec] = [r for r in map(json.loads, res.stdout.splitlines()) if r.get("schema") == "assay.file/1"]
    [m] = [m for m in rec["matches"] if m["signal_type"] == "pdq"]
    assert (m["content_id"], m["query_variant"], m["strength"]) == ("q0746", "untilted", "perceptual-partial")
