"""Short benign test videos, made with PyAV from generated patterns (no shared data).

A "scene" is a smooth random field (a few seeded sinusoids) with a bright disc and a dark
square moving over it, panned with time, so each second looks different to PDQ while
two renderings of the same time look alike. Frames live only in memory; the only files
written are the encoded videos themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_at(seed: int, t: float, width: int = 192, height: int = 144) -> np.ndarray:
    """The (H, W, 3) uint8 picture of scene ``seed`` at time ``t`` seconds."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x = x + 9.0 * t  # pan
    img = np.zeros((height, width, 3), np.float32)
    for _ in range(5):
        fx, fy = rng.uniform(0.01, 0.08, 2)
        ph = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(20, 50, 3)
        wave = np.sin(fx * x + fy * y + ph + 0.3 * t)
        img += wave[..., None] * amp
    img += 128
    cx = (0.2 + 0.6 * ((0.07 * t) % 1.0)) * width
    cy = (0.5 + 0.3 * np.sin(0.5 * t)) * height
    img[(x - 9.0 * t - cx) ** 2 + (y - cy) ** 2 < (height / 6) ** 2] = (240, 230, 60)
    sx = int((0.8 - 0.5 * ((0.05 * t) % 1.0)) * width)
    sy = int(0.15 * height)
    img[sy:sy + height // 4, max(sx - height // 8, 0):sx + height // 8] = (20, 30, 90)
    return np.clip(img, 0, 255).astype(np.uint8)


def encoders() -> set[str]:
    return set(av.codecs_available)


def write_video(path: Path, frames: Iterator[np.ndarray], fps: int, *, codec: str = "mpeg4",
                container: str | None = None, bit_rate: int | None = None,
                options: dict[str, str] | None = None) -> Path:
    pix = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.pix_fmt = pix
        if bit_rate:
            stream.bit_rate = bit_rate
        if options:
            stream.options = options
        first = True
        for rgb in frames:
            if first:
                stream.height, stream.width = rgb.shape[:2]
                first = False
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_video(path: Path, seed: int, *, seconds: float = 10, fps: int = 15, start: float = 0.0,
               **kw: object) -> Path:
    """Scene ``seed`` from ``start`` for ``seconds`` at ``fps``."""
    frames = (frame_at(seed, start + i / fps) for i in range(round(seconds * fps)))
    return write_video(path, frames, fps, **kw)  # type: ignore[arg-type]


def reencode(src: Path, dst: Path, *, codec: str, fps: int | None = None, start_s: float = 0.0,
             end_s: float | None = None, bit_rate: int | None = None, container: str | None = None) -> Path:
    """Decode ``src`` and encode its frames in [start_s, end_s) again (optionally at another
    frame rate, by picking the frame shown at each new time)."""
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        src_fps = float(stream.average_rate)
        decoded = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
    out_fps = fps or round(src_fps)
    end = end_s if end_s is not None else len(decoded) / src_fps
    n = round((end - start_s) * out_fps)
    picks = (decoded[min(int((start_s + i / out_fps) * src_fps + 1e-6), len(decoded) - 1)] for i in range(n))
    return write_video(dst, picks, out_fps, codec=codec, bit_rate=bit_rate, container=container)
