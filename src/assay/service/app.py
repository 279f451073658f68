"""The HTTP API: ``create_app(settings)`` builds one worker's FastAPI application.

Each worker process opens the store, brings the schema to the newest migration,
loads its in-memory index (from the shared on-disk snapshot when there is one) and
then follows the store on a background thread. Layers, outermost first: request id
and access log, body size and slowness limits, FastAPI routes (auth per route).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import __version__
from ..banks.store import Store
from ..config import Limits, data_dir
from ..errors import AssayError, RateLimited
from . import logging as service_logging
from . import metrics
from .auth import KeyVerifier
from .errors import assay_error_dict, error_bytes, error_dict, public_error_dict, status_for
from .guard import AuthFirstMiddleware
from .jobs import Jobs
from .logging import RequestContextMiddleware
from .matching import LiveIndex
from .metrics import MetricsMiddleware
from .penalty import RedisPenalties, RefusalPenalties
from .probe import UploadProbeMiddleware
from .ratelimit import (
    BodyLimitMiddleware,
    BodyTimeout,
    BodyTooLarge,
    RateLimiter,
    RedisBuckets,
    Scope,
    Send,
    TokenBuckets,
)
from .settings import Settings
from .state import ServiceState
from .tmpfiles import TmpFiles
from .uploads import HeavyDecoder, SharedHeavy, UploadGate, image_limits, trim_memory

log = logging.getLogger("assay.service")

OPENAPI_PATH = "/openapi.json"


def open_store(settings: Settings) -> Store:
    """Open the store; Store() brings it to the newest schema (safe from many processes)."""
    return Store(settings.db_url)


def rate_limiter(settings: Settings) -> RateLimiter:
    local = TokenBuckets(settings.rate_limit / settings.workers, settings.rate_burst_seconds)
    shared = None
    if settings.rate_limit_redis_url:
        try:
            shared = RedisBuckets(settings.rate_limit_redis_url, settings.rate_burst_seconds,
                                  settings.rate_limit_redis_prefix)
        except ImportError:
            raise AssayError("a Redis URL for rate limits is set, but the redis package is not installed",
                             hint="pip install redis, or leave the Redis URL unset") from None
        except ValueError as exc:
            raise AssayError(f"invalid Redis URL for rate limits: {exc}") from None
    return RateLimiter(local, settings.workers, shared)


def shared_heavy(settings: Settings) -> SharedHeavy | None:
    """Heavy uploads per key counted in the rate limits' Redis, when there is one."""
    if not settings.rate_limit_redis_url:
        return None
    return SharedHeavy(settings.rate_limit_redis_url, settings.rate_limit_redis_prefix)


def refusal_penalties(settings: Settings) -> RefusalPenalties:
    """Penalties for callers whose uploads keep being refused: in the rate limits' Redis
    when there is one (rate_limiter() has checked its URL), else in each worker."""
    shared = None
    if settings.rate_limit_redis_url and settings.upload_refusal_limit:
        shared = RedisPenalties(settings.rate_limit_redis_url, settings.rate_limit_redis_prefix)
    return RefusalPenalties(settings.upload_refusal_limit, settings.upload_refusal_window,
                            settings.upload_refusal_penalty, is_image_upload, shared)


def _state(settings: Settings) -> ServiceState:
    tmp = TmpFiles(settings.tmp_path)
    tmp.remove_stale()  # bodies left by workers that were killed
    store = open_store(settings)
    retention = timedelta(days=settings.changes_retention_days) if settings.changes_retention_days > 0 else None
    index = LiveIndex(store, interval=settings.refresh_interval, snapshot_dir=settings.snapshot_path,
                      retention=retention, prune_interval=settings.prune_interval,
                      listen_retry=settings.store_retry_seconds,
                      private_max_bytes=int(settings.index_private_mb * (1 << 20)))
    state = ServiceState(
        settings=settings,
        store=store,
        index=index,
        keys=KeyVerifier(store.engine, settings.key_cache_seconds, settings.anonymous_role),
        limiter=rate_limiter(settings),
        penalties=refusal_penalties(settings),
        jobs=Jobs(store, settings.job_stale_seconds),
        tmp=tmp,
        uploads=UploadGate(settings.heavy_worker_pixels, settings.heavy_from_pixels, settings.heavy_per_key,
                           shared_heavy(settings)),
        decoder=HeavyDecoder(settings.heavy_decoder, settings.heavy_processes),
        image_limits=image_limits(settings.max_upload_pixels),
    )
    state.jobs.on_done = state.on_job_done
    state.jobs.on_commit = state.refresh_index
    state.jobs.audit = state.audit_import
    return state


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service_logging.configure(settings.access_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _state(settings)
        app.state.assay = state
        lock = (settings.snapshot_path or data_dir() / "index") / "load.lock"

        def loaded() -> None:
            # ~150k objects from start-up (FastAPI, pydantic, numba) live as long as the
            # worker; a full collection walking them took ~65 ms, a p99 spike for whichever
            # requests it landed on. Frozen, the collector only walks what requests allocate.
            gc.collect()
            gc.freeze()
            # Loading the index leaves freed heap behind (measured ~150 MB a worker at 1M
            # hashes): give it back.
            trim_memory()
            # The decoder processes start meanwhile (a second or two of imports).
            threading.Thread(target=state.decoder.start, name="assay-decoder-start", daemon=True).start()

        # A worker takes requests once this returns: with its index loaded, or, when the
        # load failed, saying so (/status INDEX-NOT-LOADED, /ready 503, lookups 503 busy)
        # while it tries again.
        state.index.load_or_retry(lock, then=loaded, retry=settings.store_retry_seconds)
        scheduler = None
        if settings.exchange_interval > 0:
            from ..exchanges.schedule import Scheduler

            scheduler = Scheduler(state.store, interval=settings.exchange_interval,
                                  on_commit=lambda _r: state.index.poke(),
                                  on_done=metrics.observe_exchange_fetch)
            scheduler.start()
        app.state.exchange_scheduler = scheduler
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            state.decoder.shutdown()
            metrics.worker_exit()
            if state.uploads.shared is not None:
                state.uploads.shared.close()
            state.index.stop()
            state.tmp.remove_own()
            await state.limiter.close()
            await state.penalties.close()
            state.store.close()

    app = FastAPI(
        title="assay",
        version=__version__,
        summary="Hash-bank matching, image provenance and model forensics over HTTP",
        openapi_url=OPENAPI_PATH,
        lifespan=lifespan,
    )

    from .routes_admin import router as admin_router
    from .routes_banks import router as banks_router
    from .routes_compat import router as compat_router
    from .routes_curation import router as curation_router
    from .routes_exchanges import hma_router as hma_exchanges_router
    from .routes_exchanges import router as exchanges_router
    from .routes_match import router as match_router
    from .routes_reviews import router as reviews_router
    from .routes_text import router as text_router
    from .uploads import router as limits_router

    for router in (match_router, banks_router, reviews_router, admin_router, compat_router, curation_router,
                   limits_router, text_router, exchanges_router, hma_exchanges_router):
        app.include_router(router)
    _install_error_handlers(app)
    from .openapi import install as install_openapi

    install_openapi(app, anonymous=settings.anonymous_role is not None)

    async def limit_error(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        rid = scope.get("state", {}).get("request_id")
        body = error_bytes(code, message, rid, hint="see the limits in docs/service.md")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    # Innermost: reads the body through the limits below, after the key was checked.
    app.add_middleware(UploadProbeMiddleware, paths=is_image_upload, limits=_image_limits_of,
                       on_refused=_count_refused)
    app.add_middleware(BodyLimitMiddleware, limit_for=_body_limits(settings),
                       timeout=settings.body_timeout, on_error=limit_error)
    app.add_middleware(AuthFirstMiddleware)  # before the body limits: no key, no body
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(MetricsMiddleware)  # outermost: every answer counted, refusals too
    return app


IMAGE_UPLOADS = frozenset({"/v1/hash", "/v1/match", "/v1/analyze/provenance", "/h/hash", "/m/lookup"})


def is_image_upload(path: str) -> bool:
    """Routes whose body is a multipart image upload."""
    return path in IMAGE_UPLOADS or (path.startswith("/c/bank/") and path.endswith("/content"))


def _image_limits_of(scope: Scope) -> Limits:
    return scope["app"].state.assay.image_limits  # type: ignore[no-any-return]


def _count_refused(scope: Scope) -> None:
    scope["app"].state.assay.uploads.count("refused_budget")
    metrics.REJECTED.labels("pixel-budget").inc()


def _body_limits(settings: Settings) -> Callable[[str], int]:
    from .routes_text import MAX_TEXT_CHARS

    upload = settings.max_upload_bytes + 64 * 1024  # room for the multipart framing

    def limit_for(path: str) -> int:
        if is_image_upload(path):
            return upload
        if path == "/v1/analyze/model":
            return settings.max_model_bytes
        if path.startswith("/v1/banks/") and path.endswith("/import"):
            return settings.max_import_bytes
        if path == "/v1/text/check":  # its text's documented length, escaped as JSON (\uXXXX)
            return max(settings.max_json_bytes, 6 * MAX_TEXT_CHARS + 64 * 1024)
        return settings.max_json_bytes

    return limit_for


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AssayError)
    async def on_assay_error(request: Request, exc: AssayError) -> Response:
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
            metrics.rejected(exc)
        if getattr(request.state, "role", None) == "admin":
            body = assay_error_dict(exc, _rid(request))
        else:  # no store location, no other banks' names (docs/service.md, "Errors")
            state = getattr(request.app.state, "assay", None)
            body = public_error_dict(exc, _rid(request), state.store.url_for_display if state else "")
        return _json(body, status_for(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        # Never echo the input back (it may be content); location and reason suffice.
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
                   for e in exc.errors()[:20]]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        message = f"invalid request: {'.'.join(first['loc'])}: {first['msg']}"
        return _json(error_dict("invalid-request", message, _rid(request), details=details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        cause = exc.__cause__
        if isinstance(cause, BodyTooLarge):
            return _json(error_dict("too-large", f"request body exceeds the limit of {cause.limit} bytes",
                                    _rid(request)), 413)
        if isinstance(cause, BodyTimeout):
            return _json(error_dict("request-timeout", "the client stopped sending the body", _rid(request)), 408)
        if isinstance(cause, AssayError):
            return await on_assay_error(request, cause)
        code = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400 and "parsing the body" in message:
            message = "the request body is not valid multipart/form-data or JSON"
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path; a path served
            # by several routes (GET, PATCH, DELETE /v1/banks/{name}) allows them all.
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
        return _json(error_dict(code, message, _rid(request)), exc.status_code, headers or None)


def _allowed_methods(request: Request) -> set[str]:
    from .openapi import flat_routes

    allowed: set[str] = set()
    for route in flat_routes(request.app):
        methods = getattr(route, "methods", None)
        if methods and route.matches(request.scope)[0] != Match.NONE:
            allowed |= methods
    return allowed


def create_app_from_env() -> FastAPI:
    """Uvicorn factory for worker processes: settings come from ASSAY_SERVICE_*."""
    return create_app(Settings.from_env())
