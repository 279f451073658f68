"""Prompt-like text no known generator claimed: reported honestly and weakly.

A PNG text chunk named like a generator's (``prompt``, ``parameters``,
``Description``, ``Comment``) or an EXIF UserComment whose text matches none of
the known grammars. It is "ai-generated" only when it clearly states generation
parameters (at least two of steps, seed, sampler, CFG/guidance, negative prompt);
otherwise "unknown".
"""

from __future__ import annotations

import re

from ...errors import InputError
from ...report.provenance import Evidence
from ..context import ImageContext

SOURCE = "unknown-generator-text"
KEYS = ("prompt", "parameters", "Description", "Comment")
_PARAM_WORDS = {
    "steps": re.compile(r"\bsteps\b\W{0,3}\d", re.I),
    "seed": re.compile(r"\bseed\b\W{0,3}-?\d", re.I),
    "sampler": re.compile(r"\bsampler(?:_name)?\b", re.I),
    "cfg": re.compile(r"\b(?:cfg(?:[ _]?scale)?|guidance(?:[ _]scale)?)\b\W{0,3}\d", re.I),
    "negative prompt": re.compile(r"\bnegative[ _]?prompt\b", re.I),
}
_SCAN = 64 * 1024  # parameter words appear early; never regex-scan megabytes


def evidence(ctx: ImageContext, claimed: set[str] | frozenset[str] = frozenset()) -> list[Evidence]:
    """Evidence for prompt-like text at locations not in ``claimed``."""
    found: list[tuple[str, str, str]] = []
    for chunk in ctx.png_text_chunks():
        loc = f"png:{chunk.chunk_type}:{chunk.key}"
        if chunk.key in KEYS and loc not in claimed and chunk.text.strip():
            found.append((chunk.text, f"PNG {chunk.chunk_type} chunk {chunk.key!r}", loc))
    if "exif:UserComment" not in claimed:
        try:
            comment = ctx.user_comment()
        except InputError:
            comment = None
        # Cameras and editors fill UserComment with all sorts of text: only
        # parameter-like text there is worth an evidence record.
        if comment and len(_words(comment)) >= 2:
            found.append((comment, "EXIF UserComment", "exif:UserComment"))
    out = []
    for text, where, loc in found:
        words = _words(text)
        params = len(words) >= 2
        summary = (
            f"{where} holds text naming generation parameters ({', '.join(words)}) "
            "in no format a known generator writes."
            if params
            else f"{where} holds text in no known generator format; it may be a prompt "
            "or an ordinary description."
        )
        out.append(Evidence(
            source=SOURCE, claim="ai-generated" if params else "unknown", strength="weak",
            summary=summary,
            facts={"locations": [loc], "parameter_words": words, "length": len(text)},
        ))  # fmt: skip
    return out


def _words(text: str) -> list[str]:
    head = text[:_SCAN]
    return sorted(w for w, rx in _PARAM_WORDS.items() if rx.search(head))
