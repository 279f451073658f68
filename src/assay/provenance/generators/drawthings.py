"""Draw Things (iOS/macOS): an XMP packet whose ``xmp:CreatorTool`` is "Draw Things"
and whose ``exif:UserComment`` holds its settings as JSON (``c`` the prompt, ``uc`` the
negative prompt, ``seed``, ``steps``, ``scale``, ``sampler``, ``model``, ``size``,
``lora``: a list of ``{"file", "weight"}``).
"""

from __future__ import annotations

import html
import re
from typing import Any

from ...report.provenance import Evidence
from ..context import ImageContext
from ._common import as_list, as_str, clean, generation_record, to_float, to_int, try_json

SOURCE = "drawthings"
MAX_XMP_SCAN = 1024 * 1024  # the settings sit near the top of a small packet
# The value's end is found with str.find from the first opening: a lazy ``(.*?)</rdf:li>``
# retried from every opening of a packet that repeats it unclosed (1 MB: ~2 minutes).
_USER_COMMENT = re.compile(r"<exif:UserComment>\s*<rdf:Alt>\s*<rdf:li[^>]*>")
_SETTINGS = ("seed", "steps", "scale", "sampler", "model", "size")


def evidence(ctx: ImageContext) -> list[Evidence]:
    packet = ctx.xmp()
    if not packet or b"exif:UserComment" not in packet:
        return []
    text = packet[:MAX_XMP_SCAN].decode("utf-8", "replace")
    m = _USER_COMMENT.search(text)
    end = text.find("</rdf:li>", m.end()) if m is not None else -1
    if m is None or end < 0:
        return []
    meta = try_json(html.unescape(text[m.end():end]).strip())
    if not isinstance(meta, dict) or not isinstance(meta.get("c"), str):
        return []
    named = "Draw Things" in text
    if not named and not ("uc" in meta and sum(k in meta for k in _SETTINGS) >= 2):
        return []  # a JSON UserComment of some other tool
    return [generation_record(SOURCE, "Draw Things", "XMP exif:UserComment", drawthings_facts(meta),
                              ["xmp:exif:UserComment"])]


def drawthings_facts(meta: dict[str, Any]) -> dict[str, Any]:
    loras = []
    for item in as_list(meta.get("lora"))[:50]:
        if isinstance(item, dict) and isinstance(item.get("file"), str):
            loras.append(clean({"name": item["file"][:200], "weight": to_float(item.get("weight"))}))
    size = as_str(meta.get("size"))
    return {
        "generator": "Draw Things",
        "prompt": as_str(meta.get("c")),
        "negative_prompt": as_str(meta.get("uc")),
        "seed": to_int(meta.get("seed")),
        "steps": to_int(meta.get("steps")),
        "sampler": as_str(meta.get("sampler")),
        "cfg_scale": to_float(meta.get("scale")),
        "strength": to_float(meta.get("strength")),
        "size": size if size and re.fullmatch(r"\d{1,6}x\d{1,6}", size) else None,
        "model": as_str(meta.get("model")),
        "loras": loras,
    }
