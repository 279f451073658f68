"""The C2PA SDK is skipped only where it can have nothing to say (#19): every shared
fixture, every signed image format and damaged files give the same provenance report with
the byte sniffing as without it, and the sniffing does skip plain images."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from assay.provenance import analyzer
from assay.provenance.analyzer import analyze_provenance, may_carry_c2pa
from assay.provenance.context import ImageContext
from assay.sniff import sniff_bytes
from c2pa_sign import pattern_jpeg, sign

pytest.importorskip("c2pa")

REMOTE_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dcterms="http://purl.org/dc/terms/" '
    'dcterms:provenance="https://example.invalid/m.c2pa"/></rdf:RDF></x:xmpmeta>'
)


def _png(xmp: str | None = None, compress: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp, zip=compress)
    buf = io.BytesIO()
    Image.open(io.BytesIO(pattern_jpeg(64))).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _webp() -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(pattern_jpeg(64))).save(buf, "WEBP")
    return buf.getvalue()


def _files(testdata: Path) -> dict[str, bytes]:
    c2dir = testdata / "c2pa"
    files = {
        str(p.relative_to(testdata)): p.read_bytes()
        for sub in ("c2pa", "genmeta", "pdq")
        for p in sorted((testdata / sub).rglob("*"))
        if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
    }
    jpeg, png, webp = pattern_jpeg(64), _png(), _webp()
    files |= {
        "signed.jpg": sign(c2dir, jpeg, "image/jpeg"),
        "signed.png": sign(c2dir, png, "image/png"),
        "signed.webp": sign(c2dir, webp, "image/webp"),
        "remote-xmp.jpg": _jpeg_with_xmp(REMOTE_XMP),
        "remote-xmp.png": _png(REMOTE_XMP),
        "remote-xmp-deflated.png": _png(REMOTE_XMP, compress=True),
        "plain.jpg": jpeg,
        "plain.png": png,
        "plain.webp": webp,
        "truncated.png": png[: len(png) * 7 // 10],
        "truncated-header.jpg": jpeg[:300],
        "garbage-after-soi.jpg": jpeg[:2] + b"\x00" * 500,
        "truncated-signed.jpg": sign(c2dir, jpeg, "image/jpeg")[:2000],
    }
    return files


def _jpeg_with_xmp(xmp: str) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(pattern_jpeg(64))).save(buf, "JPEG", xmp=xmp.encode())
    return buf.getvalue()


def test_the_gate_loses_nothing(testdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(testdata)
    assert len(files) > 90
    skipped: list[str] = []
    for name, data in files.items():
        fmt = sniff_bytes(data[:64], len(data)).format
        if fmt not in analyzer.IMAGE_FORMATS:
            fmt = Path(name).suffix.lstrip(".").replace("jpg", "jpeg")
        ctx = ImageContext(Path(name), data, fmt)
        if not may_carry_c2pa(ctx):
            skipped.append(name)
        gated = analyze_provenance(Path(name), data, fmt)
        with monkeypatch.context() as m:
            m.setattr(analyzer, "may_carry_c2pa", lambda _ctx: True)
            always = analyze_provenance(Path(name), data, fmt)
        assert gated.model_dump() == always.model_dump(), name
    # the sniffing skips the SDK where nothing marks a credential, and only there
    assert {"plain.jpg", "plain.png", "plain.webp"} <= set(skipped)
    for name in ("signed.jpg", "signed.png", "signed.webp", "remote-xmp.jpg", "remote-xmp.png",
                 "remote-xmp-deflated.png", "truncated.png", "truncated-header.jpg",
                 "garbage-after-soi.jpg", "c2pa/C.jpg", "c2pa/cloud.jpg", "c2pa/firefly-ocsp.jpg"):
        assert name not in skipped, name
    assert len(skipped) > 60  # most fixtures carry no credential


def test_credentials_and_remote_references_still_found(testdata: Path) -> None:
    files = _files(testdata)
    for name in ("signed.jpg", "signed.png", "signed.webp", "c2pa/C.jpg", "c2pa/CA.jpg"):
        report = analyze_provenance(Path(name), files[name], Path(name).suffix.lstrip(".").replace("jpg", "jpeg"))
        assert any(e.source == "c2pa" for e in report.evidence), name
    for name in ("remote-xmp.jpg", "remote-xmp.png", "c2pa/cloud.jpg"):
        report = analyze_provenance(Path(name), files[name], Path(name).suffix.lstrip(".").replace("jpg", "jpeg"))
        assert any(e.facts.get("remote_manifest") for e in report.evidence), name
    # a damaged file still gets the SDK's own word on it
    report = analyze_provenance(Path("t.png"), files["truncated.png"], "png")
    assert any(e.source == "c2pa" and "C2PA data unreadable" in e.message for e in report.errors)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
def test_contains_finds_what_python_finds(kind: str) -> None:
    """The gate's byte search (libc memmem where there is one) answers as ``in`` does: at
    the start, the end, across every offset, for absent and empty needles."""
    import random

    from assay import sniff

    rnd = random.Random(19)
    for _ in range(300):
        data = bytes(rnd.choice(b"jumbprovenance\x00\xff") for _ in range(rnd.randrange(0, 200)))
        for needle in (b"jumb", b"provenance", b"j", b"", data[3:9], data[-4:], data):
            wrapped = {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data)}[kind]
            assert sniff.contains(wrapped, needle) == (needle in data), (data, needle)
    if kind == "bytes" and sniff._libc_memmem() is not None:  # the C search is the one used here
        big = bytes(800_000) + b"jumb"
        assert sniff.contains(big, b"jumb") and not sniff.contains(big[:-1], b"jumb")
