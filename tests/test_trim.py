"""Borders and bars: the content inside uniform margins is hashed as an extra PDQ variant.

The evaluation rewrites the shared photos as an evader would (borders of several
colours and widths, letterbox and pillarbox bars, saved as JPEG and PNG) and checks
that every rewrite matches the original at PDQ distance 31, in both directions (a
bordered query against a clean bank entry, a clean query against an entry banked from
a bordered image); and that the extra variants add no false match among unrelated
images: tiles of the shared photos, generated documents and skies (near-uniform images
are where trimming is most active).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from typer.testing import CliRunner

from assay.cli import app
from assay.media.hashes import hash_image_bytes
from assay.media.pdq import hamming
from assay.media.trim import content_boxes

THRESHOLD = 31
runner = CliRunner()


def _enc(im: Image.Image, fmt: str = "JPEG", quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like luma plane: smooth structure plus fine detail, no flat edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(x / rng.uniform(5, 15)) * np.cos(y / rng.uniform(5, 15))
    return np.clip(base + rng.normal(0, 20, (h, w)), 0, 255).astype(np.float32)


def _border(im: Image.Image, share: float, colour: tuple[int, int, int]) -> Image.Image:
    w, h = im.size
    return ImageOps.expand(im, border=(int(w * share), int(h * share)) * 2, fill=colour)


def _bars(im: Image.Image, share: float, colour: tuple[int, int, int], letterbox: bool) -> Image.Image:
    w, h = im.size
    size = (w, int(h / (1 - 2 * share))) if letterbox else (int(w / (1 - 2 * share)), h)
    canvas = Image.new("RGB", size, colour)
    canvas.paste(im, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


EDITS = {
    "border 5% white": lambda im: _border(im, 0.05, (250, 250, 250)),
    "border 10% black": lambda im: _border(im, 0.10, (0, 0, 0)),
    "border 10% grey": lambda im: _border(im, 0.10, (128, 128, 128)),
    "border 20% red": lambda im: _border(im, 0.20, (200, 30, 60)),
    "border 25% white": lambda im: _border(im, 0.25, (255, 255, 255)),
    "letterbox 20% black": lambda im: _bars(im, 0.20, (0, 0, 0), True),
    "pillarbox 20% blue": lambda im: _bars(im, 0.20, (20, 40, 160), False),
    "pillarbox 25% white": lambda im: _bars(im, 0.25, (255, 255, 255), False),
}


# ------------------------------------------------------------------ the detector


@pytest.mark.parametrize("sides", [(1, 1, 1, 1), (1, 1, 0, 0), (0, 0, 1, 1), (0, 1, 0, 0), (1, 0, 1, 0)])
@pytest.mark.parametrize("colour", [0.0, 127.0, 255.0])
def test_margins_are_found_to_the_line(sides: tuple[int, int, int, int], colour: float) -> None:
    content = _texture(120, 160, seed=int(colour) + sum(sides))
    t, b, lft, r = (s * m for s, m in zip(sides, (17, 23, 29, 11), strict=True))
    plane = np.full((120 + t + b, 160 + lft + r), colour, dtype=np.float32)
    plane[t:t + 120, lft:lft + 160] = content
    box = content_boxes(plane)["trimmed"]
    assert (box.top, box.bottom, box.left, box.right) == (t, t + 120, lft, lft + 160)


def test_noisy_margins_are_still_margins() -> None:
    rng = np.random.default_rng(3)
    plane = np.full((200, 200), 20.0, dtype=np.float32) + rng.normal(0, 3, (200, 200)).astype(np.float32)
    plane[30:170, 30:170] = _texture(140, 140, seed=4)
    box = content_boxes(plane)["trimmed"]
    assert abs(box.top - 30) <= 1 and abs(box.bottom - 170) <= 1
    assert abs(box.left - 30) <= 1 and abs(box.right - 170) <= 1


def test_nothing_to_trim() -> None:
    assert content_boxes(_texture(200, 300, seed=5)) == {}  # content to the edge
    assert content_boxes(np.full((200, 300), 90, np.float32)) == {}  # nothing but margin
    assert content_boxes(np.zeros((10, 10), np.float32)) == {}  # too small to judge
    framed = np.full((202, 302), 255.0, np.float32)  # a one-line frame (resampling) is no margin
    framed[1:201, 1:301] = _texture(200, 300, seed=5)
    assert content_boxes(framed) == {}


@pytest.mark.parametrize("lines", [2, 3, 5])
def test_thin_margins_are_found(lines: int) -> None:
    """A strip of 1-2% along one side moves PDQ by 24-76 bits (below): found to the line."""
    plane = np.full((256 + lines, 256), 255.0, np.float32)
    plane[lines:] = _texture(256, 256, seed=lines)
    box = content_boxes(plane)["trimmed"]
    assert (box.top, box.bottom, box.left, box.right) == (lines, 256 + lines, 0, 256)


def test_a_strip_of_another_colour_than_the_pictures_flat_edge_gives_its_own_region() -> None:
    """The picture's own flat grey edge reads as margin beside the white strip added
    to another side; the region inside the white margins alone is offered too."""
    content = _texture(240, 240, seed=8)
    content[:, 230:] = 120.0  # a flat grey wall along the picture's right edge
    plane = np.full((246, 240), 255.0, np.float32)
    plane[6:] = content
    boxes = content_boxes(plane)
    assert (boxes["trimmed"].top, boxes["trimmed"].right) == (6, 230)  # cut into the picture
    alone = boxes["trimmed-top"]
    assert (alone.top, alone.bottom, alone.left, alone.right) == (6, 246, 0, 240)


def test_uneven_margins_also_give_the_even_candidate() -> None:
    """Flat content beside a margin of its own colour reads as margin; an even
    candidate (the thinner margin on both sides) is offered beside it."""
    content = _texture(100, 100, seed=6)
    content[70:, :] = 0.0  # dark flat ground at the bottom of the picture
    plane = np.zeros((140, 140), np.float32)
    plane[20:120, 20:120] = content
    boxes = content_boxes(plane)
    assert boxes["trimmed"].bottom < 120  # cut into the picture
    even = boxes["trimmed-even"]
    assert (even.top, even.bottom, even.left, even.right) == (20, 120, 20, 120)


# ------------------------------------------------------------------ evaluation on shared photos


def _photos(testdata: Path) -> list[tuple[str, Image.Image]]:
    pdq = testdata / "pdq"
    paths = sorted((pdq / "reg-test-input" / "labelme-subset").glob("*.jpg")) + [pdq / "bridge-mods" / "aaa-orig.jpg"]
    out = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        if hash_image_bytes(_enc(im, "PNG"), variants=False).quality >= 50:  # only matchable photos
            out.append((p.name, im))
    assert len(out) >= 5
    return out


def _queries(data: bytes) -> list[str]:
    h = hash_image_bytes(data)
    return [h.pdq] + [v for v, q in (h.trimmed or {}).values() if q >= 50]


@pytest.mark.shared
def test_bordered_and_barred_copies_match_the_original(testdata: Path) -> None:
    misses = []
    for name, im in _photos(testdata):
        original = hash_image_bytes(_enc(im), variants=False).pdq
        for edit, fn in EDITS.items():
            for fmt in ("JPEG", "PNG"):
                data = _enc(fn(im), fmt)
                plain = hamming(original, hash_image_bytes(data, variants=False).pdq)
                best = min(hamming(original, q) for q in _queries(data))
                assert plain > THRESHOLD or edit == "border 5% white", (name, edit, plain)  # a real evasion
                if best > THRESHOLD:
                    misses.append((name, edit, fmt, plain, best))
    assert misses == []


@pytest.mark.shared
def test_thin_strips_along_one_or_two_sides_match_the_original(testdata: Path) -> None:
    """White strips of 0.6-1.9% along the top, the left, or the top and the right (as
    an evader pads a picture to move its hash): 59 of 144 copies missed when margins under
    2% were ignored (and the picture's own flat edge was cut with the strip)."""
    misses, evasions = [], 0
    for name, im in _photos(testdata):
        original = hash_image_bytes(_enc(im, "PNG"), variants=False).pdq
        w, h = im.size
        for share in (0.006, 0.01, 0.015, 0.019):
            m, n = max(2, round(h * share)), max(2, round(w * share))
            for top, left, right in ((m, 0, 0), (0, n, 0), (m, 0, n)):
                canvas = Image.new("RGB", (w + left + right, h + top), (255, 255, 255))
                canvas.paste(im, (left, top))
                for fmt in ("PNG", "JPEG"):
                    data = _enc(canvas, fmt)
                    evasions += hamming(original, hash_image_bytes(data, variants=False).pdq) > THRESHOLD
                    best = min(hamming(original, q) for q in _queries(data))
                    if best > THRESHOLD:
                        misses.append((name, share, (top, left, right), fmt, best))
    assert evasions >= 20  # the strips alone move the hash out of reach
    assert misses == []


@pytest.mark.shared
def test_a_clean_copy_matches_an_entry_banked_from_a_bordered_image(testdata: Path) -> None:
    for name, im in _photos(testdata):
        clean = hash_image_bytes(_enc(im), variants=False).pdq
        for edit in ("border 10% black", "letterbox 20% black", "pillarbox 20% blue"):
            banked = _queries(_enc(EDITS[edit](im)))  # what `bank add --image` stores
            assert min(hamming(clean, b) for b in banked) <= THRESHOLD, (name, edit)


def _unrelated(testdata: Path) -> list[Image.Image]:
    big = Image.open(testdata / "pdq" / "reg-test-input" / "exif-rotn" / "exif-rotn-1.jpg").convert("RGB")
    big = big.reduce(2)
    imgs = [big.crop((x, y, x + 192, y + 192))
            for y in range(0, big.height - 192, 192) for x in range(0, big.width - 192, 192)]
    bridge = Image.open(testdata / "pdq" / "bridge-mods" / "aaa-orig.jpg").convert("RGB")
    imgs += [bridge.crop((x, y, x + 300, y + 300)) for y in range(0, 700, 300) for x in range(0, 1300, 300)]
    rng = np.random.default_rng(0)
    for _ in range(25):  # documents: a white page with lines of "words"
        page = Image.new("RGB", (400, 560), (250, 250, 248))
        draw = ImageDraw.Draw(page)
        for line in range(int(rng.integers(5, 25))):
            x, y = 40, 40 + 20 * line
            while x < 360:
                w = int(rng.integers(10, 50))
                draw.rectangle((x, y, x + w, y + 8), fill=(20, 20, 20))
                x += w + int(rng.integers(5, 12))
        imgs.append(page)
    for _ in range(25):  # skies: vertical gradients with grain
        top, bottom = rng.uniform(80, 200, 3), rng.uniform(150, 255, 3)
        t = np.linspace(0, 1, 300)[:, None, None]
        sky = top * (1 - t) + bottom * t + rng.normal(0, rng.uniform(0.5, 4), (300, 400, 3))
        imgs.append(Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8)))
    return imgs


@pytest.mark.shared
def test_variants_add_no_false_match_among_unrelated_images(testdata: Path) -> None:
    hashes = [hash_image_bytes(_enc(im)) for im in _unrelated(testdata)]
    assert sum(1 for h in hashes if h.trimmed) >= 20  # the variants were really exercised
    plain = with_variants = 0
    for i, a in enumerate(hashes):
        queries = [(a.pdq, a.quality), *(a.trimmed or {}).values()]
        for j, b in enumerate(hashes):
            if i == j:
                continue
            bank = [b.pdq] + [v for v, q in (b.trimmed or {}).values() if q >= 50]
            plain += a.quality >= 50 and hamming(a.pdq, b.pdq) <= THRESHOLD
            with_variants += any(q >= 50 and hamming(v, x) <= THRESHOLD for v, q in queries for x in bank)
    assert len(hashes) * (len(hashes) - 1) >= 10_000
    assert with_variants <= plain


# ------------------------------------------------------------------ what a person sees


def _run(db: Path, *args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["--db", str(db), *args])
    return res.exit_code, res.stdout


def test_scan_reports_a_bordered_copy_as_a_trimmed_match(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([128 + 80 * np.sin(x / 9.0 + c) * np.cos(y / 13.0) for c in range(3)], axis=-1)
    im = Image.fromarray(np.clip(rgb + rng.normal(0, 10, rgb.shape), 0, 255).astype(np.uint8))
    im.save(tmp_path / "original.png")
    case = tmp_path / "case"
    case.mkdir()
    _border(im, 0.15, (0, 0, 0)).save(case / "bordered.jpg", quality=90)
    db = tmp_path / "s.sqlite3"
    assert _run(db, "bank", "create", "known", "--create")[0] == 0
    code, _ = _run(db, "bank", "add", "known", "--content-id", "orig", "--image", str(tmp_path / "original.png"))
    assert code == 0
    code, out = _run(db, "scan", str(case), "--json", "--workers", "1")
    assert code == 0
    rec = next(json.loads(line) for line in out.splitlines() if '"assay.file/1"' in line)
    assert any(s.get("variant") == "trimmed" for s in rec["signals"])
    assert [m["query_variant"] for m in rec["matches"] if m["signal_type"] == "pdq"] == ["trimmed"]
    code, out = _run(db, "scan", str(case), "--json", "--workers", "1", "--no-variants")
    rec = next(json.loads(line) for line in out.splitlines() if '"assay.file/1"' in line)
    assert not rec.get("matches") and not any(s.get("variant") for s in rec["signals"])
    code, out = _run(db, "scan", str(case), "--workers", "1", "-o", str(tmp_path / "r.jsonl"))
    assert code == 0 and "bordered.jpg" in out and "Traceback" not in out


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (128, 128, 128)])
def test_a_border_is_placed_to_the_pixel_on_a_reduced_jpeg(colour: tuple[int, int, int]) -> None:
    """A 1/8 JPEG decode puts a border's edge on 8-pixel blocks, a hash ~40 bits off;
    the edge goes on a finer plane (decoded again only when there is a border)."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:683, 0:1024]
    rgb = np.stack([128 + 70 * np.sin(x / rng.uniform(20, 40) + c) * np.cos(y / rng.uniform(25, 45))
                    + 25 * np.sin((x + 2 * y) / rng.uniform(60, 90)) for c in range(3)], axis=-1)
    im = Image.fromarray(np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8))
    original = hash_image_bytes(_enc(im, "JPEG", 95), variants=False).pdq
    bordered = ImageOps.expand(im, border=(101, 67, 101, 67), fill=colour)  # not on 8-pixel blocks
    h = hash_image_bytes(_enc(bordered, "JPEG", 90))
    assert h.trim_margins is not None
    top, bottom, left, right = h.trim_margins["trimmed"]
    assert abs(top * bordered.height - 67) <= 1 and abs(left * bordered.width - 101) <= 1
    assert hamming(original, h.trimmed["trimmed"][0]) <= 16  # type: ignore[index]


def test_the_picture_inside_margins_of_one_colour_is_a_whole_picture_match() -> None:
    from assay.banks.matcher import is_partial

    assert not is_partial("trimmed-top") and not is_partial("trimmed-left-right+rot90")
    assert is_partial("trimmed-blur")  # the bars may be a photo's own calm parts
    assert is_partial("crop-4") and is_partial("upper-85")


# ------------------------------------------------------------------ a picture over a blurred copy


def _blur_filled(im: Image.Image, size: tuple[int, int], blur: float) -> Image.Image:
    """The "blurred background" of a story or vertical-video format: the picture fitted into
    ``size`` over a blurred copy of itself stretched to fill it."""
    from PIL import ImageFilter

    w, h = im.size
    canvas = im.resize(size).filter(ImageFilter.GaussianBlur(blur))
    s = min(size[0] / w, size[1] / h)
    fg = im.resize((round(w * s), round(h * s)))
    canvas.paste(fg, ((size[0] - fg.width) // 2, (size[1] - fg.height) // 2))
    return canvas


def test_blurred_bars_are_found_to_the_line() -> None:
    rng = np.random.default_rng(12)
    plane = np.zeros((400, 240), np.float32)
    y = np.arange(400, dtype=np.float32)[:, None]
    plane[:] = 120 + 30 * np.sin(y / 40) + 0.05 * rng.normal(0, 1, (400, 240))  # smooth, not flat
    yy, xx = np.mgrid[0:240, 0:240]
    plane[90:330] = 100 + 80 * np.sin(xx / 7.0) * np.cos(yy / 9.0) + rng.normal(0, 4, (240, 240))  # a photo's detail
    box = content_boxes(plane)["trimmed-blur"]
    assert (box.top, box.bottom, box.left, box.right) == (90, 330, 0, 240)
    assert "trimmed-blur" not in content_boxes(_texture(400, 240, seed=13))


@pytest.mark.shared
def test_a_picture_over_a_blurred_copy_of_itself_matches_the_original(testdata: Path) -> None:
    """Fitted into a 9:16 or 16:9 frame over a blurred stretched copy (what story and
    vertical-video tools do): the plain hash misses every time; the picture between the two
    blurred bars (variant ``trimmed-blur``) matched 59 of 80 such copies of the shared photos
    in the evaluation (2 before), this reduced set as many as asserted below."""
    pdq = testdata / "pdq"
    big = Image.open(pdq / "reg-test-input" / "exif-rotn" / "exif-rotn-1.jpg").convert("RGB")
    pictures = [Image.open(pdq / "bridge-mods" / "aaa-orig.jpg").convert("RGB"),
                Image.open(pdq / "reg-test-input" / "pen-and-coaster.png").convert("RGB"),
                big.crop((0, 0, 2000, 1500)), big.crop((2000, 1500, 4000, 3000)), big.crop((2400, 0, 3600, 1800))]
    found = total = plain_found = 0
    for im in pictures:
        original = hash_image_bytes(_enc(im, "PNG"), variants=False).pdq
        for size, blur in (((1080, 1920), 30), ((1920, 1080), 25)):
            for fmt in ("JPEG", "PNG"):
                h = hash_image_bytes(_enc(_blur_filled(im, size, blur), fmt))
                total += 1
                plain_found += hamming(original, h.pdq) <= THRESHOLD
                found += any(hamming(original, v) <= THRESHOLD for v, q in (h.trimmed or {}).values() if q >= 50)
    assert plain_found == 0 and total == 20
    assert found >= 15, found


@pytest.mark.shared
def test_blurred_bars_are_not_seen_in_ordinary_pictures(testdata: Path) -> None:
    hashes = [hash_image_bytes(_enc(im)) for im in _unrelated(testdata)]
    assert not any(h.trimmed and "trimmed-blur" in h.trimmed for h in hashes)
