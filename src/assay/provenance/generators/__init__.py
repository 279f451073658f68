"""Generator metadata: what AI image tools write into the files they save.

One module per generator, each with ``evidence(ctx) -> list[Evidence]``:
``a1111`` (AUTOMATIC1111/Forge infotext, incl. stealth data), ``comfyui``,
``novelai`` (incl. alpha-channel data and its Ed25519 signature), ``invokeai``,
``fooocus``, ``swarmui``, ``easydiffusion``, ``drawthings``; ``unknown`` reports
prompt-like text none of them claimed. A source raises an InputError subclass when the metadata it found is
malformed; ``generator_evidence`` runs them all and turns such errors into
``EvidenceError`` records so one bad chunk never hides another source's evidence.

Model hashes named by the metadata are in ``facts["model_signals"]`` as
``{"type", "value", "role", "name"}`` with ``type`` an assay signal type.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import InputError
from ...report.provenance import Evidence, EvidenceError
from ..context import ImageContext
from . import (
    a1111,
    comfyui,
    drawthings,
    easydiffusion,
    fooocus,
    invokeai,
    novelai,
    swarmui,
    unknown,
)
from .stealth import read_stealth

Source = Callable[[ImageContext], list[Evidence]]

SOURCES: tuple[tuple[str, Source], ...] = (
    (a1111.SOURCE, a1111.evidence),
    (comfyui.SOURCE, comfyui.evidence),
    (novelai.SOURCE, novelai.evidence),
    (invokeai.SOURCE, invokeai.evidence),
    (fooocus.SOURCE, fooocus.evidence),
    (swarmui.SOURCE, swarmui.evidence),
    (easydiffusion.SOURCE, easydiffusion.evidence),
    (drawthings.SOURCE, drawthings.evidence),
)


def generator_evidence(ctx: ImageContext) -> tuple[list[Evidence], list[EvidenceError]]:
    """Run every generator source on ``ctx``; (evidence, errors), never raises for bad input.

    Structural problems shared by several sources are reported once: an unreadable
    EXIF block as source "exif", unusable stealth data as source "stealth".
    """
    found: list[Evidence] = []
    errors: list[EvidenceError] = []
    for name, source in SOURCES:
        try:
            found.extend(source(ctx))
        except InputError as exc:
            errors.append(EvidenceError(source=name, message=str(exc)))
    for name, check in (("exif", ctx.exif), ("stealth", lambda: read_stealth(ctx))):
        try:
            check()
        except InputError as exc:
            errors.append(EvidenceError(source=name, message=str(exc)))
    claimed = {loc for ev in found for loc in ev.facts.get("locations", [])}
    for owner in (novelai, comfyui):  # their metadata even when unreadable: their error
        try:
            claimed |= owner.claimed_locations(ctx)
        except InputError:
            pass  # the same problem was reported by the source's own run above
    try:
        found.extend(unknown.evidence(ctx, claimed))
    except InputError as exc:
        errors.append(EvidenceError(source=unknown.SOURCE, message=str(exc)))
    # A text chunk cut at the read limit that no source could read: a generator's record
    # past the cut (its parameters after a padded prompt) is unread, so "no generator
    # metadata" would claim more than was checked.
    for chunk in ctx.png_text_chunks():  # (prompt-like text, the unknown source, is no reading)
        if chunk.capped and f"png:{chunk.chunk_type}:{chunk.key}" not in claimed:
            errors.append(EvidenceError(source="generators", message=(
                f"{ctx.path}: PNG {chunk.chunk_type} chunk {chunk.key!r} is longer than the "
                f"{ctx.limits.max_text_chunk:,} bytes read: generator metadata in the rest was not read")))
    return found, errors


__all__ = ["SOURCES", "generator_evidence", "read_stealth"]
