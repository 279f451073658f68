"""Weight fingerprints: canonical names, sketch properties, containers, records."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelgen
from assay.errors import InputError
from assay.models.fingerprint import (
    Fingerprint,
    FingerprintError,
    _Decoder,
    _plan,
    canonical_pieces,
    canonical_to_kohya,
    decode_ema_key,
    fingerprint_arrays,
    fingerprint_file,
    kohya_module_to_canonical,
    sketch_matrix,
    unet_diffusers_to_ldm,
    unet_ldm_to_diffusers,
)
from assay.models.lora_apply import lora_fingerprint

SCALE = 1 / 16

# Pairs written by hand from the diffusers conversion script's rules, not produced
# by the code under test.
LDM_TO_DIFFUSERS = [
    ("model.diffusion_model.input_blocks.0.0.weight", "unet/conv_in.weight"),
    ("model.diffusion_model.input_blocks.1.1.proj_in.weight", "unet/down_blocks.0.attentions.0.proj_in.weight"),
    ("model.diffusion_model.input_blocks.2.0.in_layers.2.weight", "unet/down_blocks.0.resnets.1.conv1.weight"),
    ("model.diffusion_model.input_blocks.3.0.op.weight", "unet/down_blocks.0.downsamplers.0.conv.weight"),
    ("model.diffusion_model.input_blocks.4.0.skip_connection.weight", "unet/down_blocks.1.resnets.0.conv_shortcut.weight"),
    ("model.diffusion_model.input_blocks.11.0.out_layers.3.bias", "unet/down_blocks.3.resnets.1.conv2.bias"),
    ("model.diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q.weight",
     "unet/mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"),
    ("model.diffusion_model.middle_block.2.in_layers.2.weight", "unet/mid_block.resnets.1.conv1.weight"),
    ("model.diffusion_model.output_blocks.2.1.conv.weight", "unet/up_blocks.0.upsamplers.0.conv.weight"),
    ("model.diffusion_model.output_blocks.5.2.conv.bias", "unet/up_blocks.1.upsamplers.0.conv.bias"),
    ("model.diffusion_model.output_blocks.3.0.emb_layers.1.weight", "unet/up_blocks.1.resnets.0.time_emb_proj.weight"),
    ("model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight",
     "unet/up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight"),
    ("model.diffusion_model.time_embed.2.weight", "unet/time_embedding.linear_2.weight"),
    ("model.diffusion_model.label_emb.0.0.weight", "unet/add_embedding.linear_1.weight"),
    ("model.diffusion_model.out.0.bias", "unet/conv_norm_out.bias"),
    ("model.diffusion_model.out.2.weight", "unet/conv_out.weight"),
    ("first_stage_model.decoder.up.3.block.0.conv1.weight", "vae/decoder.up_blocks.0.resnets.0.conv1.weight"),
    ("first_stage_model.decoder.up.1.upsample.conv.weight", "vae/decoder.up_blocks.2.upsamplers.0.conv.weight"),
    ("first_stage_model.encoder.down.1.block.0.nin_shortcut.weight",
     "vae/encoder.down_blocks.1.resnets.0.conv_shortcut.weight"),
    ("first_stage_model.encoder.down.0.downsample.conv.weight", "vae/encoder.down_blocks.0.downsamplers.0.conv.weight"),
    ("first_stage_model.encoder.mid.attn_1.q.weight", "vae/encoder.mid_block.attentions.0.to_q.weight"),
    ("first_stage_model.decoder.mid.attn_1.proj_out.bias", "vae/decoder.mid_block.attentions.0.to_out.0.bias"),
    ("first_stage_model.encoder.mid.block_2.norm1.bias", "vae/encoder.mid_block.resnets.1.norm1.bias"),
    ("first_stage_model.decoder.norm_out.weight", "vae/decoder.conv_norm_out.weight"),
    ("first_stage_model.quant_conv.weight", "vae/quant_conv.weight"),
    ("vae/encoder.mid_block.attentions.0.query.weight", "vae/encoder.mid_block.attentions.0.to_q.weight"),
    ("cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
     "text_encoder/text_model.encoder.layers.0.self_attn.q_proj.weight"),
    ("cond_stage_model.transformer.encoder.layers.3.mlp.fc1.bias", "text_encoder/text_model.encoder.layers.3.mlp.fc1.bias"),
    ("conditioner.embedders.0.transformer.text_model.final_layer_norm.weight",
     "text_encoder/text_model.final_layer_norm.weight"),
    ("conditioner.embedders.1.model.transformer.resblocks.5.mlp.c_fc.weight",
     "text_encoder_2/text_model.encoder.layers.5.mlp.fc1.weight"),
    ("unet/down_blocks.0.attentions.0.proj_in.weight", "unet/down_blocks.0.attentions.0.proj_in.weight"),
    ("text_encoder/text_model.encoder.layers.0.self_attn.q_proj.weight",
     "text_encoder/text_model.encoder.layers.0.self_attn.q_proj.weight"),
]


@pytest.mark.parametrize(("key", "canonical"), LDM_TO_DIFFUSERS)
def test_canonical_names_match_the_diffusers_conversion(key: str, canonical: str) -> None:
    assert [p.canonical for p in canonical_pieces(key)] == [canonical]


def test_non_weights_are_ignored() -> None:
    for key in ("alphas_cumprod", "model_ema.decay", "cond_stage_model.transformer.text_model.embeddings.position_ids",
                "model_ema.diffusion_modelinput_blocks00weight"):
        assert canonical_pieces(key) == []


def _unet_keys(specs: dict) -> list[str]:
    return [k.removeprefix("model.diffusion_model.") for k in specs if k.startswith("model.diffusion_model.")]


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl_base"])
def test_unet_names_round_trip_and_are_unique(family: str) -> None:
    specs = getattr(modelgen, family)(1.0)  # names and shapes only; nothing allocated
    keys = _unet_keys(specs)
    mapped = [unet_ldm_to_diffusers(k) for k in keys]
    assert len(set(mapped)) == len(keys)
    assert not any(m.startswith(("input_blocks", "output_blocks", "middle_block")) for m in mapped)
    up_attn = {int(m.split(".")[1]) for m in mapped if m.startswith("up_blocks.") and ".attentions." in m}
    assert [unet_diffusers_to_ldm(m, up_attn) for m in mapped] == keys


def test_ema_names_decode_to_the_trained_names() -> None:
    specs = modelgen.sd15(SCALE, ema=True)
    ema = {k for k in specs if k.startswith("model_ema.") and k not in ("model_ema.decay", "model_ema.num_updates")}
    trained = set(_unet_keys(specs))
    decoded = {decode_ema_key(k) for k in ema}
    assert decoded == trained


@pytest.mark.parametrize(("family", "builder", "te"), [("sd1", "sd15", True), ("sdxl", "sdxl_base", True)])
def test_kohya_module_names_land_on_real_weights(family: str, builder: str, te: bool) -> None:
    """modelgen's kohya names (written from sd-scripts' naming) must map onto weights of
    the same shape in the checkpoint, and back to the same kohya name."""
    specs = getattr(modelgen, builder)(1.0)
    shapes = {p.canonical: ((specs[k][1][0] // p.rows[1], *specs[k][1][1:]) if p.rows else specs[k][1])
              for k, p in _plan(specs)[0]}
    sgm = family == "sdxl"
    for module, out, inp in modelgen.lora_modules(family, te=te):
        canonical = kohya_module_to_canonical(module)
        assert canonical in shapes, module
        assert tuple(shapes[canonical][:2]) == (out, inp), module
        assert canonical_to_kohya(canonical, sgm=sgm) == module


# ------------------------------------------------------------------ sketches


def _model(seed: int = 1, builder: str = "sd15") -> dict[str, np.ndarray]:
    specs = getattr(modelgen, builder)(SCALE, dt="F32")
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s, dtype=np.float32) * np.float32(0.02)
            for k, (d, s) in specs.items() if d == "F32"}


@pytest.fixture(scope="module")
def base() -> dict[str, np.ndarray]:
    return _model(1)


def _vec(fp: Fingerprint) -> np.ndarray:
    return np.concatenate([fp.tensors[n].sketch.ravel() for n in sorted(fp.tensors)]).astype(np.float64)


def test_sketch_is_linear_and_preserves_norms(base: dict[str, np.ndarray]) -> None:
    other = _model(2)
    a, b = fingerprint_arrays(base), fingerprint_arrays(other)
    mixed = fingerprint_arrays({k: 0.25 * base[k] + 0.75 * other[k] for k in base})
    np.testing.assert_allclose(_vec(mixed), 0.25 * _vec(a) + 0.75 * _vec(b), atol=1e-5)
    # E||P W Q||^2 = ||W||^2: over many tensors the ratio concentrates near 1.
    ratios = [float(np.linalg.norm(t.sketch)) / t.norm for t in a.tensors.values() if t.is_matrix]
    assert 0.9 < float(np.median(ratios)) < 1.1
    # exact statistics of the full tensors
    key = "model.diffusion_model.input_blocks.1.1.proj_in.weight"
    t = a.tensors["unet/down_blocks.0.attentions.0.proj_in.weight"]
    assert t.norm == pytest.approx(float(np.linalg.norm(base[key])), rel=1e-5)
    assert t.mean == pytest.approx(float(base[key].mean()), abs=1e-7)


def test_sketch_matrix_matches_projection_of_the_flattened_conv() -> None:
    rng = np.random.default_rng(3)
    conv = rng.standard_normal((96, 80, 3, 3), dtype=np.float32)
    fp = fingerprint_arrays({"model.diffusion_model.input_blocks.1.0.in_layers.2.weight": conv})
    got = fp.tensors["unet/down_blocks.0.resnets.0.conv1.weight"].sketch
    np.testing.assert_allclose(got, sketch_matrix(conv.reshape(96, -1)), rtol=1e-4, atol=1e-4)
    assert got.shape == (64, 64)


def test_independent_models_are_nearly_orthogonal(base: dict[str, np.ndarray]) -> None:
    a, b = _vec(fingerprint_arrays(base)), _vec(fingerprint_arrays(_model(7)))
    assert abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b) < 0.1


def test_fp16_decoder_is_exact_on_every_bit_pattern() -> None:
    bits = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    ref = bits.view(np.float16).astype(np.float32)
    got = _Decoder("F16")(bits.view(np.float16)).copy()
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(got[finite], ref[finite])
    assert np.all(np.abs(got[~finite]) >= 65536)  # how Inf/NaN are recognised


def test_bf16_decoder() -> None:
    vals = np.array([[1.0, -2.5, 0.0, 3.140625]], dtype=np.float32)
    bits = (vals.view(np.uint32) >> 16).astype(np.uint16)
    np.testing.assert_array_equal(_Decoder("BF16")(bits), vals)


def _write(path: Path, arrays: dict[str, np.ndarray], dtype: str = "F32", order: list[str] | None = None,
           metadata: dict[str, str] | None = None) -> Path:
    keys = order or list(arrays)
    values = {}
    for k in keys:
        v = arrays[k]
        if dtype == "F16":
            values[k] = v.astype("<f2")
        elif dtype == "BF16":
            values[k] = (v.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
        else:
            values[k] = v.astype("<f4")
    specs = {k: (dtype, arrays[k].shape) for k in keys}
    return modelgen.write_safetensors(path, specs, metadata, values=values)


def test_container_dtype_order_and_metadata_do_not_change_the_fingerprint(
    tmp_path: Path, base: dict[str, np.ndarray]
) -> None:
    ref = fingerprint_arrays(base)
    keys = list(base)
    variants = {
        "f32": _write(tmp_path / "a.safetensors", base),
        "f16-reversed": _write(tmp_path / "b.safetensors", base, "F16", order=keys[::-1],
                               metadata={"modelspec.title": "renamed"}),
        "bf16": _write(tmp_path / "c.safetensors", base, "BF16"),
    }
    for name, path in variants.items():
        fp = fingerprint_file(path)
        assert set(fp.tensors) == set(ref.tensors), name
        d = _vec(fp) - _vec(ref)
        rel = np.linalg.norm(d) / np.linalg.norm(_vec(ref))
        assert rel < (1e-6 if name == "f32" else 4e-3), (name, rel)


def test_torch_zip_checkpoint_matches_safetensors(tmp_path: Path) -> None:
    specs = {k: v for k, v in modelgen.sd15(SCALE, dt="F16").items() if v[0] == "F16"}
    zpath = modelgen.write_torch_zip(tmp_path / "m.ckpt", specs, seed=5)
    spath = modelgen.write_safetensors(tmp_path / "m.safetensors", specs, seed=5)
    a, b = fingerprint_file(zpath), fingerprint_file(spath)
    assert set(a.tensors) == set(b.tensors)
    np.testing.assert_array_equal(_vec(a), _vec(b))


def test_openclip_tower_equals_its_hugging_face_layout() -> None:
    specs = {k: v for k, v in modelgen.sdxl_base(SCALE, dt="F32").items()
             if k.startswith("conditioner.embedders.1.") and v[0] == "F32"}
    rng = np.random.default_rng(4)
    oc = {k: rng.standard_normal(s, dtype=np.float32) for k, (d, s) in specs.items()}
    hf: dict[str, np.ndarray] = {}
    pre, out = "conditioner.embedders.1.model.", "text_encoder_2/text_model."
    for k, v in oc.items():
        rest = k[len(pre):]
        if rest.startswith("transformer.resblocks."):
            n, tail = rest.split(".")[2], ".".join(rest.split(".")[3:])
            lay = f"{out}encoder.layers.{n}."
            if tail.startswith("attn.in_proj_"):
                kind = "weight" if tail.endswith("weight") else "bias"
                for i, x in enumerate("qkv"):
                    hf[f"{lay}self_attn.{x}_proj.{kind}"] = np.split(v, 3)[i]
                continue
            tail = (tail.replace("ln_1", "layer_norm1").replace("ln_2", "layer_norm2")
                    .replace("attn.out_proj", "self_attn.out_proj").replace("mlp.c_fc", "mlp.fc1")
                    .replace("mlp.c_proj", "mlp.fc2"))
            hf[lay + tail] = v
        elif rest == "text_projection":
            hf["text_encoder_2/text_projection.weight"] = v.T.copy()
        elif rest == "token_embedding.weight":
            hf[out + "embeddings.token_embedding.weight"] = v
        elif rest == "positional_embedding":
            hf[out + "embeddings.position_embedding.weight"] = v
        elif rest.startswith("ln_final."):
            hf[out + "final_layer_norm." + rest.split(".")[-1]] = v
    a, b = fingerprint_arrays(oc), fingerprint_arrays(hf)
    assert set(a.tensors) == set(b.tensors) and a.tensors
    for n in a.tensors:
        np.testing.assert_allclose(a.tensors[n].sketch, b.tensors[n].sketch, rtol=1e-5, atol=1e-5)


def test_only_ema_weights_are_used_when_nothing_else_exists(base: dict[str, np.ndarray]) -> None:
    ema_only = {("model_ema." + k.removeprefix("model.").replace(".", "") if k.startswith("model.diffusion_model.") else k): v
                for k, v in base.items()}
    a, b = fingerprint_arrays(base), fingerprint_arrays(ema_only)
    assert set(a.tensors) == set(b.tensors)
    np.testing.assert_array_equal(_vec(a), _vec(b))
    assert any("only EMA" in n for n in b.notes)


def test_nan_and_zero_tensors_are_marked_not_hidden() -> None:
    w = np.ones((70, 70), dtype=np.float32)
    w[3, 4] = np.nan
    w[5, 6] = np.inf
    fp = fingerprint_arrays({"model.diffusion_model.time_embed.0.weight": w,
                             "model.diffusion_model.time_embed.2.weight": np.zeros((70, 70), np.float32),
                             "model.diffusion_model.out.2.weight": w.astype(np.float16)})
    assert fp.tensors["unet/time_embedding.linear_1.weight"].nonfinite == 2
    assert fp.tensors["unet/conv_out.weight"].nonfinite == 2
    assert not fp.tensors["unet/conv_out.weight"].comparable
    zero = fp.tensors["unet/time_embedding.linear_2.weight"]
    assert zero.norm == 0 and not np.any(zero.sketch)
    assert any("NaN/Inf" in n for n in fp.notes)


# ------------------------------------------------------------------ records


@pytest.fixture(scope="module")
def record(base: dict[str, np.ndarray]) -> bytes:
    return fingerprint_arrays(base).to_bytes()


def test_record_round_trip_and_size(base: dict[str, np.ndarray], record: bytes) -> None:
    fp = fingerprint_arrays(base)
    back = Fingerprint.from_bytes(record)
    assert back.k == fp.k and set(back.tensors) == set(fp.tensors)
    d = _vec(back) - _vec(fp)
    assert np.linalg.norm(d) / np.linalg.norm(_vec(fp)) < 1e-3  # float16 storage
    assert back.to_bytes() == Fingerprint.from_bytes(back.to_bytes()).to_bytes()
    sketch_values = sum(t.sketch.size for t in fp.tensors.values())
    # format 2: the permutation-robust arrays (signatures, invariants) as float16 too
    align_values = sum(a.size for t in fp.tensors.values() for a in (t.rowsig, t.colsig, t.inv)
                       if a is not None)
    assert len(record) < 2 * (sketch_values + align_values) + 400 * len(fp.tensors)
    assert fingerprint_arrays(base).to_bytes() == record  # deterministic


def test_every_truncation_is_rejected(record: bytes) -> None:
    for cut in list(range(0, 64)) + list(range(64, len(record), max(1, len(record) // 200))):
        with pytest.raises(FingerprintError):
            Fingerprint.from_bytes(record[:cut], where="test")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_corruption_is_rejected(record: bytes, pos: int, byte: int) -> None:
    i = pos % len(record)
    if record[i] == byte:
        return
    bad = record[:i] + bytes([byte]) + record[i + 1:]
    with pytest.raises(FingerprintError):
        Fingerprint.from_bytes(bad)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected_cleanly(data: bytes) -> None:
    with pytest.raises(FingerprintError):
        Fingerprint.from_bytes(b"ASFP" + data)


def test_forged_header_with_valid_checksum_is_rejected() -> None:
    import json
    import zlib

    header = json.dumps({"k": 64, "kind": "checkpoint", "payload": 2,
                         "tensors": [{"name": "x", "shape": [9, 9], "sketch": [9, 9], "scale": 1,
                                      "norm": 1, "mean": 0, "nonfinite": 0}]}).encode()
    body = b"ASFP" + struct.pack("<HI", 1, len(header)) + header + b"\0\0"
    with pytest.raises(FingerprintError, match="runs past|payload"):
        Fingerprint.from_bytes(body + struct.pack("<I", zlib.crc32(body)))


# ------------------------------------------------------------------ LoRA files


def test_lora_file_fingerprint_equals_sketch_of_its_delta(tmp_path: Path) -> None:
    specs, values = modelgen.kohya_lora("sd1", rank=4, dt="F32")
    rng = np.random.default_rng(9)
    arrays = {k: values.get(k, rng.standard_normal(s, dtype=np.float32)) for k, (d, s) in specs.items()}
    for k in values:
        arrays[k] = np.asarray(values[k], dtype=np.float32)
    fp = lora_fingerprint(arrays)
    mod = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    up, down = arrays[mod + ".lora_up.weight"], arrays[mod + ".lora_down.weight"]
    delta = (up @ down) * (float(arrays[mod + ".alpha"]) / 4)
    t = fp.tensors["unet/down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"]
    np.testing.assert_allclose(t.sketch, sketch_matrix(delta), rtol=1e-3, atol=1e-4)
    assert t.norm == pytest.approx(float(np.linalg.norm(delta)), rel=1e-4)
    path = _write(tmp_path / "l.safetensors", arrays)
    from_file = fingerprint_file(path)
    assert from_file.kind == "lora" and set(from_file.tensors) == set(fp.tensors)


# ------------------------------------------------------------------ LyCORIS files

_CONV = "lora_unet_down_blocks_1_resnets_0_conv1"  # a 3x3 convolution
_CONV_CANON = "unet/down_blocks.1.resnets.0.conv1.weight"
_LIN = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
_LIN_CANON = "unet/down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"


def test_lokr_and_loha_sketches_equal_the_sketch_of_their_reference_delta(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    g = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    # LoKr on a conv: w1 (4, 2) full, w2 4-D; torch.kron of the unsqueezed w1 with w2
    # is numpy's kron of the 4-D arrays (same block rule), then flattened to 2-D.
    w1, w2 = g(4, 2), g(24, 40, 3, 3)
    # LoHa on a linear layer, rank 3, alpha 1.5; on a conv with 4-D w*_b (LyCORIS' layout)
    h = {x: g(*s) for x, s in (("w1_a", (96, 3)), ("w1_b", (3, 768)), ("w2_a", (96, 3)), ("w2_b", (3, 768)))}
    c = {x: g(*s) for x, s in (("w1_a", (96, 2)), ("w1_b", (2, 80, 3, 3)), ("w2_a", (96, 2)), ("w2_b", (2, 80, 3, 3)))}
    conv_loha = "lora_unet_up_blocks_2_resnets_0_conv2"
    arrays = {_CONV + ".lokr_w1": w1, _CONV + ".lokr_w2": w2, _CONV + ".alpha": np.array(7.0, np.float32),
              _LIN + ".alpha": np.array(1.5, np.float32),
              **{f"{_LIN}.hada_{x}": v for x, v in h.items()},
              **{f"{conv_loha}.hada_{x}": v for x, v in c.items()}}
    kron = np.kron(w1[:, :, None, None], w2).reshape(96, -1)  # alpha ignored: no factorised side
    hada = (h["w1_a"] @ h["w1_b"]) * (h["w2_a"] @ h["w2_b"]) * 0.5
    hconv = (c["w1_a"] @ c["w1_b"].reshape(2, -1)) * (c["w2_a"] @ c["w2_b"].reshape(2, -1))  # no alpha: 1
    path = _write(tmp_path / "lyco.safetensors", arrays, "F32")
    for fp in (lora_fingerprint(arrays), fingerprint_file(path)):
        assert fp.kind == "lora"
        for name, ref in ((_CONV_CANON, kron), (_LIN_CANON, hada), ("unet/up_blocks.2.resnets.0.conv2.weight", hconv)):
            t = fp.tensors[name]
            assert t.shape == ref.shape
            np.testing.assert_allclose(t.sketch, sketch_matrix(ref), rtol=1e-3, atol=1e-3 * np.abs(ref).max())
            assert t.norm == pytest.approx(float(np.linalg.norm(ref)), rel=1e-4)
            assert t.mean == pytest.approx(float(ref.mean()), abs=1e-4 * float(np.abs(ref).max()))


def test_lokr_with_both_sides_factorised_uses_alpha_over_rank() -> None:
    rng = np.random.default_rng(5)
    f = {x: rng.standard_normal(s, dtype=np.float32)
         for x, s in (("w1_a", (4, 2)), ("w1_b", (2, 4)), ("w2_a", (24, 2)), ("w2_b", (2, 192)))}
    arrays = {f"{_LIN}.lokr_{x}": v for x, v in f.items()} | {_LIN + ".alpha": np.array(1.0, np.float32)}
    ref = np.kron(f["w1_a"] @ f["w1_b"], f["w2_a"] @ f["w2_b"]) * 0.5
    t = lora_fingerprint(arrays).tensors[_LIN_CANON]
    np.testing.assert_allclose(t.sketch, sketch_matrix(ref), rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_tucker_incomplete_and_peft_dora_modules_are_explained() -> None:
    rng = np.random.default_rng(6)
    g = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    peft = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    arrays = {
        _CONV + ".hada_w1_a": g(2, 96), _CONV + ".hada_w1_b": g(2, 80), _CONV + ".hada_t1": g(2, 2, 3, 3),
        _CONV + ".hada_w2_a": g(2, 96), _CONV + ".hada_w2_b": g(2, 80), _CONV + ".hada_t2": g(2, 2, 3, 3),
        _LIN + ".lokr_w1": g(4, 4),  # no w2
        peft + ".lora_A.weight": g(4, 40), peft + ".lora_B.weight": g(40, 4),
        peft + ".lora_magnitude_vector": g(40),
    }
    fp = lora_fingerprint(arrays)
    assert set(fp.tensors) == {"unet/down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"}
    notes = " | ".join(fp.notes)
    assert "1 LoHa/LoKr modules with Tucker" in notes and _CONV in notes
    assert "lack a factor" in notes and _LIN in notes
    assert "1 DoRA modules approximated" in notes
    with pytest.raises(InputError, match="no LoRA module"):
        lora_fingerprint({k: v for k, v in arrays.items() if not k.startswith(peft)})


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["loha", "lokr"]), dims=st.lists(st.integers(0, 5), min_size=8, max_size=8),
       ndim=st.integers(0, 4), alpha=st.sampled_from([None, 0.0, 2.0, float("nan"), float("inf")]))
def test_malformed_lycoris_factors_give_input_errors(kind: str, dims: list[int], ndim: int, alpha: float | None) -> None:
    roles = (["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"] if kind == "loha"
             else ["lokr_w1", "lokr_w2_a", "lokr_w2_b", "lokr_w1_a"])[: 4 if kind == "loha" else 3]
    arrays = {}
    for i, r in enumerate(roles):
        shape = (dims[2 * i], dims[2 * i + 1], 1, 1)[:ndim] if i == 0 else (dims[2 * i], dims[2 * i + 1])
        arrays[f"{_LIN}.{r}"] = np.ones(shape, np.float32)
    if alpha is not None:
        arrays[_LIN + ".alpha"] = np.array(alpha, np.float32)
    try:
        fp = lora_fingerprint(arrays)
    except InputError:
        return
    t = fp.tensors[_LIN_CANON]
    assert all(d > 0 for d in t.shape) and np.isfinite(t.norm)


# ------------------------------------------------------------------ diffusers folders

# Older diffusers VAE attention names, as many published pipelines still store them.
_OLD_VAE_ATTN = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def _write_diffusers(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A diffusers pipeline folder holding ``arrays`` (an LDM single-file checkpoint):
    UNet as an fp16-variant file only, VAE with 2-D linear attention weights under the
    old names, CLIP as ``text_encoder/model.safetensors``; plus weightless components."""
    import json

    parts: dict[str, dict[str, np.ndarray]] = {"unet": {}, "vae": {}, "text_encoder": {}}
    for key, piece in _plan(arrays)[0]:
        comp, name = piece.canonical.split("/", 1)
        value = arrays[key]
        if comp == "vae" and ".attentions." in name:
            head, proj, tail = name.rsplit(".", 2)[0], *name.rsplit(".", 2)[1:]
            if name.endswith(("to_out.0.weight", "to_out.0.bias")):
                head, proj = name.rsplit(".", 3)[0], "to_out.0"
            name = f"{head}.{_OLD_VAE_ATTN.get(proj, proj)}.{tail}"
            if value.ndim == 4:  # diffusers keeps these as Linear layers
                value = value.reshape(value.shape[0], -1)
        parts[comp][name] = value
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None]}
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(index))
    files = {"unet": ("diffusion_pytorch_model.fp16.safetensors", "F16"),
             "vae": ("diffusion_pytorch_model.safetensors", "F32"), "text_encoder": ("model.safetensors", "F32")}
    for comp, (fname, dtype) in files.items():
        (folder / comp).mkdir()
        (folder / comp / "config.json").write_text(json.dumps({"_class_name": index[comp][1]}))
        _write(folder / comp / fname, parts[comp], dtype)
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.json").write_text("{}")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"num_train_timesteps": 1000}))
    return folder


def test_diffusers_folder_has_the_same_weights_as_its_single_file(tmp_path: Path, base: dict[str, np.ndarray]) -> None:
    from assay.models.lineage import BankModel, answer

    single = _write(tmp_path / "sd15.safetensors", base, "F16")
    folder = _write_diffusers(tmp_path / "pipeline", base)
    a, b = fingerprint_file(single), fingerprint_file(folder)
    assert b.source["format"] == "diffusers"
    assert set(a.tensors) == set(b.tensors)
    assert {"unet", "vae", "text_encoder"} <= set(b.components())
    # each direction: the bank holds one layout, the suspect is the other
    for suspect, entry in ((b, a), (a, b)):
        rep = answer(suspect, [BankModel("b", "m", "checkpoint", entry),
                               BankModel("b", "other", "base", fingerprint_arrays(_model(7)))])
        assert [s.entry for s in rep.same] == ["b/m"], rep.explanations()
        assert set(rep.same[0].components) == {"unet", "vae", "text_encoder"}
        assert not rep.derived and not rep.merges
