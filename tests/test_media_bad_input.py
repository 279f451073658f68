"""Bad input to image hashing: every failure is an assay error naming the file."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from assay.config import Limits
from assay.errors import AssayError, DecodeError, InputError, TooLarge, UnsupportedFormat
from assay.media import decode as media_decode
from assay.media import hash_image_bytes, hash_image_file
from assay.media.hashes import read_limited

MODES = ["fast", "reference"]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def crafted_png(width: int, height: int, pixels: bytes = b"") -> bytes:
    """A PNG written by hand, so that its header may claim anything."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(pixels))
        + _png_chunk(b"IEND", b"")
    )


def sample(fmt: str, size: tuple[int, int] = (96, 64), **kw: object) -> bytes:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    arr = np.stack([x * 2, y * 3, (x + y) % 256], axis=2) + rng.integers(
        0, 20, (size[1], size[0], 3)
    )
    buf = io.BytesIO()
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buf, fmt, **kw)
    return buf.getvalue()


def test_crafted_png_is_valid_when_honest() -> None:
    """Guard for the crafted-header tests: the same writer makes a PNG Pillow accepts."""
    w, h = 7, 5
    rows = b"".join(b"\x00" + bytes([10, 20, 30]) * w for _ in range(h))
    hashes = hash_image_bytes(crafted_png(w, h, rows), mode="reference")
    assert (hashes.width, hashes.height, hashes.format) == (w, h, "png")


@pytest.mark.parametrize("mode", MODES)
def test_empty_input(mode: str) -> None:
    with pytest.raises(DecodeError, match=r"^empty\.jpg: empty file"):
        hash_image_bytes(b"", path="empty.jpg", mode=mode)


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, not an image\n" * 3,
        bytes(range(256)) * 8,
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",  # Pillow would run Ghostscript
        b"\x00\x00\x01\x00\x01\x00\x10\x10" + b"\x00" * 64,  # ICO
        b"8BPS" + b"\x00" * 60,  # PSD
    ],
)
def test_non_images_and_other_formats_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat, match=r"^thing\.bin: not a supported image"):
        hash_image_bytes(data, path="thing.bin")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("fmt", "cut"), [("JPEG", 0.5), ("JPEG", 0.97), ("PNG", 0.5), ("GIF", 0.6), ("WEBP", 0.7)]
)
def test_truncated_images_raise_instead_of_hashing_grey(mode: str, fmt: str, cut: float) -> None:
    data = sample(fmt, (400, 300))
    with pytest.raises(DecodeError, match=r"^cut\.img: "):
        hash_image_bytes(data[: int(len(data) * cut)], path="cut.img", mode=mode)


def test_truncated_large_jpeg_raises_in_reduced_decoding_too() -> None:
    data = sample("JPEG", (1600, 1200))  # large enough for a 1/4-scale draft decode
    with pytest.raises(DecodeError, match="truncated"):
        hash_image_bytes(data[: len(data) * 3 // 4], path="cut.jpg")


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (0, 0)])
def test_zero_pixel_images(size: tuple[int, int]) -> None:
    with pytest.raises(DecodeError, match=r"^zero\.png: "):
        hash_image_bytes(crafted_png(*size), path="zero.png")


@pytest.mark.parametrize("mode", MODES)
def test_declared_dimensions_are_checked_before_decoding(mode: str) -> None:
    # 100000 x 100000 RGB would need 30 GB; the header alone must stop it.
    bomb = crafted_png(100_000, 100_000)
    assert len(bomb) < 100
    with pytest.raises(TooLarge, match=r"^bomb\.png: .*(decompression|limit)"):
        hash_image_bytes(bomb, path="bomb.png", mode=mode)


def test_our_pixel_limit_applies_below_pillows() -> None:
    data = sample("PNG", (200, 100))
    with pytest.raises(TooLarge, match=r"200x100 = 20000 pixels exceeds the limit of 19999"):
        hash_image_bytes(data, path="a.png", limits=Limits(max_pixels=19_999))
    assert hash_image_bytes(data, limits=Limits(max_pixels=20_000)).width == 200


def test_pillow_bomb_warning_never_escapes(recwarn: pytest.WarningsRecorder) -> None:
    # Between Pillow's warning and error thresholds, our limit decides.
    mp = Image.MAX_IMAGE_PIXELS
    assert mp is not None
    side = int((mp * 1.2) ** 0.5)
    with pytest.raises(TooLarge):
        hash_image_bytes(crafted_png(side, side), path="big.png", limits=Limits(max_pixels=mp))
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_file_size_limit(tmp_path: Path) -> None:
    data = sample("PNG")
    path = tmp_path / "a.png"
    path.write_bytes(data)
    small = Limits(max_image_bytes=len(data) - 1)
    with pytest.raises(TooLarge, match=r"a\.png: .*exceeds the image limit"):
        hash_image_file(path, limits=small)
    with pytest.raises(TooLarge, match="exceeds the image limit"):
        hash_image_bytes(data, limits=small)


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        hash_image_file(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="is a directory"):
        hash_image_file(tmp_path)


def test_heic_without_the_plugin_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_decode, "_heif_state", False)
    head = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 32
    with pytest.raises(UnsupportedFormat, match=r"^x\.heic: HEIC.*pillow-heif"):
        hash_image_bytes(head, path="x.heic")


def test_refuses_when_pillow_is_told_to_load_truncated_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DecodeError, match="LOAD_TRUNCATED_IMAGES"):
        hash_image_bytes(sample("JPEG"), path="a.jpg")


def test_hashing_leaves_pillow_global_settings_alone() -> None:
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    hash_image_bytes(sample("JPEG", (1200, 900)))
    with pytest.raises(AssayError):
        hash_image_bytes(crafted_png(100_000, 100_000))
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == before


# ---------------------------------------------------------------- fuzzing

SEEDS = {
    "jpeg": sample("JPEG", (160, 120), quality=80),
    "jpeg-large": sample("JPEG", (640, 480), quality=60),  # takes the reduced path
    "png": sample("PNG"),
    "gif": sample("GIF"),
    "webp": sample("WEBP"),
    "tiff": sample("TIFF"),
    "bmp": sample("BMP"),
}
# Mutated headers can claim large sizes; keep every example small and quick.
FUZZ_LIMITS = Limits(max_pixels=2_000_000, max_image_bytes=1_000_000)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 6))):
        # Bias edits toward the header, where parsers make their decisions.
        hi = len(data) - 1 if draw(st.booleans()) else min(len(data) - 1, 200)
        data[draw(st.integers(0, hi))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), mode=st.sampled_from(MODES), transpose=st.booleans())
def test_fuzz_only_assay_errors(data: bytes, mode: str, transpose: bool) -> None:
    try:
        h = hash_image_bytes(
            data,
            path="fuzz.img",
            mode=mode,
            exif_transpose=transpose,
            dihedral=True,
            limits=FUZZ_LIMITS,
        )
    except InputError as exc:
        assert str(exc).startswith("fuzz.img: ")
        return
    assert len(h.pdq) == 64 and 0 <= h.quality <= 100
    assert h.width * h.height <= FUZZ_LIMITS.max_pixels


def test_read_limited_reads_on_past_the_size_it_found(tmp_path: Path) -> None:
    """A file that grows while read (here a pipe, whose size reads as 0) is read on, up to
    one byte past the limit, and refused past it."""
    payload = os.urandom(300_000)
    fifo = tmp_path / "growing"

    def write() -> None:
        try:
            with open(fifo, "wb") as f:
                f.write(payload)
        except BrokenPipeError:  # refused: the reader stopped one byte past the limit
            pass

    for limit, fits in ((len(payload), True), (len(payload) - 1, False)):
        os.mkfifo(fifo)
        writer = threading.Thread(target=write)
        writer.start()
        try:
            if fits:
                assert read_limited(fifo, limit) == payload
            else:
                with pytest.raises(TooLarge, match="exceeds the image limit"):
                    read_limited(fifo, limit)
        finally:
            writer.join(10)
            fifo.unlink()
