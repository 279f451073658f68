"""InvokeAI, three generations of metadata.

- v3+: PNG text ``invokeai_metadata`` (JSON: positive_prompt, negative_prompt,
  seed, steps, cfg_scale, scheduler, width, height, model{name, hash}, vae,
  loras[{model|lora: {name, hash}, weight}], app_version) and ``invokeai_graph``
  (the node graph). Model hashes read ``blake3:<hex>`` or ``sha256:<hex>``.
- v2: ``sd-metadata`` (JSON: model_weights, model_hash (SHA-256), app_version,
  image{prompt, steps, cfg_scale, seed, sampler, width, height}).
- v1: ``Dream``: ``"prompt" -s steps -S seed -W w -H h -C cfg -A sampler ...``.

In v1/v2 prompts, ``[bracketed]`` text is the negative prompt.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from typing import Any

from ...errors import DecodeError
from ...report.provenance import Evidence
from ..context import ImageContext, TextChunk
from ._common import (
    as_list,
    as_str,
    chunk_warnings,
    clean,
    describe_model,
    generation_claim,
    load_json,
    model_signal,
    size_str,
    to_float,
    to_int,
)

SOURCE = "invokeai"
_KEYS = ("invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream")
_DREAM_FLAGS = {
    "-s": "steps", "--steps": "steps", "-S": "seed", "--seed": "seed",
    "-W": "width", "--width": "width", "-H": "height", "--height": "height",
    "-C": "cfg_scale", "--cfg_scale": "cfg_scale", "-A": "sampler", "--sampler": "sampler",
    "-m": "model", "--model": "model", "-f": "strength", "--strength": "strength",
}  # fmt: skip


def evidence(ctx: ImageContext) -> list[Evidence]:
    chunks: dict[str, TextChunk] = {}
    for chunk in ctx.png_text_chunks():
        if chunk.key in _KEYS:
            chunks.setdefault(chunk.key, chunk)
    if not chunks:
        return []
    warnings = [w for c in chunks.values() for w in chunk_warnings(c)]
    errors: list[str] = []
    facts: dict[str, Any] | None = None
    used: list[TextChunk] = []
    # Richest format first; older chunks are kept by newer versions for compatibility.
    for key, parse in (("invokeai_metadata", _v3), ("sd-metadata", _v2), ("Dream", _v1)):
        chunk = chunks.get(key)
        if chunk is None:
            continue
        where = f"PNG {chunk.chunk_type} chunk {key!r}"
        try:
            facts = parse(ctx, chunk.text, where)
        except DecodeError as exc:
            errors.append(exc.reason)
            continue
        used.append(chunk)
        break
    graph = chunks.get("invokeai_graph")
    if graph is not None:
        where = f"PNG {graph.chunk_type} chunk 'invokeai_graph'"
        try:
            summary = _graph(ctx, graph.text, where)
        except DecodeError as exc:
            errors.append(exc.reason)
        else:
            facts = facts or {"generator": "InvokeAI"}
            facts["workflow"] = summary
            used.append(graph)
    if facts is None:
        raise DecodeError(ctx.path, "; ".join(errors))
    facts["locations"] = [f"png:{c.chunk_type}:{c.key}" for c in used]
    facts["also_present"] = sorted(set(chunks) - {c.key for c in used})
    facts["warnings"] = warnings + errors
    mode = str(facts.get("generation_mode") or "")
    if "inpaint" in mode or "outpaint" in mode:
        facts["edit"] = f"generation_mode {mode}"
    facts = clean(facts)
    where = " and ".join(f"PNG {c.chunk_type} chunk {c.key!r}" for c in used)
    claim, edit = generation_claim(facts)
    return [Evidence(source=SOURCE, claim=claim, strength="strong",
                     summary=f"{where} written by InvokeAI {describe_model(facts)}{edit}.",
                     facts=facts)]  # fmt: skip


def _name(model: object) -> str | None:
    if isinstance(model, dict):
        for k in ("name", "model_name"):
            if isinstance(model.get(k), str):
                return str(model[k])
    return model if isinstance(model, str) else None


def _v3(ctx: ImageContext, text: str, where: str) -> dict[str, Any]:
    meta = load_json(ctx, text, where)
    if not isinstance(meta, dict):
        raise DecodeError(ctx.path, f"{where}: JSON is not an object")
    signals: list[dict[str, Any]] = []

    def add(model: object, role: str) -> None:
        if isinstance(model, dict):
            sig = model_signal(model.get("hash"), role, _name(model))
            if sig is not None:
                signals.append(sig)

    model = meta.get("model")
    add(model, "checkpoint")
    vae = meta.get("vae")
    add(vae, "vae")
    loras = []
    for item in as_list(meta.get("loras")):
        if not isinstance(item, dict):
            continue
        lm = item.get("model") or item.get("lora")
        add(lm, "lora")
        entry = {"name": _name(lm), "weight": to_float(item.get("weight"))}
        if isinstance(lm, dict) and isinstance(lm.get("hash"), str):
            entry["hash"] = lm["hash"]
        loras.append(clean(entry))
    return {
        "generator": "InvokeAI",
        "version": as_str(meta.get("app_version")),
        "prompt": as_str(meta.get("positive_prompt")),
        "negative_prompt": as_str(meta.get("negative_prompt")),
        "seed": to_int(meta.get("seed")),
        "steps": to_int(meta.get("steps")),
        "scheduler": as_str(meta.get("scheduler")),
        "cfg_scale": to_float(meta.get("cfg_scale")),
        "size": size_str(meta.get("width"), meta.get("height")),
        "model": _name(model),
        "model_hash": as_str(model.get("hash")) if isinstance(model, dict) else None,
        "base_model": _base(model),
        "vae": _name(vae),
        "vae_hash": as_str(vae.get("hash")) if isinstance(vae, dict) else None,
        "loras": loras,
        "generation_mode": as_str(meta.get("generation_mode")),
        "model_signals": signals,
    }


def _base(model: object) -> str | None:
    # "base_model" in InvokeAI 3, "base" from 4 on.
    if not isinstance(model, dict):
        return None
    return as_str(model.get("base_model")) or as_str(model.get("base"))


def _split_negative(prompt: str) -> tuple[str, str]:
    negatives = re.findall(r"\[([^\[\]]*)\]", prompt)
    positive = re.sub(r"\[[^\[\]]*\]", "", prompt)
    return " ".join(positive.split()), ", ".join(n.strip() for n in negatives)


def _v2(ctx: ImageContext, text: str, where: str) -> dict[str, Any]:
    meta = load_json(ctx, text, where)
    if not isinstance(meta, dict):
        raise DecodeError(ctx.path, f"{where}: JSON is not an object")
    image = meta.get("image") if isinstance(meta.get("image"), dict) else {}
    raw_prompt = image.get("prompt")
    if isinstance(raw_prompt, list):
        raw_prompt = " ".join(
            as_str(p.get("prompt")) or "" for p in raw_prompt if isinstance(p, dict)
        )
    prompt, negative = _split_negative(raw_prompt) if isinstance(raw_prompt, str) else (None, None)
    model_name = meta.get("model_weights")
    sig = model_signal(meta.get("model_hash"), "checkpoint", model_name)
    return {
        "generator": "InvokeAI",
        "version": as_str(meta.get("app_version")),
        "prompt": prompt,
        "negative_prompt": negative,
        "seed": to_int(image.get("seed")),
        "steps": to_int(image.get("steps")),
        "sampler": as_str(image.get("sampler")),
        "cfg_scale": to_float(image.get("cfg_scale")),
        "size": size_str(image.get("width"), image.get("height")),
        "model": model_name,
        "model_hash": as_str(meta.get("model_hash")),
        "model_signals": [sig] if sig else [],
    }


def _v1(ctx: ImageContext, text: str, where: str) -> dict[str, Any]:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise DecodeError(ctx.path, f"{where}: unparsable Dream command line ({exc})") from None
    if not tokens:
        raise DecodeError(ctx.path, f"{where}: empty Dream command line")
    # The prompt is everything before the first option; options follow.
    first_opt = next((i for i, t in enumerate(tokens) if t in _DREAM_FLAGS or _is_option(t)),
                     len(tokens))  # fmt: skip
    prompt_parts = tokens[:first_opt]
    values: dict[str, str] = {}
    for i in range(first_opt, len(tokens) - 1):
        if tokens[i] in _DREAM_FLAGS:
            values.setdefault(_DREAM_FLAGS[tokens[i]], tokens[i + 1])
    if not prompt_parts or "steps" not in values and "seed" not in values:
        raise DecodeError(ctx.path, f"{where}: not an InvokeAI Dream command line")
    prompt, negative = _split_negative(" ".join(prompt_parts))
    return {
        "generator": "InvokeAI",
        "prompt": prompt,
        "negative_prompt": negative,
        "seed": to_int(values.get("seed")),
        "steps": to_int(values.get("steps")),
        "sampler": as_str(values.get("sampler")),
        "cfg_scale": to_float(values.get("cfg_scale")),
        "size": size_str(values.get("width"), values.get("height")),
        "model": as_str(values.get("model")),
    }


def _is_option(token: str) -> bool:
    # "-s" or "--steps" but not a negative number such as "-1".
    return len(token) > 1 and token[0] == "-" and not token[1:].replace(".", "").isdigit()


def _graph(ctx: ImageContext, text: str, where: str) -> dict[str, Any]:
    graph = load_json(ctx, text, where)
    if not isinstance(graph, dict):
        raise DecodeError(ctx.path, f"{where}: JSON is not an object")
    nodes = graph.get("nodes")
    items = list(nodes.values()) if isinstance(nodes, dict) else nodes if isinstance(nodes, list) else []
    types = Counter(t for n in items if isinstance(n, dict) and (t := as_str(n.get("type"))))
    return {"node_count": len(items), "node_types": dict(sorted(types.items()))}
