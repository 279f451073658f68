"""Per-key rate limits and request size / slowness limits.

Rate limits are token buckets held in each worker process: no shared store on the
hot path. A key's budget for the instance is divided evenly among its workers, which
the uvicorn supervisor feeds round-robin through one socket; behind a load balancer
each instance grants the full budget (so N instances allow N times the rate).

Body limits are enforced while the body streams in: a declared Content-Length over
the limit is refused before a byte is read, and a chunked body is cut off when it
crosses the limit. A client that sends nothing for ``body_timeout`` seconds gets 408.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import RateLimited

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TokenBuckets:
    """One bucket per key id; ``check`` raises RateLimited when a key is out of tokens."""

    def __init__(self, default_rate: float, burst: float) -> None:
        self.default_rate = default_rate
        self.burst = burst
        self._buckets: dict[object, list[float]] = {}  # key -> [tokens, last refill]
        self._lock = threading.Lock()

    def check(self, key: object, rate: float | None = None, cost: float = 1.0) -> None:
        rate = rate or self.default_rate
        cap = max(self.burst, rate, cost)
        now = time.monotonic()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) > 100_000:
                    self._buckets.clear()
                b = self._buckets[key] = [cap, now]
            b[0] = min(cap, b[0] + (now - b[1]) * rate)
            b[1] = now
            if b[0] >= cost:
                b[0] -= cost
                return
            wait = (cost - b[0]) / rate
        raise RateLimited(
            f"rate limit of {rate:g} requests/s for this key exceeded",
            retry_after=wait,
            hint=f"retry after {math.ceil(wait)} s, or ask an admin for a higher limit",
        )


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class BodyTimeout(Exception):
    pass


class BodyLimitMiddleware:
    """Caps request bodies per path prefix and times out stalled clients."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int], timeout: float,
                 on_error: Callable[[Scope, Send, int, str, str], Awaitable[None]]) -> None:
        self.app = app
        self.limit_for = limit_for
        self.timeout = timeout
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self.on_error(scope, send, 400, "bad-request", "invalid Content-Length header")
                    return
        if declared is not None and declared > limit:
            await self.on_error(scope, send, 413, "too-large",
                                f"request body of {declared} bytes exceeds the limit of {limit} bytes")
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await self.on_error(scope, send, 413, "too-large",
                                    f"request body exceeds the limit of {exc.limit} bytes")
        except BodyTimeout:
            if not started:
                await self.on_error(scope, send, 408, "request-timeout",
                                    f"no request data for {self.timeout:g} s; the upload was abandoned")
