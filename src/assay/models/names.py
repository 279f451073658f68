"""Canonical tensor names for models outside the Stable Diffusion family.

Lineage compares tensors by name, so a model must get the same names whatever file
it sits in: a Hugging Face checkpoint of a task model (``bert.encoder...``) or of its
base (``encoder...``), a ``torch.compile``/DataParallel state dict, a PEFT adapter's
target modules, or a llama.cpp GGUF conversion (``blk.0.attn_q``).

The common ground is llama.cpp's own naming: the ``gguf`` package maps the Hugging
Face names of every architecture it converts onto GGUF tensor names
(:mod:`gguf.tensor_mapping`), so a transformer's canonical name is its GGUF name where
that map knows it, and its Hugging Face name with wrapper prefixes removed
elsewhere. Everything lives under the ``model/`` prefix; the components shown to a
person are derived from those names (``embeddings``, ``layers``, ``output head``,
or the module's own first name), never the SD names ``unet``/``vae``.

llama.cpp stores the query and key projections of Llama-architecture models with
their rows permuted for its rotary embedding; those rows are put back in Hugging
Face order (:attr:`Layout.rope_heads`) so that a conversion compares as the same
weights.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: Why a file without weight tensors has no fingerprint (models/fingerprint.py says it; the CLI
#: says it too without loading the fingerprint code for such a file).
NO_WEIGHTS = "no floating-point weight tensors to fingerprint"

GENERIC = "model"

# Keys that only the Stable Diffusion family (LDM/SGM checkpoints, diffusers folders,
# their component files) uses; one of them makes a file "sd".
_SD_PREFIXES = (
    "model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner.embedders.",
    "model_ema.diffusion_model", "unet/", "vae/", "text_encoder/", "text_encoder_2/",
    "input_blocks.", "middle_block.", "output_blocks.", "down_blocks.", "up_blocks.", "mid_block.",
    "time_embed.", "time_embedding.", "quant_conv.", "post_quant_conv.", "text_model.",
    "encoder.down.", "decoder.up.", "encoder.down_blocks.", "decoder.up_blocks.", "encoder.mid.",
    "decoder.mid.", "encoder.conv_in.", "decoder.conv_in.",
)
# Wrappers that change every key of a state dict without changing the model.
_WRAPPERS = ("module.", "_orig_mod.", "base_model.model.")
# The base-model attribute of Hugging Face task classes (BertForX.bert, GPT2LMHeadModel.transformer,
# LlamaForCausalLM.model ...): a task checkpoint and its base checkpoint differ by it.
_BASE_PREFIXES = (
    "bert.", "roberta.", "xlm_roberta.", "distilbert.", "deberta.", "electra.", "albert.",
    "transformer.", "gpt_neox.", "model.", "language_model.model.", "language_model.",
)
# Candidate architectures for files that do not say theirs, most common first; the one
# whose map names the most tensors wins.
_CANDIDATE_ARCHS = (
    "LLAMA", "BERT", "GPT2", "GPTNEOX", "QWEN2", "PHI3", "GEMMA", "GEMMA2", "FALCON",
    "BLOOM", "MPT", "STARCODER", "STABLELM", "NOMIC_BERT", "T5", "GPTJ", "OLMO",
)
# Architectures whose llama.cpp conversion permutes the Q/K rows (LlamaModel.permute).
_ROPE_PERMUTED = {"llama"}
_LABELS = {
    "token_embd": "embeddings", "token_embd_norm": "embeddings", "position_embd": "embeddings",
    "token_types": "embeddings", "blk": "layers", "output": "output head",
    "output_norm": "output head", "cls": "classifier head", "enc": "encoder", "dec": "decoder",
}


def is_sd_layout(keys: Iterable[str]) -> bool:
    """True when any key is one that only Stable Diffusion checkpoints and folders use."""
    return any(k.startswith(_SD_PREFIXES) for k in keys)


def strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for w in _WRAPPERS:
            if key.startswith(w):
                key, changed = key[len(w):], True
    for p in _BASE_PREFIXES:
        if key.startswith(p) and len(key) > len(p):
            return key[len(p):]
    return key


def _n_blocks(keys: Iterable[str]) -> int:
    top = -1
    for k in keys:
        for m in re.finditer(r"\.(\d{1,4})\.", "." + k + "."):
            top = max(top, int(m.group(1)))
    return min(top + 1, 1024) if top >= 0 else 1


@lru_cache(maxsize=32)
def _name_map(arch: str, n_blocks: int) -> Any | None:
    try:
        from gguf.constants import MODEL_ARCH
        from gguf.tensor_mapping import get_tensor_name_map
    except ImportError:  # gguf is a dependency; without it names stay Hugging Face names
        return None
    try:
        return get_tensor_name_map(MODEL_ARCH[arch], n_blocks)
    except (KeyError, ValueError):
        return None


def _gguf_name(tmap: Any, key: str) -> str | None:
    try:
        return tmap.get_name(key, try_suffixes=(".weight", ".bias"))
    except (KeyError, ValueError, IndexError):  # unusual names the map's parser trips on
        return None


@dataclass
class Layout:
    """How one file's keys become canonical names (see :func:`layout_for`)."""

    kind: str  # "sd" | "generic" | "gguf"
    arch: str | None = None
    n_blocks: int = 1
    rope_heads: dict[str, int] = field(default_factory=dict)  # canonical -> heads to un-permute

    def generic_name(self, key: str) -> str:
        """``bert.encoder.layer.0.attention.self.query.weight`` -> ``model/blk.0.attn_q.weight``."""
        if self.kind == "gguf":
            return f"{GENERIC}/{key}"
        bare = strip_wrappers(key)
        tmap = _name_map(self.arch, self.n_blocks) if self.arch else None
        for candidate in (bare, key):
            mapped = _gguf_name(tmap, candidate) if tmap is not None else None
            if mapped:
                return f"{GENERIC}/{mapped}"
        return f"{GENERIC}/{bare}"


def layout_for(keys: Iterable[str], metadata: Mapping[str, Any] | None = None,
               fmt: str | None = None) -> Layout:
    """Decide how a file's tensors are named: the SD family, a GGUF file, or any other model."""
    keys = list(keys)
    if fmt == "gguf":
        arch = str((metadata or {}).get("general.architecture") or "")
        lay = Layout("gguf", arch or None)
        if arch in _ROPE_PERMUTED:
            heads = _int(metadata, f"{arch}.attention.head_count")
            kv = _int(metadata, f"{arch}.attention.head_count_kv") or heads
            if heads:
                for k in keys:
                    if k.endswith("attn_q.weight"):
                        lay.rope_heads[f"{GENERIC}/{k}"] = heads
                    elif k.endswith("attn_k.weight") and kv:
                        lay.rope_heads[f"{GENERIC}/{k}"] = kv
        return lay
    if is_sd_layout(keys):
        return Layout("sd")
    n = _n_blocks(keys)
    bare = [strip_wrappers(k) for k in keys]
    best, best_hits = None, 0
    for arch in _CANDIDATE_ARCHS:
        tmap = _name_map(arch, n)
        if tmap is None:
            continue
        hits = sum(1 for k in bare if _gguf_name(tmap, k))
        if hits > best_hits:
            best, best_hits = arch, hits
    return Layout("generic", best, n)


def _int(metadata: Mapping[str, Any] | None, key: str) -> int | None:
    v = (metadata or {}).get(key)
    if isinstance(v, list) and v:  # per-layer arrays: the conversion uses one value
        v = v[0]
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def unpermute_rope_rows(w: Any, heads: int) -> Any:
    """Undo llama.cpp's Q/K row interleave: within each head, its rows were reordered
    from (half, i) to (i, half)."""
    rows = w.shape[0]
    if heads <= 0 or rows % (2 * heads):
        return w
    d2 = rows // heads // 2
    return w.reshape(heads, d2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def component_label(canonical: str) -> str:
    """What a person calls the part of the model a canonical tensor belongs to."""
    comp, _, rest = canonical.partition("/")
    if comp != GENERIC:
        return comp
    head = rest.split(".", 1)[0]
    if not head or head.isdigit():
        return "model"
    return _LABELS.get(head, head)
