"""What a signal id in an index stands for: its bank, entry and value.

A module of its own, without the database layer, so that the SQLite reader of one-file
commands (reader.py) hands out the same values as :meth:`Store.resolve`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SignalRef:
    signal_id: int
    bank: str
    content_id: str
    signal_type: str
    value: str
    note: str | None
    bank_pdq_threshold: int | None
    entry_id: int = 0
    bank_kind: str = "flagged"
    # The banked image's variant this value is the hash of (``bank add --image``: trimmed,
    # crop-4 ...; entry meta "pdq_variants"), None for the image itself or a listed hash.
    variant: str | None = None
    # A banked video (banks/videos.py): how many frames Meta's rule compares for it.
    entry_frames: int | None = None
    # ... and where this frame hash is in it: (position among the frames the rule compares,
    # timestamp) of each frame with this hash; empty when the entry has no text form.
    frame_times: tuple[tuple[int, float], ...] = ()
    # A short hash of a whole file (AutoV1, AutoV2, CRC32): the entry's full-length hashes of
    # that file, (type, value), so that a file whose own full hash differs is known not to be
    # it (``banks.matcher.refuted``); empty for other signals.
    entry_file_hashes: tuple[tuple[str, str], ...] = ()


# Short hashes of a whole file's bytes (or of a window of them: AutoV1 hashes 64 KiB at
# 1 MiB), which a full-length hash of the same file confirms or refutes. AutoV3 hashes a
# safetensors file's data section only: another header (metadata) gives another SHA-256.
SHORT_FILE_HASHES = frozenset({"autov1", "autov2", "crc32"})
FULL_FILE_HASHES = ("sha256", "sha1", "md5", "blake3")


def with_file_hashes(refs: dict[int, SignalRef], rows: Any) -> dict[int, SignalRef]:
    """``refs`` with each short whole-file hash's ``entry_file_hashes`` filled from
    ``rows`` of (entry id, type, value) of the entries' full-length hashes."""
    from dataclasses import replace

    full: dict[int, list[tuple[str, str]]] = {}
    for entry, typ, value in rows:
        full.setdefault(int(entry), []).append((str(typ), str(value)))
    return {sid: replace(r, entry_file_hashes=tuple(sorted(full[r.entry_id])))
            if r.signal_type in SHORT_FILE_HASHES and r.entry_id in full else r for sid, r in refs.items()}


def ref_extras(meta: Any, value: str) -> tuple[str | None, int | None, tuple[tuple[int, float], ...]]:
    """(banked variant, video frame count, the video's frames with this hash) of a signal
    from its entry's meta, parsed once."""
    if isinstance(meta, str):
        meta = json.loads(meta)
    if not isinstance(meta, dict):
        return None, None, ()
    frames = None
    times: tuple[tuple[int, float], ...] = ()
    if "vpdq" in meta:
        from .videos import entry_frames, frame_times

        frames = entry_frames(meta)
        times = frame_times(meta, value)
    return banked_variant(meta, value), frames, times


def banked_variant(meta: Any, value: str) -> str | None:
    """The variant a banked hash stands for, from its entry's meta ("pdq_variants":
    value -> name, written by ``bank add --image``); None when not named there."""
    if isinstance(meta, str):
        meta = json.loads(meta)
    named = meta.get("pdq_variants") if isinstance(meta, dict) else None
    found = named.get(value) if isinstance(named, dict) else None
    return found if isinstance(found, str) else None


# Store meta key: the kinds of image variant (trimmed, crop, upper, lower, region: media/crops.py)
# that banked PDQ hashes stand for (entry meta "pdq_variants"), a JSON list; it grows,
# never shrinks (a deleted entry's kinds cost a few needless queries, never a match).
VARIANT_KINDS_KEY = "pdq_variant_kinds"
ALL_VARIANT_KINDS = frozenset({"trimmed", "crop", "upper", "lower", "region"})
# An entry banked with variants, for a store written before the key (SQL LIKE pattern).
VARIANTS_IN_META = '%"pdq_variants"%'


def variant_kind(name: str) -> str:
    """``region-7`` -> ``region``, ``crop-4`` -> ``crop``, ``trimmed-even`` -> ``trimmed``."""
    return name.split("+", 1)[0].split("-", 1)[0]


def variant_kinds(raw: str | None, any_banked: bool) -> frozenset[str]:
    """The kinds the key's value ``raw`` names; without the key (an older store) every
    kind if any entry was banked with variants (``any_banked``), else none."""
    if raw is None:
        return ALL_VARIANT_KINDS if any_banked else frozenset()
    try:
        return frozenset(str(k) for k in json.loads(raw))
    except (ValueError, TypeError):
        return ALL_VARIANT_KINDS
