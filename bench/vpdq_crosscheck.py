"""assay's vPDQ against Meta's own (the `vpdq` package) on the same generated videos.

Meta's package builds against FFmpeg's development headers, which assay's environment
does not need; build it in a throw-away environment and name its Python here:

    apt-get install libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev \
        libavfilter-dev pkg-config cmake
    python3 -m venv /tmp/vpdq-venv && /tmp/vpdq-venv/bin/pip install vpdq
    .venv/bin/python bench/vpdq_crosscheck.py --reference-python /tmp/vpdq-venv/bin/python [VIDEO ...]

Without VIDEO arguments, five test videos are generated (tests/videogen.py: MPEG-4 in
Matroska, MJPEG in AVI, a low-bit-rate MP4, a 25 frames/s trimmed clip, libx264 at 30
frames/s). Prints, per video, whether frame numbers, qualities and timestamps are equal
and the Hamming distance of each frame hash pair.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

REFERENCE = """
import json, sys, vpdq
out = {}
for p in sys.argv[1:]:
    out[p] = [[f.frame_number, f.hex, f.quality, round(f.timestamp, 3)]
              for f in vpdq.computeHash(p, seconds_per_hash=1.0)]
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference-python", required=True, help="a Python with Meta's vpdq package")
    ap.add_argument("videos", nargs="*", type=Path)
    args = ap.parse_args()
    from assay.media.pdq import hamming
    from assay.media.video import hash_video_file

    tmp = Path(tempfile.mkdtemp(prefix="vpdq-crosscheck-"))
    videos = list(args.videos)
    if not videos:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from videogen import encoders, make_video, reencode

        orig = make_video(tmp / "orig.mkv", seed=1, seconds=10, fps=15, codec="mpeg4", bit_rate=2_000_000)
        videos = [orig, reencode(orig, tmp / "copy.avi", codec="mjpeg"),
                  reencode(orig, tmp / "low.mp4", codec="mpeg4", bit_rate=150_000),
                  reencode(orig, tmp / "trim.mkv", codec="mpeg4", start_s=4, end_s=9, fps=25)]
        if "libx264" in encoders():
            videos.append(reencode(orig, tmp / "h264.mp4", codec="libx264", fps=30))
    ref = json.loads(subprocess.run([args.reference_python, "-c", REFERENCE, *map(str, videos)], check=True,
                                    capture_output=True, text=True).stdout)
    bad = 0
    for v in videos:
        ours = [[f.frame_number, f.hex, f.quality, f.timestamp] for f in hash_video_file(v).vpdq]
        theirs = ref[str(v)]
        meta_equal = [(a[0], a[2], a[3]) for a in ours] == [(b[0], b[2], b[3]) for b in theirs]
        dists = [hamming(a[1], b[1]) for a, b in zip(ours, theirs, strict=False)]
        bad += not meta_equal or any(dists) or len(ours) != len(theirs)
        print(f"{v.name}: {len(ours)} vs {len(theirs)} frames; frame numbers, qualities, timestamps equal: "
              f"{meta_equal}; hash distances: {dists}")
    print("identical" if not bad else f"{bad} video(s) differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
