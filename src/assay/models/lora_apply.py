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
the adapter config or 1:1).

LyCORIS modules follow the conventions of LyCORIS and the A1111/ComfyUI loaders
(``scale = alpha / dim``, and 1 when the file has no alpha or no low-rank factor):

* LoHa: ``((w1_a @ w1_b) * (w2_a @ w2_b)) * alpha / rank`` (Hadamard product;
  ``rank = w1_b.shape[0]``); convolutions flatten ``w*_b`` to ``(rank, in*kh*kw)``.
* LoKr: ``kron(w1, w2) * alpha / dim`` where ``w1`` is ``lokr_w1`` or
  ``lokr_w1_a @ lokr_w1_b`` and ``w2`` likewise; ``dim`` is the rank of the
  factorised side (``w1_b`` or ``w2_b``). For a convolution ``w2`` is 4-D and the
  flattened delta is ``kron(w1, w2.reshape(c, -1))``, which is what ``torch.kron``
  of the unsqueezed ``w1`` gives once flattened.

These deltas are not low-rank products, so each module's delta is built one row
block at a time (bounded memory) and sketched like a checkpoint tensor, with the
same ``P`` and ``Q``. Tucker/CP-decomposed convolutions (``hada_t1``/``hada_t2``,
``lokr_t2``) are listed in the notes as not fingerprinted.

DoRA (kohya/LyCORIS ``dora_scale``, PEFT ``lora_magnitude_vector``) merges as
``m * (W + dW) / ||W + dW||`` per column: the change depends on the base weights
and is no pure delta. DoRA modules are *approximated by their low-rank delta*
``dW`` and the fingerprint says so in its notes: the direction is the LoRA's own,
so detection works, but a strength found for such a LoRA is approximate (the
magnitude rescaling is left in the residual).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from .fingerprint import (
    DEFAULT_K,
    Fingerprint,
    TensorSketch,
    _clip,
    _Decoder,
    _one_blas_thread,
    _sketch_source,
    canonical_pieces,
    kohya_module_to_canonical,
    sketch_factors,
)
from .names import Layout, layout_for, strip_wrappers

__all__ = [
    "LoraModule",
    "LycorisModule",
    "apply_lora",
    "is_lora",
    "lora_fingerprint",
    "lora_modules",
    "lycoris_delta_rows",
    "lycoris_modules",
    "module_delta",
    "module_delta_lycoris",
]

_DOWN = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight")
_UP = {".lora_down.weight": ".lora_up.weight", ".lora_A.weight": ".lora_B.weight",
       ".lora.down.weight": ".lora.up.weight"}
_OTHER_ADAPTERS = (".hada_w1_a", ".lokr_w1", ".lokr_w1_a", ".dora_scale", ".lora_magnitude_vector")
# DoRA's learned magnitude sits next to the factors of the module it rescales.
_DORA = (".dora_scale", ".lora_magnitude_vector", ".lora_magnitude_vector.weight")
_HADA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
_LOKR = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")
_TUCKER = ("hada_t1", "hada_t2", "lokr_t1", "lokr_t2")


def is_lora(keys: Iterable[str]) -> bool:
    return any(k.endswith(_DOWN) or k.endswith(_OTHER_ADAPTERS) for k in keys)


@dataclass(frozen=True)
class LoraModule:
    module: str  # as named in the file
    canonical: str  # the canonical weight it patches
    down_key: str
    up_key: str
    alpha_key: str | None
    dora: bool = False  # carries a DoRA magnitude; fingerprinted by its low-rank delta only


@dataclass(frozen=True)
class LycorisModule:
    """A LoHa or LoKr module: ``parts`` maps each factor's role (``hada_w1_a``,
    ``lokr_w2`` ...) to its key in the file."""

    module: str
    canonical: str
    kind: Literal["loha", "lokr"]
    parts: dict[str, str] = field(default_factory=dict)
    alpha_key: str | None = None
    dora: bool = False


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


def _namer(modules: Iterable[str]) -> Callable[[str], str | None]:
    """The canonical weight each LoRA module targets. kohya names are SD/SDXL by
    construction; PEFT targets are named like the base model's own keys, so the same
    layout rules decide them (an SD UNet, or any transformer: see models/names.py)."""
    peft = [strip_wrappers(_bare(m)) + ".weight" for m in modules if not _bare(m).startswith("lora_")]
    layout = layout_for(peft) if peft else None

    def name(module: str) -> str | None:
        bare = _bare(module)
        if bare.startswith("lora_"):
            return kohya_module_to_canonical(bare)
        found = _peft_canonical(bare)
        if found is not None or layout is None:
            return found
        key = strip_wrappers(bare) + ".weight"
        folder_comp = module.split("/", 1)[0] if "/" in module else None
        if folder_comp in _SD_FOLDER_COMPONENTS:  # a diffusers folder: component/name
            key = f"{folder_comp}/{key}"
        if layout.kind == "sd" or folder_comp in _SD_FOLDER_COMPONENTS:
            pieces = canonical_pieces(key, Layout("sd"))
            mapped = pieces[0].canonical if pieces else None
            return None if mapped is None or mapped.startswith("other/") else mapped
        return layout.generic_name(key)

    return name


_SD_FOLDER_COMPONENTS = ("unet", "text_encoder", "text_encoder_2", "vae")


def _bare(module: str) -> str:
    # diffusers folders list tensors as component/name
    return module.split("/", 1)[1] if "/" in module else module


def _has_dora(module: str, keys: set[str]) -> bool:
    return any(module + d in keys for d in _DORA)


def lora_modules(keys: Iterable[str]) -> tuple[list[LoraModule], list[str]]:
    """Pair up the factors of every LoRA module; return the modules and notes
    (LoHa/LoKr modules are found by :func:`lycoris_modules`)."""
    keys = set(keys)
    notes: list[str] = []
    modules: list[LoraModule] = []
    unmapped: list[str] = []
    pairs = []
    for key in sorted(keys):
        suffix = next((s for s in _DOWN if key.endswith(s)), None)
        if suffix is not None:
            pairs.append((key, suffix, key[: -len(suffix)]))
    canonical_of = _namer(m for _, _, m in pairs)
    for key, suffix, module in pairs:
        up = module + _UP[suffix]
        if up not in keys:
            notes.append(f"module {module!r} has no {_UP[suffix].lstrip('.')} factor; ignored")
            continue
        canonical = canonical_of(module)
        if canonical is None:
            unmapped.append(module)
            continue
        alpha = module + ".alpha"
        modules.append(LoraModule(module, canonical, key, up, alpha if alpha in keys else None,
                                  _has_dora(module, keys)))
    if unmapped:
        notes.append(f"{len(unmapped)} LoRA modules target weights assay cannot name "
                     f"(outside the SD/SDXL UNet and text encoders) and were not fingerprinted (e.g. {unmapped[0]!r})")
    return modules, notes


def lycoris_modules(keys: Iterable[str]) -> tuple[list[LycorisModule], list[str]]:
    """Group the factors of every LoHa and LoKr module; return the modules and notes
    on modules that cannot be fingerprinted (Tucker convolutions, missing factors)."""
    keys = set(keys)
    notes: list[str] = []
    found: dict[str, dict[str, str]] = {}
    for key in keys:
        module, _, role = key.rpartition(".")
        if role in _HADA or role in _LOKR or role in _TUCKER:
            found.setdefault(module, {})[role] = key
    modules: list[LycorisModule] = []
    tucker: list[str] = []
    incomplete: list[str] = []
    unmapped: list[str] = []
    canonical_of = _namer(found)
    for module in sorted(found):
        parts = found[module]
        if any(r in parts for r in _TUCKER):
            tucker.append(module)
            continue
        if all(r in parts for r in _HADA):
            kind: Literal["loha", "lokr"] = "loha"
        elif (("lokr_w1" in parts or {"lokr_w1_a", "lokr_w1_b"} <= parts.keys())
              and ("lokr_w2" in parts or {"lokr_w2_a", "lokr_w2_b"} <= parts.keys())):
            kind = "lokr"
        else:
            incomplete.append(module)
            continue
        canonical = canonical_of(module)
        if canonical is None:
            unmapped.append(module)
            continue
        alpha = module + ".alpha"
        modules.append(LycorisModule(module, canonical, kind, parts, alpha if alpha in keys else None,
                                     _has_dora(module, keys)))
    if tucker:
        notes.append(f"{len(tucker)} LoHa/LoKr modules with Tucker-decomposed convolutions "
                     f"(hada_t1/hada_t2/lokr_t2) are not fingerprinted (e.g. {tucker[0]!r})")
    if incomplete:
        notes.append(f"{len(incomplete)} LoHa/LoKr modules lack a factor and were ignored "
                     f"(e.g. {incomplete[0]!r} has only {', '.join(sorted(found[incomplete[0]]))})")
    if unmapped:
        notes.append(f"{len(unmapped)} LoHa/LoKr modules target weights assay cannot name "
                     f"(outside the SD/SDXL UNet and text encoders) and were not fingerprinted (e.g. {unmapped[0]!r})")
    return modules, notes


Getter = Callable[[str], np.ndarray]
RowReader = Callable[[int, int], np.ndarray]


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


def _matrix(get: Getter, key: str, where: str, module: str) -> np.ndarray:
    """A factor as a float32 2-D matrix (convolution factors flattened to (rows, -1))."""
    a = np.asarray(get(key), dtype=np.float32)
    if a.ndim < 2 or a.shape[0] == 0 or a.size == 0:
        raise InputError(where, f"module {module!r}: factor {key.rsplit('.', 1)[-1]} has shape "
                                f"{tuple(a.shape)}, not a non-empty matrix")
    return a.reshape(a.shape[0], -1)


def _product(get: Getter, mod: LycorisModule, a: str, b: str, where: str) -> tuple[np.ndarray, int]:
    """``a @ b`` for a factorised side, with its rank."""
    fa, fb = _matrix(get, mod.parts[a], where, mod.module), _matrix(get, mod.parts[b], where, mod.module)
    if fa.shape[1] != fb.shape[0]:
        raise InputError(where, f"module {mod.module!r}: {a} has {fa.shape[1]} columns, "
                                f"{b} has {fb.shape[0]} rows")
    return fa @ fb, fb.shape[0]


def _alpha(mod: LycorisModule, get: Getter, alpha_default: float | None, where: str) -> float | None:
    if mod.alpha_key is not None:
        alpha: float | None = float(np.asarray(get(mod.alpha_key), dtype=np.float64).reshape(-1)[0])
    else:
        alpha = alpha_default
    if alpha is not None and not np.isfinite(alpha):
        raise InputError(where, f"module {mod.module!r}: alpha is not finite")
    return alpha


def lycoris_delta_rows(
    mod: LycorisModule, get: Getter, *, alpha_default: float | None = None, where: str = "LoRA"
) -> tuple[tuple[int, int], RowReader]:
    """The 2-D shape ``(out, in*kh*kw)`` of a LoHa/LoKr module's delta and a reader of
    its rows ``r0..r1``: the delta is never held whole, only one row block at a time."""
    if mod.kind == "loha":
        w1a = _matrix(get, mod.parts["hada_w1_a"], where, mod.module)
        w1b = _matrix(get, mod.parts["hada_w1_b"], where, mod.module)
        w2a = _matrix(get, mod.parts["hada_w2_a"], where, mod.module)
        w2b = _matrix(get, mod.parts["hada_w2_b"], where, mod.module)
        if w1a.shape[1] != w1b.shape[0] or w2a.shape[1] != w2b.shape[0]:
            raise InputError(where, f"module {mod.module!r}: LoHa factor ranks do not match "
                                    f"({w1a.shape} @ {w1b.shape}, {w2a.shape} @ {w2b.shape})")
        if w1a.shape[0] != w2a.shape[0] or w1b.shape[1] != w2b.shape[1]:
            raise InputError(where, f"module {mod.module!r}: the two LoHa products differ in shape "
                                    f"({w1a.shape[0]}x{w1b.shape[1]} vs {w2a.shape[0]}x{w2b.shape[1]})")
        alpha = _alpha(mod, get, alpha_default, where)
        scale = np.float32(alpha / w1b.shape[0] if alpha else 1.0)
        w1a = w1a * scale

        def loha_rows(r0: int, r1: int) -> np.ndarray:
            out = w1a[r0:r1] @ w1b
            out *= w2a[r0:r1] @ w2b
            return out

        return (w1a.shape[0], w1b.shape[1]), loha_rows

    dim: int | None = None
    if "lokr_w1" in mod.parts:
        w1 = _matrix(get, mod.parts["lokr_w1"], where, mod.module)
    else:
        w1, dim = _product(get, mod, "lokr_w1_a", "lokr_w1_b", where)
    if "lokr_w2" in mod.parts:
        w2 = _matrix(get, mod.parts["lokr_w2"], where, mod.module)
    else:
        w2, dim = _product(get, mod, "lokr_w2_a", "lokr_w2_b", where)
    alpha = _alpha(mod, get, alpha_default, where)
    # Both sides full matrices: LyCORIS trains at scale 1 and the loaders ignore alpha.
    scale = np.float32(alpha / dim if dim and alpha else 1.0)
    w1 = w1 * scale
    (a, b), (c, d) = w1.shape, w2.shape
    if a * c * b * d > 1 << 40:
        raise InputError(where, f"module {mod.module!r}: LoKr delta of {a * c}x{b * d} is implausibly large")

    def lokr_rows(r0: int, r1: int) -> np.ndarray:
        # Row i of kron(w1, w2) is kron(w1[i // c], w2[i % c]).
        idx = np.arange(r0, r1)
        return (w1[idx // c][:, :, None] * w2[idx % c][:, None, :]).reshape(r1 - r0, b * d)

    return (a * c, b * d), lokr_rows


def module_delta_lycoris(mod: LycorisModule, get: Getter, **kw: Any) -> np.ndarray:
    """The full delta of one LoHa/LoKr module (tests and extraction only)."""
    (m, _n), rows = lycoris_delta_rows(mod, get, **kw)
    return rows(0, m)


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
    tensors = list(tensors)
    modules, notes = lora_modules(tensors)
    lycoris, lycoris_notes = lycoris_modules(tensors)
    notes += lycoris_notes
    if not modules and not lycoris:
        raise InputError(where, "no LoRA module that assay can map onto the weights of a model"
                         + (f" ({notes[0]})" if notes else ""))
    alpha_default = alpha if alpha is not None else _peft_alpha(metadata)
    dora = sum(m.dora for m in modules) + sum(m.dora for m in lycoris)
    if dora:
        notes.append(f"{dora} DoRA modules approximated by their low-rank delta: DoRA also rescales "
                     "each column of base + delta to a learned magnitude, which depends on the base "
                     "weights; strengths found for this LoRA are approximate")
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
    kinds: dict[str, int] = {}
    with _one_blas_thread():
        for lmod in lycoris:
            if lmod.canonical in fp.tensors:
                continue  # a plain LoRA factor pair on the same weight was read first
            shape, rows = lycoris_delta_rows(lmod, get, alpha_default=alpha_default, where=where)
            fp.tensors[lmod.canonical] = _sketch_source(shape, rows, _Decoder("F32"), k, lmod.canonical)
            kinds[lmod.kind] = kinds.get(lmod.kind, 0) + 1
    fp.source["ranks"] = {str(r): n for r, n in sorted(ranks.items())}
    fp.source["modules"] = len(modules) + sum(kinds.values())
    if kinds:
        fp.source["lycoris"] = kinds
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
