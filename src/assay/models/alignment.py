"""Aligning a suspect model to a banked fingerprint across function-preserving permutations.

A network computes the same function after its hidden units are reordered: the FFN
neurons of a layer (rows of the first matrix and its bias, columns of the second),
attention heads (Q/K/V rows, output-projection columns), the residual dimension of a
whole transformer (every matrix reading or writing it, embeddings, norms), or the
channels of a convolutional block. With a ReLU-family activation a neuron's input
weights can also be multiplied by ``c > 0`` and its output weights by ``1/c``; GELU
and SiLU are not positively homogeneous, so there that rescaling changes the function
and is not a symmetry (it is still undone here, and the report says it was needed).

Random sketches ``P W Q`` are not invariant to any of this, so a bank entry stores,
per matrix, a small *signature* of each output unit (:class:`TensorSketch` ``rowsig``:
the row's norm and its projections on ``ALIGN_DIM`` fixed random vectors) and, where
the rows are a fixed axis (embeddings, vocabulary heads, a few output channels), of
each input unit (``colsig``); 1-D tensors (biases, norms) keep their values.

Alignment needs the suspect's weights (it runs where the suspect file is open) and
only the bank's fingerprint:

1. a tensor whose *columns* are in a known order (an unpermuted input axis, or an
   axis already recovered on another tensor) gets its rows matched to the banked row
   signatures: each suspect row, with its columns put in bank order, is projected on
   the same random vectors, and rows are paired by nearest signature (greedy on
   distance, then the rest by order). A match counts only when the paired
   signatures are far closer than the bank's own rows are to each other;
2. tensors with a fixed row axis recover their column order the same way from the
   column signatures (the bootstrap of a permuted residual dimension);
3. every recovered order becomes a candidate for the columns of other tensors of that
   size (nearest name first); this repeats until nothing new is found;
4. 1-D tensors take the order of their sibling weight's rows, or of whichever
   recovered axis of their length fits their stored values best.

Without the suspect's weights (a query from a stored fingerprint) :func:`align_signatures`
pairs each matrix's units on the format-3 features that no reordering of its inputs
changes (norm, sum, cube root of the sum of cubes), every matrix on its own; lineage
then decides from the paired features and the exact tensor norms, not from sketches
(``lineage._permuted_from_signatures``).

The suspect is then re-sketched in the entry's order (:func:`aligned_fingerprint`)
and compared exactly as an unpermuted suspect is: same weights, fine-tune, merge,
LoRA. Alignment itself never decides a relation; the sketch comparison after it does,
with the usual thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .fingerprint import (
    ALIGN_DIM,
    Fingerprint,
    TensorSketch,
    _array_rows,
    _Decoder,
    _one_blas_thread,
    _piece_view,
    _plan,
    _sketch_source,
    align_projection,
    fixed_rows,
    left,
    right,
)

__all__ = [
    "Alignment",
    "AxisOrder",
    "align",
    "align_signatures",
    "aligned_fingerprint",
    "canonical_arrays",
    "has_moments",
    "open_suspect",
    "query_file",
    "shared_tensors",
    "signature_error",
]

# Paired signature distance over the bank rows' own nearest-neighbour spacing below which
# a match counts; unrelated rows measure 0.82-1.6 (4 to 1536 units, 5-6 features).
ACCEPT = 0.5
SCALE_TOL = 0.01  # per-unit factors within 1% of 1 are rounding, not a rescaling
RESCALE_SPREAD = 0.05  # std of log factors below which rows share one factor (not rescaled)
CACHE_BYTES = 512 * 1024 * 1024  # suspect tensors kept decoded while aligning


@dataclass
class AxisOrder:
    """Bank unit ``i`` is suspect unit ``perm[i]`` (times ``scale[i]`` when rescaled)."""

    perm: np.ndarray
    scale: np.ndarray | None = None
    source: str = ""
    quality: float = 0.0

    @property
    def moved(self) -> int:
        return int(np.count_nonzero(self.perm != np.arange(self.perm.size)))

    @property
    def rescaled(self) -> bool:
        return self.scale is not None and bool(np.any(np.abs(np.log(np.abs(self.scale))) > SCALE_TOL))

    @property
    def flipped(self) -> bool:
        """Units whose sign was flipped (a negative factor): an odd activation's symmetry."""
        return self.scale is not None and bool(np.any(self.scale < 0))

    def key(self) -> bytes:
        flips = b"" if not self.flipped else np.signbit(self.scale).tobytes()  # type: ignore[arg-type]
        # the factors too: rows rescaled in their own order (up_proj's units times c) are a
        # candidate for the columns reading them (down_proj's, times 1/c), not the identity
        factors = b"" if not self.rescaled else np.round(
            np.log(np.abs(self.scale)), 2).astype(np.float32).tobytes()  # type: ignore[arg-type]
        return self.perm.astype(np.int64).tobytes() + flips + factors


def _identity(n: int) -> AxisOrder:
    return AxisOrder(np.arange(n), None, "identity", 0.0)


@dataclass
class Alignment:
    """The unit orders recovered between a suspect and one bank entry."""

    entry: str
    rows: dict[str, AxisOrder] = field(default_factory=dict)
    cols: dict[str, AxisOrder] = field(default_factory=dict)
    vectors: dict[str, AxisOrder] = field(default_factory=dict)
    tried: int = 0  # matrices with signatures in both
    _axes: tuple[tuple[int, int, int], list[tuple[str, int, int, int]]] | None = field(
        default=None, repr=False, compare=False)

    @property
    def aligned(self) -> int:
        return len(set(self.rows) | set(self.cols))

    def axes(self) -> list[tuple[str, int, int, int]]:
        """Distinct permuted axes: (where it was found, units, units moved, tensors sharing
        it). Orders agreeing on 90% of their units are one axis (a fine-tune can make a few
        units of one tensor pair differently). An axis that an embedding's columns carry is
        the model's hidden (residual) dimension."""
        key = (len(self.rows), len(self.cols), len(self.vectors))
        if self._axes is None or self._axes[0] != key:
            self._axes = (key, self._find_axes())
        return list(self._axes[1])

    def _find_axes(self) -> list[tuple[str, int, int, int]]:
        axes: list[tuple[AxisOrder, str, int, bool]] = []
        for side, table in (("rows", self.rows), ("columns", self.cols), ("values", self.vectors)):
            for name, o in sorted(table.items()):
                if not o.moved or "+" in o.source:  # a concatenation of axes counted already
                    continue
                hidden = side == "columns" and fixed_rows(name, 0)
                for i, (ref, where, count, hid) in enumerate(axes):
                    if ref.perm.size == o.perm.size and np.mean(ref.perm == o.perm) >= 0.9:
                        axes[i] = (ref, where, count + 1, hid or hidden)
                        break
                else:
                    axes.append((o, f"{side} of {name}", 1, hidden))
        return [("hidden dimension" if hid else where, o.perm.size, o.moved, count)
                for o, where, count, hid in axes]

    @property
    def moved(self) -> int:
        return sum(m for _, _, m, _ in self.axes())

    @property
    def rescaled(self) -> int:
        """Tensors whose rows, input columns or values were rescaled unit by unit."""
        return len({n for table in (self.rows, self.cols, self.vectors) for n, o in table.items() if o.rescaled})

    @property
    def flipped(self) -> int:
        return sum(1 for o in self.rows.values() if o.flipped)

    def describe(self) -> str:
        axes = self.axes()
        shown = "; ".join(f"{m} of {n} units of the {where}, in {c} tensors" if where == "hidden dimension"
                          else f"{m} of {n} units, in {c} tensors from the {where}"
                          for where, n, m, c in axes[:4])
        more = f"; and {len(axes) - 4} more axes" if len(axes) > 4 else ""
        if self.moved:
            text = (f"a permutation of {self.moved} units in {len(axes)} "
                    f"{'axis' if len(axes) == 1 else 'axes'} ({shown}{more}; {self.aligned} of "
                    f"{self.tried} matrices aligned)")
        else:
            text = f"a rescaling of units ({self.aligned} of {self.tried} matrices aligned, none permuted)"
        if self.rescaled:
            rows = sum(1 for o in self.rows.values() if o.rescaled)
            cols = sum(1 for o in self.cols.values() if o.rescaled)
            vecs = sum(1 for o in self.vectors.values() if o.rescaled)
            what = ", ".join(f"{n} {w}" for n, w in ((rows, "matrices' rows"), (cols, "matrices' input columns"),
                                                       (vecs, "vectors' values")) if n)
            text += (f"; units rescaled by positive factors ({what}): the same function where the factors "
                     "cancel (a norm's weights and the layer reading it, a gated MLP's up projection and its "
                     "down projection) or before a ReLU-family activation, not before GELU/SiLU")
        if self.flipped:
            text += (f"; {self.flipped} matrices also had units' signs flipped (function-preserving "
                     "only before an odd activation such as tanh, not ReLU/GELU/SiLU)")
        return text


# ---------------------------------------------------------------------------------------
# Matching signatures
# ---------------------------------------------------------------------------------------


def _nearest(a: np.ndarray, b: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For every row of ``a`` its ``k`` nearest rows of ``b`` (indices, distances)."""
    k = max(1, min(k, b.shape[0] - (1 if exclude_self else 0)))
    bn = np.einsum("ij,ij->i", b, b)
    idx = np.zeros((a.shape[0], k), dtype=np.int64)
    dist = np.zeros((a.shape[0], k))
    step = max(1, (1 << 22) // max(b.shape[0], 1))
    for r0 in range(0, a.shape[0], step):
        blk = a[r0:r0 + step]
        d = np.einsum("ij,ij->i", blk, blk)[:, None] + bn[None, :] - 2.0 * (blk @ b.T)
        if exclude_self:
            d[np.arange(blk.shape[0]), np.arange(r0, r0 + blk.shape[0])] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(
            np.arange(d.shape[1]), (d.shape[0], 1))
        pd = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd, axis=1)
        idx[r0:r0 + step] = np.take_along_axis(part, order, axis=1)
        dist[r0:r0 + step] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0.0))
    return idx, dist


def _distances(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Squared distances from blocks of rows of ``a`` to every row of ``b``, the same
    arithmetic as :func:`_nearest` (so both give the same values)."""
    bn = np.einsum("ij,ij->i", b, b)
    step = max(1, (1 << 22) // max(b.shape[0], 1))
    for r0 in range(0, a.shape[0], step):
        blk = a[r0:r0 + step]
        yield r0, np.einsum("ij,ij->i", blk, blk)[:, None] + bn[None, :] - 2.0 * (blk @ b.T)


def _nearest_distance(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """The distance from every row of ``a`` to its ``k``-th nearest row of ``b``: the
    value :func:`_nearest` puts in its last column, without indices or sorting."""
    k = max(1, min(k, b.shape[0]))
    out = np.zeros(a.shape[0])
    for r0, d in _distances(a, b):
        kth = d.min(axis=1) if k == 1 else np.partition(d, k - 1, axis=1)[:, k - 1]
        out[r0:r0 + d.shape[0]] = np.sqrt(np.maximum(kth, 0.0))
    return out


def _nearest_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For every row of ``a`` the index of its nearest row of ``b``."""
    out = np.zeros(a.shape[0], dtype=np.int64)
    for r0, d in _distances(a, b):
        out[r0:r0 + d.shape[0]] = d.argmin(axis=1)
    return out


SIGN_TRY = 0.05  # share of badly paired units above which a pairing up to sign is tried too
QUICK_SAMPLE = 64  # bank units a candidate order is first tried on


class BankUnits:
    """One tensor's banked signatures, standardised, with the spacing of its own units
    (median distance from a sample of units to their nearest other unit)."""

    def __init__(self, bank: np.ndarray) -> None:
        b = bank.astype(np.float64)
        sd = b.std(axis=0)
        sd[sd <= 1e-12 * max(float(np.abs(b).max()) if b.size else 0.0, 1e-30)] = 1.0
        self.sd = sd
        self.b = b / sd
        m = b.shape[0]
        self.sample = np.unique(np.linspace(0, m - 1, min(m, QUICK_SAMPLE)).astype(np.int64))
        if m > 1:
            ref = float(np.median(_nearest_distance(self.b[self.sample], self.b, 2)))  # the 1st is itself
        else:
            ref = 0.0
        self.ref = ref if ref > 0 else (float(np.median(np.sqrt(np.sum(self.b ** 2, axis=1)))) or 1.0)

    def quick(self, suspect: np.ndarray) -> float:
        """Nearest-signature distance of a sample of bank units, over the spacing: a
        wrong candidate order measures near 1 and is dropped before a full match."""
        d = _nearest_distance(self.b[self.sample], suspect.astype(np.float64) / self.sd, 1)
        return float(np.median(d)) / self.ref

    def unmoved(self, suspect: np.ndarray) -> float | None:
        """The quality of the identity pairing when every unit is within the spacing of
        its own bank unit (a cheap check that spares the full match), else None."""
        d = np.sqrt(np.sum((self.b - suspect.astype(np.float64) / self.sd) ** 2, axis=1)) / self.ref
        return float(np.median(d)) if d.size and float(d.max()) < 1.0 else None

    def far(self, suspect: np.ndarray, perm: np.ndarray) -> float:
        """Share of the pairs ``perm`` makes that sit farther apart than the unit spacing."""
        d = np.sqrt(np.sum((self.b - suspect.astype(np.float64)[perm] / self.sd) ** 2, axis=1)) / self.ref
        return float(np.mean(d > 1.0)) if d.size else 0.0

    def match(self, suspect: np.ndarray) -> tuple[np.ndarray, float]:
        b = self.b
        s = suspect.astype(np.float64) / self.sd
        m = b.shape[0]
        if m == 1:
            return np.zeros(1, dtype=np.int64), 0.0
        first = _nearest_one(b, s)
        if np.unique(first).size == m:
            # Every bank unit's nearest suspect unit is its own: the greedy pairing below
            # would take exactly these pairs (each unit's nearest comes first in distance
            # order and nobody else claims it), so skip the k-nearest sort.
            paired = np.sqrt(np.sum((b - s[first]) ** 2, axis=1))
            return first, float(np.median(paired)) / self.ref
        idx, dist = _nearest(b, s, 4)
        order = np.argsort(dist, axis=None, kind="stable")
        perm = np.full(m, -1, dtype=np.int64)
        used = np.zeros(m, dtype=bool)
        rows, cols = np.unravel_index(order, dist.shape)
        for i, c in zip(rows.tolist(), cols.tolist(), strict=True):
            j = int(idx[i, c])
            if perm[i] < 0 and not used[j]:
                perm[i] = j
                used[j] = True
        left = np.flatnonzero(perm < 0)
        if len(left):  # units whose few nearest were taken: pair the rest by their first feature
            free = np.flatnonzero(~used)
            perm[left[np.argsort(b[left, 0])]] = free[np.argsort(s[free, 0])]
        paired = np.sqrt(np.sum((b - s[perm]) ** 2, axis=1))
        return perm, float(np.median(paired)) / self.ref


def match_units(suspect: np.ndarray, bank: np.ndarray) -> tuple[np.ndarray, float]:
    """Pair the rows of two signature arrays of equal shape. Returns ``perm`` (bank row
    ``i`` <- suspect row ``perm[i]``) and the quality: median distance of the pairs over
    the median distance between a bank row and its nearest other bank row (0 for an
    exact copy; near or above 1 when the suspect rows are unrelated)."""
    return BankUnits(bank).match(suspect)


def _bank_features(sig: np.ndarray, scaled: bool | str) -> np.ndarray:
    sig = sig.astype(np.float64)
    if scaled == "signed":
        return np.concatenate([sig[:, :1], sig[:, 1:] * _canonical_sign(sig[:, 1:])[:, None]], axis=1)
    if scaled:
        return sig[:, 1:] / np.maximum(sig[:, :1], 1e-30)
    return sig


def _canonical_sign(proj: np.ndarray) -> np.ndarray:
    """+1 or -1 per unit so that its projections sum to >= 0: a unit and its negation
    (an odd activation's sign flip) get the same canonical features."""
    s = np.sign(proj.sum(axis=1))
    s[s == 0] = 1.0
    return s


def _col_features(w: np.ndarray, units: int) -> np.ndarray:
    """Per input unit: its norm and the projections of its columns on fixed vectors over the rows."""
    h = align_projection("cols", w.shape[0])
    acc = (h.T @ w).astype(np.float64)  # (ALIGN_DIM, n)
    out = np.zeros((units, 1 + ALIGN_DIM))
    out[:, 0] = np.sqrt(np.einsum("ij,ij->j", w, w, dtype=np.float64).reshape(units, -1).sum(axis=1))
    out[:, 1:] = acc.reshape(ALIGN_DIM, units, -1).sum(axis=2).T
    return out


def _apply_cols(w: np.ndarray, order: AxisOrder, units: int) -> np.ndarray:
    """``w`` (m, units * kk) with its input units put in bank order (and un-rescaled)."""
    if order.source == "identity" and order.scale is None:
        return w
    kk = w.shape[1] // units
    out = w.reshape(w.shape[0], units, kk)[:, order.perm, :]
    if order.scale is not None:
        out = out * order.scale[None, :, None].astype(np.float32)
    return out.reshape(w.shape)


def _apply_rows(w: np.ndarray, order: AxisOrder) -> np.ndarray:
    out = w[order.perm]
    if order.scale is not None:
        out = out / order.scale.reshape(-1, *([1] * (w.ndim - 1))).astype(np.float32)
    return out


def _candidate_features(w: np.ndarray, cand: AxisOrder, units: int, norm: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Row norms and projections of ``w`` with its input units put in ``cand``'s order,
    without reordering ``w``: the projection vectors are reordered instead
    (``W[:, idx] @ G == W @ G'`` with ``G'[idx] = G``), O(n) instead of a copy of ``w``."""
    g = align_projection("rows", w.shape[1])
    if cand.source == "identity" and cand.scale is None:
        return norm, (w @ g).astype(np.float64)
    kk = w.shape[1] // units
    idx = (cand.perm[:, None] * kk + np.arange(kk)[None, :]).reshape(-1)
    gp = np.zeros_like(g)
    if cand.scale is None:
        gp[idx] = g
        return norm, (w @ gp).astype(np.float64)
    sc = np.repeat(cand.scale, kk).astype(np.float32)
    gp[idx] = g * sc[:, None]
    s2 = np.zeros(w.shape[1], dtype=np.float64)
    s2[idx] = sc.astype(np.float64) ** 2
    return np.sqrt(np.maximum((w * w) @ s2, 0.0)), (w @ gp).astype(np.float64)


def _match_rows(norm: np.ndarray, proj: np.ndarray, sig: np.ndarray,
                units: Callable[[Any], BankUnits], known: Sequence[AxisOrder] = ()) -> AxisOrder | None:
    """Rows (norms and projections, columns already in bank order) paired with the banked
    row signatures, as they are or, failing that, by direction only (rows rescaled by
    positive factors). None when neither comes close (a quick test on a sample first)."""
    plain = units(False)
    feats = np.concatenate([norm[:, None], proj], axis=1)
    if plain.quick(feats) < ACCEPT:
        same = plain.unmoved(feats)
        if same is not None:  # rows in bank order already: no pairing needed
            return AxisOrder(np.arange(norm.size), None, "", same)
        for order in known:  # rows in an order already recovered (Q/K/V share theirs)
            if order.scale is None:
                same = plain.unmoved(feats[order.perm])
                if same is not None:
                    return AxisOrder(order.perm, None, "", same)
        perm, q = plain.match(feats)
        if q < ACCEPT:
            return _or_signed(AxisOrder(perm, None, "", q), plain.far(feats, perm), norm, proj, sig, units)
    if norm.size < 2:
        return None
    scaled = units(True)
    feats = proj / np.maximum(norm, 1e-30)[:, None]
    if scaled.quick(feats) >= ACCEPT:
        return _match_signed(norm, proj, sig, units)
    perm, q = scaled.match(feats)
    if q >= ACCEPT:
        return _match_signed(norm, proj, sig, units)
    scale = norm[perm] / np.maximum(sig[:, 0].astype(np.float64), 1e-30)
    if float(np.std(np.log(np.maximum(scale, 1e-30)))) <= RESCALE_SPREAD:
        scale = None  # one common factor (a merge, a fine-tune): not a per-unit rescaling to undo
    return _or_signed(AxisOrder(perm, scale, "", q), scaled.far(feats, perm), norm, proj, sig, units)


def _or_signed(order: AxisOrder, bad: float, norm: np.ndarray, proj: np.ndarray, sig: np.ndarray,
               units: Callable[[Any], BankUnits]) -> AxisOrder:
    """``order``, unless more than SIGN_TRY of its pairs are far apart and a pairing up to
    sign (tanh units flipped) is far better: half as many far pairs, no worse a median."""
    if bad <= SIGN_TRY or norm.size < 2:
        return order
    flipped = _match_signed(norm, proj, sig, units)
    if flipped is None or flipped.quality > order.quality + 0.05:
        return order
    feats = np.concatenate([norm[:, None], proj * _canonical_sign(proj)[:, None]], axis=1)
    return flipped if units("signed").far(feats, flipped.perm) < 0.5 * bad else order


def _match_signed(norm: np.ndarray, proj: np.ndarray, sig: np.ndarray,
                  units: Callable[[Any], BankUnits]) -> AxisOrder | None:
    """Rows paired up to sign (tanh(-x) = -tanh(x): flipping a unit's input weights, bias
    and output weights keeps the function), tried only when the plain and the rescaled
    pairings both failed. The flips are carried as factors of -1."""
    signed = units("signed")
    s_sus = _canonical_sign(proj)
    feats = np.concatenate([norm[:, None], proj * s_sus[:, None]], axis=1)
    if signed.quick(feats) >= ACCEPT:
        return None
    perm, q = signed.match(feats)
    if q >= ACCEPT:
        return None
    sign = s_sus[perm] * _canonical_sign(sig[:, 1:].astype(np.float64))
    return AxisOrder(perm, None if np.all(sign > 0) else sign, "", q)


# ---------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------


CONCAT_PAIRS = 16  # concatenated-axis candidates tried per tensor
HEAD_DIMS = (16, 32, 64, 80, 96, 128, 256)  # attention head sizes tried for shared key/value heads


def _repeated_heads(known: Mapping[int, list[AxisOrder]], units: int) -> list[AxisOrder]:
    """Per-unit factors of a value projection's rows, spread over the output projection's
    input columns when key/value heads are shared (grouped-query attention: value head g
    serves query heads g*r ... g*r+r-1, so o_proj reads each value unit r times). A value
    projection's rows times c and the output projection's columns times 1/c keep the
    function; only rescalings in place (no unit moved) are spread, for each head size."""
    out: list[AxisOrder] = []
    for m, orders in known.items():
        if m >= units or units % m:
            continue
        r = units // m
        for o in orders:
            if o.moved or o.scale is None or not o.rescaled:
                continue
            out += [AxisOrder(np.arange(units), np.repeat(o.scale.reshape(m // hd, hd), r, axis=0).ravel(),
                              f"{o.source}*{r}", o.quality) for hd in HEAD_DIMS if m % hd == 0]
    return out[:CONCAT_PAIRS]


def _concatenations(known: Mapping[int, list[AxisOrder]], units: int, name: str) -> list[AxisOrder]:
    """Orders of an input made by concatenating two recovered axes (a UNet up block reads
    ``cat([h, skip])``): pairs whose sizes add up, nearest names first, both ways round."""
    pairs: list[tuple[int, AxisOrder, AxisOrder]] = []
    for size, first in known.items():
        for a in first:
            for b in known.get(units - size, []):
                if a is not b or 2 * size == units:
                    pairs.append((_proximity(a.source, name) + _proximity(b.source, name), a, b))
    pairs.sort(key=lambda p: -p[0])
    out = []
    for _, a, b in pairs[:CONCAT_PAIRS]:
        scale = None
        if a.scale is not None or b.scale is not None:
            scale = np.concatenate([a.scale if a.scale is not None else np.ones(a.perm.size),
                                    b.scale if b.scale is not None else np.ones(b.perm.size)])
        out.append(AxisOrder(np.concatenate([a.perm, b.perm + a.perm.size]), scale,
                             f"{a.source}+{b.source}", 0.0))
    return out


def _proximity(a: str, b: str) -> int:
    """Shared leading name parts: tensors of one block share their hidden axes."""
    pa, pb = a.split("."), b.split(".")
    n = 0
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            break
        n += 1
    return n


class _Tensors:
    """Suspect tensors as 2-D float32 (matrices) or 1-D, kept while the budget allows."""

    def __init__(self, source: Mapping[str, np.ndarray]) -> None:
        self.source = source
        self.cache: dict[str, np.ndarray] = {}
        self.bytes = 0

    @classmethod
    def wrap(cls, tensors: Mapping[str, np.ndarray] | _Tensors) -> _Tensors:
        return tensors if isinstance(tensors, _Tensors) else cls(tensors)

    def get(self, name: str) -> np.ndarray:
        hit = self.cache.get(name)
        if hit is not None:
            return hit
        a = np.asarray(self.source[name], dtype=np.float32)
        a = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a.reshape(-1)
        if self.bytes + a.nbytes <= CACHE_BYTES:
            self.cache[name] = a
            self.bytes += a.nbytes
        return a


def shared_tensors(tensors: Mapping[str, np.ndarray]) -> _Tensors:
    """The suspect's tensors, decoded once for every entry aligned to and every re-sketch
    (pass the result to :func:`align` and :func:`aligned_fingerprint`)."""
    return _Tensors.wrap(tensors)


def align(suspect: Fingerprint, tensors: Mapping[str, np.ndarray] | _Tensors, entry: Fingerprint,
          label: str = "") -> Alignment:
    """Recover the unit orders that map ``suspect`` onto ``entry`` (see the module doc)."""
    with _one_blas_thread():
        return _align(suspect, _Tensors.wrap(tensors), entry, label)


def _align(suspect: Fingerprint, tensors: _Tensors, entry: Fingerprint, label: str) -> Alignment:
    out = Alignment(label)
    mats: list[str] = []
    for name, t in entry.tensors.items():
        s = suspect.tensors.get(name)
        if (t.is_matrix and s is not None and s.shape == t.shape and s.comparable and t.comparable
                and (t.rowsig is not None or t.colsig is not None) and t.units and name in tensors.source):
            mats.append(name)
    out.tried = len(mats)
    known: dict[int, list[AxisOrder]] = {}
    tried: dict[str, set[bytes]] = {n: set() for n in mats}
    units_cache: dict[tuple[str, bool], BankUnits] = {}

    def bank_units(name: str, sig: np.ndarray, scaled: bool | str) -> BankUnits:
        hit = units_cache.get((name, scaled))
        if hit is None:
            hit = units_cache[(name, scaled)] = BankUnits(_bank_features(sig, scaled))
        return hit
    pending = list(mats)

    uses: dict[bytes, int] = {}
    norms: dict[str, np.ndarray] = {}

    def learn(order: AxisOrder) -> None:
        lst = known.setdefault(order.perm.size, [])
        key = order.key()
        uses[key] = uses.get(key, 0) + 1
        if order.source != "identity" and all(o.key() != key for o in lst):
            lst.append(order)

    def rank(o: AxisOrder, name: str) -> tuple[int, int]:
        # an axis found on many tensors (the residual one) first, then the nearest name
        return (-uses.get(o.key(), 0), -_proximity(o.source, name))

    # A 1-D tensor rescaled element by element (a norm's weights times c_j and the input
    # columns of the layer after it times 1/c_j: the same function) gives its factors as a
    # candidate for the columns of matrices of its size; a vector is counted as rescaled
    # only when some matrix's rows then match the entry's (any vector is some elementwise
    # multiple of any other).
    vec_orders: dict[str, AxisOrder] = {}
    for name, t in entry.tensors.items():
        s = suspect.tensors.get(name)
        if (t.is_matrix or t.rowsig is None or s is None or s.shape != t.shape or t.rowsig.shape[1] != 1
                or name not in tensors.source):
            continue
        ref, v = t.rowsig[:, 0].astype(np.float64), tensors.get(name).astype(np.float64).ravel()
        if v.size != ref.size or v.size < 2 or np.any(np.abs(ref) < 1e-12) or np.any(np.abs(v) < 1e-12):
            continue
        ratio = v / ref
        if np.all(ratio > 0) and float(np.std(np.log(ratio))) > RESCALE_SPREAD:
            vec_orders[name] = AxisOrder(np.arange(v.size), ratio, name, 0.0)
            learn(vec_orders[name])

    progress = True
    while pending and progress:
        progress = False
        for name in list(pending):
            t = entry.tensors[name]
            w = tensors.get(name)
            if w.shape != t.shape:
                pending.remove(name)
                continue
            if t.rowsig is not None:
                cands = [_identity(t.units)] + sorted(known.get(t.units, []), key=lambda o, n=name: rank(o, n))
                cands += _concatenations(known, t.units, name) + _repeated_heads(known, t.units)
                for cand in cands:
                    if cand.key() in tried[name]:
                        continue
                    tried[name].add(cand.key())
                    if name not in norms:
                        norms[name] = np.sqrt(np.einsum("ij,ij->i", w, w, dtype=np.float64))
                    norm, proj = _candidate_features(w, cand, t.units, norms[name])
                    rows = _match_rows(norm, proj, t.rowsig,
                                       lambda scaled, n=name, sig=t.rowsig: bank_units(n, sig, scaled),
                                       sorted(known.get(w.shape[0], []), key=lambda o, n=name: rank(o, n)))
                    if rows is not None:
                        rows.source = name
                        out.rows[name] = rows
                        out.cols[name] = cand
                        learn(rows)
                        if cand.source != "identity":
                            learn(cand)
                        pending.remove(name)
                        progress = True
                        break
            elif t.colsig is not None:
                if tried[name]:
                    pending.remove(name)
                    continue
                tried[name].add(b"identity")
                perm, q = BankUnits(t.colsig).match(_col_features(w, t.units))
                pending.remove(name)
                if q < ACCEPT:
                    order = AxisOrder(perm, None, name, q)
                    out.cols[name] = order
                    learn(order)
                    progress = True
    used = {o.key() for o in out.cols.values()}
    out.vectors.update({n: o for n, o in vec_orders.items() if o.key() in used})
    _align_vectors(out, known, suspect, entry,
                   lambda name: tensors.get(name).astype(np.float64) if name in tensors.source else None)
    return out


def _align_vectors(out: Alignment, known: Mapping[int, list[AxisOrder]], suspect: Fingerprint,
                   entry: Fingerprint, values: Callable[[str], np.ndarray | None]) -> None:
    """1-D tensors: the sibling weight's row order, else the best-fitting recovered axis."""
    for name, t in entry.tensors.items():
        s = suspect.tensors.get(name)
        if t.is_matrix or t.rowsig is None or s is None or s.shape != t.shape or name in out.vectors:
            continue
        v = values(name)
        if v is None or v.size != t.rowsig.shape[0]:
            continue
        ref = t.rowsig[:, 0].astype(np.float64)
        sib = name.rsplit(".", 1)[0] + ".weight"
        if sib in out.rows and out.rows[sib].perm.size == v.size:
            out.vectors[name] = out.rows[sib]
            continue
        spread = float(np.linalg.norm(ref - ref.mean())) or float(np.linalg.norm(ref)) or 1.0
        best, best_err = _identity(v.size), float(np.linalg.norm(v - ref)) / spread
        for cand in known.get(v.size, []):
            vv = v[cand.perm]
            err = float(np.linalg.norm(vv - ref)) / spread
            if err < best_err:
                best, best_err = AxisOrder(cand.perm, None, cand.source, err), err
        if best.source != "identity":
            out.vectors[name] = best


def _moment_features(t: TensorSketch) -> np.ndarray | None:
    """Per output unit: norm, sum and cube root of the sum of cubes (format 3), features no
    reordering of the input units changes; None for a record without them."""
    if t.rowsig is None or t.rowmom is None or t.rowmom.shape[0] != t.rowsig.shape[0]:
        return None
    return np.concatenate([t.rowsig[:, :1], t.rowmom], axis=1).astype(np.float64)


def has_moments(fp: Fingerprint) -> bool:
    return any(t.rowmom is not None for t in fp.tensors.values())


def align_signatures(suspect: Fingerprint, entry: Fingerprint, label: str = "") -> Alignment:
    """Unit orders between two fingerprints, without either model's weights (a query
    from a stored fingerprint, a service request). Each matrix's output units are paired
    on features that do not depend on the order of its input units (``rowmom`` with the
    row norm), so every matrix is aligned on its own, with no order to propagate;
    matrices with fixed rows (embeddings) on their column signatures, which are taken
    over the fixed rows; 1-D tensors on their stored values as in :func:`align`.
    Per-unit positive rescaling (ReLU) changes the next layer's sums and is not undone
    here (it is with the weights)."""
    out = Alignment(label)
    known: dict[int, list[AxisOrder]] = {}

    def learn(order: AxisOrder) -> None:
        lst = known.setdefault(order.perm.size, [])
        if order.moved and all(o.key() != order.key() for o in lst):
            lst.append(order)

    with _one_blas_thread():
        for name, t in entry.tensors.items():
            s = suspect.tensors.get(name)
            if not t.is_matrix or s is None or s.shape != t.shape or not (s.comparable and t.comparable):
                continue
            fb, fs = _moment_features(t), _moment_features(s)
            if fb is not None and fs is not None and fb.shape == fs.shape:
                out.tried += 1
                bank = BankUnits(fb)
                if bank.quick(fs) >= ACCEPT:
                    continue
                same = bank.unmoved(fs)
                if same is not None:
                    order = AxisOrder(np.arange(fb.shape[0]), None, name, same)
                else:
                    perm, q = bank.match(fs)
                    if q >= ACCEPT:
                        continue
                    order = AxisOrder(perm, None, name, q)
                out.rows[name] = order
                learn(order)
            elif (t.colsig is not None and s.colsig is not None and t.colsig.shape == s.colsig.shape
                  and t.rowsig is None):
                out.tried += 1
                perm, q = BankUnits(t.colsig).match(s.colsig)
                if q < ACCEPT:
                    order = AxisOrder(perm, None, name, q)
                    out.cols[name] = order
                    learn(order)

        def stored(name: str) -> np.ndarray | None:
            t = suspect.tensors.get(name)
            return None if t is None or t.rowsig is None else t.rowsig[:, 0].astype(np.float64)

        _align_vectors(out, known, suspect, entry, stored)
        for name, t in entry.tensors.items():
            # A vector no recovered axis explains (e.g. a norm over a concatenation of two
            # axes): pairing by sorted value is exact for a copy (values stored to float16).
            v = stored(name) if not t.is_matrix and t.rowsig is not None else None
            if v is None or v.size != t.rowsig.shape[0] or suspect.tensors[name].shape != t.shape:
                continue
            ref = t.rowsig[:, 0].astype(np.float64)
            spread = float(np.abs(ref).max()) or 1.0
            have = out.vectors.get(name)
            err = float(np.abs(v[have.perm if have else slice(None)] - ref).max()) / spread
            if err <= VALUE_TOL:
                continue
            perm = np.empty(v.size, dtype=np.int64)
            perm[np.argsort(ref, kind="stable")] = np.argsort(v, kind="stable")
            sorted_err = float(np.abs(v[perm] - ref).max()) / spread
            if sorted_err <= VALUE_TOL:
                out.vectors[name] = AxisOrder(perm, None, f"values of {name}", sorted_err)
    return out


VALUE_TOL = 2e-3  # stored 1-D values agree to float16 rounding (2**-11 of the largest, both sides)


def signature_error(suspect: Fingerprint, entry: Fingerprint, al: Alignment) -> float:
    """The largest difference between paired units' stored features (moment features of
    aligned matrices, column signatures, 1-D values), over each feature's largest value
    in the entry: float16 storage rounding measures up to ~1e-3, any change of the
    weights more."""
    worst = 0.0
    for table, feats in ((al.rows, _moment_features), (al.cols, lambda t: t.colsig)):
        for name, order in table.items():
            fb, fs = feats(entry.tensors[name]), feats(suspect.tensors[name])
            if fb is None or fs is None or fb.shape != fs.shape:
                return float("inf")
            fb, fs = np.asarray(fb, np.float64), np.asarray(fs, np.float64)[order.perm]
            scale = np.maximum(np.abs(fb).max(axis=0), 1e-30)
            worst = max(worst, float((np.abs(fb - fs) / scale).max()))
    for name, t in entry.tensors.items():  # every 1-D tensor, in its recovered order or as it is
        s = suspect.tensors.get(name)
        if t.is_matrix or t.rowsig is None or s is None or s.rowsig is None or s.rowsig.shape != t.rowsig.shape:
            continue
        order = al.vectors.get(name)
        ref, v = t.rowsig[:, 0].astype(np.float64), s.rowsig[:, 0].astype(np.float64)
        v = v[order.perm] if order is not None else v
        worst = max(worst, float(np.abs(v - ref).max()) / (float(np.abs(ref).max()) or 1.0))
    return worst


def aligned_fingerprint(suspect: Fingerprint, tensors: Mapping[str, np.ndarray] | _Tensors,
                        al: Alignment) -> Fingerprint:
    """The suspect re-sketched with every recovered order undone (the entry's order)."""
    with _one_blas_thread():
        fp = Fingerprint(k=suspect.k, kind=suspect.kind, source=dict(suspect.source),
                         notes=list(suspect.notes))
        cache = _Tensors.wrap(tensors)
        for name, t in suspect.tensors.items():
            rows = al.rows.get(name) or al.vectors.get(name)
            cols = al.cols.get(name) if t.is_matrix else None
            if rows is None and cols is None:
                fp.tensors[name] = t
                continue
            w = cache.get(name)
            fast = _permuted_sketch(w, t, rows, cols, suspect.k)
            if fast is not None:
                fp.tensors[name] = fast
                continue
            if cols is not None and t.units:
                w = _apply_cols(w, cols, t.units)
            if rows is not None:
                w = _apply_rows(w, rows)
            shape, rows_of = _array_rows(np.ascontiguousarray(w, dtype=np.float32))
            fp.tensors[name] = _sketch_source(shape, rows_of, _Decoder("F32"), suspect.k, name)
        return fp


def _permuted_sketch(w: np.ndarray, t: TensorSketch, rows: AxisOrder | None, cols: AxisOrder | None,
                     k: int) -> TensorSketch | None:
    """The sketch of matrix ``w`` with its rows and input units put in bank order, as
    ``P' W Q'`` with the projections' columns and rows reordered instead of copying
    ``w`` (``P W[perm] == P' W`` with ``P'[:, perm] = P``). Norm and mean do not change
    under a permutation, so the suspect's own are kept. None (the copying path) for a
    vector, a rescaling or a tensor with non-finite values."""
    if (w.ndim != 2 or not t.is_matrix or t.nonfinite or w.shape != tuple(t.shape)
            or (rows is not None and rows.scale is not None)
            or (cols is not None and (cols.scale is not None or not t.units))):
        return None
    m, n = w.shape
    p, q = left(m, k), right(n, k)
    if cols is not None and cols.source != "identity":
        kk = n // t.units
        idx = (cols.perm[:, None] * kk + np.arange(kk)[None, :]).reshape(-1)
        if q is None:
            wq = w[:, idx]
        else:
            qp = np.empty_like(q)
            qp[idx] = q
            wq = w @ qp
    else:
        wq = w if q is None else w @ q
    if rows is None:
        out = wq if p is None else p @ wq
    elif p is None:
        out = wq[rows.perm]
    else:
        pp = np.empty_like(p)
        pp[:, rows.perm] = p
        out = pp @ wq
    return TensorSketch(t.name, tuple(t.shape), np.asarray(out, dtype=np.float32), t.norm, t.mean)


# ---------------------------------------------------------------------------------------
# Suspect tensors by canonical name
# ---------------------------------------------------------------------------------------


class _Lazy(Mapping[str, np.ndarray]):
    def __init__(self, plan: dict[str, Any], read: Any) -> None:
        self._plan = plan
        self._read = read

    def __getitem__(self, name: str) -> np.ndarray:
        return self._read(name)

    def __contains__(self, name: object) -> bool:
        return name in self._plan

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan)

    def __len__(self) -> int:
        return len(self._plan)


def canonical_arrays(arrays: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """In-memory arrays (any supported naming) by canonical name, read when asked."""
    plan = {piece.canonical: (key, piece) for key, piece in _plan(arrays)[0]}

    def read(name: str) -> np.ndarray:
        key, piece = plan[name]
        return np.asarray(_piece_view(np.asarray(arrays[key]), piece), dtype=np.float32)

    return _Lazy(plan, read)


@contextmanager
def open_suspect(path: Path | str) -> Iterator[Mapping[str, np.ndarray]]:
    """A model file's float tensors by canonical name, decoded to float32 when read."""
    from .formats import open_model
    from .names import layout_for

    with open_model(Path(path)) as model:
        layout = layout_for(model.tensors, model.metadata, model.format)
        plan = {piece.canonical: (key, piece) for key, piece in _plan(model.tensors, layout)[0]}

        def read(name: str) -> np.ndarray:
            key, piece = plan[name]
            raw = np.asarray(model.array(key, convert=True), dtype=np.float32)
            return np.asarray(_piece_view(raw, piece), dtype=np.float32)

        yield _Lazy(plan, read)



def query_file(fs: Any, path: Path | str, banks: Any = None, *, index: Any = None) -> Any:
    """Fingerprint the model at ``path`` and ask the banks about it, with its weights at
    hand for alignment (permuted copies). A file whose tensors cannot be reopened is
    still compared by its fingerprint."""
    from ..banks.fingerprints import query
    from ..errors import AssayError
    from .fingerprint import fingerprint_file

    suspect = fingerprint_file(path)
    if suspect.kind == "lora":
        return query(fs, suspect, banks, index=index)
    try:
        with open_suspect(path) as tensors:
            return query(fs, suspect, banks, index=index, tensors=tensors)
    except (AssayError, OSError):
        return query(fs, suspect, banks, index=index)
