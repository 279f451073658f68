"""`bank export` then `bank import` keeps everything (issue 12 item 6): entries with
their notes, meta, source, time added and enabled flag, every signal, the bank's kind,
description and threshold, and its model fingerprints; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assay.banks.fingerprints import FingerprintStore
from assay.banks.store import ImportRecord, Store
from assay.cli import app
from assay.errors import AssayError
from assay.models.fingerprint import fingerprint_arrays

runner = CliRunner()
H = {"pdq": "f" * 64, "md5": "1" * 32, "sha1": "2" * 40, "sha256": "3" * 64, "autov2": "abcdef0123"}


def _cli(url: str, *args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["--db", url, *args])
    if isinstance(res.exception, AssayError):
        return 1, str(res.exception)
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout + res.stderr


def _fingerprint(seed: int):  # noqa: ANN202
    conv = np.random.default_rng(seed).standard_normal((32, 24, 3, 3), dtype=np.float32)
    return fingerprint_arrays({"model.diffusion_model.input_blocks.1.0.in_layers.2.weight": conv})


def _snapshot(store: Store, bank: str) -> dict:
    b = store.get_bank(bank)
    entries = [(e.content_id, e.note, e.source, e.added_at, e.meta, e.enabled, e.signals)
               for e in store.iter_entries(bank)]
    fs = FingerprintStore(store)
    fps = [(r.content_id, r.kind, r.role, r.note, r.k, r.created_at, r.size,
            fs.get(bank, r.content_id).fingerprint.to_bytes()) for r in sorted(fs.list(bank), key=lambda r: r.content_id)]
    return {"bank": (b.kind, b.description, b.pdq_threshold, b.enabled), "entries": entries, "fingerprints": fps}


@pytest.mark.parametrize("kind", ["flagged", "known-good"])
def test_export_then_import_keeps_everything(store_url: str, tmp_path: Path, kind: str) -> None:
    with Store(store_url) as s:
        s.create_bank("src", description="case 17 material", pdq_threshold=20, kind=kind)
        s.import_records("src", [
            ImportRecord("img-1", (("pdq", H["pdq"]), ("md5", H["md5"]), ("sha1", H["sha1"])), "first\nnote",
                         {"case": 17, "tags": ["a", "b"], "source": "inside meta stays in meta"}),
            ImportRecord("model-1", (("sha256", H["sha256"]), ("autov2", H["autov2"]))),
        ], source="intake-2026-01.csv")
        s.add_entry("src", "later", {"md5": "4" * 32}, note="added by hand", source="cli")
        s.set_entry_enabled("src", "later", False)
        fs = FingerprintStore(s)
        fs.add("src", "model-1", _fingerprint(1), kind="checkpoint", role="flagged: test", note="fp note")
        fs.add("src", "base-1", _fingerprint(2), kind="base")
        before = _snapshot(s, "src")

    out = tmp_path / "src.jsonl"
    assert _cli(store_url, "bank", "export", "src", "-o", str(out))[0] == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0] == {"assay_bank": {"name": "src", "kind": kind, "description": "case 17 material",
                                       "pdq_threshold": 20}}
    assert sum("fingerprint" in x for x in lines) == 2

    code, text = _cli(store_url, "bank", "import", "dst", str(out), "--create", "--json")
    assert code == 0, text
    res = json.loads(text.splitlines()[0])
    assert (res["added_entries"], res["fingerprints"], res["kind"]) == (3, 2, kind)
    with Store(store_url) as s:
        after = _snapshot(s, "dst")
        assert s.get_entry("dst", "img-1").meta["source"] == "inside meta stays in meta"
    assert after == before

    # again: nothing new, nothing changed
    code, text = _cli(store_url, "bank", "import", "dst", str(out), "--json")
    res = json.loads(text.splitlines()[0])
    assert code == 0 and res["added_entries"] == 0 and res["added_signals"] == 0
    with Store(store_url) as s:
        assert _snapshot(s, "dst") == before


def test_an_export_is_not_imported_into_a_bank_of_the_other_kind(store_url: str, tmp_path: Path) -> None:
    with Store(store_url) as s:
        s.create_bank("kg", kind="known-good")
        s.add_entry("kg", "os-file", {"sha1": "5" * 40})
        s.create_bank("flags")
    out = tmp_path / "kg.jsonl"
    _cli(store_url, "bank", "export", "kg", "-o", str(out))
    code, text = _cli(store_url, "bank", "import", "flags", str(out))
    assert code == 1 and "known-good" in text and "not imported" in text
    with Store(store_url) as s:
        assert s.stats("flags").entries == 0


def test_a_corrupt_fingerprint_line_rejects_the_whole_import(store_url: str, tmp_path: Path) -> None:
    with Store(store_url) as s:
        s.create_bank("src")
        s.add_entry("src", "m", {"md5": "6" * 32})
        FingerprintStore(s).add("src", "m", _fingerprint(3))
    out = tmp_path / "src.jsonl"
    _cli(store_url, "bank", "export", "src", "-o", str(out))
    lines = out.read_text().splitlines()
    fp = json.loads(lines[-1])
    fp["fingerprint"]["data"] = "QUFBQUFBQUFBQUFBQUFBQQ=="  # base64 of bytes that are no fingerprint
    out.write_text("\n".join([*lines[:-1], json.dumps(fp)]) + "\n")
    code, text = _cli(store_url, "bank", "import", "dst", str(out), "--create")
    assert code == 1 and f"line {len(lines)}" in text and "not an assay fingerprint" in text
    with Store(store_url) as s:
        assert s.stats("dst").entries == 0 and FingerprintStore(s).list("dst") == []


def test_csv_export_warns_that_fingerprints_are_left_out(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    with Store(url) as s:
        s.create_bank("src")
        s.add_entry("src", "m", {"md5": "6" * 32})
        FingerprintStore(s).add("src", "m", _fingerprint(3))
    code, text = _cli(url, "bank", "export", "src", "--format", "csv", "-o", str(tmp_path / "x.csv"))
    assert code == 0 and "1 model fingerprint(s)" in text and "jsonl" in text


def test_timestamps_survive_as_instants(store_url: str, tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps({"content_id": "x", "signals": {"md5": "7" * 32}, "source": "old system",
                             "added_at": "2020-05-06T07:08:09.123456+02:00"}) + "\n")
    with Store(store_url) as s:
        s.create_bank("b")
    assert _cli(store_url, "bank", "import", "b", str(p))[0] == 0
    with Store(store_url) as s:
        e = s.get_entry("b", "x")
    assert e.source == "old system"
    assert e.added_at.isoformat() == datetime.fromisoformat("2020-05-06T05:08:09.123456+00:00").isoformat()
