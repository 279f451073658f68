"""One partition of a distributed scan, as a worker runs it, and the output layout.

A partition is a list of items (a few hundred files). The worker analyses each with the
local engine's own function (``pipeline.analyze_entry``: the same analyzers, the same
records), searches the shipped bank snapshot, and writes the partition's records where
the scan's output lives::

    OUT/_manifest.json            the scan: header, settings, banks, progress, summary
    OUT/part-000042.jsonl         records of partition 42 (or .parquet)
    OUT/_held/part-000042.jsonl   its records that can take part in case links
    OUT/_done/part-000042.json    partition 42 is finished: counts, summary, input digest
    OUT/part-links.jsonl          the held records with their links (written last, by the client)
    OUT/_banks/<id>/              the bank snapshot the workers copy once per machine
    OUT/_plan/seg-000003.json     manifest segment 3 cut into partitions: where each one's items are
    OUT/_plan/seg-000003-000.jsonl  those items (up to 64 partitions a file), written by a worker
    OUT/_tmp/                     files being written

Every file is written under a temporary name and then renamed (copy + delete on object
stores), and a partition's files always have the same names: a partition done twice (a
worker killed after its commit, a retry) replaces its own output, so every input is in
the output exactly once. ``_done`` is written last; without it a partition is redone.

Manifests are read by the workers, never whole by the client: the client cuts each one
into segments (byte ranges of a plain list, or the data files of an S3 Inventory), a worker
reads a segment (``split_segment``) and writes its items, cut into partitions, under
``_plan/``; the client gets back only where each partition's items lie, and a partition's
task reads its items with one ranged read. A plan is written once and kept, so a resumed
scan runs the same partitions.

Bank hits need the banks' metadata (which bank, content id, note): the worker returns the
hit signal ids, the client resolves them against the store (the one place that holds the
metadata) and a second, small task finishes the partition from its pending file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ScanSettings
from ..report.jsonl import dumps
from ..report.schema import ErrorInfo, FileRecord, FileTimes
from .custody import redact
from .pipeline import AnalyzerFactory, analyze_entry, analyze_item, default_analyzers
from .sources import Fetched, Item, Prefetch, RemoteItem, fetch_object, filesystem, object_mtime
from .walk import WalkItem

DONE = "_done"
PLAN = "_plan"
HELD = "_held"
TMP = "_tmp"
BANKS = "_banks"
MANIFEST = "_manifest.json"
LINKS_PART = "part-links"


def part_name(n: int) -> str:
    return f"part-{n:06d}"


def item_key(item: Item) -> str:
    return item.url if isinstance(item, RemoteItem) else str(item.path)


def digest(items: Sequence[Item]) -> str:
    """What a partition holds, to check on --resume that it is the same partition."""
    h = hashlib.sha256()
    for it in items:
        h.update(item_key(it).encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class PartSpec:
    number: int
    items: tuple[Item, ...]
    digest: str
    plan: tuple[str, int, int] | None = None  # (plan file, start, end): items a worker wrote (manifests)


def item_to_json(item: Item) -> dict[str, Any]:
    if isinstance(item, RemoteItem):
        return {"u": item.url, "s": item.size, "m": item.mtime, "p": item.problem, "i": item.is_input}
    return {"f": str(item.path), "p": item.problem, "l": item.link_target, "i": item.is_input}


def item_from_json(d: dict[str, Any]) -> Item:
    if "u" in d:
        return RemoteItem(d["u"], d.get("s"), problem=d.get("p"), is_input=bool(d.get("i")), mtime=d.get("m"))
    return WalkItem(Path(d["f"]), problem=d.get("p"), link_target=d.get("l"), is_input=bool(d.get("i")))


@dataclass(frozen=True)
class Job:
    """What every task of one scan shares (small: settings and names, never the index)."""

    scan_id: str
    out: str  # output folder, local path or URL
    settings: ScanSettings
    threshold: int | None = None
    banks_url: str | None = None  # the published snapshot folder
    banks_id: str | None = None
    fmt: str = "jsonl"
    case_links: bool = True
    factory: AnalyzerFactory = default_analyzers


# ----------------------------------------------------------------------------- output store


class Store:
    """The output folder, local or in an object store, through one small interface."""

    def __init__(self, out: str) -> None:
        from .sources import local_path

        self.out = out.rstrip("/") or out
        self.local = local_path(out)
        if self.local is None:
            self.fs, self.root = filesystem(out)
            self.root = self.root.rstrip("/")
        else:
            # absolute: workers started elsewhere do not share the client's working folder
            self.local = self.out = os.path.abspath(self.local)
            self.fs, self.root = None, self.local

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def url(self, rel: str) -> str:
        return f"{self.out}/{rel}"

    def exists(self, rel: str) -> bool:
        if self.fs is None:
            return os.path.exists(self.path(rel))
        return bool(self.fs.exists(self.path(rel)))

    def read(self, rel: str) -> bytes:
        if self.fs is None:
            with open(self.path(rel), "rb") as f:
                return f.read()
        return bytes(self.fs.cat_file(self.path(rel)))

    def write(self, rel: str, data: bytes) -> None:
        """Write ``rel`` whole or not at all: a temporary name, then a rename (local) or
        copy + delete (object stores, where the copy appears whole)."""
        tmp = f"{TMP}/{rel.replace('/', '_')}.{uuid.uuid4().hex}"
        if self.fs is None:
            final = self.path(rel)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.makedirs(self.path(TMP), exist_ok=True)
            with open(self.path(tmp), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(self.path(tmp), final)
            return
        self.fs.pipe_file(self.path(tmp), data)
        self.fs.mv(self.path(tmp), self.path(rel))

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        if self.fs is None:
            with open(self.path(rel), "rb") as f:
                f.seek(start)
                return f.read(end - start)
        return bytes(self.fs.cat_file(self.path(rel), start=start, end=end))

    def list(self, rel: str) -> list[str]:
        """Names in a sub-folder (empty when it does not exist)."""
        if self.fs is None:
            try:
                return sorted(os.listdir(self.path(rel)))
            except FileNotFoundError:
                return []
        self.fs.invalidate_cache(self.path(rel))  # workers wrote there since any earlier listing
        try:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path(rel), detail=False))
        except FileNotFoundError:
            return []

    def remove_tree(self, rel: str) -> None:
        if self.fs is None:
            shutil.rmtree(self.path(rel), ignore_errors=True)
            return
        try:
            self.fs.rm(self.path(rel), recursive=True)
        except FileNotFoundError:
            pass

    def mkdir(self) -> None:
        if self.fs is None:
            os.makedirs(self.root, exist_ok=True)
        else:
            self.fs.makedirs(self.root, exist_ok=True)


_STORES: dict[str, Store] = {}


def _store(out: str) -> Store:
    s = _STORES.get(out)
    if s is None:
        s = _STORES[out] = Store(out)
    return s


# ----------------------------------------------------------------------------- analysis


_ANALYZERS: dict[Any, Any] = {}
_ANALYZERS_LOCK = threading.Lock()


def _analyzers(job: Job) -> Any:
    key = (job.factory, repr(job.settings))
    with _ANALYZERS_LOCK:
        a = _ANALYZERS.get(key)
        if a is None:
            _ANALYZERS.clear()
            a = _ANALYZERS[key] = job.factory(job.settings)
        return a


def _records(item: Item, settings: ScanSettings, analyzers: Any, tmpdir: Path,
             fetched: Fetched | None = None) -> Iterator[FileRecord]:
    if isinstance(item, WalkItem):
        yield from analyze_entry(item, settings, analyzers)
        return
    yield from _remote_records(item, settings, analyzers, tmpdir, fetched)


def _remote_records(item: RemoteItem, settings: ScanSettings, analyzers: Any, tmpdir: Path,
                    fetched: Fetched | None = None) -> Iterator[FileRecord]:
    """An object's records, exactly as a local file's, with its URL as the path (an
    archive's members as ``URL!/member``). The object is copied into a private temporary
    file first (the analyzers and archive readers need a file), never past the size limit."""
    from ..containers.members import safe_suffix

    if item.problem:
        yield FileRecord(path=redact(item.url), kind="error",
                         errors=[ErrorInfo(stage="read", code="bad-input", message=item.problem)])
        return
    if fetched is None:
        info: dict[str, Any] = {}
        tmp, problem, size = fetch_object(item.url, settings.limits.max_file_bytes, tmpdir, safe_suffix(item.url),
                                          item.size, info)
    else:  # copied ahead by the partition's Prefetch
        tmp, problem, size, info = fetched
    if tmp is None:
        rec = FileRecord(path=redact(item.url), kind="error")
        if problem and problem.startswith("too-large:"):
            rec.size = size
            rec.errors.append(ErrorInfo(stage="read", code="too-large",
                                        message=f"{size} bytes exceeds the limit of {settings.limits.max_file_bytes}"))
        else:
            rec.errors.append(ErrorInfo(stage="read", code="bad-input", message=problem or "cannot read"))
        yield rec
        return
    try:
        record = analyze_item(WalkItem(tmp), settings, analyzers)
        record.path = redact(item.url)
        # the copy's times say nothing about the object: the store's last-modified time does
        mtime = item.mtime or object_mtime(info)
        record.times = FileTimes(source="object-store", mtime=mtime) if mtime else None
        for e in record.errors:
            e.message = e.message.replace(str(tmp), record.path)
        from ..containers import archive_to_walk, walk_archive

        if (fmt := archive_to_walk(tmp, record, settings.limits)) is not None:

            def member(path: Path) -> FileRecord:
                return analyze_item(WalkItem(path), settings, analyzers)

            yield from walk_archive(tmp, record, member, settings.limits, fmt)
        else:
            yield record
    finally:
        tmp.unlink(missing_ok=True)


def _queries(rec: FileRecord) -> list[Any]:
    """The record's signals and, for a video, its vPDQ frames (banks.matcher.subject_queries)."""
    from ..banks.matcher import subject_queries

    v = rec.video
    return subject_queries(rec.signals, v.vpdq if v else (), v.vpdq_trimmed if v else (),
                           v.vpdq_displayed if v else (), v.vpdq_mirrored if v else (),
                           v.vpdq_turned if v else None)[0]


def run_partition(job: Job, spec: PartSpec) -> dict[str, Any]:
    """Analyse, search and (without bank hits) commit one partition. Returns its result:
    ``{"status": "done", ...}`` or ``{"status": "pending", "signal_ids": [...]}`` when hits
    need the client to resolve them (then ``finish_partition``)."""
    started = time.perf_counter()
    settings = job.settings
    analyzers = _analyzers(job)
    banks = None
    store = _store(job.out)
    if job.banks_id and job.banks_url:
        from ..banks.snapshot import worker_banks
        from .sources import local_path

        lp = local_path(job.banks_url)
        if lp is not None:
            import fsspec

            bfs, broot = fsspec.filesystem("file"), lp
        else:
            bfs, broot = filesystem(job.banks_url)
        banks = worker_banks(bfs, broot, job.banks_id)
    records: list[FileRecord] = []
    hits: list[list[Any]] = []
    tops = 0
    nbytes = 0
    items = spec.items if spec.plan is None else read_plan(store, spec.plan)
    tmpdir = Path(tempfile.mkdtemp(prefix="assay-objects-"))
    prefetch = None
    if any(isinstance(it, RemoteItem) and not it.problem for it in items):
        from ..containers.members import safe_suffix

        prefetch = Prefetch(items, settings.limits.max_file_bytes, tmpdir, safe_suffix)
    try:
        for i, item in enumerate(items):
            tops += 1
            fetched = prefetch.take(i) if prefetch is not None and i in prefetch.group_of else None
            for rec in _records(item, settings, analyzers, tmpdir, fetched):
                if rec.member_of is None and rec.size:
                    nbytes += rec.size
                h: list[Any] = []
                if banks is not None and (rec.signals or rec.video):
                    h = [list(x) for x in banks.search(_queries(rec), job.threshold, settings.include_low_quality)]
                records.append(rec)
                hits.append(h)
    finally:
        if prefetch is not None:
            prefetch.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    ids = sorted({int(x[2]) for h in hits for x in h})
    meta = {"part": spec.number, "digest": spec.digest, "files": tops, "bytes": nbytes,
            "analysis_seconds": round(time.perf_counter() - started, 4)}
    if not ids:
        return _commit(job, store, spec, records, meta)
    lines = [dumps({"r": r.model_dump(mode="json", by_alias=True), "h": h}) for r, h in zip(records, hits, strict=True)]
    store.write(f"{TMP}/pending-{spec.number:06d}.jsonl", ("\n".join(lines) + "\n").encode())
    return {**meta, "status": "pending", "signal_ids": ids}


PLAN_CHUNK_PARTS = 64  # partitions whose items share one plan file
UNREADABLE_KEPT = 1000  # unreadable inputs a segment reports (the rest are error records only)


def plan_name(segment: int, chunk: int | None = None) -> str:
    return f"{PLAN}/seg-{segment:06d}.json" if chunk is None else f"{PLAN}/seg-{segment:06d}-{chunk:03d}.jsonl"


def split_segment(job: Job, segment: int, seg: dict[str, Any], partition_size: int) -> dict[str, Any]:
    """Read one manifest segment (on a worker) and cut its items into partitions of
    ``partition_size``: the items go to plan files under ``_plan/`` (the same bytes
    whenever the segment is read again), the index (where each partition lies, with its
    digest) last; returns the index. The client holds only the index."""
    from .sources import Segment, segment_items

    store = _store(job.out)
    parts: list[list[Any]] = []
    unreadable: list[str] = []
    buf: list[bytes] = []
    size = 0
    chunk = 0
    batch: list[Item] = []
    nitems = 0

    def close_partition() -> None:
        nonlocal size
        data = "".join(json.dumps(item_to_json(it)) + "\n" for it in batch).encode()
        parts.append([plan_name(segment, chunk), size, size + len(data), len(batch), digest(batch)])
        buf.append(data)
        size += len(data)
        batch.clear()

    def close_chunk() -> None:
        nonlocal size, chunk
        if buf:
            store.write(plan_name(segment, chunk), b"".join(buf))
            buf.clear()
            size = 0
            chunk += 1

    for it in segment_items(Segment.from_json_dict(seg), follow_symlinks=job.settings.follow_symlinks):
        nitems += 1
        if it.is_input and it.problem and len(unreadable) < UNREADABLE_KEPT:
            unreadable.append(redact(it.url) if isinstance(it, RemoteItem) else str(it.path))
        batch.append(it)
        if len(batch) >= partition_size:
            close_partition()
            if len(buf) >= PLAN_CHUNK_PARTS:
                close_chunk()
    if batch:
        close_partition()
    close_chunk()
    index = {"segment": segment, "source": seg, "partition_size": partition_size, "items": nitems,
             "partitions": parts, "unreadable": unreadable}
    store.write(plan_name(segment), json.dumps(index).encode())
    return index


def read_plan(store: Store, ref: tuple[str, int, int]) -> list[Item]:
    rel, start, end = ref
    return [item_from_json(json.loads(line)) for line in store.read_range(rel, start, end).splitlines() if line]


def finish_partition(job: Job, spec: PartSpec, refs: dict[int, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Second step of a partition with bank hits: matches from the resolved refs, commit."""
    from ..banks.matcher import (
        Query,
        split_known_good,
        subject_matches,
        subject_queries,
    )

    store = _store(job.out)
    rel = f"{TMP}/pending-{spec.number:06d}.jsonl"
    records: list[FileRecord] = []
    for line in store.read(rel).decode().splitlines():
        d = json.loads(line)
        rec = FileRecord.model_validate(d["r"])
        hits = [(int(p), Query(*q), int(sid), int(dist)) for p, q, sid, dist in d["h"]]
        if hits:
            v = rec.video
            queries, n, kept = subject_queries(rec.signals, v.vpdq if v else (), v.vpdq_trimmed if v else (),
                                               v.vpdq_displayed if v else (), v.vpdq_mirrored if v else (),
                                               v.vpdq_turned if v else None)
            findings, known = split_known_good(subject_matches(
                queries, n, kept, hits, refs, job.threshold, variants=job.settings.variants))
            rec.matches += findings
            if known:
                rec.known_good = known
        records.append(rec)
    result = _commit(job, store, spec, records, meta)
    try:
        if store.fs is None:
            os.unlink(store.path(rel))
        else:
            store.fs.rm(store.path(rel))
    except OSError:
        pass
    return result


def fingerprint_model(path: str, kind: str, max_bytes: int) -> tuple[str, Any]:
    """--model-links: one model file's weight fingerprint, read where it lives (a worker's
    disk, or the object copied into a temporary file). ``("ok", fingerprint)``,
    ``("missing", None)`` when the file is gone, or ``("error", message)``."""
    from ..containers.members import safe_suffix
    from ..models.fingerprint import fingerprint_file
    from .sources import local_path

    lp = local_path(path)
    if lp is not None:
        if not Path(lp).exists():
            return "missing", None
        try:
            return "ok", fingerprint_file(Path(lp), kind=kind)
        except Exception as exc:  # noqa: BLE001 (as the local engine: the file is skipped, the scan goes on)
            return "error", str(exc)
    if "***" in path:
        return "error", "its URL carried a secret the report does not keep: it cannot be read again"
    tmpdir = Path(tempfile.mkdtemp(prefix="assay-model-"))
    try:
        tmp, problem, _size = fetch_object(path, max_bytes, tmpdir, safe_suffix(path))
        if tmp is None:
            return ("missing", None) if problem and "no such object" in problem else ("error", problem or "cannot read")
        try:
            fp = fingerprint_file(tmp, kind=kind)
        except Exception as exc:  # noqa: BLE001
            return "error", str(exc).replace(str(tmp), path)
        fp.source["file"] = path.rsplit("/", 1)[-1]
        return "ok", fp
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def answer_model(path: str, fp: Any, entries: list[Any], max_bytes: int) -> Any:
    """--model-links: the lineage answer for one model file against the entries picked
    for it, with its weights at hand (so that a permuted copy is aligned as the local
    engine aligns it), read where it lives: a worker's disk, or the object copied into a
    temporary file (a second read of it: its fingerprint was taken before the others'
    were known). By the fingerprint alone when the file cannot be read again."""
    from ..containers.members import safe_suffix
    from ..models.lineage import answer
    from .model_links import answer_with_weights
    from .sources import local_path

    lp = local_path(path)
    if lp is not None:
        return answer_with_weights(lp, fp, entries)
    if "***" in path:  # its URL carried a secret the report does not keep
        return answer(fp, entries)
    tmpdir = Path(tempfile.mkdtemp(prefix="assay-model-"))
    try:
        tmp, _problem, _size = fetch_object(path, max_bytes, tmpdir, safe_suffix(path))
        return answer(fp, entries) if tmp is None else answer_with_weights(tmp, fp, entries)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _summary_of(records: Sequence[FileRecord]) -> dict[str, Any]:
    from .run import ScanSummary
    from .timings import Timings

    s = ScanSummary(timings=Timings())
    for r in records:
        s.add(r)
    return {"files": s.files, "kinds": dict(s.kinds), "with_errors": s.with_errors,
            "matched_files": s.matched_files, "matches_by_bank": dict(s.matches_by_bank),
            "low_quality": s.low_quality, "ai_evidence": s.ai_evidence,
            "dangerous_models": s.dangerous_models, "matched_paths": s.matched_paths,
            "known_good": s.known_good, "links": s.links, "archives": s.archives,
            "archive_members": s.archive_members, "member_holders": s.member_holders,
            "text_reproductions": s.text_reproductions,
            "timings": s.timings.to_json_dict() if s.timings is not None else None}


def _commit(job: Job, store: Store, spec: PartSpec, records: list[FileRecord], meta: dict[str, Any]) -> dict[str, Any]:
    from ..banks.matcher import drop_unmatched_variants

    for r in records:  # matched by now: the variant hashes that matched nothing go
        drop_unmatched_variants(r, keep_all=job.settings.all_variants)
    held: list[FileRecord] = []
    kept: list[FileRecord] = []
    if job.case_links:
        from .links import CaseLinker

        probe = CaseLinker()
        for r in records:
            (held if probe.hold(r) else kept).append(r)
    else:
        kept = records
    name = part_name(spec.number)
    if held:
        store.write(f"{HELD}/{name}.jsonl", encode_records(held, "jsonl"))
    store.write(f"{name}.{job.fmt}", encode_records(kept, job.fmt))
    done = {**meta, "status": "done", "records": len(records), "held": len(held),
            "summary": _summary_of(records), "host": socket.gethostname(), "pid": os.getpid()}
    store.write(f"{DONE}/{name}.json", json.dumps(done).encode())
    return done


PARQUET_COLUMNS = ("path", "kind", "format", "size", "md5", "sha1", "sha256", "pdq", "matched", "errors", "record")


def encode_records(records: Sequence[FileRecord], fmt: str) -> bytes:
    """A part file's bytes: JSON Lines as the local report writes them, or Parquet with
    the columns most queries need beside the whole record as JSON (``record``)."""
    if fmt == "jsonl":
        return "".join(dumps(r.to_json_dict()) + "\n" for r in records).encode()
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    def sig(r: FileRecord, t: str) -> str | None:
        return next((s.value for s in r.signals if s.type == t and s.variant is None), None)

    cols: dict[str, list[Any]] = {c: [] for c in PARQUET_COLUMNS}
    for r in records:
        cols["path"].append(r.path)
        cols["kind"].append(r.kind)
        cols["format"].append(r.format)
        cols["size"].append(r.size)
        for t in ("md5", "sha1", "sha256", "pdq"):
            cols[t].append(sig(r, t))
        cols["matched"].append(bool(r.matches))
        cols["errors"].append(len(r.errors))
        cols["record"].append(dumps(r.to_json_dict()))
    schema = pa.schema([("path", pa.string()), ("kind", pa.string()), ("format", pa.string()),
                        ("size", pa.int64()), ("md5", pa.string()), ("sha1", pa.string()),
                        ("sha256", pa.string()), ("pdq", pa.string()), ("matched", pa.bool_()),
                        ("errors", pa.int32()), ("record", pa.string())])
    buf = io.BytesIO()
    pq.write_table(pa.table(cols, schema=schema), buf, compression="zstd")
    return buf.getvalue()


def decode_records(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """The record dicts of a part file (for the client's case links, tests and tools)."""
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    import io

    import pyarrow.parquet as pq

    return [json.loads(x) for x in pq.read_table(io.BytesIO(data), columns=["record"]).column(0).to_pylist()]
