"""JPEG XL: the image size from the codestream's SizeHeader, read before any decoder runs.

The JPEG XL reader assay uses (the optional ``pillow-jxl-plugin``, on jxl-oxide) decodes
the whole image when Pillow opens the file, so the pixel limit must be checked on the
declared size first. The size is the first field of the codestream (after ``FF 0A``),
bit-packed, least significant bit first (ISO/IEC 18181-1, SizeHeader); in the ISOBMFF
container the codestream is the payload of the ``jxlc`` box, or of the ``jxlp`` boxes
(each after a 4-byte index).
"""

from __future__ import annotations

import struct

__all__ = ["jxl_size"]

_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}
_SIZE_BITS = (9, 13, 18, 30)
MAX_BOXES = 64  # boxes looked through for the codestream (signature, ftyp, metadata ...)


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> int:
        out = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("codestream ends inside its size header")
            out |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return out

    def u32(self) -> int:
        return self.take(_SIZE_BITS[self.take(2)])


def _codestream(data: bytes) -> bytes | None:
    """The start of the codestream: the file itself (``FF 0A``) or a container box's payload."""
    if data[:2] == b"\xff\x0a":
        return data
    pos = 0
    for _ in range(MAX_BOXES):
        if pos + 8 > len(data):
            return None
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            if pos + 16 > len(data):
                return None
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < head:
            return None
        if kind == b"jxlc":
            return data[pos + head:pos + size]
        if kind == b"jxlp":
            return data[pos + head + 4:pos + size]
        pos += size
    return None


def jxl_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a JPEG XL file declares, or None when no size header can be read."""
    cs = _codestream(data)
    if cs is None or cs[:2] != b"\xff\x0a":
        return None
    bits = _Bits(cs[2:2 + 16])
    try:
        small = bits.take(1)
        height = (bits.take(5) + 1) * 8 if small else bits.u32() + 1
        ratio = bits.take(3)
        if ratio:
            num, den = _RATIOS[ratio]
            width = height * num // den
        else:
            width = (bits.take(5) + 1) * 8 if small else bits.u32() + 1
    except ValueError:
        return None
    return width, height
