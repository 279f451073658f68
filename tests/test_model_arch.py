"""Architecture identification over key sets built from the published model configs.

Expected families come from how each fixture is constructed (modelgen), not from
running ``identify``; negative cases check that mixed or partial evidence never
yields a confident answer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelgen as g
from assay.models.arch import identify

TINY = 0.05


@pytest.mark.parametrize(
    ("specs", "family", "variant", "components"),
    [
        (g.sd15(TINY), "stable-diffusion-1", None, {"unet", "vae", "clip_l"}),
        (g.sd15(TINY, in_channels=9), "stable-diffusion-1", "inpainting", {"unet", "vae", "clip_l"}),
        (g.sd15(TINY, in_channels=8), "stable-diffusion-1", "instruct-pix2pix", {"unet", "vae", "clip_l"}),
        (g.sd2(TINY), "stable-diffusion-2", None, {"unet", "vae", "openclip_h"}),
        (g.sdxl_base(TINY), "stable-diffusion-xl", "base", {"unet", "vae", "clip_l", "openclip_g"}),
        (g.sdxl_refiner(TINY), "stable-diffusion-xl", "refiner", {"unet", "vae", "openclip_g"}),
        (g.flux("dev", TINY), "flux-1", "dev", {"transformer"}),
        (g.flux("schnell", TINY, prefix="model.diffusion_model."), "flux-1", "schnell", {"transformer"}),
        (g.sd3("3-medium", TINY), "stable-diffusion-3", "3-medium", {"transformer", "vae", "clip_l", "clip_g", "t5xxl"}),
        (g.sd3("3.5-large", 0.01), "stable-diffusion-3", "3.5-large", {"transformer", "vae", "clip_l", "clip_g", "t5xxl"}),
        (g.sd3("3.5-medium", 0.02), "stable-diffusion-3", "3.5-medium", {"transformer", "vae", "clip_l", "clip_g", "t5xxl"}),
    ],
)
def test_checkpoints(specs: g.Specs, family: str, variant: str | None, components: set[str]) -> None:
    r = identify(specs)
    assert (r.family, r.variant) == (family, variant)
    assert r.confidence == "certain"
    assert set(r.components) == components
    assert len(r.reasons) >= 3


def test_parameter_counts_and_dtypes_add_up() -> None:
    specs = g.sd15(TINY, ema=True)
    r = identify(specs)
    assert r.total_params == sum(math.prod(s) for _d, s in specs.values())
    assert sum(r.params.values()) == r.total_params
    assert r.dtypes == {"F16": len(specs) - 3, "I64": 1, "F32": 1, "I32": 1}
    assert r.ema and "ema" in r.components
    unet = sum(math.prod(s) for k, (_d, s) in specs.items() if k.startswith("model.diffusion_model."))
    assert r.params["unet"] == unet


def test_full_size_sd15_shapes_have_the_published_parameter_count() -> None:
    # SD 1.5's UNet has 859,520,964 parameters and CLIP ViT-L/14's text model 123,060,480
    # (+77 position ids stored as a tensor); the generator is built from the config alone.
    r = identify(g.sd15())
    assert r.params["unet"] == 859_520_964
    assert r.params["clip_l"] == 123_060_480 + 77
    assert r.context_dim == 768 and r.in_channels == 4


def test_unet_only_files_are_identified_with_less_confidence() -> None:
    specs = {k.removeprefix("model.diffusion_model."): v for k, v in g.sd15(TINY).items() if k.startswith("model.diffusion_model.")}
    r = identify(specs)
    assert r.family == "stable-diffusion-1" and r.confidence == "likely"
    assert r.kind == "diffusion-model"


def test_diffusers_unet_layout() -> None:
    specs: g.Specs = {"conv_in.weight": ("F16", (320, 4, 3, 3)), "time_embedding.linear_1.weight": ("F16", (1280, 320))}
    for b in range(3):
        for a in range(2):
            specs[f"down_blocks.{b}.attentions.{a}.transformer_blocks.0.attn2.to_k.weight"] = ("F16", (320, 1024))
    specs["up_blocks.1.resnets.0.conv1.weight"] = ("F16", (8, 8, 3, 3))
    r = identify(specs)
    assert r.family == "stable-diffusion-2" and r.layout == "diffusers"


def test_conflicting_facts_give_no_family() -> None:
    # An SD 1.x UNet packed with SDXL's text encoders: the facts disagree.
    specs = {k: v for k, v in g.sd15(TINY).items() if not k.startswith("cond_stage_model.")}
    specs |= g.hf_clip("conditioner.embedders.0.transformer.", layers=1, scale=TINY)
    specs |= g.open_clip("conditioner.embedders.1.model.", width=1280, layers=1, scale=TINY)
    r = identify(specs)
    assert r.family == "unknown" and r.confidence == "unknown"
    assert any("disagree" in x for x in r.reasons)


def test_unknown_layouts_are_unknown() -> None:
    r = identify({"foo.weight": ("F32", (3, 3)), "bar": ("F16", (2,))})
    assert (r.family, r.confidence) == ("unknown", "unknown")
    assert r.total_params == 11
    assert identify({}).family == "unknown"


def test_flux_fill_and_guidance() -> None:
    specs = g.flux("dev", TINY)
    specs["img_in.weight"] = ("BF16", (specs["img_in.weight"][1][0], 384))
    r = identify(specs)
    assert r.variant == "dev fill"
    assert r.prediction.startswith("flow")


def test_vae_and_text_encoders() -> None:
    r = identify(g.ldm_vae("", ch=8))
    assert (r.family, r.kind) == ("vae", "vae") and r.in_channels == 4 and r.confidence == "certain"
    r = identify(g.ldm_vae("", ch=8, z=16, quant=False))
    assert r.family == "vae" and r.in_channels == 16 and "16-channel" in str(r.variant)
    assert identify(g.hf_clip("", layers=1, scale=TINY)).variant == "clip-l"
    assert identify(g.hf_clip("", width=1280, layers=1, scale=TINY)).variant == "clip-g"
    assert identify(g.t5_encoder(blocks=1, scale=0.01)).variant == "t5xxl"


def test_v_prediction_only_from_marker_or_claimed() -> None:
    specs = g.sd2(TINY)
    assert identify(specs).prediction.startswith("not detectable")
    claimed = identify(specs, {"modelspec.prediction_type": "v"}).prediction
    assert "not detectable from weights" in claimed and "'v'" in claimed
    specs["v_pred"] = ("F32", (0,))
    assert identify(specs).prediction.startswith("v ")


@pytest.mark.parametrize(
    ("specs", "fmt", "base", "rank"),
    [
        (g.kohya_lora("sd1", 4)[0], "kohya", "stable-diffusion-1", 4),
        (g.kohya_lora("sdxl", 8)[0], "kohya", "stable-diffusion-xl", 8),
        (g.kohya_lora("flux", 16)[0], "kohya", "flux-1", 16),
        (g.peft_lora("sdxl", 8), "peft", "stable-diffusion-xl", 8),
        (g.peft_lora("sd1", 2), "peft", "stable-diffusion-1", 2),
        (g.peft_lora("flux", 8), "peft", "flux-1", 8),
        (g.loha(6)[0], "loha", "stable-diffusion-1", 6),
        (g.lokr(4), "lokr", "stable-diffusion-xl", 4),
    ],
)
def test_loras(specs: g.Specs, fmt: str, base: str, rank: int) -> None:
    r = identify(specs)
    assert r.family == "lora" and r.lora is not None
    assert r.lora.format == fmt
    assert r.lora.base_family == base
    assert r.lora.base_confidence in ("certain", "likely")
    n_modules = len({k.rsplit(".", 2)[0] if ".lora_" in k and k.endswith(".weight") else k.rsplit(".", 1)[0] for k in specs})
    assert r.lora.ranks == {rank: n_modules}
    assert not r.lora.dora


def test_lora_targets_alpha_and_dora() -> None:
    specs, values = g.kohya_lora("sdxl", 4, dora=True)
    r = identify(specs, scalar=lambda name: float(values[name]))
    assert r.lora is not None and r.lora.dora
    assert r.lora.alphas == {"2": r.lora.modules}  # the generator stores rank/2
    assert r.lora.targets == {"unet": 88, "text_encoder_2": 32, "text_encoder_1": 12}
    assert r.lora.base_confidence == "certain"
    r = identify(specs, {"ss_network_alpha": "16"})  # no value reader: metadata, labelled
    assert r.lora is not None and list(r.lora.alphas) == ["16 (ss_network_alpha metadata)"]


def test_lora_with_unknown_context_is_not_claimed() -> None:
    specs = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": ("F16", (4, 4096)),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": ("F16", (320, 4)),
    }
    r = identify(specs)
    assert r.family == "lora" and r.lora is not None and r.lora.base_family == "unknown"


def test_llms() -> None:
    r = identify(g.llama(hidden=64, layers=3, vocab=300))
    assert r.family == "llm" and r.variant == "llama" and r.llm is not None
    assert (r.llm.hidden_size, r.llm.layers, r.llm.vocab_size) == (64, 3, 300)
    qwen = g.llama() | {f"model.layers.{i}.self_attn.q_proj.bias": ("BF16", (64,)) for i in range(2)}
    assert identify(qwen).variant == "qwen2"
    bert = {
        "bert.embeddings.word_embeddings.weight": ("F32", (100, 32)),
        "bert.embeddings.token_type_embeddings.weight": ("F32", (2, 32)),
        **{f"bert.encoder.layer.{i}.attention.self.query.weight": ("F32", (32, 32)) for i in range(4)},
    }
    r = identify(bert)
    assert r.variant == "bert" and r.llm is not None and r.llm.layers == 4


def test_gguf_metadata() -> None:
    tensors = {f"blk.{i}.attn_q.weight": ("Q4_K", (64, 64)) for i in range(2)}
    tensors["token_embd.weight"] = ("Q4_K", (64, 1000))
    meta = {
        "general.architecture": "llama",
        "llama.block_count": 2,
        "llama.embedding_length": 64,
        "llama.context_length": 4096,
        "llama.attention.head_count": 8,
    }
    r = identify(tensors, meta)
    assert r.family == "llm" and r.layout == "gguf" and r.confidence == "certain"
    assert r.llm is not None and (r.llm.layers, r.llm.hidden_size, r.llm.vocab_size) == (2, 64, 1000)
    meta["llama.block_count"] = 40  # the count does not match the tensors: less sure
    assert identify(tensors, meta).confidence == "likely"


names = st.text(st.sampled_from("abcdklmnopqrstuvwxyz_.0123456789"), min_size=1, max_size=40)
shapes = st.lists(st.integers(0, 5000), max_size=4).map(tuple)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, st.tuples(st.sampled_from(["F16", "F32", "BF16"]), shapes), max_size=30))
def test_fuzz_random_key_sets(specs: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    r = identify(specs)
    assert r.total_params == sum(math.prod(s) for _d, s in specs.values())
    # random names never reach the three independent facts a confident claim needs
    assert r.confidence != "certain" or r.family == "lora"


LAYOUTS = {
    "sd15": g.sd15(TINY),
    "flux": g.flux("dev", TINY),
    "sd3": g.sd3("3-medium", TINY),
    "llama": g.llama(),
    "lora": g.kohya_lora("sdxl")[0],
    "peft": g.peft_lora("flux"),
    "vae": g.ldm_vae("", ch=8),
    "t5": g.t5_encoder(blocks=1, scale=0.01),
}
any_shape = st.lists(st.integers(0, 5000), max_size=5).map(tuple)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(sorted(LAYOUTS)), st.data())
def test_fuzz_damaged_layouts_never_crash(layout: str, data: st.DataObject) -> None:
    specs = dict(LAYOUTS[layout])
    keys = sorted(specs)
    for k in data.draw(st.lists(st.sampled_from(keys), max_size=30)):
        specs[k] = ("F16", data.draw(any_shape))
    for k in data.draw(st.lists(st.sampled_from(keys), max_size=30)):
        specs.pop(k, None)
    r = identify(specs, scalar=lambda _n: float("nan"))
    assert sum(r.params.values()) == r.total_params
    r.model_dump_json()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fuzz_perturbed_real_layouts(data: st.DataObject) -> None:
    specs = dict(g.sd15(TINY))
    keys = sorted(specs)
    for k in data.draw(st.lists(st.sampled_from(keys), max_size=20)):
        specs[k] = ("F16", data.draw(shapes))
    for k in data.draw(st.lists(st.sampled_from(keys), max_size=20)):
        specs.pop(k, None)
    r = identify(specs)
    assert r.family in ("stable-diffusion-1", "stable-diffusion-2", "stable-diffusion-xl", "unknown", "vae", "text-encoder")
    if r.family == "stable-diffusion-1" and r.confidence == "certain":
        # three SD 1.x facts exist (context 768, early attention, CLIP-L): all must hold
        assert r.context_dim == 768


def test_real_size_unet_only_is_certain_and_refiner_by_channels() -> None:
    unet = {k: v for k, v in g.sd15().items() if k.startswith("model.diffusion_model.")}
    r = identify(unet)
    assert (r.family, r.confidence, r.facts) == ("stable-diffusion-1", "certain", 3)
    refiner = {k: v for k, v in g.sdxl_refiner().items() if k.startswith("model.diffusion_model.")}
    r = identify(refiner)
    assert (r.family, r.variant, r.confidence) == ("stable-diffusion-xl", "refiner", "certain")
