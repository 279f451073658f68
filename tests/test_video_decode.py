"""Video decoding that skips the non-reference frames between vPDQ samples (H.264, HEVC):
the frames sampled, their numbers, hashes and timestamps must be those of decoding every
frame, as Meta's hasher does; where the packets do not bear the numbering out, every frame
is decoded."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from assay.errors import DecodeError, TooLarge
from assay.media import video
from assay.media.pdq import reference_pdq
from assay.media.video import hash_video_file
from videogen import encoders, frame_at, make_video, write_video

CODECS = [c for c in ("libx264", "libx265") if c in encoders()]
pytestmark = pytest.mark.skipif(not CODECS, reason="no H.264/HEVC encoder in this FFmpeg")
# B-frames and a keyframe every 2 s, as encoders are commonly set
OPTIONS = {"libx264": {"g": "60", "bf": "3"}, "libx265": {"x265-params": "keyint=60:bframes=4:log-level=error"}}


def _same(a: video.VideoHashes, b: video.VideoHashes) -> None:
    assert a.vpdq == b.vpdq and a.trimmed == b.trimmed
    assert (a.frames_decoded, a.duration_s, a.fps, a.width, a.height) == \
        (b.frames_decoded, b.duration_s, b.fps, b.width, b.height)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sparse")
    frames = [frame_at(3, i / 30) for i in range(150)]
    return {f"{codec}.{ext}": write_video(d / f"{codec}.{ext}", iter(frames), 30, codec=codec,
                                          options=OPTIONS[codec])
            for codec in CODECS for ext in ("mp4", "mkv")}


@pytest.mark.parametrize("key", [f"{c}.{e}" for c in CODECS for e in ("mp4", "mkv")])
def test_skipping_non_reference_frames_samples_the_same_frames(made, key):
    _same(hash_video_file(made[key]), hash_video_file(made[key], decode_all=True))  # fast PDQ
    sparse = hash_video_file(made[key], pdq_mode="reference")
    full = hash_video_file(made[key], decode_all=True, pdq_mode="reference")
    _same(sparse, full)
    assert full.frames_skipped == 0
    assert sparse.frames_skipped > 0  # the B-frames between samples were not decoded
    assert [f.frame_number for f in sparse.vpdq] == list(range(0, 150, 30))
    # and each hash is reference PDQ of the frame a full decode gives at that number
    with av.open(str(made[key])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for f in sparse.vpdq:
        assert (f.hex, f.quality) == (reference_pdq(frames[f.frame_number]).hex,
                                      reference_pdq(frames[f.frame_number]).quality)


def test_a_fractional_frame_rate(tmp_path):
    """29.97 frames/s: every 29th frame is sampled, timestamps frame / 29.97."""
    p = make_video(tmp_path / "ntsc.mp4", seed=4, seconds=3, fps=Fraction(30000, 1001), codec=CODECS[0],
                   options=OPTIONS[CODECS[0]])
    sparse, full = hash_video_file(p), hash_video_file(p, decode_all=True)
    _same(sparse, full)
    assert sparse.frames_skipped > 0
    assert [f.frame_number for f in sparse.vpdq][:3] == [0, 29, 58]
    assert sparse.vpdq[1].timestamp == round(29 / (30000 / 1001), 3)


def _cut(src: Path, dst: Path, first_packet: int) -> Path:
    """``src``'s packets from the ``first_packet``-th on (decode order), not re-encoded: a clip
    that starts inside a group of pictures, whose first frames the decoder cannot show."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        for i, packet in enumerate(inp.demux(s)):
            if packet.size and i >= first_packet:
                packet.stream = o
                out.mux(packet)
    return dst


def test_a_clip_cut_inside_a_group_of_pictures_decodes_every_frame(made, tmp_path):
    src = made[f"{CODECS[0]}.mp4"]
    clip = _cut(src, tmp_path / "cut.mp4", 57)  # 3 packets before the keyframe at 60
    with av.open(str(clip)) as c:
        packets = sum(1 for p in c.demux(video=0) if p.size)
    sparse, full = hash_video_file(clip), hash_video_file(clip, decode_all=True)
    _same(sparse, full)
    # the decoder drops the frames before the first keyframe: numbering as Meta's hasher counts
    assert full.frames_decoded < packets
    assert sparse.frames_skipped == 0  # fell back to decoding every frame


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        (video.VideoLimits(max_frames=100), "more than 100 frames"),
        (video.VideoLimits(max_duration_s=3), "limit of 3 s"),
        (video.VideoLimits(max_decoded_bytes=2_000_000), "decoded"),
        (video.VideoLimits(max_width=100), "frame size"),
        (video.VideoLimits(wall_clock_s=0), "budget"),
    ],
)
def test_limits_hold_when_frames_are_skipped(made, limits, words):
    p = made[f"{CODECS[0]}.mp4"]
    with pytest.raises(TooLarge) as e:
        hash_video_file(p, limits=limits)
    assert words in str(e.value) and str(p) in str(e.value)


def test_a_truncated_file_is_still_an_error(made, tmp_path):
    data = made[f"{CODECS[0]}.mp4"].read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as e:
        hash_video_file(cut)
    assert str(cut) in str(e.value)


def test_a_variable_frame_rate(tmp_path):
    """Frames 20, 33 or 50 ms apart (a phone's variable rate): Meta's numbering counts decoded
    frames at the stream's average rate whatever their times, and skipping keeps it."""
    import numpy as np

    p = tmp_path / "vfr.mkv"
    rng = np.random.default_rng(1)
    with av.open(str(p), "w") as out:
        st = out.add_stream(CODECS[0], rate=30)
        st.width, st.height, st.pix_fmt = 192, 144, "yuv420p"
        st.codec_context.time_base = Fraction(1, 1000)
        st.options = OPTIONS[CODECS[0]]
        t = 0
        for _ in range(120):
            frame = av.VideoFrame.from_ndarray(frame_at(5, t / 1000), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in st.encode(frame):
                out.mux(packet)
            t += int(rng.choice([20, 33, 50]))
        for packet in st.encode():
            out.mux(packet)
    sparse, full = hash_video_file(p), hash_video_file(p, decode_all=True)
    _same(sparse, full)
    assert sparse.frames_skipped > 0 and full.frames_decoded == 120
    frame_mod = int(full.fps)
    assert [f.frame_number for f in full.vpdq] == list(range(0, 120, frame_mod))
    assert [f.timestamp for f in full.vpdq] == [round(n / full.fps, 3) for n in range(0, 120, frame_mod)]
