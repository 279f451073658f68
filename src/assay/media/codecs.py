"""Direct decoders that give exactly Pillow's pixels at less cost (media/decode.py uses them).

* Still WebP: Pillow decodes every WebP through libwebp's animation decoder (a canvas
  cleared, RGBA written into it, copied into a Python bytes object, then unpacked into the
  image: ~2x libwebp's own decode). ``webp_image`` calls the very libwebp Pillow loaded,
  through its simple API, into one buffer that becomes the Pillow image without a copy.
  The pixels are the same (libwebp's own upsampling and conversion either way);
  tests/test_media_codecs.py compares.

* PNG: Pillow inflates the image data with zlib as it unfilters it, and zlib's inflate is
  most of a PNG's decode (~70% on generator outputs). ``png_direct`` has Pillow's own load
  run with a decoder that inflates with ISA-L (``isal``, ~2.3x zlib here) and hands the
  inflated bytes to Pillow's PNG decoder as stored (uncompressed) deflate blocks: Pillow
  still unfilters, unpacks and reads every chunk after the image data (EXIF there, text),
  so the image and its info are those of Pillow's own load.

The WebP decoder returns None, and the PNG decoder raises NotExact during the load, when
they cannot give Pillow's result with certainty (the library is not reachable, the file is
animated, interlaced, damaged or shorter than its header says): the caller then decodes with
Pillow alone, whose errors are the ones a user sees. One difference can remain, on damaged
files only: a malformed deflate stream that zlib refuses but ISA-L reads (two inflaters need
not agree on every malformed stream) is hashed where Pillow would have refused it.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageFile

try:
    from isal import isal_zlib
except ImportError:  # an install without it decodes PNG with Pillow alone
    isal_zlib = None

_webp: ctypes.CDLL | None = None
_webp_looked = False
# libwebp-<hash>.so.7 in Pillow's wheels, libwebp.so.7 from a distribution; not libwebpmux,
# libwebpdemux, libsharpyuv
_LIBWEBP = re.compile(r"^libwebp(-[0-9a-f]+)?\.so(\.\d+)*$")


def _pillow_libwebp() -> ctypes.CDLL | None:
    """The libwebp shared library Pillow's WebP plugin runs on (found among the libraries
    this process has mapped, Linux only), checked to be the version Pillow reports; None
    when there is not exactly one such library."""
    try:
        import PIL
        from PIL import _webp as pil_webp
    except ImportError:
        return None
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            mapped = {parts[5] for line in f if len(parts := line.split(maxsplit=5)) == 6}
    except OSError:
        return None
    found = sorted(p.strip() for p in mapped if _LIBWEBP.match(os.path.basename(p.strip())))
    # Another package (FFmpeg's, OpenCV's) may bring its own copy: Pillow's wheel keeps its
    # libraries in pillow.libs beside the PIL package.
    wheel_libs = os.path.join(os.path.dirname(os.path.dirname(PIL.__file__)), "pillow.libs")
    ours = [p for p in found if os.path.dirname(p) == wheel_libs]
    if len(ours) == 1:
        found = ours
    if len(found) != 1:
        return None
    try:
        lib = ctypes.CDLL(found[0])
        lib.WebPGetDecoderVersion.restype = ctypes.c_int
        lib.WebPGetDecoderVersion.argtypes = []
        v = lib.WebPGetDecoderVersion()
        if f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}" != getattr(pil_webp, "webpdecoder_version", None):
            return None
        lib.WebPGetInfo.restype = ctypes.c_int
        lib.WebPGetInfo.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int),
                                    ctypes.POINTER(ctypes.c_int)]
        lib.WebPDecodeRGBAInto.restype = ctypes.c_void_p
        lib.WebPDecodeRGBAInto.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                           ctypes.c_size_t, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return lib


def _libwebp() -> ctypes.CDLL | None:
    global _webp, _webp_looked
    if not _webp_looked:
        _webp, _webp_looked = _pillow_libwebp(), True
    return _webp


def webp_rgba(data: bytes, width: int, height: int) -> np.ndarray | None:
    """The (height, width, 4) RGBA pixels of a still WebP, as Pillow's decode gives them
    (alpha 255 where the file has none), or None (see the module's docstring). The caller
    has checked the size against its limits."""
    lib = _libwebp()
    if lib is None:
        return None
    w, h = ctypes.c_int(), ctypes.c_int()
    if not lib.WebPGetInfo(data, len(data), ctypes.byref(w), ctypes.byref(h)) or (w.value, h.value) != (width, height):
        return None
    out = np.empty((height, width, 4), np.uint8)
    # NULL for an animation (the simple API decodes stills only) or damaged data
    if not lib.WebPDecodeRGBAInto(data, len(data), out.ctypes.data, out.nbytes, width * 4):
        return None
    return out


def _mapped(rgba: np.ndarray, mode: str) -> Image.Image:
    """A Pillow image of ``mode`` ("RGB" or "RGBA") over the (h, w, 4) buffer, not copied.
    Pillow keeps an RGB pixel in 4 bytes, the fourth 255: what libwebp writes as the alpha
    of an image without any, so the buffer is already laid out as Pillow's own RGB image."""
    size = (rgba.shape[1], rgba.shape[0])
    if mode == "RGBA":
        return Image.frombuffer("RGBA", size, rgba, "raw", "RGBA", 0, 1)
    try:  # what Image.frombuffer does for its mappable modes; RGB is not among them
        im = Image.Image()._new(Image.core.map_buffer(rgba, size, "raw", 0, ("RGB", 0, 1)))
        im.readonly = 1
    except (AttributeError, TypeError, ValueError):  # a Pillow without it: one copy
        return Image.frombuffer("RGBX", size, rgba, "raw", "RGBX", 0, 1).convert("RGB")
    return im


def webp_image(data: bytes, width: int, height: int, mode: str) -> Image.Image | None:
    """A still WebP decoded as Pillow would (``mode``: the mode Pillow opened it in, "RGB" or
    "RGBA"), or None."""
    if mode not in ("RGB", "RGBA"):
        return None
    rgba = webp_rgba(data, width, height)
    return None if rgba is None else _mapped(rgba, mode)


# -- PNG ----------------------------------------------------------------------------------

_PNG_DECODER = "assay_png_isal"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by IHDR colour type
# Inflated bytes handed to Pillow at a time: the file's image data is never held inflated
# whole beside the image (a 49-MP upload would need 147 MB more).
_PIECE = 1 << 20
# Compressed bytes offered to the inflater at a time: what it leaves when a piece is full
# comes back as a copy (unconsumed_tail), which over the whole stream grew as its square.
_FEED = 1 << 18
_STORED_MAX = 65535  # bytes in one stored deflate block
# Image data that inflates more than this many times its file's size (flat graphics,
# screenshots) is left to Pillow: zlib inflates it cheaply, and the stored blocks' extra copy
# costs more than ISA-L saves (1 MP: 5.5 -> 6.9 ms at 69x; even at ~8x; 9.5 -> 7.9 at 3.5x).
_MAX_RATIO = 8
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KB window, no dictionary (a multiple of 31)


class NotExact(Exception):
    """Raised from inside Pillow's load: this PNG must be decoded by Pillow alone."""


def _stored_blocks(raw: bytes, first: bool) -> bytes:
    """``raw`` as non-final stored deflate blocks (after the zlib header if ``first``).
    Pillow's decoder stops at the image's last row, before any end of stream."""
    view = memoryview(raw)
    parts = [_ZLIB_HEADER] if first else []
    for start in range(0, len(raw), _STORED_MAX):
        block = view[start:start + _STORED_MAX]
        parts += (struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF), block)
    return b"".join(parts)


class _IsalPngDecoder(ImageFile.PyDecoder):
    """Pillow decoder (see png_direct) for one non-interlaced PNG image."""

    _pulls_fd = True  # reads nothing from the file: ImageFile.load calls decode once

    def init(self, args: tuple[Any, ...]) -> None:
        self.rawmode, self.data, self.offset, self.expected = args[:4]
        self.extra = args[4:]  # Pillow's decoder config: interlacing, never set here

    def decode(self, buffer: Any) -> tuple[int, int]:
        if self.extra or self.im is None:
            raise NotExact("unexpected decoder configuration")
        feed = self._image_data()
        unzip = Image._getdecoder(self.mode, "zip", self.rawmode)
        unzip.setimage(self.im, self.state.extents())
        inflate = isal_zlib.decompressobj()
        left, first, tail = self.expected, True, b""
        try:
            while left > 0:
                if not tail:
                    tail = next(feed, b"")
                    if not tail:
                        raise NotExact("image data ends before the last row")
                try:
                    raw = inflate.decompress(tail, min(_PIECE, left))
                except isal_zlib.error as exc:
                    raise NotExact(str(exc)) from exc
                tail = inflate.unconsumed_tail
                if not raw:
                    if inflate.eof:  # the stream ends before the image does
                        raise NotExact("image data ends early")
                    continue
                left -= len(raw)
                done, err = unzip.decode(_stored_blocks(raw, first))
                first = False
                if done < 0:  # the last row, or a row Pillow refuses (err < 0)
                    if left and err >= 0:
                        raise NotExact("rows end before the image data")
                    return -1, err
        finally:
            unzip.cleanup()
        raise NotExact("image data ends before the last row")

    def _image_data(self) -> Iterator[memoryview]:
        """The consecutive IDAT chunks from the first one, what Pillow's own load would
        read (it stops at the first chunk of another type), in slices of at most _FEED."""
        data, pos = memoryview(self.data), self.offset - 8
        while pos + 8 <= len(data) and data[pos + 4:pos + 8] == b"IDAT":
            length = int.from_bytes(data[pos:pos + 4], "big")
            if pos + 8 + length > len(data):
                raise NotExact("image data truncated")
            for start in range(pos + 8, pos + 8 + length, _FEED):
                yield data[start:min(start + _FEED, pos + 8 + length)]
            pos += 12 + length


def png_direct(im: Image.Image, data: bytes) -> bool:
    """Have Pillow's load of this opened PNG (``im``, from ``data``) inflate with ISA-L.
    False, and ``im`` untouched, where that does not apply (an APNG, an interlaced image,
    image data compressed more than _MAX_RATIO-fold, no ``isal``). A load then raising NotExact leaves ``im`` unusable: open it again."""
    tiles = getattr(im, "tile", ())  # what is left to decode: nothing once loaded
    if isal_zlib is None or getattr(im, "n_frames", 1) != 1 or im.info.get("interlace") or len(tiles) != 1:
        return False
    tile = tiles[0]
    name, extents, offset, rawmode = tile[0], tile[1], tile[2], tile[3]
    if name != "zip" or tuple(extents) != (0, 0, *im.size) or not isinstance(rawmode, str) or offset < 16:
        return False
    if data[12:16] != b"IHDR" or len(data) < 29:
        return False
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    if (width, height) != im.size or colour not in _PNG_CHANNELS:
        return False
    expected = height * (1 + (width * _PNG_CHANNELS[colour] * depth + 7) // 8)
    if expected > _MAX_RATIO * len(data):
        return False
    args = (rawmode, data, offset, expected)
    im.tile = [tile._replace(codec_name=_PNG_DECODER, args=args) if hasattr(tile, "_replace")
               else (_PNG_DECODER, extents, offset, args)]
    return True


Image.register_decoder(_PNG_DECODER, _IsalPngDecoder)
