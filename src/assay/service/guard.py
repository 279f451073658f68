"""Authentication before the body: a request that may carry a body (an upload, a
JSON write, an import) has its key checked as soon as its headers are in, before a
byte of the body is read, and so is the key's rate limit. Without a valid key the
answer is ``401`` (over the rate, ``429``) with ``Connection: close``: a 60 MB upload without a key is not received, and malformed
JSON without a key is a 401, not a 422. The role is still checked by each route
(``state.role``), which reuses the principal found here instead of verifying twice.
An image upload of a caller whose uploads keep being refused (penalty.py) is
answered ``429`` here too, and the refusals of the others are counted here.

Requests without a body (GET, HEAD, OPTIONS without Content-Length) are left to the
routes, whose key check runs before any parameter is parsed; public paths (liveness,
readiness, the API documents) need no key.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from ..errors import AssayError, RateLimited
from .errors import assay_error_dict, public_error_dict, status_for
from .penalty import REFUSED_STATUSES, caller_of
from .ratelimit import ASGIApp, Message, Receive, Scope, Send

PUBLIC = frozenset({"/status", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


def key_of(headers: Headers) -> str | None:
    """The key of a request: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return headers.get("x-api-key")


def may_have_body(scope: Scope, headers: Headers) -> bool:
    if scope.get("method") not in _BODYLESS:
        return True
    length = headers.get("content-length")
    return bool(headers.get("transfer-encoding")) or (length is not None and length.strip() not in ("", "0"))


class AuthFirstMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not may_have_body(scope, headers):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state.assay
        key = key_of(headers)
        try:
            principal = state.keys.cached(key)
            if principal is None:
                principal = await run_in_threadpool(state.keys.principal, key)
        except AssayError as exc:
            await _refuse(scope, send, exc, state.store.url_for_display)
            return
        penalties = state.penalties
        caller = caller_of(principal, scope) if penalties.applies(scope) else None
        try:
            if caller is not None:  # a caller whose uploads keep being refused (penalty.py)
                await penalties.check(*caller)
            # The key's rate limit too: a client over its budget is not read either.
            await state.limiter.check(principal.key_id, principal.rate_limit or state.settings.rate_limit)
        except AssayError as exc:
            await _refuse(scope, send, exc, state.store.url_for_display)
            return
        scope.setdefault("state", {}).update(principal=principal, charged=True)
        if caller is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watched)
        if status in REFUSED_STATUSES:  # after the answer went out: the client does not wait for this
            await penalties.record(caller[0])


async def _refuse(scope: Scope, send: Send, exc: AssayError, store_url: str) -> None:
    """The error, before the body was read: the connection closes after it, so the
    unread body never has to be received."""
    rid = scope.get("state", {}).get("request_id")
    body: dict[str, Any] = public_error_dict(exc, rid, store_url) if status_for(exc) >= 500 \
        else assay_error_dict(exc, rid)
    data = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"connection", b"close")]
    if status_for(exc) == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if isinstance(exc, RateLimited):
        headers.append((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()))
        from . import metrics

        metrics.rejected(exc)
    await send({"type": "http.response.start", "status": status_for(exc), "headers": headers})
    await send({"type": "http.response.body", "body": data})
