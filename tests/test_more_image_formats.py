"""A known picture re-encoded into a format assay did not decode was invisible to PDQ
(only its new, unknown MD5 was left): JPEG 2000 (a JP2 file or a bare codestream),
Photoshop PSD, QOI, DDS, ICNS, netpbm (PBM/PGM/PPM), TGA and PCX are now decoded, by
Pillow's own readers, and match the original. Sniffing stays strict: a text that starts like a netpbm
header, or a PSB (version 2), is not taken for an image."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from assay.errors import AssayError
from assay.media.hashes import hash_image_bytes
from assay.media.pdq import hamming
from assay.sniff import sniff_bytes

WRITTEN = {"jp2": "JPEG2000", "j2k": "JPEG2000", "ppm": "PPM", "pgm": "PPM", "qoi": "QOI", "dds": "DDS",
           "icns": "ICNS", "tga": "TGA", "pcx": "PCX"}


def picture(seed: int = 4, size: tuple[int, int] = (320, 256)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)


def psd(im: Image.Image) -> bytes:
    """A Photoshop file (version 1, RGB, 8 bits, the composite image uncompressed), written
    from Adobe's published file-format specification: Pillow reads PSD but cannot write it."""
    w, h = im.size
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3)
    planes = np.asarray(im.convert("RGB")).transpose(2, 0, 1).tobytes()
    return head + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + planes


def encoded(im: Image.Image, ext: str) -> bytes:
    if ext == "psd":
        return psd(im)
    src = im.convert("L") if ext == "pgm" else im.convert("RGBA") if ext == "dds" else im
    if ext == "icns":
        src = im.resize((256, 256))
    buf = io.BytesIO()
    src.save(buf, WRITTEN[ext])
    return buf.getvalue()


@pytest.mark.parametrize("ext", [*WRITTEN, "psd"])
def test_reencoded_copies_decode_and_keep_their_pdq(ext: str) -> None:
    im = picture()
    ref = hash_image_bytes(encoded(im.resize((256, 256)) if ext == "icns" else im, "ppm"))  # lossless
    data = encoded(im, ext)
    fmt = sniff_bytes(data[:512], len(data)).format
    assert fmt == {"j2k": "jp2", "pgm": "ppm"}.get(ext, ext)
    got = hash_image_bytes(data, path=f"x.{ext}")
    assert got.quality >= 50
    assert hamming(got.pdq, ref.pdq) <= 16, (ext, hamming(got.pdq, ref.pdq))


def test_a_scan_matches_a_known_picture_in_every_new_format(tmp_path: Path) -> None:
    im = picture(7)
    db = str(tmp_path / "b.sqlite3")
    im.save(tmp_path / "known.png")
    run = [sys.executable, "-m", "assay", "--db", db]
    assert subprocess.run([*run, "bank", "create", "known", "--create"], capture_output=True).returncode == 0
    assert subprocess.run([*run, "bank", "add", "known", "--content-id", "k", "--image", str(tmp_path / "known.png"),
                           "--no-variants"], capture_output=True).returncode == 0
    case = tmp_path / "case"
    case.mkdir()
    exts = [*WRITTEN, "psd"]
    try:
        (case / "copy-jxl.dat").write_bytes(_jxl(im))
        exts.append("jxl")
    except pytest.skip.Exception:  # the optional JPEG XL reader is not installed
        pass
    for ext in exts:
        if ext != "jxl":
            (case / f"copy-{ext}.dat").write_bytes(encoded(im, ext))  # names say nothing
    (case / "notes.txt").write_bytes(b"P6 is the sixth point of the plan\n1 2\n")
    out = tmp_path / "r.jsonl"
    r = subprocess.run([*run, "scan", str(case), "-o", str(out), "--workers", "1"], capture_output=True, text=True,
                       timeout=300)
    assert r.stderr == "" and r.returncode in (0, 3), r.stderr
    recs = {Path(x["path"]).name: x for x in map(json.loads, out.read_text().splitlines())
            if x.get("schema") == "assay.file/1"}
    for ext in exts:
        rec = recs[f"copy-{ext}.dat"]
        assert rec["kind"] == "image" and not rec.get("errors"), (ext, rec.get("errors"))
        assert "k" in {m["content_id"] for m in rec["matches"] if m["signal_type"] == "pdq"}, ext
    assert recs["notes.txt"]["kind"] == "other"


def test_sniffing_stays_strict() -> None:
    for text in (b"P6 is the plan\n", b"P5\n# just a comment\n", b"P3 x y\n", b"P6\n0 10\n"):
        assert sniff_bytes(text, len(text)).kind != "image", text
    assert sniff_bytes(b"P6\n# made by hand\n 12 7\n255\n" + bytes(252), 280).format == "ppm"
    psb = b"8BPS\x00\x02" + bytes(40)
    assert sniff_bytes(psb, len(psb)).format != "psd"
    icns = b"icns\x00\x00\x10\x00" + bytes(40)
    assert sniff_bytes(icns, 48).format != "icns"  # its declared length is not the file's


_SEEDS = {ext: encoded(picture(2, (64, 48)), ext) for ext in [*WRITTEN, "psd"] if ext != "icns"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_SEEDS)), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                  min_size=1, max_size=6), st.integers(0, 10**6))
def test_fuzzed_files_give_a_hash_or_an_assay_error(ext: str, flips, cut: int) -> None:
    data = bytearray(_SEEDS[ext])
    for pos, byte in flips:
        data[pos % len(data)] = byte
    data = data[: max(16, len(data) - cut % 64)]
    try:
        hash_image_bytes(bytes(data), path=f"fuzz.{ext}")
    except AssayError:
        pass


# -- JPEG XL (optional reader: pillow-jxl-plugin) -----------------------------------------


def _jxl(im: Image.Image, **kw: object) -> bytes:
    pytest.importorskip("pillow_jxl")
    buf = io.BytesIO()
    im.save(buf, "JXL", **kw)
    return buf.getvalue()


def _bits(fields: list[tuple[int, int]]) -> bytes:
    """(value, bit count) fields packed least significant bit first, as JPEG XL does."""
    acc = n = 0
    for value, width in fields:
        acc |= value << n
        n += width
    return acc.to_bytes((n + 7) // 8, "little")


@pytest.mark.parametrize("kw", [{}, {"lossless": True}], ids=["lossy", "lossless"])
def test_jpeg_xl_copies_match(kw: dict) -> None:
    im = picture(9)
    ref = hash_image_bytes(encoded(im, "ppm"))
    got = hash_image_bytes(_jxl(im, **kw), path="x.jxl")
    assert hamming(got.pdq, ref.pdq) <= 16


def test_jpeg_xl_sizes_are_read_from_the_header() -> None:
    from assay.media.jxl import jxl_size

    for size in [(8, 8), (3, 7), (64, 48), (100, 100), (513, 257), (1920, 1080), (1200, 1000), (96, 64)]:
        data = _jxl(Image.new("RGB", size, (9, 99, 199)))
        assert jxl_size(data) == size, size
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == size
    # the ISOBMFF container: the codestream in a jxlc box, or split over jxlp boxes
    cs = _jxl(picture(3))
    head = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + struct.pack(">I4s4sI4s", 20, b"ftyp", b"jxl ", 0, b"jxl ")
    jxlc = head + struct.pack(">I4s", 8 + len(cs), b"jxlc") + cs
    jxlp = head + b"".join(struct.pack(">I4sI", 12 + len(part), b"jxlp", i | (0x80000000 if i else 0)) + part
                           for i, part in enumerate((cs[:10], cs[10:])))
    for boxed in (jxlc, jxlp):
        assert sniff_bytes(boxed[:64], len(boxed)).format == "jxl" and jxl_size(boxed) == (320, 256)
    with Image.open(io.BytesIO(jxlc)) as im:
        assert im.size == (320, 256)
    assert jxl_size(b"\xff\x0a") is None and jxl_size(b"\x00\x00\x00\x0cJXL \r\n\x87\n") is None


def test_a_jpeg_xl_bomb_is_refused_before_it_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pillow_jxl")
    from pillow_jxl import JpegXLImagePlugin

    from assay.errors import TooLarge

    def never(*a: object, **k: object) -> object:
        raise AssertionError("decoded")

    monkeypatch.setattr(JpegXLImagePlugin, "Decoder", never)
    # SizeHeader: not small, height-1 in 30 bits (selector 3), ratio 0, width-1 likewise
    header = b"\xff\x0a" + _bits([(0, 1), (3, 2), (99_999, 30), (0, 3), (3, 2), (99_999, 30)]) + bytes(64)
    with pytest.raises(TooLarge, match="100000x100000"):
        hash_image_bytes(header, path="bomb.jxl")


def test_without_the_jpeg_xl_reader_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from assay import sniff
    from assay.errors import UnsupportedFormat

    monkeypatch.setitem(sniff._optional_readers, "jxl", False)
    data = b"\xff\x0a" + _bits([(1, 1), (7, 5), (1, 3)]) + bytes(32)
    with pytest.raises(UnsupportedFormat) as e:
        hash_image_bytes(data, path="x.jxl")
    assert "pillow-jxl-plugin" in str(e.value)


def test_the_service_never_decodes_jpeg_xl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The JPEG XL reader decodes the whole image on open, before the service's pixel budget
    could weigh it: neither the upload probe nor the hashing route opens one."""
    pytest.importorskip("pillow_jxl")
    from pillow_jxl import JpegXLImagePlugin

    from assay.errors import UnsupportedFormat
    from assay.media.hashes import DEFAULT_LIMITS
    from assay.service.probe import declared_pixels
    from assay.service.uploads import refuse_unbudgeted

    def never(*a: object, **k: object) -> object:
        raise AssertionError("decoded")

    data = _jxl(picture(5))
    monkeypatch.setattr(JpegXLImagePlugin, "Decoder", never)
    assert declared_pixels(data, "x.jxl", DEFAULT_LIMITS) == "other"
    with pytest.raises(UnsupportedFormat, match="not decoded by the service") as e:
        refuse_unbudgeted(data, "x.jxl")
    assert "assay hash" in (e.value.hint or "")
    refuse_unbudgeted(encoded(picture(5), "ppm"), "x.ppm")  # other formats go on to the budget


def _tga(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "TGA", **kw)
    return buf.getvalue()


def test_tga_and_pcx_as_other_writers_write_them() -> None:
    """TGA and PCX have no magic number: their headers are told by fields that agree with
    each other and the file's size, whatever else a writer puts in (an image ID, a TGA 2.0
    footer, a colour map, run-length coding, top-down rows). A TGA whose rows run the
    other way from its origin bit (ImageMagick 6 writes the top row first under a
    bottom-up bit: every viewer that follows the bit shows it upside down) is queried
    with its rows flipped too (variant ``rows-flipped``, a whole picture)."""
    im = picture(9)
    ref = hash_image_bytes(encoded(im, "ppm"), variants=False).pdq
    plain = _tga(im)
    assert plain[17] & 0x20 == 0  # Pillow writes bottom-up rows under a bottom-up bit
    w, h = im.size
    top_first = plain[:18] + np.asarray(im.convert("RGB"))[:, :, ::-1].tobytes()  # as ImageMagick 6
    footer = b"\x00" * 8 + b"TRUEVISION-XFILE.\x00"
    cases = {
        "plain": plain, "rle": _tga(im, compression="tga_rle"), "id": _tga(im, id_section=b"made by a test"),
        "top-left": _tga(im, orientation=1), "palette": _tga(im.convert("P")), "grey": _tga(im.convert("L")),
        "rgba": _tga(im.convert("RGBA")), "v2-footer": plain + footer, "rows-top-first": top_first,
    }
    for name, data in cases.items():
        assert sniff_bytes(data[:512], len(data)).format == "tga", name
        got = hash_image_bytes(data, path=f"{name}.tga")
        flipped = dict(got.regions or {}).get("rows-flipped")
        assert flipped is not None, name
        best = min(hamming(got.pdq, ref), hamming(flipped[0], ref))
        assert best <= 16, (name, best)
        if name == "rows-top-first":
            assert hamming(got.pdq, ref) > 64 and hamming(flipped[0], ref) <= 8  # found only the other way up
    assert (w, h) == im.size
    for mode in ("RGB", "P", "L", "1"):
        buf = io.BytesIO()
        im.convert(mode).save(buf, "PCX")
        data = buf.getvalue()
        assert sniff_bytes(data[:512], len(data)).format == "pcx", mode
        got = hash_image_bytes(data, path=f"x-{mode}.pcx")
        assert got.regions is None or "rows-flipped" not in got.regions  # PCX rows run one way
        if mode != "1":
            assert hamming(got.pdq, ref) <= 16, (mode, hamming(got.pdq, ref))


def test_tga_and_pcx_sniffing_is_strict() -> None:
    """No magic number, so no false start: random heads, text, and a TGA or PCX header
    whose fields disagree (a colour map declared without a mapped type, pixels that do not
    fit in the file, a depth Pillow does not read, a PCX stride shorter than a row) are
    not images."""
    rng = np.random.default_rng(3)
    heads = rng.integers(0, 256, (20_000, 128), dtype=np.uint8)
    heads[::2, 1] = 0  # half of them with TGA's colour-map byte as it must be
    heads[1::2, 0] = 0x0A  # the other half with PCX's first byte
    found = [sniff_bytes(bytes(hd), 1 << 20).format for hd in heads]
    assert not {"tga", "pcx"} & set(found)
    good = _tga(picture(2, (64, 48)))
    assert sniff_bytes(good, len(good)).format == "tga"
    for pos, value in ((1, 1), (2, 4), (16, 12), (17, 0x40), (5, 1), (12, 0)):
        bad = bytearray(good)
        bad[pos] = value
        assert sniff_bytes(bytes(bad), len(bad)).format != "tga", (pos, value)
    assert sniff_bytes(good, len(good) - 100).format != "tga"  # the pixels would not fit
    buf = io.BytesIO()
    picture(2, (64, 48)).save(buf, "PCX")
    pcx = buf.getvalue()
    assert sniff_bytes(pcx, len(pcx)).format == "pcx"
    for pos, value in ((1, 1), (2, 0), (3, 3), (64, 7), (65, 2), (66, 10)):
        bad = bytearray(pcx)
        bad[pos] = value
        assert sniff_bytes(bytes(bad), len(bad)).format != "pcx", (pos, value)
    for text in (b"\n\n# heading\n" * 20, b"\x00\x00\x02" + b" " * 200):
        assert sniff_bytes(text, len(text)).kind != "image"
