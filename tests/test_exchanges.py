"""Hash exchanges (assay.exchanges): configuration in the store, credentials, incremental
fetch through python-threatexchange's real clients against loopback servers that serve
the programmes' documented shapes, page atomicity, removals, share-back."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

pytest.importorskip("threatexchange")

from assay.banks.store import Store  # noqa: E402
from assay.cli import app  # noqa: E402
from assay.errors import BankNotFound, ExchangeError, InvalidBankInput, NotFound  # noqa: E402
from assay.exchanges import config as cfg  # noqa: E402
from assay.exchanges.credentials import env_var, redact, secrets_of  # noqa: E402
from assay.exchanges.fetch import fetch  # noqa: E402
from assay.service.tables import audit_log  # noqa: E402
from exchange_fakes import NcmecEntry, NcmecServer, TeServer, TeUpdate  # noqa: E402

runner = CliRunner()
TOKEN = "1234567890|abcdefghijklmnopqrstuvwxyz"


def _hex(rng: random.Random, bits: int = 256) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _bank_signals(store: Store, bank: str) -> dict[str, tuple[str, ...]]:
    """content id -> its signals, every entry of the bank."""
    out = {}
    for e in store.iter_entries(bank):
        out[e.content_id] = tuple(sorted((t, v) for t, vs in e.signals.items() for v in vs))
    return out


def _no_sleep(_: float) -> None:
    pass


@pytest.fixture
def te_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_var("te"), TOKEN)


# ---------------------------------------------------------------------- configuration
def test_add_list_show_remove_and_refusals(store: Store) -> None:
    store.create_bank("known")
    assert cfg.list_all(store) == []
    ex = cfg.add(store, "te", "threatexchange", "known", {"privacy_group": "42", "base_url": "https://x.example/"})
    assert (ex.bank, ex.settings, ex.enabled, ex.checkpoint) == (
        "known", {"privacy_group": 42, "base_url": "https://x.example"}, True, None)
    with pytest.raises(ExchangeError, match="already exists"):
        cfg.add(store, "te", "file", "known", {"path": "/x"})
    with pytest.raises(InvalidBankInput, match="needs --privacy-group"):
        cfg.add(store, "te2", "threatexchange", "known", {})
    with pytest.raises(InvalidBankInput, match="does not apply"):
        cfg.add(store, "f", "file", "known", {"path": "/x", "privacy_group": 1})
    with pytest.raises(InvalidBankInput, match="in the clear"):
        cfg.add(store, "n", "ncmec", "known", {"base_url": "http://hashes.example.org"})
    with pytest.raises(InvalidBankInput, match="must not carry credentials"):
        cfg.add(store, "n", "ncmec", "known", {"base_url": "https://u:p@hashes.example.org"})
    with pytest.raises(InvalidBankInput, match="unknown NCMEC environment"):
        cfg.add(store, "n", "ncmec", "known", {"environment": "Nowhere"})
    with pytest.raises(BankNotFound):
        cfg.add(store, "n", "ncmec", "missing-bank", {})
    assert [x.name for x in cfg.list_all(store)] == ["te"]
    cfg.set_enabled(store, "te", False)
    assert not cfg.get(store, "te").enabled
    cfg.remove(store, "te")
    with pytest.raises(NotFound, match="none configured"):
        cfg.get(store, "te")


def test_cli_readable_and_json_on_empty_and_full_stores(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite3")
    res = runner.invoke(app, ["--db", db, "--create", "exchange", "list"])
    assert res.exit_code == 0, res.output
    assert "no exchanges yet" in res.output
    assert json.loads(runner.invoke(app, ["--db", db, "exchange", "list", "--json"]).output) == []
    runner.invoke(app, ["--db", db, "bank", "create", "known"])
    res = runner.invoke(app, ["--db", db, "exchange", "add", "te", "--type", "threatexchange", "--bank", "known",
                              "--privacy-group", "42"])
    assert res.exit_code == 0, res.output
    assert "added exchange te (threatexchange) feeding bank known" in res.output
    assert "ASSAY_EXCHANGE_TE_CREDENTIALS" in res.output
    res = runner.invoke(app, ["--db", db, "exchange", "list"], env={"COLUMNS": "200"})
    assert "te" in res.output and "threatexchange" in res.output and "never fetched" in res.output
    res = runner.invoke(app, ["--db", db, "exchange", "show", "te"], env={"COLUMNS": "200"})
    assert "privacy_group: 42" in res.output and "checkpoint: none" in res.output and "last fetch: never" in res.output
    shown = json.loads(runner.invoke(app, ["--db", db, "exchange", "show", "te", "--json"]).output)
    assert shown["settings"] == {"privacy_group": 42} and shown["last_status"] is None
    res = runner.invoke(app, ["--db", db, "exchange", "show", "nope"])
    assert res.exit_code == 1 and "no exchange named 'nope'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["--db", db, "exchange", "add", "x", "--type", "threatexchange", "--bank", "known"])
    assert res.exit_code != 0 and "needs --privacy-group" in res.output
    res = runner.invoke(app, ["--db", db, "exchange", "remove", "te"])
    assert "removed exchange te" in res.output
    assert "no exchanges yet" in runner.invoke(app, ["--db", db, "exchange", "list"]).output


# ------------------------------------------------------------------------- credentials
def test_credentials_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.exchanges.credentials import find

    monkeypatch.delenv("TX_ACCESS_TOKEN", raising=False)
    f = tmp_path / "creds"
    f.write_text(TOKEN + "\n")
    f.chmod(0o644)
    with pytest.raises(ExchangeError, match=r"group or others.*chmod 600") as info:
        find("te", "threatexchange", {"credentials_file": str(f)})
    assert TOKEN not in str(info.value)
    f.chmod(0o640)
    with pytest.raises(ExchangeError, match="group or others"):
        find("te", "threatexchange", {"credentials_file": str(f)})
    f.chmod(0o600)
    assert find("te", "threatexchange", {"credentials_file": str(f)}) == (TOKEN, f"file {f}")
    link = tmp_path / "link"
    link.symlink_to(f)
    with pytest.raises(ExchangeError, match="cannot be opened"):
        find("te", "threatexchange", {"credentials_file": str(link)})
    with pytest.raises(ExchangeError, match="has no credentials.*ASSAY_EXCHANGE_TE_CREDENTIALS"):
        find("te", "threatexchange", {})
    monkeypatch.setenv("ASSAY_EXCHANGE_TE_CREDENTIALS", "9999999999|zyxwvutsrqponmlkjihgfedcba")
    assert find("te", "threatexchange", {"credentials_file": str(f)})[1] == "environment variable ASSAY_EXCHANGE_TE_CREDENTIALS"


def test_redact_hides_secrets_in_urls_and_text() -> None:
    url = ("400 Client Error: Bad Request for url: http://127.0.0.1:9/42/threat_updates/?access_token="
           "1234567890%7Cabcdefghijklmnopqrstuvwxyz&limit=100")
    shown = redact(url, secrets_of(TOKEN))
    assert "abcdefghijklmnopqrstuvwxyz" not in shown and "1234567890%7C" not in shown
    assert "access_token=***" in shown and "limit=100" in shown
    shown = redact("GET https://user:hunter22@hashes.example/v2 failed; password hunter22", secrets_of("user:hunter22"))
    assert "hunter22" not in shown
    assert "Basic ***" in redact("Authorization: Basic dXNlcjpodW50ZXIyMg==")


@pytest.mark.parametrize("seed", range(30))
def test_redact_never_leaks_a_secret_fuzz(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.~!$&'()*+,;=:@/?%|"
    secret = "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 40)))
    from urllib.parse import quote, quote_plus

    noise = "".join(rng.choice(alphabet + " \n") for _ in range(rng.randint(0, 80)))
    text = f"{noise} {secret} url?token={quote(secret, safe='')}&x={quote_plus(secret)} {noise}"
    shown = redact(text, secrets_of(secret))
    assert secret not in shown and quote(secret, safe="") not in shown and quote_plus(secret) not in shown


@pytest.mark.parametrize("seed", range(40))
def test_stored_checkpoints_are_parsed_safely_fuzz(seed: int) -> None:
    from threatexchange.exchanges.impl.fb_threatexchange_api import FBThreatExchangeCheckpoint
    from threatexchange.exchanges.impl.ncmec_api import NCMECCheckpoint

    from assay.exchanges.fetch import decode_checkpoint, encode_checkpoint

    rng = random.Random(seed)
    leaves: list[Any] = [None, True, 3, -1, 2.5, "x", "", [], {}, 10**30]

    def junk(depth: int = 0) -> Any:
        if depth > 2 or rng.random() < 0.4:
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return [junk(depth + 1) for _ in range(rng.randint(0, 3))]
        keys = ["get_entries_max_ts", "paging_info", "paging_url", "paging_end_ts", "update_time", "zz"]
        return {rng.choice(keys): junk(depth + 1) for _ in range(rng.randint(0, 4))}

    for cls in (NCMECCheckpoint, FBThreatExchangeCheckpoint):
        text = json.dumps(junk()) if seed else "not json {"
        try:
            cp = decode_checkpoint(cls, text)
        except ExchangeError as exc:
            assert "checkpoint" in str(exc)
        else:
            assert isinstance(cp, cls)
            assert decode_checkpoint(cls, encode_checkpoint(cp)) == cp


# ---------------------------------------------------------------------- ThreatExchange
def _te_updates(n: int, rng: random.Random, start_id: int = 1, t0: int = 1_700_000_000) -> list[TeUpdate]:
    return [TeUpdate(id=start_id + i, type="HASH_PDQ", indicator=_hex(rng), last_updated=t0 + i)
            for i in range(n)]


@pytest.fixture
def te_server() -> Iterator[TeServer]:
    with TeServer(token=TOKEN) as srv:
        yield srv


def _add_te(store: Store, srv: TeServer, name: str = "te") -> None:
    if "known" not in [b.name for b in store.list_banks()]:
        store.create_bank("known")
    cfg.add(store, name, "threatexchange", "known", {"privacy_group": srv.privacy_group, "base_url": srv.base})


def test_threatexchange_pages_checkpoint_removals_and_opinions(store: Store, te_server: TeServer, te_env: None) -> None:
    rng = random.Random(7)
    ups = _te_updates(250, rng)
    ups.append(TeUpdate(id=900, type="HASH_TMK", indicator="tmk-data", last_updated=1_700_000_300))
    ups.append(TeUpdate(id=901, type="HASH_MD5", indicator="not-an-md5", last_updated=1_700_000_301))
    ups.append(TeUpdate(id=902, type="HASH_MD5", indicator="AB" * 16, last_updated=1_700_000_302,
                        tags=["media_type_video"]))
    te_server.updates = ups
    _add_te(store, te_server)
    r = fetch(store, "te", sleep=_no_sleep)
    assert (r.pages, r.added, r.removed, r.invalid) == (3, 251, 0, 1)
    assert r.skipped == {"HASH_TMK": 1}
    bank = _bank_signals(store, "known")
    assert len(bank) == 251
    assert bank["te:HASH_PDQ:" + ups[0].indicator] == (("pdq", ups[0].indicator),)
    assert bank["te:HASH_MD5:" + "AB" * 16] == (("video_md5", "ab" * 16),)  # tagged video: video_md5
    ex = cfg.get(store, "te")
    assert ex.last_status == "ok" and json.loads(ex.checkpoint or "")["update_time"] == 1_700_000_302
    # a second fetch resumes at the checkpoint: only the records at its time come again, unchanged
    served = te_server.pages_served
    r = fetch(store, "te", sleep=_no_sleep)
    assert te_server.pages_served == served + 1 and r.added == 0 and r.removed == 0
    # the programme withdraws one, another gets a false-positive opinion, a third is new
    gone, fp = ups[3], ups[4]
    new = TeUpdate(id=1000, type="HASH_PDQ", indicator=_hex(rng), last_updated=1_700_000_400)
    te_server.updates += [
        TeUpdate(id=gone.id, type=gone.type, indicator=gone.indicator, last_updated=1_700_000_401, should_delete=True),
        TeUpdate(id=fp.id, type=fp.type, indicator=fp.indicator, last_updated=1_700_000_402, status="NON_MALICIOUS"),
        new]
    r = fetch(store, "te", sleep=_no_sleep)
    assert (r.added, r.removed) == (1, 2) and r.removed_reasons == {"deleted": 1, "negative": 1}
    bank = _bank_signals(store, "known")
    assert "te:HASH_PDQ:" + gone.indicator not in bank and "te:HASH_PDQ:" + fp.indicator not in bank
    assert "te:HASH_PDQ:" + new.indicator in bank and len(bank) == 250
    with store.connection("t") as conn:
        rows = conn.execute(sa.select(audit_log.c.detail).where(audit_log.c.action == "exchange.fetch")).scalars().all()
    assert len(rows) == 3 and json.loads(rows[-1])["removed"] == 2


def test_threatexchange_rate_limit_is_retried_from_the_checkpoint(store: Store, te_server: TeServer,
                                                                  te_env: None) -> None:
    te_server.updates = _te_updates(250, random.Random(1))
    te_server.faults = {1: "429", 2: "500"}
    _add_te(store, te_server)
    waits: list[float] = []
    r = fetch(store, "te", sleep=waits.append)
    assert r.retries == 2 and len(waits) == 2 and len(_bank_signals(store, "known")) == 250
    assert cfg.get(store, "te").last_counts["retries"] == 2  # type: ignore[index]


def test_rate_limit_that_never_ends_fails_cleanly(store: Store, te_server: TeServer, te_env: None) -> None:
    te_server.updates = _te_updates(250, random.Random(1))
    te_server.faults = {1: "429"}
    te_server.fault_once = False
    _add_te(store, te_server)
    with pytest.raises(ExchangeError, match=r"exchange 'te' \(threatexchange\): page 2 failed: .*429"):
        fetch(store, "te", sleep=_no_sleep, retries=2)
    assert len(_bank_signals(store, "known")) == 100  # the page before it, whole


@pytest.mark.parametrize("fault,reason", [("malformed", "Expecting value|JSON"), ("badrecord", "malformed answer"),
                                          ("400", "400 Client Error")])
def test_a_bad_page_is_refused_whole_and_named(store: Store, te_server: TeServer, te_env: None,
                                               fault: str, reason: str) -> None:
    ups = _te_updates(250, random.Random(3))
    te_server.updates = ups
    te_server.faults = {1: fault}
    _add_te(store, te_server)
    with pytest.raises(ExchangeError) as info:
        fetch(store, "te", sleep=_no_sleep)
    msg = str(info.value)
    assert "exchange 'te'" in msg and "page 2 failed" in msg and "nothing of that page was applied" in msg
    import re

    assert re.search(reason, msg), msg
    for secret in ("abcdefghijklmnopqrstuvwxyz", "1234567890|", "1234567890%7C"):
        assert secret not in msg
    ex = cfg.get(store, "te")
    assert ex.last_status == "error" and "abcdefghijklmnopqrstuvwxyz" not in (ex.last_error or "")
    with store.connection("t") as conn:
        details = conn.execute(sa.select(audit_log.c.detail)).scalars().all()
    assert all("abcdefghijklmnopqrstuvwxyz" not in d for d in details)
    # the bank holds exactly the first page; the checkpoint is that page's
    assert set(_bank_signals(store, "known")) == {f"te:HASH_PDQ:{u.indicator}" for u in ups[:100]}
    assert json.loads(ex.checkpoint or "")["update_time"] == ups[99].last_updated
    r = fetch(store, "te", sleep=_no_sleep)  # the fault is gone: resume, no duplicates
    assert r.status == "ok" and len(_bank_signals(store, "known")) == 250
    with store.connection("t") as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM signals")).scalar() == 250


def test_error_with_url_hides_the_token(store: Store, te_server: TeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ThreatExchange client puts the token in every URL; a refused token must not
    come back in the message that reports it."""
    monkeypatch.setenv(env_var("te"), "5555555555|thisisnotthetokentheserverwants")
    te_server.updates = _te_updates(5, random.Random(3))
    _add_te(store, te_server)
    with pytest.raises(ExchangeError) as info:
        fetch(store, "te", sleep=_no_sleep)
    msg = str(info.value)
    assert "400 Client Error" in msg and "access_token=***" in msg
    assert "thisisnotthetokentheserverwants" not in msg and "5555555555" not in msg


# ------------------------------------------------------------------------------- NCMEC
def _ncmec_entries(rng: random.Random, n: int, t0: int = 1_000_000) -> list[NcmecEntry]:
    """Ten entries a second: more than a page in the library's narrowest window (1 s), so
    it must page through <next>."""
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(NcmecEntry(f"v{i}", 42, t0 + i // 10, "video", {"md5": _hex(rng, 128), "sha1": _hex(rng, 160)}))
        else:
            out.append(NcmecEntry(f"i{i}", 42 + i % 2, t0 + i // 10, "image",
                                  {"md5": _hex(rng, 128), "pdq": _hex(rng), "pdna": "a1a1" * 10}))
    return out


@pytest.fixture
def ncmec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_var("nc"), "user:pw")


@pytest.fixture
def ncmec_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The library fetches up to its clock's now - 5 s: a clock the test sets."""
    import types

    from threatexchange.exchanges.impl import ncmec_api

    clock = [1_000_050.0]
    monkeypatch.setattr(ncmec_api, "time", types.SimpleNamespace(time=lambda: clock[0]))
    return clock


def test_ncmec_pages_types_deletions_and_resume(store: Store, ncmec_env: None, ncmec_clock: list[float]) -> None:
    rng = random.Random(11)
    entries = _ncmec_entries(rng, 30)
    with NcmecServer(entries, page_size=7) as srv:
        srv.faults = {2: "429"}  # the library's own retry answers it
        store.create_bank("ncmec")
        cfg.add(store, "nc", "ncmec", "ncmec", {"base_url": srv.base, "environment": "test_Industry"})
        r = fetch(store, "nc", sleep=_no_sleep)
        assert r.status == "ok" and r.added == 30 and r.invalid == 0
        assert r.skipped == {"image/pdna": 23, "video/sha1": 7}
        bank = _bank_signals(store, "ncmec")
        e0, v3 = entries[0], entries[3]
        assert bank["nc:42-i0"] == tuple(sorted([("md5", e0.fingerprints["md5"]), ("pdq", e0.fingerprints["pdq"])]))
        assert bank["nc:42-v3"] == (("video_md5", v3.fingerprints["md5"]),)
        assert any(m == "GET" and "start=" in p for m, p, *_ in srv.requests)  # paged through <next>
        meta = store.get_entry("ncmec", "nc:42-i0").meta  # type: ignore[union-attr]
        assert meta["member_id"] == 42 and meta["classification"] == "A1" and meta["entry_id"] == "i0"
        # later: one entry deleted, one changed (a new PDQ), one new
        t = 1_000_100
        srv.entries += [NcmecEntry("i0", 42, t, "image", deleted=True),
                        NcmecEntry("i1", 43, t + 1, "image", {"pdq": "f" * 64}),
                        NcmecEntry("i99", 42, t + 2, "image", {"md5": "0" * 31 + "1"})]
        ncmec_clock[0] = 1_000_200.0
        r = fetch(store, "nc", sleep=_no_sleep)
        assert (r.added, r.updated, r.removed) == (1, 1, 1)
        bank = _bank_signals(store, "ncmec")
        assert "nc:42-i0" not in bank and bank["nc:43-i1"] == (("pdq", "f" * 64),) and len(bank) == 30


def test_ncmec_only_selected_members(store: Store, ncmec_env: None) -> None:
    entries = _ncmec_entries(random.Random(2), 12)
    with NcmecServer(entries, page_size=50) as srv:
        store.create_bank("ncmec")
        cfg.add(store, "nc", "ncmec", "ncmec", {"base_url": srv.base, "only_esp_ids": [43]})
        fetch(store, "nc", sleep=_no_sleep)
        assert {c.split("-")[0] for c in _bank_signals(store, "ncmec")} == {"nc:43"}


def test_ncmec_malformed_xml_names_page_and_applies_nothing_of_it(store: Store, ncmec_env: None) -> None:
    entries = _ncmec_entries(random.Random(4), 20)
    with NcmecServer(entries, page_size=5) as srv:
        srv.faults = {3: "malformed"}
        srv.fault_once = False
        store.create_bank("ncmec")
        cfg.add(store, "nc", "ncmec", "ncmec", {"base_url": srv.base})
        with pytest.raises(ExchangeError, match=r"exchange 'nc' \(ncmec\): page \d+ failed") as info:
            fetch(store, "nc", sleep=_no_sleep)
        assert "pw" not in str(info.value).replace("page", "").replace("pages", "")
        assert len(_bank_signals(store, "ncmec")) < 20
        assert cfg.get(store, "nc").last_status == "error"
        srv.faults = {}
        fetch(store, "nc", sleep=_no_sleep)
        assert len(_bank_signals(store, "ncmec")) == 20


def test_ncmec_wrong_password_is_a_clear_error(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_var("nc"), "user:wrongpassword")
    with NcmecServer(_ncmec_entries(random.Random(4), 3)) as srv:
        store.create_bank("ncmec")
        cfg.add(store, "nc", "ncmec", "ncmec", {"base_url": srv.base})
        with pytest.raises(ExchangeError, match="401") as info:
            fetch(store, "nc", sleep=_no_sleep)
        assert "wrongpassword" not in str(info.value)


# -------------------------------------------------------------------------------- file
def test_file_exchange_end_to_end_through_the_cli(tmp_path: Path) -> None:
    rng = random.Random(5)
    db = str(tmp_path / "s.sqlite3")
    a, b, c = _hex(rng), _hex(rng), _hex(rng)
    f = tmp_path / "hashes.txt"
    f.write_text(f"pdq {a}\npdq {b}\nvideo_md5 {'1' * 32}\nurl https://example.org/x\npdq nothex\n")
    assert runner.invoke(app, ["--db", db, "--create", "bank", "create", "known"]).exit_code == 0
    res = runner.invoke(app, ["--db", db, "exchange", "add", "list1", "--type", "file", "--bank", "known",
                              "--path", str(f)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["--db", db, "exchange", "fetch", "list1"])
    assert res.exit_code == 0, res.output
    assert "3 added" in res.output and "1 invalid" in res.output and "1 url" in res.output
    res = runner.invoke(app, ["--db", db, "match", "--pdq", a, "--json"])
    assert json.loads(res.output)["matches"][0]["content_id"] == f"list1:pdq:{a}"
    f.write_text(f"pdq {a}\npdq {c}\n")  # b and the video md5 are gone from the list
    res = runner.invoke(app, ["--db", db, "exchange", "fetch", "list1", "--json"])
    got = json.loads(res.output)
    assert (got["added"], got["removed"], got["unchanged"]) == (1, 2, 1)
    assert json.loads(runner.invoke(app, ["--db", db, "match", "--pdq", b, "--json"]).output)["matches"] == []
    res = runner.invoke(app, ["--db", db, "exchange", "show", "list1"], env={"COLUMNS": "200"})
    assert "last fetch: ok" in res.output and "1 added" in res.output
    f.unlink()
    res = runner.invoke(app, ["--db", db, "exchange", "fetch", "list1"])
    assert res.exit_code == 1 and "is not a file" in res.output and "Traceback" not in res.output
    # the bank is as the last good fetch left it
    assert json.loads(runner.invoke(app, ["--db", db, "match", "--pdq", c, "--json"]).output)["matches"]


def test_fetch_without_credentials_says_how_to_give_them(store: Store, te_server: TeServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TX_ACCESS_TOKEN", raising=False)
    _add_te(store, te_server)
    with pytest.raises(ExchangeError, match="has no credentials.*ASSAY_EXCHANGE_TE_CREDENTIALS"):
        fetch(store, "te")
    assert cfg.get(store, "te").last_status == "error"


def test_one_fetcher_at_a_time(store: Store, te_server: TeServer, te_env: None) -> None:
    from datetime import timedelta

    _add_te(store, te_server)
    assert cfg.claim(store, "te", "otherhost:1:x", timedelta(minutes=5))
    with pytest.raises(ExchangeError, match="being fetched by otherhost"):
        fetch(store, "te")
    cfg.release(store, "te", "otherhost:1:x")
    assert fetch(store, "te", sleep=_no_sleep).status == "ok"


def test_vpdq_from_a_file_exchange_and_records_the_store_would_refuse(store: Store, tmp_path: Path,
                                                                     te_server: TeServer, te_env: None) -> None:
    from assay.media.video import VpdqFeature, to_threatexchange_json

    rng = random.Random(12)
    frames = [VpdqFeature(i, _hex(rng), 100, float(i)) for i in range(5)]
    f = tmp_path / "videos.txt"
    f.write_text(f"vpdq {to_threatexchange_json(frames)}\nvpdq [\"nonsense\"]\n")
    store.create_bank("known")
    cfg.add(store, "vids", "file", "known", {"path": str(f)})
    r = fetch(store, "vids")
    assert (r.added, r.invalid) == (1, 1)
    (entry,) = list(store.iter_entries("known"))
    assert sorted(entry.signals["vpdq"]) == sorted(fr.hex for fr in frames)
    assert entry.meta["vpdq"]["frames"] == 5  # type: ignore[index]
    # ThreatExchange: one record whose meta the store would refuse (tags of 100 kB) is
    # counted invalid; the rest of its page is applied
    ups = _te_updates(5, rng)
    ups[2].tags = [f"{i}" + "x" * 2000 for i in range(50)]
    te_server.updates = ups
    cfg.add(store, "te", "threatexchange", "known", {"privacy_group": te_server.privacy_group,
                                                      "base_url": te_server.base})
    r = fetch(store, "te", sleep=_no_sleep)
    assert (r.added, r.invalid, r.status) == (4, 1, "ok")


def test_debug_logs_of_a_fetch_carry_no_token(store: Store, te_server: TeServer, te_env: None,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """urllib3 logs every request line at DEBUG, and ThreatExchange's carry the token."""
    import logging

    te_server.updates = _te_updates(150, random.Random(2))
    te_server.faults = {1: "429"}
    _add_te(store, te_server)
    with caplog.at_level(logging.DEBUG):
        fetch(store, "te", sleep=_no_sleep)
    assert "threat_updates" in caplog.text  # the request lines were logged ...
    assert "abcdefghijklmnopqrstuvwxyz" not in caplog.text  # ... without the token


def test_stopncii_through_its_client(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from exchange_fakes import NciiRecord, StopNciiServer

    rng = random.Random(13)
    recs = [NciiRecord("ImagePDQ", _hex(rng), 1_700_000_000 + i) for i in range(5)]
    recs.append(NciiRecord("VideoTMK", "tmk", 1_700_000_010))
    recs.append(NciiRecord("VideoMD5", "AB" * 16, 1_700_000_011))
    with StopNciiServer(recs) as srv:
        store.create_bank("ncii")
        cfg.add(store, "ncii", "stopncii", "ncii", {"base_url": srv.base})
        monkeypatch.setenv(env_var("ncii"), "fnkey1234,wrongsubkey")
        with pytest.raises(ExchangeError, match="401") as info:
            fetch(store, "ncii", sleep=_no_sleep)
        assert "wrongsubkey" not in str(info.value) and "fnkey1234" not in str(info.value)
        monkeypatch.setenv(env_var("ncii"), "fnkey1234,subkey5678")
        r = fetch(store, "ncii", sleep=_no_sleep)
        # 7 records, 2 a page; the library itself drops TMK (no python-threatexchange type for it)
        assert (r.status, r.pages, r.added, r.records) == ("ok", 4, 6, 6)
        bank = _bank_signals(store, "ncii")
        assert bank[f"ncii:pdq:{recs[0].value}"] == (("pdq", recs[0].value),)
        assert bank["ncii:video_md5:" + "AB" * 16] == (("video_md5", "ab" * 16),)
        assert json.loads(cfg.get(store, "ncii").checkpoint or "")["update_time"] == 1_700_000_011


def test_tat_through_its_client(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from exchange_fakes import TatRecord, TatServer

    rng = random.Random(14)
    recs = [TatRecord(i + 1, "PDQ", _hex(rng), 1_704_085_200.0 + i) for i in range(4)]
    recs.append(TatRecord(5, "MD5", "cd" * 16, 1_704_085_210.0, file_type="mp4"))
    recs.append(TatRecord(6, "MD5", "ef" * 16, 1_704_085_211.0, file_type="jpg"))  # not a video: not banked
    with TatServer(recs) as srv:
        store.create_bank("tcap")
        cfg.add(store, "tcap", "tat", "tcap", {"base_url": srv.base})
        monkeypatch.setenv(env_var("tcap"), "tat:wrongpassword")
        with pytest.raises(ExchangeError, match="400") as info:
            fetch(store, "tcap", sleep=_no_sleep)
        assert "wrongpassword" not in str(info.value)
        monkeypatch.setenv(env_var("tcap"), "tat:tatpw")
        r = fetch(store, "tcap", sleep=_no_sleep)
        assert (r.status, r.added) == ("ok", 5)
        bank = _bank_signals(store, "tcap")
        assert bank[f"tcap:pdq:{recs[0].digest}"] == (("pdq", recs[0].digest),)
        assert bank["tcap:video_md5:" + "cd" * 16] == (("video_md5", "cd" * 16),)
        assert cfg.get(store, "tcap").checkpoint == json.dumps({"checkpoint": "1704085211.0,6"})
        # later the list withdraws one: a fetch from the checkpoint removes it
        srv.records.append(TatRecord(1, "PDQ", recs[0].digest, 1_704_085_300.0, deleted=True))
        r = fetch(store, "tcap", sleep=_no_sleep)
        assert (r.removed, r.added) == (1, 0) and f"tcap:pdq:{recs[0].digest}" not in _bank_signals(store, "tcap")
