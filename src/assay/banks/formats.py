"""Bank import/export formats: plain hash lists, CSV with a header, JSON Lines.

Parsing streams: files are read line by line (each line capped at ``MAX_LINE``
bytes), records are yielded as they are read, and every problem is reported with
its 1-based line number. A parser keeps going after a bad line to report up to
``MAX_PROBLEMS`` of them, then raises :class:`assay.errors.BankImportError`; since
:meth:`Store.import_records` runs in one transaction, nothing of a file with a bad
line is ever imported.

Formats (detected from the content when ``fmt`` is None):

``list``   one hash per line; blank lines and ``#`` comments are skipped. The
           signal type is given by the caller; the content id is the hash itself.
``csv``    a header line naming the columns ``signal_type, value, content_id, note``
           (aliases such as ``type``/``signal``, ``hash``, ``id`` are accepted) and
           optionally ``meta`` (a JSON object); any other column goes into meta.
           Instead of ``value``, columns named after signal types (``pdq,md5``) give
           one entry several signals ("wide" form).
``jsonl``  one JSON object per line, either
           ``{"signal_type": "pdq", "value": "...", "content_id": "...", "note": ..., "meta": {...}}``
           or ``{"content_id": "...", "signals": {"pdq": "...", "md5": ["...", "..."]}, ...}``.
``vics``   Project VIC VICS JSON (an OData ``value`` list of Media), see :mod:`.hashsets`.
``nsrl``   NIST NSRL RDS v3, a SQLite database (a file, not a stream), see :mod:`.hashsets`.

A CSV may have a single column named after its type (``md5``, ``SHA-1``...), and
several type-named columns (``MD5,SHA1``) give one entry several signals; without a
content id column the first hash names the entry.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, TextIO

from .. import signals as signal_types
from ..errors import AssayError, BankImportError, InputError, InvalidBankInput, InvalidSignal
from . import hashsets
from .store import BANK_KINDS, MAX_PROBLEMS, Entry, ImportRecord, Store, check_record

Format = Literal["list", "csv", "jsonl", "vics", "nsrl", "vpdq"]
FORMATS: tuple[Format, ...] = ("list", "csv", "jsonl", "vics", "nsrl", "vpdq")
EXPORT_FORMATS: tuple[Format, ...] = ("list", "csv", "jsonl")
# One video's vPDQ hash: Meta's text lines (frame_number,quality,hex,timestamp, or hex and
# quality swapped) or python-threatexchange's signal string (a JSON list).
_VPDQ_LINE = re.compile(r"\d+\s*,\s*(?:[0-9a-fA-F]{64}\s*,\s*\d{1,3}|\d{1,3}\s*,\s*[0-9a-fA-F]{64})\s*,\s*[0-9.eE+-]+")
MAX_VPDQ_FILE = 256 * 1024**2
KNOWN_GOOD_FORMATS: tuple[Format, ...] = ("nsrl",)  # hash sets of known files, never flagged
MAX_LINE = 1024 * 1024  # bytes; a longer "line" is not a hash-bank line
# A model fingerprint line of a JSONL export holds the serialised fingerprint (base64),
# megabytes for a large checkpoint; only such lines may be that long.
MAX_FINGERPRINT_LINE = 256 * 1024 * 1024
_FINGERPRINT_PREFIX = b'{"fingerprint"'
BANK_HEADER = "assay_bank"  # key of the first line of a JSONL export: the bank itself


@dataclass
class ImportExtras:
    """What a JSONL export holds besides entries, collected while it is parsed: the bank
    (``{"assay_bank": {...}}``: kind, description, threshold) and model fingerprints
    (``{"fingerprint": {...}}``). Without an ImportExtras, a header is ignored and a
    fingerprint line is a problem (it cannot go where entries go)."""

    header: dict[str, Any] | None = None
    fingerprints: list[dict[str, Any]] = field(default_factory=list)

_ALIASES: dict[str, str] = {}
for _canon, _names in {
    "signal_type": ("signal_type", "type", "signal", "hash_type", "algorithm", "signaltype"),
    "value": ("value", "hash", "signal_value", "hash_value", "digest"),
    "content_id": ("content_id", "id", "contentid", "content", "item_id"),
    "note": ("note", "notes", "comment", "description"),
    "meta": ("meta", "metadata"),
}.items():
    for _n in _names:
        _ALIASES[_n] = _canon


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------
def parse_file(path: str | Path, fmt: Format | None = None, signal_type: str = "pdq",
               extras: ImportExtras | None = None, content_id: str | None = None) -> Iterator[ImportRecord]:
    """Stream the records of a bank file; BankImportError names bad lines.

    The file is opened here (an unreadable file raises InputError at once); the
    records come lazily. ``signal_type`` is the type of lists and of CSV/JSONL
    lines that do not name one. A vPDQ file is one video, the entry ``content_id``
    (default: the file's name without its extension).
    """
    p = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise InputError(p, f"unknown bank file format {fmt!r} (known: {', '.join(FORMATS)})")
    signal_types.get(signal_type)  # an unknown default type is the caller's error, say so now
    if p.is_dir():
        raise InputError(p, "is a directory, not a bank file")
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise InputError(p, f"cannot read: {exc.strerror or exc}") from None
    if fmt == "nsrl" or (fmt is None and hashsets.is_sqlite(fh.peek(16)[:16])):
        fh.close()
        return _nsrl(p)
    if fmt == "vpdq" or (fmt is None and detect_format(p) == "vpdq"):
        with fh:
            data = fh.read(MAX_VPDQ_FILE + 1)
        return iter([_vpdq_file(data, str(p), content_id or p.stem)])
    return _closing(fh, parse_stream(fh, str(p), fmt, signal_type, extras))


def detect_format(path: str | Path) -> Format:
    """The format ``parse_file`` would read ``path`` as (InputError if unreadable)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError as exc:
        raise InputError(p, f"cannot read: {exc.strerror or exc}") from None
    if hashsets.is_sqlite(head):
        return "nsrl"
    text = head.decode("utf-8", "replace")
    if hashsets.looks_like_vics(text):
        return "vics"
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            return _detect(s)
    return "list"


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The bank line (kind, description, threshold) of a JSONL export, or None."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            lines = _Lines(fh, _Problems(str(p)))
            first = lines.first_meaningful()
    except (OSError, BankImportError):
        return None
    if first is None:
        return None
    try:
        obj = json.loads(first[1])
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or set(obj) != {BANK_HEADER}:
        return None
    try:
        return _bank_header(obj[BANK_HEADER])
    except AssayError:
        return None  # the parser reports it, with its line


def _nsrl(p: Path) -> Iterator[ImportRecord]:
    problems = _Problems(str(p))
    yield from hashsets.parse_nsrl(p, problems)
    problems.finish()


def parse_stream(
    stream: IO[bytes], source: str, fmt: Format | None = None, signal_type: str = "pdq",
    extras: ImportExtras | None = None,
) -> Iterator[ImportRecord]:
    """Like parse_file, over an open binary stream (``source`` names it in errors)."""
    problems = _Problems(source)
    if fmt == "nsrl":
        raise InputError(source, "an NSRL RDS database is read from a file, not a stream")
    if fmt is None or fmt == "vics":
        stream = _Peekable(stream)
        head = stream.head()
        if fmt is None and hashsets.is_sqlite(head):
            raise InputError(source, "an NSRL RDS database is read from a file, not a stream")
        if fmt == "vics" or hashsets.looks_like_vics(head.decode("utf-8", "replace")):
            try:
                yield from hashsets.parse_vics(stream, source, problems)
            except InvalidBankInput as exc:  # the document itself is broken: name the file
                raise InputError(source, str(exc)) from None
            problems.finish()
            return
    if fmt == "vpdq":
        yield _vpdq_file(stream.read(MAX_VPDQ_FILE + 1), source, Path(source).stem)
        return
    lines = _Lines(stream, problems)
    first = lines.first_meaningful()
    if first is not None:
        kind = fmt or _detect(first[1])
        if kind == "vpdq":
            raise InputError(source, "a vPDQ hash (one video): import it as a file with --format vpdq")
        if kind == "jsonl":
            yield from _parse_jsonl(lines, first, problems, signal_type, extras)
        elif kind == "csv":
            yield from _parse_csv(lines, first, problems, signal_type)
        else:
            yield from _parse_list(lines, first, problems, signal_type)
    problems.finish()


class _Peekable:
    """A binary stream whose first bytes can be looked at before it is read."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._head = b""
        self.name = getattr(stream, "name", "?")

    def head(self, n: int = 4096) -> bytes:
        while len(self._head) < n:
            more = self._stream.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = (self._head, b"") if n < 0 or n >= len(self._head) else (self._head[:n], self._head[n:])
            return out
        return self._stream.read(n)

    def readline(self, limit: int = -1) -> bytes:
        if self._head:
            i = self._head.find(b"\n")
            end = len(self._head) if i < 0 else i + 1
            if limit >= 0:
                end = min(end, limit)
            out, self._head = self._head[:end], self._head[end:]
            if out.endswith(b"\n") or (limit >= 0 and len(out) >= limit):
                return out
            return out + self._stream.readline(-1 if limit < 0 else limit - len(out))
        return self._stream.readline(limit)


def _closing(fh: IO[bytes], records: Iterator[ImportRecord]) -> Iterator[ImportRecord]:
    try:
        yield from records
    except OSError as exc:
        raise InputError(getattr(fh, "name", "?"), f"read failed: {exc.strerror or exc}") from None
    finally:
        fh.close()


def _detect(line: str) -> Format:
    s = line.strip()
    if s.startswith("{"):
        return "jsonl"
    if s.startswith("[") or _VPDQ_LINE.fullmatch(s):
        return "vpdq"
    if "," in s or "\t" in s or _header_name(s) in _ALIASES or _type_column(_header_name(s)) is not None:
        return "csv"  # a one-column CSV whose header names its type ("md5", "SHA-1")
    return "list"


def _type_column(name: str) -> str | None:
    """The signal type a CSV column is named after ("md5", "SHA-1", "sha_256"), or None."""
    for candidate in (name, name.replace("_", "")):
        try:
            return signal_types.get(candidate).name
        except AssayError:
            continue
    return None


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[int, str]] = []

    def add(self, line: int, reason: str) -> None:
        self.items.append((line, reason))
        if len(self.items) >= MAX_PROBLEMS:
            raise BankImportError(self.source, self.items)

    def finish(self) -> None:
        if self.items:
            raise BankImportError(self.source, self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


class _Lines:
    """Decoded lines with their numbers; over-long or non-UTF-8 lines become problems."""

    def __init__(self, stream: IO[bytes], problems: _Problems) -> None:
        self._stream = stream
        self._problems = problems
        self.number = 0  # physical number of the line last read
        self._pushed: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return self

    def __next__(self) -> tuple[int, str]:
        if self._pushed:
            return self._pushed.pop()
        while True:
            raw = self._stream.readline(MAX_LINE + 1)
            if not raw:
                raise StopIteration
            self.number += 1
            if len(raw) > MAX_LINE and not raw.endswith(b"\n") and raw.startswith(_FINGERPRINT_PREFIX):
                parts = [raw]
                size = len(raw)
                while size <= MAX_FINGERPRINT_LINE and not parts[-1].endswith(b"\n"):
                    chunk = self._stream.readline(MAX_LINE)
                    if not chunk:
                        break
                    parts.append(chunk)
                    size += len(chunk)
                raw = b"".join(parts)
                if size <= MAX_FINGERPRINT_LINE or raw.endswith(b"\n"):
                    try:
                        return self.number, raw.decode("utf-8").rstrip("\r\n")
                    except UnicodeDecodeError as exc:
                        self._problems.add(self.number, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
                        continue
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                self._problems.add(self.number, f"line longer than {MAX_LINE} bytes")
                while (chunk := self._stream.readline(MAX_LINE)) and not chunk.endswith(b"\n"):
                    pass  # skip the rest of it in bounded pieces
                continue
            try:
                text = raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                self._problems.add(self.number, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
                continue
            return self.number, text.rstrip("\r\n")

    def first_meaningful(self) -> tuple[int, str] | None:
        for n, text in self:
            s = text.strip()
            if s and not s.startswith("#"):
                return n, text
        return None


def _parse_list(lines: _Lines, first: tuple[int, str], problems: _Problems, signal_type: str) -> Iterator[ImportRecord]:
    st = signal_types.get(signal_type)
    lines._pushed.append(first)
    for n, text in lines:
        s = text.strip()
        if not s or s.startswith("#"):
            continue
        try:
            value = st.normalize(s)
        except AssayError as exc:
            problems.add(n, str(exc))
            continue
        if not problems:
            yield ImportRecord(value, ((st.name, value),), line=n)


# -- CSV --------------------------------------------------------------------------------
@dataclass
class _Columns:
    names: list[str]
    value: int | None
    signal_type: int | None
    content_id: int | None
    note: int | None
    meta: int | None
    wide: list[tuple[int, str]]  # (column, signal type) in the wide form
    extra: list[int]


def _header_name(s: str) -> str:
    return s.strip().lower().replace(" ", "_").replace("-", "_")


def _columns(header: list[str]) -> _Columns:
    names = [_header_name(h) for h in header]
    canon: dict[str, int] = {}
    wide: list[tuple[int, str]] = []
    extra: list[int] = []
    for i, name in enumerate(names):
        if not name:
            raise InvalidBankInput(f"CSV header column {i + 1} has no name")
        key = _ALIASES.get(name)
        if key is not None:
            if key in canon:
                raise InvalidBankInput(f"CSV header names the {key} column twice ({header[canon[key]]!r}, {header[i]!r})")
            canon[key] = i
            continue
        typ = _type_column(name)
        if typ is not None:
            wide.append((i, typ))
        else:
            extra.append(i)
    if "value" in canon:
        extra += [i for i, _ in wide]  # with a value column, type-named columns are just data
        wide = []
    elif not wide:
        raise InvalidBankInput(
            "CSV header has no value column: name one 'value' (or 'hash'), or name columns after "
            "signal types (e.g. 'pdq,md5')")
    elif "signal_type" in canon:
        raise InvalidBankInput("CSV header has a signal_type column but no value column")
    return _Columns([h.strip() for h in header], canon.get("value"), canon.get("signal_type"),
                    canon.get("content_id"), canon.get("note"), canon.get("meta"), wide, sorted(extra))


def _parse_csv(lines: _Lines, first: tuple[int, str], problems: _Problems, signal_type: str) -> Iterator[ImportRecord]:
    default_type = signal_types.get(signal_type).name
    lines._pushed.append(first)
    where = {"line": first[0]}

    def text_lines() -> Iterator[str]:
        for n, text in lines:
            where["line"] = n
            if "\x00" in text:  # csv would stop the whole reader on it
                problems.add(n, "contains a NUL character")
                continue
            yield text + "\n"

    reader = csv.reader(text_lines(), strict=True)
    cols: _Columns | None = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.add(where["line"], f"bad CSV: {exc}")
            if cols is None:
                return
            continue
        n = where["line"]
        if cols is None:
            try:
                cols = _columns(row)
            except AssayError as exc:
                problems.add(n, str(exc))
                return
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        try:
            rec = _csv_record(cols, row, n, default_type)
        except AssayError as exc:
            problems.add(n, str(exc))
            continue
        if not problems:
            yield rec


def _csv_record(cols: _Columns, row: list[str], n: int, default_type: str) -> ImportRecord:
    if len(row) != len(cols.names):
        raise InvalidBankInput(f"expected {len(cols.names)} fields as in the header, got {len(row)}")

    def get(i: int | None) -> str:
        return row[i].strip() if i is not None else ""

    note = row[cols.note] if cols.note is not None else ""  # kept verbatim, spaces and all

    meta: dict[str, Any] = {}
    meta_text = get(cols.meta)
    if meta_text:
        meta.update(_json_object(meta_text, "meta"))
    for i in cols.extra:
        if row[i].strip():
            meta[cols.names[i]] = row[i].strip()
    if cols.value is not None:
        signals, video = _signals(get(cols.signal_type) or default_type, get(cols.value))
        if video is not None:
            meta["vpdq"] = video
    else:
        signals = [_signal(t, row[i]) for i, t in cols.wide if row[i].strip()]
        if not signals:
            raise InvalidBankInput("no signal value on this line")
    return _record(get(cols.content_id) or None, signals, note or None, meta or None, n)


# -- JSON Lines -------------------------------------------------------------------------
def _parse_jsonl(lines: _Lines, first: tuple[int, str], problems: _Problems, signal_type: str,
                 extras: ImportExtras | None = None) -> Iterator[ImportRecord]:
    default_type = signal_types.get(signal_type).name
    lines._pushed.append(first)
    for n, text in lines:
        s = text.strip()
        if not s or s.startswith("#"):
            continue
        try:
            obj = _json_object(s, "line")
            if BANK_HEADER in obj and len(obj) == 1:
                if n != first[0]:
                    raise InvalidBankInput(f"the {BANK_HEADER} line must come first")
                if extras is not None:
                    extras.header = _bank_header(obj[BANK_HEADER])
                continue
            if "fingerprint" in obj and len(obj) == 1:
                if extras is None:
                    raise InvalidBankInput("a model fingerprint line: import the file with `assay bank import`")
                extras.fingerprints.append(_fingerprint_line(obj["fingerprint"], n))
                continue
            rec = _jsonl_record(obj, n, default_type)
        except AssayError as exc:
            problems.add(n, str(exc))
            continue
        if not problems:
            yield rec


def _jsonl_record(obj: dict[str, Any], n: int, default_type: str) -> ImportRecord:
    fields: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, val in obj.items():
        canon = "signals" if key == "signals" else _ALIASES.get(_header_name(key))
        if canon is None:
            meta[key] = val  # unknown keys are kept, as CSV's extra columns are
        elif canon in fields:
            raise InvalidBankInput(f"the {canon} field is given twice")
        else:
            fields[canon] = val
    kept = _kept_fields(meta)  # top-level keys only: the entry's own meta may hold anything
    given = fields.get("meta")
    if given is not None:
        if not isinstance(given, dict):
            raise InvalidBankInput("meta must be a JSON object")
        meta = {**given, **meta}
    note = fields.get("note")
    if note is not None and not isinstance(note, str):
        raise InvalidBankInput("note must be a string")
    cid = fields.get("content_id")
    if cid is not None:
        if isinstance(cid, bool) or not isinstance(cid, str | int):
            raise InvalidBankInput("content_id must be a string or an integer")
        cid = str(cid)
    if "signals" in fields:
        if "value" in fields or "signal_type" in fields:
            raise InvalidBankInput("give either 'signals' or 'signal_type'/'value', not both")
        sig = fields["signals"]
        if not isinstance(sig, dict) or not sig:
            raise InvalidBankInput("signals must be a non-empty object of type -> value(s)")
        signals: list[tuple[str, str]] = []
        for t, vals in sig.items():
            for v in [vals] if isinstance(vals, str) else vals if isinstance(vals, list) else [vals]:
                signals.append(_signal(t, v))
        if not signals:
            raise InvalidBankInput("signals holds no value")
    else:
        if "value" not in fields:
            raise InvalidBankInput("no 'value' (or 'signals') field")
        t = fields.get("signal_type") or default_type
        signals, video = _signals(t, fields["value"])
        if video is not None:
            meta = {**meta, "vpdq": video}
    return _record(cid or None, signals, note or None, meta or None, n)._replace(**kept)


def _kept_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """source, added_at and enabled of an exported entry (taken out of ``meta``)."""
    kept: dict[str, Any] = {}
    if "source" in meta:
        src = meta.pop("source")
        if src is not None and not isinstance(src, str):
            raise InvalidBankInput("source must be a string")
        kept["source"] = src
    if "added_at" in meta:
        kept["added_at"] = _timestamp(meta.pop("added_at"), "added_at")
    if "enabled" in meta:
        en = meta.pop("enabled")
        if not isinstance(en, bool):
            raise InvalidBankInput("enabled must be true or false")
        kept["enabled"] = en
    return kept


def _timestamp(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidBankInput(f"{what} must be an ISO 8601 date and time")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidBankInput(f"{what} {value[:40]!r} is not an ISO 8601 date and time") from None
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _bank_header(h: Any) -> dict[str, Any]:
    if not isinstance(h, dict):
        raise InvalidBankInput(f"{BANK_HEADER} must be an object")
    kind = h.get("kind", "flagged")
    if kind not in BANK_KINDS:
        raise InvalidBankInput(f"{BANK_HEADER}: unknown bank kind {kind!r}")
    desc = h.get("description", "")
    thr = h.get("pdq_threshold")
    if not isinstance(desc, str) or (thr is not None and (isinstance(thr, bool) or not isinstance(thr, int))):
        raise InvalidBankInput(f"{BANK_HEADER}: description must be text and pdq_threshold an integer")
    return {"name": h.get("name"), "kind": kind, "description": desc, "pdq_threshold": thr}


def _fingerprint_line(f: Any, n: int) -> dict[str, Any]:
    import base64
    import binascii

    if not isinstance(f, dict):
        raise InvalidBankInput("fingerprint must be an object")
    cid, data = f.get("content_id"), f.get("data")
    if not isinstance(cid, str) or not cid or not isinstance(data, str):
        raise InvalidBankInput("fingerprint needs a content_id and its data (base64)")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidBankInput("fingerprint data is not base64") from None
    for key in ("kind", "role", "note"):
        if f.get(key) is not None and not isinstance(f.get(key), str):
            raise InvalidBankInput(f"fingerprint {key} must be a string")
    return {"content_id": cid, "kind": f.get("kind") or "checkpoint", "role": f.get("role"),
            "note": f.get("note"), "created_at": _timestamp(f.get("created_at"), "created_at"),
            "data": raw, "line": n}


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidBankInput(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise InvalidBankInput(f"{what} must be a JSON object")
    return obj


# -- shared -----------------------------------------------------------------------------
def _signal(signal_type: object, value: object) -> tuple[str, str]:
    if not isinstance(signal_type, str):
        raise InvalidBankInput("signal type must be a string")
    st = signal_types.get(signal_type)
    if not isinstance(value, str):
        raise InvalidBankInput(f"{st.name} value must be a string")
    return st.name, st.normalize(value)


def _signals(signal_type: object, value: object) -> tuple[list[tuple[str, str]], dict[str, Any] | None]:
    """One value of a CSV/JSONL line: a hash, or for ``vpdq`` a whole video's hash
    (python-threatexchange's signal string, as HMA's banks hold it, or Meta's text):
    then its kept frame hashes and the entry's ``vpdq`` meta (banks/videos.py)."""
    if isinstance(signal_type, str) and isinstance(value, str) and signal_types.get(signal_type).name == "vpdq" \
            and (value.lstrip().startswith("[") or "," in value):
        from ..media.video import parse_signal
        from .videos import bank_record

        rec = bank_record(parse_signal(value, "vpdq value"), "-")
        return list(rec.signals), (rec.meta or {}).get("vpdq")
    return [_signal(signal_type, value)], None


def _vpdq_file(data: bytes, source: str, content_id: str) -> ImportRecord:
    """The entry of one video's vPDQ file."""
    from ..media.video import parse_signal
    from .videos import bank_record

    if len(data) > MAX_VPDQ_FILE:
        raise InputError(source, f"larger than {MAX_VPDQ_FILE:,} bytes: not one video's vPDQ hash")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(source, "not UTF-8 text: not a vPDQ hash") from None
    try:
        rec = bank_record(parse_signal(text, source), content_id)
        check_record(rec)
    except InvalidSignal as exc:
        tail = exc.value.rsplit(":", 1)[-1]  # "source:LINE" (Meta's text) or "source[i]" (JSON)
        raise BankImportError(source, [(int(tail) if tail.isdigit() else 1, exc.reason)]) from None
    except AssayError as exc:
        raise InputError(source, str(exc)) from None
    return rec


def _record(cid: str | None, signals: list[tuple[str, str]], note: str | None,
            meta: dict[str, Any] | None, n: int) -> ImportRecord:
    if cid is None:
        # Several hashes of one file (an "MD5,SHA1" hash set): the first names the entry,
        # as a lone hash does.
        cid = signals[0][1]
    rec = ImportRecord(cid, tuple(signals), note, meta, line=n)
    check_record(rec)  # content id, note and meta limits: report them here, with the line
    return rec


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------
def export(store: Store, bank: str, fmt: Format, out: TextIO, signal_type: str | None = None) -> int:
    """Write a bank in one of the three formats; returns the number of entries written.

    JSON Lines keeps everything: a first line with the bank (kind, description,
    threshold), every entry with its content id, note, meta, signals, source, time
    added and enabled flag, and the bank's model fingerprints, so that importing it
    gives the same bank. CSV keeps content ids, notes, meta and signals. A plain list
    holds values of one signal type only (``signal_type``, needed when the bank holds
    several) and loses everything else.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidBankInput(f"cannot export as {fmt!r} (export formats: {', '.join(EXPORT_FORMATS)})")
    stats = store.stats(bank)
    if fmt == "list":
        if signal_type is None:
            if len(stats.signals) > 1:
                raise InvalidBankInput(
                    f"bank {bank!r} holds several signal types ({', '.join(stats.signals)}); "
                    "a plain list needs one: choose it with --type")
            signal_type = next(iter(stats.signals), "pdq")
        name = signal_types.get(signal_type).name
        out.write(f"# assay bank {bank}: {name} values, one per line\n")
    written = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["signal_type", "value", "content_id", "note", "meta"])
    if fmt == "jsonl":
        b = store.get_bank(bank)
        out.write(json.dumps({BANK_HEADER: {"name": b.name, "kind": b.kind, "description": b.description,
                                            "pdq_threshold": b.pdq_threshold}}, ensure_ascii=False) + "\n")
    for entry in store.iter_entries(bank):
        if fmt == "list":
            for v in entry.signals.get(name, ()):
                out.write(v + "\n")
        elif writer is not None:
            em = dict(entry.meta or {})
            video = _video_signal(em.pop("vpdq", None), entry.signals.get("vpdq", ()))
            meta = json.dumps(em, ensure_ascii=False, sort_keys=True) if em else ""
            for t, vals in entry.signals.items():
                if t == "vpdq" and video is not None:  # the whole video on one row, as HMA's banks hold it
                    writer.writerow([t, video, entry.content_id, entry.note or "", meta])
                    continue
                for v in vals:
                    writer.writerow([t, v, entry.content_id, entry.note or "", meta])
        else:
            out.write(json.dumps(_jsonl_entry(entry), ensure_ascii=False) + "\n")
        written += 1
    if fmt == "jsonl":
        import base64

        from .fingerprints import FingerprintStore

        for f in FingerprintStore(store).export_rows(bank):
            rec = {**f, "created_at": _iso(f["created_at"]), "data": base64.b64encode(f["data"]).decode("ascii")}
            out.write(json.dumps({"fingerprint": rec}, ensure_ascii=False) + "\n")
    return written


def _video_signal(vmeta: Any, values: tuple[str, ...]) -> str | None:
    """A banked video's hash as python-threatexchange's signal string (every frame, from
    the entry's meta), or None if the meta does not hold it."""
    from .videos import entry_text

    text = entry_text({"vpdq": vmeta})
    if text is None or not values:
        return None
    from ..media.video import loads, to_threatexchange_json

    try:
        return to_threatexchange_json(loads(text))
    except AssayError:
        return None


def export_video(store: Store, bank: str, content_id: str, out: TextIO) -> int:
    """One banked video's vPDQ hash in Meta's text form; returns its number of frames."""
    from .videos import entry_text

    e = store.get_entry(bank, content_id)
    if e is None:
        raise InvalidBankInput(f"bank {bank!r} has no entry {content_id!r}")
    text = entry_text(e.meta)
    if text is None:
        raise InvalidBankInput(f"entry {content_id!r} of bank {bank!r} holds no video (no vPDQ hash)")
    out.write(text)
    return text.count("\n")


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def _jsonl_entry(entry: Entry) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "content_id": entry.content_id,
        "signals": {t: vals[0] if len(vals) == 1 else list(vals) for t, vals in entry.signals.items()},
    }
    if entry.note is not None:
        obj["note"] = entry.note
    if entry.meta:
        obj["meta"] = entry.meta
    if entry.source is not None:
        obj["source"] = entry.source
    obj["added_at"] = _iso(entry.added_at)
    if not entry.enabled:
        obj["enabled"] = False
    return obj
