"""`assay scan`: walk, analyse, match, write the report, print the summary."""


from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..config import ScanSettings
from ._common import DbOpt, Mode, _db_url, _esc, _nullctx, _store, app, err, out


# ---------------------------------------------------------------------------------- scan
@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to scan.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON Lines report (default: assay-scan-<time>.jsonl here)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report file.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Records as JSON Lines on stdout, no file.")] = False,
    db: DbOpt = None,
    mode: Annotated[Mode, typer.Option(help="PDQ mode: fast (reduced decode) or reference.")] = Mode.fast,
    exif_transpose: Annotated[bool, typer.Option(help="Rotate per EXIF before hashing.")] = False,
    dihedral: Annotated[bool, typer.Option(help="Also match the 8 rotations/flips.")] = False,
    threshold: Annotated[int | None, typer.Option(help="PDQ distance threshold (overrides banks).")] = None,
    include_low_quality: Annotated[bool, typer.Option(help="Match PDQ hashes with quality < 50.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes (default: all cores).")] = 0,
    provenance: Annotated[bool, typer.Option(help="Provenance evidence for images.")] = True,
    models: Annotated[bool, typer.Option(help="Model-file forensics.")] = True,
    trust_anchors: Annotated[Path | None, typer.Option(help="PEM bundle of C2PA trust anchors.")] = None,
    no_banks: Annotated[bool, typer.Option("--no-banks", help="Hash only; do not match.")] = False,
    fail_on_match: Annotated[bool, typer.Option(help="Exit with status 3 if anything matched.")] = False,
    follow_symlinks: Annotated[
        bool, typer.Option(help="Follow symbolic links inside folders (default: report each link and its target).")
    ] = False,
) -> None:
    """Scan files and folders: hash, match against every enabled bank, gather evidence."""
    from ..report.jsonl import ReportWriter
    from ..scan.run import run_scan

    if threshold is not None and not 0 <= threshold <= 256:
        raise typer.BadParameter("threshold must be between 0 and 256")
    settings = ScanSettings(
        pdq_mode=mode.value,
        exif_transpose=exif_transpose,
        dihedral=dihedral,
        include_low_quality=include_low_quality,
        provenance=provenance,
        models=models,
        trust_anchors=trust_anchors,
        follow_symlinks=follow_symlinks,
        lineage_db=None if no_banks else _db_url(db),
        **({"workers": workers} if workers > 0 else {}),
    )
    target: str | Path = "-" if json_out else (output or Path(f"assay-scan-{datetime.now():%Y%m%d-%H%M%S}.jsonl"))
    with _store(db) if not no_banks else _nullctx() as store:
        matcher = None
        if store is not None:
            from ..banks.matcher import Matcher

            matcher = Matcher(store)
            matcher.load()
        show_progress = err.is_terminal and not json_out
        progress = Progress(
            TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err, transient=True, disable=not show_progress,
        )
        task = progress.add_task("scan", total=None)
        with ReportWriter(target, overwrite=overwrite) as writer, progress:
            summary = run_scan(
                paths,
                settings,
                matcher,
                lambda rec: writer.write(rec.to_json_dict()),
                threshold=threshold,
                on_total=lambda n: progress.update(task, total=n),
                on_record=lambda rec: progress.advance(task),
            )
            if json_out:
                writer.write(summary.to_json_dict())
    if not json_out:
        _print_summary(summary, str(target), matcher.size() if matcher else {})
    if summary.nothing_scanned:
        names = ", ".join(summary.unreadable_inputs[:5])
        err.print(f"[red]error:[/red] nothing was scanned: cannot read {_esc(names)} (see the report)")
        raise typer.Exit(1)
    if fail_on_match and summary.matched_files:
        raise typer.Exit(3)


def _print_summary(summary: Any, target: str, bank_sizes: dict[str, int]) -> None:
    t = Table(title="assay scan", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary.kinds.items())) or "none"
    t.add_row("files", f"{summary.files} ({kinds})")
    rate = summary.files / summary.seconds if summary.seconds else 0.0
    t.add_row("time", f"{summary.seconds:.1f} s ({rate:.1f} files/s)")
    if bank_sizes:
        t.add_row("banks", ", ".join(f"{n:,} {k}" for k, n in sorted(bank_sizes.items())))
    else:
        t.add_row("banks", "no enabled bank holds any hash: nothing could match")
    matched = f"{summary.matched_files}"
    if summary.matches_by_bank:
        matched += " (" + ", ".join(f"{b}: {n}" for b, n in summary.matches_by_bank.most_common()) + ")"
    t.add_row("matched files", matched, style="red" if summary.matched_files else None)
    if summary.low_quality:
        t.add_row("low-quality images", f"{summary.low_quality} (PDQ quality < 50, not matched)")
    if summary.ai_evidence:
        t.add_row("AI-generation evidence", f"{summary.ai_evidence} images")
    if summary.dangerous_models:
        t.add_row("dangerous model files", str(summary.dangerous_models), style="red")
    if summary.archives or summary.archive_members:
        t.add_row("archives", _count(summary.archive_members, "file") + " in " + _count(summary.archives, "archive"))
    if summary.links:
        t.add_row("links", _count(summary.links, "symbolic link") + ", not followed (--follow-symlinks)")
    t.add_row("errors", f"{summary.with_errors} files (see the report)")
    t.add_row("report", target)
    out.print(t)
    for p in summary.matched_paths[:20]:
        out.print(f"  match: {_esc(p)}")
    if summary.matched_files > 20:
        out.print(f"  ... and {summary.matched_files - 20} more in the report")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
