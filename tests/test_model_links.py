"""Model-to-model links in a case (issue 24, item 2): `assay scan --model-links` relates the
model files of one scan by their weights (same weights converted, fine-tune, LoRA merged
into a checkpoint) with the lineage engine and no bank; unrelated files never link."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import casegen
import lineage_eval as ev
import modelgen

SCALE = 1 / 16


def _write(path: Path, arrays: dict[str, np.ndarray], dt: str = "F32") -> Path:
    vals = {k: np.asarray(v, dtype=np.float16 if dt == "F16" else np.float32) for k, v in arrays.items()}
    return modelgen.write_safetensors(path, {k: (dt, v.shape) for k, v in vals.items()}, values=vals)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("modellinks") / "drive"
    root.mkdir()
    specs = modelgen.sd15(SCALE, dt="F32")
    base = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 1)
    A = {k: np.asarray(base[k]) for k in base}
    lora = ev.random_lora(A, 4, 21)
    files = {
        "base": _write(root / "base.safetensors", A),
        "fp16": _write(root / "base-fp16.safetensors", A, "F16"),
        "tuned": _write(root / "tuned.safetensors", {k: np.asarray(v) for k, v in ev.fine_tune(A, 0.02, 5).items()}),
        "lora": _write(root / "style-lora.safetensors", lora.kohya()),
        "merged": _write(root / "base-plus-lora.safetensors",
                         {k: np.asarray(v) for k, v in ev.apply_lora(A, lora, 0.8).items()}),
    }
    other = ev.random_model({k: v for k, v in specs.items() if v[0] == "F32"}, 99)
    files["unrelated"] = _write(root / "unrelated.safetensors", {k: np.asarray(other[k]) for k in other})
    return root, files


def test_model_links_found_and_none_invented(case: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    root, f = case
    report = tmp_path / "r.jsonl"
    res = casegen.invoke("scan", str(root), "--no-banks", "--model-links", "-o", str(report), "--workers", "1")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    links_line = next(x for x in lines if x.get("schema") == "assay.case-links/1")
    got = {(Path(lk["a"]).name, Path(lk["b"]).name, lk["relation"]) for lk in links_line["model_links"]}

    def has(a: str, b: str, rel: str) -> bool:
        na, nb = f[a].name, f[b].name
        return (na, nb, rel) in got or (rel in ("same-weights", "derived", "related") and (nb, na, rel) in got)

    assert has("base", "fp16", "same-weights")
    # no file of the case is a known base: how a fine-tune relates is not measured
    assert has("tuned", "base", "related") or has("tuned", "fp16", "related")
    assert has("merged", "lora", "contains-lora")
    strength = next(float(lk["value"]) for lk in links_line["model_links"] if lk["relation"] == "contains-lora")
    assert abs(strength - 0.8) < 0.1
    # the unrelated model links to nothing, and the LoRA only as merged into the checkpoint
    assert not any(f["unrelated"].name in (a, b) for a, b, _ in got)
    assert {r for a, b, r in got if f["lora"].name in (a, b)} == {"contains-lora"}
    assert links_line["model_files_fingerprinted"] == 6
    # both records carry the link
    recs = {Path(x["path"]).name: x for x in lines if x.get("schema") == "assay.file/1"}
    back = recs[f["lora"].name]["case_links"]
    assert any(lk["role"] == "lora-merged-into" and Path(lk["path"]).name == f["merged"].name
               and lk["strength"] == "lineage" and lk["explanation"] for lk in back)
    assert "case_links" not in recs[f["unrelated"].name]
    text = res.output  # type: ignore[attr-defined]
    assert "model links:" in text and "contains the LoRA" in text and "same weights as" in text
    # the case report lists them
    out = tmp_path / "c.html"
    assert casegen.invoke("report", str(report), "-o", str(out)).exit_code == 0  # type: ignore[attr-defined]
    sec = out.read_text().split('id="t-model-links"', 1)[1].split("</table>", 1)[0]
    assert f["merged"].name in sec and "contains-lora" in sec and f["unrelated"].name not in sec
    # and the CASE/UCO export, one annotation per link
    jsonld = tmp_path / "c.jsonld"
    assert casegen.invoke("report", str(report), "--format", "case", "-o", str(jsonld)).exit_code == 0  # type: ignore[attr-defined]
    notes = [n for n in json.loads(jsonld.read_text())["@graph"] if n.get("core:tag") == "assay:model-link"]
    assert len(notes) == len(links_line["model_links"])
    assert any(f"{f['merged']} contains-lora {f['lora']}" in n["core:statement"] for n in notes)


def test_without_the_option_nothing_is_fingerprinted(case: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    root, _ = case
    report = tmp_path / "r.jsonl"
    res = casegen.invoke("scan", str(root), "--no-banks", "-o", str(report), "--workers", "1")
    assert res.exit_code == 0  # type: ignore[attr-defined]
    links_line = next(json.loads(x) for x in report.read_text().splitlines() if '"assay.case-links/1"' in x)
    assert "model_links" not in links_line and "model links" not in res.output  # type: ignore[attr-defined]


def test_one_model_and_a_dangerous_pickle(tmp_path: Path) -> None:
    import pickle_corpus

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "evil.pkl").write_bytes(pickle_corpus.call0("os", "system", "echo pwned"))
    specs = modelgen.sd15(1 / 32, dt="F32")
    modelgen.write_safetensors(tmp_path / "d" / "one.safetensors", specs)
    report = tmp_path / "r.jsonl"
    res = casegen.invoke("scan", str(tmp_path / "d"), "--no-banks", "--model-links", "-o", str(report))
    assert res.exit_code == 0  # type: ignore[attr-defined]
    line = next(json.loads(x) for x in report.read_text().splitlines() if '"assay.case-links/1"' in x)
    assert line["model_links"] == [] and line["model_files_fingerprinted"] == 1
    reasons = {Path(x["path"]).name: x["reason"] for x in line["model_files_not_compared"]}
    assert "never opened" in reasons["evil.pkl"]


def test_model_links_find_a_permuted_copy(tmp_path: Path) -> None:
    """A copy of a model with its hidden units reordered computes the same function with
    different weights (issue #22): --model-links aligns it and links it as the same weights
    up to a permutation; an independently initialised model of the same shape stays unlinked."""
    from safetensors.numpy import save_file

    import permutations as pm

    root = tmp_path / "drive"
    root.mkdir()
    rng = np.random.default_rng(3)
    a = pm.bert(1)
    p = pm.bert_reordered(a, rng)
    save_file(a, str(root / "encoder.safetensors"))
    save_file(p, str(root / "encoder-reordered.safetensors"))
    save_file(pm.bert(2), str(root / "other-encoder.safetensors"))
    report = tmp_path / "r.jsonl"
    res = casegen.invoke("scan", str(root), "--no-banks", "--model-links", "-o", str(report), "--workers", "1")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    links = next(x for x in lines if x.get("schema") == "assay.case-links/1")["model_links"]
    got = {(Path(lk["a"]).name, Path(lk["b"]).name, lk["relation"]) for lk in links}
    pair = {"encoder.safetensors", "encoder-reordered.safetensors"}
    assert [{a, b} for a, b, r in got] == [pair] and {r for _, _, r in got} == {"same-weights"}
    assert "up to a permutation" in links[0]["explanation"]
    text = res.output  # type: ignore[attr-defined]
    assert "same weights as" in text and "other-encoder" not in text.split("model links:", 1)[1]
