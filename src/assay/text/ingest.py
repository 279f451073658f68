"""Works read from their sources: UTF-8 text and Markdown, HTML, EPUB (the XHTML of its
spine in reading order), PDF (its text layer) and JSON Lines of ``{id, title?, text}``.

Each work keeps the text as extracted: the offsets `assay text check` reports are code
points of that text. For .txt/.md it is the file itself (a reader opening the file
finds the passage at that offset); for HTML, EPUB and PDF it is the extracted text,
whose extraction is stated in the work's ``format``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..errors import InputError

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".epub", ".pdf", ".jsonl", ".ndjson"}
MAX_SOURCE_BYTES = 4 * 1024**3
# All the members an EPUB's spine makes us inflate (a spine may name one small, highly
# compressed chapter any number of times): beyond this it is a zip bomb, not a book.
MAX_EPUB_BYTES = 1024**3


@dataclass
class Work:
    id: str
    title: str
    text: str
    sha256: str  # of the source file (for JSON Lines: of the line)
    source: str
    format: str


@dataclass
class SourceError:
    source: str
    error: str


def read_sources(paths: list[Path]) -> Iterator[Work | SourceError]:
    """Works from files and folders (walked for known suffixes, sorted); a bad source
    yields a SourceError naming it and the reason, and the rest go on."""
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not files:
                yield SourceError(str(path), "no .txt/.md/.html/.epub/.pdf/.jsonl files in this folder")
            for f in files:
                yield from _read_one(f)
        else:
            yield from _read_one(path)


def _read_one(path: Path) -> Iterator[Work | SourceError]:
    try:
        if not path.exists():
            raise InputError(path, "no such file")
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise InputError(path, f"larger than {MAX_SOURCE_BYTES} bytes")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl(path)
            return
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if suffix in HTML_SUFFIXES:
            text, title = html_text(decode_utf8(path, data))
            fmt = "html"
        elif suffix == ".epub":
            text, title = epub_text(path)
            fmt = "epub"
        elif suffix == ".pdf":
            text, title = pdf_text(path)
            fmt = "pdf"
        elif suffix in TEXT_SUFFIXES or not suffix:
            text, title = decode_utf8(path, data), ""
            fmt = "markdown" if suffix in (".md", ".markdown") else "text"
        else:
            raise InputError(path, f"unsupported source type {suffix!r} (use .txt, .md, .html, .epub, .pdf or .jsonl)")
        if not text.strip():
            raise InputError(path, "no text in this source")
        yield Work(path.stem, title or path.stem, text, sha, str(path), fmt)
    except InputError as exc:
        yield SourceError(str(path), exc.reason)
    except OSError as exc:
        yield SourceError(str(path), exc.strerror or str(exc))


# Byte-order marks of the encodings read besides UTF-8: Windows tools write UTF-16 with one
# (PowerShell's `>` and Out-File, Notepad's "Unicode"). UTF-32 first: its little-endian
# mark begins with UTF-16's.
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32"), (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32"),
         (b"\xff\xfe", "utf-16-le", "UTF-16"), (b"\xfe\xff", "utf-16-be", "UTF-16"),
         (b"\xef\xbb\xbf", "utf-8", "UTF-8"))


def decode_utf8(path: Path, data: bytes) -> str:
    """The text of a file: UTF-8, or UTF-16 / UTF-32 when a byte-order mark says so (the mark
    dropped; offsets are code points of the text either way), or UTF-16 without a mark when
    its NUL bytes show it (_utf16_without_mark), or InputError naming the byte of the file
    where decoding failed."""
    codec, name, skipped = "utf-8", "UTF-8", 0
    for bom, bom_codec, bom_name in _BOMS:
        if data.startswith(bom):
            codec, name, skipped = bom_codec, bom_name, len(bom)
            break
    else:
        if (text := _utf16_without_mark(data)) is not None:
            return text
    try:
        return data[skipped:].decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not {name} text (byte {skipped + exc.start})") from None


def _utf16_without_mark(data: bytes) -> str | None:
    """UTF-16 written without a byte-order mark (Python's "utf-16-le", some exporters), told
    by its NUL bytes, which UTF-8 text never holds: text mostly in the first 256 code points
    has a NUL in nearly every other byte. Read so only when the bytes decode strictly to
    characters without controls other than tab, line and page ends; else None (and the
    UTF-8 reading reports what it finds)."""
    if len(data) < 4 or len(data) % 2 or b"\x00" not in data[:4096]:
        return None
    head = data[:4096]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = len(head) // 2
    if odd >= half * 0.4 and even <= half * 0.05:
        codec = "utf-16-le"
    elif even >= half * 0.4 and odd <= half * 0.05:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    if any(c < " " and c not in "\t\n\r\f" for c in text) or "\x7f" in text:
        return None
    return text


def _jsonl(path: Path) -> Iterator[Work | SourceError]:
    with path.open("rb") as fh:
        for no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path}:{no}"
            try:
                obj = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                # JSONDecodeError and UnicodeDecodeError are ValueErrors; so is an integer of
                # over 4,300 digits; nesting thousands deep is a RecursionError
                yield SourceError(where, f"not JSON ({type(exc).__name__}: {str(exc)[:200]})")
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                yield SourceError(where, 'expected an object {"id", "title"?, "text"} with non-empty text')
                continue
            wid = obj.get("id")
            if not isinstance(wid, str | int) or not str(wid).strip():
                yield SourceError(where, 'missing "id"')
                continue
            title = obj.get("title")
            yield Work(str(wid), str(title) if title else str(wid), obj["text"],
                       hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest(), where, "jsonl")


# ---------------------------------------------------------------------------- HTML
_BLOCK = {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "blockquote", "section",
          "article", "pre", "hr", "dt", "dd", "table", "ul", "ol", "header", "footer", "figcaption"}
_SKIP = {"script", "style", "head", "noscript", "template", "svg", "math"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        if not self._skip:
            self.parts.append(data)


def html_text(html: str) -> tuple[str, str]:
    """The visible text of an HTML document (blocks on their own lines) and its title."""
    p = _Text()
    p.feed(html)
    p.close()
    text = re.sub(r"\n[ \t]*(?:\n[ \t]*)+", "\n\n", "".join(p.parts)).strip()
    return text, " ".join("".join(p.title).split())


# ---------------------------------------------------------------------------- EPUB
def epub_text(path: Path) -> tuple[str, str]:
    """The text of an EPUB's spine documents in reading order, and its title. Read with
    the standard library's zip and XML parsers only (no network, no entity expansion:
    DTDs are refused)."""
    import posixpath
    import zipfile
    import zlib
    from xml.etree import ElementTree as ET

    def parse(data: bytes, what: str) -> ET.Element:
        if b"<!ENTITY" in data:
            raise InputError(path, f"{what}: entity declarations are not allowed")
        try:
            return ET.fromstring(data)
        except ET.ParseError as exc:
            raise InputError(path, f"{what}: not well-formed XML ({exc})") from None

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        raise InputError(path, "not an EPUB (not a zip archive)") from None
    with zf:
        names = set(zf.namelist())
        budget = [MAX_EPUB_BYTES]

        def read(name: str) -> bytes:
            if name not in names:
                raise InputError(path, f"EPUB member {name!r} is missing")
            info = zf.getinfo(name)
            if info.file_size > 256 * 1024**2:
                raise InputError(path, f"EPUB member {name!r} is larger than 256 MiB")
            budget[0] -= info.file_size  # zipfile stops at the declared size (then fails its CRC)
            if budget[0] < 0:
                raise InputError(path, f"EPUB members expand to more than {MAX_EPUB_BYTES} bytes "
                                 "(a compression bomb?); not read")
            try:
                return zf.read(name)
            except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError,
                    ValueError) as exc:  # corrupt, truncated, encrypted or unknown compression
                raise InputError(path, f"EPUB member {name!r} is unreadable ({type(exc).__name__}: "
                                 f"{str(exc)[:200]})") from None

        container = parse(read("META-INF/container.xml"), "META-INF/container.xml")
        rootfile = next((el.get("full-path") for el in container.iter() if el.tag.endswith("rootfile")), None)
        if not rootfile:
            raise InputError(path, "EPUB container names no package document")
        opf = parse(read(rootfile), rootfile)
        base = posixpath.dirname(rootfile)
        manifest = {el.get("id"): el.get("href") for el in opf.iter() if el.tag.endswith("}item")}
        title = next(("".join(el.itertext()).strip() for el in opf.iter() if el.tag.endswith("}title")), "")
        parts = []
        for ref in (el for el in opf.iter() if el.tag.endswith("}itemref")):
            href = manifest.get(ref.get("idref"))
            if not href:
                continue
            from urllib.parse import unquote

            name = posixpath.normpath(posixpath.join(base, unquote(href.split("#", 1)[0])))
            doc = read(name)
            if b"<!ENTITY" in doc:
                raise InputError(path, f"{name}: entity declarations are not allowed")
            text, _ = html_text(doc.decode("utf-8", "replace"))
            if text:
                parts.append(text)
        if not parts:
            raise InputError(path, "EPUB spine holds no text")
        return "\n\n".join(parts), title


# ----------------------------------------------------------------------------- PDF
def pdf_text(path: Path) -> tuple[str, str]:
    """The text layer of a PDF, page after page (pypdf), and its title."""
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover - pypdf is a dependency
        raise InputError(path, "PDF text needs the pypdf package") from None
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise InputError(path, "encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = str(meta.title) if meta and meta.title else ""
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds (its own limits, IndexError,
        # struct and zlib errors...) on malformed files: each is this file's problem, not the run's
        raise InputError(path, f"unreadable PDF ({type(exc).__name__}: {str(exc)[:200]})") from None
    return "\n\n".join(p for p in pages if p), title
