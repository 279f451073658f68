"""Issue 13, items 5 and 6 against a real 2-worker `assay serve` (SQLite and
PostgreSQL): error answers disclose no store location and no other banks to
non-admin keys; JSON bodies are strictly typed; unsafe bank names, control
characters and oversized entries are refused with documented codes."""

from __future__ import annotations

import random

import httpx
import pytest

from assay.service.errors import CODES
from service_cluster import KINDS, SHARED, Cluster
from service_helpers import store_location_markers

SHARES_CLUSTERS = True  # with test_service_hma.py and test_service_metrics.py (service_cluster.SHARED)


@pytest.fixture(scope="module", params=KINDS)
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    c = SHARED.get(request.param, tmp_path_factory)
    with c.client("curate") as cur:
        for name in ("alpha-secret", "beta-secret"):
            assert cur.post("/v1/banks", json={"name": name}).status_code == 201
    return c


def _err(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, r.text
    assert err["code"] in CODES  # a documented code, never the generic "error"
    assert err["request_id"] == r.headers["x-request-id"]
    return err


def _discloses(text: str, db: str) -> list[str]:
    return [m for m in [*store_location_markers(db), "alpha-secret", "beta-secret"] if m and m in text]


# -- item 5: no disclosure ----------------------------------------------------------------
def test_bank_errors_name_only_what_was_asked_for(svc: Cluster) -> None:
    with svc.client("curate") as cur, svc.client("match") as match:
        answers = [
            _err(cur.get("/v1/banks/nope"), 404, "bank-not-found"),
            _err(cur.get("/v1/banks/nope/entries"), 404, "bank-not-found"),
            _err(cur.patch("/v1/banks/nope", json={"description": "x"}), 404, "bank-not-found"),
            _err(cur.delete("/v1/banks/nope"), 404, "bank-not-found"),
            _err(cur.post("/v1/banks/nope/entries", json={"content_id": "c", "signals": {"md5": "0" * 32}}),
                 404, "bank-not-found"),
            _err(cur.post("/v1/banks/nope/import", content=b"0" * 64), 404, "bank-not-found"),
            _err(cur.post("/v1/banks", json={"name": "alpha-secret"}), 409, "bank-exists"),
            _err(match.post("/v1/banks", json={"name": "x"}), 403, "forbidden"),
            _err(cur.get("/c/bank/nope"), 404, "bank-not-found"),  # HMA's routes alike
            _err(cur.post("/c/bank/nope/signal", json={"md5": "0" * 32}), 404, "bank-not-found"),
            _err(cur.post("/c/banks", json={"name": "beta-secret"}), 409, "bank-exists"),
        ]
        for i, err in enumerate(answers):
            text = f"{err['message']} {err['hint']}"
            asked = {6: "alpha-secret", 10: "beta-secret"}.get(i)
            assert [m for m in _discloses(text, svc.db) if m != asked] == [], text
        # what was asked for is named, so the caller can tell which request failed
        assert "'nope'" in answers[0]["message"] and "'alpha-secret'" in answers[6]["message"]
        assert answers[0]["hint"]  # still a readable hint, just not the bank list
    # An admin sees where and what else: the operator's view.
    with svc.client("admin") as adm:
        err = _err(adm.get("/v1/banks/nope"), 404, "bank-not-found")
        assert "alpha-secret" in err["hint"] and _discloses(err["message"], svc.db)


# -- item 6: strict types, names, control characters, caps, codes -------------------------
def test_json_types_are_strict(svc: Cluster) -> None:
    with svc.client("curate") as cur, svc.client("admin") as adm, svc.client("match") as match:
        assert cur.post("/v1/banks", json={"name": "typed"}).status_code == 201
        for body in ({"enabled": "yes"}, {"enabled": 1}, {"pdq_threshold": True}, {"pdq_threshold": "5"},
                     {"pdq_threshold": 5.5}, {"description": 5}):
            err = _err(cur.patch("/v1/banks/typed", json=body), 422, "invalid-request")
            assert err["details"] and err["details"][0]["loc"][0] == "body"
        for body in ({"name": "t2", "pdq_threshold": True}, {"name": 7}, {"name": "t3", "description": None}):
            _err(cur.post("/v1/banks", json=body), 422, "invalid-request")
        _err(cur.post("/v1/banks/typed/entries", json={"content_id": 5, "signals": {"md5": "0" * 32}}),
             422, "invalid-request")
        _err(match.post("/v1/lookup/batch", json={"signals": [{"type": "md5", "value": "0" * 32}],
                                                  "threshold": "3"}), 422, "invalid-request")
        _err(match.post("/v1/lookup/batch", json={"signals": [], "include_low_quality": "true"}),
             422, "invalid-request")
        _err(adm.post("/v1/keys", json={"name": "k", "role": "match", "rate_limit": "5"}), 422, "invalid-request")
        bank = cur.get("/v1/banks/typed").json()
        assert bank["enabled"] is True and bank["pdq_threshold"] is None and bank["description"] == ""
        # the same fields with their right types are accepted
        ok = cur.patch("/v1/banks/typed", json={"enabled": False, "pdq_threshold": 12})
        assert ok.status_code == 200 and ok.json()["pdq_threshold"] == 12 and ok.json()["enabled"] is False
        # JSON has one number type: 12.0 is the integer 12 (as JSON Schema says)
        ok = cur.patch("/v1/banks/typed", json={"pdq_threshold": 13.0})
        assert ok.status_code == 200 and ok.json()["pdq_threshold"] == 13


@pytest.mark.parametrize("name", [".", "..", "-rf", ".hidden", "a/b", "a b", "é", "x" * 65, ""])
def test_unsafe_bank_names_are_refused(svc: Cluster, name: str) -> None:
    with svc.client("curate") as cur:
        r = cur.post("/v1/banks", json={"name": name})
        _err(r, 400, "invalid-bank-input")
        assert "invalid bank name" in r.json()["error"]["message"]
        assert name not in [b["name"] for b in cur.get("/v1/banks").json()["banks"]]


def test_control_characters_are_refused_everywhere(svc: Cluster) -> None:
    md5 = {"md5": "1" * 32}
    with svc.client("curate") as cur, svc.client("admin") as adm, svc.client("match") as match:
        assert cur.post("/v1/banks", json={"name": "ctl"}).status_code == 201
        for bad in ("\x1b[31mred", "bell\x07", "nul\x00", "cr\rover", "c1\x85", "del\x7f"):
            _err(cur.post("/v1/banks", json={"name": "ctl2", "description": bad}), 422, "invalid-request")
            _err(cur.patch("/v1/banks/ctl", json={"description": bad}), 422, "invalid-request")
            _err(cur.post("/v1/banks/ctl/entries", json={"content_id": "c", "signals": md5, "note": bad}),
                 422, "invalid-request")
            _err(cur.post("/v1/banks/ctl/entries", json={"content_id": "c", "signals": md5, "meta": {"k": bad}}),
                 422, "invalid-request")
            _err(cur.post("/v1/banks/ctl/entries", json={"content_id": "c", "signals": md5, "meta": {bad: 1}}),
                 422, "invalid-request")
            _err(cur.post("/v1/banks/ctl/entries", json={"content_id": f"c{bad}", "signals": md5}),
                 422, "invalid-request")
            _err(adm.post("/v1/keys", json={"name": f"k{bad}", "role": "match"}), 422, "invalid-request")
            _err(match.post("/v1/lookup/batch", json={"signals": [{"id": bad, "type": "md5", "value": "0" * 32}]}),
                 422, "invalid-request")
        _err(cur.post("/v1/banks/ctl/entries", json={"content_id": "c\nd", "signals": md5}), 422, "invalid-request")
        assert cur.get("/v1/banks/ctl/entries").json()["entries"] == []
        assert cur.get("/v1/banks/ctl").json()["description"] == ""
        # multi-line text keeps its tabs and newlines
        ok = cur.patch("/v1/banks/ctl", json={"description": "line one\n\tline two"})
        assert ok.status_code == 200 and ok.json()["description"] == "line one\n\tline two"
        ok = cur.post("/v1/banks/ctl/entries", json={"content_id": "c", "signals": md5, "note": "a\nb",
                                                      "meta": {"k": "v\tw"}})
        assert ok.status_code == 201, ok.text


def test_signals_per_entry_are_capped(svc: Cluster) -> None:
    rng = random.Random(13)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(300)]
    with svc.client("curate") as cur:
        assert cur.post("/v1/banks", json={"name": "capped"}).status_code == 201
        err = _err(cur.post("/v1/banks/capped/entries", json={"content_id": "big", "signals": {"pdq": values}}),
                   400, "invalid-bank-input")
        assert "limit of 256" in err["message"] or "limit is 256" in err["message"]
        assert cur.get("/v1/banks/capped").json()["entries"] == 0
        ok = cur.post("/v1/banks/capped/entries", json={"content_id": "big", "signals": {"pdq": values[:250]}})
        assert ok.status_code == 201 and ok.json()["added_signals"] == 250
        # the cap counts what the entry already holds
        err = _err(cur.post("/v1/banks/capped/entries",
                            json={"content_id": "big", "signals": {"pdq": values[250:260]}}),
                   400, "invalid-bank-input")
        assert "250" in err["message"]
        assert cur.post("/v1/banks/capped/entries",
                        json={"content_id": "big", "signals": {"pdq": values[250:256]}}).status_code == 201
        got = cur.get("/v1/banks/capped/entries/big").json()
        assert len(got["signals"]["pdq"]) == 256


def test_invalid_role_has_a_specific_code(svc: Cluster) -> None:
    with svc.client("admin") as adm:
        err = _err(adm.post("/v1/keys", json={"name": "k", "role": "root"}), 422, "invalid-request")
        assert err["details"][0]["loc"] == ["body", "role"]
        assert all(k["name"] != "k" for k in adm.get("/v1/keys").json())


def test_documented_lengths_fit_what_the_server_reads(svc: Cluster) -> None:
    """What the OpenAPI document allows must reach the app, so that every answer is in the
    documented JSON shape. A GET signal could be 16 K characters of anything: non-ASCII
    ones take 6-12 bytes percent-encoded, and the HTTP server refuses a request line of
    ~64 KiB as plain text ("Invalid HTTP request received.") before the app sees it. A
    signal is now printable ASCII (at most 3 bytes encoded), and the longest one, encoded
    at its worst, reaches the app. A text of the documented 1,000,000 characters,
    JSON-escaped by the client (\\uXXXX, 6 bytes each), was refused by the 4 MiB body
    limit (413) although the document allowed it."""
    import json
    import socket
    from urllib.parse import urlencode, urlsplit

    from assay.service import Settings, create_app

    doc = create_app(Settings(db="sqlite:///:memory:", access_log=False)).openapi()
    where = urlsplit(svc.url)
    for path in ("/m/raw_lookup", "/m/lookup"):
        (param,) = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "signal"]
        longest = param["schema"]["maxLength"]
        assert param["schema"]["pattern"] == "^[\\t\\n\\r\\x20-\\x7e]*$"
        # sent by hand: HTTP clients refuse a query this long before sending it
        query = urlencode({"signal_type": "vpdq", "signal": "," * longest})  # %2C: 3 bytes each
        head = "".join(f"{k}: {v}\r\n" for k, v in svc.h("admin").items())
        request = f"GET {path}?{query} HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n"
        with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
            sock.sendall(request.encode())
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        status, _, rest = answer.partition(b"\r\n")
        assert b"application/json" in rest.lower(), answer[:300]  # the app answered
        assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]["code"] in CODES, answer[:300]
    with svc.client("admin") as adm:
        r = adm.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": "\u00c3" * 64})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid-request"
        for n, ok in ((1_000_000, True), (1_000_001, False)):
            body = json.dumps({"text": "\u0083" * n})  # ensure_ascii: 6 bytes a character
            r = adm.post("/v1/text/check", content=body, headers={"content-type": "application/json"}, timeout=120)
            # this service has no text index: a text within the document's length reaches the route
            assert r.status_code == (404 if ok else 422), (n, r.status_code, r.text[:200])
