"""Lineage through the Hugging Face quantizers' layouts (src/assay/models/formats/quantized.py):
a flagged model republished as GPTQ, AWQ or bitsandbytes 8-/4-bit (NF4, FP4, with and
without double quantization) was "non-float tensors not fingerprinted" and linked to
nothing. The quantized files are written here from the layouts the quantizers publish
(AutoGPTQ's v1 checkpoint format, AutoAWQ's GEMM packing, bitsandbytes' serialised
QuantState) by round-to-nearest quantization of random-weight Llama models: none of
those libraries runs here (they need CUDA), so the writers are this file's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assay.models.fingerprint import fingerprint_file
from assay.models.formats.quantized import NF4 as _NF4
from assay.models.lineage import BankModel, answer
from test_lineage_transformers import LLAMA, Arrays, fine_tune, fp, llama_specs, random_model

NF4 = np.array(_NF4, dtype=np.float32)
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def world() -> dict[str, Arrays]:
    spec = llama_specs(**LLAMA)
    a = random_model(spec, 10)
    return {"A": a, "B": random_model(spec, 11), "U": random_model(spec, 12), "A_ft5": fine_tune(a, 0.05, 14)}


def _pack(codes: np.ndarray, bits: int, axis: int) -> np.ndarray:
    per = 32 // bits
    c = codes.astype(np.uint32)
    if axis == 0:
        c = c.reshape(c.shape[0] // per, per, c.shape[1])
        words = sum(c[:, i, :] << np.uint32(bits * i) for i in range(per))
    else:
        c = c.reshape(c.shape[0], c.shape[1] // per, per)
        words = sum(c[:, :, i] << np.uint32(bits * i) for i in range(per))
    return np.asarray(words, dtype=np.uint32).view(np.int32)


def _rtn(w_t: np.ndarray, bits: int, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric round-to-nearest of (in, out) weights by groups of inputs: codes, zero
    points, scales."""
    n_in, out = w_t.shape
    g = w_t.reshape(n_in // group, group, out)
    lo, hi = np.minimum(g.min(axis=1), 0), np.maximum(g.max(axis=1), 0)
    scale = np.maximum(hi - lo, 1e-8) / ((1 << bits) - 1)
    zero = np.clip(np.round(-lo / scale), 0, (1 << bits) - 1)
    codes = np.clip(np.round(g / scale[:, None, :]) + zero[:, None, :], 0, (1 << bits) - 1)
    return codes.reshape(n_in, out).astype(np.uint8), zero.astype(np.uint8), scale.astype(np.float16)


def gptq(a: Arrays, bits: int = 4, group: int = 32, act_order: bool = False) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(5)
    for k, v in a.items():
        if not any(f"{m}.weight" in k for m in LINEAR):
            out[k] = v.astype(np.float16)
            continue
        p = k[: -len(".weight")]
        w_t = v.T  # (in, out)
        n_in = w_t.shape[0]
        if act_order:  # inputs quantized in another order: each input's group in g_idx
            order = rng.permutation(n_in)
            g_idx = np.empty(n_in, dtype=np.int32)
            g_idx[order] = np.arange(n_in) // group
            codes = np.empty(w_t.shape, dtype=np.uint8)
            c, zero, scale = _rtn(w_t[order], bits, group)
            codes[order] = c
        else:
            g_idx = (np.arange(n_in) // group).astype(np.int32)
            codes, zero, scale = _rtn(w_t, bits, group)
        out[f"{p}.qweight"] = _pack(codes, bits, 0)
        out[f"{p}.qzeros"] = _pack(zero.astype(np.int64) - 1 & ((1 << bits) - 1), bits, 1)  # v1: zero - 1
        out[f"{p}.scales"] = scale
        out[f"{p}.g_idx"] = g_idx
    return out


def awq(a: Arrays, group: int = 32) -> dict[str, np.ndarray]:
    order = np.array([0, 2, 4, 6, 1, 3, 5, 7])
    out: dict[str, np.ndarray] = {}
    for k, v in a.items():
        if not any(f"{m}.weight" in k for m in LINEAR):
            out[k] = v.astype(np.float16)
            continue
        p = k[: -len(".weight")]
        codes, zero, scale = _rtn(v.T, 4, group)

        def interleave(c: np.ndarray) -> np.ndarray:
            c = c.reshape(c.shape[0], -1, 8)[:, :, order]  # nibble i holds column order[i]
            return c.reshape(c.shape[0], -1)

        out[f"{p}.qweight"] = _pack(interleave(codes), 4, 1)
        out[f"{p}.qzeros"] = _pack(interleave(zero), 4, 1)
        out[f"{p}.scales"] = scale
    return out


def bnb8(a: Arrays) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in a.items():
        if not any(f"{m}.weight" in k for m in LINEAR):
            out[k] = v.astype(np.float16)
            continue
        scb = np.abs(v).max(axis=1).astype(np.float32)
        out[k] = np.round(v / scb[:, None] * 127).astype(np.int8)
        out[k[: -len(".weight")] + ".SCB"] = scb
        out[k[: -len(".weight")] + ".weight_format"] = np.array([0], dtype=np.uint8)
    return out


def bnb4(a: Arrays, block: int = 64, nested: bool = False) -> dict[str, np.ndarray]:
    dynamic = np.linspace(-1.0, 1.0, 256).astype(np.float32)  # a 256-code map for the absmax values
    out: dict[str, np.ndarray] = {}
    for k, v in a.items():
        if not any(f"{m}.weight" in k for m in LINEAR):
            out[k] = v.astype(np.float16)
            continue
        flat = v.reshape(-1)
        b = flat.reshape(-1, block)
        amax = np.abs(b).max(axis=1).astype(np.float32)
        codes = np.abs((b / amax[:, None])[:, :, None] - NF4[None, None, :]).argmin(axis=2).astype(np.uint8).reshape(-1)
        out[k] = ((codes[0::2] << 4) | codes[1::2]).reshape(-1, 1)  # the first code in the high half
        state: dict[str, object] = {"quant_type": "nf4", "blocksize": block, "dtype": "bfloat16",
                                    "shape": list(v.shape)}
        out[f"{k}.quant_map"] = NF4.copy()
        if nested:
            offset = float(amax.mean())
            centred = (amax - offset).reshape(-1, 2)  # nested blocks of 2 absmax values
            nmax = np.abs(centred).max(axis=1).astype(np.float32)
            idx = np.abs((centred / nmax[:, None])[:, :, None] - dynamic).argmin(axis=2).astype(np.uint8)
            out[f"{k}.absmax"] = idx.reshape(-1)
            out[f"{k}.nested_absmax"] = nmax
            out[f"{k}.nested_quant_map"] = dynamic
            state |= {"nested_blocksize": 2, "nested_dtype": "float32", "nested_offset": offset}
        else:
            out[f"{k}.absmax"] = amax
        out[f"{k}.quant_state.bitsandbytes__nf4"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8).copy()
    return out


def _save(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    return path


def _bank(world: dict[str, Arrays]) -> list[BankModel]:
    return [BankModel("flagged", n, "checkpoint", fp(world[n])) for n in ("A", "B")]


WRITERS = {
    "GPTQ-4bit-g32": lambda a: gptq(a),
    "GPTQ-4bit-g32 (act-order)": lambda a: gptq(a, act_order=True),
    "GPTQ-8bit-g32": lambda a: gptq(a, bits=8),
    "AWQ-4bit-g32": awq,
    "bnb-int8": bnb8,
    "bnb-nf4-b64": bnb4,
    "bnb-nf4-b64 (double quantization)": lambda a: bnb4(a, nested=True),
}


@pytest.mark.parametrize("scheme", list(WRITERS))
def test_a_quantized_copy_is_the_same_weights_and_an_unrelated_one_nothing(
        tmp_path: Path, world: dict[str, Arrays], scheme: str) -> None:
    bank = _bank(world)
    f = fingerprint_file(_save(tmp_path / "a.safetensors", WRITERS[scheme](world["A"])))
    qtype = scheme.split(" ")[0]
    assert f.source.get("quantized", {}).get(qtype) == 7 * LLAMA["layers"], f.source
    assert not any("non-float" in n for n in f.notes), f.notes  # every packed part was read
    rep = answer(f, bank)
    assert [s.entry for s in rep.same] == ["flagged/A"] and not rep.derived, rep.explanations()
    assert f"quantized ({qtype})" in rep.same[0].explanation
    rep = answer(fingerprint_file(_save(tmp_path / "u.safetensors", WRITERS[scheme](world["U"]))), bank)
    assert not rep.found, rep.explanations()


def test_a_quantized_fine_tune_stays_a_fine_tune(tmp_path: Path, world: dict[str, Arrays]) -> None:
    """Flagged F is the base A fine-tuned 5%, A banked: an 8-bit fine-tune of F carries F's
    change; an 8-bit sibling (A fine-tuned its own way) does not."""
    bank = [BankModel("bases", "A", "base", fp(world["A"])), BankModel("flagged", "F", "checkpoint", fp(world["A_ft5"]))]
    rep = answer(fingerprint_file(_save(tmp_path / "ft.safetensors", gptq(fine_tune(world["A_ft5"], 0.02, 15),
                                                                          bits=8))), bank)
    (d,) = [d for d in rep.derived if d.entry == "flagged/F"]
    assert not rep.same and d.carried is not None and abs(d.carried - 1) < 0.1, rep.explanations()
    assert "GPTQ-8bit-g32 rounding" in d.explanation
    rep = answer(fingerprint_file(_save(tmp_path / "sib.safetensors", gptq(fine_tune(world["A"], 0.05, 16),
                                                                           bits=8))), bank)
    assert "flagged/F" not in {d.entry for d in rep.derived} and [r.entry for r in rep.related] == ["flagged/F"]


def test_a_4bit_sibling_is_not_the_same_weights_as_the_flagged_fine_tune(tmp_path: Path, world: dict[str, Arrays]
                                                                         ) -> None:
    """4-bit rounding (~8%) is larger than the 5% F changed its base A by: a 4-bit copy of
    another fine-tune of A was 'same weights as F' (within the rounding of F, and of A).
    The rounding is independent of F's change, so with A banked whether the suspect
    carries that change still shows: a 4-bit copy of F does, the sibling does not."""
    from assay.models.lineage_analyzer import lineage_matches

    bank = [BankModel("bases", "A", "base", fp(world["A"])), BankModel("flagged", "F", "checkpoint", fp(world["A_ft5"]))]
    kinds = {"bases/A": "base", "flagged/F": "checkpoint"}
    rep = answer(fingerprint_file(_save(tmp_path / "sib.safetensors", gptq(fine_tune(world["A"], 0.05, 16)))), bank)
    assert "flagged/F" not in {f.entry for f in rep.same} | {f.entry for f in rep.derived}, rep.explanations()
    assert [r.entry for r in rep.related] == ["flagged/F"] and lineage_matches(rep, kinds) == []
    rep = answer(fingerprint_file(_save(tmp_path / "copy.safetensors", gptq(world["A_ft5"]))), bank)
    (same,) = rep.same  # F's weights; within 4-bit rounding of the base A too, but not A's weights
    assert same.entry == "flagged/F" and "of the change flagged/F made to it" in same.explanation, rep.explanations()
    assert [d.entry for d in rep.derived] == ["bases/A"] and "carries the change flagged/F" in rep.derived[0].explanation
    assert [(m.content_id, m.value) for m in lineage_matches(rep, kinds)] == [("F", "same-weights")]


def test_parts_that_disagree_are_left_as_stored(tmp_path: Path, world: dict[str, Arrays]) -> None:
    """A layer whose parts do not fit together (zero points for other groups, a g_idx
    naming a group that has no scale, a 4-bit state declaring another shape) is not
    dequantized by guesswork: not fingerprinted (or an error naming the tensor), never a
    crash."""
    t = gptq(world["A"])
    key = "model.layers.0.self_attn.q_proj"
    t[f"{key}.qzeros"] = t[f"{key}.qzeros"][:1]
    f = fingerprint_file(_save(tmp_path / "bad-zeros.safetensors", t))
    assert f.source["quantized"]["GPTQ-4bit-g32"] == 7 * LLAMA["layers"] - 1
    t = gptq(world["A"])
    t[f"{key}.g_idx"] = np.full_like(t[f"{key}.g_idx"], 99)
    from assay.errors import DecodeError

    with pytest.raises(DecodeError, match="g_idx"):
        fingerprint_file(_save(tmp_path / "bad-gidx.safetensors", t))
    t = bnb4(world["A"])
    state = json.loads(bytes(t[f"{key}.weight.quant_state.bitsandbytes__nf4"]))
    state["shape"] = [3, 3]
    t[f"{key}.weight.quant_state.bitsandbytes__nf4"] = np.frombuffer(json.dumps(state).encode(), np.uint8).copy()
    f = fingerprint_file(_save(tmp_path / "bad-state.safetensors", t))
    assert f.source["quantized"]["bnb-nf4-b64"] == 7 * LLAMA["layers"] - 1


@pytest.mark.parametrize("scheme", ["GPTQ-4bit-g32", "bnb-nf4-b64 (double quantization)"])
def test_the_model_report_identifies_a_quantized_model(tmp_path: Path, world: dict[str, Arrays], scheme: str) -> None:
    """`assay model` on a GPTQ Llama said "architecture: unknown (no known key layout
    matched)": qweight/qzeros/scales are not a layer's names. The layers are identified
    (and counted) by the float weights they stand for, and the report says they are packed."""
    from typer.testing import CliRunner

    from assay.cli import app

    f = _save(tmp_path / "q.safetensors", WRITERS[scheme](world["A"]))
    res = CliRunner().invoke(app, ["model", str(f), "--json"])
    arch = json.loads(res.stdout)["arch"]
    qtype = scheme.split(" ")[0]
    assert (arch["family"], arch["variant"]) == ("llm", "llama")
    assert arch["dtypes"][qtype] == 7 * LLAMA["layers"]
    assert arch["total_params"] == sum(v.size for v in world["A"].values())
    text = CliRunner().invoke(app, ["model", str(f)], env={"COLUMNS": "100"}).stdout
    assert "llm (llama)" in text and f"stored quantized ({qtype})" in text


def gptq_v2(a: Arrays, bits: int = 4, group: int = 32) -> dict[str, np.ndarray]:
    """GPTQModel's gptq_v2 checkpoint format: zero points stored as they are."""
    out = gptq(a, bits=bits, group=group)
    for k, v in a.items():
        if any(f"{m}.weight" in k for m in LINEAR):
            _codes, zero, _scale = _rtn(v.T, bits, group)
            out[f"{k[: -len('.weight')]}.qzeros"] = _pack(zero, bits, 1)
    return out


def awq_gemv(a: Arrays, group: int = 32) -> dict[str, np.ndarray]:
    """AutoAWQ's GEMV layout: codes [out, in] packed in order along the input; zero points
    and scales per output row, padded to AutoAWQ's zeros width."""
    out: dict[str, np.ndarray] = {}
    for k, v in a.items():
        if not any(f"{m}.weight" in k for m in LINEAR):
            out[k] = v.astype(np.float16)
            continue
        p = k[: -len(".weight")]
        codes, zero, scale = _rtn(v.T, 4, group)  # [in, out], [groups, out]
        n_in, groups = v.shape[1], v.shape[1] // group
        width = -(-groups // 8)
        width = -(-width // {32: 4, 64: 2}.get(group, 1)) * {32: 4, 64: 2}.get(group, 1)
        zeros = np.zeros((v.shape[0], width * 8), dtype=np.uint8)
        zeros[:, :groups] = zero.T
        scales = np.zeros((v.shape[0], width * 8), dtype=np.float16)
        scales[:, :groups] = scale.T
        out[f"{p}.qweight"] = _pack(codes.T, 4, 1)
        out[f"{p}.qzeros"] = _pack(zeros, 4, 1)
        out[f"{p}.scales"] = scales
        assert n_in % 8 == 0
    return out


def _hf_folder(path: Path, tensors: dict[str, np.ndarray], quantization: dict[str, object],
               beside: bool = False) -> Path:
    """A Hugging Face model folder; the quantizer's config in config.json, or (``beside``)
    in quantize_config.json as GPTQModel also writes it."""
    path.mkdir()
    config: dict[str, object] = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    if beside:
        (path / "quantize_config.json").write_text(json.dumps(quantization))
    else:
        config["quantization_config"] = quantization
    (path / "config.json").write_text(json.dumps(config))
    _save(path / "model.safetensors", tensors)
    return path


@pytest.mark.parametrize("layout", ["gptq_v2 in config.json", "gptq_v2 in quantize_config.json",
                                    "gptq_v2 as format in quantize_config.json", "awq gemv", "awq gemv, no config"])
def test_gptq_v2_and_awq_gemv_copies_are_the_same_weights(tmp_path: Path, world: dict[str, Arrays],
                                                          layout: str) -> None:
    """GPTQModel's gptq_v2 format stores zero points as they are (v1: minus one): read as
    v1, every weight moved by one quantization step and a 4-bit copy of A read as a mere
    relative. AutoAWQ's GEMV layout (codes packed along the input, per-row zero points and
    scales, padded) was not read at all. Both are now the same weights; an unrelated
    model packed the same way is nothing."""
    bank = _bank(world)
    if layout.startswith("gptq"):
        def write(name: str, a: Arrays) -> Path:
            key = "format" if "as format" in layout else "checkpoint_format"  # GPTQModel's newer name
            return _hf_folder(tmp_path / name, gptq_v2(a), {"quant_method": "gptq", "bits": 4, "group_size": 32,
                                                           key: "gptq_v2"}, beside="quantize" in layout)
        qtype = "GPTQ-4bit-g32"
    else:
        def write(name: str, a: Arrays) -> Path:
            if "no config" in layout:
                return _save(tmp_path / f"{name}.safetensors", awq_gemv(a))
            return _hf_folder(tmp_path / name, awq_gemv(a), {"quant_method": "awq", "version": "gemv", "bits": 4,
                                                             "group_size": 32, "zero_point": True})
        qtype = "AWQ-4bit-g32"
    f = fingerprint_file(write("a", world["A"]))
    read = f.source.get("quantized", {}).get(qtype)
    if "no config" in layout:  # this model's smallest layers fit GPTQ's shapes too: left as stored
        assert read == 6 * LLAMA["layers"] and set(f.source["quantized"]) == {qtype}, f.source
    else:
        assert read == 7 * LLAMA["layers"], f.source
    rep = answer(f, bank)
    assert [s.entry for s in rep.same] == ["flagged/A"] and not rep.derived, rep.explanations()
    assert f"quantized ({qtype})" in rep.same[0].explanation
    assert not answer(fingerprint_file(write("u", world["U"])), bank).found
