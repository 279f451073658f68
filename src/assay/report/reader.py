"""Reading a scan report back (``assay scan -o REPORT.jsonl``) for the case renderers
(HTML, CSV, CASE/UCO) and for review: line by line, so that a report of any size is
read in bounded memory, with a clear error naming the file and line for anything that
is not a report line, and the check of the report against its SHA-256 sidecar.

A report is JSON Lines: the chain-of-custody header (``assay.scan-header/1``), one
``assay.file/1`` record per file, then an ``assay.case-links/1`` line when the scan
linked anything and the ``assay.scan-summary/1`` line. Other ``assay.*`` records (e.g.
``assay.text/1`` text reproduction findings) are passed on as they are, for generic
rendering; a line of another origin is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError

HEADER = "assay.scan-header/1"
FILE = "assay.file/1"
LINKS = "assay.case-links/1"
SUMMARY = "assay.scan-summary/1"
# Record kinds this version reads by their fields; any other "assay.*" record is shown
# generically (a newer analyzer's findings still reach the examiner).
KNOWN = {HEADER: "header", FILE: "file", LINKS: "links", SUMMARY: "summary"}
_MAX_LINE = 64 << 20  # one record; a scan never writes lines near this
# What using a field of another JSON type than a scan writes raises (a number where a
# list belongs, a list where a string does, text where a count does)
_FIELD_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)


class ReportError(InputError):
    """A report file that cannot be read as a scan report."""

    code = "bad-report"


@dataclass
class SidecarCheck:
    """The report compared with ``REPORT.sha256`` (written by ``assay scan``)."""

    status: str  # "match", "mismatch", "missing", "unreadable"
    sha256: str  # of the report as read now
    sidecar: str  # its path
    expected: str | None = None  # the value the sidecar holds

    @property
    def text(self) -> str:
        if self.status == "match":
            return f"the report's SHA-256 matches its sidecar {Path(self.sidecar).name}"
        if self.status == "mismatch":
            return (f"MISMATCH: the report's SHA-256 is {self.sha256} but its sidecar "
                    f"{Path(self.sidecar).name} says {self.expected}: the report changed after the scan")
        if self.status == "missing":
            return f"no sidecar {Path(self.sidecar).name}: the report's integrity cannot be checked"
        return f"sidecar {Path(self.sidecar).name} unreadable: the report's integrity cannot be checked"

    def to_json_dict(self) -> dict[str, Any]:
        return {"status": self.status, "sha256": self.sha256, "sidecar": self.sidecar,
                "expected": self.expected}


_SIDECAR_LINE = re.compile(r"^\\?([0-9a-fA-F]{64}) [ *](.*)$")


def file_signals(rec: Mapping[str, Any]) -> dict[str, str]:
    """A file record's exact signals by type (md5, sha1, sha256, ...: the first value of
    each type that has no PDQ mode), as the report exports list them."""
    out: dict[str, str] = {}
    for s in rec.get("signals") or ():
        if isinstance(s, Mapping) and s.get("mode") is None and s.get("type") not in out:
            out[str(s.get("type"))] = str(s.get("value"))
    return out


def check_sidecar(report: Path, sha256: str) -> SidecarCheck:
    side = report.with_name(report.name + ".sha256")
    if not side.exists():
        return SidecarCheck("missing", sha256, str(side))
    try:
        first = side.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return SidecarCheck("unreadable", sha256, str(side))
    m = _SIDECAR_LINE.match(first)
    if not m:
        return SidecarCheck("unreadable", sha256, str(side))
    expected = m.group(1).lower()
    return SidecarCheck("match" if expected == sha256 else "mismatch", sha256, str(side), expected)


class Report:
    """One report file, read lazily: ``lines()`` yields (kind, record) in file order and
    may be called once; afterwards ``header``, ``summary``, ``links``, ``sha256`` and
    ``sidecar`` are set."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            what = "is a folder, not a report file" if self.path.is_dir() else "no such report file"
            raise ReportError(self.path, what)
        self.header: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None
        self.links: dict[str, Any] | None = None
        self.sha256: str | None = None
        self.sidecar: SidecarCheck | None = None
        self.files = 0
        self.lineno = 0  # the line being used, while lines() runs
        self._done = False
        self._last_lines: dict[str, int] = {}  # records used after all lines were read

    @contextlib.contextmanager
    def fields(self) -> Iterator[None]:
        """Around everything a renderer does with the records: a line that is JSON of
        the right schema but holds a field of another type than a scan writes is this
        report's error, naming the line being used (the file, once all of it was read:
        the header, summary and case links are used last), never a traceback."""
        try:
            yield
        except _FIELD_ERRORS as exc:
            where, what = f"{self.path}:{self.lineno}", "a record"
            if self._done:  # the header, summary or case links, used after the last line
                where = str(self.path)
                if self._last_lines:
                    what = "its " + " or ".join(f"{name} record (line {n})" for name, n in self._last_lines.items())
            raise ReportError(where, f"{what} holds a field of another type than `assay scan` writes "
                                     f"({type(exc).__name__}: {str(exc)[:200]})",
                              hint="the report was changed or damaged after the scan; "
                                   "give the report `assay scan -o` wrote") from None

    def _bad(self, lineno: int, reason: str) -> ReportError:
        return ReportError(f"{self.path}:{lineno}", reason,
                           hint="give the JSON Lines report that `assay scan -o` wrote")

    def lines(self) -> Iterator[tuple[str, dict[str, Any]]]:
        h = hashlib.sha256()
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 (closed below, also when the caller stops)
        except OSError as exc:
            raise ReportError(self.path, f"cannot read: {exc.strerror or exc}") from exc
        lineno = 0
        try:
            while True:
                raw = fh.readline(_MAX_LINE + 1)
                if not raw:
                    break
                lineno += 1
                self.lineno = lineno
                h.update(raw)
                if len(raw) > _MAX_LINE:
                    raise self._bad(lineno, "line longer than 64 MiB: not a scan report line")
                if not raw.strip():
                    continue
                yield self._parse(lineno, raw)
        finally:
            fh.close()
        if lineno == 0:
            raise ReportError(self.path, "empty file: not a scan report",
                              hint="give the JSON Lines report that `assay scan -o` wrote")
        self._done = True
        self.sha256 = h.hexdigest()
        self.sidecar = check_sidecar(self.path, self.sha256)

    def _parse(self, lineno: int, raw: bytes) -> tuple[str, dict[str, Any]]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "utf-8" in str(exc).lower():
                raise self._bad(lineno, "not UTF-8 text") from None
            if "surrogate" not in str(exc):
                raise self._bad(lineno, f"not JSON ({exc})") from None
            # a file name that is not UTF-8, written as \udcXX escapes (report.jsonl.dumps),
            # which orjson refuses and the json module reads back as the name's bytes
            import json

            try:
                obj = json.loads(raw)
            except ValueError as exc2:
                raise self._bad(lineno, f"not JSON ({exc2})") from None
        if not isinstance(obj, dict):
            raise self._bad(lineno, f"a JSON {type(obj).__name__}, not a report record (an object)")
        schema = obj.get("schema")
        if not isinstance(schema, str) or not schema.startswith("assay."):
            what = f"schema {schema!r}" if schema is not None else "no \"schema\" field"
            raise self._bad(lineno, f"{what}: not an assay scan report record")
        kind = KNOWN.get(schema)
        if kind is None:
            name, _, version = schema.partition("/")
            if any(k.startswith(name + "/") for k in KNOWN):
                raise self._bad(lineno, f"schema {schema!r} was written by another version of assay; "
                                        f"this one reads {', '.join(k for k in KNOWN if k.startswith(name + '/'))}")
            return "other", obj
        if kind == "header":
            if lineno != 1 and self.files:
                raise self._bad(lineno, "a second scan header after file records: two reports joined?")
            self.header = obj
            self._last_lines["scan header"] = lineno
        elif kind == "file":
            if not isinstance(obj.get("path"), str):
                raise self._bad(lineno, "a file record without a \"path\"")
            self.files += 1
        elif kind == "summary":
            self.summary = obj
            self._last_lines["summary"] = lineno
        elif kind == "links":
            self.links = obj
            self._last_lines["case-links"] = lineno
        return kind, obj
