"""Borders and bars: find the content inside near-uniform margins.

Adding a border (or letterbox/pillarbox bars) is the cheapest way to move a PDQ hash:
a 10% border of any colour moves it by about 100 of 256 bits. The hash of the content
inside the margins is the hash of the original, resized, which PDQ tolerates; so the
scan adds it as an extra query (variant ``trimmed``) and ``bank add --image`` banks it
beside the plain hash.

A margin row (or column) is one whose pixels lie within ``TOLERANCE`` grey levels of
the margin's colour for at least ``SHARE`` of its length: JPEG ringing, noise and a
soft edge keep a border "uniform", a caption's text or any content does not. The
margin's colour is taken from the outermost line and must stay that colour inward.
Each side is measured on its own, so bars of different colours, a border on two
sides only, or a frame of any colour are all found. Thin margins count: a white
strip of 1-2% along one side moves PDQ by 24-76 bits on the shared photos (0.3% by
8-24); only margins under ``MIN_SIDE_SHARE`` of the side or of one line (a frame
left by resampling) are ignored. A region that would keep less than
``MIN_KEPT_SHARE`` of either dimension is not trimmed (a near-uniform image has no
content to find).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 24.0  # grey levels (0-255 luma) a margin pixel may stray (JPEG ringing)
SHARE = 0.9  # share of a margin line's pixels within that tolerance
MEDIAN_TOLERANCE = 6.0  # a margin line's median stays this close to the margin's colour
CHUNK = 16  # lines judged at a time
REFINE = 8  # lines searched back from the first content line for the edge (a JPEG block)
MIN_SIDE_SHARE = 0.004  # thinner margins are ignored
MIN_SIDE_LINES = 2  # and so are margins of one line (a frame from resampling)
MAX_SIDE_SHARE = 0.45  # never trim more than this from one side
MIN_KEPT_SHARE = 0.3  # the kept region spans at least this share of each dimension
MIN_LINE = 8  # pixels: lines shorter than this are not judged
BLUR_DETAIL = 0.75  # a blurred bar's detail: at most this share of the picture's (mean step across a line)
BLUR_MIN_DETAIL = 1.5  # grey levels: a picture with less detail has nothing sharp to tell from a blur
BLUR_EDGE = 4.0  # the step onto the picture: at least this many times the bar's own line-to-line steps
BLUR_MIN_SHARE = 0.03  # each blurred bar at least this share of the side
BLUR_MIN_BAR = 0.02  # grey levels: a bar with less detail is flat, a uniform margin (trimmed)


@dataclass(frozen=True)
class Box:
    """The content region in the plane's pixel coordinates: rows [top, bottom), cols [left, right)."""

    top: int
    bottom: int
    left: int
    right: int

    def margins(self, height: int, width: int) -> tuple[float, float, float, float]:
        """Share of the height/width cut from top, bottom, left, right."""
        return (self.top / height, (height - self.bottom) / height,
                self.left / width, (width - self.right) / width)


def _is_margin(lines: np.ndarray, colour: np.float32) -> np.ndarray:
    dev = np.abs(lines - colour)
    near = (dev <= TOLERANCE).mean(axis=1) >= SHARE
    # the median within MEDIAN_TOLERANCE <=> more than half the pixels that close
    return near & ((dev <= MEDIAN_TOLERANCE).mean(axis=1) > 0.5)


def _margin(lines: np.ndarray, limit: int) -> int:
    """How many leading lines (rows of ``lines``) belong to a uniform margin.

    A line is margin while its median stays within ``MEDIAN_TOLERANCE`` of the outermost
    line's colour and most of its pixels within ``TOLERANCE`` (JPEG ringing near the
    content edge is allowed for). The edge is then put where the picture changes most
    within the last few lines: PDQ moves by tens of bits for every percent of border
    left over or content cut, so the edge must be found to the line."""
    if lines.shape[0] < 2 or lines.shape[1] < MIN_LINE:
        return 0
    colour = np.float32(np.median(lines[0]))
    if not _is_margin(lines[:1], colour)[0]:  # the usual case, decided on one line
        return 0
    stop = limit
    for start in range(1, limit, CHUNK):  # margins are thin: few lines are ever looked at
        out = np.flatnonzero(~_is_margin(lines[start:min(start + CHUNK, limit)], colour))
        if out.size:
            stop = start + int(out[0])
            break
    if stop >= limit:
        return limit
    # Flat content of the margin's colour makes the scan overshoot, never stop short
    # (ringing stays within the tolerance): look back from the first content line.
    lo = max(1, stop - REFINE)
    step = np.abs(np.diff(lines[lo - 1:stop + 1], axis=0)).mean(axis=1)  # step[j]: line lo+j-1 -> lo+j
    return int(lo + int(np.argmax(step)))


def content_boxes(luma: np.ndarray) -> dict[str, Box]:
    """Candidate content regions inside uniform margins of a (H, W) luma plane:
    ``trimmed`` (each side as measured); when opposite margins differ, ``trimmed-even``
    (the thinner of the two on both sides); and when the margins are of more than one
    colour, for each colour the region inside the margins of that colour only
    (``trimmed-top-left`` ...). Flat content beside a margin of the same colour (a dark
    sky by a black border) reads as margin; added borders and bars are nearly always
    even, so the second region is the original's when the first cut into it; a picture
    with a flat strip along one edge (grey wall, dark floor) that was given a strip of
    another colour along another edge is the region of that colour. Empty when there is
    no margin worth trimming."""
    plane = np.asarray(luma, dtype=np.float32)
    if plane.ndim != 2:
        return {}
    h, w = plane.shape
    if h < 4 * MIN_LINE or w < 4 * MIN_LINE:
        return {}
    lim_h, lim_w = int(h * MAX_SIDE_SHARE), int(w * MAX_SIDE_SHARE)
    # Ignore margins too thin to matter (and a one-line frame from resampling).
    top, bottom = (m if m >= max(MIN_SIDE_LINES, MIN_SIDE_SHARE * h) else 0
                   for m in (_margin(plane, lim_h), _margin(plane[::-1], lim_h)))
    inner = plane[top:h - bottom]  # side bars are judged beside the content, not the top/bottom bars
    left, right = (m if m >= max(MIN_SIDE_LINES, MIN_SIDE_SHARE * w) else 0
                   for m in (_margin(inner.T, lim_w), _margin(inner.T[::-1], lim_w)))
    sides = {"top": top, "bottom": bottom, "left": left, "right": right}
    edges = {"top": plane[0], "bottom": plane[-1], "left": inner[:, 0], "right": inner[:, -1]}
    groups: list[tuple[float, list[str]]] = []  # margins of one colour, outermost lines' medians
    for side, m in sides.items():
        if m:
            colour = float(np.median(edges[side]))
            group = next((g for c, g in groups if abs(c - colour) <= 2 * MEDIAN_TOLERANCE), None)
            if group is None:
                groups.append((colour, [side]))
            else:
                group.append(side)
    candidates = [("trimmed", (top, bottom, left, right)),
                  ("trimmed-even", (min(top, bottom),) * 2 + (min(left, right),) * 2)]
    if len(groups) > 1:
        candidates += [("trimmed-" + "-".join(names), tuple(m if s in names else 0 for s, m in sides.items()))
                       for _, names in groups]
    if (blurred := _blurred_bars(plane)) is not None:
        candidates.append(("trimmed-blur", blurred))
    out: dict[str, Box] = {}
    for name, (t, b, lft, r) in candidates:
        if not (t or b or lft or r):
            continue
        box = Box(t, h - b, lft, w - r)
        if (box.bottom - box.top) < MIN_KEPT_SHARE * h or (box.right - box.left) < MIN_KEPT_SHARE * w:
            continue
        if any(_close(box, other) for other in out.values()):
            continue
        out[name] = box
    return out


def _blur_margin(detail: np.ndarray, steps: np.ndarray, limit: int) -> int:
    """How many leading lines are a blurred bar: the line where the picture starts is the
    sharpest step of the leading ``limit`` lines, at least BLUR_EDGE times the bar's own
    line-to-line steps and twice the picture's, and the bar holds under BLUR_DETAIL of the
    picture's detail: a fill laid under a pasted picture, not a picture's soft foreground
    (whose focus fades over many lines)."""
    if limit < 4:
        return 0
    # the first step (from the outside in) far above the steps before it: steps[j] is line
    # j -> j + 1, so the picture starts at j + 1
    run = np.maximum.accumulate(steps[:limit])
    jumps = np.flatnonzero(steps[2:limit] >= BLUR_EDGE * np.maximum(run[1:limit - 1], 0.25)) + 2
    if not jumps.size:
        return 0
    edge = int(jumps[0])
    bar_steps = float(np.median(steps[:edge - 1]))
    picture = slice(edge + 2, min(len(steps), edge + 2 + max(8, limit // 2)))  # the picture's first lines
    if picture.start >= picture.stop:
        return 0
    if steps[edge] < BLUR_EDGE * max(bar_steps, 0.25) or steps[edge] < 2 * float(np.median(steps[picture])):
        return 0
    bar = float(np.median(detail[:edge]))
    if bar > BLUR_DETAIL * float(np.median(detail[picture])) or bar < BLUR_MIN_BAR:
        return 0  # as busy as the picture, or flat: a uniform margin is the plain trim's
    return edge + 1


def _blurred_bars(plane: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) margins of a picture laid over a blurred copy of itself
    or of anything (the "blurred background" fill of a vertical video or story format): two
    opposite bars of little detail, each ending at a sharp straight edge. None without."""
    h, w = plane.shape
    out = [0, 0, 0, 0]
    for axis, (a, b) in ((0, (0, 1)), (1, (2, 3))):
        lines = plane if axis == 0 else plane[out[0]:h - out[1]].T
        n = lines.shape[0]
        if n < 4 * MIN_LINE or lines.shape[1] < 4 * MIN_LINE:
            continue
        # Most pictures end in no calm bar on either side: told from a few lines first.
        k = max(MIN_SIDE_LINES, int(BLUR_MIN_SHARE * n))
        middle = float(np.median(np.abs(np.diff(lines[int(n * 0.4):int(n * 0.6) + 1], axis=1)).mean(axis=1)))
        if middle < BLUR_MIN_DETAIL:
            continue  # a flat picture: nothing sharp to tell from a blur
        if any(float(np.median(np.abs(np.diff(lines[sl], axis=1)).mean(axis=1))) > BLUR_DETAIL * middle
               for sl in (slice(0, k), slice(n - k, n))):
            continue
        detail = np.abs(np.diff(lines, axis=1)).mean(axis=1)  # across each line
        steps = np.abs(np.diff(lines, axis=0)).mean(axis=1)  # from each line to the next
        limit = int(n * MAX_SIDE_SHARE)
        first = _blur_margin(detail, steps, limit)
        last = _blur_margin(detail[::-1], steps[::-1], limit)
        if min(first, last) >= max(MIN_SIDE_LINES, BLUR_MIN_SHARE * n):
            out[a], out[b] = first, last
    return tuple(out) if any(out) else None  # type: ignore[return-value]


def _close(a: Box, b: Box) -> bool:
    return max(abs(a.top - b.top), abs(a.bottom - b.bottom), abs(a.left - b.left), abs(a.right - b.right)) <= 1
