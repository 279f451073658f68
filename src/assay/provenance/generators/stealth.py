""""Stealth pnginfo": generation metadata hidden in pixel least-significant bits.

Convention shared by NovelAI (which writes it on every image), the A1111/Forge
"stealth pnginfo" extension and the readers that follow them:

- Pixels are visited column by column (x outer, y inner: down the first column,
  then the next).
- Alpha variant: one bit per pixel, the alpha LSB. RGB variant: three bits per
  pixel, the R, G and B LSBs in that order.
- Bits form bytes most-significant bit first. The stream is a 15-byte magic
  (``stealth_pnginfo`` plain / ``stealth_pngcomp`` gzip for alpha,
  ``stealth_rgbinfo`` / ``stealth_rgbcomp`` for RGB), a 32-bit big-endian payload
  length *in bits*, then the payload (UTF-8, gzip-compressed for ``*comp``).

Only lossless containers (PNG, WebP) can carry it. The declared length is checked
against the bits the image can hold before anything is read, so a forged length
cannot allocate.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...errors import DecodeError
from ..context import ImageContext

if TYPE_CHECKING:
    from PIL import Image

MAGIC_LEN = 15
HEADER_BITS = MAGIC_LEN * 8 + 32
MAGICS = {
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}


@dataclass(frozen=True)
class StealthPayload:
    mode: str  # "alpha" | "rgb"
    compressed: bool
    magic: str
    text: str
    declared_bits: int
    capped: bool = False  # inflated text exceeded Limits.max_text_chunk


def read_stealth(ctx: ImageContext) -> list[StealthPayload]:
    """Every stealth payload in the image (alpha first, then RGB); memoized.

    Raises DecodeError when a magic is present but the payload is unusable
    (length beyond the image, corrupt gzip, pixels that cannot be decoded).
    """
    return ctx.memo("stealth", lambda: _read(ctx))


def _read(ctx: ImageContext) -> list[StealthPayload]:
    if ctx.format not in ("png", "webp"):
        return []
    decoded = ctx.decoded_image()
    if decoded is not None and decoded.mode in ("RGB", "RGBA"):
        # Pixels already decoded (a scan's hashing step): the first column says
        # whether there is a magic, without copying the whole image.
        w, h = decoded.size
        if w * h * 3 < HEADER_BITS or _no_magic(lambda rows: _decoded_column(decoded, rows)):
            return []
    elif ctx.format == "png":
        # Answer from the chunks when possible: opening with Pillow costs more
        # than everything else here on small files.
        ihdr = _png_ihdr(ctx)
        if ihdr is not None and ihdr[0] * ihdr[1] * 3 < HEADER_BITS:
            return []
    if cannot_carry(ctx):
        return []
    arr = ctx.pixels()
    out: list[StealthPayload] = []
    planes: list[tuple[str, np.ndarray]] = []
    if arr.shape[2] == 4:
        planes.append(("alpha", arr[:, :, 3:4]))
    planes.append(("rgb", arr[:, :, :3]))
    for mode, plane in planes:
        payload = _read_plane(ctx, mode, plane)
        if payload is not None:
            out.append(payload)
    return out


def _grey_without_alpha(mode: str, info: dict) -> bool:
    # Read as RGB, a grey pixel gives three equal low bits in a row, and every magic
    # starts with "s" (0x73: bits 0, 1, 1): no magic can be in such pixels.
    return mode in ("1", "L", "I", "I;16", "F") and "transparency" not in info and all(
        len({(m[0] >> (7 - i)) & 1 for i in range(3)}) > 1 for m in MAGICS)


def cannot_carry(ctx: ImageContext) -> bool:
    """True when this image cannot hold stealth data, found without decoding pixels."""
    if ctx.format not in ("png", "webp"):
        return True
    im = ctx.pil()
    w, h = im.size
    if w * h * 3 < HEADER_BITS or _grey_without_alpha(im.mode, im.info):
        return True
    return ctx.format == "png" and _png_has_no_magic(ctx)


def _png_has_no_magic(ctx: ImageContext) -> bool:
    """True when a cheap look at the first pixel column rules out any magic.

    The magic sits in the first 120 pixels of column 0 (alpha) or the first 40
    (RGB), so for the common PNG (8-bit RGB/RGBA, not interlaced, tall enough)
    inflating the first rows suffices; a full decode is needed only when a magic
    is there. False (decode fully) whenever the shortcut does not apply.
    """
    return _no_magic(lambda rows: png_first_column(ctx, rows))


def _decoded_column(im: Image.Image, rows: int) -> np.ndarray | None:
    """Column 0 of the first ``rows`` rows of a decoded RGB/RGBA image (rows x channels)."""
    if im.size[1] < rows:
        return None
    return np.asarray(im.crop((0, 0, 1, rows)))[:, 0, :]


def _no_magic(first_column: Callable[[int], np.ndarray | None]) -> bool:
    """True when column 0 (from ``first_column(rows)``, None when it cannot say)
    rules out every magic."""
    alpha_rows, rgb_rows = MAGIC_LEN * 8, MAGIC_LEN * 8 // 3
    col = first_column(alpha_rows)
    if col is None:
        col = first_column(rgb_rows)
        if col is None or col.shape[1] == 4:
            return False  # too short to rule out an alpha magic this way
    magics = [bytes(np.packbits(col[:rgb_rows, :3].reshape(-1) & 1))]
    if col.shape[1] == 4:
        magics.append(bytes(np.packbits(col[:alpha_rows, 3] & 1)))
    return not any(m in MAGICS for m in magics)


def _png_ihdr(ctx: ImageContext) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) from IHDR, or None."""
    chunks = ctx.png_chunks()
    if not chunks or chunks[0].type != "IHDR" or chunks[0].length != 13:
        return None
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ctx.chunk_data(chunks[0]))
    return w, h, depth, color, interlace


def png_first_column(ctx: ImageContext, rows: int) -> np.ndarray | None:
    """Pixels (rows x channels) of column 0 of the first ``rows`` rows of an 8-bit,
    non-interlaced RGB/RGBA PNG without inflating more than those rows; None when
    the file is of another kind or damaged (callers then decode it in full).

    Column 0 is cheap to unfilter: it has no left neighbour, so Sub is a no-op and
    Average and Paeth reduce to predictions from the byte above.
    """
    ihdr = _png_ihdr(ctx)
    if ihdr is None:
        return None
    w, h, depth, color, interlace = ihdr
    chunks = ctx.png_chunks()
    if depth != 8 or interlace != 0 or color not in (2, 6) or h < rows:
        return None
    if any(c.type == "tRNS" for c in chunks):
        return None  # alpha comes from tRNS; leave such files to the full decoder
    bpp = 3 if color == 2 else 4
    stride = 1 + w * bpp
    need = rows * stride
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for c in chunks:
            if c.type != "IDAT":
                continue
            out += inflater.decompress(ctx.chunk_data(c), need - len(out))
            if len(out) >= need:
                break
    except zlib.error:
        return None
    if len(out) < need:
        return None
    # Only the filter byte and the first pixel of each row matter; plain ints
    # beat numpy on 120 tiny rows.
    heads = [out[r * stride : r * stride + 1 + bpp] for r in range(rows)]
    above = [0] * bpp
    col = []
    for head in heads:
        ftype, raw = head[0], head[1:]
        if ftype in (0, 1):  # None, Sub
            above = list(raw)
        elif ftype in (2, 4):  # Up, Paeth (left = upper-left = 0: predicts "above")
            above = [(v + u) & 0xFF for v, u in zip(raw, above, strict=True)]
        elif ftype == 3:  # Average of left (0) and above
            above = [(v + u // 2) & 0xFF for v, u in zip(raw, above, strict=True)]
        else:
            return None
        col.append(above)
    return np.array(col, np.uint8)


def _bits(plane: np.ndarray, start: int, count: int) -> bytes:
    """``count`` bits (a multiple of 8) from bit ``start`` of the column-major stream."""
    h, _, c = plane.shape
    per_col = h * c
    first_col, last_col = start // per_col, (start + count + per_col - 1) // per_col
    cols = plane[:, first_col:last_col, :]
    # Column-major order: transpose to (x, y, channel) before flattening.
    stream = np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(-1) & 1
    offset = start - first_col * per_col
    return np.packbits(stream[offset : offset + count]).tobytes()


def _read_plane(ctx: ImageContext, mode: str, plane: np.ndarray) -> StealthPayload | None:
    h, w, c = plane.shape
    capacity = h * w * c
    if capacity < HEADER_BITS:
        return None
    magic = _bits(plane, 0, MAGIC_LEN * 8)
    found = MAGICS.get(magic)
    if found is None or found[0] != mode:
        return None
    compressed = found[1]
    declared = int.from_bytes(_bits(plane, MAGIC_LEN * 8, 32), "big")
    room = capacity - HEADER_BITS
    name = magic.decode("ascii")
    if declared > room:
        raise DecodeError(
            ctx.path,
            f"{mode} stealth data ({name}) declares {declared} bits "
            f"but the image holds only {room} after the header",
        )
    nbytes = declared // 8
    cap = ctx.limits.max_text_chunk
    if nbytes > cap and not compressed:
        nbytes, capped = cap, True
    else:
        capped = False
    raw = _bits(plane, HEADER_BITS, nbytes * 8)
    if compressed:
        raw, more = _gunzip_bounded(ctx, raw, cap, name)
        capped = capped or more
    text = raw.decode("utf-8", "replace")
    if capped:
        ctx.note_problem(f"{mode} stealth data longer than {cap} bytes: capped")
    return StealthPayload(mode, compressed, name, text, declared, capped)


def _gunzip_bounded(ctx: ImageContext, data: bytes, cap: int, name: str) -> tuple[bytes, bool]:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, cap)
    except zlib.error as exc:
        raise DecodeError(ctx.path, f"stealth data ({name}): gzip stream corrupt ({exc})") from exc
    if d.unconsumed_tail:
        return out, True
    if not d.eof:
        raise DecodeError(ctx.path, f"stealth data ({name}): gzip stream truncated")
    return out, False
