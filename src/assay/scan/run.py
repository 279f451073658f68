"""One scan, start to finish: the library call behind ``assay scan`` (and the service)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ScanSettings
from ..report.schema import FileRecord
from .custody import now_utc, scan_header
from .pipeline import AnalyzerFactory, analyze_all, default_analyzers
from .timings import Timings, timed
from .walk import WalkItem, walk

if TYPE_CHECKING:
    from ..banks.matcher import Matcher
    from .links import CaseLinks

SUMMARY_SCHEMA = "assay.scan-summary/1"


@dataclass
class ScanSummary:
    files: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    with_errors: int = 0
    matched_files: int = 0
    matches_by_bank: Counter[str] = field(default_factory=Counter)
    low_quality: int = 0
    ai_evidence: Counter[str] = field(default_factory=Counter)  # by kind: image, document, audio, video
    dangerous_models: int = 0
    seconds: float = 0.0
    matched_paths: list[str] = field(default_factory=list)
    known_good: int = 0  # files with an exact hit in a known-good bank (not findings)
    links: int = 0  # symbolic links reported, not followed
    archives: int = 0
    archive_members: int = 0  # records of files read from inside archives
    # Files not archives that members were read from: a zip at their end, images cut out
    member_holders: int = 0
    _holding: set[str] = field(default_factory=set, repr=False)  # member_of values not met yet
    text_reproductions: int = 0  # text files with passages of indexed works
    # Inputs named by the user that could not be read at all (missing, unreadable).
    unreadable_inputs: list[str] = field(default_factory=list)
    # Images and model files of this scan tied by hashes (None: linking was off).
    case_links: CaseLinks | None = None
    # Chain of custody: the scan's id (also in the report's header line) and its times (UTC).
    scan_id: str = ""
    started_at: str = ""
    ended_at: str = ""
    # Cost per analysis step, added up over the records (scan --timings); None: not asked.
    timings: Timings | None = None

    @property
    def nothing_scanned(self) -> bool:
        """True when every record is an input that could not be read (exit status 1)."""
        return bool(self.unreadable_inputs) and self.files <= len(self.unreadable_inputs)

    def add(self, rec: FileRecord) -> None:
        self.files += 1
        self.kinds[rec.kind] += 1
        if rec.errors:
            self.with_errors += 1
        if rec.matches:
            self.matched_files += 1
            if len(self.matched_paths) < 1000:
                self.matched_paths.append(rec.path)
            for bank in {m.bank for m in rec.matches}:
                self.matches_by_bank[bank] += 1
        if rec.known_good:
            self.known_good += 1
        if rec.kind == "link":
            self.links += 1
        elif rec.kind == "archive":
            self.archives += 1
        if rec.member_of is not None:
            self.archive_members += 1
            self._holding.add(rec.member_of)
        if self._holding and rec.path in self._holding:  # a holder's record follows its members
            self._holding.discard(rec.path)
            if rec.kind != "archive":
                self.member_holders += 1
        if rec.image and rec.image.low_quality and not any(m.signal_type == "pdq" for m in rec.matches):
            # its own PDQ was not matched; one of its variants may have been (a later
            # frame, a 16-bit picture scaled): then it is a matched file, not this
            self.low_quality += 1
        if rec.provenance and rec.provenance.verdict.lower().startswith("ai-"):
            self.ai_evidence[rec.kind] += 1
        if rec.model is not None and _is_dangerous(rec):
            self.dangerous_models += 1
        if rec.text and rec.text.get("spans"):
            self.text_reproductions += 1
        if self.timings is not None:
            self.timings.add(rec.timings)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema": SUMMARY_SCHEMA,
            "files": self.files,
            "kinds": dict(self.kinds),
            "files_with_errors": self.with_errors,
            "matched_files": self.matched_files,
            "matches_by_bank": dict(self.matches_by_bank),
            "known_good_files": self.known_good,
            "low_quality_images": self.low_quality,
            "images_with_ai_evidence": self.ai_evidence["image"],
            "files_with_ai_evidence": sum(self.ai_evidence.values()),  # documents, audio, video too
            "dangerous_models": self.dangerous_models,
            "links": self.links,
            "archives": self.archives,
            "archive_members": self.archive_members,
            "member_holders": self.member_holders,
            "text_reproductions": self.text_reproductions,
            "unreadable_inputs": self.unreadable_inputs[:1000],
            **({"case_links": self.case_links.links,
                "models_not_present": len(self.case_links.not_present)} if self.case_links else {}),
            "scan_id": self.scan_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "seconds": round(self.seconds, 3),
            **({"timings": self.timings.to_json_dict()} if self.timings is not None else {}),
        }


def _is_dangerous(rec: FileRecord) -> bool:
    safety = getattr(rec.model, "safety", None)
    verdict = getattr(safety, "verdict", None) if safety is not None else None
    if verdict is None and isinstance(safety, dict):
        verdict = safety.get("verdict")
    return verdict == "dangerous"


def run_scan(
    inputs: Iterable[str | Path],
    settings: ScanSettings,
    matcher: Matcher | None,
    sink: Callable[[FileRecord], None],
    *,
    threshold: int | None = None,
    on_total: Callable[[int], None] | None = None,
    on_record: Callable[[FileRecord], None] | None = None,
    on_bytes: Callable[[int, int], None] | None = None,
    factory: AnalyzerFactory = default_analyzers,
    case_links: bool = True,
    on_header: Callable[[dict[str, Any]], None] | None = None,
    argv: Sequence[str] | None = None,
    model_links: bool = False,
    timings: bool = False,
    own_output: Sequence[str | Path] = (),
) -> ScanSummary:
    """Scan ``inputs``; every record goes to ``sink`` after matching. With ``case_links``
    the records that can link (model files, images naming model hashes) go to ``sink``
    at the end, with their links (see assay.scan.links); every other record as it finishes. ``on_header``
    gets the chain-of-custody header (the report's first line) before any record;
    ``argv`` is the command line it records (default sys.argv; passwords redacted);
    ``model_links`` also links the model files among themselves by their weights
    (assay.scan.model_links: one fingerprint per model file at the end of the scan).
    ``timings``: the summary adds up what each analysis step cost (ScanSummary.timings).
    ``own_output``: the files (or folders) the scan writes (its report, the report's
    ``.partial`` and ``.sha256``): never scanned, even inside an input folder, and named
    in the header (``not_scanned``).
    ``on_total`` gets the number of files found so far (it grows with the walk and with
    archive members), ``on_record`` each record as it is written, and ``on_bytes`` the
    bytes of walked files analysed so far and the bytes of all files walked so far."""
    started = time.perf_counter()
    summary = ScanSummary(scan_id=str(uuid.uuid4()), started_at=now_utc(),
                          timings=Timings(workers=settings.workers) if timings else None)
    inputs = list(inputs)
    if on_header is not None:
        on_header(scan_header(summary.scan_id, summary.started_at, inputs, settings,
                              matcher.store if matcher is not None else None, argv, own_output))
    # walked: counted by the thread that feeds the workers; members: by this one
    counts = {"walked": 0, "members": 0, "bytes_walked": 0, "bytes_done": 0}
    # the walk's size of each file walked and not yet analysed (a window of the walk: it
    # runs ahead of the analysis by the items in flight)
    sizes: dict[str, int] = {}

    def walked() -> Iterator[WalkItem]:
        # Analysis starts with the first file; the totals grow as the walk proceeds.
        for item in walk(inputs, follow_symlinks=settings.follow_symlinks, skip=own_output):
            if item.is_input and item.problem:
                summary.unreadable_inputs.append(str(item.path))
            counts["walked"] += 1
            if on_total:
                on_total(counts["walked"] + counts["members"])
            if item.size is not None and on_bytes:
                sizes[str(item.path)] = item.size
                counts["bytes_walked"] += item.size
                on_bytes(counts["bytes_done"], counts["bytes_walked"])
            yield item

    items = walked()
    from ..banks.matcher import drop_unmatched_variants

    if matcher is not None:
        from ..banks.matcher import split_known_good
    linker = None
    if case_links:
        from .links import CaseLinker

        linker = CaseLinker(model_links=model_links)
    for rec in analyze_all(items, settings, factory):
        if matcher is not None and rec.signals:
            # extend: analyzers may have matched already (lineage against fingerprint banks)
            with timed(rec, "match"):
                findings, known = split_known_good(matcher.match_subject(
                    rec.signals, rec.video.vpdq if rec.video else (), rec.video.vpdq_trimmed if rec.video else (),
                    displayed=rec.video.vpdq_displayed if rec.video else (),
                    mirrored=rec.video.vpdq_mirrored if rec.video else (),
                    turned=rec.video.vpdq_turned if rec.video else None,
                    threshold=threshold,
                    include_low_quality=settings.include_low_quality,
                    variants=settings.variants,
                ))
            rec.matches += findings
            if known:
                rec.known_good = known
        drop_unmatched_variants(rec, keep_all=settings.all_variants)
        summary.add(rec)
        if on_bytes and rec.member_of is None and (size := sizes.pop(rec.path, None)) is not None:
            counts["bytes_done"] += size
            on_bytes(counts["bytes_done"], counts["bytes_walked"])
        if rec.member_of is not None and on_total:
            counts["members"] += 1  # archive members are found as their archive is read
            on_total(counts["walked"] + counts["members"])
        if linker is not None and linker.hold(rec):
            continue
        sink(rec)
        if on_record:
            on_record(rec)
    if linker is not None:
        summary.case_links = linker.resolve()
        for rec in linker.records():
            sink(rec)
            if on_record:
                on_record(rec)
    summary.seconds = time.perf_counter() - started
    summary.ended_at = now_utc()
    return summary
