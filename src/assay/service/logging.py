"""Request ids and structured access logs (one JSON object per request).

Logged: time, request id, method, path, status, duration, bytes in and out, the key
id. Never logged: query strings, headers, bodies (no content byte and no key ever
reaches a log line).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid

import orjson

from .errors import error_bytes
from .ratelimit import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("assay.service.access")
error_log = logging.getLogger("assay.service.error")
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")



def configure(enabled: bool) -> None:
    """JSON lines on stderr for the access log, unless the host app set up logging."""
    if not access_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.propagate = False
    access_log.setLevel(logging.INFO if enabled else logging.WARNING)


class RequestContextMiddleware:
    """Outermost layer: request id in and out, access log, and a JSON 500 for any
    exception that escaped everything else (so the error shape never changes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = b""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and _GOOD_ID.fullmatch(value):
                rid = value
        request_id = rid.decode() if rid else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 0
        bytes_in = 0
        bytes_out = 0

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            if message["type"] == "http.request":
                bytes_in += len(message.get("body", b""))
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status, bytes_out
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode()),
                                      (b"x-served-by", str(os.getpid()).encode())]
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, tagged_send)
        except Exception:
            error_log.exception("unhandled error in request %s", request_id)
            if status == 0:
                body = error_bytes("internal", "internal error; it was logged with this request id", request_id)
                await tagged_send({"type": "http.response.start", "status": 500,
                                   "headers": [(b"content-type", b"application/json"),
                                               (b"content-length", str(len(body)).encode())]})
                await tagged_send({"type": "http.response.body", "body": body})
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(orjson.dumps({
                    "ts": round(time.time(), 3),
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                    "in": bytes_in,
                    "out": bytes_out,
                    "key_id": state.get("key_id"),
                }).decode())
