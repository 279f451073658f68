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
