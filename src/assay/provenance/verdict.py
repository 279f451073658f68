"""One cautious verdict from the evidence records.

The verdict names the strongest decisive evidence and never claims more than it
shows: absence of evidence reads "no provenance evidence found", never "camera
original" or "authentic"; camera traces alone read "camera traces only (weak)". A
sensor fingerprint match (PCE over the threshold) reads "captured by camera NAME (sensor
fingerprint match, PCE x)": evidence for that camera, still never "camera original".
Evidence pointing the other way (camera traces next to generator metadata, an
invalid Content Credential next to a watermark) is appended, not hidden.

A Content Credential speaks through its ACTIVE manifest only: the manifests of its
ingredients are the asset's history ("made from an AI-generated ingredient"),
appended to the verdict, never its headline. An invalid or unloadable active
manifest reads "Content Credential present but invalid (<which check failed>)",
whatever the ingredients declare.
"""

from __future__ import annotations

import json

from ..report.provenance import Claim, Evidence, EvidenceError, Strength

STRENGTH_RANK: dict[Strength, int] = {"cryptographic": 0, "strong": 1, "moderate": 2, "weak": 3}
CLAIM_RANK: dict[Claim, int] = {
    "ai-generated": 0,
    "ai-edited": 1,
    "camera-captured": 2,
    "edited": 3,
    "unknown": 4,
}
_AI = ("ai-generated", "ai-edited")
_HEADLINE = {
    "ai-generated": "AI-generated",
    "ai-edited": "AI-edited",
    "camera-captured": "camera capture declared",
    "edited": "edited",
}


def order(evidence: list[Evidence]) -> list[Evidence]:
    """Strongest first, ingredients' manifests (history) last; ties by claim (AI
    first), source, summary, then facts, so the result never depends on the order
    the sources reported in."""
    return sorted(
        evidence,
        key=lambda e: (
            is_ingredient(e),
            STRENGTH_RANK[e.strength],
            CLAIM_RANK[e.claim],
            e.source,
            e.summary,
            json.dumps(e.facts, sort_keys=True, default=str),
        ),
    )


def is_ingredient(e: Evidence) -> bool:
    """An ingredient's manifest: the asset's history, not a claim about the file."""
    return e.source == "c2pa" and e.facts.get("role") == "ingredient"


def is_invalid_credential(e: Evidence) -> bool:
    """The file's own (active) Content Credential is invalid or could not be loaded."""
    return e.source == "c2pa" and e.facts.get("validation") == "invalid" and not is_ingredient(e)


def is_remote_credential(e: Evidence) -> bool:
    return e.source == "c2pa" and bool(e.facts.get("remote_manifest"))


def describe(e: Evidence) -> str:
    """A short noun phrase for one piece of evidence, as the verdict cites it."""
    f = e.facts
    if e.source == "c2pa":
        gen = f.get("generator") or "unnamed software"
        if f.get("validation") == "trusted":
            return f"verified Content Credential ({gen})"
        if f.get("validation") == "valid":
            return f"signed Content Credential ({gen}; signer not trusted)"
        return f"invalid Content Credential ({gen})"
    if e.source == "watermark":
        label = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}.get(str(f.get("payload")), "?")
        return f"invisible watermark ({label}, {f.get('confidence')})"
    if e.source == "iptc":
        of = " of a placed component" if f.get("where") == "XMP component" else ""
        return f"IPTC digital source type {f.get('term')}{of} (unsigned metadata)"
    if e.source == "camera-fingerprint":
        return f"sensor fingerprint of camera {f.get('bank')}/{f.get('camera')} (PCE {float(f.get('pce', 0)):.1f})"
    if e.source == "camera":
        name = " ".join(str(x) for x in (f.get("make"), f.get("model")) if x)
        return f"camera traces ({name}, weak)" if name else "camera traces (weak)"
    gen = f.get("generator")
    if str(f.get("field", "")).endswith("Credit"):  # a credit line, quoted as written
        value = " ".join(str(f.get("value")).split())[:60]
        return f"{f['field']} '{value}' (looks like {gen})"
    if e.claim == "edited" and f.get("field"):
        value = " ".join(str(f.get("value")).split())[:60]  # one line, as written
        return f"{f['field']} '{value}'"
    if e.claim in _AI or gen:
        return f"generator metadata ({gen or e.source})"
    return f"{e.source} metadata"


def _headline(ordered: list[Evidence]) -> tuple[str, Evidence | None]:
    """The verdict's first clause and the evidence it rests on (None: nothing decisive)."""
    usable = [
        e
        for e in ordered
        if not is_invalid_credential(e) and not is_remote_credential(e) and not is_ingredient(e)
    ]
    decisive = [e for e in usable if e.claim != "unknown" and e.strength != "weak"]
    if decisive:
        top = decisive[0]
        if top.source == "camera-fingerprint":
            f = top.facts
            return (f"captured by camera {f.get('bank')}/{f.get('camera')} "
                    f"(sensor fingerprint match, PCE {float(f.get('pce', 0)):.1f})"), top
        return f"{_HEADLINE[top.claim]}: {describe(top)}", top
    invalid = [e for e in ordered if is_invalid_credential(e)]
    if invalid:
        because = invalid[0].facts.get("invalid_because")
        head = "Content Credential present but invalid"
        return (f"{head} ({because})" if because else head), None
    weak_ai = [e for e in usable if e.claim in _AI]
    if weak_ai:
        return f"possibly {_HEADLINE[weak_ai[0].claim]} (weak): {describe(weak_ai[0])}", weak_ai[0]
    declared = [e for e in usable if e.source in ("c2pa", "iptc") and e.claim == "unknown"]
    if declared:
        # A credential or IPTC term that claims neither generation nor capture
        # (e.g. algorithmicMedia, screenCapture): cite it, claim nothing.
        terms = declared[0].facts.get("digital_source_types") or [declared[0].facts.get("term")]
        what = ", ".join(str(t) for t in terms if t) or "no digital source type"
        return f"no generation or capture claim: {describe(declared[0])} declares {what}", None
    capture = [e for e in usable if e.claim == "camera-captured"]
    if capture:
        declared_capture = [e for e in capture if e.source != "camera"]
        if declared_capture:
            return (
                f"camera capture declared (weak): {describe(declared_capture[0])}",
                declared_capture[0],
            )
        return "camera traces only (weak)", capture[0]
    edited = [e for e in usable if e.claim == "edited"]
    if edited:
        return f"edited, no generation evidence (weak): {describe(edited[0])}", edited[0]
    return "no provenance evidence found", None


def _history(ordered: list[Evidence]) -> list[str]:
    """What the ingredients' manifests say about the asset's past, as verdict notes."""
    notes: list[str] = []
    for claim, word in (("ai-generated", "AI-generated"), ("ai-edited", "AI-edited")):
        found = [e for e in ordered if is_ingredient(e) and e.claim == claim]
        valid = [e for e in found if e.facts.get("validation") != "invalid"]
        for e in valid[:1]:
            n = len(valid)
            more = f" and {n - 1} more" if n > 1 else ""
            notes.append(
                f"made from an {word} ingredient ({e.facts.get('generator') or 'unnamed software'}{more})"
            )
        if found and not valid:
            notes.append(f"an ingredient declares {word} content, but its credential is invalid")
    return notes


def verdict(evidence: list[Evidence], errors: list[EvidenceError] | None = None) -> str:
    """The verdict line; ``errors`` (checks that could not run) are counted in it,
    because "nothing found" means less when a check failed."""
    ordered = order(evidence)
    head, top = _headline(ordered)
    notes: list[str] = []
    if top is not None:
        current = [e for e in ordered if not is_ingredient(e)]
        if top.claim in _AI:
            against = [e for e in current if e.claim == "camera-captured"]
        elif top.claim == "camera-captured":
            against = [e for e in current if e.claim in _AI and not is_invalid_credential(e)]
        else:
            against = []
        if against:
            notes.append("conflicting: " + describe(against[0]))
    if top is not None and any(is_invalid_credential(e) for e in ordered):
        notes.append("a Content Credential is present but invalid")
    if not any(is_invalid_credential(e) for e in ordered):
        notes.extend(_history(ordered))
    identity = [
        e for e in ordered if e.source == "c2pa" and not is_ingredient(e)
        and e.facts.get("identity_assertion") == "invalid" and not is_invalid_credential(e)
    ]
    if identity:
        notes.append("its identity assertion (CAWG) is invalid")
    identity_untrusted = [
        e for e in ordered if e.source == "c2pa" and not is_ingredient(e)
        and e.facts.get("identity_assertion") == "signer not trusted"
        and not is_invalid_credential(e)
    ]
    if identity_untrusted:
        notes.append("its identity assertion (CAWG) is signed by a certificate that is not trusted")
    if any(is_remote_credential(e) for e in ordered):
        notes.append("a remote Content Credential is referenced but was not fetched")
    failed = sorted({e.source for e in errors or [] if e.source != "container"})
    if failed:
        notes.append(f"could not check: {', '.join(failed)}")
    return head if not notes else f"{head}; {'; '.join(notes)}"
