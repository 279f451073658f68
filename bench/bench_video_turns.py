"""The turned views of a video's sampled frames (rotated-90/-180/-270, flipped-vertical/
-diagonal/-antidiagonal): their cost per sampled frame against the rest of hashing, and how
near a copy re-encoded turned comes to the original through them.

    .venv/bin/python bench/bench_video_turns.py [--seconds 20] [--rounds 3]

A 1280x720 libx264 file at 30 frames/s (bench_video.py's generator, cached under $TMPDIR) and a
copy of it turned a quarter turn clockwise, re-encoded with libx264 (cached too). Each round, in
this process, one after the other: ``hash_video_file`` as it is, and with the turned views
switched off (``video._turned_pdq`` returning nothing); CPU seconds (process time) per sampled
frame of each, and ``_turned_pdq`` alone on the luma of every sampled frame (median ms). Then the
copy's ``rotated-90`` view against the original's vPDQ: Hamming distances per frame, Meta's
query share, and the plain frames' distances for contrast.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_video import make_720p  # noqa: E402


def turned_copy(src: Path, dst: Path) -> Path:
    import av

    if dst.exists():
        return dst
    tmp = dst.with_suffix(".partial.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(30))
        st.width, st.height, st.pix_fmt = 720, 1280, "yuv420p"
        st.options = {"preset": "veryfast", "crf": "23"}
        for f in inp.decode(video=0):
            turned = np.ascontiguousarray(np.rot90(f.to_ndarray(format="rgb24"), -1))
            for p in st.encode(av.VideoFrame.from_ndarray(turned, format="rgb24")):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    tmp.rename(dst)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import av

    from assay.media import video
    from assay.media.pdq import hamming, luma_of

    cache = Path(tempfile.gettempdir()) / "assay-bench-video"
    cache.mkdir(exist_ok=True)
    src = make_720p(cache / f"turns-720p-{args.seconds}s.mp4", args.seconds)
    cw = turned_copy(src, cache / f"turns-720p-{args.seconds}s-cw.mp4")

    real = video._turned_pdq
    rows = []
    for _ in range(args.rounds):
        row = {}
        for label, fn in (("with", real), ("without", lambda *a, **k: {})):
            video._turned_pdq = fn
            t0 = time.process_time()
            h = video.hash_video_file(src)
            row[label] = (time.process_time() - t0) / len(h.vpdq) * 1000
        video._turned_pdq = real
        rows.append(row)
    per_view = []
    with av.open(str(src)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 30 == 0:
                luma = luma_of(f.to_ndarray(format="rgb24"))
                t0 = time.perf_counter()
                video._turned_pdq(luma)
                per_view.append((time.perf_counter() - t0) * 1000)
    orig, copy = video.hash_video_file(src), video.hash_video_file(cw)
    near = [hamming(a.hex, b.hex) for a, b in zip(copy.turned["rotated-90"], orig.vpdq, strict=True)]
    far = [hamming(a.hex, b.hex) for a, b in zip(copy.vpdq, orig.vpdq, strict=True)]
    print(json.dumps({
        "sampled_frames": len(orig.vpdq),
        "hash_ms_per_sampled_frame": [{k: round(v, 2) for k, v in r.items()} for r in rows],
        "median_with_ms": round(statistics.median(r["with"] for r in rows), 2),
        "median_without_ms": round(statistics.median(r["without"] for r in rows), 2),
        "turned_pdq_alone_ms_median": round(statistics.median(per_view), 2),
        "turned_pdq_alone_ms_p95": round(sorted(per_view)[int(0.95 * (len(per_view) - 1))], 2),
        "copy_rotated90_vs_orig_bits": {"median": statistics.median(near), "max": max(near)},
        "copy_plain_vs_orig_bits_median": statistics.median(far),
        "query_share_rotated90": video.match(copy.turned["rotated-90"], orig.vpdq).query_match_percent,
        "query_share_plain": video.match(copy.vpdq, orig.vpdq).query_match_percent,
    }, indent=1))


if __name__ == "__main__":
    main()
