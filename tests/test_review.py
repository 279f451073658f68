"""Review of matches (issue 16, item 5): `assay review REPORT` lists the matches with
stable record ids, `assay review set` stores a decision with who and when and an audit
row, case reports show decisions; the library on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

import casegen
from assay import review as rv
from assay.errors import NotFound
from assay.service.tables import audit_log


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> casegen.Case:
    return casegen.build(tmp_path_factory.mktemp("review"))


def _items(case: casegen.Case) -> list[rv.ReviewItem]:
    return list(rv.report_items(case.report))


def test_record_ids_are_stable_across_scans(case: casegen.Case, tmp_path: Path) -> None:
    first = _items(case)
    assert len(first) == 4 and len({i.record_id for i in first}) == 4  # md5 hit; md5, sha256 and pdq of the photo
    again = tmp_path / "again.jsonl"
    res = casegen.invoke("--db", case.db, "scan", str(case.root), "-o", str(again), "--workers", "1")
    assert res.exit_code == 0  # type: ignore[attr-defined]
    second = list(rv.report_items(again))
    assert {i.record_id for i in second} == {i.record_id for i in first}
    assert {i.scan_id for i in second}.isdisjoint({i.scan_id for i in first})  # another scan, same ids
    xss = next(i for i in first if i.content_id == casegen.CONTENT_ID)
    assert xss.path.endswith(casegen.XSS_NAME) and xss.file_sha256 and xss.strength == "exact"


def test_decide_register_history_on_each_database(store: object, case: casegen.Case) -> None:
    items = _items(case)
    assert rv.register(store, items) == 4 and rv.register(store, items) == 0  # type: ignore[arg-type]
    one = items[0]
    with pytest.raises(rv.InvalidReview):
        rv.decide(store, one.record_id, "maybe", reviewer="ann")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        rv.decide(store, "0" * 16, "confirmed", reviewer="ann")  # type: ignore[arg-type]
    got = rv.decide(store, one.record_id, "needs-review", reviewer="ann", note="check the PDQ")  # type: ignore[arg-type]
    assert got.decision == "needs-review" and got.reviewer == "ann" and got.decided_at
    got = rv.decide(store, one.record_id, "confirmed", reviewer="bob", note="same image")  # type: ignore[arg-type]
    stored = rv.get(store, one.record_id)  # type: ignore[arg-type]
    assert stored is not None and stored.decision == "confirmed" and stored.reviewer == "bob"
    assert stored.note == "same image" and stored.bank == "known" and stored.content_id == one.content_id
    hist = rv.history(store, one.record_id)  # type: ignore[arg-type]
    assert [(h["actor"], h["previous"], h["decision"]) for h in hist] == [
        ("ann", None, "needs-review"), ("bob", "needs-review", "confirmed")]
    with store.connection("t") as conn:  # type: ignore[attr-defined]
        rows = conn.execute(sa.select(audit_log).where(audit_log.c.action == "review.set")).all()
    assert len(rows) == 2 and all(r.bank == "known" and r.key_id is None for r in rows)
    assert json.loads(rows[1].detail)["file_sha256"] == one.file_sha256
    # an item not registered yet is registered by its first decision
    other = items[1]
    fresh = rv.decide(store, other, "false-positive", reviewer="ann")  # type: ignore[arg-type]
    assert fresh.decision == "false-positive"
    assert set(rv.decisions_for(store, [i.record_id for i in items])) == {one.record_id, other.record_id}  # type: ignore[arg-type]
    assert [i.record_id for i in rv.list_reviews(store, decision="confirmed")] == [one.record_id]  # type: ignore[arg-type]
    assert rv.list_reviews(store, bank="other") == []  # type: ignore[arg-type]


def test_cli_list_set_show_and_the_case_report(case: casegen.Case, tmp_path: Path) -> None:
    db = str(tmp_path / "reviews.sqlite3")
    assert casegen.invoke("--db", db, "--create", "bank", "list").exit_code == 0  # type: ignore[attr-defined]
    res = casegen.invoke("--db", db, "review", str(case.report))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    items = _items(case)
    text = res.output  # type: ignore[attr-defined]
    assert all(i.record_id in text for i in items) and "4 matches: 4 not reviewed" in text
    assert "<script>window.__pwned=6</script>" in text  # shown as text, not markup
    pdq = next(i for i in items if i.signal_type == "pdq")
    res = casegen.invoke("--db", db, "review", "set", pdq.record_id, "--decision", "false-positive",
                         "--note", "different photo", "--reviewer", "J. Doe")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert f"{pdq.record_id}: false positive by J. Doe" in res.output and "(was: not reviewed)" in res.output  # type: ignore[attr-defined]
    res = casegen.invoke("--db", db, "review", "show", pdq.record_id)
    assert "not reviewed -> false-positive (different photo)" in res.output  # type: ignore[attr-defined]
    res = casegen.invoke("--db", db, "review", str(case.report), "--json")
    listed = json.loads(res.output)  # type: ignore[attr-defined]
    assert {i["record_id"]: i["decision"] for i in listed["items"]} == {
        i.record_id: "false-positive" if i is pdq else None for i in items}
    res = casegen.invoke("--db", db, "review", str(case.report), "--open")
    assert pdq.record_id not in res.output and "3 matches: 3 not reviewed" in res.output  # type: ignore[attr-defined]
    # the case report shows the decision, who made it and the note
    html_out = tmp_path / "case.html"
    assert casegen.invoke("--db", db, "report", str(case.report), "-o", str(html_out)).exit_code == 0  # type: ignore[attr-defined]
    row = html_out.read_text().split(f'id="m-{pdq.record_id}"', 1)[1].split("</tr>", 1)[0]
    assert "false positive" in row and "J. Doe" in row and "different photo" in row
    # unknown ids and bad decisions are clear errors
    res = casegen.invoke("--db", db, "review", "set", "0123456789abcdef", "--decision", "confirmed")
    assert res.exit_code == 1 and "no match with record id 0123456789abcdef" in res.output  # type: ignore[attr-defined]
    res = casegen.invoke("--db", db, "review", "set", pdq.record_id, "--decision", "maybe")
    assert res.exit_code == 2  # type: ignore[attr-defined]
    res = casegen.invoke("--db", db, "review", "set", "xyz", "--decision", "confirmed")
    assert res.exit_code == 2 and "not a record id" in res.output  # type: ignore[attr-defined]


def test_set_with_report_on_a_fresh_store(case: casegen.Case, tmp_path: Path) -> None:
    db = str(tmp_path / "fresh.sqlite3")
    assert casegen.invoke("--db", db, "--create", "bank", "list").exit_code == 0  # type: ignore[attr-defined]
    rid = _items(case)[0].record_id
    res = casegen.invoke("--db", db, "review", "set", rid, "--decision", "confirmed", "--report", str(case.report))
    assert res.exit_code == 0 and "confirmed by" in res.output  # type: ignore[attr-defined]


def test_empty_report_has_nothing_to_review(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    report = tmp_path / "r.jsonl"
    db = str(tmp_path / "s.db")
    assert casegen.invoke("--db", db, "--create", "scan", str(tmp_path / "e"), "-o", str(report)).exit_code == 0  # type: ignore[attr-defined]
    res = casegen.invoke("--db", db, "review", str(report))
    assert res.exit_code == 0 and "no matches in this report: nothing to review" in res.output  # type: ignore[attr-defined]


def test_service_reviews(tmp_path: Path, case: casegen.Case) -> None:
    """/v1/reviews: role curate, the reviewer is the key, the same record id as the CLI,
    an audit row per decision, the decision shown by `assay report` from the same store."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    from assay.service import Settings, create_app
    from assay.service.app import open_store
    from assay.service.auth import create_key

    db = tmp_path / "service.db"
    settings = Settings(db=str(db), refresh_interval=0.05, key_cache_seconds=0.0)  # type: ignore[arg-type]
    store = open_store(settings)
    keys = {r: create_key(store.engine, f"{r}-key", r)[1] for r in ("match", "curate")}
    store.close()
    items = _items(case)
    one = next(i for i in items if i.signal_type == "md5")
    match = {"path": one.path, "bank": one.bank, "content_id": one.content_id, "signal_type": one.signal_type,
             "value": one.value, "file_sha256": one.file_sha256, "scan_id": one.scan_id, "distance": 0,
             "strength": "exact"}
    with TestClient(create_app(settings)) as c:
        cur = {"X-API-Key": keys["curate"]}
        r = c.post("/v1/reviews", json={"match": match, "decision": "confirmed"}, headers={"X-API-Key": keys["match"]})
        assert r.status_code == 403
        r = c.post("/v1/reviews", json={"match": match, "decision": "confirmed", "note": "same file"}, headers=cur)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["record_id"] == one.record_id and body["reviewer"] == "key:2:curate-key"
        r = c.post("/v1/reviews", json={"record_id": one.record_id, "decision": "needs-review"}, headers=cur)
        assert r.status_code == 200 and r.json()["decision"] == "needs-review"
        r = c.post("/v1/reviews", json={"record_id": "f" * 16, "decision": "confirmed"}, headers=cur)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not-found"
        r = c.post("/v1/reviews", json={"record_id": "f" * 16, "match": match, "decision": "confirmed"}, headers=cur)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-review"
        r = c.post("/v1/reviews", json={"decision": "confirmed"}, headers=cur)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-review"
        r = c.post("/v1/reviews", json={"match": match, "decision": "maybe"}, headers=cur)
        assert r.status_code == 422
        r = c.get("/v1/reviews", headers=cur)
        assert [x["record_id"] for x in r.json()["reviews"]] == [one.record_id] and r.json()["next_offset"] is None
        assert c.get("/v1/reviews?decision=confirmed", headers=cur).json()["reviews"] == []
        r = c.get(f"/v1/reviews/{one.record_id}", headers=cur)
        assert [(h["previous"], h["decision"]) for h in r.json()["history"]] == [
            (None, "confirmed"), ("confirmed", "needs-review")]
        assert c.get("/v1/reviews/" + "f" * 16, headers=cur).status_code == 404
    res = casegen.invoke("--db", str(db), "report", str(case.report), "-o", str(tmp_path / "c.html"))
    assert res.exit_code == 0  # type: ignore[attr-defined]
    row = (tmp_path / "c.html").read_text().split(f'id="m-{one.record_id}"', 1)[1].split("</tr>", 1)[0]
    assert "needs review" in row and "key:2:curate-key" in row


def test_the_list_says_through_which_variant_a_picture_matched(tmp_path: Path) -> None:
    """A mirrored or negative copy matches at a small distance through a variant: the list
    says which ("pdq (0) via inverted"), before and after a decision, and its JSON too."""
    from PIL import ImageOps

    from assay.demo import pattern

    root = tmp_path / "case"
    root.mkdir()
    im = pattern("rings", seed=3)
    im.save(tmp_path / "original.png")
    ImageOps.invert(im).save(root / "negative.png")
    im.save(root / "same.png")
    db = str(tmp_path / "s.sqlite3")
    assert casegen.invoke("--db", db, "--create", "bank", "create", "known").exit_code == 0  # type: ignore[attr-defined]
    assert casegen.invoke("--db", db, "bank", "add", "known", "--content-id", "p",  # type: ignore[attr-defined]
                          "--image", str(tmp_path / "original.png")).exit_code == 0
    report = tmp_path / "r.jsonl"
    assert casegen.invoke("--db", db, "scan", str(root), "-o", str(report), "--workers", "1").exit_code == 0  # type: ignore[attr-defined]
    items = {Path(i.path).name: i for i in rv.report_items(report) if i.signal_type == "pdq"}
    assert items["negative.png"].query_variant == "inverted" and items["same.png"].query_variant is None
    res = casegen.invoke("--db", db, "review", str(report), "--json")
    listed = {Path(i["path"]).name: i for i in json.loads(res.output)["items"]  # type: ignore[attr-defined]
              if i["signal_type"] == "pdq"}
    assert listed["negative.png"]["query_variant"] == "inverted" and "query_variant" not in listed["same.png"]
    for _ in range(2):  # listed, then again once decided (the decision comes from the store)
        res = casegen.invoke("--db", db, "review", str(report))
        text = res.output  # type: ignore[attr-defined]
        assert res.exit_code == 0 and "via inverted" in text and text.count("via ") == 1  # type: ignore[attr-defined]
        assert casegen.invoke("--db", db, "review", "set", items["negative.png"].record_id,  # type: ignore[attr-defined]
                              "--decision", "confirmed").exit_code == 0
