"""Lineage of a model whose tensors were renamed: a function-preserving rewrite for
whoever ships the renaming map with it. The suspect's tensors are paired with a bank
entry's by shape and weights, names ignored (by sketch cosine; for a copy whose units
were also reordered, by statistics no reordering changes), named as the entry names
them, and the lineage questions of :mod:`assay.models.lineage` asked again."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np

from .fingerprint import Fingerprint, TensorSketch, pairable
from .lineage import (
    DERIVED_COS,
    BankModel,
    LineageReport,
    _answer,
    _permuted,
    _permuted_from_signatures,
    adopt_hidden,
)

__all__ = ["pair_by_content", "pair_by_invariants", "renamed", "renamed_and_permuted"]

RENAMED_COVER = 0.5  # share of an entry's pairable weights that must pair by content
RENAMED_MIN = 4  # and at least this many of its matrices


def pair_by_content(suspect: Fingerprint, entry: Fingerprint) -> dict[str, str]:
    """Suspect tensor name -> entry tensor name, names ignored: matrices of equal shape
    paired one to one by sketch cosine, greatest first, while it is at least DERIVED_COS
    (a tensor and its fine-tune measure 0.9 and more; unrelated ones about 0, and
    :func:`assay.models.fingerprint.pairable` keeps sketches too small to tell apart out)."""
    def by_shape(fp: Fingerprint) -> dict[tuple[int, ...], list[str]]:
        out: dict[tuple[int, ...], list[str]] = {}
        for n, t in fp.tensors.items():
            if pairable(t):
                out.setdefault(t.shape, []).append(n)
        return out

    def unit_rows(fp: Fingerprint, names: list[str]) -> np.ndarray:
        rows = np.stack([fp.tensors[n].sketch.ravel() for n in names]).astype(np.float64)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)

    pairs: dict[str, str] = {}
    mine = by_shape(suspect)
    for shape, theirs in by_shape(entry).items():
        ours = mine.get(shape)
        if not ours:
            continue
        cos = unit_rows(suspect, ours) @ unit_rows(entry, theirs).T
        used_r: set[int] = set()
        used_c: set[int] = set()
        for flat in np.argsort(-cos, axis=None, kind="stable"):
            r, c = divmod(int(flat), cos.shape[1])
            if cos[r, c] < DERIVED_COS or len(used_r) == min(cos.shape):
                break
            if r not in used_r and c not in used_c:
                used_r.add(r)
                used_c.add(c)
                pairs[ours[r]] = theirs[c]
    return pairs


def _names_silent(suspect: Fingerprint, entries: Sequence[BankModel], report: LineageReport
                  ) -> Iterator[tuple[BankModel, dict[str, TensorSketch], int]]:
    """The checkpoint/base entries nothing relates the suspect to yet whose tensor names
    it mostly lacks (under RENAMED_COVER of their pairable weights under the same name and
    shape): each with its pairable matrices and their total size."""
    found = ({f.entry for f in report.same} | {f.entry for f in report.derived}
             | {f.entry for f in report.related} | {p for m in report.merges for p in m.parts})
    for e in entries:
        if e.kind == "lora" or e.label in found or e.fingerprint.k != suspect.k:
            continue
        theirs = {n: t for n, t in e.fingerprint.tensors.items() if pairable(t)}
        total = sum(t.shape[0] * t.shape[1] for t in theirs.values())
        named = sum(t.shape[0] * t.shape[1] for n, t in theirs.items()
                    if n in suspect.tensors and suspect.tensors[n].shape == t.shape)
        if total and named < RENAMED_COVER * total:  # (otherwise the names speak for this entry)
            yield e, theirs, total


def renamed(suspect: Fingerprint, entries: Sequence[BankModel], report: LineageReport) -> None:
    """Entries whose tensor names the suspect mostly lacks (its tensors renamed: a
    function-preserving rewrite for whoever ships the renaming with it): pair the
    matrices by content, name the pairs as the entry does, and ask the questions again:
    same weights and fine-tune relations against that entry; merges, LoRAs and low-rank
    deltas against the whole bank, in the naming of the entry that paired best (banked
    checkpoints, bases and LoRAs of one family share its canonical names)."""
    # A flagged checkpoint's change is measured from its base (see _carried_changes).
    bases = [e for e in entries if e.kind == "base" and e.fingerprint.k == suspect.k]
    best: tuple[float, Fingerprint, str] | None = None  # (share paired, renamed suspect, how)
    for e, theirs, total in _names_silent(suspect, entries, report):
        pairs = pair_by_content(suspect, e.fingerprint)
        covered = sum(theirs[n].shape[0] * theirs[n].shape[1] for n in pairs.values())
        if len(pairs) < RENAMED_MIN or covered < RENAMED_COVER * total:
            continue
        renamed = Fingerprint(suspect.k, suspect.kind,
                              {theirs_name: replace(suspect.tensors[ours], name=theirs_name)
                               for ours, theirs_name in pairs.items()}, dict(suspect.source))
        moved = sum(1 for ours, theirs_name in pairs.items() if ours != theirs_name)
        what = (f"its tensor names differ from the entry's ({moved} renamed): {len(pairs)} of the "
                f"entry's {len(theirs)} matrices, {covered / total:.0%} of their weights, paired by "
                "shape and weights alone")
        if best is None or covered / total > best[0]:
            best = (covered / total, renamed, f"{len(pairs)} renamed matrices paired by content with {e.label}")
        sub = _answer(renamed, [e, *(b for b in bases if b is not e)])
        sub.same = [f for f in sub.same if f.entry == e.label]
        sub.derived = [f for f in sub.derived if f.entry == e.label]
        sub.related = [f for f in sub.related if f.entry == e.label]
        if not sub.same and not sub.derived and not sub.related:
            continue
        for f in sub.same:
            f.explanation = f"{f.explanation}; {what}"
            report.same.append(f)
        for f in sub.derived:
            f.explanation = f"{f.explanation}; {what}"
            report.derived.append(f)
        for r in sub.related:
            r.explanation = f"{r.explanation}; {what}"
            report.related.append(r)
        report.not_comparable = [n for n in report.not_comparable if n.entry != e.label]
    if best is not None:
        _renamed_merges_and_loras(best[1], entries, best[2], report)


def _renamed_merges_and_loras(renamed: Fingerprint, entries: Sequence[BankModel], how: str,
                              report: LineageReport) -> None:
    """What only the names hid: merges, LoRAs and a low-rank delta, asked again of the
    suspect under the names its matrices paired with."""
    sub = _answer(renamed, entries)
    adopt_hidden(report, sub, how)
    # Entries compared under the paired names were comparable after all.
    compared = {e.label for e in entries} - {n.entry for n in sub.not_comparable}
    report.not_comparable = [n for n in report.not_comparable if n.entry not in compared]


INV_SAME = 1e-3  # relative distance of permutation-free statistics of a copy (fp16 storage ~1e-4)
INV_UNIQUE = 10.0  # the next candidate must be this much farther: no pair among look-alikes


def pair_by_invariants(suspect: Fingerprint, entry: Fingerprint) -> dict[str, str]:
    """Suspect tensor name -> entry tensor name, names ignored and units in any order:
    tensors of equal shape paired on statistics no permutation of their units changes
    (quantiles of the row and unit norms, of a vector's values), only where they agree
    as a copy's do and no other candidate comes close (freshly initialised look-alikes,
    such as norms of ones, stay unpaired)."""
    def by_shape(fp: Fingerprint) -> dict[tuple[int, ...], list[str]]:
        out: dict[tuple[int, ...], list[str]] = {}
        for n, t in fp.tensors.items():
            if t.inv is not None and t.comparable and (not t.is_matrix or pairable(t)):
                out.setdefault(t.shape, []).append(n)
        return out

    pairs: dict[str, str] = {}
    mine = by_shape(suspect)
    for shape, theirs in by_shape(entry).items():
        ours = mine.get(shape)
        if not ours:
            continue
        a = np.stack([suspect.tensors[n].inv for n in ours]).astype(np.float64)  # type: ignore[misc]
        b = np.stack([entry.tensors[n].inv for n in theirs]).astype(np.float64)  # type: ignore[misc]
        if a.shape[1] != b.shape[1]:
            continue
        scale = np.maximum(np.linalg.norm(b, axis=1), 1e-30)
        dist = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2) / scale[None, :]
        for r in range(len(ours)):
            row = np.sort(dist[r])
            c = int(np.argmin(dist[r]))
            col = np.sort(dist[:, c])
            second = min(row[1] if len(row) > 1 else np.inf, col[1] if len(col) > 1 else np.inf)
            if dist[r, c] <= INV_SAME and second >= INV_UNIQUE * max(dist[r, c], INV_SAME / INV_UNIQUE):
                pairs[ours[r]] = theirs[c]
    return pairs


class _RenamedTensors(Mapping[str, np.ndarray]):
    """The suspect's weights under the entry's names (read when asked, as the source is)."""

    def __init__(self, source: Mapping[str, np.ndarray], theirs_to_ours: dict[str, str]) -> None:
        self._source, self._back = source, theirs_to_ours

    def __getitem__(self, name: str) -> np.ndarray:
        return self._source[self._back[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._back)

    def __len__(self) -> int:
        return len(self._back)


def renamed_and_permuted(suspect: Fingerprint, entries: Sequence[BankModel],
                          tensors: Mapping[str, np.ndarray] | None, report: LineageReport) -> None:
    """A copy both renamed and with its units reordered: neither names nor sketches pair
    its tensors with the entry's (a permuted matrix's sketch is unlike its original's).
    Pair them on permutation-free statistics, then undo the permutation under the
    entry's names. Copies only: a fine-tune moves those statistics as much as they
    differ between look-alike layers."""
    for e, theirs, total in _names_silent(suspect, entries, report):  # (a permuted copy is _permuted's)
        pairs = pair_by_invariants(suspect, e.fingerprint)
        mats = [n for n in pairs.values() if n in theirs]
        covered = sum(theirs[n].shape[0] * theirs[n].shape[1] for n in mats)
        if len(mats) < RENAMED_MIN or covered < RENAMED_COVER * total:
            continue
        renamed = Fingerprint(suspect.k, suspect.kind,
                              {theirs_name: replace(suspect.tensors[ours], name=theirs_name)
                               for ours, theirs_name in pairs.items()}, dict(suspect.source))
        sub = LineageReport()
        if tensors is not None:
            _permuted(renamed, [e], _RenamedTensors(tensors, {t: o for o, t in pairs.items()}), sub)
        else:
            _permuted_from_signatures(renamed, [e], sub)
        what = (f"its tensor names differ from the entry's: {len(pairs)} tensors ({covered / total:.0%} of the "
                "entry's matrix weights) paired on statistics no reordering of units changes")
        for f in sub.same:
            if f.entry == e.label:
                f.explanation = f"{f.explanation}; {what}"
                report.same.append(f)
                report.not_comparable = [n for n in report.not_comparable if n.entry != e.label]
