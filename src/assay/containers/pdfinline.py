"""Inline images (``BI ... ID <data> EI``, a picture written into a content stream itself):
the pre-check that tells which streams of a document may hold one, and the readers of one.

To learn that a document holds none without parsing every page, the bytes are searched
first (``_inline_hints``): the BI operator (``_bi_at``) in the raw file and in every Flate
stream inflated (PNG predictors undone, Flate in Flate inflated again, bounded); only the
streams where it is are parsed. A filter that would hide it from that search (ASCIIHex,
ASCII85, LZW, RunLength, Brotli, in any spelling), a filter not given as names (a string
pypdf reads as the name it spells, a reference: ``_odd_filter``), encryption or a
predictor the search cannot undo make every stream be read with pypdf instead.

Where pypdf's reading of an image fails, its end is found as a viewer finds it: the end
of its zlib stream (``_flate_end``) or of its RunLength runs (``_rl_end``). An inline
image's settings, abbreviated keys and values written out (``_INLINE_KEYS``,
``_INLINE_VALUES``) and a colour space named in the resources looked up, become an image
stream decoded as an image XObject is (``_inline_image``). The walk over a document that
uses these is in pdfimages.py.
"""

from __future__ import annotations

import io
import math
import re
import time
import zlib
from pathlib import Path
from typing import Any

from .pdfobjects import _END, _GAP, _IMAGE_HINT, _esc, _png, _resolved

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
