"""Temporary files of streamed request bodies (model uploads, bulk imports).

They live in one directory per service (``Settings.tmp_path``), shared by its
workers, and each file's name carries the pid of the worker that wrote it:
``upload-<pid>-<random><suffix>``. A worker removes its files when it is done with
them; one killed (SIGKILL, the OOM killer) cannot, so every worker, when it starts,
removes the files whose writer is gone: its pid is dead, or the pid now belongs to a
process that started after the file was last written (the pid was reused). Files of
live workers, and files not named this way, are never touched. The directory must be
local to the host (pids mean nothing across hosts).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger("assay.service")

PREFIX = "upload-"
_NAME = re.compile(r"upload-(\d+)-")
# /proc start times are derived from the boot time in whole seconds (and drift with
# clock adjustments): a process is only taken as newer than a file beyond this margin.
_CLOCK_SLACK = 2.0


class TmpFiles:
    """The per-service directory for temporary upload files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # 0700: bodies may be sensitive material; only the service's user reads them.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def new(self, suffix: str = "") -> tuple[int, Path]:
        """A new file of this worker, open for writing: (descriptor, path)."""
        fd, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=suffix, dir=self.path)
        return fd, Path(name)

    def remove_stale(self) -> list[Path]:
        """Remove files whose writer is gone; returns what was removed."""
        removed: list[Path] = []
        try:
            names = list(self.path.iterdir())
        except OSError as exc:
            log.warning("cannot list the temporary directory %s: %s", self.path, exc)
            return removed
        for p in names:
            m = _NAME.match(p.name)
            if m is None:
                continue
            try:
                written = p.stat().st_mtime
                if _writer_alive(int(m.group(1)), written):
                    continue
                p.unlink()
            except FileNotFoundError:
                continue  # removed meanwhile (its worker finished, or another one cleaned)
            except OSError as exc:
                log.warning("cannot remove the stale temporary file %s: %s", p, exc)
                continue
            removed.append(p)
        if removed:
            log.warning("removed %d temporary upload file(s) left by stopped workers in %s",
                        len(removed), self.path)
        return removed

    def remove_own(self) -> None:
        """Remove this process's files (at shutdown: a running import's file is then
        gone too, which is fine: its job cannot finish once the worker stops)."""
        mine = f"{PREFIX}{os.getpid()}-"
        try:
            names = list(self.path.iterdir())
        except OSError:
            return
        for p in names:
            if p.name.startswith(mine):
                p.unlink(missing_ok=True)


def _writer_alive(pid: int, written: float) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by another user: alive as far as we can tell
    started = process_start_time(pid)
    return started is None or started <= written + _CLOCK_SLACK


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (Unix time), from /proc; None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    # Field 22 (starttime, in clock ticks since boot); the command name before it is
    # in parentheses and may hold spaces or parentheses itself.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None
