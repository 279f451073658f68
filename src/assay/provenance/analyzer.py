"""The provenance analyzer: every evidence source over one image, then the verdict.

Sources run independently; an error in one becomes an EvidenceError in the
report and never stops the others. Model hashes that the image's generator
metadata names ("Model hash: 6ce0161689") are added to the record's signals with
mode "named-by-metadata", so bank matching can tie the image to a model file.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ..config import Limits
from ..errors import AssayError, InputError, InvalidSignal, TooLarge, UnknownSignalType
from ..report.provenance import Evidence, EvidenceError, ProvenanceReport
from ..report.schema import FileRecord, SignalValue
from ..scan.analyzer import Subject
from ..signals import normalize
from . import c2pa, camera, watermark, xmp
from .c2pa import ENV_TRUST_ANCHORS as ENV_TRUST_ANCHORS  # re-exported
from .context import ImageContext
from .genmeta import generator_evidence
from .verdict import order, verdict

SIGNAL_MODE = "named-by-metadata"
MAX_CONTAINER_NOTES = 20

# Formats Pillow decodes for the watermark check (others have no such mark).
_PIXEL_FORMATS = {"jpeg", "png", "webp", "tiff", "bmp", "gif"}


def analyze_provenance(
    path: Path,
    data: bytes,
    format: str,
    *,
    trust_anchors: Path | None = None,
    limits: Limits | None = None,
) -> ProvenanceReport:
    """All provenance evidence for one image file and a cautious verdict."""
    ctx = ImageContext(Path(path), data, format, limits or Limits())
    evidence: list[Evidence] = []
    errors: list[EvidenceError] = []

    def run(source: str, fn: Callable[[], list[Evidence]]) -> None:
        try:
            evidence.extend(fn())
        except AssayError as exc:
            errors.append(EvidenceError(source=source, message=str(exc)))
        except Exception as exc:  # a bug or a library surprise must not lose the other sources
            errors.append(
                EvidenceError(
                    source=source,
                    message=f"{path}: {source} check failed: {type(exc).__name__}: {exc}",
                )
            )

    run("c2pa", lambda: c2pa.evidence(ctx.path, data, format, trust_anchors=trust_anchors))
    run("xmp", lambda: xmp.evidence(ctx))

    def generators() -> list[Evidence]:
        found, errs = generator_evidence(ctx)
        errors.extend(errs)
        return found

    run("generators", generators)
    run("camera", lambda: camera.evidence(ctx))
    if format in _PIXEL_FORMATS:
        run("watermark", lambda: watermark.evidence(ctx))
    for note in ctx.problems[:MAX_CONTAINER_NOTES]:
        errors.append(EvidenceError(source="container", message=f"{path}: {note}"))
    # Several sources read the same EXIF block or pixels: one broken structure is
    # reported once, under the first source that hit it.
    unique: list[EvidenceError] = []
    for err in errors:
        if all(err.message != u.message for u in unique):
            unique.append(err)
    ordered = order(evidence)
    return ProvenanceReport(verdict=verdict(ordered, unique), evidence=ordered, errors=unique)


def named_model_signals(report: ProvenanceReport) -> list[SignalValue]:
    """Model hashes named by the image's metadata, as signals (invalid ones dropped)."""
    out: list[SignalValue] = []
    seen: set[tuple[str, str]] = set()
    for e in report.evidence:
        for s in e.facts.get("model_signals") or []:
            if not isinstance(s, dict):
                continue
            try:
                typ, value = normalize(str(s.get("type", "")), str(s.get("value", "")))
            except (InvalidSignal, UnknownSignalType):
                continue
            if (typ, value) not in seen:
                seen.add((typ, value))
                out.append(SignalValue(type=typ, value=value, variant=None, mode=SIGNAL_MODE))
    return out


class ProvenanceAnalyzer:
    """assay.scan.analyzer.Analyzer for images: fills ``record.provenance``."""

    name: ClassVar[str] = "provenance"
    kinds: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(self, trust_anchors: Path | None = None) -> None:
        # None: $ASSAY_C2PA_TRUST_ANCHORS, else the bundled C2PA trust list (c2pa.py).
        self.trust_anchors = trust_anchors

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        data = subject.cache.get("bytes")
        limit = subject.settings.limits.max_image_bytes
        if not isinstance(data, bytes):
            try:
                with subject.path.open("rb") as f:
                    data = f.read(limit + 1)
            except OSError as exc:
                raise InputError(subject.path, f"cannot read file: {exc.strerror or exc}") from exc
        if len(data) > limit:
            raise TooLarge(subject.path, f"image file is larger than the limit of {limit} bytes")
        report = analyze_provenance(
            subject.path,
            data,
            subject.format,
            trust_anchors=self.trust_anchors,
            limits=subject.settings.limits,
        )
        record.provenance = report
        have = {(s.type, s.value, s.mode) for s in record.signals}
        for sig in named_model_signals(report):
            if (sig.type, sig.value, sig.mode) not in have:
                record.signals.append(sig)


# -- plain-text explanation for the CLI ---------------------------------------------


def _safe(text: object) -> str:
    """Metadata is attacker-controlled: show control and format characters (ANSI
    escapes, bidi overrides, NULs) as escapes instead of letting them act."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch)[0] == "C":
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
        else:
            out.append(ch)
    return "".join(out)


def _fact_lines(facts: dict[str, Any], indent: str) -> list[str]:
    lines = []
    for key in sorted(facts):
        value = facts[key]
        if value in (None, [], {}, ""):
            continue
        shown = _safe(value if isinstance(value, str) else repr(value))
        if len(shown) > 300:
            shown = shown[:297] + "..."
        lines.append(f"{indent}{_safe(key)}: {shown}")
    return lines


def explain(report: ProvenanceReport, *, facts: bool = True) -> str:
    """Plain-text lines an examiner can read or paste: verdict, evidence, errors."""
    lines = [f"verdict: {_safe(report.verdict)}"]
    if report.evidence:
        lines.append("evidence (strongest first):")
        for e in report.evidence:
            lines.append(f"  [{e.strength}] {e.claim} ({_safe(e.source)}): {_safe(e.summary)}")
            if facts:
                lines.extend(_fact_lines(e.facts, "      "))
    else:
        lines.append("evidence: none found (absence of evidence is not proof of a camera original)")
    if not any(e.source == "watermark" for e in report.evidence):
        lines.append(
            "note: no Stable Diffusion watermark found; the mark is lost by 4:2:0 JPEG, "
            "resizing and cropping, so its absence proves nothing"
        )
    failed = [e for e in report.errors if e.source != "container"]
    notes = [e for e in report.errors if e.source == "container"]
    if failed:
        lines.append("could not check:")
        lines.extend(f"  {_safe(err.source)}: {_safe(err.message)}" for err in failed)
    if notes:
        lines.append("container notes (data still usable):")
        lines.extend(f"  {_safe(err.message)}" for err in notes)
    return "\n".join(lines)
