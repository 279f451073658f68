"""A picture pasted onto a canvas of noise: find it to the pixel.

Uniform borders are trimmed (media/trim.py); an uploader who knows that pastes the
picture onto random noise instead (15% a side moved PDQ by ~120 bits on the shared
photos, and no trimmed or cropped variant came within 68). Noise is as easy to recognise
as a uniform colour, line by line: every line of a noise margin is *busy* (most steps
between neighbouring pixels are large, ``BUSY_STEP``) with about the same mean step as
the outermost line (within ``ACT_SPREAD``), where a picture's lines are smoother. Each
side is measured on its own, as trim.py measures a uniform border; a canvas is reported
only when at least ``MIN_SIDES`` sides have such a margin of the same noise (an ordinary
photo with grass along its bottom edge has one busy side, not three), and the picture
inside is then queried as variant ``embedded``.
"""

from __future__ import annotations

import numpy as np

from . import trim

#: The query variant of the picture found inside a noise canvas.
VARIANT = "embedded"

#: A step between neighbouring pixels this large (grey levels) is "busy". On a JPEG decoded
#: at 1/8 scale, noise of a full-resolution standard deviation of 50 (RGB noise 0-255, as
#: luma) keeps steps of ~7 on average; a smooth picture's are ~1-2.
BUSY_STEP = 3.0
#: Share of a margin line's steps that are busy.
BUSY_SHARE = 0.6
#: A margin line's mean step is at least this (grey levels) ...
MIN_ACT = 5.0
#: ... and within this share of the outermost line's.
ACT_SPREAD = 0.35
#: A noise line's correlation with the next line is at most this (i.i.d. noise: ~0).
MAX_CORR = 0.3
#: Sides (of 4) with a noise margin; the others may touch the picture (pasted off-centre).
MIN_SIDES = 3
#: Margins of fewer lines than this are not counted as a side's margin.
MIN_LINES = 2


def _line_stats(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean step, share of busy steps) along each line (row) of ``lines``."""
    steps = np.abs(np.diff(lines, axis=1))
    return steps.mean(axis=1), (steps >= BUSY_STEP).mean(axis=1)


def _unlike_next(lines: np.ndarray) -> np.ndarray:
    """Correlation of each line of ``lines`` (but the last) with the line after it."""
    a = lines[:-1] - lines[:-1].mean(axis=1, keepdims=True)
    b = lines[1:] - lines[1:].mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(den > 0, (a * b).sum(axis=1) / np.maximum(den, 1e-9), 1.0)


def _noise_margin(lines: np.ndarray, limit: int) -> tuple[int, float]:
    """(how many leading lines of ``lines`` are a noise margin, its mean step); (0, 0.0)
    when the outermost line is not noise or no picture starts within ``limit`` lines.

    A noise line is busy, steps about as much as the margin's other lines, and is unlike
    the line after it (independent noise; a picture's neighbouring lines correlate, even
    a busy texture's): the last line of the margin is unlike the picture's first, whose
    own next line is like it, so the edge falls between them, to the line."""
    if lines.shape[0] < 3 or lines.shape[1] < trim.MIN_LINE:
        return 0, 0.0
    act, busy = _line_stats(lines[:1])
    if act[0] < MIN_ACT or busy[0] < BUSY_SHARE:  # the usual case, decided on one line
        return 0, 0.0
    limit = min(limit, lines.shape[0] - 1)
    act, busy = _line_stats(lines[:limit])
    # The outermost line may be a partial block of a reduced plane (fewer pixels averaged:
    # noisier): the margin's step is its next lines'.
    ref = float(np.median(act[:4]))
    margin = (busy >= BUSY_SHARE) & (np.abs(act - ref) <= ACT_SPREAD * ref) \
        & (np.abs(_unlike_next(lines[:limit + 1])) <= MAX_CORR)
    margin[0] |= busy[0] >= BUSY_SHARE and act[0] >= ref
    out = np.flatnonzero(~margin)
    if not out.size or ref < MIN_ACT:
        return 0, 0.0  # noise all the way in (no picture within reach), or too faint
    return int(out[0]), ref


def noise_canvas_box(luma: np.ndarray) -> trim.Box | None:
    """The picture inside margins of noise of a (H, W) luma plane, or None."""
    plane = np.asarray(luma, dtype=np.float32)
    if plane.ndim != 2:
        return None
    h, w = plane.shape
    if h < 4 * trim.MIN_LINE or w < 4 * trim.MIN_LINE:
        return None
    lim_h, lim_w = int(h * trim.MAX_SIDE_SHARE), int(w * trim.MAX_SIDE_SHARE)
    top, act_t = _noise_margin(plane, lim_h)
    bottom, act_b = _noise_margin(plane[::-1], lim_h)
    inner = plane[top:h - bottom]
    left, act_l = _noise_margin(inner.T, lim_w)
    right, act_r = _noise_margin(inner.T[::-1], lim_w)
    sides = [(m, a) for m, a in ((top, act_t), (bottom, act_b), (left, act_l), (right, act_r)) if m >= MIN_LINES]
    if len(sides) < MIN_SIDES:
        return None
    acts = [a for _, a in sides]
    if max(acts) > (1 + ACT_SPREAD) * min(acts):  # not one canvas: different textures on each side
        return None
    top, bottom, left, right = (m if m >= MIN_LINES else 0 for m in (top, bottom, left, right))
    box = trim.Box(top, h - bottom, left, w - right)
    if (box.bottom - box.top) < trim.MIN_KEPT_SHARE * h or (box.right - box.left) < trim.MIN_KEPT_SHARE * w:
        return None
    return box
