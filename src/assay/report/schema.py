"""Versioned report schema (one record per file).

Reports carry hashes, evidence and paths, never pixels or other content.
Bump SCHEMA_VERSION when a field changes meaning or disappears; adding an
optional field does not need a bump.
"""

from __future__ import annotations

from typing import Any, Literal

from ._record import ConfigDict, Field, PrivateAttr
from ._record import Record as _Base
from .model import ModelReport
from .provenance import ProvenanceReport

SCHEMA_VERSION = "assay.file/1"

Kind = Literal["image", "model", "document", "video", "audio", "archive", "link", "other", "error"]


class Record(_Base):
    model_config = ConfigDict(extra="forbid")


class SignalValue(Record):
    """One hash of the subject. ``quality`` is PDQ's 0-100 quality; ``variant`` names a
    dihedral transform (rot90, flipx, ...) when dihedral hashes were asked for."""

    type: str
    value: str
    quality: int | None = None
    variant: str | None = None
    mode: str | None = None  # how it was computed, e.g. pdq "fast" or "reference"


Strength = Literal["exact", "short-hash", "perceptual", "perceptual-partial", "named-by-metadata", "lineage"]


class VideoMatch(Record):
    """Meta's vPDQ rule applied to one banked video: the share of the query's frames
    with a banked frame within the distance, the share of the banked video's frames
    with a query frame within it (both after dedupe and the quality filter), and the
    runs of matching query frames as (first, last) timestamps in seconds.
    ``compared_match_percent`` is None when the entry does not say how many frames its
    video has (hashes added one by one): then only the query share decided."""

    query_match_percent: float
    compared_match_percent: float | None = None
    query_frames: int
    compared_frames: int | None = None
    matched_query_frames: int
    matched_compared_frames: int
    query_segments: list[tuple[float, float]] = Field(default_factory=list)
    # The runs of matching banked frames, as (first, last) timestamps in the banked video:
    # which part of it the query shows (empty when the entry has no frame timestamps).
    compared_segments: list[tuple[float, float]] = Field(default_factory=list)


class Match(Record):
    """One bank entry matched. ``strength`` says how much the match is worth (see
    assay.signals: "exact" a full cryptographic hash, "short-hash" a truncated hash or
    checksum that can collide, "perceptual" a PDQ near-duplicate, "perceptual-partial" a
    PDQ match through part of a picture (a crop, the picture above a caption band: see
    ``query_variant`` and ``bank_variant``), "named-by-metadata"
    a hash the file's metadata names, "lineage" weight-fingerprint lineage).
    ``query`` is the position of the query that matched: an index into ``queries``
    (``assay match``) or into the record's ``signals`` (a file record)."""

    bank: str
    content_id: str
    signal_type: str
    value: str  # the bank's value that matched
    distance: int = 0
    strength: Strength
    bank_kind: Literal["known-good"] | None = None  # set on hits in a known-good bank (e.g. NSRL)
    query: int | None = None
    query_variant: str | None = None  # which variant of the subject matched (rot90, trimmed, crop-1 ...)
    bank_variant: str | None = None  # which variant of the banked image matched (trimmed, crop-4 ...)
    # A match through anchored regions (media/crops.py): how many of the subject's regions
    # matched this entry, of how many looked up.
    regions_agreeing: int | None = None
    regions_queried: int | None = None
    note: str | None = None
    # A vPDQ match: the video-level result of Meta's rule (signal_type "vpdq").
    video: VideoMatch | None = None
    # The store's integer id of the entry, for HMA-compatible answers; never in reports.
    entry_id: int | None = Field(default=None, exclude=True)


class ImageInfo(Record):
    format: str
    width: int
    height: int
    mode: str
    frames: int = 1
    exif_orientation: int | None = None
    exif_transposed: bool = False  # were pixels rotated per EXIF before hashing
    low_quality: bool = False  # PDQ quality < 50: not matched unless asked
    # PDQ variant hashes computed for evasive rewrites (mirror, borders, crops, caption
    # bands, anchored regions) and looked up; ``signals`` lists only those that matched,
    # unless the scan ran with --all-variants.
    variant_hashes: int | None = None


class VpdqFrame(Record):
    """One frame of a vPDQ hash (Meta's ``frame_number,hex,quality,timestamp``)."""

    frame_number: int
    hex: str
    quality: int
    timestamp: float


class VideoInfo(Record):
    format: str  # container: mp4, mov, avi, matroska
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float  # decoded frames / fps
    frames_decoded: int
    vpdq: list[VpdqFrame] = Field(default_factory=list)
    # The sampled frames with uniform borders/bars cut off, when most have them: matched
    # beside ``vpdq`` (a letterboxed copy of a banked video); not Meta's format.
    vpdq_trimmed: list[VpdqFrame] | None = None
    # "reference": Meta's C++ PDQ of each frame (bit-identical to Meta's vPDQ); "fast": the
    # same filter as one weight matrix per axis (equal up to float rounding, media/video.py)
    pdq_mode: str | None = None
    # The container's display rotation (degrees counter-clockwise) and the sampled frames
    # turned as displayed: matched beside ``vpdq`` (a copy whose pixels were turned); not Meta's.
    rotation: int | None = None
    vpdq_displayed: list[VpdqFrame] | None = None
    # The sampled frames mirrored left to right, in a scan's record only when a match came
    # through them (query_variant "mirrored"); not Meta's format.
    vpdq_mirrored: list[VpdqFrame] | None = None
    # The sampled frames turned 90/180/270 degrees counter-clockwise or flipped upside down or
    # across a diagonal, by view name (``rotated-90`` ... ``flipped-antidiagonal``), each in a
    # scan's record only when a match came through it (query_variant the name); not Meta's.
    vpdq_turned: dict[str, list[VpdqFrame]] | None = None


class ErrorInfo(Record):
    stage: str  # "read", "sniff", or an analyzer name
    code: str
    message: str


class CaseLink(Record):
    """A link between an image and a model file of the same scan (``assay.scan.links``):
    the image's generator metadata names a hash that the model file has. ``path`` is the
    other file; ``role`` what the metadata used it as (checkpoint, lora, vae, embedding);
    ``named_as`` the name the metadata gave it. ``strength`` "exact" for a full-length
    hash, "short-hash" for a truncated one (AutoV1/V2/V3, CRC32), with ``candidates`` the
    number of model files of this scan that share the value. Between two model files
    (``scan --model-links``): ``hash_type`` "lineage", ``strength`` "lineage", ``role``
    the relation (same-weights, derived, related, merge-of / merged-into, contains-lora /
    lora-merged-into), ``value`` a ratio or strength where there is one, and the lineage
    engine's ``explanation``."""

    path: str
    hash_type: str
    value: str
    named_as: str | None = None
    role: str | None = None
    strength: Literal["exact", "short-hash", "lineage"]
    candidates: int | None = None
    explanation: str | None = None


class FileTimes(Record):
    """When the file was last modified, changed and read, as recorded before assay read
    it. ``source`` "filesystem": from stat(), UTC ISO 8601 (``ctime`` is the POSIX inode
    change time, not a creation time). "archive": the member's time stored in its
    archive (tar: UTC; zip: the archiving machine's local time, zone not stored, so
    the value has no offset). "object-store": an object's last-modified time (S3
    ``LastModified``, Azure ``Last-Modified``, GCS ``updated``) as the store reported it
    when the scan listed or read it, UTC, ``mtime`` only."""

    source: Literal["filesystem", "archive", "object-store"]
    mtime: str | None = None
    ctime: str | None = None
    atime: str | None = None


class FileRecord(Record):
    schema_: str = Field(default=SCHEMA_VERSION, alias="schema")
    path: str
    size: int | None = None
    kind: Kind = "other"
    format: str | None = None
    signals: list[SignalValue] = Field(default_factory=list)
    matches: list[Match] = Field(default_factory=list)
    # Exact hits in known-good banks (hash sets of known files such as NSRL): the file is
    # known; these are not findings and are not in ``matches``.
    known_good: list[Match] | None = None
    image: ImageInfo | None = None
    video: VideoInfo | None = None
    provenance: ProvenanceReport | None = None
    model: ModelReport | None = None
    # Text reproduction (scan --text-index): the assay.text/1 result without schema/path.
    text: dict[str, Any] | None = None
    errors: list[ErrorInfo] = Field(default_factory=list)
    # A symbolic link that was not followed: what it points to, as stored in the link.
    link_target: str | None = None
    # For a member of an archive: the path of the archive that holds it (itself
    # possibly a member), since "!/" alone could also occur in a real folder name.
    member_of: str | None = None
    # Images and model files of the same scan tied by a hash the image's metadata names.
    case_links: list[CaseLink] | None = None


    # Chain of custody: the file's times (its hashes are md5/sha1/sha256 in ``signals``).
    times: FileTimes | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    # What each analysis step cost on this file: stage -> (wall s, CPU s). Not part of
    # the record's JSON (a report says what a file is, not how long it took); the scan
    # summary adds them up (scan --timings).
    _timings: dict[str, tuple[float, float]] | None = PrivateAttr(default=None)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def add_timing(self, stage: str, wall: float, cpu: float) -> None:
        if self._timings is None:
            self._timings = {}
        w, c = self._timings.get(stage, (0.0, 0.0))
        self._timings[stage] = (w + wall, c + cpu)

    @property
    def timings(self) -> dict[str, tuple[float, float]]:
        return self._timings or {}
