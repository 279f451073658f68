"""Lineage beyond Stable Diffusion: BERT- and Llama-style transformers.

Random-weight models with the real Hugging Face key names (tests/modelgen.py's Llama
layout, a BERT layout below), written by the real writers (the ``safetensors``
package, the ``gguf`` package's GGUFWriter as llama.cpp's converter uses it), and
transformed as people do: a task checkpoint re-saved as its base model, sharded
folders, GGUF conversion (with llama.cpp's Q/K row permutation, in F16 and Q8_0),
fine-tunes, merges, PEFT LoRAs merged at a strength. Targets as for SD (issue #11):
strength and merge ratio within +-0.05, no link to an unrelated model of the same
architecture, and component names taken from the model (no ``vae`` in a BERT).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

import modelgen
from assay.models.fingerprint import Fingerprint, fingerprint_arrays, fingerprint_file
from assay.models.lineage import BankModel, answer
from assay.models.lora_apply import lora_fingerprint
from assay.models.names import component_label, layout_for

Arrays = dict[str, np.ndarray]


def bert_specs(prefix: str = "bert.", *, hidden: int = 96, layers: int = 3, ff: int = 192,
               vocab: int = 300) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {
        f"{prefix}embeddings.word_embeddings.weight": (vocab, hidden),
        f"{prefix}embeddings.position_embeddings.weight": (128, hidden),
        f"{prefix}embeddings.token_type_embeddings.weight": (2, hidden),
        f"{prefix}embeddings.LayerNorm.weight": (hidden,),
        f"{prefix}embeddings.LayerNorm.bias": (hidden,),
    }
    for n in range(layers):
        p = f"{prefix}encoder.layer.{n}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            out[p + m + ".weight"] = (hidden, hidden)
            out[p + m + ".bias"] = (hidden,)
        out[p + "attention.output.LayerNorm.weight"] = (hidden,)
        out[p + "intermediate.dense.weight"] = (ff, hidden)
        out[p + "intermediate.dense.bias"] = (ff,)
        out[p + "output.dense.weight"] = (hidden, ff)
        out[p + "output.dense.bias"] = (hidden,)
        out[p + "output.LayerNorm.weight"] = (hidden,)
    out[f"{prefix}pooler.dense.weight"] = (hidden, hidden)
    out[f"{prefix}pooler.dense.bias"] = (hidden,)
    if prefix:
        out["classifier.weight"] = (4, hidden)
        out["classifier.bias"] = (4,)
    return out


def llama_specs(**kw: int) -> dict[str, tuple[int, ...]]:
    return {k: shape for k, (_dt, shape) in modelgen.llama(**kw).items()}


LLAMA = {"hidden": 128, "layers": 3, "vocab": 320, "ff": 256, "kv": 64}
HEADS, KV_HEADS = 4, 2  # head_dim 32


def random_model(specs: Mapping[str, tuple[int, ...]], seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in specs.items():
        fan_in = shape[-1] if len(shape) == 2 else 1
        if len(shape) == 1:  # norms near 1, biases near 0
            out[k] = (1.0 if "norm" in k.lower() else 0.0) + 0.02 * rng.standard_normal(shape)
        else:
            out[k] = rng.standard_normal(shape) / np.sqrt(fan_in)
        out[k] = out[k].astype(np.float32)
    return out


def fine_tune(a: Arrays, rel: float, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    return {k: (v + rel * np.linalg.norm(v) / np.sqrt(v.size) * rng.standard_normal(v.shape)).astype(np.float32)
            for k, v in a.items()}


def fp(arrays: Mapping[str, np.ndarray], kind: str = "checkpoint") -> Fingerprint:
    return fingerprint_arrays(arrays, kind=kind)


def save(path: Path, arrays: Mapping[str, np.ndarray], dtype: type = np.float32) -> Path:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v.astype(dtype)) for k, v in arrays.items()}, str(path))
    return path


# ------------------------------------------------------------------ naming


def test_bert_components_are_named_from_the_model_not_sd() -> None:
    f = fp(random_model(bert_specs(), 1))
    groups = set(f.flat().groups)
    assert not groups & {"vae", "unet", "text_encoder", "text_encoder_2"}
    assert {"embeddings", "layers"} <= groups
    assert layout_for(bert_specs()).kind == "generic"
    assert layout_for(modelgen.sd15(1 / 16)).kind == "sd"  # the SD family keeps its names
    assert component_label("unet/down_blocks.0.attentions.0.proj_in.weight") == "unet"


def test_task_checkpoint_and_its_base_are_the_same_weights() -> None:
    task = random_model(bert_specs("bert."), 2)
    base = {k.removeprefix("bert."): v for k, v in task.items() if k.startswith("bert.")}
    rep = answer(fp(base), [BankModel("flagged", "bert-task", "checkpoint", fp(task))])
    assert [s.entry for s in rep.same] == ["flagged/bert-task"]
    text = " ".join(rep.explanations())
    assert "vae" not in text and "unet" not in text


# ------------------------------------------------------------------ transformations


@pytest.fixture(scope="module")
def llama_world() -> dict[str, Arrays]:
    spec = llama_specs(**LLAMA)
    a = random_model(spec, 10)
    return {"A": a, "B": random_model(spec, 11), "U": random_model(spec, 12),
            "A_ft2": fine_tune(a, 0.02, 13), "A_ft5": fine_tune(a, 0.05, 14)}


def _bank(world: Mapping[str, Arrays], names: tuple[str, ...] = ("A", "B")) -> list[BankModel]:
    return [BankModel("flagged", n, "checkpoint", fp(world[n])) for n in names]


def test_fine_tunes_are_derived_and_unrelated_models_never_linked(llama_world: dict[str, Arrays]) -> None:
    bank = _bank(llama_world)
    for name in ("A_ft2", "A_ft5"):  # A's base is not banked: a relative, direction unknown
        rep = answer(fp(llama_world[name]), bank)
        assert [d.entry for d in rep.related] == ["flagged/A"] and not rep.derived, name
        assert not rep.same and not rep.merges and not rep.loras
    rep = answer(fp(llama_world["A_ft5"]), [BankModel("bases", "B0", "base", fp(llama_world["A"])), bank[1]])
    assert [d.entry for d in rep.derived] == ["bases/B0"] and "layers fine-tuned" in rep.derived[0].explanation
    rep = answer(fp(llama_world["U"]), bank)
    assert not rep.found, rep.explanations()


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.8])
def test_merge_ratio_recovered(llama_world: dict[str, Arrays], ratio: float) -> None:
    a, b = llama_world["A"], llama_world["B"]
    merged = {k: ratio * a[k] + (1 - ratio) * b[k] for k in a}
    rep = answer(fp(merged), _bank(llama_world))
    assert rep.merges, rep.explanations()
    for m in rep.merges:
        if m.component == "layers":
            assert abs(m.parts["flagged/A"] - ratio) <= 0.05
            assert abs(m.parts["flagged/B"] - (1 - ratio)) <= 0.05
    assert any(m.component == "layers" for m in rep.merges)


def _peft_lora(base: Arrays, rank: int, seed: int, targets: tuple[str, ...], rel: float = 0.15
               ) -> tuple[Arrays, dict[str, np.ndarray]]:
    """PEFT's own names for a LoRA of a causal LM, and the dense delta of each target."""
    rng = np.random.default_rng(seed)
    tensors, deltas = {}, {}
    for key, w in base.items():
        if w.ndim != 2 or not key.endswith(tuple(t + ".weight" for t in targets)):
            continue
        o, i = w.shape
        a = rng.standard_normal((rank, i)).astype(np.float32)
        b = rng.standard_normal((o, rank)).astype(np.float32)
        scale = rel * np.linalg.norm(w) / np.linalg.norm(b @ a)
        b *= scale
        module = "base_model.model." + key.removesuffix(".weight")
        tensors[module + ".lora_A.weight"] = a
        tensors[module + ".lora_B.weight"] = b
        deltas[key] = b @ a  # lora_alpha == r below: scaling 1
    return tensors, deltas


def _write_peft(folder: Path, tensors: Arrays, rank: int) -> Path:
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": rank, "lora_alpha": rank, "task_type": "CAUSAL_LM",
        "target_modules": ["q_proj", "v_proj", "down_proj"], "base_model_name_or_path": "test/llama",
    }))
    save(folder / "adapter_model.safetensors", tensors)
    return folder


@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_peft_lora_of_a_causal_lm_is_found_at_its_strength(
    tmp_path: Path, llama_world: dict[str, Arrays], strength: float
) -> None:
    base = llama_world["A"]
    tensors, deltas = _peft_lora(base, 8, 20, ("q_proj", "v_proj", "down_proj"))
    adapter = _write_peft(tmp_path / "adapter", tensors, 8)
    lora = fingerprint_file(adapter)  # banked from the folder exactly as a user would
    assert lora.kind == "lora" and lora.tensors
    merged = {k: v + strength * deltas[k] if k in deltas else v for k, v in base.items()}
    bank = [*_bank(llama_world, ("A",)), BankModel("flagged", "lora", "lora", lora)]
    rep = answer(fp(merged), bank)
    assert [lo.entry for lo in rep.loras] == ["flagged/lora"], rep.explanations()
    assert abs(rep.loras[0].strength - strength) <= 0.05
    # the same LoRA is not "found" in a model that never had it
    assert not answer(fp(llama_world["A_ft2"]), bank).loras


def test_lora_of_another_model_is_not_found(llama_world: dict[str, Arrays]) -> None:
    base = llama_world["A"]
    tensors, deltas = _peft_lora(base, 8, 21, ("q_proj", "v_proj"))
    other, _ = _peft_lora(base, 8, 22, ("q_proj", "v_proj"))
    merged = {k: v + deltas[k] if k in deltas else v for k, v in base.items()}
    bank = [*_bank(llama_world, ("A",)),
            BankModel("flagged", "other", "lora", lora_fingerprint(other))]
    assert not answer(fp(merged), bank).loras


# ------------------------------------------------------------------ files and conversions


def test_sharded_folder_equals_the_single_file(tmp_path: Path, llama_world: dict[str, Arrays]) -> None:
    a = llama_world["A"]
    single = save(tmp_path / "model.safetensors", a)
    folder = tmp_path / "sharded"
    folder.mkdir()
    keys = sorted(a)
    halves = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    weight_map = {}
    for fname, ks in halves.items():
        save(folder / fname, {k: a[k] for k in ks}, np.float16)
        weight_map.update({k: fname for k in ks})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    bank = [BankModel("flagged", "A", "checkpoint", fingerprint_file(single))]
    rep = answer(fingerprint_file(folder), bank)
    assert [s.entry for s in rep.same] == ["flagged/A"], rep.explanations()


def _llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf.py does to q_proj/k_proj rows of a Llama."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_gguf(path: Path, hf: Arrays, quant: str | None) -> Path:
    import gguf
    from gguf.quants import quantize

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, LLAMA["layers"])
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(LLAMA["layers"])
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_embedding_length(LLAMA["hidden"])
    for key, arr in hf.items():
        name = tmap.get_name(key, try_suffixes=(".weight", ".bias"))
        assert name, key
        if key.endswith("q_proj.weight"):
            arr = _llama_cpp_permute(arr, HEADS)
        elif key.endswith("k_proj.weight"):
            arr = _llama_cpp_permute(arr, KV_HEADS)
        if quant and arr.ndim == 2:
            qt = gguf.GGMLQuantizationType[quant]
            w.add_tensor(name, quantize(arr, qt), raw_dtype=qt)
        else:
            w.add_tensor(name, arr.astype(np.float16 if arr.ndim == 2 else np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_conversion_is_the_same_weights(tmp_path: Path, llama_world: dict[str, Arrays]) -> None:
    a = llama_world["A"]
    bank = _bank(llama_world)
    rep = answer(fingerprint_file(_write_gguf(tmp_path / "a-f16.gguf", a, None)), bank)
    assert [s.entry for s in rep.same] == ["flagged/A"], rep.explanations()


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_0"])
def test_quantized_gguf_is_the_same_weights_within_its_rounding(
    tmp_path: Path, llama_world: dict[str, Arrays], quant: str
) -> None:
    bank = _bank(llama_world)
    rep = answer(fingerprint_file(_write_gguf(tmp_path / "a.gguf", llama_world["A"], quant)), bank)
    assert [s.entry for s in rep.same] == ["flagged/A"] and not rep.derived, rep.explanations()
    assert f"quantized ({quant})" in rep.same[0].explanation
    assert "cannot be ruled out" in rep.same[0].explanation
    # an unrelated model of the same architecture, quantized as coarsely, is linked to nothing
    rep = answer(fingerprint_file(_write_gguf(tmp_path / "u.gguf", llama_world["U"], quant)), bank)
    assert not rep.found, rep.explanations()


def test_a_fine_tune_converted_to_gguf_stays_a_fine_tune(tmp_path: Path, llama_world: dict[str, Arrays]) -> None:
    # flagged F is A fine-tuned 5%, with A banked as its base
    bank = [BankModel("bases", "A", "base", fp(llama_world["A"])),
            BankModel("flagged", "F", "checkpoint", fp(llama_world["A_ft5"]))]
    ft = fine_tune(llama_world["A_ft5"], 0.02, 15)
    rep = answer(fingerprint_file(_write_gguf(tmp_path / "ft.gguf", ft, "Q8_0")), bank)
    (d,) = [d for d in rep.derived if d.entry == "flagged/F"]
    assert not rep.same and "Q8_0 rounding" in d.explanation, rep.explanations()
    # another fine-tune of A (a sibling of F), as GGUF F16: derived from A, not from F
    rep = answer(fingerprint_file(_write_gguf(tmp_path / "ft16.gguf", llama_world["A_ft2"], None)), bank)
    assert [d.entry for d in rep.derived] == ["bases/A"] and [r.entry for r in rep.related] == ["flagged/F"]


def test_peft_lora_of_a_bert_classifier_is_banked_and_found(tmp_path: Path) -> None:
    base = random_model(bert_specs("bert."), 30)
    tensors, deltas = _peft_lora(base, 4, 31, ("attention.self.query", "attention.self.value"))
    assert tensors and all(k.startswith("base_model.model.bert.encoder.layer.") for k in tensors)
    lora = fingerprint_file(_write_peft(tmp_path / "adapter", tensors, 4))
    merged = {k: v + 0.5 * deltas[k] if k in deltas else v for k, v in base.items()}
    # the suspect is re-saved as a plain BertModel: no "bert." prefix, no classifier
    suspect = {k.removeprefix("bert."): v for k, v in merged.items() if k.startswith("bert.")}
    bank = [BankModel("flagged", "bert", "base", fp(base)), BankModel("flagged", "lora", "lora", lora)]
    rep = answer(fp(suspect), bank)
    assert [lo.entry for lo in rep.loras] == ["flagged/lora"], rep.explanations()
    assert abs(rep.loras[0].strength - 0.5) <= 0.05
    assert "vae" not in " ".join(rep.explanations())
