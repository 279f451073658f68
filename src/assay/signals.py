"""Signal types: the kinds of hash a bank can hold and a scan can produce.

Modelled on python-threatexchange's SignalType: a signal type is a small object
with a name, the subject kinds it applies to, validation of its string form and
how it is matched (exact, or Hamming distance with a default threshold). New kinds
register themselves here; callers look them up by name and never special-case one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidSignal, UnknownSignalType

MatchKind = Literal["exact", "hamming"]
# How much a match by this type says (``Match.strength``): "exact" a full cryptographic
# hash of the same bytes, "short-hash" a truncated hash or checksum (32-48 bits) that
# collides by chance across large collections, "perceptual" a near-duplicate image.
# Two strengths come from where the query came from, not from the type: a hash the
# file's metadata names ("named-by-metadata") and weight-fingerprint lineage ("lineage").
# "perceptual-partial": a PDQ match through a part of a picture (a crop, the picture above
# a caption band), see media/crops.py.
Strength = Literal["exact", "short-hash", "perceptual", "perceptual-partial", "named-by-metadata", "lineage"]
STRENGTHS: tuple[str, ...] = ("exact", "short-hash", "perceptual", "perceptual-partial", "named-by-metadata",
                              "lineage")


@dataclass(frozen=True)
class SignalType:
    name: str
    description: str
    hex_len: int
    match: MatchKind = "exact"
    applies_to: tuple[str, ...] = ("image",)
    default_threshold: int = 0
    aliases: tuple[str, ...] = ()
    strength: Strength = "exact"
    # Canonical values that say nothing about the subject (e.g. a hash of no bytes):
    # value -> why. They are never banked and never looked up.
    degenerate: tuple[tuple[str, str], ...] = ()

    def degenerate_reason(self, value: str) -> str | None:
        """Why ``value`` (canonical) is degenerate for this type, or None."""
        for v, why in self.degenerate:
            if v == value:
                return why
        return None

    @property
    def bits(self) -> int:
        return self.hex_len * 4

    def normalize(self, value: str) -> str:
        """Return the canonical form (lower-case hex) or raise InvalidSignal."""
        if isinstance(value, str) and len(value) == self.hex_len and _HEX.fullmatch(value):  # canonical already
            return value
        if not isinstance(value, str):
            raise InvalidSignal(self.name, repr(value), "not a string")
        v = value.strip().lower()
        if v.startswith("0x"):
            v = v[2:]
        if len(v) != self.hex_len:
            raise InvalidSignal(
                self.name, value, f"expected {self.hex_len} hex digits, got {len(v)}"
            )
        if not _HEX.fullmatch(v):
            raise InvalidSignal(self.name, value, "not hexadecimal")
        return v


_HEX = re.compile(r"[0-9a-f]+")

_REGISTRY: dict[str, SignalType] = {}


def register(signal_type: SignalType) -> SignalType:
    for key in (signal_type.name, *signal_type.aliases):
        existing = _REGISTRY.get(key)
        if existing is not None and existing != signal_type:
            raise ValueError(f"signal type name {key!r} is already taken")
        _REGISTRY[key] = signal_type
    return signal_type


def get(name: str) -> SignalType:
    try:
        return _REGISTRY[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(t.name for t in all_types()))
        raise UnknownSignalType(f"unknown signal type {name!r} (known: {known})") from None


def all_types() -> list[SignalType]:
    return sorted({t.name: t for t in _REGISTRY.values()}.values(), key=lambda t: t.name)


def normalize(signal_type: str, value: str) -> tuple[str, str]:
    st = _REGISTRY.get(signal_type) or get(signal_type)
    return st.name, st.normalize(value)


# The hashes of no bytes: every empty file has them, and hash sets carry them by mistake
# (an empty file's record in a list of known files): an empty file "matched" such a bank
# exactly. Never banked, never looked up (as AutoV1's empty window below).
EMPTY_INPUT_REASON = "the hash of no bytes: every empty file has this value"
_EMPTY_MD5 = (("d41d8cd98f00b204e9800998ecf8427e", EMPTY_INPUT_REASON),)
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

PDQ = register(
    SignalType(
        "pdq",
        "PDQ perceptual image hash (256 bits), matched by Hamming distance",
        64,
        match="hamming",
        default_threshold=31,
        aliases=("pdq_hash",),
        strength="perceptual",
    )
)
MD5 = register(
    SignalType("md5", "MD5 of the file bytes", 32, applies_to=("image", "model", "file"), degenerate=_EMPTY_MD5)
)
SHA1 = register(
    SignalType(
        "sha1",
        "SHA-1 of the file bytes (hash sets such as NSRL and Project VIC carry it)",
        40,
        applies_to=("image", "model", "file"),
        aliases=("sha-1",),
        degenerate=(("da39a3ee5e6b4b0d3255bfef95601890afd80709", EMPTY_INPUT_REASON),),
    )
)
SHA256 = register(
    SignalType(
        "sha256",
        "SHA-256 of the file bytes",
        64,
        applies_to=("image", "model", "file"),
        aliases=("sha-256",),
        degenerate=((_EMPTY_SHA256, EMPTY_INPUT_REASON),),
    )
)

# Community model hashes (computed from the file, never read from its metadata).
# Images made with AUTOMATIC1111 name their checkpoint by AutoV1 or AutoV2 and their
# LoRAs by the AutoV3/addnet short hash, so the same types serve both sides.
_MODEL = ("model",)
# SHA-256 of no bytes, cut to AutoV1's 8 hex: what every file shorter than 1 MiB gets.
AUTOV1_EMPTY = "e3b0c442"
AUTOV1_EMPTY_REASON = (
    "AutoV1 of an empty window: the file is shorter than 1 MiB, so AutoV1 hashes no bytes "
    "and every such file has this value")
AUTOV1 = register(
    SignalType("autov1", "AutoV1: SHA-256 of 64 KiB at offset 1 MiB, first 8 hex", 8, applies_to=_MODEL,
               strength="short-hash", degenerate=((AUTOV1_EMPTY, AUTOV1_EMPTY_REASON),))
)
AUTOV2 = register(
    SignalType("autov2", "AutoV2: SHA-256 of the whole file, first 10 hex", 10, applies_to=_MODEL,
               strength="short-hash", degenerate=((_EMPTY_SHA256[:10], EMPTY_INPUT_REASON),))
)
AUTOV3 = register(
    SignalType(
        "autov3",
        "AutoV3 / addnet: SHA-256 of the safetensors data section, first 12 hex",
        12,
        applies_to=_MODEL,
        aliases=("addnet",),
        strength="short-hash",
        degenerate=((_EMPTY_SHA256[:12], "the hash of an empty data section: every file without tensor data has "
                     "this value"),),
    )
)
BLAKE3 = register(
    SignalType("blake3", "BLAKE3 of the whole file (InvokeAI model hash)", 64, applies_to=_MODEL,
               degenerate=(("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", EMPTY_INPUT_REASON),))
)
CRC32 = register(
    SignalType(
        "crc32",
        "CRC32 of the whole file, as zlib.crc32 prints it (big-endian hex)",
        8,
        applies_to=_MODEL,
        strength="short-hash",
        degenerate=(("00000000", EMPTY_INPUT_REASON),),
    )
)

# Video. vPDQ is a list of PDQ hashes of frames sampled once a second (media/video.py);
# banks hold each frame hash as a value of this type, matched by Hamming distance, and
# hits are grouped per video before Meta's rule (shares of matching frames) decides.
VPDQ = register(
    SignalType(
        "vpdq",
        "vPDQ: PDQ of video frames sampled 1/s; a video matches by its share of matching frames",
        64,
        match="hamming",
        applies_to=("video",),
        default_threshold=31,
        strength="perceptual",
    )
)
# HMA's name for the MD5 of a video file's bytes.
VIDEO_MD5 = register(
    SignalType("video_md5", "MD5 of a video file's bytes (HMA's video_md5)", 32, applies_to=("video",),
               degenerate=_EMPTY_MD5)
)


def named_model_hashes(evidence: Iterable[Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(type, value, the fact) of each model hash that provenance evidence names in its
    ``model_signals`` facts (generator metadata: checkpoint, LoRA, VAE ... hashes),
    normalised, invalid ones dropped, each (type, value) once, first occurrence first."""
    seen: set[tuple[str, str]] = set()
    for ev in evidence:
        for fact in ev.facts.get("model_signals") or []:
            if not isinstance(fact, Mapping):
                continue
            try:
                typ, value = normalize(str(fact.get("type", "")), str(fact.get("value", "")))
            except (InvalidSignal, UnknownSignalType):
                continue
            if (typ, value) not in seen:
                seen.add((typ, value))
                yield typ, value, fact
