"""ImageContext: bounded container parsing (PNG chunks, JPEG segments, WebP RIFF,
EXIF, UserComment, XMP) on images built here with Pillow and on hand-broken bytes."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from assay.config import Limits
from assay.errors import DecodeError, InputError, TooLarge
from assay.provenance.context import (
    TAG_MAKE,
    TAG_MODEL,
    TAG_USER_COMMENT,
    ImageContext,
    decode_user_comment,
    is_comfyui_exif_value,
)

P = Path("sample.img")


def ctx_of(data: bytes, fmt: str, limits: Limits | None = None) -> ImageContext:
    return ImageContext(P, data, fmt, limits or Limits())


def png(info: PngInfo | None = None, size: tuple[int, int] = (4, 4), **kw: object) -> bytes:
    bio = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(bio, "PNG", pnginfo=info, **kw)
    return bio.getvalue()


def chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def insert_before_iend(data: bytes, *chunks: bytes) -> bytes:
    i = data.rindex(b"IEND") - 4
    return data[:i] + b"".join(chunks) + data[i:]


def exif_bytes(ifd0: dict[int, object], exif_ifd: dict[int, object] | None = None,
               gps: dict[int, object] | None = None) -> bytes:  # fmt: skip
    e = Image.Exif()
    for k, v in ifd0.items():
        e[k] = v
    for k, v in (exif_ifd or {}).items():
        e.get_ifd(0x8769)[k] = v
    for k, v in (gps or {}).items():
        e.get_ifd(0x8825)[k] = v
    return e.tobytes()


# -- PNG -----------------------------------------------------------------------


def test_png_text_chunks_of_all_three_kinds_decode_in_order() -> None:
    info = PngInfo()
    info.add_text("parameters", "plain latin-1 é")
    info.add_text("zipped", "compressed " * 50, zip=True)
    info.add_itxt("intl", "ünïcödé ✓", lang="fr", zip=False)
    info.add_itxt("intl-z", "zipped ✓ " * 40, zip=True)
    ctx = ctx_of(png(info), "png")
    chunks = ctx.png_text_chunks()
    assert [(c.key, c.chunk_type) for c in chunks] == [
        ("parameters", "tEXt"), ("zipped", "zTXt"), ("intl", "iTXt"), ("intl-z", "iTXt"),
    ]  # fmt: skip
    assert ctx.png_text() == [
        ("parameters", "plain latin-1 é"), ("zipped", "compressed " * 50),
        ("intl", "ünïcödé ✓"), ("intl-z", "zipped ✓ " * 40),
    ]  # fmt: skip
    assert chunks[2].language == "fr"
    assert all(c.crc_ok and not c.capped for c in chunks)
    assert ctx.problems == []


def test_png_crc_mismatch_keeps_text_and_reports() -> None:
    info = PngInfo()
    info.add_text("parameters", "hello world")
    data = bytearray(png(info))
    i = data.index(b"hello")
    data[i] = ord("j")  # text changed after the CRC was computed
    ctx = ctx_of(bytes(data), "png")
    [t] = ctx.png_text_chunks()
    assert t.text == "jello world"
    assert not t.crc_ok
    assert any("CRC mismatch" in p and "tEXt" in p for p in ctx.problems)


def test_png_truncated_chunk_stops_walk_but_keeps_earlier_chunks() -> None:
    info = PngInfo()
    info.add_text("first", "kept")
    info.add_text("second", "x" * 200)
    data = png(info)
    cut = data.index(b"second") + 50
    ctx = ctx_of(data[:cut], "png")
    assert ctx.png_text() == [("first", "kept")]
    assert any("truncated" in p for p in ctx.problems)


def test_png_declared_length_beyond_file_is_not_trusted() -> None:
    data = png()
    bad = insert_before_iend(data, struct.pack(">I", 0x7FFFFFF0) + b"tEXt" + b"k\x00v")
    ctx = ctx_of(bad, "png")
    types = [c.type for c in ctx.png_chunks()]
    assert "tEXt" not in types and "IHDR" in types
    assert any("declares" in p for p in ctx.problems)


def test_png_without_signature_is_a_clear_error() -> None:
    ctx = ctx_of(b"\x89PNX" + b"\x00" * 40, "png")
    with pytest.raises(DecodeError, match="signature"):
        ctx.png_chunks()
    with pytest.raises(DecodeError):  # memoized error, same answer twice
        ctx.png_text()


def test_gigantic_text_chunk_is_capped_and_reported() -> None:
    info = PngInfo()
    info.add_text("parameters", "A" * 5000)
    ctx = ctx_of(png(info), "png", Limits(max_text_chunk=1000))
    [t] = ctx.png_text_chunks()
    assert t.capped and t.text == "A" * 1000
    assert any("capped" in p for p in ctx.problems)


def test_zlib_bomb_in_ztxt_inflates_only_up_to_the_cap() -> None:
    bomb = zlib.compress(b"\x00" * (16 * 1024 * 1024), 9)  # 16 MiB in ~16 KiB
    data = insert_before_iend(png(), chunk(b"zTXt", b"bomb\x00\x00" + bomb))
    ctx = ctx_of(data, "png", Limits(max_text_chunk=4096))
    [t] = ctx.png_text_chunks()
    assert t.capped and len(t.text) == 4096


def test_corrupt_and_truncated_zlib_streams_are_skipped_with_a_reason() -> None:
    good = zlib.compress(b"fine text")
    data = insert_before_iend(
        png(),
        chunk(b"zTXt", b"broken\x00\x00" + b"\x78\x9c\xff\xff\xff\xff"),
        chunk(b"zTXt", b"short\x00\x00" + good[: len(good) // 2]),
        chunk(b"zTXt", b"ok\x00\x00" + good),
    )
    ctx = ctx_of(data, "png")
    assert ctx.png_text() == [("ok", "fine text")]
    assert sum("skipped" in p for p in ctx.problems) == 2


def test_malformed_text_chunk_headers_are_skipped() -> None:
    data = insert_before_iend(
        png(),
        chunk(b"tEXt", b"no-separator"),
        chunk(b"iTXt", b"key\x00\x07\x00en\x00\x00text"),  # invalid compression flag
        chunk(b"tEXt", b"good\x00value"),
    )
    ctx = ctx_of(data, "png")
    assert ctx.png_text() == [("good", "value")]
    assert sum("skipped" in p for p in ctx.problems) == 2


def test_png_xmp_and_exif_chunks() -> None:
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    ctx = ctx_of(png(info, exif=exif_bytes({TAG_MAKE: "Maker"})), "png")
    assert ctx.xmp() == xmp.encode()
    assert ctx.exif()[TAG_MAKE] == "Maker"


# -- JPEG / WebP ---------------------------------------------------------------


def jpeg(**kw: object) -> bytes:
    bio = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 100, 50)).save(bio, "JPEG", **kw)
    return bio.getvalue()


def test_jpeg_segments_exif_and_xmp() -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    data = jpeg(exif=exif_bytes({TAG_MAKE: "Cam", TAG_MODEL: "X1"}), xmp=xmp)
    ctx = ctx_of(data, "jpeg")
    names = [s.name for s in ctx.jpeg_segments()]
    assert names.count("APP1") == 2 and "DQT" in names
    assert ctx.exif()[TAG_MAKE] == "Cam" and ctx.exif()[TAG_MODEL] == "X1"
    assert ctx.xmp() == xmp
    assert ctx.make_model_is_workflow() is False


def test_jpeg_app11_segments_are_exposed() -> None:
    data = jpeg()
    seg = b"\xff\xeb" + struct.pack(">H", 2 + 8) + b"JP\x00\x01abcd"
    ctx = ctx_of(data[:2] + seg + data[2:], "jpeg")
    app11 = [s for s in ctx.jpeg_segments() if s.name == "APP11"]
    assert len(app11) == 1 and app11[0].data == b"JP\x00\x01abcd"


def test_jpeg_truncated_segment_is_reported() -> None:
    data = jpeg(exif=exif_bytes({TAG_MAKE: "Cam"}))
    i = data.index(b"Exif")
    ctx = ctx_of(data[: i + 10], "jpeg")
    assert all(s.marker != 0xE1 for s in ctx.jpeg_segments())
    assert ctx.exif() == {}
    assert any("truncated" in p for p in ctx.problems)


def test_webp_chunks_exif_and_xmp() -> None:
    bio = io.BytesIO()
    xmp = b"<x:xmpmeta/>"
    Image.new("RGB", (4, 4)).save(bio, "WEBP", lossless=True,
                                  exif=exif_bytes({TAG_MODEL: "M"}), xmp=xmp)  # fmt: skip
    ctx = ctx_of(bio.getvalue(), "webp")
    fourccs = [c.fourcc for c in ctx.webp_chunks()]
    assert "EXIF" in fourccs and "XMP " in fourccs and "VP8L" in fourccs
    assert ctx.exif()[TAG_MODEL] == "M"
    assert ctx.xmp() == xmp


def test_webp_truncated_chunk_is_reported() -> None:
    body = b"WEBP" + b"EXIF" + struct.pack("<I", 1000) + b"short"
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    ctx = ctx_of(data, "webp")
    assert ctx.webp_chunks() == []
    assert any("truncated" in p for p in ctx.problems)


# -- EXIF ----------------------------------------------------------------------


def test_exif_ifd0_exif_ifd_and_gps_presence() -> None:
    raw = exif_bytes({TAG_MAKE: "Canon", TAG_MODEL: "EOS"}, {0x9003: "2024:01:02 03:04:05"},
                     {1: "N"})  # fmt: skip
    ctx = ctx_of(jpeg(exif=raw), "jpeg")
    tags = ctx.exif()
    assert tags[TAG_MAKE] == "Canon" and tags[0x9003] == "2024:01:02 03:04:05"
    assert ctx.gps_present()
    no_gps = ctx_of(jpeg(exif=exif_bytes({TAG_MAKE: "Canon"})), "jpeg")
    assert not no_gps.gps_present()


def tiff(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0) -> bytes:
    """Little-endian TIFF with IFD0 at offset 8; entry = (tag, type, count, 4-byte value)."""
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + value
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", next_ifd)


def with_exif_segment(raw: bytes) -> bytes:
    data = jpeg()
    seg = b"Exif\x00\x00" + raw
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + data[2:]


def test_exif_ifd_loop_is_a_clear_error_not_a_hang() -> None:
    # The Exif IFD pointer points back at IFD0.
    raw = tiff([(0x8769, 4, 1, struct.pack("<I", 8))])
    ctx = ctx_of(with_exif_segment(raw), "jpeg")
    with pytest.raises(DecodeError, match="loop") as info:
        ctx.exif()
    assert str(P) in str(info.value)


def test_exif_offset_outside_the_block_is_a_clear_error() -> None:
    raw = tiff([(0x8769, 4, 1, struct.pack("<I", 5000))])
    with pytest.raises(DecodeError, match="outside"):
        ctx_of(with_exif_segment(raw), "jpeg").exif()
    # A value pointer past the end (ASCII of 100 bytes at offset 4000).
    raw = tiff([(TAG_MAKE, 2, 100, struct.pack("<I", 4000))])
    with pytest.raises(DecodeError, match="outside"):
        ctx_of(with_exif_segment(raw), "jpeg").exif()


def test_exif_bad_header_and_absurd_entry_count() -> None:
    with pytest.raises(DecodeError, match="TIFF header"):
        ctx_of(with_exif_segment(b"XX*\x00\x08\x00\x00\x00"), "jpeg").exif()
    raw = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 60000)
    with pytest.raises(DecodeError, match="entries"):
        ctx_of(with_exif_segment(raw), "jpeg").exif()


# -- UserComment ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text", "encoding"),
    [
        (b"UNICODE\x00" + "héllo ✓".encode("utf-16-be"), "héllo ✓", "utf-16-be"),
        (b"UNICODE\x00" + "héllo ✓".encode("utf-16-le"), "héllo ✓", "utf-16-le"),
        (b"UNICODE\x00\xff\xfe" + "bom le".encode("utf-16-le"), "bom le", "utf-16-le"),
        (b"UNICODE\x00\xfe\xff" + "bom be".encode("utf-16-be"), "bom be", "utf-16-be"),
        (b"ASCII\x00\x00\x00plain text\x00", "plain text", "ascii"),
        (b"\x00" * 8 + "utf8 ✓".encode(), "utf8 ✓", "undefined"),
    ],
)
def test_user_comment_codes(raw: bytes, text: str, encoding: str) -> None:
    got = decode_user_comment(raw)
    assert (got.text, got.encoding, got.problems) == (text, encoding, ())


def test_user_comment_invalid_utf16_is_replaced_and_reported() -> None:
    # A lone high surrogate (D800) in big-endian UTF-16.
    raw = b"UNICODE\x00" + "ab".encode("utf-16-be") + b"\xd8\x00" + "cd".encode("utf-16-be")
    got = decode_user_comment(raw)
    assert got.text.startswith("ab") and got.text.endswith("cd") and "\ufffd" in got.text
    assert got.problems
    ctx = ctx_of(jpeg(exif=exif_bytes({}, {TAG_USER_COMMENT: raw})), "jpeg")
    assert "\ufffd" in (ctx.user_comment() or "")
    assert any("UserComment" in p for p in ctx.problems)


def test_user_comment_through_exif_in_each_container() -> None:
    raw = b"UNICODE\x00" + "Steps: 20".encode("utf-16-be")
    ex = exif_bytes({}, {TAG_USER_COMMENT: raw})
    bio = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bio, "WEBP", lossless=True, exif=ex)
    for data, fmt in ((jpeg(exif=ex), "jpeg"), (bio.getvalue(), "webp"), (png(exif=ex), "png")):
        assert ctx_of(data, fmt).user_comment() == "Steps: 20"


# -- pixels, ComfyUI helper ------------------------------------------------------


def test_pil_is_lazy_and_bad_files_are_clear_errors() -> None:
    ctx = ctx_of(png(size=(3, 2)), "png")
    im = ctx.pil()
    assert im.size == (3, 2) and ctx.pil() is im
    assert ctx.pixels().shape == (2, 3, 3)
    with pytest.raises(DecodeError, match="cannot open"):
        ctx_of(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "png").pil()
    with pytest.raises(TooLarge):
        ctx_of(png(size=(50, 50)), "png", Limits(max_pixels=100)).pil()


def test_from_path_reads_and_sniffs(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(png())
    ctx = ImageContext.from_path(f)
    assert ctx.format == "png" and ctx.path == f
    with pytest.raises(TooLarge):
        ImageContext.from_path(f, Limits(max_image_bytes=10))
    with pytest.raises(InputError, match="cannot read"):
        ImageContext.from_path(tmp_path / "missing.png")


def test_comfyui_make_model_payloads_are_recognised() -> None:
    assert is_comfyui_exif_value('workflow:{"nodes": []}')
    assert is_comfyui_exif_value('Prompt: {"3": {}}')
    assert not is_comfyui_exif_value("Canon")
    assert not is_comfyui_exif_value("prompt: not json")
    raw = exif_bytes({TAG_MAKE: 'workflow:{"nodes": []}', TAG_MODEL: 'prompt:{"1": {}}'})
    assert ctx_of(jpeg(exif=raw), "jpeg").make_model_is_workflow()


# -- fuzzing ---------------------------------------------------------------------

_BASE_PNG = png(
    (lambda i: (i.add_text("parameters", "a, Steps: 1, Seed: 2, Sampler: x", zip=True), i)[1])(
        PngInfo()
    ),
    exif=exif_bytes({TAG_MAKE: "m"}, {TAG_USER_COMMENT: b"ASCII\x00\x00\x00hi"}),
)
_BASE_JPEG = jpeg(exif=exif_bytes({TAG_MAKE: "m"}, {TAG_USER_COMMENT: b"ASCII\x00\x00\x00hi"}))


_READERS = ("png_text_chunks", "png_chunks", "jpeg_segments", "webp_chunks", "exif", "gps_present",
            "user_comment", "xmp", "make_model_is_workflow")


def _read_all(ctx: ImageContext) -> dict[str, object]:
    """Every reader's answer, or the error it gave: (type, reason)."""
    out: dict[str, object] = {}
    for name in _READERS:
        try:
            out[name] = getattr(ctx, name)()
        except InputError as exc:
            # One readable line that names the file and says why.
            assert exc.path == str(ctx.path) and str(exc).startswith(f"{ctx.path}: {exc.reason}"), name
            assert exc.reason and exc.reason.isprintable(), exc.reason
            out[name] = (type(exc), exc.reason)
    return out


def exercise(ctx: ImageContext) -> None:
    got = _read_all(ctx)
    size = len(ctx.data)
    # Whatever a reader found lies inside the file and within the limits.
    for c in got["png_chunks"] if isinstance(got["png_chunks"], list) else []:
        assert 0 <= c.offset and c.offset + c.length <= size
    for t in got["png_text_chunks"] if isinstance(got["png_text_chunks"], list) else []:
        assert 0 <= t.offset < size and len(t.text) <= ctx.limits.max_text_chunk
    for seg in got["jpeg_segments"] if isinstance(got["jpeg_segments"], list) else []:
        assert 0 <= seg.offset and seg.offset + len(seg.data) <= size
        assert ctx.data[seg.offset:seg.offset + len(seg.data)] == seg.data
    for ch in got["webp_chunks"] if isinstance(got["webp_chunks"], list) else []:
        assert 0 <= ch.offset and ch.offset + len(ch.data) <= size
        assert ctx.data[ch.offset:ch.offset + len(ch.data)] == ch.data
    # The same bytes read again, from scratch, give the same answers.
    assert _read_all(ImageContext(ctx.path, ctx.data, ctx.format, ctx.limits)) == got


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([(_BASE_PNG, "png"), (_BASE_JPEG, "jpeg")]),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
def test_fuzz_mutated_files_never_raise_unexpectedly(
    base: tuple[bytes, str], flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base[0])
    for pos, val in flips:
        data[pos % len(data)] = val
    exercise(ctx_of(bytes(data[: max(8, len(data) - cut % len(data))]), base[1]))


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x01\x00\x00WEBP"]),
    body=st.binary(max_size=400),
)
def test_fuzz_random_bodies_never_raise_unexpectedly(prefix: bytes, body: bytes) -> None:
    fmt = {b"\x89": "png", b"\xff": "jpeg", b"R": "webp"}[prefix[:1]]
    exercise(ctx_of(prefix + body, fmt))


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300), order=st.sampled_from([None, "little", "big"]))
def test_fuzz_user_comment_decoding_is_total(raw: bytes, order: str | None) -> None:
    got = decode_user_comment(raw, order)
    assert isinstance(got.text, str)


_entry = st.tuples(
    st.sampled_from([0x8769, 0x8825, TAG_MAKE, TAG_MODEL, TAG_USER_COMMENT, 0x0112]),
    st.integers(0, 14),
    st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1)),
    st.one_of(st.binary(min_size=4, max_size=4), st.integers(0, 400).map(lambda n: struct.pack("<I", n))),
)


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(_entry, max_size=6), tail=st.binary(max_size=200))
def test_fuzz_exif_ifds_with_arbitrary_offsets(
    entries: list[tuple[int, int, int, bytes]], tail: bytes
) -> None:
    ctx = ctx_of(with_exif_segment(tiff(entries) + tail), "jpeg")
    try:
        tags = ctx.exif()
    except DecodeError as exc:
        assert "EXIF" in str(exc) and str(P) in str(exc)
        return
    assert isinstance(tags, dict)
    exercise(ctx)
