"""Zip archives, read from the central directory with the standard library."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

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
    try:
        zf = open_zip(path)
    except ArchiveError:
        # zipfile gives up where torch's zip reader may not (a stray end-record signature
        # in the last bytes): what torch.load would read is still read, then the error
        yield from _torch_only_members(path, set(), max_members)
        raise
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise ArchiveError(f"zip archive lists {len(infos)} members (limit {max_members}); not read",
                               code="too-large")
        listed: dict[str, Any] = {}  # the members as the pickle scanner lists them, on first need
        for info in infos:
            m = _member(zf, info)
            if m.kind in ("file", "link") and info.compress_type != 99:  # AES: no loader reads it plain
                m.lenient = lambda limit, name=info.filename: _lenient_read(path, name, limit, listed)
            yield m
        yield from _torch_only_members(path, {(i.filename, i.header_offset) for i in infos},
                                       max_members - len(infos))


def _torch_only_members(path: Path, known: set[tuple[str, int]], room: int) -> Iterator[Member]:
    """The members torch's zip reader lists and zipfile does not (two central
    directories: the pickle scanner's zip_entries reads both), each named after the
    directory that lists it and read as torch reads it."""
    from ..errors import InputError
    from ..models.pickles import (
        MAX_PICKLE_BYTES,
        PickleReport,
        miniz_directory,
        read_zip_entry,
        zip_entries,
    )

    try:
        with open(path, "rb") as f:
            view = miniz_directory(f, f.seek(0, 2))
            if not view or all((m[0], m[-1]) in known for m in view[1]):
                return  # (the usual case: both readers list the same members)
            entries = [e for e in zip_entries(f, str(path), PickleReport(str(path)))
                       if (e.name, e.header_offset) not in known]
    except (InputError, OSError):
        return
    for e in entries[: max(room, 0)]:
        def read(e: Any = e) -> io.BytesIO:
            with open(path, "rb") as f:
                try:
                    return io.BytesIO(read_zip_entry(f, e, str(path), MAX_PICKLE_BYTES, ignore_encryption=True))
                except InputError as exc:
                    raise ValueError(exc.reason) from exc  # (a corrupt member: its own error record)

        m = Member(name=f"{e.name} (only in the central directory at byte {view[0]}, which torch reads)",
                   size=e.size, compressed_size=e.compressed_size, independent=True, open=read)
        if e.size > MAX_PICKLE_BYTES:  # (a storage, read into memory here: not past the pickle limit)
            m.problem, m.problem_code, m.open = f"{e.size} bytes: too large to read here", "too-large", None
        yield m


def _lenient_read(path: Path, name: str, limit: int, listed: dict[str, Any]) -> bytes | None:
    """The member ``name`` as a lenient loader reads it: from its local data offset with
    the central directory's sizes, ignoring the encryption flag and the CRC (PyTorch's
    zip reader does), or None when even that fails or it is over ``limit`` bytes."""
    from ..errors import InputError
    from ..models.pickles import PickleReport, read_zip_entry, zip_entries

    try:
        with open(path, "rb") as f:
            if "entries" not in listed:
                # problems of the container are the pickle scanner's findings, not errors here
                entries: dict[str, Any] = {}
                for e in zip_entries(f, str(path), PickleReport(str(path))):
                    entries.setdefault(e.name, e)  # (zipfile's own come first)
                listed["entries"] = entries
            entry = listed["entries"].get(name)
            if entry is None:
                return None
            return read_zip_entry(f, entry, str(path), limit, ignore_encryption=True)
    except (InputError, OSError):
        listed.setdefault("entries", {})
        return None


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
