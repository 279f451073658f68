"""NovelAI: text metadata, the alpha-channel copy, and its Ed25519 signature.

Where NovelAI puts its metadata:

- PNG tEXt: ``Title`` ("NovelAI generated image" / "AI generated image"),
  ``Description`` (prompt), ``Software`` ("NovelAI"), ``Source`` (model, e.g.
  "Stable Diffusion XL C1E1DE52", "NovelAI Diffusion V4 ..."), ``Comment`` (JSON:
  uc, steps, sampler, seed, scale, ..., ``signed_hash``).
- WebP EXIF: DocumentName -> Title, ImageDescription -> Description,
  Software -> Source, UserComment (ASCII) -> Comment.
- The alpha channel, as ``stealth_pngcomp`` (see ``stealth``): gzip'd JSON with
  the same keys, present even when the text chunks are stripped.

``signed_hash`` is an Ed25519 signature (base64) by NovelAI's key over the RGB
pixel bytes (row-major, H x W x 3, 8 bit) followed by the UTF-8 of the Comment
JSON without ``signed_hash``, re-serialised the way Python's ``json.dumps`` does by
default (", " and ": " separators, ASCII escapes, key order kept). This is what
NovelAI's published verifier (novelai-image-metadata, nai_sig.py) checks.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ...errors import DecodeError, InputError
from ...report.provenance import Evidence
from ..context import TAG_SOFTWARE, TAG_USER_COMMENT, ImageContext
from ._common import (
    chunk_warnings,
    clean,
    generation_claim,
    load_json,
    size_str,
    to_float,
    to_int,
    try_json,
)
from .stealth import read_stealth

SOURCE = "novelai"
NOVELAI_PUBLIC_KEY = "Y2JcQAOhLwzwSDUJPNgL04nS0Tbqm7cSRc4xk0vRMic="
_TITLES = {"NovelAI generated image", "AI generated image"}
_TAG_DOCUMENT_NAME = 0x010D
_TAG_IMAGE_DESCRIPTION = 0x010E


def evidence(ctx: ImageContext, public_key: str = NOVELAI_PUBLIC_KEY) -> list[Evidence]:
    """NovelAI metadata from file text/EXIF and from the alpha channel.

    ``public_key`` (base64 raw Ed25519) is the key trusted for ``signed_hash``;
    NovelAI's published key by default.
    """
    out: list[Evidence] = []
    errors: list[str] = []
    for fields, where, locations, warnings in _file_metadata(ctx):
        try:
            out.append(_evidence_for(ctx, fields, where, locations, warnings, public_key))
        except DecodeError as exc:
            errors.append(exc.reason)
    try:
        stealth = read_stealth(ctx)
    except InputError:
        stealth = []  # reported once, as the "stealth" source, by generator_evidence
    for payload in stealth:
        data = try_json(payload.text)
        if data is None and is_novelai_json(payload.text):
            # NovelAI's form that json cannot read (nested too deep, a number of
            # thousands of digits, cut short): an error, as for the same Comment in text
            # chunks, never a silent "nothing here"
            try:
                load_json(ctx, payload.text, f"NovelAI data in {payload.mode} channel stealth data ({payload.magic})")
            except DecodeError as exc:
                errors.append(exc.reason)
            continue
        if not isinstance(data, dict) or "Comment" not in data:
            continue  # not NovelAI's JSON (A1111's stealth infotext is read elsewhere)
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        if not isinstance(data.get("Comment"), str):
            fields["Comment"] = json.dumps(data["Comment"])
        where = f"{payload.mode} channel stealth data ({payload.magic})"
        try:
            out.append(_evidence_for(ctx, fields, where, [f"stealth:{payload.mode}"], [],
                                     public_key))  # fmt: skip
        except DecodeError as exc:
            errors.append(exc.reason)
    if errors and not out:
        raise DecodeError(ctx.path, "; ".join(errors))
    for ev in out:
        if errors:
            ev.facts.setdefault("warnings", []).extend(errors)
    return out


def _file_metadata(ctx: ImageContext) -> list[tuple[dict[str, str], str, list[str], list[str]]]:
    """(fields, where, location, warnings) of NovelAI-shaped text/EXIF metadata."""
    found = []
    text = {}
    locations: list[str] = []
    warnings: list[str] = []
    for chunk in ctx.png_text_chunks():
        if chunk.key in ("Title", "Description", "Software", "Source", "Comment",
                         "Generation time") and chunk.key not in text:  # fmt: skip
            text[chunk.key] = chunk.text
            locations.append(f"png:{chunk.chunk_type}:{chunk.key}")
            warnings.extend(chunk_warnings(chunk))
    if _is_novelai(text):
        found.append((text, "PNG text chunks", locations, warnings))
    if ctx.format in ("webp", "jpeg"):
        try:
            tags = ctx.exif()
            comment = ctx.user_comment_info()
        except InputError:
            return found
        fields: dict[str, str] = {}
        for tag, key in ((_TAG_DOCUMENT_NAME, "Title"), (_TAG_IMAGE_DESCRIPTION, "Description"),
                         (TAG_SOFTWARE, "Source")):  # fmt: skip
            if isinstance(tags.get(tag), str):
                fields[key] = tags[tag]
        if comment is not None and TAG_USER_COMMENT in tags:
            fields["Comment"] = comment.text
        if _is_novelai(fields):
            found.append((fields, f"{ctx.format.upper()} EXIF", ["exif:UserComment"], []))
    return found


def claimed_locations(ctx: ImageContext) -> set[str]:
    """Where metadata marked as NovelAI's is, readable or not. A Comment that NovelAI's
    marks vouch for is NovelAI's even when it cannot be parsed: reported as NovelAI's
    error whatever broke it, never re-read as prompt-like text in no known format
    (which would turn parameter words in the broken JSON into a weak AI claim)."""
    return {loc for _, _, locations, _ in _file_metadata(ctx) for loc in locations}


def is_novelai_json(text: str) -> bool:
    """Whether a stealth payload has the shape of NovelAI's JSON (an object with a
    Comment), parseable or not; A1111's stealth infotext never starts this way."""
    head = text[:4096].lstrip()
    return head.startswith('{"') and '"Comment":' in head


def _is_novelai(fields: dict[str, str]) -> bool:
    if "Comment" not in fields:
        return False
    if fields.get("Software", "").strip() == "NovelAI" or fields.get("Title") in _TITLES:
        return True  # a malformed Comment then is NovelAI's, and reported as such
    source = fields.get("Source", "")
    if "NovelAI" in source and fields["Comment"].lstrip().startswith("{"):
        return True  # a NovelAI model named, a JSON object's start: likewise
    comment = try_json(fields["Comment"])
    return (
        isinstance(comment, dict)
        and ("NovelAI" in source or source.startswith("Stable Diffusion"))
        and ("uc" in comment or "signed_hash" in comment)
    )


def _evidence_for(ctx: ImageContext, fields: dict[str, str], where: str, locations: list[str],
                  warnings: list[str], public_key: str) -> Evidence:  # fmt: skip
    comment = load_json(ctx, fields.get("Comment", ""), f"NovelAI Comment in {where}")
    if not isinstance(comment, dict):
        raise DecodeError(ctx.path, f"NovelAI Comment in {where}: JSON is not an object")
    # Some copies nest the Comment JSON once more inside itself.
    if isinstance(comment.get("Comment"), str):
        inner = try_json(comment["Comment"])
        if isinstance(inner, dict):
            comment = inner
    source = fields.get("Source")
    facts: dict[str, Any] = {
        "generator": "NovelAI",
        "title": fields.get("Title"),
        "prompt": fields.get("Description") or _str(comment.get("prompt")),
        "negative_prompt": _str(comment.get("uc")),
        "seed": to_int(comment.get("seed")),
        "steps": to_int(comment.get("steps")),
        "sampler": _str(comment.get("sampler")),
        "scheduler": _str(comment.get("noise_schedule")),
        "cfg_scale": to_float(comment.get("scale")),
        "size": size_str(comment.get("width"), comment.get("height")),
        "model": source,
        "model_hash": _source_hash(source),
        "version": fields.get("Software"),
        "generation_time": fields.get("Generation time"),
        "request_type": _str(comment.get("request_type")),
        "locations": locations,
        "warnings": warnings,
    }
    if "Infilling" in (facts["request_type"] or ""):
        # NovelAI's inpainting ("NativeInfillingRequest", "Inpainting" in its inspector)
        facts["edit"] = f"request_type {facts['request_type']}"
    claim, edit = generation_claim(facts)
    signed = comment.get("signed_hash")
    if not isinstance(signed, str):
        facts["signature"] = "absent"
        facts = clean(facts)
        return Evidence(source=SOURCE, claim=claim, strength="strong",
                        summary=f"{where} written by NovelAI names model {source or 'unknown'!r}{edit}; "
                        "no signature to verify.", facts=facts)  # fmt: skip
    valid, reason = verify_signed_hash(ctx, comment, public_key)
    facts["signature"] = "valid" if valid else "invalid"
    if reason:
        facts["signature_problem"] = reason
    facts = clean(facts)
    if valid:
        summary = (f"{where}: NovelAI's Ed25519 signature verifies over these pixels and "
                   f"this metadata (model {source or 'unknown'!r}){edit}.")  # fmt: skip
        return Evidence(source=SOURCE, claim=claim, strength="cryptographic",
                        summary=summary, facts=facts)  # fmt: skip
    summary = (f"{where} written by NovelAI carries a signature that does not verify: "
               f"pixels or metadata changed after signing{edit}.")  # fmt: skip
    return Evidence(source=SOURCE, claim=claim, strength="moderate",
                    summary=summary, facts=facts)  # fmt: skip


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _source_hash(source: str | None) -> str | None:
    """NovelAI's own model id at the end of Source ("... C1E1DE52"); no public file hash."""
    if not source:
        return None
    last = source.split()[-1]
    return last if len(last) == 8 and all(c in "0123456789ABCDEFabcdef" for c in last) else None


def signed_message(pixels_rgb: bytes, comment: dict[str, Any]) -> bytes:
    """The bytes NovelAI signs: RGB pixels, then the Comment JSON without signed_hash."""
    rest = {k: v for k, v in comment.items() if k != "signed_hash"}
    return pixels_rgb + json.dumps(rest).encode("utf-8")


def verify_signed_hash(ctx: ImageContext, comment: dict[str, Any],
                       public_key: str = NOVELAI_PUBLIC_KEY) -> tuple[bool, str | None]:  # fmt: skip
    """(valid, problem) for the Comment's ``signed_hash`` over this image's pixels."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        signature = base64.b64decode(comment["signed_hash"], validate=True)
    except (binascii.Error, ValueError):
        return False, "signed_hash is not valid base64"
    if len(signature) != 64:
        return False, f"signed_hash is {len(signature)} bytes, an Ed25519 signature is 64"
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
    except ValueError as exc:
        raise DecodeError(ctx.path, f"trusted NovelAI key is not a raw Ed25519 key ({exc})") from exc
    pixels = ctx.pixels()[:, :, :3]
    try:
        key.verify(signature, signed_message(pixels.tobytes(), comment))
    except InvalidSignature:
        return False, None
    return True, None
