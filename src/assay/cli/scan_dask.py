"""`assay scan --engine dask`: options checked, the Dask engine run, progress and summary shown."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from ..config import ScanSettings
from ..errors import AssayError
from ._common import _db_url, _emit_json, _esc, _nullctx, _store, err


def scan_dask(paths: list[str], settings: ScanSettings, *, db: str | None, no_banks: bool, out: str | None,
              output: Path | None, json_out: bool, scheduler: str | None, workers: int, fmt: str,
              resume: bool, manifests: list[str], partition_size: int, retries: int,
              threshold: int | None, case_links: bool, fail_on_match: bool, timings: bool = False,
              model_links: bool = False) -> None:
    from rich.progress import BarColumn, Progress, TextColumn

    from ..scan.custody import redact
    from ..scan.dask_engine import run_dask_scan
    from .scan import _print_summary

    if out is None:
        raise typer.BadParameter("--engine dask writes partitioned output: give --out DIR (a folder or URL)")
    if output is not None:
        raise typer.BadParameter("--engine dask writes to --out DIR, not -o/--output")
    if scheduler and workers:
        raise typer.BadParameter("--workers starts a LocalCluster; with --scheduler the cluster has its own")
    if retries < 0:
        raise typer.BadParameter("--retries must be 0 or more")
    with _store(db) if not no_banks else _nullctx() as store:
        matcher = None
        if store is not None:
            from ..banks.matcher import Matcher

            matcher = Matcher(store)
            matcher.load()
            from .scan import with_cameras

            settings = with_cameras(settings, store, _db_url(db))
            # query variants no bank could match are not computed (unless all are asked for)
            settings = replace(settings, bank_variant_kinds=store.pdq_variant_kinds())
        elif not settings.all_variants:
            settings = replace(settings, variants=False)  # nothing is matched: no variant hashes
        show = err.is_terminal and not json_out
        bar = Progress(TextColumn("scanning (dask)"), BarColumn(),
                       TextColumn("{task.fields[info]}"), console=err, transient=True, disable=not show)
        task = bar.add_task("scan", total=None, info="")
        last = [0.0]

        def on_progress(p: Any) -> None:
            now = time.perf_counter()
            if now - last[0] < 0.2 and not p.walk_done:
                return
            last[0] = now
            d = p.to_json_dict()
            total = d["parts_planned"] if p.walk_done else None
            bar.update(task, total=total, completed=d["parts_done"] + d["parts_skipped"],
                       info=f"{d['files']:,} files, {d['bytes'] / 1e6:,.1f} MB, {d['files_per_s']:,.1f} files/s, "
                            f"parts {d['parts_done'] + d['parts_skipped']}/{d['parts_planned']}"
                            f"{'' if p.walk_done else '+'}")

        def on_dashboard(link: str) -> None:
            if not json_out:
                err.print(f"Dask dashboard: {_esc(link)}")

        try:
            with bar:
                summary = run_dask_scan(
                    paths, settings, matcher, out, manifests=manifests, scheduler=scheduler,
                    workers=workers or 2, partition_size=partition_size, fmt=fmt, resume=resume,
                    retries=retries, threshold=threshold, case_links=case_links, model_links=model_links,
                    on_progress=on_progress, on_dashboard=on_dashboard, timings=timings)
        except KeyboardInterrupt:
            err.print("[yellow]cancelled:[/yellow] finished partitions are kept; "
                      f"`assay scan ... --engine dask --out {_esc(redact(out))} --resume` does the rest")
            raise typer.Exit(130) from None
        except OSError as exc:
            raise AssayError(f"{redact(out)}: {exc.strerror or exc}") from None
    if json_out:
        if summary.case_links is not None and summary.case_links.relevant:
            _emit_json(summary.case_links.to_json_dict())
        _emit_json(summary.to_json_dict())
    else:
        _print_summary(summary, out, matcher.size() if matcher else {},
                       report=f"{redact(out)} (part-*.{fmt}, _manifest.json)")
    if summary.nothing_scanned:
        names = ", ".join(summary.unreadable_inputs[:5])
        err.print(f"[red]error:[/red] nothing was scanned: cannot read {_esc(names)} (see the report)")
        raise typer.Exit(1)
    if fail_on_match and (summary.matched_files or summary.text_reproductions):
        raise typer.Exit(3)
