"""ImageContext: one parse of an image container, shared by every evidence source.

Every evidence source (C2PA, IPTC, camera traces, generator metadata, ...) reads
the same file; this object walks the container once, lazily, and memoizes what it
found. Parsing is bounded: every length is checked against the file before it is
trusted, text is capped at ``Limits.max_text_chunk``, zlib streams are inflated
with a ceiling, EXIF offsets are validated and IFD loops are refused.

Problems that leave the data usable (CRC mismatch, capped text, trailing garbage,
invalid UTF-16) are appended to ``ctx.problems`` as plain sentences; problems that
make a structure unusable raise :class:`assay.errors.InputError` subclasses naming
the file and the reason. Methods never decode pixels unless a source asks through
``pil()``.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import Limits
from ..errors import DecodeError, InputError, TooLarge
from ..sniff import crc32

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_JPEG_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
EXIF_PREFIX = b"Exif\x00\x00"
PNG_XMP_KEY = "XML:com.adobe.xmp"

# Caps on structure counts: real images have a few dozen chunks/segments; a file
# with millions of empty chunks is hostile and must not cost millions of objects.
MAX_CHUNKS = 100_000
MAX_IFD_ENTRIES = 4096
MAX_PROBLEMS = 50

# EXIF tags the sources need by number.
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_IMAGE_DESCRIPTION = 0x010E
TAG_ARTIST = 0x013B
TAG_EXIF_IFD = 0x8769
TAG_GPS_IFD = 0x8825
TAG_INTEROP_IFD = 0xA005
TAG_USER_COMMENT = 0x9286
TAG_XMP = 0x02BC  # TIFF XMLPacket (IFD0)

T = TypeVar("T")


@dataclass(frozen=True)
class PngChunk:
    type: str  # four ASCII letters, e.g. "tEXt"
    offset: int  # offset of the chunk's data in the file
    length: int
    crc_ok: bool


@dataclass(frozen=True)
class TextChunk:
    """One decoded PNG text chunk (tEXt, zTXt or iTXt)."""

    key: str
    text: str
    chunk_type: str
    offset: int  # offset of the chunk's data in the file
    capped: bool = False  # text longer than Limits.max_text_chunk was cut
    crc_ok: bool = True
    language: str = ""  # iTXt only


@dataclass(frozen=True)
class JpegSegment:
    marker: int  # 0xE0..0xEF for APP0..APP15, 0xFE for COM, ...
    offset: int  # offset of the payload (after the 2-byte length)
    data: bytes

    @property
    def name(self) -> str:
        if 0xE0 <= self.marker <= 0xEF:
            return f"APP{self.marker - 0xE0}"
        return {0xFE: "COM", 0xDB: "DQT", 0xC4: "DHT"}.get(self.marker, f"0x{self.marker:02X}")


@dataclass(frozen=True)
class RiffChunk:
    fourcc: str  # e.g. "VP8L", "EXIF", "XMP "
    offset: int  # offset of the chunk's data in the file
    data: bytes


@dataclass(frozen=True)
class DecodedComment:
    """An EXIF UserComment: its declared character code and the decoded text."""

    text: str
    encoding: str  # "utf-16-be", "utf-16-le", "ascii", "jis", "undefined", "none"
    problems: tuple[str, ...] = ()


@dataclass
class ImageContext:
    """One image file, parsed lazily and once for every evidence source.

    Containers: ``png_chunks()``, ``png_text_chunks()``/``png_text()``/
    ``png_text_map()``, ``jpeg_segments()`` (APP1 Exif/XMP, APP11 JUMBF, ...),
    ``webp_chunks()``. Metadata: ``exif()``, ``gps_present()``, ``exif_bytes()``,
    ``user_comment()``/``user_comment_info()``, ``xmp()``,
    ``make_model_is_workflow()``. Pixels: ``pil()`` (opened, not decoded) and
    ``pixels()`` (decoded once, shared). Sources may cache their own results with
    ``memo()`` and report usable-but-damaged data with ``note_problem()``.
    """

    path: Path
    data: bytes  # whole file (images are capped by Limits.max_image_bytes)
    format: str  # sniffed: "jpeg", "png", "webp", "gif", "tiff", ...
    limits: Limits = field(default_factory=Limits)
    problems: list[str] = field(default_factory=list)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_path(cls, path: Path, limits: Limits | None = None) -> ImageContext:
        """Read a file (bounded by ``max_image_bytes``) and sniff its format."""
        from ..sniff import HEAD_BYTES, sniff_bytes

        lim = limits or Limits()
        try:
            size = path.stat().st_size
            if size > lim.max_image_bytes:
                raise TooLarge(path, f"image file is {size} bytes, limit {lim.max_image_bytes}")
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(path, f"cannot read file: {exc.strerror or exc}") from exc
        return cls(Path(path), data, sniff_bytes(data[:HEAD_BYTES], len(data)).format, lim)

    # -- memo: parse once, and re-raise the same error on every later call -------

    def memo(self, key: str, fn: Callable[[], T]) -> T:
        """Compute ``fn()`` once per context; an InputError is memoized and re-raised."""
        if key not in self._memo:
            try:
                self._memo[key] = (True, fn())
            except InputError as exc:
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def note_problem(self, message: str) -> None:
        """Record a problem that leaves the data usable (reported, not raised).

        At most MAX_PROBLEMS are kept: a file with 100,000 broken chunks needs one
        line saying so, not 100,000.
        """
        if message in self.problems:
            return
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("more problems found; not all are listed")

    def _error(self, reason: str) -> DecodeError:
        return DecodeError(self.path, reason)

    # -- PNG -------------------------------------------------------------------

    def png_chunks(self) -> list[PngChunk]:
        """All chunks up to IEND, each length checked against the file.

        A truncated last chunk ends the walk (reported in ``problems``); chunks
        before it stay usable. Raises DecodeError when the signature is missing.
        """
        return self.memo("png_chunks", self._walk_png)

    def _walk_png(self) -> list[PngChunk]:
        d = self.data
        if not d.startswith(PNG_SIGNATURE):
            raise self._error("not a PNG file (signature missing)")
        view = memoryview(d)
        chunks: list[PngChunk] = []
        pos = len(PNG_SIGNATURE)
        while True:
            if pos == len(d):
                self.note_problem("PNG ends without an IEND chunk")
                break
            if pos + 12 > len(d):
                self.note_problem(f"PNG truncated: {len(d) - pos} stray bytes at offset {pos}")
                break
            length, ctype = struct.unpack_from(">I4s", d, pos)
            if length > 0x7FFFFFFF or pos + 12 + length > len(d):
                self.note_problem(
                    f"PNG chunk {ctype!r} at offset {pos} declares {length} bytes "
                    f"but only {max(0, len(d) - pos - 12)} remain (truncated)"
                )
                break
            if not ctype.isalpha():
                self.note_problem(f"PNG chunk at offset {pos} has an invalid type {ctype!r}")
                break
            (crc,) = struct.unpack_from(">I", d, pos + 8 + length)
            crc_ok = crc32(view[pos + 4 : pos + 8 + length]) == crc  # no copy of the pixel data
            name = ctype.decode("ascii")
            if not crc_ok:
                self.note_problem(f"PNG chunk {name} at offset {pos}: CRC mismatch")
            chunks.append(PngChunk(name, pos + 8, length, crc_ok))
            pos += 12 + length
            if name == "IEND":
                if pos < len(d):
                    self.note_problem(f"{len(d) - pos} bytes after PNG IEND")
                break
            if len(chunks) >= MAX_CHUNKS:
                self.note_problem(f"PNG has more than {MAX_CHUNKS} chunks; stopped reading")
                break
        return chunks

    def chunk_data(self, chunk: PngChunk | RiffChunk) -> bytes:
        if isinstance(chunk, RiffChunk):
            return chunk.data
        return self.data[chunk.offset : chunk.offset + chunk.length]

    def png_text_chunks(self) -> list[TextChunk]:
        """Decoded tEXt/zTXt/iTXt chunks in file order. Malformed ones are skipped
        and reported in ``problems``; oversize text is capped and flagged."""
        if self.format != "png":
            return []
        return self.memo("png_text", self._read_png_text)

    def png_text(self) -> list[tuple[str, str]]:
        """(key, text) of every PNG text chunk, in file order, capped."""
        return [(t.key, t.text) for t in self.png_text_chunks()]

    def png_text_map(self) -> dict[str, str]:
        """First text for each key (PNG allows repeats; readers use the first)."""
        out: dict[str, str] = {}
        for t in self.png_text_chunks():
            out.setdefault(t.key, t.text)
        return out

    def _read_png_text(self) -> list[TextChunk]:
        out: list[TextChunk] = []
        for c in self.png_chunks():
            if c.type not in ("tEXt", "zTXt", "iTXt"):
                continue
            try:
                out.append(self._decode_text_chunk(c))
            except ValueError as exc:
                self.note_problem(f"PNG {c.type} chunk at offset {c.offset - 8} skipped: {exc}")
        return out

    def _decode_text_chunk(self, c: PngChunk) -> TextChunk:
        cap = self.limits.max_text_chunk
        # Never slice more than the cap (plus a header) out of a huge chunk.
        raw = self.data[c.offset : c.offset + min(c.length, cap + 1024)]
        head_truncated = c.length > len(raw)
        nul = raw.find(b"\x00", 0, 80)
        if nul < 1:
            raise ValueError("keyword missing or longer than 79 bytes")
        key = raw[:nul].decode("latin-1")
        rest = raw[nul + 1 :]
        lang = ""
        if c.type == "tEXt":
            body, compressed = rest, False
        elif c.type == "zTXt":
            if not rest or rest[0] != 0:
                raise ValueError("unknown compression method")
            body, compressed = rest[1:], True
        else:  # iTXt: flag, method, language\0, translated keyword\0, text
            if len(rest) < 2:
                raise ValueError("iTXt header truncated")
            flag, method = rest[0], rest[1]
            if flag not in (0, 1) or (flag == 1 and method != 0):
                raise ValueError("invalid iTXt compression flag or method")
            p1 = rest.find(b"\x00", 2)
            p2 = rest.find(b"\x00", p1 + 1) if p1 >= 0 else -1
            if p1 < 0 or p2 < 0:
                raise ValueError("iTXt language or translated keyword unterminated")
            lang = rest[2:p1].decode("latin-1", "replace")
            body, compressed = rest[p2 + 1 :], flag == 1
        capped = False
        if compressed:
            if head_truncated:
                # The compressed stream itself exceeds what we read: inflate what we have.
                capped = True
            body, more = _inflate_bounded(body, cap)
            capped = capped or more
        else:
            capped = head_truncated or len(body) > cap
            body = body[:cap]
        if c.type == "iTXt":
            text = body.decode("utf-8", "replace")
        else:
            text = body.decode("latin-1")
        if capped:
            self.note_problem(
                f"PNG {c.type} chunk {key!r} longer than {cap} bytes: text capped"
            )
        return TextChunk(key, text, c.type, c.offset, capped, c.crc_ok, lang)

    # -- JPEG ------------------------------------------------------------------

    def jpeg_segments(self) -> list[JpegSegment]:
        """Marker segments from SOI up to the first SOS (where metadata lives)."""
        if self.format != "jpeg":
            return []
        return self.memo("jpeg_segments", self._walk_jpeg)

    def _walk_jpeg(self) -> list[JpegSegment]:
        d = self.data
        if not d.startswith(b"\xff\xd8"):
            raise self._error("not a JPEG file (SOI marker missing)")
        segs: list[JpegSegment] = []
        pos = 2
        while pos < len(d):
            if d[pos] != 0xFF:
                self.note_problem(f"JPEG: expected a marker at offset {pos}, found 0x{d[pos]:02X}")
                break
            while pos < len(d) and d[pos] == 0xFF:  # fill bytes
                pos += 1
            if pos >= len(d):
                break
            marker = d[pos]
            pos += 1
            if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
                continue
            if marker in (0xD9, 0xDA):  # EOI, or SOS: entropy-coded data follows
                break
            if pos + 2 > len(d):
                self.note_problem(f"JPEG truncated in the segment header at offset {pos}")
                break
            (length,) = struct.unpack_from(">H", d, pos)
            if length < 2 or pos + length > len(d):
                self.note_problem(
                    f"JPEG segment 0x{marker:02X} at offset {pos} declares {length} bytes "
                    f"but only {len(d) - pos} remain (truncated)"
                )
                break
            segs.append(JpegSegment(marker, pos + 2, d[pos + 2 : pos + length]))
            pos += length
            if len(segs) >= MAX_CHUNKS:
                self.note_problem(f"JPEG has more than {MAX_CHUNKS} segments; stopped reading")
                break
        return segs

    # -- WebP ------------------------------------------------------------------

    def webp_chunks(self) -> list[RiffChunk]:
        """RIFF chunks of a WebP file, each size checked against the file."""
        if self.format != "webp":
            return []
        return self.memo("webp_chunks", self._walk_riff)

    def _walk_riff(self) -> list[RiffChunk]:
        d = self.data
        if len(d) < 12 or d[:4] != b"RIFF" or d[8:12] != b"WEBP":
            raise self._error("not a WebP file (RIFF/WEBP header missing)")
        (riff_size,) = struct.unpack_from("<I", d, 4)
        end = min(len(d), 8 + riff_size)
        if 8 + riff_size > len(d):
            self.note_problem(f"WebP RIFF size {riff_size} exceeds the file ({len(d)} bytes)")
        chunks: list[RiffChunk] = []
        pos = 12
        while pos + 8 <= end:
            fourcc = d[pos : pos + 4].decode("latin-1")
            (size,) = struct.unpack_from("<I", d, pos + 4)
            if pos + 8 + size > end:
                self.note_problem(
                    f"WebP chunk {fourcc!r} at offset {pos} declares {size} bytes "
                    f"but only {end - pos - 8} remain (truncated)"
                )
                break
            chunks.append(RiffChunk(fourcc, pos + 8, d[pos + 8 : pos + 8 + size]))
            pos += 8 + size + (size & 1)
            if len(chunks) >= MAX_CHUNKS:
                self.note_problem(f"WebP has more than {MAX_CHUNKS} chunks; stopped reading")
                break
        return chunks

    # -- EXIF ------------------------------------------------------------------

    def exif_bytes(self) -> bytes | None:
        """The TIFF-structured EXIF block (starting with II/MM), wherever it lives."""
        return self.memo("exif_bytes", self._find_exif)

    def _find_exif(self) -> bytes | None:
        raw: bytes | None = None
        if self.format == "jpeg":
            for s in self.jpeg_segments():
                if s.marker == 0xE1 and s.data.startswith(EXIF_PREFIX):
                    raw = s.data[len(EXIF_PREFIX) :]
                    break
        elif self.format == "png":
            for c in self.png_chunks():
                if c.type == "eXIf":
                    raw = self.chunk_data(c)
                    break
            else:
                raw = self._raw_profile("exif", "APP1")
                if raw is not None and not raw.startswith((EXIF_PREFIX, b"II*\x00", b"MM\x00*")):
                    raw = None  # an APP1 profile holding XMP, not EXIF
        elif self.format == "webp":
            for r in self.webp_chunks():
                if r.fourcc == "EXIF":
                    raw = r.data
                    break
        elif self.format == "tiff":
            raw = self.data
        elif self.format in ("heif", "avif"):
            raw = _as_bytes(self._pillow_info("exif"))
        if raw is not None and raw.startswith(EXIF_PREFIX):
            # Some writers keep the JPEG-style prefix inside PNG/WebP EXIF chunks.
            raw = raw[len(EXIF_PREFIX) :]
        return raw

    def exif(self) -> dict[int, Any]:
        """Tags of IFD0 and the Exif IFD (one flat dict; the numbers do not clash).

        ASCII values are str, UNDEFINED values bytes, one-element numbers scalars.
        GPS is reported by ``gps_present()``. Raises DecodeError on bad offsets
        or IFD loops, naming the offset.
        """
        return self.memo("exif_all", self._parse_exif)[0]

    def gps_present(self) -> bool:
        """True when the EXIF has a GPS IFD with at least one entry."""
        return bool(self.memo("exif_all", self._parse_exif)[1])

    def exif_byte_order(self) -> str | None:
        raw = self.exif_bytes()
        if not raw:
            return None
        return {b"II": "little", b"MM": "big"}.get(raw[:2])

    def _parse_exif(self) -> tuple[dict[int, Any], dict[int, Any]]:
        raw = self.exif_bytes()
        if not raw:
            return {}, {}
        reader = _TiffReader(raw, lambda r: self._error(f"EXIF: {r}"))
        ifd0_off = reader.header()
        tags = reader.ifd(ifd0_off, "IFD0")
        gps: dict[int, Any] = {}
        exif_ptr = tags.pop(TAG_EXIF_IFD, None)
        gps_ptr = tags.pop(TAG_GPS_IFD, None)
        if isinstance(exif_ptr, int):
            sub = reader.ifd(exif_ptr, "Exif IFD")
            sub.pop(TAG_INTEROP_IFD, None)
            for k, v in sub.items():
                tags.setdefault(k, v)
        if isinstance(gps_ptr, int):
            gps = reader.ifd(gps_ptr, "GPS IFD")
        return tags, gps

    def user_comment_info(self) -> DecodedComment | None:
        """The EXIF UserComment with its character code; None when absent."""
        return self.memo("user_comment", self._decode_user_comment)

    def user_comment(self) -> str | None:
        """EXIF UserComment decoded (UNICODE as UTF-16 BE/LE, ASCII, undefined)."""
        info = self.user_comment_info()
        return None if info is None else info.text

    def _decode_user_comment(self) -> DecodedComment | None:
        raw = self.exif().get(TAG_USER_COMMENT)
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = raw.encode("latin-1", "replace")
        elif isinstance(raw, tuple) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
            raw = bytes(raw)  # written with type BYTE instead of UNDEFINED
        if not isinstance(raw, bytes):
            raise self._error("EXIF: UserComment is not a byte string")
        info = decode_user_comment(raw, self.exif_byte_order())
        for p in info.problems:
            self.note_problem(f"EXIF UserComment: {p}")
        return info

    # -- XMP -------------------------------------------------------------------

    def xmp(self) -> bytes | None:
        """The XMP packet (JPEG APP1, PNG iTXt XML:com.adobe.xmp, WebP 'XMP ', TIFF tag
        700, the XMP item of HEIF/AVIF, GIF's 'XMP DataXMP' application extension)."""
        return self.memo("xmp", self._find_xmp)

    def _find_xmp(self) -> bytes | None:
        if self.format == "jpeg":
            for s in self.jpeg_segments():
                if s.marker == 0xE1 and s.data.startswith(XMP_JPEG_PREFIX):
                    return s.data[len(XMP_JPEG_PREFIX) :]
        elif self.format == "png":
            for t in self.png_text_chunks():
                if t.key == PNG_XMP_KEY:
                    return t.text.encode("utf-8")
            return self._raw_profile("xmp")
        elif self.format == "webp":
            for r in self.webp_chunks():
                if r.fourcc == "XMP ":
                    return r.data
        elif self.format == "tiff":
            try:
                raw = self.exif().get(TAG_XMP)
            except InputError:
                return None  # the camera source reports the broken structure
            return _as_bytes(raw)
        elif self.format in ("heif", "avif"):
            return _as_bytes(self._pillow_info("xmp"))
        elif self.format == "gif":
            return _gif_xmp(self.data)
        return None

    def _raw_profile(self, *names: str) -> bytes | None:
        """ImageMagick's PNG text 'Raw profile type NAME' (how it keeps a JPEG's EXIF or
        XMP when it writes PNG): a line with the name, one with the length, then hex."""
        for t in self.png_text_chunks():
            if t.key.lower() in {f"raw profile type {n.lower()}" for n in names}:
                data = _raw_profile_bytes(t.text)
                if data is None:
                    self.note_problem(f"PNG text {t.key!r}: not a hex profile; ignored")
                return data
        return None

    def _pillow_info(self, key: str) -> object:
        """``key`` of the info Pillow reads when it opens the file: the EXIF and XMP items
        of HEIF/AVIF, which its readers (pillow-heif, libavif) locate for us. None when
        Pillow cannot open the file, noted as a container problem."""
        try:
            return self.pil().info.get(key)
        except InputError as exc:
            self.note_problem(f"EXIF and XMP not read: {getattr(exc, 'reason', exc)}")
            return None

    # -- pixels ----------------------------------------------------------------

    def pil(self) -> Image:
        """A lazily opened PIL image (header read, pixels not yet decoded; a PNG's
        decoded, see _open_pil).

        Raises TooLarge above ``Limits.max_pixels`` and DecodeError when Pillow
        cannot identify the file.
        """
        return self.memo("pil", self._open_pil)

    def adopt_image(self, im: Image) -> None:
        """Use ``im``, this file's image already opened (and decoded) by Pillow from the
        same bytes, as ``pil()``: pixel sources then skip their own decode. Ignored when
        ``pil()`` was already asked for, or when the image is over the pixel limit."""
        w, h = im.size
        if "pil" not in self._memo and w * h <= self.limits.max_pixels:
            self._memo["pil"] = (True, im)
            self._memo["decoded"] = (True, im)

    def decoded_image(self) -> Image | None:
        """The image handed over by ``adopt_image`` (pixels already decoded), or None:
        what a source may read a few pixels of without causing a decode."""
        return self._memo.get("decoded", (True, None))[1]  # type: ignore[no-any-return]

    def _png_pixels_only(self, exc: BaseException) -> bytes | None:
        """This PNG without its text chunks and colour profile when Pillow refused them
        (``exc``: inflated past its limits), for the pixel sources; else None. The text
        sources read the chunks from ``data``, under their own limits."""
        from ..media.decode import png_metadata_refused, png_without_metadata

        if self.format != "png" or not png_metadata_refused(exc):
            return None
        return png_without_metadata(self.data)

    def _open_pil(self) -> Image:
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        from ..sniff import load_pillow_plugin, quiet_pillow

        load_pillow_plugin(self.format)
        try:
            with quiet_pillow():
                im = PILImage.open(io.BytesIO(self.data))
        except PILImage.DecompressionBombError as exc:
            raise TooLarge(self.path, f"image too large to open safely: {exc}") from exc
        except UnidentifiedImageError:
            # Pillow's own message names the in-memory buffer's address: no use to anyone,
            # and it made two reports of the same file differ.
            raise self._error(f"Pillow cannot open the image: not a {self.format} image it can identify") from None
        except (OSError, SyntaxError, ValueError, struct.error) as exc:
            if (stripped := self._png_pixels_only(exc)) is None:
                raise self._error(f"Pillow cannot open the image: {exc}") from exc
            try:
                with quiet_pillow():
                    im = PILImage.open(io.BytesIO(stripped), formats=["PNG"])
            except (OSError, SyntaxError, ValueError, struct.error) as again:
                raise self._error(f"Pillow cannot open the image: {again}") from again
        w, h = im.size
        if w * h > self.limits.max_pixels:
            raise TooLarge(self.path, f"image is {w}x{h} pixels, limit {self.limits.max_pixels}")
        if self.format == "png":
            # Text after the image data is read by the decode: one past Pillow's limits
            # would fail every pixel source. Decoded here (they all decode a PNG anyway).
            try:
                with quiet_pillow():
                    im.load()
            except ValueError as exc:
                with quiet_pillow():
                    if (stripped := self._png_pixels_only(exc)) is None:
                        return PILImage.open(io.BytesIO(self.data))  # its error is the pixel sources' to give
                    return PILImage.open(io.BytesIO(stripped), formats=["PNG"])
            except Exception:  # noqa: BLE001 - damage: the pixel sources report it, each as before
                with quiet_pillow():
                    return PILImage.open(io.BytesIO(self.data))
        return im

    def pixels(self) -> np.ndarray:
        """Decoded pixels as an H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 array.

        Decoded once and shared by every source that needs pixels (stealth data,
        NovelAI's signature, watermarks). Other modes are converted, keeping alpha.
        """
        return self.memo("pixels", self._decode_pixels)

    def _decode_pixels(self) -> np.ndarray:
        import numpy as np

        from ..sniff import damaged_pixels, libtiff_reason, quiet_pillow

        im = self.pil()
        libtiff: list[str] = []
        try:
            with quiet_pillow() as libtiff:
                if im.mode not in ("RGB", "RGBA"):
                    has_alpha = "A" in im.getbands() or "transparency" in im.info
                    im = im.convert("RGBA" if has_alpha else "RGB")
                arr = np.asarray(im)
        except (OSError, ValueError, SyntaxError, struct.error) as exc:
            raise self._error(f"pixel data cannot be decoded: {exc}{libtiff_reason(libtiff)}") from exc
        if (damage := damaged_pixels(libtiff)) is not None:
            raise self._error(f"pixel data cannot be decoded: damaged image data (libtiff: {damage})")
        if arr.dtype != np.uint8 or arr.ndim != 3:
            raise self._error(f"unexpected pixel layout {arr.dtype} {arr.shape}")
        return arr

    # -- generator payloads in camera fields -----------------------------------

    def make_model_is_workflow(self) -> bool:
        """True when EXIF Make/Model hold ComfyUI ``workflow:``/``prompt:`` JSON.

        ComfyUI's WebP/AVIF savers abuse these two tags for its graph; a camera
        source must not read them as a camera maker and model.
        """
        try:
            tags = self.exif()
        except InputError:
            return False
        return any(is_comfyui_exif_value(tags.get(t)) for t in (TAG_MAKE, TAG_MODEL))


def is_comfyui_exif_value(value: object) -> bool:
    """Does an EXIF string look like ComfyUI's ``workflow:{...}``/``prompt:{...}``?"""
    if not isinstance(value, str):
        return False
    v = value.lstrip()
    for prefix in ("workflow:", "prompt:", "Workflow:", "Prompt:"):
        if v.startswith(prefix) and v[len(prefix) :].lstrip().startswith("{"):
            return True
    return False


def _inflate_bounded(body: bytes, cap: int) -> tuple[bytes, bool]:
    """Inflate at most ``cap`` bytes; True when more output was left unread."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(body, cap)
    except zlib.error as exc:
        raise ValueError(f"zlib stream is corrupt ({exc})") from exc
    more = bool(d.unconsumed_tail)
    if not more and not d.eof:
        # All input consumed without the stream's end: a truncated stream.
        try:
            out += d.flush()
        except zlib.error as exc:
            raise ValueError(f"zlib stream is corrupt ({exc})") from exc
        if not d.eof:
            raise ValueError("zlib stream is truncated")
    return out[:cap], more


_UC_CODES = {
    b"UNICODE\x00": "unicode",
    b"ASCII\x00\x00\x00": "ascii",
    b"JIS\x00\x00\x00\x00\x00": "jis",
    b"\x00" * 8: "undefined",
}


def decode_user_comment(raw: bytes, byte_order: str | None = None) -> DecodedComment:
    """Decode an EXIF UserComment (8-byte character code, then the text).

    UNICODE is UTF-16 without a fixed byte order in practice: A1111 (piexif) writes
    big-endian, some tools little-endian. A BOM decides; otherwise the side where
    the zero bytes of ASCII-range characters fall; otherwise the TIFF byte order.
    """
    problems: list[str] = []
    code = _UC_CODES.get(raw[:8])
    body = raw[8:] if code else raw
    if code == "unicode":
        enc = _utf16_order(body, byte_order)
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            body = body[2:]
        if len(body) % 2:
            problems.append("UTF-16 text has an odd number of bytes")
        text = body.decode(enc, "replace")
        if "\ufffd" in text:
            problems.append(f"invalid {enc.upper()}: undecodable bytes replaced")
        return DecodedComment(text.rstrip("\x00"), enc, tuple(problems))
    if code == "ascii":
        # Some cameras store binary maker data under an ASCII code; it is not
        # text, and not worth a problem report either.
        text = body.decode("ascii", "replace")
        return DecodedComment(text.rstrip("\x00"), "ascii")
    if code == "jis":
        return DecodedComment(body.decode("shift_jis", "replace").rstrip("\x00"), "jis")
    # Undefined or no code at all: UTF-8 is what modern writers use; latin-1 never fails.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    return DecodedComment(text.rstrip("\x00 "), code or "none", tuple(problems))


def _utf16_order(body: bytes, byte_order: str | None) -> str:
    if body[:2] == b"\xfe\xff":
        return "utf-16-be"
    if body[:2] == b"\xff\xfe":
        return "utf-16-le"
    sample = body[:4096]
    even_zeros = sample[0::2].count(0)
    odd_zeros = sample[1::2].count(0)
    if even_zeros > odd_zeros:
        return "utf-16-be"
    if odd_zeros > even_zeros:
        return "utf-16-le"
    return "utf-16-le" if byte_order == "little" else "utf-16-be"


# TIFF field types: (struct code, size in bytes)
_TIFF_TYPES: dict[int, tuple[str, int]] = {
    1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 6: ("b", 1),
    7: ("s", 1), 8: ("h", 2), 9: ("i", 4), 10: ("ii", 8), 11: ("f", 4), 12: ("d", 8),
}  # fmt: skip


class _TiffReader:
    """A bounded reader for the handful of IFDs EXIF uses.

    Every offset is checked against the block; each IFD is read at most once, so
    a pointer back to an IFD already read is reported as a loop, never followed.
    """

    def __init__(self, raw: bytes, error: Callable[[str], InputError]) -> None:
        self.raw = raw
        self.error = error
        self.order = "<"
        self.seen: set[int] = set()

    def header(self) -> int:
        r = self.raw
        if len(r) < 8 or r[:2] not in (b"II", b"MM"):
            raise self.error("TIFF header missing (expected 'II' or 'MM')")
        self.order = "<" if r[:2] == b"II" else ">"
        magic, off = struct.unpack_from(self.order + "HI", r, 2)
        if magic != 42:
            raise self.error(f"bad TIFF magic {magic} (expected 42)")
        return int(off)

    def ifd(self, off: int, name: str) -> dict[int, Any]:
        r, o = self.raw, self.order
        if off in self.seen:
            raise self.error(f"{name} at offset {off} was already read: IFD loop")
        self.seen.add(off)
        if off < 8 or off + 2 > len(r):
            raise self.error(f"{name} offset {off} outside the EXIF data ({len(r)} bytes)")
        (count,) = struct.unpack_from(o + "H", r, off)
        if count > MAX_IFD_ENTRIES or off + 2 + 12 * count > len(r):
            raise self.error(f"{name} at offset {off} declares {count} entries past the end")
        tags: dict[int, Any] = {}
        for i in range(count):
            e = off + 2 + 12 * i
            tag, typ, n = struct.unpack_from(o + "HHI", r, e)
            if typ not in _TIFF_TYPES:
                continue  # unknown types are skipped, as the TIFF spec asks
            code, size = _TIFF_TYPES[typ]
            total = size * n
            if total <= 4:
                start = e + 8
            else:
                (start,) = struct.unpack_from(o + "I", r, e + 8)
                if start + total > len(r):
                    raise self.error(
                        f"{name} tag 0x{tag:04X} value at offset {start} ({total} bytes) "
                        f"outside the EXIF data ({len(r)} bytes)"
                    )
            tags[tag] = self._value(typ, code, n, r[start : start + total])
        return tags

    def _value(self, typ: int, code: str, n: int, blob: bytes) -> Any:
        if typ == 2:
            return blob.split(b"\x00", 1)[0].decode("utf-8", "replace")
        if typ == 7 or (typ == 1 and n > 4096):
            # BYTE like UNDEFINED when long: Pillow writes a UserComment given as bytes as
            # BYTE, and a long prompt there is text, not a numeric array to drop
            return blob
        if n > 4096:
            return None  # long numeric arrays (e.g. maker data) are not evidence here
        vals = struct.unpack(self.order + code * n, blob)
        if typ in (5, 10):
            vals = tuple((vals[i], vals[i + 1]) for i in range(0, len(vals), 2))
        return vals[0] if len(vals) == 1 else vals


def _as_bytes(raw: object) -> bytes | None:
    """An XMP packet read as UNDEFINED, BYTE (numbers) or text, as bytes; None if empty."""
    if isinstance(raw, tuple) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
        raw = bytes(raw)
    elif isinstance(raw, str):
        raw = raw.encode("utf-8")
    return raw if isinstance(raw, bytes) and raw else None


_GIF_XMP = b"!\xff\x0bXMP DataXMP"  # extension introducer, application label, its id
_GIF_XMP_MAX = 4 * 1024 * 1024


def _gif_xmp(data: bytes) -> bytes | None:
    """The packet of GIF's XMP application extension. XMP writes it as raw bytes (the
    sub-block lengths are the packet's own bytes, closed by a 258-byte "magic trailer"),
    so it is read up to the packet's end marker, not block by block."""
    start = data.find(_GIF_XMP)
    if start < 0:
        return None
    start += len(_GIF_XMP)
    window = data[start : start + _GIF_XMP_MAX]
    end = window.find(b"<?xpacket end=")
    if end >= 0:
        close = window.find(b"?>", end)
        end = close + 2 if close >= 0 else -1
    else:
        end = window.find(b"</x:xmpmeta>")
        end = end + len(b"</x:xmpmeta>") if end >= 0 else -1
    return window[:end] if end > 0 else None


_MAX_RAW_PROFILE = 16 * 1024 * 1024
_PROFILE_LENGTH = re.compile(r"[0-9]{1,9}")


def _raw_profile_bytes(text: str) -> bytes | None:
    """The bytes of an ImageMagick raw profile ("\nname\n   length\nhex..."), or None."""
    parts = text.strip().split(None, 2)
    # ASCII digits, few of them: str.isdigit took "²" and 5,000-digit lengths, which int()
    # then refused with a ValueError every source reported as its own failure
    if len(parts) < 3 or not _PROFILE_LENGTH.fullmatch(parts[1]):
        return None
    length = int(parts[1])
    if length > _MAX_RAW_PROFILE:
        return None
    digits = "".join(parts[2].split())[: 2 * length]
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        return None
    return data or None
