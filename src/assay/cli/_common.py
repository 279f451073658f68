"""Shared pieces of the `assay` command: the Typer apps, consoles, options and store access."""


import json
import os
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .. import __version__
from ..config import ENV_DB, default_db_url, normalize_db_url
from ..errors import AssayError
from ..report.text import plural as plural  # re-exported for the command modules

# Command (or group) name -> the module of assay.cli that registers it, in the order
# `assay --help` lists them. A command is built from its module on first use, so that
# `assay hash` imports the code of `hash` and nothing else (start-up, issue #12 item 8).
COMMANDS: dict[str, str] = {
    "scan": "scan", "hash": "lookup", "match": "lookup", "provenance": "evidence", "model": "evidence",
    "report": "report", "signals": "misc", "demo": "misc", "serve": "misc", "bank": "banks",
    "lora": "evidence", "review": "report", "text": "text", "keys": "misc", "camera": "camera",
    "exchange": "exchanges",
}


def _registered() -> dict[str, Any]:
    """Name -> Typer's CommandInfo or TyperInfo of everything registered on ``app`` so far."""
    from typer.main import get_command_name

    found: dict[str, Any] = {}
    for info in app.registered_commands:
        found[info.name or get_command_name(info.callback.__name__)] = info  # type: ignore[union-attr]
    for group in app.registered_groups:
        if group.name:
            found[group.name] = group
    return found


def _import_every_command_module() -> None:
    """For a name not in COMMANDS (a command added without its line there): load them all."""
    import importlib
    import pkgutil

    for m in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not m.name.startswith("_"):
            importlib.import_module(f"{__package__}.{m.name}")


class _Commands(MutableMapping[str, Any]):
    """A group's subcommands by name, each imported and built when first asked for.
    Names and order come from COMMANDS without importing anything (``assay --help``
    still builds them all, for their one-line help). A command some module registers
    without a line in COMMANDS still works and is listed, after the others, at the cost
    of importing every command module (tests/test_cli_startup.py keeps the table whole)."""

    lazy = True  # polish() leaves them to _build

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        cmd = self._built.get(name)
        if cmd is None:
            if name in COMMANDS:
                import importlib

                importlib.import_module(f"{__package__}.{COMMANDS[name]}")
            if name not in _registered():
                _import_every_command_module()
            info = _registered().get(name)
            if info is None:
                raise KeyError(name)
            cmd = self._built[name] = _build(name, info)
        return cmd

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self._built or name in self._unlisted()

    def _unlisted(self) -> list[str]:
        _import_every_command_module()
        return [n for n in _registered() if n not in COMMANDS]

    def __iter__(self) -> Iterator[str]:
        return iter([*COMMANDS, *self._unlisted()])

    def __len__(self) -> int:  # without importing: what is known so far
        return len(set(COMMANDS) | set(_registered()))

    def __setitem__(self, name: str, cmd: Any) -> None:
        self._built[name] = cmd

    def __delitem__(self, name: str) -> None:
        del self._built[name]


def _build(name: str, info: Any) -> Any:
    """The click command of ``name`` from what its module registered on ``app``."""
    from typer.main import get_command_from_info, get_group_from_info
    from typer.models import CommandInfo

    from ._help import polish

    if isinstance(info, CommandInfo):
        cmd = get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                    rich_markup_mode=app.rich_markup_mode)
    else:
        cmd = get_group_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                  rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
    polish(cmd, name)
    return cmd


class _AssayGroup(TyperGroup):
    """Every error assay raises on purpose becomes one clear line on stderr and its exit
    status, here rather than in main(), so that in-process runs behave as the command does.
    Subcommands are imported on first use (``_Commands``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from ._help import polish

        self.commands = _Commands()  # whatever Typer built from modules already imported is rebuilt on use
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

class _Console:
    """Rich's Console for one stream, made on first use (importing Rich costs a one-file
    command ~0.1 s of CPU). ``line`` writes plain text as is when the stream is not a
    terminal, which is what Rich would write there (no styles, no wrapping: soft_wrap),
    so ``assay hash FILE > out.txt`` never loads Rich; on a terminal Rich styles it."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._rich: Any = None
        self._made_for: tuple[int, str | None] | None = None

    def _console(self) -> Any:
        # Rich reads the terminal's size (COLUMNS) when a Console is made: one is made
        # again when the stream or COLUMNS changed (a program that runs commands in
        # turn, such as a test runner, swaps sys.stdout for each).
        made_for = (id(sys.stderr if self._stderr else sys.stdout), os.environ.get("COLUMNS"))
        if self._rich is None or made_for != self._made_for:
            from rich.console import Console

            self._rich = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
            self._made_for = made_for
        return self._rich

    @property
    def file(self) -> Any:
        return self._rich.file if self._rich is not None else (sys.stderr if self._stderr else sys.stdout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console(), name)

    def line(self, *parts: str | tuple[str, str]) -> None:
        """One line of text that is already safe to show (never parsed as markup), each
        part a string or (string, style)."""
        if self._rich is None and not _styled(self.file):
            self.file.write("".join(p if isinstance(p, str) else p[0] for p in parts).expandtabs(8) + "\n")
            return
        from rich.text import Text

        self._console().print(Text.assemble(*parts))


def _styled(stream: Any) -> bool:
    """Would Rich style (or otherwise transform) what it writes to ``stream``?"""
    if any(os.environ.get(v) for v in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS")):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return True


out = _Console()
err = _Console(stderr=True)


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
    vpdq = "vpdq"


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
    """Text to print inside Rich markup: markup escaped, and shown on one line (``_shown``)."""
    from rich.markup import escape

    return escape(_shown(s))


def _shown(s: str) -> str:
    """``s`` (a file name, a message naming one, text from a file) with what a terminal would
    act on or hide escaped, on one line (report.escape)."""
    from ..report.escape import shown

    return shown(s)


def _special(path: Path) -> str | None:
    """Why ``path`` is no file a one-file command can read, or None (a regular file, a folder,
    or something missing: the command's own error says that). A FIFO with no writer blocks
    forever, one with a writer can be read once (the sniffer's look at its head leaves the
    readers nothing: a JPEG read as 'not an image'), a device such as /dev/zero never ends;
    the scan walk reports such paths too, without opening them."""
    import stat

    from ..scan.walk import special_kind

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"not a regular file but {special_kind(mode)}; save it to a file first"


def _refuse_special(path: Path) -> None:
    """Raise, naming ``path``, when it is a pipe, socket or device (see _special)."""
    if why := _special(path):
        raise AssayError(f"{path}: {why}")


def _check_anchors(trust_anchors: Path | None) -> None:
    """A trust-anchor bundle named by --trust-anchors or $ASSAY_C2PA_TRUST_ANCHORS that cannot
    be read stops the command before any work: otherwise every credential reads 'could not
    check: c2pa' (a mistyped path turned a signed credential into 'no provenance evidence
    found', exit 0)."""
    if trust_anchors is None and not os.environ.get("ASSAY_C2PA_TRUST_ANCHORS"):
        return
    from ..provenance.c2pa import resolve_anchors  # not the C2PA SDK: reads the PEM only

    resolve_anchors(trust_anchors)


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


class _Banks:
    """The banks of one-file commands (`match`, `model`), opened on first need: lookups
    through the SQLite reader where it can answer (no SQLAlchemy, no index to build;
    banks/reader.py), else through the store and a Matcher, as `scan` does."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        self._stack = ExitStack()
        self._reader: Any = None
        self._tried = False
        self._store: Any = None
        self._matcher: Any = None

    def __enter__(self) -> "_Banks":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _read(self) -> Any:
        if not self._tried:
            self._tried = True
            _check_store_named(self.db)
            from ..banks.reader import SqliteReader

            self._reader = SqliteReader.open(_db_url(self.db))
            if self._reader is not None:
                self._stack.callback(self._reader.close)
        return self._reader

    def store(self) -> Any:
        if self._store is None:
            self._store = self._stack.enter_context(_store(self.db))
        return self._store

    def lookup(self, queries: Any, *, threshold: int | None = None, include_low_quality: bool = False,
               variants: bool = True) -> Any:
        import sqlite3

        reader = self._read()
        if reader is not None:
            try:
                found = reader.lookup(queries, threshold=threshold, include_low_quality=include_low_quality,
                                      variants=variants)
            except sqlite3.Error:  # the store's own path says what is wrong, or copes
                found = None
            if found is not None:
                return found
        if self._matcher is None:
            from ..banks.matcher import Matcher

            self._matcher = Matcher(self.store())
        return self._matcher.lookup(queries, threshold=threshold, include_low_quality=include_low_quality,
                                    variants=variants)

    def match_subject(self, signals: Any, frames: Any = (), trimmed: Any = (), *, displayed: Any = (),
                      mirrored: Any = (), turned: Any = None, threshold: int | None = None,
                      include_low_quality: bool = False,
                      variants: bool = True) -> Any:
        """Matches of one subject, a video's vPDQ ``frames`` by Meta's rule per banked video
        (``Matcher.match_subject``)."""
        import sqlite3

        from ..banks.matcher import subject_matches, subject_queries

        queries, n, kept = subject_queries(signals, frames, trimmed, displayed, mirrored, turned)
        found = None
        reader = self._read()
        if reader is not None:
            try:
                found = reader.hits(queries, threshold=threshold, include_low_quality=include_low_quality)
            except sqlite3.Error:
                found = None
        if found is None:
            if self._matcher is None:
                from ..banks.matcher import Matcher

                self._matcher = Matcher(self.store())
            found = self._matcher.hits(queries, threshold=threshold, include_low_quality=include_low_quality)
        hits, refs = found
        return subject_matches(queries, n, kept, hits, refs, threshold, variants=variants)

    def pdq_variant_kinds(self) -> frozenset[str]:
        """The kinds of variant hashes the banks hold (Store.pdq_variant_kinds)."""
        import sqlite3

        reader = self._read()
        if reader is not None:
            try:
                return reader.pdq_variant_kinds()  # type: ignore[no-any-return]
            except sqlite3.Error:
                pass
        return self.store().pdq_variant_kinds()  # type: ignore[no-any-return]

    def match_signals(self, signals: Any) -> Any:
        """The matches of ONE subject's signals (a short hash its own full hash refutes
        left out: ``banks.matcher.refuted_removed``)."""
        return self.match_subject(signals)

    def fingerprint_count(self, banks: list[str] | None) -> int | None:
        """Model fingerprints lineage would compare with, or None (unknown without the store)."""
        import sqlite3

        reader = self._read()
        if reader is None:
            return None
        try:
            return int(reader.fingerprint_count(banks))
        except sqlite3.Error:
            return None


def _camera_bank(db: str | None, threshold: float) -> Any:
    """The enrolled cameras that `provenance` compares images with, or None when the store
    holds none: one count through sqlite3 (no SQLAlchemy) where it can answer, and the
    embedded default store is never made for this."""
    _check_store_named(db)
    url = _db_url(db)
    from ..banks.reader import SqliteReader

    reader = SqliteReader.open(url)
    if reader is not None:
        with reader:
            if reader.camera_count() == 0:
                return None
    elif not _db_named(db) and url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not (path.is_file() and path.stat().st_size):
            return None
    from ..camera.evidence import CameraBank

    return CameraBank.open(url, threshold)


def _emit_json(obj: Any) -> None:
    text = json.dumps(obj, ensure_ascii=False, indent=None)
    if not text.isascii():  # a file name that is not UTF-8: escaped, so the line stays valid UTF-8
        from ..report.jsonl import escape_surrogates

        text = escape_surrogates(text)
    out.file.write(text + "\n")


@contextmanager
def _nullctx() -> Iterator[None]:
    yield None
