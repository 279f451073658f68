"""`assay scan`: walk, analyse, match, write the report, print the summary."""


from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import ScanSettings
from ._common import DbOpt, Mode, _db_url, _emit_json, _esc, _nullctx, _store, app, err, out, plural


# ---------------------------------------------------------------------------------- scan
@app.command()
def scan(
    paths: Annotated[list[str] | None, typer.Argument(
        help="Files and folders to scan (with --engine dask also file://, s3://, gs://, az:// URLs).",
        show_default=False)] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON Lines report (default: assay-scan-<time>.jsonl here)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report file.")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", help="JSON on stdout instead of the readable summary: every record, then the summary "
        "line (after an assay.case-links/1 line when the scan found model files or images naming model "
        "hashes); with -o the records go to that file and stdout gets those last lines only.")] = False,
    db: DbOpt = None,
    mode: Annotated[Mode, typer.Option(help="PDQ mode: fast (reduced decode) or reference.")] = Mode.fast,
    exif_transpose: Annotated[bool, typer.Option(help="Rotate per EXIF before hashing.")] = False,
    dihedral: Annotated[bool, typer.Option(help="Also match the 8 rotations/flips.")] = False,
    no_variants: Annotated[bool, typer.Option(
        "--no-variants", help="Strict: no extra PDQ queries for an image's mirror, borders, crops, caption band "
        "or regions, and no match through hashes banked for such variants.")] = False,
    all_variants: Annotated[bool, typer.Option(
        "--all-variants", help="Write every variant PDQ hash of an image in the report (~50: mirror, borders, "
        "crops, caption band, regions), not only those that matched.")] = False,
    threshold: Annotated[int | None, typer.Option(help="PDQ distance threshold (overrides banks).")] = None,
    include_low_quality: Annotated[bool, typer.Option(help="Match PDQ hashes with quality < 50.")] = False,
    workers: Annotated[int, typer.Option(
        help="Worker processes (default: all cores; --engine dask: the LocalCluster's workers).", min=0)] = 0,
    provenance: Annotated[bool, typer.Option(help="Provenance evidence for images.")] = True,
    models: Annotated[bool, typer.Option(help="Model-file forensics.")] = True,
    trust_anchors: Annotated[Path | None, typer.Option(help="PEM bundle of C2PA trust anchors.")] = None,
    no_banks: Annotated[bool, typer.Option("--no-banks", help="Hash only; do not match.")] = False,
    fail_on_match: Annotated[bool, typer.Option(
        help="Exit with status 3 if anything matched (a bank hash, or a passage of an indexed text work).")] = False,
    text_index: Annotated[Path | None, typer.Option(
        "--text-index", help="Check text files for passages of the works in this text index (assay text).")] = None,
    text_min_chars: Annotated[int, typer.Option(
        "--text-min-chars", help="With --text-index: shortest passage reported.", min=10)] = 50,
    case_links: Annotated[bool, typer.Option(
        help="Link images to the model files of this scan that their metadata names by hash.")] = True,
    model_links: Annotated[bool, typer.Option(
        "--model-links", help="Also link the model files of this scan among themselves by their weights "
        "(same weights, fine-tune, merge, merged LoRA): reads each model file's tensors once more.")] = False,
    camera_threshold: Annotated[float, typer.Option(
        help="PCE at or above which an image matches an enrolled camera fingerprint (assay camera; at least 10).",
        min=10.0)] = 60.0,
    timings: Annotated[bool, typer.Option(
        "--timings", help="Add what each analysis step cost (CPU and wall seconds) to the summary.")] = False,
    follow_symlinks: Annotated[
        bool, typer.Option(help="Follow symbolic links inside folders (default: report each link and its target).")
    ] = False,
    engine: Annotated[str, typer.Option(
        help="local (a process pool here) or dask (a Dask cluster: docs/distributed.md).")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        help="--engine dask: the scheduler of an existing cluster, tcp://HOST:PORT (default: a "
        "LocalCluster of --workers processes).")] = None,
    out: Annotated[str | None, typer.Option(
        "--out", help="--engine dask: output folder or URL for part-NNNNNN files and _manifest.json.")] = None,
    out_format: Annotated[str, typer.Option(
        "--format", help="--engine dask: part files as jsonl or parquet (needs pyarrow).")] = "jsonl",
    resume: Annotated[bool, typer.Option(
        help="--engine dask: finish the scan in --out, redoing only unfinished partitions.")] = False,
    manifest: Annotated[list[str] | None, typer.Option(
        help="--engine dask: a list of paths/URLs (one a line) or an S3 Inventory manifest.json; "
        "repeatable.")] = None,
    partition_size: Annotated[int, typer.Option(
        help="--engine dask: files per partition (one task, one part file).", min=1)] = 256,
    retries: Annotated[int, typer.Option(
        help="--engine dask: times a failed partition is submitted again.", min=0)] = 3,
) -> None:
    """Scan files and folders: hash, match against every enabled bank, gather evidence."""
    from ..report.jsonl import ReportWriter
    from ..scan.run import run_scan

    if threshold is not None and not 0 <= threshold <= 256:
        raise typer.BadParameter("threshold must be between 0 and 256")
    paths = [str(p) for p in paths] if paths else None  # also when called as a function (demo)
    if engine not in ("local", "dask"):
        raise typer.BadParameter("--engine must be local or dask")
    dask_only = {"--scheduler": scheduler, "--out": out, "--resume": resume, "--manifest": manifest,
                 "--format": out_format != "jsonl"}
    if engine == "local" and any(dask_only.values()):
        raise typer.BadParameter(f"{', '.join(k for k, v in dask_only.items() if v)} go with --engine dask")
    if not paths and not manifest:
        raise typer.BadParameter("give at least one file, folder or URL to scan (or --manifest)")
    if provenance:
        from ._common import _check_anchors

        _check_anchors(trust_anchors)
    if text_index is not None:
        from ..text.index import TextIndex

        TextIndex.open(text_index).works()  # a missing or damaged index stops here, before any work
        text_index = text_index.resolve()
    settings = ScanSettings(
        pdq_mode=mode.value,
        exif_transpose=exif_transpose,
        dihedral=dihedral,
        variants=not no_variants,
        all_variants=all_variants,
        include_low_quality=include_low_quality,
        provenance=provenance,
        models=models,
        trust_anchors=trust_anchors,
        follow_symlinks=follow_symlinks,
        lineage_db=None if no_banks else _db_url(db),
        text_index=str(text_index) if text_index else None,
        text_min_chars=text_min_chars,
        camera_threshold=camera_threshold,
        **({"workers": workers} if workers > 0 else {}),
    )
    if engine == "dask":
        from .scan_dask import scan_dask

        scan_dask(list(paths or []), settings, db=db, no_banks=no_banks, out=out, output=output,
                  json_out=json_out, scheduler=scheduler, workers=workers, fmt=out_format, resume=resume,
                  manifests=list(manifest or []), partition_size=partition_size, retries=retries,
                  threshold=threshold, case_links=case_links, model_links=model_links,
                  fail_on_match=fail_on_match, timings=timings)
        return
    from ..scan.sources import is_url

    urls = [p for p in paths or [] if is_url(p)]
    if urls:
        raise typer.BadParameter(f"{urls[0]}: URLs are scanned with --engine dask")
    # --json without -o streams the records; with -o they go to the file, as without --json
    target: str | Path = output or ("-" if json_out else Path(f"assay-scan-{datetime.now():%Y%m%d-%H%M%S}.jsonl"))
    with _store(db) if not no_banks else _nullctx() as store:
        matcher = None
        if store is not None:
            from ..banks.matcher import Matcher

            matcher = Matcher(store)
            matcher.load()
            settings = with_cameras(settings, store, _db_url(db))
            # query variants no bank could match are not computed (unless all are asked for)
            settings = replace(settings, bank_variant_kinds=store.pdq_variant_kinds())
        elif not all_variants:
            settings = replace(settings, variants=False)  # nothing is matched: no variant hashes
        progress = scan_progress(err, show=err.is_terminal and not json_out)
        task = progress.add_task("scan", total=None, bytes_done=0, bytes_total=0)
        writer = ReportWriter(target, overwrite=overwrite)
        try:
            with writer, progress:
                summary = run_scan(
                    [Path(p) for p in paths or []],
                    settings,
                    matcher,
                    lambda rec: writer.write(rec.to_json_dict()),
                    threshold=threshold,
                    on_total=lambda n: progress.update(task, total=n),
                    on_record=lambda rec: progress.advance(task),
                    on_bytes=lambda done, total: progress.update(task, bytes_done=done, bytes_total=total),
                    case_links=case_links or model_links,
                    model_links=model_links,
                    on_header=writer.write,
                    timings=timings,
                    own_output=writer.own_files(),
                )
                # the report ends with the summary (end time included), in a file as on stdout
                if summary.case_links is not None and summary.case_links.relevant:
                    writer.write(summary.case_links.to_json_dict())
                writer.write(summary.to_json_dict())
        except KeyboardInterrupt:
            _interrupted(writer)
            raise typer.Exit(130) from None
    if json_out and target != "-":
        if summary.case_links is not None and summary.case_links.relevant:
            _emit_json(summary.case_links.to_json_dict())
        _emit_json(summary.to_json_dict())
    if not json_out:
        _print_summary(summary, str(target), matcher.size() if matcher else {})
    for name in summary.unreadable_inputs[:20]:  # a typo among the inputs is said, not only counted
        err.print(f"[red]error:[/red] {_esc(name)}: {_esc(_unreadable(name))}")
    if len(summary.unreadable_inputs) > 20:
        err.print(f"... and {len(summary.unreadable_inputs) - 20:,} more inputs that could not be read (see the report)")
    if summary.nothing_scanned:
        names = ", ".join(summary.unreadable_inputs[:5])
        err.print(f"[red]error:[/red] nothing was scanned: cannot read {_esc(names)} (see the report)")
        raise typer.Exit(1)
    if fail_on_match and (summary.matched_files or summary.text_reproductions):
        raise typer.Exit(3)


def _unreadable(name: str) -> str:
    """Why an input given on the command line could not be scanned (as the walk found it)."""
    import os

    try:
        os.stat(name)
    except OSError as exc:
        return f"cannot access: {exc.strerror or exc}"
    return "not a regular file or folder"


def _interrupted(writer: Any) -> None:
    """Ctrl-C: say what became of the report (the records written so far are kept)."""
    lines = writer.lines
    if writer.partial is None:  # stdout
        err.print(f"interrupted: the scan stopped after {plural(lines, 'report line')} (no summary line)")
        return
    err.print(f"interrupted: the {plural(lines, 'report line')} written so far are kept in "
              f"{_esc(str(writer.partial))} (an unfinished report: no summary line, no checksum file); "
              "scan again to get a whole report")


def scan_progress(console: Any, *, show: bool) -> Any:
    """The scan's progress line on ``console``: files done of files found so far, bytes
    done of bytes found so far, and the time left at the rate so far (both totals grow as
    the walk proceeds, and the estimate with them). Gone when the scan ends."""
    from rich.filesize import decimal
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class BytesColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            done, total = task.fields.get("bytes_done", 0), task.fields.get("bytes_total", 0)
            return Text(f"{decimal(done)} of {decimal(total)}", style="progress.download")

    return Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TextColumn("files"), BytesColumn(),
                    TimeRemainingColumn(), console=console, transient=True, disable=not show)


def with_cameras(settings: ScanSettings, store: Any, url: str) -> ScanSettings:
    """Images are compared with enrolled cameras only when the store holds some (one count
    here; workers then read the fingerprints once each)."""
    if not settings.provenance:
        return settings
    from dataclasses import replace

    from ..camera.store import CameraStore

    if CameraStore(store).count() == 0:
        return settings
    return replace(settings, camera_db=url)


_KIND_NAMES = {"image": ("image", "images"), "model": ("model file", "model files"),
               "document": ("document", "documents"), "video": ("video", "videos"),
               "audio": ("audio file", "audio files"), "archive": ("archive", "archives"), "link": ("link", "links"),
               "other": ("other file", "other files"), "error": ("unreadable", "unreadable")}


def _print_summary(summary: Any, target: str, bank_sizes: dict[str, int], report: str | None = None) -> None:
    from rich.table import Table

    # with -o - stdout is the report (JSON Lines): the readable summary goes to stderr
    con = err if target == "-" else out

    t = Table(title="assay scan", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    # the kinds partition the files, so the parts add up to the total
    order = [k for k in _KIND_NAMES if summary.kinds.get(k)] + sorted(set(summary.kinds) - set(_KIND_NAMES))
    parts = [plural(summary.kinds[k], *_KIND_NAMES.get(k, (k, k))) for k in order]
    t.add_row("files", plural(summary.files, "file") + (f": {', '.join(parts)}" if parts else ""))
    rate = summary.files / summary.seconds if summary.seconds else 0.0
    t.add_row("time", f"{summary.seconds:.1f} s ({rate:.1f} files/s)")
    if bank_sizes:
        t.add_row("banks", ", ".join(plural(n, f"{k} hash", f"{k} hashes") for k, n in sorted(bank_sizes.items())))
    else:
        t.add_row("banks", "no enabled bank holds any hash: nothing could match")
    matched = f"{summary.matched_files:,}"
    if summary.matches_by_bank:
        matched += " (" + ", ".join(f"{b}: {n:,}" for b, n in summary.matches_by_bank.most_common()) + ")"
    t.add_row("matched files", matched, style="red" if summary.matched_files else None)
    if summary.known_good:
        t.add_row("known-good files", f"{summary.known_good} (in a known-good hash set; not findings)")
    if summary.low_quality:
        t.add_row("low quality", plural(summary.low_quality, "image") + " (PDQ quality < 50, not matched)")
    if summary.text_reproductions:
        t.add_row("text reproduction", plural(summary.text_reproductions, "text file")
                  + " with passages of indexed works", style="red")
    if summary.ai_evidence:
        t.add_row("AI-generation evidence", ", ".join(
            plural(n, kind) for kind, n in sorted(summary.ai_evidence.items(), key=lambda kv: (kv[0] != "image", kv[0]))))
    if summary.dangerous_models:
        t.add_row("dangerous", plural(summary.dangerous_models, "model file"), style="red")
    if summary.archives or summary.archive_members:
        holders = f" and {plural(summary.member_holders, 'other file')}" if summary.member_holders else ""
        t.add_row("archives", plural(summary.archive_members, "file") + " in " + plural(summary.archives, "archive")
                  + holders)
    if summary.links:
        t.add_row("links", plural(summary.links, "symbolic link") + ", not followed (--follow-symlinks)")
    unreadable = summary.kinds.get("error", 0)
    partly = max(summary.with_errors - unreadable, 0)
    if summary.with_errors:
        how = [x for x in (unreadable and f"{unreadable:,} unreadable",
                           partly and f"{partly:,} read with an error") if x]
        t.add_row("errors", plural(summary.with_errors, "file") + f" ({', '.join(how)}); see the report")
    else:
        t.add_row("errors", "none")
    t.add_row("report", report or (target if target == "-" else f"{target} (SHA-256 in {target}.sha256)"))
    if summary.scan_id:
        t.add_row("scan id", summary.scan_id)
    con.print(t)
    for p in summary.matched_paths[:20]:
        con.print(f"  match: {_esc(p)}")
    if summary.matched_files > 20:
        con.print(f"  ... and {summary.matched_files - 20:,} more in the report")
    if summary.case_links is not None:
        from ..scan.links import readable_lines

        for line in readable_lines(summary.case_links):
            con.print(_esc(line), soft_wrap=True)
    if getattr(summary, "timings", None) is not None:
        con.print(f"cost per step (CPU time of {plural(summary.timings.workers, 'worker process', 'worker processes')}; "
                  "wall time includes waiting for a core):")
        for line in summary.timings.lines():
            con.print("  " + _esc(line), soft_wrap=True, highlight=False)
