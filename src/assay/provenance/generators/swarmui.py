"""SwarmUI: a JSON object ``{"sui_image_params": {...}, "sui_models": [...]}`` in
PNG text ``parameters`` or the EXIF UserComment (JPEG/WebP); StableSwarmUI before
0.5.8 put it in the EXIF ``Model`` tag (0x0110), where a camera names itself.

``sui_models`` lists the model files used with ``0x``-prefixed SHA-256 hashes.
"""

from __future__ import annotations

from typing import Any

from ...errors import DecodeError, InputError
from ...report.provenance import Evidence
from ..context import TAG_MODEL, ImageContext
from ._common import (
    as_list,
    as_str,
    chunk_warnings,
    clean,
    generation_record,
    load_json,
    model_signal,
    size_str,
    to_float,
    to_int,
)

SOURCE = "swarmui"
_ROLES = {"model": "checkpoint", "refinermodel": "checkpoint", "loras": "lora", "vae": "vae"}


def evidence(ctx: ImageContext) -> list[Evidence]:
    candidates: list[tuple[str, str, str, list[str]]] = []
    for chunk in ctx.png_text_chunks():
        if chunk.key == "parameters":
            candidates.append((chunk.text, f"PNG {chunk.chunk_type} chunk 'parameters'",
                               f"png:{chunk.chunk_type}:parameters", chunk_warnings(chunk)))  # fmt: skip
            break
    try:
        comment = ctx.user_comment()
    except InputError:
        comment = None
    if comment:
        candidates.append((comment, f"{ctx.format.upper()} EXIF UserComment",
                           "exif:UserComment", []))  # fmt: skip
    try:
        model = ctx.exif().get(TAG_MODEL)
    except InputError:
        model = None  # an unreadable EXIF block is reported once, as source "exif"
    if isinstance(model, str) and "sui_image_params" in model[:4096]:
        candidates.append((model.strip("\x00"), f"{ctx.format.upper()} EXIF Model (StableSwarmUI before 0.5.8)",
                           "exif:Model", []))  # fmt: skip
    out = []
    for text, where, location, warnings in candidates:
        if "sui_image_params" not in text[:4096]:
            continue
        meta = load_json(ctx, text, where)
        if not isinstance(meta, dict) or not isinstance(meta.get("sui_image_params"), dict):
            raise DecodeError(ctx.path, f"{where}: 'sui_image_params' is not a JSON object")
        out.append(generation_record(SOURCE, "SwarmUI", where, swarm_facts(meta), [location], warnings))
    return out


def swarm_facts(meta: dict[str, Any]) -> dict[str, Any]:
    p = meta["sui_image_params"]
    signals = []
    for m in as_list(meta.get("sui_models")):
        if isinstance(m, dict):
            role = _ROLES.get((as_str(m.get("param")) or "").lower(), "checkpoint")
            sig = model_signal(m.get("hash"), role, m.get("name") if isinstance(m.get("name"), str) else None)
            if sig is not None:
                signals.append(sig)
    loras = p.get("loras") if isinstance(p.get("loras"), list) else []
    weights = p.get("loraweights") if isinstance(p.get("loraweights"), list) else []
    lora_facts = [
        clean({"name": n, "weight": to_float(weights[i]) if i < len(weights) else None})
        for i, n in enumerate(loras)
        if isinstance(n, str)
    ]
    model = as_str(p.get("model"))
    model_hash = next((s["value"] for s in signals if s["role"] == "checkpoint"), None)
    return {
        "generator": "SwarmUI",
        "version": as_str(p.get("swarm_version")),
        "prompt": as_str(p.get("prompt")),
        "negative_prompt": as_str(p.get("negativeprompt")),
        "seed": to_int(p.get("seed")),
        "steps": to_int(p.get("steps")),
        "sampler": as_str(p.get("sampler")),
        "scheduler": as_str(p.get("scheduler")),
        "cfg_scale": to_float(p.get("cfgscale")),
        "size": size_str(p.get("width"), p.get("height")),
        "model": model,
        "model_hash": model_hash,
        "vae": as_str(p.get("vae")),
        "loras": lora_facts,
        "model_signals": signals,
    }
