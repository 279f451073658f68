"""What is this file? Decided by magic bytes, never by extension alone."""

from __future__ import annotations

import importlib
import re
import struct
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HEAD_BYTES = 512  # a tar header is one 512-byte block ("ustar" at offset 257)
ONNX_PROBE_BYTES = 1 << 20  # an ONNX doc string before the graph: read this far
ISO_MAGIC_AT = 32769  # ISO 9660's "CD001", after the 32 KiB system area and a type byte
PICKLE_PROBE_BYTES = 64 * 1024  # header-less pickles: opcodes followed this far first
MAX_PICKLE_PROBE_BYTES = 16 * 1024**2  # ... and this far when they stay consistent
_HDF5 = b"\x89HDF\r\n\x1a\n"

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
# ISO BMFF brands of audio and video files (formats without pixels for assay: only
# their C2PA / XMP metadata is read).
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_MOV_BRANDS = {b"qt  "}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"mp71", b"avc1",
    b"M4V ", b"M4VH", b"M4VP", b"dash", b"mmp4", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"f4v ",
    b"XAVC", b"MSNV",
}
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_JP2_CONTAINER = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
# netpbm header: magic P1-P6, then width and height as decimal numbers, comments between
_NETPBM = re.compile(rb"P[1-6](?:\s+(?:#[^\n]*\n\s*)*)[1-9]\d{0,8}(?:\s+(?:#[^\n]*\n\s*)*)[1-9]\d{0,8}\s")


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "image" | "model" | "archive" | "document" | "video" | "audio" | "other"
    format: str  # "jpeg", "png", ..., "pdf", "mp4", "wav", "safetensors", "zip", "tar", "7z", "pickle", "gguf", "git-lfs-pointer", "unknown"


GIT_LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\n"


def sniff_bytes(head: bytes, size: int | None = None, *, pickles: bool = True) -> Sniffed:
    """Classify from the first bytes of a file (at least 16 for most formats).
    ``pickles=False`` skips the opcode parse that finds header-less pickles."""
    h = head
    if h.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpeg")
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif")
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    if h[:4] == b"RIFF" and h[8:12] == b"WAVE":
        return Sniffed("audio", "wav")
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return Sniffed("video", "avi")
    if h.startswith(_JXL_CONTAINER):
        return Sniffed("image", "jxl")
    # Formats a known picture can be converted into as easily as into PNG: each is read
    # (media/decode.py), or its re-encoding would hide it from PDQ.
    if h.startswith(_JP2_CONTAINER) or h[:4] == b"\xff\x4f\xff\x51":
        return Sniffed("image", "jp2")  # JPEG 2000: JP2 file, or a bare codestream (SOC, SIZ)
    if h[:4] == b"8BPS" and h[4:6] == b"\x00\x01":
        return Sniffed("image", "psd")  # Photoshop (PSD; PSB, version 2, Pillow does not read)
    if h[:4] == b"qoif" and len(h) >= 14:
        return Sniffed("image", "qoi")
    if h[:4] == b"DDS " and h[4:8] == b"\x7c\x00\x00\x00":
        return Sniffed("image", "dds")
    if h[:4] == b"icns" and len(h) >= 8 and (size is None or struct.unpack_from(">I", h, 4)[0] == size):
        return Sniffed("image", "icns")
    if _NETPBM.match(h):
        return Sniffed("image", "ppm")  # netpbm P1-P6 (PBM, PGM, PPM)
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", "tiff")
    if h[:2] == b"BM" and len(h) >= 18:
        dib = struct.unpack_from("<I", h, 14)[0]
        if dib in (12, 40, 52, 56, 64, 108, 124):
            return Sniffed("image", "bmp")
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand in _AVIF_BRANDS:
            return Sniffed("image", "avif")
        if brand in _HEIF_BRANDS:
            return Sniffed("image", "heif")
        if brand in _M4A_BRANDS:
            return Sniffed("audio", "m4a")
        if brand in _MOV_BRANDS:
            return Sniffed("video", "mov")
        if brand in _MP4_BRANDS:
            return Sniffed("video", "mp4")
    if h.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM by its DocType
        return Sniffed("video", "webm" if _ebml_doctype(h) == b"webm" else "matroska")
    if h.startswith(b"%PDF-"):
        return Sniffed("document", "pdf")
    if h[:4] == b"fLaC":
        return Sniffed("audio", "flac")
    if h[:3] == b"ID3":
        return Sniffed("audio", "mp3")
    if _looks_like_svg(h):
        return Sniffed("document", "svg")
    if h[:4] == b"GGUF":
        return Sniffed("model", "gguf")
    if h.startswith(GIT_LFS_POINTER) and (size is None or size < 1024):
        # A model repository cloned without its LFS content: the file names the model
        # (sha256 and size) but is not it (ModelAudit's LFS pointer cases).
        return Sniffed("other", "git-lfs-pointer")
    if h[:4] == b"PK\x03\x04" or h[:4] == b"PK\x05\x06":
        # Zip: an archive, unless its members say it is a model (sniff_path looks).
        return Sniffed("archive", "zip")
    if len(h) >= 10 and _looks_like_safetensors(h, size):
        return Sniffed("model", "safetensors")
    if len(h) >= 2 and h[0] == 0x80 and 2 <= h[1] <= 5:
        return Sniffed("model", "pickle")
    if h.startswith(b"\x93NUMPY"):
        return Sniffed("model", "npy")  # object arrays are pickles; others are tensors
    if h.startswith(_HDF5):
        return Sniffed("model", "hdf5")  # Keras .h5 models (config may carry code)
    if h[:1] == b"\x08" and onnx_head(h, size):
        return Sniffed("model", "onnx")
    # Archive magic is exact; the header-less pickle test below is a heuristic.
    archive = _archive_format(h)
    if archive is not None:
        return Sniffed("archive", archive)
    if size is not None and _tga_head(h, size):
        return Sniffed("image", "tga")
    if size is not None and _pcx_head(h, size):
        return Sniffed("image", "pcx")
    if pickles and h and _maybe_pickle(h, size):
        # Protocol 0/1 pickles have no header: a consistent parse of the opcodes.
        return Sniffed("model", "pickle")
    # Last: a bare JPEG XL codestream or MPEG audio frame header is only 2-4 bytes of
    # evidence (a safetensors header length can look like either, so it goes first).
    if h[:2] == b"\xff\x0a" and size is not None and size > 16:
        return Sniffed("image", "jxl")
    if _mpeg_audio_frame(h) and not _utf16_text(h):
        return Sniffed("audio", "mp3")
    return Sniffed("other", "unknown")


# TGA (Truevision) and PCX (ZSoft) have no magic number, and a known picture converted
# to either keeps every pixel. They are told by a header whose every field must agree
# with the others and with the file's size: the image types and depths Pillow reads,
# colour-map fields zero without a map, the pixel data fitting in the file. (A TGA 2.0
# footer is at the end of the file, which a head does not hold.)
_TGA_DEPTHS = {1: (8,), 2: (16, 24, 32), 3: (1, 8, 16)}  # image type & 7 -> depths Pillow reads
_PCX_LAYOUTS = {(1, 1), (1, 2), (1, 4), (8, 1), (8, 3)}  # (bits per pixel, planes) Pillow reads


def _tga_head(h: bytes, size: int) -> bool:
    if len(h) < 18:
        return False
    id_len, cmap_type, kind = h[0], h[1], h[2]
    cmap_first, cmap_len, cmap_bits, _, _, width, height, depth, desc = struct.unpack_from("<HHBHHHHBB", h, 3)
    if kind not in (1, 2, 3, 9, 10, 11) or depth not in _TGA_DEPTHS[kind & 7] or not width or not height:
        return False
    if desc & 0xC0 or (desc & 0x0F) > 8:  # interleaving (never written), more alpha bits than a pixel has
        return False
    if kind & 7 == 1:  # colour-mapped: a map, of a depth the map can have
        if cmap_type != 1 or not cmap_len or cmap_bits not in (15, 16, 24, 32) or cmap_first + cmap_len > 65536:
            return False
        cmap_bytes = cmap_len * ((cmap_bits + 7) // 8)
    elif cmap_type != 0 or cmap_first or cmap_len or cmap_bits:
        return False
    else:
        cmap_bytes = 0
    pixels = width * height
    data = (pixels * depth + 7) // 8 if kind < 8 else -(-pixels // 128) * (1 + (depth + 7) // 8)  # RLE: 128-pixel runs
    return size >= 18 + id_len + cmap_bytes + data


def _pcx_head(h: bytes, size: int) -> bool:
    if len(h) < 68 or h[0] != 0x0A or h[1] not in (0, 2, 3, 4, 5) or h[2] != 1 or h[64] != 0:
        return False
    xmin, ymin, xmax, ymax = struct.unpack_from("<HHHH", h, 4)
    bits, planes, stride = h[3], h[65], struct.unpack_from("<H", h, 66)[0]
    if (bits, planes) not in _PCX_LAYOUTS or xmax < xmin or ymax < ymin:
        return False
    width, height = xmax - xmin + 1, ymax - ymin + 1
    if stride < (width * bits + 7) // 8 or stride > 8 * (width + 8):
        return False
    # RLE of bytes: at best 63 bytes a pair; a 256-colour palette (12 + 768 bytes) at the end of 8-bit v5
    return size >= 128 + -(-(stride * planes * height) // 63) * 2


def protobuf_varint(h: Any, pos: int) -> tuple[int, int]:
    """The protobuf varint at ``pos`` of ``h`` and the position after it."""
    out = shift = 0
    while True:
        if pos >= len(h) or shift > 63:
            raise ValueError("truncated varint")
        b = h[pos]
        out |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return out, pos
        shift += 7


def onnx_head(h: bytes, size: int | None) -> bool | None:
    """Whether ``h`` begins an ONNX ModelProto: ``ir_version`` (field 1, 3..20) first,
    then only fields that precede the graph in serialisation order (producer, domain,
    model version, doc string), then the graph (field 7), whose length fits in the
    file. None: consistent so far, but the head ends before the graph (a long doc
    string). A TensorFlow SavedModel (schema version 1, then meta graphs) and other
    protobufs do not pass: protobuf has no magic number, so the order decides."""
    if h[:1] != b"\x08":
        return False
    try:
        version, pos = protobuf_varint(h, 1)
        if not 3 <= version <= 20:
            return False
        last = 1
        while True:
            if pos >= len(h):
                return None
            key, pos = protobuf_varint(h, pos)
            field, wire = key >> 3, key & 7
            if field <= last or field > 7:
                return False
            last = field
            if field == 5:  # model_version
                if wire != 0:
                    return False
                _, pos = protobuf_varint(h, pos)
                continue
            if wire != 2:
                return False
            n, pos = protobuf_varint(h, pos)
            if size is not None and pos + n > size:
                return False
            if field == 7:
                return n > 0
            pos += n
    except ValueError:
        return None if len(h) < (size or 0) else False


def _utf16_text(h: bytes) -> bool:
    """Text after UTF-16's little-endian byte-order mark (what PowerShell's ``>`` and
    Notepad's "Unicode" write), which also reads as an MPEG-1 Layer I frame header: the
    rest decodes strictly (a code unit or surrogate cut at the end aside) to characters
    without controls other than tab and line ends. Random audio data fails at its first
    unpaired surrogate or control character."""
    if h[:2] != b"\xff\xfe" or len(h) < 4:
        return False
    body = h[2:len(h) - len(h) % 2]
    if len(body) >= 2 and 0xD8 <= body[-1] <= 0xDB:
        body = body[:-2]  # a high surrogate whose pair lies past the head
    try:
        text = body.decode("utf-16-le")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c >= " " or c in "\t\n\r\f" for c in text) and "\x7f" not in text


def _maybe_pickle(h: bytes, size: int | None) -> bool:
    # The opcode tables load here, for the files no magic number named (not at import:
    # `assay hash photo.png` never needs them).
    from .pickleops import OPCODES, probe

    return h[0] in OPCODES and bool(probe(h, more=size is None or size > len(h),
                                          names_payload=names_payload))


def names_payload(module: str, name: str) -> bool:
    """Whether a header-less pickle's GLOBAL names a payload (a broken one is still
    evidence). The policy loads only for a parse that failed after a GLOBAL."""
    from .models.pickle_policy import classify_global

    return classify_global(module, name)[0] == "dangerous"


# Container formats decoded (media/video.py), forced by name (never probed by FFmpeg), so a
# playlist, concat list or other reference format can never make FFmpeg open another file or URL.
_DEMUXERS = {"mp4": "mp4", "mov": "mov", "avi": "avi", "matroska": "matroska", "webm": "matroska"}
_EBML = b"\x1a\x45\xdf\xa3"


# Pillow's reader for each image format of ours that it reads (HEIF: pillow-heif's opener,
# register_heif_opener). Imported before Image.open: a format Pillow has not
# loaded yet makes it import every plugin it has (Image.init, ~40 modules) for one WebP.
_PILLOW_PLUGINS: dict[str, str] = {
    "jpeg": "JpegImagePlugin",
    "png": "PngImagePlugin",
    "webp": "WebPImagePlugin",
    "gif": "GifImagePlugin",
    "tiff": "TiffImagePlugin",
    "bmp": "BmpImagePlugin",
    "avif": "AvifImagePlugin",
    "jp2": "Jpeg2KImagePlugin",
    "psd": "PsdImagePlugin",
    "qoi": "QoiImagePlugin",
    "dds": "DdsImagePlugin",
    "icns": "IcnsImagePlugin",
    "ppm": "PpmImagePlugin",
    "tga": "TgaImagePlugin",
    "pcx": "PcxImagePlugin",
}


@cache
def _libc_memmem() -> Callable[..., int | None] | None:
    """The C library's memmem (glibc, musl, the BSDs and macOS have it), or None; looked
    up on first use (ctypes is not imported by commands that never search bytes)."""
    if sys.platform == "win32":
        return None
    import ctypes

    try:
        f = ctypes.CDLL(None).memmem
    except (OSError, AttributeError):
        return None
    f.restype = ctypes.c_void_p
    f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return f  # type: ignore[no-any-return]


def contains(data: bytes | bytearray | memoryview, needle: bytes) -> bool:
    """``needle in data``, through the C library's memmem where there is one: ~3x faster
    than Python's own search for the short markers a scan looks for in every file's
    bytes (a 4-byte needle in 800 KB: 0.14 ms vs 0.41 ms)."""
    memmem = _libc_memmem()
    if memmem is None or not needle or type(data) is not bytes:
        return needle in (data if isinstance(data, (bytes, bytearray)) else bytes(data))
    return bool(memmem(data, len(data), needle, len(needle)))


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """``zlib.crc32``, through ISA-L (``isal``, ~9x zlib's: 0.014 vs 0.136 ms a MB) where it
    is installed: the same checksum, used on whole files (model hashes) and PNG chunks."""
    return _crc32_impl()(data, value)


@cache
def _crc32_impl() -> Callable[..., int]:
    try:
        from isal.isal_zlib import crc32 as fn
    except ImportError:  # an install without it checks with zlib
        from zlib import crc32 as fn
    return fn


class _LibtiffErrors(threading.local):
    found: list[str] | None = None  # the errors of the quiet_pillow block in progress


_LIBTIFF = _LibtiffErrors()
_KEPT: list[object] = []  # the ctypes callback libtiff holds: never collected
# printf conversions in libtiff's messages (its arguments are not read: see _on_libtiff_error)
_PRINTF = re.compile(r"%[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|j|z|t|L|q|I64|I32)?[diouxXeEfFgGaAcsp]")


def _on_libtiff_error(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
    """libtiff's error handler: the message joins the errors of the quiet_pillow block in
    progress on this thread (none: dropped). The values are formatted in by libc's
    vsnprintf where the C va_list is known to arrive as a pointer (x86-64 Linux), and
    left out ("...") elsewhere. Never raises."""
    try:
        found = _LIBTIFF.found
        if found is None or len(found) >= 8 or not fmt:
            return
        text = None
        if (vsnprintf := _libc_vsnprintf()) is not None and args:
            import ctypes

            buf = ctypes.create_string_buffer(512)
            if vsnprintf(buf, len(buf), fmt, args) >= 0:
                text = buf.value.decode("utf-8", "replace")
        if text is None:
            text = _PRINTF.sub("...", fmt.decode("utf-8", "replace")).replace("%%", "%")
            text = re.sub(r"\.\.\.(?:\s+\.\.\.)+", "...", text)
        where = (module or b"").decode("utf-8", "replace")
        # Pillow names the file it hands libtiff "tempfile.tif": not the user's file
        text = " ".join(text.split())[:300]
        found.append(f"{where}: {text}" if where and "." not in where else text)
    except Exception:  # noqa: S110 - a callback from C must not raise
        pass


@cache
def _libc_vsnprintf() -> Any:
    """libc's vsnprintf on x86-64 Linux (a va_list argument is a pointer there), else None."""
    import ctypes
    import platform

    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        fn = ctypes.CDLL(None).vsnprintf
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


def _install_libtiff_handlers() -> None:
    """libtiff's warnings dropped and its errors kept (_on_libtiff_error) instead of both
    printed on stderr, where a scan of damaged TIFFs sprayed hundreds of lines. Through
    Pillow's own module, which libtiff is linked to; a Pillow without it: nothing done."""
    import ctypes

    try:
        from PIL import _imaging

        lib = ctypes.CDLL(_imaging.__file__)
        set_error, set_warning = lib.TIFFSetErrorHandler, lib.TIFFSetWarningHandler
    except (ImportError, OSError, AttributeError):
        return
    handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)(_on_libtiff_error)
    _KEPT.append(handler)
    for fn in (set_error, set_warning):
        fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_void_p
    set_error(ctypes.cast(handler, ctypes.c_void_p))
    set_warning(None)


@cache
def _quiet_process() -> None:
    """Once a process, before Pillow parses anything: its log records ("More samples per
    pixel than can be decoded" ...) no longer reach stderr through logging's last-resort
    handler (an application's own logging configuration still sees them), and libtiff
    prints nothing (_install_libtiff_handlers)."""
    import logging

    logging.getLogger("PIL").addHandler(logging.NullHandler())
    _install_libtiff_handlers()


# libtiff modules whose errors mean the pixels it returned are not all the file's: the
# codecs ("Fax4Decode", "LZWDecode" ...), strip and tile reads, Pillow's read callback
# (reads past the end of the data). Errors reading the directory (TIFFReadDirectory,
# TIFFFetchNormalTag: a tag skipped) are not.
_PIXEL_MODULES = re.compile(
    r"^(?:\w*Decode\w*|TIFFFill(?:Strip|Tile)|TIFFRead(?:Encoded|Raw)?(?:Strip|Tile)\w*|TIFFReadScanline"
    r"|TIFFReadRGBA\w*|TIFFReadFromUserBuffer|_tiffReadProc|JPEGLib|OJPEG\w*):")


def damaged_pixels(libtiff_errors: list[str]) -> str | None:
    """The first of ``libtiff_errors`` (from quiet_pillow) saying that pixel data could not
    be read or decoded, or None."""
    return next((e for e in libtiff_errors if _PIXEL_MODULES.match(e)), None)


def libtiff_reason(libtiff_errors: list[str]) -> str:
    """What to add to the message of a decode that failed: " (libtiff: ...)" naming the
    pixel error it reported, else its last error; "" when it reported none."""
    why = damaged_pixels(libtiff_errors) or (libtiff_errors[-1] if libtiff_errors else None)
    return f" (libtiff: {why})" if why else ""


@contextmanager
def quiet_pillow() -> Iterator[list[str]]:
    """Silence Pillow's warnings while it parses untrusted bytes, and yield the list of
    the errors libtiff reports meanwhile (filled as they come; on this thread only).

    Its decompression-bomb warning duplicates our own pixel limit, and its
    damaged-file warnings ("Tag data larger than file", "Corrupt EXIF data") would
    spray a scan's terminal; real damage still surfaces as an error. catch_warnings is
    process-wide state restored on exit; scans run analyzers in processes. libtiff's
    errors matter where Pillow decodes an image anyway: libtiff may fill what it could
    not decode (see damaged_pixels).
    """
    _quiet_process()
    from PIL import Image

    outer = _LIBTIFF.found
    found: list[str] = []
    _LIBTIFF.found = found
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            yield found
    finally:
        _LIBTIFF.found = outer
        if outer is not None:  # a block inside another: the outer one hears them too
            outer.extend(found)


# Optional Pillow readers (format -> registered or not), each tried once per process.
_plugin_lock = threading.Lock()
_optional_readers: dict[str, bool] = {}


def _optional_reader(fmt: str, register: Callable[[], None]) -> bool:
    with _plugin_lock:
        if fmt not in _optional_readers:
            try:
                register()
                _optional_readers[fmt] = True
            except Exception:  # missing or broken optional plugin
                _optional_readers[fmt] = False
        return _optional_readers[fmt]


def _heif() -> None:
    import pillow_heif  # type: ignore[import-untyped]

    pillow_heif.register_heif_opener()


def _jxl() -> None:
    from pillow_jxl import JpegXLImagePlugin  # type: ignore[import-not-found]

    JpegXLImagePlugin.DECODE_THREADS = 0


def register_heif_opener() -> bool:
    """Register pillow-heif's opener with Pillow on first use; False when it is not
    installed (or broken): HEIF is then a format Pillow cannot open."""
    return _optional_reader("heif", _heif)


def register_jxl_opener() -> bool:
    """Register the JPEG XL reader (the optional ``pillow-jxl-plugin``, on jxl-oxide) with
    Pillow on first use, decoding on the calling thread only (a scan runs one worker per
    core); False when it is not installed (or broken)."""
    return _optional_reader("jxl", _jxl)


def load_pillow_plugin(fmt: str) -> None:
    """Import Pillow's plugin for the image format ``fmt`` (our name), if it has one."""
    if fmt == "heif":
        register_heif_opener()
        return
    if fmt == "jxl":
        register_jxl_opener()
        return
    name = _PILLOW_PLUGINS.get(fmt)
    if name is not None:
        try:
            importlib.import_module(f"PIL.{name}")
        except ImportError:  # a Pillow built without it: Image.open says what it lacks, as before
            pass


def video_format(head: bytes) -> str | None:
    """The demuxer to force for a file starting with ``head``, or None if not a video we decode."""
    if head.startswith(_EBML):
        return "matroska"
    s = sniff_bytes(head, pickles=False)
    if s.kind == "video":
        return _DEMUXERS.get(s.format)
    return None


def _ebml_doctype(h: bytes) -> bytes | None:
    """The DocType of an EBML header (element 0x4282), read within the head."""
    i = h.find(b"\x42\x82", 4, 64)
    if i < 0 or i + 3 > len(h):
        return None
    size_byte = h[i + 2]
    if not size_byte & 0x80:  # only the one-byte size form; DocTypes are short
        return None
    n = size_byte & 0x7F
    return h[i + 3:i + 3 + n].rstrip(b"\x00")


def _archive_format(h: bytes) -> str | None:
    if h[:6] == b"7z\xbc\xaf\x27\x1c":
        return "7z"
    if h[:7] == b"Rar!\x1a\x07\x00" or h[:8] == b"Rar!\x1a\x07\x01\x00":  # RAR 4, RAR 5
        return "rar"
    if h[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if h[:4] == b"\x04\x22\x4d\x18":
        return "lz4"  # an LZ4 frame (joblib.dump(..., compress="lz4"))
    if h[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if h[:3] == b"BZh" and h[3:4] in b"123456789" and len(h) >= 10 and h[4:10] in (
            b"1AY&SY", b"\x17rE8P\x90"):
        return "bzip2"
    if len(h) >= 512 and (h[257:262] == b"ustar" or _tar_checksum_ok(h)):
        return "tar"
    if _compressed_pickle(h):
        return "zlib" if h[0] == 0x78 else "lzma"
    if h[:2] == b"ZF" and _compressed_pickle(h[joblib_zfile_offset(h) or 0:]):
        return "zlib"  # joblib's old format (< 0.10): "ZF", the length in hex, a zlib stream
    return None


def joblib_zfile_offset(h: bytes) -> int | None:
    """Where the zlib stream of a file in joblib's old compressed format starts ("ZF",
    the data's length in hex padded to 19 characters, at times one space), or None.
    joblib.load still reads such files (numpy_pickle_compat.read_zfile)."""
    if h[:2] != b"ZF" or len(h) < 22:
        return None
    try:
        int(h[2:21].decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        return None
    return 22 if h[21:22] == b" " else 21


def _compressed_pickle(h: bytes) -> bool:
    """A raw zlib or .lzma ("alone") stream whose first bytes inflate to a pickle: how
    joblib.dump(..., compress=...) saves (zlib by default, lzma on request), and what
    joblib.load unpickles, of any protocol, after it recognises the compressor by its
    first byte. Only with a pickle inside: two bytes of zlib header alone say nothing."""
    is_zlib = len(h) >= 2 and h[0] == 0x78 and (h[0] << 8 | h[1]) % 31 == 0
    if not is_zlib and h[:3] != b"]\x00\x00":  # .lzma: properties 0x5d, then a dictionary size
        return False  # (the modules load only for the files that may be such a stream)
    import lzma
    import zlib

    d: Any = zlib.decompressobj() if is_zlib else lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    try:
        out = d.decompress(h, 4096)
    except (zlib.error, lzma.LZMAError, EOFError):
        return False
    if len(out) >= 2 and out[0] == 0x80 and 2 <= out[1] <= 5:
        return True
    # a header-less (protocol 0/1) pickle: as far as the head inflates, a consistent parse
    from .pickleops import OPCODES, probe

    if not out or out[0] not in OPCODES:
        return False
    verdict = probe(out, more=not d.eof, names_payload=names_payload)
    if verdict is None:
        # Consistent up to where the head stops inflating: a pickle, unless that is one
        # line of text so far (a text opcode still waiting for its newline).
        return b"\n" in out or not out.isascii() or not out.decode("ascii").isprintable()
    return verdict


def _tar_checksum_ok(h: bytes) -> bool:
    """An old (v7) tar header: no magic, but a checksum over its 512 bytes."""
    field = h[148:156]
    digits = field.replace(b"\x00", b" ").strip()
    if not digits or not all(48 <= c <= 55 for c in digits) or h[0] == 0:
        return False
    return int(digits, 8) == sum(h[:148]) + 8 * 32 + sum(h[156:512])


def _mpeg_audio_frame(h: bytes) -> bool:
    """An MPEG audio frame header (MP3 without an ID3 tag): 11 sync bits and no
    reserved version, layer, bitrate or sample-rate value."""
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return False
    version, layer = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    bitrate, rate = h[2] >> 4, (h[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _looks_like_svg(h: bytes) -> bool:
    t = h.removeprefix(b"\xef\xbb\xbf").lstrip()
    if t.startswith(b"<svg"):
        return True
    return t.startswith((b"<?xml", b"<!--", b"<!DOCTYPE svg")) and b"<svg" in t


def _looks_like_safetensors(h: bytes, size: int | None) -> bool:
    (n,) = struct.unpack_from("<Q", h, 0)
    if n < 2 or n > 100 * 1024**2:
        return False
    if size is not None and 8 + n > size:
        return False
    return h[8:9] == b"{"


_TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                         "pytorch_model.bin.index.json")


def _has_transformers_weights(path: Path) -> bool:
    """A Hugging Face model folder: config.json beside model weights (one file or shards)."""
    return any((path / name).is_file() for name in _TRANSFORMERS_WEIGHTS)


def sniff_path(path: Path) -> Sniffed:
    """Classify a file or folder. Folders are models only when they look like one
    (diffusers ``model_index.json``, a PEFT ``adapter_config.json``, or a Hugging Face
    ``config.json`` beside model weights)."""
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return Sniffed("model", "diffusers")
        if (path / "adapter_config.json").is_file():
            return Sniffed("model", "peft")
        if (path / "config.json").is_file() and _has_transformers_weights(path):
            return Sniffed("model", "transformers")
        if (path / "saved_model.pb").is_file():
            return Sniffed("model", "tf-savedmodel")
        return Sniffed("other", "directory")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        if head[:3] == b"ID3" and len(head) >= 10:
            # FLAC files may carry an ID3 tag too: look behind it.
            f.seek(10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10])))
            if f.read(4) == b"fLaC":
                return Sniffed("audio", "flac")
        found = sniff_bytes(head, size)
        if found.format == "zip":
            from .containers import is_model_zip

            return Sniffed("model", "zip") if is_model_zip(path) else found
        if found.kind == "other" and size >= ISO_MAGIC_AT + 5:
            # ISO 9660: "CD001" in the first volume descriptor, 32 KiB in (16 sectors of
            # system area before it)
            f.seek(ISO_MAGIC_AT)
            if f.read(5) == b"CD001":
                return Sniffed("archive", "iso")
        if found.kind == "other" and head[:1] == b"\x08" and onnx_head(head, size) is None:
            # an ONNX model whose doc string runs past the head: read on to its graph
            f.seek(0)
            if onnx_head(f.read(ONNX_PROBE_BYTES), size):
                return Sniffed("model", "onnx")
        if found.kind == "other" and path.name == "saved_model.pb" and head[:1] in (b"\x08", b"\x12"):
            # TensorFlow SavedModel protobuf (schema version, then meta graphs): no
            # magic number, so the name it must have and its first field decide.
            return Sniffed("model", "tf-savedmodel")
        if found.kind != "other" or not head:
            return found
        from .pickleops import OPCODES, probe

        if head[0] not in OPCODES:
            return _zip_or(f, size, found)
        # A header-less pickle whose first opcodes run past 64 bytes (long strings,
        # padding in front of a payload): follow its opcodes further.
        f.seek(0)
        head = f.read(PICKLE_PROBE_BYTES)
        verdict = probe(head, more=size > len(head), names_payload=names_payload)
        if verdict is None:
            f.seek(0)
            head = f.read(MAX_PICKLE_PROBE_BYTES)
            verdict = probe(head, more=size > len(head), names_payload=names_payload)
        if verdict is not False:
            # Still consistent after 16 MiB of opcodes: no text or data file is like that.
            return Sniffed("model", "pickle")
        return _zip_or(f, size, found)


def _zip_or(f: Any, size: int, found: Sniffed) -> Sniffed:
    """A zip archive for a file no magic number at its start named whose end is a zip's
    (a self-extracting archive: a program, then the zip; a zip behind junk), an HDF5 file
    behind a user block (hdf5_superblock), else ``found``."""
    if zip_at_end(f, size):
        return Sniffed("archive", "zip")
    return Sniffed("model", "hdf5") if hdf5_superblock(f, size) else found


def hdf5_superblock(f: Any, size: int) -> int | None:
    """Where the HDF5 superblock of the file open as ``f`` lies when it is not at the
    start: the HDF5 library (h5py, so Keras' .h5 loader) also looks for it at 512, 1024,
    2048... bytes, after a "user block" of any content (zeros, text, a pickle)."""
    offset = 512
    while offset + len(_HDF5) <= size:
        f.seek(offset)
        if f.read(len(_HDF5)) == _HDF5:
            return offset
        offset *= 2
    return None


ZIP_TAIL_BYTES = 22 + 0xFFFF  # the end-of-central-directory record and the longest comment
_EOCD, _CDH, _ZIP64_LOCATOR = b"PK\x05\x06", b"PK\x01\x02", b"PK\x06\x07"


def zip_at_end(f: Any, size: int) -> bool:
    """Whether the file open as ``f`` (``size`` bytes) ends with a zip archive, wherever it
    starts: an end-of-central-directory record in the last 64 KiB whose comment stays in
    the file, right after the central directory it sizes (which starts with its own
    signature). That is how zip readers find an archive (zipfile, unzip, 7-Zip), also
    behind other data: a self-extracting archive, or a zip appended to an image (a
    polyglot, which viewers show as the image). Reads at most ~64 KiB + 4 bytes."""
    if size < 22 + 46:
        return False
    n = min(size, ZIP_TAIL_BYTES)
    f.seek(size - n)
    tail = f.read(n)
    i, tries = tail.rfind(_EOCD), 0
    while i >= 0 and tries < 16:
        tries += 1
        if i + 22 <= len(tail):
            disk, cd_disk, here, total, cd_size, _cd_offset, comment = struct.unpack_from("<HHHHIIH", tail, i + 4)
            record_at = size - n + i
            zip64 = i >= 20 and tail[i - 20:i - 16] == _ZIP64_LOCATOR
            if zip64:
                return True  # sizes in the zip64 record: zipfile reads and checks them
            if (disk == cd_disk == 0 and here == total > 0 and 46 <= cd_size <= record_at
                    and i + 22 + comment <= len(tail)):
                start = record_at - cd_size
                if start >= size - n:
                    head = tail[start - (size - n):start - (size - n) + 4]
                else:
                    f.seek(start)
                    head = f.read(4)
                if head == _CDH:
                    return True
        i = tail.rfind(_EOCD, 0, i)
    return False


def appended_zip(path: Path, size: int) -> bool:
    """Whether a file that starts as something else (an image, a document) ends with a
    zip archive (see zip_at_end); False when it cannot be read."""
    try:
        with path.open("rb") as f:
            return zip_at_end(f, size)
    except OSError:
        return False
