"""A picture pasted onto a canvas of noise or onto another picture: find it to the pixel.

Uniform borders are trimmed (media/trim.py); an uploader who knows that pastes the
picture onto random noise instead, or onto another photo (picture in picture): 15% of
noise a side, or the picture at 60% on another photo, moved PDQ by ~100-120 bits on the
shared photos, and no trimmed or cropped variant came within 68. The picture found is
queried as variant ``embedded`` (one query at most; a match through it is partial).

* **Noise** is as easy to recognise as a uniform colour, line by line: every line of a
  noise margin is *busy* (most steps between neighbouring pixels are large,
  ``BUSY_STEP``) with about the same mean step as the margin's other lines (within
  ``ACT_SPREAD``) and unlike the line after it (``MAX_CORR``), where a picture's lines
  are smoother and alike. Each side is measured on its own, as trim.py measures a
  uniform border; a canvas is reported only when at least ``MIN_SIDES`` sides have such
  a margin of the same noise (an ordinary photo with grass along its bottom edge has one
  busy side, not three).
* **A picture on a picture** (``picture_box``): pasting leaves an edge that is *sharp*
  (the whole step between two neighbouring pixels, where a photo's own edges spread over
  two or three), straight, along the whole side, and stopping at the corners. Candidate
  lines are the peaks of the column and row profiles of sharp steps; each rectangle of
  them with three or four inner sides is held by its weakest side's weakest third (at
  ``SHARPNESS``). A side that shows no step (the picture's edge the colour of what lies
  behind it) is placed where its two neighbouring sides start. Where the pictures meet
  with no step along two sides, or the picture is as busy as its step, it is not found.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import trim

#: The query variant of a pasted picture, on noise or on another picture.
VARIANT = "embedded"

#: A step between neighbouring pixels this large (grey levels) is "busy". On a JPEG decoded
#: at 1/8 scale, noise of a full-resolution standard deviation of 50 (RGB noise 0-255, as
#: luma) keeps steps of ~7 on average; a smooth picture's are ~1-2.
BUSY_STEP = 3.0
#: Share of a margin line's steps that are busy.
BUSY_SHARE = 0.6
#: A margin line's mean step is at least this (grey levels) ...
MIN_ACT = 5.0
#: ... and within this share of the margin's (the median of its first lines': the outermost
#: line of a reduced plane may be a partial block, noisier).
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


# ---------------------------------------------------------------- a picture pasted on a picture

#: Candidate lines per axis: the strongest peaks of the profile of sharp steps.
PIP_LINES = 6
#: The pasted picture spans at least this share of each dimension, and at most this share
#: of the area (a larger one is a border: trim.py, or the picture itself).
PIP_MIN_SPAN = 0.3
PIP_MAX_AREA = 0.9
#: A pasted edge is sharp: the mean step across it is at least this many times the mean
#: step beside it, on either side (a photo's own edges spread over two or three pixels);
#: rectangles are looked for at the first sharpness, then (none found) at the second: a
#: weak line of the background taken for a side at the second can hide the picture's
#: own rectangle that the first finds with a side unseen (``_unseen_side``).
SHARPNESS = (2.0, 1.5)
#: ... and exceeds it by this many grey levels, in each of SEGMENTS parts of the edge's run
#: (an edge ending short of a corner leaves one weak).
MIN_RIDGE = 8.0
SEGMENTS = 3
#: The edge stops at the corners: where the line runs on beyond them, its sharp step is at
#: most this share of the step along the edge.
BEYOND = 0.5
#: Marks on a page are not a picture: a rectangle more than this share of whose pixels are
#: within PAGE_TOLERANCE grey levels of the colour around it (text on a white page) is not.
PAGE_SHARE = 0.5
PAGE_TOLERANCE = 6.0


def _peaks(profile: np.ndarray, k: int, separation: int) -> list[int]:
    chosen: list[int] = []
    for j in np.argsort(-profile, kind="stable").tolist():
        if profile[j] <= 0:
            break
        if all(abs(j - c) >= separation for c in chosen):
            chosen.append(j)
            if len(chosen) == k:
                break
    return chosen


class _Edges:
    """Sharp steps across the boundaries of one axis of a plane: boundary b lies before
    column b. ``gap``: the step is taken over that many pixels (2 on a reduced plane, where
    an edge inside a block leaves one mixed pixel between the two pictures)."""

    def __init__(self, plane: np.ndarray, gap: int) -> None:
        h, w = plane.shape
        self.plane, self.h, self.w, self.gap = plane, h, w, gap
        self.sharp = SHARPNESS[0]
        # The profile from every other line (an edge spans at least PIP_MIN_SPAN of them):
        # half the cost of an extra look at every image.
        half = plane[::2]
        step = half[:, gap:] - half[:, :-gap]  # step[:, j]: column j to j + gap, boundary j + 1
        np.abs(step, out=step)
        ridge = np.maximum(step[:, :w - 3 * gap], step[:, 2 * gap:w - gap])
        np.subtract(step[:, gap:w - 2 * gap], ridge, out=ridge)
        np.maximum(ridge, 0, out=ridge)
        self.profile = np.zeros(w + 1, np.float32)
        self.profile[gap + 1:w - 2 * gap + 1] = ridge.mean(axis=0)
        # Running sums down the columns a side is judged on (few: added as sides are asked about)
        self.column = np.full(w, -1)
        self.sums = np.zeros((h + 1, 0), np.float32)

    def need(self, boundaries: Iterable[int]) -> None:
        """Make the running sums of the steps at and beside these boundaries available."""
        g = self.gap
        want = {j + d for j in self._at(np.asarray(list(boundaries))).tolist() for d in (-g, 0, g)}
        new = sorted(j for j in want if self.column[j] < 0)
        if new:
            self.column[new] = np.arange(self.sums.shape[1], self.sums.shape[1] + len(new))
            cols = np.array(new)
            more = np.cumsum(np.abs(self.plane[:, cols + g] - self.plane[:, cols]), axis=0, dtype=np.float32)
            self.sums = np.concatenate([self.sums, np.vstack([np.zeros((1, len(new)), np.float32), more])], axis=1)

    def candidates(self) -> list[int]:
        return sorted(_peaks(self.profile, PIP_LINES, max(3, int(0.03 * self.w))))

    def _at(self, b: np.ndarray) -> np.ndarray:
        """The step index of boundary b (the plane's first and last boundaries: the nearest
        one with steps on both sides)."""
        return np.clip(b - 1, self.gap, self.w - 1 - 2 * self.gap)

    def _mean(self, j: np.ndarray, t: np.ndarray, e: np.ndarray) -> np.ndarray:
        c = self.column[j]
        return (self.sums[e, c] - self.sums[t, c]) / np.maximum(e - t, 1)

    def _steps(self, b: np.ndarray, t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean step across boundary b over rows [t, e), the larger mean step beside it)."""
        g = self.gap
        j = self._at(b)
        return self._mean(j, t, e), np.maximum(self._mean(j - g, t, e), self._mean(j + g, t, e))

    def ridge(self, b: np.ndarray, t: np.ndarray, e: np.ndarray, sharp: float | None = None) -> np.ndarray:
        """Mean step across boundary b over rows [t, e) less the larger beside it; 0 where
        not as sharp as ``sharp`` asks (default ``self.sharp``; ``SHARPNESS``)."""
        across, beside = self._steps(b, t, e)
        return np.where(across >= (self.sharp if sharp is None else sharp) * beside, across - beside, 0.0)

    def side(self, b: np.ndarray, t: np.ndarray, e: np.ndarray,
             levels: tuple[float, ...] | None = None) -> np.ndarray:
        """The evidence of an edge at boundary b running over rows [t, e) and no further:
        its weakest third's ridge, 0 where the line runs on beyond a corner as sharply; one
        row per sharpness of ``levels`` (default: ``self.sharp`` alone), from one batch."""
        b, t, e = (np.ravel(a) for a in np.broadcast_arrays(b, t, e))
        n = e - t
        cuts = [t + k * n // SEGMENTS for k in range(SEGMENTS + 1)]
        reach = np.maximum(3, (n * 0.15).astype(int))
        t0, e1 = np.maximum(t - reach, 0), np.minimum(e + reach, self.h)
        # the segments, the whole run, the line beyond each end: one batch
        starts = np.concatenate([*cuts[:-1], t, t0, e])
        ends = np.concatenate([*cuts[1:], e, t, e1])
        across, beside = self._steps(np.tile(b, SEGMENTS + 3), starts, ends)
        out = []
        for sharp in levels or (self.sharp,):
            r = np.where(across >= sharp * beside, across - beside, 0.0).reshape(SEGMENTS + 3, -1)
            beyond = np.maximum(np.where(t - t0 >= 3, r[SEGMENTS + 1], 0.0),
                                np.where(e1 - e >= 3, r[SEGMENTS + 2], 0.0))
            out.append(np.where(beyond <= BEYOND * r[SEGMENTS], r[:SEGMENTS].min(axis=0), 0.0))
        return np.stack(out)

    def best(self, at: int, reach: int, t: int, e: int) -> int:
        """The boundary within ``reach`` of ``at`` with the largest step across it over rows
        [t, e), less the steps beside it."""
        g = self.gap
        cand = np.arange(max(g + 1, at - reach), min(self.w - 2 * g, at + reach) + 1)
        if not len(cand) or e - t < 2:
            return at
        self.need(cand.tolist())
        t_, e_ = np.array(t), np.array(e)
        score = self._mean(cand - 1, t_, e_) - np.maximum(self._mean(cand - 1 - g, t_, e_),
                                                          self._mean(cand - 1 + g, t_, e_))
        return int(cand[int(np.argmax(score))])


def _refine(cols: _Edges, rows: _Edges, box: trim.Box, reach: int, inset: int = 0) -> trim.Box:
    """Each inner side of ``box`` moved within ``reach`` to its sharpest boundary, judged
    along the side's run (``inset`` pixels short of each corner)."""
    t, b, lft, r = box.top, box.bottom, box.left, box.right
    for _ in range(2):
        if lft > 0:
            lft = cols.best(lft, reach, t + inset, b - inset)
        if r < cols.w:
            r = cols.best(r, reach, t + inset, b - inset)
        if t > 0:
            t = rows.best(t, reach, lft + inset, r - inset)
        if b < rows.w:
            b = rows.best(b, reach, lft + inset, r - inset)
    return trim.Box(t, b, lft, r)


def picture_box(luma: np.ndarray, gap: int = 1) -> trim.Box | None:
    """A picture pasted onto another (picture in picture) in a (H, W) luma plane, or None:
    the rectangle with three or four inner sides (the others on the plane's edges) whose
    every inner side is a sharp step along its whole run that stops at the corners, the
    strongest such (by its weakest side). ``gap``: 2 on a reduced plane (``_Edges``)."""
    plane = np.asarray(luma, dtype=np.float32)
    if plane.ndim != 2 or min(plane.shape) < 4 * trim.MIN_LINE:
        return None
    h, w = plane.shape
    cols, rows = _Edges(plane, gap), _Edges(plane.T, gap)
    xs, ys = [0, *cols.candidates(), w], [0, *rows.candidates(), h]
    cols.need(xs)
    rows.need(ys)
    # spans as pairs of indices into xs / ys
    spans_x = np.array([(i, k) for i in range(len(xs)) for k in range(i + 1, len(xs))
                        if xs[k] - xs[i] >= PIP_MIN_SPAN * w], dtype=int).reshape(-1, 2)
    spans_y = np.array([(i, k) for i in range(len(ys)) for k in range(i + 1, len(ys))
                        if ys[k] - ys[i] >= PIP_MIN_SPAN * h], dtype=int).reshape(-1, 2)
    if not len(spans_x) or not len(spans_y):
        return None
    ax, ay = np.array(xs), np.array(ys)
    # Each side once: every candidate line over every span of the other axis
    # (vertical[i, m]: line xs[i] over rows of span m), not once a rectangle.
    lx, my = np.meshgrid(np.arange(len(xs)), np.arange(len(spans_y)), indexing="ij")
    ly, mx = np.meshgrid(np.arange(len(ys)), np.arange(len(spans_x)), indexing="ij")
    kx, ky = (a.ravel() for a in np.meshgrid(np.arange(len(spans_x)), np.arange(len(spans_y))))
    li, ri = spans_x[kx, 0], spans_x[kx, 1]
    ti, bi = spans_y[ky, 0], spans_y[ky, 1]
    left, right, top, bottom = ax[li], ax[ri], ay[ti], ay[bi]
    small = (right - left) * (bottom - top) <= PIP_MAX_AREA * w * h
    verticals = cols.side(ax[lx], ay[spans_y[my, 0]], ay[spans_y[my, 1]], SHARPNESS)
    horizontals = rows.side(ay[ly], ax[spans_x[mx, 0]], ax[spans_x[mx, 1]], SHARPNESS)
    for level, sharp in enumerate(SHARPNESS):
        cols.sharp = rows.sharp = sharp
        vertical, horizontal = verticals[level].reshape(lx.shape), horizontals[level].reshape(ly.shape)
        sides = np.stack([
            np.where(left == 0, np.inf, vertical[li, ky]),
            np.where(right == w, np.inf, vertical[ri, ky]),
            np.where(top == 0, np.inf, horizontal[ti, kx]),
            np.where(bottom == h, np.inf, horizontal[bi, kx]),
        ])
        inner = np.isfinite(sides).sum(axis=0)
        weakest = np.where(small, sides.min(axis=0), -np.inf)
        for need in (4, 3):  # a rectangle held by more sides first
            score = np.where(inner == need, weakest, -np.inf)
            k = int(np.argmax(score))
            if score[k] >= MIN_RIDGE:
                box = _refine(cols, rows, trim.Box(int(top[k]), int(bottom[k]), int(left[k]), int(right[k])),
                              max(3, int(0.03 * min(h, w))))
                if need == 3:
                    box = _unseen_side(cols, rows, box)
                return box if not _page(plane, box) else None
    return None


def _start(edges: _Edges, a: int, b: int, end: int, lo: int, hi: int) -> int | None:
    """Where the edges at boundaries ``a`` and ``b`` (both running to ``end``) start, looked
    for in lines [lo, hi): the line from which both are sharp steps on to ``end`` and before
    which neither is; None if there is no such line."""
    lo = max(lo, 3)
    if hi <= lo:
        return None
    edges.need([a, b])
    ys = np.arange(lo, hi)
    n = len(ys)
    on = np.minimum(edges.ridge(np.full(n, a), ys, np.full(n, end)), edges.ridge(np.full(n, b), ys, np.full(n, end)))
    zero = np.zeros(n, int)
    before = np.maximum(edges.ridge(np.full(n, a), zero, ys), edges.ridge(np.full(n, b), zero, ys))
    held = (on >= MIN_RIDGE) & (before <= BEYOND * on)
    if not held.any():
        return None
    return int(ys[int(np.argmax(np.where(held, on - before, -np.inf)))])


def _from_neighbours(cols: _Edges, rows: _Edges, box: trim.Box, side: str, lo: int, hi: int) -> int | None:
    """The ``side`` of ``box`` ("top", "bottom", "left", "right") placed where its two
    neighbouring sides start (``_start``), within [lo, hi) lines of the plane's edge on
    that side: for a side whose own step does not show (the picture's edge the colour of
    the background behind it)."""
    t, b, lft, r = box.top, box.bottom, box.left, box.right
    h, w = cols.h, cols.w
    if side == "top":
        return _start(cols, lft, r, b, lo, hi)
    if side == "bottom":
        at = _start(_Edges(cols.plane[::-1], cols.gap), lft, r, h - t, lo, hi)
        return None if at is None else h - at
    if side == "left":
        return _start(rows, t, b, r, lo, hi)
    at = _start(_Edges(rows.plane[::-1], rows.gap), t, b, w - lft, lo, hi)
    return None if at is None else w - at


def _unseen_side(cols: _Edges, rows: _Edges, box: trim.Box) -> trim.Box:
    """A rectangle with one side on the plane's edge and both of that side's neighbours
    inner: the picture's own side may be further in but show no step; its neighbours
    then start there."""
    t, b, lft, r = box.top, box.bottom, box.left, box.right
    h, w = cols.h, cols.w
    if lft > 0 and r < w and (t == 0) != (b == h):
        side, room = ("top", b) if t == 0 else ("bottom", h - t)
        at = _from_neighbours(cols, rows, box, side, 0, int(room - PIP_MIN_SPAN * h))
        if at is not None:
            t, b = (at, b) if side == "top" else (t, at)
    elif t > 0 and b < h and (lft == 0) != (r == w):
        side, room = ("left", r) if lft == 0 else ("right", w - lft)
        at = _from_neighbours(cols, rows, box, side, 0, int(room - PIP_MIN_SPAN * w))
        if at is not None:
            lft, r = (at, r) if side == "left" else (lft, at)
    return trim.Box(t, b, lft, r)


def _page(plane: np.ndarray, box: trim.Box) -> bool:
    """Whether ``box`` is mostly the colour around it: marks on a page, not a picture."""
    around = np.ones(plane.shape, bool)
    around[box.top:box.bottom, box.left:box.right] = False
    if not around.any():
        return False
    colour = np.median(plane[around])
    inside = plane[box.top:box.bottom, box.left:box.right]
    return bool((np.abs(inside - colour) <= PAGE_TOLERANCE).mean() > PAGE_SHARE)


def place_on_finer(fine: np.ndarray, box: trim.Box, coarse_shape: tuple[int, int]) -> trim.Box:
    """``box``, found on a coarser plane of ``coarse_shape`` (H, W), with its inner sides
    placed to the pixel of the ``fine`` plane of the same image."""
    h, w = fine.shape
    ry, rx = h / coarse_shape[0], w / coarse_shape[1]
    scaled = trim.Box(round(box.top * ry) if box.top else 0, h if box.bottom == coarse_shape[0] else round(box.bottom * ry),
                      round(box.left * rx) if box.left else 0, w if box.right == coarse_shape[1] else round(box.right * rx))
    cols, rows = _Edges(fine, 1), _Edges(fine.T, 1)
    reach = int(np.ceil(max(rx, ry))) + 1
    placed = _refine(cols, rows, scaled, reach, inset=reach)
    # A side that shows no step of its own (found on the coarse plane where its neighbours
    # start) is placed where they start on this plane too.
    t, b, lft, r = placed.top, placed.bottom, placed.left, placed.right
    for side, at, edges, lo_run, hi_run, size in (("top", t, rows, lft, r, h), ("bottom", b, rows, lft, r, h),
                                                   ("left", lft, cols, t, b, w), ("right", r, cols, t, b, w)):
        if at in (0, size):
            continue
        edges.need([at])
        if float(edges.ridge(np.array([at]), np.array([lo_run + reach]), np.array([hi_run - reach]))[0]) >= MIN_RIDGE:
            continue
        near = at if side in ("top", "left") else size - at
        found = _from_neighbours(cols, rows, placed, side, near - reach, near + reach + 1)
        if found is not None:
            t, b, lft, r = (found if side == "top" else t, found if side == "bottom" else b,
                            found if side == "left" else lft, found if side == "right" else r)
    return trim.Box(t, b, lft, r)
