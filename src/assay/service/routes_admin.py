"""/v1 keys and audit log (role ``admin``); liveness and readiness (no key)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import StoreError
from .auth import ApiKey, Principal, create_key, list_keys, revoke_key
from .routes_match import json_response
from .settings import ROLES
from .state import get_state, insert_audit, role
from .tables import audit_log
from .validation import STRICT, Line

router = APIRouter(tags=["admin"])
AdminRole = Annotated[Principal, Depends(role("admin"))]


class KeyCreate(BaseModel):
    model_config = STRICT
    name: Line = Field(min_length=1, max_length=128)
    role: Literal[ROLES] = Field(description=" | ".join(ROLES))  # type: ignore[valid-type]
    rate_limit: float | None = Field(default=None, gt=0, le=1e9)


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    rate_limit: float | None
    created_at: str
    revoked_at: str | None
    key: str | None = Field(default=None, description="only in the answer that created it")


class AuditOut(BaseModel):
    id: int
    at: str
    key_id: int | None
    actor: str
    action: str
    bank: str | None
    detail: dict[str, Any]


class ReadyOut(BaseModel):
    ready: bool
    index_loaded: bool
    store_reachable: bool
    index_sizes: dict[str, int]
    version: str


def key_dict(k: ApiKey, key: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": k.id, "name": k.name, "role": k.role, "prefix": k.prefix, "rate_limit": k.rate_limit,
        "created_at": k.created_at.isoformat(), "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }
    if key is not None:
        out["key"] = key
    return out


def _db(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"reading or writing keys failed: {type(exc).__name__}",
                         hint="the database is unreachable") from None


@router.get("/v1/keys", response_model=list[KeyOut], summary="List API keys (never the keys themselves)")
def keys_list(request: Request, _: AdminRole) -> Response:
    state = get_state(request)
    return json_response([key_dict(k) for k in _db(list_keys, state.store.engine)])


@router.post("/v1/keys", status_code=201, response_model=KeyOut, summary="Create an API key (shown once)")
def keys_create(request: Request, who: AdminRole, body: KeyCreate) -> Response:
    state = get_state(request)

    def create() -> tuple[ApiKey, str]:
        with state.store.writer.begin() as conn:  # the key and its audit row: both or neither
            k, key = create_key(conn, body.name, body.role, body.rate_limit)
            insert_audit(conn, who, "key.create", None, {"key_id": k.id, "name": k.name, "role": k.role})
        return k, key

    k, key = _db(create)
    return json_response(key_dict(k, key), 201)


@router.delete("/v1/keys/{key_id}", response_model=KeyOut, summary="Revoke an API key")
def keys_revoke(request: Request, who: AdminRole, key_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="key id")]) -> Response:
    state = get_state(request)

    def revoke() -> ApiKey:
        with state.store.writer.begin() as conn:
            k = revoke_key(conn, key_id)
            insert_audit(conn, who, "key.revoke", None, {"key_id": k.id, "name": k.name})
        return k

    return json_response(key_dict(_db(revoke)))


@router.get("/v1/audit", response_model=list[AuditOut], summary="Audit log of bank and key changes, newest first")
def audit(
    request: Request, _: AdminRole,
    bank: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    state = get_state(request)
    q = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if bank is not None:
        q = q.where(audit_log.c.bank == bank)
    if before_id is not None:
        q = q.where(audit_log.c.id < before_id)

    def read() -> list[sa.Row[Any]]:
        with state.store.engine.connect() as conn:
            return list(conn.execute(q))

    rows = _db(read)
    return json_response([
        {"id": int(r.id), "at": r.at.isoformat(), "key_id": r.key_id, "actor": r.actor, "action": r.action,
         "bank": r.bank, "detail": json.loads(r.detail)} for r in rows])


@router.get("/metrics", response_class=PlainTextResponse, include_in_schema=False,
            summary="Prometheus metrics of every worker (role: ASSAY_SERVICE_METRICS_ROLE, admin by default)")
async def metrics_route(request: Request) -> Response:
    from . import metrics

    state = get_state(request)
    needed = state.settings.metrics_role
    if needed == "off":
        raise StarletteHTTPException(404, "Not Found")
    if needed != "none":
        await role(needed)(request)
    body, ctype = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=ctype)


@router.get("/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut}},
            summary="Readiness: index loaded and database reachable (503 otherwise)")
async def ready(request: Request) -> Response:
    state = get_state(request)
    reachable = state.index.store_reachable(within=max(3.0, 10 * state.settings.refresh_interval))
    sizes = await run_in_threadpool(state.index.sizes)
    ok = state.index.loaded and reachable
    # store_notices: this worker hears of commits at once (PostgreSQL LISTEN); informational,
    # since polling covers the gaps. Always false on SQLite.
    return json_response({"ready": ok, "index_loaded": state.index.loaded, "store_reachable": reachable,
                          "store_notices": state.index.listening, "index_sizes": sizes,
                          "version": __version__}, 200 if ok else 503)
