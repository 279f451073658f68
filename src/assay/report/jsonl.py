"""JSON Lines output: one record per line, written so a crash never leaves a half
file under the final name and an existing file is never overwritten by accident."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..errors import AssayError


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


class ReportWriter:
    """Writes to ``path`` via ``path.partial`` and renames on close; ``-`` is stdout."""

    def __init__(self, path: str | Path, *, overwrite: bool = False, stdout: IO[str] | None = None) -> None:
        self.target = str(path)
        self._stdout = stdout
        self._fh: IO[str]
        if self.target == "-":
            import sys

            self._fh = stdout or sys.stdout
            self._tmp = None
            return
        p = Path(self.target)
        if p.exists() and not overwrite:
            raise AssayError(
                f"{p}: report file already exists; not overwriting it",
                hint="choose another --output or pass --overwrite",
            )
        if not p.parent.is_dir():
            raise AssayError(f"{p}: folder {p.parent} does not exist")
        self._tmp = p.with_name(p.name + ".partial")
        try:
            self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise AssayError(f"{p}: cannot write report: {exc.strerror or exc}") from exc

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(dumps(record) + "\n")

    def close(self, *, success: bool = True) -> None:
        if self._tmp is None:
            self._fh.flush()
            return
        self._fh.close()
        if success:
            os.replace(self._tmp, self.target)

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        # An interrupted scan keeps what it wrote in the .partial file: nothing is lost.
        self.close(success=et is None)
