"""Lineage questions, model banks and LoRA extraction."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import lineage_eval as ev
import modelgen
from assay.banks.fingerprints import FingerprintStore, add_model, fingerprints_table, query
from assay.banks.store import Store
from assay.errors import InputError, InvalidBankInput
from assay.models.fingerprint import Fingerprint, fingerprint_arrays, fingerprint_file
from assay.models.formats import open_model
from assay.models.lineage import BankModel, answer, nnls
from assay.models.lora_apply import apply_lora, lora_fingerprint
from assay.models.lora_extract import extract, low_rank_factors

SCALE = 1 / 16


# ------------------------------------------------------------------ NNLS


def _brute_nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference: the best unconstrained fit over every support whose fit is >= 0."""
    n = a.shape[1]
    best, best_err = np.zeros(n), float(b @ b)
    for r in range(1, n + 1):
        for sup in itertools.combinations(range(n), r):
            x = np.linalg.lstsq(a[:, sup], b, rcond=None)[0]
            if np.any(x < 0):
                continue
            w = np.zeros(n)
            w[list(sup)] = x
            err = float(np.sum((a @ w - b) ** 2))
            if err < best_err - 1e-12:
                best, best_err = w, err
    return best


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_nnls_matches_brute_force(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((12, n))
    b = rng.standard_normal(12)
    w = nnls(a.T @ a, a.T @ b)
    ref = _brute_nnls(a, b)
    assert np.all(w >= 0)
    err_w, err_ref = np.sum((a @ w - b) ** 2), np.sum((a @ ref - b) ** 2)
    assert err_w <= err_ref + 1e-8 * max(1.0, err_ref)


# ------------------------------------------------------------------ the evaluation suite


@pytest.fixture(scope="module")
def world() -> ev.World:
    return ev.build(SCALE, keep=True)  # A, B, C and F drawn once: the same values


@pytest.fixture(scope="module")
def tallies(world: ev.World) -> dict[str, ev.Tally]:
    return ev.evaluate(world)


def test_zero_false_positives_on_unrelated_models(tallies: dict[str, ev.Tally]) -> None:
    t = tallies["any finding on unrelated model"]
    assert t.tn >= 5 and t.fp == 0


@pytest.mark.parametrize("question", ["same weights", "derived (fine-tune)", "shares a base only", "replaced component",
                                      "merge", "contains LoRA", "contains LoHa", "contains LoKr",
                                      "unknown low-rank delta"])
def test_questions_meet_their_targets(tallies: dict[str, ev.Tally], question: str) -> None:
    t = tallies[question]
    assert t.tp + t.fn > 0 and t.fn == 0, ev.table(tallies)
    assert t.fp == 0, ev.table(tallies)


def test_lora_strength_and_merge_ratio_errors(tallies: dict[str, ev.Tally]) -> None:
    assert max(tallies["contains LoRA"].errors) <= 0.05
    assert max(tallies["contains LoHa"].errors) <= 0.05
    assert max(tallies["contains LoKr"].errors) <= 0.05
    assert max(tallies["merge"].errors) <= 0.02


def test_lazy_models_are_drawn_per_tensor_and_fingerprint_as_arrays(tmp_path: Path) -> None:
    """A suspect is a recipe: any tensor read alone, in any order, equals the same tensor
    of the whole model, and its fingerprint is that of the materialised arrays."""
    specs = {k: v for k, v in modelgen.sd15(SCALE, dt="F32").items() if v[0] == "F32"}
    A = ev.random_model(specs, 1)
    suspect = ev.to_fp16(ev.fine_tune(ev.apply_lora(A, ev.random_lora(A, 4, 3), 0.5), 0.01, 2))
    assert isinstance(suspect, ev.Lazy) and list(suspect) == list(specs)
    whole = dict(suspect.items())
    last = list(specs)[-1]
    np.testing.assert_array_equal(ev.to_fp16(ev.fine_tune(ev.apply_lora(
        A, ev.random_lora(A, 4, 3), 0.5), 0.01, 2))[last], whole[last])
    assert not np.array_equal(A[last], ev.random_model(specs, 2)[last])
    assert "no such key" not in suspect and last in suspect
    with pytest.raises(KeyError):
        suspect["no such key"]
    direct, lazy = fingerprint_arrays(whole), fingerprint_arrays(suspect)
    assert list(direct.tensors) == list(lazy.tensors)
    for n, t in direct.tensors.items():
        np.testing.assert_array_equal(lazy.tensors[n].sketch, t.sketch)
    cached = ev.cached(A, tmp_path / "c", "A")
    first, again = cached[last], cached[last]  # drawn and written, then read back
    np.testing.assert_array_equal(first, A[last])
    np.testing.assert_array_equal(again, A[last])
    assert (tmp_path / "c" / f"A-{len(specs) - 1}.npy").exists()


def test_max_rss_guard_stops_the_run() -> None:
    with pytest.raises(SystemExit, match="exceeds --max-rss"):
        ev.main(["--scale", str(SCALE), "--max-rss", "1"])


def test_weak_lora_after_fine_tune_and_fp16(world: ev.World) -> None:
    """A LoRA a third as strong as the eval's, at 0.2, on a 3% fine-tune, in fp16."""
    A = ev.random_model({k: v for k, v in modelgen.sd15(SCALE, dt="F32").items() if v[0] == "F32"}, 1)
    lora = ev.random_lora(A, 8, 77, rel=0.05)
    bank = [BankModel("b", "A", "base", fingerprint_arrays(A)),
            BankModel("f", "L", "lora", lora_fingerprint(lora.kohya()))]
    suspect = ev.to_fp16(ev.fine_tune(ev.apply_lora(A, lora, 0.2), 0.03, 5))
    rep = answer(fingerprint_arrays(suspect), bank)
    assert [lo.entry for lo in rep.loras] == ["f/L"]
    assert abs(rep.loras[0].strength - 0.2) <= 0.05


def test_fingerprint_level_lora_application_matches_weight_level(world: ev.World) -> None:
    A = ev.random_model({k: v for k, v in modelgen.sd15(SCALE, dt="F32").items() if v[0] == "F32"}, 1)
    lora = ev.random_lora(A, 4, 3)
    direct = fingerprint_arrays(ev.apply_lora(A, lora, 0.6))
    via = apply_lora(fingerprint_arrays(A), lora_fingerprint(lora.kohya()), 0.6)
    for n, t in direct.tensors.items():
        np.testing.assert_allclose(via.tensors[n].sketch, t.sketch, rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------ bad input


def _small(seed: int, builder: str = "sd15") -> dict[str, np.ndarray]:
    specs = getattr(modelgen, builder)(SCALE, dt="F32")
    return ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, seed)


def test_not_comparable_cases_are_explained() -> None:
    a = fingerprint_arrays(_small(1))
    other_k = fingerprint_arrays(_small(1), k=32)
    sdxl = fingerprint_arrays(_small(2, "sdxl_base"))
    xl_lora = lora_fingerprint(_sdxl_lora())
    zero = fingerprint_arrays({k: np.zeros_like(v) for k, v in _small(1).items()})
    flux = fingerprint_arrays(ev.random_model({k: v for k, v in modelgen.flux("dev", SCALE, dt="F32").items() if v[0] == "F32"}, 3))
    bank = [BankModel("b", "k32", "base", other_k), BankModel("b", "xl", "base", sdxl),
            BankModel("b", "A", "base", a), BankModel("b", "xl-lora", "lora", xl_lora),
            BankModel("b", "zero", "base", zero), BankModel("b", "flux", "base", flux)]
    rep = answer(a, bank)
    reasons = {n.entry: n.reason for n in rep.not_comparable}
    assert "sketch sizes differ" in reasons["b/k32"]
    assert "no tensor in common" in reasons["b/flux"]
    # SDXL shares the VAE and CLIP-L layouts with SD 1.5: comparable there, and unrelated.
    assert "b/xl" not in {d.entry for d in rep.derived} | {s.entry for s in rep.same}
    assert "another architecture" in reasons["b/xl-lora"] or "shape" in reasons["b/xl-lora"]
    assert "zero" in reasons["b/zero"]
    assert [s.entry for s in rep.same] == ["b/A"]


def _sdxl_lora() -> dict[str, np.ndarray]:
    specs, values = modelgen.kohya_lora("sdxl", rank=2, dt="F32", te=False)
    rng = np.random.default_rng(1)
    return {k: np.asarray(values[k], np.float32) if k in values else rng.standard_normal(s, dtype=np.float32)
            for k, (d, s) in specs.items()}


def test_tiny_unrelated_models_are_not_related_by_chance() -> None:
    """Sketches of a few values, and layers of a few units, agree by chance: of 300 pairs of
    unrelated random models with one 2x8 matrix, 4 were 'fine-tune relatives' (sketch
    cosine >= 0.5 over 16 values), and of 1,000 with two 2x16 layers 4 were 'permuted
    copies' (units paired on signatures). Neither is reported now (a note says why);
    a copy is still the same weights."""
    def model(shapes: dict[str, tuple[int, int]], seed: int) -> dict[str, np.ndarray]:
        r = np.random.default_rng(seed)
        return {n: (0.1 * r.standard_normal(sh)).astype(np.float32) for n, sh in shapes.items()}

    found = []
    for shapes, pairs in (({"fc.weight": (2, 8)}, range(90, 120)),
                          ({"fc1.weight": (2, 16), "fc2.weight": (2, 16)}, range(110, 140))):
        for i in pairs:
            a, b = model(shapes, 2 * i), model(shapes, 2 * i + 1)
            rep = answer(fingerprint_arrays(a), [BankModel("b", "x", "checkpoint", fingerprint_arrays(b))])
            if rep.derived or rep.same:
                found.append((list(shapes), i))
            if i == pairs[0]:
                copy = answer(fingerprint_arrays(a), [BankModel("b", "a", "checkpoint", fingerprint_arrays(a))])
                assert [f.entry for f in copy.same] == ["b/a"]
    assert found == []


def test_fine_tunes_of_an_unbanked_base_are_not_merges_of_its_banked_fine_tunes() -> None:
    """With three flagged fine-tunes of one base in the bank and not the base, the base
    itself and an unrelated fine-tune of it were 'a merge of F0 0.33, F1 0.33, F2 0.33'
    (their average is that close to the base); a merge must now need every one of its
    parts. Merges of the fine-tunes, also converted to fp16, are still found."""
    specs = {k: v for k, v in modelgen.sd15(SCALE, dt="F32").items() if v[0] == "F32"}
    base = ev.random_model(specs, 1)
    tunes = [ev.fine_tune(base, 0.05, 10 + i) for i in range(3)]
    bank = [BankModel("f", f"F{i}", "checkpoint", fingerprint_arrays(t)) for i, t in enumerate(tunes)]

    def merges(model: ev.Lazy) -> list[dict[str, float]]:
        return [m.parts for m in answer(fingerprint_arrays(model), bank).merges if m.component == "unet"]

    for model in (base, ev.fine_tune(base, 0.05, 99)):
        rep = answer(fingerprint_arrays(model), bank)
        assert rep.merges == [] and any("not shown to be a merge" in n for n in rep.notes)
        # relatives whose direction is unknown (their base is not banked): context
        assert rep.derived == [] and {d.entry for d in rep.related} == {"f/F0", "f/F1", "f/F2"}
    (parts,) = merges(ev.to_fp16(ev.merge([(0.3, tunes[0]), (0.7, tunes[2])])))
    assert set(parts) == {"f/F0", "f/F2"} and abs(parts["f/F0"] - 0.3) < 0.02


def test_a_copy_without_its_small_output_head_is_still_the_same_weights() -> None:
    """A Llama saved without its output head (final norm and LM head: a backbone export)
    lacks a small part of the entry: still a 'same-weights' match, the note saying what it
    lacks (a VAE alone is context: tests/test_cli_models.py)."""
    from assay.models.lineage_analyzer import lineage_matches

    rng = np.random.default_rng(3)
    arrays = {k: rng.standard_normal(s).astype(np.float32)
              for k, (_, s) in modelgen.llama(hidden=64, layers=4, vocab=256, ff=256).items()}
    entry = BankModel("f", "llm", "checkpoint", fingerprint_arrays(arrays))
    backbone = {k: v for k, v in arrays.items() if k not in ("lm_head.weight", "model.norm.weight")}
    rep = answer(fingerprint_arrays(backbone), [entry])
    (same,) = rep.same
    assert same.lacks == ["output head"] and same.entry_share > 0.5
    (m,) = lineage_matches(rep, {"f/llm": "checkpoint"})
    assert m.value == "same-weights" and "the suspect lacks output head" in (m.note or "")


def test_a_copy_of_a_known_base_is_not_a_match() -> None:
    """A base is a known, unflagged model banked for reference: a fine-tune of it was
    context, but a plain copy of it (the public model every user has, converted to fp16)
    was a 'same-weights' match counted as a finding, and a 'derived' match with every
    banked flagged fine-tune of it. Both are context now."""
    from assay.models.lineage_analyzer import lineage_matches

    specs = {k: v for k, v in modelgen.sd15(SCALE, dt="F32").items() if v[0] == "F32"}
    base = ev.random_model(specs, 1)
    flagged = ev.fine_tune(base, 0.05, 2)
    bank = [BankModel("bases", "sd15", "base", fingerprint_arrays(base)),
            BankModel("flagged", "F", "checkpoint", fingerprint_arrays(flagged))]
    kinds = {"bases/sd15": "base", "flagged/F": "checkpoint"}
    rep = answer(fingerprint_arrays(ev.to_fp16(base)), bank)
    assert [f.entry for f in rep.same] == ["bases/sd15"] and [f.entry for f in rep.related] == ["flagged/F"]
    # the flagged fine-tune derives from the base this file is: not a finding against it
    assert lineage_matches(rep, kinds) == []
    # a copy of the flagged fine-tune still is
    rep = answer(fingerprint_arrays(ev.to_fp16(flagged)), bank)
    assert [(m.content_id, m.value) for m in lineage_matches(rep, kinds)] == [("F", "same-weights")]


@pytest.mark.parametrize("change", ["full", "lora"])
def test_a_sibling_fine_tune_of_a_flagged_checkpoints_base_is_not_derived_from_it(change: str) -> None:
    """Two fine-tunes of one base share the base, not each other's training: a suspect
    S = B + its own change was a 'derived' match against a flagged F = B + F's change
    (their sketch cosine is near 1 because both are near B), with B banked or not. With B
    banked, S derives from F only if it carries F's change (S - B against F - B); without
    it, closeness to F is context that says it cannot tell. A fine-tune of F, also one with
    a LoRA merged on top, is still 'derived'."""
    from assay.models.lineage_analyzer import lineage_matches

    specs = {k: v for k, v in modelgen.sd15(SCALE, dt="F32").items() if v[0] == "F32"}
    base = ev.kept(ev.random_model(specs, 1))

    def tune(m: ev.Model, seed: int) -> ev.Model:
        return ev.fine_tune(m, 0.05, seed) if change == "full" else ev.apply_lora(
            m, ev.random_lora(m, 8, seed, rel=0.15), 1.0)

    flagged = ev.kept(tune(base, 2))
    kinds = {"bases/B": "base", "flagged/F": "checkpoint"}
    with_base = [BankModel("bases", "B", "base", fingerprint_arrays(base)),
                 BankModel("flagged", "F", "checkpoint", fingerprint_arrays(flagged))]
    sibling = fingerprint_arrays(tune(base, 3))
    for bank in (with_base, with_base[1:]):
        rep = answer(sibling, bank)
        assert "flagged/F" not in {f.entry for f in rep.derived}
        assert lineage_matches(rep, kinds) == []
        (rel,) = rep.related
        assert rel.entry == "flagged/F" and "derived" in rel.explanation.rsplit(":", 1)[-1]  # "not (reported as) derived"
    (rel,) = answer(sibling, with_base).related
    assert rel.base == "bases/B" and rel.carried is not None and abs(rel.carried) < 0.1
    for descendant in (ev.fine_tune(flagged, 0.02, 4), ev.to_fp16(ev.apply_lora(
            flagged, ev.random_lora(flagged, 4, 5, rel=0.05), 1.0))):
        rep = answer(fingerprint_arrays(descendant), with_base)
        (d,) = [f for f in rep.derived if f.entry == "flagged/F"]
        assert d.base == "bases/B" and d.carried is not None and abs(d.carried - 1) < 0.1
        assert ("F", "derived") in [(m.content_id, m.value) for m in lineage_matches(rep, kinds)]


def test_nan_suspect_tensors_are_left_out_with_a_note() -> None:
    arrays = _small(1)
    bank = [BankModel("b", "A", "base", fingerprint_arrays(arrays))]
    key = next(k for k in arrays if k.endswith("attn1.to_q.weight"))
    broken = dict(arrays)
    broken[key] = arrays[key].copy()
    broken[key][0, 0] = np.nan
    rep = answer(fingerprint_arrays(broken), bank)
    assert [s.entry for s in rep.same] == ["b/A"]
    assert any("NaN/Inf" in n for n in rep.notes)


# ------------------------------------------------------------------ banks


@pytest.fixture
def store(store: Store) -> Store:
    """conftest's store (SQLite, then PostgreSQL, marked postgres) with the banks used here."""
    store.create_bank("flagged")
    store.create_bank("bases")
    return store


def test_bank_round_trip_and_query(store: Store, tmp_path: Path) -> None:
    A = _small(1)
    lora = ev.random_lora(A, 4, 11)
    fs = FingerprintStore(store)
    path_a = modelgen.write_safetensors(tmp_path / "a.safetensors", {k: ("F32", v.shape) for k, v in A.items()},
                                        values=A)
    lora_path = tmp_path / "l.safetensors"
    lk = lora.kohya()
    modelgen.write_safetensors(lora_path, {k: ("F32", v.shape) for k, v in lk.items()}, values=lk)
    rec = add_model(store, "bases", "sd15-A", path_a, "base")
    add_model(store, "flagged", "bad-lora", lora_path, "lora", note="flagged for testing")
    with pytest.raises(InvalidBankInput):
        add_model(store, "bases", "sd15-A", path_a, "base")
    with pytest.raises(InvalidBankInput):
        add_model(store, "flagged", "x", lora_path, "checkpoint")
    assert rec.size < path_a.stat().st_size
    assert [(r.bank, r.content_id, r.kind) for r in fs.list()] == [
        ("bases", "sd15-A", "base"), ("flagged", "bad-lora", "lora")]
    got = fs.get("flagged", "bad-lora")
    assert got is not None and got.fingerprint.kind == "lora"

    suspect = fingerprint_arrays(ev.to_fp16(ev.fine_tune(ev.apply_lora(A, lora, 0.4), 0.01, 2)))
    rep = query(store, suspect)
    assert [d.entry for d in rep.derived] == ["bases/sd15-A"]
    assert [lo.entry for lo in rep.loras] == ["flagged/bad-lora"]
    assert abs(rep.loras[0].strength - 0.4) < 0.05

    # a truncated record is "not comparable", never a crash
    with store.engine.begin() as conn:
        t = fingerprints_table
        data = conn.execute(t.select().where(t.c.content_id == "bad-lora")).first().data
        conn.execute(t.update().where(t.c.content_id == "bad-lora").values(data=data[: len(data) // 2]))
    rep = query(store, suspect)
    assert any(n.entry == "flagged/bad-lora" and "unreadable" in n.reason for n in rep.not_comparable)
    assert fs.remove("flagged", "bad-lora") and not fs.remove("flagged", "bad-lora")



def test_deleting_a_bank_deletes_its_model_fingerprints(store: Store, tmp_path: Path) -> None:
    A = _small(1)
    path_a = modelgen.write_safetensors(tmp_path / "a.safetensors", {k: ("F32", v.shape) for k, v in A.items()},
                                        values=A)
    add_model(store, "bases", "sd15-A", path_a, "base")
    add_model(store, "flagged", "same-A", path_a, "base")
    store.delete_bank("flagged")
    with store.engine.begin() as conn:
        left = conn.execute(sa.select(fingerprints_table.c.content_id)).scalars().all()
    assert left == ["sd15-A"]
    assert [r.content_id for r in FingerprintStore(store).list()] == ["sd15-A"]

def test_index_picks_the_right_candidates_among_many(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "many.sqlite3"))
    store.create_bank("many")
    fs = FingerprintStore(store)
    A = _small(1)
    fa = fingerprint_arrays(A)
    rng = np.random.default_rng(0)
    # Decoys: fingerprints of independent random models, built from the real one by
    # replacing its sketches (cheap, and just as unrelated).
    for i in range(20):
        fp = Fingerprint(k=fa.k, kind="base")
        for n, t in fa.tensors.items():
            fp.tensors[n] = type(t)(n, t.shape, rng.standard_normal(t.sketch.shape).astype(np.float32)
                                    * np.float32(np.std(t.sketch) + 1e-3), t.norm, 0.0)
        fs.add("many", f"decoy-{i}", fp)
    fs.add("many", "A", fa, kind="base")
    idx = fs.index()
    assert len(idx) == 21
    rep = query(store, fingerprint_arrays(ev.fine_tune(A, 0.05, 1)), index=idx)
    assert [d.entry for d in rep.derived] == ["many/A"]
    store.close()


def test_the_flagged_checkpoints_base_comes_along_as_a_candidate(tmp_path: Path) -> None:
    """Whether a suspect carries a flagged checkpoint's change is measured from its banked
    base: with the checkpoint's own fine-tunes banked too (they outrank the base among the
    few candidates compared in full), a fine-tune of the checkpoint is still derived from
    it, the base compared as well (the closest banked base always comes along)."""
    store = Store(str(tmp_path / "b.sqlite3"))
    store.create_bank("f")
    fs = FingerprintStore(store)
    base = ev.kept(_small(1))
    flagged = ev.kept(ev.fine_tune(base, 0.05, 2))
    fs.add("f", "B", fingerprint_arrays(base), kind="base")
    fs.add("f", "F", fingerprint_arrays(flagged))
    for i in range(4):  # further fine-tunes of F, flagged as well
        fs.add("f", f"F{i}", fingerprint_arrays(ev.fine_tune(flagged, 0.01, 10 + i)))
    rep = query(fs, fingerprint_arrays(ev.fine_tune(flagged, 0.02, 3)), limit=3)
    assert "f/F" in {d.entry for d in rep.derived}, rep.explanations()
    assert any(d.entry == "f/F" and d.base == "f/B" for d in rep.derived)
    store.close()


# ------------------------------------------------------------------ LoRA extraction


def test_low_rank_factors_recover_rank_and_energy() -> None:
    rng = np.random.default_rng(2)
    delta = rng.standard_normal((300, 6)).astype(np.float32) @ rng.standard_normal((6, 500)).astype(np.float32)
    up, down, kept = low_rank_factors(delta, energy=0.999, max_rank=32)
    assert down.shape[0] == 6 and kept > 0.999
    np.testing.assert_allclose(up @ down, delta, atol=1e-3)
    up, down, kept = low_rank_factors(delta, energy=0.999, max_rank=3)
    assert down.shape[0] == 3 and kept < 0.999


def test_extract_recovers_a_merged_lora(tmp_path: Path) -> None:
    A = _small(1)
    lora = ev.random_lora(A, 4, 21)
    suspect = ev.apply_lora(A, lora, 1.0)
    specs = {k: ("F32", v.shape) for k, v in A.items()}
    base_p = modelgen.write_safetensors(tmp_path / "base.safetensors", specs, values=A)
    sus_p = modelgen.write_safetensors(tmp_path / "sus.safetensors", specs, values=suspect)
    out = tmp_path / "extracted.safetensors"
    rep = extract(sus_p, base_p, out, energy=0.99, max_rank=16)
    assert rep.modules == len(lora.factors)
    assert set(rep.ranks) == {4}
    extracted = fingerprint_file(out)
    truth = lora_fingerprint(lora.kohya())
    assert set(extracted.tensors) == set(truth.tensors)
    for n, t in truth.tensors.items():
        np.testing.assert_allclose(extracted.tensors[n].sketch, t.sketch, rtol=1e-2, atol=1e-4)
    with open_model(out) as m:  # a valid kohya file for the readers
        assert any(k.endswith(".lora_down.weight") for k in m.tensors)
    with pytest.raises(InputError, match="exists"):
        extract(sus_p, base_p, out)
    # the recovered LoRA, banked, is found in the suspect at strength ~1
    bank = [BankModel("b", "A", "base", fingerprint_file(base_p)), BankModel("f", "x", "lora", extracted)]
    found = answer(fingerprint_file(sus_p), bank).loras
    assert [lo.entry for lo in found] == ["f/x"] and abs(found[0].strength - 1) < 0.05


def test_extract_refuses_unrelated_architectures(tmp_path: Path) -> None:
    A, X = _small(1), _small(2, "sdxl_base")
    a = modelgen.write_safetensors(tmp_path / "a.safetensors", {k: ("F32", v.shape) for k, v in A.items()}, values=A)
    x = modelgen.write_safetensors(tmp_path / "x.safetensors", {k: ("F32", v.shape) for k, v in X.items()}, values=X)
    with pytest.raises(InputError):
        extract(x, a, tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists()


def test_unknown_lora_rank_is_estimated_and_absence_is_not_proof() -> None:
    A = _small(1)
    bank = [BankModel("b", "A", "base", fingerprint_arrays(A))]
    lora = ev.random_lora(A, 6, 5)
    rep = answer(fingerprint_arrays(ev.fine_tune(ev.apply_lora(A, lora, 0.7), 0.01, 3)), bank)
    assert rep.low_rank is not None and rep.low_rank.rank == 6
    plain = answer(fingerprint_arrays(ev.fine_tune(A, 0.02, 3)), bank)
    assert plain.low_rank is None and [d.entry for d in plain.derived] == ["b/A"]
    nothing = answer(fingerprint_arrays(_small(9)), bank)
    assert not nothing.found
    assert any("not evidence of an original" in line for line in nothing.explanations())


def test_malformed_lora_files_get_clear_errors(tmp_path: Path) -> None:
    mod = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    bad_rank = {mod + ".lora_down.weight": np.ones((4, 20), np.float32),
                mod + ".lora_up.weight": np.ones((20, 3), np.float32)}
    with pytest.raises(InputError, match="rank"):
        lora_fingerprint(bad_rank)
    unknown = {"lora_vision_tower_x.lora_down.weight": np.ones((2, 8), np.float32),
               "lora_vision_tower_x.lora_up.weight": np.ones((8, 2), np.float32)}
    with pytest.raises(InputError, match="no LoRA module"):
        lora_fingerprint(unknown)


# ------------------------------------------------------------------ LoHa / LoKr / DoRA


@pytest.fixture(scope="module")
def lycoris_world() -> tuple[dict[str, np.ndarray], list[BankModel], ev.Lycoris, ev.Lycoris]:
    A = _small(1)
    loha, lokr = ev.random_loha(A, 4, 41), ev.random_lokr(A, 2, 42)
    assert loha.deltas and lokr.deltas
    bank = [BankModel("b", "A", "base", fingerprint_arrays(A)),
            BankModel("b", "B", "base", fingerprint_arrays(_small(2))),
            BankModel("f", "loha", "lora", lora_fingerprint(loha.tensors)),
            BankModel("f", "lokr", "lora", lora_fingerprint(lokr.tensors))]
    return A, bank, loha, lokr


@pytest.mark.parametrize("which", ["loha", "lokr"])
def test_merged_loha_and_lokr_are_found_at_their_strength(lycoris_world, which: str) -> None:
    A, bank, loha, lokr = lycoris_world
    ly = {"loha": loha, "lokr": lokr}[which]
    # merged in the weights by numpy from the LyCORIS formulas, then stored as fp16
    rep = answer(fingerprint_arrays(ev.to_fp16(ev.apply_deltas(A, ly.deltas, 0.5))), bank)
    assert [lo.entry for lo in rep.loras] == [f"f/{which}"], rep.explanations()
    assert abs(rep.loras[0].strength - 0.5) <= 0.05
    assert [d.entry for d in rep.derived] == ["b/A"]


def test_loha_and_lokr_together_and_unrelated_models_give_no_false_positive(lycoris_world) -> None:
    A, bank, loha, lokr = lycoris_world
    both = ev.apply_deltas(ev.apply_deltas(A, loha.deltas, 0.3), lokr.deltas, 0.8)
    found = {lo.entry: lo.strength for lo in answer(fingerprint_arrays(both), bank).loras}
    assert set(found) == {"f/loha", "f/lokr"}
    assert abs(found["f/loha"] - 0.3) <= 0.05 and abs(found["f/lokr"] - 0.8) <= 0.05
    plain = answer(fingerprint_arrays(ev.fine_tune(A, 0.02, 4)), bank)
    assert plain.loras == []
    C = _small(9)
    for suspect in (C, ev.apply_deltas(C, loha.deltas, 0.5)):
        rep = answer(fingerprint_arrays(suspect), bank)
        assert not rep.found, rep.explanations()


def test_dora_is_fingerprinted_as_its_low_rank_delta_with_a_note() -> None:
    A = _small(1)
    lora = ev.random_lora(A, 4, 13)
    plain = lora_fingerprint(lora.kohya())
    kohya = lora.kohya()
    mods = {k.removesuffix(".lora_up.weight") for k in kohya if k.endswith(".lora_up.weight")}
    dora = dict(kohya) | {m + ".dora_scale": np.ones((kohya[m + ".lora_up.weight"].shape[0], 1), np.float32)
                          for m in mods}
    fp = lora_fingerprint(dora)
    assert set(fp.tensors) == set(plain.tensors)
    for n, t in plain.tensors.items():
        np.testing.assert_array_equal(fp.tensors[n].sketch, t.sketch)
    assert any(f"{len(mods)} DoRA modules approximated by their low-rank delta" in n for n in fp.notes)
    assert not any("DoRA" in n for n in plain.notes)
