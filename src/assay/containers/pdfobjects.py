"""Small helpers over a PDF's objects, shared by the readers of its images (pdfimages.py)
and of its inline images (pdfinline.py).

pypdf kept quiet (``quiet_pypdf``) and bounded (``_config``: its output limits, no
external decoder); an object's names, filters, decode parameters, colour components and
integers read as viewers read them, references followed; a stream copied without some of
its keys (``_without``); PNG predictors undone by Pillow instead of pypdf's Python loops
(``_png``, ``_unpredict``); 8-bit grey or RGB samples made a picture straight away
(``_direct``) and a picture encoded as the file that is scanned (``_encoded``, PNG or TIFF).
And the byte searches over the raw file: a PDF name in any spelling (``_esc``), the places
where an image's or an attached file's dictionary may be (``_IMAGE_HINT``, ``_candidates``).

Nothing here imports the readers: they import it.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any


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
