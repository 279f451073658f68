"""Recover the weight delta between a suspect model and its base as a kohya LoRA.

For every linear or convolution weight the two models share (UNet and text
encoders), ``delta = suspect - base`` is factored by SVD and truncated at the
smallest rank holding ``energy`` of the delta's squared Frobenius norm (capped at
``max_rank``). The factors are written as a kohya LoRA (``lora_down`` = ``V^T``,
``lora_up`` = ``U S``, ``alpha`` = rank, so the scale is 1), which can itself be
fingerprinted and banked. Tensors are read one at a time (at most three float32
copies of the largest tensor are alive), and big matrices use a randomized SVD
(Halko, Martinsson & Tropp 2011) of rank ``max_rank`` + 10 with two power
iterations instead of a full decomposition.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .fingerprint import _one_blas_thread, _piece_view, _plan, canonical_to_kohya, component_of

__all__ = ["ExtractReport", "extract", "low_rank_factors"]

_TARGET_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
_NOT_MODULES = ("token_embedding", "position_embedding", "text_projection")


@dataclass
class ExtractReport:
    out_path: Path
    modules: int
    ranks: dict[int, int] = field(default_factory=dict)  # rank -> modules
    energy: float = 0.0  # share of the total delta energy the LoRA keeps
    unchanged: int = 0  # weights identical (within min_delta) in both models
    skipped: list[str] = field(default_factory=list)  # weights with no LoRA form

    def explanation(self) -> str:
        shown = ", ".join(f"rank {r}: {n}" for r, n in sorted(self.ranks.items()))
        return (f"wrote {self.modules} LoRA modules to {self.out_path} ({shown}); they keep "
                f"{100 * self.energy:.1f}% of the delta energy; {self.unchanged} weights unchanged")


def low_rank_factors(
    delta: np.ndarray, *, energy: float, max_rank: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """(up, down, kept energy share) of a 2-D delta, rank chosen by energy."""
    total = float(np.dot(delta.ravel(), delta.ravel()))
    m, n = delta.shape
    if total == 0.0:
        return np.zeros((m, 0), np.float32), np.zeros((0, n), np.float32), 1.0
    cap = min(max_rank, m, n)
    if min(m, n) <= 2 * (cap + 10):
        u, s, vt = np.linalg.svd(delta, full_matrices=False)
    else:
        rng = np.random.default_rng(seed)
        y = delta @ rng.standard_normal((n, cap + 10), dtype=np.float32)
        for _ in range(2):  # power iterations sharpen a slowly decaying spectrum
            y, _ = np.linalg.qr(y)
            y = delta @ (delta.T @ y)
        basis, _ = np.linalg.qr(y)
        ub, s, vt = np.linalg.svd(basis.T @ delta, full_matrices=False)
        u = basis @ ub
    cum = np.cumsum(s.astype(np.float64) ** 2) / total
    r = int(np.searchsorted(cum, energy - 1e-12) + 1)
    r = max(1, min(r, cap))
    kept = float(cum[r - 1])
    return (u[:, :r] * s[:r]).astype(np.float32), vt[:r].astype(np.float32), kept


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    names = sorted(tensors)
    for name in names:
        arr = tensors[name]
        header[name] = {"dtype": {"float32": "F32", "float16": "F16"}[arr.dtype.name],
                        "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name in names:
            f.write(np.ascontiguousarray(tensors[name]).astype(tensors[name].dtype.newbyteorder("<")).tobytes())
    os.replace(tmp, path)


def extract(
    suspect_path: Path | str, base_path: Path | str, out_path: Path | str, *,
    energy: float = 0.9, max_rank: int = 128, min_delta: float = 1e-3, overwrite: bool = False,
) -> ExtractReport:
    """Write ``suspect - base`` as a kohya LoRA to ``out_path`` (never overwriting an
    existing file unless asked). Raises InputError when the models do not match."""
    from .formats import open_model

    out = Path(out_path)
    if not 0 < energy <= 1:
        raise ValueError("energy must be in (0, 1]")
    from ..outfile import check_target

    if check_target(out) and not overwrite:
        raise InputError(out, "output file exists; choose another name (nothing was written)")
    # the SVDs and range products are tall-skinny: a threaded BLAS spends more waking its
    # threads than computing, ~25x slower on a busy machine (as in fingerprint sketches)
    with open_model(Path(suspect_path)) as sus, open_model(Path(base_path)) as base, _one_blas_thread():
        plan_s = {p.canonical: (k, p) for k, p in _plan(sus.tensors)[0]}
        plan_b = {p.canonical: (k, p) for k, p in _plan(base.tensors)[0]}
        common = [n for n in plan_s if n in plan_b and component_of(n) in _TARGET_COMPONENTS]
        if not common:
            raise InputError(suspect_path, f"no weight in common with the base {base_path} "
                             "(a different architecture?)")
        sgm = any(component_of(n) == "text_encoder_2" for n in plan_b)
        up_attn = {int(n.split(".")[1]) for n in plan_b if n.startswith("unet/up_blocks.")
                   and ".attentions." in n}
        tensors: dict[str, np.ndarray] = {}
        report = ExtractReport(out, 0)
        kept_energy = total_energy = 0.0
        for name in common:
            ks, ps = plan_s[name]
            kb, pb = plan_b[name]
            a = _piece_view(sus.array(ks, convert=True), ps)
            b = _piece_view(base.array(kb, convert=True), pb)
            if a.shape != b.shape:
                raise InputError(suspect_path, f"{name}: shape {a.shape} differs from the base's {b.shape}")
            if a.ndim < 2 or not name.endswith(".weight") or any(x in name for x in _NOT_MODULES):
                if a.ndim >= 2 or not np.array_equal(a, b):
                    report.skipped.append(name)
                continue
            delta = (a.reshape(a.shape[0], -1) - b.reshape(b.shape[0], -1)).astype(np.float32)
            if not np.isfinite(delta).all():
                raise InputError(suspect_path, f"{name}: NaN/Inf in the suspect or base weights")
            d2 = float(np.dot(delta.ravel(), delta.ravel()))
            b2 = float(np.dot(b.ravel(), b.ravel()))
            if d2 <= (min_delta ** 2) * b2:
                report.unchanged += 1
                continue
            up, down, kept = low_rank_factors(delta, energy=energy, max_rank=max_rank)
            r = down.shape[0]
            module = canonical_to_kohya(name, sgm=sgm, up_with_attention=up_attn)
            conv = a.ndim == 4
            tensors[module + ".lora_down.weight"] = down.reshape(r, *a.shape[1:]) if conv else down
            tensors[module + ".lora_up.weight"] = up.reshape(up.shape[0], r, 1, 1) if conv else up
            tensors[module + ".alpha"] = np.array(float(r), dtype=np.float32)
            report.ranks[r] = report.ranks.get(r, 0) + 1
            report.modules += 1
            kept_energy += kept * d2
            total_energy += d2
            del a, b, delta
    if not tensors:
        raise InputError(suspect_path, f"no weight differs from the base {base_path}: nothing to extract")
    report.energy = kept_energy / total_energy if total_energy else 1.0
    _write_safetensors(out, tensors, {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(max(report.ranks)),
        "ss_network_alpha": str(max(report.ranks)),
        "assay_extracted": json.dumps({"suspect": Path(suspect_path).name, "base": Path(base_path).name,
                                       "energy": energy, "max_rank": max_rank}),
    })
    return report
