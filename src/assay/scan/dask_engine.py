"""`assay scan --engine dask`: the same scan on a Dask cluster, partitioned, exactly once.

The client walks (or lists) and cuts the items into partitions in a fixed order; a
manifest it only cuts into segments (byte ranges of a list, the data files of an S3
Inventory), which workers read and cut into partitions (``split_segment``), so billions of
keys never pass through the client; it keeps a bounded window of partitions in flight; workers analyse, search
the shipped bank snapshot and commit each partition's records themselves
(:mod:`assay.scan.partitions`). The client holds small things only: per-partition counts
and summaries, the hits it resolves against the store, and at the end the few records
that case links need. A partition whose worker died or raised is submitted again, at most
``retries`` times; one bad file is a record, never a failed partition.

The ``_manifest.json`` beside the parts says what the scan is (the chain-of-custody header
of a local report: inputs, settings, banks and their snapshot ids), how far it got, and at
the end its summary and case links. ``--resume`` re-plans the same partitions, skips those
with a ``_done`` marker and does the rest; a scan whose inputs, settings or banks changed
since is refused rather than mixed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import ScanSettings
from ..errors import AssayError
from ..report.schema import FileRecord
from .custody import now_utc, redact, scan_header
from .partitions import (
    BANKS,
    DONE,
    HELD,
    LINKS_PART,
    MANIFEST,
    PLAN,
    TMP,
    Job,
    PartSpec,
    Store,
    decode_records,
    digest,
    encode_records,
    finish_partition,
    plan_name,
    run_partition,
    split_segment,
)
from .pipeline import AnalyzerFactory, default_analyzers
from .run import ScanSummary
from .sources import Item, RemoteItem, Segment, items, local_path, manifest_segments
from .timings import Timings

if TYPE_CHECKING:
    from ..banks.matcher import Matcher

MANIFEST_SCHEMA = "assay.dist-manifest/1"
DEFAULT_PARTITION = 256
DEFAULT_RETRIES = 3


@dataclass
class Progress:
    parts_done: int = 0
    parts_skipped: int = 0  # finished by an earlier run (--resume)
    parts_planned: int = 0
    walk_done: bool = False
    files: int = 0
    records: int = 0
    bytes: int = 0
    retried: int = 0
    failed: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def to_json_dict(self) -> dict[str, Any]:
        secs = time.perf_counter() - self.started
        return {"parts_done": self.parts_done, "parts_skipped": self.parts_skipped,
                "parts_planned": self.parts_planned, "planning_done": self.walk_done,
                "files": self.files, "records": self.records, "bytes": self.bytes,
                "seconds": round(secs, 3), "files_per_s": round(self.files / secs, 2) if secs > 0 else 0.0,
                "partitions_retried": self.retried, "failed_parts": self.failed[:1000]}


def disable_malloc_trim() -> None:
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ for the workers it spawns; with it the
    planning measurement gave 631-1,135 files/s, without 1,406-1,625 (docs/distributed.md)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    dask.config.set({"distributed.nanny.pre-spawn-environ": env})


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A client on ``scheduler``, or on a LocalCluster of ``workers`` single-threaded
    worker processes that is stopped on the way out."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise AssayError("the Dask engine needs the 'distributed' package",
                         hint="pip install 'assay[dask]'") from None
    if scheduler:
        client = Client(scheduler, timeout=30)
        try:
            yield client
        finally:
            client.close()
        return
    disable_malloc_trim()
    cluster = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", host="127.0.0.1")
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def plan(all_items: Iterable[Item], size: int, counter: list[int] | None = None) -> Iterator[PartSpec]:
    """Cut the items into partitions of ``size`` in order: the same inputs give the same
    partitions, which is what --resume relies on. ``counter[0]``: partitions so far."""
    batch: list[Item] = []
    n = 0
    for it in all_items:
        batch.append(it)
        if len(batch) >= size:
            yield PartSpec(n, tuple(batch), digest(batch))
            n += 1
            batch = []
            if counter is not None:
                counter[0] = n
    if batch:
        yield PartSpec(n, tuple(batch), digest(batch))
        if counter is not None:
            counter[0] = n + 1


SPLITS_AHEAD = 4  # manifest segments being read by workers ahead of the partitions submitted


def segment_specs(client: Any, job: Job, store: Store, segments: Sequence[Segment], first: int,
                  partition_size: int, retries: int, on_index: Callable[[dict[str, Any]], None]) -> Iterator[PartSpec]:
    """The partitions of the manifests' segments, numbered from ``first`` in segment order.
    Workers read the segments (a few ahead, before any partition waiting in the queue);
    a segment read by an earlier run (its ``_plan`` index exists) is not read again."""
    planned = {n for n in store.list(PLAN) if n.endswith(".json")}
    futures: dict[int, tuple[Any, int]] = {}

    def submit(i: int, attempt: int) -> None:
        futures[i] = (client.submit(split_segment, job, i, segments[i].to_json_dict(), partition_size,
                                    pure=False, priority=10,
                                    key=f"assay-{job.scan_id[:8]}-seg{i}-split_segment-{attempt}"), attempt)

    def ahead(i: int) -> None:
        for j in range(i, min(i + SPLITS_AHEAD, len(segments))):
            if j not in futures and plan_name(j).split("/", 1)[1] not in planned:
                submit(j, 0)

    n = first
    try:
        for i in range(len(segments)):
            ahead(i)
            if i not in futures:
                index = json.loads(store.read(plan_name(i)))
            else:
                while True:
                    fut, attempt = futures[i]
                    try:
                        index = fut.result()
                        break
                    except Exception as exc:  # the worker died or could not write: bounded retries
                        if attempt >= retries:
                            raise AssayError(f"{redact(segments[i].url)}: reading this part of manifest "
                                             f"{redact(segments[i].manifest)} failed {retries + 1} times: "
                                             f"{type(exc).__name__}: {exc}",
                                             hint="see the worker logs, then run again with --resume") from None
                        submit(i, attempt + 1)
                del futures[i]
            if index.get("source") != segments[i].to_json_dict() or index.get("partition_size") != partition_size:
                raise AssayError(f"{job.out}: the plan of manifest segment {i} was made for another manifest "
                                 "or partition size; --resume would mix two scans", hint="choose another --out")
            on_index(index)
            for rel, start, end, _count, dig in index["partitions"]:
                yield PartSpec(n, (), dig, plan=(rel, int(start), int(end)))
                n += 1
    finally:
        for fut, _ in futures.values():
            fut.cancel()


def merge_summary(total: ScanSummary, part: dict[str, Any]) -> None:
    total.files += part["files"]
    total.kinds.update(part["kinds"])
    total.with_errors += part["with_errors"]
    total.matched_files += part["matched_files"]
    total.matches_by_bank.update(part["matches_by_bank"])
    total.low_quality += part["low_quality"]
    total.ai_evidence += part["ai_evidence"]
    total.dangerous_models += part["dangerous_models"]
    room = 1000 - len(total.matched_paths)
    if room > 0:
        total.matched_paths.extend(part["matched_paths"][:room])
    total.known_good += part["known_good"]
    total.links += part["links"]
    total.archives += part["archives"]
    total.text_reproductions += part.get("text_reproductions", 0)
    total.archive_members += part["archive_members"]
    total.member_holders += part.get("member_holders", 0)  # absent from partitions of older scans
    if total.timings is not None:
        total.timings.merge(part.get("timings"))


def _ranges(nums: Iterable[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in sorted(nums):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _read_state(store: Store, out: str, rel: str) -> dict[str, Any]:
    """The manifest or a partition's done record, as --resume needs it, or an AssayError
    naming the file: a file damaged since the scan wrote it must not end the resume in a
    traceback, nor feed wrong counts into the summary."""
    where = f"{redact(out).rstrip('/')}/{rel}"
    try:
        obj = json.loads(store.read(rel))
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        if rel == MANIFEST:
            header = obj.get("header")
            if not (isinstance(header, dict) and isinstance(header.get("scan_id"), str)
                    and isinstance(header.get("started_at"), str)):
                raise ValueError("no scan header with its scan_id and start time")
        else:
            if type(obj.get("part")) is not int or obj["part"] < 0 or not isinstance(obj.get("digest"), str):
                raise ValueError("no partition number and digest")
            scratch = ScanSummary(timings=Timings())
            merge_summary(scratch, obj["summary"])
            counts = [scratch.files, scratch.with_errors, scratch.matched_files, scratch.low_quality,
                      scratch.dangerous_models, scratch.known_good, scratch.links, scratch.archives,
                      scratch.archive_members, scratch.member_holders, scratch.text_reproductions,
                      *scratch.kinds.values(), *scratch.matches_by_bank.values(), *scratch.ai_evidence.values()]
            names = [*scratch.kinds, *scratch.matches_by_bank, *scratch.ai_evidence, *scratch.matched_paths]
            if not all(type(n) is int and n >= 0 for n in counts) or not all(isinstance(x, str) for x in names):
                raise ValueError("a summary whose counts are not counts")
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        reason = "JSON nested too deep" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
        hint = ("delete it to scan that partition again with --resume" if rel != MANIFEST
                else "the scan there cannot be resumed; choose another --out")
        raise AssayError(f"{where}: damaged, not as the scan wrote it ({reason[:200]})", hint=hint) from None
    return obj


def _identity(header: dict[str, Any], partition_size: int, fmt: str, threshold: int | None) -> dict[str, Any]:
    """What must be equal for --resume to continue a scan: inputs, settings, banks."""
    return {"inputs": header["inputs"], "manifests": header.get("manifests", []),
            "settings": {k: v for k, v in header["settings"].items() if k != "workers"},
            "banks": [{k: b.get(k) for k in ("name", "kind", "signals", "snapshot")} for b in header["banks"]],
            "partition_size": partition_size, "format": fmt, "threshold": threshold}


def run_dask_scan(
    inputs: Sequence[str],
    settings: ScanSettings,
    matcher: Matcher | None,
    out: str,
    *,
    manifests: Sequence[str] = (),
    scheduler: str | None = None,
    workers: int = 2,
    partition_size: int = DEFAULT_PARTITION,
    fmt: str = "jsonl",
    resume: bool = False,
    retries: int = DEFAULT_RETRIES,
    threshold: int | None = None,
    case_links: bool = True,
    model_links: bool = False,
    factory: AnalyzerFactory = default_analyzers,
    argv: Sequence[str] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_dashboard: Callable[[str], None] | None = None,
    client: Any = None,
    timings: bool = False,
) -> ScanSummary:
    """Scan ``inputs`` (paths, URLs) and ``manifests`` on Dask into ``out``; returns the
    summary (the same as the local engine's for the same files). ``client``: an existing
    ``distributed.Client`` (else one on ``scheduler`` or a LocalCluster of ``workers``)."""
    if fmt not in ("jsonl", "parquet"):
        raise AssayError(f"unknown output format {fmt!r}: jsonl or parquet")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise AssayError("--format parquet needs pyarrow", hint="pip install 'assay[parquet]'") from None
    if partition_size < 1:
        raise AssayError("--partition-size must be at least 1")
    store = Store(out)
    started = time.perf_counter()
    summary = ScanSummary(timings=Timings(workers=workers) if timings else None)
    # the output folder, when local, is never scanned (its part files appear as the scan runs)
    own = [p for p in (local_path(out),) if p is not None]
    header = scan_header("", "", list(inputs), settings, matcher.store if matcher is not None else None, argv, own)
    header["inputs"] = [redact(s) for s in inputs]
    header["inputs_absolute"] = [redact(os.path.abspath(s)) if "://" not in s else redact(s) for s in inputs]
    header["manifests"] = [redact(m) for m in manifests]
    ident = _identity(header, partition_size, fmt, threshold)
    # the client reads an inventory's manifest.json or a list's size, never the entries
    segments = [seg for m in manifests for seg in manifest_segments(m)]
    done: dict[int, dict[str, Any]] = {}
    manifest: dict[str, Any]
    if store.exists(MANIFEST):
        if not resume:
            raise AssayError(f"{out}: already holds a scan ({MANIFEST}); not overwriting it",
                             hint="pass --resume to finish that scan, or choose another --out")
        manifest = _read_state(store, out, MANIFEST)
        if manifest.get("identity") != ident:
            raise AssayError(f"{out}: the scan there was made with other inputs, settings or banks; "
                             "--resume would mix two scans", hint="choose another --out")
        if manifest.get("segments", []) != [seg.to_json_dict() for seg in segments]:
            raise AssayError(f"{out}: a manifest of this scan changed since it began (its files, "
                             "sizes or versions differ); --resume would mix two scans", hint="choose another --out")
        for name in store.list(DONE):
            if name.endswith(".json"):
                d = _read_state(store, out, f"{DONE}/{name}")
                done[d["part"]] = d
        summary.scan_id = manifest["header"]["scan_id"]
        summary.started_at = manifest["header"]["started_at"]
        manifest.setdefault("resumed_at", []).append(now_utc())
    else:
        if resume:
            raise AssayError(f"{out}: no scan to resume here ({MANIFEST} missing)")
        import uuid

        store.mkdir()
        summary.scan_id, summary.started_at = str(uuid.uuid4()), now_utc()
        header["scan_id"], header["started_at"] = summary.scan_id, summary.started_at
        manifest = {"schema": MANIFEST_SCHEMA, "header": header, "identity": ident,
                    "segments": [seg.to_json_dict() for seg in segments]}
    header = manifest["header"]
    if manifest.get("status") == "finished":
        raise AssayError(f"{out}: this scan is already finished", hint="its records are the part-*.jsonl files")
    banks_id = banks_url = None
    if matcher is not None and any(matcher.size().values()):
        from ..banks.snapshot import publish, write_snapshot

        banks_id, local_snap = write_snapshot(matcher)
        banks_url = store.url(f"{BANKS}/{banks_id}")
        if store.fs is None:
            _publish_local(local_snap, store.path(f"{BANKS}/{banks_id}"))
        else:
            publish(local_snap, store.fs, store.path(f"{BANKS}/{banks_id}"))
    if manifest.get("bank_snapshot") not in (None, banks_id):
        raise AssayError(f"{out}: the banks changed since this scan began (snapshot "
                         f"{manifest['bank_snapshot']}, now {banks_id})", hint="choose another --out")
    manifest["bank_snapshot"] = banks_id
    manifest["engine"] = {"name": "dask", "scheduler": scheduler, "workers": None if scheduler else workers,
                          "partition_size": partition_size, "format": fmt, "retries": retries,
                          "model_links": model_links}
    manifest["status"] = "running"
    job = Job(summary.scan_id, store.out, settings, threshold, banks_url, banks_id, fmt, case_links or model_links,
              factory)
    progress = Progress()
    for d in done.values():
        merge_summary(summary, d["summary"])

    def save(status: str | None = None) -> None:
        if status:
            manifest["status"] = status
        manifest["progress"] = progress.to_json_dict()
        manifest["finished_parts"] = _ranges(done)
        manifest["updated_at"] = now_utc()
        store.write(MANIFEST, json.dumps(manifest, indent=1).encode())

    save()

    def planned() -> Iterator[Item]:
        for it in items(inputs, follow_symlinks=settings.follow_symlinks, skip=own):
            if it.is_input and it.problem:
                summary.unreadable_inputs.append(redact(it.url) if isinstance(it, RemoteItem) else str(it.path))
            yield it

    def all_specs(c: Any) -> Iterator[PartSpec]:
        counter = [0]
        yield from plan(planned(), partition_size, counter)
        yield from segment_specs(c, job, store, segments, counter[0], partition_size, retries,
                                 lambda index: summary.unreadable_inputs.extend(index["unreadable"]))

    ctx = _given(client) if client is not None else dask_client(scheduler, workers)
    try:
        with ctx as c:
            if on_dashboard is not None and getattr(c, "dashboard_link", None):
                on_dashboard(c.dashboard_link)
            manifest["engine"]["dashboard"] = getattr(c, "dashboard_link", None)
            specs = all_specs(c)
            try:
                _drive(c, job, specs, done, summary, progress, matcher, retries, save, on_progress)
            finally:
                specs.close()  # segments still being read are cancelled
            if progress.failed:
                save("failed")
                raise AssayError(f"{out}: {len(progress.failed)} partition(s) failed {retries + 1} times "
                                 f"(first: {progress.failed[0]}); the finished ones are kept",
                                 hint="see the worker logs, then run again with --resume")
            if case_links or model_links:
                summary.case_links = _link(store, fmt, c, settings, model_links)
                manifest["case_links"] = summary.case_links.to_json_dict() if summary.case_links.relevant else None
    except KeyboardInterrupt:
        save("cancelled")
        raise
    summary.seconds = time.perf_counter() - started
    summary.ended_at = now_utc()
    manifest["summary"] = summary.to_json_dict()
    save("finished")
    store.remove_tree(HELD)
    store.remove_tree(PLAN)
    store.remove_tree(TMP)
    return summary


@contextmanager
def _given(client: Any) -> Iterator[Any]:
    yield client


def _publish_local(src: Any, dest: str) -> None:
    """Hard links (a copy across file systems) of a snapshot into a local output folder."""
    import shutil

    if os.path.exists(os.path.join(dest, "meta.json")):
        return
    tmp = f"{dest}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _drive(client: Any, job: Job, specs: Iterator[PartSpec], done: dict[int, dict[str, Any]],
           summary: ScanSummary, progress: Progress, matcher: Matcher | None, retries: int,
           save: Callable[..., None], on_progress: Callable[[Progress], None] | None) -> None:
    from distributed import as_completed

    nthreads = sum(client.nthreads().values()) or 1
    window = 2 * nthreads + 2
    ac = as_completed()
    inflight: dict[Any, tuple[PartSpec, int]] = {}  # future -> (spec, attempt)
    last_save = time.perf_counter()

    def submit(spec: PartSpec, attempt: int, fn: Any = run_partition, *args: Any) -> None:
        fut = client.submit(fn, job, spec, *args, pure=False,
                            key=f"assay-{job.scan_id[:8]}-{spec.number}-{fn.__name__}-{attempt}")
        inflight[fut] = (spec, attempt)
        ac.add(fut)

    def feed() -> None:
        while len(inflight) < window:
            spec = next(specs, None)
            if spec is None:
                progress.walk_done = True
                return
            progress.parts_planned += 1
            prior = done.get(spec.number)
            if prior is not None:
                if prior.get("digest") != spec.digest:
                    raise AssayError(f"{job.out}: partition {spec.number} holds other files than when the "
                                     "scan began (inputs changed); --resume would mix two scans",
                                     hint="choose another --out")
                progress.parts_skipped += 1
                continue
            submit(spec, 0)

    feed()
    try:
        while inflight:
            fut = next(ac)
            spec, attempt = inflight.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # the worker died or the task raised: bounded retries
                if attempt < retries:
                    progress.retried += 1
                    submit(spec, attempt + 1)
                else:
                    progress.failed.append(spec.number)
                    _log(f"partition {spec.number} failed: {type(exc).__name__}: {exc}")
                feed()
                continue
            finally:
                fut.release()
            if res["status"] == "pending":
                refs = matcher.store.resolve(res["signal_ids"]) if matcher is not None else {}
                meta = {k: res[k] for k in ("part", "digest", "files", "bytes", "analysis_seconds")}
                submit(spec, attempt, finish_partition, refs, meta)
                continue
            done[spec.number] = res
            merge_summary(summary, res["summary"])
            progress.parts_done += 1
            progress.files += res["files"]
            progress.records += res["records"]
            progress.bytes += res["bytes"]
            if on_progress is not None:
                on_progress(progress)
            feed()
            if time.perf_counter() - last_save > 2.0:
                save()
                last_save = time.perf_counter()
    finally:
        for f in list(inflight):
            f.cancel()


def _log(msg: str) -> None:
    import sys

    print(f"assay: {msg}", file=sys.stderr)


def _link(store: Store, fmt: str, client: Any = None, settings: ScanSettings | None = None,
          model_links: bool = False) -> Any:
    """Case links over every partition's held records (client side, once all are done);
    the held records go, with their links, to ``part-links``. With ``model_links`` the
    held model files are fingerprinted on the workers (one task each: they are few) and
    linked here by the local engine's own code."""
    from .links import CaseLinker

    linker = CaseLinker(model_links=model_links)
    for name in store.list(HELD):
        if not name.endswith(".jsonl"):
            continue
        for d in decode_records(store.read(f"{HELD}/{name}"), "jsonl"):
            linker.hold(FileRecord.model_validate(d))
    if model_links and client is not None:
        linker.fingerprint, linker.exists = _worker_fingerprints(client, linker.held_models(), settings)
        linker.answers = _worker_answers(client, settings)
    result = linker.resolve()
    recs = list(linker.records())
    store.write(f"{LINKS_PART}.{fmt}", encode_records(recs, fmt))
    return result


def _worker_fingerprints(client: Any, models: Sequence[FileRecord], settings: ScanSettings | None
                         ) -> tuple[Callable[[Any, str], Any], Callable[[str], bool]]:
    """Fingerprints of the model files link_models would read, computed on the workers:
    (fingerprint, exists) for link_models, keyed as it asks (``Path(record.path)``)."""
    from pathlib import Path

    from .model_links import _fingerprintable, fingerprint_kind
    from .partitions import fingerprint_model

    max_bytes = (settings or ScanSettings()).limits.max_file_bytes
    futures = {}
    for rec in models:
        if _fingerprintable(rec, exists=lambda _p: True) is None:
            futures[str(Path(rec.path))] = client.submit(fingerprint_model, rec.path, fingerprint_kind(rec),
                                                         max_bytes, pure=False)
    got = dict(zip(futures, client.gather(list(futures.values())), strict=True))

    def fingerprint(path: Any, _kind: str) -> Any:
        status, value = got[str(Path(path))]
        if status != "ok":
            raise RuntimeError(value or "cannot read")
        return value

    def exists(path: str) -> bool:
        return got.get(str(Path(path)), ("missing", None))[0] != "missing"

    return fingerprint, exists


def _worker_answers(client: Any, settings: ScanSettings | None) -> Callable[[list[Any]], list[Any]]:
    """The lineage answers of link_models, each computed where the model file can be
    read again with its weights (a worker: one task a model that has candidates and
    alignment data); the others by their fingerprints here, as the local engine does."""
    from ..models.lineage import answer
    from .model_links import needs_weights
    from .partitions import answer_model

    max_bytes = (settings or ScanSettings()).limits.max_file_bytes

    def answers(questions: list[Any]) -> list[Any]:
        futures = {i: client.submit(answer_model, rec.path, fp, entries, max_bytes, pure=False)
                   for i, (rec, fp, entries) in enumerate(questions) if needs_weights(fp)}
        got = dict(zip(futures, client.gather(list(futures.values())), strict=True))
        return [got[i] if i in got else answer(fp, entries) for i, (_rec, fp, entries) in enumerate(questions)]

    return answers


def read_records(out: str) -> Iterator[dict[str, Any]]:
    """Every record of a finished distributed scan (parts in order, then the linked ones)."""
    store = Store(out)
    for n in store.list(""):
        if n.startswith("part-") and n.rsplit(".", 1)[-1] in ("jsonl", "parquet"):
            yield from decode_records(store.read(n), n.rsplit(".", 1)[-1])
