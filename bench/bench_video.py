"""vPDQ (issue #17): hashing throughput and memory against `ffmpeg -vf fps=1` + python-threatexchange's
PDQ, and the lookup of a 60-frame query in a bank of 1M frame hashes.

    .venv/bin/python bench/bench_video.py [--seconds 60] [--rounds 3] [--bank 1000000]

1. A 60 s 1280x720 H.264 file (libx264, 30 frames/s) is generated once from moving patterns
   (cached under $TMPDIR). Each round runs, each in a fresh child process, one after the
   other: assay's ``hash_video_file`` (PyAV decode skipping the non-reference frames between
   samples, every 30th frame to RGB, PDQ, MD5/SHA-256 of the file) in its default ``fast``
   PDQ mode, in ``reference`` mode (Meta's C++ PDQ, bit-identical), and in reference mode
   decoding every frame (``decode_all``, as before the skipping), and the peer chain a platform would script: the `ffmpeg`
   binary with ``-vf fps=1`` writing one PNG a second to a temporary folder, then
   python-threatexchange's ``PdqSignal.hash_from_file`` on each PNG. Reported: wall and CPU
   seconds of each (the child's own rusage, ffmpeg's included for the peer), peak RSS, and the
   ratios (median over rounds). The machine is shared: CPU seconds are the figure to read.
2. Lookup: ``--bank`` random frame hashes plus one banked video of 60 frames in assay's
   ``HammingIndex``; the query is that video's 60 frames with 0-20 bits flipped each. Timed:
   the index search (radius 31) and the grouping per banked video with Meta's rule
   (``banks.videos.video_matches``; metadata of the few hits from memory, as the service's
   cache serves them). Median and p95 of 50 queries.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_720p(path: Path, seconds: int, fps: int = 30) -> Path:
    """Moving smooth patterns (a panned random field, a moving disc and bar), H.264."""
    import av

    if path.exists():
        return path
    w, h = 1280, 720
    rng = np.random.default_rng(7)
    small = rng.integers(0, 256, (h // 16 + 2, (w + 40 * seconds) // 16 + 2, 3), dtype=np.uint8)
    # A cheap smooth field: nearest-neighbour upscale of a small random image, blurred by a box.
    big = np.repeat(np.repeat(small, 16, axis=0), 16, axis=1)[:h].astype(np.float32)
    k = 9
    c = np.cumsum(np.pad(big, ((0, 0), (k, 0), (0, 0))), axis=1)
    big = ((c[:, k:] - c[:, :-k]) / k).astype(np.uint8)
    tmp = path.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(fps))
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "veryfast", "crf": "23"}
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(seconds * fps):
            t = i / fps
            x0 = int(40 * t)
            frame = big[:, x0:x0 + w].copy()
            cx, cy = int((0.2 + 0.6 * ((0.07 * t) % 1)) * w), int((0.5 + 0.3 * np.sin(t)) * h)
            r = h // 6
            y0, y1, x1, x2 = max(cy - r, 0), min(cy + r, h), max(cx - r, 0), min(cx + r, w)
            sub = (yy[y0:y1, x1:x2] - cy) ** 2 + (xx[y0:y1, x1:x2] - cx) ** 2 < r * r
            frame[y0:y1, x1:x2][sub] = (240, 230, 60)
            bx = int((0.8 - 0.5 * ((0.05 * t) % 1)) * w)
            frame[h // 8:h // 8 + h // 4, max(bx - 60, 0):bx + 60] = (20, 30, 90)
            for p in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    tmp.rename(path)
    return path


ASSAY_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from assay.media.video import hash_video_file
h = hash_video_file(sys.argv[1], pdq_mode=sys.argv[2], decode_all=sys.argv[3] == "all")
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024,
                  "frames": len(h.vpdq), "skipped": h.frames_skipped, "hashes": [f.hex for f in h.vpdq]}))
"""

PEER_CHILD = """
import json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from threatexchange.signal_type.pdq.signal import PdqSignal
with tempfile.TemporaryDirectory() as d:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", sys.argv[1], "-vf", "fps=1",
                    str(Path(d) / "f%05d.png")], check=True)
    hashes = [PdqSignal.hash_from_file(p) for p in sorted(Path(d).iterdir())]
wall = time.perf_counter() - t0
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                  "rss_mb": me.ru_maxrss / 1024, "ffmpeg_rss_mb": kids.ru_maxrss / 1024,
                  "frames": len(hashes), "hashes": hashes}))
"""


def run_child(code: str, video: Path, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, str(video), *args], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# (label, PDQ mode, decode): assay's contenders, each against the same peer run of its round
ASSAY_WAYS = (("fast", "fast", "sparse"), ("reference", "reference", "sparse"),
              ("reference, every frame decoded", "reference", "all"))


def bench_hashing(video: Path, rounds: int) -> dict[str, object]:
    from assay.media.pdq import hamming

    rows = []
    for r in range(rounds):
        ours = {label: run_child(ASSAY_CHILD, video, mode, decode) for label, mode, decode in ASSAY_WAYS}
        p = run_child(PEER_CHILD, video)
        rows.append((ours, p))
        print(f"round {r + 1}: ffmpeg fps=1 + threatexchange wall {p['wall']:.2f} s cpu {p['cpu']:.2f} s "
              f"rss {p['rss_mb']:.0f} MB + ffmpeg {p['ffmpeg_rss_mb']:.0f} MB ({p['frames']} frames)", flush=True)
        for label, a in ours.items():
            print(f"  assay {label}: wall {a['wall']:.2f} s cpu {a['cpu']:.2f} s rss {a['rss_mb']:.0f} MB "
                  f"({a['frames']} frames, {a['skipped']} not decoded) | cpu ratio {p['cpu'] / a['cpu']:.2f}x "
                  f"wall ratio {p['wall'] / a['wall']:.2f}x", flush=True)
    med = statistics.median
    out: dict[str, object] = {"peer_wall_s": med(y["wall"] for _, y in rows),
                              "peer_cpu_s": med(y["cpu"] for _, y in rows)}
    for label, *_ in ASSAY_WAYS:
        out[f"assay {label}"] = {
            "wall_s": med(x[label]["wall"] for x, _ in rows), "cpu_s": med(x[label]["cpu"] for x, _ in rows),
            "peak_rss_mb": max(x[label]["rss_mb"] for x, _ in rows),
            "cpu_ratio": med(y["cpu"] / x[label]["cpu"] for x, y in rows),
            "wall_ratio": med(y["wall"] / x[label]["wall"] for x, y in rows)}
    ours, p = rows[-1]
    fast, ref, full = (ours[label]["hashes"] for label, *_ in ASSAY_WAYS)
    d_fast = [hamming(x, y) for x, y in zip(fast, ref, strict=True)]
    out["fast_vs_reference_bits"] = {"frames": len(d_fast), "equal": d_fast.count(0), "max": max(d_fast)}
    out["skipping_changes_reference_hashes"] = ref != full
    n = min(len(ref), len(p["hashes"]))
    dists = [hamming(x, y) for x, y in zip(ref[:n], p["hashes"][:n], strict=True)]
    out["frames"] = (len(ref), p["frames"])
    out["frame_distance_assay_vs_peer"] = {"median": med(dists), "max": max(dists)} if dists else None
    return out


def bench_lookup(bank: int, queries: int = 50) -> dict[str, float]:
    from assay.banks.index import HammingIndex
    from assay.banks.refs import SignalRef
    from assay.banks.videos import video_matches
    from assay.media.video import VpdqFeature

    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (bank, 32), dtype=np.uint8)
    ids = np.arange(1, bank + 1, dtype=np.int64)
    video_rows = rng.integers(0, bank, 60)  # the banked video's 60 frames, somewhere in the bank
    t0 = time.perf_counter()
    idx = HammingIndex(bits=256)
    idx.add(codes, ids)
    idx.merge()
    build = time.perf_counter() - t0
    refs = {int(ids[i]): SignalRef(int(ids[i]), "videos", "case-7", "vpdq", codes[i].tobytes().hex(), None, None,
                                   7, "flagged", None, 60) for i in video_rows}
    times, found = [], 0
    for _ in range(queries):
        qc = codes[video_rows].copy()
        for row in qc:  # 0-20 bits flipped per frame
            for b in rng.choice(256, rng.integers(0, 21), replace=False):
                row[b // 8] ^= 1 << (b % 8)
        frames = [VpdqFeature(i, qc[i].tobytes().hex(), 100, float(i)) for i in range(60)]
        t0 = time.perf_counter()
        qoff, hit_ids, dists = idx.search_flat(qc, 31)
        hits = []
        for k in range(60):
            for j in range(int(qoff[k]), int(qoff[k + 1])):
                hits.append((k, None, int(hit_ids[j]), int(dists[j])))
        got = video_matches(hits, {h[2]: refs[h[2]] for h in hits if h[2] in refs}, frames)
        times.append(time.perf_counter() - t0)
        found += bool(got) and got[0].content_id == "case-7"
    times.sort()
    return {"bank_frames": bank, "build_s": build, "median_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))], "found": f"{found}/{queries}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bank", type=int, default=1_000_000)
    ap.add_argument("--skip-hashing", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores", flush=True)
    out: dict[str, object] = {}
    if not args.skip_hashing:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            sys.exit("the peer needs the ffmpeg binary (Debian: apt-get install ffmpeg)")
        version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
        print(f"peer: {ffmpeg} ({version})", flush=True)
        out["ffmpeg"] = f"{ffmpeg}: {version}"
        cache = Path(tempfile.gettempdir()) / "assay-bench-video"
        cache.mkdir(exist_ok=True)
        video = make_720p(cache / f"720p-{args.seconds}s.mp4", args.seconds)
        out["hashing"] = bench_hashing(video, args.rounds)
    out["lookup"] = bench_lookup(args.bank)
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
