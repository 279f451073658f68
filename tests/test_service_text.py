"""/v1/text: check (role match) and the text index's works (role curate), in process
and on a real 2-worker `assay serve` (an add through one worker is seen by the other)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.service import Settings, create_app
from assay.service.app import open_store
from assay.service.auth import create_key
from assay.text.index import TextIndex
from assay.text.ingest import Work

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from service_cluster import cluster  # noqa: E402

WORK = ("The keeper of the northern light wrote in her ledger that the winter had been long, "
        "that the gulls had gone south early, and that no ship had passed since the first snow.")
SECOND = ("Far inland, the miller's daughter counted sacks of grain by lamplight and sang the old "
          "songs of the river to keep the counting honest.")


def _index(folder: Path) -> Path:
    TextIndex.create(folder).add([Work("ledger", "The Ledger", WORK, "0" * 64, "ledger.txt", "text")])
    return folder


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(db=str(tmp_path / "s.db"), text_index=str(_index(tmp_path / "ix")), access_log=False)
    store = open_store(settings)
    keys = {r: create_key(store.engine, f"{r}-key", r)[1] for r in ("match", "curate", "admin")}
    store.close()
    with TestClient(create_app(settings)) as c:
        yield c, keys


def test_check_roles_and_answer(client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = client
    text = "Quoted: " + WORK.upper() + " End."
    assert c.post("/v1/text/check", json={"text": text}).status_code == 401
    r = c.post("/v1/text/check", json={"text": text, "name": "out-1"}, headers={"X-API-Key": keys["match"]})
    assert r.status_code == 200, r.text
    obj = r.json()
    assert obj["schema"] == "assay.text/1" and obj["path"] == "out-1" and obj["chars"] == len(text)
    (span,) = obj["spans"]
    assert text[span["start"]:span["end"]] == WORK.upper().rstrip(".")  # a span ends on its last word
    assert span["sources"] == [{"work": "ledger", "start": 0, "end": len(WORK) - 1}]  # but its full stop
    assert obj["works"] == [{"work": "ledger", "title": "The Ledger", "chars": len(WORK) - 1,
                             "coverage": round((len(WORK) - 1) / len(text), 6)}]
    r = c.post("/v1/text/check", json={"text": text, "min_chars": 5}, headers={"X-API-Key": keys["match"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid-request"
    r = c.post("/v1/text/check", json={"text": "nothing from any work here at all, not one phrase"},
               headers={"X-API-Key": keys["match"]})
    assert r.json()["spans"] == [] and r.json()["coverage"] == 0


def test_works_list_and_add_need_curate(client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = client
    assert c.get("/v1/text/works", headers={"X-API-Key": keys["match"]}).status_code == 403
    r = c.get("/v1/text/works", headers={"X-API-Key": keys["curate"]})
    assert [w["work"] for w in r.json()["works"]] == ["ledger"]
    body = {"works": [{"id": "mill", "title": "The Mill", "text": SECOND}, {"id": "ledger", "text": "dup"}]}
    assert c.post("/v1/text/works", json=body, headers={"X-API-Key": keys["match"]}).status_code == 403
    r = c.post("/v1/text/works", json=body, headers={"X-API-Key": keys["curate"]})
    assert r.status_code == 200, r.text
    assert [w["work"] for w in r.json()["added"]] == ["mill"] and "already in the index" in r.json()["errors"][0]["error"]
    r = c.post("/v1/text/check", json={"text": SECOND}, headers={"X-API-Key": keys["match"]})
    assert r.json()["works"][0]["work"] == "mill"
    audit = c.get("/v1/audit", headers={"X-API-Key": keys["admin"]})
    assert audit.status_code == 200
    (row,) = [e for e in audit.json() if e["action"] == "text.add"]
    assert row["actor"].endswith("curate-key") and "mill" in str(row["detail"])


def test_no_text_index_is_404(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "s.db"), access_log=False)
    store = open_store(settings)
    key = create_key(store.engine, "m", "match")[1]
    store.close()
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/text/check", json={"text": WORK}, headers={"X-API-Key": key})
        assert r.status_code == 404 and "no text index" in r.json()["error"]["message"]


def test_two_workers_see_an_add(tmp_path: Path) -> None:
    ix = _index(tmp_path / "ix")
    with cluster("sqlite", tmp_path, workers=2, ASSAY_SERVICE_TEXT_INDEX=str(ix)) as cl:
        with cl.client("curate") as c:
            r = c.post("/v1/text/works", json={"works": [{"id": "mill", "text": SECOND}]})
            assert r.status_code == 200, r.text

        def ask(c: object) -> tuple[str, bool]:
            r = c.post("/v1/text/check", json={"text": "He sang: " + SECOND}, headers=cl.h("match"))  # type: ignore[attr-defined]
            return r.headers.get("x-served-by", "?"), r.status_code == 200 and bool(r.json()["spans"])

        cl.on_every_worker(ask)
