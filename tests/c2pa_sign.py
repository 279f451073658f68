"""Benign C2PA fixtures signed in the tests with the SDK's public TEST certificate
(../shared/testdata/c2pa/es256_certs.pem + es256_private.key), offline: generated
patterns, silence, a one-line PDF, a grey SVG square. Never real media."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@contextlib.contextmanager
def counting_listener() -> Iterator[tuple[int, list[int]]]:
    """A TCP listener on 127.0.0.1: yields (port, hits), one hit per connection made to it,
    so a test can prove that nothing fetched a remote manifest (and a control that
    something did)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits: list[int] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], hits
    finally:
        stop.set()
        t.join(2)
        srv.close()


def pattern_jpeg(size: int = 64, fmt: str = "JPEG") -> bytes:
    arr = (np.indices((size, size)).sum(0) * 3 % 256).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).convert("RGB").save(buf, fmt)
    return buf.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def silence_wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    return buf.getvalue()


def silence_mp3() -> bytes:
    # MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz) with all-zero side info: silence.
    return (b"\xff\xfb\x90\x00" + b"\0" * 413) * 8


def silence_flac() -> bytes:
    # fLaC + a last STREAMINFO block (8 kHz mono 16-bit), no audio frames.
    info = struct.pack(">HH", 4096, 4096) + b"\0" * 6 + bytes([0x01, 0xF4, 0x00, 0x70])
    info += b"\0" * 4 + b"\0" * 16
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info


def empty_bmff(brand: bytes, compatible: list[bytes]) -> bytes:
    """ftyp + a movie header + an empty mdat: an MP4/MOV/M4A without samples."""
    ftyp = _box(b"ftyp", brand + b"\0\0\0\0" + b"".join(compatible))
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        b"\0" * 12 + struct.pack(">II", 1000, 0) + struct.pack(">IH", 0x10000, 0x100)
        + b"\0" * 10 + matrix + b"\0" * 24 + struct.pack(">I", 2),
    )
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat", b"\0" * 64)


def one_line_pdf(text: str = "assay test page") -> bytes:
    stream = b"BT /F1 12 Tf 10 20 Td (" + text.encode("ascii") + b") Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 50] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def grey_svg() -> bytes:
    return (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
        b'<rect width="8" height="8" fill="#808080"/></svg>\n'
    )


def tiny_jxl() -> bytes:
    # JPEG XL container: signature box, ftyp, a codestream box (its bytes are never decoded).
    sig = struct.pack(">I", 12) + b"JXL \r\n\x87\n"
    return sig + _box(b"ftyp", b"jxl \0\0\0\0jxl ") + _box(b"jxlc", b"\xff\x0a" + b"\0" * 16)


# media type -> (benign unsigned content, sniffed format)
def media_samples() -> dict[str, tuple[bytes, str]]:
    return {
        "audio/wav": (silence_wav(), "wav"),
        "audio/mpeg": (silence_mp3(), "mp3"),
        "audio/flac": (silence_flac(), "flac"),
        "video/mp4": (empty_bmff(b"isom", [b"isom", b"mp41"]), "mp4"),
        "video/quicktime": (empty_bmff(b"qt  ", [b"qt  "]), "mov"),
        "audio/mp4": (empty_bmff(b"M4A ", [b"M4A ", b"mp42", b"isom"]), "m4a"),
        "application/pdf": (one_line_pdf(), "pdf"),
        "image/svg+xml": (grey_svg(), "svg"),
        "image/jxl": (tiny_jxl(), "jxl"),
    }


def sign(
    c2dir: Path,
    data: bytes,
    mime: str,
    source_type: str | None = "trainedAlgorithmicMedia",
    *,
    agent: str = "TestGen 1.0",
    ingredient: bytes | None = None,
    ingredient_mime: str = "image/jpeg",
    extra_assertions: list[dict[str, Any]] | None = None,
    more_actions: list[dict[str, Any]] | None = None,
) -> bytes:
    """``data`` signed with the test certificate: a c2pa.created action declaring
    ``source_type`` (then ``more_actions``), optionally an ingredient (itself possibly
    signed)."""
    import c2pa

    action: dict[str, Any] = {"action": "c2pa.created", "softwareAgent": agent}
    if source_type:
        action["digitalSourceType"] = IPTC + source_type
    actions = [action, *(more_actions or [])]
    manifest = {
        "claim_generator_info": [{"name": "assay-tests", "version": "1"}],
        "format": mime,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}]
        + (extra_assertions or []),
    }
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256,
        (c2dir / "es256_certs.pem").read_bytes(),
        (c2dir / "es256_private.key").read_bytes(),
        None,  # no timestamp authority: signing stays offline
    )
    builder = c2pa.Builder.from_json(manifest)
    if ingredient is not None:
        builder.add_ingredient(
            {"title": "ingredient", "relationship": "componentOf"},
            ingredient_mime,
            io.BytesIO(ingredient),
        )
    out = io.BytesIO()
    builder.sign(c2pa.Signer.from_info(info), mime, io.BytesIO(data), out)
    return out.getvalue()
