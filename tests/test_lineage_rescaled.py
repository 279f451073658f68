"""Lineage of a model rewritten by rescalings that keep its function: attention's query
times c and key times 1/c, a gated MLP's up-projection units times c_i and the down
projection's inputs times 1/c_i, an RMSNorm's weights times c_j absorbed by the input
columns of the layers reading it. Each moved every such tensor far from the entry's and
the copy read "close to the entry ... not reported as derived". Random-weight
Llama-layout models (tests/modelgen)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelgen
from assay.models.alignment import open_suspect
from assay.models.fingerprint import fingerprint_file
from assay.models.lineage import BankModel, answer
from test_lineage_renamed import fine_tune, fp, model


def qk(a: dict[str, np.ndarray], c: float) -> dict[str, np.ndarray]:
    return {k: v * c if "q_proj" in k else v / c if "k_proj" in k else v for k, v in a.items()}


def up_down(a: dict[str, np.ndarray], seed: int, spread: float = 3.0) -> dict[str, np.ndarray]:
    rng, out = np.random.default_rng(seed), dict(a)
    for k in a:
        if "up_proj" in k:
            c = np.exp(rng.uniform(-spread, spread, (a[k].shape[0], 1))).astype(np.float32)
            out[k] = a[k] * c
            down = k.replace("up_proj", "down_proj")
            out[down] = a[down] / c.T
    return out


def norm_absorbed(a: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng, out = np.random.default_rng(seed), dict(a)
    for k in a:
        if "input_layernorm" in k:
            c = np.exp(rng.uniform(-2, 2, a[k].shape)).astype(np.float32)
            out[k] = a[k] * c
            for p in ("q_proj", "k_proj", "v_proj"):
                kk = k.replace("input_layernorm", "self_attn." + p)
                out[kk] = a[kk] / c[None, :]
    return out


def _write(path: Path, a: dict[str, np.ndarray]) -> Path:
    return modelgen.write_safetensors(path, {k: ("F32", v.shape) for k, v in a.items()}, values=a)


@pytest.fixture(scope="module")
def bank() -> list[BankModel]:
    return [BankModel("flagged", "A", "checkpoint", fp(model(1))), BankModel("flagged", "B", "checkpoint", fp(model(2)))]


def _answer(tmp: Path, a: dict[str, np.ndarray], bank: list[BankModel]):  # noqa: ANN202
    path = _write(tmp / "suspect.safetensors", a)
    with open_suspect(path) as tensors:
        return answer(fingerprint_file(path), bank, tensors)


@pytest.mark.parametrize("c", [10.0, 0.01])
def test_query_and_key_scaled_against_each_other_are_the_same_weights(bank: list[BankModel], c: float) -> None:
    rep = answer(fp(qk(model(1), c)), bank)  # fingerprints alone suffice: one factor a tensor
    assert [s.entry for s in rep.same] == ["flagged/A"], rep.explanations()
    assert "up to a constant factor on 6 tensors" in rep.same[0].explanation and not rep.derived


@pytest.mark.parametrize("rewrite", ["up-down", "norm-absorbed", "both"])
def test_units_rescaled_against_the_layer_reading_them_are_the_same_weights(
        bank: list[BankModel], tmp_path: Path, rewrite: str) -> None:
    a = model(1)
    s = {"up-down": up_down(a, 3), "norm-absorbed": norm_absorbed(a, 4), "both": norm_absorbed(up_down(a, 5), 6)}[rewrite]
    rep = _answer(tmp_path, s, bank)
    assert [f.entry for f in rep.same] == ["flagged/A"], rep.explanations()
    assert "rescaled by positive factors" in rep.same[0].explanation
    assert rep.low_rank is None and not rep.derived and not rep.merges, rep.explanations()


def test_a_rescaled_fine_tune_is_not_the_same_and_a_rescaled_stranger_is_nothing(
        bank: list[BankModel], tmp_path: Path) -> None:
    rep = _answer(tmp_path, up_down(fine_tune(model(1), 0.05, 8), 3), bank)
    assert not rep.same, rep.explanations()
    rep = answer(fp(fine_tune(qk(model(1), 10.0), 0.05, 8)), bank)
    assert not rep.same, rep.explanations()
    for seed in (30, 31):
        stranger = model(seed)
        for s in (qk(stranger, 10.0), up_down(stranger, seed), norm_absorbed(stranger, seed)):
            rep = _answer(tmp_path, s, bank)
            assert not rep.same and not rep.derived and not rep.merges, rep.explanations()


def test_cli_model_names_a_rescaled_copy(tmp_path: Path) -> None:
    db = str(tmp_path / "b.sqlite3")
    flagged = _write(tmp_path / "flagged.safetensors", model(1))
    suspect = _write(tmp_path / "innocent.safetensors", norm_absorbed(up_down(model(1), 5), 6))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "assay", "--db", db, *args],
                              capture_output=True, text=True, timeout=120)

    assert run("bank", "create", "models", "--create").returncode == 0
    assert run("bank", "add-model", "models", str(flagged), "--id", "bad").returncode == 0
    r = run("model", str(suspect))
    assert r.stderr == "" and "same weights as checkpoint models/bad up to a rescaling of units" in r.stdout, r.stdout


def test_a_fine_tune_of_a_rescaled_copy_says_rescaled_not_permuted(bank: list[BankModel], tmp_path: Path) -> None:
    rep = _answer(tmp_path, up_down(fine_tune(model(1), 0.02, 5), 3), bank)  # trained further, then rescaled
    found = [f.explanation for f in (*rep.derived, *rep.related) if f.entry == "flagged/A"]
    assert found and all("rescaled copy" in x and "permut" not in x.split(":")[0] for x in found), rep.explanations()


def test_value_units_rescaled_against_a_grouped_query_output_projection_are_the_same_weights(
        bank: list[BankModel], tmp_path: Path) -> None:
    """Grouped-query attention (2 key/value heads of 16 units serving 4 query heads): the
    value projection's rows times c, the output projection's columns times 1/c wherever
    that value unit is read (twice); missed when only an equal-sized axis was tried."""
    a, s = model(1), dict(model(1))
    rng = np.random.default_rng(3)
    for k in a:
        if "v_proj" in k:
            c = np.exp(rng.uniform(-2, 2, a[k].shape[0])).astype(np.float32)  # 32 value units
            s[k] = a[k] * c[:, None]
            o = k.replace("v_proj", "o_proj")  # 64 columns: query heads 2g, 2g+1 read value head g
            s[o] = a[o] / np.repeat(c.reshape(2, 16), 2, axis=0).ravel()[None, :]
    rep = _answer(tmp_path, s, bank)
    assert [f.entry for f in rep.same] == ["flagged/A"], rep.explanations()
    assert "rescaled by positive factors" in rep.same[0].explanation
