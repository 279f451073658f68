"""Per-key rate limits and request size / slowness limits.

Rate limits are token buckets, one per key id. By default they live in each worker
process: a key's budget for the instance is divided evenly among its workers, which
the uvicorn supervisor feeds round-robin through one socket, and behind a load
balancer each instance grants the full budget (N instances allow N times the rate).
With a Redis URL configured, the buckets live in Redis instead: one budget per key
for every worker and instance using that Redis (and key prefix), spent by a Lua
script that refills and takes in one atomic step, so two workers can never both
spend the last token. While Redis is unreachable each worker falls back to its own
buckets (limited as without Redis, never unlimited, never a 500), logs that once,
and tries Redis again every few seconds.

Body limits are enforced while the body streams in: a declared Content-Length over
the limit is refused before a byte is read, and a chunked body is cut off when it
crosses the limit. A client that sends nothing for ``body_timeout`` seconds gets 408.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import RateLimited

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("assay.service.ratelimit")


def capacity(rate: float, burst_seconds: float, cost: float = 1.0) -> float:
    """A key's bucket holds ``burst_seconds`` of its own rate (at least one request):
    a key limited to 2/s may send 2 at once with the default of 1 s, not a fixed
    number that a slow key's rate would never get near."""
    return max(1.0, cost, rate * burst_seconds)


class TokenBuckets:
    """One bucket per key id; ``check`` raises RateLimited when a key is out of tokens.
    ``clock`` (seconds, monotonic) is injectable so that tests count, not wait."""

    def __init__(self, default_rate: float, burst_seconds: float,
                 clock: Callable[[], float] | None = None) -> None:
        self.default_rate = default_rate
        self.burst_seconds = burst_seconds
        self.clock = clock
        self._buckets: dict[object, list[float]] = {}  # key -> [tokens, last refill]
        self._lock = threading.Lock()

    def check(self, key: object, rate: float | None = None, cost: float = 1.0) -> None:
        rate = rate or self.default_rate
        cap = capacity(rate, self.burst_seconds, cost)
        now = self.clock() if self.clock is not None else time.monotonic()
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
        raise _limited(rate, wait)


def _limited(rate: float, wait: float) -> RateLimited:
    return RateLimited(
        f"rate limit of {rate:g} requests/s for this key exceeded",
        retry_after=wait,
        hint=f"retry after {math.ceil(wait)} s, or ask an admin for a higher limit",
    )


# KEYS[1] = the bucket (a hash: tokens, ts); ARGV = rate/s, capacity, cost.
# Redis's own clock, so that instances with skewed clocks share one time line.
# Returns {1, "0"} when granted, else {0, seconds to wait} (a string: Lua numbers
# come back from Redis truncated to integers).
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local granted = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  granted = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
local ttl = math.min(math.ceil(cap / rate * 1000) + 1000, 2592000000)
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
return {granted, string.format('%.6f', wait)}
"""


def redis_client(url: str, timeout: float) -> tuple[Any, tuple[type[Exception], ...]]:
    """An asyncio Redis client for the service's shared counts, and the exceptions that
    mean "Redis is unreachable or misbehaving" (the caller falls back on these). One
    immediate retry covers a pooled connection that Redis closed; more would only hold
    requests back while Redis is down. Imported here: only deployments that configure
    Redis need the package."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1))
    return client, (RedisError, OSError, TimeoutError, ValueError)


class RedisFallback:
    """Whether to use Redis now: after a failure each worker works on its own and tries
    Redis again every ``retry_seconds`` (read from ``owner.RETRY_SECONDS`` at each failure,
    so tests can shorten it); each change of state is logged once."""

    def __init__(self, owner: Any, what: str, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None) -> None:
        self.owner = owner
        self.what = what  # "rate limits: Redis at redis://…"
        self.clock = clock
        self.log = logger or log
        self.down = False
        self._retry_at = 0.0

    def usable(self) -> bool:
        return not self.down or self.clock() >= self._retry_at

    def failed(self, exc: Exception, alone: str) -> None:
        self._retry_at = self.clock() + self.owner.RETRY_SECONDS
        if not self.down:
            self.down = True
            reason = (str(exc).splitlines() or [""])[0]
            self.log.warning("%s is unreachable (%s: %s); %s until it is back", self.what, type(exc).__name__, reason, alone)

    def ok(self, again: str) -> None:
        if self.down:
            self.down = False
            self.log.warning("%s is reachable again; %s", self.what, again)


class RedisBuckets:
    """Token buckets in Redis, one per key id under ``prefix``, shared by every process
    that uses the same Redis and prefix. Redis failures propagate (RateLimiter falls back)."""

    def __init__(self, url: str, burst_seconds: float, prefix: str, timeout: float = 0.5) -> None:
        self._client, self.errors = redis_client(url, timeout)
        self.burst_seconds = burst_seconds
        self.prefix = prefix
        self.url_for_display = _masked(url)
        self._script = self._client.register_script(_TOKEN_BUCKET)

    async def take(self, key: object, rate: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0.0 when granted, else the seconds
        until it could be."""
        cap = capacity(rate, self.burst_seconds, cost)
        name = f"{self.prefix}{'anonymous' if key is None else key}"
        granted, wait = await self._script(keys=[name], args=[repr(float(rate)), repr(float(cap)), repr(float(cost))])
        return 0.0 if int(granted) else max(float(wait), 1e-6)

    async def close(self) -> None:
        await self._client.aclose()


class RateLimiter:
    """Charges each request to its key: in Redis when configured and reachable (the
    budget is for every worker and instance together), else in this worker's buckets
    with the budget split across the instance's ``workers``."""

    RETRY_SECONDS = 5.0  # while Redis is down, how often one request tries it again

    def __init__(self, local: TokenBuckets, workers: int, shared: RedisBuckets | None = None) -> None:
        self.local = local
        self.workers = workers
        self.shared = shared
        self.fallback = RedisFallback(self, f"rate limits: Redis at {shared.url_for_display if shared else ''}")

    @property
    def redis_down(self) -> bool:
        return self.fallback.down

    async def check(self, key: object, rate: float, cost: float = 1.0) -> None:
        """Raise RateLimited when ``key`` is over ``rate`` requests/s (its whole budget)."""
        shared = self.shared
        if shared is not None and self.fallback.usable():
            try:
                wait = await shared.take(key, rate, cost)
            except shared.errors as exc:
                self.fallback.failed(exc, "each worker limits keys on its own")
            else:
                self.fallback.ok("limits are shared again")
                if wait > 0:
                    raise _limited(rate, wait)
                return
        self.local.check(key, rate / self.workers, cost)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


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
