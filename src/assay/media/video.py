"""Video: decoding with limits, vPDQ (Meta's video PDQ), exact digests, and vPDQ matching.

vPDQ is one PDQ hash per sampled frame. As in Meta's reference hasher (vpdq/cpp,
``hashVideoFile``): the frame rate is the stream's average rate (its ``r_frame_rate``
when that is unknown), every ``int(seconds_per_hash * fps)``-th decoded frame is hashed
(at least every frame), the frame is converted to RGB at its own size and hashed by
PDQ, and its timestamp is ``frame_number / fps``. Frames are hashed in memory and never
written anywhere. PDQ modes as for stills: ``reference`` hands the RGB frame to Meta's C++
PDQ (pdqhash), bit-identical to Meta's vPDQ; ``fast`` (default) computes PDQ's tent filter
and decimation of the same frame's luma as one weight matrix per axis (media/pdq.py): the
same hash up to float rounding (on 960 frames tried, one differed, by 2 bits; qualities
equal), at a ninth of the cost.

Matching follows python-threatexchange's vPDQ signal (``vpdq_util`` / ``vpdq_index``):
both sides are deduplicated by hash and filtered by quality (>= 50); a query frame
matches when some compared frame is within Hamming distance 31; the query matches a
compared video when at least 80 % of its frames match and at least 0 % (the index
default) of the compared video's frames match one of the query's.

The text format is Meta's (vpdq/cpp ``vpdqio.cpp``): one ``frame_number,quality,hex,timestamp``
line per frame, timestamps with 3 decimals. Lines in the ``frame_number,hex,quality,timestamp``
order are read too (the hex field is told apart by its 64 digits); files are written in
Meta's order, so that its ``loadHashesFromFileOrDie`` reads them. python-threatexchange's
signal string is a JSON list of ``hex,quality,timestamp`` strings.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DecodeError, InputError, InvalidSignal, TooLarge, UnsupportedFormat
from ..signals import PDQ
from ..sniff import video_format  # the container formats decoded, forced by name
from .pdq import PdqResult, fast_pdq, luma_of, reference_pdq

# Defaults of python-threatexchange's vPDQ signal (extensions/vpdq/vpdq_util.py).
VPDQ_DISTANCE_THRESHOLD = 31
VPDQ_QUALITY_THRESHOLD = 50
VPDQ_QUERY_MATCH_THRESHOLD_PERCENT = 80.0
VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT = 0.0  # "index match" threshold there
VPDQ_TIMESTAMP_PRECISION = 3


class NoVideoStream(DecodeError):
    """A container without a video stream (audio only, or metadata only): nothing for vPDQ."""


@dataclass(frozen=True)
class VideoLimits:
    """Guards for decoding one video. Exceeding one is a TooLarge error naming it."""

    max_file_bytes: int = 8 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_frames: int = 1_000_000  # decoded frames, sampled or not
    max_width: int = 8192
    max_height: int = 8192
    max_pixels: int = 8192 * 4320
    max_decoded_bytes: int = 1024**4  # bytes of all decoded frame planes
    wall_clock_s: float = 900.0  # per file


DEFAULT_VIDEO_LIMITS = VideoLimits()


@dataclass(frozen=True)
class VpdqFeature:
    frame_number: int
    hex: str
    quality: int
    timestamp: float

    def line(self) -> str:
        """Meta's line: ``frame_number,quality,hex,timestamp``."""
        return f"{self.frame_number},{self.quality},{self.hex},{self.timestamp:.{VPDQ_TIMESTAMP_PRECISION}f}"


@dataclass
class VideoHashes:
    format: str  # container as sniffed: mp4, mov, avi, matroska
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float  # of the decoded frames: frames / fps
    frames_decoded: int
    md5: str
    sha256: str
    vpdq: list[VpdqFeature] = field(default_factory=list)
    # The same frames with uniform borders/bars cut off (media/trim.py), where at least
    # half of the sampled frames have such margins (a letterbox, a frame): a query view,
    # matched beside the plain vPDQ; empty otherwise. Not part of Meta's format.
    trimmed: list[VpdqFeature] = field(default_factory=list)
    # Frames not decoded: non-reference frames between samples, skipped (H.264, HEVC).
    frames_skipped: int = 0
    pdq_mode: str = "fast"
    # The container's display rotation (degrees counter-clockwise, a multiple of 90; a phone
    # video held upright), and the sampled frames turned as they are displayed: a query view,
    # matched beside the plain vPDQ (which is of the stored pixels, as Meta's), for copies
    # whose pixels were turned when re-encoded; empty without rotation. Not Meta's format.
    rotation: int = 0
    displayed: list[VpdqFeature] = field(default_factory=list)
    # The sampled frames mirrored left to right: a query view, matched beside the plain
    # vPDQ (a mirrored re-upload, the commonest flip); not Meta's format.
    mirrored: list[VpdqFeature] = field(default_factory=list)
    # The sampled frames turned a quarter, half and three-quarter turn counter-clockwise and
    # flipped upside down or across a diagonal (TURNED_VIEWS, named as the still image
    # variants), each a query view like ``mirrored``; the turn ``displayed`` already gives is
    # left out. Hashed from the turned pixels of a reduced luma plane; not Meta's format.
    turned: dict[str, list[VpdqFeature]] = field(default_factory=dict)


#: The turns and flips of a video's frames queried beside the plain, mirrored, trimmed and
#: displayed views (each moves PDQ ~100+ bits; names as the still images' variants).
TURNED_VIEWS = ("rotated-90", "rotated-180", "rotated-270", "flipped-vertical", "flipped-diagonal",
                "flipped-antidiagonal")
# The turned views are hashed from a luma plane reduced by whole-block averages, as a still's
# variants are (media/decode.py: frames under REDUCE_FROM on their short side are not reduced,
# larger ones to about REDUCE_TARGET).
_TURNS_REDUCE_FROM = 512
_TURNS_REDUCE_TARGET = 256


# ------------------------------------------------------------------------- exact digests


def file_digests(path: Path, chunk: int = 4 * 1024**2) -> tuple[str, str]:
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


# ------------------------------------------------------------------------------ decoding


def hash_video_file(
    path: str | Path,
    *,
    seconds_per_hash: float = 1.0,
    limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
    digests: tuple[str, str] | None = None,
    name: str | None = None,
    decode_all: bool = False,
    pdq_mode: str = "fast",
) -> VideoHashes:
    """vPDQ, MD5 and SHA-256 of a video file. Raises UnsupportedFormat, DecodeError or
    TooLarge, each naming the file and the reason; never anything else for bad input.
    ``digests``: the file's (MD5, SHA-256) when the caller has read it already.
    ``decode_all``: decode every frame, as Meta's hasher does, instead of skipping the
    non-reference frames that are not sampled (H.264, HEVC); the result is the same.
    ``pdq_mode``: ``fast`` or ``reference`` (Meta's C++ PDQ of the RGB frame, bit-identical)."""
    import av  # ~35 MB of FFmpeg: loaded only when a video is hashed

    p = Path(path)
    name = name or str(path)  # what errors call the file (an upload's name, not our temporary file)
    if seconds_per_hash <= 0 or not math.isfinite(seconds_per_hash):
        raise ValueError("seconds_per_hash must be a positive number")
    if pdq_mode not in ("fast", "reference"):
        raise ValueError(f"unknown PDQ mode {pdq_mode!r} (use 'fast' or 'reference')")
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise InputError(name, f"cannot read: {exc.strerror or exc}") from None
    if size > limits.max_file_bytes:
        raise TooLarge(name, f"{size:,} bytes is more than the video limit of {limits.max_file_bytes:,}")
    fmt = video_format(head)
    if fmt is None:
        raise UnsupportedFormat(name, "not a video container assay decodes (MP4, MOV, AVI, Matroska/WebM)")
    md5, sha256 = digests or file_digests(p)
    started = time.monotonic()

    def open_container():
        try:
            return av.open(str(p), mode="r", format=fmt, options={"protocol_whitelist": "file"})
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise DecodeError(name, f"cannot open the {fmt} container (truncated or corrupt?): "
                                    f"{_reason(exc)}") from None

    try:
        return _decode(open_container, name, fmt, md5, sha256, seconds_per_hash, limits, started, decode_all,
                       pdq_mode)
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise DecodeError(name, f"cannot decode the video: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return msg.replace(" (libav.", " (").strip()


# Codecs whose FFmpeg decoder honours ``skip_frame = NONREF`` (H.264's nal_ref_idc, HEVC's
# sub-layer non-reference NAL types) and whose packets carry one frame each.
_SPARSE_CODECS = frozenset({"h264", "hevc"})


class _NotSparse(Exception):
    """The frames the decoder gave in the sparse pass are not those the packets announced:
    decode every frame instead (the sparse pass's results are dropped)."""


def _decode(open_container, name: str, fmt: str, md5: str, sha256: str, seconds_per_hash: float,
            limits: VideoLimits, started: float, decode_all: bool = False,
            pdq_mode: str = "fast") -> VideoHashes:
    container = open_container()
    try:
        stream = _video_stream(container, name, limits)
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if not fps > 0 or not math.isfinite(fps):
            raise DecodeError(name, "the video stream has no frame rate")
        declared = container.duration / 1_000_000 if container.duration else None
        if declared is not None and declared > limits.max_duration_s:
            raise TooLarge(name, f"declared duration {declared:.0f} s is more than the limit of "
                                 f"{limits.max_duration_s:.0f} s")
        frame_mod = max(1, int(seconds_per_hash * fps))
        codec = stream.codec_context.name or "unknown"
        order = None
        if frame_mod > 1 and codec in _SPARSE_CODECS and not decode_all:
            order = _presentation_order(container, stream, name, limits, started)
    finally:
        container.close()
    if order is not None:
        container = open_container()
        try:
            stream = _video_stream(container, name, limits)
            tail = (len(order), float(order[-1] * stream.time_base) if stream.time_base else None)
            hashes = _sample(_sparse_frames(container, stream, order, frame_mod), tail, stream, name,
                             fps, frame_mod, limits, started, pdq_mode)
            return _finish(hashes, stream, name, fmt, md5, sha256, fps, declared, codec, pdq_mode)
        except _NotSparse:
            pass  # every frame is decoded below
        finally:
            container.close()
    container = open_container()
    try:
        stream = _video_stream(container, name, limits)
        hashes = _sample(_all_frames(container, stream), None, stream, name, fps, frame_mod, limits, started,
                         pdq_mode)
        return _finish(hashes, stream, name, fmt, md5, sha256, fps, declared, codec, pdq_mode)
    finally:
        container.close()


def _video_stream(container, name: str, limits: VideoLimits):
    if not container.streams.video:
        raise NoVideoStream(name, "the container has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # the sample description is missing or damaged
        raise DecodeError(name, "the video stream has no decoder: its codec description is missing or damaged "
                                "(corrupt or truncated header)")
    stream.thread_type = "AUTO"
    _check_size(name, stream.codec_context.width, stream.codec_context.height, limits)
    return stream


def _all_frames(container, stream):
    """(frame number, frame) of every decoded frame: the numbering of Meta's hasher."""
    yield from enumerate(container.decode(stream))


def _presentation_order(container, stream, name: str, limits: VideoLimits, started: float) -> list[int] | None:
    """The presentation timestamps of the stream's frames, sorted, read from its packets without
    decoding; None where the packets cannot tell the frame numbering (a packet without a
    timestamp, two with the same one, one the demuxer marks as discarded)."""
    pts: list[int] = []
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None:
            continue  # the end-of-stream marker
        if packet.pts is None or packet.is_discard or packet.is_corrupt:
            return None
        pts.append(packet.pts)
        if len(pts) > limits.max_frames:
            raise TooLarge(name, f"more than {limits.max_frames:,} frames")
        if len(pts) % 256 == 1 and time.monotonic() - started > limits.wall_clock_s:
            raise TooLarge(name, f"decoding took longer than the budget of {limits.wall_clock_s:.0f} s "
                                 f"({len(pts):,} packets read, none decoded yet)")
    order = sorted(pts)
    if not order or any(a == b for a, b in zip(order, order[1:], strict=False)):
        return None
    return order


def _sparse_frames(container, stream, order: list[int], frame_mod: int):
    """(frame number, frame) of the frames the decoder gives when it is told to skip the
    non-reference frames that are not sampled. Meta's hasher numbers frames as they come out of
    the decoder, in presentation order, so a frame's number is the rank of its timestamp among
    the packets' (``order``). Non-reference frames (H.264/HEVC B-frames mostly) are needed by
    no other frame, so skipping those that are not sampled changes no decoded picture; reference
    frames are always decoded. Raises _NotSparse where the decoder's output does not bear this
    out (a frame that was not skippable did not come out, one came out of order or with a
    timestamp no packet had): the caller decodes every frame instead."""
    rank = {p: i for i, p in enumerate(order)}
    skippable = bytearray(len(order))
    cc = stream.codec_context
    first_key: int | None = None
    mode = "DEFAULT"
    last = -1

    def seen(frames):
        nonlocal last
        for frame in frames:
            n = rank.get(frame.pts) if frame.pts is not None else None
            if n is None or n <= last:
                raise _NotSparse
            if not all(skippable[last + 1:n]):
                raise _NotSparse  # a frame that had to come out did not
            last = n
            yield n, frame

    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None:
            continue
        r = rank.get(packet.pts) if packet.pts is not None else None
        if r is None:
            raise _NotSparse
        if packet.is_keyframe and first_key is None:
            first_key = packet.pts
        # Only frames shown after the first keyframe: those before it (an open GOP cut at its
        # start) may be dropped by the decoder for want of references.
        skip = first_key is not None and packet.pts > first_key and r % frame_mod != 0
        skippable[r] = skip
        want = "NONREF" if skip else "DEFAULT"
        if want != mode:
            cc.skip_frame = mode = want
        yield from seen(cc.decode(packet))
    if mode != "DEFAULT":
        cc.skip_frame = "DEFAULT"
    yield from seen(cc.decode(None))
    if not all(skippable[last + 1:]):
        raise _NotSparse


@dataclass
class _Sampled:
    features: list[VpdqFeature]
    trimmed: list[VpdqFeature | None]
    frames: int
    width: int
    height: int
    first_t: float | None
    last_t: float | None
    decoded: int
    displayed: list[VpdqFeature] = field(default_factory=list)
    rotation: int = 0
    mirrored: list[VpdqFeature] = field(default_factory=list)
    turned: dict[str, list[VpdqFeature]] = field(default_factory=dict)


def _sample(frames, tail: tuple[int, float | None] | None, stream, name: str, fps: float, frame_mod: int, limits: VideoLimits,
            started: float, pdq_mode: str = "fast") -> _Sampled:
    """Hash every ``frame_mod``-th frame of ``frames`` ((number, frame) pairs, numbers increasing;
    frames in between may be missing when ``tail`` gives the count of all frames and the time of
    the last one), with the limits checked as each frame comes."""
    features: list[VpdqFeature] = []
    trimmed: list[VpdqFeature | None] = []
    displayed: list[VpdqFeature] = []
    mirrored: list[VpdqFeature] = []
    turned: dict[str, list[VpdqFeature]] = {}
    rotation = 0
    decoded_bytes = 0
    width = height = 0
    first_t = last_t = None
    last = -1
    decoded = 0
    for n, frame in frames:
        decoded += 1
        if frame.time is not None:
            first_t = frame.time if first_t is None else first_t
            last_t = frame.time
        if time.monotonic() - started > limits.wall_clock_s:
            raise TooLarge(name, f"decoding took longer than the budget of {limits.wall_clock_s:.0f} s "
                                 f"({n:,} frames decoded)")
        if frame.width != width or frame.height != height:
            width, height = frame.width, frame.height
            _check_size(name, width, height, limits)
        # frames skipped since the last one count as large as this one
        decoded_bytes += sum(pl.buffer_size for pl in frame.planes) * (n - last)
        last = n
        if decoded_bytes > limits.max_decoded_bytes:
            raise TooLarge(name, f"more than {limits.max_decoded_bytes:,} bytes of decoded frames")
        if n >= limits.max_frames:
            raise TooLarge(name, f"more than {limits.max_frames:,} frames")
        if n / fps > limits.max_duration_s:
            raise TooLarge(name, f"longer than the limit of {limits.max_duration_s:.0f} s")
        if n % frame_mod == 0:
            ts = round(n / fps, VPDQ_TIMESTAMP_PRECISION)
            rotation = _rotation(frame)
            rgb = frame.to_ndarray(format="rgb24")
            frame_luma = luma_of(rgb)
            plain, inside, shown, flipped = _frame_pdq(rgb, pdq_mode, rotation // 90, frame_luma)
            features.append(VpdqFeature(n, plain.hex, plain.quality, ts))
            mirrored.append(VpdqFeature(n, flipped.hex, flipped.quality, ts))
            for view, r in _turned_pdq(frame_luma, rotation // 90).items():
                turned.setdefault(view, []).append(VpdqFeature(n, r.hex, r.quality, ts))
            trimmed.append(VpdqFeature(n, inside.hex, inside.quality, ts) if inside is not None else None)
            if shown is not None:
                displayed.append(VpdqFeature(n, shown.hex, shown.quality, ts))
    count = last + 1
    if tail is not None and last >= 0:
        # the last frames may have been skipped: the limits and the span shown as if they had come
        count, last_t = tail[0], tail[1] if tail[1] is not None else last_t
        n = count - 1
        if n >= limits.max_frames:
            raise TooLarge(name, f"more than {limits.max_frames:,} frames")
        if n / fps > limits.max_duration_s:
            raise TooLarge(name, f"longer than the limit of {limits.max_duration_s:.0f} s")
    return _Sampled(features, trimmed, count if last >= 0 else 0, width, height, first_t, last_t, decoded,
                    displayed if len(displayed) == len(features) else [], rotation, mirrored,
                    # a view some frames lack (the display rotation changed midway) is left out
                    {v: fs for v, fs in turned.items() if len(fs) == len(features)})


def _finish(s: _Sampled, stream, name: str, fmt: str, md5: str, sha256: str, fps: float,
            declared: float | None, codec: str, pdq_mode: str) -> VideoHashes:
    n = s.frames
    if n == 0:
        raise DecodeError(name, "no video frame could be decoded (truncated or corrupt)")
    expected = stream.frames
    if expected and n < expected * 0.9 and expected - n >= 2:
        raise DecodeError(name, f"truncated or corrupt: {n:,} of the {expected:,} frames the container "
                                "declares could be decoded")
    if declared:
        shown = (s.last_t - s.first_t + 1 / fps) if s.first_t is not None and s.last_t is not None else n / fps
        if shown < declared - max(1.0, 0.1 * declared):
            raise DecodeError(name, f"truncated or corrupt: frames for {shown:.1f} s of the {declared:.1f} s "
                                    "the container declares could be decoded")
    features, trimmed = s.features, s.trimmed
    bordered = sum(t is not None for t in trimmed)
    view = [t if t is not None else f for t, f in zip(trimmed, features, strict=True)] \
        if bordered and bordered * 2 >= len(features) else []
    return VideoHashes(fmt, codec, s.width, s.height, round(fps, 3), round(n / fps, 3), n, md5, sha256, features,
                       view, n - s.decoded, pdq_mode, s.rotation if s.displayed else 0, s.displayed, s.mirrored,
                       s.turned)


def _rotation(frame) -> int:
    """The frame's display rotation (its display matrix), degrees counter-clockwise in 0, 90,
    180, 270; 0 without one or for an angle that is not a quarter turn."""
    try:
        deg = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    if not math.isfinite(deg) or round(deg) % 90:
        return 0
    return int(round(deg)) % 360


def _frame_pdq(rgb: np.ndarray, pdq_mode: str, quarter_turns: int = 0, luma: np.ndarray | None = None):
    """PDQ of a sampled frame; of the frame inside uniform borders/bars (media/trim.py's
    ``trimmed`` box) where it has them, else None; of the frame turned ``quarter_turns``
    times counter-clockwise (as displayed) when that is not 0, else None; and of the frame
    mirrored left to right. The turned and mirrored PDQs are computed from turned and
    mirrored pixels: PDQ's own dihedral hashes differ from those by 20-70 bits."""
    from .trim import content_boxes

    luma = luma_of(rgb) if luma is None else luma
    box = content_boxes(luma).get("trimmed")
    if pdq_mode == "reference":
        inside = None if box is None else reference_pdq(rgb[box.top:box.bottom, box.left:box.right])
        turned = reference_pdq(np.ascontiguousarray(np.rot90(rgb, quarter_turns))) if quarter_turns else None
        return reference_pdq(rgb), inside, turned, reference_pdq(np.ascontiguousarray(rgb[:, ::-1]))
    h, w = luma.shape
    plain = fast_pdq(luma, (w, h))
    turned = None
    if quarter_turns:
        t = np.ascontiguousarray(np.rot90(luma, quarter_turns))
        turned = fast_pdq(t, (t.shape[1], t.shape[0]))
    flipped = fast_pdq(np.ascontiguousarray(luma[:, ::-1]), (w, h))
    if box is None:
        return plain, None, turned, flipped
    return plain, fast_pdq(np.ascontiguousarray(luma[box.top:box.bottom, box.left:box.right]),
                           (box.right - box.left, box.bottom - box.top)), turned, flipped


def _turned_pdq(luma: np.ndarray, quarter_turns: int = 0) -> dict[str, PdqResult]:
    """PDQ of a sampled frame's luma turned and flipped (TURNED_VIEWS), from the turned
    pixels of the plane reduced by whole-block averages (PDQ's own dihedral hashes differ
    from those by 20-70 bits). The turn ``quarter_turns`` (the display rotation, hashed as
    ``displayed``) is left out. Both PDQ modes: only the plain frames are Meta's to the bit."""
    h, w = luma.shape
    short = min(w, h)
    b = 1 if short < _TURNS_REDUCE_FROM else short // _TURNS_REDUCE_TARGET
    plane = luma
    if b > 1:
        # Strided sums (a reshape and sum over the block axis costs ~8x more at 720p); a
        # partial block at the right or bottom edge is cut off (under b pixels of a side).
        h, w = h // b * b, w // b * b
        whole = luma[:h, :w]
        rows = whole[0::b].copy()
        for i in range(1, b):
            rows += whole[i::b]
        plane = rows[:, 0::b].copy()
        for i in range(1, b):
            plane += rows[:, i::b]
        plane *= np.float32(1 / (b * b))
    # One transposed copy; every view is a reversed slice of the plane or of it (PDQ's
    # filter gathers rows into a new array: no view needs its own copy).
    across = np.ascontiguousarray(plane.T)
    ways = {"rotated-90": (across[::-1], (h, w)), "rotated-180": (plane[::-1, ::-1], (w, h)),
            "rotated-270": (across[:, ::-1], (h, w)), "flipped-vertical": (plane[::-1], (w, h)),
            "flipped-diagonal": (across, (h, w)), "flipped-antidiagonal": (across[::-1, ::-1], (h, w))}
    shown = f"rotated-{90 * (quarter_turns % 4)}"
    return {view: fast_pdq(turned, size, (b, b)) for view, (turned, size) in ways.items() if view != shown}


def _check_size(name: str, width: int, height: int, limits: VideoLimits) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(name, f"invalid frame size {width}x{height}")
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        raise TooLarge(name, f"frame size {width}x{height} is over the limit "
                             f"({limits.max_width}x{limits.max_height}, {limits.max_pixels:,} pixels)")


# ------------------------------------------------------------------ container metadata

# Tags in which a writer names itself (FFmpeg's names for MP4/MOV/Matroska/AVI tags).
SOFTWARE_TAGS = ("encoder", "software", "encoded_by", "creation_tool", "com.apple.quicktime.software",
                 "writing_application", "ISFT")
MAX_TAGS = 64


def container_tags(path: str | Path) -> list[tuple[str, str, str]]:
    """(where, key, value) of the container's and its streams' metadata tags, read
    without decoding a frame (at most MAX_TAGS, values cut at 512 characters). Raises
    UnsupportedFormat / DecodeError naming the file."""
    import av

    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    fmt = video_format(head)
    if fmt is None:
        raise UnsupportedFormat(str(path), "not a video container assay reads")
    try:
        with av.open(str(p), mode="r", format=fmt, options={"protocol_whitelist": "file"}) as c:
            found = [("container", str(k), str(v)[:512]) for k, v in (c.metadata or {}).items()]
            for s in c.streams:
                found += [(f"stream {s.index} ({s.type})", str(k), str(v)[:512])
                          for k, v in (s.metadata or {}).items()]
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(str(path), f"cannot open the {fmt} container: {_reason(exc)}") from None
    return found[:MAX_TAGS]


# ----------------------------------------------------------------------- the text format


def dumps(features: Iterable[VpdqFeature]) -> str:
    """Meta's text form: one ``frame_number,quality,hex,timestamp`` line per frame."""
    return "".join(f.line() + "\n" for f in features)


MAX_VPDQ_FRAMES = 1_000_000  # lines of one vPDQ file or signal string


def loads(text: str, source: str = "<vpdq>") -> list[VpdqFeature]:
    """Parse Meta's text form (blank lines and ``#`` comments skipped), in Meta's field
    order ``frame_number,quality,hex,timestamp`` or with hex and quality swapped. Raises
    InvalidSignal naming ``source``, the line and the reason."""
    out: list[VpdqFeature] = []
    last = -1
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{no}"
        if len(out) >= MAX_VPDQ_FRAMES:
            raise InvalidSignal("vpdq", where, f"more than {MAX_VPDQ_FRAMES:,} frames")
        parts = [x.strip() for x in line.split(",")]
        if len(parts) != 4:
            raise InvalidSignal("vpdq", where, f"expected frame_number,quality,hex,timestamp, got {len(parts)} fields")
        hex_at = 1 if len(parts[1]) > 3 else 2  # a quality has at most 3 digits, a hash 64
        try:
            frame_number, quality, ts = int(parts[0]), int(parts[3 - hex_at]), float(parts[3])
        except ValueError:
            raise InvalidSignal("vpdq", where, "frame number and quality must be integers, timestamp a number") from None
        if frame_number <= last:
            raise InvalidSignal("vpdq", where, "frame numbers must increase")
        last = frame_number
        out.append(_feature(where, frame_number, parts[hex_at], quality, ts))
    return out


def _feature(where: str, frame_number: int, hex_: str, quality: int, ts: float) -> VpdqFeature:
    try:
        value = PDQ.normalize(hex_)
    except InvalidSignal as exc:
        raise InvalidSignal("vpdq", where, f"bad PDQ hash: {exc.reason}") from None
    if not 0 <= quality <= 100:
        raise InvalidSignal("vpdq", where, "quality must be 0-100")
    if not (math.isfinite(ts) and 0 <= ts < 1e9):
        raise InvalidSignal("vpdq", where, "timestamp must be a non-negative number")
    if frame_number < 0:
        raise InvalidSignal("vpdq", where, "frame number must not be negative")
    return VpdqFeature(frame_number, value, quality, round(ts, VPDQ_TIMESTAMP_PRECISION))


def from_threatexchange_json(text: str, source: str = "<vpdq>") -> list[VpdqFeature]:
    """python-threatexchange's vPDQ signal string (a JSON list of ``hex,quality,timestamp``).
    It has no frame numbers: the position in the list stands for one."""
    try:
        items = json.loads(text or "[]")
    except (ValueError, RecursionError):
        raise InvalidSignal("vpdq", source, "not a JSON list of \"hex,quality,timestamp\" strings") from None
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise InvalidSignal("vpdq", source, "not a JSON list of \"hex,quality,timestamp\" strings")
    if len(items) > MAX_VPDQ_FRAMES:
        raise InvalidSignal("vpdq", source, f"more than {MAX_VPDQ_FRAMES:,} frames")
    out = []
    for i, item in enumerate(items):
        where = f"{source}[{i}]"
        parts = [x.strip() for x in item.split(",")]
        if len(parts) != 3:
            raise InvalidSignal("vpdq", where, f"expected hex,quality,timestamp, got {len(parts)} fields")
        try:
            quality, ts = int(parts[1]), float(parts[2])
        except ValueError:
            raise InvalidSignal("vpdq", where, "quality must be an integer, timestamp a number") from None
        out.append(_feature(where, i, parts[0], quality, ts))
    return out


def parse_signal(text: str, source: str = "<vpdq>") -> list[VpdqFeature]:
    """A vPDQ hash in either form: python-threatexchange's JSON signal string (starts
    with ``[``) or Meta's text lines."""
    return from_threatexchange_json(text, source) if text.lstrip().startswith("[") else loads(text, source)


def to_json(features: Sequence[VpdqFeature]) -> list[dict[str, object]]:
    return [{"frame_number": f.frame_number, "hex": f.hex, "quality": f.quality, "timestamp": f.timestamp}
            for f in features]


def to_threatexchange_json(features: Sequence[VpdqFeature]) -> str:
    """python-threatexchange's signal string: a JSON list of ``hex,quality,timestamp``."""
    return json.dumps([f"{f.hex},{f.quality},{f.timestamp:.{VPDQ_TIMESTAMP_PRECISION}f}" for f in features])


# ------------------------------------------------------------------------------ matching


@dataclass(frozen=True)
class VpdqMatch:
    query_match_percent: float
    compared_match_percent: float
    is_match: bool
    query_frames: int  # after dedupe and the quality filter
    compared_frames: int
    # runs of consecutive matching query frames: (first timestamp, last timestamp)
    query_segments: tuple[tuple[float, float], ...] = ()


def prepare(features: Sequence[VpdqFeature], quality: int = VPDQ_QUALITY_THRESHOLD) -> list[VpdqFeature]:
    """Frames below ``quality`` dropped, then deduplicated by hash (first kept), in
    python-threatexchange's order (``prepare_vpdq_feature``)."""
    seen: set[str] = set()
    out = []
    for f in features:
        if f.quality >= quality and f.hex not in seen:
            seen.add(f.hex)
            out.append(f)
    return out


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def _packed(features: Sequence[VpdqFeature]) -> np.ndarray:
    if not features:
        return np.zeros((0, 32), dtype=np.uint8)
    return np.frombuffer(b"".join(bytes.fromhex(f.hex) for f in features), dtype=np.uint8).reshape(-1, 32)


def _within(a: np.ndarray, b: np.ndarray, distance: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of ``a`` have a row of ``b`` within ``distance``, and which rows of ``b`` one of ``a``."""
    hit_a = np.zeros(len(a), dtype=bool)
    hit_b = np.zeros(len(b), dtype=bool)
    for i in range(0, len(a), chunk):
        d = _POPCOUNT[a[i:i + chunk, None, :] ^ b[None, :, :]].sum(axis=2)
        close = d <= distance
        hit_a[i:i + chunk] = close.any(axis=1)
        hit_b |= close.any(axis=0)
    return hit_a, hit_b


def match(
    query: Sequence[VpdqFeature],
    compared: Sequence[VpdqFeature],
    *,
    distance: int = VPDQ_DISTANCE_THRESHOLD,
    quality: int = VPDQ_QUALITY_THRESHOLD,
    query_percent: float = VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
    compared_percent: float = VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT,
) -> VpdqMatch:
    """Meta's rule: share of the query's frames with a compared frame within ``distance``
    and share of the compared video's frames with a query frame within it, both after
    dedupe and the quality filter; a match when both reach their thresholds. A side
    with no frame left after filtering never matches."""
    q = prepare(query, quality)
    c = prepare(compared, quality)
    if not q or not c:
        return VpdqMatch(0.0, 0.0, False, len(q), len(c))
    hit_q, hit_c = _within(_packed(q), _packed(c), distance)
    qp = float(hit_q.sum()) * 100 / len(q)
    cp = float(hit_c.sum()) * 100 / len(c)
    segments: list[tuple[float, float]] = []
    start: int | None = None
    for i, hit in enumerate([*hit_q.tolist(), False]):
        if hit and start is None:
            start = i
        elif not hit and start is not None:
            segments.append((q[start].timestamp, q[i - 1].timestamp))
            start = None
    return VpdqMatch(qp, cp, qp >= query_percent and cp >= compared_percent, len(q), len(c), tuple(segments))


# ------------------------------------------------------------------------------- record


def video_record(path: str | Path, *, limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
                 pdq_mode: str = "fast"):  # -> FileRecord
    """An ``assay.file/1`` record of a video: kind, container, the ``video`` block with its
    vPDQ frames, and the ``video_md5`` / ``sha256`` signals; a failure is an error entry
    (the exact digests are still given when the bytes could be read)."""
    from ..errors import AssayError
    from ..report.schema import ErrorInfo, FileRecord, SignalValue

    p = Path(path)
    rec = FileRecord(path=str(path), kind="video")
    try:
        rec.size = p.stat().st_size
        h = hash_video_file(p, limits=limits, pdq_mode=pdq_mode)
    except AssayError as exc:
        with _suppress_os():
            if p.is_file() and rec.size is not None and rec.size <= limits.max_file_bytes:
                md5, sha256 = file_digests(p)
                rec.signals += [SignalValue(type="video_md5", value=md5), SignalValue(type="sha256", value=sha256)]
        rec.errors.append(ErrorInfo(stage="video-hash", code=exc.code, message=str(exc)))
        return rec
    except OSError as exc:
        rec.kind = "error"
        rec.errors.append(ErrorInfo(stage="read", code="bad-input", message=f"{path}: cannot read: {exc.strerror or exc}"))
        return rec
    rec.format = h.format
    rec.video = video_info(h)
    rec.signals += [SignalValue(type="video_md5", value=h.md5), SignalValue(type="sha256", value=h.sha256)]
    return rec


def video_info(h: VideoHashes, *, mirrored: bool = False):  # -> VideoInfo
    """The ``video`` block of a file record; with ``mirrored`` the mirrored and the turned
    views too (a scan matches them and keeps each only when something matched through it)."""
    from ..report.schema import VideoInfo, VpdqFrame

    def frames(fs: list[VpdqFeature]) -> list[VpdqFrame]:
        return [VpdqFrame(frame_number=f.frame_number, hex=f.hex, quality=f.quality, timestamp=f.timestamp)
                for f in fs]

    return VideoInfo(format=h.format, codec=h.codec, width=h.width, height=h.height, fps=h.fps,
                     duration_s=h.duration_s, frames_decoded=h.frames_decoded, vpdq=frames(h.vpdq),
                     vpdq_trimmed=frames(h.trimmed) if h.trimmed else None, pdq_mode=h.pdq_mode,
                     rotation=h.rotation or None, vpdq_displayed=frames(h.displayed) if h.displayed else None,
                     vpdq_mirrored=frames(h.mirrored) if mirrored and h.mirrored else None,
                     vpdq_turned={v: frames(fs) for v, fs in h.turned.items()} if mirrored and h.turned else None)


def _suppress_os():
    import contextlib

    return contextlib.suppress(OSError)
