"""Examiners' hash sets: NIST NSRL RDS v3 (SQLite) and Project VIC VICS JSON.

Both are read as streams of :class:`ImportRecord`, like the line formats in
:mod:`assay.banks.formats`, and every problem is reported with where it is (a row of
the ``FILE`` table, an item of the VICS ``value`` list).

NSRL RDS v3 is a SQLite database: ``FILE (sha256, sha1, md5, crc32?, file_name,
file_size, package_id)`` plus ``PKG``/``OS``/``MFG`` (the "minimal" and "modern"
subsets have the same ``FILE`` table). One entry per SHA-256 (or SHA-1, MD5 when a
row has no SHA-256); its SHA-256, SHA-1 and MD5 become signals, the file name, size
and package go into metadata. CRC32 is left out: a 32-bit checksum would mark
unrelated files as known. NSRL is a set of *known* files: import it into a bank of
kind ``known-good``.

VICS JSON (Project VIC's OData export): ``{"@odata.context": "...$metadata#Media",
"value": [{"MediaID": 1, "Category": 1, "MD5": "...", "SHA1": "...", "MediaSize": ...,
...}, ...]}`` (VICS 1.x names the first key ``odata.metadata``). One entry per Media item
(content id ``vics:<MediaID>``, else its first hash); MD5 and SHA-1 (and SHA-256 where
present) become signals, ``Category`` and the other scalar fields go into metadata as
given. Category numbers are kept as numbers, never renamed: their meaning is set by the
case's categorisation scheme. The file is parsed incrementally (a VICS export can be
gigabytes on one line); one Media item may not exceed ``MAX_ITEM`` characters.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .. import signals as signal_types
from ..config import sqlite_file_uri
from ..errors import AssayError, InputError, InvalidBankInput
from .store import ImportRecord, check_record

SQLITE_MAGIC = b"SQLite format 3\x00"
MAX_ITEM = 1024 * 1024  # characters of one VICS Media item
_CHUNK = 1024 * 1024
_NSRL_HASHES = (("sha256", "sha256"), ("sha1", "sha1"), ("md5", "md5"))
_VICS_HASHES = {"sha256": "sha256", "sha1": "sha1", "md5": "md5"}  # lower-case key -> signal type
# VICS starts with its OData context, or (abridged exports) with the Media list itself;
# a JSON Lines record {"value": "<hash>", ...} does not match.
_VICS_HEAD = re.compile(r'^\s*\{\s*("(@odata\.context|odata\.metadata)"\s*:|"value"\s*:\s*\[)')


# ---------------------------------------------------------------------------------------
# NSRL RDS v3
# ---------------------------------------------------------------------------------------
def is_sqlite(head: bytes) -> bool:
    return head.startswith(SQLITE_MAGIC)


def parse_nsrl(path: Path, problems: Any) -> Iterator[ImportRecord]:
    """Records of an RDS v3 database. ``problems`` is the caller's problem list (it has
    ``add(where, reason)`` and raises once too many are collected)."""
    try:
        # Read-only and immutable: the evidence database is never written or locked.
        conn = sqlite3.connect(f"{sqlite_file_uri(path.resolve())}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise InputError(path, f"cannot open as SQLite: {exc}") from None
    try:
        yield from _nsrl_rows(conn, path, problems)
    except sqlite3.DatabaseError as exc:
        raise InputError(path, f"not a readable NSRL RDS database: {exc}") from None
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]).lower() for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _nsrl_rows(conn: sqlite3.Connection, path: Path, problems: Any) -> Iterator[ImportRecord]:
    tables = {str(r[0]).upper(): str(r[0]) for r in
              conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    if "FILE" not in tables:
        raise InputError(path, "a SQLite database without a FILE table is not an NSRL RDS v3 set "
                         f"(tables: {', '.join(sorted(tables)[:8]) or 'none'})")
    cols = _columns(conn, tables["FILE"])
    hash_cols = [(c, t) for c, t in _NSRL_HASHES if c in cols]
    if not hash_cols:
        raise InputError(path, "the FILE table has none of the columns sha256, sha1, md5")
    extra = [c for c in ("file_name", "file_size", "package_id") if c in cols]
    packages = _nsrl_packages(conn, tables)
    select = ", ".join(f'"{c}"' for c, _ in hash_cols + [(c, c) for c in extra])
    cur = conn.execute(f'SELECT {select} FROM "{tables["FILE"]}"')
    n = 0
    while rows := cur.fetchmany(10_000):
        for row in rows:
            n += 1
            try:
                rec = _nsrl_record(row, hash_cols, extra, packages, n)
            except AssayError as exc:
                problems.add(n, f"FILE row {n}: {exc}")
                continue
            if not problems:
                yield rec


def _nsrl_packages(conn: sqlite3.Connection, tables: dict[str, str]) -> dict[int, str]:
    """package_id -> "name version" (PKG is small next to FILE: read once)."""
    if "PKG" not in tables:
        return {}
    cols = _columns(conn, tables["PKG"])
    if "package_id" not in cols or "name" not in cols:
        return {}
    version = ', "version"' if "version" in cols else ", ''"
    out: dict[int, str] = {}
    for pid, name, ver in conn.execute(f'SELECT "package_id", "name"{version} FROM "{tables["PKG"]}"'):
        if isinstance(pid, int) and pid not in out:
            out[pid] = f"{name} {ver}".strip() if ver else str(name)
    return out


def _nsrl_record(row: tuple[Any, ...], hash_cols: list[tuple[str, str]], extra: list[str],
                 packages: dict[int, str], n: int) -> ImportRecord:
    signals: list[tuple[str, str]] = []
    for (col, typ), value in zip(hash_cols, row, strict=False):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise InvalidBankInput(f"{col} is not text")
        signals.append((typ, signal_types.get(typ).normalize(value)))
    if not signals:
        raise InvalidBankInput("no hash on this row")
    meta: dict[str, Any] = {"hash_set": "NSRL RDS"}
    for col, value in zip(extra, row[len(hash_cols):], strict=True):
        if value is not None and value != "":
            meta[col] = value
    pkg = packages.get(meta.get("package_id")) if isinstance(meta.get("package_id"), int) else None
    if pkg:
        meta["package"] = pkg
    rec = ImportRecord(signals[0][1], tuple(signals), None, meta, line=n)
    check_record(rec)
    return rec


# ---------------------------------------------------------------------------------------
# Project VIC VICS JSON
# ---------------------------------------------------------------------------------------
def looks_like_vics(head: str) -> bool:
    return bool(_VICS_HEAD.match(head.lstrip("\ufeff")))


class _JsonStream:
    """Incremental reading of one big JSON document: values are decoded one at a time
    from a sliding window, so memory is bounded by the largest single value read."""

    def __init__(self, stream: IO[bytes], source: str) -> None:
        import codecs

        self._stream = stream
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._json = json.JSONDecoder()

    def _fill(self) -> bool:
        if self._eof:
            return False
        raw = self._stream.read(_CHUNK)
        try:
            text = self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise InputError(self._source, f"not UTF-8 JSON ({exc.reason})") from None
        if not raw:
            self._eof = True
        self._buf = self._buf[self._pos:] + text
        self._pos = 0
        return bool(raw)

    def peek(self) -> str:
        """The next non-space character ('' at the end)."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def expect(self, ch: str) -> None:
        got = self.peek()
        if got != ch:
            raise InvalidBankInput(f"VICS JSON: expected {ch!r}, found {got or 'the end of the file'!r}")
        self._pos += 1

    def value(self, limit: int = MAX_ITEM) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self._json.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                # The value may only be cut off by the window (a literal, number, escape or
                # string can end anywhere): read on, up to the limit of one value.
                if self._eof:
                    raise InvalidBankInput(f"VICS JSON is malformed: {exc.msg}") from None
                if len(self._buf) - self._pos > limit:
                    raise InvalidBankInput(f"VICS JSON is malformed or holds a value longer than {limit} "
                                           f"characters: {exc.msg}") from None
                self._fill()
                continue
            except (ValueError, RecursionError) as exc:
                # not a syntax error: an integer of over 4,300 digits (ValueError), nesting
                # thousands deep (RecursionError); the window cannot make these readable
                raise InvalidBankInput(f"VICS JSON holds a value json cannot read: {type(exc).__name__}: "
                                       f"{str(exc)[:200]}") from None
            # A number or literal that ends exactly at the window's end may go on.
            if end >= len(self._buf) and not self._eof:
                self._fill()
                continue
            self._pos = end
            return obj


def parse_vics(stream: IO[bytes], source: str, problems: Any) -> Iterator[ImportRecord]:
    js = _JsonStream(stream, source)
    js.expect("{")
    seen_value = False
    n = 0
    while js.peek() not in ("}", ""):
        key = js.value()
        if not isinstance(key, str):
            raise InvalidBankInput("VICS JSON: an object key is not a string")
        js.expect(":")
        if key != "value":
            js.value()  # @odata.context and friends: not needed
        else:
            seen_value = True
            js.expect("[")
            while js.peek() != "]":
                if js.peek() == "":
                    raise InvalidBankInput("VICS JSON ends inside the value list")
                n += 1
                item = js.value()
                try:
                    rec = _vics_record(item, n)
                except AssayError as exc:
                    problems.add(n, f"Media item {n}: {exc}")
                else:
                    if not problems:
                        yield rec
                if js.peek() == ",":
                    js.expect(",")
            js.expect("]")
        if js.peek() == ",":
            js.expect(",")
    js.expect("}")
    if not seen_value:
        raise InvalidBankInput("VICS JSON without a 'value' list of Media")


def _vics_record(item: Any, n: int) -> ImportRecord:
    if not isinstance(item, dict):
        raise InvalidBankInput("not a JSON object")
    signals: list[tuple[str, str]] = []
    meta: dict[str, Any] = {"hash_set": "Project VIC VICS"}
    for key, value in item.items():
        typ = _VICS_HASHES.get(key.lower())
        if typ is not None:
            if value in (None, ""):
                continue
            if not isinstance(value, str):
                raise InvalidBankInput(f"{key} is not a string")
            signals.append((typ, signal_types.get(typ).normalize(value)))
        elif key == "Category":
            meta["category"] = value  # as given: its meaning is the categorisation scheme's
        elif isinstance(value, str | int | float | bool) and not key.startswith(("@", "odata.")):
            meta[key] = value
    if not signals:
        raise InvalidBankInput("no MD5, SHA1 or SHA256 value")
    media_id = item.get("MediaID")
    cid = f"vics:{media_id}" if isinstance(media_id, int | str) and str(media_id).strip() else signals[0][1]
    rec = ImportRecord(cid, tuple(signals), None, meta, line=n)
    check_record(rec)
    return rec
