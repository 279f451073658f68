"""ComfyUI: the node graph it saves with every image.

PNG: text chunks ``prompt`` (the executed API graph: ``{node_id: {class_type,
inputs}}``) and ``workflow`` (the editor graph: ``{nodes: [{type,
widgets_values}], links}``). WebP/AVIF: EXIF Model (0x0110) = ``prompt:{json}``,
Make (0x010F) = ``workflow:{json}``, further extras on the tags just below —
which is why a camera source must ask ``ImageContext.make_model_is_workflow()``.

The graph is summarised, not stored: node types, checkpoint/LoRA/VAE loader file
names, and the first sampler's settings with the prompts wired into it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, NamedTuple

from ...errors import DecodeError, InputError
from ...report.provenance import Evidence
from ..context import TAG_MAKE, TAG_MODEL, ImageContext
from ._common import (
    as_str,
    chunk_warnings,
    clean,
    describe_model,
    generation_claim,
    load_json,
    size_str,
    to_float,
    to_int,
)

SOURCE = "comfyui"


class Payload(NamedTuple):
    text: str
    where: str  # for messages: "PNG tEXt chunk 'prompt'"
    location: str  # for facts["locations"]: "png:tEXt:prompt"
    warnings: list[str]


_CKPT_KEYS = ("ckpt_name", "unet_name", "model_name")
_SAMPLER_SEED_KEYS = ("seed", "noise_seed")
# EXIF tags ComfyUI fills, from Model downwards (it decrements the tag per extra item).
_EXIF_TAGS = (TAG_MODEL, TAG_MAKE, 0x010E, 0x010D)


def _png_payloads(ctx: ImageContext) -> dict[str, Payload]:
    """PNG text chunks 'prompt' and 'workflow' holding a JSON object's start: ComfyUI's."""
    payloads: dict[str, Payload] = {}
    for chunk in ctx.png_text_chunks():
        if chunk.key in ("prompt", "workflow") and chunk.key not in payloads:
            text = chunk.text.lstrip()
            if text.startswith("{"):
                payloads[chunk.key] = Payload(
                    text, f"PNG {chunk.chunk_type} chunk {chunk.key!r}",
                    f"png:{chunk.chunk_type}:{chunk.key}", chunk_warnings(chunk),
                )  # fmt: skip
    return payloads


def claimed_locations(ctx: ImageContext) -> set[str]:
    """ComfyUI's chunks, readable or not: one it cannot parse is its error, whatever broke
    it, never re-read as prompt-like text in no known format (where parameter words in
    the broken JSON would make a weak AI claim that one nested too deep does not)."""
    return {p.location for p in _png_payloads(ctx).values()}


def evidence(ctx: ImageContext) -> list[Evidence]:
    payloads = _png_payloads(ctx)
    for key, payload in exif_payloads(ctx).items():
        payloads.setdefault(key, payload)
    if not payloads:
        return []

    facts: dict[str, Any] = {"generator": "ComfyUI"}
    problems: list[str] = []
    errors: list[str] = []
    locations: list[str] = []
    wheres: list[str] = []
    graph_api = graph_ui = None
    for key in ("prompt", "workflow"):
        if key not in payloads:
            continue
        payload = payloads[key]
        where = payload.where
        problems.extend(payload.warnings)
        try:
            value = load_json(ctx, payload.text, where)
        except DecodeError as exc:
            errors.append(exc.reason)
            continue
        if not isinstance(value, dict):
            errors.append(f"{where}: JSON is not an object")
            continue
        locations.append(payload.location)
        wheres.append(where)
        if key == "prompt":
            graph_api = value
        else:
            graph_ui = value
    if graph_api is None and graph_ui is None:
        raise DecodeError(ctx.path, "; ".join(errors))
    problems.extend(errors)

    if graph_api is not None:
        facts.update(summarize_api_graph(graph_api))
    if graph_ui is not None:
        ui = summarize_ui_graph(graph_ui)
        if graph_api is None:
            facts.update(ui)
        else:
            facts.setdefault("workflow", {})["editor_node_count"] = ui["workflow"]["node_count"]
    node_types = facts.get("workflow", {}).get("node_types", {})
    masked = sorted(t for t in node_types if t in _MASK_NODES or "Inpaint" in t)
    # Inpainting edits an input image only when the graph loads one: a detailer pass over
    # the graph's own txt2img output leaves a wholly generated image.
    loaded = sorted(t for t in node_types if _LOADS_PICTURES.search(t) and not _LOADS_MODEL.search(t))
    if masked and loaded:
        facts["edit"] = f"inpainting nodes: {', '.join(masked)} on a loaded image ({', '.join(loaded)})"
    facts["locations"] = locations
    facts["warnings"] = problems
    if loaded and not any("sampler" in t.lower() for t in node_types):
        # ComfyUI saves its graph with every image, also one that only loaded a picture
        # and upscaled, cropped or recoloured it: with no sampler nothing was generated.
        # Nodes that run a model over faces or regions (face swap, restoration, detailers)
        # still make it an AI edit of that picture.
        ai_nodes = sorted(t for t in node_types if _AI_EDIT_NODE.search(t))
        what = f"loads an image ({', '.join(loaded)}), runs no sampler"
        if ai_nodes:
            what += f" but AI edit nodes ({', '.join(ai_nodes)})"
        facts.update(field="ComfyUI graph", value=what)  # how the verdict cites it
        facts = clean(facts)
        tail = ("an AI edit of an input image (a face or region replaced or regenerated)"
                if ai_nodes else "it processed an input image") + ", which says nothing of how that image was made."
        summary = f"{' and '.join(wheres)} written by ComfyUI records a graph that {what}: {tail}"
        return [Evidence(source=SOURCE, claim="ai-edited" if ai_nodes else "edited",
                         strength="strong", summary=summary, facts=facts)]  # fmt: skip
    facts = clean(facts)
    claim, edit = generation_claim(facts)
    summary = f"{' and '.join(wheres)} written by ComfyUI {describe_model(facts)}{edit}"
    return [Evidence(source=SOURCE, claim=claim, strength="strong",
                     summary=summary + ".", facts=facts)]  # fmt: skip


# Nodes that bring pictures in: LoadImage, "Load Image (as Mask)", VHS_LoadVideo,
# LoadImagesFromDir, ETN_LoadImageBase64 ... but not a model loader (ImageOnlyCheckpointLoader).
_LOADS_PICTURES = re.compile(r"load.{0,24}(image|video|frame)|(image|video).{0,24}load", re.IGNORECASE)
_LOADS_MODEL = re.compile(r"model|checkpoint|lora|vae|clip|upscale|controlnet|ipadapter", re.IGNORECASE)
_AI_EDIT_NODE = re.compile(
    r"swap|reactor|roop|detailer|inpaint|facerestore|restoreface|codeformer|gfpgan|pulid|instantid"
    # ComfyUI's API nodes: a remote model edits or regenerates the loaded picture
    r"|openai|gptimage|dall.?e|gemini|imagen|ideogram|recraft|stability|luma|kling|runway"
    r"|fluxpro|fluxkontext|bfl|bytedance|seedream|seededit|minimax|pika|vidu|veo",
    re.IGNORECASE,
)
# Nodes that regenerate only a masked part of an input image (core ComfyUI); any node
# type naming "Inpaint" (VAEEncodeForInpaint, InpaintModelConditioning, custom packs) too.
_MASK_NODES = {"SetLatentNoiseMask", "ImagePadForOutpaint"}


def exif_payloads(ctx: ImageContext) -> dict[str, Payload]:
    """ComfyUI ``key:{json}`` items held in EXIF string tags, by key."""
    try:
        tags = ctx.exif()
    except InputError:
        return {}
    out: dict[str, Payload] = {}
    for tag in _EXIF_TAGS:
        value = tags.get(tag)
        if not isinstance(value, str):
            continue
        key, sep, rest = value.partition(":")
        key = key.strip().lower()
        if sep and key in ("prompt", "workflow") and rest.lstrip().startswith("{"):
            where = f"EXIF tag 0x{tag:04X} '{key}:'"
            out.setdefault(key, Payload(rest, where, f"exif:0x{tag:04X}", []))
    return out


def summarize_api_graph(graph: dict[str, Any]) -> dict[str, Any]:
    """Facts from the executed graph: loaders, first sampler, its prompts."""
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}
    types = Counter(t for n in nodes.values() if (t := as_str(n.get("class_type"))))
    checkpoints, loras, vaes, upscalers = [], [], [], []
    samplers: list[tuple[str, dict[str, Any]]] = []
    for node_id, node in sorted(nodes.items(), key=lambda kv: _id_key(kv[0])):
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        ctype = as_str(node.get("class_type")) or ""
        if "Upscale" in ctype and isinstance(inputs.get("model_name"), str):
            upscalers.append(inputs["model_name"])  # an upscaler (ESRGAN ...), no generator
        else:
            for k in _CKPT_KEYS:
                if isinstance(inputs.get(k), str) and ("Loader" in ctype or "Checkpoint" in ctype):
                    checkpoints.append(inputs[k])
        # Video wrappers' loaders (WanVideoModelLoader, HyVideoModelLoader) name the file
        # in 'model', which in every other node is a link to a model, never a string.
        if "ModelLoader" in ctype and isinstance(inputs.get("model"), str):
            checkpoints.append(inputs["model"])
        if isinstance(inputs.get("lora_name"), str):
            lora: dict[str, Any] = {"name": inputs["lora_name"]}
            if to_float(inputs.get("strength_model")) is not None:
                lora["weight"] = to_float(inputs.get("strength_model"))
            loras.append(lora)
        if isinstance(inputs.get("vae_name"), str):
            vaes.append(inputs["vae_name"])
        if "Sampler" in ctype and any(k in inputs for k in ("steps", "cfg", "sampler_name")):
            samplers.append((node_id, inputs))

    facts: dict[str, Any] = {
        "model": checkpoints[0] if checkpoints else None,
        "vae": vaes[0] if vaes else None,
        "loras": loras,
        "workflow": clean({
            "node_count": len(nodes),
            "node_types": dict(sorted(types.items())),
            "checkpoints": checkpoints,
            "loras": [x["name"] for x in loras],
            "vaes": vaes,
            "upscale_models": upscalers,
            "sampler_nodes": len(samplers),
        }),
    }  # fmt: skip
    if samplers:
        _, inp = samplers[0]
        facts["seed"] = next(
            (to_int(inp[k]) for k in _SAMPLER_SEED_KEYS if to_int(inp.get(k)) is not None), None
        )
        facts["steps"] = to_int(inp.get("steps"))
        facts["cfg_scale"] = to_float(inp.get("cfg"))
        facts["sampler"] = inp.get("sampler_name") if isinstance(inp.get("sampler_name"), str) else None
        facts["scheduler"] = inp.get("scheduler") if isinstance(inp.get("scheduler"), str) else None
        positive, negative = inp.get("positive"), inp.get("negative")
        embeds = _node_at(nodes, inp.get("text_embeds"))
        if positive is None and negative is None and embeds is not None:
            # Video samplers take one 'text_embeds' input: an encoder node holding both
            # prompts as text, or a bridge wired to two conditioning encoders.
            e_in = embeds.get("inputs") if isinstance(embeds.get("inputs"), dict) else {}
            facts["prompt"] = as_str(e_in.get("positive_prompt")) or _text_of(nodes, e_in.get("positive"))
            facts["negative_prompt"] = as_str(e_in.get("negative_prompt")) or _text_of(
                nodes, e_in.get("negative")
            )
        else:
            facts["prompt"] = _text_of(nodes, positive)
            facts["negative_prompt"] = _text_of(nodes, negative)
    for node in nodes.values():
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        if "Latent" in (as_str(node.get("class_type")) or "") and "width" in inputs:
            facts["size"] = size_str(inputs.get("width"), inputs.get("height"))
            break
    return facts


def _id_key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def _node_at(nodes: dict[str, Any], link: object) -> dict[str, Any] | None:
    """The node a link ``[node_id, output]`` points to."""
    if not isinstance(link, list) or not link:
        return None
    node = nodes.get(str(link[0]))
    return node if isinstance(node, dict) else None


def _text_of(nodes: dict[str, Any], link: object, depth: int = 0) -> str | None:
    """Prompt text reaching a sampler input, following conditioning links a few hops."""
    if depth > 8 or not isinstance(link, list) or not link:
        return None
    node = nodes.get(str(link[0]))
    if not isinstance(node, dict):
        return None
    inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
    texts = [inputs[k] for k in ("text", "text_g", "text_l", "prompt") if isinstance(inputs.get(k), str)]
    if texts:
        return texts[0]
    for k in ("conditioning", "conditioning_1", "conditioning_to", "positive", "negative"):
        found = _text_of(nodes, inputs.get(k), depth + 1)
        if found:
            return found
    return None


def summarize_ui_graph(graph: dict[str, Any]) -> dict[str, Any]:
    """Facts from the editor graph alone (no executed prompt saved)."""
    raw_nodes = graph.get("nodes")
    nodes = [n for n in raw_nodes if isinstance(n, dict)] if isinstance(raw_nodes, list) else []
    types = Counter(t for n in nodes if (t := as_str(n.get("type"))))
    checkpoints, loras = [], []
    for n in nodes:
        ntype = as_str(n.get("type")) or ""
        values = n.get("widgets_values")
        first = values[0] if isinstance(values, list) and values else None
        if not isinstance(first, str):
            continue
        if "CheckpointLoader" in ntype or ntype in ("UNETLoader", "UnetLoaderGGUF"):
            checkpoints.append(first)
        elif "LoraLoader" in ntype:
            loras.append(first)
    return {
        "model": checkpoints[0] if checkpoints else None,
        "loras": [{"name": x} for x in loras],
        "workflow": clean({
            "node_count": len(nodes),
            "node_types": dict(sorted(types.items())),
            "checkpoints": checkpoints,
            "loras": loras,
        }),
    }  # fmt: skip
