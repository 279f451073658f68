"""The verdict, the analyzer (sources, errors, model signals) and the CLI explanation."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from assay.config import Limits, ScanSettings
from assay.errors import TooLarge
from assay.provenance import analyzer as analyzer_mod
from assay.provenance.analyzer import ProvenanceAnalyzer, analyze_provenance, explain
from assay.provenance.verdict import order, verdict
from assay.report.provenance import Evidence, EvidenceError, ProvenanceReport
from assay.report.schema import FileRecord
from assay.scan.analyzer import Subject

CLAIMS = ["ai-generated", "ai-edited", "camera-captured", "edited", "unknown"]
STRENGTHS = ["cryptographic", "strong", "moderate", "weak"]


def ev(source: str, claim: str, strength: str, **facts: object) -> Evidence:
    return Evidence(
        source=source, claim=claim, strength=strength, summary=f"{source} {claim}", facts=facts
    )  # type: ignore[arg-type]


CAMERA = ev("camera", "camera-captured", "weak", make="Canon", model="EOS 5D")
COMFY = ev("comfyui", "ai-generated", "strong", generator="ComfyUI")
WATERMARK = ev("watermark", "ai-generated", "strong", payload="sdxl", confidence="very likely")
FIREFLY = ev(
    "c2pa", "ai-generated", "cryptographic", generator="Adobe Firefly", validation="trusted"
)
INVALID = ev("c2pa", "ai-generated", "weak", generator="X", validation="invalid")


def test_no_evidence_is_not_a_camera_original() -> None:
    assert verdict([]) == "no provenance evidence found"


def test_camera_traces_only() -> None:
    assert verdict([CAMERA]) == "camera traces only (weak)"


def test_verdict_examples() -> None:
    assert verdict([FIREFLY]) == "AI-generated: verified Content Credential (Adobe Firefly)"
    assert verdict([WATERMARK]) == "AI-generated: invisible watermark (SDXL, very likely)"
    assert verdict([COMFY]) == "AI-generated: generator metadata (ComfyUI)"
    assert verdict([INVALID]) == "Content Credential present but invalid"


def test_conflict_is_stated() -> None:
    v = verdict([CAMERA, COMFY])
    assert v.startswith("AI-generated: generator metadata (ComfyUI)")
    assert "conflicting: camera traces (Canon EOS 5D, weak)" in v


def test_strongest_evidence_leads() -> None:
    # A trusted credential outranks generator metadata; both are AI claims.
    assert verdict([COMFY, FIREFLY]).startswith("AI-generated: verified Content Credential")
    # An invalid credential is never the headline, but is mentioned.
    v = verdict([INVALID, WATERMARK])
    assert v.startswith("AI-generated: invisible watermark")
    assert "Content Credential is present but invalid" in v


def test_weak_claims_are_labelled_weak() -> None:
    guess = ev("unknown", "ai-generated", "weak", generator="unrecognised tool")
    assert (
        verdict([guess]) == "possibly AI-generated (weak): generator metadata (unrecognised tool)"
    )
    declared = ev("iptc", "camera-captured", "weak", term="digitalCapture")
    assert verdict([declared]) == (
        "camera capture declared (weak): IPTC digital source type digitalCapture (unsigned metadata)"
    )
    algorithmic = ev("c2pa", "unknown", "moderate", generator="G", validation="valid",
                     digital_source_types=["algorithmicMedia"])  # fmt: skip
    assert verdict([algorithmic]).startswith("no generation or capture claim:")
    assert verdict([algorithmic]).endswith("declares algorithmicMedia")


def test_failed_checks_are_counted() -> None:
    v = verdict(
        [],
        [EvidenceError(source="c2pa", message="x"), EvidenceError(source="container", message="y")],
    )
    assert v == "no provenance evidence found; could not check: c2pa"


_evidence = st.builds(
    ev,
    source=st.sampled_from(["c2pa", "iptc", "camera", "watermark", "comfyui", "exif", "xmp"]),
    claim=st.sampled_from(CLAIMS),
    strength=st.sampled_from(STRENGTHS),
    generator=st.sampled_from(["ComfyUI", "Adobe Firefly", None]),
    validation=st.sampled_from(["trusted", "valid", "invalid"]),
    payload=st.sampled_from(["sd1", "sdxl"]),
    confidence=st.sampled_from(["likely", "very likely"]),
    term=st.sampled_from(["trainedAlgorithmicMedia", "digitalCapture"]),
)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(_evidence, max_size=6), data=st.data())
def test_verdict_properties(items: list[Evidence], data: st.DataObject) -> None:
    v = verdict(items)
    # Deterministic whatever order the sources reported in.
    assert verdict(data.draw(st.permutations(items))) == v
    # Never more than evidence can show.
    for word in ("original", "authentic", "real photo"):
        assert word not in v.replace("not proof of a camera original", "")
    # An AI headline needs non-weak AI evidence that is not an invalid credential;
    # weaker AI evidence is labelled "possibly ... (weak)".
    if v.startswith(("AI-generated", "AI-edited")):
        assert any(
            e.claim in ("ai-generated", "ai-edited")
            and e.strength != "weak"
            and not (e.source == "c2pa" and e.facts.get("validation") == "invalid")
            for e in items
        )
    if not items:
        assert v == "no provenance evidence found"
    # Ordering is by strength.
    ranks = [STRENGTHS.index(e.strength) for e in order(items)]
    assert ranks == sorted(ranks)


# -- analyzer ------------------------------------------------------------------------------


def _a1111_png(model_hash: str = "6ce0161689") -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a benign test pattern\nNegative prompt: none\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
        f"Seed: 1, Size: 32x32, Model hash: {model_hash}, Model: test_model, Version: v1.6.0",
    )
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (5, 6, 7)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _subject(
    path: Path, fmt: str, *, cache_bytes: bytes | None = None, limits: Limits | None = None
) -> Subject:
    s = Subject(path, "image", fmt, path.stat().st_size, ScanSettings(limits=limits or Limits()))
    if cache_bytes is not None:
        s.cache["bytes"] = cache_bytes
    return s


def test_analyzer_fills_record_and_model_signals(tmp_path: Path) -> None:
    f = tmp_path / "gen.png"
    f.write_bytes(_a1111_png())
    record = FileRecord(path=str(f), kind="image", format="png")
    a = ProvenanceAnalyzer()
    assert a.name == "provenance" and a.kinds == frozenset({"image", "document", "video", "audio"})
    a.analyze(_subject(f, "png"), record)
    assert record.provenance is not None
    assert record.provenance.verdict.startswith("AI-generated")
    named = [s for s in record.signals if s.mode == "named-by-metadata"]
    assert [(s.type, s.value, s.variant) for s in named] == [("autov2", "6ce0161689", None)]
    a.analyze(_subject(f, "png"), record)  # analyzing twice adds no duplicate
    assert len([s for s in record.signals if s.mode == "named-by-metadata"]) == 1


def test_model_hash_from_shared_fixture(testdata: Path) -> None:
    f = testdata / "genmeta" / "bad_images" / "text_after_idat.png"
    with Image.open(f) as im:
        im.load()
        text = im.text.get("parameters", "")  # Pillow's own reading, independent of ours
    expected = re.search(r"Model hash: ([0-9a-f]{10})", text)
    assert expected
    report = analyze_provenance(f, f.read_bytes(), "png")
    values = {s.value for s in analyzer_mod.named_model_signals(report)}
    assert expected.group(1) in values


def test_analyzer_uses_cached_bytes(tmp_path: Path) -> None:
    f = tmp_path / "img.png"
    f.write_bytes(b"not the real bytes")
    record = FileRecord(path=str(f))
    ProvenanceAnalyzer().analyze(_subject(f, "png", cache_bytes=_a1111_png()), record)
    assert record.provenance and record.provenance.verdict.startswith("AI-generated")


def test_analyzer_bounds_reading(tmp_path: Path) -> None:
    f = tmp_path / "big.png"
    f.write_bytes(_a1111_png())
    with pytest.raises(TooLarge, match="big.png"):
        ProvenanceAnalyzer().analyze(
            _subject(f, "png", limits=Limits(max_image_bytes=100)), FileRecord(path=str(f))
        )


def test_a_failing_source_becomes_an_error_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: object) -> list[Evidence]:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(analyzer_mod.camera, "evidence", boom)
    report = analyze_provenance(Path("g.png"), _a1111_png(), "png")
    assert report.verdict.startswith("AI-generated")  # other sources still ran
    (err,) = [e for e in report.errors if e.source == "camera"]
    assert "g.png" in err.message and "simulated bug" in err.message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_files_never_crash(data: st.DataObject) -> None:
    base = bytearray(_a1111_png())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(base)))
    fmt = data.draw(st.sampled_from(["png", "jpeg", "webp"]))
    report = analyze_provenance(Path("m.png"), bytes(base[:cut]), fmt)
    assert isinstance(report, ProvenanceReport)
    for err in report.errors:
        assert err.message


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "gif", "tiff"])
def test_empty_and_garbage_files(fmt: str) -> None:
    for data in (
        b"",
        b"\x00" * 10,
        b"\xff\xd8\xff" + b"garbage" * 10,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
    ):
        report = analyze_provenance(Path("bad.bin"), data, fmt)
        assert report.verdict.startswith(("no provenance evidence found", "edited", "camera"))


# -- explanation ---------------------------------------------------------------------------


def test_explain_escapes_control_characters() -> None:
    hostile = Evidence(
        source="exif",
        claim="ai-generated",
        strength="moderate",
        summary="Software names \x1b[31mRED\x1b[0m and \u202egnp.exe\nforged line",
        facts={"value": "a\x00b\u200bc"},
    )
    report = ProvenanceReport(verdict=verdict([hostile]), evidence=[hostile])
    text = explain(report)
    for bad in ("\x1b", "\u202e", "\x00", "\u200b"):
        assert bad not in text
    assert "\\x1b[31mRED" in text and "\\u202e" in text
    # verdict, header, evidence line and its indented continuation, one fact: the
    # line break continues the summary, it does not forge a line of the report
    assert text.splitlines()[3] == "      forged line"
    assert len(text.splitlines()) == 5


def test_explain_lists_errors_and_absence() -> None:
    report = ProvenanceReport(
        verdict="no provenance evidence found",
        errors=[EvidenceError(source="c2pa", message="f.jpg: broken")],
    )
    assert "watermark" not in explain(report)  # no search ran: nothing to say about one
    report.mark_watermark_searched()
    text = explain(report)
    assert "absence of evidence is not proof" in text
    assert "its absence proves nothing" in text  # no watermark found is not a finding
    assert "c2pa: f.jpg: broken" in text
