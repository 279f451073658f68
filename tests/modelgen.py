"""Random-weight test models with the real key names and shapes of public architectures.

Key sets are built from the architectures' published configurations (LDM/SGM UNet,
KL autoencoder, CLIP/OpenCLIP/T5 text encoders, MMDiT, Flux, Llama), never copied
from a checkpoint, and filled with random numbers: no trained weights, no content.

``scale`` shrinks every width *except* those that identification reads: the
cross-attention context width (attn2.to_k/to_v inputs), the ADM input width, the
text encoders' final-norm and embedding widths, the latent/input channel counts
and LoRA down-matrix input widths. ``scale=1`` gives real shapes (bench only).

Writers stream tensor data in chunks, so a multi-gigabyte file costs little memory.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

Spec = tuple[str, tuple[int, ...]]  # (dtype, shape)
Specs = dict[str, Spec]

_ITEM = {"F16": 2, "BF16": 2, "F32": 4, "I64": 8, "F64": 8, "U8": 1, "I32": 4}


def _w(n: int, scale: float) -> int:
    return max(4, int(round(n * scale)))


# ------------------------------------------------------------------ building blocks


def _norm(out: Specs, p: str, c: int, dt: str) -> None:
    out[p + "weight"] = (dt, (c,))
    out[p + "bias"] = (dt, (c,))


def _lin(out: Specs, p: str, o: int, i: int, dt: str, bias: bool = True) -> None:
    out[p + "weight"] = (dt, (o, i))
    if bias:
        out[p + "bias"] = (dt, (o,))


def _conv(out: Specs, p: str, o: int, i: int, k: int, dt: str) -> None:
    out[p + "weight"] = (dt, (o, i, k, k))
    out[p + "bias"] = (dt, (o,))


def _resblock(out: Specs, p: str, cin: int, cout: int, emb: int, dt: str) -> None:
    _norm(out, p + "in_layers.0.", cin, dt)
    _conv(out, p + "in_layers.2.", cout, cin, 3, dt)
    _lin(out, p + "emb_layers.1.", cout, emb, dt)
    _norm(out, p + "out_layers.0.", cout, dt)
    _conv(out, p + "out_layers.3.", cout, cout, 3, dt)
    if cin != cout:
        _conv(out, p + "skip_connection.", cout, cin, 1, dt)


def _spatial(out: Specs, p: str, c: int, depth: int, ctx: int, linear: bool, dt: str) -> None:
    _norm(out, p + "norm.", c, dt)
    for name in ("proj_in.", "proj_out."):
        if linear:
            _lin(out, p + name, c, c, dt)
        else:
            _conv(out, p + name, c, c, 1, dt)
    for d in range(depth):
        b = f"{p}transformer_blocks.{d}."
        for a, kv in (("attn1.", c), ("attn2.", ctx)):
            _lin(out, b + a + "to_q.", c, c, dt, bias=False)
            _lin(out, b + a + "to_k.", c, kv, dt, bias=False)
            _lin(out, b + a + "to_v.", c, kv, dt, bias=False)
            _lin(out, b + a + "to_out.0.", c, c, dt)
        _lin(out, b + "ff.net.0.proj.", 8 * c, c, dt)
        _lin(out, b + "ff.net.2.", c, 4 * c, dt)
        for n in ("norm1.", "norm2.", "norm3."):
            _norm(out, b + n, c, dt)


def ldm_unet(
    prefix: str = "model.diffusion_model.",
    *,
    channels: int = 320,
    mult: tuple[int, ...] = (1, 2, 4, 4),
    depth: tuple[int, ...] = (1, 1, 1, 0),
    middle_depth: int = 1,
    context: int = 768,
    in_channels: int = 4,
    adm: int | None = None,
    linear: bool = False,
    dt: str = "F16",
) -> Specs:
    """The openaimodel UNet of LDM/SGM, as its constructor lays out its modules."""
    out: Specs = {}
    c, emb = channels, 4 * channels
    _lin(out, prefix + "time_embed.0.", emb, c, dt)
    _lin(out, prefix + "time_embed.2.", emb, emb, dt)
    if adm is not None:
        _lin(out, prefix + "label_emb.0.0.", emb, adm, dt)
        _lin(out, prefix + "label_emb.0.2.", emb, emb, dt)
    _conv(out, prefix + "input_blocks.0.0.", c, in_channels, 3, dt)
    chans, ch, block = [c], c, 1
    for level, m in enumerate(mult):
        for _ in range(2):
            p = f"{prefix}input_blocks.{block}."
            _resblock(out, p + "0.", ch, m * c, emb, dt)
            ch = m * c
            if depth[level]:
                _spatial(out, p + "1.", ch, depth[level], context, linear, dt)
            chans.append(ch)
            block += 1
        if level != len(mult) - 1:
            _conv(out, f"{prefix}input_blocks.{block}.0.op.", ch, ch, 3, dt)
            chans.append(ch)
            block += 1
    _resblock(out, prefix + "middle_block.0.", ch, ch, emb, dt)
    _spatial(out, prefix + "middle_block.1.", ch, middle_depth, context, linear, dt)
    _resblock(out, prefix + "middle_block.2.", ch, ch, emb, dt)
    block = 0
    for level in reversed(range(len(mult))):
        for i in range(3):
            p = f"{prefix}output_blocks.{block}."
            skip = chans.pop()
            _resblock(out, p + "0.", ch + skip, mult[level] * c, emb, dt)
            ch = mult[level] * c
            n = 1
            if depth[level]:
                _spatial(out, p + "1.", ch, depth[level], context, linear, dt)
                n = 2
            if level and i == 2:
                _conv(out, f"{p}{n}.conv.", ch, ch, 3, dt)
            block += 1
    _norm(out, prefix + "out.0.", c, dt)
    _conv(out, prefix + "out.2.", 4, c, 3, dt)
    return out


def _vae_res(out: Specs, p: str, cin: int, cout: int, dt: str) -> None:
    _norm(out, p + "norm1.", cin, dt)
    _conv(out, p + "conv1.", cout, cin, 3, dt)
    _norm(out, p + "norm2.", cout, dt)
    _conv(out, p + "conv2.", cout, cout, 3, dt)
    if cin != cout:
        _conv(out, p + "nin_shortcut.", cout, cin, 1, dt)


def _vae_mid(out: Specs, p: str, c: int, dt: str) -> None:
    _vae_res(out, p + "block_1.", c, c, dt)
    _norm(out, p + "attn_1.norm.", c, dt)
    for n in ("q.", "k.", "v.", "proj_out."):
        _conv(out, p + "attn_1." + n, c, c, 1, dt)
    _vae_res(out, p + "block_2.", c, c, dt)


def ldm_vae(prefix: str = "first_stage_model.", *, ch: int = 128, z: int = 4, quant: bool = True, dt: str = "F16") -> Specs:
    """The KL autoencoder (ch_mult 1,2,4,4; two res blocks per level)."""
    out: Specs = {}
    mult = (1, 2, 4, 4)
    e, d = prefix + "encoder.", prefix + "decoder."
    _conv(out, e + "conv_in.", ch, 3, 3, dt)
    cin = ch
    for i, m in enumerate(mult):
        for j in range(2):
            _vae_res(out, f"{e}down.{i}.block.{j}.", cin, ch * m, dt)
            cin = ch * m
        if i != len(mult) - 1:
            _conv(out, f"{e}down.{i}.downsample.conv.", cin, cin, 3, dt)
    _vae_mid(out, e + "mid.", cin, dt)
    _norm(out, e + "norm_out.", cin, dt)
    _conv(out, e + "conv_out.", 2 * z, cin, 3, dt)
    _conv(out, d + "conv_in.", cin, z, 3, dt)
    _vae_mid(out, d + "mid.", cin, dt)
    for i in reversed(range(len(mult))):
        for j in range(3):
            _vae_res(out, f"{d}up.{i}.block.{j}.", cin, ch * mult[i], dt)
            cin = ch * mult[i]
        if i:
            _conv(out, f"{d}up.{i}.upsample.conv.", cin, cin, 3, dt)
    _norm(out, d + "norm_out.", cin, dt)
    _conv(out, d + "conv_out.", 3, cin, 3, dt)
    if quant:
        _conv(out, prefix + "quant_conv.", 2 * z, 2 * z, 1, dt)
        _conv(out, prefix + "post_quant_conv.", z, z, 1, dt)
    return out


def hf_clip(prefix: str, *, width: int = 768, layers: int = 12, vocab: int = 49408, scale: float = 1.0, dt: str = "F16") -> Specs:
    """Hugging Face CLIPTextModel; the final norm and embeddings keep ``width``."""
    out: Specs = {}
    w = width if scale == 1.0 else _w(width, scale)
    t = prefix + "text_model."
    out[t + "embeddings.token_embedding.weight"] = (dt, (vocab if scale == 1.0 else 16, width))
    out[t + "embeddings.position_embedding.weight"] = (dt, (77, width))
    for n in range(layers):
        p = f"{t}encoder.layers.{n}."
        for proj in ("q_proj.", "k_proj.", "v_proj.", "out_proj."):
            _lin(out, p + "self_attn." + proj, w, w, dt)
        _norm(out, p + "layer_norm1.", w, dt)
        _lin(out, p + "mlp.fc1.", 4 * w, w, dt)
        _lin(out, p + "mlp.fc2.", w, 4 * w, dt)
        _norm(out, p + "layer_norm2.", w, dt)
    _norm(out, t + "final_layer_norm.", width, dt)
    return out


def open_clip(prefix: str, *, width: int = 1024, layers: int = 24, vocab: int = 49408, scale: float = 1.0, dt: str = "F16") -> Specs:
    """OpenCLIP text tower (SD 2.x ViT-H, SDXL ViT-bigG); ln_final keeps ``width``."""
    out: Specs = {}
    w = width if scale == 1.0 else _w(width, scale)
    out[prefix + "token_embedding.weight"] = (dt, (vocab if scale == 1.0 else 16, width))
    out[prefix + "positional_embedding"] = (dt, (77, width))
    for n in range(layers):
        p = f"{prefix}transformer.resblocks.{n}."
        _norm(out, p + "ln_1.", w, dt)
        out[p + "attn.in_proj_weight"] = (dt, (3 * w, w))
        out[p + "attn.in_proj_bias"] = (dt, (3 * w,))
        _lin(out, p + "attn.out_proj.", w, w, dt)
        _norm(out, p + "ln_2.", w, dt)
        _lin(out, p + "mlp.c_fc.", 4 * w, w, dt)
        _lin(out, p + "mlp.c_proj.", w, 4 * w, dt)
    _norm(out, prefix + "ln_final.", width, dt)
    out[prefix + "text_projection"] = (dt, (width, width))
    out[prefix + "logit_scale"] = (dt, ())
    return out


def t5_encoder(prefix: str = "", *, width: int = 4096, blocks: int = 24, scale: float = 1.0, dt: str = "F16") -> Specs:
    out: Specs = {}
    w = width if scale == 1.0 else _w(width, scale)
    ff = 10240 if scale == 1.0 else _w(10240, scale)
    out[prefix + "shared.weight"] = (dt, (32128 if scale == 1.0 else 16, w))
    for n in range(blocks):
        p = f"{prefix}encoder.block.{n}.layer."
        for x in ("q", "k", "v", "o"):
            out[f"{p}0.SelfAttention.{x}.weight"] = (dt, (w, w))
        if n == 0:
            out[p + "0.SelfAttention.relative_attention_bias.weight"] = (dt, (32, 64))
        out[p + "0.layer_norm.weight"] = (dt, (w,))
        out[p + "1.DenseReluDense.wi_0.weight"] = (dt, (ff, w))
        out[p + "1.DenseReluDense.wi_1.weight"] = (dt, (ff, w))
        out[p + "1.DenseReluDense.wo.weight"] = (dt, (w, ff))
        out[p + "1.layer_norm.weight"] = (dt, (w,))
    out[prefix + "encoder.final_layer_norm.weight"] = (dt, (width,))
    return out


# ------------------------------------------------------------------ whole models


def sd15(scale: float = 1.0, *, in_channels: int = 4, ema: bool = False, dt: str = "F16") -> Specs:
    """SD 1.5 single-file checkpoint (LDM layout: UNet, VAE, CLIP-L)."""
    small = scale != 1.0
    specs = ldm_unet(channels=_w(320, scale) if small else 320, context=768, in_channels=in_channels, dt=dt)
    specs |= ldm_vae(ch=_w(128, scale) if small else 128, dt=dt)
    specs |= hf_clip("cond_stage_model.transformer.", width=768, layers=2 if small else 12, scale=scale, dt=dt)
    specs["cond_stage_model.transformer.text_model.embeddings.position_ids"] = ("I64", (1, 77))
    if ema:
        specs |= {
            "model_ema." + k.removeprefix("model.").replace(".", ""): v
            for k, v in specs.items()
            if k.startswith("model.diffusion_model.")
        }
        specs["model_ema.decay"] = ("F32", ())
        specs["model_ema.num_updates"] = ("I32", ())
    return specs


def sd2(scale: float = 1.0, *, dt: str = "F16") -> Specs:
    small = scale != 1.0
    specs = ldm_unet(channels=_w(320, scale) if small else 320, context=1024, linear=True, depth=(1, 1, 1, 0), dt=dt)
    specs |= ldm_vae(ch=_w(128, scale) if small else 128, dt=dt)
    specs |= open_clip("cond_stage_model.model.", width=1024, layers=2 if small else 23, scale=scale, dt=dt)
    return specs


def sdxl_base(scale: float = 1.0, *, dt: str = "F16") -> Specs:
    small = scale != 1.0
    specs = ldm_unet(
        channels=_w(320, scale) if small else 320,
        mult=(1, 2, 4),
        depth=(0, 1, 1) if small else (0, 2, 10),
        middle_depth=1 if small else 10,
        context=2048,
        adm=2816,
        linear=True,
        dt=dt,
    )
    specs |= ldm_vae(ch=_w(128, scale) if small else 128, dt=dt)
    specs |= hf_clip("conditioner.embedders.0.transformer.", width=768, layers=2 if small else 12, scale=scale, dt=dt)
    specs |= open_clip("conditioner.embedders.1.model.", width=1280, layers=2 if small else 32, scale=scale, dt=dt)
    return specs


def sdxl_refiner(scale: float = 1.0, *, dt: str = "F16") -> Specs:
    small = scale != 1.0
    specs = ldm_unet(
        channels=_w(384, scale) if small else 384,
        depth=(0, 1, 1, 0) if small else (0, 4, 4, 0),
        middle_depth=1 if small else 4,
        context=1280,
        adm=2560,
        linear=True,
        dt=dt,
    )
    specs |= ldm_vae(ch=_w(128, scale) if small else 128, dt=dt)
    specs |= open_clip("conditioner.embedders.0.model.", width=1280, layers=2 if small else 32, scale=scale, dt=dt)
    return specs


def flux(variant: str = "dev", scale: float = 1.0, *, prefix: str = "", dt: str = "BF16") -> Specs:
    """Flux.1 transformer in the BFL layout (19 double, 38 single blocks at scale 1)."""
    small = scale != 1.0
    h = _w(3072, scale) if small else 3072
    nd, ns = (2, 2) if small else (19, 38)
    out: Specs = {}
    p = prefix
    _lin(out, p + "img_in.", h, 64, dt)
    _lin(out, p + "txt_in.", h, 4096, dt)
    for emb, din in (("time_in.", 256), ("vector_in.", 768)) + ((("guidance_in.", 256),) if variant == "dev" else ()):
        _lin(out, p + emb + "in_layer.", h, din, dt)
        _lin(out, p + emb + "out_layer.", h, h, dt)
    head = 128 if not small else 8
    for n in range(nd):
        b = f"{p}double_blocks.{n}."
        for s in ("img", "txt"):
            _lin(out, f"{b}{s}_mod.lin.", 6 * h, h, dt)
            _lin(out, f"{b}{s}_attn.qkv.", 3 * h, h, dt)
            out[f"{b}{s}_attn.norm.query_norm.scale"] = (dt, (head,))
            out[f"{b}{s}_attn.norm.key_norm.scale"] = (dt, (head,))
            _lin(out, f"{b}{s}_attn.proj.", h, h, dt)
            _lin(out, f"{b}{s}_mlp.0.", 4 * h, h, dt)
            _lin(out, f"{b}{s}_mlp.2.", h, 4 * h, dt)
    for n in range(ns):
        b = f"{p}single_blocks.{n}."
        _lin(out, b + "linear1.", 7 * h, h, dt)
        _lin(out, b + "linear2.", h, 5 * h, dt)
        out[b + "norm.query_norm.scale"] = (dt, (head,))
        out[b + "norm.key_norm.scale"] = (dt, (head,))
        _lin(out, b + "modulation.lin.", 3 * h, h, dt)
    _lin(out, p + "final_layer.linear.", 64, h, dt)
    _lin(out, p + "final_layer.adaLN_modulation.1.", 2 * h, h, dt)
    return out


def sd3(variant: str = "3-medium", scale: float = 1.0, *, dt: str = "F16") -> Specs:
    """SD3 / 3.5 all-in-one checkpoint: MMDiT, 16-channel VAE, CLIP-L, CLIP-G, T5-XXL."""
    small = scale != 1.0
    depth = 38 if variant == "3.5-large" else 24
    h = _w(64 * depth, scale) if small else 64 * depth
    p = "model.diffusion_model."
    out: Specs = {}
    out[p + "x_embedder.proj.weight"] = (dt, (h, 16, 2, 2))
    out[p + "x_embedder.proj.bias"] = (dt, (h,))
    out[p + "pos_embed"] = (dt, (1, 36864 if not small else 16, h))
    _lin(out, p + "t_embedder.mlp.0.", h, 256, dt)
    _lin(out, p + "t_embedder.mlp.2.", h, h, dt)
    _lin(out, p + "y_embedder.mlp.0.", h, 2048, dt)
    _lin(out, p + "y_embedder.mlp.2.", h, h, dt)
    _lin(out, p + "context_embedder.", h, 4096, dt)
    for n in range(depth):
        for blk in ("context_block.", "x_block."):
            b = f"{p}joint_blocks.{n}.{blk}"
            _lin(out, b + "attn.qkv.", 3 * h, h, dt)
            _lin(out, b + "attn.proj.", h, h, dt)
            _lin(out, b + "adaLN_modulation.1.", 6 * h, h, dt)
            _lin(out, b + "mlp.fc1.", 4 * h, h, dt)
            _lin(out, b + "mlp.fc2.", h, 4 * h, dt)
            if variant == "3.5-medium" and blk == "x_block.":
                _lin(out, b + "attn2.qkv.", 3 * h, h, dt)
    _lin(out, p + "final_layer.linear.", 64, h, dt)
    out |= ldm_vae(ch=_w(128, scale) if small else 128, z=16, quant=False, dt=dt)
    out |= hf_clip("text_encoders.clip_l.transformer.", width=768, layers=1 if small else 12, scale=scale, dt=dt)
    out |= hf_clip("text_encoders.clip_g.transformer.", width=1280, layers=1 if small else 32, scale=scale, dt=dt)
    out |= t5_encoder("text_encoders.t5xxl.transformer.", blocks=1 if small else 24, scale=scale, dt=dt)
    return out


def llama(*, hidden: int = 64, layers: int = 2, vocab: int = 256, ff: int = 128, kv: int = 16, dt: str = "BF16") -> Specs:
    out: Specs = {"model.embed_tokens.weight": (dt, (vocab, hidden))}
    for n in range(layers):
        p = f"model.layers.{n}."
        out[p + "self_attn.q_proj.weight"] = (dt, (hidden, hidden))
        out[p + "self_attn.k_proj.weight"] = (dt, (kv, hidden))
        out[p + "self_attn.v_proj.weight"] = (dt, (kv, hidden))
        out[p + "self_attn.o_proj.weight"] = (dt, (hidden, hidden))
        out[p + "mlp.gate_proj.weight"] = (dt, (ff, hidden))
        out[p + "mlp.up_proj.weight"] = (dt, (ff, hidden))
        out[p + "mlp.down_proj.weight"] = (dt, (hidden, ff))
        out[p + "input_layernorm.weight"] = (dt, (hidden,))
        out[p + "post_attention_layernorm.weight"] = (dt, (hidden,))
    out["model.norm.weight"] = (dt, (hidden,))
    out["lm_head.weight"] = (dt, (vocab, hidden))
    return out


# ------------------------------------------------------------------ adapters

# (module name in diffusers naming, channels) for SD 1.x attention blocks
_SD1_ATTN = [(f"down_blocks_{b}_attentions_{a}", c) for b, c in ((0, 320), (1, 640), (2, 1280)) for a in (0, 1)]
_SD1_ATTN += [(f"up_blocks_{b}_attentions_{a}", c) for b, c in ((1, 1280), (2, 640), (3, 320)) for a in (0, 1, 2)]
_SD1_ATTN += [("mid_block_attentions_0", 1280)]
_SDXL_ATTN = [(f"input_blocks_{b}_1", c, d) for b, c, d in ((4, 640, 2), (5, 640, 2), (7, 1280, 10), (8, 1280, 10))]
_SDXL_ATTN += [(f"output_blocks_{b}_1", 1280, 10) for b in (0, 1, 2)] + [(f"output_blocks_{b}_1", 640, 2) for b in (3, 4, 5)]
_SDXL_ATTN += [("middle_block_1", 1280, 10)]


def _attn_modules(base: str, c: int, ctx: int, sep: str = "_") -> list[tuple[str, int, int]]:
    """(module, out, in) for the attention projections of one transformer block."""
    mods = []
    for a, kv in (("attn1", c), ("attn2", ctx)):
        for proj, i in (("to_q", c), ("to_k", kv), ("to_v", kv), ("to_out_0" if sep == "_" else "to_out.0", c)):
            mods.append((f"{base}{sep}{a}{sep}{proj}", c, i))
    return mods


def lora_modules(family: str, *, te: bool = True) -> list[tuple[str, int, int]]:
    """kohya module names with (out, in) widths of the layers they adapt."""
    mods: list[tuple[str, int, int]] = []
    if family == "sd1":
        for base, c in _SD1_ATTN:
            mods += _attn_modules(f"lora_unet_{base}_transformer_blocks_0", c, 768)
        if te:
            for n in range(12):
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    mods.append((f"lora_te_text_model_encoder_layers_{n}_self_attn_{proj}", 768, 768))
    elif family == "sdxl":
        for base, c, _d in _SDXL_ATTN:
            mods += _attn_modules(f"lora_unet_{base}_transformer_blocks_0", c, 2048)
        if te:
            for t, w, n_layers in (("te1", 768, 12), ("te2", 1280, 32)):
                for n in range(n_layers):
                    mods.append((f"lora_{t}_text_model_encoder_layers_{n}_self_attn_q_proj", w, w))
    elif family == "flux":
        for n in range(19):
            mods.append((f"lora_unet_double_blocks_{n}_img_attn_qkv", 9216, 3072))
            mods.append((f"lora_unet_double_blocks_{n}_txt_attn_qkv", 9216, 3072))
        for n in range(38):
            mods.append((f"lora_unet_single_blocks_{n}_linear1", 21504, 3072))
    else:
        raise ValueError(family)
    return mods


def kohya_lora(family: str, rank: int = 4, *, dt: str = "F16", te: bool = True, dora: bool = False) -> tuple[Specs, dict[str, np.ndarray]]:
    """A kohya LoRA; returns specs and the alpha scalars (values the file must hold)."""
    specs: Specs = {}
    values: dict[str, np.ndarray] = {}
    for mod, o, i in lora_modules(family, te=te):
        specs[mod + ".lora_down.weight"] = (dt, (rank, i))
        specs[mod + ".lora_up.weight"] = (dt, (o, rank))
        specs[mod + ".alpha"] = ("F16", ())
        values[mod + ".alpha"] = np.array(rank / 2, dtype=np.float16)
        if dora:
            specs[mod + ".dora_scale"] = (dt, (o, 1))
    return specs, values


def peft_lora(family: str, rank: int = 8, *, dt: str = "F32") -> Specs:
    """diffusers/PEFT naming: ``unet.<module>.lora_A.weight`` (rank, in) and lora_B."""
    specs: Specs = {}
    if family == "flux":
        mods = [(f"transformer.transformer_blocks.{n}.attn.{p}", 3072, 3072) for n in range(2) for p in ("to_q", "to_k", "to_v")]
        mods += [(f"transformer.single_transformer_blocks.{n}.attn.to_q", 3072, 3072) for n in range(2)]
    else:
        ctx = {"sd1": 768, "sdxl": 2048}[family]
        blocks = [("down_blocks.1.attentions.0", 640), ("up_blocks.1.attentions.0", 1280)]
        mods = [m for b, c in blocks for m in _attn_modules(f"unet.{b}.transformer_blocks.0", c, ctx, sep=".")]
    for mod, o, i in mods:
        specs[mod + ".lora_A.weight"] = (dt, (rank, i))
        specs[mod + ".lora_B.weight"] = (dt, (o, rank))
    return specs


def loha(rank: int = 4, *, dt: str = "F16") -> tuple[Specs, dict[str, np.ndarray]]:
    specs: Specs = {}
    values: dict[str, np.ndarray] = {}
    for mod, o, i in lora_modules("sd1", te=False):
        specs[mod + ".hada_w1_a"] = (dt, (o, rank))
        specs[mod + ".hada_w1_b"] = (dt, (rank, i))
        specs[mod + ".hada_w2_a"] = (dt, (o, rank))
        specs[mod + ".hada_w2_b"] = (dt, (rank, i))
        specs[mod + ".alpha"] = ("F16", ())
        values[mod + ".alpha"] = np.array(float(rank), dtype=np.float16)
    return specs, values


def lokr(rank: int = 4, factor: int = 8, *, dt: str = "F16") -> Specs:
    specs: Specs = {}
    for mod, o, i in lora_modules("sdxl", te=False):
        specs[mod + ".lokr_w1"] = (dt, (factor, factor))
        specs[mod + ".lokr_w2_a"] = (dt, (o // factor, rank))
        specs[mod + ".lokr_w2_b"] = (dt, (rank, i // factor))
        specs[mod + ".alpha"] = ("F16", ())
    return specs


# ------------------------------------------------------------------ writers


def _fill(dtype: str, n: int, rng: np.random.Generator) -> bytes:
    if dtype in ("F16", "F32", "F64"):
        arr = (rng.standard_normal(n, dtype=np.float32) * 0.02).astype({"F16": "<f2", "F32": "<f4", "F64": "<f8"}[dtype])
        return arr.tobytes()
    if dtype == "BF16":
        f = rng.standard_normal(n, dtype=np.float32) * 0.02
        return (f.view(np.uint32) >> 16).astype("<u2").tobytes()
    return bytes(n * _ITEM[dtype])


def safetensors_header(specs: Mapping[str, Spec], metadata: Mapping[str, str] | None = None) -> tuple[bytes, list[tuple[str, str, int]]]:
    """The header bytes (length prefix included) and (name, dtype, nbytes) in data order."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    order, offset = [], 0
    for name, (dtype, shape) in specs.items():
        n = int(np.prod(shape, dtype=np.int64)) * _ITEM[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        order.append((name, dtype, n))
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the reference writer aligns the data section to 8
    return struct.pack("<Q", len(raw)) + raw, order


def write_safetensors(
    path: Path,
    specs: Mapping[str, Spec],
    metadata: Mapping[str, str] | None = None,
    *,
    values: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    chunk: int = 8 * 1024 * 1024,
) -> Path:
    """Write random weights for ``specs`` (exact ``values`` where given), streaming."""
    rng = np.random.default_rng(seed)
    head, order = safetensors_header(specs, metadata)
    values = values or {}
    with open(path, "wb") as f:
        f.write(head)
        for name, dtype, nbytes in order:
            if name in values:
                data = np.ascontiguousarray(values[name]).tobytes()
                assert len(data) == nbytes, name
                f.write(data)
                continue
            left = nbytes
            while left:
                take = min(left, chunk)
                f.write(_fill(dtype, take // _ITEM[dtype], rng))
                left -= take
    return path


# ------------------------------------------------------------------ torch zip checkpoint

_TORCH_STORAGE = {"F16": "HalfStorage", "F32": "FloatStorage", "BF16": "BFloat16Storage", "I64": "LongStorage", "I32": "IntStorage"}


def _pstr(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def _pint(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def torch_state_pickle(specs: Mapping[str, Spec], *, wrap: str | None = "state_dict") -> bytes:
    """A data.pkl as torch.save writes it (protocol 2), built opcode by opcode:
    ``{wrap: OrderedDict(name -> _rebuild_tensor_v2(persistent storage, ...))}``."""
    out = bytearray(b"\x80\x02")
    if wrap:
        out += b"}" + _pstr(wrap)
    out += b"ccollections\nOrderedDict\n)R("  # OrderedDict() then MARK for SETITEMS
    for key, (name, (dtype, shape)) in enumerate(specs.items()):
        numel = int(np.prod(shape, dtype=np.int64))
        out += _pstr(name)
        out += b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(" + _pstr("storage") + f"ctorch\n{_TORCH_STORAGE[dtype]}\n".encode()
        out += _pstr(str(key)) + _pstr("cpu") + _pint(numel) + b"tQ"  # TUPLE, BINPERSID
        out += _pint(0)
        out += b"(" + b"".join(_pint(d) for d in shape) + b"t"
        strides, acc = [], 1
        for d in reversed(shape):
            strides.append(acc)
            acc *= d
        out += b"(" + b"".join(_pint(s) for s in reversed(strides)) + b"t"
        out += b"\x89ccollections\nOrderedDict\n)Rt"  # requires_grad False, hooks, TUPLE
        out += b"R"  # REDUCE
    out += b"u"  # SETITEMS
    if wrap:
        out += b"s"  # SETITEM into the outer dict
    out += b"."
    return bytes(out)


def write_torch_zip(path: Path, specs: Mapping[str, Spec], *, seed: int = 0, chunk: int = 8 * 1024 * 1024, archive: str = "archive") -> Path:
    """A torch.save zip (stored, not compressed) with one storage per tensor."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr(f"{archive}/data.pkl", torch_state_pickle(specs))
        z.writestr(f"{archive}/byteorder", "little")
        for key, (_name, (dtype, shape)) in enumerate(specs.items()):
            nbytes = int(np.prod(shape, dtype=np.int64)) * _ITEM[dtype]
            with z.open(f"{archive}/data/{key}", "w", force_zip64=nbytes > 2**31) as f:
                left = nbytes
                while left:
                    take = min(left, chunk)
                    f.write(_fill(dtype, take // _ITEM[dtype], rng))
                    left -= take
        z.writestr(f"{archive}/version", "3\n")
    return path


def total_bytes(specs: Iterable[tuple[str, Spec]] | Mapping[str, Spec]) -> int:
    items = specs.items() if isinstance(specs, Mapping) else specs
    return sum(int(np.prod(s, dtype=np.int64)) * _ITEM[d] for _n, (d, s) in items)


Builder = Callable[..., Specs]
