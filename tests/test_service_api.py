"""The HTTP API in-process (FastAPI TestClient) over a SQLite store: auth and roles,
the error shape, lookups against a brute-force reference, uploads and their limits,
bank curation, imports, audit, HMA compatibility, logs without content."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import re
import time
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps, PngImagePlugin

with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx is what we have
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from assay.service import Settings, create_app
from assay.service.app import open_store
from assay.service.auth import create_key


class Api:
    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.c = client
        self.keys = keys

    def h(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}


def _make(tmp_path: Path, **kw: object) -> tuple[Settings, dict[str, str]]:
    settings = Settings(db=str(tmp_path / "store.db"), refresh_interval=0.05, **kw)  # type: ignore[arg-type]
    store = open_store(settings)
    keys = {role: create_key(store.engine, f"{role}-key", role)[1] for role in ("match", "curate", "admin")}
    store.close()
    return settings, keys


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings, keys = _make(tmp_path, max_upload_bytes=200_000, max_batch=50, key_cache_seconds=0.0)
    with TestClient(create_app(settings)) as client:
        yield Api(client, keys)


def _jpeg(w: int = 320, h: int = 240, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):  # a smooth pattern with structure, so PDQ quality is high
        for x in range(w):
            px[x, y] = ((x * 3 + seed * 40) % 256, (y * 5) % 256, ((x ^ y) + rng.randrange(4)) % 256)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _flip(value: str, bits: int, rng: random.Random) -> str:
    n = int(value, 16)
    for b in rng.sample(range(256), bits):
        n ^= 1 << b
    return f"{n:064x}"


def _assert_error(r, status: int, code: str) -> dict:  # noqa: ANN001
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["code"] == code and err["message"] and "hint" in err
    assert err["request_id"] == r.headers["x-request-id"]
    return err


# -- access control ---------------------------------------------------------------------
def test_keys_and_roles(api: Api) -> None:
    c = api.c
    _assert_error(c.get("/v1/lookup", params={"signal_type": "md5", "value": "0" * 32}), 401, "unauthorized")
    _assert_error(c.get("/v1/banks", headers={"X-API-Key": "nope"}), 401, "unauthorized")
    _assert_error(c.get("/v1/banks", headers={"X-API-Key": "assay_" + "A" * 43}), 401, "unauthorized")
    # match may look up but not curate; curate may curate but not manage keys
    assert c.get("/v1/lookup", params={"signal_type": "md5", "value": "0" * 32}, headers=api.h("match")).status_code == 200
    _assert_error(c.post("/v1/banks", json={"name": "b"}, headers=api.h("match")), 403, "forbidden")
    assert c.post("/v1/banks", json={"name": "b"}, headers={"Authorization": "Bearer " + api.keys["curate"]}).status_code == 201
    _assert_error(c.get("/v1/keys", headers=api.h("curate")), 403, "forbidden")
    listed = c.get("/v1/keys", headers=api.h("admin")).json()
    assert {k["role"] for k in listed} == {"match", "curate", "admin"}
    assert all(api.keys[k["role"]] not in str(k) for k in listed)  # never the key itself
    # a new key works at once; a revoked one stops
    made = c.post("/v1/keys", json={"name": "tmp", "role": "match"}, headers=api.h("admin")).json()
    ok = {"X-API-Key": made["key"]}
    assert c.get("/v1/lookup", params={"signal_type": "md5", "value": "0" * 32}, headers=ok).status_code == 200
    assert c.delete(f"/v1/keys/{made['id']}", headers=api.h("admin")).json()["revoked_at"]
    _assert_error(c.get("/v1/lookup", params={"signal_type": "md5", "value": "0" * 32}, headers=ok), 401, "unauthorized")
    _assert_error(c.delete("/v1/keys/999", headers=api.h("admin")), 404, "not-found")


def test_anonymous_only_when_configured(tmp_path: Path) -> None:
    settings, keys = _make(tmp_path, anonymous_role="match")
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/lookup", params={"signal_type": "md5", "value": "0" * 32}).status_code == 200
        _assert_error(c.post("/v1/banks", json={"name": "b"}), 403, "forbidden")


def test_rate_limit_gives_429_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The buckets' clock is ours: it stands still while the requests go out, however slow
    # the machine, and moves only when the test moves it.
    now = [1000.0]
    monkeypatch.setattr("assay.service.ratelimit.time", types.SimpleNamespace(monotonic=lambda: now[0]))
    settings, _ = _make(tmp_path, rate_burst_seconds=6)  # 3 requests of a 0.5/s key
    store = open_store(settings)
    _, slow = create_key(store.engine, "slow", "match", rate_limit=0.5)
    store.close()

    def lookup(c: TestClient):  # noqa: ANN202
        return c.get("/v1/lookup", params={"signal_type": "md5", "value": "0" * 32}, headers={"X-API-Key": slow})

    with TestClient(create_app(settings)) as c:
        codes = [lookup(c).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = lookup(c)
        _assert_error(r, 429, "rate-limited")
        assert int(r.headers["retry-after"]) == 2  # one token at 0.5/s
        now[0] += 1.9
        _assert_error(lookup(c), 429, "rate-limited")
        now[0] += 0.2  # 2.1 s: one token back, and only one
        assert [lookup(c).status_code for _ in range(2)] == [200, 429]


# -- lookups ----------------------------------------------------------------------------
def test_lookup_matches_brute_force_reference(api: Api) -> None:
    c, cur, m = api.c, api.h("curate"), api.h("match")
    rng = random.Random(5)
    bank = {f"c{i}": f"{rng.getrandbits(256):064x}" for i in range(300)}
    assert c.post("/v1/banks", json={"name": "wide"}).status_code == 401
    c.post("/v1/banks", json={"name": "wide"}, headers=cur)
    c.post("/v1/banks", json={"name": "tight", "pdq_threshold": 4}, headers=cur)
    body = "\n".join(f'{{"content_id": "{k}", "signals": {{"pdq": "{v}"}}}}' for k, v in bank.items())
    job = c.post("/v1/banks/wide/import?format=jsonl", content=body.encode(), headers=cur).json()
    job = _poll(c, job["id"], cur)
    assert job["status"] == "done" and job["result"]["added_entries"] == 300
    tight_value = bank["c0"]
    c.post("/v1/banks/tight/entries", json={"content_id": "t0", "signals": {"pdq": tight_value}}, headers=cur)

    queries = [_flip(bank[f"c{i}"], d, rng) for i, d in zip(range(0, 300, 10), [0, 1, 5, 10, 20, 30, 31, 32, 40, 60] * 3, strict=True)]
    queries.append(_flip(tight_value, 6, rng))
    for threshold in (None, 0, 10, 31, 40):
        for q in queries:
            r = c.get("/v1/lookup", params={"signal_type": "pdq", "value": q.upper(),
                                             **({"threshold": threshold} if threshold is not None else {})}, headers=m)
            assert r.status_code == 200, r.text
            got = {(x["bank"], x["content_id"], x["distance"]) for x in r.json()["matches"]}
            want = set()
            for k, v in bank.items():
                d = _hamming(q, v)
                if d <= (31 if threshold is None else threshold):
                    want.add(("wide", k, d))
            d = _hamming(q, tight_value)
            if d <= (4 if threshold is None else threshold):
                want.add(("tight", "t0", d))
            assert got == want, (threshold, q)

    # a disabled bank is not matched, an enabled one is again
    assert c.post("/v1/banks/wide/disable", headers=cur).json()["enabled"] is False
    r = c.get("/v1/lookup", params={"signal_type": "pdq", "value": bank["c5"]}, headers=m)
    assert r.json() == {"matches": []}
    c.post("/v1/banks/wide/enable", headers=cur)
    r = c.get("/v1/lookup", params={"signal_type": "pdq", "value": bank["c5"]}, headers=m)
    assert [x["content_id"] for x in r.json()["matches"]] == ["c5"]


def _poll(c: TestClient, job_id: str, headers: dict[str, str]) -> dict:
    for _ in range(200):
        job = c.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("job never finished")


def test_exact_lookups_and_batch(api: Api) -> None:
    c, cur, m = api.c, api.h("curate"), api.h("match")
    c.post("/v1/banks", json={"name": "files"}, headers=cur)
    md5, sha, autov2 = "ab" * 16, "cd" * 32, "0123456789"
    r = c.post("/v1/banks/files/entries", headers=cur, json={
        "content_id": "f1", "signals": {"md5": md5, "sha256": [sha], "autov2": autov2}, "note": "known"})
    assert r.status_code == 201 and r.json()["added_signals"] == 3
    for st, v in (("md5", md5.upper()), ("sha256", sha), ("autov2", autov2)):
        got = c.get("/v1/lookup", params={"signal_type": st, "value": v}, headers=m).json()["matches"]
        assert [(x["content_id"], x["signal_type"], x["note"]) for x in got] == [("f1", st, "known")]
    batch = {"signals": [
        {"id": "a", "type": "md5", "value": md5},
        {"id": "b", "type": "md5", "value": "00" * 16},
        {"id": "c", "type": "pdq", "value": "xyz"},
        {"id": "d", "type": "nosuch", "value": "00"},
        {"id": "e", "type": "sha256", "value": sha},
    ]}
    res = c.post("/v1/lookup/batch", json=batch, headers=m).json()["results"]
    assert [x["id"] for x in res] == ["a", "b", "c", "d", "e"]
    assert [x["content_id"] for x in res[0]["matches"]] == ["f1"] and res[1]["matches"] == []
    assert res[2]["error"]["code"] == "invalid-signal" and res[3]["error"]["code"] == "unknown-signal-type"
    assert [x["content_id"] for x in res[4]["matches"]] == ["f1"]
    too_many = {"signals": [{"type": "md5", "value": md5}] * 51}
    _assert_error(c.post("/v1/lookup/batch", json=too_many, headers=m), 413, "too-large")


@pytest.mark.parametrize(("params", "code"), [
    ({"signal_type": "pdq", "value": "12"}, "invalid-signal"),
    ({"signal_type": "pdq", "value": "g" * 64}, "invalid-signal"),
    ({"signal_type": "video", "value": "00"}, "unknown-signal-type"),
    ({"signal_type": "pdq"}, "invalid-request"),
    ({"signal_type": "pdq", "value": "0" * 64, "threshold": 300}, "invalid-request"),
])
def test_malformed_lookups_are_clear_4xx(api: Api, params: dict, code: str) -> None:
    r = api.c.get("/v1/lookup", params=params, headers=api.h("match"))
    err = _assert_error(r, 400 if code != "invalid-request" else 422, code)
    assert "input" not in str(err.get("details", ""))


# -- uploads ----------------------------------------------------------------------------
def test_hash_and_match_upload(api: Api) -> None:
    c, cur, m = api.c, api.h("curate"), api.h("match")
    data = _jpeg()
    r = c.post("/v1/hash", files={"file": ("a.jpg", data, "image/jpeg")}, headers=m)
    assert r.status_code == 200, r.text
    sig = {s["type"]: s["value"] for s in r.json()["signals"]}
    import hashlib

    assert sig["md5"] == hashlib.md5(data).hexdigest() and sig["sha256"] == hashlib.sha256(data).hexdigest()
    assert r.json()["image"]["width"] == 320
    c.post("/v1/banks", json={"name": "imgs"}, headers=cur)
    c.post("/v1/banks/imgs/entries", json={"content_id": "img1", "signals": {"pdq": sig["pdq"]}}, headers=cur)
    # a re-encoded copy matches by PDQ, not by MD5
    copy = io.BytesIO()
    Image.open(io.BytesIO(data)).save(copy, "JPEG", quality=70)
    r = c.post("/v1/match", files={"file": ("b.jpg", copy.getvalue(), "image/jpeg")}, headers=m)
    got = r.json()["matches"]
    assert [(x["content_id"], x["signal_type"]) for x in got] == [("img1", "pdq")] and got[0]["distance"] <= 31
    # a copy turned a quarter matches through the turn that undoes it (queried by default);
    # a copy turned a quarter, or flipped across its diagonal, is found by default too
    rot = io.BytesIO()
    Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_90).save(rot, "JPEG", quality=90)
    plain = c.post("/v1/match", files={"file": ("r.jpg", rot.getvalue())}, headers=m).json()
    assert [(x["content_id"], x["query_variant"]) for x in plain["matches"]] == [("img1", "rotated-270")]
    diag = io.BytesIO()
    Image.open(io.BytesIO(data)).transpose(Image.Transpose.TRANSPOSE).save(diag, "JPEG", quality=90)
    plain = c.post("/v1/match", files={"file": ("t.jpg", diag.getvalue())}, headers=m).json()
    assert [(x["content_id"], x["query_variant"]) for x in plain["matches"]] == [("img1", "flipped-diagonal")]
    both = c.post("/v1/match", files={"file": ("t.jpg", diag.getvalue())}, data={"dihedral": "true"}, headers=m).json()
    assert [x["content_id"] for x in both["matches"]] == ["img1"] and both["matches"][0]["query_variant"]


def test_dihedral_hash_lookup_finds_rotated_and_flipped_bank_entries(api: Api) -> None:
    """Bank holds the hashes of rotated/flipped copies (hashed from their pixels); a
    lookup of the original's hash with dihedral=true finds them, without it not."""
    c, cur, m = api.c, api.h("curate"), api.h("match")
    data = _jpeg(seed=4)
    orig = c.post("/v1/hash", files={"file": ("o.jpg", data)}, headers=m).json()["signals"][0]["value"]
    c.post("/v1/banks", json={"name": "d"}, headers=cur)
    im = Image.open(io.BytesIO(data))
    ops = {"rot90": Image.Transpose.ROTATE_90, "flipx": Image.Transpose.FLIP_LEFT_RIGHT,
           "flipplus": Image.Transpose.TRANSPOSE}
    for name, op in ops.items():
        buf = io.BytesIO()
        im.transpose(op).save(buf, "PNG")
        v = c.post("/v1/hash", files={"file": ("t.png", buf.getvalue())}, headers=m).json()["signals"][0]["value"]
        c.post("/v1/banks/d/entries", json={"content_id": name, "signals": {"pdq": v}}, headers=cur)
    r = c.get("/v1/lookup", params={"signal_type": "pdq", "value": orig}, headers=m).json()
    assert r["matches"] == []
    r = c.get("/v1/lookup", params={"signal_type": "pdq", "value": orig, "dihedral": "true"}, headers=m).json()
    assert {x["content_id"] for x in r["matches"]} == set(ops)


def test_bad_uploads_are_clear_4xx(api: Api) -> None:
    c, m = api.c, api.h("match")
    data = _jpeg()
    _assert_error(c.post("/v1/hash", files={"file": ("t.jpg", data[: len(data) // 3])}, headers=m), 422, "decode-error")
    _assert_error(c.post("/v1/hash", files={"file": ("x.txt", b"just some text, not an image")}, headers=m),
                  415, "unsupported-format")
    _assert_error(c.post("/v1/hash", files={"file": ("e.jpg", b"")}, headers=m), 415, "unsupported-format")
    _assert_error(c.post("/v1/hash", files={"other": ("a.jpg", data)}, headers=m), 422, "invalid-request")
    _assert_error(c.post("/v1/hash", content=b"not multipart", headers={**m, "content-type": "multipart/form-data; boundary=x"}),
                  400, "bad-request")
    big = b"\xff\xd8\xff" + bytes(300_000)
    _assert_error(c.post("/v1/hash", files={"file": ("big.jpg", big)}, headers=m), 413, "too-large")

    def chunks(n: int) -> Iterator[bytes]:  # no Content-Length: cut off while streaming
        for _ in range(n):
            yield bytes(10_000)

    r = c.post("/v1/banks/x/import", content=chunks(100), headers=api.h("curate"))
    _assert_error(r, 404, "bank-not-found")  # unknown bank is refused before the body is read
    # Over the JSON limit (4 MiB) with no Content-Length: only the streaming count can
    # refuse it (its message has no declared size); below the limit the same zeros are a 422.
    r = c.post("/v1/lookup/batch", content=chunks(10), headers={**m, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    r = c.post("/v1/lookup/batch", content=chunks(450), headers={**m, "content-type": "application/json"})
    err = _assert_error(r, 413, "too-large")
    assert err["message"] == f"request body exceeds the limit of {4 * 1024**2} bytes"


def test_chunked_body_over_the_limit_is_413(tmp_path: Path) -> None:
    settings, keys = _make(tmp_path, max_import_bytes=50_000)
    with TestClient(create_app(settings)) as c:
        cur = {"X-API-Key": keys["curate"]}
        c.post("/v1/banks", json={"name": "b"}, headers=cur)

        def chunks() -> Iterator[bytes]:
            for i in range(100):
                yield (f"{i:064x}\n" * 100).encode()

        _assert_error(c.post("/v1/banks/b/import", content=chunks(), headers=cur), 413, "too-large")
        assert c.get("/v1/banks/b", headers=cur).json()["entries"] == 0


def test_model_and_provenance_analysis_of_uploads(api: Api) -> None:
    import json
    import struct

    c, m = api.c, api.h("match")
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    model = struct.pack("<Q", len(header)) + header + bytes(16)
    r = c.post("/v1/analyze/model", content=model, headers=m)
    assert r.status_code == 200, r.text
    assert r.json()["format"] == "safetensors" and r.json()["tensor_count"] == 1
    err = _assert_error(c.post("/v1/analyze/model", content=b"garbage" * 10, headers=m), 415, "unsupported-format")
    assert "/tmp" not in err["message"] and "request body" in err["message"]
    _assert_error(c.post("/v1/analyze/model", content=b"", headers=m), 415, "unsupported-format")
    r = c.post("/v1/analyze/provenance", files={"file": ("a.jpg", _jpeg())}, headers=m)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "no provenance evidence found" and body["errors"] == []
    # the only trace of our encoder: libjpeg's tables at the quality _jpeg used, claiming nothing
    assert [(e["source"], e["claim"], e["strength"]) for e in body["evidence"]] == [("jpeg-tables", "unknown", "weak")]
    assert "quality 90" in body["evidence"][0]["summary"]
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a pattern\nSteps: 20, Sampler: Euler a, Seed: 42, Model hash: 925997e9, Model: demo")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, "PNG", pnginfo=info)
    r = c.post("/v1/analyze/provenance", files={"file": ("g.png", buf.getvalue())}, headers=m)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "AI-generated: generator metadata (AUTOMATIC1111)" and body["errors"] == []
    [ev] = body["evidence"]
    assert (ev["source"], ev["claim"], ev["strength"]) == ("a1111", "ai-generated", "strong")
    assert ev["facts"]["seed"] == 42 and ev["facts"]["locations"] == ["png:tEXt:parameters"]
    assert ev["facts"]["model_signals"] == [{"type": "autov1", "value": "925997e9", "role": "checkpoint",
                                             "name": "demo"}]
    _assert_error(c.post("/v1/analyze/provenance", files={"file": ("m.bin", model)}, headers=m), 415, "unsupported-format")


# -- curation ---------------------------------------------------------------------------
def test_bank_lifecycle_entries_and_audit(api: Api) -> None:
    c, cur = api.c, api.h("curate")
    assert c.post("/v1/banks", json={"name": "b", "description": "d"}, headers=cur).status_code == 201
    _assert_error(c.post("/v1/banks", json={"name": "b"}, headers=cur), 409, "bank-exists")
    _assert_error(c.post("/v1/banks", json={"name": "bad name!"}, headers=cur), 400, "invalid-bank-input")
    _assert_error(c.get("/v1/banks/none", headers=cur), 404, "bank-not-found")
    r = c.patch("/v1/banks/b", json={"pdq_threshold": 12, "description": "e"}, headers=cur).json()
    assert (r["pdq_threshold"], r["description"]) == (12, "e")
    assert c.patch("/v1/banks/b", json={"pdq_threshold": None}, headers=cur).json()["pdq_threshold"] is None
    ids = sorted(f"id-{i:02d}/x" for i in range(25))
    for i, cid in enumerate(ids):
        c.post("/v1/banks/b/entries", json={"content_id": cid, "signals": {"md5": f"{i:032x}"}}, headers=cur)
    seen, offset = [], 0
    while offset is not None:
        page = c.get("/v1/banks/b/entries", params={"limit": 10, "offset": offset}, headers=cur).json()
        seen += [e["content_id"] for e in page["entries"]]
        offset = page["next_offset"]
    assert seen == ids
    assert c.get(f"/v1/banks/b/entries/{ids[3]}", headers=cur).json()["signals"] == {"md5": [f"{3:032x}"]}
    assert c.delete(f"/v1/banks/b/entries/{ids[3]}", headers=cur).status_code == 204
    _assert_error(c.delete(f"/v1/banks/b/entries/{ids[3]}", headers=cur), 404, "not-found")
    r = c.get("/v1/lookup", params={"signal_type": "md5", "value": f"{3:032x}"}, headers=api.h("match"))
    assert r.json() == {"matches": []}
    assert c.get("/v1/banks/b", headers=cur).json()["entries"] == 24
    assert c.delete("/v1/banks/b", headers=cur).status_code == 204
    log = c.get("/v1/audit", headers=api.h("admin"), params={"bank": "b", "limit": 1000}).json()
    actions = [e["action"] for e in reversed(log)]
    assert actions[0] == "bank.create" and actions[-1] == "bank.delete"
    assert actions.count("entry.add") == 25 and actions.count("entry.remove") == 1
    assert {e["actor"] for e in log} == {"key:2:curate-key"}


def test_rejected_import_changes_nothing(api: Api) -> None:
    c, cur = api.c, api.h("curate")
    c.post("/v1/banks", json={"name": "b"}, headers=cur)
    lines = [f"{i:064x}" for i in range(50)]
    lines[7] = "not-a-hash"
    lines[30] = "f" * 63
    job = c.post("/v1/banks/b/import", content="\n".join(lines).encode(), headers=cur).json()
    job = _poll(c, job["id"], cur)
    assert job["status"] == "failed" and job["error"]["code"] == "import-rejected"
    assert [p["line"] for p in job["error"]["problems"]] == [8, 31]
    assert "/tmp" not in job["error"]["message"]
    assert c.get("/v1/banks/b", headers=cur).json()["entries"] == 0
    _assert_error(c.get("/v1/jobs/" + "0" * 32, headers=cur), 404, "not-found")


# -- HMA compatibility, service plumbing -------------------------------------------------
def test_match_upload_queries_the_variants_scan_does(api: Api) -> None:
    c, cur, m = api.c, api.h("curate"), api.h("match")
    data = _jpeg(seed=5)
    hashed = c.post("/v1/hash", files={"file": ("a.jpg", data, "image/jpeg")}, headers=m).json()
    assert not any(s.get("variant") for s in hashed["signals"])  # no matching: the plain hashes only
    pdq = next(s["value"] for s in hashed["signals"] if s["type"] == "pdq")
    c.post("/v1/banks", json={"name": "imgs"}, headers=cur)
    c.post("/v1/banks/imgs/entries", json={"content_id": "img1", "signals": {"pdq": pdq}}, headers=cur)
    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(data))).save(mirrored, "JPEG", quality=90)
    got = c.post("/v1/match", files={"file": ("m.jpg", mirrored.getvalue())}, headers=m).json()
    assert [(x["content_id"], x["query_variant"]) for x in got["matches"]] == [("img1", "mirror")]
    assert got["signals"][got["matches"][0]["query"]]["variant"] == "mirror"
    assert [s["variant"] for s in got["signals"] if s.get("variant")] == ["mirror"]  # only what matched
    assert got["image"]["variant_hashes"] >= 5
    hma = c.post("/m/lookup", files={"photo": ("m.jpg", mirrored.getvalue())}, headers=m).json()
    assert {b: [h["content_id"] for h in hits] for b, hits in hma["pdq"].items()} == {"imgs": ["img1"]}
    assert c.post("/h/hash", files={"photo": ("m.jpg", mirrored.getvalue())}, headers=m).json()["pdq"] != pdq


def test_hma_routes(api: Api) -> None:
    c, cur, m = api.c, api.h("curate"), api.h("match")
    assert c.get("/status").text == "I-AM-ALIVE"
    data = _jpeg(seed=3)
    pdq = c.post("/h/hash", files={"photo": ("p.jpg", data, "image/jpeg")}, headers=m).json()
    assert set(pdq) == {"pdq"} and len(pdq["pdq"]) == 64
    for bank in ("A", "B"):
        c.post("/v1/banks", json={"name": bank}, headers=cur)
    c.post("/v1/banks/A/entries", json={"content_id": "a1", "signals": {"pdq": pdq["pdq"]}}, headers=cur)
    near = _flip(pdq["pdq"], 3, random.Random(1))
    c.post("/v1/banks/B/entries", json={"content_id": "b1", "signals": {"pdq": near}}, headers=cur)
    got = c.get("/m/lookup", params={"signal_type": "pdq", "signal": pdq["pdq"]}, headers=m).json()
    # HMA's types: the entry's integer id, the distance as a string; our content id alongside
    assert {b: [(h["content_id"], h["distance"]) for h in hits] for b, hits in got.items()} == {
        "A": [("a1", "0")], "B": [("b1", "3")]}
    assert all(isinstance(h["bank_content_id"], int) for hits in got.values() for h in hits)
    _assert_error(c.get("/m/lookup", params={"signal_type": "pdq", "signal": "zz"}, headers=m), 400, "invalid-signal")


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_hma_low_quality_photo_gives_no_pdq_and_is_not_banked(api: Api) -> None:
    """As HMA (python-threatexchange's PdqSignal.hash_from_bytes), a photo whose PDQ quality
    is below 50 has no PDQ: /h/hash answers "" and /c/bank/{name}/content refuses it. Before,
    a flat grey picture was banked and the hash /h/hash gave for a flat blue one matched it
    at distance 31 through GET /m/lookup: a false match HMA's own flow cannot make."""
    c, cur, m = api.c, api.h("curate"), api.h("match")
    grey = _png(Image.new("RGB", (256, 256), (120, 120, 120)))
    blue = _png(Image.new("RGB", (200, 200), (20, 40, 200)))
    assert c.post("/c/banks", json={"name": "FLAT"}, headers=cur).status_code == 201
    err = _assert_error(c.post("/c/bank/FLAT/content", files={"photo": ("g.png", grey, "image/png")}, headers=cur),
                        400, "invalid-signal")
    assert "quality" in err["message"]
    # its exact hashes may still be banked
    r = c.post("/c/bank/FLAT/content", params={"types": "md5"}, files={"photo": ("g.png", grey)}, headers=cur)
    assert r.status_code == 200, r.text
    assert set(r.json()["signals"]) == {"md5"}
    for data in (grey, blue):
        assert c.post("/h/hash", files={"photo": ("x.png", data)}, headers=m).json() == {"pdq": ""}
        both = c.post("/h/hash", params={"types": "pdq,md5"}, files={"photo": ("x.png", data)}, headers=m).json()
        assert both["pdq"] == "" and len(both["md5"]) == 32
    # a flat picture's hash banked by value (as HMA allows) is not reached from a flat query
    # upload either: the upload's PDQ is not matched (quality), as before
    grey_pdq = c.post("/v1/hash", files={"file": ("g.png", grey)}, headers=m).json()["signals"][0]["value"]
    assert c.post("/c/bank/FLAT/signal", json={"pdq": grey_pdq}, headers=cur).status_code == 200
    assert c.post("/m/lookup", files={"photo": ("b.png", blue)}, headers=m).json() == {"pdq": {}}
    # a photo with detail keeps its hash and is banked
    data = _jpeg(seed=5)
    pdq = c.post("/h/hash", files={"photo": ("p.jpg", data)}, headers=m).json()["pdq"]
    assert len(pdq) == 64
    r = c.post("/c/bank/FLAT/content", files={"photo": ("p.jpg", data)}, headers=cur)
    assert r.status_code == 200 and r.json()["signals"] == {"pdq": pdq}, r.text


def test_hma_answers_leave_out_known_good_banks(tmp_path: Path) -> None:
    """A hit in a known-good bank (e.g. NSRL) is never a finding, as in a scan; HMA's
    lookup answers have no field to say so and HMA pipelines act on every bank they list,
    so it is left out of them (before: {"nsrl": [...]} beside the flagged banks). /v1
    still shows it, with bank_kind."""
    settings, keys = _make(tmp_path, key_cache_seconds=0.0)
    data = _jpeg(seed=7)
    md5 = hashlib.md5(data).hexdigest()
    store = open_store(settings)
    try:
        store.create_bank("nsrl", kind="known-good")
        store.add_entry("nsrl", "file-1", {"md5": [md5]})
        store.create_bank("flagged")
        store.add_entry("flagged", "case-1", {"md5": [md5]})
    finally:
        store.close()
    with TestClient(create_app(settings)) as c:
        m = {"X-API-Key": keys["match"]}
        got = c.get("/m/lookup", params={"signal_type": "md5", "signal": md5}, headers=m).json()
        assert list(got) == ["flagged"]
        assert c.get("/m/lookup", params={"signal_type": "md5", "signal": md5, "banks": "nsrl"}, headers=m).json() == {}
        raw = c.get("/m/raw_lookup", params={"signal_type": "md5", "signal": md5}, headers=m).json()
        assert raw == {"matches": [got["flagged"][0]["bank_content_id"]]}
        up = c.post("/m/lookup", params={"types": "md5"}, files={"photo": ("p.jpg", data)}, headers=m).json()
        assert list(up["md5"]) == ["flagged"]
        v1 = c.get("/v1/lookup", params={"signal_type": "md5", "value": md5}, headers=m).json()["matches"]
        assert sorted((x["bank"], x.get("bank_kind")) for x in v1) == [("flagged", None), ("nsrl", "known-good")]


def test_hma_compare_vpdq_signals_by_metas_rule(api: Api) -> None:
    """HMA's /m/compare of two vPDQ signal strings (python-threatexchange's
    VPDQSignal.compare_hash: [match, {query_match_percent, compared_match_percent}], frames
    of quality < 50 and repeats left out, a match when the query's share reaches 80%).
    Before, a vpdq pair was read as two 64-hex frame hashes: a signal string was a 400."""
    c, m = api.c, api.h("match")
    rng = random.Random(11)
    frames = [f"{rng.getrandbits(256):064x}" for _ in range(4)]

    def sig(hexes: list[str], quality: int = 100) -> str:
        return json.dumps([f"{h},{quality},{i}.000" for i, h in enumerate(hexes)])

    whole, half = sig(frames), sig(frames[:2])
    near = sig([_flip_bits(h, 20, i) for i, h in enumerate(frames)])
    cases = {  # (query, compared) -> HMA's answer
        (whole, half): [False, {"query_match_percent": 50.0, "compared_match_percent": 100.0}],
        (half, whole): [True, {"query_match_percent": 100.0, "compared_match_percent": 50.0}],
        (whole, near): [True, {"query_match_percent": 100.0, "compared_match_percent": 100.0}],
        (sig(frames + frames[:1]), whole): [True, {"query_match_percent": 100.0, "compared_match_percent": 100.0}],
        # no frame left: no match (python-threatexchange divides by zero there, HMA answers 400)
        (sig(frames, quality=40), whole): [False, {"query_match_percent": 0.0, "compared_match_percent": 0.0}],
    }
    for (a, b), want in cases.items():
        r = c.post("/m/compare", json={"vpdq": [a, b]}, headers=m)
        assert r.status_code == 200, r.text
        assert r.json() == {"vpdq": want}
    # a bare frame hash is not a vPDQ signal (HMA refuses it too)
    assert c.post("/m/compare", json={"vpdq": [frames[0], frames[0]]}, headers=m).status_code == 400


def _flip_bits(value: str, bits: int, seed: int) -> str:
    n = int(value, 16)
    for b in random.Random(seed).sample(range(256), bits):
        n ^= 1 << b
    return f"{n:064x}"


@pytest.mark.shared
def test_hma_hash_is_close_to_reference_pdq(tmp_path: Path, testdata: Path) -> None:
    settings, keys = _make(tmp_path)
    ref = {}
    for line in (testdata / "pdq" / "expected-reference.csv").read_text().splitlines()[1:]:
        path, pdq, *_ = line.split(",")
        ref[path] = pdq
    picked = [p for p in ref if "bridge-mods" in p][:4]
    assert picked
    with TestClient(create_app(settings)) as c:
        for p in picked:
            data = (testdata / "pdq" / p).read_bytes()
            got = c.post("/h/hash", files={"photo": ("x", data)}, headers={"X-API-Key": keys["match"]}).json()["pdq"]
            assert _hamming(got, ref[p]) <= 16, p  # the fast path is within PDQ's own noise


def test_openapi_and_ready(api: Api) -> None:
    spec = api.c.get("/openapi.json").json()
    for path in ("/v1/lookup", "/v1/lookup/batch", "/v1/hash", "/v1/match", "/v1/banks/{name}/import",
                 "/v1/jobs/{job_id}", "/m/lookup", "/h/hash", "/status", "/ready"):
        assert path in spec["paths"], path
    r = api.c.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert r.json()["store_notices"] is False  # SQLite: followers poll
    assert api.c.get("/v1/nope").json()["error"]["code"] == "not-found"
    r = api.c.get("/status", headers={"X-Request-ID": "my-id-1"})
    assert r.headers["x-request-id"] == "my-id-1"
    sent = "bad id\x01" * 20  # control characters and too long: never echoed into logs or headers
    r = api.c.get("/status", headers={"X-Request-ID": sent})
    got = r.headers["x-request-id"]
    assert got != sent and "bad id" not in got
    assert re.fullmatch(r"[0-9a-f]{32}", got)  # a fresh id of our own instead


def test_logs_carry_no_content(api: Api) -> None:
    lines: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    grab = Grab()
    for name in ("assay.service.access", "assay.service.error"):
        logging.getLogger(name).addHandler(grab)
    try:
        data = _jpeg(seed=9)
        api.c.post("/v1/hash", files={"file": ("a.jpg", data)}, headers=api.h("match"))
        api.c.post("/v1/hash", files={"file": ("b.jpg", data[:500])}, headers=api.h("match"))
        secret = "9" * 64
        api.c.get("/v1/lookup", params={"signal_type": "pdq", "value": secret}, headers=api.h("match"))
    finally:
        for name in ("assay.service.access", "assay.service.error"):
            logging.getLogger(name).removeHandler(grab)
    text = "\n".join(lines)
    assert len(lines) >= 3 and '"status": 200' not in text  # orjson: compact JSON lines
    assert '"status":200' in text and '"status":422' in text
    assert secret not in text and api.keys["match"] not in text and "a.jpg" not in text
    assert data[:64].hex() not in text
