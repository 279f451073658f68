"""The cost of looking for inline images in a text-only PDF: pdf_image_members on a
document of many pages of text (one embedded TrueType font, Flate content streams),
written with a classic cross-reference table and with object streams, with the font
file and without it (a base-14 font, as many generated reports), timed with
assay's inline pre-check (containers/pdfinline.py ``_inline_hints``) and without it.

    PYTHONPATH=src .venv/bin/python bench/bench_pdf_inline.py [pages] [repeats]
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from assay.config import Limits  # noqa: E402
from assay.containers import pdfimages  # noqa: E402
from pdfgen import build  # noqa: E402

_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
_WORDS = ("the", "of", "and", "evidence", "record", "court", "exhibit", "page", "witness", "said", "BIG", "IBM")


def text_pdf(pages: int, objstm: bool, embed: bool = True) -> bytes:
    rnd = random.Random(7)
    font = _FONT.read_bytes() if _FONT.exists() else bytes(rnd.getrandbits(8) for _ in range(300_000))
    if not embed:
        font = b""
    first = 4  # objects 1-3: catalog, pages, font; then per page: page, contents
    kids = b" ".join(b"%d 0 R" % (first + 2 * i) for i in range(pages))
    objs: list[tuple[bytes, bytes | None]] = [
        (b"<< /Type /Catalog /Pages 2 0 R >>", None),
        (b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages, None),
        (b"<< /Type /Font /Subtype /TrueType /BaseFont /DejaVuSans /FontDescriptor << /Type /FontDescriptor "
         b"/FontName /DejaVuSans /FontFile2 %d 0 R >> >>" % (first + 2 * pages), None)]
    for i in range(pages):
        lines = [b"BT /F1 10 Tf 72 %d Td (%s) Tj ET" % (760 - 14 * n, " ".join(rnd.choice(_WORDS) for _ in range(12)).encode())
                 for n in range(50)]
        objs.append((b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                     b"/Contents %d 0 R >>" % (first + 2 * i + 1), None))
        objs.append((b"<< /Filter /FlateDecode >>", zlib.compress(b"\n".join(lines))))
    objs.append((b"<< /Length1 %d /Filter /FlateDecode >>" % len(font), zlib.compress(font)))
    return build(objs, objstm)


def scan_pdf(pages: int) -> bytes:
    """A scanned document: one 1600x1200 Flate picture (a generated pattern) a page."""
    import numpy as np

    from pdfgen import image_dict

    rng = np.random.default_rng(1)
    kids = b" ".join(b"%d 0 R" % (3 + 3 * i) for i in range(pages))
    objs: list[tuple[bytes, bytes | None]] = [(b"<< /Type /Catalog /Pages 2 0 R >>", None),
                                              (b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages, None)]
    for i in range(pages):
        grid = (np.add.outer(np.arange(1200), np.arange(1600)) // (5 + i) % 256).astype(np.uint8)
        img = np.repeat(grid[:, :, None], 3, axis=2) ^ rng.integers(0, 8, (1200, 1600, 3), dtype=np.uint8)
        objs.append((b"<< /Type /Page /Parent 2 0 R /Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
                     % (4 + 3 * i, 5 + 3 * i), None))
        objs.append((image_dict((1600, 1200), b"/DeviceRGB", 8, b"/FlateDecode"), zlib.compress(img.tobytes(), 6)))
        objs.append((b"<< /Filter /FlateDecode >>", zlib.compress(b"q 612 0 0 792 0 0 cm /Im0 Do Q")))
    return build(objs)


def main() -> None:
    pages = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    # patched where the walk looks it up (pdfimages imports it from pdfinline by name)
    real = pdfimages._inline_hints
    with tempfile.TemporaryDirectory() as tmp:
        for objstm, embed, encrypt in ((False, True, False), (True, True, False), (False, False, False),
                                       (True, False, False), (False, False, True)):
            path = Path(tmp) / f"text-{objstm}-{embed}-{encrypt}.pdf"
            path.write_bytes(text_pdf(pages, objstm, embed))
            if encrypt:  # an empty user password (permissions only): no byte search can see in
                import io

                from pypdf import PdfReader, PdfWriter

                writer = PdfWriter(clone_from=PdfReader(io.BytesIO(path.read_bytes())))
                writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
                writer.write(path)
            times: dict[str, list[float]] = {"without": [], "with": []}
            for _ in range(repeats):
                for label in ("without", "with"):  # interleaved: the machine is shared
                    pdfimages._inline_hints = real if label == "with" else (lambda *_a: ([], []))  # type: ignore[assignment]
                    t = time.process_time()
                    members = list(pdfimages.pdf_image_members(path, Limits(), set()))
                    times[label].append(time.process_time() - t)
                    assert members == []
            pdfimages._inline_hints = real
            t = time.process_time()
            hints = real(path)[0]
            alone = time.process_time() - t
            a, b = statistics.median(times["without"]), statistics.median(times["with"])
            kind = (("object streams" if objstm else "xref table") + (", DejaVuSans embedded" if embed else ", no font file")
                    + (", encrypted (AES-128, empty user password)" if encrypt else ""))
            print(f"{pages} pages, {kind}, {path.stat().st_size / 1e6:.2f} MB: without pre-check {a * 1e3:.1f} ms, "
                  f"with {b * 1e3:.1f} ms (pre-check alone {alone * 1e3:.1f} ms, hints {hints}); "
                  f"CPU medians of {repeats}")
        path = Path(tmp) / "scan.pdf"
        path.write_bytes(scan_pdf(20))
        t = time.process_time()
        real(path)
        alone = time.process_time() - t
        t = time.process_time()
        got = list(pdfimages.pdf_image_members(path, Limits(), set()))
        print(f"20 pages of 1600x1200 Flate pictures, {path.stat().st_size / 1e6:.1f} MB: pre-check {alone * 1e3:.1f} ms, "
              f"all of pdf_image_members {(time.process_time() - t) * 1e3:.0f} ms ({len(got)} pictures)")


if __name__ == "__main__":
    main()
