"""LZ4 frames (``.lz4``; ``joblib.dump(..., compress="lz4")``), decompressed forward.

joblib recognises an LZ4 frame by its magic number and unpickles what it holds, as it
does for zlib, gzip, bz2, xz and lzma: a scanner that cannot open the frame cannot see
the pickle. The standard library has no LZ4; the frame format and its block format are
small (lz4_Frame_format.md, lz4_Block_format.md), so this reader is plain Python: a
bounded stream, one block at a time, the last 64 KiB kept for linked blocks.
Checksums are not verified (a loader that skips them loads the data all the same).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["LZ4_MAGIC", "lz4_open"]

LZ4_MAGIC = b"\x04\x22\x4d\x18"
_SKIPPABLE = range(0x184D2A50, 0x184D2A60)
_WINDOW = 64 * 1024
_BLOCK_MAX = {4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024}


class LZ4Error(ValueError):
    pass


def _extended(src: bytes | memoryview, i: int, value: int, what: str) -> tuple[int, int]:
    """A length of 15 in a token, extended by the bytes from ``i`` (each added; 255 says
    another follows): the length and where the bytes after it start."""
    while True:
        if i >= len(src):
            raise LZ4Error(f"{what} runs past the block")
        b = src[i]
        i += 1
        value += b
        if b != 255:
            return value, i


def decompress_block(src: bytes | memoryview, window: bytes, limit: int) -> bytes:
    """One LZ4 block after ``window`` (the output before it, for matches that reach back);
    at most ``limit`` bytes of output, else LZ4Error."""
    out = bytearray(window)
    base = len(out)
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            lit, i = _extended(src, i, lit, "literal length")
        if i + lit > n:
            raise LZ4Error("literals run past the block")
        out += src[i : i + lit]
        i += lit
        if i >= n:
            break  # the last sequence has no match
        if i + 2 > n:
            raise LZ4Error("match offset runs past the block")
        offset = src[i] | src[i + 1] << 8
        i += 2
        length = token & 15
        if length == 15:
            length, i = _extended(src, i, length, "match length")
        length += 4
        if offset == 0 or offset > len(out):
            raise LZ4Error("match offset reaches before the start of the data")
        if len(out) - base + length > limit:
            raise LZ4Error("block inflates beyond its declared maximum size")
        start = len(out) - offset
        if offset >= length:
            out += out[start : start + length]
        else:  # an overlapping copy repeats the last `offset` bytes
            pattern = bytes(out[start:])
            out += (pattern * (length // offset + 1))[:length]
        if len(out) - base > limit:
            raise LZ4Error("block inflates beyond its declared maximum size")
    return bytes(out[base:])


class _LZ4Reader(io.RawIOBase):
    """The concatenated LZ4 frames of a file, decompressed block by block."""

    def __init__(self, path: Path | str | BinaryIO) -> None:
        self._raw: BinaryIO = open(path, "rb") if isinstance(path, str | Path) else path  # noqa: SIM115
        self._own = isinstance(path, str | Path)
        self._pending = b""
        self._window = b""
        self._in_frame = False
        self._linked = True
        self._block_checksum = False
        self._content_checksum = False
        self._block_max = _BLOCK_MAX[7]
        self._done = False

    def readable(self) -> bool:
        return True

    def _read(self, n: int) -> bytes:
        data = self._raw.read(n)
        if len(data) != n:
            raise EOFError("LZ4 stream ends early")
        return data

    def _frame_header(self) -> bool:
        """Read the next frame's header (skipping skippable frames); False at the end."""
        while True:
            magic = self._raw.read(4)
            if not magic:
                return False
            if len(magic) != 4:
                raise EOFError("LZ4 stream ends inside a frame header")
            value = int.from_bytes(magic, "little")
            if value in _SKIPPABLE:
                size = int.from_bytes(self._read(4), "little")
                self._raw.seek(size, 1)
                continue
            if magic != LZ4_MAGIC:
                raise LZ4Error("not an LZ4 frame")
            flg, bd = self._read(2)
            if flg >> 6 != 1:
                raise LZ4Error(f"LZ4 frame version {flg >> 6} is not supported")
            self._linked = not flg & 0x20
            self._block_checksum = bool(flg & 0x10)
            self._content_checksum = bool(flg & 0x04)
            self._block_max = _BLOCK_MAX.get((bd >> 4) & 7, 0)
            if not self._block_max:
                raise LZ4Error("LZ4 frame declares an unknown block size")
            self._read((8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0) + 1)  # sizes, dictionary id, checksum
            self._window = b""
            return True

    def _next_block(self) -> bytes | None:
        while True:
            if not self._in_frame:
                if not self._frame_header():
                    return None
                self._in_frame = True
            size = int.from_bytes(self._read(4), "little")
            if size == 0:  # end mark
                if self._content_checksum:
                    self._read(4)
                self._in_frame = False
                continue
            stored = bool(size & 0x80000000)
            size &= 0x7FFFFFFF
            if size > self._block_max:
                raise LZ4Error("LZ4 block is larger than its frame's maximum")
            data = self._read(size)
            if self._block_checksum:
                self._read(4)
            if not stored:
                data = decompress_block(data, self._window if self._linked else b"", self._block_max)
            if self._linked:
                self._window = (self._window + data)[-_WINDOW:]
            if data:
                return data

    def readinto(self, b: Any) -> int:
        while not self._pending and not self._done:
            block = self._next_block()
            if block is None:
                self._done = True
            else:
                self._pending = block
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if self._own and not self.closed:
            self._raw.close()
        super().close()


def lz4_open(path: Path | str | BinaryIO, mode: str = "rb") -> BinaryIO:
    return io.BufferedReader(_LZ4Reader(path))  # type: ignore[return-value]
