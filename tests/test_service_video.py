"""Video on the service (#17): HMA's /h/hash and /m/lookup with a ``video`` upload and
``signal_type=vpdq`` lookups (python-threatexchange's signal string), /v1/hash and
/v1/match of video uploads; decodes bounded like heavy images (decoder process, upload
size, wall-clock budget), errors naming the upload, never the service's temporary file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assay.banks.videos import bank_record
from assay.media import video
from assay.service import Settings, create_app
from assay.service.app import open_store
from assay.service.auth import create_key
from videogen import make_video, reencode

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("svcvid")
    orig = make_video(d / "orig.mp4", seed=1, seconds=8, fps=10, codec="mpeg4")
    return {"orig": orig,
            "clip": reencode(orig, d / "clip.avi", codec="mjpeg", start_s=2, end_s=6, fps=15),
            "other": make_video(d / "other.mkv", seed=2, seconds=5, fps=10, codec="mpeg4")}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, vids: dict[str, Path]) -> Iterator[tuple[TestClient, Any, Path]]:
    tmp = tmp_path_factory.mktemp("svc")
    settings = Settings(db=str(tmp / "s.db"), access_log=False, tmp_dir=str(tmp / "uploads"),
                        max_upload_bytes=4 * 1024**2)
    store = open_store(settings)
    key = create_key(store.engine, "match-key", "match")[1]
    store.create_bank("VIDEOS")
    store.import_records("VIDEOS", [bank_record(video.hash_video_file(vids["orig"]).vpdq, "case-7",
                                                extra=[("video_md5", video.file_digests(vids["orig"])[0])])],
                         source="test")
    store.close()
    with TestClient(create_app(settings)) as c:
        c.headers["X-API-Key"] = key
        yield c, settings, tmp / "uploads"


def _up(path: Path, field: str = "video") -> dict[str, Any]:
    return {field: (path.name, path.read_bytes())}


def test_hma_hash_of_a_video(svc, vids):
    c, _, tmpdir = svc
    h = video.hash_video_file(vids["clip"])
    r = c.post("/h/hash", files=_up(vids["clip"]))
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == {"vpdq", "video_md5"}
    assert got["video_md5"] == h.md5
    assert video.parse_signal(got["vpdq"]) == [video.VpdqFeature(i, f.hex, f.quality, f.timestamp)
                                               for i, f in enumerate(h.vpdq)]
    assert json.loads(got["vpdq"])[0].count(",") == 2  # python-threatexchange's "hex,quality,timestamp"
    r = c.post("/h/hash", params={"types": "vpdq"}, files=_up(vids["clip"]))
    assert set(r.json()) == {"vpdq"}
    r = c.post("/h/hash", params={"types": "pdq"}, files=_up(vids["clip"]))
    assert r.status_code == 400 and "not computed for videos" in r.json()["error"]["message"]
    assert not any(tmpdir.iterdir())  # the spooled upload is gone


def test_hma_lookup_of_a_vpdq_signal_and_of_a_video_upload(svc, vids):
    c, _, _ = svc
    sig = video.to_threatexchange_json(video.hash_video_file(vids["clip"]).vpdq)
    r = c.get("/m/lookup", params={"signal_type": "vpdq", "signal": sig})
    assert r.status_code == 200, r.text
    (m,) = r.json()["VIDEOS"]
    assert m["content_id"] == "case-7" and isinstance(m["bank_content_id"], int)
    assert m["distance"] == f"{m['query_match_percent']:.0f}%[{m['compared_match_percent']:.0f}%]"
    assert m["query_match_percent"] == 100.0 and 40 <= m["compared_match_percent"] <= 60
    other = video.to_threatexchange_json(video.hash_video_file(vids["other"]).vpdq)
    assert c.get("/m/lookup", params={"signal_type": "vpdq", "signal": other}).json() == {}
    r = c.get("/m/lookup", params={"signal_type": "vpdq", "signal": '["nothex,1,0"]'})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-signal"
    r = c.post("/m/lookup", files=_up(vids["orig"]))
    got = r.json()
    assert set(got) == {"vpdq", "video_md5"}
    assert got["video_md5"]["VIDEOS"][0]["content_id"] == "case-7"
    assert got["vpdq"]["VIDEOS"][0]["distance"] == "100%[100%]"
    r = c.post("/m/lookup", params={"banks": "ELSEWHERE"}, files=_up(vids["clip"]))
    assert r.json() == {"vpdq": {}, "video_md5": {}}


def test_v1_hash_and_match_of_video_uploads(svc, vids):
    c, _, tmpdir = svc
    r = c.post("/v1/hash", files=_up(vids["clip"], "file"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["video"]["format"] == "avi" and len(body["video"]["vpdq"]) == 4 and "image" not in body
    assert {s["type"] for s in body["signals"]} == {"video_md5", "sha256"}
    r = c.post("/v1/match", files=_up(vids["clip"], "file"))
    (m,) = r.json()["matches"]
    assert (m["content_id"], m["signal_type"], m["strength"]) == ("case-7", "vpdq", "perceptual")
    assert m["video"]["query_segments"] == [[0.0, 3.0]]
    assert c.post("/v1/match", files=_up(vids["other"], "file")).json()["matches"] == []
    assert not any(tmpdir.iterdir())


def test_broken_and_oversized_videos_are_clear_errors(svc, vids, tmp_path):
    c, settings, tmpdir = svc
    data = vids["orig"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for route, field in (("/v1/match", "file"), ("/h/hash", "video"), ("/m/lookup", "video")):
        r = c.post(route, files={field: ("evidence-42.mp4", cut.read_bytes())})
        assert r.status_code == 422, (route, r.text)
        err = r.json()["error"]
        assert err["code"] == "decode-error" and "evidence-42.mp4" in err["message"], err
        assert str(tmpdir) not in r.text
    big = settings.max_upload_bytes + 1
    r = c.post("/v1/hash", files={"file": ("big.mp4", data[:64] + bytes(big - 64))})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too-large"
    assert not any(tmpdir.iterdir())


def test_hma_curation_banks_a_video_by_upload_and_by_vpdq_signal(tmp_path, vids):
    """HMA's /c/bank/{bank}/content takes a ``video`` upload and /c/bank/{bank}/signal a vpdq
    signal string: the entry is a banked video (its frame hashes indexed, Meta's rule on
    lookup), read back with its whole vpdq signal."""
    settings = Settings(db=str(tmp_path / "c.db"), access_log=False, tmp_dir=str(tmp_path / "uploads"),
                        max_upload_bytes=4 * 1024**2)
    store = open_store(settings)
    key = create_key(store.engine, "curator", "curate")[1]
    store.close()
    orig = video.hash_video_file(vids["orig"])
    with TestClient(create_app(settings)) as c:
        c.headers["X-API-Key"] = key
        assert c.post("/c/banks", json={"name": "CLIPS"}).status_code == 201
        assert {"name": "video", "enabled": True} in c.get("/c/content_type").json()
        r = c.post("/c/bank/CLIPS/content", files=_up(vids["orig"]),
                   data={"metadata": json.dumps({"content_id": "case-9", "json": {"case": 9}})})
        assert r.status_code == 200, r.text
        added = r.json()
        assert added["signals"] == {"vpdq": video.to_threatexchange_json(orig.vpdq), "video_md5": orig.md5}
        item = c.get(f"/c/bank/CLIPS/content/{added['id']}", params={"include_signals": True}).json()
        assert item["signals"]["vpdq"] == added["signals"]["vpdq"]
        assert item["metadata"] == {"content_id": "case-9", "json": {"case": 9}}  # no frame list in it
        # a clip of it, uploaded, matches by Meta's rule, with where it is in the banked video
        r = c.post("/m/lookup", files=_up(vids["clip"]))
        assert r.status_code == 200, r.text
        (m,) = r.json()["vpdq"]["CLIPS"]
        assert m["content_id"] == "case-9"
        # by signal string: another video, its content id from its vPDQ
        other = video.hash_video_file(vids["other"])
        sig = video.to_threatexchange_json(other.vpdq)
        r = c.post("/c/bank/CLIPS/signal", json={"vpdq": sig, "note": "from an exchange"})
        assert r.status_code == 200, r.text
        assert r.json()["signals"] == {"vpdq": sig}
        r = c.get("/m/lookup", params={"signal_type": "vpdq", "signal": sig})
        (m,) = r.json()["CLIPS"]
        assert m["content_id"].startswith("vpdq-")
        # a malformed vpdq is a 400 naming the signal type
        bad = c.post("/c/bank/CLIPS/signal", json={"vpdq": '["zz,90,0.0"]'})
        assert bad.status_code == 400 and "vpdq" in bad.json()["error"]["message"]
        assert "Traceback" not in bad.text


def test_turned_and_upside_down_uploads_match_through_their_turned_views(svc, vids, tmp_path):
    """A banked video re-encoded turned a quarter or half turn or flipped upside down matches
    on /v1/match (query_variant naming the view) and HMA's /m/lookup; an unrelated video
    turned matches nothing."""
    import av
    import numpy as np

    from videogen import write_video

    c, _, tmpdir = svc

    def rewritten(src: Path, name: str, change) -> Path:  # noqa: ANN001
        with av.open(str(src)) as inp:
            frames = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
        return write_video(tmp_path / name, (np.ascontiguousarray(change(f)) for f in frames), 10,
                           codec="mpeg4", bit_rate=1_000_000)

    for name, change, view in (("cw.mp4", lambda f: np.rot90(f, -1), "rotated-90"),
                               ("half.mp4", lambda f: f[::-1, ::-1], "rotated-180"),
                               ("upside.mp4", lambda f: f[::-1], "flipped-vertical")):
        p = rewritten(vids["orig"], name, change)
        (m,) = c.post("/v1/match", files=_up(p, "file")).json()["matches"]
        assert (m["content_id"], m["signal_type"], m["query_variant"]) == ("case-7", "vpdq", view), name
        assert m["video"]["query_match_percent"] >= 80
        (hma,) = c.post("/m/lookup", files=_up(p)).json()["vpdq"]["VIDEOS"]
        assert hma["content_id"] == "case-7"
    other = rewritten(vids["other"], "other-cw.mp4", lambda f: np.rot90(f, -1))
    assert c.post("/v1/match", files=_up(other, "file")).json()["matches"] == []
    assert c.post("/m/lookup", files=_up(other)).json() == {"vpdq": {}, "video_md5": {}}
    assert not any(tmpdir.iterdir())
