"""Model-to-model links within one scan (issue 24, item 2): which model files of a case
are the same weights converted, derived from one another (fine-tunes), merges of others, or carry
another file's LoRA merged in. The lineage engine (assay.models.lineage) answers, with
the other model files of the scan standing in for a bank: no bank is needed.

Every model file whose tensors can be read (not refused as dangerous, not inside an
archive) is fingerprinted once at the end of the scan; a summary index picks the few
files worth a full comparison for each (as banks do), so a case with hundreds of
unrelated model files costs one fingerprint each, not a comparison of every pair.

What the weights say, no more: a fine-tune (or any changed copy) and its base are
related, but weights alone do not tell which came first, so that link is written as
"derived" in no direction; a merge or a merged LoRA is directional (the file that
contains the others).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..report.schema import CaseLink, FileRecord

# The relations, as written in links and summaries.
SAME = "same-weights"
FINE_TUNE = "derived"
RELATED = "related"  # close by the weights: one a fine-tune of the other, or both of one base
MERGE = "merge-of"
LORA = "contains-lora"


@dataclass
class ModelLink:
    """``a`` relates to ``b``: ``a`` is the same weights as, derived from or the base of
    (weights changed by fine-tuning or merging), a merge including, or a checkpoint
    containing ``b``."""

    a: str
    b: str
    relation: str
    value: str  # e.g. "0.70" (a LoRA's strength, a merge ratio) or ""
    explanation: str

    def to_json_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "relation": self.relation, "value": self.value,
                "explanation": self.explanation}


@dataclass
class ModelLinks:
    links: list[ModelLink] = field(default_factory=list)
    fingerprinted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def _fingerprintable(rec: FileRecord, exists: Callable[[str], bool] | None = None) -> str | None:
    """Why a model record's tensors are not read for linking, or None. ``exists``: whether
    the file is still there (default: on this machine's disk)."""
    if rec.model is None:
        return "not a model file"
    if rec.model.safety is not None and rec.model.safety.verdict == "dangerous":
        return "refused as dangerous: its tensors are never opened"
    if rec.member_of is not None:
        return "inside an archive: not on disk after the scan"
    if not (exists(rec.path) if exists is not None else Path(rec.path).exists()):
        return "no longer on disk"
    return None


def fingerprint_kind(rec: FileRecord) -> str:
    """What a model file is fingerprinted as: a LoRA's deltas, or a checkpoint."""
    return "lora" if rec.model is not None and rec.model.arch is not None and rec.model.arch.kind == "lora" \
        else "checkpoint"


Question = tuple[FileRecord, Any, list[Any]]  # a model file, its fingerprint, the entries to compare it with


def link_models(records: Sequence[FileRecord],
                fingerprint: Callable[[Path, str], Any] | None = None,
                exists: Callable[[str], bool] | None = None,
                answers: Callable[[list[Question]], list[Any]] | None = None) -> ModelLinks:
    """Fingerprint the model files among ``records`` and link the related ones; the
    links are added to both records' ``case_links``. ``fingerprint``, ``exists`` and
    ``answers`` (the lineage answers, each with the file's weights at hand) stand in for
    reading the files here (the Dask engine does both on its workers)."""
    from ..banks.fingerprints import FingerprintIndex
    from ..models.fingerprint import COMPONENTS, SUMMARY_DIM, fingerprint_file
    from ..models.lineage import BankModel, answer

    fp_of = fingerprint or (lambda p, kind: fingerprint_file(p, kind=kind))
    result = ModelLinks()
    models: list[tuple[FileRecord, Any]] = []
    for rec in records:
        why = _fingerprintable(rec, exists)
        if why is not None:
            if rec.model is not None:
                result.skipped.append((rec.path, why))
            continue
        try:
            models.append((rec, fp_of(Path(rec.path), fingerprint_kind(rec))))
        except Exception as exc:  # noqa: BLE001 (any reader failure: the file is skipped, the scan goes on)
            result.skipped.append((rec.path, f"no weight fingerprint: {str(exc)[:200]}"))
    result.fingerprinted = len(models)
    if len(models) < 2:
        return result
    summaries = np.stack([np.asarray(fp.summary(), dtype=np.float32).reshape(len(COMPONENTS), SUMMARY_DIM)
                          for _, fp in models])
    # Permutation invariants: a permuted copy hides from the linear summaries (issue #22).
    nan = np.full(len(COMPONENTS) * SUMMARY_DIM, np.nan, dtype=np.float32)
    invariants = np.stack([nan if (inv := fp.invariant_summary()) is None else inv.astype(np.float32).ravel()
                           for _, fp in models])
    index = FingerprintIndex(np.arange(len(models), dtype=np.int64), [r.path for r, _ in models],
                             np.array([fp.kind for _, fp in models], dtype=object),
                             np.array([fp.k for _, fp in models]), summaries, [], invariants=invariants)
    entries = [BankModel("case", rec.path, fp.kind, fp) for rec, fp in models]
    seen: set[tuple[str, str, str]] = set()
    by_path = {rec.path: rec for rec, _ in models}
    questions: list[Question] = []
    for i, (rec, fp) in enumerate(models):
        picked = [j for j in index.candidates(fp, limit=7) if j != i][:6]
        if picked:
            questions.append((rec, fp, [entries[j] for j in picked]))
    reports = answers(questions) if answers is not None else \
        [_answer_with_weights(answer, rec, fp, ents) for rec, fp, ents in questions]
    for (rec, _fp, _ents), report in zip(questions, reports, strict=True):
        found: list[ModelLink] = []
        for s in report.same:
            found.append(ModelLink(rec.path, _path(s.entry), SAME, "", s.explanation))
        for d in report.derived:
            found.append(ModelLink(rec.path, _path(d.entry), FINE_TUNE, "", d.explanation))
        for r in report.related:
            found.append(ModelLink(rec.path, _path(r.entry), RELATED, "", r.explanation))
        for m in report.merges:
            for label, ratio in m.parts.items():
                found.append(ModelLink(rec.path, _path(label), MERGE, f"{ratio:.2f}", m.explanation))
        for lo in report.loras:
            found.append(ModelLink(rec.path, _path(lo.entry), LORA, f"{lo.strength:.2f}", lo.explanation))
        for lk in found:
            # same weights and fine-tuning are symmetric: one link per pair
            key = (min(lk.a, lk.b), max(lk.a, lk.b), lk.relation) if lk.relation in (SAME, FINE_TUNE, RELATED) \
                else (lk.a, lk.b, lk.relation)
            if key in seen or lk.b not in by_path:
                continue
            seen.add(key)
            result.links.append(lk)
            _record(by_path[lk.a], lk, lk.b)
            _record(by_path[lk.b], lk, lk.a)
    return result


def needs_weights(fp: Any) -> bool:
    """Whether the lineage answer for this fingerprint uses the file's weights (to align
    a permuted copy): checkpoints with alignment data, not LoRAs."""
    return bool(fp.kind != "lora" and fp.has_alignment_data())


def _answer_with_weights(answer: Callable[..., Any], rec: FileRecord | str | Path, fp: Any,
                         entries: list[Any]) -> Any:
    """The lineage answer with the file's weights at hand, so that a permuted copy of
    another file (same function, units reordered) is aligned to it and found; the
    fingerprint alone when the tensors cannot be reopened. ``rec``: the record, or the
    path of the file (a worker's copy of an object)."""
    from ..errors import AssayError
    from ..models.alignment import open_suspect

    if not needs_weights(fp):
        return answer(fp, entries)
    try:
        with open_suspect(rec.path if isinstance(rec, FileRecord) else rec) as tensors:
            return answer(fp, entries, tensors)
    except (AssayError, OSError):
        return answer(fp, entries)


def answer_with_weights(path: str | Path, fp: Any, entries: list[Any]) -> Any:
    """The lineage answer for the model file at ``path`` (its weights reopened there)."""
    from ..models.lineage import answer

    return _answer_with_weights(answer, path, fp, entries)


def _path(label: str) -> str:
    return label.split("/", 1)[1] if label.startswith("case/") else label


def _record(rec: FileRecord, lk: ModelLink, other: str) -> None:
    rel = lk.relation
    if rec.path == lk.b and rel in (MERGE, LORA):  # seen from the ingredient's side
        rel = "merged-into" if rel == MERGE else "lora-merged-into"
    rec.case_links = [*(rec.case_links or []), CaseLink(
        path=other, hash_type="lineage", value=lk.value or rel, role=rel, strength="lineage",
        explanation=lk.explanation[:1000])]


def readable_lines(ml: ModelLinks, limit: int = 20) -> list[str]:
    out: list[str] = []
    if not ml.links:
        if ml.fingerprinted >= 2:
            out.append(f"model links: none among {ml.fingerprinted:,} model files compared by their weights")
        return out
    out.append(f"model links: {len(ml.links):,} between model files of this scan, by their weights")
    words = {SAME: "same weights as",
             FINE_TUNE: "derives from, or is the base of, (weights changed by fine-tuning or merging; "
                        "which came first cannot be told from weights)",
             RELATED: "is related to (one is a fine-tune of the other, or both are fine-tunes of one base; "
                      "the weights alone cannot tell which)",
             MERGE: "is a merge including", LORA: "contains the LoRA"}
    for lk in ml.links[:limit]:
        extra = f" at strength {lk.value}" if lk.relation == LORA else (f" (ratio {lk.value})" if lk.value else "")
        out.append(f"  {lk.a} {words.get(lk.relation, lk.relation)} {lk.b}{extra}")
    if len(ml.links) > limit:
        out.append(f"  ... and {len(ml.links) - limit:,} more in the case-links record")
    return out
