"""The direct decoders of media/codecs.py (still WebP through libwebp's simple API, PNG
inflated by ISA-L) give what Pillow's own decode gives: the same hashes in every mode, the
same image handed to later analyses (pixels, mode, info), the same errors on damaged files.
Each case is hashed twice, once with the direct decoders and once with them switched off,
and checks that the direct decoder did the work where it should (and not where it must not).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from PIL import Image

from assay.errors import AssayError
from assay.media import codecs, decode
from assay.media.hashes import SHARED_IMAGE, hash_image_bytes

# The shared image's pixels are compared too, so these few settings suffice: the fast
# mode's reduced plane, the reference mode's full pixels, EXIF transposition, and (on a
# few cases: ~50 hashes each) the query variants, from the reduced and the finer planes.
SETTINGS: list[dict[str, Any]] = [
    {"variants": False},
    {"mode": "reference", "variants": False, "exif_transpose": True, "dihedral": True},
]
WITH_VARIANTS = {"variants": True, "exif_transpose": True}


def pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Benign content: a smooth random field, a gradient and light noise (RGB uint8)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    y, x = np.mgrid[0:h, 0:w]
    noise = rng.normal(0.0, 6.0, (h, w, 3))
    return (field + (x * 30.0 / w)[..., None] + noise).clip(0, 255).astype(np.uint8)


def alpha(w: int, h: int) -> np.ndarray:
    a = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
    a[: h // 5] = 0
    return a


def save(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(w: int, h: int, depth: int, colour: int, rows: bytes, *, before: bytes = b"", after: bytes = b"",
        split: int | None = None, level: int = 6) -> bytes:
    """A PNG written by hand: ``rows`` already filtered (a filter byte before each row), the
    compressed stream cut into IDAT chunks of ``split`` bytes, chunks ``before`` and ``after``
    the image data."""
    stream = zlib.compress(rows, level)
    split = split or len(stream)
    idats = b"".join(chunk(b"IDAT", stream[i:i + split]) for i in range(0, len(stream), split))
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + before + idats + after + chunk(b"IEND", b"")


def unfiltered(arr: np.ndarray) -> bytes:
    """Rows with filter 0 (None) before each: what ``png`` compresses."""
    rows = arr.reshape(arr.shape[0], -1).view(np.uint8)
    return np.hstack([np.zeros((rows.shape[0], 1), np.uint8), rows]).tobytes()


def exif_chunk(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return chunk(b"eXIf", exif.tobytes())


@pytest.fixture
def direct_used(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The formats the direct decoders decoded (returned pixels without falling back)."""
    used: list[str] = []
    webp_image, png_decode = codecs.webp_image, codecs._IsalPngDecoder.decode

    def webp_spy(*args: Any) -> Image.Image | None:
        im = webp_image(*args)
        if im is not None:
            used.append("webp")
        return im

    def png_spy(self: codecs._IsalPngDecoder, buffer: Any) -> tuple[int, int]:
        out = png_decode(self, buffer)
        used.append("png")
        return out

    monkeypatch.setattr(codecs, "webp_image", webp_spy)
    monkeypatch.setattr(codecs._IsalPngDecoder, "decode", png_spy)
    return used


def outcome(data: bytes, **kw: Any) -> Any:
    """Everything hashing gives: the hashes, the shared image (mode, size, pixels, info), or
    the error (type and text)."""
    share: dict[str, Any] = {}
    try:
        h = hash_image_bytes(data, path="case", share=share, **kw)
    except AssayError as exc:
        return type(exc).__name__, str(exc)
    full = share.get(SHARED_IMAGE)
    return asdict(h), None if full is None else (full.mode, full.size, full.tobytes(), full.info)


def compare(data: bytes, monkeypatch: pytest.MonkeyPatch, settings: list[dict[str, Any]] = SETTINGS) -> list[Any]:
    direct = [outcome(data, **kw) for kw in settings]
    with monkeypatch.context() as m:
        m.setattr(codecs, "webp_image", lambda *a: None)
        m.setattr(codecs, "png_direct", lambda im, data: False)
        plain = [outcome(data, **kw) for kw in settings]
    assert direct == plain
    return direct


@pytest.fixture(autouse=True)
def _decoders_present() -> None:
    if codecs.isal_zlib is None or codecs._libwebp() is None:
        pytest.skip("isal or Pillow's libwebp not reachable here: only Pillow decodes")


# ------------------------------------------------------------------------------- PNG

W, H = 600, 520  # short side >= 512: the reduced plane (block 2) as well as the full one


@functools.cache
def png_cases() -> dict[str, bytes]:
    rgb = pattern(W, H)
    im = Image.fromarray(rgb)
    grey = np.asarray(im.convert("L"))
    return {
        "RGB": save(im, "PNG"),
        "RGB-small": save(Image.fromarray(pattern(300, 200, 1)), "PNG"),
        "RGBA": save(Image.fromarray(np.dstack([rgb, alpha(W, H)])), "PNG"),
        "L": save(Image.fromarray(grey), "PNG"),
        "LA": save(Image.fromarray(np.dstack([grey, alpha(W, H)]), "LA"), "PNG"),
        "P": save(im.quantize(64), "PNG"),
        "P-tRNS": save(im.quantize(64), "PNG", transparency=3),
        "1": save(im.convert("1"), "PNG"),
        "I;16": save(Image.fromarray(grey.astype(np.uint16) * 257 + 3), "PNG"),
        "RGB-16bit": png(W, H, 16, 2, unfiltered((rgb.astype(np.uint16) * 257 + 1).astype(">u2"))),
        "many-IDAT": png(W, H, 8, 2, unfiltered(rgb), split=4096),
        # the stream's last bytes (end of stream, checksum) alone in a last, tiny IDAT
        "tiny-last-IDAT": png(W, H, 8, 2, unfiltered(rgb), split=len(zlib.compress(unfiltered(rgb))) - 3),
        "stored-deflate": png(W, H, 8, 2, unfiltered(rgb), level=0),
        "EXIF-before": png(W, H, 8, 2, unfiltered(rgb), before=exif_chunk(6)),
        "EXIF-after-IDAT": png(W, H, 8, 2, unfiltered(rgb), after=exif_chunk(8)),
    }


@pytest.mark.parametrize("case", list(png_cases()))
def test_png_direct_decode_hashes_as_pillow(case: str, direct_used: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_cases()[case]
    results = compare(data, monkeypatch, SETTINGS + ([WITH_VARIANTS] if case in ("RGBA", "EXIF-after-IDAT") else []))
    assert "png" in direct_used
    hashes, shared = results[0]
    assert shared is not None and shared[0] == Image.open(io.BytesIO(data)).mode
    if case.startswith("EXIF"):
        assert hashes["exif_orientation"] == (6 if case == "EXIF-before" else 8)
        assert results[1][0]["exif_transposed"]


def test_png_the_direct_decoder_leaves_alone() -> None:
    frames = [Image.fromarray(pattern(W, H, s)) for s in (1, 2)]
    apng = save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    im = Image.open(io.BytesIO(apng))
    assert not codecs.png_direct(im, apng)
    assert im.tile[0][0] == "zip"
    flat = save(Image.new("RGB", (W, H), (40, 80, 120)), "PNG")  # inflates ~900-fold: zlib's job
    im = Image.open(io.BytesIO(flat))
    assert not codecs.png_direct(im, flat)
    assert im.tile[0][0] == "zip"


@functools.cache
def damaged_pngs() -> dict[str, bytes]:
    rgb = pattern(W, H, 2)
    good = png(W, H, 8, 2, unfiltered(rgb))
    rows = bytearray(unfiltered(rgb))
    rows[(W * 3 + 1) * 100] = 7  # no such filter type
    stream_at = good.index(b"IDAT") + 4
    corrupt = bytearray(good)
    corrupt[stream_at + 40: stream_at + 60] = b"\xff" * 20
    return {
        "truncated": good[: len(good) * 2 // 3],
        "bad-filter": png(W, H, 8, 2, bytes(rows)),
        "corrupt-deflate": bytes(corrupt),
        "short-stream": png(W, H, 8, 2, unfiltered(rgb)[: (W * 3 + 1) * 300]),
        "long-stream": png(W, H, 8, 2, unfiltered(rgb) + b"\0" * 5000),
    }


@pytest.mark.parametrize("case", list(damaged_pngs()))
def test_damaged_png_gives_pillows_result(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    results = compare(damaged_pngs()[case], monkeypatch, [{}])
    # Pillow ignores data past the last row, and takes a stream ending between two rows for
    # the image's end (the rows missing are left black)
    assert (results[0][0] == "DecodeError") == (case not in ("long-stream", "short-stream"))


# ------------------------------------------------------------------------------- WebP


@functools.cache
def webp_cases() -> dict[str, bytes]:
    rgb = pattern(W, H, 3)
    im = Image.fromarray(rgb)
    rgba = Image.fromarray(np.dstack([rgb, alpha(W, H)]))
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "lossy": save(im, "WEBP", quality=80),
        "lossy-small": save(Image.fromarray(pattern(300, 200, 4)), "WEBP", quality=80),
        "lossless": save(im, "WEBP", lossless=True, method=0),
        "lossy-alpha": save(rgba, "WEBP", quality=80),
        "lossless-alpha": save(rgba, "WEBP", lossless=True, method=0, exact=True),
        "EXIF-rotated": save(im, "WEBP", quality=80, exif=exif),
    }


@pytest.mark.parametrize("case", list(webp_cases()))
def test_webp_direct_decode_hashes_as_pillow(case: str, direct_used: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = webp_cases()[case]
    results = compare(data, monkeypatch, SETTINGS + ([WITH_VARIANTS] if case in ("lossy", "lossy-alpha") else []))
    assert "webp" in direct_used
    hashes, shared = results[0]
    assert shared is not None and shared[0] == ("RGBA" if "alpha" in case else "RGB")
    if case == "EXIF-rotated":
        assert hashes["exif_orientation"] == 6 and results[1][0]["exif_transposed"]


def test_animated_webp_is_left_to_pillow(direct_used: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [Image.fromarray(pattern(W, H, s)) for s in (5, 6)]
    data = save(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=80)
    hashes, _ = compare(data, monkeypatch, [{}])[0]
    assert hashes["frames"] == 2
    assert direct_used == []


def test_damaged_webp_gives_pillows_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = webp_cases()["lossy"]
    results = compare(data[: len(data) // 2], monkeypatch, [{}])
    assert results[0][0] == "DecodeError"


# ------------------------------------------------------------------------ RGBA reduction


@pytest.mark.parametrize("block", range(2, 10))
def test_rgba_reduced_before_its_conversion_gives_the_rgb_images_reduction(block: int) -> None:
    """decode._load reduces an RGBA image band by band and converts the small result: the
    same bytes as converting to RGB and then reducing (sizes not a multiple of the block:
    the partial blocks at the edges too)."""
    rng = np.random.default_rng(block)
    rgba = Image.fromarray(rng.integers(0, 256, (5 * block + 3, 7 * block + 1, 4), dtype=np.uint8))
    opened = decode.OpenedImage(rgba, "x.png", "png", rgba.width, rgba.height, "RGBA", loaded=True)
    assert decode._load(opened, rgba, grey=True, reduce=block).tobytes() == rgba.convert("RGB").reduce(block).tobytes()


@pytest.mark.parametrize("case", ["RGB", "many-IDAT", "tiny-last-IDAT", "EXIF-after-IDAT"])
def test_png_direct_decode_in_small_pieces(case: str, direct_used: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The inflater fed and emptied a little at a time (on large files, pieces of 256 KB in
    and 1 MB out): the same result."""
    monkeypatch.setattr(codecs, "_FEED", 1000)
    monkeypatch.setattr(codecs, "_PIECE", 7000)
    compare(png_cases()[case], monkeypatch, SETTINGS[:1])
    assert direct_used == ["png"]
