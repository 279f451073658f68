"""Archives read through libarchive, one member at a time: RAR (4 and 5) and ISO 9660
disc images (a CD or DVD image; a DVD's UDF through its ISO 9660 bridge).

libarchive (the library behind bsdtar, fuzzed continuously by OSS-Fuzz) reads these as a
forward stream, as it reads every format; the ``libarchive-c`` package binds the
system's ``libarchive.so``. Each member is handed to the walker as a stream that is valid
until the next header is read, so a solid archive is decompressed once. Members whose
data is encrypted are reported as such (assay never guesses passwords); a damaged
member ends the walk of the archive, as in a tar stream (what follows depends on it in
a solid archive).
"""

from __future__ import annotations

import ctypes
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .members import ArchiveError, Member

__all__ = ["libarchive_members"]

# assay's format name -> libarchive's reader (RAR: by its version, see _reader_format)
_READERS = {"rar": "rar", "iso": "iso9660"}
_NAMES = {"rar": "RAR archive", "iso": "ISO 9660 image"}


class _Blocks(io.RawIOBase):
    """The current member's data blocks as a file; libarchive's errors become OSError."""

    def __init__(self, blocks: Iterator[bytes], error: type[Exception]) -> None:
        self._blocks = blocks
        self._error = error
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            while not self._left:
                self._left = next(self._blocks)
        except StopIteration:
            return 0
        except self._error as exc:
            raise OSError(str(exc)) from exc
        n = min(len(b), len(self._left))
        b[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _encrypted_test(libarchive: Any) -> Any:
    """``archive_entry_is_data_encrypted`` of the loaded libarchive, or None."""
    try:
        f = libarchive.ffi.libarchive.archive_entry_is_data_encrypted
        f.argtypes, f.restype = [ctypes.c_void_p], ctypes.c_int
        return f
    except AttributeError:
        return None


def libarchive_members(path: Path, fmt: str, max_members: int) -> Iterator[Member]:
    what = _NAMES[fmt]
    try:
        import libarchive
        from libarchive.exception import ArchiveError as LibArchiveError
    except (ImportError, OSError) as exc:  # the package, or the system library, is missing
        raise ArchiveError(f"{what}s are read with libarchive: install the system library "
                           "(Debian: apt install libarchive13) and the libarchive-c package "
                           f"({type(exc).__name__}: {exc})", code="unsupported-format") from exc
    is_encrypted = _encrypted_test(libarchive)
    try:
        reader = libarchive.file_reader(str(path), format_name=_reader_format(path, fmt))
        archive = reader.__enter__()
    except LibArchiveError as exc:
        raise ArchiveError(f"not a readable {what}: {exc}") from exc
    except OSError as exc:
        raise ArchiveError(f"cannot read: {exc.strerror or exc}", code="bad-input") from exc
    count = 0
    try:
        entries = iter(archive)
        while True:
            try:
                entry = next(entries)
            except StopIteration:
                return
            except LibArchiveError as exc:
                raise ArchiveError(f"damaged {what} after {count} members: {exc}") from exc
            count += 1
            if count > max_members:
                raise ArchiveError(f"{what} holds more than {max_members} members; the rest not read",
                                   code="too-large")
            name = entry.pathname or ""
            if fmt == "iso" and name in (".", "./"):
                continue  # the image's root folder
            m = Member(name=name, size=entry.size if entry.size is not None and entry.size >= 0 else None)
            mtime = entry.mtime
            if isinstance(mtime, int | float) and mtime > 0:
                m.mtime = datetime.fromtimestamp(mtime, UTC).isoformat()
            if entry.isdir:
                m.kind = "dir"
            elif entry.issym:
                m.kind, m.link_target = "link", (entry.linkpath or "")[:4096]
            elif not entry.isreg:
                m.kind = "other"
            elif is_encrypted is not None and is_encrypted(entry._entry_p):
                m.encrypted = True
            else:
                stream = _Blocks(iter(entry.get_blocks()), LibArchiveError)
                m.open = lambda s=stream: io.BufferedReader(s, 1 << 20)
            yield m
    finally:
        try:
            reader.__exit__(None, None, None)
        except LibArchiveError:
            pass


def _reader_format(path: Path, fmt: str) -> str:
    if fmt != "rar":
        return _READERS[fmt]
    with open(path, "rb") as f:
        return "rar" if f.read(7) == b"Rar!\x1a\x07\x00" else "rar5"
