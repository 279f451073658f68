"""Issue 12, item 2: C2PA in every format the SDK reads (PDF, MP4, MOV, M4A, WAV, MP3,
FLAC, SVG, JPEG XL, HEIF/AVIF, DNG), in `assay provenance` and `assay scan`. Files are
sniffed by magic bytes; where there are no pixels only C2PA and XMP run. Fixtures are
benign (silence, an empty movie, a one-line PDF, a grey square) signed here with the
SDK's public test certificate; "invalid" ones have bytes changed after signing."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.provenance import analyzer
from assay.sniff import sniff_bytes, sniff_path
from c2pa_sign import media_samples, pattern_jpeg, sign

pytest.importorskip("c2pa")

SAMPLES = media_samples()
MIMES = sorted(SAMPLES)
KIND = {
    "pdf": "document", "svg": "document", "mp4": "video", "mov": "video", "m4a": "audio",
    "wav": "audio", "mp3": "audio", "flac": "audio", "jxl": "image",
}


@pytest.fixture(scope="module")
def c2dir(testdata: Path) -> Path:
    return testdata / "c2pa"


@pytest.fixture(scope="module")
def signed(c2dir: Path) -> dict[str, bytes]:
    return {mime: sign(c2dir, SAMPLES[mime][0], mime) for mime in MIMES}


def _tamper(fmt: str, data: bytes) -> bytes:
    """The content changed after signing, the manifest left as it was."""
    if fmt == "pdf":
        return data.replace(b"assay test page", b"assay TEST page")
    if fmt == "svg":
        return data.replace(b"#808080", b"#808081")
    marker = {
        "wav": b"data\x40\x06\x00\x00",  # the sample chunk (800 frames of silence)
        "mp4": b"mdat", "mov": b"mdat", "m4a": b"mdat", "jxl": b"jxlc",
        "mp3": b"\xff\xfb\x90\x00", "flac": b"fLaC",
    }[fmt]
    buf = bytearray(data)
    i = data.find(marker)
    assert i >= 0
    buf[i + 20] ^= 0x55
    return bytes(buf)


@pytest.mark.parametrize("mime", MIMES)
def test_sniffed_by_magic_bytes_signed_or_not(signed: dict[str, bytes], mime: str, tmp_path: Path) -> None:
    raw, fmt = SAMPLES[mime]
    for data in (raw, signed[mime]):
        f = tmp_path / "noext"  # never by extension
        f.write_bytes(data)
        assert (sniff_path(f).kind, sniff_path(f).format) == (KIND[fmt], fmt)


def test_sniff_keeps_models_that_look_like_audio_headers() -> None:
    # A safetensors header length whose bytes read like an MPEG frame sync (FF FB 12)
    # or a bare JPEG XL codestream (FF 0A) is still a safetensors file.
    for n in (0x12FBFF, 0x0AFF):
        head = struct.pack("<Q", n) + b'{"__metadata__":{}}'
        assert sniff_bytes(head, n + 8 + 100).format == "safetensors"
    assert sniff_bytes(b"\xff\xfb\x90\x00" + b"\0" * 60).format == "mp3"
    assert sniff_bytes(b"\xff\xfb\xf0\x00" + b"\0" * 60).format == "unknown"  # bad bitrate
    assert sniff_bytes(b"<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg'/>").format == "svg"
    assert sniff_bytes(b"<?xml version='1.0'?>\n<html/>").format == "unknown"


@pytest.mark.parametrize("mime", MIMES)
def test_signed_media_reads_ai_generated_in_provenance(
    signed: dict[str, bytes], mime: str, tmp_path: Path
) -> None:
    fmt = SAMPLES[mime][1]
    f = tmp_path / f"signed.{fmt}"
    f.write_bytes(signed[mime])
    res = CliRunner().invoke(app, ["provenance", str(f)])
    assert res.exit_code == 0, res.output
    assert "verdict: AI-generated: signed Content Credential (TestGen 1.0; signer not trusted)" in res.output
    assert "not an image" not in res.output
    # No pixels: no watermark search, so no note about what its absence means.
    assert "watermark" not in res.output
    res = CliRunner().invoke(app, ["provenance", "--json", str(f)])
    doc = json.loads(res.output)
    assert {e["source"] for e in doc["evidence"]} == {"c2pa"}
    assert doc["errors"] == []


@pytest.mark.parametrize("mime", MIMES)
def test_bytes_changed_after_signing_are_invalid(signed: dict[str, bytes], mime: str) -> None:
    fmt = SAMPLES[mime][1]
    report = analyzer.analyze_provenance(Path(f"x.{fmt}"), _tamper(fmt, signed[mime]), fmt)
    assert report.verdict.startswith("Content Credential present but invalid (")
    (e,) = [e for e in report.evidence if e.source == "c2pa"]
    assert e.strength == "weak"
    assert e.facts["failed_checks"]


def test_trained_algorithmic_media_pdf_streamed(c2dir: Path, tmp_path: Path) -> None:
    raw, _ = SAMPLES["application/pdf"]
    f = tmp_path / "doc.pdf"
    f.write_bytes(sign(c2dir, raw, "application/pdf", "trainedAlgorithmicMedia", agent="DocGen"))
    report = analyzer.analyze_media_provenance(f, "pdf")  # streamed from the file, not read whole
    assert report.verdict == "AI-generated: signed Content Credential (DocGen; signer not trusted)"
    (e,) = report.evidence
    assert e.facts["digital_source_types"] == ["trainedAlgorithmicMedia"]


def test_unsigned_media_has_no_evidence_and_no_error(tmp_path: Path) -> None:
    for mime in MIMES:
        raw, fmt = SAMPLES[mime]
        f = tmp_path / f"plain.{fmt}"
        f.write_bytes(raw)
        report = analyzer.analyze_media_provenance(f, fmt)
        assert (report.verdict, report.evidence, report.errors) == (
            "no provenance evidence found", [], []
        ), mime


def test_xmp_digital_source_type_in_a_pdf(tmp_path: Path) -> None:
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    raw, _ = SAMPLES["application/pdf"]
    f = tmp_path / "x.pdf"
    f.write_bytes(raw.replace(b"%PDF-1.4\n", b"%PDF-1.4\n%" + xmp + b"\n", 1))
    report = analyzer.analyze_media_provenance(f, "pdf")
    assert report.verdict.startswith("possibly AI-generated (weak): IPTC digital source type") or \
        report.verdict.startswith("AI-generated: IPTC digital source type"), report.verdict
    assert [e.source for e in report.evidence] == ["iptc"]


_AI_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
_JPEG_WITH_AI_XMP = (b"\xff\xd8\xff\xe1" + struct.pack(">H", 2 + 29 + len(_AI_XMP))
                     + b"http://ns.adobe.com/xap/1.0/\x00" + _AI_XMP + b"\xff\xd9")  # fmt: skip


def test_xmp_of_an_embedded_image_is_not_the_documents(tmp_path: Path) -> None:
    # A PDF with one figure whose JPEG carries XMP trainedAlgorithmicMedia read "AI-generated";
    # exiftool reports no DigitalSourceType for the PDF (the packet is the image's).
    raw, _ = SAMPLES["application/pdf"]
    figure = b"%% an image XObject\n4 0 obj\n<< /Subtype /Image /Filter /DCTDecode >>\nstream\n"
    f = tmp_path / "x.pdf"
    f.write_bytes(raw.replace(b"%PDF-1.4\n", b"%PDF-1.4\n" + figure + _JPEG_WITH_AI_XMP + b"\nendstream\n", 1))
    report = analyzer.analyze_media_provenance(f, "pdf")
    (e,) = report.evidence
    assert (e.source, e.claim, e.facts["where"]) == ("iptc", "ai-edited", "XMP component")
    assert "An image embedded in it (its JPEG XMP)" in e.summary
    assert report.verdict.startswith("AI-edited: IPTC digital source type trainedAlgorithmicMedia of a")


def test_cover_art_xmp_makes_no_claim_about_audio(tmp_path: Path) -> None:
    # ID3v2 with an APIC frame holding a JPEG: the artwork's XMP, not the sound's.
    apic = b"\x00image/jpeg\x00\x03\x00" + _JPEG_WITH_AI_XMP
    frame = b"APIC" + struct.pack(">I", len(apic)) + b"\x00\x00" + apic
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    f = tmp_path / "x.mp3"
    f.write_bytes(b"ID3\x03\x00\x00" + syncsafe + frame + b"\xff\xfb\x90\x00" + b"\x00" * 413)
    report = analyzer.analyze_media_provenance(f, "mp3")
    assert all(e.claim == "unknown" for e in report.evidence), report.evidence
    assert [e.source for e in report.evidence] == ["embedded-image"]
    assert report.verdict.startswith("no provenance evidence found")


def test_naked_jpeg_xl_codestream_has_no_credential_to_check(tmp_path: Path) -> None:
    # The SDK refuses a bare JPEG XL codestream ("cannot contain C2PA manifests"): that is
    # no credential, not a check that could not run (exiftool's JXL.jxl read "could not
    # check: c2pa").
    f = tmp_path / "naked.jxl"
    f.write_bytes(b"\xff\x0a\x08\x04" + bytes(60))
    report = analyzer.analyze_media_provenance(f, "jxl")
    assert (report.verdict, report.errors) == ("no provenance evidence found", [])


def test_scan_reads_c2pa_in_media_and_hashes_the_files(
    signed: dict[str, bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    for mime in MIMES:
        fmt = SAMPLES[mime][1]
        (folder / f"signed.{fmt}").write_bytes(signed[mime])
    (folder / "bad.wav").write_bytes(_tamper("wav", signed["audio/wav"]))
    # In-process: this test process has used the C2PA SDK (signing), and its native
    # threads do not survive a fork into scan workers.
    res = CliRunner().invoke(app, ["scan", "--json", "--no-banks", "--workers", "1", str(folder)])
    assert res.exit_code == 0, res.output
    records = {Path(d["path"]).name: d for d in map(json.loads, res.output.splitlines()) if "path" in d}
    for mime in MIMES:
        fmt = SAMPLES[mime][1]
        rec = records[f"signed.{fmt}"]
        assert rec["kind"] == KIND[fmt] and rec["format"] == fmt
        assert rec["provenance"]["verdict"].startswith("AI-generated: signed Content Credential"), fmt
        assert {"md5", "sha256"} <= {s["type"] for s in rec["signals"]}
        if KIND[fmt] != "image":
            assert rec["errors"] == [], fmt
    assert records["bad.wav"]["provenance"]["verdict"].startswith("Content Credential present but invalid")
    # The summary counts images apart from the other files with AI evidence.
    summary = json.loads(res.output.splitlines()[-1])
    # (a signed PDF's manifest store is also an attachment of the PDF: a member record of its own)
    member = records["Content_Credentials"]["path"]
    assert "signed.pdf!/attachment-obj" in member and member.endswith("/Content_Credentials")
    ai = [r for r in records.values() if (r.get("provenance") or {}).get("verdict", "").startswith("AI-")]
    assert summary["files_with_ai_evidence"] == len(ai) > 0
    assert summary["images_with_ai_evidence"] == sum(r["kind"] == "image" for r in ai) < len(ai)
    text = CliRunner().invoke(app, ["scan", "--no-banks", "--workers", "1", str(folder), "-o",
                                    str(tmp_path / "r.jsonl")])
    assert text.exit_code == 0, text.output
    kinds = Counter(r["kind"] for r in ai)
    line = next(x for x in text.output.splitlines() if "AI-generation evidence" in x)
    for kind, n in kinds.items():
        assert f"{n} {kind}" in line, (line, kind)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "DNG"])
def test_signed_heif_avif_dng_images(c2dir: Path, fmt: str, tmp_path: Path) -> None:
    import io

    from PIL import Image, TiffImagePlugin

    im = Image.open(io.BytesIO(pattern_jpeg(64)))
    buf = io.BytesIO()
    if fmt == "DNG":
        ifd = TiffImagePlugin.ImageFileDirectory_v2()
        ifd[50706] = b"\x01\x04\x00\x00"  # DNGVersion 1.4
        ifd.tagtype[50706] = 1
        im.save(buf, "TIFF", tiffinfo=ifd)
        mime = "image/dng"
    else:
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
        if fmt == "AVIF" and hasattr(pillow_heif, "register_avif_opener"):
            pillow_heif.register_avif_opener()
        try:
            im.save(buf, fmt)
        except (KeyError, OSError, ValueError) as exc:
            pytest.skip(f"no {fmt} encoder here: {exc}")
        mime = f"image/{fmt.lower()}"
    f = tmp_path / "signed"
    f.write_bytes(sign(c2dir, buf.getvalue(), mime, agent="ImgGen"))
    assert sniff_path(f).kind == "image"
    res = CliRunner().invoke(app, ["provenance", str(f)])
    assert res.exit_code == 0, res.output
    assert "verdict: AI-generated: signed Content Credential (ImgGen; signer not trusted)" in res.output
