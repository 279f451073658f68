"""The scan pipeline: walk -> sniff -> analyzers -> (match in the parent) -> records.

Workers analyse files in parallel (one process per core); the parent owns the
bank index, matches every record's signals and hands records to the writer in
the order they finish. One bad file becomes an error record; the scan goes on.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ScanSettings
from ..errors import AssayError
from ..report.schema import ErrorInfo, FileRecord, SignalValue
from ..sniff import Sniffed, sniff_path
from .analyzer import Analyzer, Subject
from .filehash import CUSTODY_HASHES, complete_custody, fs_times
from .timings import timed
from .walk import WalkItem, walk

AnalyzerFactory = Callable[[ScanSettings], Sequence[Analyzer]]


class Deferred:
    """An analyzer built on its first use. The image, provenance and model analyzers
    import much of the program (~1 s per worker on a busy machine): a worker whose
    files never need one never imports it, and a folder of plain files gives its first
    record without waiting for them. ``name`` and ``kinds`` are declared here, so the
    pipeline can skip an analyzer without building it; building checks they agree."""

    def __init__(self, name: str, kinds: frozenset[str], build: Callable[[], Analyzer]) -> None:
        self.name = name
        self.kinds = kinds
        self._build = build
        self._real: Analyzer | None = None

    @property
    def real(self) -> Analyzer:
        if self._real is None:
            real = self._build()
            if (real.name, real.kinds) != (self.name, self.kinds):
                raise RuntimeError(f"deferred analyzer {self.name} {sorted(self.kinds)} builds "
                                   f"{real.name} {sorted(real.kinds)}")
            self._real = real
        return self._real

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        self.real.analyze(subject, record)


def _image_hash() -> Analyzer:
    from ..media.analyzer import ImageHashAnalyzer

    return ImageHashAnalyzer()


def _video_hash() -> Analyzer:
    from ..media.analyzer import VideoHashAnalyzer

    return VideoHashAnalyzer()


def _provenance(settings: ScanSettings) -> Analyzer:
    from ..provenance.analyzer import ProvenanceAnalyzer

    return ProvenanceAnalyzer(trust_anchors=settings.trust_anchors, camera_db=settings.camera_db,
                              camera_threshold=settings.camera_threshold)


def _model() -> Analyzer:
    from ..models.analyzer import ModelAnalyzer

    return ModelAnalyzer()


def _pickle_polyglot() -> Analyzer:
    from ..models.polyglot import PicklePolyglotAnalyzer

    return PicklePolyglotAnalyzer()


def default_analyzers(settings: ScanSettings) -> list[Analyzer]:
    """Every analyzer a full scan runs, in order (hashing first: it caches the bytes)."""
    from .filehash import FileHashAnalyzer

    analyzers: list[Analyzer] = [
        Deferred("image-hash", frozenset({"image"}), _image_hash),
        Deferred("video-hash", frozenset({"video"}), _video_hash),
        FileHashAnalyzer(),
    ]
    if settings.provenance:
        analyzers.append(Deferred("provenance", frozenset({"image", "document", "video", "audio"}),
                                  functools.partial(_provenance, settings)))
    if settings.models:
        analyzers.append(Deferred("model", frozenset({"model"}), _model))
        analyzers.append(Deferred("pickle-polyglot", frozenset({"image", "video", "audio", "document", "archive"}),
                                  _pickle_polyglot))
        if settings.lineage_db:
            from ..models.lineage_analyzer import LineageAnalyzer

            analyzers.append(LineageAnalyzer(settings.lineage_db))
    if settings.text_index:
        from ..text.analyzer import TextAnalyzer

        analyzers.append(TextAnalyzer(settings.text_index, settings.text_min_chars))
    return analyzers


def analyze_item(item: WalkItem, settings: ScanSettings, analyzers: Sequence[Analyzer]) -> FileRecord:
    """Analyse one walked path into a record. Never raises for a bad file."""
    record = FileRecord(path=str(item.path))
    if item.link_target is not None:
        record.kind = "link"
        record.format = "symlink"
        record.link_target = item.link_target
        return record
    if item.problem:
        record.kind = "error"
        record.errors.append(ErrorInfo(stage="read", code="bad-input", message=item.problem))
        return record
    with timed(record, "read"):
        found = _read_stage(item, settings, record)
    if found is None:
        return record
    sniffed, size = found
    record.kind = sniffed.kind  # type: ignore[assignment]
    record.format = sniffed.format
    subject = Subject(item.path, sniffed.kind, sniffed.format, size, settings)
    for analyzer in analyzers:
        if sniffed.kind not in analyzer.kinds:
            continue
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            analyzer.analyze(subject, record)
        except AssayError as exc:
            record.errors.append(ErrorInfo(stage=analyzer.name, code=exc.code, message=str(exc)))
        except MemoryError:
            record.errors.append(
                ErrorInfo(stage=analyzer.name, code="too-large", message="ran out of memory")
            )
        except Exception as exc:  # a bug must not stop the scan; report it plainly
            record.errors.append(
                ErrorInfo(
                    stage=analyzer.name,
                    code="internal-error",
                    message=f"{type(exc).__name__}: {exc} (please report this as a bug)",
                )
            )
        record.add_timing(analyzer.name, time.perf_counter() - w0, time.process_time() - c0)
    try:
        with timed(record, "custody"):
            complete_custody(subject, record)
    except AssayError as exc:
        record.errors.append(ErrorInfo(stage="custody", code=exc.code, message=str(exc)))
    return record


def _read_stage(item: WalkItem, settings: ScanSettings, record: FileRecord) -> tuple[Sniffed, int] | None:
    """Stat, size limits and sniffing; None when the record is already complete (an error)."""
    try:
        st = item.path.stat()  # before any read: reading may move the access time
        record.times = fs_times(st)
        size = st.st_size if item.path.is_file() else _folder_size(item.path)
        record.size = size
        if item.path.is_file() and size == 0:
            record.kind = "error"
            record.errors.append(ErrorInfo(stage="read", code="empty", message="empty file (0 bytes)"))
            record.signals = [SignalValue(type=n, value=hashlib.new(n, b"").hexdigest()) for n in CUSTODY_HASHES]
            return None
        if size > settings.limits.max_file_bytes:
            record.kind = "error"
            record.errors.append(
                ErrorInfo(
                    stage="read",
                    code="too-large",
                    message=f"{size} bytes exceeds the limit of {settings.limits.max_file_bytes}",
                )
            )
            return None
        sniffed = sniff_path(item.path)
    except OSError as exc:
        record.kind = "error"
        record.errors.append(
            ErrorInfo(stage="read", code="bad-input", message=f"cannot read: {exc.strerror or exc}")
        )
        return None
    return sniffed, size


def analyze_entry(item: WalkItem, settings: ScanSettings, analyzers: Sequence[Analyzer]) -> Iterator[FileRecord]:
    """Records of one walked path: one, or for an archive, one per member (nested
    archives included) and then the archive's own. Never raises for a bad file."""
    record = analyze_item(item, settings, analyzers)
    from ..containers import archive_to_walk, walk_archive

    if (fmt := archive_to_walk(item.path, record, settings.limits)) is None:
        yield record
        return

    def analyze_member(path: Path) -> FileRecord:
        return analyze_item(WalkItem(path), settings, analyzers)

    yield from walk_archive(item.path, record, analyze_member, settings.limits, fmt)


def _folder_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


# Worker-process state, set once per worker by _init_worker.
_W_SETTINGS: ScanSettings | None = None
_W_ANALYZERS: Sequence[Analyzer] = ()


def _init_worker(settings: ScanSettings, factory: AnalyzerFactory) -> None:
    global _W_SETTINGS, _W_ANALYZERS
    import signal

    # Ctrl-C reaches every process of the terminal's group: the parent stops the scan and
    # ends its workers, which would otherwise each print a KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _W_SETTINGS = settings
    _W_ANALYZERS = factory(settings)


@dataclass(frozen=True)
class _Spool:
    """Records of one item (an archive's members) in a temporary JSON Lines file: the
    worker writes them as they come, the parent reads them back one at a time, so
    neither holds a big archive's records in memory."""

    path: str
    count: int


def _work(item: WalkItem) -> FileRecord | _Spool:
    assert _W_SETTINGS is not None
    records = analyze_entry(item, _W_SETTINGS, _W_ANALYZERS)
    first = next(records)
    second = next(records, None)
    if second is None:
        return first
    import tempfile

    fd, spool = tempfile.mkstemp(prefix="assay-spool-", suffix=".jsonl")
    count = 0
    try:
        # surrogatepass: a member name that is not UTF-8 (lone surrogates) goes through whole
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as f:
            for rec in itertools.chain((first, second), records):
                f.write(rec.model_dump_json(by_alias=True) + "\n")
                count += 1
    except BaseException:
        os.unlink(spool)
        raise
    return _Spool(spool, count)


def _unspool(result: FileRecord | _Spool) -> Iterator[FileRecord]:
    if isinstance(result, FileRecord):
        yield result
        return
    try:
        with open(result.path, encoding="utf-8", errors="surrogatepass") as f:
            for line in f:
                yield FileRecord.model_validate_json(line)
    finally:
        os.unlink(result.path)


def _worker_context() -> Any:
    """fork shares the parent's imports, so workers start at once (the index stays in
    the parent only). A parent that has loaded the C2PA SDK runs native threads whose
    locks a forked child can inherit held, and a worker would hang on its first
    credential: such a parent (a long-lived service, a test session) starts its workers
    from a clean fork server instead, with the pipeline preloaded there."""
    import multiprocessing as mp  # one-file commands (`assay hash`) never start workers

    methods = mp.get_all_start_methods()
    if "fork" in methods and "c2pa" not in sys.modules:
        return mp.get_context("fork")
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["assay.scan.pipeline"])
        return ctx
    return mp.get_context()


# Workers are forked from the parent and share what it has loaded. When the start of the
# walk shows images the watermark searches (PRELOAD_IMAGES of the first PRELOAD_PEEK items,
# by their names), the parent loads the image analyzers, the watermark's compiled pass and,
# when the query's anchored regions will be hashed, the compiled PDQ span weights
# (numba: ~0.4 CPU-s a process) once, before forking, instead of every worker loading
# them: 13.7 -> 12.6 CPU-s for the 1,000-file folder on 2 workers (bench/RESULTS.md, scan
# throughput, fourth pass). A walk that starts with other files (a million small files, a
# folder of JPEG photos, whose 4:2:0 chroma no mark survives) starts its workers as before.
PRELOAD_PEEK = 64
PRELOAD_IMAGES = 8
_SEARCHED_SUFFIXES = frozenset({".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})


def _preloaded(items: Iterable[WalkItem], settings: ScanSettings, factory: AnalyzerFactory) -> Iterator[WalkItem]:
    """``items``, unchanged, after loading what the workers' images will need (see above)."""
    it = iter(items)
    head = list(itertools.islice(it, PRELOAD_PEEK))
    if sum(item.path.suffix.lower() in _SEARCHED_SUFFIXES for item in head) >= PRELOAD_IMAGES:
        for analyzer in factory(settings):
            if isinstance(analyzer, Deferred) and "image" in analyzer.kinds:
                analyzer.real  # noqa: B018 - built for its imports
        if settings.provenance:
            from ..provenance.watermark import preload

            preload()
        if settings.variants and (settings.all_variants or settings.bank_variant_kinds is None
                                  or "region" in settings.bank_variant_kinds):
            from ..media.pdq import preload as preload_spans  # the anchored regions' weights

            preload_spans()
    return itertools.chain(head, it)


IN_FLIGHT_PER_WORKER = 32
IN_FLIGHT_MIN = 64
# Items a worker takes (and whose records it returns) at a time. Every exchange with a
# worker costs the parent's pool threads (pickling, pipes, wake-ups) about as much as
# matching and writing a record: chunks of 8 instead of 4 took the parent from ~0.55 to
# ~0.35 CPU-s on the 1,000-file folder (16: ~0.27), and hold a first record back by at
# most 7 files' analysis (bench/RESULTS.md, scan throughput, fourth pass).
CHUNK = 8


def analyze_all(
    items: Iterable[WalkItem],
    settings: ScanSettings,
    factory: AnalyzerFactory = default_analyzers,
) -> Iterator[FileRecord]:
    """Analyse items on ``settings.workers`` processes; records come back as they finish."""
    if settings.workers <= 1:
        analyzers = factory(settings)
        for item in items:
            yield from analyze_entry(item, settings, analyzers)
        return
    import threading

    ctx = _worker_context()
    if ctx.get_start_method() == "fork":
        items = _preloaded(items, settings, factory)
    # Pool.imap reads its input as fast as it can: a walk of millions of files would
    # sit in the pool's queue. A window of items in flight keeps the parent's memory
    # bounded whatever the walk finds; every item gives exactly one result.
    window = threading.BoundedSemaphore(max(IN_FLIGHT_MIN, IN_FLIGHT_PER_WORKER * settings.workers))
    stop = threading.Event()

    def fed() -> Iterator[WalkItem]:
        for item in items:
            while not window.acquire(timeout=0.2):
                if stop.is_set():  # the consumer went away: let the pool's feeder thread end
                    return
            yield item

    with ctx.Pool(settings.workers, initializer=_init_worker, initargs=(settings, factory)) as pool:
        try:
            for result in pool.imap_unordered(_work, fed(), chunksize=CHUNK):
                window.release()
                yield from _unspool(result)
        finally:
            stop.set()


def collect_items(inputs: Iterable[str | Path], *, follow_symlinks: bool = False) -> list[WalkItem]:
    """Every walked item at once (for callers that need the list; scans stream instead)."""
    return list(walk(inputs, follow_symlinks=follow_symlinks))
