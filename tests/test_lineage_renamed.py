"""Lineage of a model whose tensors were renamed (a rewrite that keeps the function for
whoever ships the renaming map with it): matrices are paired with the banked entry's by
shape and weights, names ignored. Random-weight Llama-layout models (tests/modelgen)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelgen
from assay.banks.fingerprints import FingerprintIndex, FingerprintStore, query, summary_bytes
from assay.banks.store import Store
from assay.models.fingerprint import fingerprint_arrays
from assay.models.lineage import BankModel, answer
from assay.models.lineage_renamed import pair_by_content

LLAMA = {"hidden": 64, "layers": 3, "vocab": 128, "ff": 96, "kv": 32}


def model(seed: int, **kw: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, (_dt, shape) in modelgen.llama(**{**LLAMA, **kw}).items():
        base = 1.0 if len(shape) == 1 else 0.0
        out[k] = (base + rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    return out


def fine_tune(a: dict[str, np.ndarray], scale: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + scale * np.std(v) * rng.standard_normal(v.shape)).astype(np.float32) for k, v in a.items()}


def scramble(a: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Every tensor under a meaningless name, in a shuffled order."""
    names = list(a)
    order = np.random.default_rng(seed).permutation(len(names))
    return {f"w{j:03d}": a[names[i]] for j, i in enumerate(order)}


def fp(a: dict[str, np.ndarray]):  # noqa: ANN201
    return fingerprint_arrays(a, kind="checkpoint")


@pytest.fixture(scope="module")
def bank() -> list[BankModel]:
    return [BankModel("flagged", "A", "checkpoint", fp(model(1))), BankModel("flagged", "B", "checkpoint", fp(model(2)))]


@pytest.mark.parametrize("rename", ["scrambled", "underscores", "upper"])
def test_a_renamed_copy_is_the_same_weights(bank: list[BankModel], rename: str) -> None:
    a = model(1)
    suspect = {"scrambled": scramble(a, 7), "underscores": {k.replace(".", "_"): v for k, v in a.items()},
               "upper": {k.upper(): v for k, v in a.items()}}[rename]
    rep = answer(fp(suspect), bank)
    assert [s.entry for s in rep.same] == ["flagged/A"] and not rep.derived, rep.explanations()
    assert "tensor names differ from the entry's" in rep.same[0].explanation
    assert "23 of the entry's 23 matrices, 100% of their weights" in rep.same[0].explanation
    assert not any("flagged/A" in line and "not comparable" in line for line in rep.explanations())


def test_a_renamed_fine_tune_is_related_and_a_renamed_stranger_is_nothing(bank: list[BankModel]) -> None:
    # The entry's base is not banked: closeness says the two share a base, not which way.
    rep = answer(fp(scramble(fine_tune(model(1), 0.05, 3), 8)), bank)
    assert [d.entry for d in rep.related] == ["flagged/A"] and not rep.same and not rep.derived, rep.explanations()
    assert "tensor names differ" in rep.related[0].explanation
    rep = answer(fp(scramble(model(3), 9)), bank)
    assert not rep.found, rep.explanations()


def test_a_renamed_fine_tune_of_a_flagged_fine_tune_carries_its_change() -> None:
    """With the flagged checkpoint's base banked, renaming does not hide that a fine-tune
    of it carries its change, nor make a renamed sibling (another fine-tune of the base)
    derived from it."""
    base = model(1)
    flagged = fine_tune(base, 0.05, 20)
    bank = [BankModel("bases", "P", "base", fp(base)), BankModel("flagged", "F", "checkpoint", fp(flagged))]
    rep = answer(fp(scramble(fine_tune(flagged, 0.02, 21), 22)), bank)
    (d,) = [f for f in rep.derived if f.entry == "flagged/F"]
    assert d.base == "bases/P" and d.carried is not None and abs(d.carried - 1) < 0.15, rep.explanations()
    assert "tensor names differ" in d.explanation
    rep = answer(fp(scramble(fine_tune(base, 0.05, 23), 24)), bank)
    assert "flagged/F" not in {f.entry for f in rep.derived}, rep.explanations()
    assert [f.entry for f in rep.related] == ["flagged/F"] and rep.related[0].base == "bases/P"


def test_names_that_already_match_are_not_paired_again(bank: list[BankModel]) -> None:
    rep = answer(fp(model(1)), bank)
    assert [s.entry for s in rep.same] == ["flagged/A"]
    assert "tensor names differ" not in rep.same[0].explanation


def test_a_renamed_copy_of_a_few_of_the_entrys_tensors_is_not_called_the_model(bank: list[BankModel]) -> None:
    """A third of the weights copied (renamed) into an unrelated model: below the share
    that makes it the entry's weights."""
    a, u = model(1), model(4)
    mats = [k for k in a if a[k].ndim == 2]
    mixed = {k: (a[k] if k in mats[: len(mats) // 3] else u[k]) for k in a}
    rep = answer(fp(scramble(mixed, 10)), bank)
    assert not rep.found, rep.explanations()


def test_small_matrices_are_never_paired_by_content_alone() -> None:
    """Hundreds of unrelated 4x16 matrices: some pair of sketches reaches cosine 0.5 by
    chance, so such tensors are left out of name-free pairing altogether."""
    rng = np.random.default_rng(0)
    a = {f"a{i}": rng.standard_normal((4, 16)).astype(np.float32) for i in range(300)}
    b = {f"b{i}": rng.standard_normal((4, 16)).astype(np.float32) for i in range(300)}
    fa, fb = fp(a), fp(b)
    ta, tb = (np.stack([t.sketch.ravel() for t in f.tensors.values()]) for f in (fa, fb))
    ta, tb = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (ta, tb))
    assert (ta @ tb.T).max() >= 0.5  # the chance this guards against
    assert pair_by_content(fa, fb) == {}
    assert not answer(fa, [BankModel("flagged", "B", "checkpoint", fb)]).found


def test_the_bank_preselects_a_renamed_copy_by_its_shape_summary(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    store.create_bank("flagged")
    fs = FingerprintStore(store)
    for i in range(1, 9):  # more entries than the candidate limit: the pre-selection matters
        fs.add("flagged", f"m{i}", fp(model(i)), kind="checkpoint")
    rep = query(fs, fp(scramble(model(5), 11)), limit=3)
    assert [s.entry for s in rep.same] == ["flagged/m5"], rep.explanations()
    # rows banked before the shape summary (two segments) still load; they are simply
    # not pre-selected for renamed copies
    f5 = fp(model(5))
    old = summary_bytes(f5)[: -len(f5.shape_summary().tobytes())]
    idx = FingerprintIndex.from_rows([(1, "flagged", "m5", "checkpoint", f5.k, old)])
    assert len(idx) == 1 and idx.candidates(fp(scramble(model(5), 11))) == []
    assert idx.candidates(f5) == [1]


def test_cli_model_names_a_renamed_copy_of_a_banked_checkpoint(tmp_path: Path) -> None:
    db = str(tmp_path / "b.sqlite3")
    a = model(1)
    spec = {k: ("F32", v.shape) for k, v in a.items()}
    flagged = modelgen.write_safetensors(tmp_path / "flagged.safetensors", spec, values=a)
    s = scramble(a, 12)
    suspect = modelgen.write_safetensors(tmp_path / "innocent.safetensors",
                                         {k: ("F32", v.shape) for k, v in s.items()}, values=s)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "assay", "--db", db, *args],
                              capture_output=True, text=True, timeout=120)

    assert run("bank", "create", "models", "--create").returncode == 0
    assert run("bank", "add-model", "models", str(flagged), "--id", "bad").returncode == 0
    r = run("model", str(suspect))
    assert r.stderr == "" and "same weights as checkpoint models/bad" in r.stdout, r.stdout
    assert "tensor names differ from the entry's" in r.stdout
    r = run("model", str(suspect), "--json")
    rec = json.loads(r.stdout)
    assert [s["entry"] for s in rec["lineage"]["same"]] == ["models/bad"] and rec["matches"] == []


# ------------------------------------------------------------------ merges and LoRAs, renamed


def _sd15_family() -> tuple[Any, ...]:
    import lineage_eval as ev

    specs = {k: v for k, v in modelgen.sd15(1 / 16, dt="F32").items() if v[0] == "F32"}
    base = ev.kept(ev.random_model(specs, 1))
    flagged = ev.kept(ev.fine_tune(base, 0.05, 3))
    other = ev.kept(ev.random_model(specs, 2))
    lora = ev.random_lora(base, 8, 4)
    return ev, base, flagged, other, lora


def _peft_names(lora: Any) -> dict[str, np.ndarray]:
    """The same LoRA as diffusers/PEFT name it (``<module>.lora_A/lora_B``), not kohya."""
    out = {}
    for canonical, (up, down) in lora.factors.items():
        module = canonical.replace("/", ".").removesuffix(".weight")
        out[module + ".lora_A.weight"], out[module + ".lora_B.weight"] = down, up
    return out


def test_merges_and_loras_of_a_renamed_model_are_found() -> None:
    """Renaming hid everything but same weights and fine-tunes: a merge of two flagged
    checkpoints and a flagged LoRA merged into a base, their tensors under meaningless
    names, were 'no tensor in common' with the LoRA and no merge. The suspect is asked
    again under the names its matrices paired with; the LoRA is found whether it was
    banked in kohya or in diffusers/PEFT naming."""
    from assay.models.lineage_analyzer import lineage_matches
    from assay.models.lora_apply import lora_fingerprint

    ev, base, flagged, other, lora = _sd15_family()
    kinds = {"bases/P": "base", "flagged/F": "checkpoint", "flagged/G": "checkpoint", "flagged/L": "lora"}
    for banked in (lora.kohya(), _peft_names(lora)):
        bank = [BankModel("bases", "P", "base", fp(base)), BankModel("flagged", "F", "checkpoint", fp(flagged)),
                BankModel("flagged", "G", "checkpoint", fp(other)),
                BankModel("flagged", "L", "lora", lora_fingerprint(banked))]
        merged = {k: np.asarray(v) for k, v in ev.merge([(0.3, flagged), (0.7, other)]).items()}
        rep = answer(fp(scramble(merged, 5)), bank)
        (unet,) = [m for m in rep.merges if m.component == "unet"]
        assert set(unet.parts) == {"flagged/F", "flagged/G"} and abs(unet.parts["flagged/F"] - 0.3) < 0.02
        assert "paired by content" in unet.explanation
        assert {(m.content_id, m.value) for m in lineage_matches(rep, kinds)} >= {("F", "merge unet 0.30"),
                                                                                   ("G", "merge unet 0.70")}
        with_lora = {k: np.asarray(v) for k, v in ev.apply_lora(base, lora, 0.5).items()}
        rep = answer(fp(scramble(with_lora, 6)), bank)
        assert [(lo.entry, round(lo.strength, 2)) for lo in rep.loras] == [("flagged/L", 0.5)], rep.explanations()
        assert not any(n.entry == "flagged/L" for n in rep.not_comparable)
        assert ("L", "lora 0.50") in [(m.content_id, m.value) for m in lineage_matches(rep, kinds)]


def test_a_lora_file_in_another_naming_is_the_same_lora() -> None:
    """kohya (``lora_unet_..._to_q.lora_up``) and diffusers/PEFT (``unet....to_q.lora_B``)
    name one LoRA differently: either file against the other banked is the same weights."""
    from assay.models.lora_apply import lora_fingerprint

    _ev, _base, _flagged, _other, lora = _sd15_family()
    kohya, peft = lora_fingerprint(lora.kohya()), lora_fingerprint(_peft_names(lora))
    for suspect, banked in ((peft, kohya), (kohya, peft)):
        rep = answer(suspect, [BankModel("flagged", "L", "lora", banked)])
        assert [s.entry for s in rep.same] == ["flagged/L"], rep.explanations()
