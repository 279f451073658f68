"""A copy turned by a small angle, its corners filled with one colour: the angle, and the
picture turned back.

Turning a picture by 2-10 degrees (Pillow's ``rotate``, with or without ``expand``) moves
PDQ by ~60-120 bits, and the corners it uncovers are filled with a uniform colour: four
right triangles whose long sides are the picture's own edges, at the angle it was turned
by. Measured from each side of the image inward, the run of fill colour along each line
changes linearly, by tan(angle) a line: each side gives the angle; four uniform corners
of one colour and at least three sides turning the same way and agreeing to ``AGREE``
degrees are required (a tilted horizon under a flat sky gives two at most). The plane is then turned back, and the picture inside the fill is
found as a border is (media/trim.py) and queried as variant ``untilted``; a picture turned
within its own frame lost its corners, which are filled from the picture around them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import trim

VARIANT = "untilted"
#: Grey levels a fill pixel may stray from the fill colour (JPEG ringing).
TOLERANCE = 12.0
#: The corner patch whose median is the fill colour, and which must be uniform.
PATCH = 3
#: Angles (degrees) looked for: below MIN_ANGLE the triangles are a pixel or two thin (and
#: PDQ moves little); beyond MAX_ANGLE a turn is not "small".
MIN_ANGLE = 0.7
MAX_ANGLE = 20.0
#: At least three of the four sides' angles agree to this many degrees (a side whose edge
#: meets picture of the fill's colour measures it less well).
AGREE = 0.5
#: A triangle's long side is straight: at least INLIERS of its lines' runs lie within
#: STRAIGHT lines of the fitted line.
STRAIGHT = 2.0
INLIERS = 0.75
#: A side's triangle edge is measured on at least this many lines.
MIN_POINTS = 8
#: Turned within its own frame when the picture touches every side along more than this
#: share of it (with ``expand``: at a corner only).
CUT_TOUCH = 0.3


def _runs(lines: np.ndarray, colour: float, limit: int) -> np.ndarray:
    """For each column of ``lines`` (rows from one side inward), how many leading rows are
    fill colour (``limit`` when all of them are)."""
    fill = np.abs(lines[:limit] - colour) <= TOLERANCE
    stop = np.argmin(fill, axis=0)
    return np.where(fill.all(axis=0), limit, stop)


def _side_angle(runs: np.ndarray, limit: int) -> tuple[float, int] | None:
    """(The angle in degrees, 1 if the run grows along the side else 0) of the longer
    straight stretch of a side's fill runs, or None. Each triangle's long side is a line of
    slope tan(angle); the runs at the side's two ends belong to two triangles (one shrinking
    from the near corner, one growing to the far one), so a line is fitted on each half of
    the side and the one that holds more runs is kept (the other triangle's long side is
    the steep edge seen end-on, a few lines wide)."""
    n = len(runs)
    inside = (runs > 0) & (runs < limit)
    slopes = []
    for part in (slice(0, n // 2), slice(n // 2, n)):
        idx = np.flatnonzero(inside[part]) + (part.start or 0)
        if len(idx) < MIN_POINTS:
            continue
        x, y = idx.astype(np.float64), runs[idx].astype(np.float64)
        # Fitted again without the runs off the line (JPEG ringing stops a run early, dark
        # picture beside a black fill carries one on, the steep triangle's end shows)
        keep = np.ones(len(x), bool)
        for _ in range(3):
            if keep.sum() < MIN_POINTS:
                break
            slope, at = np.polyfit(x[keep], y[keep], 1)
            keep = np.abs(y - (slope * x + at)) <= STRAIGHT
        if keep.mean() < INLIERS or keep.sum() < MIN_POINTS:
            continue  # not a straight edge
        slopes.append((int(keep.sum()), slope))
    if not slopes:
        return None
    _, slope = max(slopes)  # the long, shallow triangle: the steep one is a few lines wide
    return float(np.degrees(np.arctan(abs(slope)))), int(slope > 0)


@dataclass(frozen=True)
class Tilt:
    angle: float  # degrees, counter-clockwise as Pillow's ``rotate`` turns
    colour: float  # the fill's grey level
    cut: bool  # turned within its own frame (``expand=False``): the picture's corners are cut off


# Whether each side's shallow triangle grows along it (1) or shrinks (0), turned
# counter-clockwise (the other way round, clockwise): top, bottom, left, right.
_CCW = (0, 1, 1, 0)


def tilt(luma: np.ndarray) -> Tilt | None:
    """How a picture turned by a small angle with uniform corners was turned, or None."""
    plane = np.asarray(luma, dtype=np.float32)
    if plane.ndim != 2 or min(plane.shape) < 4 * trim.MIN_LINE:
        return None
    h, w = plane.shape
    corners = [plane[:PATCH, :PATCH], plane[:PATCH, -PATCH:], plane[-PATCH:, :PATCH], plane[-PATCH:, -PATCH:]]
    colour = float(np.median(np.concatenate([c.ravel() for c in corners])))
    if any(np.abs(c - colour).max() > TOLERANCE for c in corners):  # the usual case: decided on 36 pixels
        return None
    limit_h, limit_w = int(h * 0.4), int(w * 0.4)
    found: list[tuple[int, float, int, float]] = []  # (side, angle, grows, share touching)
    for k, (lines, limit) in enumerate(((plane, limit_h), (plane[::-1], limit_h),
                                        (plane.T, limit_w), (plane.T[::-1], limit_w))):
        runs = _runs(lines, colour, limit)
        if (side := _side_angle(runs, limit)) is not None:
            found.append((k, side[0], side[1], float((runs == 0).mean())))
    # One side may go unmeasured (dark picture along a black fill carries its runs on):
    # the other three must agree.
    if len(found) < 3:
        return None
    angles = [a for _, a, _, _ in found]
    middle = float(np.median(angles))
    agreeing = [a for a in angles if abs(a - middle) <= AGREE]
    if len(agreeing) < 3 or not MIN_ANGLE <= middle <= MAX_ANGLE:
        return None
    grows = [(k, g) for k, _, g, _ in found]
    if all(g == _CCW[k] for k, g in grows):
        sign = 1.0
    elif all(g != _CCW[k] for k, g in grows):
        sign = -1.0
    else:
        return None  # the triangles do not make one turned rectangle
    # Turned with expand, the picture touches each side at its corner only; turned within
    # its own frame, along most of each side.
    return Tilt(sign * float(np.mean(agreeing)), colour, min(t for _, _, _, t in found) > CUT_TOUCH)


def turned_back(luma: np.ndarray, t: Tilt) -> np.ndarray:
    """The plane turned back (expanded, the new corners filled with the fill colour)."""
    im = Image.fromarray(np.asarray(luma, dtype=np.float32), mode="F")
    back = im.rotate(-t.angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=t.colour)
    return np.asarray(back, dtype=np.float32)


def picture_box(back: np.ndarray, shape: tuple[int, int], t: Tilt) -> trim.Box | None:
    """Where the picture lies in ``back`` (``turned_back`` of a plane of ``shape``): the
    frame the plane had, centred, when it was turned within its frame (``untilted`` fills
    the corners it cut off); else the content inside the fill, one line in from the edge blurred by
    the two resamplings (on the shared photos: 0-28 bits from the original at 2-10 degrees,
    against 20-78 keeping that line)."""
    hb, wb = back.shape
    if t.cut:
        h, w = shape
        top, left = (hb - h) // 2, (wb - w) // 2
        return trim.Box(top, top + h, left, left + w)
    box = trim.content_boxes(back).get("trimmed")
    if box is None or box.bottom - box.top < 4 * trim.MIN_LINE or box.right - box.left < 4 * trim.MIN_LINE:
        return None
    return trim.Box(box.top + 1, box.bottom - 1, box.left + 1, box.right - 1)


#: The cut-off corners of a picture turned within its frame are filled by diffusing the
#: picture around them inward (on a plane of about DIFFUSE_SIDE pixels a side, where PDQ's
#: 64 x 64 cells need no more, DIFFUSE_ROUNDS rounds of a 3 x 3 mean): black corners kept
#: 53 of 88 turned copies of the shared photos beyond 31 bits, diffused ones fewer (bench).
DIFFUSE_SIDE = 128
DIFFUSE_ROUNDS = 40


def untilted(luma: np.ndarray, t: Tilt) -> np.ndarray | None:
    """The picture of a plane turned by ``t``, turned back and cut from its fill: the whole
    frame when it was turned within it, its cut-off corners filled (``DIFFUSE_SIDE``)."""
    back = turned_back(luma, t)
    box = picture_box(back, np.shape(luma), t)
    if box is None:
        return None
    sub = back[box.top:box.bottom, box.left:box.right]
    if not t.cut:
        return sub
    # Where the frame lies outside the turned plane (turned back: the corners it cut off),
    # and the line of blended pixels along that edge.
    h, w = np.shape(luma)
    cover = Image.fromarray(np.ones((h, w), np.float32), mode="F").rotate(
        -t.angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=0.0)
    hole = np.asarray(cover, dtype=np.float32)[box.top:box.bottom, box.left:box.right] < 0.999
    if not hole.any() or hole.all():
        return sub
    return np.where(hole, _diffused(sub, hole), sub)


def _diffused(plane: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``plane`` with its ``hole`` pixels filled by the surrounding picture diffused inward,
    at a reduced scale (upsampled back: the values PDQ's cells average)."""
    h, w = plane.shape
    k = max(1, min(h, w) // DIFFUSE_SIDE)
    hh, ww = -(-h // k) * k, -(-w // k) * k
    known = np.pad(~hole, ((0, hh - h), (0, ww - w))).astype(np.float32)
    values = np.pad(np.where(hole, 0.0, plane), ((0, hh - h), (0, ww - w))).astype(np.float32)
    sums = values.reshape(hh // k, k, ww // k, k).sum(axis=(1, 3))
    counts = known.reshape(hh // k, k, ww // k, k).sum(axis=(1, 3))
    valid = counts > 0
    coarse = np.where(valid, sums / np.maximum(counts, 1), float(values.sum() / max(known.sum(), 1)))
    for _ in range(DIFFUSE_ROUNDS):
        p = np.pad(coarse, 1, mode="edge")
        blurred = sum(p[dy:dy + coarse.shape[0], dx:dx + coarse.shape[1]] for dy in range(3) for dx in range(3)) / 9
        coarse = np.where(valid, coarse, blurred)
    return np.repeat(np.repeat(coarse, k, axis=0), k, axis=1)[:h, :w]
