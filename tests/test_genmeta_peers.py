"""Generator-metadata layouts that stable-diffusion-prompt-reader (receyuki) reads and
assay disagreed on. Tiny generated images that carry only the metadata."""

from __future__ import annotations

import io
import json
from pathlib import Path

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
