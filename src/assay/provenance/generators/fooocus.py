"""Fooocus: PNG text ``parameters`` holding a JSON object, with ``fooocus_scheme``;
in JPEG and WebP the same JSON is the EXIF UserComment, with the scheme in MakerNote
and "Fooocus v..." in Software. Fooocus-MRE (MoonRide Edition) wrote its own JSON
(``software`` "Fooocus-MRE v...", ``base_model``, ``cfg``, ``width``/``height``, LoRAs as
``l1``/``w1`` ...) to PNG text ``Comment`` or the JPEG comment (COM) segment.

``fooocus_scheme`` is "fooocus" for this JSON form; with "a1111" Fooocus writes an
A1111 infotext instead, which the ``a1111`` source reads (its Version names
Fooocus). Model hashes are SHA-256 prefixes of the file, 10 hex (AutoV2).
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import DecodeError, InputError
from ...report.provenance import Evidence
from ..context import ImageContext
from ._common import (
    as_list,
    as_str,
    chunk_warnings,
    clean,
    generation_record,
    load_json,
    model_signal,
    to_float,
    to_int,
    try_json,
)

SOURCE = "fooocus"
TAG_MAKERNOTE = 0x927C  # where Fooocus names its metadata scheme in JPEG/WebP


def _looks_fooocus(meta: object) -> bool:
    return isinstance(meta, dict) and (
        meta.get("metadata_scheme") == "fooocus" or str(meta.get("version", "")).startswith("Fooocus")
    )


def _exif_evidence(ctx: ImageContext) -> list[Evidence]:
    try:
        comment = ctx.user_comment()
        maker_note = ctx.exif().get(TAG_MAKERNOTE)
    except InputError:
        return []  # an unreadable EXIF block is reported once, as source "exif"
    if not comment or not comment.lstrip().startswith("{"):
        return []
    if isinstance(maker_note, bytes):
        maker_note = maker_note.decode("latin-1")
    scheme = maker_note.strip("\x00 ").lower() if isinstance(maker_note, str) else ""
    if scheme != "fooocus" and not _looks_fooocus(try_json(comment)):
        return []
    where = f"{ctx.format.upper()} EXIF UserComment"
    meta = load_json(ctx, comment, where)
    if not isinstance(meta, dict):
        raise DecodeError(ctx.path, f"{where}: Fooocus JSON is not an object")
    return [generation_record(SOURCE, "Fooocus", where, fooocus_facts(meta), ["exif:UserComment"])]


_MRE_KEYS = {"prompt", "negative_prompt", "base_model", "cfg", "steps", "sampler", "seed",
             "width", "height"}  # fmt: skip


def _looks_mre(meta: object) -> bool:
    if not isinstance(meta, dict):
        return False
    return str(meta.get("software", "")).startswith("Fooocus") or _MRE_KEYS <= meta.keys()


def _mre_evidence(ctx: ImageContext) -> list[Evidence]:
    """Fooocus-MRE's JSON in PNG text 'Comment' or the JPEG COM segment."""
    found: list[tuple[str, str, str, list[str]]] = []
    if ctx.format == "png":
        for c in ctx.png_text_chunks():
            if c.key == "Comment":
                found.append((c.text, f"PNG {c.chunk_type} chunk 'Comment'",
                              f"png:{c.chunk_type}:Comment", chunk_warnings(c)))  # fmt: skip
                break
    else:
        for seg in ctx.jpeg_segments():
            if seg.marker == 0xFE:
                found.append((seg.data.decode("utf-8", "replace"), "JPEG comment (COM) segment",
                              "jpeg:COM", []))  # fmt: skip
                break
    out = []
    for text, where, location, warnings in found:
        if not text.lstrip().startswith("{") or not _looks_mre(try_json(text)):
            continue
        meta = load_json(ctx, text, where)
        out.append(generation_record(SOURCE, "Fooocus-MRE", where, mre_facts(meta), [location], warnings))
    return out


def _sampling(meta: dict[str, Any]) -> dict[str, Any]:
    """The prompt and sampling keys both Fooocus formats write under the same names."""
    return {
        "prompt": as_str(meta.get("prompt")),
        "negative_prompt": as_str(meta.get("negative_prompt")),
        "seed": to_int(meta.get("seed")),
        "steps": to_int(meta.get("steps")),
        "sampler": as_str(meta.get("sampler")),
        "scheduler": as_str(meta.get("scheduler")),
    }


def mre_facts(meta: dict[str, Any]) -> dict[str, Any]:
    refiner = as_str(meta.get("refiner_model"))
    loras = []
    for i in range(1, 6):
        name = as_str(meta.get(f"l{i}"))
        if name and name != "None":
            loras.append(clean({"name": name, "weight": to_float(meta.get(f"w{i}"))}))
    w, h = to_int(meta.get("width")), to_int(meta.get("height"))
    return {
        "generator": "Fooocus",
        "version": as_str(meta.get("software")),
        **_sampling(meta),
        "cfg_scale": to_float(meta.get("cfg")),
        "size": f"{w}x{h}" if w and h else None,
        "model": as_str(meta.get("base_model")),
        "refiner": refiner if refiner != "None" else None,
        "loras": loras,
        "styles": _styles(meta.get("styles")),
        "performance": as_str(meta.get("performance")),
    }


def evidence(ctx: ImageContext) -> list[Evidence]:
    if ctx.format in ("png", "jpeg"):
        mre = _mre_evidence(ctx)
        if mre:
            return mre
    if ctx.format != "png":
        return _exif_evidence(ctx)
    text = ctx.png_text_map()
    chunks = {c.key: c for c in reversed(ctx.png_text_chunks())}
    params = chunks.get("parameters")
    if params is None:
        return []
    scheme = text.get("fooocus_scheme", "").strip().lower()
    if scheme != "fooocus" and not _looks_fooocus(try_json(params.text)):
        return []
    where = f"PNG {params.chunk_type} chunk 'parameters'"
    meta = load_json(ctx, params.text, where)
    if not isinstance(meta, dict):
        raise DecodeError(ctx.path, f"{where}: Fooocus JSON is not an object")
    return [generation_record(SOURCE, "Fooocus", where, fooocus_facts(meta),
                              [f"png:{params.chunk_type}:parameters"], chunk_warnings(params))]


_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


def _styles(value: object) -> list[str] | str | None:
    """Fooocus writes its style list as Python's repr ("['Fooocus V2', ...]"): read the
    quoted names back as a list (never evaluated), or keep the text as written."""
    if isinstance(value, list):
        return [str(v)[:200] for v in value[:50]]
    text = as_str(value)
    if text is None or not (text.startswith("[") and text.endswith("]")):
        return text
    names = [a or b for a, b in _QUOTED.findall(text[1:-1])]
    return names[:50] if names or text[1:-1].strip() == "" else text


def fooocus_facts(meta: dict[str, Any]) -> dict[str, Any]:
    signals: list[dict[str, Any]] = []

    def add(value: object, role: str, name: object) -> None:
        sig = model_signal(value, role, name if isinstance(name, str) else None)
        if sig is not None:
            signals.append(sig)

    add(meta.get("base_model_hash"), "checkpoint", meta.get("base_model"))
    refiner = meta.get("refiner_model")
    if isinstance(refiner, str) and refiner != "None":
        add(meta.get("refiner_model_hash"), "checkpoint", refiner)
    loras = []
    for item in as_list(meta.get("loras")):
        # [name, weight, hash] lists (newer) or "name : weight" strings (older).
        if isinstance(item, list) and item and isinstance(item[0], str):
            entry = {"name": item[0]}
            if len(item) > 1 and to_float(item[1]) is not None:
                entry["weight"] = to_float(item[1])
            if len(item) > 2 and isinstance(item[2], str):
                entry["hash"] = item[2]
                add(item[2], "lora", entry["name"])
            loras.append(entry)
        elif isinstance(item, str):
            name, _, weight = item.rpartition(" : ")
            loras.append(clean({"name": name or item, "weight": to_float(weight)}))
    size = None
    m = re.fullmatch(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", str(meta.get("resolution", "")))
    if m:
        size = f"{m.group(1)}x{m.group(2)}"  # Fooocus writes str((width, height))
    return {
        "generator": "Fooocus",
        "version": as_str(meta.get("version")),
        **_sampling(meta),
        "cfg_scale": to_float(meta.get("guidance_scale")),
        "size": size,
        "model": as_str(meta.get("base_model")),
        "model_hash": as_str(meta.get("base_model_hash")),
        "refiner": refiner if refiner != "None" else None,
        "vae": as_str(meta.get("vae")),
        "loras": loras,
        "styles": _styles(meta.get("styles")),
        "performance": as_str(meta.get("performance")),
        "model_signals": signals,
    }
