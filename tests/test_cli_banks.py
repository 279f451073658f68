"""`assay bank set`, `bank rename` and `bank show` (issue 12, items 3 and 7), on the
library and through the command, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import lineage_eval as ev
import modelgen
from assay.banks.matcher import Matcher, Query
from assay.banks.store import UNSET, Store
from assay.cli import app
from assay.errors import BankExists, BankNotFound, InvalidBankInput

runner = CliRunner()
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "20def2ffb08bd7f8adc9d14cce39d7ee"


def _cli(db: str, *args: str, columns: int = 80) -> Any:
    res = runner.invoke(app, ["--db", db, *args], env={"COLUMNS": str(columns)})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    return res


def test_update_and_rename_a_bank(store: Store) -> None:
    store.create_bank("known", description="first", pdq_threshold=31)
    store.create_bank("other")
    store.add_entry("known", "c1", {"pdq": [PDQ], "md5": [MD5]})
    b = store.update_bank("known", description="case 41", pdq_threshold=10, enabled=False)
    assert (b.description, b.pdq_threshold, b.enabled) == ("case 41", 10, False)
    assert Matcher(store).lookup([Query("md5", MD5)]) == []  # disabled: not matched
    b = store.update_bank("known", pdq_threshold=None, enabled=True)
    assert (b.description, b.pdq_threshold, b.enabled) == ("case 41", None, True)
    assert store.update_bank("known", pdq_threshold=UNSET).pdq_threshold is None

    renamed = store.rename_bank("known", "known-2026")
    assert renamed.name == "known-2026" and renamed.id == b.id and renamed.description == "case 41"
    assert [x.name for x in store.list_banks()] == ["known-2026", "other"]
    assert [m.bank for m in Matcher(store).lookup([Query("md5", MD5)])] == ["known-2026"]
    assert store.stats("known-2026").entries == 1
    with pytest.raises(BankNotFound):
        store.get_bank("known")
    with pytest.raises(BankExists):
        store.rename_bank("known-2026", "other")
    with pytest.raises(InvalidBankInput):
        store.rename_bank("other", "")
    with pytest.raises(BankNotFound):
        store.rename_bank("nope", "x")
    assert [x.name for x in store.list_banks()] == ["known-2026", "other"]  # nothing changed


def test_bank_set_and_rename_commands(store_url: str) -> None:
    assert _cli(store_url, "bank", "create", "known", "--create").exit_code == 0
    res = _cli(store_url, "bank", "set", "known", "--threshold", "20", "--description", "case 41", "--disable")
    assert res.exit_code == 0 and res.stdout.strip() == "bank known: disabled, PDQ threshold 20, description: case 41"
    res = _cli(store_url, "bank", "set", "known", "--threshold", "default", "--enable", "--json")
    got = json.loads(res.stdout)
    assert got["pdq_threshold"] is None and got["enabled"] is True and got["description"] == "case 41"
    for bad in (["--threshold", "300"], ["--threshold", "x"], []):
        res = _cli(store_url, "bank", "set", "known", *bad)
        assert res.exit_code == 2, bad
    assert _cli(store_url, "bank", "rename", "known", "known-2026").stdout.strip() == \
        "renamed bank known to known-2026"
    res = _cli(store_url, "bank", "list", "--json")
    assert [b["name"] for b in json.loads(res.stdout)] == ["known-2026"]
    res = _cli(store_url, "bank", "rename", "known", "x")
    assert res.exit_code == 1 and "no bank named 'known'" in res.stderr


def test_bank_show_reads_as_text_and_lists_model_entries(tmp_path: Path) -> None:
    db = str(tmp_path / "b.sqlite3")
    assert _cli(db, "bank", "create", "known", "--create", "--description", "case\x1b[2J 41").exit_code == 0
    assert _cli(db, "bank", "add", "known", "--content-id", "c1", "--pdq", PDQ, "--md5", MD5).exit_code == 0
    specs = modelgen.sd15(1 / 16, dt="F32")
    arrays = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 3)
    f = modelgen.write_safetensors(tmp_path / "m.safetensors",
                                   {k: ("F32", v.shape) for k, v in arrays.items()}, values=arrays)
    assert _cli(db, "bank", "add-model", "known", str(f), "--id", "flagged-ckpt", "--role", "flagged").exit_code == 0
    res = _cli(db, "bank", "show", "known", columns=200)
    text = res.stdout
    assert res.exit_code == 0
    assert "('" not in text and "md5:(" not in text  # no Python tuples
    assert any(ln.split() == ["md5", MD5] for ln in text.splitlines())
    assert "\x1b" not in text and "case\\x1b[2J 41" in text  # shown, never executed
    narrow = _cli(db, "bank", "show", "known").stdout
    assert "…" not in narrow  # never cut short
    # one hash a line, whole even on a narrow terminal (a folded hash copied is a wrong hash)
    assert any(ln.split() == ["pdq", PDQ] for ln in narrow.splitlines()), narrow
    assert any(ln.split() == ["md5", MD5] for ln in narrow.splitlines()), narrow
    assert "2 entries" in text and "1 model entry" in text
    rows = [ln for ln in text.splitlines() if "flagged-ckpt" in ln]
    assert rows and "checkpoint" in rows[-1] and "flagged" in rows[-1]
    d = json.loads(_cli(db, "bank", "show", "known", "--json").stdout)
    assert d["model_entries"] == 1
    assert d["models_listed"][0]["content_id"] == "flagged-ckpt" and d["models_listed"][0]["kind"] == "checkpoint"
    assert d["entries_listed"][0]["signals"]["md5"] == [MD5]


def test_bank_show_names_an_image_entry_s_variant_hashes(tmp_path: Path) -> None:
    """``bank add --image`` banks crops and regions beside the image's own PDQ: bank show
    gave them all as plain "pdq" lines (dozens), as if each were the picture's hash."""
    from PIL import Image

    db = str(tmp_path / "b.sqlite3")
    rng = np.random.default_rng(7)
    grid = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)  # blocks: crops and regions have texture
    img = tmp_path / "known.png"
    Image.fromarray(grid).resize((480, 480), Image.NEAREST).save(img)
    assert _cli(db, "bank", "create", "known", "--create").exit_code == 0
    assert _cli(db, "bank", "add", "known", "--image", str(img), "--content-id", "pic").exit_code == 0
    entry = json.loads(_cli(db, "bank", "show", "known", "--json").stdout)["entries_listed"][0]
    assert len(entry["signals"]["pdq"]) > 1
    own = entry["signals"]["pdq"][0]
    res = _cli(db, "bank", "show", "known")
    lines = res.stdout.splitlines()
    pdq_lines = [ln for ln in lines if ln.split()[:1] == ["pdq"]]
    assert [ln.split() for ln in pdq_lines] == [["pdq", own]]  # the image's own hash alone
    n = len(entry["signals"]["pdq"]) - 1
    counted = [ln for ln in lines if "variant PDQ hash" in ln]
    assert len(counted) == 1 and f"+ {n} variant PDQ hash" in counted[0] and "--variants" in counted[0]
    res = _cli(db, "bank", "show", "known", "--variants")
    named = [ln.split() for ln in res.stdout.splitlines() if ln.split()[:1] == ["pdq"]]
    assert len(named) == n + 1 and named[0] == ["pdq", own]
    assert all(len(w) == 4 and w[2] == "(variant" and w[3].endswith(")") for w in named[1:]), named
    assert {w[1] for w in named} == set(entry["signals"]["pdq"])


def test_errors_name_the_command_options(tmp_path: Path) -> None:
    db = str(tmp_path / "b.sqlite3")
    assert _cli(db, "bank", "create", "k", "--create").exit_code == 0
    assert _cli(db, "bank", "add", "k", "--content-id", "c1", "--pdq", PDQ, "--md5", MD5).exit_code == 0
    res = _cli(db, "bank", "export", "k", "--format", "list")
    assert res.exit_code == 1 and "--type" in res.stderr and "signal_type" not in res.stderr
    specs = modelgen.sd15(1 / 16, dt="F32")
    arrays = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 5)
    f = modelgen.write_safetensors(tmp_path / "m.safetensors",
                                   {k: ("F32", v.shape) for k, v in arrays.items()}, values=arrays)
    assert _cli(db, "bank", "add-model", "k", str(f), "--id", "m").exit_code == 0
    res = _cli(db, "bank", "add-model", "k", str(f), "--id", "m")
    assert res.exit_code == 1 and "--replace" in res.stderr and "replace=True" not in res.stderr
    assert _cli(db, "bank", "add-model", "k", str(f), "--id", "m", "--replace").exit_code == 0
