"""`assay model`, `bank add-model`, `lora extract` and model files in `assay scan`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import lineage_eval as ev
import modelgen
from assay.cli import app

runner = CliRunner()
SCALE = 1 / 16


def _invoke(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    dt = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}
    return modelgen.write_safetensors(
        path, {k: (dt[v.dtype], v.shape) for k, v in arrays.items()}, values=arrays
    )


def test_flagged_model_found_after_conversion_and_fine_tune(tmp_path: Path) -> None:
    db = str(tmp_path / "b.sqlite3")
    specs = modelgen.sd15(SCALE, dt="F32")
    base = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 3)
    flagged = _write(tmp_path / "flagged.safetensors", base)
    assert _invoke("--db", db, "bank", "create", "models", "--create")[0] == 0
    code, out = _invoke("--db", db, "bank", "add-model", "models", str(flagged), "--id", "bad-ckpt",
                        "--role", "flagged for testing", "--json")
    assert code == 0, out
    assert json.loads(out)["added_signals"] == 8  # sha256, autov1/2/3, blake3, crc32, md5, sha1

    # the identical file matches by hash; an fp16 fine-tuned copy only by weights
    code, out = _invoke("--db", db, "model", str(flagged), "--json")
    assert code == 0, out
    rec = json.loads(out)
    assert {m["signal_type"] for m in rec["matches"]} == {"sha256", "autov1", "autov2", "autov3", "blake3",
                                                         "crc32", "md5", "sha1"}
    copy = _write(tmp_path / "copy.safetensors", ev.to_fp16(ev.fine_tune(base, 0.01, 5)))
    code, out = _invoke("--db", db, "model", str(copy), "--json")
    assert code == 0, out
    rec = json.loads(out)
    assert rec["matches"] == []
    # the flagged model's base is not banked: close to it, direction not measured (context)
    assert [d["entry"] for d in rec["lineage"]["related"]] == ["models/bad-ckpt"] and not rec["lineage"]["derived"]
    assert any("bad-ckpt" in line for line in rec["lineage_explanations"])

    unrelated = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 4)
    (tmp_path / "scan").mkdir()
    _write(tmp_path / "scan" / "unrelated.safetensors", unrelated)
    copy.rename(tmp_path / "scan" / "copy.safetensors")
    report = tmp_path / "r.jsonl"
    code, out = _invoke("--db", db, "scan", str(tmp_path / "scan"), "-o", str(report), "--workers", "1")
    assert code == 0, out
    recs = {Path(r["path"]).name: r for r in map(json.loads, report.read_text().splitlines())
            if r["schema"] == "assay.file/1"}
    assert [d["entry"] for d in recs["copy.safetensors"]["model"]["lineage"]["related"]] == ["models/bad-ckpt"]
    lin = recs["unrelated.safetensors"]["model"]["lineage"]
    assert not lin["same"] and not lin["derived"] and not lin["merges"] and not lin["loras"]


def test_lora_extract_writes_a_bankable_lora(tmp_path: Path) -> None:
    specs = modelgen.sd15(SCALE, dt="F32")
    base = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 7)
    lora = ev.random_lora(base, 4, 8)
    base_p = _write(tmp_path / "base.safetensors", base)
    sus_p = _write(tmp_path / "suspect.safetensors", ev.apply_lora(base, lora, 0.8))
    out_p = tmp_path / "extracted.safetensors"
    code, out = _invoke("lora", "extract", str(sus_p), "--base", str(base_p), "-o", str(out_p))
    assert code == 0, out
    assert "LoRA modules" in out and out_p.stat().st_size > 0
    code, out = _invoke("model", str(out_p), "--json", "--no-banks")
    assert code == 0, out
    rec = json.loads(out)
    assert rec["arch"]["kind"] == "lora"
    # never overwrites
    res = runner.invoke(app, ["lora", "extract", str(sus_p), "--base", str(base_p), "-o", str(out_p)])
    assert res.exit_code != 0


def test_model_readable_on_an_empty_and_a_full_store(tmp_path: Path) -> None:
    """The readable report (no --json) on a store with no weight fingerprints, then on
    one that holds the file's own fingerprint: no crash, lineage said either way."""
    specs = modelgen.sd15(SCALE, dt="F32")
    base = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 11)
    f = _write(tmp_path / "m.safetensors", base)
    res = runner.invoke(app, ["model", str(f)])  # the embedded store, empty
    assert res.exit_code == 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "AutoV2" in res.stdout
    assert "lineage: not compared (no enabled bank holds a weight fingerprint)" in res.stdout
    assert "bank matches: none of its hashes is in an enabled bank" in res.stdout

    assert _invoke("bank", "create", "models")[0] == 0
    assert _invoke("bank", "add-model", "models", str(f), "--id", "flagged-one")[0] == 0
    res = runner.invoke(app, ["model", str(f)])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    text = res.stdout
    assert "lineage (from weight fingerprints):" in text
    assert "flagged-one" in text.split("lineage (from weight fingerprints):", 1)[1]
    assert "not compared" not in text
    assert "bank matches" in text and "flagged-one" in text


def test_lineage_finding_is_a_match_in_scan(tmp_path: Path) -> None:
    """A fine-tuned copy of a flagged checkpoint (no hash in common) counts as a matched
    file, is listed, and makes --fail-on-match exit 3; being derived from a known base
    is context, not a match, and so is another fine-tune of the flagged checkpoint's base
    (a sibling: it shares the base, not the flagged checkpoint's change)."""
    db = str(tmp_path / "b.sqlite3")
    specs = modelgen.sd15(SCALE, dt="F32")
    f32 = {k: v for k, v in specs.items() if v[0] == "F32"}
    flagged_w = ev.kept(ev.fine_tune(ev.random_model(f32, 5), 0.05, 3))  # a fine-tune of the base
    flagged = _write(tmp_path / "flagged.safetensors", flagged_w)
    base = _write(tmp_path / "base.safetensors", ev.random_model(f32, 5))
    for bank, path, cid, kind in (("models", flagged, "bad-ckpt", "checkpoint"), ("bases", base, "sd-base", "base")):
        assert _invoke("--db", db, "bank", "create", bank, "--create")[0] == 0
        code, out = _invoke("--db", db, "bank", "add-model", bank, str(path), "--id", cid, "--kind", kind)
        assert code == 0, out
    case = tmp_path / "case"
    case.mkdir()
    _write(case / "copy.safetensors", ev.to_fp16(ev.fine_tune(flagged_w, 0.01, 5)))
    _write(case / "tuned-base.safetensors", ev.to_fp16(ev.fine_tune(ev.random_model(f32, 5), 0.01, 6)))

    code, out = _invoke("--db", db, "scan", str(case), "--json", "--workers", "1", "--fail-on-match")
    assert code == 3, out
    lines = [json.loads(line) for line in out.splitlines()]
    recs = {Path(r["path"]).name: r for r in lines if "path" in r}
    summary = lines[-1]
    assert summary["matched_files"] == 1 and summary["matches_by_bank"] == {"models": 1}
    m = recs["copy.safetensors"]["matches"]
    assert [(x["bank"], x["content_id"], x["signal_type"], x["value"]) for x in m] == [
        ("models", "bad-ckpt", "lineage", "derived")]
    assert "bad-ckpt" in m[0]["note"] and m[0]["strength"] == "lineage"
    tuned = recs["tuned-base.safetensors"]
    assert tuned["matches"] == []
    assert [d["entry"] for d in tuned["model"]["lineage"]["derived"]] == ["bases/sd-base"]
    assert [r["entry"] for r in tuned["model"]["lineage"]["related"]] == ["models/bad-ckpt"]
    assert "does not carry its change" in tuned["model"]["lineage"]["related"][0]["explanation"]

    report = tmp_path / "r.jsonl"
    code, out = _invoke("--db", db, "scan", str(case), "-o", str(report), "--workers", "1")
    assert code == 0
    assert "matched files" in out and "models: 1" in out
    assert f"match: {case / 'copy.safetensors'}" in out.replace("\n", "")


def test_a_minor_component_of_a_flagged_checkpoint_is_context_not_a_match(tmp_path: Path) -> None:
    """A flagged checkpoint ships a VAE and a text encoder that are, in practice, the
    public ones every checkpoint of its family carries. A user's VAE-only or text-encoder-
    only file with those weights was a 'same-weights' match with the flagged checkpoint,
    a fine-tune of that VAE a 'derived' one (false matches for every such file on a seized
    machine); they are now lineage context that names the component and its share. The UNet alone (80% of an SD 1.5 checkpoint's
    weights, the part a fine-tune changes) still matches as the same weights, saying what
    it lacks; a Llama saved without its output head (tied) is still the same weights."""
    db = str(tmp_path / "b.sqlite3")
    specs = modelgen.sd15(SCALE, dt="F32")
    f32 = {k: v for k, v in specs.items() if v[0] == "F32"}
    weights = dict(ev.random_model(f32, 3).items())
    flagged = _write(tmp_path / "flagged.safetensors", weights)
    assert _invoke("--db", db, "bank", "create", "models", "--create")[0] == 0
    assert _invoke("--db", db, "bank", "add-model", "models", str(flagged), "--id", "bad-ckpt")[0] == 0
    case = tmp_path / "case"
    case.mkdir()
    for name, prefix in (("vae", "first_stage_model."), ("te", "cond_stage_model."), ("unet", "model.diffusion_model.")):
        _write(case / f"{name}.safetensors", {k: v for k, v in weights.items() if k.startswith(prefix)})
    vae = {k: v for k, v in weights.items() if k.startswith("first_stage_model.")}
    _write(case / "vae-tuned.safetensors", dict(ev.fine_tune(vae, 0.05, 7).items()))

    code, out = _invoke("--db", db, "scan", str(case), "--json", "--workers", "1")
    lines = [json.loads(line) for line in out.splitlines()]
    recs = {Path(r["path"]).name: r for r in lines if "path" in r}
    assert lines[-1]["matched_files"] == 1
    for name in ("vae", "te"):
        assert recs[f"{name}.safetensors"]["matches"] == []
        (same,) = recs[f"{name}.safetensors"]["model"]["lineage"]["same"]
        assert same["entry"] == "models/bad-ckpt" and same["lacks"] and same["entry_share"] < 0.5
        assert "not that it comes from the entry" in same["explanation"]
    (m,) = recs["unet.safetensors"]["matches"]
    assert m["value"] == "same-weights" and "the suspect lacks text_encoder, vae" in m["note"]
    tuned = recs["vae-tuned.safetensors"]
    assert tuned["matches"] == [] and [d["entry"] for d in tuned["model"]["lineage"]["related"]] == ["models/bad-ckpt"]

    code, out = _invoke("--db", db, "model", str(case / "vae.safetensors"))
    assert code == 0 and "only that part of the entry" in out.replace("\n", " ")


def test_model_without_weights_still_reports_when_banks_hold_fingerprints(tmp_path: Path) -> None:
    """A pickle of plain values (no tensors) against a store with fingerprints: the
    report is printed and lineage says why it was not compared (was: exit 1, no report)."""
    import pickle

    specs = modelgen.sd15(SCALE, dt="F32")
    f = _write(tmp_path / "m.safetensors", ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 2))
    assert _invoke("bank", "create", "models")[0] == 0
    assert _invoke("bank", "add-model", "models", str(f), "--id", "flagged")[0] == 0
    small = tmp_path / "small.pkl"
    small.write_bytes(pickle.dumps({"weights": list(range(40)), "name": "benign"}, protocol=2))  # never loaded
    res = runner.invoke(app, ["model", str(small)])
    assert res.exit_code == 0, res.output
    assert "lineage (from weight fingerprints):" in res.stdout and "not compared: " in res.stdout
    code, out = _invoke("model", str(small), "--json")
    rec = json.loads(out)
    assert code == 0 and rec["format"] and rec["lineage_explanations"][0].startswith("not compared: ")
