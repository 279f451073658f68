"""LoRA files as fingerprints of the weight deltas they add.

A LoRA module adds ``scale * up @ down`` to one weight (``scale = alpha / rank``;
convolutions flatten ``down`` to ``(rank, in*kh*kw)`` and ``up`` to ``(out, rank)``).
Its sketch is computed from the factors, ``P (U D) Q = (P U)(D Q)``, so no full-size
delta is ever built. The result is a :class:`Fingerprint` of kind ``"lora"`` keyed by
the canonical names of the weights the LoRA patches; merging the LoRA at strength
``s`` into a model adds ``s`` times these sketches to the model's fingerprint
(:func:`apply_lora`).

Supported: kohya (``lora_down``/``lora_up``/``alpha``, SD 1.x diffusers-style and
SDXL SGM-style module names) and PEFT/diffusers (``lora_A``/``lora_B``, alpha from
the adapter config or 1:1). LoHa, LoKr and DoRA modules are listed in the notes as
not fingerprinted rather than approximated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .fingerprint import (
    DEFAULT_K,
    Fingerprint,
    TensorSketch,
    _clip,
    kohya_module_to_canonical,
    sketch_factors,
)

__all__ = ["LoraModule", "apply_lora", "is_lora", "lora_fingerprint", "lora_modules", "module_delta"]

_DOWN = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight")
_UP = {".lora_down.weight": ".lora_up.weight", ".lora_A.weight": ".lora_B.weight",
       ".lora.down.weight": ".lora.up.weight"}
_OTHER_ADAPTERS = (".hada_w1_a", ".lokr_w1", ".lokr_w1_a", ".dora_scale")


def is_lora(keys: Iterable[str]) -> bool:
    return any(k.endswith(_DOWN) or k.endswith(_OTHER_ADAPTERS) for k in keys)


@dataclass(frozen=True)
class LoraModule:
    module: str  # as named in the file
    canonical: str  # the canonical weight it patches
    down_key: str
    up_key: str
    alpha_key: str | None


def _peft_canonical(module: str) -> str | None:
    parts = module.split(".")
    for comp in ("unet", "text_encoder_2", "text_encoder", "transformer"):
        if comp in parts:
            i = parts.index(comp)
            path = ".".join(parts[i + 1:]) + ".weight"
            if comp == "transformer":
                return None
            return f"{comp}/{_clip(path) if comp.startswith('text') else path}"
    return None


def lora_modules(keys: Iterable[str]) -> tuple[list[LoraModule], list[str]]:
    """Pair up the factors of every LoRA module; return the modules and notes."""
    keys = set(keys)
    notes: list[str] = []
    modules: list[LoraModule] = []
    unmapped: list[str] = []
    for key in sorted(keys):
        suffix = next((s for s in _DOWN if key.endswith(s)), None)
        if suffix is None:
            continue
        module = key[: -len(suffix)]
        # diffusers folders list tensors as component/name
        bare = module.split("/", 1)[1] if "/" in module else module
        up = module + _UP[suffix]
        if up not in keys:
            notes.append(f"module {module!r} has no {_UP[suffix].lstrip('.')} factor; ignored")
            continue
        canonical = (
            kohya_module_to_canonical(bare) if bare.startswith("lora_") else _peft_canonical(bare)
        )
        if canonical is None:
            unmapped.append(module)
            continue
        alpha = module + ".alpha"
        modules.append(LoraModule(module, canonical, key, up, alpha if alpha in keys else None))
    if unmapped:
        notes.append(f"{len(unmapped)} LoRA modules target weights outside SD/SDXL UNet and "
                     f"text encoders and were not fingerprinted (e.g. {unmapped[0]!r})")
    others = sorted({k.rsplit(".", 1)[0] for k in keys if k.endswith(_OTHER_ADAPTERS)})
    if others:
        notes.append(f"{len(others)} LoHa/LoKr/DoRA modules are not fingerprinted")
    return modules, notes


Getter = Callable[[str], np.ndarray]


def module_delta_factors(
    mod: LoraModule, get: Getter, *, alpha_default: float | None = None, where: str = "LoRA"
) -> tuple[np.ndarray, np.ndarray]:
    """(scale*up, down) as float32 2-D matrices; raises InputError on bad shapes."""
    down = np.asarray(get(mod.down_key), dtype=np.float32)
    up = np.asarray(get(mod.up_key), dtype=np.float32)
    if down.ndim < 2 or up.ndim < 2:
        raise InputError(where, f"module {mod.module!r}: LoRA factors must be matrices")
    rank = down.shape[0]
    down = down.reshape(rank, -1)
    up = up.reshape(up.shape[0], -1)
    if up.shape[1] != rank:
        raise InputError(where, f"module {mod.module!r}: up has {up.shape[1]} columns, down has rank {rank}")
    if mod.alpha_key is not None:
        alpha = float(np.asarray(get(mod.alpha_key), dtype=np.float64).reshape(-1)[0])
    else:
        alpha = float(alpha_default) if alpha_default is not None else float(rank)
    if not np.isfinite(alpha):
        raise InputError(where, f"module {mod.module!r}: alpha is not finite")
    return up * np.float32(alpha / rank), down


def module_delta(mod: LoraModule, get: Getter, **kw: Any) -> np.ndarray:
    """The full delta of one module (tests and extraction only; costs out*in floats)."""
    up, down = module_delta_factors(mod, get, **kw)
    return up @ down


def _peft_alpha(metadata: Mapping[str, Any]) -> float | None:
    for key in ("lora_alpha", "alpha"):
        if key in metadata:
            try:
                return float(metadata[key])
            except (TypeError, ValueError):
                return None
    cfg = metadata.get("adapter_config")
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except ValueError:
            cfg = None
    if isinstance(cfg, dict) and "lora_alpha" in cfg:
        try:
            return float(cfg["lora_alpha"])
        except (TypeError, ValueError):
            return None
    return None


def lora_fingerprint(
    model: Any, *, k: int = DEFAULT_K, alpha: float | None = None
) -> Fingerprint:
    """The delta fingerprint of an opened LoRA ModelFile, or of a mapping of arrays.
    ``alpha`` overrides the PEFT alpha when the file does not carry one."""
    if isinstance(model, Mapping):
        tensors: Iterable[str] = model.keys()
        get: Getter = lambda n: np.asarray(model[n])  # noqa: E731
        where, metadata, source = "LoRA arrays", {}, {"format": "arrays"}
    else:
        tensors = model.tensors.keys()
        get = lambda n: model.array(n, convert=True)  # noqa: E731
        where, metadata = str(model.path), dict(model.metadata)
        source = {"file": model.path.name, "format": model.format}
    modules, notes = lora_modules(tensors)
    if not modules:
        raise InputError(where, "no LoRA module that assay can map onto SD/SDXL weights"
                         + (f" ({notes[0]})" if notes else ""))
    alpha_default = alpha if alpha is not None else _peft_alpha(metadata)
    fp = Fingerprint(k=k, kind="lora", source=source, notes=notes)
    ranks: dict[int, int] = {}
    for mod in modules:
        up, down = module_delta_factors(mod, get, alpha_default=alpha_default, where=where)
        bad = int(np.count_nonzero(~np.isfinite(up)) + np.count_nonzero(~np.isfinite(down)))
        if bad:
            up = np.nan_to_num(up, nan=0.0, posinf=0.0, neginf=0.0)
            down = np.nan_to_num(down, nan=0.0, posinf=0.0, neginf=0.0)
        ranks[down.shape[0]] = ranks.get(down.shape[0], 0) + 1
        # ||U D||_F exactly from the small r x r Gram matrices, without U D itself.
        g = (up.T @ up) * (down @ down.T)
        norm = float(np.sqrt(max(float(g.sum()), 0.0)))
        mean = float(up.sum(axis=0) @ down.sum(axis=1)) / (up.shape[0] * down.shape[1])
        fp.tensors[mod.canonical] = TensorSketch(
            mod.canonical, (up.shape[0], down.shape[1]), sketch_factors(up, down, k),
            norm, mean, bad,
        )
    fp.source["ranks"] = {str(r): n for r, n in sorted(ranks.items())}
    fp.source["modules"] = len(modules)
    return fp


def apply_lora(base: Fingerprint, lora: Fingerprint, strength: float = 1.0) -> Fingerprint:
    """The fingerprint of ``base`` with ``lora`` merged at ``strength`` (sketches add;
    norms of patched tensors become unknown and are recomputed from the sketch)."""
    if base.k != lora.k:
        raise ValueError(f"sketch sizes differ (k={base.k} vs k={lora.k})")
    out = Fingerprint(k=base.k, kind=base.kind, source=dict(base.source), notes=list(base.notes))
    out.tensors = dict(base.tensors)
    for name, d in lora.tensors.items():
        t = base.tensors.get(name)
        if t is None or t.shape != d.shape:
            continue
        sk = t.sketch + np.float32(strength) * d.sketch
        out.tensors[name] = TensorSketch(name, t.shape, sk, float(np.linalg.norm(sk)), t.mean,
                                         t.nonfinite + d.nonfinite)
    return out
