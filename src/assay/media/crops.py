"""Crops and caption bands: which regions of an image get a PDQ hash of their own.

PDQ does not survive geometry. Measured on the shared photos (bench/measure_crops.py):
a centred crop of 0.5% per side already moves the hash by a median of 14 bits (up to 72
on 256-px photos), 1% by 28, 2% by 46; a 1% cut from one side by 20. So a crop is found
only when some hashed region of the query lies within about 0.25-0.5% of a side of some
hashed region of the original. Two grids make that affordable:

* the **bank** side (``bank add --image``) hashes centred crops of the original at
  ``BANK_CROPS`` (2, 4, ..., 10% cut from each side: five more index entries);
* the **query** side (``scan``, ``match --image``) hashes centred crops of the query at
  ``QUERY_CROPS`` (0.4, 0.8, 1.2, 1.6%), and a crop of a crop is a crop: the query's
  crop of q of an upload cut c from each side is the original cut by ~c + q, so every cut
  up to ~11.6% is within 0.2% of some query crop of some banked crop. Steps of 0.4% are
  one pixel on a 256-px photo, where one pixel off moves PDQ by up to 50 bits.

Caption bands over the bottom of the picture: text laid *over* the picture (up to
``UPPER_SHARE`` of the height) leaves the upper region intact, so both sides hash the
upper 85% (``upper-85``); text laid over the *top* leaves the lower region intact
(``lower-85``); a band *appended* below (or above) the picture is found
like a border whose rows are mostly its background colour with some text
(``caption_rows``) and the picture beside it is hashed (``uncaptioned``,
``uncaptioned-top``).

A match through any of these says so (``query_variant`` and the bank's own variant):
it is a weaker claim than a plain PDQ match, see banks/matcher.py.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from . import trim

#: Shares of each side cut by the banked centred crops (bank side).
BANK_CROPS: tuple[float, ...] = (0.02, 0.04, 0.06, 0.08, 0.10)
#: Shares of each side cut by the query's own centred crops (query side).
QUERY_CROPS: tuple[float, ...] = (0.004, 0.008, 0.012, 0.016)
#: The upper (lower) region both sides hash: a caption over the bottom (top) 15% leaves it intact.
UPPER_SHARE = 0.85

# Caption band detection (an appended band: a background colour with lines of text).
BAND_SHARE = 0.5  # a band row has at least this share of pixels at the band colour (text: the rest)
INK = 80.0  # grey levels from the band colour: a pixel of text
INK_SHARE = 0.02  # a row with at least this share of ink pixels holds text
INK_ROWS = 0.2  # a band has text in at least this share of its rows (a sky has none)
BAND_CONTENT_RUN = 6  # this many consecutive non-band rows end the band
MAX_BAND_SHARE = 0.35  # a band is at most this share of the height
MIN_BAND_SHARE = 0.03  # thinner bands move PDQ little and are left alone
# On a reduced plane (a JPEG at 1/4 or 1/8) a line of caption text still leaves at least
# this share of its densest row off the band's colour (captions of 5-15% under the shared
# photos at 1/8: 0.145 and more), where a sky's run above a picture's top has less (the
# bridge photo: 0.04): only then is the band decided on a finer plane (``may_hold_caption``).
HINT_SHARE = 0.08

#: Box in (possibly fractional) pixels: (top, bottom, left, right), rows [top, bottom), cols [left, right).
PixelBox = tuple[float, float, float, float]


def _name(prefix: str, share: float) -> str:
    pct = round(share * 100, 1)
    return f"{prefix}-{pct:g}"


def centred_box(height: int, width: int, share: float) -> PixelBox:
    # Whole pixels: a fractional edge resamples (blurs) the picture, which moved PDQ
    # more on 256-px photos than the half pixel rounding does (bench/measure_crops.py).
    dy, dx = round(share * height), round(share * width)
    return (dy, height - dy, dx, width - dx)


def upper_box(height: int, width: int, share: float = UPPER_SHARE) -> PixelBox:
    return (0, round(share * height), 0, width)


def lower_box(height: int, width: int, share: float = UPPER_SHARE) -> PixelBox:
    return (height - round(share * height), height, 0, width)


def bank_boxes(height: int, width: int) -> dict[str, PixelBox]:
    """Regions of an image being banked, beyond the whole image: centred crops and the
    upper and lower regions."""
    out = {_name("crop", s): centred_box(height, width, s) for s in BANK_CROPS}
    out[_name("upper", UPPER_SHARE)] = upper_box(height, width)
    out[_name("lower", UPPER_SHARE)] = lower_box(height, width)
    return out


def query_boxes(height: int, width: int, bank_kinds: Collection[str] | None = None) -> dict[str, PixelBox]:
    """Fixed regions of a query image (``height`` x ``width`` original pixels) beyond the
    whole image (the picture beside a caption band: ``caption_boxes``). The upper (lower)
    region matches only a banked upper (lower) region: left out when ``bank_kinds`` (the
    kinds of variant hashes the banks hold; None: unknown) has no ``upper`` (``lower``:
    banks written before it was hashed have none)."""
    out = {_name("crop", s): centred_box(height, width, s) for s in QUERY_CROPS}
    if bank_kinds is None or "upper" in bank_kinds:
        out[_name("upper", UPPER_SHARE)] = upper_box(height, width)
    if bank_kinds is None or "lower" in bank_kinds:
        out[_name("lower", UPPER_SHARE)] = lower_box(height, width)
    return out


def caption_boxes(luma: np.ndarray, height: int, width: int) -> dict[str, PixelBox]:
    """The picture beside each caption band of ``luma`` (a plane of an image ``height`` x
    ``width`` original pixels), in original pixels (``caption_bands``)."""
    h_r = np.asarray(luma).shape[0]
    # Variants per band: a picture whose own top looks like a band (dark space, a flat
    # sky with a bird) must not spoil the cut at a real caption below it.
    out: dict[str, PixelBox] = {}
    for name, rows in caption_bands(luma).items():
        cut = round(rows * height / h_r)
        out[name] = (cut, height, 0, width) if name.startswith("uncaptioned-top") else (0, height - cut, 0, width)
    return out


def _band_run(lines: np.ndarray, limit: int) -> tuple[int, np.ndarray] | None:
    """(rows, deviations) of a run of band rows at the start of ``lines``: the outermost
    row is uniform (a band's padding), then rows stay mostly (``BAND_SHARE``) of its colour
    until ``BAND_CONTENT_RUN`` rows in a row are not. None without such a run ending
    within ``limit`` rows (no picture within reach)."""
    if lines.shape[0] < 2 or lines.shape[1] < trim.MIN_LINE:
        return None
    colour = np.float32(np.median(lines[0]))
    if (np.abs(lines[0] - colour) <= trim.TOLERANCE).mean() < trim.SHARE:
        return None  # the usual case, decided on one row
    dev = np.abs(lines[:limit] - colour)
    # A band's background is flat: a good share of every row, text or not, stays within a
    # few grey levels of its colour; a gradient (a sky) drifts away from it.
    band = (dev <= trim.MEDIAN_TOLERANCE).mean(axis=1) >= BAND_SHARE
    run = 0
    for i, is_band in enumerate(band.tolist()):
        run = 0 if is_band else run + 1
        if run == BAND_CONTENT_RUN:
            return i - BAND_CONTENT_RUN + 1, dev
    return None


def _band_rows(lines: np.ndarray, limit: int) -> tuple[int, int]:
    """How many leading rows of ``lines`` form a caption band, and 0 or a second estimate
    when the first is in doubt: (rows to the picture's edge, rows of a band whose text is
    evenly padded)."""
    found = _band_run(lines, limit)
    if found is None:
        return 0, 0
    stop, dev = found
    inked = (dev[:stop] > INK).mean(axis=1) >= INK_SHARE
    if stop == 0 or inked.mean() < INK_ROWS:
        return 0, 0  # a flat strip with no text is a margin (media/trim.py) or a flat picture
    # The picture's edge: the biggest change of the row means near the stop.
    lo = max(1, stop - trim.REFINE)
    means = lines[lo - 1:stop + 1].mean(axis=1)
    edge = int(lo + int(np.argmax(np.abs(np.diff(means)))))
    # A picture whose own edge is of the band's colour (black space under a black band)
    # carries the band's run on into it, and the edge found lies inside the picture: ink
    # (the picture) then reaches the edge, with no inner padding. The band's text is the
    # ink before the longest ink-free gap, set as a caption is, with as much padding inside
    # as outside: a second estimate (the first may still be right).
    rows = np.flatnonzero(inked[:edge])
    even = 0
    if len(rows) > 1 and rows[-1] >= edge - 2:
        gaps = np.diff(rows) - 1
        k = int(np.argmax(gaps))
        if gaps[k] > max(int(rows[0]), 2):
            even = int(rows[k]) + 1 + int(rows[0])
    return edge, even


def caption_bands(luma: np.ndarray) -> dict[str, int]:
    """Rows of appended caption bands of a (H, W) luma plane: ``uncaptioned`` (rows at the
    bottom) and ``uncaptioned-top`` (at the top) where there is a band, and
    ``uncaptioned-even`` / ``uncaptioned-top-even`` where the picture continues in the
    band's colour and the band's extent is in doubt (its text's even padding says where
    it ends). Bands thinner than ``MIN_BAND_SHARE`` and plain uniform strips (margins:
    media/trim.py) are not reported."""
    plane = np.asarray(luma, dtype=np.float32)
    if plane.ndim != 2 or plane.shape[0] < 4 * trim.MIN_LINE or plane.shape[1] < 4 * trim.MIN_LINE:
        return {}
    h = plane.shape[0]
    limit = int(h * MAX_BAND_SHARE)
    out: dict[str, int] = {}
    for name, lines in (("uncaptioned-top", plane), ("uncaptioned", plane[::-1])):
        edge, even = _band_rows(lines, limit)
        if edge >= MIN_BAND_SHARE * h:
            out[name] = edge
            if even >= MIN_BAND_SHARE * h:
                out[f"{name}-even"] = even
    return out


def caption_rows(luma: np.ndarray) -> tuple[int, int]:
    """Rows of an appended caption band at the (top, bottom) of a (H, W) luma plane, 0
    where there is none (``caption_bands``'s first estimates)."""
    bands = caption_bands(luma)
    return bands.get("uncaptioned-top", 0), bands.get("uncaptioned", 0)


def may_hold_caption(luma: np.ndarray) -> bool:
    """Whether a reduced plane may hold a caption band that it is too coarse to decide on:
    a run of band rows at the top or bottom with a row well drawn on (``HINT_SHARE``). On a JPEG decoded
    at 1/8 the strokes of a caption's letters average away (a 2-pixel stroke keeps a
    quarter of its contrast) and the band's edge is known to 8 pixels; ``caption_bands``
    then runs on a finer plane (decode.fine_luma)."""
    plane = np.asarray(luma, dtype=np.float32)
    if plane.ndim != 2 or plane.shape[0] < 4 * trim.MIN_LINE or plane.shape[1] < 4 * trim.MIN_LINE:
        return False
    limit = int(plane.shape[0] * MAX_BAND_SHARE)
    for lines in (plane, plane[::-1]):
        found = _band_run(lines, limit)
        if found is not None and found[0] >= MIN_BAND_SHARE * plane.shape[0] - 1:
            stop, dev = found
            if (dev[:stop] > trim.TOLERANCE).mean(axis=1).max() >= HINT_SHARE:
                return True
    return False


# ---------------------------------------------------------------- anchored regions

#: Lines per axis an anchored region may start or end on (the strongest edges).
ANCHOR_LINES = 6
#: A region spans at least this share of the image along each axis, and at most
#: ANCHOR_MAX_SPAN (wider regions reach the edges a crop removes: on the shared photos
#: dropping them kept 112 of 132 off-centre crops found, against 112 with them, for 40
#: regions an image instead of ~48).
ANCHOR_MIN_SPAN = 0.3
ANCHOR_MAX_SPAN = 0.75
#: Edge profiles are smoothed over this share of their length (JPEG noise, texture).
ANCHOR_SMOOTH = 0.01
#: Two lines are at least this share of the length apart.
ANCHOR_SEPARATION = 0.04
#: At most this many regions an image (a bound on the cost: 6 lines an axis allow up to
#: 225; the shared photos and the unrelated images of bench/eval_crops.py have at most 72,
#: 42 on average, so the cap never changed a result there).
ANCHOR_MAX_REGIONS = 96


def _smooth(profile: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(3 * sigma) + 1)
    x = np.arange(-r, r + 1)
    kernel = np.exp(-x * x / (2 * sigma * sigma))
    return np.convolve(np.pad(profile, r, mode="edge"), kernel / kernel.sum(), mode="valid")


def _lines(profile: np.ndarray, length: int) -> list[float]:
    """Positions (in plane pixels, sub-pixel) of the ``ANCHOR_LINES`` most prominent
    peaks of an edge profile: where the picture changes most along one axis."""
    s = _smooth(profile, max(1.0, ANCHOR_SMOOTH * length))
    if len(s) < 3:
        return []
    peaks = np.flatnonzero((s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])) + 1
    if not len(peaks):
        return []
    reach = max(2, int(0.1 * length))
    # Prominence over the neighbourhood: a crop keeps a strong edge strong. The lowest
    # value within ``reach`` on either side of every peak (ends padded with +inf).
    padded = np.concatenate([np.full(reach, np.inf), s, np.full(reach, np.inf)])
    lowest = np.lib.stride_tricks.sliding_window_view(padded, reach).min(axis=1)
    prominence = s[peaks] - np.maximum(lowest[peaks], lowest[peaks + 1 + reach])
    chosen: list[int] = []
    for j in peaks[np.argsort(-prominence, kind="stable")].tolist():
        if all(abs(j - c) >= ANCHOR_SEPARATION * length for c in chosen):
            chosen.append(j)
            if len(chosen) == ANCHOR_LINES:
                break
    out = []
    for j in chosen:
        a, b, c = s[j - 1], s[j], s[j + 1]
        den = a - 2 * b + c
        # profile[j] is the step between pixels j and j+1: the edge sits at j + 1
        out.append(j + 1.0 + (0.5 * (a - c) / den if den else 0.0))
    return sorted(out)


def anchored_boxes(luma: np.ndarray, block: tuple[int, int], orig_size: tuple[int, int]) -> dict[str, PixelBox]:
    """Regions whose four sides lie on strong edges of the picture, in original pixels.

    A crop moves the frame, not the picture: a region bounded by the picture's own
    vertical and horizontal edges (peaks of the column and row profiles of the luma
    gradient, found to a fraction of a pixel) is the same region in the original and in
    any crop that keeps those four edges, whatever the crop's offset and scale. Each
    such region is hashed; an off-centre crop keeps some of them. Names ("region-N") are
    per image; what matters is how many of a query's regions agree with one entry."""
    plane = np.asarray(luma, dtype=np.float32)
    if plane.ndim != 2 or min(plane.shape) < 4 * trim.MIN_LINE:
        return {}
    h, w = plane.shape
    width, height = orig_size
    bx, by = block
    xs = [min(max(x * bx - bx / 2, 0.0), width) for x in _lines(np.abs(np.diff(plane, axis=1)).mean(axis=0), w)]
    ys = [min(max(y * by - by / 2, 0.0), height) for y in _lines(np.abs(np.diff(plane, axis=0)).mean(axis=1), h)]
    spans_x = [(a, b) for i, a in enumerate(xs) for b in xs[i + 1:]
               if ANCHOR_MIN_SPAN * width <= b - a <= ANCHOR_MAX_SPAN * width]
    spans_y = [(a, b) for i, a in enumerate(ys) for b in ys[i + 1:]
               if ANCHOR_MIN_SPAN * height <= b - a <= ANCHOR_MAX_SPAN * height]
    boxes = [(t, b, left, right) for t, b in spans_y for left, right in spans_x][:ANCHOR_MAX_REGIONS]
    return {f"region-{k + 1}": box for k, box in enumerate(boxes)}
