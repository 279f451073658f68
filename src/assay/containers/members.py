"""What an archive reader hands out: one member at a time, never the whole archive."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MemberKind = str  # "file" | "dir" | "link" | "other"


class ArchiveError(Exception):
    """The archive itself cannot be read (any further): corrupt, truncated, encrypted
    headers, unsupported. Members already read keep their records."""

    def __init__(self, reason: str, code: str = "decode-error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class Member:
    name: str  # exactly as stored in the archive (never used as a path to write to)
    kind: MemberKind = "file"
    size: int | None = None  # declared uncompressed size (a claim: may lie)
    compressed_size: int | None = None
    encrypted: bool = False
    link_target: str | None = None
    hard_link: bool = False  # a tar hard link: its target is a member name, not a path from the link
    problem: str | None = None  # why the member cannot be read (e.g. unsupported method)
    problem_code: str = "unsupported-format"  # the record's error code for ``problem``
    # The content as a stream, valid until the reader moves to the next member ...
    open: Callable[[], BinaryIO] | None = None
    # ... or already in a bounded temporary file that the walker may take over.
    local_path: Path | None = None
    overflowed: bool = False  # the reader stopped writing local_path at its limit
    independent: bool = False  # a corrupt member leaves the others readable (zip), unlike a stream
    mtime: str | None = None  # the modification time stored in the archive (ISO 8601)
    # The content as a lenient loader reads it (at most the given bytes; None when it
    # cannot), for a member the strict reader refuses: zip's encryption flag, CRC, headers.
    lenient: Callable[[int], bytes | None] | None = None


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name(name: str) -> str | None:
    """Why a member name would be dangerous to extract (zip slip and kin), or None.
    assay never extracts by name; the finding is evidence about the archive."""
    if "\x00" in name:
        return "member name contains a NUL byte"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "member name is an absolute path"
    if any(part == ".." for part in re.split(r"[/\\]", name)):
        return "member name climbs out of the archive with '..' (zip slip)"
    if any(ord(c) < 32 for c in name):
        return "member name contains control characters"
    return None


def unsafe_link(name: str, target: str, *, hard: bool = False) -> str | None:
    """Why a link member's target would lead an extractor out of its folder, or None:
    an absolute target, or one that climbs above the archive's root from where the link
    lies (a symbolic link's target is relative to its folder, a tar hard link's to the
    root). Extracting such a link, then a member written through it, writes outside
    (CVE-2007-4559 and kin); assay never extracts, the finding is evidence."""
    if not target:
        return None
    shown = target[:200]
    if target.startswith(("/", "\\")) or _DRIVE.match(target):
        return f"link target {shown!r} is an absolute path outside the archive"
    parts = [] if hard else [p for p in re.split(r"[/\\]", name)[:-1] if p not in ("", ".")]
    depth = len(parts)
    for part in re.split(r"[/\\]", target):
        if part == "..":
            depth -= 1
            if depth < 0:
                return f"link target {shown!r} climbs out of the archive with '..'"
        elif part not in ("", "."):
            depth += 1
    return None


_SUFFIX = re.compile(r"\.[A-Za-z0-9_]{1,12}$")


def safe_suffix(name: str) -> str:
    """The member's extension, if it is a plain one (some readers look at it)."""
    m = _SUFFIX.search(name.rsplit("/", 1)[-1])
    return m.group(0) if m else ""
