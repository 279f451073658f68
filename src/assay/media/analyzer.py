"""The image-hash analyzer: fills ``record.image`` and the md5/sha256/pdq signals."""

from __future__ import annotations

from typing import ClassVar

from ..errors import AssayError
from ..report.schema import FileRecord, ImageInfo, SignalValue
from ..scan.analyzer import Subject
from .hashes import LOW_QUALITY, file_digests, hash_image_bytes, read_limited

CACHE_BYTES = "bytes"  # key under which later analyzers (provenance) find the file


class ImageHashAnalyzer:
    """assay.scan.analyzer.Analyzer for images."""

    name: ClassVar[str] = "image-hash"
    kinds: ClassVar[frozenset[str]] = frozenset({"image"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        settings = subject.settings
        data = subject.cache.get(CACHE_BYTES)
        if not isinstance(data, bytes):
            data = read_limited(subject.path, settings.limits.max_image_bytes)
            subject.cache[CACHE_BYTES] = data
        try:
            hashes = hash_image_bytes(
                data,
                path=str(subject.path),
                mode=settings.pdq_mode,
                exif_transpose=settings.exif_transpose,
                dihedral=settings.dihedral,
                limits=settings.limits,
                variants=settings.variants,
                share=subject.cache,
                bank_kinds=None if settings.all_variants else settings.bank_variant_kinds,
            )
        except AssayError:
            # Pixels that cannot be decoded still have bytes: an exact hash can
            # match a known file even when it is damaged or in an odd format.
            md5, sha256 = file_digests(data)
            record.signals.append(SignalValue(type="md5", value=md5))
            record.signals.append(SignalValue(type="sha256", value=sha256))
            raise
        record.image = ImageInfo(
            format=hashes.format,
            width=hashes.width,
            height=hashes.height,
            mode=hashes.mode,
            frames=hashes.frames,
            exif_orientation=hashes.exif_orientation,
            exif_transposed=hashes.exif_transposed,
            low_quality=hashes.quality < LOW_QUALITY,
        )
        # Strings and ints hashing computed (not validated again: an image has ~50 variants)
        signal = SignalValue.model_construct
        record.signals.append(signal(type="md5", value=hashes.md5))
        record.signals.append(signal(type="sha256", value=hashes.sha256))
        record.signals.append(signal(type="pdq", value=hashes.pdq, quality=hashes.quality, mode=hashes.pdq_mode))
        for variant, value in (hashes.dihedral or {}).items():
            if variant == "original":
                continue
            record.signals.append(
                signal(type="pdq", value=value, quality=hashes.quality, variant=variant, mode=hashes.pdq_mode)
            )
        # The content inside uniform borders/bars and the regions of media/crops.py (a
        # mirror, small crops, the picture above a caption): each one's own quality
        # decides whether it is matched. Hashed by the fast path in either mode.
        # The negative is the complement of the plain hash, in the plain hash's mode.
        for variant, (value, quality) in {**(hashes.trimmed or {}), **(hashes.regions or {})}.items():
            record.signals.append(signal(type="pdq", value=value, quality=quality, variant=variant,
                                         mode=hashes.pdq_mode if variant == "inverted" else "fast"))


class VideoHashAnalyzer:
    """assay.scan.analyzer.Analyzer for videos: the file's MD5, SHA-1, SHA-256 and
    ``video_md5`` in one read, then vPDQ (``record.video``). A video that cannot be
    decoded keeps its exact hashes; the error goes on the record (the scan goes on)."""

    name: ClassVar[str] = "video-hash"
    kinds: ClassVar[frozenset[str]] = frozenset({"video"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        from ..scan.filehash import CUSTODY_HASHES, digests
        from . import video

        if subject.path.is_dir():
            return
        d = digests(subject.path)
        record.signals += [SignalValue(type=n, value=d[n]) for n in CUSTODY_HASHES]
        record.signals.append(SignalValue(type="video_md5", value=d["md5"]))
        try:
            h = video.hash_video_file(subject.path, digests=(d["md5"], d["sha256"]),
                                      pdq_mode=subject.settings.pdq_mode)
        except video.NoVideoStream:
            return  # an MP4 of audio only, say: its exact hashes are all there is to match
        record.video = video.video_info(h, mirrored=True)
