"""Exact hashes of files: the known-file analyzer for files that are neither images nor
models, and the custody step that gives every file record its MD5, SHA-1 and SHA-256
(computing only what the analyzers did not, in one read) and its file-system times."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from ..errors import InputError
from ..report.schema import FileRecord, FileTimes, SignalValue
from .analyzer import Subject

_BUF = 4 * 1024 * 1024
CUSTODY_HASHES = ("md5", "sha1", "sha256")  # every file record carries these three
CACHE_BYTES = "bytes"  # the file's bytes when an analyzer already read them (images)


def _new(name: str) -> hashlib._Hash:
    return hashlib.new(name, usedforsecurity=False) if name != "sha256" else hashlib.sha256()


def digests(path: str | Path, names: tuple[str, ...] = CUSTODY_HASHES, *, buf_size: int = _BUF) -> dict[str, str]:
    """The named hashes of a file, in one streaming read."""
    hashers = [_new(n) for n in names]
    buf = bytearray(buf_size)
    view = memoryview(buf)
    try:
        with open(path, "rb") as f:
            while n := f.readinto(buf):
                for h in hashers:
                    h.update(view[:n])
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    return {n: h.hexdigest() for n, h in zip(names, hashers, strict=True)}


def md5_sha256(path, *, buf_size: int = _BUF) -> tuple[str, str]:
    """MD5 and SHA-256 of a file in one streaming read."""
    d = digests(path, ("md5", "sha256"), buf_size=buf_size)
    return d["md5"], d["sha256"]


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def fs_times(st: os.stat_result) -> FileTimes:
    """A file's times as the file system reports them (UTC ISO 8601). ``ctime`` is the
    inode change time on POSIX (not a creation time)."""
    return FileTimes(source="filesystem", mtime=_utc(st.st_mtime), ctime=_utc(st.st_ctime), atime=_utc(st.st_atime))


def complete_custody(subject: Subject, record: FileRecord) -> None:
    """Add whichever of MD5, SHA-1 and SHA-256 the analyzers did not produce: from the
    bytes an analyzer kept in the cache, else in one read of the file. Never hashes
    anything twice."""
    have = {s.type for s in record.signals if s.variant is None}
    missing = tuple(n for n in CUSTODY_HASHES if n not in have)
    if not missing or not subject.path.is_file():
        return
    data = subject.cache.get(CACHE_BYTES)
    if isinstance(data, bytes) and len(data) == subject.size:
        found = {}
        for n in missing:
            h = _new(n)
            h.update(data)
            found[n] = h.hexdigest()
    else:
        found = digests(subject.path, missing)
    for n in missing:
        record.signals.append(SignalValue(type=n, value=found[n]))


class FileHashAnalyzer:
    name: ClassVar[str] = "file-hash"
    # Videos: media/analyzer.VideoHashAnalyzer reads them once for these and video_md5.
    kinds: ClassVar[frozenset[str]] = frozenset({"other", "archive", "document", "audio"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        if subject.path.is_dir():
            return
        d = digests(subject.path)
        for n in CUSTODY_HASHES:
            record.signals.append(SignalValue(type=n, value=d[n]))
