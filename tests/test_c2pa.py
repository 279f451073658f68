"""C2PA evidence: shared Content Credential fixtures, manifests signed here with the
public C2PA test key on generated images, offline behaviour and bad input."""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from assay.errors import InputError
from assay.provenance import c2pa as c2pa_source
from assay.provenance.analyzer import analyze_provenance
from c2pa_sign import counting_listener

if os.environ.get("CI", "").lower() in ("1", "true", "yes") and not importlib.util.find_spec(
    "c2pa"
):
    pytest.fail(
        "c2pa-python is a dependency of assay and must be installed under CI", pytrace=False
    )
c2pa = pytest.importorskip("c2pa")

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@pytest.fixture(scope="module")
def c2dir(testdata: Path) -> Path:
    return testdata / "c2pa"


def _image_bytes(fmt: str = "JPEG", size: int = 64) -> bytes:
    arr = (np.indices((size, size)).sum(0) * 3 % 256).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).convert("RGB").save(buf, fmt)
    return buf.getvalue()


def _sign(
    c2dir: Path,
    source_type: str | None,
    *,
    fmt: str = "jpeg",
    agent: str = "TestGen 1.0",
    remote_url: str | None = None,
) -> bytes:
    mime = {"jpeg": "image/jpeg", "png": "image/png"}[fmt]
    action: dict[str, object] = {"action": "c2pa.created", "softwareAgent": agent}
    if source_type:
        action["digitalSourceType"] = IPTC + source_type
    manifest = {
        "claim_generator_info": [{"name": "assay-tests", "version": "1"}],
        "format": mime,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256,
        (c2dir / "es256_certs.pem").read_bytes(),
        (c2dir / "es256_private.key").read_bytes(),
        None,  # no timestamp authority: signing stays offline
    )
    builder = c2pa.Builder.from_json(manifest)
    if remote_url:
        builder.set_no_embed()
        builder.set_remote_url(remote_url)
    out = io.BytesIO()
    builder.sign(c2pa.Signer.from_info(info), mime, io.BytesIO(_image_bytes(fmt.upper())), out)
    return out.getvalue()


def _ev(data: bytes, fmt: str = "jpeg", anchors: Path | None = None):
    return c2pa_source.evidence(Path(f"signed.{fmt}"), data, fmt, trust_anchors=anchors)


# -- shared fixtures -------------------------------------------------------------------


def test_firefly_ingredient_is_ai_generated_and_edit_is_ai_edited(c2dir: Path) -> None:
    f = c2dir / "firefly-ocsp.jpg"
    ev = c2pa_source.evidence(f, f.read_bytes(), "jpeg")
    by_role = {e.facts["role"]: e for e in ev}
    assert set(by_role) == {"active", "ingredient"}
    gen = by_role["ingredient"]
    # Signed, but this Adobe certificate chains to no certificate of the C2PA trust
    # list: moderate, never cryptographic.
    assert (gen.claim, gen.strength) == ("ai-generated", "moderate")
    assert gen.facts["generator"] == "Adobe Firefly"
    assert gen.facts["signer_issuer"] == "Adobe Inc."
    assert gen.facts["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert by_role["active"].claim == "ai-edited"
    assert by_role["active"].strength == "moderate"
    assert gen.facts["validation"] == "valid"
    assert gen.facts["signer_trusted"] is False
    assert "signer not trusted" in gen.summary
    assert gen.facts["trust_anchors"] == c2pa_source.BUNDLED_TRUST_LABEL

    # The headline is the ACTIVE manifest's (an AI edit); the AI-generated
    # ingredient is history.
    report = analyze_provenance(f, f.read_bytes(), "jpeg")
    assert report.verdict.startswith("AI-edited: signed Content Credential (")
    assert "signer not trusted" in report.verdict
    assert "made from an AI-generated ingredient (Adobe Firefly)" in report.verdict
    assert not report.verdict.startswith("AI-generated")
    # Evidence lists the file's own credential before its history.
    roles = [e.facts.get("role") for e in report.evidence if e.source == "c2pa"]
    assert roles == ["active", "ingredient"]


def test_algorithmic_media_is_not_called_ai(c2dir: Path) -> None:
    # C.jpg declares algorithmicMedia: made by an algorithm, not a trained model.
    f = c2dir / "C.jpg"
    (e,) = c2pa_source.evidence(f, f.read_bytes(), "jpeg")
    assert e.claim == "unknown"
    assert e.facts["digital_source_types"] == ["algorithmicMedia"]
    assert e.facts["signer_common_name"] == "C2PA Signer"
    assert e.facts["validation"] == "valid"
    report = analyze_provenance(f, f.read_bytes(), "jpeg")
    assert "AI" not in report.verdict
    assert "algorithmicMedia" in report.verdict


@pytest.mark.parametrize(
    ("name", "code", "because"),
    [
        ("XCA.jpg", "assertion.dataHash.mismatch", "hash binding failed"),
        ("E-sig-CA.jpg", "claimSignature.mismatch", "claim signature failed"),
        # The store is Invalid because of an ingredient's broken signature.
        ("CIE-sig-CA.jpg", "claimSignature.mismatch", "an ingredient's credential: claim signature failed"),
    ],
)
def test_invalid_credentials_are_weak_and_name_the_failed_check(
    c2dir: Path, name: str, code: str, because: str
) -> None:
    f = c2dir / name
    ev = c2pa_source.evidence(f, f.read_bytes(), "jpeg")
    active = next(e for e in ev if e.facts["role"] == "active")
    assert active.strength == "weak"
    assert active.facts["validation"] == "invalid"
    assert code in active.facts["failure_codes"]
    assert active.summary.startswith("Content Credential present but invalid")
    assert code in active.summary
    assert active.facts["invalid_because"].startswith(because)
    report = analyze_provenance(f, f.read_bytes(), "jpeg")
    assert report.verdict.startswith(f"Content Credential present but invalid ({because}")


def test_valid_chain_reports_both_manifests(c2dir: Path) -> None:
    f = c2dir / "CA.jpg"
    ev = c2pa_source.evidence(f, f.read_bytes(), "jpeg")
    (active,) = [e for e in ev if e.facts["role"] == "active"]
    assert active.facts["validation"] == "valid"
    assert active.facts["ingredients"][0]["title"] == "A.jpg"
    assert "c2pa.color_adjustments" in active.facts["actions"]


def test_remote_manifest_reported_not_fetched(c2dir: Path) -> None:
    f = c2dir / "cloud.jpg"
    (e,) = c2pa_source.evidence(f, f.read_bytes(), "jpeg")
    assert e.facts["remote_manifest"] is True
    assert e.facts["fetched"] is False
    assert e.facts["remote_url"].startswith("https://cai-manifests.adobe.com/")
    assert e.strength == "weak"


@pytest.mark.parametrize("name", ["A.jpg", "P1000827.jpg", "earth_apollo17.jpg", "sample1.png"])
def test_files_without_manifest_give_no_c2pa_evidence(c2dir: Path, name: str) -> None:
    f = c2dir / name
    fmt = "png" if name.endswith(".png") else "jpeg"
    assert c2pa_source.evidence(f, f.read_bytes(), fmt) == []


# -- manifests signed here -------------------------------------------------------------


@pytest.fixture(scope="module")
def anchors(c2dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The test chain's intermediate, as a user's PEM bundle.
    pem = (c2dir / "es256_certs.pem").read_text()
    p = tmp_path_factory.mktemp("anchors") / "anchors.pem"
    p.write_text(pem)
    return p


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_signed_trained_media_untrusted_then_trusted(c2dir: Path, anchors: Path, fmt: str) -> None:
    data = _sign(c2dir, "trainedAlgorithmicMedia", fmt=fmt)
    (e,) = _ev(data, fmt)
    assert (e.claim, e.strength, e.facts["validation"]) == (
        "ai-generated",
        "moderate",
        "valid",
    )
    assert e.facts["generator"] == "TestGen 1.0"
    (t,) = _ev(data, fmt, anchors)
    assert (t.claim, t.strength, t.facts["validation"]) == (
        "ai-generated",
        "cryptographic",
        "trusted",
    )
    assert t.facts["validation_state"] == "Trusted"
    assert t.facts["signer_trusted"] is True
    assert t.facts["trust_anchors"] == f"{anchors} (2 certificates)"


def test_signed_digital_capture_is_cryptographic_only_when_trusted(
    c2dir: Path, anchors: Path
) -> None:
    data = _sign(c2dir, "digitalCapture", agent="Some Camera")
    (e,) = _ev(data)
    # anyone can sign a camera claim with a certificate of their own: weak, like IPTC's
    assert (e.claim, e.strength) == ("camera-captured", "weak")
    assert analyze_provenance(Path("x.jpg"), data, "jpeg").verdict.startswith(
        "camera capture declared (weak): signed Content Credential (Some Camera; signer not trusted)")
    (t,) = _ev(data, anchors=anchors)
    assert (t.claim, t.strength) == ("camera-captured", "cryptographic")
    report = analyze_provenance(Path("x.jpg"), data, "jpeg", trust_anchors=anchors)
    assert report.verdict.startswith("camera capture declared: verified Content Credential")
    for word in ("original", "authentic"):
        assert word not in report.verdict


def test_signed_composite_is_ai_edited(c2dir: Path, anchors: Path) -> None:
    (e,) = _ev(_sign(c2dir, "compositeWithTrainedAlgorithmicMedia"))
    assert (e.claim, e.strength) == ("ai-edited", "moderate")
    (t,) = _ev(_sign(c2dir, "compositeWithTrainedAlgorithmicMedia"), anchors=anchors)
    assert (t.claim, t.strength) == ("ai-edited", "cryptographic")


def test_pixels_changed_after_signing_make_it_invalid(c2dir: Path) -> None:
    data = bytearray(_sign(c2dir, "trainedAlgorithmicMedia"))
    # Flip bytes inside the entropy-coded data (after the last SOS marker).
    sos = bytes(data).rfind(b"\xff\xda")
    pos = sos + 20
    data[pos] ^= 0x55
    (e,) = _ev(bytes(data))
    assert e.claim == "ai-generated"  # as declared ...
    assert e.strength == "weak"  # ... but not relied on
    assert "assertion.dataHash.mismatch" in e.facts["failure_codes"]


def test_reencoding_removes_the_manifest(c2dir: Path) -> None:
    data = _sign(c2dir, "trainedAlgorithmicMedia")
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG")
    assert _ev(buf.getvalue()) == []


def test_remote_manifest_is_never_fetched(c2dir: Path) -> None:
    """A local listener counts connections: the SDK with default settings connects
    (so this test can fail), ours does not."""
    with counting_listener() as (port, hits):
        url = f"http://127.0.0.1:{port}/manifest.c2pa"
        data = _sign(c2dir, "trainedAlgorithmicMedia", remote_url=url)
        (e,) = _ev(data)
        assert e.facts == {"remote_manifest": True, "remote_url": url, "fetched": False}
        assert hits == []
        with pytest.raises(c2pa.C2paError):
            c2pa.Reader("image/jpeg", io.BytesIO(data))  # SDK defaults: fetches
        assert hits, "control failed: the SDK's default reader did not connect"


# -- bad input ---------------------------------------------------------------------------


def test_unreadable_trust_anchors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(InputError, match="nope.pem"):
        c2pa_source.evidence(Path("x.jpg"), _image_bytes(), "jpeg", trust_anchors=missing)
    not_pem = tmp_path / "bad.pem"
    not_pem.write_text("hello")
    with pytest.raises(InputError, match="no PEM certificate"):
        c2pa_source.evidence(Path("x.jpg"), _image_bytes(), "jpeg", trust_anchors=not_pem)


def _with_app11(payload: bytes) -> bytes:
    img = _image_bytes()
    seg = b"\xff\xeb" + (len(payload) + 2).to_bytes(2, "big") + payload
    return img[:2] + seg + img[2:]


# A JUMBF superbox header as C2PA writes it into APP11, followed by junk.
_JUMBF_HEAD = b"JP\x00\x01\x00\x00\x00\x01" + b"\x00\x00\x00\x40jumb"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.binary(max_size=200))
def test_garbage_c2pa_boxes_never_crash(junk: bytes) -> None:
    data = _with_app11(_JUMBF_HEAD + junk)
    try:
        ev = c2pa_source.evidence(Path("junk.jpg"), data, "jpeg")
    except InputError as exc:
        assert "junk.jpg" in str(exc)
    else:
        assert all(e.source == "c2pa" for e in ev)
    report = analyze_provenance(Path("junk.jpg"), data, "jpeg")
    assert report.verdict  # the analyzer turns any failure into an error entry


@pytest.fixture(scope="module")
def signed_jpeg(c2dir: Path) -> bytes:
    return _sign(c2dir, "trainedAlgorithmicMedia")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_manifest_boxes_never_crash(signed_jpeg: bytes, data: st.DataObject) -> None:
    # Mutate bytes inside the APP11 (JUMBF) segments that hold the manifest, so the
    # SDK's box parser meets nearly valid, hostile structures.
    start = signed_jpeg.find(b"\xff\xeb")
    seg_len = int.from_bytes(signed_jpeg[start + 2 : start + 4], "big")
    buf = bytearray(signed_jpeg)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(start + 4, start + 2 + seg_len - 1))
        buf[i] = data.draw(st.integers(0, 255))
    try:
        ev = c2pa_source.evidence(Path("mut.jpg"), bytes(buf), "jpeg")
    except InputError as exc:
        assert "mut.jpg" in str(exc)
    else:
        for e in ev:
            # Whatever survives the mutation is either still valid or labelled invalid.
            assert e.facts.get("validation") in ("valid", "invalid", None)
            if e.facts.get("validation") == "invalid":
                assert e.strength == "weak"


def test_truncated_signed_files_give_clear_errors(c2dir: Path) -> None:
    data = _sign(c2dir, "trainedAlgorithmicMedia")
    # Cut inside the APP11 segment that holds the manifest: nothing readable.
    report = analyze_provenance(Path("cut.jpg"), data[: len(data) // 4], "jpeg")
    c2pa_errors = [e for e in report.errors if e.source == "c2pa"]
    assert c2pa_errors and "cut.jpg" in c2pa_errors[0].message
    assert not [e for e in report.evidence if e.source == "c2pa"]
    assert "could not check: c2pa" in report.verdict
    # Cut at the very end: the manifest survives, the hashed pixels do not.
    report = analyze_provenance(Path("cut.jpg"), data[:-10], "jpeg")
    (e,) = [e for e in report.evidence if e.source == "c2pa"]
    assert (e.strength, e.facts["validation"]) == ("weak", "invalid")


def test_analyzer_takes_trust_anchors_from_the_environment(
    c2dir: Path, anchors: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assay.config import ScanSettings
    from assay.provenance.analyzer import ENV_TRUST_ANCHORS, ProvenanceAnalyzer
    from assay.report.schema import FileRecord
    from assay.scan.analyzer import Subject

    f = tmp_path / "signed.jpg"
    f.write_bytes(_sign(c2dir, "trainedAlgorithmicMedia", agent="EnvGen"))
    subject = Subject(f, "image", "jpeg", f.stat().st_size, ScanSettings())
    record = FileRecord(path=str(f))
    ProvenanceAnalyzer().analyze(subject, record)
    assert record.provenance and "signer not trusted" in record.provenance.verdict
    monkeypatch.setenv(ENV_TRUST_ANCHORS, str(anchors))
    ProvenanceAnalyzer().analyze(subject, record)
    assert record.provenance.verdict == "AI-generated: verified Content Credential (EnvGen)"
