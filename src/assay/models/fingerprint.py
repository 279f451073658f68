"""Weight fingerprints: compact, linear sketches of a model's tensors.

A fingerprint holds, per tensor, a random linear sketch ``S(W) = P W Q`` (``P`` is
``k x m``, ``Q`` is ``n x k``; 4-D convolutions are flattened to ``(out, in*kh*kw)``,
1-D tensors keep ``P v``) plus exact statistics of the full tensor (norm, mean,
count of NaN/Inf). Because the sketch is linear, the sketch of a
difference is the difference of sketches: fine-tune distances, merge ratios and
LoRA strengths are computed from fingerprints alone, without the base weights.

Invariances, and how each is obtained:

* container and dtype: tensors are read through :func:`assay.models.formats.open_model`
  and converted to float32 before sketching (fp16/bf16 rounding moves a sketch by
  about 1e-3 of its norm, far below any fine-tune);
* key naming and tensor order: every key is mapped to one canonical name, the
  diffusers layout with the component as prefix (``unet/``, ``vae/``,
  ``text_encoder/``, ``text_encoder_2/``); original LDM/SGM names, diffusers folders
  and OpenCLIP towers (fused ``in_proj`` split into q/k/v) all land there;
* EMA: the trained weights ``model.diffusion_model.*`` are used and ``model_ema.*``
  ignored, so pruning EMA changes nothing. A file holding *only* EMA weights has
  them decoded (the dotless EMA names are parsed back) and used instead; the
  fingerprint says so in its notes.

``P`` and ``Q`` depend only on the dimension they multiply and on ``k`` (seeded from
SHA-256 of a fixed label, numpy PCG64: identical on every machine and run), so two
tensors of equal shape are always comparable, and a dimension ``<= k`` is kept
exactly (identity instead of a projection).

Permutations (issue #22): reordering hidden units (FFN neurons, attention heads, the
residual dimension, conv channels) leaves the function unchanged but moves every
sketch. Format 2 therefore also stores, per tensor and computed in the same pass,
permutation invariants (quantiles of the sorted row norms and column-unit norms) and
small per-unit signatures (row norm + ``ALIGN_DIM`` random projections per output unit;
per input unit where the rows are a fixed axis such as an embedding's vocabulary; the
values of 1-D tensors), from which :mod:`assay.models.alignment` recovers the
permutation between a suspect and a banked fingerprint. Cost: ``(1 + ALIGN_DIM)``
float16 values per output unit of every matrix, i.e. 12 bytes per row. Format 3 adds
per output unit the sum of its weights and the cube root of the sum of their cubes
(``rowmom``, 4 bytes per row): unlike the projections these do not depend on the order
of the unit's inputs, so two fingerprints can be aligned without either model's
weights (:func:`assay.models.alignment.align_signatures`).

Serialised form (:meth:`Fingerprint.to_bytes`): magic ``ASFP``, format version,
header length, a JSON header, the float16 sketch payload, then (format 2) the float16
permutation data, and a CRC32 of all that precedes it. Format 1 records (sketches
only) are still read; they answer every question except the permuted ones; format 2
records answer those only with the suspect's weights at hand.
Truncated or corrupt records are rejected with :class:`FingerprintError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import AssayError, DecodeError, InputError
from .names import NO_WEIGHTS, Layout, component_label, layout_for, unpermute_rope_rows

__all__ = [
    "COMPONENTS",
    "DEFAULT_K",
    "Fingerprint",
    "FingerprintError",
    "TensorSketch",
    "canonical_pieces",
    "component_of",
    "fingerprint_arrays",
    "fingerprint_file",
    "fingerprint_model",
    "kohya_module_to_canonical",
    "sketch_matrix",
    "unet_diffusers_to_ldm",
    "unet_ldm_to_diffusers",
    "vae_ldm_to_diffusers",
]

FORMAT_VERSION = 3  # 2: optional permutation-robust data per tensor (see TensorSketch); 3: rowmom
READABLE_VERSIONS = (1, 2, 3)
SKETCH_VERSION = 1  # seeds of P, Q and the summary plan: never changes with the record format
DEFAULT_K = 64
ALIGN_DIM = 5  # random projections per row / column unit in the alignment signatures
INV_QUANTILES = 16  # quantiles of sorted row norms and of sorted column-unit norms
SUMMARY_DIM = 256  # per component; the bank pre-filter vector
SCALE_OUTLIER = 8.0  # a matrix this many times the median matrix's RMS is padding to the pre-filter
MAGIC = b"ASFP"
COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2", "other")
Kind = Literal["checkpoint", "lora", "base"]
# One float32 chunk of a tensor at a time: bounds peak memory on huge tensors.
CHUNK_ELEMENTS = 4 * 1024 * 1024  # 16 MB of float32; big enough for BLAS to thread well
MAX_HEADER = 64 * 1024 * 1024


class FingerprintError(AssayError):
    """A fingerprint record cannot be decoded, or two fingerprints cannot be compared."""

    code = "bad-fingerprint"


# ---------------------------------------------------------------------------------------
# Canonical names
# ---------------------------------------------------------------------------------------

_RESNET_LDM = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_RESNET_DIFFUSERS = {v: k for k, v in _RESNET_LDM.items()}


def _resnet(tail: list[str], table: Mapping[str, str]) -> str:
    two = ".".join(tail[:2])
    if two in table:
        return ".".join([table[two], *tail[2:]])
    if tail and tail[0] in table:
        return ".".join([table[tail[0]], *tail[1:]])
    return ".".join(tail)


def unet_ldm_to_diffusers(name: str) -> str:
    """``input_blocks.1.1.proj_in.weight`` -> ``down_blocks.0.attentions.0.proj_in.weight``.

    Pure name arithmetic for the openaimodel UNet with two res blocks per level
    (SD 1.x, 2.x, SDXL): input block ``3i+j+1`` is level ``i`` layer ``j``, block
    ``3i+3`` the level's downsampler; output block ``3i+j`` is up level ``i`` layer
    ``j``; an output sub-module holding ``conv`` directly is the upsampler.
    Unknown names come back unchanged.
    """
    p = name.split(".")
    try:
        head = p[0]
        if head == "time_embed" and p[1] in ("0", "2"):
            return ".".join([f"time_embedding.linear_{1 if p[1] == '0' else 2}", *p[2:]])
        if head == "label_emb" and p[1] == "0" and p[2] in ("0", "2"):
            return ".".join([f"add_embedding.linear_{1 if p[2] == '0' else 2}", *p[3:]])
        if head == "out" and p[1] in ("0", "2"):
            return ".".join(["conv_norm_out" if p[1] == "0" else "conv_out", *p[2:]])
        if head == "input_blocks":
            n, s, tail = int(p[1]), int(p[2]), p[3:]
            if n == 0:
                return ".".join(["conv_in", *tail])
            i, r = divmod(n - 1, 3)
            if r == 2 and tail[:1] == ["op"]:
                return ".".join([f"down_blocks.{i}.downsamplers.0.conv", *tail[1:]])
            if s == 0:
                return f"down_blocks.{i}.resnets.{r}." + _resnet(tail, _RESNET_LDM)
            return ".".join([f"down_blocks.{i}.attentions.{r}", *tail])
        if head == "middle_block":
            s, tail = int(p[1]), p[2:]
            if s == 1:
                return ".".join(["mid_block.attentions.0", *tail])
            return f"mid_block.resnets.{s // 2}." + _resnet(tail, _RESNET_LDM)
        if head == "output_blocks":
            n, s, tail = int(p[1]), int(p[2]), p[3:]
            i, j = divmod(n, 3)
            if s == 0:
                return f"up_blocks.{i}.resnets.{j}." + _resnet(tail, _RESNET_LDM)
            if tail[:1] == ["conv"]:
                return ".".join([f"up_blocks.{i}.upsamplers.0.conv", *tail[1:]])
            return ".".join([f"up_blocks.{i}.attentions.{j}", *tail])
    except (IndexError, ValueError):
        return name
    return name


def unet_diffusers_to_ldm(name: str, up_with_attention: Iterable[int] = ()) -> str:
    """The inverse of :func:`unet_ldm_to_diffusers`. ``up_with_attention`` lists the up
    levels that have attention blocks: their upsampler is sub-module 2, not 1."""
    p = name.split(".")
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    for k, v in fixed.items():
        if name.startswith(k + "."):
            return v + name[len(k):]
    try:
        if p[0] == "down_blocks":
            i, what = int(p[1]), p[2]
            if what == "downsamplers":
                return ".".join([f"input_blocks.{3 * i + 3}.0.op", *p[5:]])
            j = int(p[3])
            if what == "resnets":
                return f"input_blocks.{3 * i + j + 1}.0." + _resnet(p[4:], _RESNET_DIFFUSERS)
            return ".".join([f"input_blocks.{3 * i + j + 1}.1", *p[4:]])
        if p[0] == "mid_block":
            j = int(p[2])
            if p[1] == "attentions":
                return ".".join(["middle_block.1", *p[3:]])
            return f"middle_block.{2 * j}." + _resnet(p[3:], _RESNET_DIFFUSERS)
        if p[0] == "up_blocks":
            i, what = int(p[1]), p[2]
            if what == "upsamplers":
                sub = 2 if i in set(up_with_attention) else 1
                return ".".join([f"output_blocks.{3 * i + 2}.{sub}.conv", *p[5:]])
            j = int(p[3])
            if what == "resnets":
                return f"output_blocks.{3 * i + j}.0." + _resnet(p[4:], _RESNET_DIFFUSERS)
            return ".".join([f"output_blocks.{3 * i + j}.1", *p[4:]])
    except (IndexError, ValueError):
        return name
    return name


_VAE_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_VAE_ATTN_OLD_DIFFUSERS = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
VAE_UP_LEVELS = 4  # the KL autoencoder of SD 1.x/2.x/XL; decoder up levels run reversed


def vae_ldm_to_diffusers(name: str) -> str:
    """KL-autoencoder names, LDM -> diffusers (``decoder.up.3`` is ``up_blocks.0``)."""
    p = name.split(".")
    try:
        if p[0] in ("encoder", "decoder") and len(p) > 2:
            side, what = p[0], p[1]
            if what in ("down", "up"):
                i = int(p[2])
                level = i if what == "down" else VAE_UP_LEVELS - 1 - i
                blocks = f"{side}.{what}_blocks.{level}"
                if p[3] == "block":
                    tail = ["conv_shortcut" if t == "nin_shortcut" else t for t in p[5:]]
                    return ".".join([f"{blocks}.resnets.{p[4]}", *tail])
                if p[3] in ("downsample", "upsample"):
                    return ".".join([f"{blocks}.{p[3]}rs.0", *p[4:]])
            if what == "mid":
                if p[2] in ("block_1", "block_2"):
                    tail = ["conv_shortcut" if t == "nin_shortcut" else t for t in p[3:]]
                    return ".".join([f"{side}.mid_block.resnets.{int(p[2][-1]) - 1}", *tail])
                if p[2] == "attn_1":
                    return ".".join([f"{side}.mid_block.attentions.0", _VAE_ATTN.get(p[3], p[3]), *p[4:]])
            if what == "norm_out":
                return ".".join([f"{side}.conv_norm_out", *p[2:]])
    except (IndexError, ValueError):
        return name
    return name


def _vae_diffusers_normalise(name: str) -> str:
    p = name.split(".")
    if "attentions" in p and len(p) >= 2 and p[-2] in _VAE_ATTN_OLD_DIFFUSERS:
        return ".".join([*p[:-2], _VAE_ATTN_OLD_DIFFUSERS[p[-2]], p[-1]])
    return name


@dataclass(frozen=True)
class Piece:
    """Where a canonical tensor comes from: a source key, maybe a row slice of it
    (fused q/k/v), maybe transposed (OpenCLIP's text_projection)."""

    canonical: str
    rows: tuple[int, int] | None = None  # thirds of a fused in_proj, as (index, of)
    transpose: bool = False
    rope_heads: int | None = None  # llama.cpp Q/K rows to put back in Hugging Face order


def _openclip(rest: str) -> list[Piece] | None:
    """OpenCLIP text tower names -> Hugging Face CLIP names (relative, no component)."""
    m = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", rest)
    if m:
        layer, tail = f"text_model.encoder.layers.{m.group(1)}.", m.group(2)
        if tail in ("attn.in_proj_weight", "attn.in_proj_bias"):
            suffix = "weight" if tail.endswith("weight") else "bias"
            return [
                Piece(f"{layer}self_attn.{x}_proj.{suffix}", rows=(i, 3))
                for i, x in enumerate(("q", "k", "v"))
            ]
        table = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for k, v in table.items():
            if tail.startswith(k + "."):
                return [Piece(layer + v + tail[len(k):])]
        return [Piece(layer + tail)]
    simple = {
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "ln_final.weight": "text_model.final_layer_norm.weight",
        "ln_final.bias": "text_model.final_layer_norm.bias",
    }
    if rest in simple:
        return [Piece(simple[rest])]
    if rest == "text_projection":
        return [Piece("text_projection.weight", transpose=True)]
    if rest in ("logit_scale", "attn_mask"):
        return []
    return None


_IGNORED = re.compile(
    r"(betas|alphas_cumprod|alphas_cumprod_prev|sqrt_.*|log_one_minus_alphas_cumprod|"
    r"posterior_.*|logvar|model_ema\..*|.*position_ids|.*\.num_batches_tracked)"
)
_UNET_LDM_HEADS = ("input_blocks.", "middle_block.", "output_blocks.", "time_embed.", "label_emb.", "out.")
_UNET_DIFFUSERS_HEADS = (
    "down_blocks.", "up_blocks.", "mid_block.", "conv_in.", "conv_out.", "conv_norm_out.",
    "time_embedding.", "add_embedding.",
)
_DIFFUSERS_COMPONENTS = {"unet", "vae", "text_encoder", "text_encoder_2"}


def _clip(rest: str) -> str:
    return rest if rest.startswith(("text_model.", "text_projection")) else "text_model." + rest


def canonical_pieces(key: str, layout: Layout | None = None) -> list[Piece]:
    """Canonical pieces for a source key; ``[]`` for keys that are not weights
    (schedules, EMA copies, position ids). In the SD family unknown keys keep their
    name under ``other/``; any other model is named by :mod:`assay.models.names`."""
    if _IGNORED.fullmatch(key):
        return []
    if layout is not None and layout.kind != "sd":
        name = layout.generic_name(key)
        return [Piece(name, rope_heads=layout.rope_heads.get(name))]
    if "/" in key:  # a diffusers folder lists tensors as component/name
        comp, rest = key.split("/", 1)
        if comp == "unet":
            return [Piece("unet/" + rest)]
        if comp == "vae":
            return [Piece("vae/" + _vae_diffusers_normalise(rest))]
        if comp in ("text_encoder", "text_encoder_2"):
            return [Piece(f"{comp}/{_clip(rest)}")]
        return [Piece("other/" + key)]
    for prefix, comp in (("model.diffusion_model.", "unet"), ("first_stage_model.", "vae")):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            mapped = unet_ldm_to_diffusers(rest) if comp == "unet" else vae_ldm_to_diffusers(rest)
            return [Piece(f"{comp}/{mapped}")]
    for prefix, comp in (
        ("cond_stage_model.transformer.", "text_encoder"),
        ("conditioner.embedders.0.transformer.", "text_encoder"),
    ):
        if key.startswith(prefix):
            return [Piece(f"{comp}/{_clip(key[len(prefix):])}")]
    for prefix, comp in (
        ("cond_stage_model.model.", "text_encoder"),
        ("conditioner.embedders.1.model.", "text_encoder_2"),
    ):
        if key.startswith(prefix):
            pieces = _openclip(key[len(prefix):])
            if pieces is None:
                return [Piece("other/" + key)]
            return [Piece(f"{comp}/{p.canonical}", p.rows, p.transpose) for p in pieces]
    # Component files without a prefix (UNet-only, VAE-only, text-encoder-only).
    if key.startswith(_UNET_LDM_HEADS):
        return [Piece("unet/" + unet_ldm_to_diffusers(key))]
    if key.startswith(_UNET_DIFFUSERS_HEADS):
        return [Piece("unet/" + key)]
    if key.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")):
        if ".down_blocks." in key or ".up_blocks." in key or ".mid_block." in key:
            return [Piece("vae/" + _vae_diffusers_normalise(key))]
        return [Piece("vae/" + vae_ldm_to_diffusers(key))]
    if key.startswith("text_model."):
        return [Piece("text_encoder/" + key)]
    return [Piece("other/" + key)]


# Dotless EMA names: model_ema.diffusion_modelinput_blocks11proj_inweight
_EMA_HEAD = re.compile(
    r"diffusion_model(?:(input_blocks|output_blocks)(\d+)(\d)(?=\D)|(middle_block)(\d)|"
    r"(time_embed)(\d)|(label_emb)(\d)(\d)|(out)(\d))(.*)"
)
_EMA_TOKENS = re.compile(
    r"transformer_blocks|skip_connection|emb_layers|out_layers|in_layers|proj_out|proj_in|"
    r"to_out|to_q|to_k|to_v|attn1|attn2|norm1|norm2|norm3|weight|bias|norm|conv|proj|net|ff|op|\d"
)


def decode_ema_key(key: str) -> str | None:
    """``model_ema.diffusion_modelinput_blocks11proj_inweight`` ->
    ``input_blocks.1.1.proj_in.weight`` (LDM UNet naming), or None if it does not parse.
    The sub-block index is a single digit followed by a letter, which makes the
    split of the run of digits unique."""
    if not key.startswith("model_ema."):
        return None
    m = _EMA_HEAD.fullmatch(key[len("model_ema."):])
    if not m:
        return None
    groups = [g for g in m.groups()[:-1] if g is not None]
    tail = m.groups()[-1]
    tokens = []
    pos = 0
    while pos < len(tail):
        t = _EMA_TOKENS.match(tail, pos)
        if not t:
            return None
        tokens.append(t.group(0))
        pos = t.end()
    return ".".join(groups + tokens)


def component_of(canonical: str) -> str:
    comp = canonical.split("/", 1)[0]
    return comp if comp in COMPONENTS else "other"


# kohya module names flatten the module path with "_"; these names contain "_"
# themselves and are re-joined greedily (longest first) when a path is unflattened.
_COMPOUNDS = sorted(
    {
        "down_blocks", "up_blocks", "mid_block", "transformer_blocks", "proj_in", "proj_out",
        "to_q", "to_k", "to_v", "to_out", "conv_shortcut", "time_emb_proj", "time_embedding",
        "linear_1", "linear_2", "conv_in", "conv_out", "conv_norm_out", "text_model",
        "self_attn", "q_proj", "k_proj", "v_proj", "out_proj", "layer_norm1", "layer_norm2",
        "final_layer_norm", "token_embedding", "position_embedding", "add_embedding",
        "input_blocks", "output_blocks", "middle_block", "in_layers", "out_layers",
        "emb_layers", "skip_connection", "time_embed", "label_emb", "text_projection",
    },
    key=lambda s: -s.count("_"),
)


def _unflatten(flat: str) -> str:
    atoms = flat.split("_")
    out: list[str] = []
    i = 0
    while i < len(atoms):
        for comp in _COMPOUNDS:
            parts = comp.split("_")
            if atoms[i:i + len(parts)] == parts:
                out.append(comp)
                i += len(parts)
                break
        else:
            out.append(atoms[i])
            i += 1
    return ".".join(out)


def kohya_module_to_canonical(module: str) -> str | None:
    """``lora_unet_down_blocks_0_attentions_0_proj_in`` -> ``unet/down_blocks.0.attentions.0.proj_in.weight``.

    SD 1.x kohya names follow diffusers module paths, SDXL ones the SGM (LDM) paths;
    both are accepted. Returns None for a prefix that is not a known component."""
    for prefix, comp in (
        ("lora_unet_", "unet"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"),
        ("lora_te_", "text_encoder"),
    ):
        if module.startswith(prefix):
            path = _unflatten(module[len(prefix):]) + ".weight"
            if comp == "unet":
                if path.startswith(_UNET_LDM_HEADS):
                    path = unet_ldm_to_diffusers(path)
            else:
                path = _clip(path)
            return f"{comp}/{path}"
    return None


def canonical_to_kohya(canonical: str, *, sgm: bool = False, up_with_attention: Iterable[int] = ()) -> str:
    """The kohya module name for a canonical weight (``.weight`` dropped)."""
    comp, path = canonical.split("/", 1)
    if comp == "unet":
        if sgm:
            path = unet_diffusers_to_ldm(path, up_with_attention)
        prefix = "lora_unet_"
    elif comp == "text_encoder":
        prefix = "lora_te1_" if sgm else "lora_te_"
    elif comp == "text_encoder_2":
        prefix = "lora_te2_"
    else:
        raise ValueError(f"no kohya name for {canonical!r}")
    return prefix + path.removesuffix(".weight").replace(".", "_")


# ---------------------------------------------------------------------------------------
# Sketches
# ---------------------------------------------------------------------------------------


def _seed(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little")


@lru_cache(maxsize=48)
def _projection(side: str, dim: int, k: int) -> np.ndarray:
    """Gaussian N(0, 1/k): E[P^T P] = I, so sketch norms estimate tensor norms."""
    rng = np.random.default_rng(_seed(f"assay/sketch/v{SKETCH_VERSION}/{side}/{dim}/{k}"))
    m = rng.standard_normal((k, dim), dtype=np.float32) * np.float32(1.0 / np.sqrt(k))
    m.setflags(write=False)
    return m


def left(dim: int, k: int) -> np.ndarray | None:
    """P (k x dim), or None when dim <= k (kept exactly)."""
    return None if dim <= k else _projection("P", dim, k)


def right(dim: int, k: int) -> np.ndarray | None:
    """Q (dim x k), or None when dim <= k."""
    return None if dim <= k else _projection("Q", dim, k).T


def sketch_matrix(w: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """P W Q of an in-memory float matrix (for deltas built from factors and tests)."""
    w = np.asarray(w, dtype=np.float32)
    p, q = left(w.shape[0], k), right(w.shape[1], k)
    out = w if q is None else w @ q
    return out if p is None else p @ out


def sketch_factors(up: np.ndarray, down: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """P (U D) Q computed as (P U)(D Q): a LoRA delta never materialised."""
    up = np.asarray(up, dtype=np.float32)
    down = np.asarray(down, dtype=np.float32)
    p, q = left(up.shape[0], k), right(down.shape[1], k)
    pu = up if p is None else p @ up
    dq = down if q is None else down @ q
    return pu @ dq


@dataclass
class TensorSketch:
    """One canonical tensor: its 2-D (or 1-D) shape, sketch and exact statistics."""

    name: str
    shape: tuple[int, ...]  # canonical: (out, in*kh*kw) for matrices, (n,) for vectors
    sketch: np.ndarray  # float32, (min(m,k), min(n,k)) or (min(n,k),)
    norm: float
    mean: float
    nonfinite: int = 0
    # Permutation-robust data (format 2, all optional; see :mod:`assay.models.alignment`):
    # ``rowsig`` (m, 1 + ALIGN_DIM): per output unit its norm and projections on fixed random
    # vectors (a 1-D tensor keeps its values, (n, 1)); ``colsig`` (units, 1 + ALIGN_DIM): the
    # same per input unit (a conv's input channel is ``n / units`` columns), stored where the
    # rows are a fixed axis (embeddings, vocabulary heads, a few output channels);
    # ``inv``: quantiles of the sorted row norms and column-unit norms, unchanged by any
    # permutation of either axis.
    rowsig: np.ndarray | None = None
    colsig: np.ndarray | None = None
    units: int = 0
    inv: np.ndarray | None = None
    # ``rowmom`` (m, 2), format 3: per output unit the sum of its weights and the cube root of
    # the sum of their cubes. Unlike ``rowsig``'s projections these do not change when the
    # *input* units are reordered, so two fingerprints can be aligned without the weights.
    rowmom: np.ndarray | None = None

    @property
    def is_matrix(self) -> bool:
        return len(self.shape) == 2

    @property
    def comparable(self) -> bool:
        return self.nonfinite == 0


@dataclass
class Fingerprint:
    """Sketches of every canonical tensor of one model (or of one LoRA's deltas)."""

    k: int
    kind: str = "checkpoint"
    tensors: dict[str, TensorSketch] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # file name, size, format, layout
    notes: list[str] = field(default_factory=list)

    # -- views -------------------------------------------------------------------------
    def components(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in self.tensors:
            c = component_of(name)
            out[c] = out.get(c, 0) + 1
        return out

    def matrices(self, component: str | None = None) -> dict[str, TensorSketch]:
        return {
            n: t for n, t in self.tensors.items()
            if t.is_matrix and (component is None or component_of(n) == component)
        }

    def summary(self, leave_out: frozenset[str] = frozenset()) -> np.ndarray:
        """A (len(COMPONENTS), SUMMARY_DIM) float32 count-sketch of the matrix sketches,
        per component. Linear in the weights like the sketches themselves, so merges
        stay merges; used by banks to pre-select candidates among thousands. The
        matrices named in ``leave_out`` are not counted (:meth:`scale_outliers`)."""
        out = np.zeros((len(COMPONENTS), SUMMARY_DIM), dtype=np.float64)
        for name, t in self.tensors.items():
            if not t.is_matrix or not t.comparable or name in leave_out:
                continue
            flat = t.sketch.ravel()
            buckets, signs = _count_sketch_plan(name, flat.size)
            row = COMPONENTS.index(component_of(name))
            out[row] += np.bincount(buckets, weights=signs * flat, minlength=SUMMARY_DIM)
        return out.astype(np.float32)

    def scale_outliers(self) -> frozenset[str]:
        """Matrices whose values are far larger than the model's own (per-element RMS over
        SCALE_OUTLIER times the median matrix's). A model padded with one such tensor loads
        and runs as before (loaders pass over a key they do not know), but the tensor's
        norm drowns everything else in :meth:`summary`: the bank's pre-selection also
        looks at the summary without them. Real models' matrices stay within a few times
        one another's scale."""
        mats = [(n, t) for n, t in self.tensors.items() if t.is_matrix and t.comparable and t.norm > 0]
        if len(mats) < 3:
            return frozenset()
        rms = np.array([t.norm / math.sqrt(math.prod(t.shape)) for _, t in mats])
        limit = SCALE_OUTLIER * float(np.median(rms))
        return frozenset(n for (n, _), r in zip(mats, rms, strict=True) if r > limit)

    def invariant_summary(self) -> np.ndarray | None:
        """A (len(COMPONENTS), SUMMARY_DIM) float32 count-sketch of the permutation
        invariants (sorted row- and column-unit-norm quantiles) of the matrices, or None
        for a fingerprint without them (format 1). Close for a model and any permuted
        copy of it; the bank pre-selects on it when the linear summary finds nothing."""
        out = np.zeros((len(COMPONENTS), SUMMARY_DIM), dtype=np.float64)
        seen = False
        for name, t in self.tensors.items():
            if not t.is_matrix or t.inv is None or not t.comparable:
                continue
            buckets, signs = _count_sketch_plan("inv/" + name, t.inv.size)
            row = COMPONENTS.index(component_of(name))
            out[row] += np.bincount(buckets, weights=signs * t.inv, minlength=SUMMARY_DIM)
            seen = True
        return out.astype(np.float32) if seen else None

    def shape_summary(self) -> np.ndarray:
        """A (SUMMARY_DIM,) float32 count-sketch of the matrix sketches keyed by each
        tensor's *shape*, not its name: tensors of one shape add up in the same plan, so
        renaming (or reordering) tensors leaves it unchanged, and it stays linear like
        :meth:`summary`. The bank pre-selects on it the entries a renamed copy shares no
        tensor name with (:func:`assay.models.lineage_renamed.pair_by_content` then pairs them)."""
        out = np.zeros(SUMMARY_DIM, dtype=np.float64)
        for t in self.tensors.values():
            if not pairable(t):
                continue
            flat = t.sketch.ravel()
            buckets, signs = _count_sketch_plan("shape/" + "x".join(map(str, t.shape)), flat.size)
            out += np.bincount(buckets, weights=signs * flat, minlength=SUMMARY_DIM)
        return out.astype(np.float32)

    def has_alignment_data(self) -> bool:
        return any(t.rowsig is not None or t.colsig is not None for t in self.tensors.values())

    def flat(self) -> FlatSketches:
        """All sketches in one float32 vector, tensors in sorted-name order (cached)."""
        # Fingerprints are not edited once in use (apply_lora builds a new one), so the
        # number of tensors is a sufficient staleness check for builders that add.
        key = (id(self.tensors), len(self.tensors))
        cached = self.__dict__.get("_flat")
        if cached is not None and cached[0] == key:
            return cached[1]
        names = tuple(sorted(self.tensors))
        ts = [self.tensors[n] for n in names]
        sizes = np.array([t.sketch.size for t in ts], dtype=np.int64)
        offsets = np.zeros(len(ts) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        data = (np.concatenate([t.sketch.ravel() for t in ts]).astype(np.float32)
                if ts else np.zeros(0, np.float32))
        flat = FlatSketches(
            names, {n: i for i, n in enumerate(names)}, offsets, data,
            np.array([COMPONENTS.index(component_of(n)) for n in names], dtype=np.int64),
            np.array([t.is_matrix for t in ts], dtype=bool),
            np.array([t.comparable and t.sketch.size > 0 for t in ts], dtype=bool),
            tuple(t.sketch.shape for t in ts), tuple(t.shape for t in ts), *_groups(names),
        )
        self.__dict__["_flat"] = (key, flat)
        return flat

    # -- serialisation -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Tensors are written in sorted-name order, so equal fingerprints give equal bytes.
        The sketches come first (the flat form lineage reads), then the optional
        permutation-robust data of each tensor, all as scaled float16."""
        entries = []
        payload = bytearray()
        extra = bytearray()
        for name in sorted(self.tensors):
            t = self.tensors[name]
            sk = t.sketch.astype(np.float32)
            scale = _scale(sk)
            entry: dict[str, Any] = {
                "name": t.name, "shape": list(t.shape), "sketch": list(sk.shape),
                "scale": scale, "norm": t.norm, "mean": t.mean, "nonfinite": t.nonfinite,
            }
            payload += _half(sk, scale)
            align: dict[str, Any] = {}
            for field_name in ALIGN_FIELDS:
                arr = getattr(t, field_name)
                if arr is None:
                    continue
                arr = np.asarray(arr, dtype=np.float32)
                sc = _scale(arr)
                align[field_name] = [*arr.shape, sc]
                extra += _half(arr, sc)
            if align:
                align["units"] = int(t.units)
                entry["align"] = align
            entries.append(entry)
        header = json.dumps({
            "format": "assay-fingerprint", "version": FORMAT_VERSION, "k": self.k,
            "kind": self.kind, "source": self.source, "notes": self.notes,
            "payload": len(payload), "extra": len(extra), "tensors": entries,
        }, separators=(",", ":"), allow_nan=False).encode()
        body = (MAGIC + struct.pack("<HI", FORMAT_VERSION, len(header)) + header + bytes(payload)
                + bytes(extra))
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "fingerprint record") -> Fingerprint:
        """Decode a record; raise FingerprintError naming ``where`` and the problem."""
        def bad(reason: str) -> FingerprintError:
            return FingerprintError(f"{where}: {reason}")

        data = bytes(data)
        if len(data) < 14 or data[:4] != MAGIC:
            raise bad("not an assay fingerprint (bad magic or too short)")
        version, hlen = struct.unpack_from("<HI", data, 4)
        if version not in READABLE_VERSIONS:
            raise bad(f"fingerprint format version {version} is not supported (this assay reads "
                      f"{', '.join(map(str, READABLE_VERSIONS))})")
        if hlen > MAX_HEADER or 10 + hlen + 4 > len(data):
            raise bad(f"truncated: header of {hlen} bytes does not fit in {len(data)} bytes")
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        if zlib.crc32(memoryview(data)[:-4]) != crc:
            raise bad("corrupt or truncated (checksum mismatch)")
        try:
            header = json.loads(data[10:10 + hlen])
            k = int(header["k"])
            entries = header["tensors"]
            payload = memoryview(data)[10 + hlen:-4]
            n_extra = int(header.get("extra") or 0) if version >= 2 else 0
            if n_extra < 0 or n_extra > len(payload) or n_extra % 2:
                raise bad(f"extra data of {n_extra} bytes does not fit in a payload of {len(payload)}")
            extra = payload[len(payload) - n_extra:]
            payload = payload[:len(payload) - n_extra]
            if int(header["payload"]) != len(payload) or len(payload) % 2:
                raise bad(f"payload is {len(payload)} bytes, header says {header['payload']}")
            fp = cls(k=k, kind=str(header["kind"]), source=dict(header.get("source") or {}),
                     notes=[str(n) for n in header.get("notes") or []])
            sizes, shapes = [], []
            for e in entries:
                sk_shape = tuple(int(d) for d in e["sketch"])
                if len(sk_shape) not in (1, 2) or any(d < 0 or d > max(k, 1 << 20) for d in sk_shape):
                    raise bad(f"tensor {e['name']!r}: invalid sketch shape {sk_shape}")
                shapes.append(sk_shape)
                sizes.append(math.prod(sk_shape))
            if 2 * sum(sizes) != len(payload):
                raise bad(f"tensor sketches need {2 * sum(sizes)} bytes, the payload "
                          f"holds {len(payload)} (sketch runs past the payload or leaves bytes over)")
            # One vectorised decode of the whole payload; tensors are views into it.
            scales = np.array([float(e["scale"]) for e in entries], dtype=np.float32)
            values = np.frombuffer(payload, dtype="<f2").astype(np.float32)
            values *= np.repeat(scales, sizes)
            pos = 0
            for e, sk_shape, n in zip(entries, shapes, sizes, strict=True):
                name = str(e["name"])
                if name in fp.tensors:
                    raise bad(f"tensor {name!r} appears twice")
                fp.tensors[name] = TensorSketch(
                    name, tuple(int(d) for d in e["shape"]), values[pos:pos + n].reshape(sk_shape),
                    float(e["norm"]), float(e["mean"]), int(e["nonfinite"]),
                )
                pos += n
            if n_extra:
                _read_align(fp, entries, extra, bad)
            names = list(fp.tensors)
            if names == sorted(names):  # as written by to_bytes: the payload is the flat form
                _prime_flat(fp, values, sizes)
        except FingerprintError:
            raise
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise bad(f"malformed header: {exc}") from exc
        return fp


ALIGN_FIELDS = ("rowsig", "colsig", "inv", "rowmom")  # in this order after the sketches


def _scale(arr: np.ndarray) -> float:
    return float(np.max(np.abs(arr))) if arr.size else 0.0


def _half(arr: np.ndarray, scale: float) -> bytes:
    return (arr / scale if scale > 0 else arr).astype("<f2").tobytes()


def _read_align(fp: Fingerprint, entries: list[Any], extra: memoryview,
                bad: Callable[[str], FingerprintError]) -> None:
    """The optional permutation-robust arrays of a format-2 record, after the sketches."""
    values = np.frombuffer(extra, dtype="<f2").astype(np.float32)
    pos = 0
    for e in entries:
        align = e.get("align")
        if not align:
            continue
        t = fp.tensors[str(e["name"])]
        rows = t.shape[0] if t.is_matrix else (t.shape[0] if t.shape else 0)
        for field_name in ALIGN_FIELDS:
            spec = align.get(field_name)
            if spec is None:
                continue
            *dims, sc = spec
            dims = [int(d) for d in dims]
            if not 1 <= len(dims) <= 2 or any(d < 0 or d > (1 << 24) for d in dims):
                raise bad(f"tensor {t.name!r}: invalid {field_name} shape {dims}")
            if field_name in ("rowsig", "rowmom") and dims[0] != rows:
                raise bad(f"tensor {t.name!r}: {field_name} has {dims[0]} rows, the tensor {rows}")
            n = math.prod(dims)
            if pos + n > values.size:
                raise bad(f"tensor {t.name!r}: {field_name} runs past the extra data")
            arr = values[pos:pos + n].reshape(dims) * np.float32(float(sc))
            setattr(t, field_name, arr)
            pos += n
        t.units = int(align.get("units") or 0)
    if pos != values.size:
        raise bad(f"extra data holds {values.size} values, the tensors describe {pos}")


def _prime_flat(fp: Fingerprint, values: np.ndarray, sizes: list[int]) -> None:
    names = tuple(fp.tensors)
    ts = list(fp.tensors.values())
    offsets = np.zeros(len(ts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(sizes, dtype=np.int64), out=offsets[1:])
    flat = FlatSketches(
        names, {n: i for i, n in enumerate(names)}, offsets, values,
        np.array([COMPONENTS.index(component_of(n)) for n in names], dtype=np.int64),
        np.array([t.is_matrix for t in ts], dtype=bool),
        np.array([t.comparable and t.sketch.size > 0 for t in ts], dtype=bool),
        tuple(t.sketch.shape for t in ts), tuple(t.shape for t in ts), *_groups(names),
    )
    fp.__dict__["_flat"] = ((id(fp.tensors), len(fp.tensors)), flat)


@dataclass(frozen=True)
class FlatSketches:
    """A fingerprint's sketches as one vector: the form lineage arithmetic runs on."""

    names: tuple[str, ...]
    index: dict[str, int]
    offsets: np.ndarray  # (n + 1,) element offsets of each tensor in ``data``
    data: np.ndarray  # float32
    component: np.ndarray  # (n,) index into COMPONENTS
    matrix: np.ndarray  # (n,) bool: a 2-D weight (not a bias or norm)
    ok: np.ndarray  # (n,) bool: finite and non-empty
    sketch_shapes: tuple[tuple[int, ...], ...]
    shapes: tuple[tuple[int, ...], ...]
    group: np.ndarray  # (n,) index into ``groups``: the component a person reads
    groups: tuple[str, ...]


# Matrices whose sketch has fewer elements than this are never paired by content alone:
# two unrelated 4x16 tensors can reach a sketch cosine of 0.5 by chance; at 256 elements
# that is 8 standard deviations away.
PAIR_MIN_ELEMENTS = 256


def pairable(t: TensorSketch) -> bool:
    """A matrix that can be paired with another by its weights alone (names ignored)."""
    return t.is_matrix and t.comparable and t.norm > 0 and t.sketch.size >= PAIR_MIN_ELEMENTS


def _groups(names: Iterable[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    labels = [component_label(n) for n in names]
    order = tuple(dict.fromkeys(labels))
    idx = {g: i for i, g in enumerate(order)}
    return np.array([idx[g] for g in labels], dtype=np.int64), order


@lru_cache(maxsize=4096)
def _count_sketch_plan(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_seed(f"assay/summary/v{SKETCH_VERSION}/{name}"))
    buckets = rng.integers(0, SUMMARY_DIM, size=size)
    signs = rng.integers(0, 2, size=size) * 2.0 - 1.0
    return buckets, signs


# ---------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------

class _Decoder:
    """Raw tensor chunks -> float32, reusing one buffer (fresh multi-megabyte
    allocations and numpy's scalar float16 cast cost several times the sketch itself).

    fp16 is widened with integer arithmetic: shifting the 15 magnitude bits into a
    float32 and multiplying by 2**112 is exact for normal and subnormal values;
    Inf/NaN come out as magnitudes >= 65536, which no finite fp16 value reaches,
    and are caught by the caller's finiteness check."""

    def __init__(self, dtype: str, convert: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.dtype = dtype
        self.convert = convert
        self._buf: np.ndarray | None = None

    def _buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        if self._buf is None or self._buf.size < n:
            self._buf = np.empty(max(n, CHUNK_ELEMENTS), dtype=np.int32)
        return self._buf[:n].reshape(shape)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.dtype == "F16":
            x = self._buffer(raw.shape)
            np.copyto(x, raw.view(np.int16), casting="unsafe")
            x <<= 13
            x &= np.int32(-1879056384)  # 0x8FFFE000: sign and the 15 shifted bits
            f = x.view(np.float32)
            f *= np.float32(2.0**112)
            return f
        if self.dtype == "BF16":
            x = self._buffer(raw.shape).view(np.uint32)
            np.copyto(x, raw.view(np.uint16), casting="unsafe")
            x <<= 16
            return x.view(np.float32)
        if self.dtype == "F32":
            return np.asarray(raw, dtype=np.float32)
        if self.convert is not None:
            return self.convert(raw)
        return np.asarray(raw, dtype=np.float32)


# fp16 Inf/NaN widen to >= 65536 (see _Decoder); real weights never come close.
_SUSPICIOUS = 65504.0**2


RowReader = Callable[[int, int], np.ndarray]


_FIXED_ROW_NAMES = (
    "token_embd.", "position_embd.", "token_types.", "token_embedding.", "position_embedding.",
    "word_embeddings.", "position_embeddings.", "token_type_embeddings.", "embed_tokens.",
    "wte.", "wpe.", "lm_head.",
)
FEW_ROWS = 16  # a matrix with this few output units keeps column signatures too (cheap)
MAX_ALIGN_ROWS = 1 << 18


def fixed_rows(name: str, rows: int) -> bool:
    """True for matrices whose rows are not an axis anyone can permute without changing
    the model's interface: vocabulary and position embeddings, the vocabulary head."""
    tail = name.rsplit("/", 1)[-1]
    return (any(f".{n}" in "." + tail for n in _FIXED_ROW_NAMES) or tail == "output.weight"
            or rows > MAX_ALIGN_ROWS)


@lru_cache(maxsize=64)
def align_projection(side: str, dim: int) -> np.ndarray:
    """Fixed random vectors (dim x ALIGN_DIM) for alignment signatures, independent of P and Q."""
    rng = np.random.default_rng(_seed(f"assay/align/v1/{side}/{dim}/{ALIGN_DIM}"))
    m = rng.standard_normal((dim, ALIGN_DIM), dtype=np.float32) * np.float32(1.0 / np.sqrt(dim))
    m.setflags(write=False)
    return m


_QPOS = np.linspace(0.0, 1.0, INV_QUANTILES)


def _quantiles(x: np.ndarray) -> np.ndarray:
    """Nearest-rank quantiles of a sorted copy (np.quantile's per-call overhead is ~10x
    the work on the thousands of small tensors of a checkpoint)."""
    if not x.size:
        return np.zeros(INV_QUANTILES, dtype=np.float32)
    xs = np.sort(x, kind="stable")
    return xs[np.rint(_QPOS * (xs.size - 1)).astype(np.int64)].astype(np.float32)


def _sketch_source(
    shape: tuple[int, ...], rows_of: RowReader, decode: _Decoder, k: int, name: str,
    align: bool = False,
) -> TensorSketch:
    """Sketch one tensor of ``shape``, reading and decoding at most about
    CHUNK_ELEMENTS values at once; ``rows_of(r0, r1)`` returns raw rows r0..r1 of
    the tensor flattened to 2-D (a 1-D tensor is one row). With ``align`` the same
    pass computes the permutation-robust data (:class:`TensorSketch` ``rowsig`` ...)."""
    vector = len(shape) < 2
    m = 1 if vector else shape[0]
    n = int(np.prod(shape)) if vector else int(np.prod(shape[1:]))
    if vector and n > 16 * CHUNK_ELEMENTS:
        raise InputError(name, f"1-D tensor of {n} values is too large to fingerprint")
    p = None if vector else left(m, k)
    q = right(n, k)
    out = np.zeros((1 if vector else min(m, k), min(n, k)), dtype=np.float64)
    sumsq = total = 0.0
    bad = 0
    units = (shape[1] if len(shape) > 2 else n) if not vector else n
    want_rows = align and not vector and n > 0 and not fixed_rows(name, m)
    want_cols = align and not vector and n > 0 and (fixed_rows(name, m) or m <= FEW_ROWS)
    g = align_projection("rows", n) if want_rows else None
    h = align_projection("cols", m) if want_cols else None
    rowsig = np.zeros((m, 1 + ALIGN_DIM), dtype=np.float32) if want_rows else None
    rowmom = np.zeros((m, 2), dtype=np.float32) if want_rows else None
    rownorm = np.zeros(m, dtype=np.float64) if align and not vector else None
    colsq = np.zeros(n, dtype=np.float64) if align and not vector else None
    colacc = np.zeros((ALIGN_DIM, n), dtype=np.float64) if want_cols else None
    vec_values = np.zeros(n, dtype=np.float32) if align and vector and n <= MAX_ALIGN_ROWS else None
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    for r0 in range(0, m, rows):
        c = decode(rows_of(r0, min(m, r0 + rows)))
        flat = c.reshape(-1)
        sq = float(np.dot(flat, flat))
        if not np.isfinite(sq) or sq >= _SUSPICIOUS:
            keep = np.isfinite(c) & (np.abs(c) < 65536.0 if decode.dtype == "F16" else True)
            if not keep.all():
                bad += int(c.size - np.count_nonzero(keep))
                c = np.where(keep, c, np.float32(0))
                flat = c.reshape(-1)
                sq = float(np.dot(flat, flat))
        sumsq += sq
        total += float(flat.sum())
        if align:
            c2 = c.reshape(c.shape[0], -1)
            r1 = r0 + c2.shape[0]
            if rownorm is not None and colsq is not None:
                # one squared copy, two float32 reductions: half the cost of two einsums
                sqm = np.square(c2)
                rownorm[r0:r1] = np.sqrt(sqm.sum(axis=1))
                colsq += sqm.sum(axis=0)
            if rowsig is not None and g is not None and rownorm is not None:
                rowsig[r0:r1, 0] = rownorm[r0:r1]
                rowsig[r0:r1, 1:] = c2 @ g
            if rowmom is not None:
                rowmom[r0:r1, 0] = c2.sum(axis=1)
                rowmom[r0:r1, 1] = np.cbrt(np.einsum("ij,ij->i", sqm, c2))
            if colacc is not None and h is not None:
                colacc += h[r0:r1].T @ c2
            if vec_values is not None:
                vec_values[:] = c2.reshape(-1)
        cq = c if q is None else c @ q
        if p is None:
            out[r0:r0 + c.shape[0]] = cq
        else:
            out += p[:, r0:r0 + c.shape[0]] @ cq
    numel = m * n
    canon_shape = (n,) if vector else (m, n)
    sk = out[0] if vector else out
    t = TensorSketch(name, canon_shape, sk.astype(np.float32), float(np.sqrt(sumsq)),
                     total / numel if numel else 0.0, bad)
    if align and bad == 0:
        if vector and vec_values is not None:
            t.rowsig = vec_values.reshape(-1, 1)
            t.units = n
            t.inv = np.concatenate([_quantiles(vec_values), _quantiles(np.abs(vec_values))])
        elif not vector and rownorm is not None and colsq is not None and n % units == 0:
            unit_norm = np.sqrt(colsq.reshape(units, -1).sum(axis=1))
            t.units = units
            t.rowsig = rowsig
            t.rowmom = rowmom
            if colacc is not None:
                cs = np.zeros((units, 1 + ALIGN_DIM), dtype=np.float32)
                cs[:, 0] = unit_norm
                cs[:, 1:] = colacc.reshape(ALIGN_DIM, units, -1).sum(axis=2).T
                t.colsig = cs
            t.inv = np.concatenate([_quantiles(rownorm), _quantiles(unit_norm)])
    return t


def _array_rows(raw: np.ndarray) -> tuple[tuple[int, ...], RowReader]:
    mat = raw.reshape(1, -1) if raw.ndim < 2 else raw.reshape(raw.shape[0], -1)
    return tuple(raw.shape), lambda r0, r1: mat[r0:r1]


class _FileRows:
    """Reads rows of a contiguous tensor with ``readinto`` into one reused buffer:
    unlike a memory map, the pages read never count against this process's memory."""

    def __init__(self) -> None:
        self._files: dict[str, Any] = {}
        self._buf = bytearray()

    def reader(self, source: str, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> RowReader:
        f = self._files.get(source)
        if f is None:
            f = self._files[source] = open(source, "rb")  # noqa: SIM115 - closed in close()
        n = int(np.prod(shape[1:])) if len(shape) >= 2 else int(np.prod(shape))
        row_bytes = n * dtype.itemsize

        def rows(r0: int, r1: int) -> np.ndarray:
            want = (r1 - r0) * row_bytes
            if len(self._buf) < want:
                self._buf = bytearray(want)
            view = memoryview(self._buf)[:want]
            f.seek(offset + r0 * row_bytes)
            got = f.readinto(view)
            if got != want:
                raise InputError(source, f"file ended inside a tensor (wanted {want} bytes, got {got})")
            return np.frombuffer(self._buf, dtype=dtype, count=(r1 - r0) * n).reshape(r1 - r0, n)

        return rows

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


_FLOAT_DTYPES = {"F16", "F32", "F64", "BF16", "F8_E4M3", "F8_E5M2"}


def _plan(keys: Iterable[str], layout: Layout | None = None) -> tuple[list[tuple[str, Piece]], list[str]]:
    """Which source key feeds which canonical tensor, with EMA and duplicate policy."""
    keys = list(keys)
    layout = layout or layout_for(keys)
    notes: list[str] = []
    has_unet = any(k.startswith("model.diffusion_model.") for k in keys)
    ema = [k for k in keys if k.startswith("model_ema.") and k not in ("model_ema.decay", "model_ema.num_updates")]
    plan: list[tuple[str, Piece]] = []
    seen: set[str] = set()
    if layout.kind != "sd":
        ema = []
    if ema and has_unet:
        notes.append(f"EMA weights ignored ({len(ema)} model_ema.* tensors); the trained weights are used")
    if ema and not has_unet:
        decoded = 0
        for k in ema:
            ldm = decode_ema_key(k)
            if ldm is not None:
                plan.append((k, Piece("unet/" + unet_ldm_to_diffusers(ldm))))
                seen.add(plan[-1][1].canonical)
                decoded += 1
        notes.append(f"only EMA weights present: UNet taken from {decoded} model_ema.* tensors")
    dupes = 0
    for k in keys:
        for piece in canonical_pieces(k, layout):
            if piece.canonical in seen:
                dupes += 1
                continue
            seen.add(piece.canonical)
            plan.append((k, piece))
    if dupes:
        notes.append(f"{dupes} tensors map to a canonical name already taken; the first was kept")
    return plan, notes


def _piece_view(raw: np.ndarray, piece: Piece) -> np.ndarray:
    if piece.rope_heads:
        raw = unpermute_rope_rows(raw, piece.rope_heads)
    if piece.rows is not None:
        i, of = piece.rows
        step = raw.shape[0] // of
        raw = raw[i * step:(i + 1) * step]
    if piece.transpose and raw.ndim == 2:
        raw = raw.T
    return raw


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Sketch products are many tall-skinny matrix products; a threaded BLAS spends more
    on waking threads than on arithmetic there, catastrophically so on a busy machine
    (measured 7x slower). threadpoolctl is optional: without it BLAS runs as configured."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def fingerprint_model(model: Any, *, k: int = DEFAULT_K, kind: str = "checkpoint") -> Fingerprint:
    """Fingerprint an opened :class:`assay.models.formats.ModelFile` (one tensor at a time)."""
    with _one_blas_thread():
        return _fingerprint_model(model, k=k, kind=kind)


def _fingerprint_model(model: Any, *, k: int, kind: str) -> Fingerprint:
    from .formats import DTYPES, to_float32
    from .formats.quantized import quantized_view

    # GPTQ / AWQ / bitsandbytes layers read as the float weights they stand for
    tensors, dequantized = quantized_view(model.tensors, model.array, model.metadata)
    layout = layout_for(tensors, model.metadata, model.format)
    plan, notes = _plan(tensors, layout)
    fp = Fingerprint(k=k, kind=kind, notes=notes, source={
        "file": Path(model.path).name, "format": model.format,
    })
    if layout.kind != "sd":
        fp.source["layout"] = layout.kind + (f":{layout.arch.lower()}" if layout.arch else "")
    skipped = 0
    quantized: dict[str, int] = {}
    decoders: dict[str, _Decoder] = {}
    files = _FileRows()
    for key, piece in plan:
        info = tensors[key]
        if info.dtype not in _FLOAT_DTYPES:
            # quantized weights (block-quantized GGUF, as llama.cpp computes with them;
            # GPTQ/AWQ/bitsandbytes/ONNX layers) are dequantized; other types are ids, counters
            if key not in dequantized and not (DTYPES.get(info.dtype) is None and model.format == "gguf"):
                skipped += 1
                continue
            try:
                values = dequantized[key]() if key in dequantized else model.array(key, convert=True)
            except ValueError as exc:
                raise DecodeError(info.source, f"quantized tensor {key!r} ({info.dtype}): {exc}") from exc
            shape, rows_of = _array_rows(_piece_view(values, piece))
            fp.tensors[piece.canonical] = _sketch_source(shape, rows_of, decoders.setdefault("dequantized", _Decoder("F32")),
                                                         k, piece.canonical, align=True)
            quantized[info.dtype] = quantized.get(info.dtype, 0) + 1
            continue
        decoder = decoders.setdefault(info.dtype, _Decoder(
            info.dtype, lambda c, d=info.dtype: to_float32(np.asarray(c), d)))
        npdt = np.dtype(DTYPES[info.dtype].numpy)
        if (info.entry is None and info.strides is None and piece.rows is None
                and not piece.transpose and not piece.rope_heads):
            shape, rows_of = info.shape, files.reader(info.source, info.offset, npdt, info.shape)
        else:
            shape, rows_of = _array_rows(_piece_view(model.array(key), piece))
        try:
            fp.tensors[piece.canonical] = _sketch_source(shape, rows_of, decoder, k, piece.canonical,
                                                         align=True)
        except OSError as exc:
            files.close()
            raise InputError(info.source, f"cannot read tensor {key!r}: {exc}") from exc
    files.close()
    if quantized:  # lineage allows for the rounding these types cause
        fp.source["quantized"] = dict(sorted(quantized.items()))
    if skipped:
        fp.notes.append(f"{skipped} non-float tensors (ids, counters) not fingerprinted")
    _note_nonfinite(fp)
    return fp


def fingerprint_arrays(
    arrays: Mapping[str, np.ndarray], *, k: int = DEFAULT_K, kind: str = "checkpoint",
    source: Mapping[str, Any] | None = None,
) -> Fingerprint:
    """Fingerprint in-memory float arrays keyed by any supported tensor naming."""
    with _one_blas_thread():
        return _fingerprint_arrays(arrays, k=k, kind=kind, source=source)


def _fingerprint_arrays(
    arrays: Mapping[str, np.ndarray], *, k: int, kind: str, source: Mapping[str, Any] | None
) -> Fingerprint:
    plan, notes = _plan(arrays)
    fp = Fingerprint(k=k, kind=kind, notes=notes, source=dict(source or {}))
    for key, piece in plan:
        arr = np.asarray(arrays[key])
        if arr.dtype.kind != "f":
            continue
        dtype = {2: "F16", 4: "F32"}.get(arr.dtype.itemsize, "F64")
        shape, rows_of = _array_rows(_piece_view(arr, piece))
        fp.tensors[piece.canonical] = _sketch_source(shape, rows_of, _Decoder(dtype), k, piece.canonical,
                                                     align=True)
    _note_nonfinite(fp)
    return fp


def fingerprint_file(path: Path | str, *, k: int = DEFAULT_K, kind: str = "checkpoint") -> Fingerprint:
    """Open ``path`` with the safe readers and fingerprint it. A LoRA file is turned
    into the fingerprint of its weight deltas (see :mod:`assay.models.lora_apply`)."""
    from .formats import open_model

    path = Path(path)
    with open_model(path) as model:
        from .lora_apply import is_lora, lora_fingerprint

        if is_lora(model.tensors):
            fp = lora_fingerprint(model, k=k)
        else:
            fp = fingerprint_model(model, k=k, kind=kind)
        try:
            size = path.stat().st_size if path.is_file() else sum(
                f.stat().st_size for f in path.rglob("*") if f.is_file())
        except OSError:
            size = None
        fp.source["size"] = size
    if not fp.tensors:
        raise InputError(path, NO_WEIGHTS)
    return fp


def _note_nonfinite(fp: Fingerprint) -> None:
    bad = [n for n, t in fp.tensors.items() if t.nonfinite]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        fp.notes.append(f"{len(bad)} tensors contain NaN/Inf and are not comparable: {shown}")
