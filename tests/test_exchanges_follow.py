"""Exchanges beyond one fetch: a fetch killed with -9 mid-run (the bank is as of its
last committed page, the next fetch resumes without duplicates), fetched entries
matchable on every service worker's index, and review decisions shared back."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest.importorskip("threatexchange")

from assay import review  # noqa: E402
from assay.banks.matcher import Query  # noqa: E402
from assay.banks.store import Store  # noqa: E402
from assay.exchanges import config as cfg  # noqa: E402
from assay.exchanges.credentials import env_var  # noqa: E402
from assay.exchanges.fetch import fetch  # noqa: E402
from assay.exchanges.share import share  # noqa: E402
from assay.service.matching import LiveIndex  # noqa: E402
from exchange_fakes import NcmecEntry, NcmecServer, TeServer, TeUpdate  # noqa: E402

TOKEN = "1234567890|abcdefghijklmnopqrstuvwxyz"
DEADLINE = 30.0  # a guard against hanging, not a timing
ROOT = Path(__file__).resolve().parents[1]


def _eventually(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def _hex(rng: random.Random, bits: int = 256) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _bank(store: Store, bank: str = "known") -> dict[str, tuple[tuple[str, str], ...]]:
    return {e.content_id: tuple(sorted((t, v) for t, vs in e.signals.items() for v in vs))
            for e in store.iter_entries(bank)}


def _replay(updates: list[TeUpdate], up_to: int | None) -> dict[str, tuple[tuple[str, str], ...]]:
    """What the bank must hold after applying every update with last_updated <= up_to."""
    state: dict[str, tuple[tuple[str, str], ...]] = {}
    for u in sorted(updates, key=lambda u: (u.last_updated, u.id)):
        if up_to is not None and u.last_updated > up_to:
            break
        cid = f"te:{u.type}:{u.indicator}"
        if u.should_delete or u.status == "NON_MALICIOUS":
            state.pop(cid, None)
        else:
            state[cid] = (("pdq", u.indicator),)
    return state


@pytest.mark.slow  # a real subprocess and a paced server: ~5 s
def test_kill_9_mid_fetch_leaves_whole_pages_and_resumes_without_duplicates(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    t0 = 1_700_000_000
    ups = [TeUpdate(id=i + 1, type="HASH_PDQ", indicator=_hex(rng), last_updated=t0 + i) for i in range(500)]
    # later pages withdraw and re-judge earlier ones
    ups += [TeUpdate(id=k + 1, type="HASH_PDQ", indicator=ups[k].indicator, last_updated=t0 + 500 + k,
                     should_delete=k % 2 == 0, status="NON_MALICIOUS") for k in range(0, 60, 3)]
    with TeServer(ups, token=TOKEN, page_size=40) as srv, Store(store_url) as store:
        srv.page_delay = 0.12
        store.create_bank("known")
        cfg.add(store, "te", "threatexchange", "known", {"privacy_group": srv.privacy_group, "base_url": srv.base})
        env = {**os.environ, env_var("te"): TOKEN, "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.Popen([sys.executable, "-m", "assay", "--db", store_url, "exchange", "fetch", "te"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            def committed() -> int:
                cp = cfg.get(store, "te").checkpoint
                return json.loads(cp)["update_time"] if cp else 0

            _eventually("three pages committed", lambda: committed() >= t0 + 3 * 40 - 1)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        up_to = committed()
        assert up_to < ups[-1].last_updated, "the fetch finished before it was killed: slow the server down"
        assert _bank(store) == _replay(ups, up_to)  # exactly the committed pages, none half
        monkeypatch.setenv(env_var("te"), TOKEN)
        srv.page_delay = 0.0
        r = fetch(store, "te", sleep=lambda _: None)  # takes over the dead process's lease
        assert r.status == "ok"
        final = _replay(ups, None)
        assert _bank(store) == final
        with store.connection("t") as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM signals")).scalar() == len(final)
            assert conn.execute(sa.text("SELECT count(*) FROM entries")).scalar() == len(final)
        assert cfg.get(store, "te").lease_owner is None


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[str], LiveIndex]]:
    started: list[LiveIndex] = []

    def start(url: str) -> LiveIndex:
        index = LiveIndex(Store(url), interval=0.05, snapshot_dir=tmp_path / f"snap{len(started)}")
        started.append(index)
        index.load()
        index.start()
        return index

    yield start
    for index in started:
        index.stop()
        index.store.close()


def test_fetched_entries_match_on_every_worker(store_url: str, workers: Callable[[str], LiveIndex],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    monkeypatch.setenv(env_var("te"), TOKEN)
    ups = [TeUpdate(id=i + 1, type="HASH_PDQ", indicator=_hex(rng), last_updated=1_700_000_000 + i)
           for i in range(120)]
    with TeServer(ups, token=TOKEN) as srv, Store(store_url) as store:
        store.create_bank("known")
        cfg.add(store, "te", "threatexchange", "known", {"privacy_group": srv.privacy_group, "base_url": srv.base})
        a, b = workers(store_url), workers(store_url)
        fetch(store, "te")
        for w in (a, b):
            _eventually("fetched hashes matchable", lambda w=w: w.matcher.size().get("pdq") == 120)
            hits = w.lookup([Query("pdq", ups[7].indicator)], 0, False)
            assert [m.content_id for m in hits] == [f"te:HASH_PDQ:{ups[7].indicator}"]
        srv.updates.append(TeUpdate(id=8, type="HASH_PDQ", indicator=ups[7].indicator, last_updated=1_700_000_500,
                                    should_delete=True))
        fetch(store, "te")
        for w in (a, b):
            _eventually("withdrawn hash no longer matches",
                        lambda w=w: not w.lookup([Query("pdq", ups[7].indicator)], 0, False))


def _decide(store: Store, cid: str, value: str, decision: str, rid: str, signal_type: str = "pdq") -> None:
    item = review.ReviewItem(record_id=rid, path="/evidence/x.jpg", bank=store.list_banks()[0].name,
                             content_id=cid, signal_type=signal_type, value=value)
    review.decide(store, item, decision, reviewer="examiner")


def test_share_review_decisions_to_threatexchange(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    monkeypatch.setenv(env_var("te"), TOKEN)
    ups = [TeUpdate(id=i + 1, type="HASH_PDQ", indicator=_hex(rng), last_updated=1_700_000_000 + i,
                    descriptor_id=5000 + i) for i in range(3)]
    with TeServer(ups, token=TOKEN) as srv:
        store.create_bank("known")
        cfg.add(store, "te", "threatexchange", "known", {"privacy_group": srv.privacy_group, "base_url": srv.base})
        fetch(store, "te")
        _decide(store, f"te:HASH_PDQ:{ups[0].indicator}", ups[0].indicator, "confirmed", "0" * 15 + "1")
        _decide(store, f"te:HASH_PDQ:{ups[1].indicator}", ups[1].indicator, "false-positive", "0" * 15 + "2")
        _decide(store, f"te:HASH_PDQ:{ups[2].indicator}", ups[2].indicator, "needs-review", "0" * 15 + "3")
        dry = share(store, "te", dry_run=True)
        assert sorted(i["feedback"] for i in dry.items) == ["DISAGREE_WITH_TAGS on descriptor 5001",
                                                            "HELPFUL on descriptor 5000"]
        assert srv.reactions == []  # a dry run sends nothing
        res = share(store, "te")
        assert res.failed == 0 and sorted(p for p, _ in srv.reactions) == ["/5000/", "/5001/"]
        assert {p: f["reactions"] for p, f in srv.reactions} == {"/5000/": ["HELPFUL"], "/5001/": ["DISAGREE_WITH_TAGS"]}
        assert share(store, "te").items == []  # each decision once
        _decide(store, f"te:HASH_PDQ:{ups[0].indicator}", ups[0].indicator, "false-positive", "0" * 15 + "1")
        again = share(store, "te")
        assert [i["feedback"] for i in again.items] == ["DISAGREE_WITH_TAGS on descriptor 5000"]


def test_share_review_decisions_to_ncmec(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_var("nc"), "user:pw")
    pdq = "f" * 60 + "0000"
    with NcmecServer([NcmecEntry("img7", 42, 1_000_000, "image", {"pdq": pdq})]) as srv:
        store.create_bank("ncmec")
        cfg.add(store, "nc", "ncmec", "ncmec", {"base_url": srv.base})
        fetch(store, "nc")
        _decide(store, "nc:42-img7", pdq, "false-positive", "a" * 16)
        res = share(store, "nc")
        assert res.failed == 0 and [i["feedback"] for i in res.items] == ["downvote PDQ of entry img7"]
        (path, body), = srv.feedback
        assert path == "/v2/entries/42/img7/PDQ/feedback"
        assert b"<negative>" in body and b"0000-1" in body  # the programme's only negative reason


def test_share_where_the_programme_takes_no_feedback(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "h.txt"
    value = "e" * 64
    f.write_text(f"pdq {value}\n")
    store.create_bank("known")
    cfg.add(store, "list1", "file", "known", {"path": str(f)})
    fetch(store, "list1")
    _decide(store, f"list1:pdq:{value}", value, "confirmed", "b" * 16)
    res = share(store, "list1")
    assert [i["status"] for i in res.items] == ["not sent: file takes no feedback through the library"]


@pytest.mark.slow  # a whole service with its index: ~4 s
def test_service_schedules_fetches_and_reports_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service fetches enabled exchanges on its interval (one worker at a time: the
    lease), /v1/exchanges shows last success, lag and errors, HMA's /c/exchanges shapes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    from assay.service import Settings, create_app
    from assay.service.app import open_store
    from assay.service.auth import create_key

    rng = random.Random(8)
    monkeypatch.setenv(env_var("te"), TOKEN)
    value = _hex(rng)
    ups = [TeUpdate(id=1, type="HASH_PDQ", indicator=value, last_updated=1_700_000_000)]
    db = tmp_path / "service.db"
    settings = Settings(db=str(db), refresh_interval=0.05, key_cache_seconds=0.0,  # type: ignore[arg-type]
                        exchange_interval=3600.0)
    store = open_store(settings)
    keys = {r: create_key(store.engine, f"{r}-key", r)[1] for r in ("match", "curate")}
    from prometheus_client import REGISTRY

    def metric(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    base = {k: metric("assay_exchange_fetches_total", exchange=x, status=st)
            for k, (x, st) in {"te": ("te", "ok"), "broken": ("broken", "error"), "te-err": ("te", "error")}.items()}
    added = metric("assay_exchange_records_total", exchange="te", outcome="added")
    with TeServer(ups, token=TOKEN) as srv:
        store.create_bank("known")
        cfg.add(store, "te", "threatexchange", "known", {"privacy_group": srv.privacy_group, "base_url": srv.base})
        cfg.add(store, "broken", "file", "known", {"path": str(tmp_path / "gone.txt")})
        store.close()
        with TestClient(create_app(settings)) as c:
            cur = {"X-API-Key": keys["curate"]}
            assert c.get("/v1/exchanges", headers={"X-API-Key": keys["match"]}).status_code == 403

            def statuses() -> dict[str, dict[str, object]]:
                return {x["name"]: x for x in c.get("/v1/exchanges", headers=cur).json()["exchanges"]}

            _eventually("both scheduled fetches ran", lambda: all(
                s["last_finished_at"] for s in statuses().values()))
            got = statuses()
            assert got["te"]["last_status"] == "ok" and got["te"]["last_error"] is None
            assert got["te"]["checkpoint_time"] == 1_700_000_000 and isinstance(got["te"]["lag_seconds"], float)
            assert got["broken"]["last_status"] == "error" and "is not a file" in str(got["broken"]["last_error"])
            assert got["broken"]["last_success_at"] is None and got["broken"]["lag_seconds"] is None
            _eventually("fetched hash matchable", lambda: c.get(
                f"/v1/lookup?signal_type=pdq&value={value}", headers={"X-API-Key": keys["match"]}).json().get("matches"))
            served = srv.pages_served
            scheduler = c.app.state.exchange_scheduler  # type: ignore[attr-defined]
            assert scheduler.run_once() == 0 and srv.pages_served == served  # not due again for an hour
            # the scheduled fetches in /metrics (by exchange name and outcome, no signals)
            assert metric("assay_exchange_fetches_total", exchange="te", status="ok") == base["te"] + 1
            assert metric("assay_exchange_fetches_total", exchange="broken", status="error") == base["broken"] + 1
            assert metric("assay_exchange_fetches_total", exchange="te", status="error") == base["te-err"]
            assert metric("assay_exchange_records_total", exchange="te", outcome="added") == added + 1
            assert metric("assay_exchange_last_success_timestamp_seconds", exchange="te") > time.time() - 600
            assert metric("assay_exchange_last_success_timestamp_seconds", exchange="broken") == 0.0
            r = c.post("/v1/exchanges/te/fetch", headers=cur)
            assert r.status_code == 200 and r.json()["status"] == "ok"
            assert metric("assay_exchange_fetches_total", exchange="te", status="ok") == base["te"] + 2
            assert metric("assay_exchange_fetch_seconds_count", exchange="te") >= 2
            assert c.get("/v1/exchanges/nope", headers=cur).status_code == 404
            # HMA's shapes
            assert c.get("/c/exchanges", headers=cur).json() == ["broken", "te"]
            one = c.get("/c/exchange/te", headers=cur).json()
            assert one["api"] == "fb_threatexchange" and one["enabled"] is True and one["privacy_group"] == srv.privacy_group
            st = c.get("/c/exchange/te/status", headers=cur).json()
            assert st["success"] is True and st["checkpoint_time"] == 1_700_000_000 and st["last_fetch_time"] > 0
            # what HMA's route answers (python-threatexchange's FetchStatus; its test asserts these keys)
            assert st["checkpoint_ts"] == 1_700_000_000 and st["running_fetch_start_ts"] is None
            assert st["last_fetch_succeeded"] is True and st["up_to_date"] is True and st["fetched_items"] == 1
            assert st["last_fetch_complete_ts"] >= st["last_fetch_time"] - 1
            broken = c.get("/c/exchange/broken/status", headers=cur).json()
            assert broken["success"] is False and broken["last_fetch_succeeded"] is False
            assert broken["up_to_date"] is False and broken["fetched_items"] == 0 and broken["checkpoint_ts"] is None
            r = c.put("/c/exchange/broken", json={"enabled": False}, headers=cur)
            assert r.status_code == 200 and r.json()["enabled"] is False
            assert statuses()["broken"]["enabled"] is False


def test_share_cli_readable_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from assay.cli import app

    runner = CliRunner()
    monkeypatch.setenv(env_var("te"), TOKEN)
    db = str(tmp_path / "s.sqlite3")
    value = "c" * 64
    with TeServer([TeUpdate(id=1, type="HASH_PDQ", indicator=value, last_updated=1_700_000_000,
                            descriptor_id=77)], token=TOKEN) as srv:
        with Store(db) as store:
            store.create_bank("known")
            cfg.add(store, "te", "threatexchange", "known", {"privacy_group": srv.privacy_group, "base_url": srv.base})
        res = runner.invoke(app, ["--db", db, "exchange", "share", "te", "--dry-run"])
        assert res.exit_code == 0 and "nothing to share for te" in res.output
        assert runner.invoke(app, ["--db", db, "exchange", "fetch", "te"]).exit_code == 0
        with Store(db) as store:
            _decide(store, f"te:HASH_PDQ:{value}", value, "confirmed", "c" * 16)
        res = runner.invoke(app, ["--db", db, "exchange", "share", "te", "--dry-run"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "would send" in res.output and "HELPFUL on descriptor 77" in res.output
        assert "dry run: not sent" in res.output and srv.reactions == []
        res = runner.invoke(app, ["--db", db, "exchange", "share", "te", "--json"])
        got = json.loads(res.output)
        assert got["dry_run"] is False and got["failed"] == 0 and got["items"][0]["status"] == "sent"
        assert [p for p, _ in srv.reactions] == ["/77/"]
