"""Issue 12, item 3: `assay provenance` text a person can read. The prompt comes first
with its line breaks, then the generation parameters, then the other facts; no Python
reprs or escaped line breaks anywhere; only what a terminal would act on (ESC, C0/C1
controls, bidi overrides, invisible format characters) is shown escaped; the
watermark note only under images big enough to carry a mark."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from assay.cli import app
from assay.provenance.analyzer import analyze_provenance, explain
from assay.provenance.verdict import describe
from assay.report.provenance import Evidence, ProvenanceReport

PROMPT = "a benign test pattern,\nsecond line of the prompt\n\nafter a blank line"
PARAMS = (
    f"{PROMPT}\nNegative prompt: blurry,\nlow contrast\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 32x32, "
    "Model hash: 6ce0161689, Model: test_model, Version: v1.6.0"
)
_REPR = re.compile(r"\['|\{'|\\x0a|\\n|\\r|\(\('")


def _png(size: int = 32, text: dict[str, str] | None = None, noise: bool = False) -> bytes:
    info = PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8) if noise else np.full(
        (size, size, 3), 90, np.uint8
    )
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _cli(tmp_path: Path, name: str, data: bytes) -> str:
    f = tmp_path / name
    f.write_bytes(data)
    res = CliRunner().invoke(app, ["provenance", str(f)])
    assert res.exit_code == 0, res.output
    return res.output


def test_prompt_first_with_its_line_breaks_then_parameters(tmp_path: Path) -> None:
    out = _cli(tmp_path, "gen.png", _png(text={"parameters": PARAMS}))
    lines = out.splitlines()
    ev = next(i for i, x in enumerate(lines) if x.startswith("  [strong] ai-generated (a1111)"))
    facts = lines[ev + 1 :]
    assert facts[:8] == [
        "      prompt:",
        "        a benign test pattern,",
        "        second line of the prompt",
        "",
        "        after a blank line",
        "      negative prompt:",
        "        blurry,",
        "        low contrast",
    ]
    assert facts[8] == "      parameters:"
    assert "        Steps: 20" in facts[9:16] and "        Sampler: Euler a" in facts[9:16]
    rest = [x.strip().split(":")[0] for x in facts if x.startswith("      ") and not x.startswith("        ")]
    after = rest[rest.index("parameters") + 1 :]
    assert after == sorted(after) and "found in" in after  # then the other facts by name
    assert "      found in: png:tEXt:parameters" in lines
    assert not _REPR.search(out)


@pytest.mark.parametrize("sub", ["AUTOMATIC1111", "ComfyUI", "Fooocus", "InvokeAI", "NovelAI"])
def test_shared_generator_fixtures_read_without_reprs(testdata: Path, sub: str) -> None:
    files = sorted((testdata / "genmeta" / "parsers" / sub).glob("*.png"))
    assert files
    res = CliRunner().invoke(app, ["provenance", *map(str, files)])
    assert res.exit_code == 0, res.output
    assert not _REPR.search(res.output), _REPR.search(res.output)
    assert "      prompt:" in res.output
    if sub == "Fooocus":
        assert "      styles: Fooocus V2, Fooocus Enhance, Fooocus Sharp" in res.output


def test_only_what_a_terminal_would_execute_is_escaped() -> None:
    hostile = Evidence(
        source="exif",
        claim="ai-generated",
        strength="moderate",
        summary="Software \x1b[31mRED\x1b[0m and \u202egnp.exe\u202c\x9b2J\nforged: line",
        facts={"prompt": "tab\there\nnext \u00e9t\u00e9 \u65e5\u672c", "value": "a\x00b\u200bc"},
    )
    text = explain(ProvenanceReport(verdict="x", evidence=[hostile]))
    for bad in ("\x1b", "\u202e", "\u202c", "\x9b", "\x00", "\u200b"):
        assert bad not in text
    for shown in ("\\x1b[31mRED", "\\u202e", "\\x9b", "\\x00", "\\u200b"):
        assert shown in text
    assert "tab\there" in text and "\u00e9t\u00e9 \u65e5\u672c" in text  # printable text as written
    # A line break in a value continues it, indented: it never forges a report line.
    assert "\n      forged: line" in text
    assert all(x.startswith(("verdict:", "evidence", "  ")) for x in text.splitlines())


def test_readable_lists_and_mappings() -> None:
    e = Evidence(
        source="c2pa",
        claim="unknown",
        strength="moderate",
        summary="s",
        facts={
            "actions": ["c2pa.created", "c2pa.edited"],
            "ingredients": [{"title": "a.jpg", "relationship": "parentOf", "manifest": None}],
            "signer_trusted": False,
            "cfg_scale": 7.0,
        },
    )
    text = explain(ProvenanceReport(verdict="v", evidence=[e]))
    assert "      actions: c2pa.created, c2pa.edited" in text
    assert "      ingredients: title: a.jpg, relationship: parentOf" in text
    assert "      signer trusted: no" in text
    assert "      cfg scale: 7" in text
    assert "None" not in text and "False" not in text


def test_verdict_quotes_a_field_value_as_written() -> None:
    e = Evidence(source="exif", claim="edited", strength="weak", summary="s",
                 facts={"field": "EXIF Software", "value": "It's\nPhotoshop"})  # fmt: skip
    assert describe(e) == "EXIF Software 'It's Photoshop'"


@pytest.mark.parametrize(("size", "noted"), [(1, False), (64, False), (300, True)])
def test_watermark_note_only_where_a_mark_could_be(size: int, noted: bool) -> None:
    data = _png(size, noise=True)
    report = analyze_provenance(Path("x.png"), data, "png")
    assert report.watermark_searched is noted
    assert ("no Stable Diffusion watermark found" in explain(report)) is noted
