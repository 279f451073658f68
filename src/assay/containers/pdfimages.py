"""The pictures a PDF holds compressed or encoded, rebuilt to pixels (pypdf) and scanned as members.

A PDF's JPEG photos are stored as they are (DCTDecode streams): the carver (carve.py) cuts
them out byte for byte, ``file.pdf!/carved@OFFSET.jpg``, and a copy of a known JPEG
matches exactly. Every other image XObject is stored compressed or encoded: Flate (what
most writers use for lossless pictures, img2pdf's PNGs with PNG predictors included),
LZW, RunLength, ASCIIHex and ASCII85 chains, CCITT fax, JPEG 2000 (JPXDecode), with 1 to
16 bits per component in grey, RGB, CMYK, ICC-based, calibrated, indexed or DeviceN colour
(a separation is read as ink coverage, as pypdf reads it, whatever its tint transform;
CIE Lab is not converted right). pypdf reads the document (classic and PDF 1.5 cross-reference and object
streams, an empty user password) and decodes each image; the pixels are scanned as a
member named after where the picture is::

    file.pdf!/page-3/Im1-obj12.png   shown on page 3 (counted from 1, as viewers count) under
                                     the resource name /Im1; PDF object 12 (``mutool show
                                     file.pdf 12``, ``qpdf --show-object=12``, the "object"
                                     column of ``pdfimages -list``)
    file.pdf!/page-3/inline-0.png    the first inline image (``BI ... ID <data> EI``, the picture
                                     written into the page's content stream itself) of page 3
    file.pdf!/page-3/Fm0-obj7/inline-0.png  one in form XObject 7, drawn on page 3 as /Fm0
    file.pdf!/obj-7/inline-0.png     an inline image in the content of object 7 that no page
                                     draws as a form: a pattern, a Type 3 glyph, an appearance
    file.pdf!/obj-40.png             an image object no page shows (it is in the file)
    file.pdf!/attachment-obj9/a.png  a file attached to the PDF (by name, by a file attachment
                                     annotation, or a typed stream no name points to): object 9,
                                     its filters undone, scanned as the file it is (exact hashes)

Inline images are read from the content streams pypdf parses (its operators, its search for
the EI that ends an image), their abbreviated keys and values written out (/W /H /CS /BPC /F
/DP, /RGB /G /CMYK /I, /Fl /AHx /A85 /LZW /RL /CCF /DCT, a colour space named in the
resources looked up), then decoded as an image XObject is, under the same bounds (and a
content stream parsed up to 16 MiB: pypdf's search for EI runs in Python). Where pypdf's
reading fails (it ends an image at an EI inside its data when what follows looks like
operators), Flate images are inflated to the end of their zlib stream, RunLength ones read
to their end run and unfiltered ones taken by their declared size, as a viewer reads them,
and handed out as ``page-3/inline@OFFSET.png`` (OFFSET: of the BI in the page's content)
unless pypdf read the same data right. To learn
that a document holds none without parsing every page, the bytes are searched first
(``_inline_hints``): the BI operator in the raw file and in every Flate stream inflated
(PNG predictors undone, Flate in Flate inflated again, bounded); only the streams where it
is are parsed. A filter that would hide it from that search (ASCIIHex, ASCII85, LZW,
RunLength, Brotli, in any spelling), a filter not given as names (a string pypdf reads as
the name it spells, a reference), encryption or a predictor the search cannot undo make
every stream be read with pypdf instead.

A PNG or TIFF of the decoded pixels is what is scanned: its PDQ is the picture's; its MD5
and SHA-256 are of that rebuilt file, which exists nowhere else: they match nothing. A JPEG or JPEG 2000 inside other filters (Flate around a
DCT stream, an encrypted PDF's JPEG) is handed over as its own bytes (``.jpg``, ``.jp2``):
exact hashes hold. A plain DCT image the carver found is not reported twice.

The PDF is hostile data: an image is decoded only when its declared size is within
``Limits.max_pixels`` and the bytes its filters may produce are bounded by what that size
needs (pypdf's own output limits set to it, a Flate bomb stops there); images whose
filters pypdf undoes in Python loops (LZW, ASCII85, TIFF predictors, PNG predictors
assay cannot hand to Pillow) at most ``_SLOW_BYTES`` each; at most
``Limits.max_document_images`` images and ``Limits.max_document_seconds`` of work a
document (inline images counted with the others), and the inflated total under the archive
ratio rule. A broken image is an error on its member's record (an inline image pypdf cannot
parse to its EI: an error on ``page-N/inline-K`` after the last one read); a broken document
an error on the PDF's own record. Nothing pypdf logs or warns reaches the terminal. Not
read: JBIG2 images (decoding needs an external program), documents that need a password.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import struct
import time
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from ..config import Limits
from .members import ArchiveError, Member

# Bytes a picture decodes to through pypdf's loops written in Python (LZW ~0.5 MB/s: 4 MB ~ 9 s).
_SLOW_BYTES = 4 * 1024**2
_FORM_DEPTH = 8  # form XObjects inside form XObjects followed for page images
_RESOURCE_STEPS = 200_000  # XObject entries looked at to tell which page shows an image
_SLOW = {"/LZWDecode", "/LZW", "/ASCII85Decode", "/A85"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@contextmanager
def quiet_pypdf() -> Iterator[None]:
    """pypdf's log messages and warnings (and Pillow's, as pypdf calls it) kept off the
    terminal: a malformed document is reported on its record, not in the scan's output."""
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _config(limit: int, pixels: int = 0, stored: int = 0) -> Any:
    """pypdf's output limits (pypdf >= 6) set to ``limit`` bytes, and no external
    decoder (jbig2dec) started for a file's data. ``stored``: the bytes of the stream as
    stored, counted in the work its filters may do (each filter's input and output: an
    ASCIIHex chain reads twice what it inflates)."""
    try:
        from pypdf import apply_configuration
    except ImportError:  # pragma: no cover - older pypdf: assay's own checks only
        return nullcontext()
    limit = max(limit, 1 << 16)
    return apply_configuration(
        zlib_maximum_output_length=limit, lzw_maximum_output_length=limit,
        run_length_maximum_output_length=limit, array_based_stream_maximum_output_length=limit,
        image_maximum_buffer_size=max(limit, 8 * pixels), stream_decoding_work_maximum_length=4 * (limit + stored),
        jbig2dec_binary=None, maximum_declared_stream_length=max(limit, 75_000_000))


def _name(value: Any) -> str:
    return str(value) if value is not None else ""


def _resolved(value: Any) -> Any:
    return value.get_object() if value is not None and hasattr(value, "get_object") else value


def _subtype(obj: Any) -> str:
    """An XObject's /Subtype, given directly or by reference (viewers follow one)."""
    kind = obj.get("/Subtype")
    return _name(kind.get_object() if kind is not None else None)


def _filters(image: Any) -> list[str]:
    f = image.get("/Filter")
    f = f.get_object() if f is not None else None
    if f is None:
        return []
    return [_name(x.get_object()) for x in f] if isinstance(f, list) else [_name(f)]


def _parms(image: Any, i: int) -> dict:
    p = image.get("/DecodeParms", image.get("/DP"))
    p = p.get_object() if p is not None else None
    if isinstance(p, list):
        p = p[i].get_object() if i < len(p) else None
    return p if isinstance(p, dict) else {}


def _components(space: Any, depth: int = 0) -> int | None:
    """Colour components of one sample of a colour space; None when unknown."""
    space = space.get_object() if space is not None else None
    if depth > 8 or space is None:
        return None
    if isinstance(space, list):
        if not space:
            return None
        kind = _name(space[0].get_object())
        if kind == "/ICCBased" and len(space) > 1:
            n = space[1].get_object().get("/N")
            return int(n) if isinstance(n, int) and 1 <= n <= 4 else None
        if kind in ("/Indexed", "/I", "/Separation"):
            return 1
        if kind == "/DeviceN" and len(space) > 1 and isinstance(space[1].get_object(), list):
            return len(space[1].get_object()) or None
        return _components(space[0], depth + 1) if kind not in ("/CalRGB", "/CalGray", "/Lab") else (
            1 if kind == "/CalGray" else 3)
    return {"/DeviceGray": 1, "/G": 1, "/CalGray": 1, "/DeviceRGB": 3, "/RGB": 3, "/CalRGB": 3, "/Lab": 3,
            "/DeviceCMYK": 4, "/CMYK": 4}.get(_name(space))


def _int(image: Any, key: str, default: int | None = None) -> int | None:
    v = image.get(key, default)
    v = v.get_object() if hasattr(v, "get_object") else v
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _without(image: Any, drop: set[str], data: bytes, decoded: bool) -> Any:
    """A copy of the image's stream without the keys in ``drop`` (its soft mask, its
    filters once undone), holding ``data``: pypdf decodes that copy."""
    from pypdf.generic import DecodedStreamObject, EncodedStreamObject, NameObject

    copy = DecodedStreamObject() if decoded else EncodedStreamObject()
    for k, v in image.items():
        if k not in drop:
            copy[NameObject(k)] = v
    copy._data = data  # noqa: SLF001 - the stream's bytes; set_data would encode them again
    return copy


def _png(width: int, height: int, bpc: int, colors: int, idat: bytes) -> bytes | None:
    """A PNG whose image data is a PDF Flate stream with PNG predictors (10-15): the same
    bytes (a zlib stream of rows, each led by its filter type), so Pillow's C decoder
    undoes the predictors instead of pypdf's Python loops (~1.4 s a megapixel)."""
    kind = {1: 0, 2: 4, 3: 2, 4: 6}.get(colors)
    if kind is None or bpc not in (1, 2, 4, 8, 16) or (bpc < 8 and colors != 1):
        return None

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    head = struct.pack(">IIBBBBB", width, height, bpc, kind, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _unpredict(image: Any, width: int, height: int, bpc: int, colors: int) -> bytes | None:
    """The samples of a Flate image with PNG predictors, undone by Pillow; None when the
    stream does not fit what a PNG can say (pypdf then decodes it)."""
    from PIL import Image

    parms = _parms(image, 0)
    if (_int(parms, "/Columns", 1) != width or _int(parms, "/Colors", 1) != colors
            or _int(parms, "/BitsPerComponent", 8) != bpc):
        return None
    png = _png(width, height, bpc, colors, image._data)  # noqa: SLF001 - the stream's bytes as stored
    if png is None:
        return None
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        if bpc == 16 and colors == 1:  # I;16: the high byte of each sample
            import numpy as np

            return (np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8).tobytes()
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[colors]
        if bpc < 8:  # 2 and 4 bits: Pillow scales them to 8 (pypdf decodes those)
            return im.tobytes("raw", "1") if bpc == 1 and im.mode == "1" else None
        # 16-bit colour: Pillow keeps the high byte of each sample, 8 bits, as it shows such a PNG
        return im.tobytes("raw", mode) if im.mode == mode else None


def _esc(word: bytes) -> bytes:
    """A regular expression for the PDF name ``word``, each character as it is or escaped (#xx)."""
    return b"/" + b"".join(b"(?:%s|#%s)" % (re.escape(bytes([c])), _hexes(c)) for c in word)


def _hexes(c: int) -> bytes:
    hi, lo = f"{c:02x}"
    return f"[{hi}{hi.upper()}][{lo}{lo.upper()}]".encode()


_GAP = rb"(?:\s|%[^\r\n]*)"
# Where an image's dictionary may be: its /Image name (escaped or not), or a /Subtype given
# by reference (the name then in another object, maybe a compressed one).
_END = rb"(?![A-Za-z0-9#_.-])"
_IMAGE_HINT = re.compile(_esc(b"Image") + _END + b"|" + _esc(b"EmbeddedFile") + _END + b"|" + _esc(b"Subtype") + _GAP + rb"*\d+" + _GAP
                         + rb"+\d+" + _GAP + rb"+R")
# Where a file attached by name may be: a filespec's /EF, or object streams (unseen here)
_ANY_HINT = re.compile(_IMAGE_HINT.pattern + b"|" + _esc(b"EF") + _END + b"|" + _esc(b"ObjStm") + _END)
_BACK = 64 * 1024  # objects that start this far before a hint are looked at too


def _candidates(path: Path, offsets: dict[tuple[int, int], int] | None) -> set[tuple[int, int]]:
    """(``offsets`` None: {(0, 0)} when the file has any hint of an image, else nothing.) The objects whose bytes may hold an image dictionary: those at or up to ``_BACK``
    bytes before a hint of one in the file (a regular expression over the raw bytes; the
    dictionary of a stream is never compressed: PDF 32000 7.5.7). Parsing every object
    with pypdf (~0.2 ms each) is what this saves on documents of many objects."""
    import bisect
    import mmap

    order = sorted((offsets or {}).items(), key=lambda kv: kv[1])
    starts = [off for _, off in order]
    found: set[tuple[int, int]] = set()
    with open(path, "rb") as f:
        try:
            view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty
            return found
        with view:
            for m in (_ANY_HINT if offsets is None else _IMAGE_HINT).finditer(view):  # type: ignore[call-overload]
                if offsets is None:
                    return {(0, 0)}
                at = m.start()
                i = bisect.bisect_right(starts, at) - 1
                if i >= 0:
                    found.add(order[i][0])
                j = bisect.bisect_left(starts, at - _BACK)
                found.update(key for key, _ in order[j:i])
    return found



# -- inline images (BI ... ID ... EI in a content stream) ----------------------------------------

# What may end the token before an operator in pypdf's content-stream parser (whitespace,
# a delimiter, a number), and what ends an operator (whitespace, a delimiter)
_BEFORE_OP = frozenset(b" \t\n\r\f\v\x00()<>[]{}/%0123456789.+-")
_BI_TOKEN = re.compile(rb"BI(?![^ \t\n\r\f\v()<>\[\]{}/%])")  # a literal prefix: fast
# After BI, past whitespace, pypdf reads the settings: an object (a name, number, array,
# string, dictionary, comment, keyword) or ID. Random bytes (a font's) rarely start one.
_PDF_SPACE = re.compile(rb"[\x00\t\n\f\r ]*")
_SETTINGS_START = frozenset(b"%/<[(tfen0123456789+-.I")


def _bi_at(data: Any, limit: int = 0) -> list[int]:
    """Where the BI operator (begin inline image) may be in ``data``: the letters BI as a
    token of their own, ended by whitespace, a delimiter or the end (a regular expression
    with a literal start), the byte before and the first after the whitespace looked at
    here (a look-behind is ~10x slower); at the end of the data (a page's content may go on
    in its next stream) always. At most ``limit`` places (0: all)."""
    found: list[int] = []
    for m in _BI_TOKEN.finditer(data):
        at = m.start()
        nxt = _PDF_SPACE.match(data, m.end()).end()  # type: ignore[union-attr]
        if (at == 0 or data[at - 1] in _BEFORE_OP) and (nxt == len(data) or data[nxt] in _SETTINGS_START):
            found.append(at)
            if len(found) == limit:
                break
    return found


# Filters that would hide the operator from a byte search (pypdf undoes each, its
# abbreviations too), and encryption
_HIDING = re.compile(b"|".join(_esc(w) + _END for w in (
    b"ASCIIHexDecode", b"AHx", b"ASCII85Decode", b"A85", b"LZWDecode", b"LZW", b"RunLengthDecode", b"RL",
    b"BrotliDecode", b"Encrypt")))
_PREDICTOR = re.compile(_esc(b"Predictor") + _END)
_FILTER = re.compile(_esc(b"Filter") + _END + _GAP + b"*")
_NAMES = re.compile(rb"\[(?:" + _GAP + rb"|/[^\s/\[\]()<>{}%]*)*\]")


_PARMS = re.compile(_esc(b"DecodeParms") + _END + _GAP + b"*")
_REF = re.compile(rb"\d+" + _GAP + rb"+\d+" + _GAP + rb"+R")


def _odd_filter(data: Any) -> bool:
    """Whether a /Filter in ``data`` is given by anything but a name or an array of names
    (a string, which pypdf takes as the name it spells, or a reference), or a /DecodeParms
    by reference: what they say is not in the bytes the search reads, next to the stream."""
    for m in _FILTER.finditer(data):
        at = m.end()
        first = data[at:at + 1]
        if first == b"/" or (first == b"[" and _NAMES.match(data, at)):
            continue
        return True
    for m in _PARMS.finditer(data):
        at = m.end()
        first = data[at:at + 2]
        if first == b"<<" or first == b"nu":
            continue
        if first[:1] == b"[":
            end = data.find(b"]", at)
            if end > 0 and not _REF.search(data, at, end):
                continue
        return True
    return False
_STREAM = re.compile(rb"stream *(?:\r\n|\n|\r)")  # "endstream" too: told apart by the byte before
_OBJ = re.compile(rb"obj")
_ZLIB_IN = 1 << 16  # bytes fed to zlib at a time
# Content parsed for inline images, a stream (pypdf's search for EI runs in Python, ~0.4 s a
# MB at worst): a page over it is an error on its member
_INLINE_CONTENT = 16 * 1024**2


class _TooLong(Exception):
    pass


# The ID operator that ends an inline image's settings; pypdf reads it and one byte more
_ID = re.compile(rb"(?<![A-Za-z*'\"])ID[\x00\t\n\f\r ]")


def _first_filter(settings: Any) -> str:
    """An inline image's first filter, its name written out ("" when none)."""
    f = settings.get("/F", settings.get("/Filter"))
    f = f[0] if isinstance(f, list) and f else f
    return _INLINE_VALUES.get(str(f), str(f)) if f else ""


def _rl_end(data: bytes) -> int | None:
    """Where RunLength data ends (its EOD, 128, read run by run: a 128 inside a literal run
    is data); None when it does not end."""
    at, n = 0, len(data)
    while at < n:
        length = data[at]
        if length == 128:
            return at + 1
        at += length + 2 if length < 128 else 2
    return None


def _flate_end(data: bytes, limit: int = 1 << 62) -> int | None:
    """Where the zlib stream at the start of ``data`` ends (inflating at most ``limit``
    bytes, the output dropped as it comes); None when it does not end."""
    d = zlib.decompressobj()
    tail, total = data, 0
    try:
        while tail and not d.eof and total <= limit:
            total += len(d.decompress(tail, 1 << 20))
            tail = d.unconsumed_tail
    except zlib.error:
        return None
    return len(data) - len(d.unused_data) if d.eof else None
_PRECHECK_STREAM = 64 * 1024**2  # inflated bytes looked at in one stream (more: unsure)


def _inflate(view: Any, at: int, limit: int) -> tuple[bytes, int] | None:
    """The zlib (or gzip) stream starting at ``at``, inflated to at most ``limit`` bytes (as
    far as it goes when broken), and where its compressed bytes end (``at`` when it did not
    end); None when no such stream starts there."""
    head = bytes(view[at:at + 2])
    if len(head) < 2:
        return None
    if head == b"\x1f\x8b":
        d = zlib.decompressobj(31)
    elif head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
        d = zlib.decompressobj()
    else:
        return None
    out = bytearray()
    pos, end = at, len(view)
    try:
        while pos < end and not d.eof and len(out) <= limit:
            out += d.decompress(bytes(view[pos:pos + _ZLIB_IN]), limit + 1 - len(out))
            pos += _ZLIB_IN
            if d.unconsumed_tail:  # output limit reached
                break
    except zlib.error:
        pass  # pypdf recovers what it can from a broken stream: what came out is looked at
    return bytes(out), (min(pos, end) - len(d.unused_data) if d.eof else at)


def _unpredicted(span: bytes, data: bytes) -> bytes | None:
    """A Flate stream's bytes with the PNG predictors its dictionary (``span``) names undone
    (Pillow); None when that cannot be told for sure from the dictionary's text."""
    from PIL import Image

    def one(key: bytes, default: int) -> int | None:
        found = re.findall(b"/" + key + rb"\s+(\d+)(?![\d.])(?!\s+\d+\s+R)", span)
        if len(found) > 1 or (not found and re.search(_esc(key), span)):
            return None
        return int(found[0]) if found else default

    predictor, columns = one(b"Predictor", 1), one(b"Columns", 1)
    colors, bpc = one(b"Colors", 1), one(b"BitsPerComponent", 8)
    if None in (predictor, columns, colors, bpc) or not 10 <= predictor <= 15 or not columns:  # type: ignore[operator]
        return None
    row = -(-columns * colors * bpc // 8) + 1  # type: ignore[operator]
    png = _png(columns, len(data) // row, bpc, colors, zlib.compress(data, 1)) if len(data) >= row else None  # type: ignore[arg-type]
    if png is None:
        return None
    try:
        with Image.open(io.BytesIO(png)) as im:
            im.load()
            return im.tobytes()
    except Exception:  # noqa: BLE001 - Pillow's view of a broken stream: unsure
        return None


def _inline_hints(path: Path, seconds: float = math.inf) -> tuple[list[int] | None, list[int]]:
    """Offsets in the file of the streams (or bytes) that may hold an inline image: where
    the BI operator is, in the raw bytes or in a Flate stream inflated (its PNG predictors
    undone, a stream in a stream inflated again); None when the bytes cannot tell (a filter
    that hides the operator from a byte search, encryption, an inflated size over the
    bound): then every stream is read with pypdf. Without this, every page of a text-only
    document would be parsed by pypdf to learn it holds no picture. Second: the streams
    not inflated because their dictionary looks like an image's or an attached file's (the
    pictures of a scanned document are most of its bytes); the caller reads those with
    pypdf that are no image XObject or attachment after all. Past ``seconds``: None."""
    import bisect
    import mmap

    deadline = time.monotonic() + seconds
    with open(path, "rb") as f:
        try:
            view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty
            return [], []
        with view:
            if _HIDING.search(view) or _odd_filter(view):  # type: ignore[call-overload]
                return None, []
            raw = _bi_at(view)
            hinted: list[int] = []
            packed: list[tuple[int, int]] = []  # (start, end) of each stream's zlib data
            streams = [m.end() for m in _STREAM.finditer(view)  # type: ignore[call-overload]
                       if not m.start() or not view[m.start() - 1:m.start()].isalpha()]
            predictors = list(_PREDICTOR.finditer(view))  # type: ignore[call-overload]
            objs = [m.start() for m in _OBJ.finditer(view)  # type: ignore[call-overload]
                    if not view[m.start() - 1:m.start()].isalpha() and not view[m.end():m.end() + 1].isalpha()]
            skipped: list[int] = []
            # A predictor must be in the dictionary of the stream right after it (between
            # that object's "obj" and "stream"), where its parameters are read
            spans: dict[int, int] = {}
            for m in predictors:
                s = bisect.bisect_right(streams, m.start())
                if s == len(streams):
                    return None, []
                o = bisect.bisect_left(objs, streams[s]) - 1
                if o < 0 or objs[o] > m.start():
                    return None, []
                # every "stream" up to the next "obj": the word in a string before the real one
                while s < len(streams) and bisect.bisect_left(objs, streams[s]) - 1 == o:
                    spans[streams[s]] = objs[o]
                    s += 1
            budget = min(256 * 1024**2 + 16 * len(view), 4 * 1024**3)  # inflated bytes in all
            for at in streams:
                if time.monotonic() > deadline:
                    return None, []
                o = bisect.bisect_left(objs, at) - 1
                if o >= 0 and _IMAGE_HINT.search(view, objs[o], at):  # type: ignore[call-overload]
                    skipped.append(at)
                    continue
                pending: list[tuple[Any, int]] = [(view, 0)]
                while pending:
                    source, depth = pending.pop()
                    inflated = _inflate(source, at if depth == 0 else 0, _PRECHECK_STREAM)
                    if inflated is None:
                        continue
                    data, stop = inflated
                    if depth == 0:
                        # the letters BI in compressed bytes are noise: what they inflate to is looked at
                        packed.append((at, stop))
                    budget -= len(data)
                    if len(data) > _PRECHECK_STREAM or budget < 0:
                        return None, []
                    looks = [data]
                    if at in spans:
                        plain = _unpredicted(bytes(view[spans[at]:at]), data)
                        if plain is None:
                            return None, []
                        looks.append(plain)
                    if any(_HIDING.search(b) or _PREDICTOR.search(b) or _odd_filter(b) for b in looks):
                        return None, []  # hidden in an object stream
                    if any(_bi_at(b, 1) for b in looks):
                        hinted.append(at)
                    if depth < 4:
                        pending.extend((b, depth + 1) for b in looks)
            starts = [a for a, _ in packed]
            return sorted({at for at in raw if (i := bisect.bisect_right(starts, at) - 1) < 0
                           or at >= packed[i][1]} | set(hinted)), skipped


def _direct(image: Any, samples: bytes, width: int, height: int) -> Any:
    """The picture of 8-bit (or narrowed 16-bit) grey or RGB samples with no decode
    array, made straight from them (most images: no detour through pypdf's PNG); None
    for anything else (pypdf applies palettes, CMYK, low bit depths, decode arrays)."""
    from PIL import Image

    if image.get("/ImageMask") or image.get("/Decode") is not None:
        return None
    bpc = _int(image, "/BitsPerComponent", 8)
    space = image.get("/ColorSpace")
    space = space.get_object() if space is not None else None
    kind = _name(space[0].get_object()) if isinstance(space, list) and space else _name(space)
    if bpc not in (8, 16) or kind not in ("/DeviceRGB", "/RGB", "/CalRGB", "/DeviceGray", "/G", "/CalGray",
                                          "/ICCBased"):
        return None
    n = _components(space)
    mode = {1: "L", 3: "RGB"}.get(n or 0)
    if mode is None or len(samples) < width * height * (n or 0):
        return None
    return Image.frombytes(mode, (width, height), samples[: width * height * (n or 0)])


def _encoded(img: Any) -> tuple[bytes, str]:
    """The pixels as a file to scan: PNG (TIFF for CMYK, which PNG cannot hold)."""
    out = io.BytesIO()
    if img.mode == "CMYK":
        img.save(out, "TIFF")
        return out.getvalue(), "tif"
    if img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    img.save(out, "PNG", compress_level=1)
    return out.getvalue(), "png"


_INLINE_KEYS = {"/BPC": "/BitsPerComponent", "/CS": "/ColorSpace", "/D": "/Decode", "/DP": "/DecodeParms",
                "/F": "/Filter", "/H": "/Height", "/W": "/Width", "/IM": "/ImageMask", "/I": "/Interpolate",
                **{k: k for k in ("/BitsPerComponent", "/ColorSpace", "/Decode", "/DecodeParms", "/Filter", "/Height",
                                  "/Width", "/ImageMask", "/Interpolate", "/Intent")}}
_INLINE_VALUES = {"/G": "/DeviceGray", "/RGB": "/DeviceRGB", "/CMYK": "/DeviceCMYK", "/I": "/Indexed",
                  "/AHx": "/ASCIIHexDecode", "/A85": "/ASCII85Decode", "/LZW": "/LZWDecode", "/Fl": "/FlateDecode",
                  "/RL": "/RunLengthDecode", "/CCF": "/CCITTFaxDecode", "/DCT": "/DCTDecode"}
_DEVICE = {"/DeviceGray", "/DeviceRGB", "/DeviceCMYK", "/Pattern"}


def _inline_image(settings: Any, data: bytes, resources: Any) -> Any:
    """An image stream made of an inline image's settings (abbreviated keys and values
    written out, a colour space named in the resources looked up) and its data."""
    from pypdf.generic import ArrayObject, DecodedStreamObject, EncodedStreamObject, NameObject

    spaces = _resolved(resources.get("/ColorSpace")) if isinstance(resources, dict) else None

    def value(key: str, v: Any, depth: int = 0) -> Any:
        if isinstance(v, list) and depth < 4:
            return ArrayObject([value(key, x, depth + 1) for x in v])
        if isinstance(v, NameObject):
            if str(v) in _INLINE_VALUES:
                return NameObject(_INLINE_VALUES[str(v)])
            if key == "/ColorSpace" and depth == 0 and str(v) not in _DEVICE:
                if not isinstance(spaces, dict) or v not in spaces:
                    raise ValueError(f"colour space {v} is in no resources")  # as pypdf would say
                return spaces[v]
        return v

    entries: dict[str, Any] = {}
    for k, v in settings.items():
        key = _INLINE_KEYS.get(str(k))
        if key is not None and key not in entries:
            entries[key] = value(key, v) if key in ("/Filter", "/ColorSpace") else v
    # Unfiltered data is a decoded stream to pypdf (an encoded one without filters it refuses)
    image = EncodedStreamObject() if entries.get("/Filter") else DecodedStreamObject()
    for key, v in entries.items():
        image[NameObject(key)] = v
    image._data = data  # noqa: SLF001 - the bytes between ID and EI
    return image


class _Walk:
    """One document's images, one at a time, within its budgets."""

    def __init__(self, path: Path, limits: Limits, carved_jpegs: set[str]) -> None:
        self.path, self.limits, self.carved = path, limits, carved_jpegs
        try:
            self.size = max(path.stat().st_size, 1)
        except OSError:
            self.size = 1  # reported when it is read
        self.inflated = 0
        # Seconds spent here (not in the caller's analysis of the members handed out)
        self.spent = 0.0
        self.since = time.monotonic()

    def _over_time(self) -> bool:
        return self.spent + time.monotonic() - self.since > self.limits.max_document_seconds

    def members(self) -> Iterator[Member]:
        """The members, each made with pypdf kept quiet (not while the caller analyses one)."""
        try:
            self.inline, self.skipped = _inline_hints(self.path, self.limits.max_document_seconds / 4)
            self.objects = bool(_candidates(self.path, None))
            if not self.objects and self.inline == []:
                return  # no image dictionary and no BI anywhere: pypdf is not needed (text-only documents)
            f = open(self.path, "rb")  # noqa: SIM115 - read as needed: a document of scans is not held in memory
        except OSError as exc:
            raise ArchiveError(f"cannot read: {exc.strerror or exc}", code="bad-input") from None
        with f:
            yield from self._members(f)

    def _members(self, f: Any) -> Iterator[Member]:
        from pypdf import PdfReader

        with quiet_pypdf():
            try:
                reader = PdfReader(f, strict=False)
                if reader.is_encrypted and not reader.decrypt(""):
                    raise ArchiveError("encrypted PDF that needs a password: its images were not read",
                                       code="encrypted")
                self.attached: dict[int, tuple[int, str]] = {}
                self.masks: set[int] = set()
                self.broken: list[str] = []
                shown: dict[int, tuple[int, str]] = {}
                numbers: list[tuple[int, int]] = []
                if self.objects:  # else only inline images may be there: no page walk for image XObjects
                    shown = self._shown(reader)
                    numbers = self._image_numbers(reader)
                    self._named_files(reader)
            except ArchiveError:
                raise
            except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on malformed files
                raise ArchiveError(f"unreadable PDF ({type(exc).__name__}: {str(exc)[:200]}); "
                                   "its images were not read") from None
        images = [n for n in numbers if n[0] not in self.masks]
        for i, (num, gen) in enumerate(images):
            if i >= self.limits.max_document_images:
                raise ArchiveError(f"more than {self.limits.max_document_images} images; the rest not read",
                                   code="too-large")
            if self._over_time():
                raise ArchiveError(f"images still unread after {self.limits.max_document_seconds} s; "
                                   "the rest not read", code="too-large")
            where = shown.get(num)
            base = f"page-{where[0]}/{where[1]}-obj{num}" if where else f"obj-{num}"
            with quiet_pypdf():
                member = self._member(reader, num, gen, base)
            if member is not None:
                yield from self._handed(member)
        self.count = min(len(images), self.limits.max_document_images)
        yield from self._inline_members(reader, {num for num, _ in numbers})
        for i, (num, (gen, filename)) in enumerate(sorted(self.attached.items()), self.count):
            if i >= self.limits.max_document_images:
                raise ArchiveError(f"more than {self.limits.max_document_images} images and attached files; "
                                   "the rest not read", code="too-large")
            if self._over_time():
                raise ArchiveError(f"attached files still unread after {self.limits.max_document_seconds} s; "
                                   "the rest not read", code="too-large")
            with quiet_pypdf():
                member = self._attachment(reader, num, gen, filename)
            yield from self._handed(member)
        if self.broken:
            raise ArchiveError(f"{len(self.broken)} objects unreadable (first: {self.broken[0]}); any image among "
                               "them was not read", code="decode-error")

    def _inline_members(self, reader: Any, images: set[int]) -> Iterator[Member]:
        """The inline images of every content stream the byte search pointed at (every
        stream when it could not tell): a page's contents (its streams read as one, as a
        viewer reads them) page by page, ``page-3/inline-0.png``; then any other stream
        that holds the operator: a form XObject a page draws, ``page-3/Fm0-obj7/inline-0.png``,
        or a stream no page draws as a form (a pattern, a glyph, an appearance),
        ``obj-7/inline-0.png``."""
        import bisect

        from pypdf.generic import IndirectObject, StreamObject

        if self.inline == [] and not self.skipped:
            return
        offsets = {(num, gen): off for gen, table in reader.xref.items() for num, off in table.items()}
        order = sorted(offsets.items(), key=lambda kv: kv[1])
        starts = [off for _, off in order]

        def at(places: list[int]) -> set[tuple[int, int]]:
            return {order[i][0] for p in places if (i := bisect.bisect_right(starts, p) - 1) >= 0}

        # a stream that looked like an image or attached file and is neither is read too
        wanted = set(offsets) if self.inline is None else at(self.inline) | {
            key for key in at(self.skipped) if key[0] not in images and key[0] not in self.attached}
        if not wanted:
            return
        numbers = {num for num, _ in wanted}
        done: set[int] = set()
        try:
            with quiet_pypdf():
                pages = list(reader.pages)
        except Exception:  # noqa: BLE001 - a broken page tree: the streams are still read one by one
            pages = []
        for p, page in enumerate(pages, 1):
            self._in_time("inline images")
            try:
                with quiet_pypdf():
                    contents = page.raw_get("/Contents") if "/Contents" in page else None
                    refs = _resolved(contents) if isinstance(contents, IndirectObject) else contents
                    refs = [contents] if isinstance(refs, StreamObject) else list(refs or [])
                    nums = {r.idnum for r in refs if isinstance(r, IndirectObject)}
                    if not nums & (numbers - done) and not nums & images - done:  # an image as content: read
                        continue
                    done |= nums
                    with _config(_INLINE_CONTENT):
                        data = b"\n".join(_resolved(r).get_data() for r in refs
                                          if isinstance(_resolved(r), StreamObject))
                    if len(data) > _INLINE_CONTENT:
                        raise _TooLong(f"{len(data)} bytes")
            except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on a broken page
                long = type(exc).__name__ in ("LimitReachedError", "_TooLong")
                yield from self._handed(Member(
                    name=f"page-{p}/inline-0.png", problem=(
                        f"page content over the {_INLINE_CONTENT} bytes assay parses for inline images "
                        if long else "page content not read ") + f"({type(exc).__name__}: "
                    f"{str(exc)[:200]}); any inline image on it was not read",
                    problem_code="too-large" if long else "decode-error", independent=True))
                continue
            if _bi_at(data, 1):
                with quiet_pypdf():
                    try:
                        resources = _resolved(page.get("/Resources"))
                    except Exception:  # noqa: BLE001 - broken resources: a named colour space is then unknown
                        resources = None
                yield from self._inline_in(data, f"page-{p}", resources, reader, True)
        rest = sorted(key for key in wanted if key[0] not in done and key[0] not in images)
        forms: dict[int, tuple[int, str, Any]] | None = None  # looked for once a stream holds BI
        for num, gen in rest:
            self._in_time("inline images")
            try:
                with quiet_pypdf():
                    obj = IndirectObject(num, gen, reader).get_object()
                    # Any other stream holding BI is parsed (a font's chance letters fail at
                    # once): a form, pattern or glyph may be marked as anything else
                    if not isinstance(obj, StreamObject) or _subtype(obj) == "/Image":
                        continue
                    with _config(_INLINE_CONTENT):
                        data = obj.get_data()
            except Exception:  # noqa: BLE001, S112 - a broken stream that is no page's content: no picture to report
                continue
            if len(data) > _INLINE_CONTENT:
                continue
            if _bi_at(data, 1):
                with quiet_pypdf():
                    try:
                        content = _subtype(obj) == "/Form" or "/PatternType" in obj
                        resources = _resolved(obj.get("/Resources"))
                    except Exception:  # noqa: BLE001 - as above
                        content, resources = False, None
                if forms is None:
                    forms = self._forms(pages)
                where = forms.get(num)
                if where is not None and not isinstance(resources, dict):
                    resources = where[2]  # a form without resources of its own uses its page's (PDF 1.1)
                base = f"page-{where[0]}/{where[1]}-obj{num}" if where else f"obj-{num}"
                yield from self._inline_in(data, base, resources, reader, content)

    def _forms(self, pages: list[Any]) -> dict[int, tuple[int, str, Any]]:
        """Form XObject number -> (page, resource name, page resources) of the first page that
        draws it (directly or through other forms): where its inline images are shown."""
        from pypdf.generic import IndirectObject

        found: dict[int, tuple[int, str, Any]] = {}
        steps = [0]

        def visit(resources: Any, page: int, top: Any, depth: int) -> None:
            xobjects = _resolved(resources.get("/XObject")) if isinstance(resources, dict) else None
            for key, ref in (xobjects.items() if isinstance(xobjects, dict) else ()):
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS or not isinstance(ref, IndirectObject) or ref.idnum in found:
                    continue
                obj = ref.get_object()
                if isinstance(obj, dict) and _subtype(obj) == "/Form":
                    found[ref.idnum] = (page, _SAFE_NAME.sub("_", str(key).lstrip("/"))[:40] or "form", top)
                    if depth < _FORM_DEPTH:
                        visit(_resolved(obj.get("/Resources")), page, top, depth + 1)

        with quiet_pypdf():
            for i, page in enumerate(pages, 1):
                if steps[0] > _RESOURCE_STEPS or self._over_time():
                    break
                try:
                    top = _resolved(page.get("/Resources"))
                    visit(top, i, top, 0)
                except Exception:  # noqa: BLE001, S112 - one broken page: its forms are still read, by number
                    continue
        return found

    def _in_time(self, what: str) -> None:
        if self._over_time():
            raise ArchiveError(f"{what} still unread after {self.limits.max_document_seconds} s; "
                               "the rest not read", code="too-large")

    def _inline_in(self, data: bytes, base: str, resources: Any, reader: Any, content: bool) -> Iterator[Member]:
        """The inline images of one content stream's operators (pypdf's parser, its work
        bounded). ``content``: the stream is known to be content, so that it cannot be read
        to its end is an error on a member; else (a stream of no known kind that happens to
        hold the letters BI) it is not reported."""
        from pypdf.generic import ContentStream

        cs = ContentStream(None, reader)
        cs.set_data(data)
        error = None
        # No buffer bound while parsing: pypdf would refuse a stream whose unfiltered inline
        # image declares more than it; the declared size is judged here, with the limits
        with quiet_pypdf(), _config(self.limits.max_image_bytes, 1 << 60):
            try:
                operations = cs.operations
            except Exception as exc:  # noqa: BLE001 - the operators parsed before the error are kept
                operations, error = cs._operations, exc  # noqa: SLF001
        k = 0
        good: set[bytes] = set()  # the Flate data of the pictures read
        rescue = False
        for operands, operator in operations:
            if operator != b"INLINE IMAGE":
                continue
            if self.count >= self.limits.max_document_images:
                raise ArchiveError(f"more than {self.limits.max_document_images} images; the rest not read",
                                   code="too-large")
            self._in_time("inline images")
            self.count += 1
            with quiet_pypdf():
                try:
                    image = _inline_image(operands["settings"], operands["data"], resources)
                except Exception as exc:  # noqa: BLE001 - settings pypdf parsed but assay cannot use
                    member: Member | None = Member(name=f"{base}/inline-{k}.png", problem=(
                        f"inline image not read ({type(exc).__name__}: {str(exc)[:200]})"),
                        problem_code="decode-error", independent=True)
                else:
                    member = self._image_member(image, f"{base}/inline-{k}")
            k += 1
            if _first_filter(operands["settings"]) in ("/FlateDecode", "/RunLengthDecode", ""):
                if member is None or member.problem is None:
                    end = self._known_end(operands["settings"], operands["data"], resources)
                    good.add(hashlib.sha256(operands["data"][:end]).digest())
                else:
                    rescue = True  # cut short, maybe: read again to where the data says it ends
            if member is not None:
                yield from self._handed(member)
        if rescue or error is not None:
            yield from self._rescued(data, base, resources, reader, good)
        if error is not None and content:
            yield from self._handed(Member(
                name=f"{base}/inline-{k}.png", problem=f"content stream not read to its end after {k} inline images "
                f"({type(error).__name__}: {str(error)[:200]}); a picture from there on was not read",
                problem_code="decode-error", independent=True))

    def _known_end(self, settings: Any, data: bytes, resources: Any) -> int | None:
        """Where an inline image's data ends, known without looking for EI: the end of its
        zlib stream (Flate first), its end-of-data run (RunLength first), or the bytes its
        declared size needs (no filter); None for other filters (pypdf finds the ends of
        ASCIIHex, ASCII85 and DCT data by their own markers) or when unknown."""
        first = _first_filter(settings)
        if first == "/FlateDecode":
            return _flate_end(data, self.limits.max_image_bytes)
        if first == "/RunLengthDecode":
            return _rl_end(data)
        if first:
            return None
        try:
            image = _inline_image(settings, b"", resources)
            width, height = _int(image, "/Width"), _int(image, "/Height")
            mask = bool(image.get("/ImageMask"))
            colors = 1 if mask else _components(image.get("/ColorSpace"))
            bpc = 1 if mask else _int(image, "/BitsPerComponent", 8)
        except Exception:  # noqa: BLE001 - settings assay cannot use: no end known
            return None
        if not width or not height or width < 0 or height < 0 or not colors or bpc not in (1, 2, 4, 8, 16):
            return None
        n = height * math.ceil(width * colors * bpc / 8)  # type: ignore[operator]
        return n if n <= min(len(data), self.limits.max_image_bytes) else None

    def _rescued(self, content: bytes, base: str, resources: Any, reader: Any, good: set[bytes]) -> Iterator[Member]:
        """Inline images found where pypdf's search for EI stopped early or failed: data
        may hold the bytes ``EI`` followed by what looks like operators (pypdf then cuts
        the image there and parses the rest as operators); a viewer decodes Flate data to
        the end of its zlib stream and takes unfiltered data by its declared size, as done
        here. Named after where the BI is in the content, ``inline@OFFSET``; a picture
        pypdf read right is not handed out again."""
        from pypdf.generic import ContentStream

        for at in _bi_at(content):
            found = _ID.search(content, at + 2)
            if found is None:
                break
            try:  # the settings, as pypdf reads them, with a stand-in for the data
                head = ContentStream(None, reader)
                head.set_data(content[at:found.start()] + b"ID \x80 EI")  # 128: a RunLength end too
                with quiet_pypdf(), _config(self.limits.max_image_bytes):
                    (operands, operator), = head.operations
                settings = operands["settings"]
            except Exception:  # noqa: BLE001, S112 - no inline image there as pypdf reads one
                continue
            if operator != b"INLINE IMAGE":
                continue
            start = found.end()
            end = self._known_end(settings, content[start:], resources)
            if end is None or hashlib.sha256(content[start:start + end]).digest() in good:
                continue
            good.add(hashlib.sha256(content[start:start + end]).digest())
            if self.count >= self.limits.max_document_images:
                raise ArchiveError(f"more than {self.limits.max_document_images} images; the rest not read",
                                   code="too-large")
            self._in_time("inline images")
            self.count += 1
            with quiet_pypdf():
                try:
                    image = _inline_image(settings, content[start:start + end], resources)
                except Exception as exc:  # noqa: BLE001 - as in _inline_in
                    member: Member | None = Member(name=f"{base}/inline@{at}.png", problem=(
                        f"inline image not read ({type(exc).__name__}: {str(exc)[:200]})"),
                        problem_code="decode-error", independent=True)
                else:
                    member = self._image_member(image, f"{base}/inline@{at}")
            if member is not None:
                yield from self._handed(member)

    def _handed(self, member: Member) -> Iterator[Member]:
        """``member`` handed out, the time until the next is asked for not counted."""
        self.spent += time.monotonic() - self.since
        yield member
        self.since = time.monotonic()

    def _image_numbers(self, reader: Any) -> list[tuple[int, int]]:
        """(number, generation) of every image XObject in the file, and the soft masks
        and masks they name (transparency, not pictures of their own) in ``self.masks``."""
        from pypdf.generic import IndirectObject, StreamObject

        found: list[tuple[int, int]] = []
        # Streams are never inside object streams (PDF 32000 7.5.7): the objects stored
        # on their own are where images are. Numbers in file order, newest version.
        entries = sorted((num, gen) for gen, table in reader.xref.items() for num in table)
        offsets = {(num, gen): off for gen, table in reader.xref.items() for num, off in table.items()}
        maybe = _candidates(self.path, offsets)
        for num, gen in entries:
            if (num, gen) not in maybe:
                continue
            if self._over_time():
                raise ArchiveError(f"objects still unread after {self.limits.max_document_seconds} s; "
                                   "the rest not looked at", code="too-large")
            try:
                obj = IndirectObject(num, gen, reader).get_object()
            except Exception as exc:  # noqa: BLE001 - one broken object: the others are still read
                self.broken.append(f"object {num}: {type(exc).__name__}: {str(exc)[:100]}")
                continue
            if isinstance(obj, StreamObject) and _name(_resolved(obj.get("/Type"))) == "/EmbeddedFile":
                self.attached.setdefault(num, (gen, ""))
            if not isinstance(obj, StreamObject) or _subtype(obj) != "/Image":
                continue
            found.append((num, gen))
            for key in ("/SMask", "/Mask"):
                ref = obj.get(key)
                if isinstance(ref, IndirectObject):
                    self.masks.add(ref.idnum)
        return found

    def _named_files(self, reader: Any) -> None:
        """Files attached by name (the catalog's /EmbeddedFiles name tree) or by a file
        attachment annotation, into ``self.attached``: number -> (generation, file name)."""
        from pypdf.generic import IndirectObject

        steps = [0]

        def filespec(spec: Any) -> None:
            spec = _resolved(spec)
            ef = _resolved(spec.get("/EF")) if isinstance(spec, dict) else None
            if not isinstance(ef, dict):
                return
            name = _resolved(spec.get("/UF")) or _resolved(spec.get("/F"))
            for key in ("/F", "/UF"):
                ref = ef.get(key)
                if isinstance(ref, IndirectObject):
                    old = self.attached.get(ref.idnum, (ref.generation, ""))
                    self.attached[ref.idnum] = (ref.generation, old[1] or str(name or ""))

        def tree(node: Any, depth: int) -> None:
            node = _resolved(node)
            if not isinstance(node, dict) or depth > 32:
                return
            names = _resolved(node.get("/Names"))
            for i in range(1, len(names) if isinstance(names, list) else 0, 2):
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS:
                    return
                filespec(names[i])
            for kid in _resolved(node.get("/Kids")) or []:
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS:
                    return
                tree(kid, depth + 1)

        try:
            names = _resolved(_resolved(reader.trailer["/Root"]).get("/Names"))
            if isinstance(names, dict):
                tree(names.get("/EmbeddedFiles"), 0)
        except Exception as exc:  # noqa: BLE001 - a broken name tree: typed attachments are still found
            self.broken.append(f"the names of attached files: {type(exc).__name__}: {str(exc)[:100]}")
        try:
            for page in reader.pages:
                for annot in _resolved(page.get("/Annots")) or []:
                    steps[0] += 1
                    if steps[0] > _RESOURCE_STEPS:
                        return
                    annot = _resolved(annot)
                    if isinstance(annot, dict) and _subtype(annot) == "/FileAttachment":
                        filespec(annot.get("/FS"))
        except Exception as exc:  # noqa: BLE001 - as above
            self.broken.append(f"file attachment annotations: {type(exc).__name__}: {str(exc)[:100]}")

    def _attachment(self, reader: Any, num: int, gen: int, filename: str) -> Member:
        """An attached file, its filters undone: a member scanned like any file."""
        from pypdf.generic import IndirectObject, StreamObject

        safe = _SAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1])[-80:].lstrip(".") or "file"
        name = f"attachment-obj{num}/{safe}"
        try:
            stream = IndirectObject(num, gen, reader).get_object()
            if not isinstance(stream, StreamObject):
                return Member(name=name, problem="attached file is no stream", problem_code="decode-error",
                              independent=True)
            limit = self.limits.max_image_bytes
            with _config(limit):
                data = stream.get_data()
            self._budget(len(data))
        except ArchiveError:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf and zlib raise many kinds on a broken stream
            return Member(name=name, problem=f"attached file not decoded ({type(exc).__name__}: {str(exc)[:200]})",
                          problem_code="decode-error", independent=True)
        return Member(name=name, size=len(data), open=lambda d=data: io.BytesIO(d),  # type: ignore[misc]
                      independent=True)

    def _shown(self, reader: Any) -> dict[int, tuple[int, str]]:
        """Object number -> (page, resource name) of the first page that shows the image
        (directly or through form XObjects)."""
        from pypdf.generic import IndirectObject

        shown: dict[int, tuple[int, str]] = {}
        steps = [0]

        def visit(resources: Any, page: int, depth: int, seen: set[int]) -> None:
            xobjects = resources.get_object().get("/XObject") if resources is not None else None
            xobjects = xobjects.get_object() if xobjects is not None else None
            if not isinstance(xobjects, dict):
                return
            for key, ref in xobjects.items():
                steps[0] += 1
                if steps[0] > _RESOURCE_STEPS or not isinstance(ref, IndirectObject) or ref.idnum in seen:
                    continue
                obj = ref.get_object()
                kind = _subtype(obj) if isinstance(obj, dict) else None
                if kind == "/Image":
                    name = _SAFE_NAME.sub("_", str(key).lstrip("/"))[:40] or "image"
                    shown.setdefault(ref.idnum, (page, name))
                elif kind == "/Form" and depth < _FORM_DEPTH:
                    visit(obj.get("/Resources"), page, depth + 1, seen | {ref.idnum})

        try:
            for i, page in enumerate(reader.pages, 1):
                if steps[0] > _RESOURCE_STEPS or self._over_time():
                    break
                try:
                    visit(page.get("/Resources"), i, 0, set())
                except Exception:  # noqa: BLE001, S112 - one broken page: its images are still found, unnamed
                    continue
        except Exception:  # noqa: BLE001 - a broken page tree: images are found by object number
            pass
        return shown

    def _member(self, reader: Any, num: int, gen: int, base: str) -> Member | None:
        from pypdf.generic import IndirectObject

        def problem(code: str, why: str, ext: str = "png") -> Member:
            return Member(name=f"{base}.{ext}", problem=why, problem_code=code, independent=True)

        try:
            image = IndirectObject(num, gen, reader).get_object()
        except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on a broken object
            return problem("decode-error", f"image not decoded ({type(exc).__name__}: {str(exc)[:200]})")
        return self._image_member(image, base)

    def _image_member(self, image: Any, base: str) -> Member | None:
        """The member for one image stream (an XObject, or an inline image made into one)."""

        def problem(code: str, why: str, ext: str = "png") -> Member:
            return Member(name=f"{base}.{ext}", problem=why, problem_code=code, independent=True)

        try:
            filters = _filters(image)
            width, height = _int(image, "/Width"), _int(image, "/Height")
            if not width or not height or width < 0 or height < 0:
                return problem("decode-error", f"image declares no usable size ({width}x{height})")
            if width * height > self.limits.max_pixels:
                return problem("too-large", f"image declares {width}x{height} pixels, over the limit of "
                                            f"{self.limits.max_pixels}; not decoded")
            last = filters[-1] if filters else ""
            if last in ("/DCTDecode", "/DCT", "/JPXDecode"):
                return self._coded(image, filters, base, width, height)
            if last in ("/JBIG2Decode",):
                return problem("unsupported-format", "JBIG2 image: not decoded (that needs an external program)")
            return self._pixels(image, filters, base, width, height)
        except ArchiveError:
            raise
        except Exception as exc:  # noqa: BLE001 - pypdf, Pillow and zlib raise many kinds on a broken image
            return problem("decode-error", f"image not decoded ({type(exc).__name__}: {str(exc)[:200]})")

    def _budget(self, n: int) -> None:
        """Count ``n`` more inflated bytes against the document's ratio rule."""
        self.inflated += n
        lim = self.limits
        if self.inflated > lim.max_ratio_floor and self.inflated > lim.max_compression_ratio * self.size:
            raise ArchiveError(f"images would inflate to over {self.inflated} bytes from a {self.size}-byte PDF "
                               f"(ratio over {lim.max_compression_ratio}:1): a compression bomb; the rest not read",
                               code="archive-bomb")

    def _coded(self, image: Any, filters: list[str], base: str, width: int, height: int) -> Member | None:
        """A JPEG or JPEG 2000 image: its own bytes (inside any other filters)."""
        jpeg = filters[-1] != "/JPXDecode"
        if len(filters) == 1:
            data = image._data  # noqa: SLF001 - the bytes as stored (decrypted)
            if jpeg and self._carved(data):
                return None  # cut out as it is by the carver: carved@OFFSET.jpg
        else:
            limit = min(self.limits.max_image_bytes, max(8 * len(image._data), 1 << 20))  # noqa: SLF001
            with _config(limit):
                data = image.get_data()
        if len(data) > self.limits.max_image_bytes:
            return Member(name=f"{base}.jpg", problem="image over the image size limit; not read",
                          problem_code="too-large", independent=True)
        ext = "jpg" if jpeg else "jp2"
        return Member(name=f"{base}.{ext}", size=len(data), open=lambda d=data: io.BytesIO(d),  # type: ignore[misc]
                      independent=True)

    def _carved(self, data: bytes) -> bool:
        """Whether the carver cut these JPEG bytes out already: hashed as far as it cuts
        (to the end marker after the first scan; a stream may run on past it)."""
        from .carve import _jpeg_extent

        n = _jpeg_extent(io.BytesIO(data), 0, len(data), len(data)) if data.startswith(b"\xff\xd8\xff") else None
        return n is not None and hashlib.sha256(data[:n]).hexdigest() in self.carved

    def _samples(self, image: Any, filters: list[str], width: int, height: int, bpc: int, colors: int | None,
                 expected: int) -> bytes | str:
        """The image's samples, every filter undone (16 bits narrowed to their high byte),
        or why they were not decoded."""
        parms = _parms(image, len(filters) - 1) if filters else {}
        predictor = _int(parms, "/Predictor", 1) or 1
        if filters == ["/FlateDecode"] and predictor >= 10 and colors and not image.get("/ImageMask"):
            samples = _unpredict(image, width, height, bpc, colors)
            if samples is not None:
                return samples  # already 8 bits when 16
        slow = bool(set(filters) & _SLOW) or predictor != 1
        if slow and expected > _SLOW_BYTES:
            return (f"{'/'.join(f.lstrip('/') for f in filters)} image of {width}x{height}: over the "
                    f"{_SLOW_BYTES} bytes assay decodes with these filters; not decoded")
        with _config(expected + 4096, width * height, len(image._data)):  # noqa: SLF001
            samples = image.get_data()
        return samples[0::2] if bpc == 16 else samples

    def _pixels(self, image: Any, filters: list[str], base: str, width: int, height: int) -> Member:
        bpc = 1 if image.get("/ImageMask") else (_int(image, "/BitsPerComponent", 8) or 8)
        colors = 1 if image.get("/ImageMask") else _components(image.get("/ColorSpace"))
        if bpc not in (1, 2, 4, 8, 16):
            raise ValueError(f"{bpc} bits per component")
        expected = height * (math.ceil(width * (colors or 4) * bpc / 8) + 1)
        if expected > self.limits.max_image_bytes:
            return Member(name=f"{base}.png", problem=f"image of {width}x{height} would decode to over "
                          f"{self.limits.max_image_bytes} bytes; not decoded", problem_code="too-large", independent=True)
        self._budget(expected)
        drop = {"/SMask", "/Mask", "/SMaskInData"}  # transparency: the picture is its colour samples
        img = None
        if filters and filters[-1] in ("/CCITTFaxDecode", "/CCF"):  # pypdf wraps fax data in a TIFF for Pillow
            source = _without(image, drop, image._data, decoded=False)  # noqa: SLF001
        else:
            samples = self._samples(image, filters, width, height, bpc, colors, expected)
            if isinstance(samples, str):
                return Member(name=f"{base}.png", problem=samples, problem_code="too-large", independent=True)
            img = _direct(image, samples, width, height)
            # Else handed back to pypdf as Flate data: the path of its image code that
            # applies every colour space (its unfiltered or ASCIIHex indexed images come out black)
            source = _without(image, drop | {"/Filter", "/DecodeParms", "/DP"}, b"", decoded=False)
            if img is None:
                from pypdf.generic import NameObject, NumberObject

                source._data = zlib.compress(samples, 1)  # noqa: SLF001
                source[NameObject("/Filter")] = NameObject("/FlateDecode")
                if bpc == 16:
                    source[NameObject("/BitsPerComponent")] = NumberObject(8)
        if img is None:
            with _config(expected + 4096, width * height):
                try:
                    img = source.decode_as_image({"compress_level": 1})  # what pypdf saves and opens again
                except TypeError:  # pragma: no cover - pypdf < 5: no parameters
                    img = source.decode_as_image()
            if img is None:
                raise ValueError("pypdf found no image in it")
        data, ext = _encoded(img)
        return Member(name=f"{base}.{ext}", size=len(data), open=lambda d=data: io.BytesIO(d),  # type: ignore[misc]
                      independent=True)


def pdf_image_members(path: Path, limits: Limits, carved_jpegs: set[str]) -> Iterator[Member]:
    """Members for the images of the PDF at ``path`` that the carver did not cut out as
    they are (``carved_jpegs``: SHA-256 of the JPEGs it did). Raises ArchiveError when the
    document cannot be read (any further); members already handed out keep their records."""
    yield from _Walk(path, limits, carved_jpegs).members()
