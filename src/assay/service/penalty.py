"""Callers whose uploads keep being refused are refused early, for a while.

An image upload refused for what it is (over the pixel budget or too many bytes,
``413``; not an image, ``415``; undecodable or malformed, ``422`` / ``400``) still costs
a worker the connection, the request's parsing and a header read. A client sending
bombs back to back, a few hundred a second, takes the cores that lookups need. So
after ``limit`` such refusals within ``window`` seconds, a caller (its key; without a
key, its address) has its image uploads answered ``429 rate-limited`` with
``Retry-After`` for ``seconds``, from the request's headers alone: nothing of the body
is read and the connection is closed (guard.py). The caller's other routes, and other
callers, are not affected. Uploads refused by a limit of the service (``429``,
``503``) are not the caller's fault and do not count.

Counted in each worker, or, with the rate limits' Redis, for the whole service: a
counter and a penalty key per caller (under the rate limits' prefix), both expiring,
so that nothing outlives its window or penalty. A worker that learns of a penalty
remembers its end, and refuses without asking Redis again until then. While Redis
is unreachable each worker counts on its own (as the rate limits do) and tries Redis
again every few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import RateLimited
from .ratelimit import RedisFallback, redis_client

log = logging.getLogger("assay.service.penalty")

# What a caller's own uploads are refused with (not the service's limits: 429, 503).
REFUSED_STATUSES = frozenset({400, 413, 415, 422})
_MAX_CALLERS = 100_000  # beyond, the counters start again (memory stays bounded)

# KEYS[1]: the caller's refusal count, KEYS[2]: its penalty. ARGV: limit, window ms,
# penalty ms. Counts one refusal; returns the remaining ms of a penalty that was on
# already, minus the penalty's ms when this refusal started it, else 0.
_RECORD = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then
  return left
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return -tonumber(ARGV[3])
end
return 0
"""


class RedisPenalties:
    """Refusal counts and penalties in Redis, shared by every worker and instance using
    the same Redis and prefix. Redis errors propagate (RefusalPenalties falls back)."""

    def __init__(self, url: str, prefix: str, timeout: float = 0.5) -> None:
        self._client, self.errors = redis_client(url, timeout)
        self.prefix = prefix
        self._record = self._client.register_script(_RECORD)

    async def remaining(self, who: str) -> float:
        """Seconds left of ``who``'s penalty, 0.0 when none."""
        ms = int(await self._client.pttl(f"{self.prefix}penalty:{who}"))
        return ms / 1000 if ms > 0 else 0.0

    async def record(self, who: str, limit: int, window: float, seconds: float) -> tuple[float, bool]:
        """Count one refusal of ``who``: the seconds left of its penalty (0.0 when none),
        and whether this refusal started it."""
        ms = int(await self._record(keys=[f"{self.prefix}refusals:{who}", f"{self.prefix}penalty:{who}"],
                                    args=[limit, max(1, round(window * 1000)), max(1, round(seconds * 1000))]))
        return abs(ms) / 1000, ms < 0

    async def close(self) -> None:
        await self._client.aclose()


class RefusalPenalties:
    """Per caller: refused uploads counted in a fixed window from the first one; at
    ``limit`` of them, a penalty of ``seconds``. ``limit`` 0 turns this off. Called
    from the event loop only. ``clock`` (monotonic seconds) is injectable so that tests
    count, not wait."""

    RETRY_SECONDS = 5.0  # while Redis is down, how often it is tried again

    def __init__(self, limit: int, window: float, seconds: float, paths: Callable[[str], bool],
                 shared: RedisPenalties | None = None, clock: Callable[[], float] | None = None) -> None:
        self.limit = limit
        self.window = window
        self.seconds = seconds
        self.paths = paths
        self.shared = shared
        self.clock = clock or time.monotonic
        self.fallback = RedisFallback(self, "upload refusal penalties: Redis", self.clock, log)
        self._counts: dict[str, list[float]] = {}  # who -> [refusals, end of their window]
        self._until: dict[str, float] = {}  # who -> end of its penalty (known here)
        self.stats = {"penalties_started": 0, "refused_penalised": 0}

    def applies(self, scope: Any) -> bool:
        """An image upload: what a penalty holds back, and what its refusals count for."""
        return self.limit > 0 and scope.get("method") == "POST" and self.paths(scope["path"])

    @property
    def redis_down(self) -> bool:
        return self.fallback.down

    def _use_redis(self) -> RedisPenalties | None:
        return self.shared if self.shared is not None and self.fallback.usable() else None

    def _redis_failed(self, exc: Exception) -> None:
        self.fallback.failed(exc, "each worker counts a caller's refused uploads on its own")

    def _redis_ok(self) -> None:
        self.fallback.ok("counts are shared again")

    def _penalised(self, who: str, left: float, label: str) -> RateLimited:
        self.stats["refused_penalised"] += 1
        exc = RateLimited(
            f"{self.limit} image uploads of this {label} were refused within {self.window:g} s (over the pixel "
            f"budget, too large, or not a valid image); its image uploads are refused for {self.seconds:g} s",
            retry_after=left, hint="see why the earlier uploads were refused, and retry after Retry-After")
        exc.limit = "upload-refusals"  # type: ignore[attr-defined]  # assay_rejected_total's reason
        return exc

    async def check(self, who: str, label: str = "key") -> None:
        """Raise RateLimited while ``who`` is penalised."""
        now = self.clock()
        until = self._until.get(who)
        if until is not None:
            if until > now:
                raise self._penalised(who, until - now, label)
            del self._until[who]
        shared = self._use_redis()
        if shared is None:
            return
        try:
            left = await shared.remaining(who)
        except shared.errors as exc:
            self._redis_failed(exc)
            return
        self._redis_ok()
        if left > 0:
            self._remember(who, now + left)
            raise self._penalised(who, left, label)

    async def record(self, who: str) -> None:
        """Count one refused upload of ``who``; at the limit its penalty starts."""
        now = self.clock()
        shared = self._use_redis()
        if shared is not None:
            try:
                left, started = await shared.record(who, self.limit, self.window, self.seconds)
            except shared.errors as exc:
                self._redis_failed(exc)
            else:
                self._redis_ok()
                if started:
                    self.stats["penalties_started"] += 1
                if left > 0:
                    self._remember(who, now + left)
                return
        if self._until.get(who, 0.0) > now:
            return  # an upload admitted before the penalty began: the penalty is on already
        count = self._counts.get(who)
        if count is None or count[1] <= now:
            if len(self._counts) > _MAX_CALLERS:
                self._counts.clear()
            count = self._counts[who] = [0, now + self.window]
        count[0] += 1
        if count[0] >= self.limit:
            del self._counts[who]
            self.stats["penalties_started"] += 1
            self._remember(who, now + self.seconds)

    def _remember(self, who: str, until: float) -> None:
        if len(self._until) > _MAX_CALLERS:
            now = self.clock()
            self._until = {w: u for w, u in self._until.items() if u > now}
        self._until[who] = until

    def counters(self) -> dict[str, Any]:
        now = self.clock()
        return {**self.stats, "penalised_now": sum(1 for u in self._until.values() if u > now),
                "limit": self.limit, "window_seconds": self.window, "penalty_seconds": self.seconds,
                "shared": self.shared is not None and not self.redis_down}

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


def caller_of(principal: Any, scope: Any) -> tuple[str, str]:
    """Whom a penalty is for, and how to name it: the key, or without a key (anonymous
    access) the client's address (behind a proxy, the proxy's: all keyless callers one)."""
    if principal.key_id is not None:
        return f"key:{principal.key_id}", "key"
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}", "client address"
