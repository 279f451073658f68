"""Terminal rendering with Rich. Text from files is data: it is always escaped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .schema import FileRecord, Match

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text


def safe_str(value: Any, limit: int = 200) -> str:
    """Text from untrusted files: control characters shown escaped, bounded."""
    s = str(value)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in s)


def safe(value: Any, limit: int = 200) -> Text:
    """``safe_str`` as a Rich Text: printed verbatim, never parsed as markup."""
    from rich.text import Text

    return Text(safe_str(value, limit))


# How each strength reads in text: a short hash alone can collide by chance, and a
# hash named in metadata is a claim the file makes, not a property of its bytes.
STRENGTH_TEXT = {
    "exact": "exact",
    "short-hash": "weak: short hash, can collide",
    "perceptual": "perceptual (near-duplicate)",
    "perceptual-partial": "partial: part of the picture (crop, caption band, regions); check by eye",
    "named-by-metadata": "named by metadata (a claim, not the file's bytes)",
    "lineage": "lineage (weights)",
}


def strength_text(strength: str) -> str:
    return STRENGTH_TEXT.get(strength, strength)


def weak_only(matches: Sequence[Match]) -> bool:
    """True when every match is a short hash: evidence to confirm, not a finding."""
    return bool(matches) and all(m.strength == "short-hash" for m in matches)


def _how(m: Match) -> str:
    """Which variants matched: "crop-0.8 / bank crop-6", or "regions 3 of 41"; for a
    video, the shares of matching frames and the matching stretches of the query."""
    if m.video is not None:
        v = m.video
        bank = f"{v.compared_match_percent:.0f}%" if v.compared_match_percent is not None else "?"
        runs = ", ".join(f"{a:g}-{b:g} s" for a, b in v.query_segments[:4])
        more = f" +{len(v.query_segments) - 4}" if len(v.query_segments) > 4 else ""
        return (f"{v.query_match_percent:.0f}% of {v.query_frames} query frames, {bank} of the banked "
                f"video's {v.compared_frames if v.compared_frames is not None else '?'}; at {runs}{more}")
    if m.regions_agreeing is not None:
        return f"regions {m.regions_agreeing} of {m.regions_queried}"
    return " / ".join(v for v in (m.query_variant, m.bank_variant and f"bank {m.bank_variant}") if v)


def video_match_line(m: Match) -> Text:
    """One banked video matched by Meta's vPDQ rule, as a sentence."""
    from rich.text import Text

    v = m.video
    assert v is not None
    bank = (f"{v.matched_compared_frames} of the banked video's {v.compared_frames} frames "
            f"({v.compared_match_percent:.0f}%)" if v.compared_frames is not None and
            v.compared_match_percent is not None else
            f"{v.matched_compared_frames} banked frames (the banked video's frame count is unknown)")
    runs = ", ".join(f"{a:g}-{b:g} s" for a, b in v.query_segments[:8])
    more = f" and {len(v.query_segments) - 8} more" if len(v.query_segments) > 8 else ""
    banked = ", ".join(f"{a:g}-{b:g} s" for a, b in v.compared_segments[:8])
    banked += f" and {len(v.compared_segments) - 8} more" if len(v.compared_segments) > 8 else ""
    return (Text("  ") + safe(m.bank) + Text(" / ") + safe(m.content_id)
            + Text(" (known-good)" if m.bank_kind == "known-good" else "")
            + Text(f": {v.matched_query_frames} of {v.query_frames} query frames ({v.query_match_percent:.0f}%), "
                   f"{bank}; nearest frame distance {m.distance}; query at {runs}{more}"
                   + (f"; banked video at {banked}" if banked else ""))
            + (Text(" note: ") + safe(m.note, 60) if m.note else Text("")))


def matches_table(matches: Sequence[Match], title: str | None = None) -> Table:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, show_lines=False)
    for col in ("bank", "content id", "signal", "strength", "distance", "variant", "note"):
        t.add_column(col)
    for m in matches:
        row: list[Any] = [
            safe(m.bank) + (Text(" (known-good)") if m.bank_kind == "known-good" else Text("")),
            safe(m.content_id),
            m.signal_type,
            Text(strength_text(m.strength), style="yellow" if m.strength in ("short-hash", "perceptual-partial") else ""),
            str(m.distance),
            _how(m),
            safe(m.note or "", 60),
        ]
        t.add_row(*row)
    if weak_only(matches):
        t.caption = "weak: only short hashes matched (32-48 bits); they can collide, confirm with a full hash"
    return t


def _variant_signals(rec: FileRecord) -> list[Any]:
    from ..banks.matcher import is_geometry_variant

    return [s for s in rec.signals if s.type == "pdq" and is_geometry_variant(s.variant)]


def print_record(console: Any, rec: FileRecord) -> None:
    """The record as text on ``console`` (cli._common's console: ``line`` writes
    plain lines without loading Rich; only a matches table needs Rich)."""
    line = console.line
    line(safe_str(f"{rec.path}  {rec.kind}" + (f" / {rec.format}" if rec.format else ""), 400))
    if rec.image:
        im = rec.image
        text = f"  {im.format} {im.width}x{im.height} {im.mode}"
        if im.exif_orientation and im.exif_orientation != 1:
            text += f"  EXIF orientation {im.exif_orientation} ({'applied' if im.exif_transposed else 'not applied'})"
        line(text)
    regions = [s for s in rec.signals if s.variant and s.variant.startswith("region-")]
    kept = len(_variant_signals(rec))
    if rec.image and rec.image.variant_hashes and rec.image.variant_hashes > kept:
        # dozens of them: the report keeps only those that matched (listed below)
        line(f"  {'pdq':<7} {rec.image.variant_hashes} variant hashes looked up (mirror, borders, "
             f"crops, caption band, regions), {kept} matched; every value with scan --all-variants")
        regions = []
    elif regions:  # dozens of them: one line here, every value in the JSON report
        line(f"  {'pdq':<7} {len(regions)} anchored-region hashes (crops; values in --json)")
    if rec.video:
        v = rec.video
        line(safe_str(f"  {v.format} {v.codec} {v.width}x{v.height} {v.fps:g} frames/s, "
                      f"{v.duration_s:g} s, {v.frames_decoded} frames decoded"
                      + (f", displayed turned {v.rotation} degrees (also hashed so)" if v.rotation else ""), 400))
    for s in rec.signals:
        if regions and s.variant and s.variant.startswith("region-"):
            continue
        extra = []
        if s.quality is not None:
            extra.append(f"quality {s.quality}" + (" (low: not matched by default)" if s.quality < 50 else ""))
        if s.variant:
            extra.append(s.variant)
        if s.mode:
            extra.append(s.mode)
        line(f"  {s.type:<7} {s.value}" + (f"  [{', '.join(extra)}]" if extra else ""))
    if rec.video:
        frames = rec.video.vpdq
        low = sum(f.quality < 50 for f in frames)
        line(f"  vpdq    {len(frames)} frames (1 per second)"
             + (f", {low} of quality < 50 (not matched)" if low else ""))
        for f in frames:
            line(f"    {f.frame_number},{f.quality},{f.hex},{f.timestamp:.3f}")
    if rec.matches:
        console.print(matches_table(rec.matches, title="matches"))
    if rec.known_good:
        banks = ", ".join(sorted({m.bank for m in rec.known_good}))
        line("  known-good: exact hash in the known-good set ", safe_str(banks), " (not a finding)")
    for e in rec.errors:
        line((f"  error ({e.stage}, {e.code}): ", "red"), safe_str(e.message, 400))
