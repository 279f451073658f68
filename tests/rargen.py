"""RAR 4.x archives with stored (uncompressed) members, written by hand from the format's
published technical note (RARLAB's TechNote.txt), for the RAR reader's tests: the `rar`
program that makes compressed ones is not free software and is not installed here.

Blocks: the marker (``Rar!\\x1a\\x07\\x00``), the archive header (type 0x73), one file
header (0x74) per member followed by its bytes, the end of archive (0x7b). Every header
starts with HEAD_CRC (the low 16 bits of the CRC32 of the header after this field),
HEAD_TYPE, HEAD_FLAGS and HEAD_SIZE."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

MARKER = b"Rar!\x1a\x07\x00"
_LONG_BLOCK = 0x8000  # ADD_SIZE present (file headers: the packed size)
_PASSWORD = 0x0004  # the member is encrypted
_DIRECTORY = 0x00E0  # dictionary bits 111: a directory


def _block(kind: int, flags: int, body: bytes) -> bytes:
    head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def member(name: str, data: bytes, *, encrypted: bool = False, directory: bool = False,
           dos_time: int = 0x5A8C0000) -> bytes:
    """One file header and its bytes, stored (method 0x30)."""
    raw = name.encode("utf-8")
    flags = _LONG_BLOCK | (_PASSWORD if encrypted else 0) | (_DIRECTORY if directory else 0)
    attr = 0x10 if directory else 0x20
    body = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data) & 0xFFFFFFFF,
                       dos_time, 29, 0x30, len(raw), attr) + raw
    return _block(0x74, flags, body) + data


def rar(path: Path, members: Iterable[tuple[str, bytes]] | Iterable[bytes], *, raw: bool = False) -> Path:
    """A RAR 4 archive of (name, bytes) members, or of pre-built ``member()`` blocks
    with ``raw``."""
    blocks = list(members) if raw else [member(n, d) for n, d in members]  # type: ignore[misc]
    out = MARKER + _block(0x73, 0, bytes(6)) + b"".join(blocks) + _block(0x7B, 0x4000, b"")
    path.write_bytes(out)
    return path


# -- RAR 5 (RARLAB's "RAR 5.0 archive format" note): headers of variable-length integers

MARKER5 = b"Rar!\x1a\x07\x01\x00"


def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _header5(kind: int, flags: int, fields: bytes, data_size: int | None = None) -> bytes:
    body = _vint(kind) + _vint(flags | (0x0002 if data_size is not None else 0))
    body += (_vint(data_size) if data_size is not None else b"") + fields
    sized = _vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(sized) & 0xFFFFFFFF) + sized


def rar5(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    """A RAR 5 archive of stored (method 0) members with CRC32s."""
    out = bytearray(MARKER5 + _header5(1, 0, _vint(0)))
    for name, data in members:
        raw = name.encode("utf-8")
        fields = (_vint(0x0004) + _vint(len(data)) + _vint(0x20)  # file flags: CRC32 present
                  + struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)
                  + _vint(0) + _vint(0) + _vint(len(raw)) + raw)  # store, Windows, name
        out += _header5(2, 0, fields, len(data)) + data
    out += _header5(5, 0, _vint(0))
    path.write_bytes(bytes(out))
    return path
