"""Image decoding for hashing: header-first limits, whitelisted formats, two pixel paths.

Every failure becomes an assay error naming the file and the reason. Decoding runs
from bytes already in memory (the caller read the file once for MD5/SHA-256 too).

* ``reference_pixels``: the full image as python-threatexchange feeds PDQ
  (``Image.open``, no EXIF transpose, modes other than RGB/L converted to RGB).
* ``reduced_luma``: a small luma plane plus how many original pixels each of its
  pixels stands for. JPEGs are decoded by libjpeg at 1/2, 1/4 or 1/8 scale (luma
  only: JPEG's Y channel uses PDQ's Rec. 601 weights); other formats are decoded
  fully and shrunk by whole-block averages. Images too small to shrink are decoded
  fully, which makes the fast hash equal to the reference one there.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..config import Limits
from ..errors import AssayError, DecodeError, TooLarge, UnsupportedFormat
from ..sniff import (
    HEAD_BYTES,
    damaged_pixels,
    libtiff_reason,
    load_pillow_plugin,
    quiet_pillow,
    sniff_bytes,
)
from . import codecs
from .pdq import luma_of

# Our format name -> Pillow's. Only these parsers ever see untrusted bytes: Pillow
# also knows formats (EPS runs Ghostscript, for one) that have no place here.
FORMATS: dict[str, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "tiff": "TIFF",
    "bmp": "BMP",
    "avif": "AVIF",
    "heif": "HEIF",
    "jxl": "JXL",
    "jp2": "JPEG2000",
    "psd": "PSD",
    "qoi": "QOI",
    "dds": "DDS",
    "icns": "ICNS",
    "ppm": "PPM",
    "tga": "TGA",
    "pcx": "PCX",
}

# Fast-path reduction, chosen on the shared PDQ vectors and generated photos (see
# bench/RESULTS.md, image hashing). Images whose short side is under REDUCE_FROM are decoded
# fully: there PDQ's own filter is only a few pixels wide and any shrinking first
# moves bits (up to 48 on 256-px textures), while a full decode costs little.
REDUCE_FROM = 512
# JPEG: libjpeg's 1/8 scale decodes DC coefficients only and is ~4x faster than
# 1/4 or 1/2, so take the largest scale leaving at least this many pixels on the
# short side (~1.25 per PDQ cell; the weights account for each block exactly).
JPEG_MIN_SIDE = 80
# Other formats decode fully anyway; shrinking to ~4 pixels per PDQ cell only
# saves work in the luma and filter steps, at no measurable cost in bits.
REDUCE_TARGET = 256

_EXIF_ORIENTATION = 0x0112
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})

_heif_state: bool | None = None


def _heif_available() -> bool:
    """Register pillow-heif's opener on first use; False when it is not installed."""
    global _heif_state
    if _heif_state is None:
        from ..sniff import register_heif_opener

        _heif_state = register_heif_opener()
    return _heif_state




@dataclass
class OpenedImage:
    """An image whose header passed the limits; pixels not decoded yet."""

    image: Image.Image
    path: str
    format: str  # our name: "jpeg", "png", ...
    width: int
    height: int
    mode: str  # as stored, before any conversion
    loaded: bool = False  # the pixels are decoded: in ``image`` or ``direct`` (see full_image)
    data: bytes = b""  # the file's bytes
    # A still WebP decoded by libwebp directly (media/codecs.py), in its stored mode, in
    # place of ``image``'s own decode; ``image`` still answers for the metadata (EXIF, frames).
    direct: Image.Image | None = None
    _direct_tried: bool = False


def _fail(path: str, fmt: str, exc: BaseException, libtiff: list[str] | None = None) -> AssayError:
    if isinstance(exc, AssayError):
        return exc
    if isinstance(exc, Image.DecompressionBombError):
        return TooLarge(path, f"{fmt} image exceeds Pillow's decompression-bomb limit: {exc}")
    if isinstance(exc, MemoryError):
        return TooLarge(path, f"not enough memory to decode this {fmt} image")
    reason = str(exc) or type(exc).__name__
    # Pillow's "decoder error -2" says nothing; libtiff said why
    return DecodeError(path, f"cannot decode {fmt} image: {reason}{libtiff_reason(libtiff or [])}")


def refuse_damaged(path: str, fmt: str, libtiff: list[str]) -> None:
    """Raise DecodeError when libtiff reported, during a decode Pillow completed, that
    pixel data could not be read or decoded: what it returned is partly filled in, and a
    hash of it would be a hash of pixels that are not in the file."""
    if (damage := damaged_pixels(libtiff)) is not None:
        raise DecodeError(path, f"cannot decode {fmt} image: damaged image data (libtiff: {damage})")


def open_image(data: bytes, path: str, limits: Limits) -> OpenedImage:
    """Identify the format by magic bytes and read only the header; enforce limits."""
    if len(data) == 0:
        raise DecodeError(path, "empty file")
    if len(data) > limits.max_image_bytes:
        raise TooLarge(
            path, f"{len(data)} bytes exceeds the image limit of {limits.max_image_bytes} bytes"
        )
    sniffed = sniff_bytes(data[:HEAD_BYTES], len(data))
    fmt = sniffed.format
    if sniffed.kind != "image" or fmt not in FORMATS:
        raise UnsupportedFormat(
            path,
            "not a supported image (JPEG, PNG, WebP, GIF, TIFF, BMP, AVIF, HEIC, JPEG XL, JPEG 2000, "
            "PSD, QOI, DDS, ICNS, PBM/PGM/PPM, TGA, PCX)",
        )
    if fmt == "heif" and not _heif_available():
        raise UnsupportedFormat(
            path, "HEIC/HEIF image", hint="install the pillow-heif package to hash HEIC files"
        )
    if fmt == "jxl":
        _check_jxl(data, path, limits)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone switched Pillow to fill missing data with gray; a hash of that
        # would be a hash of pixels that are not in the file.
        raise DecodeError(path, "Pillow's LOAD_TRUNCATED_IMAGES is on; refusing to hash")
    load_pillow_plugin(fmt)
    try:
        with quiet_pillow():
            im = Image.open(io.BytesIO(data), formats=[FORMATS[fmt]])
    except UnidentifiedImageError:
        raise DecodeError(path, f"corrupt {fmt} header: Pillow cannot identify the image") from None
    except Exception as exc:
        if fmt == "png" and png_metadata_refused(exc) and (stripped := png_without_metadata(data)) is not None:
            opened = open_image(stripped, path, limits)  # the pixels, without the padding
            return opened
        raise _fail(path, fmt, exc) from exc
    width, height = im.size
    if width <= 0 or height <= 0:
        raise DecodeError(path, f"image has zero pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise TooLarge(
            path,
            f"{width}x{height} = {width * height} pixels exceeds the limit of "
            f"{limits.max_pixels} pixels (possible decompression bomb)",
        )
    return OpenedImage(im, path, fmt, width, height, im.mode, data=data)


def _check_jxl(data: bytes, path: str, limits: Limits) -> None:
    """JPEG XL: the reader decodes the whole image when Pillow opens it, so the declared
    size is read from the codestream and checked against the limits first."""
    from ..sniff import register_jxl_opener
    from .jxl import jxl_size

    if not register_jxl_opener():
        raise UnsupportedFormat(path, "JPEG XL image", hint="install the pillow-jxl-plugin package to hash "
                                "JPEG XL files")
    size = jxl_size(data)
    if size is None:
        raise DecodeError(path, "corrupt JPEG XL header: no image size could be read")
    width, height = size
    if width * height > limits.max_pixels:
        raise TooLarge(path, f"{width}x{height} = {width * height} pixels exceeds the limit of "
                       f"{limits.max_pixels} pixels (possible decompression bomb)")


# Grey modes that the reduced path turns into "L" (1 byte a pixel) rather than RGB
# (3): PDQ's luma of a grey pixel is its value either way, and a 1-bit bomb of 169 MP
# then costs 2 x 169 MB to decode instead of 4 x 169 MB.
_GREY = frozenset({"1", "LA", "La"})


def decode_pixels(opened: OpenedImage) -> int:
    """How many pixels ``reduced_luma`` decodes for this image: JPEGs at their reduced
    scale, other formats in full. What a service weighs an upload by before decoding."""
    w, h = opened.width, opened.height
    if opened.format == "jpeg":
        scale = _jpeg_scale(w, h)
        return -(-w // scale) * -(-h // scale)
    return w * h


def _direct(opened: OpenedImage) -> Image.Image | None:
    """A still WebP decoded by libwebp directly (once), or None: Pillow decodes it."""
    if not opened._direct_tried:
        opened._direct_tried = True
        if opened.format == "webp" and frame_count(opened) == 1:
            opened.direct = codecs.webp_image(opened.data, opened.width, opened.height, opened.mode)
            if opened.direct is not None:
                # as Pillow's load leaves it: a still frame starts at 0 and lasts 0 ms
                opened.direct.info = {**opened.image.info, "timestamp": 0, "duration": 0}
                opened.loaded = True
    return opened.direct


def _load(opened: OpenedImage, im: Image.Image, grey: bool = False, reduce: int = 1) -> Image.Image:
    """``im`` (``opened.image`` or a draft of it) decoded, in "L" or "RGB", shrunk by
    ``reduce`` x ``reduce`` block averages (Image.reduce)."""
    libtiff: list[str] = []
    try:
        with quiet_pillow() as libtiff:
            if im is opened.image and (direct := _direct(opened)) is not None:
                im = direct
            elif im is opened.image and opened.format == "png" and codecs.png_direct(im, opened.data):
                try:
                    im.load()
                except codecs.NotExact:  # Pillow alone, on a fresh copy: its pixels or its error
                    im = opened.image = Image.open(io.BytesIO(opened.data), formats=["PNG"])
            im.load()
            refuse_damaged(opened.path, opened.format, libtiff)
            if im is opened.image:
                opened.loaded = True
            if grey and im.mode in _GREY:
                im = im.convert("L")
            elif im.mode == "RGBA" and reduce > 1:
                # Reduced before the conversion, which then has a quarter of the pixels or
                # fewer. Not by Image.reduce, which premultiplies by alpha: the core reduces
                # each band alone, with the same sums and rounding as an RGB image's bands.
                im = im._new(im.im.reduce((reduce, reduce), (0, 0, *im.size))).convert("RGB")
                reduce = 1
            elif im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            if reduce > 1:
                im = im.reduce(reduce)
    except Exception as exc:
        if (im is opened.image and opened.format == "png" and png_metadata_refused(exc)
                and (stripped := png_without_metadata(opened.data)) is not None):
            # text or a profile after the image data, past Pillow's limits: the same
            # pixels from the file without them
            try:
                with quiet_pillow():
                    opened.image = Image.open(io.BytesIO(stripped), formats=["PNG"])
            except Exception as again:
                raise _fail(opened.path, opened.format, again) from again
            opened.data = stripped
            return _load(opened, opened.image, grey, reduce)
        raise _fail(opened.path, opened.format, exc, libtiff) from exc
    return im


# Pillow refuses a PNG whose text chunks or colour profile inflate past its limits
# (PngImagePlugin.MAX_TEXT_CHUNK, 1 MB a chunk; MAX_TEXT_MEMORY, 64 MB in all): one padded
# zTXt chunk made a known image undecodable, so neither its PDQ nor (its bytes changed) its
# MD5 matched. Neither holds pixels: PDQ is taken from the file without them. Provenance
# reads the text chunks from the file's own bytes, under its own limits.
_PNG_METADATA_LIMITS = ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY")
_PNG_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"iCCP"})


def png_metadata_refused(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and any(s in str(exc) for s in _PNG_METADATA_LIMITS)


def png_without_metadata(data: bytes) -> bytes | None:
    """The PNG ``data`` without its tEXt, zTXt, iTXt and iCCP chunks (every other chunk
    as stored, in order), or None when it has none of them. A chunk that runs past the
    end is kept as it is: the decoder reports the damage."""
    view = memoryview(data)
    kept: list[memoryview] = [view[:8]]
    pos, n, dropped = 8, len(data), False
    while pos + 8 <= n:
        length = int.from_bytes(view[pos:pos + 4])
        end = pos + 12 + length
        if view[pos + 4:pos + 8] in _PNG_METADATA_CHUNKS and end <= n:
            dropped = True
        else:
            kept.append(view[pos:min(end, n)])
        if view[pos + 4:pos + 8] == b"IEND":
            break
        pos = end
    return b"".join(kept) if dropped else None


# Formats whose opened image, once loaded at full size, stays valid for other readers
# (provenance's pixel checks). GIF and TIFF seek between frames to count them, which
# can drop the loaded frame; a JPEG decoded at reduced scale is not the full image.
_SHAREABLE = frozenset({"png", "webp", "bmp", "jpeg"})


def full_image(opened: OpenedImage) -> Image.Image | None:
    """The opened image if a decode above loaded it whole, in its stored mode; else None.
    What a later analysis of the same file uses instead of decoding it again."""
    if opened.direct is not None:
        return opened.direct
    im = opened.image
    if not opened.loaded or opened.format not in _SHAREABLE or im.size != (opened.width, opened.height):
        return None
    return im


def _orient(opened: OpenedImage, im: Image.Image, exif_transpose: bool) -> Oriented:
    """Read the EXIF orientation of the loaded image and apply it if asked.

    Read after loading on purpose: PNG may keep EXIF after the pixel data, and
    Pillow would otherwise decode the image just to look for it.
    """
    orientation = exif_orientation(opened)
    method = _TRANSPOSE.get(orientation or 0) if exif_transpose else None
    if method is not None:
        im = im.transpose(method)
    return Oriented(im, orientation, method is not None)


@dataclass
class Oriented:
    image: Image.Image
    orientation: int | None  # the tag value found, applied or not
    transposed: bool


def reference_pixels(
    opened: OpenedImage, exif_transpose: bool = False
) -> tuple[np.ndarray, Oriented]:
    """(H, W, 3) uint8 pixels as python-threatexchange feeds PDQ (optionally
    transposed per EXIF orientation first)."""
    oriented = _orient(opened, _load(opened, opened.image), exif_transpose)
    arr = np.asarray(oriented.image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return arr, oriented


@dataclass
class ReducedLuma:
    luma: np.ndarray  # float32 (h, w), in the orientation that gets hashed
    orig_size: tuple[int, int]  # (W, H) of the full image in that orientation
    block: tuple[int, int]  # original pixels per reduced pixel along (x, y)


def _jpeg_scale(width: int, height: int) -> int:
    short = min(width, height)
    if short < REDUCE_FROM:
        return 1
    return next((s for s in (8, 4, 2) if short // s >= JPEG_MIN_SIDE), 1)


def _block(width: int, height: int) -> int:
    short = min(width, height)
    return 1 if short < REDUCE_FROM else short // REDUCE_TARGET


def reduced_luma(opened: OpenedImage, exif_transpose: bool = False) -> tuple[ReducedLuma, Oriented]:
    """A small luma plane of the image, or the full one for small images."""
    im = opened.image
    w, h = opened.width, opened.height
    block = 1
    try:
        if opened.format == "jpeg":
            scale = _jpeg_scale(w, h)
            if scale > 1:
                # libjpeg then skips most of the IDCT and, in "L", the colour
                # conversion. Requesting w//scale x h//scale makes it pick `scale`.
                im.draft("L", (w // scale, h // scale))
                if im.size != (w, h):
                    block = scale
                    # The filter weights assume exactly this geometry.
                    if im.size != (-(-w // scale), -(-h // scale)):
                        raise DecodeError(
                            opened.path, f"unexpected reduced JPEG size {im.size} at 1/{scale}"
                        )
        if opened.format != "jpeg":
            block = _block(w, h)
        im = _load(opened, im, grey=True, reduce=1 if opened.format == "jpeg" else block)
    except AssayError:
        raise
    except Exception as exc:
        raise _fail(opened.path, opened.format, exc) from exc
    oriented = _orient(opened, im, exif_transpose)
    size = (w, h)
    if oriented.transposed and oriented.orientation in _SWAPS_AXES:
        size = (h, w)
    return ReducedLuma(luma_of(np.asarray(oriented.image)), size, (block, block)), oriented


# 16-bit greyscale as Pillow opens it. python-threatexchange (and the plain hash here, in
# either mode, to stay Meta's) converts it to RGB with Pillow, which clips every sample
# over 255 to white: a known picture saved as 16-bit grey hashes as a white page.
SIXTEEN_BIT_GREY = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


def scaled_grey_luma(opened: OpenedImage, exif_transpose: bool = False) -> ReducedLuma | None:
    """For a 16-bit greyscale image already decoded, the luma plane of its samples scaled
    to 8 bits (v / 257, rounded: what a viewer shows, and the exact inverse of how an 8-bit
    picture is widened), reduced as ``reduced_luma`` reduces; None for any other image."""
    if opened.mode not in SIXTEEN_BIT_GREY or opened.image.mode not in SIXTEEN_BIT_GREY:
        return None
    try:
        with quiet_pillow():
            samples = np.asarray(opened.image)
        if samples.ndim != 2 or samples.shape != (opened.height, opened.width):
            return None
        scaled = ((samples.astype(np.uint32) + 128) // 257).astype(np.uint8)
        block = _block(opened.width, opened.height)
        im = _load(opened, Image.fromarray(scaled, "L"), grey=True, reduce=block)
    except AssayError:
        raise
    except Exception as exc:
        raise _fail(opened.path, opened.format, exc) from exc
    oriented = _orient(opened, im, exif_transpose)
    size = (opened.width, opened.height)
    if oriented.transposed and oriented.orientation in _SWAPS_AXES:
        size = (opened.height, opened.width)
    return ReducedLuma(luma_of(np.asarray(oriented.image)), size, (block, block))


#: Frames of an animated image (GIF, APNG, WebP) or pages of a TIFF hashed beside the
#: first: a known picture shown as the second frame, after a blank one of 10 ms, was
#: never looked at. Frames are decoded in order (a GIF's frame is drawn over the last).
MAX_FRAMES = 64


def later_frames(opened: OpenedImage, limits: Limits, exif_transpose: bool = False,
                 max_frames: int = MAX_FRAMES) -> Iterator[tuple[int, ReducedLuma]]:
    """(index, luma plane reduced as ``reduced_luma`` reduces) of frames 1 .. max_frames-1
    of a multi-frame image, decoded from a fresh reader (``opened.image`` stays on its
    first frame), at most ``limits.max_pixels`` pixels in all. Ends quietly at the first
    frame that cannot be decoded or is over that budget (the first frame's hash stands).
    Not for JPEG: its other "frames" (MPO) are a phone's depth or gain maps or a stereo
    camera's second view, each a full decode."""
    if opened.format == "jpeg" or frame_count(opened) <= 1:
        return
    try:
        with quiet_pillow():
            im = Image.open(io.BytesIO(opened.data), formats=[FORMATS[opened.format]])
    except Exception:  # noqa: BLE001 - it opened once: nothing more to hash if not again
        return
    budget = limits.max_pixels
    for index in range(1, min(frame_count(opened), max_frames)):
        try:
            with quiet_pillow() as libtiff:
                im.seek(index)
                w, h = im.size
                budget -= w * h
                if w <= 0 or h <= 0 or budget < 0:
                    return
                frame = im.convert("RGB")
                if damaged_pixels(libtiff) is not None:
                    return
            block = _block(w, h)
            if block > 1:
                frame = frame.reduce(block)
        except Exception:  # noqa: BLE001 - a damaged later frame ends the frames, not the image
            return
        oriented = _orient(opened, frame, exif_transpose)
        size = (h, w) if oriented.transposed and oriented.orientation in _SWAPS_AXES else (w, h)
        yield index, ReducedLuma(luma_of(np.asarray(oriented.image)), size, (block, block))


def reduced_luma_again(data: bytes, opened: OpenedImage, limits: Limits,
                       exif_transpose: bool = False) -> tuple[ReducedLuma, Oriented]:
    """``reduced_luma`` of an image already decoded in full (reference mode): the same
    plane as fast mode's. A JPEG that fast mode decodes at reduced scale is decoded again
    so (libjpeg's 1/8 scale costs a fraction of shrinking the full pixels); any other
    image is reduced from the pixels already decoded."""
    if opened.format == "jpeg" and _jpeg_scale(opened.width, opened.height) > 1:
        opened = open_image(data, opened.path, limits)
    return reduced_luma(opened, exif_transpose)


#: A border's edge is placed on a plane whose short side has at least this many pixels
#: (one pixel there moves PDQ by a few bits; one reduced pixel of a 1/8 JPEG by ~40).
FINE_SIDE = 1024


class FineOverBudget(Exception):
    """The finer decode of a bordered image would take more pixels than the caller
    allowed (``fine_budget``); raised before decoding it. Not an input error: a service
    admits the upload again with the finer decode's weight counted."""

    def __init__(self, pixels: int) -> None:
        super().__init__(f"the finer decode needs {pixels} pixels")
        self.pixels = pixels


def _fine_block(opened: OpenedImage, reduced_block: int) -> int:
    w, h = opened.width, opened.height
    if opened.format == "jpeg":
        return next((s for s in (8, 4, 2) if s < reduced_block and min(w, h) // s >= FINE_SIDE), 1)
    return next((s for s in range(reduced_block - 1, 1, -1) if min(w, h) // s >= FINE_SIDE), 1)


def fine_pixels(opened: OpenedImage) -> int:
    """How many pixels ``fine_luma`` decodes for this image if a border is found (0 when
    ``reduced_luma`` keeps every pixel and there is no finer decode). Counted on top of
    ``decode_pixels`` by a service that hashes the query variants."""
    w, h = opened.width, opened.height
    reduced = _jpeg_scale(w, h) if opened.format == "jpeg" else _block(w, h)
    if reduced <= 1:
        return 0
    s = _fine_block(opened, reduced)
    return -(-w // s) * -(-h // s)


def fine_luma(data: bytes, opened: OpenedImage, reduced: ReducedLuma, limits: Limits,
              exif_transpose: bool = False, fine_budget: int | None = None) -> ReducedLuma:
    """A finer luma plane of an image already reduced (``reduced``): a JPEG decoded again at
    the smallest scale whose short side keeps ``FINE_SIDE`` pixels (its full size below
    that), another format's decoded pixels reduced as far. What media/trim.py places a
    border's edge on when the reduced plane's pixels are several original pixels wide.
    Raises FineOverBudget, decoding nothing, if that plane has more than ``fine_budget``
    pixels."""
    w, h = opened.width, opened.height
    fine = _fine_block(opened, reduced.block[0])
    if fine_budget is not None and (need := -(-w // fine) * -(-h // fine)) > fine_budget:
        raise FineOverBudget(need)
    if opened.format == "jpeg":
        scale = fine
        again = open_image(data, opened.path, limits)
        im = again.image
        try:
            im.draft("L", (w // scale, h // scale))
            block = scale if im.size != (w, h) else 1
            if block > 1 and im.size != (-(-w // scale), -(-h // scale)):
                raise DecodeError(opened.path, f"unexpected reduced JPEG size {im.size} at 1/{scale}")
            im = _load(again, im, grey=True)
        except AssayError:
            raise
        except Exception as exc:
            raise _fail(opened.path, opened.format, exc) from exc
        oriented = _orient(again, im, exif_transpose)
    else:  # decoded in full already: reduced as little as keeps FINE_SIDE (memory)
        block = fine
        im = _load(opened, opened.image, grey=True, reduce=block)
        oriented = _orient(opened, im, exif_transpose)
    return ReducedLuma(luma_of(np.asarray(oriented.image)), reduced.orig_size, (block, block))


def exif_orientation(opened: OpenedImage) -> int | None:
    """The EXIF orientation tag, or None; a malformed EXIF block does not stop hashing."""
    try:
        with quiet_pillow():
            value = opened.image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # corrupt EXIF carries no evidence; it is not a decode failure
        return None
    return value if isinstance(value, int) else None


def frame_count(opened: OpenedImage) -> int:
    try:
        with quiet_pillow():
            return max(1, int(getattr(opened.image, "n_frames", 1)))
    except Exception:  # a damaged later frame does not unmake the first
        return 1
