"""Lineage of every model file a scan meets, against the fingerprint banks.

Runs in scan workers after the model analyzer: each worker opens the store once,
builds the fingerprint index once, and skips the (costly) fingerprint extraction
entirely when no enabled bank holds a fingerprint.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..report.schema import FileRecord
from ..scan.analyzer import Subject


class LineageAnalyzer:
    name: ClassVar[str] = "lineage"
    kinds: ClassVar[frozenset[str]] = frozenset({"model"})

    def __init__(self, db_url: str, banks: list[str] | None = None) -> None:
        self.db_url = db_url
        self.banks = banks
        self._state: tuple[Any, Any] | None = None

    def _open(self) -> tuple[Any, Any]:
        if self._state is None:
            from ..banks.fingerprints import FingerprintStore
            from ..banks.store import Store

            fs = FingerprintStore(Store(self.db_url))
            self._state = (fs, fs.index(self.banks))
        return self._state

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        if record.model is None or (record.model.safety and record.model.safety.verdict == "dangerous"):
            return  # a refused file is never opened for its tensors
        fs, index = self._open()
        if len(index) == 0:
            return
        from ..banks.fingerprints import query
        from .fingerprint import fingerprint_file

        report = query(fs, fingerprint_file(subject.path), self.banks, index=index)
        record.model.lineage = report.to_dict()
        record.model.lineage_explanations = report.explanations()
