"""Small PDF writers for tests: the structures real writers produce, written out by hand
(classic cross-reference table, or PDF 1.5 object stream and cross-reference stream)."""

from __future__ import annotations

import io
import struct
import zlib


def _obj(num: int, body: bytes, stream: bytes | None) -> bytes:
    if stream is None:
        return b"%d 0 obj\n" % num + body + b"\nendobj\n"
    return b"%d 0 obj\n" % num + body + b"\nstream\n" + stream + b"\nendstream\nendobj\n"


def build(objs: list[tuple[bytes, bytes | None]], objstm: bool = False) -> bytes:
    """A PDF of ``objs`` (dictionary, stream data or None), numbered from 1; object 1 is
    the catalog. A stream's dictionary gets its /Length here. ``objstm``: every object
    that is not a stream inside one compressed object stream, found through a
    cross-reference stream (what Word, LibreOffice and pdfTeX write for PDF 1.5+)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    fixed = [((body[:-2] + b" /Length %d >>" % len(stream)) if stream is not None else body, stream)
             for body, stream in objs]
    if not objstm:
        offsets = []
        for i, (body, stream) in enumerate(fixed, 1):
            offsets.append(len(out))
            out += _obj(i, body, stream)
        xref, n = len(out), len(fixed) + 1
        out += b"xref\n0 %d\n0000000000 65535 f \n" % n + b"".join(b"%010d 00000 n \n" % o for o in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (n, xref)
        return bytes(out)
    stm_num, xref_num = len(fixed) + 1, len(fixed) + 2
    inner = [(i, body) for i, (body, stream) in enumerate(fixed, 1) if stream is None]
    head = data = b""
    entries: dict[int, tuple[int, int, int]] = {}
    for idx, (i, body) in enumerate(inner):
        head += b"%d %d " % (i, len(data))
        data += body + b"\n"
        entries[i] = (2, stm_num, idx)
    for i, (body, stream) in enumerate(fixed, 1):
        if stream is not None:
            entries[i] = (1, len(out), 0)
            out += _obj(i, body, stream)
    packed = zlib.compress(head + data)
    entries[stm_num] = (1, len(out), 0)
    out += _obj(stm_num, b"<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>"
                % (len(inner), len(head), len(packed)), packed)
    entries[xref_num] = (1, len(out), 0)
    rows = b"\x00\x00\x00\x00\x00\xff\xff" + b"".join(struct.pack(">BIH", *entries[i]) for i in range(1, xref_num + 1))
    packed = zlib.compress(rows)
    at = len(out)
    out += _obj(xref_num, b"<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /Length %d >>"
                % (xref_num + 1, len(packed)), packed)
    return bytes(out + b"startxref\n%d\n%%%%EOF\n" % at)


def image_dict(size: tuple[int, int], space: bytes, bpc: int, filters: bytes | None, extra: bytes = b"") -> bytes:
    return (b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent %d %s %s >>"
            % (*size, space, bpc, (b"/Filter " + filters) if filters else b"", extra))


def one_page(image: bytes, data: bytes, extra: tuple[tuple[bytes, bytes | None], ...] = (), objstm: bool = False,
             name: bytes = b"Im1") -> bytes:
    """A page that shows one image (object 4) as ``/name``; ``extra``: objects 5, 6, ...
    (a colour profile, a soft mask) that the image names."""
    objs = [(b"<< /Type /Catalog /Pages 2 0 R >>", None),
            (b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", None),
            (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources << /XObject << /" + name
             + b" 4 0 R >> >> /Contents %d 0 R >>" % (5 + len(extra)), None),
            (image, data), *extra,
            (b"<< >>", b"q 200 0 0 200 0 0 cm /" + name + b" Do Q")]
    return build(objs, objstm)


def png_rows(im: object) -> bytes:
    """The image data (a zlib stream of rows, each with its PNG filter) that Pillow writes
    for ``im``: what img2pdf puts in a PDF, with /Predictor 15, for a PNG it is given."""
    b = io.BytesIO()
    im.save(b, "PNG")  # type: ignore[attr-defined]
    data, pos, idat = b.getvalue(), 8, b""
    while pos < len(data):
        n = struct.unpack_from(">I", data, pos)[0]
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return idat


def packbits(data: bytes) -> bytes:
    """RunLengthDecode data: literal runs of up to 128 bytes, then the end marker."""
    out = bytearray()
    for i in range(0, len(data), 128):
        piece = data[i:i + 128]
        out += bytes([len(piece) - 1]) + piece
    return bytes(out + b"\x80")
