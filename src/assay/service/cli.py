"""CLI faces of the service: ``assay keys create|list|revoke`` and ``assay serve``.

They are registered in assay/cli/misc.py::

    app.add_typer(keys_app, name="keys")
    app.command("serve")(serve)
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated

import typer

from ..errors import AssayError
from .settings import ROLES, Settings

keys_app = typer.Typer(help="API keys of the HTTP service (stored hashed in the bank store).",
                       no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help="store URL or path (default: ASSAY_DB or the embedded store)")]


def _fail(exc: AssayError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _engine_store(db: str | None):  # noqa: ANN202 - a Store; typed loosely to keep imports lazy
    from .app import open_store

    return open_store(Settings(db=db or ""))


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help=" | ".join(ROLES))],
    name: Annotated[str, typer.Option("--name", help="who or what uses the key")],
    rate_limit: Annotated[float | None, typer.Option("--rate-limit", help="requests/s (default: the service's)")] = None,
    db: DbOption = None,
) -> None:
    """Create a key and print it ONCE (only its hash is stored)."""
    from .auth import create_key

    try:
        store = _engine_store(db)
        try:
            k, key = create_key(store.writer, name, role, rate_limit)
        finally:
            store.close()
    except AssayError as exc:
        _fail(exc)
        return
    typer.echo(f"created key {k.id} ({k.name}, role {k.role}); store it now, it is not shown again:", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
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
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.role}\t{k.name}\t{k.prefix}...\t{state}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="id from `assay keys list`")], db: DbOption = None) -> None:
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


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    workers: Annotated[int, typer.Option(help="worker processes (each holds its own index)")] = 2,
    db: DbOption = None,
    allow_anonymous: Annotated[bool, typer.Option(help="let requests without a key hash and look up (role 'match')")] = False,
    rate_limit: Annotated[float, typer.Option(help="default per-key requests/s for this instance")] = Settings.rate_limit,
    max_upload_mb: Annotated[int, typer.Option(help="largest image upload, MiB")] = Settings.max_upload_bytes // 2**20,
    snapshot_dir: Annotated[str, typer.Option(help="where workers share index snapshots (default: data dir)")] = "",
    tmp_dir: Annotated[str, typer.Option(help="where upload bodies are streamed (default: data dir/service-tmp)")] = "",
    redis_url: Annotated[str, typer.Option(
        envvar="ASSAY_REDIS_URL",
        help="Redis for rate limits shared by every worker and instance (default: per-worker limits)")] = "",
    access_log: Annotated[bool, typer.Option(help="JSON access log on stderr")] = True,
) -> None:
    """Run the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    try:
        # ASSAY_SERVICE_* variables set what no flag does (e.g. the job stale time).
        base = Settings.from_env()
        settings = replace(
            base,
            db=db or "", anonymous_role="match" if allow_anonymous else None, workers=workers,
            rate_limit=rate_limit, max_upload_bytes=max_upload_mb * 2**20,
            snapshot_dir=snapshot_dir or base.snapshot_dir, tmp_dir=tmp_dir or base.tmp_dir,
            rate_limit_redis_url=redis_url or base.rate_limit_redis_url, access_log=access_log,
        )
        # Migrate once here, before the workers race to open the store.
        _engine_store(settings.db).close()
    except AssayError as exc:
        _fail(exc)
        return
    os.environ.update(settings.to_env())
    uvicorn.run(
        "assay.service.app:create_app_from_env",
        factory=True, host=host, port=port, workers=workers, access_log=False,
        timeout_keep_alive=30, log_level="warning", server_header=False,
    )
