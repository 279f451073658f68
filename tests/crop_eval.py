"""Evaluation of the geometry variants (issue #23): rewrites an uploader makes to evade
PDQ, and unrelated images that must not match.

Used by tests/test_crops.py (reduced scale) and bench/eval_crops.py (full scale):

    .venv/bin/python bench/eval_crops.py [--testdata ../shared/testdata]

Each shared photo (PDQ quality >= 50) is banked as ``bank add --image`` banks it (plain
PDQ, the trimmed content, the banked regions of media/crops.py) and every rewrite of
it is queried as ``scan`` queries it (plain PDQ, trimmed, query regions); a rewrite is
found when some query hash lies within distance 31 of some banked hash of its original.
False matches are counted the same way over ordered pairs of unrelated images (tiles of
the shared photos from different places, generated documents and skies), side by side
with plain PDQ (one hash each side).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from assay.banks.matcher import REGION_MIN_AGREE
from assay.media.hashes import ImageHashes, hash_image_bytes
from assay.media.pdq import hamming

THRESHOLD = 31
LOW = 50
Rewrite = Callable[[Image.Image, random.Random], Image.Image]


def encode(im: Image.Image, fmt: str = "JPEG", quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


# ------------------------------------------------------------------ photos


def photos(testdata: Path, limit: int | None = None) -> list[tuple[str, Image.Image]]:
    """The shared photos whose PDQ quality is >= 50 (others are never matched), plus two
    quarters of a 12-MP photo as photos of their own."""
    pdq = testdata / "pdq"
    paths = sorted((pdq / "reg-test-input" / "labelme-subset").glob("*.jpg"))
    paths += [pdq / "bridge-mods" / "aaa-orig.jpg"]
    paths += [testdata / "c2pa" / n for n in ("earth_apollo17.jpg", "P1000827.jpg", "A.jpg")]
    out: list[tuple[str, Image.Image]] = []
    for p in paths:
        if p.is_file():
            out.append((p.name, Image.open(p).convert("RGB")))
    big_path = pdq / "reg-test-input" / "exif-rotn" / "exif-rotn-1.jpg"
    if big_path.is_file():
        big = Image.open(big_path).convert("RGB").reduce(3)
        w, h = big.size
        out += [("exif-rotn-1 top-left", big.crop((0, 0, w // 2, h // 2))),
                ("exif-rotn-1 bottom-right", big.crop((w // 2, h // 2, w, h)))]
    kept = [(n, im) for n, im in out if hash_image_bytes(encode(im, "PNG"), variants=False).quality >= LOW]
    return kept[:limit] if limit else kept


# ------------------------------------------------------------------ rewrites


def _border(im: Image.Image, share: float, colour: tuple[int, int, int]) -> Image.Image:
    w, h = im.size
    return ImageOps.expand(im, border=(int(w * share), int(h * share)) * 2, fill=colour)


def _bars(im: Image.Image, share: float, colour: tuple[int, int, int], letterbox: bool) -> Image.Image:
    w, h = im.size
    size = (w, int(h / (1 - 2 * share))) if letterbox else (int(w / (1 - 2 * share)), h)
    canvas = Image.new("RGB", size, colour)
    canvas.paste(im, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


_WORDS = ("when", "you", "see", "it", "lol", "caption", "this", "is", "fine", "every", "time", "really",
          "look", "again", "what", "happened", "here", "nobody", "asked", "best", "day", "ever")


def _text(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], fill: tuple[int, ...], rng: random.Random) -> None:
    """Lines of words filling ``box`` as a caption does (centred lines, ~60% of the width)."""
    x0, y0, x1, y1 = box
    lines = 1 if (y1 - y0) < 60 else 2
    size = max(8, int((y1 - y0) / (lines + 1) * 0.9))
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the bitmap font
        font = ImageFont.load_default()
    for k in range(lines):
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 6)))
        tw = draw.textlength(text, font=font)
        y = y0 + (y1 - y0) * (k + 0.5) / lines - size / 2
        draw.text(((x0 + x1 - tw) / 2, y), text, fill=fill, font=font)


def caption_over(share: float, style: str, top: bool = False) -> Rewrite:
    """Text laid over the bottom (``top``: the top) ``share`` of the picture: on an
    opaque band, a half-transparent band, or no band."""
    def f(im: Image.Image, rng: random.Random) -> Image.Image:
        w, h = im.size
        out = im.copy()
        band = (0, 0, w, round(share * h)) if top else (0, h - round(share * h), w, h)
        if style == "opaque":
            ImageDraw.Draw(out).rectangle(band, fill=(0, 0, 0))
        elif style == "shade":
            region = out.crop(band)
            out.paste(Image.blend(region, Image.new("RGB", region.size, (0, 0, 0)), 0.55), band[:2])
        _text(ImageDraw.Draw(out), band, (255, 255, 255), rng)
        return out
    return f


def caption_below(share: float, background: tuple[int, int, int]) -> Rewrite:
    """A caption band appended under the picture, ``share`` of the new height."""
    def f(im: Image.Image, rng: random.Random) -> Image.Image:
        w, h = im.size
        bh = round(h * share / (1 - share))
        out = Image.new("RGB", (w, h + bh), background)
        out.paste(im, (0, 0))
        ink = (0, 0, 0) if sum(background) > 380 else (255, 255, 255)
        _text(ImageDraw.Draw(out), (0, h, w, h + bh), ink, rng)
        return out
    return f


def centred_crop(lo: float, hi: float) -> Rewrite:
    def f(im: Image.Image, rng: random.Random) -> Image.Image:
        c = rng.uniform(lo, hi)
        w, h = im.size
        return im.crop((round(c * w), round(c * h), w - round(c * w), h - round(c * h)))
    return f


def offcentre_crop(lo: float, hi: float) -> Rewrite:
    """A crop box anywhere in the picture that removes between ``lo`` and ``hi`` of its area."""
    def f(im: Image.Image, rng: random.Random) -> Image.Image:
        removed = rng.uniform(lo, hi)
        kw = rng.uniform(1 - removed, 1.0)
        kh = (1 - removed) / kw
        w, h = im.size
        x0, y0 = rng.uniform(0, 1 - kw) * w, rng.uniform(0, 1 - kh) * h
        return im.crop((round(x0), round(y0), round(x0 + kw * w), round(y0 + kh * h)))
    return f


def _const(fn: Callable[[Image.Image], Image.Image]) -> Rewrite:
    return lambda im, rng: fn(im)


GROUPS: dict[str, dict[str, Rewrite]] = {
    "borders and bars (up to 25%)": {
        "border 5% white": _const(lambda im: _border(im, 0.05, (250, 250, 250))),
        "border 10% black": _const(lambda im: _border(im, 0.10, (0, 0, 0))),
        "border 20% red": _const(lambda im: _border(im, 0.20, (200, 30, 60))),
        "border 25% grey": _const(lambda im: _border(im, 0.25, (128, 128, 128))),
        "letterbox 20% black": _const(lambda im: _bars(im, 0.20, (0, 0, 0), True)),
        "pillarbox 25% white": _const(lambda im: _bars(im, 0.25, (255, 255, 255), False)),
    },
    "mirror": {
        "mirror": _const(ImageOps.mirror),
    },
    "caption bands (up to 15%)": {
        **{f"caption over {int(s * 100)}% {st}": caption_over(s, st)
           for s in (0.05, 0.10, 0.15) for st in ("opaque", "shade", "text")},
        **{f"caption below {int(s * 100)}% {name}": caption_below(s, bg)
           for s in (0.05, 0.10, 0.15) for name, bg in (("white", (255, 255, 255)), ("black", (0, 0, 0)))},
    },
    "centred crops (up to 10% a side)": {
        f"centred {lo * 100:g}-{hi * 100:g}%": centred_crop(lo, hi)
        for lo, hi in ((0.0, 0.02), (0.02, 0.04), (0.04, 0.06), (0.06, 0.08), (0.08, 0.10))
    },
    "off-centre crops (up to 20% of the area)": {
        f"off-centre {lo * 100:g}-{hi * 100:g}% area #{k}": offcentre_crop(lo, hi)
        for lo, hi in ((0.02, 0.10), (0.10, 0.20)) for k in range(3)
    },
    "caption over the top (up to 15%)": {
        f"caption over top {int(s * 100)}% {st}": caption_over(s, st, top=True)
        for s in (0.05, 0.10, 0.15) for st in ("opaque", "shade", "text")
    },
}
#: Groups added after bench/RESULTS.md's figures: each draws from a generator of its own,
#: so that the rewrites of the others (and their figures) stay as they were.
OWN_RNG = frozenset({"caption over the top (up to 15%)"})
FORMATS: tuple[tuple[str, int], ...] = (("JPEG", 90), ("JPEG", 70), ("PNG", 0))


# ------------------------------------------------------------------ hash sets


def query_hashes(h: ImageHashes) -> list[tuple[str, str]]:
    """(variant, hex) a scan looks up for an image (quality >= 50 only)."""
    out = [("plain", h.pdq)] if h.quality >= LOW else []
    for src in (h.trimmed, h.regions):
        out += [(n, v) for n, (v, q) in (src or {}).items() if q >= LOW]
    return out


def bank_hashes(h: ImageHashes) -> list[tuple[str, str]]:
    """(variant, hex) `bank add --image` stores for an image."""
    out = [("plain", h.pdq)]
    for src in (h.trimmed, h.bank_regions):
        out += [(n, v) for n, (v, q) in (src or {}).items() if q >= LOW and "+" not in n]
    return out


def best(queries: Iterable[tuple[str, str]], banked: Iterable[tuple[str, str]]) -> tuple[int, str, str]:
    """(distance, query variant, bank variant) of the closest pair that counts as a match
    on its own: anchored regions ("region-N") count only when ``REGION_MIN_AGREE`` of the
    query's regions are within the threshold (as banks/matcher.py decides); then the
    distance is the nearest of them and the variant says "k of n"."""
    banked = list(banked)
    queries = list(queries)
    pairs = [(hamming(q, b), qn, bn) for qn, q in queries for bn, b in banked]
    alone = [p for p in pairs if not p[1].startswith("region-")]
    found = min(alone, default=(256, "", ""))
    if found[0] <= THRESHOLD:
        return found
    regions = [qn for qn, _ in queries if qn.startswith("region-")]
    agree = {p[1] for p in pairs if p[1].startswith("region-") and p[0] <= THRESHOLD}
    if len(agree) >= REGION_MIN_AGREE:
        d = min(p[0] for p in pairs if p[1] in agree)
        return (d, f"regions {len(agree)} of {len(regions)}", "regions")
    return min(pairs, default=(256, "", "")) if not alone else found


@dataclass
class Outcome:
    found: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)
    how: dict[str, int] = field(default_factory=dict)  # "query variant / bank variant" -> count


def evaluate(photo_list: list[tuple[str, Image.Image]], groups: dict[str, dict[str, Rewrite]] = GROUPS,
             formats: tuple[tuple[str, int], ...] = FORMATS, seed: int = 0, mode: str = "fast") -> dict[str, Outcome]:
    """Every rewrite of every photo, queried in PDQ ``mode`` (``scan --mode``) against
    its original banked as ``bank add --image`` banks it (fast mode, as that command does)."""
    rng = random.Random(seed)
    own = {g: random.Random(f"{seed}:{g}") for g in OWN_RNG}
    results: dict[str, Outcome] = {}
    for name, im in photo_list:
        banked = bank_hashes(hash_image_bytes(encode(im, "JPEG", 95), bank_variants=True))
        for group, rewrites in groups.items():
            res = results.setdefault(group, Outcome())
            for rname, fn in rewrites.items():
                edited = fn(im, own.get(group, rng))
                for fmt, q in formats:
                    h = hash_image_bytes(encode(edited, fmt, q), mode=mode)
                    d, qn, bn = best(query_hashes(h), banked)
                    res.total += 1
                    if d <= THRESHOLD:
                        res.found += 1
                        key = "anchored regions" if qn.startswith("regions ") else f"{qn} / {bn}"
                        res.how[key] = res.how.get(key, 0) + 1
                    else:
                        res.misses.append(f"{name}: {rname} {fmt}{q or ''} (best {d})")
    return results


# ------------------------------------------------------------------ unrelated images


def unrelated(testdata: Path, docs: int = 25, skies: int = 25) -> list[Image.Image]:
    """Images of different scenes: tiles of two shared photos, generated documents
    (white pages with lines of "words") and skies (gradients with grain): near-uniform
    images are where region hashes are most likely to collide."""
    big = Image.open(testdata / "pdq" / "reg-test-input" / "exif-rotn" / "exif-rotn-1.jpg").convert("RGB")
    big = big.reduce(2)
    imgs = [big.crop((x, y, x + 192, y + 192))
            for y in range(0, big.height - 192, 192) for x in range(0, big.width - 192, 192)]
    bridge = Image.open(testdata / "pdq" / "bridge-mods" / "aaa-orig.jpg").convert("RGB")
    imgs += [bridge.crop((x, y, x + 300, y + 300)) for y in range(0, 700, 300) for x in range(0, 1300, 300)]
    for name in ("A.jpg", "P1000827.jpg"):
        path = testdata / "c2pa" / name
        if path.is_file():
            other = Image.open(path).convert("RGB")
            imgs += [other.crop((x, y, x + 192, y + 192))
                     for y in range(0, other.height - 191, 192) for x in range(0, other.width - 191, 192)]
    rng = np.random.default_rng(0)
    for _ in range(docs):
        page = Image.new("RGB", (400, 560), (250, 250, 248))
        draw = ImageDraw.Draw(page)
        for line in range(int(rng.integers(5, 25))):
            x, y = 40, 40 + 20 * line
            while x < 360:
                w = int(rng.integers(10, 50))
                draw.rectangle((x, y, x + w, y + 8), fill=(20, 20, 20))
                x += w + int(rng.integers(5, 12))
        imgs.append(page)
    for _ in range(skies):
        top, bottom = rng.uniform(80, 200, 3), rng.uniform(150, 255, 3)
        t = np.linspace(0, 1, 300)[:, None, None]
        sky = top * (1 - t) + bottom * t + rng.normal(0, rng.uniform(0.5, 4), (300, 400, 3))
        imgs.append(Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8)))
    return imgs


@dataclass
class FalseMatches:
    pairs: int  # ordered pairs of different images
    compared: int  # of which the query side had a hash of quality >= 50 to look up
    plain: int  # plain PDQ (one hash each side) within 31
    variants: int  # any query hash within 31 of any banked hash
    plain_distances: list[int]  # smallest plain distance per pair, for the margin
    variant_distances: list[int]


def false_matches(images: list[Image.Image]) -> FalseMatches:
    hashes = [hash_image_bytes(encode(im), bank_variants=True) for im in images]
    queries = [query_hashes(h) for h in hashes]
    banked = [bank_hashes(h) for h in hashes]
    # Anchored regions count only together (REGION_MIN_AGREE), the rest one by one.
    bits_q = [_bits([v for n, v in q if not n.startswith("region-")]) for q in queries]
    bits_r = [_bits([v for n, v in q if n.startswith("region-")]) for q in queries]
    bits_b = [_bits([v for _, v in b]) for b in banked]
    plain = [_bits([h.pdq]) for h in hashes]
    ok = [h.quality >= LOW for h in hashes]
    n = len(hashes)
    pv = pp = 0
    dp: list[int] = []
    dv: list[int] = []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d_plain = _min_dist(plain[i], plain[j]) if ok[i] else 256
            d_var = _min_dist(bits_q[i], bits_b[j]) if len(bits_q[i]) else 256
            if len(bits_r[i]) and len(bits_b[j]):
                d_reg = _dists(bits_r[i], bits_b[j]).min(axis=1)
                agree = np.sort(d_reg)[REGION_MIN_AGREE - 1] if len(d_reg) >= REGION_MIN_AGREE else 256
                d_var = min(d_var, int(agree))  # the k-th best region: within 31 iff k agree
            pp += d_plain <= THRESHOLD
            pv += d_var <= THRESHOLD
            dp.append(d_plain)
            dv.append(d_var)
    compared = sum(len(q) + len(r) > 0 for q, r in zip(bits_q, bits_r, strict=True)) * (n - 1)
    return FalseMatches(n * (n - 1), compared, pp, pv, dp, dv)


def _bits(hexes: list[str]) -> np.ndarray:
    """(n, 4) uint64 words of PDQ hex strings."""
    if not hexes:
        return np.zeros((0, 4), dtype=np.uint64)
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in hexes), dtype=np.uint64).reshape(len(hexes), 4)


def _dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2)


def _min_dist(a: np.ndarray, b: np.ndarray) -> int:
    if not len(a) or not len(b):
        return 256
    return int(_dists(a, b).min())
