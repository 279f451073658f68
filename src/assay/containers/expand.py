"""Walk an archive's members as files: bounded temporary copies, the same analyzers.

Every member is copied into a private temporary folder under a name assay makes up
(never the member's own name, so no member can land outside it), analysed by the
caller's function exactly as a file on disk would be, relabelled with its path in
the archive (``case.zip!/dir/a.jpg``) and deleted before the next member is read.
Nested archives are walked the same way, to ``max_archive_depth``. Budgets (members,
uncompressed bytes, compression ratio) are shared by an outermost archive and all
archives inside it: a bomb ends that archive's walk with an error record, and the
scan goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..config import Limits
from ..report.schema import ErrorInfo, FileRecord, FileTimes
from .carve import CARVE_KINDS, carved_members, embedded_images
from .members import ArchiveError, Member, safe_suffix, unsafe_link, unsafe_name
from .sevenzip import sevenzip_members
from .tars import STREAM_ERRORS, tar_members
from .zips import zip_members

AnalyzeFile = Callable[[Path], FileRecord]
ARCHIVE_FORMATS = frozenset({"zip", "tar", "gzip", "bzip2", "xz", "7z", "rar", "iso", "zlib", "lzma", "lz4"})
_CHUNK = 1024 * 1024


@dataclass
class _Budget:
    limits: Limits
    root_size: int = 1  # bytes of the outermost archive: the ratio is taken against it
    members: int = 0
    bytes_out: int = 0


class _Stop(Exception):
    """Ends the walk of the current archive (and its parents: the budget is shared)."""

    def __init__(self, record_error: ErrorInfo) -> None:
        self.error = record_error


# Kinds of file that may carry a zip archive after their own data and still be what they
# start as (a JPEG/ZIP polyglot opens as a picture in a viewer and as an archive in unzip).
_ZIP_CARRIERS = frozenset({"image", "document", "video", "audio"})


def archive_to_walk(path: Path, record: FileRecord, limits: Limits) -> str | None:
    """The archive format to walk the file at ``path`` as, given its record: an archive's
    own; "zip" for an image, document, video or audio file that ends with a zip archive
    (a polyglot: its members are scanned too, as ``photo.jpg!/member``; "pdf+zip" for a
    PDF: its images too); "carve" for a
    file that is none of these, a document or audio, and holds images as they are
    (containers/carve.py: ``file!/carved@OFFSET.jpg``); "pdf" for a PDF (its JPEGs carved,
    its other images rebuilt: containers/pdfimages.py); "covers" for an MP4 or MOV with
    cover art; None for any other file and any file that could not be read."""
    if any(e.stage == "read" for e in record.errors):
        return None
    if record.kind == "archive":
        return record.format
    if not record.size:
        return None
    pdf = record.kind == "document" and record.format == "pdf"
    if record.kind in _ZIP_CARRIERS:
        from ..sniff import appended_zip

        if appended_zip(path, record.size):
            return "pdf+zip" if pdf else "zip"  # a zip appended must not hide the PDF's own images
    if pdf:
        return "pdf"  # its images: cut out as they are (JPEG) or rebuilt (containers/pdfimages.py)
    if record.kind in CARVE_KINDS and record.format != "directory" and any(_embedded(path, limits)):
        return "carve"  # searched again by the walk: only for the few files that hold images (or stopped it)
    if record.kind == "video" and record.format in _COVERED and _embedded(path, limits, video=True)[0]:
        return "covers"
    return None


_COVERED = frozenset({"mp4", "mov"})  # videos whose boxes are followed to their cover art


def _embedded(path: Path, limits: Limits, video: bool = False) -> tuple[list[tuple[int, int, str]], str | None]:
    try:
        size = path.stat().st_size
    except OSError:
        return [], None
    return embedded_images(path, size, limits.max_carve_bytes, limits.max_carved, limits.max_image_bytes,
                           video=video)


def walk_archive(path: Path, record: FileRecord, analyze: AnalyzeFile, limits: Limits,
                 fmt: str | None = None) -> Iterator[FileRecord]:
    """Records of every member of the archive at ``path`` (whose own record is
    ``record``, already analysed as a file; ``fmt``: the archive format, if not the
    record's own, see archive_to_walk), then ``record`` itself with any problem of the
    walk added to its errors. Never raises for a bad archive."""
    tmp = Path(tempfile.mkdtemp(prefix="assay-members-"))
    try:
        budget = _Budget(limits)
        try:
            budget.root_size = max(path.stat().st_size, 1)
        except OSError:
            pass  # the reader reports the unreadable archive
        yield from _walk(path, record, analyze, budget, tmp, 1, fmt or record.format or "")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _walk(path: Path, record: FileRecord, analyze: AnalyzeFile, budget: _Budget, tmp: Path,
          depth: int, fmt: str) -> Iterator[FileRecord]:
    display = record.path
    try:
        members = _members(path, fmt, display, tmp, budget)
        try:
            for m in members:
                yield from _one(m, display, analyze, budget, tmp, depth)
        finally:
            members.close()  # type: ignore[attr-defined]  # ends a 7z reader's thread now
    except ArchiveError as exc:
        record.errors.append(ErrorInfo(stage="archive", code=exc.code, message=exc.reason))
    except _Stop as stop:
        record.errors.append(stop.error)
        if depth > 1:
            yield record
            raise
    except Exception as exc:  # a reader bug must not stop the scan; report it plainly
        record.errors.append(ErrorInfo(stage="archive", code="internal-error",
                                       message=f"{type(exc).__name__}: {exc} (please report this as a bug)"))
    yield record


def _members(path: Path, fmt: str, display: str, tmp: Path, budget: _Budget) -> Iterator[Member]:
    limits = budget.limits
    if fmt == "zip":
        return zip_members(path, limits.max_archive_members)
    if fmt == "7z":
        return sevenzip_members(path, tmp, limits.max_archive_members, limits.max_file_bytes,
                                limits.max_archive_bytes, lambda n: _count(budget, n))
    if fmt in ("tar", "gzip", "bzip2", "xz", "zlib", "lzma", "lz4"):
        return tar_members(path, fmt, display)
    if fmt in ("rar", "iso"):
        from .libarchive_reader import libarchive_members

        return libarchive_members(path, fmt, limits.max_archive_members)
    if fmt in ("carve", "covers"):
        return _carved(path, *_embedded(path, limits, video=fmt == "covers"))
    if fmt == "pdf":
        return _pdf(path, limits)
    if fmt == "pdf+zip":
        return _chained(zip_members(path, limits.max_archive_members), _pdf(path, limits))
    raise ArchiveError(f"archive format {fmt!r} is not supported", code="unsupported-format")


def _carved(path: Path, found: list[tuple[int, int, str]], stopped: str | None) -> Iterator[Member]:
    yield from carved_members(path, found)
    if stopped:
        raise ArchiveError(stopped, code="too-large")


def _chained(*parts: Iterator[Member]) -> Iterator[Member]:
    """The members of each part in turn; a part that cannot be read (any further) does
    not stop the next: its error is raised at the end."""
    errors: list[ArchiveError] = []
    for part in parts:
        try:
            yield from part
        except ArchiveError as exc:
            errors.append(exc)
    if errors:
        raise ArchiveError("; ".join(e.reason for e in errors), code=errors[0].code)


def _pdf(path: Path, limits: Limits) -> Iterator[Member]:
    """A PDF's JPEGs cut out as they are (exact hashes hold), then its other images rebuilt
    to pixels; a JPEG the carver found is not handed out again."""
    import hashlib

    from .pdfimages import pdf_image_members

    found, more = _embedded(path, limits)
    jpegs: set[str] = set()
    try:
        with open(path, "rb") as f:
            for offset, length, fmt in found:
                if fmt == "jpeg":
                    f.seek(offset)
                    h = hashlib.sha256()
                    while length > 0 and (chunk := f.read(min(length, _CHUNK))):
                        h.update(chunk)
                        length -= len(chunk)
                    jpegs.add(h.hexdigest())
    except OSError as exc:
        raise ArchiveError(f"cannot read: {exc.strerror or exc}", code="bad-input") from None
    yield from carved_members(path, found)
    yield from pdf_image_members(path, limits, jpegs)
    if more:
        raise ArchiveError(more, code="too-large")


def _error(display: str, archive: str, code: str, message: str, size: int | None = None) -> FileRecord:
    rec = FileRecord(path=display, kind="error", size=size, member_of=archive)
    rec.errors.append(ErrorInfo(stage="archive", code=code, message=message))
    return rec


def _one(m: Member, archive: str, analyze: AnalyzeFile, budget: _Budget, tmp: Path,
         depth: int) -> Iterator[FileRecord]:
    limits = budget.limits
    if m.kind in ("dir", "other"):
        return
    display = f"{archive}!/{m.name}"
    budget.members += 1
    if budget.members > limits.max_archive_members:
        raise _Stop(ErrorInfo(stage="archive", code="too-large", message=(
            f"more than {limits.max_archive_members} members (nested archives included); the rest not read")))
    unsafe = unsafe_name(m.name)
    if m.kind == "link":
        # A zip member marked as a symbolic link is still a file to zip loaders (torch's
        # reader, zipfile's open ignore the attributes): a model inside is judged.
        content = _lenient_record(m, display, archive, analyze, budget, tmp, depth, "link",
                                  f"marked as a symbolic link to {(m.link_target or '')[:200]!r}")
        if content is not None:
            yield content
            return
        rec = FileRecord(path=display, kind="link", format="symlink", link_target=m.link_target or "",
                         member_of=archive)
        if unsafe:
            rec.errors.append(ErrorInfo(stage="archive", code="unsafe-name", message=unsafe))
        leaves = unsafe_link(m.name, m.link_target or "", hard=m.hard_link)
        if leaves:
            rec.errors.append(ErrorInfo(stage="archive", code="unsafe-link", message=leaves))
        yield rec
        return
    if m.encrypted:
        message = "encrypted member: not decrypted (assay never guesses passwords)"
        yield (_lenient_record(m, display, archive, analyze, budget, tmp, depth, "encrypted", message)
               or _error(display, archive, "encrypted", message, m.size))
        return
    if m.problem:
        yield _error(display, archive, m.problem_code, m.problem, m.size)
        return
    if m.size is not None and m.size > limits.max_file_bytes:
        yield _error(display, archive, "too-large",
                     f"declares {m.size} bytes, over the file limit of {limits.max_file_bytes}; not read", m.size)
        return
    if (m.size is not None and m.compressed_size is not None and m.size > limits.max_ratio_floor
            and m.size > limits.max_compression_ratio * max(m.compressed_size, 1)):
        yield _error(display, archive, "archive-bomb", (
            f"declares {m.size} bytes from {m.compressed_size} compressed (ratio over "
            f"{limits.max_compression_ratio}:1): a compression bomb; not read"), m.size)
        return
    remaining = limits.max_archive_bytes - budget.bytes_out
    if m.size is not None and m.size > remaining:
        raise _Stop(ErrorInfo(stage="archive", code="archive-bomb", message=(
            f"member {m.name!r} would take the uncompressed total over {limits.max_archive_bytes} bytes; "
            "the rest not read")))
    local = tmp / f"m{budget.members}-{depth}{safe_suffix(m.name)}"
    try:
        try:
            problem = _materialise(m, local, min(limits.max_file_bytes, remaining), budget)
        except _Stop as stop:
            partial = _partial_record(local, display, archive, analyze, stop.error)
            if partial is not None:
                yield partial
            raise
        if problem is not None:
            lenient = (_lenient_record(m, display, archive, analyze, budget, tmp, depth, *problem)
                       if problem[0] == "decode-error" else None)
            yield lenient or _error(display, archive, *problem, size=m.size)
            return
        rec = _relabel(analyze(local), local, display, archive)
        # the temporary copy's times say nothing about the member: use the archive's
        rec.times = FileTimes(source="archive", mtime=m.mtime) if m.mtime else None
        if unsafe:
            rec.errors.append(ErrorInfo(stage="archive", code="unsafe-name", message=unsafe))
        if (fmt := archive_to_walk(local, rec, limits)) is not None:
            if depth >= limits.max_archive_depth:
                rec.errors.append(ErrorInfo(stage="archive", code="too-deep", message=(
                    f"archive nested {depth + 1} deep (limit {limits.max_archive_depth}); members not read")))
                yield rec
            else:
                yield from _walk(local, rec, analyze, budget, tmp, depth + 1, fmt)
        else:
            yield rec
    finally:
        local.unlink(missing_ok=True)
        if m.local_path is not None:
            m.local_path.unlink(missing_ok=True)


def _lenient_record(m: Member, display: str, archive: str, analyze: AnalyzeFile, budget: _Budget,
                    tmp: Path, depth: int, code: str, message: str) -> FileRecord | None:
    """The record of a zip member the strict reader refused (flagged encrypted but
    stored plain, a bad CRC, a local header that disagrees with the directory), read as
    a lenient loader reads it (PyTorch's zip reader ignores the flag and the CRC), when
    that makes it a model file: a trick that hides a payload from scanners must not
    hide it from this one. The refusal stays on the record as an error. None otherwise."""
    if m.lenient is None:
        return None
    limits = budget.limits
    data = m.lenient(min(limits.max_file_bytes, limits.max_archive_bytes - budget.bytes_out))
    if not data:
        return None
    budget.bytes_out += len(data)
    _check_ratio(budget)
    local = tmp / f"m{budget.members}-{depth}-lenient{safe_suffix(m.name)}"
    try:
        local.write_bytes(data)
        rec = _relabel(analyze(local), local, display, archive)
    finally:
        local.unlink(missing_ok=True)
    if rec.kind != "model":
        return None
    rec.times = FileTimes(source="archive", mtime=m.mtime) if m.mtime else None
    why = ("flagged encrypted, yet readable without a password" if code == "encrypted"
           else f"{message}, yet a file's bytes" if code == "link"
           else f"refused by the strict reader ({message})")
    rec.errors.append(ErrorInfo(stage="archive", code=code, message=(
        f"{why}: a loader that ignores this (PyTorch's zip reader ignores the flag and the CRC) "
        "loads it; judged as that loader reads it")))
    return rec


def _partial_record(local: Path, display: str, archive: str, analyze: AnalyzeFile,
                    stop: ErrorInfo) -> FileRecord | None:
    """The record of the part of a member read before a bomb limit stopped the walk, when
    that part is a model file (a pickle): a loader stops at the pickle's end and never
    inflates the padding after it (joblib.load of a payload followed by gigabytes of
    zeros), so what was read is judged. None for any other kind of file."""
    if not local.exists() or not local.stat().st_size:
        return None
    rec = _relabel(analyze(local), local, display, archive)
    if rec.kind != "model":
        return None
    rec.errors.append(ErrorInfo(stage="archive", code=stop.code, message=(
        f"{stop.message}; judged on the first {local.stat().st_size} bytes, read before the limit")))
    return rec


def _materialise(m: Member, local: Path, limit: int, budget: _Budget) -> tuple[str, str] | None:
    """Copy the member to ``local`` within ``limit`` bytes; (code, message) if not."""
    limits = budget.limits
    if m.local_path is not None:  # the reader wrote it already (7z), counting with _count
        if m.overflowed:
            return "too-large", f"more than {limits.max_file_bytes} bytes, over the file limit; not analysed"
        os.replace(m.local_path, local)
        return None
    if m.open is None:
        return "bad-input", "member has no content to read"
    written = 0
    try:
        src: BinaryIO = m.open()
        with open(local, "wb") as dst:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                budget.bytes_out += len(chunk)
                if written > limit:
                    if limit < limits.max_file_bytes:
                        raise _Stop(ErrorInfo(stage="archive", code="archive-bomb", message=(
                            f"members expand beyond {limits.max_archive_bytes} bytes in all "
                            "(archive bomb?); the rest not read")))
                    return "too-large", f"more than {limit} bytes, over the file limit; not analysed"
                dst.write(chunk)
                _check_ratio(budget)
    except _Stop:
        raise
    except (*STREAM_ERRORS, zipfile.BadZipFile, RuntimeError, NotImplementedError, MemoryError) as exc:
        # zipfile raises RuntimeError for encryption it did not announce; BadZipFile (no
        # OSError) on a CRC mismatch or a local header that disagrees with the directory
        if not m.independent:
            raise ArchiveError(f"corrupt data in member {m.name!r}: {exc}") from exc
        return "decode-error", f"corrupt member data: {exc}"
    if m.size is not None and written != m.size and m.compressed_size is not None:
        return "decode-error", f"member declares {m.size} bytes but holds {written}"
    return None


def _count(budget: _Budget, n: int) -> str | None:
    """For readers that decompress on their own (7z): count ``n`` more bytes out and
    say why to stop, if the archive turns out to be a bomb."""
    budget.bytes_out += n
    if budget.bytes_out > budget.limits.max_archive_bytes:
        return (f"members expand beyond {budget.limits.max_archive_bytes} bytes in all "
                "(archive bomb?); the rest not read")
    try:
        _check_ratio(budget)
    except _Stop as stop:
        return stop.error.message
    return None


def _check_ratio(budget: _Budget) -> None:
    limits = budget.limits
    if (budget.bytes_out > limits.max_ratio_floor
            and budget.bytes_out > limits.max_compression_ratio * budget.root_size):
        raise _Stop(ErrorInfo(stage="archive", code="archive-bomb", message=(
            f"{budget.bytes_out} bytes out of a {budget.root_size}-byte archive (ratio over "
            f"{limits.max_compression_ratio}:1): a compression bomb; the rest not read")))


def _relabel(rec: FileRecord, local: Path, display: str, archive: str) -> FileRecord:
    """The record of the temporary copy, as the member it is: its path in the archive,
    and the temporary path replaced wherever an analyzer quoted it (error messages)."""
    rec.path = display
    rec.member_of = archive
    raw = rec.model_dump_json(by_alias=True)
    needle = json.dumps(str(local))[1:-1]
    if needle in raw:
        rec = FileRecord.model_validate_json(raw.replace(needle, json.dumps(display)[1:-1]))
    return rec
