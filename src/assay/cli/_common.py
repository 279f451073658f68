"""Shared pieces of the `assay` command: the Typer apps, consoles, options and store access."""


import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from .. import __version__
from ..config import default_db_url, normalize_db_url

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



def _esc(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def _db_url(db: str | None) -> str:
    if db:
        return normalize_db_url(db)
    return _state["db"] or default_db_url()


@contextmanager
def _store(db: str | None = None) -> Iterator[Any]:
    from ..banks.store import Store

    store = Store(_db_url(db))
    try:
        yield store
    finally:
        store.close()


def _emit_json(obj: Any) -> None:
    out.file.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")


@contextmanager
def _nullctx() -> Iterator[None]:
    yield None
