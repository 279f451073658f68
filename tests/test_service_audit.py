"""A bank (or key) write and its audit row commit together or not at all, on SQLite and
on the real PostgreSQL. The audit insert is made to fail for real, by a trigger that
refuses rows of ``audit_log``."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from assay.service import Settings, create_app
from assay.service.app import open_store
from assay.service.auth import create_key

REFUSE = {
    "sqlite": ["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
               "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"],
    "postgresql": [
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$",
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
    ],
}
ALLOW = {"sqlite": ["DROP TRIGGER refuse_audit"], "postgresql": ["DROP TRIGGER refuse_audit ON audit_log"]}
MD5 = "0123456789abcdef0123456789abcdef"


class Db:
    """A connection of the test's own to the service's store, beside the service."""

    def __init__(self, settings: Settings) -> None:
        self.store = open_store(settings)
        self.dialect = self.store.engine.dialect.name

    def run(self, statements: list[str]) -> None:
        with self.store.engine.begin() as conn:
            for s in statements:
                conn.exec_driver_sql(s)

    def audit(self) -> list[tuple[str, str | None, dict]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT action, bank, detail FROM audit_log ORDER BY id")).all()
        return [(r.action, r.bank, json.loads(r.detail)) for r in rows]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Db, dict[str, str]]]:
    db = request.getfixturevalue("pg_url") if request.param == "postgresql" else str(tmp_path / "store.db")
    settings = Settings(db=db, refresh_interval=0.05, key_cache_seconds=0.0)
    store = open_store(settings)
    keys = {role: create_key(store.engine, f"{role}-key", role)[1] for role in ("match", "curate", "admin")}
    store.close()
    database = Db(settings)
    try:
        with TestClient(create_app(settings)) as client:
            yield client, database, keys
    finally:
        database.store.close()


def _wait_job(c: TestClient, location: str, h: dict[str, str]) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = c.get(location, headers=h).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise TimeoutError(location)


def _bank_state(c: TestClient, h: dict[str, str], name: str) -> tuple:
    bank = c.get(f"/v1/banks/{name}", headers=h).json()
    entries = c.get(f"/v1/banks/{name}/entries", headers=h).json()["entries"]
    return (bank["description"], bank["enabled"], bank["pdq_threshold"], bank["entries"],
            sorted((e["content_id"], json.dumps(e["signals"], sort_keys=True)) for e in entries))


def test_failed_audit_insert_leaves_everything_unchanged(service: tuple[TestClient, Db, dict[str, str]]) -> None:
    c, db, keys = service
    cur, adm, m = ({"X-API-Key": keys[r]} for r in ("curate", "admin", "match"))
    assert c.post("/v1/banks", json={"name": "b", "description": "before"}, headers=cur).status_code == 201
    assert c.post("/v1/banks/b/entries", json={"content_id": "e1", "signals": {"md5": MD5}},
                  headers=cur).status_code == 201
    before = _bank_state(c, cur, "b")
    audit_before = db.audit()
    keys_before = c.get("/v1/keys", headers=adm).json()

    db.run(REFUSE[db.dialect])
    other = "f" * 32
    refused = [
        c.post("/v1/banks", json={"name": "new"}, headers=cur),
        c.post("/v1/banks/b/entries", json={"content_id": "e2", "signals": {"md5": other}}, headers=cur),
        c.post("/v1/banks/b/entries", json={"content_id": "e1", "signals": {"md5": other}}, headers=cur),
        c.patch("/v1/banks/b", json={"description": "after", "enabled": False, "pdq_threshold": 5}, headers=cur),
        c.post("/v1/banks/b/disable", headers=cur),
        c.delete("/v1/banks/b/entries/e1", headers=cur),
        c.delete("/v1/banks/b", headers=cur),
        c.post("/v1/keys", json={"name": "k", "role": "match"}, headers=adm),
        c.delete("/v1/keys/1", headers=adm),
    ]
    for r in refused:
        assert r.status_code == 503 and r.json()["error"]["code"] == "store-error", r.text
    r = c.post("/v1/banks/b/import", content=f"{other}\n{'e' * 32}\n".encode(), params={"signal_type": "md5"},
               headers=cur)
    job = _wait_job(c, r.headers["location"], cur)
    assert job["status"] == "failed" and job["error"]["code"] == "store-error"

    assert c.get("/v1/banks/new", headers=cur).status_code == 404
    assert _bank_state(c, cur, "b") == before
    assert c.get("/v1/keys", headers=adm).json() == keys_before
    assert c.get("/v1/lookup", params={"signal_type": "md5", "value": other}, headers=m).json() == {"matches": []}
    assert len(c.get("/v1/lookup", params={"signal_type": "md5", "value": MD5}, headers=m).json()["matches"]) == 1
    db.run(ALLOW[db.dialect])
    assert db.audit() == audit_before


def test_each_successful_write_has_exactly_one_audit_row(service: tuple[TestClient, Db, dict[str, str]]) -> None:
    c, db, keys = service
    cur, adm = {"X-API-Key": keys["curate"]}, {"X-API-Key": keys["admin"]}

    def one_new_row(action: str, bank: str | None) -> dict:
        rows = db.audit()
        new = rows[len(seen):]
        assert [(a, b) for a, b, _ in new] == [(action, bank)], new
        seen.extend(new)
        return new[0][2]

    seen: list = []
    assert c.post("/v1/banks", json={"name": "b"}, headers=cur).status_code == 201
    one_new_row("bank.create", "b")
    r = c.post("/v1/banks/b/entries", json={"content_id": "e1", "signals": {"md5": MD5}}, headers=cur)
    assert r.status_code == 201
    assert one_new_row("entry.add", "b") == {"content_id": "e1", "added_signals": 1}
    assert c.patch("/v1/banks/b", json={"description": "d", "enabled": False}, headers=cur).status_code == 200
    assert one_new_row("bank.update", "b") == {"description": "d", "enabled": False}
    assert c.post("/v1/banks/b/enable", headers=cur).status_code == 200
    one_new_row("bank.enable", "b")
    r = c.post("/v1/banks/b/import", content=f"{'a' * 32}\n{'b' * 32}\n{MD5}\n".encode(),
               params={"signal_type": "md5"}, headers=cur)
    job = _wait_job(c, r.headers["location"], cur)
    assert job["status"] == "done"
    detail = one_new_row("import", "b")
    assert detail["job"] == job["id"] and detail["status"] == "done"
    assert detail["result"] == job["result"] == {"added_entries": 3, "added_signals": 3, "duplicates": 0, "total": 3}
    assert c.delete("/v1/banks/b/entries/e1", headers=cur).status_code == 204
    one_new_row("entry.remove", "b")
    assert c.delete("/v1/banks/b/entries/e1", headers=cur).status_code == 404  # nothing done, nothing audited
    assert db.audit() == seen
    created = c.post("/v1/keys", json={"name": "k", "role": "match"}, headers=adm).json()
    assert one_new_row("key.create", None)["key_id"] == created["id"]
    assert c.delete(f"/v1/keys/{created['id']}", headers=adm).status_code == 200
    one_new_row("key.revoke", None)
    assert c.delete("/v1/banks/b", headers=cur).status_code == 204
    one_new_row("bank.delete", "b")


def test_store_writes_inside_a_transaction_join_it(tmp_path: Path) -> None:
    """The store hook the service builds on: writes in ``Store.transaction()`` commit
    with the block, or roll back with it."""
    store = open_store(Settings(db=str(tmp_path / "s.db")))
    try:
        with pytest.raises(RuntimeError), store.transaction("test") as conn:
            store.create_bank("gone")
            store.add_entry("gone", "e", {"md5": MD5})
            assert [b.name for b in store.list_banks()] == ["gone"]  # reads see the open write
            assert conn is not None
            raise RuntimeError("abort")
        assert store.list_banks() == []
        with store.transaction("test"):
            store.create_bank("kept")
            store.add_entry("kept", "e", {"md5": MD5})
        assert store.get_entry("kept", "e") is not None
    finally:
        store.close()
