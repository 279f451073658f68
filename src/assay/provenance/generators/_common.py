"""Helpers shared by the generator-metadata sources: bounded JSON, model-hash signals,
and the small vocabulary of facts every source fills the same way."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from ...errors import DecodeError, InvalidSignal
from ...report.provenance import Claim, Evidence
from ...signals import get as get_signal_type
from ..context import ImageContext, TextChunk

# Fact keys every generator source uses, so the analyzer and the renderers can
# show any generator's parameters without knowing which one wrote them.
FACT_KEYS = (
    "generator", "version", "prompt", "negative_prompt", "seed", "steps", "sampler",
    "scheduler", "cfg_scale", "size", "model", "model_hash", "vae", "vae_hash", "loras",
    "workflow", "model_signals", "locations", "warnings",
)  # fmt: skip

_HEX = re.compile(r"[0-9a-fA-F]+")


def load_json(ctx: ImageContext, text: str, where: str) -> Any:
    """Parse JSON found in metadata, or raise DecodeError naming where it was.

    Sources copy only scalars (through ``as_str``/``to_int``/...) and lists they
    build themselves into facts, so hostile nesting never reaches a report.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise DecodeError(ctx.path, f"{where}: JSON nested too deeply") from None
    except ValueError as exc:
        if "int_max_str_digits" in str(exc):  # json's advice is for programmers
            raise DecodeError(ctx.path, f"{where}: JSON holds an integer of more than "
                                        f"{sys.get_int_max_str_digits():,} digits") from None
        raise DecodeError(ctx.path, f"{where}: malformed JSON ({exc})") from None
    return value


def try_json(text: str) -> Any:
    """JSON or None: for sniffing whether a text is JSON at all."""
    s = text.lstrip()
    if not s.startswith(("{", "[")):
        return None
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        return None


def model_signal(value: object, role: str, name: str | None = None) -> dict[str, Any] | None:
    """A model hash as metadata states it, typed as an assay signal, or None.

    Which community hash a bare hex string is follows from its length and role:
    A1111 writes AutoV1 (8 hex) or AutoV2 (10 hex = SHA-256 prefix of the file) for
    checkpoints, VAEs and embeddings, and the AutoV3/addnet hash (12 hex) for LoRAs.
    A 12-hex embedding hash is a plain file SHA-256 prefix, which no signal type
    holds, so it is not returned. InvokeAI prefixes ``blake3:``/``sha256:``;
    SwarmUI writes ``0x`` + SHA-256.
    """
    if not isinstance(value, str):
        return None
    v = value.strip()
    typ: str | None = None
    low = v.lower()
    if low.startswith("blake3:"):
        typ, v = "blake3", v[7:]
    elif low.startswith("sha256:"):
        typ, v = "sha256", v[7:]
    else:
        if low.startswith("0x"):
            v = v[2:]
        n = len(v)
        if n == 64:
            typ = "sha256"
        elif n == 8:
            typ = "autov1"
        elif n == 10:
            typ = "autov2"
        elif n == 12 and role == "lora":
            typ = "autov3"
    if typ is None or not _HEX.fullmatch(v):
        return None
    try:
        canonical = get_signal_type(typ).normalize(v)
    except InvalidSignal:
        return None
    out: dict[str, Any] = {"type": typ, "value": canonical, "role": role}
    if name:
        out["name"] = name
    return out


def chunk_warnings(chunk: TextChunk) -> list[str]:
    """Problems with a PNG text chunk that leave its text usable but worth citing."""
    where = f"PNG {chunk.chunk_type} {chunk.key!r}"
    out = []
    if not chunk.crc_ok:
        out.append(f"{where}: CRC mismatch (chunk altered or damaged after writing)")
    if chunk.capped:
        out.append(f"{where}: text longer than the limit, capped")
    return out


def to_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d{1,40}", s):
            return int(s)
    return None


def to_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_list(value: object) -> list[Any]:
    """A JSON list, or [] for anything else (metadata is untrusted)."""
    return value if isinstance(value, list) else []


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def clean(facts: dict[str, Any]) -> dict[str, Any]:
    """Drop empty facts so records only carry what the metadata stated."""
    return {k: v for k, v in facts.items() if v not in (None, "", [], {})}


def size_str(width: object, height: object) -> str | None:
    w, h = to_int(width), to_int(height)
    return f"{w}x{h}" if w is not None and h is not None else None


def describe_model(facts: dict[str, Any]) -> str:
    """'checkpoint X (AutoV2 6ce0161689)' for a summary sentence."""
    model = as_str(facts.get("model"))
    if model and len(model) > 120:
        model = model[:117] + "..."
    sig = next(
        (s for s in facts.get("model_signals", []) if s.get("role") == "checkpoint"), None
    )
    if model and sig:
        return f"names checkpoint {model!r} ({_label(sig['type'])} {sig['value']})"
    if model:
        return f"names checkpoint {model!r}"
    if sig:
        return f"names a checkpoint by {_label(sig['type'])} {sig['value']}"
    return "records generation parameters"


def _label(signal_type: str) -> str:
    return {"autov1": "AutoV1", "autov2": "AutoV2", "autov3": "AutoV3"}.get(
        signal_type, signal_type.upper() if signal_type == "sha256" else signal_type
    )


def generation_claim(facts: dict[str, Any]) -> tuple[Claim, str]:
    """The claim a generator's record makes, and what the summary adds: a record of
    inpainting or outpainting (``facts["edit"]``) shows the model regenerated part of an
    input image, whose other pixels may be a photo's own: AI-edited, not AI-generated."""
    edit = facts.get("edit")
    if not edit:
        return "ai-generated", ""
    return "ai-edited", (
        f"; it records an edit of an input image ({edit}): AI-edited, not wholly generated"
    )


def generation_record(source: str, tool: str, where: str, facts: dict[str, Any],
                      locations: list[str], warnings: list[str] | None = None) -> Evidence:
    """Strong evidence from a generator's own record of its parameters: ``facts`` with
    where they were read (``locations``) and what the container said of them
    (``warnings``), empty facts dropped; AI-edited when they record an edit of an input
    image (generation_claim)."""
    facts = clean({**facts, "locations": locations, "warnings": warnings or []})
    claim, edit = generation_claim(facts)
    return Evidence(source=source, claim=claim, strength="strong",
                    summary=f"{where} written by {tool} {describe_model(facts)}{edit}.", facts=facts)
