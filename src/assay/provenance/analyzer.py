"""The provenance analyzer: every evidence source over one image, then the verdict.

Sources run independently; an error in one becomes an EvidenceError in the
report and never stops the others. Model hashes that the image's generator
metadata names ("Model hash: 6ce0161689") are added to the record's signals with
mode "named-by-metadata", so bank matching can tie the image to a model file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..config import Limits
from ..errors import AssayError, InputError, TooLarge
from ..report.provenance import Evidence, EvidenceError, NotChecked, ProvenanceReport
from ..report.provenance import explain as _explain
from ..report.schema import FileRecord, SignalValue
from ..scan.analyzer import Subject
from ..signals import named_model_hashes
from ..sniff import contains
from . import c2pa, camera, watermark, xmp
from .c2pa import ENV_TRUST_ANCHORS as ENV_TRUST_ANCHORS  # re-exported
from .context import ImageContext
from .genmeta import generator_evidence
from .verdict import order, verdict

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from ..camera.evidence import CameraBank

SIGNAL_MODE = "named-by-metadata"
MAX_CONTAINER_NOTES = 20

# Formats Pillow decodes for the watermark check (others have no such mark).
_PIXEL_FORMATS = {"jpeg", "png", "webp", "tiff", "bmp", "gif"}
# Images whose containers the image sources (generator metadata, EXIF, pixels) read.
# Every other format (documents, audio, video, JPEG XL) gets C2PA and XMP only.
IMAGE_FORMATS = _PIXEL_FORMATS | {"avif", "heif"}
# Without pixels, XMP is looked for in the first XMP_HEAD and last XMP_TAIL bytes.
XMP_HEAD = 16 * 1024**2
XMP_TAIL = 1024**2
_MAX_PACKETS = 4


class _Collector:
    """Evidence and errors of independent sources: one failing never stops the others."""

    def __init__(self, path: Path, timings: dict[str, tuple[float, float]] | None = None) -> None:
        self.path = path
        self.evidence: list[Evidence] = []
        self.errors: list[EvidenceError] = []
        self.timings = timings  # source -> (wall s, CPU s), when the caller asks

    def run(self, source: str, fn: Callable[[], list[Evidence]]) -> None:
        if self.timings is None:
            self._run(source, fn)
            return
        w0, c0 = time.perf_counter(), time.process_time()
        self._run(source, fn)
        self.timings[source] = (time.perf_counter() - w0, time.process_time() - c0)

    def _run(self, source: str, fn: Callable[[], list[Evidence]]) -> None:
        try:
            self.evidence.extend(fn())
        except AssayError as exc:
            self.errors.append(EvidenceError(source=source, message=str(exc)))
        except Exception as exc:  # a bug or a library surprise must not lose the other sources
            self.errors.append(
                EvidenceError(
                    source=source,
                    message=f"{self.path}: {source} check failed: {type(exc).__name__}: {exc}",
                )
            )

    def report(self) -> ProvenanceReport:
        # Several sources read the same EXIF block or pixels: one broken structure is
        # reported once, under the first source that hit it.
        unique: list[EvidenceError] = []
        for err in self.errors:
            if all(err.message != u.message for u in unique):
                unique.append(err)
        ordered = order(_part_of_a_declared_composite(self.evidence))
        return ProvenanceReport(verdict=verdict(ordered, unique), evidence=ordered, errors=unique)


def _part_of_a_declared_composite(evidence: list[Evidence]) -> list[Evidence]:
    """A valid Content Credential whose active manifest declares the asset AI-edited (a
    composite with generative-AI parts) says what the asset is: a generator named only in
    unsigned metadata (XMP CreatorTool, EXIF Software, container tags) made a part of it."""
    active = [e for e in evidence if e.source == "c2pa" and e.facts.get("role") == "active"
              and e.facts.get("validation") in ("valid", "trusted")]  # fmt: skip
    if not active or active[0].claim != "ai-edited":
        return evidence
    return [
        Evidence(source=e.source, claim="ai-edited", strength=e.strength, facts=e.facts,
                 summary=e.summary.rstrip(".") + "; its Content Credential declares the asset a "
                 "composite with generative-AI parts, so that generator made a part of it.")
        if e.source in _NAMED_IN_METADATA and e.claim == "ai-generated" else e
        for e in evidence
    ]  # fmt: skip


# Sources whose evidence is a generator's name in unsigned metadata.
_NAMED_IN_METADATA = frozenset({"xmp", "exif", "png-text", "container"})


# What stands just before the XMP packet of an image file: such a packet inside a
# document or media file is an embedded image's (a PDF figure, cover art), not the file's.
_IMAGE_XMP_MARKS = ((b"http://ns.adobe.com/xap/1.0/\x00", "JPEG"), (b"XML:com.adobe.xmp", "PNG"),
                    (b"XMP DataXMP", "GIF"))  # fmt: skip


def xmp_packets(buf: bytes) -> list[tuple[bytes, str | None]]:
    """XMP packets found verbatim in a file's bytes (documents, audio, video), each with
    the kind of embedded image it belongs to (None: the file's own)."""
    out: list[tuple[bytes, str | None]] = []
    pos = 0
    while len(out) < _MAX_PACKETS:
        start = buf.find(b"<x:xmpmeta", pos)
        if start < 0:
            break
        end = buf.find(b"</x:xmpmeta>", start, start + xmp.MAX_XMP_SCAN)
        if end < 0:
            break
        before = buf[max(0, start - 160) : start]
        image = next((kind for mark, kind in _IMAGE_XMP_MARKS if mark in before), None)
        out.append((buf[start : end + len(b"</x:xmpmeta>")], image))
        pos = end
    return out


def _read_for_xmp(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            head = f.read(XMP_HEAD)
            size = os.fstat(f.fileno()).st_size
            if size <= XMP_HEAD:
                return head
            f.seek(max(XMP_HEAD, size - XMP_TAIL))
            return head + b"\n" + f.read(XMP_TAIL)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from exc


def analyze_media_provenance(
    path: Path,
    format: str,
    *,
    data: bytes | None = None,
    trust_anchors: Path | None = None,
    timings: dict[str, tuple[float, float]] | None = None,
) -> ProvenanceReport:
    """C2PA and XMP evidence of a file without pixels to analyse (PDF, SVG, audio,
    video, JPEG XL). Without ``data`` the file is streamed, never read whole.
    ``timings`` receives each source's (wall, CPU) seconds."""
    col = _Collector(Path(path), timings)

    def credential() -> list[Evidence]:
        if data is not None:
            return c2pa.evidence(col.path, data, format, trust_anchors=trust_anchors)
        try:
            f = col.path.open("rb")
        except OSError as exc:
            raise InputError(col.path, f"cannot read file: {exc.strerror or exc}") from exc
        with f:
            return c2pa.evidence(col.path, f, format, trust_anchors=trust_anchors)

    def declared() -> list[Evidence]:
        buf = data if data is not None else _read_for_xmp(col.path)
        found: list[Evidence] = []
        for packet, image in xmp_packets(buf):
            if image is None:
                ev = xmp.xmp_evidence(packet)
            else:
                ev = xmp.embedded_image_evidence(packet, image, artwork=format in _ARTWORK_FORMATS)
            found.extend(e for e in ev if e not in found)
        return found

    def tags() -> list[Evidence]:
        from ..media.video import SOFTWARE_TAGS, container_tags

        found: list[Evidence] = []
        for where, key, value in container_tags(col.path):
            if key.lower() not in SOFTWARE_TAGS and key not in SOFTWARE_TAGS:
                continue
            gen = xmp.known_generator(value)
            if gen is not None and all(e.facts.get("generator") != gen for e in found):
                found.append(Evidence(
                    source="container", claim="ai-generated", strength="moderate",
                    summary=f"Its {where} tag {key!r} names the generator {gen} ({value[:120]!r}).",
                    facts={"field": f"{where} {key}", "value": value, "generator": gen}))
        return found

    col.run("c2pa", credential)
    col.run("xmp", declared)
    if format in VIDEO_FORMATS and data is None:
        col.run("container", tags)
    report = col.report()
    if format not in c2pa.MIME:
        # Matroska/WebM: the C2PA SDK reads no manifest there, so "no credential" would overstate.
        report.not_checked = [NotChecked(
            source="c2pa", reason=f"the C2PA SDK reads no Content Credentials in {format} files")]
    return report


# Containers whose metadata tags (encoder, software ...) are read for a generator's name.
VIDEO_FORMATS = frozenset({"mp4", "mov", "avi", "matroska", "webm"})
# Where an embedded image is artwork (cover art), not the content.
_ARTWORK_FORMATS = VIDEO_FORMATS | {"mp3", "wav", "flac", "m4a"}


def analyze_provenance(
    path: Path,
    data: bytes,
    format: str,
    *,
    trust_anchors: Path | None = None,
    limits: Limits | None = None,
    decoded: PILImage | None = None,
    timings: dict[str, tuple[float, float]] | None = None,
    cameras: CameraBank | Callable[[], CameraBank | None] | None = None,
) -> ProvenanceReport:
    """All provenance evidence for one file and a cautious verdict. Formats other
    than the images assay decodes get C2PA and XMP only (analyze_media_provenance).
    ``decoded``: the file's image already opened and decoded by Pillow from ``data``
    (the scan's hashing step), used instead of decoding the pixels again. ``timings``
    receives each source's (wall, CPU) seconds. ``cameras``: enrolled camera
    fingerprints, compared with images of their size (camera/evidence.py), or what
    reads them on first need (an error there is this source's, not the report's)."""
    if format not in IMAGE_FORMATS:
        return analyze_media_provenance(
            Path(path), format, data=data, trust_anchors=trust_anchors, timings=timings
        )
    ctx = ImageContext(Path(path), data, format, limits or Limits())
    if decoded is not None:
        ctx.adopt_image(decoded)
    col = _Collector(ctx.path, timings)
    run, errors = col.run, col.errors
    if may_carry_c2pa(ctx):
        run("c2pa", lambda: c2pa.evidence(ctx.path, data, format, trust_anchors=trust_anchors))
    run("xmp", lambda: xmp.evidence(ctx))

    def generators() -> list[Evidence]:
        found, errs = generator_evidence(ctx)
        errors.extend(errs)
        return found

    run("generators", generators)
    # PNG 'Software' that a generator's own record includes (NovelAI's, read or reported
    # unreadable by its source) says nothing more, and never a claim of its own.
    claimed = {loc for e in col.evidence if e.source != "png-text" for loc in e.facts.get("locations", [])}
    if any(e.source == "png-text" for e in col.evidence):
        from .generators import novelai

        try:
            claimed |= novelai.claimed_locations(ctx)
        except InputError:
            pass  # reported by the novelai source itself
    col.evidence = [
        e for e in col.evidence
        if not (e.source == "png-text" and set(e.facts.get("locations", [])) <= claimed)
    ]
    run("camera", lambda: camera.evidence(ctx))
    if cameras is not None and format in _PIXEL_FORMATS:
        from ..camera.evidence import SOURCE, evidence

        def fingerprints() -> list[Evidence]:
            bank = cameras() if callable(cameras) else cameras
            if bank is None or not _has_camera_of_its_size(ctx, bank):
                return []
            return evidence(ctx.pixels(), bank)

        run(SOURCE, fingerprints)
    searched = False
    skipped: list[NotChecked] = []
    if format in _PIXEL_FORMATS:
        why = _watermark_unsuitable(ctx)
        if why is not None:
            skipped.append(NotChecked(source="watermark", reason=why))
        else:
            before = len(errors)
            run("watermark", lambda: watermark.evidence(ctx))
            searched = len(errors) == before and _big_enough_for_a_mark(ctx)
    for note in ctx.problems[:MAX_CONTAINER_NOTES]:
        errors.append(EvidenceError(source="container", message=f"{path}: {note}"))
    report = col.report()
    report.not_checked = skipped or None
    report.mark_watermark_searched(searched)
    return report


# Containers whose every C2PA carrier the SDK reads is known: a manifest store is a JUMBF
# box ("jumb") in JPEG APP11, PNG caBX and WebP C2PA chunks, and a remote manifest is
# named by XMP dcterms:provenance. Other formats always go to the SDK.
_C2PA_SNIFFED = frozenset({"jpeg", "png", "webp"})


def may_carry_c2pa(ctx: ImageContext) -> bool:
    """False only when the C2PA SDK can have nothing to report: a JPEG, PNG or WebP
    whose container reads cleanly, with no JUMBF box and no XMP provenance reference
    anywhere in its bytes (nor in a compressed PNG XMP packet). A damaged container
    still goes to the SDK, which says what it cannot parse, as before."""
    if ctx.format not in _C2PA_SNIFFED:
        return True
    try:
        chunks = ctx.png_chunks() if ctx.format == "png" else []
        if ctx.format == "webp":
            ctx.webp_chunks()
        elif ctx.format == "jpeg":
            ctx.jpeg_segments()
        packet = ctx.xmp()
    except AssayError:
        return True
    if ctx.problems or (packet is not None and b"provenance" in packet):
        return True
    if ctx.format != "png":  # JPEG APP11 segments may also sit between progressive scans
        return contains(ctx.data, b"jumb") or contains(ctx.data, b"provenance")
    # A clean PNG is its chunks, end to end (anything after IEND is a problem noted
    # above): the compressed pixel data need not be searched.
    return any(b"jumb" in (d := ctx.chunk_data(c)) or b"provenance" in d
               for c in chunks if c.type not in ("IDAT", "fdAT"))


def pixels_to_decode(path: Path, data: bytes, format: str, limits: Limits | None = None) -> int:
    """How many pixels ``analyze_provenance`` will decode for this image (0: none),
    found from its header and metadata without decoding: what a service weighs an
    upload by. Sources decode only when they can find something: the watermark where
    a mark can survive (the top rows of a large PNG), stealth data where its magic can
    be (PNG, WebP), a NovelAI signature where the metadata carries one."""
    if format not in _PIXEL_FORMATS:
        return 0
    ctx = ImageContext(Path(path), data, format, limits or Limits())
    try:
        w, h = ctx.pil().size
        need = 0
        if _watermark_unsuitable(ctx) is None:
            need = max(need, watermark.pixels_searched(ctx))
        if not _stealth_ruled_out(ctx):
            need = max(need, w * h)
        if contains(data, b"signed_hash"):
            need = max(need, w * h)
    except AssayError:
        return 0  # not decodable: the sources report that, decoding nothing
    return need


def _stealth_ruled_out(ctx: ImageContext) -> bool:
    from .generators.stealth import cannot_carry

    try:
        return cannot_carry(ctx)
    except Exception:  # a damaged first row: the source will decode and say so
        return False


def _has_camera_of_its_size(ctx: ImageContext, cameras: CameraBank) -> bool:
    """From the header only: an image no camera has the size of is never decoded for it."""
    try:
        w, h = ctx.pil().size
    except AssayError:  # not decodable: the other sources say so
        return False
    return bool(cameras.candidates(w, h))


def _watermark_unsuitable(ctx: ImageContext) -> str | None:
    try:
        return watermark.unsuitable(ctx)
    except AssayError:  # an image Pillow cannot open: the search reports that itself
        return None


def _big_enough_for_a_mark(ctx: ImageContext) -> bool:
    try:
        im = ctx.pil()
    except AssayError:
        return False
    return im.width * im.height >= watermark.MIN_PIXELS


def named_model_signals(report: ProvenanceReport) -> list[SignalValue]:
    """Model hashes named by the image's metadata, as signals (invalid ones dropped)."""
    return [SignalValue(type=typ, value=value, variant=None, mode=SIGNAL_MODE)
            for typ, value, _ in named_model_hashes(report.evidence)]


class ProvenanceAnalyzer:
    """assay.scan.analyzer.Analyzer for images, documents, audio and video: fills
    ``record.provenance`` (C2PA and XMP only where there are no pixels)."""

    name: ClassVar[str] = "provenance"
    kinds: ClassVar[frozenset[str]] = frozenset({"image", "document", "video", "audio"})

    def __init__(self, trust_anchors: Path | None = None, camera_db: str | None = None,
                 camera_threshold: float = 60.0) -> None:
        # None: $ASSAY_C2PA_TRUST_ANCHORS, else the bundled C2PA trust list (c2pa.py).
        self.trust_anchors = trust_anchors
        # The store's enrolled cameras, read once per worker process on its first image.
        self.camera_db = camera_db
        self.camera_threshold = camera_threshold
        self._cameras: CameraBank | AssayError | None = None
        self._cameras_read = False

    def cameras(self) -> CameraBank | None:
        """The enrolled cameras (read once; a store that cannot be read is this source's
        error on every image, read once too)."""
        if self.camera_db is None:
            return None
        if not self._cameras_read:
            from ..camera.evidence import CameraBank

            self._cameras_read = True
            try:
                self._cameras = CameraBank.open(self.camera_db, self.camera_threshold)
            except AssayError as exc:
                self._cameras = exc
        if isinstance(self._cameras, AssayError):
            raise AssayError(f"camera fingerprints not read: {self._cameras}")
        return self._cameras

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        if subject.format not in IMAGE_FORMATS:
            # Videos can be large: the SDK streams the file, XMP is read in bounded windows.
            timings: dict[str, tuple[float, float]] = {}
            record.provenance = analyze_media_provenance(
                subject.path, subject.format, trust_anchors=self.trust_anchors, timings=timings
            )
            _add_timings(record, timings)
            return
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
        from ..media.hashes import SHARED_IMAGE

        timings = {}
        report = analyze_provenance(
            subject.path,
            data,
            subject.format,
            trust_anchors=self.trust_anchors,
            limits=subject.settings.limits,
            decoded=subject.cache.get(SHARED_IMAGE) if data is subject.cache.get("bytes") else None,
            timings=timings,
            cameras=self.cameras if self.camera_db is not None else None,
        )
        _add_timings(record, timings)
        record.provenance = report
        have = {(s.type, s.value, s.mode) for s in record.signals}
        for sig in named_model_signals(report):
            if (sig.type, sig.value, sig.mode) not in have:
                record.signals.append(sig)


def _add_timings(record: FileRecord, timings: dict[str, tuple[float, float]]) -> None:
    for source, (wall, cpu) in timings.items():
        record.add_timing(f"provenance.{source}", wall, cpu)


# The plain-text explanation lives with the report it renders.
explain = _explain
