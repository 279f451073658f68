"""AUTOMATIC1111 / Forge "infotext": the parameters text those web UIs write.

Grammar (as the web UI writes and reads it):

    prompt line(s)
    Negative prompt: negative line(s)          (optional)
    Key: value, Key: "quoted, value with \\" escapes", ...   (last line)

The last line counts as parameters only when it holds at least three
``Key: value`` pairs; otherwise it is part of the prompt. Some values carry lists:
``Lora hashes: "name: hash, name2: hash"``, ``TI hashes: "..."`` and
``Hashes: {json}``.

Where it is found: PNG text ``parameters`` (tEXt/zTXt/iTXt), JPEG/WebP EXIF
UserComment, and the alpha-channel "stealth" payload (see ``stealth``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ...errors import InputError
from ...report.provenance import Evidence
from ..context import ImageContext
from ._common import (
    chunk_warnings,
    clean,
    describe_model,
    generation_claim,
    model_signal,
    to_float,
    to_int,
    try_json,
)
from .novelai import is_novelai_json
from .stealth import read_stealth

SOURCE = "a1111"

# One "Key: value" pair; a value is either a double-quoted string with backslash
# escapes or anything up to the next comma.
_PAIR = re.compile(r'(\w[\w \-/]{0,63}):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_NEG = "Negative prompt:"
_MIN_PAIRS = 3
# Parameter lines are short (a few KiB with many LoRA hashes); scanning a huge
# last line for pairs would cost time for nothing.
_MAX_PARAMS_LINE = 64 * 1024
# Some writers put the Hashes table unquoted: 'Hashes: {"model": "..."}'.
_HASHES = re.compile(r"(?:^|,)\s*Hashes:\s*(?=\{)")
# Keys whose presence makes a key/value line a generator's parameters (not prose).
_GEN_KEYS = {"steps", "sampler", "seed", "cfg scale", "model hash", "model", "size"}


@dataclass
class Infotext:
    prompt: str = ""
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def is_generation(self) -> bool:
        """True when the parameters line names generation settings."""
        keys = {k.lower() for k in self.params}
        return len(keys & _GEN_KEYS) >= 2


def parse_infotext(text: str) -> Infotext:
    """Split an infotext into prompt, negative prompt and the parameter pairs.

    Total: any string parses (possibly into a prompt with no parameters).
    """
    lines = text.strip().replace("\r\n", "\n").split("\n")
    params: dict[str, str] = {}
    last = lines[-1] if lines else ""
    pairs = _pairs(last) if len(last) <= _MAX_PARAMS_LINE else []
    if len(pairs) >= _MIN_PAIRS:
        lines = lines[:-1]
        params = dict(pairs)
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        stripped = line.strip()
        if not in_negative and stripped.startswith(_NEG):
            in_negative = True
            stripped = stripped[len(_NEG) :].strip()
        (negative_lines if in_negative else prompt_lines).append(stripped)
    return Infotext("\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), params)


def _pairs(line: str) -> list[tuple[str, str]]:
    extra: list[tuple[str, str]] = []
    m = _HASHES.search(line)
    if m is not None:
        try:
            table, end = json.JSONDecoder().raw_decode(line, m.end())
        except ValueError:
            table = None
        if isinstance(table, dict):
            extra.append(("Hashes", line[m.end() : end]))
            line = line[: m.start()] + line[end:]
    # Scan like the web UI's own reader: pairs anywhere on the line count.
    pairs = [(k.strip(), _unquote(v.strip())) for k, v in _PAIR.findall(line)]
    return pairs + extra


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value[1:-1]
        return decoded if isinstance(decoded, str) else value[1:-1]
    return value


def _name_hash_list(value: str) -> list[tuple[str, str]]:
    """'name: hash, name2: hash' -> [(name, hash), ...]; names may contain colons."""
    out = []
    for item in value.split(","):
        name, sep, h = item.strip().rpartition(":")
        if sep and name.strip() and h.strip():
            out.append((name.strip(), h.strip()))
    return out


def infotext_facts(info: Infotext) -> dict[str, Any]:
    """Structured facts from a parsed infotext (keys as in ``_common.FACT_KEYS``)."""
    p = {k.lower(): v for k, v in info.params.items()}
    signals: list[dict[str, Any]] = []
    problems: list[str] = []

    def add_signal(value: str | None, role: str, name: str | None) -> None:
        if not value:
            return
        sig = model_signal(value, role, name)
        if sig is None:
            problems.append(f"{role} hash {value!r} is not a known hash form")
        elif sig not in signals:
            signals.append(sig)

    model = p.get("model")
    add_signal(p.get("model hash"), "checkpoint", model)
    vae = p.get("vae")
    add_signal(p.get("vae hash"), "vae", vae)

    loras = []
    for name, h in _name_hash_list(p.get("lora hashes", "")):
        loras.append({"name": name, "hash": h})
        add_signal(h, "lora", name)
    embeddings = []
    for name, h in _name_hash_list(p.get("ti hashes", "")):
        embeddings.append({"name": name, "hash": h})
        sig = model_signal(h, "embedding", name)
        if sig is not None and sig not in signals:
            signals.append(sig)

    hashes_json = p.get("hashes")
    if hashes_json:
        table = try_json(hashes_json)
        if isinstance(table, dict):
            for key, h in table.items():
                if not isinstance(h, str):
                    continue
                kind, _, name = str(key).partition(":")
                role = {"model": "checkpoint", "vae": "vae", "lora": "lora",
                        "embed": "embedding", "lyco": "lora"}.get(kind)  # fmt: skip
                if role is None:
                    continue
                sig = model_signal(h, role, name or (model if role == "checkpoint" else vae))
                if sig is not None and all(
                    (s["type"], s["value"]) != (sig["type"], sig["value"]) for s in signals
                ):
                    signals.append(sig)
        else:
            problems.append("'Hashes' is not a JSON object")

    version = p.get("version")
    size = p.get("size")
    # img2img with a mask (inpainting, outpainting scripts) writes these; txt2img and
    # plain img2img never do.
    masked = [f"{k}: {p[k.lower()]}" for k in _MASK_KEYS if p.get(k.lower())]
    facts: dict[str, Any] = {
        "generator": _generator_name(version),
        "version": version,
        "prompt": info.prompt,
        "negative_prompt": info.negative_prompt,
        "seed": to_int(p.get("seed")),
        "steps": to_int(p.get("steps")),
        "sampler": p.get("sampler"),
        "scheduler": p.get("schedule type") or p.get("scheduler"),
        "cfg_scale": to_float(p.get("cfg scale")),
        "size": size if size and re.fullmatch(r"\d+x\d+", size) else None,
        "model": model,
        "model_hash": p.get("model hash"),
        "vae": vae,
        "vae_hash": p.get("vae hash"),
        "loras": loras,
        "embeddings": embeddings,
        "model_signals": signals,
        "parameters": info.params,
        "edit": f"inpainting: {', '.join(masked)}" if masked else None,
        "warnings": problems,
    }
    return clean(facts)


_MASK_KEYS = ("Mask blur", "Mask blur x", "Inpaint area", "Masked area padding", "Soft inpainting")


def _generator_name(version: str | None) -> str:
    # Forge versions read "f0.0.17v1.8.0rc-..." or "f1.7.0-..."; Fooocus in A1111
    # scheme writes "Fooocus v2...".
    if version:
        if re.match(r"f\d", version):
            return "Forge"
        if version.lower().startswith("fooocus"):
            return "Fooocus"
        if version.lower().startswith("reforge") or version.startswith("classic"):
            return "Forge"
    return "AUTOMATIC1111"


def infotext_evidence(text: str, where: str, locations: list[str],
                      warnings: list[str] | None = None) -> Evidence | None:
    """Evidence for an infotext found at ``where``; None when it is not one."""
    info = parse_infotext(text)
    if not info.is_generation:
        return None
    facts = infotext_facts(info)
    facts["locations"] = locations
    if warnings:
        facts["warnings"] = [*warnings, *facts.get("warnings", [])]
    claim, edit = generation_claim(facts)
    summary = f"{where} written by {facts['generator']} {describe_model(facts)}{edit}"
    return Evidence(source=SOURCE, claim=claim, strength="strong",
                    summary=summary + ".", facts=facts)  # fmt: skip


def _postprocessing(ctx: ImageContext, found: list[Evidence]) -> list[Evidence]:
    """The extras tab's record ('postprocessing', older 'extras' text chunks: upscaler, face
    restoration). Beside a generation infotext it is a fact of that evidence; alone it
    shows the image was post-processed by A1111, which says nothing of how it was made."""
    chunk = next((c for c in ctx.png_text_chunks() if c.key in ("postprocessing", "extras")), None)
    if chunk is None or not chunk.text.strip():
        return []
    text = " ".join(chunk.text.split())[:512]
    location = f"png:{chunk.chunk_type}:{chunk.key}"
    if found:
        found[0].facts["postprocessing"] = text
        found[0].facts["locations"] = [*found[0].facts.get("locations", []), location]
        return []
    where = f"PNG {chunk.chunk_type} chunk {chunk.key!r}"
    # Face restoration (GFPGAN, CodeFormer) regenerates faces with a model: an AI edit.
    faces = re.search(r"gfpgan|codeformer", text, re.IGNORECASE) is not None
    return [Evidence(
        source=SOURCE, claim="ai-edited" if faces else "edited", strength="strong",
        summary=(f"{where} written by AUTOMATIC1111's extras tab records post-processing of "
                 f"an input image ({text[:120]!r})"
                 + ("; face restoration regenerates faces with a model: an AI edit" if faces else "")
                 + "; it says nothing of how that image was made."),
        facts=clean({"generator": "AUTOMATIC1111", "postprocessing": text, "locations": [location],
                     # how the verdict cites it: the record itself, not "generator metadata"
                     "field": "AUTOMATIC1111 postprocessing", "value": text,
                     "warnings": chunk_warnings(chunk)}),
    )]  # fmt: skip


def evidence(ctx: ImageContext) -> list[Evidence]:
    """A1111/Forge infotext in PNG text ``parameters``, the EXIF UserComment or stealth data."""
    out: list[Evidence] = []
    for chunk in ctx.png_text_chunks():
        if chunk.key != "parameters" or try_json(chunk.text) is not None:
            continue  # JSON 'parameters' belong to Fooocus/SwarmUI
        ev = infotext_evidence(
            chunk.text,
            f"PNG {chunk.chunk_type} chunk 'parameters'",
            [f"png:{chunk.chunk_type}:parameters"],
            chunk_warnings(chunk),
        )
        if ev is not None:
            out.append(ev)
        break  # readers use the first 'parameters' chunk
    out.extend(_postprocessing(ctx, out))
    if ctx.format in ("jpeg", "webp", "png", "tiff"):
        try:
            info = ctx.user_comment_info()
        except InputError:
            info = None  # reported once, as the "exif" source, by generator_evidence
        if info is not None and try_json(info.text) is None:
            ev = infotext_evidence(
                info.text,
                f"{ctx.format.upper()} EXIF UserComment ({info.encoding})",
                ["exif:UserComment"],
                [f"EXIF UserComment: {p}" for p in info.problems],
            )
            if ev is not None:
                out.append(ev)
    try:
        stealth = read_stealth(ctx)
    except InputError:
        stealth = []  # reported once, as the "stealth" source, by generator_evidence
    for payload in stealth:
        if try_json(payload.text) is not None or is_novelai_json(payload.text):
            continue  # NovelAI's JSON form (read, or reported unreadable, by novelai)
        ev = infotext_evidence(
            payload.text,
            f"{payload.mode} channel stealth data ({payload.magic})",
            [f"stealth:{payload.mode}"],
            ["stealth data capped"] if payload.capped else None,
        )
        if ev is not None:
            out.append(ev)
    return out
