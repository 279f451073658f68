"""Issue 13, item 1: what a client written for Hasher-Matcher-Actioner (HMA) meets,
against a real 2-worker `assay serve` on SQLite and PostgreSQL. Every HMA-route answer
is parsed with models written from HMA's documented shapes (tests/hma_shapes.py)."""

from __future__ import annotations

import hashlib
import io
import random

import httpx
import pytest
from PIL import Image

import hma_shapes as S
from service_cluster import KINDS, SHARED, Cluster

SHARES_CLUSTERS = True  # with test_service_strict.py and test_service_metrics.py (service_cluster.SHARED)


@pytest.fixture(scope="module", params=KINDS)
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return SHARED.get(request.param, tmp_path_factory)


def _jpeg(seed: int, w: int = 240, h: int = 180) -> bytes:
    rng = random.Random(seed)
    im = Image.new("RGB", (w, h))
    px = im.load()
    a, b = rng.randrange(1, 9), rng.randrange(1, 9)
    for y in range(h):  # structured, so that PDQ quality is high
        for x in range(w):
            px[x, y] = ((x * a + seed * 31) % 256, (y * b) % 256, ((x ^ y) * (seed % 5 + 1)) % 256)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _flip(value: str, bits: int, seed: int) -> str:
    n = int(value, 16)
    for b in random.Random(seed).sample(range(256), bits):
        n ^= 1 << b
    return f"{n:064x}"


def _sees(svc: Cluster, signal_type: str, signal: str, bank: str, present: bool) -> None:
    """Wait until every worker's answer for ``signal`` has (or lacks) ``bank``."""
    def ask(c: httpx.Client) -> tuple[str, bool]:
        r = c.get("/m/lookup", params={"signal_type": signal_type, "signal": signal}, headers=svc.h("match"))
        assert r.status_code == 200, r.text
        return r.headers["x-served-by"], (bank in r.json()) == present

    svc.on_every_worker(ask)


def _bank(cur: httpx.Client, name: str, **body: object) -> S.BankConfig:
    r = cur.post("/c/banks", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return S.BankConfig.model_validate(r.json())


def _add_signal(cur: httpx.Client, bank: str, **signals: str) -> S.ContentAdded:
    r = cur.post(f"/c/bank/{bank}/signal", json=signals)
    assert r.status_code == 200, r.text
    return S.ContentAdded.model_validate(r.json())


def test_lookup_filters_banks_and_answers_in_hma_types(svc: Cluster) -> None:
    value = f"{random.Random(1).getrandbits(256):064x}"
    with svc.client("curate") as cur, svc.client("match") as match:
        for bank in ("LOOKUP_A", "LOOKUP_B"):  # set up through /v1, as an assay curator would
            assert cur.post("/v1/banks", json={"name": bank}).status_code == 201
            r = cur.post(f"/v1/banks/{bank}/entries", json={"content_id": f"{bank}-1", "signals": {"pdq": value}})
            assert r.status_code == 201, r.text
        _sees(svc, "pdq", value, "LOOKUP_B", True)
        _sees(svc, "pdq", value, "LOOKUP_A", True)

        def lookup(**params: str) -> dict[str, list[S.MatchWithDistance]]:
            r = match.get("/m/lookup", params={"signal_type": "pdq", **params})
            assert r.status_code == 200, r.text
            return S.Lookup.model_validate(r.json()).root

        both = lookup(signal=value)
        assert set(both) == {"LOOKUP_A", "LOOKUP_B"}
        assert [(m.distance, m.model_extra) for m in both["LOOKUP_A"]] == [("0", {"content_id": "LOOKUP_A-1"})]
        a_id, b_id = both["LOOKUP_A"][0].bank_content_id, both["LOOKUP_B"][0].bank_content_id
        assert a_id != b_id
        assert set(lookup(signal=value, banks="LOOKUP_A")) == {"LOOKUP_A"}
        assert set(lookup(signal=value, banks="LOOKUP_B,LOOKUP_A")) == {"LOOKUP_A", "LOOKUP_B"}
        assert lookup(signal=value, banks="NO_SUCH_BANK") == {}
        near = lookup(signal=_flip(value, 7, 2), banks="LOOKUP_B")
        assert [(m.bank_content_id, m.distance) for m in near["LOOKUP_B"]] == [(b_id, "7")]
        # HMA's /m/raw_lookup (was 404): the hits' integer ids, or with their distances
        def raw(**params: str) -> list[int]:
            r = match.get("/m/raw_lookup", params={"signal_type": "pdq", **params})
            assert r.status_code == 200, r.text
            return S.RawLookup.model_validate(r.json()).matches

        assert sorted(raw(signal=value)) == sorted([a_id, b_id])
        assert raw(signal=value, banks="LOOKUP_B") == [b_id] and raw(signal=value, banks="NO_SUCH_BANK") == []
        r = match.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": _flip(value, 7, 2),
                                               "banks": "LOOKUP_A,LOOKUP_B", "include_distance": "true"})
        got = S.RawLookupWithDistance.model_validate(r.json()).matches
        assert sorted((m.bank_content_id, m.distance) for m in got) == sorted([(a_id, "7"), (b_id, "7")])
        assert all(set(m.model_dump()) == {"bank_content_id", "distance"} and not m.model_extra for m in got)
        assert match.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": "zz"}).status_code == 400
        assert match.get("/m/raw_lookup", params={"signal_type": "banana", "signal": value}).status_code == 400
        with svc.client(None) as anon:
            assert anon.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": value}).status_code == 401
        # the integer id is HMA's content id on the curation routes too
        r = cur.get(f"/c/bank/LOOKUP_A/content/{a_id}")
        assert S.BankContent.model_validate(r.json()).metadata.content_id == "LOOKUP_A-1"  # type: ignore[union-attr]
        # md5 too, with HMA's shapes
        md5 = hashlib.md5(b"lookup").hexdigest()
        c = _add_signal(cur, "LOOKUP_A", md5=md5)
        _sees(svc, "md5", md5, "LOOKUP_A", True)
        r = match.get("/m/lookup", params={"signal_type": "md5", "signal": md5, "banks": "LOOKUP_A"})
        assert S.Lookup.model_validate(r.json()).root["LOOKUP_A"][0].bank_content_id == c.id


def test_hash_gives_the_requested_types_of_exactly_one_file(svc: Cluster) -> None:
    jpg = _jpeg(3)
    with svc.client("match") as match:
        r = match.post("/h/hash", files={"photo": ("a.jpg", jpg)})
        assert set(S.Hashes.model_validate(r.json()).root) == {"pdq"}
        r = match.post("/h/hash", params={"types": "md5,sha256"}, files={"photo": ("a.jpg", jpg)})
        assert S.Hashes.model_validate(r.json()).root == {
            "md5": hashlib.md5(jpg).hexdigest(), "sha256": hashlib.sha256(jpg).hexdigest()}
        r = match.post("/h/hash", params={"types": "pdq,md5"}, files={"photo": ("a.jpg", jpg)})
        assert set(r.json()) == {"pdq", "md5"}
        r = match.post("/h/hash", params={"types": "video_md5"}, files={"photo": ("a.jpg", jpg)})
        assert r.status_code == 400 and r.json()["error"]["code"] == "unknown-signal-type"
        r = match.post("/h/hash", params={"types": "autov2"}, files={"photo": ("a.jpg", jpg)})
        assert r.status_code == 400 and "not computed for photos" in r.json()["error"]["message"]
        for files in ([("photo", ("a.jpg", jpg)), ("photo", ("b.jpg", _jpeg(4)))],
                      [("photo", ("a.jpg", jpg)), ("video", ("b.mp4", b"\0" * 64))]):
            r = match.post("/h/hash", files=files)
            assert r.status_code == 400, r.text
            assert "2 files uploaded; send exactly one" in r.json()["error"]["message"]


def test_post_lookup_of_an_upload(svc: Cluster) -> None:
    jpg, other = _jpeg(5), _jpeg(6)
    with svc.client("curate") as cur, svc.client("match") as match:
        _bank(cur, "UPLOAD_A")
        _bank(cur, "UPLOAD_B")
        r = cur.post("/c/bank/UPLOAD_A/content", params={"types": "pdq,md5"}, files={"photo": ("a.jpg", jpg)},
                     data={"metadata": '{"content_id": "case-17", "content_uri": "s3://x/a.jpg", "json": {"k": 1}}',
                           "note": "from HMA"})
        assert r.status_code == 200, r.text
        added = S.ContentAdded.model_validate(r.json())
        assert added.signals["md5"] == hashlib.md5(jpg).hexdigest()
        r = cur.post("/c/bank/UPLOAD_B/content", files={"photo": ("a.jpg", jpg)})
        in_b = S.ContentAdded.model_validate(r.json())
        _sees(svc, "pdq", added.signals["pdq"], "UPLOAD_B", True)
        _sees(svc, "md5", added.signals["md5"], "UPLOAD_A", True)

        r = match.post("/m/lookup", files={"photo": ("q.jpg", jpg)})
        got = S.LookupByType.model_validate(r.json()).root
        assert set(got) == {"pdq"}
        assert [(m.bank_content_id, m.distance) for m in got["pdq"]["UPLOAD_A"]] == [(added.id, "0")]
        assert [m.bank_content_id for m in got["pdq"]["UPLOAD_B"]] == [in_b.id]
        r = match.post("/m/lookup", params={"types": "pdq,md5", "banks": "UPLOAD_A"}, files={"photo": ("q.jpg", jpg)})
        got = S.LookupByType.model_validate(r.json()).root
        assert set(got) == {"pdq", "md5"} and set(got["pdq"]) == {"UPLOAD_A"}
        assert [m.bank_content_id for m in got["md5"]["UPLOAD_A"]] == [added.id]
        r = match.post("/m/lookup", params={"banks": "UPLOAD_B"}, files={"photo": ("q.jpg", other)})
        assert S.LookupByType.model_validate(r.json()).root == {"pdq": {}}
        r = match.post("/m/lookup", files=[("photo", ("a.jpg", jpg)), ("photo", ("b.jpg", other))])
        assert r.status_code == 400
        # URLs are never fetched for a client (no server-side request forgery)
        r = cur.post("/c/bank/UPLOAD_A/content", params={"url": "http://127.0.0.1:1/x.jpg"})
        assert r.status_code == 400 and "never fetches URLs" in r.json()["error"]["message"]
        r = match.get("/m/lookup", params={"url": "http://127.0.0.1:1/x.jpg", "signal_type": "pdq",
                                           "signal": added.signals["pdq"]})
        assert r.status_code == 400 and "never fetches URLs" in r.json()["error"]["message"]
        r = cur.post("/c/bank/UPLOAD_A/content", data={"note": "no file"})  # a photo or a video, as /h/hash
        assert r.status_code == 400 and "'photo' or the 'video' field" in r.json()["error"]["message"]

        # the content as HMA shows it
        r = cur.get(f"/c/bank/UPLOAD_A/content/{added.id}", params={"include_signals": "true"})
        content = S.BankContent.model_validate(r.json())
        assert content.id == added.id and content.disable_until_ts == 1 and content.note == "from HMA"
        assert content.bank == S.BankConfig(name="UPLOAD_A", matching_enabled_ratio=1.0)
        assert content.signals == added.signals
        assert content.metadata is not None and content.metadata.content_id == "case-17"
        assert content.metadata.content_uri == "s3://x/a.jpg" and content.metadata.json_ == {"k": 1}
        # one bank's content is not reachable through another bank's path
        r = cur.get(f"/c/bank/UPLOAD_B/content/{added.id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not-found"
        # and the /v1 view of the same entry
        entry = cur.get("/v1/banks/UPLOAD_A/entries/case-17").json()
        assert entry["meta"] == {"content_uri": "s3://x/a.jpg", "json": {"k": 1}}


def test_index_status_and_compare(svc: Cluster) -> None:
    with svc.client("match") as match:
        r = match.get("/m/index/status")
        status = S.IndexStatus.model_validate(r.json()).root
        assert {"pdq", "md5", "sha256"} <= set(status)
        assert all(s.present and s.built_to > 1_600_000_000 for s in status.values())
        only = S.IndexStatus.model_validate(match.get("/m/index/status", params={"signal_type": "pdq"}).json()).root
        assert list(only) == ["pdq"]
        r = match.get("/m/index/status", params={"signal_type": "nope"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "unknown-signal-type"

        a = f"{random.Random(9).getrandbits(256):064x}"
        near, far = _flip(a, 9, 1), _flip(a, 80, 1)
        md5 = hashlib.md5(b"x").hexdigest()
        r = match.post("/m/compare", json={"pdq": [a, near], "md5": [md5, md5]})
        got = S.Compare.model_validate_json(r.content).root  # JSON mode: arrays are tuples
        assert got["pdq"][0] is True and got["pdq"][1].distance == 9
        assert got["md5"][0] is True
        r = match.post("/m/compare", json={"pdq": [a, far], "md5": [md5, "0" * 32]})
        got = S.Compare.model_validate_json(r.content).root
        assert got["pdq"] == (False, S.Similarity(distance=80)) and got["md5"][0] is False
        for bad, code in (({"pdq": [a]}, "invalid-request"), ({"pdq": [a, "zz"]}, "invalid-signal"),
                          ({"nope": [a, a]}, "unknown-signal-type"), ({"pdq": [a, 5]}, "invalid-request")):
            r = match.post("/m/compare", json=bad)
            assert r.status_code in (400, 422) and r.json()["error"]["code"] == code, r.text


def test_the_same_hash_added_twice_is_two_contents(svc: Cluster) -> None:
    """As in HMA every add is a content: two reports of one hash, one of them withdrawn,
    leave the other matching (the second add was merged into the first, so removing "the
    second" removed the only one and the hash stopped matching)."""
    value = f"{random.Random(23).getrandbits(256):064x}"
    with svc.client("curate") as cur:
        _bank(cur, "TWICE")
        one = _add_signal(cur, "TWICE", pdq=value, note="report 1").id
        two = _add_signal(cur, "TWICE", pdq=value, note="report 2").id
        three = _add_signal(cur, "TWICE", pdq=value).id
        assert len({one, two, three}) == 3
        got = [cur.get(f"/c/bank/TWICE/content/{i}", params={"include_metadata": "true"}).json() for i in (one, two)]
        assert [g["note"] for g in got] == ["report 1", "report 2"]
        assert [g["metadata"]["content_id"] for g in got] == [value, f"{value}#2"]
        for gone in (two, one):
            assert S.Deleted.model_validate(cur.delete(f"/c/bank/TWICE/content/{gone}").json()).deleted == 1
            _sees(svc, "pdq", value, "TWICE", True)  # the others still match
        assert cur.delete(f"/c/bank/TWICE/content/{three}").json()["deleted"] == 1
        _sees(svc, "pdq", value, "TWICE", False)
        again = _add_signal(cur, "TWICE", pdq=value).id  # the first id free again: the plain value
        r = cur.get(f"/c/bank/TWICE/content/{again}", params={"include_metadata": "true"}).json()
        assert r["metadata"]["content_id"] == value


def test_content_disabled_and_enabled_again_and_its_note(svc: Cluster) -> None:
    """HMA's PUT /c/bank/{name}/content/{id} (was 405): disable_until_ts 0 takes a content
    that matches wrongly out of every worker's index, 1 brings it back; note set and cleared."""
    value = f"{random.Random(21).getrandbits(256):064x}"
    with svc.client("curate") as cur, svc.client("match") as match:
        _bank(cur, "PUT_CONTENT")
        cid = _add_signal(cur, "PUT_CONTENT", pdq=value).id
        _sees(svc, "pdq", value, "PUT_CONTENT", True)
        r = cur.put(f"/c/bank/PUT_CONTENT/content/{cid}", json={"disable_until_ts": 0, "note": "false positive"})
        assert r.status_code == 200, r.text
        content = S.BankContent.model_validate(r.json())
        assert content.id == cid and content.disable_until_ts == 0 and content.note == "false positive"
        _sees(svc, "pdq", value, "PUT_CONTENT", False)
        assert "PUT_CONTENT" not in match.get("/m/lookup", params={"signal_type": "pdq", "signal": _flip(value, 3, 4)}).json()
        r = cur.put(f"/c/bank/PUT_CONTENT/content/{cid}", json={"disable_until_ts": 1, "note": ""})
        assert r.status_code == 200 and r.json()["disable_until_ts"] == 1 and "note" not in r.json(), r.text
        _sees(svc, "pdq", value, "PUT_CONTENT", True)
        r = cur.put(f"/c/bank/PUT_CONTENT/content/{cid}", json={"note": "kept"})  # note only: still enabled
        assert r.json()["note"] == "kept" and r.json()["disable_until_ts"] == 1
        # a time to disable until is refused, not taken as "for ever" or ignored; unknown ids are 404
        assert cur.put(f"/c/bank/PUT_CONTENT/content/{cid}", json={"disable_until_ts": 2_000_000_000}).status_code == 422
        assert cur.put("/c/bank/PUT_CONTENT/content/999999999", json={"disable_until_ts": 0}).status_code == 404
        assert cur.put(f"/c/bank/NO_SUCH_BANK/content/{cid}", json={"disable_until_ts": 0}).status_code == 404
        assert match.put(f"/c/bank/PUT_CONTENT/content/{cid}", json={"disable_until_ts": 0}).status_code == 403
        _sees(svc, "pdq", value, "PUT_CONTENT", True)


def test_curation_routes_with_their_roles(svc: Cluster) -> None:
    value = f"{random.Random(11).getrandbits(256):064x}"
    with svc.client("curate") as cur, svc.client("match") as match, svc.client(None) as anon:
        # roles: banks and content need curate; type lists need match; nothing without a key
        for method, path in (("GET", "/c/banks"), ("POST", "/c/banks"), ("GET", "/c/bank/X"),
                             ("PUT", "/c/bank/X"), ("DELETE", "/c/bank/X"), ("POST", "/c/bank/X/signal"),
                             ("GET", "/c/bank/X/content/1"), ("DELETE", "/c/bank/X/content/1")):
            r = match.request(method, path, json={"name": "X"} if method in ("POST", "PUT") else None)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (method, path, r.text)
            assert anon.request(method, path).status_code == 401
        types = S.SignalTypes.model_validate(match.get("/c/signal_type").json()).root
        assert {"pdq", "md5"} <= {t.name for t in types}
        contents = S.ContentTypes.model_validate(match.get("/c/content_type").json()).root
        assert {c.name: c.enabled for c in contents}["photo"] is True
        assert anon.get("/c/signal_type").status_code == 401

        # banks: create (enabled or not), list, get, update, delete
        assert _bank(cur, "CURATED") == S.BankConfig(name="CURATED", matching_enabled_ratio=1.0)
        assert _bank(cur, "CURATED_OFF", enabled_ratio=0) == S.BankConfig(name="CURATED_OFF",
                                                                           matching_enabled_ratio=0.0)
        listed = S.BankList.model_validate(cur.get("/c/banks").json()).root
        assert {"CURATED", "CURATED_OFF"} <= {b.name for b in listed}
        assert S.BankConfig.model_validate(cur.get("/c/bank/CURATED").json()).matching_enabled_ratio == 1.0
        r = cur.post("/c/banks", json={"name": "CURATED"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "bank-exists"
        r = cur.put("/c/bank/CURATED", json={"enabled_ratio": 0.5})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-bank-input"
        r = cur.put("/c/bank/CURATED", json={"name": "RENAMED"})
        assert r.status_code == 400 and "renaming" in r.json()["error"]["message"]
        assert cur.get("/c/bank/NO_SUCH").status_code == 404

        added = _add_signal(cur, "CURATED", pdq=value, note="seen twice")
        _sees(svc, "pdq", value, "CURATED", True)
        r = cur.put("/c/bank/CURATED", json={"enabled": False})
        assert S.BankConfig.model_validate(r.json()).matching_enabled_ratio == 0.0
        _sees(svc, "pdq", value, "CURATED", False)  # a disabled bank is not matched
        r = cur.put("/c/bank/CURATED", json={"enabled_ratio": 1})
        assert S.BankConfig.model_validate(r.json()).matching_enabled_ratio == 1.0
        _sees(svc, "pdq", value, "CURATED", True)

        # content: remove by HMA id, then it is gone from every worker
        r = cur.delete(f"/c/bank/CURATED/content/{added.id}")
        assert S.Deleted.model_validate(r.json()).deleted == 1
        assert S.Deleted.model_validate(cur.delete(f"/c/bank/CURATED/content/{added.id}").json()).deleted == 0
        _sees(svc, "pdq", value, "CURATED", False)
        r = cur.post("/c/bank/CURATED/signal", json={"pdq": "zz"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-signal"
        r = cur.post("/c/bank/NO_SUCH/signal", json={"pdq": value})
        assert r.status_code == 404 and r.json()["error"]["code"] == "bank-not-found"

        assert S.Success.model_validate(cur.delete("/c/bank/CURATED_OFF").json()).message == "Done"
        assert S.Success.model_validate(cur.delete("/c/bank/CURATED_OFF").json()).message == "Done"  # as HMA
        assert "CURATED_OFF" not in {b.name for b in S.BankList.model_validate(cur.get("/c/banks").json()).root}
    with svc.client("admin") as adm:
        actions = [(a["action"], a["bank"]) for a in adm.get("/v1/audit", params={"limit": 1000}).json()]
        assert ("bank.delete", "CURATED_OFF") in actions and ("entry.remove", "CURATED") in actions
        assert actions.count(("bank.delete", "CURATED_OFF")) == 1  # the second delete changed nothing


def test_status_is_hma_health(svc: Cluster) -> None:
    for path in ("/status", "/status/live"):
        r = httpx.get(svc.url + path)
        assert (r.status_code, r.text) == (200, "I-AM-ALIVE")
        assert r.headers["content-type"].startswith("text/plain")
