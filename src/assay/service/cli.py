"""CLI faces of the service: ``assay keys create|list|revoke`` and ``assay serve``.

They are registered in assay/cli/misc.py::

    app.add_typer(keys_app, name="keys")
    app.command("serve")(serve)
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AssayError
from .settings import ROLES, Settings

keys_app = typer.Typer(help="API keys of the HTTP service (stored hashed in the bank store).",
                       no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option(
    "--db", help="Bank store: SQLite path or database URL (env ASSAY_DB).", show_default=False)]
Role = StrEnum("Role", {r: r for r in ROLES})  # a choice, so a bad role is bad usage (exit 2)


def _can_listen(host: str, port: int) -> None:
    """Bind and release the address as uvicorn will bind it (OSError if it cannot be), so that
    a port in use or a bad address is said before "listening on" is printed."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def _fail(exc: AssayError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(exc.exit_code)


CreateOption = Annotated[bool, typer.Option(
    "--create", help="Create the store named by --db / ASSAY_DB if it does not exist yet.")]


def _engine_store(db: str | None, *, create: bool = False):  # noqa: ANN202 - a Store, imported lazily
    """The store of ``--db`` here, or of `assay --db`, or the default. A store named on
    purpose (--db, ASSAY_DB) must exist unless ``create`` (or `assay --create`): a typo is
    refused, never served or given keys as a new, empty store. The embedded default
    store is made on first use."""
    from ..cli._common import _state
    from .app import open_store

    db = db or _state.get("db") or ""
    if (db or os.environ.get("ASSAY_DB")) and not (create or _state.get("create")):
        from ..banks.store import Store

        return Store(Settings(db=db).db_url, create=False)
    return open_store(Settings(db=db))


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option("--role", help="What the key may do.")],
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")],
    rate_limit: Annotated[float | None, typer.Option(
        "--rate-limit", help="Requests per second (default: the service's).")] = None,
    db: DbOption = None,
    create: CreateOption = False,
) -> None:
    """Create a key and print it ONCE (only its hash is stored)."""
    from .auth import create_key

    try:
        store = _engine_store(db, create=create)
        try:
            k, key = create_key(store.writer, name, role.value, rate_limit)
        finally:
            store.close()
    except AssayError as exc:
        _fail(exc)
        return
    typer.echo(f"created key {k.id} ({k.name}, role {k.role}); store it now, it is not shown again:", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    db: DbOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """List keys: id, role, name, prefix, state (never the keys)."""
    from .auth import list_keys

    try:
        store = _engine_store(db)
        try:
            keys = list_keys(store.engine)
        finally:
            store.close()
    except AssayError as exc:
        _fail(exc)
        return
    if json_out:
        typer.echo(json.dumps([
            {"id": k.id, "role": k.role, "name": k.name, "prefix": k.prefix, "rate_limit": k.rate_limit,
             "created_at": k.created_at.isoformat(),
             "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None} for k in keys]))
        return
    if not keys:
        typer.echo("no keys yet: create one with `assay keys create --role match --name NAME`")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table()
    for c in ("id", "role", "name", "prefix", "created", "state"):
        t.add_column(c)
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        t.add_row(str(k.id), k.role, Text(k.name), Text(k.prefix + "..."), f"{k.created_at:%Y-%m-%d %H:%M}", state)
    Console(highlight=False, soft_wrap=True).print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id, from `assay keys list`.")],
                db: DbOption = None) -> None:
    """Revoke a key (takes effect on every worker within a few seconds)."""
    from .auth import revoke_key

    try:
        store = _engine_store(db)
        try:
            k = revoke_key(store.writer, key_id)
        finally:
            store.close()
    except AssayError as exc:
        _fail(exc)
        return
    typer.echo(f"revoked key {k.id} ({k.name})")


def _metrics_setup(settings: Settings) -> str:
    """Prometheus multiprocess mode for the workers: a directory of this supervisor,
    new and empty, removed at exit (and, at the next start, if a killed supervisor left
    it); with ``metrics_listen``, an exposition server on that address in this process.
    Returns what to say about it."""
    import atexit
    import shutil

    from .tmpfiles import _writer_alive

    root = settings.tmp_path
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in root.glob("metrics-*"):
        pid = old.name.partition("-")[2]
        if pid.isdigit() and not _writer_alive(int(pid), old.stat().st_mtime):
            shutil.rmtree(old, ignore_errors=True)
    path = root / f"metrics-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    atexit.register(shutil.rmtree, path, True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    if not settings.metrics_listen:
        return ""
    # prometheus_client itself, not assay.service.metrics: this process must not create
    # samples of its own (a live gauge of 0 here would pull the workers' minimum down).
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    host, _, port = settings.metrics_listen.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)
    return f"; metrics at http://{settings.metrics_listen}/metrics"


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes (each holds its own index).", min=1)] = 2,
    db: DbOption = None,
    allow_anonymous: Annotated[bool, typer.Option(
        help="Let requests without a key hash and look up (role 'match').")] = False,
    rate_limit: Annotated[float, typer.Option(help="Default requests per second per key.")] = Settings.rate_limit,
    max_upload_mb: Annotated[int, typer.Option(help="Largest image upload, MiB.", min=1)] = \
        Settings.max_upload_bytes // 2**20,
    snapshot_dir: Annotated[str, typer.Option(
        help="Where workers share index snapshots (default: the data directory).")] = "",
    tmp_dir: Annotated[str, typer.Option(
        help="Where upload bodies are streamed (default: data directory/service-tmp).")] = "",
    redis_url: Annotated[str, typer.Option(
        envvar="ASSAY_REDIS_URL",
        help="Redis for rate limits shared by every worker and instance (default: per-worker limits).")] = "",
    access_log: Annotated[bool, typer.Option(help="JSON access log on stderr.")] = True,
    text_index: Annotated[str, typer.Option(
        "--text-index", help="Text index served at /v1/text (assay text index ... --index DIR).")] = "",
    create: CreateOption = False,
    metrics_listen: Annotated[str, typer.Option(
        help="HOST:PORT where the supervisor serves every worker's Prometheus metrics without a key "
             "(default: only GET /metrics on the API, admin key).")] = "",
) -> None:
    """Run the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    try:
        # ASSAY_SERVICE_* variables set what no flag does (e.g. the job stale time).
        base = Settings.from_env()
        from ..cli._common import _state

        settings = replace(
            base,
            db=db or _state.get("db") or "", anonymous_role="match" if allow_anonymous else None, workers=workers,
            rate_limit=rate_limit, max_upload_bytes=max_upload_mb * 2**20,
            snapshot_dir=snapshot_dir or base.snapshot_dir, tmp_dir=tmp_dir or base.tmp_dir,
            rate_limit_redis_url=redis_url or base.rate_limit_redis_url, access_log=access_log,
            text_index=str(Path(text_index).resolve()) if text_index else base.text_index,
            metrics_listen=metrics_listen or base.metrics_listen,
        )
        if settings.text_index:
            from ..text.index import TextIndex

            TextIndex.open(settings.text_index).works()  # a missing or damaged index stops here, not at the first request
        # Refuse a missing store, or migrate once here, before the workers race to open it.
        _engine_store(settings.db, create=create).close()
    except AssayError as exc:
        _fail(exc)
        return
    from .protocol import protocol_class

    shown = f"[{host}]" if ":" in host else host
    try:
        _can_listen(host, port)
    except OSError as exc:
        _fail(AssayError(f"cannot listen on {shown}:{port}: {exc.strerror or exc}",
                         hint="another program holds that port: choose another --port, or stop it"
                         if getattr(exc, "errno", None) == errno.EADDRINUSE else "check --host and --port"))
        return
    # Only now, with nothing left to refuse, the settings go into the environment the
    # workers read (a refused start left them in its caller's: a program or test that
    # ran `serve` in-process and went on started its next servers with them).
    os.environ.update(settings.to_env())
    try:
        metrics_at = _metrics_setup(settings)
    except OSError as exc:
        _fail(AssayError(f"cannot serve metrics: {exc}"))
        return
    typer.echo(f"assay serve: listening on http://{shown}:{port} ({workers} worker{'s' if workers != 1 else ''}; "
               f"API docs at /docs){metrics_at}; Ctrl-C stops it", err=True)
    uvicorn.run(
        "assay.service.app:create_app_from_env",
        factory=True, host=host, port=port, workers=workers, access_log=False,
        http=protocol_class(), timeout_keep_alive=max(1, round(settings.idle_timeout)),
        log_level="warning", server_header=False,
        # h11 (the fallback protocol) caps request line + headers at 16 KiB by default: a
        # vPDQ signal string in a GET /m/lookup needs more (httptools has no such cap).
        h11_max_incomplete_event_size=256 * 1024,
    )
