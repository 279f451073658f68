"""File-level evasion: a banked image renamed, padded, wrapped or hidden behind other data
is still found by a scan, and unrelated files are not reported as matches.

Covered elsewhere (not repeated here): archives of every kind, nesting and bombs
(test_containers.py), damaged images (test_media_bad_input.py, test_report_damage.py),
re-encodes and variants (test_media_hashing.py, test_media_codecs.py, test_crops.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    """A store whose bank ``known`` holds a JPEG and a PNG of the shared test images; two
    photos that are not banked (PDQ quality 100: they would match if anything did)."""
    base = testdata / "pdq" / "reg-test-input"
    files = {"bridge": base / "dih" / "bridge-1-original.jpg", "pen": base / "pen-and-coaster.png"}
    db = str(tmp_path / "b.sqlite3")
    assert runner.invoke(app, ["--db", db, "bank", "create", "known", "--create"]).exit_code == 0
    for cid, path in files.items():
        res = runner.invoke(app, ["--db", db, "bank", "add", "known", "--content-id", cid, "--image", str(path)])
        assert res.exit_code == 0, res.output
    others = {"other": base / "labelme-subset" / "q0122.jpg", "other2": base / "labelme-subset" / "q0291.jpg"}
    return db, {cid: p.read_bytes() for cid, p in {**files, **others}.items()}


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
    assert "│ archives      │ 4 files in 1 archive and 2 other files" in out  # the polyglots hold 3


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


# -- images behind other data, or inside documents and audio as they are (carving) ---------------


def _pdf_with_jpeg(jpeg: bytes) -> bytes:
    """A one-page PDF showing ``jpeg`` as a DCTDecode image (the JPEG's bytes as they are)."""
    image = (b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceRGB "
             b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % len(jpeg) + jpeg + b"\nendstream")
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 8 8] /Resources << /XObject << /Im0 4 0 R >> >> >>",
            image]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)


def _id3_with_cover(jpeg: bytes) -> bytes:
    """An MP3's ID3v2.3 tag whose APIC frame is ``jpeg``, then one silent MPEG frame."""
    apic = b"\x00image/jpeg\x00\x03cover\x00" + jpeg
    frame = b"APIC" + struct.pack(">I", len(apic)) + b"\x00\x00" + apic
    n = len(frame)
    size = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    return b"ID3\x03\x00\x00" + size + frame + b"\xff\xfb\x90\x00" + b"\x00" * 413


def test_images_behind_junk_and_inside_documents_are_cut_out_and_found(
        banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """A known JPEG or PNG with junk, a text or a program before it was an 'other' file
    nothing was looked at in; a PDF's JPEG (DCTDecode) and an MP3's cover were not looked
    at either. Each is now cut out whole: the same bytes, so MD5 and SHA-256 match too."""
    import hashlib

    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    (case / "junk.bin").write_bytes(os.urandom(4096) + data["bridge"] + os.urandom(300))
    comments = b"".join(b"\xff\xfe\x00\x02" for _ in range(10_000))  # 10,000 empty COM segments
    (case / "padded.bin").write_bytes(b"\x00" * 10 + data["bridge"][:2] + comments + data["bridge"][2:])
    (case / "notes.txt").write_bytes(b"meeting notes\n" * 40 + data["pen"])
    (case / "report.pdf").write_bytes(_pdf_with_jpeg(data["bridge"]))
    (case / "song.mp3").write_bytes(_id3_with_cover(data["bridge"]))
    (case / "unrelated.pdf").write_bytes(_pdf_with_jpeg(data["other"]))
    import base64

    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;base64,'
    html = b"<p>hi</p><img src='data:image/jpeg;base64,"
    (case / "wrap.svg").write_bytes(svg + base64.b64encode(data["pen"]) + b'"/></svg>')
    (case / "page.html").write_bytes(html + b"\n" + base64.encodebytes(data["bridge"]) + b"'>")  # lines of 76
    (case / "upper.html").write_bytes(b"<img src='DATA:IMAGE/PNG;BASE64," + base64.b64encode(data["pen"]) + b"'>")
    (case / "fake.txt").write_bytes(b"data:image/png;base64,SGVsbG8gd29ybGQ= is not a picture")
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["Subject"] = "holiday"
    mail.set_content("see attached")
    mail.add_attachment(data["pen"], maintype="application", subtype="octet-stream", filename="x.bin")
    (case / "mail.eml").write_bytes(bytes(mail))
    from PIL import Image

    pen = Image.open(io.BytesIO(data["pen"])).convert("RGB")
    for fmt in ("GIF", "WEBP"):  # re-encoded: found by PDQ
        b = io.BytesIO()
        pen.save(b, fmt)
        (case / f"pen-{fmt.lower()}.dat").write_bytes(b"\x00" * 999 + b.getvalue() + b"\x00" * 10)
    noise = bytearray(os.urandom(200_000))
    for at in range(1000, 190_000, 9_000):  # JPEG and PNG starts whose structure does not hold
        noise[at:at + 6] = b"\xff\xd8\xff\xe0\x00\x10"
        noise[at + 3000:at + 3016] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"
    (case / "noise.bin").write_bytes(bytes(noise))
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    bridge_md5 = hashlib.md5(data["bridge"]).hexdigest()
    for holder, member, cid in (("junk.bin", "carved@4096.jpg", "bridge"),
                                ("notes.txt", f"carved@{14 * 40}.png", "pen"),
                                ("song.mp3", None, "bridge"), ("report.pdf", None, "bridge")):
        members = [p for p in recs if p.startswith(holder + "!/carved@")]
        assert len(members) == 1, (holder, sorted(recs))
        assert member is None or members == [f"{holder}!/{member}"]
        rec = recs[members[0]]
        assert _matched(rec) == {cid} and rec["member_of"] == str(case / holder)
        assert {m["signal_type"] for m in rec["matches"]} >= {"pdq", "md5", "sha256"}
        assert f"match: {case}/{members[0]}" in out
        assert not recs[holder].get("errors")
    assert {s["value"] for s in recs["junk.bin!/carved@4096.jpg"]["signals"] if s["type"] == "md5"} == {bridge_md5}
    assert _matched(recs["pen-gif.dat!/carved@999.gif"]) == {"pen"}
    assert _matched(recs["padded.bin!/carved@10.jpg"]) == {"bridge"}  # padding does not hide it
    # data URIs: the picture an SVG or a web page shows, decoded from base64
    for member, cid in ((f"wrap.svg!/data@{len(svg)}.png", "pen"), (f"page.html!/data@{len(html)}.jpg", "bridge"),
                        ("upper.html!/data@32.png", "pen")):
        assert _matched(recs[member]) == {cid} and {m["signal_type"] for m in recs[member]["matches"]} >= {"md5", "pdq"}
        assert f"match: {case}/{member}" in out
    assert not [p for p in recs if p.startswith("fake.txt!/")] and not recs["fake.txt"].get("errors")
    attached = [p for p in recs if p.startswith("mail.eml!/data@")]  # an e-mail's attachment, in base64
    assert len(attached) == 1 and _matched(recs[attached[0]]) == {"pen"} and attached[0].endswith(".png")
    assert _matched(recs["pen-webp.dat!/carved@999.webp"]) == {"pen"}
    assert not _matched(recs["unrelated.pdf!/" + next(p for p in recs if p.startswith("unrelated.pdf!/")).split("!/")[1]])
    assert not [p for p in recs if p.startswith("noise.bin!/")]
    assert recs["noise.bin"]["kind"] == "other" and not recs["noise.bin"].get("errors")


def test_carving_stops_at_its_limit_with_an_error_on_the_holder(tmp_path: Path) -> None:
    from assay.config import Limits, ScanSettings
    from assay.report.schema import FileRecord
    from assay.scan.run import run_scan

    png = _png()
    (tmp_path / "many.bin").write_bytes(b"x" + b"".join(b"--" + png for _ in range(5)))
    recs: list[FileRecord] = []
    run_scan([tmp_path], ScanSettings(workers=1, limits=Limits(max_carved=3)), None, recs.append)
    got = {r.path[len(str(tmp_path)) + 1:]: r for r in recs}
    assert sorted(p for p in got if "carved@" in p) == [
        f"many.bin!/carved@{1 + 2 + i * (len(png) + 2)}.png" for i in range(3)]
    assert [e.code for e in got["many.bin"].errors] == ["too-large"]
    assert "more than 3 embedded images" in got["many.bin"].errors[0].message


def test_a_search_full_of_false_starts_stops_at_its_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file made of nothing but false starts ("Content-Transfer-Encoding: base64" over junk,
    each looked at) is searched at ~0.4-1.3 CPU-s a MB: over the 256 MB window a worker
    was held for minutes. The search stops at its CPU budget and the holder's record says
    where; what was found before stays. (The budget is lowered here: the file is 3 MB.)"""
    from assay.config import ScanSettings
    from assay.containers import carve
    from assay.report.schema import FileRecord
    from assay.scan.run import run_scan

    png = _png()
    junk = b"Content-Transfer-Encoding: base64\n\n" + b"!!!!not base64!!!!\n" * 2
    (tmp_path / "false-starts.eml").write_bytes(b"x--" + png + junk * (3_000_000 // len(junk)) + b"--" + png)
    data = (tmp_path / "false-starts.eml").read_bytes()
    found, stopped = carve.find_images(io.BytesIO(data), len(data), 1 << 28, 64, 1 << 29)
    assert len(found) == 2 and stopped is None  # in time: both
    # (listing the 3 MB block's 120,000 false starts takes ~0.15 CPU-s, looking at them all ~1.1)
    monkeypatch.setattr(carve, "SEARCH_SECONDS", 0.4)
    recs: list[FileRecord] = []
    run_scan([tmp_path], ScanSettings(workers=1), None, recs.append)
    got = {r.path[len(str(tmp_path)) + 1:]: r for r in recs}
    assert sorted(p for p in got if "carved@" in p) == ["false-starts.eml!/carved@3.png"]  # the first, found in time
    (err,) = got["false-starts.eml"].errors
    assert err.code == "too-large" and "over 0.4 CPU seconds: stopped at byte" in err.message, err.message


_STARTS = [b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\xff\xd8\xff\xdb\x00\x43", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
           b"GIF89a\x10\x00\x10\x00\x80\x00\x00", b"RIFF\x40\x00\x00\x00WEBPVP8 ", b"\xff\xda\x00\x08", b"\xff\xd9",
           b"\x2c\x00\x00\x00\x00\x10\x00\x10\x00\x00\x08", b"\x21\xf9\x04", b"\x3b", b"IEND",
           b"data:image/png;base64,iVBORw0KGgoAAAANSUhEUg", b";base64,/9j/4AAQSkZJRg", b"\n", b"'",
           b"Content-Transfer-Encoding: quoted-printable\n\n=89PNG=0D=0A=1A=0A=00=00=00=0DIHDR=", b"=\n", b"\r\n",
           b"\nbegin 644 a.png\n0B5!.1PT*&@H````-24A$4@``\n", b"`\nend\n",
           b"{\\pict\\pngblip{\\*\\blipuid 00}89504e470d0a1a0a0000000d49484452", b"{", b"}", b"\\bin4 "]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(_STARTS), st.binary(max_size=64)), max_size=40),
       st.integers(min_value=1, max_value=5))
def test_fuzzed_carving_never_raises_and_stays_in_the_file(parts: list[bytes], most: int) -> None:
    from assay.containers.carve import find_images

    data = b"\x00" + b"".join(parts) + _png()[: 60 * most]
    found, more = find_images(io.BytesIO(data), len(data), 1 << 20, most, 1 << 20)
    assert len(found) <= most and (not more or len(found) == most)
    end = 1
    for at, length, fmt in found:
        assert at >= end and length > 0 and at + length <= len(data)
        assert fmt in ("jpeg", "png", "gif", "webp") or fmt.split(":")[0] in ("base64", "qp", "uu", "hex")
        end = at + length


# -- same pixels, another container ---------------------------------------------------------------


def _grey16_png(rgb: bytes) -> bytes:
    """The picture as a 16-bit greyscale PNG (each 8-bit luma value v widened to v * 257)."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(rgb)).convert("L")).astype(">u2") * 257
    h, w = grey.shape
    raw = b"".join(b"\x00" + grey[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def test_a_16_bit_greyscale_copy_is_found_by_the_picture_it_shows(
        banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """Pillow converts 16-bit grey to RGB by clipping every sample over 255: the copy's own
    PDQ (Meta's, kept as it is) is of a white page, quality 0, never matched. The samples
    scaled to 8 bits are queried as variant 'scaled': a whole-picture match."""
    import numpy as np
    from PIL import Image

    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    (case / "pen16.png").write_bytes(_grey16_png(data["pen"]))
    grey = np.asarray(Image.open(io.BytesIO(data["bridge"])).convert("L")).astype(np.uint16) * 257
    b = io.BytesIO()
    Image.fromarray(grey).save(b, "TIFF")
    (case / "bridge16.tif").write_bytes(b.getvalue())
    (case / "other16.png").write_bytes(_grey16_png(data["other"]))
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    for name, cid in (("pen16.png", "pen"), ("bridge16.tif", "bridge")):
        rec = recs[name]
        assert rec["image"]["mode"] == "I;16" and rec["image"]["low_quality"]
        m = [m for m in rec["matches"] if m["signal_type"] == "pdq"]
        assert {x["content_id"] for x in m} == {cid}
        assert m[0]["query_variant"] == "scaled" and m[0]["strength"] == "perceptual" and m[0]["distance"] <= 8
        assert f"match: {case}/{name}" in out
    assert not _matched(recs["other16.png"])


def test_a_known_picture_as_a_later_frame_or_page_is_found(banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """Only the first frame was hashed: a known picture shown after a blank frame of 10 ms
    (GIF, APNG, animated WebP) or on a TIFF's second page was never looked at. Later
    frames are queried as variants ``frame-N``, each a whole picture."""
    from PIL import Image

    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    pen = Image.open(io.BytesIO(data["pen"])).convert("RGB")
    blank = Image.new("RGB", pen.size, (200, 30, 30))
    for fmt, ext in (("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp")):
        b = io.BytesIO()
        blank.save(b, fmt, save_all=True, append_images=[pen], duration=[10, 60_000], loop=0)
        (case / f"anim.{ext}").write_bytes(b.getvalue())
    bridge = Image.open(io.BytesIO(data["bridge"]))
    b = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(b, "TIFF", save_all=True, append_images=[bridge])
    (case / "pages.tif").write_bytes(b.getvalue())
    other = Image.open(io.BytesIO(data["other"])).convert("RGB")
    b = io.BytesIO()
    blank.save(b, "GIF", save_all=True, append_images=[other.resize(pen.size)], duration=[10, 60_000])
    (case / "other-anim.gif").write_bytes(b.getvalue())
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    for name, cid in (("anim.gif", "pen"), ("anim.png", "pen"), ("anim.webp", "pen"), ("pages.tif", "bridge")):
        rec = recs[name]
        assert rec["image"]["frames"] == 2
        m = [m for m in rec["matches"] if m["signal_type"] == "pdq"]
        assert {x["content_id"] for x in m} == {cid}, name
        assert m[0]["query_variant"] == "frame-1" and m[0]["strength"] == "perceptual"
        assert f"match: {case}/{name}" in out
    assert not _matched(recs["other-anim.gif"])


def test_pixels_turned_with_an_exif_orientation_turning_them_back_are_found(
        banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """A copy whose pixels are turned a quarter and whose EXIF orientation turns them back
    looks the same in any viewer, and its stored pixels hashed ~110 bits away: missed
    unless the examiner asked for --exif-transpose or --dihedral. The picture as displayed
    is queried (variant 'displayed'), and banked beside the stored one, so the reverse (a
    banked photo with an orientation, a copy turned upright in its pixels) matches too."""
    from PIL import Image

    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    turned = Image.open(io.BytesIO(data["bridge"])).transpose(Image.Transpose.ROTATE_90)
    b = io.BytesIO()
    turned.save(b, "JPEG", quality=92, exif=exif.tobytes())
    (case / "turned.jpg").write_bytes(b.getvalue())
    # the reverse: a photo banked as a camera stores it, a copy turned upright in its pixels
    other = Image.open(io.BytesIO(data["other"]))
    b = io.BytesIO()
    other.save(b, "JPEG", quality=92, exif=exif.tobytes())
    (tmp_path / "camera.jpg").write_bytes(b.getvalue())
    res = runner.invoke(app, ["--db", db, "bank", "add", "known", "--content-id", "camera",
                              "--image", str(tmp_path / "camera.jpg")])
    assert res.exit_code == 0, res.output
    b = io.BytesIO()
    other.transpose(Image.Transpose.ROTATE_270).save(b, "JPEG", quality=92)
    (case / "upright.jpg").write_bytes(b.getvalue())
    (case / "unrelated.jpg").write_bytes(data["other2"])
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    m = [m for m in recs["turned.jpg"]["matches"] if m["signal_type"] == "pdq"]
    assert {x["content_id"] for x in m} == {"bridge"}
    assert m[0]["query_variant"] == "displayed" and m[0]["strength"] == "perceptual"
    m = [m for m in recs["upright.jpg"]["matches"] if m["signal_type"] == "pdq"]
    assert {x["content_id"] for x in m} == {"camera"}
    assert m[0]["bank_variant"] == "displayed" and m[0]["strength"] == "perceptual"
    assert not _matched(recs["unrelated.jpg"])
    assert f"match: {case}/turned.jpg" in out and f"match: {case}/upright.jpg" in out


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _with_cover(mp4: bytes, picture: bytes) -> bytes:
    """``mp4`` (its moov box last, as PyAV writes it) with ``picture`` as its cover art
    (moov/udta/meta/ilst/covr/data, as iTunes and ffmpeg's -disposition attached_pic write)."""
    data = _box(b"data", struct.pack(">II", 14, 0) + picture)
    meta = _box(b"meta", b"\x00" * 4 + _box(b"hdlr", b"\x00" * 8 + b"mdirappl" + b"\x00" * 9)
                + _box(b"ilst", _box(b"covr", data)))
    at = 0
    while at < len(mp4):  # the top-level boxes, to the last (moov)
        size, kind = struct.unpack_from(">I4s", mp4, at)
        if at + size == len(mp4):
            assert kind == b"moov"
            udta = _box(b"udta", meta)
            return mp4[:at] + struct.pack(">I", size + len(udta)) + mp4[at + 4:] + udta
        at += size
    raise AssertionError("no moov box last")


def test_cover_art_of_a_video_is_found(banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """An MP4's cover picture (what players and file browsers show for it) was never
    hashed: a video is matched by its frames. Its boxes are now followed to the covers,
    each scanned as a member."""
    pytest.importorskip("av")
    import videogen

    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    clip = videogen.make_video(tmp_path / "clip.mp4", 3, seconds=2).read_bytes()
    (case / "clip.mp4").write_bytes(_with_cover(clip, data["pen"]))
    (case / "plain.mp4").write_bytes(clip)
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    covers = [p for p in recs if p.startswith("clip.mp4!/")]
    assert len(covers) == 1 and covers[0].endswith(".png") and _matched(recs[covers[0]]) == {"pen"}
    assert {s["value"] for s in recs[covers[0]]["signals"] if s["type"] == "md5"} == {hashlib.md5(data["pen"]).hexdigest()}
    assert recs["clip.mp4"]["kind"] == "video" and not _matched(recs["clip.mp4"])
    assert not [p for p in recs if p.startswith("plain.mp4!/")]
    assert f"match: {case}/{covers[0]}" in out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([b"moov", b"udta", b"meta", b"ilst", b"covr", b"data", b"hdlr"]),
                          st.binary(max_size=12)), max_size=30))
def test_fuzzed_boxes_never_raise(parts: list[bytes]) -> None:
    from assay.containers.carve import cover_art

    data = b"".join(parts)
    for at, length, fmt in cover_art(io.BytesIO(data), len(data), 64, 1 << 20):
        assert 0 < at and at + length <= len(data) and fmt in ("jpeg", "png")


def test_a_copy_turned_a_quarter_half_or_three_quarters_is_found(
        banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """A known picture turned 90, 180 or 270 degrees in its pixels (no EXIF to turn it back)
    hashed ~115-130 bits from the original: missed unless --dihedral was asked for. The
    three turns are queried by default (variants rotated-90/-180/-270, whole pictures), for
    a PNG or a re-encoded JPEG alike; an unrelated picture turned matches nothing."""
    from PIL import Image

    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    turns = {"ccw": Image.Transpose.ROTATE_90, "half": Image.Transpose.ROTATE_180, "cw": Image.Transpose.ROTATE_270}
    for cid in ("bridge", "pen", "other2"):
        im = Image.open(io.BytesIO(data[cid])).convert("RGB")
        for name, t in turns.items():
            b = io.BytesIO()
            im.transpose(t).save(b, "JPEG" if cid != "pen" else "PNG", **({"quality": 88} if cid != "pen" else {}))
            (case / f"{cid}-{name}.img").write_bytes(b.getvalue())
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    want = {"ccw": "rotated-270", "half": "rotated-180", "cw": "rotated-90"}  # the turn that undoes it
    for cid in ("bridge", "pen"):
        for name in turns:
            m = [m for m in recs[f"{cid}-{name}.img"]["matches"] if m["signal_type"] == "pdq"]
            assert {x["content_id"] for x in m} == {cid}, (cid, name, m)
            assert m[0]["query_variant"] == want[name] and m[0]["strength"] == "perceptual", m[0]
            assert f"match: {case}/{cid}-{name}.img" in out
    assert not any(_matched(recs[f"other2-{name}.img"]) for name in turns)
    # a photo whose EXIF orientation (6: shown turned clockwise) is a turn: that turn is
    # hashed once, as "displayed", not again as a rotated-N variant
    exif = Image.Exif()
    exif[0x0112] = 6
    b = io.BytesIO()
    Image.open(io.BytesIO(data["bridge"])).save(b, "JPEG", quality=90, exif=exif.tobytes())
    regions = hash_image_bytes(b.getvalue()).regions or {}
    assert "displayed" in regions and {"rotated-90", "rotated-180"} <= set(regions)
    assert "rotated-270" not in regions and regions["displayed"][0] not in {
        regions[n][0] for n in ("rotated-90", "rotated-180")}


@pytest.mark.shared
def test_a_negative_is_found_against_a_plain_hash_list(testdata: Path, tmp_path: Path) -> None:
    """A known picture with its colours inverted (a negative: any viewer turns it back)
    hashed 254-256 bits from the original, the complement of its PDQ, and matched nothing.
    The complement of the image's own hash is looked up (variant ``inverted``, a whole
    picture): it needs no image on the bank side; an unrelated negative matches nothing."""
    from PIL import Image, ImageOps

    base = testdata / "pdq" / "reg-test-input"
    photos = {"bridge": base / "dih" / "bridge-1-original.jpg", "pen": base / "pen-and-coaster.png",
              "other": base / "labelme-subset" / "q0291.jpg"}
    db = str(tmp_path / "b.sqlite3")
    hashes = {cid: hash_image_bytes(p.read_bytes(), variants=False).pdq for cid, p in photos.items()}
    (tmp_path / "list.csv").write_text("pdq,content_id\n" + "".join(
        f"{hashes[c]},{c}\n" for c in ("bridge", "pen")))
    assert runner.invoke(app, ["--db", db, "bank", "create", "known", "--create"]).exit_code == 0
    assert runner.invoke(app, ["--db", db, "bank", "import", "known", str(tmp_path / "list.csv")]).exit_code == 0
    case = tmp_path / "case"
    case.mkdir()
    for cid, p in photos.items():
        neg = ImageOps.invert(Image.open(p).convert("RGB"))
        neg.save(case / f"{cid}-neg.jpg", quality=88)
        neg.save(case / f"{cid}-neg.png")
        assert hash_image_bytes((case / f"{cid}-neg.png").read_bytes(), variants=False).pdq != hashes[cid]
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    for cid in ("bridge", "pen"):
        for ext in ("jpg", "png"):
            m = [m for m in recs[f"{cid}-neg.{ext}"]["matches"] if m["signal_type"] == "pdq"]
            assert [(x["content_id"], x["query_variant"], x["strength"]) for x in m] == [
                (cid, "inverted", "perceptual")], m
            assert f"match: {case}/{cid}-neg.{ext}" in out
    assert not _matched(recs["other-neg.jpg"]) and not _matched(recs["other-neg.png"])
    res = runner.invoke(app, ["--db", db, "scan", str(case), "--no-variants", "-o", str(tmp_path / "s.jsonl")])
    assert res.exit_code == 0 and not any(
        json.loads(line).get("matches") for line in (tmp_path / "s.jsonl").read_text().splitlines())


@pytest.mark.shared
def test_negatives_add_no_false_match_among_unrelated_pictures(testdata: Path) -> None:
    """The complement of one unrelated picture's hash against another's: tiles of the shared
    photos, generated documents and skies (inverted, a white page is a black one)."""
    from assay.media.pdq import hamming
    from test_trim import _enc, _unrelated

    hashes = [h for h in (hash_image_bytes(_enc(im)) for im in _unrelated(testdata)) if h.quality >= 50]
    assert len(hashes) >= 50 and all(h.regions and "inverted" in h.regions for h in hashes)
    near = [(i, j) for i, a in enumerate(hashes) for j, b in enumerate(hashes)
            if i != j and hamming(a.regions["inverted"][0], b.pdq) <= 31]  # type: ignore[index]
    assert near == []


def test_a_copy_flipped_upside_down_or_across_a_diagonal_is_found(
        banked: tuple[str, dict[str, bytes]], tmp_path: Path) -> None:
    """The three flips besides the mirror (upside down, across either diagonal) hashed
    ~106 bits from the original and matched nothing unless --dihedral was asked for: they
    are queried by default (variants flipped-vertical, -diagonal, -antidiagonal: whole
    pictures), once each (an EXIF orientation that is one of them is the 'displayed' one)."""
    from PIL import Image

    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    flips = {"flipped-vertical": Image.Transpose.FLIP_TOP_BOTTOM, "flipped-diagonal": Image.Transpose.TRANSPOSE,
             "flipped-antidiagonal": Image.Transpose.TRANSVERSE}
    for cid in ("bridge", "pen", "other2"):
        im = Image.open(io.BytesIO(data[cid])).convert("RGB")
        for name, t in flips.items():
            im.transpose(t).save(case / f"{cid}-{name}.{'png' if cid == 'pen' else 'jpg'}",
                                 **({} if cid == "pen" else {"quality": 88}))
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    for cid, ext in (("bridge", "jpg"), ("pen", "png")):
        for name in flips:
            m = [m for m in recs[f"{cid}-{name}.{ext}"]["matches"] if m["signal_type"] == "pdq"]
            assert {x["content_id"] for x in m} == {cid}, (cid, name, m)
            assert m[0]["query_variant"] == name and m[0]["strength"] == "perceptual", m[0]
    assert not any(_matched(recs[f"other2-{name}.jpg"]) for name in flips)
    exif = Image.Exif()
    exif[0x0112] = 4  # shown upside down: that flip is the "displayed" variant, not hashed twice
    b = io.BytesIO()
    Image.open(io.BytesIO(data["bridge"])).save(b, "JPEG", quality=90, exif=exif.tobytes())
    regions = hash_image_bytes(b.getvalue()).regions or {}
    assert "displayed" in regions and "flipped-vertical" not in regions and "flipped-diagonal" in regions
