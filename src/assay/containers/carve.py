r"""Images inside other data, found at their signatures and cut out whole (carving).

A known picture behind junk, a program or a text is a file no magic number at its start
names ("other"): before, nothing in it was looked at. A PDF holds its JPEG photos as
they are (DCTDecode streams), an MP3, FLAC or M4A its cover art. The first
``max_carve_bytes`` of such a file are searched for the start of a JPEG, PNG, GIF or
WebP whose structure holds (a JPEG's segments up to its scan, a PNG's header with its
checksum, a RIFF size inside the file), and each one found is cut out to its own end (a
JPEG's end marker, a PNG's IEND chunk, a GIF's trailer, the RIFF size) and
analysed as a member ``file!/carved@OFFSET.jpg``, with the archive walker's limits. The
exact hashes of a cut-out image are those of the embedded file, so a copy of a known
file behind other data matches exactly, not only by PDQ.

Pictures in text are decoded as they are read and analysed as ``file!/data@OFFSET.png``
(OFFSET: where the encoded text starts): base64 (data URIs, ``data:image/png;base64,...``
in an SVG, a web page, JSON; e-mail attachments, MIME parts in base64), e-mail parts in
quoted-printable, uuencoded files (``begin 644 name``, in old mail and news), and an RTF
document's pictures (``{\pict ... hex}``: Word's and WordPad's PNG and JPEG blips). The
decoded bytes are the embedded file's: exact hashes hold.

A PDF's other images (Flate and the rest) are rebuilt to pixels by pdfimages.py. Not found
this way: formats whose signature is too weak to search for (BMP, TIFF), RTF metafiles and
bitmaps, and anything past ``max_carve_bytes``.
"""

from __future__ import annotations

import binascii
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..sniff import contains
from .members import Member

# Kinds of file searched: nothing at their start names an image, or they may hold one
# as it is (documents, audio covers). Images and archives are not (an image's EXIF
# thumbnail is part of it; an archive's members are read as members), nor videos (a
# Motion-JPEG video would give every frame).
CARVE_KINDS = frozenset({"other", "document", "audio"})
_BLOCK = 8 * 1024**2
_JPEG, _PNG, _GIF, _WEBP = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", b"GIF8", b"WEBPVP8"
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (C4 DHT, C8 JPG, CC DAC)
# Markers that may follow SOI before the frame header (APPn, COM, DQT, DHT, DRI, DAC,
# SOFn): any other second marker byte is not a JPEG's start.
_JPEG_SECOND = frozenset(range(0xE0, 0xF0)) | {0xFE, 0xDB, 0xC4, 0xDD, 0xCC} | _SOF
# Segments (JPEG), chunks (PNG) or blocks and sub-blocks (GIF) followed to find an
# image's end; past that many (padding), a structure that held so far is taken to run to
# the end of what may be cut out (its decoder stops at its own end): ~0.2 s of reads at
# most for one crafted image.
_MAX_STEPS = 200_000


# CPU seconds one file's search may take. Ordinary data is searched at 2-3 ms a MB (the
# whole 256 MB window in under a second); a file made of nothing but false starts (a
# million "Content-Transfer-Encoding: base64" headers over junk) at ~1.3 s a MB, which would
# hold a worker for minutes: its search stops, and its record says where (a file that
# stopped it is searched once more, to cut out what was found: twice this at most).
SEARCH_SECONDS = 20.0


def find_images(f: BinaryIO, size: int, window: int, max_found: int, max_image: int
                ) -> tuple[list[tuple[int, int, str]], str | None]:
    """The images embedded in the first ``window`` bytes of ``f`` (``size`` bytes), as
    (offset, length, format) in file order, none inside another; and why the search ended
    early, if it did (more than ``max_found`` images: the rest left out; out of time,
    SEARCH_SECONDS: the rest not searched), else None. Never one at offset 0 (the file
    itself)."""
    found: list[tuple[int, int, str]] = []
    end_of_last = 1  # nothing at offset 0, nor inside an image already cut out
    limit = min(size, window)
    pos = 0
    deadline = time.thread_time() + SEARCH_SECONDS  # this search's own CPU (a Dask worker runs threads)
    while pos < limit:
        f.seek(pos)
        block = f.read(min(_BLOCK + 16, limit - pos + 16))
        if not block:
            break
        hits = sorted(_hits(block, pos, limit))
        for at, fmt in hits:
            if at < end_of_last:
                continue
            if time.thread_time() > deadline:
                return found, (f"searching for embedded images took over {SEARCH_SECONDS:g} CPU seconds: "
                               f"stopped at byte {at:,} of {limit:,} (the rest not searched)")
            got = _extent(f, at, size, fmt, max_image)
            if got is None:
                continue
            if len(found) >= max_found:
                return found, f"more than {max_found} embedded images; the rest not cut out"
            start, extent, fmt = got
            found.append((start, extent, fmt))
            end_of_last = start + extent
        pos += _BLOCK
    return found, None


# "base64" (any case but its first letter's, which is looked at where found): a data URI's
# ";base64," or an e-mail part's "Content-Transfer-Encoding: base64"; the same for
# "quoted-printable"; a uuencoded file's "begin 644 name" line; an RTF picture's "\pict"
_SIGNATURES = ((_JPEG, "jpeg", 0), (_PNG, "png", 0), (_GIF, "gif", 0), (_WEBP, "webp", 8),
               (b"ase64", "b64", 1), (b"ASE64", "b64", 1), (b"uoted-printable", "qp", 1),
               (b"UOTED-PRINTABLE", "qp", 1), (b"\nbegin ", "uu", -1), (b"\\pict", "pict", 0))


def _hits(block: bytes, base: int, limit: int) -> Iterator[tuple[int, str]]:
    for sig, fmt, back in _SIGNATURES:
        if not contains(block, sig):  # libc's memmem: ~3x bytes.find, and most blocks hold none
            continue
        i = block.find(sig)
        while i >= 0:
            at = base + i - back
            # the overlap's hits are the next block's; a line that starts with "begin " in a
            # text is no uuencoded file unless a mode follows (looked at here, not read again)
            if (0 < at < limit and base <= at < base + _BLOCK
                    and (fmt != "uu" or _uu_start(block, i + len(sig)))):
                yield at, fmt
            i = block.find(sig, i + 1)


def _read(f: BinaryIO, at: int, n: int) -> bytes:
    f.seek(at)
    return f.read(n)


def _extent(f: BinaryIO, at: int, size: int, fmt: str, max_image: int) -> tuple[int, int, str] | None:
    """(where the image found at ``at`` starts, how many bytes it takes, its format), or
    None when it is not one; for an image in text, the format is the encoding's ("base64",
    "qp", "uu", "hex"), a colon and the image's."""
    if fmt == "qp":  # at: the "q" of "quoted-printable"
        before = _read(f, max(0, at - 96), min(at, 96)).lower()
        if not before.rstrip(b" \t").endswith(b"content-transfer-encoding:"):
            return None
        body = _part_body(f, at + 16)
        return None if body is None else _qp_run(f, body, size, max_image)
    if fmt == "uu":  # at: the "b" of "begin"
        line = _read(f, at, 300).split(b"\n", 1)[0]
        if not _UU_BEGIN.match(line):
            return None
        return _uu_run(f, at + len(line) + 1, size, max_image)
    if fmt == "pict":
        return _pict_run(f, at, size, max_image)
    if fmt == "b64":  # at: the "b" of "base64"
        before = _read(f, max(0, at - 96), min(at, 96)).lower()
        after = _read(f, at + 6, 1)
        if before.endswith(b";") and after == b"," and b"data:image/" in before:
            return _base64_run(f, at + 7, size, max_image)  # a data URI
        if before.rstrip(b" \t").endswith(b"content-transfer-encoding:"):
            body = _part_body(f, at + 6)
            return None if body is None else _base64_run(f, body, size, max_image)
        return None
    if fmt == "jpeg":
        n = _jpeg_extent(f, at, size, max_image)
    elif fmt == "png":
        n = _png_extent(f, at, size, max_image)
    elif fmt == "gif":
        n = _gif_extent(f, at, size, max_image)
    else:
        head = _read(f, at, 16)  # RIFF <size> WEBPVP8?
        if len(head) < 16 or head[:4] != b"RIFF" or head[15:16] not in (b" ", b"L", b"X"):
            return None
        n = struct.unpack_from("<I", head, 4)[0] + 8
        n = n if 20 <= n <= min(size - at, max_image) else None
    return None if n is None else (at, n, fmt)


def _part_body(f: BinaryIO, at: int) -> int | None:
    """Where a MIME part's body starts: after its other headers (from ``at``) and a blank line."""
    headers = _read(f, at, 4096)
    blank = min((i + len(sep) for sep in (b"\n\n", b"\n\r\n") if (i := headers.find(sep)) >= 0), default=-1)
    return None if blank < 0 else at + blank


def _image_format(decoded: bytes) -> str | None:
    from ..sniff import sniff_bytes

    found = sniff_bytes(decoded, pickles=False)
    return found.format if found.kind == "image" else None


def _lines_run(f: BinaryIO, at: int, size: int, cap: int, last: re.Pattern[bytes] | None,
               stop: re.Pattern[bytes] | None) -> int:
    """The length of the run of lines from ``at``: up to and including the first line
    that matches ``last``, or up to the first that matches ``stop``, within ``cap`` bytes."""
    f.seek(at)
    pos, end = at, min(size, at + cap)
    while pos < end:
        line = f.readline(min(end - pos, 1 << 20))
        if not line:
            break
        bare = line.rstrip(b"\n")
        if stop is not None and stop.match(bare):
            break
        pos += len(line)
        if last is not None and last.match(bare):
            break
    return min(pos, end) - at


_NOT_SOFT = re.compile(rb"(?!.*=\r?$)")


def _qp_run(f: BinaryIO, at: int, size: int, max_image: int) -> tuple[int, int, str] | None:
    """A quoted-printable part from ``at``: binary data has its line breaks encoded, so
    every line ends with a soft break (=) but its last."""
    fmt = _image_format(binascii.a2b_qp(_read(f, at, 512)))
    if fmt is None:
        return None
    n = _lines_run(f, at, size, max_image * 3 + 4, _NOT_SOFT, None)
    tail = _read(f, at + max(n - 2, 0), min(n, 2))
    n -= 2 if tail == b"\r\n" else 1 if tail.endswith(b"\n") else 0  # the part's line break, not data
    return at, n, f"qp:{fmt}"


_UU_START = re.compile(rb"[0-7]{3,4} [^\n]{1,255}\n([!-M])([ -`]*?)\r?\n")


def _uu_start(block: bytes, i: int) -> bool:
    """Whether the "begin " at ``i`` is followed by a mode, a name and a first line of
    uuencoded data as long as its length character says (or the block ends first)."""
    if len(block) - i < 400:
        return True  # looked at whole by _extent
    m = _UU_START.match(block, i)
    return m is not None and len(m.group(2)) in range((m.group(1)[0] - 32 + 2) // 3 * 4, (m.group(1)[0] - 32 + 2) // 3 * 4 + 2)


_UU_BEGIN = re.compile(rb"begin(?:-base64)? [0-7]{3,4} \S")
_UU_END = re.compile(rb"(?:[` ]\r?)?$|end\r?$")


def _uu_run(f: BinaryIO, at: int, size: int, max_image: int) -> tuple[int, int, str] | None:
    """A uuencoded file's lines from ``at`` (after its "begin" line) up to its empty line
    (a grave accent or a space) or its "end"."""
    head = _uu_decode(_read(f, at, 1024).split(b"\n")[:-1])
    fmt = _image_format(head)
    if fmt is None:
        return None
    return at, _lines_run(f, at, size, max_image * 3 // 2 + 4, None, _UU_END), f"uu:{fmt}"


def _uu_decode(lines: list[bytes]) -> bytes:
    out = []
    for line in lines:
        line = line.rstrip(b"\r")
        if not line:
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:  # encoders that pad lines differently: the bytes the length names
            n = (line[0] - 32) & 63
            try:
                out.append(binascii.a2b_uu(line[: 1 + (n + 2) // 3 * 4]))
            except binascii.Error:
                break  # not uuencoded (any more): the bytes before
    return b"".join(out)


_HEX = frozenset(b"0123456789abcdefABCDEF")
_RTF_SPACE = frozenset(b" \t\r\n")


def _pict_run(f: BinaryIO, at: int, size: int, max_image: int) -> tuple[int, int, str] | None:
    """An RTF picture (``{\\pict ... hex}``): past its control words and groups (blip
    ids, properties) to its data in hex, as Word and WordPad write PNG and JPEG blips
    (a metafile or a bitmap in \\bin form is not an image found here: the raw bytes are
    the carver's)."""
    head = _read(f, at, 64 * 1024)
    if head[5:6].isalpha():
        return None  # another control word
    i, n = 5, len(head)
    while i < n:
        c = head[i]
        if c == 0x7B:  # a group inside: skipped whole
            depth = 0
            while i < n:
                depth += {0x7B: 1, 0x7D: -1}.get(head[i], 0)
                i += 1
                if depth == 0:
                    break
        elif c == 0x5C:  # a control word (letters, a number) or symbol
            j = i + 1
            while j < n and head[j:j + 1].isalpha():
                j += 1
            if head[i + 1:j] == b"bin":
                return None
            if j == i + 1:
                j += 3 if head[j:j + 1] == b"'" else 1
            while j < n and (head[j] in b"-0123456789"):
                j += 1
            i = j + (1 if j < n and head[j] == 0x20 else 0)
        elif c in _RTF_SPACE:
            i += 1
        elif c in _HEX:
            break
        else:
            return None
    if i >= n:
        return None
    start = at + i
    text = head[i:i + 1024].translate(None, _SPACE)
    text = text[: len(text) - len(text) % 2]
    m = _NOT_HEX.search(text)
    try:
        fmt = _image_format(binascii.unhexlify(text[: m.start() - m.start() % 2] if m else text))
    except binascii.Error:
        return None
    if fmt is None:
        return None
    return start, _run(f, start, min(size - start, max_image * 2 + 4 * 1024), _NOT_HEX), f"hex:{fmt}"


def _run(f: BinaryIO, at: int, cap: int, stop: re.Pattern[bytes]) -> int:
    """Bytes from ``at`` (at most ``cap``) before the first that ``stop`` matches."""
    pos = at
    while pos < at + cap:
        chunk = _read(f, pos, min(_BLOCK, at + cap - pos))
        if not chunk:
            break
        m = stop.search(chunk)
        if m is not None:
            return pos + m.start() - at
        pos += len(chunk)
    return pos - at


_NOT_HEX = re.compile(rb"[^0-9A-Fa-f \t\r\n]")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=\s]")
_SPACE = b" \t\r\n\f\v"


def _base64_run(f: BinaryIO, at: int, size: int, max_image: int) -> tuple[int, int, str] | None:
    """An image in base64 from ``at`` (a data URI's, ``data:image/...;base64,``, in an SVG,
    a web page or JSON; an e-mail attachment's), white space allowed: (``at``, the length
    of the run of base64, "base64:" and the format its first bytes decode to), or None
    when they decode to no image."""
    head = _read(f, at, 256).translate(None, _SPACE)
    head = head[:len(head) - len(head) % 4]
    try:
        decoded = binascii.a2b_base64(head)
    except binascii.Error:
        return None
    fmt = _image_format(decoded)
    if fmt is None:
        return None
    return at, _run(f, at, min(size - at, max_image * 4 // 3 + 4), _NOT_BASE64), f"base64:{fmt}"


def _jpeg_extent(f: BinaryIO, at: int, size: int, max_image: int) -> int | None:
    """SOI, then segments with lengths that hold up to a frame header and a scan, then
    the end marker (FF D9: in the entropy-coded data an FF is followed by 00 or a restart
    marker; further tables and scans of a progressive JPEG are segments before it)."""
    head = _read(f, at, 4)
    if len(head) < 4 or head[3] not in _JPEG_SECOND:
        return None
    pos, sof = at + 2, False
    for _ in range(_MAX_STEPS):
        seg = _read(f, pos, 4)
        if len(seg) < 4 or seg[0] != 0xFF:
            return None
        marker, length = seg[1], struct.unpack_from(">H", seg, 2)[0]
        if marker == 0xFF:  # fill bytes before a marker
            pos += 1
            continue
        if length < 2 or marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            return None
        if marker in _SOF:
            sof = True
        if marker == 0xDA:
            if not sof:
                return None
            end = _find(f, b"\xff\xd9", pos + 2 + length, min(size, at + max_image))
            return (end + 2 - at) if end is not None else min(size - at, max_image)
        pos += 2 + length
    return min(size - at, max_image)  # thousands of segments that hold: padding, not chance


def _png_extent(f: BinaryIO, at: int, size: int, max_image: int) -> int | None:
    ihdr = _read(f, at + 8, 25)
    if len(ihdr) < 25 or zlib.crc32(ihdr[4:21]) != struct.unpack_from(">I", ihdr, 21)[0]:
        return None
    pos, stop = at + 33, min(size, at + max_image)
    for _ in range(_MAX_STEPS):
        head = _read(f, pos, 8)
        if len(head) < 8:
            break
        length = struct.unpack_from(">I", head)[0]
        pos += 12 + length
        if head[4:] == b"IEND" or pos >= stop:
            break
    else:
        pos = stop
    return min(pos, stop) - at


def _gif_extent(f: BinaryIO, at: int, size: int, max_image: int) -> int | None:
    """Header, screen descriptor and colour table, then extension and image blocks (each
    ending with an empty sub-block) up to the trailer (3B)."""
    head = _read(f, at, 13)
    if len(head) < 13 or head[4:6] not in (b"7a", b"9a"):
        return None
    w, h, flags = struct.unpack_from("<HHB", head, 6)
    if not (w and h):
        return None
    pos = at + 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    stop = min(size, at + max_image)
    images = steps = 0
    while steps < _MAX_STEPS:
        steps += 1
        kind = _read(f, pos, 1)
        if kind == b"\x3b":
            return pos + 1 - at if images else None
        if kind == b"\x21":  # extension: label, then sub-blocks
            pos += 2
        elif kind == b"\x2c":  # image descriptor, local colour table, LZW code size, sub-blocks
            desc = _read(f, pos, 10)
            if len(desc) < 10:
                return None
            pos += 10 + (3 << ((desc[9] & 7) + 1) if desc[9] & 0x80 else 0) + 1
            images += 1
        else:
            return None
        while steps < _MAX_STEPS:  # sub-blocks: a length byte, then that many bytes; 0 ends them
            steps += 1
            n = _read(f, pos, 1)
            if not n or pos >= stop:
                return None
            pos += 1 + n[0]
            if n[0] == 0:
                break
    return stop - at if images else None


def _find(f: BinaryIO, needle: bytes, start: int, stop: int) -> int | None:
    pos = start
    while pos < stop:
        block = _read(f, pos, min(_BLOCK, stop - pos) + len(needle) - 1)
        i = block.find(needle)
        if i >= 0:
            return pos + i
        if len(block) < len(needle):
            return None
        pos += _BLOCK
    return None


class _Slice:
    """``length`` bytes of the file at ``path`` from ``offset``, read forward."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close(), as a member stream
        self._f.seek(offset)
        self._left = length

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _Slice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_EXT = {"jpeg": "jpg", "tiff": "tif"}


class _Decoded:
    """Text (``length`` bytes at ``offset``) decoded as it is read, a piece at a time:
    base64 (a data URI's, a mail part's) and hex (an RTF picture's) with white space
    dropped, quoted-printable and uuencoded mail a line at a time; a last incomplete
    group or line left out (a cut URI still gives the bytes before it)."""

    def __init__(self, path: Path, offset: int, length: int, encoding: str = "base64") -> None:
        self._text = _Slice(path, offset, length)
        self._encoding = encoding
        self._rest = b""  # characters of an incomplete group or line, for the next piece
        self._out = b""

    def _decode(self, piece: bytes) -> bytes:
        if self._encoding in ("qp", "uu"):
            text = self._rest + piece
            cut = text.rfind(b"\n") + 1 if piece else len(text)
            self._rest = text[cut:]
            return binascii.a2b_qp(text[:cut]) if self._encoding == "qp" else _uu_decode(text[:cut].split(b"\n"))
        text = self._rest + piece.translate(None, _SPACE)
        group = 4 if self._encoding == "base64" else 2
        cut = len(text) - len(text) % group
        self._rest = text[cut:]
        return binascii.a2b_base64(text[:cut]) if group == 4 else binascii.unhexlify(text[:cut])

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._out) < n:
            piece = self._text.read(1 << 20)
            if not piece:
                if self._rest and self._encoding in ("qp", "uu"):
                    self._out += self._decode(b"")  # the last line, with no line break after it
                    self._rest = b""
                    continue
                break
            self._out += self._decode(piece)
        if n < 0:
            n = len(self._out)
        data, self._out = self._out[:n], self._out[n:]
        return data

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> _Decoded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def carved_members(path: Path, found: list[tuple[int, int, str]]) -> Iterator[Member]:
    for offset, length, fmt in found:
        if ":" in fmt:  # text that decodes to an image: base64, hex, quoted-printable, uuencoded
            encoding, image = fmt.split(":", 1)
            yield Member(name=f"data@{offset}.{_EXT.get(image, image)}",
                         open=lambda o=offset, n=length, e=encoding: _Decoded(path, o, n, e),  # type: ignore[misc]
                         independent=True)
            continue

        def opener(offset: int = offset, length: int = length) -> _Slice:
            return _Slice(path, offset, length)

        yield Member(name=f"carved@{offset}.{_EXT.get(fmt, fmt)}", size=length, open=opener,  # type: ignore[arg-type]
                     independent=True)


_MAX_BOXES = 100_000  # boxes looked at in one MP4/MOV, all levels together


def _boxes(f: BinaryIO, start: int, end: int, budget: list[int]) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the ISO BMFF boxes between ``start`` and
    ``end``, while ``budget[0]`` (boxes left to look at) lasts."""
    pos = start
    while budget[0] > 0:
        budget[0] -= 1
        head = _read(f, pos, 16)
        if len(head) < 8:
            return
        n, kind = struct.unpack_from(">I4s", head)
        body = pos + 8
        if n == 1 and len(head) == 16:  # a 64-bit size follows
            n, body = struct.unpack_from(">Q", head, 8)[0], pos + 16
        elif n == 0:  # to the end
            n = end - pos
        if n < body - pos or pos + n > end:
            return
        yield kind, body, pos + n
        pos += n


def _children(f: BinaryIO, span: tuple[int, int], kind: bytes, budget: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for k, a, b in _boxes(f, *span, budget) if k == kind]


def cover_art(f: BinaryIO, size: int, max_found: int, max_image: int) -> list[tuple[int, int, str]]:
    """The cover pictures of an MP4 or MOV (``moov/udta/meta/ilst/covr/data``, or ``meta``
    right under ``moov``), JPEG or PNG, as (offset, length, format): what a player or a
    file browser shows for the video. Video files are not searched byte by byte (a
    Motion-JPEG video's frames); their boxes are followed to the covers."""
    found: list[tuple[int, int, str]] = []
    budget = [_MAX_BOXES]
    for moov in _children(f, (0, size), b"moov", budget)[:1]:
        for where in [*_children(f, moov, b"udta", budget), moov]:
            for start, end in _children(f, where, b"meta", budget):
                if _read(f, start + 4, 4) != b"hdlr":  # a full box (MP4): version and flags first
                    start += 4
                for ilst in _children(f, (start, end), b"ilst", budget):
                    for covr in _children(f, ilst, b"covr", budget):
                        for a, b in _children(f, covr, b"data", budget):
                            # a type (13 JPEG, 14 PNG) and a locale, then the picture as it is
                            if b - a <= 8 or b - a - 8 > max_image or len(found) >= max_found:
                                continue
                            head = _read(f, a + 8, 8)
                            fmt = "jpeg" if head.startswith(_JPEG) else "png" if head == _PNG[:8] else None
                            if fmt:
                                found.append((a + 8, b - a - 8, fmt))
    return found


def embedded_images(path: Path, size: int, window: int, max_found: int, max_image: int,
                    video: bool = False) -> tuple[list[tuple[int, int, str]], str | None]:
    """find_images on the file at ``path`` (``video``: cover_art); nothing when it cannot be read."""
    try:
        with open(path, "rb") as f:
            if video:
                return cover_art(f, size, max_found, max_image), None
            return find_images(f, size, window, max_found, max_image)
    except OSError:
        return [], None

