"""Architecture identification from tensor names and shapes (never from values).

A family is named only from facts the weights carry: the key layout, and dimensions
that differ between families (cross-attention context width, ADM input width,
text-encoder width, input channels, latent channels). Each fact votes; "certain"
needs at least three agreeing facts and no disagreeing one, conflicting facts give
"unknown". Widths are read from cheap tensors (final layer norms, embeddings,
cross-attention key projections) so scaled-down test models keep them real-sized.

Metadata is a claim by whoever wrote the file: it is used for GGUF (whose loader
depends on ``general.architecture``) and for the prediction type, and always
named as such in the reasons.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..report.model import ArchReport, Confidence, LlmInfo, LoraInfo

__all__ = ["ArchReport", "TensorSpec", "identify", "identify_components"]

TensorSpec = tuple[str, Sequence[int]]  # (dtype, shape)
Shape = tuple[int, ...]

CERTAIN_FACTS = 3


@dataclass
class _Votes:
    """Facts, each naming the answers it is compatible with. The answer is what every
    fact allows; confidence grows with the number of facts."""

    facts: list[tuple[frozenset[str], str]] = field(default_factory=list)

    def add(self, answer: str | Iterable[str], reason: str) -> None:
        allowed = frozenset([answer] if isinstance(answer, str) else answer)
        self.facts.append((allowed, reason))

    def verdict(self) -> tuple[str, Confidence, list[str]]:
        if not self.facts:
            return "unknown", "unknown", []
        reasons = [f"{r} -> {' or '.join(sorted(a))}" for a, r in self.facts]
        common = frozenset.intersection(*(a for a, _ in self.facts))
        if not common:
            return "unknown", "unknown", [*reasons, "facts disagree: no family claimed"]
        if len(common) > 1:
            return "unknown", "unknown", [*reasons, f"cannot tell apart: {', '.join(sorted(common))}"]
        (answer,) = common
        if answer.startswith("?"):  # only a shape no known family has
            return "unknown", "unknown", reasons
        n = len(self.facts)
        return answer, ("certain" if n >= CERTAIN_FACTS else "likely"), reasons


class _Index:
    def __init__(self, tensors: Mapping[str, Any]) -> None:
        self.shapes: dict[str, Shape] = {}
        self.dtypes: dict[str, str] = {}
        for name, spec in tensors.items():
            dtype, shape = _spec(spec)
            self.shapes[name] = shape
            self.dtypes[name] = dtype
        self.names = sorted(self.shapes)

    def shape(self, name: str) -> Shape | None:
        return self.shapes.get(name)

    def dim(self, name: str | None, axis: int) -> int | None:
        s = self.shapes.get(name) if name else None
        if not s:
            return None
        try:
            return s[axis]
        except IndexError:
            return None

    def has_prefix(self, prefix: str) -> bool:
        return any(n.startswith(prefix) for n in self.names)

    def first(self, pattern: str) -> str | None:
        rx = re.compile(pattern)
        return next((n for n in self.names if rx.search(n)), None)

    def count_blocks(self, prefix: str) -> int:
        """Number of distinct N in ``prefix + N.``."""
        rx = re.compile(re.escape(prefix) + r"(\d+)\.")
        return len({m.group(1) for n in self.names if (m := rx.match(n))})


def _spec(spec: Any) -> tuple[str, Shape]:
    if hasattr(spec, "shape"):
        return str(getattr(spec, "dtype", "?")), tuple(int(x) for x in spec.shape)
    dtype, shape = spec
    return str(dtype), tuple(int(x) for x in shape)


def identify(
    tensors: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    scalar: Callable[[str], float | None] | None = None,
) -> ArchReport:
    """Identify a model from ``name -> (dtype, shape)`` (or objects with ``.dtype`` and
    ``.shape``). ``scalar`` may read a scalar tensor's value (LoRA alphas); without it
    alphas come only from metadata."""
    meta = metadata or {}
    idx = _Index(tensors)
    report = ArchReport()
    _stats(idx, report)
    detectors = (_lora, _flux, _sd3, _unet_ldm, _unet_diffusers, _vae, _text_encoder, _llm, _gguf)
    for detect in detectors:
        if detect(idx, meta, report, scalar):
            break
    else:
        if idx.names:
            report.reasons.append("no known key layout matched")
    _components(idx, report)
    _prediction(idx, meta, report)
    return report


def _stats(idx: _Index, report: ArchReport) -> None:
    dtypes: Counter[str] = Counter()
    params: Counter[str] = Counter()
    for name, shape in idx.shapes.items():
        dtypes[idx.dtypes[name]] += 1
        params[idx.dtypes[name]] += math.prod(shape)
    report.dtypes = dict(sorted(dtypes.items()))
    report.params_by_dtype = dict(sorted(params.items()))
    report.total_params = sum(params.values())
    report.tensors = len(idx.shapes)


def _settle(report: ArchReport, votes: _Votes, kind: str, layout: str | None) -> None:
    family, confidence, reasons = votes.verdict()
    report.facts = len(votes.facts) if family != "unknown" else 0
    report.family = family
    report.confidence = confidence
    report.kind = kind if family != "unknown" else "unknown"
    report.layout = layout
    report.reasons.extend(reasons)


# ---------------------------------------------------------------- UNet (SD 1/2/XL)

# context width of cross-attention -> family; ADM (label_emb) input width -> family
_CONTEXT = {768: "stable-diffusion-1", 1024: "stable-diffusion-2", 2048: "stable-diffusion-xl", 1280: "stable-diffusion-xl"}
_ADM = {2816: "stable-diffusion-xl", 2560: "stable-diffusion-xl"}
_SD12 = ("stable-diffusion-1", "stable-diffusion-2")
_IN_CHANNELS = {9: "inpainting", 8: "instruct-pix2pix"}


def _unet_family(
    idx: _Index,
    votes: _Votes,
    *,
    conv_in: str,
    cross_attn_rx: str,
    adm_key: str,
    first_attn_block: str,
) -> tuple[int | None, int | None, int | None]:
    in_ch = idx.dim(conv_in, 1)
    channels = idx.dim(conv_in, 0)
    key = idx.first(cross_attn_rx)
    context = idx.dim(key, 1) if key else None
    adm = idx.dim(adm_key, 1)
    if context in _CONTEXT:
        votes.add(_CONTEXT[context], f"cross-attention context width {context} ({key})")
    elif context is not None:
        votes.add(f"?unet-context-{context}", f"cross-attention context width {context}, not a known family")
    if adm is not None:
        if adm in _ADM:
            votes.add(_ADM[adm], f"ADM label embedding input {adm} ({adm_key})")
        elif context == 1024:
            votes.add("stable-diffusion-2", f"ADM label embedding input {adm} with context 1024 (unCLIP)")
    if channels == 320:
        votes.add((*_SD12, "stable-diffusion-xl"), "320 model channels at the UNet input (SD 1.x/2.x/XL base)")
    elif channels == 384 and context == 1280:
        votes.add("stable-diffusion-xl", "384 model channels with context 1280 (SDXL refiner)")
    if idx.has_prefix(first_attn_block):
        votes.add(_SD12, "attention already in the first down block (SD 1.x/2.x layout)")
    elif context in (2048, 1280):
        votes.add("stable-diffusion-xl", "no attention in the first down block (SDXL layout)")
    return in_ch, channels, context


def _variant(report: ArchReport, in_ch: int | None, context: int | None, adm: int | None) -> None:
    parts = []
    if report.family == "stable-diffusion-xl":
        parts.append("refiner" if context == 1280 or adm == 2560 else "base")
    if report.family == "stable-diffusion-2" and adm is not None:
        parts.append("unclip")
    if in_ch in _IN_CHANNELS:
        parts.append(_IN_CHANNELS[in_ch])
        report.reasons.append(f"UNet input has {in_ch} channels -> {_IN_CHANNELS[in_ch]}")
    elif in_ch is not None and in_ch != 4:
        parts.append(f"{in_ch}-channel input")
    report.variant = " ".join(parts) or None
    report.in_channels = in_ch
    report.context_dim = context


def _text_encoder_votes(idx: _Index, votes: _Votes) -> None:
    """Bundled text encoders of single-file checkpoints, by prefix and width."""
    w = _clip_width(idx, "cond_stage_model.transformer.")
    if w is not None:
        if w == 768:
            votes.add("stable-diffusion-1", "CLIP ViT-L text encoder (width 768) in cond_stage_model.transformer")
        else:
            votes.add(f"?te-{w}", f"HF CLIP text encoder of width {w} in cond_stage_model")
    w = _openclip_width(idx, "cond_stage_model.model.")
    if w is not None:
        if w == 1024:
            votes.add("stable-diffusion-2", "OpenCLIP ViT-H text encoder (width 1024) in cond_stage_model.model")
        else:
            votes.add(f"?te-{w}", f"OpenCLIP text encoder of width {w} in cond_stage_model.model")
    w0 = _clip_width(idx, "conditioner.embedders.0.transformer.")
    g1 = _openclip_width(idx, "conditioner.embedders.1.model.")
    g0 = _openclip_width(idx, "conditioner.embedders.0.model.")
    if w0 == 768 and g1 == 1280:
        votes.add("stable-diffusion-xl", "conditioner embedders: CLIP-L (768) and OpenCLIP-G (1280)")
    elif g0 == 1280 and w0 is None:
        votes.add("stable-diffusion-xl", "conditioner embedder 0 is OpenCLIP-G (1280) alone (refiner)")
    elif w0 is not None or g1 is not None or g0 is not None:
        votes.add("?te-other", f"conditioner embedders of widths {w0}, {g1 or g0}")


def _clip_width(idx: _Index, prefix: str) -> int | None:
    for key in (
        "text_model.final_layer_norm.weight",
        "final_layer_norm.weight",
        "text_model.embeddings.token_embedding.weight",
        "embeddings.token_embedding.weight",
    ):
        s = idx.shape(prefix + key)
        if s:
            return s[-1]
    return None


def _openclip_width(idx: _Index, prefix: str) -> int | None:
    for key in ("ln_final.weight", "positional_embedding", "token_embedding.weight"):
        s = idx.shape(prefix + key)
        if s:
            return s[-1]
    return None


def _unet_ldm(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    prefix = next(
        (p for p in ("model.diffusion_model.", "") if idx.shape(p + "input_blocks.0.0.weight")),
        None,
    )
    if prefix is None or not idx.has_prefix(prefix + "output_blocks."):
        return False
    votes = _Votes()
    votes_layout = "UNet in the original LDM/SGM key layout (input_blocks/middle_block/output_blocks)"
    in_ch, _channels, context = _unet_family(
        idx,
        votes,
        conv_in=prefix + "input_blocks.0.0.weight",
        cross_attn_rx=re.escape(prefix) + r"(input|output)_blocks\.\d+\.1\.transformer_blocks\.0\.attn2\.to_k\.weight$",
        adm_key=prefix + "label_emb.0.0.weight",
        first_attn_block=prefix + "input_blocks.1.1.",
    )
    _text_encoder_votes(idx, votes)
    report.reasons.append(votes_layout)
    _settle(report, votes, "checkpoint" if prefix else "diffusion-model", "ldm")
    _variant(report, in_ch, context, idx.dim(prefix + "label_emb.0.0.weight", 1))
    return True


def _unet_diffusers(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    prefix = next((p for p in ("", "unet.") if idx.shape(p + "conv_in.weight")), None)
    if prefix is None or not idx.has_prefix(prefix + "down_blocks.") or not idx.has_prefix(prefix + "up_blocks."):
        return False
    if not idx.has_prefix(prefix + "time_embedding."):
        return False
    votes = _Votes()
    in_ch, _c, context = _unet_family(
        idx,
        votes,
        conv_in=prefix + "conv_in.weight",
        cross_attn_rx=re.escape(prefix) + r"(down|up)_blocks\.\d+\.attentions\.\d+\.transformer_blocks\.0\.attn2\.to_k\.weight$",
        adm_key=prefix + "add_embedding.linear_1.weight",
        first_attn_block=prefix + "down_blocks.0.attentions.",
    )
    report.reasons.append("UNet in the diffusers key layout (down_blocks/mid_block/up_blocks)")
    _settle(report, votes, "diffusion-model", "diffusers")
    _variant(report, in_ch, context, idx.dim(prefix + "add_embedding.linear_1.weight", 1))
    return True


# ---------------------------------------------------------------- DiT families


def _dit_prefix(idx: _Index, probe: str) -> str | None:
    for p in ("model.diffusion_model.", "", "diffusion_model.", "transformer."):
        if idx.has_prefix(p + probe):
            return p
    return None


def _flux(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    p = _dit_prefix(idx, "double_blocks.0.")
    diffusers = False
    if p is None or not idx.has_prefix(p + "single_blocks."):
        p = _dit_prefix(idx, "single_transformer_blocks.0.")
        if p is None or not idx.has_prefix(p + "transformer_blocks."):
            return False
        diffusers = True
    votes = _Votes()
    if diffusers:
        votes.add("flux-1", "diffusers Flux layout: transformer_blocks + single_transformer_blocks")
        img, txt, vec = p + "x_embedder.weight", p + "context_embedder.weight", p + "time_text_embed.text_embedder.linear_1.weight"
        guidance = idx.has_prefix(p + "time_text_embed.guidance_embedder.")
        n_double, n_single = idx.count_blocks(p + "transformer_blocks."), idx.count_blocks(p + "single_transformer_blocks.")
    else:
        votes.add("flux-1", "BFL Flux layout: double_blocks (MMDiT) + single_blocks")
        img, txt, vec = p + "img_in.weight", p + "txt_in.weight", p + "vector_in.in_layer.weight"
        guidance = idx.has_prefix(p + "guidance_in.")
        n_double, n_single = idx.count_blocks(p + "double_blocks."), idx.count_blocks(p + "single_blocks.")
    in_dim, txt_dim, vec_dim = idx.dim(img, 1), idx.dim(txt, 1), idx.dim(vec, 1)
    if in_dim in (64, 128, 384):
        votes.add("flux-1", f"image input projection takes {in_dim} features (16-channel latent, 2x2 patches)")
    if txt_dim == 4096:
        votes.add("flux-1", "text input projection takes 4096 features (T5-XXL)")
    if vec_dim == 768:
        votes.add("flux-1", "pooled vector input takes 768 features (CLIP-L)")
    bundled = idx.has_prefix("text_encoders.") or idx.has_prefix("vae.") or idx.has_prefix("first_stage_model.")
    _settle(report, votes, "checkpoint" if bundled else "diffusion-model", "diffusers" if diffusers else "bfl")
    report.reasons.append(f"{n_double} double-stream and {n_single} single-stream blocks")
    report.in_channels = in_dim
    report.context_dim = txt_dim
    if idx.has_prefix(p + "distilled_guidance_layer."):
        report.variant = "chroma"
        report.reasons.append("distilled_guidance_layer present (Chroma)")
    elif guidance:
        report.variant = "dev"
        report.reasons.append("guidance embedding present: guidance-distilled (dev; schnell has none)")
    else:
        report.variant = "schnell"
        report.reasons.append("no guidance embedding: timestep-distilled (schnell or a fine-tune of it)")
    if in_dim == 384:
        report.variant += " fill"
        report.reasons.append("image input of 384 features: image + mask conditioning (Fill)")
    if report.family == "flux-1":
        report.prediction = "flow (rectified flow, implied by the Flux architecture)"
    return True


def _sd3(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    p = _dit_prefix(idx, "joint_blocks.0.")
    diffusers = False
    if p is None:
        p = _dit_prefix(idx, "transformer_blocks.0.attn.add_q_proj")
        if p is None or not idx.has_prefix(p + "pos_embed."):
            return False
        diffusers = True
    votes = _Votes()
    if diffusers:
        votes.add("stable-diffusion-3", "diffusers SD3 layout: joint transformer_blocks with pos_embed")
        x, ctx, y = p + "pos_embed.proj.weight", p + "context_embedder.weight", p + "time_text_embed.text_embedder.linear_1.weight"
        depth = idx.count_blocks(p + "transformer_blocks.")
        attn2 = idx.first(re.escape(p) + r"transformer_blocks\.\d+\.attn2\.") is not None
    else:
        votes.add("stable-diffusion-3", "MMDiT layout: joint_blocks with context_block and x_block")
        x, ctx, y = p + "x_embedder.proj.weight", p + "context_embedder.weight", p + "y_embedder.mlp.0.weight"
        depth = idx.count_blocks(p + "joint_blocks.")
        attn2 = idx.first(re.escape(p) + r"joint_blocks\.\d+\.x_block\.attn2\.") is not None
    latent, ctx_dim, pooled = idx.dim(x, 1), idx.dim(ctx, 1), idx.dim(y, 1)
    if latent == 16:
        votes.add("stable-diffusion-3", "patch embedding takes a 16-channel latent")
    if ctx_dim == 4096:
        votes.add("stable-diffusion-3", "context embedder takes 4096 features (T5-XXL / padded CLIP)")
    if pooled == 2048:
        votes.add("stable-diffusion-3", "pooled embedding takes 2048 features (CLIP-L 768 + CLIP-G 1280)")
    _settle(report, votes, "checkpoint" if idx.has_prefix("text_encoders.") else "diffusion-model", "diffusers" if diffusers else "sgm")
    report.context_dim = ctx_dim
    report.in_channels = latent
    if depth == 38:
        report.variant = "3.5-large"
    elif depth == 24:
        report.variant = "3.5-medium" if attn2 else "3-medium"
    else:
        report.variant = f"depth {depth}"
    report.reasons.append(
        f"{depth} joint blocks" + (" with a second attention in x blocks (MMDiT-X, SD 3.5 Medium)" if attn2 else "")
    )
    if report.family == "stable-diffusion-3":
        report.prediction = "flow (rectified flow, implied by the SD3 architecture)"
    return True


# ---------------------------------------------------------------- VAE and text encoders


def _vae(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    p = next((q for q in ("", "first_stage_model.", "vae.") if idx.shape(q + "decoder.conv_in.weight")), None)
    if p is None or not idx.has_prefix(p + "encoder."):
        return False
    if idx.has_prefix("model.diffusion_model.") or idx.has_prefix("down_blocks."):
        return False
    votes = _Votes()
    diffusers = idx.has_prefix(p + "encoder.down_blocks.")
    votes.add("vae", "encoder/decoder key layout of an autoencoder (" + ("diffusers" if diffusers else "LDM") + ")")
    z = idx.dim(p + "decoder.conv_in.weight", 1)
    moments = idx.dim(p + "encoder.conv_out.weight", 0)
    if z is not None and moments == 2 * z:
        votes.add("vae", f"encoder outputs mean and log-variance of a {z}-channel latent")
    quant = idx.shape(p + "quant_conv.weight") is not None
    if quant:
        votes.add("vae", "quant_conv / post_quant_conv present (KL autoencoder of SD 1.x/2.x/XL/SD3 lineage)")
    _settle(report, votes, "vae", "diffusers" if diffusers else "ldm")
    if z == 4:
        report.variant = "4-channel latent (SD 1.x/2.x/XL; their VAEs share shapes and differ only in weights)"
    elif z == 16:
        report.variant = "16-channel latent (SD3 / Flux)"
    elif z is not None:
        report.variant = f"{z}-channel latent"
    report.in_channels = z
    return True


def _text_encoder(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    votes = _Votes()
    for prefix in ("", "text_model.", "transformer.", "text_encoder."):
        layers = idx.count_blocks(prefix + "text_model.encoder.layers.") or idx.count_blocks(prefix + "encoder.layers.")
        w = _clip_width(idx, prefix)
        if layers and w:
            name = {768: "clip-l", 1280: "clip-g", 1024: "openclip-h"}.get(w)
            votes.add("text-encoder", f"HF CLIP text-model layout, {layers} layers")
            if name:
                votes.add("text-encoder", f"width {w} -> {name}")
                report.variant = name
            break
    else:
        t5_layers = idx.count_blocks("encoder.block.")
        w = idx.dim("encoder.final_layer_norm.weight", 0)
        if t5_layers and w and idx.first(r"^encoder\.block\.0\.layer\.0\.SelfAttention\.q\.weight$"):
            votes.add("text-encoder", f"T5 encoder layout, {t5_layers} blocks")
            if w == 4096:
                votes.add("text-encoder", "width 4096 -> T5-XXL (v1.1)")
                report.variant = "t5xxl"
            else:
                report.variant = f"t5 (width {w})"
        else:
            w = _openclip_width(idx, "")
            layers = idx.count_blocks("transformer.resblocks.")
            if not (w and layers):
                return False
            votes.add("text-encoder", f"OpenCLIP layout, {layers} residual blocks")
            report.variant = {1024: "openclip-h", 1280: "openclip-g"}.get(w, f"openclip (width {w})")
    _settle(report, votes, "text-encoder", "hf")
    return True


# ---------------------------------------------------------------- language models


def _llm(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    embed = next((k for k in ("model.embed_tokens.weight", "embed_tokens.weight") if idx.shape(k)), None)
    if embed is not None:
        base = embed.removesuffix("embed_tokens.weight")
        layers = idx.count_blocks(base + "layers.")
        if not layers or not idx.shape(base + "layers.0.self_attn.q_proj.weight"):
            return False
        shape = idx.shape(embed) or ()
        if len(shape) != 2:
            return False
        vocab, hidden = shape
        votes = _Votes()
        votes.add("llm", "decoder layout: embed_tokens + layers.N.self_attn.q_proj (Llama-style)")
        if idx.shape(base + "layers.0.mlp.gate_proj.weight"):
            votes.add("llm", "gated MLP (gate_proj/up_proj/down_proj)")
        if idx.shape(base + "layers.0.self_attn.q_norm.weight"):
            arch, why = "qwen3", "per-head q_norm/k_norm (Qwen3)"
        elif idx.shape(base + "layers.0.pre_feedforward_layernorm.weight"):
            arch, why = "gemma2", "pre/post feed-forward norms (Gemma 2/3)"
        elif idx.shape(base + "layers.0.self_attn.q_proj.bias"):
            arch, why = "qwen2", "biases on q/k/v projections (Qwen2)"
        elif vocab >= 256000 and not idx.shape("lm_head.weight"):
            arch, why = "gemma", "tied embeddings with a 256k vocabulary (Gemma)"
        else:
            arch, why = "llama", "no family-specific tensors: Llama layout (Llama and Mistral share it)"
        votes.add("llm", why)
        _settle(report, votes, "llm", "hf")
        report.variant = arch
        report.llm = LlmInfo(architecture=arch, hidden_size=hidden, layers=layers, vocab_size=vocab)
        if vocab == 128256:
            report.reasons.append("vocabulary 128256 is the Llama 3 tokenizer's size")
        return True
    word = next((k for k in ("bert.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight") if idx.shape(k)), None)
    if word is None:
        return False
    base = word.removesuffix("embeddings.word_embeddings.weight")
    layers = idx.count_blocks(base + "encoder.layer.")
    if not layers or not idx.shape(base + "encoder.layer.0.attention.self.query.weight"):
        return False
    shape = idx.shape(word) or ()
    if len(shape) != 2:
        return False
    vocab, hidden = shape
    votes = _Votes()
    votes.add("llm", "BERT layout: embeddings.word_embeddings + encoder.layer.N.attention.self")
    if idx.shape(base + "embeddings.token_type_embeddings.weight"):
        votes.add("llm", "token-type embeddings (BERT)")
    _settle(report, votes, "llm", "hf")
    report.variant = "bert"
    report.llm = LlmInfo(architecture="bert", hidden_size=hidden, layers=layers, vocab_size=vocab)
    return True


def _gguf(idx: _Index, meta: Mapping[str, Any], report: ArchReport, _s: Any) -> bool:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        return False
    votes = _Votes()
    votes.add("llm", f"GGUF general.architecture = {arch!r} (metadata the loader depends on)")
    blocks = idx.count_blocks("blk.")
    declared = _int(meta.get(f"{arch}.block_count"))
    if blocks and declared == blocks:
        votes.add("llm", f"{blocks} blk.N tensor groups match {arch}.block_count")
    hidden = _int(meta.get(f"{arch}.embedding_length"))
    emb = idx.shape("token_embd.weight")
    vocab = _int(meta.get(f"{arch}.vocab_size"))
    tokens = meta.get("tokenizer.ggml.tokens")
    if vocab is None and isinstance(tokens, list | tuple):
        vocab = len(tokens)
    elif vocab is None and isinstance(tokens, Mapping):  # the reader summarises long arrays
        vocab = _int(tokens.get("length"))
    if emb and hidden in emb:
        votes.add("llm", f"token_embd.weight {list(emb)} has the declared width {hidden}")
        if vocab is None and len(emb) == 2:
            vocab = emb[0] if emb[1] == hidden else emb[1]
    _settle(report, votes, "llm", "gguf")
    report.variant = arch
    report.llm = LlmInfo(
        architecture=arch,
        hidden_size=hidden,
        layers=declared or blocks or None,
        vocab_size=vocab,
        attention_heads=_int(meta.get(f"{arch}.attention.head_count")),
        kv_heads=_int(meta.get(f"{arch}.attention.head_count_kv")),
        context_length=_int(meta.get(f"{arch}.context_length")),
    )
    return True


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit() and len(v) < 20:
        return int(v)
    return None


# ---------------------------------------------------------------- LoRA and LyCORIS

_LORA_PART = re.compile(
    r"^(?P<mod>.+?)[._](?P<part>lora_down|lora_up|lora_A|lora_B|lora\.down|lora\.up|lora_mid"
    r"|hada_w[12]_[ab]|hada_t[12]|lokr_w[12](?:_[ab])?|lokr_t[12]|alpha|dora_scale"
    r"|lora_magnitude_vector)(?:\.(?:default\.)?weight)?$"
)
_ADAPTER_PARTS = ("lora_down", "lora_A", "lora.down", "hada_w1_a", "lokr_w1", "lokr_w1_a", "lokr_w2", "lokr_w2_a")
_KINDS = re.compile(
    r"(attn[12][._]to_(?:q|k|v|out)|attn[12][._]processor[._]to_(?:q|k|v|out)"
    r"|self_attn[._](?:q|k|v|out)_proj|mlp[._]fc[12]|ff[._]net[._][02](?:[._]proj)?|proj_in|proj_out"
    r"|conv_shortcut|time_emb_proj|emb_layers|in_layers|out_layers|skip_connection"
    r"|img_attn[._](?:qkv|proj)|txt_attn[._](?:qkv|proj)|img_mlp[._][02]|txt_mlp[._][02]|linear[12]|modulation[._]lin"
    r"|attn[._](?:to_(?:q|k|v|out)|add_(?:q|k|v)_proj|to_add_out)|(?:q|k|v|o|gate|up|down)_proj)"
)


def _lora(
    idx: _Index, meta: Mapping[str, Any], report: ArchReport, scalar: Callable[[str], float | None] | None
) -> bool:
    modules: dict[str, dict[str, str]] = {}
    for name in idx.names:
        m = _LORA_PART.match(name)
        if m:
            modules.setdefault(m.group("mod"), {})[m.group("part")] = name
    modules = {k: v for k, v in modules.items() if any(p in v for p in _ADAPTER_PARTS)}
    if not modules:
        return False
    fmts: Counter[str] = Counter()
    ranks: Counter[int] = Counter()
    alphas: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    dora = False
    meta_alpha = meta.get("ss_network_alpha")
    for mod, parts in modules.items():
        fmts[_lora_format(mod, parts)] += 1
        rank = _lora_rank(idx, parts)
        if rank:
            ranks[rank] += 1
        dora = dora or "dora_scale" in parts or "lora_magnitude_vector" in parts
        alpha = None
        if "alpha" in parts and scalar is not None:
            try:
                alpha = scalar(parts["alpha"])
            except Exception:  # a broken alpha tensor must not hide the rest
                alpha = None
        if alpha is not None and math.isfinite(alpha):
            alphas[f"{alpha:g}"] += 1
        targets[_lora_target(mod)] += 1
        k = _KINDS.findall(mod)
        kinds[(k[-1] if k else mod.replace(".", "_").rsplit("_", 1)[-1]).replace(".", "_")] += 1
    if not alphas and isinstance(meta_alpha, str) and meta_alpha:
        alphas[f"{meta_alpha} (ss_network_alpha metadata)"] = len(modules)
    votes = _lora_base(idx, modules)
    base, conf, reasons = votes.verdict()
    fmt = fmts.most_common(1)[0][0] if len(fmts) == 1 else "mixed"
    report.family = "lora"
    report.kind = "lora"
    report.layout = fmt
    report.confidence = "certain" if len(modules) >= CERTAIN_FACTS else "likely"
    report.variant = base if base != "unknown" else None
    report.lora = LoraInfo(
        format=fmt,
        dora=dora,
        ranks=dict(sorted(ranks.items())),
        alphas=dict(alphas.most_common()),
        modules=len(modules),
        targets=dict(targets.most_common()),
        target_kinds=dict(kinds.most_common(20)),
        base_family=base,
        base_confidence=conf,
    )
    report.reasons.append(f"{len(modules)} adapted modules with {fmt} adapter tensors")
    report.reasons.extend(f"base: {r}" for r in reasons)
    return True


def _lora_format(mod: str, parts: Mapping[str, str]) -> str:
    if any(p.startswith("hada_") for p in parts):
        return "loha"
    if any(p.startswith("lokr_") for p in parts):
        return "lokr"
    if "lora_A" in parts:
        return "peft"
    if "lora.down" in parts:
        return "diffusers-legacy"
    if mod.startswith("lora_"):
        return "kohya"
    return "lora"


def _lora_rank(idx: _Index, parts: Mapping[str, str]) -> int | None:
    for part, axis in (("lora_down", 0), ("lora_A", 0), ("lora.down", 0), ("hada_w1_b", 0), ("lokr_w2_a", 1), ("lokr_w1_a", 1)):
        if part in parts:
            return idx.dim(parts[part], axis)
    return None


def _lora_target(mod: str) -> str:
    for prefix, target in (
        ("lora_unet_", "unet"),
        ("lora_te1_", "text_encoder_1"),
        ("lora_te2_", "text_encoder_2"),
        ("lora_te3_", "text_encoder_3"),
        ("lora_te_", "text_encoder"),
        ("unet.", "unet"),
        ("transformer.", "transformer"),
        ("text_encoder_2.", "text_encoder_2"),
        ("text_encoder.", "text_encoder"),
        ("lora_transformer_", "transformer"),
        ("diffusion_model.", "transformer"),
        ("base_model.model.", "model"),
    ):
        if mod.startswith(prefix):
            if target == "unet" and re.search(r"(double|single|joint)_blocks", mod):
                return "transformer"
            return target
    return mod.split(".", 1)[0].split("_", 1)[0] or "other"


_LORA_CROSS = re.compile(r"attn2[._](?:processor[._])?to_[kv](?:_lora)?$")
_LORA_TE_Q = re.compile(r"(?:self_attn[._]q_proj|mlp[._]fc1)$")


def _lora_base(idx: _Index, modules: Mapping[str, Mapping[str, str]]) -> _Votes:
    """Which base model a LoRA fits: key names and the input width of its down matrices."""
    votes = _Votes()
    names = list(modules)
    joined = "\n".join(names)

    def in_width(parts: Mapping[str, str]) -> int | None:
        for part in ("lora_down", "lora_A", "lora.down"):
            if part in parts:
                s = idx.shape(parts[part])
                return s[1] if s and len(s) >= 2 else None
        if "hada_w1_b" in parts:
            s = idx.shape(parts["hada_w1_b"])
            return s[1] if s and len(s) >= 2 else None
        return None

    if re.search(r"(double_blocks|single_blocks|single_transformer_blocks)", joined):
        votes.add("flux-1", "adapts double/single stream blocks (Flux naming)")
        w = next((in_width(p) for m, p in modules.items() if re.search(r"(img_attn[._]qkv|attn[._]to_q)$", m)), None)
        if w == 3072:
            votes.add("flux-1", "attention inputs of width 3072 (Flux hidden size)")
        elif w:
            votes.add(f"?dit-{w}", f"attention inputs of width {w}")
        if re.search(r"single_(transformer_)?blocks", joined) and re.search(r"(double_blocks|transformer\.transformer_blocks)", joined):
            votes.add("flux-1", "both double- and single-stream blocks adapted")
        return votes
    if "joint_blocks" in joined:
        votes.add("stable-diffusion-3", "adapts joint_blocks (SD3 MMDiT naming)")
    ctx = Counter(w for m, p in modules.items() if _LORA_CROSS.search(m) and (w := in_width(p)))
    for w, n in ctx.items():
        family = _CONTEXT.get(w, f"?context-{w}")
        votes.add(family, f"{n} cross-attention key/value adapters take context width {w}")
    if re.search(r"lora_unet_(down|up)_blocks_\d+_attentions|lora_unet_mid_block_attentions", joined):
        votes.add(_SD12, "kohya names in the diffusers layout (down_blocks), as sd-scripts writes for SD 1.x/2.x")
    if re.search(r"lora_unet_(input|output)_blocks|lora_unet_middle_block", joined):
        votes.add("stable-diffusion-xl", "kohya names in the SGM layout (input_blocks), as sd-scripts writes for SDXL")
    if re.search(r"lora_te[12]_|(^|\n)text_encoder_2\.", joined):
        votes.add("stable-diffusion-xl", "two text encoders adapted (te1/te2)")
    te = Counter(
        w
        for m, p in modules.items()
        if _lora_target(m) in ("text_encoder", "text_encoder_1") and _LORA_TE_Q.search(m) and (w := in_width(p))
    )
    for w in te:
        fam = {768: None, 1024: "stable-diffusion-2"}.get(w, f"?te-{w}")
        if w == 768:
            # CLIP-L is SD 1.x's only encoder and SDXL's first; only the former is named lora_te_
            if any(m.startswith("lora_te_") or m.startswith("text_encoder.") for m in names) and not re.search(
                r"lora_te[12]_|text_encoder_2\.", joined
            ):
                votes.add("stable-diffusion-1", "a single text encoder of width 768 (CLIP-L)")
        elif fam:
            votes.add(fam, f"text-encoder adapters take width {w}")
    return votes


# ---------------------------------------------------------------- components, prediction

_COMPONENT_PREFIXES = (
    ("model_ema.", "ema"),
    ("first_stage_model.", "vae"),
    ("vae.", "vae"),
    ("cond_stage_model.transformer.", "clip_l"),
    ("cond_stage_model.model.", "openclip_h"),
    ("conditioner.embedders.0.transformer.", "clip_l"),
    ("conditioner.embedders.1.model.", "openclip_g"),
    ("conditioner.embedders.0.model.", "openclip_g"),
    ("text_encoders.clip_l.", "clip_l"),
    ("text_encoders.clip_g.", "clip_g"),
    ("text_encoders.t5xxl.", "t5xxl"),
)


def _components(idx: _Index, report: ArchReport) -> None:
    main = {
        "stable-diffusion-1": "unet",
        "stable-diffusion-2": "unet",
        "stable-diffusion-xl": "unet",
        "stable-diffusion-3": "transformer",
        "flux-1": "transformer",
        "vae": "vae",
        "text-encoder": report.variant or "text_encoder",
        "llm": "llm",
        "lora": "lora",
    }.get(report.family, "other")
    params: Counter[str] = Counter()
    for name, shape in idx.shapes.items():
        comp = next((c for p, c in _COMPONENT_PREFIXES if name.startswith(p)), None)
        if comp is None:
            comp = main if not name.startswith(("betas", "alphas", "sqrt_", "log_one", "posterior_", "model_ema")) else "schedule"
        params[comp] += math.prod(shape)
    report.params = dict(params.most_common())
    report.components = [c for c in params if c not in ("schedule", "other")]
    report.ema = "ema" in params
    if report.ema:
        report.reasons.append("model_ema.* tensors present: EMA weights are stored alongside")


def _prediction(idx: _Index, meta: Mapping[str, Any], report: ArchReport) -> None:
    if "v_pred" in idx.shapes:
        report.prediction = "v (the file carries ComfyUI's v_pred marker tensor)"
        return
    if report.prediction.startswith("flow"):
        return
    claimed = meta.get("modelspec.prediction_type")
    if isinstance(claimed, str) and claimed:
        report.prediction = f"not detectable from weights; metadata claims {claimed!r}"
    elif report.family == "stable-diffusion-2":
        report.prediction = "not detectable from weights (SD 2.x exists in eps and v variants)"


# ---------------------------------------------------------------- folders

_TE_FAMILY = {
    ("clip-l",): "stable-diffusion-1",
    ("openclip-h",): "stable-diffusion-2",
    ("clip-g", "clip-l"): "stable-diffusion-xl",
}


def identify_components(components: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]]) -> ArchReport:
    """Identify a folder model (diffusers pipeline, PEFT adapter) from its components,
    ``name -> (tensors, metadata)``. The denoiser (unet/transformer) or the adapter
    names the family; the text encoders' widths are one more fact for or against it."""
    parts = {name: identify(t, m) for name, (t, m) in components.items()}
    main_name = next((n for n in ("unet", "transformer", "adapter", "prior", "decoder") if n in parts), None)
    if main_name is None and parts:
        main_name = max(parts, key=lambda n: parts[n].total_params)
    if main_name is None:
        return ArchReport(reasons=["folder holds no weights"])
    report = parts[main_name].model_copy(deep=True)
    report.reasons = [f"{main_name}: {r}" for r in report.reasons]
    report.params = {n: p.total_params for n, p in parts.items()}
    report.components = list(parts)
    report.total_params = sum(report.params.values())
    report.tensors = sum(p.tensors for p in parts.values())
    dtypes: Counter[str] = Counter()
    by_dtype: Counter[str] = Counter()
    for p in parts.values():
        dtypes.update(p.dtypes)
        by_dtype.update(p.params_by_dtype)
    report.dtypes, report.params_by_dtype = dict(sorted(dtypes.items())), dict(sorted(by_dtype.items()))
    encoders = tuple(sorted(p.variant or "?" for n, p in parts.items() if n.startswith("text_encoder") and p.family == "text-encoder"))
    for n, p in parts.items():
        if n != main_name and p.family != "unknown":
            report.reasons.append(f"{n}: {p.family}" + (f" ({p.variant})" if p.variant else ""))
    implied = _TE_FAMILY.get(encoders)
    if encoders and report.family.startswith("stable-diffusion-") and report.family != "stable-diffusion-3":
        if implied == report.family:
            report.reasons.append(f"text encoders {', '.join(encoders)} fit {implied}")
            report.facts += 1
            if report.facts >= CERTAIN_FACTS:
                report.confidence = "certain"
        else:
            report.reasons.append(f"text encoders {', '.join(encoders)} do not fit {report.family}: facts disagree")
            report.family, report.confidence, report.variant = "unknown", "unknown", None
    if report.family in ("stable-diffusion-1", "stable-diffusion-2", "stable-diffusion-xl", "stable-diffusion-3", "flux-1"):
        report.kind = "checkpoint" if len(parts) > 1 else report.kind
    return report
