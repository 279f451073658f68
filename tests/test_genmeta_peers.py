"""Generator-metadata layouts that stable-diffusion-prompt-reader (receyuki) reads and
assay disagreed on. Tiny generated images that carry only the metadata."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from assay.provenance.analyzer import analyze_provenance
from assay.provenance.context import TAG_MODEL

SWARM = {"sui_image_params": {"prompt": "a castle", "negativeprompt": "low quality",
                              "model": "OfficialStableDiffusion/sd_xl_base_1.0", "seed": 1234,
                              "steps": 20, "cfgscale": 7, "width": 1024, "height": 1024,
                              "swarm_version": "0.5.7.0"}}  # fmt: skip


def _with_exif_model(fmt: str, model: str) -> bytes:
    exif = Image.Exif()
    exif[TAG_MODEL] = model
    bio = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(bio, fmt, exif=exif)
    return bio.getvalue()


def test_stableswarmui_before_058_json_in_exif_model_is_swarmui_not_a_camera(tmp_path: Path) -> None:
    # StableSwarmUI before 0.5.8 wrote its parameters into EXIF Model (sd-prompt-reader's
    # "swarm legacy format"): the headline was "camera traces only (weak)"
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpeg")):
        p = tmp_path / f"swarm.{ext}"
        p.write_bytes(_with_exif_model(fmt, json.dumps(SWARM)))
        report = analyze_provenance(p, p.read_bytes(), ext)
        swarm = [e for e in report.evidence if e.source == "swarmui"]
        assert len(swarm) == 1 and swarm[0].claim == "ai-generated", report.evidence
        assert swarm[0].facts["locations"] == ["exif:Model"]
        assert swarm[0].facts["seed"] == 1234 and swarm[0].facts["prompt"] == "a castle"
        assert not [e for e in report.evidence if e.claim == "camera-captured"]
        assert report.verdict.startswith("AI-generated"), report.verdict


def test_json_in_exif_model_is_no_camera_name(tmp_path: Path) -> None:
    p = tmp_path / "json.jpeg"
    p.write_bytes(_with_exif_model("JPEG", '{"tool": "something"}'))
    report = analyze_provenance(p, p.read_bytes(), "jpeg")
    assert not [e for e in report.evidence if e.claim == "camera-captured"], report.evidence


FOOOCUS = {"prompt": "a fox", "negative_prompt": "", "seed": "99", "steps": 30, "guidance_scale": 4,
           "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "resolution": "(1024, 1024)",
           "base_model": "juggernautXL_v8Rundiffusion", "base_model_hash": "aeb7e9e689",
           "refiner_model": "None", "version": "Fooocus v2.5.5"}  # fmt: skip


def test_fooocus_jpeg_and_webp_exif_user_comment_is_read(tmp_path: Path) -> None:
    # Fooocus's get_exif: UserComment = its JSON, Software = "Fooocus v...", MakerNote = scheme
    for fmt, ext, value in (("JPEG", "jpeg", json.dumps(FOOOCUS)), ("JPEG", "jpeg", json.dumps(FOOOCUS).encode()),
                            ("WEBP", "webp", json.dumps(FOOOCUS))):  # fmt: skip
        exif = Image.Exif()
        exif[0x9286] = value
        exif[0x0131] = "Fooocus v2.5.5"
        exif[0x927C] = "fooocus"
        bio = io.BytesIO()
        Image.new("RGB", (8, 8), (9, 9, 9)).save(bio, fmt, exif=exif)
        p = tmp_path / f"f.{ext}"
        p.write_bytes(bio.getvalue())
        report = analyze_provenance(p, p.read_bytes(), ext)
        fooocus = [e for e in report.evidence if e.source == "fooocus"]
        assert len(fooocus) == 1 and fooocus[0].strength == "strong", report.evidence
        assert fooocus[0].facts["seed"] == 99 and fooocus[0].facts["locations"] == ["exif:UserComment"]
        assert {(s["type"], s["value"]) for s in fooocus[0].facts["model_signals"]} == {("autov2", "aeb7e9e689")}
        assert not [e for e in report.evidence if e.source == "unknown-generator-text"]


def test_json_user_comment_of_another_tool_is_not_fooocus(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x9286] = json.dumps({"prompt": "a fox", "version": "1.0"})
    bio = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(bio, "JPEG", exif=exif)
    p = tmp_path / "x.jpeg"
    p.write_bytes(bio.getvalue())
    report = analyze_provenance(p, p.read_bytes(), "jpeg")
    assert not [e for e in report.evidence if e.source == "fooocus"]


# -- Easy Diffusion and Draw Things (sd-prompt-reader reads both; assay found nothing) ------


def _png(texts: dict[str, str]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    bio = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(bio, "PNG", pnginfo=info)
    return bio.getvalue()


ED_REQUEST = {"prompt": "a fox in snow", "negative_prompt": "blurry", "seed": "42",
              "use_stable_diffusion_model": "sd-v1-4", "sampler_name": "euler_a", "width": "512",
              "height": "512", "num_inference_steps": "25", "guidance_scale": "7.5"}  # fmt: skip
ED_LABELS = {"Prompt": "a fox in snow", "Negative Prompt": "blurry", "Seed": "42",
             "Stable Diffusion model": "sd-v1-4", "Sampler": "euler_a", "Width": "512",
             "Height": "512", "Steps": "25", "Guidance Scale": "7.5"}  # fmt: skip


def _report(tmp_path: Path, data: bytes, ext: str):  # type: ignore[no-untyped-def]
    p = tmp_path / f"x.{ext}"
    p.write_bytes(data)
    return analyze_provenance(p, data, ext)


def test_easy_diffusion_png_text_in_both_spellings(tmp_path: Path) -> None:
    for texts in (ED_REQUEST, ED_LABELS):
        report = _report(tmp_path, _png(texts), "png")
        ed = [e for e in report.evidence if e.source == "easydiffusion"]
        assert len(ed) == 1 and ed[0].strength == "strong", report.evidence
        f = ed[0].facts
        assert (f["prompt"], f["negative_prompt"], f["seed"], f["steps"], f["cfg_scale"], f["size"],
                f["model"]) == ("a fox in snow", "blurry", 42, 25, 7.5, "512x512", "sd-v1-4")  # fmt: skip
        assert report.verdict.startswith("AI-generated"), report.verdict
        assert not [e for e in report.evidence if e.source == "unknown-generator-text"]


def test_easy_diffusion_jpeg_user_comment_json(tmp_path: Path) -> None:
    exif = Image.Exif()
    request = {**ED_REQUEST, "seed": 42, "num_inference_steps": 25}
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + json.dumps(request).encode("utf-16-be")
    bio = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(bio, "JPEG", exif=exif)
    report = _report(tmp_path, bio.getvalue(), "jpeg")
    ed = [e for e in report.evidence if e.source == "easydiffusion"]
    assert len(ed) == 1 and ed[0].facts["seed"] == 42 and ed[0].facts["locations"] == ["exif:UserComment"]


def test_a_prompt_chunk_alone_is_not_easy_diffusion(tmp_path: Path) -> None:
    comfy = {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    for texts in ({"prompt": json.dumps(comfy)}, {"prompt": "a fox", "seed": "1"},
                  {"prompt": json.dumps(comfy), "use_stable_diffusion_model": "x"}):
        report = _report(tmp_path, _png(texts), "png")
        assert not [e for e in report.evidence if e.source == "easydiffusion"], texts


def _drawthings_xmp(settings: dict[str, object], tool: str = "Draw Things") -> str:
    comment = json.dumps(settings).replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
            f'xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:CreatorTool>{tool}</xmp:CreatorTool>'
            '<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">' + comment
            + "</rdf:li></rdf:Alt></exif:UserComment></rdf:Description></rdf:RDF></x:xmpmeta>")  # fmt: skip


DT = {"c": "a fox & a hare", "uc": "blurry", "seed": 42, "steps": 20, "scale": 7, "sampler": "DPM++ 2M Karras",
      "model": "sd_xl_base_1.0_f16.ckpt", "size": "1024x1024",
      "lora": [{"file": "ink_lora_f16.ckpt", "weight": 0.6}]}  # fmt: skip


def test_draw_things_xmp_user_comment(tmp_path: Path) -> None:
    report = _report(tmp_path, _png({"XML:com.adobe.xmp": _drawthings_xmp(DT)}), "png")
    dt = [e for e in report.evidence if e.source == "drawthings"]
    assert len(dt) == 1 and dt[0].strength == "strong", report.evidence
    f = dt[0].facts
    assert (f["prompt"], f["negative_prompt"], f["seed"], f["cfg_scale"], f["size"]) == (
        "a fox & a hare", "blurry", 42, 7.0, "1024x1024")
    assert f["loras"] == [{"name": "ink_lora_f16.ckpt", "weight": 0.6}]
    assert report.verdict.startswith("AI-generated"), report.verdict
    # XMP CreatorTool alone names the generator too (moderate)
    xmp = [e for e in report.evidence if e.source == "xmp"]
    assert xmp and xmp[0].facts["generator"] == "Draw Things"


def test_draw_things_value_is_found_from_its_first_opening_in_one_pass(tmp_path: Path) -> None:
    """A packet repeating the opening of the UserComment value without closing it: the lazy
    expression retried from each opening (1 MB: ~2 minutes of one scan worker); a value
    after such openings is still read, from the first opening, as the expression did."""
    opening = "<exif:UserComment><rdf:Alt><rdf:li>"
    flood = _drawthings_xmp(DT).replace("<exif:UserComment>", opening * 28_000 + "<exif:UserComment>", 1)
    flood = flood.replace("</rdf:li>", "", 1)
    assert flood.count(opening) == 28_000
    report = _report(tmp_path, _png({"XML:com.adobe.xmp": flood}), "png")
    assert not [e for e in report.evidence if e.source == "drawthings"]
    ok = _drawthings_xmp(DT).replace("<exif:UserComment>", opening * 3 + "<exif:UserComment>", 1)
    report = _report(tmp_path, _png({"XML:com.adobe.xmp": ok}), "png")
    assert not [e for e in report.evidence if e.source == "drawthings"]  # the value read is the first's: not JSON


def test_json_user_comment_in_xmp_of_another_tool_is_not_draw_things(tmp_path: Path) -> None:
    xmp = _drawthings_xmp({"c": "a caption"}, tool="Photo Editor 2")
    report = _report(tmp_path, _png({"XML:com.adobe.xmp": xmp}), "png")
    assert not [e for e in report.evidence if e.source == "drawthings"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([*ED_REQUEST, "c", "uc", "scale", "model", "size", "lora", "steps"]),
                       _json, max_size=8))  # fmt: skip
def test_fuzz_new_sources_with_arbitrary_values(meta: dict[str, object]) -> None:
    from assay.provenance.context import ImageContext
    from assay.provenance.generators import drawthings, easydiffusion

    meta = {"prompt": "p", "use_stable_diffusion_model": "m", "c": "p", "uc": "n", **meta}
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + json.dumps(meta).encode("utf-16-be")
    bio = io.BytesIO()
    Image.new("RGB", (8, 8)).save(bio, "JPEG", exif=exif)
    samples = [(bio.getvalue(), "jpeg"),
               (_png({k: str(v) for k, v in meta.items()} | {"XML:com.adobe.xmp": _drawthings_xmp(meta)}),
                "png")]  # fmt: skip
    for data, fmt in samples:
        ctx = ImageContext(Path(f"f.{fmt}"), data, fmt)
        for source in (easydiffusion.evidence, drawthings.evidence):
            for e in source(ctx):
                assert e.summary.isprintable() and len(e.summary) < 1000, e.summary
                json.dumps(e.model_dump(mode="json"))
