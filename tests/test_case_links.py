"""Case links (issue 24): images tied to the model files of the same scan by the hashes
their generator metadata names; names without files listed as "model not present"."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

import modelgen
from assay.cli import app
from assay.config import ScanSettings
from assay.models.hashes import compute_hashes
from assay.provenance.context import TAG_USER_COMMENT
from assay.report.model import ModelHashes
from assay.report.provenance import Evidence, ProvenanceReport
from assay.report.schema import FileRecord, SignalValue
from assay.scan.links import CaseLinker, readable_lines
from assay.scan.run import run_scan

runner = CliRunner()
SCALE = 1 / 16  # an SD 1.5 layout of a few MiB: AutoV1's window (1 MiB + 64 KiB) is inside


# ------------------------------------------------------------------ the generated case


def _png(texts: dict[str, str], seed: int) -> bytes:
    info = PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    bio = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 37 % 256, seed * 11 % 256, 7)).save(bio, "PNG", pnginfo=info)
    return bio.getvalue()


def _jpeg_user_comment(text: str, seed: int) -> bytes:
    e = Image.Exif()
    e.get_ifd(0x8769)[TAG_USER_COMMENT] = b"UNICODE\x00" + text.encode("utf-16-be")
    bio = io.BytesIO()
    Image.new("RGB", (16, 16), (5, seed * 13 % 256, 9)).save(bio, "JPEG", exif=e.tobytes())
    return bio.getvalue()


def _infotext(model: str | None = None, model_hash: str | None = None,
              loras: list[tuple[str, str]] | None = None, hashes: dict[str, str] | None = None) -> str:
    params = ["Steps: 20", "Sampler: Euler a", "CFG scale: 7", "Seed: 1", "Size: 16x16"]
    if model_hash:
        params.append(f"Model hash: {model_hash}")
    if model:
        params.append(f"Model: {model}")
    if loras:
        params.append('Lora hashes: "' + ", ".join(f"{n}: {h}" for n, h in loras) + '"')
    if hashes:
        params.append("Hashes: " + json.dumps(hashes))
    return "a test pattern\nNegative prompt: none\n" + ", ".join(params)


def _hashes(p: Path) -> ModelHashes:
    from assay.models.formats import open_model

    with open_model(p) as mf:
        return compute_hashes(p, mf.data_offset)


def build_case(root: Path, decoys: int = 0) -> dict[str, Any]:
    """Model files, images naming them in every metadata form that carries hashes, images
    naming absent models, images without metadata; returns what must link."""
    models, images = root / "models", root / "images"
    models.mkdir(parents=True)
    images.mkdir()
    specs32 = modelgen.sd15(SCALE, dt="F32")
    specs16 = {k: ("F16", shape) for k, (_dt, shape) in specs32.items()}
    files = {
        "base": modelgen.write_safetensors(models / "base.safetensors", specs32, seed=1),
        "fp16": modelgen.write_safetensors(models / "base-fp16.safetensors", specs16, seed=1),
        "tune": modelgen.write_safetensors(models / "finetune.safetensors", specs32, seed=2),
    }
    for i, name in enumerate(("loraA", "loraB")):
        specs, values = modelgen.kohya_lora("sd1", rank=8, dt="F32")
        files[name] = modelgen.write_safetensors(models / f"{name}.safetensors", specs, values=values, seed=10 + i)
    h = {k: _hashes(p) for k, p in files.items()}
    expected: dict[str, set[tuple[str, str]]] = {}  # image name -> {(model key, hash type)}

    def image(name: str, data: bytes, links: set[tuple[str, str]]) -> None:
        (images / name).write_bytes(data)
        expected[name] = links

    n = 0
    for rep in range(4):  # 4 x 10 images naming files of the case
        n += 1
        image(f"a1111-{rep}.png", _png({"parameters": _infotext(
            "base", h["base"].autov2, [("styleA", h["loraA"].autov3 or "")])}, n),
            {("base", "autov2"), ("loraA", "autov3")})
        n += 1
        image(f"a1111-v1-{rep}.png", _png({"parameters": _infotext("base-fp16", h["fp16"].autov1)}, n),
              {("fp16", "autov1")})
        n += 1
        image(f"a1111-hashes-{rep}.png", _png({"parameters": _infotext(
            "finetune", hashes={"model": h["tune"].autov2, "lora:styleB": h["loraB"].autov3 or ""})}, n),
            {("tune", "autov2"), ("loraB", "autov3")})
        n += 1
        image(f"a1111-exif-{rep}.jpg", _jpeg_user_comment(_infotext(
            "base", h["base"].autov2, [("styleA", h["loraA"].autov3 or ""), ("styleB", h["loraB"].autov3 or "")]),
            n), {("base", "autov2"), ("loraA", "autov3"), ("loraB", "autov3")})
        n += 1
        fooocus = {"prompt": "p", "negative_prompt": "", "seed": "1", "steps": 20, "base_model": "finetune",
                   "base_model_hash": h["tune"].autov2, "version": "Fooocus v2.5.5",
                   "loras": [["loraA.safetensors", 0.5, h["loraA"].autov2]]}
        image(f"fooocus-{rep}.png", _png({"parameters": json.dumps(fooocus), "fooocus_scheme": "fooocus"}, n),
              {("tune", "autov2"), ("loraA", "autov2")})
        n += 1
        swarm = {"sui_image_params": {"prompt": "p", "model": "base", "seed": 1, "steps": 20},
                 "sui_models": [{"name": "base.safetensors", "param": "model", "hash": "0x" + h["base"].sha256},
                                {"name": "loraB.safetensors", "param": "loras", "hash": "0x" + h["loraB"].sha256}]}
        image(f"swarm-{rep}.png", _png({"parameters": json.dumps(swarm)}, n),
              {("base", "sha256"), ("loraB", "sha256")})
        n += 1
        invoke = {"app_version": "4.2.1", "positive_prompt": "p", "seed": 1, "steps": 20,
                  "model": {"name": "finetune", "hash": f"blake3:{h['tune'].blake3}", "base": "sd-1"},
                  "loras": [{"model": {"name": "loraA", "hash": f"blake3:{h['loraA'].blake3}"}, "weight": 0.5}]}
        image(f"invoke-{rep}.png", _png({"invokeai_metadata": json.dumps(invoke)}, n),
              {("tune", "blake3"), ("loraA", "blake3")})
        n += 1
        # ComfyUI names files, not hashes: a name alone never links
        comfy = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
                 "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "loraA.safetensors"}}}
        image(f"comfy-{rep}.png", _png({"prompt": json.dumps(comfy)}, n), set())
        n += 1
        # the checkpoint named by its AutoV1 and its AutoV2 at once: one link per file and role
        image(f"a1111-both-{rep}.png", _png({"parameters": _infotext(
            "fp16", h["fp16"].autov2, hashes={"model": h["fp16"].autov1})}, n), {("fp16", "autov2")})
        n += 1
        image(f"a1111-sha-{rep}.png", _png({"parameters": _infotext("base", h["base"].sha256)}, n),
              {("base", "sha256")})
    rng = random.Random(24)
    absent: dict[str, str] = {}
    for i in range(10):  # images naming models that are not in the case
        n += 1
        ckpt, lora = f"{rng.getrandbits(40):010x}", f"{rng.getrandbits(48):012x}"
        absent[ckpt], absent[lora] = f"missing-ckpt-{i % 3}", f"missing-lora-{i}"
        image(f"absent-{i}.png", _png({"parameters": _infotext(
            f"missing-ckpt-{i % 3}", ckpt, [(f"missing-lora-{i}", lora)])}, n), set())
    for i in range(10):  # no metadata at all
        n += 1
        fmt = "PNG" if i % 2 else "JPEG"
        bio = io.BytesIO()
        Image.new("RGB", (16, 16), (i, 2 * i, 3 * i)).save(bio, fmt)
        image(f"plain-{i}.{fmt.lower()}", bio.getvalue(), set())
    # a degenerate AutoV1 (what every file under 1 MiB has) names nothing
    image("degenerate.png", _png({"parameters": _infotext("tiny", "e3b0c442")}, 999), set())
    for i in range(decoys):  # small unrelated model files: AutoV1 degenerate, other hashes unique
        specs, values = modelgen.kohya_lora("sd1", rank=1 + i % 3, dt="F16", te=False)
        modelgen.write_safetensors(models / f"decoy-{i:03d}.safetensors", specs, values=values, seed=1000 + i)
    return {"files": files, "hashes": h, "expected": expected, "absent": absent}


def _scan(root: Path, **kw: Any) -> tuple[list[FileRecord], Any]:
    records: list[FileRecord] = []
    summary = run_scan([root], ScanSettings(workers=1), None, records.append, **kw)
    return records, summary


def _found(records: list[FileRecord], files: dict[str, Path]) -> dict[str, set[tuple[str, str]]]:
    key_of = {str(p): k for k, p in files.items()}
    out: dict[str, set[tuple[str, str]]] = {}
    for r in records:
        if r.kind == "image":
            out[Path(r.path).name] = {(key_of.get(lk.path, lk.path), lk.hash_type) for lk in r.case_links or []}
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("case")
    return root, build_case(root)


def test_every_link_found_none_invented(case: tuple[Path, dict[str, Any]]) -> None:
    root, c = case
    records, summary = _scan(root)
    assert len(records) == summary.files == len(c["expected"]) + len(c["files"])
    assert _found(records, c["files"]) == c["expected"]
    by_path = {r.path: r for r in records}
    # both sides carry the link, and what the metadata called the file
    base = by_path[str(c["files"]["base"])]
    img = str(root / "images" / "a1111-0.png")
    back = [lk for lk in base.case_links or [] if lk.path == img]
    assert [(lk.hash_type, lk.value, lk.named_as, lk.role, lk.strength, lk.candidates) for lk in back] == [
        ("autov2", c["hashes"]["base"].autov2, "base", "checkpoint", "short-hash", 1)]
    swarm = by_path[str(root / "images" / "swarm-0.png")]
    assert {(lk.strength, lk.candidates) for lk in swarm.case_links or []} == {("exact", None)}
    total = sum(len(v) for v in c["expected"].values())
    assert summary.case_links.links == total
    assert sum(len(r.case_links or []) for r in records if r.kind == "model") == total
    # the names without files, with what the metadata called them
    missing = {(n.value, tuple(n.names)) for n in summary.case_links.not_present}
    assert {v for v, _ in missing} == set(c["absent"])
    assert all(names == (c["absent"][v],) or c["absent"][v] in names for v, names in missing)
    assert summary.to_json_dict()["models_not_present"] == len(c["absent"])


def test_links_off_writes_the_same_records_without_links(case: tuple[Path, dict[str, Any]]) -> None:
    root, _ = case
    records, summary = _scan(root, case_links=False)
    assert summary.case_links is None and all(r.case_links is None for r in records)
    assert "case_links" not in summary.to_json_dict()


def test_decoys_and_duplicates(tmp_path: Path) -> None:
    c = build_case(tmp_path, decoys=20)
    # a byte copy of a LoRA: every hash is shared, so a short hash has 2 candidates
    copy = tmp_path / "models" / "loraA-copy.safetensors"
    shutil.copyfile(c["files"]["loraA"], copy)
    records, summary = _scan(tmp_path)
    found = _found(records, c["files"])
    for name, want in c["expected"].items():
        got = {x for x in found[name] if x[0] != str(copy)}
        assert got == want, name
        copies = {x for x in found[name] if x[0] == str(copy)}
        assert copies == {(str(copy), t) for k, t in want if k == "loraA"}, name
    decoy_links = [r.path for r in records if "decoy-" in r.path and r.case_links]
    assert decoy_links == []
    img = next(r for r in records if r.path.endswith("a1111-0.png"))
    lora_links = [lk for lk in img.case_links or [] if lk.role == "lora"]
    assert {(lk.path, lk.strength, lk.candidates) for lk in lora_links} == {
        (str(c["files"]["loraA"]), "short-hash", 2), (str(copy), "short-hash", 2)}
    assert summary.case_links.ambiguous_links > 0
    text = "\n".join(readable_lines(summary.case_links))
    assert "2 model files here share this value" in text


def _model_rec(path: str, **hashes: str) -> FileRecord:
    from assay.report.model import ModelReport

    return FileRecord(path=path, kind="model", model=ModelReport(format="safetensors"),
                      signals=[SignalValue(type=t, value=v) for t, v in hashes.items()])


def _image_rec(path: str, signals: list[dict[str, str]]) -> FileRecord:
    ev = Evidence(source="a1111", claim="ai-generated", strength="strong",
                                  summary="s", facts={"model_signals": signals})
    return FileRecord(path=path, kind="image", provenance=ProvenanceReport(
        verdict="ai-generated", evidence=[ev], errors=[]))


def test_resolver_short_hash_candidates_and_degenerate() -> None:
    linker = CaseLinker()
    # two different files whose CRC32 and AutoV2 collide, their SHA-256 differs
    a = _model_rec("a.safetensors", sha256="1" * 64, autov2="abcdef0123", crc32="0badf00d")
    b = _model_rec("b.safetensors", sha256="2" * 64, autov2="abcdef0123", crc32="0badf00d")
    lone = _model_rec("c.safetensors", sha256="3" * 64, autov2="3333333333", autov1="e3b0c442")
    img = _image_rec("i.png", [{"type": "autov2", "value": "ABCDEF0123", "role": "checkpoint", "name": "m"},
                               {"type": "crc32", "value": "0badf00d", "role": "vae", "name": "v"},
                               {"type": "sha256", "value": "2" * 64, "role": "lora", "name": "l"},
                               {"type": "autov1", "value": "e3b0c442", "role": "checkpoint", "name": "tiny"}])
    assert all(linker.hold(r) for r in (a, b, lone, img))
    cl = linker.resolve()
    got = {(lk.path, lk.hash_type, lk.role, lk.strength, lk.candidates) for lk in img.case_links or []}
    assert got == {("a.safetensors", "autov2", "checkpoint", "short-hash", 2),
                   ("b.safetensors", "autov2", "checkpoint", "short-hash", 2),
                   ("a.safetensors", "crc32", "vae", "short-hash", 2),
                   ("b.safetensors", "crc32", "vae", "short-hash", 2),
                   ("b.safetensors", "sha256", "lora", "exact", None)}
    assert lone.case_links is None and cl.not_present == []  # the degenerate AutoV1 names nothing
    assert [r.path for r in linker.records()] == ["a.safetensors", "b.safetensors", "c.safetensors", "i.png"]
    assert cl.ambiguous_links == 4


def test_cli_readable_and_json_line(case: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, c = case
    res = runner.invoke(app, ["scan", str(root), "--no-banks", "--workers", "1", "-o", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "case links: " in text and "short hash" in text
    assert f"model file {c['files']['base']} (checkpoint/lora)" not in text
    assert f"model file {c['files']['base']} (checkpoint)" in text
    assert "LoRAs applied with it:" in text and str(c["files"]["loraA"]) in text
    assert "model not present: checkpoint 'missing-ckpt-0'" in text
    assert "... and" in text  # 16 images made with the base checkpoint: bounded lists
    report = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["schema"] for r in report[-2:]] == ["assay.case-links/1", "assay.scan-summary/1"]  # in the file too
    assert sum(len(r.get("case_links", [])) for r in report if r.get("kind") == "image") == sum(
        len(v) for v in c["expected"].values())
    res = runner.invoke(app, ["scan", str(root), "--no-banks", "--workers", "1", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x.get("schema") for x in lines[-2:]] == ["assay.case-links/1", "assay.scan-summary/1"]
    cl = lines[-2]
    assert cl["links"] == sum(len(v) for v in c["expected"].values())
    models = {m["path"]: m for m in cl["models"]}
    assert models[str(c["files"]["base"])]["image_count"] == 16
    assert str(c["files"]["loraA"]) in models[str(c["files"]["base"])]["loras_applied"]
    assert {n["value"] for n in cl["not_present"]} == set(c["absent"])
    assert all(n["named_as"] for n in cl["not_present"])
    # without linking, no such line
    res = runner.invoke(app, ["scan", str(root), "--no-banks", "--workers", "1", "--json", "--no-case-links"])
    assert "assay.case-links/1" not in res.output


def test_absent_model_held_by_a_bank_keeps_its_match(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    banked, other = "0123456789", "fedcba9876"
    (folder / "banked.png").write_bytes(_png({"parameters": _infotext("flaggedModel", banked)}, 1))
    (folder / "other.png").write_bytes(_png({"parameters": _infotext("unknownModel", other)}, 2))
    db = str(tmp_path / "store.sqlite3")
    assert runner.invoke(app, ["--db", db, "bank", "create", "models", "--create"]).exit_code == 0
    res = runner.invoke(app, ["--db", db, "bank", "add", "models", "--content-id", "bad", "--signal", f"autov2:{banked}"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["--db", db, "scan", str(folder), "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    recs = {Path(x["path"]).name: x for x in lines if x.get("schema") == "assay.file/1"}
    # the bank match is as without linking; there is no file to link to
    assert [(m["bank"], m["value"]) for m in recs["banked.png"]["matches"]] == [("models", banked)]
    assert "case_links" not in recs["banked.png"] and not recs["other.png"].get("matches")
    (cl,) = [x for x in lines if x.get("schema") == "assay.case-links/1"]
    absent = {n["value"]: n for n in cl["not_present"]}
    assert absent[banked]["bank_matches"] == ["models"] and absent[banked]["named_as"] == ["flaggedModel"]
    assert "bank_matches" not in absent[other] and cl["links"] == 0
    res = runner.invoke(app, ["--db", db, "scan", str(folder), "--workers", "1", "-o", str(tmp_path / "r.jsonl")])
    assert "case links: none (2 images name model hashes" in res.stdout
    assert f"model not present: checkpoint 'flaggedModel', AutoV2 {banked} (short hash): named by 1 image" in res.stdout
    assert "matched in bank models" in res.stdout
