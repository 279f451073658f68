"""Shared pieces of the `assay` command: the Typer apps, consoles, options and store access."""


import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from .. import __version__
from ..config import ENV_DB, default_db_url, normalize_db_url
from ..errors import AssayError
from ..report.text import plural as plural  # re-exported for the command modules


class _AssayGroup(TyperGroup):
    """Every error assay raises on purpose becomes one clear line on stderr and its exit
    status, here rather than in main(), so that in-process runs behave as the command does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from ._help import polish

        polish(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AssayError as exc:
            err.print(f"[red]error:[/red] {_esc(str(exc))}")
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_AssayGroup,
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
    vics = "vics"
    nsrl = "nsrl"


_state: dict[str, Any] = {"db": None, "create": False}

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Bank store: SQLite path or database URL (env ASSAY_DB).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
CreateOpt = Annotated[bool, typer.Option(
    "--create", help="Create the store named by --db / ASSAY_DB if it does not exist yet.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"assay {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    db: DbOpt = None,
    create: Annotated[bool, typer.Option(
        "--create", help="Create the store named by --db / ASSAY_DB if it does not exist yet "
        "(without it, a missing store is refused: a typo never scans against an empty store).")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    _state["db"] = normalize_db_url(db) if db else None
    _state["create"] = create



def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def _db_url(db: str | None) -> str:
    if db:
        return normalize_db_url(db)
    return _state["db"] or default_db_url()


def _db_named(db: str | None) -> bool:
    """Was the store named on purpose (--db, ASSAY_DB) rather than the embedded default?"""
    return bool(db or _state["db"] or os.environ.get(ENV_DB))


def _check_store_named(db: str | None = None) -> None:
    """Refuse a named SQLite store that does not exist before any work, without loading
    the database layer (commands that open their store late call this first)."""
    if _state["create"] or not _db_named(db):
        return
    url = _db_url(db)
    if url.startswith("sqlite:///") and "mode=memory" not in url and not url.startswith("sqlite:///file:"):
        path = Path(url[len("sqlite:///"):].split("?", 1)[0])
        if str(path) not in ("", ":memory:") and not (path.is_file() and path.stat().st_size):
            from ..errors import StoreMissing

            raise StoreMissing(f"no assay store at {url}",
                               hint="check the path or URL; to make a new store there, pass --create")


@contextmanager
def _store(db: str | None = None, *, create: bool = False) -> Iterator[Any]:
    """The store; one named on purpose must exist unless --create (the embedded default
    store is made on first use, so that `assay` works with no set-up)."""
    from ..banks.store import Store

    store = Store(_db_url(db), create=create or _state["create"] or not _db_named(db))
    try:
        yield store
    finally:
        store.close()


def _emit_json(obj: Any) -> None:
    out.file.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")


@contextmanager
def _nullctx() -> Iterator[None]:
    yield None
