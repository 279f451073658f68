"""Image hashing: PDQ (reference and fast), MD5/SHA-256, formats, dihedral, EXIF.

Expected values come from outside our code: the shared CSV computed by Meta's
binding, ``pdqhash`` and python-threatexchange called directly on pixels we made,
``hashlib`` on the bytes, and geometric identities of PDQ's dihedral variants.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import statistics
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

from assay.config import Limits, ScanSettings
from assay.media import (
    DIHEDRAL_NAMES,
    array_to_hex,
    hamming,
    hash_image_bytes,
    hash_image_file,
    hex_to_array,
    pdq_hex,
)
from assay.media import decode as media_decode
from assay.media.analyzer import ImageHashAnalyzer
from assay.report.schema import FileRecord
from assay.scan.analyzer import Subject
from conftest import IN_CI

# ---------------------------------------------------------------- helpers


def pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A benign synthetic RGB image: smooth random field, checkerboard, gradient, noise.

    The smooth field gives PDQ many strong low-frequency coefficients, so its bits
    are stable (a pure sinusoid leaves most coefficients near the median)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    field = np.asarray(
        Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32
    )
    y, x = np.mgrid[0:h, 0:w]
    checker = ((x // 37 + y // 29) % 2) * 30.0 - 15.0
    grad = x * (40.0 / w) - 20.0
    noise = rng.normal(0.0, 5.0, (h, w, 1))
    return (field + (checker + grad)[..., None] + noise).clip(0, 255).astype(np.uint8)


def encode(arr_or_im: np.ndarray | Image.Image, fmt: str, **kw: object) -> bytes:
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def pdqhash_hex(arr: np.ndarray) -> str:
    """Meta's binding on an (H, W, 3) array, hex printed as threatexchange prints it."""
    bits, _quality = pdqhash.compute(np.ascontiguousarray(arr))
    return format(int("".join(str(int(b)) for b in bits), 2), "064x")


def csv_rows(testdata: Path) -> list[dict[str, str]]:
    with (testdata / "pdq" / "expected-reference.csv").open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- shared vectors


def test_reference_mode_equals_every_csv_row(testdata: Path) -> None:
    rows = csv_rows(testdata)
    assert len(rows) >= 50
    wrong = []
    for row in rows:
        h = hash_image_file(testdata / "pdq" / row["path"], mode="reference", variants=False)
        got = (h.pdq, h.quality, h.width, h.height)
        want = (row["pdq"], int(row["quality"]), int(row["width"]), int(row["height"]))
        if got != want:
            wrong.append((row["path"], got, want))
    assert wrong == []


def test_fast_mode_stays_close_to_reference_on_every_csv_row(testdata: Path) -> None:
    distances = {}
    for row in csv_rows(testdata):
        h = hash_image_file(testdata / "pdq" / row["path"])
        assert h.pdq_mode == "fast"
        distances[row["path"]] = hamming(h.pdq, row["pdq"])
        # Quality decides the low-quality flag; it must not drift far either.
        assert abs(h.quality - int(row["quality"])) <= 10, row["path"]
    assert max(distances.values()) <= 16, distances
    assert statistics.median(distances.values()) <= 8


def test_dihedral_names_follow_the_shared_rotated_photos(testdata: Path) -> None:
    """bridge-N files are the original rotated/flipped by an image editor; the
    variant of the original that matches each one names that transform."""
    d = testdata / "pdq" / "reg-test-input" / "dih"
    files = {
        "original": "bridge-1-original.jpg",
        "rot90": "bridge-2-rotate-90.jpg",
        "rot180": "bridge-3-rotate-180.jpg",
        "rot270": "bridge-4-rotate-270.jpg",
        "flipx": "bridge-5-flipx.jpg",
        "flipy": "bridge-6-flipy.jpg",
        "flipplus": "bridge-7-flip-plus-1.jpg",
        "flipminus": "bridge-8-flip-minus-1.jpg",
    }
    assert tuple(files) == DIHEDRAL_NAMES
    for mode in ("reference", "fast"):
        base = hash_image_file(d / files["original"], mode=mode, dihedral=True)
        assert base.dihedral is not None and base.dihedral["original"] == base.pdq
        for name, fname in files.items():
            other = hash_image_file(d / fname, mode=mode)
            nearest = min(DIHEDRAL_NAMES, key=lambda n: hamming(base.dihedral[n], other.pdq))
            assert nearest == name, (mode, fname)
            assert hamming(base.dihedral[name], other.pdq) <= 16, (mode, fname)


# ---------------------------------------------------------------- generated images

# Pillow transpose -> the PDQ variant that hashes the transposed image
# (established by the shared bridge photos above).
TRANSPOSE_VARIANT = {
    Image.Transpose.FLIP_LEFT_RIGHT: "flipy",
    Image.Transpose.FLIP_TOP_BOTTOM: "flipx",
    Image.Transpose.ROTATE_90: "rot90",
    Image.Transpose.ROTATE_180: "rot180",
    Image.Transpose.ROTATE_270: "rot270",
    Image.Transpose.TRANSPOSE: "flipplus",
    Image.Transpose.TRANSVERSE: "flipminus",
}


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_dihedral_variant_equals_hash_of_transposed_image_exactly(mode: str) -> None:
    """PDQ samples its blurred 64x64 grid symmetrically only when each side is
    64*(2m+1) pixels with m even (an odd, centred box window): 576 = 64*9 and
    320 = 64*5. There the variants must be bit-identical to hashing the
    transposed pixels."""
    arr = pattern(576, 320, seed=3)
    base = hash_image_bytes(encode(arr, "PNG"), mode=mode, dihedral=True)
    assert base.dihedral is not None and set(base.dihedral) == set(DIHEDRAL_NAMES)
    for method, variant in TRANSPOSE_VARIANT.items():
        moved = hash_image_bytes(encode(Image.fromarray(arr).transpose(method), "PNG"), mode=mode)
        assert moved.pdq == base.dihedral[variant], method.name


def test_dihedral_variants_of_a_large_reduced_image_stay_close() -> None:
    """Off the symmetric sizes PDQ's own sampling makes a variant differ from the
    transposed image's hash by a few bits (up to ~20 at 1280x960, in reference
    mode too); at 1600x1200 the reference gap is <= 6 bits and fast mode must
    stay within PDQ's usual near-duplicate margin."""
    arr = pattern(1600, 1200, seed=5)
    base = hash_image_bytes(encode(arr, "JPEG", quality=92), dihedral=True)
    assert base.dihedral is not None
    for method, variant in TRANSPOSE_VARIANT.items():
        moved = hash_image_bytes(encode(Image.fromarray(arr).transpose(method), "JPEG", quality=92))
        assert hamming(moved.pdq, base.dihedral[variant]) <= 16, method.name


LOSSLESS = [
    ("png", "PNG", {}),
    ("tiff", "TIFF", {"compression": "tiff_lzw"}),
    ("bmp", "BMP", {}),
    ("webp", "WEBP", {"lossless": True}),
]


@pytest.mark.parametrize(("name", "fmt", "kw"), LOSSLESS)
@pytest.mark.parametrize("size", [(300, 220), (1100, 800)])
def test_lossless_formats_hash_the_exact_pixels(
    name: str, fmt: str, kw: dict[str, object], size: tuple[int, int]
) -> None:
    arr = pattern(*size, seed=7)
    data = encode(arr, fmt, **kw)
    ref = hash_image_bytes(data, mode="reference")
    fast = hash_image_bytes(data)
    assert (ref.format, ref.width, ref.height, ref.mode) == (name, size[0], size[1], "RGB")
    assert ref.pdq == pdqhash_hex(arr)
    assert ref.quality == pdqhash.compute(arr)[1]
    if min(size) < 512:
        # Too small to shrink: the fast path decodes fully and must agree exactly.
        assert fast.pdq == ref.pdq
    assert hamming(fast.pdq, ref.pdq) <= 8


def test_grey_and_palette_images_follow_threatexchange_conversion() -> None:
    arr = pattern(640, 480, seed=11)
    grey = np.asarray(Image.fromarray(arr).convert("L"))
    h = hash_image_bytes(encode(grey, "PNG"), mode="reference")
    assert h.mode == "L"
    assert h.pdq == pdqhash_hex(np.repeat(grey[..., None], 3, axis=2))

    pal = Image.fromarray(arr).quantize(64)
    h = hash_image_bytes(encode(pal, "GIF"), mode="reference")
    assert (h.format, h.mode, h.frames) == ("gif", "P", 1)
    assert h.pdq == pdqhash_hex(np.asarray(pal.convert("RGB")))


def test_gif_hashes_its_first_frame_and_counts_frames() -> None:
    frames = [Image.fromarray(pattern(320, 240, seed=s)).quantize(32) for s in (1, 2, 3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    anim = hash_image_bytes(buf.getvalue(), mode="reference")
    first = hash_image_bytes(encode(frames[0], "GIF"), mode="reference")
    assert anim.frames == 3
    assert anim.pdq == first.pdq
    assert hamming(anim.pdq, hash_image_bytes(encode(frames[1], "GIF")).pdq) > 32


@pytest.mark.parametrize("size", [(800, 600), (1800, 1200)])
def test_jpeg_reference_equals_threatexchange_and_fast_stays_close(size: tuple[int, int]) -> None:
    data = encode(pattern(*size, seed=13), "JPEG", quality=90)
    ref = hash_image_bytes(data, mode="reference")
    tx_hex, tx_quality = pdq_from_bytes(data)
    assert (ref.pdq, ref.quality) == (tx_hex, tx_quality)
    assert hamming(hash_image_bytes(data).pdq, ref.pdq) <= 8


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_reference_mode_hashes_the_variants_as_fast_mode_does(fmt: str) -> None:
    """Reference mode: the plain hash is Meta's to the bit, the variants (mirror, borders,
    crops, anchored regions, banked regions) come from the reduced plane exactly as in fast
    mode; at full resolution they cost ~7 CPU s a 12-MP photo."""
    framed = ImageOps.expand(Image.fromarray(pattern(1200, 900, seed=31)), border=(120, 90), fill=(255, 255, 255))
    data = encode(framed, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    ref = hash_image_bytes(data, mode="reference", bank_variants=True, dihedral=True)
    fast = hash_image_bytes(data, bank_variants=True, dihedral=True)
    tx_hex, tx_quality = pdq_from_bytes(data)
    assert (ref.pdq, ref.quality, ref.pdq_mode) == (tx_hex, tx_quality, "reference")
    assert ref.dihedral is not None and ref.dihedral["original"] == tx_hex
    assert ref.trimmed and ref.regions and ref.bank_regions  # the border was found, the regions hashed
    assert any(n.startswith("region-") for n in ref.bank_regions)
    assert (ref.trimmed, ref.trim_margins, ref.regions, ref.bank_regions) == \
        (fast.trimmed, fast.trim_margins, fast.regions, fast.bank_regions)
    # the trimmed content is the unframed picture, found to the pixel on the finer plane
    assert hamming(ref.trimmed["trimmed"][0], pdqhash_hex(pattern(1200, 900, seed=31))) <= 16
    plain_only = hash_image_bytes(data, mode="reference", variants=False)
    assert (plain_only.pdq, plain_only.regions, plain_only.trimmed) == (tx_hex, None, None)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF", "WEBP"])
def test_lossy_modern_formats_decode(fmt: str) -> None:
    # The test extra installs what the encoders need (Pillow >= 11.3 wheels carry WebP
    # and AVIF; pillow-heif for HEIF): missing under CI is a failure, not a skip.
    def cannot(why: str) -> None:
        if IN_CI:
            pytest.fail(f"{why}; under CI `make install-test` must provide it")
        pytest.skip(why)

    if fmt == "HEIF":
        if importlib.util.find_spec("pillow_heif") is None:
            cannot("pillow-heif not installed")
        assert media_decode._heif_available()
    arr = pattern(640, 480, seed=17)
    try:
        data = encode(arr, fmt, quality=90)
    except (KeyError, OSError) as exc:  # no encoder in this Pillow build
        cannot(f"cannot write {fmt} here: {exc}")
    ref = hash_image_bytes(data, mode="reference")
    assert (ref.width, ref.height) == (640, 480)
    assert ref.format == {"AVIF": "avif", "HEIF": "heif", "WEBP": "webp"}[fmt]
    # Lossy coding moves a few bits; our decoding must not move more.
    assert hamming(ref.pdq, pdqhash_hex(arr)) <= 16
    assert hamming(hash_image_bytes(data).pdq, ref.pdq) <= 16


# ---------------------------------------------------------------- EXIF orientation


def _with_orientation(arr: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(arr, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_reported_and_applied_only_on_request(orientation: int) -> None:
    arr = pattern(400, 300, seed=19)
    data = _with_orientation(arr, orientation)
    stored = hash_image_bytes(data, mode="reference")
    upright = hash_image_bytes(data, mode="reference", exif_transpose=True)
    assert stored.exif_orientation == upright.exif_orientation == orientation
    assert stored.exif_transposed is False
    assert upright.exif_transposed is (orientation != 1)
    assert (upright.width, upright.height) == (400, 300)  # as stored

    decoded = Image.open(io.BytesIO(data))
    assert stored.pdq == pdqhash_hex(np.asarray(decoded.convert("RGB")))
    expected = np.asarray(ImageOps.exif_transpose(decoded).convert("RGB"))
    assert upright.pdq == pdqhash_hex(expected)
    fast_upright = hash_image_bytes(data, exif_transpose=True)
    assert fast_upright.pdq == upright.pdq  # not reduced: the fast path is exact here


def test_shared_exif_photos(testdata: Path) -> None:
    """12-MP photos: the upright hash is the matching dihedral variant of the stored one."""
    # Pillow's exif_transpose uses ROTATE_180 for 3, ROTATE_270 for 6, ROTATE_90 for 8.
    variant = {3: "rot180", 6: "rot270", 8: "rot90"}
    d = testdata / "pdq" / "reg-test-input" / "exif-rotn"
    for n in (1, 3, 6, 8):
        path = d / f"exif-rotn-{n}.jpg"
        stored = hash_image_file(path, dihedral=True)
        upright = hash_image_file(path, exif_transpose=True)
        assert stored.exif_orientation == upright.exif_orientation == n
        assert (stored.width, stored.height) == (4032, 3024)
        assert not stored.exif_transposed
        if n == 1:
            assert upright.pdq == stored.pdq and not upright.exif_transposed
        else:
            assert upright.exif_transposed
            assert stored.dihedral is not None
            assert hamming(upright.pdq, stored.dihedral[variant[n]]) <= 16


# ---------------------------------------------------------------- exact hashes, API


def test_md5_and_sha256_are_of_the_file_bytes(tmp_path: Path) -> None:
    data = encode(pattern(200, 150), "PNG") + b"trailing bytes after IEND"
    path = tmp_path / "x.png"
    path.write_bytes(data)
    h = hash_image_file(path)
    assert h.md5 == hashlib.md5(data).hexdigest()
    assert h.sha256 == hashlib.sha256(data).hexdigest()


def test_hash_image_file_reads_once_and_decodes_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(encode(pattern(600, 400), "JPEG"))
    opens: list[object] = []
    real_path_open = Path.open

    def counting_open(self: Path, *a: object, **k: object):  # type: ignore[no-untyped-def]
        opens.append(self)
        return real_path_open(self, *a, **k)

    seen: list[object] = []
    real_image_open = Image.open

    def spying_image_open(fp, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(fp)
        return real_image_open(fp, *a, **k)

    monkeypatch.setattr(Path, "open", counting_open)
    monkeypatch.setattr(Image, "open", spying_image_open)
    hash_image_file(path, mode="reference")
    assert opens == [path]
    assert len(seen) == 1 and isinstance(seen[0], io.BytesIO)


def test_hex_helpers_use_threatexchange_bit_order() -> None:
    arr = pattern(128, 96, seed=23)
    bits, _ = pdqhash.compute(arr)
    tx_hex = format(int("".join(str(int(b)) for b in bits), 2), "064x")
    assert pdq_hex(bits) == tx_hex
    packed = hex_to_array(tx_hex)
    assert packed.dtype == np.uint8 and packed.shape == (32,)
    assert bytes(packed) == bytes.fromhex(tx_hex)
    assert array_to_hex(packed) == tx_hex
    # The first printed bit is the most significant bit of the first byte.
    assert (packed[0] >> 7) & 1 == bits[0]


def test_unknown_pdq_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown PDQ mode"):
        hash_image_bytes(encode(pattern(64, 64), "PNG"), mode="turbo")


# ---------------------------------------------------------------- analyzer


def _analyze(path: Path, settings: ScanSettings) -> tuple[Subject, FileRecord]:
    subject = Subject(path, "image", "png", path.stat().st_size, settings)
    record = FileRecord(path=str(path))
    ImageHashAnalyzer().analyze(subject, record)
    return subject, record


def test_analyzer_fills_image_info_signals_and_byte_cache(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encode(pattern(700, 500, seed=29), "PNG"))
    subject, record = _analyze(path, ScanSettings(dihedral=True, pdq_mode="reference"))
    data = path.read_bytes()
    assert subject.cache["bytes"] == data
    assert record.image is not None
    assert (record.image.format, record.image.width, record.image.height) == ("png", 700, 500)
    assert record.image.low_quality is False
    by_type: dict[str, list] = {}
    for s in record.signals:
        by_type.setdefault(s.type, []).append(s)
    assert [s.value for s in by_type["md5"]] == [hashlib.md5(data).hexdigest()]
    assert [s.value for s in by_type["sha256"]] == [hashlib.sha256(data).hexdigest()]
    pdqs = by_type["pdq"]
    assert pdqs[0].variant is None and pdqs[0].mode == "reference"
    assert pdqs[0].value == pdqhash_hex(pattern(700, 500, seed=29))
    dihedral = [s for s in pdqs[1:] if s.variant in DIHEDRAL_NAMES]
    assert sorted(s.variant for s in dihedral) == sorted(DIHEDRAL_NAMES[1:])
    assert all(s.quality == pdqs[0].quality for s in dihedral)
    # With dihedral hashes the mirror is among them; the regions of media/crops.py and the
    # negative (the complement of the plain hash) join.
    others = {s.variant for s in pdqs[1:]} - set(DIHEDRAL_NAMES)
    assert {v for v in others if not v.startswith("region-")} == {
        "crop-0.4", "crop-0.8", "crop-1.2", "crop-1.6", "upper-85", "lower-85", "inverted"}
    inverted = next(s for s in pdqs if s.variant == "inverted")
    assert int(inverted.value, 16) == int(pdqs[0].value, 16) ^ ((1 << 256) - 1)


def test_analyzer_marks_low_quality_and_skips_variants_by_default(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    path.write_bytes(encode(np.full((200, 300, 3), 128, np.uint8), "PNG"))
    _subject, record = _analyze(path, ScanSettings())
    assert record.image is not None and record.image.low_quality is True
    pdqs = [s for s in record.signals if s.type == "pdq"]
    assert len(pdqs) == 1 and pdqs[0].quality is not None and pdqs[0].quality < 50


def test_analyzer_keeps_exact_hashes_of_undecodable_files(tmp_path: Path) -> None:
    from assay.errors import DecodeError

    data = encode(pattern(300, 200), "JPEG")[:-400]
    path = tmp_path / "cut.jpg"
    path.write_bytes(data)
    record = FileRecord(path=str(path))
    subject = Subject(path, "image", "jpeg", len(data), ScanSettings())
    with pytest.raises(DecodeError, match="cut.jpg"):
        ImageHashAnalyzer().analyze(subject, record)
    assert {s.type: s.value for s in record.signals} == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert subject.cache["bytes"] == data
    assert record.image is None


def test_limits_are_taken_from_settings(tmp_path: Path) -> None:
    from assay.errors import TooLarge

    path = tmp_path / "a.png"
    path.write_bytes(encode(pattern(100, 100), "PNG"))
    with pytest.raises(TooLarge):
        _analyze(path, ScanSettings(limits=Limits(max_pixels=5_000)))


@pytest.mark.parametrize("size", [(1, 1), (4, 30), (30, 4), (5, 5)])
@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_tiny_images_follow_meta_minimum_size(size: tuple[int, int], mode: str) -> None:
    arr = pattern(*size, seed=31)
    h = hash_image_bytes(encode(arr, "PNG"), mode=mode)
    bits, quality = pdqhash.compute(arr)
    assert (h.pdq, h.quality) == (pdqhash_hex(arr), quality)
    if min(size) < 5:  # Meta's C++ refuses to hash below 5 pixels a side
        assert h.pdq == "0" * 64 and h.quality == 0


@pytest.mark.parametrize(("small", "block"), [((100, 75), 8), ((129, 97), 4), ((333, 250), 3)])
def test_filter_weights_on_a_reduced_grid_are_exact_for_blocky_images(
    small: tuple[int, int], block: int
) -> None:
    """When every block x block tile of an image is one colour, its reduced plane
    loses nothing, so PDQ from that plane must equal Meta's hash of the full image:
    this checks the tent-filter weights and their aggregation over blocks."""
    from assay.media.pdq import fast_pdq, luma_of

    tiles = pattern(*small, seed=37)
    full = np.repeat(np.repeat(tiles, block, axis=0), block, axis=1)
    expected_bits, expected_quality = pdqhash.compute(full)
    got = fast_pdq(luma_of(tiles), (full.shape[1], full.shape[0]), (block, block))
    assert got.hex == pdq_hex(expected_bits)
    assert got.quality == expected_quality


@pytest.mark.parametrize(
    ("fmt", "size", "block"),
    [
        ("JPEG", (1600, 1200), 8),  # libjpeg's DC-only 1/8 scale: 200x150
        ("JPEG", (800, 600), 4),  # 1/8 would leave 75 px on the short side
        ("JPEG", (500, 400), 1),  # small: decoded fully
        ("PNG", (1100, 800), 3),
        ("PNG", (700, 500), 1),
    ],
)
def test_fast_path_reduces_large_images_only(fmt: str, size: tuple[int, int], block: int) -> None:
    opened = media_decode.open_image(encode(pattern(*size), fmt), "x", Limits())
    reduced, _ = media_decode.reduced_luma(opened)
    assert reduced.block == (block, block)
    assert reduced.luma.shape == (-(-size[1] // block), -(-size[0] // block))
    assert reduced.orig_size == size
