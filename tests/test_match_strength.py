"""Hashes as evidence: degenerate AutoV1 values, the strength of every match, and
matches that name their query (issue 11 item 4, issue 12 item 4)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

import modelgen
from assay import signals
from assay.banks.matcher import Matcher, Query
from assay.banks.store import Store
from assay.cli import app
from assay.demo import pattern
from assay.errors import AssayError, InvalidSignal
from assay.models.hashes import AUTOV1_LENGTH, AUTOV1_OFFSET, compute_hashes, hash_signals
from assay.report.schema import SignalValue
from assay.report.terminal import matches_table

runner = CliRunner()
EMPTY = "e3b0c442"


def _run(db: Path, *args: str) -> tuple[int, str, str]:
    if not db.exists():  # a store named by --db must exist (or --create): make it on purpose
        Store(str(db), create=True).close()
    res = runner.invoke(app, ["--db", str(db), *args])
    if isinstance(res.exception, AssayError):
        return 1, str(res.exception), ""
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def _random_file(path: Path, n: int, seed: int) -> Path:
    path.write_bytes(random.Random(seed).randbytes(n))
    return path


def _render(table: object) -> str:
    c = Console(width=250, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    c.print(table)
    return c.export_text()


# -- degenerate AutoV1 ----------------------------------------------------------------------
@pytest.mark.parametrize("size, degenerate", [
    (100, "empty window"), (AUTOV1_OFFSET, "empty window"), (AUTOV1_OFFSET + 10, "partial window"),
    (AUTOV1_OFFSET + AUTOV1_LENGTH - 1, "partial window"), (AUTOV1_OFFSET + AUTOV1_LENGTH, None)])
def test_short_files_have_a_degenerate_autov1_that_is_not_a_signal(tmp_path: Path, size: int,
                                                                   degenerate: str | None) -> None:
    h = compute_hashes(_random_file(tmp_path / "m.bin", size, 3))
    types = {s.type for s in hash_signals(h)}
    if degenerate is None:
        assert h.autov1_degenerate is None and "autov1" in types
    else:
        assert degenerate in (h.autov1_degenerate or "") and "autov1" not in types
        assert "sha256" in types and "autov2" in types


def test_two_small_model_files_do_not_match_each_other(store: Store, tmp_path: Path) -> None:
    a = compute_hashes(_random_file(tmp_path / "a.bin", 5000, 1))
    b = compute_hashes(_random_file(tmp_path / "b.bin", 7000, 2))
    assert a.autov1 == b.autov1 == EMPTY  # what made them "match" before
    store.create_bank("models")
    store.add_entry("models", "a", {s.type: s.value for s in hash_signals(a)})
    assert Matcher(store, snapshots=False).match_signals(hash_signals(b)) == []
    # the file itself still matches itself, by exact hashes
    found = Matcher(store, snapshots=False).match_signals(hash_signals(a))
    assert {m.signal_type for m in found} >= {"sha256", "md5", "blake3"}
    assert "autov1" not in {m.signal_type for m in found}


def test_a_short_hash_the_files_own_full_hash_refutes_is_not_a_match(store: Store, tmp_path: Path) -> None:
    """AutoV1 hashes 64 KiB at offset 1 MiB: two fine-tunes of one base written with the
    same tensor layout hold the same frozen text encoder there, so a benign fine-tune had
    the AutoV1 of a banked flagged one and was a matched file ('short hash, can collide',
    as if by chance). The entry's SHA-256 says it is another file: no match. An entry
    banked with the short hash alone, and a hash an image's metadata names, still match."""
    specs = {"cond_stage_model.token_embedding.weight": ("F16", (1024, 640)),
             "model.diffusion_model.out.weight": ("F16", (128, 128))}
    frozen = np.random.default_rng(1).standard_normal((1024, 640)).astype(np.float16)
    flagged = tmp_path / "flagged.safetensors"
    benign = tmp_path / "case" / "benign.safetensors"
    benign.parent.mkdir()
    for path, seed in ((flagged, 2), (benign, 3)):
        tuned = np.random.default_rng(seed).standard_normal((128, 128)).astype(np.float16)
        modelgen.write_safetensors(path, specs, values={"cond_stage_model.token_embedding.weight": frozen,
                                                        "model.diffusion_model.out.weight": tuned})
    a, b = compute_hashes(flagged), compute_hashes(benign)
    assert a.autov1 == b.autov1 and a.sha256 != b.sha256
    store.create_bank("models")
    store.add_entry("models", "flagged", {s.type: s.value for s in hash_signals(a)})
    m = Matcher(store, snapshots=False)
    assert m.match_signals(hash_signals(b)) == []
    assert {x.signal_type for x in m.match_signals(hash_signals(a))} >= {"sha256", "autov1"}
    # the scan (local engine) and `assay model` (the one-file reader) say the same
    db = tmp_path / "b.sqlite3"
    s2 = Store(str(db), create=True)
    s2.create_bank("models")
    s2.add_entry("models", "flagged", {s.type: s.value for s in hash_signals(a)})
    s2.add_entry("models", "autov1-only", {"autov1": a.autov1})
    s2.close()
    code, out, _ = _run(db, "scan", str(benign.parent), "--json", "--workers", "1")
    (rec,) = [r for r in map(json.loads, out.splitlines()) if r.get("path")]
    assert [(x["content_id"], x["signal_type"]) for x in rec["matches"]] == [("autov1-only", "autov1")]
    code, out, _ = _run(db, "model", str(benign), "--json")
    assert [(x["content_id"], x["signal_type"]) for x in json.loads(out)["matches"]] == [("autov1-only", "autov1")]
    named = m.match_signals([SignalValue(type="sha256", value="ab" * 32),
                             SignalValue(type="autov1", value=a.autov1, mode="named-by-metadata")])
    assert [(x.signal_type, x.strength) for x in named] == [("autov1", "named-by-metadata")]


def test_the_empty_window_value_is_never_banked_nor_matched(store: Store, tmp_path: Path) -> None:
    store.create_bank("b")
    with pytest.raises(InvalidSignal, match="empty window"):
        store.add_entry("b", "x", {"autov1": EMPTY})
    res = store.add_entry("b", "y", {"autov1": EMPTY, "sha256": "ab" * 32})
    assert res.added_signals == 1 and res.degenerate == 1
    assert store.get_entry("b", "y").signals == {"sha256": ("ab" * 32,)}
    lst = tmp_path / "autov1.txt"
    lst.write_text(f"{EMPTY}\n12345678\n")
    from assay.banks.formats import parse_file

    res = store.import_records("b", parse_file(lst, signal_type="autov1"), source=str(lst))
    assert (res.added_signals, res.degenerate, res.total) == (1, 1, 2)
    assert store.stats("b").signals == {"autov1": 1, "sha256": 1}
    # A store written before this rule may hold it: it is still never matched.
    with store.transaction("test") as conn:
        eid = conn.execute(sa.text("SELECT id FROM entries WHERE content_id = 'y'")).scalar()
        conn.execute(sa.text("INSERT INTO signals (entry_id, bank_id, signal_type, value) "
                             "SELECT id, bank_id, 'autov1', :v FROM entries WHERE id = :e"), {"v": EMPTY, "e": eid})
    m = Matcher(store, snapshots=False)
    assert m.size().get("autov1") == 2
    assert m.lookup([Query("autov1", EMPTY)]) == []
    assert [x.content_id for x in m.lookup([Query("autov1", "12345678")])] == ["12345678"]


def test_cli_import_warns_about_degenerate_values(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    lst = tmp_path / "l.txt"
    lst.write_text(f"{EMPTY}\n")
    code, out, err = _run(db, "bank", "import", "m", str(lst), "--type", "autov1", "--create", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["added_signals"] == 0 and d["degenerate"] == 1 and "empty window" in d["warnings"][0]
    assert "warning" in err and "e3b0c442" in err
    code, out, err = _run(db, "bank", "add", "m", "--content-id", "x", "--signal", f"autov1:{EMPTY}")
    msg = out + err
    assert code == 2 and "empty window" in msg and "refused" in msg  # a bad option value


def test_an_empty_file_never_matches_the_hash_of_no_bytes(tmp_path: Path) -> None:
    """Hash sets carry the MD5/SHA-1/SHA-256 of an empty file by mistake; banked, every
    empty file of a scan (lock files, placeholders, a zero-length carved member) was an
    exact match of a flagged bank. Those values are now degenerate: never looked up
    (a bank that holds them from before matches nothing), never imported (warned)."""
    db = tmp_path / "s.sqlite3"
    store = Store(str(db), create=True)
    store.create_bank("hashes")
    empties = [("md5", "d41d8cd98f00b204e9800998ecf8427e"), ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
               ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    for i, (typ, _) in enumerate(empties):
        store.add_entry("hashes", f"e{i}", {typ: f"{i + 1:x}" * signals.get(typ).hex_len})
    with store.transaction("test") as conn:  # a store written before this rule holds them
        for i, (typ, value) in enumerate(empties):
            eid = conn.execute(sa.text("SELECT id FROM entries WHERE content_id = :c"), {"c": f"e{i}"}).scalar()
            conn.execute(sa.text("INSERT INTO signals (entry_id, bank_id, signal_type, value) "
                                 "SELECT id, bank_id, :t, :v FROM entries WHERE id = :e"), {"t": typ, "v": value, "e": eid})
    store.close()
    case = tmp_path / "case"
    case.mkdir()
    (case / "empty.jpg").write_bytes(b"")
    (case / "empty.txt").write_bytes(b"")
    code, out, _ = _run(db, "scan", str(case), "--json", "--workers", "1")
    recs = [r for r in map(json.loads, out.splitlines()) if r.get("path")]
    assert len(recs) == 2 and all(r["matches"] == [] for r in recs)
    code, out, err = _run(db, "match", "--md5", "d41d8cd98f00b204e9800998ecf8427e")
    assert "degenerate md5 value: the hash of no bytes" in out + err
    lst = tmp_path / "l.txt"
    lst.write_text("d41d8cd98f00b204e9800998ecf8427e\n" + "ab" * 16 + "\n")
    code, out, err = _run(db, "bank", "import", "hashes", str(lst), "--type", "md5", "--json")
    d = json.loads(out)
    assert code == 0 and d["added_signals"] == 1 and d["degenerate"] == 1 and "empty file" in d["warnings"][0]


def test_model_report_says_autov1_is_degenerate(tmp_path: Path) -> None:
    from assay.report.model import ModelReport, explain_model

    h = compute_hashes(_random_file(tmp_path / "m.bin", 4000, 1))
    text = explain_model(ModelReport(format="pickle", hashes=h), "m.bin")
    assert f"AutoV1  {EMPTY}  (degenerate, never matched" in text


# -- strength ------------------------------------------------------------------------------
def test_every_match_carries_its_strength(store: Store) -> None:
    vals = {"sha256": "11" * 32, "md5": "22" * 16, "sha1": "33" * 20, "blake3": "44" * 32,
            "autov1": "55" * 4, "autov2": "66" * 5, "autov3": "77" * 6, "crc32": "88" * 4, "pdq": "99" * 32}
    store.create_bank("b")
    store.add_entry("b", "e", vals)
    m = Matcher(store, snapshots=False)
    found = m.match_signals([SignalValue(type=t, value=v) for t, v in vals.items()])
    got = {x.signal_type: x.strength for x in found}
    assert got == {"sha256": "exact", "md5": "exact", "sha1": "exact", "blake3": "exact",
                   "autov1": "short-hash", "autov2": "short-hash", "autov3": "short-hash",
                   "crc32": "short-hash", "pdq": "perceptual"}
    named = m.match_signals([SignalValue(type="autov2", value=vals["autov2"], mode="named-by-metadata")])
    assert [x.strength for x in named] == ["named-by-metadata"]
    assert all(d["strength"] for d in (x.model_dump(mode="json") for x in found))


def test_short_hash_only_reads_as_weak_in_text(store: Store) -> None:
    store.create_bank("b")
    store.add_entry("b", "e", {"autov2": "66" * 5, "sha256": "11" * 32})
    m = Matcher(store, snapshots=False)
    weak = _render(matches_table(m.lookup([Query("autov2", "66" * 5)])))
    assert "weak: short hash, can collide" in weak and "only short hashes matched" in weak
    both = _render(matches_table(m.lookup([Query("autov2", "66" * 5), Query("sha256", "11" * 32)])))
    assert "exact" in both and "only short hashes matched" not in both


# -- matches name their query --------------------------------------------------------------
@pytest.fixture
def flat_png(tmp_path: Path) -> Path:
    p = tmp_path / "flat.png"
    Image.new("L", (64, 64), 128).save(p)  # PDQ quality 0
    return p


def test_match_names_the_query_of_each_match(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    _run(db, "bank", "create", "b")
    _run(db, "bank", "add", "b", "--content-id", "second", "--md5", "ab" * 16)
    code, out, _ = _run(db, "match", "--md5", "cd" * 16, "--md5", "ab" * 16, "--json")
    assert code == 0
    d = json.loads(out)
    (m,) = d["matches"]
    assert m["query"] == 1 and d["queries"][m["query"]]["value"] == "ab" * 16 and m["strength"] == "exact"
    code, out, _ = _run(db, "match", "--md5", "cd" * 16, "--md5", "ab" * 16)
    assert f"query #1 md5:{'cd' * 16}: no match in any enabled bank" in out
    assert f"query #2 md5:{'ab' * 16}: 1 match" in out
    assert out.index("query #2") < out.index("second")  # its match is listed under it


def test_a_low_quality_query_says_it_was_not_looked_up(tmp_path: Path, flat_png: Path) -> None:
    db = tmp_path / "s.sqlite3"
    _run(db, "bank", "create", "b")
    code, out, _ = _run(db, "match", "--image", str(flat_png), "--json")
    assert code == 0
    qs = json.loads(out)["queries"]
    pdq = next(q for q in qs if q["signal_type"] == "pdq")
    assert pdq["skipped"].startswith("low quality (0 < 50)") and pdq["image"] == str(flat_png)
    assert all("skipped" not in q for q in qs if q["signal_type"] != "pdq")
    code, out, _ = _run(db, "match", "--image", str(flat_png))
    assert f"query #1 pdq:{pdq['value']} of {flat_png}: not looked up: low quality (0 < 50)" in out
    assert "query #2 md5:" in out and "no match in any enabled bank" in out
    code, out, _ = _run(db, "match", "--image", str(flat_png), "--include-low-quality", "--json")
    assert all("skipped" not in q for q in json.loads(out)["queries"])


def test_bank_add_warns_about_a_low_quality_pdq(tmp_path: Path, flat_png: Path) -> None:
    db = tmp_path / "s.sqlite3"
    _run(db, "bank", "create", "b")
    code, out, err = _run(db, "bank", "add", "b", "--content-id", "flat", "--image", str(flat_png), "--json")
    assert code == 0
    assert "PDQ quality 0 < 50" in json.loads(out)["warnings"][0]
    assert "warning" in err and "PDQ quality 0 < 50" in err
    good = tmp_path / "good.png"
    pattern("rings", seed=1).save(good)
    code, out, err = _run(db, "bank", "add", "b", "--content-id", "good", "--image", str(good), "--json")
    assert json.loads(out)["warnings"] == [] and "warning" not in err


def test_sha1_is_a_signal_type() -> None:
    st = signals.get("SHA-1")
    assert st.name == "sha1" and st.hex_len == 40 and st.strength == "exact"
    assert st.normalize("0X" + "AB" * 20) == "ab" * 20
    with pytest.raises(InvalidSignal):
        st.normalize("ab" * 16)
