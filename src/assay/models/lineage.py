"""Lineage questions answered from fingerprints alone.

Given the fingerprint of a suspect model and a few bank entries (flagged
checkpoints, flagged LoRAs, known bases), :func:`answer` says, each with a score
and a plain explanation:

* **same weights** as entry X: every common tensor within ``SAME_TOL`` relative
  distance (fp16/bf16 conversion, re-saving, EMA pruning and renaming stay far below);
* **derived from** X: cosine of the sketches >= ``DERIVED_COS``, with the relative
  distance per component and which components were left identical, fine-tuned or
  replaced (an unrelated model of the same shape has a cosine near 0). Against a
  flagged checkpoint F closeness is not enough: every fine-tune of F's base is close to
  F. The suspect derives from F only if, measured from a banked base of F, its change
  carries F's change (:func:`_carried_changes`); otherwise it **shares a base** with F
  (:class:`SharesBase`, context, never a match);
* **merge** of X, Y, ...: non-negative least squares of the suspect's sketches on
  the entries' sketches, per component (Lawson-Hanson active set on the Gram matrix,
  in numpy: the problem has a handful of unknowns, scipy is not needed);
* **contains LoRA** L at strength s: the residual ``suspect - reconstruction`` is
  projected onto the LoRA's delta sketches (jointly for several LoRAs); reported when
  ``s >= LORA_MIN`` and the estimate is ``LORA_Z`` standard errors away from 0;
* **low-rank delta** of unknown origin: the residual's sketch, tensor by tensor, has
  a few singular values far above the rest (a merged LoRA of rank r < k/2).

Everything is linear algebra on k x k sketches, so no base weights are needed.
Fingerprints that cannot be compared (different sketch size, no common tensor,
mismatched shapes, NaN/Inf) give a :class:`NotComparable` entry, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from .fingerprint import Fingerprint, FlatSketches, component_of

__all__ = [
    "BankModel",
    "ComponentDiff",
    "ContainsLora",
    "DerivedFrom",
    "LineageReport",
    "LowRankDelta",
    "MergeOf",
    "NotComparable",
    "Permutation",
    "SameWeights",
    "SharesBase",
    "answer",
    "nnls",
]

SAME_TOL = 0.004  # relative sketch distance; bf16 rounding measures 0.0017, fp16 0.0002
DERIVED_COS = 0.5  # unrelated random-init models: |cos| < 0.05 over a whole component
# Unrelated sketches of n values have a cosine of about N(0, 1/n): over fewer values than
# this DERIVED_COS is less than 8 standard deviations away (two 4x4 matrices: 1 unrelated
# pair in 150 reached it), as for pairing by content (fingerprint.PAIR_MIN_ELEMENTS).
DERIVED_MIN_ELEMENTS = 256
ALIGN_SKIP_COS = 0.9  # every matrix this close: an ordinary fine-tune, not aligned (_all_matrices_close)
REPLACED_COS = 0.3  # a component this far from the entry's was swapped, not tuned
MERGE_MIN = 0.05  # smallest ratio reported as a merge ingredient
# A suspect holding only some of an entry's components is related to the entry (a match)
# when they hold at least this share of its weights (SD 1.5: UNet 80%, VAE 8%, text encoder
# 11%; SDXL: UNet 74%, text encoders 23%; Flux: transformer ~70%, T5 ~28%); below it, it
# is that component (often the public one every checkpoint of a family ships): context.
COMPONENT_MATCH_SHARE = 0.5
MERGE_NEED = 4.0  # without any one part the merge's residual must grow this much
MERGE_R2 = 0.9  # the merge must explain this share of the suspect's sketch energy
LORA_MIN = 0.05  # smallest strength reported
LORA_Z = 8.0  # standard errors: strict, because a false match is a false accusation
LOWRANK_GAP = 4.0  # singular values above this multiple of the median are "signal"
LOWRANK_SHARE = 0.5  # share of the residual energy that must be low-rank
DELTA_MIN = 0.005  # residual below this relative norm is conversion noise, not a change
LOWRANK_TENSORS = 128  # SVDs per query for the low-rank question
# Carrying a flagged checkpoint's change (suspect - base against entry - base, per matrix,
# medians): a fine-tune of the entry keeps its change whole (1.0) and pointing its way; a
# sibling fine-tune of the base measures about 0 on both. Half of the change, and a cosine
# DERIVED_COS, allow further training up to 1.7 times the entry's own change.
CARRIED_MIN = 0.5
QUANT_SAME = 1.5  # a quantized copy: distances up to this multiple of the type's own rounding error
QUANT_MAX = 0.2  # coarser types (ternary, 2-bit) change weights too much to call them the same

Status = Literal["identical", "fine-tuned", "replaced", "only-in-suspect", "only-in-entry"]


@dataclass(frozen=True)
class BankModel:
    """A bank entry with its fingerprint. ``kind`` is checkpoint, lora or base."""

    bank: str
    content_id: str
    kind: str
    fingerprint: Fingerprint
    role: str | None = None

    @property
    def label(self) -> str:
        return f"{self.bank}/{self.content_id}"


@dataclass
class ComponentDiff:
    component: str
    status: Status
    relative_distance: float | None
    cosine: float | None
    tensors: int


@dataclass
class Permutation:
    """What had to be undone before the comparison: function-preserving reorderings."""

    units_moved: int
    axes: int
    matrices_aligned: int
    matrices_rescaled: int = 0
    matrices_sign_flipped: int = 0


@dataclass
class SameWeights:
    entry: str
    kind: str
    score: float
    components: list[str]
    explanation: str
    permutation: Permutation | None = None
    # The entry's components the suspect does not hold: the suspect is one part of the
    # entry (a VAE or text encoder, often shipped unchanged in unrelated checkpoints),
    # and the share of the entry's weights (parameters) that part holds.
    lacks: list[str] = field(default_factory=list)
    entry_share: float = 1.0


@dataclass
class DerivedFrom:
    entry: str
    kind: str
    score: float
    components: list[ComponentDiff]
    explanation: str
    permutation: Permutation | None = None
    lacks: list[str] = field(default_factory=list)  # as SameWeights
    entry_share: float = 1.0
    # Against a flagged checkpoint: the banked base its change was measured from, and the
    # share of the entry's change the suspect carries (median over matrices; about 1 for
    # a fine-tune of the entry). None for bases, LoRAs and permuted copies found from
    # signatures.
    base: str | None = None
    carried: float | None = None


@dataclass
class SharesBase:
    """Close to a flagged checkpoint without being shown to carry its change: a sibling
    fine-tune of its base (``base`` banked, ``carried`` near 0), or a relative whose
    direction cannot be told because the entry's base is not in the bank (``base`` None).
    Context, never a match."""

    entry: str
    kind: str
    score: float  # sketch cosine with the entry
    explanation: str
    base: str | None = None
    carried: float | None = None
    delta_cosine: float | None = None
    permutation: Permutation | None = None


@dataclass
class MergeOf:
    component: str
    parts: dict[str, float]  # entry label -> ratio
    score: float  # share of the suspect's sketch energy explained (R^2)
    explanation: str


@dataclass
class ContainsLora:
    entry: str
    strength: float
    score: float  # |strength| in standard errors
    tensors: int
    explanation: str


@dataclass
class LowRankDelta:
    rank: int
    score: float  # share of the residual's energy in its low-rank part
    tensors: int
    explanation: str


@dataclass
class NotComparable:
    entry: str | None
    reason: str


@dataclass
class LineageReport:
    same: list[SameWeights] = field(default_factory=list)
    derived: list[DerivedFrom] = field(default_factory=list)
    related: list[SharesBase] = field(default_factory=list)
    merges: list[MergeOf] = field(default_factory=list)
    loras: list[ContainsLora] = field(default_factory=list)
    low_rank: LowRankDelta | None = None
    not_comparable: list[NotComparable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.same or self.derived or self.related or self.merges or self.loras or self.low_rank)

    def explanations(self) -> list[str]:
        lines = [f.explanation for f in self.same] + [f.explanation for f in self.derived]
        lines += [f.explanation for f in self.related]
        lines += [m.explanation for m in self.merges] + [lo.explanation for lo in self.loras]
        if self.low_rank:
            lines.append(self.low_rank.explanation)
        lines += [f"not comparable with {n.entry or 'the bank'}: {n.reason}" for n in self.not_comparable]
        if not self.found:
            lines.append("no lineage evidence against the bank entries compared "
                         "(this is not evidence of an original model)")
        return lines + self.notes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------
# NNLS
# ---------------------------------------------------------------------------------------


def nnls(gram: np.ndarray, rhs: np.ndarray, *, max_iter: int = 500) -> np.ndarray:
    """argmin_{w >= 0} ||A w - b||^2 given G = A^T A and h = A^T b (Lawson-Hanson)."""
    g = np.asarray(gram, dtype=np.float64)
    h = np.asarray(rhs, dtype=np.float64)
    n = h.size
    w = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    scale = max(float(np.max(np.abs(np.diag(g)))) if n else 0.0, 1e-300)
    tol = 1e-10 * scale
    ridge = 1e-12 * scale

    def solve(mask: np.ndarray) -> np.ndarray:
        z = np.zeros(n)
        idx = np.flatnonzero(mask)
        sub = g[np.ix_(idx, idx)] + ridge * np.eye(idx.size)
        z[idx] = np.linalg.lstsq(sub, h[idx], rcond=None)[0]
        return z

    for _ in range(max_iter):
        grad = h - g @ w
        grad[passive] = -np.inf
        j = int(np.argmax(grad)) if n else 0
        if n == 0 or grad[j] <= tol:
            break
        passive[j] = True
        for _ in range(max_iter):
            z = solve(passive)
            if np.all(z[passive] > 0):
                w = z
                break
            neg = passive & (z <= 0)
            step = np.min(w[neg] / np.maximum(w[neg] - z[neg], 1e-300))
            w = w + step * (z - w)
            passive &= w > tol * 1e-3
            w[~passive] = 0.0
    return w


# ---------------------------------------------------------------------------------------
# Pairwise comparison
# ---------------------------------------------------------------------------------------


def _elements(f: FlatSketches, idx: np.ndarray) -> np.ndarray:
    """Element positions in ``f.data`` of tensors ``idx``, back to back."""
    starts, lengths = f.offsets[idx], f.offsets[idx + 1] - f.offsets[idx]
    seg = np.zeros(len(idx), dtype=np.int64)
    np.cumsum(lengths[:-1], out=seg[1:])
    return np.repeat(starts - seg, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


def _pairs(sf: FlatSketches, ef: FlatSketches) -> tuple[np.ndarray, np.ndarray, int]:
    """Indices of comparable same-named, same-shaped tensors in both, and how many
    same-named tensors differ in shape."""
    ia, ib, mismatched = [], [], 0
    small, big, swap = (ef, sf, True) if len(ef.names) < len(sf.names) else (sf, ef, False)
    for i, name in enumerate(small.names):
        j = big.index.get(name)
        if j is None:
            continue
        if small.shapes[i] != big.shapes[j] or small.sketch_shapes[i] != big.sketch_shapes[j]:
            mismatched += 1
        elif small.ok[i] and big.ok[j]:
            ia.append(j if swap else i)
            ib.append(i if swap else j)
    return np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64), mismatched


@dataclass
class _Placed:
    """An entry's sketches placed in the suspect's flat layout (zeros elsewhere)."""

    vec: np.ndarray
    present: np.ndarray  # (n_suspect_tensors,) bool: comparable and filled
    mismatched: int


def _place(sf: FlatSketches, ef: FlatSketches) -> _Placed:
    if sf.names == ef.names and sf.sketch_shapes == ef.sketch_shapes and sf.shapes == ef.shapes:
        return _Placed(ef.data, sf.ok & ef.ok, 0)
    ia, ib, mismatched = _pairs(sf, ef)
    vec = np.zeros(sf.data.size, dtype=np.float32)
    present = np.zeros(len(sf.names), dtype=bool)
    if len(ia):
        vec[_elements(sf, ia)] = ef.data[_elements(ef, ib)]
        present[ia] = True
    return _Placed(vec, present, mismatched)


def _sums(sf: FlatSketches, x: np.ndarray) -> np.ndarray:
    """Per-tensor sums of an element vector in ``sf``'s layout. Only non-empty tensors
    are listed to reduceat, which sums from each listed start to the next."""
    out = np.zeros(len(sf.names))
    nz = np.flatnonzero(np.diff(sf.offsets))
    if len(nz):
        out[nz] = np.add.reduceat(x, sf.offsets[nz])
    return out


@dataclass
class _Stats:
    aa: float = 0.0
    bb: float = 0.0
    ab: float = 0.0
    dd: float = 0.0
    n: int = 0
    worst: float = 0.0  # largest per-tensor relative distance
    elements: int = 0  # sketch values compared

    @property
    def cosine(self) -> float:
        return self.ab / np.sqrt(self.aa * self.bb) if self.aa > 0 and self.bb > 0 else 0.0

    @property
    def distance(self) -> float:
        return float(np.sqrt(self.dd / self.bb)) if self.bb > 0 else (0.0 if self.dd == 0 else np.inf)


def _compare(sf: FlatSketches, pl: _Placed) -> tuple[dict[str, _Stats], dict[str, _Stats], int]:
    """Per-component statistics over matrices, and over all tensors (for 'same')."""
    a, b = sf.data, pl.vec
    d = a - b  # the difference first: no cancellation for near-identical weights
    aa, bb, ab, dd = (_sums(sf, x) for x in (a * a, b * b, a * b, d * d))
    rel = np.sqrt(dd / np.where(bb > 0, bb, 1.0))
    rel[(bb == 0) & (dd > 0)] = np.inf
    sizes = np.diff(sf.offsets)
    mats: dict[str, _Stats] = {}
    alls: dict[str, _Stats] = {}
    for c in np.unique(sf.group[pl.present]):
        sel = pl.present & (sf.group == c)
        name = sf.groups[int(c)]
        for target, m in ((alls, sel), (mats, sel & sf.matrix)):
            if m.any():
                target[name] = _Stats(float(aa[m].sum()), float(bb[m].sum()), float(ab[m].sum()),
                                      float(dd[m].sum()), int(m.sum()), float(rel[m].max()), int(sizes[m].sum()))
    return mats, alls, pl.mismatched


def _why_not_comparable(s: Fingerprint, e: BankModel) -> str | None:
    if s.k != e.fingerprint.k:
        return f"sketch sizes differ (k={s.k} vs k={e.fingerprint.k}); re-fingerprint one of them"
    sf, ef = s.flat(), e.fingerprint.flat()
    if not any(n in sf.index for n in ef.names):
        return "no tensor in common (a different architecture or model family)"
    ia, ib, mismatched = _pairs(sf, ef)
    if not len(ia):
        if mismatched:
            return f"{mismatched} common tensors all differ in shape (a different architecture)"
        return "every common tensor contains NaN/Inf or is empty in one of the two"
    if not np.any(ef.data[_elements(ef, ib)]):
        return "the entry's common tensors are all zero"
    return None


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.0f}%"


# ---------------------------------------------------------------------------------------
# The questions
# ---------------------------------------------------------------------------------------


def answer(suspect: Fingerprint, entries: Sequence[BankModel],
           tensors: Mapping[str, np.ndarray] | None = None) -> LineageReport:
    """Answer every lineage question for ``suspect`` against ``entries``. With the
    suspect's ``tensors`` (canonical name -> weights, e.g. from
    :func:`assay.models.alignment.open_suspect`) entries it is not the same as are also
    tried up to function-preserving permutations (:mod:`assay.models.alignment`)."""
    from .lineage_renamed import renamed, renamed_and_permuted

    report = _answer(suspect, entries)
    if suspect.kind != "lora":
        renamed(suspect, entries, report)
        renamed_and_permuted(suspect, entries, tensors, report)
    if tensors is not None and suspect.kind != "lora":
        _permuted(suspect, entries, tensors, report)
    elif suspect.kind != "lora":
        _permuted_from_signatures(suspect, entries, report)
    return report


# Units paired over all aligned matrices: tiny layers pair by chance (two unrelated
# 2- or 6-unit MLPs: 5 of 2,000 pairs were "permuted copies"; none from 8 units a layer).
SIG_MIN_UNITS = 64
SIG_ALIGNED = 0.9  # share of the common matrices whose units must pair (signatures only)
SIG_SAME_NORM = 1e-5  # relative tensor-norm difference of a permuted copy (float rounding ~1e-7)
SIG_SAME_UNITS = 0.01  # paired unit features within 1% of the feature's range (fp16 storage ~1e-3)


def _permuted_from_signatures(suspect: Fingerprint, entries: Sequence[BankModel], report: LineageReport) -> None:
    """Without the suspect's weights: pair units on signatures that do not depend on the
    order of the input units (format 3), per matrix, against each checkpoint/base entry
    the sketches did not relate. Same weights up to a permutation when every common
    matrix aligns, every tensor's exact norm is unchanged and every paired unit agrees
    to storage rounding; a derived copy when at least SIG_ALIGNED of the matrices align
    (unrelated models align none). Merges and LoRAs over a permuted base need the weights."""
    from .alignment import align_signatures, has_moments, signature_error

    if not has_moments(suspect):
        return
    same = {f.entry for f in report.same} | {p for m in report.merges for p in m.parts}
    derived = {f.entry for f in report.derived} | {f.entry for f in report.related}
    for e in entries:
        if (e.kind == "lora" or e.label in same or not has_moments(e.fingerprint)
                or _why_not_comparable(suspect, e) is not None):
            continue
        if e.label in derived and _all_matrices_close(suspect, e):
            continue  # an ordinary fine-tune: every weight still points the entry's way
        al = align_signatures(suspect, e.fingerprint, e.label)
        if al.tried < 2 or al.aligned < SIG_ALIGNED * al.tried or not al.moved:
            continue  # unrelated, or in order already (then the sketches spoke for this entry)
        units = sum(o.perm.size for o in (*al.rows.values(), *al.cols.values()))
        if units < SIG_MIN_UNITS:
            report.notes.append(f"{e.label}: its matrices' units pair with the suspect's, but {units} units "
                                f"only (a few units pair by chance; at least {SIG_MIN_UNITS} are needed): "
                                "not reported as a permuted copy")
            continue
        perm = Permutation(al.moved, len(al.axes()), al.aligned, 0)
        what = al.describe()
        common = [n for n, t in e.fingerprint.tensors.items()
                  if n in suspect.tensors and suspect.tensors[n].shape == t.shape]
        norm_diff = max((abs(suspect.tensors[n].norm - e.fingerprint.tensors[n].norm)
                         / max(e.fingerprint.tensors[n].norm, 1e-30) for n in common), default=float("inf"))
        unit_err = signature_error(suspect, e.fingerprint, al)
        quality = float(np.median([o.quality for o in (*al.rows.values(), *al.cols.values())]))
        comps = sorted({component_of(n) for n in common})
        report.derived = [f for f in report.derived if f.entry != e.label]  # e.g. "fine-tune 104%"
        basis = ("found from the two fingerprints alone: units paired on per-unit signatures that "
                 "do not depend on the order of a layer's inputs")
        if al.aligned == al.tried and norm_diff <= SIG_SAME_NORM and unit_err <= SIG_SAME_UNITS:
            report.same.append(SameWeights(
                e.label, e.kind, 1.0 - unit_err, comps,
                f"same weights as {e.kind} {e.label} up to {what}: the rewrite computes the same "
                f"function ({basis}; every tensor's norm equal within {norm_diff:.1g} and every paired "
                f"unit within {unit_err:.1g} of its feature's range)", perm))
        elif e.kind == "checkpoint":
            # Every fine-tune of the entry's base aligns with it too; without the suspect's
            # weights its change cannot be measured against the entry's (_carried_changes).
            report.related = [f for f in report.related if f.entry != e.label]
            report.related.append(SharesBase(
                e.label, e.kind, 1.0 - quality,
                f"a changed permuted copy of {e.kind} {e.label} or of its base: {what} ({basis}; paired "
                f"units sit at {quality:.2f} of the entry's own unit spacing, unrelated models measure 0.8 "
                f"or more; tensor norms differ by up to {_pct(norm_diff)}). Whether it carries the entry's "
                "change or only shares its base is not measured without the suspect's weights: not reported "
                "as derived", permutation=perm))
        else:
            report.derived.append(DerivedFrom(
                e.label, e.kind, 1.0 - quality, [],
                f"a changed (fine-tuned) permuted copy of {e.kind} {e.label}: {what} ({basis}; "
                f"paired units sit at {quality:.2f} of the entry's own unit spacing, unrelated models "
                f"measure 0.8 or more; tensor norms differ by up to {_pct(norm_diff)}). How much "
                "changed is not measured without the suspect's weights", perm))


def _permuted(suspect: Fingerprint, entries: Sequence[BankModel], tensors: Mapping[str, np.ndarray],
              report: LineageReport) -> None:
    """Align the suspect to each checkpoint/base entry it is not already the same as,
    re-sketch it in that entry's order and ask the questions again there."""
    from .alignment import align, aligned_fingerprint, shared_tensors

    if not suspect.has_alignment_data():
        return
    shared = shared_tensors(tensors)  # decoded once for every entry and the re-sketch
    same = {f.entry for f in report.same}
    derived = {f.entry for f in report.derived} | {f.entry for f in report.related}
    for e in entries:
        if (e.kind == "lora" or e.label in same or not e.fingerprint.has_alignment_data()
                or _why_not_comparable(suspect, e) is not None):
            continue
        if e.label in derived and _all_matrices_close(suspect, e):
            continue  # an ordinary fine-tune: every weight still points the entry's way
        al = align(suspect, shared, e.fingerprint, e.label)
        if not al.moved and not al.rescaled and not al.flipped:
            continue
        sub = _answer(aligned_fingerprint(suspect, shared, al), entries)
        hit_same = next((f for f in sub.same if f.entry == e.label), None)
        hit_derived = next((f for f in sub.derived if f.entry == e.label), None)
        hit_related = next((f for f in sub.related if f.entry == e.label), None)
        in_merge = any(e.label in m.parts for m in sub.merges)
        if hit_same is None and hit_derived is None and hit_related is None and not in_merge:
            continue
        perm = Permutation(al.moved, len(al.axes()), al.aligned, al.rescaled, al.flipped)
        what = al.describe()
        rewrite, undone = ("permuted", "permutation") if al.moved else ("rescaled", "rescaling")
        report.derived = [f for f in report.derived if f.entry != e.label]
        report.related = [f for f in report.related if f.entry != e.label]
        if hit_same is not None:
            same.add(e.label)
            report.same.append(SameWeights(
                e.label, e.kind, hit_same.score, hit_same.components,
                f"same weights as {e.kind} {e.label} up to {what}"
                + ("" if al.rescaled else ": the rewrite computes the same function")
                + f"; once undone, {hit_same.explanation}", perm))
        elif hit_derived is not None:
            report.derived.append(DerivedFrom(
                e.label, e.kind, hit_derived.score, hit_derived.components,
                f"a fine-tune of a {rewrite} copy: once {what} is undone, {hit_derived.explanation}",
                perm, base=hit_derived.base, carried=hit_derived.carried))
        elif hit_related is not None:
            hit_related.explanation = f"a {rewrite} copy: once {what} is undone, {hit_related.explanation}"
            hit_related.permutation = perm
            report.related.append(hit_related)
        # What the permutation hid: merges, LoRAs, a low-rank delta in the aligned frame.
        if in_merge and hit_same is None and hit_derived is None:
            report.notes.append(f"merge ingredients found once {what} (against {e.label}) is undone")
        if hit_same is not None:  # a "low-rank delta" seen before undoing it was the rewrite's
            report.low_rank = None
        adopt_hidden(report, sub, f"after undoing the {undone} found against {e.label}")
        report.not_comparable = [n for n in report.not_comparable
                                 if n.entry not in {lo.entry for lo in report.loras}]


def adopt_hidden(report: LineageReport, sub: LineageReport, how: str) -> None:
    """Add to ``report`` the merges, LoRAs and low-rank delta that ``sub`` (the questions
    asked again once a rewrite was undone) found and it lacks, each saying ``how``."""
    merges = {(m.component, tuple(sorted(m.parts))) for m in report.merges}
    for m in sub.merges:
        if (m.component, tuple(sorted(m.parts))) not in merges:
            m.explanation += f" ({how})"
            report.merges.append(m)
    loras = {lo.entry for lo in report.loras}
    for lo in sub.loras:
        if lo.entry not in loras:
            lo.explanation += f" ({how})"
            report.loras.append(lo)
    if report.low_rank is None and sub.low_rank is not None:
        sub.low_rank.explanation += f" ({how})"
        report.low_rank = sub.low_rank


def _all_matrices_close(suspect: Fingerprint, e: BankModel) -> bool:
    """True when every common matrix keeps a sketch cosine >= ALIGN_SKIP_COS with the
    entry: a permutation of any of its axes would drop that tensor's cosine to about 0,
    a per-unit rescaling (up_proj's units times c, down_proj's times 1/c) to 0.3-0.8,
    while a fine-tune leaves each matrix above 0.9."""
    sf = suspect.flat()
    pl = _place(sf, e.fingerprint.flat())
    a, b = sf.data, pl.vec
    aa, bb, ab = (_sums(sf, x) for x in (a * a, b * b, a * b))
    m = pl.present & sf.matrix & (aa > 0) & (bb > 0)
    if not m.any():
        return False
    return bool(np.all(ab[m] / np.sqrt(aa[m] * bb[m]) >= ALIGN_SKIP_COS))


def _answer(suspect: Fingerprint, entries: Sequence[BankModel]) -> LineageReport:
    report = LineageReport()
    bad = [n for n, t in suspect.tensors.items() if not t.comparable]
    if bad:
        report.notes.append(f"{len(bad)} suspect tensors contain NaN/Inf and were left out "
                            f"(e.g. {bad[0]})")
    models, loras = [], []
    for e in entries:
        why = _why_not_comparable(suspect, e)
        if why is not None:
            report.not_comparable.append(NotComparable(e.label, why))
            continue
        (loras if e.kind == "lora" and suspect.kind != "lora" else models).append(e)

    # 1-2: same weights / derived, entry by entry
    sf = suspect.flat()
    placed = [_place(sf, e.fingerprint.flat()) for e in models]
    for e, pl in zip(models, placed, strict=True):
        mats, alls, mismatched = _compare(sf, pl)
        _same_or_derived(suspect, e, mats, alls, mismatched, report)
    _carried_changes(suspect, models, placed, report)
    if suspect.kind == "lora":
        return report

    # 3: merges, and the reconstruction the LoRA questions measure against
    covered, recon = _reconstruct(suspect, models, placed, report)
    # 4-5: LoRAs and unexplained low-rank deltas in the residual
    if covered.any():
        residual = sf.data.astype(np.float64) - recon
        residual = _known_loras(suspect, covered, residual, loras, report)
        _low_rank(suspect, covered, recon, residual, report)
    elif loras:
        report.notes.append(
            f"{len(loras)} LoRA entries not tested: the suspect derives from no base or "
            "checkpoint in the bank, and a LoRA's strength is measured against its base")
    return report


def _same_or_derived(
    s: Fingerprint, e: BankModel, mats: dict[str, _Stats], alls: dict[str, _Stats],
    mismatched: int, report: LineageReport,
) -> None:
    comps_s = list(s.flat().groups)
    comps_e = list(e.fingerprint.flat().groups)
    order = list(dict.fromkeys(comps_s + comps_e))
    common = sorted(set(alls), key=order.index)
    same = common and all(alls[c].distance <= SAME_TOL and alls[c].worst <= 5 * SAME_TOL for c in common)
    lacks = sorted(set(comps_e) - set(comps_s))
    share = _share_of(e.fingerprint, set(common)) if lacks else 1.0
    extra = ""
    if lacks and share < COMPONENT_MATCH_SHARE:
        extra = (f"; only that part of the entry ({_pct(share)} of its weights): its {', '.join(lacks)} "
                 f"{'is' if len(lacks) == 1 else 'are'} not in the suspect (a component such as a public VAE or "
                 "text encoder is shipped unchanged in many unrelated checkpoints: this says the file is that "
                 "component, not that it comes from the entry)")
    elif lacks:
        extra = f"; the suspect lacks {', '.join(lacks)} ({_pct(1 - share)} of the entry's weights)"
    more = sorted(set(comps_s) - set(comps_e))
    if more:  # padding, or a part added to the entry: said, never left out
        extra += (f"; the suspect also holds {', '.join(more)} "
                  f"({_pct(1 - _share_of(s, set(common)))} of its weights), not in the entry")
    if same and mismatched:
        # Every tensor compared is the entry's to the bit, but some of the entry's names hold
        # another shape (a vocabulary extended or cut: the embeddings and head resized).
        # The copy is said, with what was not compared, unless that is most of the entry.
        resized, resized_share = _resized(s, e)
        if resized_share <= 1 - COMPONENT_MATCH_SHARE:
            first = ", ".join(f"{n}: {'x'.join(map(str, a))} in the suspect, {'x'.join(map(str, b))} in the entry"
                              for n, a, b in resized[:2])
            extra += (f"; {len(resized)} of the entry's tensors {'has' if len(resized) == 1 else 'have'} another "
                      f"shape in the suspect and {'was' if len(resized) == 1 else 'were'} not compared "
                      f"({_pct(resized_share)} of the entry's weights; {first}{', ...' if len(resized) > 2 else ''}: "
                      "resized, as when a vocabulary is extended)")
            mismatched = 0
            share = min(share, 1.0 - resized_share)
    if same and not mismatched:
        worst = max(alls[c].distance for c in common)
        report.same.append(SameWeights(
            e.label, e.kind, 1.0 - worst, common,
            f"same weights as {e.kind} {e.label} in {', '.join(common)} (largest relative "
            f"sketch distance {worst:.2g}: conversion or re-saving at most){extra}", lacks=lacks, entry_share=share,
        ))
        return
    if common and not same and not mismatched and (factors := _tensor_factors(s, e)):
        shown = ", ".join(f"{n} x{f:.3g}" for n, f in factors[:4]) + (
            f" and {len(factors) - 4} more" if len(factors) > 4 else "")
        report.same.append(SameWeights(
            e.label, e.kind, 1.0 - SAME_TOL, common,
            f"same weights as {e.kind} {e.label} in {', '.join(common)} up to a constant factor on "
            f"{len(factors)} tensors ({shown}): every tensor points exactly the entry's way; the same "
            "function where the factors cancel (attention's query and key, a norm and the layer reading "
            f"it, a gated MLP's up and down projections){extra}", lacks=lacks, entry_share=share,
        ))
        return
    quant = _quantization(s, e)
    if quant is not None and quant[1] <= QUANT_MAX and common and not mismatched:
        qname, tol = quant
        dists = [alls[c].distance for c in common]
        if all(d <= QUANT_SAME * tol + SAME_TOL for d in dists) and all(
                alls[c].worst <= 2 * QUANT_SAME * tol + 5 * SAME_TOL for c in common):
            worst = max(dists)
            report.same.append(SameWeights(
                e.label, e.kind, 1.0 - worst, common,
                f"same weights as {e.kind} {e.label} in {', '.join(common)}, quantized ({qname}): "
                f"largest relative sketch distance {_pct(worst)}, within the ~{_pct(tol)} that "
                f"{qname} rounding gives (a change smaller than that rounding cannot be ruled out){extra}",
                lacks=lacks, entry_share=share,
            ))
            return
    total = _Stats()
    for st in mats.values():
        total.aa += st.aa
        total.bb += st.bb
        total.ab += st.ab
        total.elements += st.elements
    if not mats or total.cosine < DERIVED_COS:
        return
    if total.elements < DERIVED_MIN_ELEMENTS:
        report.notes.append(
            f"{e.label}: sketch cosine {total.cosine:.2f}, but over {total.elements} values only (matrices "
            f"this small reach {DERIVED_COS} by chance; at least {DERIVED_MIN_ELEMENTS} are needed): not reported "
            "as derived")
        return
    diffs: list[ComponentDiff] = []
    for c in order:
        if c in alls:
            st = mats.get(c, alls[c])
            status: Status = ("identical" if alls[c].distance <= SAME_TOL
                              else "fine-tuned" if st.cosine >= REPLACED_COS else "replaced")
            diffs.append(ComponentDiff(c, status, st.distance, st.cosine, alls[c].n))
        elif c in comps_s:
            diffs.append(ComponentDiff(c, "only-in-suspect", None, None, 0))
        elif c in comps_e:
            diffs.append(ComponentDiff(c, "only-in-entry", None, None, 0))
    parts = []
    for d in diffs:
        if d.status == "fine-tuned":
            parts.append(f"{d.component} fine-tuned (relative distance {_pct(d.relative_distance or 0)})")
        elif d.status == "replaced":
            parts.append(f"{d.component} replaced (cosine {d.cosine:.2f})")
        elif d.status == "identical":
            parts.append(f"{d.component} unchanged")
        else:
            parts.append(f"{d.component} {d.status}")
    # Sketches show closeness, not direction: a suspect close to a base derives from
    # it; close to a flagged checkpoint it is that checkpoint's ancestor, descendant or
    # sibling, and the wording says so.
    if e.kind == "base":
        relation = f"derived from base {e.label}"
    elif e.kind == "lora":
        relation = f"a modified copy of LoRA {e.label} (rescaled, pruned or trained further)"
    else:
        relation = f"fine-tune relative of {e.kind} {e.label} (derived from it, its base, or a sibling)"
    if quant is not None:
        parts.append(f"distances include {quant[0]} rounding of about {_pct(quant[1])}")
    report.derived.append(DerivedFrom(
        e.label, e.kind, float(total.cosine), diffs,
        f"{relation} (sketch cosine {total.cosine:.3f}): " + "; ".join(parts) + extra,
        lacks=lacks, entry_share=share,
    ))


def _carried_changes(s: Fingerprint, models: list[BankModel], placed: list[_Placed],
                     report: LineageReport) -> None:
    """Keep a 'derived' finding against a flagged checkpoint F only if the suspect carries
    F's change. Every fine-tune of F's base is close to F (a fine-tune changes a few
    percent of the weights), so closeness says the two share a base, not that one was
    trained from the other. Measured from a banked base B of F, a fine-tune of F is
    B + (F - B) + its own change: it holds F's change whole; a sibling, B + its own
    change, holds none of it. Without a banked base of F, the direction cannot be told:
    the finding becomes :class:`SharesBase`, context."""
    entries = {e.label: (e, pl) for e, pl in zip(models, placed, strict=True)}
    bases = [(e, pl) for e, pl in zip(models, placed, strict=True) if e.kind == "base"]
    kept: list[DerivedFrom] = []
    for f in report.derived:
        e, pl = entries.get(f.entry, (None, None))
        if e is None or pl is None or e.kind != "checkpoint" or s.kind == "lora":
            kept.append(f)
            continue
        base = _nearest_base(s, pl, bases)
        if base is None:
            report.related.append(SharesBase(
                f.entry, f.kind, f.score,
                f"close to {e.kind} {e.label} (sketch cosine {f.score:.3f}): it is the entry trained further, "
                "or the entry's base, or another fine-tune of that base; the entry's base is not in the bank, "
                "so whether the suspect carries the entry's change is not measured (bank the base with kind "
                "'base' to tell): not reported as derived"))
            continue
        b, bpl = base
        test = _delta_test(s, e, pl, b, bpl)
        if test is None:
            report.related.append(SharesBase(
                f.entry, f.kind, f.score,
                f"close to {e.kind} {e.label} (sketch cosine {f.score:.3f}), which derives from base {b.label}; "
                f"the entry's change from {b.label} is too small or too few values to measure whether the suspect "
                "carries it: not reported as derived", base=b.label))
            continue
        carried, cos, n = test
        measured = _measured(e, b, test)
        if carried >= CARRIED_MIN and cos >= DERIVED_COS:
            f.base, f.carried = b.label, carried
            f.explanation = f.explanation.replace(
                f"fine-tune relative of {e.kind} {e.label} (derived from it, its base, or a sibling)",
                f"derived from {e.kind} {e.label} (carries its change: the entry trained further, or a "
                "checkpoint on the way to it)", 1) + f"; {measured}"
            kept.append(f)
        else:
            report.related.append(SharesBase(
                f.entry, f.kind, f.score,
                f"shares base {b.label} with {e.kind} {e.label} (sketch cosine {f.score:.3f}) but does not "
                f"carry its change: {measured}: not derived from it", b.label, carried, cos))
    report.derived = kept
    # Within a coarse quantization's rounding of F is also within it of F's base and of
    # F's siblings (4-bit rounding is larger than many fine-tunes' change): the rounding
    # is independent of F's change, so whether the suspect carries it still shows.
    same: list[SameWeights] = []
    carriers: dict[str, str] = {}  # base label -> an entry whose change the suspect carries
    for g in report.same:
        e, pl = entries.get(g.entry, (None, None))
        base = None if e is None or pl is None or e.kind != "checkpoint" or _quantization(s, e) is None \
            else _nearest_base(s, pl, bases)
        test = None if base is None or e is None or pl is None else _delta_test(s, e, pl, *base)
        if base is None or test is None or (test[0] >= CARRIED_MIN and test[1] >= DERIVED_COS):
            if test is not None and base is not None:
                g.explanation += f"; {_measured(e, base[0], test)}"  # type: ignore[arg-type]
                carriers[base[0].label] = g.entry
            same.append(g)
            continue
        b = base[0]
        report.related.append(SharesBase(
            g.entry, g.kind, g.score,
            f"within the quantization's rounding of {g.kind} {g.entry} and of its base {b.label}, but does not "
            f"carry the entry's change: {_measured(e, b, test)}: a quantized copy of the base or of another "  # type: ignore[arg-type]
            "fine-tune of it, not the entry's weights", b.label, test[0], test[1]))
    # The same rounding covers the base of an entry the suspect carries the change of: it
    # is that entry's weights, derived from the base, not the base's.
    report.same = []
    for g in same:
        if g.kind == "base" and g.entry in carriers and _quantization(s, entries[g.entry][0]) is not None:
            report.derived.append(DerivedFrom(
                g.entry, g.kind, g.score, [],
                f"derived from base {g.entry}: within the quantization's rounding of it too, but it carries the "
                f"change {carriers[g.entry]} made to it (see that entry)", lacks=g.lacks, entry_share=g.entry_share))
        else:
            report.same.append(g)


def _measured(e: BankModel, b: BankModel, test: tuple[float, float, int]) -> str:
    carried, cos, n = test
    return (f"measured from base {b.label}, the suspect carries {carried:.2f} of the change {e.label} "
            f"made to it (median over {n} matrices, cosine {cos:.2f}; a fine-tune of the entry measures "
            "about 1, another fine-tune of the base about 0)")


def _nearest_base(s: Fingerprint, pl: _Placed, bases: list[tuple[BankModel, _Placed]]
                  ) -> tuple[BankModel, _Placed] | None:
    """The banked base the entry (placed as ``pl``) is the closest fine-tune of, over the
    suspect's matrices: its nearest known ancestor. A base the entry is a copy of is not
    its ancestor (the entry has no change from it to measure)."""
    sf = s.flat()
    best, best_d = None, np.inf
    for b, bpl in bases:
        m = pl.present & bpl.present & sf.matrix
        if not m.any():
            continue
        f, v = pl.vec, bpl.vec
        fv, vv, dd = (_sums(sf, x)[m].sum() for x in (f * v, v * v, (f - v) ** 2))
        ff = _sums(sf, f * f)[m].sum()
        if vv <= 0 or ff <= 0 or fv / np.sqrt(ff * vv) < DERIVED_COS:
            continue
        d = float(np.sqrt(dd / vv))
        if SAME_TOL < d < best_d:
            best, best_d = (b, bpl), d
    return best


def _own_rounding(fp: Fingerprint) -> float:
    """The relative rounding error of the coarsest quantization a fingerprint was read
    from (0 for plain floats)."""
    errors = [quantization_error(str(q)) for q in (fp.source.get("quantized") or {})]
    return max((x for x in errors if x is not None), default=0.0)


def _delta_test(s: Fingerprint, e: BankModel, pl: _Placed, b: BankModel, bpl: _Placed
                ) -> tuple[float, float, int] | None:
    """How much of the entry's change from base ``b`` the suspect's change from it holds:
    per matrix the projection <s-b, e-b> / |e-b|^2 and the cosine of the two changes,
    each summarised by its median weighted by the entry's change (tensors the entry left
    alone, or changed less than its own rounding, do not count; a large change the suspect
    made to a few layers, such as a merged LoRA, does not hide the rest). The expected
    energy of quantization rounding is taken off each side (it is independent of the
    changes). None when too few values carry a change of the entry's."""
    sf = s.flat()
    a, fv, bv = sf.data.astype(np.float64), pl.vec.astype(np.float64), bpl.vec.astype(np.float64)
    ds, df = a - bv, fv - bv
    rs, rf, rb = _own_rounding(s) ** 2, _own_rounding(e.fingerprint) ** 2, _own_rounding(b.fingerprint) ** 2
    bb = _sums(sf, bv * bv)
    sd = _sums(sf, ds * df) - rb * bb  # a quantized base's rounding is in both changes
    ff = _sums(sf, df * df) - rf * _sums(sf, fv * fv) - rb * bb
    ss = _sums(sf, ds * ds) - rs * _sums(sf, a * a) - rb * bb
    m = pl.present & bpl.present & sf.matrix & sf.ok & (ff > 1e-12 * bb)
    if int(np.diff(sf.offsets)[m].sum()) < DERIVED_MIN_ELEMENTS:
        return None
    ff, sd, ss = ff[m], sd[m], ss[m]
    carried = sd / ff
    cos = np.clip(sd / np.sqrt(ff * np.maximum(np.maximum(ss, sd * sd / ff), 1e-300)), -1.0, 1.0)
    return _weighted_median(carried, ff), _weighted_median(cos, ff), int(m.sum())


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    return float(x[order][int(np.searchsorted(cum, cum[-1] / 2))])


def _tensor_factors(s: Fingerprint, e: BankModel) -> list[tuple[str, float]]:
    """Where every common tensor is the entry's times a positive constant (its sketch
    parallel to the entry's to within SAME_TOL), the tensors whose constant is not 1
    (name, factor); empty otherwise. Multiplying attention's query by c and its key by
    1/c, or a norm's weights by c and the next layer by 1/c, keeps the function but moves
    every such tensor far from the entry's."""
    sf = s.flat()
    pl = _place(sf, e.fingerprint.flat())
    a, b = sf.data.astype(np.float64), pl.vec.astype(np.float64)
    aa, bb, ab = (_sums(sf, x) for x in (a * a, b * b, a * b))
    m = pl.present & (bb > 0)
    if not m.any() or np.any(aa[m] <= 0) or np.any(ab[m] <= 0):
        return []
    cos = ab[m] / np.sqrt(aa[m] * bb[m])
    if np.any(np.sqrt(np.maximum(1.0 - cos * cos, 0.0)) > SAME_TOL):
        return []
    factor = np.sqrt(aa[m] / bb[m])
    names = [sf.names[i] for i in np.flatnonzero(m)]
    return [(n, float(f)) for n, f in zip(names, factor, strict=True) if abs(np.log(f)) > 0.01]


def _resized(s: Fingerprint, e: BankModel) -> tuple[list[tuple[str, tuple[int, ...], tuple[int, ...]]], float]:
    """The entry's tensors whose names the suspect holds in another shape (name, suspect's
    shape, entry's shape), and their share of the entry's parameters."""
    sf, ef = s.flat(), e.fingerprint.flat()
    sizes = np.array([int(np.prod(sh)) for sh in ef.shapes], dtype=np.float64)
    out, inside = [], 0.0
    for i, name in enumerate(ef.names):
        j = sf.index.get(name)
        if j is not None and (sf.shapes[j] != ef.shapes[i] or sf.sketch_shapes[j] != ef.sketch_shapes[i]):
            out.append((name, tuple(sf.shapes[j]), tuple(ef.shapes[i])))
            inside += sizes[i]
    total = float(sizes.sum())
    return out, inside / total if total else 1.0


def _share_of(fp: Fingerprint, components: set[str]) -> float:
    """The share of a fingerprint's parameters in the given components."""
    f = fp.flat()
    sizes = np.array([int(np.prod(sh)) for sh in f.shapes], dtype=np.float64)
    inside = np.array([f.groups[int(g)] in components for g in f.group], dtype=bool)
    total = float(sizes.sum())
    return float(sizes[inside].sum()) / total if total else 0.0


def _quantization(s: Fingerprint, e: BankModel) -> tuple[str, float] | None:
    """The coarsest block quantization either fingerprint was read from, with the
    relative error it causes on its own (None when both are plain floats)."""
    worst: tuple[str, float] | None = None
    for fp in (s, e.fingerprint):
        for qtype in (fp.source.get("quantized") or {}):
            tol = quantization_error(str(qtype))
            if tol is not None and (worst is None or tol > worst[1]):
                worst = (str(qtype), tol)
    return worst


@lru_cache(maxsize=64)
def quantization_error(qtype: str) -> float | None:
    """Relative RMS error of a GGML quantization type on Gaussian weights: measured with
    the gguf package's own quantizer where it has one; for the types it only reads
    (K-quants, i-quants) estimated from bits per weight on the legacy types' curve
    (each bit halves the error), which overstates the error of those better formats."""
    from .formats.quantized import rounding_error

    if (own := rounding_error(qtype)) is not None:  # GPTQ, AWQ, bitsandbytes
        return own
    try:
        import gguf
        from gguf.quants import dequantize, quantize
        qt = gguf.GGMLQuantizationType[qtype]
        block, size = gguf.GGML_QUANT_SIZES[qt]
    except (ImportError, KeyError):
        return None
    x = np.random.default_rng(0).standard_normal((16, 1024)).astype(np.float32)
    try:
        y = dequantize(quantize(x, qt), qt)
        return float(np.linalg.norm(y - x) / np.linalg.norm(x))
    except (NotImplementedError, ValueError, TypeError):
        pass
    ref = quantization_error("Q4_0")
    if ref is None:
        return None
    bpw = 8.0 * size / block
    return ref * 2.0 ** (4.5 - bpw)


def _reconstruct(
    s: Fingerprint, models: list[BankModel], placed: list[_Placed], report: LineageReport
) -> tuple[np.ndarray, np.ndarray]:
    """Per component, the NNLS combination of entries closest to the suspect; records
    merges. Returns which suspect tensors are covered and the reconstruction (in the
    suspect's flat layout; zero where not covered)."""
    sf = s.flat()
    covered = np.zeros(len(sf.names), dtype=bool)
    recon = np.zeros(sf.data.size, dtype=np.float64)
    sizes = np.diff(sf.offsets)
    for ci, comp in enumerate(sf.groups):
        mask = sf.matrix & sf.ok & (sf.group == ci)
        if not mask.any():
            continue
        chosen = [i for i, pl in enumerate(placed) if (pl.present & mask).sum() >= 0.9 * mask.sum()]
        if not chosen:
            continue
        use = mask.copy()
        for i in chosen:
            use &= placed[i].present
        if not use.any():
            continue
        idx = np.flatnonzero(use)
        lo, hi = int(sf.offsets[idx[0]]), int(sf.offsets[idx[-1] + 1])
        if use[idx[0]:idx[-1] + 1].all():  # the usual case: no tensor to mask out
            x = sf.data[lo:hi]
            cols = np.stack([placed[i].vec[lo:hi] for i in chosen])
        else:
            el = np.repeat(use[idx[0]:idx[-1] + 1], sizes[idx[0]:idx[-1] + 1]).astype(np.float32)
            x = sf.data[lo:hi] * el
            cols = np.stack([placed[i].vec[lo:hi] * el for i in chosen])
        ss = float(np.dot(x.astype(np.float64), x))
        if ss == 0:
            continue
        gram = (cols @ cols.T).astype(np.float64)
        rhs = (cols @ x).astype(np.float64)
        # Entries identical in this component (e.g. a shared VAE) are one column.
        keep: list[int] = []
        for i in range(len(chosen)):
            if not any(gram[i, j] / np.sqrt(gram[i, i] * gram[j, j] + 1e-300) > 0.9999 for j in keep):
                keep.append(i)
        g = gram[np.ix_(keep, keep)]
        h = rhs[keep]
        w = nnls(g, h)
        resid = ss - 2 * float(w @ h) + float(w @ g @ w)
        r2 = 1.0 - max(resid, 0.0) / ss
        if r2 < 0.5:
            continue
        recon[lo:hi] += (w.astype(np.float32) @ cols[keep]).astype(np.float64)
        covered |= use
        used = [(models[chosen[keep[i]]], float(w[i])) for i in range(len(keep)) if w[i] > 1e-9]
        big = [(e, wt) for e, wt in used if wt >= MERGE_MIN]
        if len(big) >= 2 and r2 >= MERGE_R2 and not _every_part_needed(g, h, w, ss, resid):
            report.notes.append(
                f"{comp}: a mix of {len(big)} entries explains {100 * r2:.1f}% of the sketch energy, but "
                "about as well without one of them: the suspect shares an ancestor with them (their "
                "base, not banked), it is not shown to be a merge")
        elif len(big) >= 2 and r2 >= MERGE_R2:
            total = sum(wt for _, wt in big)
            parts = {e.label: wt / total for e, wt in big}
            shown = ", ".join(f"{lbl} {r:.2f}" for lbl, r in sorted(parts.items(), key=lambda p: -p[1]))
            report.merges.append(MergeOf(
                comp, parts, r2,
                f"{comp} is a merge of {shown} (ratios sum to {total:.2f} before normalising; "
                f"explains {100 * r2:.1f}% of the sketch energy)",
            ))
    return covered, recon


def _every_part_needed(g: np.ndarray, h: np.ndarray, w: np.ndarray, ss: float, resid: float) -> bool:
    """Whether each entry of an NNLS fit (weights ``w`` on Gram ``g``, right side ``h``)
    is needed: refitted without it, the residual grows at least MERGE_NEED-fold. A merge
    of some entries is explained by them alone, up to rounding; fine-tunes of one base
    (the base itself, a sibling) are fitted by their average about as well by any of them
    (n siblings, the base: residual up by n/(n-1) without one)."""
    floor = MERGE_NEED * max(resid, 1e-9 * ss)
    for i in np.flatnonzero(w >= MERGE_MIN):
        rest = np.array([j for j in range(len(w)) if j != i], dtype=np.int64)
        gr, hr = g[np.ix_(rest, rest)], h[rest]
        wr = nnls(gr, hr)
        if ss - 2 * float(wr @ hr) + float(wr @ gr @ wr) < floor:
            return False
    return True


def _known_loras(
    s: Fingerprint, covered: np.ndarray, residual: np.ndarray, loras: list[BankModel],
    report: LineageReport,
) -> np.ndarray:
    """Joint least-squares strengths of the bank LoRAs in the residual; returns the
    residual with the detected LoRAs removed."""
    sf = s.flat()
    usable: list[tuple[BankModel, np.ndarray, np.ndarray]] = []
    for e in loras:
        lf = e.fingerprint.flat()
        ia, ib, _ = _pairs(sf, lf)
        keep = covered[ia] if len(ia) else np.zeros(0, dtype=bool)
        ia, ib = ia[keep], ib[keep]
        if not len(ia):
            missing = sum(1 for n in e.fingerprint.tensors if n not in sf.index)
            why = ("its target tensors are absent from the suspect (a LoRA for another architecture)"
                   if missing else "its targets differ in shape or lie outside the reconstructed components")
            report.not_comparable.append(NotComparable(e.label, why))
            continue
        vals = lf.data[_elements(lf, ib)]
        if not np.any(vals):
            report.not_comparable.append(NotComparable(e.label, "the LoRA's deltas are all zero"))
            continue
        usable.append((e, ia, vals))
    if not usable:
        return residual
    targets = np.zeros(len(sf.names), dtype=bool)
    for _, ia, _ in usable:
        targets[ia] = True
    tidx = np.flatnonzero(targets)
    pos = _elements(sf, tidx)
    local = np.full(len(sf.names), -1, dtype=np.int64)
    local_start = np.zeros(len(tidx), dtype=np.int64)
    np.cumsum((sf.offsets[tidx + 1] - sf.offsets[tidx])[:-1], out=local_start[1:])
    local[tidx] = local_start
    cols = np.zeros((len(usable), pos.size), dtype=np.float64)
    for i, (_, ia, vals) in enumerate(usable):
        lengths = sf.offsets[ia + 1] - sf.offsets[ia]
        seg = np.zeros(len(ia), dtype=np.int64)
        np.cumsum(lengths[:-1], out=seg[1:])
        where = np.repeat(local[ia] - seg, lengths) + np.arange(vals.size, dtype=np.int64)
        cols[i, where] = vals
    r = residual[pos]
    gram = cols @ cols.T
    rhs = cols @ r
    m = len(usable)
    reg = 1e-12 * np.eye(m) * max(float(np.max(np.diag(gram))), 1e-300)
    alpha = np.linalg.lstsq(gram + reg, rhs, rcond=None)[0]
    resid = max(float(r @ r) - 2 * float(alpha @ rhs) + float(alpha @ gram @ alpha), 0.0)
    # Noise per sketch entry, as if the unexplained residual were isotropic.
    sigma2 = resid / max(pos.size - m, 1)
    cov = np.linalg.pinv(gram + reg) * sigma2
    out = residual.copy()
    for i, (e, ia, _) in enumerate(usable):
        se = float(np.sqrt(max(cov[i, i], 1e-300)))
        z = abs(float(alpha[i])) / se
        if alpha[i] >= LORA_MIN and z >= LORA_Z:
            n = len(ia)
            report.loras.append(ContainsLora(
                e.label, float(alpha[i]), z, n,
                f"contains LoRA {e.label} at strength {alpha[i]:.2f} (+/- {se:.3f}; "
                f"{n} patched tensors, {z:.0f} standard errors from zero)",
            ))
            out[pos] -= alpha[i] * cols[i]
    return out


def _low_rank(
    s: Fingerprint, covered: np.ndarray, recon: np.ndarray, residual: np.ndarray,
    report: LineageReport,
) -> None:
    sf = s.flat()
    ref = _sums(sf, recon ** 2)
    res = _sums(sf, residual ** 2)
    small = np.array([min(sh) < 8 if len(sh) == 2 else True for sh in sf.sketch_shapes])
    pick = covered & sf.matrix & ~small & (ref > 0) & (res > (DELTA_MIN ** 2) * ref)
    total = float(res[pick].sum())
    if total == 0:
        return
    # The tensors holding most of the unexplained change decide; a few hundred SVDs
    # more would cost time and change nothing.
    ranked = np.flatnonzero(pick)
    if len(ranked) > LOWRANK_TENSORS:
        top = ranked[np.argsort(-res[ranked])[:LOWRANK_TENSORS]]
        pick = np.zeros_like(pick)
        pick[top] = True
        total = float(res[pick].sum())
    lowrank_energy = 0.0
    ranks: list[tuple[int, float]] = []
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i in np.flatnonzero(pick):
        by_shape.setdefault(sf.sketch_shapes[i], []).append(int(i))
    for shape, idx in by_shape.items():
        stack = np.stack([residual[sf.offsets[i]:sf.offsets[i + 1]].reshape(shape) for i in idx])
        sv = np.linalg.svd(stack, compute_uv=False)  # batched over tensors of one shape
        floor = np.maximum(LOWRANK_GAP * np.median(sv, axis=1), 1e-3 * sv[:, 0])
        rank = np.count_nonzero(sv > floor[:, None], axis=1)
        for t in range(len(idx)):
            rk = int(rank[t])
            if 1 <= rk <= min(shape) // 2:
                part = float(np.sum(sv[t, :rk] ** 2))
                lowrank_energy += part
                ranks.append((rk, part))
    if not ranks:
        return
    share = lowrank_energy / total
    if share < LOWRANK_SHARE:
        return
    ranks.sort()
    half, acc, rank_est = lowrank_energy / 2, 0.0, ranks[-1][0]
    for rk, part in ranks:
        acc += part
        if acc >= half:
            rank_est = rk
            break
    report.low_rank = LowRankDelta(
        rank_est, share, len(ranks),
        f"a low-rank delta (estimated rank {rank_est}, in {len(ranks)} tensors, {_pct(share)} of the "
        f"unexplained change) sits on top of the matched weights: the signature of a merged "
        f"LoRA not in the bank; `assay lora extract` can recover it",
    )
