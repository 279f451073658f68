"""Issue 17, item 5: C2PA Content Credentials in real MP4/MOV/AVI videos (frames encoded by
PyAV from generated patterns, tests/videogen.py), signed here with the SDK's public test
certificate. The verdict rules are the images': the active manifest's word is the
headline, an ingredient's never is, a validation failure is reported and not relied on,
a remote reference is named and never fetched. Audio and PDF: test_c2pa_formats.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.provenance import analyzer
from assay.provenance import c2pa as c2pa_source
from assay.sniff import sniff_path
from c2pa_sign import IPTC, counting_listener, pattern_jpeg, sign

c2pa = pytest.importorskip("c2pa")
pytest.importorskip("av")
from videogen import make_video  # noqa: E402  (needs PyAV)

MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "avi": "video/msvideo"}
FMTS = sorted(MIME)


@pytest.fixture(scope="module")
def c2dir(testdata: Path) -> Path:
    return testdata / "c2pa"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Unsigned 1 s videos (4 frames of 192x144, MPEG-4 Part 2), a few kB each."""
    d = tmp_path_factory.mktemp("plain")
    return {fmt: make_video(d / f"v.{fmt}", 3, seconds=1, fps=4, container=fmt).read_bytes()
            for fmt in FMTS}


@pytest.fixture(scope="module")
def signed(c2dir: Path, plain: dict[str, bytes]) -> dict[str, bytes]:
    return {fmt: sign(c2dir, plain[fmt], MIME[fmt], agent="VidGen 2.0") for fmt in FMTS}


def _tamper_frames(data: bytes, fmt: str = "mp4") -> bytes:
    """A byte of the coded frames changed after signing, the manifest left as it was."""
    i = data.find(b"movi" if fmt == "avi" else b"mdat")
    assert i >= 0
    buf = bytearray(data)
    buf[i + 40] ^= 0x55
    return bytes(buf)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    f = tmp_path / name
    f.write_bytes(data)
    return f


@pytest.mark.parametrize("fmt", FMTS)
def test_signed_video_reads_ai_generated(signed: dict[str, bytes], fmt: str, tmp_path: Path) -> None:
    f = _write(tmp_path, f"gen.{fmt}", signed[fmt])
    assert sniff_path(f).kind == "video" and sniff_path(f).format == fmt
    res = CliRunner().invoke(app, ["provenance", str(f)])
    assert res.exit_code == 0, res.output
    assert "verdict: AI-generated: signed Content Credential (VidGen 2.0; signer not trusted)" in res.output
    assert "Traceback" not in res.output
    doc = json.loads(CliRunner().invoke(app, ["provenance", "--json", str(f)]).output)
    (e,) = [e for e in doc["evidence"] if e["source"] == "c2pa"]
    assert (e["claim"], e["strength"]) == ("ai-generated", "moderate")
    assert e["facts"]["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert doc["errors"] == []
    # Streamed from the file (a video is never read whole) gives the same record.
    streamed = analyzer.analyze_media_provenance(f, fmt)
    assert [x.model_dump() for x in streamed.evidence if x.source == "c2pa"] == [e]


@pytest.mark.parametrize("fmt", FMTS)
def test_frames_changed_after_signing_are_invalid_not_headline(
    signed: dict[str, bytes], fmt: str, tmp_path: Path
) -> None:
    f = _write(tmp_path, f"bad.{fmt}", _tamper_frames(signed[fmt], fmt))
    report = analyzer.analyze_media_provenance(f, fmt)
    assert report.verdict.startswith("Content Credential present but invalid ("), report.verdict
    assert "signed Content Credential" not in report.verdict
    (e,) = [e for e in report.evidence if e.source == "c2pa"]
    assert e.strength == "weak"
    binding = "assertion.dataHash" if fmt == "avi" else "assertion.bmffHash"  # RIFF / ISO BMFF
    assert any(line.startswith("hash binding") and binding in line
               for line in e.facts["failed_checks"]), e.facts["failed_checks"]
    res = CliRunner().invoke(app, ["provenance", str(f)])
    assert res.exit_code == 0, res.output
    assert "hash binding failed" in res.output and "not relied on" in res.output


def test_changed_manifest_is_invalid(signed: dict[str, bytes]) -> None:
    """The declared generator's name rewritten in the embedded manifest (same length):
    the claim no longer matches its signature; reported as invalid, not as VidGen's."""
    data = signed["mp4"]
    assert data.count(b"VidGen 2.0") >= 1
    bad = data.replace(b"VidGen 2.0", b"VidGen 9.9")
    report = analyzer.analyze_provenance(Path("m.mp4"), bad, "mp4")
    assert report.verdict.startswith("Content Credential present but invalid ("), report.verdict
    (e,) = [e for e in report.evidence if e.source == "c2pa"]
    assert e.strength == "weak" and e.facts["failed_checks"]


@pytest.mark.parametrize("fmt", FMTS)
def test_unsigned_video_has_no_c2pa_evidence(plain: dict[str, bytes], fmt: str, tmp_path: Path) -> None:
    f = _write(tmp_path, f"plain.{fmt}", plain[fmt])
    assert c2pa_source.evidence(f, plain[fmt], fmt) == []
    report = analyzer.analyze_media_provenance(f, fmt)
    assert [e for e in report.evidence if e.source == "c2pa"] == []
    assert report.errors == []
    assert report.verdict == "no provenance evidence found"


def test_ai_ingredient_is_history_not_headline(c2dir: Path, plain: dict[str, bytes]) -> None:
    """A camera-capture video made from an AI-generated still: the active manifest's
    claim is the headline; the ingredient is reported as history."""
    ingredient = sign(c2dir, pattern_jpeg(), "image/jpeg", agent="StillGen")
    data = sign(c2dir, plain["mp4"], "video/mp4", "digitalCapture", agent="CamApp",
                ingredient=ingredient)
    report = analyzer.analyze_provenance(Path("c.mp4"), data, "mp4")
    assert report.verdict.startswith("camera capture declared (weak): signed Content Credential (CamApp"), \
        report.verdict
    assert "made from an AI-generated ingredient (StillGen)" in report.verdict
    claims = sorted(e.claim for e in report.evidence if e.source == "c2pa")
    assert claims == ["ai-generated", "camera-captured"]


def test_remote_manifest_in_a_video_is_never_fetched(c2dir: Path, plain: dict[str, bytes]) -> None:
    """A video whose credential is only a URL (XMP dcterms:provenance in the MP4): named,
    not fetched; a local listener counts connections."""
    with counting_listener() as (port, hits):
        url = f"http://127.0.0.1:{port}/video.c2pa"
        action = {"action": "c2pa.created", "digitalSourceType": IPTC + "trainedAlgorithmicMedia"}
        builder = c2pa.Builder.from_json({
            "claim_generator_info": [{"name": "assay-tests", "version": "1"}],
            "format": "video/mp4",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
        })
        builder.set_no_embed()
        builder.set_remote_url(url)
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, (c2dir / "es256_certs.pem").read_bytes(),
                                   (c2dir / "es256_private.key").read_bytes(), None)
        out = io.BytesIO()
        builder.sign(c2pa.Signer.from_info(info), "video/mp4", io.BytesIO(plain["mp4"]), out)
        report = analyzer.analyze_provenance(Path("r.mp4"), out.getvalue(), "mp4")
        (e,) = [e for e in report.evidence if e.source == "c2pa"]
        assert e.facts == {"remote_manifest": True, "remote_url": url, "fetched": False}
        assert not report.verdict.startswith("AI-generated"), report.verdict
        assert hits == []


def test_scan_hashes_signed_videos_and_reads_their_credentials(
    signed: dict[str, bytes], plain: dict[str, bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    _write(folder, "signed.mp4", signed["mp4"])
    _write(folder, "signed.mov", signed["mov"])
    _write(folder, "signed.avi", signed["avi"])
    _write(folder, "tampered.mp4", _tamper_frames(signed["mp4"]))
    _write(folder, "plain.mp4", plain["mp4"])
    # In-process: this process has used the C2PA SDK, whose threads do not survive a fork.
    res = CliRunner().invoke(app, ["scan", "--json", "--no-banks", "--workers", "1", str(folder)])
    assert res.exit_code == 0, res.output
    recs = {Path(d["path"]).name: d for d in map(json.loads, res.output.splitlines()) if "path" in d}
    for name in ("signed.mp4", "signed.mov", "signed.avi"):
        rec = recs[name]
        assert rec["kind"] == "video", rec
        assert rec["provenance"]["verdict"] == \
            "AI-generated: signed Content Credential (VidGen 2.0; signer not trusted)", name
        assert rec["video"]["vpdq"], name  # the frames are hashed as for any video
        assert rec["errors"] == [], name
    assert recs["tampered.mp4"]["provenance"]["verdict"].startswith(
        "Content Credential present but invalid (")
    assert recs["plain.mp4"]["provenance"]["verdict"] == "no provenance evidence found"
    assert recs["plain.mp4"]["provenance"]["evidence"] == []
    summary = json.loads(res.output.splitlines()[-1])
    assert summary["files_with_ai_evidence"] == 3


@pytest.mark.parametrize("container", ["matroska", "webm"])
def test_matroska_and_webm_say_c2pa_was_not_checked(c2dir: Path, container: str, tmp_path: Path) -> None:
    """The SDK reads no manifest in Matroska/WebM: the report says C2PA was not checked
    rather than implying the file carries no credential."""
    from videogen import encoders

    codec = "libvpx" if container == "webm" else "mpeg4"
    if codec not in encoders():
        pytest.skip(f"no {codec} encoder in this PyAV build")
    f = make_video(tmp_path / f"v.{container}", 3, seconds=1, fps=4, container=container, codec=codec)
    assert sniff_path(f).format == container
    with pytest.raises(c2pa.C2paError):  # control: the SDK itself refuses the format
        sign(c2dir, f.read_bytes(), "video/webm")
    report = analyzer.analyze_media_provenance(f, container)
    assert [(n.source, n.reason) for n in report.not_checked or []] == [
        ("c2pa", f"the C2PA SDK reads no Content Credentials in {container} files")]
    assert report.verdict == "no provenance evidence found" and report.errors == []
    res = CliRunner().invoke(app, ["provenance", str(f)])
    assert res.exit_code == 0, res.output
    assert f"not checked: c2pa: the C2PA SDK reads no Content Credentials in {container} files" \
        in res.output


@pytest.mark.parametrize("fmt", FMTS)
def test_supported_videos_are_checked(plain: dict[str, bytes], fmt: str, tmp_path: Path) -> None:
    report = analyzer.analyze_media_provenance(_write(tmp_path, f"p.{fmt}", plain[fmt]), fmt)
    assert report.not_checked is None


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_signed_video_is_an_error_naming_the_file(
    signed: dict[str, bytes], keep: float, tmp_path: Path
) -> None:
    """Cut in the frames or in the manifest: never a signed headline, and what could not
    be read is named with the file."""
    data = signed["mp4"]
    f = _write(tmp_path, "cut.mp4", data[: int(len(data) * keep)])
    report = analyzer.analyze_media_provenance(f, "mp4")
    assert "signed Content Credential" not in report.verdict, report.verdict
    assert report.errors and all(str(f) in e.message for e in report.errors)
    res = CliRunner().invoke(app, ["provenance", str(f)])
    assert "Traceback" not in res.output and str(f) in res.output
