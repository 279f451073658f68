"""Pictures inside documents: a PDF's images stored compressed or encoded (Flate with or
without predictors, LZW, RunLength, ASCII filters, JPEG 2000, any bit depth and colour
space) are rebuilt to pixels and matched like any picture; a hostile PDF is an error on
its record, never a crash or a hang.

Test data: generated patterns (assay.demo.pattern) and the shared public PDQ test images
(../shared/testdata/pdq), written into PDFs the ways real writers do (Pillow's PDF save,
img2pdf's PNG passthrough with PNG predictors, object streams; see tests/pdfgen.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import logging
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from assay.config import Limits
from assay.containers.members import ArchiveError, Member
from assay.containers.pdfimages import pdf_image_members
from assay.demo import pattern
from assay.media import hash_image_bytes
from pdfgen import build, image_dict, one_page, packbits, png_rows
from test_evasion import _matched, _pdf_with_jpeg, _scan, banked  # noqa: F401 - banked: a fixture

_SIZE = (240, 180)


def _picture() -> Image.Image:
    return pattern("blobs", _SIZE, seed=5)


def _pdq(im: Image.Image | bytes) -> str:
    if isinstance(im, Image.Image):
        b = io.BytesIO()
        im.save(b, "PNG")
        im = b.getvalue()
    got = hash_image_bytes(im).pdq
    assert got is not None
    return got


def _bits(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _members(path: Path, limits: Limits | None = None) -> list[Member]:
    return list(pdf_image_members(path, limits or Limits(), set()))


def _packed(grey: Image.Image, n: int) -> bytes:
    """Grey samples narrowed to ``n`` bits, packed as a PDF packs them (rows start on a byte)."""
    a = np.asarray(grey) >> (8 - n)
    per = 8 // n
    w = a.shape[1]
    padded = np.zeros((a.shape[0], -(-w // per) * per), np.uint8)
    padded[:, :w] = a
    shifts = np.arange(per - 1, -1, -1) * n
    return (padded.reshape(a.shape[0], -1, per) << shifts).sum(axis=2).astype(np.uint8).tobytes()


def _lzw(im: Image.Image) -> bytes:
    """LZW data as a PDF holds it: TIFF's LZW (libtiff, through Pillow), one strip."""
    b = io.BytesIO()
    im.save(b, "TIFF", compression="tiff_lzw", strip_size=1 << 30)
    tiff = Image.open(b)
    (at,), (n,) = tiff.tag_v2[273], tiff.tag_v2[279]
    return b.getvalue()[at:at + n]


def _cases() -> dict[str, tuple[bytes, bytes, tuple, Image.Image]]:
    """name -> (image dictionary, stream data, further objects, the picture it shows)."""
    rgb = _picture()
    grey = rgb.convert("L")
    w, _h = _SIZE
    g16 = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    pal = rgb.quantize(256)
    lut = bytes(pal.getpalette()[:768])  # type: ignore[index]
    raw = rgb.tobytes()
    pred = b"/DecodeParms << /Predictor 15 /Colors %d /Columns %d /BitsPerComponent %d >>"
    cases = {
        # img2pdf: a PNG's own image data, PNG predictors and all
        "flate-png-predictor": (image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode", pred % (3, w, 8)),
                                png_rows(rgb), (), rgb),
        "flate": (image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode"), zlib.compress(raw), (), rgb),
        "flate-tiff-predictor": (
            image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode", b"/DecodeParms << /Predictor 2 /Colors 3 /Columns %d >>" % w),
            zlib.compress((np.diff(np.asarray(rgb).astype(np.int16), axis=1, prepend=0) % 256).astype(np.uint8).tobytes()),
            (), rgb),
        "lzw": (image_dict(_SIZE, b"/DeviceRGB", 8, b"/LZWDecode"), _lzw(rgb), (), rgb),
        "runlength": (image_dict(_SIZE, b"/DeviceRGB", 8, b"/RunLengthDecode"), packbits(raw), (), rgb),
        "asciihex-flate": (image_dict(_SIZE, b"/DeviceRGB", 8, b"[/ASCIIHexDecode /FlateDecode]"),
                           binascii.hexlify(zlib.compress(raw)) + b">", (), rgb),
        "ascii85-flate": (image_dict(_SIZE, b"/DeviceRGB", 8, b"[/ASCII85Decode /FlateDecode]"),
                          base64.a85encode(zlib.compress(raw), adobe=True)[2:], (), rgb),
        "unfiltered-grey": (image_dict(_SIZE, b"/DeviceGray", 8, None), grey.tobytes(), (), grey),
        "cmyk": (image_dict(_SIZE, b"/DeviceCMYK", 8, b"/FlateDecode"), zlib.compress(rgb.convert("CMYK").tobytes()),
                 (), rgb.convert("CMYK").convert("RGB")),
        "iccbased": (image_dict(_SIZE, b"[/ICCBased 5 0 R]", 8, b"/FlateDecode"), zlib.compress(raw),
                     ((b"<< /N 3 /Alternate /DeviceRGB >>", b"not a real profile"),), rgb),
        "indexed": (image_dict(_SIZE, b"[/Indexed /DeviceRGB 255 <%s>]" % binascii.hexlify(lut), 8, b"/FlateDecode"),
                    zlib.compress(pal.tobytes()), (), pal.convert("RGB")),
        "indexed-asciihex": (image_dict(_SIZE, b"[/Indexed /DeviceRGB 255 <%s>]" % binascii.hexlify(lut), 8,
                                        b"/ASCIIHexDecode"), binascii.hexlify(pal.tobytes()) + b">", (), pal.convert("RGB")),
        "grey16-png-predictor": (image_dict(_SIZE, b"/DeviceGray", 16, b"/FlateDecode", pred % (1, w, 16)),
                                 png_rows(g16), (), grey),
        "grey16": (image_dict(_SIZE, b"/DeviceGray", 16, b"/FlateDecode"),
                   zlib.compress(np.asarray(g16).astype(">u2").tobytes()), (), grey),
        # a soft mask (img2pdf's alpha channel): transparency, not a picture of its own
        "rgb-with-smask": (image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode", b"/SMask 5 0 R"), zlib.compress(raw),
                           ((image_dict(_SIZE, b"/DeviceGray", 8, b"/FlateDecode"), zlib.compress(b"\xff" * (w * _SIZE[1]))),),
                           rgb),
    }
    for n in (1, 2, 4):
        shown = Image.fromarray(((np.asarray(grey) >> (8 - n)) * (255 // (2**n - 1))).astype(np.uint8))
        cases[f"grey-{n}-bit"] = (image_dict(_SIZE, b"/DeviceGray", n, b"/FlateDecode"), zlib.compress(_packed(grey, n)),
                                  (), shown)
    return cases


_CASES = _cases()


@pytest.mark.parametrize("objstm", [False, True], ids=["xref-table", "object-streams"])
@pytest.mark.parametrize("case", sorted(_CASES))
def test_each_kind_of_pdf_image_is_rebuilt_to_the_picture_it_shows(case: str, objstm: bool, tmp_path: Path) -> None:
    """Before, none of these was looked at: only a PDF's plain JPEGs were (carved)."""
    image, data, extra, shown = _CASES[case]
    path = tmp_path / "doc.pdf"
    path.write_bytes(one_page(image, data, extra, objstm=objstm))
    got = _members(path)
    assert [(m.name, m.problem) for m in got] == [(f"page-1/Im1-obj4.{'tif' if case == 'cmyk' else 'png'}", None)]
    assert _bits(_pdq(got[0].open().read()), _pdq(shown)) <= (4 if case.startswith("indexed") else 0)  # type: ignore[union-attr]


def test_pillow_and_jpeg_inside_other_filters(tmp_path: Path) -> None:
    """Pillow's PDF writer: a palette picture as ASCIIHex indexed data (which pypdf's own
    image reader turns black), RGBA as JPEG 2000. A JPEG inside Flate, or in an encrypted
    PDF (not carvable), is handed over as its own bytes: exact hashes hold."""
    from pypdf import PdfReader, PdfWriter

    rgb = _picture()
    pal = rgb.quantize(256)
    pal.save(tmp_path / "p.pdf")
    rgb.convert("RGBA").save(tmp_path / "rgba.pdf")
    (p,), (rgba,) = _members(tmp_path / "p.pdf"), _members(tmp_path / "rgba.pdf")
    assert p.name == "page-1/image-obj5.png" and _bits(_pdq(p.open().read()), _pdq(pal.convert("RGB"))) == 0  # type: ignore[union-attr]
    assert rgba.name == "page-1/image-obj5.jp2" and _bits(_pdq(rgba.open().read()), _pdq(rgb)) == 0  # type: ignore[union-attr]
    b = io.BytesIO()
    rgb.save(b, "JPEG", quality=90)
    jpeg = b.getvalue()
    (tmp_path / "flate.pdf").write_bytes(one_page(image_dict(_SIZE, b"/DeviceRGB", 8, b"[/FlateDecode /DCTDecode]"),
                                                  zlib.compress(jpeg)))
    (inner,) = _members(tmp_path / "flate.pdf")
    assert inner.name == "page-1/Im1-obj4.jpg" and inner.open().read() == jpeg  # type: ignore[union-attr]
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf_with_jpeg(jpeg))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    writer.write(tmp_path / "enc.pdf")
    assert jpeg not in (tmp_path / "enc.pdf").read_bytes()
    (enc,) = _members(tmp_path / "enc.pdf")
    assert enc.name.endswith(".jpg") and enc.open().read() == jpeg  # type: ignore[union-attr]


def test_page_names_forms_and_images_no_page_shows(tmp_path: Path) -> None:
    """Members are named after the page that shows the picture (through form XObjects
    too) and its PDF object number; an image no page shows is still read, by number.
    One image shown on two pages is read once."""
    a, b = zlib.compress(_picture().tobytes()), zlib.compress(pattern("rings", _SIZE).tobytes())
    img = image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode")
    objs = [(b"<< /Type /Catalog /Pages 2 0 R >>", None),
            (b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>", None),
            (b"<< /Type /Page /Parent 2 0 R /Resources << /XObject << /Logo 5 0 R >> >> >>", None),
            (b"<< /Type /Page /Parent 2 0 R /Resources << /XObject << /Fm0 6 0 R /X 5 0 R >> >> >>", None),
            (img, a),
            (b"<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /Fm1 6 0 R /Pic 7 0 R >> >> >>",
             b"/Pic Do"),
            (img, b),
            (img, b)]  # object 8: on no page
    (tmp_path / "d.pdf").write_bytes(build(objs))
    assert [m.name for m in _members(tmp_path / "d.pdf")] == ["page-1/Logo-obj5.png", "page-2/Pic-obj7.png", "obj-8.png"]


@pytest.mark.parametrize("objstm", [False, True], ids=["xref-table", "object-streams"])
def test_image_dictionaries_written_to_hide_from_a_byte_search_are_read(tmp_path: Path, objstm: bool) -> None:
    """Text-only documents are not handed to pypdf (a search of the raw bytes for an image
    dictionary decides): names written with #xx escapes, or a /Subtype given by reference
    to a name in an object stream, must not slip past that search."""
    data = zlib.compress(_picture().tobytes())
    escaped = image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode").replace(b"/Subtype /Image", b"/Sub#74ype /#49m#61g#65")
    by_ref = image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode").replace(b"/Subtype /Image", b"/Subtype 5 0 R")
    for name, image, extra in (("escaped", escaped, ()), ("by-ref", by_ref, ((b"/Image", None),))):
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(one_page(image, data, extra, objstm=objstm))
        assert b"/Image" not in path.read_bytes() or objstm is False
        got = _members(path)
        assert [(m.name, m.problem) for m in got] == [("page-1/Im1-obj4.png", None)], name
        assert _bits(_pdq(got[0].open().read()), _pdq(_picture())) == 0  # type: ignore[union-attr]


def test_banked_pictures_in_documents_and_mail_are_found_by_a_scan(banked: tuple[str, dict[str, bytes]],  # noqa: F811
                                                                  tmp_path: Path) -> None:
    """A known picture put in a PDF by img2pdf (PNG predictors, a soft mask), by Pillow,
    in an object-stream PDF: each is found by PDQ, under a name that says where it is. A
    plain JPEG is still cut out as it is (exact hashes), and reported once. An unrelated
    picture in a PDF matches nothing. Pictures in quoted-printable or uuencoded mail and in
    RTF are found too (_check_mail_and_rtf)."""
    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    pen = Image.open(io.BytesIO(data["pen"]))
    rgb, alpha = pen.convert("RGB"), pen.getchannel("A")
    size = pen.size
    pred = b"/DecodeParms << /Predictor 15 /Colors %d /Columns %d >>"
    mask = (image_dict(size, b"/DeviceGray", 8, b"/FlateDecode", pred % (1, size[0])), png_rows(alpha))
    (case / "img2pdf.pdf").write_bytes(one_page(
        image_dict(size, b"/DeviceRGB", 8, b"/FlateDecode", pred % (3, size[0]) + b" /SMask 5 0 R"), png_rows(rgb), (mask,)))
    bridge = Image.open(io.BytesIO(data["bridge"]))
    (case / "objstm.pdf").write_bytes(one_page(image_dict(bridge.size, b"/DeviceRGB", 8, b"/FlateDecode"),
                                               zlib.compress(bridge.tobytes(), 1), objstm=True))
    pen.save(case / "pillow.pdf")  # RGBA: JPEG 2000
    (case / "report.pdf").write_bytes(_pdf_with_jpeg(data["bridge"]))
    other = Image.open(io.BytesIO(data["other"]))
    (case / "unrelated.pdf").write_bytes(one_page(image_dict(other.size, b"/DeviceRGB", 8, b"/FlateDecode"),
                                                  zlib.compress(other.tobytes())))
    (case / "attached.pdf").write_bytes(build([
        (b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(x) 4 0 R] >> >> >>", None),
        (b"<< /Type /Pages /Kids [] /Count 0 >>", None), (b"<< /Type /Page >>", None),
        (b"<< /Type /Filespec /F (holiday.png) /EF << /F 5 0 R >> >>", None),
        (b"<< /Type /EmbeddedFile /Filter /FlateDecode >>", zlib.compress(data["pen"]))], objstm=True))
    _write_mail_and_rtf(case, data)
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    assert {m["signal_type"] for m in recs["attached.pdf!/attachment-obj5/holiday.png"]["matches"]} >= {"md5", "pdq"}
    _check_mail_and_rtf(case, out, recs)
    for member, cid in (("img2pdf.pdf!/page-1/Im1-obj4.png", "pen"), ("objstm.pdf!/page-1/Im1-obj4.png", "bridge"),
                        ("pillow.pdf!/page-1/image-obj5.jp2", "pen")):
        rec = recs[member]
        assert _matched(rec) == {cid}, member
        assert rec["member_of"] == str(case / member.split("!/")[0]) and not rec.get("errors")
        assert f"match: {case}/{member}" in out
    assert not [p for p in recs if p.startswith("img2pdf.pdf!/") and p != "img2pdf.pdf!/page-1/Im1-obj4.png"]  # no mask
    carved = f"report.pdf!/carved@{_jpeg_at(case / 'report.pdf')}.jpg"
    assert [p for p in recs if p.startswith("report.pdf!/")] == [carved]  # not rebuilt a second time
    assert {m["signal_type"] for m in recs[carved]["matches"]} >= {"md5", "pdq"}
    assert [p for p in recs if p.startswith("unrelated.pdf!/")] == ["unrelated.pdf!/page-1/Im1-obj4.png"]
    assert not _matched(recs["unrelated.pdf!/page-1/Im1-obj4.png"])
    assert "│ files         │ 22 files: 11 images, 6 documents, 5 other files" in out  # was "5 document"
    for holder in ("img2pdf.pdf", "objstm.pdf", "pillow.pdf", "unrelated.pdf"):
        assert recs[holder]["kind"] == "document" and not recs[holder].get("errors")


def _jpeg_at(path: Path) -> int:
    return path.read_bytes().index(b"\xff\xd8\xff")


# -- hostile documents ---------------------------------------------------------------------------


@functools.cache
def _hostile() -> dict[str, bytes]:
    grey = image_dict((4000, 4000), b"/DeviceGray", 8, b"/FlateDecode")
    body = b"[" * 50_000 + b"]" * 50_000
    deep = build([(b"<< /Type /Catalog /Pages 2 0 R /Deep " + body + b" >>", None),
                  (b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None),
                  (b"<< /Type /Page /Parent 2 0 R /Resources << /XObject << /Im1 4 0 R >> >> >>", None),
                  (image_dict((8, 8), b"/DeviceGray", 8, b"/FlateDecode", b"/Decode " + body), zlib.compress(b"\x80" * 64))])
    loop = build([(b"<< /Type /Catalog /Pages 2 0 R >>", None),
                  (b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None),
                  (b"<< /Type /Page /Parent 2 0 R /Resources << /XObject << /F 4 0 R >> >> >>", None),
                  (b"<< /Type /XObject /Subtype /Form /Resources << /XObject << /F 4 0 R /G 5 0 R >> >> >>", b""),
                  (b"<< /Type /XObject /Subtype /Form /Resources << /XObject << /F 4 0 R >> >> >>", b"")])
    good = one_page(image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode"), zlib.compress(_picture().tobytes()))
    return {
        # declares 10^10 pixels
        "huge": one_page(image_dict((100_000, 100_000), b"/DeviceRGB", 8, b"/FlateDecode"), zlib.compress(b"\x00" * 1000)),
        # declares 16 MB of grey, inflates to 64 MB
        "flate-bomb": one_page(grey, zlib.compress(b"\x00" * 64_000_000, 9)),
        # honest, blank, and 48 MB of pixels from a 50 KB file
        "ratio-bomb": one_page(image_dict((4000, 4000), b"/DeviceRGB", 8, b"/FlateDecode"),
                               zlib.compress(b"\x00" * 48_000_000, 9)),
        "broken-xref": good.replace(b"startxref\n", b"startxref\n9").replace(b"xref\n0 ", b"xref\n0 9"),
        "truncated": good[: len(good) // 2],
        "deep-nesting": deep,
        "form-loop": loop,
        "not-a-pdf": b"%PDF-1.7\n<< /Subtype /Image >>\n" + bytes(range(256)) * 40,
        "needs-password": b"",  # written by the test (pypdf's writer)
    }


def test_hostile_pdfs_are_errors_on_their_records_never_crashes(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from pypdf import PdfReader, PdfWriter

    docs = dict(_hostile())
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(docs["broken-xref"].replace(b"startxref\n9", b"startxref\n")
                                                          .replace(b"xref\n0 9", b"xref\n0 "))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    b = io.BytesIO()
    writer.write(b)
    docs["needs-password"] = b.getvalue()
    got: dict[str, tuple[list[tuple[str, str | None, str]], str | None]] = {}
    with caplog.at_level(logging.DEBUG):
        for name, data in docs.items():
            path = tmp_path / f"{name}.pdf"
            path.write_bytes(data)
            members: list[tuple[str, str | None, str]] = []
            error = None
            try:
                for m in pdf_image_members(path, Limits(), set()):
                    members.append((m.name, m.problem, m.problem_code))
            except ArchiveError as exc:
                error = exc.code
            got[name] = (members, error)
    assert got["huge"] == ([("page-1/Im1-obj4.png", "image declares 100000x100000 pixels, over the limit of "
                                                    "178956970; not decoded", "too-large")], None)
    assert got["flate-bomb"][0][0][2] == "decode-error" and "Limit" in (got["flate-bomb"][0][0][1] or "")
    assert got["ratio-bomb"] == ([], "archive-bomb")
    assert [(n, p) for n, p, _ in got["broken-xref"][0]] == [("page-1/Im1-obj4.png", None)]  # rebuilt by pypdf
    assert got["needs-password"] == ([], "encrypted")
    assert got["not-a-pdf"][1] == "decode-error"
    assert got["form-loop"] == ([], None)
    for name in ("truncated", "deep-nesting"):
        members, error = got[name]
        assert error == "decode-error" or all(code == "decode-error" for _, _, code in members), (name, got[name])
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    out, err = capsys.readouterr()
    assert not out and not err


def test_a_hostile_pdf_in_a_scan_is_an_error_on_its_record(tmp_path: Path) -> None:
    from assay.config import ScanSettings
    from assay.report.schema import FileRecord
    from assay.scan.run import run_scan

    docs = dict(_hostile())
    for name in ("huge", "ratio-bomb", "not-a-pdf"):
        (tmp_path / f"{name}.pdf").write_bytes(docs[name])
    recs: list[FileRecord] = []
    run_scan([tmp_path], ScanSettings(workers=1), None, recs.append)
    got = {r.path[len(str(tmp_path)) + 1:]: r for r in recs}
    assert [e.code for e in got["huge.pdf!/page-1/Im1-obj4.png"].errors] == ["too-large"]
    assert [e.code for e in got["ratio-bomb.pdf"].errors] == ["archive-bomb"]
    assert [e.code for e in got["not-a-pdf.pdf"].errors] == ["decode-error"]
    assert "unreadable PDF" in got["not-a-pdf.pdf"].errors[0].message


_GOOD = one_page(image_dict((16, 12), b"/DeviceRGB", 8, b"/FlateDecode", b"/DecodeParms << /Predictor 15 /Colors 3 /Columns 16 >>"),
                 png_rows(pattern("waves", (16, 12))), objstm=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(_GOOD) - 1), st.binary(min_size=0, max_size=8), st.integers(0, 8)),
                min_size=1, max_size=6))
def test_fuzzed_pdfs_raise_nothing_but_assays_own_error(tmp_path: Path, edits: list[tuple[int, bytes, int]]) -> None:
    data = bytearray(_GOOD)
    for at, new, cut in edits:
        data[at:at + cut] = new
    path = tmp_path / "f.pdf"
    path.write_bytes(bytes(data))
    try:
        for m in pdf_image_members(path, Limits(), set()):
            assert m.problem or m.open is not None
            if m.open is not None:
                m.open().read()
    except ArchiveError:
        pass


# -- pictures in mail and RTF, encoded as text -----------------------------------------------------


def _uu(name: str, data: bytes) -> bytes:
    lines = b"".join(binascii.b2a_uu(data[i:i + 45], backtick=True) for i in range(0, len(data), 45))
    return b"begin 644 " + name.encode() + b"\n" + lines + b"`\nend\n"


def _rtf(png: bytes, blip: bytes = b"pngblip") -> bytes:
    """A picture as Word writes it into RTF: properties and a blip id in groups, then its
    bytes in hex, 128 digits a line; a metafile fallback for old readers beside it."""
    h = binascii.hexlify(png)
    hexlines = b"\r\n".join(h[i:i + 128] for i in range(0, len(h), 128))
    return (b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Calibri;}}\\pard Holiday {\\*\\shppict{\\pict{\\*\\picprop\\shplid1025"
            b"{\\sp{\\sn shapeType}{\\sv 75}}}\\picscalex100\\picscaley100\\piccropl0\\picw924\\pich735\\picwgoal5544"
            b"\\pichgoal4410\\" + blip + b"\\bliptag-1234567{\\*\\blipuid 0123456789abcdef0123456789abcdef}\r\n"
            + hexlines + b"}}{\\nonshppict{\\pict\\wmetafile8\\picw924\\pich735 010009000003}}\\par}\r\n")


def _write_mail_and_rtf(case: Path, data: dict[str, bytes]) -> None:
    """A mail attachment in quoted-printable (CRLF or not), an uuencoded file in an mbox of
    two messages, a picture in an RTF document (Word's hex blips)."""
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["Subject"] = "holiday"
    mail.set_content("see attached")
    mail.add_attachment(data["pen"], maintype="image", subtype="png", filename="p.png", cte="quoted-printable")
    mail.add_attachment(b"just some text\n" * 50, maintype="text", subtype="plain", cte="quoted-printable")
    (case / "qp.eml").write_bytes(bytes(mail))
    (case / "qp-crlf.eml").write_bytes(bytes(mail).replace(b"\n", b"\r\n"))
    mbox = (b"From a@example.org Mon Dec  7 10:00:00 2026\nSubject: one\n\nbegin 644 notes.txt\n"
            + _uu("x", b"not a picture")[len(b"begin 644 x\n"):] + b"\nFrom b@example.org Mon Dec  7 11:00:00 2026\n"
            b"Subject: two\n\nold style\n\n" + _uu("bridge.jpg", data["bridge"]) + b"\n")
    (case / "box.mbox").write_bytes(mbox)
    (case / "letter.rtf").write_bytes(_rtf(data["pen"]))
    (case / "other.rtf").write_bytes(_rtf(data["other"], b"jpegblip"))


def _check_mail_and_rtf(case: Path, out: str, recs: dict[str, dict]) -> None:
    """Before, none was found (only base64 was decoded). The decoded bytes are the file's
    own: exact hashes hold."""
    for holder, cid, ext in (("qp.eml", "pen", "png"), ("qp-crlf.eml", "pen", "png"), ("box.mbox", "bridge", "jpg"),
                             ("letter.rtf", "pen", "png")):
        members = [p for p in recs if p.startswith(holder + "!/")]
        assert len(members) == 1 and members[0].startswith(f"{holder}!/data@") and members[0].endswith(ext), members
        rec = recs[members[0]]
        assert _matched(rec) == {cid} and {m["signal_type"] for m in rec["matches"]} >= {"pdq", "md5", "sha256"}
        assert f"match: {case}/{members[0]}" in out
    (other,) = [p for p in recs if p.startswith("other.rtf!/")]
    assert other.endswith(".jpg") and not _matched(recs[other])


def test_a_plain_jpeg_is_cut_out_once_even_with_data_after_its_end(tmp_path: Path) -> None:
    """A DCT stream that runs on past its JPEG's end marker (an appended second picture,
    as phones write) is the carver's: cut out as it is (both pictures), not handed out a
    second time by the PDF reader."""
    from assay.containers.expand import _pdf

    b = io.BytesIO()
    _picture().save(b, "JPEG")
    small = io.BytesIO()
    pattern("rings", (32, 24)).save(small, "JPEG")
    stream = b.getvalue() + small.getvalue()
    (tmp_path / "d.pdf").write_bytes(one_page(image_dict(_SIZE, b"/DeviceRGB", 8, b"/DCTDecode"), stream))
    names = [m.name for m in _pdf(tmp_path / "d.pdf", Limits())]
    start = (tmp_path / "d.pdf").read_bytes().index(stream)
    assert names == [f"carved@{start}.jpg", f"carved@{start + len(b.getvalue())}.jpg"]


def test_image_count_and_time_budgets_end_the_walk_with_an_error(tmp_path: Path) -> None:
    img = image_dict((8, 8), b"/DeviceGray", 8, b"/FlateDecode")
    objs = [(b"<< /Type /Catalog /Pages 2 0 R >>", None), (b"<< /Type /Pages /Kids [] /Count 0 >>", None),
            *[(img, zlib.compress(bytes([i * 40]) * 64)) for i in range(5)]]
    (tmp_path / "d.pdf").write_bytes(build(objs))
    got: list[str] = []
    with pytest.raises(ArchiveError, match="more than 3 images; the rest not read") as exc:
        got.extend(m.name for m in pdf_image_members(tmp_path / "d.pdf", Limits(max_document_images=3), set()))
    assert got == ["obj-3.png", "obj-4.png", "obj-5.png"] and exc.value.code == "too-large"
    with pytest.raises(ArchiveError, match="still unread after 0.0 s"):
        list(pdf_image_members(tmp_path / "d.pdf", Limits(max_document_seconds=0.0), set()))
    # the time the caller spends analysing each member is not the document's
    import time

    import pypdf  # noqa: F401 - imported before the clock runs

    walked = []
    for m in pdf_image_members(tmp_path / "d.pdf", Limits(max_document_seconds=1.0), set()):
        walked.append(m.name)
        time.sleep(0.3)
    assert len(walked) == 5


@pytest.mark.parametrize("objstm", [False, True], ids=["xref-table", "object-streams"])
def test_files_attached_to_a_pdf_are_scanned_as_members(tmp_path: Path, objstm: bool) -> None:
    """A picture attached to a PDF (compressed: no byte search finds it) by name, by a
    file attachment annotation, or as a typed stream no name points to: each is read, its
    filters undone, and handed over as the file it is (exact hashes hold)."""
    b = io.BytesIO()
    _picture().save(b, "PNG")
    png = b.getvalue()
    objs = [(b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(a.png) 4 0 R] >> >> >>", None),
            (b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None),
            (b"<< /Type /Page /Parent 2 0 R /Annots [<< /Type /Annot /Subtype /FileAttachment /FS 6 0 R >>] >>", None),
            (b"<< /Type /Filespec /F (a.png) /UF (../../evil/a.png) /EF << /F 5 0 R >> >>", None),
            (b"<< /Filter /FlateDecode >>", zlib.compress(png)),  # untyped: found through its name
            (b"<< /Type /Filespec /F (note.bin) /EF << /F 7 0 R >> >>", None),
            (b"<< /Filter [/ASCIIHexDecode /FlateDecode] >>", binascii.hexlify(zlib.compress(png)) + b">"),
            (b"<< /Type /EmbeddedFile /Filter /FlateDecode >>", zlib.compress(png))]  # on no name
    (tmp_path / "d.pdf").write_bytes(build(objs, objstm))
    got = _members(tmp_path / "d.pdf")
    assert [m.name for m in got] == ["attachment-obj5/a.png", "attachment-obj7/note.bin", "attachment-obj8/file"]
    assert all(m.open().read() == png for m in got)  # type: ignore[union-attr]


def test_a_zip_appended_to_a_pdf_does_not_hide_its_images(tmp_path: Path) -> None:
    """A PDF that ends with a zip (a polyglot) was walked as a zip only: appending any zip
    hid the PDF's own pictures. Both are walked now."""
    import zipfile

    from assay.config import ScanSettings
    from assay.report.schema import FileRecord
    from assay.scan.run import run_scan

    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("note.txt", "hello")
    pdf = one_page(image_dict(_SIZE, b"/DeviceRGB", 8, b"/FlateDecode"), zlib.compress(_picture().tobytes()))
    (tmp_path / "d.pdf").write_bytes(pdf + b.getvalue())
    recs: list[FileRecord] = []
    run_scan([tmp_path], ScanSettings(workers=1), None, recs.append)
    assert sorted(r.path[len(str(tmp_path)) + 1:] for r in recs) == [
        "d.pdf", "d.pdf!/note.txt", "d.pdf!/page-1/Im1-obj4.png"]
    assert not [r for r in recs if r.errors]
