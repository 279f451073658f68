"""vPDQ banks: videos banked from files and from Meta's / python-threatexchange's hash
forms, frame hashes in the PDQ-like index grouped per video before Meta's rule,
`assay match --video`, export, and videos in `assay scan` (one broken video is an
error record, never the end of the scan)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.banks.store import Store
from assay.banks.videos import bank_record
from assay.cli import app
from assay.errors import BankImportError
from assay.media import video
from videogen import make_video, reencode

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parents[1]
MATCHES_SCHEMA = json.loads((ROOT / "docs/schemas/assay.matches-1.schema.json").read_text())
FILE_SCHEMA = json.loads((ROOT / "docs/schemas/assay.file-1.schema.json").read_text())
runner = CliRunner()


@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vbank")
    orig = make_video(d / "orig.mkv", seed=1, seconds=10, fps=15, codec="mpeg4", bit_rate=2_000_000)
    return {
        "orig": orig,
        # seconds 4-9 at 25 frames/s, another codec and container, low bit rate
        "trim": reencode(orig, d / "trim.avi", codec="mjpeg", start_s=4, end_s=9, fps=25),
        "other": make_video(d / "other.mp4", seed=2, seconds=6, fps=15, codec="mpeg4"),
        "third": make_video(d / "third.mp4", seed=3, seconds=6, fps=15, codec="mpeg4"),
    }


@pytest.fixture(scope="module")
def hashed(vids: dict[str, Path]) -> dict[str, video.VideoHashes]:
    return {k: video.hash_video_file(p) for k, p in vids.items()}


def _cli(db: Path, *args: str) -> object:
    return runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    p = tmp_path / "store.sqlite3"
    assert _cli(p, "--create", "bank", "create", "videos").exit_code == 0
    return p


def test_bank_add_video_and_match_a_trimmed_reencoded_clip(db, vids, hashed):
    res = _cli(db, "bank", "add", "videos", "--content-id", "case-7", "--video", str(vids["orig"]), "--json")
    assert res.exit_code == 0, res.output
    kept = video.prepare(hashed["orig"].vpdq)
    assert json.loads(res.output)["added_signals"] == len(kept) + 2  # frames, video_md5, sha256
    _cli(db, "bank", "add", "videos", "--content-id", "unrelated", "--video", str(vids["third"]))
    # readable
    res = _cli(db, "match", "--video", str(vids["trim"]))
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "vpdq (5 frames) of" in text and "case-7" in text and "unrelated" not in text
    assert "1 banked video matched" in text
    assert "videos / case-7: 5 of 5 query frames (100%), 5 of the banked video's 10 frames (50%)" in text
    assert "query at 0-4 s" in text  # the clip's own time
    assert "banked video at 4-8 s" in text  # where the clip is in the banked video
    # --json
    res = _cli(db, "match", "--video", str(vids["trim"]), "--json")
    doc = json.loads(res.output)
    jsonschema.validate(doc, MATCHES_SCHEMA)
    (m,) = doc["matches"]
    assert (m["bank"], m["content_id"], m["signal_type"], m["strength"]) == ("videos", "case-7", "vpdq", "perceptual")
    assert m["video"] == {"query_match_percent": 100.0, "compared_match_percent": 50.0, "query_frames": 5,
                          "compared_frames": 10, "matched_query_frames": 5, "matched_compared_frames": 5,
                          "query_segments": [[0.0, 4.0]], "compared_segments": [[4.0, 8.0]]}
    assert doc["queries"][m["query"]]["video"] == str(vids["trim"]) and doc["queries"][m["query"]]["frames"] == 5
    # the original as query against the clip's bank would not match (half its frames):
    # Meta's rule is about the query's share; the same video file matches exactly too
    res = _cli(db, "match", "--video", str(vids["orig"]), "--json")
    got = {(x["signal_type"], x["content_id"]) for x in json.loads(res.output)["matches"]}
    assert got == {("vpdq", "case-7"), ("video_md5", "case-7"), ("sha256", "case-7")}


def test_unrelated_video_matches_nothing_and_empty_store_says_so(tmp_path, db, vids):
    empty = tmp_path / "empty.sqlite3"
    res = _cli(empty, "--create", "match", "--video", str(vids["other"]))
    assert res.exit_code == 0 and "no banked video has >= 80% of these frames" in res.output
    _cli(db, "bank", "add", "videos", "--content-id", "case-7", "--video", str(vids["orig"]))
    res = _cli(db, "match", "--video", str(vids["other"]), "--json")
    assert json.loads(res.output)["matches"] == []
    res = _cli(db, "match", "--video", str(vids["other"]))
    assert "no banked video" in res.output and "Traceback" not in res.output


def test_import_meta_text_threatexchange_string_and_hma_csv(tmp_path, db, vids, hashed):
    h = hashed["orig"]
    meta_txt = tmp_path / "orig-meta.txt"
    meta_txt.write_text(video.dumps(h.vpdq))
    res = _cli(db, "bank", "import", "videos", str(meta_txt), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["format"] == "vpdq" and out["added_entries"] == 1
    te = tmp_path / "te.json"
    te.write_text(video.to_threatexchange_json(hashed["trim"].vpdq))
    assert _cli(db, "bank", "import", "videos", str(te), "--content-id", "clip").exit_code == 0
    # HMA's bank shape: one CSV row per video, the signal string as the value
    csv_path = tmp_path / "hma.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["content_id", "signal_type", "value"])
        w.writerow(["third", "vpdq", video.to_threatexchange_json(hashed["third"].vpdq)])
    res = _cli(db, "bank", "import", "videos", str(csv_path))
    assert res.exit_code == 0, res.output
    with Store(f"sqlite:///{db}") as store:
        ids = {e.content_id: e for e in store.iter_entries("videos")}
    assert set(ids) == {"orig-meta", "clip", "third"}
    assert ids["orig-meta"].meta["vpdq"]["frames"] == len(ids["orig-meta"].signals["vpdq"])
    # a query clip finds the video banked from Meta's text
    res = _cli(db, "match", "--video", str(vids["trim"]), "--json")
    got = {m["content_id"] for m in json.loads(res.output)["matches"] if m["signal_type"] == "vpdq"}
    assert got == {"orig-meta", "clip"}


def test_export_round_trips(tmp_path, db, vids, hashed):
    _cli(db, "bank", "add", "videos", "--content-id", "v1", "--video", str(vids["orig"]), "--note", "n")
    res = _cli(db, "bank", "export", "videos", "--format", "vpdq", "--content-id", "v1")
    assert res.exit_code == 0
    assert video.loads(res.output) == hashed["orig"].vpdq
    first = res.output.splitlines()[0].split(",")
    assert first[1] == str(hashed["orig"].vpdq[0].quality) and len(first[2]) == 64  # Meta's field order
    res = _cli(db, "bank", "export", "videos", "--format", "vpdq")
    assert res.exit_code == 2 and "--content-id" in res.output
    # CSV: the video on one row (the signal string), importable again
    out = tmp_path / "b.csv"
    assert _cli(db, "bank", "export", "videos", "--format", "csv", "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(r["signal_type"] for r in rows) == ["sha256", "video_md5", "vpdq"]
    for fmt in ("csv", "jsonl"):
        dump = tmp_path / f"b.{fmt}"
        if fmt == "jsonl":
            _cli(db, "bank", "export", "videos", "-o", str(dump))
        assert _cli(db, "bank", "import", f"again-{fmt}", str(dump), "--create").exit_code == 0
        with Store(f"sqlite:///{db}") as store:
            a = store.get_entry("videos", "v1")
            b = store.get_entry(f"again-{fmt}", "v1")
        assert {k: sorted(v) for k, v in a.signals.items()} == {k: sorted(v) for k, v in b.signals.items()}
        if fmt == "jsonl":  # everything, frame numbers included
            assert b.meta["vpdq"] == a.meta["vpdq"]
        else:  # python-threatexchange's signal string has no frame numbers
            def strip(text: str) -> list[tuple[str, int, float]]:
                return [(f.hex, f.quality, f.timestamp) for f in video.loads(text)]
            assert strip(b.meta["vpdq"]["text"]) == strip(a.meta["vpdq"]["text"])


def test_bad_vpdq_files_name_file_and_line(tmp_path, db, hashed):
    lines = video.dumps(hashed["orig"].vpdq).splitlines()
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join([*lines[:3], lines[3].replace(",", ";", 1), *lines[4:]]) + "\n")
    res = _cli(db, "bank", "import", "videos", str(bad), "--format", "vpdq")
    assert res.exit_code != 0 and "bad.txt" in res.output and "line 4" in res.output
    assert "Traceback" not in res.output
    low = tmp_path / "low.txt"
    low.write_text("0,10," + "a" * 64 + ",0.000\n")
    res = _cli(db, "bank", "import", "videos", str(low))
    assert res.exit_code != 0 and "quality" in res.output


def test_forged_frame_count_is_refused(tmp_path, hashed):
    rec = bank_record(hashed["orig"].vpdq, "v")
    forged = rec._replace(meta={"vpdq": {**rec.meta["vpdq"], "frames": 1}})
    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        store.create_bank("b")
        with pytest.raises(BankImportError, match="'frames' must be the entry's number of vpdq hashes"):
            store.import_records("b", [forged], source="t")
        store.import_records("b", [rec], source="t")
        assert store.stats("b").signals["vpdq"] == len(video.prepare(hashed["orig"].vpdq))


def test_matcher_groups_frames_per_video_and_bare_hashes_never_overstate(tmp_path, hashed):
    from assay.banks.matcher import Matcher

    with Store(f"sqlite:///{tmp_path / 's.sqlite3'}") as store:
        store.create_bank("b")
        store.import_records("b", [bank_record(hashed["orig"].vpdq, "orig"),
                                   bank_record(hashed["other"].vpdq, "other")], source="t")
        # frame hashes added one by one: the banked video's frame count is unknown
        store.add_entry("b", "loose", {"vpdq": [f.hex for f in hashed["orig"].vpdq[4:9]]})
        m = Matcher(store, snapshots=False)
        got = {x.content_id: x for x in m.match_subject([], hashed["trim"].vpdq)}
    assert set(got) == {"orig", "loose"}
    assert got["orig"].video.compared_match_percent == 50.0
    assert got["loose"].video.compared_match_percent is None and got["loose"].video.compared_frames is None
    assert got["loose"].video.query_match_percent == 100.0


def test_scan_hashes_and_matches_videos_one_broken_video_is_an_error_record(tmp_path, db, vids):
    _cli(db, "bank", "add", "videos", "--content-id", "case-7", "--video", str(vids["orig"]))
    folder = tmp_path / "seized"
    folder.mkdir()
    shutil.copy(vids["trim"], folder / "holiday.dat")  # renamed: found by its bytes
    shutil.copy(vids["orig"], folder / "copy.webm")  # same bytes, another extension
    shutil.copy(vids["other"], folder / "other.mp4")
    data = vids["orig"].read_bytes()
    (folder / "broken.mkv").write_bytes(data[: len(data) // 2])
    (folder / "zz-after.txt").write_text("still scanned\n")
    out = tmp_path / "r.jsonl"
    res = _cli(db, "scan", str(folder), "-o", str(out), "--workers", "1")
    assert res.exit_code in (0, 1), res.output
    recs = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines()) if "path" in r}
    for r in recs.values():
        jsonschema.validate(r, FILE_SCHEMA)
    assert set(recs) == {"holiday.dat", "copy.webm", "other.mp4", "broken.mkv", "zz-after.txt"}
    hol = recs["holiday.dat"]
    assert hol["kind"] == "video" and hol["format"] == "avi" and len(hol["video"]["vpdq"]) == 5
    (m,) = hol["matches"]
    assert m["content_id"] == "case-7" and m["video"]["query_match_percent"] == 100.0
    cp = {(x["signal_type"], x["content_id"]) for x in recs["copy.webm"]["matches"]}
    assert cp == {("vpdq", "case-7"), ("video_md5", "case-7"), ("sha256", "case-7")}
    assert recs["other.mp4"].get("matches", []) == []
    br = recs["broken.mkv"]
    assert br["kind"] == "video" and br["errors"][0]["stage"] == "video-hash"
    assert {s["type"] for s in br["signals"]} >= {"md5", "sha1", "sha256", "video_md5"}
    assert recs["zz-after.txt"]["kind"] != "error"


def _rewritten(src: Path, dst: Path, change) -> Path:  # noqa: ANN001
    """``src`` re-encoded (MPEG-4, 15 frames/s) with ``change`` applied to every frame."""
    import av

    from videogen import write_video

    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return write_video(dst, (change(f) for f in frames), 15, codec="mpeg4", bit_rate=1_000_000)


def _match_one(db: Path, path: Path) -> dict:
    """The one match of ``match --video PATH --json``, checked against the schema."""
    doc = json.loads(_cli(db, "match", "--video", str(path), "--json").output)
    jsonschema.validate(doc, MATCHES_SCHEMA)
    (m,) = doc["matches"]
    return m


def test_a_letterboxed_copy_matches_through_its_trimmed_view(tmp_path, db, vids):
    import numpy as np

    def box(f: np.ndarray) -> np.ndarray:
        out = np.zeros((f.shape[0] + 32, f.shape[1], 3), np.uint8)
        out[16:16 + f.shape[0]] = f
        return out

    boxed = _rewritten(vids["orig"], tmp_path / "boxed.mp4", box)
    _cli(db, "bank", "add", "videos", "--content-id", "case-7", "--video", str(vids["orig"]))
    m = _match_one(db, boxed)
    assert (m["content_id"], m["query_variant"]) == ("case-7", "trimmed")
    assert m["video"]["query_match_percent"] >= 80
    out = tmp_path / "r.jsonl"
    assert _cli(db, "scan", str(boxed), "-o", str(out), "--workers", "1").exit_code in (0, 1)
    (rec,) = [json.loads(x) for x in out.read_text().splitlines() if '"path"' in x]
    jsonschema.validate(rec, FILE_SCHEMA)
    assert len(rec["video"]["vpdq_trimmed"]) == len(rec["video"]["vpdq"])
    assert [(x["content_id"], x["query_variant"]) for x in rec["matches"]] == [("case-7", "trimmed")]


def test_banked_segments_say_where_in_the_banked_video_the_query_is():
    """Runs of consecutive banked frames matched, in the banked video's time; a frame below
    the quality filter (never compared) does not break a run, a gap of compared frames does."""
    import numpy as np

    from assay.banks.refs import SignalRef, ref_extras
    from assay.banks.videos import video_matches

    rng = np.random.default_rng(5)
    hexes = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(10)]
    hexes[3] = hexes[2]  # a still second: the same hash twice
    banked = [video.VpdqFeature(i, h, 10 if i == 5 else 90, float(i)) for i, h in enumerate(hexes)]
    meta = bank_record(banked, "v").meta
    refs = {}
    for sid, h in enumerate(dict.fromkeys(f.hex for f in banked if f.quality >= 50), 1):
        variant, frames, times = ref_extras(json.dumps(meta), h)
        refs[sid] = SignalRef(sid, "videos", "v", "vpdq", h, None, None, 1, "flagged", variant, frames, times)
    by_hex = {r.value: sid for sid, r in refs.items()}

    def banked_runs(shown: list[int]) -> list[tuple[float, float]]:
        q = [video.VpdqFeature(k, hexes[i], 90, float(k)) for k, i in enumerate(shown)]
        hits = [(k, None, by_hex[f.hex], 0) for k, f in enumerate(q)]
        (m,) = video_matches(hits, refs, q)
        return m.video.compared_segments

    assert banked_runs([1, 2, 7, 8]) == [(1.0, 3.0), (7.0, 8.0)]  # 2 and 3 share a hash
    assert banked_runs([4, 6]) == [(4.0, 6.0)]  # frame 5 is not compared: still one run
    assert banked_runs([9, 0]) == [(0.0, 0.0), (9.0, 9.0)]  # in the banked video's order
    # an entry without its text form (hashes added one by one): no banked times, still a match
    bare = {sid: SignalRef(sid, "videos", "v", "vpdq", r.value, None, None, 1, "flagged", None, 9)
            for sid, r in refs.items()}
    q = [video.VpdqFeature(0, hexes[1], 90, 0.0)]
    (m,) = video_matches([(0, None, by_hex[hexes[1]], 0)], bare, q)
    assert m.video.compared_segments == [] and m.video.query_match_percent == 100.0


def test_a_video_turned_for_display_matches_a_copy_with_turned_pixels(tmp_path, db):
    """A phone video stored sideways with a display rotation (90 degrees) and a copy whose
    pixels were turned when re-encoded (what players show, what transcoders write): the stored
    pixels hash far apart (vPDQ is of stored pixels, as Meta's); the view hashed from the frames
    turned as displayed matches the copy."""
    import statistics

    import av
    import numpy as np

    from assay.media.pdq import hamming, reference_pdq
    from videogen import frame_at, write_video

    stored = tmp_path / "phone.mp4"
    with av.open(str(stored), "w") as out:
        st = out.add_stream("mpeg4", rate=10)
        st.width, st.height, st.pix_fmt, st.bit_rate = 192, 144, "yuv420p", 2_000_000
        st.set_display_rotation(90)  # counter-clockwise, as FFmpeg's display matrix says
        for i in range(60):
            for packet in st.encode(av.VideoFrame.from_ndarray(frame_at(1, i / 10), format="rgb24")):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)
    upright = write_video(tmp_path / "upright.mp4", (np.ascontiguousarray(np.rot90(frame_at(1, i / 10)))
                                                     for i in range(60)), 10, codec="mpeg4", bit_rate=2_000_000)
    h, u = video.hash_video_file(stored), video.hash_video_file(upright)
    assert (h.rotation, u.rotation, u.displayed) == (90, 0, [])
    # the turn the display rotation gives is the displayed view, not hashed again among the turns
    assert set(h.turned) == set(video.TURNED_VIEWS) - {"rotated-90"} and set(u.turned) == set(video.TURNED_VIEWS)
    assert [f.frame_number for f in h.displayed] == [f.frame_number for f in h.vpdq] == [0, 10, 20, 30, 40, 50]
    near = [hamming(a.hex, b.hex) for a, b in zip(h.displayed, u.vpdq, strict=True)]
    far = [hamming(a.hex, b.hex) for a, b in zip(h.vpdq, u.vpdq, strict=True)]
    assert max(near) <= 31 and statistics.median(far) > 64, (near, far)
    # reference mode turns the decoded pixels the same way
    r = video.hash_video_file(stored, pdq_mode="reference")
    with av.open(str(stored)) as c:
        first = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    assert r.displayed[0].hex == reference_pdq(np.ascontiguousarray(np.rot90(first))).hex
    # the upright copy banked, the phone video as the query: a match through the displayed view
    assert _cli(db, "bank", "add", "videos", "--content-id", "upright", "--video", str(upright)).exit_code == 0
    res = _cli(db, "match", "--video", str(stored), "--json")
    (m,) = [x for x in json.loads(res.output)["matches"] if x["signal_type"] == "vpdq"]
    assert (m["content_id"], m["query_variant"]) == ("upright", "displayed")
    rec = video.video_record(stored).to_json_dict()
    jsonschema.validate(rec, FILE_SCHEMA)
    assert rec["video"]["rotation"] == 90 and len(rec["video"]["vpdq_displayed"]) == 6
    assert "displayed turned 90 degrees" in " ".join(_cli(db, "hash", str(stored)).output.split())
    # the other way round: the phone video banked (its turned frames banked too), the upright
    # copy as the query
    assert _cli(db, "bank", "add", "videos", "--content-id", "phone", "--video", str(stored)).exit_code == 0
    res = _cli(db, "match", "--video", str(upright), "--json")
    got = {x["content_id"]: x for x in json.loads(res.output)["matches"] if x["signal_type"] == "vpdq"}
    assert got["phone"]["bank_variant"] == "displayed" and got["phone"].get("query_variant") is None
    assert got["phone"]["video"]["compared_frames"] == 6  # the frames as stored, Meta's count


def test_a_banked_letterboxed_video_matches_its_clean_copy(tmp_path, db, vids, hashed):
    """Banked with black bars (the banked side is trimmed too, as for stills): the clean
    original matches through the banked frames with the bars cut off; the banked share is
    over the frames as stored; an unrelated video still matches nothing."""
    import av
    import numpy as np

    from assay.banks.store import Store as _Store
    from videogen import write_video

    with av.open(str(vids["orig"])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    boxed = write_video(tmp_path / "boxed.mp4", (np.pad(f, ((16, 16), (0, 0), (0, 0))) for f in frames), 15,
                        codec="mpeg4", bit_rate=1_000_000)
    h = video.hash_video_file(boxed)
    assert h.trimmed and video.match(hashed["orig"].vpdq, h.vpdq).query_match_percent < 50
    res = _cli(db, "bank", "add", "videos", "--content-id", "boxed", "--video", str(boxed), "--json")
    assert res.exit_code == 0, res.output
    res = _cli(db, "match", "--video", str(vids["orig"]), "--json")
    (m,) = [x for x in json.loads(res.output)["matches"] if x["signal_type"] == "vpdq"]
    assert m["content_id"] == "boxed" and m["bank_variant"] == "trimmed"
    assert m["video"]["query_match_percent"] >= 80
    assert m["video"]["compared_frames"] == len(video.prepare(h.vpdq))  # Meta's count, as stored
    runs = m["video"]["compared_segments"]  # where in the banked video: all of it
    assert runs[0][0] == 0.0 and runs[-1][1] == 9.0
    res = _cli(db, "match", "--video", str(vids["other"]), "--json")
    assert [x for x in json.loads(res.output)["matches"] if x["signal_type"] == "vpdq"] == []
    # --no-variants banks the video as stored only; the export is Meta's form of the stored frames
    _cli(db, "bank", "add", "videos", "--content-id", "boxed-plain", "--video", str(boxed), "--no-variants")
    with _Store(f"sqlite:///{db}") as store:
        e = store.get_entry("videos", "boxed-plain")
        assert "pdq_variants" not in (e.meta or {}) and len(e.signals["vpdq"]) == len(video.prepare(h.vpdq))
    res = _cli(db, "bank", "export", "videos", "--format", "vpdq", "--content-id", "boxed")
    assert [f.hex for f in video.loads(res.output)] == [f.hex for f in h.vpdq]


def test_a_mirrored_copy_matches_through_its_mirrored_view(tmp_path, db, vids):
    """A video flipped left to right (the commonest re-upload evasion) moves every frame's
    PDQ by ~100+ bits: scan and match also query the mirrored frames; a scan's record keeps
    them only when a match came through them."""
    flipped = _rewritten(vids["orig"], tmp_path / "flipped.mp4", lambda f: f[:, ::-1])
    _cli(db, "bank", "add", "videos", "--content-id", "case-7", "--video", str(vids["orig"]))
    _cli(db, "bank", "add", "videos", "--content-id", "unrelated", "--video", str(vids["third"]))
    m = _match_one(db, flipped)
    assert (m["content_id"], m["query_variant"]) == ("case-7", "mirrored")
    assert m["video"]["query_match_percent"] >= 80
    res = _cli(db, "match", "--video", str(flipped))
    assert "case-7" in res.output and "unrelated" not in res.output
    out = tmp_path / "r.jsonl"
    scanned = tmp_path / "scan"
    scanned.mkdir()
    shutil.copy(flipped, scanned / "flipped.mp4")
    shutil.copy(vids["other"], scanned / "other.mp4")
    assert _cli(db, "scan", str(scanned), "-o", str(out), "--workers", "1").exit_code in (0, 1)
    recs = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())
            if r.get("schema") == "assay.file/1"}
    for rec in recs.values():
        jsonschema.validate(rec, FILE_SCHEMA)
    rec = recs["flipped.mp4"]
    assert [(x["content_id"], x["query_variant"]) for x in rec["matches"]] == [("case-7", "mirrored")]
    assert len(rec["video"]["vpdq_mirrored"]) == len(rec["video"]["vpdq"])
    assert recs["other.mp4"]["matches"] == [] and "vpdq_mirrored" not in recs["other.mp4"]["video"]


def test_turned_and_upside_down_copies_match_through_their_turned_views(tmp_path, db, vids):
    """A video whose pixels were turned a quarter or half turn, or flipped upside down, when
    re-encoded moves every frame's PDQ by ~100+ bits: its sampled frames turned and flipped
    back are query views (query_variant rotated-90, rotated-180, flipped-vertical) in match
    --video and scan; a scan's record keeps a view's frames only when a match came through
    it; an unrelated video turned matches nothing and its record carries no extra views."""
    import numpy as np

    copies = {"cw.mp4": (lambda f: np.rot90(f, -1), "rotated-90"),  # turned clockwise
              "half.mp4": (lambda f: f[::-1, ::-1], "rotated-180"),
              "upside.mp4": (lambda f: f[::-1], "flipped-vertical")}
    scanned = tmp_path / "scan"
    scanned.mkdir()
    for name, (change, _) in copies.items():
        _rewritten(vids["orig"], scanned / name, lambda f, c=change: np.ascontiguousarray(c(f)))
    _rewritten(vids["other"], scanned / "other-turned.mp4", lambda f: np.ascontiguousarray(np.rot90(f, -1)))
    before = video.hash_video_file(scanned / "cw.mp4")
    assert video.match(before.vpdq, video.hash_video_file(vids["orig"]).vpdq).query_match_percent < 80
    _cli(db, "bank", "add", "videos", "--content-id", "case-7", "--video", str(vids["orig"]))
    _cli(db, "bank", "add", "videos", "--content-id", "unrelated", "--video", str(vids["third"]))
    for name, (_, view) in copies.items():
        m = _match_one(db, scanned / name)
        assert (m["content_id"], m["query_variant"]) == ("case-7", view), name
        assert m["video"]["query_match_percent"] >= 80
    res = _cli(db, "match", "--video", str(scanned / "other-turned.mp4"), "--json")
    assert json.loads(res.output)["matches"] == []
    out = tmp_path / "r.jsonl"
    assert _cli(db, "scan", str(scanned), "-o", str(out), "--workers", "1").exit_code in (0, 1)
    recs = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())
            if r.get("schema") == "assay.file/1"}
    for rec in recs.values():
        jsonschema.validate(rec, FILE_SCHEMA)
    for name, (_, view) in copies.items():
        rec = recs[name]
        assert [(x["content_id"], x["query_variant"]) for x in rec["matches"]] == [("case-7", view)], name
        assert list(rec["video"]["vpdq_turned"]) == [view]
        assert len(rec["video"]["vpdq_turned"][view]) == len(rec["video"]["vpdq"])
        assert "vpdq_mirrored" not in rec["video"]
    other = recs["other-turned.mp4"]
    assert other["matches"] == [] and "vpdq_turned" not in other["video"] and "vpdq_mirrored" not in other["video"]
    # --all-variants keeps every view
    assert _cli(db, "scan", str(scanned / "other-turned.mp4"), "-o", str(tmp_path / "all.jsonl"), "--workers", "1",
                "--all-variants").exit_code in (0, 1)
    (rec,) = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines() if '"path"' in x]
    assert set(rec["video"]["vpdq_turned"]) == set(video.TURNED_VIEWS)
