"""Lineage of a model padded with tensors it does not use: a copy of a flagged model with
one extra tensor of huge values loads and runs as before (loaders pass over a key they do
not know), but that tensor's norm drowned the bank's pre-selection summary, so the entry
was never compared: "no lineage evidence". Random-weight Llama-layout models (tests/modelgen)."""

from __future__ import annotations

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
