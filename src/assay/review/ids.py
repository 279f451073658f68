"""Stable ids of the matches of a scan report, the handle of a review decision.

A match is "this file's content matched this bank entry by this hash". Its id is the
SHA-256 of (the file's SHA-256, bank, content id, signal type, bank value), cut to 16
hex digits: the same file matching the same entry has the same id in every scan and
every report, so a decision made once is shown wherever that match appears again. A
file record without a SHA-256 (never written by a scan since chain of custody) falls
back to its path and the scan id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

ID_LEN = 16


def file_key(rec: Mapping[str, Any], scan_id: str | None = None) -> str:
    for s in rec.get("signals") or ():
        if isinstance(s, Mapping) and s.get("type") == "sha256" and s.get("mode") is None:
            return str(s.get("value"))
    return f"path:{rec.get('path')}|scan:{scan_id or ''}"


def match_id(file_sha256_or_key: str, match: Mapping[str, Any]) -> str:
    key = "\t".join(str(match.get(k) or "") for k in ("bank", "content_id", "signal_type", "value"))
    return hashlib.sha256(f"{file_sha256_or_key}\t{key}".encode("utf-8", "backslashreplace")).hexdigest()[:ID_LEN]


def is_record_id(text: str) -> bool:
    return len(text) == ID_LEN and all(c in "0123456789abcdef" for c in text)
