"""The numpy DWT-DCT decoder against the independent reference: the encoder and
decoder of the ``invisible-watermark`` package (imwatermark/maxDct.py, loaded
directly so that its torch-importing package __init__ never runs)."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from assay.provenance import watermark as wm
from assay.provenance.analyzer import analyze_provenance, explain
from assay.provenance.context import ImageContext

# The reference implementation is a test-only dependency. invisible-watermark
# declares torch as a requirement that its dwtDct code never uses, so it is
# installed with --no-deps next to opencv-python-headless and PyWavelets. Missing
# here: skip; missing under CI: fail, so that these tests cannot silently vanish.
_INSTALL = (
    "pip install opencv-python-headless PyWavelets && pip install --no-deps invisible-watermark"
)
_IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_spec = importlib.util.find_spec("imwatermark")
if (
    not (importlib.util.find_spec("cv2") and importlib.util.find_spec("pywt") and _spec)
    or not _spec.submodule_search_locations
):
    if _IN_CI:
        pytest.fail(f"watermark reference not installed under CI: {_INSTALL}", pytrace=False)
    pytest.skip(f"watermark reference not installed ({_INSTALL})", allow_module_level=True)

import cv2  # noqa: E402

from wmref import embed, load_maxdct, pattern, published_bits  # noqa: E402


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    return load_maxdct()


def reference_bits(ref: ModuleType, rgb: np.ndarray, n: int) -> np.ndarray:
    return ref.EmbedMaxDct([], wmLen=n).decode(np.ascontiguousarray(rgb[:, :, ::-1]))


def ctx_of(rgb: np.ndarray, fmt: str = "PNG", **save) -> ImageContext:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **save)
    return ImageContext(
        Path(f"t.{fmt.lower()}"), buf.getvalue(), fmt.lower().replace("jpg", "jpeg")
    )


def test_payload_bits_match_the_published_values() -> None:
    # Every payload assay knows, bit for bit, against the published values (wmref.py
    # says where each is published); nothing else may be in the list.
    by = {p.name: p for p in wm.PAYLOADS}
    assert set(by) == {"sd1", "sd2", "sdxl"}
    for name, payload in by.items():
        assert payload.bits == published_bits(name), name
    assert bytes(np.packbits(by["sd1"].bits)) == b"StableDiffusionV1" and len(by["sd1"].bits) == 136
    assert bytes(np.packbits(by["sd2"].bits)) == b"SDV2" and len(by["sd2"].bits) == 32
    assert int("".join(map(str, by["sdxl"].bits)), 2) == 0xB3EC907BB19E and len(by["sdxl"].bits) == 48


def test_u_channel_equals_opencv(ref: ModuleType) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 97, 3), dtype=np.uint8)
    expected = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1]), cv2.COLOR_BGR2YUV)[:, :, 1]
    assert np.array_equal(wm.u_channel(rgb), expected)


def test_u_channel_equals_opencv_on_every_colour() -> None:
    # u_channel relies on Pillow's float matrix conversion being exact for coefficients
    # over 2^14, the compiled pass on its integer formula without OpenCV's clip: every
    # one of the 2^24 colours, in one 4096 x 4096 image, both ways.
    from assay.provenance._wm_kernel import blocks_u

    levels = np.arange(256, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(4096, 4096, 3)
    expected = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1]), cv2.COLOR_BGR2YUV)[:, :, 1]
    assert np.array_equal(wm.u_channel(rgb), expected)
    by, bx = np.divmod(np.arange(512 * 512), 512)
    with wm._rgbx_rows(Image.fromarray(rgb), 0, 4096) as rgbx:
        compiled = blocks_u(rgbx, by, bx).reshape(512, 512, 8, 8).transpose(0, 2, 1, 3).reshape(4096, 4096)
    assert np.array_equal(compiled, expected)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("shape", [(50, 37), (2000, 2100)], ids=["one-block", "several-blocks"])
def test_rgbx_rows_are_the_images_rows(shape: tuple[int, int], mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow exports an image of one memory block through Arrow (read in place); a larger
    # one (over 16 MB) is copied by its encoder
    in_place: list[bool] = []
    real = wm._arrow_bytes
    monkeypatch.setattr(wm, "_arrow_bytes", lambda *a: in_place.append((r := real(*a)) is not None) or r)
    h, w = shape
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:40] = pattern(40, w, 9)
    im = Image.fromarray(rgb).convert(mode)
    with wm._rgbx_rows(im, 8, 24) as rgbx:
        assert rgbx.shape == (16, 4 * w) and not rgbx.flags.writeable
        assert np.array_equal(rgbx.reshape(16, w, 4)[:, :, :3], rgb[8:24])
    assert in_place == ([True] if h * w * 4 <= 16 << 20 else [])


# Every vote test runs on both passes: Pillow's (a one-file command) and the compiled one.
both_passes = pytest.mark.parametrize("compiled", [False, True], ids=["pillow", "compiled"])


@both_passes
def test_votes_in_strips_equal_votes_of_the_whole(
    ref: ModuleType, monkeypatch: pytest.MonkeyPatch, compiled: bool
) -> None:
    # Huge images are converted in strips of whole block rows; the last strip partial.
    rgb = pattern(203, 150, 5)
    whole = reference_votes(ref, rgb)
    monkeypatch.setattr(wm, "STRIP_PIXELS", 150 * 40)
    monkeypatch.setattr(wm, "STRIP_MIN_ROWS", 16)
    assert np.array_equal(wm.block_votes(rgb, compiled), whole)


@both_passes
def test_votes_of_an_image_with_a_transparent_colour(compiled: bool) -> None:
    # a PNG tRNS colour in an RGB image's info must not stop the conversion
    rgb = pattern(300, 300, 3)
    im = Image.fromarray(rgb)
    im.info["transparency"] = (0, 0, 0)
    assert np.array_equal(wm.image_votes(im, compiled), wm.block_votes(rgb, not compiled))


@both_passes
@pytest.mark.parametrize("strips", [False, True])
def test_votes_of_an_rgba_image_are_those_of_its_rgb(compiled: bool, strips: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # alpha is dropped, not composited (as cv2.imread does); the compiled pass reads RGBA
    # pixels in place, the whole image or in strips
    rgb = pattern(203, 150, 6)
    alpha = pattern(203, 150, 7)[:, :, :1]
    if strips:
        monkeypatch.setattr(wm, "STRIP_PIXELS", 150 * 40)
        monkeypatch.setattr(wm, "STRIP_MIN_ROWS", 16)
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    assert np.array_equal(wm.image_votes(rgba, compiled), wm.block_votes(rgb, False))


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    bits=st.lists(st.integers(0, 1), min_size=8, max_size=64),
    h=st.integers(256, 300),
    w=st.integers(256, 300),
)
def test_decoder_agrees_bit_for_bit_with_reference(
    ref: ModuleType, seed: int, bits: list[int], h: int, w: int
) -> None:
    rgb = embed(ref, pattern(h, w, seed), tuple(bits))
    clean = pattern(h, w, seed + 1)
    for compiled in (False, True):
        ours = wm.decode_bits(wm.block_votes(rgb, compiled), len(bits))
        assert np.array_equal(ours, reference_bits(ref, rgb, len(bits)))
        # and on an unmarked image, where votes are noise rather than clean bits
        assert np.array_equal(
            wm.decode_bits(wm.block_votes(clean, compiled), len(bits)), reference_bits(ref, clean, len(bits))
        )


def reference_votes(ref: ModuleType, rgb: np.ndarray) -> np.ndarray:
    """Every block's vote as the reference decoder casts it: OpenCV's YUV, PyWavelets'
    Haar, and the reference's own per-block rule (infer_dct_matrix)."""
    import pywt

    h, w = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    u = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1]), cv2.COLOR_BGR2YUV)[:h, :w, 1]
    ca = pywt.dwt2(u, "haar")[0]
    dec = ref.EmbedMaxDct([], wmLen=1)
    return np.array([dec.infer_dct_matrix(ca[i:i + 4, j:j + 4], wm.SCALE)
                     for i in range(0, ca.shape[0] // 4 * 4, 4) for j in range(0, ca.shape[1] // 4 * 4, 4)])


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), h=st.integers(40, 200), w=st.integers(40, 200), levels=st.sampled_from([0, 2, 5]))
def test_every_block_vote_equals_the_reference(ref: ModuleType, seed: int, h: int, w: int, levels: int) -> None:
    # Votes come from whole-number U sums, with the blocks whose value sits exactly on a
    # vote boundary recomputed in floating point: images of few grey levels put many
    # blocks there (where float rounding decides the vote), noise and patterns few.
    rng = np.random.default_rng(seed)
    if levels:
        rgb = (rng.integers(0, levels, (h, w, 3)) * int(rng.integers(1, 256 // levels))).astype(np.uint8)
    else:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if seed % 2 else pattern(h, w, seed)
    expected = reference_votes(ref, rgb)
    assert np.array_equal(wm.block_votes(rgb, compiled=False), expected)
    assert np.array_equal(wm.block_votes(rgb, compiled=True), expected)


@pytest.mark.parametrize("name", ["sd1", "sd2", "sdxl"])
def test_reference_marked_image_is_detected(ref: ModuleType, name: str) -> None:
    bits = published_bits(name)  # what the generator embeds, not assay's own constant
    rgb = embed(ref, pattern(512, 640, 7), bits)
    ev = wm.evidence(ctx_of(rgb))
    assert ev, "no watermark evidence on a freshly marked PNG"
    top = ev[0]
    assert top.facts["payload"] == name
    assert top.facts["confidence"] == "very likely"
    assert (top.claim, top.strength) == ("ai-generated", "strong")
    assert top.facts["matched_bits"] >= len(bits) - 4 and top.facts["total_bits"] == len(bits)
    assert "proves nothing" in top.facts["note"]


def test_a_process_switches_to_the_compiled_pass_with_the_same_evidence(
    ref: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images are searched with Pillow until the process has searched COMPILED_AFTER
    pixels, then with the compiled pass: a marked image gives the same evidence (matched
    bits of every payload) either way, and so does an unmarked one (none)."""
    monkeypatch.delitem(sys.modules, "assay.provenance._wm_kernel", raising=False)
    monkeypatch.setattr(wm, "_searched_pixels", 0)
    monkeypatch.setattr(wm, "COMPILED_AFTER", 512 * 640)
    used: list[str] = []
    for name in ("_pillow_votes", "_compiled_votes"):
        real = getattr(wm, name)
        monkeypatch.setattr(wm, name, lambda *a, real=real, name=name: used.append(name) or real(*a))
    marked = ctx_of(embed(ref, pattern(512, 640, 17), published_bits("sd1")))
    clean = ctx_of(pattern(512, 640, 18))
    first, first_clean, second, second_clean = (wm.evidence(c) for c in (marked, clean, marked, clean))
    assert used == ["_pillow_votes", "_compiled_votes", "_compiled_votes", "_compiled_votes"]
    assert first and first == second and first[0].facts["payload"] == "sd1"
    assert first_clean == second_clean == []


def test_one_image_is_searched_without_loading_numba(tmp_path: Path) -> None:
    # numba's import and start-up (~0.35 s of CPU) would double a one-file command's time
    Image.fromarray(pattern(512, 512, 19)).save(tmp_path / "p.png")
    code = ("import sys; from pathlib import Path; from assay.provenance.analyzer import analyze_provenance; "
            f"p = Path({str(tmp_path / 'p.png')!r}); r = analyze_provenance(p, p.read_bytes(), 'png'); "
            "assert r.watermark_searched, r; print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_jpeg_444_q90_keeps_the_mark_and_unmarked_images_give_nothing(ref: ModuleType) -> None:
    rgb = embed(ref, pattern(512, 512, 11), published_bits("sdxl"))
    ev = wm.evidence(ctx_of(rgb, "JPEG", quality=90, subsampling=0))
    assert ev and ev[0].facts["payload"] == "sdxl"
    for seed in range(3):
        assert wm.evidence(ctx_of(pattern(512, 512, 100 + seed))) == []


def test_lost_mark_is_not_evidence_of_anything(ref: ModuleType) -> None:
    rgb = embed(ref, pattern(512, 512, 5), published_bits("sdxl"))
    half = np.asarray(Image.fromarray(rgb).resize((256, 256), Image.Resampling.BILINEAR))
    buf = io.BytesIO()
    Image.fromarray(half).save(buf, "PNG")
    report = analyze_provenance(Path("half.png"), buf.getvalue(), "png")
    assert not [e for e in report.evidence if e.source == "watermark"]
    assert report.verdict == "no provenance evidence found"


@pytest.mark.parametrize(
    ("matched", "level"),
    [
        (0, "none"),
        (27, "none"),
        (28, "partial"),
        (33, "partial"),
        (34, "likely"),
        (35, "likely"),
        (36, "very likely"),
        (48, "very likely"),
    ],
)
def test_sdxl_bands_are_stabilitys(matched: int, level: str) -> None:
    # generative-models scripts/demo/detect.py: MATCH_VALUES 27 / 33 / 35 of 48 bits
    sdxl = next(p for p in wm.PAYLOADS if p.name == "sdxl")
    assert wm.level_for(matched, sdxl) == level


def test_sd2_all_zero_decode_is_not_a_match() -> None:
    # Unmarked photos decode to (nearly) all zeros; for b"SDV2" that already
    # matches the 19 zero bits, which must not read as any kind of match.
    sd2 = next(p for p in wm.PAYLOADS if p.name == "sd2")
    zeros_matched = len(published_bits("sd2")) - sum(published_bits("sd2"))
    assert zeros_matched == 19
    assert wm.level_for(zeros_matched, sd2) == "none"


def test_small_and_odd_images_are_skipped_without_error() -> None:
    assert wm.match_payloads(np.zeros((100, 100, 3), np.uint8)) == []
    gray = Image.fromarray(pattern(300, 300, 1)[:, :, 0])  # mode L
    rgba = Image.fromarray(pattern(300, 300, 2)).convert("RGBA")
    for im in (gray, rgba):
        assert wm.rgb_array(im).shape == (300, 300, 3)
        assert wm.watermark_evidence(im) == []


def test_bad_array_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="H x W x 3"):
        wm.block_votes(np.zeros((300, 300), np.uint8))


def test_shared_clean_photos_do_not_match(testdata: Path) -> None:
    # False-positive check on real, unmarked photos (the PDQ test photos).
    photos = sorted((testdata / "pdq" / "reg-test-input" / "labelme-subset").glob("*.jpg"))[:6]
    assert photos
    for f in photos:
        with Image.open(f) as im:
            assert wm.watermark_evidence(im) == [], f.name


# ------------------------------------------------------------------ where the search runs


def _report(rgb: np.ndarray, fmt: str, **save: object):  # noqa: ANN202
    ctx = ctx_of(rgb, fmt, **save)
    return analyze_provenance(ctx.path, ctx.data, ctx.format)


def test_marked_files_whose_encoding_keeps_the_mark_are_searched(ref: ModuleType) -> None:
    rgb = embed(ref, pattern(512, 640, 21), published_bits("sdxl"))
    for fmt, save in (("PNG", {}), ("JPEG", {"quality": 92, "subsampling": 0}),
                      ("JPEG", {"quality": 97, "subsampling": 1}), ("WEBP", {"lossless": True})):
        rep = _report(rgb, fmt, **save)
        assert not rep.not_checked, (fmt, rep.not_checked)
        assert [e.facts["payload"] for e in rep.evidence if e.source == "watermark"][:1] == ["sdxl"], fmt


@pytest.mark.parametrize(
    ("fmt", "save", "shape", "reason"),
    [
        ("JPEG", {"quality": 95, "subsampling": 2}, (512, 512), "4:2:0"),
        ("JPEG", {"quality": 100, "subsampling": 2}, (512, 520), "4:2:0"),
        ("WEBP", {"quality": 95}, (512, 512), "lossy WebP"),
        ("WEBP", {"quality": 100, "exif": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"}, (512, 512), "lossy WebP"),
    ],
)
def test_encodings_that_destroy_the_mark_are_not_searched(
    ref: ModuleType, fmt: str, save: dict[str, object], shape: tuple[int, int], reason: str
) -> None:
    rgb = embed(ref, pattern(*shape, 22), published_bits("sdxl"))
    rep = _report(rgb, fmt, **save)
    assert [(n.source, reason in n.reason) for n in rep.not_checked or []] == [("watermark", True)]
    assert not [e for e in rep.evidence if e.source == "watermark"]
    text = explain(rep)
    assert "not checked: watermark:" in text and "no Stable Diffusion watermark found" not in text
    # nothing is lost by not searching: the full search finds no mark in such a file either
    ctx = ctx_of(rgb, fmt, **save)
    assert all(m.level in ("none", "partial") for m in wm.match_payloads(wm.rgb_array(ctx.pil())))


def test_greyscale_images_are_not_searched() -> None:
    rep = _report(pattern(512, 512, 23)[:, :, 0], "PNG")
    assert rep.not_checked and "greyscale" in rep.not_checked[0].reason


def test_large_png_is_searched_in_its_top_rows_only(ref: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over BAND_PIXELS (lowered here) a PNG is decoded and searched in its top rows:
    the mark is found there as in the whole image, and the report says which rows.
    A 4:2:0 JPEG or a grey PNG is not decoded by provenance at all."""
    from assay.provenance.analyzer import pixels_to_decode

    rgb = embed(ref, pattern(768, 1024, 3), published_bits("sdxl"))
    whole = wm.evidence(ctx_of(rgb))
    monkeypatch.setattr(wm, "BAND_PIXELS", 300_000)
    ctx = ctx_of(rgb)
    assert wm.band_rows(ctx) == 288 and wm.pixels_searched(ctx) == 288 * 1024
    ev = wm.evidence(ctx)
    assert ev and whole and ev[0].facts["payload"] == whole[0].facts["payload"] == "sdxl"
    assert ev[0].facts["confidence"] == "very likely" and ev[0].facts["rows_searched"] == "top 288 of 768"
    assert "rows_searched" not in whole[0].facts
    assert wm.evidence(ctx_of(pattern(768, 1024, 4))) == []  # unmarked: nothing, band or not
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    assert pixels_to_decode(Path("a.png"), png.getvalue(), "png") == 288 * 1024
    jpeg, grey = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", quality=90)  # 4:2:0: no mark can survive
    Image.fromarray(rgb[:, :, 0]).save(grey, "PNG")
    assert pixels_to_decode(Path("a.jpg"), jpeg.getvalue(), "jpeg") == 0
    assert pixels_to_decode(Path("g.png"), grey.getvalue(), "png") == 0


def test_large_baseline_jpeg_is_searched_in_its_top_rows_only(ref: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4:4:4 JPEG (which keeps the mark) over BAND_PIXELS is decoded only down to the
    band: the mark is found as in the whole image, the rows are the whole decode's, and
    the service counts only the band's pixels. A progressive JPEG is searched whole; a
    file that ends inside the band is a decode error, not an empty search."""
    from assay.errors import DecodeError
    from assay.provenance.analyzer import pixels_to_decode

    rgb = embed(ref, pattern(768, 1024, 5), published_bits("sdxl"))
    save = {"quality": 95, "subsampling": 0}
    whole = wm.evidence(ctx_of(rgb, "JPEG", **save))
    monkeypatch.setattr(wm, "BAND_PIXELS", 300_000)
    ctx = ctx_of(rgb, "JPEG", **save)
    assert wm.band_rows(ctx) == 288 and wm.pixels_searched(ctx) == 288 * 1024
    band = wm._top_rows(ctx, 288)
    full = Image.open(io.BytesIO(ctx.data))
    assert band.size == (1024, 288) and np.array_equal(np.asarray(band), np.asarray(full)[:288])
    ev = wm.evidence(ctx)
    assert ev and whole and ev[0].facts["payload"] == whole[0].facts["payload"] == "sdxl"
    assert ev[0].facts["rows_searched"] == "top 288 of 768"
    assert pixels_to_decode(Path("a.jpg"), ctx.data, "jpeg") == 288 * 1024
    prog = ctx_of(rgb, "JPEG", progressive=True, **save)
    assert wm.band_rows(prog) is None and wm.pixels_searched(prog) == 768 * 1024
    cut = ImageContext(Path("cut.jpg"), ctx.data[: len(ctx.data) // 8], "jpeg")
    with pytest.raises(DecodeError, match="cut.jpg"):
        wm.evidence(cut)


def test_preload_loads_the_specialisation_searches_use() -> None:
    # a scan's parent preloads the compiled pass for its workers: a second specialisation
    # (a writable array, say) would be compiled or loaded again in every worker
    from assay.provenance import _wm_kernel

    wm.preload()
    wm.image_votes(Image.fromarray(pattern(64, 64, 1)), compiled=True)
    wm.image_votes(Image.fromarray(pattern(2000, 2100, 1)), compiled=True)  # rows copied, not read in place
    assert len(_wm_kernel.votes.signatures) == 1


@pytest.mark.parametrize("n", [48, 49, 95, 136, 1000, 4097])
def test_decode_bits_is_the_majority_of_each_bits_blocks(n: int) -> None:
    """Bit k is read from blocks k, k + length, k + 2 length ...: more than half of their
    votes (a tie reads 0), whatever the number of blocks left over after whole rounds."""
    rng = np.random.default_rng(n)
    for length in (32, 48, 136):
        if n < length:
            continue
        votes = (rng.random(n) < rng.random()).astype(np.float64)
        votes[: length // 2] = 1.0  # ties and near-ties in the first bits
        expected = [sum(votes[k::length]) * 255 / len(votes[k::length]) > 127 for k in range(length)]
        assert wm.decode_bits(votes, length).tolist() == expected
