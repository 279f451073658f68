"""JSON Lines output: one record per line, written so a crash never leaves a half
file under the final name and an existing file is never overwritten by accident."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..errors import AssayError
from ..outfile import check_target


def dumps(obj: Any) -> str:
    """One JSON text that is always valid UTF-8. A file name that is not valid UTF-8
    (bytes from another encoding) reaches Python as lone surrogates ('\\udcff' for the byte
    FF), which UTF-8 cannot encode: they are written as JSON escapes, which json.loads and
    os.fsencode turn back into the very bytes of the name."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return s if s.isascii() else escape_surrogates(s)


_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(s: str) -> str:
    """``s`` (JSON text) with every lone surrogate as its \\uXXXX escape."""
    if not _SURROGATE.search(s):
        return s
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


FLUSH_SECONDS = 1.0
FLUSH_FIRST = 16


class ReportWriter:
    """Writes to ``path`` via ``path.partial`` and renames on close; ``-`` is stdout."""

    def __init__(self, path: str | Path, *, overwrite: bool = False, stdout: IO[str] | None = None,
                 sidecar: bool = True) -> None:
        self.target = str(path)
        self._stdout = stdout
        self._flushed = 0.0  # time.monotonic() of the last flush
        self._lines = 0
        # ``REPORT.sha256`` in sha256sum's format, written once the report is closed
        self.sidecar: Path | None = None
        self._fh: IO[str]
        if self.target == "-":
            import sys

            self._fh = stdout or sys.stdout
            self._tmp = None
            return
        p = Path(self.target)
        if check_target(p, hint="e.g. -o FOLDER/report.jsonl; -o - writes the report to stdout") and not overwrite:
            raise AssayError(
                f"{p}: report file already exists; not overwriting it",
                hint="choose another --output or pass --overwrite",
            )
        if sidecar:
            self.sidecar = p.with_name(p.name + ".sha256")
            if check_target(self.sidecar) and not overwrite:
                raise AssayError(
                    f"{self.sidecar}: checksum file already exists; not overwriting it",
                    hint="choose another --output or pass --overwrite",
                )
        if not p.parent.is_dir():
            raise AssayError(f"{p}: folder {p.parent} does not exist")
        self._tmp = p.with_name(p.name + ".partial")
        try:
            self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise AssayError(f"{p}: cannot write report: {exc.strerror or exc}") from exc

    @property
    def lines(self) -> int:
        """Lines written so far."""
        return self._lines

    @property
    def partial(self) -> Path | None:
        """The file the lines go to until the report is finished (None: stdout)."""
        return self._tmp

    def own_files(self) -> list[Path]:
        """The files this writer writes (none for stdout): the report, its ``.partial``
        and its checksum file, which a scan of their folder must leave out."""
        if self._tmp is None:
            return []
        return [Path(self.target), self._tmp, *([self.sidecar] if self.sidecar else [])]

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(dumps(record) + "\n")
        # The first lines reach the file at once, later ones at the next write
        # FLUSH_SECONDS after the last flush: whoever follows a scan's report sees the
        # header and the first records as they come, not in 8 KB steps.
        self._lines += 1
        now = time.monotonic()
        if self._lines <= FLUSH_FIRST or now - self._flushed >= FLUSH_SECONDS:
            self._fh.flush()
            self._flushed = now

    def close(self, *, success: bool = True) -> None:
        if self._tmp is None:
            self._fh.flush()
            return
        self._fh.close()
        if success:
            os.replace(self._tmp, self.target)
            if self.sidecar is not None:
                write_sidecar(Path(self.target), self.sidecar)

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        # An interrupted scan keeps what it wrote in the .partial file: nothing is lost.
        self.close(success=et is None)


def write_sidecar(report: Path, sidecar: Path) -> None:
    """``sha256sum`` format (hash, two spaces, the report's file name), so that
    ``sha256sum -c`` run in the report's folder verifies the report."""
    h = hashlib.sha256()
    with open(report, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    tmp = sidecar.with_name(sidecar.name + ".partial")
    name, mark = report.name, ""
    if "\\" in name or "\n" in name or "\r" in name:  # sha256sum's escaped form
        name, mark = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r"), "\\"
    tmp.write_text(f"{mark}{h.hexdigest()}  {name}\n", encoding="utf-8")
    os.replace(tmp, sidecar)
