"""/v1/exchanges (role ``curate``): the hash exchanges feeding banks, with the state of
their fetches (last success, lag, errors), and a fetch on demand; and HMA's
``/c/exchanges`` shapes (list of names, one config, its fetch status, enable/disable).

The service also fetches enabled exchanges on a schedule (assay.exchanges.schedule);
settings never hold credentials, so nothing here can show one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ..exchanges import config as cfg
from . import metrics
from .auth import Principal
from .routes_match import json_response
from .state import get_state, role
from .validation import STRICT

router = APIRouter(prefix="/v1", tags=["exchanges"])
hma_router = APIRouter(prefix="/c", tags=["hma-compatible"])
CurateRole = Annotated[Principal, Depends(role("curate"))]
NamePath = Annotated[str, Path(max_length=64, description="exchange name")]
# assay's exchange types -> python-threatexchange's API names (HMA shows those)
_API_NAMES = {"ncmec": "ncmec", "threatexchange": "fb_threatexchange", "stopncii": "stop_ncii", "tat": "tat",
              "file": "local_file"}


def _checkpoint_time(x: cfg.Exchange) -> int | None:
    """The time the programme's checkpoint stands at, where its checkpoint tells."""
    if not x.checkpoint:
        return None
    try:
        from ..exchanges.adapters import adapter
        from ..exchanges.fetch import decode_checkpoint

        ts = decode_checkpoint(adapter(x.type).checkpoint_cls(), x.checkpoint).get_progress_timestamp()
        return int(ts) if ts else None
    except Exception:  # the library missing or an unreadable checkpoint: no time to tell
        return None


def status(x: cfg.Exchange, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    d = x.to_json_dict()
    d.pop("checkpoint", None)
    d["checkpoint_time"] = _checkpoint_time(x)
    # lag: how old the bank's copy may be, i.e. the time since the last fetch that completed
    d["lag_seconds"] = round((now - x.last_success_at).total_seconds(), 3) if x.last_success_at else None
    d["fetching"] = bool(x.lease_until and x.lease_until > now)
    return d


@router.get("/exchanges", summary="Exchanges feeding banks, with their last fetch, lag and errors")
def list_exchanges(request: Request, _: CurateRole) -> Response:
    now = datetime.now(UTC)
    return json_response({"exchanges": [status(x, now) for x in cfg.list_all(get_state(request).store)]})


@router.get("/exchanges/{name}", summary="One exchange and its last fetch")
def get_exchange(request: Request, _: CurateRole, name: NamePath) -> Response:
    return json_response(status(cfg.get(get_state(request).store, name)))


@router.post("/exchanges/{name}/fetch", summary="Fetch an exchange now (incremental); its counts")
async def fetch_exchange(request: Request, _: CurateRole, name: NamePath) -> Response:
    from ..exchanges import require_library
    from ..exchanges.fetch import fetch

    require_library()
    state = get_state(request)
    cfg.get(state.store, name)
    result = await run_in_threadpool(fetch, state.store, name, on_commit=lambda _r: state.index.poke(),
                                     on_done=metrics.observe_exchange_fetch)
    state.refresh_index()
    return json_response(result.to_json_dict())


# ---------------------------------------------------------------------------- HMA shapes
def _hma_config(x: cfg.Exchange) -> dict[str, Any]:
    return {"name": x.name, "api": _API_NAMES.get(x.type, x.type), "enabled": x.enabled, "bank": x.bank,
            **{k: v for k, v in x.settings.items() if k != "credentials_file"}}


class HmaExchangeUpdate(BaseModel):
    model_config = STRICT
    enabled: bool | None = None


@hma_router.get("/exchanges", summary="HMA: exchange names")
def hma_exchanges(request: Request, _: CurateRole) -> Response:
    return json_response([x.name for x in cfg.list_all(get_state(request).store)])


@hma_router.get("/exchange/{name}", summary="HMA: one exchange's configuration")
def hma_exchange(request: Request, _: CurateRole, name: NamePath) -> Response:
    return json_response(_hma_config(cfg.get(get_state(request).store, name)))


def _ts(v: datetime | None) -> int | None:
    return int(v.timestamp()) if v is not None else None


@hma_router.get("/exchange/{name}/status",
                summary="HMA: fetch status {checkpoint_ts, running_fetch_start_ts, last_fetch_complete_ts, "
                        "last_fetch_succeeded, up_to_date, fetched_items} (and last_fetch_time, checkpoint_time, "
                        "success)")
def hma_exchange_status(request: Request, _: CurateRole, name: NamePath) -> Response:
    store = get_state(request).store
    x = cfg.get(store, name)
    checkpoint = _checkpoint_time(x)
    running = bool(x.lease_until and x.lease_until > datetime.now(UTC))
    finished = x.last_status is not None and x.last_finished_at is not None
    last = x.last_finished_at or x.last_started_at
    return json_response({
        # What HMA's route answers (python-threatexchange's FetchStatus as a dict)
        "checkpoint_ts": checkpoint,
        "running_fetch_start_ts": _ts(x.last_started_at) if running else None,
        "last_fetch_complete_ts": _ts(x.last_finished_at),
        "last_fetch_succeeded": (x.last_status == "ok") if finished else None,
        # a successful fetch reads the programme to its end (HMA: to the end or a time limit)
        "up_to_date": x.last_status == "ok",
        "fetched_items": cfg.fetched_items(store, x),
        # and what HMA's schema and docstring describe (ExchangeFetchStatus)
        "last_fetch_time": _ts(last) or 0,
        "checkpoint_time": checkpoint or 0,
        "success": x.last_status == "ok",
    })


@hma_router.put("/exchange/{name}", summary="HMA: enable or disable an exchange")
def hma_exchange_update(request: Request, who: CurateRole, name: NamePath, body: HmaExchangeUpdate) -> Response:
    state = get_state(request)
    x = cfg.get(state.store, name)
    if body.enabled is not None and body.enabled != x.enabled:
        from .state import insert_audit

        with state.store.transaction(f"updating exchange {name!r}") as conn:
            x = cfg.set_enabled(state.store, name, body.enabled)
            insert_audit(conn, who, "exchange.update", x.bank, {"exchange": name, "enabled": body.enabled})
    return json_response(_hma_config(x))


__all__ = ["hma_router", "router", "status"]
