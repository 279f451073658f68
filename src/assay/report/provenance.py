"""Provenance section of a file record: evidence records and one cautious verdict."""

from __future__ import annotations

from typing import Any, Literal

from ._record import ConfigDict, Field, PrivateAttr, Record
from .escape import shown

Claim = Literal["ai-generated", "ai-edited", "camera-captured", "edited", "unknown"]
Strength = Literal["cryptographic", "strong", "moderate", "weak"]


class Evidence(Record):
    model_config = ConfigDict(extra="forbid")

    source: str  # e.g. "c2pa", "iptc", "a1111", "comfyui", "novelai", "watermark", "exif"
    claim: Claim
    strength: Strength
    summary: str  # one plain sentence an examiner can cite
    facts: dict[str, Any] = Field(default_factory=dict)


class EvidenceError(Record):
    model_config = ConfigDict(extra="forbid")

    source: str
    message: str


class NotChecked(Record):
    """A source that was not looked at, and why (not an error: it could not have answered)."""

    model_config = ConfigDict(extra="forbid")

    source: str
    reason: str


class ProvenanceReport(Record):
    model_config = ConfigDict(extra="forbid")

    verdict: str
    evidence: list[Evidence] = Field(default_factory=list)
    errors: list[EvidenceError] = Field(default_factory=list)
    not_checked: list[NotChecked] | None = None
    # Did the invisible-watermark search run on pixels big enough to carry a mark?
    # Only then does the text output say what its absence means (not in the JSON).
    _watermark_searched: bool = PrivateAttr(default=False)

    def mark_watermark_searched(self, searched: bool = True) -> None:
        self._watermark_searched = searched

    @property
    def watermark_searched(self) -> bool:
        return self._watermark_searched


# -- plain text for people ------------------------------------------------------------
#
# Metadata is attacker-controlled, but a person must read it as written: a prompt keeps
# its line breaks, lists read as lists. Only what a terminal would act on or hide is
# shown escaped (ESC and the other C0/C1 controls, DEL, bidi overrides and other
# invisible format characters); a line break becomes an indented continuation line,
# so no value can forge a line of the report.

# Facts shown first, in this order: what was asked of the generator, then its settings.
_FIRST = ("prompt", "negative_prompt")
_THEN = ("parameters",)
_LONG_KEYS = {"prompt", "negative_prompt"}
_MAX_VALUE = 300  # characters of an ordinary fact value shown
_MAX_LONG = 4000  # ... of a prompt
_MAX_ITEMS = 20  # list items shown
_INLINE = 100  # a short list or mapping stays on its key's line
# Keys shown with a plainer name than the JSON's.
_LABELS = {"locations": "found in", "failure_codes": "failure codes", "failed_checks": "failed checks"}


def safe_text(text: object) -> str:
    """One line of untrusted text, with what a terminal would execute (or hide) escaped."""
    return shown(text, tab=True)


def _lines_of(text: str, limit: int) -> list[str]:
    """Untrusted text as safe lines (its own line breaks kept), cut at ``limit``."""
    cut = len(text) > limit
    # Blank lines around the text carry nothing a reader could see.
    text = text[:limit].replace("\r\n", "\n").strip("\n")
    lines = [safe_text(x).rstrip() for x in text.split("\n")]
    if cut:
        lines[-1] += "..."
    return lines


def _scalar(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _label(key: object) -> str:
    k = str(key)
    return safe_text(_LABELS.get(k, k.replace("_", " ") if k.islower() else k))


def _flat(value: Any) -> str | None:
    """A value written on one line, or None when it needs lines of its own."""
    if isinstance(value, dict):
        parts = [f"{_label(k)}: {_flat(v)}" for k, v in value.items() if v not in (None, "", [], {})]
        if any(p.endswith(": None") for p in parts):
            return None
        text = ", ".join(parts)
    elif isinstance(value, list | tuple):
        items = [_flat(v) for v in value[:_MAX_ITEMS]]
        if any(i is None for i in items):
            return None
        more = f" and {len(value) - _MAX_ITEMS} more" if len(value) > _MAX_ITEMS else ""
        text = ", ".join(i for i in items if i is not None) + more
    else:
        s = _scalar(value)
        if "\n" in s or "\r" in s:
            return None
        text = safe_text(s)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _value_lines(key: str, value: Any, indent: str) -> list[str]:
    head = f"{indent}{_label(key)}:"
    sub = indent + "  "
    if isinstance(value, str):
        limit = _MAX_LONG if key in _LONG_KEYS else _MAX_VALUE
        lines = _lines_of(value, limit)
        if len(lines) == 1 and key not in _LONG_KEYS:
            return [f"{head} {lines[0]}"]
        return [head] + [f"{sub}{x}" if x else "" for x in lines]
    flat = _flat(value)
    if flat is not None and (len(flat) <= _INLINE or not isinstance(value, dict | list | tuple)):
        return [f"{head} {flat}"]
    out = [head]
    if isinstance(value, dict):
        for k, v in value.items():
            if v not in (None, "", [], {}):
                out.extend(_value_lines(str(k), v, sub))
    else:
        for item in list(value)[:_MAX_ITEMS]:
            one = _flat(item)
            out.append(f"{sub}- {one}" if one is not None else f"{sub}- (nested)")
        if len(value) > _MAX_ITEMS:
            out.append(f"{sub}... and {len(value) - _MAX_ITEMS} more")
    return out


def fact_lines(facts: dict[str, Any], indent: str) -> list[str]:
    """Facts as an examiner reads them: the prompt first with its line breaks, then the
    generation parameters, then every other fact by name."""
    keys = [k for k in _FIRST if k in facts]
    keys += [k for k in facts if "prompt" in k and k not in keys]
    keys += [k for k in _THEN if k in facts]
    keys += sorted((k for k in facts if k not in keys), key=_label)
    lines: list[str] = []
    for key in keys:
        value = facts[key]
        if value in (None, [], {}, ""):
            continue
        lines.extend(_value_lines(key, value, indent))
    return lines


def _block(prefix: str, text: str, indent: str) -> list[str]:
    first, *rest = _lines_of(text, 4000)
    return [prefix + first] + [indent + x if x else "" for x in rest]


def explain(report: ProvenanceReport, *, facts: bool = True) -> str:
    """Plain-text lines an examiner can read or paste: verdict, evidence, errors."""
    lines = _block("verdict: ", report.verdict, "  ")
    if report.evidence:
        lines.append("evidence (strongest first):")
        for e in report.evidence:
            head = f"  [{e.strength}] {e.claim} ({safe_text(e.source)}): "
            lines.extend(_block(head, e.summary, "      "))
            if facts:
                lines.extend(fact_lines(e.facts, "      "))
    else:
        lines.append("evidence: none found (absence of evidence is not proof of a camera original)")
    if report.watermark_searched and not any(e.source == "watermark" for e in report.evidence):
        lines.append(
            "note: no Stable Diffusion watermark found; the mark is lost by 4:2:0 JPEG, "
            "resizing and cropping, so its absence proves nothing"
        )
    for nc in report.not_checked or []:
        lines.append(f"not checked: {safe_text(nc.source)}: {safe_text(nc.reason)}")
    failed = [e for e in report.errors if e.source != "container"]
    notes = [e for e in report.errors if e.source == "container"]
    if failed:
        lines.append("could not check:")
        for err in failed:
            lines.extend(_block(f"  {safe_text(err.source)}: ", err.message, "    "))
    if notes:
        lines.append("container notes (data still usable):")
        for err in notes:
            lines.extend(_block("  ", err.message, "    "))
    return "\n".join(lines)
