"""Tar archives (plain, gzip, bzip2, xz), read as one forward stream.

Stream mode (``r|*``) never seeks, so a compressed tar is decompressed once, member
by member; the reader forgets each header after use (tarfile would keep them all).
A gzip/bzip2/xz/lz4 file that is not a tar is one member: the decompressed stream; so is
a raw zlib or .lzma stream holding a pickle (joblib's compressed files).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from .lz4frame import lz4_open
from .members import ArchiveError, Member


class _ZlibReader(io.RawIOBase):
    """A raw zlib stream read forward, never more output at once than asked for."""

    def __init__(self, path: Path | BinaryIO, mode: str = "rb") -> None:
        self._raw: BinaryIO = open(path, "rb") if isinstance(path, str | Path) else path  # noqa: SIM115
        self._own = isinstance(path, str | Path)
        self._d = zlib.decompressobj()
        from ..sniff import joblib_zfile_offset

        head = self._raw.read(22)
        self._raw.seek(-len(head), 1)
        skip = joblib_zfile_offset(head)  # joblib's old format: its header, then the stream
        if skip:
            self._raw.seek(skip, 1)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        out = b""
        while not out and not self._d.eof:
            data = self._d.unconsumed_tail or self._raw.read(1 << 16)
            if not data:
                raise EOFError("zlib stream ends before its end marker")
            out = self._d.decompress(data, len(b))
        b[: len(out)] = out
        return len(out)

    def close(self) -> None:
        if self._own and not self.closed:
            self._raw.close()
        super().close()


def _zlib_open(path: Path | BinaryIO, mode: str = "rb") -> BinaryIO:
    return io.BufferedReader(_ZlibReader(path, mode))  # type: ignore[return-value]


_OPENERS = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open, "lzma": lzma.open, "zlib": _zlib_open,
            "lz4": lz4_open}
# What a corrupt or hostile stream makes the standard library raise.
STREAM_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError,
                 UnicodeDecodeError, OverflowError)


def tar_members(path: Path, fmt: str, display_name: str) -> Iterator[Member]:
    with open(path, "rb") as raw:
        if fmt != "tar" and not _is_tar_inside(raw, fmt):
            yield from _single_stream(path, fmt, display_name)
            return
        raw.seek(0)
        try:
            tf = tarfile.open(fileobj=raw, mode="r|*")
        except STREAM_ERRORS as exc:
            raise ArchiveError(f"not a readable tar archive: {exc}") from exc
        with tf:
            while True:
                try:
                    ti = tf.next()
                except STREAM_ERRORS as exc:
                    raise ArchiveError(f"corrupt tar stream: {exc}") from exc
                if ti is None:
                    return
                tf.members.clear()  # stream mode needs none of them; keep memory flat
                yield _member(tf, ti)


def _is_tar_inside(raw: BinaryIO, fmt: str) -> bool:
    try:
        with _OPENERS[fmt](raw, "rb") as f:  # type: ignore[operator]
            block = f.read(512)
    except STREAM_ERRORS:
        return True  # let the tar reader report the corruption
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _member(tf: tarfile.TarFile, ti: tarfile.TarInfo) -> Member:
    m = Member(name=ti.name, size=ti.size)
    try:  # tar stores seconds since the epoch: UTC
        m.mtime = datetime.fromtimestamp(ti.mtime, UTC).isoformat()
    except (OverflowError, OSError, ValueError, TypeError):
        pass
    if ti.isdir():
        m.kind = "dir"
    elif ti.issym() or ti.islnk():
        m.kind = "link"
        m.link_target = ti.linkname
        m.hard_link = ti.islnk()
        m.size = None
    elif ti.isfile():
        m.open = lambda: tf.extractfile(ti)  # type: ignore[assignment,return-value]
    else:
        m.kind = "other"  # devices, fifos: nothing to read
    return m


def _single_stream(path: Path, fmt: str, display_name: str) -> Iterator[Member]:
    base = display_name.rsplit("!/", 1)[-1].rsplit("/", 1)[-1]
    for suffix in (".gz", ".tgz", ".bz2", ".xz", ".gzip", ".z", ".lzma", ".lz4"):
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    else:
        base = base + ".decompressed"
    with _OPENERS[fmt](path, "rb") as f:  # type: ignore[operator]
        yield Member(name=base, open=lambda: f)  # type: ignore[arg-type,return-value]

