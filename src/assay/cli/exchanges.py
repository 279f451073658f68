"""`assay exchange ...`: banks kept in sync with hash-sharing programmes."""


import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import DbOpt, JsonOpt, _emit_json, _esc, _store, app, err, out, plural

exchange_app = typer.Typer(
    help="Hash exchanges: banks fed by NCMEC, StopNCII, ThreatExchange, Tech Against Terrorism or a file.",
    no_args_is_help=True)
app.add_typer(exchange_app, name="exchange")

NameArg = Annotated[str, typer.Argument(help="The exchange's name.", show_default=False)]


class ExchangeType(StrEnum):
    ncmec = "ncmec"
    stopncii = "stopncii"
    threatexchange = "threatexchange"
    tat = "tat"
    file = "file"


def _when(v: Any) -> str:
    return f"{v:%Y-%m-%d %H:%M:%S} UTC" if hasattr(v, "strftime") else "never"


def _lib() -> None:
    from ..exchanges import require_library

    require_library()


@exchange_app.command("add")
def exchange_add(
    name: NameArg,
    kind: Annotated[ExchangeType, typer.Option("--type", help="The programme.", show_default=False)],
    bank: Annotated[str, typer.Option("--bank", help="The bank it feeds (must exist).", show_default=False)],
    privacy_group: Annotated[int | None, typer.Option(help="threatexchange: the privacy group id.")] = None,
    environment: Annotated[str | None, typer.Option(
        help="ncmec: the database, e.g. Industry (default), NGO, test_Industry.")] = None,
    esp_id: Annotated[list[int] | None, typer.Option(
        "--esp-id", help="ncmec: only entries of these members (ESP ids); repeat for several.")] = None,
    path: Annotated[Path | None, typer.Option(help="file: the signal file ('TYPE VALUE' per line).")] = None,
    signal_type: Annotated[str | None, typer.Option(
        help="file: the type of lines that carry only a value (e.g. pdq).")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="The programme's endpoint, for its test server or a mirror (https; http for loopback only).")] = None,
    credentials_file: Annotated[Path | None, typer.Option(
        help="A file holding the credentials, readable by you only (chmod 600). "
             "Or set ASSAY_EXCHANGE_<NAME>_CREDENTIALS.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it without scheduled fetches.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Configure an exchange feeding a bank. Credentials are never stored."""
    _lib()
    from ..exchanges import config as cfg

    settings = {"privacy_group": privacy_group, "environment": environment, "only_esp_ids": esp_id,
                "path": str(path) if path else None, "signal_type": signal_type, "base_url": base_url,
                "credentials_file": str(credentials_file) if credentials_file else None}
    with _store(db) as store:
        ex = cfg.add(store, name, kind.value, bank, settings, enabled=not disabled)
    if json_out:
        _emit_json(ex.to_json_dict())
        return
    out.print(f"added exchange {_esc(ex.name)} ({ex.type}) feeding bank {_esc(ex.bank or '?')}; "
              f"fetch it with `assay exchange fetch {_esc(ex.name)}`")
    if ex.type != "file":
        from ..exchanges.credentials import env_var

        out.print(f"credentials: {_esc(env_var(ex.name))}"
                  + (f" or the file {_esc(ex.settings['credentials_file'])}" if "credentials_file" in ex.settings
                     else " (or --credentials-file)"))


@exchange_app.command("list")
def exchange_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Configured exchanges and the state of their last fetch."""
    from rich.table import Table

    from ..exchanges import config as cfg
    from ..report.terminal import safe

    with _store(db) as store:
        rows = cfg.list_all(store)
    if json_out:
        _emit_json([x.to_json_dict() for x in rows])
        return
    if not rows:
        out.print("no exchanges yet: add one with `assay exchange add NAME --type TYPE --bank BANK`")
        return
    t = Table()
    for c in ("exchange", "type", "bank", "enabled", "last fetch", "status", "last success"):
        t.add_column(c)
    for x in rows:
        t.add_row(_esc(x.name), x.type, _esc(x.bank or "(deleted)"), "yes" if x.enabled else "no",
                  _when(x.last_finished_at), safe(x.last_status or "never fetched", 20), _when(x.last_success_at))
    out.print(t)


@exchange_app.command("show")
def exchange_show(name: NameArg, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """One exchange: settings, checkpoint and its last fetch."""
    from rich.text import Text

    from ..exchanges import config as cfg
    from ..report.terminal import safe

    with _store(db) as store:
        x = cfg.get(store, name)
    if json_out:
        _emit_json(x.to_json_dict())
        return
    out.print(f"exchange [bold]{_esc(x.name)}[/bold] ({x.type}) feeding bank {_esc(x.bank or '(deleted)')}, "
              f"{'enabled' if x.enabled else 'disabled'}")
    for k, v in sorted(x.settings.items()):
        out.print(Text(f"  {k}: ") + safe(str(v), 300))
    out.print(f"  checkpoint: {'none (the next fetch starts from the beginning)' if not x.checkpoint else ''}"
              + (f"saved {_when(x.checkpoint_at)}" if x.checkpoint else ""))
    if x.checkpoint:
        out.print(Text("    ") + safe(x.checkpoint, 300))
    out.print(f"  last fetch: {x.last_status or 'never'}, started {_when(x.last_started_at)}, "
              f"finished {_when(x.last_finished_at)}; last success {_when(x.last_success_at)}")
    if x.last_counts:
        out.print("  " + _counts_line(x.last_counts))
    if x.last_error:
        out.print(Text("  error: ") + safe(x.last_error, 600))


def _counts_line(c: dict[str, Any]) -> str:
    parts = [plural(int(c.get("pages", 0)), "page"), f"{int(c.get('records', 0)):,} records",
             f"{int(c.get('added', 0)):,} added", f"{int(c.get('updated', 0)):,} updated",
             f"{int(c.get('removed', 0)):,} removed", f"{int(c.get('unchanged', 0)):,} unchanged"]
    if c.get("invalid"):
        parts.append(f"{int(c['invalid']):,} invalid values skipped")
    skipped = c.get("skipped") or {}
    if skipped:
        parts.append("not banked (types assay does not hold): "
                     + ", ".join(f"{int(n):,} {k}" for k, n in sorted(skipped.items())))
    if c.get("retries"):
        parts.append(plural(int(c["retries"]), "retry", "retries"))
    return _esc("; ".join(parts))


@exchange_app.command("remove")
def exchange_remove(name: NameArg, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Forget an exchange (the entries it brought stay in the bank)."""
    from ..exchanges import config as cfg

    with _store(db) as store:
        cfg.remove(store, name)
    _emit_json({"removed": name}) if json_out else out.print(
        f"removed exchange {_esc(name)}; the entries it brought stay in its bank")


@exchange_app.command("enable")
def exchange_enable(name: NameArg, db: DbOpt = None) -> None:
    """Include the exchange in scheduled fetches."""
    from ..exchanges import config as cfg

    with _store(db) as store:
        cfg.set_enabled(store, name, True)
    out.print(f"exchange {_esc(name)} enabled")


@exchange_app.command("disable")
def exchange_disable(name: NameArg, db: DbOpt = None) -> None:
    """Leave the exchange out of scheduled fetches (its entries stay and keep matching)."""
    from ..exchanges import config as cfg

    with _store(db) as store:
        cfg.set_enabled(store, name, False)
    out.print(f"exchange {_esc(name)} disabled")


@exchange_app.command("fetch")
def exchange_fetch(
    name: Annotated[str | None, typer.Argument(help="The exchange (default: every enabled one).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Forget the checkpoint and fetch from the beginning.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch new and changed signals into the exchange's bank (incremental, resumable)."""
    _lib()
    from ..errors import AssayError
    from ..exchanges import config as cfg
    from ..exchanges.fetch import fetch

    show = not json_out and err.is_terminal

    def progress(r: Any) -> None:
        if show:
            err.print(f"{_esc(r.exchange)}: page {r.pages}, {r.records:,} records", end="\r")

    results = []
    failed = 0
    with _store(db) as store:
        names = [name] if name else [x.name for x in cfg.list_all(store) if x.enabled]
        if not names and not json_out:
            out.print("no enabled exchanges to fetch: add one with `assay exchange add`")
        for n in names:
            try:
                r = fetch(store, n, full=full, progress=progress)
                results.append(r.to_json_dict())
                if not json_out:
                    out.print(f"{_esc(n)} -> bank {_esc(r.bank)}: " + _counts_line(r.counts()))
            except AssayError as exc:
                failed += 1
                if name or not json_out:
                    err.print(f"[red]error:[/red] {_esc(str(exc))}")
                results.append({"exchange": n, "status": "error", "error": str(exc)})
    if json_out:
        _emit_json(results if name is None else results[0])
    if failed:
        raise typer.Exit(1)


@exchange_app.command("share")
def exchange_share(
    name: NameArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be sent; send nothing.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send review decisions on matches of the exchange's entries back as feedback."""
    _lib()
    from rich.table import Table

    from ..exchanges.share import share
    from ..report.terminal import safe

    with _store(db) as store:
        res = share(store, name, dry_run=dry_run)
    if json_out:
        _emit_json(res.to_json_dict())
        return
    if not res.items:
        out.print(f"nothing to share for {_esc(name)}: no decided reviews on its entries not sent already")
        return
    t = Table(title="would send" if dry_run else "sent", title_justify="left")
    for c in ("content id", "decision", "feedback", "status"):
        t.add_column(c)
    for i in res.items:
        t.add_row(safe(i["content_id"], 80), i["decision"], i["feedback"], safe(i["status"], 80))
    out.print(t)
    if res.failed:
        err.print(f"{plural(res.failed, 'feedback')} failed")
        sys.exit(1)
