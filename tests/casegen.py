"""A small case for the report renderers (HTML, CSV, CASE/UCO, review, browser tests):
a bank with a hit, an image whose generator metadata carries a hostile prompt, files
whose names are markup, a ``javascript:`` URL and a right-to-left override, a model
file, a malicious pickle (bytes only, never loaded), an unreadable file; scanned by
the real ``assay scan`` into a report with its header, summary and sidecar."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

import modelgen
import pickle_corpus
from assay.cli import app
from assay.demo import pattern

runner = CliRunner()

# Strings that would run, navigate or reorder text if a renderer trusted them.
XSS_NAME = "<img src=x onerror=window.__pwned=1>.txt"
JS_URL_NAME = "javascript:window.__pwned=2.txt"
RTL_NAME = "invoice\u202egnp.exe"
PROMPT = ('a pattern <script>window.__pwned=3</script> "><svg onload=window.__pwned=4> '
          "javascript:window.__pwned=5 \u202eevil")
CONTENT_ID = "<script>window.__pwned=6</script>"


@dataclass
class Case:
    root: Path
    db: str
    report: Path
    matched: Path  # the file whose MD5 the bank holds


def invoke(*args: str) -> object:
    res = runner.invoke(app, list(args), env={"COLUMNS": "300"})
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    return res


def _png_with_prompt(seed: int) -> bytes:
    info = PngInfo()
    info.add_text("parameters", f"{PROMPT}\nNegative prompt: <b>none</b>\nSteps: 20, Sampler: Euler a, "
                                f"CFG scale: 7, Seed: {seed}, Size: 16x16, Model hash: 0123456789, "
                                f"Model: <i>model</i>")
    bio = io.BytesIO()
    Image.new("RGB", (64, 64), (seed * 40 % 256, 90, 20)).save(bio, "PNG", pnginfo=info)
    return bio.getvalue()


def build(tmp: Path, *, images: int = 2) -> Case:
    root = tmp / "case"
    root.mkdir()
    (root / XSS_NAME).write_text("markup in a name\n")
    (root / JS_URL_NAME).write_text("a URL in a name\n")
    (root / RTL_NAME).write_text("direction override\n")
    for i in range(images):
        (root / f"gen-{i}.png").write_bytes(_png_with_prompt(i))
    pattern("rings", seed=1).save(root / "photo.png")
    specs = modelgen.sd15(1 / 32, dt="F32")
    modelgen.write_safetensors(root / "model.safetensors", specs)
    (root / "evil.pkl").write_bytes(pickle_corpus.call0("os", "system", "echo pwned"))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    db = str(tmp / "store.sqlite3")
    for args in (["bank", "create", "known", "--create"],
                 ["bank", "add", "known", "--content-id", CONTENT_ID, "--note", "<u>note</u>",
                  "--md5", hashlib.md5((root / XSS_NAME).read_bytes()).hexdigest()],
                 ["bank", "add", "known", "--content-id", "photo-1", "--image", str(root / "photo.png")]):
        res = invoke("--db", db, *args)
        assert res.exit_code == 0, (args, res.output)  # type: ignore[attr-defined]
    report = tmp / "report.jsonl"
    res = invoke("--db", db, "scan", str(root), "-o", str(report), "--workers", "1")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    return Case(root, db, report, root / XSS_NAME)
