"""The analyzer interface: a name, the subject kinds it applies to, one function.

An analyzer reads a Subject and fills its part of the FileRecord (signals, image,
provenance, model). It raises assay errors for bad input; the pipeline turns
any exception into an error entry on the record, so one analyzer failing never
stops the others or the scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..config import ScanSettings
from ..report.schema import FileRecord


@dataclass
class Subject:
    path: Path
    kind: str
    format: str
    size: int
    settings: ScanSettings
    # Analyzers may share expensive intermediate results (e.g. the decoded image,
    # the file's bytes) through this cache, keyed by a name they agree on.
    cache: dict[str, Any] = field(default_factory=dict)


class Analyzer(Protocol):
    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]

    def analyze(self, subject: Subject, record: FileRecord) -> None: ...
