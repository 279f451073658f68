"""Works from their sources: text, Markdown, HTML, EPUB spine in reading order, PDF text
layers, JSON Lines; bad sources become error records and the rest is indexed."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from assay.text.index import TextIndex
from assay.text.ingest import SourceError, Work, read_sources
from assay.text.match import check

PARA = ("The harbour master kept a lantern burning in the window of the tower every night "
        "of the year, whether or not a ship was expected on the evening tide.")


def _works(*paths: Path) -> tuple[list[Work], list[SourceError]]:
    items = list(read_sources(list(paths)))
    return [i for i in items if isinstance(i, Work)], [i for i in items if isinstance(i, SourceError)]


def make_pdf(path: Path, lines: list[str], title: str = "A Test Document") -> Path:
    """A one-page PDF with a text layer (Helvetica, one line per string)."""
    stream = "BT /F1 11 Tf 14 TL 72 760 Td " + " ".join(
        f"({ln.replace(chr(92), chr(92) * 2).replace('(', chr(92) + '(').replace(')', chr(92) + ')')}) Tj T*"
        for ln in lines) + " ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        f"<< /Title ({title}) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def make_epub(path: Path, chapters: list[tuple[str, str]], title: str = "Spine Order") -> Path:
    """An EPUB whose manifest lists chapters in reverse, its spine in reading order."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" '
                   'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                   '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                   '</rootfiles></container>')
        items = "".join(f'<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>'
                        for i in reversed(range(len(chapters))))
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
        z.writestr("OEBPS/content.opf", '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" '
                   'version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
                   f'<dc:title>{title}</dc:title></metadata><manifest>{items}</manifest>'
                   f'<spine>{spine}</spine></package>')
        for i, (head, body) in enumerate(chapters):
            z.writestr(f"OEBPS/text/ch{i}.xhtml", '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">'
                       f'<head><title>{head}</title><style>p {{color: red}}</style></head>'
                       f'<body><h1>{head}</h1><p>{body}</p></body></html>')
    return path


def test_text_markdown_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "tower.txt").write_bytes(b"\xef\xbb\xbf" + PARA.encode())
    (tmp_path / "notes.md").write_text("# Notes\n\n" + PARA)
    line = json.dumps({"id": 7, "title": "Seven", "text": PARA})
    (tmp_path / "w.jsonl").write_text(line + "\n\n" + json.dumps({"id": "", "text": "x"}) + "\n[1]\n")
    works, errors = _works(tmp_path)
    by = {w.id: w for w in works}
    assert set(by) == {"tower", "notes", "7"}
    assert by["tower"].text == PARA and by["tower"].format == "text"
    assert by["tower"].sha256 == hashlib.sha256((tmp_path / "tower.txt").read_bytes()).hexdigest()
    assert by["notes"].format == "markdown"
    assert by["7"].title == "Seven" and by["7"].sha256 == hashlib.sha256(line.encode()).hexdigest()
    assert sorted(e.source.rsplit(":", 1)[1] for e in errors) == ["3", "4"]


def test_html_visible_text_only(tmp_path: Path) -> None:
    html = ("<html><head><title>The Tower</title><script>var s = 'the harbour master kept';</script>"
            "<style>p{}</style></head><body><p>The harbour master kept a lantern burning in the "
            "window of the tower every night of the year,</p><p>whether or not a ship was expected "
            "on the evening&nbsp;tide.</p><!-- comment --></body></html>")
    (tmp_path / "t.html").write_text(html)
    (work,), errors = _works(tmp_path / "t.html")
    assert not errors and work.title == "The Tower" and work.format == "html"
    assert "var s" not in work.text and "comment" not in work.text and "p{}" not in work.text
    assert " ".join(work.text.split()) == " ".join(PARA.replace("evening tide", "evening\u00a0tide").split())


def test_epub_spine_in_reading_order(tmp_path: Path) -> None:
    book = make_epub(tmp_path / "b.epub", [("One", "First chapter: " + PARA), ("Two", "Second chapter text."),
                                             ("Three", "Third and last.")])
    (work,), errors = _works(book)
    assert not errors and work.title == "Spine Order" and work.format == "epub"
    assert work.text.index("First chapter") < work.text.index("Second chapter") < work.text.index("Third and")
    assert "color: red" not in work.text


def test_pdf_text_layer(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "doc.pdf", ["The harbour master kept a lantern burning in the window",
                                          "of the tower every night of the year."])
    (work,), errors = _works(pdf)
    assert not errors, errors
    assert work.format == "pdf" and work.title == "A Test Document"
    assert "lantern burning in the window" in work.text


def test_bad_sources_are_error_records_and_the_rest_is_indexed(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text(PARA)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf body")
    (tmp_path / "broken.epub").write_bytes(b"PK\x03\x04 not a zip")
    (tmp_path / "bomb.epub").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "entities.epub", "w") as z:
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    (tmp_path / "weird.doc").write_text("x")
    works, errors = _works(tmp_path, tmp_path / "weird.doc", tmp_path / "missing.txt")
    assert [w.id for w in works] == ["good"]
    reasons = {Path(e.source).name: e.error for e in errors}
    assert reasons["latin1.txt"].startswith("not UTF-8 text")
    assert reasons["empty.txt"] == "no text in this source"
    assert "unreadable PDF" in reasons["broken.pdf"] or "no text" in reasons["broken.pdf"]
    assert "not an EPUB" in reasons["broken.epub"] and "not an EPUB" in reasons["bomb.epub"]
    assert "entity declarations are not allowed" in reasons["entities.epub"]
    assert "unsupported source type" in reasons["weird.doc"]
    assert reasons["missing.txt"] == "no such file"
    ix = TextIndex.create(tmp_path / "ix")
    res = ix.add(read_sources([tmp_path]))
    assert [w.id for w in res.added] == ["good"] and len(res.errors) == 6
    hit = check(TextIndex.open(tmp_path / "ix"), "Quote: " + PARA.upper())
    assert hit.spans and hit.spans[0].sources[0].work == "good"


def test_offsets_in_extracted_text_of_every_format(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text(f"<html><body><div>Intro.</div><p>{PARA}</p></body></html>")
    make_epub(tmp_path / "b.epub", [("Chapter", PARA)])
    make_pdf(tmp_path / "c.pdf", [PARA[:80], PARA[80:]])
    items = list(read_sources([tmp_path]))
    ix = TextIndex.create(tmp_path / "ix")
    ix.add(items)
    texts = {w.id: w.text for w in items if isinstance(w, Work)}
    res = check(TextIndex.open(tmp_path / "ix"), "Model output: " + PARA + " The end.", near=False)
    seen = set()
    for sp in res.spans:
        for s in sp.sources:
            seen.add(s.work)
            cited = " ".join(texts[s.work][s.start:s.end].split()).lower()
            assert cited and cited in " ".join(PARA.split()).lower()
    assert seen == {"a", "b", "c"}


def test_utf16_and_utf32_with_a_byte_order_mark_are_read_as_their_text(tmp_path: Path) -> None:
    """Windows tools save text as UTF-16 with a byte-order mark (PowerShell's `>`, Notepad's
    "Unicode"): such a model output or work was refused as "not UTF-8 text (byte 0)". Read
    by its mark, it gives the same text as its UTF-8 copy (so the same passages at the same
    code-point offsets); damaged, it is an error naming the file's byte."""
    from assay.text.match import read_checked

    text = "Output:\n" + PARA
    encodings = {"utf8": text.encode("utf-8"), "utf8bom": b"\xef\xbb\xbf" + text.encode("utf-8"),
                 "utf16le": text.encode("utf-16"), "utf16be": b"\xfe\xff" + text.encode("utf-16-be"),
                 "utf32": text.encode("utf-32"), "utf32be": b"\x00\x00\xfe\xff" + text.encode("utf-32-be")}
    for name, data in encodings.items():
        (tmp_path / f"{name}.txt").write_bytes(data)
        assert read_checked(tmp_path / f"{name}.txt") == text, name
    works, errors = _works(*(tmp_path / f"{n}.txt" for n in encodings))
    assert not errors and {w.text for w in works} == {text}
    (tmp_path / "cut16.txt").write_bytes(text.encode("utf-16")[:-1])
    (tmp_path / "badbom8.txt").write_bytes(b"\xef\xbb\xbfab\xff")
    _, errors = _works(tmp_path / "cut16.txt", tmp_path / "badbom8.txt")
    reasons = {Path(e.source).name: e.error for e in errors}
    # the truncated code unit's first byte
    assert reasons["cut16.txt"] == f"not UTF-16 text (byte {len(text.encode('utf-16')) - 2})"
    assert reasons["badbom8.txt"] == "not UTF-8 text (byte 5)"  # the file's byte, the mark counted


def test_utf16_without_a_mark_is_told_by_its_nul_bytes(tmp_path: Path) -> None:
    """UTF-16 written without a byte-order mark (Python's "utf-16-le"): read as UTF-8 it
    was text with a NUL between letters, where no passage can be found (a silent miss).
    Its NUL bytes tell it; bytes that do not decode to plain text stay what UTF-8 says."""
    from assay.text.match import read_checked

    text = "Output:\n" + PARA + "\n\u00e9t\u00e9, \u0161koda, \u00df"
    for codec in ("utf-16-le", "utf-16-be"):
        (tmp_path / f"{codec}.txt").write_bytes(text.encode(codec))
        assert read_checked(tmp_path / f"{codec}.txt") == text, codec
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 8)  # NULs, but no text
    (tmp_path / "nul8.txt").write_bytes(PARA.encode() + b"\x00" + PARA.encode())  # UTF-8 with one NUL
    assert read_checked(tmp_path / "nul8.txt") == PARA + "\x00" + PARA  # as before
    _, errors = _works(tmp_path / "bin.txt")
    assert [e.error for e in errors] == ["not UTF-8 text (byte 128)"]
