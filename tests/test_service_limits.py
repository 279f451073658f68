"""Limits of `assay serve`, each against a real 2-worker server (tests/service_helpers.py)
on SQLite and on PostgreSQL: concurrent writers on one SQLite file, rate-limit bursts
that follow a key's rate, authentication before the body is read, connections that
stall in their headers, and the cost of image uploads (pixel budget, heavy uploads
per worker and per key, memory given back, callers flooding with bombs penalised)."""

from __future__ import annotations

import io
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from PIL import Image

from assay.errors import AssayError, RateLimited
from assay.service.app import open_store
from assay.service.auth import create_key
from assay.service.penalty import RedisPenalties, RefusalPenalties
from assay.service.ratelimit import TokenBuckets, capacity
from assay.service.settings import Settings
from service_helpers import Server, running

WORKERS = 2
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _redis_url() -> str:
    """The real Redis (as in test_service_ratelimit.py); skipped where absent, a failure under CI."""
    url = os.environ.get("ASSAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {url} unreachable under CI: {exc}")
        pytest.skip(f"Redis at {url} unreachable: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The store of the servers under test: an SQLite file (the default kind), then a
    fresh PostgreSQL schema (dropped afterwards). Module-wide: servers are costly to start."""
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("db") / "store.sqlite3")
        return
    from conftest import pg_schema

    with pg_schema() as url:
        yield url


def _key(db: str, role: str, rate_limit: float | None = None) -> str:
    store = open_store(Settings(db=db))
    try:
        return create_key(store.engine, f"{role}-{uuid.uuid4().hex[:8]}", role, rate_limit)[1]
    finally:
        store.close()


# The main server of each store: default settings but for a 1 s header deadline and
# keep-alive, and heavy-upload limits scaled down so that small images exercise them.
# A caller is penalised after REFUSALS refused uploads (per worker, or in Redis), for
# PENALTY seconds: more refusals than test_pixel_bombs_... sends with one key.
HEAVY_FROM, HEAVY_WORKER = 1_000_000, 4_000_000
REFUSALS, PENALTY = 10, 2
MAIN_ENV = {"ASSAY_SERVICE_HEADER_TIMEOUT": "1", "ASSAY_SERVICE_IDLE_TIMEOUT": "1",
            "ASSAY_SERVICE_HEAVY_FROM_PIXELS": str(HEAVY_FROM),
            "ASSAY_SERVICE_HEAVY_WORKER_PIXELS": str(HEAVY_WORKER), "ASSAY_SERVICE_HEAVY_PER_KEY": "1",
            "ASSAY_SERVICE_UPLOAD_REFUSAL_LIMIT": str(REFUSALS),
            "ASSAY_SERVICE_UPLOAD_REFUSAL_PENALTY": str(PENALTY)}


@pytest.fixture(scope="module")
def main(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    with running(db, WORKERS, tmp_path_factory.mktemp("main"), **MAIN_ENV) as srv:
        yield srv, db


@pytest.fixture(scope="module")
def shared(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose rate limits, and heavy uploads per key, live in the real Redis."""
    env = {"ASSAY_REDIS_URL": _redis_url(), "ASSAY_SERVICE_RATE_LIMIT_REDIS_PREFIX": f"t{uuid.uuid4().hex}:",
           **MAIN_ENV}
    with running(db, WORKERS, tmp_path_factory.mktemp("shared"), **env) as srv:
        yield srv


# -- writers on one store ------------------------------------------------------------------
def test_concurrent_writers_all_succeed(main: tuple[Server, str]) -> None:
    """4 threads x 60 entry writes through both workers: on SQLite the writers queue on
    the file's lock (WAL, immediate transactions) instead of failing with 503 'database
    is locked'; every entry is then in the bank."""
    srv, db = main
    h = {"X-API-Key": _key(db, "curate")}
    with httpx.Client(base_url=srv.url, headers=h, timeout=60) as c:
        assert c.post("/v1/banks", json={"name": "w"}).status_code == 201

    def writer(t: int) -> list[tuple[int, str]]:
        rng = random.Random(t)
        out = []
        # A connection per thread, new for each write: both workers take writes.
        for i in range(60):
            r = httpx.post(f"{srv.url}/v1/banks/w/entries", headers=h, timeout=60, json={
                "content_id": f"t{t}-{i}", "signals": {"pdq": f"{rng.getrandbits(256):064x}"}})
            out.append((r.status_code, r.text[:200]))
        return out

    with ThreadPoolExecutor(4) as pool:
        results = [x for chunk in pool.map(writer, range(4)) for x in chunk]
    failures = [r for r in results if r[0] not in (200, 201)]
    assert failures == [], f"{len(failures)} of {len(results)} writes failed: {failures[:3]}"
    with httpx.Client(base_url=srv.url, headers=h, timeout=60) as c:
        assert c.get("/v1/banks/w").json()["entries"] == 240


# -- rate limits: the burst follows the key's rate ------------------------------------------
LOOKUP = {"signal_type": "md5", "value": "0" * 32}


def test_bucket_holds_burst_seconds_of_the_keys_rate() -> None:
    now = [100.0]
    buckets = TokenBuckets(5000.0, 1.0, clock=lambda: now[0])

    def granted(n: int, key: str, rate: float) -> int:
        ok = 0
        for _ in range(n):
            try:
                buckets.check(key, rate)
                ok += 1
            except RateLimited as exc:
                last[key] = exc.retry_after
        return ok

    last: dict[str, float] = {}
    assert granted(50, "slow", 2.0) == 2  # one second of 2/s, not 1000
    assert last["slow"] == pytest.approx(0.5)
    now[0] += 0.5  # half a second refills one token
    assert granted(5, "slow", 2.0) == 1
    now[0] += 100  # idle: the bucket fills up to its capacity only
    assert granted(50, "slow", 2.0) == 2
    assert granted(50, "tiny", 0.01) == 1  # at least one request
    wide = TokenBuckets(5000.0, 3.0, clock=lambda: now[0])
    wide_ok = 0
    for _ in range(50):
        try:
            wide.check("k", 4.0)
            wide_ok += 1
        except RateLimited:
            pass
    assert wide_ok == 12  # 3 s of 4/s
    assert capacity(2.0, 1.0) == 2 and capacity(0.01, 1.0) == 1 and capacity(1e6, 1.0) == 1e6


def _burst_answers(srv: Server, key: str, n: int) -> tuple[list[tuple[int, str]], float]:
    """n lookups back to back (new connections, so both workers answer): (status,
    worker) each, and the seconds they took (the refill the bucket math allows)."""
    start = time.monotonic()

    def ask(_: int) -> tuple[int, str]:
        r = httpx.get(srv.url + "/v1/lookup", params=LOOKUP, headers={"X-API-Key": key}, timeout=30)
        assert r.status_code in (200, 429), r.text
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate-limited" and int(r.headers["retry-after"]) >= 1
        return r.status_code, r.headers["x-served-by"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(n)))
    return answers, time.monotonic() - start


def _granted_per_worker(answers: list[tuple[int, str]]) -> dict[str, list[int]]:
    per_worker: dict[str, list[int]] = {}
    for code, pid in answers:
        per_worker.setdefault(pid, []).append(code)
    return per_worker


def test_key_with_rate_2_gets_its_burst_not_1000_per_worker(main: tuple[Server, str]) -> None:
    """A key created with 2 requests/s: each worker's bucket holds 1 s of its share
    (1/s), so a worker grants at most 1 + what refilled while the requests went out
    (today's cap was 1000 a worker)."""
    srv, db = main
    answers, elapsed = _burst_answers(srv, _key(db, "match", rate_limit=2.0), 40)
    for pid, codes in _granted_per_worker(answers).items():
        assert 1 <= codes.count(200) <= int(1 + elapsed * 1.0), (pid, codes, elapsed)


def test_key_with_rate_2_gets_its_burst_not_1000_in_redis(shared: Server, db: str) -> None:
    answers, elapsed = _burst_answers(shared, _key(db, "match", rate_limit=2.0), 40)
    assert 2 <= [c for c, _ in answers].count(200) <= int(2 + elapsed * 2.0), (answers, elapsed)


def test_slow_key_gets_exactly_one_request_per_bucket(main: tuple[Server, str], shared: Server) -> None:
    """A key of 0.02/s refills far less than a token during the test: exactly one request
    per bucket (at least one, whatever the rate): one per worker, one in Redis."""
    srv, db = main
    answers, elapsed = _burst_answers(srv, _key(db, "match", rate_limit=0.02), 24)
    assert elapsed < 40
    for pid, codes in _granted_per_worker(answers).items():
        assert codes.count(200) == 1, (pid, codes)
    answers, elapsed = _burst_answers(shared, _key(db, "match", rate_limit=0.02), 24)
    assert elapsed < 40 and [c for c, _ in answers].count(200) == 1


def test_burst_seconds_setting() -> None:
    assert Settings.from_env({"ASSAY_SERVICE_RATE_BURST_SECONDS": "300"}).rate_burst_seconds == 300
    with pytest.raises(AssayError, match="rate_burst_seconds"):
        Settings(rate_burst_seconds=0)


# -- authenticate first, time out early -----------------------------------------------------
def _raw(srv: Server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)  # a guard, not a measure
    return s


def _read_answer(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one HTTP answer off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = s.recv(65536)
        assert chunk
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_upload_without_key_is_refused_before_its_body(main: tuple[Server, str]) -> None:
    """A 60 MB upload without a key: the 401 comes after the headers and 64 KB of body
    (the rest is never sent) and the server closes the connection."""
    srv, _ = main
    for path, key in (("/v1/hash", None), ("/h/hash", None), ("/v1/analyze/model", "assay_" + "x" * 43)):
        s = _raw(srv)
        try:
            head = (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                    f"Content-Length: {60 * 2**20}\r\n" + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n")
            s.sendall(head.encode() + b"\0" * 65536)
            status, headers, body = _read_answer(s)
            closed = _closed_by_server(s)
        finally:
            s.close()
        assert status == 401, body
        assert orjson.loads(body)["error"]["code"] == "unauthorized"
        assert headers["connection"] == "close" and closed


def test_malformed_json_without_key_is_401_not_422(main: tuple[Server, str]) -> None:
    srv, db = main
    bad = b'{"name": '
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for path in ("/v1/banks", "/v1/lookup/batch", "/v1/banks/b/entries"):
            r = c.post(path, content=bad, headers={"Content-Type": "application/json"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (path, r.text)
        # With a key the same body is the client's mistake, as before.
        r = c.post("/v1/banks", content=bad, headers={"Content-Type": "application/json",
                                                       "X-API-Key": _key(db, "curate")})
        assert r.status_code in (400, 422) and r.json()["error"]["code"] != "unauthorized"
        # Routes without a body keep their own order: the key, then the parameters.
        assert c.get("/v1/lookup").status_code == 401
        assert c.get("/status").status_code == 200


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:  # the 30 s guard: still held open
        return False


@pytest.mark.parametrize("sent", [b"", b"GET /ready HTTP/1.1\r\nHost: t\r\nX-Slow: a"],
                         ids=["nothing", "partial-headers"])
def test_stalled_headers_are_dropped(main: tuple[Server, str], sent: bytes) -> None:
    """A client that connects and sends nothing, or stops in the middle of its headers,
    is disconnected (header deadline 1 s; the socket's 30 s timeout is only a guard)."""
    srv, _ = main
    s = _raw(srv)
    try:
        s.sendall(sent)
        assert _closed_by_server(s)
    finally:
        s.close()
    assert httpx.get(srv.url + "/status", timeout=30).status_code == 200


def test_second_request_stalled_on_a_kept_alive_connection_is_dropped(main: tuple[Server, str]) -> None:
    s = _raw(main[0])
    try:
        s.sendall(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = _read_answer(s)
        assert status == 200 and body == b"I-AM-ALIVE"
        s.sendall(b"GET /status HTTP/1.1\r\nHo")  # then nothing more
        assert _closed_by_server(s)
    finally:
        s.close()


# -- bounded cost of image uploads ---------------------------------------------------------
def _png(size: tuple[int, int], mode: str) -> bytes:
    """A blank PNG: tiny on the wire, ``size`` pixels once decoded."""
    buf = io.BytesIO()
    Image.new(mode, size, 0).save(buf, "PNG", optimize=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    return {
        "bomb": _png((13000, 13000), "1"),  # 169 MP in ~20 KB, under Pillow's own cap
        "big": _png((7000, 7000), "1"),  # 49 MP: within the default budget of 50 MP
        "heavy": _png((2000, 2000), "RGB"),  # 4 MP: heavy for the main server (1 MP)
    }


def _limits_of_every_worker(srv: Server, admin: str) -> dict[int, dict]:
    """GET /v1/limits until each worker has answered (new connections; whoever accepts)."""
    seen: dict[int, dict] = {}
    for _ in range(200):
        r = httpx.get(srv.url + "/v1/limits", headers={"X-API-Key": admin}, timeout=30)
        assert r.status_code == 200, r.text
        seen[r.json()["worker"]] = r.json()
        if len(seen) == WORKERS:
            return seen
    raise AssertionError(f"only workers {sorted(seen)} answered")


UPLOADS = (("/h/hash", "photo"), ("/v1/hash", "file"), ("/v1/match", "file"), ("/v1/analyze/provenance", "file"))
MB = 2**20


def test_pixel_bombs_are_refused_from_their_header(main: tuple[Server, str], images: dict[str, bytes]) -> None:
    """4 concurrent 169-MP PNG bombs on each upload route: 413 too-large naming the
    pixel budget, each refused from the header (counted as such, none admitted for a
    decode), and no worker's peak memory near what decoding them would take (3.3 GB for
    /h/hash and 5.1 GB for provenance before the budget)."""
    srv, db = main
    h = {"X-API-Key": _key(db, "match")}
    admin = _key(db, "admin")
    before = _limits_of_every_worker(srv, admin)

    def send(i: int) -> httpx.Response:
        path, field = UPLOADS[i % len(UPLOADS)]
        return httpx.post(srv.url + path, headers=h, timeout=120,
                          files={field: ("bomb.png", images["bomb"], "image/png")})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(8)))
    for r in answers:
        assert r.status_code == 413, r.text[:300]
        err = r.json()["error"]
        assert err["code"] == "too-large" and "13000x13000" in err["message"] and "50000000" in err["message"]
    after = _limits_of_every_worker(srv, admin)
    for pid, lim in after.items():
        assert lim["max_upload_pixels"] == 50_000_000
        assert lim["memory"]["peak_rss_bytes"] < 600 * MB, (pid, lim["memory"])
        # Refused from the header: nothing admitted for decoding, the decoder not called.
        assert lim["heavy"]["admitted_heavy"] == before[pid]["heavy"]["admitted_heavy"], pid
        assert lim["decoder"]["last_memory"] == before[pid]["decoder"]["last_memory"], pid
    assert sum(lim["heavy"]["refused_budget"] - before[pid]["heavy"]["refused_budget"]
               for pid, lim in after.items()) == len(answers)


def test_large_image_within_budget_is_hashed_and_memory_returned(main: tuple[Server, str],
                                                                 images: dict[str, bytes]) -> None:
    """A 49-MP 1-bit PNG (under the budget) is hashed: decoded as 1 byte a pixel, not
    RGB, in the worker's decoder process, not in the worker: the worker's peak stays
    far under 600 MB, the decoder's too, and the decoder gives its memory back."""
    srv, db = main
    r = httpx.post(srv.url + "/v1/hash", headers={"X-API-Key": _key(db, "match")}, timeout=120,
                   files={"file": ("big.png", images["big"], "image/png")})
    assert r.status_code == 200, r.text[:300]
    # a blank image: PDQ's all-zero hash, of quality 0 (HMA's /h/hash answers "" for it)
    pdq = next(s for s in r.json()["signals"] if s["type"] == "pdq" and not s.get("variant"))
    assert pdq["value"] == "0" * 64 and pdq["quality"] == 0 and r.json()["image"]["low_quality"]
    worker = int(r.headers["x-served-by"])
    lim = _limits_of_every_worker(srv, _key(db, "admin"))[worker]
    heavy, mem, decoder = lim["heavy"], lim["memory"], lim["decoder"]
    assert heavy["largest_admitted_pixels"] >= 49_000_000 and heavy["in_flight_pixels"] == 0
    assert decoder["mode"] == "process" and decoder["restarts"] == 0
    dm = decoder["last_memory"]
    assert dm["pid"] != worker
    # The decode (49 MB of grey pixels, and more) happened in the decoder ...
    assert 49 * MB < dm["peak_rss_bytes"] < 600 * MB, dm
    assert mem["peak_rss_bytes"] < 600 * MB, mem
    # ... which handed it back afterwards (glibc).
    if heavy["trims"]:
        assert dm["rss_after_trim_bytes"] < dm["peak_rss_bytes"] - 49 * MB, dm


def test_heavy_uploads_are_bounded_per_worker_and_per_key(main: tuple[Server, str],
                                                          images: dict[str, bytes]) -> None:
    """12 concurrent 4-MP uploads from one key (main server: heavy from 1 MP, 4 MP in
    flight a worker, 1 heavy upload a key a worker): each is hashed or refused with
    503 busy / 429 rate-limited and a Retry-After; the counters show neither bound was
    ever crossed."""
    srv, db = main
    h = {"X-API-Key": _key(db, "match")}

    def send(_: int) -> httpx.Response:
        return httpx.post(srv.url + "/v1/hash", headers=h, timeout=120,
                          files={"file": ("heavy.png", images["heavy"], "image/png")})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(12)))
    for r in answers:
        assert r.status_code in (200, 429, 503), r.text[:300]
        if r.status_code != 200:
            assert r.json()["error"]["code"] == {429: "rate-limited", 503: "busy"}[r.status_code]
            assert int(r.headers["retry-after"]) >= 1
    assert any(r.status_code == 200 for r in answers)
    for pid, lim in _limits_of_every_worker(srv, _key(db, "admin")).items():
        heavy = lim["heavy"]
        assert heavy["in_flight_pixels"] == 0
        assert heavy["max_in_flight_pixels"] <= max(HEAVY_WORKER, heavy["largest_admitted_pixels"]), (pid, heavy)
        assert heavy["max_in_flight_per_key"] <= 1, (pid, heavy)


def test_upload_over_the_rate_is_refused_before_its_body(shared: Server, db: str) -> None:
    """A key of 0.02/s (one request in its Redis bucket) spends it, then starts a 60 MB
    upload: 429 with Retry-After after the headers and 64 KB, the rest never sent."""
    key = _key(db, "match", rate_limit=0.02)
    r = httpx.post(shared.url + "/v1/lookup/batch", headers={"X-API-Key": key}, timeout=30,
                   json={"signals": [{"type": "md5", "value": "0" * 32}]})
    assert r.status_code == 200, r.text
    s = _raw(shared)
    try:
        s.sendall((f"POST /v1/hash HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n"
                   f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {60 * 2**20}\r\n\r\n").encode()
                  + b"\0" * 65536)
        status, headers, body = _read_answer(s)
        closed = _closed_by_server(s)
    finally:
        s.close()
    assert status == 429 and orjson.loads(body)["error"]["code"] == "rate-limited", body
    assert int(headers["retry-after"]) >= 40 and headers["connection"] == "close" and closed


def _jpeg_declaring(width: int, height: int, app_bytes: int) -> bytes:
    """A small real JPEG whose frame header (SOF) declares ``width`` x ``height``, after
    an APP segment of ``app_bytes`` (as cameras put EXIF and ICC before it)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 150)).save(buf, "JPEG", quality=80)
    data = buf.getvalue()
    sof = data.index(b"\xff\xc0")
    data = data[:sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9:]
    app = b"\xff\xe2" + (app_bytes + 2).to_bytes(2, "big") + b"\0" * app_bytes
    return data[:2] + app + data[2:]


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_bomb_is_refused_from_the_first_kilobytes_of_a_streamed_body(main: tuple[Server, str],
                                                                     images: dict[str, bytes], kind: str) -> None:
    """An upload announcing 60 MB whose file part starts with a 169-MP image header: the
    413 comes once the header is in, while the rest of the body has not been sent (the
    server would otherwise wait for it), and the connection is closed after it."""
    srv, db = main
    head = images["bomb"][:4096] if kind == "png" else _jpeg_declaring(13000, 13000, 60_000)
    for path in ("/h/hash", "/v1/analyze/provenance"):
        status, headers, body, closed = _bomb_head_upload(srv, _key(db, "match"), head, path=path,
                                                          filename="bomb", ctype="application/octet-stream")
        assert status == 413, body
        err = orjson.loads(body)["error"]
        assert err["code"] == "too-large" and "13000x13000" in err["message"] and "bomb" in err["message"]
        assert headers["connection"] == "close" and closed


def test_heavy_uploads_per_key_are_counted_for_the_service_in_redis(shared: Server, db: str,
                                                                    images: dict[str, bytes]) -> None:
    """With Redis, a key's heavy uploads are limited for the whole service, not per
    worker: concurrent 4-MP uploads of one key (limit 1) through both workers are
    refused 429 also by a worker that had none of them in flight, and never more than
    one was in flight anywhere. A second key is not held back by the first."""
    key, other = _key(db, "match"), _key(db, "match")
    elsewhere = 0
    for _ in range(8):
        def send(i: int) -> httpx.Response:
            return httpx.post(shared.url + "/v1/hash", headers={"X-API-Key": key if i % 4 else other},
                              timeout=120, files={"file": ("heavy.png", images["heavy"], "image/png")})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(8)))
        for r in answers:
            assert r.status_code in (200, 429, 503), r.text[:300]
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "rate-limited" and "for the service" in r.json()["error"]["message"]
                assert int(r.headers["retry-after"]) >= 1
        assert any(r.status_code == 200 for r in answers)
        limits = _limits_of_every_worker(shared, _key(db, "admin"))
        for pid, lim in limits.items():
            assert lim["heavy"]["max_in_flight_per_key_shared"] <= 1, (pid, lim["heavy"])
            assert lim["heavy"]["in_flight_pixels"] == 0
        elsewhere = sum(lim["heavy"]["refused_key_elsewhere"] for lim in limits.values())
        if elsewhere:
            break
    assert elsewhere > 0, "no upload was refused for another worker's upload of the same key"


# -- callers whose uploads keep being refused -------------------------------------------------
def _bomb_head_upload(srv: Server, key: str, head: bytes, *, path: str = "/h/hash", filename: str = "bomb.png",
                      ctype: str = "image/png") -> tuple[int, dict[str, str], bytes, bool]:
    """An upload announcing 60 MB, of which only the headers and ``head`` (the start of a
    169-MP image) are sent: (status, headers, body, closed by the server). A server that
    waited for the rest of the body would never answer (the guard times out)."""
    part = (f"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + head
    s = _raw(srv)
    try:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n"
                   f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {60 * 2**20}\r\n\r\n"
                   ).encode() + part)
        status, headers, body = _read_answer(s)
        closed = _closed_by_server(s)
    finally:
        s.close()
    return status, headers, body, closed


@pytest.mark.parametrize("where", ["per-worker", "redis"])
def test_key_flooding_with_bombs_is_refused_before_the_body_until_its_penalty_ends(
        db: str, request: pytest.FixtureRequest, images: dict[str, bytes], where: str) -> None:
    """A key sending bombs back to back: each refused 413 from its header, until the
    key has REFUSALS refusals on a worker (or, with Redis, in the service); then 429
    rate-limited with Retry-After from the request's headers, the 60 MB body never
    sent and the connection closed. Another key's uploads and the flooding key's
    lookups are not held back; once the penalty is over the key uploads again."""
    srv = request.getfixturevalue("shared") if where == "redis" else request.getfixturevalue("main")[0]
    key, other = _key(db, "match"), _key(db, "match")
    answers = []
    for _ in range(WORKERS * REFUSALS + 4):  # 4: refusals still being counted when the next one came
        status, headers, body, closed = _bomb_head_upload(srv, key, images["bomb"][:4096])
        answers.append(status)
        if status == 429:
            break
    assert answers[-1] == 429, answers
    assert set(answers[:-1]) == {413} and len(answers) > REFUSALS, answers
    err = orjson.loads(body)["error"]
    assert err["code"] == "rate-limited" and f"{REFUSALS} image uploads of this key were refused" in err["message"]
    assert 1 <= int(headers["retry-after"]) <= PENALTY
    assert headers["connection"] == "close" and closed
    penalised_by = headers["x-served-by"]

    # Another key: its valid uploads are hashed, its bomb is a 413 again, not a 429.
    small = _png((64, 64), "L")
    r = httpx.post(srv.url + "/h/hash", headers={"X-API-Key": other}, timeout=30,
                   files={"photo": ("small.png", small, "image/png")})
    assert r.status_code == 200, r.text
    assert _bomb_head_upload(srv, other, images["bomb"][:4096])[0] == 413
    # The flooding key's other routes: a lookup is answered.
    r = httpx.get(srv.url + "/v1/lookup", params={"signal_type": "md5", "value": "0" * 32},
                  headers={"X-API-Key": key}, timeout=30)
    assert r.status_code == 200, r.text

    # The penalty ends: the worker that refused the key (with Redis: every worker)
    # answers 429 until then, then hashes the key's uploads again.
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 60  # a guard: the penalty is PENALTY seconds
    while time.monotonic() < deadline:
        r = httpx.post(srv.url + "/h/hash", headers={"X-API-Key": key}, timeout=30,
                       files={"photo": ("small.png", small, "image/png")})
        seen.append((r.headers["x-served-by"], r.status_code))
        if r.status_code == 200 and (where == "redis" or r.headers["x-served-by"] == penalised_by):
            break
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) <= PENALTY
        time.sleep(0.1)
    assert seen[-1][1] == 200, seen
    if where == "redis":
        assert {status for _, status in seen[:-1]} <= {429}, seen
    else:
        assert {status for w, status in seen[:-1] if w == penalised_by} <= {429}, seen
    counters = _limits_of_every_worker(srv, _key(db, "admin"))
    assert sum(lim["refusal_penalties"]["penalties_started"] for lim in counters.values()) >= 1
    assert sum(lim["refusal_penalties"]["refused_penalised"] for lim in counters.values()) >= 1
    if where == "redis":
        assert all(lim["refusal_penalties"]["shared"] for lim in counters.values())


def test_refusal_penalty_counts_within_its_window_and_ends() -> None:
    """The per-worker counts, on an injected clock: REFUSALS refusals within the window
    start a penalty, fewer spread over two windows do not; one caller's penalty is not
    another's; the penalty ends after its seconds; non-upload routes are not concerned."""
    import asyncio

    now = [0.0]
    p = RefusalPenalties(3, window=10.0, seconds=30.0, paths=lambda path: path == "/h/hash", clock=lambda: now[0])
    assert p.applies({"method": "POST", "path": "/h/hash"})
    assert not p.applies({"method": "GET", "path": "/v1/lookup"})
    assert not RefusalPenalties(0, 10.0, 30.0, paths=lambda path: True).applies({"method": "POST", "path": "/h/hash"})

    async def run() -> None:
        for _ in range(2):
            await p.record("key:1")
        now[0] = 10.5  # the window of those two is over
        await p.record("key:1")
        await p.check("key:1")  # 1 in this window: not penalised
        await p.record("key:1")
        await p.record("key:1")  # 3 within 10 s
        with pytest.raises(RateLimited) as info:
            await p.check("key:1")
        assert info.value.retry_after == pytest.approx(30.0)
        assert "3 image uploads of this key were refused within 10 s" in info.value.message
        await p.check("key:2")  # another caller
        await p.record("key:1")  # an upload admitted before the penalty: no new penalty
        now[0] = 10.5 + 29.0
        with pytest.raises(RateLimited) as info:
            await p.check("key:1", "client address")
        assert info.value.retry_after == pytest.approx(1.0)
        assert "of this client address" in info.value.message
        now[0] = 10.5 + 30.0
        await p.check("key:1")  # over
        await p.record("key:1")
        await p.check("key:1")  # counting starts again from nothing

    asyncio.run(run())
    assert p.counters()["penalties_started"] == 1 and p.counters()["refused_penalised"] == 2


def test_refusal_penalty_is_for_the_key_or_without_one_the_client_address() -> None:
    from assay.service.auth import Principal
    from assay.service.penalty import caller_of

    scope = {"client": ("10.0.0.7", 51234)}
    assert caller_of(Principal(17, "k", "match"), scope) == ("key:17", "key")
    assert caller_of(Principal(None, "anonymous", "match"), scope) == ("addr:10.0.0.7", "client address")
    assert caller_of(Principal(None, "anonymous", "match"), {})[0] == "addr:unknown"


def test_refusal_penalty_in_redis_is_one_for_every_worker() -> None:
    """Two workers' penalties on one Redis: refusals counted by either add up, a penalty
    started by one refuses on the other; while Redis is unreachable each counts alone."""
    import asyncio

    url = _redis_url()
    prefix = f"t{uuid.uuid4().hex}:"

    def penalties(redis_url: str) -> RefusalPenalties:
        return RefusalPenalties(4, window=60.0, seconds=30.0, paths=lambda path: True,
                                shared=RedisPenalties(redis_url, prefix))

    async def run() -> None:
        a, b = penalties(url), penalties(url)
        down = penalties("redis://127.0.0.1:1/0")  # nothing listens there
        try:
            for p in (a, b, a):
                await p.record("key:7")
            await b.check("key:7")
            await b.record("key:7")  # the 4th, on b
            for p in (a, b):
                with pytest.raises(RateLimited) as info:
                    await p.check("key:7")
                assert 29 < info.value.retry_after <= 30
            await a.check("key:8")
            assert a.counters()["shared"] and b.counters()["penalties_started"] == 1
            for _ in range(4):
                await down.record("key:7")
            with pytest.raises(RateLimited):
                await down.check("key:7")
            assert not down.counters()["shared"]
        finally:
            for p in (a, b, down):
                await p.close()
            import redis

            client = redis.Redis.from_url(url)
            client.delete(*(client.keys(prefix + "*") or [prefix]))
            client.close()

    asyncio.run(run())
