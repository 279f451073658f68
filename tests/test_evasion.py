"""File-level evasion: a banked image renamed, padded, wrapped or hidden behind other data
is still found by a scan, and unrelated files are not reported as matches.

Covered elsewhere (not repeated here): archives of every kind, nesting and bombs
(test_containers.py), damaged images (test_media_bad_input.py, test_report_damage.py),
re-encodes and variants (test_media_hashing.py, test_media_codecs.py, test_crops.py).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.demo import pattern
from assay.media import hash_image_bytes
from assay.sniff import sniff_path

runner = CliRunner()


def _png(seed: int = 3) -> bytes:
    b = io.BytesIO()
    pattern("blobs", (320, 240), seed=seed).save(b, "PNG")
    return b.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _zip(members: dict[str, bytes], comment: bytes = b"") -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.comment = comment
    return b.getvalue()


# -- metadata padding ----------------------------------------------------------------------------

_BIG_TEXT = _chunk(b"zTXt", b"pad\x00\x00" + zlib.compress(b" " * 2_000_000))  # inflates past 1 MB
_BIG_PROFILE = _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 2_000_000))
# 70 chunks of 1,000,000 characters each: past Pillow's 64 MB for all text together
_MANY_TEXTS = b"".join(_chunk(b"zTXt", b"k%d\x00\x00" % i + zlib.compress(b"v" * 1_000_000)) for i in range(70))


def _padded(png: bytes, where: str, chunks: bytes) -> bytes:
    at = 33 if where == "before" else png.rindex(b"IEND") - 4  # after IHDR, or before IEND
    return png[:at] + chunks + png[at:]


@pytest.mark.parametrize("mode", ["fast", "reference"])
@pytest.mark.parametrize(("where", "chunks"), [
    ("before", _BIG_TEXT), ("after", _BIG_TEXT), ("before", _BIG_PROFILE),
    ("before", _MANY_TEXTS), ("after", _MANY_TEXTS),
], ids=["ztxt-before-idat", "ztxt-after-idat", "iccp", "all-text-before", "all-text-after"])
def test_png_text_or_profile_padded_past_pillows_limits_keeps_its_pdq(where: str, chunks: bytes, mode: str) -> None:
    """Pillow refuses a PNG whose text or colour profile inflates past its limits: one
    padded chunk made a known image undecodable (no PDQ; its MD5 changed with the
    padding): a complete miss. The pixels are the same: so is the hash."""
    png = _png()
    padded = _padded(png, where, chunks)
    got = hash_image_bytes(padded, mode=mode)
    assert got.pdq == hash_image_bytes(png, mode=mode).pdq
    assert got.md5 != hash_image_bytes(png).md5  # the exact hashes are the padded file's


# -- zip archives behind other data --------------------------------------------------------------


def test_zip_behind_a_program_or_junk_is_an_archive(tmp_path: Path) -> None:
    z = _zip({"a.png": _png()}, comment=b"self-extracting")
    (tmp_path / "setup.exe").write_bytes(b"MZ" + os.urandom(20_000) + z)
    (tmp_path / "junk.dat").write_bytes(b"hello\n" * 100 + z)
    assert sniff_path(tmp_path / "setup.exe").format == "zip"
    assert sniff_path(tmp_path / "junk.dat").kind == "archive"
    # Four bytes of 'PK\x05\x06' near the end of other data are not an archive: the
    # record must size a central directory that is there.
    rng = os.urandom(5000)
    fake_record = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, 46, 10, 0)
    (tmp_path / "a.bin").write_bytes(rng + fake_record)
    (tmp_path / "b.bin").write_bytes(rng + fake_record + b"tail")
    for name in ("a.bin", "b.bin"):
        assert sniff_path(tmp_path / name).kind == "other"


# -- through a scan: shared test images banked, rewrites of them found ---------------------------


@pytest.fixture
def banked(testdata: Path, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    """A store whose bank ``known`` holds a JPEG and a PNG of the shared test images."""
    base = testdata / "pdq" / "reg-test-input"
    files = {"bridge": base / "dih" / "bridge-1-original.jpg", "pen": base / "pen-and-coaster.png"}
    db = str(tmp_path / "b.sqlite3")
    assert runner.invoke(app, ["--db", db, "bank", "create", "known", "--create"]).exit_code == 0
    for cid, path in files.items():
        res = runner.invoke(app, ["--db", db, "bank", "add", "known", "--content-id", cid, "--image", str(path)])
        assert res.exit_code == 0, res.output
    other = base / "labelme-subset" / "q0004.jpg"
    return db, {**{cid: p.read_bytes() for cid, p in files.items()}, "other": other.read_bytes()}


def _scan(db: str, folder: Path, report: Path) -> tuple[str, dict[str, dict]]:
    res = runner.invoke(app, ["--db", db, "scan", str(folder), "-o", str(report)])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and not res.stderr.strip(), res.stderr
    recs = {r["path"][len(str(folder)) + 1:]: r for r in map(json.loads, report.read_text().splitlines())
            if r["schema"] == "assay.file/1"}
    return res.stdout, recs


def _matched(rec: dict) -> set[str]:
    return {m["content_id"] for m in rec.get("matches", [])}


def test_polyglot_and_self_extracting_zips_are_found(banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """A zip appended to a JPEG (a polyglot: a viewer shows the picture, unzip lists the
    archive) is both: the picture is matched and the archive's members are scanned. A zip
    behind a program (self-extracting) or other data is an archive. Before, the polyglot's
    members and the self-extracting archive were never looked at."""
    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    hidden = _zip({"inner/x.png": data["pen"], "note.txt": b"hello"})
    (case / "holiday.jpg").write_bytes(data["bridge"] + hidden)
    (case / "png-polyglot.png").write_bytes(data["other"] + _zip({"y.png": data["pen"]}))
    (case / "setup.exe").write_bytes(b"MZ" + os.urandom(30_000) + _zip({"b.jpg": data["bridge"]}, b"comment"))
    (case / "other.jpg").write_bytes(data["other"])
    (case / "other.bin").write_bytes(os.urandom(70_000))
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    assert _matched(recs["holiday.jpg"]) == {"bridge"}
    assert _matched(recs["holiday.jpg!/inner/x.png"]) == {"pen"}
    assert recs["holiday.jpg!/inner/x.png"]["member_of"] == str(case / "holiday.jpg")
    assert recs["holiday.jpg"]["kind"] == "image" and not recs["holiday.jpg"].get("errors")
    assert _matched(recs["png-polyglot.png!/y.png"]) == {"pen"}
    assert not _matched(recs["png-polyglot.png"])
    assert recs["setup.exe"]["kind"] == "archive"
    assert _matched(recs["setup.exe!/b.jpg"]) == {"bridge"}
    assert not _matched(recs["other.jpg"]) and not _matched(recs["other.bin"])
    assert recs["other.bin"]["kind"] == "other"
    for path in ("holiday.jpg", "holiday.jpg!/inner/x.png", "png-polyglot.png!/y.png", "setup.exe!/b.jpg"):
        assert f"match: {case}/{path}" in out
    assert f"match: {case}/other" not in out


def test_png_padded_with_text_is_found(banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    (case / "pen.png").write_bytes(_padded(data["pen"], "before", _BIG_TEXT))
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    assert _matched(recs["pen.png"]) == {"pen"} and not recs["pen.png"].get("errors")
    assert f"match: {case}/pen.png" in out


def test_provenance_of_a_png_padded_after_its_pixels_checks_its_pixels(tmp_path: Path) -> None:
    """Text past Pillow's limits after the image data failed the watermark check ("could
    not check: watermark") of assay provenance: the pixels are there to check."""
    path = tmp_path / "padded.png"
    path.write_bytes(_padded(_png(), "after", _BIG_TEXT))
    res = runner.invoke(app, ["provenance", str(path), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["errors"] == [] and "could not check" not in report["verdict"]
