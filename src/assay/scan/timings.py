"""What a scan's steps cost: wall and CPU seconds per analyzer (and per provenance source),
added up over the files of a scan for ``scan --timings`` and the benchmarks.

Each record carries its own costs (FileRecord.timings, not written to the report); the
summary adds them up. Stage names are the analyzers' (``image-hash``, ``provenance``, ...),
``read`` for stat, size checks and sniffing, ``custody`` for the hashes every record gets,
and ``provenance.SOURCE`` for the evidence sources inside provenance (part of its time).
CPU time is the worker process's (time.process_time): on a busy machine wall time also
holds the time spent waiting for a core.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..report.schema import FileRecord

TIMINGS_SCHEMA = "assay.scan-timings/1"


@contextmanager
def timed(record: FileRecord, stage: str) -> Iterator[None]:
    """Add the wall and CPU time of the block to ``record``'s ``stage``."""
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        record.add_timing(stage, time.perf_counter() - w0, time.process_time() - c0)


@dataclass
class StageTotal:
    files: int = 0
    wall: float = 0.0
    cpu: float = 0.0


@dataclass
class Timings:
    """Per-stage totals over the records of a scan."""

    stages: dict[str, StageTotal] = field(default_factory=dict)
    workers: int = 1  # processes the analysis ran on (for per-core figures)

    def add(self, timings: dict[str, tuple[float, float]]) -> None:
        for stage, (wall, cpu) in timings.items():
            t = self.stages.setdefault(stage, StageTotal())
            t.files += 1
            t.wall += wall
            t.cpu += cpu

    def merge(self, data: dict[str, Any] | None) -> None:
        """Add totals in the form ``to_json_dict`` gives (a partition's, a worker's)."""
        for stage, d in ((data or {}).get("stages") or {}).items():
            t = self.stages.setdefault(stage, StageTotal())
            t.files += int(d["files"])
            t.wall += float(d["wall_s"])
            t.cpu += float(d["cpu_s"])

    def ordered(self) -> list[tuple[str, StageTotal]]:
        """Top-level stages by CPU time, each followed by its sub-stages (by CPU time)."""
        top = sorted((s for s in self.stages if "." not in s), key=lambda s: -self.stages[s].cpu)
        out: list[tuple[str, StageTotal]] = []
        for name in top:
            out.append((name, self.stages[name]))
            subs = sorted((s for s in self.stages if s.startswith(name + ".")), key=lambda s: -self.stages[s].cpu)
            out.extend((s, self.stages[s]) for s in subs)
        seen = {n for n, _ in out}
        out.extend((s, t) for s, t in sorted(self.stages.items()) if s not in seen)
        return out

    @property
    def cpu(self) -> float:
        return sum(t.cpu for s, t in self.stages.items() if "." not in s)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema": TIMINGS_SCHEMA,
            "workers": self.workers,
            "cpu_s": round(self.cpu, 4),
            "stages": {
                s: {"files": t.files, "wall_s": round(t.wall, 4), "cpu_s": round(t.cpu, 4),
                    "cpu_ms_per_file": round(1000 * t.cpu / t.files, 3) if t.files else 0.0}
                for s, t in self.ordered()
            },
        }

    def lines(self) -> list[str]:
        """A readable table: stage, files, CPU, wall, CPU per file, share of the CPU time."""
        total = self.cpu
        rows = [f"{'stage':<24} {'files':>8} {'CPU s':>9} {'wall s':>9} {'CPU ms/file':>12} {'CPU share':>10}"]
        for name, t in self.ordered():
            label = ("  " + name.split(".", 1)[1]) if "." in name else name
            share = f"{100 * t.cpu / total:.1f}%" if total > 0 and "." not in name else ""
            per = 1000 * t.cpu / t.files if t.files else 0.0
            rows.append(f"{label:<24} {t.files:>8,} {t.cpu:>9.2f} {t.wall:>9.2f} {per:>12.2f} {share:>10}")
        return rows
