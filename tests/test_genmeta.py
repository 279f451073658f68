"""Generator metadata: every shared fixture and a hand-built file for each variant
(A1111/Forge, ComfyUI, InvokeAI v1-v3, Fooocus, SwarmUI, unknown text), plus
malformed metadata. Expected values come from the metadata text as written into
the files (read from the fixtures' raw bytes, or written here), not from the parser.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from assay.config import Limits
from assay.errors import InputError
from assay.provenance.analyzer import analyze_provenance
from assay.provenance.context import TAG_MAKE, TAG_MODEL, TAG_USER_COMMENT, ImageContext
from assay.provenance.generators import SOURCES, a1111, generator_evidence
from assay.provenance.generators._common import model_signal
from assay.provenance.generators.a1111 import parse_infotext
from assay.provenance.genmeta import generator_evidence as entry_point
from assay.report.provenance import Evidence, EvidenceError
from assay.signals import get as signal_type

PARSERS = Path("genmeta/parsers")


def run(data: bytes, fmt: str, limits: Limits | None = None
        ) -> tuple[list[Evidence], list[EvidenceError]]:  # fmt: skip
    return generator_evidence(ImageContext(Path("t." + fmt), data, fmt, limits or Limits()))


def only(evidence: list[Evidence], source: str) -> Evidence:
    found = [e for e in evidence if e.source == source]
    assert len(found) == 1, [e.source for e in evidence]
    return found[0]


def png_with(texts: dict[str, str], how: str = "tEXt", **kw: Any) -> bytes:
    info = PngInfo()
    for k, v in texts.items():
        if how == "iTXt":
            info.add_itxt(k, v)
        else:
            info.add_text(k, v, zip=(how == "zTXt"))
    bio = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(bio, "PNG", pnginfo=info, **kw)
    return bio.getvalue()


def exif_with(ifd0: dict[int, Any], exif_ifd: dict[int, Any] | None = None) -> bytes:
    e = Image.Exif()
    for k, v in ifd0.items():
        e[k] = v
    for k, v in (exif_ifd or {}).items():
        e.get_ifd(0x8769)[k] = v
    return e.tobytes()


def save(fmt: str, exif: bytes) -> bytes:
    bio = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    Image.new("RGB", (8, 8), (9, 9, 9)).save(bio, fmt, exif=exif, **extra)
    return bio.getvalue()


def signal_pairs(ev: Evidence) -> set[tuple[str, str, str]]:
    return {(s["type"], s["value"], s["role"]) for s in ev.facts.get("model_signals", [])}


# -- shared fixtures -------------------------------------------------------------

# Values read off the files' own text chunks / UserComment (see the fixtures README).
DUCK = {
    "prompt": "photo of a duck", "negative_prompt": "monochrome", "steps": 15,
    "sampler": "UniPC", "cfg_scale": 5.0, "seed": 235284042, "size": "512x400",
    "model": "realistic_realisticVisionV20_v20", "model_hash": "c0d1994c73",
}  # fmt: skip

FIXTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "AUTOMATIC1111/automatic1111_cropped.png": ("a1111", DUCK),
    "AUTOMATIC1111/automatic1111_cropped.jpg": ("a1111", DUCK),
    "AUTOMATIC1111/automatic1111_stealth.png": ("a1111", {
        "prompt": "a circle", "negative_prompt": "a square", "steps": 20, "sampler": "Euler",
        "scheduler": "Automatic", "cfg_scale": 7.0, "seed": 2015833630, "size": "64x64",
        "model": "realisticVisionV51_v51VAE", "model_hash": "15012c538f",
        "version": "v1.9.4-169-ga30b19dd", "locations": ["stealth:alpha"],
    }),
    "ComfyUI/img2img_cropped.png": ("comfyui", {
        "seed": 280823642470253, "steps": 20, "cfg_scale": 8.0, "sampler": "sample_dpmpp_2m",
        "scheduler": "normal", "model": "v1-5-pruned-emaonly.ckpt",
        "prompt": "photograph of victorian woman with wings, sky clouds, meadow grass\n",
        "negative_prompt": "watermark, text\n",
    }),
    "ComfyUI/night_evening_day_morning_cropped.png": ("comfyui", {
        "seed": 335608130539327, "steps": 13, "cfg_scale": 8.5, "sampler": "dpmpp_sde",
        "size": "704x1280",
    }),
    "ComfyUI/noisy_latents_3_subjects_cropped.png": ("comfyui", {"model": "Anything-V3.0.ckpt"}),
    "ComfyUI/unclip_2pass_cropped.png": ("comfyui", {
        "seed": 1106257833005336, "steps": 26, "sampler": "uni_pc_bh2",
    }),
    "Fooocus/fooocus1_cropped.png": ("fooocus", {
        "prompt": "a smiling goldfish", "seed": 6952411511246973023, "steps": 30,
        "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "cfg_scale": 4.0,
        "size": "768x1280", "model": "juggernautXL_v8Rundiffusion",
        "model_hash": "aeb7e9e689", "version": "Fooocus v2.4.3",
    }),
    "InvokeAI/invokeai_dream1.png": ("invokeai", {
        "seed": 2980747362, "steps": 50, "cfg_scale": 5.0, "sampler": "k_lms",
        "size": "512x768", "negative_prompt": "rendering, glowing eyes, skinny",
    }),
    "InvokeAI/invokeai_imeta1.png": ("invokeai", {
        "prompt": "digital artwork, oil painting. painterly brushstrokes, holidays,",
        "seed": 3293022630, "steps": 35, "cfg_scale": 8.0, "scheduler": "euler",
        "size": "1024x1024", "model": "juggernautXL", "vae": "VAEFix",
    }),
    "InvokeAI/invokeai_sdmeta1.png": ("invokeai", {
        "seed": 2980747362, "steps": 50, "cfg_scale": 5.0, "sampler": "k_lms",
        "model": "deliberateForInvoke_v08", "version": "2.3.0",
        "model_hash": "56d1442a0feefd64836a19ac8e3527ec71c884fc962e246ddf67b03e42921272",
    }),
    "NovelAI/novelai1_cropped.png": ("novelai", {
        "prompt": "masterpiece, best quality,  cat, space, icon", "steps": 50,
        "sampler": "k_euler_ancestral", "seed": 2253955223, "cfg_scale": 10.0,
        "model": "Stable Diffusion 1D44365E", "signature": "absent",
    }),
}  # fmt: skip


def test_every_parser_fixture_is_covered(testdata: Path) -> None:
    on_disk = {
        str(p.relative_to(testdata / PARSERS))
        for p in (testdata / PARSERS).rglob("*") if p.is_file()
    }  # fmt: skip
    assert on_disk == set(FIXTURES)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_shared_fixture_parses_into_the_right_generator(testdata: Path, name: str) -> None:
    source, expected = FIXTURES[name]
    evidence, errors = entry_point(ImageContext.from_path(testdata / PARSERS / name))
    assert errors == []
    assert [e.source for e in evidence] == [source]
    ev = evidence[0]
    assert ev.claim == "ai-generated" and ev.strength == "strong"
    for key, value in expected.items():
        assert ev.facts.get(key) == value, key


def test_fixture_model_hashes_become_signals(testdata: Path) -> None:
    def ev_of(name: str) -> Evidence:
        return entry_point(ImageContext.from_path(testdata / PARSERS / name))[0][0]

    assert signal_pairs(ev_of("AUTOMATIC1111/automatic1111_cropped.png")) == {
        ("autov2", "c0d1994c73", "checkpoint")
    }
    assert signal_pairs(ev_of("Fooocus/fooocus1_cropped.png")) == {
        ("autov2", "aeb7e9e689", "checkpoint")
    }
    sha = "56d1442a0feefd64836a19ac8e3527ec71c884fc962e246ddf67b03e42921272"
    assert signal_pairs(ev_of("InvokeAI/invokeai_sdmeta1.png")) == {("sha256", sha, "checkpoint")}


def test_comfyui_fixture_workflow_summary(testdata: Path) -> None:
    path = testdata / PARSERS / "ComfyUI/night_evening_day_morning_cropped.png"
    raw = ImageContext.from_path(path).png_text_map()["prompt"]
    graph = json.loads(raw)  # the expected summary, counted from the raw graph
    types: dict[str, int] = {}
    for node in graph.values():
        types[node["class_type"]] = types.get(node["class_type"], 0) + 1
    ev = entry_point(ImageContext.from_path(path))[0][0]
    wf = ev.facts["workflow"]
    assert wf["node_types"] == types and wf["node_count"] == len(graph)
    ckpts = [n["inputs"]["ckpt_name"] for n in graph.values() if "ckpt_name" in n["inputs"]]
    assert sorted(wf["checkpoints"]) == sorted(ckpts)


@pytest.mark.parametrize("name", ["empty_file.png", "empty_image.jpg", "empty_image.png"])
def test_bad_images_give_no_evidence_and_no_crash(testdata: Path, name: str) -> None:
    evidence, errors = entry_point(ImageContext.from_path(testdata / "genmeta/bad_images" / name))
    assert evidence == []
    assert all(e.message for e in errors)


def test_text_after_idat_is_still_read(testdata: Path) -> None:
    path = testdata / "genmeta/bad_images/text_after_idat.png"
    evidence, errors = entry_point(ImageContext.from_path(path))
    ev = only(evidence, "a1111")
    assert ev.facts["locations"] == ["png:zTXt:parameters"]
    assert ev.facts["seed"] == DUCK["seed"] and errors == []


# -- AUTOMATIC1111 / Forge -------------------------------------------------------

INFOTEXT = (
    "a cat, <lora:catLora:0.8>\nsecond line\n"
    "Negative prompt: ugly,\nbad hands\n"
    'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 42, '
    'Size: 832x1216, Model hash: 6ce0161689, Model: sd_xl_base_1.0, '
    'VAE hash: 235745af8d, VAE: sdxl_vae.safetensors, '
    'Lora hashes: "catLora: 0123456789ab, other:lora: ba9876543210", '
    'TI hashes: "emb: aaaaaaaaaaaa", Template: "a \\"quoted, x\\" template", '
    "Version: v1.10.1"
)


@pytest.mark.parametrize("how", ["tEXt", "zTXt", "iTXt"])
def test_a1111_png_text_in_each_chunk_kind(how: str) -> None:
    evidence, errors = run(png_with({"parameters": INFOTEXT}, how), "png")
    ev = only(evidence, "a1111")
    f = ev.facts
    assert f["generator"] == "AUTOMATIC1111" and f["version"] == "v1.10.1"
    assert f["prompt"] == "a cat, <lora:catLora:0.8>\nsecond line"
    assert f["negative_prompt"] == "ugly,\nbad hands"
    assert (f["steps"], f["seed"], f["cfg_scale"], f["size"]) == (28, 42, 6.5, "832x1216")
    assert (f["sampler"], f["scheduler"]) == ("DPM++ 2M", "Karras")
    assert f["parameters"]["Template"] == 'a "quoted, x" template'
    assert f["loras"] == [
        {"name": "catLora", "hash": "0123456789ab"},
        {"name": "other:lora", "hash": "ba9876543210"},
    ]
    assert signal_pairs(ev) == {
        ("autov2", "6ce0161689", "checkpoint"),
        ("autov2", "235745af8d", "vae"),
        ("autov3", "0123456789ab", "lora"),
        ("autov3", "ba9876543210", "lora"),
    }
    assert f["locations"] == [f"png:{how}:parameters"]
    assert "6ce0161689" in ev.summary and "sd_xl_base_1.0" in ev.summary
    assert errors == []


def test_a1111_autov1_and_hashes_json_and_forge_version() -> None:
    text = ('x\nSteps: 20, Seed: 1, Model hash: 925997e9, Model: old, '
            'Hashes: {"model": "925997e9", "embed:easyneg": "c74b4e810b"}, Version: f2.0.1v1.10.1')  # fmt: skip
    ev = only(run(png_with({"parameters": text}), "png")[0], "a1111")
    assert ev.facts["generator"] == "Forge"
    assert signal_pairs(ev) == {("autov1", "925997e9", "checkpoint"),
                                ("autov2", "c74b4e810b", "embedding")}  # fmt: skip


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize(
    "raw",
    [b"UNICODE\x00" + INFOTEXT.encode("utf-16-be"), b"ASCII\x00\x00\x00" + INFOTEXT.encode()],
    ids=["unicode-be", "ascii"],
)
def test_a1111_exif_user_comment(fmt: str, raw: bytes) -> None:
    evidence, errors = run(save(fmt, exif_with({}, {TAG_USER_COMMENT: raw})), fmt.lower())
    ev = only(evidence, "a1111")
    assert ev.facts["seed"] == 42 and ev.facts["negative_prompt"] == "ugly,\nbad hands"
    assert ev.facts["locations"] == ["exif:UserComment"] and errors == []


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_long_exif_user_comment_written_as_bytes_is_read(fmt: str) -> None:
    # Pillow writes a UserComment given as bytes with type BYTE; one over 4,096 bytes (a
    # long prompt) was dropped as if it were a long numeric array: no evidence, no error.
    long = "a lighthouse at dusk, " * 220 + INFOTEXT
    raw = b"ASCII\x00\x00\x00" + long.encode()
    assert len(raw) > 4096
    evidence, errors = run(save(fmt, exif_with({}, {TAG_USER_COMMENT: raw})), fmt.lower())
    ev = only(evidence, "a1111")
    assert ev.facts["seed"] == 42 and ev.facts["locations"] == ["exif:UserComment"] and errors == []


def test_a1111_fooocus_a1111_scheme_is_named_fooocus() -> None:
    text = "fish\nSteps: 30, Sampler: dpmpp_2m, Seed: 5, Version: Fooocus v2.5.0"
    ev = only(run(png_with({"parameters": text, "fooocus_scheme": "a1111"}), "png")[0], "a1111")
    assert ev.facts["generator"] == "Fooocus"


def _quote(value: str) -> str:
    # As the web UI writes values: JSON-quoted when they hold a separator.
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',:"') else value


@st.composite
def infotexts(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str]]:
    line = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30)
    prompt = draw(line.filter(lambda s: not s.strip().startswith("Negative prompt:")))
    negative = draw(line)
    keys = draw(st.lists(st.from_regex(r"[A-Z][a-z]{1,8}( [a-z]{1,6})?", fullmatch=True),
                         min_size=3, max_size=6, unique_by=str.lower))  # fmt: skip
    keys = ["Steps", "Seed", *[k for k in keys if k.lower() not in ("steps", "seed")]]
    values = {k: draw(line.map(str.strip)) for k in keys}
    values["Steps"], values["Seed"] = "20", str(draw(st.integers(0, 2**32)))
    body = ", ".join(f"{k}: {_quote(v)}" for k, v in values.items())
    text = f"{prompt}\nNegative prompt: {negative}\n{body}" if negative.strip() else f"{prompt}\n{body}"
    return text, prompt.strip(), negative.strip(), values


@settings(max_examples=80, deadline=None)
@given(infotexts())
def test_infotext_round_trip_property(case: tuple[str, str, str, dict[str, str]]) -> None:
    text, prompt, negative, values = case
    info = parse_infotext(text)
    assert info.prompt == prompt
    assert info.negative_prompt == negative
    assert info.params == values


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_infotext_parser_is_total(text: str) -> None:
    info = parse_infotext(text)
    facts = a1111.infotext_facts(info)
    for sig in facts.get("model_signals", []):
        signal_type(sig["type"]).normalize(sig["value"])  # only valid signals come out


# -- ComfyUI ---------------------------------------------------------------------

API_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 77, "steps": 12, "cfg": 4.5, "sampler_name": "euler", "scheduler": "karras",
        "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
    "10": {"class_type": "LoraLoader", "inputs": {
        "lora_name": "style.safetensors", "strength_model": 0.7, "model": ["4", 0]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 640, "height": 480}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red bicycle"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry"}},
}  # fmt: skip
UI_GRAPH = {"nodes": [
    {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["base.safetensors"]},
    {"id": 10, "type": "LoraLoader", "widgets_values": ["style.safetensors", 0.7, 0.7]},
    {"id": 3, "type": "KSampler", "widgets_values": [77, "fixed", 12]},
]}  # fmt: skip


def check_comfy(ev: Evidence) -> None:
    f = ev.facts
    assert (f["seed"], f["steps"], f["cfg_scale"]) == (77, 12, 4.5)
    assert (f["sampler"], f["scheduler"], f["size"]) == ("euler", "karras", "640x480")
    assert (f["prompt"], f["negative_prompt"]) == ("a red bicycle", "blurry")
    assert f["model"] == "base.safetensors"
    assert f["loras"] == [{"name": "style.safetensors", "weight": 0.7}]
    assert f["workflow"]["node_types"]["CLIPTextEncode"] == 2


def test_comfyui_png() -> None:
    data = png_with({"prompt": json.dumps(API_GRAPH), "workflow": json.dumps(UI_GRAPH)})
    evidence, errors = run(data, "png")
    ev = only(evidence, "comfyui")
    check_comfy(ev)
    assert ev.facts["locations"] == ["png:tEXt:prompt", "png:tEXt:workflow"]
    assert errors == [] and [e.source for e in evidence] == ["comfyui"]


def test_comfyui_webp_make_model_not_a_camera() -> None:
    exif = exif_with({TAG_MODEL: "prompt:" + json.dumps(API_GRAPH),
                      TAG_MAKE: "workflow:" + json.dumps(UI_GRAPH)})  # fmt: skip
    data = save("WEBP", exif)
    ctx = ImageContext(Path("c.webp"), data, "webp")
    assert ctx.make_model_is_workflow()
    evidence, errors = generator_evidence(ctx)
    check_comfy(only(evidence, "comfyui"))
    assert errors == []


def test_comfyui_workflow_only() -> None:
    ev = only(run(png_with({"workflow": json.dumps(UI_GRAPH)}), "png")[0], "comfyui")
    assert ev.facts["model"] == "base.safetensors"
    assert ev.facts["workflow"]["loras"] == ["style.safetensors"]


# A video wrapper's graph (sd-parsers' WanVideoWrapper case): the loader names the model
# file in 'model' and the sampler takes its prompts through one 'text_embeds' input.
_VIDEO_NODES = {
    "10": {"class_type": "WanVideoModelLoader",
           "inputs": {"model": "wan/wan2.1_t2v_1.3B_bf16.safetensors", "base_precision": "bf16"}},
    "20": {"class_type": "WanVideoSampler",
           "inputs": {"steps": 20, "cfg": 5.0, "seed": 42, "scheduler": "unipc",
                      "model": ["10", 0], "text_embeds": ["14", 0]}},
}  # fmt: skip
_BRIDGE = {
    "11": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red kite", "clip": ["12", 0]}},
    "13": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["12", 0]}},
    "14": {"class_type": "WanVideoTextEmbedBridge", "inputs": {"positive": ["11", 0], "negative": ["13", 0]}},
}  # fmt: skip
_ENCODER = {
    "14": {"class_type": "WanVideoTextEncode",
           "inputs": {"positive_prompt": "a red kite", "negative_prompt": "blurry", "t5": ["15", 0]}},
}  # fmt: skip


@pytest.mark.parametrize("encoders", [_BRIDGE, _ENCODER], ids=["bridge", "text encoder"])
def test_comfyui_video_wrapper_model_and_prompts(encoders: dict[str, Any]) -> None:
    ev = only(run(png_with({"prompt": json.dumps(_VIDEO_NODES | encoders)}), "png")[0], "comfyui")
    f = ev.facts
    assert f["model"] == "wan/wan2.1_t2v_1.3B_bf16.safetensors"
    assert f["workflow"]["checkpoints"] == ["wan/wan2.1_t2v_1.3B_bf16.safetensors"]
    assert (f["prompt"], f["negative_prompt"]) == ("a red kite", "blurry")
    assert (f["seed"], f["steps"], f["cfg_scale"], f["scheduler"]) == (42, 20, 5.0, "unipc")
    assert "names checkpoint 'wan/wan2.1_t2v_1.3B_bf16.safetensors'" in ev.summary


def test_comfyui_model_link_is_not_a_model_name() -> None:
    # 'model' is a link in every sampler and LoRA loader: never read as a file name.
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
             "5": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["4", 0], "lora_name": "x.safetensors"}}}
    ev = only(run(png_with({"prompt": json.dumps(graph)}), "png")[0], "comfyui")
    assert ev.facts["workflow"]["checkpoints"] == ["base.safetensors"]


def test_comfyui_malformed_json_is_an_evidence_error() -> None:
    evidence, errors = run(png_with({"prompt": '{"3": {"inputs": '}), "png")
    assert [e.source for e in errors] == ["comfyui"]
    assert "malformed JSON" in errors[0].message and "t.png" in errors[0].message
    assert all(e.source != "comfyui" for e in evidence)


def test_comfyui_one_bad_chunk_keeps_the_other() -> None:
    data = png_with({"prompt": "{broken", "workflow": json.dumps(UI_GRAPH)})
    evidence, errors = run(data, "png")
    ev = only(evidence, "comfyui")
    assert any("malformed JSON" in w for w in ev.facts["warnings"]) and errors == []


def test_deeply_nested_json_is_refused_clearly() -> None:
    evidence, errors = run(png_with({"prompt": '{"a":' * 100_000 + "1" + "}" * 100_000}), "png")
    assert [e.source for e in errors] == ["comfyui"] and "nested too deeply" in errors[0].message


_API = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 7.0,
                                                              "sampler_name": "euler", "model": ["4", 0]}},
                   "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.safetensors"}}})


@pytest.mark.parametrize("key", ["prompt", "workflow"])
@pytest.mark.parametrize("broken", [
    _API.replace('"seed": 5', '"seed": ' + "9" * 5000),  # a number json will not read
    _API[:-1] + ', "x": ' + "[" * 3000 + "]" * 3000 + "}",  # nested too deep
    '{"a":' * 100_000 + "1" + "}" * 100_000,  # nested too deep, no parameter words
    _API[:-30],  # cut short
], ids=["huge number", "nested too deep", "nested too deep, no words", "cut short"])
def test_unreadable_comfyui_chunk_is_its_error_whatever_broke_it(key: str, broken: str) -> None:
    # A 'prompt' chunk json could not read was ComfyUI's error and also "prompt-like text in
    # no known format": a weak AI claim when the broken JSON named seed, steps, sampler
    # ("possibly AI-generated (weak)"), none when it did not.
    evidence, errors = run(png_with({key: broken}), "png")
    assert evidence == [] and [e.source for e in errors] == ["comfyui"]
    assert errors[0].message.startswith(f"t.png: PNG tEXt chunk {key!r}: "), errors[0].message


# -- InvokeAI ----------------------------------------------------------------------


def test_invokeai_v3_metadata_with_hashes() -> None:
    b3, sha = "ab" * 32, "cd" * 32
    meta = {
        "app_version": "4.2.1", "positive_prompt": "a lighthouse", "negative_prompt": "fog",
        "seed": 9, "steps": 30, "cfg_scale": 7.5, "scheduler": "dpmpp_2m", "width": 1024,
        "height": 768, "model": {"name": "juggernautXL", "hash": f"blake3:{b3}", "base": "sdxl"},
        "vae": {"name": "sdxl-vae", "hash": f"sha256:{sha}"},
        "loras": [{"model": {"name": "detail", "hash": f"blake3:{'ef' * 32}"}, "weight": 0.5}],
    }  # fmt: skip
    graph = {"nodes": {"a": {"type": "main_model_loader"}, "b": {"type": "denoise_latents"}}}
    data = png_with({"invokeai_metadata": json.dumps(meta), "invokeai_graph": json.dumps(graph)})
    ev = only(run(data, "png")[0], "invokeai")
    f = ev.facts
    assert (f["prompt"], f["negative_prompt"], f["seed"], f["steps"]) == ("a lighthouse", "fog", 9, 30)
    assert (f["size"], f["model"], f["version"]) == ("1024x768", "juggernautXL", "4.2.1")
    assert f["loras"] == [{"name": "detail", "weight": 0.5, "hash": f"blake3:{'ef' * 32}"}]
    assert signal_pairs(ev) == {("blake3", b3, "checkpoint"), ("sha256", sha, "vae"),
                                ("blake3", "ef" * 32, "lora")}  # fmt: skip
    assert f["workflow"]["node_types"] == {"denoise_latents": 1, "main_model_loader": 1}


def test_invokeai_v2_and_v1() -> None:
    v2 = {"model_weights": "sd-1.5", "model_hash": "12" * 32, "app_version": "2.2.5",
          "image": {"prompt": "a boat [rain]", "steps": 25, "cfg_scale": 7, "seed": 3,
                    "sampler": "k_euler", "width": 512, "height": 512}}  # fmt: skip
    ev = only(run(png_with({"sd-metadata": json.dumps(v2)}), "png")[0], "invokeai")
    assert (ev.facts["prompt"], ev.facts["negative_prompt"]) == ("a boat", "rain")
    assert (ev.facts["steps"], ev.facts["seed"], ev.facts["size"]) == (25, 3, "512x512")
    assert signal_pairs(ev) == {("sha256", "12" * 32, "checkpoint")}
    dream = '"a cabin in snow [people]" -s 40 -S 1234 -W 640 -H 448 -C 7.5 -A k_heun'
    ev = only(run(png_with({"Dream": dream}), "png")[0], "invokeai")
    f = ev.facts
    assert (f["prompt"], f["negative_prompt"]) == ("a cabin in snow", "people")
    assert (f["steps"], f["seed"], f["size"], f["cfg_scale"], f["sampler"]) == (
        40, 1234, "640x448", 7.5, "k_heun")  # fmt: skip


def test_invokeai_bad_dream_line_is_an_error() -> None:
    _, errors = run(png_with({"Dream": '"unterminated -s 5'}), "png")
    assert [e.source for e in errors] == ["invokeai"]


# -- Fooocus, SwarmUI ----------------------------------------------------------------


def test_fooocus_json_with_loras() -> None:
    meta = {"prompt": "a fox", "negative_prompt": "", "seed": "99", "steps": 60,
            "guidance_scale": 7, "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras",
            "resolution": "(1152, 896)", "base_model": "juggernaut",
            "base_model_hash": "aeb7e9e689", "version": "Fooocus v2.5.5",
            "loras": [["sdxl_offset.safetensors", 0.1, "4852686128"]]}  # fmt: skip
    data = png_with({"parameters": json.dumps(meta), "fooocus_scheme": "fooocus"})
    evidence, errors = run(data, "png")
    ev = only(evidence, "fooocus")
    assert (ev.facts["seed"], ev.facts["size"], ev.facts["cfg_scale"]) == (99, "1152x896", 7.0)
    assert signal_pairs(ev) == {("autov2", "aeb7e9e689", "checkpoint"),
                                ("autov2", "4852686128", "lora")}  # fmt: skip
    assert [e.source for e in evidence] == ["fooocus"] and errors == []


SWARM = {
    "sui_image_params": {"prompt": "a castle", "negativeprompt": "low quality", "model": "flux1-dev",
                         "seed": 1234, "steps": 20, "cfgscale": 1, "width": 1024, "height": 1024,
                         "sampler": "euler", "scheduler": "simple", "swarm_version": "0.9.4.0",
                         "loras": ["ink"], "loraweights": ["0.8"]},
    "sui_models": [{"name": "flux1-dev.safetensors", "param": "model", "hash": "0x" + "aa" * 32},
                   {"name": "ink.safetensors", "param": "loras", "hash": "0x" + "bb" * 32}],
}  # fmt: skip


def test_swarmui_png_and_jpeg() -> None:
    evidence, errors = run(png_with({"parameters": json.dumps(SWARM)}), "png")
    ev = only(evidence, "swarmui")
    assert (ev.facts["prompt"], ev.facts["negative_prompt"]) == ("a castle", "low quality")
    assert (ev.facts["seed"], ev.facts["version"]) == (1234, "0.9.4.0")
    assert ev.facts["loras"] == [{"name": "ink", "weight": 0.8}]
    assert signal_pairs(ev) == {("sha256", "aa" * 32, "checkpoint"), ("sha256", "bb" * 32, "lora")}
    assert [e.source for e in evidence] == ["swarmui"] and errors == []
    raw = b"UNICODE\x00" + json.dumps(SWARM).encode("utf-16-be")
    evidence, _ = run(save("JPEG", exif_with({}, {TAG_USER_COMMENT: raw})), "jpeg")
    assert only(evidence, "swarmui").facts["locations"] == ["exif:UserComment"]


# -- unknown text, errors, limits ----------------------------------------------------


def test_unknown_prompt_like_text() -> None:
    evidence, _ = run(png_with({"Comment": "made in my studio"}), "png")
    ev = only(evidence, "unknown-generator-text")
    assert (ev.claim, ev.strength) == ("unknown", "weak")
    evidence, _ = run(png_with({"prompt": "a dog; steps=20; seed=5; sampler=ddim"}), "png")
    ev = only(evidence, "unknown-generator-text")
    assert (ev.claim, ev.strength) == ("ai-generated", "weak")
    assert ev.facts["parameter_words"] == ["sampler", "seed", "steps"]


def test_plain_camera_like_files_give_nothing() -> None:
    exif = exif_with({TAG_MAKE: "Canon", TAG_MODEL: "EOS R5"},
                     {TAG_USER_COMMENT: b"ASCII\x00\x00\x00holiday"})  # fmt: skip
    assert run(save("JPEG", exif), "jpeg") == ([], [])
    assert run(png_with({"Software": "GIMP"}), "png") == ([], [])


def test_broken_exif_is_reported_once() -> None:
    bio = io.BytesIO()
    Image.new("RGB", (8, 8)).save(bio, "JPEG")
    data = bio.getvalue()
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHI", 0x8769, 4, 1) + struct.pack("<I", 8) + b"\x00" * 4  # loop
    seg = b"Exif\x00\x00" + tiff
    data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + data[2:]
    evidence, errors = run(data, "jpeg")
    assert evidence == [] and [e.source for e in errors] == ["exif"]
    assert "loop" in errors[0].message


def test_crc_mismatch_is_a_warning_fact() -> None:
    data = bytearray(png_with({"parameters": INFOTEXT}))
    i = data.index(b"a cat")
    data[i] = ord("A")
    ev = only(run(bytes(data), "png")[0], "a1111")
    assert ev.facts["prompt"].startswith("A cat")
    assert any("CRC mismatch" in w for w in ev.facts["warnings"])


def test_gigantic_parameters_chunk_is_capped() -> None:
    text = "x" * 5000 + "\nSteps: 1, Seed: 2, Sampler: Euler"
    data = png_with({"parameters": text}, "zTXt")
    evidence, errors = run(data, "png", Limits(max_text_chunk=2000))
    # The parameters line was cut off by the cap: no A1111 claim, an honest unknown.
    assert all(e.source != "a1111" for e in evidence)
    assert only(evidence, "unknown-generator-text").claim == "unknown"


def test_model_signal_forms() -> None:
    assert model_signal("6CE0161689", "checkpoint") == {
        "type": "autov2", "value": "6ce0161689", "role": "checkpoint"}  # fmt: skip
    assert model_signal("0123456789ab", "embedding") is None  # plain SHA-256 prefix: no type
    assert model_signal("0123456789ab", "lora")["type"] == "autov3"  # type: ignore[index]
    assert model_signal("blake3:" + "0" * 64, "checkpoint")["type"] == "blake3"  # type: ignore[index]
    assert model_signal("random:xyz", "checkpoint") is None
    assert model_signal("zzzzzzzzzz", "checkpoint") is None


@settings(max_examples=100, deadline=None)
@given(
    key=st.sampled_from(["parameters", "prompt", "workflow", "Comment", "invokeai_metadata",
                         "sd-metadata", "Dream", "fooocus_scheme"]),
    text=st.one_of(st.text(max_size=200), st.builds(json.dumps, st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20))),
)  # fmt: skip
def test_fuzz_generator_sources_never_crash(key: str, text: str) -> None:
    info = PngInfo()
    info.add_itxt(key, text)
    info.add_text("Software", "NovelAI")
    bio = io.BytesIO()
    Image.new("RGB", (2, 2)).save(bio, "PNG", pnginfo=info)
    evidence, errors = run(bio.getvalue(), "png")
    _readable_and_bounded(evidence, errors)
    assert run(bio.getvalue(), "png") == (evidence, errors)  # the same bytes, the same findings


def _readable_and_bounded(evidence: list[Evidence], errors: list[EvidenceError]) -> None:
    """What any input may produce: evidence a person can read (one printable line, of
    bounded length) whose model hashes are valid signals, and errors that say why."""
    sources = {name for name, _ in SOURCES}
    for e in evidence:
        assert isinstance(e, Evidence)
        assert e.summary and len(e.summary) < 1000 and e.summary.isprintable(), e.summary
        json.dumps(e.model_dump(mode="json"))
        for sig in e.facts.get("model_signals", []):
            assert signal_type(sig["type"]).normalize(sig["value"]) == sig["value"]
    for err in errors:
        assert err.source in sources
        assert err.message and len(err.message) < 1000 and err.message.isprintable(), err.message


def test_png_chunk_count_bomb_is_bounded() -> None:
    bio = io.BytesIO()
    Image.new("RGB", (2, 2)).save(bio, "PNG")
    data = bio.getvalue()
    empty = struct.pack(">I", 0) + b"tEXt" + struct.pack(">I", zlib.crc32(b"tEXt"))
    i = data.rindex(b"IEND") - 4
    bomb = data[:i] + empty * 150_000 + data[i:]
    ctx = ImageContext(Path("b.png"), bomb, "png")
    evidence, _ = generator_evidence(ctx)
    assert len(ctx.png_chunks()) <= 100_000 and evidence == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=12,
)
_KNOWN_KEYS = {
    "fooocus": ["prompt", "negative_prompt", "seed", "steps", "loras", "resolution", "base_model",
                "base_model_hash", "refiner_model", "refiner_model_hash", "guidance_scale", "version"],
    "swarm": ["prompt", "negativeprompt", "model", "seed", "loras", "loraweights", "width",
              "height", "cfgscale", "swarm_version"],
    "invokeai": ["positive_prompt", "seed", "steps", "model", "vae", "loras", "width", "height",
                 "cfg_scale", "app_version"],
    "sdmeta": ["model_weights", "model_hash", "image", "app_version"],
    "novelai": ["uc", "seed", "steps", "scale", "sampler", "width", "height", "signed_hash"],
    "comfy": ["1", "2", "3"],
}  # fmt: skip


@st.composite
def generator_payloads(draw: st.DrawFn) -> dict[str, str]:
    kind = draw(st.sampled_from(sorted(_KNOWN_KEYS)))
    obj = {k: draw(_json) for k in draw(st.lists(st.sampled_from(_KNOWN_KEYS[kind]), max_size=6))}
    if kind == "fooocus":
        return {"parameters": json.dumps(obj), "fooocus_scheme": "fooocus"}
    if kind == "swarm":
        models = draw(st.lists(st.fixed_dictionaries({"param": _json, "hash": _json, "name": _json}),
                               max_size=2))  # fmt: skip
        return {"parameters": json.dumps({"sui_image_params": obj, "sui_models": models})}
    if kind == "invokeai":
        return {"invokeai_metadata": json.dumps(obj), "invokeai_graph": json.dumps(draw(_json))}
    if kind == "sdmeta":
        return {"sd-metadata": json.dumps(obj)}
    if kind == "novelai":
        return {"Software": "NovelAI", "Comment": json.dumps(obj)}
    graph = {k: {"class_type": draw(st.sampled_from(["KSampler", "CheckpointLoader", "X"])),
                 "inputs": draw(_json)} for k in obj}  # fmt: skip
    return {"prompt": json.dumps(graph), "workflow": json.dumps({"nodes": draw(_json)})}


@settings(max_examples=80, deadline=None)
@given(generator_payloads())
def test_fuzz_known_keys_with_arbitrary_values(texts: dict[str, str]) -> None:
    data = png_with(texts)
    ctx = ImageContext(Path("f.png"), data, "png")
    for _, source in SOURCES:  # sources themselves: only InputError may escape
        try:
            found = list(source(ctx))
        except InputError as exc:
            assert exc.path == "f.png" and str(exc).startswith(f"f.png: {exc.reason}")
            assert exc.reason.isprintable()
            continue
        _readable_and_bounded(found, [])
    evidence, errors = run(data, "png")
    _readable_and_bounded(evidence, errors)
    assert run(data, "png") == (evidence, errors)


# -- an edit of an input image is AI-edited, not AI-generated ----------------------
# A record of inpainting shows the model regenerated a masked part of an input image whose
# other pixels may be a photo's own: "AI-generated" would say no real picture is in it.

_TXT2IMG = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: m"
_INPAINT_NODES = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "inpaint.safetensors"}},
    "5": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
    "6": {"class_type": "VAEEncodeForInpaint", "inputs": {"pixels": ["5", 0], "mask": ["5", 1], "grow_mask_by": 6}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
                                               "model": ["4", 0], "latent_image": ["6", 0]}},
}  # fmt: skip


@pytest.mark.parametrize(("texts", "source", "edit"), [
    ({"parameters": _TXT2IMG + ", Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked"},
     "a1111", "inpainting: Mask blur: 4, Inpaint area: Only masked"),
    ({"parameters": _TXT2IMG + ", Denoising strength: 0.6, Mask blur x: 4, Mask blur y: 4, Version: f2.0.1v1.10.1"},
     "a1111", "inpainting: Mask blur x: 4"),
    ({"prompt": json.dumps(_INPAINT_NODES)}, "comfyui",
     "inpainting nodes: VAEEncodeForInpaint on a loaded image (LoadImage)"),
    ({"invokeai_metadata": json.dumps({"positive_prompt": "a cat", "generation_mode": "sdxl_inpaint",
                                       "model": {"name": "m"}})}, "invokeai", "generation_mode sdxl_inpaint"),
    ({"invokeai_metadata": json.dumps({"positive_prompt": "a cat", "generation_mode": "outpaint",
                                       "model": {"name": "m"}})}, "invokeai", "generation_mode outpaint"),
], ids=["a1111 inpaint", "forge inpaint", "comfyui inpaint", "invokeai inpaint", "invokeai outpaint"])  # fmt: skip
def test_inpainting_is_ai_edited(texts: dict[str, str], source: str, edit: str) -> None:
    data = png_with(texts)
    ev = only(run(data, "png")[0], source)
    assert (ev.claim, ev.strength) == ("ai-edited", "strong")
    assert ev.facts["edit"] == edit
    assert f"it records an edit of an input image ({edit}): AI-edited, not wholly generated" in ev.summary
    report = analyze_provenance(Path("t.png"), data, "png")
    assert report.verdict.startswith("AI-edited: generator metadata")


@pytest.mark.parametrize("texts", [
    {"parameters": _TXT2IMG},
    {"parameters": _TXT2IMG + ", Denoising strength: 0.7, Hires upscale: 2, Hires upscaler: Latent"},
    {"parameters": _TXT2IMG + ", Denoising strength: 0.5"},  # img2img of a whole picture
    # ADetailer inpaints the faces of the txt2img output itself: still wholly generated
    {"parameters": _TXT2IMG + ", ADetailer model: face_yolov8n.pt, ADetailer mask blur: 4, "
                              "ADetailer inpaint only masked: True"},
    {"prompt": json.dumps(API_GRAPH)},
    {"invokeai_metadata": json.dumps({"positive_prompt": "a cat", "generation_mode": "txt2img"})},
    # a detailer pass inpainting the graph's own output: no image came in
    {"prompt": json.dumps({k: v for k, v in _INPAINT_NODES.items() if k != "5"})},
], ids=["txt2img", "hires fix", "img2img", "adetailer", "comfyui txt2img", "invokeai txt2img",
        "comfyui detailer"])
def test_generation_without_a_mask_stays_ai_generated(texts: dict[str, str]) -> None:
    (ev,) = [e for e in run(png_with(texts), "png")[0] if e.claim != "unknown"]
    assert ev.claim == "ai-generated" and "edit" not in ev.facts


# -- Fooocus-MRE (stable-diffusion-prompt-reader's "fooocus jpeg format" and PNG 'Comment') --

_MRE = {"prompt": "a red fox", "negative_prompt": "blurry", "styles": ["Default (Slightly Cinematic)"],
        "performance": "Speed", "steps": 30, "cfg": 7.0, "base_model": "sd_xl_base_1.0.safetensors",
        "refiner_model": "None", "l1": "sd_xl_offset_example-lora_1.0.safetensors", "w1": 0.5,
        "l2": "None", "w2": 1.0, "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "seed": 123,
        "width": 1152, "height": 896, "software": "Fooocus-MRE v2.0.78.5"}  # fmt: skip


def _jpeg_with_comment(text: str) -> bytes:
    bio = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(bio, "JPEG", comment=text)
    return bio.getvalue()


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("software", [True, False], ids=["named", "keys only"])
def test_fooocus_mre_comment(fmt: str, software: bool) -> None:
    meta = dict(_MRE) if software else {k: v for k, v in _MRE.items() if k != "software"}
    data = png_with({"Comment": json.dumps(meta)}) if fmt == "png" else _jpeg_with_comment(json.dumps(meta))
    evidence, errors = run(data, fmt)
    ev = only(evidence, "fooocus")
    assert errors == [] and [e.source for e in evidence if e.claim != "unknown"] == ["fooocus"]
    f = ev.facts
    assert (ev.claim, ev.strength, f["generator"]) == ("ai-generated", "strong", "Fooocus")
    assert (f["prompt"], f["negative_prompt"], f["model"]) == ("a red fox", "blurry", "sd_xl_base_1.0.safetensors")
    assert (f["seed"], f["steps"], f["cfg_scale"], f["size"]) == (123, 30, 7.0, "1152x896")
    assert f["loras"] == [{"name": "sd_xl_offset_example-lora_1.0.safetensors", "weight": 0.5}]
    assert f["locations"] == (["png:tEXt:Comment"] if fmt == "png" else ["jpeg:COM"])


@pytest.mark.parametrize("text", ['{"prompt": "a fox", "steps": 3}', "just a comment", '{"a": 1}'])
def test_other_comments_are_not_fooocus(text: str) -> None:
    for data, fmt in ((png_with({"Comment": text}), "png"), (_jpeg_with_comment(text), "jpeg")):
        assert all(e.source != "fooocus" for e in run(data, fmt)[0])


# -- A1111's extras tab (stable-diffusion-prompt-reader's "A1111 webUI (Postprocessing)") --

_PP = "Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+"


@pytest.mark.parametrize("key", ["postprocessing", "extras"])
def test_a1111_postprocessing_alone_is_an_edit_not_a_generation(key: str) -> None:
    data = png_with({key: _PP})
    ev = only(run(data, "png")[0], "a1111")
    assert (ev.claim, ev.strength) == ("edited", "strong")
    assert ev.facts["postprocessing"] == _PP and ev.facts["locations"] == [f"png:tEXt:{key}"]
    report = analyze_provenance(Path("t.png"), data, "png")
    assert report.verdict.startswith("edited: AUTOMATIC1111 postprocessing 'Postprocess upscale by: 4, ")


def test_a1111_postprocessing_beside_an_infotext_is_a_fact_of_it() -> None:
    ev = only(run(png_with({"parameters": _TXT2IMG, "postprocessing": _PP}), "png")[0], "a1111")
    assert ev.claim == "ai-generated" and ev.facts["postprocessing"] == _PP
    assert ev.facts["locations"] == ["png:tEXt:parameters", "png:tEXt:postprocessing"]


# -- ComfyUI saves its graph with every image, also one it only processed ------------

_UPSCALE_ONLY = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "holiday.jpg"}},
    "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
    "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
}  # fmt: skip


def test_comfyui_graph_without_a_sampler_on_a_loaded_image_is_an_edit() -> None:
    # A photo upscaled in ComfyUI read "AI-generated ... names checkpoint '4x-UltraSharp.pth'".
    data = png_with({"prompt": json.dumps(_UPSCALE_ONLY)})
    ev = only(run(data, "png")[0], "comfyui")
    assert (ev.claim, ev.strength) == ("edited", "strong")
    assert "model" not in ev.facts and "checkpoints" not in ev.facts["workflow"]
    assert ev.facts["workflow"]["upscale_models"] == ["4x-UltraSharp.pth"]
    report = analyze_provenance(Path("t.png"), data, "png")
    assert report.verdict == "edited: ComfyUI graph 'loads an image (LoadImage), runs no sampler'"


@pytest.mark.parametrize("graph", [
    # img2img: the loaded picture is regenerated whole by a sampler
    _UPSCALE_ONLY | {"5": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7.0}}},
    # a generator without a sampler node (a remote API node) and no image loaded
    {"1": {"class_type": "OpenAIGPTImage1", "inputs": {"prompt": "a cat"}},
     "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}},
], ids=["img2img", "api node"])  # fmt: skip
def test_comfyui_generation_stays_ai_generated(graph: dict[str, Any]) -> None:
    ev = only(run(png_with({"prompt": json.dumps(graph)}), "png")[0], "comfyui")
    assert ev.claim == "ai-generated"



@pytest.mark.parametrize("node", ["ReActorFaceSwap", "FaceDetailer", "ReActorRestoreFace",
                                  "OpenAIGPTImage1", "FluxKontextProImageNode"])
def test_comfyui_face_swap_or_restoration_without_a_sampler_is_an_ai_edit(node: str) -> None:
    # A face swapped onto a loaded photo runs no sampler: not generated, but an AI edit.
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "photo.jpg"}},
             "2": {"class_type": node, "inputs": {"input_image": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}  # fmt: skip
    data = png_with({"prompt": json.dumps(graph)})
    ev = only(run(data, "png")[0], "comfyui")
    assert (ev.claim, ev.strength) == ("ai-edited", "strong")
    assert f"AI edit nodes ({node})" in ev.facts["value"]
    assert analyze_provenance(Path("t.png"), data, "png").verdict == "AI-edited: generator metadata (ComfyUI)"



def test_a1111_postprocessing_face_restoration_is_an_ai_edit() -> None:
    text = "Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN 4x+, GFPGAN visibility: 1"
    ev = only(run(png_with({"postprocessing": text}), "png")[0], "a1111")
    assert (ev.claim, ev.strength) == ("ai-edited", "strong")
    assert "face restoration regenerates faces with a model" in ev.summary



@pytest.mark.parametrize("loader", ["VHS_LoadVideo", "LoadImagesFromDir //Inspire", "Load Image (as Mask)"])
def test_comfyui_frames_or_images_loaded_without_a_sampler_are_an_edit(loader: str) -> None:
    # Frames taken from a video (VideoHelperSuite) and saved read "AI-generated".
    graph = {"1": {"class_type": loader, "inputs": {"video": "holiday.mp4"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}  # fmt: skip
    ev = only(run(png_with({"prompt": json.dumps(graph)}), "png")[0], "comfyui")
    assert ev.claim == "edited"


def test_comfyui_image_model_loader_is_not_a_loaded_picture() -> None:
    # SVD's ImageOnlyCheckpointLoader loads a model, not a picture: no edit of an input.
    graph = {"1": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "svd.safetensors"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}  # fmt: skip
    ev = only(run(png_with({"prompt": json.dumps(graph)}), "png")[0], "comfyui")
    assert ev.claim == "ai-generated"


def test_a_text_chunk_cut_at_the_read_limit_is_not_called_checked() -> None:
    """A1111's parameters after a prompt padded past the text read (Limits.max_text_chunk):
    the record was unread and the verdict said "no provenance evidence found"; now it says
    the generators could not be checked. A chunk a source did read adds nothing."""
    infotext = "a fox{pad}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Seed: 1, Model: v1-5"
    limits = Limits(max_text_chunk=4096)

    def report(**texts: str) -> Any:
        info = PngInfo()
        for k, v in texts.items():
            info.add_text(k, v)
        out = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 20, 30)).save(out, "PNG", pnginfo=info)
        return analyze_provenance(Path("p.png"), out.getvalue(), "png", limits=limits)

    padded = report(parameters=infotext.format(pad=" " + "x" * 5000))
    assert padded.verdict.startswith("no provenance evidence found; could not check: generators"), padded.verdict
    (err,) = [e for e in padded.errors if e.source == "generators"]
    assert "'parameters' is longer than the 4,096 bytes read" in err.message
    whole = report(parameters=infotext.format(pad=""))
    assert whole.verdict == "AI-generated: generator metadata (AUTOMATIC1111)"
    # read as A1111 from its start although capped: the record was read
    assert not [e for e in report(parameters=infotext.format(pad="") + " " + "y" * 5000).errors
                if e.source == "generators"]
