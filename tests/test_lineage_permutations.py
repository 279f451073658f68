"""Lineage across function-preserving rewrites (issue #22).

Each symmetry is applied to a small model whose forward pass runs here in numpy, so
every test first shows the rewrite leaves the outputs unchanged while the weights
change; then that lineage (a) does not see it from sketches alone, (b) finds it as
"same weights up to a permutation" with the suspect's weights at hand, (c) finds a
fine-tune of the permuted copy as derived, and (d) never links an unrelated model,
including independently *trained* models of the same architecture.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import permutations as pm
from assay.banks.fingerprints import FingerprintStore, query
from assay.banks.store import Store
from assay.cli import app
from assay.models.alignment import canonical_arrays, match_units
from assay.models.fingerprint import Fingerprint, fingerprint_arrays
from assay.models.lineage import BankModel, LineageReport, answer

Arrays = dict[str, np.ndarray]
RNG = np.random.default_rng(2212)
TOKENS = RNG.integers(0, pm.BERT["vocab"], (3, 16))
IMAGE = RNG.standard_normal((4, 12, 12))
INPUTS = RNG.standard_normal((16, 32))


@pytest.fixture(scope="module")
def models() -> dict[str, Arrays]:
    return {"bert": pm.bert(1), "bert-other": pm.bert(2), "unet": pm.unet(1), "unet-other": pm.unet(2),
            "mlp": pm.mlp(1), "mlp-other": pm.mlp(2)}


def _forward(family: str) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    return {"bert": lambda a: pm.bert_forward(a, TOKENS), "unet": lambda a: pm.unet_forward(a, IMAGE),
            "mlp": lambda a: pm.mlp_forward(a, INPUTS)}[family]


def _rewrite(symmetry: str, a: Arrays, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    h, ff, heads = pm.BERT["hidden"], pm.BERT["ff"], pm.BERT["heads"]
    if symmetry == "ffn-neurons":
        return pm.bert_permute_ffn(pm.bert_permute_ffn(a, 0, rng.permutation(ff)), 1, rng.permutation(ff))
    if symmetry == "attention-heads":
        return pm.bert_permute_heads(a, 1, np.roll(np.arange(heads), 1))
    if symmetry == "hidden-dimension":
        return pm.bert_permute_hidden(a, rng.permutation(h))
    if symmetry == "all-transformer":
        b = pm.bert_permute_hidden(a, rng.permutation(h))
        b = pm.bert_permute_heads(b, 0, rng.permutation(heads))
        return pm.bert_permute_ffn(pm.bert_permute_ffn(b, 0, rng.permutation(ff)), 1, rng.permutation(ff))
    if symmetry == "groupnorm-channels":
        c, inner, g = pm.UNET["channels"], pm.UNET["inner"], pm.UNET["groups"]
        return pm.unet_permute(a, pm.group_perm(c, g, rng), pm.group_perm(inner, g, rng))
    if symmetry == "relu-scaling":
        scale = np.exp(rng.uniform(-1.0, 1.0, 256))
        return pm.mlp_permute(pm.mlp_permute(a, 0, rng.permutation(256), scale), 1, rng.permutation(256))
    raise AssertionError(symmetry)


SYMMETRIES = {"ffn-neurons": "bert", "attention-heads": "bert", "hidden-dimension": "bert",
              "all-transformer": "bert", "groupnorm-channels": "unet", "relu-scaling": "mlp"}


def _ask(suspect: Arrays, bank: list[BankModel], *, with_weights: bool = True,
         sketches_only: bool = False) -> LineageReport:
    fp = fingerprint_arrays(suspect)
    if sketches_only:  # what a format-2 record carries: no input-order-free unit features
        for t in fp.tensors.values():
            t.rowmom = None
    return answer(fp, bank, canonical_arrays(suspect) if with_weights else None)


def _bank(models: dict[str, Arrays], family: str) -> list[BankModel]:
    return [BankModel("flagged", family, "checkpoint", fingerprint_arrays(models[family])),
            BankModel("flagged", family + "-other", "checkpoint", fingerprint_arrays(models[family + "-other"]))]


@pytest.mark.parametrize("symmetry", list(SYMMETRIES))
def test_rewrite_preserves_the_function_and_changes_the_weights(models: dict[str, Arrays], symmetry: str) -> None:
    family = SYMMETRIES[symmetry]
    a = models[family]
    b = _rewrite(symmetry, a, 1)
    f = _forward(family)
    assert np.allclose(f(a), f(b), rtol=1e-5, atol=1e-5)
    changed = [k for k in a if not np.array_equal(a[k], b[k])]
    assert changed, "the rewrite must change weights"
    if symmetry == "hidden-dimension":  # embeddings, norms and every layer
        assert any("embeddings" in k for k in changed) and any("LayerNorm" in k for k in changed)
        assert any("intermediate" in k for k in changed) and any("pooler" in k for k in changed)


@pytest.mark.parametrize("symmetry", list(SYMMETRIES))
def test_pure_permutation_is_the_same_weights_up_to_permutation(models: dict[str, Arrays], symmetry: str) -> None:
    family = SYMMETRIES[symmetry]
    bank = _bank(models, family)
    suspect = _rewrite(symmetry, models[family], 2)
    blind = _ask(suspect, bank, with_weights=False, sketches_only=True)  # sketches are not invariant
    assert f"flagged/{family}" not in {s.entry for s in blind.same}
    # the fingerprint alone (format 3): units paired on features free of the input order
    fp_only = _ask(suspect, bank, with_weights=False)
    if symmetry == "relu-scaling":  # rescaled units change the next layer's sums: not claimed
        assert not fp_only.same, fp_only.explanations()
    else:
        assert [s.entry for s in fp_only.same] == [f"flagged/{family}"], fp_only.explanations()
        assert fp_only.same[0].permutation is not None and not fp_only.derived
        assert "found from the two fingerprints alone" in fp_only.same[0].explanation
    rep = _ask(suspect, bank)
    assert [s.entry for s in rep.same] == [f"flagged/{family}"], rep.explanations()
    same = rep.same[0]
    assert same.permutation is not None and same.permutation.units_moved > 0
    assert f"flagged/{family}" not in {d.entry for d in rep.derived}  # no "fine-tune 104%"
    assert not {d.entry for d in rep.derived} & {f"flagged/{family}-other"}
    text = rep.explanations()[0]
    assert "same weights as checkpoint flagged/" in text and "up to a permutation of" in text
    if symmetry in ("hidden-dimension", "all-transformer"):
        assert "units of the hidden dimension" in text
    if symmetry == "relu-scaling":
        assert same.permutation.matrices_rescaled >= 1 and "ReLU-family" in text
    else:
        assert same.permutation.matrices_rescaled == 0 and "rescaled" not in text
    assert json.dumps(rep.to_dict())  # the record stays JSON


@pytest.mark.parametrize("symmetry", list(SYMMETRIES))
@pytest.mark.parametrize("drift", [0.01, 0.05])
def test_fine_tune_of_a_permuted_copy_is_derived(models: dict[str, Arrays], symmetry: str, drift: float) -> None:
    """The flagged entry is a fine-tune of a banked base: a fine-tune of its permuted copy
    carries its change (measured in the entry's unit order, from the base); without the
    base banked the relation is found, permutation and all, but its direction is not."""
    family = SYMMETRIES[symmetry]
    flagged = pm.fine_tune(models[family], 0.05, 11)
    bank = [BankModel("bases", family, "base", fingerprint_arrays(models[family])),
            BankModel("flagged", family, "checkpoint", fingerprint_arrays(flagged)), _bank(models, family)[1]]
    suspect = pm.fine_tune(_rewrite(symmetry, flagged, 3), drift, 7)
    rep = _ask(suspect, bank)
    assert not rep.same, rep.explanations()
    assert [d.entry for d in rep.derived if d.kind != "base"] == [f"flagged/{family}"], rep.explanations()
    (d,) = [d for d in rep.derived if d.kind != "base"]
    assert d.permutation is not None and d.base == f"bases/{family}" and abs((d.carried or 0) - 1) < 0.15
    assert "a fine-tune of a permuted copy" in d.explanation
    rep = _ask(suspect, [b for b in bank if b.kind != "base"])
    assert not rep.derived and [r.entry for r in rep.related] == [f"flagged/{family}"], rep.explanations()
    assert rep.related[0].permutation is not None and "a permuted copy" in rep.related[0].explanation


@pytest.mark.parametrize("family", ["bert", "unet", "mlp"])
def test_a_permuted_unrelated_model_is_never_linked(models: dict[str, Arrays], family: str) -> None:
    symmetry = next(s for s, f in SYMMETRIES.items() if f == family)
    bank = [BankModel("flagged", family, "checkpoint", fingerprint_arrays(models[family]))]
    rep = _ask(_rewrite(symmetry, models[family + "-other"], 4), bank)
    assert not rep.found, rep.explanations()


def test_lora_merged_into_a_permuted_base_is_found(models: dict[str, Arrays]) -> None:
    from assay.models.lora_apply import lora_fingerprint

    base = models["bert"]
    rng = np.random.default_rng(9)
    tensors, deltas = {}, {}
    for key in ("bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.1.attention.self.value.weight"):
        w = base[key]
        a = rng.standard_normal((4, w.shape[1])).astype(np.float32)
        b = rng.standard_normal((w.shape[0], 4)).astype(np.float32)
        b *= np.float32(0.15 * np.linalg.norm(w) / np.linalg.norm(b @ a))
        module = "base_model.model." + key.removesuffix(".weight")
        tensors[module + ".lora_A.weight"], tensors[module + ".lora_B.weight"] = a, b
        deltas[key] = b @ a
    merged = {k: v + 0.6 * deltas[k] if k in deltas else v for k, v in base.items()}
    suspect = _rewrite("all-transformer", merged, 5)
    bank = [BankModel("bases", "bert", "base", fingerprint_arrays(base)),
            BankModel("flagged", "lora", "lora", lora_fingerprint(tensors))]
    assert not _ask(suspect, bank, with_weights=False, sketches_only=True).loras  # hidden by the permutation
    rep = _ask(suspect, bank)
    assert [lo.entry for lo in rep.loras] == ["flagged/lora"], rep.explanations()
    assert abs(rep.loras[0].strength - 0.6) <= 0.05
    assert "after undoing the permutation" in rep.loras[0].explanation
    assert [d.entry for d in rep.derived] == ["bases/bert"] and rep.derived[0].permutation is not None


def test_signature_matching_recovers_a_permutation_under_drift() -> None:
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((500, 6))
    perm = rng.permutation(500)
    got, q = match_units(bank[perm] + 0.02 * rng.standard_normal((500, 6)), bank)
    assert np.mean(perm[got] == np.arange(500)) >= 0.99 and q < 0.5
    _, q_random = match_units(rng.standard_normal((500, 6)), bank)
    assert q_random > 0.8  # unrelated rows are no closer than the bank's own rows


# ------------------------------------------------------------------ independently trained models


@pytest.fixture(scope="module")
def trained() -> dict[str, Arrays]:
    sizes = (16, 96, 96, 6)
    return {f"seed{s}": pm.train_mlp(s, steps=250, sizes=sizes) for s in (0, 1, 2)}


def test_independently_trained_models_are_never_linked(trained: dict[str, Arrays]) -> None:
    sizes = (16, 96, 96, 6)
    for a in trained.values():  # trained: far above chance (1/6) on the shared task
        assert pm.mlp_accuracy(a, sizes=sizes) > 0.6
    bank = [BankModel("flagged", name, "checkpoint", fingerprint_arrays(a)) for name, a in trained.items()]
    rng = np.random.default_rng(3)
    for name, a in trained.items():
        p = pm.mlp_permute(pm.mlp_permute(a, 0, rng.permutation(96)), 1, rng.permutation(96))
        assert np.allclose(pm.mlp_forward(p, INPUTS[:, :16]), pm.mlp_forward(a, INPUTS[:, :16]), atol=1e-4)
        rep = _ask(p, bank)
        assert [s.entry for s in rep.same] == [f"flagged/{name}"], rep.explanations()
        assert not rep.derived and not rep.merges, rep.explanations()  # never -> the other seeds
        others = [e for e in bank if e.content_id != name]
        assert not _ask(p, others).found
        assert not _ask(pm.fine_tune(p, 0.03, 1), others).found


# ------------------------------------------------------------------ records, banks, CLI


def _as_v1(fp: Fingerprint) -> bytes:
    """The record an assay before format 2 wrote: no permutation data, version 1."""
    bare = Fingerprint(k=fp.k, kind=fp.kind, source=fp.source, notes=fp.notes)
    for n, t in fp.tensors.items():
        bare.tensors[n] = type(t)(n, t.shape, t.sketch, t.norm, t.mean, t.nonfinite)
    body = bytearray(bare.to_bytes()[:-4])
    hlen = struct.unpack_from("<I", body, 6)[0]
    header = json.loads(bytes(body[10:10 + hlen]))
    header["version"] = 1
    del header["extra"]
    new = json.dumps(header, separators=(",", ":")).encode()
    out = b"ASFP" + struct.pack("<HI", 1, len(new)) + new + bytes(body[10 + hlen:])
    return out + struct.pack("<I", zlib.crc32(out))


def test_format_2_round_trips_and_format_1_records_still_work(models: dict[str, Arrays]) -> None:
    fp = fingerprint_arrays(models["bert"])
    back = Fingerprint.from_bytes(fp.to_bytes())
    for n, t in fp.tensors.items():
        b = back.tensors[n]
        for field in ("rowsig", "colsig", "inv", "rowmom"):
            x, y = getattr(t, field), getattr(b, field)
            assert (x is None) == (y is None)
            if x is not None:
                assert np.allclose(x, y, rtol=2e-3, atol=2e-3 * np.abs(x).max())
        assert b.units == t.units
    old = Fingerprint.from_bytes(_as_v1(fp))
    assert not old.has_alignment_data() and old.invariant_summary() is None
    # an old entry still answers the usual questions, and a permuted suspect is not
    # claimed against it (nothing to align with): the report says nothing, not a wrong thing
    bank = [BankModel("flagged", "old", "checkpoint", old)]
    assert [s.entry for s in _ask(models["bert"], bank).same] == ["flagged/old"]
    rep = _ask(_rewrite("hidden-dimension", models["bert"], 6), bank)
    assert not rep.same


def test_size_of_the_permutation_data_is_reported_and_small(models: dict[str, Arrays]) -> None:
    fp = fingerprint_arrays(pm.bert(1, hidden=256, ff=1024, vocab=8000, layers=2))
    full = len(fp.to_bytes())
    bare = Fingerprint(k=fp.k, kind=fp.kind)
    for n, t in fp.tensors.items():
        bare.tensors[n] = type(t)(n, t.shape, t.sketch, t.norm, t.mean, t.nonfinite)
    file_bytes = sum(int(np.prod(t.shape)) * 4 for t in fp.tensors.values())
    assert full - len(bare.to_bytes()) < 0.01 * file_bytes  # the signatures alone
    assert full < 0.02 * file_bytes  # this small model: sketches + signatures


def test_bank_query_finds_a_permuted_copy_among_decoys(tmp_path: Path, models: dict[str, Arrays]) -> None:
    store = Store(str(tmp_path / "b.sqlite3"), create=True)
    store.create_bank("flagged")
    fs = FingerprintStore(store)
    fs.add("flagged", "bert", fingerprint_arrays(models["bert"]))
    fs.add("flagged", "bert-other", fingerprint_arrays(models["bert-other"]))
    fs.add_many("flagged", [(f"decoy-{i}", fingerprint_arrays(pm.bert(100 + i))) for i in range(6)])
    fs.add("flagged", "unet", fingerprint_arrays(models["unet"]))
    suspect = _rewrite("all-transformer", models["bert"], 8)
    rep = query(fs, fingerprint_arrays(suspect), tensors=canonical_arrays(suspect))
    assert [s.entry for s in rep.same] == ["flagged/bert"], rep.explanations()
    assert not rep.derived
    rep = query(fs, fingerprint_arrays(_rewrite("all-transformer", pm.bert(99), 8)),
                tensors=canonical_arrays(_rewrite("all-transformer", pm.bert(99), 8)))
    assert not rep.found
    store.close()


def test_fingerprint_alone_finds_a_permuted_copy_in_a_bank(tmp_path: Path, models: dict[str, Arrays]) -> None:
    """A query from a stored fingerprint (no weights to align with: a service request, a
    fingerprint sent instead of the model): format 3 carries per-unit features that do not
    depend on the order of a layer's inputs, so the units pair without the weights."""
    store = Store(str(tmp_path / "b.sqlite3"), create=True)
    store.create_bank("flagged")
    fs = FingerprintStore(store)
    fs.add("flagged", "bert", fingerprint_arrays(models["bert"]))
    fs.add("flagged", "bert-other", fingerprint_arrays(models["bert-other"]))
    fs.add("flagged", "unet", fingerprint_arrays(models["unet"]))
    old = fingerprint_arrays(models["bert"])
    for t in old.tensors.values():
        t.rowmom = None  # a format-2 entry: signatures in the columns' order only
    fs.add("flagged", "bert-format2", old)

    def ask(arrays: Arrays) -> LineageReport:
        return query(fs, Fingerprint.from_bytes(fingerprint_arrays(arrays).to_bytes()))

    rep = ask(_rewrite("all-transformer", models["bert"], 11))
    assert [s.entry for s in rep.same] == ["flagged/bert"] and not rep.derived, rep.explanations()
    assert rep.same[0].permutation is not None and rep.same[0].permutation.units_moved > 0
    text = rep.explanations()[0]
    assert "up to a permutation of" in text and "found from the two fingerprints alone" in text
    assert json.dumps(rep.to_dict())
    rep = ask(pm.fine_tune(_rewrite("all-transformer", models["bert"], 12), 0.02, 4))
    assert [d.entry for d in rep.related] == ["flagged/bert"] and not rep.same, rep.explanations()
    assert not rep.derived and "not measured without the suspect's weights" in rep.related[0].explanation
    rep = ask(_rewrite("all-transformer", pm.bert(99), 13))
    assert not rep.found, rep.explanations()
    store.close()


def _cli(db: str, *args: str) -> Any:
    res = CliRunner().invoke(app, ["--db", db, *args], env={"COLUMNS": "200"})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    return res


def test_model_command_explains_a_permuted_copy(tmp_path: Path, models: dict[str, Arrays]) -> None:
    from safetensors.numpy import save_file

    db = str(tmp_path / "b.sqlite3")
    orig, perm = tmp_path / "orig.safetensors", tmp_path / "perm.safetensors"
    save_file(models["bert"], str(orig))
    save_file(_rewrite("all-transformer", models["bert"], 9), str(perm))
    assert _cli(db, "bank", "create", "flagged", "--create").exit_code == 0
    assert _cli(db, "bank", "add-model", "flagged", str(orig), "--id", "minibert").exit_code == 0
    res = _cli(db, "model", str(perm))
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "same weights as checkpoint flagged/minibert up to a permutation of" in text
    res = _cli(db, "scan", str(tmp_path / "perm.safetensors"), "--json")
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    rec = next(x for x in lines if x.get("path", "").endswith("perm.safetensors"))
    assert any(m["signal_type"] == "lineage" and m["content_id"] == "minibert" for m in rec["matches"])


def test_evaluation_meets_the_issue_targets() -> None:
    """tests/permutation_eval.py at CI size: every symmetry, fresh permutations, two bases
    per family, 5% drift; the targets of issue #22."""
    import permutation_eval as pe

    tallies = pe.evaluate("small", seeds=2, drifts=(0.05,))
    for name, t in tallies.items():
        assert t.false_links == 0, pe.table(tallies)
        if name.startswith("pure:") or name.startswith("trained"):
            assert t.hit == t.total, pe.table(tallies)
        elif t.total:
            assert t.hit >= 0.95 * t.total, pe.table(tallies)
    assert any(k.startswith("trained") for k in tallies)


def test_torch_trained_transformers_link_only_to_their_origin() -> None:
    """Three tiny BERTs trained with torch from different seeds on the same data
    (tests/data/make_trained_pairs.py): each permuted copy (hidden dimension, heads, FFN
    neurons) computes what its origin computes, is found as the same weights up to a
    permutation of it, and is never linked to another seed, not even once fine-tuned."""
    from safetensors.numpy import load_file

    files = sorted((Path(__file__).parent / "data").glob("trained_bert_seed*.safetensors"))
    assert len(files) == 3
    trained = {f.stem: load_file(str(f)) for f in files}
    bank = [BankModel("flagged", n, "checkpoint", fingerprint_arrays(a)) for n, a in trained.items()]
    tokens = np.random.default_rng(4).integers(0, 64, (4, 16))
    rng = np.random.default_rng(5)
    for name, a in trained.items():
        p = pm.bert_permute_hidden(a, rng.permutation(48))
        for n in range(2):
            p = pm.bert_permute_heads(pm.bert_permute_ffn(p, n, rng.permutation(128)), n, rng.permutation(4))
        assert np.allclose(pm.bert_forward(p, tokens), pm.bert_forward(a, tokens), atol=1e-4)
        rep = _ask(p, bank)
        assert [s.entry for s in rep.same] == [f"flagged/{name}"], rep.explanations()
        assert not rep.derived and not rep.merges
        others = [e for e in bank if e.content_id != name]
        assert not _ask(p, others).found
        assert not _ask(pm.fine_tune(p, 0.02, 3), others).found
        # no base banked: a relative whose direction is not measured
        assert [d.entry for d in _ask(pm.fine_tune(p, 0.02, 3), bank).related] == [f"flagged/{name}"]
        # from the fingerprint alone too: its origin only, never another seed
        rep = _ask(p, bank, with_weights=False)
        assert [s.entry for s in rep.same] == [f"flagged/{name}"] and not rep.derived, rep.explanations()
        assert not _ask(p, others, with_weights=False).found
        assert not _ask(pm.fine_tune(p, 0.02, 3), others, with_weights=False).found
        rep = _ask(pm.fine_tune(p, 0.02, 3), bank, with_weights=False)
        assert [d.entry for d in rep.related] == [f"flagged/{name}"] and not rep.same, rep.explanations()
        assert not rep.derived


def test_old_bank_rows_and_ordinary_fine_tunes_skip_alignment(
    tmp_path: Path, models: dict[str, Arrays], monkeypatch: pytest.MonkeyPatch
) -> None:
    import assay.models.alignment as alignment

    calls: list[str] = []
    real = alignment.align
    monkeypatch.setattr(alignment, "align", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    store = Store(str(tmp_path / "b.sqlite3"), create=True)
    store.create_bank("flagged")
    fs = FingerprintStore(store)
    old = Fingerprint.from_bytes(_as_v1(fingerprint_arrays(models["bert"])))
    fs.add("flagged", "old", old)  # a format-1 entry: 5 KB summary, no invariants
    fs.add("flagged", "new", fingerprint_arrays(models["bert-other"]))
    idx = fs.index()
    assert len(idx) == 2 and not idx.broken
    tuned = pm.fine_tune(models["bert-other"], 0.03, 1)
    rep = query(fs, fingerprint_arrays(tuned), tensors=canonical_arrays(tuned), index=idx)
    assert [d.entry for d in rep.related] == ["flagged/new"] and not calls  # nothing permuted: no alignment
    rep = query(fs, fingerprint_arrays(models["bert"]), tensors=canonical_arrays(models["bert"]), index=idx)
    assert [s.entry for s in rep.same] == ["flagged/old"]
    permuted = _rewrite("ffn-neurons", models["bert-other"], 2)
    rep = query(fs, fingerprint_arrays(permuted), tensors=canonical_arrays(permuted), index=idx)
    assert [s.entry for s in rep.same] == ["flagged/new"] and calls
    store.close()


def test_merge_over_a_permuted_base_is_found(models: dict[str, Arrays]) -> None:
    """0.9 A + 0.1 B, then permuted: aligned against A, the merge and its ratios show.
    (Evenly balanced merges of permuted models are out of reach: the suspect's units are
    then no closer to A's than to anything else.)"""
    a, b = models["bert"], models["bert-other"]
    merged = {k: (0.9 * a[k] + 0.1 * b[k]).astype(np.float32) for k in a}
    suspect = _rewrite("all-transformer", merged, 11)
    bank = [BankModel("bases", "A", "base", fingerprint_arrays(a)),
            BankModel("bases", "B", "base", fingerprint_arrays(b))]
    assert not any(m.component == "layers" for m in _ask(suspect, bank, with_weights=False,
                                                          sketches_only=True).merges)
    rep = _ask(suspect, bank)
    layers = [m for m in rep.merges if m.component == "layers"]
    assert layers, rep.explanations()
    assert abs(layers[0].parts["bases/A"] - 0.9) <= 0.05 and abs(layers[0].parts["bases/B"] - 0.1) <= 0.05
    assert "after undoing the permutation" in layers[0].explanation
    assert not rep.same


def test_rmsnorm_decoder_permuted_is_found_with_and_without_its_weights() -> None:
    """A LLaMA-style decoder (RMSNorm, SwiGLU, no biases): the residual dimension and the
    SwiGLU neurons reordered keep the outputs (RMSNorm's root mean square ignores the
    order) and are undone from the weights and from the fingerprint alone; a fine-tune of
    the copy is derived; another seed, permuted the same way, is never linked to it."""
    a, other = pm.llama(1), pm.llama(2)
    rng = np.random.default_rng(4)
    h, ff = pm.LLAMA["hidden"], pm.LLAMA["ff"]
    p = pm.llama_permute(a, rng.permutation(h), {0: rng.permutation(ff), 1: rng.permutation(ff)})
    tokens = rng.integers(0, pm.LLAMA["vocab"], (2, 8))
    assert np.allclose(pm.llama_forward(p, tokens), pm.llama_forward(a, tokens), atol=1e-6)
    assert all(not np.array_equal(a[k], p[k]) for k in a)
    bank = [BankModel("flagged", "llama", "checkpoint", fingerprint_arrays(a)),
            BankModel("flagged", "llama-other", "checkpoint", fingerprint_arrays(other))]
    for weights in (True, False):
        rep = _ask(p, bank, with_weights=weights)
        assert [s.entry for s in rep.same] == ["flagged/llama"] and not rep.derived, rep.explanations()
        assert "units of the hidden dimension" in rep.explanations()[0]
        rep = _ask(pm.fine_tune(p, 0.02, 1), bank, with_weights=weights)  # no base banked: related
        assert [d.entry for d in rep.related] == ["flagged/llama"] and not rep.same, rep.explanations()
        assert not rep.derived
        rep = _ask(pm.llama_permute(other, rng.permutation(h)), bank[:1], with_weights=weights)
        assert not rep.found, rep.explanations()


def test_sign_flips_of_tanh_units_are_undone(models: dict[str, Arrays]) -> None:
    """BERT's pooler is tanh: negating a unit's input row and bias and the classifier column
    reading it keeps the logits. Undone with the weights (alone and with the hidden
    dimension permuted) and named as valid only for odd activations; from the fingerprint
    alone it is not claimed as the same weights; another model flipped the same way stays
    unlinked."""
    a = models["bert"]
    rng = np.random.default_rng(6)
    flip = rng.random(pm.BERT["hidden"]) < 0.5
    bank = _bank(models, "bert")
    for p in (pm.bert_flip_pooler(a, flip),
              pm.bert_flip_pooler(pm.bert_permute_hidden(a, rng.permutation(pm.BERT["hidden"])), flip)):
        assert np.allclose(pm.bert_forward(p, TOKENS), pm.bert_forward(a, TOKENS), atol=1e-5)
        assert not np.array_equal(p["classifier.weight"], a["classifier.weight"])
        rep = _ask(p, bank)
        assert [s.entry for s in rep.same] == ["flagged/bert"] and not rep.derived, rep.explanations()
        assert rep.same[0].permutation is not None and rep.same[0].permutation.matrices_sign_flipped == 1
        assert "signs flipped" in rep.explanations()[0] and "odd activation" in rep.explanations()[0]
        assert "flagged/bert" not in {s.entry for s in _ask(p, bank, with_weights=False).same}
    other = pm.bert_flip_pooler(pm.bert_permute_hidden(models["bert-other"], rng.permutation(64)), flip)
    assert not _ask(other, bank[:1]).found


def _scramble(a: Arrays, seed: int) -> Arrays:
    """Every tensor under a meaningless name, in a shuffled order."""
    names = list(a)
    order = np.random.default_rng(seed).permutation(len(names))
    return {f"w{j:03d}": a[names[i]] for j, i in enumerate(order)}


@pytest.mark.parametrize("symmetry", ["all-transformer", "hidden-dimension", "groupnorm-channels"])
def test_a_renamed_and_permuted_copy_is_the_same_weights(models: dict[str, Arrays], symmetry: str) -> None:
    """Renamed and permuted at once, a copy was 'no tensor in common' with its origin:
    names pair nothing, and pairing by content compares sketches, which a permutation
    changes. Tensors are now paired on statistics no reordering of units changes, then
    the permutation is undone under the entry's names, with the weights and from the
    fingerprint alone; an unrelated model rewritten the same way is still nothing."""
    family = SYMMETRIES[symmetry]
    bank = _bank(models, family)
    copy = _scramble(_rewrite(symmetry, models[family], 21), 22)  # the rewrite keeps the function (above)
    for weights in (True, False):
        rep = _ask(copy, bank, with_weights=weights)
        assert [s.entry for s in rep.same] == [f"flagged/{family}"], rep.explanations()
        assert rep.same[0].permutation is not None and "tensor names differ" in rep.same[0].explanation
        assert not rep.derived and not rep.related
        stranger = _scramble(_rewrite(symmetry, models[family + "-other"], 23), 24)
        assert not _ask(stranger, bank[:1], with_weights=weights).found


def test_a_permuted_sibling_is_not_derived_from_the_flagged_fine_tune(models: dict[str, Arrays]) -> None:
    """Another fine-tune of the flagged checkpoint's base, permuted: once the permutation
    is undone it is as close to the flagged fine-tune as any sibling, and was a 'derived'
    match with it. Measured from the banked base it does not carry the flagged change:
    related (context), with the weights and from the fingerprint alone."""
    from assay.models.lineage_analyzer import lineage_matches

    base = models["bert"]
    flagged = pm.fine_tune(base, 0.05, 11)
    bank = [BankModel("bases", "B", "base", fingerprint_arrays(base)),
            BankModel("flagged", "F", "checkpoint", fingerprint_arrays(flagged))]
    kinds = {"bases/B": "base", "flagged/F": "checkpoint"}
    sibling = pm.bert_permute_hidden(pm.fine_tune(base, 0.05, 12), np.random.default_rng(3).permutation(64))
    for weights in (True, False):
        rep = _ask(sibling, bank, with_weights=weights)
        assert "flagged/F" not in {d.entry for d in rep.derived} and lineage_matches(rep, kinds) == [], \
            rep.explanations()
