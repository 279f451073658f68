"""Rate limits shared through Redis (the real server on 127.0.0.1:6379): one budget per
key for every limiter using the same Redis and prefix, spent atomically; the per-worker
fallback while Redis is unreachable (limited, logged once, never a 500).

Skipped where Redis (or the redis package) is absent; a failure under CI."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from assay.errors import RateLimited
from assay.service import Settings, create_app
from assay.service.app import open_store
from assay.service.auth import create_key
from assay.service.ratelimit import RateLimiter, RedisBuckets, TokenBuckets
from service_helpers import TcpProxy, free_port, running

REDIS_URL = os.environ.get("ASSAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOOKUP = {"signal_type": "md5", "value": "0" * 32}


def _unavailable(msg: str) -> None:
    if IN_CI:
        pytest.fail(msg + " (under CI it must be there)")
    pytest.skip(msg)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the real Redis; its keys are deleted afterwards."""
    try:
        import redis
    except ImportError:
        _unavailable("the redis package is not installed")
        return
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        _unavailable(f"Redis at {REDIS_URL} unreachable: {exc}")
        return
    p = f"assay-test:{uuid.uuid4().hex}:"
    try:
        yield p
    finally:
        for k in client.scan_iter(match=p + "*"):
            client.delete(k)
        client.close()


def _limiter(url: str, prefix: str, burst: float, workers: int = 1) -> RateLimiter:
    """``burst`` requests of a SLOW key: its bucket holds burst / SLOW seconds of its rate."""
    return RateLimiter(TokenBuckets(1.0, burst / SLOW), workers, RedisBuckets(url, burst / SLOW, prefix))


async def _take(limiter: RateLimiter, key: object, rate: float) -> bool:
    try:
        await limiter.check(key, rate)
    except RateLimited:
        return False
    return True


def _closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # bound, then closed: nothing listens


# A rate this low refills less than one token during any test: budgets are exact.
SLOW = 0.001


def test_two_limiters_share_one_budget(prefix: str) -> None:
    async def run() -> tuple[list[bool], float, bool]:
        a, b = _limiter(REDIS_URL, prefix, burst=10), _limiter(REDIS_URL, prefix, burst=10)
        try:
            grants = [await _take(a if i % 2 else b, 7, SLOW) for i in range(14)]
            with pytest.raises(RateLimited) as info:
                await a.check(7, SLOW)
            other_key = await _take(b, 8, SLOW)  # another key has its own bucket
            return grants, info.value.retry_after, other_key
        finally:
            await a.close()
            await b.close()

    grants, retry_after, other_key = asyncio.run(run())
    assert grants == [True] * 10 + [False] * 4
    assert 0.9 / SLOW < retry_after <= 1 / SLOW  # one token at 0.001/s: ~1000 s
    assert other_key


def test_concurrent_spends_never_exceed_the_budget(prefix: str) -> None:
    """Many requests in flight on two limiters (separate connections) race for the last
    tokens: exactly the budget is granted, never more."""

    async def run() -> list[bool]:
        limiters = [_limiter(REDIS_URL, prefix, burst=25) for _ in range(2)]
        try:
            return list(await asyncio.gather(*(_take(limiters[i % 2], "k", SLOW) for i in range(120))))
        finally:
            for lim in limiters:
                await lim.close()

    for _ in range(3):
        assert sum(asyncio.run(run())) == 25
        prefix += "x"  # a fresh bucket for the next round


def test_redis_bucket_refills_at_the_keys_rate(prefix: str) -> None:
    async def run() -> float:
        buckets = RedisBuckets(REDIS_URL, 1, prefix)
        try:
            assert await buckets.take("k", 0.01) == 0.0
            return await buckets.take("k", 0.01)
        finally:
            await buckets.close()

    wait = asyncio.run(run())
    assert 90 < wait <= 100  # one token at 0.01/s


def test_unreachable_redis_falls_back_to_local_limits_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def run(retry_seconds: float) -> list[bool]:
        # 2 workers: this one's share of a SLOW key is SLOW / 2, and its bucket 3 requests
        limiter = RateLimiter(TokenBuckets(1.0, 6 / SLOW), 2, RedisBuckets(_closed_port_url(), 3 / SLOW, "p:"))
        limiter.RETRY_SECONDS = retry_seconds
        try:
            return [await _take(limiter, "k", SLOW) for _ in range(8)]
        finally:
            await limiter.close()

    for retry_seconds in (5.0, 0.0):  # 0: Redis is tried (and fails) on every request
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="assay.service.ratelimit"):
            grants = asyncio.run(run(retry_seconds))
        # the local bucket's burst, then limited: never unlimited, never an error
        assert grants == [True] * 3 + [False] * 5
        warnings_ = [r for r in caplog.records if r.name == "assay.service.ratelimit"]
        assert len(warnings_) == 1 and "unreachable" in warnings_[0].getMessage()


def test_redis_going_away_and_coming_back(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    host_port = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    proxy = TcpProxy(host or "127.0.0.1", int(port or 6379))
    proxy.start()

    async def run() -> tuple[bool, bool, bool, bool]:
        limiter = _limiter(f"redis://127.0.0.1:{proxy.port}/0", prefix, burst=2)
        other = _limiter(REDIS_URL, prefix, burst=2)  # direct: sees the shared bucket
        limiter.RETRY_SECONDS = 0.0
        try:
            shared_first = await _take(limiter, "k", SLOW)  # 1 of the 2 shared tokens
            proxy.stop()
            local = await _take(limiter, "k", SLOW)  # Redis gone: this worker's bucket grants
            went_down = limiter.redis_down
            proxy.start()
            again = await _take(limiter, "k", SLOW)  # Redis back: the 2nd shared token
            back = again and not limiter.redis_down
            spent = not await _take(other, "k", SLOW)  # so the shared budget is gone
            return shared_first, local and went_down, back, spent
        finally:
            await limiter.close()
            await other.close()

    try:
        with caplog.at_level(logging.WARNING, logger="assay.service.ratelimit"):
            shared_first, fell_back, back, spent = asyncio.run(run())
    finally:
        proxy.close()
    assert shared_first and fell_back and back and spent
    messages = [r.getMessage() for r in caplog.records if r.name == "assay.service.ratelimit"]
    assert len(messages) == 2 and "unreachable" in messages[0] and "reachable again" in messages[1]


def _settings(tmp_path: Path, **kw: object) -> tuple[Settings, str]:
    settings = Settings(db=str(tmp_path / "store.db"), refresh_interval=0.05, key_cache_seconds=0.0, **kw)  # type: ignore[arg-type]
    store = open_store(settings)
    _, key = create_key(store.engine, "pipeline", "match", rate_limit=SLOW)
    store.close()
    return settings, key


def test_two_services_share_the_budget_over_http(tmp_path: Path, prefix: str) -> None:
    settings, key = _settings(tmp_path, rate_burst_seconds=3 / SLOW, workers=2, rate_limit_redis_url=REDIS_URL,
                              rate_limit_redis_prefix=prefix)
    h = {"X-API-Key": key}
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        codes = [(one if i % 2 else two).get("/v1/lookup", params=LOOKUP, headers=h).status_code
                 for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = one.get("/v1/lookup", params=LOOKUP, headers=h)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate-limited"
        assert int(r.headers["retry-after"]) > 900


def test_service_with_unreachable_redis_still_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("the redis package is not installed")
    settings, key = _settings(tmp_path, rate_burst_seconds=3 / SLOW, rate_limit_redis_url=_closed_port_url())
    h = {"X-API-Key": key}
    with caplog.at_level(logging.WARNING, logger="assay.service.ratelimit"), TestClient(create_app(settings)) as c:
        codes = [c.get("/v1/lookup", params=LOOKUP, headers=h).status_code for _ in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]
    assert len([r for r in caplog.records if r.name == "assay.service.ratelimit"]) == 1


@pytest.mark.slow
def test_workers_of_assay_serve_share_one_budget(tmp_path: Path, prefix: str) -> None:
    """`assay serve` with 2 workers and ASSAY_REDIS_URL: whichever worker answers, the
    key gets its burst once (per-worker buckets would grant it once per worker)."""
    import httpx

    db = str(tmp_path / "store.db")
    _, key = _settings(tmp_path)
    env = {"ASSAY_REDIS_URL": REDIS_URL, "ASSAY_SERVICE_RATE_LIMIT_REDIS_PREFIX": prefix,
           "ASSAY_SERVICE_RATE_BURST_SECONDS": str(4 / SLOW)}

    def ask(_: int) -> tuple[int, str]:
        # A new connection each: an idle worker can win every sequential accept(), so
        # requests go out several at once to reach both workers.
        r = httpx.get(srv.url + "/v1/lookup", params=LOOKUP, headers={"X-API-Key": key}, timeout=30)
        return r.status_code, r.headers["x-served-by"]

    with running(db, 2, tmp_path, **env) as srv, ThreadPoolExecutor(6) as pool:
        codes: list[int] = []
        served_by: set[str] = set()
        while len(served_by) < 2 or len(codes) < 10:
            assert len(codes) < 300, f"one worker answered everything: {served_by}"
            for code, worker in pool.map(ask, range(6)):
                codes.append(code)
                served_by.add(worker)
    assert codes.count(200) == 4 and set(codes) == {200, 429}


def test_settings_take_the_redis_url_from_the_environment() -> None:
    assert Settings.from_env({"ASSAY_REDIS_URL": "redis://h:1/0"}).rate_limit_redis_url == "redis://h:1/0"
    own = {"ASSAY_REDIS_URL": "redis://h:1/0", "ASSAY_SERVICE_RATE_LIMIT_REDIS_URL": "redis://g:2/0"}
    assert Settings.from_env(own).rate_limit_redis_url == "redis://g:2/0"
    assert Settings.from_env({}).rate_limit_redis_url == ""
    with pytest.raises(Exception, match="Redis URL"):
        Settings(rate_limit_redis_url="http://h:1")
