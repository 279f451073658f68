"""Inline images (``BI <settings> ID <data> EI`` inside a content stream): a picture put in a
PDF that way, not as an image XObject, is read and scanned as ``file.pdf!/page-N/inline-K``
under the same bounds as any PDF image; a text-only document is still not handed to pypdf.

Test data: the shared public PDQ test images (../shared/testdata/pdq) and generated patterns,
written into PDFs by hand (tests/pdfgen.py).
"""

from __future__ import annotations

import binascii
import io
import random
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from assay.config import Limits
from assay.containers import pdfinline
from assay.containers.members import ArchiveError, Member
from assay.containers.pdfimages import pdf_image_members
from assay.demo import pattern
from assay.media import hash_image_bytes
from pdfgen import build, packbits
from test_evasion import _matched, _scan, banked  # noqa: F401 - banked: a fixture


def _page(content: bytes, dictionary: bytes = b"<< /Filter /FlateDecode >>", encode: bool = True,
          resources: bytes = b"", extra: tuple[tuple[bytes, bytes | None], ...] = ()) -> bytes:
    """A one-page PDF whose content stream (object 4) is ``content`` (Flate-compressed
    unless ``encode`` is false: then the bytes are as given)."""
    return build([(b"<< /Type /Catalog /Pages 2 0 R >>", None),
                  (b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None),
                  (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] " + resources + b" /Contents 4 0 R >>", None),
                  (dictionary, zlib.compress(content) if encode else content), *extra])


def _inline(settings: bytes, data: bytes) -> bytes:
    return b"q 200 0 0 150 0 0 cm\nBI " + settings + b"\nID " + data + b"\nEI\nQ\n"


def _rgb(im: Image.Image, filt: bytes, data: bytes, full: bool = False) -> bytes:
    w, h = im.size
    keys = (b"/Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8" if full
            else b"/W %d /H %d /CS /RGB /BPC 8") % (w, h)
    return _inline(keys + (b" /F " + filt if filt else b""), data)


def _members(path: Path, limits: Limits | None = None) -> list[Member]:
    return list(pdf_image_members(path, limits or Limits(), set()))


def _pdq(data: bytes) -> str:
    got = hash_image_bytes(data).pdq
    assert got is not None
    return got


def _png(im: Image.Image) -> bytes:
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue()


def test_inline_pictures_of_banked_images_are_found_by_a_scan(banked: tuple[str, dict[str, bytes]],  # noqa: F811
                                                              tmp_path: Path) -> None:
    """Before, no inline image was read: each of these scanned as a document with no member."""
    db, data = banked
    case = tmp_path / "case"
    case.mkdir()
    bridge = Image.open(io.BytesIO(data["bridge"])).convert("RGB")
    pen = Image.open(io.BytesIO(data["pen"])).convert("RGB")
    raw = bridge.tobytes()
    (case / "flate.pdf").write_bytes(_page(_rgb(bridge, b"/Fl", zlib.compress(raw))))
    (case / "raw.pdf").write_bytes(_page(_rgb(pen, b"", pen.tobytes(), full=True)))
    (case / "hex.pdf").write_bytes(_page(_rgb(bridge, b"[/AHx /Fl]", binascii.hexlify(zlib.compress(raw)) + b">")))
    (case / "dct.pdf").write_bytes(_page(_rgb(bridge, b"/DCT", data["bridge"])))  # compressed: no carver sees it
    (case / "form.pdf").write_bytes(_page(  # the inline picture inside a form XObject the page draws
        b"q /Fm0 Do Q", resources=b"/Resources << /XObject << /Fm0 5 0 R >> >>",
        extra=((b"<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Filter /FlateDecode >>",
                zlib.compress(_rgb(pen, b"/Fl", zlib.compress(pen.tobytes())))),)))
    other = Image.open(io.BytesIO(data["other"])).convert("RGB")
    (case / "unrelated.pdf").write_bytes(_page(_rgb(other, b"/Fl", zlib.compress(other.tobytes()))))
    out, recs = _scan(db, case, tmp_path / "r.jsonl")
    for member, cid in (("flate.pdf!/page-1/inline-0.png", "bridge"), ("raw.pdf!/page-1/inline-0.png", "pen"),
                        ("hex.pdf!/page-1/inline-0.png", "bridge"), ("dct.pdf!/page-1/inline-0.jpg", "bridge"),
                        ("form.pdf!/page-1/Fm0-obj5/inline-0.png", "pen")):
        assert member in recs, sorted(recs)
        assert _matched(recs[member]) == {cid} and not recs[member].get("errors"), member
        assert f"match: {case}/{member}" in out
    assert {m["signal_type"] for m in recs["dct.pdf!/page-1/inline-0.jpg"]["matches"]} >= {"pdq", "md5", "sha256"}
    assert not _matched(recs["unrelated.pdf!/page-1/inline-0.png"])
    for holder in ("flate.pdf", "raw.pdf", "hex.pdf", "dct.pdf", "form.pdf", "unrelated.pdf"):
        assert not recs[holder].get("errors"), holder


def test_inline_images_in_forms_and_patterns_are_named_after_where_they_are(tmp_path: Path) -> None:
    """A form drawn by page 2 (its colour space named in the page's resources: a form with
    no resources of its own uses its page's), a tiling pattern no page draws as a form."""
    grey = _inline(b"/W 8 /H 8 /CS /Ink /BPC 8", bytes(range(0, 256, 4)))
    rgb = _inline(b"/W 4 /H 4 /CS /RGB /BPC 8 /F /AHx", binascii.hexlify(bytes(range(48))) + b">")
    objs = [(b"<< /Type /Catalog /Pages 2 0 R >>", None),
            (b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>", None),
            (b"<< /Type /Page /Parent 2 0 R /Resources << /Pattern << /P0 7 0 R >> >> /Contents 5 0 R >>", None),
            (b"<< /Type /Page /Parent 2 0 R /Resources << /ColorSpace << /Ink /DeviceGray >> /XObject << /Logo 6 0 R >> >> "
             b"/Contents 8 0 R >>", None),
            (b"<< /Filter /FlateDecode >>", zlib.compress(b"/Pattern cs /P0 scn 0 0 100 100 re f")),
            (b"<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Filter /FlateDecode >>", zlib.compress(grey)),
            (b"<< /Type /Pattern /PatternType 1 /PaintType 1 /TilingType 1 /BBox [0 0 4 4] /XStep 4 /YStep 4 "
             b"/Resources << >> /Filter /FlateDecode >>", zlib.compress(rgb)),
            (b"<< /Filter /FlateDecode >>", zlib.compress(b"q /Logo Do Q"))]
    (tmp_path / "d.pdf").write_bytes(build(objs))
    got = _members(tmp_path / "d.pdf")
    assert [(m.name, m.problem) for m in got] == [("page-2/Logo-obj6/inline-0.png", None), ("obj-7/inline-0.png", None)]
    assert Image.open(io.BytesIO(got[0].open().read())).tobytes() == bytes(range(0, 256, 4))  # type: ignore[union-attr]


def test_a_huge_declared_size_is_refused_before_decoding(tmp_path: Path) -> None:
    from assay.config import ScanSettings
    from assay.report.schema import FileRecord
    from assay.scan.run import run_scan

    bomb = zlib.compress(b"\x00" * 5_000_000, 9)
    for name, keys in (("short", b"/W 100000 /H 100000 /CS /RGB /BPC 8 /F /Fl"),
                       ("long", b"/Width 100000 /Height 100000 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode"),
                       ("raw", b"/W 100000 /H 100000 /CS /G /BPC 8")):
        (tmp_path / f"{name}.pdf").write_bytes(_page(_inline(keys, bomb if name != "raw" else b"\x00" * 1000)))
    recs: list[FileRecord] = []
    run_scan([tmp_path], ScanSettings(workers=1), None, recs.append)
    got = {r.path[len(str(tmp_path)) + 1:]: r for r in recs}
    for name in ("short", "long", "raw"):
        rec = got[f"{name}.pdf!/page-1/inline-0.png"]
        assert [e.code for e in rec.errors] == ["too-large"], name
        assert "image declares 100000x100000 pixels, over the limit" in rec.errors[0].message
        assert not got[f"{name}.pdf"].errors


def test_a_page_of_more_content_than_is_parsed_is_an_error(tmp_path: Path) -> None:
    """pypdf's search for the EI that ends an inline image runs in Python: a page's content
    is parsed up to 16 MiB (a flood of E bytes would take minutes at 512 MiB)."""
    flood = b"q BI /W 8 /H 8 /CS /G /BPC 8 /F /Fl ID " + b"E" * (17 * 1024**2) + b" EI Q"
    (tmp_path / "d.pdf").write_bytes(_page(flood))
    (got,) = _members(tmp_path / "d.pdf")
    assert got.name == "page-1/inline-0.png" and got.problem_code == "too-large"
    assert got.problem is not None and "over the 16777216 bytes assay parses for inline images" in got.problem


@pytest.mark.parametrize("kind", ["flate", "unfiltered-icc", "runlength"])
def test_data_holding_ei_is_read_to_its_known_end(tmp_path: Path, kind: str) -> None:
    """pypdf ends an inline image at the first EI followed by what looks like operators,
    even inside Flate data (a stored block holds bytes as they are), RunLength data (a 128
    inside a literal run) or raw samples whose length it cannot tell (a colour space named
    in the resources): the picture was cut,
    and the images after it lost with the rest of the page. A viewer inflates to the zlib
    stream's end, or takes the bytes the declared size needs; so does assay when pypdf's
    reading fails."""
    first, second = pattern("blobs", (40, 30), seed=3), pattern("rings", (40, 30), seed=4)
    raw = first.tobytes()
    planted = raw[:300] + b" EI Q 0 0 m S " + raw[314:]
    if kind == "flate":
        keys, rigged, res, extra = b"/W 40 /H 30 /CS /RGB /BPC 8 /F /Fl", zlib.compress(planted, 0), b"", ()
        after = _inline(keys, zlib.compress(second.tobytes()))
    elif kind == "runlength":  # a 128 (the end marker) planted in a literal run
        planted = raw[:300] + b"\x80 EI Q 0 0 m S " + raw[315:]
        keys, rigged, res, extra = b"/W 40 /H 30 /CS /RGB /BPC 8 /F /RL", packbits(planted), b"", ()
        after = _inline(keys, packbits(second.tobytes()))
    else:
        keys, rigged = b"/W 40 /H 30 /CS /Cs1 /BPC 8", planted
        res, extra = b"/Resources << /ColorSpace << /Cs1 [/ICCBased 5 0 R] >> >>", ((b"<< /N 3 >>", b"x"),)
        after = _inline(keys, second.tobytes())
    (tmp_path / "d.pdf").write_bytes(_page(_inline(keys, rigged) + after, resources=res, extra=extra))
    got = [m for m in _members(tmp_path / "d.pdf") if m.problem is None]
    assert [m.name.split("@")[0] for m in got] == ["page-1/inline", "page-1/inline"]
    want = Image.frombytes("RGB", (40, 30), planted)
    assert _pdq(got[0].open().read()) == _pdq(_png(want))  # type: ignore[union-attr]
    assert _pdq(got[1].open().read()) == _pdq(_png(second))  # type: ignore[union-attr]


def _broken() -> dict[str, bytes]:
    im = pattern("blobs", (40, 30), seed=3)
    flate = zlib.compress(im.tobytes())
    keys = b"/W 40 /H 30 /CS /RGB /BPC 8"
    return {
        "truncated-data": _page(b"q BI " + keys + b" /F /Fl ID " + flate[: len(flate) // 2]),
        "missing-ei": _page(b"q BI " + keys + b" /F /Fl ID " + flate + b" Q\n0 0 m 10 10 l S\n"),
        "unknown-filter": _page(_inline(keys + b" /F /Nonsense", flate)),
        "filter-is-a-number": _page(_inline(keys + b" /F 5", flate)),
        "bad-flate": _page(_inline(keys + b" /F /Fl", b"\x78\x9c" + bytes(200))),
        "short-raw-data": _page(_inline(keys, im.tobytes()[:100])),
        "bad-colour-space": _page(_inline(b"/W 40 /H 30 /CS /Cs9 /BPC 8 /F /Fl", flate)),
        "no-size": _page(_inline(b"/CS /RGB /BPC 8 /F /Fl", flate)),
        "negative-size": _page(_inline(b"/W -40 /H 30 /CS /RGB /BPC 8 /F /Fl", flate)),
        "bad-bits": _page(_inline(b"/W 40 /H 30 /CS /RGB /BPC 7 /F /Fl", flate)),
        "truncated-jpeg": _page(_inline(keys + b" /F /DCT", b"\xff\xd8\xff\xe0\x00\x10JFIF")),
        "no-id": _page(b"q BI /W 4 /H 4 /CS /G /BPC 8 Q"),
    }


def test_malformed_inline_images_are_errors_on_members_never_exceptions(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    got = {}
    for name, data in _broken().items():
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(data)
        try:
            members = _members(path)
        except ArchiveError as exc:  # assay's own: an error on the document's record
            got[name] = ("document", exc.code)
            continue
        assert members, name
        for m in members:
            assert m.name.startswith("page-1/inline") and (m.problem or m.open is not None), (name, m)
        errors = [m for m in members if m.problem]
        got[name] = ("member", errors[0].problem_code if errors else None)
    assert got == dict.fromkeys(_broken(), ("member", "decode-error"))
    # the Flate data complete, the EI missing: inflated to its end, the picture is read too
    assert [m.name for m in _members(tmp_path / "missing-ei.pdf") if not m.problem] == ["page-1/inline@2.png"]
    out, err = capsys.readouterr()
    assert not out and not err


def test_inline_images_count_in_the_documents_image_budget(tmp_path: Path) -> None:
    one = _inline(b"/W 8 /H 8 /CS /G /BPC 8", bytes(range(64)))
    (tmp_path / "d.pdf").write_bytes(_page(one * 5))
    got: list[str] = []
    with pytest.raises(ArchiveError, match="more than 3 images; the rest not read"):
        got.extend(m.name for m in pdf_image_members(tmp_path / "d.pdf", Limits(max_document_images=3), set()))
    assert got == ["page-1/inline-0.png", "page-1/inline-1.png", "page-1/inline-2.png"]
    with pytest.raises(ArchiveError, match="still unread after 0.0 s"):
        _members(tmp_path / "d.pdf", Limits(max_document_seconds=0.0))


def test_content_streams_written_to_hide_the_operator_from_the_byte_search(tmp_path: Path) -> None:
    """The pre-check reads Flate streams only: content encoded otherwise (ASCIIHex, PNG
    predictors, Flate twice; the filter's name spelled with #xx, given as a string, or in an
    object stream), split over an array of streams, or in a stream whose dictionary looks
    like an image's, must still be read."""
    im = pattern("rings", (32, 24), seed=1)
    content = _inline(b"/W 32 /H 24 /CS /RGB /BPC 8 /F /Fl", zlib.compress(im.tobytes()))
    predicted = _up(content + b" " * (-len(content) % 16), 16)
    half = content.index(b"/CS")
    docs = {
        "asciihex": _page(binascii.hexlify(content) + b">", b"<< /Filter /ASCIIHexDecode >>", False),
        "escaped-filter": _page(binascii.hexlify(content) + b">", b"<< /Filter /ASCIIHex#44ecode >>", False),
        # pypdf takes a string for the name it spells
        "filter-as-a-string": _page(binascii.hexlify(content) + b">", b"<< /Filter [<2F41534349494865784465636F6465>] >>",
                                    False),
        "png-predictor": _page(predicted, b"<< /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 16 >> >>"),
        # the predictor in another object's dictionary (a stream's: searched as its own)
        "parms-by-reference": _page(predicted, b"<< /Filter /FlateDecode /DecodeParms 5 0 R >>",
                                    extra=((b"<< /Predictor 12 /Columns 16 >>", b""),)),
        "columns-by-reference": _page(predicted, b"<< /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 5 0 R >> >>",
                                      extra=((b"16", None),)),
        "flate-twice": _page(zlib.compress(content), b"<< /Filter [/FlateDecode /FlateDecode] >>"),
        # the word "stream" in a string between the predictor and the stream
        "stream-in-a-string": _page(predicted, b"<< /DecodeParms << /Predictor 12 /Columns 16 >> /X (stream\n) "
                                    b"/Filter /FlateDecode >>"),
        # streams that look like an image's are not inflated by the byte search: pypdf tells
        "looks-like-an-image": _page(content, b"<< /Note /Image /Filter /FlateDecode >>"),
        "split": build([(b"<< /Type /Catalog /Pages 2 0 R >>", None), (b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None),
                        (b"<< /Type /Page /Parent 2 0 R /Contents [4 0 R 5 0 R] >>", None),
                        (b"<< /Filter /FlateDecode >>", zlib.compress(content[:half])),
                        (b"<< /Filter /FlateDecode >>", zlib.compress(content[half:]))]),
        "objstm": build([(b"<< /Type /Catalog /Pages 2 0 R >>", None), (b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None),
                         (b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>", None),
                         (b"<< /Filter 5 0 R >>", binascii.hexlify(content) + b">"), (b"/ASCIIHexDecode", None)], objstm=True),
    }
    want = _pdq(_png(im))
    for name, data in docs.items():
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(data)
        got = _members(path)
        assert [(m.name, m.problem) for m in got] == [("page-1/inline-0.png", None)], name
        assert _pdq(got[0].open().read()) == want, name  # type: ignore[union-attr]


def _up(data: bytes, row: int) -> bytes:
    """``data`` in rows of ``row`` bytes, each with PNG predictor 2 (Up), as a writer stores
    a cross-reference stream with /Predictor 12."""
    data += bytes(-len(data) % row)
    return b"".join(b"\x02" + bytes((a - b) % 256 for a, b in zip(data[i:i + row], data[i - row:i] if i else bytes(row), strict=True))
                    for i in range(0, len(data), row))


def test_text_only_documents_are_not_handed_to_pypdf(tmp_path: Path) -> None:
    """The byte search finds no BI operator in ordinary text (words with the letters BI in
    them, compressed or not; a stream with PNG predictors, as cross-reference streams are
    stored): pypdf is not started."""
    text = b"BT /F1 12 Tf 72 700 Td (BIG BIBLE ABI BI-weekly OBI) Tj ET\n" * 40
    rows = _up(b"".join(bytes([1]) + (i * 300).to_bytes(4, "big") + bytes(2) for i in range(50)), 7)
    for objstm in (False, True):
        data = build([(b"<< /Type /Catalog /Pages 2 0 R >>", None), (b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>", None),
                      (b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>", None), (b"<< /Filter /FlateDecode >>", zlib.compress(text)),
                      (b"<< /Type /Page /Parent 2 0 R /Contents 6 0 R >>", None), (b"<< >>", text),
                      (b"<< /Type /XRef /W [1 4 2] /Filter /FlateDecode /DecodeParms << /Columns 7 /Predictor 12 >> >>",
                       zlib.compress(rows))], objstm=objstm)
        path = tmp_path / f"t{objstm}.pdf"
        path.write_bytes(data)
        assert pdfinline._inline_hints(path) == ([], []), objstm
        assert _members(path) == []
        # the same rows holding the operator are found (the predictor undone)
        hidden = data.replace(zlib.compress(rows), zlib.compress(_up(b"q BI /W 1 /H 1 ID x EI Q " * 3, 7)))
        path.write_bytes(hidden)
        assert pdfinline._inline_hints(path)[0], objstm


_GOOD = _page(_inline(b"/W 6 /H 4 /CS /RGB /BPC 8 /F /Fl", zlib.compress(pattern("waves", (6, 4)).tobytes()))
              + _inline(b"/W 4 /H 4 /CS /G /BPC 8 /F /AHx", binascii.hexlify(bytes(range(16))) + b">")
              + _inline(b"/W 4 /H 2 /CS /G /BPC 8", bytes(range(8))), encode=False)


def _read_all(path: Path) -> None:
    try:
        for m in pdf_image_members(path, Limits(), set()):
            assert m.problem or m.open is not None
            if m.open is not None:
                m.open().read()
    except ArchiveError:
        pass


def test_mutated_inline_images_raise_nothing_but_assays_own_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A loop of mutations (bytes replaced, cut, inserted) of a page of three inline
    images, its content stream left unencoded so that mutations land in the operators;
    nothing pypdf says reaches the terminal."""
    rnd = random.Random(20261208)
    start = _GOOD.index(b"stream\n") + 7
    end = _GOOD.index(b"endstream")
    path = tmp_path / "m.pdf"
    for _ in range(400):
        data = bytearray(_GOOD)
        for _ in range(rnd.randint(1, 4)):
            at = rnd.randint(start, end) if rnd.random() < 0.8 else rnd.randint(0, len(data))
            new = bytes(rnd.choice((0x20, 0x0A, 0x2F, 0x45, 0x49, rnd.getrandbits(8))) for _ in range(rnd.randint(0, 4)))
            data[at:at + rnd.randint(0, 4)] = new
        path.write_bytes(bytes(data))
        _read_all(path)
    out, err = capsys.readouterr()
    assert not out and not err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(_GOOD) - 1), st.binary(min_size=0, max_size=8), st.integers(0, 8)),
                min_size=1, max_size=6))
def test_fuzzed_inline_pdfs_raise_nothing_but_assays_own_error(tmp_path: Path, edits: list[tuple[int, bytes, int]]) -> None:
    data = bytearray(_GOOD)
    for at, new, cut in edits:
        data[at:at + cut] = new
    path = tmp_path / "f.pdf"
    path.write_bytes(bytes(data))
    _read_all(path)
