"""The model report end to end: files written by modelgen, opened by the readers,
described by the analyzer, rendered for a terminal."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

import modelgen as g
from assay.config import ScanSettings
from assay.errors import InputError
from assay.models.analyzer import ModelAnalyzer, analyze_model
from assay.report.model import clean, explain_model, explain_model_text
from assay.report.schema import FileRecord
from assay.scan.analyzer import Subject


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    specs, values = g.kohya_lora("sdxl", 8)
    path = tmp_path_factory.mktemp("m") / "lora.safetensors"
    head, _ = g.safetensors_header(specs)
    meta = {
        "ss_sd_model_name": "sd_xl_base_1.0.safetensors",
        "ss_network_alpha": "4",
        "ss_tag_frequency": json.dumps({"1_x": {"tag one": 3}}),
        "ss_training_comment": "[red]not markup[/red]\x1b[2J",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    }
    g.write_safetensors(path, specs, meta, values=values)
    # embed the true data-section hash, as kohya does, so the check must say "match"
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta["sshs_model_hash"] = hashlib.sha256(data[8 + n :]).hexdigest()
    return g.write_safetensors(path, specs, meta, values=values)


def test_lora_report(lora_file: Path) -> None:
    r = analyze_model(lora_file)
    assert r.format == "safetensors"
    assert r.safety is not None and r.safety.verdict == "no-code"
    assert r.arch is not None and r.arch.family == "lora"
    assert r.arch.lora is not None and r.arch.lora.base_family == "stable-diffusion-xl"
    assert r.arch.lora.alphas == {"4": r.arch.lora.modules}  # read from the alpha tensors
    data = lora_file.read_bytes()
    assert r.hashes is not None and r.hashes.sha256 == hashlib.sha256(data).hexdigest()
    assert r.data_offset == 8 + int.from_bytes(data[:8], "little")
    assert [(c.key, c.status) for c in r.hash_checks] == [("sshs_model_hash", "match")]
    assert r.metadata is not None and r.metadata.training is not None
    assert r.metadata.training.top_tags == [("tag one", 3)]
    assert type(r).model_validate_json(r.model_dump_json()) == r  # the JSON form loses nothing


def test_explanation_is_escaped_and_complete(lora_file: Path) -> None:
    r = analyze_model(lora_file)
    text = explain_model(r, str(lora_file))
    assert "\x1b" not in text and "\\x1b[2J" in text
    for needle in ("architecture: lora", "stable-diffusion-xl", "AutoV3", "CRC32", "top tags", "sshs_model_hash: "):
        assert needle in text, needle
    console = Console(record=True, width=200, color_system=None)
    console.print(explain_model_text(r))
    assert "[red]not markup[/red]" in console.export_text()  # brackets shown, not obeyed


def test_torch_zip_checkpoint(tmp_path: Path) -> None:
    p = g.write_torch_zip(tmp_path / "model.ckpt", g.sd15(0.05))
    r = analyze_model(p)
    assert r.safety is not None and r.safety.verdict == "safe"
    assert r.arch is not None and r.arch.family == "stable-diffusion-1"
    assert r.hashes is not None and r.hashes.autov3 is None  # AutoV3 is defined for safetensors only
    assert r.hashes.autov2 == hashlib.sha256(p.read_bytes()).hexdigest()[:10]


def _malicious_zip(path: Path) -> Path:
    # Bytes that would call os.system if unpickled; they are only ever scanned.
    payload = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    return path


def test_dangerous_pickle_is_reported_not_opened(tmp_path: Path) -> None:
    p = _malicious_zip(tmp_path / "evil.ckpt")
    r = analyze_model(p)
    assert r.safety is not None and r.safety.verdict == "dangerous"
    assert any("os.system" in f.globals or "posix.system" in f.globals for f in r.safety.findings)
    assert r.arch is None  # tensors were not rebuilt
    assert r.hashes is not None and r.hashes.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert r.warnings[0].startswith("DANGEROUS")
    text = explain_model(r)
    assert "DANGEROUS" in text and "system" in text


def test_analyzer_fills_record_and_signals(lora_file: Path) -> None:
    record = FileRecord(path=str(lora_file), kind="model", format="safetensors")
    subject = Subject(lora_file, "model", "safetensors", lora_file.stat().st_size, ScanSettings())
    ModelAnalyzer().analyze(subject, record)
    assert record.model is not None and record.model.arch is not None
    types = {s.type: s.value for s in record.signals}
    assert set(types) == {"sha256", "autov1", "autov2", "autov3", "blake3", "crc32", "md5", "sha1"}
    assert types["autov2"] == record.model.hashes.autov2  # type: ignore[union-attr]
    json.dumps(record.to_json_dict())
    assert ModelAnalyzer.name == "model" and ModelAnalyzer.kinds == frozenset({"model"})


def test_bad_files_raise_input_errors(tmp_path: Path) -> None:
    p = tmp_path / "broken.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(InputError, match="broken.safetensors"):
        analyze_model(p)
    with pytest.raises(InputError):
        analyze_model(tmp_path / "absent.safetensors")


def test_clean_escapes_controls() -> None:
    assert clean("a\x00b\u202ec\n") == "a\\x00b\\u202ec\\x0a"
    assert len(clean("x" * 1000, 50)) == 50


def test_shared_real_models(testdata: Path) -> None:
    r = analyze_model(testdata / "models" / "silero_vad_16k.safetensors")
    assert r.safety is not None and r.safety.verdict == "no-code"
    assert r.arch is not None and r.arch.confidence != "certain"  # not a family we know
    jit = testdata / "models" / "silero_vad.jit"
    r = analyze_model(jit)
    data = jit.read_bytes()
    assert r.hashes is not None and r.hashes.sha256 == hashlib.sha256(data).hexdigest()
    assert r.safety is not None and r.safety.verdict != "dangerous"
    # what a person reads: the format, the size, the verdict and the hashes an examiner cites
    text = explain_model(r)
    assert text.startswith(f"torchscript model, {len(data):,} bytes")
    assert f"safety: {r.safety.verdict}" in text
    assert f"SHA256  {r.hashes.sha256}" in text and f"MD5     {hashlib.md5(data).hexdigest()}" in text


def _diffusers_unet(context: int) -> g.Specs:
    specs: g.Specs = {"conv_in.weight": ("F16", (32, 4, 3, 3)), "time_embedding.linear_1.weight": ("F16", (128, 32))}
    for b in range(3):
        specs[f"down_blocks.{b}.attentions.0.transformer_blocks.0.attn2.to_k.weight"] = ("F16", (32, context))
        specs[f"up_blocks.{b + 1}.attentions.0.transformer_blocks.0.attn2.to_k.weight"] = ("F16", (32, context))
    return specs


def _pipeline(root: Path, context: int, te_width: int) -> Path:
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["transformers", "CLIPTextModel"]}))
    for name, specs, file in (
        ("unet", _diffusers_unet(context), "diffusion_pytorch_model.safetensors"),
        ("text_encoder", g.hf_clip("", width=te_width, layers=1, scale=0.01), "model.safetensors"),
    ):
        (root / name).mkdir()
        (root / name / "config.json").write_text("{}")
        g.write_safetensors(root / name / file, specs)
    return root


def test_diffusers_folder(tmp_path: Path) -> None:
    r = analyze_model(_pipeline(tmp_path / "sd1", 768, 768))
    assert r.format == "diffusers"
    assert r.arch is not None and (r.arch.family, r.arch.confidence) == ("stable-diffusion-1", "certain")
    assert set(r.arch.components) == {"unet", "text_encoder"}
    assert r.hashes is None and any("folder" in w for w in r.warnings)
    # a UNet with SD 1.x context but an SD 2.x text encoder: no family is claimed
    r = analyze_model(_pipeline(tmp_path / "mixed", 768, 1024))
    assert r.arch is not None and r.arch.family == "unknown"


def test_peft_folder(tmp_path: Path) -> None:
    root = tmp_path / "adapter"
    root.mkdir()
    (root / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16, "base_model_name_or_path": "some/base"}))
    g.write_safetensors(root / "adapter_model.safetensors", g.peft_lora("sdxl", 8))
    r = analyze_model(root)
    assert r.arch is not None and r.arch.lora is not None
    assert r.arch.lora.base_family == "stable-diffusion-xl"
    assert r.arch.lora.alphas == {"16 (adapter_config.json)": r.arch.lora.modules}


def test_gguf_llm_end_to_end(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    p = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(p), arch="llama")
    w.add_block_count(2)
    w.add_embedding_length(16)
    w.add_context_length(256)
    w.add_head_count(2)
    w.add_name("tiny test llama")
    w.add_string("general.base_model.count", "x")  # wrong type: must not break parsing
    w.add_token_list([f"t{i}" for i in range(2000)])  # longer than the reader keeps
    w.add_tensor("token_embd.weight", np.zeros((2000, 16), np.float32))
    for i in range(2):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((16, 16), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = analyze_model(p)
    assert r.format == "gguf" and r.safety is not None and r.safety.verdict == "no-code"
    assert r.arch is not None and r.arch.family == "llm" and r.arch.confidence == "certain"
    assert r.arch.llm is not None
    assert (r.arch.llm.layers, r.arch.llm.hidden_size, r.arch.llm.vocab_size) == (2, 16, 2000)
    assert r.metadata is not None and r.metadata.gguf is not None
    assert r.metadata.gguf.general["name"] == "tiny test llama"
    assert r.hashes is not None and r.hashes.autov3 is None
    assert "language model: llama" in explain_model(r)


def test_progress_reports_every_byte(lora_file: Path) -> None:
    seen: list[int] = []
    analyze_model(lora_file, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == lora_file.stat().st_size


def test_explanation_shows_no_python_reprs(lora_file: Path) -> None:
    """Ranks and alphas read as text, not as dicts (issue 12, item 3)."""
    r = analyze_model(lora_file)
    line = next(ln for ln in explain_model(r).splitlines() if ln.strip().startswith("adapter:"))
    n = r.arch.lora.modules
    assert f"ranks 8 ({n} modules), alphas 4 ({n} modules)" in line, line
    assert "{" not in line and "}" not in line
