"""Lineage of a model padded with tensors it does not use: a copy of a flagged model with
one extra tensor of huge values loads and runs as before (loaders pass over a key they do
not know), but that tensor's norm drowned the bank's pre-selection summary, so the entry
was never compared: "no lineage evidence". Random-weight Llama-layout models (tests/modelgen)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelgen
from assay.banks.fingerprints import FingerprintStore, query
from assay.banks.store import Store
from test_lineage_renamed import fp, model


def pad(a: dict[str, np.ndarray], seed: int, names: tuple[str, ...] = ("zz.pad.weight",),
        scale: float = 1000.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {**a, **{n: (scale * rng.standard_normal((300, 300))).astype(np.float32) for n in names}}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> FingerprintStore:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('pad') / 'b.sqlite3'}")
    store.create_bank("flagged")
    fs = FingerprintStore(store)
    for i in range(1, 9):  # more entries than the candidate limit: the pre-selection matters
        fs.add("flagged", f"m{i}", fp(model(i)), kind="checkpoint")
    return fs


@pytest.mark.parametrize("names", [("zz.pad.weight",), ("aa.pad",),
                                   ("model.layers.0.mlp.pad_proj.weight", "model.layers.1.self_attn.x.weight",
                                    "lm_head.extra.weight")])
def test_a_copy_padded_with_huge_tensors_is_the_same_weights(bank: FingerprintStore, names: tuple[str, ...]) -> None:
    suspect = fp(pad(model(5), 3, names))
    assert len(suspect.scale_outliers()) == len(names)
    rep = query(bank, suspect, limit=3)
    assert [s.entry for s in rep.same] == ["flagged/m5"], rep.explanations()
    assert "the suspect also holds" in rep.same[0].explanation


def test_a_padded_stranger_is_nothing_and_real_models_have_no_outliers(bank: FingerprintStore) -> None:
    for seed in (20, 21, 22):
        assert fp(model(seed)).scale_outliers() == frozenset()
        rep = query(bank, fp(pad(model(seed), seed)), limit=3)
        assert not rep.same and not rep.derived and not rep.merges, rep.explanations()


def test_cli_model_names_a_padded_copy(tmp_path: Path) -> None:
    db = str(tmp_path / "b.sqlite3")
    a = model(1)
    flagged = modelgen.write_safetensors(tmp_path / "flagged.safetensors",
                                         {k: ("F32", v.shape) for k, v in a.items()}, values=a)
    s = pad(a, 4)
    suspect = modelgen.write_safetensors(tmp_path / "innocent.safetensors",
                                         {k: ("F32", v.shape) for k, v in s.items()}, values=s)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "assay", "--db", db, *args],
                              capture_output=True, text=True, timeout=120)

    assert run("bank", "create", "models", "--create").returncode == 0
    for i in range(2, 9):  # unrelated entries first: the pre-selection has to choose
        b = model(i)
        path = modelgen.write_safetensors(tmp_path / f"m{i}.safetensors",
                                          {k: ("F32", v.shape) for k, v in b.items()}, values=b)
        assert run("bank", "add-model", "models", str(path), "--id", f"m{i}").returncode == 0
    assert run("bank", "add-model", "models", str(flagged), "--id", "bad").returncode == 0
    r = run("model", str(suspect))
    assert r.stderr == "" and "same weights as checkpoint models/bad" in r.stdout, r.stdout
    assert "the suspect also holds" in r.stdout


def _extend_vocab(a: dict[str, np.ndarray], rows: int, seed: int) -> dict[str, np.ndarray]:
    """New tokens: rows added to the embeddings and the output head (as resize_token_embeddings does)."""
    rng = np.random.default_rng(seed)
    out = dict(a)
    for name, v in a.items():
        if v.ndim == 2 and v.shape[0] == 128 and ("embed" in name or "head" in name):  # LLAMA vocab 128
            out[name] = np.concatenate([v, (rng.standard_normal((rows, v.shape[1])) * v.std()).astype(np.float32)])
    assert out.keys() == a.keys() and any(out[n].shape != a[n].shape for n in a)
    return out


def test_a_copy_with_its_vocabulary_extended_is_the_same_weights_in_its_layers(bank: FingerprintStore) -> None:
    """Every layer the entry's to the bit, the embeddings and head resized: the copy is
    said (with what was not compared), not 'close to it, not reported as derived'."""
    from test_lineage_renamed import fine_tune

    rep = query(bank, fp(_extend_vocab(model(5), 16, 1)), limit=3)
    assert [s.entry for s in rep.same] == ["flagged/m5"], rep.explanations()
    assert "another shape in the suspect and were not compared" in rep.same[0].explanation
    assert "144x64 in the suspect, 128x64 in the entry" in rep.same[0].explanation
    # trained further after the resize: not the same weights
    rep = query(bank, fp(_extend_vocab(fine_tune(model(5), 0.05, 9), 16, 1)), limit=3)
    assert not rep.same, rep.explanations()
    # a stranger resized alike is nothing
    rep = query(bank, fp(_extend_vocab(model(30), 16, 1)), limit=3)
    assert not rep.same and not rep.derived, rep.explanations()


def test_banking_a_checkpoint_without_its_base_says_what_that_costs(tmp_path: Path) -> None:
    """`bank add-model --kind checkpoint` says when no banked base is the checkpoint's base
    (its fine-tunes would read as related, not as matches), and not once the base is in."""
    from test_lineage_renamed import fine_tune

    db = str(tmp_path / "b.sqlite3")
    base = model(40)
    flagged = fine_tune(base, 0.05, 41)
    paths = {n: _write_model(tmp_path / f"{n}.safetensors", a) for n, a in
             (("base", base), ("flagged", flagged), ("other", model(42)))}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "assay", "--db", db, *args],
                              capture_output=True, text=True, timeout=120)

    assert run("bank", "create", "models", "--create").returncode == 0
    r = run("bank", "add-model", "models", str(paths["flagged"]), "--id", "bad")
    assert r.returncode == 0 and "note: no banked base is this checkpoint's base" in r.stdout, r.stdout
    assert run("bank", "add-model", "models", str(paths["other"]), "--id", "unrelated-base", "--kind", "base"
               ).returncode == 0
    r = run("bank", "add-model", "models", str(paths["flagged"]), "--id", "bad", "--replace", "--json")
    assert json.loads(r.stdout)["base_banked"] is False  # an unrelated base is not its base
    assert run("bank", "add-model", "models", str(paths["base"]), "--id", "b", "--kind", "base").returncode == 0
    r = run("bank", "add-model", "models", str(paths["flagged"]), "--id", "bad", "--replace")
    assert r.returncode == 0 and "note:" not in r.stdout, r.stdout
    r = run("bank", "add-model", "models", str(paths["base"]), "--id", "b2", "--kind", "base", "--json")
    assert "base_banked" not in json.loads(r.stdout)  # said of checkpoints only


def _write_model(path: Path, a: dict[str, np.ndarray]) -> Path:
    return modelgen.write_safetensors(path, {k: ("F32", v.shape) for k, v in a.items()}, values=a)
