"""The `assay` command: a thin face over the library. Parses, calls, renders.

Exit codes: 0 done; 1 an error (message on stderr); 2 bad usage; 3 `scan
--fail-on-match` found a match. Every command that prints results takes
``--json`` (schemas in docs/json.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from . import signals as signal_types
from .config import ScanSettings, default_db_url, normalize_db_url
from .errors import AssayError

app = typer.Typer(
    name="assay",
    help="Forensic evidence for abuse made with generative AI: hash-bank matching, "
    "image provenance, model-file forensics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bank_app = typer.Typer(help="Create, fill, inspect and export hash banks.", no_args_is_help=True)
app.add_typer(bank_app, name="bank")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Mode(StrEnum):
    fast = "fast"
    reference = "reference"


class Fmt(StrEnum):
    auto = "auto"
    list = "list"
    csv = "csv"
    jsonl = "jsonl"


_state: dict[str, Any] = {"db": None}

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Bank store: SQLite path or database URL (env ASSAY_DB).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"assay {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    db: DbOpt = None,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    _state["db"] = normalize_db_url(db) if db else None


def main() -> None:
    try:
        app()
    except AssayError as exc:
        err.print(f"[red]error:[/red] {_esc(str(exc))}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def _db_url(db: str | None) -> str:
    if db:
        return normalize_db_url(db)
    return _state["db"] or default_db_url()


@contextmanager
def _store(db: str | None = None) -> Iterator[Any]:
    from .banks.store import Store

    store = Store(_db_url(db))
    try:
        yield store
    finally:
        store.close()


def _emit_json(obj: Any) -> None:
    out.file.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")


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
) -> None:
    """Scan files and folders: hash, match against every enabled bank, gather evidence."""
    from .report.jsonl import ReportWriter
    from .scan.run import run_scan

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
        lineage_db=None if no_banks else _db_url(db),
        **({"workers": workers} if workers > 0 else {}),
    )
    target: str | Path = "-" if json_out else (output or Path(f"assay-scan-{datetime.now():%Y%m%d-%H%M%S}.jsonl"))
    with _store(db) if not no_banks else _nullctx() as store:
        matcher = None
        if store is not None:
            from .banks.matcher import Matcher

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
    if fail_on_match and summary.matched_files:
        raise typer.Exit(3)


@contextmanager
def _nullctx() -> Iterator[None]:
    yield None


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
    t.add_row("errors", f"{summary.with_errors} files (see the report)")
    t.add_row("report", target)
    out.print(t)
    for p in summary.matched_paths[:20]:
        out.print(f"  match: {_esc(p)}")
    if summary.matched_files > 20:
        out.print(f"  ... and {summary.matched_files - 20} more in the report")


# ---------------------------------------------------------------------------------- hash
@app.command("hash")
def hash_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image files.")],
    mode: Annotated[Mode, typer.Option(help="fast (reduced decode) or reference (Meta's pixels).")] = Mode.fast,
    exif_transpose: Annotated[bool, typer.Option(help="Rotate per EXIF before hashing.")] = False,
    dihedral: Annotated[bool, typer.Option(help="Also the 8 rotation/flip variants.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """PDQ, MD5 and SHA-256 of image files (no matching)."""
    from .report.terminal import print_record
    from .scan.pipeline import analyze_item
    from .scan.walk import WalkItem

    settings = ScanSettings(pdq_mode=mode.value, exif_transpose=exif_transpose, dihedral=dihedral, workers=1)
    from .media.analyzer import ImageHashAnalyzer

    analyzers = [ImageHashAnalyzer()]
    failed = 0
    for f in files:
        rec = analyze_item(WalkItem(f) if f.exists() else WalkItem(f, "no such file"), settings, analyzers)
        if rec.kind != "image" and not rec.errors:
            rec.errors.append(_not_image(rec))
        failed += bool(rec.errors)
        if json_out:
            _emit_json(rec.to_json_dict())
        else:
            print_record(out, rec)
    if failed:
        raise typer.Exit(1)


def _not_image(rec: Any) -> Any:
    from .report.schema import ErrorInfo

    return ErrorInfo(stage="sniff", code="unsupported-format", message=f"not an image (detected: {rec.format})")


# --------------------------------------------------------------------------------- match
@app.command()
def match(
    pdq: Annotated[list[str] | None, typer.Option(help="PDQ hash (64 hex).")] = None,
    md5: Annotated[list[str] | None, typer.Option(help="MD5 (32 hex).")] = None,
    sha256: Annotated[list[str] | None, typer.Option(help="SHA-256 (64 hex).")] = None,
    signal: Annotated[list[str] | None, typer.Option(help="TYPE:VALUE, e.g. autov2:6ce0161689.")] = None,
    image: Annotated[list[Path] | None, typer.Option(help="Hash this image, then match it.")] = None,
    threshold: Annotated[int | None, typer.Option(help="PDQ distance threshold (overrides banks).")] = None,
    dihedral: Annotated[bool, typer.Option(help="With --image: match all 8 rotations/flips.")] = False,
    include_low_quality: Annotated[bool, typer.Option(help="Match low-quality PDQ hashes.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Look hashes up in every enabled bank."""
    from .banks.matcher import Matcher, Query
    from .report.terminal import matches_table

    queries: list[Query] = []
    for t, values in (("pdq", pdq), ("md5", md5), ("sha256", sha256)):
        for v in values or []:
            queries.append(Query(t, signal_types.get(t).normalize(v)))
    for s in signal or []:
        if ":" not in s:
            raise typer.BadParameter(f"{s!r}: expected TYPE:VALUE", param_hint="--signal")
        t, v = s.split(":", 1)
        name, value = signal_types.normalize(t, v)
        queries.append(Query(name, value))
    if image:
        from .media import hash_image_file

        for f in image:
            h = hash_image_file(f, dihedral=dihedral)
            queries.append(Query("pdq", h.pdq, None, h.quality))
            queries.append(Query("md5", h.md5))
            queries.append(Query("sha256", h.sha256))
            for variant, value in (h.dihedral or {}).items():
                if variant != "original":
                    queries.append(Query("pdq", value, variant, h.quality))
    if not queries:
        raise typer.BadParameter("give at least one of --pdq, --md5, --sha256, --signal, --image")
    if threshold is not None and not 0 <= threshold <= 256:
        raise typer.BadParameter("threshold must be between 0 and 256")
    with _store(db) as store:
        matcher = Matcher(store)
        found = matcher.lookup(queries, threshold=threshold, include_low_quality=include_low_quality)
    if json_out:
        _emit_json(
            {
                "schema": "assay.matches/1",
                "queries": [{"signal_type": q.signal_type, "value": q.value, "variant": q.variant} for q in queries],
                "matches": [m.model_dump(mode="json", exclude_none=True) for m in found],
            }
        )
        return
    if not found:
        out.print("no match in any enabled bank")
        return
    out.print(matches_table(found))


# ---------------------------------------------------------------------------- provenance
@app.command()
def provenance(
    files: Annotated[list[Path], typer.Argument(help="Image files.")],
    trust_anchors: Annotated[Path | None, typer.Option(help="PEM bundle of C2PA trust anchors.")] = None,
    facts: Annotated[bool, typer.Option(help="List the extracted facts under each evidence.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Provenance evidence of images (C2PA, IPTC, generator metadata, watermarks, camera) and a cautious verdict."""
    from .config import Limits
    from .provenance.analyzer import analyze_provenance, explain
    from .sniff import sniff_path

    limits = Limits()
    failed = 0
    for f in files:
        result: dict[str, Any] = {"schema": "assay.provenance/1", "path": str(f)}
        try:
            kind = sniff_path(f)
            if kind.kind != "image":
                raise AssayError(f"{f}: not an image (detected: {kind.format})")
            if f.stat().st_size > limits.max_image_bytes:
                raise AssayError(f"{f}: larger than the image limit of {limits.max_image_bytes} bytes")
            report = analyze_provenance(f, f.read_bytes(), kind.format, trust_anchors=trust_anchors)
        except (AssayError, OSError) as exc:
            failed += 1
            msg = str(exc) if isinstance(exc, AssayError) else f"{f}: {exc.strerror or exc}"
            if json_out:
                _emit_json({**result, "error": msg})
            else:
                err.print(f"[red]error:[/red] {_esc(msg)}")
            continue
        if json_out:
            _emit_json({**result, **report.model_dump(mode="json", exclude_none=True)})
        else:
            out.print(f"[bold]{_esc(str(f))}[/bold]")
            out.print(_esc(explain(report, facts=facts)))
            out.print()
    if failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------------- model
@app.command()
def model(
    files: Annotated[list[Path], typer.Argument(help="Model files or diffusers/PEFT folders.")],
    bank: Annotated[
        list[str] | None,
        typer.Option("--bank", help="Lineage against these banks' model fingerprints (default: all enabled)."),
    ] = None,
    db: DbOpt = None,
    no_banks: Annotated[bool, typer.Option("--no-banks", help="No hash matching, no lineage.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Model files, opened without executing them: safety, architecture, hashes, metadata, bank matches, lineage."""
    from .models.analyzer import analyze_model
    from .models.hashes import hash_signals
    from .models.report import explain_model_text
    from .report.terminal import matches_table, safe

    failed = 0
    with _store(db) if not no_banks else _nullctx() as store:
        matcher = None
        if store is not None:
            from .banks.matcher import Matcher

            matcher = Matcher(store)
        for f in files:
            result: dict[str, Any] = {"schema": "assay.model/1", "path": str(f)}
            try:
                if not f.exists():
                    raise AssayError(f"{f}: no such file or folder")
                report = analyze_model(f)
            except AssayError as exc:
                failed += 1
                if json_out:
                    _emit_json({**result, "error": str(exc)})
                else:
                    err.print(f"[red]error:[/red] {_esc(str(exc))}")
                continue
            found = []
            if matcher is not None and report.hashes is not None:
                found = matcher.match_signals(hash_signals(report.hashes))
            if store is not None and not (report.safety and report.safety.verdict == "dangerous"):
                _lineage(store, f, report, bank)
            if json_out:
                _emit_json({**result, **report.model_dump(mode="json", exclude_none=True),
                            "matches": [m.model_dump(mode="json", exclude_none=True) for m in found]})
                continue
            out.print(explain_model_text(report, str(f)))
            if report.lineage_explanations:
                out.print("lineage (from weight fingerprints):")
                for line in report.lineage_explanations:
                    out.print(safe("  " + line, 1000))
            if found:
                out.print(matches_table(found, title="bank matches"))
            elif matcher is not None:
                out.print("bank matches: none of its hashes is in an enabled bank")
            out.print()
    if failed:
        raise typer.Exit(1)


def _lineage(store: Any, path: Path, report: Any, banks: list[str] | None) -> None:
    from .banks.fingerprints import FingerprintStore, query
    from .models.fingerprint import fingerprint_file

    fs = FingerprintStore(store)
    index = fs.index(banks or None)
    if len(index) == 0:
        return
    result = query(fs, fingerprint_file(path), banks or None, index=index)
    report.lineage = result.to_dict()
    report.lineage_explanations = result.explanations()


# ---------------------------------------------------------------------------------- bank
def _bank_dict(b: Any, stats: Any | None = None) -> dict[str, Any]:
    d = {
        "name": b.name,
        "description": b.description,
        "enabled": b.enabled,
        "pdq_threshold": b.pdq_threshold,
        "created_at": _iso(b.created_at),
    }
    if stats is not None:
        d["entries"] = stats.entries
        d["signals"] = dict(stats.signals)
        d["last_added"] = _iso(stats.last_added)
    return d


def _iso(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


@bank_app.command("create")
def bank_create(
    name: str,
    description: Annotated[str, typer.Option(help="What this bank holds.")] = "",
    threshold: Annotated[int | None, typer.Option(help="PDQ match threshold of this bank.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an empty bank."""
    with _store(db) as store:
        b = store.create_bank(name, description=description, pdq_threshold=threshold)
    _emit_json(_bank_dict(b)) if json_out else out.print(f"created bank {_esc(b.name)}")


@bank_app.command("list")
def bank_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """List banks with their sizes."""
    with _store(db) as store:
        rows = [(b, store.stats(b.name)) for b in store.list_banks()]
    if json_out:
        _emit_json([_bank_dict(b, s) for b, s in rows])
        return
    if not rows:
        out.print("no banks yet: create one with `assay bank create NAME`")
        return
    t = Table()
    for c in ("bank", "enabled", "entries", "signals", "threshold", "description"):
        t.add_column(c)
    for b, s in rows:
        sig = ", ".join(f"{n:,} {k}" for k, n in sorted(s.signals.items()))
        t.add_row(_esc(b.name), "yes" if b.enabled else "no", f"{s.entries:,}", sig,
                  str(b.pdq_threshold if b.pdq_threshold is not None else "default"), _esc(b.description or ""))
    out.print(t)


@bank_app.command("show")
def bank_show(
    name: str,
    limit: Annotated[int, typer.Option(help="How many entries to list.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many entries.")] = 0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A bank's settings and its first entries."""
    with _store(db) as store:
        b = store.get_bank(name)
        s = store.stats(name)
        entries = list(store.iter_entries(name, limit=limit, offset=offset))
    if json_out:
        d = _bank_dict(b, s)
        d["entries_listed"] = [_entry_dict(e) for e in entries]
        _emit_json(d)
        return
    out.print(f"bank [bold]{_esc(b.name)}[/bold] ({'enabled' if b.enabled else 'disabled'}), "
              f"{s.entries:,} entries; {_esc(b.description or '')}")
    t = Table()
    for c in ("content id", "signals", "note", "source", "added"):
        t.add_column(c)
    for e in entries:
        sig = "\n".join(f"{k}:{v}" for k, vs in e.signals.items() for v in (vs if isinstance(vs, list) else [vs]))
        t.add_row(_esc(e.content_id), sig, _esc(e.note or ""), _esc(e.source or ""), str(_iso(e.added_at)))
    out.print(t)


def _entry_dict(e: Any) -> dict[str, Any]:
    return {
        "content_id": e.content_id,
        "signals": e.signals,
        "note": e.note,
        "source": e.source,
        "added_at": _iso(e.added_at),
        "enabled": e.enabled,
        "meta": e.meta,
    }


@bank_app.command("stats")
def bank_stats(name: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Counts of entries and signals in a bank."""
    with _store(db) as store:
        b = store.get_bank(name)
        s = store.stats(name)
    if json_out:
        _emit_json(_bank_dict(b, s))
        return
    out.print(f"{_esc(b.name)}: {s.entries:,} entries, "
              + ", ".join(f"{n:,} {k}" for k, n in sorted(s.signals.items()))
              + f"; last added {_iso(s.last_added)}")


@bank_app.command("import")
def bank_import(
    name: str,
    file: Path,
    fmt: Annotated[Fmt, typer.Option("--format", help="Input format (auto: by content).")] = Fmt.auto,
    signal_type: Annotated[str, typer.Option("--type", help="Signal type of a plain hash list.")] = "pdq",
    create: Annotated[bool, typer.Option(help="Create the bank if it does not exist.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a hash list, CSV or JSON Lines file. All or nothing; re-imports add nothing."""
    from .banks.formats import parse_file
    from .errors import BankNotFound

    signal_types.get(signal_type)
    with _store(db) as store:
        try:
            store.get_bank(name)
        except BankNotFound:
            if not create:
                raise
            store.create_bank(name)
        records = parse_file(file, None if fmt is Fmt.auto else fmt.value, signal_type=signal_type)
        res = store.import_records(name, records, source=str(file))
    if json_out:
        _emit_json({"bank": name, "file": str(file), "added_entries": res.added_entries,
                    "added_signals": res.added_signals, "duplicates": res.duplicates, "total": res.total})
        return
    out.print(f"{_esc(str(file))} -> {_esc(name)}: {res.total:,} records, {res.added_entries:,} new entries, "
              f"{res.added_signals:,} new signals, {res.duplicates:,} already present")


@bank_app.command("export")
def bank_export(
    name: str,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="list, csv or jsonl.")] = Fmt.jsonl,
    signal_type: Annotated[str | None, typer.Option("--type", help="Only this type (list format).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    db: DbOpt = None,
) -> None:
    """Export a bank as a hash list, CSV or JSON Lines."""
    from .banks.formats import export

    if fmt is Fmt.auto:
        fmt = Fmt.jsonl
    with _store(db) as store:
        store.get_bank(name)
        if output is None:
            export(store, name, fmt.value, sys.stdout, signal_type=signal_type)
            return
        if output.exists() and not overwrite:
            raise AssayError(f"{output}: exists; not overwriting it", hint="pass --overwrite")
        tmp = output.with_name(output.name + ".partial")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            export(store, name, fmt.value, fh, signal_type=signal_type)
        tmp.replace(output)
    err.print(f"exported {_esc(name)} to {_esc(str(output))}")


@bank_app.command("add")
def bank_add(
    name: str,
    content_id: Annotated[str, typer.Option(help="Your identifier of the content.")],
    pdq: Annotated[list[str] | None, typer.Option(help="PDQ hash.")] = None,
    md5: Annotated[list[str] | None, typer.Option(help="MD5.")] = None,
    sha256: Annotated[list[str] | None, typer.Option(help="SHA-256.")] = None,
    signal: Annotated[list[str] | None, typer.Option(help="TYPE:VALUE for other signal types.")] = None,
    image: Annotated[Path | None, typer.Option(help="Hash this image and add its hashes.")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the entry.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add one entry (its hashes) to a bank."""
    sig: dict[str, list[str]] = {}
    for t, values in (("pdq", pdq), ("md5", md5), ("sha256", sha256)):
        for v in values or []:
            sig.setdefault(t, []).append(v)
    for s in signal or []:
        if ":" not in s:
            raise typer.BadParameter(f"{s!r}: expected TYPE:VALUE", param_hint="--signal")
        t, v = s.split(":", 1)
        sig.setdefault(t, []).append(v)
    if image is not None:
        from .media import hash_image_file

        h = hash_image_file(image)
        sig.setdefault("pdq", []).append(h.pdq)
        sig.setdefault("md5", []).append(h.md5)
        sig.setdefault("sha256", []).append(h.sha256)
    if not sig:
        raise typer.BadParameter("give at least one hash (--pdq, --md5, --sha256, --signal, --image)")
    with _store(db) as store:
        res = store.add_entry(name, content_id, sig, note=note, source="cli")
    if json_out:
        _emit_json({"bank": name, "content_id": content_id, "added_signals": res.added_signals,
                    "duplicates": res.duplicates})
        return
    out.print(f"{_esc(name)}: entry {_esc(content_id)}: {res.added_signals} new signals, {res.duplicates} already present")


@bank_app.command("remove")
def bank_remove(name: str, content_id: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Remove one entry from a bank."""
    with _store(db) as store:
        removed = store.remove_entry(name, content_id)
    if json_out:
        _emit_json({"bank": name, "content_id": content_id, "removed": removed})
    elif removed:
        out.print(f"removed {_esc(content_id)} from {_esc(name)}")
    else:
        raise AssayError(f"bank {name!r} has no entry {content_id!r}")


@bank_app.command("enable")
def bank_enable(name: str, db: DbOpt = None) -> None:
    """Match against this bank again."""
    with _store(db) as store:
        store.set_bank_enabled(name, True)
    out.print(f"enabled {_esc(name)}")


@bank_app.command("disable")
def bank_disable(name: str, db: DbOpt = None) -> None:
    """Keep the bank but stop matching against it."""
    with _store(db) as store:
        store.set_bank_enabled(name, False)
    out.print(f"disabled {_esc(name)}")


@bank_app.command("delete")
def bank_delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: deletes the bank and all its entries.")] = False,
    db: DbOpt = None,
) -> None:
    """Delete a bank and its entries (asks for --yes)."""
    if not yes:
        raise AssayError(f"not deleting bank {name!r} without --yes", hint="export it first to keep a copy")
    with _store(db) as store:
        store.delete_bank(name)
    out.print(f"deleted {_esc(name)}")


@bank_app.command("prune-changes")
def bank_prune_changes(
    older_than_days: Annotated[float, typer.Option(
        "--older-than-days", min=0, help="Delete change records older than this many days.")] = 7.0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete old change records (what running services follow; `assay serve` also
    prunes by itself). A service index, or an index snapshot on disk, that has not
    followed the store since then loads again from the store instead of catching up."""
    from datetime import timedelta

    with _store(db) as store:
        deleted = store.prune_changes(older_than=timedelta(days=older_than_days))
        watermark = store.changes_watermark()
    if json_out:
        _emit_json({"deleted": deleted, "pruned_through_seq": watermark})
        return
    out.print(f"deleted {deleted:,} change records older than {older_than_days:g} days"
              f" (pruned through change #{watermark:,})")


class ModelKind(StrEnum):
    checkpoint = "checkpoint"
    lora = "lora"
    base = "base"


@bank_app.command("add-model")
def bank_add_model(
    name: str,
    file: Path,
    content_id: Annotated[str | None, typer.Option("--id", help="Entry id (default: the file name).")] = None,
    kind: Annotated[ModelKind, typer.Option(help="flagged checkpoint, flagged LoRA, or known base.")] = ModelKind.checkpoint,
    role: Annotated[str | None, typer.Option(help="Free text, e.g. 'flagged: trained on abuse material'.")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the entry.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing fingerprint of this entry.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a model file to a bank: its weight fingerprint (for lineage) and its file hashes."""
    from .banks.fingerprints import add_model
    from .models.analyzer import analyze_model
    from .models.hashes import hash_signals

    cid = content_id or file.name
    with _store(db) as store:
        store.get_bank(name)
        report = analyze_model(file)
        if report.safety and report.safety.verdict == "dangerous":
            raise AssayError(f"{file}: refused: its pickle would run code; add it by hash with `bank add --signal`")
        rec = add_model(store, name, cid, file, kind.value, role=role, note=note, replace=replace)
        sig: dict[str, list[str]] = {}
        if report.hashes is not None:
            for s in hash_signals(report.hashes):
                sig.setdefault(s.type, []).append(s.value)
        res = store.add_entry(name, cid, sig, note=note, source=str(file)) if sig else None
    if json_out:
        _emit_json({"bank": name, "content_id": cid, "kind": kind.value,
                    "fingerprint_id": rec.id,
                    "added_signals": res.added_signals if res else 0})
        return
    out.print(f"{_esc(name)}: added {kind.value} {_esc(cid)} (weight fingerprint"
              + (f" and {res.added_signals} file hashes)" if res else ")"))


lora_app = typer.Typer(help="LoRA tools.", no_args_is_help=True)
app.add_typer(lora_app, name="lora")


@lora_app.command("extract")
def lora_extract(
    suspect: Path,
    base: Annotated[Path, typer.Option("--base", help="The base model the suspect was derived from.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the kohya-format LoRA.")],
    energy: Annotated[float, typer.Option(help="Share of each delta's energy to keep (chooses the rank).")] = 0.9,
    max_rank: Annotated[int, typer.Option(help="Upper bound on the rank per module.")] = 128,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Write the low-rank difference SUSPECT - BASE as a kohya LoRA, so it can be banked."""
    from .models.lora_extract import extract

    if not 0 < energy <= 1:
        raise typer.BadParameter("energy must be in (0, 1]")
    rep = extract(suspect, base, output, energy=energy, max_rank=max_rank, overwrite=overwrite)
    out.print(_esc(rep.explanation()))


# ------------------------------------------------------------------------------- signals
@app.command("signals")
def signals_cmd(json_out: JsonOpt = False) -> None:
    """The signal (hash) types banks can hold."""
    types = signal_types.all_types()
    if json_out:
        _emit_json([{"name": t.name, "description": t.description, "hex_len": t.hex_len,
                     "match": t.match, "default_threshold": t.default_threshold} for t in types])
        return
    t = Table()
    for c in ("type", "match", "digits", "description"):
        t.add_column(c)
    for st in types:
        t.add_row(st.name, st.match + (f" <= {st.default_threshold}" if st.match == "hamming" else ""),
                  str(st.hex_len), st.description)
    out.print(t)


# ---------------------------------------------------------------------------------- demo
@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where to write the demo images.")] = Path("demo-data"),
    db: DbOpt = None,
) -> None:
    """Generate benign demo images and a demo bank, then scan them."""
    from .demo import prepare_demo

    info = prepare_demo(folder, _db_url(db))
    out.print(f"demo: {info.images} generated images in {_esc(str(folder))}; bank "
              f"[bold]{info.bank}[/bold] holds {info.bank_entries} of their hashes")
    report = folder / "report.jsonl"
    scan([folder / "images"], output=report, overwrite=True, json_out=False, db=db,
         mode=Mode.fast, exif_transpose=False, dihedral=True, threshold=None,
         include_low_quality=False, workers=0, provenance=True, models=True,
         trust_anchors=None, no_banks=False, fail_on_match=False)


# --------------------------------------------------------------------------------- serve
def _register_service() -> None:
    from .service.cli import keys_app, serve

    app.add_typer(keys_app, name="keys")
    app.command("serve")(serve)


_register_service()


if __name__ == "__main__":
    main()
