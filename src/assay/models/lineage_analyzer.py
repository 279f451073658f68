"""Lineage of every model file a scan meets, against the fingerprint banks.

Runs in scan workers after the model analyzer: each worker opens the store once,
builds the fingerprint index once, and skips the (costly) fingerprint extraction
entirely when no enabled bank holds a fingerprint.

A lineage finding against a flagged entry is a match like a hash match: it goes
into ``record.matches`` (signal type ``lineage``), so that the scan counts it,
lists it and honours ``--fail-on-match``. Being derived from a *base* (a known,
unflagged model banked for reference) is context, not a match; so is being close to a
flagged checkpoint without carrying its change (``report.related``: another fine-tune of
its base, or a relative whose direction the bank cannot tell).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..report.schema import FileRecord, Match
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
        from .alignment import query_file

        report = query_file(fs, subject.path, self.banks, index=index)
        record.model.lineage = report.to_dict()
        record.model.lineage_explanations = report.explanations()
        kinds = dict(zip(index.labels, index.kinds, strict=True))
        record.matches.extend(lineage_matches(report, kinds))


def lineage_matches(report: Any, kinds: dict[str, str]) -> list[Match]:
    """One match per (bank entry, relation) in a lineage report. ``kinds`` maps an
    entry label (``bank/content_id``) to its kind (checkpoint, lora, base)."""
    from .lineage import COMPONENT_MATCH_SHARE

    found: list[tuple[str, str, str]] = []  # (label, value, explanation)
    # Holding a minor component of a checkpoint unchanged (its VAE or text encoder, often
    # the public one every checkpoint of the family ships) is not being that checkpoint:
    # context under model.lineage, like closeness to a base. The part holding most of the
    # entry's weights (a UNet or transformer taken out of it) is a match; its explanation
    # names what the file lacks.
    # Being a known base (a copy of the public model banked for reference) is not a finding
    # either, any more than being derived from one.
    found += [(f.entry, "same-weights", f.explanation) for f in report.same
              if f.kind != "base" and (not f.lacks or f.entry_share >= COMPONENT_MATCH_SHARE)]
    # Closeness to a known base says where a model comes from, not that it is flagged; and
    # a file that IS a known base is close to every fine-tune of it: they derive from it.
    base_copy = any(f.kind == "base" and not f.lacks for f in report.same)
    found += [(f.entry, "derived", f.explanation) for f in report.derived
              if f.kind != "base" and not base_copy and (not f.lacks or f.entry_share >= COMPONENT_MATCH_SHARE)]
    for m in report.merges:
        found += [(label, f"merge {m.component} {ratio:.2f}", m.explanation)
                  for label, ratio in m.parts.items() if kinds.get(label) != "base"]
    found += [(f.entry, f"lora {f.strength:.2f}", f.explanation) for f in report.loras]
    matches: list[Match] = []
    seen: set[tuple[str, str]] = set()
    for label, value, explanation in found:
        bank, _, content_id = label.partition("/")
        if (label, value) in seen:
            continue
        seen.add((label, value))
        matches.append(Match(bank=bank, content_id=content_id, signal_type="lineage",
                             value=value, strength="lineage", note=explanation[:500]))
    return matches
