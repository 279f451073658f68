"""Zip archives, read from the central directory with the standard library."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from .members import ArchiveError, Member

# Compression methods the standard library inflates; others are reported, not guessed.
_SUPPORTED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_METHOD_NAMES = {9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstandard", 95: "xz", 97: "wavpack", 98: "ppmd",
                 99: "AES encryption"}


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError,
            OverflowError, KeyError, IndexError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"not a readable zip archive: {exc}") from exc


def zip_members(path: Path, max_members: int) -> Iterator[Member]:
    with open_zip(path) as zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise ArchiveError(f"zip archive lists {len(infos)} members (limit {max_members}); not read",
                               code="too-large")
        for info in infos:
            yield _member(zf, info)


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    m = Member(name=info.filename, size=info.file_size, compressed_size=info.compress_size, independent=True)
    try:  # DOS time: the archiving machine's local time, no zone stored
        m.mtime = datetime(*info.date_time).isoformat()
    except ValueError:
        pass
    mode = info.external_attr >> 16
    if info.is_dir():
        m.kind = "dir"
        return m
    if info.flag_bits & 0x1 or info.compress_type == 99:
        m.encrypted = True
        return m
    if info.compress_type not in _SUPPORTED:
        method = _METHOD_NAMES.get(info.compress_type, str(info.compress_type))
        m.problem = f"compression method {method} is not supported; member not read"
        return m
    if stat.S_ISLNK(mode):
        m.kind = "link"
        try:
            with zf.open(info) as f:
                m.link_target = f.read(4096).decode("utf-8", "replace")
        except Exception as exc:  # a corrupt link member is reported, not fatal
            m.problem = f"cannot read link target: {exc}"
        return m
    m.open = lambda: zf.open(info)  # type: ignore[assignment]
    return m
