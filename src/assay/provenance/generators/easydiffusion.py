"""Easy Diffusion: its task's settings, one PNG text chunk per setting, under either of
its two spellings (the request's names: ``prompt``, ``use_stable_diffusion_model``...,
or the labels of its text format: ``Prompt``, ``Stable Diffusion model``...); in JPEG
and WebP the same settings as a JSON object in the EXIF UserComment.

Its model setting decides: ComfyUI also writes a ``prompt`` chunk (a JSON graph), so a
prompt alone is never taken for Easy Diffusion.
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from ...report.provenance import Evidence
from ..context import ImageContext
from ._common import as_str, generation_record, size_str, to_float, to_int, try_json

SOURCE = "easydiffusion"
# request name -> label of its text format (Easy Diffusion's TASK_TEXT_MAPPING)
_LABELS = {
    "prompt": "Prompt", "negative_prompt": "Negative Prompt", "seed": "Seed",
    "use_stable_diffusion_model": "Stable Diffusion model", "clip_skip": "Clip Skip",
    "use_vae_model": "VAE model", "sampler_name": "Sampler", "scheduler_name": "Scheduler",
    "width": "Width", "height": "Height", "num_inference_steps": "Steps",
    "guidance_scale": "Guidance Scale", "prompt_strength": "Prompt Strength",
    "use_lora_model": "LoRA model", "lora_alpha": "LoRA Strength",
}  # fmt: skip
_MODEL_KEYS = ("use_stable_diffusion_model", "Stable Diffusion model")


def _get(meta: dict[str, Any], key: str) -> Any:
    value = meta.get(key)
    return meta.get(_LABELS[key]) if value is None else value


def _is_easydiffusion(meta: dict[str, Any]) -> bool:
    prompt = _get(meta, "prompt")
    return (any(isinstance(meta.get(k), str) for k in _MODEL_KEYS) and isinstance(prompt, str)
            and not prompt.lstrip().startswith("{"))  # fmt: skip


def easydiffusion_facts(meta: dict[str, Any]) -> dict[str, Any]:
    lora = _get(meta, "use_lora_model")
    return {
        "generator": "Easy Diffusion",
        "prompt": as_str(_get(meta, "prompt")),
        "negative_prompt": as_str(_get(meta, "negative_prompt")),
        "seed": to_int(_get(meta, "seed")),
        "steps": to_int(_get(meta, "num_inference_steps")),
        "sampler": as_str(_get(meta, "sampler_name")),
        "scheduler": as_str(_get(meta, "scheduler_name")),
        "cfg_scale": to_float(_get(meta, "guidance_scale")),
        "size": size_str(_get(meta, "width"), _get(meta, "height")),
        "model": as_str(_get(meta, "use_stable_diffusion_model")),
        "vae": as_str(_get(meta, "use_vae_model")),
        "loras": [str(x)[:200] for x in lora[:50]] if isinstance(lora, list) else as_str(lora),
    }


def evidence(ctx: ImageContext) -> list[Evidence]:
    if ctx.format == "png":
        chunks = {}
        for chunk in ctx.png_text_chunks():
            chunks.setdefault(chunk.key, chunk)
        meta: Any = {k: c.text for k, c in chunks.items()}
        if not _is_easydiffusion(meta):
            return []
        keys = [k for k in ("prompt", "Prompt", *_MODEL_KEYS) if k in chunks]
        locations = [f"png:{chunks[k].chunk_type}:{k}" for k in keys]
        where = "PNG text chunks"
    else:
        try:
            comment = ctx.user_comment()
        except InputError:
            return []  # an unreadable EXIF block is reported once, as source "exif"
        if not comment or not comment.lstrip().startswith("{"):
            return []
        meta = try_json(comment)
        if not isinstance(meta, dict) or not _is_easydiffusion(meta):
            return []
        locations = ["exif:UserComment"]
        where = f"{ctx.format.upper()} EXIF UserComment"
    return [generation_record(SOURCE, "Easy Diffusion", where, easydiffusion_facts(meta), locations)]
