"""`assay report`: a scan report rendered for hand-over (HTML, CSV); `assay review`: decisions on matches."""


from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import AssayError
from ._common import DbOpt, JsonOpt, _emit_json, _esc, app, err, out


class ReportFormat(StrEnum):
    html = "html"
    csv = "csv"
    case = "case"


_SUFFIX = {"html": ".html", "csv": "-csv", "case": ".jsonld"}


def _target(report: Path, output: Path | None, fmt: str, overwrite: bool) -> Path:
    target = output or report.with_name(report.name.removesuffix(".jsonl") + _SUFFIX[fmt])
    if target.resolve() == report.resolve():
        raise AssayError(f"{target}: is the scan report itself; choose another --output")
    if fmt == "csv":  # a folder: write_csv refuses to replace files in it
        if not target.parent.is_dir():
            raise AssayError(f"{target}: folder {target.parent} does not exist")
        return target
    from ..outfile import check_target

    if check_target(target, hint=f"e.g. -o FOLDER/case{_SUFFIX[fmt]}") and not overwrite:
        raise AssayError(f"{target}: already exists; not overwriting it",
                         hint="choose another --output or pass --overwrite")
    if not target.parent.is_dir():
        raise AssayError(f"{target}: folder {target.parent} does not exist")
    return target


@app.command("report")
def report_cmd(
    report: Annotated[Path, typer.Argument(help="A scan report (the JSON Lines file `assay scan -o` wrote).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write: a file (html), a folder (csv); default: next to the report.")] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="html: one self-contained page; csv: a folder of "
                                              "tables for spreadsheets (formula-safe); case: CASE/UCO JSON-LD.")] = ReportFormat.html,
    title: Annotated[str, typer.Option(help="Title of the case report.")] = "assay case report",
    case_id: Annotated[str | None, typer.Option(help="Case or exhibit reference shown on every page.")] = None,
    examiner: Annotated[str | None, typer.Option(help="Examiner's name shown in the case header.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Render a scan report for hand-over: case header with chain of custody and the report's
    integrity check, summary, findings, errors and the file inventory with hashes."""
    target = _target(report, output, fmt.value, overwrite)
    decisions, source = _decisions(db)
    res: dict[str, Any]
    try:
        if fmt == ReportFormat.case:
            from ..report.caseuco import write_case

            res = write_case(report, target, decisions=decisions, case_id=case_id, examiner=examiner, title=title)
        elif fmt == ReportFormat.csv:
            from ..report.csvout import write_csv

            res = write_csv(report, target, decisions=decisions, overwrite=overwrite, title=title,
                            case_id=case_id, examiner=examiner)
        else:
            from ..report.html import Options, render_html

            opts = Options(title=title, case_id=case_id, examiner=examiner, decisions=decisions,
                           decisions_source=source)
            res = render_html(report, target, opts)
    except OSError as exc:  # e.g. the default output, next to a report on a read-only evidence share
        where = exc.filename or target
        raise AssayError(f"{where}: cannot write the {fmt.value} report: {exc.strerror or exc}",
                         hint="choose where with -o" + ("" if output else "; the default is next to the scan report")
                         ) from None
    res = {"format": fmt.value, "output": str(target), **res}
    if json_out:
        _emit_json(res)
        return
    _print_written(res)


def _decisions(db: str | None) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
    """Review decisions from the store, if there is one (never made here just to read it)."""
    from ..errors import StoreMissing
    from ._common import _db_url

    url = _db_url(db)
    if url.startswith("sqlite:///") and "mode=memory" not in url:
        path = Path(url[len("sqlite:///"):].split("?", 1)[0])
        if str(path) not in ("", ":memory:") and not path.is_file():
            return None, None
    from .. import review as rv
    from ..banks.store import Store

    try:
        store = Store(url, create=False)
    except StoreMissing:
        return None, None
    try:
        return {k: v.to_json_dict() for k, v in rv.all_decisions(store).items()}, store.url_for_display
    finally:
        store.close()


def _print_written(res: dict[str, Any]) -> None:
    from ._common import plural

    parts = [plural(res["files"], "file"), plural(res["matches"], "match", "matches")]
    if res.get("reviewed"):
        parts.append(f"{res['reviewed']:,} reviewed")
    if res.get("ai_evidence"):
        parts.append(f"{res['ai_evidence']:,} with AI-generation evidence")
    if res.get("model_files"):
        parts.append(plural(res["model_files"], "model file"))
    if res.get("files_with_errors"):
        parts.append(f"{res['files_with_errors']:,} with errors")
    if res.get("text_checked"):
        parts.append(f"{res.get('text_reproduced', 0):,} of {plural(res['text_checked'], 'checked text file')} "
                     f"reproducing indexed works ({plural(res.get('text_span_rows', 0), 'passage row')})")
    size = res.get("bytes")
    if res.get("written"):
        out.print(f"wrote {len(res['written'])} CSV files in {_esc(res['output'])}: "
                  + ", ".join(_esc(Path(p).name) for p in res["written"]))
        out.print("  " + ", ".join(parts))
    else:
        out.print(f"wrote {_esc(res['output'])} ({res['format']}"
                  + (f", {size / 1e6:,.1f} MB" if isinstance(size, int) else "") + "): " + ", ".join(parts))
    integrity = res.get("integrity")
    if integrity == "match":
        out.print(f"integrity: the report's SHA-256 matches its sidecar ({res['report_sha256']})")
    elif integrity == "mismatch":
        err.print("[red]warning:[/red] the report's SHA-256 does not match its sidecar: it changed after "
                  "the scan (the case report says so)")
    else:
        err.print(f"warning: the report's integrity could not be checked (sidecar {integrity})")


# --------------------------------------------------------------------------------- review
class _ReviewGroup(TyperGroup):
    """`assay review REPORT.jsonl` is `assay review list REPORT.jsonl`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        words = [a for a in args if not a.startswith("-")]
        if words and words[0] not in self.commands:
            args = ["list", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(cls=_ReviewGroup, no_args_is_help=True,
                         help="Review the matches of a scan report: list them, record decisions.")
app.add_typer(review_app, name="review")

DECISION_TEXT = {"confirmed": "confirmed", "false-positive": "false positive", "needs-review": "needs review"}


class DecisionOpt(StrEnum):
    confirmed = "confirmed"
    false_positive = "false-positive"
    needs_review = "needs-review"


def _reviewer() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@review_app.command("list")
def review_list(
    report: Annotated[Path, typer.Argument(help="A scan report (the JSON Lines file `assay scan -o` wrote).")],
    decision: Annotated[DecisionOpt | None, typer.Option(help="Only matches with this decision.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only matches without a decision.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the matches of a scan report with their record ids and decisions (and record
    them in the store as open review items, so that `assay review set ID` finds them)."""
    from dataclasses import replace

    from .. import review as rv
    from ._common import _store

    items = list(rv.report_items(report))
    with _store(db) as store:
        new = rv.register(store, items)
        decided = rv.decisions_for(store, [i.record_id for i in items])
    items = [replace(decided[i.record_id], query_variant=i.query_variant) if i.record_id in decided else i
             for i in items]
    if decision is not None:
        items = [i for i in items if i.decision == decision.value]
    if open_only:
        items = [i for i in items if i.decision is None]
    if json_out:
        _emit_json({"report": str(report), "registered": new,
                    "items": [i.to_json_dict() for i in items]})
        return
    if not items:
        what = "matching that filter" if decision or open_only else "in this report"
        out.print(f"no matches {what}: nothing to review ({_esc(str(report))})")
        return
    from rich import box
    from rich.table import Table

    from ..report.terminal import safe, strength_text

    # the record id is what `assay review set ID` takes: never folded over lines, on any width;
    # no lines between the columns, so that an 80-column terminal keeps the words whole
    t = Table(title=f"matches in {_esc(report.name)}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              collapse_padding=True)
    t.add_column("record id", no_wrap=True, min_width=16)
    t.add_column("decision", no_wrap=True)
    for col in ("bank / content id", "signal (distance)"):
        t.add_column(col)
    t.add_column("strength", overflow="fold")
    t.add_column("file", overflow="fold", ratio=1)
    for i in items:
        t.add_row(i.record_id, DECISION_TEXT.get(i.decision or "", "not reviewed"),
                  safe(f"{i.bank} / {i.content_id}"),
                  f"{i.signal_type} ({i.distance or 0})" + (f" via {i.query_variant}" if i.query_variant else ""),
                  strength_text(i.strength or ""), safe(i.path, 300))
    out.print(t)
    counts = {k: sum(1 for i in items if i.decision == k) for k in DECISION_TEXT}
    open_n = sum(1 for i in items if i.decision is None)
    out.print(f"{len(items):,} matches: {open_n:,} not reviewed, "
              + ", ".join(f"{n:,} {DECISION_TEXT[k]}" for k, n in counts.items()))
    if open_n:
        out.print("record a decision: assay review set RECORD-ID --decision confirmed|false-positive|needs-review "
                  "--note TEXT")


@review_app.command("set")
def review_set(
    record: Annotated[str, typer.Argument(help="The match's record id (from `assay review REPORT`).")],
    decision: Annotated[DecisionOpt, typer.Option(help="confirmed, false-positive or needs-review.")],
    note: Annotated[str | None, typer.Option(help="Why: kept with the decision and in the audit log.")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Who decides (default: the login name).")] = None,
    report: Annotated[Path | None, typer.Option(
        help="The scan report holding the match, when it was never listed with this store.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Record a decision on one match (who and when are kept, with an audit row)."""
    from .. import review as rv
    from ._common import _store

    target: Any = record.strip().lower()
    if report is not None:
        found = next((i for i in rv.report_items(report) if i.record_id == target), None)
        if found is None:
            raise AssayError(f"{report}: no match with record id {target}",
                             hint="`assay review REPORT` lists the record ids")
        target = found
    with _store(db) as store:
        previous = rv.get(store, record.strip().lower())
        item = rv.decide(store, target, decision.value, reviewer=reviewer or _reviewer(), note=note)
    if json_out:
        _emit_json(item.to_json_dict())
        return
    was = DECISION_TEXT.get(previous.decision or "", "not reviewed") if previous else "not reviewed"
    out.print(f"{item.record_id}: {DECISION_TEXT[item.decision or '']} by {_esc(item.reviewer or '')} at "
              f"{item.decided_at} (was: {was})")
    out.print(f"  {_esc(item.bank)} / {_esc(item.content_id)} ({item.signal_type}) matched {_esc(item.path)}")
    if note:
        out.print(f"  note: {_esc(note)}")


@review_app.command("show")
def review_show(
    record: Annotated[str, typer.Argument(help="The match's record id.")],
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One match's current decision and every earlier decision (from the audit log)."""
    from .. import review as rv
    from ..errors import NotFound
    from ._common import _store

    rid = record.strip().lower()
    with _store(db) as store:
        item = rv.get(store, rid)
        if item is None:
            raise NotFound(f"no match with record id {rid} in this store",
                           hint="`assay review REPORT` lists and records a report's matches")
        hist = rv.history(store, rid)
    if json_out:
        _emit_json({**item.to_json_dict(), "history": hist})
        return
    out.print(f"{item.record_id}: {DECISION_TEXT.get(item.decision or '', 'not reviewed')}"
              + (f" by {_esc(item.reviewer or '')} at {item.decided_at}" if item.decision else ""))
    out.print(f"  bank {_esc(item.bank)}, content id {_esc(item.content_id)}, {item.signal_type} "
              f"{_esc(item.value)} ({item.strength or 'unknown strength'}, distance {item.distance or 0})")
    out.print(f"  file {_esc(item.path)}" + (f" (SHA-256 {item.file_sha256})" if item.file_sha256 else ""))
    if item.note:
        out.print(f"  note: {_esc(item.note)}")
    if hist:
        out.print("history:")
        for h in hist:
            out.print(f"  {h['at']} {_esc(h['actor'])}: {h['previous'] or 'not reviewed'} -> {h['decision']}"
                      + (f" ({_esc(h['note'])})" if h.get("note") else ""))
