"""Exact hashes of files that are neither images nor models (known-file matching)."""

from __future__ import annotations

import hashlib
from typing import ClassVar

from ..errors import InputError
from ..report.schema import FileRecord, SignalValue
from .analyzer import Subject

_BUF = 4 * 1024 * 1024


def md5_sha256(path, *, buf_size: int = _BUF) -> tuple[str, str]:
    """MD5 and SHA-256 of a file in one streaming read."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    buf = bytearray(buf_size)
    view = memoryview(buf)
    try:
        with open(path, "rb") as f:
            while n := f.readinto(buf):
                md5.update(view[:n])
                sha.update(view[:n])
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    return md5.hexdigest(), sha.hexdigest()


class FileHashAnalyzer:
    name: ClassVar[str] = "file-hash"
    kinds: ClassVar[frozenset[str]] = frozenset({"other", "archive", "document", "video", "audio"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        if subject.path.is_dir():
            return
        md5, sha = md5_sha256(subject.path)
        record.signals.append(SignalValue(type="md5", value=md5))
        record.signals.append(SignalValue(type="sha256", value=sha))
